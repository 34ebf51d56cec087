/* batch_patterns.c - runs N batches that each exercise one growth pattern, with a snapshot after each.
 *
 * Usage: batch_patterns [N]   (default 20 batches)
 *
 * Per batch, every pattern runs once, each through its own function and
 * allocation size so that a test can tell the sites apart:
 * - make_entry (48 B) reached through keep_forever, which keeps every entry
 *   (a leak of 48 B per batch), and through use_and_drop, which keeps only
 *   the latest (flat): only the keep_forever stack is a leak;
 * - leak_sometimes (200 B) keeps one block in every 5th batch (i % 5 == 4);
 * - cache_put (512 B) fills a cache of 8 slots, then replaces the oldest:
 *   it grows for 8 batches and then stays flat;
 * - scratch_work (4096 B) frees its buffer before the batch ends;
 * - queue_push (96 B) queues 3 items per batch; every 4th batch drains the
 *   queue (i % 4 == 3): a sawtooth.
 * load_config (333 B) runs once before the first batch and is never freed.
 * At exit the cache, the queue and the latest use_and_drop entry are freed,
 * so what is live at exit is load_config, keep_forever's entries and
 * leak_sometimes' blocks. The program prints one line, the same with or
 * without memtrack.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <memtrack.h>

#define CACHE_SLOTS 8
#define QUEUE_MAX 64

typedef struct entry {
    struct entry *next;
    char text[40];
} entry_t;

static entry_t *kept;          /* keep_forever's list: still referenced, never freed */
static entry_t *latest;        /* use_and_drop's latest entry */
static void *sometimes[64];
static int nsometimes;
static char *cache[CACHE_SLOTS];
static int cache_next;
static void *queue[QUEUE_MAX];
static int queue_len;
static char *config;
static unsigned long checksum;

static entry_t *make_entry(int i)
{
    entry_t *e = malloc(sizeof *e);
    e->next = NULL;
    snprintf(e->text, sizeof e->text, "entry-%d", i);
    checksum += (unsigned long)strlen(e->text);
    return e;
}

static void keep_forever(int i)
{
    entry_t *e = make_entry(i);
    e->next = kept;
    kept = e;
}

static void use_and_drop(int i)
{
    entry_t *e = make_entry(i);
    free(latest);
    latest = e;
}

static void leak_sometimes(int i)
{
    if (i % 5 == 4 && nsometimes < 64) {
        sometimes[nsometimes] = malloc(200);
        memset(sometimes[nsometimes++], i, 200);
    }
}

static void cache_put(int i)
{
    free(cache[cache_next]);
    cache[cache_next] = malloc(512);
    memset(cache[cache_next], i, 512);
    cache_next = (cache_next + 1) % CACHE_SLOTS;
}

static void scratch_work(int i)
{
    char *buf = malloc(4096);
    memset(buf, i, 4096);
    checksum += (unsigned char)buf[i % 4096];
    free(buf);
}

static void queue_push(int i)
{
    for (int k = 0; k < 3 && queue_len < QUEUE_MAX; k++) {
        queue[queue_len] = malloc(96);
        memset(queue[queue_len++], k, 96);
    }
    if (i % 4 == 3) {
        while (queue_len)
            free(queue[--queue_len]);
    }
}

static void load_config(void)
{
    config = malloc(333);
    memset(config, 'c', 333);
}

static void run_batch(int i)
{
    keep_forever(i);
    use_and_drop(i);
    leak_sometimes(i);
    cache_put(i);
    scratch_work(i);
    queue_push(i);
}

int main(int argc, char **argv)
{
    int batches = argc > 1 ? atoi(argv[1]) : 20;
    load_config();
    for (int i = 0; i < batches; i++) {
        run_batch(i);
        MEMTRACK_SNAPSHOT("batch");
    }
    for (int k = 0; k < CACHE_SLOTS; k++)
        free(cache[k]);
    while (queue_len)
        free(queue[--queue_len]);
    free(latest);
    printf("batches=%d checksum=%lu kept=%s\n", batches, checksum, kept ? kept->text : "none");
    return 0;
}
