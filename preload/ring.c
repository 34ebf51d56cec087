/* ring.c - per-thread lock-free event rings and per-ring stack interning.
 *
 * Each thread owns one single-producer/single-consumer ring: the thread is
 * the only producer, the writer thread the only consumer, and the two meet
 * only through the head and tail counters (release/acquire). Rings live on a
 * list that is only ever pushed onto (CAS), never unlinked: a ring whose
 * thread exited is drained by the writer and then handed to the next new
 * thread, so 2000 short-lived threads use a handful of rings.
 *
 * Stacks are interned per ring, by the producer alone, so a repeated stack
 * costs a hash and a compare and no shared write. The writer maps ring-local
 * ids to trace-wide ids and writes each distinct stack once.
 */
#include <errno.h>
#include <linux/futex.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"

__thread mt_tls_t mt__tls __attribute__((tls_model("initial-exec")));
mt_seq_counter_t mt__seq = {.next = 1};
_Atomic(mt_ring_t *) mt__rings;

static _Atomic uint32_t ring_count;
static pthread_key_t exit_key;
static mt_arena_t ring_arena; /* guarded by ring_arena_lock */
static _Atomic int ring_arena_lock;

int mt__rings_init(void)
{
    int rc = pthread_key_create(&exit_key, mt__ring_release);
    return rc ? -rc : 0;
}

static void spin_lock(_Atomic int *l)
{
    while (atomic_exchange_explicit(l, 1, memory_order_acquire))
        sched_yield();
}

static void spin_unlock(_Atomic int *l)
{
    atomic_store_explicit(l, 0, memory_order_release);
}

static mt_ring_t *ring_new(void)
{
    spin_lock(&ring_arena_lock);
    mt_ring_t *r = mt__arena_alloc(&ring_arena, sizeof *r);
    spin_unlock(&ring_arena_lock);
    if (!r)
        return NULL;
    r->mask = mt__config.ring_events - 1;
    r->slots = mt__os_map((size_t)mt__config.ring_events * sizeof(mt_ring_event_t));
    if (!r->slots)
        return NULL; /* the struct stays in the arena: rings are never freed */
    /* The writer's notes on the events stay apart from the slots: the
     * writer writing into the slots' cache lines would make the producer
     * fetch each line back from the writer's core when it wraps around. */
    r->w_notes = mt__os_map((size_t)mt__config.ring_events * sizeof *r->w_notes);
    if (!r->w_notes)
        return NULL;
    r->st_mask = 1023;
    r->st_slots = mt__os_map((r->st_mask + 1) * sizeof *r->st_slots);
    if (!r->st_slots)
        return NULL;
    r->index = atomic_fetch_add(&ring_count, 1);
    atomic_store(&r->state, MT_RING_ACTIVE);
    mt_ring_t *head = atomic_load(&mt__rings);
    do {
        r->next = head;
    } while (!atomic_compare_exchange_weak(&mt__rings, &head, r));
    return r;
}

static mt_ring_t *ring_claim_free(void)
{
    for (mt_ring_t *r = atomic_load(&mt__rings); r; r = r->next) {
        int expected = MT_RING_FREE;
        if (atomic_load_explicit(&r->state, memory_order_relaxed) == MT_RING_FREE &&
            atomic_compare_exchange_strong(&r->state, &expected, MT_RING_ACTIVE))
            return r;
    }
    return NULL;
}

mt_ring_t *mt__ring_claim(void)
{
    mt_tls_t *t = &mt__tls;
    if (t->ring)
        return t->ring;
    if (t->claim_failed)
        return NULL;
    mt_ring_t *r = ring_claim_free();
    if (!r)
        r = ring_new();
    if (!r) {
        t->claim_failed = 1;
        return NULL;
    }
    atomic_store(&r->tid, (uint32_t)syscall(SYS_gettid));
    t->ring = r;
    pthread_setspecific(exit_key, r);
    mt__stack_bounds();
    return r;
}

bool mt__stack_bounds(void)
{
    mt_tls_t *t = &mt__tls;
    if (t->bounds_tried || t->in_getattr)
        return t->stack_hi != 0;
    t->bounds_tried = 1;
    pthread_attr_t attr;
    void *lo;
    size_t size;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
        if (pthread_attr_getstack(&attr, &lo, &size) == 0) {
            t->stack_lo = (uintptr_t)lo;
            t->stack_hi = (uintptr_t)lo + size;
        }
        pthread_attr_destroy(&attr);
    }
    return t->stack_hi != 0;
}

void mt__ring_release(void *ring)
{
    mt_ring_t *r = ring;
    if (!r)
        return;
    /* Released at once, not in the last destructor round: by then other
     * libraries' destructors (ThreadSanitizer's own, for one) may have torn
     * down what the thread needs. Another key's destructor that frees memory
     * later makes mt__ring_get claim a ring again, which sets the key again,
     * so this runs again in the next round; only a free in the very last
     * round leaves its ring active, drained by the writer but never reused. */
    mt__tls.ring = NULL;
    atomic_store_explicit(&r->state, MT_RING_EXITED, memory_order_release);
}

/* Producers waiting for room in a full ring sleep on `drained`, which the
 * writer bumps after each drain and wakes only while `waiters` says someone
 * sleeps: a waiting thread gives its CPU to the writer instead of spinning
 * (on a 2-core machine running two busy threads, the writer's CPU is the
 * program's). Alone in their cache line: producers touch it only when full. */
static struct {
    _Alignas(64) _Atomic uint32_t drained;
    _Atomic uint32_t waiters;
    char pad[64 - 2 * sizeof(uint32_t)];
} room;

#define ROOM_NAP_NS 250000000ull /* the longest sleep before looking again */

void mt__ring_room_made(void)
{
    atomic_fetch_add(&room.drained, 1);
    if (MT_UNLIKELY(atomic_load(&room.waiters)))
        syscall(SYS_futex, &room.drained, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

mt_ring_event_t *mt__ring_reserve_slow(mt_ring_t *r)
{
    uint64_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
    uint64_t cap = r->mask + 1;
    if (MT_UNLIKELY(h - r->cached_tail >= cap)) {
        r->cached_tail = atomic_load_explicit(&r->tail, memory_order_acquire);
        if (h - r->cached_tail >= cap) {
            uint64_t start = mt__os_now_ns(), limit = (uint64_t)mt__config.ring_wait_ms * 1000000ull;
            bool full = true;
            mt__writer_wake(); /* also when the event is dropped at once (MEMTRACK_RING_WAIT_MS=0) */
            /* Counted before tail is read again: either that read sees the
             * writer's drain, or the writer sees the count and wakes. */
            atomic_fetch_add(&room.waiters, 1);
            for (;;) {
                uint32_t d = atomic_load(&room.drained);
                r->cached_tail = atomic_load_explicit(&r->tail, memory_order_acquire);
                if (h - r->cached_tail < cap) {
                    full = false;
                    break;
                }
                uint64_t waited = mt__os_now_ns() - start;
                if (atomic_load_explicit(&mt__state, memory_order_relaxed) != MT_STATE_ACTIVE ||
                    mt__writer_is_self() || waited >= limit)
                    break;
                /* The writer wakes this sleep; its timeout only bounds a
                 * writer that stopped, or the state changing. */
                uint64_t nap = limit - waited < ROOM_NAP_NS ? limit - waited : ROOM_NAP_NS;
                struct timespec ts = {(time_t)(nap / 1000000000ull), (long)(nap % 1000000000ull)};
                syscall(SYS_futex, &room.drained, FUTEX_WAIT_PRIVATE, d, &ts, NULL, 0);
                mt__writer_wake();
            }
            atomic_fetch_sub(&room.waiters, 1);
            if (full)
                goto drop;
        }
    }
    mt_ring_event_t *slot = mt__ring_publish(r, h);
    if (MT_UNLIKELY(h + 1 - r->cached_tail == cap / 2))
        mt__writer_wake();
    return slot;
drop:
    atomic_fetch_add_explicit(&r->dropped, 1, memory_order_relaxed);
    return NULL;
}

static uint64_t hash_stack(uint64_t fold, uint32_t depth, uint64_t epoch)
{
    uint64_t h = fold ^ (epoch * 0xff51afd7ed558ccdull) ^ depth;
    h *= 0x9E3779B97F4A7C15ull;
    return (h ^ (h >> 32)) | 1;
}

/* A stack table slot: the top 32 bits of the stack's hash, so that a probe
 * fetches an entry only when they match, and id + 1 below; 0 is empty.
 * Python's allocations took 1.6 probes on average, each a fetch of an
 * entry (two dependent loads, often cache misses) before. */
static inline uint64_t st_slot(uint64_t h, uint32_t id)
{
    return (h & ~0xffffffffull) | (id + 1);
}

const mt_stack_entry_t *mt__ring_stack(const mt_ring_t *r, uint32_t id)
{
    return r->st_blocks[id / MT_STACK_BLOCK][id % MT_STACK_BLOCK];
}

static int grow_table(mt_ring_t *r)
{
    uint32_t nmask = r->st_mask * 2 + 1;
    uint64_t *slots = mt__os_map(((size_t)nmask + 1) * sizeof *slots);
    if (!slots)
        return -ENOMEM;
    for (uint32_t i = 0; i <= r->st_mask; i++) {
        uint64_t v = r->st_slots[i];
        if (!v)
            continue;
        uint32_t j = (uint32_t)mt__ring_stack(r, (uint32_t)v - 1)->hash & nmask;
        while (slots[j])
            j = (j + 1) & nmask;
        slots[j] = v;
    }
    munmap(r->st_slots, ((size_t)r->st_mask + 1) * sizeof *slots);
    r->st_slots = slots;
    r->st_mask = nmask;
    return 0;
}

uint32_t mt__ring_intern_stack(mt_ring_t *r, const uint64_t *frames, uint32_t depth, uint64_t epoch)
{
    return mt__ring_intern_folded(r, frames, depth, epoch, 0);
}

uint32_t mt__ring_intern_folded(mt_ring_t *r, const uint64_t *frames, uint32_t depth, uint64_t epoch,
                                uint64_t fold)
{
    if (!fold) {
        fold = MT_STACK_FOLD_SEED;
        for (uint32_t i = depth; i-- > 0;)
            fold = mt__stack_fold(fold, frames[i]);
    }
    uint64_t h = hash_stack(fold, depth, epoch);
    uint32_t i = (uint32_t)h & r->st_mask;
    uint64_t v, tag = st_slot(h, 0) - 1;
    while ((v = r->st_slots[i]) != 0) {
        if ((v & ~0xffffffffull) == tag) {
            const mt_stack_entry_t *e = mt__ring_stack(r, (uint32_t)v - 1);
            if (e->hash == h && e->depth == depth && e->epoch == epoch &&
                !memcmp(e->frames, frames, depth * sizeof *frames))
                return (uint32_t)v - 1;
        }
        i = (i + 1) & r->st_mask;
    }
    uint32_t id = atomic_load_explicit(&r->st_count, memory_order_relaxed);
    /* A table that could not grow must never fill up: the probe above would not end. */
    if (id >= MT_STACK_BLOCK * MT_STACK_BLOCKS || (uint64_t)(id + 1) * 4 > (uint64_t)r->st_mask * 3)
        return UINT32_MAX;
    mt_stack_entry_t ***block = &r->st_blocks[id / MT_STACK_BLOCK];
    if (!*block && !(*block = mt__arena_alloc(&r->arena, MT_STACK_BLOCK * sizeof(void *))))
        return UINT32_MAX;
    mt_stack_entry_t *e = mt__arena_alloc(&r->arena, sizeof *e + depth * sizeof *frames);
    if (!e)
        return UINT32_MAX;
    e->hash = h;
    e->epoch = epoch;
    e->depth = depth;
    memcpy(e->frames, frames, depth * sizeof *frames);
    (*block)[id % MT_STACK_BLOCK] = e;
    r->st_slots[i] = st_slot(h, id);
    atomic_store_explicit(&r->st_count, id + 1, memory_order_release);
    if ((id + 1) * 2 > r->st_mask)
        grow_table(r); /* on failure the table just stays fuller */
    return id;
}

void mt__rings_after_fork(void)
{
    mt_ring_t *mine = mt__tls.ring;
    atomic_store(&ring_arena_lock, 0);
    for (mt_ring_t *r = atomic_load(&mt__rings); r; r = r->next) {
        uint64_t h = atomic_load(&r->head);
        atomic_store(&r->tail, h);
        r->cached_tail = h;
        r->w_end = h;
        r->w_pend_pos = 0;
        r->w_mapped = 0;
        for (uint32_t b = 0; b < MT_STACK_BLOCKS && r->w_map[b]; b++)
            memset(r->w_map[b], 0, MT_STACK_BLOCK * sizeof(uint32_t));
        atomic_store(&r->dropped, 0);
        r->w_dropped = 0;
        if (r != mine)
            atomic_store(&r->state, MT_RING_FREE);
    }
    if (mine)
        atomic_store(&mine->tid, (uint32_t)syscall(SYS_gettid));
    atomic_store(&room.waiters, 0); /* those threads are the parent's */
}
