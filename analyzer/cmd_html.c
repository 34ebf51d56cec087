/* cmd_html.c - `memtrack html`: one self-contained HTML page with timeline, flame graph and tables.
 *
 * The page is the template analyzer/html/report.html with the style sheet,
 * the script and the data put in its placeholders ({{CSS}}, {{JS}},
 * {{DATA}}, {{TITLE}}); the three asset files are built into the binary
 * (html_assets.c), so the output needs nothing else: no network, no other
 * file. The data is one JSON object, written here with every '<' escaped
 * as \u003c so that no string in it can close the script element.
 *
 * What the page gets is bounded whatever the trace's length: the timeline
 * points (export.c), the call tree (nodes under 0.1% of every metric are
 * left out, and the threshold doubles until at most MAX_NODES remain; the
 * page says how many were left out), the sites table (the top sites of
 * each metric) and the range data (blocks grouped by site and by bucket of
 * allocation and of free). Schema: docs/html-report.md.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "export.h"
#include "budget.h"
#include "html_assets.h"
#include "snapshots.h"

#define MAX_POINTS 4000
#define RANGE_BUCKETS 200
#define MAX_NODES 15000
#define PRUNE_THRESHOLD 0.001
#define SITES_PER_METRIC 150
#define STACK_FRAMES_SHOWN 24
#define MAX_RANGE_ENTRIES 60000
#define MAX_LEAK_CANDIDATES 100

static void usage(FILE *f)
{
    fprintf(f, "usage: memtrack html [OPTIONS] TRACE -o report.html\n"
               "Writes one self-contained HTML page (no network, no other file): the live heap\n"
               "over time with the peak and snapshots, a flame graph by peak, leaked,\n"
               "allocations or temporary allocations, top sites and leak candidates.\n"
               "\n"
               "  -o, --output FILE      write to FILE instead of standard output\n"
               "  --title TEXT           the page's title (default: the program's name)\n"
               "  --budget FILE          add the results of this budget file (docs/ci.md)\n"
               "  --no-default-suppressions  count one-time libc/ld.so allocations as leaks too\n"
               "  --suppressions FILE    LeakSanitizer-style 'leak:PATTERN' lines for the leaked\n"
               "                         bytes (repeatable)\n"
               "  -h, --help             print this help\n"
               "\n"
               "Exit status: 0 success, 2 bad usage or bad input.\n");
}

/* ---- a growable string for the JSON ---- */

typedef struct sb {
    char *s;
    size_t n, cap;
    bool oom;
} sb_t;

static void sb_reserve(sb_t *b, size_t more)
{
    if (b->oom || b->n + more + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 4096;
    while (b->n + more + 1 > cap)
        cap *= 2;
    char *ns = realloc(b->s, cap);
    if (!ns) {
        b->oom = true;
        return;
    }
    b->s = ns;
    b->cap = cap;
}

static void sb_put(sb_t *b, const char *s, size_t n)
{
    sb_reserve(b, n);
    if (b->oom)
        return;
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = '\0';
}

static void sb_puts(sb_t *b, const char *s) { sb_put(b, s, strlen(s)); }

__attribute__((format(printf, 2, 3))) static void sb_printf(sb_t *b, const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof buf) {
        sb_put(b, buf, (size_t)n);
        return;
    }
    sb_reserve(b, (size_t)n);
    if (b->oom)
        return;
    va_start(ap, fmt);
    vsnprintf(b->s + b->n, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->n += (size_t)n;
}

/* Appends s as a JSON string (null for NULL), '<' and '>' as \u escapes so
 * that nothing in the data can end the script element that holds it. */
static void sb_json_str(sb_t *b, const char *s)
{
    if (!s) {
        sb_puts(b, "null");
        return;
    }
    sb_puts(b, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            char esc[2] = {'\\', (char)*p};
            sb_put(b, esc, 2);
        } else if (*p < 0x20 || *p == '<' || *p == '>' || *p == '&' || *p == 0x7f) {
            sb_printf(b, "\\u%04x", *p);
        } else {
            sb_put(b, (const char *)p, 1);
        }
    }
    sb_puts(b, "\"");
}

static void sb_key(sb_t *b, const char *key)
{
    if (b->n && b->s[b->n - 1] != '{' && b->s[b->n - 1] != '[')
        sb_puts(b, ",");
    sb_json_str(b, key);
    sb_puts(b, ":");
}

static void sb_u64(sb_t *b, const char *key, uint64_t v)
{
    sb_key(b, key);
    sb_printf(b, "%" PRIu64, v);
}

static void sb_kstr(sb_t *b, const char *key, const char *s)
{
    sb_key(b, key);
    sb_json_str(b, s);
}

static void sb_sep(sb_t *b, size_t i)
{
    if (i)
        sb_puts(b, ",");
}

/* ---- the page's data ---- */

typedef struct html {
    mt_export_t *x;
    sb_t b;
    mt_patterns_t wrappers;
    long *site_of_stack;   /* index in the sites table per stack id (+1 for no stack), or -1 */
    const char *title;
    const char *budget_path;
    const mt_budget_set_t *budgets; /* NULL without --budget */
} html_t;

/* What the command passes to write_html. */
typedef struct html_args {
    const char *title;
    const char *budget_path;
    mt_budget_set_t budgets;
    bool have_budgets;
} html_args_t;

static void put_process(html_t *h)
{
    const mt_trace_info_t *in = h->x->info;
    sb_t *b = &h->b;
    sb_key(b, "process");
    sb_puts(b, "{");
    sb_kstr(b, "exe", in->exe);
    sb_kstr(b, "command", in->command);
    sb_u64(b, "pid", in->pid);
    sb_kstr(b, "trace", h->x->path);
    sb_u64(b, "duration_ns", in->duration_ns);
    sb_u64(b, "dropped_events", in->dropped);
    sb_key(b, "complete");
    sb_puts(b, in->complete ? "true" : "false");
    sb_key(b, "sampled");
    sb_puts(b, (in->flags & MT_TRACE_F_SAMPLED) ? "true" : "false");
    sb_puts(b, "}");
    const mt_totals_t *t = h->x->totals;
    uint64_t suppressed = 0;
    size_t n;
    const mt_site_t *sites = mt__replay_sites(h->x->replay, &n);
    for (size_t i = 0; i < n; i++) {
        uint64_t v[MT_METRIC_COUNT];
        if (sites[i].live_bytes && mt__export_site_values(h->x, &sites[i], v) == 0)
            suppressed += sites[i].live_bytes - v[MT_METRIC_LEAKED];
        sites = mt__replay_sites(h->x->replay, &n);
    }
    sb_key(b, "totals");
    sb_puts(b, "{");
    sb_u64(b, "events", t->events);
    sb_u64(b, "allocations", t->allocations);
    sb_u64(b, "bytes_allocated", t->bytes_allocated);
    sb_u64(b, "frees", t->frees);
    sb_u64(b, "peak_bytes", t->peak_bytes);
    sb_u64(b, "peak_allocations", t->peak_allocations);
    sb_u64(b, "peak_time_ns", t->peak_time_ns);
    sb_u64(b, "leaked_bytes", t->leaked_bytes - suppressed);
    sb_u64(b, "suppressed_leaked_bytes", suppressed);
    sb_u64(b, "temporary_allocations", t->temporary_allocations);
    sb_u64(b, "temporary_bytes", t->temporary_bytes);
    sb_u64(b, "threads", t->threads);
    sb_puts(b, "}");
}

static void put_timeline(html_t *h)
{
    sb_t *b = &h->b;
    const mt_export_t *x = h->x;
    static const char *const cols[] = {"t", "live", "blocks"};
    sb_key(b, "timeline");
    sb_puts(b, "{");
    for (int c = 0; c < 3; c++) {
        sb_key(b, cols[c]);
        sb_puts(b, "[");
        for (size_t i = 0; i < x->npoints; i++) {
            const mt_tl_point_t *p = &x->points[i];
            sb_sep(b, i);
            sb_printf(b, "%" PRIu64, c == 0 ? p->time_ns : c == 1 ? p->live_bytes : p->live_allocations);
        }
        sb_puts(b, "]");
    }
    sb_key(b, "peak");
    if (x->totals->peak_bytes)
        sb_printf(b, "%zu", x->peak_point);
    else
        sb_puts(b, "null");
    sb_key(b, "downsampled");
    sb_puts(b, x->downsampled ? "true" : "false");
    sb_puts(b, "}");

    size_t nsnaps;
    const mt_snapshot_t *snaps = mt__replay_snapshots(x->replay, &nsnaps);
    sb_key(b, "snapshots");
    sb_puts(b, "[");
    size_t k = 0;
    for (size_t i = 0; i < x->npoints; i++) {
        const mt_tl_point_t *p = &x->points[i];
        if (p->snapshot < 0)
            continue;
        sb_sep(b, k++);
        sb_puts(b, "{");
        sb_kstr(b, "label", snaps[p->snapshot].text ? snaps[p->snapshot].text : "");
        sb_u64(b, "t", p->time_ns);
        sb_u64(b, "live", p->live_bytes);
        sb_u64(b, "blocks", p->live_allocations);
        sb_puts(b, "}");
    }
    sb_puts(b, "]");
}

/* ---- flame graph ---- */

/* Marks the nodes to keep: the root, and every node reaching frac of the
 * root's value for some metric (then its ancestors reach it too). */
static size_t mark_kept(const mt_tree_t *t, double frac, bool *keep)
{
    size_t kept = 0;
    for (size_t i = 0; i < t->n; i++) {
        keep[i] = i == 0;
        for (int m = 0; m < MT_METRIC_COUNT && !keep[i]; m++)
            keep[i] = t->nodes[i].value[m] && (double)t->nodes[i].value[m] >= frac * (double)t->nodes[0].value[m];
        kept += keep[i];
    }
    return kept;
}

static int put_flame(html_t *h)
{
    sb_t *b = &h->b;
    mt_tree_t t;
    int rc = mt__export_tree(h->x, &t, false);
    if (rc < 0)
        return rc;
    bool *keep = calloc(t.n, sizeof *keep);
    long *out_id = malloc(t.n * sizeof *out_id);
    uint32_t *stack = malloc((t.n + 1) * sizeof *stack);
    if (!keep || !out_id || !stack) {
        rc = -ENOMEM;
        goto done;
    }
    double frac = PRUNE_THRESHOLD;
    size_t kept;
    while ((kept = mark_kept(&t, frac, keep)) > MAX_NODES)
        frac *= 2;
    sb_key(b, "flame");
    sb_puts(b, "{");
    sb_key(b, "metrics");
    sb_puts(b, "[\"peak\",\"leaked\",\"allocations\",\"temporary\"]");
    sb_u64(b, "nodes_total", t.n);
    sb_u64(b, "nodes_shown", kept);
    sb_key(b, "threshold");
    sb_printf(b, "%g", frac);
    /* Nodes depth-first, so that a parent always comes before its children:
     * [parent, name, file, line, peak, leaked, allocations, temporary]. */
    sb_key(b, "nodes");
    sb_puts(b, "[");
    size_t sp = 0, written = 0;
    stack[sp++] = 0;
    while (sp) {
        uint32_t id = stack[--sp];
        const mt_tree_node_t *nd = &t.nodes[id];
        out_id[id] = (long)written;
        sb_sep(b, written++);
        sb_printf(b, "[%ld,", id ? out_id[nd->parent] : -1L);
        sb_json_str(b, nd->name);
        sb_puts(b, ",");
        sb_json_str(b, nd->file);
        sb_printf(b, ",%" PRIu32, nd->line);
        for (int m = 0; m < MT_METRIC_COUNT; m++)
            sb_printf(b, ",%" PRIu64, nd->value[m]);
        sb_puts(b, "]");
        /* Push kept children in reverse, so they come out in order. */
        size_t first = sp;
        for (uint32_t c = nd->first_child; c != MT_TREE_NONE; c = t.nodes[c].next_sibling)
            if (keep[c])
                stack[sp++] = c;
        for (size_t i = first, j = sp; i + 1 < j; i++, j--) {
            uint32_t tmp = stack[i];
            stack[i] = stack[j - 1];
            stack[j - 1] = tmp;
        }
    }
    sb_puts(b, "]}");
done:
    free(keep);
    free(out_id);
    free(stack);
    mt__tree_free(&t);
    return rc;
}

/* ---- sites and range data ---- */

typedef struct site_ref {
    const mt_site_t *site;
    uint64_t v[MT_METRIC_COUNT];
} site_ref_t;

static int sort_metric;

static int by_metric_desc(const void *a, const void *b)
{
    const site_ref_t *x = a, *y = b;
    for (int k = 0; k < MT_METRIC_COUNT; k++) {
        int m = (sort_metric + k) % MT_METRIC_COUNT;
        if (x->v[m] != y->v[m])
            return x->v[m] < y->v[m] ? 1 : -1;
    }
    return x->site->stack < y->site->stack ? -1 : x->site->stack > y->site->stack;
}

static void put_frame_text(sb_t *b, const mt_frame_t *f)
{
    char name[512], text[1200];
    mt__frame_name(f, name, sizeof name);
    if (f->file)
        snprintf(text, sizeof text, "%s%s  %s:%" PRIu32, f->inlined ? "(inlined) " : "", name, f->file, f->line);
    else
        snprintf(text, sizeof text, "%s%s", f->inlined ? "(inlined) " : "", name);
    sb_json_str(b, text);
}

/* Writes a stack's name fields: its headline function, file, line and
 * module, and its frames from the headline outwards as text. */
static void put_ident(html_t *h, const mt_frame_t *f, size_t nf)
{
    sb_t *b = &h->b;
    size_t hl = nf ? mt__headline(f, nf, &h->wrappers) : 0;
    char name[512];
    sb_kstr(b, "fn", nf ? mt__frame_name(&f[hl], name, sizeof name) : "[unknown stack]");
    sb_kstr(b, "file", nf ? f[hl].file : NULL);
    sb_u64(b, "line", nf ? f[hl].line : 0);
    sb_kstr(b, "module", nf ? f[hl].module : NULL);
    sb_key(b, "stack");
    sb_puts(b, "[");
    size_t shown = 0;
    for (size_t j = hl; j < nf && shown < STACK_FRAMES_SHOWN; j++) {
        if (mt__frame_is_memtrack(&f[j]))
            continue;
        sb_sep(b, shown++);
        put_frame_text(b, &f[j]);
    }
    sb_puts(b, "]");
}

static int put_sites(html_t *h)
{
    sb_t *b = &h->b;
    mt_export_t *x = h->x;
    size_t n;
    mt__replay_sites(x->replay, &n);
    site_ref_t *refs = malloc(n * sizeof *refs);
    bool *chosen = calloc(n, sizeof *chosen);
    h->site_of_stack = malloc(n * sizeof *h->site_of_stack);
    if (!refs || !chosen || !h->site_of_stack) {
        free(refs);
        free(chosen);
        return -ENOMEM;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const mt_site_t *sites = mt__replay_sites(x->replay, &n);
        h->site_of_stack[i] = -1;
        if (!sites[i].allocations && !sites[i].frees)
            continue;
        refs[k].site = &sites[i];
        if (mt__export_site_values(x, &sites[i], refs[k].v) < 0) {
            free(refs);
            free(chosen);
            return -ENOMEM;
        }
        k++;
    }
    /* The top sites of each metric; refs point into a stable array now. */
    size_t nchosen = 0;
    for (int m = 0; m < MT_METRIC_COUNT; m++) {
        sort_metric = m;
        qsort(refs, k, sizeof *refs, by_metric_desc);
        for (size_t i = 0; i < k && i < SITES_PER_METRIC; i++) {
            size_t idx = (size_t)(refs[i].site - mt__replay_sites(x->replay, &n));
            if (refs[i].v[m] && !chosen[idx]) {
                chosen[idx] = true;
                nchosen++;
            }
        }
    }
    sort_metric = MT_METRIC_PEAK;
    qsort(refs, k, sizeof *refs, by_metric_desc);
    sb_u64(b, "sites_total", k);
    sb_key(b, "sites");
    sb_puts(b, "[");
    size_t row = 0;
    int rc = 0;
    const mt_site_t *base = mt__replay_sites(x->replay, &n);
    for (size_t i = 0; i < k && rc == 0; i++) {
        size_t idx = (size_t)(refs[i].site - base);
        if (!chosen[idx])
            continue;
        const mt_site_t *s = refs[i].site;
        const mt_frame_t *f;
        size_t nf;
        if ((rc = mt__export_frames(x, s->stack, &f, &nf)) < 0)
            break;
        h->site_of_stack[idx] = (long)row;
        sb_sep(b, row++);
        sb_puts(b, "{");
        put_ident(h, f, nf);
        sb_u64(b, "peak", refs[i].v[MT_METRIC_PEAK]);
        sb_u64(b, "leaked", refs[i].v[MT_METRIC_LEAKED]);
        sb_u64(b, "leaked_blocks", refs[i].v[MT_METRIC_LEAKED] ? s->live_allocations : 0);
        sb_u64(b, "allocations", s->allocations);
        sb_u64(b, "bytes", s->bytes_allocated);
        sb_u64(b, "temporary", s->temporary_allocations);
        sb_puts(b, "}");
    }
    sb_puts(b, "]");
    free(refs);
    free(chosen);
    return rc;
}

static long site_row(const html_t *h, uint32_t stack)
{
    size_t idx = stack < h->x->nstacks ? stack : h->x->nstacks;
    return h->site_of_stack[idx];
}

/* The leak candidates of the snapshots (snapshots.h): each with its shape,
 * its numbers and its live bytes at every kept snapshot. */
static int put_leaks(html_t *h)
{
    sb_t *b = &h->b;
    mt_leak_analysis_t *a = NULL;
    int rc = mt__leaks_analyze(h->x->trace, NULL, &a);
    sb_key(b, "leaks");
    if (rc == -ENOMEM)
        return rc;
    if (rc < 0) {
        fprintf(stderr, "memtrack: %s: warning: no leak candidates: %s\n", h->x->path, mt__trace_error(h->x->trace));
        sb_puts(b, "null");
        return 0;
    }
    sb_puts(b, "{");
    sb_u64(b, "snapshots", a->nsnapshots);
    sb_u64(b, "points", a->npoints);
    sb_u64(b, "warmup", a->opt.warmup);
    sb_key(b, "labels");
    sb_puts(b, "[");
    for (size_t i = 0; i < a->npoints; i++) {
        sb_sep(b, i);
        const char *text = a->snaps[a->point_snapshot[i]].text;
        sb_json_str(b, text ? text : "");
    }
    sb_puts(b, "]");
    sb_u64(b, "candidates_total", a->ncandidates);
    sb_key(b, "candidates");
    sb_puts(b, "[");
    for (size_t i = 0; i < a->ncandidates && i < MAX_LEAK_CANDIDATES && rc == 0; i++) {
        const mt_site_series_t *ss = &a->sites[i];
        const mt_frame_t *f;
        size_t nf;
        if ((rc = mt__export_frames(h->x, ss->stack, &f, &nf)) < 0)
            break;
        sb_sep(b, i);
        sb_puts(b, "{");
        put_ident(h, f, nf);
        sb_kstr(b, "shape", mt__shape_name(ss->stats.shape));
        sb_kstr(b, "shape_text", mt__shape_description(ss->stats.shape));
        sb_key(b, "confidence");
        sb_printf(b, "%.3f", ss->stats.confidence);
        sb_key(b, "growth_bytes");
        sb_printf(b, "%" PRId64, ss->stats.growth_bytes);
        sb_key(b, "growth_per_snapshot");
        sb_printf(b, "%.1f", ss->stats.growth_per_snapshot);
        sb_u64(b, "intervals", ss->stats.intervals);
        sb_u64(b, "intervals_grown", ss->stats.intervals_grown);
        sb_key(b, "series");
        sb_puts(b, "[");
        for (size_t k = 0; k < a->npoints; k++) {
            sb_sep(b, k);
            sb_printf(b, "%" PRIu64, ss->live_bytes[k]);
        }
        sb_puts(b, "]}");
    }
    sb_puts(b, "]}");
    mt__leaks_free(a);
    return rc;
}

static void put_range(html_t *h)
{
    sb_t *b = &h->b;
    mt_export_t *x = h->x;
    sb_key(b, "range");
    sb_puts(b, "{");
    sb_key(b, "buckets");
    sb_puts(b, "[");
    for (size_t i = 0; i < x->nbuckets; i++) {
        sb_sep(b, i);
        sb_printf(b, "%" PRIu64, mt__trace_time_of(x->trace, (uint64_t)i * x->bucket_span));
    }
    sb_puts(b, "]");
    sb_u64(b, "end", x->info->duration_ns);
    /* [site row or -1 for the others, alloc bucket, free bucket, bytes, blocks]; the
     * others' entries are merged by bucket pair. */
    sb_key(b, "entries");
    sb_puts(b, "[");
    size_t w = 0, dropped = 0;
    for (size_t i = 0; i < x->nrange; i++) {
        const mt_range_entry_t *e = &x->range[i];
        long row = site_row(h, e->stack);
        if (row < 0)
            continue;
        if (w >= MAX_RANGE_ENTRIES) {
            dropped++;
            continue;
        }
        sb_sep(b, w++);
        sb_printf(b, "[%ld,%" PRIu32 ",%" PRIu32 ",%" PRIu64 ",%" PRIu64 "]", row, e->alloc_bucket, e->free_bucket,
                  e->bytes, e->blocks);
    }
    sb_puts(b, "]");
    sb_u64(b, "entries_dropped", dropped);
    sb_puts(b, "}");
}

static void put_scope(sb_t *b, const mt_budget_t *bu)
{
    char text[1024];
    size_t n = 0;
    text[0] = '\0';
    if (bu->region == MT_BUDGET_FROM_TO)
        n += (size_t)snprintf(text + n, sizeof text - n, "from \"%s\" to \"%s\"", bu->from, bu->to);
    else if (bu->region == MT_BUDGET_BETWEEN)
        n += (size_t)snprintf(text + n, sizeof text - n, "between \"%s\" snapshots", bu->between);
    else
        n += (size_t)snprintf(text + n, sizeof text - n, "whole run");
    const char *keys[] = {"function", "file", "module"};
    const char *globs[] = {bu->function, bu->file, bu->module};
    for (int i = 0; i < 3 && n < sizeof text; i++)
        if (globs[i])
            n += (size_t)snprintf(text + n, sizeof text - n, ", %s %s", keys[i], globs[i]);
    sb_kstr(b, "scope", text);
}

/* The results of the budget file, as `memtrack check` computes them. */
static int put_budgets(html_t *h)
{
    sb_t *b = &h->b;
    sb_key(b, "budgets");
    if (!h->budgets) {
        sb_puts(b, "null");
        return 0;
    }
    mt_budget_results_t res;
    char err[512];
    mt_budget_eval_options_t eo = {.suppressions = &h->x->suppressions};
    int rc = mt__budget_evaluate(h->budgets, &h->x->trace, &h->x->sym, 1, &eo, &res, err, sizeof err);
    if (rc < 0) {
        if (rc != -ENOMEM)
            fprintf(stderr, "memtrack: %s: %s\n", h->budget_path, err);
        return rc == -ENOMEM ? rc : -EINVAL;
    }
    sb_puts(b, "{");
    sb_kstr(b, "file", h->budget_path);
    sb_key(b, "all_passed");
    sb_puts(b, res.all_passed ? "true" : "false");
    sb_key(b, "results");
    sb_puts(b, "[");
    for (size_t i = 0; i < res.n && rc == 0; i++) {
        const mt_budget_result_t *r = &res.items[i];
        const mt_budget_t *bu = &h->budgets->items[r->budget];
        sb_sep(b, i);
        sb_puts(b, "{");
        sb_kstr(b, "name", bu->name);
        put_scope(b, bu);
        sb_kstr(b, "metric", mt__budget_metric_name(r->metric));
        sb_key(b, "is_size");
        sb_puts(b, mt__budget_metric_is_size(r->metric) ? "true" : "false");
        sb_u64(b, "limit", r->limit);
        sb_u64(b, "measured", r->measured);
        sb_key(b, "passed");
        sb_puts(b, r->passed ? "true" : "false");
        sb_u64(b, "intervals", r->intervals);
        sb_key(b, "sites");
        sb_puts(b, "[");
        for (size_t k = 0; k < r->nsites; k++) {
            const mt_frame_t *f;
            size_t nf;
            if ((rc = mt__export_frames(h->x, r->sites[k].stack, &f, &nf)) < 0)
                break;
            sb_sep(b, k);
            sb_puts(b, "{");
            put_ident(h, f, nf);
            sb_u64(b, "value", r->sites[k].value);
            sb_puts(b, "}");
        }
        sb_puts(b, "]}");
    }
    sb_puts(b, "]}");
    mt__budget_results_free(&res);
    return rc;
}

static int build_data(html_t *h)
{
    sb_t *b = &h->b;
    sb_puts(b, "{");
    sb_kstr(b, "format", "memtrack-html");
    sb_u64(b, "version", 1);
    sb_kstr(b, "memtrack_version", MT_VERSION);
    sb_kstr(b, "title", h->title);
    put_process(h);
    put_timeline(h);
    int rc = put_flame(h);
    if (rc == 0)
        rc = put_sites(h);
    if (rc == 0)
        put_range(h);
    if (rc == 0)
        rc = put_leaks(h);
    if (rc == 0)
        rc = put_budgets(h);
    sb_puts(b, "}");
    if (rc == 0 && b->oom)
        rc = -ENOMEM;
    return rc;
}

/* Writes the template with its placeholders filled. */
static void fill_template(FILE *out, const html_t *h)
{
    const char *p = mt__html_template;
    for (;;) {
        const char *open = strstr(p, "{{");
        if (!open) {
            fputs(p, out);
            return;
        }
        fwrite(p, 1, (size_t)(open - p), out);
        const char *close = strstr(open, "}}");
        if (!close) {
            fputs(open, out);
            return;
        }
        size_t len = (size_t)(close - open - 2);
        const char *name = open + 2;
        if (len == 3 && !memcmp(name, "CSS", 3))
            fputs(mt__html_css, out);
        else if (len == 2 && !memcmp(name, "JS", 2))
            fputs(mt__html_js, out);
        else if (len == 4 && !memcmp(name, "DATA", 4))
            fwrite(h->b.s, 1, h->b.n, out);
        else if (len == 5 && !memcmp(name, "TITLE", 5)) {
            for (const char *t = h->title; *t; t++) {
                if (*t == '<')
                    fputs("&lt;", out);
                else if (*t == '>')
                    fputs("&gt;", out);
                else if (*t == '&')
                    fputs("&amp;", out);
                else
                    fputc(*t, out);
            }
        } else
            fwrite(open, 1, len + 4, out);
        p = close + 2;
    }
}

static int write_html(FILE *out, mt_export_t *x, void *ctx)
{
    html_args_t *args = ctx;
    html_t h = {.x = x, .title = args->title, .budget_path = args->budget_path,
                .budgets = args->have_budgets ? &args->budgets : NULL};
    char title[256];
    if (!h.title) {
        const char *exe = x->info->exe && *x->info->exe ? x->info->exe : "program";
        const char *slash = strrchr(exe, '/');
        snprintf(title, sizeof title, "memtrack: %s", slash ? slash + 1 : exe);
        h.title = title;
    }
    int rc = mt__wrappers_add_defaults(&h.wrappers);
    if (rc == 0)
        rc = build_data(&h);
    if (rc == 0)
        fill_template(out, &h);
    free(h.b.s);
    free(h.site_of_stack);
    mt__patterns_free(&h.wrappers);
    return rc;
}

/* Runs `memtrack html`: see usage(). Returns the exit status. */
int mt_cmd_html(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"output", required_argument, NULL, 'o'},
        {"title", required_argument, NULL, 't'},
        {"budget", required_argument, NULL, 'b'},
        {"no-default-suppressions", no_argument, NULL, 'S'},
        {"suppressions", required_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    mt_export_options_t xo = {.max_points = MAX_POINTS, .range_buckets = RANGE_BUCKETS};
    const char *output = NULL;
    html_args_t args = {0};
    char err[512];
    int c, status;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":o:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'o': output = optarg; break;
        case 't': args.title = optarg; break;
        case 'b':
            if (args.have_budgets)
                mt__budget_set_free(&args.budgets);
            args.have_budgets = false;
            if (mt__budget_load(optarg, &args.budgets, err, sizeof err) < 0) {
                fprintf(stderr, "memtrack: %s\n", err);
                return MT_EXIT_BAD_INPUT;
            }
            args.have_budgets = true;
            args.budget_path = optarg;
            break;
        case 'S': xo.no_default_suppressions = true; break;
        case 's':
            if (mt__export_add_suppressions(&xo, optarg) < 0) {
                status = mt__export_bad_usage("html", "too many --suppressions files"); goto done;
            }
            break;
        case 'h': status = MT_EXIT_OK; usage(stdout); goto done;
        case ':': status = mt__export_bad_usage("html", "%s needs a value", argv[optind - 1]); goto done;
        default: status = mt__export_bad_usage("html", "unknown option '%s'", argv[optind - 1]); goto done;
        }
    }
    status = mt__export_main("html", argc, argv, optind, output, &xo, write_html, &args);
done:
    if (args.have_budgets)
        mt__budget_set_free(&args.budgets);
    return status;
}
