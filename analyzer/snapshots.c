/* snapshots.c - per-site live-heap series across snapshots, and the leak-candidate classifier.
 *
 * One replay serves every question. A marker callback counts the snapshots
 * as they come and, at the ones a caller asked for, copies the sites that
 * hold live blocks (sparse: a site without live blocks is zero). Series are
 * then made dense, one row of npoints values per site that was live at some
 * kept point, and classified by their shape. See snapshots.h for the rules.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "snapshots.h"

/* ---- names ---- */

static const char *const shape_names[] = {
#define MT_SHAPE_NAME(name, text, description) text,
    MT_SHAPE_MAP(MT_SHAPE_NAME)
#undef MT_SHAPE_NAME
};

static const char *const shape_descriptions[] = {
#define MT_SHAPE_DESCRIPTION(name, text, description) description,
    MT_SHAPE_MAP(MT_SHAPE_DESCRIPTION)
#undef MT_SHAPE_DESCRIPTION
};

/* Returns a shape's short name; see snapshots.h. */
const char *mt__shape_name(mt_shape_t shape)
{
    return (unsigned)shape < MT_SHAPE_COUNT ? shape_names[shape] : "?";
}

/* Returns a shape's description; see snapshots.h. */
const char *mt__shape_description(mt_shape_t shape)
{
    return (unsigned)shape < MT_SHAPE_COUNT ? shape_descriptions[shape] : "?";
}

/* ---- naming snapshots ---- */

/* Parses a whole decimal number; false for anything else. */
static bool parse_index(const char *s, size_t *out)
{
    if (!*s)
        return false;
    size_t v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9' || v > (SIZE_MAX - 9) / 10)
            return false;
        v = v * 10 + (size_t)(*p - '0');
    }
    *out = v;
    return true;
}

/* Resolves a snapshot named on a command line; see snapshots.h. */
int mt__snapshot_find(const mt_trace_t *t, const char *spec, bool last_of_label, size_t *index, char *err,
                      size_t errlen)
{
    const mt_trace_info_t *info = mt__trace_info(t);
    size_t n = info->nmarkers, i;
    if (!strcmp(spec, "end")) {
        *index = MT_POINT_END;
        return 0;
    }
    if (!n) {
        snprintf(err, errlen, "%s has no snapshots (use memtrack_snapshot, MEMTRACK_SNAPSHOT_SIGNAL or "
                              "MEMTRACK_SNAPSHOT_INTERVAL_MS when recording)", info->path);
        return -EINVAL;
    }
    if (!strcmp(spec, "first") || !strcmp(spec, "last")) {
        *index = spec[0] == 'f' ? 0 : n - 1;
        return 0;
    }
    if (parse_index(spec, &i)) {
        if (i >= n) {
            snprintf(err, errlen, "snapshot %zu is out of range: %s has %zu (0 to %zu)", i, info->path, n, n - 1);
            return -EINVAL;
        }
        *index = i;
        return 0;
    }
    bool found = false;
    for (i = 0; i < n; i++) {
        const char *label = mt__trace_label(t, info->markers[i].label);
        if (label && !strcmp(label, spec)) {
            *index = i;
            found = true;
            if (!last_of_label)
                break;
        }
    }
    if (!found) {
        snprintf(err, errlen, "no snapshot is labelled '%s' in %s", spec, info->path);
        return -EINVAL;
    }
    return 0;
}

/* ---- capturing points ---- */

typedef struct capture {
    mt_point_t *points;
    size_t *order;     /* point numbers by increasing snapshot index */
    size_t n;          /* points */
    size_t cursor;     /* next entry of order */
    size_t seen;       /* snapshots so far */
} capture_t;

static int copy_sites(const mt_replay_t *r, mt_point_t *p)
{
    size_t nsites, k = 0;
    const mt_site_t *sites = mt__replay_sites(r, &nsites);
    for (size_t i = 0; i < nsites; i++)
        k += sites[i].live_allocations > 0;
    p->nsites = 0;
    p->sites = malloc((k ? k : 1) * sizeof *p->sites);
    if (!p->sites)
        return -ENOMEM;
    for (size_t i = 0; i < nsites; i++) {
        const mt_site_t *s = &sites[i];
        if (s->live_allocations)
            p->sites[p->nsites++] = (mt_point_site_t){s->stack, s->live_bytes, s->live_allocations,
                                                      s->allocations, s->bytes_allocated};
    }
    const mt_totals_t *t = mt__replay_totals(r);
    p->live_bytes = t->live_bytes;
    p->live_allocations = t->live_allocations;
    return 0;
}

static int on_marker(void *ctx, const mt_replay_t *r, const mt_snapshot_t *snap)
{
    (void)snap;
    capture_t *c = ctx;
    size_t idx = c->seen++;
    while (c->cursor < c->n && c->points[c->order[c->cursor]].snapshot < idx)
        c->cursor++;
    for (; c->cursor < c->n && c->points[c->order[c->cursor]].snapshot == idx; c->cursor++) {
        int rc = copy_sites(r, &c->points[c->order[c->cursor]]);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static const mt_point_t *sort_points;

static int by_snapshot(const void *a, const void *b)
{
    size_t x = sort_points[*(const size_t *)a].snapshot, y = sort_points[*(const size_t *)b].snapshot;
    return x < y ? -1 : x > y;
}

/* Captures points; see snapshots.h. */
int mt__points_capture(mt_trace_t *t, mt_point_t *points, size_t n, mt_replay_t **replay)
{
    int rc = -ENOMEM;
    *replay = NULL;
    capture_t c = {.points = points, .n = n};
    for (size_t i = 0; i < n; i++)
        points[i].nsites = 0, points[i].sites = NULL, points[i].snap = NULL;
    c.order = malloc((n ? n : 1) * sizeof *c.order);
    if (!c.order)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++)
        c.order[i] = i;
    sort_points = points;
    qsort(c.order, n, sizeof *c.order, by_snapshot);
    mt_replay_options_t ro = {.on_marker = on_marker, .marker_ctx = &c};
    mt_replay_t *r = NULL;
    if ((rc = mt__replay_run(t, &ro, &r)) < 0)
        goto fail;
    size_t nsnaps;
    const mt_snapshot_t *snaps = mt__replay_snapshots(r, &nsnaps);
    for (size_t i = 0; i < n; i++) {
        if (points[i].snapshot == MT_POINT_END) {
            if ((rc = copy_sites(r, &points[i])) < 0)
                goto fail;
        } else if (points[i].snapshot < nsnaps) {
            points[i].snap = &snaps[points[i].snapshot];
            if (!points[i].sites && !(points[i].sites = calloc(1, sizeof *points[i].sites))) {
                rc = -ENOMEM;
                goto fail;
            }
        }
    }
    free(c.order);
    *replay = r;
    return 0;
fail:
    free(c.order);
    mt__points_free(points, n);
    mt__replay_free(r);
    return rc;
}

/* Frees the points' sites; see snapshots.h. */
void mt__points_free(mt_point_t *points, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(points[i].sites);
        points[i].sites = NULL;
        points[i].nsites = 0;
    }
}

/* ---- the classifier ---- */

/* Sets the default thresholds; see snapshots.h. */
void mt__leak_options_default(mt_leak_options_t *opt)
{
    *opt = (mt_leak_options_t){
        .warmup = 0,
        .min_growth_bytes = 1,
        .min_intervals_grown = 2,
        .max_shrink_ratio = 0.10,
        .plateau_ratio = 0.25,
        .min_confidence = 0.50,
        .max_points = 1024,
    };
}

static bool is_leak_shape(mt_shape_t s)
{
    return s == MT_SHAPE_STEADY_LEAK || s == MT_SHAPE_STEP_LEAK;
}

/* Classifies one series; see snapshots.h. */
void mt__series_classify(const uint64_t *v, size_t n, const mt_leak_options_t *opt, mt_series_stats_t *out)
{
    *out = (mt_series_stats_t){.shape = MT_SHAPE_TOO_SHORT};
    if (n < 3)
        return;
    size_t m = n - 1, last_up = 0, pause = 0;
    bool any_up = false;
    out->intervals = m;
    for (size_t i = 0; i < m; i++) {
        if (v[i + 1] > v[i]) {
            out->intervals_grown++;
            out->bytes_gained += v[i + 1] - v[i];
            if (any_up && pause > out->longest_pause)
                out->longest_pause = pause;
            pause = 0;
            any_up = true;
            last_up = i;
        } else {
            if (v[i + 1] < v[i]) {
                out->intervals_shrunk++;
                out->bytes_given_back += v[i] - v[i + 1];
            }
            pause++;
        }
    }
    out->growth_bytes = (int64_t)(v[m] - v[0]);
    out->growth_per_snapshot = (double)out->growth_bytes / (double)m;
    out->flat_tail = any_up ? m - 1 - last_up : m;

    if (!out->intervals_grown && !out->intervals_shrunk) {
        out->shape = MT_SHAPE_FLAT;
        return;
    }
    if (!out->intervals_grown) {
        out->shape = MT_SHAPE_SHRINKING;
        return;
    }
    if (out->growth_bytes <= 0 || (double)out->bytes_given_back > opt->max_shrink_ratio * (double)out->bytes_gained) {
        out->shape = MT_SHAPE_SAWTOOTH;
        return;
    }
    if (out->intervals_grown < opt->min_intervals_grown) {
        out->shape = MT_SHAPE_ONE_STEP;
        return;
    }
    size_t plateau_min = (size_t)ceil(opt->plateau_ratio * (double)m);
    if (plateau_min < 2)
        plateau_min = 2;
    if (out->flat_tail >= plateau_min && out->flat_tail > 2 * out->longest_pause) {
        out->shape = MT_SHAPE_PLATEAU;
        return;
    }
    out->shape = out->intervals_grown * 4 >= m * 3 ? MT_SHAPE_STEADY_LEAK : MT_SHAPE_STEP_LEAK;

    double kept = 1.0 - (double)out->bytes_given_back / (double)out->bytes_gained;
    double evidence = out->intervals_grown >= 4 ? 1.0 : (double)out->intervals_grown / 4.0;
    double recent = 1.0 - (double)out->flat_tail / (double)m;
    out->confidence = kept * evidence * recent;
    out->candidate = is_leak_shape(out->shape) && (uint64_t)out->growth_bytes >= opt->min_growth_bytes &&
                     out->confidence >= opt->min_confidence;
}

/* ---- series ---- */

static int by_rank(const void *a, const void *b)
{
    const mt_site_series_t *x = a, *y = b;
    if (x->stats.candidate != y->stats.candidate)
        return x->stats.candidate ? -1 : 1;
    if (x->stats.candidate && x->stats.confidence != y->stats.confidence)
        return x->stats.confidence > y->stats.confidence ? -1 : 1;
    if (x->stats.growth_bytes != y->stats.growth_bytes)
        return x->stats.growth_bytes > y->stats.growth_bytes ? -1 : 1;
    return x->stack < y->stack ? -1 : x->stack > y->stack;
}

/* Builds the dense rows from the captured points. */
static int build_series(mt_leak_analysis_t *a, const mt_point_t *points)
{
    size_t nstacks;
    mt__replay_sites(a->replay, &nstacks); /* stack ids + the no-stack entry */
    size_t *row = malloc(nstacks * sizeof *row); /* row number + 1, 0 for none */
    if (!row)
        return -ENOMEM;
    memset(row, 0, nstacks * sizeof *row);
    size_t nrows = 0;
    for (size_t p = 0; p < a->npoints; p++)
        for (size_t k = 0; k < points[p].nsites; k++) {
            uint32_t st = points[p].sites[k].stack;
            size_t slot = st == MT_REPLAY_NO_STACK ? nstacks - 1 : st;
            if (slot < nstacks && !row[slot])
                row[slot] = ++nrows;
        }
    a->sites = calloc(nrows ? nrows : 1, sizeof *a->sites);
    uint64_t *values = calloc(nrows && a->npoints ? 2 * nrows * a->npoints : 1, sizeof *values);
    if (!a->sites || !values) {
        free(values);
        free(row);
        return -ENOMEM;
    }
    a->nsites = nrows;
    for (size_t slot = 0; slot < nstacks; slot++) {
        if (!row[slot])
            continue;
        mt_site_series_t *s = &a->sites[row[slot] - 1];
        s->stack = slot == nstacks - 1 ? MT_REPLAY_NO_STACK : (uint32_t)slot;
        s->live_bytes = values + (row[slot] - 1) * 2 * a->npoints;
        s->live_allocations = s->live_bytes + a->npoints;
    }
    for (size_t p = 0; p < a->npoints; p++)
        for (size_t k = 0; k < points[p].nsites; k++) {
            const mt_point_site_t *ps = &points[p].sites[k];
            size_t slot = ps->stack == MT_REPLAY_NO_STACK ? nstacks - 1 : ps->stack;
            if (slot >= nstacks)
                continue;
            mt_site_series_t *s = &a->sites[row[slot] - 1];
            s->live_bytes[p] = ps->live_bytes;
            s->live_allocations[p] = ps->live_allocations;
        }
    free(row);
    for (size_t i = 0; i < nrows; i++) {
        mt__series_classify(a->sites[i].live_bytes, a->npoints, &a->opt, &a->sites[i].stats);
        a->ncandidates += a->sites[i].stats.candidate;
    }
    qsort(a->sites, nrows, sizeof *a->sites, by_rank);
    a->values = values;
    return 0;
}

/* Replays and classifies; see snapshots.h. */
int mt__leaks_analyze(mt_trace_t *t, const mt_leak_options_t *opt, mt_leak_analysis_t **out)
{
    *out = NULL;
    mt_leak_analysis_t *a = calloc(1, sizeof *a);
    mt_point_t *points = NULL;
    int rc = -ENOMEM;
    if (!a)
        return -ENOMEM;
    if (opt)
        a->opt = *opt;
    else
        mt__leak_options_default(&a->opt);
    if (a->opt.max_points < 3 || !(a->opt.max_shrink_ratio >= 0 && a->opt.max_shrink_ratio <= 1) ||
        !(a->opt.plateau_ratio >= 0 && a->opt.plateau_ratio <= 1) ||
        !(a->opt.min_confidence >= 0 && a->opt.min_confidence <= 1)) {
        rc = -EINVAL;
        goto fail;
    }
    size_t nsnaps = mt__trace_info(t)->nmarkers;
    size_t avail = nsnaps > a->opt.warmup ? nsnaps - a->opt.warmup : 0;
    a->npoints = avail < a->opt.max_points ? avail : a->opt.max_points;
    a->point_snapshot = malloc((a->npoints ? a->npoints : 1) * sizeof *a->point_snapshot);
    points = calloc(a->npoints ? a->npoints : 1, sizeof *points);
    if (!a->point_snapshot || !points)
        goto fail;
    for (size_t j = 0; j < a->npoints; j++) {
        /* Evenly spread, the first and last kept snapshots always included. */
        size_t off = a->npoints > 1 ? (size_t)(((unsigned __int128)j * (avail - 1)) / (a->npoints - 1)) : 0;
        a->point_snapshot[j] = points[j].snapshot = a->opt.warmup + off;
    }
    if ((rc = mt__points_capture(t, points, a->npoints, &a->replay)) < 0)
        goto fail;
    a->snaps = mt__replay_snapshots(a->replay, &a->nsnapshots);
    /* The replay is the truth about how many snapshots there were. */
    size_t wanted = a->npoints;
    while (a->npoints && a->point_snapshot[a->npoints - 1] >= a->nsnapshots)
        a->npoints--;
    rc = build_series(a, points);
    mt__points_free(points, wanted);
    if (rc < 0)
        goto fail;
    free(points);
    *out = a;
    return 0;
fail:
    free(points);
    mt__leaks_free(a);
    return rc;
}

/* Frees an analysis; see snapshots.h. */
void mt__leaks_free(mt_leak_analysis_t *a)
{
    if (!a)
        return;
    free(a->values);
    free(a->sites);
    free(a->point_snapshot);
    mt__replay_free(a->replay);
    free(a);
}
