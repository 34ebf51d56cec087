/* plugin_host.c - dlopens libmtplugin.so, allocates through it, dlcloses it, frees the block.
 *
 * The plugin is found next to this executable (BUILD/targets/libmtplugin.so).
 * By construction: one MALLOC 1201 whose first frame lies in the plugin
 * (the plugin's MODULE record then gets an unload epoch at the dlclose), one
 * FREE of that block made here after the dlclose, and one MALLOC 1202 made
 * here after the dlclose (then freed), whose stack carries the new epoch.
 * Prints one line; exits 0, or 1 when the plugin cannot be loaded.
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

    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        fprintf(stderr, "plugin_host: %s\n", dlerror());
        return 1;
    }
    void *(*alloc)(void) = (void *(*)(void))dlsym(h, "mtplugin_alloc");
    if (!alloc) {
        fprintf(stderr, "plugin_host: no mtplugin_alloc\n");
        return 1;
    }
    char *block = alloc();
    if (dlclose(h) != 0) {
        fprintf(stderr, "plugin_host: dlclose: %s\n", dlerror());
        return 1;
    }
    char *after = malloc(1202);
    int ok = block && block[1200] == 'p' && after;
    free(block);
    free(after);
    printf("plugin_host: %s\n", ok ? "plugin used and unloaded" : "FAILED");
    return ok ? 0 : 1;
}
