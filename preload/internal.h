/* internal.h - declarations shared by the files of libmemtrack.so.
 *
 * The library's moving parts: hooks.c defines the allocation functions and
 * turns each call into ring events; ring.c gives every thread a lock-free
 * single-producer ring and interns its call stacks; writer.c drains the rings
 * from one thread and encodes them into the trace (include/mt_trace.h);
 * unwind.c captures stacks; modules.c keeps the module map; process.c handles
 * start, fork, exec, exit and fatal signals; config.c reads MEMTRACK_*; os.c
 * wraps the system calls whose failure must be injectable in tests.
 *
 * Rules for everything reachable from a hook: no stdio, nothing that
 * allocates through the hooks, no lock on the allocation path, errno kept.
 */
#ifndef MT_PRELOAD_INTERNAL_H
#define MT_PRELOAD_INTERNAL_H

#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "mt_trace.h"

#define MT_HIDDEN __attribute__((visibility("hidden")))
#define MT_LIKELY(x) __builtin_expect(!!(x), 1)
#define MT_UNLIKELY(x) __builtin_expect(!!(x), 0)

#define MT_MAX_DEPTH 256

/* Recording state of the whole process. */
enum {
    MT_STATE_OFF = 0,    /* not started, secure mode, or disabled after a failure */
    MT_STATE_ACTIVE = 1, /* recording */
    MT_STATE_DONE = 2,   /* the final flush happened; hooks only forward */
};

/* ---- config.c ---- */

typedef struct mt_config {
    char output[4096];     /* MEMTRACK_OUTPUT, unexpanded */
    unsigned depth;        /* MEMTRACK_DEPTH */
    unsigned ring_events;  /* MEMTRACK_RING_EVENTS, a power of two */
    bool unwind_fp;        /* MEMTRACK_UNWIND=fp */
    bool unwind_libunwind; /* MEMTRACK_UNWIND=libunwind: never the cached CFI walk */
    int snapshot_signal;   /* MEMTRACK_SNAPSHOT_SIGNAL, 0 when unset */
    unsigned snapshot_interval_ms; /* MEMTRACK_SNAPSHOT_INTERVAL_MS, 0 when unset */
    unsigned ring_wait_ms; /* how long a producer waits on a full ring */
    uint64_t sample_bytes; /* MEMTRACK_SAMPLE_BYTES: mean bytes between samples, 0 = record all */
    int compress;          /* MEMTRACK_COMPRESS: zstd level, 0 = uncompressed */
    /* Fault injection, for tests only: fail the Nth call (1-based), 0 = never. */
    unsigned long fault_mmap, fault_open, fault_write;
} mt_config_t;

extern mt_config_t mt__config MT_HIDDEN;

/* Reads every MEMTRACK_* variable with secure_getenv into mt__config. A bad
 * value gets one warning on stderr and the default. */
MT_HIDDEN void mt__config_load(void);

/* ---- os.c ---- */

/* Writes a message of n bytes to stderr, prefixed "memtrack: ". Never allocates. */
MT_HIDDEN void mt__say(const char *msg);

/* Writes one line to stderr: "memtrack: " and the n strings (NULLs skipped). */
MT_HIDDEN void mt__sayv(const char *const *parts, size_t n);

/* mt__sayv over its arguments: mt__say_all("cannot ", path, "; ..."). */
#define mt__say_all(...) \
    mt__sayv((const char *const[]){__VA_ARGS__}, sizeof((const char *const[]){__VA_ARGS__}) / sizeof(char *))

/* mmap of anonymous private memory, with fault injection. NULL on failure. */
MT_HIDDEN void *mt__os_map(size_t size);

/* open(2) with fault injection; returns the fd or -errno. */
MT_HIDDEN int mt__os_open(const char *path, int flags, mode_t mode);

/* Writes all n bytes to fd at offset off with pwrite(2), retrying short
 * writes and EINTR, with fault injection. Returns 0 or -errno. */
MT_HIDDEN int mt__os_pwrite_all(int fd, const void *buf, size_t n, uint64_t off);

/* Monotonic time in ns. */
MT_HIDDEN uint64_t mt__os_now_ns(void);

/* Formats v in decimal into buf (>= 21 bytes); returns buf. */
MT_HIDDEN char *mt__os_utoa(uint64_t v, char *buf);

/* A bump allocator over private mmap'ed memory, for the library's own data:
 * never reaches the hooks. Not thread-safe: each arena has one owner. */
typedef struct mt_arena {
    uint8_t *cur, *end;
} mt_arena_t;

/* Returns size bytes, 16-aligned and zeroed, or NULL when mmap fails. */
MT_HIDDEN void *mt__arena_alloc(mt_arena_t *a, size_t size);

/* ---- ring.c ---- */

/* The ring op of a snapshot marker; never written into a CHUNK. */
#define MT_EV_MARKER_OP 0
#define MT_EV_NOP_OP 0xffu

/* One recorded event as the producer stores it. op 0 is a snapshot marker
 * (ptr = label id, size = time in ns), MT_EV_NOP_OP a reserved slot whose
 * call failed (nothing to write). seq 0: reserved, not yet committed. */
typedef struct mt_ring_event {
    uint64_t seq;
    uint64_t ptr;
    uint64_t size;
    uint32_t stack;
    uint32_t op;
} mt_ring_event_t;

/* A stack interned by a ring: ids are per ring, dense from 0. */
typedef struct mt_stack_entry {
    uint64_t hash;
    uint64_t epoch;
    uint32_t depth;
    uint32_t pad;
    uint64_t frames[];
} mt_stack_entry_t;

#define MT_STACK_BLOCK 4096u
#define MT_STACK_BLOCKS 1024u /* at most 4M distinct stacks per ring */

enum { MT_RING_FREE = 0, MT_RING_ACTIVE = 1, MT_RING_EXITED = 2 };

typedef struct mt_ring {
    /* Producer side. */
    _Alignas(64) _Atomic uint64_t head;
    uint64_t cached_tail;
    uint64_t *st_slots;   /* open addressing: hash bits and stack id + 1 (ring.c), 0 = empty */
    uint32_t st_mask;
    _Atomic uint32_t st_count; /* ids published to the writer */
    mt_stack_entry_t **st_blocks[MT_STACK_BLOCKS];
    mt_arena_t arena;     /* producer-owned memory for stack entries */
    void *uw_cache;       /* unwind.c's rules per return address, producer-owned */
    /* Consumer (writer) side. */
    _Alignas(64) _Atomic uint64_t tail;
    uint64_t w_head;      /* head seen at the start of the writer's round */
    uint32_t *w_map[MT_STACK_BLOCKS]; /* local stack id -> global id + 1 */
    uint32_t w_mapped;    /* local ids below this are mapped */
    uint64_t w_dropped;   /* drops already written as LOST */
    uint64_t *w_notes;    /* per slot: what the ordering pass found (writer.c) */
    uint64_t w_end;       /* this round's events in seq order end here */
    uint64_t w_last_seq;  /* the seq of the last event written */
    uint64_t w_pend_pos;  /* a pending slot holding back the order, and since when */
    uint64_t w_pend_since;
    /* Shared. */
    _Alignas(64) _Atomic int state;
    _Atomic uint32_t tid;
    _Atomic uint64_t dropped;
    uint32_t index;       /* stream id in the trace */
    uint64_t mask;
    mt_ring_event_t *slots;
    struct mt_ring *next; /* registry list, never unlinked */
} mt_ring_t;

/* Per-thread state, initial-exec TLS. */
typedef struct mt_tls {
    int busy;             /* inside a hook: nested calls only forward */
    int claim_failed;
    mt_ring_t *ring;
    uintptr_t stack_lo, stack_hi; /* bounds every unwinder load; 0 until known */
    int in_getattr;       /* inside pthread_getattr_np (hooks.c) */
    int bounds_tried;     /* mt__stack_bounds asked glibc */
    uint64_t sample_left; /* sample.c: bytes until this thread's next sample */
    uint64_t sample_rng;  /* sample.c: the thread's PRNG state, 0 until seeded */
} mt_tls_t;

extern __thread mt_tls_t mt__tls MT_HIDDEN __attribute__((tls_model("initial-exec")));
/* The global sequence counter, alone in its cache line: every event of
 * every thread increments it, and a neighbour read on every allocation
 * missed the cache each time another thread had counted (the unwinder's
 * rule generation sat there: 15 % of mallocstorm's unwinding). */
typedef struct mt_seq_counter {
    _Alignas(64) _Atomic uint64_t next;
    char pad[64 - sizeof(uint64_t)];
} mt_seq_counter_t;
extern mt_seq_counter_t mt__seq MT_HIDDEN;
extern _Atomic(mt_ring_t *) mt__rings MT_HIDDEN;

/* Returns the calling thread's ring, claiming a free one or mapping a new
 * one on first use; NULL when none can be had (the thread then records
 * nothing). */
MT_HIDDEN mt_ring_t *mt__ring_claim(void);

/* mt__ring_claim with its fast path inlined: called on every event. */
static inline mt_ring_t *mt__ring_get(void)
{
    mt_ring_t *r = mt__tls.ring;
    return MT_LIKELY(r != NULL) ? r : mt__ring_claim();
}

/* An event is stored in two steps, so that the writer can put the events
 * of all rings in seq order without waiting for threads that are not
 * allocating: mt__ring_reserve publishes the next slot as pending (seq 0),
 * then the thread takes its seq from mt__seq (mt__next_seq) and
 * mt__ring_commit fills the slot, seq last. A seq below what the writer
 * reads from mt__seq therefore lies in a slot it can see: committed, or
 * pending and the last slot of its ring (busy threads record nothing, so a
 * thread holds at most one pending slot). */

/* Called by the writer after it freed slots of a ring: wakes the
 * producers waiting for room. */
MT_HIDDEN void mt__ring_room_made(void);

/* mt__ring_reserve when r looks full or the writer should be woken. */
MT_HIDDEN mt_ring_event_t *mt__ring_reserve_slow(mt_ring_t *r);

/* Publishes slot h of r as reserved: pending until mt__ring_commit stores
 * its seq. The caller made sure the slot is free. */
static inline mt_ring_event_t *mt__ring_publish(mt_ring_t *r, uint64_t h)
{
    mt_ring_event_t *slot = &r->slots[h & r->mask];
    __atomic_store_n(&slot->seq, 0, __ATOMIC_RELAXED);
    atomic_store_explicit(&r->head, h + 1, memory_order_release);
    return slot;
}

/* Reserves the next slot of r, waiting a bounded time for the writer when r
 * is full. Returns NULL, counting the event as dropped, when it still cannot.
 * The common case is inline: every allocation and free comes here. */
static inline mt_ring_event_t *mt__ring_reserve(mt_ring_t *r)
{
    uint64_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
    uint64_t used = h - r->cached_tail;
    if (MT_UNLIKELY(used >= r->mask || used + 1 == (r->mask + 1) / 2))
        return mt__ring_reserve_slow(r);
    return mt__ring_publish(r, h);
}

/* The seq of the event in a reserved slot. */
static inline uint64_t mt__next_seq(void)
{
    return atomic_fetch_add_explicit(&mt__seq.next, 1, memory_order_release);
}

/* Fills a reserved slot and publishes it. */
static inline void mt__ring_commit(mt_ring_event_t *slot, uint64_t seq, uint64_t ptr, uint64_t size,
                                   uint32_t stack, uint32_t op)
{
    slot->ptr = ptr;
    slot->size = size;
    slot->stack = stack;
    slot->op = op;
    __atomic_store_n(&slot->seq, seq, __ATOMIC_RELEASE);
}

/* A stack's hash starts from a fold of its frames, outermost first, so
 * that an unwinder that remembers the fold of a walk's outer part can hand
 * it over instead of having it recomputed. */
#define MT_STACK_FOLD_SEED 0x9E3779B97F4A7C15ull

static inline uint64_t mt__stack_fold(uint64_t h, uint64_t frame)
{
    h ^= frame;
    h *= 0x100000001b3ull;
    return h ^ (h >> 29);
}

/* Returns the ring-local id of the stack, interning it on first sight, or
 * UINT32_MAX when the ring's stack table is full or out of memory. */
MT_HIDDEN uint32_t mt__ring_intern_stack(mt_ring_t *r, const uint64_t *frames, uint32_t depth,
                                         uint64_t epoch);

/* mt__ring_intern_stack given the fold (mt__stack_fold from
 * MT_STACK_FOLD_SEED over frames[depth - 1] down to frames[0]); 0: unknown,
 * computed here. */
MT_HIDDEN uint32_t mt__ring_intern_folded(mt_ring_t *r, const uint64_t *frames, uint32_t depth,
                                          uint64_t epoch, uint64_t fold);

/* Returns the entry of ring-local stack id, published by the producer. */
MT_HIDDEN const mt_stack_entry_t *mt__ring_stack(const mt_ring_t *r, uint32_t id);

/* Finds the calling thread's stack bounds (mt__tls.stack_lo, stack_hi)
 * once; returns whether they are known. Never from inside the program's
 * pthread_getattr_np, which allocates holding the thread's lock: asking
 * glibc again there would wait for that lock forever. The unwinders call
 * it again until it could ask. */
MT_HIDDEN bool mt__stack_bounds(void);

/* Marks the calling thread's ring as exited (thread-specific destructor). */
MT_HIDDEN void mt__ring_release(void *ring);

/* In a fork child: every ring but the caller's is freed, pending events are
 * discarded (the parent writes them) and writer-side state is reset. */
MT_HIDDEN void mt__rings_after_fork(void);

/* Creates the thread-exit key. Returns 0 or -errno. */
MT_HIDDEN int mt__rings_init(void);

/* ---- sample.c ---- */

/* With MEMTRACK_SAMPLE_BYTES, the slow path of mt__sample_take: n reached
 * the thread's countdown (or the thread has none yet). Decides, draws the
 * next countdown and, when the block is sampled, remembers p. */
MT_HIDDEN bool mt__sample_slow(const void *p, size_t n);

/* Decides whether an allocation of n bytes at p is sampled: a Poisson
 * process over the thread's allocated bytes with mean interval
 * mt__config.sample_bytes, so a block of n bytes is sampled with
 * probability 1 - exp(-n/S). A sampled block is remembered until
 * mt__sample_forget. Only called when sampling is on. */
static inline bool mt__sample_take(const void *p, size_t n)
{
    if (MT_LIKELY(mt__tls.sample_left > n)) {
        mt__tls.sample_left -= n;
        return false;
    }
    return mt__sample_slow(p, n);
}

/* Returns true when the block at p must have its free recorded (it was
 * sampled, or may have been), and forgets it. Only called when sampling is
 * on, before the real free. */
MT_HIDDEN bool mt__sample_forget(const void *p);

/* Remembers p again after mt__sample_forget said true but the block stayed
 * (a failed realloc, an xallocx that did not resize). */
MT_HIDDEN void mt__sample_keep(const void *p);

/* Maps the sampled-block table. Returns 0 or -ENOMEM (sampling then stays off). */
MT_HIDDEN int mt__sample_init(void);

/* ---- unwind.c ---- */

/* Sets up the unwinder (per-thread caches) and finds the library's own code
 * range, whose frames are never recorded. */
MT_HIDDEN void mt__unwind_init(void);

/* The size of the buffer mt__unwind walks into. */
#define MT_UNWIND_BUF (MT_MAX_DEPTH + 8)

/* Where a walk may start instead of at the unwinder's own frame: a return
 * address, the stack pointer just after that call returns (the callee's
 * canonical frame address) and the caller's frame pointer. */
typedef struct mt_unwind_from {
    uintptr_t ip, sp, rbp;
} mt_unwind_from_t;

/* The default walk (unwind.c): the cached CFI walk, into frames or, when
 * it sets *out, in the unwinder's own memory; *folds, when not NULL, the
 * stack's folds. Returns the frame count, or -1 when it cannot walk this
 * stack. */
MT_HIDDEN int mt__cfi_walk(uint64_t *frames, uint32_t max, const uint64_t **out, const uint64_t **folds,
                           const mt_unwind_from_t *start);

/* The frame-pointer walk (MEMTRACK_UNWIND=fp) or libunwind, for what the
 * default walk does not do: mt__unwind without its fast path. */
MT_HIDDEN const uint64_t *mt__unwind_other(uint64_t *buf, uint32_t max, uint32_t *count, uint64_t *fold);

/* Walks the calling thread's stack into buf (MT_UNWIND_BUF entries) and
 * returns where its recorded part starts, in buf or in the unwinder's own
 * memory of the thread's last stack (valid until the thread's next walk):
 * up to max return addresses, innermost first, starting at the caller of
 * the allocation function (the library's own frames are left out); their
 * count goes to *count, their fold (see mt__stack_fold) to *fold when the
 * walk knew it without extra work, else 0. from, when not NULL, is the
 * state of a frame on the current stack (a hook's, read from its frame
 * pointer): the default walker starts there instead of stepping over the
 * library's frames up to it. */
#ifdef MT_UNWIND_VERIFY
MT_HIDDEN void mt__unwind_verify(const uint64_t *frames, uint32_t n, uint64_t fold, uint32_t max);
#endif

static inline const uint64_t *mt__unwind(uint64_t *buf, uint32_t max, uint32_t *count, uint64_t *fold,
                                         const mt_unwind_from_t *from)
{
    if (MT_LIKELY(!mt__config.unwind_fp && !mt__config.unwind_libunwind)) {
        const uint64_t *frames = buf, *folds;
        int r = mt__cfi_walk(buf, max, &frames, &folds, from); /* only the frames it records */
        if (MT_LIKELY(r >= 0)) {
            *count = (uint32_t)r;
            *fold = folds ? folds[0] : 0;
#ifdef MT_UNWIND_VERIFY
            mt__unwind_verify(frames, *count, *fold, max);
#endif
            return frames;
        }
    }
    return mt__unwind_other(buf, max, count, fold);
}

/* The stack id of the walk that would start from `from` when the thread
 * walked from there before and every stack word that walk read still holds
 * what it held (the default walk only); UINT32_MAX otherwise. epoch is
 * mt__epoch, which the id must have been interned in. */
MT_HIDDEN uint32_t mt__unwind_known(mt_ring_t *r, const mt_unwind_from_t *from, uint64_t epoch);

/* After mt__unwind from `from` and interning its stack as id: lets
 * mt__unwind_known find it next time (when the walk was the default one
 * and kept all it read). */
MT_HIDDEN void mt__unwind_learn(mt_ring_t *r, const mt_unwind_from_t *from, uint64_t epoch, uint32_t id);

/* Drops cached unwind information (after dlclose). */
MT_HIDDEN void mt__unwind_flush(void);

/* ---- modules.c ---- */

extern _Atomic uint64_t mt__epoch MT_HIDDEN;

/* Rescans the loaded modules; new ones and unloaded ones are queued for the
 * writer, and the epoch advances after an unload. Safe from any thread. */
MT_HIDDEN void mt__modules_scan(void);

/* Writes queued MODULE and UNLOAD records through emit. Writer thread only. */
MT_HIDDEN void mt__modules_emit(void (*emit)(uint8_t type, const uint8_t *payload, size_t n));

/* Returns true when addr lies in a known module. Writer thread only. */
MT_HIDDEN bool mt__modules_known(uint64_t addr);

/* In a fork child: every module must be written again to the new trace. */
MT_HIDDEN void mt__modules_after_fork(void);

/* Locks and unlocks the module list around fork. */
MT_HIDDEN void mt__modules_lock(void);
MT_HIDDEN void mt__modules_unlock(void);

/* ---- writer.c ---- */

/* Opens the trace file and writes its header; starts the writer thread.
 * Returns 0 or -errno (the caller then stays unprofiled). */
MT_HIDDEN int mt__writer_start(bool forked, uint64_t fork_seq);

/* Wakes the writer early (a ring is filling up). */
MT_HIDDEN void mt__writer_wake(void);

/* Waits until everything recorded so far is in the file, at most timeout_ms.
 * With final, also writes the END record, closes the file and stops the
 * writer thread; recording is over. Async-signal-safe. */
/* What a flush is for: a plain one (a snapshot's marker must be on disk),
 * the one before exec (also ends the trace, in case the exec succeeds), or
 * the final one (ends the trace and stops the writer). */
typedef enum mt_flush { MT_FLUSH_PLAIN, MT_FLUSH_EXEC, MT_FLUSH_FINAL } mt_flush_t;
MT_HIDDEN void mt__writer_flush(mt_flush_t kind, unsigned timeout_ms);

/* Places a snapshot marker labelled "signal" at this point of the global
 * order (it takes its sequence number now); the writer writes it on its
 * next round. Async-signal-safe. */
MT_HIDDEN void mt__writer_request_snapshot(void);

/* The fatal signal the process is dying of, set by the crash handler before
 * its final flush so that the END record says so; 0 otherwise. */
extern _Atomic int mt__fatal_signal MT_HIDDEN;

/* Returns the id of label text, interning it, or UINT32_MAX. */
MT_HIDDEN uint32_t mt__label_intern(const char *text);

/* True when the calling thread is the writer. */
MT_HIDDEN bool mt__writer_is_self(void);

/* In a fork child: forget the parent's writer without touching its file. */
MT_HIDDEN void mt__writer_after_fork(void);

/* ---- process.c ---- */

extern _Atomic int mt__state MT_HIDDEN;
extern pid_t mt__pid MT_HIDDEN;

/* Runs once when the library loads: config, module map, trace file, writer,
 * fork and signal handlers. On any failure the library says why once and
 * stays off. */
MT_HIDDEN void mt__process_start(void);

/* Flushes before exec (called from the exec hooks). */
MT_HIDDEN void mt__process_before_exec(void);

/* Flushes for good before _exit and _Exit. */
MT_HIDDEN void mt__process_before_exit(void);

/* Turns recording off after an internal failure, saying why once. */
MT_HIDDEN void mt__process_disable(const char *why);

/* Called by the sigaction and signal hooks. When sig is the snapshot signal
 * and memtrack's handler is installed, the program's act (NULL: none)
 * becomes the handler memtrack chains to, its previous one goes to *old
 * (when not NULL), the kernel keeps memtrack's handler, and it returns 1.
 * Otherwise returns 0 and the hook calls the real function. */
MT_HIDDEN int mt__snapshot_sigaction(int sig, const struct sigaction *act, struct sigaction *old);

#endif /* MT_PRELOAD_INTERNAL_H */
