/* test_bad_traces.c - damaged real traces: the reader and `memtrack report` never crash, hang or blow up.
 *
 * Each test records a real trace of a target (output_status: two threads,
 * so two streams; demo for splices) with the plain build's library, then
 * damages it: cut at every offset, one bit flipped at every offset, two
 * traces spliced at their record boundaries and elsewhere, count and
 * length fields set to 2^60. Every variant goes through the reader, two
 * replays and the raw record iterator in this process (trace_check.c),
 * which must end in success or a clean error naming the file and an offset
 * inside it; a sample of variants also goes through the memtrack command
 * under a 1 GiB address-space limit and an alarm, which must exit 0 (with a
 * warning for a cut trace) or 2 with exactly one line on stderr.
 */
#include <criterion/criterion.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "e2e.h"
#include "internal.h"
#include "trace_check.h"

#define TWO_TO_60 (1ull << 60)

typedef struct real_trace {
    mt_e2e_run_t run;
    uint8_t *bytes;
    size_t len;
    uint64_t header_size;
    uint64_t *bounds; /* record offsets, then the file size */
    size_t nbounds;
    char variant[4200]; /* where variants are written */
} real_trace_t;

static void record(real_trace_t *rt, const char *target)
{
    /* Uncompressed: the damage must reach the records, and offsets be file
     * offsets (tests/preload/test_compress.c damages compressed traces). */
    static const char *const env[] = {"MEMTRACK_COMPRESS=0", NULL};
    mt_e2e_opts_t o = {.capture_stdout = true, .env = env};
    mt_record_iter_t *it;
    mt_record_t rec;
    char err[512];

    memset(rt, 0, sizeof *rt);
    cr_assert_eq(mt_e2e_run_target(&rt->run, &o, target, NULL), 0);
    cr_assert_eq(rt->run.ntraces, 1, "%s left %zu traces", target, rt->run.ntraces);
    rt->bytes = (uint8_t *)mt_e2e_read_file(rt->run.traces[0], &rt->len);
    cr_assert_not_null(rt->bytes);
    cr_assert_eq(mt__record_open(rt->run.traces[0], &it, err, sizeof err), 0, "%s", err);
    rt->bounds = malloc((rt->len + 1) * sizeof *rt->bounds);
    cr_assert_not_null(rt->bounds);
    while (mt__record_next(it, &rec) > 0)
        rt->bounds[rt->nbounds++] = rec.offset;
    cr_assert_not(mt__record_header(it)->truncated);
    mt__record_close(it);
    cr_assert_gt(rt->nbounds, 10, "a real trace has more records than that");
    rt->header_size = rt->bounds[0];
    rt->bounds[rt->nbounds++] = rt->len;
    snprintf(rt->variant, sizeof rt->variant, "%s/variant.mtrace", rt->run.dir);
}

static void release(real_trace_t *rt)
{
    free(rt->bytes);
    free(rt->bounds);
    mt_e2e_run_free(&rt->run);
}

/* Writes a variant where the memtrack command can read it; returns its path. */
static const char *write_variant(real_trace_t *rt, const void *data, size_t len)
{
    FILE *f = fopen(rt->variant, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(len ? fwrite(data, 1, len, f) : 0, len);
    cr_assert_eq(fclose(f), 0);
    return rt->variant;
}

/* The record starting at or last before off. */
static uint64_t record_at(const real_trace_t *rt, uint64_t off)
{
    uint64_t best = rt->header_size;
    for (size_t i = 0; i < rt->nbounds && rt->bounds[i] <= off; i++)
        best = rt->bounds[i];
    return best;
}

static bool is_bound(const real_trace_t *rt, uint64_t off)
{
    for (size_t i = 0; i < rt->nbounds; i++)
        if (rt->bounds[i] == off)
            return true;
    return false;
}

/* Runs a variant through the reader in this process (from a memory file):
 * success, or a clean error. */
static int exercise(const void *data, size_t len, mt_tc_result_t *res, const char *what)
{
    const char *path = mt_tc_memfile(data, len);
    char why[128];
    int rc = mt_tc_exercise(path, res);

    if (rc != 0)
        cr_assert(mt_tc_message_ok(res->err, path, len, why, sizeof why),
                  "%s: the message %s: \"%s\"", what, why, res->err);
    return rc;
}

/* Runs `memtrack CMD` on a variant: exit 0, or 2 with one line naming the file. */
static void cli_ok(const char *cmd, const char *path, const char *what, mt_tc_cli_t *c)
{
    cr_assert_eq(mt_tc_run_cli(cmd, path, c), 0);
    cr_assert_eq(c->signal, 0, "%s: memtrack %s was killed by signal %d (stderr: %s)", what, cmd,
                 c->signal, c->err);
    cr_assert(c->exit_code == 0 || c->exit_code == 2, "%s: memtrack %s exited %d (stderr: %s)",
              what, cmd, c->exit_code, c->err);
    if (c->exit_code == 2) {
        cr_assert_eq(c->err_lines, 1, "%s: memtrack %s said %ld lines: %s", what, cmd, c->err_lines,
                     c->err);
        cr_assert(strncmp(c->err, "memtrack: ", 10) == 0 && strstr(c->err, path),
                  "%s: the error does not name the file: %s", what, c->err);
    }
}

Test(bad_traces, a_trace_cut_at_any_offset_is_read_up_to_the_cut)
{
    real_trace_t rt;
    mt_tc_result_t res;
    mt_trace_t *full;
    char err[512];

    record(&rt, "output_status");
    cr_assert_eq(mt__trace_open(rt.run.traces[0], &full, err, sizeof err), 0, "%s", err);
    uint64_t all_events = mt__trace_info(full)->events;
    mt__trace_close(full);
    for (size_t cut = 0; cut < rt.len; cut++) {
        char what[64];
        snprintf(what, sizeof what, "cut at %zu", cut);
        int rc = exercise(rt.bytes, cut, &res, what);
        if (cut < rt.header_size) {
            cr_assert_neq(rc, 0, "%s: a cut header is not a trace", what);
            continue;
        }
        cr_assert_eq(rc, 0, "%s: %s", what, res.err);
        cr_assert_eq(res.truncated, !is_bound(&rt, cut), "%s", what);
        cr_assert_leq(res.events, all_events, "%s", what);
    }
    release(&rt);
}

Test(bad_traces, memtrack_report_on_a_cut_trace_warns_and_names_the_offset)
{
    real_trace_t rt;
    mt_tc_cli_t c;

    record(&rt, "output_status");
    for (unsigned i = 0; i <= 16; i++) {
        uint64_t cut = rt.len * i / 17 + 3; /* rarely on a record boundary */
        char what[64], want[96];
        snprintf(what, sizeof what, "cut at %" PRIu64, cut);
        const char *path = write_variant(&rt, rt.bytes, cut);
        cli_ok("report", path, what, &c);
        if (cut < rt.header_size) {
            cr_assert_eq(c.exit_code, 2, "%s", what);
        } else if (!is_bound(&rt, cut)) {
            cr_assert_eq(c.exit_code, 0, "%s: %s", what, c.err);
            snprintf(want, sizeof want, "cut short at byte %" PRIu64, record_at(&rt, cut));
            cr_assert(strstr(c.out, want), "%s: no \"%s\" in: %s", what, want, c.out);
        }
        mt_tc_cli_free(&c);
    }
    release(&rt);
}

Test(bad_traces, a_flipped_bit_anywhere_gives_a_clean_error_or_an_analysis)
{
    real_trace_t rt;
    mt_tc_result_t res;
    mt_tc_cli_t c;
    unsigned failed = 0, passed = 0;

    record(&rt, "output_status");
    uint8_t *copy = malloc(rt.len);
    cr_assert_not_null(copy);
    for (size_t off = 0; off < rt.len; off++) {
        unsigned bit = (off * 5) % 8; /* one bit a byte, a different one from byte to byte */
        char what[64];
        snprintf(what, sizeof what, "bit %u of byte %zu flipped", bit, off);
        memcpy(copy, rt.bytes, rt.len);
        copy[off] ^= (uint8_t)(1u << bit);
        if (exercise(copy, rt.len, &res, what))
            failed++;
        else
            passed++;
        if (off % 409 == 0) {
            cli_ok("report", write_variant(&rt, copy, rt.len), what, &c);
            mt_tc_cli_free(&c);
            cli_ok("dump", rt.variant, what, &c);
            mt_tc_cli_free(&c);
        }
    }
    /* Both outcomes must occur, or the damage is not reaching the reader. */
    cr_assert_gt(failed, 50);
    cr_assert_gt(passed, 50);
    free(copy);
    release(&rt);
}

Test(bad_traces, two_spliced_traces_give_a_clean_error_or_an_analysis)
{
    real_trace_t a, b;
    mt_tc_result_t res;
    mt_tc_cli_t c;
    char want[64];

    record(&a, "output_status");
    record(&b, "demo");
    uint8_t *buf = malloc(a.len + b.len);
    cr_assert_not_null(buf);
    /* At record boundaries: framing stays valid, the links between records do not. */
    for (size_t i = 0; i < a.nbounds; i++) {
        for (size_t j = 0; j < b.nbounds; j++) {
            char what[96];
            size_t na = a.bounds[i], nb = b.len - b.bounds[j];
            snprintf(what, sizeof what, "first %zu bytes of one, from %" PRIu64 " of the other",
                     na, b.bounds[j]);
            memcpy(buf, a.bytes, na);
            memcpy(buf + na, b.bytes + b.bounds[j], nb);
            exercise(buf, na + nb, &res, what);
            if ((i * b.nbounds + j) % 97 == 0) {
                cli_ok("report", write_variant(&a, buf, na + nb), what, &c);
                mt_tc_cli_free(&c);
            }
        }
    }
    /* Anywhere: a record cut in the middle and continued by another. */
    for (size_t na = a.header_size; na < a.len; na += 37) {
        size_t from = (na * 7) % b.len, nb = b.len - from;
        char what[96];
        snprintf(what, sizeof what, "first %zu bytes of one, from %zu of the other", na, from);
        memcpy(buf, a.bytes, na);
        memcpy(buf + na, b.bytes + from, nb);
        exercise(buf, na + nb, &res, what);
    }
    /* A whole trace after another: the second header is no record. */
    memcpy(buf, a.bytes, a.len);
    memcpy(buf + a.len, b.bytes, b.len);
    cr_assert_neq(exercise(buf, a.len + b.len, &res, "a+b"), 0);
    snprintf(want, sizeof want, "offset %zu: unknown record type %u", a.len, (unsigned)'M');
    cr_assert(strstr(res.err, want), "no \"%s\" in: %s", want, res.err);
    cli_ok("report", write_variant(&a, buf, a.len + b.len), "a+b", &c);
    cr_assert_eq(c.exit_code, 2);
    cr_assert(strstr(c.err, want), "no \"%s\" in: %s", want, c.err);
    mt_tc_cli_free(&c);
    free(buf);
    release(&a);
    release(&b);
}

/* Returns a copy of the trace (length in *len) whose record at rec_off has
 * its field-th varint (0-based) replaced by value, the record's length fixed. */
static uint8_t *set_field(const real_trace_t *rt, uint64_t rec_off, unsigned field, uint64_t value,
                          size_t *len)
{
    const uint8_t *payload = rt->bytes + rec_off + MT_RECORD_HEADER_SIZE;
    uint32_t plen = mt_get_u32(rt->bytes + rec_off + 1);
    const uint8_t *p = payload, *end = payload + plen, *q;
    uint8_t *out = malloc(rt->len + MT_VARINT_MAX), *w;
    uint64_t v;

    cr_assert_not_null(out);
    memcpy(out, rt->bytes, rec_off + MT_RECORD_HEADER_SIZE);
    w = out + rec_off + MT_RECORD_HEADER_SIZE;
    for (unsigned i = 0; i < field; i++)
        cr_assert_eq(mt_get_varint(&p, end, &v), 0);
    memcpy(w, payload, (size_t)(p - payload));
    w += p - payload;
    q = p;
    cr_assert_eq(mt_get_varint(&q, end, &v), 0);
    w = mt_put_varint(w, value);
    memcpy(w, q, (size_t)(end - q));
    w += end - q;
    mt_put_u32(out + rec_off + 1, (uint32_t)(w - (out + rec_off + MT_RECORD_HEADER_SIZE)));
    memcpy(w, end, rt->len - (size_t)(end - rt->bytes));
    w += rt->len - (size_t)(end - rt->bytes);
    *len = (size_t)(w - out);
    return out;
}

static uint64_t first_record(const real_trace_t *rt, unsigned type)
{
    for (size_t i = 0; i + 1 < rt->nbounds; i++)
        if (rt->bytes[rt->bounds[i]] == type)
            return rt->bounds[i];
    cr_assert_fail("the trace has no record of type %u", type);
    return 0;
}

Test(bad_traces, count_fields_of_2_to_the_60_allocate_nothing_of_that_size)
{
    static const struct {
        unsigned type, field;
        const char *name;
        int exit_code;
        const char *says; /* in the error, or in a warning */
    } cases[] = {
        {MT_REC_CHUNK, 2, "CHUNK count", 2, "events cannot fit"},
        {MT_REC_STACK, 2, "STACK depth", 2, "depth 1152921504606846976 exceeds"},
        {MT_REC_MODULE, 5, "MODULE path length", 2, "path length 1152921504606846976 runs past"},
        {MT_REC_END, 2, "END events", 0, ""},
        {MT_REC_END, 3, "END dropped", 0, "1152921504606846976 events were lost"},
        {MT_REC_CHUNK, 0, "CHUNK stream", 0, ""},
        {MT_REC_STACK, 0, "STACK id", 2, "id 1152921504606846976 is out of range"},
    };
    real_trace_t rt;
    mt_tc_result_t res;
    mt_tc_cli_t c;

    record(&rt, "output_status");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint64_t off = first_record(&rt, cases[i].type);
        size_t len;
        char what[96], where[48];
        uint8_t *bytes = set_field(&rt, off, cases[i].field, TWO_TO_60, &len);
        snprintf(what, sizeof what, "%s of 2^60 at offset %" PRIu64, cases[i].name, off);
        const char *path = write_variant(&rt, bytes, len);
        int rc = exercise(bytes, len, &res, what);
        cr_assert_eq(rc != 0, cases[i].exit_code != 0, "%s: %s", what, res.err);
        cli_ok("report", path, what, &c);
        cr_assert_eq(c.exit_code, cases[i].exit_code, "%s: %s", what, c.err);
        cr_assert(strstr(cases[i].exit_code ? c.err : c.out, cases[i].says), "%s: no \"%s\" in: %s%s",
                  what, cases[i].says, c.err, c.out);
        snprintf(where, sizeof where, "offset %" PRIu64 ":", off);
        if (cases[i].exit_code)
            cr_assert(strstr(c.err, where), "%s: the error does not name %s: %s", what, where, c.err);
        mt_tc_cli_free(&c);
        free(bytes);
    }
    /* A record length past the format's maximum. */
    uint8_t *copy = malloc(rt.len);
    cr_assert_not_null(copy);
    memcpy(copy, rt.bytes, rt.len);
    uint64_t off = first_record(&rt, MT_REC_CHUNK);
    mt_put_u32(copy + off + 1, UINT32_MAX);
    cli_ok("report", write_variant(&rt, copy, rt.len), "a record length of 2^32-1", &c);
    cr_assert_eq(c.exit_code, 2);
    cr_assert(strstr(c.err, "exceeds the maximum"), "%s", c.err);
    mt_tc_cli_free(&c);
    free(copy);
    release(&rt);
}
