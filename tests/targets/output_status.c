/* output_status.c - prints a fixed text while allocating, and exits with status 42.
 *
 * Builds 500 lines with snprintf into strdup'ed strings, sorts them with
 * qsort, prints them with printf and frees them; a second thread does the
 * same for 100 lines of its own before main prints. The output and the exit
 * status (42) are the same on every run: the tests compare them with and
 * without memtrack. Allocation sizes here are not distinctive on purpose.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int by_text(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void print_sorted(const char *tag, int n)
{
    char **lines = calloc((size_t)n, sizeof *lines);
    char buf[64];
    for (int i = 0; i < n; i++) {
        snprintf(buf, sizeof buf, "%s line %05d (%d)", tag, (i * 7919) % n, i * i % 1000);
        lines[i] = strdup(buf);
    }
    qsort(lines, (size_t)n, sizeof *lines, by_text);
    for (int i = 0; i < n; i++) {
        printf("%s\n", lines[i]);
        free(lines[i]);
    }
    free(lines);
}

static void *worker(void *arg)
{
    (void)arg;
    print_sorted("worker", 100);
    return NULL;
}

int main(void)
{
    pthread_t t;
    if (pthread_create(&t, NULL, worker, NULL) != 0)
        return 1;
    pthread_join(t, NULL);
    print_sorted("main", 500);
    fputs("output_status: done\n", stdout);
    return 42;
}
