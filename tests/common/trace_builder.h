/* trace_builder.h - builds memtrack trace files by hand, for tests.
 *
 * Records are encoded with the encoders of mt_trace.h, in the order they are
 * added. The header may be changed at any time before the bytes are taken.
 * Events go between mt_tb_chunk_begin and mt_tb_chunk_end, which writes the
 * CHUNK record with the number of events added. Out of memory aborts: this is
 * test code.
 */
#ifndef MT_TESTS_TRACE_BUILDER_H
#define MT_TESTS_TRACE_BUILDER_H

#include <stddef.h>
#include <stdint.h>

#include "mt_trace.h"

typedef struct mt_tb mt_tb_t;

/* Returns a new builder. Header: pid 1000, ppid 1, exe "/bin/test", command
 * "test arg", version 3 (events name blocks by address; version 4 traces come
 * from the preload library), depth 64, everything else 0. */
mt_tb_t *mt_tb_new(void);

/* Sets the header fields a test may care about; cmdline holds cmdline_len
 * bytes of NUL-separated arguments. */
void mt_tb_set_header(mt_tb_t *b, uint64_t pid, uint64_t ppid, uint32_t flags, uint64_t fork_seq,
                      const char *exe, const char *cmdline_nul_separated, size_t cmdline_len);

/* Marks the trace sampled (MT_TRACE_F_SAMPLED) with a mean interval of
 * sample_bytes, or not sampled when it is 0. */
void mt_tb_set_sampled(mt_tb_t *b, uint64_t sample_bytes);

/* Appends a MODULE record; build_id may be NULL when build_id_len is 0. */
void mt_tb_module(mt_tb_t *b, uint64_t id, uint64_t load_epoch, uint64_t base, uint64_t start,
                  uint64_t end, const char *path, const uint8_t *build_id, size_t build_id_len);

/* Appends an UNLOAD record. */
void mt_tb_unload(mt_tb_t *b, uint64_t module_id, uint64_t epoch);

/* Appends a STACK record of depth frames. */
void mt_tb_stack(mt_tb_t *b, uint64_t id, uint64_t epoch, const uint64_t *frames, uint32_t depth);

/* Appends a LABEL record. */
void mt_tb_label(mt_tb_t *b, uint64_t id, const char *text);

/* Appends a MARKER record. */
void mt_tb_marker(mt_tb_t *b, uint64_t seq, uint64_t time_ns, uint32_t tid, uint64_t label);

/* Appends a TIME record. */
void mt_tb_time(mt_tb_t *b, uint64_t seq, uint64_t time_ns);

/* Appends a SYNC record: every event after it has a seq of at least seq. */
void mt_tb_sync(mt_tb_t *b, uint64_t seq);

/* Starts a chunk of stream's events; ends any chunk still open first. */
void mt_tb_chunk_begin(mt_tb_t *b, uint64_t stream, uint32_t tid, uint64_t first_seq);

/* Adds an allocating event (op one of the allocating MT_OP_*) to the open
 * chunk; the seq and pointer are absolute, the builder writes the deltas. */
void mt_tb_alloc(mt_tb_t *b, unsigned op, uint64_t seq, uint64_t ptr, uint64_t size, uint32_t stack);

/* Adds a freeing event (op one of the freeing MT_OP_*) to the open chunk. */
void mt_tb_free(mt_tb_t *b, unsigned op, uint64_t seq, uint64_t ptr);

/* Appends the open chunk as a CHUNK record, count = the events added. */
void mt_tb_chunk_end(mt_tb_t *b);

/* Sets the header's version: 4, 5 or 6 for traces written with the _v4
 * calls, which then encode their events as that version does (6 as 5). */
void mt_tb_set_version(mt_tb_t *b, uint32_t version);

/* Version 4 and 5 events (include/mt_trace.h): an allocation named by its seq,
 * or by addr when addr is not 0, that finds the block allocated at seq
 * replaces still live when replaces is not 0; a free of the block
 * allocated at seq ref; a free of the block at address addr. */
void mt_tb_alloc_v4(mt_tb_t *b, unsigned op, uint64_t seq, uint64_t size, uint32_t stack, uint64_t replaces,
                    uint64_t addr);
void mt_tb_free_ref(mt_tb_t *b, unsigned op, uint64_t seq, uint64_t ref);
void mt_tb_free_addr(mt_tb_t *b, unsigned op, uint64_t seq, uint64_t addr);

/* Appends a LOST record. */
void mt_tb_lost(mt_tb_t *b, uint64_t stream, uint64_t count);

/* Appends an END record. */
void mt_tb_end(mt_tb_t *b, uint64_t last_seq, uint64_t time_ns, uint64_t events, uint64_t dropped,
               uint64_t stacks);

/* Appends n arbitrary bytes (for corruption tests). */
void mt_tb_raw(mt_tb_t *b, const void *bytes, size_t n);

/* Returns the bytes so far, header included (not an open chunk), and stores
 * their number in *len. Valid until the next call on the builder. */
const uint8_t *mt_tb_data(mt_tb_t *b, size_t *len);

/* Writes the bytes so far to path. Returns 0 or a negative errno. */
int mt_tb_write(mt_tb_t *b, const char *path);

/* Writes the bytes so far to a fresh mkstemp file under /tmp and returns its
 * path (malloc'd; the caller unlinks and frees it), or NULL on failure. */
char *mt_tb_write_temp(mt_tb_t *b);

/* Frees the builder. NULL is allowed. */
void mt_tb_destroy(mt_tb_t *b);

#endif /* MT_TESTS_TRACE_BUILDER_H */
