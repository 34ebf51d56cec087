/* fuzz_trace_reader.c - libFuzzer target: any bytes as a trace file, through the reader, replay and dump.
 *
 * Each input is written to a memfd and opened by its /proc/self/fd path, the
 * way memtrack opens a trace file, then run through tests/common/trace_check.c:
 * the first pass, two full replays of the merged stream, the trace's queries,
 * and the raw record iterator of `memtrack dump`. Symbolization is left out:
 * it reads the files a trace names, not the trace. Build and run it with
 * `make fuzz`; seeds are real traces recorded from tests/targets.
 */
#include <stddef.h>
#include <stdint.h>

#include "trace_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mt_tc_result_t res;

    mt_tc_exercise(mt_tc_memfile(data, size), &res);
    return 0;
}
