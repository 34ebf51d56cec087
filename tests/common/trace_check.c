/* trace_check.c - runs one trace file through every analyzer path that parses it; see trace_check.h. */
#include "trace_check.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "e2e.h"
#include "internal.h"
#include "replay.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define CLI_LIMIT_AS 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define CLI_LIMIT_AS 0
#endif
#endif
#ifndef CLI_LIMIT_AS
#define CLI_LIMIT_AS (1ull << 30)
#endif

static void keep_error(mt_tc_result_t *res, const char *msg)
{
    if (!res->err[0] && msg)
        snprintf(res->err, sizeof res->err, "%s", msg);
}

/* Touches every query a command makes of an opened trace. */
static void query_trace(const mt_trace_t *t)
{
    const mt_trace_info_t *in = mt__trace_info(t);
    volatile uint64_t sink = 0;

    for (size_t i = 0; i < in->nstacks; i++) {
        const mt_stack_t *s = mt__trace_stack(t, (uint32_t)i);
        if (!s)
            continue;
        for (uint32_t f = 0; f < s->depth; f++) {
            const mt_module_t *m = mt__trace_module_for(t, s->frames[f], s->epoch);
            sink += m ? m->base : s->frames[f];
        }
    }
    for (size_t i = 0; i < in->nmarkers; i++) {
        const char *label = mt__trace_label(t, in->markers[i].label);
        sink += label ? strlen(label) : 0;
        sink += mt__trace_time_of(t, in->markers[i].seq);
    }
    sink += mt__trace_time_of(t, in->last_seq) + mt__trace_time_of(t, 0) +
            mt__trace_time_of(t, UINT64_MAX);
    (void)sink;
}

static int count_live(void *ctx, const mt_block_t *b)
{
    (void)b;
    (*(uint64_t *)ctx)++;
    return 0;
}

static int replay(mt_trace_t *t, mt_tc_result_t *res)
{
    mt_replay_t *a = NULL, *b = NULL;
    int rc;

    rc = mt__replay_run(t, NULL, &a);
    if (rc == 0)
        rc = mt__replay_run(t, NULL, &b);
    if (rc < 0) {
        keep_error(res, rc == -ENOMEM ? "out of memory" : mt__trace_error(t));
    } else {
        const mt_totals_t *ta = mt__replay_totals(a), *tb = mt__replay_totals(b);
        uint64_t live = 0;
        size_t nsites, nsnaps;
        const mt_site_t *sites = mt__replay_sites(a, &nsites);
        const mt_snapshot_t *snaps = mt__replay_snapshots(a, &nsnaps);
        volatile uint64_t sink = 0;

        for (size_t i = 0; i < nsites; i++)
            sink += sites[i].peak_bytes + sites[i].live_bytes;
        for (size_t i = 0; i < nsnaps; i++)
            sink += snaps[i].live_bytes + (snaps[i].text ? strlen(snaps[i].text) : 0);
        (void)sink;
        mt__replay_foreach_live(a, count_live, &live);
        res->events = ta->events;
        /* A rewind must replay the same stream: anything else is reader state leaking. */
        if (memcmp(ta, tb, sizeof *ta) != 0 || live != ta->live_allocations) {
            keep_error(res, "a second replay after a rewind gave different totals");
            rc = -EINVAL;
        }
    }
    mt__replay_free(a);
    mt__replay_free(b);
    return rc;
}

static int dump(const char *path, mt_tc_result_t *res)
{
    char err[512];
    mt_record_iter_t *it = NULL;
    mt_record_t rec;
    mt_event_t ev;
    int rc;

    if ((rc = mt__record_open(path, &it, err, sizeof err))) {
        keep_error(res, err);
        return rc;
    }
    while ((rc = mt__record_next(it, &rec)) > 0) {
        res->records++;
        if (rec.type == MT_REC_CHUNK)
            while ((rc = mt__record_event(it, &ev)) > 0)
                ;
        if (rc < 0)
            break;
    }
    if (rc < 0)
        keep_error(res, mt__record_error(it));
    res->truncated |= mt__record_header(it)->truncated;
    mt__record_close(it);
    return rc < 0 ? rc : 0;
}

int mt_tc_exercise(const char *path, mt_tc_result_t *res)
{
    char err[512];
    mt_trace_t *t = NULL;

    memset(res, 0, sizeof *res);
    res->open_rc = mt__trace_open(path, &t, err, sizeof err);
    if (res->open_rc == 0) {
        res->truncated = mt__trace_info(t)->truncated;
        query_trace(t);
        res->replay_rc = replay(t, res);
        mt__trace_close(t);
    } else {
        keep_error(res, err);
    }
    res->dump_rc = dump(path, res);
    if (res->open_rc)
        return res->open_rc;
    return res->replay_rc ? res->replay_rc : res->dump_rc;
}

bool mt_tc_message_ok(const char *msg, const char *path, uint64_t size, char *why, size_t whylen)
{
    size_t n = strlen(path);
    const char *p;

    if (strncmp(msg, path, n) != 0 || msg[n] != ':') {
        snprintf(why, whylen, "does not start with the file name");
        return false;
    }
    if (strchr(msg, '\n')) {
        snprintf(why, whylen, "is more than one line");
        return false;
    }
    for (p = msg; (p = strstr(p, "offset ")) != NULL; p += 7) {
        char *end;
        unsigned long long off;
        if (p[7] < '0' || p[7] > '9')
            continue;
        off = strtoull(p + 7, &end, 10);
        if (off > size) {
            snprintf(why, whylen, "names offset %llu beyond the end of the file (%" PRIu64 " bytes)",
                     off, size);
            return false;
        }
    }
    return true;
}

int mt_tc_run_cli(const char *cmd, const char *trace, mt_tc_cli_t *out)
{
    char cli[4096];
    const char *build = mt_e2e_own_build_dir();
    mt_e2e_opts_t o = {.no_preload = true, .capture_stdout = true, .capture_stderr = true,
                       .limit_as = CLI_LIMIT_AS, .timeout_s = 120};
    mt_e2e_run_t run;
    int rc;

    memset(out, 0, sizeof *out);
    if (!build)
        return -ENOENT;
    snprintf(cli, sizeof cli, "%s/memtrack", build);
    char *argv[] = {cli, (char *)cmd, (char *)trace, NULL};
    rc = mt_e2e_run(&run, argv, &o);
    if (rc == 0) {
        out->exit_code = run.exit_code;
        out->signal = run.signal;
        out->out = mt_e2e_read_file(run.stdout_path, NULL);
        out->err = mt_e2e_read_file(run.stderr_path, NULL);
        out->err_lines = mt_e2e_count_lines(run.stderr_path);
        if (!out->out || !out->err)
            rc = -ENOMEM;
    }
    mt_e2e_run_free(&run);
    return rc;
}

void mt_tc_cli_free(mt_tc_cli_t *c)
{
    free(c->out);
    free(c->err);
    c->out = c->err = NULL;
}

const char *mt_tc_memfile(const void *data, size_t len)
{
    static int fd = -1;
    static char path[64];

    if (fd < 0) {
        fd = memfd_create("memtrack-test-trace", MFD_CLOEXEC);
        if (fd < 0) {
            perror("memfd_create");
            abort();
        }
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    if (ftruncate(fd, 0) != 0 || (len && pwrite(fd, data, len, 0) != (ssize_t)len)) {
        perror("memtrack test: memfd");
        abort();
    }
    return path;
}
