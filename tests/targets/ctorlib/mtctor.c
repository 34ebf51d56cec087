/* mtctor.c - libmtctor.so, a shared library whose constructor allocates, as libstdc++'s does.
 *
 * The dynamic loader runs the constructors of a program's libraries before
 * those of LD_PRELOAD libraries, so this constructor runs before
 * libmemtrack.so's. It allocates one block of 4321 bytes and keeps it for
 * the program (mtctor_block); ctor_alloc frees it from main.
 */
#include <stdlib.h>
#include <string.h>

void *mtctor_block;

__attribute__((constructor)) static void mtctor_init(void)
{
    mtctor_block = malloc(4321);
    if (mtctor_block)
        memset(mtctor_block, 'c', 4321);
}
