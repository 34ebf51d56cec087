/* internal.h - declarations shared by the memtrack analyzer's files.
 *
 * Prototypes are grouped by the file that defines them. Functions return 0 or
 * a negative errno-style code (pointer functions: NULL); where a message for
 * the user is needed, the failing module keeps it (mt__trace_error) so that
 * the command can print one line naming the file and the problem.
 */
#ifndef MT_ANALYZER_INTERNAL_H
#define MT_ANALYZER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "mt_trace.h"

/* Exit statuses of every subcommand. */
#define MT_EXIT_OK 0
#define MT_EXIT_CHECK_FAILED 1
#define MT_EXIT_BAD_INPUT 2

/* ---- trace_reader.c: the only code that parses trace files ---- */

/* A module (executable or shared object) mapped in the traced process. An
 * address A of a stack with epoch E belongs to the module with
 * start <= A < end and load_epoch <= E < unload_epoch. */
typedef struct mt_module {
    uint64_t id;
    uint64_t load_epoch;
    uint64_t unload_epoch; /* UINT64_MAX while never unloaded */
    uint64_t base;         /* load bias: ELF virtual address = A - base */
    uint64_t start, end;
    char *path;
    uint8_t *build_id;
    size_t build_id_len;
} mt_module_t;

/* A distinct call stack: return addresses, innermost first. */
typedef struct mt_stack {
    uint64_t epoch;
    uint32_t depth;
    const uint64_t *frames;
} mt_stack_t;

/* Op value of the pseudo-events that mark snapshots in the merged stream. */
#define MT_EV_MARKER 0

/* One event of the merged, globally ordered stream. For an allocating op,
 * size and stack are set; for a freeing op only ptr. For MT_EV_MARKER, label
 * is set and ptr, size and stack are 0. */
typedef struct mt_event {
    uint64_t seq;
    uint64_t ptr;
    uint64_t size;
    uint32_t stack; /* stack id, index into the trace's stacks */
    uint32_t tid;
    uint32_t label; /* label id, for markers */
    uint8_t op;     /* mt_op_t, or MT_EV_MARKER */
    uint64_t replaces; /* an allocation: the key of a block whose free was lost, or 0 */
} mt_event_t;

/* Blocks are keyed by their address (traces before version 4, and blocks a
 * version 4 trace names by address) or by their allocation's seq with the
 * top bit set (no address has it). */
#define MT_BLOCK_KEY(seq) ((seq) | (1ull << 63))

/* The key of the block an event may end: a free's own, and for an
 * allocation, the block it finds still live (its free lost): the one a
 * version 4 trace names, or one at the same address. */
static inline uint64_t mt_event_ends(const mt_event_t *ev)
{
    return mt_op_allocates(ev->op) && ev->replaces ? ev->replaces : ev->ptr;
}

/* A snapshot marker, as loaded in the first pass. */
typedef struct mt_marker {
    uint64_t seq;
    uint64_t time_ns;
    uint32_t tid;
    uint32_t label;
} mt_marker_t;

typedef struct mt_trace mt_trace_t;

/* What the first pass learned about the whole trace. Owned by the trace. */
typedef struct mt_trace_info {
    const char *path;
    uint32_t version;
    uint64_t pid, ppid;
    uint64_t start_realtime_ns;
    uint64_t fork_seq;
    uint32_t flags;
    uint32_t depth;
    uint64_t sample_bytes;
    const char *exe;       /* executable path */
    const char *command;   /* command line, arguments joined by spaces */
    uint64_t events;       /* events found in chunks */
    uint64_t dropped;      /* events lost in the library (LOST and END records) */
    uint64_t last_seq;     /* highest sequence number seen */
    uint64_t duration_ns;  /* time of the last TIME or END record */
    bool complete;         /* an END record was found */
    uint32_t end_signal;   /* the fatal signal the process died of, 0 if none */
    bool truncated;        /* the file ends inside a record */
    uint64_t truncated_at; /* offset of the cut record, when truncated */
    size_t nmodules;
    const mt_module_t *modules;
    size_t nstacks;
    size_t nlabels;
    size_t nmarkers;
    const mt_marker_t *markers; /* in seq order */
} mt_trace_info_t;

/* Opens a trace and runs the first pass: validates the header, loads modules,
 * stacks, labels, markers and time points, and checks every chunk's header,
 * skipping event payloads. A file that ends inside a record is accepted
 * (info->truncated); anything else malformed fails. Returns 0 and sets *out,
 * or a negative code with *out NULL and a message (file name and byte
 * offset) copied into err (errlen bytes). A trace with SYNC records (version
 * 6), or whose frames continue one zstd stream, is then read in one
 * streaming pass whose memory follows the chunks between two SYNCs; another
 * keeps an index of its chunks (48 bytes each). Memory never follows the
 * number of events. */
int mt__trace_open(const char *path, mt_trace_t **out, char *err, size_t errlen);

/* Frees everything the trace owns. NULL is allowed. */
void mt__trace_close(mt_trace_t *t);

/* Returns the trace's summary; valid until mt__trace_close. */
const mt_trace_info_t *mt__trace_info(const mt_trace_t *t);

/* Returns stack id's frames, or NULL for an id the trace never defined. */
const mt_stack_t *mt__trace_stack(const mt_trace_t *t, uint32_t id);

/* Returns label id's text, or NULL for an unknown id. */
const char *mt__trace_label(const mt_trace_t *t, uint32_t id);

/* Returns the time in ns since the start of the run at which event seq
 * happened, interpolated between the TIME records around it. */
uint64_t mt__trace_time_of(const mt_trace_t *t, uint64_t seq);

/* Restarts the merged event stream at the beginning. */
void mt__trace_rewind(mt_trace_t *t);

/* Stores the next event of the merged stream (all streams and the markers, in
 * seq order) in *ev. Returns 1 for an event, 0 at the end, or a negative code
 * when an event payload is corrupt (message in mt__trace_error). */
int mt__trace_next(mt_trace_t *t, mt_event_t *ev);

/* Stores the next events of the merged stream in evs, at most max, in the
 * same order and with the same checks as mt__trace_next, with less work per
 * event. Returns how many were stored (at least 1), 0 at the end, or a
 * negative code when the next event is corrupt: a failure after some events
 * is returned by the call after. */
int mt__trace_next_batch(mt_trace_t *t, mt_event_t *evs, size_t max);

/* Returns the message of the last failure, naming the file and offset. */
const char *mt__trace_error(const mt_trace_t *t);

/* Returns the most chunks the reader held at once since it was opened: the
 * whole index of a trace without SYNC records, or the most chunks read ahead
 * and not yet merged of one with them. */
size_t mt__trace_chunks_held(const mt_trace_t *t);

/* Sets how many event bytes the one-pass merge may hold read ahead before
 * it fails, calling the trace damaged (1 GiB unless set; for tests). */
void mt__trace_limit_read_ahead(mt_trace_t *t, uint64_t bytes);

/* Returns the module holding address addr for a stack of the given epoch,
 * or NULL. */
const mt_module_t *mt__trace_module_for(const mt_trace_t *t, uint64_t addr, uint64_t epoch);

/* Returns the name of an op ("malloc", "operator delete", ...) or "?". */
const char *mt__op_name(unsigned op);

/* Raw records in file order, for `memtrack dump`: each record is validated on
 * its own, not against the others (mt__trace_open does that). */

/* One record as stored, fields in the order of the table in mt_trace.h.
 * Strings are not NUL-terminated; they and the frames point into the iterator
 * and stay valid until its next call. For a CHUNK, the events follow through
 * mt__record_event. */
typedef struct mt_record {
    uint64_t offset; /* file offset of the record header */
    uint8_t type;    /* mt_record_type_t */
    uint32_t length; /* payload bytes */
    union {
        struct {
            uint64_t id, load_epoch, base, start, end;
            const char *path;
            size_t path_len;
            const uint8_t *build_id;
            size_t build_id_len;
        } module;
        struct {
            uint64_t module_id, epoch;
        } unload;
        struct {
            uint64_t id, epoch;
            uint32_t depth;
            const uint64_t *frames;
        } stack;
        struct {
            uint64_t id;
            const char *text;
            size_t text_len;
        } label;
        struct {
            uint64_t seq, time_ns;
            uint32_t tid, label;
        } marker;
        struct {
            uint64_t seq, time_ns;
        } time;
        struct {
            uint64_t stream;
            uint32_t tid;
            uint64_t count, first_seq;
        } chunk;
        struct {
            uint64_t stream, count;
        } lost;
        struct {
            uint64_t last_seq, time_ns, events, dropped, stacks;
            uint64_t signal; /* 0 when absent */
        } end;
        struct {
            uint64_t seq;
        } sync;
    } u;
} mt_record_t;

typedef struct mt_record_iter mt_record_iter_t;

/* Opens a trace for reading its records one by one and reads its header.
 * Returns 0 and sets *out (free it with mt__record_close), or a negative code
 * with *out NULL and the message (naming the file) copied into err. */
int mt__record_open(const char *path, mt_record_iter_t **out, char *err, size_t errlen);

/* Returns the header fields (path, version, pid, exe, command, ...); truncated
 * and truncated_at are set once mt__record_next met a record cut by the end of
 * the file. The counters and tables are not filled. */
const mt_trace_info_t *mt__record_header(const mt_record_iter_t *it);

/* Reads the next record into rec. Returns 1 for a record, 0 at the end of the
 * file or at a record cut by it, or a negative code for a malformed record
 * (message in mt__record_error). */
int mt__record_next(mt_record_iter_t *it, mt_record_t *rec);

/* After a CHUNK record, stores its next event in *ev as written (stack is the
 * file's stack id, tid the chunk's). Returns 1 for an event, 0 after the last
 * one, or a negative code when the events are malformed. */
int mt__record_event(mt_record_iter_t *it, mt_event_t *ev);

/* Returns the message of the iterator's last failure, naming file and offset. */
const char *mt__record_error(const mt_record_iter_t *it);

/* Closes the iterator and frees what it owns. NULL is allowed. */
void mt__record_close(mt_record_iter_t *it);

/* Returns the name of a record type ("MODULE", "CHUNK", ...) or NULL. */
const char *mt__record_name(unsigned type);

/* ---- symbols.c: addresses to function, file, line, with libdw ---- */

/* One source-level frame. An address can expand to several when calls were
 * inlined: the innermost inlined function first, the real function last. */
typedef struct mt_frame {
    const char *function; /* demangled name, or NULL when unknown */
    const char *file;     /* source file, or NULL */
    uint32_t line;        /* 0 when unknown */
    const char *module;   /* module path, or NULL for an address outside every module */
    uint64_t address;     /* the return address as recorded */
    uint64_t offset;      /* address - module base, for module+offset display */
    bool inlined;         /* true for a frame inlined into the next one */
} mt_frame_t;

typedef struct mt_symbolizer mt_symbolizer_t;

/* Creates a symbolizer over a trace's module map. Debug info is looked up in
 * the module itself, through .gnu_debuglink and by build-id under the usual
 * debug directories (/usr/lib/debug). Returns NULL when out of memory. */
mt_symbolizer_t *mt__symbolizer_new(const mt_trace_t *t);

/* Frees the symbolizer and every string it returned. */
void mt__symbolizer_free(mt_symbolizer_t *s);

/* Resolves one recorded return address of a stack of the given epoch. Sets
 * *frames to an array of *n frames (n >= 1) owned by the symbolizer and valid
 * until it is freed. Each distinct (address, epoch) is resolved once and then
 * served from a cache. Never fails: unknown parts are NULL or 0. */
void mt__symbolize(mt_symbolizer_t *s, uint64_t address, uint64_t epoch, const mt_frame_t **frames,
                   size_t *n);

/* Opens, in a thread of its own, the files and debug information of the
 * modules the trace's stacks use, so that a caller can replay the trace
 * meanwhile; s must not be used until mt__symbolizer_warm_join. Does
 * nothing on a single CPU. mt__symbolizer_free joins too. */
void mt__symbolizer_warm_start(mt_symbolizer_t *s);
void mt__symbolizer_warm_join(mt_symbolizer_t *s);

/* ---- cmd_run.c ---- */

/* Runs argv[0] (looked up in PATH) with libmemtrack.so preloaded, writing
 * traces to output (a MEMTRACK_OUTPUT pattern; NULL for the default).
 * Stores the trace files the run created in *traces (malloc'd, sorted) and
 * returns the program's exit status (128 + N for signal N), or -1 when it
 * could not be started (a message was printed). */
int mt__run_program(const char *output, char **argv, char ***traces, size_t *ntraces);

#endif /* MT_ANALYZER_INTERNAL_H */
