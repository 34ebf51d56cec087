/* mt_trace.h - the memtrack trace file format, defined once for writer and reader.
 *
 * A trace is a fixed file header followed by a stream of records. Every record
 * starts with a 5-byte record header: one type byte and a little-endian u32
 * payload length, so a reader can skip any record it does not need and can
 * tell a cleanly truncated file (a record cut short at the end) from a
 * corrupted one (a length or field that cannot be right).
 *
 * Allocation events are not written one record each: every program thread
 * owns a stream (a ring in the preload library), and the writer thread writes
 * whatever it drained from one stream as a CHUNK record. Inside a stream, the
 * events are in increasing sequence number order; across streams, the reader
 * merges by sequence number to obtain the single global order of the run.
 * Events are encoded compactly: varints, and deltas against the previous
 * event of the same chunk. docs/trace-format.md describes the same layout for
 * people; keep the two in step.
 *
 * Field table (after the 5-byte record header; vN = unsigned LEB128 varint,
 * zN = zigzag varint, uN = little-endian fixed width, str = vN length + bytes):
 *
 *   MODULE    v:id v:load_epoch v:base(load bias) v:start v:end
 *             str:path str:build_id(raw bytes, may be empty)
 *   UNLOAD    v:module_id v:epoch (the module is gone for stacks whose
 *             epoch >= this epoch)
 *   STACK     v:id v:epoch v:depth then depth x v:address (return addresses,
 *             innermost first; the allocation function's own frame excluded)
 *   LABEL     v:id str:text
 *   MARKER    v:seq v:time_ns(since start) v:tid v:label_id
 *   TIME      v:seq v:time_ns(since start); the writer writes one every
 *             round, so the reader can place any event in time by its seq
 *   CHUNK     v:stream v:tid v:count v:first_seq then count x event
 *   LOST      v:stream v:count (events a producer could not store)
 *   END       v:last_seq v:time_ns v:events v:dropped v:stacks [v:signal]
 *             signal: the fatal signal the process died of (its crash
 *             handler wrote the END); absent or 0 when it exited
 *
 *   event     u8:op|flags, v:seq_delta (against the previous event's seq,
 *             the first against first_seq; left out under MT_EV_SEQ1) then,
 *             for an allocating op: v:size z:ptr_delta v:stack_id, for a
 *             freeing op: z:ptr_delta (ptr deltas are against the previous
 *             event's pointer in the chunk, starting from 0; divided by 16
 *             under MT_EV_PTR16).
 *
 * Version 2 added the two flag bits of the event's op byte; a version 1
 * trace never sets them, so it reads the same.
 *
 * Version 4 writes no pointers where it can name blocks instead. The writer
 * thread matches every free to its allocation (in global seq order), so an
 * event refers to a block by its allocation's seq, which is unique in the
 * trace, and a repeating program writes repeating bytes that compress well:
 *
 *   allocating op  u8:op|flags [v:seq_delta] v:size v:stack_id, then under
 *                  MT_EV_MORE v:x: x > 0, the block at this address
 *                  allocated at seq - x was still live (its free was lost);
 *                  x = 0, v:ptr follows: a block named by its address
 *                  (the writer could not remember it), freed by address
 *   freeing op     u8:op|flags [v:seq_delta] then under MT_EV_MORE
 *                  v:r naming the block allocated at seq ref: r odd, ref is
 *                  seq - (r >> 1) (the block's age, short for recent
 *                  blocks); r even, ref is the previous ref of the chunk
 *                  (the first against first_seq) plus unzigzag(r >> 1)
 *                  (short and repeating when blocks die in the order they
 *                  were born); else v:ptr, a block the trace never saw
 *                  allocated (allocated before recording started, or in
 *                  the parent of a fork child) or named by its address
 *
 * Versions 1 to 3 are read as they were.
 *
 * Compression (version 3, header flag MT_TRACE_F_ZSTD): the header stays as
 * it is, and the records after it are cut into frames, each of them
 *
 *   u32:compressed_len u32:raw_len then compressed_len bytes of one zstd
 *   frame (with its content checksum) holding raw_len bytes of records
 *
 * or, when compressed_len has MT_ZFRAME_STORED set, the raw_len bytes of
 * records themselves (the writer stores rounds that compress poorly so).
 *
 * The writer compresses what it wrote in a round (whole records) as one
 * frame, so frames are independent: a killed program leaves every frame but
 * a last, partial one, and a reader can decompress any frame on its own.
 * Record offsets (in `memtrack dump`) count the uncompressed bytes, the
 * header included, as if the file were not compressed. Messages name file
 * offsets only: a frame's own, and for a bad record, its frame's and the
 * record's uncompressed byte; a cut trace is cut at its partial frame.
 */
#ifndef MT_TRACE_H
#define MT_TRACE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define MT_TRACE_MAGIC "MEMTRACE"
#define MT_TRACE_MAGIC_LEN 8
#define MT_TRACE_VERSION 4u

/* The fixed part of the file header, little-endian, 64 bytes, followed by
 * header_size - 64 bytes holding: str:exe_path str:cmdline (NUL-separated). */
typedef struct mt_trace_header {
    char magic[MT_TRACE_MAGIC_LEN];
    uint32_t version;
    uint32_t header_size;     /* total header bytes, fixed part included */
    uint64_t pid;
    uint64_t ppid;
    uint64_t start_realtime_ns; /* wall clock at start, ns since the epoch */
    uint64_t fork_seq;        /* parent's sequence number at fork, 0 if none */
    uint32_t flags;           /* MT_TRACE_F_* */
    uint32_t depth;           /* maximum stack depth recorded */
    uint64_t sample_bytes;    /* 0: every allocation; else mean sampling interval */
} mt_trace_header_t;

_Static_assert(sizeof(mt_trace_header_t) == 64, "trace header must be 64 bytes");

#define MT_TRACE_F_FORKED 0x1u  /* the process is a fork child */
#define MT_TRACE_F_EXECED 0x2u  /* reserved, never written: an exec'ed image cannot tell, without
                                   changing the environment, that memtrack ran before it (its
                                   trace and the pre-exec one share the pid) */
#define MT_TRACE_F_SAMPLED 0x4u /* allocations are sampled: numbers are estimates */
#define MT_TRACE_F_ZSTD 0x8u    /* the records are in zstd frames (see above) */

/* A compressed frame's own header: u32 compressed length, u32 raw length. */
#define MT_ZFRAME_HEADER_SIZE 8u
/* In compressed_len: the frame holds its records as they are, not zstd. */
#define MT_ZFRAME_STORED 0x80000000u
/* No frame may hold more raw bytes than this; more means corruption. */
#define MT_ZFRAME_MAX_RAW (16u << 20)

#define MT_RECORD_HEADER_SIZE 5u
/* No record may claim more than this; a larger length means corruption. */
#define MT_RECORD_MAX_PAYLOAD (64u << 20)

/* Record types: X(name, value). */
#define MT_RECORD_MAP(X) \
    X(MODULE, 1)         \
    X(UNLOAD, 2)         \
    X(STACK, 3)          \
    X(LABEL, 4)          \
    X(MARKER, 5)         \
    X(TIME, 6)           \
    X(CHUNK, 7)          \
    X(LOST, 8)           \
    X(END, 9)

typedef enum mt_record_type {
#define MT_RECORD_ENUM(name, value) MT_REC_##name = value,
    MT_RECORD_MAP(MT_RECORD_ENUM)
#undef MT_RECORD_ENUM
} mt_record_type_t;

/* Event operations: X(name, value, frees, allocates, function). An op that both
 * frees and allocates does not exist: a realloc is written as a REALLOC_FREE of
 * the old block followed by a REALLOC of the new one, each with its own seq, so
 * that replay stays right when another thread reuses the address in between. */
#define MT_OP_MAP(X)                                            \
    X(MALLOC, 1, 0, 1, "malloc")                                \
    X(CALLOC, 2, 0, 1, "calloc")                                \
    X(REALLOC, 3, 0, 1, "realloc")                              \
    X(POSIX_MEMALIGN, 4, 0, 1, "posix_memalign")                \
    X(ALIGNED_ALLOC, 5, 0, 1, "aligned_alloc")                  \
    X(MEMALIGN, 6, 0, 1, "memalign")                            \
    X(VALLOC, 7, 0, 1, "valloc")                                \
    X(PVALLOC, 8, 0, 1, "pvalloc")                              \
    X(NEW, 9, 0, 1, "operator new")                             \
    X(NEW_ARRAY, 10, 0, 1, "operator new[]")                    \
    X(MALLOCX, 11, 0, 1, "mallocx")                             \
    X(RALLOCX, 12, 0, 1, "rallocx")                             \
    X(XALLOCX, 13, 0, 1, "xallocx")                             \
    X(FREE, 32, 1, 0, "free")                                   \
    X(REALLOC_FREE, 33, 1, 0, "realloc")                        \
    X(FREE_SIZED, 34, 1, 0, "free_sized")                       \
    X(FREE_ALIGNED_SIZED, 35, 1, 0, "free_aligned_sized")       \
    X(DELETE, 36, 1, 0, "operator delete")                      \
    X(DELETE_ARRAY, 37, 1, 0, "operator delete[]")              \
    X(DALLOCX, 38, 1, 0, "dallocx")                             \
    X(SDALLOCX, 39, 1, 0, "sdallocx")                           \
    X(RALLOCX_FREE, 40, 1, 0, "rallocx")                        \
    X(XALLOCX_FREE, 41, 1, 0, "xallocx")

typedef enum mt_op {
#define MT_OP_ENUM(name, value, frees, allocates, fn) MT_OP_##name = value,
    MT_OP_MAP(MT_OP_ENUM)
#undef MT_OP_ENUM
} mt_op_t;

/* The event op byte: the op in the low 6 bits, and two flags that shorten
 * the most common events. MT_EV_SEQ1: the seq delta is 1 and not written
 * (one thread allocating alone). MT_EV_PTR16: the pointer delta is a
 * multiple of 16 (allocators align blocks so) and is written divided by 16. */
#define MT_EV_OP_MASK 0x3fu
#define MT_EV_SEQ1 0x40u
#define MT_EV_PTR16 0x80u
/* Version 4 uses the top bit for "a block reference follows" instead. */
#define MT_EV_MORE 0x80u
/* The version that names blocks by their allocation's seq. */
#define MT_TRACE_VERSION_REFS 4u

/* Ops at or above this value free; below it, they allocate. */
#define MT_OP_FIRST_FREE 32
#define MT_OP_MAX 63

static inline int mt_op_allocates(unsigned op) { return op >= 1 && op < MT_OP_FIRST_FREE; }
static inline int mt_op_frees(unsigned op) { return op >= MT_OP_FIRST_FREE && op <= MT_OP_MAX; }

/* The longest varint: 64 bits at 7 bits a byte. */
#define MT_VARINT_MAX 10

/* Bytes of v as a varint. */
static inline unsigned mt_varint_len(uint64_t v)
{
    return (unsigned)(63 - __builtin_clzll(v | 1)) / 7 + 1;
}


/* Encodes v at p (which must have MT_VARINT_MAX bytes free); returns the byte after. */
static inline uint8_t *mt_put_varint(uint8_t *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

static inline uint64_t mt_zigzag(int64_t v) { return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63); }
static inline int64_t mt_unzigzag(uint64_t v) { return (int64_t)(v >> 1) ^ -(int64_t)(v & 1); }

/* Version 4: how a free at seq names the block allocated at seq ref < seq,
 * after the chunk's previous ref prev: by its age or by the change of ref,
 * whichever is shorter (the change on a tie). */
static inline uint64_t mt_block_ref(uint64_t seq, uint64_t ref, uint64_t prev)
{
    uint64_t age = (seq - ref) << 1 | 1;
    uint64_t delta = mt_zigzag((int64_t)(ref - prev)) << 1;
    return mt_varint_len(age) < mt_varint_len(delta) ? age : delta;
}

/* The inverse of mt_block_ref; 0 when r names no seq below seq. */
static inline uint64_t mt_block_unref(uint64_t seq, uint64_t r, uint64_t prev)
{
    uint64_t ref;
    if (r & 1)
        ref = (r >> 1) < seq ? seq - (r >> 1) : 0;
    else
        ref = prev + (uint64_t)mt_unzigzag(r >> 1);
    return ref < seq ? ref : 0;
}

/* Decodes a varint from [*p, end). Returns 0 and advances *p, or -1 when the
 * bytes run out or the varint is longer than 64 bits. */
static inline int mt_get_varint(const uint8_t **p, const uint8_t *end, uint64_t *out)
{
    uint64_t v = 0;
    unsigned shift = 0;
    const uint8_t *q = *p;
    while (q < end) {
        uint8_t b = *q++;
        if (shift == 63 && b > 1)
            return -1;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = v;
            *p = q;
            return 0;
        }
        shift += 7;
        if (shift > 63)
            return -1;
    }
    return -1;
}

static inline void mt_put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static inline uint32_t mt_get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

#endif /* MT_TRACE_H */
