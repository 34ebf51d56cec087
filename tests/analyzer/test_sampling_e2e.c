/* test_sampling_e2e.c - end-to-end tests of the analyzer on sampled traces (MEMTRACK_SAMPLE_BYTES).
 *
 * The target sample_known makes 100,000 allocations: 25,000 each of 16, 64,
 * 256 and 1024 bytes, and keeps 5,000 of the 16-byte and 5,000 of the
 * 256-byte blocks until exit. A full run gives the exact numbers; a run
 * sampled with S = 4096 must give estimates within five standard deviations
 * of them. Each block of n bytes is sampled with probability
 * p = 1 - exp(-n/S) and weighted by 1/p, so the estimate of a count has
 * variance sum (1 - p) / p over the blocks, and that of a byte total
 * sum n^2 (1 - p) / p. The sampling seed is fixed, so the test gives the same
 * answer on every run; the bound only says the answer is a fair estimate.
 */
#include <criterion/criterion.h>

#include <cjson/cJSON.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "e2e.h"

#define S 4096.0

static const double sizes[] = {16, 64, 256, 1024};

/* Runs sample_known (sampled when setting is not NULL) and returns the path
 * of its trace, copied; the run stays in *run. */
static char *record(mt_e2e_run_t *run, const char *setting)
{
    const char *env[] = {setting, NULL};
    mt_e2e_opts_t o = {.env = setting ? env : NULL};
    int rc = mt_e2e_run_target(run, &o, "sample_known", NULL);
    cr_assert_eq(rc, 0, "cannot run sample_known: %s", strerror(-rc));
    cr_assert_eq(run->exit_code, 0);
    cr_assert_eq(run->ntraces, 1);
    return run->traces[0];
}

/* Runs memtrack with args (NULL-terminated) and returns its stdout;
 * *status gets the exit code and *err (when not NULL) its stderr. */
static char *memtrack_err(int *status, char **err, const char *const *args)
{
    mt_e2e_cli_t c;
    int rc = mt_e2e_memtrack(&c, args);
    cr_assert_eq(rc, 0, "cannot run memtrack: %s", strerror(-rc));
    *status = c.exit_code;
    if (err)
        *err = c.err;
    else
        free(c.err);
    return c.out;
}

#define memtrack(status, ...) memtrack_err(status, NULL, (const char *const[]){__VA_ARGS__, NULL})

static cJSON *report_json(const char *trace)
{
    int status;
    char *out = memtrack(&status, "report", "--json", trace);
    cr_assert_eq(status, 0);
    cJSON *doc = cJSON_Parse(out);
    cr_assert(doc, "not JSON: %.200s", out);
    free(out);
    return doc;
}

static double num(const cJSON *o, const char *name)
{
    const cJSON *i = cJSON_GetObjectItemCaseSensitive(o, name);
    cr_assert(cJSON_IsNumber(i), "no number '%s'", name);
    return cJSON_GetNumberValue(i);
}

static const cJSON *obj(const cJSON *o, const char *name)
{
    const cJSON *i = cJSON_GetObjectItemCaseSensitive(o, name);
    cr_assert(i, "no member '%s'", name);
    return i;
}

/* The variance of the estimate of count blocks of n bytes (power 0) or of
 * their bytes (power 2). */
static double var(double count, double n, int power)
{
    double p = -expm1(-n / S);
    return count * pow(n, power) * (1 - p) / p;
}

static void expect_near(const char *what, double got, double exact, double sigma, double slack)
{
    cr_expect(fabs(got - exact) <= 5 * sigma + slack, "%s: estimate %.0f, exact %.0f, 5 sigma %.0f", what, got,
              exact, 5 * sigma);
}

Test(sampling, estimates_of_a_sampled_run_are_within_five_sigma_of_the_exact_numbers, .timeout = 60)
{
    mt_e2e_run_t full_run, sampled_run;
    cJSON *full = report_json(record(&full_run, NULL));
    cJSON *est = report_json(record(&sampled_run, "MEMTRACK_SAMPLE_BYTES=4096"));
    const cJSON *ft = obj(full, "totals"), *et = obj(est, "totals");

    cr_expect(cJSON_IsFalse(obj(full, "estimated")));
    cr_expect(cJSON_IsTrue(obj(est, "estimated")));
    cr_expect(cJSON_IsTrue(obj(est, "sampled")));
    cr_expect_eq(num(ft, "allocations"), 100000);
    cr_expect_eq(num(ft, "bytes_allocated"), 25000 * (16 + 64 + 256 + 1024));
    cr_expect_eq(num(ft, "leaked_bytes"), 5000 * (16 + 256));

    /* Far fewer events recorded. */
    cr_expect_lt(num(et, "events"), num(ft, "events") / 10, "%.0f events recorded of %.0f", num(et, "events"),
                 num(ft, "events"));
    /* Frees of blocks that were not sampled are not unknown frees. */
    cr_expect_eq(num(et, "unknown_frees"), 0);

    double vc = 0, vb = 0;
    for (int i = 0; i < 4; i++) {
        vc += var(25000, sizes[i], 0);
        vb += var(25000, sizes[i], 2);
    }
    double recorded = num(et, "events"); /* bound on the per-block rounding of bytes */
    expect_near("allocations", num(et, "allocations"), num(ft, "allocations"), sqrt(vc), 1);
    expect_near("bytes allocated", num(et, "bytes_allocated"), num(ft, "bytes_allocated"), sqrt(vb), recorded);
    double vlc = var(5000, 16, 0) + var(5000, 256, 0), vlb = var(5000, 16, 2) + var(5000, 256, 2);
    expect_near("leaked blocks", num(et, "leaked_allocations"), num(ft, "leaked_allocations"), sqrt(vlc), 1);
    expect_near("leaked bytes", num(et, "leaked_bytes"), num(ft, "leaked_bytes"), sqrt(vlb), recorded);
    cr_expect_geq(num(et, "peak_bytes"), num(et, "leaked_bytes"));

    cJSON_Delete(full);
    cJSON_Delete(est);
    mt_e2e_run_free(&full_run);
    mt_e2e_run_free(&sampled_run);
}

Test(sampling, the_text_report_of_a_sampled_trace_says_estimate, .timeout = 30)
{
    mt_e2e_run_t run;
    int status;
    char *out = memtrack(&status, "report", record(&run, "MEMTRACK_SAMPLE_BYTES=4096"));
    cr_expect_eq(status, 0);
    cr_expect(strstr(out, "TOTALS (estimates"), "no estimate label: %s", out);
    cr_expect(strstr(out, "allocations      ~"), "no '~' on the totals: %s", out);
    cr_expect(strstr(out, "leaked           ~") && strstr(out, " in ~"), "no '~' on the leaks: %s", out);
    cr_expect(strstr(out, "BY PEAK (estimates)"), "no estimate label on the sites: %s", out);
    cr_expect_null(strstr(out, "unknown frees"), "frees of unsampled blocks reported: %s", out);
    free(out);
    mt_e2e_run_free(&run);
}

static cJSON *parse(char *out)
{
    cJSON *doc = cJSON_Parse(out);
    cr_assert(doc, "not JSON: %.200s", out);
    free(out);
    return doc;
}

Test(sampling, check_refuses_a_sampled_trace_unless_estimates_are_allowed, .timeout = 30)
{
    mt_e2e_run_t run;
    const char *trace = record(&run, "MEMTRACK_SAMPLE_BYTES=4096");
    char budget[PATH_MAX];
    cr_assert_eq(mt_e2e_write_text(budget, sizeof budget, run.dir, "budget.json",
                                   "{\"budgets\": [{\"name\": \"run\", \"allocations\": 1000, \"peak_bytes\": \"1GiB\"}]}\n"),
                 0);

    int status;
    char *err;
    char *out = memtrack_err(&status, &err, (const char *const[]){"check", "--budget", budget, trace, NULL});
    cr_expect_eq(status, 2);
    cr_expect_eq(out[0], '\0', "nothing on stdout, got: %s", out);
    cr_expect(strstr(err, "sampled") && strstr(err, "--allow-estimates"), "%s", err);
    cr_expect_null(strchr(err, '\n') ? strchr(strchr(err, '\n') + 1, '\n') : NULL, "more than one line: %s", err);
    free(out);
    free(err);

    out = memtrack(&status, "check", "--budget", budget, "--allow-estimates", trace);
    cr_expect_eq(status, 1, "the allocation limit of 1000 must fail");
    cr_expect(strstr(out, "estimate"), "no estimate note: %s", out);
    free(out);

    cJSON *doc = parse(memtrack(&status, "check", "--budget", budget, "--allow-estimates", "--json", trace));
    cr_expect_eq(status, 1);
    cr_expect(cJSON_IsTrue(obj(doc, "estimated")));
    const cJSON *r;
    double allocs = -1;
    cJSON_ArrayForEach(r, obj(doc, "results"))
        if (!strcmp(cJSON_GetStringValue(obj(r, "metric")), "allocations"))
            allocs = num(r, "measured");
    double vc = 0;
    for (int i = 0; i < 4; i++)
        vc += var(25000, sizes[i], 0);
    expect_near("budget allocations", allocs, 100000, sqrt(vc), 1);
    cJSON_Delete(doc);
    mt_e2e_run_free(&run);
}

Test(sampling, leaks_diff_and_exports_of_a_sampled_trace_are_marked_as_estimates, .timeout = 30)
{
    mt_e2e_run_t run, full_run;
    const char *trace = record(&run, "MEMTRACK_SAMPLE_BYTES=4096");
    const char *full = record(&full_run, NULL);
    int status;

    cJSON *doc = parse(memtrack(&status, "leaks", "--json", trace));
    cr_expect_eq(status, 0);
    cr_expect(cJSON_IsTrue(obj(doc, "estimated")));
    cJSON_Delete(doc);
    doc = parse(memtrack(&status, "leaks", "--json", full));
    cr_expect(cJSON_IsFalse(obj(doc, "estimated")));
    cJSON_Delete(doc);
    char *out = memtrack(&status, "leaks", trace);
    cr_expect(strstr(out, "the numbers are estimates"), "%s", out);
    free(out);

    doc = parse(memtrack(&status, "diff", "--json", full, trace));
    cr_expect_eq(status, 0);
    cr_expect(cJSON_IsTrue(obj(doc, "estimated")));
    cJSON_Delete(doc);
    out = memtrack(&status, "diff", full, trace);
    cr_expect(strstr(out, "the numbers are estimates"), "%s", out);
    free(out);

    char *err;
    out = memtrack_err(&status, &err, (const char *const[]){"timeline", "--csv", trace, NULL});
    cr_expect_eq(status, 0);
    cr_expect(strstr(err, "the values are estimates"), "%s", err);
    cr_expect(!strncmp(out, "time_ns,", 8), "the CSV must stay plain: %.80s", out);
    free(out);
    free(err);
    out = memtrack(&status, "massif", trace);
    cr_expect(strstr(out, "(estimates: the trace is sampled)"), "%.200s", out);
    free(out);
    mt_e2e_run_free(&run);
    mt_e2e_run_free(&full_run);
}
