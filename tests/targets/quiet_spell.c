/* quiet_spell.c - allocates, sleeps without allocating, allocates again.
 *
 * For the writer's time points: a program that makes no events for a while
 * must not cost a TIME record every round, its next events must still be
 * placed after the quiet spell, and a program killed while quiet must
 * still show how long it ran. Usage: quiet_spell [MS [kill]]: malloc(2101)
 * and its free, a sleep of MS milliseconds (400 by default), then with
 * "kill" a SIGKILL of its own, else malloc(2102) and its free, one line on
 * stdout and exit 0.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int main(int argc, char **argv)
{
    long ms = argc > 1 ? atol(argv[1]) : 400;
    struct timespec spell = {ms / 1000, (ms % 1000) * 1000000};

    free(malloc(2101));
    while (nanosleep(&spell, &spell))
        ;
    if (argc > 2 && !strcmp(argv[2], "kill"))
        raise(SIGKILL);
    free(malloc(2102));
    printf("quiet_spell: done\n");
    return 0;
}
