/* replay.c - replays a trace's events once and keeps per-site and total statistics.
 *
 * Live blocks sit in an open-addressing hash table keyed by address (linear
 * probing, backward-shift deletion, so no tombstones), which grows with the
 * number of blocks live at once and is never rebuilt per event. Sites are an
 * array indexed by stack id, plus one last entry for allocations whose stack
 * the trace never defined. Threads (for temporaries: each thread's latest
 * allocation) sit in a second small hash table. Nothing is allocated per
 * event except when a table grows.
 *
 * The peak is found in O(1) per event. Every time the total live heap
 * exceeds the highest value seen so far, the peak version is bumped; a site
 * whose live bytes are about to change and whose peak_version is older
 * first copies its live bytes into peak_bytes, because they have not
 * changed since that peak. mt__replay_finish does the same for every site
 * that did not change after the last peak.
 *
 * mt__replay_run decodes the trace in a second thread when it is large and
 * a second CPU is there (see "reading ahead" below), so that decoding and
 * replaying overlap.
 */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "replay.h"

#define INITIAL_BLOCKS_LOG2 10
#define INITIAL_BLOCKS (1u << INITIAL_BLOCKS_LOG2)
#define INITIAL_THREADS 16
/* Below this many slots (1 MiB of table) the table grows at 3/8 full rather
 * than 5/8: probes stop sooner and mispredict less, at little memory. */
#define SPARSE_BLOCKS (1u << 15)
#define PROGRESS_EVERY (1u << 16)
/* Events between a slot's prefetch and its use. */
#define PREFETCH_AHEAD 16

typedef struct thread {
    uint64_t key;        /* tid + 1; 0 for an empty slot */
    uint64_t last_seq;   /* seq of the thread's latest allocation */
    bool has_alloc;
} thread_t;

struct mt_replay {
    const mt_trace_t *trace;
    mt_replay_options_t opt;
    mt_totals_t totals;
    mt_site_t *sites;      /* nsites stack ids + the MT_REPLAY_NO_STACK site */
    size_t nsites;         /* stack ids covered, not counting the last entry */
    uint64_t peak_version;
    mt_block_t *blocks;    /* ptr 0 marks an empty slot */
    size_t blocks_cap;     /* a power of two */
    unsigned blocks_shift; /* 64 - log2(blocks_cap): a key's home is its hash's top bits */
    size_t blocks_used;
    thread_t *threads;
    size_t threads_cap;
    size_t threads_used;
    thread_t *last_thread; /* the thread of the previous event, as a cache */
    mt_snapshot_t *snaps;
    size_t nsnaps, snaps_cap;
    size_t marker_cursor;  /* next entry of info->markers */
    bool finished;
    uint64_t sample_bytes; /* a sampled trace's mean interval, else 0 */
    double carry;          /* the fraction of a count not yet given out (sampling) */
};

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

/* ---- live blocks ---- */

/* Tables from this size on get a mapping of their own, populated by the
 * kernel in one call (MADV_POPULATE_WRITE): a table of tens of megabytes
 * was otherwise faulted in, and zeroed, 4 KiB at a time at every doubling.
 * Transparent huge pages did that better on an idle machine, but right
 * after the profiled program exits, memory is fragmented and the kernel
 * compacted it at every fault: python's report spent 0.2-0.3 s in the
 * kernel then, against 0.1 s now. */
#define BIG_TABLE (2u << 20)

static size_t table_bytes(size_t cap)
{
    return cap * sizeof(mt_block_t);
}

/* Returns a zeroed table of cap blocks, or NULL. */
static mt_block_t *table_alloc(size_t cap)
{
    size_t bytes = table_bytes(cap);
    if (bytes < BIG_TABLE)
        return calloc(cap, sizeof(mt_block_t));
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    (void)madvise(p, bytes, MADV_POPULATE_WRITE); /* a hint: the kernel may not have it */
    return p;
}

static void table_free(mt_block_t *b, size_t cap)
{
    if (b && table_bytes(cap) < BIG_TABLE)
        free(b);
    else if (b)
        munmap(b, table_bytes(cap));
}

/* The slot a block's probe starts at: Fibonacci hashing, the top bits of
 * the address times 2^64 / phi. Allocators return addresses in arithmetic
 * runs (16-byte steps, size classes), which this spreads evenly where
 * taking the low bits would not, and it is cheaper than a full mixer. */
static size_t block_home(const mt_replay_t *r, uint64_t ptr)
{
    if (ptr >> 63 && r->blocks_shift < 64 - 6) {
        /* A block named by its allocation's seq (version 4): runs of 64
         * allocations land side by side, the runs spread by Fibonacci
         * hashing. Programs often free blocks in about the order they
         * allocated them, and then walk the table instead of jumping: the
         * python benchmark's report runs 30 % faster. */
        size_t run = (size_t)(((ptr >> 6) * 0x9e3779b97f4a7c15ull) >> (r->blocks_shift + 6));
        return run << 6 | (size_t)(ptr & 63);
    }
    return (size_t)((ptr * 0x9e3779b97f4a7c15ull) >> r->blocks_shift);
}

static size_t block_slot(const mt_replay_t *r, uint64_t ptr)
{
    size_t mask = r->blocks_cap - 1;
    size_t i = block_home(r, ptr);
    while (r->blocks[i].ptr && r->blocks[i].ptr != ptr)
        i = (i + 1) & mask;
    return i;
}

static int blocks_grow(mt_replay_t *r)
{
    size_t cap = r->blocks_cap * 2;
    mt_block_t *old = r->blocks;
    mt_block_t *nb = table_alloc(cap);
    if (!nb)
        return -ENOMEM;
    size_t old_cap = r->blocks_cap;
    r->blocks = nb;
    r->blocks_cap = cap;
    r->blocks_shift--;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i].ptr)
            r->blocks[block_slot(r, old[i].ptr)] = old[i];
    table_free(old, old_cap);
    return 0;
}

/* Removes slot i, shifting later entries of its probe run back into the gap. */
static void block_remove(mt_replay_t *r, size_t i)
{
    size_t mask = r->blocks_cap - 1;
    size_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (!r->blocks[j].ptr)
            break;
        size_t home = block_home(r, r->blocks[j].ptr);
        /* Move j into the gap at i unless its home lies cyclically in (i, j]. */
        bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
        if (!stays) {
            r->blocks[i] = r->blocks[j];
            i = j;
        }
    }
    r->blocks[i].ptr = 0;
    r->blocks_used--;
}

/* ---- threads ---- */

static thread_t *thread_find(mt_replay_t *r, uint64_t key);

/* Returns tid's entry, adding it when new, or NULL when out of memory. Runs
 * of events of one thread find it in the cache without a call. */
static inline thread_t *thread_get(mt_replay_t *r, uint32_t tid)
{
    uint64_t key = (uint64_t)tid + 1;
    if (r->last_thread && r->last_thread->key == key)
        return r->last_thread;
    return thread_find(r, key);
}

static __attribute__((noinline)) thread_t *thread_find(mt_replay_t *r, uint64_t key)
{
    if ((r->threads_used + 1) * 2 > r->threads_cap) {
        size_t cap = r->threads_cap * 2;
        thread_t *nt = calloc(cap, sizeof *nt);
        if (!nt)
            return NULL;
        for (size_t i = 0; i < r->threads_cap; i++) {
            if (!r->threads[i].key)
                continue;
            size_t j = (size_t)mix64(r->threads[i].key) & (cap - 1);
            while (nt[j].key)
                j = (j + 1) & (cap - 1);
            nt[j] = r->threads[i];
        }
        free(r->threads);
        r->threads = nt;
        r->threads_cap = cap;
    }
    size_t mask = r->threads_cap - 1;
    size_t i = (size_t)mix64(key) & mask;
    while (r->threads[i].key && r->threads[i].key != key)
        i = (i + 1) & mask;
    if (!r->threads[i].key) {
        r->threads[i].key = key;
        r->threads_used++;
    }
    r->last_thread = &r->threads[i];
    return r->last_thread;
}

/* ---- sites ---- */

/* Makes room for stack ids below n, keeping the last (no-stack) entry last. */
static int sites_resize(mt_replay_t *r, size_t n)
{
    mt_site_t *ns = realloc(r->sites, (n + 1) * sizeof *ns);
    if (!ns)
        return -ENOMEM;
    ns[n] = ns[r->nsites];
    memset(&ns[r->nsites], 0, (n - r->nsites) * sizeof *ns);
    for (size_t i = r->nsites; i < n; i++)
        ns[i].stack = (uint32_t)i;
    r->sites = ns;
    r->nsites = n;
    return 0;
}

/* Returns the site for an allocation's stack id, which becomes
 * MT_REPLAY_NO_STACK in *stack when the trace never defined it. */
static mt_site_t *site_for_alloc(mt_replay_t *r, uint32_t *stack)
{
    uint32_t id = *stack;
    if (id < r->nsites)
        return &r->sites[id];
    if (id != MT_REPLAY_NO_STACK && mt__trace_stack(r->trace, id)) {
        size_t n = r->nsites * 2 > (size_t)id + 1 ? r->nsites * 2 : (size_t)id + 1;
        if (sites_resize(r, n) < 0)
            return NULL;
        return &r->sites[id];
    }
    *stack = MT_REPLAY_NO_STACK;
    r->totals.undefined_stacks++;
    return &r->sites[r->nsites];
}

static mt_site_t *site_of(mt_replay_t *r, uint32_t stack)
{
    return stack == MT_REPLAY_NO_STACK ? &r->sites[r->nsites] : &r->sites[stack];
}

/* Brings the site's share of the latest peak up to date before its live
 * numbers change: they have not changed since that peak. */
static void touch(mt_replay_t *r, mt_site_t *s)
{
    if (s->peak_version != r->peak_version) {
        s->peak_bytes = s->live_bytes;
        s->peak_allocations = s->live_allocations;
        s->peak_version = r->peak_version;
    }
}

/* Takes a live block out of its site and of the totals, without counting a free. */
static inline void unlive(mt_replay_t *r, const mt_block_t *b)
{
    mt_site_t *s = site_of(r, b->stack);
    touch(r, s);
    s->live_bytes -= b->size;
    s->live_allocations -= b->weight;
    r->totals.live_bytes -= b->size;
    r->totals.live_allocations -= b->weight;
}

/* ---- events ---- */

/* Weights a block of n bytes of a sampled trace. It was sampled with
 * probability p = 1 - exp(-n/S), so it stands for 1/p blocks and n/p bytes
 * (the inverse-probability estimate, unbiased whatever the sizes; jemalloc
 * and tcmalloc weight their samples the same way). Bytes are rounded per
 * block; counts must stay whole numbers, so the fractions are carried from
 * one block to the next and the total count is off by less than one. */
static void sample_weight(mt_replay_t *r, uint64_t n, uint64_t *size, uint64_t *weight)
{
    if (!n)
        return;
    double inv = 1.0 / -expm1(-(double)n / (double)r->sample_bytes);
    if (!(inv < 0x1p40))
        inv = 0x1p40; /* past what the library writes: a damaged header */
    double bytes = (double)n * inv;
    *size = bytes < 0x1p63 ? (uint64_t)llround(bytes) : n;
    r->carry += inv;
    double w = floor(r->carry);
    r->carry -= w;
    *weight = (uint64_t)w;
}

/* Ends a live block whose free the trace lost, counting it apart. */
static void lose_block(mt_replay_t *r, mt_block_t *b)
{
    unlive(r, b);
    r->totals.missed_frees++;
    r->totals.missed_free_bytes += b->size;
}

static int on_alloc(mt_replay_t *r, const mt_event_t *ev)
{
    if (!ev->ptr) {
        r->totals.ignored_events++;
        return 0;
    }
    if ((r->blocks_used + 1) * 8 > r->blocks_cap * (r->blocks_cap < SPARSE_BLOCKS ? 3 : 5) && blocks_grow(r) < 0)
        return -ENOMEM;
    uint32_t stack = ev->stack;
    uint64_t size = ev->size, w = 1;
    if (r->sample_bytes)
        sample_weight(r, ev->size, &size, &w);
    mt_site_t *s = site_for_alloc(r, &stack);
    thread_t *th = thread_get(r, ev->tid);
    if (!s || !th)
        return -ENOMEM;
    if (ev->replaces) {
        /* The writer saw this address live again (version 4): the free of
         * the block it held was lost. */
        size_t j = block_slot(r, ev->replaces);
        if (r->blocks[j].ptr) {
            lose_block(r, &r->blocks[j]);
            block_remove(r, j);
        }
    }
    size_t i = block_slot(r, ev->ptr);
    if (r->blocks[i].ptr) {
        /* The address is live again: its free was lost (dropped events). */
        lose_block(r, &r->blocks[i]);
    } else {
        r->blocks_used++;
    }
    r->blocks[i] = (mt_block_t){ev->ptr, size, ev->seq, stack, ev->tid, w};

    touch(r, s);
    s->allocations += w;
    s->bytes_allocated += size;
    s->live_bytes += size;
    s->live_allocations += w;
    if (s->live_bytes > s->max_live_bytes) {
        s->max_live_bytes = s->live_bytes;
        s->max_live_seq = ev->seq;
    }
    mt_totals_t *t = &r->totals;
    t->allocations += w;
    t->bytes_allocated += size;
    t->live_bytes += size;
    t->live_allocations += w;
    if (t->live_bytes > t->peak_bytes) {
        t->peak_bytes = t->live_bytes;
        t->peak_allocations = t->live_allocations;
        t->peak_seq = ev->seq;
        r->peak_version++;
    }
    th->last_seq = ev->seq;
    th->has_alloc = true;
    return 0;
}

static bool is_free_half(unsigned op)
{
    return op == MT_OP_REALLOC_FREE || op == MT_OP_RALLOCX_FREE || op == MT_OP_XALLOCX_FREE;
}

static int on_free(mt_replay_t *r, const mt_event_t *ev)
{
    if (!ev->ptr) {
        r->totals.ignored_events++;
        return 0;
    }
    thread_t *th = thread_get(r, ev->tid); /* counted among the threads */
    if (!th)
        return -ENOMEM;
    size_t i = block_slot(r, ev->ptr);
    mt_block_t *b = &r->blocks[i];
    if (!b->ptr) {
        if (r->sample_bytes)
            r->totals.unsampled_frees++; /* a block that was not sampled */
        else
            r->totals.unknown_frees++;
        return 0;
    }
    mt_site_t *s = site_of(r, b->stack);
    unlive(r, b);
    s->frees += b->weight;
    s->bytes_freed += b->size;
    r->totals.frees += b->weight;
    r->totals.bytes_freed += b->size;
    if (!is_free_half(ev->op) && b->tid == ev->tid && th->has_alloc && th->last_seq == b->seq) {
        s->temporary_allocations += b->weight;
        s->temporary_bytes += b->size;
        r->totals.temporary_allocations += b->weight;
        r->totals.temporary_bytes += b->size;
    }
    block_remove(r, i);
    return 0;
}

static int capture_sites(mt_replay_t *r, mt_snapshot_t *snap)
{
    size_t n = 0;
    for (size_t i = 0; i <= r->nsites; i++)
        n += r->sites[i].live_allocations > 0;
    if (!n)
        return 0;
    snap->sites = malloc(n * sizeof *snap->sites);
    if (!snap->sites)
        return -ENOMEM;
    for (size_t i = 0; i <= r->nsites; i++) {
        const mt_site_t *s = &r->sites[i];
        if (s->live_allocations)
            snap->sites[snap->nsites++] = (mt_snapshot_site_t){s->stack, s->live_bytes, s->live_allocations};
    }
    return 0;
}

static int on_marker(mt_replay_t *r, const mt_event_t *ev)
{
    if (r->nsnaps == r->snaps_cap) {
        size_t cap = r->snaps_cap ? r->snaps_cap * 2 : 16;
        mt_snapshot_t *ns = realloc(r->snaps, cap * sizeof *ns);
        if (!ns)
            return -ENOMEM;
        r->snaps = ns;
        r->snaps_cap = cap;
    }
    const mt_trace_info_t *info = mt__trace_info(r->trace);
    while (r->marker_cursor < info->nmarkers && info->markers[r->marker_cursor].seq < ev->seq)
        r->marker_cursor++;
    uint64_t time_ns;
    if (r->marker_cursor < info->nmarkers && info->markers[r->marker_cursor].seq == ev->seq)
        time_ns = info->markers[r->marker_cursor++].time_ns;
    else
        time_ns = mt__trace_time_of(r->trace, ev->seq);
    mt_snapshot_t *snap = &r->snaps[r->nsnaps];
    *snap = (mt_snapshot_t){
        .label = ev->label,
        .text = mt__trace_label(r->trace, ev->label),
        .seq = ev->seq,
        .time_ns = time_ns,
        .tid = ev->tid,
        .live_bytes = r->totals.live_bytes,
        .live_allocations = r->totals.live_allocations,
    };
    if (r->opt.capture_sites && capture_sites(r, snap) < 0)
        return -ENOMEM;
    r->nsnaps++;
    r->totals.markers++;
    if (r->opt.on_marker)
        return r->opt.on_marker(r->opt.marker_ctx, r, snap);
    return 0;
}

/* ---- API ---- */

/* Creates an engine for trace t; see replay.h. */
mt_replay_t *mt__replay_new(const mt_trace_t *t, const mt_replay_options_t *opt)
{
    mt_replay_t *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->trace = t;
    if (opt)
        r->opt = *opt;
    const mt_trace_info_t *info = mt__trace_info(t);
    if ((info->flags & MT_TRACE_F_SAMPLED) && info->sample_bytes)
        r->sample_bytes = info->sample_bytes;
    size_t nstacks = mt__trace_info(t)->nstacks;
    r->nsites = nstacks;
    r->sites = calloc(nstacks + 1, sizeof *r->sites);
    r->blocks_cap = INITIAL_BLOCKS;
    r->blocks_shift = 64 - INITIAL_BLOCKS_LOG2;
    r->blocks = table_alloc(r->blocks_cap);
    r->threads_cap = INITIAL_THREADS;
    r->threads = calloc(r->threads_cap, sizeof *r->threads);
    if (!r->sites || !r->blocks || !r->threads)
        goto fail;
    for (size_t i = 0; i < nstacks; i++)
        r->sites[i].stack = (uint32_t)i;
    r->sites[nstacks].stack = MT_REPLAY_NO_STACK;
    return r;
fail:
    mt__replay_free(r);
    return NULL;
}

/* Applies one event; see replay.h. */
int mt__replay_feed(mt_replay_t *r, const mt_event_t *ev)
{
    if (ev->op == MT_EV_MARKER)
        return on_marker(r, ev);
    if (mt_op_allocates(ev->op)) {
        r->totals.events++;
        return on_alloc(r, ev);
    }
    if (mt_op_frees(ev->op)) {
        r->totals.events++;
        return on_free(r, ev);
    }
    r->totals.ignored_events++;
    return 0;
}

/* Settles the peak shares, leaks and peak time; see replay.h. */
int mt__replay_finish(mt_replay_t *r)
{
    if (r->finished)
        return 0;
    for (size_t i = 0; i <= r->nsites; i++)
        touch(r, &r->sites[i]);
    mt_totals_t *t = &r->totals;
    t->leaked_bytes = t->live_bytes;
    t->leaked_allocations = t->live_allocations;
    t->peak_time_ns = t->peak_bytes ? mt__trace_time_of(r->trace, t->peak_seq) : 0;
    t->threads = r->threads_used;
    r->finished = true;
    return 0;
}

/* Starts loading the cache line of an event's home slot, some events
 * ahead: with a table much larger than the caches, waiting for that line
 * is most of an event's cost, and the loads of several events overlap when
 * they are started early. A hint only: the table may grow in between. */
static void block_prefetch(const mt_replay_t *r, const mt_event_t *ev)
{
    __builtin_prefetch(&r->blocks[block_home(r, ev->ptr)], 1);
}

/* Applies n events, each slot prefetched PREFETCH_AHEAD events before it is
 * needed, and reports progress; *done counts the events applied so far. */
static int feed_all(mt_replay_t *r, const mt_event_t *evs, size_t n, uint64_t *done, uint64_t total)
{
    int rc;
    for (size_t i = 0; i < n && i < PREFETCH_AHEAD; i++)
        block_prefetch(r, &evs[i]);
    for (size_t i = 0; i < n; i++) {
        if (i + PREFETCH_AHEAD < n)
            block_prefetch(r, &evs[i + PREFETCH_AHEAD]);
        if ((rc = mt__replay_feed(r, &evs[i])) < 0)
            return rc;
        if (r->opt.progress && ++*done % PROGRESS_EVERY == 0)
            r->opt.progress(r->opt.progress_ctx, *done, total);
    }
    return 0;
}

/* ---- reading ahead ----
 *
 * Decoding and merging the streams is about half of a replay's work, and
 * it does not depend on the replay's state, so on a machine with a second
 * CPU a reader thread decodes batches of events while this thread applies
 * the previous ones. They meet at a ring of AHEAD_BATCHES batches: the
 * reader fills batch b once the replay has emptied batch b - AHEAD_BATCHES,
 * and each side waits on the other's counter, spinning briefly and then in
 * futex(2), woken only when it sleeps. The reader alone touches the trace's
 * cursors; the replay reads only what opening the trace built (stacks,
 * labels, times), which nothing changes. Events come out exactly as
 * mt__trace_next_batch gives them, so the result is the same either way. */

#define AHEAD_BATCH 1024u
#define AHEAD_BATCHES 8u
#define AHEAD_SPINS 200
/* Traces with fewer events are replayed in one thread: a thread costs more. */
#define AHEAD_MIN_EVENTS (1u << 16)

typedef struct ahead {
    mt_trace_t *trace;
    _Atomic uint32_t filled;   /* batches the reader has filled */
    _Atomic uint32_t emptied;  /* batches the replay is done with */
    _Atomic uint32_t sleepers; /* threads in futex_wait on either counter */
    _Atomic bool stop;         /* the replay failed: the reader stops */
    int count[AHEAD_BATCHES];  /* events in each batch */
    int end[AHEAD_BATCHES];    /* 1 more to come, 0 the trace ended, < 0 the reader's error */
    mt_event_t ev[AHEAD_BATCHES][AHEAD_BATCH];
} ahead_t;

/* Tells the CPU this thread is spinning. */
static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* Waits until *w is no longer old. */
static void ahead_wait(ahead_t *a, _Atomic uint32_t *w, uint32_t old)
{
    for (int i = 0; i < AHEAD_SPINS; i++) {
        if (atomic_load_explicit(w, memory_order_acquire) != old)
            return;
        cpu_relax();
    }
    while (atomic_load(w) == old) {
        atomic_fetch_add(&a->sleepers, 1);
        if (atomic_load(w) == old)
            syscall(SYS_futex, w, FUTEX_WAIT_PRIVATE, old, NULL, NULL, 0);
        atomic_fetch_sub(&a->sleepers, 1);
    }
}

/* Moves *w on by one and wakes the other side if it sleeps. */
static void ahead_bump(ahead_t *a, _Atomic uint32_t *w)
{
    atomic_fetch_add(w, 1);
    if (atomic_load(&a->sleepers))
        syscall(SYS_futex, w, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

static void *ahead_main(void *arg)
{
    ahead_t *a = arg;
    for (uint32_t b = 0;; b++) {
        if (b - atomic_load_explicit(&a->emptied, memory_order_acquire) >= AHEAD_BATCHES)
            ahead_wait(a, &a->emptied, b - AHEAD_BATCHES);
        if (atomic_load(&a->stop))
            return NULL;
        uint32_t k = b % AHEAD_BATCHES;
        int n = 0, r = 1;
        while (n < (int)AHEAD_BATCH && r > 0)
            if ((r = mt__trace_next_batch(a->trace, a->ev[k] + n, AHEAD_BATCH - (size_t)n)) > 0)
                n += r;
        a->count[k] = n;
        a->end[k] = r > 0 ? 1 : r;
        ahead_bump(a, &a->filled);
        if (r <= 0)
            return NULL;
    }
}

/* Replays t with a reader thread; returns 1 when the thread could not be
 * started (the caller reads inline), else as mt__replay_run. */
static int run_ahead(mt_replay_t *r, mt_trace_t *t, uint64_t total)
{
    ahead_t *a = malloc(sizeof *a);
    pthread_t th;
    uint64_t done = 0;
    int rc = 0;
    bool stopped = false;
    if (!a)
        return 1;
    a->trace = t;
    atomic_init(&a->filled, 0);
    atomic_init(&a->emptied, 0);
    atomic_init(&a->sleepers, 0);
    atomic_init(&a->stop, false);
    if (pthread_create(&th, NULL, ahead_main, a) != 0) {
        free(a);
        return 1;
    }
    for (uint32_t b = 0;; b++) {
        if (atomic_load_explicit(&a->filled, memory_order_acquire) == b)
            ahead_wait(a, &a->filled, b);
        uint32_t k = b % AHEAD_BATCHES;
        if ((rc = feed_all(r, a->ev[k], (size_t)a->count[k], &done, total)) < 0) {
            stopped = true;
            atomic_store(&a->stop, true);
            ahead_bump(a, &a->emptied);
            break;
        }
        rc = a->end[k];
        ahead_bump(a, &a->emptied);
        if (rc <= 0)
            break;
    }
    pthread_join(th, NULL);
    free(a);
    /* Stopped by the replay: the reader may have read on into an error of
     * its own that an inline replay would never have met. */
    if (rc < 0 && stopped)
        mt__trace_rewind(t);
    return rc;
}

/* How many CPUs this process may run on. */
static int usable_cpus(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        return CPU_COUNT(&set);
    return 1;
}

/* Replays a whole trace; see replay.h. A reader error is returned once the
 * events before it were applied. */
int mt__replay_run(mt_trace_t *t, const mt_replay_options_t *opt, mt_replay_t **out)
{
    int rc = -ENOMEM, next = 1;
    *out = NULL;
    mt_replay_t *r = mt__replay_new(t, opt);
    if (!r)
        goto fail;
    uint64_t total = mt__trace_info(t)->events, done = 0;
    mt__trace_rewind(t);
    rc = 1;
    if (!r->opt.read_inline && total >= AHEAD_MIN_EVENTS && usable_cpus() > 1)
        rc = run_ahead(r, t, total);
    if (rc == 1) {
        mt_event_t evs[AHEAD_BATCH / 4];
        while ((next = mt__trace_next_batch(t, evs, sizeof evs / sizeof evs[0])) > 0)
            if ((rc = feed_all(r, evs, (size_t)next, &done, total)) < 0)
                goto fail;
        rc = next;
    }
    if (rc < 0)
        goto fail;
    if (r->opt.progress)
        r->opt.progress(r->opt.progress_ctx, total, total);
    mt__replay_finish(r);
    *out = r;
    return 0;
fail:
    mt__replay_free(r);
    return rc;
}

/* Frees the engine; see replay.h. */
void mt__replay_free(mt_replay_t *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->nsnaps; i++)
        free(r->snaps[i].sites);
    free(r->snaps);
    free(r->sites);
    table_free(r->blocks, r->blocks_cap);
    free(r->threads);
    free(r);
}

/* Returns the totals; see replay.h. */
const mt_totals_t *mt__replay_totals(const mt_replay_t *r)
{
    return &r->totals;
}

/* Returns the sites array; see replay.h. */
const mt_site_t *mt__replay_sites(const mt_replay_t *r, size_t *n)
{
    *n = r->nsites + 1;
    return r->sites;
}

/* Returns one site by stack id; see replay.h. */
const mt_site_t *mt__replay_site(const mt_replay_t *r, uint32_t stack)
{
    if (stack == MT_REPLAY_NO_STACK)
        return &r->sites[r->nsites];
    if (stack >= r->nsites)
        return NULL;
    return &r->sites[stack];
}

/* Returns the snapshots; see replay.h. */
const mt_snapshot_t *mt__replay_snapshots(const mt_replay_t *r, size_t *n)
{
    *n = r->nsnaps;
    return r->snaps;
}

/* Looks a live block up by address; see replay.h. */
const mt_block_t *mt__replay_block(const mt_replay_t *r, uint64_t ptr)
{
    if (!ptr)
        return NULL;
    size_t i = block_slot(r, ptr);
    return r->blocks[i].ptr ? &r->blocks[i] : NULL;
}

/* Visits the live blocks; see replay.h. */
int mt__replay_foreach_live(const mt_replay_t *r, int (*fn)(void *ctx, const mt_block_t *b), void *ctx)
{
    for (size_t i = 0; i < r->blocks_cap; i++) {
        if (!r->blocks[i].ptr)
            continue;
        int rc = fn(ctx, &r->blocks[i]);
        if (rc)
            return rc;
    }
    return 0;
}
