/* test_budget.c - tests of analyzer/budget.c: the budget file parser and evaluation.
 *
 * The parser tests give a text and check the set, or the exact message
 * with line and column for every kind of error; a deterministic loop feeds
 * it every prefix of a valid file and random bytes, which must never crash.
 * The evaluation tests replay hand-built traces (tests/common/trace_builder)
 * whose stacks sit in fake modules, so module globs pick sites without
 * debug information.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "budget.h"
#include "trace_builder.h"

static mt_budget_set_t parse_ok(const char *text)
{
    mt_budget_set_t set;
    char err[512];
    int rc = mt__budget_parse(text, strlen(text), &set, err, sizeof err);
    cr_assert_eq(rc, 0, "parse failed: %s", err);
    return set;
}

/* Checks that text fails with exactly the message want. */
static void expect_error(const char *text, const char *want)
{
    mt_budget_set_t set;
    char err[512];
    int rc = mt__budget_parse(text, strlen(text), &set, err, sizeof err);
    cr_expect_eq(rc, -EINVAL, "accepted: %s", text);
    cr_expect_str_eq(err, want);
    cr_expect_eq(set.n, 0);
    cr_expect_null(set.items);
}

/* ---- parsing ---- */

Test(budget_parse, the_issue_example_gives_four_budgets_with_exact_limits)
{
    mt_budget_set_t set = parse_ok(
        "{\"budgets\": [\n"
        "  {\"name\": \"whole run\",  \"peak_bytes\": \"64MiB\", \"leaked_bytes\": 0},\n"
        "  {\"name\": \"parser\",     \"function\": \"parse_*\", \"peak_bytes\": \"1MiB\", \"allocations\": 100000},\n"
        "  {\"name\": \"per batch\",  \"between\": \"batch\", \"retained_bytes\": \"4KiB\"},\n"
        "  {\"name\": \"test_load\",  \"from\": \"test_load:begin\", \"to\": \"test_load:end\", \"peak_bytes\": "
        "\"2MiB\", \"retained_bytes\": 0}\n"
        "]}\n");
    cr_assert_eq(set.n, 4);
    mt_budget_t *b = set.items;
    cr_expect_str_eq(b[0].name, "whole run");
    cr_expect_eq(b[0].region, MT_BUDGET_WHOLE_RUN);
    cr_expect_null(b[0].function);
    cr_expect_eq(b[0].nlimits, 2);
    cr_expect_eq(b[0].limits[0].metric, MT_BUDGET_PEAK_BYTES);
    cr_expect_eq(b[0].limits[0].limit, 64u << 20);
    cr_expect_eq(b[0].limits[1].metric, MT_BUDGET_LEAKED_BYTES);
    cr_expect_eq(b[0].limits[1].limit, 0);
    cr_expect_eq(b[0].line, 2);
    cr_expect_str_eq(b[1].function, "parse_*");
    cr_expect_eq(b[1].limits[1].metric, MT_BUDGET_ALLOCATIONS);
    cr_expect_eq(b[1].limits[1].limit, 100000);
    cr_expect_eq(b[2].region, MT_BUDGET_BETWEEN);
    cr_expect_str_eq(b[2].between, "batch");
    cr_expect_eq(b[2].limits[0].limit, 4096);
    cr_expect_eq(b[3].region, MT_BUDGET_FROM_TO);
    cr_expect_str_eq(b[3].from, "test_load:begin");
    cr_expect_str_eq(b[3].to, "test_load:end");
    cr_expect_eq(b[3].limits[0].limit, 2u << 20);
    mt__budget_set_free(&set);
    cr_expect_eq(set.n, 0);
}

Test(budget_parse, sizes_take_every_unit_and_exact_decimals)
{
    static const struct {
        const char *text;
        uint64_t bytes;
    } ok[] = {
        {"0", 0}, {"17", 17}, {"12B", 12}, {"2KB", 2000}, {"2KiB", 2048}, {"3MB", 3000000},
        {"3MiB", 3u << 20}, {"1GB", 1000000000}, {"1GiB", 1u << 30}, {"1.5KiB", 1536}, {"4 KiB", 4096},
        {"0.5B", 0}, {"9223372036854775808", UINT64_C(1) << 63}, {"8589934592GiB", UINT64_C(1) << 63},
    };
    char err[128];
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        uint64_t v = 1;
        int rc = mt__budget_parse_size(ok[i].text, &v, err, sizeof err);
        if (ok[i].bytes == 0 && !strcmp(ok[i].text, "0.5B")) {
            cr_expect_eq(rc, -EINVAL, "0.5B is half a byte");
            cr_expect_str_eq(err, "the size is not a whole number of bytes");
            continue;
        }
        cr_expect_eq(rc, 0, "%s: %s", ok[i].text, err);
        cr_expect_eq(v, ok[i].bytes, "%s", ok[i].text);
    }
    static const struct {
        const char *text, *msg;
    } bad[] = {
        {"4kib", "unknown unit 'kib' (B, KB, KiB, MB, MiB, GB or GiB)"},
        {"4TB", "unknown unit 'TB' (B, KB, KiB, MB, MiB, GB or GiB)"},
        {"-1KiB", "a size cannot be negative"},
        {"KiB", "a size starts with a number, as in \"4KiB\""},
        {"", "a size starts with a number, as in \"4KiB\""},
        {"1.KiB", "a decimal point needs digits after it"},
        {"9223372036854775809", "the size is larger than 2^63 bytes"},
        {"8589934593GiB", "the size is larger than 2^63 bytes"},
        {"1.0000000000000000001KiB", "too many decimals"},
        {"4  KiB", "unknown unit ' KiB' (B, KB, KiB, MB, MiB, GB or GiB)"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint64_t v;
        cr_expect_eq(mt__budget_parse_size(bad[i].text, &v, err, sizeof err), -EINVAL, "%s", bad[i].text);
        cr_expect_str_eq(err, bad[i].msg, "%s", bad[i].text);
    }
}

Test(budget_parse, malformed_json_names_line_and_column)
{
    expect_error("{\"budgets\": [\n  {\"name\": \"a\",, \"peak_bytes\": 1}\n]}", "2:18: malformed JSON near '\"peak_byte'");
    expect_error("{\"budgets\": [\n", "2:1: malformed JSON: the file ends too early");
    expect_error("{\"budgets\": [{\"name\": \"a\", \"peak_bytes\": 1}]} x", "1:47: malformed JSON: text after the end of the object");
    expect_error("", "1:1: the file is empty: expected {\"budgets\": [...]}");
    expect_error("  \n ", "2:2: the file is empty: expected {\"budgets\": [...]}");
}

Test(budget_parse, nul_byte_is_an_error_not_the_end_of_the_text)
{
    mt_budget_set_t set;
    char err[256];
    const char text[] = "{\"budgets\": []}\0garbage";
    cr_expect_eq(mt__budget_parse(text, sizeof text - 1, &set, err, sizeof err), -EINVAL);
    cr_expect_str_eq(err, "1:16: a NUL byte: this is not a text file");
}

Test(budget_parse, text_need_not_be_nul_terminated)
{
    mt_budget_set_t set;
    char err[256];
    const char *text = "{\"budgets\": [{\"name\": \"a\", \"allocations\": 12}]}trailing";
    cr_assert_eq(mt__budget_parse(text, strlen(text) - 8, &set, err, sizeof err), 0, "%s", err);
    cr_expect_eq(set.items[0].limits[0].limit, 12);
    mt__budget_set_free(&set);
}

Test(budget_parse, unknown_keys_are_errors_naming_the_key_and_where)
{
    expect_error("{\"budgets\": [{\"name\": \"a\", \"peak_bytes\": 1}], \"extra\": 1}",
                 "1:47: unknown key 'extra' (the file holds only \"budgets\")");
    expect_error("{\"budgets\": [\n {\"name\": \"p\",\n  \"peek_bytes\": 1}]}",
                 "3:3: unknown key 'peek_bytes' in budget 'p' (known keys: name, function, file, module, from, to, "
                 "between, process, peak_bytes, leaked_bytes, leaked_allocations, allocations, bytes_allocated, "
                 "temporary_allocations, retained_bytes)");
}

Test(budget_parse, wrong_types_are_errors_at_the_value)
{
    expect_error("[1]", "1:1: the file must hold an object {\"budgets\": [...]}, not an array");
    expect_error("{\"budgets\": {}}", "1:13: budgets wants an array, not an object");
    expect_error("{\"budgets\": [3]}", "1:14: budget 1 must be an object, not a number");
    expect_error("{\"budgets\": [{\"name\": 3, \"peak_bytes\": 1}]}", "1:23: name wants a string, not a number");
    expect_error("{\"budgets\": [{\"name\": \"a\", \"peak_bytes\": true}]}",
                 "1:42: peak_bytes wants a size (bytes, or a string like \"4KiB\"), not a boolean");
    expect_error("{\"budgets\": [{\"name\": \"a\", \"allocations\": \"10\"}]}",
                 "1:43: allocations wants a whole number, not a string");
    expect_error("{\"budgets\": [{\"name\": \"a\", \"function\": [\"f\"], \"allocations\": 1}]}",
                 "1:40: function wants a string, not an array");
    expect_error("{\"budgets\": [{\"name\": \"a\", \"peak_bytes\": \"4 parsecs\"}]}",
                 "1:42: peak_bytes: unknown unit 'parsecs' (B, KB, KiB, MB, MiB, GB or GiB)");
}

Test(budget_parse, numbers_must_be_whole_not_negative_and_at_most_2_to_the_63)
{
    expect_error("{\"budgets\": [{\"name\": \"a\", \"allocations\": -1}]}", "1:43: allocations cannot be negative");
    expect_error("{\"budgets\": [{\"name\": \"a\", \"allocations\": 1.5}]}", "1:43: allocations wants a whole number");
    expect_error("{\"budgets\": [{\"name\": \"a\", \"peak_bytes\": 1e3}]}", "1:42: peak_bytes wants a whole number");
    expect_error("{\"budgets\": [{\"name\": \"a\", \"peak_bytes\": 9223372036854775809}]}",
                 "1:42: peak_bytes is larger than 2^63");
    mt_budget_set_t set = parse_ok("{\"budgets\": [{\"name\": \"a\", \"peak_bytes\": 9223372036854775808, "
                                   "\"allocations\": 9007199254740993}]}");
    cr_expect_eq(set.items[0].limits[0].limit, UINT64_C(1) << 63);
    cr_expect_eq(set.items[0].limits[1].limit, UINT64_C(9007199254740993), "exact beyond a double's 2^53");
    mt__budget_set_free(&set);
}

Test(budget_parse, duplicate_keys_are_errors_at_the_second_one)
{
    expect_error("{\"budgets\": [{\"name\": \"a\", \"peak_bytes\": 1,\n \"peak_bytes\": 2}]}",
                 "2:2: duplicate key 'peak_bytes'");
    expect_error("{\"budgets\": [], \"budgets\": [{\"name\": \"a\", \"peak_bytes\": 1}]}", "1:17: duplicate key 'budgets'");
}

Test(budget_parse, budget_structure_errors)
{
    expect_error("{}", "1:1: no \"budgets\" array");
    expect_error("{\"budgets\": []}", "1:13: \"budgets\" is empty: there would be nothing to check");
    expect_error("{\"budgets\": [{\"peak_bytes\": 1}]}", "1:14: budget 1 has no \"name\"");
    expect_error("{\"budgets\": [{\"name\": \"\", \"peak_bytes\": 1}]}", "1:23: name is empty");
    expect_error("{\"budgets\": [{\"name\": \"a\"}]}",
                 "1:14: budget 'a' sets no limit (peak_bytes, leaked_bytes, leaked_allocations, allocations, "
                 "bytes_allocated, temporary_allocations or retained_bytes)");
    expect_error("{\"budgets\": [{\"name\": \"a\", \"from\": \"x\", \"peak_bytes\": 1}]}",
                 "1:28: budget 'a' has \"from\" but no \"to\"");
    expect_error("{\"budgets\": [{\"name\": \"a\", \"to\": \"x\", \"peak_bytes\": 1}]}",
                 "1:28: budget 'a' has \"to\" but no \"from\"");
    expect_error("{\"budgets\": [{\"name\": \"a\", \"from\": \"x\", \"to\": \"y\", \"between\": \"z\", \"peak_bytes\": 1}]}",
                 "1:52: budget 'a' has both \"between\" and \"from\"/\"to\": choose one");
    expect_error("{\"budgets\": [{\"name\": \"a\", \"retained_bytes\": 1}]}",
                 "1:28: budget 'a': retained_bytes needs a region (\"from\"/\"to\" or \"between\")");
    expect_error("{\"budgets\": [{\"name\": \"a\", \"between\": \"b\", \"leaked_bytes\": 1}]}",
                 "1:44: budget 'a': leaked_bytes counts what is live at the end of the run, so it has no region; "
                 "a region uses retained_bytes");
    expect_error("{\"budgets\": [{\"name\": \"a\", \"peak_bytes\": 1}, {\"name\": \"a\", \"peak_bytes\": 2}]}",
                 "1:55: budget name 'a' is used twice");
}

Test(budget_parse, load_prefixes_the_path_and_reports_a_missing_file)
{
    char path[] = "/tmp/memtrack-budget-XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    const char text[] = "{\"budgets\": [\n{\"name\": \"a\", \"peak_bytes\": \"1XB\"}]}";
    cr_assert_eq(write(fd, text, sizeof text - 1), (ssize_t)(sizeof text - 1));
    close(fd);
    mt_budget_set_t set;
    char err[512], want[512];
    cr_expect_eq(mt__budget_load(path, &set, err, sizeof err), -EINVAL);
    snprintf(want, sizeof want, "%s:2:29: peak_bytes: unknown unit 'XB' (B, KB, KiB, MB, MiB, GB or GiB)", path);
    cr_expect_str_eq(err, want);
    unlink(path);
    cr_expect_eq(mt__budget_load(path, &set, err, sizeof err), -ENOENT);
    snprintf(want, sizeof want, "%s: cannot read: No such file or directory", path);
    cr_expect_str_eq(err, want);
}

Test(budget_parse, never_crashes_on_prefixes_or_random_bytes)
{
    const char *valid = "\xEF\xBB\xBF{\"budgets\": [{\"name\": \"a\\\"b\", \"function\": \"f*\", \"from\": \"x\", "
                        "\"to\": \"y\", \"peak_bytes\": \"1.5KiB\"}, {\"name\": \"c\", \"allocations\": 7}]}";
    size_t len = strlen(valid);
    char err[256];
    mt_budget_set_t set;
    for (size_t n = 0; n <= len; n++) {
        char *copy = malloc(n ? n : 1); /* exactly n bytes: reads past them would be caught by ASan */
        memcpy(copy, valid, n);
        int rc = mt__budget_parse(copy, n, &set, err, sizeof err);
        cr_expect_eq(rc, n == len ? 0 : -EINVAL, "prefix of %zu bytes: %s", n, err);
        mt__budget_set_free(&set);
        free(copy);
    }
    uint64_t x = 0x9e3779b97f4a7c15ull;
    const char alphabet[] = "{}[]\",:0123456789-.eE \n\\abtrufnlsKiMBGpk_";
    for (int round = 0; round < 3000; round++) {
        char buf[96];
        size_t n = (size_t)(round % (int)sizeof buf);
        for (size_t i = 0; i < n; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            buf[i] = round % 3 ? alphabet[x % (sizeof alphabet - 1)] : (char)(x & 0xff);
        }
        if (mt__budget_parse(buf, n, &set, err, sizeof err) == 0)
            mt__budget_set_free(&set);
        else
            cr_expect(err[0], "an error without a message");
    }
}

/* ---- evaluation ---- */

#define BASE 0x400000u
#define HOT "/nonexistent/memtrack-test/libhot.so"
#define COLD "/nonexistent/memtrack-test/libcold.so"

/* Stack 0 is in libhot, stack 1 in libcold. */
static mt_tb_t *trace_begin(void)
{
    mt_tb_t *b = mt_tb_new();
    mt_tb_module(b, 0, 0, BASE, BASE, BASE + 0x10000, HOT, NULL, 0);
    mt_tb_module(b, 1, 0, BASE + 0x10000, BASE + 0x10000, BASE + 0x20000, COLD, NULL, 0);
    uint64_t s0[] = {BASE + 0x100}, s1[] = {BASE + 0x10100};
    mt_tb_stack(b, 0, 0, s0, 1);
    mt_tb_stack(b, 1, 0, s1, 1);
    mt_tb_label(b, 1, "batch");
    mt_tb_label(b, 2, "begin");
    mt_tb_label(b, 3, "end");
    mt_tb_time(b, 0, 0);
    return b;
}

/* hot holds 300 bytes and frees them; then cold reaches the global peak
 * (1,000 bytes) while hot holds nothing. Between "begin" and "end": hot
 * allocates 40 (kept) and 60 (freed at once: temporary); 10 bytes allocated
 * before the region and freed inside it do not count. Three "batch"
 * markers make two intervals: the first keeps 8 bytes, the second 24.
 * Leaks at the end: 40 + 8 + 24 (hot) and 16 (cold). */
static char *sample(uint64_t pid)
{
    mt_tb_t *b = trace_begin();
    mt_tb_set_header(b, pid, 1, 0, 0, "/usr/bin/sample", "sample\0", 7);
    mt_tb_chunk_begin(b, 0, 7, 1);
    mt_tb_alloc(b, MT_OP_MALLOC, 1, 0x1000, 300, 0);
    mt_tb_free(b, MT_OP_FREE, 2, 0x1000);
    mt_tb_alloc(b, MT_OP_MALLOC, 3, 0x2000, 1000, 1);
    mt_tb_free(b, MT_OP_FREE, 4, 0x2000);
    mt_tb_alloc(b, MT_OP_MALLOC, 5, 0x3000, 10, 1);
    /* 6: marker begin */
    mt_tb_alloc(b, MT_OP_MALLOC, 7, 0x4000, 40, 0);
    mt_tb_alloc(b, MT_OP_MALLOC, 8, 0x5000, 60, 0);
    mt_tb_free(b, MT_OP_FREE, 9, 0x5000);
    mt_tb_free(b, MT_OP_FREE, 10, 0x3000);
    /* 11: marker end, 12: batch */
    mt_tb_alloc(b, MT_OP_MALLOC, 13, 0x6000, 8, 0);
    /* 14: batch */
    mt_tb_alloc(b, MT_OP_MALLOC, 15, 0x7000, 24, 0);
    /* 16: batch */
    mt_tb_alloc(b, MT_OP_MALLOC, 17, 0x8000, 16, 1);
    mt_tb_chunk_end(b);
    mt_tb_marker(b, 6, 600, 7, 2);
    mt_tb_marker(b, 11, 1100, 7, 3);
    mt_tb_marker(b, 12, 1200, 7, 1);
    mt_tb_marker(b, 14, 1400, 7, 1);
    mt_tb_marker(b, 16, 1600, 7, 1);
    mt_tb_end(b, 17, 2000, 13, 0, 2);
    char *path = mt_tb_write_temp(b);
    mt_tb_destroy(b);
    cr_assert(path);
    return path;
}

typedef struct evaluation {
    char *paths[2];
    mt_trace_t *traces[2];
    size_t n;
    mt_budget_set_t set;
    mt_budget_results_t res;
    char err[512];
    int rc;
} evaluation_t;

static void evaluate(evaluation_t *e, const char *budgets, size_t ntraces, bool merge, const mt_patterns_t *supp)
{
    memset(e, 0, sizeof *e);
    e->set = parse_ok(budgets);
    for (size_t i = 0; i < ntraces; i++) {
        e->paths[i] = sample(1000 + i);
        char err[512];
        cr_assert_eq(mt__trace_open(e->paths[i], &e->traces[i], err, sizeof err), 0, "%s", err);
    }
    e->n = ntraces;
    mt_budget_eval_options_t opt = {.merge = merge, .suppressions = supp};
    e->rc = mt__budget_evaluate(&e->set, e->traces, NULL, ntraces, &opt, &e->res, e->err, sizeof e->err);
}

static void evaluation_free(evaluation_t *e)
{
    mt__budget_results_free(&e->res);
    mt__budget_set_free(&e->set);
    for (size_t i = 0; i < e->n; i++) {
        mt__trace_close(e->traces[i]);
        unlink(e->paths[i]);
        free(e->paths[i]);
    }
}

static const mt_budget_result_t *find(const evaluation_t *e, size_t budget, mt_budget_metric_t m, long trace)
{
    for (size_t i = 0; i < e->res.n; i++)
        if (e->res.items[i].budget == budget && e->res.items[i].metric == m && e->res.items[i].trace == trace)
            return &e->res.items[i];
    cr_assert_fail("no result for budget %zu metric %s trace %ld", budget, mt__budget_metric_name(m), trace);
    return NULL;
}

Test(budget_eval, whole_run_metrics_and_top_sites)
{
    evaluation_t e;
    evaluate(&e, "{\"budgets\": [{\"name\": \"all\", \"peak_bytes\": 1000, \"leaked_bytes\": 87, "
                 "\"leaked_allocations\": 4, \"allocations\": 8, \"bytes_allocated\": 1458, "
                 "\"temporary_allocations\": 1}]}", 1, false, NULL);
    cr_assert_eq(e.rc, 0, "%s", e.err);
    cr_expect_eq(e.res.n, 6);
    const mt_budget_result_t *r = find(&e, 0, MT_BUDGET_PEAK_BYTES, 0);
    cr_expect_eq(r->measured, 1000);
    cr_expect(r->passed);
    cr_expect_eq(r->nsites, 1);
    cr_expect_eq(r->sites[0].stack, 1);
    cr_expect_eq(r->sites[0].value, 1000);
    r = find(&e, 0, MT_BUDGET_LEAKED_BYTES, 0);
    cr_expect_eq(r->measured, 88);
    cr_expect_not(r->passed);
    cr_assert_eq(r->nsites, 2);
    cr_expect_eq(r->sites[0].stack, 0);
    cr_expect_eq(r->sites[0].value, 72);
    cr_expect_eq(r->sites[1].stack, 1);
    cr_expect_eq(r->sites[1].value, 16);
    cr_expect_eq(find(&e, 0, MT_BUDGET_LEAKED_ALLOCATIONS, 0)->measured, 4);
    cr_expect_eq(find(&e, 0, MT_BUDGET_ALLOCATIONS, 0)->measured, 8);
    cr_expect_eq(find(&e, 0, MT_BUDGET_BYTES_ALLOCATED, 0)->measured, 1458);
    /* The blocks of seq 1, 3 and 8 are freed while still their thread's latest. */
    cr_expect_eq(find(&e, 0, MT_BUDGET_TEMPORARY_ALLOCATIONS, 0)->measured, 3);
    cr_expect_not(e.res.all_passed);
    evaluation_free(&e);
}

Test(budget_eval, site_peak_is_the_sites_own_high_water_mark_not_their_share_of_the_global_peak)
{
    evaluation_t e;
    evaluate(&e, "{\"budgets\": [{\"name\": \"hot\", \"module\": \"libhot.so\", \"peak_bytes\": 300, "
                 "\"allocations\": 5, \"leaked_bytes\": 72}]}", 1, false, NULL);
    cr_assert_eq(e.rc, 0, "%s", e.err);
    const mt_budget_result_t *r = find(&e, 0, MT_BUDGET_PEAK_BYTES, 0);
    cr_expect_eq(r->measured, 300);
    cr_expect(r->passed);
    cr_expect_eq(r->sites[0].stack, 0);
    cr_expect_eq(r->sites[0].value, 300);
    cr_expect_eq(find(&e, 0, MT_BUDGET_ALLOCATIONS, 0)->measured, 5);
    cr_expect_eq(find(&e, 0, MT_BUDGET_LEAKED_BYTES, 0)->measured, 72);
    cr_expect(e.res.all_passed);
    evaluation_free(&e);
}

Test(budget_eval, from_to_region_counts_only_blocks_allocated_inside_it)
{
    evaluation_t e;
    evaluate(&e, "{\"budgets\": [{\"name\": \"r\", \"from\": \"begin\", \"to\": \"end\", \"peak_bytes\": 99, "
                 "\"retained_bytes\": 40, \"allocations\": 2, \"bytes_allocated\": 100, "
                 "\"temporary_allocations\": 1}]}", 1, false, NULL);
    cr_assert_eq(e.rc, 0, "%s", e.err);
    const mt_budget_result_t *r = find(&e, 0, MT_BUDGET_PEAK_BYTES, 0);
    cr_expect_eq(r->measured, 100);
    cr_expect_not(r->passed);
    cr_expect_eq(r->intervals, 1);
    cr_expect_eq(r->worst_from_seq, 6);
    cr_expect_eq(r->worst_to_seq, 11);
    cr_expect_eq(r->sites[0].stack, 0);
    cr_expect_eq(find(&e, 0, MT_BUDGET_RETAINED_BYTES, 0)->measured, 40);
    cr_expect_eq(find(&e, 0, MT_BUDGET_ALLOCATIONS, 0)->measured, 2);
    cr_expect_eq(find(&e, 0, MT_BUDGET_BYTES_ALLOCATED, 0)->measured, 100);
    cr_expect_eq(find(&e, 0, MT_BUDGET_TEMPORARY_ALLOCATIONS, 0)->measured, 1);
    evaluation_free(&e);
}

Test(budget_eval, between_takes_the_worst_interval)
{
    evaluation_t e;
    evaluate(&e, "{\"budgets\": [{\"name\": \"b\", \"between\": \"batch\", \"retained_bytes\": 20}]}", 1, false,
             NULL);
    cr_assert_eq(e.rc, 0, "%s", e.err);
    const mt_budget_result_t *r = find(&e, 0, MT_BUDGET_RETAINED_BYTES, 0);
    cr_expect_eq(r->measured, 24);
    cr_expect_eq(r->intervals, 2);
    cr_expect_eq(r->worst_interval, 1);
    cr_expect_eq(r->worst_from_seq, 14);
    cr_expect_eq(r->worst_to_seq, 16);
    cr_expect_not(r->passed);
    evaluation_free(&e);
}

Test(budget_eval, labels_that_do_not_occur_are_errors)
{
    evaluation_t e;
    evaluate(&e, "{\"budgets\": [{\"name\": \"b\", \"between\": \"nope\", \"retained_bytes\": 20}]}", 1, false, NULL);
    cr_expect_eq(e.rc, -EINVAL);
    char want[512];
    snprintf(want, sizeof want, "budget 'b': label 'nope' never occurs in %s", e.paths[0]);
    cr_expect_str_eq(e.err, want);
    evaluation_free(&e);
    evaluate(&e, "{\"budgets\": [{\"name\": \"r\", \"from\": \"end\", \"to\": \"begin\", \"peak_bytes\": 1}]}", 1,
             false, NULL);
    cr_expect_eq(e.rc, -EINVAL);
    snprintf(want, sizeof want, "budget 'r': label 'begin' never occurs after 'end' in %s", e.paths[0]);
    cr_expect_str_eq(e.err, want);
    evaluation_free(&e);
    evaluate(&e, "{\"budgets\": [{\"name\": \"o\", \"between\": \"begin\", \"peak_bytes\": 1}]}", 1, false, NULL);
    cr_expect_eq(e.rc, -EINVAL);
    snprintf(want, sizeof want, "budget 'o': label 'begin' occurs only once in %s: an interval needs two",
             e.paths[0]);
    cr_expect_str_eq(e.err, want);
    evaluation_free(&e);
}

Test(budget_eval, per_process_by_default_summed_with_merge_and_filtered_by_process_glob)
{
    evaluation_t e;
    evaluate(&e, "{\"budgets\": [{\"name\": \"a\", \"leaked_bytes\": 100}]}", 2, false, NULL);
    cr_assert_eq(e.rc, 0, "%s", e.err);
    cr_expect_eq(e.res.n, 2);
    cr_expect_eq(find(&e, 0, MT_BUDGET_LEAKED_BYTES, 0)->measured, 88);
    cr_expect_eq(find(&e, 0, MT_BUDGET_LEAKED_BYTES, 1)->measured, 88);
    cr_expect(e.res.all_passed);
    evaluation_free(&e);
    evaluate(&e, "{\"budgets\": [{\"name\": \"a\", \"leaked_bytes\": 100}]}", 2, true, NULL);
    cr_assert_eq(e.rc, 0, "%s", e.err);
    cr_expect_eq(e.res.n, 1);
    const mt_budget_result_t *r = find(&e, 0, MT_BUDGET_LEAKED_BYTES, -1);
    cr_expect_eq(r->measured, 176);
    cr_expect_not(r->passed);
    cr_expect_eq(r->sites[0].trace, 0);
    cr_expect_eq(r->sites[1].trace, 1);
    evaluation_free(&e);
    evaluate(&e, "{\"budgets\": [{\"name\": \"a\", \"process\": \"samp*\", \"leaked_bytes\": 100}, "
                 "{\"name\": \"z\", \"process\": \"other\", \"leaked_bytes\": 100}]}", 1, false, NULL);
    cr_expect_eq(e.rc, -EINVAL);
    cr_expect_str_eq(e.err, "budget 'z': process 'other' matches none of the traces' executables (such as 'sample')");
    evaluation_free(&e);
}

Test(budget_eval, suppressions_take_leaks_out_of_the_leak_metrics)
{
    mt_patterns_t supp = {0};
    cr_assert_eq(mt__patterns_add(&supp, "libcold"), 0);
    evaluation_t e;
    evaluate(&e, "{\"budgets\": [{\"name\": \"a\", \"leaked_bytes\": 72, \"leaked_allocations\": 3}]}", 1, false,
             &supp);
    cr_assert_eq(e.rc, 0, "%s", e.err);
    cr_expect_eq(find(&e, 0, MT_BUDGET_LEAKED_BYTES, 0)->measured, 72);
    cr_expect_eq(find(&e, 0, MT_BUDGET_LEAKED_ALLOCATIONS, 0)->measured, 3);
    cr_expect(e.res.all_passed);
    evaluation_free(&e);
    mt__patterns_free(&supp);
}
