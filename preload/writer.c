/* writer.c - the writer thread: drains every ring into the trace file.
 *
 * One thread, with all signals blocked, wakes every 10 ms (or when a ring is
 * half full, or a flush is requested), and per round: notes each ring's head,
 * writes new modules, labels and stacks, matches every free to the
 * allocation of its block by walking all rings' events in seq order (so the
 * trace names blocks by their allocation's seq instead of writing
 * addresses, include/mt_trace.h), encodes each ring's events as one CHUNK
 * record per ring (varints, deltas), then a SYNC record naming the seq
 * below which every event is now written (so the reader can merge the
 * rings in one pass) and a TIME record placing the current sequence number
 * in time. The file is written with plain write(2)
 * every round, so a killed program leaves a trace readable up to its last
 * round. Stacks are deduplicated across rings here, so each distinct stack is
 * written once. Only this thread touches the output buffer and the tables
 * marked "writer only".
 *
 * Unless MEMTRACK_COMPRESS=0, what a round wrote is compressed as one frame
 * of the trace, the next flushed part of one zstd stream, before it is
 * written (include/mt_trace.h), here, so that the program's threads never
 * wait for it. At level 1 that costs about 2 ms of
 * CPU per MB of trace, which the program may need on a small machine, so a
 * round that compresses poorly makes the writer store the next ones as they
 * are for a while (docs/performance.md).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

#include "internal.h"

#define OUT_CAP (4u << 20)
#define CHUNK_MAX_EVENTS 16384u
#define EVENT_MAX_BYTES (2 + 5 * MT_VARINT_MAX)
#define MAX_LABELS 32768u
#define LABEL_SLOTS 65536u

/* Shared with producers and signal handlers. */
static _Atomic uint32_t wake_word;
static _Atomic uint64_t flush_req, flush_done;
static _Atomic int stop_req;
static _Atomic int exec_req;
static _Atomic int running;
/* Snapshots asked for by a signal: each takes its sequence number and time
 * in the handler, so that its marker lands exactly where the signal came,
 * and waits in a free slot (seq 0) for the writer. SLOT_CLAIMED marks a
 * slot whose time is being written. */
#define SIGNAL_SLOTS 64
#define SLOT_CLAIMED UINT64_MAX
static _Atomic uint64_t signal_seq[SIGNAL_SLOTS];
static _Atomic uint64_t signal_time[SIGNAL_SLOTS];

/* Labels: interned by any thread under label_lock, read by the writer. */
typedef struct label {
    uint64_t hash;
    char text[];
} label_t;
static _Atomic int label_lock;
static label_t *labels[MAX_LABELS];
static uint32_t label_slots[LABEL_SLOTS]; /* id + 1 */
static _Atomic uint32_t label_count;
static mt_arena_t label_arena;

/* Writer only. The trace is written with pwrite at out_off, through a
 * descriptor moved high (programs reuse low numbers freely) and checked by
 * device and inode before every write, so that a program that closed it or
 * put a file of its own at its number never gets trace bytes. */
#define OUT_FD_MIN 1000
static int out_fd = -1;
static uint64_t out_off;
static dev_t out_dev;
static ino_t out_ino;
static char out_path[4096 + 32];
static uint8_t *out;
static size_t out_len;
/* Compression: the context and one frame header plus compressed round
 * and its checksum. */
#define ZOUT_CAP (MT_ZFRAME_HEADER_SIZE + ZSTD_COMPRESSBOUND(OUT_CAP) + 4)
_Static_assert(OUT_CAP <= MT_ZFRAME_MAX_RAW, "a round must fit in one frame");
static ZSTD_CCtx *zctx;
static uint8_t *zout;
/* Rounds that compress poorly are stored for a while: zstd would spend
 * CPU, which the program may need, for little (mallocstorm's random sizes
 * and pointers: 10 % more instructions for 13 % less trace). */
#define ZJUDGE_MIN 16384u /* smaller rounds are always compressed */
/* The stream is compressed at ZHIGH_LEVEL at least (sqlite's trace: 17 KB
 * against 21 KB at level 1; python's 0.30 against 0.39 MB, for 20 instead
 * of 7 ms of CPU on the core the program does not use), unless the last
 * round zstd was tried on was large and compressed poorly (the next try,
 * after rounds stored, is then cheap), or the program writes more than
 * ZFAST_ENTER a round on average (at 100 MB/s level 6 would hold the
 * program back), until it writes less than ZFAST_LEAVE. zstd takes a
 * stream's level when the stream starts, so the writer ends the zstd frame
 * and starts another to change it, which starts again without history. */
#define ZHIGH_LEVEL 6
#define ZFAST_ENTER (1u << 20)
#define ZFAST_LEAVE (256u << 10)
static uint64_t zround_avg; /* bytes of recent rounds, moving by 1/8 a round */
static bool zpoor, zfast;
#define ZSTORE_ROUNDS 15u /* stored after a poor one, before trying again */
static unsigned zstore_left;
static int zlevel; /* the context's level */
static uint64_t start_ns;
static uint64_t events_written, dropped_total;
static uint64_t sync_written; /* the last SYNC's seq */
static uint64_t time_seq = UINT64_MAX, time_written_ns; /* the last TIME's seq and time */
static uint64_t time_held_ns; /* the time of a TIME held back, or 0 */
static uint32_t labels_written;
static mt_arena_t writer_arena;
static const mt_stack_entry_t **gstacks[MT_STACK_BLOCKS * 4]; /* global id -> entry */
static uint32_t gstack_count;
static uint32_t *gslots; /* open addressing: global id + 1 */
static uint32_t gmask;
static uint64_t next_interval_ns;
static uint64_t last_rescan_ns;
static bool need_rescan;
static bool write_failed;
static pthread_t writer_thread;

/* Writer only: every live block's address and its allocation's seq, so
 * that a free can name the allocation it ends. Open addressing with linear
 * probing and backward-shift deletion; address 0 marks an empty slot. Its
 * memory grows with the program's live blocks (16 to 32 bytes each, 1 MiB
 * at least). */
typedef struct live_block {
    uint64_t ptr, seq;
} live_block_t;
/* 65,536 slots (1 MiB) at first: mallocstorm's 8,000 live blocks filled
 * 16,384 slots half, and probing and deleting in their runs took 15 % of
 * the writer's instructions; at an eighth full, 40 fewer an event. */
#define LIVE_MIN_BITS 16
#define LIVE_CACHED_BITS 16 /* a table this small stays in the cache: no prefetch */
static live_block_t *live;
static unsigned live_bits;
static uint64_t live_count;
static uint64_t live_limit; /* grow beyond this many blocks (3/4 full) */
/* The table's mapping and its bits in one word (the mapping is page
 * aligned), stored once the table is in use: a fork child unmaps what it
 * says, whatever step of a growth the parent's writer was at. */
static _Atomic uint64_t live_map;

/* A slot that holds back the seq order (its thread is inside a hook) is
 * waited for this long; a thread stuck there longer (stopped, or one that
 * left a hook by longjmp) no longer holds the other rings back. */
#define PENDING_PATIENCE_NS 200000000ull

/* What the ordering pass tells drain about an event, in the ring's note
 * for its slot: a kind in the top two bits, a seq below them. */
#define W_REF (1ull << 62)  /* a free of the block allocated at seq */
#define W_REPL (2ull << 62) /* an allocation over a block (seq) whose free was lost */
#define W_RAW (3ull << 62)  /* an allocation not remembered: named by its address */
#define W_LOST UINT64_MAX    /* an allocation whose stack could not be stored: left out */
#define W_KIND(note) ((note) & (3ull << 62))
#define W_SEQ(note) ((note) & ~(3ull << 62))

static void futex_wake(_Atomic uint32_t *w)
{
    syscall(SYS_futex, w, FUTEX_WAKE_PRIVATE, 1 << 30, NULL, NULL, 0);
}

bool mt__writer_is_self(void)
{
    return mt__tls.busy == 2;
}

void mt__writer_wake(void)
{
    atomic_fetch_add_explicit(&wake_word, 1, memory_order_release);
    futex_wake(&wake_word);
}

void mt__writer_request_snapshot(void)
{
    uint64_t seq = atomic_fetch_add(&mt__seq.next, 1);
    uint64_t now = mt__os_now_ns();
    for (unsigned i = 0; i < SIGNAL_SLOTS; i++) {
        uint64_t free_slot = 0;
        if (atomic_compare_exchange_strong(&signal_seq[i], &free_slot, SLOT_CLAIMED)) {
            atomic_store_explicit(&signal_time[i], now, memory_order_relaxed);
            atomic_store_explicit(&signal_seq[i], seq, memory_order_release);
            break;
        }
    }
    /* More than SIGNAL_SLOTS signals within one writer round: the rest
     * are merged into those already waiting. */
    mt__writer_wake();
}


static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

uint32_t mt__label_intern(const char *text)
{
    uint64_t h = hash_str(text);
    uint32_t id = UINT32_MAX;
    while (atomic_exchange_explicit(&label_lock, 1, memory_order_acquire))
        sched_yield();
    uint32_t i = (uint32_t)h & (LABEL_SLOTS - 1);
    for (; label_slots[i]; i = (i + 1) & (LABEL_SLOTS - 1)) {
        label_t *l = labels[label_slots[i] - 1];
        if (l->hash == h && !strcmp(l->text, text)) {
            id = label_slots[i] - 1;
            goto out;
        }
    }
    uint32_t n = atomic_load_explicit(&label_count, memory_order_relaxed);
    if (n >= MAX_LABELS)
        goto out;
    size_t len = strnlen(text, 4096);
    label_t *l = mt__arena_alloc(&label_arena, sizeof *l + len + 1);
    if (!l)
        goto out;
    l->hash = h;
    memcpy(l->text, text, len);
    l->text[len] = '\0';
    labels[n] = l;
    label_slots[i] = n + 1;
    id = n;
    atomic_store_explicit(&label_count, n + 1, memory_order_release);
out:
    atomic_store_explicit(&label_lock, 0, memory_order_release);
    return id;
}

/* ---- output buffer ---- */

static const char *reason(int err)
{
    const char *r = strerrordesc_np(err);
    return r ? r : "unknown error";
}

static void fail_write(int err)
{
    if (write_failed)
        return;
    write_failed = true;
    mt__say_all("cannot write the trace ", out_path, " (", reason(err), "); recording stopped");
    mt__process_disable(NULL);
}

/* Moves fd to a number at or above OUT_FD_MIN when the limit allows, closing
 * the old one. Returns the descriptor to use. */
static int move_high(int fd)
{
    int high = fcntl(fd, F_DUPFD_CLOEXEC, OUT_FD_MIN);
    if (high < 0)
        return fd;
    close(fd);
    return high;
}

/* Returns true when out_fd still refers to the trace file, reopening the
 * file by its path when the program closed the descriptor or put a file of
 * its own at its number (a shell's exec 5>FILE, a fork child closing every
 * descriptor before exec). */
static bool out_fd_valid(void)
{
    struct stat st;
    if (out_fd >= 0 && fstat(out_fd, &st) == 0 && st.st_dev == out_dev && st.st_ino == out_ino)
        return true;
    /* Not ours any more: never close it, it may be the program's now. */
    int fd = mt__os_open(out_path, O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0);
    if (fd < 0)
        return false;
    if (fstat(fd, &st) != 0 || st.st_dev != out_dev || st.st_ino != out_ino) {
        close(fd);
        return false;
    }
    out_fd = move_high(fd);
    return true;
}

static int out_write(const void *buf, size_t n)
{
    if (!out_fd_valid())
        return -EBADF;
    int rc = mt__os_pwrite_all(out_fd, buf, n, out_off);
    if (rc == 0)
        out_off += n;
    return rc;
}

/* Compresses the buffered records into the next frame and writes it: the
 * next bytes of the trace's zstd stream, flushed, so that the frame holds
 * the whole round (include/mt_trace.h), and the checksum of the records, so
 * that a reader tells a damaged frame from a good one. The stream's window
 * is kept small (MT_ZSTREAM_WINDOW_LOG, tables to match): about 1 MB for the
 * context, where independent frames of 30-60 KB rounds cost 22-25 % more
 * trace. */
static int out_write_frame(void)
{
    if (!zctx) {
        /* zstd allocates with malloc: on this thread, never recorded. */
        if (!(zctx = ZSTD_createCCtx()))
            return -ENOMEM;
        if (ZSTD_isError(ZSTD_CCtx_setParameter(zctx, ZSTD_c_windowLog, MT_ZSTREAM_WINDOW_LOG)) ||
            ZSTD_isError(ZSTD_CCtx_setParameter(zctx, ZSTD_c_hashLog, MT_ZSTREAM_WINDOW_LOG - 2)) ||
            ZSTD_isError(ZSTD_CCtx_setParameter(zctx, ZSTD_c_chainLog, MT_ZSTREAM_WINDOW_LOG - 2))) {
            ZSTD_freeCCtx(zctx);
            zctx = NULL;
            return -EINVAL;
        }
    }
    uint32_t stored = 0;
    size_t n;
    if (out_len >= ZJUDGE_MIN && zstore_left) {
        zstore_left--;
        memcpy(zout + MT_ZFRAME_HEADER_SIZE, out, out_len);
        n = out_len;
        stored = MT_ZFRAME_STORED;
    } else {
        zfast = zround_avg > ZFAST_ENTER || (zfast && zround_avg >= ZFAST_LEAVE);
        int level = zpoor || zfast ? mt__config.compress : ZHIGH_LEVEL;
        level = level > mt__config.compress ? level : mt__config.compress;
        ZSTD_outBuffer zo = {zout + MT_ZFRAME_HEADER_SIZE, ZOUT_CAP - MT_ZFRAME_HEADER_SIZE - 4, 0};
        size_t left;
        if (level != zlevel) {
            if (zlevel) { /* end the stream: a last empty block, 3 bytes */
                ZSTD_inBuffer none = {NULL, 0, 0};
                left = ZSTD_compressStream2(zctx, &zo, &none, ZSTD_e_end);
                if (ZSTD_isError(left) || left != 0)
                    return -ENOMEM;
            }
            if (ZSTD_isError(ZSTD_CCtx_setParameter(zctx, ZSTD_c_compressionLevel, level)))
                return -EINVAL;
            zlevel = level;
        }
        ZSTD_inBuffer in = {out, out_len, 0};
        left = ZSTD_compressStream2(zctx, &zo, &in, ZSTD_e_flush);
        if (ZSTD_isError(left) || left != 0)
            return -ENOMEM; /* it cannot run out of room in a bound-sized buffer */
        n = zo.pos;
        mt_put_u32(zout + MT_ZFRAME_HEADER_SIZE + n, mt_checksum(out, out_len));
        n += 4;
        /* Less than a quarter saved: not worth the CPU for a while. A
         * smaller round is not judged, and takes the stream back to its
         * higher level. */
        zpoor = out_len >= ZJUDGE_MIN && n > out_len - out_len / 4;
        if (out_len >= ZJUDGE_MIN)
            zstore_left = zpoor ? ZSTORE_ROUNDS : 0;
    }
    zround_avg = zround_avg - zround_avg / 8 + out_len / 8;
    mt_put_u32(zout, (uint32_t)n | stored);
    mt_put_u32(zout + 4, (uint32_t)out_len);
    return out_write(zout, MT_ZFRAME_HEADER_SIZE + n);
}

static void out_flush(void)
{
    if (out_len && !write_failed) {
        int rc = mt__config.compress ? out_write_frame() : out_write(out, out_len);
        if (rc < 0)
            fail_write(-rc);
    }
    out_len = 0;
}

static void out_reserve(size_t n)
{
    if (out_len + n > OUT_CAP)
        out_flush();
}

static void emit(uint8_t type, const uint8_t *payload, size_t n)
{
    out_reserve(MT_RECORD_HEADER_SIZE + n);
    if (MT_RECORD_HEADER_SIZE + n > OUT_CAP)
        return; /* cannot happen with the sizes used here */
    out[out_len] = type;
    mt_put_u32(out + out_len + 1, (uint32_t)n);
    memcpy(out + out_len + MT_RECORD_HEADER_SIZE, payload, n);
    out_len += MT_RECORD_HEADER_SIZE + n;
}

static uint64_t now_rel(void)
{
    return mt__os_now_ns() - start_ns;
}

static void put_time(uint64_t seq, uint64_t time_ns)
{
    uint8_t buf[2 * MT_VARINT_MAX], *p = buf;
    p = mt_put_varint(p, seq);
    p = mt_put_varint(p, time_ns);
    emit(MT_REC_TIME, buf, (size_t)(p - buf));
}

/* Places the current seq in time, once a round. While the program makes
 * no events the seq stays, and a TIME would say nothing new but cost a
 * write and a frame every 10 ms (a day of an idle program: a quarter of a
 * GB): it is held back, and the last one held back goes first when the seq
 * moves again, so that the events after it are placed after the quiet
 * spell, not spread over it. Once a second it goes anyway, so that a
 * program killed while quiet still shows how long it ran. */
#define TIME_QUIET_NS 1000000000ull
static void emit_time(void)
{
    uint64_t seq = atomic_load(&mt__seq.next), now = now_rel();

    if (seq == time_seq && now - time_written_ns < TIME_QUIET_NS) {
        time_held_ns = now;
        return;
    }
    if (time_held_ns && seq != time_seq)
        put_time(time_seq, time_held_ns);
    time_held_ns = 0;
    put_time(seq, now);
    time_seq = seq;
    time_written_ns = now;
}

/* Tells the reader that every event still to come has a seq of at least
 * seq (include/mt_trace.h), when that says more than the last SYNC did. */
static void emit_sync(uint64_t seq)
{
    uint8_t buf[MT_VARINT_MAX];

    if (seq <= sync_written)
        return;
    sync_written = seq;
    emit(MT_REC_SYNC, buf, (size_t)(mt_put_varint(buf, seq) - buf));
}

static void emit_marker(uint64_t seq, uint64_t time_ns, uint32_t tid, uint32_t label)
{
    uint8_t buf[4 * MT_VARINT_MAX], *p = buf;
    p = mt_put_varint(p, seq);
    p = mt_put_varint(p, time_ns);
    p = mt_put_varint(p, tid);
    p = mt_put_varint(p, label);
    emit(MT_REC_MARKER, buf, (size_t)(p - buf));
}

static void emit_labels(void)
{
    uint32_t n = atomic_load_explicit(&label_count, memory_order_acquire);
    for (; labels_written < n; labels_written++) {
        const label_t *l = labels[labels_written];
        size_t len = strlen(l->text);
        uint8_t buf[4096 + 3 * MT_VARINT_MAX], *p = buf;
        p = mt_put_varint(p, labels_written);
        p = mt_put_varint(p, len);
        memcpy(p, l->text, len);
        emit(MT_REC_LABEL, buf, (size_t)(p - buf) + len);
    }
}

/* Writes the markers of the snapshots signals asked for, in seq order. */
static void emit_signal_markers(void)
{
    uint64_t seqs[SIGNAL_SLOTS], times[SIGNAL_SLOTS];
    unsigned n = 0;
    for (unsigned i = 0; i < SIGNAL_SLOTS; i++) {
        uint64_t seq = atomic_load_explicit(&signal_seq[i], memory_order_acquire);
        if (seq == 0 || seq == SLOT_CLAIMED)
            continue;
        uint64_t t = atomic_load_explicit(&signal_time[i], memory_order_relaxed);
        atomic_store_explicit(&signal_seq[i], 0, memory_order_release);
        unsigned j = n++;
        for (; j > 0 && seqs[j - 1] > seq; j--) {
            seqs[j] = seqs[j - 1];
            times[j] = times[j - 1];
        }
        seqs[j] = seq;
        times[j] = t > start_ns ? t - start_ns : 0;
    }
    if (!n)
        return;
    uint32_t l = mt__label_intern("signal");
    emit_labels();
    for (unsigned i = 0; i < n && l != UINT32_MAX; i++)
        emit_marker(seqs[i], times[i], 0, l);
}

/* ---- stacks ---- */

static const mt_stack_entry_t *gstack(uint32_t gid)
{
    return gstacks[gid / MT_STACK_BLOCK][gid % MT_STACK_BLOCK];
}

static bool gtable_grow(void)
{
    uint32_t nmask = gmask ? gmask * 2 + 1 : 4095;
    uint32_t *slots = mt__os_map(((size_t)nmask + 1) * sizeof *slots);
    if (!slots)
        return false;
    for (uint32_t i = 0; gslots && i <= gmask; i++) {
        if (!gslots[i])
            continue;
        uint32_t j = (uint32_t)gstack(gslots[i] - 1)->hash & nmask;
        while (slots[j])
            j = (j + 1) & nmask;
        slots[j] = gslots[i];
    }
    if (gslots)
        munmap(gslots, ((size_t)gmask + 1) * sizeof *gslots);
    gslots = slots;
    gmask = nmask;
    return true;
}

static void emit_stack(uint32_t gid, const mt_stack_entry_t *e)
{
    uint8_t buf[(3 + MT_MAX_DEPTH) * MT_VARINT_MAX], *p = buf;
    p = mt_put_varint(p, gid);
    p = mt_put_varint(p, e->epoch);
    p = mt_put_varint(p, e->depth);
    for (uint32_t i = 0; i < e->depth; i++) {
        p = mt_put_varint(p, e->frames[i]);
        if (!need_rescan && !mt__modules_known(e->frames[i]))
            need_rescan = true;
    }
    emit(MT_REC_STACK, buf, (size_t)(p - buf));
}

/* Returns the global id of e, writing a STACK record the first time. */
static uint32_t global_stack(const mt_stack_entry_t *e)
{
    if (!gslots || (gstack_count + 1) * 2 > gmask) {
        /* A table that could not grow must never fill up: the probe would not end. */
        if (!gtable_grow() && (!gslots || (uint64_t)(gstack_count + 1) * 4 > (uint64_t)gmask * 3))
            return UINT32_MAX;
    }
    uint32_t i = (uint32_t)e->hash & gmask;
    for (; gslots[i]; i = (i + 1) & gmask) {
        const mt_stack_entry_t *g = gstack(gslots[i] - 1);
        if (g->hash == e->hash && g->depth == e->depth && g->epoch == e->epoch &&
            !memcmp(g->frames, e->frames, e->depth * sizeof e->frames[0]))
            return gslots[i] - 1;
    }
    uint32_t gid = gstack_count;
    if (gid >= MT_STACK_BLOCK * MT_STACK_BLOCKS * 4)
        return UINT32_MAX;
    const mt_stack_entry_t ***block = &gstacks[gid / MT_STACK_BLOCK];
    if (!*block && !(*block = mt__arena_alloc(&writer_arena, MT_STACK_BLOCK * sizeof(void *))))
        return UINT32_MAX;
    (*block)[gid % MT_STACK_BLOCK] = e;
    gslots[i] = gid + 1;
    gstack_count++;
    emit_stack(gid, e);
    return gid;
}

static void map_stacks(mt_ring_t *r)
{
    uint32_t n = atomic_load_explicit(&r->st_count, memory_order_acquire);
    for (; r->w_mapped < n; r->w_mapped++) {
        uint32_t id = r->w_mapped;
        uint32_t **block = &r->w_map[id / MT_STACK_BLOCK];
        if (!*block && !(*block = mt__arena_alloc(&writer_arena, MT_STACK_BLOCK * sizeof(uint32_t))))
            return;
        uint32_t gid = global_stack(mt__ring_stack(r, id));
        (*block)[id % MT_STACK_BLOCK] = gid == UINT32_MAX ? 0 : gid + 1;
    }
}

/* Returns the global id + 1 of ring-local stack id, 0 when unknown. */
static uint32_t mapped(const mt_ring_t *r, uint32_t id)
{
    if (id >= r->w_mapped)
        return 0;
    return r->w_map[id / MT_STACK_BLOCK][id % MT_STACK_BLOCK];
}

/* ---- blocks ---- */

static inline uint64_t live_home(uint64_t ptr)
{
    return (ptr * 0x9E3779B97F4A7C15ull) >> (64 - live_bits);
}

static __attribute__((noinline, cold)) bool live_grow(void)
{
    unsigned bits = live ? live_bits + 1 : LIVE_MIN_BITS;
    if (bits > 40)
        return false;
    live_block_t *old = live;
    uint64_t old_cap = old ? 1ull << live_bits : 0;
    size_t bytes = sizeof(live_block_t) << bits;
    /* Small pages: asking for huge ones (MADV_HUGEPAGE) made the kernel
     * compact memory at each fault, and the python benchmark slower. */
    live_block_t *t = mt__os_map(bytes);
    if (!t)
        return false;
    /* Have every page now: a lookup that reads an untouched page maps the
     * shared zero page, and the first write to it then costs a copy and a
     * TLB shootdown across the program's CPUs. The kernel's zeroed pages
     * need no writing (kernels before 5.14: written here). */
    if (madvise(t, bytes, MADV_POPULATE_WRITE) != 0)
        memset(t, 0, bytes);
    live = t;
    live_bits = bits;
    uint64_t mask = (1ull << bits) - 1;
    for (uint64_t i = 0; i < old_cap; i++) {
        if (!old[i].ptr)
            continue;
        uint64_t j = live_home(old[i].ptr);
        while (live[j].ptr)
            j = (j + 1) & mask;
        live[j] = old[i];
    }
    atomic_store_explicit(&live_map, (uint64_t)(uintptr_t)t | bits, memory_order_relaxed);
    if (old)
        munmap(old, sizeof *old * old_cap);
    return true;
}

/* Grows the table for one more block; false when it is full and cannot
 * grow (it then still takes blocks up to 7/8 full, so probes end). */
static __attribute__((noinline, cold)) bool live_room(void)
{
    uint64_t cap = live ? 1ull << live_bits : 0;
    if (live_grow()) {
        live_limit = (3ull << live_bits) / 4;
        return true;
    }
    return (live_count + 1) * 8 <= cap * 7;
}

/* Forgets the block at ptr allocated before seq `before`; returns the seq
 * of its allocation, or 0 when no such live block is known (a block at
 * ptr allocated later stays: this free reached the writer out of order). */
static inline uint64_t live_take(uint64_t ptr, uint64_t before)
{
    if (!live)
        return 0;
    uint64_t mask = (1ull << live_bits) - 1;
    uint64_t i = live_home(ptr);
    for (; live[i].ptr != ptr; i = (i + 1) & mask)
        if (!live[i].ptr)
            return 0;
    uint64_t seq = live[i].seq;
    if (seq >= before)
        return 0;
    /* Backward shift: move up every later entry of the run that may sit here. */
    for (uint64_t j = i;;) {
        j = (j + 1) & mask;
        if (!live[j].ptr)
            break;
        uint64_t k = live_home(live[j].ptr);
        if (((j - k) & mask) >= ((j - i) & mask)) {
            live[i] = live[j];
            i = j;
        }
    }
    live[i].ptr = 0;
    live_count--;
    return seq;
}

/* Remembers the block at ptr as allocated at seq. Returns 1; or 2 when
 * the address held an earlier block whose free never came (*old its
 * seq), which it replaces; or 0 when the block cannot be remembered: the
 * table is full and cannot grow (an earlier block at the address is then
 * forgotten, so that no later free is charged to it), or the table holds
 * a later block at the address (this allocation reached the writer out
 * of order). */
static inline int live_put(uint64_t ptr, uint64_t seq, uint64_t *old)
{
    if (MT_UNLIKELY(live_count >= live_limit) && !live_room()) {
        (void)live_take(ptr, seq);
        return 0;
    }
    uint64_t mask = (1ull << live_bits) - 1;
    uint64_t i = live_home(ptr);
    for (; live[i].ptr; i = (i + 1) & mask) {
        if (live[i].ptr == ptr) {
            if (live[i].seq > seq)
                return 0;
            *old = live[i].seq;
            live[i].seq = seq;
            return 2;
        }
    }
    live[i] = (live_block_t){ptr, seq};
    live_count++;
    return 1;
}

/* Decides what the event in slot pos of r says about its block, in seq
 * order, and notes it for drain. */
static inline __attribute__((always_inline)) void match_event(mt_ring_t *r, uint64_t pos)
{
    const mt_ring_event_t *ev = &r->slots[pos & r->mask];
    uint64_t note = 0;
    if (mt_op_allocates(ev->op)) {
        uint64_t old = 0;
        if (MT_UNLIKELY(!mapped(r, ev->stack))) {
            r->w_notes[pos & r->mask] = W_LOST; /* never written: never remembered */
            return;
        }
        switch (live_put(ev->ptr, ev->seq, &old)) {
        case 0:
            note = W_RAW;
            break;
        case 2:
            note = W_REPL | old;
            break;
        }
    } else if (mt_op_frees(ev->op)) {
        uint64_t seq = live_take(ev->ptr, ev->seq);
        if (seq)
            note = W_REF | seq;
    }
    r->w_notes[pos & r->mask] = note;
}

/* ---- putting the rings in order ---- */

/* A ring's events of this round not yet matched: [pos, end). */
typedef struct cursor {
    mt_ring_t *r;
    uint64_t pos, end, seq;
} cursor_t;

/* One cursor per ring with events, grown with the number of rings. */
static cursor_t *heap;
static size_t heap_cap;

static __attribute__((noinline, cold)) bool heap_grow(void)
{
    size_t cap = heap_cap ? heap_cap * 2 : 256;
    cursor_t *h = mt__os_map(cap * sizeof *h);
    if (!h)
        return false;
    if (heap) {
        memcpy(h, heap, heap_cap * sizeof *h);
        munmap(heap, heap_cap * sizeof *h);
    }
    heap = h;
    heap_cap = cap;
    return true;
}

/* With every committed event to be written (exit, exec, a flush), a slot
 * still pending would be matched after later events: wait for it a
 * little (a thread inside realloc commits within microseconds, unless
 * it is preempted: up to 100 ms in all, from the start of the round). */
#define ALL_WAIT_NS 100000000ull

static void wait_committed(const mt_ring_event_t *slot, uint64_t since)
{
    while (!__atomic_load_n(&slot->seq, __ATOMIC_ACQUIRE) && mt__os_now_ns() - since < ALL_WAIT_NS)
        sched_yield();
}
#define SUBROUND_EVENTS 4096 /* events per ring matched, then written */
#define MATCH_AHEAD 8 /* events between a prefetch and its use */

/* The seq of the event at c->pos, or UINT64_MAX when c has none left that
 * may be written this round (seq below horizon). */
static inline uint64_t cursor_seq(cursor_t *c, uint64_t horizon)
{
    if (c->pos < c->end) {
        uint64_t seq = __atomic_load_n(&c->r->slots[c->pos & c->r->mask].seq, __ATOMIC_ACQUIRE);
        if (seq && seq < horizon)
            return seq;
    }
    c->end = c->pos; /* a pending slot or a later seq: this ring stops here */
    return UINT64_MAX;
}

static void heap_down(cursor_t *h, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, m = i;
        if (l < n && h[l].seq < h[m].seq)
            m = l;
        if (l + 1 < n && h[l + 1].seq < h[m].seq)
            m = l + 1;
        if (m == i)
            return;
        cursor_t t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

/* Decides which events of each ring this round writes next (r->w_end) and
 * matches their frees to allocations, in seq order across all rings.
 * Returns true when it stopped short of the horizon to keep the step
 * small (SUBROUND_EVENTS), and should be called again after drain. Every
 * event whose seq is below the horizon is in a ring by now, committed,
 * except behind a pending slot, which lowers the horizon to just above the
 * last seq before it (a thread's seqs grow). With all set (exit, exec, a
 * flush), pending slots hold nothing back: what is committed is written. */
static bool order_rings(uint64_t horizon, bool all, uint64_t now, uint64_t *sync)
{
    size_t n = 0;
    uint64_t cap = UINT64_MAX;
    for (mt_ring_t *r = atomic_load(&mt__rings); r; r = r->next) {
        uint64_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
        uint64_t end = r->w_head;
        r->w_end = t;
        map_stacks(r); /* matching leaves out allocations whose stack is not stored */
        if (all && end > t)
            wait_committed(&r->slots[(end - 1) & r->mask], now);
        if (end > t && !__atomic_load_n(&r->slots[(end - 1) & r->mask].seq, __ATOMIC_ACQUIRE)) {
            end--;
            if (r->w_pend_pos != end + 1) {
                r->w_pend_pos = end + 1;
                r->w_pend_since = now;
            }
            uint64_t before = end > t ? r->slots[(end - 1) & r->mask].seq : r->w_last_seq;
            if (!all && now - r->w_pend_since < PENDING_PATIENCE_NS && before + 1 < horizon)
                horizon = before + 1;
        }
        if (end - t > SUBROUND_EVENTS) {
            uint64_t seq = r->slots[(t + SUBROUND_EVENTS) & r->mask].seq;
            if (seq && seq < cap)
                cap = seq;
        }
        if (end > t && (n < heap_cap || heap_grow()))
            heap[n++] = (cursor_t){r, t, end, 0};
        else if (end > t)
            r->w_end = UINT64_MAX; /* no memory for a cursor: matched below in ring order */
    }
    /* Every event below *sync is written by the end of this step, except
     * one whose slot was still pending past the patience: it comes later,
     * out of order, and names its block by address. */
    *sync = horizon < cap ? horizon : cap;
    if (all)
        horizon = UINT64_MAX;
    bool cut = cap < horizon;
    if (cut)
        horizon = cap;
    size_t live_n = 0;
    for (size_t i = 0; i < n; i++) {
        heap[i].seq = cursor_seq(&heap[i], horizon);
        if (heap[i].seq != UINT64_MAX)
            heap[live_n++] = heap[i];
        else
            heap[i].r->w_end = heap[i].pos;
    }
    n = live_n;
    for (size_t i = n / 2; i-- > 0;)
        heap_down(heap, n, i);
    while (n) {
        cursor_t *c = &heap[0];
        /* Take this ring's events while they come before every other ring's. */
        uint64_t next = UINT64_MAX;
        if (n > 1)
            next = heap[1].seq;
        if (n > 2 && heap[2].seq < next)
            next = heap[2].seq;
        do {
            /* The table is larger than the caches: ask for a later event's
             * slot while this one is matched. */
            if (live_bits > LIVE_CACHED_BITS && c->pos + MATCH_AHEAD < c->end)
                __builtin_prefetch(&live[live_home(c->r->slots[(c->pos + MATCH_AHEAD) & c->r->mask].ptr)], 1);
            match_event(c->r, c->pos);
            c->pos++;
            c->seq = cursor_seq(c, horizon);
        } while (c->seq < next);
        if (c->seq == UINT64_MAX) {
            c->r->w_end = c->pos;
            heap[0] = heap[--n];
        }
        heap_down(heap, n, 0);
    }
    /* Rings without a cursor (the cursors could not grow): their events
     * are matched in ring order, after the others; the table's seq checks
     * keep that from charging a free to a later block. */
    for (mt_ring_t *r = atomic_load(&mt__rings); r; r = r->next) {
        if (r->w_end != UINT64_MAX)
            continue;
        cursor_t c = {r, atomic_load_explicit(&r->tail, memory_order_relaxed), r->w_head, 0};
        while (cursor_seq(&c, horizon) != UINT64_MAX)
            match_event(r, c.pos++);
        r->w_end = c.pos;
    }
    return cut;
}

/* ---- rings ---- */

typedef struct pending_marker {
    uint64_t seq, time;
    uint32_t label;
} pending_marker_t;

/* Writes the events of r that order_rings released, [tail, w_end). */
static void drain(mt_ring_t *r)
{
    static pending_marker_t markers[256];
    uint64_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
    uint64_t h = r->w_end;
    uint32_t tid = atomic_load_explicit(&r->tid, memory_order_relaxed);
    uint64_t lost = 0; /* order_rings mapped the ring's stacks */
    bool freed = t < h;
    while (t < h) {
        uint64_t k = h - t < CHUNK_MAX_EVENTS ? h - t : CHUNK_MAX_EVENTS;
        size_t nmarkers = 0;
        out_reserve(MT_RECORD_HEADER_SIZE + 4 * MT_VARINT_MAX + k * EVENT_MAX_BYTES);
        uint8_t *rec = out + out_len;
        uint8_t *p = rec + MT_RECORD_HEADER_SIZE;
        p = mt_put_varint(p, r->index);
        p = mt_put_varint(p, tid);
        uint8_t *count_at = p;
        p += 5; /* the count, as a padded 5-byte varint, filled in below */
        uint64_t first_seq = r->slots[t & r->mask].seq;
        uint32_t count = 0;
        mt_chunk_state_t st;
        mt_chunk_state_init(&st, first_seq);
        p = mt_put_varint(p, first_seq);
        for (uint64_t i = 0; i < k; i++) {
            const mt_ring_event_t *ev = &r->slots[(t + i) & r->mask];
            unsigned op = ev->op;
            uint64_t note = r->w_notes[(t + i) & r->mask];
            if (op == MT_EV_MARKER_OP) {
                if (nmarkers < sizeof markers / sizeof markers[0])
                    markers[nmarkers++] = (pending_marker_t){
                        ev->seq, ev->size > start_ns ? ev->size - start_ns : 0, (uint32_t)ev->ptr};
                continue;
            }
            if (op == MT_EV_NOP_OP)
                continue;
            if (mt_op_allocates(op)) {
                uint32_t gid = 0;
                if (note == W_LOST || !(gid = mapped(r, ev->stack))) {
                    lost++; /* its stack could not be stored */
                    continue;
                }
                p = mt_put_alloc_v5(p, &st, op, ev->seq, ev->size, gid - 1,
                                    W_KIND(note) == W_REPL ? W_SEQ(note) : 0,
                                    W_KIND(note) == W_RAW ? ev->ptr : 0);
            } else {
                p = mt_put_free_v5(p, &st, op, ev->seq, W_KIND(note) == W_REF ? W_SEQ(note) : 0, ev->ptr);
            }
            count++;
        }
        r->w_last_seq = r->slots[(t + k - 1) & r->mask].seq;
        for (int b = 0; b < 5; b++)
            count_at[b] = (uint8_t)(((count >> (7 * b)) & 0x7f) | (b < 4 ? 0x80 : 0));
        if (count) {
            rec[0] = MT_REC_CHUNK;
            mt_put_u32(rec + 1, (uint32_t)(p - rec - MT_RECORD_HEADER_SIZE));
            out_len += (size_t)(p - rec);
            events_written += count;
        }
        for (size_t m = 0; m < nmarkers; m++)
            emit_marker(markers[m].seq, markers[m].time, tid, markers[m].label);
        t += k;
        atomic_store_explicit(&r->tail, t, memory_order_release);
    }
    if (freed)
        mt__ring_room_made();
    uint64_t dropped = atomic_load_explicit(&r->dropped, memory_order_relaxed) + lost;
    if (lost)
        atomic_fetch_add_explicit(&r->dropped, lost, memory_order_relaxed);
    if (dropped != r->w_dropped) {
        uint8_t buf[2 * MT_VARINT_MAX], *p = buf;
        p = mt_put_varint(p, r->index);
        p = mt_put_varint(p, dropped - r->w_dropped);
        emit(MT_REC_LOST, buf, (size_t)(p - buf));
        dropped_total += dropped - r->w_dropped;
        r->w_dropped = dropped;
    }
    if (atomic_load_explicit(&r->state, memory_order_acquire) == MT_RING_EXITED &&
        atomic_load_explicit(&r->head, memory_order_acquire) == t)
        atomic_store_explicit(&r->state, MT_RING_FREE, memory_order_release);
}

/* One round; with all, every committed event is written (exit, exec, a
 * flush), whatever a thread inside a hook still holds. */
static void round_once(bool all)
{
    uint64_t now = mt__os_now_ns();
    /* Read before the heads: every seq below it has its slot reserved. */
    uint64_t horizon = atomic_load_explicit(&mt__seq.next, memory_order_acquire);
    for (mt_ring_t *r = atomic_load(&mt__rings); r; r = r->next)
        r->w_head = atomic_load_explicit(&r->head, memory_order_acquire);
    mt__modules_emit(emit);
    emit_labels();
    emit_signal_markers();
    if (next_interval_ns && now >= next_interval_ns) {
        uint32_t l = mt__label_intern("interval");
        emit_labels();
        if (l != UINT32_MAX)
            emit_marker(atomic_fetch_add(&mt__seq.next, 1), now - start_ns, 0, l);
        next_interval_ns = now + (uint64_t)mt__config.snapshot_interval_ms * 1000000ull;
    }
    /* In steps of a few thousand events per ring, so that the events
     * matched are still in the cache when they are written. */
    bool more;
    uint64_t sync = 0;
    do {
        uint64_t step_sync;
        more = order_rings(horizon, all, now, &step_sync);
        sync = step_sync > sync ? step_sync : sync;
        for (mt_ring_t *r = atomic_load(&mt__rings); r; r = r->next)
            if (r->w_end != atomic_load_explicit(&r->tail, memory_order_relaxed) ||
                atomic_load_explicit(&r->st_count, memory_order_relaxed) != r->w_mapped ||
                atomic_load_explicit(&r->state, memory_order_relaxed) == MT_RING_EXITED ||
                atomic_load_explicit(&r->dropped, memory_order_relaxed) != r->w_dropped)
                drain(r);
    } while (more);
    /* Once a round, not once a step: the reader then holds a round's
     * chunks (what the rings held when it began), and a program with one
     * thread, whose steps are all of 4096 events, writes a fifth of the
     * SYNCs. */
    emit_sync(sync);
    emit_time();
    out_flush();
    if (need_rescan && now - last_rescan_ns > 50000000ull) {
        need_rescan = false;
        last_rescan_ns = now;
        mt__modules_scan();
    }
}

_Atomic int mt__fatal_signal;

static void emit_end(void)
{
    uint8_t buf[6 * MT_VARINT_MAX], *p = buf;
    p = mt_put_varint(p, atomic_load(&mt__seq.next));
    p = mt_put_varint(p, now_rel());
    p = mt_put_varint(p, events_written);
    p = mt_put_varint(p, dropped_total);
    p = mt_put_varint(p, gstack_count);
    int sig = atomic_load(&mt__fatal_signal);
    if (sig)
        p = mt_put_varint(p, (uint64_t)sig);
    emit(MT_REC_END, buf, (size_t)(p - buf));
}

static void *writer_main(void *arg)
{
    (void)arg;
    mt__tls.busy = 2; /* the writer's own allocations are never recorded */
    for (;;) {
        uint32_t w = atomic_load_explicit(&wake_word, memory_order_acquire);
        uint64_t req = atomic_load(&flush_req);
        int stop = atomic_load(&stop_req);
        int exec = atomic_exchange(&exec_req, 0);
        round_once(stop || exec || req != atomic_load(&flush_done));
        if (exec && !stop) {
            /* The image is about to be replaced: end the trace now. Should
             * the exec fail, later records and a later END follow. */
            emit_end();
            out_flush();
        }
        if (stop) {
            /* A last pass for what producers pushed while the state changed. */
            round_once(true);
            emit_end();
            out_flush();
            if (out_fd_valid())
                close(out_fd);
            out_fd = -1;
            break;
        }
        if (write_failed)
            break;
        atomic_store(&flush_done, req);
        futex_wake((_Atomic uint32_t *)&flush_done);
        if (atomic_load(&flush_req) != req || atomic_load(&stop_req))
            continue;
        uint64_t wait_ns = 10000000ull;
        if (next_interval_ns) {
            uint64_t now = mt__os_now_ns();
            wait_ns = next_interval_ns > now && next_interval_ns - now < wait_ns ? next_interval_ns - now : (next_interval_ns > now ? wait_ns : 0);
        }
        if (wait_ns) {
            struct timespec ts = {(time_t)(wait_ns / 1000000000ull), (long)(wait_ns % 1000000000ull)};
            syscall(SYS_futex, &wake_word, FUTEX_WAIT_PRIVATE, w, &ts, NULL, 0);
        }
    }
    /* Release every flusher, including those that asked after req. */
    atomic_store(&running, 0);
    atomic_store(&flush_done, UINT64_MAX);
    futex_wake((_Atomic uint32_t *)&flush_done);
    return NULL;
}

void mt__writer_flush(mt_flush_t kind, unsigned timeout_ms)
{
    if (!atomic_load(&running) || mt__writer_is_self())
        return;
    if (kind == MT_FLUSH_EXEC)
        atomic_store(&exec_req, 1);
    if (kind == MT_FLUSH_FINAL) {
        atomic_store(&mt__state, MT_STATE_DONE);
        atomic_store(&stop_req, 1);
    }
    uint64_t req = atomic_fetch_add(&flush_req, 1) + 1;
    mt__writer_wake();
    uint64_t deadline = mt__os_now_ns() + (uint64_t)timeout_ms * 1000000ull;
    for (;;) {
        uint64_t done = atomic_load(&flush_done);
        if (done >= req || !atomic_load(&running))
            break;
        uint64_t now = mt__os_now_ns();
        if (now >= deadline)
            break;
        struct timespec ts = {0, 5000000};
        /* flush_done's low word changes with every round: wait on it. */
        syscall(SYS_futex, &flush_done, FUTEX_WAIT_PRIVATE, (uint32_t)done, &ts, NULL, 0);
    }
}

/* ---- start ---- */

static size_t read_file(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    size_t n = 0;
    if (fd < 0)
        return 0;
    while (n < cap) {
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    return n;
}

static void append(char *dst, size_t cap, size_t *n, const char *s)
{
    while (*s && *n + 1 < cap)
        dst[(*n)++] = *s++;
    dst[*n] = '\0';
}

/* Expands %p (pid), %e (executable name) and %% in the configured output. */
static void expand_output(char *dst, size_t cap, const char *exe)
{
    const char *base = strrchr(exe, '/');
    base = base ? base + 1 : exe;
    size_t n = 0;
    char num[24], one[2] = {0, 0};
    dst[0] = '\0';
    for (const char *s = mt__config.output; *s; s++) {
        if (s[0] == '%' && s[1] == 'p') {
            append(dst, cap, &n, mt__os_utoa((uint64_t)mt__pid, num));
            s++;
        } else if (s[0] == '%' && s[1] == 'e') {
            append(dst, cap, &n, *base ? base : "unknown");
            s++;
        } else if (s[0] == '%' && s[1] == '%') {
            append(dst, cap, &n, "%");
            s++;
        } else {
            one[0] = *s;
            append(dst, cap, &n, one);
        }
    }
}

/* Creates the trace file, never overwriting: an existing name gets a number
 * before its .mtrace extension. Returns the fd or -errno. */
static int create_output(const char *exe)
{
    char base[sizeof out_path];
    expand_output(base, sizeof base, exe);
    size_t len = strlen(base);
    size_t ext = len >= 7 && !strcmp(base + len - 7, ".mtrace") ? len - 7 : len;
    for (unsigned i = 0; i < 1000; i++) {
        if (i == 0) {
            memcpy(out_path, base, len + 1);
        } else {
            char num[24];
            size_t n = 0;
            out_path[0] = '\0';
            memcpy(out_path, base, ext);
            out_path[ext] = '\0';
            n = ext;
            append(out_path, sizeof out_path, &n, ".");
            append(out_path, sizeof out_path, &n, mt__os_utoa(i, num));
            append(out_path, sizeof out_path, &n, base + ext);
        }
        int fd = mt__os_open(out_path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        struct stat st;
        if (fd == -EEXIST && lstat(out_path, &st) == 0 && S_ISLNK(st.st_mode))
            return -ELOOP; /* never follow, and never step around, a planted link */
        if (fd != -EEXIST)
            return fd;
    }
    return -EEXIST;
}

static int write_header(bool forked, uint64_t fork_seq, const char *exe, size_t exe_len)
{
    static char cmd[8192];
    size_t cmd_len = read_file("/proc/self/cmdline", cmd, sizeof cmd);
    while (cmd_len && cmd[cmd_len - 1] == '\0')
        cmd_len--;
    mt_trace_header_t h;
    struct timespec rt;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, MT_TRACE_MAGIC, MT_TRACE_MAGIC_LEN);
    clock_gettime(CLOCK_REALTIME, &rt);
    h.version = MT_TRACE_VERSION;
    h.pid = (uint64_t)mt__pid;
    h.ppid = (uint64_t)getppid();
    h.start_realtime_ns = (uint64_t)rt.tv_sec * 1000000000ull + (uint64_t)rt.tv_nsec;
    h.fork_seq = fork_seq;
    h.flags = (forked ? MT_TRACE_F_FORKED : 0) | (mt__config.compress ? MT_TRACE_F_ZSTD | MT_TRACE_F_ZSTREAM : 0);
    h.depth = mt__config.depth;
    if (mt__config.sample_bytes) {
        h.flags |= MT_TRACE_F_SAMPLED;
        h.sample_bytes = mt__config.sample_bytes;
    }
    uint8_t *p = out + sizeof h;
    p = mt_put_varint(p, exe_len);
    memcpy(p, exe, exe_len);
    p += exe_len;
    p = mt_put_varint(p, cmd_len);
    memcpy(p, cmd, cmd_len);
    p += cmd_len;
    h.header_size = (uint32_t)(p - out);
    memcpy(out, &h, sizeof h);
    out_len = h.header_size;
    int rc = out_write(out, out_len);
    out_len = 0;
    return rc;
}

int mt__writer_start(bool forked, uint64_t fork_seq)
{
    static char exe[4096];
    ssize_t exe_len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    int rc;
    if (exe_len < 0)
        exe_len = 0;
    exe[exe_len] = '\0';
    if (!out && !(out = mt__os_map(OUT_CAP)))
        return -ENOMEM;
    if (mt__config.compress && !zout && !(zout = mt__os_map(ZOUT_CAP)))
        return -ENOMEM;
    out_len = 0;
    write_failed = false;
    start_ns = mt__os_now_ns();
    rc = create_output(exe);
    if (rc < 0) {
        mt__say_all("cannot create the trace file ", out_path[0] ? out_path : mt__config.output, " (",
                    rc == -ELOOP ? "it is a symbolic link" : reason(-rc), "); the program runs unprofiled");
        return rc;
    }
    struct stat st;
    out_off = 0;
    out_fd = move_high(rc);
    if (fstat(out_fd, &st) != 0) {
        rc = -errno;
        goto fail;
    }
    out_dev = st.st_dev;
    out_ino = st.st_ino;
    rc = write_header(forked, fork_seq, exe, (size_t)exe_len);
    if (rc < 0)
        goto fail;
    if (mt__config.snapshot_interval_ms)
        next_interval_ns = start_ns + (uint64_t)mt__config.snapshot_interval_ms * 1000000ull;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    atomic_store(&running, 1);
    atomic_store(&stop_req, 0);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    /* Detached: nobody joins it, and its end must free what it holds. */
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    rc = -pthread_create(&writer_thread, &attr, writer_main, NULL);
    pthread_attr_destroy(&attr);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc < 0) {
        atomic_store(&running, 0);
        goto fail;
    }
    return 0;
fail:
    mt__say_all("cannot start recording into ", out_path, " (", reason(-rc), "); the program runs unprofiled");
    close(out_fd);
    unlink(out_path);
    out_fd = -1;
    return rc;
}

void mt__writer_after_fork(void)
{
    /* The parent's writer thread does not exist here, and its file belongs
     * to the parent: forget both without closing anything shared. */
    if (out_fd >= 0)
        close(out_fd);
    out_fd = -1;
    atomic_store(&running, 0);
    atomic_store(&stop_req, 0);
    atomic_store(&exec_req, 0);
    atomic_store(&flush_req, 0);
    atomic_store(&flush_done, 0);
    for (unsigned i = 0; i < SIGNAL_SLOTS; i++)
        atomic_store(&signal_seq[i], 0);
    atomic_store(&label_lock, 0);
    out_len = 0;
    /* The parent's writer may have been inside zstd at the fork: leave its
     * context alone (a small leak, once per fork) and make a fresh one. */
    zctx = NULL;
    zlevel = 0;
    zstore_left = 0;
    zround_avg = 0;
    zpoor = zfast = false;
    events_written = dropped_total = 0;
    sync_written = 0;
    time_seq = UINT64_MAX;
    time_written_ns = time_held_ns = 0;
    labels_written = 0;
    gstack_count = 0;
    if (gslots)
        memset(gslots, 0, ((size_t)gmask + 1) * sizeof *gslots);
    need_rescan = false;
    /* The parent's blocks are the parent's: here their frees are frees of
     * blocks the trace never saw allocated. */
    uint64_t map = atomic_load_explicit(&live_map, memory_order_relaxed);
    if (map)
        munmap((void *)(uintptr_t)(map & ~(uint64_t)0xfff), sizeof(live_block_t) << (map & 0xfff));
    atomic_store_explicit(&live_map, 0, memory_order_relaxed);
    live = NULL;
    live_bits = 0;
    live_count = 0;
    live_limit = 0;
}
