/* test_sample.c - tests of MEMTRACK_SAMPLE_BYTES in libmemtrack.so (preload/sample.c, config.c).
 *
 * The target sample_known makes 100,000 allocations of 16, 64, 256 and 1024
 * bytes (25,000 of each) and frees nine in ten at once. Under sampling, the
 * trace must hold far fewer allocations, each size in about the proportion
 * 1 - exp(-n/S), every recorded free must be the free of a recorded block
 * (frees of blocks that were not sampled are left out), and two runs must
 * record the same blocks (the per-thread seeds are fixed).
 */
#include <criterion/criterion.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "e2e.h"

#define N_PER_SIZE 25000

static const uint64_t sizes[] = {16, 64, 256, 1024};

static void run_sampled_target(mt_e2e_run_t *run, mt_e2e_trace_t *tr, const char *target, const char *setting)
{
    const char *env[] = {setting, NULL};
    mt_e2e_opts_t o = {.env = env, .capture_stderr = true, .capture_stdout = true};
    int rc = mt_e2e_run_target(run, &o, target, NULL);
    cr_assert_eq(rc, 0, "cannot run %s: %s", target, strerror(-rc));
    cr_assert_eq(run->exit_code, 0);
    cr_assert_eq(run->ntraces, 1, "expected 1 trace in %s, found %zu", run->dir, run->ntraces);
    rc = mt_e2e_trace_open(tr, run->traces[0]);
    cr_assert_eq(rc, 0, "cannot read %s: %s", run->traces[0], tr->err);
    cr_assert(tr->info->complete);
    cr_assert_eq(tr->info->dropped, 0);
}

static void run_sampled(mt_e2e_run_t *run, mt_e2e_trace_t *tr, const char *setting)
{
    run_sampled_target(run, tr, "sample_known", setting);
}

Test(sample, sampling_records_few_blocks_in_proportion_to_their_size, .timeout = 30)
{
    mt_e2e_run_t run;
    mt_e2e_trace_t tr;
    run_sampled(&run, &tr, "MEMTRACK_SAMPLE_BYTES=4096");
    cr_expect_eq(mt_e2e_count_lines(run.stderr_path), 0, "sampling printed a warning");
    cr_expect_eq(tr.info->flags & MT_TRACE_F_SAMPLED, MT_TRACE_F_SAMPLED);
    cr_expect_eq(tr.info->sample_bytes, 4096);
    uint64_t total = 0;
    for (size_t i = 0; i < 4; i++) {
        double p = -expm1(-(double)sizes[i] / 4096.0);
        double mean = N_PER_SIZE * p, sigma = sqrt(N_PER_SIZE * p * (1 - p));
        uint64_t got = mt_e2e_count(&tr.tally, MT_OP_MALLOC, sizes[i]);
        total += got;
        cr_expect(fabs((double)got - mean) <= 5 * sigma, "%llu-byte blocks: %llu sampled, expected %.0f +- %.0f",
                  (unsigned long long)sizes[i], (unsigned long long)got, mean, 5 * sigma);
    }
    cr_expect_lt(tr.tally.allocs, 10000, "%llu allocations recorded of 100,000",
                 (unsigned long long)tr.tally.allocs);
    cr_expect_eq(tr.tally.allocs, total, "allocations of other sizes were recorded");
    cr_expect_eq(tr.tally.unknown_frees, 0, "frees of blocks that were not sampled were recorded");
    cr_expect_eq(tr.tally.frees, tr.tally.matched_frees);
    cr_expect_gt(tr.tally.frees, 0);
    mt_e2e_trace_close(&tr);
    mt_e2e_run_free(&run);
}

Test(sample, two_runs_sample_the_same_blocks, .timeout = 30)
{
    uint64_t counts[2][4];
    for (int r = 0; r < 2; r++) {
        mt_e2e_run_t run;
        mt_e2e_trace_t tr;
        run_sampled(&run, &tr, "MEMTRACK_SAMPLE_BYTES=4096");
        for (size_t i = 0; i < 4; i++)
            counts[r][i] = mt_e2e_count(&tr.tally, MT_OP_MALLOC, sizes[i]);
        mt_e2e_trace_close(&tr);
        mt_e2e_run_free(&run);
    }
    for (size_t i = 0; i < 4; i++)
        cr_expect_eq(counts[0][i], counts[1][i], "%llu-byte blocks: %llu then %llu",
                     (unsigned long long)sizes[i], (unsigned long long)counts[0][i],
                     (unsigned long long)counts[1][i]);
}

Test(sample, zero_records_every_allocation, .timeout = 30)
{
    mt_e2e_run_t run;
    mt_e2e_trace_t tr;
    run_sampled(&run, &tr, "MEMTRACK_SAMPLE_BYTES=0");
    cr_expect_eq(mt_e2e_count_lines(run.stderr_path), 0);
    cr_expect_eq(tr.info->flags & MT_TRACE_F_SAMPLED, 0);
    for (size_t i = 0; i < 4; i++)
        cr_expect_eq(mt_e2e_count(&tr.tally, MT_OP_MALLOC, sizes[i]), N_PER_SIZE);
    mt_e2e_trace_close(&tr);
    mt_e2e_run_free(&run);
}

Test(sample, a_bad_sample_size_gives_one_warning_and_records_everything, .timeout = 60)
{
    static const char *const bad[] = {"abc", "-1", "4k", "", "1099511627777", "99999999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char setting[64];
        snprintf(setting, sizeof setting, "MEMTRACK_SAMPLE_BYTES=%s", bad[i]);
        mt_e2e_run_t run;
        mt_e2e_trace_t tr;
        run_sampled(&run, &tr, setting);
        char *err = mt_e2e_read_file(run.stderr_path, NULL);
        cr_assert(err);
        cr_expect_eq(mt_e2e_count_lines(run.stderr_path), 1, "%s: expected one warning, got:\n%s", setting, err);
        cr_expect(strstr(err, "MEMTRACK_SAMPLE_BYTES"), "%s: the warning does not name the variable: %s",
                  setting, err);
        free(err);
        cr_expect_eq(tr.info->flags & MT_TRACE_F_SAMPLED, 0, "%s: the trace says sampled", setting);
        cr_expect_eq(tr.info->sample_bytes, 0);
        cr_expect_eq(mt_e2e_count(&tr.tally, MT_OP_MALLOC, 64), N_PER_SIZE, "%s", setting);
        mt_e2e_trace_close(&tr);
        mt_e2e_run_free(&run);
    }
}

/* record_entry and record_cxx call every C entry point and every operator
 * new and delete once, and thread_churn's 2000 threads free each other's
 * blocks, all with sizes near 1000 bytes: at S = 1500 about half of the
 * blocks are sampled. Whichever are, every free, realloc free half and
 * delete in the trace must be that of a recorded block, whichever thread
 * frees it. */
Test(sample, every_entry_point_and_thread_records_the_frees_of_sampled_blocks_only, .timeout = 60)
{
    static const char *const targets[] = {"record_entry", "record_cxx", "thread_churn"};
    for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++) {
        mt_e2e_run_t full_run, run;
        mt_e2e_trace_t full, tr;
        run_sampled_target(&full_run, &full, targets[i], "MEMTRACK_SAMPLE_BYTES=0");
        run_sampled_target(&run, &tr, targets[i], "MEMTRACK_SAMPLE_BYTES=1500");
        cr_expect_gt(tr.tally.allocs, 0, "%s: nothing sampled", targets[i]);
        cr_expect_lt(tr.tally.allocs, full.tally.allocs, "%s: everything sampled", targets[i]);
        cr_expect_eq(tr.tally.unknown_frees, 0, "%s: %llu frees of blocks that were not sampled", targets[i],
                     (unsigned long long)tr.tally.unknown_frees);
        cr_expect_eq(tr.tally.frees, tr.tally.matched_frees, "%s", targets[i]);
        cr_expect_eq(tr.tally.double_allocs, 0, "%s", targets[i]);
        cr_expect_eq(full.tally.unknown_frees, 0, "%s: the full run has unknown frees", targets[i]);
        mt_e2e_trace_close(&tr);
        mt_e2e_trace_close(&full);
        mt_e2e_run_free(&run);
        mt_e2e_run_free(&full_run);
    }
}
