/* random_blocks.c - blocks of pseudo-random sizes, freed in pseudo-random order.
 *
 * For the writer's compression: its rounds barely compress (random sizes
 * and block ages, like the mallocstorm benchmark), so the writer stores
 * them and tries zstd again at a cheaper level now and then. ITERATIONS
 * times, slot x % SLOTS of an array is freed and refilled with malloc(1025
 * + 2 * (y % 4096)), x and y the next two numbers of xorshift64 from SEED;
 * every 10,000 it sleeps 5 ms, so that the run spans some 30 writer
 * rounds. All blocks are freed at the end. A test recomputes the sizes:
 * ITERATIONS mallocs, of 4096 odd sizes 1025 to 9215, none of which libc
 * asks for here. Prints one line, exits 0.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define ITERATIONS 300000
#define SLOTS 2048
#define SEED 0x9e3779b97f4a7c15ull

static uint64_t next(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

int main(void)
{
    static void *slot[SLOTS];
    struct timespec pause = {0, 5000000};
    uint64_t x = SEED;

    for (int i = 0; i < ITERATIONS; i++) {
        uint64_t at = next(&x) % SLOTS;
        size_t size = 1025 + 2 * (next(&x) % 4096);
        free(slot[at]);
        slot[at] = malloc(size);
        if (i % 10000 == 9999)
            nanosleep(&pause, NULL);
    }
    for (int k = 0; k < SLOTS; k++)
        free(slot[k]);
    printf("random_blocks: %d blocks\n", ITERATIONS);
    return 0;
}
