/* fuzz_budget.c - libFuzzer target: any bytes as a budget file, through the budget parser.
 *
 * mt__budget_parse takes a length and no NUL, so the input is passed as it
 * comes; a parse that succeeds is freed, one that fails must leave a
 * message. The size parser (mt__budget_parse_size) gets the input's first
 * line as a string as well. Build and run it with `make fuzz`; seeds are in
 * tests/fuzz/seeds/fuzz_budget/.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "budget.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mt_budget_set_t set;
    char err[256] = "", line[128];
    uint64_t bytes;
    size_t n = 0;
    int rc = mt__budget_parse((const char *)data, size, &set, err, sizeof err);

    if (rc == 0)
        mt__budget_set_free(&set);
    else if (rc == -EINVAL && !err[0])
        abort(); /* every failure must say what is wrong */
    while (n < size && n < sizeof line - 1 && data[n] != '\n' && data[n] != '\0') {
        line[n] = (char)data[n];
        n++;
    }
    line[n] = '\0';
    mt__budget_parse_size(line, &bytes, err, sizeof err);
    return 0;
}
