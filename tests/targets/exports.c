/* exports.c - known allocations and snapshots for the export tests (flamegraph, massif, timeline, html).
 *
 * keep_table() holds 1,000 bytes from the start until after the "work"
 * snapshot; scratch() allocates and frees 200 bytes three times
 * (temporaries); leak_node() leaks 64 bytes four times. The live heap is
 * 1,000 bytes at "setup", peaks at 1,256 bytes in 5 blocks right before
 * "work", and 256 bytes (the leaks) remain at "done". No stdio: nothing
 * else allocates.
 */
#include <stdlib.h>

#include <memtrack.h>

static void *keep_table(void)
{
    return malloc(1000);
}

static void scratch(void)
{
    char *p = malloc(200);
    p[0] = 1;
    free(p);
}

static void *leak_node(void)
{
    return malloc(64);
}

int main(void)
{
    void *table = keep_table();
    MEMTRACK_SNAPSHOT("setup");
    for (int i = 0; i < 3; i++)
        scratch();
    for (int i = 0; i < 4; i++)
        leak_node(); /* dropped: a leak */
    MEMTRACK_SNAPSHOT("work");
    free(table);
    MEMTRACK_SNAPSHOT("done");
    return 0;
}
