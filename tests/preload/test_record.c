/* test_record.c - end-to-end tests of what libmemtrack.so records in one process.
 *
 * Each test runs a target program (tests/targets) under LD_PRELOAD, reads
 * its trace back with the analyzer's reader and checks exact numbers: the
 * targets allocate sizes nothing else in the process allocates, so a count
 * by (op, size) is exact whatever libc does on the side. Covered: every C
 * entry point, C++ new and delete, a dlopen'ed and dlclosed plugin, jemalloc
 * and its *allocx API, what the program sees (errno, mallinfo2, stdout, exit
 * status), the trace file's name and the MEMTRACK_* settings. Processes,
 * threads, crashes and exits are in test_processes.c.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "e2e.h"

/* ---- helpers ---- */

static void run_target(mt_e2e_run_t *run, const mt_e2e_opts_t *opts, const char *name)
{
    int rc = mt_e2e_run_target(run, opts, name, NULL);
    cr_assert_eq(rc, 0, "cannot run %s: %s", name, strerror(-rc));
}

/* Opens the run's only trace and checks that it is whole and consistent. */
static void open_only_trace(const mt_e2e_run_t *run, mt_e2e_trace_t *tr)
{
    cr_assert_eq(run->ntraces, 1, "expected 1 trace in %s, found %zu", run->dir, run->ntraces);
    int rc = mt_e2e_trace_open(tr, run->traces[0]);
    cr_assert_eq(rc, 0, "cannot read %s: %s", run->traces[0], tr->err);
    const mt_trace_info_t *info = tr->info;
    cr_expect(info->complete, "%s has no END record", run->traces[0]);
    cr_expect_not(info->truncated, "%s is truncated", run->traces[0]);
    cr_expect_eq(info->dropped, 0, "%s: %llu events dropped", run->traces[0],
                 (unsigned long long)info->dropped);
    cr_expect_eq(info->pid, (uint64_t)run->pid);
    cr_expect_eq(tr->tally.bad_order, 0, "events out of seq order");
    cr_expect_eq(tr->tally.bad_stacks, 0, "allocations with an undefined stack");
    cr_expect_eq(tr->tally.double_allocs, 0, "an address allocated twice without a free");
}

/* Finds the one allocation with op and size. */
static mt_event_t the_alloc(mt_e2e_trace_t *tr, unsigned op, uint64_t size)
{
    mt_event_t ev;
    cr_assert_eq(mt_e2e_count(&tr->tally, op, size), 1, "%s(%llu): %llu events, expected 1",
                 mt__op_name(op), (unsigned long long)size,
                 (unsigned long long)mt_e2e_count(&tr->tally, op, size));
    cr_assert_eq(mt_e2e_find(tr, op, size, 0, 0, &ev), 1);
    return ev;
}

/* Checks that the block of ev is freed, by free_op, after ev. */
static void expect_freed_by(mt_e2e_trace_t *tr, const mt_event_t *ev, unsigned free_op)
{
    mt_event_t f;
    int rc = mt_e2e_find_free(tr, ev->ptr, ev->seq, &f);
    cr_assert_eq(rc, 1, "the %s(%llu) block is never freed", mt__op_name(ev->op),
                 (unsigned long long)ev->size);
    cr_expect_eq(f.op, free_op, "the %s(%llu) block is freed by %s, expected %s", mt__op_name(ev->op),
                 (unsigned long long)ev->size, mt__op_name(f.op), mt__op_name(free_op));
}

/* Checks that frame 0 of ev's stack lies in the module named module. */
static void expect_frame0_in(const mt_e2e_trace_t *tr, const mt_event_t *ev, const char *module)
{
    const char *path = mt_e2e_frame_module(tr, ev, 0);
    cr_expect(mt_e2e_basename_is(path, module), "%s(%llu): frame 0 in %s, expected %s",
              mt__op_name(ev->op), (unsigned long long)ev->size, path ? path : "(no module)", module);
}

static char *read_or_fail(const char *path)
{
    char *s = mt_e2e_read_file(path, NULL);
    cr_assert(s, "cannot read %s", path);
    return s;
}

/* ---- the C entry points ---- */

typedef struct expected_call {
    unsigned op;
    uint64_t size;
    unsigned free_op; /* how the target frees the block */
} expected_call_t;

static const expected_call_t c_calls[] = {
    {MT_OP_MALLOC, 1001, MT_OP_FREE},
    {MT_OP_CALLOC, 1002, MT_OP_FREE},
    {MT_OP_REALLOC, 1003, MT_OP_REALLOC_FREE},
    {MT_OP_REALLOC, 1004, MT_OP_REALLOC_FREE},
    {MT_OP_REALLOC, 1005, MT_OP_REALLOC_FREE},
    {MT_OP_REALLOC, 1006, MT_OP_FREE},
    {MT_OP_POSIX_MEMALIGN, 1007, MT_OP_FREE},
    {MT_OP_ALIGNED_ALLOC, 1008, MT_OP_FREE},
    {MT_OP_MEMALIGN, 1009, MT_OP_FREE},
    {MT_OP_VALLOC, 1010, MT_OP_FREE},
    {MT_OP_PVALLOC, 1011, MT_OP_FREE},
    {MT_OP_MALLOC, 1012, MT_OP_FREE_SIZED},
    {MT_OP_ALIGNED_ALLOC, 1013, MT_OP_FREE_ALIGNED_SIZED},
    {MT_OP_MALLOC, 1015, MT_OP_FREE},
};

#define NCALLS(a) (sizeof(a) / sizeof((a)[0]))

Test(record, every_c_entry_point_is_recorded_once_with_its_op_and_size, .timeout = 30)
{
    mt_e2e_opts_t o = {.capture_stdout = true, .capture_stderr = true};
    mt_e2e_run_t run;
    mt_e2e_trace_t tr;
    run_target(&run, &o, "record_entry");
    cr_assert_eq(run.exit_code, 0, "record_entry failed: %s", read_or_fail(run.stderr_path));
    open_only_trace(&run, &tr);
    for (size_t i = 0; i < NCALLS(c_calls); i++) {
        const expected_call_t *c = &c_calls[i];
        cr_expect_eq(mt_e2e_count(&tr.tally, c->op, c->size), 1, "%s(%llu): %llu events, expected 1",
                     mt__op_name(c->op), (unsigned long long)c->size,
                     (unsigned long long)mt_e2e_count(&tr.tally, c->op, c->size));
        cr_expect_eq(mt_e2e_count_size(&tr.tally, c->size), 1,
                     "size %llu: %llu allocations of any op, expected 1", (unsigned long long)c->size,
                     (unsigned long long)mt_e2e_count_size(&tr.tally, c->size));
    }
    mt_e2e_trace_close(&tr);
    mt_e2e_run_free(&run);
}

Test(record, every_block_is_freed_by_the_function_the_program_called, .timeout = 30)
{
    mt_e2e_opts_t o = {.capture_stdout = true, .capture_stderr = true};
    mt_e2e_run_t run;
    mt_e2e_trace_t tr;
    run_target(&run, &o, "record_entry");
    cr_assert_eq(run.exit_code, 0);
    open_only_trace(&run, &tr);
    for (size_t i = 0; i < NCALLS(c_calls); i++) {
        mt_event_t ev = the_alloc(&tr, c_calls[i].op, c_calls[i].size);
        expect_freed_by(&tr, &ev, c_calls[i].free_op);
    }
    mt_e2e_trace_close(&tr);
    mt_e2e_run_free(&run);
}

Test(record, realloc_is_a_free_then_an_allocation_and_realloc_to_zero_only_frees, .timeout = 30)
{
    mt_e2e_opts_t o = {.capture_stdout = true, .capture_stderr = true};
    mt_e2e_run_t run;
    mt_e2e_trace_t tr;
    mt_event_t f;
    run_target(&run, &o, "record_entry");
    cr_assert_eq(run.exit_code, 0);
    open_only_trace(&run, &tr);
    mt_event_t a1003 = the_alloc(&tr, MT_OP_REALLOC, 1003);
    mt_event_t a1004 = the_alloc(&tr, MT_OP_REALLOC, 1004);
    /* realloc(NULL, 1003) has no free half; realloc(p, 1004) frees p first. */
    cr_assert_eq(mt_e2e_find_free(&tr, a1003.ptr, a1003.seq, &f), 1);
    cr_expect_eq(f.op, MT_OP_REALLOC_FREE);
    cr_expect_lt(f.seq, a1004.seq, "the free half of a realloc comes before its new block");
    /* realloc(p, 0): the 1004 block is freed and nothing is allocated. */
    cr_assert_eq(mt_e2e_find_free(&tr, a1004.ptr, a1004.seq, &f), 1);
    cr_expect_eq(f.op, MT_OP_REALLOC_FREE);
    cr_expect_eq(mt_e2e_count(&tr.tally, MT_OP_REALLOC, 0), 0, "realloc(p, 0) recorded an allocation");
    /* reallocarray is recorded as realloc of n * m bytes. */
    mt_event_t a1005 = the_alloc(&tr, MT_OP_REALLOC, 1005);
    mt_event_t a1006 = the_alloc(&tr, MT_OP_REALLOC, 1006);
    cr_assert_eq(mt_e2e_find_free(&tr, a1005.ptr, a1005.seq, &f), 1);
    cr_expect_eq(f.op, MT_OP_REALLOC_FREE);
    cr_expect_lt(f.seq, a1006.seq);
    mt_e2e_trace_close(&tr);
    mt_e2e_run_free(&run);
}

Test(record, every_c_allocation_is_charged_to_the_calling_executable, .timeout = 30)
{
    mt_e2e_opts_t o = {.capture_stdout = true, .capture_stderr = true};
    mt_e2e_run_t run;
    mt_e2e_trace_t tr;
    run_target(&run, &o, "record_entry");
    cr_assert_eq(run.exit_code, 0);
    open_only_trace(&run, &tr);
    for (size_t i = 0; i < NCALLS(c_calls); i++) {
        mt_event_t ev = the_alloc(&tr, c_calls[i].op, c_calls[i].size);
        expect_frame0_in(&tr, &ev, "record_entry");
    }
    mt_e2e_trace_close(&tr);
    mt_e2e_run_free(&run);
}

Test(record, free_sized_and_free_aligned_sized_exist_only_under_memtrack_on_this_libc, .timeout = 30)
{
    mt_e2e_opts_t plain = {.no_preload = true, .capture_stdout = true, .capture_stderr = true};
    mt_e2e_opts_t traced = {.capture_stdout = true, .capture_stderr = true};
    mt_e2e_run_t a, b;
    run_target(&a, &plain, "record_entry");
    run_target(&b, &traced, "record_entry");
    cr_assert_eq(a.exit_code, 0);
    cr_assert_eq(b.exit_code, 0);
    char *err_b = read_or_fail(b.stderr_path);
    cr_expect(strstr(err_b, "free_sized present, free_aligned_sized present"), "stderr: %s", err_b);
    free(err_b);
    mt_e2e_run_free(&a);
    mt_e2e_run_free(&b);
}

Test(record, malloc_usable_size_passes_through_to_the_real_allocator, .timeout = 30)
{
    mt_e2e_opts_t plain = {.no_preload = true, .capture_stdout = true, .capture_stderr = true};
    mt_e2e_opts_t traced = {.capture_stdout = true, .capture_stderr = true};
    mt_e2e_run_t a, b;
    run_target(&a, &plain, "record_entry");
    run_target(&b, &traced, "record_entry");
    char *out_a = read_or_fail(a.stdout_path), *out_b = read_or_fail(b.stdout_path);
    cr_assert(strstr(out_a, "usable size of a 1015-byte block: "), "stdout: %s", out_a);
    /* The target prints malloc_usable_size: the same number either way. */
    cr_expect_str_eq(out_b, out_a);
    free(out_a);
    free(out_b);
    mt_e2e_run_free(&a);
    mt_e2e_run_free(&b);
}

Test(record, errno_is_unchanged_across_every_allocation_function, .timeout = 30)
{
    mt_e2e_opts_t o = {.capture_stdout = true, .capture_stderr = true};
    mt_e2e_run_t run;
    run_target(&run, &o, "record_entry");
    char *err = read_or_fail(run.stderr_path);
    cr_expect_null(strstr(err, "changed errno"), "%s", err);
    cr_expect_eq(run.exit_code, 0, "%s", err);
    free(err);
    mt_e2e_run_free(&run);
}

/* ---- C++ ---- */

static const expected_call_t cxx_calls[] = {
    {MT_OP_NEW, 1101, MT_OP_DELETE},
    {MT_OP_NEW_ARRAY, 1102, MT_OP_DELETE_ARRAY},
    {MT_OP_NEW, 1103, MT_OP_DELETE},
    {MT_OP_NEW_ARRAY, 1104, MT_OP_DELETE_ARRAY},
    {MT_OP_NEW, 1152, MT_OP_DELETE},
    {MT_OP_NEW_ARRAY, 2304, MT_OP_DELETE_ARRAY},
    {MT_OP_NEW, 1216, MT_OP_DELETE},
    {MT_OP_NEW, 1105, MT_OP_DELETE},
};

Test(record, cxx_new_and_delete_are_recorded_once_as_new_and_delete, .timeout = 30)
{
    mt_e2e_opts_t o = {.capture_stdout = true, .capture_stderr = true};
    mt_e2e_run_t run;
    mt_e2e_trace_t tr;
    run_target(&run, &o, "record_cxx");
    cr_assert_eq(run.exit_code, 0, "record_cxx failed: %s", read_or_fail(run.stderr_path));
    open_only_trace(&run, &tr);
    for (size_t i = 0; i < NCALLS(cxx_calls); i++) {
        const expected_call_t *c = &cxx_calls[i];
        /* Exactly one event of this size: operator new's own malloc is not recorded again. */
        cr_expect_eq(mt_e2e_count_size(&tr.tally, c->size), 1, "size %llu: %llu allocations, expected 1",
                     (unsigned long long)c->size, (unsigned long long)mt_e2e_count_size(&tr.tally, c->size));
        mt_event_t ev = the_alloc(&tr, c->op, c->size);
        expect_freed_by(&tr, &ev, c->free_op);
    }
    mt_e2e_trace_close(&tr);
    mt_e2e_run_free(&run);
}

Test(record, cxx_allocations_are_charged_to_the_caller_of_new, .timeout = 30)
{
    mt_e2e_opts_t o = {.capture_stdout = true, .capture_stderr = true};
    mt_e2e_run_t run;
    mt_e2e_trace_t tr;
    run_target(&run, &o, "record_cxx");
    cr_assert_eq(run.exit_code, 0);
    open_only_trace(&run, &tr);
    for (size_t i = 0; i < NCALLS(cxx_calls); i++) {
        mt_event_t ev = the_alloc(&tr, cxx_calls[i].op, cxx_calls[i].size);
        expect_frame0_in(&tr, &ev, "record_cxx");
    }
    mt_e2e_trace_close(&tr);
    mt_e2e_run_free(&run);
}

/* ---- plugins ---- */

Test(record, a_dlclosed_plugin_keeps_its_module_and_its_allocations_resolve_to_it, .timeout = 30)
{
    mt_e2e_opts_t o = {.capture_stdout = true, .capture_stderr = true};
    mt_e2e_run_t run;
    mt_e2e_trace_t tr;
    run_target(&run, &o, "plugin_host");
    cr_assert_eq(run.exit_code, 0, "plugin_host failed: %s", read_or_fail(run.stderr_path));
    open_only_trace(&run, &tr);

    const mt_module_t *plugin = NULL;
    for (size_t i = 0; i < tr.info->nmodules; i++)
        if (mt_e2e_basename_is(tr.info->modules[i].path, "libmtplugin.so"))
            plugin = &tr.info->modules[i];
    cr_assert(plugin, "no MODULE record for libmtplugin.so");
    cr_expect_neq(plugin->unload_epoch, UINT64_MAX, "the plugin was dlclosed but never unloaded");
    cr_expect_gt(plugin->unload_epoch, plugin->load_epoch);

    mt_event_t in_plugin = the_alloc(&tr, MT_OP_MALLOC, 1201);
    const mt_stack_t *s = mt__trace_stack(tr.t, in_plugin.stack);
    cr_assert(s);
    cr_expect_lt(s->epoch, plugin->unload_epoch);
    expect_frame0_in(&tr, &in_plugin, "libmtplugin.so");
    expect_freed_by(&tr, &in_plugin, MT_OP_FREE);

    /* After the dlclose, stacks carry the new epoch and resolve to the host. */
    mt_event_t after = the_alloc(&tr, MT_OP_MALLOC, 1202);
    s = mt__trace_stack(tr.t, after.stack);
    cr_assert(s);
    cr_expect_geq(s->epoch, plugin->unload_epoch);
    expect_frame0_in(&tr, &after, "plugin_host");
    mt_e2e_trace_close(&tr);
    mt_e2e_run_free(&run);
}

/* ---- jemalloc ---- */

Test(record, a_program_linked_with_jemalloc_has_malloc_and_the_allocx_family_recorded, .timeout = 30)
{
    static const expected_call_t je_calls[] = {
        {MT_OP_MALLOC, 1701, MT_OP_FREE},
        {MT_OP_MALLOCX, 1702, MT_OP_DALLOCX},
        {MT_OP_MALLOCX, 1703, MT_OP_RALLOCX_FREE},
        {MT_OP_RALLOCX, 1704, MT_OP_XALLOCX_FREE},
        {MT_OP_XALLOCX, 1750, MT_OP_SDALLOCX},
    };
    mt_e2e_opts_t o = {.capture_stdout = true, .capture_stderr = true};
    mt_e2e_run_t run;
    mt_e2e_trace_t tr;
    run_target(&run, &o, "jemalloc_user");
    cr_assert_eq(run.exit_code, 0, "jemalloc_user failed: %s", read_or_fail(run.stderr_path));
    open_only_trace(&run, &tr);
    for (size_t i = 0; i < NCALLS(je_calls); i++) {
        mt_event_t ev = the_alloc(&tr, je_calls[i].op, je_calls[i].size);
        expect_freed_by(&tr, &ev, je_calls[i].free_op);
        expect_frame0_in(&tr, &ev, "jemalloc_user");
    }
    mt_e2e_trace_close(&tr);
    mt_e2e_run_free(&run);
}

/* ---- what the program sees ---- */

Test(record, mallinfo2_still_counts_the_programs_allocations, .timeout = 30)
{
    mt_e2e_opts_t o = {.capture_stdout = true, .capture_stderr = true};
    mt_e2e_run_t run;
    run_target(&run, &o, "mallinfo_user");
    char *out = read_or_fail(run.stdout_path);
    cr_expect_eq(run.exit_code, 0, "%s", out);
    cr_expect(strstr(out, "in-use bytes grew"), "%s", out);
    free(out);
    mt_e2e_run_free(&run);
}

Test(record, stdout_and_exit_status_are_the_same_with_and_without_memtrack, .timeout = 30)
{
    mt_e2e_opts_t plain = {.no_preload = true, .capture_stdout = true, .capture_stderr = true};
    mt_e2e_opts_t traced = {.capture_stdout = true, .capture_stderr = true};
    mt_e2e_run_t a, b;
    size_t la, lb;
    run_target(&a, &plain, "output_status");
    run_target(&b, &traced, "output_status");
    cr_assert_eq(a.exit_code, 42);
    cr_expect_eq(b.exit_code, 42);
    char *out_a = mt_e2e_read_file(a.stdout_path, &la), *out_b = mt_e2e_read_file(b.stdout_path, &lb);
    cr_assert(out_a && out_b);
    cr_expect_gt(la, 10000, "the target printed less than expected");
    cr_expect(la == lb && !memcmp(out_a, out_b, la), "stdout differs under memtrack");
    cr_expect_eq(mt_e2e_count_lines(b.stderr_path), 0, "memtrack wrote to stderr");
    cr_expect_eq(b.ntraces, 1);
    free(out_a);
    free(out_b);
    mt_e2e_run_free(&a);
    mt_e2e_run_free(&b);
}

/* Creates <dir>/data/<name> as the path of a file the program writes itself
 * (out of the run directory's top level, where traces are listed). */
static char *program_file(const char *dir, const char *name)
{
    char *path;
    cr_assert_geq(asprintf(&path, "%s/data", dir), 0);
    cr_assert_eq(mkdir(path, 0700), 0);
    free(path);
    cr_assert_geq(asprintf(&path, "%s/data/%s", dir, name), 0);
    return path;
}

Test(record, a_program_that_takes_over_the_trace_descriptor_number_keeps_its_file_and_its_trace,
     .timeout = 30)
{
    char *dir = mt_e2e_tempdir();
    cr_assert(dir);
    char *file = program_file(dir, "program.txt");
    mt_e2e_opts_t o = {.dir = dir, .capture_stdout = true, .capture_stderr = true};
    mt_e2e_run_t run;
    mt_e2e_trace_t tr;
    cr_assert_eq(mt_e2e_run_target(&run, &o, "fd_reuse", file, NULL), 0);
    cr_assert_eq(run.exit_code, 0);
    size_t len;
    char *text = mt_e2e_read_file(file, &len);
    cr_assert(text);
    cr_expect(len == 23 && !strcmp(text, "written by the program\n"),
              "the program's own file holds %zu bytes, not its 23: memtrack wrote into it", len);
    free(text);
    char *err = read_or_fail(run.stderr_path);
    cr_expect_eq(mt_e2e_count_lines(run.stderr_path), 0, "stderr: %s", err);
    free(err);
    open_only_trace(&run, &tr);
    const mt_e2e_size_count_t *e = mt_e2e_size_entry(&tr.tally, MT_OP_MALLOC, 2201);
    cr_expect(e && e->count == 100 && e->freed == 100, "malloc(2201): %llu recorded, %llu freed, expected 100",
              e ? (unsigned long long)e->count : 0ull, e ? (unsigned long long)e->freed : 0ull);
    mt_e2e_trace_close(&tr);
    mt_e2e_run_free(&run);
    mt_e2e_remove_tree(dir);
    free(dir);
    free(file);
}

/* ---- the trace file's name ---- */

Test(record, output_pattern_expands_the_program_name_and_the_pid, .timeout = 30)
{
    mt_e2e_opts_t o = {.output = "%e-%p-%%.mtrace", .capture_stdout = true};
    mt_e2e_run_t run;
    char expected[4096];
    run_target(&run, &o, "deep_stack");
    cr_assert_eq(run.exit_code, 0);
    snprintf(expected, sizeof expected, "%s/deep_stack-%d-%%.mtrace", run.dir, (int)run.pid);
    cr_assert_eq(run.ntraces, 1);
    cr_expect_str_eq(run.traces[0], expected);
    mt_e2e_run_free(&run);
}

Test(record, without_memtrack_output_the_trace_is_memtrack_program_pid_in_the_current_directory,
     .timeout = 30)
{
    mt_e2e_opts_t o = {.no_output = true, .capture_stdout = true};
    mt_e2e_run_t run;
    char expected[4096];
    run_target(&run, &o, "deep_stack");
    cr_assert_eq(run.exit_code, 0);
    snprintf(expected, sizeof expected, "%s/memtrack.deep_stack.%d.mtrace", run.dir, (int)run.pid);
    cr_assert_eq(run.ntraces, 1);
    cr_expect_str_eq(run.traces[0], expected);
    mt_e2e_run_free(&run);
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert(f, "cannot create %s", path);
    fputs(text, f);
    cr_assert_eq(fclose(f), 0);
}

Test(record, an_existing_output_file_is_kept_and_a_numbered_file_is_created, .timeout = 30)
{
    char *dir = mt_e2e_tempdir(), path[4096], expected[4096];
    cr_assert(dir);
    snprintf(path, sizeof path, "%s/fixed.mtrace", dir);
    write_text(path, "an older trace\n");
    snprintf(path, sizeof path, "%s/fixed.1.mtrace", dir);
    write_text(path, "another older trace\n");
    mt_e2e_opts_t o = {.dir = dir, .output = "fixed.mtrace", .capture_stdout = true};
    mt_e2e_run_t run;
    run_target(&run, &o, "deep_stack");
    cr_assert_eq(run.exit_code, 0);

    snprintf(path, sizeof path, "%s/fixed.mtrace", dir);
    char *old = read_or_fail(path);
    cr_expect_str_eq(old, "an older trace\n");
    free(old);
    snprintf(path, sizeof path, "%s/fixed.1.mtrace", dir);
    old = read_or_fail(path);
    cr_expect_str_eq(old, "another older trace\n");
    free(old);
    snprintf(expected, sizeof expected, "%s/fixed.2.mtrace", dir);
    cr_assert_eq(run.ntraces, 3, "expected the two old files and one new trace");
    cr_expect_eq(access(expected, F_OK), 0, "%s was not created", expected);
    mt_e2e_trace_t tr;
    cr_assert_eq(mt_e2e_trace_open(&tr, expected), 0, "%s", tr.err);
    cr_expect_eq(tr.info->pid, (uint64_t)run.pid);
    cr_expect_eq(mt_e2e_count(&tr.tally, MT_OP_MALLOC, 1901), 1);
    mt_e2e_trace_close(&tr);
    mt_e2e_run_free(&run);
    mt_e2e_remove_tree(dir);
    free(dir);
}

/* Runs deep_stack with and without memtrack, MEMTRACK_OUTPUT set to output,
 * and checks that memtrack said exactly one line on stderr and changed
 * nothing else. Leaves the traced run in *run. */
static void expect_one_line_and_no_change(mt_e2e_run_t *run, const mt_e2e_opts_t *traced)
{
    mt_e2e_opts_t plain = {.no_preload = true, .capture_stdout = true, .capture_stderr = true};
    mt_e2e_run_t a;
    run_target(&a, &plain, "deep_stack");
    run_target(run, traced, "deep_stack");
    cr_assert_eq(a.exit_code, 0);
    cr_expect_eq(run->exit_code, a.exit_code);
    char *out_a = read_or_fail(a.stdout_path), *out_b = read_or_fail(run->stdout_path);
    char *err = read_or_fail(run->stderr_path);
    cr_expect_str_eq(out_b, out_a);
    cr_expect_eq(mt_e2e_count_lines(run->stderr_path), 1, "expected one line on stderr, got:\n%s", err);
    cr_expect_eq(strncmp(err, "memtrack: ", 10), 0, "stderr: %s", err);
    free(out_a);
    free(out_b);
    free(err);
    mt_e2e_run_free(&a);
}

Test(record, an_output_in_a_missing_directory_gives_one_line_and_changes_nothing, .timeout = 30)
{
    mt_e2e_opts_t o = {.output = "no/such/dir/%e.mtrace", .capture_stdout = true, .capture_stderr = true};
    mt_e2e_run_t run;
    /* A relative output with '/' is relative to the program's directory: the run's. */
    expect_one_line_and_no_change(&run, &o);
    cr_expect_eq(run.ntraces, 0);
    mt_e2e_run_free(&run);
}

Test(record, an_output_in_an_unwritable_directory_gives_one_line_and_changes_nothing, .timeout = 30)
{
    char *dir = mt_e2e_tempdir(), output[4096];
    cr_assert(dir);
    if (geteuid() == 0) {
        /* root writes into a 0555 directory; sysfs refuses even root. */
        snprintf(output, sizeof output, "/sys/memtrack-e2e.%%p.mtrace");
        int fd = open("/sys/memtrack-e2e.probe", O_WRONLY | O_CREAT | O_EXCL, 0600);
        if (fd >= 0) {
            close(fd);
            unlink("/sys/memtrack-e2e.probe");
            cr_skip_test("running as root and /sys is writable: no unwritable directory available");
        }
    } else {
        snprintf(output, sizeof output, "%s/ro", dir);
        cr_assert_eq(mkdir(output, 0555), 0);
        snprintf(output, sizeof output, "%s/ro/%%e.%%p.mtrace", dir);
    }
    mt_e2e_opts_t o = {.output = output, .capture_stdout = true, .capture_stderr = true};
    mt_e2e_run_t run;
    expect_one_line_and_no_change(&run, &o);
    cr_expect_eq(run.ntraces, 0);
    mt_e2e_run_free(&run);
    snprintf(output, sizeof output, "%s/ro", dir);
    chmod(output, 0700);
    mt_e2e_remove_tree(dir);
    free(dir);
}

Test(record, a_symlink_as_output_gives_one_line_and_is_never_followed, .timeout = 30)
{
    char *dir = mt_e2e_tempdir(), link_path[4096], victim[4096];
    cr_assert(dir);
    snprintf(victim, sizeof victim, "%s/victim", dir);
    write_text(victim, "not a trace\n");
    snprintf(link_path, sizeof link_path, "%s/link.mtrace", dir);
    cr_assert_eq(symlink(victim, link_path), 0);
    mt_e2e_opts_t o = {.dir = dir, .output = "link.mtrace", .capture_stdout = true, .capture_stderr = true};
    mt_e2e_run_t run;
    expect_one_line_and_no_change(&run, &o);
    char *text = read_or_fail(victim);
    cr_expect_str_eq(text, "not a trace\n", "the symlink's target was written through");
    free(text);
    mt_e2e_run_free(&run);
    mt_e2e_remove_tree(dir);
    free(dir);
}

/* ---- MEMTRACK_DEPTH ---- */

Test(record, a_bad_depth_gives_one_warning_and_the_default_depth, .timeout = 30)
{
    static const char *const bad[] = {"abc", "0", "257", "12x", ""};
    for (size_t i = 0; i < NCALLS(bad); i++) {
        char setting[64];
        snprintf(setting, sizeof setting, "MEMTRACK_DEPTH=%s", bad[i]);
        const char *env[] = {setting, NULL};
        mt_e2e_opts_t o = {.env = env, .capture_stdout = true, .capture_stderr = true};
        mt_e2e_run_t run;
        mt_e2e_trace_t tr;
        run_target(&run, &o, "deep_stack");
        cr_assert_eq(run.exit_code, 0);
        char *err = read_or_fail(run.stderr_path);
        cr_expect_eq(mt_e2e_count_lines(run.stderr_path), 1, "%s: expected one warning, got:\n%s",
                     setting, err);
        cr_expect(strstr(err, "MEMTRACK_DEPTH"), "%s: the warning does not name the variable: %s",
                  setting, err);
        free(err);
        open_only_trace(&run, &tr);
        cr_expect_eq(tr.info->depth, 64, "%s: depth %u, expected the default 64", setting, tr.info->depth);
        mt_event_t deep = the_alloc(&tr, MT_OP_MALLOC, 1901);
        cr_expect_geq(mt_e2e_stack_depth(&tr, &deep), 12);
        mt_e2e_trace_close(&tr);
        mt_e2e_run_free(&run);
    }
}

Test(record, depth_three_records_three_frames_at_most, .timeout = 30)
{
    const char *env[] = {"MEMTRACK_DEPTH=3", NULL};
    mt_e2e_opts_t o = {.env = env, .capture_stdout = true, .capture_stderr = true};
    mt_e2e_run_t run;
    mt_e2e_trace_t tr;
    run_target(&run, &o, "deep_stack");
    cr_assert_eq(run.exit_code, 0);
    cr_expect_eq(mt_e2e_count_lines(run.stderr_path), 0);
    open_only_trace(&run, &tr);
    cr_expect_eq(tr.info->depth, 3);
    for (size_t i = 0; i < tr.info->nstacks; i++) {
        const mt_stack_t *s = mt__trace_stack(tr.t, (uint32_t)i);
        cr_assert(s, "stack %zu missing", i);
        cr_expect_leq(s->depth, 3, "stack %zu has %u frames", i, s->depth);
    }
    mt_event_t deep = the_alloc(&tr, MT_OP_MALLOC, 1901);
    cr_expect_eq(mt_e2e_stack_depth(&tr, &deep), 3);
    for (uint32_t f = 0; f < 3; f++)
        cr_expect(mt_e2e_basename_is(mt_e2e_frame_module(&tr, &deep, f), "deep_stack"),
                  "frame %u is not in deep_stack", f);
    mt_e2e_trace_close(&tr);
    mt_e2e_run_free(&run);
}

/* Counts the TIME records of the trace at path: all of them, and those at
 * seq, the last of which has time *at_seq_ns. */
static void count_time_records(const char *path, uint64_t seq, unsigned *times, unsigned *at_seq,
                               uint64_t *at_seq_ns)
{
    mt_record_iter_t *it;
    mt_record_t rec;
    char err[512];
    int r;
    *times = *at_seq = 0;
    *at_seq_ns = 0;
    cr_assert_eq(mt__record_open(path, &it, err, sizeof err), 0, "%s", err);
    while ((r = mt__record_next(it, &rec)) > 0) {
        if (rec.type != MT_REC_TIME)
            continue;
        ++*times;
        if (rec.u.time.seq == seq) {
            ++*at_seq;
            *at_seq_ns = rec.u.time.time_ns;
        }
    }
    cr_assert_eq(r, 0, "%s", mt__record_error(it));
    mt__record_close(it);
}

Test(record, a_quiet_spell_costs_no_time_records_and_keeps_the_time_of_what_follows, .timeout = 30)
{
    mt_e2e_opts_t o = {.capture_stdout = true};
    mt_e2e_run_t run;
    mt_e2e_trace_t tr;
    run_target(&run, &o, "quiet_spell");
    cr_assert_eq(run.exit_code, 0);
    open_only_trace(&run, &tr);
    mt_event_t after = the_alloc(&tr, MT_OP_MALLOC, 2102);
    /* The writer's rounds come every 10 ms: 40 in the spell. The seq of
     * malloc(2102) is the counter's value all through it: a TIME record
     * says so right after free(2101), and the last round of the spell
     * says it again, just before the records of malloc(2102). */
    unsigned times, at_spell;
    uint64_t last_spell_ns;
    count_time_records(run.traces[0], after.seq, &times, &at_spell, &last_spell_ns);
    cr_expect_leq(times, 8, "%u TIME records for a program quiet for 400 ms", times);
    cr_expect_eq(at_spell, 2, "%u TIME records at seq %llu", at_spell, (unsigned long long)after.seq);
    /* So malloc(2102) is placed after the spell, not spread over it. */
    cr_expect_eq(mt__trace_time_of(tr.t, after.seq), last_spell_ns);
    mt_e2e_trace_close(&tr);
    mt_e2e_run_free(&run);
}

Test(record, a_program_killed_while_quiet_still_shows_how_long_it_ran, .timeout = 30)
{
    /* Killed 1.5 s into a quiet spell: no END record, no event after the
     * spell to carry a held-back TIME. Once a second of quiet the writer
     * writes it anyway, so the trace lasts at least that second. */
    mt_e2e_opts_t o = {.capture_stdout = true};
    mt_e2e_run_t run;
    mt_e2e_trace_t tr;
    int rc = mt_e2e_run_target(&run, &o, "quiet_spell", "1500", "kill", NULL);
    cr_assert_eq(rc, 0, "cannot run quiet_spell: %s", strerror(-rc));
    cr_assert_eq(run.signal, SIGKILL);
    cr_assert_eq(run.ntraces, 1);
    rc = mt_e2e_trace_open(&tr, run.traces[0]);
    cr_assert_eq(rc, 0, "cannot read %s: %s", run.traces[0], tr.err);
    cr_expect_not(tr.info->complete, "a killed program wrote an END record");
    mt_event_t before = the_alloc(&tr, MT_OP_MALLOC, 2101), freed;
    cr_assert_eq(mt_e2e_find_free(&tr, before.ptr, before.seq, &freed), 1);
    unsigned times, at_spell;
    uint64_t last_spell_ns;
    count_time_records(run.traces[0], freed.seq + 1, &times, &at_spell, &last_spell_ns);
    cr_expect_geq(at_spell, 2, "%u TIME records at seq %llu", at_spell, (unsigned long long)(freed.seq + 1));
    cr_expect_eq(tr.info->duration_ns, last_spell_ns);
    cr_expect_geq(tr.info->duration_ns, 1000000000ull, "duration %llu ns",
                  (unsigned long long)tr.info->duration_ns);
    mt_e2e_trace_close(&tr);
    mt_e2e_run_free(&run);
}
