/* criterion.h - a minimal stand-in for Criterion, for test binaries built with ThreadSanitizer.
 *
 * Criterion maps its inheritable arena at random addresses that
 * ThreadSanitizer's shadow memory already holds, and aborts ("Could not
 * initialize inheritable arena"; upstream issue Snaipe/Criterion#274), so
 * `make tsan` puts this directory first on the include path instead. It
 * covers what the unit tests use: Test and TestSuite with .init, .fini,
 * .timeout and .exit_code, the cr_assert and cr_expect families, cr_log_info
 * and cr_skip_test. Each test runs in a forked process of its own, one
 * after another, and the run ends with the same "Synthesis:" line as
 * Criterion's, which tools/run-tests reads. Header-only: only a test file
 * includes it, so main exists once per test binary.
 */
#ifndef MT_NOCRITERION_H
#define MT_NOCRITERION_H

#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct mt_shim_opts {
    void (*init)(void);
    void (*fini)(void);
    double timeout;
    int exit_code;
    int signal;
    bool disabled;
    const char *description;
} mt_shim_opts_t;

typedef struct mt_shim_test {
    const char *suite, *name;
    void (*fn)(void);
    const mt_shim_opts_t *opts;
} mt_shim_test_t;

#define MT_SHIM_MAX 512
static mt_shim_test_t mt_shim_tests[MT_SHIM_MAX];
static size_t mt_shim_ntests;
static struct {
    const char *name;
    const mt_shim_opts_t *opts;
} mt_shim_suites[16];
static size_t mt_shim_nsuites;
static int mt_shim_failed;

__attribute__((unused)) static void mt_shim_register(const char *suite, const char *name, void (*fn)(void),
                                                     const mt_shim_opts_t *opts)
{
    if (mt_shim_ntests < MT_SHIM_MAX)
        mt_shim_tests[mt_shim_ntests++] = (mt_shim_test_t){suite, name, fn, opts};
}

__attribute__((unused)) static void mt_shim_register_suite(const char *name, const mt_shim_opts_t *opts)
{
    if (mt_shim_nsuites < 16)
        mt_shim_suites[mt_shim_nsuites++].name = name, mt_shim_suites[mt_shim_nsuites - 1].opts = opts;
}

#define Test(suite, name, ...)                                                              \
    static void suite##_##name##_impl(void);                                                \
    __attribute__((constructor)) static void suite##_##name##_reg(void)                     \
    {                                                                                       \
        static const mt_shim_opts_t o = {__VA_ARGS__};                                      \
        mt_shim_register(#suite, #name, suite##_##name##_impl, &o);                         \
    }                                                                                       \
    static void suite##_##name##_impl(void)

#define TestSuite(suite, ...)                                                               \
    __attribute__((constructor)) static void suite##_suite_reg(void)                        \
    {                                                                                       \
        static const mt_shim_opts_t o = {__VA_ARGS__};                                      \
        mt_shim_register_suite(#suite, &o);                                                 \
    }

__attribute__((unused, format(printf, 5, 6))) static void
mt_shim_check(bool fatal, bool ok, const char *file, int line, const char *fmt, ...)
{
    va_list ap;

    if (ok)
        return;
    fprintf(stderr, "[----] %s:%d: Assertion Failed\n[----]   ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    mt_shim_failed = 1;
    if (fatal)
        exit(1);
}

/* The message, when given, is always a string literal: " " joins it or stands for it. */
#define MT_SHIM(fatal, cond, ...) mt_shim_check(fatal, (cond), __FILE__, __LINE__, " " __VA_ARGS__)
#define cr_assert(cond, ...) MT_SHIM(true, cond, __VA_ARGS__)
#define cr_expect(cond, ...) MT_SHIM(false, cond, __VA_ARGS__)
#define cr_assert_not(cond, ...) MT_SHIM(true, !(cond), __VA_ARGS__)
#define cr_expect_not(cond, ...) MT_SHIM(false, !(cond), __VA_ARGS__)
#define cr_assert_eq(a, b, ...) MT_SHIM(true, (a) == (b), __VA_ARGS__)
#define cr_expect_eq(a, b, ...) MT_SHIM(false, (a) == (b), __VA_ARGS__)
#define cr_assert_neq(a, b, ...) MT_SHIM(true, (a) != (b), __VA_ARGS__)
#define cr_expect_neq(a, b, ...) MT_SHIM(false, (a) != (b), __VA_ARGS__)
#define cr_assert_lt(a, b, ...) MT_SHIM(true, (a) < (b), __VA_ARGS__)
#define cr_expect_lt(a, b, ...) MT_SHIM(false, (a) < (b), __VA_ARGS__)
#define cr_assert_leq(a, b, ...) MT_SHIM(true, (a) <= (b), __VA_ARGS__)
#define cr_expect_leq(a, b, ...) MT_SHIM(false, (a) <= (b), __VA_ARGS__)
#define cr_assert_gt(a, b, ...) MT_SHIM(true, (a) > (b), __VA_ARGS__)
#define cr_expect_gt(a, b, ...) MT_SHIM(false, (a) > (b), __VA_ARGS__)
#define cr_assert_geq(a, b, ...) MT_SHIM(true, (a) >= (b), __VA_ARGS__)
#define cr_expect_geq(a, b, ...) MT_SHIM(false, (a) >= (b), __VA_ARGS__)
#define cr_assert_null(p, ...) MT_SHIM(true, (p) == NULL, __VA_ARGS__)
#define cr_expect_null(p, ...) MT_SHIM(false, (p) == NULL, __VA_ARGS__)
#define cr_assert_not_null(p, ...) MT_SHIM(true, (p) != NULL, __VA_ARGS__)
#define cr_expect_not_null(p, ...) MT_SHIM(false, (p) != NULL, __VA_ARGS__)
#define cr_assert_str_eq(a, b, ...) MT_SHIM(true, strcmp((a), (b)) == 0, __VA_ARGS__)
#define cr_expect_str_eq(a, b, ...) MT_SHIM(false, strcmp((a), (b)) == 0, __VA_ARGS__)
#define cr_assert_str_neq(a, b, ...) MT_SHIM(true, strcmp((a), (b)) != 0, __VA_ARGS__)
#define cr_expect_str_neq(a, b, ...) MT_SHIM(false, strcmp((a), (b)) != 0, __VA_ARGS__)
#define cr_assert_arr_eq(a, b, n, ...) MT_SHIM(true, memcmp((a), (b), (n)) == 0, __VA_ARGS__)
#define cr_expect_arr_eq(a, b, n, ...) MT_SHIM(false, memcmp((a), (b), (n)) == 0, __VA_ARGS__)
#define cr_assert_fail(...) MT_SHIM(true, false, __VA_ARGS__)
#define cr_expect_fail(...) MT_SHIM(false, false, __VA_ARGS__)
#define cr_log_info(...) (printf("[----] " __VA_ARGS__), putchar('\n'))
#define cr_skip_test(...) (printf("[SKIP] " __VA_ARGS__), putchar('\n'), exit(0))

static const mt_shim_opts_t *mt_shim_suite_opts(const char *suite)
{
    static const mt_shim_opts_t none;
    for (size_t i = 0; i < mt_shim_nsuites; i++)
        if (!strcmp(mt_shim_suites[i].name, suite))
            return mt_shim_suites[i].opts;
    return &none;
}

static void (*mt_shim_fini)(void);
static void mt_shim_run_fini(void)
{
    if (mt_shim_fini)
        mt_shim_fini();
}

int main(void)
{
    size_t passed = 0, failed = 0, crashed = 0;

    for (size_t i = 0; i < mt_shim_ntests; i++) {
        const mt_shim_test_t *t = &mt_shim_tests[i];
        const mt_shim_opts_t *s = mt_shim_suite_opts(t->suite), *o = t->opts;
        double timeout = o->timeout ? o->timeout : s->timeout;
        int status;

        if (o->disabled)
            continue;
        fflush(NULL);
        pid_t pid = fork();
        if (pid == 0) {
            if (timeout > 0)
                alarm((unsigned)timeout + 1);
            mt_shim_fini = o->fini ? o->fini : s->fini;
            atexit(mt_shim_run_fini);
            if (s->init)
                s->init();
            if (o->init)
                o->init();
            t->fn();
            exit(mt_shim_failed ? 1 : o->exit_code);
        }
        if (pid < 0 || waitpid(pid, &status, 0) != pid) {
            perror("fork");
            return 1;
        }
        if (WIFEXITED(status) && WEXITSTATUS(status) == o->exit_code) {
            printf("[PASS] %s::%s\n", t->suite, t->name);
            passed++;
        } else if (WIFSIGNALED(status)) {
            printf("[FAIL] %s::%s: CRASH (signal %d)\n", t->suite, t->name, WTERMSIG(status));
            crashed++;
        } else {
            printf("[FAIL] %s::%s (exit %d)\n", t->suite, t->name, WEXITSTATUS(status));
            failed++;
        }
    }
    printf("[====] Synthesis: Tested: %zu | Passing: %zu | Failing: %zu | Crashing: %zu \n",
           passed + failed + crashed, passed, failed + crashed, crashed);
    return failed + crashed ? 1 : 0;
}

#endif /* MT_NOCRITERION_H */
