/* test_trace_reader.c - tests of analyzer/trace_reader.c: both passes, errors.
 *
 * Traces are built by hand with tests/common/trace_builder.c; corrupt ones by
 * patching the builder's bytes or appending raw records. Offsets in expected
 * messages follow from the default header: 64 fixed bytes, then "/bin/test"
 * and "test\0arg" as strings, so the first record is at offset 83.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "trace_builder.h"

#define FIRST_RECORD 83u

/* ---- helpers ---- */

static char *write_bytes(const void *data, size_t len)
{
    char tmpl[] = "/tmp/memtrack-test-XXXXXX";
    int fd = mkstemp(tmpl);
    cr_assert(fd >= 0);
    cr_assert_eq(write(fd, data, len), (ssize_t)len);
    close(fd);
    return strdup(tmpl);
}

/* Writes the builder's trace, frees the builder, returns the path. */
static char *finish(mt_tb_t *b)
{
    char *path = mt_tb_write_temp(b);
    cr_assert_not_null(path);
    mt_tb_destroy(b);
    return path;
}

static mt_trace_t *open_ok(const char *path)
{
    mt_trace_t *t = NULL;
    char err[512];
    int r = mt__trace_open(path, &t, err, sizeof err);
    cr_assert_eq(r, 0, "open failed: %s", err);
    cr_assert_not_null(t);
    return t;
}

/* Expects opening path to fail; returns the code and the message in err. */
static int open_fails(const char *path, char *err, size_t errlen)
{
    mt_trace_t *t = (mt_trace_t *)1;
    int r = mt__trace_open(path, &t, err, errlen);
    cr_assert_lt(r, 0, "open of %s should have failed", path);
    cr_assert_null(t);
    return r;
}

static void done(char *path, mt_trace_t *t)
{
    mt__trace_close(t);
    unlink(path);
    free(path);
}

/* Reads the whole merged stream into evs (at most max); returns the count. */
static size_t read_all(mt_trace_t *t, mt_event_t *evs, size_t max)
{
    size_t n = 0;
    mt_event_t ev;
    int r;
    while ((r = mt__trace_next(t, &ev)) > 0) {
        cr_assert_lt(n, max);
        evs[n++] = ev;
    }
    cr_assert_eq(r, 0, "next failed: %s", mt__trace_error(t));
    return n;
}

/* Appends a CHUNK record with a hand-made payload. */
static void raw_chunk(mt_tb_t *b, uint64_t stream, uint64_t tid, uint64_t count, uint64_t first_seq,
                      const uint8_t *events, size_t n)
{
    uint8_t buf[512], *p = buf + MT_RECORD_HEADER_SIZE;
    p = mt_put_varint(p, stream);
    p = mt_put_varint(p, tid);
    p = mt_put_varint(p, count);
    p = mt_put_varint(p, first_seq);
    cr_assert_lt((size_t)(p - buf) + n, sizeof buf);
    memcpy(p, events, n);
    p += n;
    buf[0] = MT_REC_CHUNK;
    mt_put_u32(buf + 1, (uint32_t)(p - buf - MT_RECORD_HEADER_SIZE));
    mt_tb_raw(b, buf, (size_t)(p - buf));
}

static size_t data_len(mt_tb_t *b)
{
    size_t len;
    mt_tb_data(b, &len);
    return len;
}

static void expect_event(const mt_event_t *ev, uint64_t seq, unsigned op, uint64_t ptr, uint64_t size,
                         uint32_t stack, uint32_t tid)
{
    cr_expect_eq(ev->seq, seq, "seq %lu, expected %lu", (unsigned long)ev->seq, (unsigned long)seq);
    cr_expect_eq(ev->op, op, "op %u at seq %lu, expected %u", ev->op, (unsigned long)seq, op);
    cr_expect_eq(ev->ptr, ptr, "ptr 0x%lx at seq %lu", (unsigned long)ev->ptr, (unsigned long)seq);
    cr_expect_eq(ev->size, size, "size at seq %lu", (unsigned long)seq);
    cr_expect_eq(ev->stack, stack, "stack at seq %lu", (unsigned long)seq);
    cr_expect_eq(ev->tid, tid, "tid at seq %lu", (unsigned long)seq);
    cr_expect_eq(ev->label, 0);
}

static void expect_marker(const mt_event_t *ev, uint64_t seq, uint32_t tid, uint32_t label)
{
    cr_expect_eq(ev->op, MT_EV_MARKER, "op %u at seq %lu is not a marker", ev->op,
                 (unsigned long)ev->seq);
    cr_expect_eq(ev->seq, seq);
    cr_expect_eq(ev->tid, tid);
    cr_expect_eq(ev->label, label);
    cr_expect_eq(ev->ptr, 0);
    cr_expect_eq(ev->size, 0);
    cr_expect_eq(ev->stack, 0);
}

static void expect_message(const char *err, const char *path, const char *what)
{
    cr_expect(strncmp(err, path, strlen(path)) == 0, "message does not start with the file: %s",
              err);
    cr_expect_not_null(strstr(err, what), "message lacks \"%s\": %s", what, err);
}

/* Opens a trace expected to open, then expects the merged stream to fail
 * after good events with a message containing what. */
static void expect_next_fails(mt_tb_t *b, size_t good, const char *what)
{
    char *path = finish(b);
    mt_trace_t *t = open_ok(path);
    mt_event_t ev;
    for (size_t i = 0; i < good; i++)
        cr_assert_eq(mt__trace_next(t, &ev), 1, "event %zu: %s", i, mt__trace_error(t));
    int r = mt__trace_next(t, &ev);
    cr_expect_lt(r, 0);
    expect_message(mt__trace_error(t), path, what);
    cr_expect_eq(mt__trace_next(t, &ev), r, "a failure is sticky");
    done(path, t);
}

static void expect_open_fails(mt_tb_t *b, const char *what)
{
    char *path = finish(b);
    char err[512];
    open_fails(path, err, sizeof err);
    expect_message(err, path, what);
    unlink(path);
    free(path);
}

static const uint64_t one_frame[] = {0x401000};

/* ---- the first pass and the merged stream ---- */

Test(trace_reader, every_record_type_round_trips)
{
    static const uint8_t build_id[] = {0xde, 0xad, 0xbe, 0xef};
    static const uint64_t frames0[] = {0x401000, 0x401100};
    static const uint64_t frames1[] = {0x7f0000001234};
    mt_tb_t *b = mt_tb_new();
    mt_tb_set_header(b, 4242, 17, MT_TRACE_F_FORKED | MT_TRACE_F_SAMPLED, 99, "/usr/bin/prog",
                     "prog\0-v\0x y", 11);
    mt_tb_module(b, 0, 0, 0, 0x400000, 0x500000, "/usr/bin/prog", build_id, sizeof build_id);
    mt_tb_module(b, 1, 0, 0x7f0000000000, 0x7f0000000000, 0x7f0000100000, "/lib/libc.so.6", NULL, 0);
    mt_tb_stack(b, 0, 0, frames0, 2);
    mt_tb_stack(b, 1, 2, frames1, 1);
    mt_tb_stack(b, 2, 0, NULL, 0);
    mt_tb_unload(b, 1, 3);
    mt_tb_label(b, 5, "phase one");
    mt_tb_time(b, 0, 0);
    mt_tb_marker(b, 3, 1500, 77, 5);
    mt_tb_chunk_begin(b, 0, 77, 1);
    mt_tb_alloc(b, MT_OP_MALLOC, 1, 0x10000, 16, 0);
    mt_tb_alloc(b, MT_OP_CALLOC, 2, 0x20000, 4096, 1);
    mt_tb_free(b, MT_OP_FREE, 4, 0x10000);
    mt_tb_free(b, MT_OP_REALLOC_FREE, 5, 0x20000);
    mt_tb_alloc(b, MT_OP_REALLOC, 6, 0x8, 100000, 2);
    mt_tb_free(b, MT_OP_DELETE, 7, 0x8);
    mt_tb_chunk_end(b);
    mt_tb_time(b, 7, 5000);
    mt_tb_lost(b, 0, 2);
    mt_tb_end(b, 7, 6000, 6, 2, 3);
    char *path = finish(b);
    mt_trace_t *t = open_ok(path);

    const mt_trace_info_t *info = mt__trace_info(t);
    cr_expect_str_eq(info->path, path);
    cr_expect_eq(info->version, 3u);
    cr_expect_eq(info->pid, 4242);
    cr_expect_eq(info->ppid, 17);
    cr_expect_eq(info->flags, MT_TRACE_F_FORKED | MT_TRACE_F_SAMPLED);
    cr_expect_eq(info->fork_seq, 99);
    cr_expect_eq(info->depth, 64);
    cr_expect_eq(info->sample_bytes, 0);
    cr_expect_str_eq(info->exe, "/usr/bin/prog");
    cr_expect_str_eq(info->command, "prog -v x y");
    cr_expect_eq(info->events, 6);
    cr_expect_eq(info->dropped, 2);
    cr_expect_eq(info->last_seq, 7);
    cr_expect_eq(info->duration_ns, 6000);
    cr_expect(info->complete);
    cr_expect_not(info->truncated);

    cr_assert_eq(info->nmodules, 2);
    const mt_module_t *m = &info->modules[0];
    cr_expect_eq(m->id, 0);
    cr_expect_eq(m->load_epoch, 0);
    cr_expect_eq(m->unload_epoch, UINT64_MAX);
    cr_expect_eq(m->base, 0);
    cr_expect_eq(m->start, 0x400000);
    cr_expect_eq(m->end, 0x500000);
    cr_expect_str_eq(m->path, "/usr/bin/prog");
    cr_assert_eq(m->build_id_len, 4);
    cr_expect_arr_eq(m->build_id, build_id, 4);
    m = &info->modules[1];
    cr_expect_eq(m->id, 1);
    cr_expect_eq(m->unload_epoch, 3);
    cr_expect_eq(m->base, 0x7f0000000000);
    cr_expect_str_eq(m->path, "/lib/libc.so.6");
    cr_expect_eq(m->build_id_len, 0);

    cr_assert_eq(info->nstacks, 3);
    const mt_stack_t *s = mt__trace_stack(t, 0);
    cr_assert_not_null(s);
    cr_expect_eq(s->epoch, 0);
    cr_assert_eq(s->depth, 2);
    cr_expect_eq(s->frames[0], 0x401000);
    cr_expect_eq(s->frames[1], 0x401100);
    s = mt__trace_stack(t, 1);
    cr_expect_eq(s->epoch, 2);
    cr_assert_eq(s->depth, 1);
    cr_expect_eq(s->frames[0], 0x7f0000001234);
    cr_expect_eq(mt__trace_stack(t, 2)->depth, 0);
    cr_expect_null(mt__trace_stack(t, 3));

    cr_expect_eq(info->nlabels, 1);
    cr_expect_str_eq(mt__trace_label(t, 5), "phase one");
    cr_expect_null(mt__trace_label(t, 6));
    cr_assert_eq(info->nmarkers, 1);
    cr_expect_eq(info->markers[0].seq, 3);
    cr_expect_eq(info->markers[0].time_ns, 1500);
    cr_expect_eq(info->markers[0].tid, 77);
    cr_expect_eq(info->markers[0].label, 5);

    mt_event_t evs[16];
    cr_assert_eq(read_all(t, evs, 16), 7);
    expect_event(&evs[0], 1, MT_OP_MALLOC, 0x10000, 16, 0, 77);
    expect_event(&evs[1], 2, MT_OP_CALLOC, 0x20000, 4096, 1, 77);
    expect_marker(&evs[2], 3, 77, 5);
    expect_event(&evs[3], 4, MT_OP_FREE, 0x10000, 0, 0, 77);
    expect_event(&evs[4], 5, MT_OP_REALLOC_FREE, 0x20000, 0, 0, 77);
    expect_event(&evs[5], 6, MT_OP_REALLOC, 0x8, 100000, 2, 77);
    expect_event(&evs[6], 7, MT_OP_DELETE, 0x8, 0, 0, 77);
    mt_event_t ev;
    cr_expect_eq(mt__trace_next(t, &ev), 0, "the end stays the end");
    cr_expect_str_eq(mt__trace_error(t), "");
    done(path, t);
}

Test(trace_reader, cross_thread_free_is_merged_in_seq_order)
{
    const uint64_t A = 0x1000, B = 0x2000, C = 0x3000, D = 0x4000, E = 0x5000;
    mt_tb_t *b = mt_tb_new();
    mt_tb_stack(b, 0, 0, one_frame, 1);
    mt_tb_chunk_begin(b, 0, 11, 1);
    mt_tb_alloc(b, MT_OP_MALLOC, 1, A, 10, 0);
    mt_tb_alloc(b, MT_OP_MALLOC, 4, B, 20, 0);
    mt_tb_chunk_end(b);
    mt_tb_chunk_begin(b, 1, 22, 2);
    mt_tb_alloc(b, MT_OP_NEW, 2, C, 30, 0);
    mt_tb_free(b, MT_OP_FREE, 3, A); /* allocated by stream 0 */
    mt_tb_free(b, MT_OP_DELETE, 6, C);
    mt_tb_chunk_end(b);
    mt_tb_chunk_begin(b, 0, 11, 5);
    mt_tb_free(b, MT_OP_FREE, 5, B);
    mt_tb_alloc(b, MT_OP_MALLOC, 8, D, 40, 0);
    mt_tb_chunk_end(b);
    mt_tb_chunk_begin(b, 1, 22, 7);
    mt_tb_alloc(b, MT_OP_MALLOC, 7, E, 50, 0);
    mt_tb_chunk_end(b);
    mt_tb_end(b, 8, 1000, 8, 0, 1);
    char *path = finish(b);
    mt_trace_t *t = open_ok(path);
    cr_expect_eq(mt__trace_info(t)->events, 8);

    mt_event_t evs[16];
    cr_assert_eq(read_all(t, evs, 16), 8);
    expect_event(&evs[0], 1, MT_OP_MALLOC, A, 10, 0, 11);
    expect_event(&evs[1], 2, MT_OP_NEW, C, 30, 0, 22);
    expect_event(&evs[2], 3, MT_OP_FREE, A, 0, 0, 22);
    expect_event(&evs[3], 4, MT_OP_MALLOC, B, 20, 0, 11);
    expect_event(&evs[4], 5, MT_OP_FREE, B, 0, 0, 11);
    expect_event(&evs[5], 6, MT_OP_DELETE, C, 0, 0, 22);
    expect_event(&evs[6], 7, MT_OP_MALLOC, E, 50, 0, 22);
    expect_event(&evs[7], 8, MT_OP_MALLOC, D, 40, 0, 11);
    done(path, t);
}

Test(trace_reader, markers_are_merged_in_seq_order_even_when_written_out_of_order)
{
    mt_tb_t *b = mt_tb_new();
    mt_tb_stack(b, 0, 0, one_frame, 1);
    mt_tb_label(b, 1, "end");
    mt_tb_label(b, 2, "start");
    mt_tb_label(b, 3, "middle");
    mt_tb_marker(b, 10, 900, 5, 1);
    mt_tb_marker(b, 0, 0, 5, 2);
    mt_tb_chunk_begin(b, 0, 5, 1);
    mt_tb_alloc(b, MT_OP_MALLOC, 1, 0x100, 1, 0);
    mt_tb_alloc(b, MT_OP_MALLOC, 2, 0x200, 2, 0);
    mt_tb_alloc(b, MT_OP_MALLOC, 3, 0x300, 3, 0);
    mt_tb_chunk_end(b);
    mt_tb_marker(b, 2, 200, 6, 3); /* same seq as an event: the marker comes first */
    char *path = finish(b);
    mt_trace_t *t = open_ok(path);
    const mt_trace_info_t *info = mt__trace_info(t);
    cr_assert_eq(info->nmarkers, 3);
    cr_expect_eq(info->markers[0].seq, 0);
    cr_expect_eq(info->markers[1].seq, 2);
    cr_expect_eq(info->markers[2].seq, 10);
    cr_expect_eq(info->markers[2].time_ns, 900);
    cr_expect_not(info->complete);

    mt_event_t evs[16];
    cr_assert_eq(read_all(t, evs, 16), 6);
    expect_marker(&evs[0], 0, 5, 2);
    expect_event(&evs[1], 1, MT_OP_MALLOC, 0x100, 1, 0, 5);
    expect_marker(&evs[2], 2, 6, 3);
    expect_event(&evs[3], 2, MT_OP_MALLOC, 0x200, 2, 0, 5);
    expect_event(&evs[4], 3, MT_OP_MALLOC, 0x300, 3, 0, 5);
    expect_marker(&evs[5], 10, 5, 1);
    cr_expect_str_eq(mt__trace_label(t, evs[5].label), "end");
    done(path, t);
}

Test(trace_reader, markers_alone_make_a_stream)
{
    mt_tb_t *b = mt_tb_new();
    mt_tb_label(b, 1, "only");
    mt_tb_marker(b, 4, 40, 9, 1);
    char *path = finish(b);
    mt_trace_t *t = open_ok(path);
    mt_event_t evs[4];
    cr_assert_eq(read_all(t, evs, 4), 1);
    expect_marker(&evs[0], 4, 9, 1);
    done(path, t);
}

Test(trace_reader, time_of_interpolates_between_time_records)
{
    mt_tb_t *b = mt_tb_new();
    mt_tb_time(b, 200, 3000); /* out of order on purpose */
    mt_tb_time(b, 100, 1000);
    mt_tb_time(b, 300, 3000);
    mt_tb_time(b, 400, 2000); /* a clock may step back: interpolation follows it */
    char *path = finish(b);
    mt_trace_t *t = open_ok(path);
    cr_expect_eq(mt__trace_time_of(t, 0), 0);
    cr_expect_eq(mt__trace_time_of(t, 50), 500);
    cr_expect_eq(mt__trace_time_of(t, 100), 1000);
    cr_expect_eq(mt__trace_time_of(t, 150), 2000);
    cr_expect_eq(mt__trace_time_of(t, 175), 2500);
    cr_expect_eq(mt__trace_time_of(t, 199), 2980);
    cr_expect_eq(mt__trace_time_of(t, 200), 3000);
    cr_expect_eq(mt__trace_time_of(t, 250), 3000);
    cr_expect_eq(mt__trace_time_of(t, 350), 2500);
    cr_expect_eq(mt__trace_time_of(t, 400), 2000);
    cr_expect_eq(mt__trace_time_of(t, 1000000), 2000);
    cr_expect_eq(mt__trace_info(t)->duration_ns, 3000);
    cr_expect_eq(mt__trace_info(t)->last_seq, 400);
    done(path, t);
}

Test(trace_reader, time_of_is_zero_without_time_records)
{
    char *path = finish(mt_tb_new());
    mt_trace_t *t = open_ok(path);
    cr_expect_eq(mt__trace_time_of(t, 0), 0);
    cr_expect_eq(mt__trace_time_of(t, 12345), 0);
    cr_expect_eq(mt__trace_info(t)->events, 0);
    mt_event_t ev;
    cr_expect_eq(mt__trace_next(t, &ev), 0);
    done(path, t);
}

Test(trace_reader, module_for_respects_load_and_unload_epochs)
{
    mt_tb_t *b = mt_tb_new();
    mt_tb_module(b, 2, 0, 0x10000, 0x10000, 0x20000, "/bin/x", NULL, 0);
    mt_tb_module(b, 0, 0, 0x1000, 0x1000, 0x2000, "/lib/a.so", NULL, 0);
    mt_tb_unload(b, 0, 1);
    mt_tb_module(b, 1, 1, 0x1000, 0x1000, 0x3000, "/lib/b.so", NULL, 0);
    char *path = finish(b);
    mt_trace_t *t = open_ok(path);
    const mt_module_t *m;

    m = mt__trace_module_for(t, 0x1500, 0);
    cr_assert_not_null(m);
    cr_expect_str_eq(m->path, "/lib/a.so");
    cr_expect_eq(m->unload_epoch, 1);
    cr_expect_str_eq(mt__trace_module_for(t, 0x1000, 0)->path, "/lib/a.so");
    cr_expect_null(mt__trace_module_for(t, 0x2000, 0), "end is exclusive");
    m = mt__trace_module_for(t, 0x1500, 1);
    cr_assert_not_null(m);
    cr_expect_str_eq(m->path, "/lib/b.so");
    cr_expect_str_eq(mt__trace_module_for(t, 0x2500, 7)->path, "/lib/b.so");
    cr_expect_null(mt__trace_module_for(t, 0x2500, 0), "b.so is not loaded yet at epoch 0");
    cr_expect_null(mt__trace_module_for(t, 0x500, 0));
    cr_expect_null(mt__trace_module_for(t, 0x3000, 1));
    cr_expect_str_eq(mt__trace_module_for(t, 0x1ffff, 5)->path, "/bin/x");
    cr_expect_null(mt__trace_module_for(t, 0x20000, 5));
    cr_expect_null(mt__trace_module_for(t, UINT64_MAX, 5));
    done(path, t);
}

Test(trace_reader, stack_ids_that_are_not_dense_are_mapped_to_indices)
{
    static const uint64_t f7[] = {0x7777}, f3[] = {0x3333};
    mt_tb_t *b = mt_tb_new();
    mt_tb_stack(b, 7, 0, f7, 1);
    mt_tb_stack(b, 3, 1, f3, 1);
    mt_tb_chunk_begin(b, 0, 1, 1);
    mt_tb_alloc(b, MT_OP_MALLOC, 1, 0x10, 1, 3);
    mt_tb_alloc(b, MT_OP_MALLOC, 2, 0x20, 2, 7);
    mt_tb_chunk_end(b);
    char *path = finish(b);
    mt_trace_t *t = open_ok(path);
    cr_expect_eq(mt__trace_info(t)->nstacks, 2);
    mt_event_t evs[4];
    cr_assert_eq(read_all(t, evs, 4), 2);
    cr_assert_eq(evs[0].stack, 1);
    cr_assert_eq(evs[1].stack, 0);
    cr_expect_eq(mt__trace_stack(t, evs[0].stack)->frames[0], 0x3333);
    cr_expect_eq(mt__trace_stack(t, evs[0].stack)->epoch, 1);
    cr_expect_eq(mt__trace_stack(t, evs[1].stack)->frames[0], 0x7777);
    done(path, t);
}

Test(trace_reader, rewind_restarts_the_merged_stream)
{
    mt_tb_t *b = mt_tb_new();
    mt_tb_stack(b, 0, 0, one_frame, 1);
    mt_tb_label(b, 0, "m");
    mt_tb_marker(b, 2, 20, 1, 0);
    mt_tb_chunk_begin(b, 0, 1, 1);
    mt_tb_alloc(b, MT_OP_MALLOC, 1, 0x10, 1, 0);
    mt_tb_chunk_end(b);
    mt_tb_chunk_begin(b, 1, 2, 3);
    mt_tb_free(b, MT_OP_FREE, 3, 0x10);
    mt_tb_chunk_end(b);
    char *path = finish(b);
    mt_trace_t *t = open_ok(path);
    mt_event_t first[8], second[8];
    mt_event_t ev;
    cr_assert_eq(read_all(t, first, 8), 3);
    mt__trace_rewind(t);
    cr_assert_eq(read_all(t, second, 8), 3);
    for (int i = 0; i < 3; i++)
        cr_expect_eq(memcmp(&first[i], &second[i], sizeof first[i]), 0, "event %d differs", i);
    mt__trace_rewind(t);
    cr_assert_eq(mt__trace_next(t, &ev), 1); /* rewind in the middle too */
    mt__trace_rewind(t);
    cr_assert_eq(read_all(t, second, 8), 3);
    cr_expect_eq(second[0].seq, 1);
    done(path, t);
}

Test(trace_reader, lost_and_end_dropped_are_not_counted_twice)
{
    mt_tb_t *b = mt_tb_new();
    mt_tb_lost(b, 0, 2);
    mt_tb_lost(b, 1, 3);
    char *path = finish(b);
    mt_trace_t *t = open_ok(path);
    cr_expect_eq(mt__trace_info(t)->dropped, 5, "the LOST records add up without END");
    done(path, t);

    b = mt_tb_new();
    mt_tb_lost(b, 0, 2);
    mt_tb_lost(b, 1, 3);
    mt_tb_end(b, 0, 0, 0, 5, 0);
    path = finish(b);
    t = open_ok(path);
    cr_expect_eq(mt__trace_info(t)->dropped, 5, "END's total covers the LOST records");
    done(path, t);
}

Test(trace_reader, many_events_over_many_chunks_come_out_in_order)
{
    enum { NSTREAMS = 5, N = 200000, PER_CHUNK = 300 };
    mt_tb_t *b = mt_tb_new();
    mt_tb_stack(b, 0, 0, one_frame, 1);
    mt_tb_stack(b, 1, 0, one_frame, 1);
    /* Deal seqs 1..N to streams pseudo-randomly; write a stream's chunk when
     * it has PER_CHUNK events, so chunks of different streams interleave. */
    uint64_t pending[NSTREAMS][PER_CHUNK];
    size_t npending[NSTREAMS] = {0};
    uint64_t x = 88172645463325252ull;
    for (uint64_t seq = 1; seq <= N; seq++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        unsigned s = (unsigned)(x % NSTREAMS);
        pending[s][npending[s]++] = seq;
        if (npending[s] == PER_CHUNK || seq == N) {
            for (unsigned k = 0; k < NSTREAMS; k++) {
                if (!npending[k] || (k != s && seq != N))
                    continue;
                mt_tb_chunk_begin(b, k, 100 + k, pending[k][0]);
                for (size_t i = 0; i < npending[k]; i++) {
                    uint64_t q = pending[k][i];
                    if (q % 3 == 0)
                        mt_tb_free(b, MT_OP_FREE, q, q * 16);
                    else
                        mt_tb_alloc(b, MT_OP_MALLOC, q, q * 16, q % 1000, (uint32_t)(q & 1));
                }
                mt_tb_chunk_end(b);
                npending[k] = 0;
            }
        }
    }
    char *path = finish(b);
    mt_trace_t *t = open_ok(path);
    cr_expect_eq(mt__trace_info(t)->events, N);
    mt_event_t ev;
    uint64_t expect = 1;
    int r;
    while ((r = mt__trace_next(t, &ev)) > 0) {
        cr_assert_eq(ev.seq, expect, "seq %lu, expected %lu", (unsigned long)ev.seq,
                     (unsigned long)expect);
        cr_assert_eq(ev.ptr, expect * 16);
        if (expect % 3 == 0) {
            cr_assert_eq(ev.op, MT_OP_FREE);
        } else {
            cr_assert_eq(ev.op, MT_OP_MALLOC);
            cr_assert_eq(ev.size, expect % 1000);
            cr_assert_eq(ev.stack, expect & 1);
        }
        cr_assert_eq(ev.tid >= 100 && ev.tid < 100 + NSTREAMS, 1);
        expect++;
    }
    cr_assert_eq(r, 0, "%s", mt__trace_error(t));
    cr_expect_eq(expect, N + 1);
    done(path, t);
}

Test(trace_reader, chunk_count_padded_to_five_bytes_is_read)
{
    mt_tb_t *b = mt_tb_new();
    /* stream 3, tid 9, count 2 as a padded 5-byte varint, first_seq 4, then
     * free 0x10 at seq 4 and free 0x20 at seq 5 */
    const uint8_t rec[] = {MT_REC_CHUNK, 14,   0,    0,    0, 3,          9,    0x82,
                           0x80,         0x80, 0x80, 0x00, 4, MT_OP_FREE, 0,    0x20,
                           MT_OP_FREE,   1,    0x20};
    mt_tb_raw(b, rec, sizeof rec);
    char *path = finish(b);
    mt_trace_t *t = open_ok(path);
    cr_expect_eq(mt__trace_info(t)->events, 2);
    mt_event_t evs[4];
    cr_assert_eq(read_all(t, evs, 4), 2);
    expect_event(&evs[0], 4, MT_OP_FREE, 0x10, 0, 0, 9);
    expect_event(&evs[1], 5, MT_OP_FREE, 0x20, 0, 0, 9);
    done(path, t);
}

/* ---- truncated files ---- */

static mt_tb_t *two_chunks(size_t *second_chunk_at)
{
    mt_tb_t *b = mt_tb_new();
    mt_tb_stack(b, 0, 0, one_frame, 1);
    mt_tb_chunk_begin(b, 0, 1, 1);
    mt_tb_alloc(b, MT_OP_MALLOC, 1, 0x10, 8, 0);
    mt_tb_alloc(b, MT_OP_MALLOC, 2, 0x20, 8, 0);
    mt_tb_chunk_end(b);
    *second_chunk_at = data_len(b);
    mt_tb_chunk_begin(b, 1, 2, 3);
    mt_tb_free(b, MT_OP_FREE, 3, 0x10);
    mt_tb_free(b, MT_OP_FREE, 4, 0x20);
    mt_tb_alloc(b, MT_OP_MALLOC, 5, 0x30, 8, 0);
    mt_tb_chunk_end(b);
    mt_tb_end(b, 5, 500, 5, 0, 1);
    return b;
}

static void expect_cut_at(size_t cut, size_t record_at)
{
    size_t len;
    mt_tb_t *b = two_chunks(&(size_t){0});
    const uint8_t *data = mt_tb_data(b, &len);
    cr_assert_lt(cut, len);
    char *path = write_bytes(data, cut);
    mt_tb_destroy(b);
    mt_trace_t *t = open_ok(path);
    const mt_trace_info_t *info = mt__trace_info(t);
    cr_expect(info->truncated);
    cr_expect_eq(info->truncated_at, record_at);
    cr_expect_not(info->complete);
    cr_expect_eq(info->events, 2);
    mt_event_t evs[8];
    cr_assert_eq(read_all(t, evs, 8), 2);
    expect_event(&evs[0], 1, MT_OP_MALLOC, 0x10, 8, 0, 1);
    expect_event(&evs[1], 2, MT_OP_MALLOC, 0x20, 8, 0, 1);
    done(path, t);
}

Test(trace_reader, file_cut_inside_a_chunk_yields_the_complete_chunks_only)
{
    size_t at;
    mt_tb_destroy(two_chunks(&at));
    expect_cut_at(at + MT_RECORD_HEADER_SIZE + 6, at);
}

Test(trace_reader, file_cut_inside_a_record_header_is_truncated_too)
{
    size_t at;
    mt_tb_destroy(two_chunks(&at));
    expect_cut_at(at + 3, at);
}

Test(trace_reader, file_ending_on_a_record_boundary_is_not_truncated)
{
    size_t at;
    mt_tb_t *b = two_chunks(&at);
    size_t len;
    const uint8_t *data = mt_tb_data(b, &len);
    char *path = write_bytes(data, at);
    mt_tb_destroy(b);
    mt_trace_t *t = open_ok(path);
    cr_expect_not(mt__trace_info(t)->truncated);
    cr_expect_not(mt__trace_info(t)->complete);
    done(path, t);
}

/* ---- files that are not traces, or corrupt ---- */

Test(trace_reader, nonexistent_file_is_an_error_naming_it)
{
    char err[512];
    const char *path = "/tmp/memtrack-test-does-not-exist.trace";
    cr_expect_eq(open_fails(path, err, sizeof err), -ENOENT);
    expect_message(err, path, "No such file");
}

Test(trace_reader, empty_file_is_an_error_naming_it)
{
    char *path = write_bytes("", 0);
    char err[512];
    open_fails(path, err, sizeof err);
    expect_message(err, path, "empty");
    unlink(path);
    free(path);
}

Test(trace_reader, bad_magic_is_an_error_naming_the_file)
{
    mt_tb_t *b = mt_tb_new();
    size_t len;
    uint8_t data[256];
    const uint8_t *built = mt_tb_data(b, &len);
    cr_assert_leq(len, 256);
    memcpy(data, built, len);
    data[0] = 'X';
    char *path = write_bytes(data, len);
    char err[512];
    open_fails(path, err, sizeof err);
    expect_message(err, path, "not a memtrack trace");
    mt_tb_destroy(b);
    unlink(path);
    free(path);
}

Test(trace_reader, file_shorter_than_the_header_is_an_error)
{
    char *path = write_bytes("MEMTRACE\1\0\0\0", 12);
    char err[512];
    open_fails(path, err, sizeof err);
    expect_message(err, path, "ends inside the trace header");
    unlink(path);
    free(path);
}

Test(trace_reader, newer_format_version_is_refused_with_its_number)
{
    mt_tb_t *b = mt_tb_new();
    size_t len;
    uint8_t data[256];
    const uint8_t *built = mt_tb_data(b, &len);
    cr_assert_leq(len, 256);
    memcpy(data, built, len);
    mt_put_u32(data + 8, MT_TRACE_VERSION + 1);
    char *path = write_bytes(data, len);
    char err[512], expected[512];
    open_fails(path, err, sizeof err);
    snprintf(expected, sizeof expected,
             "%s: trace format version %u is newer than this memtrack supports (%u)", path,
             MT_TRACE_VERSION + 1, MT_TRACE_VERSION);
    cr_expect_str_eq(err, expected);
    mt_tb_destroy(b);
    unlink(path);
    free(path);
}

Test(trace_reader, header_size_that_cannot_be_right_is_an_error)
{
    mt_tb_t *b = mt_tb_new();
    size_t len;
    uint8_t data[256];
    char err[512];
    const uint8_t *built = mt_tb_data(b, &len);
    cr_assert_leq(len, 256);
    memcpy(data, built, len);
    mt_put_u32(data + 12, 10);
    char *path = write_bytes(data, len);
    open_fails(path, err, sizeof err);
    expect_message(err, path, "offset 12: header size 10 is not valid");
    unlink(path);
    free(path);

    mt_put_u32(data + 12, 4096);
    path = write_bytes(data, len);
    open_fails(path, err, sizeof err);
    expect_message(err, path, "ends inside the trace header");
    unlink(path);
    free(path);

    mt_put_u32(data + 12, FIRST_RECORD - 1); /* cuts the command line */
    path = write_bytes(data, len);
    open_fails(path, err, sizeof err);
    expect_message(err, path, "offset 64: header: cmdline length 8 runs past the end");
    mt_tb_destroy(b);
    unlink(path);
    free(path);
}

Test(trace_reader, record_length_over_the_maximum_is_an_error_naming_the_offset)
{
    mt_tb_t *b = mt_tb_new();
    mt_tb_module(b, 0, 0, 0, 0x1000, 0x2000, "/lib/a.so", NULL, 0);
    mt_tb_end(b, 0, 0, 0, 0, 0);
    size_t len;
    uint8_t data[256];
    const uint8_t *built = mt_tb_data(b, &len);
    cr_assert_leq(len, 256);
    memcpy(data, built, len);
    data[FIRST_RECORD + 4] ^= 0x40; /* one flipped bit in the length */
    char *path = write_bytes(data, len);
    char err[512];
    open_fails(path, err, sizeof err);
    expect_message(err, path, "offset 83: MODULE record length");
    expect_message(err, path, "exceeds the maximum");
    mt_tb_destroy(b);
    unlink(path);
    free(path);
}

Test(trace_reader, record_length_too_short_for_its_fields_is_an_error)
{
    mt_tb_t *b = mt_tb_new();
    mt_tb_module(b, 0, 0, 0, 0x1000, 0x2000, "/lib/a.so", NULL, 0);
    mt_tb_end(b, 0, 0, 0, 0, 0);
    size_t len;
    uint8_t data[256];
    const uint8_t *built = mt_tb_data(b, &len);
    cr_assert_leq(len, 256);
    memcpy(data, built, len);
    data[FIRST_RECORD + 1] -= 1;
    char *path = write_bytes(data, len);
    char err[512];
    open_fails(path, err, sizeof err);
    expect_message(err, path, "offset 83: MODULE record: build_id");
    mt_tb_destroy(b);
    unlink(path);
    free(path);
}

Test(trace_reader, record_with_bytes_after_its_fields_is_an_error)
{
    mt_tb_t *b = mt_tb_new();
    const uint8_t rec[] = {MT_REC_TIME, 3, 0, 0, 0, 1, 2, 3};
    mt_tb_raw(b, rec, sizeof rec);
    expect_open_fails(b, "offset 83: TIME record: 1 unexpected bytes after the last field");
}

Test(trace_reader, unknown_record_type_is_an_error_naming_the_offset)
{
    mt_tb_t *b = mt_tb_new();
    mt_tb_time(b, 1, 1); /* 7 bytes */
    const uint8_t rec[] = {0x42, 0, 0, 0, 0};
    mt_tb_raw(b, rec, sizeof rec);
    expect_open_fails(b, "offset 90: unknown record type 66");
}

Test(trace_reader, chunk_count_of_2_pow_60_fails_without_allocating)
{
    mt_tb_t *b = mt_tb_new();
    const uint8_t events[] = {MT_OP_FREE, 0, 2, MT_OP_FREE, 0, 2};
    raw_chunk(b, 0, 1, UINT64_C(1) << 60, 1, events, sizeof events);
    expect_open_fails(b, "offset 83: CHUNK record: count 1152921504606846976 events cannot fit in");
}

Test(trace_reader, chunk_with_more_bytes_than_its_count_of_events_can_take_is_an_error)
{
    /* One event takes at most 52 bytes: more is padding the first pass
     * would otherwise let through (zeros compress a thousandfold). */
    mt_tb_t *b = mt_tb_new();
    uint8_t events[2 * 52 + 1] = {MT_OP_FREE, 0, 2};
    raw_chunk(b, 0, 1, 2, 1, events, sizeof events);
    expect_open_fails(b, "offset 83: CHUNK record: 105 bytes of events are more than 2 events can take");
}

Test(trace_reader, stack_depth_over_1024_is_an_error)
{
    mt_tb_t *b = mt_tb_new();
    static uint8_t rec[MT_RECORD_HEADER_SIZE + 4 + 1025];
    uint8_t *p = rec + MT_RECORD_HEADER_SIZE;
    p = mt_put_varint(p, 0);
    p = mt_put_varint(p, 0);
    p = mt_put_varint(p, 1025);
    memset(p, 1, 1025);
    p += 1025;
    rec[0] = MT_REC_STACK;
    mt_put_u32(rec + 1, (uint32_t)(p - rec - MT_RECORD_HEADER_SIZE));
    mt_tb_raw(b, rec, (size_t)(p - rec));
    expect_open_fails(b, "offset 83: STACK record: depth 1025 exceeds 1024");
}

Test(trace_reader, stack_depth_that_does_not_fit_its_record_is_an_error)
{
    mt_tb_t *b = mt_tb_new();
    const uint8_t rec[] = {MT_REC_STACK, 6, 0, 0, 0, 0, 0, 100, 1, 2, 3};
    mt_tb_raw(b, rec, sizeof rec);
    expect_open_fails(b, "offset 83: STACK record: depth 100 does not fit in the 3 bytes left");
}

Test(trace_reader, stack_defined_twice_is_an_error)
{
    mt_tb_t *b = mt_tb_new();
    mt_tb_stack(b, 0, 0, one_frame, 1);
    mt_tb_stack(b, 0, 0, one_frame, 1);
    expect_open_fails(b, "offset 95: STACK record: stack id 0 is defined twice");
}

Test(trace_reader, unload_of_a_module_never_loaded_is_an_error)
{
    mt_tb_t *b = mt_tb_new();
    mt_tb_unload(b, 4, 1);
    expect_open_fails(b, "offset 83: UNLOAD record: module id 4 is not loaded");
}

Test(trace_reader, stack_id_never_defined_is_an_error_at_its_event)
{
    mt_tb_t *b = mt_tb_new();
    mt_tb_stack(b, 0, 0, one_frame, 1); /* @83, 5 + 7 bytes */
    mt_tb_chunk_begin(b, 0, 7, 1);      /* @95, events from 95 + 5 + 4 = 104 */
    mt_tb_alloc(b, MT_OP_MALLOC, 1, 0x10, 8, 0); /* 5 bytes */
    mt_tb_alloc(b, MT_OP_MALLOC, 2, 0x20, 8, 9); /* @109 */
    mt_tb_chunk_end(b);
    expect_next_fails(b, 1, "offset 109: malloc event: stack id 9 was never defined");
}

Test(trace_reader, unknown_event_op_is_an_error)
{
    mt_tb_t *b = mt_tb_new();
    const uint8_t events[] = {MT_OP_FREE, 0, 2, 20, 1, 4};
    raw_chunk(b, 0, 1, 2, 1, events, sizeof events); /* events at 83 + 5 + 4 */
    expect_next_fails(b, 1, "offset 95: unknown event op 20");
}

Test(trace_reader, varint_running_past_the_chunk_is_an_error)
{
    mt_tb_t *b = mt_tb_new();
    const uint8_t events[] = {MT_OP_FREE, 0, 0x80, 0x80, 0x80};
    raw_chunk(b, 0, 1, 1, 1, events, sizeof events);
    expect_next_fails(b, 0, "offset 92: free event: pointer delta runs past the end");
}

Test(trace_reader, chunk_with_fewer_events_than_its_count_is_an_error)
{
    mt_tb_t *b = mt_tb_new();
    mt_tb_stack(b, 0, 0, one_frame, 1); /* @83, 12 bytes */
    /* two 5-byte mallocs, count 3: fits 3 minimal events, but holds 2 */
    const uint8_t events[] = {MT_OP_MALLOC, 0, 8, 2, 0, MT_OP_MALLOC, 1, 8, 2, 0};
    raw_chunk(b, 0, 1, 3, 1, events, sizeof events); /* events at 95 + 9 */
    expect_next_fails(b, 2, "offset 114: chunk ends with 1 of its events missing");
}

Test(trace_reader, chunk_with_more_events_than_its_count_is_an_error)
{
    mt_tb_t *b = mt_tb_new();
    const uint8_t events[] = {MT_OP_FREE, 0, 2, MT_OP_FREE, 1, 2};
    raw_chunk(b, 0, 1, 1, 1, events, sizeof events);
    expect_next_fails(b, 1, "offset 95: 3 bytes left after the 1 events of the chunk at offset 83");
}

Test(trace_reader, seq_going_backwards_within_a_stream_is_an_error)
{
    mt_tb_t *b = mt_tb_new();
    mt_tb_chunk_begin(b, 0, 1, 5);
    mt_tb_free(b, MT_OP_FREE, 5, 0x10);
    mt_tb_free(b, MT_OP_FREE, 6, 0x20);
    mt_tb_chunk_end(b);
    mt_tb_chunk_begin(b, 0, 1, 3);
    mt_tb_free(b, MT_OP_FREE, 3, 0x30);
    mt_tb_chunk_end(b);
    expect_next_fails(b, 2, "stream 0: seq 3 goes backwards");
}

/* ---- reading in batches ---- */

static void expect_same_event(const mt_event_t *a, const mt_event_t *b, size_t i)
{
    cr_assert(a->seq == b->seq && a->op == b->op && a->ptr == b->ptr && a->size == b->size &&
                  a->stack == b->stack && a->tid == b->tid && a->label == b->label,
              "event %zu differs: seq %lu/%lu op %u/%u ptr %lx/%lx", i, (unsigned long)a->seq,
              (unsigned long)b->seq, a->op, b->op, (unsigned long)a->ptr, (unsigned long)b->ptr);
}

Test(trace_reader, batches_give_the_same_events_as_one_at_a_time)
{
    /* Three streams take turns in runs of 1 to 40 events, with markers
     * between and on the seq of an event, a few seqs that two streams share,
     * and sizes and pointer deltas of every varint length up to 10 bytes. */
    enum { NSTREAMS = 3, N = 4000, PER_CHUNK = 100, MAX = 2 * N };
    mt_tb_t *b = mt_tb_new();
    for (uint64_t i = 0; i < 4; i++)
        mt_tb_stack(b, i, 0, one_frame, 1);
    mt_tb_label(b, 0, "m");
    uint64_t pending[NSTREAMS][PER_CHUNK];
    size_t npending[NSTREAMS] = {0};
    uint64_t x = 88172645463325252ull;
    unsigned s = 0, left = 0;
    for (uint64_t seq = 1; seq <= N; seq++) {
        if (!left) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            s = (unsigned)(x % NSTREAMS);
            left = 1 + (unsigned)(x >> 32) % 40;
        }
        left--;
        unsigned twin = seq % 501 == 0 ? (s + 1) % NSTREAMS : s; /* a second stream with this seq */
        for (unsigned k = s;; k = twin) {
            pending[k][npending[k]++] = seq;
            if (npending[k] == PER_CHUNK || seq == N) {
                mt_tb_chunk_begin(b, k, 100 + k, pending[k][0]);
                for (size_t i = 0; i < npending[k]; i++) {
                    uint64_t q = pending[k][i];
                    uint64_t ptr = q % 7 == 0 ? q * 0x9e3779b97f4a7c15ull : ((uint64_t)k << 40) + q * 48;
                    if (q % 3 == 0)
                        mt_tb_free(b, MT_OP_FREE, q, ptr);
                    else
                        mt_tb_alloc(b, MT_OP_MALLOC, q, ptr, (1ull << (q % 64)) | q, (uint32_t)(q % 4));
                }
                mt_tb_chunk_end(b);
                npending[k] = 0;
            }
            if (k == twin)
                break;
        }
        if (seq % 97 == 0)
            mt_tb_marker(b, seq, seq, 1, 0); /* ties with the event: the marker comes first */
        if (seq % 211 == 0)
            mt_tb_marker(b, seq + 1, seq, 1, 0);
    }
    for (unsigned k = 0; k < NSTREAMS; k++) {
        if (!npending[k])
            continue;
        mt_tb_chunk_begin(b, k, 100 + k, pending[k][0]);
        for (size_t i = 0; i < npending[k]; i++)
            mt_tb_free(b, MT_OP_FREE, pending[k][i], 16);
        mt_tb_chunk_end(b);
    }
    char *path = finish(b);
    mt_trace_t *t = open_ok(path);
    mt_event_t *one = malloc(MAX * sizeof *one), *batch = malloc(MAX * sizeof *batch);
    cr_assert(one && batch);
    size_t n = read_all(t, one, MAX);
    cr_assert_gt(n, N);
    static const size_t sizes[] = {1, 2, 5, 16, 1000, MAX};
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
        mt__trace_rewind(t);
        size_t got = 0;
        int r;
        while ((r = mt__trace_next_batch(t, batch + got, sizes[k] < MAX - got ? sizes[k] : MAX - got)) > 0) {
            cr_assert_leq((size_t)r, sizes[k]);
            got += (size_t)r;
        }
        cr_assert_eq(r, 0, "batch of %zu failed: %s", sizes[k], mt__trace_error(t));
        cr_assert_eq(got, n, "batches of %zu gave %zu events, not %zu", sizes[k], got, n);
        for (size_t i = 0; i < n; i++)
            expect_same_event(&one[i], &batch[i], i);
    }
    free(one);
    free(batch);
    done(path, t);
}

Test(trace_reader, batch_stops_before_a_corrupt_event_and_fails_on_the_next_call)
{
    mt_tb_t *b = mt_tb_new();
    mt_tb_stack(b, 0, 0, one_frame, 1);
    mt_tb_chunk_begin(b, 0, 7, 1);
    for (uint64_t q = 1; q <= 50; q++)
        mt_tb_alloc(b, MT_OP_MALLOC, q, q * 16, 8, 0);
    mt_tb_alloc(b, MT_OP_MALLOC, 51, 51 * 16, 8, 9);
    for (uint64_t q = 52; q <= 100; q++)
        mt_tb_free(b, MT_OP_FREE, q, q * 16);
    mt_tb_chunk_end(b);
    char *path = finish(b);
    mt_trace_t *t = open_ok(path);
    mt_event_t evs[64];
    cr_assert_eq(mt__trace_next_batch(t, evs, 64), 50, "%s", mt__trace_error(t));
    cr_expect_eq(evs[49].seq, 50);
    int r = mt__trace_next_batch(t, evs, 64);
    cr_expect_lt(r, 0);
    expect_message(mt__trace_error(t), path, "malloc event: stack id 9 was never defined");
    cr_expect_eq(mt__trace_next_batch(t, evs, 64), r, "a failure is sticky");
    done(path, t);
}

/* ---- the raw record iterator (memtrack dump) ---- */

Test(trace_reader, record_iterator_yields_records_in_file_order_with_raw_events)
{
    mt_tb_t *b = mt_tb_new();
    mt_tb_module(b, 3, 1, 0x100, 0x1000, 0x2000, "/lib/a.so", (const uint8_t *)"\x01\x02", 2);
    mt_tb_stack(b, 9, 1, one_frame, 1);
    mt_tb_label(b, 2, "go");
    mt_tb_chunk_begin(b, 4, 44, 10);
    mt_tb_alloc(b, MT_OP_MALLOC, 10, 0x5000, 24, 9);
    mt_tb_free(b, MT_OP_FREE, 12, 0x5000);
    mt_tb_chunk_end(b);
    mt_tb_end(b, 12, 100, 2, 0, 1);
    char *path = finish(b);
    mt_record_iter_t *it;
    char err[512];
    cr_assert_eq(mt__record_open(path, &it, err, sizeof err), 0, "%s", err);
    cr_expect_str_eq(mt__record_header(it)->command, "test arg");
    cr_expect_eq(mt__record_header(it)->pid, 1000);
    mt_record_t rec;
    mt_event_t ev;

    cr_assert_eq(mt__record_next(it, &rec), 1);
    cr_expect_eq(rec.offset, FIRST_RECORD);
    cr_expect_eq(rec.type, MT_REC_MODULE);
    cr_expect_eq(rec.u.module.id, 3);
    cr_expect_eq(rec.u.module.base, 0x100);
    cr_expect_eq(rec.u.module.path_len, 9);
    cr_expect_eq(memcmp(rec.u.module.path, "/lib/a.so", 9), 0);
    cr_expect_eq(rec.u.module.build_id_len, 2);
    cr_assert_eq(mt__record_next(it, &rec), 1);
    cr_expect_eq(rec.type, MT_REC_STACK);
    cr_expect_eq(rec.u.stack.id, 9);
    cr_expect_eq(rec.u.stack.frames[0], 0x401000);
    cr_assert_eq(mt__record_next(it, &rec), 1);
    cr_expect_eq(rec.type, MT_REC_LABEL);
    cr_expect_eq(rec.u.label.text_len, 2);
    cr_assert_eq(mt__record_next(it, &rec), 1);
    cr_expect_eq(rec.type, MT_REC_CHUNK);
    cr_expect_eq(rec.u.chunk.stream, 4);
    cr_expect_eq(rec.u.chunk.tid, 44);
    cr_expect_eq(rec.u.chunk.count, 2);
    cr_expect_eq(rec.u.chunk.first_seq, 10);
    cr_assert_eq(mt__record_event(it, &ev), 1);
    cr_expect_eq(ev.seq, 10);
    cr_expect_eq(ev.op, MT_OP_MALLOC);
    cr_expect_eq(ev.ptr, 0x5000);
    cr_expect_eq(ev.size, 24);
    cr_expect_eq(ev.stack, 9, "the raw stack id, not an index");
    cr_assert_eq(mt__record_event(it, &ev), 1);
    cr_expect_eq(ev.seq, 12);
    cr_expect_eq(ev.op, MT_OP_FREE);
    cr_expect_eq(mt__record_event(it, &ev), 0);
    cr_assert_eq(mt__record_next(it, &rec), 1);
    cr_expect_eq(rec.type, MT_REC_END);
    cr_expect_eq(rec.u.end.last_seq, 12);
    cr_expect_eq(mt__record_next(it, &rec), 0);
    cr_expect_not(mt__record_header(it)->truncated);
    mt__record_close(it);
    unlink(path);
    free(path);
}

Test(trace_reader, op_names_come_from_the_op_table)
{
    cr_expect_str_eq(mt__op_name(MT_OP_MALLOC), "malloc");
    cr_expect_str_eq(mt__op_name(MT_OP_NEW_ARRAY), "operator new[]");
    cr_expect_str_eq(mt__op_name(MT_OP_DELETE), "operator delete");
    cr_expect_str_eq(mt__op_name(MT_OP_REALLOC_FREE), "realloc");
    cr_expect_str_eq(mt__op_name(MT_OP_XALLOCX_FREE), "xallocx");
    cr_expect_str_eq(mt__op_name(14), "?");
    cr_expect_str_eq(mt__op_name(200), "?");
    cr_expect_str_eq(mt__record_name(MT_REC_CHUNK), "CHUNK");
    cr_expect_null(mt__record_name(0));
}

Test(trace_reader, a_markers_own_time_is_the_time_of_its_seq_for_every_command)
{
    mt_tb_t *b = mt_tb_new();
    mt_tb_label(b, 0, "batch");
    mt_tb_time(b, 0, 0);
    mt_tb_chunk_begin(b, 0, 7, 1);
    mt_tb_alloc(b, MT_OP_MALLOC, 1, 0x10000, 16, 0);
    mt_tb_alloc(b, MT_OP_MALLOC, 2, 0x20000, 16, 0);
    mt_tb_chunk_end(b);
    /* Between the TIME records interpolation would say 500; the marker says 900. */
    mt_tb_marker(b, 5, 900, 7, 0);
    mt_tb_time(b, 10, 1000);
    mt_tb_end(b, 10, 1000, 2, 0, 0);
    char *path = finish(b);
    mt_trace_t *t = open_ok(path);
    cr_expect_eq(mt__trace_time_of(t, 5), 900);
    cr_expect_eq(mt__trace_time_of(t, 10), 1000);
    cr_expect_leq(mt__trace_time_of(t, 4), 900);
    cr_expect_geq(mt__trace_time_of(t, 6), 900);
    done(path, t);
}

/* Version 4 names a freed block by its age or by the change from the
 * previous free's block, whichever is shorter; both must read back. */
Test(trace_reader, block_references_read_back_by_age_and_by_change)
{
    /* Freed right after, the previous free long ago: the age is shorter. */
    uint64_t r = mt_block_ref(1000000, 999999, 5);
    cr_expect_eq(r & 1, 1, "by age");
    cr_expect_eq(mt_varint_len(r), 1);
    cr_expect_eq(mt_block_unref(1000000, r, 5), 999999);
    /* Blocks dying in the order they were born: the change is shorter. */
    r = mt_block_ref(1000000, 400003, 400001);
    cr_expect_eq(r & 1, 0, "by change");
    cr_expect_eq(mt_varint_len(r), 1);
    cr_expect_eq(mt_block_unref(1000000, r, 400001), 400003);
    /* And backwards. */
    r = mt_block_ref(1000000, 400001, 400003);
    cr_expect_eq(mt_block_unref(1000000, r, 400003), 400001);
    uint64_t x = 88172645463325252ull;
    for (int i = 0; i < 100000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        uint64_t seq = 2 + (x >> 20) % 1000000000ull;
        uint64_t ref = 1 + (x >> 3) % (seq - 1);
        uint64_t prev = (x * 31) % 2000000000ull;
        uint64_t enc = mt_block_ref(seq, ref, prev);
        cr_assert_eq(mt_block_unref(seq, enc, prev), ref, "seq %llu ref %llu prev %llu", (unsigned long long)seq,
                     (unsigned long long)ref, (unsigned long long)prev);
        cr_assert_leq(mt_varint_len(enc), mt_varint_len((seq - ref) << 1 | 1));
    }
    /* A reference to the free itself or later is no block. */
    cr_expect_eq(mt_block_unref(10, 1, 3), 0, "age 0");
    cr_expect_eq(mt_block_unref(10, mt_zigzag(7) << 1, 3), 0, "3 + 7 is the free's own seq");
}

/* ---- version 5: packed event heads ---- */

typedef struct v5_event {
    bool frees;
    unsigned op;
    uint64_t seq, size, ref, addr, replaces;
    uint32_t stack;
} v5_event_t;

/* Every way version 5 names an op, a stack and a block: 20 stacks (more
 * than the 15 the list of recent stacks holds, and back to early ones),
 * ops that become the chunk's op and resize halves that do not, seq
 * deltas of 1 to 3 and more, ages of one, two and three bytes and beyond,
 * changes of reference, blocks named by address, and an allocation that
 * replaces a block whose free was lost. */
static size_t v5_events(v5_event_t *ev, size_t max)
{
    static const unsigned allocs[] = {MT_OP_MALLOC, MT_OP_MALLOC, MT_OP_NEW, MT_OP_NEW, MT_OP_REALLOC,
                                      MT_OP_NEW, MT_OP_CALLOC, MT_OP_MALLOC};
    static const unsigned frees[] = {MT_OP_FREE, MT_OP_DELETE, MT_OP_REALLOC_FREE, MT_OP_DELETE,
                                     MT_OP_FREE, MT_OP_SDALLOCX};
    static const uint64_t gaps[] = {1, 2, 3, 4, 1000, 1, 1, 3};
    uint64_t seq, born[64];
    size_t n = 0, nborn = 0;
    /* First, ages of one, two and three bytes where a change of reference
     * is no shorter: blocks b1, b2, b3 freed b3, b2, b1. */
    uint64_t b1 = 100, b2 = b1 + 70000, b3 = b2 + 300;
    ev[n++] = (v5_event_t){.op = MT_OP_MALLOC, .seq = b1, .size = 1, .stack = 3};
    ev[n++] = (v5_event_t){.op = MT_OP_MALLOC, .seq = b2, .size = 2, .stack = 3};
    ev[n++] = (v5_event_t){.op = MT_OP_MALLOC, .seq = b3, .size = 3, .stack = 3};
    ev[n++] = (v5_event_t){.frees = true, .op = MT_OP_FREE, .seq = b3 + 1, .ref = b3};
    ev[n++] = (v5_event_t){.frees = true, .op = MT_OP_FREE, .seq = b3 + 300, .ref = b2};
    ev[n++] = (v5_event_t){.frees = true, .op = MT_OP_FREE, .seq = b3 + 301, .ref = b1};
    seq = b3 + 301;
    for (size_t i = 0; n + 2 < max && i < 300; i++) {
        seq += gaps[i % 8];
        uint32_t stack = (uint32_t)(i % 7 == 0 ? i % 20 : (i * 5) % 3);
        ev[n++] = (v5_event_t){.op = allocs[i % 8], .seq = seq, .size = (i * 977) % 70000, .stack = stack,
                               .addr = i % 50 == 7 ? 0x7f0000001000ull + i : 0,
                               .replaces = i % 60 == 11 && nborn ? born[0] : 0};
        if (!ev[n - 1].addr && !ev[n - 1].replaces && nborn < 64)
            born[nborn++] = seq;
        if (i % 3 == 2 && nborn > 1) { /* free an old one, then the newest */
            size_t k = (i / 3) % nborn;
            seq += gaps[(i + 3) % 8];
            ev[n++] = (v5_event_t){.frees = true, .op = frees[i % 6], .seq = seq, .ref = born[k]};
            born[k] = born[--nborn];
        }
        if (i % 40 == 39) {
            seq += 1;
            ev[n++] = (v5_event_t){.frees = true, .op = MT_OP_FREE, .seq = seq, .addr = 0x5000 + i};
        }
        if (i == 150)
            seq += 1u << 25; /* every block now older than three bytes say */
    }
    return n;
}

static void v5_add(mt_tb_t *b, const v5_event_t *e)
{
    if (e->frees && e->ref)
        mt_tb_free_ref(b, e->op, e->seq, e->ref);
    else if (e->frees)
        mt_tb_free_addr(b, e->op, e->seq, e->addr);
    else
        mt_tb_alloc_v4(b, e->op, e->seq, e->size, e->stack, e->replaces, e->addr);
}

static void v5_expect(const mt_event_t *got, const v5_event_t *e, size_t i)
{
    uint64_t key = e->frees ? (e->ref ? MT_BLOCK_KEY(e->ref) : e->addr) : (e->addr ? e->addr : MT_BLOCK_KEY(e->seq));
    cr_assert(got->seq == e->seq && got->op == e->op && got->ptr == key, "event %zu: seq %lu op %u key %lx",
              i, (unsigned long)got->seq, got->op, (unsigned long)got->ptr);
    if (!e->frees) {
        cr_assert_eq(got->size, e->size, "event %zu", i);
        cr_assert_eq(got->stack, e->stack, "event %zu", i);
        cr_assert_eq(got->replaces, e->replaces ? MT_BLOCK_KEY(e->replaces) : 0, "event %zu", i);
    }
}

Test(trace_reader, version_5_events_read_back_exactly)
{
    enum { MAX = 1000 };
    v5_event_t *ev = calloc(MAX, sizeof *ev);
    mt_event_t *got = calloc(MAX + 1, sizeof *got);
    cr_assert(ev && got);
    size_t n = v5_events(ev, MAX);
    cr_assert_gt(n, 400);
    /* Once in one chunk (the per-event path, checked decoding only at its
     * end), once an event a chunk (checked decoding only). */
    for (int alone = 0; alone < 2; alone++) {
        mt_tb_t *b = mt_tb_new();
        mt_tb_set_version(b, 5);
        for (uint32_t s = 0; s < 20; s++)
            mt_tb_stack(b, s, 0, one_frame, 1);
        for (size_t i = 0; i < n; i++) {
            if (i == 0 || alone)
                mt_tb_chunk_begin(b, 0, 7, ev[i].seq);
            v5_add(b, &ev[i]);
        }
        mt_tb_chunk_end(b);
        char *path = finish(b);
        mt_trace_t *t = open_ok(path);
        size_t k = read_all(t, got, MAX + 1);
        cr_assert_eq(k, n, "%s", mt__trace_error(t));
        for (size_t i = 0; i < n; i++)
            v5_expect(&got[i], &ev[i], i);
        mt__trace_rewind(t); /* and in batches */
        int r;
        k = 0;
        while ((r = mt__trace_next_batch(t, got + k, 64)) > 0)
            k += (size_t)r;
        cr_assert_eq(r, 0, "%s", mt__trace_error(t));
        cr_assert_eq(k, n);
        for (size_t i = 0; i < n; i++)
            v5_expect(&got[i], &ev[i], i);
        done(path, t);
    }
    free(ev);
    free(got);
}

Test(trace_reader, version_5_encoding_is_as_documented)
{
    /* Byte by byte, from include/mt_trace.h; first_seq 10. */
    const uint8_t events[] = {
        0x3f, 0x00, 0x08, 0x05,   /* malloc, seq + 0, size 8, new stack 5 */
        0x80, 0x00,               /* free, seq + 1, age 1: the block of seq 10 */
        0x41, MT_OP_CALLOC, 0x10, /* calloc (in a byte), seq + 2, size 16, recent stack 0 (5) */
        0xad, 0x06,               /* realloc's free, seq + 2, block 10 + unzigzag(6) = 13 */
        0x00, 0x20,               /* calloc (the chunk's op now), seq + 1, size 32, stack 5 */
        0xf0, MT_OP_DELETE, 0x80, 0x01, /* delete (in a byte), seq + 1, by address 0x80 */
    };
    mt_tb_t *b = mt_tb_new();
    mt_tb_set_version(b, 5);
    mt_tb_stack(b, 5, 0, one_frame, 1);
    raw_chunk(b, 0, 7, 6, 10, events, sizeof events);
    char *path = finish(b);
    mt_trace_t *t = open_ok(path);
    mt_event_t e[7];
    cr_assert_eq(read_all(t, e, 7), 6, "%s", mt__trace_error(t));
    cr_expect(e[0].seq == 10 && e[0].op == MT_OP_MALLOC && e[0].size == 8 && e[0].ptr == MT_BLOCK_KEY(10));
    cr_expect(e[1].seq == 11 && e[1].op == MT_OP_FREE && e[1].ptr == MT_BLOCK_KEY(10));
    cr_expect(e[2].seq == 13 && e[2].op == MT_OP_CALLOC && e[2].size == 16 && e[2].ptr == MT_BLOCK_KEY(13));
    cr_expect(e[3].seq == 15 && e[3].op == MT_OP_REALLOC_FREE && e[3].ptr == MT_BLOCK_KEY(13));
    cr_expect(e[4].seq == 16 && e[4].op == MT_OP_CALLOC && e[4].size == 32 && e[4].ptr == MT_BLOCK_KEY(16));
    cr_expect(e[5].seq == 17 && e[5].op == MT_OP_DELETE && e[5].ptr == 0x80);
    cr_expect(e[0].stack == e[2].stack && e[2].stack == e[4].stack);
    done(path, t);
}

Test(trace_reader, frame_checksum_is_as_documented)
{
    /* From the steps in include/mt_trace.h, computed apart from this code;
     * lengths around each of its word and lane boundaries. */
    static const struct {
        size_t n;
        uint32_t sum;
    } want[] = {{0, 0x6b7e6c3c}, {1, 0xf7431d5d}, {7, 0x854605b6},  {8, 0xf42bc994},   {9, 0x15526cde},
                {31, 0x6ac38b86}, {32, 0x375c8493}, {33, 0xb86c7736}, {100, 0xce862768}};
    uint8_t bytes[100];
    for (size_t i = 0; i < sizeof bytes; i++)
        bytes[i] = (uint8_t)(i * 7 + 1);
    for (size_t i = 0; i < sizeof want / sizeof *want; i++)
        cr_expect_eq(mt_checksum(bytes, want[i].n), want[i].sum, "%zu bytes: 0x%08x", want[i].n,
                     mt_checksum(bytes, want[i].n));
    for (size_t i = 0; i < 100 * 8; i++) { /* every one-bit change of 100 bytes shows */
        bytes[i / 8] ^= (uint8_t)(1u << (i % 8));
        cr_expect_neq(mt_checksum(bytes, 100), 0xce862768, "bit %zu", i);
        bytes[i / 8] ^= (uint8_t)(1u << (i % 8));
    }
}

/* A chunk of version 5 holding the bad event after first good bytes, and
 * with pad, 14 good allocations after it, so that the per-event path
 * meets it too. */
static void expect_v5_fails(const uint8_t *good, size_t ngood, size_t good_events, const uint8_t *bad,
                            size_t nbad, bool pad, const char *what)
{
    uint8_t events[256];
    size_t n = 0;
    memcpy(events, good, ngood);
    n += ngood;
    memcpy(events + n, bad, nbad);
    n += nbad;
    for (int i = 0; pad && i < 14; i++) {
        const uint8_t alloc[] = {0x3f, 0x01, 0x08, 0x00};
        memcpy(events + n, alloc, sizeof alloc);
        n += sizeof alloc;
    }
    mt_tb_t *b = mt_tb_new();
    mt_tb_set_version(b, 5);
    mt_tb_stack(b, 0, 0, one_frame, 1);
    raw_chunk(b, 0, 7, good_events + 1 + (pad ? 14 : 0), 5, events, n);
    expect_next_fails(b, good_events, what);
}

Test(trace_reader, version_5_malformed_heads_are_errors)
{
    const uint8_t alloc[] = {0x3f, 0x00, 0x08, 0x00}; /* malloc at seq 5, stack 0 */
    for (int pad = 0; pad < 2; pad++) {
        expect_v5_fails(alloc, 4, 1, (const uint8_t[]){0xc0, 0x00}, 2, pad, "no such free op code");
        expect_v5_fails(alloc, 4, 1, (const uint8_t[]){0x94, 0x00}, 2, pad, "no such block mode 5");
        expect_v5_fails(alloc, 4, 1, (const uint8_t[]){0x04, 0x08}, 2, pad,
                        "malloc event: recent stack 1 named, but the chunk has 1 so far");
        expect_v5_fails(alloc, 4, 1, (const uint8_t[]){0x80, 0x05}, 2, pad,
                        "free event at seq 6 frees a block 6 events old, not allocated before it");
        expect_v5_fails(alloc, 4, 1, (const uint8_t[]){0xe0, MT_OP_MALLOC, 0x00}, 3, pad,
                        "freeing op 1 is not known");
        expect_v5_fails(alloc, 4, 1, (const uint8_t[]){0x40, MT_OP_FREE, 0x08}, 3, pad,
                        "allocating op 32 is not known");
        expect_v5_fails(alloc, 4, 1, (const uint8_t[]){0x8c, 0x0c}, 2, pad,
                        "frees the block allocated at seq 11, not allocated before it");
    }
}

/* The head's block mode of a free encoded after a chunk whose previous
 * reference is prev. */
static unsigned v5_mode(uint64_t seq, uint64_t ref, uint64_t prev)
{
    uint8_t buf[2 + 2 * MT_VARINT_MAX];
    mt_chunk_state_t st;
    mt_chunk_state_init(&st, prev);
    mt_put_free_v5(buf, &st, MT_OP_FREE, seq, ref, 0);
    return buf[0] >> MT_HEAD_BLOCK_SHIFT & 7;
}

Test(trace_reader, version_5_names_a_block_the_shortest_way)
{
    cr_expect_eq(v5_mode(1000, 999, 1), MT_BLOCK_AGE1);
    cr_expect_eq(v5_mode(1000, 744, 1), MT_BLOCK_AGE1, "age 256 is one byte: age - 1 is written");
    cr_expect_eq(v5_mode(1000, 743, 1), MT_BLOCK_AGE2);
    cr_expect_eq(v5_mode(100000, 30000, 1), MT_BLOCK_AGE3);
    cr_expect_eq(v5_mode(1ull << 30, 5, 1), MT_BLOCK_DELTA, "older than three bytes say");
    cr_expect_eq(v5_mode(100000, 30000, 30001), MT_BLOCK_DELTA, "a change of one byte is shorter");
    cr_expect_eq(v5_mode(100000, 99000, 99200), MT_BLOCK_AGE2, "a change of two bytes is not shorter");
}

Test(trace_reader, the_writer_finds_a_recent_stack_where_the_list_has_it)
{
    /* Against the plain search, for lists of every length: the first
     * place that holds the id, or MT_HEAD_STACK_NEW; places past the list's
     * length (here filled with the id) never match. */
    uint64_t rng = 88172645463325252ull;
    for (unsigned round = 0; round < 20000; round++) {
        mt_chunk_state_t st;
        mt_chunk_state_init(&st, 1);
        rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
        st.nrecent = (uint8_t)(rng % (MT_RECENT_STACKS + 1));
        uint32_t id = (uint32_t)(rng >> 40) % 6;
        for (unsigned i = 0; i < 16; i++)
            st.recent[i] = i < st.nrecent ? (uint32_t)((rng >> (2 * i)) % 6) : id;
        unsigned want = MT_HEAD_STACK_NEW;
        for (unsigned i = 0; i < st.nrecent && want == MT_HEAD_STACK_NEW; i++)
            if (st.recent[i] == id)
                want = i;
        cr_assert_eq(mt_recent_find(&st, id), want, "id %u in a list of %u", id, st.nrecent);
    }
    mt_chunk_state_t st;
    mt_chunk_state_init(&st, 1);
    cr_expect_eq(mt_recent_find(&st, 0), MT_HEAD_STACK_NEW, "an empty list holds no stack 0");
    mt_recent_push(&st, UINT32_MAX - 1);
    cr_expect_eq(mt_recent_find(&st, UINT32_MAX - 1), 0);
}

Test(trace_reader, moving_a_recent_stack_to_the_front_keeps_the_others_in_order)
{
    /* Against the plain loop, for every place and random lists: places 1
     * to i take what 0 to i - 1 held, place 0 the id, the rest stay. */
    uint64_t rng = 0x9E3779B97F4A7C15ull;
    for (unsigned round = 0; round < 20000; round++) {
        mt_chunk_state_t st, want;
        mt_chunk_state_init(&st, 1);
        for (unsigned j = 0; j < 16; j++) {
            rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
            st.recent[j] = (uint32_t)rng;
        }
        want = st;
        unsigned i = round % MT_RECENT_STACKS;
        uint32_t id = (uint32_t)(rng >> 32);
        for (unsigned j = i; j > 0; j--)
            want.recent[j] = want.recent[j - 1];
        want.recent[0] = id;
        mt_recent_insert(&st, i, id);
        for (unsigned j = 0; j < 16; j++)
            cr_assert_eq(st.recent[j], want.recent[j], "place %u after inserting at place %u", j, i);
    }
}
