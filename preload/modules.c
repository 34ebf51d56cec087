/* modules.c - the module map of the traced process, for offline symbolization.
 *
 * Every shared object and the executable are recorded with their load bias,
 * address range, path and GNU build-id, so the analyzer can symbolize after
 * the program ended, even modules that were dlclosed. Scans use
 * dl_iterate_phdr and run at start, after each dlopen and dlclose (hooks.c),
 * and when the writer meets a stack address outside every known module
 * (libc's own internal dlopen does not pass through our hooks). An unload
 * advances the epoch: stacks captured afterwards carry the new epoch, so an
 * address reused by another library is never confused with the old one.
 */
#include <link.h>
#include <sched.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

#define MAX_MODULES 8192u

typedef struct module {
    uint64_t id;
    uint64_t base, start, end;
    uint64_t load_epoch, unload_epoch;
    bool seen;          /* present in the current scan */
    bool unloaded;
    bool written_load;  /* writer only */
    bool written_unload;
    uint8_t build_id_len;
    uint8_t build_id[64];
    char path[];
} module_t;

_Atomic uint64_t mt__epoch;

static _Atomic int lock_word;
static module_t *modules[MAX_MODULES];
static uint32_t nmodules;
static _Atomic int dirty;
static _Atomic int scan_pending;
static mt_arena_t arena;
static char exe_path[4096];

static void lock(void)
{
    while (atomic_exchange_explicit(&lock_word, 1, memory_order_acquire))
        sched_yield();
}

static void unlock(void)
{
    atomic_store_explicit(&lock_word, 0, memory_order_release);
}

void mt__modules_lock(void)
{
    lock();
}

void mt__modules_unlock(void)
{
    unlock();
}

static size_t find_build_id(const struct dl_phdr_info *info, uint8_t *out, size_t cap)
{
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_NOTE)
            continue;
        const uint8_t *p = (const uint8_t *)(info->dlpi_addr + ph->p_vaddr);
        const uint8_t *end = p + ph->p_memsz;
        while (p + sizeof(ElfW(Nhdr)) <= end) {
            const ElfW(Nhdr) *nh = (const ElfW(Nhdr) *)p;
            size_t name = (nh->n_namesz + 3) & ~3u, desc = (nh->n_descsz + 3) & ~3u;
            const uint8_t *d = p + sizeof *nh + name;
            if (d + nh->n_descsz > end)
                break;
            if (nh->n_type == NT_GNU_BUILD_ID && nh->n_namesz == 4 && !memcmp(p + sizeof *nh, "GNU", 4)) {
                size_t n = nh->n_descsz < cap ? nh->n_descsz : cap;
                memcpy(out, d, n);
                return n;
            }
            p = d + desc;
        }
    }
    return 0;
}

static int scan_one(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    (void)data;
    uint64_t lo = UINT64_MAX, hi = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD)
            continue;
        uint64_t s = info->dlpi_addr + ph->p_vaddr, e = s + ph->p_memsz;
        if (s < lo)
            lo = s;
        if (e > hi)
            hi = e;
    }
    if (hi == 0)
        return 0;
    const char *path = info->dlpi_name && info->dlpi_name[0] ? info->dlpi_name : exe_path;
    for (uint32_t i = 0; i < nmodules; i++) {
        module_t *m = modules[i];
        if (!m->unloaded && m->base == info->dlpi_addr && m->start == lo && m->end == hi &&
            !strcmp(m->path, path)) {
            m->seen = true;
            return 0;
        }
    }
    if (nmodules >= MAX_MODULES)
        return 0;
    size_t len = strlen(path);
    module_t *m = mt__arena_alloc(&arena, sizeof *m + len + 1);
    if (!m)
        return 0;
    m->id = nmodules;
    m->base = info->dlpi_addr;
    m->start = lo;
    m->end = hi;
    m->load_epoch = atomic_load(&mt__epoch);
    m->seen = true;
    m->build_id_len = (uint8_t)find_build_id(info, m->build_id, sizeof m->build_id);
    memcpy(m->path, path, len + 1);
    modules[nmodules++] = m;
    atomic_store(&dirty, 1);
    return 0;
}

/* Scans with the module lock held. */
static void scan_locked(void)
{
    if (!exe_path[0]) {
        ssize_t n = readlink("/proc/self/exe", exe_path, sizeof exe_path - 1);
        exe_path[n > 0 ? n : 0] = '\0';
    }
    for (uint32_t i = 0; i < nmodules; i++)
        modules[i]->seen = false;
    dl_iterate_phdr(scan_one, NULL);
    bool unloaded = false;
    uint64_t epoch = atomic_load(&mt__epoch) + 1;
    for (uint32_t i = 0; i < nmodules; i++) {
        module_t *m = modules[i];
        if (!m->seen && !m->unloaded) {
            m->unloaded = true;
            m->unload_epoch = epoch;
            unloaded = true;
        }
    }
    if (unloaded) {
        atomic_store(&mt__epoch, epoch);
        atomic_store(&dirty, 1);
        mt__unwind_flush();
    }
}

/* A scanner never waits for the module lock: dl_iterate_phdr takes the
 * loader lock, and a thread inside dlopen (holding the loader lock) may be
 * scanning too. Whoever holds the lock scans again for those who could not. */
void mt__modules_scan(void)
{
    atomic_store(&scan_pending, 1);
    while (atomic_load(&scan_pending)) {
        if (atomic_exchange_explicit(&lock_word, 1, memory_order_acquire))
            return;
        atomic_store(&scan_pending, 0);
        scan_locked();
        unlock();
    }
}

void mt__modules_emit(void (*emit)(uint8_t type, const uint8_t *payload, size_t n))
{
    if (!atomic_exchange(&dirty, 0))
        return;
    static uint8_t buf[4096 + 64 + 8 * MT_VARINT_MAX];
    lock();
    for (uint32_t i = 0; i < nmodules; i++) {
        module_t *m = modules[i];
        if (!m->written_load) {
            size_t len = strlen(m->path);
            uint8_t *p = buf;
            p = mt_put_varint(p, m->id);
            p = mt_put_varint(p, m->load_epoch);
            p = mt_put_varint(p, m->base);
            p = mt_put_varint(p, m->start);
            p = mt_put_varint(p, m->end);
            p = mt_put_varint(p, len);
            memcpy(p, m->path, len);
            p += len;
            p = mt_put_varint(p, m->build_id_len);
            memcpy(p, m->build_id, m->build_id_len);
            p += m->build_id_len;
            emit(MT_REC_MODULE, buf, (size_t)(p - buf));
            m->written_load = true;
        }
        if (m->unloaded && !m->written_unload) {
            uint8_t *p = buf;
            p = mt_put_varint(p, m->id);
            p = mt_put_varint(p, m->unload_epoch);
            emit(MT_REC_UNLOAD, buf, (size_t)(p - buf));
            m->written_unload = true;
        }
    }
    unlock();
}

bool mt__modules_known(uint64_t addr)
{
    bool known = false;
    lock();
    for (uint32_t i = 0; i < nmodules && !known; i++)
        known = !modules[i]->unloaded && addr >= modules[i]->start && addr < modules[i]->end;
    unlock();
    return known;
}

void mt__modules_after_fork(void)
{
    atomic_store(&lock_word, 0);
    /* The child's trace needs the whole map, unloaded modules included:
     * stacks interned before the fork keep their old epochs. */
    for (uint32_t i = 0; i < nmodules; i++) {
        modules[i]->written_load = false;
        modules[i]->written_unload = false;
    }
    atomic_store(&dirty, 1);
}
