/* test_report.c - tests of analyzer/report.c and `memtrack report` (analyzer/cmd_report.c).
 *
 * The first half checks the rules on hand-made frames: headline selection
 * and wrapper skipping, LeakSanitizer suppression matching, grouping keys,
 * sorting and units. The second half runs mt_cmd_report on hand-built
 * traces whose one module does not exist on disk, so every frame is
 * module+offset: the JSON is parsed back with cJSON and checked exactly,
 * the text for its key lines, and bad inputs for exit status 2 and a
 * single line on stderr naming the file.
 */
#include <criterion/criterion.h>

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "commands.h"
#include "replay.h"
#include "trace_builder.h"

#define LIBC "/lib/x86_64-linux-gnu/libc.so.6"
#define LIBSTDCXX "/lib/x86_64-linux-gnu/libstdc++.so.6"
#define APP "/src/app"
#define MEMTRACK "/usr/lib/libmemtrack.so"

static mt_frame_t fr(const char *function, const char *file, uint32_t line, const char *module)
{
    return (mt_frame_t){.function = function, .file = file, .line = line, .module = module};
}

static mt_patterns_t default_wrappers(void)
{
    mt_patterns_t w = {0};
    cr_assert_eq(mt__wrappers_add_defaults(&w), 0);
    return w;
}

/* ---- headline frames ---- */

Test(headline, operator_new_is_skipped_for_the_function_that_wrote_new)
{
    mt_frame_t f[] = {
        fr("mt__capture", "unwind.c", 10, MEMTRACK),
        fr("operator new(unsigned long)", NULL, 0, LIBSTDCXX),
        fr("make_widget()", "widget.cc", 42, APP),
        fr("main", "main.cc", 10, APP),
    };
    mt_patterns_t w = default_wrappers();
    cr_expect_eq(mt__headline(f, 4, &w), 2);
    mt__patterns_free(&w);
}

Test(headline, strdup_is_skipped)
{
    mt_frame_t f[] = {fr("strdup", NULL, 0, LIBC), fr("copy_name", "names.c", 7, APP), fr("main", "main.c", 3, APP)};
    mt_frame_t g[] = {fr("__strdup", NULL, 0, LIBC), fr("copy_name", "names.c", 7, APP)};
    mt_patterns_t w = default_wrappers();
    cr_expect_eq(mt__headline(f, 3, &w), 1);
    cr_expect_eq(mt__headline(g, 2, &w), 1);
    mt__patterns_free(&w);
}

Test(headline, std_allocator_frames_are_skipped)
{
    mt_frame_t f[] = {
        fr("operator new(unsigned long)", NULL, 0, LIBSTDCXX),
        fr("std::__new_allocator<int>::allocate(unsigned long, void const*)", "new_allocator.h", 151, APP),
        fr("fill(std::vector<int, std::allocator<int> >&)", "fill.cc", 9, APP),
    };
    mt_patterns_t w = default_wrappers();
    cr_expect_eq(mt__headline(f, 3, &w), 2);
    mt__patterns_free(&w);
}

Test(headline, standard_library_frames_are_skipped_for_the_code_that_uses_them)
{
    mt_frame_t f[] = {
        fr("std::__new_allocator<int>::allocate(unsigned long, void const*)", "new_allocator.h", 137, APP),
        fr("void std::vector<int, std::allocator<int> >::_M_realloc_insert<int const&>(__gnu_cxx::"
           "__normal_iterator<int*, std::vector<int, std::allocator<int> > >, int const&)",
           "vector.tcc", 453, APP),
        fr("std::vector<int, std::allocator<int> >::push_back(int const&)", "stl_vector.h", 1287, APP),
        fr("fill(std::vector<int, std::allocator<int> >&)", "fill.cc", 7, APP),
    };
    mt_patterns_t w = default_wrappers();
    cr_expect_eq(mt__headline(f, 4, &w), 3);
    mt__patterns_free(&w);
}

Test(headline, anonymous_namespace_is_part_of_the_name)
{
    mt_frame_t f = fr("(anonymous namespace)::make_thing(int)", "t.cc", 3, APP);
    mt_patterns_t w = default_wrappers();
    cr_expect_not(mt__frame_is_wrapper(&f, &w));
    cr_assert_eq(mt__patterns_add(&w, "(anonymous namespace)::make_*"), 0);
    cr_expect(mt__frame_is_wrapper(&f, &w));
    mt__patterns_free(&w);
}

Test(headline, long_names_are_shortened_for_text)
{
    char buf[128];
    const char *name = "void std::vector<int, std::allocator<int> >::_M_realloc_insert<int const&>("
                       "__gnu_cxx::__normal_iterator<int*, std::vector<int, std::allocator<int> > >, int const&)";
    cr_expect_str_eq(mt__short_function(name, 40, buf, sizeof buf), "std::vector<>::_M_realloc_insert<>");
    cr_expect_str_eq(mt__short_function("widget::make(int)", 40, buf, sizeof buf), "widget::make(int)");
    cr_expect_str_eq(mt__short_function("a_really_long_function_name_that_goes_on(int)", 20, buf, sizeof buf),
                     "a_really_long_fun...");
    cr_expect_str_eq(mt__short_function(NULL, 20, buf, sizeof buf), "??");
}

Test(headline, user_alloc_fn_globs_extend_the_list)
{
    mt_frame_t f[] = {fr("pool_alloc(pool*, unsigned long)", "pool.c", 20, APP), fr("handler", "srv.c", 5, APP)};
    mt_patterns_t w = default_wrappers();
    cr_expect_eq(mt__headline(f, 2, &w), 0);
    cr_assert_eq(mt__patterns_add(&w, "pool_*"), 0);
    cr_expect_eq(mt__headline(f, 2, &w), 1, "the glob matches the name without its parameters");
    mt__patterns_free(&w);
}

Test(headline, frame_without_a_name_can_be_the_headline)
{
    mt_frame_t f[] = {fr(NULL, NULL, 0, APP), fr("main", "main.c", 3, APP)};
    mt_patterns_t w = default_wrappers();
    cr_expect_eq(mt__headline(f, 2, &w), 0);
    mt__patterns_free(&w);
}

Test(headline, stack_of_wrappers_only_falls_back_to_the_first_frame_outside_memtrack)
{
    mt_frame_t f[] = {fr("hook", "hooks.c", 1, MEMTRACK), fr("strdup", NULL, 0, LIBC), fr("malloc", NULL, 0, LIBC)};
    mt_patterns_t w = default_wrappers();
    cr_expect_eq(mt__headline(f, 3, &w), 1);
    cr_expect_eq(mt__headline(f + 1, 2, &w), 0);
    mt__patterns_free(&w);
}

Test(headline, operator_call_keeps_its_name_when_parameters_are_stripped)
{
    mt_frame_t f = fr("Builder::operator()(int) const", "b.cc", 3, APP);
    mt_patterns_t w = {0};
    cr_assert_eq(mt__patterns_add(&w, "Builder::operator()"), 0);
    cr_expect(mt__frame_is_wrapper(&f, &w));
    mt__patterns_free(&w);
}

/* ---- suppressions ---- */

Test(suppressions, patterns_match_like_leak_sanitizer)
{
    cr_expect(mt__suppression_match("foo", "xfooy"));
    cr_expect_not(mt__suppression_match("^foo", "xfoo"));
    cr_expect(mt__suppression_match("^foo", "foobar"));
    cr_expect(mt__suppression_match("foo$", "barfoo"));
    cr_expect_not(mt__suppression_match("foo$", "foobar"));
    cr_expect(mt__suppression_match("a*c", "xxabbbcyy"));
    cr_expect_not(mt__suppression_match("^a*c$", "abcx"));
    cr_expect(mt__suppression_match("^a*c$", "abc"));
    cr_expect(mt__suppression_match("*", "anything"));
    cr_expect_not(mt__suppression_match("foo", NULL));
    cr_expect_not(mt__suppression_match("foo", ""));
}

Test(suppressions, any_frames_function_file_or_module_can_match)
{
    mt_frame_t f[] = {fr("leaky_init", "init.c", 4, "/opt/lib/libthird.so"), fr("main", "main.c", 3, APP)};
    mt_patterns_t s = {0};
    cr_assert_eq(mt__patterns_add(&s, "nothing_here"), 0);
    cr_expect_null(mt__suppressed_by(f, 2, &s));
    cr_assert_eq(mt__patterns_add(&s, "libthird.so"), 0);
    cr_expect_str_eq(mt__suppressed_by(f, 2, &s), "libthird.so");
    mt__patterns_free(&s);
    cr_assert_eq(mt__patterns_add(&s, "init.c$"), 0);
    cr_expect_str_eq(mt__suppressed_by(f, 2, &s), "init.c$");
    mt__patterns_free(&s);
}

Test(suppressions, default_list_covers_stdio_buffers_but_not_user_code)
{
    mt_frame_t stdio[] = {fr("_IO_file_doallocate", NULL, 0, LIBC), fr("_IO_doallocbuf", NULL, 0, LIBC),
                          fr("puts", NULL, 0, LIBC), fr("main", "main.c", 3, APP)};
    mt_frame_t user[] = {fr("remember_name", "demo.c", 16, APP), fr("main", "demo.c", 44, APP),
                         fr("__libc_start_call_main", NULL, 0, LIBC)};
    mt_patterns_t s = {0};
    cr_assert_eq(mt__suppressions_add_defaults(&s), 0);
    cr_expect_not_null(mt__suppressed_by(stdio, 4, &s));
    cr_expect_null(mt__suppressed_by(user, 3, &s));
    mt__patterns_free(&s);
}

static char *write_file(const char *text)
{
    char *path = strdup("/tmp/memtrack-test-XXXXXX");
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

Test(suppressions, file_keeps_leak_lines_and_skips_the_rest)
{
    char *path = write_file("# comment\n\nleak:libfoo.so\nrace:bar\n  leak:  baz  \n");
    mt_patterns_t s = {0};
    char err[256] = "";
    cr_assert_eq(mt__suppressions_load(&s, path, err, sizeof err), 0, "%s", err);
    cr_assert_eq(s.n, 2);
    cr_expect_str_eq(s.items[0], "libfoo.so");
    cr_expect_str_eq(s.items[1], "baz");
    mt__patterns_free(&s);
    unlink(path);
    free(path);
}

Test(suppressions, malformed_line_is_reported_with_file_and_line)
{
    char *path = write_file("leak:ok\n\nnonsense\n");
    mt_patterns_t s = {0};
    char err[256] = "", want[300];
    cr_expect_eq(mt__suppressions_load(&s, path, err, sizeof err), -EINVAL);
    snprintf(want, sizeof want, "%s:3:", path);
    cr_expect(strstr(err, want) == err, "message '%s'", err);
    mt__patterns_free(&s);
    unlink(path);
    free(path);
}

/* ---- grouping ---- */

Test(grouping, group_by_function_merges_two_stacks_with_the_same_headline_function)
{
    mt_frame_t one[] = {fr("strdup", NULL, 0, LIBC), fr("make_name", "n.c", 5, APP), fr("a", "a.c", 1, APP)};
    mt_frame_t two[] = {fr("make_name", "n.c", 9, APP), fr("b", "b.c", 2, APP)};
    mt_patterns_t w = default_wrappers();
    size_t h1 = mt__headline(one, 3, &w), h2 = mt__headline(two, 2, &w);
    cr_assert_eq(h1, 1);
    cr_assert_eq(h2, 0);
    char *k1 = mt__site_key(one, 3, h1, MT_GROUP_FUNCTION), *k2 = mt__site_key(two, 2, h2, MT_GROUP_FUNCTION);
    cr_expect_str_eq(k1, k2);
    mt_rows_t rows = {0};
    mt_row_stats_t s1 = {.allocations = 3, .bytes_allocated = 30, .leaked_bytes = 10, .leaked_allocations = 1};
    mt_row_stats_t s2 = {.allocations = 2, .bytes_allocated = 8, .temporary_allocations = 2};
    cr_expect_eq(mt__rows_add(&rows, k1, 0, 4, one, 3, h1, &s1), 0);
    cr_expect_eq(mt__rows_add(&rows, k2, 0, 9, two, 2, h2, &s2), 0);
    cr_assert_eq(rows.n, 1);
    cr_expect_eq(rows.items[0].members, 2);
    cr_expect_eq(rows.items[0].stack, 4);
    cr_expect_eq(rows.items[0].stats.allocations, 5);
    cr_expect_eq(rows.items[0].stats.bytes_allocated, 38);
    cr_expect_eq(rows.items[0].stats.leaked_bytes, 10);
    cr_expect_eq(rows.items[0].stats.temporary_allocations, 2);
    cr_expect_str_eq(rows.items[0].frames[rows.items[0].headline].function, "make_name");
    mt__rows_free(&rows);
    free(k1);
    free(k2);
    mt__patterns_free(&w);
}

Test(grouping, group_by_line_and_by_stack_keep_them_apart)
{
    mt_frame_t one[] = {fr("make_name", "n.c", 5, APP), fr("a", "a.c", 1, APP)};
    mt_frame_t two[] = {fr("make_name", "n.c", 9, APP), fr("a", "a.c", 1, APP)};
    mt_frame_t three[] = {fr("make_name", "n.c", 5, APP), fr("b", "b.c", 1, APP)};
    char *l1 = mt__site_key(one, 2, 0, MT_GROUP_LINE), *l2 = mt__site_key(two, 2, 0, MT_GROUP_LINE);
    char *l3 = mt__site_key(three, 2, 0, MT_GROUP_LINE);
    char *s1 = mt__site_key(one, 2, 0, MT_GROUP_STACK), *s3 = mt__site_key(three, 2, 0, MT_GROUP_STACK);
    cr_expect_str_neq(l1, l2);
    cr_expect_str_eq(l1, l3);
    cr_expect_str_neq(s1, s3);
    free(l1);
    free(l2);
    free(l3);
    free(s1);
    free(s3);
}

Test(grouping, stack_keys_of_unnamed_frames_use_module_offsets_not_addresses)
{
    mt_frame_t p1[] = {{.module = APP, .address = 0x555500001234, .offset = 0x1234}};
    mt_frame_t p2[] = {{.module = APP, .address = 0x561200001234, .offset = 0x1234}};
    char *k1 = mt__site_key(p1, 1, 0, MT_GROUP_STACK), *k2 = mt__site_key(p2, 1, 0, MT_GROUP_STACK);
    cr_expect_str_eq(k1, k2);
    free(k1);
    free(k2);
}

Test(grouping, rows_sort_by_key_then_by_the_other_numbers_then_by_stack)
{
    mt_rows_t rows = {0};
    mt_row_stats_t a = {.peak_bytes = 10, .allocations = 1};
    mt_row_stats_t b = {.peak_bytes = 30, .allocations = 1};
    mt_row_stats_t c = {.peak_bytes = 10, .allocations = 5};
    mt_row_stats_t d = {.peak_bytes = 10, .allocations = 1};
    cr_assert_eq(mt__rows_add(&rows, NULL, 0, 3, NULL, 0, 0, &a), 0);
    cr_assert_eq(mt__rows_add(&rows, NULL, 0, 1, NULL, 0, 0, &b), 1);
    cr_assert_eq(mt__rows_add(&rows, NULL, 0, 2, NULL, 0, 0, &c), 2);
    cr_assert_eq(mt__rows_add(&rows, NULL, 0, 0, NULL, 0, 0, &d), 3);
    size_t idx[] = {0, 1, 2, 3};
    mt__rows_sort(&rows, idx, 4, MT_SORT_PEAK);
    cr_expect_eq(idx[0], 1);
    cr_expect_eq(idx[1], 2);
    cr_expect_eq(idx[2], 3, "equal numbers: lower stack id first");
    cr_expect_eq(idx[3], 0);
    mt__rows_free(&rows);
}

/* ---- units ---- */

Test(units, sizes_use_binary_units)
{
    char buf[32];
    cr_expect_str_eq(mt__format_size(0, buf, sizeof buf), "0 B");
    cr_expect_str_eq(mt__format_size(1023, buf, sizeof buf), "1023 B");
    cr_expect_str_eq(mt__format_size(1024, buf, sizeof buf), "1.0 KiB");
    cr_expect_str_eq(mt__format_size(1536, buf, sizeof buf), "1.5 KiB");
    cr_expect_str_eq(mt__format_size(262144, buf, sizeof buf), "256 KiB");
    cr_expect_str_eq(mt__format_size(1258291, buf, sizeof buf), "1.2 MiB");
    cr_expect_str_eq(mt__format_size(3ull << 30, buf, sizeof buf), "3.0 GiB");
}

Test(units, counts_have_thousands_separators)
{
    char buf[32];
    cr_expect_str_eq(mt__format_count(0, buf, sizeof buf), "0");
    cr_expect_str_eq(mt__format_count(999, buf, sizeof buf), "999");
    cr_expect_str_eq(mt__format_count(1024, buf, sizeof buf), "1,024");
    cr_expect_str_eq(mt__format_count(1234567, buf, sizeof buf), "1,234,567");
}

Test(units, durations_pick_a_readable_unit)
{
    char buf[32];
    cr_expect_str_eq(mt__format_duration(850, buf, sizeof buf), "850 ns");
    cr_expect_str_eq(mt__format_duration(12300000, buf, sizeof buf), "12.3 ms");
    cr_expect_str_eq(mt__format_duration(4200000000ull, buf, sizeof buf), "4.20 s");
}

/* ---- the command ---- */

#define BASE1 0x400000u
#define BASE2 0x7000000u
#define FAKE_MODULE "/nonexistent/memtrack-test/libfake.so"

/* Three stacks in one fake module: 0 and 2 share their innermost frame. */
static mt_tb_t *sample_begin(uint64_t base)
{
    mt_tb_t *b = mt_tb_new();
    cr_assert(b);
    mt_tb_module(b, 0, 0, base, base, base + 0x100000, FAKE_MODULE, NULL, 0);
    uint64_t s0[] = {base + 0x1010, base + 0x2020};
    uint64_t s1[] = {base + 0x1050, base + 0x2020};
    uint64_t s2[] = {base + 0x1010, base + 0x2030};
    mt_tb_stack(b, 0, 0, s0, 2);
    mt_tb_stack(b, 1, 0, s1, 2);
    mt_tb_stack(b, 2, 0, s2, 2);
    return b;
}

static mt_tb_t *sample_trace(uint64_t base)
{
    mt_tb_t *b = sample_begin(base);
    mt_tb_time(b, 0, 0);
    mt_tb_chunk_begin(b, 0, 7, 1);
    mt_tb_alloc(b, MT_OP_MALLOC, 1, 0x1000, 100, 0);
    mt_tb_alloc(b, MT_OP_MALLOC, 2, 0x2000, 200, 1); /* the peak: 300 */
    mt_tb_free(b, MT_OP_FREE, 3, 0x1000);
    mt_tb_alloc(b, MT_OP_MALLOC, 4, 0x3000, 50, 2);
    mt_tb_free(b, MT_OP_FREE, 5, 0x3000); /* temporary */
    mt_tb_free(b, MT_OP_FREE, 6, 0xdead0); /* unknown */
    mt_tb_chunk_end(b);
    mt_tb_time(b, 2, 2000);
    mt_tb_end(b, 6, 6000, 6, 0, 3);
    return b;
}

static char *sample_path(uint64_t base)
{
    mt_tb_t *b = sample_trace(base);
    char *path = mt_tb_write_temp(b);
    mt_tb_destroy(b);
    cr_assert(path);
    return path;
}

static char *read_all(const char *path)
{
    FILE *f = fopen(path, "r");
    cr_assert(f, "cannot read %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = calloc(1, (size_t)n + 1);
    cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    return buf;
}

/* Runs mt_cmd_report with args (NULL-terminated) and returns its status;
 * stores what it printed on stderr and stdout (malloc'd) when asked. */
static int run_report(const char *const *args, char **err, char **out)
{
    char *argv[32];
    int argc = 0;
    argv[argc++] = (char *)"report";
    for (; args[argc - 1]; argc++)
        argv[argc] = (char *)args[argc - 1];
    argv[argc] = NULL;
    char errpath[] = "/tmp/memtrack-err-XXXXXX", outpath[] = "/tmp/memtrack-out-XXXXXX";
    int efd = mkstemp(errpath), ofd = mkstemp(outpath);
    cr_assert(efd >= 0 && ofd >= 0);
    fflush(stdout);
    fflush(stderr);
    int saved_err = dup(2), saved_out = dup(1);
    dup2(efd, 2);
    dup2(ofd, 1);
    int status = mt_cmd_report(argc, argv);
    fflush(stdout);
    fflush(stderr);
    dup2(saved_err, 2);
    dup2(saved_out, 1);
    close(saved_err);
    close(saved_out);
    close(efd);
    close(ofd);
    if (err)
        *err = read_all(errpath);
    if (out)
        *out = read_all(outpath);
    unlink(errpath);
    unlink(outpath);
    return status;
}

/* Runs the report with --json -o FILE and parses the output. */
static cJSON *report_json(const char *const *args)
{
    char outpath[] = "/tmp/memtrack-json-XXXXXX";
    close(mkstemp(outpath));
    const char *full[32] = {"--json", "-o", outpath};
    size_t n = 3;
    for (size_t i = 0; args[i]; i++)
        full[n++] = args[i];
    full[n] = NULL;
    char *err;
    int status = run_report(full, &err, NULL);
    cr_assert_eq(status, 0, "exit %d: %s", status, err);
    free(err);
    char *text = read_all(outpath);
    unlink(outpath);
    cJSON *doc = cJSON_Parse(text);
    cr_assert(doc, "not JSON: %s", text);
    free(text);
    return doc;
}

static double num(const cJSON *obj, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    cr_assert(cJSON_IsNumber(v), "%s is not a number", name);
    return v->valuedouble;
}

static const char *str(const cJSON *obj, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    cr_assert(cJSON_IsString(v), "%s is not a string", name);
    return v->valuestring;
}

static const cJSON *item(const cJSON *obj, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    cr_assert(v, "no %s", name);
    return v;
}

Test(report, json_has_exact_totals_sites_and_process)
{
    char *path = sample_path(BASE1);
    cJSON *doc = report_json((const char *[]){path, NULL});
    cr_expect_str_eq(str(doc, "format"), "memtrack-report");
    cr_expect_eq(num(doc, "version"), 1);
    const cJSON *proc = item(doc, "process");
    cr_expect_eq(num(proc, "pid"), 1000);
    cr_expect_eq(num(proc, "ppid"), 1);
    cr_expect_str_eq(str(proc, "command"), "test arg");
    cr_expect_str_eq(str(proc, "trace"), path);
    cr_expect(cJSON_IsTrue(item(proc, "complete")));
    cr_expect(cJSON_IsFalse(item(proc, "truncated")));
    cr_expect(cJSON_IsFalse(item(doc, "estimated")));
    const cJSON *t = item(doc, "totals");
    cr_expect_eq(num(t, "allocations"), 3);
    cr_expect_eq(num(t, "frees"), 2);
    cr_expect_eq(num(t, "bytes_allocated"), 350);
    cr_expect_eq(num(t, "bytes_freed"), 150);
    cr_expect_eq(num(t, "peak_bytes"), 300);
    cr_expect_eq(num(t, "peak_allocations"), 2);
    cr_expect_eq(num(t, "peak_time_ns"), 2000);
    cr_expect_eq(num(t, "leaked_bytes"), 200);
    cr_expect_eq(num(t, "leaked_allocations"), 1);
    cr_expect_eq(num(t, "suppressed_leaked_bytes"), 0);
    cr_expect_eq(num(t, "temporary_allocations"), 1);
    cr_expect_eq(num(t, "temporary_bytes"), 50);
    cr_expect_eq(num(t, "unknown_frees"), 1);
    cr_expect_eq(num(t, "dropped_events"), 0);
    cr_expect_eq(num(t, "events"), 6);
    cr_expect_eq(num(doc, "sites_total"), 3);
    cr_expect_eq(num(doc, "sites_shown"), 3);
    cr_expect(cJSON_IsFalse(item(doc, "sites_truncated")));
    const cJSON *sites = item(doc, "sites");
    cr_assert_eq(cJSON_GetArraySize(sites), 3);
    /* By peak: stack 1 (200 B), stack 0 (100 B), stack 2 (0 B). */
    const double want_stack[] = {1, 0, 2}, want_peak[] = {200, 100, 0}, want_leak[] = {200, 0, 0};
    const double want_temp[] = {0, 0, 1}, want_bytes[] = {200, 100, 50}, want_frees[] = {0, 1, 1};
    for (int i = 0; i < 3; i++) {
        const cJSON *s = cJSON_GetArrayItem(sites, i);
        cr_expect_eq(num(s, "stack_id"), want_stack[i], "site %d", i);
        cr_expect_eq(num(s, "allocations"), 1);
        cr_expect_eq(num(s, "bytes_allocated"), want_bytes[i]);
        cr_expect_eq(num(s, "frees"), want_frees[i]);
        cr_expect_eq(num(s, "peak_bytes"), want_peak[i]);
        cr_expect_eq(num(s, "leaked_bytes"), want_leak[i]);
        cr_expect_eq(num(s, "leaked_allocations"), want_leak[i] ? 1 : 0);
        cr_expect_eq(num(s, "temporary_allocations"), want_temp[i]);
        cr_expect_eq(num(s, "stacks"), 1);
        cr_expect(cJSON_IsNull(item(s, "function")));
        cr_expect_str_eq(str(s, "module"), FAKE_MODULE);
        cr_expect(cJSON_IsNull(item(s, "suppression")));
    }
    const cJSON *stack = item(cJSON_GetArrayItem(sites, 0), "stack");
    cr_assert_eq(cJSON_GetArraySize(stack), 2);
    cr_expect_str_eq(str(cJSON_GetArrayItem(stack, 0), "offset"), "0x1050");
    cr_expect_str_eq(str(cJSON_GetArrayItem(stack, 1), "offset"), "0x2020");
    cr_expect_str_eq(str(cJSON_GetArrayItem(stack, 0), "address"), "0x401050");
    cr_expect(cJSON_IsFalse(item(cJSON_GetArrayItem(stack, 0), "inlined")));
    cr_expect_eq(cJSON_GetArraySize(item(doc, "snapshots")), 0);
    cr_expect_eq(cJSON_GetArraySize(item(doc, "warnings")), 0);
    cJSON_Delete(doc);
    unlink(path);
    free(path);
}

Test(report, json_lists_snapshots)
{
    mt_tb_t *b = sample_begin(BASE1);
    mt_tb_label(b, 1, "after-setup");
    mt_tb_chunk_begin(b, 0, 7, 1);
    mt_tb_alloc(b, MT_OP_MALLOC, 1, 0x1000, 100, 0);
    mt_tb_alloc(b, MT_OP_MALLOC, 3, 0x2000, 50, 1);
    mt_tb_chunk_end(b);
    mt_tb_marker(b, 2, 2500, 7, 1);
    mt_tb_end(b, 3, 6000, 2, 0, 3);
    char *path = mt_tb_write_temp(b);
    mt_tb_destroy(b);
    cJSON *doc = report_json((const char *[]){path, NULL});
    const cJSON *snaps = item(doc, "snapshots");
    cr_assert_eq(cJSON_GetArraySize(snaps), 1);
    const cJSON *s = cJSON_GetArrayItem(snaps, 0);
    cr_expect_str_eq(str(s, "label"), "after-setup");
    cr_expect_eq(num(s, "seq"), 2);
    cr_expect_eq(num(s, "time_ns"), 2500);
    cr_expect_eq(num(s, "tid"), 7);
    cr_expect_eq(num(s, "live_bytes"), 100);
    cr_expect_eq(num(s, "live_allocations"), 1);
    cJSON_Delete(doc);
    unlink(path);
    free(path);
}

Test(report, top_limits_json_sites_and_says_so)
{
    char *path = sample_path(BASE1);
    cJSON *doc = report_json((const char *[]){"--top", "1", "--sort", "leaked", path, NULL});
    /* Top 1 of each list: peak -> stack 1, leaked -> 1, allocations -> 1 (ties
     * broken by the other numbers), temporary -> 2. */
    cr_expect_eq(num(doc, "sites_total"), 3);
    cr_expect_eq(num(doc, "sites_shown"), 2);
    cr_expect(cJSON_IsTrue(item(doc, "sites_truncated")));
    cr_expect_str_eq(str(doc, "sort"), "leaked");
    const cJSON *sites = item(doc, "sites");
    cr_expect_eq(num(cJSON_GetArrayItem(sites, 0), "stack_id"), 1);
    cr_expect_eq(num(cJSON_GetArrayItem(sites, 1), "stack_id"), 2);
    cJSON_Delete(doc);
    unlink(path);
    free(path);
}

Test(report, group_by_function_merges_stacks_with_the_same_headline)
{
    char *path = sample_path(BASE1);
    cJSON *doc = report_json((const char *[]){"--group-by", "function", path, NULL});
    cr_expect_str_eq(str(doc, "group_by"), "function");
    cr_expect_eq(num(doc, "sites_total"), 2);
    const cJSON *sites = item(doc, "sites");
    cr_assert_eq(cJSON_GetArraySize(sites), 2);
    const cJSON *g = cJSON_GetArrayItem(sites, 1);
    cr_expect_eq(num(g, "stacks"), 2);
    cr_expect_eq(num(g, "allocations"), 2);
    cr_expect_eq(num(g, "bytes_allocated"), 150);
    cr_expect_eq(num(g, "peak_bytes"), 100);
    cr_expect_eq(num(g, "temporary_allocations"), 1);
    cr_expect_str_eq(str(cJSON_GetArrayItem(item(g, "stack"), 0), "offset"), "0x1010");
    cJSON_Delete(doc);
    unlink(path);
    free(path);
}

Test(report, suppressions_file_moves_leaks_aside)
{
    char *path = sample_path(BASE1);
    char *supp = write_file("# third-party\nleak:libfake.so\n");
    cJSON *doc = report_json((const char *[]){"--suppressions", supp, path, NULL});
    const cJSON *t = item(doc, "totals");
    cr_expect_eq(num(t, "leaked_bytes"), 0);
    cr_expect_eq(num(t, "leaked_allocations"), 0);
    cr_expect_eq(num(t, "suppressed_leaked_bytes"), 200);
    cr_expect_eq(num(t, "suppressed_leaked_allocations"), 1);
    const cJSON *s = cJSON_GetArrayItem(item(doc, "sites"), 0);
    cr_expect_eq(num(s, "stack_id"), 1);
    cr_expect_eq(num(s, "leaked_bytes"), 0);
    cr_expect_eq(num(s, "suppressed_leaked_bytes"), 200);
    cr_expect_str_eq(str(s, "suppression"), "libfake.so");
    cJSON_Delete(doc);
    unlink(supp);
    free(supp);
    unlink(path);
    free(path);
}

Test(report, several_traces_give_one_report_per_process)
{
    char *p1 = sample_path(BASE1), *p2 = sample_path(BASE2);
    cJSON *doc = report_json((const char *[]){p1, p2, NULL});
    cr_expect_str_eq(str(doc, "format"), "memtrack-report");
    const cJSON *procs = item(doc, "processes");
    cr_assert_eq(cJSON_GetArraySize(procs), 2);
    cr_expect_str_eq(str(item(cJSON_GetArrayItem(procs, 0), "process"), "trace"), p1);
    cr_expect_str_eq(str(item(cJSON_GetArrayItem(procs, 1), "process"), "trace"), p2);
    cr_expect_eq(num(item(cJSON_GetArrayItem(procs, 1), "totals"), "allocations"), 3);
    cr_expect_null(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(procs, 0), "format"));
    cJSON_Delete(doc);
    unlink(p1);
    unlink(p2);
    free(p1);
    free(p2);
}

Test(report, merge_matches_sites_across_address_spaces)
{
    char *p1 = sample_path(BASE1), *p2 = sample_path(BASE2);
    cJSON *doc = report_json((const char *[]){"--merge", p1, p2, NULL});
    cr_expect(cJSON_IsTrue(item(doc, "merged")));
    cr_expect(cJSON_IsNull(item(doc, "process")));
    cr_expect_eq(cJSON_GetArraySize(item(doc, "merged_from")), 2);
    const cJSON *t = item(doc, "totals");
    cr_expect_eq(num(t, "allocations"), 6);
    cr_expect_eq(num(t, "peak_bytes"), 600);
    cr_expect_eq(num(t, "leaked_bytes"), 400);
    cr_expect(cJSON_IsNull(item(t, "peak_time_ns")));
    cr_expect_eq(num(doc, "sites_total"), 3);
    const cJSON *s = cJSON_GetArrayItem(item(doc, "sites"), 0);
    cr_expect_eq(num(s, "stacks"), 2);
    cr_expect_eq(num(s, "allocations"), 2);
    cr_expect_eq(num(s, "leaked_bytes"), 400);
    cJSON_Delete(doc);
    unlink(p1);
    unlink(p2);
    free(p1);
    free(p2);
}

Test(report, text_output_has_totals_and_top_lists)
{
    char *path = sample_path(BASE1);
    char outpath[] = "/tmp/memtrack-text-XXXXXX";
    close(mkstemp(outpath));
    char *err;
    cr_assert_eq(run_report((const char *[]){"-o", outpath, path, NULL}, &err, NULL), 0, "%s", err);
    free(err);
    char *text = read_all(outpath);
    cr_expect(strstr(text, "memtrack report: test arg (pid 1000), 6.0 us, 3 allocations\n"), "%s", text);
    cr_expect(strstr(text, "\nTOTALS\n"));
    cr_expect(strstr(text, "\n  allocations      3 (350 B)\n"), "%s", text);
    cr_expect(strstr(text, "\n  frees            2\n"));
    cr_expect(strstr(text, "\n  peak heap        300 B in 2 blocks at 2.0 us\n"), "%s", text);
    cr_expect(strstr(text, "\n  leaked           200 B in 1 block\n"), "%s", text);
    cr_expect(strstr(text, "\n  temporary        1 allocation (50 B)\n"), "%s", text);
    cr_expect(strstr(text, "\n  unknown frees    1 "));
    cr_expect(strstr(text, "\n\nTOP 10 SITES BY PEAK\n  #1 200 B at peak in 1 block   ?? (libfake.so+0x1050)\n"),
              "%s", text);
    cr_expect(strstr(text, "\nTOP 10 SITES BY LEAKED\n"));
    cr_expect(strstr(text, "\nTOP 10 SITES BY ALLOCATIONS\n"));
    cr_expect(strstr(text, "\nTOP 10 SITES BY TEMPORARY ALLOCATIONS\n  #1 1 temporary of 1 allocation"),
              "%s", text);
    cr_expect(strstr(text, "libfake.so+0x2020\n"), "%s", text);
    cr_expect_null(strchr(text, '\033'), "no colours in a file");
    free(text);
    unlink(outpath);
    unlink(path);
    free(path);
}

Test(report, sort_shows_a_single_list)
{
    char *path = sample_path(BASE1);
    char *err, *out;
    cr_assert_eq(run_report((const char *[]){"--sort", "temporary", "--top", "5", path, NULL}, &err, &out), 0);
    cr_expect(strstr(out, "TOP 5 SITES BY TEMPORARY ALLOCATIONS\n"), "%s", out);
    cr_expect_null(strstr(out, "BY PEAK"));
    free(err);
    free(out);
    unlink(path);
    free(path);
}

/* ---- bad input ---- */

static void expect_one_line_naming(const char *err, const char *name)
{
    cr_expect(strncmp(err, "memtrack: ", 10) == 0, "message '%s'", err);
    cr_expect(strstr(err, name), "message '%s' does not name %s", err, name);
    const char *nl = strchr(err, '\n');
    cr_expect(nl && nl[1] == '\0', "not one line: '%s'", err);
}

Test(report, missing_file_exits_2_naming_it)
{
    char *err;
    const char *path = "/nonexistent/memtrack/none.mtrace";
    cr_expect_eq(run_report((const char *[]){path, NULL}, &err, NULL), 2);
    expect_one_line_naming(err, path);
    free(err);
}

Test(report, file_that_is_not_a_trace_exits_2_naming_it)
{
    char *path = write_file("this is not a memtrack trace, just some text that is long enough\n"
                            "to fill a header and then some more, so size is not the problem.\n");
    char *err;
    cr_expect_eq(run_report((const char *[]){path, NULL}, &err, NULL), 2);
    expect_one_line_naming(err, path);
    free(err);
    unlink(path);
    free(path);
}

static void patch(const char *path, long offset, const void *bytes, size_t n)
{
    int fd = open(path, O_WRONLY);
    cr_assert(fd >= 0);
    cr_assert_eq(pwrite(fd, bytes, n, offset), (ssize_t)n);
    close(fd);
}

Test(report, newer_format_version_exits_2_naming_the_file)
{
    char *path = sample_path(BASE1);
    uint8_t v[4] = {99, 0, 0, 0};
    patch(path, 8, v, 4);
    char *err;
    cr_expect_eq(run_report((const char *[]){path, NULL}, &err, NULL), 2);
    expect_one_line_naming(err, path);
    free(err);
    unlink(path);
    free(path);
}

Test(report, corrupted_trace_exits_2_naming_the_file)
{
    mt_tb_t *b = sample_begin(BASE1);
    /* A CHUNK record whose payload is a varint that never ends. */
    const uint8_t bad[] = {MT_REC_CHUNK, 4, 0, 0, 0, 0xff, 0xff, 0xff, 0xff};
    mt_tb_raw(b, bad, sizeof bad);
    mt_tb_end(b, 6, 6000, 6, 0, 3);
    char *path = mt_tb_write_temp(b);
    mt_tb_destroy(b);
    char *err;
    cr_expect_eq(run_report((const char *[]){"--json", path, NULL}, &err, NULL), 2);
    expect_one_line_naming(err, path);
    free(err);
    unlink(path);
    free(path);
}

Test(report, truncated_trace_is_analyzed_with_a_warning)
{
    char *path = sample_path(BASE1);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(truncate(path, st.st_size - 2), 0); /* cut inside the END record */
    cJSON *doc = report_json((const char *[]){path, NULL});
    cr_expect(cJSON_IsTrue(item(item(doc, "process"), "truncated")));
    cr_expect_eq(num(item(doc, "totals"), "allocations"), 3);
    const cJSON *w = item(doc, "warnings");
    cr_assert_geq(cJSON_GetArraySize(w), 1);
    cr_expect(strstr(cJSON_GetArrayItem(w, 0)->valuestring, "cut short"));
    cJSON_Delete(doc);
    unlink(path);
    free(path);
}

Test(report, bad_options_exit_2_with_a_usage_hint)
{
    char *err;
    cr_expect_eq(run_report((const char *[]){"--bogus", "x.mtrace", NULL}, &err, NULL), 2);
    cr_expect(strstr(err, "--bogus") && strstr(err, "--help"), "%s", err);
    cr_expect(strchr(err, '\n') == err + strlen(err) - 1, "not one line: %s", err);
    free(err);
    cr_expect_eq(run_report((const char *[]){"--top", "lots", "x.mtrace", NULL}, &err, NULL), 2);
    cr_expect(strstr(err, "lots"), "%s", err);
    free(err);
    cr_expect_eq(run_report((const char *[]){"--group-by", "planet", "x.mtrace", NULL}, &err, NULL), 2);
    free(err);
    cr_expect_eq(run_report((const char *[]){"--top", NULL}, &err, NULL), 2);
    cr_expect(strstr(err, "--top"), "%s", err);
    free(err);
    cr_expect_eq(run_report((const char *[]){NULL}, &err, NULL), 2);
    cr_expect(strstr(err, "no trace"), "%s", err);
    free(err);
}

Test(report, help_prints_usage_and_exits_0)
{
    char *err, *out;
    cr_expect_eq(run_report((const char *[]){"--help", NULL}, &err, &out), 0);
    cr_expect(strstr(out, "usage: memtrack report"));
    cr_expect_str_eq(err, "");
    free(err);
    free(out);
}

Test(report, unwritable_output_exits_2_naming_it)
{
    char *path = sample_path(BASE1);
    const char *out = "/nonexistent/memtrack/out.json";
    char *err;
    cr_expect_eq(run_report((const char *[]){"--json", "-o", out, path, NULL}, &err, NULL), 2);
    expect_one_line_naming(err, out);
    free(err);
    unlink(path);
    free(path);
}

Test(report, missing_suppressions_file_exits_2_naming_it)
{
    char *path = sample_path(BASE1);
    const char *supp = "/nonexistent/memtrack/lsan.supp";
    char *err;
    cr_expect_eq(run_report((const char *[]){"--suppressions", supp, path, NULL}, &err, NULL), 2);
    expect_one_line_naming(err, supp);
    free(err);
    unlink(path);
    free(path);
}
