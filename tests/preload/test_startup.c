/* test_startup.c - recording covers allocations made before libmemtrack.so's own constructor.
 *
 * The loader runs the constructors of a program's libraries before those of
 * LD_PRELOAD libraries. A block such a constructor allocates (libstdc++'s
 * exception pool, libjq's setup) must be in the trace like any other, so
 * that its free later is matched and not an unknown free.
 */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "e2e.h"

Test(startup, a_block_allocated_by_a_library_constructor_is_recorded_and_its_free_matched, .timeout = 30)
{
    mt_e2e_opts_t o = {.capture_stdout = true, .capture_stderr = true};
    mt_e2e_run_t run;
    cr_assert_eq(mt_e2e_run_target(&run, &o, "ctor_alloc", NULL), 0);
    cr_assert_eq(run.exit_code, 0);
    cr_expect_eq(mt_e2e_count_lines(run.stderr_path), 0, "memtrack said something");
    cr_assert_eq(run.ntraces, 1);
    mt_e2e_trace_t tr;
    cr_assert_eq(mt_e2e_trace_open(&tr, run.traces[0]), 0, "%s", tr.err);
    cr_expect_eq(tr.tally.error, 0);
    cr_expect_eq(mt_e2e_count(&tr.tally, MT_OP_MALLOC, 4321), 1, "the constructor's block is missing");
    const mt_e2e_size_count_t *e = mt_e2e_size_entry(&tr.tally, MT_OP_MALLOC, 4321);
    cr_expect(e && e->freed == 1, "the constructor's block was not freed in the trace");
    cr_expect_eq(mt_e2e_count(&tr.tally, MT_OP_MALLOC, 4322), 1);
    cr_expect_eq(tr.tally.unknown_frees, 0, "a free of a block the trace never saw allocated");
    mt_event_t ev;
    cr_assert_eq(mt_e2e_find(&tr, MT_OP_MALLOC, 4321, 0, 0, &ev), 1);
    const char *module = mt_e2e_frame_module(&tr, &ev, 0);
    cr_expect(module && mt_e2e_basename_is(module, "libmtctor.so"), "first frame in %s", module ? module : "?");
    mt_e2e_trace_close(&tr);
    mt_e2e_run_free(&run);
}
