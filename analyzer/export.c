/* export.c - one replay of a trace for the export commands: timeline points, range data, call trees.
 *
 * The trace is fed to the replay engine event by event (mt__replay_feed),
 * so that the live heap can be sampled after each event without touching
 * the engine. The timeline is bounded: when the trace holds more events
 * than max_points, the run is cut into max_points / 2 spans of equal seq
 * width and only the lowest and the highest point of each span are kept
 * (the first of equals). The global peak is the highest point of its span,
 * so it is always kept exactly; snapshot markers get a point of their own.
 *
 * The range data answers "what was allocated between A and B and is still
 * live at B" for any pair of buckets: blocks grouped by (stack, bucket of
 * their allocation, bucket of their free). Blocks freed in the bucket they
 * were allocated in can never be part of such an answer and are not kept,
 * which is what keeps this small for programs that free what they allocate.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "export.h"

static const char *const metric_names[MT_METRIC_COUNT] = {"peak", "leaked", "allocations", "temporary"};

/* Parses a metric name; see export.h. */
int mt__metric_parse(const char *name, mt_metric_t *out)
{
    for (int i = 0; i < MT_METRIC_COUNT; i++)
        if (!strcmp(name, metric_names[i])) {
            *out = (mt_metric_t)i;
            return 0;
        }
    return -EINVAL;
}

/* Returns a metric's name; see export.h. */
const char *mt__metric_name(mt_metric_t m)
{
    return m < MT_METRIC_COUNT ? metric_names[m] : "?";
}

/* ---- output ---- */

/* Opens the output file; see export.h. */
FILE *mt__export_open_output(const char *path)
{
    if (!path || !strcmp(path, "-"))
        return stdout;
    FILE *f = fopen(path, "w");
    if (!f)
        fprintf(stderr, "memtrack: %s: cannot write: %s\n", path, strerror(errno));
    return f;
}

/* Flushes and closes the output; see export.h. */
int mt__export_close_output(FILE *out, const char *path)
{
    const char *name = out == stdout ? "standard output" : path;
    int bad = fflush(out) != 0 || ferror(out);
    int err = errno;
    if (out != stdout && fclose(out) != 0 && !bad) {
        bad = 1;
        err = errno;
    }
    if (bad) {
        fprintf(stderr, "memtrack: %s: write error: %s\n", name, strerror(err));
        return -EIO;
    }
    return 0;
}

/* Prints "memtrack CMD: message" and the hint to --help; returns exit status 2. */
int mt__export_bad_usage(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "memtrack %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (try 'memtrack %s --help')\n", cmd);
    return MT_EXIT_BAD_INPUT;
}

/* Parses a count option; see export.h. */
int mt__export_parse_count(const char *cmd, const char *option, const char *value, size_t min, size_t max,
                           size_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(value, &end, 10);
    if (!*value || *end || errno || value[0] == '-' || v < min || v > max) {
        mt__export_bad_usage(cmd, "%s wants a number from %zu to %zu, not '%s'", option, min, max, value);
        return -EINVAL;
    }
    *out = (size_t)v;
    return 0;
}

/* Runs the common end of an export command; see export.h. */
int mt__export_main(const char *cmd, int argc, char **argv, int first, const char *output,
                    const mt_export_options_t *opt, mt_export_write_fn write, void *ctx)
{
    if (first != argc - 1)
        return mt__export_bad_usage(cmd, first >= argc ? "no trace given" : "one trace at a time");
    int status = MT_EXIT_BAD_INPUT;
    mt_export_t x;
    FILE *out = mt__export_open_output(output);
    if (!out)
        return status;
    if (mt__export_load(&x, argv[first], opt) < 0)
        goto done;
    if (x.info->flags & MT_TRACE_F_SAMPLED)
        fprintf(stderr, "memtrack %s: note: %s is sampled (about one allocation per %" PRIu64
                        " bytes): the values are estimates\n", cmd, argv[first], x.info->sample_bytes);
    int rc = write(out, &x, ctx);
    if (rc == -ENOMEM)
        fprintf(stderr, "memtrack: out of memory\n");
    if (rc < 0)
        goto done;
    status = MT_EXIT_OK;
done:
    if (mt__export_close_output(out, output) < 0)
        status = MT_EXIT_BAD_INPUT;
    mt__export_free(&x);
    return status;
}

/* ---- timeline ---- */

typedef struct sampler {
    bool every;         /* one point per event */
    uint64_t span;      /* seq width of a span */
    uint64_t span_no;   /* the span lo and hi belong to */
    bool have;
    mt_tl_point_t lo, hi;
} sampler_t;

static int push_point(mt_export_t *x, const mt_tl_point_t *p)
{
    if (x->npoints == x->points_cap) {
        size_t cap = x->points_cap ? x->points_cap * 2 : 256;
        mt_tl_point_t *np = realloc(x->points, cap * sizeof *np);
        if (!np)
            return -ENOMEM;
        x->points = np;
        x->points_cap = cap;
    }
    x->points[x->npoints++] = *p;
    return 0;
}

static int flush_span(mt_export_t *x, sampler_t *s)
{
    if (!s->have)
        return 0;
    s->have = false;
    const mt_tl_point_t *a = s->lo.seq <= s->hi.seq ? &s->lo : &s->hi;
    const mt_tl_point_t *b = a == &s->lo ? &s->hi : &s->lo;
    int rc = push_point(x, a);
    if (rc == 0 && b->seq != a->seq)
        rc = push_point(x, b);
    return rc;
}

static int sample(mt_export_t *x, sampler_t *s, const mt_tl_point_t *p)
{
    if (s->every)
        return push_point(x, p);
    uint64_t no = p->seq / s->span;
    if (s->have && no != s->span_no) {
        int rc = flush_span(x, s);
        if (rc < 0)
            return rc;
    }
    if (!s->have) {
        s->have = true;
        s->span_no = no;
        s->lo = s->hi = *p;
        return 0;
    }
    if (p->live_bytes < s->lo.live_bytes)
        s->lo = *p;
    if (p->live_bytes > s->hi.live_bytes)
        s->hi = *p;
    return 0;
}

/* ---- range data ---- */

static uint64_t mix64(uint64_t v)
{
    v ^= v >> 33;
    v *= 0xff51afd7ed558ccdull;
    v ^= v >> 33;
    v *= 0xc4ceb9fe1a85ec53ull;
    v ^= v >> 33;
    return v;
}

/* Returns the bucket of seq; see export.h. */
uint32_t mt__export_bucket(const mt_export_t *x, uint64_t seq)
{
    uint64_t b = seq / x->bucket_span;
    return (uint32_t)(b < x->nbuckets ? b : x->nbuckets - 1);
}

static int range_add(mt_export_t *x, const mt_block_t *b, uint32_t free_bucket)
{
    uint32_t ab = mt__export_bucket(x, b->seq);
    if (free_bucket <= ab)
        return 0;
    if ((x->nrange + 1) * 2 > x->range_index_cap) {
        size_t cap = x->range_index_cap ? x->range_index_cap * 2 : 1024;
        uint32_t *ni = calloc(cap, sizeof *ni);
        if (!ni)
            return -ENOMEM;
        for (size_t i = 0; i < x->nrange; i++) {
            const mt_range_entry_t *e = &x->range[i];
            size_t j = mix64(((uint64_t)e->stack << 32) ^ ((uint64_t)e->alloc_bucket << 16) ^ e->free_bucket) & (cap - 1);
            while (ni[j])
                j = (j + 1) & (cap - 1);
            ni[j] = (uint32_t)i + 1;
        }
        free(x->range_index);
        x->range_index = ni;
        x->range_index_cap = cap;
    }
    size_t mask = x->range_index_cap - 1;
    size_t j = mix64(((uint64_t)b->stack << 32) ^ ((uint64_t)ab << 16) ^ free_bucket) & mask;
    while (x->range_index[j]) {
        mt_range_entry_t *e = &x->range[x->range_index[j] - 1];
        if (e->stack == b->stack && e->alloc_bucket == ab && e->free_bucket == free_bucket) {
            e->bytes += b->size;
            e->blocks += b->weight;
            return 0;
        }
        j = (j + 1) & mask;
    }
    if (x->nrange == x->range_cap) {
        size_t cap = x->range_cap ? x->range_cap * 2 : 256;
        mt_range_entry_t *nr = realloc(x->range, cap * sizeof *nr);
        if (!nr)
            return -ENOMEM;
        x->range = nr;
        x->range_cap = cap;
    }
    x->range[x->nrange] = (mt_range_entry_t){b->stack, ab, free_bucket, b->size, b->weight};
    x->range_index[j] = (uint32_t)++x->nrange;
    return 0;
}

static int range_add_live(void *ctx, const mt_block_t *b)
{
    mt_export_t *x = ctx;
    return range_add(x, b, (uint32_t)x->nbuckets);
}

/* ---- loading ---- */

static int replay_all(mt_export_t *x, const mt_export_options_t *opt)
{
    const mt_trace_info_t *in = x->info;
    sampler_t s = {.every = !opt->max_points || in->events <= opt->max_points};
    x->downsampled = !s.every;
    if (!s.every) {
        size_t spans = opt->max_points / 2 ? opt->max_points / 2 : 1;
        s.span = in->last_seq / spans + 1;
    }
    if (opt->range_buckets) {
        x->nbuckets = opt->range_buckets;
        x->bucket_span = in->last_seq / x->nbuckets + 1;
    }
    mt_event_t ev;
    int rc;
    mt__trace_rewind(x->trace);
    while ((rc = mt__trace_next(x->trace, &ev)) > 0) {
        if (x->nbuckets && ev.op != MT_EV_MARKER && (mt_op_allocates(ev.op) || mt_op_frees(ev.op))) {
            const mt_block_t *b = mt__replay_block(x->replay, mt_event_ends(&ev));
            if (b && (rc = range_add(x, b, mt__export_bucket(x, ev.seq))) < 0)
                return rc;
        }
        if ((rc = mt__replay_feed(x->replay, &ev)) < 0)
            return rc;
        const mt_totals_t *t = x->totals;
        mt_tl_point_t p = {
            .seq = ev.seq,
            .live_bytes = t->live_bytes,
            .live_allocations = t->live_allocations,
            .allocations = t->allocations,
            .bytes_allocated = t->bytes_allocated,
            .snapshot = -1,
        };
        if (ev.op == MT_EV_MARKER) {
            size_t n;
            mt__replay_snapshots(x->replay, &n);
            p.snapshot = (long)n - 1;
            if ((rc = flush_span(x, &s)) < 0 || (rc = push_point(x, &p)) < 0)
                return rc;
        } else if (mt_op_allocates(ev.op) || mt_op_frees(ev.op)) {
            if ((rc = sample(x, &s, &p)) < 0)
                return rc;
        }
    }
    if (rc < 0)
        return rc;
    if ((rc = flush_span(x, &s)) < 0)
        return rc;
    mt__replay_finish(x->replay);
    if (x->nbuckets && (rc = mt__replay_foreach_live(x->replay, range_add_live, x)) < 0)
        return rc;
    /* Every point, markers included, takes its time from the same
     * interpolation between TIME records, so that times never go back
     * (a marker's own clock reading may be finer than its neighbours'). */
    for (size_t i = 0; i < x->npoints; i++) {
        mt_tl_point_t *p = &x->points[i];
        p->time_ns = mt__trace_time_of(x->trace, p->seq);
        if (i && p->time_ns < p[-1].time_ns)
            p->time_ns = p[-1].time_ns;
        if (p->snapshot < 0 && p->seq == x->totals->peak_seq && x->totals->peak_bytes)
            x->peak_point = i;
    }
    return 0;
}

/* Opens and replays a trace; see export.h. */
int mt__export_load(mt_export_t *x, const char *path, const mt_export_options_t *opt)
{
    char err[512];
    *x = (mt_export_t){.path = path};
    int rc = mt__trace_open(path, &x->trace, err, sizeof err);
    if (rc < 0) {
        size_t n = strlen(path);
        const char *msg = err[0] ? err : strerror(-rc);
        if (!strncmp(msg, path, n) && msg[n] == ':')
            fprintf(stderr, "memtrack: %s\n", msg);
        else
            fprintf(stderr, "memtrack: %s: %s\n", path, msg);
        return rc;
    }
    x->info = mt__trace_info(x->trace);
    mt_replay_options_t ro = {.capture_sites = opt->capture_sites};
    x->replay = mt__replay_new(x->trace, &ro);
    x->sym = mt__symbolizer_new(x->trace);
    x->nstacks = x->info->nstacks;
    x->frames = calloc(x->nstacks + 1, sizeof *x->frames);
    x->nframes = calloc(x->nstacks + 1, sizeof *x->nframes);
    x->have_frames = calloc(x->nstacks + 1, sizeof *x->have_frames);
    if (!x->replay || !x->sym || !x->frames || !x->nframes || !x->have_frames ||
        (!opt->no_default_suppressions && mt__suppressions_add_defaults(&x->suppressions) < 0)) {
        fprintf(stderr, "memtrack: %s: out of memory\n", path);
        return -ENOMEM;
    }
    for (size_t i = 0; i < opt->nsuppression_files; i++) {
        char why[512];
        if ((rc = mt__suppressions_load(&x->suppressions, opt->suppression_files[i], why, sizeof why)) < 0) {
            fprintf(stderr, "memtrack: %s\n", why);
            return rc;
        }
    }
    x->totals = mt__replay_totals(x->replay);
    rc = replay_all(x, opt);
    if (rc == -ENOMEM) {
        fprintf(stderr, "memtrack: %s: out of memory\n", path);
        return rc;
    }
    if (rc < 0) {
        fprintf(stderr, "memtrack: %s\n", mt__trace_error(x->trace));
        return rc;
    }
    return 0;
}

/* Frees an export; see export.h. */
void mt__export_free(mt_export_t *x)
{
    if (x->frames)
        for (size_t i = 0; i <= x->nstacks; i++)
            free(x->frames[i]);
    free(x->frames);
    free(x->nframes);
    free(x->have_frames);
    free(x->points);
    free(x->range);
    free(x->range_index);
    mt__patterns_free(&x->suppressions);
    mt__symbolizer_free(x->sym);
    mt__replay_free(x->replay);
    mt__trace_close(x->trace);
    *x = (mt_export_t){0};
}

/* Returns a stack's frames, cached; see export.h. */
int mt__export_frames(mt_export_t *x, uint32_t stack, const mt_frame_t **frames, size_t *n)
{
    size_t i = stack < x->nstacks ? stack : x->nstacks;
    if (!x->have_frames[i]) {
        int rc = mt__symbolize_stack(x->sym, x->trace, stack, &x->frames[i], &x->nframes[i]);
        if (rc < 0)
            return rc;
        x->have_frames[i] = true;
    }
    *frames = x->frames[i];
    *n = x->nframes[i];
    return 0;
}

/* Stores a site's values; see export.h. */
int mt__export_site_values(mt_export_t *x, const mt_site_t *s, uint64_t values[MT_METRIC_COUNT])
{
    values[MT_METRIC_PEAK] = s->peak_bytes;
    values[MT_METRIC_LEAKED] = s->live_bytes;
    values[MT_METRIC_ALLOCATIONS] = s->allocations;
    values[MT_METRIC_TEMPORARY] = s->temporary_allocations;
    if (s->live_allocations && x->suppressions.n) {
        const mt_frame_t *f;
        size_t n;
        int rc = mt__export_frames(x, s->stack, &f, &n);
        if (rc < 0)
            return rc;
        if (mt__suppressed_by(f, n, &x->suppressions))
            values[MT_METRIC_LEAKED] = 0;
    }
    return 0;
}

/* Formats a frame's name; see export.h. */
const char *mt__frame_name(const mt_frame_t *f, char *buf, size_t cap)
{
    if (f->function)
        snprintf(buf, cap, "%s", f->function);
    else if (f->module) {
        const char *slash = strrchr(f->module, '/');
        snprintf(buf, cap, "%s+0x%llx", slash ? slash + 1 : f->module, (unsigned long long)f->offset);
    } else
        snprintf(buf, cap, "0x%llx", (unsigned long long)f->address);
    return buf;
}

/* ---- call trees ---- */

static uint64_t str_hash(uint64_t h, const char *s)
{
    for (; s && *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return h * 0x100000001b3ull;
}

static uint64_t node_hash(uint32_t parent, const char *name, const char *file, uint32_t line)
{
    uint64_t h = 0xcbf29ce484222325ull ^ parent;
    h = str_hash(h, name);
    h = str_hash(h, file);
    return mix64(h ^ line);
}

static bool same_str(const char *a, const char *b)
{
    return a == b || (a && b && !strcmp(a, b));
}

static int index_grow(mt_tree_t *t)
{
    size_t cap = t->index_cap ? t->index_cap * 2 : 256;
    uint32_t *ni = calloc(cap, sizeof *ni);
    if (!ni)
        return -ENOMEM;
    for (size_t i = 1; i < t->n; i++) {
        const mt_tree_node_t *nd = &t->nodes[i];
        size_t j = node_hash(nd->parent, nd->name, t->by_line ? nd->file : NULL, t->by_line ? nd->line : 0) &
                   (cap - 1);
        while (ni[j])
            j = (j + 1) & (cap - 1);
        ni[j] = (uint32_t)i + 1;
    }
    free(t->index);
    t->index = ni;
    t->index_cap = cap;
    return 0;
}

static long new_node(mt_tree_t *t, uint32_t parent, const char *name, const char *file, uint32_t line,
                     uint64_t address)
{
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 256;
        mt_tree_node_t *nn = realloc(t->nodes, cap * sizeof *nn);
        if (!nn)
            return -ENOMEM;
        t->nodes = nn;
        t->cap = cap;
    }
    char *copy = strdup(name);
    if (!copy)
        return -ENOMEM;
    uint32_t id = (uint32_t)t->n++;
    t->nodes[id] = (mt_tree_node_t){
        .name = copy, .file = file, .line = line, .address = address, .parent = parent,
        .first_child = MT_TREE_NONE, .last_child = MT_TREE_NONE, .next_sibling = MT_TREE_NONE,
    };
    if (parent != MT_TREE_NONE) {
        mt_tree_node_t *p = &t->nodes[parent];
        t->nodes[id].depth = p->depth + 1;
        if (p->last_child == MT_TREE_NONE)
            p->first_child = id;
        else
            t->nodes[p->last_child].next_sibling = id;
        p->last_child = id;
    }
    return id;
}

/* Starts a tree; see export.h. */
int mt__tree_init(mt_tree_t *t, const char *root_name, bool by_line, bool inverted)
{
    *t = (mt_tree_t){.by_line = by_line, .inverted = inverted};
    if (new_node(t, MT_TREE_NONE, root_name, NULL, 0, 0) < 0 || index_grow(t) < 0) {
        mt__tree_free(t);
        return -ENOMEM;
    }
    return 0;
}

/* Frees a tree; see export.h. */
void mt__tree_free(mt_tree_t *t)
{
    for (size_t i = 0; i < t->n; i++)
        free((char *)t->nodes[i].name);
    free(t->nodes);
    free(t->index);
    *t = (mt_tree_t){0};
}

static long child(mt_tree_t *t, uint32_t parent, const char *name, const char *file, uint32_t line,
                  uint64_t address)
{
    /* Without by_line, a node keeps the location of its first call site
     * but frames of one function merge whatever their line. */
    const char *kfile = t->by_line ? file : NULL;
    uint32_t kline = t->by_line ? line : 0;
    if ((t->n + 1) * 2 > t->index_cap && index_grow(t) < 0)
        return -ENOMEM;
    size_t mask = t->index_cap - 1;
    size_t j = node_hash(parent, name, kfile, kline) & mask;
    while (t->index[j]) {
        const mt_tree_node_t *nd = &t->nodes[t->index[j] - 1];
        if (nd->parent == parent && !strcmp(nd->name, name) &&
            (!t->by_line || (nd->line == line && same_str(nd->file, file))))
            return t->index[j] - 1;
        j = (j + 1) & mask;
    }
    long id = new_node(t, parent, name, file, line, address);
    if (id >= 0)
        t->index[j] = (uint32_t)id + 1;
    return id;
}

/* Adds a stack's values to the tree; see export.h. */
long mt__tree_add(mt_tree_t *t, const mt_frame_t *frames, size_t n, const uint64_t values[MT_METRIC_COUNT])
{
    uint32_t at = 0;
    char buf[512];
    size_t used = 0;
    for (size_t k = 0; k < n; k++) {
        const mt_frame_t *f = &frames[t->inverted ? k : n - 1 - k];
        if (mt__frame_is_memtrack(f))
            continue;
        long id = child(t, at, mt__frame_name(f, buf, sizeof buf), f->file, f->line, f->address);
        if (id < 0)
            return id;
        at = (uint32_t)id;
        used++;
    }
    if (!used) {
        long id = child(t, 0, "[unknown]", NULL, 0, 0);
        if (id < 0)
            return id;
        at = (uint32_t)id;
    }
    for (uint32_t i = at; i != MT_TREE_NONE; i = t->nodes[i].parent)
        for (int m = 0; m < MT_METRIC_COUNT; m++)
            t->nodes[i].value[m] += values[m];
    return at;
}

/* Builds the call tree of every site; see export.h. */
int mt__export_tree(mt_export_t *x, mt_tree_t *t, bool by_line)
{
    int rc = mt__tree_init(t, "all", by_line, false);
    if (rc < 0)
        return rc;
    size_t nsites;
    const mt_site_t *sites = mt__replay_sites(x->replay, &nsites);
    for (size_t i = 0; i < nsites; i++) {
        const mt_site_t *s = &sites[i];
        if (!s->allocations && !s->frees)
            continue;
        uint64_t v[MT_METRIC_COUNT];
        const mt_frame_t *f;
        size_t n;
        if ((rc = mt__export_site_values(x, s, v)) < 0 || (rc = mt__export_frames(x, s->stack, &f, &n)) < 0)
            return rc;
        long id = mt__tree_add(t, f, n, v);
        if (id < 0)
            return (int)id;
        sites = mt__replay_sites(x->replay, &nsites);
    }
    return 0;
}

/* Returns a node's self value; see export.h. */
uint64_t mt__tree_self(const mt_tree_t *t, uint32_t node, mt_metric_t m)
{
    uint64_t v = t->nodes[node].value[m];
    for (uint32_t c = t->nodes[node].first_child; c != MT_TREE_NONE; c = t->nodes[c].next_sibling)
        v -= t->nodes[c].value[m];
    return v;
}

/* Adds a --suppressions path; see export.h. */
int mt__export_add_suppressions(mt_export_options_t *opt, const char *path)
{
    if (opt->nsuppression_files == sizeof opt->suppression_files / sizeof opt->suppression_files[0])
        return -E2BIG;
    opt->suppression_files[opt->nsuppression_files++] = path;
    return 0;
}
