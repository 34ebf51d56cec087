/* report.c - the report model: symbolized sites, headline frames, suppressions, grouping, units.
 *
 * Everything here works on symbolized stacks (mt_frame_t arrays, innermost
 * first, inlined frames expanded) and on the numbers replay.c computed, and
 * nothing here reads a trace except mt__symbolize_stack. That keeps the
 * rules people care about (which frame a site is charged to, what a
 * suppression matches, which stacks are one row) testable on hand-made
 * frames, without debug information.
 *
 * A site's headline frame is the first frame that is neither memtrack's own
 * (libmemtrack.so) nor an allocation wrapper: the globs of a built-in list
 * (operator new, strdup, the std::allocator family, common x* and g_*
 * wrappers) plus those the user adds. Suppressions follow LeakSanitizer:
 * "leak:PATTERN" where PATTERN is matched as a substring, with '*', '^' and
 * '$', against the function, file and module of every frame.
 */
#include <ctype.h>
#include <errno.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "replay.h"

/* ---- patterns ---- */

/* Appends a pattern; see replay.h. */
int mt__patterns_add(mt_patterns_t *p, const char *pattern)
{
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 16;
        char **ni = realloc(p->items, cap * sizeof *ni);
        if (!ni)
            return -ENOMEM;
        p->items = ni;
        p->cap = cap;
    }
    char *copy = strdup(pattern);
    if (!copy)
        return -ENOMEM;
    p->items[p->n++] = copy;
    return 0;
}

/* Frees a pattern list; see replay.h. */
void mt__patterns_free(mt_patterns_t *p)
{
    for (size_t i = 0; i < p->n; i++)
        free(p->items[i]);
    free(p->items);
    *p = (mt_patterns_t){0};
}

static int add_all(mt_patterns_t *p, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int rc = mt__patterns_add(p, list[i]);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* ---- headline frames ---- */

/* Functions that only pass an allocation on for their caller. The globs are
 * matched against the demangled name with and without its parameters. */
static const char *const default_wrappers[] = {
    "malloc", "calloc", "realloc", "reallocarray", "free", "posix_memalign", "aligned_alloc",
    "memalign", "valloc", "pvalloc", "mallocx", "rallocx", "xallocx",
    "operator new*", "operator delete*",
    "strdup", "strndup", "__strdup", "__strndup", "wcsdup", "__wcsdup",
    "asprintf", "vasprintf", "__asprintf", "__vasprintf*", "___asprintf", "__asprintf_chk",
    "__vasprintf_chk", "open_memstream", "getline", "getdelim", "__getdelim",
    "realpath", "__realpath", "get_current_dir_name", "canonicalize_file_name",
    "xmalloc", "xcalloc", "xrealloc", "xzalloc", "xstrdup", "xstrndup", "xmemdup", "xasprintf",
    "g_malloc*", "g_realloc*", "g_try_malloc*", "g_try_realloc*", "g_new*", "g_strdup*",
    "g_strndup", "g_memdup*", "g_slice_alloc*",
    "fopen", "fopen64", "__fopen_internal", "_IO_new_fopen", "fdopen", "_IO_new_fdopen",
    "opendir", "__opendir", "opendir_tail", "fdopendir", "__alloc_dir", "popen", "_IO_new_popen", "tmpfile",
    "tmpfile64",
    /* The C++ standard library: containers, strings and smart pointers
     * allocate for the code that uses them. */
    "std::*", "__gnu_cxx::*",
};

/* Appends the built-in wrapper globs; see replay.h. */
int mt__wrappers_add_defaults(mt_patterns_t *p)
{
    return add_all(p, default_wrappers, sizeof default_wrappers / sizeof default_wrappers[0]);
}

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* Returns true for memtrack's own frames; see replay.h. */
bool mt__frame_is_memtrack(const mt_frame_t *f)
{
    return f->module && !strncmp(base_name(f->module), "libmemtrack", 11);
}

/* Returns true when name[i] opens "(anonymous namespace)", which is part of
 * a name, not a parameter list. */
static bool anonymous_namespace_at(const char *name, size_t i)
{
    return !strncmp(name + i, "(anonymous namespace)", 21);
}

/* Copies a demangled name without its parameter list (and what follows it,
 * such as "const"), keeping template arguments, "(anonymous namespace)" and
 * "operator()" intact: "ns::f<int>(int) const" gives "ns::f<int>". */
static void strip_parameters(const char *name, char *out, size_t cap)
{
    int depth = 0;
    size_t cut = strlen(name);
    for (size_t i = 0; name[i]; i++) {
        char c = name[i];
        if (c == '<')
            depth++;
        else if (c == '>' && depth > 0)
            depth--;
        else if (c == '(' && depth == 0) {
            if (anonymous_namespace_at(name, i)) {
                i += 20;
                continue;
            }
            if (i >= 8 && !strncmp(name + i - 8, "operator", 8) && name[i + 1] == ')') {
                i++; /* "operator()" is a name */
                continue;
            }
            cut = i;
            break;
        }
    }
    if (cut >= cap)
        cut = cap - 1;
    memcpy(out, name, cut);
    out[cut] = '\0';
}

/* Returns where the qualified name starts in a name without parameters:
 * after the return type that template specializations carry ("void
 * std::vector<int>::_M_realloc_insert<int>" gives "std::vector..."). The
 * space inside "operator new" does not count. */
static const char *skip_return_type(const char *bare)
{
    int depth = 0;
    const char *start = bare;
    for (const char *p = bare; *p; p++) {
        if (*p == '<' || *p == '(')
            depth++;
        else if ((*p == '>' || *p == ')') && depth > 0)
            depth--;
        else if (*p == ' ' && depth == 0 && !(p - bare >= 8 && !strncmp(p - 8, "operator", 8)))
            start = p + 1;
    }
    return start;
}

/* Tells whether a frame is an allocation wrapper; see replay.h. */
bool mt__frame_is_wrapper(const mt_frame_t *f, const mt_patterns_t *wrappers)
{
    if (!f->function || !wrappers)
        return false;
    char bare[1024];
    strip_parameters(f->function, bare, sizeof bare);
    const char *qualified = skip_return_type(bare);
    for (size_t i = 0; i < wrappers->n; i++) {
        const char *glob = wrappers->items[i];
        if (!fnmatch(glob, f->function, 0) || !fnmatch(glob, bare, 0) || !fnmatch(glob, qualified, 0))
            return true;
    }
    return false;
}

/* Drops template arguments: "std::vector<int>::push_back" gives
 * "std::vector<>::push_back". */
static void drop_templates(const char *in, char *out, size_t cap)
{
    int depth = 0;
    size_t o = 0;
    for (const char *p = in; *p && o + 1 < cap; p++) {
        if (*p == '<' && !(p - in >= 8 && !strncmp(p - 8, "operator", 8))) {
            if (depth++ == 0)
                out[o++] = '<';
            continue;
        }
        if (*p == '>' && depth > 0) {
            if (--depth == 0 && o + 1 < cap)
                out[o++] = '>';
            continue;
        }
        if (!depth)
            out[o++] = *p;
    }
    out[o] = '\0';
}

/* Shortens a function name for text; see replay.h. */
const char *mt__short_function(const char *name, size_t max, char *buf, size_t cap)
{
    if (!name)
        return "??";
    if (strlen(name) <= max)
        return name;
    char bare[1024], tmp[1024];
    strip_parameters(name, bare, sizeof bare);
    snprintf(tmp, sizeof tmp, "%s", skip_return_type(bare));
    if (strlen(tmp) > max) {
        drop_templates(tmp, bare, sizeof bare);
        snprintf(tmp, sizeof tmp, "%s", bare);
    }
    if (strlen(tmp) > max && max > 3 && max < sizeof tmp) {
        tmp[max - 3] = '\0';
        strcat(tmp, "...");
    }
    snprintf(buf, cap, "%s", tmp);
    return buf;
}

/* Picks the headline frame; see replay.h. */
size_t mt__headline(const mt_frame_t *frames, size_t n, const mt_patterns_t *wrappers)
{
    size_t first_outside = SIZE_MAX;
    for (size_t i = 0; i < n; i++) {
        if (mt__frame_is_memtrack(&frames[i]))
            continue;
        if (first_outside == SIZE_MAX)
            first_outside = i;
        if (!mt__frame_is_wrapper(&frames[i], wrappers))
            return i;
    }
    return first_outside == SIZE_MAX ? 0 : first_outside;
}

/* ---- suppressions ---- */

/* One-time allocations of the C and C++ runtimes that are never freed by
 * design: stdio buffers, locale data, TLS and ld.so's own tables, atexit
 * lists, NSS modules, the C++ exception emergency pool, the result buffers
 * of getpwuid and its kin. */
static const char *const default_suppressions[] = {
    "_IO_file_doallocate", "^_IO_setb",
    "^_dl_", "^__tls_get_addr", "^__libc_early_init", "^__libc_setlocale", "^setlocale",
    "^_nl_", "^__tzfile_read", "^tzset_internal", "^__tzset",
    "^__nss_", "^nss_", "^__new_exitfn", "^__cxa_thread_atexit_impl", "^__gconv",
    "^(anonymous namespace)::pool::pool", "^__cxa_get_globals", "^__libc_dlopen_mode",
    "^__libc_alloc_buffer", "^_IO_vtable_check",
    /* Static result buffers of the non-reentrant lookups: allocated once, reused. */
    "^getpwuid$", "^getpwnam$", "^getgrgid$", "^getgrnam$", "^getpwent$", "^getgrent$",
    "^gethostbyname$", "^gethostbyname2$", "^gethostbyaddr$", "^getservbyname$", "^getprotobyname$",
};

/* Appends the built-in suppressions; see replay.h. */
int mt__suppressions_add_defaults(mt_patterns_t *s)
{
    return add_all(s, default_suppressions, sizeof default_suppressions / sizeof default_suppressions[0]);
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

/* Loads a LeakSanitizer suppression file; see replay.h. */
int mt__suppressions_load(mt_patterns_t *s, const char *path, char *err, size_t errlen)
{
    int rc = 0;
    char *line = NULL;
    size_t cap = 0;
    unsigned lineno = 0;
    FILE *f = fopen(path, "r");
    if (!f) {
        rc = -errno;
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        goto fail;
    }
    while (getline(&line, &cap, f) >= 0) {
        lineno++;
        char *l = trim(line);
        if (!*l || *l == '#')
            continue;
        char *colon = strchr(l, ':');
        if (!colon || colon == l) {
            rc = -EINVAL;
            snprintf(err, errlen, "%s:%u: not a suppression (expected leak:PATTERN)", path, lineno);
            goto fail;
        }
        *colon = '\0';
        const char *type = trim(l), *pattern = trim(colon + 1);
        if (strcmp(type, "leak"))
            continue; /* another sanitizer's suppression */
        if (!*pattern) {
            rc = -EINVAL;
            snprintf(err, errlen, "%s:%u: empty leak pattern", path, lineno);
            goto fail;
        }
        if ((rc = mt__patterns_add(s, pattern)) < 0) {
            snprintf(err, errlen, "%s: out of memory", path);
            goto fail;
        }
    }
    if (ferror(f)) {
        rc = -EIO;
        snprintf(err, errlen, "%s: read error", path);
        goto fail;
    }
fail:
    free(line);
    if (f)
        fclose(f);
    return rc;
}

/* Finds needle (len bytes) in haystack. */
static const char *find_part(const char *haystack, const char *needle, size_t len)
{
    if (!len)
        return haystack;
    for (const char *p = haystack; *p; p++)
        if (!strncmp(p, needle, len))
            return p;
    return NULL;
}

/* LeakSanitizer's TemplateMatch; see replay.h. */
bool mt__suppression_match(const char *pattern, const char *text)
{
    if (!text || !*text)
        return false;
    const char *t = pattern;
    const char *s = text;
    bool anchored = false, asterisk = false;
    if (*t == '^') {
        anchored = true;
        t++;
    }
    while (*t) {
        if (*t == '*') {
            t++;
            anchored = false;
            asterisk = true;
            continue;
        }
        if (*t == '$')
            return !*s || asterisk;
        if (!*s)
            return false;
        size_t len = strcspn(t, "*$");
        const char *at = find_part(s, t, len);
        if (!at || (anchored && at != s))
            return false;
        s = at + len;
        t += len;
        anchored = false;
        asterisk = false;
    }
    return true;
}

/* Finds the first suppression matching a stack; see replay.h. */
const char *mt__suppressed_by(const mt_frame_t *frames, size_t n, const mt_patterns_t *s)
{
    if (!s)
        return NULL;
    for (size_t k = 0; k < s->n; k++)
        for (size_t i = 0; i < n; i++) {
            const mt_frame_t *f = &frames[i];
            if (mt__suppression_match(s->items[k], f->function) || mt__suppression_match(s->items[k], f->file) ||
                mt__suppression_match(s->items[k], f->module))
                return s->items[k];
        }
    return NULL;
}

/* ---- grouping ---- */

typedef struct strbuf {
    char *p;
    size_t n, cap;
    bool failed;
} strbuf_t;

static void sb_add(strbuf_t *b, const char *s, size_t len)
{
    if (b->failed)
        return;
    if (b->n + len + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 128;
        while (b->n + len + 1 > cap)
            cap *= 2;
        char *np = realloc(b->p, cap);
        if (!np) {
            b->failed = true;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, len);
    b->n += len;
    b->p[b->n] = '\0';
}

static void sb_str(strbuf_t *b, const char *s) { sb_add(b, s ? s : "", s ? strlen(s) : 0); }

/* Adds one frame's identity: function (module offset when it is unknown:
 * offsets, unlike addresses, are the same in every process), optionally the
 * source file and line, and the module. */
static void key_frame(strbuf_t *b, const mt_frame_t *f, bool with_file, bool with_line)
{
    char num[32];
    if (f->function) {
        sb_str(b, f->function);
    } else {
        snprintf(num, sizeof num, "+0x%" PRIx64, f->module ? f->offset : f->address);
        sb_str(b, num);
    }
    sb_add(b, "\x1f", 1);
    if (with_file)
        sb_str(b, f->file);
    sb_add(b, "\x1f", 1);
    if (with_line) {
        snprintf(num, sizeof num, "%" PRIu32, f->line);
        sb_str(b, num);
    }
    sb_add(b, "\x1f", 1);
    sb_str(b, f->module);
    sb_add(b, "\x1e", 1);
}

/* Builds a grouping key; see replay.h. */
char *mt__site_key(const mt_frame_t *frames, size_t n, size_t headline, mt_group_by_t by)
{
    strbuf_t b = {0};
    sb_add(&b, "", 0);
    if (by == MT_GROUP_STACK) {
        for (size_t i = 0; i < n; i++)
            key_frame(&b, &frames[i], true, false);
    } else if (headline < n) {
        key_frame(&b, &frames[headline], by == MT_GROUP_LINE, by == MT_GROUP_LINE);
    }
    if (b.failed) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* Adds b's numbers to a's; see replay.h. */
void mt__row_stats_add(mt_row_stats_t *a, const mt_row_stats_t *b)
{
    a->allocations += b->allocations;
    a->bytes_allocated += b->bytes_allocated;
    a->frees += b->frees;
    a->bytes_freed += b->bytes_freed;
    a->peak_bytes += b->peak_bytes;
    a->peak_allocations += b->peak_allocations;
    a->leaked_bytes += b->leaked_bytes;
    a->leaked_allocations += b->leaked_allocations;
    a->suppressed_bytes += b->suppressed_bytes;
    a->suppressed_allocations += b->suppressed_allocations;
    a->temporary_allocations += b->temporary_allocations;
    a->temporary_bytes += b->temporary_bytes;
}

static int index_grow(mt_rows_t *rows)
{
    size_t cap = rows->index_cap ? rows->index_cap * 2 : 64;
    size_t *ni = calloc(cap, sizeof *ni);
    if (!ni)
        return -ENOMEM;
    for (size_t r = 0; r < rows->n; r++) {
        if (!rows->items[r].key)
            continue;
        size_t i = (size_t)hash_str(rows->items[r].key) & (cap - 1);
        while (ni[i])
            i = (i + 1) & (cap - 1);
        ni[i] = r + 1;
    }
    free(rows->index);
    rows->index = ni;
    rows->index_cap = cap;
    return 0;
}

/* Adds a site to its row; see replay.h. */
long mt__rows_add(mt_rows_t *rows, const char *key, size_t proc, uint32_t stack, const mt_frame_t *frames,
                  size_t nframes, size_t headline, const mt_row_stats_t *stats)
{
    size_t slot = 0;
    if (key) {
        if ((rows->n + 1) * 2 > rows->index_cap && index_grow(rows) < 0)
            return -ENOMEM;
        size_t mask = rows->index_cap - 1;
        slot = (size_t)hash_str(key) & mask;
        for (; rows->index[slot]; slot = (slot + 1) & mask) {
            mt_row_t *row = &rows->items[rows->index[slot] - 1];
            if (!strcmp(row->key, key)) {
                mt__row_stats_add(&row->stats, stats);
                row->members++;
                return (long)(rows->index[slot] - 1);
            }
        }
    }
    if (rows->n == rows->cap) {
        size_t cap = rows->cap ? rows->cap * 2 : 64;
        mt_row_t *ni = realloc(rows->items, cap * sizeof *ni);
        if (!ni)
            return -ENOMEM;
        rows->items = ni;
        rows->cap = cap;
    }
    mt_row_t row = {.proc = proc, .stack = stack, .members = 1, .headline = headline, .stats = *stats};
    if (key && !(row.key = strdup(key)))
        return -ENOMEM;
    if (frames && nframes) {
        row.frames = malloc(nframes * sizeof *row.frames);
        if (!row.frames) {
            free(row.key);
            return -ENOMEM;
        }
        memcpy(row.frames, frames, nframes * sizeof *row.frames);
        row.nframes = nframes;
    }
    rows->items[rows->n] = row;
    if (key)
        rows->index[slot] = rows->n + 1;
    return (long)rows->n++;
}

/* Frees rows; see replay.h. */
void mt__rows_free(mt_rows_t *rows)
{
    for (size_t i = 0; i < rows->n; i++) {
        free(rows->items[i].key);
        free(rows->items[i].frames);
    }
    free(rows->items);
    free(rows->index);
    *rows = (mt_rows_t){0};
}

/* ---- sorting ---- */

static const char *const sort_names[MT_SORT_COUNT] = {"peak", "leaked", "allocations", "temporary", "bytes"};

/* Parses a sort key name; see replay.h. */
int mt__sort_key_parse(const char *name, mt_sort_key_t *out)
{
    for (int k = 0; k < MT_SORT_COUNT; k++)
        if (!strcmp(name, sort_names[k])) {
            *out = (mt_sort_key_t)k;
            return 0;
        }
    return -EINVAL;
}

/* Names a sort key; see replay.h. */
const char *mt__sort_key_name(mt_sort_key_t key)
{
    return key < MT_SORT_COUNT ? sort_names[key] : "?";
}

/* Returns the number a row sorts by; see replay.h. */
uint64_t mt__row_metric(const mt_row_t *row, mt_sort_key_t key)
{
    switch (key) {
    case MT_SORT_PEAK: return row->stats.peak_bytes;
    case MT_SORT_LEAKED: return row->stats.leaked_bytes;
    case MT_SORT_ALLOCATIONS: return row->stats.allocations;
    case MT_SORT_TEMPORARY: return row->stats.temporary_allocations;
    case MT_SORT_BYTES: return row->stats.bytes_allocated;
    default: return 0;
    }
}

/* qsort has no context argument in C11; the sort runs on one thread. */
static const mt_rows_t *sort_rows;
static mt_sort_key_t sort_key;

static int cmp_u64(uint64_t a, uint64_t b) { return a > b ? -1 : a < b ? 1 : 0; }

static int compare_rows(const void *pa, const void *pb)
{
    const mt_row_t *a = &sort_rows->items[*(const size_t *)pa];
    const mt_row_t *b = &sort_rows->items[*(const size_t *)pb];
    int c = cmp_u64(mt__row_metric(a, sort_key), mt__row_metric(b, sort_key));
    for (int k = 0; !c && k < MT_SORT_COUNT; k++)
        c = cmp_u64(mt__row_metric(a, (mt_sort_key_t)k), mt__row_metric(b, (mt_sort_key_t)k));
    if (!c)
        c = a->proc < b->proc ? -1 : a->proc > b->proc;
    if (!c)
        c = a->stack < b->stack ? -1 : a->stack > b->stack;
    return c;
}

/* Sorts row numbers; see replay.h. */
void mt__rows_sort(const mt_rows_t *rows, size_t *idx, size_t n, mt_sort_key_t key)
{
    sort_rows = rows;
    sort_key = key;
    qsort(idx, n, sizeof *idx, compare_rows);
    sort_rows = NULL;
}

/* ---- symbolization ---- */

/* Symbolizes a whole stack; see replay.h. */
int mt__symbolize_stack(mt_symbolizer_t *s, const mt_trace_t *t, uint32_t stack, mt_frame_t **frames, size_t *n)
{
    *frames = NULL;
    *n = 0;
    const mt_stack_t *st = stack == MT_REPLAY_NO_STACK ? NULL : mt__trace_stack(t, stack);
    if (!st || !st->depth)
        return 0;
    size_t cap = st->depth + 4;
    mt_frame_t *out = malloc(cap * sizeof *out);
    if (!out)
        return -ENOMEM;
    size_t count = 0;
    for (uint32_t i = 0; i < st->depth; i++) {
        const mt_frame_t *fr;
        size_t k;
        mt__symbolize(s, st->frames[i], st->epoch, &fr, &k);
        if (count + k > cap) {
            while (count + k > cap)
                cap *= 2;
            mt_frame_t *grown = realloc(out, cap * sizeof *grown);
            if (!grown) {
                free(out);
                return -ENOMEM;
            }
            out = grown;
        }
        memcpy(out + count, fr, k * sizeof *fr);
        count += k;
    }
    *frames = out;
    *n = count;
    return 0;
}

/* ---- units ---- */

/* Formats a size; see replay.h. */
char *mt__format_size(uint64_t bytes, char *buf, size_t cap)
{
    static const char *const units[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    if (bytes < 1024) {
        snprintf(buf, cap, "%" PRIu64 " B", bytes);
        return buf;
    }
    double v = (double)bytes;
    size_t u = 0;
    v /= 1024;
    while (v >= 1024 && u + 1 < sizeof units / sizeof units[0]) {
        v /= 1024;
        u++;
    }
    /* 1.2 MiB, 12.3 MiB, 123 MiB: enough to compare, short enough to scan. */
    if (v < 99.95)
        snprintf(buf, cap, "%.1f %s", v, units[u]);
    else
        snprintf(buf, cap, "%.0f %s", v, units[u]);
    return buf;
}

/* Formats a count with separators; see replay.h. */
char *mt__format_count(uint64_t n, char *buf, size_t cap)
{
    char digits[32];
    int len = snprintf(digits, sizeof digits, "%" PRIu64, n);
    char out[48];
    size_t o = 0;
    for (int i = 0; i < len; i++) {
        if (i && (len - i) % 3 == 0)
            out[o++] = ',';
        out[o++] = digits[i];
    }
    out[o] = '\0';
    snprintf(buf, cap, "%s", out);
    return buf;
}

/* Formats a duration; see replay.h. */
char *mt__format_duration(uint64_t ns, char *buf, size_t cap)
{
    if (ns < 1000)
        snprintf(buf, cap, "%" PRIu64 " ns", ns);
    else if (ns < 1000000)
        snprintf(buf, cap, "%.1f us", (double)ns / 1e3);
    else if (ns < 1000000000)
        snprintf(buf, cap, "%.1f ms", (double)ns / 1e6);
    else
        snprintf(buf, cap, "%.2f s", (double)ns / 1e9);
    return buf;
}

/* ---- JSON output ---- */

/* Adds an exact integer; see replay.h. */
bool mt__json_u64(cJSON *obj, const char *name, uint64_t v)
{
    char buf[24];
    snprintf(buf, sizeof buf, "%" PRIu64, v);
    return cJSON_AddRawToObject(obj, name, buf) != NULL;
}

/* Adds a hexadecimal string; see replay.h. */
bool mt__json_hex(cJSON *obj, const char *name, uint64_t v)
{
    char buf[24];
    snprintf(buf, sizeof buf, "0x%" PRIx64, v);
    return cJSON_AddStringToObject(obj, name, buf) != NULL;
}

/* Adds a string or null; see replay.h. */
bool mt__json_str(cJSON *obj, const char *name, const char *s)
{
    return (s ? cJSON_AddStringToObject(obj, name, s) : cJSON_AddNullToObject(obj, name)) != NULL;
}

/* Adds a line number or null; see replay.h. */
bool mt__json_line(cJSON *obj, const char *name, uint32_t line)
{
    return line ? mt__json_u64(obj, name, line) : cJSON_AddNullToObject(obj, name) != NULL;
}

/* Builds a frame object; see replay.h. */
cJSON *mt__json_frame(const mt_frame_t *f)
{
    cJSON *o = cJSON_CreateObject();
    bool ok = o && mt__json_str(o, "function", f->function) && mt__json_str(o, "file", f->file) &&
              mt__json_line(o, "line", f->line) && mt__json_str(o, "module", f->module) &&
              mt__json_hex(o, "address", f->address) && mt__json_hex(o, "offset", f->offset) &&
              cJSON_AddBoolToObject(o, "inlined", f->inlined);
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}
