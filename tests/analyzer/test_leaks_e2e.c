/* test_leaks_e2e.c - end-to-end tests of snapshots, `memtrack leaks` and `memtrack diff` on real runs.
 *
 * The target batch_patterns (tests/targets) runs N batches, each with one
 * function per growth pattern (a leak per batch through one of two callers
 * of make_entry, a leak every 5th batch, a bounded cache, scratch memory, a
 * sawtooth queue), and calls memtrack_snapshot after each. Its sizes and
 * counts are known by construction, so the JSON of leaks and diff is
 * checked exactly. batch_signal checks the snapshot signal (chained to the
 * handler the program installs after memtrack's) and the interval timer
 * (markers at least the interval apart; no assertion on how many). The diff across builds
 * compiles two copies of batch_patterns.c in two temporary directories,
 * the second with its lines shifted, and checks that every site matches.
 */
#include <criterion/criterion.h>

#include <cjson/cJSON.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "e2e.h"

#define BATCHES 20

/* ---- helpers ---- */

/* Runs a target with one or two arguments (arg2 may be NULL); it must exit 0. */
static void run_target2(mt_e2e_run_t *run, const mt_e2e_opts_t *opts, const char *name, const char *arg,
                        const char *arg2)
{
    int rc = mt_e2e_run_target(run, opts, name, arg, arg2, NULL);
    cr_assert_eq(rc, 0, "cannot run %s: %s", name, strerror(-rc));
    cr_assert_eq(run->exit_code, 0, "%s exited with %d", name, run->exit_code);
}

static void run_target(mt_e2e_run_t *run, const mt_e2e_opts_t *opts, const char *name, const char *arg)
{
    run_target2(run, opts, name, arg, NULL);
}

/* Runs BUILD/memtrack with args (NULL-terminated) and returns its stdout;
 * *status gets the exit status. */
static char *memtrack(int *status, const char *const *args)
{
    char cli[PATH_MAX];
    snprintf(cli, sizeof cli, "%s/memtrack", mt_e2e_build_dir());
    char *argv[16] = {cli};
    size_t n = 1;
    for (; args[n - 1] && n < 15; n++)
        argv[n] = (char *)args[n - 1];
    argv[n] = NULL;
    mt_e2e_run_t run;
    mt_e2e_opts_t o = {.no_preload = true, .capture_stdout = true, .capture_stderr = true};
    cr_assert_eq(mt_e2e_run(&run, argv, &o), 0);
    *status = run.exit_code;
    char *out = mt_e2e_read_file(run.stdout_path, NULL);
    cr_assert(out);
    mt_e2e_run_free(&run);
    return out;
}

static cJSON *memtrack_json(const char *const *args)
{
    int status;
    char *out = memtrack(&status, args);
    cr_assert_eq(status, 0, "memtrack exited with %d", status);
    cJSON *doc = cJSON_Parse(out);
    cr_assert(doc, "not JSON: %.200s", out);
    free(out);
    return doc;
}

static const cJSON *item(const cJSON *o, const char *name)
{
    const cJSON *i = cJSON_GetObjectItemCaseSensitive(o, name);
    cr_assert(i, "no member '%s'", name);
    return i;
}

static double num(const cJSON *o, const char *name)
{
    const cJSON *i = item(o, name);
    cr_assert(cJSON_IsNumber(i), "'%s' is not a number", name);
    return cJSON_GetNumberValue(i);
}

static const char *str(const cJSON *o, const char *name)
{
    const cJSON *i = item(o, name);
    return cJSON_IsString(i) ? i->valuestring : NULL;
}

/* True when some frame of a site's stack is function fn. */
static bool stack_has(const cJSON *site, const char *fn)
{
    const cJSON *f;
    cJSON_ArrayForEach(f, item(site, "stack"))
    {
        const char *name = str(f, "function");
        if (name && !strcmp(name, fn))
            return true;
    }
    return false;
}

/* The only site whose headline function is fn, or NULL; fails when several are. */
static const cJSON *site_named(const cJSON *sites, const char *fn)
{
    const cJSON *s, *found = NULL;
    cJSON_ArrayForEach(s, sites)
    {
        const char *name = str(s, "function");
        if (name && !strcmp(name, fn)) {
            cr_assert_null(found, "two sites named %s", fn);
            found = s;
        }
    }
    return found;
}

/* Records batch_patterns with n batches; returns the run (one trace). */
static void record_batches(mt_e2e_run_t *run, const char *n)
{
    mt_e2e_opts_t o = {.capture_stdout = true};
    run_target(run, &o, "batch_patterns", n);
    cr_assert_eq(run->ntraces, 1);
}

/* ---- leak candidates ---- */

Test(leaks_e2e, only_the_leaking_stacks_are_candidates)
{
    mt_e2e_run_t run;
    record_batches(&run, "20");
    cJSON *doc = memtrack_json((const char *[]){"leaks", "--json", run.traces[0], NULL});
    const cJSON *cands = item(doc, "candidates");
    cr_assert_eq(cJSON_GetArraySize(cands), 2, "candidates: %d", cJSON_GetArraySize(cands));

    /* make_entry leaks through keep_forever only: 48 B per batch. */
    const cJSON *c = site_named(cands, "make_entry");
    cr_assert(c);
    cr_expect(stack_has(c, "keep_forever"));
    cr_expect_not(stack_has(c, "use_and_drop"));
    cr_expect_eq(num(c, "growth_bytes"), 48 * (BATCHES - 1));
    cr_expect_eq(num(c, "growth_per_snapshot"), 48);
    cr_expect_eq(num(c, "intervals_grown"), BATCHES - 1);
    cr_expect_eq(num(c, "confidence"), 1);
    cr_expect_str_eq(str(c, "shape"), "steady-leak");
    const cJSON *series = item(c, "live_bytes_series");
    cr_assert_eq(cJSON_GetArraySize(series), BATCHES);
    for (int i = 0; i < BATCHES; i++)
        cr_expect_eq(cJSON_GetNumberValue(cJSON_GetArrayItem(series, i)), 48 * (i + 1));

    /* leak_sometimes keeps 200 B in batches 4, 9, 14 and 19. */
    c = site_named(cands, "leak_sometimes");
    cr_assert(c);
    cr_expect_eq(num(c, "growth_bytes"), 800);
    cr_expect_eq(num(c, "intervals_grown"), 4);
    cr_expect_str_eq(str(c, "shape"), "step-leak");
    series = item(c, "live_bytes_series");
    cr_expect_eq(cJSON_GetNumberValue(cJSON_GetArrayItem(series, 3)), 0);
    cr_expect_eq(cJSON_GetNumberValue(cJSON_GetArrayItem(series, 4)), 200);
    cr_expect_eq(cJSON_GetNumberValue(cJSON_GetArrayItem(series, 19)), 800);
    cr_expect(cJSON_IsNumber(item(c, "line")));
    cr_expect_str_eq(str(c, "file") + strlen(str(c, "file")) - strlen("batch_patterns.c"), "batch_patterns.c");

    /* Live at exit: the two leaks and the configuration, nothing else of the program's. */
    const cJSON *at_exit = item(doc, "leaked_at_exit");
    cr_expect_eq(cJSON_GetArraySize(at_exit), 3);
    const cJSON *l = site_named(at_exit, "make_entry");
    cr_assert(l);
    cr_expect_eq(num(l, "leaked_bytes"), 48 * BATCHES);
    cr_expect_eq(num(l, "leaked_allocations"), BATCHES);
    cr_expect(stack_has(l, "keep_forever"));
    cr_expect_eq(num(site_named(at_exit, "leak_sometimes"), "leaked_bytes"), 800);
    cr_expect_eq(num(site_named(at_exit, "load_config"), "leaked_bytes"), 333);
    cJSON_Delete(doc);
    mt_e2e_run_free(&run);
}

Test(leaks_e2e, warmup_ignores_the_first_snapshots)
{
    mt_e2e_run_t run;
    record_batches(&run, "20");
    cJSON *doc = memtrack_json((const char *[]){"leaks", "--json", "--warmup", "10", run.traces[0], NULL});
    const cJSON *c = site_named(item(doc, "candidates"), "make_entry");
    cr_assert(c);
    const cJSON *series = item(c, "live_bytes_series");
    cr_assert_eq(cJSON_GetArraySize(series), 10);
    cr_expect_eq(cJSON_GetNumberValue(cJSON_GetArrayItem(series, 0)), 48 * 11);
    cr_expect_eq(num(c, "growth_bytes"), 48 * 9);
    cr_expect_eq(cJSON_GetArraySize(item(doc, "candidates")), 2);
    cJSON_Delete(doc);
    mt_e2e_run_free(&run);
}

Test(leaks_e2e, text_names_the_bounded_sites_that_are_not_candidates)
{
    mt_e2e_run_t run;
    record_batches(&run, "20");
    int status;
    char *out = memtrack(&status, (const char *[]){"leaks", run.traces[0], NULL});
    cr_expect_eq(status, 0);
    cr_expect(strstr(out, "LEAK CANDIDATES: 2"), "%s", out);
    cr_expect(strstr(out, "plateau     up to 4.0 KiB    cache_put"), "%s", out);
    cr_expect(strstr(out, "sawtooth    up to 864 B      queue_push"), "%s", out);
    cr_expect(strstr(out, "+912 B over 20 snapshots (48 B per snapshot), grew in 19 of 19 intervals"), "%s", out);
    free(out);
    mt_e2e_run_free(&run);
}

Test(leaks_e2e, report_lists_every_snapshot)
{
    mt_e2e_run_t run;
    record_batches(&run, "5");
    int status;
    char *out = memtrack(&status, (const char *[]){"report", run.traces[0], NULL});
    cr_expect_eq(status, 0);
    char *snaps = strstr(out, "\nSNAPSHOTS\n");
    cr_assert(snaps, "%s", out);
    /* After batch i: 48(i+1) kept, 48 latest, 512 min(i+1,8) cache, 96 queued, 333 config. */
    int lines = 0;
    for (char *p = strstr(snaps, "  batch "); p && lines < 10; p = strstr(p + 1, "  batch "))
        lines++;
    cr_expect_eq(lines, 5, "%s", snaps);
    cr_expect(strstr(snaps, "1.2 KiB live in 7 blocks"), "%s", snaps); /* 48+48+512+3*96+333 = 1229 */
    free(out);
    cJSON *doc = memtrack_json((const char *[]){"report", "--json", run.traces[0], NULL});
    const cJSON *arr = item(doc, "snapshots");
    cr_assert_eq(cJSON_GetArraySize(arr), 5);
    const uint64_t expect[5] = {1229, 1229 + 48 + 512 + 288, 1229 + 96 + 1024 + 576, 333 + 48 * 4 + 48 + 512 * 4,
                                333 + 48 * 5 + 48 + 512 * 5 + 200 + 288};
    for (int i = 0; i < 5; i++) {
        const cJSON *s = cJSON_GetArrayItem(arr, i);
        cr_expect_str_eq(str(s, "label"), "batch");
        cr_expect_eq(num(s, "live_bytes"), expect[i], "snapshot %d: %.0f", i, num(s, "live_bytes"));
    }
    cJSON_Delete(doc);
    mt_e2e_run_free(&run);
}

Test(leaks_e2e, a_program_calling_memtrack_snapshot_runs_unchanged_without_memtrack)
{
    mt_e2e_run_t with, without;
    mt_e2e_opts_t o = {.capture_stdout = true};
    run_target(&with, &o, "batch_patterns", "7");
    o.no_preload = true;
    run_target(&without, &o, "batch_patterns", "7");
    cr_expect_eq(without.ntraces, 0);
    char *a = mt_e2e_read_file(with.stdout_path, NULL), *b = mt_e2e_read_file(without.stdout_path, NULL);
    cr_assert(a && b);
    cr_expect_str_eq(b, "batches=7 checksum=119 kept=entry-6\n");
    cr_expect_str_eq(a, b);
    free(a);
    free(b);
    mt_e2e_run_free(&with);
    mt_e2e_run_free(&without);
}

/* ---- diff ---- */

Test(diff_e2e, between_two_snapshots_sorts_sites_by_growth)
{
    mt_e2e_run_t run;
    record_batches(&run, "20");
    cJSON *doc = memtrack_json((const char *[]){"diff", "--json", "--top", "0", run.traces[0], "--from", "4",
                                                "--to", "batch", NULL});
    cr_expect_eq(num(item(doc, "from"), "snapshot"), 4);
    cr_expect_eq(num(item(doc, "to"), "snapshot"), 19);
    const cJSON *sites = item(doc, "sites");
    /* From batch 4 to 19: cache +3 slots, keep_forever +15 entries,
     * leak_sometimes +3 blocks, queue 3 items (batch 4) -> 0 (19 drains). */
    cr_assert_eq(cJSON_GetArraySize(sites), 4);
    const char *order[] = {"cache_put", "make_entry", "leak_sometimes", "queue_push"};
    const double growth[] = {3 * 512, 15 * 48, 600, -288};
    for (int i = 0; i < 4; i++) {
        const cJSON *s = cJSON_GetArrayItem(sites, i);
        cr_expect_str_eq(str(s, "function"), order[i]);
        cr_expect_eq(num(s, "growth_bytes"), growth[i], "%s", order[i]);
    }
    cr_expect_eq(num(cJSON_GetArrayItem(sites, 1), "growth_allocations"), 15);
    cr_expect_eq(num(doc, "sites_unchanged"), 2); /* use_and_drop's entry and the configuration */
    cJSON_Delete(doc);
    mt_e2e_run_free(&run);
}

Test(diff_e2e, bad_points_and_options_are_one_line_and_exit_2)
{
    mt_e2e_run_t run;
    record_batches(&run, "3");
    const char *const cases[][6] = {
        {"diff", run.traces[0], "--from", "nosuch", NULL},
        {"diff", run.traces[0], "--to", "3", NULL},
        {"diff", "--top", "x", run.traces[0], NULL},
        {"diff", NULL},
        {"leaks", "--warmup", "-1", run.traces[0], NULL},
        {"leaks", "--min-confidence", "1.5", run.traces[0], NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char cli[PATH_MAX];
        snprintf(cli, sizeof cli, "%s/memtrack", mt_e2e_build_dir());
        char *argv[8] = {cli};
        for (size_t k = 0; cases[i][k]; k++)
            argv[k + 1] = (char *)cases[i][k];
        mt_e2e_run_t r;
        mt_e2e_opts_t o = {.no_preload = true, .capture_stdout = true, .capture_stderr = true};
        cr_assert_eq(mt_e2e_run(&r, argv, &o), 0);
        cr_expect_eq(r.exit_code, 2, "case %zu", i);
        cr_expect_eq(mt_e2e_count_lines(r.stderr_path), 1, "case %zu", i);
        mt_e2e_run_free(&r);
    }
    mt_e2e_run_free(&run);
}

/* Copies tests/targets/batch_patterns.c into dir (after `blank` empty lines)
 * and compiles it there as dir/batch_patterns. */
static void build_copy(const char *dir, int blank)
{
    char src[PATH_MAX], dst[PATH_MAX], cmd[4 * PATH_MAX];
    snprintf(src, sizeof src, "%s/../tests/targets/batch_patterns.c", mt_e2e_build_dir());
    if (access(src, R_OK) != 0)
        snprintf(src, sizeof src, "tests/targets/batch_patterns.c");
    char *text = mt_e2e_read_file(src, NULL);
    cr_assert(text, "cannot read %s", src);
    snprintf(dst, sizeof dst, "%s/batch_patterns.c", dir);
    FILE *f = fopen(dst, "w");
    cr_assert(f);
    for (int i = 0; i < blank; i++)
        fputc('\n', f);
    fputs(text, f);
    fclose(f);
    free(text);
    char include[PATH_MAX];
    snprintf(include, sizeof include, "%s/../include", mt_e2e_build_dir());
    snprintf(cmd, sizeof cmd, "cd '%s' && cc -O0 -g -fno-builtin -I'%s' -Iinclude -o batch_patterns batch_patterns.c",
             dir, include);
    int rc = system(cmd);
    cr_assert(WIFEXITED(rc) && WEXITSTATUS(rc) == 0, "cannot compile in %s", dir);
}

Test(diff_e2e, two_builds_in_different_directories_match_by_symbols)
{
    char *old_dir = mt_e2e_tempdir(), *new_dir = mt_e2e_tempdir();
    cr_assert(old_dir && new_dir);
    build_copy(old_dir, 0);
    build_copy(new_dir, 3); /* every line moves down by 3 */
    char prog[PATH_MAX];
    mt_e2e_run_t old_run, new_run;
    mt_e2e_opts_t quiet = {.capture_stdout = true};
    snprintf(prog, sizeof prog, "%s/batch_patterns", old_dir);
    cr_assert_eq(mt_e2e_run(&old_run, (char *[]){prog, "5", NULL}, &quiet), 0);
    snprintf(prog, sizeof prog, "%s/batch_patterns", new_dir);
    cr_assert_eq(mt_e2e_run(&new_run, (char *[]){prog, "10", NULL}, &quiet), 0);
    cr_assert_eq(old_run.ntraces, 1);
    cr_assert_eq(new_run.ntraces, 1);

    cJSON *doc = memtrack_json((const char *[]){"diff", "--json", "--top", "0", old_run.traces[0],
                                                new_run.traces[0], NULL});
    cr_expect_str_eq(str(doc, "match"), "symbols");
    const cJSON *sites = item(doc, "sites");
    /* Live at exit: keep_forever's entries (5 -> 10) and leak_sometimes'
     * blocks (1 -> 2) grew; the configuration is the same in both runs and
     * must match, not show as one site gone and one new. */
    cr_assert_eq(cJSON_GetArraySize(sites), 2, "%s", cJSON_Print(sites));
    const cJSON *s = cJSON_GetArrayItem(sites, 0);
    cr_expect_str_eq(str(s, "function"), "make_entry");
    cr_expect_eq(num(s, "from_live_bytes"), 5 * 48);
    cr_expect_eq(num(s, "to_live_bytes"), 10 * 48);
    cr_expect_eq(num(s, "growth_allocations"), 5);
    cr_expect_eq(num(s, "line"), 49 + 3);
    s = cJSON_GetArrayItem(sites, 1);
    cr_expect_str_eq(str(s, "function"), "leak_sometimes");
    cr_expect_eq(num(s, "from_live_bytes"), 200);
    cr_expect_eq(num(s, "to_live_bytes"), 400);
    cr_expect_geq(num(doc, "sites_unchanged"), 1);
    cJSON_Delete(doc);
    mt_e2e_run_free(&old_run);
    mt_e2e_run_free(&new_run);
    mt_e2e_remove_tree(old_dir);
    mt_e2e_remove_tree(new_dir);
    free(old_dir);
    free(new_dir);
}

/* ---- marking points without changing the program ---- */

/* Counts the trace's markers labelled label and checks that their times
 * are at least gap_ns apart. */
static size_t markers_labelled(const char *path, const char *label, uint64_t gap_ns)
{
    mt_e2e_trace_t tr;
    cr_assert_eq(mt_e2e_trace_open(&tr, path), 0, "%s", tr.err);
    size_t n = 0;
    uint64_t last = 0;
    for (size_t i = 0; i < tr.info->nmarkers; i++) {
        const char *text = mt__trace_label(tr.t, tr.info->markers[i].label);
        if (!text || strcmp(text, label))
            continue;
        if (n)
            cr_expect_geq(tr.info->markers[i].time_ns - last, gap_ns, "markers %zu ns apart",
                          (size_t)(tr.info->markers[i].time_ns - last));
        last = tr.info->markers[i].time_ns;
        n++;
    }
    mt_e2e_trace_close(&tr);
    return n;
}

Test(snapshot_markers, the_signal_places_a_marker_and_chains_the_programs_handler)
{
    mt_e2e_run_t run;
    const char *env[] = {"MEMTRACK_SNAPSHOT_SIGNAL=SIGUSR2", NULL};
    mt_e2e_opts_t o = {.capture_stdout = true, .env = env};
    run_target(&run, &o, "batch_signal", "3");
    char *out = mt_e2e_read_file(run.stdout_path, NULL);
    cr_expect_str_eq(out, "own=yes handled=3\n");
    free(out);
    cr_assert_eq(run.ntraces, 1);
    cr_expect_eq(markers_labelled(run.traces[0], "signal", 0), 3);
    /* Each marker lands exactly where its signal came: after the block
     * allocated before its raise, before the next one. */
    cJSON *doc = memtrack_json((const char *[]){"report", "--json", run.traces[0], NULL});
    const cJSON *snaps = item(doc, "snapshots");
    cr_assert_eq(cJSON_GetArraySize(snaps), 3);
    cr_expect_eq(num(cJSON_GetArrayItem(snaps, 0), "tid"), 0);
    for (int i = 0; i < 3; i++) {
        cr_expect_eq(num(cJSON_GetArrayItem(snaps, i), "live_allocations"), i + 1, "snapshot %d", i);
        cr_expect_eq(num(cJSON_GetArrayItem(snaps, i), "live_bytes"), 40 * (i + 1), "snapshot %d", i);
    }
    cJSON_Delete(doc);
    mt_e2e_run_free(&run);
}

Test(snapshot_markers, without_the_setting_the_signal_is_the_programs_alone)
{
    mt_e2e_run_t with, without;
    mt_e2e_opts_t o = {.capture_stdout = true};
    run_target(&with, &o, "batch_signal", "2");
    o.no_preload = true;
    run_target(&without, &o, "batch_signal", "2");
    char *a = mt_e2e_read_file(with.stdout_path, NULL), *b = mt_e2e_read_file(without.stdout_path, NULL);
    cr_expect_str_eq(a, "own=yes handled=2\n");
    cr_expect_str_eq(b, "own=yes handled=2\n");
    cr_expect_eq(markers_labelled(with.traces[0], "signal", 0), 0);
    free(a);
    free(b);
    mt_e2e_run_free(&with);
    mt_e2e_run_free(&without);
}

Test(snapshot_markers, the_interval_timer_places_markers_at_least_that_far_apart)
{
    mt_e2e_run_t run;
    const char *env[] = {"MEMTRACK_SNAPSHOT_INTERVAL_MS=5", NULL};
    mt_e2e_opts_t o = {.capture_stdout = true, .env = env};
    run_target2(&run, &o, "batch_signal", "0", "30"); /* runs at least 60 ms */
    cr_assert_eq(run.ntraces, 1);
    size_t n = markers_labelled(run.traces[0], "interval", 5000000);
    cr_expect_geq(n, 1, "no interval marker in a run of at least 60 ms");
    mt_e2e_run_free(&run);
}
