/* deep_stack.c - allocates at the bottom of a ten-call-deep recursion.
 *
 * By construction: one MALLOC 1901 made by descend() at recursion depth 10
 * (so its full stack has at least 12 frames: 10 descend frames, main and
 * libc's start code), and one MALLOC 1902 made by main. Both are freed.
 * Prints one line and exits 0.
 */
#include <stdio.h>
#include <stdlib.h>

static void *descend(int depth)
{
    if (depth == 0)
        return malloc(1901);
    void *p = descend(depth - 1);
    return p; /* not a tail call: every level keeps its frame */
}

int main(void)
{
    void *deep = descend(9);
    void *shallow = malloc(1902);
    free(deep);
    free(shallow);
    printf("deep_stack: done\n");
    return 0;
}
