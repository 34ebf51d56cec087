/* fd_reuse.c - points descriptors 3 to 63 at a file of its own, as a shell's `exec 5>FILE` does.
 *
 * Usage: fd_reuse FILE. Opens FILE and dup2()s it onto every descriptor
 * from 3 to 63 (whatever was open there is replaced, the way a shell
 * script's redirections replace descriptors it did not open itself), writes
 * one line through descriptor 63, then allocates 100 blocks of 2201 bytes
 * and frees them. By construction: FILE holds exactly
 * "written by the program\n", and the trace has 100 MALLOC 2201, each freed.
 * Prints nothing; exits 0, or 2 when a call fails.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    static const char line[] = "written by the program\n";
    static void *blocks[100];
    if (argc != 2)
        return 2;
    int fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        return 2;
    for (int n = 3; n < 64; n++)
        if (n != fd && dup2(fd, n) != n)
            return 2;
    if (write(63, line, sizeof line - 1) != (ssize_t)(sizeof line - 1))
        return 2;
    for (int i = 0; i < 100; i++)
        blocks[i] = malloc(2201);
    for (int i = 0; i < 100; i++)
        free(blocks[i]);
    return 0;
}
