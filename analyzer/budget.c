/* budget.c - parses budget files and checks budgets against replayed traces.
 *
 * Parsing: cJSON builds the tree, and a second walk over the text, in step
 * with the tree (cJSON keeps members in text order), records where each key
 * and value starts. That walk gives the line and column of every error,
 * finds duplicate keys (which cJSON accepts silently) and reads integers
 * from their digits, since cJSON stores numbers as doubles.
 *
 * Evaluation: each trace is replayed once, event by event. A budget that
 * needs more than the replay's own per-site numbers (a site glob, a region)
 * gets a tracker: the live bytes, allocations and temporaries of the blocks
 * it covers, in total and per site, with its own high-water mark and each
 * site's part in it, kept up to date in O(1) per event with the same
 * version trick as replay.c. A region's tracker is reset at each interval,
 * touching only the sites that changed.
 */
#include <errno.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "budget.h"

#define MAX_LIMIT (UINT64_C(1) << 63)

/* ---- metrics ---- */

static const struct {
    const char *key;
    bool is_size;
} metric_info[] = {
#define MT_BUDGET_METRIC_INFO(id, key, is_size) {key, is_size},
    MT_BUDGET_METRIC_MAP(MT_BUDGET_METRIC_INFO)
#undef MT_BUDGET_METRIC_INFO
};

/* Returns a metric's key; see budget.h. */
const char *mt__budget_metric_name(mt_budget_metric_t m)
{
    return (unsigned)m < MT_BUDGET_METRIC_COUNT ? metric_info[m].key : "?";
}

/* Tells sizes from counts; see budget.h. */
bool mt__budget_metric_is_size(mt_budget_metric_t m)
{
    return (unsigned)m < MT_BUDGET_METRIC_COUNT && metric_info[m].is_size;
}

static int metric_by_key(const char *key)
{
    for (int m = 0; m < MT_BUDGET_METRIC_COUNT; m++)
        if (!strcmp(key, metric_info[m].key))
            return m;
    return -1;
}

/* ---- sizes ---- */

static int size_error(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

/* Parses a size string; see budget.h. */
int mt__budget_parse_size(const char *s, uint64_t *out, char *err, size_t errlen)
{
    static const struct {
        const char *unit;
        uint64_t mult;
    } units[] = {
        {"B", 1}, {"KB", 1000}, {"KiB", 1024}, {"MB", 1000000}, {"MiB", 1 << 20},
        {"GB", 1000000000}, {"GiB", 1 << 30},
    };
    const char *p = s;
    if (*p == '-')
        return size_error(err, errlen, "a size cannot be negative");
    if (*p < '0' || *p > '9')
        return size_error(err, errlen, "a size starts with a number, as in \"4KiB\"");
    unsigned __int128 whole = 0, frac = 0, scale = 1;
    for (; *p >= '0' && *p <= '9'; p++) {
        whole = whole * 10 + (unsigned)(*p - '0');
        if (whole > MAX_LIMIT)
            return size_error(err, errlen, "the size is larger than 2^63 bytes");
    }
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9')
            return size_error(err, errlen, "a decimal point needs digits after it");
        for (; *p >= '0' && *p <= '9'; p++) {
            if (scale >= UINT64_C(1000000000000000000))
                return size_error(err, errlen, "too many decimals");
            frac = frac * 10 + (unsigned)(*p - '0');
            scale *= 10;
        }
    }
    if (*p == ' ')
        p++;
    uint64_t mult = 0;
    if (!*p)
        mult = 1;
    for (size_t i = 0; !mult && i < sizeof units / sizeof units[0]; i++)
        if (!strcmp(p, units[i].unit))
            mult = units[i].mult;
    if (!mult) {
        char shown[24];
        snprintf(shown, sizeof shown, "%s", p);
        for (char *c = shown; *c; c++)
            if ((unsigned char)*c < 32 || (unsigned char)*c > 126)
                *c = '?';
        return size_error(err, errlen, "unknown unit '%s' (B, KB, KiB, MB, MiB, GB or GiB)", shown);
    }
    unsigned __int128 v = whole * mult, f = frac * mult;
    if (f % scale)
        return size_error(err, errlen, "the size is not a whole number of bytes");
    v += f / scale;
    if (v > MAX_LIMIT)
        return size_error(err, errlen, "the size is larger than 2^63 bytes");
    *out = (uint64_t)v;
    return 0;
}

/* ---- parsing ---- */

typedef struct pos {
    const cJSON *item;
    size_t key;   /* offset of the member's key, or of the value in an array */
    size_t value; /* offset of the value */
} pos_t;

typedef struct parser {
    const char *text;
    size_t len;
    pos_t *pos;
    size_t npos, cappos;
    char *err;
    size_t errlen;
    int rc; /* first failure */
} parser_t;

static void line_col(const parser_t *p, size_t off, unsigned long *line, unsigned long *col)
{
    unsigned long l = 1;
    size_t start = 0;
    if (off > p->len)
        off = p->len;
    for (size_t i = 0; i < off; i++)
        if (p->text[i] == '\n') {
            l++;
            start = i + 1;
        }
    *line = l;
    *col = (unsigned long)(off - start) + 1;
}

static int fail_at(parser_t *p, size_t off, const char *fmt, ...)
{
    if (p->rc)
        return p->rc;
    unsigned long line, col;
    line_col(p, off, &line, &col);
    int n = snprintf(p->err, p->errlen, "%lu:%lu: ", line, col);
    if (n >= 0 && (size_t)n < p->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    p->rc = -EINVAL;
    return p->rc;
}

static int oom(parser_t *p)
{
    if (!p->rc) {
        snprintf(p->err, p->errlen, "out of memory");
        p->rc = -ENOMEM;
    }
    return p->rc;
}

/* Copies a key or string for a message: printable, at most 40 characters. */
static const char *shown(const char *s, char *buf, size_t cap)
{
    size_t n = 0;
    for (; s && *s && n + 4 < cap && n < 40; s++)
        buf[n++] = (unsigned char)*s < 32 || (unsigned char)*s > 126 ? '?' : *s;
    if (s && *s && n + 4 < cap) {
        memcpy(buf + n, "...", 3);
        n += 3;
    }
    buf[n] = '\0';
    return buf;
}

static size_t skip_ws(const parser_t *p, size_t i)
{
    /* cJSON skips every byte up to the space. */
    while (i < p->len && (unsigned char)p->text[i] <= 32)
        i++;
    return i;
}

static int add_pos(parser_t *p, const cJSON *item, size_t key, size_t value)
{
    if (p->npos == p->cappos) {
        size_t cap = p->cappos ? p->cappos * 2 : 64;
        pos_t *np = realloc(p->pos, cap * sizeof *np);
        if (!np)
            return oom(p);
        p->pos = np;
        p->cappos = cap;
    }
    p->pos[p->npos++] = (pos_t){item, key, value};
    return 0;
}

static int cmp_index_by_key(const void *a, const void *b, void *ctx)
{
    const cJSON *const *items = ctx;
    size_t i = *(const size_t *)a, j = *(const size_t *)b;
    int c = strcmp(items[i]->string ? items[i]->string : "", items[j]->string ? items[j]->string : "");
    return c ? c : (i > j) - (i < j);
}

/* Rejects the second of two members with the same key. */
static int check_duplicates(parser_t *p, const cJSON *obj, size_t first)
{
    size_t n = 0;
    for (const cJSON *c = obj->child; c; c = c->next)
        n++;
    if (n < 2)
        return 0;
    const cJSON **items = malloc(n * sizeof *items);
    size_t *idx = malloc(n * sizeof *idx);
    size_t *keyoff = malloc(n * sizeof *keyoff);
    if (!items || !idx || !keyoff) {
        free(items);
        free(idx);
        free(keyoff);
        return oom(p);
    }
    size_t k = 0;
    for (const cJSON *c = obj->child; c; c = c->next, k++) {
        items[k] = c;
        idx[k] = k;
    }
    /* The members' positions were added in order, starting at first. */
    for (size_t i = 0, j = first; i < n && j < p->npos; j++)
        if (p->pos[j].item == items[i])
            keyoff[i++] = p->pos[j].key;
    qsort_r(idx, n, sizeof *idx, cmp_index_by_key, items);
    int rc = 0;
    size_t dup = SIZE_MAX;
    for (size_t i = 1; i < n; i++)
        if (!strcmp(items[idx[i]]->string ? items[idx[i]]->string : "",
                    items[idx[i - 1]]->string ? items[idx[i - 1]]->string : "") &&
            (dup == SIZE_MAX || idx[i] < dup))
            dup = idx[i];
    if (dup != SIZE_MAX) {
        char b[64];
        rc = fail_at(p, keyoff[dup], "duplicate key '%s'", shown(items[dup]->string, b, sizeof b));
    }
    free(items);
    free(idx);
    free(keyoff);
    return rc;
}

static size_t skip_string(const parser_t *p, size_t i)
{
    i++; /* the opening quote */
    while (i < p->len && p->text[i] != '"')
        i += p->text[i] == '\\' ? 2 : 1;
    return i < p->len ? i + 1 : p->len;
}

/* Walks the value of item starting at text offset *at (after whitespace),
 * in step with the tree, recording positions; leaves *at after it. */
static int walk(parser_t *p, const cJSON *item, size_t *at, size_t key)
{
    size_t i = skip_ws(p, *at);
    if (add_pos(p, item, key, i) < 0)
        return p->rc;
    if (i >= p->len)
        return fail_at(p, i, "malformed JSON");
    char c = p->text[i];
    if (c == '{' || c == '[') {
        bool obj = c == '{';
        size_t first = p->npos;
        i++;
        for (const cJSON *child = item->child; child; child = child->next) {
            i = skip_ws(p, i);
            size_t k = i;
            if (obj) {
                if (i >= p->len || p->text[i] != '"')
                    return fail_at(p, i, "malformed JSON");
                i = skip_ws(p, skip_string(p, i));
                if (i >= p->len || p->text[i] != ':')
                    return fail_at(p, i, "malformed JSON");
                i++;
            }
            if (walk(p, child, &i, k) < 0)
                return p->rc;
            i = skip_ws(p, i);
            if (i < p->len && p->text[i] == ',')
                i++;
        }
        i = skip_ws(p, i);
        if (i >= p->len || p->text[i] != (obj ? '}' : ']'))
            return fail_at(p, i, "malformed JSON");
        i++;
        if (obj && check_duplicates(p, item, first) < 0)
            return p->rc;
    } else if (c == '"') {
        i = skip_string(p, i);
    } else {
        while (i < p->len && strchr("0123456789+-eE.abcdefghijklmnopqrstuvwxyz", p->text[i]))
            i++;
    }
    *at = i;
    return 0;
}

static int cmp_pos(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)((const pos_t *)a)->item, y = (uintptr_t)((const pos_t *)b)->item;
    return (x > y) - (x < y);
}

static const pos_t *pos_of(const parser_t *p, const cJSON *item)
{
    pos_t key = {item, 0, 0};
    const pos_t *r = bsearch(&key, p->pos, p->npos, sizeof *p->pos, cmp_pos);
    return r;
}

static size_t key_at(const parser_t *p, const cJSON *item)
{
    const pos_t *r = pos_of(p, item);
    return r ? r->key : 0;
}

static size_t value_at(const parser_t *p, const cJSON *item)
{
    const pos_t *r = pos_of(p, item);
    return r ? r->value : 0;
}

static const char *type_name(const cJSON *v)
{
    if (cJSON_IsString(v))
        return "a string";
    if (cJSON_IsNumber(v))
        return "a number";
    if (cJSON_IsBool(v))
        return "a boolean";
    if (cJSON_IsNull(v))
        return "null";
    if (cJSON_IsArray(v))
        return "an array";
    return "an object";
}

/* Reads a whole number from the value's digits in the text. */
static int read_integer(parser_t *p, const cJSON *v, const char *what, uint64_t *out)
{
    size_t i = value_at(p, v);
    if (i < p->len && p->text[i] == '-')
        return fail_at(p, i, "%s cannot be negative", what);
    unsigned __int128 n = 0;
    size_t start = i;
    for (; i < p->len && p->text[i] >= '0' && p->text[i] <= '9'; i++) {
        n = n * 10 + (unsigned)(p->text[i] - '0');
        if (n > MAX_LIMIT)
            return fail_at(p, start, "%s is larger than 2^63", what);
    }
    if (i == start || (i < p->len && strchr(".eE+", p->text[i])))
        return fail_at(p, start, "%s wants a whole number", what);
    *out = (uint64_t)n;
    return 0;
}

static int read_limit(parser_t *p, const cJSON *v, mt_budget_metric_t m, uint64_t *out)
{
    const char *key = metric_info[m].key;
    if (cJSON_IsNumber(v))
        return read_integer(p, v, key, out);
    if (cJSON_IsString(v) && metric_info[m].is_size) {
        char msg[160];
        if (mt__budget_parse_size(v->valuestring, out, msg, sizeof msg) < 0)
            return fail_at(p, value_at(p, v), "%s: %s", key, msg);
        return 0;
    }
    if (metric_info[m].is_size)
        return fail_at(p, value_at(p, v), "%s wants a size (bytes, or a string like \"4KiB\"), not %s", key,
                       type_name(v));
    return fail_at(p, value_at(p, v), "%s wants a whole number, not %s", key, type_name(v));
}

static int read_string(parser_t *p, const cJSON *v, const char *key, char **out)
{
    if (!cJSON_IsString(v))
        return fail_at(p, value_at(p, v), "%s wants a string, not %s", key, type_name(v));
    if (!v->valuestring[0])
        return fail_at(p, value_at(p, v), "%s is empty", key);
    if (*out)
        free(*out);
    if (!(*out = strdup(v->valuestring)))
        return oom(p);
    return 0;
}

static void budget_free(mt_budget_t *b)
{
    free(b->name);
    free(b->function);
    free(b->file);
    free(b->module);
    free(b->from);
    free(b->to);
    free(b->between);
    free(b->process);
}

static const char *const budget_keys =
    "name, function, file, module, from, to, between, process, peak_bytes, leaked_bytes, "
    "leaked_allocations, allocations, bytes_allocated, temporary_allocations, retained_bytes";

static int parse_budget(parser_t *p, const cJSON *obj, size_t index, mt_budget_t *b)
{
    char b1[64], b2[64];
    unsigned long line, col;
    size_t at = value_at(p, obj);
    line_col(p, at, &line, &col);
    b->line = (uint32_t)line;
    if (!cJSON_IsObject(obj))
        return fail_at(p, at, "budget %zu must be an object, not %s", index + 1, type_name(obj));
    const cJSON *nm = cJSON_GetObjectItemCaseSensitive(obj, "name");
    char label[96];
    if (cJSON_IsString(nm))
        snprintf(label, sizeof label, "budget '%s'", shown(nm->valuestring, b1, sizeof b1));
    else
        snprintf(label, sizeof label, "budget %zu", index + 1);
    const cJSON *from = NULL, *to = NULL, *between = NULL;
    for (const cJSON *m = obj->child; m; m = m->next) {
        const char *k = m->string;
        int metric = metric_by_key(k);
        char **field = !strcmp(k, "name")       ? &b->name
                       : !strcmp(k, "function") ? &b->function
                       : !strcmp(k, "file")     ? &b->file
                       : !strcmp(k, "module")   ? &b->module
                       : !strcmp(k, "from")     ? &b->from
                       : !strcmp(k, "to")       ? &b->to
                       : !strcmp(k, "between")  ? &b->between
                       : !strcmp(k, "process")  ? &b->process
                                                : NULL;
        if (field) {
            if (read_string(p, m, k, field) < 0)
                return p->rc;
            from = !strcmp(k, "from") ? m : from;
            to = !strcmp(k, "to") ? m : to;
            between = !strcmp(k, "between") ? m : between;
        } else if (metric >= 0) {
            mt_budget_limit_t *l = &b->limits[b->nlimits++];
            l->metric = (mt_budget_metric_t)metric;
            if (read_limit(p, m, l->metric, &l->limit) < 0)
                return p->rc;
        } else {
            return fail_at(p, key_at(p, m), "unknown key '%s' in %s (known keys: %s)", shown(k, b2, sizeof b2),
                           label, budget_keys);
        }
    }
    if (!b->name)
        return fail_at(p, at, "budget %zu has no \"name\"", index + 1);
    if (from && !to)
        return fail_at(p, key_at(p, from), "%s has \"from\" but no \"to\"", label);
    if (to && !from)
        return fail_at(p, key_at(p, to), "%s has \"to\" but no \"from\"", label);
    if (between && from)
        return fail_at(p, key_at(p, between), "%s has both \"between\" and \"from\"/\"to\": choose one", label);
    b->region = between ? MT_BUDGET_BETWEEN : from ? MT_BUDGET_FROM_TO : MT_BUDGET_WHOLE_RUN;
    if (!b->nlimits)
        return fail_at(p, at, "%s sets no limit (peak_bytes, leaked_bytes, leaked_allocations, allocations, "
                              "bytes_allocated, temporary_allocations or retained_bytes)", label);
    for (const cJSON *m = obj->child; m; m = m->next) {
        int metric = metric_by_key(m->string);
        if (metric == MT_BUDGET_RETAINED_BYTES && b->region == MT_BUDGET_WHOLE_RUN)
            return fail_at(p, key_at(p, m), "%s: retained_bytes needs a region (\"from\"/\"to\" or \"between\")",
                           label);
        if ((metric == MT_BUDGET_LEAKED_BYTES || metric == MT_BUDGET_LEAKED_ALLOCATIONS) &&
            b->region != MT_BUDGET_WHOLE_RUN)
            return fail_at(p, key_at(p, m), "%s: %s counts what is live at the end of the run, so it has no "
                                            "region; a region uses retained_bytes", label, m->string);
    }
    return 0;
}

static int parse_root(parser_t *p, const cJSON *root, mt_budget_set_t *out)
{
    char b[64];
    if (!cJSON_IsObject(root))
        return fail_at(p, value_at(p, root), "the file must hold an object {\"budgets\": [...]}, not %s",
                       type_name(root));
    const cJSON *list = NULL;
    for (const cJSON *m = root->child; m; m = m->next) {
        if (strcmp(m->string, "budgets"))
            return fail_at(p, key_at(p, m), "unknown key '%s' (the file holds only \"budgets\")",
                           shown(m->string, b, sizeof b));
        list = m;
    }
    if (!list)
        return fail_at(p, value_at(p, root), "no \"budgets\" array");
    if (!cJSON_IsArray(list))
        return fail_at(p, value_at(p, list), "budgets wants an array, not %s", type_name(list));
    size_t n = (size_t)cJSON_GetArraySize(list);
    if (!n)
        return fail_at(p, value_at(p, list), "\"budgets\" is empty: there would be nothing to check");
    out->items = calloc(n, sizeof *out->items);
    if (!out->items)
        return oom(p);
    size_t i = 0;
    for (const cJSON *e = list->child; e; e = e->next, i++) {
        out->n = i + 1;
        if (parse_budget(p, e, i, &out->items[i]) < 0)
            return p->rc;
        for (size_t k = 0; k < i; k++)
            if (!strcmp(out->items[k].name, out->items[i].name))
                return fail_at(p, value_at(p, cJSON_GetObjectItemCaseSensitive(e, "name")),
                               "budget name '%s' is used twice", shown(out->items[i].name, b, sizeof b));
    }
    return 0;
}

/* Parses a budget file's text; see budget.h. */
int mt__budget_parse(const char *text, size_t len, mt_budget_set_t *out, char *err, size_t errlen)
{
    parser_t p = {.text = text ? text : "", .len = text ? len : 0, .err = err, .errlen = errlen};
    out->items = NULL;
    out->n = 0;
    if (errlen)
        err[0] = '\0';
    const char *nul = memchr(p.text, '\0', p.len);
    if (nul)
        return fail_at(&p, (size_t)(nul - p.text), "a NUL byte: this is not a text file");
    if (skip_ws(&p, 0) == p.len)
        return fail_at(&p, p.len, "the file is empty: expected {\"budgets\": [...]}");
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(p.text, p.len, &end, false);
    if (!root) {
        size_t off = end && end >= p.text && end <= p.text + p.len ? (size_t)(end - p.text) : 0;
        off = skip_ws(&p, off); /* cJSON stops before the whitespace it was about to skip */
        if (off >= p.len)
            return fail_at(&p, p.len, "malformed JSON: the file ends too early");
        char near[16];
        size_t k = 0;
        for (; k < 10 && off + k < p.len && p.text[off + k] != '\n'; k++)
            near[k] = (unsigned char)p.text[off + k] < 32 || (unsigned char)p.text[off + k] > 126
                          ? '?' : p.text[off + k];
        near[k] = '\0';
        return fail_at(&p, off, "malformed JSON near '%s'", near);
    }
    size_t at = 0;
    if (p.len >= 3 && !memcmp(p.text, "\xEF\xBB\xBF", 3))
        at = 3;
    if (walk(&p, root, &at, 0) == 0) {
        at = skip_ws(&p, at);
        if (at < p.len)
            fail_at(&p, at, "malformed JSON: text after the end of the object");
    }
    if (!p.rc) {
        qsort(p.pos, p.npos, sizeof *p.pos, cmp_pos);
        parse_root(&p, root, out);
    }
    cJSON_Delete(root);
    free(p.pos);
    if (p.rc)
        mt__budget_set_free(out);
    return p.rc;
}

/* Reads and parses a budget file; see budget.h. */
int mt__budget_load(const char *path, mt_budget_set_t *out, char *err, size_t errlen)
{
    out->items = NULL;
    out->n = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        snprintf(err, errlen, "%s: cannot read: %s", path, strerror(e));
        return -e;
    }
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len == cap) {
            cap = cap ? cap * 2 : 4096;
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                snprintf(err, errlen, "%s: out of memory", path);
                return -ENOMEM;
            }
            buf = nb;
        }
        size_t n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0)
            break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        snprintf(err, errlen, "%s: read error", path);
        return -EIO;
    }
    char msg[512];
    int rc = mt__budget_parse(buf, len, out, msg, sizeof msg);
    free(buf);
    if (rc == -ENOMEM)
        snprintf(err, errlen, "%s: out of memory", path);
    else if (rc < 0)
        snprintf(err, errlen, "%s:%s", path, msg);
    return rc;
}

/* Frees a budget set; see budget.h. */
void mt__budget_set_free(mt_budget_set_t *set)
{
    if (!set)
        return;
    for (size_t i = 0; i < set->n; i++)
        budget_free(&set->items[i]);
    free(set->items);
    set->items = NULL;
    set->n = 0;
}

/* ---- evaluation ---- */

#define K MT_BUDGET_TOP_SITES

/* The blocks one budget covers, in total and per site (index: stack id, or
 * nstacks for the no-stack site). */
typedef struct tracker {
    bool active;
    bool region;          /* only blocks allocated after since */
    uint64_t since;
    const uint8_t *filter; /* per site: 1 when it matches; NULL: every site */
    uint64_t live, max, allocs, bytes, temps, version;
    uint64_t *s_live, *s_max, *s_ver, *s_allocs, *s_bytes, *s_temps; /* one allocation */
    uint32_t *touched;    /* sites changed since the last reset */
    size_t ntouched;
    uint8_t *is_touched;
} tracker_t;

/* One limit of one budget on one trace, before merging. */
typedef struct partial {
    bool applies;         /* the budget applies to the trace */
    bool present;         /* whole run, or a region with an interval */
    uint64_t measured;
    size_t intervals;
    size_t worst_interval;
    uint64_t from_seq, to_seq;
    size_t nsites;
    mt_budget_site_t sites[K];
} partial_t;

/* What a region budget saw of its labels in one trace. */
typedef struct label_stats {
    bool from_seen, to_seen; /* to_seen: after a from */
    size_t between_seen;
    bool sites_matched;      /* a site scope matched some stack */
} label_stats_t;

/* One trace being evaluated. */
typedef struct trace_ctx {
    size_t index;
    mt_trace_t *t;
    mt_symbolizer_t *sym;
    size_t nstacks;
    mt_frame_t **frames;  /* per site, symbolized on demand */
    size_t *nframes;
    uint8_t *symbolized;
    int8_t *suppressed;   /* -1 not known yet */
    const mt_patterns_t *suppressions;
} trace_ctx_t;

/* One budget on one trace. */
typedef struct bstate {
    const mt_budget_t *b;
    partial_t *parts[MT_BUDGET_METRIC_COUNT]; /* per limit */
    label_stats_t *labels;
    uint8_t *filter;
    bool tracked;
    tracker_t tr;
    bool open;
    uint64_t open_seq;
} bstate_t;

static int tracker_init(tracker_t *tr, size_t nsites)
{
    memset(tr, 0, sizeof *tr);
    tr->s_live = calloc(nsites * 6, sizeof *tr->s_live);
    tr->touched = malloc(nsites * sizeof *tr->touched);
    tr->is_touched = calloc(nsites, 1);
    if (!tr->s_live || !tr->touched || !tr->is_touched)
        return -ENOMEM;
    tr->s_max = tr->s_live + nsites;
    tr->s_ver = tr->s_max + nsites;
    tr->s_allocs = tr->s_ver + nsites;
    tr->s_bytes = tr->s_allocs + nsites;
    tr->s_temps = tr->s_bytes + nsites;
    return 0;
}

static void tracker_free(tracker_t *tr)
{
    free(tr->s_live);
    free(tr->touched);
    free(tr->is_touched);
}

static bool tracker_covers(const tracker_t *tr, size_t idx, uint64_t seq)
{
    return tr->active && (!tr->filter || tr->filter[idx]) && (!tr->region || seq > tr->since);
}

/* Before a site's live bytes change: they have not changed since the latest
 * high-water mark, so that is its part in it. */
static void tracker_touch(tracker_t *tr, size_t idx)
{
    if (!tr->is_touched[idx]) {
        tr->is_touched[idx] = 1;
        tr->touched[tr->ntouched++] = (uint32_t)idx;
    }
    if (tr->s_ver[idx] != tr->version) {
        tr->s_max[idx] = tr->s_live[idx];
        tr->s_ver[idx] = tr->version;
    }
}

/* weight: the blocks one recorded block stands for (1 unless sampled). */
static void tracker_alloc(tracker_t *tr, size_t idx, uint64_t size, uint64_t weight)
{
    tracker_touch(tr, idx);
    tr->s_live[idx] += size;
    tr->s_allocs[idx] += weight;
    tr->s_bytes[idx] += size;
    tr->live += size;
    tr->allocs += weight;
    tr->bytes += size;
    if (tr->live > tr->max) {
        tr->max = tr->live;
        tr->version++;
    }
}

static void tracker_unlive(tracker_t *tr, size_t idx, uint64_t size, uint64_t weight, bool temporary)
{
    tracker_touch(tr, idx);
    tr->s_live[idx] -= size;
    tr->live -= size;
    if (temporary) {
        tr->s_temps[idx] += weight;
        tr->temps += weight;
    }
}

static void tracker_settle(tracker_t *tr)
{
    for (size_t i = 0; i < tr->ntouched; i++) {
        uint32_t idx = tr->touched[i];
        if (tr->s_ver[idx] != tr->version) {
            tr->s_max[idx] = tr->s_live[idx];
            tr->s_ver[idx] = tr->version;
        }
    }
}

static void tracker_reset(tracker_t *tr)
{
    for (size_t i = 0; i < tr->ntouched; i++) {
        uint32_t idx = tr->touched[i];
        tr->s_live[idx] = tr->s_max[idx] = tr->s_ver[idx] = 0;
        tr->s_allocs[idx] = tr->s_bytes[idx] = tr->s_temps[idx] = 0;
        tr->is_touched[idx] = 0;
    }
    tr->ntouched = 0;
    tr->live = tr->max = tr->allocs = tr->bytes = tr->temps = tr->version = 0;
}

/* The tracker's value of metric m in total, and its per-site array. */
static uint64_t tracker_value(const tracker_t *tr, mt_budget_metric_t m, const uint64_t **per_site)
{
    switch (m) {
    case MT_BUDGET_PEAK_BYTES: *per_site = tr->s_max; return tr->max;
    case MT_BUDGET_RETAINED_BYTES: *per_site = tr->s_live; return tr->live;
    case MT_BUDGET_ALLOCATIONS: *per_site = tr->s_allocs; return tr->allocs;
    case MT_BUDGET_BYTES_ALLOCATED: *per_site = tr->s_bytes; return tr->bytes;
    case MT_BUDGET_TEMPORARY_ALLOCATIONS: *per_site = tr->s_temps; return tr->temps;
    default: *per_site = NULL; return 0; /* leaks: from the replay's sites */
    }
}

/* Inserts a site into a top list, largest first; equal values keep the
 * order they came in, so the list is the same on every run. */
static void top_add(mt_budget_site_t *top, size_t *n, size_t trace, uint32_t stack, uint64_t value)
{
    if (!value)
        return;
    size_t i = *n;
    if (i == K) {
        if (value <= top[K - 1].value)
            return;
        i = K - 1;
    } else {
        (*n)++;
    }
    while (i > 0 && top[i - 1].value < value) {
        top[i] = top[i - 1];
        i--;
    }
    top[i] = (mt_budget_site_t){trace, stack, value};
}

static uint32_t stack_of_index(const trace_ctx_t *tc, size_t idx)
{
    return idx < tc->nstacks ? (uint32_t)idx : MT_REPLAY_NO_STACK;
}

static size_t index_of_stack(const trace_ctx_t *tc, uint32_t stack)
{
    return stack < tc->nstacks ? stack : tc->nstacks;
}

static int site_frames(trace_ctx_t *tc, size_t idx, const mt_frame_t **frames, size_t *n)
{
    if (!tc->symbolized[idx]) {
        if (idx < tc->nstacks) {
            int rc = mt__symbolize_stack(tc->sym, tc->t, (uint32_t)idx, &tc->frames[idx], &tc->nframes[idx]);
            if (rc < 0)
                return rc;
        }
        tc->symbolized[idx] = 1;
    }
    *frames = tc->frames[idx];
    *n = tc->nframes[idx];
    return 0;
}

static int site_suppressed(trace_ctx_t *tc, size_t idx, bool *out)
{
    *out = false;
    if (!tc->suppressions || !tc->suppressions->n)
        return 0;
    if (tc->suppressed[idx] < 0) {
        const mt_frame_t *f;
        size_t n;
        int rc = site_frames(tc, idx, &f, &n);
        if (rc < 0)
            return rc;
        tc->suppressed[idx] = mt__suppressed_by(f, n, tc->suppressions) != NULL;
    }
    *out = tc->suppressed[idx] == 1;
    return 0;
}

/* Matches a path glob on the whole path or on its last component. */
static bool path_match(const char *glob, const char *path)
{
    if (!path)
        return false;
    if (!fnmatch(glob, path, 0))
        return true;
    const char *base = strrchr(path, '/');
    return base && !fnmatch(glob, base + 1, 0);
}

/* A site is in a budget's scope when one frame of its stack matches every
 * glob the budget gives. */
static int make_filter(trace_ctx_t *tc, const mt_budget_t *b, uint8_t **out)
{
    *out = NULL;
    if (!b->function && !b->file && !b->module)
        return 0;
    uint8_t *filter = calloc(tc->nstacks + 1, 1);
    if (!filter)
        return -ENOMEM;
    char *fnglob = b->function;
    mt_patterns_t fnpat = {.items = &fnglob, .n = 1, .cap = 1};
    for (size_t i = 0; i < tc->nstacks; i++) {
        const mt_frame_t *f;
        size_t n;
        int rc = site_frames(tc, i, &f, &n);
        if (rc < 0) {
            free(filter);
            return rc;
        }
        for (size_t k = 0; k < n && !filter[i]; k++)
            filter[i] = (!b->function || mt__frame_is_wrapper(&f[k], &fnpat)) &&
                        (!b->file || path_match(b->file, f[k].file)) &&
                        (!b->module || path_match(b->module, f[k].module));
    }
    *out = filter;
    return 0;
}

static void interval_close(bstate_t *bs, const trace_ctx_t *tc, uint64_t seq)
{
    tracker_t *tr = &bs->tr;
    tracker_settle(tr);
    for (size_t li = 0; li < bs->b->nlimits; li++) {
        partial_t *p = bs->parts[li];
        const uint64_t *per_site;
        uint64_t v = tracker_value(tr, bs->b->limits[li].metric, &per_site);
        size_t index = p->intervals++;
        if (p->present && v <= p->measured)
            continue;
        p->present = true;
        p->measured = v;
        p->worst_interval = index;
        p->from_seq = bs->open_seq;
        p->to_seq = seq;
        p->nsites = 0;
        for (size_t i = 0; i < tr->ntouched; i++) {
            uint32_t idx = tr->touched[i];
            top_add(p->sites, &p->nsites, tc->index, stack_of_index(tc, idx), per_site[idx]);
        }
    }
    tracker_reset(tr);
    tr->active = false;
    bs->open = false;
}

static void interval_open(bstate_t *bs, uint64_t seq)
{
    bs->open = true;
    bs->open_seq = seq;
    bs->tr.active = true;
    bs->tr.region = true;
    bs->tr.since = seq;
}

static void on_label(bstate_t *bs, const trace_ctx_t *tc, const char *label, uint64_t seq)
{
    const mt_budget_t *b = bs->b;
    if (!label)
        return;
    if (b->region == MT_BUDGET_BETWEEN) {
        if (strcmp(label, b->between))
            return;
        bs->labels->between_seen++;
        if (bs->open)
            interval_close(bs, tc, seq);
        interval_open(bs, seq);
        return;
    }
    if (bs->open && !strcmp(label, b->to)) {
        bs->labels->to_seen = true;
        interval_close(bs, tc, seq);
    }
    if (!bs->open && !strcmp(label, b->from)) {
        bs->labels->from_seen = true;
        interval_open(bs, seq);
    }
}

/* Settles the whole-run limits of a budget once the replay is finished. */
static int whole_run_results(bstate_t *bs, trace_ctx_t *tc, const mt_replay_t *r)
{
    size_t nsites;
    const mt_site_t *sites = mt__replay_sites(r, &nsites);
    const mt_totals_t *tot = mt__replay_totals(r);
    if (bs->tracked)
        tracker_settle(&bs->tr);
    for (size_t li = 0; li < bs->b->nlimits; li++) {
        partial_t *p = bs->parts[li];
        mt_budget_metric_t m = bs->b->limits[li].metric;
        p->present = true;
        if (m == MT_BUDGET_PEAK_BYTES && bs->tracked) {
            p->measured = bs->tr.max;
            for (size_t i = 0; i < bs->tr.ntouched; i++) {
                uint32_t idx = bs->tr.touched[i];
                top_add(p->sites, &p->nsites, tc->index, stack_of_index(tc, idx), bs->tr.s_max[idx]);
            }
            continue;
        }
        if (m == MT_BUDGET_PEAK_BYTES)
            p->measured = tot->peak_bytes;
        for (size_t i = 0; i < nsites; i++) {
            const mt_site_t *s = &sites[i];
            size_t idx = index_of_stack(tc, s->stack);
            if (bs->filter && !bs->filter[idx])
                continue;
            uint64_t v = 0;
            switch (m) {
            case MT_BUDGET_PEAK_BYTES: v = s->peak_bytes; break;
            case MT_BUDGET_ALLOCATIONS: v = s->allocations; break;
            case MT_BUDGET_BYTES_ALLOCATED: v = s->bytes_allocated; break;
            case MT_BUDGET_TEMPORARY_ALLOCATIONS: v = s->temporary_allocations; break;
            case MT_BUDGET_LEAKED_BYTES:
            case MT_BUDGET_LEAKED_ALLOCATIONS: {
                if (!s->live_allocations)
                    break;
                bool supp;
                int rc = site_suppressed(tc, idx, &supp);
                if (rc < 0)
                    return rc;
                if (!supp)
                    v = m == MT_BUDGET_LEAKED_BYTES ? s->live_bytes : s->live_allocations;
                break;
            }
            default: break;
            }
            if (m != MT_BUDGET_PEAK_BYTES)
                p->measured += v;
            top_add(p->sites, &p->nsites, tc->index, s->stack, v);
        }
    }
    return 0;
}

/* Replays one trace and fills the partial results of the budgets on it. */
static int run_trace(trace_ctx_t *tc, bstate_t *bs, size_t nbs, char *err, size_t errlen)
{
    int rc = -ENOMEM;
    mt_replay_t *r = mt__replay_new(tc->t, NULL);
    if (!r)
        goto fail;
    mt_event_t ev;
    mt__trace_rewind(tc->t);
    while ((rc = mt__trace_next(tc->t, &ev)) > 0) {
        const mt_block_t *old = ev.ptr && ev.op != MT_EV_MARKER ? mt__replay_block(r, mt_event_ends(&ev)) : NULL;
        mt_block_t prior = old ? *old : (mt_block_t){0};
        uint64_t temps_before = 0;
        if (old && mt_op_frees(ev.op))
            temps_before = mt__replay_site(r, prior.stack)->temporary_allocations;
        if ((rc = mt__replay_feed(r, &ev)) < 0)
            goto fail;
        if (ev.op == MT_EV_MARKER) {
            const char *label = mt__trace_label(tc->t, ev.label);
            for (size_t i = 0; i < nbs; i++)
                if (bs[i].b->region != MT_BUDGET_WHOLE_RUN)
                    on_label(&bs[i], tc, label, ev.seq);
            continue;
        }
        if (!ev.ptr)
            continue;
        bool allocates = mt_op_allocates(ev.op), frees = mt_op_frees(ev.op);
        bool temporary = false;
        if (old && frees)
            temporary = mt__replay_site(r, prior.stack)->temporary_allocations > temps_before;
        const mt_block_t *now = allocates ? mt__replay_block(r, ev.ptr) : NULL;
        for (size_t i = 0; i < nbs; i++) {
            tracker_t *tr = &bs[i].tr;
            if (!bs[i].tracked || !tr->active)
                continue;
            /* A free, or an allocation over a live block whose free was lost. */
            if (old && (frees || allocates)) {
                size_t idx = index_of_stack(tc, prior.stack);
                if (tracker_covers(tr, idx, prior.seq))
                    tracker_unlive(tr, idx, prior.size, prior.weight, temporary);
            }
            if (now) {
                size_t idx = index_of_stack(tc, now->stack);
                if (tracker_covers(tr, idx, now->seq))
                    tracker_alloc(tr, idx, now->size, now->weight);
            }
        }
    }
    if (rc < 0) {
        snprintf(err, errlen, "%s", mt__trace_error(tc->t));
        goto fail;
    }
    mt__replay_finish(r);
    for (size_t i = 0; i < nbs; i++)
        if (bs[i].b->region == MT_BUDGET_WHOLE_RUN && (rc = whole_run_results(&bs[i], tc, r)) < 0)
            goto fail;
    rc = 0;
fail:
    if (rc == -ENOMEM)
        snprintf(err, errlen, "out of memory");
    mt__replay_free(r);
    return rc;
}

/* Returns the name a process glob is matched against; see budget.h. */
const char *mt__budget_process_name(const mt_trace_t *t)
{
    const mt_trace_info_t *in = mt__trace_info(t);
    const char *exe = in->exe && *in->exe ? in->exe : "";
    const char *slash = strrchr(exe, '/');
    return slash ? slash + 1 : exe;
}

static bool budget_applies(const mt_budget_t *b, const mt_trace_t *t)
{
    return !b->process || !fnmatch(b->process, mt__budget_process_name(t), 0);
}

static int add_result(mt_budget_results_t *res, size_t *cap, const mt_budget_result_t *r)
{
    if (res->n == *cap) {
        size_t nc = *cap ? *cap * 2 : 16;
        mt_budget_result_t *ni = realloc(res->items, nc * sizeof *ni);
        if (!ni)
            return -ENOMEM;
        res->items = ni;
        *cap = nc;
    }
    res->items[res->n++] = *r;
    if (!r->passed)
        res->all_passed = false;
    return 0;
}

static void result_from(mt_budget_result_t *r, const partial_t *p, long trace)
{
    r->measured = p->measured;
    r->intervals = p->intervals;
    r->worst_trace = trace;
    r->worst_interval = p->worst_interval;
    r->worst_from_seq = p->from_seq;
    r->worst_to_seq = p->to_seq;
    r->nsites = p->nsites;
    memcpy(r->sites, p->sites, sizeof r->sites);
}

/* The error for a budget that applies to no trace, or whose region never
 * occurs in them. */
static int scope_error(const mt_budget_t *b, mt_trace_t *const *traces, size_t ntraces, size_t napplies,
                       const label_stats_t *ls, size_t first, char *err, size_t errlen)
{
    char where[600];
    if (!napplies) {
        snprintf(err, errlen, "budget '%s': process '%s' matches none of the traces' executables (such as '%s')",
                 b->name, b->process, ntraces ? mt__budget_process_name(traces[0]) : "");
        return -EINVAL;
    }
    if (napplies == 1)
        snprintf(where, sizeof where, "in %s", mt__trace_info(traces[first])->path);
    else
        snprintf(where, sizeof where, "in any of the %zu traces it applies to", napplies);
    if (b->region == MT_BUDGET_BETWEEN && !ls->between_seen)
        snprintf(err, errlen, "budget '%s': label '%s' never occurs %s", b->name, b->between, where);
    else if (b->region == MT_BUDGET_BETWEEN)
        snprintf(err, errlen, "budget '%s': label '%s' occurs only once %s: an interval needs two", b->name,
                 b->between, where);
    else if (!ls->from_seen)
        snprintf(err, errlen, "budget '%s': label '%s' never occurs %s", b->name, b->from, where);
    else
        snprintf(err, errlen, "budget '%s': label '%s' never occurs after '%s' %s", b->name, b->to, b->from,
                 where);
    return -EINVAL;
}

static int assemble(const mt_budget_set_t *set, mt_trace_t *const *traces, size_t ntraces, bool merge,
                    partial_t *parts, label_stats_t *labels, mt_budget_results_t *out, char *err, size_t errlen)
{
    size_t cap = 0;
    for (size_t bi = 0; bi < set->n; bi++) {
        const mt_budget_t *b = &set->items[bi];
        partial_t *row = &parts[bi * MT_BUDGET_METRIC_COUNT * ntraces];
        size_t napplies = 0, npresent = 0, first = 0;
        label_stats_t ls = {0};
        for (size_t ti = 0; ti < ntraces; ti++) {
            if (!row[ti].applies)
                continue;
            if (!napplies++)
                first = ti;
            npresent += row[ti].present;
            const label_stats_t *l = &labels[bi * ntraces + ti];
            ls.from_seen |= l->from_seen;
            ls.sites_matched |= l->sites_matched;
            ls.to_seen |= l->to_seen;
            if (l->between_seen > ls.between_seen)
                ls.between_seen = l->between_seen;
        }
        if (!npresent)
            return scope_error(b, traces, ntraces, napplies, &ls, first, err, errlen);
        if ((b->function || b->file || b->module) && !ls.sites_matched) {
            /* A glob with a typo would pass forever: say so instead. */
            snprintf(err, errlen, "budget '%s': no stack %s has a frame matching%s%s%s%s%s%s", b->name,
                     napplies == 1 ? "of the trace" : "of the traces it applies to",
                     b->function ? " function '" : "", b->function ? b->function : "", b->function ? "'" : "",
                     b->file ? " file '" : "", b->file ? b->file : "", b->file ? "'" : "");
            if (b->module && strlen(err) + strlen(b->module) + 16 < errlen)
                snprintf(err + strlen(err), errlen - strlen(err), " module '%s'", b->module);
            return -EINVAL;
        }
        for (size_t li = 0; li < b->nlimits; li++) {
            partial_t *pl = &row[li * ntraces];
            mt_budget_result_t r = {.budget = bi, .metric = b->limits[li].metric, .limit = b->limits[li].limit,
                                    .trace = -1, .worst_trace = -1};
            if (merge) {
                bool first_one = true;
                for (size_t ti = 0; ti < ntraces; ti++) {
                    const partial_t *p = &pl[ti];
                    if (!p->applies || !p->present)
                        continue;
                    if (b->region != MT_BUDGET_WHOLE_RUN) {
                        size_t intervals = r.intervals + p->intervals;
                        if (first_one || p->measured > r.measured)
                            result_from(&r, p, (long)ti);
                        r.intervals = intervals;
                    } else {
                        r.measured = r.measured + p->measured < r.measured ? UINT64_MAX : r.measured + p->measured;
                        for (size_t s = 0; s < p->nsites; s++)
                            top_add(r.sites, &r.nsites, p->sites[s].trace, p->sites[s].stack, p->sites[s].value);
                    }
                    first_one = false;
                }
                r.passed = r.measured <= r.limit;
                if (add_result(out, &cap, &r) < 0)
                    goto oom;
                continue;
            }
            for (size_t ti = 0; ti < ntraces; ti++) {
                const partial_t *p = &pl[ti];
                if (!p->applies || !p->present)
                    continue;
                mt_budget_result_t one = r;
                result_from(&one, p, b->region != MT_BUDGET_WHOLE_RUN ? (long)ti : -1);
                one.trace = (long)ti;
                one.passed = one.measured <= one.limit;
                if (add_result(out, &cap, &one) < 0)
                    goto oom;
            }
        }
    }
    return 0;
oom:
    snprintf(err, errlen, "out of memory");
    return -ENOMEM;
}

/* Evaluates budgets against traces; see budget.h. */
int mt__budget_evaluate(const mt_budget_set_t *set, mt_trace_t *const *traces, mt_symbolizer_t *const *syms,
                        size_t ntraces, const mt_budget_eval_options_t *opt, mt_budget_results_t *out, char *err,
                        size_t errlen)
{
    int rc = -ENOMEM;
    *out = (mt_budget_results_t){.all_passed = true};
    if (!ntraces) {
        snprintf(err, errlen, "no trace to check");
        return -EINVAL;
    }
    snprintf(err, errlen, "out of memory");
    size_t nparts = set->n * MT_BUDGET_METRIC_COUNT * (ntraces ? ntraces : 1);
    partial_t *parts = calloc(nparts, sizeof *parts);
    label_stats_t *labels = calloc(set->n * (ntraces ? ntraces : 1), sizeof *labels);
    bstate_t *bs = calloc(set->n ? set->n : 1, sizeof *bs);
    if (!parts || !labels || !bs)
        goto done;
    for (size_t ti = 0; ti < ntraces; ti++) {
        trace_ctx_t tc = {.index = ti, .t = traces[ti], .sym = syms ? syms[ti] : NULL,
                          .suppressions = opt ? opt->suppressions : NULL};
        bool own_sym = !tc.sym;
        if (own_sym && !(tc.sym = mt__symbolizer_new(tc.t)))
            goto done;
        tc.nstacks = mt__trace_info(tc.t)->nstacks;
        size_t nsites = tc.nstacks + 1;
        tc.frames = calloc(nsites, sizeof *tc.frames);
        tc.nframes = calloc(nsites, sizeof *tc.nframes);
        tc.symbolized = calloc(nsites, 1);
        tc.suppressed = malloc(nsites);
        size_t nbs = 0;
        rc = -ENOMEM;
        if (!tc.frames || !tc.nframes || !tc.symbolized || !tc.suppressed)
            goto trace_done;
        memset(tc.suppressed, -1, nsites);
        for (size_t bi = 0; bi < set->n; bi++) {
            const mt_budget_t *b = &set->items[bi];
            if (!budget_applies(b, tc.t))
                continue;
            bstate_t *s = &bs[nbs++];
            *s = (bstate_t){.b = b, .labels = &labels[bi * ntraces + ti]};
            for (size_t li = 0; li < b->nlimits; li++) {
                s->parts[li] = &parts[(bi * MT_BUDGET_METRIC_COUNT + li) * ntraces + ti];
                s->parts[li]->applies = true;
            }
            if ((rc = make_filter(&tc, b, &s->filter)) < 0)
                goto trace_done;
            for (size_t i = 0; s->filter && i <= tc.nstacks && !s->labels->sites_matched; i++)
                s->labels->sites_matched = s->filter[i];
            s->tracked = s->filter || b->region != MT_BUDGET_WHOLE_RUN;
            if (s->tracked && (rc = tracker_init(&s->tr, nsites)) < 0)
                goto trace_done;
            s->tr.filter = s->filter;
            s->tr.active = b->region == MT_BUDGET_WHOLE_RUN;
        }
        rc = run_trace(&tc, bs, nbs, err, errlen);
    trace_done:
        for (size_t i = 0; i < nbs; i++) {
            free(bs[i].filter);
            tracker_free(&bs[i].tr);
        }
        for (size_t i = 0; tc.frames && i < nsites; i++)
            free(tc.frames[i]);
        free(tc.frames);
        free(tc.nframes);
        free(tc.symbolized);
        free(tc.suppressed);
        if (own_sym)
            mt__symbolizer_free(tc.sym);
        if (rc < 0) {
            if (rc == -ENOMEM)
                snprintf(err, errlen, "out of memory");
            goto done;
        }
    }
    rc = assemble(set, traces, ntraces, opt && opt->merge, parts, labels, out, err, errlen);
done:
    free(parts);
    free(labels);
    free(bs);
    if (rc < 0)
        mt__budget_results_free(out);
    else if (errlen)
        err[0] = '\0';
    return rc;
}

/* Frees results; see budget.h. */
void mt__budget_results_free(mt_budget_results_t *res)
{
    if (!res)
        return;
    free(res->items);
    res->items = NULL;
    res->n = 0;
}
