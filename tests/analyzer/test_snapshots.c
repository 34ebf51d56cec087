/* test_snapshots.c - tests of analyzer/snapshots.c: the series classifier, point capture and naming snapshots.
 *
 * The classifier is tested on hand-written series, one per shape the issue
 * names (a leak in every batch, a leak in every 5th, a cache that plateaus,
 * scratch memory, a sawtooth queue) and on its thresholds; the analysis and
 * points on hand-built traces (tests/common/trace_builder.h) whose numbers
 * are known by construction.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "snapshots.h"
#include "trace_builder.h"

static mt_series_stats_t classify(const uint64_t *v, size_t n)
{
    mt_leak_options_t opt;
    mt__leak_options_default(&opt);
    mt_series_stats_t st;
    mt__series_classify(v, n, &opt, &st);
    return st;
}

/* ---- shapes ---- */

Test(classifier, a_leak_in_every_batch_is_a_steady_leak_candidate)
{
    uint64_t v[10];
    for (int i = 0; i < 10; i++)
        v[i] = 100 + 64 * (uint64_t)i;
    mt_series_stats_t st = classify(v, 10);
    cr_expect_eq(st.shape, MT_SHAPE_STEADY_LEAK);
    cr_expect(st.candidate);
    cr_expect_eq(st.growth_bytes, 64 * 9);
    cr_expect_eq(st.growth_per_snapshot, 64.0);
    cr_expect_eq(st.intervals_grown, 9);
    cr_expect_eq(st.intervals, 9);
    cr_expect_eq(st.confidence, 1.0);
}

Test(classifier, a_leak_every_fifth_batch_is_a_step_leak_candidate)
{
    uint64_t v[20];
    for (int i = 0; i < 20; i++)
        v[i] = 200 * (uint64_t)((i + 1) / 5);
    mt_series_stats_t st = classify(v, 20);
    cr_expect_eq(st.shape, MT_SHAPE_STEP_LEAK);
    cr_expect(st.candidate);
    cr_expect_eq(st.intervals_grown, 4);
    cr_expect_eq(st.longest_pause, 4);
    cr_expect_eq(st.growth_bytes, 800);
}

Test(classifier, a_cache_that_fills_and_stays_flat_is_a_plateau)
{
    uint64_t v[20];
    for (int i = 0; i < 20; i++)
        v[i] = 512 * (uint64_t)(i < 8 ? i + 1 : 8);
    mt_series_stats_t st = classify(v, 20);
    cr_expect_eq(st.shape, MT_SHAPE_PLATEAU);
    cr_expect_not(st.candidate);
    cr_expect_eq(st.flat_tail, 12);
}

Test(classifier, scratch_memory_freed_in_each_batch_is_flat)
{
    uint64_t v[6] = {0, 0, 0, 0, 0, 0};
    mt_series_stats_t st = classify(v, 6);
    cr_expect_eq(st.shape, MT_SHAPE_FLAT);
    cr_expect_not(st.candidate);
    uint64_t w[4] = {48, 48, 48, 48};
    cr_expect_eq(classify(w, 4).shape, MT_SHAPE_FLAT);
}

Test(classifier, a_queue_that_fills_and_drains_is_a_sawtooth)
{
    uint64_t v[12] = {288, 576, 864, 0, 288, 576, 864, 0, 288, 576, 864, 0};
    mt_series_stats_t st = classify(v, 12);
    cr_expect_eq(st.shape, MT_SHAPE_SAWTOOTH);
    cr_expect_not(st.candidate);
    /* A queue that drains to a higher level each time still gives back far
     * more than it keeps. */
    uint64_t w[9] = {100, 400, 120, 420, 140, 440, 160, 460, 180};
    cr_expect_eq(classify(w, 9).shape, MT_SHAPE_SAWTOOTH);
}

Test(classifier, a_leak_that_gives_back_a_little_is_still_a_leak)
{
    uint64_t v[8] = {1000, 2000, 3000, 2950, 4000, 5000, 6000, 7000};
    mt_series_stats_t st = classify(v, 8);
    cr_expect_eq(st.shape, MT_SHAPE_STEADY_LEAK);
    cr_expect(st.candidate);
    cr_expect_eq(st.bytes_given_back, 50);
    cr_expect_lt(st.confidence, 1.0);
    cr_expect_gt(st.confidence, 0.99);
}

Test(classifier, too_few_points_or_growths_tell_nothing)
{
    uint64_t v[2] = {0, 100};
    cr_expect_eq(classify(v, 2).shape, MT_SHAPE_TOO_SHORT);
    cr_expect_not(classify(v, 2).candidate);
    uint64_t w[6] = {0, 100, 100, 100, 100, 100};
    cr_expect_eq(classify(w, 6).shape, MT_SHAPE_ONE_STEP);
    uint64_t s[5] = {500, 400, 300, 300, 100};
    cr_expect_eq(classify(s, 5).shape, MT_SHAPE_SHRINKING);
}

Test(classifier, thresholds_are_options)
{
    uint64_t v[10];
    for (int i = 0; i < 10; i++)
        v[i] = 10 * (uint64_t)i;
    mt_leak_options_t opt;
    mt__leak_options_default(&opt);
    mt_series_stats_t st;
    opt.min_growth_bytes = 91;
    mt__series_classify(v, 10, &opt, &st);
    cr_expect_eq(st.shape, MT_SHAPE_STEADY_LEAK);
    cr_expect_not(st.candidate, "90 bytes is below --min-growth 91");
    opt.min_growth_bytes = 90;
    mt__series_classify(v, 10, &opt, &st);
    cr_expect(st.candidate);

    /* Two growths, then six flat intervals of eight: confidence 0.5 * (1 - 6/8). */
    uint64_t w[9] = {0, 10, 20, 20, 20, 20, 20, 20, 20};
    mt__leak_options_default(&opt);
    opt.plateau_ratio = 1.0;
    mt__series_classify(w, 9, &opt, &st);
    cr_expect_eq(st.shape, MT_SHAPE_STEP_LEAK);
    cr_expect_not(st.candidate);
    cr_expect_eq(st.confidence, 0.125);
    opt.min_confidence = 0.125;
    mt__series_classify(w, 9, &opt, &st);
    cr_expect(st.candidate);
    opt.min_intervals_grown = 3;
    mt__series_classify(w, 9, &opt, &st);
    cr_expect_eq(st.shape, MT_SHAPE_ONE_STEP);
}

Test(classifier, shapes_have_names)
{
    cr_expect_str_eq(mt__shape_name(MT_SHAPE_STEADY_LEAK), "steady-leak");
    cr_expect_str_eq(mt__shape_name(MT_SHAPE_PLATEAU), "plateau");
    cr_expect_str_eq(mt__shape_name(MT_SHAPE_COUNT), "?");
    cr_expect(strstr(mt__shape_description(MT_SHAPE_SAWTOOTH), "queue"));
}

/* ---- traces ---- */

/* A trace with one marker per batch over n batches: stack 0 leaks 16 bytes
 * per batch, stack 1 allocates 100 bytes and frees them inside the batch,
 * stack 2 holds one 1000-byte block from the start. Labels: batch 0 is
 * "start", the others "batch". */
static char *batches_trace(int n)
{
    mt_tb_t *b = mt_tb_new();
    for (uint64_t s = 0; s < 3; s++) {
        uint64_t frame = 0x1000 + s;
        mt_tb_stack(b, s, 0, &frame, 1);
    }
    mt_tb_label(b, 1, "start");
    mt_tb_label(b, 2, "batch");
    uint64_t seq = 1;
    mt_tb_chunk_begin(b, 0, 7, seq);
    mt_tb_alloc(b, MT_OP_MALLOC, seq++, 0x900000, 1000, 2);
    uint64_t markers[64];
    for (int i = 0; i < n; i++) {
        mt_tb_alloc(b, MT_OP_MALLOC, seq++, 0x100000 + 0x100 * (uint64_t)i, 16, 0);
        mt_tb_alloc(b, MT_OP_MALLOC, seq++, 0x800000, 100, 1);
        mt_tb_free(b, MT_OP_FREE, seq++, 0x800000);
        markers[i] = seq++;
    }
    mt_tb_chunk_end(b);
    for (int i = 0; i < n; i++)
        mt_tb_marker(b, markers[i], 1000 * (uint64_t)(i + 1), 7, i ? 2 : 1);
    mt_tb_end(b, seq, 1000 * (uint64_t)(n + 1), (uint64_t)(1 + 3 * n), 0, 3);
    char *path = mt_tb_write_temp(b);
    mt_tb_destroy(b);
    cr_assert(path);
    return path;
}

static mt_trace_t *open_trace(const char *path)
{
    mt_trace_t *t;
    char err[256];
    cr_assert_eq(mt__trace_open(path, &t, err, sizeof err), 0, "%s", err);
    return t;
}

Test(analysis, only_the_growing_site_is_a_candidate)
{
    char *path = batches_trace(10);
    mt_trace_t *t = open_trace(path);
    mt_leak_analysis_t *a;
    cr_assert_eq(mt__leaks_analyze(t, NULL, &a), 0);
    cr_expect_eq(a->nsnapshots, 10);
    cr_expect_eq(a->npoints, 10);
    cr_expect_eq(a->ncandidates, 1);
    cr_assert_eq(a->nsites, 2); /* stack 1 is never live at a snapshot */
    cr_expect_eq(a->sites[0].stack, 0);
    cr_expect(a->sites[0].stats.candidate);
    for (size_t p = 0; p < 10; p++) {
        cr_expect_eq(a->sites[0].live_bytes[p], 16 * (p + 1));
        cr_expect_eq(a->sites[0].live_allocations[p], p + 1);
    }
    cr_expect_eq(a->sites[1].stack, 2);
    cr_expect_eq(a->sites[1].stats.shape, MT_SHAPE_FLAT);
    cr_expect_eq(mt__replay_totals(a->replay)->leaked_bytes, 1000 + 160);
    mt__leaks_free(a);
    mt__trace_close(t);
    unlink(path);
    free(path);
}

Test(analysis, warmup_and_max_points_choose_the_snapshots_kept)
{
    char *path = batches_trace(20);
    mt_trace_t *t = open_trace(path);
    mt_leak_options_t opt;
    mt__leak_options_default(&opt);
    opt.warmup = 5;
    opt.max_points = 4;
    mt_leak_analysis_t *a;
    cr_assert_eq(mt__leaks_analyze(t, &opt, &a), 0);
    cr_assert_eq(a->npoints, 4);
    /* 15 snapshots after the warm-up (5..19), four of them evenly spread. */
    const size_t expect[4] = {5, 9, 14, 19};
    for (size_t p = 0; p < 4; p++) {
        cr_expect_eq(a->point_snapshot[p], expect[p]);
        cr_expect_eq(a->sites[0].live_bytes[p], 16 * (expect[p] + 1));
    }
    mt__leaks_free(a);

    opt.warmup = 30;
    cr_assert_eq(mt__leaks_analyze(t, &opt, &a), 0);
    cr_expect_eq(a->npoints, 0);
    cr_expect_eq(a->ncandidates, 0);
    mt__leaks_free(a);

    opt.warmup = 0;
    opt.max_points = 2;
    cr_expect_eq(mt__leaks_analyze(t, &opt, &a), -EINVAL);
    cr_expect_null(a);
    mt__trace_close(t);
    unlink(path);
    free(path);
}

Test(points, snapshots_are_named_by_index_label_first_last_or_end)
{
    char *path = batches_trace(4);
    mt_trace_t *t = open_trace(path);
    char err[256];
    size_t i;
    cr_expect_eq(mt__snapshot_find(t, "2", false, &i, err, sizeof err), 0);
    cr_expect_eq(i, 2);
    cr_expect_eq(mt__snapshot_find(t, "batch", false, &i, err, sizeof err), 0);
    cr_expect_eq(i, 1);
    cr_expect_eq(mt__snapshot_find(t, "batch", true, &i, err, sizeof err), 0);
    cr_expect_eq(i, 3);
    cr_expect_eq(mt__snapshot_find(t, "start", true, &i, err, sizeof err), 0);
    cr_expect_eq(i, 0);
    cr_expect_eq(mt__snapshot_find(t, "last", false, &i, err, sizeof err), 0);
    cr_expect_eq(i, 3);
    cr_expect_eq(mt__snapshot_find(t, "end", false, &i, err, sizeof err), 0);
    cr_expect_eq(i, MT_POINT_END);
    cr_expect_eq(mt__snapshot_find(t, "4", false, &i, err, sizeof err), -EINVAL);
    cr_expect(strstr(err, "snapshot 4 is out of range"), "%s", err);
    cr_expect_eq(mt__snapshot_find(t, "nosuch", false, &i, err, sizeof err), -EINVAL);
    cr_expect(strstr(err, "no snapshot is labelled 'nosuch'"), "%s", err);
    mt__trace_close(t);
    unlink(path);
    free(path);
}

Test(points, capture_holds_each_site_at_each_point)
{
    char *path = batches_trace(4);
    mt_trace_t *t = open_trace(path);
    mt_point_t pts[3] = {{.snapshot = 3}, {.snapshot = MT_POINT_END}, {.snapshot = 0}};
    mt_replay_t *r;
    cr_assert_eq(mt__points_capture(t, pts, 3, &r), 0);
    cr_assert_eq(pts[0].nsites, 2);
    cr_expect_eq(pts[0].sites[0].stack, 0);
    cr_expect_eq(pts[0].sites[0].live_bytes, 64);
    cr_expect_eq(pts[0].sites[0].allocations, 4);
    cr_expect_eq(pts[0].sites[1].stack, 2);
    cr_expect_eq(pts[0].live_bytes, 1064);
    cr_expect_str_eq(pts[0].snap->text, "batch");
    cr_expect_eq(pts[2].sites[0].live_bytes, 16);
    cr_expect_str_eq(pts[2].snap->text, "start");
    cr_expect_null(pts[1].snap);
    cr_expect_eq(pts[1].live_bytes, 1064);
    mt__points_free(pts, 3);
    mt__replay_free(r);
    mt__trace_close(t);
    unlink(path);
    free(path);
}
