/* cmd_leaks.c - `memtrack leaks`: what was live at exit, and which sites grow from snapshot to snapshot.
 *
 * The trace is replayed once by mt__leaks_analyze (snapshots.c), which
 * keeps each site's live bytes at every snapshot after the warm-up and
 * classifies the series. The command prints (1) the sites still live at
 * the end of the run, less the built-in suppressions of one-time libc
 * allocations, and (2) the leak candidates, each with its stack, growth,
 * series and confidence; the text also names the sites that grew but look
 * bounded (cache, queue), so that a user sees why they are not candidates.
 * The JSON shape is in docs/json-schema.md.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "output.h"
#include "snapshots.h"

#define DEFAULT_TOP 10
#define STACK_FRAMES_SHOWN 8
#define SERIES_SHOWN 10

typedef struct options {
    bool json;
    const char *output; /* -o FILE */
    bool default_suppressions;
    size_t top; /* 0: all */
    mt_leak_options_t leak;
    mt_patterns_t wrappers;
    mt_patterns_t suppressions;
} options_t;

typedef struct ctx {
    const options_t *opt;
    const char *path;
    mt_trace_t *trace;
    mt_symbolizer_t *sym;
    mt_leak_analysis_t *a;
} ctx_t;

static void usage(FILE *f)
{
    mt_leak_options_t d;
    mt__leak_options_default(&d);
    fprintf(f,
            "usage: memtrack leaks [OPTIONS] TRACE\n"
            "Lists (1) what was still live at exit, per site, and (2) leak candidates:\n"
            "sites whose live memory keeps growing from snapshot to snapshot. Sites that\n"
            "grow and then stay flat (caches), fill and drain (queues) or free their\n"
            "memory inside each batch are not candidates.\n"
            "\n"
            "  --json                  write JSON (docs/json-schema.md) instead of text\n"
            "  -o, --output FILE       write to FILE instead of standard output\n"
            "  --top N                 sites per list (default %d; 0: all)\n"
            "  --warmup N              ignore the first N snapshots (default %zu)\n"
            "  --min-growth BYTES      a candidate grew at least this much (default %" PRIu64 ")\n"
            "  --min-intervals N       ... in at least N intervals between snapshots (default %zu)\n"
            "  --max-shrink RATIO      ... giving back at most this share of its growth (default %.2f)\n"
            "  --plateau RATIO         a flat tail this share of the run means a bounded cache\n"
            "                          (default %.2f)\n"
            "  --min-confidence RATIO  candidates need at least this confidence, 0 to 1 (default %.2f)\n"
            "  --max-points N          snapshots kept per series, evenly spread (default %zu)\n"
            "  --no-default-suppressions  list one-time libc/ld.so allocations live at exit too\n"
            "  --suppressions FILE     LeakSanitizer-style 'leak:PATTERN' lines: sites they match\n"
            "                          are not listed as live at exit (repeatable)\n"
            "  -h, --help              print this help\n"
            "\n"
            "Exit status: 0 success, 2 bad usage or bad input.\n",
            DEFAULT_TOP, d.warmup, d.min_growth_bytes, d.min_intervals_grown, d.max_shrink_ratio, d.plateau_ratio,
            d.min_confidence, d.max_points);
}

static int bad_usage(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "memtrack leaks: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "; 'memtrack leaks --help' lists the options\n");
    return MT_EXIT_BAD_INPUT;
}

enum {
    OPT_JSON = 256,
    OPT_TOP,
    OPT_WARMUP,
    OPT_MIN_GROWTH,
    OPT_MIN_INTERVALS,
    OPT_MAX_SHRINK,
    OPT_PLATEAU,
    OPT_MIN_CONFIDENCE,
    OPT_MAX_POINTS,
    OPT_NO_DEFAULT_SUPPRESSIONS,
    OPT_SUPPRESSIONS,
};

static const struct option long_options[] = {
    {"json", no_argument, NULL, OPT_JSON},
    {"output", required_argument, NULL, 'o'},
    {"top", required_argument, NULL, OPT_TOP},
    {"warmup", required_argument, NULL, OPT_WARMUP},
    {"min-growth", required_argument, NULL, OPT_MIN_GROWTH},
    {"min-intervals", required_argument, NULL, OPT_MIN_INTERVALS},
    {"max-shrink", required_argument, NULL, OPT_MAX_SHRINK},
    {"plateau", required_argument, NULL, OPT_PLATEAU},
    {"min-confidence", required_argument, NULL, OPT_MIN_CONFIDENCE},
    {"max-points", required_argument, NULL, OPT_MAX_POINTS},
    {"no-default-suppressions", no_argument, NULL, OPT_NO_DEFAULT_SUPPRESSIONS},
    {"suppressions", required_argument, NULL, OPT_SUPPRESSIONS},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* Parses the options. Returns -1 to go on, or the exit status. */
static int parse_options(int argc, char **argv, options_t *opt)
{
    int c;
    uint64_t v;
    int li = 0;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":o:h", long_options, &li)) != -1) {
        switch (c) {
        case OPT_JSON: opt->json = true; break;
        case 'o': opt->output = optarg; break;
        case OPT_TOP:
        case OPT_WARMUP:
        case OPT_MIN_INTERVALS:
        case OPT_MAX_POINTS:
        case OPT_MIN_GROWTH:
            if (!mt__parse_u64(optarg, c == OPT_MIN_GROWTH ? UINT64_MAX : SIZE_MAX / 4, &v))
                return bad_usage("--%s wants a number, not '%s'", long_options[li].name, optarg);
            if (c == OPT_TOP)
                opt->top = (size_t)v;
            else if (c == OPT_WARMUP)
                opt->leak.warmup = (size_t)v;
            else if (c == OPT_MIN_INTERVALS)
                opt->leak.min_intervals_grown = (size_t)v;
            else if (c == OPT_MIN_GROWTH)
                opt->leak.min_growth_bytes = v;
            else if (v < 3)
                return bad_usage("--max-points wants at least 3, not '%s'", optarg);
            else
                opt->leak.max_points = (size_t)v;
            break;
        case OPT_MAX_SHRINK:
        case OPT_PLATEAU:
        case OPT_MIN_CONFIDENCE: {
            double *d = c == OPT_MAX_SHRINK ? &opt->leak.max_shrink_ratio
                        : c == OPT_PLATEAU  ? &opt->leak.plateau_ratio
                                            : &opt->leak.min_confidence;
            if (!mt__parse_ratio(optarg, d))
                return bad_usage("--%s wants a ratio from 0 to 1, not '%s'", long_options[li].name, optarg);
            break;
        }
        case OPT_NO_DEFAULT_SUPPRESSIONS: opt->default_suppressions = false; break;
        case OPT_SUPPRESSIONS: {
            char err[512];
            if (mt__suppressions_load(&opt->suppressions, optarg, err, sizeof err) < 0) {
                fprintf(stderr, "memtrack: %s\n", err);
                return MT_EXIT_BAD_INPUT;
            }
            break;
        }
        case 'h': usage(stdout); return MT_EXIT_OK;
        default: return mt__bad_option(c, argv, bad_usage);
        }
    }
    if (optind >= argc)
        return bad_usage("no trace given");
    if (argc - optind > 1)
        return bad_usage("one trace at a time (got %d)", argc - optind);
    if (mt__wrappers_add_defaults(&opt->wrappers) < 0 ||
        (opt->default_suppressions && mt__suppressions_add_defaults(&opt->suppressions) < 0)) {
        fprintf(stderr, "memtrack: out of memory\n");
        return MT_EXIT_BAD_INPUT;
    }
    if (opt->output && mt__redirect_stdout(opt->output) < 0)
        return MT_EXIT_BAD_INPUT;
    return -1;
}

/* ---- sites ---- */

static int symbolize(ctx_t *c, uint32_t stack, mt_shown_t *s)
{
    return mt__shown_stack(c->sym, c->trace, stack, &c->opt->wrappers, s);
}

/* The sites live at exit, not suppressed, largest first. */
typedef struct leaked {
    uint32_t stack;
    uint64_t bytes, blocks;
} leaked_t;

static int by_leaked(const void *a, const void *b)
{
    const leaked_t *x = a, *y = b;
    if (x->bytes != y->bytes)
        return x->bytes > y->bytes ? -1 : 1;
    if (x->blocks != y->blocks)
        return x->blocks > y->blocks ? -1 : 1;
    return x->stack < y->stack ? -1 : x->stack > y->stack;
}

static int leaked_sites(ctx_t *c, leaked_t **out, size_t *n)
{
    size_t nsites, k = 0;
    const mt_site_t *sites = mt__replay_sites(c->a->replay, &nsites);
    leaked_t *l = malloc((nsites ? nsites : 1) * sizeof *l);
    if (!l)
        return -ENOMEM;
    for (size_t i = 0; i < nsites; i++) {
        if (!sites[i].live_allocations)
            continue;
        if (c->opt->suppressions.n && sites[i].stack != MT_REPLAY_NO_STACK) {
            mt_shown_t s;
            if (symbolize(c, sites[i].stack, &s) < 0) {
                free(l);
                return -ENOMEM;
            }
            bool suppressed = mt__suppressed_by(s.frames, s.nframes, &c->opt->suppressions) != NULL;
            free(s.frames);
            if (suppressed)
                continue;
        }
        l[k++] = (leaked_t){sites[i].stack, sites[i].live_bytes, sites[i].live_allocations};
    }
    qsort(l, k, sizeof *l, by_leaked);
    *out = l;
    *n = k;
    return 0;
}

static size_t shown_count(const options_t *opt, size_t n)
{
    return opt->top && opt->top < n ? opt->top : n;
}

/* ---- text ---- */

static void print_series(const mt_leak_analysis_t *a, const mt_site_series_t *s)
{
    char buf[32];
    printf("       live bytes:");
    for (size_t p = 0; p < a->npoints; p++) {
        if (a->npoints > SERIES_SHOWN && p == SERIES_SHOWN / 2) {
            printf(" ...");
            p = a->npoints - SERIES_SHOWN / 2;
        }
        printf(" %s", mt__format_size(s->live_bytes[p], buf, sizeof buf));
    }
    printf("\n");
}

static int print_text(ctx_t *c, const leaked_t *leaked, size_t nleaked)
{
    const mt_leak_analysis_t *a = c->a;
    const mt_trace_info_t *info = mt__trace_info(c->trace);
    char b1[32], b2[32], head[1024];
    printf("memtrack leaks: %s (pid %" PRIu64 ")\n", info->command && *info->command ? info->command : "?",
           info->pid);
    printf("  trace %s: %zu snapshot%s, %zu analyzed after a warm-up of %zu\n", c->path, a->nsnapshots,
           a->nsnapshots == 1 ? "" : "s", a->npoints, a->opt.warmup);
    mt__print_estimate_note(stdout, c->path, c->trace);

    uint64_t bytes = 0, blocks = 0;
    for (size_t i = 0; i < nleaked; i++)
        bytes += leaked[i].bytes, blocks += leaked[i].blocks;
    printf("\nLIVE AT EXIT: %s in %s block%s, %zu site%s\n", mt__format_size(bytes, b1, sizeof b1),
           mt__format_count(blocks, b2, sizeof b2), blocks == 1 ? "" : "s", nleaked, nleaked == 1 ? "" : "s");
    if (!nleaked)
        printf("  (none)\n");
    for (size_t i = 0; i < shown_count(c->opt, nleaked); i++) {
        mt_shown_t s;
        if (symbolize(c, leaked[i].stack, &s) < 0)
            return -ENOMEM;
        mt__headline_text(s.frames, s.nframes, s.headline, head, sizeof head);
        printf("  #%zu %s in %s block%s   %s\n", i + 1, mt__format_size(leaked[i].bytes, b1, sizeof b1),
               mt__format_count(leaked[i].blocks, b2, sizeof b2), leaked[i].blocks == 1 ? "" : "s", head);
        mt__print_frames(stdout, s.frames, s.nframes, s.headline, STACK_FRAMES_SHOWN, 7);
        free(s.frames);
    }

    printf("\nLEAK CANDIDATES: %zu\n", a->ncandidates);
    if (a->npoints < 3)
        printf("  (too few snapshots after the warm-up: %zu; candidates need at least 3)\n", a->npoints);
    else if (!a->ncandidates)
        printf("  (none: no site grows from snapshot to snapshot past the thresholds; sites that grew "
               "are listed below with the reason)\n");
    for (size_t i = 0; i < shown_count(c->opt, a->ncandidates); i++) {
        const mt_site_series_t *ss = &a->sites[i];
        const mt_series_stats_t *st = &ss->stats;
        mt_shown_t s;
        if (symbolize(c, ss->stack, &s) < 0)
            return -ENOMEM;
        mt__headline_text(s.frames, s.nframes, s.headline, head, sizeof head);
        printf("  #%zu +%s over %zu snapshots (%s per snapshot), grew in %zu of %zu intervals, "
               "confidence %.2f   %s\n",
               i + 1, mt__format_size((uint64_t)st->growth_bytes, b1, sizeof b1), st->intervals + 1,
               mt__format_size((uint64_t)llround(st->growth_per_snapshot), b2, sizeof b2), st->intervals_grown,
               st->intervals, st->confidence, head);
        printf("       shape: %s (%s)\n", mt__shape_name(st->shape), mt__shape_description(st->shape));
        print_series(a, ss);
        mt__print_frames(stdout, s.frames, s.nframes, s.headline, STACK_FRAMES_SHOWN, 7);
        free(s.frames);
    }

    /* Sites that grew at some point but are not candidates, and why. */
    size_t listed = 0;
    for (size_t i = a->ncandidates; i < a->nsites; i++) {
        const mt_site_series_t *ss = &a->sites[i];
        if (!ss->stats.intervals_grown || (c->opt->top && listed >= c->opt->top))
            continue;
        if (!listed++)
            printf("\nGREW BUT NOT CANDIDATES\n");
        mt_shown_t s;
        if (symbolize(c, ss->stack, &s) < 0)
            return -ENOMEM;
        mt__headline_text(s.frames, s.nframes, s.headline, head, sizeof head);
        uint64_t max = 0;
        for (size_t p = 0; p < a->npoints; p++)
            max = ss->live_bytes[p] > max ? ss->live_bytes[p] : max;
        const mt_series_stats_t *st = &ss->stats;
        const mt_leak_options_t *lo = &c->opt->leak;
        char why[160];
        if (st->shape != MT_SHAPE_STEADY_LEAK && st->shape != MT_SHAPE_STEP_LEAK)
            snprintf(why, sizeof why, "%s", mt__shape_description(st->shape));
        else if (st->growth_bytes < 0 || (uint64_t)st->growth_bytes < lo->min_growth_bytes)
            snprintf(why, sizeof why, "grew %s in all, under --min-growth",
                     mt__format_size(st->growth_bytes < 0 ? 0 : (uint64_t)st->growth_bytes, b2, sizeof b2));
        else if (st->intervals_grown < lo->min_intervals_grown)
            snprintf(why, sizeof why, "grew in %zu intervals, under --min-intervals", st->intervals_grown);
        else
            snprintf(why, sizeof why, "gave back more than --max-shrink allows, or confidence %.2f is under "
                     "--min-confidence", st->confidence);
        printf("  %-11s up to %-10s %s\n", mt__shape_name(st->shape), mt__format_size(max, b1, sizeof b1), head);
        printf("       not a candidate: %s\n", why);
        free(s.frames);
    }
    return 0;
}

/* ---- JSON ---- */

static cJSON *leaked_json(ctx_t *c, const leaked_t *l)
{
    mt_shown_t s;
    cJSON *o = cJSON_CreateObject();
    if (!o || symbolize(c, l->stack, &s) < 0) {
        cJSON_Delete(o);
        return NULL;
    }
    bool ok = mt__json_site_frames(o, s.frames, s.nframes, s.headline) &&
              mt__json_stack_id(o, l->stack, false) &&
              mt__json_u64(o, "leaked_bytes", l->bytes) && mt__json_u64(o, "leaked_allocations", l->blocks);
    free(s.frames);
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static cJSON *candidate_json(ctx_t *c, const mt_site_series_t *ss)
{
    const mt_series_stats_t *st = &ss->stats;
    mt_shown_t s;
    cJSON *o = cJSON_CreateObject();
    if (!o || symbolize(c, ss->stack, &s) < 0) {
        cJSON_Delete(o);
        return NULL;
    }
    bool ok = mt__json_site_frames(o, s.frames, s.nframes, s.headline) &&
              mt__json_stack_id(o, ss->stack, false) &&
              mt__json_str(o, "shape", mt__shape_name(st->shape)) &&
              mt__json_i64(o, "growth_bytes", st->growth_bytes) &&
              cJSON_AddNumberToObject(o, "growth_per_snapshot", round(st->growth_per_snapshot * 100) / 100) &&
              mt__json_u64(o, "intervals_grown", st->intervals_grown) &&
              mt__json_u64(o, "intervals", st->intervals);
    free(s.frames);
    cJSON *series = ok ? cJSON_AddArrayToObject(o, "live_bytes_series") : NULL;
    for (size_t p = 0; series && p < c->a->npoints; p++) {
        char buf[24];
        snprintf(buf, sizeof buf, "%" PRIu64, ss->live_bytes[p]);
        cJSON *n = cJSON_CreateRaw(buf);
        if (!n || !cJSON_AddItemToArray(series, n)) {
            cJSON_Delete(n);
            series = NULL;
        }
    }
    if (!series || !cJSON_AddNumberToObject(o, "confidence", round(st->confidence * 1000) / 1000)) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static int print_json(ctx_t *c, const leaked_t *leaked, size_t nleaked)
{
    cJSON *doc = cJSON_CreateObject();
    if (doc && !cJSON_AddBoolToObject(doc, "estimated", mt__trace_sampled(c->trace))) {
        cJSON_Delete(doc);
        doc = NULL;
    }
    cJSON *la = doc ? cJSON_AddArrayToObject(doc, "leaked_at_exit") : NULL;
    cJSON *ca = la ? cJSON_AddArrayToObject(doc, "candidates") : NULL;
    bool ok = ca != NULL;
    for (size_t i = 0; ok && i < shown_count(c->opt, nleaked); i++) {
        cJSON *o = leaked_json(c, &leaked[i]);
        ok = o && cJSON_AddItemToArray(la, o);
    }
    for (size_t i = 0; ok && i < shown_count(c->opt, c->a->ncandidates); i++) {
        cJSON *o = candidate_json(c, &c->a->sites[i]);
        ok = o && cJSON_AddItemToArray(ca, o);
    }
    if (!ok) {
        cJSON_Delete(doc);
        return -ENOMEM;
    }
    return mt__json_print(doc);
}

/* Runs `memtrack leaks`: see usage(). Returns 0, or 2 for bad usage or
 * input, with one line on stderr. */
int mt_cmd_leaks(int argc, char **argv)
{
    int status = MT_EXIT_BAD_INPUT;
    options_t opt = {.top = DEFAULT_TOP, .default_suppressions = true};
    mt__leak_options_default(&opt.leak);
    ctx_t c = {.opt = &opt};
    leaked_t *leaked = NULL;
    size_t nleaked = 0;
    int rc = parse_options(argc, argv, &opt);
    if (rc >= 0) {
        status = rc;
        goto out;
    }
    c.path = argv[optind];
    if (mt__open_trace(c.path, &c.trace) < 0)
        goto out;
    if ((rc = mt__leaks_analyze(c.trace, &opt.leak, &c.a)) < 0) {
        mt__file_error(c.path, rc == -ENOMEM ? "out of memory" : mt__trace_error(c.trace));
        goto out;
    }
    if (!(c.sym = mt__symbolizer_new(c.trace)) || leaked_sites(&c, &leaked, &nleaked) < 0 ||
        (opt.json ? print_json(&c, leaked, nleaked) : print_text(&c, leaked, nleaked)) < 0) {
        fprintf(stderr, "memtrack: out of memory\n");
        goto out;
    }
    if (mt__stdout_flush() < 0)
        goto out;
    status = MT_EXIT_OK;
out:
    free(leaked);
    mt__symbolizer_free(c.sym);
    mt__leaks_free(c.a);
    mt__trace_close(c.trace);
    mt__patterns_free(&opt.wrappers);
    mt__patterns_free(&opt.suppressions);
    return status;
}
