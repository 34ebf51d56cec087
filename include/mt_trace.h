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
 *   SYNC      v:seq (version 6): every event in a CHUNK after this record
 *             has a seq of at least this one, except an event that reached
 *             the writer late (named by address, see below); the writer
 *             writes one every round, so that a reader can merge the
 *             streams in one pass, holding only the chunks since the last
 *             SYNC
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
 * Version 5 packs an event's op, seq delta and stack into its first byte,
 * the head, for the common cases, and writes a block's age in whole bytes,
 * so that a typical allocation or free takes three bytes:
 *
 *   head bits 0-1  the seq delta: 0, 1, 2 for 1, 2, 3; 3: v:seq_delta follows
 *   head bit 7     0: an allocating op, 1: a freeing op
 *
 *   allocating op  head [u8:op|MT_EV_MORE] [v:seq_delta] v:size [v:stack_id]
 *                  [v:x [v:ptr]]
 *     bits 2-5     the stack: 0-14 the one at that place in the chunk's list
 *                  of recent stacks (most recent first; it moves to the
 *                  front), 15: v:stack_id follows (and goes to the front,
 *                  the 15th dropped)
 *     bit 6        0: the op is the chunk's allocating op (below); 1: u8 op
 *                  follows, with MT_EV_MORE for v:x as in version 4
 *   freeing op     head [u8:op] [v:seq_delta] then the block:
 *     bits 2-4     0, 1, 2: u8, u16, u24 (little-endian) age - 1: the block
 *                  allocated at seq - age; 3: z:(ref - previous ref) of the
 *                  chunk (the first against first_seq); 4: v:ptr, a block
 *                  named by its address; 5-7 are invalid
 *     bits 5-6     0: the op is the chunk's freeing op (below); 1: realloc's
 *                  free; 3: u8 op follows; 2 is invalid
 *
 * A chunk starts with malloc and free as its allocating and freeing op and
 * an empty list of recent stacks; an op written in a byte of its own then
 * becomes the op of its kind, unless it is half of a resize (realloc,
 * rallocx, xallocx), which comes and goes between the others.
 *
 * Version 6 adds the SYNC record; its events are those of version 5.
 *
 * Versions 1 to 4 are read as they were.
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
 * frame: a killed program leaves every frame but a last, partial one.
 * Before version 6 frames are independent, and a reader can decompress any
 * frame on its own. From version 6 (header flag MT_TRACE_F_ZSTREAM) the
 * compressed frames continue one zstd stream, which the writer flushes at
 * the end of each, so that a round's records are compressed against the
 * rounds before (a program that allocates little writes a quarter less):
 *
 *   u32:compressed_len u32:raw_len then compressed_len bytes: the stream's
 *   next bytes, which decompress to raw_len bytes of records, followed by
 *   u32:mt_checksum of those raw bytes (the stream has no frame checksum)
 *
 * A reader decompresses them in file order with one context; stored frames
 * are not part of the stream.
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
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#define MT_TRACE_MAGIC "MEMTRACE"
#define MT_TRACE_MAGIC_LEN 8
#define MT_TRACE_VERSION 6u

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
#define MT_TRACE_F_ZSTREAM 0x10u /* with ZSTD: the compressed frames continue one
                                    zstd stream, each ending in a checksum */
/* The window of the writer's zstd stream: what a round can refer back to
 * (a reader keeps that much of the decompressed bytes). */
#define MT_ZSTREAM_WINDOW_LOG 17

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
    X(END, 9)            \
    X(SYNC, 10)

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

/* The version that packs the event head (above). */
#define MT_TRACE_VERSION_HEAD 5u
#define MT_HEAD_SEQ 0x03u        /* the seq delta's code */
#define MT_HEAD_SEQ_VARINT 3u    /* code 3: v:seq_delta follows */
#define MT_HEAD_FREES 0x80u
#define MT_HEAD_STACK_SHIFT 2     /* allocating: the stack's code */
#define MT_HEAD_STACK_NEW 15u     /* code 15: v:stack_id follows */
#define MT_HEAD_ALLOC_OP 0x40u    /* allocating: u8 op follows */
#define MT_HEAD_BLOCK_SHIFT 2     /* freeing: how the block is named, MT_BLOCK_* */
#define MT_HEAD_FREE_OP_SHIFT 5   /* freeing: MT_FREE_OP_* */
#define MT_RECENT_STACKS 15u
/* The version that writes SYNC records. */
#define MT_TRACE_VERSION_SYNC 6u

enum { MT_BLOCK_AGE1, MT_BLOCK_AGE2, MT_BLOCK_AGE3, MT_BLOCK_DELTA, MT_BLOCK_ADDR };
enum { MT_FREE_OP_SAME, MT_FREE_OP_REALLOC, MT_FREE_OP_BAD, MT_FREE_OP_BYTE };

/* Ops at or above this value free; below it, they allocate. */
#define MT_OP_FIRST_FREE 32
#define MT_OP_MAX 63

static inline int mt_op_allocates(unsigned op) { return op >= 1 && op < MT_OP_FIRST_FREE; }
static inline int mt_op_frees(unsigned op) { return op >= MT_OP_FIRST_FREE && op <= MT_OP_MAX; }

/* The halves of a resize: they do not become a chunk's op (version 5). */
static inline int mt_op_resizes(unsigned op)
{
    return op == MT_OP_REALLOC || op == MT_OP_RALLOCX || op == MT_OP_XALLOCX || op == MT_OP_REALLOC_FREE ||
           op == MT_OP_RALLOCX_FREE || op == MT_OP_XALLOCX_FREE;
}

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

/* ---- version 5: a chunk's running state, the same for writer and reader ---- */

typedef struct mt_chunk_state {
    uint64_t seq;      /* the previous event's seq (first_seq at the start) */
    uint64_t ref;      /* the previous block reference (first_seq at the start) */
    uint8_t alloc_op;  /* the chunk's allocating op */
    uint8_t free_op;   /* the chunk's freeing op */
    uint8_t nrecent;
    uint32_t recent[16]; /* stack ids, most recent first; MT_RECENT_STACKS used, one of padding */
} mt_chunk_state_t;

_Static_assert(MT_RECENT_STACKS < 16, "the recent stacks and their padding fill 16 places");

/* The state at the start of a chunk whose first event has seq first_seq. */
static inline void mt_chunk_state_init(mt_chunk_state_t *s, uint64_t first_seq)
{
    s->seq = s->ref = first_seq;
    s->alloc_op = MT_OP_MALLOC;
    s->free_op = MT_OP_FREE;
    s->nrecent = 0;
    memset(s->recent, 0, sizeof s->recent); /* searched 16 at a time */
}

/* The place of stack id in the list of recent stacks, or MT_HEAD_STACK_NEW.
 * The writer asks this for every allocation: with SSE2, four compares of
 * four places instead of a loop that stops at the first match. */
static inline unsigned mt_recent_find(const mt_chunk_state_t *s, uint32_t id)
{
#if defined(__SSE2__)
    const __m128i key = _mm_set1_epi32((int)id);
    unsigned hits = 0;
    for (unsigned i = 0; i < 16; i += 4) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)&s->recent[i]);
        hits |= (unsigned)_mm_movemask_ps(_mm_castsi128_ps(_mm_cmpeq_epi32(v, key))) << i;
    }
    hits &= (1u << s->nrecent) - 1;
    return hits ? (unsigned)__builtin_ctz(hits) : MT_HEAD_STACK_NEW;
#else
    for (unsigned i = 0; i < s->nrecent; i++)
        if (s->recent[i] == id)
            return i;
    return MT_HEAD_STACK_NEW;
#endif
}

/* Puts id at the front, moving the stacks at places 0 to i - 1 one place
 * on (the one at place i is overwritten). With SSE2 without a branch: the
 * plain loop of i steps, which the compiler makes a memmove call, has
 * size-dependent branches that mispredicted once an allocation in the
 * writer. */
static inline void mt_recent_insert(mt_chunk_state_t *s, unsigned i, uint32_t id)
{
#if defined(__SSE2__)
    __m128i *r = (__m128i *)(void *)s->recent;
    const __m128i limit = _mm_set1_epi32((int)i + 1); /* place j moves when j < i + 1 */
    const __m128i v0 = _mm_loadu_si128(&r[0]), v1 = _mm_loadu_si128(&r[1]);
    const __m128i v2 = _mm_loadu_si128(&r[2]), v3 = _mm_loadu_si128(&r[3]);
#define MT_RECENT_MOVE(k, v, carry)                                                                        \
    do {                                                                                                  \
        __m128i take = _mm_cmplt_epi32(_mm_setr_epi32(4 * k, 4 * k + 1, 4 * k + 2, 4 * k + 3), limit); \
        __m128i moved = _mm_or_si128(_mm_slli_si128(v, 4), carry);                                      \
        _mm_storeu_si128(&r[k], _mm_or_si128(_mm_and_si128(take, moved), _mm_andnot_si128(take, v)));  \
    } while (0)
    MT_RECENT_MOVE(0, v0, _mm_cvtsi32_si128((int)id));
    MT_RECENT_MOVE(1, v1, _mm_srli_si128(v0, 12));
    MT_RECENT_MOVE(2, v2, _mm_srli_si128(v1, 12));
    MT_RECENT_MOVE(3, v3, _mm_srli_si128(v2, 12));
#undef MT_RECENT_MOVE
#else
    for (; i > 0; i--)
        s->recent[i] = s->recent[i - 1];
    s->recent[0] = id;
#endif
}

/* Moves the recent stack at place i to the front. */
static inline void mt_recent_front(mt_chunk_state_t *s, unsigned i)
{
    mt_recent_insert(s, i, s->recent[i]);
}

/* Puts stack id at the front, dropping the oldest when the list is full. */
static inline void mt_recent_push(mt_chunk_state_t *s, uint32_t id)
{
    unsigned i = s->nrecent < MT_RECENT_STACKS ? s->nrecent++ : MT_RECENT_STACKS - 1;
    mt_recent_insert(s, i, id);
}

/* Sets the op of an event's kind after it, as both sides must. */
static inline void mt_chunk_state_op(mt_chunk_state_t *s, unsigned op, int allocates)
{
    if (mt_op_resizes(op))
        return;
    if (allocates)
        s->alloc_op = (uint8_t)op;
    else
        s->free_op = (uint8_t)op;
}

/* Writes the head's seq code and, after the op byte if any, the delta. */
static inline uint8_t *mt_put_seq_v5(uint8_t *p, uint8_t *head, mt_chunk_state_t *s, uint64_t seq)
{
    uint64_t d = seq - s->seq;
    s->seq = seq;
    if (d >= 1 && d <= 3) {
        *head |= (uint8_t)(d - 1);
        return p;
    }
    *head |= MT_HEAD_SEQ_VARINT;
    return mt_put_varint(p, d);
}

/* Version 5: encodes an allocating event at p (2 + 5 * MT_VARINT_MAX bytes
 * free), the block named by its seq, or when addr is not 0 by its address;
 * replaces: the seq of a block the writer found still live at the same
 * address (its free was lost), or 0. Returns the byte after. */
static inline uint8_t *mt_put_alloc_v5(uint8_t *p, mt_chunk_state_t *s, unsigned op, uint64_t seq,
                                       uint64_t size, uint32_t stack, uint64_t replaces, uint64_t addr)
{
    uint8_t *head = p++;
    unsigned pos = mt_recent_find(s, stack);
    *head = (uint8_t)(pos << MT_HEAD_STACK_SHIFT);
    if (op != s->alloc_op || replaces || addr) {
        *head |= MT_HEAD_ALLOC_OP;
        *p++ = (uint8_t)(op | (replaces || addr ? MT_EV_MORE : 0));
    }
    p = mt_put_seq_v5(p, head, s, seq);
    p = mt_put_varint(p, size);
    if (pos == MT_HEAD_STACK_NEW) {
        p = mt_put_varint(p, stack);
        mt_recent_push(s, stack);
    } else {
        mt_recent_front(s, pos);
    }
    if (replaces) {
        p = mt_put_varint(p, seq - replaces);
    } else if (addr) {
        p = mt_put_varint(p, 0);
        p = mt_put_varint(p, addr);
    }
    mt_chunk_state_op(s, op, 1);
    return p;
}

/* Version 5: encodes a freeing event at p (2 + 2 * MT_VARINT_MAX bytes
 * free): of the block allocated at seq ref (ref < seq) when ref is not 0,
 * else of the block at address addr. Returns the byte after. */
static inline uint8_t *mt_put_free_v5(uint8_t *p, mt_chunk_state_t *s, unsigned op, uint64_t seq,
                                      uint64_t ref, uint64_t addr)
{
    uint8_t *head = p++;
    unsigned mode = MT_BLOCK_ADDR;
    uint64_t age = seq - ref - 1, delta = 0;
    *head = MT_HEAD_FREES;
    if (op == s->free_op) {
        *head |= MT_FREE_OP_SAME << MT_HEAD_FREE_OP_SHIFT;
    } else if (op == MT_OP_REALLOC_FREE) {
        *head |= MT_FREE_OP_REALLOC << MT_HEAD_FREE_OP_SHIFT;
    } else {
        *head |= MT_FREE_OP_BYTE << MT_HEAD_FREE_OP_SHIFT;
        *p++ = (uint8_t)op;
    }
    p = mt_put_seq_v5(p, head, s, seq);
    if (ref) {
        unsigned age_len = age < 1u << 8 ? 1 : age < 1u << 16 ? 2 : age < 1u << 24 ? 3 : 99;
        delta = mt_zigzag((int64_t)(ref - s->ref));
        mode = mt_varint_len(delta) < age_len ? MT_BLOCK_DELTA : age_len - 1;
        s->ref = ref;
    }
    *head |= (uint8_t)(mode << MT_HEAD_BLOCK_SHIFT);
    switch (mode) {
    case MT_BLOCK_AGE3:
        p[2] = (uint8_t)(age >> 16);
        /* fall through */
    case MT_BLOCK_AGE2:
        p[1] = (uint8_t)(age >> 8);
        /* fall through */
    case MT_BLOCK_AGE1:
        p[0] = (uint8_t)age;
        p += mode + 1;
        break;
    case MT_BLOCK_DELTA:
        p = mt_put_varint(p, delta);
        break;
    default:
        p = mt_put_varint(p, addr);
    }
    mt_chunk_state_op(s, op, 0);
    return p;
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

static inline uint64_t mt_get_u64(const uint8_t *p)
{
    return (uint64_t)mt_get_u32(p) | (uint64_t)mt_get_u32(p + 4) << 32;
}

/* The checksum of a frame's raw bytes in a trace with MT_TRACE_F_ZSTREAM.
 * Four lanes take the little-endian 8-byte words in turn, each word w
 * making its lane h = rotl64((h ^ w) * K, 31), K = 0x9e3779b97f4a7c15; the
 * last n % 8 bytes, as a little-endian word, go to the next lane in turn.
 * The lanes start at n, K, ~n and ~K. Then x = h0 ^ rotl64(h1, 16) ^
 * rotl64(h2, 32) ^ rotl64(h3, 48); x ^= x >> 29; x *= K; x ^= x >> 32; the
 * checksum is the low 32 bits. Every step is a bijection of its lane, so a
 * change in one word always changes its lane; about a gigabyte a second. */
static inline uint64_t mt_checksum_round(uint64_t h, uint64_t w)
{
    h = (h ^ w) * 0x9e3779b97f4a7c15ull;
    return h << 31 | h >> 33;
}

static inline uint32_t mt_checksum(const uint8_t *p, size_t n)
{
    const uint64_t k = 0x9e3779b97f4a7c15ull;
    uint64_t h[4] = {n, k, ~(uint64_t)n, ~k}, x;
    size_t i = 0, lane = 0;

    for (; i + 32 <= n; i += 32)
        for (int j = 0; j < 4; j++)
            h[j] = mt_checksum_round(h[j], mt_get_u64(p + i + 8 * j));
    for (; i + 8 <= n; i += 8, lane++)
        h[lane] = mt_checksum_round(h[lane], mt_get_u64(p + i));
    if (i < n) {
        uint64_t w = 0;
        for (size_t j = 0; i + j < n; j++)
            w |= (uint64_t)p[i + j] << (8 * j);
        h[lane] = mt_checksum_round(h[lane], w);
    }
    x = h[0] ^ (h[1] << 16 | h[1] >> 48) ^ (h[2] << 32 | h[2] >> 32) ^ (h[3] << 48 | h[3] >> 16);
    x ^= x >> 29;
    x *= k;
    x ^= x >> 32;
    return (uint32_t)x;
}

#endif /* MT_TRACE_H */
