/* mtplugin.c - libmtplugin.so, a plugin that plugin_host dlopens, uses and dlcloses.
 *
 * mtplugin_alloc() allocates exactly one block of 1201 bytes with malloc,
 * called from this library's code, so that the allocation's first stack
 * frame lies in libmtplugin.so. Nothing else here allocates.
 */
#include <stdlib.h>
#include <string.h>

void *mtplugin_alloc(void);

/* Returns a new 1201-byte block filled with 'p'; the caller frees it. */
void *mtplugin_alloc(void)
{
    char *p = malloc(1201);
    if (p)
        memset(p, 'p', 1201);
    return p;
}
