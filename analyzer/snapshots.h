/* snapshots.h - per-site live-heap series across snapshots, and the leak-candidate classifier.
 *
 * A run marked with snapshots (memtrack_snapshot, MEMTRACK_SNAPSHOT_SIGNAL,
 * MEMTRACK_SNAPSHOT_INTERVAL_MS) is replayed once; at chosen snapshots the
 * live bytes and blocks of every site (distinct stack) are captured. Two
 * uses are built on that:
 *
 * - Points (mt__points_capture): the live heap of every site at a few
 *   chosen snapshots or at the end of the run, for `memtrack diff`.
 * - Series (mt__leaks_analyze): each site's live bytes at every snapshot
 *   after a warm-up, and the shape of that series: a leak that grows in
 *   every batch or in some batches, a bounded cache that grows and then
 *   plateaus, scratch memory freed inside each batch, a queue that fills
 *   and drains (sawtooth). Sites whose shape is a leak, with enough growth
 *   and confidence, are the leak candidates of `memtrack leaks` and of the
 *   HTML report.
 *
 * Memory is bounded by (sites live at some snapshot) x (points kept):
 * at most max_points snapshots are kept per series, evenly spread over the
 * run (the first and the last always among them), however many snapshots
 * the trace holds. Nothing here symbolizes: callers turn stack ids into
 * frames with mt__symbolize_stack (replay.h).
 *
 * Typical use (the HTML report's sparklines):
 *
 *     mt_leak_options_t opt;
 *     mt__leak_options_default(&opt);
 *     opt.warmup = 2;
 *     mt_leak_analysis_t *a;
 *     if (mt__leaks_analyze(trace, &opt, &a) == 0) {
 *         for (size_t i = 0; i < a->ncandidates; i++) {
 *             const mt_site_series_t *s = &a->sites[i];   // candidates come first
 *             // s->stack, s->live_bytes[0 .. a->npoints-1], s->growth_bytes,
 *             // s->growth_per_snapshot, s->intervals_grown, s->confidence
 *         }
 *         mt__leaks_free(a);
 *     }
 */
#ifndef MT_ANALYZER_SNAPSHOTS_H
#define MT_ANALYZER_SNAPSHOTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "internal.h"
#include "replay.h"

/* ---- points: the live heap of every site at chosen moments ---- */

/* The point index that means "the end of the run" (what is live at exit). */
#define MT_POINT_END SIZE_MAX

/* One site at one point. allocations and bytes_allocated count from the
 * start of the run up to the point. */
typedef struct mt_point_site {
    uint32_t stack; /* stack id, or MT_REPLAY_NO_STACK */
    uint64_t live_bytes;
    uint64_t live_allocations;
    uint64_t allocations;
    uint64_t bytes_allocated;
} mt_point_site_t;

/* The sites with live blocks at one point, by increasing stack id. */
typedef struct mt_point {
    size_t snapshot;          /* snapshot index (0-based), or MT_POINT_END */
    const mt_snapshot_t *snap; /* the snapshot (NULL for the end); valid while the replay lives */
    uint64_t live_bytes;       /* the whole heap at the point */
    uint64_t live_allocations;
    size_t nsites;
    mt_point_site_t *sites;    /* malloc'd; freed by mt__points_free */
} mt_point_t;

/* Resolves a snapshot named on a command line: a 0-based index, "first",
 * "last", "end" (MT_POINT_END) or a label. A label names its first snapshot,
 * or its last one when last_of_label is true. Returns 0 and sets *index, or
 * -EINVAL (unknown label, index out of range, no snapshots) with a one-line
 * message in err. */
int mt__snapshot_find(const mt_trace_t *t, const char *spec, bool last_of_label, size_t *index, char *err,
                      size_t errlen);

/* Replays trace t once and fills points[0..n-1], whose snapshot fields the
 * caller set (indices from mt__snapshot_find, MT_POINT_END allowed, in any
 * order, repeats allowed). On success sets *replay to the finished replay
 * (free with mt__replay_free, after the points' snap pointers are no longer
 * used) and returns 0; else returns the replay's negative code (reader
 * error in mt__trace_error, or -ENOMEM). */
int mt__points_capture(mt_trace_t *t, mt_point_t *points, size_t n, mt_replay_t **replay);

/* Frees the sites of n points (not the array). */
void mt__points_free(mt_point_t *points, size_t n);

/* ---- series and shapes ---- */

/* The shape of a site's live-bytes series, as told by the classifier. */
#define MT_SHAPE_MAP(X)                                                                 \
    X(FLAT, "flat", "the same at every snapshot (scratch freed inside each batch)")   \
    X(STEADY_LEAK, "steady-leak", "grows in (nearly) every interval, never gives back") \
    X(STEP_LEAK, "step-leak", "grows in some intervals only, never gives back")        \
    X(PLATEAU, "plateau", "grew, then stayed flat: a bounded cache")                   \
    X(SAWTOOTH, "sawtooth", "rises and falls back: a queue that fills and drains")     \
    X(SHRINKING, "shrinking", "only ever goes down")                                    \
    X(ONE_STEP, "one-step", "grew too few times to tell")                               \
    X(TOO_SHORT, "too-short", "fewer than three snapshots after the warm-up")

typedef enum mt_shape {
#define MT_SHAPE_ENUM(name, text, description) MT_SHAPE_##name,
    MT_SHAPE_MAP(MT_SHAPE_ENUM)
#undef MT_SHAPE_ENUM
        MT_SHAPE_COUNT
} mt_shape_t;

/* Returns the short name of a shape ("steady-leak", ...), or "?". */
const char *mt__shape_name(mt_shape_t shape);

/* Returns a one-line description of a shape, or "?". */
const char *mt__shape_description(mt_shape_t shape);

/* The classifier's thresholds. mt__leak_options_default sets the defaults
 * given in brackets. */
typedef struct mt_leak_options {
    size_t warmup;              /* snapshots ignored at the start [0] */
    uint64_t min_growth_bytes;  /* a candidate grew at least this much, first to last point [1] */
    size_t min_intervals_grown; /* ... in at least this many intervals [2] */
    double max_shrink_ratio;    /* ... and gave back at most this share of what it gained [0.10] */
    double plateau_ratio;       /* a flat tail this share of the intervals (and more than twice
                                   the longest pause between earlier growths) means a bounded
                                   cache, not a leak [0.25] */
    double min_confidence;      /* a candidate's confidence is at least this [0.50] */
    size_t max_points;          /* snapshots kept per series, at least 3 [1024] */
} mt_leak_options_t;

/* Sets the defaults above. */
void mt__leak_options_default(mt_leak_options_t *opt);

/* What the classifier says about one series. */
typedef struct mt_series_stats {
    mt_shape_t shape;
    bool candidate;             /* a leak shape that passes every threshold */
    int64_t growth_bytes;       /* last point minus first point */
    double growth_per_snapshot; /* growth_bytes / intervals */
    size_t intervals;           /* points - 1 */
    size_t intervals_grown;     /* intervals whose live bytes went up */
    size_t intervals_shrunk;    /* ... went down */
    uint64_t bytes_gained;      /* sum of the increases */
    uint64_t bytes_given_back;  /* sum of the decreases */
    size_t flat_tail;           /* intervals after the last increase */
    size_t longest_pause;       /* longest run of non-growing intervals between two increases */
    double confidence;          /* 0..1, for leak shapes; 0 otherwise */
} mt_series_stats_t;

/* Classifies the series v[0..n-1] (live bytes at consecutive points) with
 * opt's thresholds (the warm-up is not applied here: pass the points after
 * it). The confidence is the product of three factors in 0..1: how little
 * was given back (1 - given back / gained), how much evidence there is
 * (intervals grown / 4, at most 1) and how recent the growth is (1 - flat
 * tail / intervals). Never fails. */
void mt__series_classify(const uint64_t *v, size_t n, const mt_leak_options_t *opt, mt_series_stats_t *out);

/* One site's series. */
typedef struct mt_site_series {
    uint32_t stack;             /* stack id, or MT_REPLAY_NO_STACK */
    uint64_t *live_bytes;       /* npoints values */
    uint64_t *live_allocations; /* npoints values */
    mt_series_stats_t stats;
} mt_site_series_t;

/* The series of every site live at some kept snapshot. */
typedef struct mt_leak_analysis {
    mt_leak_options_t opt;      /* the options used (max_points adjusted) */
    size_t nsnapshots;          /* snapshots in the trace */
    size_t npoints;             /* kept snapshots after the warm-up (may be 0) */
    size_t *point_snapshot;     /* npoints snapshot indices, increasing */
    const mt_snapshot_t *snaps; /* every snapshot (the replay's), nsnapshots of them */
    size_t nsites;
    mt_site_series_t *sites;    /* candidates first (by confidence, then growth, then stack id),
                                   then the others (by growth, then stack id) */
    size_t ncandidates;
    mt_replay_t *replay;        /* the finished replay: totals, what was live at exit */
    uint64_t *values;           /* private: the one block holding every series */
} mt_leak_analysis_t;

/* Replays trace t and builds every site's series and stats with options opt
 * (NULL: the defaults). Returns 0 and sets *out (free with mt__leaks_free),
 * or -EINVAL for bad options (max_points < 3, a ratio outside 0..1), the
 * reader's negative code (message in mt__trace_error) or -ENOMEM, with *out
 * NULL. A warm-up larger than the snapshots leaves zero points, not an
 * error. */
int mt__leaks_analyze(mt_trace_t *t, const mt_leak_options_t *opt, mt_leak_analysis_t **out);

/* Frees an analysis, its replay included. NULL is allowed. */
void mt__leaks_free(mt_leak_analysis_t *a);

#endif /* MT_ANALYZER_SNAPSHOTS_H */
