/* cmd_massif.c - `memtrack massif`: the live heap over time in valgrind massif's file format.
 *
 * ms_print and massif-visualizer read the output. Snapshots are the points
 * of the bounded timeline (export.c): the exact peak, every memtrack
 * snapshot marker, and the lowest and highest point of equal spans of the
 * run in between. The peak snapshot carries a "peak" heap tree built from
 * each site's live bytes at the peak; each marker's snapshot carries a
 * "detailed" tree of the live heap at that marker. Trees are massif's:
 * rooted at the allocation functions, then each frame's callers, with
 * children under 1% of the snapshot's heap folded into one "below
 * massif's threshold" line as massif itself does.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "export.h"

#define DEFAULT_SNAPSHOTS 100
#define THRESHOLD_PERCENT 1

static void usage(FILE *f)
{
    fprintf(f, "usage: memtrack massif [OPTIONS] TRACE\n"
               "Writes the trace in valgrind massif's format (massif.out), for ms_print and\n"
               "massif-visualizer: the heap over time, with a detailed tree at the peak and\n"
               "at every snapshot marker.\n"
               "\n"
               "  --time-unit U          B (bytes allocated so far, as massif's --time-unit=B;\n"
               "                         the default) or ms (milliseconds since the start)\n"
               "  --snapshots N          about N snapshots besides the peak and the markers\n"
               "                         (default %d)\n"
               "  -o, --output FILE      write to FILE instead of standard output\n"
               "  -h, --help             print this help\n"
               "\n"
               "Exit status: 0 success, 2 bad usage or bad input.\n",
               DEFAULT_SNAPSHOTS);
}

/* Writes text without '#' (ms_print cuts comments) or line breaks. */
static void put_clean(FILE *out, const char *s)
{
    for (; *s; s++)
        fputc(*s == '#' ? '_' : (*s == '\n' || *s == '\r') ? ' ' : *s, out);
}

static int by_bytes_desc(const void *a, const void *b, void *ctx)
{
    const mt_tree_t *t = ctx;
    uint64_t va = t->nodes[*(const uint32_t *)a].value[0], vb = t->nodes[*(const uint32_t *)b].value[0];
    if (va != vb)
        return va < vb ? 1 : -1;
    return *(const uint32_t *)a < *(const uint32_t *)b ? -1 : 1;
}

static bool significant(uint64_t bytes, uint64_t total)
{
    return total && bytes * 100 >= total * THRESHOLD_PERCENT;
}

static int write_node(FILE *out, const mt_tree_t *t, uint32_t id, size_t indent, uint64_t total)
{
    const mt_tree_node_t *nd = &t->nodes[id];
    size_t nkids = 0;
    for (uint32_t c = nd->first_child; c != MT_TREE_NONE; c = t->nodes[c].next_sibling)
        nkids += t->nodes[c].value[0] > 0;
    uint32_t *kids = malloc((nkids ? nkids : 1) * sizeof *kids);
    if (!kids)
        return -ENOMEM;
    size_t k = 0, nsig = 0;
    uint64_t insig_bytes = 0;
    for (uint32_t c = nd->first_child; c != MT_TREE_NONE; c = t->nodes[c].next_sibling)
        if (t->nodes[c].value[0] > 0)
            kids[k++] = c;
    qsort_r(kids, nkids, sizeof *kids, by_bytes_desc, (void *)t);
    for (size_t i = 0; i < nkids; i++) {
        if (significant(t->nodes[kids[i]].value[0], total))
            nsig++;
        else
            insig_bytes += t->nodes[kids[i]].value[0];
    }
    fprintf(out, "%*sn%zu: %" PRIu64 " ", (int)indent, "", nsig + (nsig < nkids), nd->value[0]);
    if (id == 0) {
        fputs("(heap allocation functions) malloc/new/new[], --alloc-fns, etc.\n", out);
    } else {
        fprintf(out, "0x%" PRIx64 ": ", nd->address);
        put_clean(out, nd->name);
        if (nd->file) {
            fputs(" (", out);
            put_clean(out, nd->file);
            fprintf(out, ":%" PRIu32 ")\n", nd->line);
        } else {
            fputs(" (in an unknown file)\n", out);
        }
    }
    int rc = 0;
    for (size_t i = 0; i < nsig && rc == 0; i++)
        rc = write_node(out, t, kids[i], indent + 1, total);
    if (rc == 0 && nsig < nkids)
        fprintf(out, "%*sn0: %" PRIu64 " in %zu place%s, %sbelow massif's threshold (%d.00%%)\n", (int)indent + 1, "",
                insig_bytes, nkids - nsig, nkids - nsig == 1 ? "" : "s", nsig ? "" : "all ", THRESHOLD_PERCENT);
    free(kids);
    return rc;
}

/* Builds and writes the heap tree of (stack, live bytes) pairs. */
static int write_tree(FILE *out, mt_export_t *x, const mt_snapshot_site_t *sites, size_t nsites, bool peak)
{
    mt_tree_t t;
    int rc = mt__tree_init(&t, "root", true, true);
    if (rc < 0)
        return rc;
    size_t n;
    const mt_site_t *all = mt__replay_sites(x->replay, &n);
    size_t count = peak ? n : nsites;
    for (size_t i = 0; i < count && rc == 0; i++) {
        uint32_t stack = peak ? all[i].stack : sites[i].stack;
        uint64_t v[MT_METRIC_COUNT] = {peak ? all[i].peak_bytes : sites[i].live_bytes};
        if (!v[0])
            continue;
        const mt_frame_t *f;
        size_t nf;
        if ((rc = mt__export_frames(x, stack, &f, &nf)) == 0) {
            long id = mt__tree_add(&t, f, nf, v);
            rc = id < 0 ? (int)id : 0;
        }
    }
    if (rc == 0)
        rc = write_node(out, &t, 0, 0, t.nodes[0].value[0]);
    mt__tree_free(&t);
    return rc;
}

static int write_massif(FILE *out, mt_export_t *x, void *ctx)
{
    bool bytes_time = *(const bool *)ctx;
    size_t nsnaps;
    const mt_snapshot_t *snaps = mt__replay_snapshots(x->replay, &nsnaps);
    fputs("desc: memtrack massif ", out);
    put_clean(out, x->path);
    if (x->info->flags & MT_TRACE_F_SAMPLED)
        fputs(" (estimates: the trace is sampled)", out);
    fputs("\ncmd: ", out);
    put_clean(out, x->info->command && *x->info->command ? x->info->command : "(unknown)");
    fprintf(out, "\ntime_unit: %s\n", bytes_time ? "B" : "ms");
    for (size_t i = 0; i < x->npoints; i++) {
        const mt_tl_point_t *p = &x->points[i];
        bool is_peak = x->totals->peak_bytes && i == x->peak_point;
        fprintf(out, "#-----------\nsnapshot=%zu\n#-----------\n", i);
        fprintf(out, "time=%" PRIu64 "\nmem_heap_B=%" PRIu64 "\nmem_heap_extra_B=0\nmem_stacks_B=0\n",
                bytes_time ? p->bytes_allocated : p->time_ns / 1000000, p->live_bytes);
        int rc = 0;
        if (is_peak) {
            fputs("heap_tree=peak\n", out);
            rc = write_tree(out, x, NULL, 0, true);
        } else if (p->snapshot >= 0) {
            fputs("heap_tree=detailed\n", out);
            rc = write_tree(out, x, snaps[p->snapshot].sites, snaps[p->snapshot].nsites, false);
        } else {
            fputs("heap_tree=empty\n", out);
        }
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Runs `memtrack massif`: see usage(). Returns the exit status. */
int mt_cmd_massif(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"time-unit", required_argument, NULL, 't'},
        {"snapshots", required_argument, NULL, 'n'},
        {"output", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    mt_export_options_t xo = {.max_points = DEFAULT_SNAPSHOTS, .capture_sites = true};
    const char *output = NULL;
    bool bytes_time = true;
    int c;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":o:h", longopts, NULL)) != -1) {
        switch (c) {
        case 't':
            if (strcmp(optarg, "ms") && strcmp(optarg, "B"))
                return mt__export_bad_usage("massif", "--time-unit wants ms or B, not '%s'", optarg);
            bytes_time = optarg[0] == 'B';
            break;
        case 'n':
            if (mt__export_parse_count("massif", "--snapshots", optarg, 2, 100000, &xo.max_points) < 0)
                return MT_EXIT_BAD_INPUT;
            break;
        case 'o': output = optarg; break;
        case 'h': usage(stdout); return MT_EXIT_OK;
        case ':': return mt__export_bad_usage("massif", "%s needs a value", argv[optind - 1]);
        default: return mt__export_bad_usage("massif", "unknown option '%s'", argv[optind - 1]);
        }
    }
    return mt__export_main("massif", argc, argv, optind, output, &xo, write_massif, &bytes_time);
}
