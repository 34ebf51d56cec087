/* record_entry.c - calls every C allocation entry point once, each with its own size.
 *
 * By construction, one event per line below (sizes chosen so that nothing
 * in libc allocates them), every call made directly from this executable:
 *
 *   malloc(1001)                     MALLOC 1001, freed by free       (FREE)
 *   calloc(1, 1002)                  CALLOC 1002, freed by free       (FREE)
 *   realloc(NULL, 1003)              REALLOC 1003 (no REALLOC_FREE: no old block)
 *   realloc(p, 1004)                 REALLOC_FREE of the 1003 block, REALLOC 1004
 *   realloc(p, 0)                    REALLOC_FREE of the 1004 block, nothing allocated
 *   reallocarray(NULL, 5, 201)       REALLOC 1005
 *   reallocarray(p, 2, 503)          REALLOC_FREE of the 1005 block, REALLOC 1006, freed by free
 *   posix_memalign(&p, 64, 1007)     POSIX_MEMALIGN 1007, freed by free
 *   aligned_alloc(64, 1008)          ALIGNED_ALLOC 1008, freed by free
 *   memalign(64, 1009)               MEMALIGN 1009, freed by free
 *   valloc(1010)                     VALLOC 1010, freed by free
 *   pvalloc(1011)                    PVALLOC 1011, freed by free
 *   malloc(1012)                     MALLOC 1012, freed by free_sized(p, 1012) when the
 *                                    process has free_sized (under memtrack), else free
 *   aligned_alloc(64, 1013)          ALIGNED_ALLOC 1013, freed by free_aligned_sized(p, 64,
 *                                    1013) when the process has it, else free
 *   malloc(1015)                     MALLOC 1015, malloc_usable_size printed, freed by free
 *
 * Then the program prints one line per check and exits 0, or exits 1 naming
 * the first call that failed or changed errno (every call runs with errno
 * set to a sentinel first). glibc 2.36 has neither free_sized nor
 * free_aligned_sized, so they are looked up with dlsym(RTLD_DEFAULT): under
 * memtrack the library's are found. The output does not depend on whether
 * memtrack is loaded, except for the line saying which free functions exist.
 */
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SENTINEL 4242

static int failures;

static void check(const char *what, int ok)
{
    if (!ok) {
        fprintf(stderr, "record_entry: %s failed\n", what);
        failures++;
    }
}

static void check_errno(const char *what)
{
    if (errno != SENTINEL) {
        fprintf(stderr, "record_entry: %s changed errno to %d\n", what, errno);
        failures++;
    }
    errno = SENTINEL;
}

int main(void)
{
    void *p, *q;
    void (*free_sized_fn)(void *, size_t) = (void (*)(void *, size_t))dlsym(RTLD_DEFAULT, "free_sized");
    void (*free_aligned_sized_fn)(void *, size_t, size_t) =
        (void (*)(void *, size_t, size_t))dlsym(RTLD_DEFAULT, "free_aligned_sized");

    errno = SENTINEL;
    p = malloc(1001);
    check_errno("malloc");
    check("malloc", p != NULL);
    free(p);
    check_errno("free");

    p = calloc(1, 1002);
    check_errno("calloc");
    check("calloc", p != NULL && ((char *)p)[1001] == 0);
    free(p);

    p = realloc(NULL, 1003);
    check_errno("realloc(NULL, n)");
    check("realloc(NULL, n)", p != NULL);
    p = realloc(p, 1004);
    check_errno("realloc(p, n)");
    check("realloc(p, n)", p != NULL);
    q = realloc(p, 0);
    check_errno("realloc(p, 0)");
    check("realloc(p, 0)", q == NULL);

    p = reallocarray(NULL, 5, 201);
    check_errno("reallocarray(NULL, n, m)");
    check("reallocarray(NULL, n, m)", p != NULL);
    p = reallocarray(p, 2, 503);
    check_errno("reallocarray(p, n, m)");
    check("reallocarray(p, n, m)", p != NULL);
    free(p);

    p = NULL;
    check("posix_memalign", posix_memalign(&p, 64, 1007) == 0 && ((size_t)p & 63) == 0);
    check_errno("posix_memalign");
    free(p);

    p = aligned_alloc(64, 1008);
    check_errno("aligned_alloc");
    check("aligned_alloc", p != NULL && ((size_t)p & 63) == 0);
    free(p);

    p = memalign(64, 1009);
    check_errno("memalign");
    check("memalign", p != NULL && ((size_t)p & 63) == 0);
    free(p);

    p = valloc(1010);
    check_errno("valloc");
    check("valloc", p != NULL && ((size_t)p & 4095) == 0);
    free(p);

    p = pvalloc(1011);
    check_errno("pvalloc");
    check("pvalloc", p != NULL && ((size_t)p & 4095) == 0);
    free(p);

    p = malloc(1012);
    check("malloc for free_sized", p != NULL);
    if (free_sized_fn)
        free_sized_fn(p, 1012);
    else
        free(p);
    check_errno("free_sized");

    p = aligned_alloc(64, 1013);
    check("aligned_alloc for free_aligned_sized", p != NULL);
    if (free_aligned_sized_fn)
        free_aligned_sized_fn(p, 64, 1013);
    else
        free(p);
    check_errno("free_aligned_sized");

    p = malloc(1015);
    size_t usable = malloc_usable_size(p);
    check_errno("malloc_usable_size");
    check("malloc_usable_size", usable >= 1015);
    printf("usable size of a 1015-byte block: %zu\n", usable);
    free(p);

    fprintf(stderr, "record_entry: free_sized %s, free_aligned_sized %s\n",
            free_sized_fn ? "present" : "absent", free_aligned_sized_fn ? "present" : "absent");
    printf("record_entry: %s\n", failures ? "FAILED" : "all calls behaved");
    return failures ? 1 : 0;
}
