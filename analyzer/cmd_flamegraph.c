/* cmd_flamegraph.c - `memtrack flamegraph`: folded stacks for flamegraph.pl, inferno and speedscope.
 *
 * Each line is one call path, outermost frame first, frames joined by ';',
 * then a space and the path's own value for the chosen metric: live bytes
 * at the peak, leaked bytes (after the default suppressions, as in
 * `memtrack report`), allocations or temporary allocations. Paths are the
 * sites' symbolized stacks with memtrack's own frames left out; sites whose
 * frames are all the same function merge. The values add up to the
 * report's totals for that metric.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "export.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: memtrack flamegraph [OPTIONS] TRACE\n"
               "Writes folded stacks ('main;parse;malloc_wrapper 4096', outermost frame first)\n"
               "for flamegraph.pl, inferno-flamegraph or speedscope.\n"
               "\n"
               "  --metric M             peak (live bytes at the peak, default), leaked (bytes),\n"
               "                         allocations or temporary (allocations)\n"
               "  -o, --output FILE      write to FILE instead of standard output\n"
               "  --no-default-suppressions  count one-time libc/ld.so allocations as leaks too\n"
               "  --suppressions FILE    LeakSanitizer-style 'leak:PATTERN' lines for the leaked\n"
               "                         bytes (repeatable)\n"
               "  -h, --help             print this help\n"
               "\n"
               "Exit status: 0 success, 2 bad usage or bad input.\n");
}

/* Writes a frame name without the folded format's separators. */
static void put_name(FILE *out, const char *s)
{
    for (; *s; s++)
        fputc(*s == ';' ? ':' : (*s == '\n' || *s == '\r') ? ' ' : *s, out);
}

static int write_folded(FILE *out, const mt_tree_t *t, mt_metric_t m)
{
    /* Depth-first, keeping the path from the root's child to the current node. */
    uint32_t *path = malloc((t->n + 1) * sizeof *path);
    if (!path)
        return -ENOMEM;
    size_t depth = 0;
    uint32_t at = t->nodes[0].first_child;
    while (at != MT_TREE_NONE) {
        path[depth++] = at;
        uint64_t self = mt__tree_self(t, at, m);
        if (self) {
            for (size_t i = 0; i < depth; i++) {
                if (i)
                    fputc(';', out);
                put_name(out, t->nodes[path[i]].name);
            }
            fprintf(out, " %" PRIu64 "\n", self);
        }
        if (t->nodes[at].first_child != MT_TREE_NONE) {
            at = t->nodes[at].first_child;
            continue;
        }
        while (depth && t->nodes[path[depth - 1]].next_sibling == MT_TREE_NONE)
            depth--;
        if (!depth)
            break;
        at = t->nodes[path[--depth]].next_sibling;
    }
    free(path);
    return 0;
}

static int write_flamegraph(FILE *out, mt_export_t *x, void *ctx)
{
    mt_tree_t tree;
    int rc = mt__export_tree(x, &tree, false);
    if (rc == 0)
        rc = write_folded(out, &tree, *(const mt_metric_t *)ctx);
    mt__tree_free(&tree);
    return rc;
}

/* Runs `memtrack flamegraph`: see usage(). Returns the exit status. */
int mt_cmd_flamegraph(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"metric", required_argument, NULL, 'm'},
        {"output", required_argument, NULL, 'o'},
        {"no-default-suppressions", no_argument, NULL, 'S'},
        {"suppressions", required_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    mt_metric_t metric = MT_METRIC_PEAK;
    mt_export_options_t xo = {.max_points = 1};
    const char *output = NULL;
    int c;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":o:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'm':
            if (mt__metric_parse(optarg, &metric) < 0)
                return mt__export_bad_usage("flamegraph", "--metric wants peak, leaked, allocations or temporary, "
                                                          "not '%s'", optarg);
            break;
        case 'o': output = optarg; break;
        case 'S': xo.no_default_suppressions = true; break;
        case 's':
            if (mt__export_add_suppressions(&xo, optarg) < 0) {
                return mt__export_bad_usage("flamegraph", "too many --suppressions files");
            }
            break;
        case 'h': usage(stdout); return MT_EXIT_OK;
        case ':': return mt__export_bad_usage("flamegraph", "%s needs a value", argv[optind - 1]);
        default: return mt__export_bad_usage("flamegraph", "unknown option '%s'", argv[optind - 1]);
        }
    }
    return mt__export_main("flamegraph", argc, argv, optind, output, &xo, write_flamegraph, &metric);
}
