/* switched_stacks.c - allocations on stacks the program switches to, inside
 * the bounds the main thread's stack is given (its rlimit), one of them
 * unmapped and another mapped where it was.
 *
 * Usage: switched_stacks M [walk]
 *
 * A 1 MiB stack S1 inside the main thread's bounds allocates from 12 frames
 * deep (the unwinder keeps that walk and the words it read, up to S1's
 * top). S1 is unmapped, and a 64 KiB stack S2 is mapped so that an
 * allocation M frames deep on it starts where S1's did, over words that
 * differ: S1's frames above are gone. The unwinder must find the change
 * without reading past it. With "walk", no allocation comes between (the
 * remembered walk is S1's); without it, one on the main stack does. Prints
 * "switched_stacks: done", or why it could not set the stacks up.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define NOFP __attribute__((noinline, optimize("O2", "omit-frame-pointer")))

static volatile uintptr_t sink;
static uintptr_t leaf_sp; /* the leaf's frame address at its last call */
static int depth;
static jmp_buf back;

NOFP static void leaf(void)
{
    leaf_sp = (uintptr_t)__builtin_frame_address(0);
    void *p = malloc(1701);
    sink += (uintptr_t)p;
    free(p);
}

NOFP static void deep(int d)
{
    volatile char pad[4000];
    pad[0] = (char)d;
    if (d > 0)
        deep(d - 1);
    else
        leaf();
    sink += (uintptr_t)pad[0];
}

/* The switched stack's outermost frame: its return address is 0. */
NOFP static void entry(void)
{
    deep(depth);
    longjmp(back, 1);
}

/* Runs deep(d) on the stack whose top is top, and comes back. */
static void run_on(uintptr_t top, int d)
{
    depth = d;
    top &= ~(uintptr_t)15;
    if (setjmp(back) == 0) {
        __asm__ volatile("mov %0, %%rsp\n\tpushq $0\n\tjmp *%1" ::"r"(top), "r"(entry) : "memory");
        __builtin_unreachable();
    }
}

static char *map_at(uintptr_t at, size_t size)
{
    void *p = mmap((void *)at, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    return p == MAP_FAILED || (uintptr_t)p != at ? NULL : p;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: switched_stacks M [walk]\n");
        return 2;
    }
    int m = atoi(argv[1]);
    int walk = argc > 2 && strcmp(argv[2], "walk") == 0;
    free(malloc(1702)); /* the thread's first allocation: before pthread_getattr_np */
    pthread_attr_t attr;
    void *lo;
    size_t size;
    if (pthread_getattr_np(pthread_self(), &attr) != 0 || pthread_attr_getstack(&attr, &lo, &size) != 0) {
        fprintf(stderr, "switched_stacks: no stack bounds\n");
        return 1;
    }
    pthread_attr_destroy(&attr);
    uintptr_t hi = (uintptr_t)lo + size;
    const size_t big = 1u << 20, small = 64u << 10;
    /* S1 somewhere in the bounds, well below what the main stack uses. */
    char *s1 = NULL;
    for (uintptr_t at = (hi - (3u << 20)) & ~(uintptr_t)0xfffff; !s1 && at >= (uintptr_t)lo + (1u << 20);
         at -= 1u << 20)
        s1 = map_at(at, big);
    if (!s1) {
        fprintf(stderr, "switched_stacks: no room for a stack inside the bounds %p-%#lx\n", lo, (unsigned long)hi);
        return 1;
    }
    uintptr_t top1 = (uintptr_t)s1 + big;
    run_on(top1, 0);
    uintptr_t below_top = top1 - leaf_sp; /* where the leaf's frame is at depth 0 */
    run_on(top1, 1);
    uintptr_t frame = top1 - leaf_sp - below_top;
    run_on(top1, 12); /* the walk to keep */
    uintptr_t at = leaf_sp;
    if (!walk)
        free(malloc(1703)); /* another walk: the remembered one is the main stack's */
    munmap(s1, big);
    uintptr_t top2 = at + below_top + (uintptr_t)m * frame;
    uintptr_t end2 = (top2 + 4095) & ~(uintptr_t)4095;
    if (!map_at(end2 - small, small)) {
        fprintf(stderr, "switched_stacks: cannot map the second stack\n");
        return 1;
    }
    run_on(top2, m);
    if (leaf_sp != at) {
        fprintf(stderr, "switched_stacks: the second leaf is not where the first was\n");
        return 1;
    }
    printf("switched_stacks: done\n");
    return 0;
}
