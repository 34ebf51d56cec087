/* e2e.h - helpers for end-to-end tests: run programs under libmemtrack.so, read their traces.
 *
 * A run happens in a fresh temporary directory: the program's MEMTRACK_OUTPUT
 * points into it (by default "<dir>/%e.%p.mtrace"), its current directory is
 * it, and the traces it leaves there are listed afterwards. The build
 * directory is found from the test binary's own path (BUILD/tests/<dir>/<name>),
 * so `make BUILD=other test` tests the library and targets built there.
 *
 * Traces are read only through the analyzer's reader (analyzer/internal.h).
 * A tally counts the events of a trace by op and by (op, size); a replay
 * keeps a table of live blocks and checks that every free matches one,
 * counting frees of pointers the trace never saw allocated apart (memory the
 * program got before recording started, or from the parent before a fork).
 *
 * Every function returns 0 or a negative errno (pointer functions: NULL) and
 * leaves asserting to the tests, so any suite can use them.
 */
#ifndef MT_TESTS_E2E_H
#define MT_TESTS_E2E_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "internal.h"

/* How to run a program. Zero-initialised means: preloaded, traces into the
 * run's directory, stdout and stderr inherited. */
typedef struct mt_e2e_opts {
    bool no_preload;        /* run without LD_PRELOAD (and without MEMTRACK_OUTPUT) */
    bool capture_stdout;    /* stdout into <dir>/io/stdout (mt_e2e_run_t.stdout_path) */
    bool capture_stderr;    /* stderr into <dir>/io/stderr (mt_e2e_run_t.stderr_path) */
    const char *output;     /* MEMTRACK_OUTPUT: NULL for "<dir>/%e.%p.mtrace"; a value
                               without '/' is taken inside the run's directory */
    bool no_output;         /* leave MEMTRACK_OUTPUT unset (the library's default name) */
    const char *const *env; /* extra "NAME=value" entries, NULL-terminated; they replace
                               variables of the same name; a bare "NAME" removes it */
    const char *dir;        /* run in this existing directory instead of a fresh one
                               (not removed by mt_e2e_run_free) */
    uint64_t limit_as;      /* RLIMIT_AS of the child in bytes, 0 for none */
    unsigned timeout_s;     /* the child gets SIGALRM after this many seconds, 0 for never */
} mt_e2e_opts_t;

/* The result of one run. */
typedef struct mt_e2e_run {
    char *dir;          /* the directory the program ran in and wrote traces to */
    bool own_dir;       /* dir was created by the run: removed when freed */
    pid_t pid;          /* the pid of the process started */
    int status;         /* raw wait status */
    int exit_code;      /* exit status, or -1 when killed by a signal */
    int signal;         /* the signal that killed it, or 0 */
    char *stdout_path;  /* when captured, else NULL */
    char *stderr_path;
    char **traces;      /* regular files in dir (traces), sorted by name, absolute paths */
    size_t ntraces;
} mt_e2e_run_t;

/* Returns the build directory (the test binary's grandparent's parent, or
 * $MEMTRACK_TEST_BUILD when set: sanitizer builds record with the plain
 * build's library and targets), or NULL when /proc/self/exe cannot be read.
 * The string is static. */
const char *mt_e2e_build_dir(void);

/* Returns the build directory the test binary itself was built in, whatever
 * MEMTRACK_TEST_BUILD says (static string), or NULL. */
const char *mt_e2e_own_build_dir(void);

/* Returns the absolute path of BUILD/libmemtrack.so (static string), or NULL. */
const char *mt_e2e_preload_path(void);

/* Returns the absolute path of BUILD/targets/name, malloc'd, or NULL. */
char *mt_e2e_target_path(const char *name);

/* Creates a fresh empty temporary directory; returns its malloc'd path or NULL. */
char *mt_e2e_tempdir(void);

/* Removes path and everything below it. Returns 0 or -errno. */
int mt_e2e_remove_tree(const char *path);

/* Runs argv (argv[0] without a '/' names a target in BUILD/targets) as
 * described by opts (NULL for defaults), waits for it and fills *run. The
 * child's stdin is /dev/null and core dumps are off. Returns 0 when the
 * program ran (whatever its status), or -errno when it could not be started;
 * *run must be released with mt_e2e_run_free in both cases. */
int mt_e2e_run(mt_e2e_run_t *run, char *const argv[], const mt_e2e_opts_t *opts);

/* Same as mt_e2e_run for a target with up to a few arguments, NULL-terminated. */
int mt_e2e_run_target(mt_e2e_run_t *run, const mt_e2e_opts_t *opts, const char *name, ...);

/* Lists the run directory's traces again (after a test added files). */
int mt_e2e_list_traces(mt_e2e_run_t *run);

/* How one run of the memtrack command line went. */
typedef struct mt_e2e_cli {
    int exit_code; /* -1 when killed by a signal */
    char *out;     /* everything it wrote on stdout, malloc'd */
    char *err;     /* everything it wrote on stderr, malloc'd */
} mt_e2e_cli_t;

/* Runs BUILD/memtrack with args (NULL-terminated, at most 14), without the
 * preload, and fills *res (release with mt_e2e_cli_free). Returns 0, or a
 * negative errno when it could not be run or its output read. */
int mt_e2e_memtrack(mt_e2e_cli_t *res, const char *const *args);

/* Frees what mt_e2e_memtrack stored. */
void mt_e2e_cli_free(mt_e2e_cli_t *c);

/* Frees the run and removes its directory when the run created it. */
void mt_e2e_run_free(mt_e2e_run_t *run);

/* Reads a whole file; returns a malloc'd NUL-terminated buffer (length in
 * *len when len is not NULL), or NULL. */
char *mt_e2e_read_file(const char *path, size_t *len);

/* Writes text to dir/name and stores that path in path (size bytes).
 * Returns 0, or -errno. */
int mt_e2e_write_text(char *path, size_t size, const char *dir, const char *name, const char *text);

/* Returns the number of lines of a text file (a last line without newline
 * counts), or -errno. */
long mt_e2e_count_lines(const char *path);

/* Returns the index of the trace whose header pid is pid, or -1. */
long mt_e2e_trace_for_pid(const mt_e2e_run_t *run, uint64_t pid);

/* ---- reading traces ---- */

/* Counts by (op, size) of an allocating op. */
typedef struct mt_e2e_size_count {
    uint64_t size;
    uint64_t count;         /* allocations */
    uint64_t freed;         /* of those, blocks freed later in the trace */
    uint64_t freed_elsewhere; /* of those, freed by another thread than their allocator */
    uint8_t op;
} mt_e2e_size_count_t;

/* Everything one pass over a trace learned. */
typedef struct mt_e2e_tally {
    uint64_t events;            /* events (markers excluded) */
    uint64_t markers;
    uint64_t by_op[MT_OP_MAX + 1];
    mt_e2e_size_count_t *sizes; /* distinct (op, size) of allocating ops */
    size_t nsizes, capsizes;
    uint32_t *size_index;       /* open addressing over sizes: index + 1, 0 = empty */
    size_t size_mask;
    /* Replay with a live-block table. */
    uint64_t allocs, frees;
    uint64_t matched_frees;     /* frees of a live block */
    uint64_t cross_thread_frees; /* of those, by another thread than the allocator */
    uint64_t unknown_frees;     /* frees of a pointer never seen allocated */
    uint64_t double_allocs;     /* an allocation at an address already live */
    uint64_t live_blocks, live_bytes;
    uint64_t bad_order;         /* events whose seq did not increase */
    uint64_t bad_stacks;        /* allocations with an undefined stack id */
    uint64_t first_seq, last_seq;
    int error;                  /* the reader's error, 0 when the pass ended well */
} mt_e2e_tally_t;

/* An open trace with its tally. */
typedef struct mt_e2e_trace {
    mt_trace_t *t;
    const mt_trace_info_t *info;
    mt_e2e_tally_t tally;
    char err[512]; /* the reader's message when opening failed */
} mt_e2e_trace_t;

/* Opens path with the reader and tallies it. Returns 0, or a negative code
 * with the reader's message in tr->err. Release with mt_e2e_trace_close. */
int mt_e2e_trace_open(mt_e2e_trace_t *tr, const char *path);

/* Closes the trace and frees the tally. */
void mt_e2e_trace_close(mt_e2e_trace_t *tr);

/* Returns the number of events with op and size (size UINT64_MAX: any size;
 * sizes are tallied for allocating ops only). */
uint64_t mt_e2e_count(const mt_e2e_tally_t *t, unsigned op, uint64_t size);

/* Returns the number of allocating events of any op with this size. */
uint64_t mt_e2e_count_size(const mt_e2e_tally_t *t, uint64_t size);

/* Returns the (op, size) entry of the tally, or NULL when no such allocation happened. */
const mt_e2e_size_count_t *mt_e2e_size_entry(const mt_e2e_tally_t *t, unsigned op, uint64_t size);

/* Finds the nth (0-based) event with op and size (size UINT64_MAX: any; for
 * freeing ops use ptr instead: ptr 0 means any). Returns 1 and fills *ev, 0
 * when there is none, or the reader's negative code. */
int mt_e2e_find(mt_e2e_trace_t *tr, unsigned op, uint64_t size, uint64_t ptr, unsigned nth,
                mt_event_t *ev);

/* Finds the first freeing event of ptr after seq. Returns 1 and fills *ev,
 * 0 when the block is never freed, or a negative code. */
int mt_e2e_find_free(mt_e2e_trace_t *tr, uint64_t ptr, uint64_t after_seq, mt_event_t *ev);

/* Returns the path of the module holding frame i of an allocating event's
 * stack (for that stack's epoch), or NULL. */
const char *mt_e2e_frame_module(const mt_e2e_trace_t *tr, const mt_event_t *ev, uint32_t i);

/* Returns the depth of an allocating event's stack, or -1 for an unknown stack. */
int mt_e2e_stack_depth(const mt_e2e_trace_t *tr, const mt_event_t *ev);

/* True when path's last component is name. */
bool mt_e2e_basename_is(const char *path, const char *name);

#endif /* MT_TESTS_E2E_H */
