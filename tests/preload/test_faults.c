/* test_faults.c - the preload library under failures: the host program never notices, memtrack says it once.
 *
 * MEMTRACK_FAULT_MMAP/OPEN/WRITE=N (preload/os.c, test-only switches
 * documented in docs/reliability.md) make the library's own Nth mmap,
 * trace-file open or trace write fail. For every N over a range, the
 * target output_status (two threads, fixed output, exit status 42) must
 * print exactly what it prints without memtrack and exit 42, and memtrack
 * must say at most one line on stderr: exactly one for every N that hit a
 * call. Whatever trace is left must read cleanly. The same holds for an
 * output directory on a read-only file system and on a full one (small
 * tmpfs mounts: skipped when mount is not permitted). A setuid program
 * (AT_SECURE) is run with the library preloaded from a trusted directory,
 * as the loader demands: the library must do nothing at all. A symlink as
 * output and an existing output file are covered in test_record.c.
 */
#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "e2e.h"
#include "trace_check.h"

#define TARGET "output_status"
#define TARGET_STATUS 42
#define FAULT_RANGE 16

static char *reference_stdout(void)
{
    mt_e2e_opts_t plain = {.no_preload = true, .capture_stdout = true};
    mt_e2e_run_t run;
    char *out;

    cr_assert_eq(mt_e2e_run_target(&run, &plain, TARGET, NULL), 0);
    cr_assert_eq(run.exit_code, TARGET_STATUS);
    out = mt_e2e_read_file(run.stdout_path, NULL);
    cr_assert_not_null(out);
    mt_e2e_run_free(&run);
    return out;
}

/* Runs the target with opts (stdout and stderr captured), checks that it
 * behaved as without memtrack and that memtrack said at most one line;
 * returns the number of lines memtrack said and leaves the run in *run. */
static long run_unchanged(mt_e2e_run_t *run, mt_e2e_opts_t *o, const char *expected_out,
                          const char *what)
{
    char *out, *err;
    long lines;

    o->capture_stdout = o->capture_stderr = true;
    cr_assert_eq(mt_e2e_run_target(run, o, TARGET, NULL), 0);
    cr_assert_eq(run->signal, 0, "%s: killed by signal %d", what, run->signal);
    cr_assert_eq(run->exit_code, TARGET_STATUS, "%s: exit status %d", what, run->exit_code);
    out = mt_e2e_read_file(run->stdout_path, NULL);
    err = mt_e2e_read_file(run->stderr_path, NULL);
    cr_assert(out && err);
    cr_assert_str_eq(out, expected_out, "%s: the program's output changed", what);
    lines = mt_e2e_count_lines(run->stderr_path);
    cr_assert_leq(lines, 1, "%s: memtrack said more than one line:\n%s", what, err);
    if (lines)
        cr_assert_eq(strncmp(err, "memtrack: ", 10), 0, "%s: stderr: %s", what, err);
    free(out);
    free(err);
    return lines;
}

/* Every trace a faulty run left must read to a success or a clean error. */
static void traces_read_cleanly(const mt_e2e_run_t *run, const char *what)
{
    for (size_t i = 0; i < run->ntraces; i++) {
        mt_tc_result_t res;
        size_t len;
        char why[128], *bytes = mt_e2e_read_file(run->traces[i], &len);
        cr_assert_not_null(bytes);
        free(bytes);
        if (mt_tc_exercise(run->traces[i], &res) != 0)
            cr_assert(mt_tc_message_ok(res.err, run->traces[i], len, why, sizeof why),
                      "%s: the message %s: %s", what, why, res.err);
    }
}

static void fault_range(const char *var)
{
    char *expected = reference_stdout();
    unsigned said = 0;

    for (unsigned n = 1; n <= FAULT_RANGE; n++) {
        char setting[64], what[64];
        snprintf(setting, sizeof setting, "%s=%u", var, n);
        snprintf(what, sizeof what, "%s", setting);
        const char *env[] = {setting, NULL};
        mt_e2e_opts_t o = {.env = env};
        mt_e2e_run_t run;
        long lines = run_unchanged(&run, &o, expected, what);
        /* The first call of each kind always happens, at start. */
        if (n == 1)
            cr_assert_eq(lines, 1, "%s: memtrack said nothing about the failure", what);
        said += lines > 0;
        traces_read_cleanly(&run, what);
        mt_e2e_run_free(&run);
    }
    cr_log_info("%s: %u of %u settings hit a call", var, said, FAULT_RANGE);
    free(expected);
}

TestSuite(faults, .timeout = 120);

Test(faults, a_failed_mmap_at_any_call_leaves_the_program_alone_and_is_said_once)
{
    fault_range("MEMTRACK_FAULT_MMAP");
}

Test(faults, a_failed_trace_open_at_any_call_leaves_the_program_alone_and_is_said_once)
{
    fault_range("MEMTRACK_FAULT_OPEN");
}

Test(faults, a_failed_trace_write_at_any_call_leaves_the_program_alone_and_is_said_once)
{
    fault_range("MEMTRACK_FAULT_WRITE");
}

/* ---- file systems ---- */

/* Mounts a tmpfs of size bytes at dir (read-only when ro), or skips the test. */
static void mount_tmpfs(const char *dir, const char *size, bool ro)
{
    char opts[64];
    snprintf(opts, sizeof opts, "size=%s,mode=0777", size);
    if (mount("memtrack-test", dir, "tmpfs", ro ? MS_RDONLY : 0, opts) != 0)
        cr_skip_test("cannot mount a tmpfs at %s (%s): needs root", dir, strerror(errno));
}

Test(faults, an_output_directory_on_a_read_only_file_system_gives_one_line)
{
    char *expected = reference_stdout(), *dir = mt_e2e_tempdir(), output[4200];
    mt_e2e_run_t run;

    cr_assert_not_null(dir);
    mount_tmpfs(dir, "64k", true);
    snprintf(output, sizeof output, "%s/%%e.%%p.mtrace", dir);
    mt_e2e_opts_t o = {.output = output};
    cr_assert_eq(run_unchanged(&run, &o, expected, "read-only output directory"), 1);
    char *err = mt_e2e_read_file(run.stderr_path, NULL);
    cr_assert(strstr(err, "Read-only file system"), "%s", err);
    free(err);
    mt_e2e_run_free(&run);
    umount2(dir, MNT_DETACH);
    rmdir(dir);
    free(dir);
    free(expected);
}

/* Fills the file system holding dir until it refuses another byte. */
static void fill(const char *dir)
{
    char path[4200], block[4096];
    int fd;

    memset(block, 'x', sizeof block);
    snprintf(path, sizeof path, "%s/filler", dir);
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    cr_assert(fd >= 0);
    while (write(fd, block, sizeof block) > 0)
        ;
    while (write(fd, block, 1) > 0)
        ;
    cr_assert_eq(errno, ENOSPC);
    close(fd);
}

Test(faults, a_full_disk_gives_one_line_and_leaves_no_partial_trace)
{
    char *expected = reference_stdout(), *dir = mt_e2e_tempdir(), output[4200];
    mt_e2e_run_t run;

    cr_assert_not_null(dir);
    mount_tmpfs(dir, "64k", false);
    fill(dir);
    snprintf(output, sizeof output, "%s/%%e.%%p.mtrace", dir);
    mt_e2e_opts_t o = {.output = output};
    cr_assert_eq(run_unchanged(&run, &o, expected, "full disk"), 1);
    char *err = mt_e2e_read_file(run.stderr_path, NULL);
    cr_assert(strstr(err, "No space left on device"), "%s", err);
    free(err);
    mt_e2e_run_free(&run);
    /* The half-created trace was removed: only the filler is there. */
    DIR *d = opendir(dir);
    struct dirent *e;
    cr_assert_not_null(d);
    while ((e = readdir(d)) != NULL)
        cr_assert(!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") || !strcmp(e->d_name, "filler"),
                  "the full disk holds %s after the run", e->d_name);
    closedir(d);
    umount2(dir, MNT_DETACH);
    rmdir(dir);
    free(dir);
    free(expected);
}

/* ---- setuid programs ---- */

static int copy_file(const char *from, const char *to, mode_t mode)
{
    size_t len;
    char *bytes = mt_e2e_read_file(from, &len);
    int fd, rc = -1;

    if (!bytes)
        return -1;
    fd = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd >= 0 && write(fd, bytes, len) == (ssize_t)len)
        rc = 0;
    if (fd >= 0)
        close(fd);
    free(bytes);
    return rc == 0 ? chmod(to, mode) : -1;
}

Test(faults, a_setuid_program_gets_no_recording_at_all)
{
    /* The loader preloads nothing with a '/' into a secure process, and a
     * bare name only from its trusted directories when the file is itself
     * setuid: so the library goes there, under a name of its own. */
    static const char *trusted[] = {"/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu",
                                    "/usr/lib64", "/usr/lib"};
    const struct passwd *nobody = getpwnam("nobody");
    char lib_name[64], lib_path[256] = "", prog[4200], maps_arg[] = "/proc/self/maps";
    char *dir = mt_e2e_tempdir();

    if (geteuid() != 0 || !nobody)
        cr_skip_test("needs root and a user 'nobody' to make a setuid program");
    cr_assert_not_null(dir);
    /* cat, setuid nobody, shows its own map: the library is in it or not. */
    snprintf(prog, sizeof prog, "%s/cat", dir);
    cr_assert_eq(copy_file("/bin/cat", prog, 0755), 0);
    cr_assert_eq(chown(prog, nobody->pw_uid, nobody->pw_gid), 0);
    cr_assert_eq(chmod(prog, 04755), 0);
    cr_assert_eq(chmod(dir, 0777), 0); /* a trace could be written here, if the library tried */

    snprintf(lib_name, sizeof lib_name, "libmemtrack-secure-test.%d.so", (int)getpid());
    for (size_t i = 0; i < sizeof trusted / sizeof trusted[0] && !lib_path[0]; i++) {
        snprintf(lib_path, sizeof lib_path, "%s/%s", trusted[i], lib_name);
        if (copy_file(mt_e2e_preload_path(), lib_path, 04755) != 0)
            lib_path[0] = '\0';
    }
    if (!lib_path[0])
        cr_skip_test("cannot place a library in a trusted directory of the loader");
    /* From here to the unlink below, nothing may stop the test. */
    char preload[128];
    snprintf(preload, sizeof preload, "LD_PRELOAD=%s", lib_name);
    const char *env[] = {preload, "MEMTRACK_OUTPUT=memtrack-secure.%p.mtrace", NULL};
    mt_e2e_opts_t o = {.no_output = true, .env = env, .dir = dir, .capture_stdout = true,
                       .capture_stderr = true};
    char *argv[] = {prog, maps_arg, NULL};
    mt_e2e_run_t run;
    int rc = mt_e2e_run(&run, argv, &o);
    unlink(lib_path);
    cr_assert_eq(rc, 0);
    cr_assert_eq(run.exit_code, 0);
    char *maps = mt_e2e_read_file(run.stdout_path, NULL);
    char *err = mt_e2e_read_file(run.stderr_path, NULL);
    cr_assert(maps && err);
    cr_assert(strstr(maps, lib_name), "the loader did not load %s into the setuid program", lib_name);
    cr_assert_str_eq(err, "", "memtrack spoke in a setuid program: %s", err);
    /* Only the program and the captured output: no trace. */
    for (size_t i = 0; i < run.ntraces; i++)
        cr_assert(mt_e2e_basename_is(run.traces[i], "cat"), "a setuid run left %s", run.traces[i]);
    free(maps);
    free(err);
    mt_e2e_run_free(&run);
    mt_e2e_remove_tree(dir);
    free(dir);
}
