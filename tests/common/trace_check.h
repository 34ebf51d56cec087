/* trace_check.h - runs one trace file through every analyzer path that parses it, for robustness tests.
 *
 * Used by the fuzzers (tests/fuzz/) and by the suites that feed damaged
 * traces to the reader (tests/analyzer/test_bad_traces.c,
 * tests/analyzer/test_fuzz_regressions.c). It neither prints nor asserts:
 * a crash, a hang or a sanitizer report is the failure it exists to find.
 */
#ifndef MT_TESTS_TRACE_CHECK_H
#define MT_TESTS_TRACE_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What one pass learned. */
typedef struct mt_tc_result {
    int open_rc;       /* mt__trace_open's code */
    int replay_rc;     /* mt__replay_run's code (0 when the open failed) */
    int dump_rc;       /* the raw record iterator's: 0 at a clean end, else negative */
    uint64_t events;   /* events replayed */
    uint64_t records;  /* records the iterator read */
    int truncated;     /* the reader saw a record cut by the end of the file */
    char err[512];     /* the first failure's message, "" when none */
} mt_tc_result_t;

/* Opens path with the reader, replays it fully (and a second time after a
 * rewind, which must give the same totals), asks the trace for each stack's
 * modules, each marker's label and time, then walks it again with the raw
 * record iterator the way `memtrack dump` does. Returns 0 when every step
 * succeeded, or the first negative code; the details are in *res. */
int mt_tc_exercise(const char *path, mt_tc_result_t *res);

/* Stores data in a memory file of the process (one memfd, reused by every
 * call) and returns a path that opens it (/proc/self/fd/N), valid until the
 * next call. Aborts when the memfd cannot be made or written: test code. */
const char *mt_tc_memfile(const void *data, size_t len);

/* Returns true when msg is what the reader should say about a bad trace:
 * one line that starts with path and, where it names an offset, an offset
 * inside the file (size bytes). Otherwise stores why not in why. */
bool mt_tc_message_ok(const char *msg, const char *path, uint64_t size, char *why, size_t whylen);

/* How one run of the memtrack command line went. */
typedef struct mt_tc_cli {
    int exit_code;  /* -1 when killed */
    int signal;     /* the signal that killed it, or 0 */
    char *out;      /* everything it wrote on stdout, malloc'd */
    char *err;      /* everything it wrote on stderr, malloc'd */
    long err_lines;
} mt_tc_cli_t;

/* Runs `memtrack CMD TRACE` (report or dump) from the
 * build the test binary belongs to, with an address-space limit of 1 GiB
 * (none under ASan or TSan, which reserve far more) and SIGALRM after 120
 * seconds, so that unbounded memory or a hang shows as a failure. Returns 0
 * and fills *out (release with mt_tc_cli_free), or a negative errno. */
int mt_tc_run_cli(const char *cmd, const char *trace, mt_tc_cli_t *out);

/* Frees what mt_tc_run_cli stored. */
void mt_tc_cli_free(mt_tc_cli_t *c);

#endif /* MT_TESTS_TRACE_CHECK_H */
