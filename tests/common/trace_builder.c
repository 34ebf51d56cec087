/* trace_builder.c - builds memtrack trace files by hand, for tests.
 *
 * The header parameters and the records are kept apart, and joined only when
 * the bytes are asked for, so that a test can set the header last.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "trace_builder.h"

typedef struct bytes {
    uint8_t *p;
    size_t len, cap;
} bytes_t;

struct mt_tb {
    uint64_t pid, ppid, fork_seq, start_realtime_ns, sample_bytes;
    uint32_t version, flags, depth;
    char *exe;
    char *cmdline;
    size_t cmdline_len;

    bytes_t records;

    bool in_chunk;
    uint64_t stream, first_seq, prev_seq, prev_ptr, prev_ref, count;
    mt_chunk_state_t st; /* version 5 */
    uint32_t tid;
    bytes_t events;

    bytes_t out;
};

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        abort();
    return p;
}

static void put(bytes_t *b, const void *src, size_t n)
{
    if (b->cap - b->len < n) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap - b->len < n)
            cap *= 2;
        b->p = realloc(b->p, cap);
        if (!b->p)
            abort();
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->len, src, n);
    b->len += n;
}

static void put_v(bytes_t *b, uint64_t v)
{
    uint8_t tmp[MT_VARINT_MAX];
    put(b, tmp, (size_t)(mt_put_varint(tmp, v) - tmp));
}

static void put_str(bytes_t *b, const void *s, size_t n)
{
    put_v(b, n);
    put(b, s, n);
}

static void put_u32(bytes_t *b, uint32_t v)
{
    uint8_t tmp[4];
    mt_put_u32(tmp, v);
    put(b, tmp, 4);
}

static void put_u64(bytes_t *b, uint64_t v)
{
    put_u32(b, (uint32_t)v);
    put_u32(b, (uint32_t)(v >> 32));
}

static void record(mt_tb_t *b, unsigned type, const bytes_t *payload)
{
    uint8_t head[MT_RECORD_HEADER_SIZE];

    head[0] = (uint8_t)type;
    mt_put_u32(head + 1, (uint32_t)payload->len);
    put(&b->records, head, sizeof head);
    put(&b->records, payload->p, payload->len);
}

/* Encodes the varints of a record and appends it. */
static void record_v(mt_tb_t *b, unsigned type, const uint64_t *v, size_t n)
{
    bytes_t p = {0};

    for (size_t i = 0; i < n; i++)
        put_v(&p, v[i]);
    record(b, type, &p);
    free(p.p);
}

/* Returns a new builder with the default header; see trace_builder.h. */
mt_tb_t *mt_tb_new(void)
{
    mt_tb_t *b = xmalloc(sizeof *b);

    memset(b, 0, sizeof *b);
    b->version = 3; /* events carry addresses, the encoding before version 4 */
    b->depth = 64;
    mt_tb_set_header(b, 1000, 1, 0, 0, "/bin/test", "test\0arg", 8);
    return b;
}

/* Sets the sampling flag and interval; see trace_builder.h. */
void mt_tb_set_sampled(mt_tb_t *b, uint64_t sample_bytes)
{
    b->sample_bytes = sample_bytes;
    if (sample_bytes)
        b->flags |= MT_TRACE_F_SAMPLED;
    else
        b->flags &= ~MT_TRACE_F_SAMPLED;
}

/* Sets pid, ppid, flags, fork_seq, the executable and the command line. */
void mt_tb_set_header(mt_tb_t *b, uint64_t pid, uint64_t ppid, uint32_t flags, uint64_t fork_seq,
                      const char *exe, const char *cmdline_nul_separated, size_t cmdline_len)
{
    char *e = strdup(exe ? exe : ""), *c = xmalloc(cmdline_len);

    if (!e)
        abort();
    if (cmdline_len)
        memcpy(c, cmdline_nul_separated, cmdline_len);
    free(b->exe);
    free(b->cmdline);
    b->pid = pid;
    b->ppid = ppid;
    b->flags = flags;
    b->fork_seq = fork_seq;
    b->exe = e;
    b->cmdline = c;
    b->cmdline_len = cmdline_len;
}

/* Appends a MODULE record. */
void mt_tb_module(mt_tb_t *b, uint64_t id, uint64_t load_epoch, uint64_t base, uint64_t start,
                  uint64_t end, const char *path, const uint8_t *build_id, size_t build_id_len)
{
    bytes_t p = {0};

    put_v(&p, id);
    put_v(&p, load_epoch);
    put_v(&p, base);
    put_v(&p, start);
    put_v(&p, end);
    put_str(&p, path, strlen(path));
    put_str(&p, build_id, build_id_len);
    record(b, MT_REC_MODULE, &p);
    free(p.p);
}

/* Appends an UNLOAD record. */
void mt_tb_unload(mt_tb_t *b, uint64_t module_id, uint64_t epoch)
{
    record_v(b, MT_REC_UNLOAD, (const uint64_t[]){module_id, epoch}, 2);
}

/* Appends a STACK record. */
void mt_tb_stack(mt_tb_t *b, uint64_t id, uint64_t epoch, const uint64_t *frames, uint32_t depth)
{
    bytes_t p = {0};

    put_v(&p, id);
    put_v(&p, epoch);
    put_v(&p, depth);
    for (uint32_t i = 0; i < depth; i++)
        put_v(&p, frames[i]);
    record(b, MT_REC_STACK, &p);
    free(p.p);
}

/* Appends a LABEL record. */
void mt_tb_label(mt_tb_t *b, uint64_t id, const char *text)
{
    bytes_t p = {0};

    put_v(&p, id);
    put_str(&p, text, strlen(text));
    record(b, MT_REC_LABEL, &p);
    free(p.p);
}

/* Appends a MARKER record. */
void mt_tb_marker(mt_tb_t *b, uint64_t seq, uint64_t time_ns, uint32_t tid, uint64_t label)
{
    record_v(b, MT_REC_MARKER, (const uint64_t[]){seq, time_ns, tid, label}, 4);
}

/* Appends a TIME record. */
void mt_tb_time(mt_tb_t *b, uint64_t seq, uint64_t time_ns)
{
    record_v(b, MT_REC_TIME, (const uint64_t[]){seq, time_ns}, 2);
}

/* Appends a SYNC record. */
void mt_tb_sync(mt_tb_t *b, uint64_t seq)
{
    record_v(b, MT_REC_SYNC, (const uint64_t[]){seq}, 1);
}

/* Starts a chunk; ends the one still open, if any. */
void mt_tb_chunk_begin(mt_tb_t *b, uint64_t stream, uint32_t tid, uint64_t first_seq)
{
    if (b->in_chunk)
        mt_tb_chunk_end(b);
    b->in_chunk = true;
    b->stream = stream;
    b->tid = tid;
    b->first_seq = b->prev_seq = b->prev_ref = first_seq;
    mt_chunk_state_init(&b->st, first_seq);
    b->prev_ptr = 0;
    b->count = 0;
    b->events.len = 0;
}

static void event_head(mt_tb_t *b, unsigned op, uint64_t seq)
{
    uint8_t o = (uint8_t)op;

    put(&b->events, &o, 1);
    put_v(&b->events, seq - b->prev_seq);
    b->prev_seq = seq;
}

static void event_ptr(mt_tb_t *b, uint64_t ptr)
{
    put_v(&b->events, mt_zigzag((int64_t)(ptr - b->prev_ptr)));
    b->prev_ptr = ptr;
}

/* Adds an allocating event to the open chunk. */
void mt_tb_alloc(mt_tb_t *b, unsigned op, uint64_t seq, uint64_t ptr, uint64_t size, uint32_t stack)
{
    event_head(b, op, seq);
    put_v(&b->events, size);
    event_ptr(b, ptr);
    put_v(&b->events, stack);
    b->count++;
}

/* Adds a freeing event to the open chunk. */
void mt_tb_free(mt_tb_t *b, unsigned op, uint64_t seq, uint64_t ptr)
{
    event_head(b, op, seq);
    event_ptr(b, ptr);
    b->count++;
}

/* Sets the header's version: 4, 5 or 6 for traces written with the _v4
 * calls, which then encode their events as that version does (6 as 5). */
void mt_tb_set_version(mt_tb_t *b, uint32_t version)
{
    b->version = version;
}

/* Version 4: adds an allocation, named by its seq unless addr is not 0;
 * replaces: the seq of a block still live at its address, or 0. */
void mt_tb_alloc_v4(mt_tb_t *b, unsigned op, uint64_t seq, uint64_t size, uint32_t stack, uint64_t replaces,
                    uint64_t addr)
{
    if (b->version >= MT_TRACE_VERSION_HEAD) {
        uint8_t buf[2 + 5 * MT_VARINT_MAX];
        put(&b->events, buf, (size_t)(mt_put_alloc_v5(buf, &b->st, op, seq, size, stack, replaces, addr) - buf));
        b->count++;
        return;
    }
    event_head(b, op | (replaces || addr ? MT_EV_MORE : 0), seq);
    put_v(&b->events, size);
    put_v(&b->events, stack);
    if (replaces) {
        put_v(&b->events, seq - replaces);
    } else if (addr) {
        put_v(&b->events, 0);
        put_v(&b->events, addr);
    }
    b->count++;
}

/* Version 4: adds a free of the block allocated at seq ref. */
void mt_tb_free_ref(mt_tb_t *b, unsigned op, uint64_t seq, uint64_t ref)
{
    if (b->version >= MT_TRACE_VERSION_HEAD) {
        uint8_t buf[2 + 2 * MT_VARINT_MAX];
        put(&b->events, buf, (size_t)(mt_put_free_v5(buf, &b->st, op, seq, ref, 0) - buf));
        b->count++;
        return;
    }
    event_head(b, op | MT_EV_MORE, seq);
    put_v(&b->events, mt_block_ref(seq, ref, b->prev_ref));
    b->prev_ref = ref;
    b->count++;
}

/* Version 4: adds a free of the block at address addr. */
void mt_tb_free_addr(mt_tb_t *b, unsigned op, uint64_t seq, uint64_t addr)
{
    if (b->version >= MT_TRACE_VERSION_HEAD) {
        uint8_t buf[2 + 2 * MT_VARINT_MAX];
        put(&b->events, buf, (size_t)(mt_put_free_v5(buf, &b->st, op, seq, 0, addr) - buf));
        b->count++;
        return;
    }
    event_head(b, op, seq);
    put_v(&b->events, addr);
    b->count++;
}

/* Appends the open chunk as a CHUNK record. */
void mt_tb_chunk_end(mt_tb_t *b)
{
    bytes_t p = {0};

    if (!b->in_chunk)
        return;
    put_v(&p, b->stream);
    put_v(&p, b->tid);
    put_v(&p, b->count);
    put_v(&p, b->first_seq);
    put(&p, b->events.p, b->events.len);
    record(b, MT_REC_CHUNK, &p);
    free(p.p);
    b->in_chunk = false;
}

/* Appends a LOST record. */
void mt_tb_lost(mt_tb_t *b, uint64_t stream, uint64_t count)
{
    record_v(b, MT_REC_LOST, (const uint64_t[]){stream, count}, 2);
}

/* Appends an END record. */
void mt_tb_end(mt_tb_t *b, uint64_t last_seq, uint64_t time_ns, uint64_t events, uint64_t dropped,
               uint64_t stacks)
{
    record_v(b, MT_REC_END, (const uint64_t[]){last_seq, time_ns, events, dropped, stacks}, 5);
}

/* Appends arbitrary bytes. */
void mt_tb_raw(mt_tb_t *b, const void *bytes, size_t n)
{
    put(&b->records, bytes, n);
}

/* Returns the header and the records so far. */
const uint8_t *mt_tb_data(mt_tb_t *b, size_t *len)
{
    bytes_t var = {0};

    put_str(&var, b->exe, strlen(b->exe));
    put_str(&var, b->cmdline, b->cmdline_len);
    b->out.len = 0;
    put(&b->out, MT_TRACE_MAGIC, MT_TRACE_MAGIC_LEN);
    put_u32(&b->out, b->version);
    put_u32(&b->out, (uint32_t)(sizeof(mt_trace_header_t) + var.len));
    put_u64(&b->out, b->pid);
    put_u64(&b->out, b->ppid);
    put_u64(&b->out, b->start_realtime_ns);
    put_u64(&b->out, b->fork_seq);
    put_u32(&b->out, b->flags);
    put_u32(&b->out, b->depth);
    put_u64(&b->out, b->sample_bytes);
    put(&b->out, var.p, var.len);
    put(&b->out, b->records.p, b->records.len);
    free(var.p);
    *len = b->out.len;
    return b->out.p;
}

/* Writes the bytes so far to path; 0 or a negative errno. */
int mt_tb_write(mt_tb_t *b, const char *path)
{
    size_t len, done = 0;
    const uint8_t *data = mt_tb_data(b, &len);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644), r = 0;

    if (fd < 0)
        return -errno;
    while (done < len) {
        ssize_t n = write(fd, data + done, len - done);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            r = -errno;
            goto fail;
        }
        done += (size_t)n;
    }
    if (close(fd))
        return -errno;
    return 0;
fail:
    close(fd);
    return r;
}

/* Writes the bytes so far to a new temporary file; returns its path or NULL. */
char *mt_tb_write_temp(mt_tb_t *b)
{
    char tmpl[] = "/tmp/memtrack-test-XXXXXX";
    int fd = mkstemp(tmpl);
    char *path;

    if (fd < 0)
        return NULL;
    close(fd);
    path = strdup(tmpl);
    if (!path || mt_tb_write(b, path)) {
        unlink(tmpl);
        free(path);
        return NULL;
    }
    return path;
}

/* Frees the builder. */
void mt_tb_destroy(mt_tb_t *b)
{
    if (!b)
        return;
    free(b->exe);
    free(b->cmdline);
    free(b->records.p);
    free(b->events.p);
    free(b->out.p);
    free(b);
}
