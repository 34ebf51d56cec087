/* test_exports.c - end-to-end tests of memtrack flamegraph, massif and timeline on targets of known behaviour.
 *
 * The exports target (tests/targets/exports.c) allocates a 1,000-byte table,
 * three 200-byte temporaries and four leaked 64-byte nodes between three
 * snapshots; the demo target has a known leak and a cache. Each test
 * records a target under the preload library, runs the memtrack binary on
 * the trace and checks the output exactly: folded stacks against the
 * report's totals, the massif file through valgrind's own ms_print, the
 * timeline CSV row by row.
 */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "e2e.h"

/* Records target name; returns the run (its trace is traces[0]). */
static mt_e2e_run_t record(const char *name)
{
    mt_e2e_run_t run;
    cr_assert_eq(mt_e2e_run_target(&run, NULL, name, NULL), 0);
    cr_assert_eq(run.exit_code, 0, "%s exited %d", name, run.exit_code);
    cr_assert_eq(run.ntraces, 1, "%s left %zu traces", name, run.ntraces);
    return run;
}

typedef struct cli {
    int exit_code;
    char *out, *err;
} cli_t;

/* Runs BUILD/memtrack with args (NULL-terminated) in dir and captures its output. */
static cli_t memtrack(const char *dir, const char *const *args)
{
    char cli[4096];
    snprintf(cli, sizeof cli, "%s/memtrack", mt_e2e_build_dir());
    char *argv[32] = {cli};
    size_t n = 1;
    for (; args[n - 1]; n++)
        argv[n] = (char *)args[n - 1];
    argv[n] = NULL;
    mt_e2e_run_t run;
    mt_e2e_opts_t o = {.no_preload = true, .capture_stdout = true, .capture_stderr = true};
    char *tmp = NULL;
    if (!dir)
        dir = tmp = mt_e2e_tempdir();
    o.dir = dir;
    cr_assert_eq(mt_e2e_run(&run, argv, &o), 0);
    cli_t r = {run.exit_code, mt_e2e_read_file(run.stdout_path, NULL), mt_e2e_read_file(run.stderr_path, NULL)};
    cr_assert(r.out && r.err);
    mt_e2e_run_free(&run);
    if (tmp) {
        mt_e2e_remove_tree(tmp);
        free(tmp);
    }
    return r;
}

static void cli_free(cli_t *c)
{
    free(c->out);
    free(c->err);
}

/* The report's totals, from `memtrack report --json`. */
static cJSON *report_totals(const char *trace, cJSON **doc)
{
    cli_t r = memtrack(NULL, (const char *[]){"report", "--json", trace, NULL});
    cr_assert_eq(r.exit_code, 0, "report: %s", r.err);
    *doc = cJSON_Parse(r.out);
    cr_assert(*doc, "not JSON: %s", r.out);
    cli_free(&r);
    cJSON *t = cJSON_GetObjectItemCaseSensitive(*doc, "totals");
    cr_assert(t);
    return t;
}

static uint64_t total(const cJSON *totals, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(totals, name);
    cr_assert(cJSON_IsNumber(v), "%s missing", name);
    return (uint64_t)v->valuedouble;
}

/* Sums the values of folded lines and counts the lines. */
static uint64_t folded_sum(const char *text, size_t *lines)
{
    uint64_t sum = 0;
    *lines = 0;
    for (const char *l = text; *l;) {
        const char *nl = strchr(l, '\n');
        cr_assert(nl, "last line without newline: %s", l);
        const char *sp = nl;
        while (sp > l && sp[-1] != ' ')
            sp--;
        cr_assert(sp > l + 1, "no value on line: %.*s", (int)(nl - l), l);
        sum += strtoull(sp, NULL, 10);
        (*lines)++;
        l = nl + 1;
    }
    return sum;
}

/* True when text has a line ending with suffix (a line's tail: ";main;f 12"). */
static bool has_line_ending(const char *text, const char *suffix)
{
    size_t n = strlen(suffix);
    for (const char *l = text; *l;) {
        const char *nl = strchr(l, '\n');
        if (!nl)
            return false;
        if ((size_t)(nl - l) >= n && !memcmp(nl - n, suffix, n) && nl[-(long)n - 1] == ';')
            return true;
        l = nl + 1;
    }
    return false;
}

Test(flamegraph, folded_stacks_of_the_exports_target_are_exact)
{
    mt_e2e_run_t run = record("exports");
    const char *trace = run.traces[0];
    static const struct {
        const char *metric;
        size_t lines;
        const char *expect[3];
    } cases[] = {
        {"peak", 2, {"main;keep_table 1000", "main;leak_node 256"}},
        {"leaked", 1, {"main;leak_node 256"}},
        {"allocations", 3, {"main;keep_table 1", "main;scratch 3", "main;leak_node 4"}},
        {"temporary", 1, {"main;scratch 3"}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cli_t r = memtrack(NULL, (const char *[]){"flamegraph", "--metric", cases[i].metric, trace, NULL});
        cr_assert_eq(r.exit_code, 0, "%s: %s", cases[i].metric, r.err);
        size_t lines;
        folded_sum(r.out, &lines);
        cr_expect_eq(lines, cases[i].lines, "%s:\n%s", cases[i].metric, r.out);
        for (size_t k = 0; k < 3 && cases[i].expect[k]; k++)
            cr_expect(has_line_ending(r.out, cases[i].expect[k]), "%s: no '%s' in\n%s", cases[i].metric,
                      cases[i].expect[k], r.out);
        /* Root first: every line starts at the program's entry, never at the allocating function. */
        cr_expect(strncmp(r.out, "main;", 5) && !strstr(r.out, "leak_node;"), "%s", r.out);
        cli_free(&r);
    }
    mt_e2e_run_free(&run);
}

Test(flamegraph, folded_counts_add_up_to_the_report_totals_of_the_demo)
{
    mt_e2e_run_t run = record("demo");
    const char *trace = run.traces[0];
    cJSON *doc;
    const cJSON *t = report_totals(trace, &doc);
    static const struct {
        const char *metric, *total;
    } cases[] = {
        {"peak", "peak_bytes"},
        {"leaked", "leaked_bytes"},
        {"allocations", "allocations"},
        {"temporary", "temporary_allocations"},
    };
    for (size_t i = 0; i < 4; i++) {
        cli_t r = memtrack(NULL, (const char *[]){"flamegraph", "--metric", cases[i].metric, trace, NULL});
        cr_assert_eq(r.exit_code, 0, "%s", r.err);
        size_t lines;
        uint64_t sum = folded_sum(r.out, &lines);
        cr_expect_eq(sum, total(t, cases[i].total), "%s: %" PRIu64 " vs report %" PRIu64, cases[i].metric, sum,
                     total(t, cases[i].total));
        cli_free(&r);
    }
    /* The demo's 6,400 leaked bytes are all remember_name's. */
    cli_t r = memtrack(NULL, (const char *[]){"flamegraph", "--metric", "leaked", trace, NULL});
    cr_expect(has_line_ending(r.out, "main;remember_name 6400"), "%s", r.out);
    cli_free(&r);
    cJSON_Delete(doc);
    mt_e2e_run_free(&run);
}

Test(massif, ms_print_accepts_the_file_and_shows_the_peak_and_the_snapshots)
{
    mt_e2e_run_t run = record("exports");
    char out[4096];
    snprintf(out, sizeof out, "%s/exports.massif", run.dir);
    cli_t r = memtrack(run.dir, (const char *[]){"massif", "-o", out, run.traces[0], NULL});
    cr_assert_eq(r.exit_code, 0, "%s", r.err);
    cli_free(&r);
    char *text = mt_e2e_read_file(out, NULL);
    cr_assert(text);
    /* 15 snapshots, one per event and marker; the peak's tree and each marker's. */
    cr_expect(strstr(text, "time_unit: B\n"));
    cr_expect(strstr(text, "snapshot=14\n") && !strstr(text, "snapshot=15\n"), "%s", text);
    cr_expect(strstr(text, "snapshot=11\n#-----------\ntime=1856\nmem_heap_B=1256\nmem_heap_extra_B=0\n"
                           "mem_stacks_B=0\nheap_tree=peak\nn2: 1256 (heap allocation functions)"),
              "%s", text);
    free(text);

    /* Through the shell, so that ms_print is looked up in PATH. */
    char *argv[] = {"/bin/sh", "-c", "exec ms_print \"$0\"", out, NULL};
    mt_e2e_run_t ms;
    mt_e2e_opts_t o = {.no_preload = true, .capture_stdout = true, .capture_stderr = true, .dir = run.dir};
    cr_assert_eq(mt_e2e_run(&ms, argv, &o), 0, "ms_print (valgrind) is not installed");
    char *printed = mt_e2e_read_file(ms.stdout_path, NULL);
    char *err = mt_e2e_read_file(ms.stderr_path, NULL);
    cr_expect_eq(ms.exit_code, 0, "ms_print failed: %s", err);
    cr_expect(strstr(printed, "Number of snapshots: 15"), "%s", printed);
    cr_expect(strstr(printed, "Detailed snapshots: [1, 11 (peak), 12, 14]"), "%s", printed);
    cr_expect(strstr(printed, "->79.62% (1,000B) 0x"), "%s", printed);
    cr_expect(strstr(printed, ": keep_table (tests/targets/exports.c:"), "%s", printed);
    cr_expect(strstr(printed, "->20.38% (256B) 0x"), "%s", printed);
    free(printed);
    free(err);
    mt_e2e_run_free(&ms);
    mt_e2e_run_free(&run);
}

/* The CSV rows of the exports target without their time column. */
static const char *const exports_rows[] = {
    "1000,1,1,",      "1000,1,1,setup", "1200,2,2,", "1000,1,2,", "1200,2,3,",
    "1000,1,3,",      "1200,2,4,",      "1000,1,4,", "1064,2,5,", "1128,3,6,",
    "1192,4,7,",      "1256,5,8,",      "1256,5,8,work", "256,4,8,", "256,4,8,done",
};

Test(timeline, csv_has_one_exact_row_per_event_and_snapshot)
{
    mt_e2e_run_t run = record("exports");
    cli_t r = memtrack(NULL, (const char *[]){"timeline", "--csv", run.traces[0], NULL});
    cr_assert_eq(r.exit_code, 0, "%s", r.err);
    char *save = NULL;
    char *line = strtok_r(r.out, "\n", &save);
    cr_assert(line);
    cr_expect_str_eq(line, "time_ns,live_bytes,live_blocks,allocations,snapshot");
    size_t n = 0;
    uint64_t last_time = 0;
    while ((line = strtok_r(NULL, "\n", &save))) {
        char *comma = strchr(line, ',');
        cr_assert(comma, "%s", line);
        uint64_t time = strtoull(line, NULL, 10);
        cr_expect_geq(time, last_time, "time goes back at row %zu", n);
        last_time = time;
        cr_assert_lt(n, sizeof exports_rows / sizeof exports_rows[0], "extra row %s", line);
        cr_expect_str_eq(comma + 1, exports_rows[n], "row %zu", n);
        n++;
    }
    cr_expect_eq(n, sizeof exports_rows / sizeof exports_rows[0]);
    cli_free(&r);
    mt_e2e_run_free(&run);
}

Test(timeline, downsampled_csv_is_bounded_and_keeps_the_exact_peak)
{
    mt_e2e_run_t run = record("demo");
    cJSON *doc;
    const cJSON *t = report_totals(run.traces[0], &doc);
    cli_t r = memtrack(NULL, (const char *[]){"timeline", "--max-points", "20", run.traces[0], NULL});
    cr_assert_eq(r.exit_code, 0, "%s", r.err);
    size_t rows = 0;
    uint64_t max = 0;
    for (char *l = strchr(r.out, '\n') + 1; *l; l = strchr(l, '\n') + 1) {
        uint64_t live = strtoull(strchr(l, ',') + 1, NULL, 10);
        max = live > max ? live : max;
        rows++;
    }
    /* 321 events: 10 spans of at most 2 points each. */
    cr_expect_leq(rows, 20, "%zu rows", rows);
    cr_expect_geq(rows, 10, "%zu rows", rows);
    cr_expect_eq(max, total(t, "peak_bytes"));
    cli_free(&r);
    cJSON_Delete(doc);
    mt_e2e_run_free(&run);
}

static void expect_one_line(const cli_t *r, const char *needle)
{
    cr_expect_eq(r->exit_code, 2, "exit %d", r->exit_code);
    cr_expect(strncmp(r->err, "memtrack", 8) == 0, "message '%s'", r->err);
    cr_expect(strstr(r->err, needle), "message '%s' does not say '%s'", r->err, needle);
    const char *nl = strchr(r->err, '\n');
    cr_expect(nl && nl[1] == '\0', "not one line: '%s'", r->err);
    cr_expect_str_eq(r->out, "");
}

Test(exports, bad_input_gives_one_line_and_exit_2)
{
    mt_e2e_run_t run = record("exports");
    const char *trace = run.traces[0];
    char notrace[4096];
    cr_assert_eq(mt_e2e_write_text(notrace, sizeof notrace, run.dir, "not-a-trace",
                                   "this is not a memtrack trace, only text long enough to fill a header and more.\n"),
                 0);
    const char *cmds[] = {"flamegraph", "massif", "timeline", "html"};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        cli_t r = memtrack(NULL, (const char *[]){cmds[i], "-o", "/nonexistent/dir/out", trace, NULL});
        expect_one_line(&r, "/nonexistent/dir/out");
        cli_free(&r);
        r = memtrack(NULL, (const char *[]){cmds[i], notrace, NULL});
        expect_one_line(&r, notrace);
        cli_free(&r);
        r = memtrack(NULL, (const char *[]){cmds[i], "/nonexistent/trace.mtrace", NULL});
        expect_one_line(&r, "/nonexistent/trace.mtrace");
        cli_free(&r);
        r = memtrack(NULL, (const char *[]){cmds[i], NULL});
        expect_one_line(&r, "no trace");
        cli_free(&r);
    }
    cli_t r = memtrack(NULL, (const char *[]){"flamegraph", "--metric", "bogus", trace, NULL});
    expect_one_line(&r, "bogus");
    cli_free(&r);
    r = memtrack(NULL, (const char *[]){"html", "--budget", "/nonexistent/budget.json", "-o", "/dev/null", trace, NULL});
    expect_one_line(&r, "/nonexistent/budget.json");
    cli_free(&r);
    mt_e2e_run_free(&run);
}
