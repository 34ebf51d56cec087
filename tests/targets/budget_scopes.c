/* budget_scopes.c - a program whose budget numbers are known by construction, for memtrack check.
 *
 * parse_chunk() holds three 1,000-byte blocks at once and frees them
 * (its own peak: 3,000 bytes; only the last block is temporary), twice.
 * leak_names() leaks ten 64-byte blocks (640 bytes). Between the snapshots
 * "test_load:begin" and "test_load:end", load_fixture() keeps 5,000 bytes
 * (retained) and uses 2,000 more for a moment (peak within: 7,000). Three
 * batches, each between two "batch" snapshots, keep (i + 1) * 100 bytes and
 * make one 50-byte temporary. Everything but the names is freed at the end.
 * With an argument "fail" the program exits 3 after doing all that.
 */
#include <stdlib.h>
#include <string.h>

#include <memtrack.h>

static void *kept[8];
static void *fixture;

static void parse_chunk(void)
{
    char *a = malloc(1000), *b = malloc(1000), *c = malloc(1000);
    memset(a, 1, 1000);
    memset(b, 2, 1000);
    memset(c, 3, 1000);
    free(a);
    free(b);
    free(c);
}

static void leak_names(void)
{
    for (int i = 0; i < 10; i++) {
        char *name = malloc(64); /* LEAK_LINE */
        name[0] = (char)i;
    }
}

static void load_fixture(void)
{
    fixture = malloc(5000);
    char *scratch = malloc(2000);
    memset(scratch, 0, 2000);
    free(scratch);
}

static void run_batch(int i)
{
    kept[i] = malloc((size_t)(i + 1) * 100);
    char *tmp = malloc(50);
    tmp[0] = 1;
    free(tmp);
}

int main(int argc, char **argv)
{
    parse_chunk();
    parse_chunk();
    leak_names();
    MEMTRACK_SNAPSHOT("test_load:begin");
    load_fixture();
    MEMTRACK_SNAPSHOT("test_load:end");
    MEMTRACK_SNAPSHOT("batch");
    for (int i = 0; i < 3; i++) {
        run_batch(i);
        MEMTRACK_SNAPSHOT("batch");
    }
    free(fixture);
    for (int i = 0; i < 3; i++)
        free(kept[i]);
    return argc > 1 && !strcmp(argv[1], "fail") ? 3 : 0;
}
