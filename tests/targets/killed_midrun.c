/* killed_midrun.c - allocates N blocks of 777 bytes, then kills itself with SIGKILL.
 *
 * Usage: killed_midrun [N]   (default 20000)
 *
 * By construction: N MALLOC 777 events, none freed, then the process dies of
 * SIGKILL, which no handler can catch, so nothing flushes the trace at the
 * end: it holds what the writer thread wrote in its rounds so far. Prints
 * one line (flushed) before dying.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static void *blocks[1000000];

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 20000;
    if (n < 0 || n > 1000000)
        return 2;
    for (int i = 0; i < n; i++)
        blocks[i] = malloc(777);
    printf("killed_midrun: %d blocks allocated, killing myself\n", n);
    fflush(stdout);
    kill(getpid(), SIGKILL);
    return 0;
}
