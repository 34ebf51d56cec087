/* criterion_suite.c - a tiny Criterion test suite: three tests, one failing on purpose.
 *
 * Criterion runs each test in a process of its own. Each test writes an
 * empty file named after its pid into the directory $MT_SUITE_PIDS (when
 * set), so a test of memtrack can check that every test process left a
 * trace. Each test allocates 2001 + its number bytes. By construction the
 * suite reports 3 tests, 2 passing, and exits 1, with or without memtrack.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static void note_pid(void)
{
    const char *dir = getenv("MT_SUITE_PIDS");
    char path[4096];
    if (!dir)
        return;
    snprintf(path, sizeof path, "%s/%d", dir, (int)getpid());
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd >= 0)
        close(fd);
}

static void allocate(size_t n)
{
    char *p = malloc(n);
    cr_assert(p);
    free(p);
}

Test(suite, first_passes)
{
    note_pid();
    allocate(2001);
    cr_assert_eq(1 + 1, 2);
}

Test(suite, second_passes)
{
    note_pid();
    allocate(2002);
    cr_assert_eq(2 * 2, 4);
}

Test(suite, third_fails_on_purpose)
{
    note_pid();
    allocate(2003);
    cr_assert_eq(1, 2, "this test fails on purpose");
}
