/* plugin_leak.c - leaks a block allocated inside a plugin that is dlclosed before exit.
 *
 * dlopens libmtplugin.so (next to this executable), has it allocate two
 * 1201-byte blocks, frees the first, dlcloses the plugin and exits. By
 * construction: one block of 1201 bytes leaked, allocated in
 * mtplugin_alloc (tests/targets/plugin/mtplugin.c), a module that is gone
 * when the program ends, so the report must symbolize it from the trace's
 * module map. Prints one line; exits 0, or 1 when the plugin cannot be used.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(void)
{
    char path[4096];
    ssize_t n = readlink("/proc/self/exe", path, sizeof path - 32);
    if (n <= 0)
        return 1;
    path[n] = '\0';
    strcpy(strrchr(path, '/') + 1, "libmtplugin.so");
    void *plugin = dlopen(path, RTLD_NOW);
    if (!plugin)
        return 1;
    void *(*alloc)(void) = (void *(*)(void))dlsym(plugin, "mtplugin_alloc");
    if (!alloc)
        return 1;
    void *first = alloc();
    void *second = alloc();
    free(first);
    dlclose(plugin);
    printf("plugin_leak: kept %s\n", second ? "a block" : "nothing");
    return 0;
}
