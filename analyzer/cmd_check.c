/* cmd_check.c - `memtrack check`: fails a CI job when a trace goes over its memory budgets.
 *
 * Loads a budget file (budget.c), opens every trace, evaluates, and prints
 * one line per limit; for each limit exceeded, the top sites that account
 * for it with their stacks, so that the failure points at the code. The
 * same results can go out as JSON (docs/json-schema.md), JUnit XML and
 * GitHub Actions annotations. --update writes the budget file from the
 * measured values plus a headroom instead of checking.
 *
 * Exit status: 0 every budget holds, 1 one is exceeded, 2 bad usage or bad
 * input (always one line on stderr saying what and where).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "budget.h"
#include "commands.h"

#define STACK_FRAMES_SHOWN 6

typedef struct options {
    const char *budget_path;
    const char *output;
    const char *junit;
    bool json, github, merge, update, no_color;
    bool allow_estimates;  /* check sampled traces, whose numbers are estimates */
    bool default_suppressions;
    bool allow_incomplete; /* check traces that lost events or were cut short */
    uint64_t headroom_ppm; /* parts per million added by --update */
    mt_patterns_t suppressions;
    mt_patterns_t wrappers;
} options_t;

typedef struct check {
    const options_t *opt;
    mt_budget_set_t set;
    size_t ntraces;
    const char **paths;
    mt_trace_t **traces;
    mt_symbolizer_t **syms;
    mt_budget_results_t res;
    FILE *out;
    bool color;
    bool estimated;        /* a trace was sampled: measured values are estimates */
} check_t;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: memtrack check --budget FILE [OPTIONS] TRACE...\n"
            "Checks traces against the memory budgets in FILE (docs/ci.md) and fails\n"
            "when one is exceeded, showing the sites that account for it.\n"
            "\n"
            "  --budget FILE          the budget file (JSON)\n"
            "  --merge                add the traces up instead of checking each process\n"
            "  --json                 write the results as JSON (docs/json-schema.md)\n"
            "  -o, --output FILE      write the text or JSON to FILE instead of standard output\n"
            "  --junit FILE           also write JUnit XML: one testcase per budget\n"
            "  --github               also print GitHub Actions ::error annotations\n"
            "  --suppressions FILE    LeakSanitizer-style 'leak:PATTERN' lines for the leak\n"
            "                         metrics (repeatable)\n"
            "  --no-default-suppressions  count one-time libc/ld.so allocations as leaks too\n"
            "  --update               write FILE from the traces' numbers instead of checking\n"
            "                         (a new file gets one whole-run budget)\n"
            "  --headroom P%%          with --update: limits are the measured values plus P%%\n"
            "                         (default 0%%)\n"
            "  --allow-incomplete     check traces that were cut short or lost events\n"
            "                         (otherwise such a trace is bad input)\n"
            "  --allow-estimates      check sampled traces (MEMTRACK_SAMPLE_BYTES) too: their\n"
            "                         numbers are estimates, so a limit may pass or fail by chance\n"
            "  --no-color             no colours even on a terminal (NO_COLOR also works)\n"
            "  -h, --help             print this help\n"
            "\n"
            "Exit status: 0 every budget holds, 1 a budget is exceeded, 2 bad usage or bad input.\n");
}

static int bad_usage(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "memtrack check: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (try 'memtrack check --help')\n");
    return MT_EXIT_BAD_INPUT;
}

/* Parses "10%", "10" or "2.5%" into parts per million. */
static int parse_headroom(const char *s, uint64_t *ppm)
{
    uint64_t whole = 0, frac = 0, scale = 1;
    const char *p = s;
    if (*p < '0' || *p > '9')
        return -EINVAL;
    for (; *p >= '0' && *p <= '9'; p++)
        if ((whole = whole * 10 + (uint64_t)(*p - '0')) > 1000000)
            return -EINVAL;
    if (*p == '.')
        for (p++; *p >= '0' && *p <= '9'; p++)
            if (scale < 10000) {
                frac = frac * 10 + (uint64_t)(*p - '0');
                scale *= 10;
            }
    if (*p == '%')
        p++;
    if (*p)
        return -EINVAL;
    *ppm = whole * 10000 + frac * 10000 / scale;
    return 0;
}

/* ---- options ---- */

enum {
    OPT_BUDGET = 256,
    OPT_MERGE,
    OPT_JSON,
    OPT_JUNIT,
    OPT_GITHUB,
    OPT_SUPPRESSIONS,
    OPT_NO_DEFAULT_SUPPRESSIONS,
    OPT_UPDATE,
    OPT_HEADROOM,
    OPT_NO_COLOR,
    OPT_ALLOW_INCOMPLETE,
    OPT_ALLOW_ESTIMATES,
};

static const struct option long_options[] = {
    {"budget", required_argument, NULL, OPT_BUDGET},
    {"merge", no_argument, NULL, OPT_MERGE},
    {"json", no_argument, NULL, OPT_JSON},
    {"output", required_argument, NULL, 'o'},
    {"junit", required_argument, NULL, OPT_JUNIT},
    {"github", no_argument, NULL, OPT_GITHUB},
    {"suppressions", required_argument, NULL, OPT_SUPPRESSIONS},
    {"no-default-suppressions", no_argument, NULL, OPT_NO_DEFAULT_SUPPRESSIONS},
    {"update", no_argument, NULL, OPT_UPDATE},
    {"headroom", required_argument, NULL, OPT_HEADROOM},
    {"no-color", no_argument, NULL, OPT_NO_COLOR},
    {"allow-incomplete", no_argument, NULL, OPT_ALLOW_INCOMPLETE},
    {"no-colour", no_argument, NULL, OPT_NO_COLOR},
    {"allow-estimates", no_argument, NULL, OPT_ALLOW_ESTIMATES},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* Parses the options. Returns -1 to go on, or the exit status. */
static int parse_options(int argc, char **argv, options_t *opt)
{
    int c;
    char err[512];
    bool headroom = false;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":o:h", long_options, NULL)) != -1) {
        switch (c) {
        case OPT_BUDGET: opt->budget_path = optarg; break;
        case OPT_MERGE: opt->merge = true; break;
        case OPT_JSON: opt->json = true; break;
        case 'o': opt->output = optarg; break;
        case OPT_JUNIT: opt->junit = optarg; break;
        case OPT_GITHUB: opt->github = true; break;
        case OPT_ALLOW_INCOMPLETE: opt->allow_incomplete = true; break;
        case OPT_SUPPRESSIONS:
            if (mt__suppressions_load(&opt->suppressions, optarg, err, sizeof err) < 0) {
                fprintf(stderr, "memtrack: %s\n", err);
                return MT_EXIT_BAD_INPUT;
            }
            break;
        case OPT_NO_DEFAULT_SUPPRESSIONS: opt->default_suppressions = false; break;
        case OPT_UPDATE: opt->update = true; break;
        case OPT_HEADROOM:
            if (parse_headroom(optarg, &opt->headroom_ppm) < 0)
                return bad_usage("--headroom wants a percentage such as 10%%, not '%s'", optarg);
            headroom = true;
            break;
        case OPT_NO_COLOR: opt->no_color = true; break;
        case OPT_ALLOW_ESTIMATES: opt->allow_estimates = true; break;
        case 'h': usage(stdout); return MT_EXIT_OK;
        case ':': return bad_usage("%s needs a value", argv[optind - 1]);
        default:
            if (optopt && optopt < 256)
                return bad_usage("unknown option '-%c'", optopt);
            return bad_usage("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (!opt->budget_path)
        return bad_usage("no budget file given (--budget FILE)");
    if (optind >= argc)
        return bad_usage("no trace given");
    if (headroom && !opt->update)
        return bad_usage("--headroom goes with --update");
    if (opt->json && opt->github && !opt->output)
        return bad_usage("--json and --github both write to standard output: send the JSON to a file with -o");
    if (mt__wrappers_add_defaults(&opt->wrappers) < 0 ||
        (opt->default_suppressions && mt__suppressions_add_defaults(&opt->suppressions) < 0)) {
        fprintf(stderr, "memtrack: out of memory\n");
        return MT_EXIT_BAD_INPUT;
    }
    return -1;
}

/* ---- loading ---- */

static int load_traces(check_t *ck, char **paths, size_t n)
{
    char err[512];
    ck->paths = (const char **)paths;
    ck->traces = calloc(n, sizeof *ck->traces);
    ck->syms = calloc(n, sizeof *ck->syms);
    if (!ck->traces || !ck->syms) {
        fprintf(stderr, "memtrack: out of memory\n");
        return -ENOMEM;
    }
    for (; ck->ntraces < n; ck->ntraces++) {
        size_t i = ck->ntraces;
        int rc = mt__trace_open(paths[i], &ck->traces[i], err, sizeof err);
        if (rc < 0) {
            size_t len = strlen(paths[i]);
            if (!strncmp(err, paths[i], len) && err[len] == ':')
                fprintf(stderr, "memtrack: %s\n", err);
            else
                fprintf(stderr, "memtrack: %s: %s\n", paths[i], err[0] ? err : strerror(-rc));
            return rc;
        }
        const mt_trace_info_t *info = mt__trace_info(ck->traces[i]);
        if (!ck->opt->allow_incomplete && (!info->complete || info->truncated || info->dropped)) {
            ck->ntraces++;
            if (info->dropped)
                fprintf(stderr, "memtrack: %s: %" PRIu64 " events were lost while recording: its numbers are "
                        "too low to check against a budget (--allow-incomplete checks them anyway)\n",
                        paths[i], info->dropped);
            else
                fprintf(stderr, "memtrack: %s: the trace is cut short (the program was killed, or the file "
                        "damaged): its numbers cannot be checked (--allow-incomplete checks them anyway)\n",
                        paths[i]);
            return -EINVAL;
        }
        if (!(ck->syms[i] = mt__symbolizer_new(ck->traces[i]))) {
            ck->ntraces++;
            fprintf(stderr, "memtrack: out of memory\n");
            return -ENOMEM;
        }
    }
    return 0;
}

/* A sampled trace's numbers are estimates: checking a limit on them is
 * refused unless --allow-estimates says so. Returns 0, or -EINVAL after
 * saying which trace. */
static int check_sampled(check_t *ck)
{
    for (size_t i = 0; i < ck->ntraces; i++) {
        const mt_trace_info_t *in = mt__trace_info(ck->traces[i]);
        if (!(in->flags & MT_TRACE_F_SAMPLED))
            continue;
        if (!ck->opt->allow_estimates) {
            fprintf(stderr,
                    "memtrack: %s: the trace is sampled (about one allocation per %" PRIu64
                    " bytes), so its numbers are estimates; pass --allow-estimates to check it anyway\n",
                    ck->paths[i], in->sample_bytes);
            return -EINVAL;
        }
        ck->estimated = true;
    }
    return 0;
}

static void unload(check_t *ck)
{
    for (size_t i = 0; i < ck->ntraces; i++) {
        mt__symbolizer_free(ck->syms ? ck->syms[i] : NULL);
        mt__trace_close(ck->traces[i]);
    }
    free(ck->syms);
    free(ck->traces);
    mt__budget_results_free(&ck->res);
    mt__budget_set_free(&ck->set);
}

/* ---- shared by the outputs ---- */

static const char *base_name(const char *path)
{
    const char *slash = path ? strrchr(path, '/') : NULL;
    return slash ? slash + 1 : path;
}

static const char *scope_name(const mt_budget_t *b)
{
    if (b->region == MT_BUDGET_BETWEEN)
        return "between";
    if (b->region == MT_BUDGET_FROM_TO)
        return "region";
    return b->function || b->file || b->module ? "sites" : "run";
}

/* A value for people: "1,024" for counts, "1,572,864 B (1.5 MiB)" for sizes. */
static char *value_text(mt_budget_metric_t m, uint64_t v, char *buf, size_t cap)
{
    char a[32], b[32];
    if (!mt__budget_metric_is_size(m))
        snprintf(buf, cap, "%s", mt__format_count(v, a, sizeof a));
    else if (v < 1024)
        snprintf(buf, cap, "%" PRIu64 " B", v);
    else
        snprintf(buf, cap, "%s B (%s)", mt__format_count(v, a, sizeof a), mt__format_size(v, b, sizeof b));
    return buf;
}

/* The symbolized stack of a top site, with its headline frame. */
typedef struct site_view {
    mt_frame_t *frames;
    size_t nframes, headline;
} site_view_t;

static int view_site(check_t *ck, const mt_budget_site_t *s, site_view_t *v)
{
    *v = (site_view_t){0};
    if (s->stack == MT_REPLAY_NO_STACK)
        return 0;
    int rc = mt__symbolize_stack(ck->syms[s->trace], ck->traces[s->trace], s->stack, &v->frames, &v->nframes);
    if (rc < 0)
        return rc;
    v->headline = v->nframes ? mt__headline(v->frames, v->nframes, &ck->opt->wrappers) : 0;
    return 0;
}

static void frame_text(const mt_frame_t *f, char *buf, size_t cap)
{
    char name[256];
    const char *fn = f->function ? mt__short_function(f->function, 60, name, sizeof name) : "??";
    if (f->file && f->line)
        snprintf(buf, cap, "%s (%s:%" PRIu32 ")", fn, base_name(f->file), f->line);
    else if (f->module && !f->function)
        snprintf(buf, cap, "?? (%s+0x%" PRIx64 ")", base_name(f->module), f->offset);
    else if (f->module)
        snprintf(buf, cap, "%s (%s)", fn, base_name(f->module));
    else
        snprintf(buf, cap, "%s", fn);
}

static const char *trace_label(const check_t *ck, long ti, char *buf, size_t cap)
{
    if (ti < 0)
        return "";
    const mt_trace_info_t *in = mt__trace_info(ck->traces[ti]);
    snprintf(buf, cap, "%s (pid %" PRIu64 ")", mt__budget_process_name(ck->traces[ti]), in->pid);
    return buf;
}

/* ---- text ---- */

#define C_BOLD "\033[1m"
#define C_RED "\033[31m"
#define C_GREEN "\033[32m"
#define C_CYAN "\033[36m"
#define C_DIM "\033[2m"
#define C_OFF "\033[0m"

static const char *col(const check_t *ck, const char *code) { return ck->color ? code : ""; }

static int print_sites(check_t *ck, const mt_budget_result_t *r)
{
    FILE *o = ck->out;
    char v[96], head[512], pbuf[160];
    for (size_t i = 0; i < r->nsites; i++) {
        site_view_t sv;
        int rc = view_site(ck, &r->sites[i], &sv);
        if (rc < 0)
            return rc;
        if (sv.nframes)
            frame_text(&sv.frames[sv.headline], head, sizeof head);
        else
            snprintf(head, sizeof head, "[no stack]");
        fprintf(o, "        #%zu %s  %s%s%s", i + 1, value_text(r->metric, r->sites[i].value, v, sizeof v),
                col(ck, C_CYAN), head, col(ck, C_OFF));
        if (r->trace < 0 && ck->ntraces > 1)
            fprintf(o, "  in %s", trace_label(ck, (long)r->sites[i].trace, pbuf, sizeof pbuf));
        fputc('\n', o);
        size_t shown = 0;
        for (size_t k = sv.headline; k < sv.nframes && shown < STACK_FRAMES_SHOWN; k++, shown++) {
            frame_text(&sv.frames[k], head, sizeof head);
            fprintf(o, "           %sat %s%s\n", col(ck, C_DIM), head, col(ck, C_OFF));
            if (sv.frames[k].function && !strcmp(sv.frames[k].function, "main"))
                break;
        }
        free(sv.frames);
    }
    return 0;
}

static int print_text(check_t *ck)
{
    FILE *o = ck->out;
    size_t failed = 0;
    char pbuf[160];
    fprintf(o, "%smemtrack check: %zu budget%s from %s, %zu trace%s%s%s\n", col(ck, C_BOLD), ck->set.n,
            ck->set.n == 1 ? "" : "s", ck->opt->budget_path, ck->ntraces, ck->ntraces == 1 ? "" : "s",
            ck->opt->merge && ck->ntraces > 1 ? " merged" : "", col(ck, C_OFF));
    if (ck->estimated)
        fprintf(o, "  note: sampled traces: every measured value is an estimate\n");
    for (size_t i = 0; i < ck->res.n; i++) {
        const mt_budget_result_t *r = &ck->res.items[i];
        const mt_budget_t *b = &ck->set.items[r->budget];
        char mv[96], lv[96], dv[96];
        value_text(r->metric, r->measured, mv, sizeof mv);
        value_text(r->metric, r->limit, lv, sizeof lv);
        fprintf(o, "  %s%s%s  %s: %s %s, limit %s", col(ck, r->passed ? C_GREEN : C_RED),
                r->passed ? "PASS" : "FAIL", col(ck, C_OFF), b->name, mt__budget_metric_name(r->metric), mv, lv);
        if (r->passed) {
            fprintf(o, ", margin %s", value_text(r->metric, r->limit - r->measured, dv, sizeof dv));
        } else {
            failed++;
            fprintf(o, ", %sover by %s", col(ck, C_RED), value_text(r->metric, r->measured - r->limit, dv, sizeof dv));
            if (r->limit)
                fprintf(o, " (+%.1f%%)", (double)(r->measured - r->limit) * 100.0 / (double)r->limit);
            fprintf(o, "%s", col(ck, C_OFF));
        }
        if (r->trace >= 0 && ck->ntraces > 1)
            fprintf(o, "  [%s]", trace_label(ck, r->trace, pbuf, sizeof pbuf));
        fputc('\n', o);
        if (b->region != MT_BUDGET_WHOLE_RUN) {
            const char *from = b->region == MT_BUDGET_BETWEEN ? b->between : b->from;
            const char *to = b->region == MT_BUDGET_BETWEEN ? b->between : b->to;
            fprintf(o, "        %sworst of %zu interval%s: #%zu, '%s' to '%s'%s", col(ck, C_DIM), r->intervals,
                    r->intervals == 1 ? "" : "s", r->worst_interval + 1, from, to, col(ck, C_OFF));
            if (r->trace < 0 && ck->ntraces > 1 && r->worst_trace >= 0)
                fprintf(o, " in %s", trace_label(ck, r->worst_trace, pbuf, sizeof pbuf));
            fputc('\n', o);
        }
        if (!r->passed) {
            int rc = print_sites(ck, r);
            if (rc < 0)
                return rc;
        }
    }
    if (failed)
        fprintf(o, "%smemtrack check: %zu of %zu limit%s exceeded%s\n", col(ck, C_RED), failed, ck->res.n,
                ck->res.n == 1 ? "" : "s", col(ck, C_OFF));
    else
        fprintf(o, "%smemtrack check: all %zu limit%s hold%s\n", col(ck, C_GREEN), ck->res.n,
                ck->res.n == 1 ? "" : "s", col(ck, C_OFF));
    return 0;
}

/* ---- JSON ---- */

static bool add_i64(cJSON *obj, const char *name, uint64_t plus, uint64_t minus)
{
    char buf[24];
    if (plus >= minus)
        snprintf(buf, sizeof buf, "%" PRIu64, plus - minus);
    else
        snprintf(buf, sizeof buf, "-%" PRIu64, minus - plus);
    return cJSON_AddRawToObject(obj, name, buf) != NULL;
}

static cJSON *process_json(const check_t *ck, size_t i)
{
    const mt_trace_info_t *in = mt__trace_info(ck->traces[i]);
    cJSON *o = cJSON_CreateObject();
    bool ok = o && mt__json_u64(o, "pid", in->pid) && mt__json_str(o, "exe", in->exe) && mt__json_str(o, "trace", ck->paths[i]) &&
              mt__json_str(o, "name", mt__budget_process_name(ck->traces[i]));
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static cJSON *site_json(check_t *ck, const mt_budget_site_t *s)
{
    site_view_t sv;
    if (view_site(ck, s, &sv) < 0)
        return NULL;
    const mt_frame_t *h = sv.nframes ? &sv.frames[sv.headline] : NULL;
    cJSON *o = cJSON_CreateObject();
    bool ok = o && mt__json_u64(o, "value", s->value) &&
              (s->stack == MT_REPLAY_NO_STACK ? cJSON_AddNullToObject(o, "stack_id") != NULL
                                              : mt__json_u64(o, "stack_id", s->stack)) &&
              mt__json_u64(o, "pid", mt__trace_info(ck->traces[s->trace])->pid) &&
              mt__json_str(o, "function", h ? h->function : NULL) && mt__json_str(o, "file", h ? h->file : NULL) &&
              mt__json_line(o, "line", h ? h->line : 0) && mt__json_str(o, "module", h ? h->module : NULL);
    cJSON *stack = ok ? cJSON_AddArrayToObject(o, "stack") : NULL;
    ok = stack != NULL;
    for (size_t i = 0; ok && i < sv.nframes; i++) {
        cJSON *f = mt__json_frame(&sv.frames[i]);
        ok = f && cJSON_AddItemToArray(stack, f);
    }
    free(sv.frames);
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static cJSON *result_json(check_t *ck, const mt_budget_result_t *r)
{
    const mt_budget_t *b = &ck->set.items[r->budget];
    cJSON *o = cJSON_CreateObject();
    bool ok = o && mt__json_str(o, "budget", b->name) && mt__json_str(o, "scope", scope_name(b)) &&
              mt__json_str(o, "metric", mt__budget_metric_name(r->metric)) && mt__json_u64(o, "measured", r->measured) &&
              mt__json_u64(o, "limit", r->limit) && add_i64(o, "margin", r->limit, r->measured) &&
              cJSON_AddBoolToObject(o, "passed", r->passed) &&
              (r->trace < 0 ? cJSON_AddNullToObject(o, "pid") != NULL
                            : mt__json_u64(o, "pid", mt__trace_info(ck->traces[r->trace])->pid));
    if (ok && b->region != MT_BUDGET_WHOLE_RUN) {
        cJSON *w = cJSON_CreateObject();
        ok = mt__json_u64(o, "intervals", r->intervals) && w && cJSON_AddItemToObject(o, "worst_interval", w);
        if (!ok)
            cJSON_Delete(w);
        const mt_trace_t *t = r->worst_trace >= 0 ? ck->traces[r->worst_trace] : NULL;
        ok = ok && mt__json_u64(w, "index", r->worst_interval) &&
             mt__json_u64(w, "pid", t ? mt__trace_info(t)->pid : 0) && mt__json_u64(w, "from_seq", r->worst_from_seq) &&
             mt__json_u64(w, "to_seq", r->worst_to_seq) &&
             mt__json_u64(w, "from_time_ns", t ? mt__trace_time_of(t, r->worst_from_seq) : 0) &&
             mt__json_u64(w, "to_time_ns", t ? mt__trace_time_of(t, r->worst_to_seq) : 0);
    } else if (ok) {
        ok = cJSON_AddNullToObject(o, "intervals") && cJSON_AddNullToObject(o, "worst_interval");
    }
    cJSON *sites = ok ? cJSON_AddArrayToObject(o, "sites") : NULL;
    ok = sites != NULL;
    for (size_t i = 0; ok && i < r->nsites; i++) {
        cJSON *s = site_json(ck, &r->sites[i]);
        ok = s && cJSON_AddItemToArray(sites, s);
    }
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static int print_json(check_t *ck)
{
    cJSON *doc = cJSON_CreateObject();
    bool ok = doc && cJSON_AddStringToObject(doc, "format", "memtrack-check") && mt__json_u64(doc, "version", 1) &&
              mt__json_str(doc, "budget_file", ck->opt->budget_path) &&
              cJSON_AddBoolToObject(doc, "merged", ck->opt->merge) &&
              cJSON_AddBoolToObject(doc, "estimated", ck->estimated) &&
              cJSON_AddBoolToObject(doc, "passed", ck->res.all_passed);
    cJSON *procs = ok ? cJSON_AddArrayToObject(doc, "processes") : NULL;
    ok = procs != NULL;
    for (size_t i = 0; ok && i < ck->ntraces; i++) {
        cJSON *p = process_json(ck, i);
        ok = p && cJSON_AddItemToArray(procs, p);
    }
    cJSON *results = ok ? cJSON_AddArrayToObject(doc, "results") : NULL;
    ok = results != NULL;
    for (size_t i = 0; ok && i < ck->res.n; i++) {
        cJSON *r = result_json(ck, &ck->res.items[i]);
        ok = r && cJSON_AddItemToArray(results, r);
    }
    char *text = ok ? cJSON_Print(doc) : NULL;
    cJSON_Delete(doc);
    if (!text)
        return -ENOMEM;
    fputs(text, ck->out);
    fputc('\n', ck->out);
    free(text);
    return 0;
}

/* ---- JUnit and GitHub ---- */

static void xml_text(FILE *f, const char *s)
{
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '&')
            fputs("&amp;", f);
        else if (c == '<')
            fputs("&lt;", f);
        else if (c == '>')
            fputs("&gt;", f);
        else if (c == '"')
            fputs("&quot;", f);
        else if (c < 32 && c != '\n' && c != '\t')
            fputc('?', f);
        else
            fputc(c, f);
    }
}

/* One line saying what a failed limit measured. */
static void failure_message(const check_t *ck, const mt_budget_result_t *r, char *buf, size_t cap)
{
    char mv[96], lv[96], dv[96];
    snprintf(buf, cap, "%s %s%s exceeds the limit %s by %s", mt__budget_metric_name(r->metric),
             value_text(r->metric, r->measured, mv, sizeof mv), ck->estimated ? " (estimate)" : "",
             value_text(r->metric, r->limit, lv, sizeof lv), value_text(r->metric, r->measured - r->limit, dv, sizeof dv));
}

static int write_junit(check_t *ck, const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "memtrack: %s: cannot write: %s\n", path, strerror(errno));
        return -errno;
    }
    /* One testcase per budget (per process unless merged): its limits in one place. */
    size_t tests = 0, failures = 0;
    for (size_t i = 0; i < ck->res.n; i++) {
        const mt_budget_result_t *r = &ck->res.items[i];
        bool first = true, failed = !r->passed;
        for (size_t k = 0; k < i; k++)
            if (ck->res.items[k].budget == r->budget && ck->res.items[k].trace == r->trace)
                first = false;
        for (size_t k = i + 1; first && k < ck->res.n; k++)
            if (ck->res.items[k].budget == r->budget && ck->res.items[k].trace == r->trace)
                failed |= !ck->res.items[k].passed;
        tests += first;
        failures += first && failed;
    }
    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    fprintf(f, "<testsuites name=\"memtrack budgets\" tests=\"%zu\" failures=\"%zu\" errors=\"0\">\n", tests, failures);
    fprintf(f, "  <testsuite name=\"");
    xml_text(f, ck->opt->budget_path);
    fprintf(f, "\" tests=\"%zu\" failures=\"%zu\" errors=\"0\" skipped=\"0\">\n", tests, failures);
    for (size_t i = 0; i < ck->res.n; i++) {
        const mt_budget_result_t *r = &ck->res.items[i];
        bool first = true;
        for (size_t k = 0; k < i; k++)
            if (ck->res.items[k].budget == r->budget && ck->res.items[k].trace == r->trace)
                first = false;
        if (!first)
            continue;
        char pbuf[160];
        fprintf(f, "    <testcase classname=\"memtrack.budget\" name=\"");
        xml_text(f, ck->set.items[r->budget].name);
        if (r->trace >= 0 && ck->ntraces > 1) {
            fprintf(f, " [");
            xml_text(f, trace_label(ck, r->trace, pbuf, sizeof pbuf));
            fprintf(f, "]");
        }
        fprintf(f, "\">\n");
        for (size_t k = i; k < ck->res.n; k++) {
            const mt_budget_result_t *q = &ck->res.items[k];
            if (q->budget != r->budget || q->trace != r->trace || q->passed)
                continue;
            char msg[512], head[512];
            failure_message(ck, q, msg, sizeof msg);
            fprintf(f, "      <failure type=\"memory budget exceeded\" message=\"");
            xml_text(f, msg);
            fprintf(f, "\">");
            xml_text(f, msg);
            fprintf(f, "\n");
            for (size_t s = 0; s < q->nsites; s++) {
                site_view_t sv;
                if (view_site(ck, &q->sites[s], &sv) < 0)
                    break;
                if (sv.nframes)
                    frame_text(&sv.frames[sv.headline], head, sizeof head);
                else
                    snprintf(head, sizeof head, "[no stack]");
                char v[96];
                fprintf(f, "#%zu %s ", s + 1, value_text(q->metric, q->sites[s].value, v, sizeof v));
                xml_text(f, head);
                fprintf(f, "\n");
                for (size_t fr = sv.headline + 1; fr < sv.nframes && fr <= sv.headline + STACK_FRAMES_SHOWN; fr++) {
                    frame_text(&sv.frames[fr], head, sizeof head);
                    fprintf(f, "    at ");
                    xml_text(f, head);
                    fprintf(f, "\n");
                }
                free(sv.frames);
            }
            fprintf(f, "</failure>\n");
        }
        fprintf(f, "    </testcase>\n");
    }
    fprintf(f, "  </testsuite>\n</testsuites>\n");
    if (fflush(f) != 0 || ferror(f)) {
        int e = errno;
        fclose(f);
        fprintf(stderr, "memtrack: %s: write error: %s\n", path, strerror(e));
        return -e;
    }
    if (fclose(f) != 0) {
        fprintf(stderr, "memtrack: %s: write error: %s\n", path, strerror(errno));
        return -errno;
    }
    return 0;
}

/* GitHub workflow commands escape %, CR and LF, and in properties also : and ,. */
static void gh_escape(FILE *f, const char *s, bool property)
{
    for (; s && *s; s++) {
        if (*s == '%')
            fputs("%25", f);
        else if (*s == '\r')
            fputs("%0D", f);
        else if (*s == '\n')
            fputs("%0A", f);
        else if (property && *s == ':')
            fputs("%3A", f);
        else if (property && *s == ',')
            fputs("%2C", f);
        else
            fputc(*s, f);
    }
}

/* Paths in annotations are relative to the repository: GITHUB_WORKSPACE,
 * else the current directory. */
static const char *repo_relative(const char *file, char *cwd, size_t cap)
{
    const char *root = getenv("GITHUB_WORKSPACE");
    if (!root || !*root)
        root = getcwd(cwd, cap);
    size_t n = root ? strlen(root) : 0;
    if (n && !strncmp(file, root, n) && file[n] == '/')
        return file + n + 1;
    return file;
}

static int print_github(check_t *ck)
{
    char cwd[4096];
    for (size_t i = 0; i < ck->res.n; i++) {
        const mt_budget_result_t *r = &ck->res.items[i];
        if (r->passed)
            continue;
        char msg[512], head[512] = "";
        failure_message(ck, r, msg, sizeof msg);
        site_view_t sv = {0};
        const mt_frame_t *at = NULL;
        if (r->nsites && view_site(ck, &r->sites[0], &sv) < 0)
            return -ENOMEM;
        /* The first frame from the headline outward with a source line. */
        for (size_t k = sv.headline; k < sv.nframes && !at; k++)
            if (sv.frames[k].file && sv.frames[k].line)
                at = &sv.frames[k];
        if (sv.nframes)
            frame_text(&sv.frames[sv.headline], head, sizeof head);
        printf("::error ");
        if (at) {
            printf("file=");
            gh_escape(stdout, repo_relative(at->file, cwd, sizeof cwd), true);
            printf(",line=%" PRIu32 ",", at->line);
        }
        printf("title=");
        gh_escape(stdout, "memtrack budget '", true);
        gh_escape(stdout, ck->set.items[r->budget].name, true);
        gh_escape(stdout, "'", true);
        printf("::");
        gh_escape(stdout, msg, false);
        if (head[0]) {
            gh_escape(stdout, "; top site ", false);
            gh_escape(stdout, head, false);
        }
        printf("\n");
        free(sv.frames);
    }
    return 0;
}

/* ---- --update ---- */

static uint64_t with_headroom(uint64_t v, uint64_t ppm)
{
    unsigned __int128 add = ((unsigned __int128)v * ppm + 999999) / 1000000;
    unsigned __int128 r = (unsigned __int128)v + add;
    return r > ((unsigned __int128)1 << 63) ? (UINT64_C(1) << 63) : (uint64_t)r;
}

/* Writes a size limit the way people write budgets, "12MiB" or "640KiB",
 * when it is at least 10 units and whole (the caller rounded it up).
 * Returns false when the plain number reads better. */
static bool readable_size(uint64_t v, char *buf, size_t cap)
{
    static const char *const units[] = {"GiB", "MiB", "KiB"};
    for (int i = 0; i < 3; i++) {
        uint64_t unit = UINT64_C(1) << (10 * (3 - i));
        if (v >= 10 * unit && v % unit == 0) {
            snprintf(buf, cap, "%" PRIu64 "%s", v / unit, units[i]);
            return true;
        }
    }
    return false;
}

/* Rounds a size limit up to whole MiB from 10 MiB, to whole KiB from 10
 * KiB, so that the file reads like one written by hand; a little more
 * headroom, never less. */
static uint64_t round_size_up(uint64_t v)
{
    for (int shift = 20; shift >= 10; shift -= 10) {
        uint64_t unit = UINT64_C(1) << shift;
        if (v >= 10 * unit && v <= (UINT64_C(1) << 62))
            return (v + unit - 1) / unit * unit;
    }
    return v;
}

static cJSON *budget_json(const mt_budget_t *b, const uint64_t *limits)
{
    cJSON *o = cJSON_CreateObject();
    bool ok = o && cJSON_AddStringToObject(o, "name", b->name);
    const char *keys[] = {"function", "file", "module", "from", "to", "between", "process"};
    const char *vals[] = {b->function, b->file, b->module, b->from, b->to, b->between, b->process};
    for (size_t i = 0; ok && i < sizeof keys / sizeof keys[0]; i++)
        if (vals[i])
            ok = cJSON_AddStringToObject(o, keys[i], vals[i]) != NULL;
    for (size_t i = 0; ok && i < b->nlimits; i++) {
        const char *key = mt__budget_metric_name(b->limits[i].metric);
        char size[32];
        if (mt__budget_metric_is_size(b->limits[i].metric) && readable_size(limits[i], size, sizeof size))
            ok = cJSON_AddStringToObject(o, key, size) != NULL;
        else
            ok = mt__json_u64(o, key, limits[i]);
    }
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* Writes the budget file with each limit set to its highest measured value
 * plus the headroom, through a temporary file renamed over the old one. */
static int write_update(check_t *ck)
{
    const char *path = ck->opt->budget_path;
    cJSON *doc = cJSON_CreateObject();
    cJSON *arr = doc ? cJSON_AddArrayToObject(doc, "budgets") : NULL;
    bool ok = arr != NULL;
    for (size_t bi = 0; ok && bi < ck->set.n; bi++) {
        const mt_budget_t *b = &ck->set.items[bi];
        uint64_t limits[MT_BUDGET_METRIC_COUNT] = {0};
        for (size_t i = 0; i < ck->res.n; i++) {
            const mt_budget_result_t *r = &ck->res.items[i];
            if (r->budget != bi)
                continue;
            for (size_t li = 0; li < b->nlimits; li++)
                if (b->limits[li].metric == r->metric && r->measured > limits[li])
                    limits[li] = r->measured;
        }
        for (size_t li = 0; li < b->nlimits; li++) {
            limits[li] = with_headroom(limits[li], ck->opt->headroom_ppm);
            if (mt__budget_metric_is_size(b->limits[li].metric))
                limits[li] = round_size_up(limits[li]);
        }
        cJSON *o = budget_json(b, limits);
        ok = o && cJSON_AddItemToArray(arr, o);
    }
    char *text = ok ? cJSON_Print(doc) : NULL;
    cJSON_Delete(doc);
    if (!text) {
        fprintf(stderr, "memtrack: out of memory\n");
        return -ENOMEM;
    }
    size_t n = strlen(path) + 8;
    char *tmp = malloc(n);
    FILE *f = tmp ? (snprintf(tmp, n, "%s.tmp", path), fopen(tmp, "w")) : NULL;
    int rc = 0;
    if (!f || fprintf(f, "%s\n", text) < 0 || fflush(f) != 0 || ferror(f)) {
        rc = -(errno ? errno : EIO);
        fprintf(stderr, "memtrack: %s: cannot write: %s\n", tmp ? tmp : path, strerror(-rc));
    }
    if (f && fclose(f) != 0 && !rc) {
        rc = -errno;
        fprintf(stderr, "memtrack: %s: cannot write: %s\n", tmp, strerror(errno));
    }
    if (!rc && rename(tmp, path) != 0) {
        rc = -errno;
        fprintf(stderr, "memtrack: %s: cannot replace it: %s\n", path, strerror(errno));
    }
    if (rc && tmp)
        unlink(tmp);
    free(tmp);
    free(text);
    if (!rc)
        fprintf(stderr, "memtrack: wrote %zu budget%s to %s\n", ck->set.n, ck->set.n == 1 ? "" : "s", path);
    return rc;
}

/* The budget --update starts from when the file does not exist yet. */
static int default_set(mt_budget_set_t *set)
{
    static const char text[] = "{\"budgets\": [{\"name\": \"whole run\", \"peak_bytes\": 0, \"leaked_bytes\": 0, "
                               "\"leaked_allocations\": 0, \"allocations\": 0, \"bytes_allocated\": 0, "
                               "\"temporary_allocations\": 0}]}";
    char err[128];
    return mt__budget_parse(text, sizeof text - 1, set, err, sizeof err);
}

/* ---- the command ---- */

/* Runs `memtrack check`: see usage(). Returns 0 when every budget holds, 1
 * when one is exceeded, 2 on bad usage or bad input (one line on stderr). */
int mt_cmd_check(int argc, char **argv)
{
    options_t opt = {.default_suppressions = true};
    check_t ck = {.opt = &opt};
    int status = MT_EXIT_BAD_INPUT;
    char err[1024];
    int rc = parse_options(argc, argv, &opt);
    if (rc >= 0) {
        status = rc;
        goto done;
    }
    rc = mt__budget_load(opt.budget_path, &ck.set, err, sizeof err);
    if (rc == -ENOENT && opt.update)
        rc = default_set(&ck.set);
    if (rc < 0) {
        fprintf(stderr, "memtrack: %s\n", err);
        goto done;
    }
    if (load_traces(&ck, argv + optind, (size_t)(argc - optind)) < 0 || check_sampled(&ck) < 0)
        goto done;
    mt_budget_eval_options_t eo = {.merge = opt.merge, .suppressions = &opt.suppressions};
    if ((rc = mt__budget_evaluate(&ck.set, ck.traces, ck.syms, ck.ntraces, &eo, &ck.res, err, sizeof err)) < 0) {
        if (rc == -EINVAL)
            fprintf(stderr, "memtrack: %s: %s\n", opt.budget_path, err);
        else
            fprintf(stderr, "memtrack: %s\n", err);
        goto done;
    }
    if (opt.update) {
        status = write_update(&ck) < 0 ? MT_EXIT_BAD_INPUT : MT_EXIT_OK;
        goto done;
    }
    ck.out = stdout;
    if (opt.output && !(ck.out = fopen(opt.output, "w"))) {
        fprintf(stderr, "memtrack: %s: cannot write: %s\n", opt.output, strerror(errno));
        goto done;
    }
    const char *no_color = getenv("NO_COLOR");
    ck.color = !opt.json && !opt.no_color && !(no_color && *no_color) && isatty(fileno(ck.out));
    rc = opt.json ? print_json(&ck) : print_text(&ck);
    if (rc < 0) {
        fprintf(stderr, "memtrack: out of memory\n");
        goto done;
    }
    if (fflush(ck.out) != 0 || ferror(ck.out)) {
        fprintf(stderr, "memtrack: %s: write error: %s\n", opt.output ? opt.output : "standard output",
                strerror(errno));
        goto done;
    }
    if (opt.github && print_github(&ck) < 0) {
        fprintf(stderr, "memtrack: out of memory\n");
        goto done;
    }
    fflush(stdout);
    if (opt.junit && write_junit(&ck, opt.junit) < 0)
        goto done;
    status = ck.res.all_passed ? MT_EXIT_OK : MT_EXIT_CHECK_FAILED;
done:
    if (ck.out && ck.out != stdout && fclose(ck.out) != 0 && status != MT_EXIT_BAD_INPUT) {
        fprintf(stderr, "memtrack: %s: write error: %s\n", opt.output, strerror(errno));
        status = MT_EXIT_BAD_INPUT;
    }
    unload(&ck);
    mt__patterns_free(&opt.suppressions);
    mt__patterns_free(&opt.wrappers);
    return status;
}
