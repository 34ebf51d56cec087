/* test_ring.c - unit tests of the preload library's rings and writer thread, without LD_PRELOAD.
 *
 * This binary links the preload objects (all but hooks.c, which defines
 * malloc) and drives them the way the hooks do: producer threads take a ring
 * with mt__ring_get, intern stacks, reserve a slot, take a seq and commit
 * the event, while the real writer thread drains the rings into a trace
 * file. With shared addresses, producers pass a small pool of addresses
 * between them the way an allocator does (an address is taken again only
 * after its free is committed), so the writer must put the rings in seq
 * order to tell which allocation each free ends.
 * The trace is then read back with the analyzer's reader (merged stream)
 * and its raw record iterator (file order), and every event is checked
 * against what its producer pushed: each exactly once, with its size, its
 * stack's frames and its thread, per-stream and global sequence order, and
 * each distinct stack written exactly once, also when several rings intern
 * the same stack. Each Criterion test runs in a process of its own, so the
 * library's global state starts fresh in every test. Producers never wait
 * for each other or sleep; a full ring makes the producer wait for the
 * writer (MEMTRACK_RING_WAIT_MS is raised so that no wait ever times out),
 * which is what the small-ring test exercises. The stress test is meant to
 * run under ThreadSanitizer too: every datum shared between test threads is
 * atomic or published through pthread_join.
 */
#include <criterion/criterion.h>

#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "../../preload/internal.h"
#include "e2e.h"

#define MAX_PRODUCERS 64
#define SHARED_STACKS 16 /* stacks every producer interns too */

typedef struct plan {
    unsigned producers;   /* threads at once */
    unsigned waves;       /* producers run in this many successive waves */
    unsigned events;      /* allocations per producer (each followed by its free) */
    unsigned own_stacks;  /* distinct stacks per producer */
    unsigned marker_every; /* a snapshot marker after every N allocations, 0 = none */
    bool flush_midway;    /* producers also ask for non-final flushes */
    bool shared;          /* addresses come from a pool all producers share */
    unsigned window;      /* keep this many blocks live, freed in random order (0: free at once) */
    bool flusher;         /* another thread asks for a flush every millisecond */
    unsigned stall_ms;    /* shared: producer 0 stalls this long once inside a free's window */
} plan_t;

typedef struct producer {
    const plan_t *plan;
    unsigned id;          /* 0 .. producers * waves - 1 */
    uint32_t tid;         /* written by the thread, read after join */
    uint32_t label;
} producer_t;

static char *run_dir;
static char trace_path[4096];
/* Per (producer, event): the seq of its allocation, written by the
 * producer, read after pthread_join. */
static uint64_t *alloc_seqs;
/* The shared pool: 0 free, 1 taken. */
#define POOL 64
static _Atomic int pool[POOL];

/* ---- what a producer pushes, by construction ---- */

static uint64_t ptr_of(unsigned id, unsigned i)
{
    return ((uint64_t)(id + 1) << 32) | ((uint64_t)i << 4);
}

static uint64_t size_of(unsigned id, unsigned i)
{
    return 1 + ((uint64_t)id * 7919u + i) % 100000u;
}

/* Stack number k of producer id: shared (k < SHARED_STACKS) or its own. */
static uint32_t frames_of(unsigned id, unsigned k, uint64_t *frames)
{
    if (k < SHARED_STACKS) {
        frames[0] = 0x5000000u + k;
        frames[1] = 0x5100000u;
        return 2;
    }
    frames[0] = 0x1000000u + k;
    frames[1] = 0x2000000u + id;
    frames[2] = 0x3000000u;
    return 3 + k % 3; /* depths 3 to 5 */
}

static unsigned stack_of(const plan_t *p, unsigned i)
{
    return (i * 13u) % (p->own_stacks + SHARED_STACKS);
}

/* Pushes the free of the block at ptr. */
static void push_free(mt_ring_t *r, uint64_t ptr)
{
    mt_ring_event_t *slot = mt__ring_reserve(r);
    cr_assert(slot, "no slot");
    mt__ring_commit(slot, mt__next_seq(), ptr, 0, 0, MT_OP_FREE);
}

static void *produce(void *arg)
{
    producer_t *pr = arg;
    const plan_t *p = pr->plan;
    mt_ring_t *r = mt__ring_get();
    cr_assert(r, "no ring for producer %u", pr->id);
    pr->tid = (uint32_t)syscall(SYS_gettid);
    unsigned *live = calloc(p->window + 1, sizeof *live), nlive = 0;
    cr_assert(live);
    uint64_t rnd = 0x9E3779B97F4A7C15ull * (pr->id + 1);
    for (unsigned i = 0; i < p->events; i++) {
        uint64_t frames[8] = {0};
        uint32_t depth = frames_of(pr->id, stack_of(p, i), frames);
        for (uint32_t f = 3; f < depth; f++)
            frames[f] = 0x4000000u + f;
        uint32_t stack = mt__ring_intern_stack(r, frames, depth, 0);
        if (stack == UINT32_MAX)
            cr_assert_fail("producer %u: the ring's stack table is full", pr->id);
        uint64_t ptr = ptr_of(pr->id, i);
        unsigned slot_no = 0;
        if (p->shared) {
            for (slot_no = (pr->id * 7 + i) % POOL;; slot_no = (slot_no + 1) % POOL) {
                int expected = 0;
                if (atomic_compare_exchange_weak(&pool[slot_no], &expected, 1))
                    break;
            }
            ptr = 0x10000u + 16u * slot_no;
        }
        mt_ring_event_t *slot = mt__ring_reserve(r);
        cr_assert(slot, "producer %u: no slot", pr->id);
        uint64_t seq = mt__next_seq();
        mt__ring_commit(slot, seq, ptr, size_of(pr->id, i), stack, MT_OP_MALLOC);
        alloc_seqs[(size_t)pr->id * p->events + i] = seq;
        if (p->window) {
            /* Many live blocks, freed in random order: the writer's
             * address table fills, collides and shifts on deletion. */
            live[nlive++] = i;
            if (nlive > p->window) {
                rnd = rnd * 6364136223846793005ull + 1442695040888963407ull;
                unsigned k = (unsigned)((rnd >> 33) % nlive);
                push_free(r, ptr_of(pr->id, live[k]));
                live[k] = live[--nlive];
            }
        } else {
            slot = mt__ring_reserve(r);
            cr_assert(slot, "producer %u: no slot", pr->id);
            seq = mt__next_seq();
            if (p->shared) {
                /* Like realloc's free half: the address is given back (the
                 * real realloc) before the event is committed, so another
                 * thread may allocate it, and commit, first. */
                atomic_store(&pool[slot_no], 0);
                if (i % 64 == 0)
                    sched_yield();
                if (p->stall_ms && pr->id == 0 && i == p->events / 2)
                    usleep(p->stall_ms * 1000u);
            }
            mt__ring_commit(slot, seq, ptr, 0, 0, MT_OP_FREE);
        }
        if (p->marker_every && (i + 1) % p->marker_every == 0) {
            mt_ring_event_t *mslot = mt__ring_reserve(r);
            cr_assert(mslot);
            mt__ring_commit(mslot, mt__next_seq(), pr->label, mt__os_now_ns(), 0, MT_EV_MARKER_OP);
        }
        if (p->flush_midway && i == p->events / 2)
            mt__writer_flush(MT_FLUSH_PLAIN, 10000);
    }
    while (nlive) {
        rnd = rnd * 6364136223846793005ull + 1442695040888963407ull;
        unsigned k = (unsigned)((rnd >> 33) % nlive);
        push_free(r, ptr_of(pr->id, live[k]));
        live[k] = live[--nlive];
    }
    free(live);
    return NULL;
}

static _Atomic int producers_done;

/* Asks for a flush every millisecond until the producers are done: every
 * flush writes all that is committed, while producers sit inside frees. */
static void *flush_often(void *arg)
{
    (void)arg;
    while (!atomic_load(&producers_done)) {
        mt__writer_flush(MT_FLUSH_PLAIN, 10000);
        usleep(1000);
    }
    return NULL;
}

/* ---- the writer's life ---- */

static void start_writer(const char *ring_events)
{
    run_dir = mt_e2e_tempdir();
    cr_assert(run_dir);
    snprintf(trace_path, sizeof trace_path, "%s/ring.mtrace", run_dir);
    setenv("MEMTRACK_OUTPUT", trace_path, 1);
    if (ring_events)
        setenv("MEMTRACK_RING_EVENTS", ring_events, 1);
    else
        unsetenv("MEMTRACK_RING_EVENTS");
    setenv("MEMTRACK_RING_WAIT_MS", "600000", 1);
    mt__pid = getpid();
    mt__config_load();
    cr_assert_eq(mt__rings_init(), 0);
    cr_assert_eq(mt__writer_start(false, 0), 0, "the writer did not start");
    atomic_store(&mt__state, MT_STATE_ACTIVE);
}

static void stop_writer(void)
{
    mt__writer_flush(MT_FLUSH_FINAL, 60000);
}

static void cleanup(void)
{
    if (run_dir) {
        mt_e2e_remove_tree(run_dir);
        free(run_dir);
        run_dir = NULL;
    }
}

/* Runs the plan's producers, wave after wave; fills prs (producers * waves). */
static void run_plan(const plan_t *p, producer_t *prs)
{
    cr_assert_leq(p->producers, MAX_PRODUCERS);
    uint32_t label = p->marker_every ? mt__label_intern("ring-test") : 0;
    pthread_t flusher;
    atomic_store(&producers_done, 0);
    if (p->flusher)
        cr_assert_eq(pthread_create(&flusher, NULL, flush_often, NULL), 0);
    for (unsigned w = 0; w < p->waves; w++) {
        pthread_t threads[MAX_PRODUCERS];
        for (unsigned k = 0; k < p->producers; k++) {
            producer_t *pr = &prs[w * p->producers + k];
            *pr = (producer_t){p, w * p->producers + k, 0, label};
            cr_assert_eq(pthread_create(&threads[k], NULL, produce, pr), 0);
        }
        for (unsigned k = 0; k < p->producers; k++)
            pthread_join(threads[k], NULL);
    }
    atomic_store(&producers_done, 1);
    if (p->flusher)
        pthread_join(flusher, NULL);
}

/* ---- checks ---- */

/* Mismatches found in a pass, counted without a Criterion assertion per
 * event (millions of them), with the first one described. */
typedef struct faults {
    uint64_t n;
    char first[256];
} faults_t;

static void fault(faults_t *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void fault(faults_t *f, const char *fmt, ...)
{
    if (f->n++ == 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(f->first, sizeof f->first, fmt, ap);
        va_end(ap);
    }
}

/* Reads the merged stream and checks every event against its producer. */
static void check_merged(const plan_t *p, const producer_t *prs)
{
    unsigned n = p->producers * p->waves;
    uint64_t per_producer_markers = p->marker_every ? p->events / p->marker_every : 0;
    uint64_t total = (uint64_t)n * (2 * p->events + per_producer_markers);
    uint8_t *seen = calloc((size_t)n * p->events, 1); /* bit 0 alloc, bit 1 free */
    cr_assert(seen);
    /* seq of an allocation -> 1 + its (producer, event) index */
    uint64_t *owner = calloc(total + 1, sizeof *owner);
    cr_assert(owner);
    for (size_t k = 0; k < (size_t)n * p->events; k++)
        if (alloc_seqs[k] && alloc_seqs[k] <= total)
            owner[alloc_seqs[k]] = k + 1;
    mt_e2e_trace_t tr;
    cr_assert_eq(mt_e2e_trace_open(&tr, trace_path), 0, "cannot read the trace: %s", tr.err);
    const mt_trace_info_t *info = tr.info;
    cr_expect(info->complete);
    cr_expect_not(info->truncated);
    cr_expect_eq(info->dropped, 0, "%llu events dropped", (unsigned long long)info->dropped);
    cr_expect_eq(info->events, 2ull * n * p->events);
    cr_expect_eq(info->nstacks, (size_t)n * p->own_stacks + SHARED_STACKS,
                 "%zu stacks, expected %u per producer and %u shared", info->nstacks, p->own_stacks,
                 SHARED_STACKS);
    cr_expect_eq(info->nmarkers, n * per_producer_markers);
    if (p->stall_ms) {
        /* Out of order, the stalled free may be written by address and the
         * reuse of its address as a lost free: what is promised is a
         * trace that reads, with every event. */
        mt_event_t e;
        uint64_t c = 0;
        int r2;
        mt__trace_rewind(tr.t);
        while ((r2 = mt__trace_next(tr.t, &e)) == 1)
            c++;
        cr_expect_eq(r2, 0, "reader: %s", mt__trace_error(tr.t));
        cr_expect_eq(c, total);
        mt_e2e_trace_close(&tr);
        free(seen);
        free(owner);
        return;
    }

    faults_t order = {0}, unknown = {0}, tids = {0}, twice = {0}, sizes = {0}, stacks = {0}, labels = {0};
    mt_event_t ev;
    uint64_t count = 0, prev = 0, markers = 0;
    int rc;
    mt__trace_rewind(tr.t);
    while ((rc = mt__trace_next(tr.t, &ev)) == 1) {
        count++;
        if (ev.seq <= prev)
            fault(&order, "seq %llu after %llu", (unsigned long long)ev.seq, (unsigned long long)prev);
        prev = ev.seq;
        if (ev.op == MT_EV_MARKER) {
            markers++;
            const char *text = mt__trace_label(tr.t, ev.label);
            if (!text || strcmp(text, "ring-test"))
                fault(&labels, "marker label %s", text ? text : "(none)");
            continue;
        }
        /* Version 4: an allocation is the block keyed by its own seq, a
         * free names the seq of the allocation it ends. */
        uint64_t block = ev.ptr & ~(1ull << 63);
        uint64_t k = ev.ptr >> 63 && block <= total ? owner[block] : 0;
        unsigned id = k ? (unsigned)((k - 1) / p->events) : n, i = k ? (unsigned)((k - 1) % p->events) : 0;
        if (id >= n || (ev.op != MT_OP_MALLOC && ev.op != MT_OP_FREE) ||
            (ev.op == MT_OP_MALLOC && block != ev.seq)) {
            fault(&unknown, "op %u seq %llu block %#llx: nobody pushed it", ev.op, (unsigned long long)ev.seq,
                  (unsigned long long)ev.ptr);
            continue;
        }
        if (ev.tid != prs[id].tid)
            fault(&tids, "producer %u's event carries tid %u, expected %u", id, ev.tid, prs[id].tid);
        uint8_t *s = &seen[(size_t)id * p->events + i];
        if (ev.op == MT_OP_MALLOC) {
            if (*s != 0)
                fault(&twice, "allocation %u of producer %u seen twice or after its free", i, id);
            *s |= 1;
            if (ev.size != size_of(id, i))
                fault(&sizes, "producer %u event %u: size %llu", id, i, (unsigned long long)ev.size);
            const mt_stack_t *st = mt__trace_stack(tr.t, ev.stack);
            uint64_t frames[8] = {0};
            uint32_t depth = frames_of(id, stack_of(p, i), frames);
            for (uint32_t f = 3; f < depth; f++)
                frames[f] = 0x4000000u + f;
            if (!st || st->depth != depth || memcmp(st->frames, frames, depth * sizeof *frames))
                fault(&stacks, "producer %u event %u: stack %u is not the one it pushed", id, i, ev.stack);
        } else {
            if (*s != 1)
                fault(&twice, "free %u of producer %u seen twice or before its allocation", i, id);
            *s |= 2;
        }
    }
    cr_assert_eq(rc, 0, "reader: %s", mt__trace_error(tr.t));
    cr_expect_eq(order.n, 0, "the merged stream is out of order %llu times; first: %s",
                 (unsigned long long)order.n, order.first);
    cr_expect_eq(unknown.n, 0, "%llu unknown events; first: %s", (unsigned long long)unknown.n, unknown.first);
    cr_expect_eq(tids.n, 0, "%llu events with a wrong tid; first: %s", (unsigned long long)tids.n, tids.first);
    cr_expect_eq(twice.n, 0, "%llu events repeated; first: %s", (unsigned long long)twice.n, twice.first);
    cr_expect_eq(sizes.n, 0, "%llu wrong sizes; first: %s", (unsigned long long)sizes.n, sizes.first);
    cr_expect_eq(stacks.n, 0, "%llu wrong stacks; first: %s", (unsigned long long)stacks.n, stacks.first);
    cr_expect_eq(labels.n, 0, "%llu wrong marker labels; first: %s", (unsigned long long)labels.n, labels.first);
    cr_expect_eq(count, total, "%llu events read, %llu pushed", (unsigned long long)count,
                 (unsigned long long)total);
    cr_expect_eq(markers, n * per_producer_markers);
    /* Only the producers took sequence numbers: they are exactly 1 .. total. */
    cr_expect_eq(tr.tally.first_seq, 1);
    cr_expect_eq(prev, total);
    size_t missing = 0;
    for (size_t k = 0; k < (size_t)n * p->events; k++)
        missing += seen[k] != 3;
    cr_expect_eq(missing, 0, "%zu pushed allocations or frees are not in the trace", missing);
    mt_e2e_trace_close(&tr);
    free(seen);
    free(owner);
}

typedef struct stack_copy {
    uint64_t epoch;
    uint64_t depth;
    uint64_t frames[8];
} stack_copy_t;

static int by_content(const void *a, const void *b)
{
    return memcmp(a, b, sizeof(stack_copy_t));
}

/* Reads the records in file order: per stream, seqs strictly increase from
 * chunk to chunk; no chunk holds more than max_chunk events (what a ring
 * holds: the writer drains at most that much at once); each stack id is
 * defined once, ids are dense, and no two STACK records hold the same stack. */
static void check_file_order(uint64_t max_chunk)
{
    mt_record_iter_t *it;
    mt_record_t rec;
    mt_event_t ev;
    char err[512];
    uint64_t last_seq[1024] = {0};
    uint64_t stacks = 0, chunks = 0;
    faults_t order = {0}, big = {0};
    int rc;
    cr_assert_eq(mt__record_open(trace_path, &it, err, sizeof err), 0, "%s", err);
    size_t cap = 4096;
    stack_copy_t *copies = malloc(cap * sizeof *copies);
    cr_assert(copies);
    while ((rc = mt__record_next(it, &rec)) == 1) {
        if (rec.type == MT_REC_STACK) {
            cr_assert_eq(rec.u.stack.id, stacks, "STACK id %llu, expected %llu: ids are dense and written once",
                         (unsigned long long)rec.u.stack.id, (unsigned long long)stacks);
            cr_assert_leq(rec.u.stack.depth, 8);
            if (stacks == cap) {
                cap *= 2;
                copies = realloc(copies, cap * sizeof *copies);
                cr_assert(copies);
            }
            stack_copy_t *c = &copies[stacks];
            memset(c, 0, sizeof *c);
            c->epoch = rec.u.stack.epoch;
            c->depth = rec.u.stack.depth;
            memcpy(c->frames, rec.u.stack.frames, c->depth * sizeof c->frames[0]);
            stacks++;
        } else if (rec.type == MT_REC_CHUNK) {
            uint64_t s = rec.u.chunk.stream, n = 0;
            chunks++;
            cr_assert_lt(s, 1024, "stream %llu: more rings than expected", (unsigned long long)s);
            while ((rc = mt__record_event(it, &ev)) == 1) {
                if (ev.seq <= last_seq[s])
                    fault(&order, "stream %llu: seq %llu after %llu", (unsigned long long)s,
                          (unsigned long long)ev.seq, (unsigned long long)last_seq[s]);
                last_seq[s] = ev.seq;
                n++;
            }
            cr_assert_eq(rc, 0, "%s", mt__record_error(it));
            cr_expect_eq(n, rec.u.chunk.count);
            if (n > max_chunk)
                fault(&big, "a chunk of %llu events from a ring of %llu", (unsigned long long)n,
                      (unsigned long long)max_chunk);
        }
    }
    cr_assert_eq(rc, 0, "%s", mt__record_error(it));
    cr_expect_gt(chunks, 0);
    cr_expect_eq(order.n, 0, "per-stream seqs out of order %llu times; first: %s", (unsigned long long)order.n,
                 order.first);
    cr_expect_eq(big.n, 0, "%llu chunks larger than a ring; first: %s", (unsigned long long)big.n, big.first);
    /* Sorted by content, two equal neighbours would be one stack written twice. */
    qsort(copies, stacks, sizeof *copies, by_content);
    for (uint64_t a = 1; a < stacks; a++)
        cr_assert_neq(by_content(&copies[a - 1], &copies[a]), 0, "a stack of depth %llu is written twice",
                      (unsigned long long)copies[a].depth);
    free(copies);
    mt__record_close(it);
}

static void run_and_check(const plan_t *p, const char *ring_events)
{
    producer_t *prs = calloc((size_t)p->producers * p->waves, sizeof *prs);
    cr_assert(prs);
    alloc_seqs = calloc((size_t)p->producers * p->waves * p->events, sizeof *alloc_seqs);
    cr_assert(alloc_seqs);
    start_writer(ring_events);
    run_plan(p, prs);
    stop_writer();
    check_merged(p, prs);
    check_file_order(ring_events ? strtoull(ring_events, NULL, 10) : 32768);
    free(prs);
    free(alloc_seqs);
}

/* ---- tests ---- */

TestSuite(ring, .fini = cleanup, .timeout = 120);

Test(ring, every_event_pushed_by_many_threads_is_in_the_trace_exactly_once)
{
    plan_t p = {.producers = 8, .waves = 1, .events = 20000, .own_stacks = 50};
    run_and_check(&p, NULL);
}

Test(ring, per_stream_seqs_increase_and_each_distinct_stack_is_written_once)
{
    /* Every producer interns the SHARED_STACKS stacks too, in its own ring:
     * the writer must write each of them once, under one id. */
    plan_t p = {.producers = 4, .waves = 1, .events = 5000, .own_stacks = 200};
    run_and_check(&p, NULL);
}

Test(ring, a_small_ring_under_stress_loses_nothing)
{
    /* 1024 slots and 200,000 events per producer: every ring fills up many
     * times, and each producer must wait for the writer instead of dropping. */
    plan_t p = {.producers = 6, .waves = 1, .events = 100000, .own_stacks = 20};
    run_and_check(&p, "1024");
}

Test(ring, rings_of_exited_threads_are_handed_on_without_losing_events)
{
    /* 50 waves of 4 short-lived producers: exited threads' rings are drained
     * and reused by later threads, whose events carry their own tids. */
    plan_t p = {.producers = 4, .waves = 50, .events = 300, .own_stacks = 5};
    run_and_check(&p, "1024");
}

Test(ring, stress_with_markers_flushes_and_growing_stack_tables_keeps_everything)
{
    /* Many threads at once, each interning enough stacks to grow its table
     * several times while the writer maps them, placing snapshot markers and
     * asking for flushes: the test to run under ThreadSanitizer. */
    plan_t p = {.producers = 16, .waves = 2, .events = 6000, .own_stacks = 2500, .marker_every = 1000,
                .flush_midway = true};
    run_and_check(&p, "4096");
}

Test(ring, frees_name_their_allocation_when_threads_pass_addresses_around)
{
    /* 8 threads take 64 addresses from a shared pool and give them back:
     * an address is allocated again in another ring right after its free,
     * often within one writer round. Every free must name the allocation
     * it ends, not the address's next or previous one. */
    plan_t p = {.producers = 8, .waves = 1, .events = 30000, .own_stacks = 11, .shared = true};
    run_and_check(&p, "1024");
}

Test(ring, frees_name_their_allocation_with_many_blocks_live)
{
    /* 4 threads keep 6000 blocks live each and free them in random order:
     * the writer's address table grows, collides and shifts entries back
     * on every deletion. */
    plan_t p = {.producers = 4, .waves = 1, .events = 40000, .own_stacks = 11, .window = 6000};
    run_and_check(&p, "4096");
}

Test(ring, flushes_while_threads_pass_addresses_around_keep_every_match)
{
    /* A flush writes every committed event at once; a free still pending
     * in realloc's window must not be matched after the allocation that
     * reuses its address. */
    plan_t p = {.producers = 6, .waves = 1, .events = 20000, .own_stacks = 11, .shared = true,
                .flusher = true};
    run_and_check(&p, "1024");
}

Test(ring, a_thread_stalled_inside_a_free_leaves_a_readable_trace)
{
    /* Producer 0 stalls 400 ms between giving an address back and
     * committing its free: past the writer's patience, so the other rings
     * go on without it and its free arrives out of order. The trace must
     * still read, with every event. */
    plan_t p = {.producers = 4, .waves = 1, .events = 20000, .own_stacks = 11, .shared = true,
                .stall_ms = 400};
    run_and_check(&p, "1024");
}

/* ---- waiting for room ---- */

/* Rings of 1024 events and no writer thread: what drains a ring is the
 * test itself. */
static void start_without_writer(const char *wait_ms)
{
    setenv("MEMTRACK_RING_EVENTS", "1024", 1);
    setenv("MEMTRACK_RING_WAIT_MS", wait_ms, 1);
    mt__config_load();
    cr_assert_eq(mt__rings_init(), 0);
    atomic_store(&mt__state, MT_STATE_ACTIVE);
}

static mt_ring_t *fill_own_ring(void)
{
    mt_ring_t *r = mt__ring_get();
    cr_assert(r);
    for (unsigned i = 0; i < 1024; i++) {
        mt_ring_event_t *slot = mt__ring_reserve(r);
        cr_assert(slot, "slot %u of a ring that had room", i);
        mt__ring_commit(slot, mt__next_seq(), 16 * (i + 1), 0, 0, MT_OP_FREE);
    }
    return r;
}

static uint64_t thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

Test(ring, a_producer_waiting_on_a_full_ring_sleeps_instead_of_spinning)
{
    /* On two cores running two busy threads, CPU a waiting producer
     * spends is CPU the writer it waits for does not get. */
    start_without_writer("300");
    mt_ring_t *r = fill_own_ring();
    uint64_t cpu = thread_cpu_ns(), wall = mt__os_now_ns();
    mt_ring_event_t *slot = mt__ring_reserve(r);
    cpu = thread_cpu_ns() - cpu;
    wall = mt__os_now_ns() - wall;
    cr_expect_null(slot, "a full ring that nothing drains gave a slot");
    cr_expect_eq(atomic_load(&r->dropped), 1, "the event that found no room counted %llu times as dropped",
                 (unsigned long long)atomic_load(&r->dropped));
    cr_expect_geq(wall, 300000000ull, "gave up after %llu ms, before MEMTRACK_RING_WAIT_MS",
                  (unsigned long long)(wall / 1000000));
    cr_expect_lt(cpu * 4, wall, "waiting %llu ms took %llu ms of CPU", (unsigned long long)(wall / 1000000),
                 (unsigned long long)(cpu / 1000000));
}

typedef struct drainer {
    mt_ring_t *r;
    unsigned delay_ms;
} drainer_t;

/* Frees half the ring after a while, as the writer does after a drain. */
static void *drain_later(void *arg)
{
    const drainer_t *d = arg;
    struct timespec ts = {0, (long)d->delay_ms * 1000000L};
    nanosleep(&ts, NULL);
    atomic_fetch_add(&d->r->tail, 512);
    mt__ring_room_made();
    return NULL;
}

Test(ring, a_waiting_producer_goes_on_once_the_writer_makes_room)
{
    /* Room made after 50 ms: the producer goes on then, woken, not at the
     * end of its sleep (250 ms, which only bounds a writer that stopped). */
    start_without_writer("600000");
    mt_ring_t *r = fill_own_ring();
    drainer_t d = {r, 50};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, drain_later, &d), 0);
    uint64_t wall = mt__os_now_ns();
    mt_ring_event_t *slot = mt__ring_reserve(r);
    wall = mt__os_now_ns() - wall;
    pthread_join(t, NULL);
    cr_assert_not_null(slot, "the producer gave up instead of waiting for room");
    mt__ring_commit(slot, mt__next_seq(), 16, 0, 0, MT_OP_FREE);
    cr_expect_eq(atomic_load(&r->dropped), 0);
    cr_expect_geq(wall, 50000000ull, "a slot came before there was room");
    cr_expect_lt(wall, 200000000ull, "the producer waited %llu ms for room made after 50 ms: not woken",
                 (unsigned long long)(wall / 1000000));
}
