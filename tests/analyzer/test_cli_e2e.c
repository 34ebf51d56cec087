/* test_cli_e2e.c - the memtrack command as a user runs it: run, report and dump on real programs.
 *
 * Each test records a target program of known behaviour under
 * libmemtrack.so, then runs the real build/memtrack binary on its trace and
 * checks the exact numbers of its JSON report: leaks charged to the code
 * that wrote `new` (C++), to a plugin that was dlclosed before the end
 * (symbolized from the trace's module map), to a fork child (with the
 * parent's block an unknown free), and the README demo's totals. The run
 * subcommand is checked for its exit status, its trace list, -o and static
 * programs; dump for printing every record.
 */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <pty.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "e2e.h"

/* Returns BUILD/memtrack (static string). */
static const char *memtrack_path(void)
{
    static char path[4096];
    snprintf(path, sizeof path, "%s/memtrack", mt_e2e_build_dir());
    return path;
}

/* Runs build/memtrack with args (NULL-terminated) in dir, capturing both
 * outputs, without the preload. */
static void run_memtrack(mt_e2e_run_t *run, const char *dir, const char *const *args)
{
    char *argv[32];
    size_t n = 0;
    argv[n++] = (char *)memtrack_path();
    for (size_t i = 0; args[i] && n < 31; i++)
        argv[n++] = (char *)args[i];
    argv[n] = NULL;
    mt_e2e_opts_t o = {.no_preload = true, .capture_stdout = true, .capture_stderr = true, .dir = dir};
    cr_assert_eq(mt_e2e_run(run, argv, &o), 0, "cannot run %s", argv[0]);
}

static char *read_or_fail(const char *path)
{
    char *text = mt_e2e_read_file(path, NULL);
    cr_assert(text, "cannot read %s", path);
    return text;
}

/* Reports trace (with extra options, NULL-terminated) as JSON and returns the document. */
static cJSON *report_json(const char *dir, const char *trace, const char *const *extra)
{
    const char *args[24] = {"report", "--json"};
    size_t n = 2;
    for (size_t i = 0; extra && extra[i]; i++)
        args[n++] = extra[i];
    args[n++] = trace;
    args[n] = NULL;
    mt_e2e_run_t r;
    run_memtrack(&r, dir, args);
    char *out = read_or_fail(r.stdout_path), *err = read_or_fail(r.stderr_path);
    cr_assert_eq(r.exit_code, 0, "memtrack report exited %d: %s", r.exit_code, err);
    cJSON *doc = cJSON_Parse(out);
    cr_assert(doc, "not JSON: %s", out);
    free(out);
    free(err);
    mt_e2e_run_free(&r);
    return doc;
}

static double num(const cJSON *obj, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    cr_assert(cJSON_IsNumber(v), "%s is not a number", name);
    return v->valuedouble;
}

static const char *str(const cJSON *obj, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

/* Returns the site of the JSON report whose headline function is function, or fails. */
static const cJSON *site_of(const cJSON *doc, const char *function)
{
    const cJSON *site;
    cJSON_ArrayForEach(site, cJSON_GetObjectItemCaseSensitive(doc, "sites"))
    {
        if (!strcmp(str(site, "function"), function))
            return site;
    }
    cr_assert_fail("no site with headline %s", function);
    return NULL;
}

/* Records target under the preload into a fresh run; expects exit 0 and ntraces traces. */
static void record(mt_e2e_run_t *run, const char *target, size_t ntraces)
{
    mt_e2e_opts_t o = {.capture_stdout = true};
    cr_assert_eq(mt_e2e_run_target(run, &o, target, NULL), 0);
    cr_assert_eq(run->exit_code, 0, "%s exited %d", target, run->exit_code);
    cr_assert_eq(run->ntraces, ntraces, "%s left %zu traces, expected %zu", target, run->ntraces, ntraces);
}

Test(report_e2e, the_demo_has_exact_totals_and_its_leak_is_charged_to_remember_name, .timeout = 60)
{
    mt_e2e_run_t run;
    record(&run, "demo", 1);
    cJSON *doc = report_json(run.dir, run.traces[0], NULL);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(doc, "totals");
    /* 100 scratch buffers, 10 cache entries, 100 names, and stdout's buffer. */
    cr_expect_eq(num(t, "allocations"), 211);
    cr_expect_eq(num(t, "frees"), 110);
    /* The peak: 10 cache entries, 99 names and the last scratch buffer. */
    cr_expect_eq(num(t, "peak_bytes"), 10 * 1024 + 99 * 64 + 4096);
    cr_expect_eq(num(t, "leaked_bytes"), 6400);
    cr_expect_eq(num(t, "leaked_allocations"), 100);
    cr_expect_eq(num(t, "temporary_allocations"), 100);
    cr_expect_eq(num(t, "dropped_events"), 0);
    const cJSON *names = site_of(doc, "remember_name");
    cr_expect_eq(num(names, "leaked_bytes"), 6400);
    cr_expect_eq(num(names, "line"), 16);
    cr_expect(ends_with(str(names, "file"), "demo.c"), "file %s", str(names, "file"));
    const cJSON *scratch = site_of(doc, "parse_record");
    cr_expect_eq(num(scratch, "temporary_allocations"), 100);
    cr_expect_eq(num(scratch, "peak_bytes"), 4096);
    cr_expect_eq(num(site_of(doc, "cache_record"), "peak_bytes"), 10240);
    cJSON_Delete(doc);
    mt_e2e_run_free(&run);
}

Test(report_e2e, a_suppressed_leak_names_the_first_listed_suppression_that_matches_any_frame, .timeout = 60)
{
    mt_e2e_run_t run;
    record(&run, "demo", 1);
    /* Both lines match remember_name's stack: the first line (which
     * matches its outer frame, main) is the one named, not the one that
     * matches the innermost frame. */
    char supp[4096];
    cr_assert_eq(mt_e2e_write_text(supp, sizeof supp, run.dir, "demo.supp",
                                   "# outer frame first\nleak:^main$\nleak:remember_name\n"), 0);
    const char *extra[] = {"--suppressions", supp, NULL};
    cJSON *doc = report_json(run.dir, run.traces[0], extra);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(doc, "totals");
    cr_expect_eq(num(t, "leaked_bytes"), 0);
    const cJSON *names = site_of(doc, "remember_name");
    cr_expect_eq(num(names, "leaked_bytes"), 0);
    cr_expect_eq(num(names, "suppressed_leaked_bytes"), 6400);
    cr_expect_str_eq(str(names, "suppression"), "^main$");
    cJSON_Delete(doc);
    mt_e2e_run_free(&run);
}

Test(report_e2e, cxx_leaks_are_charged_to_the_function_that_wrote_new, .timeout = 60)
{
    mt_e2e_run_t run;
    record(&run, "cxx_widgets", 1);
    const char *by_function[] = {"--group-by", "function", NULL};
    cJSON *doc = report_json(run.dir, run.traces[0], by_function);
    const cJSON *widget = site_of(doc, "make_widget");
    cr_expect_eq(num(widget, "leaked_bytes"), 2 * 1301);
    cr_expect_eq(num(widget, "leaked_allocations"), 2);
    cr_expect_eq(num(widget, "allocations"), 3);
    /* The string object and its buffer, allocated inside libstdc++. */
    const cJSON *label = site_of(doc, "make_label");
    cr_expect_eq(num(label, "leaked_bytes"), 32 + 3001);
    cr_expect_eq(num(label, "leaked_allocations"), 2);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(doc, "totals");
    cr_expect_eq(num(t, "leaked_bytes"), 2 * 1301 + 32 + 3001);
    const cJSON *site;
    cJSON_ArrayForEach(site, cJSON_GetObjectItemCaseSensitive(doc, "sites"))
    {
        cr_expect(!strstr(str(site, "function"), "operator new"), "a site is charged to operator new");
        cr_expect(strncmp(str(site, "function"), "std::", 5), "a site is charged to %s", str(site, "function"));
    }
    cJSON_Delete(doc);
    mt_e2e_run_free(&run);
}

Test(report_e2e, a_leak_in_a_dlclosed_plugin_has_the_plugins_file_line_and_module, .timeout = 60)
{
    mt_e2e_run_t run;
    record(&run, "plugin_leak", 1);
    const char *by_function[] = {"--group-by", "function", NULL};
    cJSON *doc = report_json(run.dir, run.traces[0], by_function);
    const cJSON *site = site_of(doc, "mtplugin_alloc");
    cr_expect_eq(num(site, "allocations"), 2);
    cr_expect_eq(num(site, "leaked_bytes"), 1201);
    cr_expect_eq(num(site, "leaked_allocations"), 1);
    cr_expect(ends_with(str(site, "file"), "mtplugin.c"), "file %s", str(site, "file"));
    cr_expect_eq(num(site, "line"), 15, "the line of the malloc in mtplugin.c");
    cr_expect(ends_with(str(site, "module"), "libmtplugin.so"), "module %s", str(site, "module"));
    cr_expect_eq(num(cJSON_GetObjectItemCaseSensitive(doc, "totals"), "leaked_bytes"), 1201);
    cJSON_Delete(doc);
    mt_e2e_run_free(&run);
}

Test(report_e2e, a_fork_child_has_its_own_report_with_the_parents_block_an_unknown_free, .timeout = 60)
{
    mt_e2e_run_t run;
    record(&run, "fork_leak", 2);
    long parent = mt_e2e_trace_for_pid(&run, (uint64_t)run.pid);
    cr_assert(parent >= 0, "no trace of the parent");
    const char *child_trace = run.traces[parent == 0 ? 1 : 0];
    cJSON *doc = report_json(run.dir, child_trace, NULL);
    const cJSON *proc = cJSON_GetObjectItemCaseSensitive(doc, "process");
    cr_expect(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(proc, "forked")));
    cr_expect_eq(num(proc, "ppid"), run.pid);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(doc, "totals");
    cr_expect_eq(num(t, "unknown_frees"), 1);
    cr_expect_eq(num(t, "allocations"), 1);
    cr_expect_eq(num(t, "leaked_bytes"), 1402);
    cr_expect_eq(num(site_of(doc, "leak_in_child"), "leaked_allocations"), 1);
    cJSON_Delete(doc);
    doc = report_json(run.dir, run.traces[parent], NULL);
    t = cJSON_GetObjectItemCaseSensitive(doc, "totals");
    cr_expect_eq(num(t, "leaked_bytes"), 0);
    cr_expect_eq(num(t, "unknown_frees"), 0);
    cJSON_Delete(doc);
    mt_e2e_run_free(&run);
}

/* ---- memtrack run ---- */

Test(run_cmd, keeps_the_programs_output_and_exit_status_and_lists_its_traces, .timeout = 60)
{
    char *dir = mt_e2e_tempdir();
    cr_assert(dir);
    char *target = mt_e2e_target_path("fork_leak");
    const char *args[] = {"run", "--", target, NULL};
    mt_e2e_run_t r;
    run_memtrack(&r, dir, args);
    cr_expect_eq(r.exit_code, 0);
    char *err = read_or_fail(r.stderr_path);
    cr_expect_eq(mt_e2e_count_lines(r.stderr_path), 2, "one line per process's trace:\n%s", err);
    mt_e2e_list_traces(&r);
    for (size_t i = 0; i < r.ntraces; i++) {
        const char *base = strrchr(r.traces[i], '/') + 1;
        if (strstr(base, ".mtrace"))
            cr_expect(strstr(err, base), "%s is not listed:\n%s", base, err);
    }
    free(err);
    mt_e2e_run_free(&r);

    char *status_target = mt_e2e_target_path("output_status");
    const char *args42[] = {"run", "-o", "fixed.mtrace", "--", status_target, NULL};
    run_memtrack(&r, dir, args42);
    cr_expect_eq(r.exit_code, 42, "the program's own status");
    char path[4096];
    snprintf(path, sizeof path, "%s/fixed.mtrace", dir);
    cr_expect_eq(access(path, F_OK), 0, "-o did not name the trace");
    mt_e2e_run_free(&r);
    free(status_target);
    free(target);
    mt_e2e_remove_tree(dir);
    free(dir);
}

Test(run_cmd, a_program_killed_by_a_signal_gives_128_plus_the_signal, .timeout = 60)
{
    char *dir = mt_e2e_tempdir();
    char *target = mt_e2e_target_path("crash_segv");
    const char *args[] = {"run", "--", target, "3", NULL};
    mt_e2e_run_t r;
    run_memtrack(&r, dir, args);
    cr_expect_eq(r.exit_code, 128 + 11);
    mt_e2e_run_free(&r);
    free(target);
    mt_e2e_remove_tree(dir);
    free(dir);
}

Test(run_cmd, a_static_program_is_named_as_one_that_cannot_be_interposed, .timeout = 60)
{
    char *dir = mt_e2e_tempdir();
    char src[4096], exe[4096], cmd[9000];
    snprintf(exe, sizeof exe, "%s/static_prog", dir);
    cr_assert_eq(mt_e2e_write_text(src, sizeof src, dir, "static_prog.c",
                                   "#include <stdlib.h>\nint main(void) { free(malloc(10)); return 3; }\n"),
                 0);
    snprintf(cmd, sizeof cmd, "cc -static -O0 -o %s %s 2>/dev/null", exe, src);
    if (system(cmd) != 0) {
        cr_skip_test("cannot link a static program here (no libc.a)");
    }
    const char *args[] = {"run", "--", exe, NULL};
    mt_e2e_run_t r;
    run_memtrack(&r, dir, args);
    char *err = read_or_fail(r.stderr_path);
    cr_expect_eq(r.exit_code, 3, "the program still runs, with its status");
    cr_expect(strstr(err, "statically linked"), "stderr: %s", err);
    free(err);
    mt_e2e_run_free(&r);
    mt_e2e_remove_tree(dir);
    free(dir);
}

Test(run_cmd, no_program_or_a_bad_option_exits_2_with_one_line, .timeout = 30)
{
    static const char *const bad[][4] = {{"run", NULL}, {"run", "--bogus", "x", NULL},
                                         {"run", "--", "/nonexistent/program", NULL}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        mt_e2e_run_t r;
        char *dir = mt_e2e_tempdir();
        run_memtrack(&r, dir, bad[i]);
        char *err = read_or_fail(r.stderr_path);
        cr_expect_eq(r.exit_code, 2, "case %zu: exit %d: %s", i, r.exit_code, err);
        cr_expect_eq(mt_e2e_count_lines(r.stderr_path), 1, "case %zu: %s", i, err);
        free(err);
        mt_e2e_run_free(&r);
        mt_e2e_remove_tree(dir);
        free(dir);
    }
}

/* ---- memtrack dump ---- */

Test(dump_cmd, prints_every_record_kind_of_a_real_trace, .timeout = 60)
{
    mt_e2e_run_t run;
    record(&run, "plugin_leak", 1);
    const char *args[] = {"dump", run.traces[0], NULL};
    mt_e2e_run_t r;
    run_memtrack(&r, run.dir, args);
    cr_expect_eq(r.exit_code, 0);
    char *out = read_or_fail(r.stdout_path);
    static const char *const kinds[] = {"MODULE", "UNLOAD", "STACK", "CHUNK", "TIME", "END"};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        cr_expect(strstr(out, kinds[i]), "no %s record in the dump", kinds[i]);
    cr_expect(strstr(out, "libmtplugin.so"), "the plugin's module is not in the dump");
    free(out);
    mt_e2e_run_free(&r);
    const char *missing[] = {"dump", "/nonexistent/trace.mtrace", NULL};
    run_memtrack(&r, run.dir, missing);
    cr_expect_eq(r.exit_code, 2);
    cr_expect_eq(mt_e2e_count_lines(r.stderr_path), 1);
    mt_e2e_run_free(&r);
    mt_e2e_run_free(&run);
}

/* ---- colours ---- */

/* Runs memtrack report TRACE with stdout and stderr on a pseudo-terminal,
 * NO_COLOR set to no_color (NULL: unset), and returns what it printed. */
static char *report_on_a_terminal(const char *trace, const char *no_color)
{
    int master;
    pid_t pid = forkpty(&master, NULL, NULL, NULL);
    cr_assert(pid >= 0, "forkpty failed");
    if (pid == 0) {
        if (no_color)
            setenv("NO_COLOR", no_color, 1);
        else
            unsetenv("NO_COLOR");
        execl(memtrack_path(), memtrack_path(), "report", trace, (char *)NULL);
        _exit(127);
    }
    size_t len = 0, cap = 1 << 16;
    char *text = malloc(cap);
    for (;;) {
        ssize_t n = read(master, text + len, cap - len - 1);
        if (n <= 0)
            break; /* EIO once the child closed the terminal */
        len += (size_t)n;
        if (len + 1 == cap)
            text = realloc(text, cap *= 2);
    }
    text[len] = '\0';
    int status;
    waitpid(pid, &status, 0);
    close(master);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "report on a terminal failed: %s", text);
    return text;
}

Test(report_e2e, colours_appear_on_a_terminal_only_without_no_color, .timeout = 60)
{
    mt_e2e_run_t run;
    record(&run, "demo", 1);
    char *colour = report_on_a_terminal(run.traces[0], NULL);
    char *plain = report_on_a_terminal(run.traces[0], "1");
    cr_expect(strstr(colour, "\033["), "no colour on a terminal");
    cr_expect(strstr(colour, "remember_name"));
    cr_expect(!strstr(plain, "\033["), "colour despite NO_COLOR");
    cr_expect(strstr(plain, "remember_name"));
    free(colour);
    free(plain);
    /* Not a terminal: no colour either. */
    const char *args[] = {"report", run.traces[0], NULL};
    mt_e2e_run_t r;
    run_memtrack(&r, run.dir, args);
    char *out = read_or_fail(r.stdout_path);
    cr_expect(!strstr(out, "\033["), "colour in a file");
    free(out);
    mt_e2e_run_free(&r);
    mt_e2e_run_free(&run);
}

Test(report_e2e, a_crashed_program_is_reported_with_the_signal_it_died_of, .timeout = 60)
{
    mt_e2e_opts_t o = {.capture_stdout = true};
    mt_e2e_run_t run;
    cr_assert_eq(mt_e2e_run_target(&run, &o, "crash_segv", "4", NULL), 0);
    cr_assert_eq(run.signal, 11);
    cr_assert_eq(run.ntraces, 1);
    cJSON *doc = report_json(run.dir, run.traces[0], NULL);
    const cJSON *proc = cJSON_GetObjectItemCaseSensitive(doc, "process");
    cr_expect_eq(num(proc, "signal"), 11);
    cr_expect(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(proc, "complete")));
    /* The 4 blocks (stdout's buffer is suppressed by default). */
    cr_expect_eq(num(cJSON_GetObjectItemCaseSensitive(doc, "totals"), "leaked_allocations"), 4);
    cJSON_Delete(doc);
    const char *args[] = {"report", run.traces[0], NULL};
    mt_e2e_run_t r;
    run_memtrack(&r, run.dir, args);
    char *out = read_or_fail(r.stdout_path);
    cr_expect(strstr(out, "died of signal 11"), "%s", out);
    free(out);
    mt_e2e_run_free(&r);
    mt_e2e_run_free(&run);

    record(&run, "demo", 1);
    doc = report_json(run.dir, run.traces[0], NULL);
    cr_expect(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(doc, "process"),
                                                             "signal")));
    cJSON_Delete(doc);
    mt_e2e_run_free(&run);
}

/* ---- suppressions in every command that shows leaks ---- */

Test(report_e2e, a_suppressions_file_takes_a_leak_out_of_leaks_and_the_flame_graph, .timeout = 60)
{
    mt_e2e_run_t run;
    record(&run, "demo", 1);
    char supp[4096];
    cr_assert_eq(mt_e2e_write_text(supp, sizeof supp, run.dir, "demo.supp",
                                   "# the demo's only leak\nleak:remember_name\n"), 0);
    static const char *const commands[][8] = {
        {"flamegraph", "--metric", "leaked", NULL},
        {"leaks", NULL},
    };
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        for (int with = 0; with < 2; with++) {
            const char *args[12];
            size_t n = 0;
            for (size_t k = 0; commands[i][k]; k++)
                args[n++] = commands[i][k];
            if (with) {
                args[n++] = "--suppressions";
                args[n++] = supp;
            }
            args[n++] = run.traces[0];
            args[n] = NULL;
            mt_e2e_run_t r;
            run_memtrack(&r, run.dir, args);
            char *out = read_or_fail(r.stdout_path);
            cr_expect_eq(r.exit_code, 0, "%s: exit %d", commands[i][0], r.exit_code);
            if (with)
                cr_expect(!strstr(out, "remember_name"), "%s --suppressions still shows the leak:\n%s",
                          commands[i][0], out);
            else
                cr_expect(strstr(out, "remember_name"), "%s does not show the leak:\n%s", commands[i][0], out);
            free(out);
            mt_e2e_run_free(&r);
        }
    }
    const char *missing[] = {"html", "--suppressions", "/nonexistent/x.supp", "-o", "/dev/null", run.traces[0], NULL};
    mt_e2e_run_t r;
    run_memtrack(&r, run.dir, missing);
    cr_expect_eq(r.exit_code, 2);
    cr_expect_eq(mt_e2e_count_lines(r.stderr_path), 1);
    mt_e2e_run_free(&r);
    mt_e2e_run_free(&run);
}

Test(report_e2e, leaks_and_diff_write_to_the_file_of_o_and_refuse_an_unwritable_one, .timeout = 60)
{
    mt_e2e_opts_t o = {.capture_stdout = true};
    mt_e2e_run_t run;
    cr_assert_eq(mt_e2e_run_target(&run, &o, "batch_patterns", "6", NULL), 0);
    cr_assert_eq(run.ntraces, 1);
    char path[4096];
    snprintf(path, sizeof path, "%s/leaks.json", run.dir);
    const char *leaks[] = {"leaks", "--json", "-o", path, run.traces[0], NULL};
    mt_e2e_run_t r;
    run_memtrack(&r, run.dir, leaks);
    cr_expect_eq(r.exit_code, 0);
    char *out = read_or_fail(r.stdout_path);
    cr_expect_str_eq(out, "", "-o still printed on stdout");
    free(out);
    mt_e2e_run_free(&r);
    char *text = read_or_fail(path);
    cJSON *doc = cJSON_Parse(text);
    cr_expect(doc && cJSON_GetObjectItemCaseSensitive(doc, "candidates"), "not the leaks JSON: %s", text);
    cJSON_Delete(doc);
    free(text);
    const char *diff[] = {"diff", "-o", "/nonexistent/dir/diff.txt", run.traces[0], NULL};
    run_memtrack(&r, run.dir, diff);
    cr_expect_eq(r.exit_code, 2);
    cr_expect_eq(mt_e2e_count_lines(r.stderr_path), 1);
    mt_e2e_run_free(&r);
    mt_e2e_run_free(&run);
}

/* ---- tools/bench: its options are checked before anything runs ---- */

Test(bench, a_bad_option_or_workload_gives_one_line_and_exit_2, .timeout = 30)
{
    char bench[4096];
    snprintf(bench, sizeof bench, "%s/../tools/bench", mt_e2e_build_dir());
    static const char *const cases[][3] = {
        {"--frob", NULL, "bench: unknown option '--frob'"},
        {"-x", NULL, "bench: unknown option '-x'"},
        {"-n", NULL, "bench: -n needs a value"},
        {"-n", "0", "bench: -n needs a positive number, not '0'"},
        {"--sample=abc", NULL, "bench: -s needs a byte count, not 'abc'"},
        {"bogus", NULL, "bench: unknown workload 'bogus'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *argv[] = {bench, (char *)cases[i][0], (char *)cases[i][1], NULL};
        mt_e2e_opts_t opts = {.no_preload = true, .capture_stdout = true, .capture_stderr = true};
        mt_e2e_run_t run;
        cr_assert_eq(mt_e2e_run(&run, argv, &opts), 0, "cannot run %s", bench);
        char *out = mt_e2e_read_file(run.stdout_path, NULL), *err = mt_e2e_read_file(run.stderr_path, NULL);
        cr_assert(out && err);
        cr_expect_eq(run.exit_code, 2, "%s: exit %d", cases[i][0], run.exit_code);
        cr_expect_str_eq(out, "", "%s", cases[i][0]);
        cr_expect(strncmp(err, cases[i][2], strlen(cases[i][2])) == 0, "%s: %s", cases[i][0], err);
        cr_expect_eq(mt_e2e_count_lines(run.stderr_path), 1, "%s: %s", cases[i][0], err);
        free(out);
        free(err);
        mt_e2e_run_free(&run);
    }
}
