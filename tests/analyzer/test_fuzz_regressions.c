/* test_fuzz_regressions.c - replays every input kept in tests/fuzz/regressions/ through the reader and memtrack.
 *
 * Each file there is an input that once made an analyzer path crash, hang
 * or misbehave (found by `make fuzz`, or by hand), kept after the fix. Each
 * must now go through the reader, two replays and the raw record iterator
 * (tests/common/trace_check.c) to a success or a clean error naming the
 * file, and through `memtrack report` and `memtrack dump` to exit 0, or 2
 * with one line on stderr. The directory is found next to the build
 * directory (the source tree the build belongs to).
 */
#include <criterion/criterion.h>

#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "e2e.h"
#include "trace_check.h"

static void check_input(const char *path)
{
    size_t len;
    char *bytes = mt_e2e_read_file(path, &len);
    char why[128];
    mt_tc_result_t res;
    mt_tc_cli_t c;

    cr_assert_not_null(bytes, "cannot read %s", path);
    free(bytes);
    if (mt_tc_exercise(path, &res) != 0)
        cr_assert(mt_tc_message_ok(res.err, path, len, why, sizeof why), "%s: the message %s: %s",
                  path, why, res.err);
    for (int i = 0; i < 2; i++) {
        const char *cmd = i ? "dump" : "report";
        cr_assert_eq(mt_tc_run_cli(cmd, path, &c), 0);
        cr_assert_eq(c.signal, 0, "%s: memtrack %s was killed by signal %d", path, cmd, c.signal);
        cr_assert(c.exit_code == 0 || c.exit_code == 2, "%s: memtrack %s exited %d: %s", path, cmd,
                  c.exit_code, c.err);
        if (c.exit_code == 2)
            cr_assert_eq(c.err_lines, 1, "%s: memtrack %s said: %s", path, cmd, c.err);
        mt_tc_cli_free(&c);
    }
}

Test(fuzz_regressions, every_kept_input_gives_a_clean_error_or_an_analysis)
{
    char dir[PATH_MAX], path[PATH_MAX + 256];
    const char *build = mt_e2e_own_build_dir();
    struct dirent *e;
    size_t n = 0;
    DIR *d;

    cr_assert_not_null(build);
    snprintf(dir, sizeof dir, "%s/../tests/fuzz/regressions", build);
    d = opendir(dir);
    cr_assert_not_null(d, "no %s", dir);
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || !strcmp(e->d_name, "README.md"))
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        check_input(path);
        n++;
    }
    closedir(d);
    cr_assert_gt(n, 0, "%s holds no input", dir);
}
