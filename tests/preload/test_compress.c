/* test_compress.c - the zstd-compressed trace, from the writer thread to the reader.
 *
 * Targets run under libmemtrack.so with compression on (the default) and
 * off (MEMTRACK_COMPRESS=0) and must read back the same events, known by
 * construction; a program killed by SIGKILL must leave every frame the
 * writer finished readable; a damaged frame, a frame cut by the end of the
 * file and a frame header that cannot be right must each give a clear
 * message naming the file offset, never a crash or a huge allocation.
 * Hand-built traces, compressed here, check what the writer never does
 * (a record split across two frames) and messages about records inside
 * frames.
 */
#include <criterion/criterion.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zstd.h>

#include "e2e.h"
#include "trace_builder.h"
#include "trace_check.h"

/* ---- helpers ---- */

typedef struct frame_pos {
    uint64_t file_off, raw_off;
    uint32_t clen, rlen;
} frame_pos_t;

/* Runs name (with one argument, or none) under the preload with env. */
static void run_target(mt_e2e_run_t *run, const char *const *env, const char *name, const char *arg)
{
    mt_e2e_opts_t o = {.env = env, .capture_stdout = true};
    int rc = mt_e2e_run_target(run, &o, name, arg, NULL);
    cr_assert_eq(rc, 0, "cannot run %s: %s", name, strerror(-rc));
    cr_assert_eq(run->ntraces, 1, "expected 1 trace in %s, found %zu", run->dir, run->ntraces);
}

/* Walks the frames of a compressed trace file into frames (at most max);
 * returns how many whole frames it has. */
static size_t list_frames(const uint8_t *data, size_t len, frame_pos_t *frames, size_t max)
{
    cr_assert_geq(len, sizeof(mt_trace_header_t));
    uint32_t flags = mt_get_u32(data + offsetof(mt_trace_header_t, flags));
    cr_assert(flags & MT_TRACE_F_ZSTD, "the header has no MT_TRACE_F_ZSTD flag (flags %u)", flags);
    uint64_t off = mt_get_u32(data + offsetof(mt_trace_header_t, header_size)), raw = off;
    size_t n = 0;
    while (n < max && len - off >= MT_ZFRAME_HEADER_SIZE) {
        frame_pos_t f = {off, raw, mt_get_u32(data + off) & ~MT_ZFRAME_STORED,
                         mt_get_u32(data + off + 4)};
        if (f.clen > len - off - MT_ZFRAME_HEADER_SIZE)
            break;
        frames[n++] = f;
        off += MT_ZFRAME_HEADER_SIZE + f.clen;
        raw += f.rlen;
    }
    return n;
}

static void write_file(const char *path, const uint8_t *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    cr_assert(f, "cannot create %s", path);
    cr_assert_eq(fwrite(data, 1, len, f), len);
    cr_assert_eq(fclose(f), 0);
}

/* Runs build/memtrack report on trace and returns its exit code; the
 * first line of its stderr goes to err. */
static int report_exit(const char *dir, const char *trace, char *err, size_t errlen)
{
    char memtrack[4096];
    snprintf(memtrack, sizeof memtrack, "%s/memtrack", mt_e2e_build_dir());
    char *argv[] = {memtrack, "report", (char *)trace, NULL};
    mt_e2e_opts_t o = {.no_preload = true, .capture_stdout = true, .capture_stderr = true, .dir = dir};
    mt_e2e_run_t r;
    cr_assert_eq(mt_e2e_run(&r, argv, &o), 0, "cannot run %s", memtrack);
    char *text = mt_e2e_read_file(r.stderr_path, NULL);
    cr_assert(text, "cannot read %s", r.stderr_path);
    snprintf(err, errlen, "%.*s", (int)strcspn(text, "\n"), text);
    free(text);
    int code = r.exit_code;
    mt_e2e_run_free(&r);
    return code;
}

/* Writes data as a trace in the run's directory and checks that memtrack
 * report exits 2 with a message naming it and saying want. */
static void expect_report_fails(const mt_e2e_run_t *run, const uint8_t *data, size_t len,
                                const char *want)
{
    char path[4096], err[4096 + 256];
    snprintf(path, sizeof path, "%s/damaged.mtrace", run->dir);
    write_file(path, data, len);
    int code = report_exit(run->dir, path, err, sizeof err);
    cr_expect_eq(code, 2, "memtrack report exited %d: %s", code, err);
    cr_expect(strstr(err, path) && strstr(err, want), "message: %s\nexpected: %s", err, want);
}

/* Expects memtrack report to refuse the damaged trace data (freed here,
 * with the run) naming frame f as damaged and saying why ("" for any
 * reason). */
static void expect_damaged(mt_e2e_run_t *run, uint8_t *data, size_t len, const frame_pos_t *f,
                           const char *why)
{
    char want[256];
    snprintf(want, sizeof want, "compressed frame at offset %llu (%u bytes) is damaged (%s",
             (unsigned long long)f->file_off, f->clen, why);
    expect_report_fails(run, data, len, want);
    free(data);
    mt_e2e_run_free(run);
}

/* Records killed_midrun in a fresh run with small rings, so that the
 * writer writes many rounds (frames) while the program waits for room. */
static void record_killed(mt_e2e_run_t *run, const char *n)
{
    static const char *const env[] = {"MEMTRACK_RING_EVENTS=1024", NULL};
    run_target(run, env, "killed_midrun", n);
    cr_assert_eq(run->signal, SIGKILL, "killed_midrun was not killed by SIGKILL (status %d)",
                 run->status);
}

/* Records killed_midrun n and reads its trace's bytes (malloc'd, length in
 * *len) and whole frames (at most max, how many in *nframes, at least one). */
static uint8_t *killed_trace(mt_e2e_run_t *run, const char *n, frame_pos_t *frames, size_t max,
                             size_t *len, size_t *nframes)
{
    record_killed(run, n);
    uint8_t *data = (uint8_t *)mt_e2e_read_file(run->traces[0], len);
    cr_assert(data, "cannot read %s", run->traces[0]);
    *nframes = list_frames(data, *len, frames, max);
    cr_assert_geq(*nframes, 1, "the writer wrote no round before the kill");
    return data;
}

/* Writes the hand-built trace plain[0, len) to path compressed, with a frame
 * boundary at each of the nsplits offsets (after the header, increasing);
 * frame i is stored instead when bit i of stored is set. With stream set,
 * the compressed frames continue one zstd stream and end in their checksum
 * (MT_TRACE_F_ZSTREAM, which the builder's header must have), and frame i
 * starts by ending the zstd frame and starting one at level 9 when bit i of
 * restart is set, as the writer does to change levels; else each is a zstd
 * frame of its own. */
static void write_frames(const char *path, const uint8_t *plain, size_t len, const size_t *splits,
                         size_t nsplits, unsigned stored, bool stream, unsigned restart,
                         uint64_t *frame_offs)
{
    size_t hsize = mt_get_u32(plain + offsetof(mt_trace_header_t, header_size));
    uint8_t *out = malloc(len + (nsplits + 1) * (MT_ZFRAME_HEADER_SIZE + ZSTD_compressBound(len) + 4));
    ZSTD_CCtx *z = ZSTD_createCCtx();
    cr_assert(out && z);
    cr_assert(!ZSTD_isError(ZSTD_CCtx_setParameter(z, ZSTD_c_windowLog, MT_ZSTREAM_WINDOW_LOG)));
    memcpy(out, plain, hsize);
    size_t n = hsize, from = hsize;
    for (size_t i = 0; i <= nsplits; i++) {
        size_t to = i < nsplits ? splits[i] : len;
        size_t c = to - from;
        uint8_t *dst = out + n + MT_ZFRAME_HEADER_SIZE;
        if (stored & (1u << i)) {
            memcpy(dst, plain + from, c);
        } else if (stream) {
            ZSTD_inBuffer in = {plain + from, to - from, 0}, none = {NULL, 0, 0};
            ZSTD_outBuffer zo = {dst, ZSTD_compressBound(to - from) + 16, 0};
            if (restart & (1u << i)) {
                cr_assert_eq(ZSTD_compressStream2(z, &zo, &none, ZSTD_e_end), 0);
                cr_assert(!ZSTD_isError(ZSTD_CCtx_setParameter(z, ZSTD_c_compressionLevel, 9)));
            }
            cr_assert_eq(ZSTD_compressStream2(z, &zo, &in, ZSTD_e_flush), 0);
            mt_put_u32(dst + zo.pos, mt_checksum(plain + from, to - from));
            c = zo.pos + 4;
        } else {
            c = ZSTD_compress(dst, ZSTD_compressBound(to - from), plain + from, to - from, 1);
        }
        cr_assert(!ZSTD_isError(c), "%s", ZSTD_getErrorName(c));
        mt_put_u32(out + n, (uint32_t)c | (stored & (1u << i) ? MT_ZFRAME_STORED : 0));
        mt_put_u32(out + n + 4, (uint32_t)(to - from));
        if (frame_offs)
            frame_offs[i] = n;
        n += MT_ZFRAME_HEADER_SIZE + c;
        from = to;
    }
    write_file(path, out, n);
    ZSTD_freeCCtx(z);
    free(out);
}

static void write_compressed(const char *path, const uint8_t *plain, size_t len,
                             const size_t *splits, size_t nsplits, unsigned stored,
                             uint64_t *frame_offs)
{
    write_frames(path, plain, len, splits, nsplits, stored, false, 0, frame_offs);
}

static mt_tb_t *compressed_builder(uint32_t flags)
{
    static const char cmd[] = "test\0arg";
    mt_tb_t *b = mt_tb_new();
    cr_assert(b);
    mt_tb_set_header(b, 1000, 1, MT_TRACE_F_ZSTD | flags, 0, "/bin/test", cmd, sizeof cmd);
    return b;
}

static void check_split(unsigned stored, bool stream, unsigned restart)
{
    static const uint64_t frames[] = {0x401000, 0x402000};
    mt_tb_t *b = compressed_builder(stream ? MT_TRACE_F_ZSTREAM : 0);
    mt_tb_stack(b, 0, 0, frames, 2);
    mt_tb_chunk_begin(b, 0, 42, 1);
    for (uint64_t i = 0; i < 100; i++)
        mt_tb_alloc(b, MT_OP_MALLOC, 1 + i, 0x10000 + 64 * i, 100 + i, 0);
    mt_tb_chunk_end(b);
    mt_tb_end(b, 101, 1000, 100, 0, 1);
    size_t len, hsize;
    const uint8_t *plain = mt_tb_data(b, &len);
    hsize = mt_get_u32(plain + offsetof(mt_trace_header_t, header_size));
    /* Inside the STACK record, and in the middle of the CHUNK's events. */
    size_t splits[] = {hsize + 3, hsize + (len - hsize) / 2};
    char path[] = "/tmp/mt-compress-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    close(fd);
    write_frames(path, plain, len, splits, 2, stored, stream, restart, NULL);
    mt_e2e_trace_t tr;
    int rc = mt_e2e_trace_open(&tr, path);
    cr_assert_eq(rc, 0, "cannot read %s: %s", path, tr.err);
    cr_expect(tr.info->complete);
    cr_expect_not(tr.info->truncated);
    cr_expect_eq(tr.tally.error, 0, "%s", mt__trace_error(tr.t));
    cr_expect_eq(tr.tally.allocs, 100);
    for (uint64_t i = 0; i < 100; i++)
        cr_expect_eq(mt_e2e_count(&tr.tally, MT_OP_MALLOC, 100 + i), 1);
    mt_e2e_trace_close(&tr);
    unlink(path);
    mt_tb_destroy(b);
}

Test(compress, records_split_across_two_frames_read_whole)
{
    check_split(0, false, 0);
    check_split(0, true, 0);
    check_split(0, true, 2); /* the second ends the first zstd frame */
    check_split(0, true, 6);
}

Test(compress, stored_frames_between_compressed_ones_read_whole)
{
    check_split(2, false, 0); /* the middle one of three */
    check_split(7, false, 0);
    check_split(2, true, 0); /* not part of the stream: the third goes on from the first */
    check_split(5, true, 0);
    check_split(2, true, 4);
}

Test(compress, bad_record_inside_a_frame_is_named_by_the_frame_offset)
{
    static const uint64_t frames[] = {0x401000};
    mt_tb_t *b = compressed_builder(0);
    mt_tb_stack(b, 0, 0, frames, 1);
    mt_tb_chunk_begin(b, 0, 42, 1);
    mt_tb_alloc(b, MT_OP_MALLOC, 1, 0x10000, 100, 0);
    mt_tb_chunk_end(b);
    size_t split, len;
    mt_tb_data(b, &split);
    mt_tb_chunk_begin(b, 0, 42, 2);
    mt_tb_alloc(b, MT_OP_MALLOC, 2, 0x20000, 200, 7); /* stack 7 was never defined */
    mt_tb_chunk_end(b);
    const uint8_t *plain = mt_tb_data(b, &len);
    char path[] = "/tmp/mt-compress-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    close(fd);
    uint64_t offs[2];
    write_compressed(path, plain, len, &split, 1, 0, offs);
    mt_trace_t *t;
    mt_event_t ev;
    char err[4400], want[128], why[128];
    cr_assert_eq(mt__trace_open(path, &t, err, sizeof err), 0, "%s", err);
    int rc;
    while ((rc = mt__trace_next(t, &ev)) > 0)
        ;
    cr_assert_lt(rc, 0, "an undefined stack went unnoticed");
    const char *msg = mt__trace_error(t);
    snprintf(want, sizeof want, ": offset %llu (a compressed frame), uncompressed byte ",
             (unsigned long long)offs[1]);
    cr_expect(strstr(msg, want) && strstr(msg, "stack id 7 was never defined"), "message: %s", msg);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_expect(mt_tc_message_ok(msg, path, (uint64_t)st.st_size, why, sizeof why), "%s: %s", why, msg);
    mt__trace_close(t);
    unlink(path);
    mt_tb_destroy(b);
}

Test(compress, a_bit_flipped_anywhere_gives_an_analysis_or_one_clean_error)
{
    mt_e2e_run_t run;
    frame_pos_t frames[64];
    size_t len, n;
    uint8_t *data = killed_trace(&run, "4000", frames, 64, &len, &n);
    unsigned failed = 0;
    for (size_t off = frames[0].file_off; off < len; off++) {
        mt_tc_result_t res;
        char why[128];
        data[off] ^= (uint8_t)(1u << (off % 8));
        const char *path = mt_tc_memfile(data, len);
        if (mt_tc_exercise(path, &res) != 0) {
            failed++;
            cr_assert(mt_tc_message_ok(res.err, path, len, why, sizeof why),
                      "bit %zu of byte %zu: the message %s: \"%s\"", off % 8, off, why, res.err);
        }
        data[off] ^= (uint8_t)(1u << (off % 8));
    }
    /* The checksums must catch damage to the compressed bytes. */
    cr_expect_gt(failed, (len - frames[0].file_off) / 2, "only %u of %zu flips noticed", failed,
                 len - frames[0].file_off);
    free(data);
    mt_e2e_run_free(&run);
}

/* ---- round trip ---- */

static void check_churn(const char *const *env, bool compressed)
{
    mt_e2e_run_t run;
    mt_e2e_trace_t tr;
    run_target(&run, env, "thread_churn", NULL);
    cr_assert_eq(run.exit_code, 0);
    int rc = mt_e2e_trace_open(&tr, run.traces[0]);
    cr_assert_eq(rc, 0, "cannot read %s: %s", run.traces[0], tr.err);
    cr_expect_eq(!!(tr.info->flags & MT_TRACE_F_ZSTD), compressed, "flags %u", tr.info->flags);
    cr_expect_eq(!!(tr.info->flags & MT_TRACE_F_ZSTREAM), compressed, "flags %u", tr.info->flags);
    cr_expect(tr.info->complete, "no END record");
    cr_expect_not(tr.info->truncated);
    cr_expect_eq(tr.tally.error, 0, "the second pass failed: %s", mt__trace_error(tr.t));
    cr_expect_eq(mt_e2e_count(&tr.tally, MT_OP_MALLOC, 1301), 2000);
    cr_expect_eq(mt_e2e_count(&tr.tally, MT_OP_MALLOC, 1302), 2000);
    const mt_e2e_size_count_t *a = mt_e2e_size_entry(&tr.tally, MT_OP_MALLOC, 1301);
    const mt_e2e_size_count_t *b = mt_e2e_size_entry(&tr.tally, MT_OP_MALLOC, 1302);
    cr_assert(a && b);
    cr_expect_eq(a->freed_elsewhere, 2000, "1301: %llu freed by another thread",
                 (unsigned long long)a->freed_elsewhere);
    cr_expect_eq(b->freed_elsewhere, 2000, "1302: %llu freed by another thread",
                 (unsigned long long)b->freed_elsewhere);
    cr_expect_eq(tr.tally.bad_order, 0);
    cr_expect_eq(tr.tally.bad_stacks, 0);
    cr_expect_eq(tr.tally.double_allocs, 0);
    mt_e2e_trace_close(&tr);
    mt_e2e_run_free(&run);
}

Test(compress, two_thousand_threads_read_back_exactly_from_a_compressed_trace)
{
    check_churn(NULL, true);
}

Test(compress, memtrack_compress_0_writes_plain_records_that_read_the_same)
{
    static const char *const env[] = {"MEMTRACK_COMPRESS=0", NULL};
    check_churn(env, false);
}

Test(compress, a_higher_level_reads_the_same)
{
    static const char *const env[] = {"MEMTRACK_COMPRESS=9", NULL};
    check_churn(env, true);
}

/* ---- killed programs and damaged files ---- */

Test(compress, program_killed_by_sigkill_is_readable_up_to_its_last_round)
{
    mt_e2e_run_t run;
    mt_e2e_trace_t tr;
    record_killed(&run, "20000");
    int rc = mt_e2e_trace_open(&tr, run.traces[0]);
    cr_assert_eq(rc, 0, "cannot read %s: %s", run.traces[0], tr.err);
    cr_expect_not(tr.info->complete, "a killed program wrote an END record");
    cr_expect_eq(tr.tally.error, 0, "the second pass failed: %s", mt__trace_error(tr.t));
    /* The program waited for the writer whenever its 1024-event ring was
     * full, so every round but the last two (the one draining when it
     * died, and what was still in the ring) is in the file. */
    uint64_t n = mt_e2e_count(&tr.tally, MT_OP_MALLOC, 777);
    cr_expect(n >= 20000 - 2 * 1024 && n <= 20000, "%llu MALLOC 777 events, expected 17952..20000",
              (unsigned long long)n);
    cr_expect_eq(tr.tally.bad_order, 0);
    cr_expect_eq(tr.tally.bad_stacks, 0);
    mt_e2e_trace_close(&tr);
    mt_e2e_run_free(&run);
}

Test(compress, frame_cut_by_the_end_of_the_file_reads_as_truncated_at_the_frame)
{
    mt_e2e_run_t run;
    mt_e2e_trace_t tr;
    frame_pos_t frames[4096];
    size_t len, n;
    uint8_t *data = killed_trace(&run, "20000", frames, 4096, &len, &n);
    cr_assert_geq(n, 4, "only %zu frames: the writer wrote too few rounds", n);
    const frame_pos_t *cut = &frames[n / 2];
    char path[4096];
    snprintf(path, sizeof path, "%s/cut.mtrace", run.dir);
    /* Cut inside the frame's header, then inside its compressed bytes. */
    size_t ends[] = {cut->file_off + 3, cut->file_off + MT_ZFRAME_HEADER_SIZE + cut->clen / 2};
    for (size_t i = 0; i < 2; i++) {
        write_file(path, data, ends[i]);
        int rc = mt_e2e_trace_open(&tr, path);
        cr_assert_eq(rc, 0, "cannot read %s: %s", path, tr.err);
        cr_expect(tr.info->truncated, "a cut at %zu is not reported", ends[i]);
        cr_expect_eq(tr.info->truncated_at, cut->file_off, "truncated at %llu, expected %llu",
                     (unsigned long long)tr.info->truncated_at, (unsigned long long)cut->file_off);
        cr_expect_eq(tr.tally.error, 0, "the second pass failed: %s", mt__trace_error(tr.t));
        cr_expect_gt(mt_e2e_count(&tr.tally, MT_OP_MALLOC, 777), 0);
        mt_e2e_trace_close(&tr);
    }
    free(data);
    mt_e2e_run_free(&run);
}

Test(compress, damaged_frame_exits_2_naming_its_offset)
{
    mt_e2e_run_t run;
    frame_pos_t frames[4096];
    size_t len, n;
    uint8_t *data = killed_trace(&run, "20000", frames, 4096, &len, &n);
    cr_assert_geq(n, 2);
    const frame_pos_t *f = &frames[0];
    for (size_t i = 1; i < n; i++)
        if (frames[i].clen > f->clen)
            f = &frames[i];
    /* Damage the middle of the compressed bytes: zstd, or the frame's
     * checksum, notices. */
    for (size_t i = 0; i < 16; i++)
        data[f->file_off + MT_ZFRAME_HEADER_SIZE + f->clen / 2 + i] ^= 0x5a;
    expect_damaged(&run, data, len, f, "");
}

Test(compress, a_frame_whose_records_do_not_match_its_checksum_exits_2_naming_it)
{
    mt_e2e_run_t run;
    frame_pos_t frames[4096];
    size_t len, n;
    uint8_t *data = killed_trace(&run, "20000", frames, 4096, &len, &n);
    cr_assert(mt_get_u32(data + offsetof(mt_trace_header_t, flags)) & MT_TRACE_F_ZSTREAM);
    /* One stream: only the first compressed frame starts a zstd frame. */
    const frame_pos_t *f = NULL;
    size_t compressed = 0;
    for (size_t i = 0; i < n; i++) {
        if (mt_get_u32(data + frames[i].file_off) & MT_ZFRAME_STORED)
            continue;
        uint32_t magic = mt_get_u32(data + frames[i].file_off + MT_ZFRAME_HEADER_SIZE);
        cr_expect_eq(magic == ZSTD_MAGICNUMBER, !f, "frame %zu: magic 0x%08x", i, magic);
        f = f ? f : &frames[i];
        compressed++;
    }
    cr_assert_geq(compressed, 2, "%zu compressed frames", compressed);
    /* The zstd bytes decompress as written; the checksum after them no
     * longer matches. */
    data[f->file_off + MT_ZFRAME_HEADER_SIZE + f->clen - 1] ^= 0x01;
    expect_damaged(&run, data, len, f, "its checksum does not match)");
}

Test(compress, rounds_that_barely_compress_are_stored_and_tried_again_at_another_level)
{
    mt_e2e_run_t run;
    mt_e2e_trace_t tr;
    run_target(&run, NULL, "random_blocks", NULL);
    cr_assert_eq(run.exit_code, 0);
    size_t len, n;
    frame_pos_t frames[4096];
    uint8_t *data = (uint8_t *)mt_e2e_read_file(run.traces[0], &len);
    cr_assert(data);
    n = list_frames(data, len, frames, 4096);
    /* The first rounds go at level 6 and are found poor: later tries go at
     * level 1, in a zstd frame of their own (a 3-byte end block, then the
     * zstd magic). */
    size_t stored = 0, starts = 0;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *p = data + frames[i].file_off + MT_ZFRAME_HEADER_SIZE;
        if (mt_get_u32(data + frames[i].file_off) & MT_ZFRAME_STORED)
            stored++;
        else if (mt_get_u32(p) == ZSTD_MAGICNUMBER || (frames[i].clen > 7 && mt_get_u32(p + 3) == ZSTD_MAGICNUMBER))
            starts++;
    }
    cr_expect_gt(stored, 0, "%zu frames, none stored", n);
    cr_expect_geq(starts, 2, "%zu frames start a zstd frame", starts);
    free(data);
    int rc = mt_e2e_trace_open(&tr, run.traces[0]);
    cr_assert_eq(rc, 0, "cannot read %s: %s", run.traces[0], tr.err);
    cr_expect_eq(tr.tally.error, 0, "%s", mt__trace_error(tr.t));
    static uint64_t want[4096];
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < 300000; i++) {
        for (int k = 0; k < 2; k++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
        }
        want[x % 4096]++;
    }
    for (uint64_t k = 0; k < 4096; k++)
        cr_expect_eq(mt_e2e_count(&tr.tally, MT_OP_MALLOC, 1025 + 2 * k), want[k], "size %llu",
                     (unsigned long long)(1025 + 2 * k));
    mt_e2e_trace_close(&tr);
    mt_e2e_run_free(&run);
}

Test(compress, frame_header_claiming_4_gib_is_refused_before_any_allocation)
{
    mt_e2e_run_t run;
    frame_pos_t frames[4];
    size_t len, n;
    uint8_t *data = killed_trace(&run, "4000", frames, 4, &len, &n);
    mt_put_u32(data + frames[0].file_off + 4, UINT32_MAX);
    char want[160];
    snprintf(want, sizeof want, "compressed frame at offset %llu: raw length 4294967295 is not valid",
             (unsigned long long)frames[0].file_off);
    expect_report_fails(&run, data, len, want);
    free(data);
    mt_e2e_run_free(&run);
}
