/* demo.c - the README's demo: a small program with a leak, a cache and scratch buffers.
 *
 * For each of 100 records it parses the record into a scratch buffer (freed
 * at once: temporary), keeps every 10th record in a cache (freed at the end),
 * and leaks a 64-byte name copy per record in remember_name(): 6,400 bytes in
 * 100 blocks, which the report should charge to remember_name.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *cache[10];

static char *remember_name(int i)
{
    char *name = malloc(64);
    snprintf(name, 64, "record-%d", i);
    return name;
}

static size_t parse_record(int i)
{
    char *scratch = malloc(4096);
    memset(scratch, 'x', 4096);
    size_t n = (size_t)i * 7 % 4096;
    free(scratch);
    return n;
}

static void cache_record(int i)
{
    char *entry = malloc(1024);
    memset(entry, i, 1024);
    cache[i / 10] = entry;
}

int main(void)
{
    size_t total = 0;
    for (int i = 0; i < 100; i++) {
        total += parse_record(i);
        if (i % 10 == 0)
            cache_record(i);
        remember_name(i); /* the pointer is dropped: a leak */
    }
    for (int i = 0; i < 10; i++)
        free(cache[i]);
    printf("demo: processed 100 records (checksum %zu)\n", total);
    return 0;
}
