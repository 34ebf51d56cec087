/* test_check_e2e.c - end-to-end tests of `memtrack check` and `memtrack run --budget`.
 *
 * Each test records tests/targets/budget_scopes.c, whose numbers are known
 * by construction (see its header), then runs the memtrack executable on
 * the trace with a budget file, and checks the exit status (0, 1, 2), the
 * measured value of every scope and metric in the JSON, the text, the
 * JUnit XML and the GitHub annotations.
 */
#include <criterion/criterion.h>

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "e2e.h"

/* Limits that every measured value meets exactly (margin 0). */
static const char exact_budgets[] =
    "{\"budgets\": [\n"
    "  {\"name\": \"whole run\", \"leaked_bytes\": 640, \"leaked_allocations\": 10, \"peak_bytes\": \"1MiB\"},\n"
    "  {\"name\": \"parser\", \"function\": \"parse_*\", \"peak_bytes\": 3000, \"allocations\": 6,\n"
    "   \"bytes_allocated\": 6000, \"temporary_allocations\": 2},\n"
    "  {\"name\": \"names\", \"function\": \"leak_names\", \"file\": \"budget_scopes.c\", \"leaked_bytes\": 640,\n"
    "   \"leaked_allocations\": 10},\n"
    "  {\"name\": \"test_load\", \"from\": \"test_load:begin\", \"to\": \"test_load:end\", \"peak_bytes\": 7000,\n"
    "   \"retained_bytes\": 5000, \"allocations\": 2, \"bytes_allocated\": 7000, \"temporary_allocations\": 1},\n"
    "  {\"name\": \"per batch\", \"between\": \"batch\", \"retained_bytes\": 300, \"peak_bytes\": 350,\n"
    "   \"allocations\": 2, \"temporary_allocations\": 1}\n"
    "]}\n";

/* The leak budget of 0 fails, by 640 bytes, at leak_names. */
static const char leak_budget[] = "{\"budgets\": [{\"name\": \"no leaks\", \"leaked_bytes\": 0},\n"
                                  "  {\"name\": \"roomy\", \"peak_bytes\": \"1MiB\"}]}\n";

typedef struct fixture {
    mt_e2e_run_t target;
    char budget[4096];
    char *trace;
} fixture_t;

static void record(fixture_t *fx)
{
    memset(fx, 0, sizeof *fx);
    int rc = mt_e2e_run_target(&fx->target, NULL, "budget_scopes", NULL);
    cr_assert_eq(rc, 0, "cannot run budget_scopes: %s", strerror(-rc));
    cr_assert_eq(fx->target.exit_code, 0);
    cr_assert_eq(fx->target.ntraces, 1);
    fx->trace = strdup(fx->target.traces[0]);
}

static const char *write_in(fixture_t *fx, const char *name, const char *text)
{
    cr_assert_eq(mt_e2e_write_text(fx->budget, sizeof fx->budget, fx->target.dir, name, text), 0);
    return fx->budget;
}

static void release(fixture_t *fx)
{
    free(fx->trace);
    mt_e2e_run_free(&fx->target);
}

/* Runs build/memtrack with args (NULL-terminated) in the fixture's
 * directory; returns its exit status and what it printed (malloc'd). */
static int memtrack(fixture_t *fx, char **out, char **err, const char *const *args)
{
    char *argv[32];
    size_t n = 0;
    static char path[4096];
    snprintf(path, sizeof path, "%s/memtrack", mt_e2e_build_dir());
    argv[n++] = path;
    for (size_t i = 0; args[i]; i++)
        argv[n++] = (char *)args[i];
    argv[n] = NULL;
    mt_e2e_opts_t o = {.no_preload = true, .capture_stdout = true, .capture_stderr = true, .dir = fx->target.dir};
    mt_e2e_run_t run;
    int rc = mt_e2e_run(&run, argv, &o);
    cr_assert_eq(rc, 0, "cannot run memtrack: %s", strerror(-rc));
    *out = mt_e2e_read_file(run.stdout_path, NULL);
    *err = mt_e2e_read_file(run.stderr_path, NULL);
    cr_assert(*out && *err);
    int code = run.exit_code;
    mt_e2e_run_free(&run);
    return code;
}

static const cJSON *item(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    cr_assert(v, "no %s", name);
    return v;
}

/* Finds the result of budget name and metric. */
static const cJSON *result(const cJSON *doc, const char *name, const char *metric)
{
    const cJSON *r;
    cJSON_ArrayForEach(r, item(doc, "results"))
    {
        if (!strcmp(item(r, "budget")->valuestring, name) && !strcmp(item(r, "metric")->valuestring, metric))
            return r;
    }
    cr_assert_fail("no result for %s %s", name, metric);
    return NULL;
}

static double measured(const cJSON *doc, const char *name, const char *metric)
{
    return item(result(doc, name, metric), "measured")->valuedouble;
}

Test(check_e2e, every_scope_and_metric_measures_the_known_numbers)
{
    fixture_t fx;
    record(&fx);
    const char *budget = write_in(&fx, "exact.json", exact_budgets);
    char *out, *err;
    int code = memtrack(&fx, &out, &err, (const char *[]){"check", "--json", "--budget", budget, fx.trace, NULL});
    cr_assert_eq(code, 0, "exit %d: %s%s", code, err, out);
    cJSON *doc = cJSON_Parse(out);
    cr_assert(doc, "not JSON: %s", out);
    cr_expect_str_eq(item(doc, "format")->valuestring, "memtrack-check");
    cr_expect(cJSON_IsTrue(item(doc, "passed")));
    cr_expect_eq(cJSON_GetArraySize(item(doc, "results")), 18);
    cr_expect_eq(measured(doc, "whole run", "leaked_bytes"), 640);
    cr_expect_eq(measured(doc, "whole run", "leaked_allocations"), 10);
    cr_expect_eq(measured(doc, "whole run", "peak_bytes"), 640 + 5000 + 2000);
    /* Own high-water mark of the parse_chunk sites, not their share of the global peak (0). */
    cr_expect_eq(measured(doc, "parser", "peak_bytes"), 3000);
    cr_expect_eq(measured(doc, "parser", "allocations"), 6);
    cr_expect_eq(measured(doc, "parser", "bytes_allocated"), 6000);
    cr_expect_eq(measured(doc, "parser", "temporary_allocations"), 2);
    cr_expect_eq(measured(doc, "names", "leaked_bytes"), 640);
    cr_expect_eq(measured(doc, "test_load", "peak_bytes"), 7000);
    cr_expect_eq(measured(doc, "test_load", "retained_bytes"), 5000);
    cr_expect_eq(measured(doc, "test_load", "allocations"), 2);
    cr_expect_eq(measured(doc, "test_load", "bytes_allocated"), 7000);
    cr_expect_eq(measured(doc, "test_load", "temporary_allocations"), 1);
    const cJSON *batch = result(doc, "per batch", "retained_bytes");
    cr_expect_eq(item(batch, "measured")->valuedouble, 300);
    cr_expect_eq(item(batch, "intervals")->valuedouble, 3);
    cr_expect_eq(item(item(batch, "worst_interval"), "index")->valuedouble, 2);
    cr_expect_eq(item(batch, "margin")->valuedouble, 0);
    cr_expect_eq(measured(doc, "per batch", "peak_bytes"), 350);
    cr_expect_eq(measured(doc, "per batch", "allocations"), 2);
    cr_expect_eq(measured(doc, "per batch", "temporary_allocations"), 1);
    /* The site that accounts for the leak, with its stack. */
    const cJSON *site = cJSON_GetArrayItem(item(result(doc, "whole run", "leaked_bytes"), "sites"), 0);
    cr_assert(site);
    cr_expect_str_eq(item(site, "function")->valuestring, "leak_names");
    cr_expect_eq(item(site, "value")->valuedouble, 640);
    cr_expect(cJSON_IsNumber(item(site, "stack_id")));
    cr_expect_gt(cJSON_GetArraySize(item(site, "stack")), 1);
    cJSON_Delete(doc);
    free(out);
    free(err);
    release(&fx);
}

Test(check_e2e, exceeded_budget_exits_1_and_points_at_the_code)
{
    fixture_t fx;
    record(&fx);
    const char *budget = write_in(&fx, "leak.json", leak_budget);
    char *out, *err;
    int code = memtrack(&fx, &out, &err, (const char *[]){"check", "--budget", budget, fx.trace, NULL});
    cr_expect_eq(code, 1, "exit %d: %s", code, err);
    cr_expect(strstr(out, "FAIL  no leaks: leaked_bytes 640 B, limit 0 B, over by 640 B"), "%s", out);
    cr_expect(strstr(out, "#1 640 B  leak_names (budget_scopes.c:"), "%s", out);
    cr_expect(strstr(out, "PASS  roomy: peak_bytes"), "%s", out);
    cr_expect(strstr(out, "1 of 2 limits exceeded"), "%s", out);
    free(out);
    free(err);
    release(&fx);
}

Test(check_e2e, budgets_that_hold_exit_0)
{
    fixture_t fx;
    record(&fx);
    const char *budget = write_in(&fx, "ok.json", "{\"budgets\": [{\"name\": \"n\", \"leaked_bytes\": \"1KiB\"}]}");
    char *out, *err;
    int code = memtrack(&fx, &out, &err, (const char *[]){"check", "--budget", budget, fx.trace, NULL});
    cr_expect_eq(code, 0, "exit %d: %s", code, err);
    cr_expect(strstr(out, "all 1 limit hold"), "%s", out);
    free(out);
    free(err);
    release(&fx);
}

Test(check_e2e, bad_budget_file_exits_2_with_one_line_naming_line_and_column)
{
    fixture_t fx;
    record(&fx);
    const char *budget = write_in(&fx, "bad.json", "{\"budgets\": [\n  {\"name\": \"x\", \"peak_byte\": 1}]}\n");
    char *out, *err;
    int code = memtrack(&fx, &out, &err, (const char *[]){"check", "--budget", budget, fx.trace, NULL});
    cr_expect_eq(code, 2);
    char want[4200];
    snprintf(want, sizeof want, "memtrack: %s:2:17: unknown key 'peak_byte'", budget);
    cr_expect(!strncmp(err, want, strlen(want)), "%s", err);
    cr_expect_eq(strchr(err, '\n'), err + strlen(err) - 1, "more than one line: %s", err);
    free(out);
    free(err);
    release(&fx);
}

Test(check_e2e, label_that_never_occurs_exits_2)
{
    fixture_t fx;
    record(&fx);
    const char *budget = write_in(&fx, "label.json", "{\"budgets\": [{\"name\": \"r\", \"between\": \"batchh\", "
                                                     "\"retained_bytes\": 0}]}");
    char *out, *err;
    int code = memtrack(&fx, &out, &err, (const char *[]){"check", "--budget", budget, fx.trace, NULL});
    cr_expect_eq(code, 2);
    cr_expect(strstr(err, "budget 'r': label 'batchh' never occurs in "), "%s", err);
    free(out);
    free(err);
    release(&fx);
}

Test(check_e2e, junit_has_one_testcase_per_budget_and_a_failure_for_the_exceeded_one)
{
    fixture_t fx;
    record(&fx);
    const char *budget = write_in(&fx, "leak.json", leak_budget);
    char xml[4200];
    snprintf(xml, sizeof xml, "%s/junit.xml", fx.target.dir);
    char *out, *err;
    int code = memtrack(&fx, &out, &err, (const char *[]){"check", "--junit", xml, "--budget", budget, fx.trace, NULL});
    cr_expect_eq(code, 1);
    char *text = mt_e2e_read_file(xml, NULL);
    cr_assert(text);
    cr_expect(!strncmp(text, "<?xml version=\"1.0\"", 19));
    cr_expect(strstr(text, "<testsuites name=\"memtrack budgets\" tests=\"2\" failures=\"1\""), "%s", text);
    cr_expect(strstr(text, "<testcase classname=\"memtrack.budget\" name=\"no leaks\">\n"
                           "      <failure type=\"memory budget exceeded\" message=\"leaked_bytes 640 B exceeds "
                           "the limit 0 B by 640 B\">"), "%s", text);
    cr_expect(strstr(text, "#1 640 B leak_names (budget_scopes.c:"), "%s", text);
    cr_expect(strstr(text, "<testcase classname=\"memtrack.budget\" name=\"roomy\">\n    </testcase>"), "%s", text);
    size_t failures = 0;
    for (const char *p = text; (p = strstr(p, "<failure ")); p++)
        failures++;
    cr_expect_eq(failures, 1);
    free(text);
    free(out);
    free(err);
    release(&fx);
}

Test(check_e2e, unwritable_junit_exits_2_but_keeps_the_human_output)
{
    fixture_t fx;
    record(&fx);
    const char *budget = write_in(&fx, "leak.json", leak_budget);
    char *out, *err;
    int code = memtrack(&fx, &out, &err,
                        (const char *[]){"check", "--junit", "/nonexistent/dir/j.xml", "--budget", budget, fx.trace, NULL});
    cr_expect_eq(code, 2);
    cr_expect(strstr(out, "FAIL  no leaks"), "%s", out);
    cr_expect_str_eq(err, "memtrack: /nonexistent/dir/j.xml: cannot write: No such file or directory\n");
    free(out);
    free(err);
    release(&fx);
}

/* The line of the leaking malloc in the target's source. */
static unsigned leak_line(void)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/../tests/targets/budget_scopes.c", mt_e2e_build_dir());
    char *src = mt_e2e_read_file(path, NULL);
    cr_assert(src, "cannot read %s", path);
    const char *at = strstr(src, "/* LEAK_LINE */");
    cr_assert(at);
    unsigned line = 1;
    for (const char *p = src; p < at; p++)
        line += *p == '\n';
    free(src);
    return line;
}

Test(check_e2e, github_annotation_names_the_leaking_source_line)
{
    fixture_t fx;
    record(&fx);
    const char *budget = write_in(&fx, "leak.json", leak_budget);
    char *out, *err;
    int code = memtrack(&fx, &out, &err, (const char *[]){"check", "--github", "--budget", budget, fx.trace, NULL});
    cr_expect_eq(code, 1);
    const char *ann = strstr(out, "::error file=");
    cr_assert(ann, "%s", out);
    char want[256];
    snprintf(want, sizeof want, "budget_scopes.c,line=%u,title=memtrack budget 'no leaks'::leaked_bytes 640 B "
                                "exceeds the limit 0 B by 640 B; top site leak_names (budget_scopes.c:%u)\n",
             leak_line(), leak_line());
    cr_expect(strstr(ann, want), "%s", ann);
    cr_expect_null(strstr(ann + 1, "::error"), "one annotation only: %s", out);
    free(out);
    free(err);
    release(&fx);
}

Test(check_e2e, update_writes_limits_with_headroom_that_then_hold)
{
    fixture_t fx;
    record(&fx);
    char path[4200];
    snprintf(path, sizeof path, "%s/new.json", fx.target.dir);
    char *out, *err;
    int code = memtrack(&fx, &out, &err,
                        (const char *[]){"check", "--update", "--headroom", "10%", "--budget", path, fx.trace, NULL});
    cr_assert_eq(code, 0, "%s", err);
    free(out);
    free(err);
    char *text = mt_e2e_read_file(path, NULL);
    cJSON *doc = cJSON_Parse(text);
    cr_assert(doc, "%s", text);
    const cJSON *b = cJSON_GetArrayItem(item(doc, "budgets"), 0);
    cr_expect_str_eq(item(b, "name")->valuestring, "whole run");
    cr_expect_eq(item(b, "leaked_bytes")->valuedouble, 704);        /* 640 + 10% */
    cr_expect_eq(item(b, "leaked_allocations")->valuedouble, 11);   /* 10 + 10% */
    cr_expect_eq(item(b, "peak_bytes")->valuedouble, 7640 + 764);
    cJSON_Delete(doc);
    free(text);
    code = memtrack(&fx, &out, &err, (const char *[]){"check", "--budget", path, fx.trace, NULL});
    cr_expect_eq(code, 0, "%s%s", out, err);
    free(out);
    free(err);
    release(&fx);
}

Test(check_e2e, run_with_budget_gives_the_checks_status_or_the_programs_failure)
{
    fixture_t fx;
    record(&fx);
    const char *budget = write_in(&fx, "leak.json", leak_budget);
    char target[4200], output[4200];
    snprintf(target, sizeof target, "%s/targets/budget_scopes", mt_e2e_build_dir());
    snprintf(output, sizeof output, "%s/run.%%p.mtrace", fx.target.dir);
    char *out, *err;
    int code = memtrack(&fx, &out, &err,
                        (const char *[]){"run", "-o", output, "--budget", budget, "--", target, NULL});
    cr_expect_eq(code, 1, "%s", err);
    cr_expect(strstr(out, "FAIL  no leaks"), "%s", out);
    free(out);
    free(err);
    code = memtrack(&fx, &out, &err,
                    (const char *[]){"run", "-o", output, "--budget", budget, "--", target, "fail", NULL});
    cr_expect_eq(code, 3, "%s", err);
    free(out);
    free(err);
    release(&fx);
}

Test(check_e2e, a_site_glob_that_matches_no_stack_exits_2_instead_of_passing)
{
    fixture_t fx;
    record(&fx);
    const char *budget = write_in(&fx, "typo.json", "{\"budgets\": [{\"name\": \"p\", \"function\": \"prase_*\", "
                                                    "\"peak_bytes\": \"1MiB\"}]}");
    char *out, *err;
    int code = memtrack(&fx, &out, &err, (const char *[]){"check", "--budget", budget, fx.trace, NULL});
    cr_expect_eq(code, 2, "exit %d: %s%s", code, err, out);
    cr_expect(strstr(err, "budget 'p': no stack of the trace has a frame matching function 'prase_*'"), "%s", err);
    cr_expect_eq(strchr(err, '\n'), err + strlen(err) - 1, "more than one line: %s", err);
    free(out);
    free(err);
    release(&fx);
}

Test(check_e2e, a_trace_cut_short_is_bad_input_unless_allowed)
{
    fixture_t fx;
    record(&fx);
    size_t len;
    char *bytes = mt_e2e_read_file(fx.trace, &len);
    cr_assert(bytes && len > 200);
    char cut[4200];
    snprintf(cut, sizeof cut, "%s.cut.mtrace", fx.trace);
    FILE *f = fopen(cut, "w");
    cr_assert(f);
    fwrite(bytes, 1, len - 3, f); /* inside the END record */
    fclose(f);
    free(bytes);
    const char *budget = write_in(&fx, "leak.json", leak_budget);
    char *out, *err;
    int code = memtrack(&fx, &out, &err, (const char *[]){"check", "--budget", budget, cut, NULL});
    cr_expect_eq(code, 2, "exit %d: %s%s", code, err, out);
    cr_expect(strstr(err, "cut short"), "%s", err);
    cr_expect_eq(strchr(err, '\n'), err + strlen(err) - 1, "more than one line: %s", err);
    free(out);
    free(err);
    code = memtrack(&fx, &out, &err, (const char *[]){"check", "--allow-incomplete", "--budget", budget, cut, NULL});
    cr_expect_eq(code, 1, "the leak budget is still checked and exceeded: exit %d: %s%s", code, err, out);
    free(out);
    free(err);
    release(&fx);
}
