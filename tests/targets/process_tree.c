/* process_tree.c - fork, fork + exec, posix_spawn and system(), one mode per run.
 *
 *   process_tree fork     parent: p = malloc(1401); fork. Child: free(p) (a block of
 *                         the parent: unknown in the child's own trace), malloc(1402)
 *                         and free it, exit(0). Parent: waits, frees p, exits 0.
 *                         Parent trace: MALLOC 1401 + its FREE; child trace: FREE of
 *                         p, MALLOC 1402 + its FREE. Prints p's address first.
 *   process_tree exec     parent forks; the child allocates malloc(1403) (kept) and
 *                         execs this program as "process_tree execd", which allocates
 *                         malloc(1404) (kept) and exits 7. The parent exits with the
 *                         child's status (7). Traces: parent, child before the exec
 *                         (MALLOC 1403), the exec'ed image (MALLOC 1404), the last two
 *                         with the same pid.
 *   process_tree spawn    posix_spawn of "process_tree child 5" (which exits 5) and
 *                         system("exit 3"); prints both statuses and exits 0 when they
 *                         are 5 and 3. Three processes: this one, the spawned child,
 *                         and the shell.
 *   process_tree child N  malloc(1405) and free it, exit N.
 *
 * Every mode but child prints one line on stdout. Exits 2 on bad usage or a failed call.
 */
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static int self_path(char *buf, size_t cap)
{
    ssize_t n = readlink("/proc/self/exe", buf, cap - 1);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    return 0;
}

static int run_fork(void)
{
    char *p = malloc(1401);
    printf("process_tree: block at %p\n", (void *)p); /* traces name it by seq, not address */
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0)
        return 2;
    if (pid == 0) {
        free(p);
        char *q = malloc(1402);
        free(q);
        exit(0);
    }
    int status;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return 2;
    free(p);
    printf("process_tree: fork child exited 0\n");
    return 0;
}

static int run_exec(void)
{
    char self[4096];
    if (self_path(self, sizeof self) < 0)
        return 2;
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0)
        return 2;
    if (pid == 0) {
        char *kept = malloc(1403);
        (void)kept;
        char *argv[] = {self, "execd", NULL};
        execv(self, argv);
        _exit(2);
    }
    int status;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
        return 2;
    printf("process_tree: exec child exited %d\n", WEXITSTATUS(status));
    return WEXITSTATUS(status);
}

static int run_spawn(void)
{
    char self[4096];
    if (self_path(self, sizeof self) < 0)
        return 2;
    char *argv[] = {self, "child", "5", NULL};
    pid_t pid;
    int status, spawned = -1, shell = -1;
    if (posix_spawn(&pid, self, NULL, NULL, argv, environ) != 0)
        return 2;
    if (waitpid(pid, &status, 0) == pid && WIFEXITED(status))
        spawned = WEXITSTATUS(status);
    status = system("exit 3");
    if (status != -1 && WIFEXITED(status))
        shell = WEXITSTATUS(status);
    printf("process_tree: spawned child exited %d, shell exited %d\n", spawned, shell);
    return spawned == 5 && shell == 3 ? 0 : 2;
}

int main(int argc, char **argv)
{
    if (argc == 2 && !strcmp(argv[1], "fork"))
        return run_fork();
    if (argc == 2 && !strcmp(argv[1], "exec"))
        return run_exec();
    if (argc == 2 && !strcmp(argv[1], "execd")) {
        char *kept = malloc(1404);
        (void)kept;
        printf("process_tree: exec'ed image ran\n");
        return 7;
    }
    if (argc == 2 && !strcmp(argv[1], "spawn"))
        return run_spawn();
    if (argc == 3 && !strcmp(argv[1], "child")) {
        char *q = malloc(1405);
        free(q);
        return atoi(argv[2]);
    }
    fprintf(stderr, "usage: process_tree fork|exec|spawn|child N\n");
    return 2;
}
