/* test_processes.c - end-to-end tests of recording across threads, processes, crashes and exits.
 *
 * The targets (tests/targets) allocate sizes nothing else allocates, so the
 * numbers checked here are exact: 2000 short-lived threads freeing each
 * other's blocks, threads that allocate first inside pthread_getattr_np,
 * fork with and without exec, posix_spawn and system(), a
 * crash by SIGSEGV, _exit and _Exit, and a Criterion test suite, whose
 * processes must each leave a trace while the suite's exit status stays what
 * it is without memtrack.
 */
#include <criterion/criterion.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>

#include "e2e.h"

static void open_trace(mt_e2e_trace_t *tr, const char *path)
{
    int rc = mt_e2e_trace_open(tr, path);
    cr_assert_eq(rc, 0, "cannot read %s: %s", path, tr->err);
    cr_expect_not(tr->info->truncated, "%s is truncated", path);
    cr_expect_eq(tr->info->dropped, 0, "%s: %llu events dropped", path,
                 (unsigned long long)tr->info->dropped);
    cr_expect_eq(tr->tally.bad_order, 0, "%s: events out of seq order", path);
    cr_expect_eq(tr->tally.bad_stacks, 0, "%s: allocations with an undefined stack", path);
    cr_expect_eq(tr->tally.double_allocs, 0, "%s: an address allocated twice without a free", path);
}

static char *read_or_fail(const char *path)
{
    char *s = mt_e2e_read_file(path, NULL);
    cr_assert(s, "cannot read %s", path);
    return s;
}

static uint64_t count_of(const mt_e2e_trace_t *tr, unsigned op, uint64_t size)
{
    return mt_e2e_count(&tr->tally, op, size);
}

/* ---- threads ---- */

/* Runs a threaded target that must exit 0 and leave one whole trace, and
 * opens it. A target still running after 25 s is stopped (SIGALRM). */
static void run_threads_target(const char *name, mt_e2e_run_t *run, mt_e2e_trace_t *tr)
{
    mt_e2e_opts_t o = {.capture_stdout = true, .capture_stderr = true, .timeout_s = 25};
    cr_assert_eq(mt_e2e_run_target(run, &o, name, NULL), 0);
    cr_assert_eq(run->exit_code, 0, "%s failed: %s", name, read_or_fail(run->stderr_path));
    cr_assert_eq(run->ntraces, 1);
    open_trace(tr, run->traces[0]);
    cr_expect(tr->info->complete);
    cr_expect_eq(tr->info->dropped, 0);
}

Test(processes, two_thousand_short_lived_threads_freeing_each_others_blocks_lose_nothing, .timeout = 60)
{
    mt_e2e_run_t run;
    mt_e2e_trace_t tr;
    run_threads_target("thread_churn", &run, &tr);
    static const uint64_t sizes[] = {1301, 1302};
    for (size_t i = 0; i < 2; i++) {
        const mt_e2e_size_count_t *e = mt_e2e_size_entry(&tr.tally, MT_OP_MALLOC, sizes[i]);
        cr_assert(e, "no malloc(%llu) recorded", (unsigned long long)sizes[i]);
        cr_expect_eq(e->count, 2000, "malloc(%llu): %llu recorded", (unsigned long long)sizes[i],
                     (unsigned long long)e->count);
        cr_expect_eq(e->freed, 2000, "malloc(%llu): %llu of 2000 blocks freed", (unsigned long long)sizes[i],
                     (unsigned long long)e->freed);
        cr_expect_eq(e->freed_elsewhere, 2000, "malloc(%llu): %llu of 2000 freed by another thread",
                     (unsigned long long)sizes[i], (unsigned long long)e->freed_elsewhere);
        cr_expect_eq(mt_e2e_count_size(&tr.tally, sizes[i]), 2000);
    }
    mt_e2e_trace_close(&tr);
    mt_e2e_run_free(&run);
}

Test(processes, frees_made_by_key_destructors_after_the_thread_returned_are_recorded, .timeout = 30)
{
    mt_e2e_run_t run;
    mt_e2e_trace_t tr;
    run_threads_target("key_destructor", &run, &tr);
    /* The first in destructor round 1, the second in round 2, both by the worker. */
    static const uint64_t sizes[] = {1501, 1502};
    for (size_t i = 0; i < 2; i++) {
        const mt_e2e_size_count_t *e = mt_e2e_size_entry(&tr.tally, MT_OP_MALLOC, sizes[i]);
        cr_assert(e, "no malloc(%llu) recorded", (unsigned long long)sizes[i]);
        cr_expect_eq(e->count, 1);
        cr_expect_eq(e->freed, 1, "the free of malloc(%llu) in a key destructor was lost",
                     (unsigned long long)sizes[i]);
        cr_expect_eq(e->freed_elsewhere, 0, "malloc(%llu) was freed by another thread", (unsigned long long)sizes[i]);
    }
    mt_e2e_trace_close(&tr);
    mt_e2e_run_free(&run);
}

/* A thread whose first allocation is inside pthread_getattr_np (glibc
 * holds the thread's lock there) must not wait for itself when the hook
 * looks for the thread's stack. */
Test(processes, a_threads_first_allocation_inside_pthread_getattr_np_neither_hangs_nor_is_lost, .timeout = 30)
{
    mt_e2e_run_t run;
    mt_e2e_trace_t tr;
    run_threads_target("getattr_first", &run, &tr);
    static const struct {
        uint64_t size, count;
    } blocks[] = {{1601, 1}, {1602, 2}};
    for (size_t i = 0; i < 2; i++) {
        const mt_e2e_size_count_t *e = mt_e2e_size_entry(&tr.tally, MT_OP_MALLOC, blocks[i].size);
        cr_assert(e, "no malloc(%llu) recorded", (unsigned long long)blocks[i].size);
        cr_expect_eq(e->count, blocks[i].count);
        cr_expect_eq(e->freed, blocks[i].count);
        mt_event_t ev;
        cr_assert_eq(mt_e2e_find(&tr, MT_OP_MALLOC, blocks[i].size, 0, 0, &ev), 1);
        const char *path = mt_e2e_frame_module(&tr, &ev, 0);
        cr_expect(mt_e2e_basename_is(path, "getattr_first"), "malloc(%llu): frame 0 in %s",
                  (unsigned long long)blocks[i].size, path ? path : "(no module)");
        cr_expect_geq(mt_e2e_stack_depth(&tr, &ev), 2, "malloc(%llu): stack not walked",
                      (unsigned long long)blocks[i].size);
    }
    mt_e2e_trace_close(&tr);
    mt_e2e_run_free(&run);
}

/* ---- fork ---- */

Test(processes, a_fork_child_writes_its_own_trace_naming_its_parent, .timeout = 30)
{
    mt_e2e_opts_t o = {.capture_stdout = true, .capture_stderr = true};
    mt_e2e_run_t run;
    mt_e2e_trace_t parent, child;
    cr_assert_eq(mt_e2e_run_target(&run, &o, "process_tree", "fork", NULL), 0);
    cr_assert_eq(run.exit_code, 0, "process_tree fork failed: %s", read_or_fail(run.stderr_path));
    cr_assert_eq(run.ntraces, 2, "expected a trace for the parent and one for the child");
    long pi = mt_e2e_trace_for_pid(&run, (uint64_t)run.pid);
    cr_assert_geq(pi, 0, "no trace for the parent");
    open_trace(&parent, run.traces[pi]);
    open_trace(&child, run.traces[1 - pi]);

    cr_expect(parent.info->complete);
    cr_expect_eq(parent.info->flags & MT_TRACE_F_FORKED, 0);
    cr_expect_eq(parent.info->fork_seq, 0);
    cr_expect(child.info->complete);
    cr_expect_eq(child.info->ppid, (uint64_t)run.pid, "the child's header names %llu as parent",
                 (unsigned long long)child.info->ppid);
    cr_expect_neq(child.info->pid, (uint64_t)run.pid);
    cr_expect(child.info->flags & MT_TRACE_F_FORKED, "the child's header lacks MT_TRACE_F_FORKED");
    cr_expect_gt(child.info->fork_seq, 0);

    /* The parent's block was allocated before the fork, in the parent only. */
    mt_event_t p;
    cr_assert_eq(count_of(&parent, MT_OP_MALLOC, 1401), 1);
    cr_assert_eq(mt_e2e_find(&parent, MT_OP_MALLOC, 1401, 0, 0, &p), 1);
    cr_expect_lt(p.seq, child.info->fork_seq, "the fork happened after the parent's malloc");
    cr_expect_eq(count_of(&child, MT_OP_MALLOC, 1401), 0);
    cr_expect_eq(count_of(&parent, MT_OP_MALLOC, 1402), 0);
    const mt_e2e_size_count_t *e = mt_e2e_size_entry(&parent.tally, MT_OP_MALLOC, 1401);
    cr_expect_eq(e->freed, 1, "the parent frees its block after the child exits");
    e = mt_e2e_size_entry(&child.tally, MT_OP_MALLOC, 1402);
    cr_assert(e, "the child's malloc(1402) is not in its trace");
    cr_expect_eq(e->count, 1);
    cr_expect_eq(e->freed, 1);
    /* The child's sequence numbers continue from the fork. */
    cr_expect_geq(child.tally.first_seq, child.info->fork_seq);
    mt_e2e_trace_close(&parent);
    mt_e2e_trace_close(&child);
    mt_e2e_run_free(&run);
}

Test(processes, a_fork_childs_free_of_a_parent_block_is_an_unknown_free_in_its_trace, .timeout = 30)
{
    mt_e2e_opts_t o = {.capture_stdout = true, .capture_stderr = true};
    mt_e2e_run_t run;
    mt_e2e_trace_t parent, child;
    mt_event_t p, f;
    cr_assert_eq(mt_e2e_run_target(&run, &o, "process_tree", "fork", NULL), 0);
    cr_assert_eq(run.exit_code, 0);
    cr_assert_eq(run.ntraces, 2);
    long pi = mt_e2e_trace_for_pid(&run, (uint64_t)run.pid);
    cr_assert_geq(pi, 0);
    open_trace(&parent, run.traces[pi]);
    open_trace(&child, run.traces[1 - pi]);
    cr_assert_eq(mt_e2e_find(&parent, MT_OP_MALLOC, 1401, 0, 0, &p), 1);
    /* The child frees the parent's block (same address in its copy of the
     * heap): a block its own trace never saw, so the free carries the
     * address, which the target printed. */
    char *out = mt_e2e_read_file(run.stdout_path, NULL);
    cr_assert(out);
    const char *at = strstr(out, "block at 0x");
    cr_assert(at, "the target did not print its block's address: %s", out);
    uint64_t addr = strtoull(at + strlen("block at "), NULL, 16);
    free(out);
    cr_assert_eq(mt_e2e_find_free(&child, addr, 0, &f), 1, "the child's free of the parent's block is missing");
    cr_expect_eq(f.op, MT_OP_FREE);
    cr_expect_geq(child.tally.unknown_frees, 1, "the free of a block the child never allocated is unknown");
    mt_e2e_trace_close(&parent);
    mt_e2e_trace_close(&child);
    mt_e2e_run_free(&run);
}

Test(processes, fork_then_exec_keeps_what_the_child_allocated_and_the_new_image_has_its_own_trace,
     .timeout = 30)
{
    mt_e2e_opts_t o = {.capture_stdout = true, .capture_stderr = true};
    mt_e2e_run_t run;
    cr_assert_eq(mt_e2e_run_target(&run, &o, "process_tree", "exec", NULL), 0);
    cr_assert_eq(run.exit_code, 7, "the exec'ed image exits 7, and the parent with it: %s",
                 read_or_fail(run.stderr_path));
    cr_assert_eq(run.ntraces, 3, "expected the parent's, the child's before the exec, and the new image's");
    int parents = 0, forked = 0, execed = 0;
    uint64_t child_pid = 0, image_pid = 0;
    for (size_t i = 0; i < run.ntraces; i++) {
        mt_e2e_trace_t tr;
        open_trace(&tr, run.traces[i]);
        if (tr.info->pid == (uint64_t)run.pid) {
            parents++;
            cr_expect(tr.info->complete);
            cr_expect_eq(mt_e2e_count_size(&tr.tally, 1403), 0);
        } else if (tr.info->flags & MT_TRACE_F_FORKED) {
            /* The child before the exec: everything it allocated was flushed. */
            forked++;
            child_pid = tr.info->pid;
            cr_expect_eq(tr.info->ppid, (uint64_t)run.pid);
            cr_expect_eq(count_of(&tr, MT_OP_MALLOC, 1403), 1, "the child's malloc(1403) before the exec is lost");
            cr_expect_eq(mt_e2e_count_size(&tr.tally, 1404), 0);
        } else {
            /* The exec'ed image: a new trace, in the same process. */
            execed++;
            image_pid = tr.info->pid;
            cr_expect(tr.info->complete);
            cr_expect_eq(tr.info->ppid, (uint64_t)run.pid);
            cr_expect_eq(count_of(&tr, MT_OP_MALLOC, 1404), 1);
            cr_expect_eq(mt_e2e_count_size(&tr.tally, 1403), 0);
        }
        mt_e2e_trace_close(&tr);
    }
    cr_expect_eq(parents, 1);
    cr_expect_eq(forked, 1);
    cr_expect_eq(execed, 1);
    cr_expect_eq(child_pid, image_pid, "exec keeps the pid");
    mt_e2e_run_free(&run);
}

Test(processes, posix_spawn_and_system_complete_with_the_right_exit_statuses, .timeout = 30)
{
    mt_e2e_opts_t o = {.capture_stdout = true, .capture_stderr = true};
    mt_e2e_run_t run;
    cr_assert_eq(mt_e2e_run_target(&run, &o, "process_tree", "spawn", NULL), 0);
    char *out = read_or_fail(run.stdout_path);
    cr_expect_eq(run.exit_code, 0, "stdout: %s", out);
    cr_expect_str_eq(out, "process_tree: spawned child exited 5, shell exited 3\n");
    free(out);
    cr_assert_eq(run.ntraces, 3, "expected traces of the program, the spawned child and the shell");
    int self = 0, spawned = 0, shell = 0;
    for (size_t i = 0; i < run.ntraces; i++) {
        mt_e2e_trace_t tr;
        open_trace(&tr, run.traces[i]);
        cr_expect(tr.info->complete, "%s is incomplete", run.traces[i]);
        if (tr.info->pid == (uint64_t)run.pid) {
            self++;
        } else if (mt_e2e_basename_is(tr.info->exe, "process_tree")) {
            spawned++;
            cr_expect_eq(tr.info->ppid, (uint64_t)run.pid);
            cr_expect_eq(count_of(&tr, MT_OP_MALLOC, 1405), 1);
            const mt_e2e_size_count_t *e = mt_e2e_size_entry(&tr.tally, MT_OP_MALLOC, 1405);
            cr_expect(e && e->freed == 1);
        } else {
            shell++;
            cr_expect_eq(tr.info->ppid, (uint64_t)run.pid);
        }
        mt_e2e_trace_close(&tr);
    }
    cr_expect_eq(self, 1);
    cr_expect_eq(spawned, 1);
    cr_expect_eq(shell, 1);
    mt_e2e_run_free(&run);
}

Test(processes, a_fork_child_closing_every_descriptor_before_exec_changes_nothing_and_loses_nothing,
     .timeout = 60)
{
    char *dir = mt_e2e_tempdir(), *data, *file;
    cr_assert(dir);
    cr_assert_geq(asprintf(&data, "%s/data", dir), 0);
    cr_assert_eq(mkdir(data, 0700), 0);
    cr_assert_geq(asprintf(&file, "%s/program.txt", data), 0);
    mt_e2e_opts_t o = {.dir = dir, .capture_stdout = true, .capture_stderr = true};
    mt_e2e_run_t run;
    cr_assert_eq(mt_e2e_run_target(&run, &o, "fd_closer", file, NULL), 0);
    cr_assert_eq(run.exit_code, 0);
    char *err = read_or_fail(run.stderr_path);
    cr_expect_eq(mt_e2e_count_lines(run.stderr_path), 0, "memtrack wrote to the program's stderr:\n%s", err);
    free(err);
    size_t len;
    char *text = mt_e2e_read_file(file, &len);
    cr_assert(text);
    cr_expect(len == 23 && !strcmp(text, "written by the program\n"),
              "the program's own file holds %zu bytes, not its 23", len);
    free(text);
    cr_assert_eq(run.ntraces, 3, "expected the parent's, the child's before the exec, and the new image's");
    uint64_t before_exec = 0, after_exec = 0;
    for (size_t i = 0; i < run.ntraces; i++) {
        mt_e2e_trace_t tr;
        open_trace(&tr, run.traces[i]);
        before_exec += count_of(&tr, MT_OP_MALLOC, 2202);
        after_exec += count_of(&tr, MT_OP_MALLOC, 2203);
        mt_e2e_trace_close(&tr);
    }
    cr_expect_eq(before_exec, 1, "the child's malloc(2202) between closing its descriptors and exec is lost");
    cr_expect_eq(after_exec, 1);
    mt_e2e_run_free(&run);
    mt_e2e_remove_tree(dir);
    free(dir);
    free(data);
    free(file);
}

/* ---- crashes and exits ---- */

Test(processes, a_segv_kills_the_program_as_without_memtrack_and_every_allocation_is_in_the_trace,
     .timeout = 30)
{
    mt_e2e_opts_t plain = {.no_preload = true, .capture_stdout = true, .capture_stderr = true};
    mt_e2e_opts_t traced = {.capture_stdout = true, .capture_stderr = true};
    mt_e2e_run_t a, b;
    mt_e2e_trace_t tr;
    cr_assert_eq(mt_e2e_run_target(&a, &plain, "crash_segv", "100", NULL), 0);
    cr_assert_eq(mt_e2e_run_target(&b, &traced, "crash_segv", "100", NULL), 0);
    cr_assert_eq(a.signal, SIGSEGV, "without memtrack: status %#x", a.status);
    cr_expect_eq(b.signal, SIGSEGV, "under memtrack: status %#x, expected death by SIGSEGV", b.status);
    cr_expect_eq(b.exit_code, -1);
    char *out_a = read_or_fail(a.stdout_path), *out_b = read_or_fail(b.stdout_path);
    cr_expect_str_eq(out_b, out_a);
    free(out_a);
    free(out_b);
    cr_expect_eq(mt_e2e_count_lines(b.stderr_path), 0, "memtrack wrote to stderr");
    cr_assert_eq(b.ntraces, 1);
    open_trace(&tr, b.traces[0]);
    cr_expect(tr.info->complete, "the crash handler did not finish the trace");
    cr_expect_eq(count_of(&tr, MT_OP_MALLOC, 1501), 100);
    cr_expect_eq(mt_e2e_count_size(&tr.tally, 1501), 100);
    mt_e2e_trace_close(&tr);
    mt_e2e_run_free(&a);
    mt_e2e_run_free(&b);
}

static void check_quick_exit(const char *how, int status)
{
    mt_e2e_opts_t o = {.capture_stdout = true, .capture_stderr = true};
    mt_e2e_run_t run;
    mt_e2e_trace_t tr;
    cr_assert_eq(mt_e2e_run_target(&run, &o, "quick_exit", how, "100", NULL), 0);
    cr_expect_eq(run.exit_code, status, "%s: exit status %d", how, run.exit_code);
    cr_assert_eq(run.ntraces, 1);
    open_trace(&tr, run.traces[0]);
    cr_expect(tr.info->complete, "%s: the trace has no END record", how);
    cr_expect_eq(count_of(&tr, MT_OP_MALLOC, 1601), 100, "%s: %llu of 100 allocations recorded", how,
                 (unsigned long long)count_of(&tr, MT_OP_MALLOC, 1601));
    mt_e2e_trace_close(&tr);
    mt_e2e_run_free(&run);
}

Test(processes, underscore_exit_after_allocations_leaves_a_complete_trace, .timeout = 30)
{
    check_quick_exit("_exit", 3);
}

Test(processes, underscore_capital_exit_after_allocations_leaves_a_complete_trace, .timeout = 30)
{
    check_quick_exit("_Exit", 4);
}

/* ---- a test runner ---- */

static bool pid_noted(const char *pids_dir, uint64_t pid)
{
    char *path;
    if (asprintf(&path, "%s/%llu", pids_dir, (unsigned long long)pid) < 0)
        return false;
    bool noted = access(path, F_OK) == 0;
    free(path);
    return noted;
}

static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    if (!d)
        return -1;
    for (struct dirent *de; (de = readdir(d)) != NULL;)
        n += de->d_name[0] != '.';
    closedir(d);
    return n;
}

Test(processes, a_criterion_suite_leaves_a_trace_per_process_and_keeps_its_exit_status, .timeout = 60)
{
    mt_e2e_opts_t plain = {.no_preload = true, .capture_stdout = true, .capture_stderr = true};
    mt_e2e_run_t a, b;
    cr_assert_eq(mt_e2e_run_target(&a, &plain, "criterion_suite", NULL), 0);
    cr_assert_eq(a.exit_code, 1, "without memtrack the suite exits 1 (one test fails)");

    char *dir = mt_e2e_tempdir(), pids[4096], setting[4200];
    cr_assert(dir);
    snprintf(pids, sizeof pids, "%s/pids", dir);
    cr_assert_eq(mkdir(pids, 0700), 0);
    snprintf(setting, sizeof setting, "MT_SUITE_PIDS=%s", pids);
    const char *env[] = {setting, NULL};
    mt_e2e_opts_t traced = {.dir = dir, .env = env, .capture_stdout = true, .capture_stderr = true};
    cr_assert_eq(mt_e2e_run_target(&b, &traced, "criterion_suite", NULL), 0);
    cr_expect_eq(b.exit_code, a.exit_code, "under memtrack the suite exits %d, without %d", b.exit_code,
                 a.exit_code);
    char *err = read_or_fail(b.stderr_path);
    cr_expect(strstr(err, "Tested: 3 | Passing: 2 | Failing: 1 | Crashing: 0"), "suite output: %s", err);
    /* Criterion's sandbox closes every descriptor of a test process before
     * its exec: memtrack must neither complain nor lose that process. */
    cr_expect_null(strstr(err, "memtrack:"), "memtrack wrote to the suite's stderr:\n%s", err);
    free(err);
    cr_assert_eq(count_entries(pids), 3, "expected three test processes");

    /* Every trace belongs to the runner or a test process, every test
     * process has a trace, and each test's allocation is in exactly one. */
    bool runner_seen = false;
    int tests_seen = 0;
    uint64_t per_size[3] = {0, 0, 0};
    for (size_t i = 0; i < b.ntraces; i++) {
        mt_e2e_trace_t tr;
        open_trace(&tr, b.traces[i]);
        uint64_t pid = tr.info->pid;
        bool is_test = pid_noted(pids, pid);
        cr_expect(pid == (uint64_t)b.pid || is_test, "%s belongs to pid %llu, neither the runner nor a test",
                  b.traces[i], (unsigned long long)pid);
        runner_seen |= pid == (uint64_t)b.pid;
        for (int k = 0; k < 3; k++) {
            uint64_t n = count_of(&tr, MT_OP_MALLOC, 2001 + (uint64_t)k);
            per_size[k] += n;
            if (n) {
                cr_expect(is_test, "test %d's allocation is in a trace of pid %llu, not a test process", k + 1,
                          (unsigned long long)pid);
                tests_seen++;
            }
        }
        mt_e2e_trace_close(&tr);
    }
    cr_expect(runner_seen, "no trace for the runner");
    cr_expect_eq(tests_seen, 3);
    for (int k = 0; k < 3; k++)
        cr_expect_eq(per_size[k], 1, "test %d's malloc(%d): %llu events in all traces", k + 1, 2001 + k,
                     (unsigned long long)per_size[k]);
    mt_e2e_run_free(&a);
    mt_e2e_run_free(&b);
    mt_e2e_remove_tree(dir);
    free(dir);
}
