/* test_unwind.c - end-to-end tests of the default stack unwinder.
 *
 * libmemtrack.so walks stacks with its own cached CFI unwinder and falls
 * back to libunwind for what it cannot model. These tests record the same
 * targets once with the default unwinder and once with MEMTRACK_UNWIND=
 * libunwind, and check that both produced exactly the same set of stacks,
 * each frame written as module name + offset from the module's load bias (so
 * that address-space randomization does not matter): deep recursions, C++
 * new, a dlopen'ed and dlclosed plugin, many threads, and stacks whose
 * outer part the unwinder takes over from its previous walk. Other tests
 * run targets under the unwinder's verify build (build/verify/, preload/
 * unwind.c's MT_UNWIND_VERIFY), which compares every walk with libunwind's
 * frame by frame: in order, per event, at several recorded depths. One
 * runs a program that switches stacks and unmaps one the unwinder walked.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "e2e.h"

/* The stacks of every allocation of one trace, as sorted text lines. */
typedef struct stack_lines {
    char **lines;
    size_t n;
} stack_lines_t;

static int by_text(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *describe(const mt_trace_t *t, const mt_stack_t *s)
{
    size_t cap = 64 + (size_t)s->depth * 96, len = 0;
    char *line = malloc(cap);
    cr_assert(line);
    line[0] = '\0';
    for (uint32_t i = 0; i < s->depth; i++) {
        const mt_module_t *m = mt__trace_module_for(t, s->frames[i], s->epoch);
        const char *name = m ? strrchr(m->path, '/') : NULL;
        name = name ? name + 1 : (m ? m->path : "?");
        len += (size_t)snprintf(line + len, cap - len, "%s+%llx ", name,
                                (unsigned long long)(s->frames[i] - (m ? m->base : 0)));
        cr_assert_lt(len, cap);
    }
    return line;
}

static stack_lines_t record(const char *target, const char *unwinder)
{
    const char *env[] = {unwinder, NULL};
    mt_e2e_opts_t o = {.capture_stdout = true, .capture_stderr = true, .env = env};
    mt_e2e_run_t run;
    mt_e2e_trace_t tr;
    stack_lines_t out = {0};
    int rc = mt_e2e_run_target(&run, &o, target, NULL);
    cr_assert_eq(rc, 0, "cannot run %s", target);
    cr_assert_eq(run.exit_code, 0, "%s failed under %s", target, unwinder);
    cr_assert_eq(run.ntraces, 1, "%s: %zu traces", target, run.ntraces);
    rc = mt_e2e_trace_open(&tr, run.traces[0]);
    cr_assert_eq(rc, 0, "cannot read %s: %s", run.traces[0], tr.err);
    cr_assert_eq(tr.info->dropped, 0);
    out.lines = calloc(tr.info->nstacks + 1, sizeof *out.lines);
    cr_assert(out.lines);
    for (size_t i = 0; i < tr.info->nstacks; i++) {
        const mt_stack_t *s = mt__trace_stack(tr.t, (uint32_t)i);
        cr_assert(s);
        out.lines[out.n++] = describe(tr.t, s);
    }
    qsort(out.lines, out.n, sizeof *out.lines, by_text);
    /* Stacks are distinct per trace; two different raw stacks can only
     * describe alike when a module was reloaded elsewhere: keep one. */
    size_t k = 0;
    for (size_t i = 0; i < out.n; i++) {
        if (k && !strcmp(out.lines[k - 1], out.lines[i]))
            free(out.lines[i]);
        else
            out.lines[k++] = out.lines[i];
    }
    out.n = k;
    mt_e2e_trace_close(&tr);
    mt_e2e_run_free(&run);
    return out;
}

static void expect_same_stacks(const char *target)
{
    stack_lines_t cfi = record(target, "MEMTRACK_UNWIND=cfi");
    stack_lines_t unw = record(target, "MEMTRACK_UNWIND=libunwind");
    cr_expect_gt(cfi.n, 0, "%s: no stacks", target);
    cr_expect_eq(cfi.n, unw.n, "%s: %zu distinct stacks with cfi, %zu with libunwind", target, cfi.n, unw.n);
    for (size_t i = 0; i < cfi.n && i < unw.n; i++)
        cr_expect_str_eq(cfi.lines[i], unw.lines[i], "%s: stack %zu differs", target, i);
    for (size_t i = 0; i < cfi.n; i++)
        free(cfi.lines[i]);
    for (size_t i = 0; i < unw.n; i++)
        free(unw.lines[i]);
    free(cfi.lines);
    free(unw.lines);
}

Test(unwind, a_deep_recursion_has_the_same_stacks_as_with_libunwind, .timeout = 30)
{
    expect_same_stacks("deep_stack");
}

Test(unwind, cxx_new_and_delete_have_the_same_stacks_as_with_libunwind, .timeout = 30)
{
    expect_same_stacks("record_cxx");
}

Test(unwind, a_dlclosed_plugin_has_the_same_stacks_as_with_libunwind, .timeout = 30)
{
    expect_same_stacks("plugin_host");
}

Test(unwind, every_c_entry_point_has_the_same_stacks_as_with_libunwind, .timeout = 30)
{
    expect_same_stacks("record_entry");
}

Test(unwind, many_threads_have_the_same_stacks_as_with_libunwind, .timeout = 30)
{
    expect_same_stacks("thread_churn");
}

/* Deep recursions with changing inner frames, entered from two call sites
 * and deeper than the recorded depth: the walks that reuse the previous
 * walk's outer frames give exactly libunwind's stacks. */
Test(unwind, reused_outer_frames_give_the_same_stacks_as_with_libunwind, .timeout = 30)
{
    expect_same_stacks("reuse_stack");
}

/* ---- every walk against libunwind (the verify build) ---- */

typedef struct verify_counts {
    unsigned long long walks, same_place, in_place, known, unlike;
} verify_counts_t;

/* Runs target (with up to two arguments) preloading the verify build and
 * returns the counts it printed at exit. */
static verify_counts_t verify_run(const char *target, const char *depth, const char *arg1, const char *arg2)
{
    char lib[4200];
    snprintf(lib, sizeof lib, "LD_PRELOAD=%s/verify/libmemtrack.so", mt_e2e_build_dir());
    const char *env[] = {lib, depth, NULL};
    mt_e2e_opts_t o = {.capture_stdout = true, .capture_stderr = true, .env = env, .timeout_s = 120};
    mt_e2e_run_t run;
    cr_assert_eq(mt_e2e_run_target(&run, &o, target, arg1, arg2, NULL), 0, "cannot run %s", target);
    char *err = mt_e2e_read_file(run.stderr_path, NULL);
    cr_assert(err, "%s: no stderr", target);
    cr_assert_eq(run.exit_code, 0, "%s failed with %s: %s", target, depth, err);
    verify_counts_t c = {0};
    const char *line = strstr(err, " walks, ");
    while (line > err && line[-1] != '\n')
        line--;
    cr_assert(line && sscanf(line, "memtrack: unwind verify: %llu walks, %llu same-place joins, %llu in place, %llu known, %llu unlike",
                             &c.walks, &c.same_place, &c.in_place, &c.known, &c.unlike) == 5,
              "%s: no counts from the verify build: %s", target, err);
    cr_expect_eq(c.unlike, 0, "%s with %s: walks unlike libunwind's:\n%.3000s", target, depth, err);
    free(err);
    mt_e2e_run_free(&run);
    return c;
}

/* Frames with and without frame pointers, alloca, one function calling from
 * several sites with the same rule, recursion across the recorded depth,
 * three threads: every walk, at depths from 3 to 256, is libunwind's, and
 * the shortcuts the walk takes (a remembered walk's outer part handed over
 * in place, a join at a frame at the remembered place, a whole walk known
 * from an earlier one) are all taken. */
Test(unwind, every_walk_through_mixed_frames_is_libunwinds, .timeout = 240)
{
    const char *depths[] = {"MEMTRACK_DEPTH=3", "MEMTRACK_DEPTH=20", "MEMTRACK_DEPTH=64", "MEMTRACK_DEPTH=256"};
    for (size_t i = 0; i < sizeof depths / sizeof depths[0]; i++) {
        verify_counts_t c = verify_run("unwind_stress", depths[i], "2", "20000");
        cr_expect_geq(c.walks, 60000, "%s: %llu walks checked of 60,000 allocations", depths[i], c.walks);
        cr_expect_gt(c.same_place, 0, "%s: no join at a frame at the remembered place", depths[i]);
        cr_expect_gt(c.in_place, 0, "%s: no stack handed over in place", depths[i]);
        cr_expect_gt(c.known, 0, "%s: no walk known from an earlier one", depths[i]);
    }
}

/* A stack the program switched to, inside the main thread's stack bounds,
 * unmapped after a walk the unwinder kept, and another mapped where it
 * was: checking the kept walk's words must stop at the first that changed
 * instead of reading into the unmapped stack. With "walk" the remembered
 * walk is the unmapped stack's, without it a known walk is. */
Test(unwind, a_walk_on_a_stack_unmapped_since_is_checked_without_reading_it, .timeout = 60)
{
    const char *variants[] = {NULL, "walk"};
    const char *depths[] = {"1", "3"};
    for (size_t i = 0; i < 2; i++) {
        for (size_t j = 0; j < 2; j++) {
            mt_e2e_opts_t o = {.capture_stdout = true, .capture_stderr = true, .timeout_s = 20};
            mt_e2e_run_t run;
            cr_assert_eq(mt_e2e_run_target(&run, &o, "switched_stacks", depths[i], variants[j], NULL), 0);
            char *out = mt_e2e_read_file(run.stdout_path, NULL), *err = mt_e2e_read_file(run.stderr_path, NULL);
            cr_expect(run.exit_code == 0 && out && strstr(out, "switched_stacks: done"),
                      "switched_stacks %s %s: exit %d (signal %d): %s", depths[i], variants[j] ? variants[j] : "",
                      run.exit_code, run.signal, err ? err : "");
            free(out);
            free(err);
            mt_e2e_run_free(&run);
        }
    }
}

/* The targets the stack-set tests above record, walk by walk. */
Test(unwind, every_walk_of_the_recording_targets_is_libunwinds, .timeout = 240)
{
    const char *targets[] = {"deep_stack", "reuse_stack", "record_cxx", "record_entry", "plugin_host", "thread_churn"};
    for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++) {
        verify_counts_t c = verify_run(targets[i], "MEMTRACK_DEPTH=64", NULL, NULL);
        cr_expect_gt(c.walks, 0, "%s: no walk checked", targets[i]);
    }
}
