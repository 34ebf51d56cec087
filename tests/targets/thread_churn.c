/* thread_churn.c - 2000 short-lived threads that free each other's memory.
 *
 * Threads run in waves of WAVE. Thread t allocates A = malloc(1301) and
 * B = malloc(1302); after the wave's barrier it frees the A of its
 * neighbour in the same wave (a block of a live thread), and it frees the
 * B left by thread t - WAVE of the previous wave (a block of a thread that
 * has exited, whose ring the library may have handed to a new thread). The
 * last wave's B blocks are freed by main. So by construction: 2000 MALLOC
 * 1301, 2000 MALLOC 1302, 4000 FREE of those blocks, each block freed by a
 * thread other than the one that allocated it. Prints one line, exits 0.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#define THREADS 2000
#define WAVE 8

static void *a_blocks[THREADS];
static void *b_blocks[THREADS];
static pthread_barrier_t barrier;

static void *thread_main(void *arg)
{
    int t = (int)(size_t)arg;
    int base = t - t % WAVE;
    a_blocks[t] = malloc(1301);
    b_blocks[t] = malloc(1302);
    pthread_barrier_wait(&barrier);
    free(a_blocks[base + (t - base + 1) % WAVE]);
    if (t >= WAVE)
        free(b_blocks[t - WAVE]);
    return NULL;
}

int main(void)
{
    pthread_t threads[WAVE];
    for (int w = 0; w < THREADS / WAVE; w++) {
        pthread_barrier_init(&barrier, NULL, WAVE);
        for (int k = 0; k < WAVE; k++)
            if (pthread_create(&threads[k], NULL, thread_main, (void *)(size_t)(w * WAVE + k)) != 0)
                return 1;
        for (int k = 0; k < WAVE; k++)
            pthread_join(threads[k], NULL);
        pthread_barrier_destroy(&barrier);
    }
    for (int t = THREADS - WAVE; t < THREADS; t++)
        free(b_blocks[t]);
    printf("thread_churn: %d threads done\n", THREADS);
    return 0;
}
