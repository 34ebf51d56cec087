/* sample_known.c - 100000 allocations of known sizes, for the sampling tests.
 *
 * Sizes cycle through 16, 64, 256 and 1024 bytes (25000 of each, 34,000,000
 * bytes in all). Every tenth block is kept until exit (10,000 blocks,
 * 3,400,000 bytes leaked); the others are freed at once. Nothing is printed,
 * so the C library allocates next to nothing of its own.
 */
#include <stdlib.h>

int main(void)
{
    static const size_t sizes[] = {16, 64, 256, 1024};
    static void *kept[10000];
    size_t nkept = 0;
    for (int i = 0; i < 100000; i++) {
        char *p = malloc(sizes[i % 4]);
        if (!p)
            return 1;
        p[0] = (char)i;
        if (i % 10 == 0)
            kept[nkept++] = p;
        else
            free(p);
    }
    return kept[0] == NULL;
}
