/* test_html.c - the `memtrack html` page, opened in real headless Chromium.
 *
 * Each test records a target, writes its report and opens it in Debian's
 * chromium with the #selftest fragment and every background network
 * feature off. The page then draws itself, clicks a flame graph frame with
 * a real click event, reads its own tables, lists the resources it loaded
 * and the console errors it saw, and writes all that as JSON into
 * <pre id="mt-selftest">; the test reads it from --dump-dom and checks it.
 * Without chromium (tools/install-deps installs it) the tests are skipped
 * with a loud message.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "e2e.h"

/* Returns the path of chromium found in PATH (static), or NULL. */
static const char *find_chromium(void)
{
    static char found[4096];
    const char *names[] = {"chromium", "chromium-browser"};
    const char *path = getenv("PATH");
    if (!path)
        path = "/usr/bin:/bin";
    for (size_t n = 0; n < 2; n++) {
        for (const char *p = path; *p;) {
            const char *colon = strchr(p, ':');
            size_t len = colon ? (size_t)(colon - p) : strlen(p);
            snprintf(found, sizeof found, "%.*s/%s", (int)len, p, names[n]);
            if (len && access(found, X_OK) == 0)
                return found;
            p += len + (colon ? 1 : 0);
        }
    }
    return NULL;
}

static const char *chromium_or_skip(void)
{
    const char *c = find_chromium();
    if (!c) {
        fprintf(stderr, "SKIPPED: test_html: chromium is not installed, the HTML report was NOT tested "
                        "in a browser (run tools/install-deps)\n");
        cr_skip_test("chromium is not installed");
    }
    return c;
}

typedef struct page {
    mt_e2e_run_t run; /* the recorded target; the page is in its directory */
    char html[4096];
    char *text;       /* the page's bytes */
    size_t len;
} page_t;

/* Records target and writes its HTML report, with a budget file when budget is not NULL. */
static void make_page_with(page_t *pg, const char *target, const char *budget)
{
    cr_assert_eq(mt_e2e_run_target(&pg->run, NULL, target, NULL), 0);
    cr_assert_eq(pg->run.exit_code, 0);
    cr_assert_eq(pg->run.ntraces, 1);
    snprintf(pg->html, sizeof pg->html, "%s/report.html", pg->run.dir);
    char cli[4096];
    snprintf(cli, sizeof cli, "%s/memtrack", mt_e2e_build_dir());
    char budget_path[4200];
    char *argv[] = {cli, "html", "-o", pg->html, pg->run.traces[0], NULL, NULL, NULL};
    if (budget) {
        cr_assert_eq(mt_e2e_write_text(budget_path, sizeof budget_path, pg->run.dir, "budget.json", budget), 0);
        argv[5] = "--budget";
        argv[6] = budget_path;
    }
    mt_e2e_run_t r;
    mt_e2e_opts_t o = {.no_preload = true, .capture_stderr = true, .dir = pg->run.dir};
    cr_assert_eq(mt_e2e_run(&r, argv, &o), 0);
    char *err = mt_e2e_read_file(r.stderr_path, NULL);
    cr_assert_eq(r.exit_code, 0, "memtrack html: %s", err);
    free(err);
    mt_e2e_run_free(&r);
    pg->text = mt_e2e_read_file(pg->html, &pg->len);
    cr_assert(pg->text);
}

static void make_page(page_t *pg, const char *target)
{
    make_page_with(pg, target, NULL);
}

static void page_free(page_t *pg)
{
    free(pg->text);
    mt_e2e_run_free(&pg->run);
}

/* Replaces the entities a serialized text node can hold. */
static void unescape(char *s)
{
    static const struct {
        const char *ent;
        char c;
    } ents[] = {{"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&nbsp;", ' '}};
    char *w = s;
    for (const char *r = s; *r;) {
        size_t k = 0;
        for (; k < sizeof ents / sizeof ents[0]; k++)
            if (!strncmp(r, ents[k].ent, strlen(ents[k].ent)))
                break;
        if (k < sizeof ents / sizeof ents[0]) {
            *w++ = ents[k].c;
            r += strlen(ents[k].ent);
        } else {
            *w++ = *r++;
        }
    }
    *w = '\0';
}

/* Opens the page headless with #selftest and returns what the page wrote. */
static cJSON *self_test(const page_t *pg, const char *chromium)
{
    char url[4200], profile[4200];
    snprintf(url, sizeof url, "file://%s#selftest", pg->html);
    snprintf(profile, sizeof profile, "--user-data-dir=%s/chromium-profile", pg->run.dir);
    char *argv[] = {"/usr/bin/timeout", "120", (char *)chromium, "--headless", "--no-sandbox", "--disable-gpu",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage", profile,
                    "--window-size=1280,900", "--virtual-time-budget=5000", "--dump-dom", url, NULL};
    mt_e2e_run_t r;
    mt_e2e_opts_t o = {.no_preload = true, .capture_stdout = true, .capture_stderr = true, .dir = pg->run.dir};
    cr_assert_eq(mt_e2e_run(&r, argv, &o), 0);
    char *dom = mt_e2e_read_file(r.stdout_path, NULL);
    char *err = mt_e2e_read_file(r.stderr_path, NULL);
    cr_assert_eq(r.exit_code, 0, "chromium exited %d: %s", r.exit_code, err);
    /* The element the script appended (its source names it too). */
    const char *open = strstr(dom, "<pre id=\"mt-selftest\">{");
    cr_assert(open, "the page wrote no self-test result; chromium said: %.2000s", err);
    open += strlen("<pre id=\"mt-selftest\">");
    char *close = strstr(open, "</pre>");
    cr_assert(close);
    *close = '\0';
    char *json = strdup(open);
    unescape(json);
    cJSON *doc = cJSON_Parse(json);
    cr_assert(doc, "self-test result is not JSON: %s", json);
    free(json);
    free(dom);
    free(err);
    mt_e2e_run_free(&r);
    return doc;
}

static double num(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    cr_assert(cJSON_IsNumber(v), "%s missing", name);
    return v->valuedouble;
}

static const char *str(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    cr_assert(cJSON_IsString(v), "%s missing", name);
    return v->valuestring;
}

static bool array_has(const cJSON *o, const char *name, const char *want)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, name), *it;
    cr_assert(cJSON_IsArray(a), "%s missing", name);
    cJSON_ArrayForEach(it, a)
        if (cJSON_IsString(it) && !strcmp(it->valuestring, want))
            return true;
    return false;
}

/* Nothing from the network: no console error, only file: and data: resources. */
static void expect_clean(const cJSON *r)
{
    const cJSON *errs = cJSON_GetObjectItemCaseSensitive(r, "errors"), *it;
    cr_assert(cJSON_IsArray(errs));
    cJSON_ArrayForEach(it, errs)
        cr_expect_fail("console error on the page: %s", it->valuestring);
    const cJSON *res = cJSON_GetObjectItemCaseSensitive(r, "resources");
    cr_assert(cJSON_IsArray(res));
    cJSON_ArrayForEach(it, res)
        cr_expect(!strncmp(it->valuestring, "file:", 5) || !strncmp(it->valuestring, "data:", 5),
                  "the page loaded %s", it->valuestring);
}

Test(html, page_has_no_network_address_and_no_closing_script_inside_its_data)
{
    page_t pg;
    make_page(&pg, "demo");
    cr_expect(!strstr(pg.text, "http:") && !strstr(pg.text, "https:"), "the page names a network address");
    cr_expect(!strstr(pg.text, "src=") && !strstr(pg.text, "<link"), "the page loads another file");
    /* Exactly the two script elements of the template: the data cannot end one early. */
    size_t closes = 0;
    for (const char *p = pg.text; (p = strstr(p, "</script")); p++)
        closes++;
    cr_expect_eq(closes, 2);
    cr_expect_lt(pg.len, 200000, "%zu bytes for the demo", pg.len);
    page_free(&pg);
}

Test(html, demo_page_draws_zooms_on_click_and_lists_the_leak_in_chromium, .timeout = 180)
{
    const char *chromium = chromium_or_skip();
    page_t pg;
    make_page(&pg, "demo");
    cJSON *r = self_test(&pg, chromium);
    cr_expect_eq(num(r, "timeline_areas"), 1);
    cr_expect_eq(num(r, "timeline_peak_marks"), 1);
    cr_expect_geq(num(r, "timeline_points"), 100);
    /* all, _start, libc's two, main, and main's three callees at least. */
    cr_expect_geq(num(r, "flame_frames"), 8);
    cr_expect_str_eq(str(r, "clicked"), "main");
    cr_expect_str_eq(str(r, "zoom_root"), "main");
    cr_expect_str_eq(str(r, "zoom_root_width"), "100%");
    cr_expect_geq(num(r, "zoom_ancestors"), 1);
    cr_expect_geq(num(r, "search_matches"), 1);
    cr_expect_geq(num(r, "leaked_frames"), 2);
    cr_expect_geq(num(r, "site_rows"), 3);
    cr_expect(array_has(r, "leak_functions", "remember_name"), "the leak table misses remember_name");
    /* No snapshots: no candidates from the classifier, and the page says why instead. */
    cr_expect_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r, "candidate_functions")), 0);
    cr_expect_geq(num(r, "sparklines"), 1);
    cr_expect(strstr(str(r, "range_text"), "still live"), "%s", str(r, "range_text"));
    expect_clean(r);
    cJSON_Delete(r);
    page_free(&pg);
}

Test(html, snapshots_are_labeled_marks_and_budgets_are_listed_in_chromium, .timeout = 180)
{
    const char *chromium = chromium_or_skip();
    page_t pg;
    /* The exports target peaks at 1,256 bytes and leaks 256 bytes from leak_node. */
    make_page_with(&pg, "exports",
                   "{\"budgets\": [\n"
                   "  {\"name\": \"heap\", \"peak_bytes\": \"1KiB\"},\n"
                   "  {\"name\": \"nodes\", \"function\": \"leak_node\", \"leaked_bytes\": 256}\n"
                   "]}\n");
    cJSON *r = self_test(&pg, chromium);
    cr_expect_eq(num(r, "timeline_snapshot_marks"), 3);
    cr_expect_eq(num(r, "timeline_points"), 15);
    cr_expect(array_has(r, "leak_functions", "leak_node"));
    const cJSON *budgets = cJSON_GetObjectItemCaseSensitive(r, "budget_results");
    cr_expect_eq(cJSON_GetArraySize(budgets), 2);
    cr_expect(array_has(r, "budget_results", "heap peak_bytes FAIL"));
    cr_expect(array_has(r, "budget_results", "nodes leaked_bytes PASS"));
    /* The first preset range, start to "setup", holds the table: allocated and still live. */
    cr_expect(!strncmp(str(r, "range_text"), "1000 B in 1 blocks allocated between", 36), "%s", str(r, "range_text"));
    expect_clean(r);
    cJSON_Delete(r);
    page_free(&pg);
}

Test(html, leak_candidates_of_the_snapshots_have_sparklines_in_chromium, .timeout = 180)
{
    const char *chromium = chromium_or_skip();
    page_t pg;
    make_page(&pg, "batch_patterns");
    cJSON *r = self_test(&pg, chromium);
    /* batch_patterns: keep_forever's make_entry leaks every batch, leak_sometimes every 5th;
     * the cache, the queue and the scratch buffers are not leaks. */
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(r, "candidate_functions");
    cr_expect_eq(cJSON_GetArraySize(c), 2);
    cr_expect(array_has(r, "candidate_functions", "make_entry"));
    cr_expect(array_has(r, "candidate_functions", "leak_sometimes"));
    cr_expect_eq(num(r, "candidate_sparklines"), 2);
    cr_expect_eq(num(r, "timeline_snapshot_marks"), 20);
    expect_clean(r);
    cJSON_Delete(r);
    page_free(&pg);
}
