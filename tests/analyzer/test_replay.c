/* test_replay.c - tests of analyzer/replay.c: exact numbers on hand-built traces.
 *
 * Each test writes a small trace with the trace builder, replays it and
 * checks every number it is about: allocations, frees, peak and per-site
 * shares of it, leaks, temporaries, unknown frees and snapshots. Sequence
 * numbers are chosen by hand so that the global order is the one the test
 * describes, whatever chunk (thread) an event sits in.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "replay.h"
#include "trace_builder.h"

#define A 0x10000u
#define B 0x20000u
#define C 0x30000u

typedef struct fixture {
    char *path;
    mt_trace_t *trace;
    mt_replay_t *replay;
} fixture_t;

static mt_tb_t *new_trace(uint32_t nstacks)
{
    mt_tb_t *b = mt_tb_new();
    cr_assert(b);
    for (uint32_t i = 0; i < nstacks; i++) {
        uint64_t frames[2] = {0x401000u + 16u * i, 0x402000u};
        mt_tb_stack(b, i, 0, frames, 2);
    }
    return b;
}

/* Writes, opens and replays the trace; destroys the builder. */
static void replay(fixture_t *f, mt_tb_t *b, const mt_replay_options_t *opt)
{
    f->path = mt_tb_write_temp(b);
    mt_tb_destroy(b);
    cr_assert(f->path);
    char err[512] = "";
    int rc = mt__trace_open(f->path, &f->trace, err, sizeof err);
    cr_assert_eq(rc, 0, "open failed: %s", err);
    rc = mt__replay_run(f->trace, opt, &f->replay);
    cr_assert_eq(rc, 0, "replay failed: %d %s", rc, mt__trace_error(f->trace));
}

static void done(fixture_t *f)
{
    mt__replay_free(f->replay);
    mt__trace_close(f->trace);
    unlink(f->path);
    free(f->path);
}

static const mt_site_t *site(const fixture_t *f, uint32_t stack)
{
    const mt_site_t *s = mt__replay_site(f->replay, stack);
    cr_assert(s, "no site for stack %u", stack);
    return s;
}

Test(replay, cross_thread_free_is_matched)
{
    mt_tb_t *b = new_trace(1);
    mt_tb_chunk_begin(b, 0, 101, 1);
    mt_tb_alloc(b, MT_OP_MALLOC, 1, A, 100, 0);
    mt_tb_chunk_end(b);
    mt_tb_chunk_begin(b, 1, 102, 2);
    mt_tb_free(b, MT_OP_FREE, 2, A);
    mt_tb_chunk_end(b);
    mt_tb_end(b, 2, 1000, 2, 0, 1);
    fixture_t f;
    replay(&f, b, NULL);
    const mt_totals_t *t = mt__replay_totals(f.replay);
    cr_expect_eq(t->allocations, 1);
    cr_expect_eq(t->frees, 1);
    cr_expect_eq(t->bytes_freed, 100);
    cr_expect_eq(t->unknown_frees, 0);
    cr_expect_eq(t->leaked_bytes, 0);
    cr_expect_eq(t->leaked_allocations, 0);
    cr_expect_eq(t->temporary_allocations, 0, "freed by another thread: not temporary");
    cr_expect_eq(t->threads, 2);
    cr_expect_eq(site(&f, 0)->frees, 1);
    done(&f);
}

Test(replay, realloc_chain_counts_one_allocation_per_block)
{
    mt_tb_t *b = new_trace(2);
    mt_tb_chunk_begin(b, 0, 7, 1);
    mt_tb_alloc(b, MT_OP_MALLOC, 1, A, 10, 0);
    mt_tb_free(b, MT_OP_REALLOC_FREE, 2, A);
    mt_tb_alloc(b, MT_OP_REALLOC, 3, B, 20, 1);
    mt_tb_free(b, MT_OP_REALLOC_FREE, 4, B);
    mt_tb_alloc(b, MT_OP_REALLOC, 5, C, 40, 1);
    mt_tb_free(b, MT_OP_FREE, 6, C);
    mt_tb_chunk_end(b);
    mt_tb_end(b, 6, 1000, 6, 0, 2);
    fixture_t f;
    replay(&f, b, NULL);
    const mt_totals_t *t = mt__replay_totals(f.replay);
    cr_expect_eq(t->allocations, 3);
    cr_expect_eq(t->bytes_allocated, 70);
    cr_expect_eq(t->frees, 3);
    cr_expect_eq(t->bytes_freed, 70);
    cr_expect_eq(t->leaked_bytes, 0);
    cr_expect_eq(t->peak_bytes, 40);
    cr_expect_eq(t->peak_seq, 5);
    cr_expect_eq(t->events, 6);
    const mt_site_t *s0 = site(&f, 0), *s1 = site(&f, 1);
    cr_expect_eq(s0->allocations, 1);
    cr_expect_eq(s0->frees, 1, "the realloc's free half is charged to the malloc site");
    cr_expect_eq(s1->allocations, 2);
    cr_expect_eq(s1->bytes_allocated, 60);
    cr_expect_eq(s1->frees, 2);
    /* The free halves keep their data alive: only the final free(C) of the
     * thread's latest allocation is temporary. */
    cr_expect_eq(t->temporary_allocations, 1);
    cr_expect_eq(t->temporary_bytes, 40);
    cr_expect_eq(s0->temporary_allocations, 0);
    cr_expect_eq(s1->temporary_allocations, 1);
    cr_expect_eq(s1->max_live_bytes, 40);
    cr_expect_eq(s1->max_live_seq, 5);
    done(&f);
}

Test(replay, realloc_to_zero_is_a_free)
{
    mt_tb_t *b = new_trace(1);
    mt_tb_chunk_begin(b, 0, 7, 1);
    mt_tb_alloc(b, MT_OP_MALLOC, 1, A, 64, 0);
    mt_tb_free(b, MT_OP_REALLOC_FREE, 2, A); /* realloc(A, 0) returned NULL */
    mt_tb_chunk_end(b);
    mt_tb_end(b, 2, 1000, 2, 0, 1);
    fixture_t f;
    replay(&f, b, NULL);
    const mt_totals_t *t = mt__replay_totals(f.replay);
    cr_expect_eq(t->allocations, 1);
    cr_expect_eq(t->frees, 1);
    cr_expect_eq(t->leaked_allocations, 0);
    cr_expect_eq(t->temporary_allocations, 0);
    done(&f);
}

Test(replay, free_of_unknown_pointer_is_counted_apart)
{
    mt_tb_t *b = new_trace(1);
    mt_tb_chunk_begin(b, 0, 7, 1);
    mt_tb_free(b, MT_OP_FREE, 1, 0xdead0u);
    mt_tb_alloc(b, MT_OP_MALLOC, 2, A, 8, 0);
    mt_tb_free(b, MT_OP_DELETE, 3, 0xbeef0u);
    mt_tb_chunk_end(b);
    mt_tb_end(b, 3, 1000, 3, 0, 1);
    fixture_t f;
    replay(&f, b, NULL);
    const mt_totals_t *t = mt__replay_totals(f.replay);
    cr_expect_eq(t->unknown_frees, 2);
    cr_expect_eq(t->frees, 0);
    cr_expect_eq(t->allocations, 1);
    cr_expect_eq(t->leaked_bytes, 8);
    cr_expect_eq(t->leaked_allocations, 1);
    cr_expect_eq(site(&f, 0)->frees, 0);
    done(&f);
}

Test(replay, peak_is_found_at_the_right_event_with_each_sites_share)
{
    mt_tb_t *b = new_trace(3);
    mt_tb_time(b, 0, 0);
    mt_tb_chunk_begin(b, 0, 7, 1);
    mt_tb_alloc(b, MT_OP_MALLOC, 1, A, 100, 0);       /* 100: first peak */
    mt_tb_alloc(b, MT_OP_MALLOC, 2, B, 50, 1);        /* 150: peak */
    mt_tb_free(b, MT_OP_FREE, 3, A);                  /* 50 */
    mt_tb_alloc(b, MT_OP_CALLOC, 4, C, 200, 1);       /* 250: the peak */
    mt_tb_alloc(b, MT_OP_MALLOC, 5, A, 30, 2);        /* 280: higher */
    mt_tb_free(b, MT_OP_FREE, 6, C);                  /* 80 */
    mt_tb_free(b, MT_OP_FREE, 7, B);                  /* 30 */
    mt_tb_alloc(b, MT_OP_MALLOC, 8, B, 270, 0);       /* 300: the highest */
    mt_tb_free(b, MT_OP_FREE, 9, B);                  /* 30 */
    mt_tb_chunk_end(b);
    mt_tb_time(b, 8, 8000);
    mt_tb_time(b, 9, 9000);
    mt_tb_end(b, 9, 9000, 9, 0, 3);
    fixture_t f;
    replay(&f, b, NULL);
    const mt_totals_t *t = mt__replay_totals(f.replay);
    cr_expect_eq(t->peak_bytes, 300);
    cr_expect_eq(t->peak_allocations, 2);
    cr_expect_eq(t->peak_seq, 8);
    cr_expect_eq(t->peak_time_ns, 8000);
    /* At seq 8: stack 0 holds the 270-byte block, stack 2 the 30-byte one,
     * stack 1 nothing (its blocks were freed at seq 6 and 7). */
    cr_expect_eq(site(&f, 0)->peak_bytes, 270);
    cr_expect_eq(site(&f, 0)->peak_allocations, 1);
    cr_expect_eq(site(&f, 1)->peak_bytes, 0);
    cr_expect_eq(site(&f, 1)->peak_allocations, 0);
    cr_expect_eq(site(&f, 2)->peak_bytes, 30);
    /* Each site's own high-water mark. */
    cr_expect_eq(site(&f, 0)->max_live_bytes, 270);
    cr_expect_eq(site(&f, 0)->max_live_seq, 8);
    cr_expect_eq(site(&f, 1)->max_live_bytes, 250);
    cr_expect_eq(site(&f, 1)->max_live_seq, 4);
    cr_expect_eq(site(&f, 2)->max_live_bytes, 30);
    cr_expect_eq(t->leaked_bytes, 30);
    done(&f);
}

Test(replay, site_that_did_not_change_after_the_peak_keeps_its_share)
{
    mt_tb_t *b = new_trace(2);
    mt_tb_chunk_begin(b, 0, 7, 1);
    mt_tb_alloc(b, MT_OP_MALLOC, 1, A, 100, 0);
    mt_tb_alloc(b, MT_OP_MALLOC, 2, B, 100, 1); /* 200: the peak */
    mt_tb_free(b, MT_OP_FREE, 3, B);            /* only stack 1 changes */
    mt_tb_chunk_end(b);
    mt_tb_end(b, 3, 1000, 3, 0, 2);
    fixture_t f;
    replay(&f, b, NULL);
    cr_expect_eq(mt__replay_totals(f.replay)->peak_bytes, 200);
    cr_expect_eq(site(&f, 0)->peak_bytes, 100);
    cr_expect_eq(site(&f, 1)->peak_bytes, 100);
    cr_expect_eq(site(&f, 1)->live_bytes, 0);
    done(&f);
}

Test(replay, block_freed_before_the_thread_allocates_again_is_temporary)
{
    mt_tb_t *b = new_trace(1);
    mt_tb_chunk_begin(b, 0, 7, 1);
    mt_tb_alloc(b, MT_OP_MALLOC, 1, A, 16, 0);
    mt_tb_free(b, MT_OP_FREE, 2, A);                 /* temporary */
    mt_tb_alloc(b, MT_OP_MALLOC, 3, A, 32, 0);
    mt_tb_free(b, MT_OP_FREE, 4, 0xdead0u);          /* another free in between: still */
    mt_tb_free(b, MT_OP_DELETE, 5, A);               /* temporary */
    mt_tb_chunk_end(b);
    mt_tb_end(b, 5, 1000, 5, 0, 1);
    fixture_t f;
    replay(&f, b, NULL);
    const mt_totals_t *t = mt__replay_totals(f.replay);
    cr_expect_eq(t->temporary_allocations, 2);
    cr_expect_eq(t->temporary_bytes, 48);
    cr_expect_eq(site(&f, 0)->temporary_allocations, 2);
    done(&f);
}

Test(replay, block_freed_after_another_allocation_of_its_thread_is_not_temporary)
{
    mt_tb_t *b = new_trace(1);
    mt_tb_chunk_begin(b, 0, 7, 1);
    mt_tb_alloc(b, MT_OP_MALLOC, 1, A, 16, 0);
    mt_tb_alloc(b, MT_OP_MALLOC, 2, B, 16, 0);
    mt_tb_free(b, MT_OP_FREE, 3, A); /* B came after A: not temporary */
    mt_tb_free(b, MT_OP_FREE, 4, B); /* B is still the latest: temporary */
    mt_tb_chunk_end(b);
    mt_tb_end(b, 4, 1000, 4, 0, 1);
    fixture_t f;
    replay(&f, b, NULL);
    cr_expect_eq(mt__replay_totals(f.replay)->temporary_allocations, 1);
    cr_expect_eq(mt__replay_totals(f.replay)->temporary_bytes, 16);
    done(&f);
}

Test(replay, other_threads_allocations_do_not_break_a_temporary)
{
    mt_tb_t *b = new_trace(1);
    mt_tb_chunk_begin(b, 0, 7, 1);
    mt_tb_alloc(b, MT_OP_MALLOC, 1, A, 16, 0);
    mt_tb_free(b, MT_OP_FREE, 3, A); /* thread 8 allocated at seq 2: still temporary */
    mt_tb_chunk_end(b);
    mt_tb_chunk_begin(b, 1, 8, 2);
    mt_tb_alloc(b, MT_OP_MALLOC, 2, B, 16, 0);
    mt_tb_chunk_end(b);
    mt_tb_end(b, 3, 1000, 3, 0, 1);
    fixture_t f;
    replay(&f, b, NULL);
    cr_expect_eq(mt__replay_totals(f.replay)->temporary_allocations, 1);
    cr_expect_eq(mt__replay_totals(f.replay)->leaked_allocations, 1);
    done(&f);
}

Test(replay, leaks_are_the_blocks_live_at_the_end)
{
    mt_tb_t *b = new_trace(2);
    mt_tb_chunk_begin(b, 0, 7, 1);
    mt_tb_alloc(b, MT_OP_MALLOC, 1, A, 24, 0);
    mt_tb_alloc(b, MT_OP_NEW, 2, B, 40, 1);
    mt_tb_alloc(b, MT_OP_NEW_ARRAY, 3, C, 8, 1);
    mt_tb_free(b, MT_OP_DELETE, 4, B);
    mt_tb_chunk_end(b);
    mt_tb_end(b, 4, 1000, 4, 0, 2);
    fixture_t f;
    replay(&f, b, NULL);
    const mt_totals_t *t = mt__replay_totals(f.replay);
    cr_expect_eq(t->leaked_bytes, 32);
    cr_expect_eq(t->leaked_allocations, 2);
    cr_expect_eq(site(&f, 0)->live_bytes, 24);
    cr_expect_eq(site(&f, 0)->live_allocations, 1);
    cr_expect_eq(site(&f, 1)->live_bytes, 8);
    cr_expect_eq(site(&f, 1)->live_allocations, 1);
    const mt_block_t *blk = mt__replay_block(f.replay, C);
    cr_assert(blk);
    cr_expect_eq(blk->size, 8);
    cr_expect_eq(blk->seq, 3);
    cr_expect_eq(blk->stack, 1);
    cr_expect_eq(blk->tid, 7);
    cr_expect_null(mt__replay_block(f.replay, B));
    done(&f);
}

static int sum_live(void *ctx, const mt_block_t *blk)
{
    *(uint64_t *)ctx += blk->size;
    return 0;
}

Test(replay, foreach_live_visits_every_leaked_block)
{
    mt_tb_t *b = new_trace(1);
    mt_tb_chunk_begin(b, 0, 7, 1);
    for (uint64_t i = 0; i < 50; i++)
        mt_tb_alloc(b, MT_OP_MALLOC, 1 + i, A + 16 * i, i + 1, 0);
    for (uint64_t i = 0; i < 50; i += 2)
        mt_tb_free(b, MT_OP_FREE, 51 + i / 2, A + 16 * i);
    mt_tb_chunk_end(b);
    mt_tb_end(b, 75, 1000, 75, 0, 1);
    fixture_t f;
    replay(&f, b, NULL);
    uint64_t sum = 0;
    cr_expect_eq(mt__replay_foreach_live(f.replay, sum_live, &sum), 0);
    /* Sizes 2, 4, ..., 50 stay live. */
    cr_expect_eq(sum, 650);
    cr_expect_eq(mt__replay_totals(f.replay)->leaked_bytes, 650);
    done(&f);
}

Test(replay, many_blocks_freed_in_scrambled_order_all_match)
{
    enum { N = 20000 };
    mt_tb_t *b = new_trace(1);
    mt_tb_chunk_begin(b, 0, 7, 1);
    /* Addresses 16 apart collide a lot in a small table. */
    for (uint64_t i = 0; i < N; i++)
        mt_tb_alloc(b, MT_OP_MALLOC, 1 + i, A + 16 * i, 1, 0);
    for (uint64_t i = 0; i < N; i++) {
        uint64_t k = (i * 7919) % N; /* 7919 is prime, so this visits every block once */
        mt_tb_free(b, MT_OP_FREE, 1 + N + i, A + 16 * k);
    }
    mt_tb_chunk_end(b);
    mt_tb_end(b, 2 * N, 1000, 2 * N, 0, 1);
    fixture_t f;
    replay(&f, b, NULL);
    const mt_totals_t *t = mt__replay_totals(f.replay);
    cr_expect_eq(t->frees, N);
    cr_expect_eq(t->unknown_frees, 0);
    cr_expect_eq(t->leaked_allocations, 0);
    cr_expect_eq(t->peak_bytes, N);
    done(&f);
}

static int count_block(void *ctx, const mt_block_t *blk)
{
    (void)blk;
    (*(uint64_t *)ctx)++;
    return 0;
}

Test(replay, a_table_grown_past_two_megabytes_keeps_every_block)
{
    /* 60,000 live blocks need a table of 131,072 slots (4 MiB), which has
     * a mapping of its own; every fifth block leaks. */
    enum { N = 60000 };
    mt_tb_t *b = new_trace(1);
    mt_tb_chunk_begin(b, 0, 7, 1);
    for (uint64_t i = 0; i < N; i++)
        mt_tb_alloc(b, MT_OP_MALLOC, 1 + i, A + 48 * i, 1 + i % 7, 0);
    uint64_t seq = N, leaked = 0, leaked_bytes = 0;
    for (uint64_t i = 0; i < N; i++) {
        uint64_t k = (i * 7919) % N;
        if (k % 5 == 0) {
            leaked++;
            leaked_bytes += 1 + k % 7;
            continue;
        }
        mt_tb_free(b, MT_OP_FREE, ++seq, A + 48 * k);
    }
    mt_tb_chunk_end(b);
    mt_tb_end(b, seq, 1000, seq, 0, 1);
    fixture_t f;
    replay(&f, b, NULL);
    const mt_totals_t *t = mt__replay_totals(f.replay);
    cr_expect_eq(t->frees, N - leaked);
    cr_expect_eq(t->unknown_frees, 0);
    cr_expect_eq(t->peak_allocations, N);
    cr_expect_eq(t->leaked_allocations, leaked);
    cr_expect_eq(t->leaked_bytes, leaked_bytes);
    uint64_t visited = 0;
    cr_expect_eq(mt__replay_foreach_live(f.replay, count_block, &visited), 0);
    cr_expect_eq(visited, leaked);
    const mt_block_t *blk = mt__replay_block(f.replay, A + 48 * 5);
    cr_assert(blk);
    cr_expect_eq(blk->size, 1 + 5 % 7);
    cr_expect_eq(blk->seq, 6);
    cr_expect_null(mt__replay_block(f.replay, A + 48 * 6));
    done(&f);
}

Test(replay, address_allocated_again_while_live_counts_a_missed_free)
{
    mt_tb_t *b = new_trace(2);
    mt_tb_chunk_begin(b, 0, 7, 1);
    mt_tb_alloc(b, MT_OP_MALLOC, 1, A, 10, 0);
    mt_tb_alloc(b, MT_OP_MALLOC, 2, A, 30, 1); /* the free of the first block was lost */
    mt_tb_chunk_end(b);
    mt_tb_end(b, 2, 1000, 2, 1, 2);
    fixture_t f;
    replay(&f, b, NULL);
    const mt_totals_t *t = mt__replay_totals(f.replay);
    cr_expect_eq(t->missed_frees, 1);
    cr_expect_eq(t->missed_free_bytes, 10);
    cr_expect_eq(t->frees, 0);
    cr_expect_eq(t->leaked_bytes, 30);
    cr_expect_eq(t->leaked_allocations, 1);
    cr_expect_eq(site(&f, 0)->live_allocations, 0);
    cr_expect_eq(t->peak_bytes, 30);
    done(&f);
}

/* The reader refuses undefined stack ids, so such events can only come from
 * a caller feeding the engine itself; they must not crash it. */
Test(replay, allocation_with_an_undefined_stack_goes_to_the_no_stack_site)
{
    mt_tb_t *b = new_trace(1);
    mt_tb_end(b, 0, 0, 0, 0, 1);
    char *path = mt_tb_write_temp(b);
    mt_tb_destroy(b);
    mt_trace_t *t;
    char err[256];
    cr_assert_eq(mt__trace_open(path, &t, err, sizeof err), 0, "%s", err);
    mt_replay_t *r = mt__replay_new(t, NULL);
    cr_assert(r);
    mt_event_t evs[] = {
        {.seq = 1, .ptr = A, .size = 10, .stack = 0, .tid = 1, .op = MT_OP_MALLOC},
        {.seq = 2, .ptr = B, .size = 20, .stack = 5000, .tid = 1, .op = MT_OP_MALLOC},
        {.seq = 3, .ptr = B, .tid = 1, .op = MT_OP_FREE},
    };
    for (size_t i = 0; i < 3; i++)
        cr_assert_eq(mt__replay_feed(r, &evs[i]), 0);
    mt__replay_finish(r);
    cr_expect_eq(mt__replay_totals(r)->undefined_stacks, 1);
    const mt_site_t *none = mt__replay_site(r, MT_REPLAY_NO_STACK);
    cr_expect_eq(none->allocations, 1);
    cr_expect_eq(none->frees, 1);
    cr_expect_eq(none->stack, MT_REPLAY_NO_STACK);
    size_t n;
    const mt_site_t *all = mt__replay_sites(r, &n);
    cr_expect_eq(n, 2);
    cr_expect_eq(all[n - 1].stack, MT_REPLAY_NO_STACK);
    cr_expect_eq(all[0].allocations, 1);
    cr_expect_null(mt__replay_site(r, 5000));
    mt__replay_free(r);
    mt__trace_close(t);
    unlink(path);
    free(path);
}

typedef struct marker_log {
    int calls;
    uint64_t site0_live[4];
} marker_log_t;

static int log_marker(void *ctx, const mt_replay_t *r, const mt_snapshot_t *snap)
{
    marker_log_t *log = ctx;
    cr_assert(snap->text);
    if (log->calls < 4)
        log->site0_live[log->calls] = mt__replay_site(r, 0)->live_bytes;
    log->calls++;
    return 0;
}

Test(replay, snapshots_record_the_live_heap_at_each_marker)
{
    mt_tb_t *b = new_trace(2);
    mt_tb_label(b, 1, "start");
    mt_tb_label(b, 2, "batch");
    mt_tb_marker(b, 1, 100, 7, 1);
    mt_tb_chunk_begin(b, 0, 7, 2);
    mt_tb_alloc(b, MT_OP_MALLOC, 2, A, 100, 0);
    mt_tb_alloc(b, MT_OP_MALLOC, 3, B, 50, 1);
    mt_tb_free(b, MT_OP_FREE, 5, B);
    mt_tb_alloc(b, MT_OP_MALLOC, 6, C, 7, 1);
    mt_tb_chunk_end(b);
    mt_tb_marker(b, 4, 400, 7, 2);
    mt_tb_marker(b, 7, 700, 0, 2);
    mt_tb_end(b, 7, 1000, 4, 0, 2);
    marker_log_t log = {0};
    mt_replay_options_t opt = {.on_marker = log_marker, .marker_ctx = &log, .capture_sites = true};
    fixture_t f;
    replay(&f, b, &opt);
    size_t n;
    const mt_snapshot_t *s = mt__replay_snapshots(f.replay, &n);
    cr_assert_eq(n, 3);
    cr_expect_str_eq(s[0].text, "start");
    cr_expect_eq(s[0].seq, 1);
    cr_expect_eq(s[0].time_ns, 100);
    cr_expect_eq(s[0].live_bytes, 0);
    cr_expect_eq(s[0].live_allocations, 0);
    cr_expect_eq(s[0].nsites, 0);
    cr_expect_str_eq(s[1].text, "batch");
    cr_expect_eq(s[1].label, 2);
    cr_expect_eq(s[1].time_ns, 400);
    cr_expect_eq(s[1].tid, 7);
    cr_expect_eq(s[1].live_bytes, 150);
    cr_expect_eq(s[1].live_allocations, 2);
    cr_assert_eq(s[1].nsites, 2);
    cr_expect_eq(s[1].sites[0].stack, 0);
    cr_expect_eq(s[1].sites[0].live_bytes, 100);
    cr_expect_eq(s[1].sites[1].stack, 1);
    cr_expect_eq(s[1].sites[1].live_bytes, 50);
    cr_expect_eq(s[2].time_ns, 700);
    cr_expect_eq(s[2].tid, 0);
    cr_expect_eq(s[2].live_bytes, 107);
    cr_expect_eq(s[2].live_allocations, 2);
    cr_assert_eq(s[2].nsites, 2);
    cr_expect_eq(s[2].sites[1].live_bytes, 7);
    cr_expect_eq(log.calls, 3);
    cr_expect_eq(log.site0_live[0], 0);
    cr_expect_eq(log.site0_live[1], 100);
    cr_expect_eq(log.site0_live[2], 100);
    cr_expect_eq(mt__replay_totals(f.replay)->markers, 3);
    done(&f);
}

static int stop_at_marker(void *ctx, const mt_replay_t *r, const mt_snapshot_t *snap)
{
    (void)ctx;
    (void)r;
    (void)snap;
    return -ECANCELED;
}

Test(replay, marker_callback_can_stop_the_replay)
{
    mt_tb_t *b = new_trace(1);
    mt_tb_label(b, 1, "stop");
    mt_tb_marker(b, 1, 100, 7, 1);
    mt_tb_chunk_begin(b, 0, 7, 2);
    mt_tb_alloc(b, MT_OP_MALLOC, 2, A, 100, 0);
    mt_tb_chunk_end(b);
    mt_tb_end(b, 2, 1000, 1, 0, 1);
    char *path = mt_tb_write_temp(b);
    mt_tb_destroy(b);
    mt_trace_t *t;
    char err[256];
    cr_assert_eq(mt__trace_open(path, &t, err, sizeof err), 0, "%s", err);
    mt_replay_options_t opt = {.on_marker = stop_at_marker};
    mt_replay_t *r = (mt_replay_t *)1;
    cr_expect_eq(mt__replay_run(t, &opt, &r), -ECANCELED);
    cr_expect_null(r);
    mt__trace_close(t);
    unlink(path);
    free(path);
}

Test(replay, feeding_events_by_hand_gives_the_same_numbers)
{
    mt_tb_t *b = new_trace(1);
    mt_tb_end(b, 0, 0, 0, 0, 1);
    char *path = mt_tb_write_temp(b);
    mt_tb_destroy(b);
    mt_trace_t *t;
    char err[256];
    cr_assert_eq(mt__trace_open(path, &t, err, sizeof err), 0, "%s", err);
    mt_replay_t *r = mt__replay_new(t, NULL);
    cr_assert(r);
    mt_event_t evs[] = {
        {.seq = 1, .ptr = A, .size = 5, .stack = 0, .tid = 1, .op = MT_OP_MALLOC},
        {.seq = 2, .ptr = B, .size = 6, .stack = 0, .tid = 1, .op = MT_OP_MALLOC},
        {.seq = 3, .ptr = A, .tid = 1, .op = MT_OP_FREE},
    };
    for (size_t i = 0; i < 3; i++)
        cr_assert_eq(mt__replay_feed(r, &evs[i]), 0);
    cr_expect_eq(mt__replay_totals(r)->live_bytes, 6);
    cr_expect_eq(mt__replay_finish(r), 0);
    cr_expect_eq(mt__replay_totals(r)->peak_bytes, 11);
    cr_expect_eq(mt__replay_totals(r)->leaked_bytes, 6);
    cr_expect_eq(mt__replay_site(r, 0)->peak_bytes, 11);
    mt__replay_free(r);
    mt__trace_close(t);
    unlink(path);
    free(path);
}

/* ---- sampled traces ---- */

/* S = 1000: a 1000-byte block was sampled with p = 1 - exp(-1), so it stands
 * for 1/p = 1.58198 blocks and 1581.98 bytes; a 4000-byte block (p = 0.98168)
 * for 1.01866 blocks and 4074.6 bytes. Counts are whole: the fractions carry
 * over from block to block in event order (1.582 -> 1, then 0.582 + 1.582 ->
 * 2, then 0.164 + 1.019 -> 1). */
Test(replay, a_sampled_block_stands_for_one_over_p_blocks_and_bytes)
{
    mt_tb_t *b = new_trace(2);
    mt_tb_set_sampled(b, 1000);
    mt_tb_chunk_begin(b, 0, 101, 1);
    mt_tb_alloc(b, MT_OP_MALLOC, 1, A, 1000, 0);
    mt_tb_alloc(b, MT_OP_MALLOC, 2, B, 1000, 0);
    mt_tb_alloc(b, MT_OP_MALLOC, 3, C, 4000, 1);
    mt_tb_free(b, MT_OP_FREE, 4, A);
    mt_tb_free(b, MT_OP_FREE, 5, 0x99990u); /* a block that was not sampled */
    mt_tb_chunk_end(b);
    fixture_t f;
    replay(&f, b, NULL);
    const mt_totals_t *t = mt__replay_totals(f.replay);
    cr_expect_eq(t->allocations, 4);
    cr_expect_eq(t->bytes_allocated, 1582 + 1582 + 4075);
    cr_expect_eq(t->frees, 1);
    cr_expect_eq(t->bytes_freed, 1582);
    cr_expect_eq(t->leaked_allocations, 3);
    cr_expect_eq(t->leaked_bytes, 1582 + 4075);
    cr_expect_eq(t->peak_bytes, 1582 + 1582 + 4075);
    cr_expect_eq(t->peak_allocations, 4);
    cr_expect_eq(t->unknown_frees, 0, "a free of an unsampled block is no unknown free");
    cr_expect_eq(t->unsampled_frees, 1);
    cr_expect_eq(site(&f, 0)->allocations, 3);
    cr_expect_eq(site(&f, 1)->allocations, 1);
    cr_expect_eq(mt__replay_block(f.replay, C)->weight, 1);
    cr_expect_eq(mt__replay_block(f.replay, C)->size, 4075);
    done(&f);
}

Test(replay, an_unsampled_trace_counts_each_block_once)
{
    mt_tb_t *b = new_trace(1);
    mt_tb_chunk_begin(b, 0, 101, 1);
    mt_tb_alloc(b, MT_OP_MALLOC, 1, A, 1000, 0);
    mt_tb_free(b, MT_OP_FREE, 2, 0x99990u);
    mt_tb_chunk_end(b);
    fixture_t f;
    replay(&f, b, NULL);
    const mt_totals_t *t = mt__replay_totals(f.replay);
    cr_expect_eq(t->allocations, 1);
    cr_expect_eq(t->bytes_allocated, 1000);
    cr_expect_eq(t->unknown_frees, 1);
    cr_expect_eq(t->unsampled_frees, 0);
    cr_expect_eq(mt__replay_block(f.replay, A)->weight, 1);
    done(&f);
}

/* ---- version 4: blocks named by their allocation's seq ---- */

/* Blocks named by seq across threads, by address, and one whose free was
 * lost, in a trace of the given version (4 or 5). */
static void refs_across_threads(uint32_t version)
{
    mt_tb_t *b = new_trace(2);
    mt_tb_set_version(b, version);
    mt_tb_chunk_begin(b, 0, 101, 1);
    mt_tb_alloc_v4(b, MT_OP_MALLOC, 1, 100, 0, 0, 0);
    mt_tb_alloc_v4(b, MT_OP_MALLOC, 3, 200, 1, 0, 0);
    mt_tb_free_ref(b, MT_OP_FREE, 5, 3);  /* its own block */
    mt_tb_chunk_end(b);
    mt_tb_chunk_begin(b, 1, 102, 2);
    mt_tb_alloc_v4(b, MT_OP_MALLOC, 2, 30, 1, 0, 0);
    mt_tb_free_ref(b, MT_OP_FREE, 4, 1);          /* thread 101's block */
    mt_tb_free_addr(b, MT_OP_FREE, 6, 0x7000);    /* a block never seen */
    mt_tb_alloc_v4(b, MT_OP_MALLOC, 7, 50, 0, 2, 0); /* over block 2: its free was lost */
    mt_tb_alloc_v4(b, MT_OP_MALLOC, 8, 60, 0, 0, 0x5000); /* named by its address */
    mt_tb_free_addr(b, MT_OP_FREE, 9, 0x5000);
    mt_tb_chunk_end(b);
    mt_tb_end(b, 10, 1000, 9, 0, 2);
    fixture_t f;
    replay(&f, b, NULL);
    const mt_totals_t *t = mt__replay_totals(f.replay);
    cr_expect_eq(t->allocations, 5);
    cr_expect_eq(t->bytes_allocated, 440);
    cr_expect_eq(t->frees, 3);
    cr_expect_eq(t->bytes_freed, 360);
    cr_expect_eq(t->unknown_frees, 1);
    cr_expect_eq(t->missed_frees, 1);
    cr_expect_eq(t->missed_free_bytes, 30);
    cr_expect_eq(t->live_bytes, 50);
    cr_expect_eq(t->live_allocations, 1);
    cr_expect_eq(t->peak_bytes, 330, "100 + 30 + 200 live at seq 3");
    /* Blocks 3 and 8 were freed by their own thread right after: temporary.
     * Block 1 was freed by the other thread: not. */
    cr_expect_eq(site(&f, 1)->temporary_allocations, 1);
    cr_expect_eq(site(&f, 0)->temporary_allocations, 1);
    cr_expect_eq(site(&f, 0)->temporary_bytes, 60);
    cr_expect_eq(site(&f, 0)->live_bytes, 50);
    done(&f);
}

Test(replay, version_4_frees_name_their_allocations_across_threads)
{
    refs_across_threads(4);
}

Test(replay, version_5_frees_name_their_allocations_across_threads)
{
    refs_across_threads(5);
}

static void free_of_a_later_block(uint32_t version)
{
    mt_tb_t *b = new_trace(1);
    mt_tb_set_version(b, version);
    mt_tb_chunk_begin(b, 0, 101, 1);
    mt_tb_alloc_v4(b, MT_OP_MALLOC, 1, 100, 0, 0, 0);
    mt_tb_free_ref(b, MT_OP_FREE, 2, 2); /* names itself */
    mt_tb_chunk_end(b);
    char *path = mt_tb_write_temp(b);
    mt_tb_destroy(b);
    char err[512] = "";
    mt_trace_t *t = NULL;
    cr_assert_eq(mt__trace_open(path, &t, err, sizeof err), 0, "%s", err);
    mt_replay_t *r = NULL;
    cr_expect_lt(mt__replay_run(t, NULL, &r), 0);
    cr_expect(strstr(mt__trace_error(t), "not allocated before it"), "%s",
              mt__trace_error(t));
    cr_expect(strstr(mt__trace_error(t), "offset "), "%s", mt__trace_error(t));
    mt__replay_free(r);
    mt__trace_close(t);
    unlink(path);
    free(path);
}

Test(replay, version_4_free_of_a_block_not_allocated_before_it_is_an_error)
{
    free_of_a_later_block(4);
}

Test(replay, version_5_free_of_a_block_not_allocated_before_it_is_an_error)
{
    free_of_a_later_block(5);
}

/* Block keys use the top bit: a seq of version 4 or 5 never reaches it. */
static void seq_past_2_63(uint32_t version)
{
    mt_tb_t *b = new_trace(1);
    mt_tb_set_version(b, version);
    mt_tb_chunk_begin(b, 0, 101, (1ull << 63) - 1);
    mt_tb_alloc_v4(b, MT_OP_MALLOC, (1ull << 63) - 1, 100, 0, 0, 0);
    mt_tb_alloc_v4(b, MT_OP_MALLOC, 1ull << 63, 100, 0, 0, 0);
    mt_tb_chunk_end(b);
    char *path = mt_tb_write_temp(b);
    mt_tb_destroy(b);
    char err[512] = "";
    mt_trace_t *t = NULL;
    int rc = mt__trace_open(path, &t, err, sizeof err);
    mt_replay_t *r = NULL;
    if (rc == 0) {
        cr_expect_lt(mt__replay_run(t, NULL, &r), 0);
        snprintf(err, sizeof err, "%s", mt__trace_error(t));
    }
    cr_expect(strstr(err, "is out of range (at most 2^63 - 1)") && strstr(err, "offset "), "%s", err);
    mt__replay_free(r);
    mt__trace_close(t);
    unlink(path);
    free(path);
}

Test(replay, version_4_seq_at_or_above_2_63_is_an_error)
{
    seq_past_2_63(4);
}

Test(replay, version_5_seq_at_or_above_2_63_is_an_error)
{
    seq_past_2_63(5);
}

/* ---- reading ahead in a second thread ---- */

/* Two threads in alternating runs of 1000 events, each allocating and then
 * freeing its own blocks four at a time, the last 6 of every run left live
 * for the other thread to free; a marker every 50,000 seqs. With
 * 200,000 events, this is past the size at which mt__replay_run reads
 * ahead. */
enum { BIG_RUNS = 200, BIG_RUN = 1000 };

static mt_tb_t *big_trace(void)
{
    mt_tb_t *b = new_trace(3);
    mt_tb_label(b, 1, "batch");
    uint64_t seq = 0;
    for (uint64_t m = 50000; m < BIG_RUNS * BIG_RUN; m += 50000)
        mt_tb_marker(b, m, m, 0, 1);
    for (uint64_t run = 0; run < BIG_RUNS; run++) {
        uint32_t tid = 7 + (uint32_t)(run & 1);
        mt_tb_chunk_begin(b, run & 1, tid, seq + 1);
        uint64_t base = A + 0x100000u * run;
        for (uint64_t i = 0; i < BIG_RUN / 2; i += 4) {
            for (uint64_t j = 0; j < 4; j++)
                mt_tb_alloc(b, MT_OP_MALLOC, ++seq, base + 64 * (i + j), 16 + (i + j) % 48, (uint32_t)(j % 3));
            for (uint64_t j = 0; j < 4; j++) {
                if (i + j >= BIG_RUN / 2 - 6) {
                    ++seq; /* left live: the next run frees it below */
                    continue;
                }
                mt_tb_free(b, MT_OP_FREE, ++seq, base + 64 * (i + j));
            }
        }
        mt_tb_chunk_end(b);
        if (run > 0) { /* this thread frees the previous run's 6 survivors */
            uint64_t prev = A + 0x100000u * (run - 1);
            mt_tb_chunk_begin(b, run & 1, tid, seq + 1);
            for (uint64_t i = BIG_RUN / 2 - 6; i < BIG_RUN / 2; i++)
                mt_tb_free(b, MT_OP_FREE, ++seq, prev + 64 * i);
            mt_tb_chunk_end(b);
        }
    }
    mt_tb_end(b, seq, 1000, seq, 0, 3);
    return b;
}

static char *big_trace_file(void)
{
    mt_tb_t *b = big_trace();
    char *path = mt_tb_write_temp(b);
    mt_tb_destroy(b);
    cr_assert(path);
    return path;
}

static mt_trace_t *open_path(const char *path)
{
    mt_trace_t *t;
    char err[256];
    cr_assert_eq(mt__trace_open(path, &t, err, sizeof err), 0, "%s", err);
    return t;
}

static void progress_seen(void *ctx, uint64_t done, uint64_t total)
{
    (void)total;
    *(uint64_t *)ctx = done;
}

static mt_replay_t *replay_big(mt_trace_t *t, bool read_inline, int *rc, uint64_t *progress)
{
    mt_replay_options_t opt = {.capture_sites = true, .progress = progress_seen,
                               .progress_ctx = progress, .read_inline = read_inline};
    mt_replay_t *r = NULL;
    *rc = mt__replay_run(t, &opt, &r);
    return r;
}

Test(replay, reading_ahead_gives_the_same_numbers_as_reading_inline)
{
    char *path = big_trace_file();
    mt_trace_t *t = open_path(path);
    uint64_t p1 = 0, p2 = 0;
    int rc1, rc2;
    mt_replay_t *ahead = replay_big(t, false, &rc1, &p1);
    mt_replay_t *in = replay_big(t, true, &rc2, &p2);
    cr_assert_eq(rc1, 0, "%s", mt__trace_error(t));
    cr_assert_eq(rc2, 0, "%s", mt__trace_error(t));
    const mt_totals_t *x = mt__replay_totals(ahead), *y = mt__replay_totals(in);
    /* Known by construction: 500 allocations a run, every block freed but
     * the last run's 6 survivors. */
    cr_expect_eq(x->allocations, BIG_RUNS * BIG_RUN / 2);
    cr_expect_eq(x->frees, BIG_RUNS * BIG_RUN / 2 - 6);
    cr_expect_eq(x->leaked_allocations, 6);
    cr_expect_eq(x->unknown_frees, 0);
    cr_expect_eq(x->threads, 2);
    cr_expect_eq(x->markers, 3);
    cr_expect_eq(p1, x->events);
    cr_expect_eq(memcmp(x, y, sizeof *x), 0, "totals differ");
    cr_expect_eq(p2, p1);
    for (uint32_t s = 0; s < 3; s++)
        cr_expect_eq(memcmp(mt__replay_site(ahead, s), mt__replay_site(in, s), sizeof(mt_site_t)), 0,
                     "site %u differs", s);
    size_t n1, n2;
    const mt_snapshot_t *s1 = mt__replay_snapshots(ahead, &n1), *s2 = mt__replay_snapshots(in, &n2);
    cr_assert_eq(n1, 3);
    cr_assert_eq(n2, 3);
    for (size_t i = 0; i < n1; i++) {
        cr_expect_eq(s1[i].seq, 50000 * (i + 1));
        cr_expect_eq(s1[i].live_bytes, s2[i].live_bytes);
        cr_expect_eq(s1[i].nsites, s2[i].nsites);
    }
    mt__replay_free(ahead);
    mt__replay_free(in);
    mt__trace_close(t);
    unlink(path);
    free(path);
}

Test(replay, reading_ahead_stops_at_a_bad_event_after_applying_those_before)
{
    char *path = big_trace_file();
    /* Cut the file in the middle of its events. */
    FILE *f = fopen(path, "r+");
    cr_assert(f);
    cr_assert_eq(fseek(f, 0, SEEK_END), 0);
    long size = ftell(f);
    fclose(f);
    cr_assert_eq(truncate(path, size * 3 / 4), 0);
    mt_trace_t *t = open_path(path);
    uint64_t p1 = 0, p2 = 0;
    int rc1, rc2;
    mt_replay_t *r1 = replay_big(t, false, &rc1, &p1);
    mt_replay_t *r2 = replay_big(t, true, &rc2, &p2);
    mt__replay_free(r1);
    mt__replay_free(r2);
    cr_expect_eq(rc1, rc2);
    cr_expect_eq(p1, p2, "both applied the same events before stopping");
    cr_expect_gt(p1, 65536);
    mt__trace_close(t);
    unlink(path);
    free(path);
}

static int stop_at_second_marker(void *ctx, const mt_replay_t *r, const mt_snapshot_t *snap)
{
    (void)r;
    (void)snap;
    return ++*(int *)ctx == 2 ? -ECANCELED : 0;
}

Test(replay, reading_ahead_ends_the_reader_when_the_replay_stops_early)
{
    char *path = big_trace_file();
    mt_trace_t *t = open_path(path);
    int markers = 0;
    mt_replay_options_t opt = {.on_marker = stop_at_second_marker, .marker_ctx = &markers};
    mt_replay_t *r = (mt_replay_t *)1;
    cr_expect_eq(mt__replay_run(t, &opt, &r), -ECANCELED);
    cr_expect_null(r);
    cr_expect_eq(markers, 2);
    /* The trace is usable again: the reader thread is gone. */
    cr_expect_eq(mt__replay_run(t, NULL, &r), 0, "%s", mt__trace_error(t));
    cr_expect_eq(mt__replay_totals(r)->markers, 3);
    mt__replay_free(r);
    mt__trace_close(t);
    unlink(path);
    free(path);
}

Test(replay, a_replay_stopped_early_leaves_no_error_the_reader_met_ahead)
{
    /* A marker at seq 1000 stops the replay; a free 2,000 events later
     * names a block not allocated before it, well within what the reader
     * thread decodes ahead, and 70,000 events in all make the replay read
     * ahead. Replayed inline, the reader never gets there. */
    mt_tb_t *b = new_trace(1);
    mt_tb_set_version(b, 5);
    mt_tb_label(b, 1, "stop");
    mt_tb_marker(b, 1000, 1000, 7, 1);
    uint64_t seq = 0;
    mt_tb_chunk_begin(b, 0, 7, 1);
    for (; seq < 3000; seq++)
        mt_tb_alloc_v4(b, MT_OP_MALLOC, seq + 1, 16, 0, 0, 0);
    seq++;
    mt_tb_free_ref(b, MT_OP_FREE, seq, seq); /* names itself */
    mt_tb_chunk_end(b);
    for (uint64_t c = 0; c < 70; c++) {
        mt_tb_chunk_begin(b, 0, 7, seq + 1);
        for (int i = 0; i < 1000; i++, seq++)
            mt_tb_alloc_v4(b, MT_OP_MALLOC, seq + 1, 16, 0, 0, 0);
        mt_tb_chunk_end(b);
    }
    char *path = mt_tb_write_temp(b);
    mt_tb_destroy(b);
    mt_trace_t *t = open_path(path);
    for (int read_inline = 0; read_inline < 2; read_inline++) {
        int markers = 1; /* the first marker stops it */
        mt_replay_options_t opt = {.on_marker = stop_at_second_marker, .marker_ctx = &markers,
                                   .read_inline = read_inline};
        mt_replay_t *r = NULL;
        cr_expect_eq(mt__replay_run(t, &opt, &r), -ECANCELED);
        cr_expect_str_eq(mt__trace_error(t), "", "read %s", read_inline ? "inline" : "ahead");
    }
    /* Replayed to the end, the bad free is an error. */
    mt_replay_t *r = NULL;
    cr_expect_lt(mt__replay_run(t, NULL, &r), 0);
    cr_expect(strstr(mt__trace_error(t), "not allocated before it"), "%s", mt__trace_error(t));
    mt__trace_close(t);
    unlink(path);
    free(path);
}
