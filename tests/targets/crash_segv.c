/* crash_segv.c - allocates N blocks, then dies of SIGSEGV by writing through NULL.
 *
 * By construction: exactly N (argv[1], default 100) MALLOC 1501 events, none
 * freed, every one before the crash; then the process is killed by SIGSEGV,
 * with or without memtrack. Prints one line (flushed) before crashing.
 */
#include <stdio.h>
#include <stdlib.h>

static void *blocks[100000];

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 100;
    if (n < 0 || n > 100000)
        return 2;
    for (int i = 0; i < n; i++)
        blocks[i] = malloc(1501);
    printf("crash_segv: %d blocks allocated, crashing\n", n);
    fflush(stdout);
    *(volatile int *)NULL = 1;
    return 0;
}
