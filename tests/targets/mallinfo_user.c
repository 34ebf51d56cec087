/* mallinfo_user.c - checks that glibc's mallinfo2() sees the program's allocations.
 *
 * Allocates 100 blocks of 1801 bytes (kept until the end) and compares
 * mallinfo2().uordblks before and after: it must grow by at least
 * 100 * 1801 bytes. Prints the growth check and exits 0 when it holds, 1 when not.
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>

int main(void)
{
    static void *blocks[100];
    struct mallinfo2 before = mallinfo2();
    for (int i = 0; i < 100; i++)
        blocks[i] = malloc(1801);
    struct mallinfo2 after = mallinfo2();
    int ok = after.uordblks >= before.uordblks + 100 * 1801;
    printf("mallinfo_user: in-use bytes %s by at least 180100\n", ok ? "grew" : "did NOT grow");
    for (int i = 0; i < 100; i++)
        free(blocks[i]);
    return ok ? 0 : 1;
}
