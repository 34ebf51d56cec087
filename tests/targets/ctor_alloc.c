/* ctor_alloc.c - frees in main a block that a linked library's constructor allocated.
 *
 * Linked with libmtctor.so (next to this executable), whose constructor
 * allocates 4321 bytes before libmemtrack.so's constructor runs. By
 * construction: one MALLOC 4321 (stack in mtctor_init) and its FREE, so
 * no unknown free; then one MALLOC 4322, freed. Prints one line, exits 0.
 */
#include <stdio.h>
#include <stdlib.h>

extern void *mtctor_block;

int main(void)
{
    int ok = mtctor_block != NULL;
    free(mtctor_block);
    free(malloc(4322));
    printf("ctor_alloc: %s\n", ok ? "constructor block freed" : "no constructor block");
    return ok ? 0 : 1;
}
