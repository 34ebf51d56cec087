/* unwind.c - captures the call stack of an allocation.
 *
 * Two unwinders: libunwind's unw_backtrace (default; correct without frame
 * pointers, with its per-thread cache of unwind rules per return address),
 * and a frame-pointer walk (MEMTRACK_UNWIND=fp) for programs built with
 * -fno-omit-frame-pointer, bounded by the thread's stack. Frames inside
 * libmemtrack.so itself are dropped, so the first recorded frame is always
 * the return address into the code that called the allocation function.
 */
#define UNW_LOCAL_ONLY
#include <libunwind.h>
#include <link.h>
#include <string.h>

#include "internal.h"

static uintptr_t self_lo, self_hi;

static int find_self(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    uintptr_t addr = (uintptr_t)data;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD)
            continue;
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr, hi = lo + ph->p_memsz;
        if (addr >= lo && addr < hi) {
            self_lo = info->dlpi_addr;
            self_hi = 0;
            for (int j = 0; j < info->dlpi_phnum; j++) {
                const ElfW(Phdr) *q = &info->dlpi_phdr[j];
                uintptr_t end = info->dlpi_addr + q->p_vaddr + q->p_memsz;
                if (q->p_type == PT_LOAD && end > self_hi)
                    self_hi = end;
            }
            return 1;
        }
    }
    return 0;
}

void mt__unwind_init(void)
{
    unw_set_caching_policy(unw_local_addr_space, UNW_CACHE_PER_THREAD);
    dl_iterate_phdr(find_self, (void *)(uintptr_t)&mt__unwind_init);
}

void mt__unwind_flush(void)
{
    unw_flush_cache(unw_local_addr_space, 0, 0);
}

static uint32_t fp_walk(uint64_t *frames, uint32_t max)
{
    const mt_tls_t *t = &mt__tls;
    uintptr_t *fp = __builtin_frame_address(0);
    uint32_t n = 0;
    if (!t->stack_hi)
        return 0;
    while (n < max) {
        if ((uintptr_t)fp < t->stack_lo || (uintptr_t)fp + 2 * sizeof(uintptr_t) > t->stack_hi ||
            ((uintptr_t)fp & (sizeof(uintptr_t) - 1)))
            break;
        uintptr_t ret = fp[1];
        uintptr_t *next = (uintptr_t *)fp[0];
        if (ret < 4096)
            break;
        frames[n++] = ret;
        if (next <= fp)
            break;
        fp = next;
    }
    return n;
}

uint32_t mt__unwind(uint64_t *frames, uint32_t max)
{
    uint64_t buf[MT_MAX_DEPTH + 8];
    uint32_t want = max + 8 < MT_MAX_DEPTH + 8 ? max + 8 : MT_MAX_DEPTH + 8;
    uint32_t n, skip = 0;
    if (mt__config.unwind_fp)
        n = fp_walk(buf, want);
    else {
        int r = unw_backtrace((void **)buf, (int)want);
        n = r > 0 ? (uint32_t)r : 0;
    }
    while (skip < n && buf[skip] >= self_lo && buf[skip] < self_hi)
        skip++;
    n -= skip;
    if (n > max)
        n = max;
    memcpy(frames, buf + skip, n * sizeof *frames);
    return n;
}
