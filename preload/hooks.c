/* hooks.c - the allocation functions libmemtrack.so interposes.
 *
 * The only file that defines malloc, free and the rest of the family, C++
 * operator new/delete, jemalloc's *allocx API, dlopen/dlclose (module map),
 * the exec family and _exit (flush first), pthread_getattr_np (which
 * allocates holding a lock the hooks would take), and the public
 * memtrack_snapshot.
 * Each hook forwards to the allocator the program would have used without
 * us (the next definition in symbol lookup order: glibc, or jemalloc or
 * tcmalloc when the program links one), then records the call.
 *
 * Ordering: a free takes its sequence number before the real free and an
 * allocation after the real allocation returns, so when another thread
 * reuses an address, its allocation is always ordered after our free. A
 * realloc takes one number before (its free half) and one after.
 *
 * While the real functions are being looked up, dlsym may itself allocate:
 * those calls are served from a static bootstrap arena whose blocks are
 * never passed to the real free.
 */
#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MEMTRACK_BUILDING_LIBRARY 1
#include "internal.h"
#include "memtrack.h"

#define MT_EXPORT __attribute__((visibility("default")))

/* Interposed functions that <stdlib.h> does not declare. */
MT_EXPORT void *memalign(size_t align, size_t n);
MT_EXPORT void *pvalloc(size_t n);
MT_EXPORT size_t malloc_usable_size(void *p);
MT_EXPORT void free_sized(void *p, size_t n);
MT_EXPORT void free_aligned_sized(void *p, size_t align, size_t n);
MT_EXPORT void *mallocx(size_t n, int flags);
MT_EXPORT void *rallocx(void *p, size_t n, int flags);
MT_EXPORT size_t xallocx(void *p, size_t n, size_t extra, int flags);
MT_EXPORT void sdallocx(void *p, size_t n, int flags);
MT_EXPORT void dallocx(void *p, int flags);

extern void *__libc_malloc(size_t);
extern void __libc_free(void *);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);

static struct {
    void *(*malloc)(size_t);
    void (*free)(void *);
    void *(*calloc)(size_t, size_t);
    void *(*realloc)(void *, size_t);
    int (*posix_memalign)(void **, size_t, size_t);
    void *(*aligned_alloc)(size_t, size_t);
    void *(*memalign)(size_t, size_t);
    void *(*valloc)(size_t);
    void *(*pvalloc)(size_t);
    size_t (*malloc_usable_size)(void *);
    void (*free_sized)(void *, size_t);
    void (*free_aligned_sized)(void *, size_t, size_t);
    void *(*mallocx)(size_t, int);
    void *(*rallocx)(void *, size_t, int);
    size_t (*xallocx)(void *, size_t, size_t, int);
    void (*sdallocx)(void *, size_t, int);
    void (*dallocx)(void *, int);
    void *(*dlopen)(const char *, int);
    int (*dlclose)(void *);
    int (*execve)(const char *, char *const[], char *const[]);
    int (*execv)(const char *, char *const[]);
    int (*execvp)(const char *, char *const[]);
    int (*execvpe)(const char *, char *const[], char *const[]);
    int (*fexecve)(int, char *const[], char *const[]);
    void (*exit_)(int);
    void (*Exit_)(int);
    int (*pthread_getattr_np)(pthread_t, pthread_attr_t *);
} real;

/* ---- bootstrap ---- */

static _Alignas(64) uint8_t boot_mem[1 << 20];
static _Atomic size_t boot_used;
static _Atomic int resolve_state; /* 0 not yet, 1 in progress, 2 done */

static bool is_boot(const void *p)
{
    return (const uint8_t *)p >= boot_mem && (const uint8_t *)p < boot_mem + sizeof boot_mem;
}

static void *boot_alloc(size_t n, size_t align)
{
    if (align < 16)
        align = 16;
    if (n > sizeof boot_mem || align > 4096)
        return NULL;
    size_t used = atomic_load(&boot_used), start, end;
    do {
        start = (used + 16 + align - 1) & ~(align - 1);
        end = start + ((n + 15) & ~(size_t)15);
        if (end > sizeof boot_mem)
            return NULL;
    } while (!atomic_compare_exchange_weak(&boot_used, &used, end));
    memcpy(boot_mem + start - sizeof(size_t), &n, sizeof n);
    return boot_mem + start; /* .bss: already zero, fine for calloc */
}

static size_t boot_size(const void *p)
{
    size_t n;
    memcpy(&n, (const uint8_t *)p - sizeof n, sizeof n);
    return n;
}

#define LOOKUP(name) (real.name = (__typeof__(real.name))dlsym(RTLD_NEXT, #name))

/* Finds the real functions once. Returns false while the calling thread is
 * itself inside the lookup (dlsym allocating): the caller then serves the
 * request from the bootstrap arena. */
static __attribute__((noinline)) bool resolve_slow(void)
{
    if (mt__tls.busy == 3)
        return false;
    int expected = 0;
    if (atomic_compare_exchange_strong(&resolve_state, &expected, 1)) {
        int saved_busy = mt__tls.busy, saved_errno = errno;
        mt__tls.busy = 3;
        LOOKUP(malloc);
        LOOKUP(free);
        LOOKUP(calloc);
        LOOKUP(realloc);
        LOOKUP(posix_memalign);
        LOOKUP(aligned_alloc);
        LOOKUP(memalign);
        LOOKUP(valloc);
        LOOKUP(pvalloc);
        LOOKUP(malloc_usable_size);
        LOOKUP(free_sized);
        LOOKUP(free_aligned_sized);
        LOOKUP(mallocx);
        LOOKUP(rallocx);
        LOOKUP(xallocx);
        LOOKUP(sdallocx);
        LOOKUP(dallocx);
        LOOKUP(dlopen);
        LOOKUP(dlclose);
        LOOKUP(execve);
        LOOKUP(execv);
        LOOKUP(execvp);
        LOOKUP(execvpe);
        LOOKUP(fexecve);
        LOOKUP(pthread_getattr_np);
        real.exit_ = (void (*)(int))dlsym(RTLD_NEXT, "_exit");
        real.Exit_ = (void (*)(int))dlsym(RTLD_NEXT, "_Exit");
        /* Never run without an allocator, whatever dlsym said. */
        if (!real.malloc || !real.free || !real.calloc || !real.realloc || !real.memalign) {
            real.malloc = __libc_malloc;
            real.free = __libc_free;
            real.calloc = __libc_calloc;
            real.realloc = __libc_realloc;
            real.memalign = __libc_memalign;
        }
        mt__tls.busy = saved_busy;
        errno = saved_errno;
        atomic_store_explicit(&resolve_state, 2, memory_order_release);
        return true;
    }
    while (atomic_load_explicit(&resolve_state, memory_order_acquire) != 2)
        sched_yield();
    return true;
}

/* resolve_slow with the check every call makes inlined. */
static inline bool resolve(void)
{
    if (MT_LIKELY(atomic_load_explicit(&resolve_state, memory_order_acquire) == 2))
        return true;
    return resolve_slow();
}

/* Recording starts once: in this library's constructor, or earlier, at the
 * first allocation made by the constructor of one of the program's own
 * libraries. The loader runs those before LD_PRELOAD libraries' (libstdc++
 * allocates its exception pool there), and their blocks would otherwise be
 * unknown frees later. */
static _Atomic int start_claimed;
static bool start_pending = true;

static void start_once(void)
{
    if (!atomic_exchange(&start_claimed, 1))
        mt__process_start();
    start_pending = false;
}

__attribute__((constructor)) static void hooks_init(void)
{
    resolve();
    start_once();
}

/* Starts recording from a hook that runs before this library's constructor,
 * once the C library has initialized itself (its initializer sets
 * program_invocation_name; before it, starting a thread is not safe).
 * Returns true when recording is on. */
static __attribute__((noinline, cold)) bool start_early(void)
{
    if (!program_invocation_name || !program_invocation_name[0] || mt__tls.busy)
        return false;
    start_once();
    return atomic_load(&mt__state) == MT_STATE_ACTIVE;
}

/* ---- recording ---- */

static inline bool recording(void)
{
    if (MT_UNLIKELY(mt__tls.busy))
        return false;
    int state = atomic_load_explicit(&mt__state, memory_order_relaxed);
    if (MT_LIKELY(state == MT_STATE_ACTIVE))
        return true;
    return MT_UNLIKELY(start_pending) && state == MT_STATE_OFF && start_early();
}

static inline __attribute__((always_inline)) void record_alloc(unsigned op, const void *p, size_t size)
{
    if (MT_UNLIKELY(mt__config.sample_bytes) && !mt__sample_take(p, size))
        return;
    mt_ring_t *r = mt__ring_get();
    if (MT_UNLIKELY(!r))
        return;
    uint64_t buf[MT_UNWIND_BUF];
    uint32_t n;
    uint64_t fold;
    /* The frame this is inlined into (the library keeps frame pointers):
     * its return address, its canonical frame address and the caller's
     * rbp it saved, where the walk can start. */
    const uintptr_t *fa = __builtin_frame_address(0);
    const mt_unwind_from_t from = {fa[1], (uintptr_t)(fa + 2), fa[0]};
    const uint64_t epoch = atomic_load_explicit(&mt__epoch, memory_order_relaxed);
    uint32_t id = mt__unwind_known(r, &from, epoch);
    if (id == UINT32_MAX) {
        const uint64_t *frames = mt__unwind(buf, mt__config.depth, &n, &fold, &from);
        id = mt__ring_intern_folded(r, frames, n, epoch, fold);
        if (MT_UNLIKELY(id == UINT32_MAX)) {
            atomic_fetch_add_explicit(&r->dropped, 1, memory_order_relaxed);
            return;
        }
        mt__unwind_learn(r, &from, epoch, id);
    }
    mt_ring_event_t *slot = mt__ring_reserve(r);
    if (MT_LIKELY(slot != NULL))
        mt__ring_commit(slot, mt__next_seq(), (uint64_t)(uintptr_t)p, size, id, op);
}

/* A free in progress: its slot is reserved and its seq taken before the
 * real free, so that an allocation that reuses the address in another
 * thread is always ordered after it. slot NULL: not recorded (sampling
 * leaves it out, or the ring was full). */
typedef struct pending_free {
    mt_ring_event_t *slot;
    uint64_t seq;
    bool forgot; /* sampling forgot the block */
} pending_free_t;

static inline pending_free_t free_begin(const void *p)
{
    pending_free_t f = {NULL, 0, false};
    if (MT_UNLIKELY(mt__config.sample_bytes) && !(f.forgot = mt__sample_forget(p)))
        return f;
    mt_ring_t *r = mt__ring_get();
    if (MT_UNLIKELY(!r) || !(f.slot = mt__ring_reserve(r)))
        return f;
    f.seq = mt__next_seq();
    return f;
}

/* The free happened. */
static inline void free_end(pending_free_t f, unsigned op, const void *p)
{
    if (f.slot)
        mt__ring_commit(f.slot, f.seq, (uint64_t)(uintptr_t)p, 0, 0, op);
}

/* The call failed and the block stayed: nothing is written, and a sampled
 * block must be remembered again. */
static inline void free_undone(pending_free_t f, const void *p)
{
    if (f.slot)
        mt__ring_commit(f.slot, f.seq, 0, 0, 0, MT_EV_NOP_OP);
    if (MT_UNLIKELY(f.forgot))
        mt__sample_keep(p);
}

/* A plain free: recorded, then done. */
static inline void record_free(unsigned op, const void *p)
{
    free_end(free_begin(p), op, p);
}

static void leave(int **busy)
{
    **busy = 0;
}

/* Marks the thread busy for the rest of the scope, also when a C++
 * exception unwinds through it (this file is built with -fexceptions). */
#define ENTER() int *busy_scope __attribute__((cleanup(leave))) = &mt__tls.busy; *busy_scope = 1

/* ---- the C family ---- */

MT_EXPORT void *malloc(size_t n)
{
    if (MT_UNLIKELY(!resolve()))
        return boot_alloc(n, 16);
    if (!recording())
        return real.malloc(n);
    ENTER();
    void *p = real.malloc(n);
    if (MT_LIKELY(p != NULL)) {
        int e = errno;
        record_alloc(MT_OP_MALLOC, p, n);
        errno = e;
    }
    return p;
}

MT_EXPORT void free(void *p)
{
    if (!p || MT_UNLIKELY(is_boot(p)))
        return;
    resolve();
    if (!recording()) {
        real.free(p);
        return;
    }
    ENTER();
    int e = errno;
    record_free(MT_OP_FREE, p);
    real.free(p);
    errno = e;
}

MT_EXPORT void *calloc(size_t n, size_t m)
{
    size_t total;
    if (MT_UNLIKELY(!resolve())) {
        if (__builtin_mul_overflow(n, m, &total))
            return NULL;
        return boot_alloc(total, 16);
    }
    if (!recording())
        return real.calloc(n, m);
    ENTER();
    void *p = real.calloc(n, m);
    if (p && !__builtin_mul_overflow(n, m, &total)) {
        int e = errno;
        record_alloc(MT_OP_CALLOC, p, total);
        errno = e;
    }
    return p;
}

static void *realloc_boot(void *old, size_t n)
{
    void *p = malloc(n);
    if (p) {
        size_t keep = boot_size(old);
        memcpy(p, old, keep < n ? keep : n);
    }
    return p;
}

/* realloc and reallocarray: the free half before, the new block after. */
static inline __attribute__((always_inline)) void *realloc_common(void *old, size_t n)
{
    if (!recording())
        return real.realloc(old, n);
    ENTER();
    pending_free_t f = {NULL, 0, false};
    if (old)
        f = free_begin(old);
    void *p = real.realloc(old, n);
    int e = errno;
    if (p || (old && n == 0)) {
        if (old)
            free_end(f, MT_OP_REALLOC_FREE, old); /* before the next reserve */
        if (p)
            record_alloc(MT_OP_REALLOC, p, n);
    } else if (old) {
        free_undone(f, old);
    }
    errno = e;
    return p;
}

MT_EXPORT void *realloc(void *old, size_t n)
{
    if (MT_UNLIKELY(!resolve()))
        return old ? NULL : boot_alloc(n, 16);
    if (MT_UNLIKELY(old && is_boot(old)))
        return realloc_boot(old, n);
    return realloc_common(old, n);
}

MT_EXPORT void *reallocarray(void *old, size_t n, size_t m)
{
    size_t total;
    if (__builtin_mul_overflow(n, m, &total)) {
        errno = ENOMEM;
        return NULL;
    }
    if (MT_UNLIKELY(!resolve()))
        return old ? NULL : boot_alloc(total, 16);
    if (MT_UNLIKELY(old && is_boot(old)))
        return realloc_boot(old, total);
    return realloc_common(old, total);
}

MT_EXPORT int posix_memalign(void **out, size_t align, size_t n)
{
    if (MT_UNLIKELY(!resolve())) {
        *out = boot_alloc(n, align);
        return *out ? 0 : ENOMEM;
    }
    if (!recording())
        return real.posix_memalign(out, align, n);
    ENTER();
    int e = errno;
    int rc = real.posix_memalign(out, align, n);
    if (rc == 0)
        record_alloc(MT_OP_POSIX_MEMALIGN, *out, n);
    errno = e;
    return rc;
}

/* aligned_alloc, memalign, valloc, pvalloc: same shape, different op. */
#define ALIGNED_HOOK(name, op, params, args, boot_align)   \
    MT_EXPORT void *name params                            \
    {                                                      \
        if (MT_UNLIKELY(!resolve()))                       \
            return boot_alloc(n, boot_align);              \
        if (!real.name) {                                  \
            errno = ENOMEM;                                \
            return NULL;                                   \
        }                                                  \
        if (!recording())                                  \
            return real.name args;                         \
        ENTER();                                           \
        void *p = real.name args;                          \
        if (p) {                                           \
            int e = errno;                                 \
            record_alloc(op, p, n);                        \
            errno = e;                                     \
        }                                                  \
        return p;                                          \
    }

ALIGNED_HOOK(aligned_alloc, MT_OP_ALIGNED_ALLOC, (size_t align, size_t n), (align, n), align)
ALIGNED_HOOK(memalign, MT_OP_MEMALIGN, (size_t align, size_t n), (align, n), align)
ALIGNED_HOOK(valloc, MT_OP_VALLOC, (size_t n), (n), 4096)
ALIGNED_HOOK(pvalloc, MT_OP_PVALLOC, (size_t n), (n), 4096)

MT_EXPORT size_t malloc_usable_size(void *p)
{
    if (!p)
        return 0;
    if (is_boot(p))
        return boot_size(p);
    resolve();
    return real.malloc_usable_size ? real.malloc_usable_size(p) : 0;
}

/* C23 free_sized and free_aligned_sized: the real ones when the C library
 * has them, plain free otherwise (glibc before 2.41). */
static void free_common(void *p, unsigned op, void (*forward)(void *, size_t, size_t), size_t a, size_t b)
{
    if (!p || is_boot(p))
        return;
    resolve();
    int e = errno;
    if (recording()) {
        ENTER();
        record_free(op, p);
        forward(p, a, b);
    } else {
        forward(p, a, b);
    }
    errno = e;
}

static void forward_free_sized(void *p, size_t n, size_t unused)
{
    (void)unused;
    if (real.free_sized)
        real.free_sized(p, n);
    else
        real.free(p);
}

static void forward_free_aligned_sized(void *p, size_t align, size_t n)
{
    if (real.free_aligned_sized)
        real.free_aligned_sized(p, align, n);
    else
        real.free(p);
}

MT_EXPORT void free_sized(void *p, size_t n)
{
    free_common(p, MT_OP_FREE_SIZED, forward_free_sized, n, 0);
}

MT_EXPORT void free_aligned_sized(void *p, size_t align, size_t n)
{
    free_common(p, MT_OP_FREE_ALIGNED_SIZED, forward_free_aligned_sized, align, n);
}

/* ---- jemalloc's non-standard API, recorded when the program links it ---- */

MT_EXPORT void *mallocx(size_t n, int flags)
{
    resolve();
    if (!real.mallocx)
        return NULL;
    if (!recording())
        return real.mallocx(n, flags);
    ENTER();
    void *p = real.mallocx(n, flags);
    if (p)
        record_alloc(MT_OP_MALLOCX, p, n);
    return p;
}

MT_EXPORT void *rallocx(void *old, size_t n, int flags)
{
    resolve();
    if (!real.rallocx)
        return NULL;
    if (!recording())
        return real.rallocx(old, n, flags);
    ENTER();
    pending_free_t f = free_begin(old);
    void *p = real.rallocx(old, n, flags);
    if (p) {
        free_end(f, MT_OP_RALLOCX_FREE, old);
        record_alloc(MT_OP_RALLOCX, p, n);
    } else {
        free_undone(f, old);
    }
    return p;
}

MT_EXPORT size_t xallocx(void *p, size_t n, size_t extra, int flags)
{
    resolve();
    if (!real.xallocx)
        return 0;
    if (!recording())
        return real.xallocx(p, n, extra, flags);
    ENTER();
    pending_free_t f = free_begin(p);
    size_t got = real.xallocx(p, n, extra, flags);
    if (got >= n) { /* resized in place: the block now holds n bytes */
        free_end(f, MT_OP_XALLOCX_FREE, p);
        record_alloc(MT_OP_XALLOCX, p, n);
    } else {
        free_undone(f, p);
    }
    return got;
}

MT_EXPORT void sdallocx(void *p, size_t n, int flags)
{
    resolve();
    if (!real.sdallocx || !p)
        return;
    if (!recording()) {
        real.sdallocx(p, n, flags);
        return;
    }
    ENTER();
    record_free(MT_OP_SDALLOCX, p);
    real.sdallocx(p, n, flags);
}

MT_EXPORT void dallocx(void *p, int flags)
{
    resolve();
    if (!real.dallocx || !p)
        return;
    if (!recording()) {
        real.dallocx(p, flags);
        return;
    }
    ENTER();
    record_free(MT_OP_DALLOCX, p);
    real.dallocx(p, flags);
}

/* ---- C++ operator new and delete ----
 * Looked up lazily: libstdc++ (or jemalloc's own operators) may be loaded
 * only by a later dlopen. The real operator calls malloc, which sees the busy
 * flag and only forwards, so each new is recorded once, as new. */

#define CXX_LOOKUP(var, sym)                                                             \
    do {                                                                                 \
        if (MT_UNLIKELY(!(var))) {                                                       \
            int e_ = errno;                                                              \
            var = (__typeof__(var))dlsym(RTLD_NEXT, sym);                                \
            errno = e_;                                                                  \
        }                                                                                \
    } while (0)

#define NEW_HOOK(sym, op, params, args, fallback)                  \
    MT_EXPORT void *sym params;                                    \
    MT_EXPORT void *sym params                                     \
    {                                                              \
        static void *(*fn) params;                                 \
        resolve();                                                 \
        if (!recording()) {                                        \
            CXX_LOOKUP(fn, #sym);                                  \
            return fn ? fn args : (fallback);                      \
        }                                                          \
        ENTER();                                                   \
        CXX_LOOKUP(fn, #sym);                                      \
        void *p = fn ? fn args : (fallback);                       \
        if (p) {                                                   \
            int e = errno;                                         \
            record_alloc(op, p, n);                                \
            errno = e;                                             \
        }                                                          \
        return p;                                                  \
    }

NEW_HOOK(_Znwm, MT_OP_NEW, (size_t n), (n), real.malloc(n))
NEW_HOOK(_Znam, MT_OP_NEW_ARRAY, (size_t n), (n), real.malloc(n))
NEW_HOOK(_ZnwmRKSt9nothrow_t, MT_OP_NEW, (size_t n, const void *t), (n, t), real.malloc(n))
NEW_HOOK(_ZnamRKSt9nothrow_t, MT_OP_NEW_ARRAY, (size_t n, const void *t), (n, t), real.malloc(n))
NEW_HOOK(_ZnwmSt11align_val_t, MT_OP_NEW, (size_t n, size_t a), (n, a), real.memalign(a, n))
NEW_HOOK(_ZnamSt11align_val_t, MT_OP_NEW_ARRAY, (size_t n, size_t a), (n, a), real.memalign(a, n))
NEW_HOOK(_ZnwmSt11align_val_tRKSt9nothrow_t, MT_OP_NEW, (size_t n, size_t a, const void *t), (n, a, t),
         real.memalign(a, n))
NEW_HOOK(_ZnamSt11align_val_tRKSt9nothrow_t, MT_OP_NEW_ARRAY, (size_t n, size_t a, const void *t),
         (n, a, t), real.memalign(a, n))

#define DELETE_HOOK(sym, op, params, args)                         \
    MT_EXPORT void sym params;                                     \
    MT_EXPORT void sym params                                      \
    {                                                              \
        static void (*fn) params;                                  \
        if (!p || is_boot(p))                                      \
            return;                                                \
        resolve();                                                 \
        CXX_LOOKUP(fn, #sym);                                      \
        if (!recording()) {                                        \
            if (fn)                                                \
                fn args;                                           \
            else                                                   \
                real.free(p);                                      \
            return;                                                \
        }                                                          \
        ENTER();                                                   \
        int e = errno;                                             \
        record_free(op, p);                                        \
        if (fn)                                                    \
            fn args;                                               \
        else                                                       \
            real.free(p);                                          \
        errno = e;                                                 \
    }

DELETE_HOOK(_ZdlPv, MT_OP_DELETE, (void *p), (p))
DELETE_HOOK(_ZdaPv, MT_OP_DELETE_ARRAY, (void *p), (p))
DELETE_HOOK(_ZdlPvm, MT_OP_DELETE, (void *p, size_t n), (p, n))
DELETE_HOOK(_ZdaPvm, MT_OP_DELETE_ARRAY, (void *p, size_t n), (p, n))
DELETE_HOOK(_ZdlPvSt11align_val_t, MT_OP_DELETE, (void *p, size_t a), (p, a))
DELETE_HOOK(_ZdaPvSt11align_val_t, MT_OP_DELETE_ARRAY, (void *p, size_t a), (p, a))
DELETE_HOOK(_ZdlPvmSt11align_val_t, MT_OP_DELETE, (void *p, size_t n, size_t a), (p, n, a))
DELETE_HOOK(_ZdaPvmSt11align_val_t, MT_OP_DELETE_ARRAY, (void *p, size_t n, size_t a), (p, n, a))
DELETE_HOOK(_ZdlPvRKSt9nothrow_t, MT_OP_DELETE, (void *p, const void *t), (p, t))
DELETE_HOOK(_ZdaPvRKSt9nothrow_t, MT_OP_DELETE_ARRAY, (void *p, const void *t), (p, t))
DELETE_HOOK(_ZdlPvSt11align_val_tRKSt9nothrow_t, MT_OP_DELETE, (void *p, size_t a, const void *t), (p, a, t))
DELETE_HOOK(_ZdaPvSt11align_val_tRKSt9nothrow_t, MT_OP_DELETE_ARRAY, (void *p, size_t a, const void *t),
            (p, a, t))

/* ---- modules ---- */

MT_EXPORT void *dlopen(const char *file, int flags)
{
    resolve();
    void *h = real.dlopen(file, flags);
    if (h && recording()) {
        int e = errno;
        ENTER();
        mt__modules_scan();
        errno = e;
    }
    return h;
}

MT_EXPORT int dlclose(void *h)
{
    resolve();
    int rc = real.dlclose(h);
    if (atomic_load(&mt__state) == MT_STATE_ACTIVE && !mt__tls.busy) {
        int e = errno;
        ENTER();
        mt__modules_scan();
        errno = e;
    }
    return rc;
}

/* ---- threads ---- */

/* glibc's pthread_getattr_np holds the thread's lock while it allocates
 * (the main thread's reads /proc/self/maps through stdio). When that is a
 * thread's first allocation, the hook finds the thread's stack bounds with
 * pthread_getattr_np too, and would wait for the lock forever: Rust's
 * runtime and garbage collectors ask for a new thread's stack this way.
 * Inside this call the hook leaves the bounds for later (mt__stack_bounds):
 * its stacks go to libunwind meanwhile. */
MT_EXPORT int pthread_getattr_np(pthread_t th, pthread_attr_t *attr)
{
    resolve();
    if (MT_UNLIKELY(!real.pthread_getattr_np))
        return ENOSYS;
    mt__tls.in_getattr++;
    int rc = real.pthread_getattr_np(th, attr);
    mt__tls.in_getattr--;
    return rc;
}

/* ---- exec and _exit: flush first ---- */

MT_EXPORT int execve(const char *path, char *const argv[], char *const envp[])
{
    resolve();
    mt__process_before_exec();
    return real.execve(path, argv, envp);
}

MT_EXPORT int execv(const char *path, char *const argv[])
{
    resolve();
    mt__process_before_exec();
    return real.execv(path, argv);
}

MT_EXPORT int execvp(const char *file, char *const argv[])
{
    resolve();
    mt__process_before_exec();
    return real.execvp(file, argv);
}

MT_EXPORT int execvpe(const char *file, char *const argv[], char *const envp[])
{
    resolve();
    mt__process_before_exec();
    return real.execvpe(file, argv, envp);
}

MT_EXPORT int fexecve(int fd, char *const argv[], char *const envp[])
{
    resolve();
    mt__process_before_exec();
    return real.fexecve(fd, argv, envp);
}

/* execl, execle, execlp: collect the variadic arguments into an array on
 * the stack (no allocation) and go through the v-forms above. */
#define COLLECT_ARGS(first, ap, argv, envp_out)                      \
    size_t argc_ = 1;                                                \
    va_start(ap, first);                                             \
    while (va_arg(ap, char *))                                       \
        argc_++;                                                     \
    va_end(ap);                                                      \
    char *argv[argc_ + 1];                                           \
    argv[0] = (char *)(first);                                       \
    va_start(ap, first);                                             \
    for (size_t i_ = 1; i_ <= argc_; i_++)                           \
        argv[i_] = va_arg(ap, char *);                               \
    envp_out;                                                        \
    va_end(ap)

MT_EXPORT int execl(const char *path, const char *arg, ...)
{
    va_list ap;
    COLLECT_ARGS(arg, ap, argv, (void)0);
    return execv(path, argv);
}

MT_EXPORT int execlp(const char *file, const char *arg, ...)
{
    va_list ap;
    COLLECT_ARGS(arg, ap, argv, (void)0);
    return execvp(file, argv);
}

MT_EXPORT int execle(const char *path, const char *arg, ...)
{
    va_list ap;
    char **envp;
    COLLECT_ARGS(arg, ap, argv, envp = va_arg(ap, char **));
    return execve(path, argv, envp);
}

MT_EXPORT void _exit(int status)
{
    resolve();
    mt__process_before_exit();
    if (real.exit_)
        real.exit_(status);
    syscall(SYS_exit_group, status);
    __builtin_unreachable();
}

MT_EXPORT void _Exit(int status)
{
    resolve();
    mt__process_before_exit();
    if (real.Exit_)
        real.Exit_(status);
    syscall(SYS_exit_group, status);
    __builtin_unreachable();
}

/* ---- the snapshot signal ----
 * When MEMTRACK_SNAPSHOT_SIGNAL is set, a handler the program installs for
 * that signal (usually from main, after memtrack's constructor) is chained
 * behind memtrack's instead of replacing it. glibc's signal() does not go
 * through the sigaction symbol, so both are hooked. */

MT_EXPORT int sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
    static int (*fn)(int, const struct sigaction *, struct sigaction *);
    if (mt__snapshot_sigaction(sig, act, old))
        return 0;
    CXX_LOOKUP(fn, "sigaction");
    if (!fn) {
        errno = ENOSYS;
        return -1;
    }
    return fn(sig, act, old);
}

MT_EXPORT sighandler_t signal(int sig, sighandler_t handler)
{
    static sighandler_t (*fn)(int, sighandler_t);
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sa.sa_flags = SA_RESTART;
    if (mt__snapshot_sigaction(sig, &sa, &old))
        return (old.sa_flags & SA_SIGINFO) ? (sighandler_t)(void (*)(void))old.sa_sigaction : old.sa_handler;
    CXX_LOOKUP(fn, "signal");
    if (!fn) {
        errno = ENOSYS;
        return SIG_ERR;
    }
    return fn(sig, handler);
}

/* ---- public API ---- */

MT_EXPORT void memtrack_snapshot(const char *label)
{
    if (!recording())
        return;
    ENTER();
    int e = errno;
    mt_ring_t *r = mt__ring_get();
    uint32_t id = mt__label_intern(label ? label : "");
    if (r && id != UINT32_MAX) {
        mt_ring_event_t *slot = mt__ring_reserve(r);
        if (slot)
            mt__ring_commit(slot, mt__next_seq(), id, mt__os_now_ns(), 0, MT_EV_MARKER_OP);
    }
    errno = e;
}
