/* cmd_dump.c - `memtrack dump TRACE`: every record of a trace, one per line.
 *
 * A debugging aid for the format: prints the header, then each record in file
 * order as `@OFFSET TYPE field=value ...`, the events of a CHUNK indented
 * below it, then a summary. It reads through the raw record iterator, which
 * checks each record on its own, so a damaged trace is shown up to the
 * damage, followed by the one-line error.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "commands.h"

typedef struct dump_counts {
    uint64_t records, chunks, events;
    uint64_t per_type[256];
} dump_counts_t;

static void usage(FILE *f)
{
    fputs("usage: memtrack dump TRACE\n"
          "\n"
          "Prints the trace's header, then every record in file order, one per line\n"
          "(@OFFSET TYPE fields), with the events of each CHUNK indented below it,\n"
          "then a summary.\n"
          "\n"
          "  -h, --help  show this help\n",
          f);
}

/* Prints n bytes as a quoted string, escaping what is not printable. */
static void print_quoted(const char *s, size_t n)
{
    putchar('"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20 || c == 0x7f)
            printf("\\x%02x", c);
        else
            putchar(c);
    }
    putchar('"');
}

static void print_header(const mt_trace_info_t *h)
{
    static const struct {
        uint32_t bit;
        const char *name;
    } flags[] = {
        {MT_TRACE_F_FORKED, "forked"},
        {MT_TRACE_F_EXECED, "execed"},
        {MT_TRACE_F_SAMPLED, "sampled"},
    };
    bool any = false;

    printf("file: %s\n", h->path);
    printf("version: %" PRIu32 "\n", h->version);
    printf("pid: %" PRIu64 "\n", h->pid);
    printf("ppid: %" PRIu64 "\n", h->ppid);
    printf("start_realtime_ns: %" PRIu64 "\n", h->start_realtime_ns);
    printf("fork_seq: %" PRIu64 "\n", h->fork_seq);
    printf("flags: 0x%" PRIx32, h->flags);
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
        if (h->flags & flags[i].bit) {
            printf("%s%s", any ? " " : " (", flags[i].name);
            any = true;
        }
    }
    printf("%s\n", any ? ")" : "");
    printf("depth: %" PRIu32 "\n", h->depth);
    printf("sample_bytes: %" PRIu64 "\n", h->sample_bytes);
    printf("exe: %s\n", h->exe);
    printf("command: %s\n", h->command);
}

static void print_record(const mt_record_t *r)
{
    printf("@%" PRIu64 " %s ", r->offset, mt__record_name(r->type));
    switch (r->type) {
    case MT_REC_MODULE:
        printf("id=%" PRIu64 " epoch=%" PRIu64 " base=0x%" PRIx64 " [0x%" PRIx64 "-0x%" PRIx64
               ") %.*s build-id=",
               r->u.module.id, r->u.module.load_epoch, r->u.module.base, r->u.module.start,
               r->u.module.end, (int)r->u.module.path_len, r->u.module.path);
        for (size_t i = 0; i < r->u.module.build_id_len; i++)
            printf("%02x", r->u.module.build_id[i]);
        if (!r->u.module.build_id_len)
            fputs("none", stdout);
        break;
    case MT_REC_UNLOAD:
        printf("module=%" PRIu64 " epoch=%" PRIu64, r->u.unload.module_id, r->u.unload.epoch);
        break;
    case MT_REC_STACK:
        printf("id=%" PRIu64 " epoch=%" PRIu64 " depth=%" PRIu32, r->u.stack.id, r->u.stack.epoch,
               r->u.stack.depth);
        for (uint32_t i = 0; i < r->u.stack.depth; i++)
            printf(" 0x%" PRIx64, r->u.stack.frames[i]);
        break;
    case MT_REC_LABEL:
        printf("id=%" PRIu64 " ", r->u.label.id);
        print_quoted(r->u.label.text, r->u.label.text_len);
        break;
    case MT_REC_MARKER:
        printf("seq=%" PRIu64 " time_ns=%" PRIu64 " tid=%" PRIu32 " label=%" PRIu32,
               r->u.marker.seq, r->u.marker.time_ns, r->u.marker.tid, r->u.marker.label);
        break;
    case MT_REC_TIME:
        printf("seq=%" PRIu64 " time_ns=%" PRIu64, r->u.time.seq, r->u.time.time_ns);
        break;
    case MT_REC_CHUNK:
        printf("stream=%" PRIu64 " tid=%" PRIu32 " count=%" PRIu64 " first_seq=%" PRIu64,
               r->u.chunk.stream, r->u.chunk.tid, r->u.chunk.count, r->u.chunk.first_seq);
        break;
    case MT_REC_LOST:
        printf("stream=%" PRIu64 " count=%" PRIu64, r->u.lost.stream, r->u.lost.count);
        break;
    case MT_REC_END:
        printf("last_seq=%" PRIu64 " time_ns=%" PRIu64 " events=%" PRIu64 " dropped=%" PRIu64
               " stacks=%" PRIu64,
               r->u.end.last_seq, r->u.end.time_ns, r->u.end.events, r->u.end.dropped,
               r->u.end.stacks);
        if (r->u.end.signal)
            printf(" signal=%" PRIu64, r->u.end.signal);
        break;
    case MT_REC_SYNC:
        printf("seq=%" PRIu64, r->u.sync.seq);
        break;
    }
    putchar('\n');
}

static void print_event(const mt_event_t *ev)
{
    printf("  seq=%" PRIu64 " %s", ev->seq, mt__op_name(ev->op));
    /* Version 4 names blocks by the seq of their allocation. */
    if (ev->ptr >> 63 && !(mt_op_allocates(ev->op)))
        printf(" block=%" PRIu64, (uint64_t)(ev->ptr & ~(UINT64_C(1) << 63)));
    else if (!(ev->ptr >> 63))
        printf(" ptr=0x%" PRIx64, ev->ptr);
    if (mt_op_allocates(ev->op))
        printf(" size=%" PRIu64 " stack=%" PRIu32, ev->size, ev->stack);
    if (ev->replaces)
        printf(" replaces=%" PRIu64, (uint64_t)(ev->replaces & ~(UINT64_C(1) << 63)));
    putchar('\n');
}

static void print_summary(const mt_trace_info_t *h, const dump_counts_t *c)
{
    printf("summary: records=%" PRIu64 " chunks=%" PRIu64 " events=%" PRIu64, c->records,
           c->chunks, c->events);
    for (unsigned type = 0; type < 256; type++)
        if (type != MT_REC_CHUNK && c->per_type[type])
            printf(" %s=%" PRIu64, mt__record_name(type), c->per_type[type]);
    if (h->truncated)
        printf("; truncated at offset %" PRIu64 "\n", h->truncated_at);
    else if (c->per_type[MT_REC_END])
        printf("; complete\n");
    else
        printf("; no END record\n");
}

static int dump(const char *path)
{
    char err[4352];
    mt_record_iter_t *it = NULL;
    dump_counts_t counts = {0};
    mt_record_t rec;
    mt_event_t ev;
    int r;

    if ((r = mt__record_open(path, &it, err, sizeof err))) {
        fprintf(stderr, "memtrack: %s\n", err);
        goto fail;
    }
    print_header(mt__record_header(it));
    while ((r = mt__record_next(it, &rec)) > 0) {
        counts.records++;
        counts.per_type[rec.type]++;
        print_record(&rec);
        if (rec.type != MT_REC_CHUNK)
            continue;
        counts.chunks++;
        while ((r = mt__record_event(it, &ev)) > 0) {
            counts.events++;
            print_event(&ev);
        }
        if (r < 0)
            break;
    }
    if (r < 0) {
        fflush(stdout);
        fprintf(stderr, "memtrack: %s\n", mt__record_error(it));
        goto fail;
    }
    print_summary(mt__record_header(it), &counts);
    mt__record_close(it);
    return 0;
fail:
    mt__record_close(it);
    return r;
}

/* Runs `memtrack dump [--help] TRACE` (argv[0] is "dump"). Returns
 * MT_EXIT_OK, or MT_EXIT_BAD_INPUT for bad usage or a trace it cannot read,
 * after one line on stderr naming the file and the problem. */
int mt_cmd_dump(int argc, char **argv)
{
    const char *path = NULL;
    bool options = true;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (options && (!strcmp(a, "-h") || !strcmp(a, "--help"))) {
            usage(stdout);
            return MT_EXIT_OK;
        }
        if (options && !strcmp(a, "--")) {
            options = false;
            continue;
        }
        if (options && a[0] == '-' && a[1]) {
            fprintf(stderr, "memtrack: dump: unknown option '%s'; 'memtrack dump --help' shows usage\n",
                    a);
            return MT_EXIT_BAD_INPUT;
        }
        if (path) {
            fprintf(stderr, "memtrack: dump: one trace at a time ('%s' and '%s')\n", path, a);
            return MT_EXIT_BAD_INPUT;
        }
        path = a;
    }
    if (!path) {
        fprintf(stderr, "memtrack: dump: missing TRACE; 'memtrack dump --help' shows usage\n");
        return MT_EXIT_BAD_INPUT;
    }
    if (dump(path))
        return MT_EXIT_BAD_INPUT;
    if (fflush(stdout) || ferror(stdout)) {
        fprintf(stderr, "memtrack: dump: error writing the output\n");
        return MT_EXIT_BAD_INPUT;
    }
    return MT_EXIT_OK;
}
