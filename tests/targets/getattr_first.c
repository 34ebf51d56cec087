/* getattr_first.c - threads whose first allocation happens inside
 * pthread_getattr_np, as in Rust's runtime and in garbage collectors that
 * ask for a thread's stack before it allocated anything.
 *
 * glibc holds the thread's lock while pthread_getattr_np allocates; a
 * profiler that asks for the same thread's stack from its allocation hook
 * would wait for that lock forever. The main thread and two new threads
 * each call pthread_getattr_np on themselves first, then allocate and free
 * one block: malloc(1601) in the main thread, malloc(1602) in each new one.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

static int stack_then_block(size_t size)
{
    pthread_attr_t attr;
    void *lo;
    size_t len;
    if (pthread_getattr_np(pthread_self(), &attr) != 0)
        return 1;
    int rc = pthread_attr_getstack(&attr, &lo, &len) != 0 || len == 0;
    pthread_attr_destroy(&attr);
    void *p = malloc(size);
    if (!p)
        return 1;
    free(p);
    return rc;
}

static void *thread_main(void *arg)
{
    (void)arg;
    return (void *)(long)stack_then_block(1602);
}

int main(void)
{
    int rc = stack_then_block(1601);
    for (int i = 0; i < 2; i++) {
        pthread_t t;
        void *res;
        if (pthread_create(&t, NULL, thread_main, NULL) != 0 || pthread_join(t, &res) != 0)
            return 1;
        rc |= res != NULL;
    }
    printf("getattr_first: %s\n", rc ? "failed" : "done");
    return rc;
}
