/* quick_exit.c - allocates N blocks, then leaves through _exit or _Exit, skipping atexit.
 *
 * Usage: quick_exit _exit|_Exit N. By construction: exactly N MALLOC 1601
 * events, none freed, then _exit(3) or _Exit(4): no destructor of libmemtrack.so
 * runs, so the trace is complete only if the library flushes in its _exit
 * hook. Prints one line (flushed) first; exits 2 on bad usage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc != 3)
        return 2;
    int n = atoi(argv[2]);
    for (int i = 0; i < n; i++)
        (void)malloc(1601);
    printf("quick_exit: %d blocks allocated\n", n);
    fflush(stdout);
    if (!strcmp(argv[1], "_exit"))
        _exit(3);
    if (!strcmp(argv[1], "_Exit"))
        _Exit(4);
    return 2;
}
