/* reuse_stack.c - many allocations under deep, mostly unchanged stacks.
 *
 * Exercises the unwinder's reuse of the previous walk's outer frames: a
 * recursion of varying depth (half of its levels built without frame
 * pointers, so that their rules do not use rbp; the chain's frames save and
 * restore rbp as a plain register) allocates at the bottom
 * through leaf chains of different lengths, entered from two call sites of
 * main, and once more 100 levels deep (deeper than the recorded 64 frames),
 * with the inner part getting shallower and deeper again. Every block is
 * freed. Prints one line and exits 0.
 */
#include <stdio.h>
#include <stdlib.h>

#define NOFP __attribute__((noinline, optimize("O2", "omit-frame-pointer")))

static volatile unsigned sink;

static void *leaf(unsigned kind, size_t n)
{
    if (kind == 0)
        return malloc(n);
    if (kind == 1)
        return calloc(1, n);
    void *p = malloc(n);
    return realloc(p, n * 2);
}

NOFP static void *chain(unsigned len, unsigned kind, size_t n)
{
    __asm__ volatile("" ::: "rbx", "rbp"); /* saves and restores rbp: the walk outwards needs no rbp */
    void *p = len == 0 ? leaf(kind, n) : chain(len - 1, kind, n);
    sink += (unsigned)(size_t)p & 1; /* not a tail call */
    return p;
}

static void *with_fp(int depth, unsigned len, unsigned kind, size_t n);

NOFP static void *without_fp(int depth, unsigned len, unsigned kind, size_t n)
{
    void *p = depth <= 0 ? chain(len, kind, n) : with_fp(depth - 1, len, kind, n);
    sink += (unsigned)(size_t)p & 1;
    return p;
}

static void *with_fp(int depth, unsigned len, unsigned kind, size_t n)
{
    volatile char pad[24]; /* a different frame size than without_fp */
    pad[0] = (char)depth;
    void *p = depth <= 0 ? chain(len, kind, n) : without_fp(depth - 1, len, kind, n);
    sink += (unsigned)(size_t)p & 1 + pad[0] * 0;
    return p;
}

/* Allocates and frees through every leaf chain at one recursion depth. */
static void round_at(int depth)
{
    for (unsigned i = 0; i < 24; i++) {
        void *p = with_fp(depth, (i * 7) % 12, i % 3, 16 + i);
        free(p);
    }
}

int main(void)
{
    for (int r = 0; r < 3; r++) {
        for (int d = 0; d < 12; d++)
            round_at(d * 3);
        round_at(5); /* the same depths from a second call site */
        round_at(100);
        round_at(90); /* shallower by more than the frames walked beyond the recorded depth */
    }
    printf("reuse_stack: done\n");
    return 0;
}
