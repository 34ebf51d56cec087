/* quiet_spell.c - allocates, sleeps 400 ms without allocating, allocates again.
 *
 * For the writer's time points: a program that makes no events for a while
 * must not cost a TIME record every round, and its next events must still
 * be placed after the quiet spell. malloc(2101) and its free come before
 * the sleep, malloc(2102) and its free after it. Prints one line, exits 0.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int main(void)
{
    struct timespec spell = {0, 400000000};

    free(malloc(2101));
    while (nanosleep(&spell, &spell))
        ;
    free(malloc(2102));
    printf("quiet_spell: done\n");
    return 0;
}
