/* batch_signal.c - a program with its own handler for the snapshot signal, or one that runs a while.
 *
 * Usage: batch_signal SIGNALS [SLEEPS]
 * Installs its own SIGUSR2 handler with signal() (after memtrack's, which
 * is installed when the library loads), checks with sigaction() that it
 * reads its own handler back, then raises SIGUSR2 SIGNALS times, each after
 * allocating 40 bytes; then sleeps SLEEPS times 2 ms, allocating and
 * freeing 56 bytes each time (for the snapshot timer). Prints
 * "own=yes handled=N": the same with or without memtrack.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static volatile sig_atomic_t handled;

static void on_usr2(int sig)
{
    (void)sig;
    handled++;
}

int main(int argc, char **argv)
{
    int signals = argc > 1 ? atoi(argv[1]) : 3;
    int sleeps = argc > 2 ? atoi(argv[2]) : 0;
    if (signal(SIGUSR2, on_usr2) == SIG_ERR)
        return 3;
    struct sigaction now;
    if (sigaction(SIGUSR2, NULL, &now) != 0)
        return 4;
    void *kept[64];
    for (int i = 0; i < signals && i < 64; i++) {
        kept[i] = malloc(40);
        raise(SIGUSR2);
    }
    for (int i = 0; i < sleeps; i++) {
        free(malloc(56));
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
    }
    printf("own=%s handled=%d\n", now.sa_handler == on_usr2 ? "yes" : "no", (int)handled);
    for (int i = 0; i < signals && i < 64; i++)
        free(kept[i]);
    return 0;
}
