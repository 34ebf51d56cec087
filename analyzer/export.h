/* export.h - what the export commands share: a replayed trace with its timeline and call trees.
 *
 * flamegraph, massif, timeline and html all open one trace, replay it once
 * and then look at the same things: the live heap over time (a bounded
 * list of points, the peak and every snapshot marker kept exactly), the
 * sites' numbers (peak, leaked, allocations, temporary), symbolized stacks
 * and call trees built from them. export.c drives the replay engine with
 * mt__replay_feed so that it can sample the live heap between events, and
 * optionally records, for the HTML page's range selection, which blocks
 * were allocated in which part of the run and how long they lived.
 */
#ifndef MT_ANALYZER_EXPORT_H
#define MT_ANALYZER_EXPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "replay.h"

/* The numbers a call tree can weigh frames by. */
typedef enum mt_metric {
    MT_METRIC_PEAK,        /* live bytes at the global peak */
    MT_METRIC_LEAKED,      /* bytes live at the end, suppressions applied */
    MT_METRIC_ALLOCATIONS, /* blocks allocated */
    MT_METRIC_TEMPORARY,   /* temporary allocations (see mt_totals_t) */
    MT_METRIC_COUNT
} mt_metric_t;

/* Parses "peak", "leaked", "allocations" or "temporary". Returns 0 or -EINVAL. */
int mt__metric_parse(const char *name, mt_metric_t *out);

/* Returns the name of a metric. */
const char *mt__metric_name(mt_metric_t m);

/* One point of the timeline: the state right after event seq. */
typedef struct mt_tl_point {
    uint64_t seq;
    uint64_t time_ns;          /* since the start of the run */
    uint64_t live_bytes;
    uint64_t live_allocations;
    uint64_t allocations;      /* allocations so far */
    uint64_t bytes_allocated;  /* bytes allocated so far */
    long snapshot;             /* index into the replay's snapshots, or -1 */
} mt_tl_point_t;

/* One group of blocks for the range selection: blocks of one stack allocated
 * in bucket alloc_bucket and freed in bucket free_bucket (nbuckets: never
 * freed). Only blocks that outlive their own bucket are kept. */
typedef struct mt_range_entry {
    uint32_t stack;
    uint32_t alloc_bucket, free_bucket;
    uint64_t bytes, blocks;
} mt_range_entry_t;

typedef struct mt_export_options {
    size_t max_points;     /* bound on timeline points (markers excepted); 0: one per event */
    size_t range_buckets;  /* buckets of the range selection data; 0: none */
    bool capture_sites;    /* per-site live heap at each snapshot */
    bool no_default_suppressions;
    const char *suppression_files[16]; /* --suppressions FILE, in order */
    size_t nsuppression_files;
} mt_export_options_t;

/* Adds the path of a --suppressions option to opt; returns 0, or -E2BIG
 * when there are too many. */
int mt__export_add_suppressions(mt_export_options_t *opt, const char *path);

/* A trace opened and replayed for an export. */
typedef struct mt_export {
    const char *path;
    mt_trace_t *trace;
    const mt_trace_info_t *info;
    mt_replay_t *replay;
    const mt_totals_t *totals;
    mt_symbolizer_t *sym;
    mt_patterns_t suppressions;
    mt_tl_point_t *points;
    size_t npoints, points_cap;
    size_t peak_point;      /* index of the peak in points (0 when nothing was allocated) */
    bool downsampled;       /* some events have no point of their own */
    size_t nbuckets;        /* range data: buckets of equal seq spans */
    uint64_t bucket_span;
    mt_range_entry_t *range;
    size_t nrange, range_cap;
    uint32_t *range_index;  /* open addressing over range: index + 1 */
    size_t range_index_cap;
    mt_frame_t **frames;    /* per stack id (and one more for no stack), symbolized lazily */
    size_t *nframes;
    bool *have_frames;
    size_t nstacks;
} mt_export_t;

/* Opens the trace at path and replays it as opt says. On failure prints one
 * line "memtrack: PATH: problem" on stderr and returns a negative code; *x
 * must be released with mt__export_free in both cases. */
int mt__export_load(mt_export_t *x, const char *path, const mt_export_options_t *opt);

/* Frees everything the export holds. */
void mt__export_free(mt_export_t *x);

/* Returns the symbolized frames of stack (innermost first, cached; zero
 * frames for MT_REPLAY_NO_STACK). Returns 0 or -ENOMEM. */
int mt__export_frames(mt_export_t *x, uint32_t stack, const mt_frame_t **frames, size_t *n);

/* Stores a site's value for every metric in values; leaked bytes of a site
 * matched by a suppression count as 0. Returns 0 or -ENOMEM. */
int mt__export_site_values(mt_export_t *x, const mt_site_t *s, uint64_t values[MT_METRIC_COUNT]);

/* Returns the bucket of the range data holding seq. */
uint32_t mt__export_bucket(const mt_export_t *x, uint64_t seq);

/* Writes a frame's display name into buf: its function, else module+0xoffset,
 * else the address. Returns buf. */
const char *mt__frame_name(const mt_frame_t *f, char *buf, size_t cap);

/* Opens path for writing (NULL or "-": standard output). On failure prints
 * one line and returns NULL. */
FILE *mt__export_open_output(const char *path);

/* Prints one line "memtrack CMD: message (try 'memtrack CMD --help')" on
 * stderr and returns MT_EXIT_BAD_INPUT. */
int mt__export_bad_usage(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Flushes and closes out (unless it is stdout). Prints one line and returns
 * -EIO on a write error. */
int mt__export_close_output(FILE *out, const char *path);

/* Writes an export of x to out; returns 0, -ENOMEM, or another negative
 * code after printing its own one-line message. */
typedef int (*mt_export_write_fn)(FILE *out, mt_export_t *x, void *ctx);

/* The end of every export command, once its options are parsed (argv[first]
 * onwards are the operands): checks that exactly one trace is given, opens
 * output (NULL: standard output) before the work so that an unwritable
 * file fails fast, loads the trace and calls write. Returns the exit
 * status, having printed one line on any failure. */
int mt__export_main(const char *cmd, int argc, char **argv, int first, const char *output,
                    const mt_export_options_t *opt, mt_export_write_fn write, void *ctx);

/* Parses a count option's value between min and max into *out. Returns 0,
 * or prints one line for cmd and returns -EINVAL. */
int mt__export_parse_count(const char *cmd, const char *option, const char *value, size_t min, size_t max,
                           size_t *out);

/* ---- call trees ---- */

#define MT_TREE_NONE UINT32_MAX

/* One node of a call tree: one frame in the context of its callers (or, for
 * an inverted tree, of its callees). Strings belong to the symbolizer. */
typedef struct mt_tree_node {
    const char *name;      /* display name (owned by the tree) */
    const char *file;      /* may be NULL */
    uint32_t line;
    uint64_t address;
    uint32_t parent, first_child, last_child, next_sibling;
    uint32_t depth;
    uint64_t value[MT_METRIC_COUNT]; /* inclusive */
} mt_tree_node_t;

typedef struct mt_tree {
    mt_tree_node_t *nodes;  /* nodes[0] is the root */
    size_t n, cap;
    uint32_t *index;        /* open addressing over (parent, name, file, line): node + 1 */
    size_t index_cap;
    bool by_line;           /* nodes differ by file and line, not only by name (else a
                               node keeps its first call site's file and line) */
    bool inverted;          /* innermost frame first (massif), else outermost first */
} mt_tree_t;

/* Starts an empty tree with a root named root_name. Returns 0 or -ENOMEM. */
int mt__tree_init(mt_tree_t *t, const char *root_name, bool by_line, bool inverted);

/* Frees the tree. */
void mt__tree_free(mt_tree_t *t);

/* Adds values along a symbolized stack (innermost first, as symbolized;
 * memtrack's own frames are skipped). A stack of no frame is charged to a
 * node "[unknown]". Returns the leaf node, or a negative code. */
long mt__tree_add(mt_tree_t *t, const mt_frame_t *frames, size_t n, const uint64_t values[MT_METRIC_COUNT]);

/* Builds the call tree of every site of x, weighted by every metric
 * (root first). Returns 0 or -ENOMEM. */
int mt__export_tree(mt_export_t *x, mt_tree_t *t, bool by_line);

/* Returns a node's self value for metric m: its value minus its children's. */
uint64_t mt__tree_self(const mt_tree_t *t, uint32_t node, mt_metric_t m);

#endif /* MT_ANALYZER_EXPORT_H */
