/* cmd_timeline.c - `memtrack timeline --csv`: the live heap over time, for plotting anywhere.
 *
 * One CSV row per point of the timeline: the time since the start of the
 * run in ns, the live heap in bytes and blocks right after that event, the
 * allocations made so far, and the snapshot label for a marker's row
 * (empty otherwise). A trace of up to --max-points events gets one row per
 * event; a longer one is cut into equal spans of which only the lowest and
 * highest points are kept, so the peak is always an exact row. Markers
 * always get their own row.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "export.h"

#define DEFAULT_MAX_POINTS 10000

static void usage(FILE *f)
{
    fprintf(f, "usage: memtrack timeline --csv [OPTIONS] TRACE\n"
               "Writes the live heap over time as CSV: time_ns, live_bytes, live_blocks,\n"
               "allocations (so far) and the snapshot label of marker rows.\n"
               "\n"
               "  --csv                  CSV output (the only format, and the default)\n"
               "  --max-points N         at most about N rows plus one per snapshot; longer\n"
               "                         traces keep each span's lowest and highest point and\n"
               "                         the exact peak (default %d; 0: one row per event)\n"
               "  -o, --output FILE      write to FILE instead of standard output\n"
               "  -h, --help             print this help\n"
               "\n"
               "Exit status: 0 success, 2 bad usage or bad input.\n",
               DEFAULT_MAX_POINTS);
}

/* Writes a CSV field, quoted when it holds a comma, a quote or a line break. */
static void put_csv(FILE *out, const char *s)
{
    if (!s || !*s)
        return;
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, out);
        return;
    }
    fputc('"', out);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', out);
        fputc(*s, out);
    }
    fputc('"', out);
}

static int write_csv(FILE *out, mt_export_t *x, void *ctx)
{
    (void)ctx;
    size_t nsnaps;
    const mt_snapshot_t *snaps = mt__replay_snapshots(x->replay, &nsnaps);
    fputs("time_ns,live_bytes,live_blocks,allocations,snapshot\n", out);
    for (size_t i = 0; i < x->npoints; i++) {
        const mt_tl_point_t *p = &x->points[i];
        fprintf(out, "%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",", p->time_ns, p->live_bytes,
                p->live_allocations, p->allocations);
        if (p->snapshot >= 0)
            put_csv(out, snaps[p->snapshot].text);
        fputc('\n', out);
    }
    return 0;
}

/* Runs `memtrack timeline`: see usage(). Returns the exit status. */
int mt_cmd_timeline(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"csv", no_argument, NULL, 'c'},
        {"max-points", required_argument, NULL, 'n'},
        {"output", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    mt_export_options_t xo = {.max_points = DEFAULT_MAX_POINTS};
    const char *output = NULL;
    int c;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":o:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'c': break;
        case 'n':
            if (mt__export_parse_count("timeline", "--max-points", optarg, 0, 100000000, &xo.max_points) < 0)
                return MT_EXIT_BAD_INPUT;
            break;
        case 'o': output = optarg; break;
        case 'h': usage(stdout); return MT_EXIT_OK;
        case ':': return mt__export_bad_usage("timeline", "%s needs a value", argv[optind - 1]);
        default: return mt__export_bad_usage("timeline", "unknown option '%s'", argv[optind - 1]);
        }
    }
    return mt__export_main("timeline", argc, argv, optind, output, &xo, write_csv, NULL);
}
