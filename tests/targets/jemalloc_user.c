/* jemalloc_user.c - a program linked with jemalloc, using malloc/free and the *allocx API.
 *
 * By construction (the block of 1704 bytes sits in jemalloc's 1792-byte size
 * class, so growing it to 1750 in place always succeeds):
 *
 *   malloc(1701), free                MALLOC 1701, FREE
 *   mallocx(1702, 0), dallocx         MALLOCX 1702, DALLOCX
 *   mallocx(1703, 0)                  MALLOCX 1703
 *   rallocx(p, 1704, 0)               RALLOCX_FREE of the 1703 block, RALLOCX 1704
 *   xallocx(p, 1750, 0, 0)            XALLOCX_FREE of the block, XALLOCX 1750
 *   sdallocx(p, 1750, 0)              SDALLOCX
 *
 * Prints one line and exits 0, or 1 when a call fails.
 */
#include <jemalloc/jemalloc.h>
#include <stdio.h>

int main(void)
{
    int ok = 1;
    void *p = malloc(1701);
    ok &= p != NULL;
    free(p);

    p = mallocx(1702, 0);
    ok &= p != NULL;
    dallocx(p, 0);

    p = mallocx(1703, 0);
    ok &= p != NULL;
    p = rallocx(p, 1704, 0);
    ok &= p != NULL;
    size_t got = xallocx(p, 1750, 0, 0);
    ok &= got >= 1750;
    sdallocx(p, 1750, 0);

    printf("jemalloc_user: %s\n", ok ? "all calls behaved" : "FAILED");
    return ok ? 0 : 1;
}
