/* fd_closer.c - a fork child that closes every inherited descriptor, opens a file, then execs.
 *
 * Usage: fd_closer FILE. Like a test runner's sandbox, a daemon or Python's
 * subprocess with close_fds, the child closes every descriptor from 3 up
 * (the trace file of libmemtrack.so among them), then opens FILE (which gets
 * the lowest free number, the one the trace had), writes one line to it,
 * allocates and frees 2202 bytes, and execs this program as "fd_closer
 * execd", which allocates and frees 2203 bytes and exits 0. The parent waits
 * and exits with the child's status. By construction: FILE holds exactly
 * "written by the program\n"; the fork child's trace has one MALLOC 2202,
 * the exec'ed image's one MALLOC 2203. Prints nothing; exits 2 on a failed call.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    static const char line[] = "written by the program\n";
    char self[4096];
    if (argc == 2 && !strcmp(argv[1], "execd")) {
        free(malloc(2203));
        return 0;
    }
    if (argc != 2)
        return 2;
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        return 2;
    self[n] = '\0';
    pid_t pid = fork();
    if (pid < 0)
        return 2;
    if (pid == 0) {
        for (int fd = 3; fd < 1024; fd++)
            close(fd);
        int fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd < 0 || write(fd, line, sizeof line - 1) != (ssize_t)(sizeof line - 1))
            _exit(2);
        free(malloc(2202));
        char *args[] = {self, "execd", NULL};
        execv(self, args);
        _exit(2);
    }
    int status;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
        return 2;
    return WEXITSTATUS(status);
}
