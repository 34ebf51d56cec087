/* trace_reader.c - reads memtrack trace files: the only code that parses them.
 *
 * A trace is read in two passes. The first (mt__trace_open) walks the records
 * once through a large read buffer: it keeps the small records (modules,
 * stacks, labels, markers, time points) and checks every CHUNK's header;
 * event payloads are skipped, never decoded. The second pass (mt__trace_next)
 * merges the streams by sequence number with a min-heap of per-stream
 * cursors, and merges the markers in as well. Where the cursors find their
 * chunks depends on the trace:
 *
 * - With SYNC records (version 6, docs/trace-format.md), or with frames
 *   that continue one zstd stream (which decompress in order only), the
 *   second pass reads the records again in file order, one record at a
 *   time when the merge needs more: each CHUNK's events are copied and
 *   queued on their stream, and a SYNC says below which seq no chunk still
 *   to come can go. The heap's first event is given once it is below that
 *   seq. Memory follows the chunks read ahead (about one writer round), not
 *   the trace; past 1 GiB the trace is called damaged.
 * - Without them, the first pass also indexes every chunk (48 bytes each)
 *   by stream, and each cursor reads its stream's chunks in file order with
 *   pread into a buffer of its own.
 *
 * Memory never follows the number of events.
 *
 * Stack ids in the file are mapped to dense indices in order of definition,
 * so that an event's stack is always below info->nstacks. The writer assigns
 * ids 0, 1, 2... in order, so the indices normally equal the ids.
 *
 * A compressed trace (MT_TRACE_F_ZSTD) is read through the same two passes:
 * the first decompresses its frames one after another into the read buffer
 * and notes where each frame lies, in the file and in the uncompressed
 * bytes (messages name the frame); without SYNC records, the second finds
 * the frame holding a chunk's events in that index and keeps the last few
 * frames it decompressed, because the cursors, which advance together in
 * sequence order, mostly read chunks of the same rounds. Every offset above
 * the frames is one in the uncompressed bytes.
 *
 * The same record parser serves `memtrack dump` through the raw record
 * iterator (mt__record_*): it validates each record on its own but not the
 * links between records (an UNLOAD of an unknown module, an undefined stack),
 * which only the trace as a whole can judge.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "internal.h"

/* A deeper stack than this can only be corruption. */
#define STACK_MAX_DEPTH 1024
#define READ_BUF_SIZE (1u << 20)
/* Room for a path of PATH_MAX bytes and the message after it. */
#define ERR_MAX 4352
/* A CHUNK's own header: four varints. */
#define CHUNK_HEAD_MAX (4 * MT_VARINT_MAX)
/* The smallest event: a freeing op whose seq delta is left out (MT_EV_SEQ1)
 * and a pointer delta. */
#define EVENT_MIN_BYTES 2
#define NONE UINT32_MAX
/* The most event bytes the one-pass merge holds read ahead. The writer's
 * rounds hold what its rings held (32768 events a thread by default, a
 * few bytes each): more means SYNC records that are missing or wrong, as
 * in a damaged trace, where zeros compressed a thousandfold could
 * otherwise take all memory. */
#define HELD_BYTES_MAX (1ull << 30)
/* Decompressed frames the second pass keeps. */
#define ZCACHE_SLOTS 4

_Static_assert(offsetof(mt_marker_t, seq) == 0, "markers are sorted by their leading seq");

/* ---- small helpers ---- */

__attribute__((format(printf, 4, 5)))
static int errorf(char *err, const char *path, int code, const char *fmt, ...)
{
    va_list ap;
    int n;

    n = snprintf(err, ERR_MAX, "%s: ", path);
    if (n < 0 || (size_t)n >= ERR_MAX)
        n = 0;
    va_start(ap, fmt);
    vsnprintf(err + n, ERR_MAX - (size_t)n, fmt, ap);
    va_end(ap);
    return code;
}

/* Copies the n bytes of a string field into a NUL-terminated string cut at
 * its first NUL. Unlike strndup it never looks past the n bytes, which may
 * end the read buffer. Returns NULL when out of memory. */
static char *copy_str(const void *s, size_t n)
{
    const char *nul = memchr(s, '\0', n);
    char *out;

    if (nul)
        n = (size_t)(nul - (const char *)s);
    out = malloc(n + 1);
    if (out) {
        memcpy(out, s, n);
        out[n] = '\0';
    }
    return out;
}

static void copy_error(char *err, size_t errlen, const char *msg)
{
    if (err && errlen)
        snprintf(err, errlen, "%s", msg);
}

/* Returns arr, or a larger copy of it, with room for need elements of size
 * bytes; NULL when out of memory, arr then still being valid. */
static void *grow(void *arr, size_t *cap, size_t need, size_t size)
{
    size_t ncap = *cap ? *cap : 16, bytes;
    void *p;

    if (need <= *cap)
        return arr;
    while (ncap < need) {
        if (ncap > SIZE_MAX / 2)
            return NULL;
        ncap *= 2;
    }
    if (__builtin_mul_overflow(ncap, size, &bytes))
        return NULL;
    p = realloc(arr, bytes);
    if (!p)
        return NULL;
    *cap = ncap;
    return p;
}

static const char *varint_fault(const uint8_t *p, const uint8_t *end)
{
    for (int i = 0; i < MT_VARINT_MAX; i++) {
        if (p + i >= end)
            return "runs past the end of the record";
        if (!(p[i] & 0x80))
            break;
    }
    return "is longer than 64 bits";
}

static bool op_known(unsigned op)
{
    switch (op) {
#define OP_CASE(name, value, frees, allocates, fn) case value:
        MT_OP_MAP(OP_CASE)
#undef OP_CASE
        return true;
    default:
        return false;
    }
}

/* Returns the name of an op ("malloc", "operator delete", ...), "marker" for
 * MT_EV_MARKER, or "?" for a value the format does not define. */
const char *mt__op_name(unsigned op)
{
    switch (op) {
#define OP_NAME(name, value, frees, allocates, fn) \
    case value:                                    \
        return fn;
        MT_OP_MAP(OP_NAME)
#undef OP_NAME
    case MT_EV_MARKER:
        return "marker";
    default:
        return "?";
    }
}

/* Returns the name of a record type ("MODULE", "CHUNK", ...), or NULL for a
 * type the format does not define. */
const char *mt__record_name(unsigned type)
{
    switch (type) {
#define REC_NAME(name, value) \
    case value:               \
        return #name;
        MT_RECORD_MAP(REC_NAME)
#undef REC_NAME
    default:
        return NULL;
    }
}

/* ---- the file: its bytes as they are, or zstd frames ---- */

/* Reads exactly n bytes at file offset off; a shorter file is an error. */
static int pread_all(int fd, const char *path, char *err, uint8_t *buf, size_t n, uint64_t off)
{
    size_t done = 0;

    while (done < n) {
        ssize_t r = pread(fd, buf + done, n - done, (off_t)(off + done));
        if (r < 0) {
            int e = errno;
            if (e == EINTR)
                continue;
            return errorf(err, path, -e, "offset %" PRIu64 ": %s", off + done, strerror(e));
        }
        if (r == 0)
            return errorf(err, path, -EIO,
                          "offset %" PRIu64 ": the file became shorter while being read",
                          off + done);
        done += (size_t)r;
    }
    return 0;
}

typedef struct zframe {
    uint64_t file_off; /* its frame header, in the file */
    uint64_t raw_off;  /* its first byte, in the uncompressed trace */
    uint32_t clen, rlen; /* clen: the bytes after the frame header */
    bool stored;         /* MT_ZFRAME_STORED: they are the records themselves */
} zframe_t;

typedef struct zslot {
    size_t frame; /* index + 1 in frames; 0 when empty */
    uint8_t *data;
    size_t cap;
    uint64_t used; /* when last used, for eviction */
} zslot_t;

/* A compressed trace's frames: the index the first pass fills as it meets
 * them, and what decompressing needs. */
typedef struct zsrc {
    bool on;                /* the header has MT_TRACE_F_ZSTD */
    bool stream;            /* and MT_TRACE_F_ZSTREAM: frames in order only */
    ZSTD_DCtx *dctx;
    uint8_t *cbuf;          /* one frame's compressed bytes */
    size_t ccap;
    zframe_t *frames;       /* in file order */
    size_t nframes, framecap;
    uint64_t file_size;
    uint64_t next_file_off; /* first pass: the next frame header */
    bool end;               /* first pass: no whole frame after the last */
    bool no_index;          /* the second pass's scan: the first pass indexed them */
    zslot_t cache[ZCACHE_SLOTS]; /* second pass */
    uint64_t tick;
} zsrc_t;

static void zsrc_free(zsrc_t *z)
{
    ZSTD_freeDCtx(z->dctx);
    free(z->cbuf);
    free(z->frames);
    for (size_t i = 0; i < ZCACHE_SLOTS; i++)
        free(z->cache[i].data);
    memset(z, 0, sizeof *z);
}

/* Reads the header of the frame at z->next_file_off, whose first byte is at
 * raw_off in the uncompressed trace, into *f. Returns 1 for a whole frame, 0
 * at the end of the file (*cut when a frame is cut short by it, as a killed
 * program leaves it), or a negative code for a header that cannot be right. */
static int zframe_next(zsrc_t *z, int fd, const char *path, char *err, uint64_t raw_off,
                       zframe_t *f, bool *cut)
{
    uint8_t h[MT_ZFRAME_HEADER_SIZE];
    uint64_t off = z->next_file_off, left = z->file_size - off;
    int r;

    *cut = left != 0;
    if (left < MT_ZFRAME_HEADER_SIZE)
        return 0;
    if ((r = pread_all(fd, path, err, h, sizeof h, off)))
        return r;
    f->file_off = off;
    f->raw_off = raw_off;
    f->clen = mt_get_u32(h) & ~MT_ZFRAME_STORED;
    f->stored = (mt_get_u32(h) & MT_ZFRAME_STORED) != 0;
    f->rlen = mt_get_u32(h + 4);
    if (f->rlen == 0 || f->rlen > MT_ZFRAME_MAX_RAW)
        return errorf(err, path, -EINVAL,
                      "compressed frame at offset %" PRIu64 ": raw length %" PRIu32
                      " is not valid (1 to %u)",
                      off, f->rlen, MT_ZFRAME_MAX_RAW);
    if (f->stored ? f->clen != f->rlen
                  : z->stream ? f->clen < 5 || f->clen > ZSTD_compressBound(f->rlen) + 4
                              : f->clen == 0 || f->clen > ZSTD_compressBound(f->rlen))
        return errorf(err, path, -EINVAL,
                      "compressed frame at offset %" PRIu64 ": compressed length %" PRIu32
                      " is not valid for %" PRIu32 " raw bytes",
                      off, f->clen, f->rlen);
    if (f->clen > left - MT_ZFRAME_HEADER_SIZE)
        return 0;
    *cut = false;
    return 1;
}

/* Decompresses the next frame of a trace whose frames continue one zstd
 * stream: its bytes but the last four, in z->cbuf, go on from the previous
 * frame's (where the writer changed its level, they end one zstd frame and
 * start the next); the last four are the checksum of what they decompress
 * to. */
static int zstream_decode(zsrc_t *z, const char *path, char *err, const zframe_t *f, uint8_t *dst)
{
    ZSTD_inBuffer in = {z->cbuf, f->clen - 4, 0};
    ZSTD_outBuffer out = {dst, f->rlen, 0};

    while (in.pos < in.size) {
        size_t before = in.pos, n = ZSTD_decompressStream(z->dctx, &out, &in);
        if (ZSTD_isError(n))
            return errorf(err, path, -EINVAL,
                          "compressed frame at offset %" PRIu64 " (%" PRIu32
                          " bytes) is damaged (zstd: %s)",
                          f->file_off, f->clen, ZSTD_getErrorName(n));
        if (in.pos == before && out.pos == out.size)
            break; /* more than raw_len bytes */
    }
    if (in.pos < in.size || out.pos < out.size)
        return errorf(err, path, -EINVAL,
                      "compressed frame at offset %" PRIu64 ": %s than the %" PRIu32
                      " bytes its header says",
                      f->file_off, in.pos < in.size ? "holds more" : "holds fewer", f->rlen);
    if (mt_checksum(dst, f->rlen) != mt_get_u32(z->cbuf + f->clen - 4))
        return errorf(err, path, -EINVAL,
                      "compressed frame at offset %" PRIu64 " (%" PRIu32
                      " bytes) is damaged (its checksum does not match)",
                      f->file_off, f->clen);
    return 0;
}

/* Decompresses frame f into dst, which has room for its f->rlen bytes.
 * Frames of a stream (z->stream) must come in file order. */
static int zframe_decode(zsrc_t *z, int fd, const char *path, char *err, const zframe_t *f,
                         uint8_t *dst)
{
    size_t n;
    int r;

    if (f->stored)
        return pread_all(fd, path, err, dst, f->rlen, f->file_off + MT_ZFRAME_HEADER_SIZE);
    if (f->clen > z->ccap) {
        uint8_t *p = realloc(z->cbuf, f->clen);
        if (!p)
            return errorf(err, path, -ENOMEM, "out of memory");
        z->cbuf = p;
        z->ccap = f->clen;
    }
    if ((r = pread_all(fd, path, err, z->cbuf, f->clen, f->file_off + MT_ZFRAME_HEADER_SIZE)))
        return r;
    if (!z->dctx) {
        if (!(z->dctx = ZSTD_createDCtx()))
            return errorf(err, path, -ENOMEM, "out of memory");
        /* A stream's window is the writer's: a frame asking for more is
         * damaged, and must not make the context allocate up to zstd's
         * 128 MiB. */
        if (z->stream && ZSTD_isError(ZSTD_DCtx_setParameter(z->dctx, ZSTD_d_windowLogMax,
                                                              MT_ZSTREAM_WINDOW_LOG)))
            return errorf(err, path, -ENOMEM, "out of memory");
    }
    if (z->stream)
        return zstream_decode(z, path, err, f, dst);
    n = ZSTD_decompressDCtx(z->dctx, dst, f->rlen, z->cbuf, f->clen);
    if (ZSTD_isError(n))
        return errorf(err, path, -EINVAL,
                      "compressed frame at offset %" PRIu64 " (%" PRIu32
                      " bytes) is damaged (zstd: %s)",
                      f->file_off, f->clen, ZSTD_getErrorName(n));
    if (n != f->rlen)
        return errorf(err, path, -EINVAL,
                      "compressed frame at offset %" PRIu64 ": holds %zu bytes, its header says %" PRIu32,
                      f->file_off, n, f->rlen);
    return 0;
}

/* Adds f to the index. */
static int zindex_add(zsrc_t *z, const zframe_t *f, const char *path, char *err)
{
    zframe_t *p = grow(z->frames, &z->framecap, z->nframes + 1, sizeof *z->frames);

    if (!p)
        return errorf(err, path, -ENOMEM, "out of memory");
    z->frames = p;
    z->frames[z->nframes++] = *f;
    return 0;
}

/* Returns the index of the frame holding uncompressed offset off, or
 * z->nframes when none does. */
static size_t zframe_at(const zsrc_t *z, uint64_t off)
{
    size_t lo = 0, hi = z->nframes;

    /* lo: the first frame that ends after off */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (z->frames[mid].raw_off + z->frames[mid].rlen <= off)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < z->nframes && z->frames[lo].raw_off <= off ? lo : z->nframes;
}

/* Returns the file offset of the frame holding uncompressed offset off, or
 * of the first frame not read yet when none does. */
static uint64_t zfile_off(const zsrc_t *z, uint64_t off)
{
    size_t i = zframe_at(z, off);

    return i < z->nframes ? z->frames[i].file_off : z->next_file_off;
}

/* In a compressed trace, rewrites a message about a record, "PATH: offset N:
 * ...", whose N counts uncompressed bytes, to name the file offset of the
 * frame holding it: a message names offsets in the file only. */
static void zmessage(const zsrc_t *z, char *err, const char *path)
{
    size_t n = strlen(path);
    char rest[ERR_MAX];
    uint64_t off;
    char *end;

    if (!z->on || !z->nframes || strncmp(err, path, n) || strncmp(err + n, ": offset ", 9) ||
        strstr(err, "(a compressed frame)"))
        return;
    off = strtoull(err + n + 9, &end, 10);
    snprintf(rest, sizeof rest, "%s", end);
    snprintf(err + n, ERR_MAX - n, ": offset %" PRIu64 " (a compressed frame), uncompressed byte %" PRIu64 "%s",
             zfile_off(z, off), off, rest);
}

/* Second pass: points *data at frame i's bytes, decompressing it into the
 * least recently used slot unless a slot holds it already. */
static int zcache_get(zsrc_t *z, int fd, const char *path, char *err, size_t i,
                      const uint8_t **data)
{
    const zframe_t *f = &z->frames[i];
    zslot_t *s = &z->cache[0];
    int r;

    for (size_t k = 0; k < ZCACHE_SLOTS; k++) {
        if (z->cache[k].frame == i + 1) {
            s = &z->cache[k];
            s->used = ++z->tick;
            *data = s->data;
            return 0;
        }
        if (z->cache[k].used < s->used)
            s = &z->cache[k];
    }
    s->frame = 0;
    if (f->rlen > s->cap) {
        free(s->data);
        s->cap = 0;
        if (!(s->data = malloc(f->rlen)))
            return errorf(err, path, -ENOMEM, "out of memory");
        s->cap = f->rlen;
    }
    if ((r = zframe_decode(z, fd, path, err, f, s->data)))
        return r;
    s->frame = i + 1;
    s->used = ++z->tick;
    *data = s->data;
    return 0;
}

/* Second pass: copies the n uncompressed bytes at off into buf, from the
 * frames that hold them. */
static int zread_at(zsrc_t *z, int fd, const char *path, char *err, uint8_t *buf, size_t n,
                    uint64_t off)
{
    while (n) {
        size_t lo = zframe_at(z, off), k;
        const uint8_t *data = NULL;
        const zframe_t *f;
        int r;

        if (lo == z->nframes)
            return errorf(err, path, -EIO, "uncompressed byte %" PRIu64 " is in no frame", off);
        f = &z->frames[lo];
        if ((r = zcache_get(z, fd, path, err, lo, &data)))
            return r;
        k = (size_t)(f->raw_off + f->rlen - off);
        k = k < n ? k : n;
        memcpy(buf, data + (off - f->raw_off), k);
        buf += k;
        n -= k;
        off += k;
    }
    return 0;
}

/* ---- id maps: open addressing, uint64_t key to uint32_t index ---- */

typedef struct idmap {
    uint64_t *keys;
    uint32_t *vals; /* NONE in an empty slot */
    size_t cap;     /* 0 or a power of two */
    size_t n;
} idmap_t;

static size_t idmap_slot(const idmap_t *m, uint64_t key)
{
    uint64_t h = key * 0x9e3779b97f4a7c15ull;
    return (size_t)(h ^ (h >> 29)) & (m->cap - 1);
}

static bool idmap_get(const idmap_t *m, uint64_t key, uint32_t *val)
{
    if (!m->cap)
        return false;
    for (size_t i = idmap_slot(m, key);; i = (i + 1) & (m->cap - 1)) {
        if (m->vals[i] == NONE)
            return false;
        if (m->keys[i] == key) {
            *val = m->vals[i];
            return true;
        }
    }
}

static void idmap_insert(idmap_t *m, uint64_t key, uint32_t val)
{
    size_t i = idmap_slot(m, key);

    while (m->vals[i] != NONE && m->keys[i] != key)
        i = (i + 1) & (m->cap - 1);
    if (m->vals[i] == NONE)
        m->n++;
    m->keys[i] = key;
    m->vals[i] = val;
}

/* Maps key to val, replacing any previous value. */
static int idmap_put(idmap_t *m, uint64_t key, uint32_t val)
{
    if ((m->n + 1) * 2 > m->cap) {
        idmap_t bigger = {0};
        bigger.cap = m->cap ? m->cap * 2 : 64;
        if (bigger.cap > SIZE_MAX / sizeof(uint64_t))
            return -ENOMEM;
        bigger.keys = malloc(bigger.cap * sizeof *bigger.keys);
        bigger.vals = malloc(bigger.cap * sizeof *bigger.vals);
        if (!bigger.keys || !bigger.vals) {
            free(bigger.keys);
            free(bigger.vals);
            return -ENOMEM;
        }
        memset(bigger.vals, 0xff, bigger.cap * sizeof *bigger.vals);
        for (size_t i = 0; i < m->cap; i++)
            if (m->vals[i] != NONE)
                idmap_insert(&bigger, m->keys[i], m->vals[i]);
        free(m->keys);
        free(m->vals);
        *m = bigger;
    }
    idmap_insert(m, key, val);
    return 0;
}

static void idmap_free(idmap_t *m)
{
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

/* ---- event decoding, shared by both passes ---- */

typedef struct chunk_dec {
    const uint8_t *p, *end; /* the undecoded events */
    const uint8_t *base;    /* the first event byte, at file offset base_off */
    uint64_t base_off;
    uint64_t remaining;     /* events still to decode */
    uint64_t ptr;           /* versions 1 to 3: the previous event's pointer */
    bool refs;              /* version 4: blocks named by allocation seq */
    bool heads;             /* version 5: packed event heads */
    mt_chunk_state_t st;    /* the previous event's seq; from version 4 the
                               previous block reference; in version 5 the
                               chunk's ops and recent stacks */
} chunk_dec_t;

static const uint8_t no_bytes[1];

static void dec_start(chunk_dec_t *d, const uint8_t *events, uint32_t len, uint64_t off,
                      uint64_t count, uint64_t first_seq, uint32_t version)
{
    d->base = d->p = len ? events : no_bytes;
    d->end = d->p + len;
    d->base_off = off;
    d->remaining = count;
    d->ptr = 0;
    d->refs = version >= MT_TRACE_VERSION_REFS;
    d->heads = version >= MT_TRACE_VERSION_HEAD;
    mt_chunk_state_init(&d->st, first_seq);
}

static uint64_t dec_offset(const chunk_dec_t *d)
{
    return d->base_off + (uint64_t)(d->p - d->base);
}

/* Every op the format defines, as a bit mask (ops are below 64). */
#define OP_BIT(name, value, frees, allocates, fn) | (1ull << (value))
static const uint64_t known_ops = 0 MT_OP_MAP(OP_BIT);
#undef OP_BIT

/* The longest event: a head, an op byte and five varints (an allocation
 * named by its address, version 5). */
#define EVENT_MAX (2 + 5 * MT_VARINT_MAX)

/* Reads a varint at *p when MT_VARINT_MAX bytes are known to follow, so
 * that no byte needs a bounds check. Returns false, leaving *p alone, for
 * one longer than 64 bits (mt_get_varint's rules). Varints of up to 8
 * bytes (56 bits: sizes, deltas, stack ids) are decoded without a branch
 * per byte: the stop byte is the lowest one without its top bit, and the
 * 7-bit groups below it are packed together in three steps. */
static inline bool fast_varint(const uint8_t **p, uint64_t *out)
{
    const uint8_t *q = *p;
    uint64_t x, stops, v, b;

    memcpy(&x, q, sizeof x);
    x = le64toh(x);
    stops = ~x & 0x8080808080808080ull;
    if (stops) {
        unsigned bits = (unsigned)__builtin_ctzll(stops) + 1; /* through the stop byte */
        x &= bits == 64 ? ~0ull : (1ull << bits) - 1;
        x &= 0x7f7f7f7f7f7f7f7full;
        x = (x & 0x007f007f007f007full) | (x & 0x7f007f007f007f00ull) >> 1;
        x = (x & 0x00003fff00003fffull) | (x & 0x3fff00003fff0000ull) >> 2;
        x = (x & 0x000000000fffffffull) | (x & 0x0fffffff00000000ull) >> 4;
        *out = x;
        *p = q + bits / 8;
        return true;
    }
    /* Nine or ten bytes: the first eight hold 56 bits. */
    x &= 0x7f7f7f7f7f7f7f7full;
    x = (x & 0x007f007f007f007full) | (x & 0x7f007f007f007f00ull) >> 1;
    x = (x & 0x00003fff00003fffull) | (x & 0x3fff00003fff0000ull) >> 2;
    v = (x & 0x000000000fffffffull) | (x & 0x0fffffff00000000ull) >> 4;
    b = q[8];
    v |= (b & 0x7f) << 56;
    if (!(b & 0x80)) {
        *out = v;
        *p = q + 9;
        return true;
    }
    b = q[9];
    if (b > 1)
        return false;
    *out = v | b << 63;
    *p = q + 10;
    return true;
}

/* An allocation's MT_EV_MORE tail (versions 4 and 5) as decode_fast reads
 * it: its block named by address (*key), or the block it replaces. */
static inline bool fast_more(const uint8_t **p, uint64_t seq, uint64_t *key, uint64_t *replaces)
{
    uint64_t x;
    if (!fast_varint(p, &x))
        return false;
    if (x == 0)
        return fast_varint(p, key) && !(*key >> 63);
    if (x >= seq)
        return false;
    *replaces = MT_BLOCK_KEY(seq - x);
    return true;
}

/* The block of a version 5 free named by its age (the bytes after the
 * head say age - 1), or 0 when that is not a block allocated before seq. */
static inline uint64_t age_ref(uint64_t seq, uint64_t age_less_1)
{
    return age_less_1 + 1 < seq ? seq - 1 - age_less_1 : 0;
}

/* The block of a version 5 free named by the change of reference z after
 * prev, or 0 when that is not a block allocated before seq. */
static inline uint64_t delta_ref(uint64_t seq, uint64_t prev, uint64_t z)
{
    uint64_t ref = prev + (uint64_t)mt_unzigzag(z);
    return ref < seq ? ref : 0;
}

/* A version 5 event (include/mt_trace.h), as decode_fast. */
static inline const uint8_t *decode_head_fast(const chunk_dec_t *d, mt_event_t *ev)
{
    const uint8_t *p = d->p;
    unsigned head = *p++, op, code;
    uint64_t delta, seq, size = 0, stack = 0, key = 0, replaces = 0, x;
    bool more = false;

    if (head & MT_HEAD_FREES) {
        code = head >> MT_HEAD_FREE_OP_SHIFT & 3;
        if (code == MT_FREE_OP_SAME)
            op = d->st.free_op;
        else if (code == MT_FREE_OP_REALLOC)
            op = MT_OP_REALLOC_FREE;
        else if (code == MT_FREE_OP_BYTE)
            op = *p++;
        else
            return NULL;
        if (!mt_op_frees(op) || !(known_ops >> op & 1))
            return NULL;
    } else {
        op = d->st.alloc_op;
        if (head & MT_HEAD_ALLOC_OP) {
            more = *p & MT_EV_MORE;
            op = *p++ & ~MT_EV_MORE;
        }
        if (!mt_op_allocates(op) || !(known_ops >> op & 1))
            return NULL;
    }
    delta = (head & MT_HEAD_SEQ) + 1;
    if ((head & MT_HEAD_SEQ) == MT_HEAD_SEQ_VARINT && !fast_varint(&p, &delta))
        return NULL;
    if (delta > UINT64_MAX - d->st.seq)
        return NULL;
    seq = d->st.seq + delta;
    if (seq >> 63)
        return NULL; /* block keys need the top bit */
    if (!(head & MT_HEAD_FREES)) {
        if (!fast_varint(&p, &size))
            return NULL;
        code = head >> MT_HEAD_STACK_SHIFT & 15;
        if (code == MT_HEAD_STACK_NEW) {
            if (!fast_varint(&p, &stack) || stack > UINT32_MAX)
                return NULL;
        } else if (code < d->st.nrecent) {
            stack = d->st.recent[code];
        } else {
            return NULL;
        }
        key = MT_BLOCK_KEY(seq);
        if (more && !fast_more(&p, seq, &key, &replaces))
            return NULL;
    } else {
        switch (head >> MT_HEAD_BLOCK_SHIFT & 7) {
        case MT_BLOCK_AGE1:
            x = age_ref(seq, p[0]);
            p += 1;
            break;
        case MT_BLOCK_AGE2:
            x = age_ref(seq, (uint64_t)p[0] | (uint64_t)p[1] << 8);
            p += 2;
            break;
        case MT_BLOCK_AGE3:
            x = age_ref(seq, (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16);
            p += 3;
            break;
        case MT_BLOCK_DELTA:
            if (!fast_varint(&p, &x))
                return NULL;
            x = delta_ref(seq, d->st.ref, x);
            break;
        case MT_BLOCK_ADDR:
            if (!fast_varint(&p, &key) || key >> 63)
                return NULL;
            x = UINT64_MAX;
            break;
        default:
            return NULL;
        }
        if (x == 0)
            return NULL;
        if (x != UINT64_MAX)
            key = MT_BLOCK_KEY(x);
    }
    *ev = (mt_event_t){.seq = seq, .ptr = key, .size = size, .stack = (uint32_t)stack,
                       .op = (uint8_t)op, .replaces = replaces};
    return p;
}

/* Decodes the event at d->p into ev like decode_event when it cannot run
 * past the chunk and is well formed, without moving d; returns the byte
 * after it, or NULL, so that decode_event can say exactly what is wrong.
 * dec_commit moves d past the event. This is the replay's per-event path. */
static inline const uint8_t *decode_fast(const chunk_dec_t *d, mt_event_t *ev)
{
    const uint8_t *p = d->p;
    uint64_t delta = 1, size = 0, zptr, stack = 0;
    unsigned op, flags;
    bool allocates;

    if (d->end - p < EVENT_MAX)
        return NULL;
    if (d->heads)
        return decode_head_fast(d, ev);
    flags = *p & ~MT_EV_OP_MASK;
    op = *p++ & MT_EV_OP_MASK;
    if (!(known_ops >> op & 1))
        return NULL;
    allocates = mt_op_allocates(op);
    if (!(flags & MT_EV_SEQ1) && !fast_varint(&p, &delta))
        return NULL;
    if (delta > UINT64_MAX - d->st.seq)
        return NULL;
    if (d->refs) {
        uint64_t seq = d->st.seq + delta, key, x, replaces = 0;
        if (seq >> 63)
            return NULL; /* block keys need the top bit */
        if (allocates) {
            if (!fast_varint(&p, &size) || !fast_varint(&p, &stack) || stack > UINT32_MAX)
                return NULL;
            key = MT_BLOCK_KEY(seq);
            if ((flags & MT_EV_MORE) && !fast_more(&p, seq, &key, &replaces))
                return NULL;
        } else {
            if (!fast_varint(&p, &x))
                return NULL;
            if (flags & MT_EV_MORE) {
                uint64_t ref = mt_block_unref(seq, x, d->st.ref);
                if (ref == 0)
                    return NULL;
                key = MT_BLOCK_KEY(ref);
            } else if (x >> 63) {
                return NULL;
            } else {
                key = x;
            }
        }
        *ev = (mt_event_t){.seq = seq, .ptr = key, .size = size, .stack = (uint32_t)stack,
                           .op = (uint8_t)op, .replaces = replaces};
        return p;
    }
    if (allocates && !fast_varint(&p, &size))
        return NULL;
    if (!fast_varint(&p, &zptr))
        return NULL;
    if (allocates && (!fast_varint(&p, &stack) || stack > UINT32_MAX))
        return NULL;
    *ev = (mt_event_t){
        .seq = d->st.seq + delta,
        .ptr = d->ptr + (uint64_t)mt_unzigzag(zptr) * (flags & MT_EV_PTR16 ? 16u : 1u),
        .size = size,
        .stack = (uint32_t)stack,
        .op = (uint8_t)op,
    };
    return p;
}

/* Moves d past the event decode_fast decoded into ev, ending at p;
 * raw_stack is the stack id as the event wrote it (before any mapping). */
static inline void dec_commit(chunk_dec_t *d, const mt_event_t *ev, const uint8_t *p, uint32_t raw_stack)
{
    if (d->heads) {
        unsigned head = *d->p, code = head >> MT_HEAD_STACK_SHIFT & 15;
        bool allocates = !(head & MT_HEAD_FREES);
        if (allocates && code == MT_HEAD_STACK_NEW)
            mt_recent_push(&d->st, raw_stack);
        else if (allocates)
            mt_recent_front(&d->st, code);
        mt_chunk_state_op(&d->st, ev->op, allocates);
    }
    d->p = p;
    d->st.seq = ev->seq;
    d->ptr = ev->ptr;
    d->remaining--;
    /* Version 4: a free that named its block moves the reference on. */
    if (d->refs && mt_op_frees(ev->op) && ev->ptr >> 63)
        d->st.ref = ev->ptr & ~(1ull << 63);
}

/* ---- the checked decoders of versions 4 and 5 ----
 *
 * decode_fast's job for an event near its chunk's end or a malformed one,
 * byte by byte, saying exactly what is wrong and where. */

/* The event being checked: its chunk, offset and op, and where a message
 * goes. */
typedef struct checked {
    chunk_dec_t *d;
    uint64_t off;
    unsigned op;
    char *err;
    const char *path;
} checked_t;

/* Reads the varint field what into *v, or says what is wrong with it. */
static int read_field(checked_t *c, const char *what, uint64_t *v)
{
    const uint8_t *q = c->d->p;
    if (mt_get_varint(&c->d->p, c->d->end, v))
        return errorf(c->err, c->path, -EINVAL, "offset %" PRIu64 ": %s event: %s %s", c->off,
                      mt__op_name(c->op), what, varint_fault(q, c->d->end));
    return 0;
}

static int read_stack_id(checked_t *c, uint64_t *stack)
{
    int rc = read_field(c, "stack id", stack);
    if (rc == 0 && *stack > UINT32_MAX)
        return errorf(c->err, c->path, -EINVAL,
                      "offset %" PRIu64 ": %s event: stack id %" PRIu64 " is out of range", c->off,
                      mt__op_name(c->op), *stack);
    return rc;
}

/* A block named by its address: one no user-space pointer can be is an error. */
static int read_address(checked_t *c, uint64_t *addr)
{
    int rc = read_field(c, "pointer", addr);
    if (rc == 0 && *addr >> 63)
        return errorf(c->err, c->path, -EINVAL,
                      "offset %" PRIu64 ": %s event: pointer 0x%" PRIx64 " is not a user-space address",
                      c->off, mt__op_name(c->op), *addr);
    return rc;
}

/* The seq of the event delta after the previous one: below 2^63, so that
 * block keys can use the top bit. */
static int next_seq(checked_t *c, uint64_t delta, uint64_t *seq)
{
    if (delta > UINT64_MAX - c->d->st.seq)
        return errorf(c->err, c->path, -EINVAL, "offset %" PRIu64 ": %s event: seq overflows", c->off,
                      mt__op_name(c->op));
    *seq = c->d->st.seq + delta;
    if (*seq >> 63)
        return errorf(c->err, c->path, -EINVAL,
                      "offset %" PRIu64 ": %s event: seq %" PRIu64 " is out of range (at most 2^63 - 1)",
                      c->off, mt__op_name(c->op), *seq);
    return 0;
}

/* A free at seq that names a block not allocated before it, by its age
 * or (not by_age) by the seq ref it works out to. */
static int not_before(checked_t *c, uint64_t seq, bool by_age, uint64_t n)
{
    if (by_age)
        return errorf(c->err, c->path, -EINVAL,
                      "offset %" PRIu64 ": %s event at seq %" PRIu64 " frees a block %" PRIu64
                      " events old, not allocated before it",
                      c->off, mt__op_name(c->op), seq, n);
    return errorf(c->err, c->path, -EINVAL,
                  "offset %" PRIu64 ": %s event at seq %" PRIu64
                  " frees the block allocated at seq %" PRIu64 ", not allocated before it",
                  c->off, mt__op_name(c->op), seq, n);
}

/* The tail of an allocation that says more about its block (MT_EV_MORE):
 * sets *key when the block is named by its address, *replaces when it
 * ends a block whose free was lost. */
static int read_more(checked_t *c, uint64_t seq, uint64_t *key, uint64_t *replaces)
{
    uint64_t x;
    int rc = read_field(c, "block reference", &x);
    if (rc == 0 && x == 0)
        return read_address(c, key);
    if (rc == 0 && x >= seq)
        return errorf(c->err, c->path, -EINVAL,
                      "offset %" PRIu64 ": %s event: it replaces a block allocated %" PRIu64
                      " events before seq %" PRIu64 ", before the trace began",
                      c->off, mt__op_name(c->op), x, seq);
    if (rc == 0)
        *replaces = MT_BLOCK_KEY(seq - x);
    return rc;
}

/* Moves d past a checked event and stores it. */
static int checked_done(checked_t *c, mt_event_t *ev, uint64_t seq, uint64_t key, uint64_t size,
                        uint64_t stack, uint64_t replaces)
{
    c->d->st.seq = seq;
    c->d->remaining--;
    *ev = (mt_event_t){.seq = seq, .ptr = key, .size = size, .stack = (uint32_t)stack,
                       .op = (uint8_t)c->op, .replaces = replaces};
    return 0;
}

/* An event of versions 1 to 3, checked. Moves d past it and returns 0, or
 * says what is wrong and where. */
static int decode_addrs(chunk_dec_t *d, mt_event_t *ev, char *err, const char *path)
{
    checked_t c = {d, dec_offset(d), *d->p & MT_EV_OP_MASK, err, path};
    uint64_t delta = 1, size = 0, zptr, stack = 0;
    unsigned flags = *d->p++ & ~MT_EV_OP_MASK; /* decode_event checked the op */
    int rc;

    if (!(flags & MT_EV_SEQ1) && (rc = read_field(&c, "seq delta", &delta)))
        return rc;
    if (delta > UINT64_MAX - d->st.seq)
        return errorf(err, path, -EINVAL, "offset %" PRIu64 ": %s event: seq overflows", c.off,
                      mt__op_name(c.op));
    if ((mt_op_allocates(c.op) && (rc = read_field(&c, "size", &size))) ||
        (rc = read_field(&c, "pointer delta", &zptr)) ||
        (mt_op_allocates(c.op) && (rc = read_stack_id(&c, &stack))))
        return rc;
    d->ptr += (uint64_t)mt_unzigzag(zptr) * (flags & MT_EV_PTR16 ? 16u : 1u);
    return checked_done(&c, ev, d->st.seq + delta, d->ptr, size, stack, 0);
}

/* A version 4 event, checked. Moves d past it and returns 0, or says what
 * is wrong and where. */
static int decode_refs(chunk_dec_t *d, mt_event_t *ev, char *err, const char *path)
{
    checked_t c = {d, dec_offset(d), *d->p & MT_EV_OP_MASK, err, path};
    uint64_t delta = 1, size = 0, stack = 0, x, key, replaces = 0, seq;
    unsigned flags = *d->p++ & ~MT_EV_OP_MASK; /* decode_event checked the op */
    int rc;

    if ((!(flags & MT_EV_SEQ1) && (rc = read_field(&c, "seq delta", &delta))) ||
        (rc = next_seq(&c, delta, &seq)))
        return rc;
    if (mt_op_allocates(c.op)) {
        if ((rc = read_field(&c, "size", &size)) || (rc = read_stack_id(&c, &stack)))
            return rc;
        key = MT_BLOCK_KEY(seq);
        if ((flags & MT_EV_MORE) && (rc = read_more(&c, seq, &key, &replaces)))
            return rc;
    } else if (flags & MT_EV_MORE) {
        if ((rc = read_field(&c, "block reference", &x)))
            return rc;
        uint64_t ref = mt_block_unref(seq, x, d->st.ref);
        if (ref == 0)
            return not_before(&c, seq, x & 1, x & 1 ? x >> 1 : d->st.ref + (uint64_t)mt_unzigzag(x >> 1));
        d->st.ref = ref;
        key = MT_BLOCK_KEY(ref);
    } else if ((rc = read_address(&c, &key))) {
        return rc;
    }
    return checked_done(&c, ev, seq, key, size, stack, replaces);
}

/* A version 5 event, checked, as decode_refs. */
static int decode_heads(chunk_dec_t *d, mt_event_t *ev, char *err, const char *path)
{
    checked_t c = {d, dec_offset(d), 0, err, path};
    uint64_t delta, size = 0, stack = 0, x = 0, key, ref = 0, replaces = 0, seq;
    unsigned head = *d->p++, code;
    bool allocates = !(head & MT_HEAD_FREES), more = false;
    int rc;

    if (!allocates) {
        code = head >> MT_HEAD_FREE_OP_SHIFT & 3;
        c.op = code == MT_FREE_OP_SAME ? d->st.free_op : MT_OP_REALLOC_FREE;
        if (code == MT_FREE_OP_BAD)
            return errorf(err, path, -EINVAL, "offset %" PRIu64 ": event head 0x%02x: no such free op code",
                          c.off, head);
    } else {
        c.op = d->st.alloc_op;
        code = MT_FREE_OP_BYTE * !!(head & MT_HEAD_ALLOC_OP);
    }
    if (code == MT_FREE_OP_BYTE) {
        if (d->p >= d->end)
            return errorf(err, path, -EINVAL, "offset %" PRIu64 ": event cut short after its head", c.off);
        more = allocates && (*d->p & MT_EV_MORE);
        c.op = *d->p++ & (allocates ? ~MT_EV_MORE : 0xffu);
    }
    if (!op_known(c.op) || (allocates ? !mt_op_allocates(c.op) : !mt_op_frees(c.op)))
        return errorf(err, path, -EINVAL, "offset %" PRIu64 ": event head 0x%02x: %s op %u is not known",
                      c.off, head, allocates ? "allocating" : "freeing", c.op);
    delta = (head & MT_HEAD_SEQ) + 1;
    if (((head & MT_HEAD_SEQ) == MT_HEAD_SEQ_VARINT && (rc = read_field(&c, "seq delta", &delta))) ||
        (rc = next_seq(&c, delta, &seq)))
        return rc;
    if (allocates) {
        if ((rc = read_field(&c, "size", &size)))
            return rc;
        code = head >> MT_HEAD_STACK_SHIFT & 15;
        if (code == MT_HEAD_STACK_NEW) {
            if ((rc = read_stack_id(&c, &stack)))
                return rc;
        } else if (code >= d->st.nrecent) {
            return errorf(err, path, -EINVAL,
                          "offset %" PRIu64 ": %s event: recent stack %u named, but the chunk has %u so far",
                          c.off, mt__op_name(c.op), code, d->st.nrecent);
        } else {
            stack = d->st.recent[code];
        }
        key = MT_BLOCK_KEY(seq);
        if (more && (rc = read_more(&c, seq, &key, &replaces)))
            return rc;
        if (code == MT_HEAD_STACK_NEW)
            mt_recent_push(&d->st, (uint32_t)stack);
        else
            mt_recent_front(&d->st, code);
    } else {
        unsigned mode = head >> MT_HEAD_BLOCK_SHIFT & 7;
        if (mode <= MT_BLOCK_AGE3) {
            if ((size_t)(d->end - d->p) < mode + 1u)
                return errorf(err, path, -EINVAL, "offset %" PRIu64 ": %s event: block age cut short", c.off,
                              mt__op_name(c.op));
            for (unsigned i = 0; i <= mode; i++)
                x |= (uint64_t)d->p[i] << (8 * i);
            d->p += mode + 1;
            if (!(ref = age_ref(seq, x)))
                return not_before(&c, seq, true, x + 1);
        } else if (mode == MT_BLOCK_DELTA) {
            if ((rc = read_field(&c, "block reference", &x)))
                return rc;
            if (!(ref = delta_ref(seq, d->st.ref, x)))
                return not_before(&c, seq, false, d->st.ref + (uint64_t)mt_unzigzag(x));
        } else if (mode == MT_BLOCK_ADDR) {
            if ((rc = read_address(&c, &x)))
                return rc;
        } else {
            return errorf(err, path, -EINVAL, "offset %" PRIu64 ": event head 0x%02x: no such block mode %u",
                          c.off, head, mode);
        }
        key = ref ? MT_BLOCK_KEY(ref) : x;
        if (ref)
            d->st.ref = ref;
    }
    mt_chunk_state_op(&d->st, c.op, allocates);
    return checked_done(&c, ev, seq, key, size, stack, replaces);
}

/* Decodes the next event of a chunk into ev (op, seq, ptr, size, stack as
 * written; tid and label left 0). The caller checked remaining > 0. */
static int decode_event(chunk_dec_t *d, mt_event_t *ev, char *err, const char *path)
{
    uint64_t off;
    const uint8_t *q;
    unsigned op;

    if ((q = decode_fast(d, ev))) {
        dec_commit(d, ev, q, ev->stack);
        return 0;
    }
    off = dec_offset(d);
    if (d->p >= d->end)
        return errorf(err, path, -EINVAL,
                      "offset %" PRIu64 ": chunk ends with %" PRIu64
                      " of its events missing (fewer events than its count)",
                      off, d->remaining);
    if (d->heads)
        return decode_heads(d, ev, err, path);
    op = *d->p & MT_EV_OP_MASK;
    if (!op_known(op))
        return errorf(err, path, -EINVAL, "offset %" PRIu64 ": unknown event op %u", off, op);
    if (d->refs)
        return decode_refs(d, ev, err, path);
    return decode_addrs(d, ev, err, path);
}

/* ---- the raw record iterator ---- */

struct mt_record_iter {
    char *path;
    int fd;
    uint64_t size;    /* file size at open */
    uint8_t *buf;     /* holds file bytes [buf_off, buf_off + len) */
    size_t cap, len;
    uint64_t buf_off;
    uint64_t off;     /* the next record */
    int failed;
    bool done;
    mt_trace_info_t info;
    char *exe, *command;
    /* The last CHUNK record: where its events are. */
    bool in_chunk, chunk_loaded;
    uint64_t chunk_off, events_off, count, first_seq;
    uint32_t events_len;
    chunk_dec_t dec;
    uint64_t frames[STACK_MAX_DEPTH];
    zsrc_t z; /* a compressed trace: size then counts the bytes decompressed so far */
    char err[ERR_MAX];
};

/* Makes bytes [off, off + n) of the file available in it->buf and points *out
 * at them, until the next call. The caller checked that they lie inside the
 * file. Reads ahead as much as the buffer holds. */
static int window(mt_record_iter_t *it, uint64_t off, size_t n, const uint8_t **out)
{
    size_t keep = 0, want;

    if (off >= it->buf_off && off - it->buf_off <= it->len &&
        n <= it->len - (size_t)(off - it->buf_off)) {
        *out = it->buf + (off - it->buf_off);
        return 0;
    }
    if (it->z.on) /* zreach put every byte a record needs in the buffer */
        return errorf(it->err, it->path, -EIO, "offset %" PRIu64 ": not decompressed", off);
    if (n > it->cap) {
        uint8_t *p = realloc(it->buf, n);
        if (!p)
            return errorf(it->err, it->path, -ENOMEM,
                          "offset %" PRIu64 ": out of memory reading %zu bytes", off, n);
        it->buf = p;
        it->cap = n;
    }
    if (off >= it->buf_off && off - it->buf_off < it->len) {
        keep = it->len - (size_t)(off - it->buf_off);
        memmove(it->buf, it->buf + (off - it->buf_off), keep);
    }
    it->buf_off = off;
    it->len = keep;
    want = it->size - off < it->cap ? (size_t)(it->size - off) : it->cap;
    while (it->len < want) {
        ssize_t r = pread(it->fd, it->buf + it->len, want - it->len, (off_t)(off + it->len));
        if (r < 0) {
            int e = errno;
            if (e == EINTR)
                continue;
            return errorf(it->err, it->path, -e, "offset %" PRIu64 ": %s", off + it->len,
                          strerror(e));
        }
        if (r == 0)
            break;
        it->len += (size_t)r;
    }
    if (it->len < n)
        return errorf(it->err, it->path, -EIO,
                      "offset %" PRIu64 ": the file became shorter while being read",
                      off + it->len);
    *out = it->buf;
    return 0;
}

/* In a compressed trace, decompresses the frames after those read so far
 * into the buffer until it reaches uncompressed offset end or the frames run
 * out, keeping the bytes from keep on (the record being read). Nothing to do
 * for a trace that is not compressed. */
static int zreach(mt_record_iter_t *it, uint64_t keep, uint64_t end)
{
    zsrc_t *z = &it->z;

    while (z->on && !z->end && it->size < end) {
        zframe_t f = {0};
        bool cut;
        size_t drop;
        int r = zframe_next(z, it->fd, it->path, it->err, it->size, &f, &cut);

        if (r < 0)
            return r;
        if (r == 0) {
            z->end = true;
            if (cut) {
                it->info.truncated = true;
                it->info.truncated_at = z->next_file_off;
            }
            break;
        }
        drop = keep > it->buf_off ? (size_t)(keep - it->buf_off) : 0;
        drop = drop < it->len ? drop : it->len;
        memmove(it->buf, it->buf + drop, it->len - drop);
        it->buf_off += drop;
        it->len -= drop;
        if (it->len + f.rlen > it->cap) {
            uint8_t *p = realloc(it->buf, it->len + f.rlen);
            if (!p)
                return errorf(it->err, it->path, -ENOMEM,
                              "offset %" PRIu64 ": out of memory decompressing %" PRIu32 " bytes",
                              f.file_off, f.rlen);
            it->buf = p;
            it->cap = it->len + f.rlen;
        }
        if ((r = zframe_decode(z, it->fd, it->path, it->err, &f, it->buf + it->len)) ||
            (!z->no_index && (r = zindex_add(z, &f, it->path, it->err))))
            return r;
        it->len += f.rlen;
        it->size += f.rlen;
        z->next_file_off += MT_ZFRAME_HEADER_SIZE + f.clen;
    }
    return 0;
}

/* A cursor over the fields of one record (or of the header). */
typedef struct fields {
    const uint8_t *p, *end;
    mt_record_iter_t *it;
    uint64_t off;     /* the record, for messages */
    const char *what; /* "MODULE record", "header" */
} fields_t;

__attribute__((format(printf, 2, 3)))
static int bad(fields_t *f, const char *fmt, ...)
{
    char msg[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return errorf(f->it->err, f->it->path, -EINVAL, "offset %" PRIu64 ": %s: %s", f->off,
                  f->what, msg);
}

static int field(fields_t *f, const char *name, uint64_t *out)
{
    const uint8_t *q = f->p;

    if (mt_get_varint(&f->p, f->end, out) == 0)
        return 0;
    return bad(f, "%s %s", name, varint_fault(q, f->end));
}

static int field_u32(fields_t *f, const char *name, uint32_t *out)
{
    uint64_t v;
    int r = field(f, name, &v);

    if (r)
        return r;
    if (v > UINT32_MAX)
        return bad(f, "%s %" PRIu64 " is out of range", name, v);
    *out = (uint32_t)v;
    return 0;
}

static int field_str(fields_t *f, const char *name, const uint8_t **s, size_t *len)
{
    uint64_t n;
    int r = field(f, name, &n);

    if (r)
        return r;
    if (n > (uint64_t)(f->end - f->p))
        return bad(f, "%s length %" PRIu64 " runs past the end (%zu bytes left)", name, n,
                   (size_t)(f->end - f->p));
    *s = f->p;
    *len = (size_t)n;
    f->p += n;
    return 0;
}

static int fields_done(fields_t *f)
{
    if (f->p != f->end)
        return bad(f, "%zu unexpected bytes after the last field", (size_t)(f->end - f->p));
    return 0;
}

/* Parses the payload of rec (type and length set) from f: the whole payload,
 * or for a CHUNK its first CHUNK_HEAD_MAX bytes at most. */
static int parse_record(mt_record_iter_t *it, fields_t *f, mt_record_t *rec, uint64_t payload_off)
{
    const uint8_t *s, *start = f->p;
    size_t n;
    int r = 0;

    switch (rec->type) {
    case MT_REC_MODULE:
        if ((r = field(f, "id", &rec->u.module.id)) ||
            (r = field(f, "load_epoch", &rec->u.module.load_epoch)) ||
            (r = field(f, "base", &rec->u.module.base)) ||
            (r = field(f, "start", &rec->u.module.start)) ||
            (r = field(f, "end", &rec->u.module.end)))
            return r;
        if ((r = field_str(f, "path", &s, &n)))
            return r;
        rec->u.module.path = (const char *)s;
        rec->u.module.path_len = n;
        if ((r = field_str(f, "build_id", &s, &n)))
            return r;
        rec->u.module.build_id = s;
        rec->u.module.build_id_len = n;
        if (rec->u.module.start > rec->u.module.end)
            return bad(f, "start 0x%" PRIx64 " is above end 0x%" PRIx64, rec->u.module.start,
                       rec->u.module.end);
        return fields_done(f);
    case MT_REC_UNLOAD:
        if ((r = field(f, "module_id", &rec->u.unload.module_id)) ||
            (r = field(f, "epoch", &rec->u.unload.epoch)))
            return r;
        return fields_done(f);
    case MT_REC_STACK: {
        uint64_t id, depth;
        if ((r = field(f, "id", &id)) || (r = field(f, "epoch", &rec->u.stack.epoch)) ||
            (r = field(f, "depth", &depth)))
            return r;
        if (id > UINT32_MAX)
            return bad(f, "id %" PRIu64 " is out of range", id);
        if (depth > STACK_MAX_DEPTH)
            return bad(f, "depth %" PRIu64 " exceeds %d", depth, STACK_MAX_DEPTH);
        if (depth > (uint64_t)(f->end - f->p))
            return bad(f, "depth %" PRIu64 " does not fit in the %zu bytes left", depth,
                       (size_t)(f->end - f->p));
        for (uint64_t i = 0; i < depth; i++) {
            char name[32];
            snprintf(name, sizeof name, "frame %" PRIu64, i);
            if ((r = field(f, name, &it->frames[i])))
                return r;
        }
        rec->u.stack.id = id;
        rec->u.stack.depth = (uint32_t)depth;
        rec->u.stack.frames = it->frames;
        return fields_done(f);
    }
    case MT_REC_LABEL:
        if ((r = field(f, "id", &rec->u.label.id)))
            return r;
        if (rec->u.label.id > UINT32_MAX)
            return bad(f, "id %" PRIu64 " is out of range", rec->u.label.id);
        if ((r = field_str(f, "text", &s, &n)))
            return r;
        rec->u.label.text = (const char *)s;
        rec->u.label.text_len = n;
        return fields_done(f);
    case MT_REC_MARKER:
        if ((r = field(f, "seq", &rec->u.marker.seq)) ||
            (r = field(f, "time_ns", &rec->u.marker.time_ns)) ||
            (r = field_u32(f, "tid", &rec->u.marker.tid)) ||
            (r = field_u32(f, "label", &rec->u.marker.label)))
            return r;
        return fields_done(f);
    case MT_REC_TIME:
        if ((r = field(f, "seq", &rec->u.time.seq)) ||
            (r = field(f, "time_ns", &rec->u.time.time_ns)))
            return r;
        return fields_done(f);
    case MT_REC_CHUNK: {
        uint64_t head, events_len;
        if ((r = field(f, "stream", &rec->u.chunk.stream)) ||
            (r = field_u32(f, "tid", &rec->u.chunk.tid)) ||
            (r = field(f, "count", &rec->u.chunk.count)) ||
            (r = field(f, "first_seq", &rec->u.chunk.first_seq)))
            return r;
        head = (uint64_t)(f->p - start);
        events_len = rec->length - head;
        if (rec->u.chunk.count > events_len / EVENT_MIN_BYTES)
            return bad(f, "count %" PRIu64 " events cannot fit in %" PRIu64 " bytes",
                       rec->u.chunk.count, events_len);
        if (rec->u.chunk.count == 0 && events_len)
            return bad(f, "%" PRIu64 " bytes of events but a count of 0", events_len);
        if (events_len > rec->u.chunk.count * EVENT_MAX)
            return bad(f, "%" PRIu64 " bytes of events are more than %" PRIu64 " events can take",
                       events_len, rec->u.chunk.count);
        it->in_chunk = true;
        it->chunk_loaded = false;
        it->chunk_off = rec->offset;
        it->events_off = payload_off + head;
        it->events_len = (uint32_t)events_len;
        it->count = rec->u.chunk.count;
        it->first_seq = rec->u.chunk.first_seq;
        return 0;
    }
    case MT_REC_LOST:
        if ((r = field(f, "stream", &rec->u.lost.stream)) ||
            (r = field(f, "count", &rec->u.lost.count)))
            return r;
        return fields_done(f);
    case MT_REC_SYNC:
        if ((r = field(f, "seq", &rec->u.sync.seq)))
            return r;
        return fields_done(f);
    case MT_REC_END:
        if ((r = field(f, "last_seq", &rec->u.end.last_seq)) ||
            (r = field(f, "time_ns", &rec->u.end.time_ns)) ||
            (r = field(f, "events", &rec->u.end.events)) ||
            (r = field(f, "dropped", &rec->u.end.dropped)) ||
            (r = field(f, "stacks", &rec->u.end.stacks)))
            return r;
        rec->u.end.signal = 0;
        if (f->p != f->end && (r = field(f, "signal", &rec->u.end.signal)))
            return r;
        return fields_done(f);
    default:
        return bad(f, "unknown record type");
    }
}

/* Joins NUL-separated arguments with spaces; a final NUL ends the last one. */
static char *join_args(const uint8_t *s, size_t n)
{
    char *out;

    if (n && s[n - 1] == '\0')
        n--;
    out = malloc(n + 1);
    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i++)
        out[i] = s[i] ? (char)s[i] : ' ';
    out[n] = '\0';
    return out;
}

static int read_header(mt_record_iter_t *it)
{
    const uint8_t *h, *s;
    uint32_t version, hsize;
    size_t n, len;
    fields_t f;
    int r;

    if (it->size == 0)
        return errorf(it->err, it->path, -EINVAL, "empty file, not a memtrack trace");
    n = it->size < sizeof(mt_trace_header_t) ? (size_t)it->size : sizeof(mt_trace_header_t);
    if ((r = window(it, 0, n, &h)))
        return r;
    if (n < MT_TRACE_MAGIC_LEN || memcmp(h, MT_TRACE_MAGIC, MT_TRACE_MAGIC_LEN))
        return errorf(it->err, it->path, -EINVAL, "not a memtrack trace (bad magic)");
    if (n < sizeof(mt_trace_header_t))
        return errorf(it->err, it->path, -EINVAL,
                      "the file ends inside the trace header (%zu of %zu bytes)", n,
                      sizeof(mt_trace_header_t));
    version = mt_get_u32(h + offsetof(mt_trace_header_t, version));
    if (version > MT_TRACE_VERSION)
        return errorf(it->err, it->path, -EINVAL,
                      "trace format version %" PRIu32
                      " is newer than this memtrack supports (%u)",
                      version, MT_TRACE_VERSION);
    if (version == 0)
        return errorf(it->err, it->path, -EINVAL, "offset %zu: trace format version 0 is not valid",
                      offsetof(mt_trace_header_t, version));
    hsize = mt_get_u32(h + offsetof(mt_trace_header_t, header_size));
    if (hsize < sizeof(mt_trace_header_t) + 2 || hsize > MT_RECORD_MAX_PAYLOAD)
        return errorf(it->err, it->path, -EINVAL, "offset %zu: header size %" PRIu32 " is not valid",
                      offsetof(mt_trace_header_t, header_size), hsize);
    if (hsize > it->size)
        return errorf(it->err, it->path, -EINVAL,
                      "the file ends inside the trace header (%" PRIu64 " of %" PRIu32 " bytes)",
                      it->size, hsize);
    it->info.path = it->path;
    it->info.version = version;
    it->info.pid = mt_get_u64(h + offsetof(mt_trace_header_t, pid));
    it->info.ppid = mt_get_u64(h + offsetof(mt_trace_header_t, ppid));
    it->info.start_realtime_ns = mt_get_u64(h + offsetof(mt_trace_header_t, start_realtime_ns));
    it->info.fork_seq = mt_get_u64(h + offsetof(mt_trace_header_t, fork_seq));
    it->info.flags = mt_get_u32(h + offsetof(mt_trace_header_t, flags));
    it->info.depth = mt_get_u32(h + offsetof(mt_trace_header_t, depth));
    it->info.sample_bytes = mt_get_u64(h + offsetof(mt_trace_header_t, sample_bytes));

    n = hsize - sizeof(mt_trace_header_t);
    if ((r = window(it, sizeof(mt_trace_header_t), n, &h)))
        return r;
    f = (fields_t){h, h + n, it, sizeof(mt_trace_header_t), "header"};
    if ((r = field_str(&f, "exe_path", &s, &len)))
        return r;
    it->exe = copy_str(s, len);
    if ((r = field_str(&f, "cmdline", &s, &len)))
        return r;
    it->command = join_args(s, len);
    if (!it->exe || !it->command)
        return errorf(it->err, it->path, -ENOMEM, "out of memory");
    it->info.exe = it->exe;
    it->info.command = it->command;
    it->off = hsize;
    if (it->info.flags & MT_TRACE_F_ZSTD) {
        /* From here on the buffer and size count uncompressed bytes. */
        it->z.on = true;
        it->z.stream = (it->info.flags & MT_TRACE_F_ZSTREAM) != 0;
        it->z.file_size = it->size;
        it->z.next_file_off = hsize;
        it->size = hsize;
        it->buf_off = hsize;
        it->len = 0;
    }
    return 0;
}

/* mt__record_open on fd, which it takes over (closed on failure too), or on
 * path when fd is -1; path names the file in messages either way. */
static int record_open_fd(const char *path, int fd, mt_record_iter_t **out, char *err, size_t errlen)
{
    mt_record_iter_t *it;
    struct stat st;
    int r;

    *out = NULL;
    it = calloc(1, sizeof *it);
    if (!it) {
        if (fd >= 0)
            close(fd);
        copy_error(err, errlen, "out of memory");
        return -ENOMEM;
    }
    it->fd = fd;
    it->path = strdup(path);
    if (!it->path) {
        r = errorf(it->err, path, -ENOMEM, "out of memory");
        goto fail;
    }
    if (it->fd < 0)
        it->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (it->fd < 0 || fstat(it->fd, &st)) {
        int e = errno;
        r = errorf(it->err, path, -e, "%s", strerror(e));
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        r = errorf(it->err, path, -EINVAL, "not a regular file");
        goto fail;
    }
    it->size = (uint64_t)st.st_size;
    /* A small trace needs no more buffer than its size. */
    it->cap = it->size && it->size < READ_BUF_SIZE ? (size_t)it->size : READ_BUF_SIZE;
    it->buf = malloc(it->cap);
    if (!it->buf) {
        r = errorf(it->err, path, -ENOMEM, "out of memory");
        goto fail;
    }
    if ((r = read_header(it)))
        goto fail;
    *out = it;
    return 0;
fail:
    copy_error(err, errlen, it->err);
    mt__record_close(it);
    return r;
}

/* Opens a trace for reading its records one by one in file order and reads
 * its header. Returns 0 and sets *out (free it with mt__record_close), or a
 * negative code with *out NULL and the message (naming the file) in err. */
int mt__record_open(const char *path, mt_record_iter_t **out, char *err, size_t errlen)
{
    return record_open_fd(path, -1, out, err, errlen);
}

/* Returns the header fields of the trace (path, version, pid, exe, command,
 * ...); truncated and truncated_at are set once mt__record_next reached a
 * record cut by the end of the file. The counters are not filled. */
const mt_trace_info_t *mt__record_header(const mt_record_iter_t *it)
{
    return &it->info;
}

/* Returns the message of the iterator's last failure. */
const char *mt__record_error(const mt_record_iter_t *it)
{
    return it->err;
}

/* Reads the next record into rec. Returns 1 for a record, 0 at the end of the
 * file or at a record cut by it (the header then says truncated), or a
 * negative code for a malformed record (message in mt__record_error). */
int mt__record_next(mt_record_iter_t *it, mt_record_t *rec)
{
    const uint8_t *p;
    uint64_t off = it->off, left;
    uint32_t len;
    unsigned type;
    size_t n;
    fields_t f;
    int r;

    if (it->failed)
        return it->failed;
    if (it->done)
        return 0;
    it->in_chunk = false;
    if ((r = zreach(it, off, off + MT_RECORD_HEADER_SIZE)))
        goto fail;
    left = it->size - off;
    if (left == 0) {
        it->done = true;
        return 0;
    }
    if (left < MT_RECORD_HEADER_SIZE)
        goto truncated;
    if ((r = window(it, off, MT_RECORD_HEADER_SIZE, &p)))
        goto fail;
    type = p[0];
    len = mt_get_u32(p + 1);
    if (!mt__record_name(type)) {
        r = errorf(it->err, it->path, -EINVAL, "offset %" PRIu64 ": unknown record type %u", off,
                   type);
        goto fail;
    }
    if (len > MT_RECORD_MAX_PAYLOAD) {
        r = errorf(it->err, it->path, -EINVAL,
                   "offset %" PRIu64 ": %s record length %" PRIu32 " exceeds the maximum %u", off,
                   mt__record_name(type), len, MT_RECORD_MAX_PAYLOAD);
        goto fail;
    }
    if ((r = zreach(it, off, off + MT_RECORD_HEADER_SIZE + len)))
        goto fail;
    left = it->size - off;
    if (len > left - MT_RECORD_HEADER_SIZE)
        goto truncated;
    memset(rec, 0, sizeof *rec);
    rec->offset = off;
    rec->type = (uint8_t)type;
    rec->length = len;
    n = type == MT_REC_CHUNK && len > CHUNK_HEAD_MAX ? CHUNK_HEAD_MAX : len;
    if ((r = window(it, off + MT_RECORD_HEADER_SIZE, n, &p)))
        goto fail;
    f = (fields_t){p, p + n, it, off, NULL};
    switch (type) {
#define REC_WHAT(name, value) \
    case value:               \
        f.what = #name " record"; \
        break;
        MT_RECORD_MAP(REC_WHAT)
#undef REC_WHAT
    }
    if ((r = parse_record(it, &f, rec, off + MT_RECORD_HEADER_SIZE)))
        goto fail;
    it->off = off + MT_RECORD_HEADER_SIZE + len;
    return 1;
truncated:
    it->done = true;
    it->info.truncated = true;
    it->info.truncated_at = it->z.on ? zfile_off(&it->z, off) : off;
    return 0;
fail:
    it->in_chunk = false;
    zmessage(&it->z, it->err, it->path);
    it->failed = r;
    return r;
}

/* After a CHUNK record from mt__record_next, stores its next event in *ev as
 * written (stack is the file's stack id; tid is the chunk's). Returns 1 for an
 * event, 0 after the last one, or a negative code when the events are
 * malformed (message in mt__record_error). */
int mt__record_event(mt_record_iter_t *it, mt_event_t *ev)
{
    const uint8_t *p;
    int r;

    if (it->failed)
        return it->failed;
    if (!it->in_chunk)
        return 0;
    if (!it->chunk_loaded) {
        if ((r = window(it, it->events_off, it->events_len, &p)))
            goto fail;
        dec_start(&it->dec, p, it->events_len, it->events_off, it->count, it->first_seq, it->info.version);
        it->chunk_loaded = true;
    }
    if (it->dec.remaining == 0) {
        if (it->dec.p != it->dec.end) {
            r = errorf(it->err, it->path, -EINVAL,
                       "offset %" PRIu64 ": %zu bytes left after the %" PRIu64
                       " events of the chunk at offset %" PRIu64 " (more events than its count)",
                       dec_offset(&it->dec), (size_t)(it->dec.end - it->dec.p), it->count,
                       it->chunk_off);
            goto fail;
        }
        it->in_chunk = false;
        return 0;
    }
    if ((r = decode_event(&it->dec, ev, it->err, it->path)))
        goto fail;
    return 1;
fail:
    zmessage(&it->z, it->err, it->path);
    it->failed = r;
    return r;
}

/* Closes the iterator and frees what it owns. NULL is allowed. */
void mt__record_close(mt_record_iter_t *it)
{
    if (!it)
        return;
    if (it->fd >= 0)
        close(it->fd);
    zsrc_free(&it->z);
    free(it->buf);
    free(it->path);
    free(it->exe);
    free(it->command);
    free(it);
}

/* ---- the trace: first pass ---- */

typedef struct chunk {
    uint64_t rec_off;    /* the CHUNK record, for messages */
    uint64_t events_off; /* its first event byte */
    uint64_t count;
    uint64_t first_seq;
    uint32_t events_len;
    uint32_t tid;
    uint8_t *data;       /* streaming: a copy of its events; else NULL */
} chunk_t;

/* Indexed: every chunk of the stream, in file order. Streaming: the chunks
 * read ahead, from its cursor's next_chunk on. */
typedef struct stream {
    uint64_t id;
    chunk_t *chunks;
    size_t nchunks, cap;
} stream_t;

typedef struct cursor {
    uint8_t *buf;       /* the current chunk's events; freed at the stream's end */
    size_t cap;
    size_t next_chunk;
    bool in_chunk;
    uint32_t tid;
    uint64_t rec_off, count;
    chunk_dec_t dec;
    bool have_seq;
    uint64_t last_seq;
    bool in_heap;
    uint32_t held_len;  /* streaming: the bytes of buf counted in held_bytes */
    mt_event_t ev;      /* the stream's next event, while in the heap */
} cursor_t;

typedef struct tpoint {
    uint64_t seq, time_ns;
} tpoint_t;

typedef struct label {
    uint32_t id;
    char *text;
} label_t;

struct mt_trace {
    mt_trace_info_t info;
    char *path, *exe, *command;
    int fd;
    zsrc_t z; /* a compressed trace's frames */

    mt_module_t *modules; /* in file order */
    size_t modcap;
    const mt_module_t **by_start; /* sorted by start, then load_epoch */
    uint64_t *max_end;            /* highest end among by_start[0..i] */
    idmap_t module_ids;           /* id to the latest module with it; first pass only */

    mt_stack_t *stacks;
    size_t nstacks, stackcap;
    uint64_t *frames; /* every stack's frames, one after another */
    size_t nframes, framecap;
    idmap_t stack_ids; /* file id to index in stacks */
    bool stack_ids_sparse; /* some stack's file id is not its index */

    label_t *labels;
    size_t nlabels, labelcap;
    idmap_t label_ids;

    mt_marker_t *markers;
    size_t nmarkers, markercap;

    tpoint_t *times; /* sorted by seq */
    size_t ntimes, timecap;

    stream_t *streams;
    size_t nstreams, streamcap;
    idmap_t stream_ids; /* first pass only, unless streaming */
    size_t held, held_peak; /* chunks indexed or read ahead; the most at once */
    uint64_t held_bytes;    /* the events of the chunks read ahead or being merged */
    uint64_t held_bytes_max; /* HELD_BYTES_MAX unless a test lowered it */

    uint64_t lost, end_dropped;

    /* The second pass. */
    cursor_t *cursors; /* one per stream */
    uint32_t *heap;    /* stream indices, a min-heap by (next seq, index) */
    size_t nheap;
    size_t next_marker;
    bool primed, pending; /* pending: the heap top's event was returned */
    int failed;
    /* Streaming (the trace has SYNC records): the second pass reads the
     * records again in file order, up to where the first pass stopped. */
    bool streaming;
    uint64_t records_end;
    mt_record_iter_t *scan; /* opened when the pass needs it */
    uint64_t sync;          /* every chunk not scanned yet has seqs from here */
    bool scan_done;

    char err[ERR_MAX];
};

static uint64_t max_u64(uint64_t a, uint64_t b)
{
    return a > b ? a : b;
}

static int out_of_memory(mt_record_iter_t *it)
{
    return errorf(it->err, it->path, -ENOMEM, "out of memory");
}

static int load_module(mt_trace_t *t, mt_record_iter_t *it, const mt_record_t *rec)
{
    mt_module_t *m;
    uint32_t i;
    void *p;

    if (idmap_get(&t->module_ids, rec->u.module.id, &i) &&
        t->modules[i].unload_epoch == UINT64_MAX)
        return errorf(it->err, it->path, -EINVAL,
                      "offset %" PRIu64 ": MODULE record: module id %" PRIu64 " is already loaded",
                      rec->offset, rec->u.module.id);
    if (t->info.nmodules >= NONE - 1)
        return errorf(it->err, it->path, -EINVAL, "offset %" PRIu64 ": too many modules",
                      rec->offset);
    p = grow(t->modules, &t->modcap, t->info.nmodules + 1, sizeof *t->modules);
    if (!p)
        return out_of_memory(it);
    t->modules = p;
    m = &t->modules[t->info.nmodules];
    memset(m, 0, sizeof *m);
    m->path = copy_str(rec->u.module.path, rec->u.module.path_len);
    if (!m->path)
        return out_of_memory(it);
    if (rec->u.module.build_id_len) {
        m->build_id = malloc(rec->u.module.build_id_len);
        if (!m->build_id) {
            free(m->path);
            return out_of_memory(it);
        }
        memcpy(m->build_id, rec->u.module.build_id, rec->u.module.build_id_len);
        m->build_id_len = rec->u.module.build_id_len;
    }
    m->id = rec->u.module.id;
    m->load_epoch = rec->u.module.load_epoch;
    m->unload_epoch = UINT64_MAX;
    m->base = rec->u.module.base;
    m->start = rec->u.module.start;
    m->end = rec->u.module.end;
    t->info.nmodules++;
    if (idmap_put(&t->module_ids, m->id, (uint32_t)(t->info.nmodules - 1)))
        return out_of_memory(it);
    return 0;
}

static int load_unload(mt_trace_t *t, mt_record_iter_t *it, const mt_record_t *rec)
{
    mt_module_t *m;
    uint32_t i;

    if (!idmap_get(&t->module_ids, rec->u.unload.module_id, &i) ||
        t->modules[i].unload_epoch != UINT64_MAX)
        return errorf(it->err, it->path, -EINVAL,
                      "offset %" PRIu64 ": UNLOAD record: module id %" PRIu64 " is not loaded",
                      rec->offset, rec->u.unload.module_id);
    m = &t->modules[i];
    if (rec->u.unload.epoch < m->load_epoch)
        return errorf(it->err, it->path, -EINVAL,
                      "offset %" PRIu64 ": UNLOAD record: module id %" PRIu64
                      " unloaded at epoch %" PRIu64 " before its load at epoch %" PRIu64,
                      rec->offset, m->id, rec->u.unload.epoch, m->load_epoch);
    m->unload_epoch = rec->u.unload.epoch;
    return 0;
}

static int load_stack(mt_trace_t *t, mt_record_iter_t *it, const mt_record_t *rec)
{
    uint32_t i, depth = rec->u.stack.depth;
    void *p;

    if (idmap_get(&t->stack_ids, rec->u.stack.id, &i))
        return errorf(it->err, it->path, -EINVAL,
                      "offset %" PRIu64 ": STACK record: stack id %" PRIu64 " is defined twice",
                      rec->offset, rec->u.stack.id);
    if (t->nstacks >= NONE - 1)
        return errorf(it->err, it->path, -EINVAL, "offset %" PRIu64 ": too many stacks",
                      rec->offset);
    p = grow(t->stacks, &t->stackcap, t->nstacks + 1, sizeof *t->stacks);
    if (!p)
        return out_of_memory(it);
    t->stacks = p;
    p = grow(t->frames, &t->framecap, t->nframes + depth, sizeof *t->frames);
    if (!p)
        return out_of_memory(it);
    t->frames = p;
    if (depth)
        memcpy(t->frames + t->nframes, rec->u.stack.frames, depth * sizeof *t->frames);
    t->nframes += depth;
    /* frames are pointed at once the pool stops moving */
    t->stacks[t->nstacks] = (mt_stack_t){.epoch = rec->u.stack.epoch, .depth = depth};
    t->stack_ids_sparse |= rec->u.stack.id != t->nstacks;
    if (idmap_put(&t->stack_ids, rec->u.stack.id, (uint32_t)t->nstacks))
        return out_of_memory(it);
    t->nstacks++;
    return 0;
}

static int load_label(mt_trace_t *t, mt_record_iter_t *it, const mt_record_t *rec)
{
    uint32_t i;
    char *text;
    void *p;

    text = copy_str(rec->u.label.text, rec->u.label.text_len);
    if (!text)
        return out_of_memory(it);
    if (idmap_get(&t->label_ids, rec->u.label.id, &i)) {
        bool same = strcmp(t->labels[i].text, text) == 0;
        free(text);
        if (same)
            return 0;
        return errorf(it->err, it->path, -EINVAL,
                      "offset %" PRIu64 ": LABEL record: label id %" PRIu64
                      " is defined twice with different texts",
                      rec->offset, rec->u.label.id);
    }
    p = grow(t->labels, &t->labelcap, t->nlabels + 1, sizeof *t->labels);
    if (!p || idmap_put(&t->label_ids, rec->u.label.id, (uint32_t)t->nlabels)) {
        if (p)
            t->labels = p;
        free(text);
        return out_of_memory(it);
    }
    t->labels = p;
    t->labels[t->nlabels++] = (label_t){(uint32_t)rec->u.label.id, text};
    return 0;
}

/* The chunk of the CHUNK record the iterator just read. */
static chunk_t chunk_of(const mt_record_t *rec, const mt_record_iter_t *it, uint8_t *data)
{
    return (chunk_t){
        .rec_off = rec->offset,
        .events_off = it->events_off,
        .count = rec->u.chunk.count,
        .first_seq = rec->u.chunk.first_seq,
        .events_len = it->events_len,
        .tid = rec->u.chunk.tid,
        .data = data,
    };
}

static int load_chunk(mt_trace_t *t, mt_record_iter_t *it, const mt_record_t *rec)
{
    stream_t *s;
    uint32_t i;
    void *p;

    if (!idmap_get(&t->stream_ids, rec->u.chunk.stream, &i)) {
        if (t->nstreams >= NONE - 1)
            return errorf(it->err, it->path, -EINVAL, "offset %" PRIu64 ": too many streams",
                          rec->offset);
        p = grow(t->streams, &t->streamcap, t->nstreams + 1, sizeof *t->streams);
        if (!p)
            return out_of_memory(it);
        t->streams = p;
        i = (uint32_t)t->nstreams;
        if (idmap_put(&t->stream_ids, rec->u.chunk.stream, i))
            return out_of_memory(it);
        t->streams[i] = (stream_t){.id = rec->u.chunk.stream};
        t->nstreams++;
    }
    t->info.events += rec->u.chunk.count;
    t->info.last_seq = max_u64(t->info.last_seq, rec->u.chunk.first_seq);
    if (t->streaming)
        return 0;
    s = &t->streams[i];
    p = grow(s->chunks, &s->cap, s->nchunks + 1, sizeof *s->chunks);
    if (!p)
        return out_of_memory(it);
    s->chunks = p;
    s->chunks[s->nchunks++] = chunk_of(rec, it, NULL);
    t->held_peak = ++t->held;
    return 0;
}

/* A SYNC record: the trace can be merged in one streaming pass, which reads
 * the chunks again; the index of those before it is not needed. */
static void load_sync(mt_trace_t *t)
{
    if (t->streaming)
        return;
    t->streaming = true;
    for (size_t i = 0; i < t->nstreams; i++) {
        free(t->streams[i].chunks);
        t->streams[i].chunks = NULL;
        t->streams[i].nchunks = t->streams[i].cap = 0;
    }
    t->held = 0;
}

static int load_record(mt_trace_t *t, mt_record_iter_t *it, const mt_record_t *rec)
{
    void *p;

    switch (rec->type) {
    case MT_REC_MODULE:
        return load_module(t, it, rec);
    case MT_REC_UNLOAD:
        return load_unload(t, it, rec);
    case MT_REC_STACK:
        return load_stack(t, it, rec);
    case MT_REC_LABEL:
        return load_label(t, it, rec);
    case MT_REC_MARKER:
        p = grow(t->markers, &t->markercap, t->nmarkers + 1, sizeof *t->markers);
        if (!p)
            return out_of_memory(it);
        t->markers = p;
        t->markers[t->nmarkers++] = (mt_marker_t){rec->u.marker.seq, rec->u.marker.time_ns,
                                                   rec->u.marker.tid, rec->u.marker.label};
        t->info.last_seq = max_u64(t->info.last_seq, rec->u.marker.seq);
        /* A marker's time is exact: a time point too, so that every
         * command places a snapshot at the same time. */
        p = grow(t->times, &t->timecap, t->ntimes + 1, sizeof *t->times);
        if (!p)
            return out_of_memory(it);
        t->times = p;
        t->times[t->ntimes++] = (tpoint_t){rec->u.marker.seq, rec->u.marker.time_ns};
        return 0;
    case MT_REC_TIME:
        p = grow(t->times, &t->timecap, t->ntimes + 1, sizeof *t->times);
        if (!p)
            return out_of_memory(it);
        t->times = p;
        t->times[t->ntimes++] = (tpoint_t){rec->u.time.seq, rec->u.time.time_ns};
        t->info.last_seq = max_u64(t->info.last_seq, rec->u.time.seq);
        t->info.duration_ns = max_u64(t->info.duration_ns, rec->u.time.time_ns);
        return 0;
    case MT_REC_CHUNK:
        return load_chunk(t, it, rec);
    case MT_REC_LOST:
        t->lost = rec->u.lost.count > UINT64_MAX - t->lost ? UINT64_MAX
                                                            : t->lost + rec->u.lost.count;
        return 0;
    case MT_REC_SYNC:
        load_sync(t);
        return 0;
    case MT_REC_END:
        t->info.complete = true;
        t->info.end_signal = rec->u.end.signal < 128 ? (uint32_t)rec->u.end.signal : 0;
        t->end_dropped = max_u64(t->end_dropped, rec->u.end.dropped);
        t->info.last_seq = max_u64(t->info.last_seq, rec->u.end.last_seq);
        t->info.duration_ns = max_u64(t->info.duration_ns, rec->u.end.time_ns);
        return 0;
    default:
        return errorf(it->err, it->path, -EINVAL, "offset %" PRIu64 ": unknown record type %u",
                      rec->offset, rec->type);
    }
}

typedef struct sort_key {
    uint64_t seq;
    size_t order;
} sort_key_t;

static int cmp_key(const void *a, const void *b)
{
    const sort_key_t *x = a, *y = b;

    if (x->seq != y->seq)
        return x->seq < y->seq ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

/* Sorts n elements of size bytes, each starting with a uint64_t seq, by seq,
 * keeping the file order of equal seqs. */
static int sort_by_seq(void *base, size_t n, size_t size)
{
    uint8_t *b = base, *tmp = NULL;
    sort_key_t *keys = NULL;
    uint64_t prev = 0, seq;
    bool sorted = true;
    int r = -ENOMEM;

    for (size_t i = 0; i < n && sorted; i++) {
        memcpy(&seq, b + i * size, sizeof seq);
        sorted = i == 0 || seq >= prev;
        prev = seq;
    }
    if (sorted)
        return 0;
    keys = calloc(n, sizeof *keys);
    tmp = calloc(n, size);
    if (!keys || !tmp)
        goto fail;
    for (size_t i = 0; i < n; i++) {
        memcpy(&keys[i].seq, b + i * size, sizeof keys[i].seq);
        keys[i].order = i;
    }
    qsort(keys, n, sizeof *keys, cmp_key);
    for (size_t i = 0; i < n; i++)
        memcpy(tmp + i * size, b + keys[i].order * size, size);
    memcpy(b, tmp, n * size);
    r = 0;
fail:
    free(keys);
    free(tmp);
    return r;
}

static int cmp_module(const void *a, const void *b)
{
    const mt_module_t *x = *(const mt_module_t *const *)a, *y = *(const mt_module_t *const *)b;

    if (x->start != y->start)
        return x->start < y->start ? -1 : 1;
    if (x->load_epoch != y->load_epoch)
        return x->load_epoch < y->load_epoch ? -1 : 1;
    return x < y ? -1 : x > y;
}

/* Completes the first pass: points stacks at their frames, sorts markers and
 * time points, indexes modules, and sets up the cursors of the second. */
static int finish_load(mt_trace_t *t)
{
    size_t n = t->info.nmodules, off = 0;

    for (size_t i = 0; i < t->nstacks; i++) {
        t->stacks[i].frames = t->stacks[i].depth ? t->frames + off : NULL;
        off += t->stacks[i].depth;
    }
    if (sort_by_seq(t->markers, t->nmarkers, sizeof *t->markers) ||
        sort_by_seq(t->times, t->ntimes, sizeof *t->times))
        return -ENOMEM;
    if (n) {
        t->by_start = calloc(n, sizeof *t->by_start);
        t->max_end = calloc(n, sizeof *t->max_end);
        if (!t->by_start || !t->max_end)
            return -ENOMEM;
        for (size_t i = 0; i < n; i++)
            t->by_start[i] = &t->modules[i];
        qsort(t->by_start, n, sizeof *t->by_start, cmp_module);
        for (size_t i = 0; i < n; i++)
            t->max_end[i] = max_u64(i ? t->max_end[i - 1] : 0, t->by_start[i]->end);
    }
    if (t->nstreams) {
        t->cursors = calloc(t->nstreams, sizeof *t->cursors);
        t->heap = calloc(t->nstreams, sizeof *t->heap);
        if (!t->cursors || !t->heap)
            return -ENOMEM;
    }
    idmap_free(&t->module_ids);
    if (!t->streaming)
        idmap_free(&t->stream_ids);
    t->info.modules = t->modules;
    t->info.nstacks = t->nstacks;
    t->info.nlabels = t->nlabels;
    t->info.markers = t->markers;
    t->info.nmarkers = t->nmarkers;
    t->info.dropped = max_u64(t->lost, t->end_dropped);
    return 0;
}

/* Opens a trace and runs the first pass; see internal.h. The message of a
 * failure always starts with the file name. */
int mt__trace_open(const char *path, mt_trace_t **out, char *err, size_t errlen)
{
    mt_record_iter_t *it = NULL;
    mt_trace_t *t = NULL;
    mt_record_t rec;
    int r;

    *out = NULL;
    if ((r = mt__record_open(path, &it, err, errlen)))
        return r;
    t = calloc(1, sizeof *t);
    if (!t) {
        r = out_of_memory(it);
        goto fail;
    }
    t->fd = -1;
    t->held_bytes_max = HELD_BYTES_MAX;
    /* Frames of one zstd stream decompress in file order only: no index. */
    t->streaming = it->z.stream;
    while ((r = mt__record_next(it, &rec)) > 0)
        if ((r = load_record(t, it, &rec)))
            goto fail;
    if (r < 0)
        goto fail;
    t->records_end = it->off;
    if ((r = finish_load(t))) {
        out_of_memory(it);
        goto fail;
    }
    t->info.path = it->info.path;
    t->info.version = it->info.version;
    t->info.pid = it->info.pid;
    t->info.ppid = it->info.ppid;
    t->info.start_realtime_ns = it->info.start_realtime_ns;
    t->info.fork_seq = it->info.fork_seq;
    t->info.flags = it->info.flags;
    t->info.depth = it->info.depth;
    t->info.sample_bytes = it->info.sample_bytes;
    t->info.exe = it->info.exe;
    t->info.command = it->info.command;
    t->info.truncated = it->info.truncated;
    t->info.truncated_at = it->info.truncated_at;
    /* The trace takes over the strings and the descriptor. */
    t->path = it->path;
    t->exe = it->exe;
    t->command = it->command;
    t->fd = it->fd;
    t->z = it->z;
    memset(&it->z, 0, sizeof it->z);
    if (t->streaming) { /* the second pass decompresses with a context of its own */
        ZSTD_freeDCtx(t->z.dctx);
        free(t->z.cbuf);
        t->z.dctx = NULL;
        t->z.cbuf = NULL;
        t->z.ccap = 0;
    }
    it->path = it->exe = it->command = NULL;
    it->fd = -1;
    mt__record_close(it);
    *out = t;
    return 0;
fail:
    zmessage(&it->z, it->err, it->path);
    copy_error(err, errlen, it->err);
    mt__record_close(it);
    mt__trace_close(t);
    return r;
}

/* Frees everything the trace owns. NULL is allowed. */
void mt__trace_close(mt_trace_t *t)
{
    if (!t)
        return;
    if (t->fd >= 0)
        close(t->fd);
    zsrc_free(&t->z);
    for (size_t i = 0; i < t->info.nmodules; i++) {
        free(t->modules[i].path);
        free(t->modules[i].build_id);
    }
    free(t->modules);
    free(t->by_start);
    free(t->max_end);
    idmap_free(&t->module_ids);
    free(t->stacks);
    free(t->frames);
    idmap_free(&t->stack_ids);
    for (size_t i = 0; i < t->nlabels; i++)
        free(t->labels[i].text);
    free(t->labels);
    idmap_free(&t->label_ids);
    free(t->markers);
    free(t->times);
    mt__record_close(t->scan);
    for (size_t i = 0; i < t->nstreams; i++) {
        for (size_t k = 0; k < t->streams[i].nchunks; k++)
            free(t->streams[i].chunks[k].data);
        free(t->streams[i].chunks);
    }
    free(t->streams);
    idmap_free(&t->stream_ids);
    if (t->cursors)
        for (size_t i = 0; i < t->nstreams; i++)
            free(t->cursors[i].buf);
    free(t->cursors);
    free(t->heap);
    free(t->path);
    free(t->exe);
    free(t->command);
    free(t);
}

/* Returns the trace's summary; valid until mt__trace_close. */
const mt_trace_info_t *mt__trace_info(const mt_trace_t *t)
{
    return &t->info;
}

/* Returns the stack with the given index (the file's stack ids are mapped to
 * indices in order of definition, which the writer makes the same), or NULL
 * when the trace has no such stack. */
const mt_stack_t *mt__trace_stack(const mt_trace_t *t, uint32_t id)
{
    return id < t->nstacks ? &t->stacks[id] : NULL;
}

/* Returns label id's text, or NULL for an id no LABEL record defined. */
const char *mt__trace_label(const mt_trace_t *t, uint32_t id)
{
    uint32_t i;

    return idmap_get(&t->label_ids, id, &i) ? t->labels[i].text : NULL;
}

/* Returns a + (b - a) * num / den without overflow, den > 0 and num <= den. */
static uint64_t lerp(uint64_t a, uint64_t b, uint64_t num, uint64_t den)
{
    if (b >= a)
        return a + (uint64_t)((unsigned __int128)(b - a) * num / den);
    return a - (uint64_t)((unsigned __int128)(a - b) * num / den);
}

/* Returns the time of event seq, interpolated linearly between the TIME
 * points around it. Before the first point, the time is interpolated from
 * seq 0 at time 0; after the last, it is the last point's time; without any
 * TIME record, 0. */
uint64_t mt__trace_time_of(const mt_trace_t *t, uint64_t seq)
{
    const tpoint_t *p = t->times;
    size_t lo = 0, hi = t->ntimes;

    if (hi == 0)
        return 0;
    if (seq < p[0].seq)
        return lerp(0, p[0].time_ns, seq, p[0].seq);
    if (seq >= p[hi - 1].seq)
        return p[hi - 1].time_ns;
    /* find the last point with p.seq <= seq: then p[lo + 1].seq > seq */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (p[mid].seq <= seq)
            lo = mid;
        else
            hi = mid;
    }
    return lerp(p[lo].time_ns, p[lo + 1].time_ns, seq - p[lo].seq, p[lo + 1].seq - p[lo].seq);
}

/* Returns the module holding addr for a stack of the given epoch (start <=
 * addr < end, load_epoch <= epoch < unload_epoch), the latest loaded when
 * several do, or NULL. */
const mt_module_t *mt__trace_module_for(const mt_trace_t *t, uint64_t addr, uint64_t epoch)
{
    const mt_module_t *best = NULL;
    size_t lo = 0, hi = t->info.nmodules;

    /* hi: the number of modules starting at or below addr */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (t->by_start[mid]->start <= addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (size_t i = hi; i-- > 0 && t->max_end[i] > addr;) {
        const mt_module_t *m = t->by_start[i];
        if (addr < m->end && m->load_epoch <= epoch && epoch < m->unload_epoch &&
            (!best || m->load_epoch > best->load_epoch))
            best = m;
    }
    return best;
}

/* ---- the trace: second pass ---- */

/* Reads n bytes at offset off of the trace (of its uncompressed bytes when
 * it is compressed). */
static int read_at(mt_trace_t *t, uint8_t *buf, size_t n, uint64_t off)
{
    if (t->z.on)
        return zread_at(&t->z, t->fd, t->path, t->err, buf, n, off);
    return pread_all(t->fd, t->path, t->err, buf, n, off);
}

static int cursor_load(mt_trace_t *t, cursor_t *c, chunk_t *ch)
{
    int r;

    if (ch->data) { /* streaming: the cursor takes the copy over */
        t->held_bytes -= c->held_len;
        free(c->buf);
        c->buf = ch->data;
        c->cap = c->held_len = ch->events_len;
        ch->data = NULL;
        t->held--;
    } else {
        if (ch->events_len > c->cap) {
            uint8_t *p = realloc(c->buf, ch->events_len);
            if (!p)
                return errorf(t->err, t->path, -ENOMEM, "out of memory");
            c->buf = p;
            c->cap = ch->events_len;
        }
        if ((r = read_at(t, c->buf, ch->events_len, ch->events_off)))
            return r;
    }
    dec_start(&c->dec, c->buf, ch->events_len, ch->events_off, ch->count, ch->first_seq, t->info.version);
    c->tid = ch->tid;
    c->rec_off = ch->rec_off;
    c->count = ch->count;
    c->in_chunk = true;
    return 0;
}

/* Turns a stack id of the file into its index in t->stacks. Returns false
 * for an id the trace never defined. */
static inline bool map_stack(const mt_trace_t *t, uint32_t id, uint32_t *idx)
{
    if (t->stack_ids_sparse)
        return idmap_get(&t->stack_ids, id, idx);
    *idx = id; /* every file id is its index: only the range to check */
    return id < t->nstacks;
}

/* Decodes stream si's next event into its cursor. Returns 1, 0 when the
 * stream has no more, or a negative code. */
static int cursor_advance(mt_trace_t *t, uint32_t si)
{
    cursor_t *c = &t->cursors[si];
    stream_t *s = &t->streams[si];
    const uint8_t *start;
    uint64_t off;
    uint32_t idx;
    int r;

    while (c->dec.remaining == 0) {
        if (c->in_chunk && c->dec.p != c->dec.end)
            return errorf(t->err, t->path, -EINVAL,
                          "offset %" PRIu64 ": %zu bytes left after the %" PRIu64
                          " events of the chunk at offset %" PRIu64
                          " (more events than its count)",
                          dec_offset(&c->dec), (size_t)(c->dec.end - c->dec.p), c->count,
                          c->rec_off);
        c->in_chunk = false;
        if (c->next_chunk == s->nchunks) {
            t->held_bytes -= c->held_len;
            c->held_len = 0;
            free(c->buf);
            c->buf = NULL;
            c->cap = 0;
            return 0;
        }
        if ((r = cursor_load(t, c, &s->chunks[c->next_chunk++])))
            return r;
    }
    start = c->dec.p;
    if ((r = decode_event(&c->dec, &c->ev, t->err, t->path)))
        return r;
    /* The event's offset, for messages only. */
    off = c->dec.base_off + (uint64_t)(start - c->dec.base);
    if (c->have_seq && c->ev.seq < c->last_seq)
        return errorf(t->err, t->path, -EINVAL,
                      "offset %" PRIu64 ": stream %" PRIu64 ": seq %" PRIu64
                      " goes backwards (the stream's previous event has seq %" PRIu64 ")",
                      off, s->id, c->ev.seq, c->last_seq);
    c->have_seq = true;
    c->last_seq = c->ev.seq;
    if (mt_op_allocates(c->ev.op)) {
        if (!map_stack(t, c->ev.stack, &idx))
            return errorf(t->err, t->path, -EINVAL,
                          "offset %" PRIu64 ": %s event: stack id %" PRIu32
                          " was never defined",
                          off, mt__op_name(c->ev.op), c->ev.stack);
        c->ev.stack = idx;
    }
    c->ev.tid = c->tid;
    return 1;
}

static bool before(const mt_trace_t *t, uint32_t a, uint32_t b)
{
    uint64_t sa = t->cursors[a].ev.seq, sb = t->cursors[b].ev.seq;

    return sa < sb || (sa == sb && a < b);
}

static void heap_down(mt_trace_t *t, size_t i)
{
    uint32_t *h = t->heap;

    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        uint32_t tmp;
        if (l < t->nheap && before(t, h[l], h[m]))
            m = l;
        if (r < t->nheap && before(t, h[r], h[m]))
            m = r;
        if (m == i)
            return;
        tmp = h[i];
        h[i] = h[m];
        h[m] = tmp;
        i = m;
    }
}

static void heap_push(mt_trace_t *t, uint32_t si)
{
    uint32_t *h = t->heap;
    size_t i = t->nheap++;

    t->cursors[si].in_heap = true;
    h[i] = si;
    while (i > 0 && before(t, h[i], h[(i - 1) / 2])) {
        uint32_t tmp = h[i];
        h[i] = h[(i - 1) / 2];
        h[(i - 1) / 2] = tmp;
        i = (i - 1) / 2;
    }
}

/* ---- the second pass of a trace with SYNC records: reading ahead ---- */

/* Queues a copy of the events of the CHUNK the scan just read on its
 * stream, and starts the stream's cursor on it when it had nothing. */
static int scan_chunk(mt_trace_t *t, const mt_record_t *rec)
{
    mt_record_iter_t *it = t->scan;
    const uint8_t *src;
    stream_t *s;
    cursor_t *c;
    uint8_t *data;
    uint32_t si;
    void *p;
    int r;

    if (!idmap_get(&t->stream_ids, rec->u.chunk.stream, &si))
        return errorf(t->err, t->path, -EIO,
                      "offset %" PRIu64 ": stream %" PRIu64
                      " was not in the trace when it was opened (the file changed)",
                      rec->offset, rec->u.chunk.stream);
    if ((r = window(it, it->events_off, it->events_len, &src))) {
        snprintf(t->err, ERR_MAX, "%s", it->err);
        return r;
    }
    if (t->held_bytes + it->events_len > t->held_bytes_max)
        return errorf(t->err, t->path, -EINVAL,
                      "offset %" PRIu64 ": more than %" PRIu64 " bytes of events read ahead without"
                      " a SYNC record that lets them go (the trace is damaged)",
                      rec->offset, t->held_bytes_max);
    s = &t->streams[si];
    c = &t->cursors[si];
    if (c->next_chunk && c->next_chunk >= s->nchunks / 2) { /* drop the merged ones */
        memmove(s->chunks, s->chunks + c->next_chunk, (s->nchunks - c->next_chunk) * sizeof *s->chunks);
        s->nchunks -= c->next_chunk;
        c->next_chunk = 0;
    }
    p = grow(s->chunks, &s->cap, s->nchunks + 1, sizeof *s->chunks);
    data = malloc(it->events_len ? it->events_len : 1);
    if (p)
        s->chunks = p;
    if (!p || !data) {
        free(data);
        return errorf(t->err, t->path, -ENOMEM, "out of memory");
    }
    memcpy(data, src, it->events_len);
    s->chunks[s->nchunks++] = chunk_of(rec, it, data);
    t->held_bytes += it->events_len;
    if (++t->held > t->held_peak)
        t->held_peak = t->held;
    if (c->in_heap)
        return 0;
    if ((r = cursor_advance(t, si)) > 0)
        heap_push(t, si);
    return r < 0 ? r : 0;
}

/* Reads the next record of the second pass: a CHUNK is queued, a SYNC
 * raises t->sync; the others were loaded by the first pass. At the point
 * where the first pass stopped, sets t->scan_done. */
static int scan_step(mt_trace_t *t)
{
    mt_record_t rec;
    int r;

    if (!t->scan) {
        /* The file the first pass read, even if its name now leads
         * elsewhere or nowhere. */
        int fd = fcntl(t->fd, F_DUPFD_CLOEXEC, 0);
        if (fd < 0)
            return errorf(t->err, t->path, -errno, "%s", strerror(errno));
        if ((r = record_open_fd(t->path, fd, &t->scan, t->err, ERR_MAX)))
            return r;
        t->scan->z.no_index = true;
    }
    if ((r = mt__record_next(t->scan, &rec)) < 0) {
        snprintf(t->err, ERR_MAX, "%s", mt__record_error(t->scan));
        return r;
    }
    if (r == 0 || rec.offset >= t->records_end) {
        mt__record_close(t->scan);
        t->scan = NULL;
        t->scan_done = true;
        t->sync = UINT64_MAX;
        return 0;
    }
    if (rec.type == MT_REC_SYNC)
        t->sync = max_u64(t->sync, rec.u.sync.seq);
    else if (rec.type == MT_REC_CHUNK)
        return scan_chunk(t, &rec);
    return 0;
}

/* Restarts the merged event stream at the beginning. Cursor buffers are kept
 * for reuse; a failure of the previous pass is forgotten. */
void mt__trace_rewind(mt_trace_t *t)
{
    for (size_t i = 0; i < t->nstreams; i++) {
        cursor_t *c = &t->cursors[i];
        c->next_chunk = 0;
        c->in_chunk = false;
        c->dec.remaining = 0;
        c->have_seq = false;
        c->in_heap = false;
        if (t->streaming) {
            for (size_t k = 0; k < t->streams[i].nchunks; k++)
                free(t->streams[i].chunks[k].data);
            t->streams[i].nchunks = 0;
            free(c->buf);
            c->buf = NULL;
            c->cap = c->held_len = 0;
        }
    }
    if (t->streaming) {
        mt__record_close(t->scan);
        t->scan = NULL;
        t->held = 0;
        t->held_bytes = 0;
        t->sync = 0;
        t->scan_done = false;
    }
    t->nheap = 0;
    t->next_marker = 0;
    t->primed = false;
    t->pending = false;
    t->failed = 0;
    t->err[0] = '\0';
}

/* Stores the next event of the merged stream in *ev; see internal.h. The
 * stream whose event was returned last is advanced only on the next call, so
 * that every event returned is whole and an error comes exactly when the bad
 * event is due. Once failed, returns the same code until a rewind. */
int mt__trace_next(mt_trace_t *t, mt_event_t *ev)
{
    const mt_marker_t *m;
    int r;

    if (t->failed)
        return t->failed;
    if (!t->primed) {
        t->nheap = 0;
        for (uint32_t i = 0; i < t->nstreams; i++) {
            if ((r = cursor_advance(t, i)) < 0)
                goto fail;
            if (r > 0)
                heap_push(t, i);
        }
        t->primed = true;
    } else if (t->pending) {
        t->pending = false;
        if ((r = cursor_advance(t, t->heap[0])) < 0)
            goto fail;
        if (r == 0) {
            t->cursors[t->heap[0]].in_heap = false;
            t->heap[0] = t->heap[--t->nheap];
        }
        heap_down(t, 0);
    }
    /* Streaming: read on until no chunk still to come can hold an event
     * before the heap's first. */
    while (t->streaming && !t->scan_done &&
           (t->nheap == 0 || t->cursors[t->heap[0]].ev.seq >= t->sync))
        if ((r = scan_step(t)) < 0)
            goto fail;
    m = t->next_marker < t->nmarkers ? &t->markers[t->next_marker] : NULL;
    if (m && (t->nheap == 0 || m->seq <= t->cursors[t->heap[0]].ev.seq)) {
        memset(ev, 0, sizeof *ev);
        ev->seq = m->seq;
        ev->tid = m->tid;
        ev->label = m->label;
        ev->op = MT_EV_MARKER;
        t->next_marker++;
        return 1;
    }
    if (t->nheap == 0)
        return 0;
    *ev = t->cursors[t->heap[0]].ev;
    t->pending = true;
    return 1;
fail:
    zmessage(&t->z, t->err, t->path);
    t->failed = r;
    return r;
}

/* Continues the stream whose event mt__trace_next just returned (the heap
 * top, pending): while its next events, in the same chunk, still come
 * before every other stream's next event and before the next marker, they
 * need no heap work and are stored straight into evs (at most max).
 * Returns how many were stored. Stops at the end of the chunk and at
 * anything unusual (an event near the chunk's end, or malformed, or out of
 * order), which is left undecoded for mt__trace_next to deal with; an
 * event that is fine but comes after another stream's is left in the
 * cursor, the heap fixed, as cursor_advance would. */
static size_t run_on(mt_trace_t *t, mt_event_t *evs, size_t max)
{
    uint32_t top = t->heap[0], rival = NONE, idx;
    cursor_t *c = &t->cursors[top];
    uint64_t limit = UINT64_MAX; /* events up to limit (below it unless at_limit) stay first */
    bool at_limit = true;
    const uint8_t *next;
    size_t n = 0;

    if (t->nheap > 1)
        rival = t->heap[1];
    if (t->nheap > 2 && before(t, t->heap[2], rival))
        rival = t->heap[2];
    if (rival != NONE) {
        limit = t->cursors[rival].ev.seq;
        at_limit = top < rival;
    }
    if (t->next_marker < t->nmarkers) {
        uint64_t m = t->markers[t->next_marker].seq; /* a marker goes first on a tie */
        if (m < limit || (m == limit && at_limit)) {
            limit = m;
            at_limit = false;
        }
    }
    if (t->streaming && !t->scan_done && t->sync <= limit) {
        limit = t->sync; /* a chunk not read yet may hold seq sync */
        at_limit = false;
    }
    while (n < max && c->dec.remaining > 0) {
        mt_event_t *e = &evs[n];
        if (!(next = decode_fast(&c->dec, e)) || e->seq < c->last_seq)
            break;
        uint32_t raw_stack = e->stack;
        if (mt_op_allocates(e->op)) {
            if (!map_stack(t, e->stack, &idx))
                break;
            e->stack = idx;
        }
        e->tid = c->tid;
        dec_commit(&c->dec, e, next, raw_stack);
        c->last_seq = e->seq;
        if (e->seq > limit || (e->seq == limit && !at_limit)) {
            /* Another stream or a marker comes first: e waits in the cursor. */
            c->ev = *e;
            t->pending = false;
            heap_down(t, 0);
            return n;
        }
        n++;
    }
    if (n)
        c->ev = evs[n - 1];
    return n;
}

/* Stores up to max events of the merged stream in evs; see internal.h. */
int mt__trace_next_batch(mt_trace_t *t, mt_event_t *evs, size_t max)
{
    size_t n = 0;
    int r;

    if (max > INT_MAX)
        max = INT_MAX;
    while (n < max) {
        if ((r = mt__trace_next(t, &evs[n])) <= 0)
            return n ? (int)n : r; /* a failure stays and comes on the next call */
        if (evs[n++].op != MT_EV_MARKER)
            n += run_on(t, evs + n, max - n);
    }
    return (int)n;
}

/* Lowers the read-ahead limit; see internal.h. */
void mt__trace_limit_read_ahead(mt_trace_t *t, uint64_t bytes)
{
    t->held_bytes_max = bytes;
}

/* Returns the most chunks held at once; see internal.h. */
size_t mt__trace_chunks_held(const mt_trace_t *t)
{
    return t->held_peak;
}

/* Returns the message of the last failure of mt__trace_next, naming the file
 * and the offset, or "" when there was none. */
const char *mt__trace_error(const mt_trace_t *t)
{
    return t->err;
}
