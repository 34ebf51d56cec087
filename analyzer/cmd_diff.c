/* cmd_diff.c - `memtrack diff`: per-site change of the live heap between two snapshots or two runs.
 *
 * With one trace, the two points are snapshots of the same run (--from,
 * --to: an index, a label, first, last or end; by default the first and the
 * last snapshot) and sites are matched by stack id. With two traces, --from
 * names the point in the old run and --to the point in the new one (by
 * default the end of each run: what was still live at exit), and sites are
 * matched by their symbolized frames: for each frame outside memtrack, its
 * function, its file's base name and its module's base name. Addresses and
 * line numbers are left out so that a rebuild in another directory, or code
 * that moved by a few lines, still matches; sites of one run with the same
 * key (two lines of one function called the same way) are added up.
 *
 * Both points are captured in one replay per trace (snapshots.c); rows are
 * sorted by growth in live bytes, largest first, and rows that did not change
 * are counted but not listed.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "output.h"
#include "snapshots.h"

#define DEFAULT_TOP 10
#define STACK_FRAMES_SHOWN 8

typedef struct options {
    bool json;
    const char *output; /* -o FILE */
    size_t top; /* 0: all */
    const char *from, *to;
    mt_patterns_t wrappers;
} options_t;

/* One trace and the point captured in it (two in one-trace mode). */
typedef struct run {
    const char *path;
    mt_trace_t *trace;
    mt_symbolizer_t *sym;
    mt_replay_t *replay;
    mt_point_t points[2];
    size_t npoints;
} run_t;

/* One site at one side (0: from, 1: to). */
typedef struct entry {
    char *key;      /* symbol key in two-trace mode, else NULL */
    uint32_t stack;
    int side;
    const mt_point_site_t *site;
} entry_t;

/* One row of the diff. */
typedef struct row {
    const char *key;
    uint32_t stack;        /* the stack shown: the "to" side's when it has one */
    int shown_side;
    uint64_t live_bytes[2], live_allocations[2], allocations[2];
    int64_t growth_bytes, growth_allocations;
} row_t;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: memtrack diff [OPTIONS] TRACE [--from A] [--to B]\n"
            "       memtrack diff [OPTIONS] OLD_TRACE NEW_TRACE\n"
            "Per-site change of the live heap (bytes and blocks) between two snapshots of\n"
            "one run, or between two runs, sorted by growth, with stacks.\n"
            "\n"
            "  --from POINT    a snapshot index (0-based), a label (its first snapshot), first,\n"
            "                  last or end; default: first (one trace), end (two traces: in OLD)\n"
            "  --to POINT      the same (a label: its last snapshot); default: last (one\n"
            "                  trace), end (two traces: in NEW)\n"
            "  --json          write JSON (docs/json-schema.md) instead of text\n"
            "  -o, --output FILE  write to FILE instead of standard output\n"
            "  --top N         rows listed (default %d; 0: every row that changed)\n"
            "  -h, --help      print this help\n"
            "\n"
            "Two runs are matched site by site by function, source file name and module\n"
            "name of every frame, not by address or line, so rebuilds still match.\n"
            "Exit status: 0 success, 2 bad usage or bad input.\n",
            DEFAULT_TOP);
}

static int bad_usage(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "memtrack diff: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "; 'memtrack diff --help' lists the options\n");
    return MT_EXIT_BAD_INPUT;
}

enum { OPT_JSON = 256, OPT_TOP, OPT_FROM, OPT_TO };

static const struct option long_options[] = {
    {"json", no_argument, NULL, OPT_JSON},
    {"output", required_argument, NULL, 'o'},   {"top", required_argument, NULL, OPT_TOP},
    {"from", required_argument, NULL, OPT_FROM}, {"to", required_argument, NULL, OPT_TO},
    {"help", no_argument, NULL, 'h'},        {NULL, 0, NULL, 0},
};

/* Parses the options. Returns -1 to go on, or the exit status. */
static int parse_options(int argc, char **argv, options_t *opt)
{
    int c;
    uint64_t v;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":o:h", long_options, NULL)) != -1) {
        switch (c) {
        case OPT_JSON: opt->json = true; break;
        case 'o': opt->output = optarg; break;
        case OPT_TOP:
            if (!mt__parse_u64(optarg, SIZE_MAX / 4, &v))
                return bad_usage("--top wants a number, not '%s'", optarg);
            opt->top = (size_t)v;
            break;
        case OPT_FROM: opt->from = optarg; break;
        case OPT_TO: opt->to = optarg; break;
        case 'h': usage(stdout); return MT_EXIT_OK;
        default: return mt__bad_option(c, argv, bad_usage);
        }
    }
    if (optind >= argc)
        return bad_usage("no trace given");
    if (argc - optind > 2)
        return bad_usage("one or two traces, not %d", argc - optind);
    if (mt__wrappers_add_defaults(&opt->wrappers) < 0) {
        fprintf(stderr, "memtrack: out of memory\n");
        return MT_EXIT_BAD_INPUT;
    }
    if (opt->output && mt__redirect_stdout(opt->output) < 0)
        return MT_EXIT_BAD_INPUT;
    return -1;
}

/* ---- loading ---- */

/* Opens a trace, resolves its points and replays it. Prints one line on failure. */
static int load(run_t *r, const char *const *specs, const bool *last_of_label, size_t n)
{
    char err[512];
    if (mt__open_trace(r->path, &r->trace) < 0)
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if (mt__snapshot_find(r->trace, specs[i], last_of_label[i], &r->points[i].snapshot, err, sizeof err) < 0) {
            fprintf(stderr, "memtrack diff: %s\n", err);
            return -EINVAL;
        }
    r->npoints = n;
    int rc = mt__points_capture(r->trace, r->points, n, &r->replay);
    if (rc < 0) {
        r->npoints = 0;
        mt__file_error(r->path, rc == -ENOMEM ? "out of memory" : mt__trace_error(r->trace));
        return rc;
    }
    if (!(r->sym = mt__symbolizer_new(r->trace))) {
        fprintf(stderr, "memtrack: out of memory\n");
        return -ENOMEM;
    }
    return 0;
}

static void unload(run_t *r)
{
    mt__points_free(r->points, r->npoints);
    mt__symbolizer_free(r->sym);
    mt__replay_free(r->replay);
    mt__trace_close(r->trace);
}

static const char *base_name(const char *path)
{
    const char *slash = path ? strrchr(path, '/') : NULL;
    return slash ? slash + 1 : path;
}

/* The matching key of a stack: "function|file|module" per frame outside
 * memtrack, joined by newlines; "?" for what is unknown. */
static char *symbol_key(run_t *r, uint32_t stack)
{
    if (stack == MT_REPLAY_NO_STACK)
        return strdup("[no stack]");
    mt_frame_t *frames;
    size_t n;
    if (mt__symbolize_stack(r->sym, r->trace, stack, &frames, &n) < 0)
        return NULL;
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    if (!m) {
        free(frames);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        const mt_frame_t *f = &frames[i];
        if (mt__frame_is_memtrack(f))
            continue;
        fprintf(m, "%s|%s|%s\n", f->function ? f->function : "?", f->file ? base_name(f->file) : "?",
                f->module ? base_name(f->module) : "?");
    }
    free(frames);
    if (fclose(m) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

/* ---- rows ---- */

static bool same_site(const entry_t *x, const entry_t *y)
{
    return x->key ? !strcmp(x->key, y->key) : x->stack == y->stack;
}

static int by_entry(const void *a, const void *b)
{
    const entry_t *x = a, *y = b;
    if (x->key) {
        int c = strcmp(x->key, y->key);
        if (c)
            return c;
    } else if (x->stack != y->stack) {
        return x->stack < y->stack ? -1 : 1;
    }
    return x->side - y->side;
}

static int by_growth(const void *a, const void *b)
{
    const row_t *x = a, *y = b;
    if (x->growth_bytes != y->growth_bytes)
        return x->growth_bytes > y->growth_bytes ? -1 : 1;
    if (x->growth_allocations != y->growth_allocations)
        return x->growth_allocations > y->growth_allocations ? -1 : 1;
    if (x->key && y->key)
        return strcmp(x->key, y->key);
    return x->stack < y->stack ? -1 : x->stack > y->stack;
}

/* Builds the rows that changed from the two points; sets *unchanged. */
static int build_rows(run_t *runs, size_t nruns, entry_t **entries_out, row_t **out, size_t *n, size_t *unchanged)
{
    const mt_point_t *pt[2] = {&runs[0].points[0], nruns == 2 ? &runs[1].points[0] : &runs[0].points[1]};
    size_t ne = pt[0]->nsites + pt[1]->nsites, k = 0;
    entry_t *e = calloc(ne ? ne : 1, sizeof *e);
    row_t *rows = calloc(ne ? ne : 1, sizeof *rows);
    *entries_out = e;
    *out = rows;
    if (!e || !rows)
        return -ENOMEM;
    for (int side = 0; side < 2; side++)
        for (size_t i = 0; i < pt[side]->nsites; i++) {
            const mt_point_site_t *s = &pt[side]->sites[i];
            e[k] = (entry_t){.stack = s->stack, .side = side, .site = s};
            if (nruns == 2 && !(e[k].key = symbol_key(&runs[side], s->stack)))
                return -ENOMEM;
            k++;
        }
    qsort(e, ne, sizeof *e, by_entry);
    size_t nr = 0;
    *unchanged = 0;
    for (size_t i = 0; i < ne;) {
        row_t r = {.key = e[i].key, .stack = e[i].stack, .shown_side = e[i].side};
        size_t j = i;
        for (; j < ne && same_site(&e[i], &e[j]); j++) {
            const mt_point_site_t *s = e[j].site;
            r.live_bytes[e[j].side] += s->live_bytes;
            r.live_allocations[e[j].side] += s->live_allocations;
            r.allocations[e[j].side] += s->allocations;
            if (e[j].side == 1) {
                r.stack = e[j].stack;
                r.shown_side = 1;
            }
        }
        i = j;
        r.growth_bytes = (int64_t)(r.live_bytes[1] - r.live_bytes[0]);
        r.growth_allocations = (int64_t)(r.live_allocations[1] - r.live_allocations[0]);
        if (!r.growth_bytes && !r.growth_allocations)
            (*unchanged)++;
        else
            rows[nr++] = r;
    }
    qsort(rows, nr, sizeof *rows, by_growth);
    *n = nr;
    return 0;
}

/* ---- output ---- */

static int row_frames(run_t *runs, size_t nruns, const options_t *opt, const row_t *r, mt_shown_t *s)
{
    run_t *run = &runs[nruns == 2 ? r->shown_side : 0];
    return mt__shown_stack(run->sym, run->trace, r->stack, &opt->wrappers, s);
}

static void point_text(const run_t *run, const mt_point_t *p, char *buf, size_t cap)
{
    char t[32];
    if (p->snapshot == MT_POINT_END)
        snprintf(buf, cap, "the end of %s", run->path);
    else
        snprintf(buf, cap, "snapshot %zu '%s' at %s of %s", p->snapshot,
                 p->snap && p->snap->text ? p->snap->text : "?",
                 mt__format_duration(p->snap ? p->snap->time_ns : 0, t, sizeof t), run->path);
}

static char *signed_size(int64_t v, char *buf, size_t cap)
{
    char s[32];
    uint64_t mag = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    snprintf(buf, cap, "%c%s", v < 0 ? '-' : '+', mt__format_size(mag, s, sizeof s));
    return buf;
}

static int print_text(run_t *runs, size_t nruns, const options_t *opt, const row_t *rows, size_t n,
                      size_t unchanged)
{
    const mt_point_t *pt[2] = {&runs[0].points[0], nruns == 2 ? &runs[1].points[0] : &runs[0].points[1]};
    char a[300], b[300], s1[32], s2[32], s3[32];
    point_text(&runs[0], pt[0], a, sizeof a);
    point_text(&runs[nruns - 1], pt[1], b, sizeof b);
    if (nruns == 1)
        printf("memtrack diff: %s\n  from %s\n  to   %s\n", runs[0].path, a, b);
    else
        printf("memtrack diff: %s -> %s\n  from %s\n  to   %s\n", runs[0].path, runs[1].path, a, b);
    for (size_t i = 0; i < nruns; i++)
        mt__print_estimate_note(stdout, runs[i].path, runs[i].trace);
    int64_t dblocks = (int64_t)(pt[1]->live_allocations - pt[0]->live_allocations);
    printf("  live heap %s -> %s (%s, %+" PRId64 " blocks)\n", mt__format_size(pt[0]->live_bytes, s1, sizeof s1),
           mt__format_size(pt[1]->live_bytes, s2, sizeof s2),
           signed_size((int64_t)(pt[1]->live_bytes - pt[0]->live_bytes), s3, sizeof s3), dblocks);
    size_t shown = opt->top && opt->top < n ? opt->top : n;
    printf("\nSITES BY GROWTH: %zu changed, %zu unchanged%s\n", n, unchanged,
           shown < n ? " (--top 0 lists every one)" : "");
    if (!n)
        printf("  (none)\n");
    for (size_t i = 0; i < shown; i++) {
        const row_t *r = &rows[i];
        mt_shown_t s;
        char head[1024];
        if (row_frames(runs, nruns, opt, r, &s) < 0)
            return -ENOMEM;
        mt__headline_text(s.frames, s.nframes, s.headline, head, sizeof head);
        printf("  #%zu %s (%+" PRId64 " blocks): %s -> %s   %s\n", i + 1, signed_size(r->growth_bytes, s1, sizeof s1),
               r->growth_allocations, mt__format_size(r->live_bytes[0], s2, sizeof s2),
               mt__format_size(r->live_bytes[1], s3, sizeof s3), head);
        mt__print_frames(stdout, s.frames, s.nframes, s.headline, STACK_FRAMES_SHOWN, 7);
        free(s.frames);
    }
    return 0;
}

static cJSON *point_json(const run_t *run, const mt_point_t *p)
{
    cJSON *o = cJSON_CreateObject();
    bool end = p->snapshot == MT_POINT_END;
    bool ok = o && mt__json_str(o, "trace", run->path) &&
              (end ? cJSON_AddNullToObject(o, "snapshot") != NULL : mt__json_u64(o, "snapshot", p->snapshot)) &&
              mt__json_str(o, "label", end ? NULL : p->snap->text) &&
              (end ? mt__json_u64(o, "time_ns", mt__trace_info(run->trace)->duration_ns)
                   : mt__json_u64(o, "time_ns", p->snap->time_ns)) &&
              mt__json_u64(o, "live_bytes", p->live_bytes) && mt__json_u64(o, "live_allocations", p->live_allocations);
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static cJSON *row_json(run_t *runs, size_t nruns, const options_t *opt, const row_t *r)
{
    mt_shown_t s;
    cJSON *o = cJSON_CreateObject();
    if (!o || row_frames(runs, nruns, opt, r, &s) < 0) {
        cJSON_Delete(o);
        return NULL;
    }
    bool ok = mt__json_site_frames(o, s.frames, s.nframes, s.headline) &&
              mt__json_stack_id(o, r->stack, nruns == 2) &&
              mt__json_i64(o, "growth_bytes", r->growth_bytes) &&
              mt__json_i64(o, "growth_allocations", r->growth_allocations) &&
              mt__json_u64(o, "from_live_bytes", r->live_bytes[0]) &&
              mt__json_u64(o, "to_live_bytes", r->live_bytes[1]) &&
              mt__json_u64(o, "from_live_allocations", r->live_allocations[0]) &&
              mt__json_u64(o, "to_live_allocations", r->live_allocations[1]) &&
              mt__json_u64(o, "from_allocations", r->allocations[0]) &&
              mt__json_u64(o, "to_allocations", r->allocations[1]);
    free(s.frames);
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static int print_json(run_t *runs, size_t nruns, const options_t *opt, const row_t *rows, size_t n, size_t unchanged)
{
    const mt_point_t *pt[2] = {&runs[0].points[0], nruns == 2 ? &runs[1].points[0] : &runs[0].points[1]};
    size_t shown = opt->top && opt->top < n ? opt->top : n;
    cJSON *doc = cJSON_CreateObject();
    cJSON *from = point_json(&runs[0], pt[0]), *to = point_json(&runs[nruns - 1], pt[1]);
    bool ok = doc && from && to && cJSON_AddStringToObject(doc, "format", "memtrack-diff") &&
              mt__json_u64(doc, "version", 1) &&
              mt__json_str(doc, "match", nruns == 2 ? "symbols" : "stack") &&
              cJSON_AddBoolToObject(doc, "estimated", mt__trace_sampled(runs[0].trace) ||
                                                          mt__trace_sampled(runs[nruns - 1].trace)) &&
              cJSON_AddItemToObject(doc, "from", from) && cJSON_AddItemToObject(doc, "to", to);
    if (!ok) {
        cJSON_Delete(from);
        cJSON_Delete(to);
    }
    ok = ok && mt__json_i64(doc, "growth_bytes", (int64_t)(pt[1]->live_bytes - pt[0]->live_bytes)) &&
         mt__json_i64(doc, "growth_allocations", (int64_t)(pt[1]->live_allocations - pt[0]->live_allocations)) &&
         mt__json_u64(doc, "sites_changed", n) && mt__json_u64(doc, "sites_unchanged", unchanged) &&
         mt__json_u64(doc, "sites_shown", shown);
    cJSON *arr = ok ? cJSON_AddArrayToObject(doc, "sites") : NULL;
    for (size_t i = 0; arr && i < shown; i++) {
        cJSON *o = row_json(runs, nruns, opt, &rows[i]);
        if (!o || !cJSON_AddItemToArray(arr, o)) {
            cJSON_Delete(o);
            arr = NULL;
        }
    }
    if (!arr) {
        cJSON_Delete(doc);
        return -ENOMEM;
    }
    return mt__json_print(doc);
}

/* Runs `memtrack diff`: see usage(). Returns 0, or 2 for bad usage or
 * input, with one line on stderr. */
int mt_cmd_diff(int argc, char **argv)
{
    int status = MT_EXIT_BAD_INPUT;
    options_t opt = {.top = DEFAULT_TOP};
    run_t runs[2] = {{0}};
    size_t nruns = 0, nrows = 0, unchanged = 0;
    entry_t *entries = NULL;
    row_t *rows = NULL;
    int rc = parse_options(argc, argv, &opt);
    if (rc >= 0) {
        status = rc;
        goto out;
    }
    size_t ntraces = (size_t)(argc - optind);
    if (ntraces == 1) {
        const char *specs[2] = {opt.from ? opt.from : "first", opt.to ? opt.to : "last"};
        runs[0].path = argv[optind];
        nruns = 1;
        if (load(&runs[0], specs, (const bool[]){false, true}, 2) < 0)
            goto out;
    } else {
        const char *specs[2] = {opt.from ? opt.from : "end", opt.to ? opt.to : "end"};
        for (; nruns < 2; nruns++) {
            runs[nruns].path = argv[optind + nruns];
            if (load(&runs[nruns], &specs[nruns], (const bool[]){nruns == 1}, 1) < 0) {
                nruns++;
                goto out;
            }
        }
    }
    if (build_rows(runs, nruns, &entries, &rows, &nrows, &unchanged) < 0 ||
        (opt.json ? print_json(runs, nruns, &opt, rows, nrows, unchanged)
                  : print_text(runs, nruns, &opt, rows, nrows, unchanged)) < 0) {
        fprintf(stderr, "memtrack: out of memory\n");
        goto out;
    }
    if (mt__stdout_flush() < 0)
        goto out;
    status = MT_EXIT_OK;
out:
    if (entries) {
        size_t runs_sites = 0;
        for (size_t i = 0; i < nruns; i++)
            for (size_t p = 0; p < runs[i].npoints; p++)
                runs_sites += runs[i].points[p].nsites;
        for (size_t i = 0; i < runs_sites; i++)
            free(entries[i].key);
    }
    free(entries);
    free(rows);
    for (size_t i = 0; i < nruns; i++)
        unload(&runs[i]);
    mt__patterns_free(&opt.wrappers);
    return status;
}
