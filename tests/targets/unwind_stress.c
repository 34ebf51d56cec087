/* unwind_stress.c - allocations from stacks that vary the way the cached
 * unwinder's shortcuts care about.
 *
 * Usage: unwind_stress THREADS ITERATIONS
 *
 * Each of THREADS threads and the main thread allocate ITERATIONS times at
 * random recursion depths (0 to 75, across the recorded depth), through
 * functions built with and without frame pointers (the optimize attributes
 * below, whatever the target's flags), some with alloca (a CFA based on
 * rbp), and through one function that calls the allocating functions from
 * several sites with the same unwind rule, so that consecutive walks part
 * at frames with the same stack pointer and another return address. Some
 * allocations start at one place and stack pointer with a different rbp
 * and depth, some at the same return address with another stack pointer
 * or the reverse, and the loop runs in turns from two call sites, so that
 * walks from one start differ only in rbp or in outer words. Blocks are kept in
 * a window of 64 and freed at random. test_unwind runs it under
 * the unwinder's verify build, which compares every walk with libunwind's.
 */
#include <alloca.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define NOFP __attribute__((noinline, optimize("O2", "omit-frame-pointer")))
#define FP __attribute__((noinline, optimize("O2", "no-omit-frame-pointer")))

static volatile unsigned sink;
static __thread uint64_t rng = 88172645463325252ull;

static unsigned next_random(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)rng;
}

static void keep(const void *p)
{
    sink += (unsigned)(uintptr_t)p & 1;
}

NOFP static void *leaf_a(size_t n)
{
    void *p = malloc(n);
    keep(p);
    return p;
}

NOFP static void *leaf_b(size_t n)
{
    void *p = malloc(n + 1);
    keep(p);
    return p;
}

FP static void *leaf_c(size_t n)
{
    volatile char x[40];
    x[0] = 1;
    void *p = calloc(1, n + (size_t)x[0]);
    keep(p);
    return p;
}

/* One function calling from several sites with no pushes in between: the
 * same rule at each site. */
NOFP static void *sites(unsigned w, size_t n)
{
    __asm__ volatile("" ::: "rbx", "rbp", "r12");
    void *p;
    switch (w % 6) {
    case 0: p = leaf_a(n); break;
    case 1: p = leaf_b(n); break;
    case 2: p = leaf_c(n); break;
    case 3: p = leaf_a(n + 3); break;
    case 4: p = leaf_b(n + 5); break;
    default: p = malloc(n); break;
    }
    keep(p);
    return p;
}

FP static void *sites_fp(unsigned w, size_t n)
{
    void *p;
    switch (w % 5) {
    case 0: p = leaf_a(n); break;
    case 1: p = leaf_b(n); break;
    case 2: p = sites(w >> 3, n); break;
    case 3: {
        char *q = alloca(16 + (w & 0x70));
        q[0] = 0;
        sink += (unsigned)q[0];
        p = leaf_a(n);
        break;
    }
    default: p = malloc(n); break;
    }
    keep(p);
    return p;
}

static void *down_fp(int d, unsigned w, size_t n);

NOFP static void *down_nofp(int d, unsigned w, size_t n)
{
    __asm__ volatile("" ::: "rbx", "rbp");
    void *p;
    if (d <= 0)
        p = (w & 1) ? sites(w >> 1, n) : sites_fp(w >> 1, n);
    else if (w & 2)
        p = down_fp(d - 1, w >> 2 | w << 30, n);
    else
        p = down_nofp(d - 1, w >> 2 | w << 30, n);
    keep(p);
    return p;
}

FP static void *down_fp(int d, unsigned w, size_t n)
{
    volatile char pad[24];
    pad[0] = (char)d;
    void *p;
    if (d <= 0) {
        p = (w & 1) ? sites(w >> 1, n) : sites_fp(w >> 1, n);
    } else if (w & 4) {
        p = down_nofp(d - 1, w >> 2 | w << 30, n);
    } else if (w & 8) {
        char *q = alloca(32 + (w & 0xf0));
        q[0] = 0;
        sink += (unsigned)q[0];
        p = down_fp(d - 1, w >> 3 | w << 29, n);
    } else {
        p = down_fp(d - 1, w >> 2 | w << 30, n);
    }
    keep(p);
    sink += (unsigned)pad[0] & 0;
    return p;
}

/* Allocations from one place in same_sp_leaf at one stack pointer, with
 * same_sp_down 0, 1 or 2 times between it and the caller: the alloca
 * shrinks by a frame for each frame added, so only rbp (the leaf's CFA
 * is based on it) tells these walks apart. The frames call on through one
 * pointer, from one call site, so that even the words a deeper walk reads
 * where a shallower one's frames were hold what they held. */
typedef void *(*same_sp_fn)(int d, size_t pad, size_t n);
static __thread uintptr_t same_sp_leaf_frame; /* the last leaf's frame address */

FP static void *same_sp_leaf(int d, size_t pad, size_t n)
{
    (void)d;
    char *q = alloca(pad);
    q[0] = 0;
    sink += (unsigned)q[0];
    same_sp_leaf_frame = (uintptr_t)__builtin_frame_address(0);
    void *p = malloc(n);
    keep(p);
    return p;
}

FP static void *same_sp_down(int d, size_t pad, size_t n)
{
    same_sp_fn volatile next = d > 0 ? same_sp_down : same_sp_leaf;
    void *p = next(d - 1, pad, n);
    keep(p);
    return p;
}

static void *same_sp(int d, size_t n)
{
    static __thread uintptr_t frame; /* how far apart two depths' leaf frames are */
    if (!frame) {
        free(same_sp_down(0, 16, n));
        uintptr_t shallow = same_sp_leaf_frame;
        free(same_sp_down(1, 16, n));
        frame = shallow - same_sp_leaf_frame;
        if (frame == 0 || frame > 512)
            frame = 512; /* unexpected: the test then just allocates */
    }
    return same_sp_down(d, 16 + (2 - (size_t)d) * frame, n);
}

/* Recursion through one call site by pointer, without frame pointers, to
 * one of two leaves with the same frame: each depth starts at another
 * stack pointer and both leaves at the same one, over words that all hold
 * what the other walks read, so that only the start's stack pointer and
 * return address tell these walks apart. */
typedef void *(*ptr_fn)(int d, size_t n);

NOFP static void *ptr_leaf_a(int d, size_t n)
{
    (void)d;
    void *p = malloc(n);
    keep(p);
    return p;
}

NOFP static void *ptr_leaf_b(int d, size_t n)
{
    (void)d;
    void *p = malloc(n | 1);
    keep(p);
    return p;
}

NOFP static void *ptr_step(int d, size_t n)
{
    ptr_fn volatile next = d > 0 ? ptr_step : (n & 2) ? ptr_leaf_a : ptr_leaf_b;
    void *p = next(d - 1, n);
    keep(p);
    return p;
}

static void run(unsigned iterations)
{
    void *window[64] = {0};
    free(leaf_a(16)); /* one path, met again from run's other call site */
    for (unsigned i = 0; i < iterations; i++) {
        unsigned r = next_random();
        int d;
        switch (r % 4) {
        case 0: d = (int)(next_random() % 8); break;
        case 1: d = (int)(next_random() % 70); break;
        case 2: d = 55 + (int)(next_random() % 20); break; /* around the recorded depth */
        default: d = (int)(next_random() % 3); break;
        }
        size_t n = 16 + r % 64;
        void *p;
        if ((r >> 16) % 8 == 0)
            p = same_sp((int)((r >> 20) % 3), n);
        else if ((r >> 16) % 8 == 1)
            p = ptr_step((int)((r >> 20) % 40), n);
        else
            p = (r & 16) ? down_fp(d, next_random(), n) : down_nofp(d, next_random(), n);
        unsigned k = (r >> 8) % 64;
        free(window[k]);
        window[k] = p;
    }
    for (unsigned k = 0; k < 64; k++)
        free(window[k]);
}

/* run in chunks from two call sites by turns: walks from the same inner
 * state then differ only in their outer words. */
static void run_by_turns(unsigned iterations)
{
    for (unsigned done = 0, k; done < iterations; done += k) {
        k = iterations - done < 500 ? iterations - done : 500;
        if ((done / 500) % 2) {
            run(k);
            sink += 1;
        } else {
            sink += 2;
            run(k);
        }
    }
}

static unsigned iterations;

static void *thread_main(void *arg)
{
    rng ^= (uint64_t)(uintptr_t)arg * 0x9E3779B97F4A7C15ull;
    run_by_turns(iterations);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: unwind_stress THREADS ITERATIONS\n");
        return 2;
    }
    int threads = atoi(argv[1]);
    iterations = (unsigned)strtoul(argv[2], NULL, 10);
    if (threads < 0 || threads > 8) {
        fprintf(stderr, "unwind_stress: 0 to 8 threads\n");
        return 2;
    }
    pthread_t t[8];
    for (int i = 0; i < threads; i++)
        if (pthread_create(&t[i], NULL, thread_main, (void *)(uintptr_t)(i + 1)) != 0)
            return 1;
    run_by_turns(iterations);
    for (int i = 0; i < threads; i++)
        pthread_join(t[i], NULL);
    printf("unwind_stress: done\n");
    return 0;
}
