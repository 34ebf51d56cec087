/* key_destructor.c - a thread whose memory is freed by pthread key destructors after it returns.
 *
 * A worker thread allocates A = malloc(1501) and B = malloc(1502) and
 * stores A under a key whose destructor frees it; that destructor then
 * stores B under the key again, so a second destructor round frees B. By
 * construction: MALLOC 1501 and MALLOC 1502 in the worker, and both FREEs
 * made by the worker after its start routine returned, in destructor
 * rounds 1 and 2. Prints one line, exits 0.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

static pthread_key_t key;
static void *second;

static void release(void *p)
{
    free(p);
    if (second) {
        void *b = second;
        second = NULL;
        pthread_setspecific(key, b);
    }
}

static void *worker(void *arg)
{
    (void)arg;
    void *a = malloc(1501);
    second = malloc(1502);
    pthread_setspecific(key, a);
    return NULL;
}

int main(void)
{
    pthread_t t;
    if (pthread_key_create(&key, release) != 0 || pthread_create(&t, NULL, worker, NULL) != 0)
        return 1;
    pthread_join(t, NULL);
    printf("key_destructor: done\n");
    return 0;
}
