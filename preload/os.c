/* os.c - system calls of libmemtrack.so that tests must be able to make fail.
 *
 * Every mmap, trace-file open and trace write of the library goes through
 * here, so that MEMTRACK_FAULT_MMAP/OPEN/WRITE=N can make the Nth call fail
 * and the tests can check that the host program never notices. Nothing here
 * allocates or uses stdio: it runs inside allocation hooks.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

static _Atomic unsigned long mmap_calls, open_calls, write_calls;

static bool inject(_Atomic unsigned long *calls, unsigned long at)
{
    if (at == 0)
        return false;
    return atomic_fetch_add_explicit(calls, 1, memory_order_relaxed) + 1 == at;
}

char *mt__os_utoa(uint64_t v, char *buf)
{
    char tmp[21];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (int i = 0; i < n; i++)
        buf[i] = tmp[n - 1 - i];
    buf[n] = '\0';
    return buf;
}

void mt__sayv(const char *const *parts, size_t count)
{
    char line[1024] = "memtrack: ";
    size_t n = 10;
    for (size_t i = 0; i < count; i++) {
        const char *s = parts[i];
        while (s && *s && n < sizeof line - 1)
            line[n++] = *s++;
    }
    line[n++] = '\n';
    ssize_t w;
    do {
        w = write(STDERR_FILENO, line, n);
    } while (w < 0 && errno == EINTR);
}

void mt__say(const char *msg)
{
    mt__sayv(&msg, 1);
}

void *mt__os_map(size_t size)
{
    static _Atomic int failure_said;
    void *p = MAP_FAILED;
    if (!inject(&mmap_calls, mt__config.fault_mmap))
        p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p != MAP_FAILED)
        return p;
    /* Every caller copes (the data is dropped and counted, or recording
     * stops); the user hears about it once, whichever caller it was. */
    if (!atomic_exchange(&failure_said, 1)) {
        char n[24];
        mt__say_all("cannot map ", mt__os_utoa(size, n), " bytes of memory; what is recorded from here on may be incomplete");
    }
    return NULL;
}

int mt__os_open(const char *path, int flags, mode_t mode)
{
    if (inject(&open_calls, mt__config.fault_open))
        return -EACCES;
    int fd;
    do {
        fd = open(path, flags, mode);
    } while (fd < 0 && errno == EINTR);
    return fd < 0 ? -errno : fd;
}

int mt__os_pwrite_all(int fd, const void *buf, size_t n, uint64_t off)
{
    const uint8_t *p = buf;
    if (inject(&write_calls, mt__config.fault_write))
        return -EIO;
    while (n > 0) {
        ssize_t w = pwrite(fd, p, n, (off_t)off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (w == 0)
            return -EIO;
        p += w;
        off += (uint64_t)w;
        n -= (size_t)w;
    }
    return 0;
}

uint64_t mt__os_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void *mt__arena_alloc(mt_arena_t *a, size_t size)
{
    size = (size + 15) & ~(size_t)15;
    if ((size_t)(a->end - a->cur) < size) {
        size_t chunk = size > (1u << 20) ? size : (1u << 20);
        uint8_t *p = mt__os_map(chunk);
        if (!p)
            return NULL;
        a->cur = p;
        a->end = p + chunk;
    }
    void *r = a->cur;
    a->cur += size;
    return r;
}
