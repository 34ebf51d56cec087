/* test_trace_stream.c - the reader's one-pass merge of traces with SYNC records.
 *
 * A trace with SYNC records (format 6) is merged while its records are read
 * again, holding only the chunks since the last SYNC; a trace without them
 * keeps an index of every chunk. Both must give the same events in the same
 * order. Hand-built traces place SYNC records as the writer does (after each
 * step, naming the seq below which every event of the step is written) and
 * are compared with the same records without them. A real run of four
 * threads, recorded uncompressed, is compared event by event with a copy
 * whose SYNC records were taken out, and the chunks the reader held at once
 * are counted: that number, not the trace's length, is what the merge costs.
 */
#include <criterion/criterion.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "e2e.h"
#include "internal.h"
#include "trace_builder.h"

static const uint64_t one_frame[] = {0x401000};

/* ---- helpers ---- */

static mt_trace_t *open_ok(const char *path)
{
    mt_trace_t *t = NULL;
    char err[512];
    int r = mt__trace_open(path, &t, err, sizeof err);
    cr_assert_eq(r, 0, "open failed: %s", err);
    return t;
}

static void done(char *path, mt_trace_t *t)
{
    mt__trace_close(t);
    unlink(path);
    free(path);
}

/* Reads the merged stream into a malloc'd array; its length in *n. */
static mt_event_t *read_all(mt_trace_t *t, size_t *n)
{
    size_t cap = 1024;
    mt_event_t *evs = malloc(cap * sizeof *evs);
    int r;
    cr_assert_not_null(evs);
    *n = 0;
    while ((r = mt__trace_next(t, &evs[*n])) > 0)
        if (++*n == cap) {
            cap *= 2;
            evs = realloc(evs, cap * sizeof *evs);
            cr_assert_not_null(evs);
        }
    cr_assert_eq(r, 0, "next failed: %s", mt__trace_error(t));
    return evs;
}

static void expect_same(const mt_event_t *a, const mt_event_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        cr_assert(a[i].seq == b[i].seq && a[i].op == b[i].op && a[i].ptr == b[i].ptr &&
                      a[i].size == b[i].size && a[i].stack == b[i].stack && a[i].tid == b[i].tid &&
                      a[i].label == b[i].label && a[i].replaces == b[i].replaces,
                  "event %zu differs: seq %lu/%lu op %u/%u ptr %lx/%lx", i, (unsigned long)a[i].seq,
                  (unsigned long)b[i].seq, a[i].op, b[i].op, (unsigned long)a[i].ptr,
                  (unsigned long)b[i].ptr);
}

/* A builder of the current version with stack 0 defined. */
static mt_tb_t *new_builder(void)
{
    mt_tb_t *b = mt_tb_new();
    mt_tb_set_version(b, MT_TRACE_VERSION);
    mt_tb_stack(b, 0, 0, one_frame, 1);
    return b;
}

/* Expects the events' seqs to be seqs, n of them. */
static void expect_seqs(const mt_event_t *evs, size_t n, const uint64_t *seqs, size_t nseqs)
{
    cr_assert_eq(n, nseqs, "%zu events, expected %zu", n, nseqs);
    for (size_t i = 0; i < n; i++)
        cr_expect_eq(evs[i].seq, seqs[i], "event %zu: seq %lu, expected %lu", i,
                     (unsigned long)evs[i].seq, (unsigned long)seqs[i]);
}

static uint64_t xorshift(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

/* ---- a writer simulated by hand ---- */

enum { NSTREAMS = 4, NSEQ = 30000 };

/* Two builders fed the same records, one of them also the SYNC records. */
typedef struct pair {
    mt_tb_t *sync, *plain;
} pair_t;

static pair_t pair_new(void)
{
    pair_t p = {mt_tb_new(), mt_tb_new()};
    mt_tb_t *both[] = {p.sync, p.plain};
    for (int i = 0; i < 2; i++) {
        mt_tb_set_version(both[i], MT_TRACE_VERSION);
        for (uint64_t s = 0; s < 4; s++)
            mt_tb_stack(both[i], s, 0, one_frame, 1);
        mt_tb_label(both[i], 0, "batch");
    }
    return p;
}

/* Seqs 1 to NSEQ, dealt to the streams in runs of 1 to 40; every 97th is a
 * marker. Written in steps as the writer writes them: a step has a horizon
 * 50 to 650 seqs past the last, and each stream writes its events below it
 * as one chunk, the streams in turn from a different one each step. One
 * step in four is like a flush: each stream writes up to 200 seqs past the
 * horizon, so that the next step's chunks hold events below ones already
 * written. In the SYNC trace, three steps in four end with a SYNC naming
 * their horizon. Allocations are named by seq; every third seq frees the
 * oldest live block, which another stream may have made. Returns the
 * number of chunks. */
static size_t simulate(pair_t p)
{
    static uint8_t owner[NSEQ + 1];
    static uint64_t live[NSEQ], ref[NSEQ + 1]; /* ref[q]: the block seq q frees, or 0 */
    uint64_t next[NSTREAMS]; /* each stream's first seq not written */
    size_t live_head = 0, live_tail = 0, chunks = 0;
    uint64_t x = 88172645463325252ull;
    unsigned s = 0, left = 0;

    for (uint64_t q = 1; q <= NSEQ; q++) {
        if (!left) {
            s = (unsigned)(xorshift(&x) % NSTREAMS);
            left = 1 + (unsigned)(x >> 32) % 40;
        }
        left--;
        owner[q] = (uint8_t)s;
        ref[q] = 0;
        if (q % 97 == 0)
            continue;
        if (q % 3 == 0 && live_head < live_tail)
            ref[q] = live[live_head++];
        else
            live[live_tail++] = q;
    }
    for (unsigned k = 0; k < NSTREAMS; k++)
        next[k] = 1;
    for (uint64_t lo = 1, step = 0; lo <= NSEQ; step++) {
        uint64_t h = lo + 50 + xorshift(&x) % 600;
        bool flush = x % 4 == 0;
        for (uint64_t q = lo; q < h && q <= NSEQ; q++)
            if (q % 97 == 0) {
                mt_tb_marker(p.sync, q, q, 1, 0);
                mt_tb_marker(p.plain, q, q, 1, 0);
            }
        for (unsigned k = 0; k < NSTREAMS; k++) {
            unsigned st = (unsigned)((k + step) % NSTREAMS);
            uint64_t end = h > NSEQ ? NSEQ + 1 : flush ? h + xorshift(&x) % 200 : h;
            bool open = false;
            for (uint64_t q = next[st]; q < end && q <= NSEQ; q++) {
                if (owner[q] != st || q % 97 == 0)
                    continue;
                mt_tb_t *both[] = {p.sync, p.plain};
                for (int i = 0; i < 2; i++) {
                    if (!open)
                        mt_tb_chunk_begin(both[i], st, 100 + st, q);
                    if (ref[q])
                        mt_tb_free_ref(both[i], MT_OP_FREE, q, ref[q]);
                    else
                        mt_tb_alloc_v4(both[i], MT_OP_MALLOC, q, 1 + q % 1000, (uint32_t)(q % 4), 0, 0);
                }
                open = true;
            }
            next[st] = end > next[st] ? end : next[st];
            if (open) {
                mt_tb_chunk_end(p.sync);
                mt_tb_chunk_end(p.plain);
                chunks++;
            }
        }
        if (xorshift(&x) % 4)
            mt_tb_sync(p.sync, h);
        lo = h;
    }
    return chunks;
}

static char *finish(mt_tb_t *b)
{
    char *path = mt_tb_write_temp(b);
    cr_assert_not_null(path);
    mt_tb_destroy(b);
    return path;
}

/* ---- tests ---- */

Test(trace_stream, synced_trace_merges_as_the_index_does_holding_one_step)
{
    pair_t p = pair_new();
    size_t chunks = simulate(p);
    char *spath = finish(p.sync), *ppath = finish(p.plain);
    mt_trace_t *st = open_ok(spath), *pt = open_ok(ppath);
    size_t n, pn;
    mt_event_t *evs = read_all(st, &n), *want = read_all(pt, &pn);

    cr_assert_eq(n, pn);
    cr_assert_eq(n, NSEQ, "every seq is an event or a marker");
    expect_same(evs, want, n);
    cr_expect_eq(mt__trace_chunks_held(pt), chunks, "without SYNC: the whole index");
    /* A step writes a chunk per stream; a few steps in a row may end
     * without a SYNC that covers them. */
    cr_expect_leq(mt__trace_chunks_held(st), 4 * NSTREAMS, "with SYNC: %zu chunks held of %zu",
                  mt__trace_chunks_held(st), chunks);
    cr_expect_gt(chunks, 150);

    /* Again after a rewind in the middle, and in batches of every size. */
    mt_event_t ev;
    mt__trace_rewind(st);
    for (size_t i = 0; i < n / 2; i++)
        cr_assert_eq(mt__trace_next(st, &ev), 1);
    static const size_t sizes[] = {1, 3, 64, 5000, NSEQ};
    mt_event_t *batch = malloc(n * sizeof *batch);
    cr_assert_not_null(batch);
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
        mt__trace_rewind(st);
        size_t got = 0;
        int r;
        while (got < n && (r = mt__trace_next_batch(st, batch + got, sizes[k] < n - got ? sizes[k] : n - got)) > 0)
            got += (size_t)r;
        cr_assert_eq(mt__trace_next(st, &ev), 0, "%s", mt__trace_error(st));
        cr_assert_eq(got, n, "batches of %zu gave %zu events", sizes[k], got);
        expect_same(batch, want, n);
    }
    cr_expect_leq(mt__trace_chunks_held(st), 4 * NSTREAMS);
    free(batch);
    free(evs);
    free(want);
    done(spath, st);
    done(ppath, pt);
}

Test(trace_stream, an_event_that_reached_the_writer_late_comes_when_read)
{
    /* Seq 3 was reserved before SYNC 5 but its slot was filled late: the
     * writer wrote it after, by address. The one pass cannot go back: it
     * gives seq 3 where it finds it, before what comes after it. */
    mt_tb_t *b = new_builder();
    mt_tb_chunk_begin(b, 0, 10, 1);
    mt_tb_alloc_v4(b, MT_OP_MALLOC, 1, 8, 0, 0, 0);
    mt_tb_alloc_v4(b, MT_OP_MALLOC, 2, 8, 0, 0, 0);
    mt_tb_chunk_end(b);
    mt_tb_chunk_begin(b, 1, 11, 4);
    mt_tb_free_ref(b, MT_OP_FREE, 4, 1);
    mt_tb_chunk_end(b);
    mt_tb_sync(b, 5);
    mt_tb_chunk_begin(b, 0, 10, 3);
    mt_tb_alloc_v4(b, MT_OP_MALLOC, 3, 24, 0, 0, 0x5000);
    mt_tb_free_ref(b, MT_OP_FREE, 6, 2);
    mt_tb_chunk_end(b);
    mt_tb_chunk_begin(b, 1, 11, 7);
    mt_tb_free_addr(b, MT_OP_FREE, 7, 0x5000);
    mt_tb_chunk_end(b);
    mt_tb_sync(b, 8);
    char *path = finish(b);
    mt_trace_t *t = open_ok(path);
    size_t n;
    mt_event_t *evs = read_all(t, &n);
    static const uint64_t order[] = {1, 2, 4, 3, 6, 7};
    expect_seqs(evs, n, order, 6);
    cr_expect_eq(evs[3].ptr, 0x5000);
    cr_expect_eq(evs[3].size, 24);
    free(evs);
    done(path, t);
}

Test(trace_stream, a_batch_stops_where_a_chunk_not_read_yet_may_come_first)
{
    /* A flush wrote seqs 5 to 60 before SYNC 3; seq 4 of the other
     * stream comes in the next step. When stream 1 has nothing read ahead,
     * the batch that gives seq 2 must not go on to 5. (The batch path
     * decodes only events well inside their chunk: hence the 56.) */
    mt_tb_t *b = new_builder();
    mt_tb_chunk_begin(b, 1, 11, 1);
    mt_tb_alloc_v4(b, MT_OP_MALLOC, 1, 8, 0, 0, 0);
    mt_tb_chunk_end(b);
    mt_tb_chunk_begin(b, 0, 10, 2);
    for (uint64_t q = 2; q <= 60; q += q == 2 ? 3 : 1)
        mt_tb_alloc_v4(b, MT_OP_MALLOC, q, 8, 0, 0, 0);
    mt_tb_chunk_end(b);
    mt_tb_sync(b, 3);
    mt_tb_chunk_begin(b, 1, 11, 4);
    mt_tb_alloc_v4(b, MT_OP_MALLOC, 4, 8, 0, 0, 0);
    mt_tb_chunk_end(b);
    mt_tb_sync(b, 61);
    char *path = finish(b);
    mt_trace_t *t = open_ok(path);
    mt_event_t evs[64];
    size_t n = 0;
    int r;
    while ((r = mt__trace_next_batch(t, evs + n, 64 - n)) > 0)
        n += (size_t)r;
    cr_assert_eq(r, 0, "%s", mt__trace_error(t));
    uint64_t order[59] = {1, 2}; /* then 4, 5, ..., 60 */
    for (size_t i = 2; i < 59; i++)
        order[i] = i + 2;
    expect_seqs(evs, n, order, 59);
    done(path, t);
}

/* The same damaged event, read with and without SYNC records, fails after
 * the same events with the same words. */
Test(trace_stream, a_damaged_event_fails_where_the_index_fails)
{
    pair_t p = pair_new();
    simulate(p);
    mt_tb_t *both[] = {p.sync, p.plain};
    for (int i = 0; i < 2; i++) {
        mt_tb_chunk_begin(both[i], 2, 102, NSEQ + 1);
        mt_tb_alloc_v4(both[i], MT_OP_MALLOC, NSEQ + 1, 8, 0, 0, 0);
        mt_tb_alloc_v4(both[i], MT_OP_MALLOC, NSEQ + 2, 8, 9, 0, 0); /* stack 9: never defined */
        mt_tb_chunk_end(both[i]);
    }
    mt_tb_sync(p.sync, NSEQ + 3);
    char *paths[2];
    mt_trace_t *ts[2];
    size_t good[2];
    for (int i = 0; i < 2; i++) {
        paths[i] = finish(both[i]);
        ts[i] = open_ok(paths[i]);
        mt_event_t ev;
        int r;
        good[i] = 0;
        while ((r = mt__trace_next(ts[i], &ev)) > 0)
            good[i]++;
        cr_assert_lt(r, 0);
        cr_expect_not_null(strstr(mt__trace_error(ts[i]), "malloc event: stack id 9 was never defined"),
                           "%s", mt__trace_error(ts[i]));
        cr_expect_eq(mt__trace_next(ts[i], &ev), r, "a failure is sticky");
    }
    cr_expect_eq(good[0], NSEQ + 1);
    cr_expect_eq(good[1], NSEQ + 1);
    for (int i = 0; i < 2; i++)
        done(paths[i], ts[i]);
}

Test(trace_stream, a_cut_synced_trace_reads_every_whole_chunk)
{
    mt_tb_t *b = new_builder();
    for (uint64_t k = 0; k < 3; k++) {
        mt_tb_chunk_begin(b, k % 2, 10, 10 * k + 1);
        for (uint64_t q = 10 * k + 1; q <= 10 * k + 10; q++)
            mt_tb_alloc_v4(b, MT_OP_MALLOC, q, q, 0, 0, 0);
        mt_tb_chunk_end(b);
        mt_tb_sync(b, 10 * k + 11);
    }
    size_t len;
    const uint8_t *data = mt_tb_data(b, &len);
    char tmpl[] = "/tmp/memtrack-test-XXXXXX";
    int fd = mkstemp(tmpl);
    cr_assert(fd >= 0);
    cr_assert_eq(write(fd, data, len - 9), (ssize_t)(len - 9)); /* the last SYNC is 6 bytes: 3 into the last chunk */
    close(fd);
    mt_tb_destroy(b);
    mt_trace_t *t = open_ok(tmpl);
    cr_expect(mt__trace_info(t)->truncated);
    size_t n;
    mt_event_t *evs = read_all(t, &n);
    cr_expect_eq(n, 20);
    cr_expect_eq(evs[n - 1].seq, 20);
    free(evs);
    mt__trace_close(t);
    unlink(tmpl);
}

Test(trace_stream, a_trace_whose_sync_never_lets_chunks_go_fails_past_the_read_ahead_limit)
{
    /* A SYNC that stays below every event (a damaged trace) would make the
     * one pass read all the rest ahead: past its limit it stops, with a
     * message naming the chunk it would not hold. */
    mt_tb_t *b = new_builder();
    mt_tb_sync(b, 1);
    size_t third = 0;
    for (uint64_t k = 0; k < 3; k++) {
        if (k == 2)
            mt_tb_data(b, &third);
        mt_tb_chunk_begin(b, k, 10, 100 * k + 2);
        for (uint64_t q = 100 * k + 2; q < 100 * k + 52; q++)
            mt_tb_alloc_v4(b, MT_OP_MALLOC, q, 8, 0, 0, 0);
        mt_tb_chunk_end(b);
    }
    char *path = finish(b);
    mt_trace_t *t = open_ok(path);
    mt__trace_limit_read_ahead(t, 250); /* a chunk of 50 events takes 100 or 101 bytes */
    mt_event_t ev;
    int r = mt__trace_next(t, &ev);
    cr_expect_lt(r, 0);
    char want[160];
    snprintf(want, sizeof want, "offset %zu: more than 250 bytes of events read ahead without a SYNC record",
             third);
    cr_expect_not_null(strstr(mt__trace_error(t), want), "%s", mt__trace_error(t));
    mt__trace_limit_read_ahead(t, 1u << 20); /* with room, the same trace reads whole */
    mt__trace_rewind(t);
    size_t n;
    mt_event_t *evs = read_all(t, &n);
    cr_expect_eq(n, 150);
    free(evs);
    done(path, t);
}

Test(trace_stream, the_second_pass_reads_the_file_the_first_pass_read)
{
    /* The one pass reads the records again: from the file opened, even
     * when its name is gone or now names another file. */
    pair_t p = pair_new();
    simulate(p);
    mt_tb_destroy(p.plain);
    mt_tb_t *b = new_builder();
    mt_tb_sync(b, 1);
    mt_tb_chunk_begin(b, 0, 10, 2);
    mt_tb_alloc_v4(b, MT_OP_MALLOC, 2, 8, 0, 0, 0);
    mt_tb_chunk_end(b);
    char *path = finish(p.sync), *other = finish(b);
    mt_trace_t *t = open_ok(path);
    uint64_t events = mt__trace_info(t)->events;
    cr_assert_eq(rename(other, path), 0);
    size_t n;
    mt_event_t *evs = read_all(t, &n);
    cr_expect_eq(n, events + mt__trace_info(t)->nmarkers);
    free(evs);
    cr_assert_eq(unlink(path), 0);
    mt__trace_rewind(t);
    evs = read_all(t, &n);
    cr_expect_eq(n, events + mt__trace_info(t)->nmarkers);
    free(evs);
    mt__trace_close(t);
    free(path);
    free(other);
}

/* ---- a real run ---- */

/* Writes a copy of the uncompressed trace at src, without its SYNC records,
 * to dst. Returns how many it left out. */
static size_t copy_without_sync(const char *src, const char *dst)
{
    size_t len, n = 0;
    uint8_t *d = (uint8_t *)mt_e2e_read_file(src, &len);
    cr_assert_not_null(d);
    cr_assert_gt(len, sizeof(mt_trace_header_t));
    cr_assert_eq(mt_get_u32(d + offsetof(mt_trace_header_t, flags)) & MT_TRACE_F_ZSTD, 0);
    size_t at = mt_get_u32(d + offsetof(mt_trace_header_t, header_size)), out = at;
    while (at + MT_RECORD_HEADER_SIZE <= len) {
        size_t rec = MT_RECORD_HEADER_SIZE + mt_get_u32(d + at + 1);
        cr_assert_leq(at + rec, len);
        if (d[at] == MT_REC_SYNC)
            n++;
        else
            memmove(d + out, d + at, rec), out += rec;
        at += rec;
    }
    cr_assert_eq(at, len);
    FILE *f = fopen(dst, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(d, 1, out, f), out);
    cr_assert_eq(fclose(f), 0);
    free(d);
    return n;
}

/* Returns the most CHUNK records between two SYNC records of the trace at
 * path: what the writer wrote in one round, which the reader may hold. */
static size_t most_chunks_between_syncs(const char *path)
{
    mt_record_iter_t *it;
    mt_record_t rec;
    char err[512];
    size_t most = 0, run = 0;
    int r;
    cr_assert_eq(mt__record_open(path, &it, err, sizeof err), 0, "%s", err);
    while ((r = mt__record_next(it, &rec)) > 0) {
        if (rec.type == MT_REC_CHUNK && ++run > most)
            most = run;
        if (rec.type == MT_REC_SYNC)
            run = 0;
    }
    cr_assert_eq(r, 0, "%s", mt__record_error(it));
    mt__record_close(it);
    return most;
}

static void run_storm(mt_e2e_run_t *run, const char *compress)
{
    const char *env[] = {compress, NULL};
    mt_e2e_opts_t opts = {.env = env, .capture_stdout = true};
    cr_assert_eq(mt_e2e_run_target(run, &opts, "stream_storm", NULL), 0);
    cr_assert_eq(run->exit_code, 0);
    cr_assert_eq(run->ntraces, 1);
}

Test(trace_stream, four_threads_recorded_read_the_same_in_one_pass, .timeout = 60)
{
    mt_e2e_run_t run;
    run_storm(&run, "MEMTRACK_COMPRESS=0");
    char plain[4096];
    snprintf(plain, sizeof plain, "%s/plain.copy", run.dir);
    cr_assert_gt(copy_without_sync(run.traces[0], plain), 20);
    mt_trace_t *st = open_ok(run.traces[0]), *pt = open_ok(plain);
    size_t n, pn;
    mt_event_t *evs = read_all(st, &n), *want = read_all(pt, &pn);
    cr_assert_eq(n, pn);
    expect_same(evs, want, n);
    /* 4 threads x 2000 passes x 32 blocks, allocated and freed. */
    uint64_t storm_allocs = 0, storm_frees = 0;
    for (size_t i = 0; i < n; i++) {
        if (evs[i].op == MT_OP_MALLOC && evs[i].size >= 1 && evs[i].size <= 32)
            storm_allocs++;
        if (evs[i].op == MT_OP_FREE && evs[i].ptr)
            storm_frees++;
    }
    cr_expect_eq(storm_allocs, 4 * 2000 * 32);
    cr_expect_geq(storm_frees, 4 * 2000 * 32);
    /* The reader holds what it read ahead: at most the chunks of a round
     * not merged yet and those of the next (a round that flushed events
     * past its SYNC leaves some), whatever the number of rounds. */
    size_t chunks = mt__trace_chunks_held(pt), round = most_chunks_between_syncs(run.traces[0]);
    cr_expect_gt(chunks, 100, "the run spans many rounds: %zu chunks", chunks);
    cr_expect_lt(round, chunks / 4, "a round wrote %zu of %zu chunks", round, chunks);
    cr_expect_leq(mt__trace_chunks_held(st), 2 * round, "held %zu chunks at once of %zu, rounds of %zu at most",
                  mt__trace_chunks_held(st), chunks, round);
    free(evs);
    free(want);
    mt__trace_close(st);
    mt__trace_close(pt);
    mt_e2e_run_free(&run);

    /* Compressed, the same holds. */
    run_storm(&run, "MEMTRACK_COMPRESS=1");
    st = open_ok(run.traces[0]);
    evs = read_all(st, &n);
    cr_expect_eq(n, mt__trace_info(st)->events + mt__trace_info(st)->nmarkers);
    cr_expect_leq(mt__trace_chunks_held(st), 2 * most_chunks_between_syncs(run.traces[0]));
    free(evs);
    mt__trace_close(st);
    mt_e2e_run_free(&run);
}
