/* replay.h - the replay engine and the report model built on it, for report, diff, leaks and check.
 *
 * replay.c replays a trace's merged event stream once and keeps, per
 * allocation site (stack id) and in total, the numbers every analysis
 * command needs: allocations, frees, the peak and each site's share of it,
 * each site's own high-water mark, leaks, temporaries, unknown frees and the
 * live heap at every snapshot marker. A command that needs more than the
 * totals at each marker (per-site series for diff and leaks) registers a
 * marker callback or asks for per-site captures; a command that needs to see
 * each event (budgets checked as they are crossed) drives the engine itself
 * with mt__replay_feed. Memory is proportional to live blocks, distinct
 * stacks, threads and markers, never to the length of the trace.
 *
 * report.c turns replayed sites into what a person reads: symbolized stacks,
 * the headline frame (the first frame outside memtrack and the allocation
 * wrappers), suppressions in the LeakSanitizer format, grouping of sites by
 * stack, function or line (and across processes), and number formatting.
 * Its matching functions work on plain mt_frame_t arrays, so they can be
 * tested without debug information.
 */
#ifndef MT_ANALYZER_REPLAY_H
#define MT_ANALYZER_REPLAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "internal.h"

/* ---- replay.c: one pass over the events, per-site and total statistics ---- */

/* The stack id of the site that collects allocations whose stack id the
 * trace never defined. */
#define MT_REPLAY_NO_STACK UINT32_MAX

/* What replay knows about one allocation site (one distinct call stack).
 * Frees are charged to the site that allocated the block. The live_* fields
 * are current during replay and hold the leaks after mt__replay_finish; the
 * peak_* fields are final only after mt__replay_finish. */
typedef struct mt_site {
    uint32_t stack;                 /* stack id, or MT_REPLAY_NO_STACK */
    uint64_t allocations;           /* blocks returned (a realloc's new block included) */
    uint64_t bytes_allocated;
    uint64_t frees;                 /* blocks of this site freed (a realloc's old block included) */
    uint64_t bytes_freed;
    uint64_t live_bytes;            /* now; after finish: leaked bytes */
    uint64_t live_allocations;      /* now; after finish: leaked blocks */
    uint64_t peak_bytes;            /* live bytes of this site at the global peak */
    uint64_t peak_allocations;      /* live blocks of this site at the global peak */
    uint64_t max_live_bytes;        /* this site's own high-water mark */
    uint64_t max_live_seq;          /* seq of the event that set it */
    uint64_t temporary_allocations; /* see mt_totals_t */
    uint64_t temporary_bytes;
    uint64_t peak_version;          /* engine-private: the peak peak_* belong to */
} mt_site_t;

/* Totals over the whole run. In a sampled trace (MT_TRACE_F_SAMPLED) every
 * count and byte total is an estimate: each recorded block is weighted by
 * the inverse of its sampling probability, and a block's size and weight
 * (mt_block_t) are the scaled ones. events still counts recorded events.
 *
 * A block is temporary when the thread that allocated it frees it before
 * that thread allocates anything else: the block is still the thread's
 * latest allocation when the same thread frees it. Frees of other blocks in
 * between do not matter, and neither do other threads' allocations. The
 * freed half of a realloc, rallocx or xallocx never makes its old block
 * temporary (the data lives on in the new block), while the new block counts
 * as the thread's latest allocation like any other. A realloc to size 0
 * writes only a freed half, so it does not make a temporary either. */
typedef struct mt_totals {
    uint64_t events;                /* allocation and free events replayed */
    uint64_t allocations, bytes_allocated;
    uint64_t frees, bytes_freed;    /* frees of known blocks */
    uint64_t live_bytes, live_allocations;
    uint64_t peak_bytes;            /* the highest total live heap */
    uint64_t peak_allocations;      /* live blocks at that moment */
    uint64_t peak_seq;              /* the event that reached it (the first, on ties) */
    uint64_t peak_time_ns;          /* its time since the start (after finish) */
    uint64_t leaked_bytes, leaked_allocations; /* live at the end (after finish) */
    uint64_t temporary_allocations, temporary_bytes;
    uint64_t unknown_frees;         /* frees of pointers never seen allocated */
    uint64_t unsampled_frees;       /* in a sampled trace, those instead: blocks not sampled */
    uint64_t missed_frees;          /* live blocks whose address was allocated again:
                                       their free was lost; they count as neither */
    uint64_t missed_free_bytes;
    uint64_t undefined_stacks;      /* allocations whose stack id the trace never defined */
    uint64_t ignored_events;        /* allocations at address 0, unknown ops */
    uint64_t markers;
    uint64_t threads;               /* distinct thread ids that allocated or freed */
} mt_totals_t;

/* One site's live heap at a snapshot, when captured. */
typedef struct mt_snapshot_site {
    uint32_t stack;
    uint64_t live_bytes;
    uint64_t live_allocations;
} mt_snapshot_site_t;

/* The live heap at one snapshot marker. */
typedef struct mt_snapshot {
    uint32_t label;            /* label id */
    const char *text;          /* label text (owned by the trace), or NULL */
    uint64_t seq;
    uint64_t time_ns;          /* since the start of the run */
    uint32_t tid;              /* thread that placed it; 0 for a signal or the timer */
    uint64_t live_bytes;
    uint64_t live_allocations;
    size_t nsites;             /* with capture_sites: sites with live blocks, by stack id */
    mt_snapshot_site_t *sites;
} mt_snapshot_t;

/* A live block, as kept in the engine's table. */
typedef struct mt_block {
    uint64_t ptr;
    uint64_t size;
    uint64_t seq;   /* the allocating event */
    uint32_t stack; /* the allocating site's stack id, or MT_REPLAY_NO_STACK */
    uint32_t tid;   /* the allocating thread */
    uint64_t weight; /* blocks it stands for: 1, or in a sampled trace 1/p (see replay.c) */
} mt_block_t;

typedef struct mt_replay mt_replay_t;

/* Called at each marker, after the snapshot was recorded. The replay's
 * sites (mt__replay_sites) hold their live bytes and blocks at that moment.
 * Returns 0 to go on, or a negative code that stops the replay and is
 * returned by mt__replay_feed. */
typedef int (*mt_replay_marker_fn)(void *ctx, const mt_replay_t *r, const mt_snapshot_t *snap);

/* Called now and then by mt__replay_run with the events done and the events
 * the trace holds (info->events). */
typedef void (*mt_replay_progress_fn)(void *ctx, uint64_t done, uint64_t total);

typedef struct mt_replay_options {
    mt_replay_marker_fn on_marker; /* optional */
    void *marker_ctx;
    bool capture_sites;            /* store per-site live heap in every snapshot */
    mt_replay_progress_fn progress; /* optional */
    void *progress_ctx;
    bool read_inline;              /* mt__replay_run: decode in the calling thread only */
} mt_replay_options_t;

/* Creates a replay engine for trace t, with options opt (NULL for none). The
 * trace must stay open while the engine is used. Returns NULL when out of
 * memory. */
mt_replay_t *mt__replay_new(const mt_trace_t *t, const mt_replay_options_t *opt);

/* Applies one event of the merged stream (in seq order). Unknown frees,
 * missed frees and undefined stacks are counted, never errors. Returns 0,
 * -ENOMEM, or the marker callback's negative code. */
int mt__replay_feed(mt_replay_t *r, const mt_event_t *ev);

/* Ends the replay: settles every site's peak_* fields, the leaks, the peak
 * time and the thread count. Feeding more events afterwards is not allowed.
 * Returns 0. */
int mt__replay_finish(mt_replay_t *r);

/* Replays trace t from its beginning (rewinding it) to its end and finishes.
 * Returns 0 and sets *out (free with mt__replay_free), or a negative code
 * with *out NULL: the reader's (message in mt__trace_error), -ENOMEM, or the
 * marker callback's. */
int mt__replay_run(mt_trace_t *t, const mt_replay_options_t *opt, mt_replay_t **out);

/* Frees the engine, its sites and snapshots. NULL is allowed. */
void mt__replay_free(mt_replay_t *r);

/* Returns the totals; valid until mt__replay_free. */
const mt_totals_t *mt__replay_totals(const mt_replay_t *r);

/* Returns the sites and stores their count in *n: entry i is stack id i, and
 * the last entry is the MT_REPLAY_NO_STACK site. Sites that saw no event are
 * all zero. The array moves when a feed defines new stacks. */
const mt_site_t *mt__replay_sites(const mt_replay_t *r, size_t *n);

/* Returns the site of stack id stack (MT_REPLAY_NO_STACK included), or NULL
 * when no event used that id. */
const mt_site_t *mt__replay_site(const mt_replay_t *r, uint32_t stack);

/* Returns the snapshots, one per marker in seq order, and their count. */
const mt_snapshot_t *mt__replay_snapshots(const mt_replay_t *r, size_t *n);

/* Returns the live block at address ptr, or NULL. */
const mt_block_t *mt__replay_block(const mt_replay_t *r, uint64_t ptr);

/* Calls fn for every live block (after finish: every leaked block), in no
 * particular order, until fn returns non-zero; returns that value or 0. */
int mt__replay_foreach_live(const mt_replay_t *r, int (*fn)(void *ctx, const mt_block_t *b), void *ctx);

/* ---- report.c: symbolized sites, headlines, suppressions, grouping, units ---- */

/* A growable list of patterns: allocation wrapper globs or suppressions. */
typedef struct mt_patterns {
    char **items;
    size_t n, cap;
} mt_patterns_t;

/* Appends a copy of pattern. Returns 0 or -ENOMEM. */
int mt__patterns_add(mt_patterns_t *p, const char *pattern);

/* Frees the patterns' storage and empties the list. */
void mt__patterns_free(mt_patterns_t *p);

/* Appends the built-in allocation wrapper globs: operator new, strdup,
 * realloc-style wrappers, xmalloc and g_malloc kin, fopen and opendir, and
 * every function of the C++ standard library (std::*, __gnu_cxx::*).
 * Returns 0 or -ENOMEM. */
int mt__wrappers_add_defaults(mt_patterns_t *p);

/* Returns true when frame f belongs to memtrack itself (libmemtrack.so). */
bool mt__frame_is_memtrack(const mt_frame_t *f);

/* Returns true when f's function matches one of the wrapper globs (fnmatch),
 * tried on the full demangled name, on the name without its parameter list
 * and on that without a template's return type, so that "operator new*",
 * "xmalloc" and "std::*" all work. */
bool mt__frame_is_wrapper(const mt_frame_t *f, const mt_patterns_t *wrappers);

/* Shortens a demangled function name to at most max characters for text
 * output: first without return type and parameters, then without template
 * arguments, then cut with "...". Returns name itself when it fits, else
 * buf; "??" for NULL. */
const char *mt__short_function(const char *name, size_t max, char *buf, size_t cap);

/* Returns the index of the headline frame of a symbolized stack (innermost
 * first): the first frame outside memtrack and outside the wrappers. When
 * every frame is one of those, returns the first frame outside memtrack, or
 * 0. n must be at least 1. */
size_t mt__headline(const mt_frame_t *frames, size_t n, const mt_patterns_t *wrappers);

/* Appends the built-in suppressions: one-time allocations of libc, ld.so
 * and libstdc++ (stdio buffers, locale, TLS, atexit...). Returns 0 or
 * -ENOMEM. */
int mt__suppressions_add_defaults(mt_patterns_t *s);

/* Loads a LeakSanitizer suppression file: "leak:PATTERN" lines; blank lines
 * and '#' comments are skipped, other sanitizers' types ignored. Returns 0,
 * or a negative code with a message (file, line and problem) in err. */
int mt__suppressions_load(mt_patterns_t *s, const char *path, char *err, size_t errlen);

/* Matches text against a suppression pattern the way LeakSanitizer does:
 * substring match, '*' any characters, '^' anchors at the start, '$' at the
 * end. Returns false for a NULL or empty text. */
bool mt__suppression_match(const char *pattern, const char *text);

/* Returns the first suppression matching any frame's function, file or
 * module, or NULL. */
const char *mt__suppressed_by(const mt_frame_t *frames, size_t n, const mt_patterns_t *s);

/* How sites are grouped into report rows. */
typedef enum mt_group_by {
    MT_GROUP_STACK,    /* one row per distinct stack */
    MT_GROUP_FUNCTION, /* by headline function (and module) */
    MT_GROUP_LINE      /* by headline function, file and line */
} mt_group_by_t;

/* Builds the grouping key of a symbolized stack with headline index
 * headline: for MT_GROUP_STACK every frame's function, file and module
 * (module+offset for frames without a function), so that stacks of
 * different processes match; otherwise the headline's function and module
 * (plus file and line for MT_GROUP_LINE). Returns a malloc'd string, or NULL
 * when out of memory. */
char *mt__site_key(const mt_frame_t *frames, size_t n, size_t headline, mt_group_by_t by);

/* The numbers of a report row: one site, or a group of them. */
typedef struct mt_row_stats {
    uint64_t allocations, bytes_allocated;
    uint64_t frees, bytes_freed;
    uint64_t peak_bytes, peak_allocations;
    uint64_t leaked_bytes, leaked_allocations;         /* not suppressed */
    uint64_t suppressed_bytes, suppressed_allocations; /* leaked but suppressed */
    uint64_t temporary_allocations, temporary_bytes;
} mt_row_stats_t;

/* One row of a report. frames is NULL until the row's stack is symbolized. */
typedef struct mt_row {
    char *key;             /* grouping key, NULL for ungrouped rows */
    size_t proc;           /* the process (trace) of the representative stack */
    uint32_t stack;        /* the representative stack id */
    size_t members;        /* stacks in the row */
    mt_frame_t *frames;    /* representative symbolized stack, malloc'd */
    size_t nframes;
    size_t headline;
    const char *suppressed; /* a suppression that matched a member, or NULL */
    bool stack_truncated;  /* the recorded stack reached the maximum depth */
    mt_row_stats_t stats;
} mt_row_t;

/* Rows with an index by key. */
typedef struct mt_rows {
    mt_row_t *items;
    size_t n, cap;
    size_t *index;         /* open addressing: row number + 1, 0 for empty */
    size_t index_cap;
} mt_rows_t;

/* Adds a site's numbers to the row with the given key (NULL: always a new
 * row), creating it with proc, stack and a copy of frames (which may be
 * NULL) when it is new. The first suppression seen is kept. Returns the row
 * number, or -ENOMEM. */
long mt__rows_add(mt_rows_t *rows, const char *key, size_t proc, uint32_t stack, const mt_frame_t *frames,
                  size_t nframes, size_t headline, const mt_row_stats_t *stats);

/* Frees the rows. */
void mt__rows_free(mt_rows_t *rows);

/* Adds b's numbers to a's. */
void mt__row_stats_add(mt_row_stats_t *a, const mt_row_stats_t *b);

/* The orders rows can be listed in. */
typedef enum mt_sort_key {
    MT_SORT_PEAK,
    MT_SORT_LEAKED,
    MT_SORT_ALLOCATIONS,
    MT_SORT_TEMPORARY,
    MT_SORT_BYTES,
    MT_SORT_COUNT
} mt_sort_key_t;

/* Returns the number a row is sorted by for key. */
uint64_t mt__row_metric(const mt_row_t *row, mt_sort_key_t key);

/* Parses "peak", "leaked", "allocations", "temporary" or "bytes". Returns 0
 * or -EINVAL. */
int mt__sort_key_parse(const char *name, mt_sort_key_t *out);

/* Returns the name of a sort key. */
const char *mt__sort_key_name(mt_sort_key_t key);

/* Sorts idx (n row numbers of rows) by key, largest first; ties fall back on
 * the other numbers and then on process and stack id, so that the order is
 * the same on every run. */
void mt__rows_sort(const mt_rows_t *rows, size_t *idx, size_t n, mt_sort_key_t key);

/* Symbolizes stack stack of trace t into a malloc'd array of frames
 * (innermost first, inlined frames expanded), stored in *frames and *n.
 * Strings belong to the symbolizer. A stack the trace does not define gives
 * zero frames. Returns 0 or -ENOMEM. */
int mt__symbolize_stack(mt_symbolizer_t *s, const mt_trace_t *t, uint32_t stack, mt_frame_t **frames,
                        size_t *n);

/* Formats bytes with binary units: "24 B", "1.5 KiB", "12.3 MiB". Returns buf. */
char *mt__format_size(uint64_t bytes, char *buf, size_t cap);

/* Formats a count with thousands separators: "1,024". Returns buf. */
char *mt__format_count(uint64_t n, char *buf, size_t cap);

/* Formats a duration in ns: "850 ns", "12.3 ms", "4.20 s". Returns buf. */
char *mt__format_duration(uint64_t ns, char *buf, size_t cap);

/* JSON output helpers shared by the commands (cJSON). Each adds one member
 * to obj and returns false when out of memory. */
struct cJSON;

/* Adds an exact unsigned integer, written raw: cJSON numbers are doubles. */
bool mt__json_u64(struct cJSON *obj, const char *name, uint64_t v);

/* Adds a hexadecimal string "0x1a2b" (addresses do not fit a double). */
bool mt__json_hex(struct cJSON *obj, const char *name, uint64_t v);

/* Adds a string, or null when s is NULL. */
bool mt__json_str(struct cJSON *obj, const char *name, const char *s);

/* Adds a line number, or null for 0 (unknown). */
bool mt__json_line(struct cJSON *obj, const char *name, uint32_t line);

/* Returns a new object for a frame (function, file, line, module, address,
 * offset, inlined; docs/json-schema.md), or NULL when out of memory. */
struct cJSON *mt__json_frame(const mt_frame_t *f);

#endif /* MT_ANALYZER_REPLAY_H */
