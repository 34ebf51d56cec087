/* budget.h - memory budgets: the budget file, and checking budgets against replayed traces.
 *
 * A budget file (JSON, docs/ci.md) lists budgets. Each has a name, a scope
 * and one or more limits, one per metric:
 *
 *   - scope: the whole run (default); the sites whose stack has a frame
 *     matching the `function`, `file` and `module` globs given; the region
 *     from each `from` snapshot label to the next `to` label; or every
 *     interval between consecutive snapshots of the `between` label. A site
 *     glob may be combined with a region. `process` restricts the budget to
 *     the traces whose executable name matches a glob.
 *   - metrics: peak_bytes, leaked_bytes, leaked_allocations, allocations,
 *     bytes_allocated, temporary_allocations, and for regions retained_bytes.
 *
 * The parser is strict (unknown keys, wrong types, duplicate keys, bad units,
 * negative or fractional numbers, numbers above 2^63 are errors naming the
 * line and column) and never crashes on any input: it is fuzzed.
 *
 * Evaluation replays each trace once, driving the replay engine event by
 * event (mt__replay_feed) so that it can follow, for every budget, the live
 * bytes of its matching sites (their own high-water mark) and of the blocks
 * allocated inside each region. Results carry the measured value, the limit
 * and the top sites that account for the value, as (trace, stack id) pairs
 * that the caller symbolizes; `memtrack check` prints them, the HTML report
 * shows them.
 *
 *     mt_budget_set_t set;
 *     char err[256];
 *     if (mt__budget_load("budgets.json", &set, err, sizeof err) < 0) { puts(err); ... }
 *     mt_budget_results_t res;
 *     mt_budget_eval_options_t eo = {.suppressions = &supp};
 *     if (mt__budget_evaluate(&set, traces, syms, ntraces, &eo, &res, err, sizeof err) < 0) ...
 *     for (size_t i = 0; i < res.n; i++) use res.items[i] ...
 *     mt__budget_results_free(&res);
 *     mt__budget_set_free(&set);
 */
#ifndef MT_ANALYZER_BUDGET_H
#define MT_ANALYZER_BUDGET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "replay.h"

/* The metrics, with their JSON key and whether their value is a size in
 * bytes (sizes accept unit strings like "4KiB"; counts only integers). */
#define MT_BUDGET_METRIC_MAP(X)                         \
    X(PEAK_BYTES, "peak_bytes", true)                   \
    X(LEAKED_BYTES, "leaked_bytes", true)               \
    X(LEAKED_ALLOCATIONS, "leaked_allocations", false)  \
    X(ALLOCATIONS, "allocations", false)                \
    X(BYTES_ALLOCATED, "bytes_allocated", true)         \
    X(TEMPORARY_ALLOCATIONS, "temporary_allocations", false) \
    X(RETAINED_BYTES, "retained_bytes", true)

typedef enum mt_budget_metric {
#define MT_BUDGET_METRIC_ENUM(id, key, is_size) MT_BUDGET_##id,
    MT_BUDGET_METRIC_MAP(MT_BUDGET_METRIC_ENUM)
#undef MT_BUDGET_METRIC_ENUM
    MT_BUDGET_METRIC_COUNT
} mt_budget_metric_t;

/* Returns a metric's JSON key ("peak_bytes"), or "?". */
const char *mt__budget_metric_name(mt_budget_metric_t m);

/* Returns true when the metric is a size in bytes, false for a count. */
bool mt__budget_metric_is_size(mt_budget_metric_t m);

/* What a budget covers. */
typedef enum mt_budget_region {
    MT_BUDGET_WHOLE_RUN, /* no region: the whole run */
    MT_BUDGET_FROM_TO,   /* from each `from` label to the next `to` label */
    MT_BUDGET_BETWEEN    /* between consecutive `between` labels */
} mt_budget_region_t;

/* One limit of a budget: metric <= limit. */
typedef struct mt_budget_limit {
    mt_budget_metric_t metric;
    uint64_t limit;
} mt_budget_limit_t;

/* One budget as parsed. Strings are owned by the set; NULL when absent. */
typedef struct mt_budget {
    char *name;
    char *function, *file, *module; /* site globs; all NULL: every site */
    mt_budget_region_t region;
    char *from, *to;   /* MT_BUDGET_FROM_TO */
    char *between;     /* MT_BUDGET_BETWEEN */
    char *process;     /* glob of the executable's name, or NULL for every trace */
    size_t nlimits;    /* at least 1, in file order, each metric at most once */
    mt_budget_limit_t limits[MT_BUDGET_METRIC_COUNT];
    uint32_t line;     /* where the budget's object starts in the file */
} mt_budget_t;

/* The budgets of one file, in file order. */
typedef struct mt_budget_set {
    mt_budget_t *items;
    size_t n;
} mt_budget_set_t;

/* Parses a budget file's text: len bytes, which need not be NUL-terminated.
 * Any input is safe. Returns 0 and fills *out (free with
 * mt__budget_set_free), or -EINVAL with *out empty and a message
 * "LINE:COLUMN: problem" in err (errlen bytes), or -ENOMEM. */
int mt__budget_parse(const char *text, size_t len, mt_budget_set_t *out, char *err, size_t errlen);

/* Reads and parses a budget file. Returns 0, or a negative code with a
 * message "PATH:LINE:COLUMN: problem" (or "PATH: problem") in err. */
int mt__budget_load(const char *path, mt_budget_set_t *out, char *err, size_t errlen);

/* Frees the set's budgets and empties it. NULL is allowed. */
void mt__budget_set_free(mt_budget_set_t *set);

/* Parses a size: a whole number of bytes, or a number (decimals allowed
 * when the result is whole) followed by B, KB, KiB, MB, MiB, GB or GiB, with
 * or without a space. Returns 0, or -EINVAL with the problem in err. */
int mt__budget_parse_size(const char *s, uint64_t *out, char *err, size_t errlen);

/* ---- evaluation ---- */

/* How many top sites each result keeps at most. */
#define MT_BUDGET_TOP_SITES 5

/* A site that accounts for part of a measured value. */
typedef struct mt_budget_site {
    size_t trace;   /* index of the trace in the evaluated list */
    uint32_t stack; /* stack id in that trace, or MT_REPLAY_NO_STACK */
    uint64_t value; /* the site's part, in the result's metric */
} mt_budget_site_t;

/* The outcome of one limit of one budget, for one trace (or for all of
 * them merged). */
typedef struct mt_budget_result {
    size_t budget;               /* index in the set */
    mt_budget_metric_t metric;
    uint64_t limit;
    uint64_t measured;           /* for a region: its worst interval */
    bool passed;                 /* measured <= limit */
    long trace;                  /* the trace's index, or -1 when merged */
    size_t intervals;            /* regions: intervals checked (0 for whole-run budgets) */
    long worst_trace;            /* regions: the trace of the worst interval, or -1 */
    size_t worst_interval;       /* regions: its index among that trace's intervals */
    uint64_t worst_from_seq, worst_to_seq; /* its markers' event sequence numbers */
    size_t nsites;               /* top sites, largest first */
    mt_budget_site_t sites[MT_BUDGET_TOP_SITES];
} mt_budget_result_t;

typedef struct mt_budget_results {
    mt_budget_result_t *items;   /* by budget, then limit (file order), then trace */
    size_t n;
    bool all_passed;
} mt_budget_results_t;

typedef struct mt_budget_eval_options {
    bool merge;                         /* one result per limit over all traces */
    const mt_patterns_t *suppressions;  /* for the leak metrics; NULL for none */
} mt_budget_eval_options_t;

/* Evaluates every budget of set against ntraces open traces (each replayed
 * from its start; rewound). syms[i] is trace i's symbolizer, used to match
 * site globs and suppressions; syms may be NULL (symbolizers are then made
 * and freed inside). Without merge, a budget applies to each trace whose
 * executable matches its process glob and gives one result per trace and
 * limit; a region budget skips traces where its labels do not occur. With
 * merge, counts and sizes are summed over the traces (peaks too: the sum of
 * each process's peak), and a region's worst interval is taken over all.
 * Returns 0 and fills *out (free with mt__budget_results_free), or a
 * negative code with a message in err: -EINVAL when a budget's process glob
 * matches no trace or its labels occur in none of its traces (never a
 * silent pass), the reader's code for a corrupt trace, or -ENOMEM. */
int mt__budget_evaluate(const mt_budget_set_t *set, mt_trace_t *const *traces, mt_symbolizer_t *const *syms,
                        size_t ntraces, const mt_budget_eval_options_t *opt, mt_budget_results_t *out, char *err,
                        size_t errlen);

/* Frees the results and empties them. NULL is allowed. */
void mt__budget_results_free(mt_budget_results_t *res);

/* Returns the name budgets match their process glob against: the base name
 * of the trace's executable (or of its command's first word), or "". */
const char *mt__budget_process_name(const mt_trace_t *t);

#endif /* MT_ANALYZER_BUDGET_H */
