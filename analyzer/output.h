/* output.h - helpers the diff and leaks commands share to print sites: JSON fields, stacks, errors.
 *
 * JSON numbers that count or measure are written raw (exact 64-bit
 * integers, never through a double), and frames have the shape of
 * docs/json-schema.md's Frame, as in `memtrack report --json`.
 */
#ifndef MT_ANALYZER_OUTPUT_H
#define MT_ANALYZER_OUTPUT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#include "replay.h"

/* Adds an exact signed integer member (mt__json_u64 and the other JSON
 * helpers are in replay.h). Returns false when out of memory. */
bool mt__json_i64(cJSON *obj, const char *name, int64_t v);

/* Adds "function", "file", "line" (null when unknown) and "module" of the
 * headline frame (null for all when there is none), then "stack": every
 * frame as a Frame object. Returns false when out of memory. */
bool mt__json_site_frames(cJSON *obj, const mt_frame_t *frames, size_t n, size_t headline);

/* Formats "function (file.c:42)", "?? (module+0x1234)" or "[no stack]" for
 * the headline frame. */
void mt__headline_text(const mt_frame_t *frames, size_t n, size_t headline, char *buf, size_t cap);

/* Prints the frames from the headline down to main (at most max frames),
 * one a line, indented by indent spaces: function, file:line, module. */
void mt__print_frames(FILE *out, const mt_frame_t *frames, size_t n, size_t headline, size_t max, int indent);

/* A stack symbolized for printing: frames (malloc'd, strings owned by the
 * symbolizer) and the index of the headline frame. */
typedef struct mt_shown {
    mt_frame_t *frames;
    size_t nframes, headline;
} mt_shown_t;

/* Symbolizes stack of trace t and finds its headline with wrappers. A
 * MT_REPLAY_NO_STACK gives no frames. Returns 0 or -ENOMEM; free
 * s->frames. */
int mt__shown_stack(mt_symbolizer_t *sym, const mt_trace_t *t, uint32_t stack, const mt_patterns_t *wrappers,
                    mt_shown_t *s);

/* Adds "stack_id": the id, or null for MT_REPLAY_NO_STACK or when unknown is true. */
bool mt__json_stack_id(cJSON *obj, uint32_t stack, bool unknown);

/* Prints doc (then deletes it; NULL allowed) on stdout. Returns 0 or -ENOMEM. */
int mt__json_print(cJSON *doc);

/* Sends standard output to path (-o FILE). Returns 0, or prints one
 * error line naming path and returns -errno. */
int mt__redirect_stdout(const char *path);

/* Flushes stdout. Returns 0, or prints one error line and returns -EIO. */
int mt__stdout_flush(void);

/* Prints the one line for an unknown option or a missing value of a
 * getopt_long loop (c is getopt's ':' or '?') through bad_usage. Returns
 * its exit status. */
int mt__bad_option(int c, char **argv, int (*bad_usage)(const char *fmt, ...));

/* Prints "memtrack: PATH: MSG" on stderr, without repeating the path when
 * msg already starts with it. */
void mt__file_error(const char *path, const char *msg);

/* Opens a trace, printing one error line on failure. Returns 0 or a negative code. */
int mt__open_trace(const char *path, mt_trace_t **t);

/* Returns true when the trace was sampled (MEMTRACK_SAMPLE_BYTES), so that
 * every number derived from it is an estimate. */
bool mt__trace_sampled(const mt_trace_t *t);

/* Prints "  note: PATH is sampled (about one allocation per S bytes): the
 * numbers are estimates" on out when the trace is sampled. */
void mt__print_estimate_note(FILE *out, const char *path, const mt_trace_t *t);

/* Parses a whole non-negative decimal number no larger than max. */
bool mt__parse_u64(const char *s, uint64_t max, uint64_t *out);

/* Parses a ratio between 0 and 1 ("0.25"). */
bool mt__parse_ratio(const char *s, double *out);

#endif /* MT_ANALYZER_OUTPUT_H */
