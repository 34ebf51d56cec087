/* fork_leak.c - a fork child that frees its parent's block and leaks one of its own.
 *
 * The parent allocates 1401 bytes and forks. The child frees that block (a
 * free of memory it never allocated: unknown to its trace, never an error),
 * leaks 1402 bytes in leak_in_child() and exits 0. The parent waits, frees
 * its block and exits with the child's status. By construction: the child's
 * trace has 1 unknown free and 1402 bytes leaked in 1 block, charged to
 * leak_in_child; the parent's trace leaks nothing of its own.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void *leak_in_child(void)
{
    char *p = malloc(1402);
    if (p)
        memset(p, 'c', 1402);
    return p;
}

int main(void)
{
    char *keep = malloc(1401);
    if (!keep)
        return 2;
    memset(keep, 'p', 1401);
    pid_t pid = fork();
    if (pid < 0)
        return 2;
    if (pid == 0) {
        free(keep);
        leak_in_child();
        exit(0);
    }
    int status;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
        return 2;
    free(keep);
    return WEXITSTATUS(status);
}
