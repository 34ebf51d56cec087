/* stream_storm.c - four threads allocating and freeing for many writer rounds.
 *
 * For the reader's one-pass merge: its events spread over many chunks of
 * several streams, interleaved round by round, with blocks freed by other
 * threads than their allocators. Each of THREADS threads makes ROUNDS
 * passes; in each it allocates SLOTS blocks of sizes 1 to SLOTS, then frees
 * the SLOTS/2 blocks of even slot it made on the previous pass and, through
 * a handoff array, the SLOTS/2 blocks of odd slot its neighbour made on its
 * previous pass. Every 8 passes it sleeps 1 ms, so the run spans many
 * rounds of the writer. At the end each thread frees what is left of its
 * own and main frees the last odd blocks. So by construction: THREADS *
 * ROUNDS * SLOTS mallocs, as many frees. Prints one line, exits 0.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define THREADS 4
#define ROUNDS 2000
#define SLOTS 32

/* handoff[t][k]: thread t's odd-slot blocks of its previous pass, freed by
 * thread (t + 1) % THREADS once every thread has passed the barrier. */
static void *handoff[THREADS][SLOTS / 2];
static pthread_barrier_t barrier;

static void *thread_main(void *arg)
{
    int t = (int)(size_t)arg;
    void *mine[SLOTS / 2] = {0};
    struct timespec ms = {0, 1000000};

    for (int r = 0; r < ROUNDS; r++) {
        void *fresh[SLOTS];
        for (int k = 0; k < SLOTS; k++)
            fresh[k] = malloc((size_t)k + 1);
        for (int k = 0; k < SLOTS / 2; k++) {
            free(mine[k]);
            mine[k] = fresh[2 * k];
        }
        pthread_barrier_wait(&barrier); /* every neighbour's handoff is filled */
        int from = (t + THREADS - 1) % THREADS;
        for (int k = 0; k < SLOTS / 2; k++)
            free(handoff[from][k]);
        pthread_barrier_wait(&barrier); /* every handoff is emptied */
        for (int k = 0; k < SLOTS / 2; k++)
            handoff[t][k] = fresh[2 * k + 1];
        if (r % 8 == 7)
            nanosleep(&ms, NULL);
    }
    for (int k = 0; k < SLOTS / 2; k++)
        free(mine[k]);
    return NULL;
}

int main(void)
{
    pthread_t th[THREADS];

    pthread_barrier_init(&barrier, NULL, THREADS);
    for (int t = 0; t < THREADS; t++)
        if (pthread_create(&th[t], NULL, thread_main, (void *)(size_t)t))
            return 1;
    for (int t = 0; t < THREADS; t++)
        pthread_join(th[t], NULL);
    for (int t = 0; t < THREADS; t++)
        for (int k = 0; k < SLOTS / 2; k++)
            free(handoff[t][k]);
    printf("stream_storm: %d threads x %d passes x %d blocks\n", THREADS, ROUNDS, SLOTS);
    return 0;
}
