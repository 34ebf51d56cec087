/* output.c - helpers the diff and leaks commands share to print sites: JSON fields, stacks, errors. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <getopt.h>

#include "output.h"

#define FUNCTION_MAX 48

/* Adds an exact signed integer; see output.h. */
bool mt__json_i64(cJSON *obj, const char *name, int64_t v)
{
    char buf[24];
    snprintf(buf, sizeof buf, "%" PRId64, v);
    return cJSON_AddRawToObject(obj, name, buf) != NULL;
}

/* Adds the headline's fields and the stack; see output.h. */
bool mt__json_site_frames(cJSON *obj, const mt_frame_t *frames, size_t n, size_t headline)
{
    const mt_frame_t *h = n ? &frames[headline] : NULL;
    if (!mt__json_str(obj, "function", h ? h->function : NULL) || !mt__json_str(obj, "file", h ? h->file : NULL) ||
        !mt__json_line(obj, "line", h ? h->line : 0) || !mt__json_str(obj, "module", h ? h->module : NULL))
        return false;
    cJSON *stack = cJSON_AddArrayToObject(obj, "stack");
    if (!stack)
        return false;
    for (size_t i = 0; i < n; i++) {
        cJSON *o = mt__json_frame(&frames[i]);
        if (!o || !cJSON_AddItemToArray(stack, o))
            return cJSON_Delete(o), false;
    }
    return true;
}

static const char *base_name(const char *path)
{
    const char *slash = path ? strrchr(path, '/') : NULL;
    return slash ? slash + 1 : path;
}

/* Formats the headline frame; see output.h. */
void mt__headline_text(const mt_frame_t *frames, size_t n, size_t headline, char *buf, size_t cap)
{
    if (!n) {
        snprintf(buf, cap, "[no stack]");
        return;
    }
    const mt_frame_t *f = &frames[headline];
    char name[256];
    const char *fn = f->function ? mt__short_function(f->function, FUNCTION_MAX, name, sizeof name) : NULL;
    if (fn && f->file && f->line)
        snprintf(buf, cap, "%s (%s:%" PRIu32 ")", fn, base_name(f->file), f->line);
    else if (fn)
        snprintf(buf, cap, "%s (%s)", fn, f->module ? base_name(f->module) : "?");
    else if (f->module)
        snprintf(buf, cap, "?? (%s+0x%" PRIx64 ")", base_name(f->module), f->offset);
    else
        snprintf(buf, cap, "?? (0x%" PRIx64 ")", f->address);
}

/* Prints a stack from its headline to main; see output.h. */
void mt__print_frames(FILE *out, const mt_frame_t *frames, size_t n, size_t headline, size_t max, int indent)
{
    if (!n) {
        fprintf(out, "%*s(stack unknown)\n", indent, "");
        return;
    }
    size_t to = n;
    for (size_t i = headline; i < n; i++)
        if (frames[i].function && !strcmp(frames[i].function, "main")) {
            to = i + 1;
            break;
        }
    if (to - headline > max)
        to = headline + max;
    for (size_t i = headline; i < to; i++) {
        const mt_frame_t *f = &frames[i];
        char name[256], loc[300];
        const char *fn = mt__short_function(f->function, FUNCTION_MAX, name, sizeof name);
        if (f->file && f->line)
            snprintf(loc, sizeof loc, "%s:%" PRIu32, base_name(f->file), f->line);
        else
            snprintf(loc, sizeof loc, "%s+0x%" PRIx64, f->module ? base_name(f->module) : "?", f->offset);
        fprintf(out, "%*s%s%s  %s\n", indent, "", f->inlined ? "(inlined) " : "", fn, loc);
    }
}

/* Prints one error line naming a file; see output.h. */
void mt__file_error(const char *path, const char *msg)
{
    size_t n = strlen(path);
    if (!strncmp(msg, path, n) && msg[n] == ':')
        fprintf(stderr, "memtrack: %s\n", msg);
    else
        fprintf(stderr, "memtrack: %s: %s\n", path, msg);
}

/* Opens a trace or says why not; see output.h. */
int mt__open_trace(const char *path, mt_trace_t **t)
{
    char err[512] = "";
    int rc = mt__trace_open(path, t, err, sizeof err);
    if (rc < 0)
        mt__file_error(path, err[0] ? err : strerror(-rc));
    return rc;
}

/* Parses a bounded decimal number; see output.h. */
bool mt__parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    char *end;
    if (!*s || *s == '-' || *s == '+' || *s == ' ')
        return false;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end || errno || v > max)
        return false;
    *out = v;
    return true;
}

/* Parses a ratio in 0..1; see output.h. */
bool mt__parse_ratio(const char *s, double *out)
{
    char *end;
    if (!*s)
        return false;
    errno = 0;
    double v = strtod(s, &end);
    if (*end || errno || !(v >= 0 && v <= 1))
        return false;
    *out = v;
    return true;
}

/* Symbolizes a stack and finds its headline; see output.h. */
int mt__shown_stack(mt_symbolizer_t *sym, const mt_trace_t *t, uint32_t stack, const mt_patterns_t *wrappers,
                    mt_shown_t *s)
{
    *s = (mt_shown_t){0};
    if (stack == MT_REPLAY_NO_STACK)
        return 0;
    int rc = mt__symbolize_stack(sym, t, stack, &s->frames, &s->nframes);
    if (rc < 0)
        return rc;
    s->headline = s->nframes ? mt__headline(s->frames, s->nframes, wrappers) : 0;
    return 0;
}

/* Adds a stack id or null; see output.h. */
bool mt__json_stack_id(cJSON *obj, uint32_t stack, bool unknown)
{
    if (unknown || stack == MT_REPLAY_NO_STACK)
        return cJSON_AddNullToObject(obj, "stack_id") != NULL;
    return mt__json_u64(obj, "stack_id", stack);
}

/* Prints and deletes a JSON document; see output.h. */
int mt__json_print(cJSON *doc)
{
    char *text = doc ? cJSON_Print(doc) : NULL;
    cJSON_Delete(doc);
    if (!text)
        return -ENOMEM;
    puts(text);
    free(text);
    return 0;
}

/* Flushes stdout or says why not; see output.h. */
int mt__stdout_flush(void)
{
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "memtrack: standard output: write error: %s\n", strerror(errno));
        return -EIO;
    }
    return 0;
}

/* Reports a bad option; see output.h. */
int mt__bad_option(int c, char **argv, int (*bad_usage)(const char *fmt, ...))
{
    if (c == ':')
        return bad_usage("%s needs a value", argv[optind - 1]);
    if (optopt && optopt < 256)
        return bad_usage("unknown option '-%c'", optopt);
    return bad_usage("unknown option '%s'", argv[optind - 1]);
}

/* Says whether a trace was sampled; see output.h. */
bool mt__trace_sampled(const mt_trace_t *t)
{
    return (mt__trace_info(t)->flags & MT_TRACE_F_SAMPLED) != 0;
}

/* Prints the estimate note of a sampled trace; see output.h. */
void mt__print_estimate_note(FILE *out, const char *path, const mt_trace_t *t)
{
    if (mt__trace_sampled(t))
        fprintf(out, "  note: %s is sampled (about one allocation per %" PRIu64 " bytes): the numbers are estimates\n",
                path, mt__trace_info(t)->sample_bytes);
}

/* Sends stdout to a file; see output.h. */
int mt__redirect_stdout(const char *path)
{
    fflush(stdout);
    if (!freopen(path, "w", stdout)) {
        int rc = -errno;
        fprintf(stderr, "memtrack: %s: cannot write: %s\n", path, strerror(errno));
        return rc;
    }
    return 0;
}
