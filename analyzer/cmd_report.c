/* cmd_report.c - `memtrack report`: totals and top sites of one or more traces, as text or JSON.
 *
 * Every trace is opened and replayed once (replay.c), then its sites become
 * report rows (report.c): one per stack, or grouped by headline function or
 * line, or matched across processes by their symbolized frames with
 * --merge. Only what needs names is symbolized: the rows that are printed,
 * the leaking sites when suppressions are on, and every site when grouping
 * needs its key. All traces stay open until the output is written, because
 * rows point into their symbolizers.
 *
 * Text goes to a person: sizes in binary units, the top rows by peak,
 * leaked, allocations and temporary, each with a trimmed stack; colours on
 * a terminal unless NO_COLOR is set. JSON follows docs/json-schema.md, with
 * exact integers (written raw, never through a double).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "commands.h"
#include "replay.h"

#define DEFAULT_TOP 10
#define STACK_FRAMES_SHOWN 8
#define FUNCTION_COLUMN_MAX 48

typedef struct options {
    bool json;
    bool merge;
    bool full_stacks;
    bool default_suppressions;
    bool no_color;
    bool no_progress;
    const char *output;
    size_t top;            /* 0: every row */
    bool sort_given;
    mt_sort_key_t sort;
    mt_group_by_t group_by;
    mt_patterns_t wrappers;
    mt_patterns_t suppressions;
} options_t;

/* The first suppression (its index) matching each string of a symbolized
 * frame, or -1 for none, keyed by the string's address: the symbolizer
 * interns its strings, so each distinct one is matched against the
 * patterns once however many leaking stacks show it. */
typedef struct match_cache {
    const char **keys; /* NULL for an empty slot */
    int *first;
    size_t cap, n;     /* cap: 0 or a power of two */
} match_cache_t;

/* One trace: opened, replayed, symbolized on demand. */
typedef struct proc {
    const char *path;
    mt_trace_t *trace;
    const mt_trace_info_t *info;
    mt_replay_t *replay;
    mt_symbolizer_t *sym;
    match_cache_t matches;
    char **warnings;
    size_t nwarnings;
} proc_t;

/* What one report section covers: one process, or all of them merged. */
typedef struct section {
    proc_t *procs;         /* the processes of the section */
    size_t nprocs;
    size_t first;          /* index of procs[0] among all processes (rows' proc) */
    bool merged;
    mt_rows_t rows;
    mt_totals_t totals;    /* summed over the processes */
    uint64_t dropped;
    uint64_t suppressed_bytes, suppressed_allocations;
    bool estimated, sampled;
} section_t;

typedef struct report {
    const options_t *opt;
    proc_t *procs;         /* every process, for rows' proc index */
    size_t nprocs;
    FILE *out;
    bool color;
} report_t;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: memtrack report [OPTIONS] TRACE...\n"
            "Prints where memory goes: totals, then the top sites by peak, leaked,\n"
            "allocations and temporary allocations, each with its call stack.\n"
            "\n"
            "  --json                 write JSON (docs/json-schema.md) instead of text\n"
            "  -o, --output FILE      write to FILE instead of standard output\n"
            "  --top N                rows per list (default %d; 0: all)\n"
            "  --sort KEY             peak, leaked, allocations, temporary or bytes:\n"
            "                         text shows only that list; JSON sites are in that order\n"
            "  --group-by WHAT        stack (default), function or line of the headline frame\n"
            "  --merge                add up sites across the traces (matched by symbols)\n"
            "  --full-stacks          print whole stacks, wrapper frames included\n"
            "  --alloc-fn GLOB        treat functions matching GLOB as allocation wrappers\n"
            "                         (repeatable; adds to the built-in list)\n"
            "  --suppressions FILE    LeakSanitizer-style 'leak:PATTERN' lines (repeatable)\n"
            "  --no-default-suppressions  count one-time libc/ld.so allocations as leaks too\n"
            "  --no-color             no colours even on a terminal (NO_COLOR also works)\n"
            "  --no-progress          no progress bar\n"
            "  -h, --help             print this help\n"
            "\n"
            "Several traces (one per process) give one section each, or one with --merge.\n"
            "Exit status: 0 success, 2 bad usage or bad input.\n",
            DEFAULT_TOP);
}

static int bad_usage(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "memtrack report: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (try 'memtrack report --help')\n");
    return MT_EXIT_BAD_INPUT;
}

/* Prints one line naming the file: the reader's messages already start with it. */
static void file_error(const char *path, const char *msg)
{
    size_t n = strlen(path);
    if (!strncmp(msg, path, n) && msg[n] == ':')
        fprintf(stderr, "memtrack: %s\n", msg);
    else
        fprintf(stderr, "memtrack: %s: %s\n", path, msg);
}

/* ---- progress ---- */

typedef struct progress {
    const char *path;
    struct timespec start, last;
    bool shown;
} progress_t;

static double seconds_since(const struct timespec *t)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - t->tv_sec) + (double)(now.tv_nsec - t->tv_nsec) / 1e9;
}

static void show_progress(void *ctx, uint64_t done, uint64_t total)
{
    progress_t *p = ctx;
    if (seconds_since(&p->start) < 0.5 || (p->shown && seconds_since(&p->last) < 0.1 && done < total))
        return;
    clock_gettime(CLOCK_MONOTONIC, &p->last);
    unsigned pct = total ? (unsigned)(done >= total ? 100 : done * 100 / total) : 100;
    char bar[31];
    memset(bar, ' ', 30);
    memset(bar, '#', pct * 30 / 100);
    bar[30] = '\0';
    const char *name = strrchr(p->path, '/') ? strrchr(p->path, '/') + 1 : p->path;
    fprintf(stderr, "\rmemtrack: analyzing %.40s [%s] %3u%%", name, bar, pct);
    fflush(stderr);
    p->shown = true;
}

/* ---- loading ---- */

static int add_warning(proc_t *p, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    char **nw = realloc(p->warnings, (p->nwarnings + 1) * sizeof *nw);
    if (!nw)
        return -ENOMEM;
    p->warnings = nw;
    if (!(p->warnings[p->nwarnings] = strdup(buf)))
        return -ENOMEM;
    p->nwarnings++;
    return 0;
}

static int collect_warnings(proc_t *p)
{
    const mt_trace_info_t *in = p->info;
    const mt_totals_t *t = mt__replay_totals(p->replay);
    int rc = 0;
    if (in->truncated)
        rc |= add_warning(p, "the trace is cut short at byte %" PRIu64 " (was the program killed?): "
                             "analyzed up to there", in->truncated_at);
    else if (!in->complete)
        rc |= add_warning(p, "the trace has no end record (the program did not exit normally): "
                             "analyzed up to its last record");
    if (in->flags & MT_TRACE_F_SAMPLED)
        rc |= add_warning(p, "allocations were sampled (about one per %" PRIu64 " bytes): "
                             "the numbers are estimates", in->sample_bytes);
    if (in->dropped)
        rc |= add_warning(p, "%" PRIu64 " events were lost while recording: the numbers are estimates",
                          in->dropped);
    if (t->missed_frees)
        rc |= add_warning(p, "%" PRIu64 " blocks were allocated again while live (their frees were lost)",
                          t->missed_frees);
    if (t->undefined_stacks)
        rc |= add_warning(p, "%" PRIu64 " allocations name a stack the trace does not define",
                          t->undefined_stacks);
    return rc < 0 ? -ENOMEM : 0;
}

/* Opens and replays one trace; prints the error line itself. */
static int load(proc_t *p, const options_t *opt)
{
    char err[512];
    int rc = mt__trace_open(p->path, &p->trace, err, sizeof err);
    if (rc < 0) {
        file_error(p->path, err[0] ? err : strerror(-rc));
        goto fail;
    }
    p->info = mt__trace_info(p->trace);
    progress_t prog = {.path = p->path};
    clock_gettime(CLOCK_MONOTONIC, &prog.start);
    mt_replay_options_t ro = {0};
    if (!opt->no_progress && isatty(STDERR_FILENO)) {
        ro.progress = show_progress;
        ro.progress_ctx = &prog;
    }
    /* Debug information is read while the trace replays. */
    if ((p->sym = mt__symbolizer_new(p->trace)))
        mt__symbolizer_warm_start(p->sym);
    rc = mt__replay_run(p->trace, &ro, &p->replay);
    if (p->sym)
        mt__symbolizer_warm_join(p->sym);
    if (prog.shown)
        fprintf(stderr, "\r\033[K");
    if (rc < 0) {
        if (rc == -ENOMEM)
            file_error(p->path, "out of memory");
        else
            file_error(p->path, mt__trace_error(p->trace));
        goto fail;
    }
    if (!p->sym || collect_warnings(p) < 0) {
        rc = -ENOMEM;
        file_error(p->path, "out of memory");
        goto fail;
    }
    return 0;
fail:
    return rc < 0 ? rc : -EINVAL;
}

static void unload(proc_t *p)
{
    free(p->matches.keys);
    free(p->matches.first);
    for (size_t i = 0; i < p->nwarnings; i++)
        free(p->warnings[i]);
    free(p->warnings);
    mt__symbolizer_free(p->sym);
    mt__replay_free(p->replay);
    mt__trace_close(p->trace);
}

/* ---- rows ---- */

static bool stack_truncated(const proc_t *p, uint32_t stack)
{
    const mt_stack_t *st = stack == MT_REPLAY_NO_STACK ? NULL : mt__trace_stack(p->trace, stack);
    return st && p->info->depth && st->depth >= p->info->depth;
}

static void add_totals(mt_totals_t *a, const mt_totals_t *b)
{
    a->events += b->events;
    a->allocations += b->allocations;
    a->bytes_allocated += b->bytes_allocated;
    a->frees += b->frees;
    a->bytes_freed += b->bytes_freed;
    a->peak_bytes += b->peak_bytes;
    a->peak_allocations += b->peak_allocations;
    a->leaked_bytes += b->leaked_bytes;
    a->leaked_allocations += b->leaked_allocations;
    a->temporary_allocations += b->temporary_allocations;
    a->temporary_bytes += b->temporary_bytes;
    a->unknown_frees += b->unknown_frees;
    a->missed_frees += b->missed_frees;
    a->missed_free_bytes += b->missed_free_bytes;
    a->undefined_stacks += b->undefined_stacks;
    a->markers += b->markers;
    a->threads += b->threads;
}

/* ---- suppressions ---- */

static size_t match_slot(const match_cache_t *c, const char *key)
{
    size_t i = (size_t)(((uintptr_t)key * 0x9e3779b97f4a7c15ull) >> 20) & (c->cap - 1);
    while (c->keys[i] && c->keys[i] != key)
        i = (i + 1) & (c->cap - 1);
    return i;
}

/* Stores in *first the index of the first suppression matching text (-1:
 * none), from the cache or matched now. Returns 0 or -ENOMEM. */
static int first_match(match_cache_t *c, const mt_patterns_t *s, const char *text, int *first)
{
    if (!text || !*text) {
        *first = -1;
        return 0;
    }
    if ((c->n + 1) * 2 > c->cap) {
        match_cache_t bigger = {.cap = c->cap ? c->cap * 2 : 256, .n = c->n};
        bigger.keys = calloc(bigger.cap, sizeof *bigger.keys);
        bigger.first = malloc(bigger.cap * sizeof *bigger.first);
        if (!bigger.keys || !bigger.first) {
            free(bigger.keys);
            free(bigger.first);
            return -ENOMEM;
        }
        for (size_t i = 0; i < c->cap; i++) {
            if (!c->keys[i])
                continue;
            size_t j = match_slot(&bigger, c->keys[i]);
            bigger.keys[j] = c->keys[i];
            bigger.first[j] = c->first[i];
        }
        free(c->keys);
        free(c->first);
        *c = bigger;
    }
    size_t i = match_slot(c, text);
    if (!c->keys[i]) {
        int k = 0;
        while (k < (int)s->n && !mt__suppression_match(s->items[k], text))
            k++;
        c->keys[i] = text;
        c->first[i] = k < (int)s->n ? k : -1;
        c->n++;
    }
    *first = c->first[i];
    return 0;
}

/* Returns through *out what mt__suppressed_by(frames, n, s) returns: the
 * first suppression matching any frame's function, file or module, or
 * NULL; each distinct string of p's symbolizer is matched only once.
 * Returns 0 or -ENOMEM. */
static int suppressed_by(proc_t *p, const mt_frame_t *frames, size_t n, const mt_patterns_t *s,
                         const char **out)
{
    int best = -1;
    for (size_t i = 0; i < n; i++) {
        const char *texts[3] = {frames[i].function, frames[i].file, frames[i].module};
        for (size_t k = 0; k < 3; k++) {
            int first;
            if (first_match(&p->matches, s, texts[k], &first) < 0)
                return -ENOMEM;
            if (first >= 0 && (best < 0 || first < best))
                best = first;
        }
    }
    *out = best >= 0 ? s->items[best] : NULL;
    return 0;
}

/* Turns the sites of the section's processes into rows. */
static int build_rows(section_t *sec, const options_t *opt)
{
    int rc = 0;
    mt_frame_t *frames = NULL;
    char *key = NULL;
    bool keyed = sec->merged || opt->group_by != MT_GROUP_STACK;
    for (size_t pi = 0; pi < sec->nprocs; pi++) {
        proc_t *p = &sec->procs[pi];
        const mt_totals_t *pt = mt__replay_totals(p->replay);
        if (sec->nprocs == 1)
            sec->totals = *pt;
        else
            add_totals(&sec->totals, pt);
        sec->dropped += p->info->dropped;
        sec->sampled |= (p->info->flags & MT_TRACE_F_SAMPLED) != 0;
        sec->estimated |= sec->sampled || p->info->dropped > 0;
        size_t nsites;
        const mt_site_t *sites = mt__replay_sites(p->replay, &nsites);
        for (size_t i = 0; i < nsites; i++) {
            const mt_site_t *s = &sites[i];
            if (!s->allocations && !s->frees)
                continue;
            mt_row_stats_t st = {
                .allocations = s->allocations, .bytes_allocated = s->bytes_allocated,
                .frees = s->frees, .bytes_freed = s->bytes_freed,
                .peak_bytes = s->peak_bytes, .peak_allocations = s->peak_allocations,
                .leaked_bytes = s->live_bytes, .leaked_allocations = s->live_allocations,
                .temporary_allocations = s->temporary_allocations, .temporary_bytes = s->temporary_bytes,
            };
            size_t nframes = 0, headline = 0;
            const char *suppressed = NULL;
            bool need_frames = keyed || (s->live_allocations && opt->suppressions.n);
            if (need_frames) {
                if ((rc = mt__symbolize_stack(p->sym, p->trace, s->stack, &frames, &nframes)) < 0)
                    goto fail;
                headline = nframes ? mt__headline(frames, nframes, &opt->wrappers) : 0;
                if (s->live_allocations &&
                    (rc = suppressed_by(p, frames, nframes, &opt->suppressions, &suppressed)) < 0)
                    goto fail;
            }
            if (suppressed) {
                st.suppressed_bytes = st.leaked_bytes;
                st.suppressed_allocations = st.leaked_allocations;
                st.leaked_bytes = st.leaked_allocations = 0;
                sec->suppressed_bytes += st.suppressed_bytes;
                sec->suppressed_allocations += st.suppressed_allocations;
            }
            if (keyed && !(key = mt__site_key(frames, nframes, headline, opt->group_by))) {
                rc = -ENOMEM;
                goto fail;
            }
            long r = mt__rows_add(&sec->rows, key, sec->first + pi, s->stack, frames, nframes, headline, &st);
            if (r < 0) {
                rc = (int)r;
                goto fail;
            }
            mt_row_t *row = &sec->rows.items[r];
            if (suppressed && !row->suppressed)
                row->suppressed = suppressed;
            row->stack_truncated |= stack_truncated(p, s->stack);
            free(key);
            free(frames);
            key = NULL;
            frames = NULL;
        }
    }
    sec->totals.leaked_bytes -= sec->suppressed_bytes;
    sec->totals.leaked_allocations -= sec->suppressed_allocations;
    return 0;
fail:
    free(key);
    free(frames);
    return rc;
}

/* Symbolizes a row's representative stack when it is about to be shown. */
static int row_frames(report_t *rep, mt_row_t *row)
{
    if (row->frames || row->stack == MT_REPLAY_NO_STACK)
        return 0;
    proc_t *p = &rep->procs[row->proc];
    int rc = mt__symbolize_stack(p->sym, p->trace, row->stack, &row->frames, &row->nframes);
    if (rc < 0)
        return rc;
    row->headline = row->nframes ? mt__headline(row->frames, row->nframes, &rep->opt->wrappers) : 0;
    return 0;
}

/* Stores the numbers of the rows to list for key (top N with a non-zero
 * metric, largest first) in a malloc'd array. */
static int top_rows(const section_t *sec, mt_sort_key_t key, size_t top, size_t **out, size_t *n)
{
    size_t *idx = malloc((sec->rows.n ? sec->rows.n : 1) * sizeof *idx);
    if (!idx)
        return -ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < sec->rows.n; i++)
        if (mt__row_metric(&sec->rows.items[i], key))
            idx[k++] = i;
    mt__rows_sort(&sec->rows, idx, k, key);
    if (top && k > top)
        k = top;
    *out = idx;
    *n = k;
    return 0;
}

/* ---- text ---- */

#define C_BOLD "\033[1m"
#define C_RED "\033[31m"
#define C_YELLOW "\033[33m"
#define C_CYAN "\033[36m"
#define C_DIM "\033[2m"
#define C_OFF "\033[0m"

static const char *col(const report_t *rep, const char *code) { return rep->color ? code : ""; }

static const char *base_name(const char *path)
{
    const char *slash = path ? strrchr(path, '/') : NULL;
    return slash ? slash + 1 : path;
}

/* "1 block", "1,024 blocks". */
static char *counted(uint64_t n, const char *noun, char *buf, size_t cap)
{
    char num[32];
    snprintf(buf, cap, "%s %s%s", mt__format_count(n, num, sizeof num), noun, n == 1 ? "" : "s");
    return buf;
}

static const char *process_name(const proc_t *p)
{
    if (p->info->command && *p->info->command)
        return p->info->command;
    if (p->info->exe && *p->info->exe)
        return p->info->exe;
    return "?";
}

/* "function (file.c:42)" or "?? (module+0x1234)". */
static void headline_text(const mt_row_t *row, char *buf, size_t cap)
{
    if (!row->nframes) {
        snprintf(buf, cap, "[no stack]");
        return;
    }
    const mt_frame_t *f = &row->frames[row->headline];
    char name[256];
    const char *fn = f->function ? mt__short_function(f->function, FUNCTION_COLUMN_MAX, name, sizeof name) : NULL;
    if (fn && f->file && f->line)
        snprintf(buf, cap, "%s (%s:%" PRIu32 ")", fn, base_name(f->file), f->line);
    else if (fn && f->module)
        snprintf(buf, cap, "%s (%s)", fn, base_name(f->module));
    else if (fn)
        snprintf(buf, cap, "%s", fn);
    else if (f->module)
        snprintf(buf, cap, "?? (%s+0x%" PRIx64 ")", base_name(f->module), f->offset);
    else
        snprintf(buf, cap, "?? (0x%" PRIx64 ")", f->address);
}

static void frame_columns(const mt_frame_t *f, char *fn, size_t fncap, char *loc, size_t loccap, char *mod,
                          size_t modcap)
{
    char name[256];
    const char *prefix = f->inlined ? "(inlined) " : "";
    snprintf(fn, fncap, "%s%s", prefix,
             mt__short_function(f->function, FUNCTION_COLUMN_MAX - strlen(prefix), name, sizeof name));
    if (f->file && f->line)
        snprintf(loc, loccap, "%s:%" PRIu32, base_name(f->file), f->line);
    else if (f->file)
        snprintf(loc, loccap, "%s", base_name(f->file));
    else
        loc[0] = '\0';
    if (f->module && !f->function)
        snprintf(mod, modcap, "%s+0x%" PRIx64, base_name(f->module), f->offset);
    else if (f->module)
        snprintf(mod, modcap, "%s", base_name(f->module));
    else
        snprintf(mod, modcap, "0x%" PRIx64, f->address);
}

static bool is_main(const mt_frame_t *f) { return f->function && !strcmp(f->function, "main"); }

static void print_stack(report_t *rep, const mt_row_t *row)
{
    FILE *o = rep->out;
    if (!row->nframes) {
        fprintf(o, "       %s(stack unknown)%s\n", col(rep, C_DIM), col(rep, C_OFF));
        return;
    }
    /* By default: from the headline to main (what runs main is noise), at
     * most STACK_FRAMES_SHOWN frames. */
    size_t from = rep->opt->full_stacks ? 0 : row->headline;
    size_t to = row->nframes;
    bool at_main = false;
    if (!rep->opt->full_stacks) {
        for (size_t i = from; i < row->nframes; i++)
            if (is_main(&row->frames[i])) {
                to = i + 1;
                at_main = true;
                break;
            }
        if (to - from > STACK_FRAMES_SHOWN) {
            to = from + STACK_FRAMES_SHOWN;
            at_main = false;
        }
    }
    int wfn = 0, wloc = 0;
    char fn[1024], loc[512], mod[512];
    for (size_t i = from; i < to; i++) {
        frame_columns(&row->frames[i], fn, sizeof fn, loc, sizeof loc, mod, sizeof mod);
        int a = (int)strlen(fn), b = (int)strlen(loc);
        wfn = a > wfn ? a : wfn;
        wloc = b > wloc ? b : wloc;
    }
    if (wfn > FUNCTION_COLUMN_MAX)
        wfn = FUNCTION_COLUMN_MAX;
    for (size_t i = from; i < to; i++) {
        frame_columns(&row->frames[i], fn, sizeof fn, loc, sizeof loc, mod, sizeof mod);
        fprintf(o, "       %-*s  %-*s  %s\n", wfn, fn, wloc, loc, mod);
    }
    if (to < row->nframes && !at_main)
        fprintf(o, "       %s... %zu more frames (--full-stacks shows them)%s\n", col(rep, C_DIM),
                row->nframes - to, col(rep, C_OFF));
    else if (row->stack_truncated)
        fprintf(o, "       %s... (the recorded stack was cut at the maximum depth)%s\n", col(rep, C_DIM),
                col(rep, C_OFF));
}

static const char *list_title(mt_sort_key_t key)
{
    switch (key) {
    case MT_SORT_PEAK: return "BY PEAK";
    case MT_SORT_LEAKED: return "BY LEAKED";
    case MT_SORT_ALLOCATIONS: return "BY ALLOCATIONS";
    case MT_SORT_TEMPORARY: return "BY TEMPORARY ALLOCATIONS";
    case MT_SORT_BYTES: return "BY BYTES ALLOCATED";
    default: return "";
    }
}

static void row_summary(const report_t *rep, const mt_row_t *row, mt_sort_key_t key, char *buf, size_t cap)
{
    const mt_row_stats_t *s = &row->stats;
    char a[32], b[32];
    switch (key) {
    case MT_SORT_PEAK:
        snprintf(buf, cap, "%s at peak in %s", mt__format_size(s->peak_bytes, a, sizeof a),
                 counted(s->peak_allocations, "block", b, sizeof b));
        break;
    case MT_SORT_LEAKED:
        snprintf(buf, cap, "%s%s leaked%s in %s", col(rep, C_RED),
                 mt__format_size(s->leaked_bytes, a, sizeof a), col(rep, C_OFF),
                 counted(s->leaked_allocations, "block", b, sizeof b));
        break;
    case MT_SORT_ALLOCATIONS:
        snprintf(buf, cap, "%s, %s", counted(s->allocations, "allocation", a, sizeof a),
                 mt__format_size(s->bytes_allocated, b, sizeof b));
        break;
    case MT_SORT_TEMPORARY:
        snprintf(buf, cap, "%s temporary of %s", mt__format_count(s->temporary_allocations, a, sizeof a),
                 counted(s->allocations, "allocation", b, sizeof b));
        break;
    default:
        snprintf(buf, cap, "%s allocated in %s", mt__format_size(s->bytes_allocated, a, sizeof a),
                 counted(s->allocations, "allocation", b, sizeof b));
        break;
    }
}

static int print_list(report_t *rep, section_t *sec, mt_sort_key_t key)
{
    size_t *idx, n;
    int rc = top_rows(sec, key, rep->opt->top, &idx, &n);
    if (rc < 0)
        return rc;
    FILE *o = rep->out;
    if (rep->opt->top)
        fprintf(o, "\n%sTOP %zu SITE%s %s%s%s\n", col(rep, C_BOLD), rep->opt->top, rep->opt->top == 1 ? "" : "S",
                list_title(key), sec->estimated ? " (estimates)" : "", col(rep, C_OFF));
    else
        fprintf(o, "\n%sALL SITES %s%s%s\n", col(rep, C_BOLD), list_title(key),
                sec->estimated ? " (estimates)" : "", col(rep, C_OFF));
    if (!n)
        fprintf(o, "  (none)\n");
    for (size_t i = 0; i < n; i++) {
        mt_row_t *row = &sec->rows.items[idx[i]];
        if ((rc = row_frames(rep, row)) < 0)
            break;
        char summary[256], head[1024], extra[96] = "";
        row_summary(rep, row, key, summary, sizeof summary);
        headline_text(row, head, sizeof head);
        if (row->members > 1)
            snprintf(extra, sizeof extra, " [%zu stacks]", row->members);
        if (sec->merged)
            snprintf(extra + strlen(extra), sizeof extra - strlen(extra), " (e.g. pid %" PRIu64 ")",
                     rep->procs[row->proc].info->pid);
        fprintf(o, "  #%zu %s   %s%s%s%s\n", i + 1, summary, col(rep, C_CYAN), head, col(rep, C_OFF), extra);
        if (key == MT_SORT_LEAKED && row->stats.suppressed_bytes)
            fprintf(o, "     (also %s suppressed by '%s')\n",
                    mt__format_size(row->stats.suppressed_bytes, summary, sizeof summary), row->suppressed);
        print_stack(rep, row);
    }
    free(idx);
    return rc;
}

static void print_header(report_t *rep, const section_t *sec)
{
    FILE *o = rep->out;
    char a[32], b[32];
    const mt_totals_t *t = &sec->totals;
    if (!sec->merged) {
        const proc_t *p = &sec->procs[0];
        fprintf(o, "%smemtrack report: %s (pid %" PRIu64 "), %s, %s%s%s\n", col(rep, C_BOLD), process_name(p),
                p->info->pid, mt__format_duration(p->info->duration_ns, a, sizeof a), sec->estimated ? "~" : "",
                counted(t->allocations, "allocation", b, sizeof b), col(rep, C_OFF));
        fprintf(o, "  trace %s%s\n", p->path,
                p->info->flags & MT_TRACE_F_FORKED ? " (forked child)" : "");
        if (p->info->end_signal)
            fprintf(o, "  %sthe process died of signal %" PRIu32 " (%s)%s: the trace ends there\n",
                    col(rep, C_BOLD), p->info->end_signal, strsignal((int)p->info->end_signal), col(rep, C_OFF));
    } else {
        fprintf(o, "%smemtrack report: %zu processes merged, %s%s\n", col(rep, C_BOLD), sec->nprocs,
                counted(t->allocations, "allocation", b, sizeof b), col(rep, C_OFF));
        for (size_t i = 0; i < sec->nprocs; i++)
            fprintf(o, "  pid %-7" PRIu64 " %s  (%s)\n", sec->procs[i].info->pid, process_name(&sec->procs[i]),
                    sec->procs[i].path);
    }
    for (size_t i = 0; i < sec->nprocs; i++)
        for (size_t w = 0; w < sec->procs[i].nwarnings; w++) {
            if (sec->merged)
                fprintf(o, "  %swarning:%s %s: %s\n", col(rep, C_YELLOW), col(rep, C_OFF), sec->procs[i].path,
                        sec->procs[i].warnings[w]);
            else
                fprintf(o, "  %swarning:%s %s\n", col(rep, C_YELLOW), col(rep, C_OFF), sec->procs[i].warnings[w]);
        }
}

static void print_totals(report_t *rep, const section_t *sec)
{
    FILE *o = rep->out;
    const mt_totals_t *t = &sec->totals;
    const char *e = sec->estimated ? "~" : "";
    char a[32], b[32], c[32];
    fprintf(o, "\n%sTOTALS%s%s\n", col(rep, C_BOLD), col(rep, C_OFF),
            sec->estimated ? " (estimates: see the warnings)" : "");
    fprintf(o, "  allocations      %s%s (%s%s)\n", e, mt__format_count(t->allocations, a, sizeof a), e,
            mt__format_size(t->bytes_allocated, b, sizeof b));
    fprintf(o, "  frees            %s%s\n", e, mt__format_count(t->frees, a, sizeof a));
    if (sec->merged)
        fprintf(o, "  peak heap        %s%s in %s%s (sum of each process's peak)\n", e,
                mt__format_size(t->peak_bytes, a, sizeof a), e, counted(t->peak_allocations, "block", b, sizeof b));
    else
        fprintf(o, "  peak heap        %s%s in %s%s at %s\n", e, mt__format_size(t->peak_bytes, a, sizeof a), e,
                counted(t->peak_allocations, "block", b, sizeof b),
                mt__format_duration(t->peak_time_ns, c, sizeof c));
    fprintf(o, "  leaked           %s%s%s%s in %s%s", col(rep, t->leaked_bytes ? C_RED : ""), e,
            mt__format_size(t->leaked_bytes, a, sizeof a), col(rep, t->leaked_bytes ? C_OFF : ""), e,
            counted(t->leaked_allocations, "block", b, sizeof b));
    if (sec->suppressed_allocations)
        fprintf(o, " (and %s in %s suppressed)", mt__format_size(sec->suppressed_bytes, a, sizeof a),
                counted(sec->suppressed_allocations, "block", b, sizeof b));
    fprintf(o, "\n");
    fprintf(o, "  temporary        %s%s (%s%s)\n", e, counted(t->temporary_allocations, "allocation", a, sizeof a), e,
            mt__format_size(t->temporary_bytes, b, sizeof b));
    if (t->unknown_frees)
        fprintf(o, "  unknown frees    %s (memory allocated before recording or inherited)\n",
                mt__format_count(t->unknown_frees, a, sizeof a));
    if (sec->dropped)
        fprintf(o, "  lost events      %s\n", mt__format_count(sec->dropped, a, sizeof a));
}

static void print_snapshots(report_t *rep, const section_t *sec)
{
    size_t total = 0;
    for (size_t i = 0; i < sec->nprocs; i++) {
        size_t n;
        mt__replay_snapshots(sec->procs[i].replay, &n);
        total += n;
    }
    if (!total)
        return;
    FILE *o = rep->out;
    char a[32], b[32], c[32];
    fprintf(o, "\n%sSNAPSHOTS%s\n", col(rep, C_BOLD), col(rep, C_OFF));
    for (size_t i = 0; i < sec->nprocs; i++) {
        size_t n;
        const mt_snapshot_t *s = mt__replay_snapshots(sec->procs[i].replay, &n);
        for (size_t k = 0; k < n; k++) {
            if (sec->merged)
                fprintf(o, "  pid %-7" PRIu64, sec->procs[i].info->pid);
            fprintf(o, "  %-16s at %-9s %s live in %s\n", s[k].text ? s[k].text : "?",
                    mt__format_duration(s[k].time_ns, a, sizeof a), mt__format_size(s[k].live_bytes, b, sizeof b),
                    counted(s[k].live_allocations, "block", c, sizeof c));
        }
    }
}

static int print_text(report_t *rep, section_t *sec)
{
    print_header(rep, sec);
    print_totals(rep, sec);
    print_snapshots(rep, sec);
    if (rep->opt->sort_given)
        return print_list(rep, sec, rep->opt->sort);
    static const mt_sort_key_t lists[] = {MT_SORT_PEAK, MT_SORT_LEAKED, MT_SORT_ALLOCATIONS, MT_SORT_TEMPORARY};
    for (size_t i = 0; i < sizeof lists / sizeof lists[0]; i++) {
        int rc = print_list(rep, sec, lists[i]);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* ---- JSON ---- */

static cJSON *process_json(const proc_t *p)
{
    cJSON *o = cJSON_CreateObject();
    bool ok = o && mt__json_u64(o, "pid", p->info->pid) && mt__json_u64(o, "ppid", p->info->ppid) &&
              mt__json_str(o, "command", p->info->command) && mt__json_str(o, "exe", p->info->exe) &&
              mt__json_str(o, "trace", p->path) &&
              cJSON_AddBoolToObject(o, "forked", (p->info->flags & MT_TRACE_F_FORKED) != 0) &&
              mt__json_u64(o, "duration_ns", p->info->duration_ns) &&
              cJSON_AddBoolToObject(o, "complete", p->info->complete) &&
              cJSON_AddBoolToObject(o, "truncated", p->info->truncated) &&
              (p->info->end_signal ? mt__json_u64(o, "signal", p->info->end_signal)
                                   : cJSON_AddNullToObject(o, "signal") != NULL);
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static cJSON *site_json(report_t *rep, const section_t *sec, mt_row_t *row)
{
    if (row_frames(rep, row) < 0)
        return NULL;
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    const mt_frame_t *h = row->nframes ? &row->frames[row->headline] : NULL;
    const mt_row_stats_t *s = &row->stats;
    bool ok = mt__json_str(o, "function", h ? h->function : NULL) && mt__json_str(o, "file", h ? h->file : NULL) &&
              mt__json_line(o, "line", h ? h->line : 0) && mt__json_str(o, "module", h ? h->module : NULL);
    cJSON *stack = ok ? cJSON_AddArrayToObject(o, "stack") : NULL;
    ok = stack != NULL;
    for (size_t i = 0; ok && i < row->nframes; i++) {
        cJSON *f = mt__json_frame(&row->frames[i]);
        ok = f && cJSON_AddItemToArray(stack, f);
    }
    ok = ok && cJSON_AddBoolToObject(o, "stack_truncated", row->stack_truncated) &&
         (row->stack == MT_REPLAY_NO_STACK ? cJSON_AddNullToObject(o, "stack_id") != NULL
                                           : mt__json_u64(o, "stack_id", row->stack)) &&
         (!sec->merged || mt__json_u64(o, "pid", rep->procs[row->proc].info->pid)) &&
         mt__json_u64(o, "stacks", row->members) && mt__json_u64(o, "allocations", s->allocations) &&
         mt__json_u64(o, "bytes_allocated", s->bytes_allocated) && mt__json_u64(o, "frees", s->frees) &&
         mt__json_u64(o, "bytes_freed", s->bytes_freed) && mt__json_u64(o, "peak_bytes", s->peak_bytes) &&
         mt__json_u64(o, "peak_allocations", s->peak_allocations) && mt__json_u64(o, "leaked_bytes", s->leaked_bytes) &&
         mt__json_u64(o, "leaked_allocations", s->leaked_allocations) &&
         mt__json_u64(o, "suppressed_leaked_bytes", s->suppressed_bytes) &&
         mt__json_u64(o, "suppressed_leaked_allocations", s->suppressed_allocations) &&
         mt__json_str(o, "suppression", row->suppressed) &&
         mt__json_u64(o, "temporary_allocations", s->temporary_allocations) &&
         mt__json_u64(o, "temporary_bytes", s->temporary_bytes);
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static cJSON *totals_json(const section_t *sec)
{
    const mt_totals_t *t = &sec->totals;
    cJSON *o = cJSON_CreateObject();
    bool ok = o && mt__json_u64(o, "allocations", t->allocations) && mt__json_u64(o, "frees", t->frees) &&
              mt__json_u64(o, "bytes_allocated", t->bytes_allocated) && mt__json_u64(o, "bytes_freed", t->bytes_freed) &&
              mt__json_u64(o, "peak_bytes", t->peak_bytes) && mt__json_u64(o, "peak_allocations", t->peak_allocations) &&
              (sec->merged ? cJSON_AddNullToObject(o, "peak_time_ns") != NULL
                           : mt__json_u64(o, "peak_time_ns", t->peak_time_ns)) &&
              mt__json_u64(o, "leaked_bytes", t->leaked_bytes) &&
              mt__json_u64(o, "leaked_allocations", t->leaked_allocations) &&
              mt__json_u64(o, "suppressed_leaked_bytes", sec->suppressed_bytes) &&
              mt__json_u64(o, "suppressed_leaked_allocations", sec->suppressed_allocations) &&
              mt__json_u64(o, "temporary_allocations", t->temporary_allocations) &&
              mt__json_u64(o, "temporary_bytes", t->temporary_bytes) && mt__json_u64(o, "unknown_frees", t->unknown_frees) &&
              mt__json_u64(o, "missed_frees", t->missed_frees) && mt__json_u64(o, "dropped_events", sec->dropped) &&
              mt__json_u64(o, "events", t->events) && mt__json_u64(o, "threads", t->threads);
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static bool snapshots_json(const section_t *sec, cJSON *arr)
{
    for (size_t i = 0; i < sec->nprocs; i++) {
        size_t n;
        const mt_snapshot_t *s = mt__replay_snapshots(sec->procs[i].replay, &n);
        for (size_t k = 0; k < n; k++) {
            cJSON *o = cJSON_CreateObject();
            bool ok = o && cJSON_AddItemToArray(arr, o) && mt__json_str(o, "label", s[k].text) &&
                      (!sec->merged || mt__json_u64(o, "pid", sec->procs[i].info->pid)) &&
                      mt__json_u64(o, "seq", s[k].seq) && mt__json_u64(o, "time_ns", s[k].time_ns) &&
                      mt__json_u64(o, "tid", s[k].tid) && mt__json_u64(o, "live_bytes", s[k].live_bytes) &&
                      mt__json_u64(o, "live_allocations", s[k].live_allocations);
            if (!ok)
                return false;
        }
    }
    return true;
}

/* Chooses the JSON sites: every row with --top 0, else the union of the
 * top rows of every list; in the --sort order either way. */
static int json_rows(const section_t *sec, const options_t *opt, size_t **out, size_t *n)
{
    size_t *idx = malloc((sec->rows.n ? sec->rows.n : 1) * sizeof *idx);
    bool *pick = calloc(sec->rows.n ? sec->rows.n : 1, sizeof *pick);
    if (!idx || !pick) {
        free(idx);
        free(pick);
        return -ENOMEM;
    }
    size_t k = 0;
    if (!opt->top) {
        for (size_t i = 0; i < sec->rows.n; i++)
            idx[k++] = i;
    } else {
        for (int key = 0; key < MT_SORT_COUNT; key++) {
            if (key == MT_SORT_BYTES && opt->sort != MT_SORT_BYTES)
                continue;
            size_t *top, m;
            if (top_rows(sec, (mt_sort_key_t)key, opt->top, &top, &m) < 0) {
                free(idx);
                free(pick);
                return -ENOMEM;
            }
            for (size_t i = 0; i < m; i++)
                pick[top[i]] = true;
            free(top);
        }
        for (size_t i = 0; i < sec->rows.n; i++)
            if (pick[i])
                idx[k++] = i;
    }
    free(pick);
    mt__rows_sort(&sec->rows, idx, k, opt->sort);
    *out = idx;
    *n = k;
    return 0;
}

static const char *group_name(mt_group_by_t g)
{
    return g == MT_GROUP_FUNCTION ? "function" : g == MT_GROUP_LINE ? "line" : "stack";
}

/* Builds one report object; with_format adds the format and version. */
static cJSON *section_json(report_t *rep, section_t *sec, bool with_format)
{
    size_t *idx = NULL, n = 0;
    cJSON *o = cJSON_CreateObject();
    if (!o)
        goto fail;
    if (with_format && !(cJSON_AddStringToObject(o, "format", "memtrack-report") && mt__json_u64(o, "version", 1)))
        goto fail;
    if (!sec->merged) {
        cJSON *p = process_json(&sec->procs[0]);
        if (!p || !cJSON_AddItemToObject(o, "process", p) || !cJSON_AddFalseToObject(o, "merged")) {
            cJSON_Delete(p);
            goto fail;
        }
    } else {
        cJSON *arr = cJSON_AddArrayToObject(o, "merged_from");
        if (!arr || !cJSON_AddNullToObject(o, "process") || !cJSON_AddTrueToObject(o, "merged"))
            goto fail;
        for (size_t i = 0; i < sec->nprocs; i++) {
            cJSON *p = process_json(&sec->procs[i]);
            if (!p || !cJSON_AddItemToArray(arr, p)) {
                cJSON_Delete(p);
                goto fail;
            }
        }
    }
    cJSON *tot = totals_json(sec);
    if (!tot || !cJSON_AddItemToObject(o, "totals", tot)) {
        cJSON_Delete(tot);
        goto fail;
    }
    if (!cJSON_AddBoolToObject(o, "estimated", sec->estimated) || !cJSON_AddBoolToObject(o, "sampled", sec->sampled) ||
        !mt__json_str(o, "group_by", group_name(rep->opt->group_by)) ||
        !mt__json_str(o, "sort", mt__sort_key_name(rep->opt->sort)))
        goto fail;
    if (json_rows(sec, rep->opt, &idx, &n) < 0)
        goto fail;
    if (!mt__json_u64(o, "sites_total", sec->rows.n) || !mt__json_u64(o, "sites_shown", n) ||
        !cJSON_AddBoolToObject(o, "sites_truncated", n < sec->rows.n))
        goto fail;
    cJSON *sites = cJSON_AddArrayToObject(o, "sites");
    if (!sites)
        goto fail;
    for (size_t i = 0; i < n; i++) {
        cJSON *s = site_json(rep, sec, &sec->rows.items[idx[i]]);
        if (!s || !cJSON_AddItemToArray(sites, s)) {
            cJSON_Delete(s);
            goto fail;
        }
    }
    cJSON *snaps = cJSON_AddArrayToObject(o, "snapshots");
    cJSON *warn = snaps ? cJSON_AddArrayToObject(o, "warnings") : NULL;
    if (!warn || !snapshots_json(sec, snaps))
        goto fail;
    for (size_t i = 0; i < sec->nprocs; i++)
        for (size_t w = 0; w < sec->procs[i].nwarnings; w++) {
            char buf[1024];
            if (sec->merged)
                snprintf(buf, sizeof buf, "%s: %s", sec->procs[i].path, sec->procs[i].warnings[w]);
            else
                snprintf(buf, sizeof buf, "%s", sec->procs[i].warnings[w]);
            cJSON *s = cJSON_CreateString(buf);
            if (!s || !cJSON_AddItemToArray(warn, s)) {
                cJSON_Delete(s);
                goto fail;
            }
        }
    free(idx);
    return o;
fail:
    free(idx);
    cJSON_Delete(o);
    return NULL;
}

/* ---- options ---- */

enum {
    OPT_JSON = 256,
    OPT_TOP,
    OPT_SORT,
    OPT_GROUP_BY,
    OPT_MERGE,
    OPT_FULL_STACKS,
    OPT_ALLOC_FN,
    OPT_SUPPRESSIONS,
    OPT_NO_DEFAULT_SUPPRESSIONS,
    OPT_NO_COLOR,
    OPT_NO_PROGRESS,
};

static const struct option long_options[] = {
    {"json", no_argument, NULL, OPT_JSON},
    {"output", required_argument, NULL, 'o'},
    {"top", required_argument, NULL, OPT_TOP},
    {"sort", required_argument, NULL, OPT_SORT},
    {"group-by", required_argument, NULL, OPT_GROUP_BY},
    {"merge", no_argument, NULL, OPT_MERGE},
    {"full-stacks", no_argument, NULL, OPT_FULL_STACKS},
    {"alloc-fn", required_argument, NULL, OPT_ALLOC_FN},
    {"suppressions", required_argument, NULL, OPT_SUPPRESSIONS},
    {"no-default-suppressions", no_argument, NULL, OPT_NO_DEFAULT_SUPPRESSIONS},
    {"no-color", no_argument, NULL, OPT_NO_COLOR},
    {"no-colour", no_argument, NULL, OPT_NO_COLOR},
    {"no-progress", no_argument, NULL, OPT_NO_PROGRESS},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* Parses the options. Returns -1 to go on, or the exit status. */
static int parse_options(int argc, char **argv, options_t *opt)
{
    int c;
    char err[512];
    optind = 0; /* a full reset: the command may run more than once in a process */
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":o:h", long_options, NULL)) != -1) {
        switch (c) {
        case OPT_JSON: opt->json = true; break;
        case 'o': opt->output = optarg; break;
        case OPT_TOP: {
            char *end;
            errno = 0;
            unsigned long long v = strtoull(optarg, &end, 10);
            if (!*optarg || *end || errno || optarg[0] == '-' || v > SIZE_MAX / 2)
                return bad_usage("--top wants a number, not '%s'", optarg);
            opt->top = (size_t)v;
            break;
        }
        case OPT_SORT:
            if (mt__sort_key_parse(optarg, &opt->sort) < 0)
                return bad_usage("--sort wants peak, leaked, allocations, temporary or bytes, not '%s'", optarg);
            opt->sort_given = true;
            break;
        case OPT_GROUP_BY:
            if (!strcmp(optarg, "stack"))
                opt->group_by = MT_GROUP_STACK;
            else if (!strcmp(optarg, "function"))
                opt->group_by = MT_GROUP_FUNCTION;
            else if (!strcmp(optarg, "line"))
                opt->group_by = MT_GROUP_LINE;
            else
                return bad_usage("--group-by wants stack, function or line, not '%s'", optarg);
            break;
        case OPT_MERGE: opt->merge = true; break;
        case OPT_FULL_STACKS: opt->full_stacks = true; break;
        case OPT_ALLOC_FN:
            if (mt__patterns_add(&opt->wrappers, optarg) < 0)
                return bad_usage("out of memory");
            break;
        case OPT_SUPPRESSIONS:
            if (mt__suppressions_load(&opt->suppressions, optarg, err, sizeof err) < 0) {
                fprintf(stderr, "memtrack: %s\n", err);
                return MT_EXIT_BAD_INPUT;
            }
            break;
        case OPT_NO_DEFAULT_SUPPRESSIONS: opt->default_suppressions = false; break;
        case OPT_NO_COLOR: opt->no_color = true; break;
        case OPT_NO_PROGRESS: opt->no_progress = true; break;
        case 'h': usage(stdout); return MT_EXIT_OK;
        case ':': return bad_usage("%s needs a value", argv[optind - 1]);
        default:
            if (optopt && optopt < 256)
                return bad_usage("unknown option '-%c'", optopt);
            return bad_usage("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind >= argc)
        return bad_usage("no trace given");
    if (mt__wrappers_add_defaults(&opt->wrappers) < 0 ||
        (opt->default_suppressions && mt__suppressions_add_defaults(&opt->suppressions) < 0)) {
        fprintf(stderr, "memtrack: out of memory\n");
        return MT_EXIT_BAD_INPUT;
    }
    return -1;
}

/* ---- the command ---- */

static int write_all(report_t *rep, section_t *secs, size_t nsecs)
{
    if (!rep->opt->json) {
        for (size_t i = 0; i < nsecs; i++) {
            if (i)
                fprintf(rep->out, "\n\n");
            int rc = print_text(rep, &secs[i]);
            if (rc < 0)
                return rc;
        }
        return 0;
    }
    cJSON *doc;
    if (nsecs == 1) {
        doc = section_json(rep, &secs[0], true);
    } else {
        doc = cJSON_CreateObject();
        cJSON *arr = NULL;
        if (doc && cJSON_AddStringToObject(doc, "format", "memtrack-report") && mt__json_u64(doc, "version", 1))
            arr = cJSON_AddArrayToObject(doc, "processes");
        for (size_t i = 0; arr && i < nsecs; i++) {
            cJSON *s = section_json(rep, &secs[i], false);
            if (!s || !cJSON_AddItemToArray(arr, s)) {
                cJSON_Delete(s);
                arr = NULL;
            }
        }
        if (!arr) {
            cJSON_Delete(doc);
            doc = NULL;
        }
    }
    char *text = doc ? cJSON_Print(doc) : NULL;
    cJSON_Delete(doc);
    if (!text)
        return -ENOMEM;
    fputs(text, rep->out);
    fputc('\n', rep->out);
    free(text);
    return 0;
}

/* Runs `memtrack report`: see usage(). Returns the exit status: 0, or 2 for
 * bad usage, bad input or an unwritable output, always with one line on
 * stderr saying what and where. */
int mt_cmd_report(int argc, char **argv)
{
    int status = MT_EXIT_BAD_INPUT;
    options_t opt = {.top = DEFAULT_TOP, .sort = MT_SORT_PEAK, .default_suppressions = true};
    proc_t *procs = NULL;
    section_t *secs = NULL;
    size_t nprocs = 0, nsecs = 0;
    FILE *out = NULL;
    int rc = parse_options(argc, argv, &opt);
    if (rc >= 0) {
        status = rc;
        goto fail;
    }
    size_t ntraces = (size_t)(argc - optind);
    char **paths = argv + optind;
    if (opt.output && !(out = fopen(opt.output, "w"))) {
        fprintf(stderr, "memtrack: %s: cannot write: %s\n", opt.output, strerror(errno));
        goto fail;
    }
    if (!out)
        out = stdout;
    procs = calloc(ntraces, sizeof *procs);
    secs = calloc(opt.merge ? 1 : ntraces, sizeof *secs);
    if (!procs || !secs) {
        fprintf(stderr, "memtrack: out of memory\n");
        goto fail;
    }
    for (; nprocs < ntraces; nprocs++) {
        procs[nprocs].path = paths[nprocs];
        if (load(&procs[nprocs], &opt) < 0) {
            nprocs++;
            goto fail;
        }
    }
    if (opt.merge && ntraces > 1) {
        secs[0] = (section_t){.procs = procs, .nprocs = nprocs, .first = 0, .merged = true};
        nsecs = 1;
    } else {
        for (; nsecs < nprocs; nsecs++)
            secs[nsecs] = (section_t){.procs = &procs[nsecs], .nprocs = 1, .first = nsecs};
    }
    for (size_t i = 0; i < nsecs; i++)
        if (build_rows(&secs[i], &opt) < 0) {
            fprintf(stderr, "memtrack: out of memory\n");
            goto fail;
        }
    const char *no_color = getenv("NO_COLOR");
    report_t rep = {
        .opt = &opt,
        .procs = procs,
        .nprocs = nprocs,
        .out = out,
        .color = !opt.json && !opt.no_color && !(no_color && *no_color) && isatty(fileno(out)),
    };
    if (opt.json)
        for (size_t i = 0; i < nprocs; i++)
            for (size_t w = 0; w < procs[i].nwarnings; w++)
                fprintf(stderr, "memtrack: %s: warning: %s\n", procs[i].path, procs[i].warnings[w]);
    if (write_all(&rep, secs, nsecs) < 0) {
        fprintf(stderr, "memtrack: out of memory\n");
        goto fail;
    }
    if (fflush(out) != 0 || ferror(out)) {
        fprintf(stderr, "memtrack: %s: write error: %s\n", opt.output ? opt.output : "standard output",
                strerror(errno));
        goto fail;
    }
    status = MT_EXIT_OK;
fail:
    if (out && out != stdout && fclose(out) != 0 && status == MT_EXIT_OK) {
        fprintf(stderr, "memtrack: %s: write error: %s\n", opt.output, strerror(errno));
        status = MT_EXIT_BAD_INPUT;
    }
    for (size_t i = 0; i < nsecs; i++)
        mt__rows_free(&secs[i].rows);
    free(secs);
    for (size_t i = 0; i < nprocs; i++)
        unload(&procs[i]);
    free(procs);
    mt__patterns_free(&opt.wrappers);
    mt__patterns_free(&opt.suppressions);
    return status;
}
