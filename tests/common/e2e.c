/* e2e.c - helpers for end-to-end tests: run programs under libmemtrack.so, read their traces.
 *
 * Programs are started with fork and execve after everything they need (the
 * environment, paths) was built in the parent, so the child only makes
 * async-signal-safe calls. The live-block table of the replay is an open
 * addressing hash keyed by pointer, with backward-shift deletion, so a long
 * trace costs memory in proportion to its live blocks only.
 */
#include "e2e.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* ---- paths ---- */

const char *mt_e2e_build_dir(void)
{
    static char dir[PATH_MAX];
    if (dir[0])
        return dir;
    /* Sanitizer builds record with the plain build's library and targets. */
    const char *env = getenv("MEMTRACK_TEST_BUILD");
    if (env && *env) {
        snprintf(dir, sizeof dir, "%s", env);
        return dir;
    }
    return mt_e2e_own_build_dir();
}

const char *mt_e2e_own_build_dir(void)
{
    static char dir[PATH_MAX];
    if (dir[0])
        return dir;
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return NULL;
    exe[n] = '\0';
    /* exe is BUILD/tests/<dir>/<name>: drop three components. */
    for (int i = 0; i < 3; i++) {
        char *slash = strrchr(exe, '/');
        if (!slash || slash == exe)
            return NULL;
        *slash = '\0';
    }
    snprintf(dir, sizeof dir, "%s", exe);
    return dir;
}

const char *mt_e2e_preload_path(void)
{
    static char path[PATH_MAX];
    const char *build = mt_e2e_build_dir();
    if (!build)
        return NULL;
    if (!path[0] && snprintf(path, sizeof path, "%s/libmemtrack.so", build) >= (int)sizeof path)
        return NULL;
    return path;
}

char *mt_e2e_target_path(const char *name)
{
    const char *build = mt_e2e_build_dir();
    char *path;
    if (!build || asprintf(&path, "%s/targets/%s", build, name) < 0)
        return NULL;
    return path;
}

char *mt_e2e_tempdir(void)
{
    const char *base = getenv("TMPDIR");
    char *tmpl;
    if (!base || !*base)
        base = "/tmp";
    if (asprintf(&tmpl, "%s/mt-e2e-XXXXXX", base) < 0)
        return NULL;
    if (!mkdtemp(tmpl)) {
        free(tmpl);
        return NULL;
    }
    return tmpl;
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path) == 0 ? 0 : -errno;
}

int mt_e2e_remove_tree(const char *path)
{
    return nftw(path, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

bool mt_e2e_basename_is(const char *path, const char *name)
{
    if (!path || !name)
        return false;
    const char *slash = strrchr(path, '/');
    return !strcmp(slash ? slash + 1 : path, name);
}

/* ---- files ---- */

int mt_e2e_write_text(char *path, size_t size, const char *dir, const char *name, const char *text)
{
    if ((size_t)snprintf(path, size, "%s/%s", dir, name) >= size)
        return -ENAMETOOLONG;
    FILE *f = fopen(path, "w");
    if (!f)
        return -errno;
    int rc = fputs(text, f) < 0 ? -EIO : 0;
    if (fclose(f) != 0 && rc == 0)
        rc = -EIO;
    return rc;
}

char *mt_e2e_read_file(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        if (n == cap) {
            char *bigger = realloc(buf, cap * 2 + 1);
            if (!bigger) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = bigger;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            free(buf);
            buf = NULL;
            break;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    if (!buf)
        return NULL;
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

long mt_e2e_count_lines(const char *path)
{
    size_t len;
    char *buf = mt_e2e_read_file(path, &len);
    if (!buf)
        return -errno;
    long lines = 0;
    for (size_t i = 0; i < len; i++)
        lines += buf[i] == '\n';
    if (len && buf[len - 1] != '\n')
        lines++;
    free(buf);
    return lines;
}

/* ---- running ---- */

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void free_traces(mt_e2e_run_t *run)
{
    for (size_t i = 0; i < run->ntraces; i++)
        free(run->traces[i]);
    free(run->traces);
    run->traces = NULL;
    run->ntraces = 0;
}

int mt_e2e_list_traces(mt_e2e_run_t *run)
{
    free_traces(run);
    DIR *d = opendir(run->dir);
    if (!d)
        return -errno;
    size_t cap = 0;
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        char *path;
        struct stat st;
        if (de->d_name[0] == '.' && (!de->d_name[1] || !strcmp(de->d_name, "..")))
            continue;
        if (asprintf(&path, "%s/%s", run->dir, de->d_name) < 0) {
            rc = -ENOMEM;
            break;
        }
        if (lstat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
            free(path);
            continue;
        }
        if (run->ntraces == cap) {
            cap = cap ? cap * 2 : 8;
            char **bigger = realloc(run->traces, cap * sizeof *bigger);
            if (!bigger) {
                free(path);
                rc = -ENOMEM;
                break;
            }
            run->traces = bigger;
        }
        run->traces[run->ntraces++] = path;
    }
    closedir(d);
    if (run->ntraces)
        qsort(run->traces, run->ntraces, sizeof *run->traces, by_name);
    return rc;
}

static bool name_matches(const char *entry, const char *name, size_t name_len)
{
    return !strncmp(entry, name, name_len) && (entry[name_len] == '=' || entry[name_len] == '\0');
}

static size_t name_len_of(const char *entry)
{
    const char *eq = strchr(entry, '=');
    return eq ? (size_t)(eq - entry) : strlen(entry);
}

/* True when an extra entry names the variable of entry (a "NAME=value" or "NAME"). */
static bool overridden(const mt_e2e_opts_t *o, const char *entry)
{
    size_t len = name_len_of(entry);
    for (size_t j = 0; o->env && o->env[j]; j++)
        if (name_len_of(o->env[j]) == len && !strncmp(o->env[j], entry, len))
            return true;
    return false;
}

/* Builds the child's environment: ours without LD_PRELOAD and MEMTRACK_*,
 * and without the variables Criterion's sandbox (BoxFort) puts in a test's
 * process (BXFI_*, GMON_OUT_PREFIX): a Criterion program started with them
 * would take itself for a sandboxed worker. Then the run's own variables,
 * then the extras (which win). */
static char **build_env(const mt_e2e_run_t *run, const mt_e2e_opts_t *o, char **owned, size_t *nowned)
{
    size_t n = 0, nextra = 0, k = 0;
    while (environ[n])
        n++;
    while (o->env && o->env[nextra])
        nextra++;
    char **env = calloc(n + nextra + 3, sizeof *env);
    if (!env)
        return NULL;
    *nowned = 0;
    for (size_t i = 0; i < n; i++) {
        const char *e = environ[i];
        bool drop = !strncmp(e, "LD_PRELOAD=", 11) || !strncmp(e, "MEMTRACK_", 9) ||
                    !strncmp(e, "BXFI_", 5) || !strncmp(e, "GMON_OUT_PREFIX=", 16) || overridden(o, e);
        if (!drop)
            env[k++] = environ[i];
    }
    char *s;
    if (!o->no_preload && !overridden(o, "LD_PRELOAD")) {
        const char *lib = mt_e2e_preload_path();
        if (!lib || asprintf(&s, "LD_PRELOAD=%s", lib) < 0)
            goto fail;
        owned[(*nowned)++] = s;
        env[k++] = s;
    }
    if (!o->no_preload && !o->no_output && !overridden(o, "MEMTRACK_OUTPUT")) {
        const char *out = o->output ? o->output : "%e.%p.mtrace";
        int rc = strchr(out, '/') ? asprintf(&s, "MEMTRACK_OUTPUT=%s", out)
                                  : asprintf(&s, "MEMTRACK_OUTPUT=%s/%s", run->dir, out);
        if (rc < 0)
            goto fail;
        owned[(*nowned)++] = s;
        env[k++] = s;
    }
    for (size_t j = 0; j < nextra; j++) {
        bool later = false; /* a later extra of the same name wins */
        for (size_t l = j + 1; l < nextra && !later; l++)
            later = name_matches(o->env[l], o->env[j], name_len_of(o->env[j]));
        if (strchr(o->env[j], '=') && !later)
            env[k++] = (char *)o->env[j];
    }
    env[k] = NULL;
    return env;
fail:
    free(env);
    return NULL;
}

int mt_e2e_run(mt_e2e_run_t *run, char *const argv[], const mt_e2e_opts_t *opts)
{
    static const mt_e2e_opts_t defaults;
    const mt_e2e_opts_t *o = opts ? opts : &defaults;
    char *owned[2] = {NULL, NULL};
    size_t nowned = 0;
    char **env = NULL;
    char *exe = NULL;
    int rc = 0;

    memset(run, 0, sizeof *run);
    run->exit_code = -1;
    if (o->dir) {
        run->dir = strdup(o->dir);
    } else {
        run->dir = mt_e2e_tempdir();
        run->own_dir = true;
    }
    if (!run->dir)
        return -errno;
    if (o->capture_stdout || o->capture_stderr) {
        char *io;
        if (asprintf(&io, "%s/io", run->dir) < 0)
            return -ENOMEM;
        if (mkdir(io, 0700) != 0 && errno != EEXIST) {
            rc = -errno;
            free(io);
            return rc;
        }
        free(io);
    }
    if (o->capture_stdout && asprintf(&run->stdout_path, "%s/io/stdout", run->dir) < 0)
        return -ENOMEM;
    if (o->capture_stderr && asprintf(&run->stderr_path, "%s/io/stderr", run->dir) < 0)
        return -ENOMEM;
    exe = strchr(argv[0], '/') ? strdup(argv[0]) : mt_e2e_target_path(argv[0]);
    env = build_env(run, o, owned, &nowned);
    if (!exe || !env) {
        rc = -ENOMEM;
        goto out;
    }

    pid_t pid = fork();
    if (pid < 0) {
        rc = -errno;
        goto out;
    }
    if (pid == 0) {
        struct rlimit no_core = {0, 0};
        int fd;
        if (chdir(run->dir) != 0)
            _exit(126);
        setrlimit(RLIMIT_CORE, &no_core);
        if (o->limit_as) {
            struct rlimit as = {o->limit_as, o->limit_as};
            if (setrlimit(RLIMIT_AS, &as) != 0)
                _exit(126);
        }
        if (o->timeout_s)
            alarm(o->timeout_s);
        fd = open("/dev/null", O_RDONLY);
        if (fd >= 0 && fd != 0) {
            dup2(fd, 0);
            close(fd);
        }
        if (run->stdout_path) {
            fd = open(run->stdout_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
            if (fd < 0 || dup2(fd, 1) < 0)
                _exit(126);
            close(fd);
        }
        if (run->stderr_path) {
            fd = open(run->stderr_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
            if (fd < 0 || dup2(fd, 2) < 0)
                _exit(126);
            close(fd);
        }
        execve(exe, argv, env);
        _exit(127);
    }
    run->pid = pid;
    while (waitpid(pid, &run->status, 0) < 0) {
        if (errno != EINTR) {
            rc = -errno;
            goto out;
        }
    }
    if (WIFEXITED(run->status))
        run->exit_code = WEXITSTATUS(run->status);
    else if (WIFSIGNALED(run->status))
        run->signal = WTERMSIG(run->status);
    rc = mt_e2e_list_traces(run);
out:
    for (size_t i = 0; i < nowned; i++)
        free(owned[i]);
    free(env);
    free(exe);
    return rc;
}

int mt_e2e_run_target(mt_e2e_run_t *run, const mt_e2e_opts_t *opts, const char *name, ...)
{
    char *argv[17];
    size_t n = 0;
    va_list ap;
    argv[n++] = (char *)name;
    va_start(ap, name);
    for (const char *a; n < 16 && (a = va_arg(ap, const char *)) != NULL;)
        argv[n++] = (char *)a;
    va_end(ap);
    argv[n] = NULL;
    return mt_e2e_run(run, argv, opts);
}

void mt_e2e_run_free(mt_e2e_run_t *run)
{
    free_traces(run);
    if (run->dir && run->own_dir)
        mt_e2e_remove_tree(run->dir);
    free(run->dir);
    free(run->stdout_path);
    free(run->stderr_path);
    memset(run, 0, sizeof *run);
}

long mt_e2e_trace_for_pid(const mt_e2e_run_t *run, uint64_t pid)
{
    for (size_t i = 0; i < run->ntraces; i++) {
        mt_trace_t *t;
        char err[256];
        if (mt__trace_open(run->traces[i], &t, err, sizeof err) != 0)
            continue;
        bool hit = mt__trace_info(t)->pid == pid;
        mt__trace_close(t);
        if (hit)
            return (long)i;
    }
    return -1;
}

/* ---- tally and replay ---- */

typedef struct live {
    uint64_t ptr;   /* 0 = empty slot */
    uint64_t size;
    uint32_t tid;   /* the allocating thread */
    uint32_t entry; /* index of its (op, size) in the tally */
} live_t;

typedef struct live_table {
    live_t *slots;
    size_t mask, count;
} live_table_t;

static size_t live_hash(uint64_t p, size_t mask)
{
    p ^= p >> 33;
    p *= 0xff51afd7ed558ccdull;
    p ^= p >> 33;
    return (size_t)p & mask;
}

static int live_grow(live_table_t *lt)
{
    size_t nmask = lt->slots ? lt->mask * 2 + 1 : 1023;
    live_t *slots = calloc(nmask + 1, sizeof *slots);
    if (!slots)
        return -ENOMEM;
    for (size_t i = 0; lt->slots && i <= lt->mask; i++) {
        if (!lt->slots[i].ptr)
            continue;
        size_t j = live_hash(lt->slots[i].ptr, nmask);
        while (slots[j].ptr)
            j = (j + 1) & nmask;
        slots[j] = lt->slots[i];
    }
    free(lt->slots);
    lt->slots = slots;
    lt->mask = nmask;
    return 0;
}

/* Inserts b; returns 1 when its pointer was already live (the entry is
 * replaced, the old size stored in *old_size), 0 when new, -ENOMEM. */
static int live_insert(live_table_t *lt, live_t b, uint64_t *old_size)
{
    if ((!lt->slots || (lt->count + 1) * 2 > lt->mask) && live_grow(lt) < 0)
        return -ENOMEM;
    size_t i = live_hash(b.ptr, lt->mask);
    for (; lt->slots[i].ptr; i = (i + 1) & lt->mask) {
        if (lt->slots[i].ptr == b.ptr) {
            *old_size = lt->slots[i].size;
            lt->slots[i] = b;
            return 1;
        }
    }
    lt->slots[i] = b;
    lt->count++;
    return 0;
}

/* Removes ptr; returns 1 and its entry when it was live, else 0. */
static int live_remove(live_table_t *lt, uint64_t ptr, live_t *out)
{
    if (!lt->slots)
        return 0;
    size_t i = live_hash(ptr, lt->mask);
    for (; lt->slots[i].ptr; i = (i + 1) & lt->mask)
        if (lt->slots[i].ptr == ptr)
            break;
    if (!lt->slots[i].ptr)
        return 0;
    *out = lt->slots[i];
    /* Backward-shift deletion keeps every probe chain unbroken. */
    size_t hole = i;
    for (size_t j = (i + 1) & lt->mask; lt->slots[j].ptr; j = (j + 1) & lt->mask) {
        size_t home = live_hash(lt->slots[j].ptr, lt->mask);
        bool movable = hole <= j ? (home <= hole || home > j) : (home <= hole && home > j);
        if (movable) {
            lt->slots[hole] = lt->slots[j];
            hole = j;
        }
    }
    lt->slots[hole].ptr = 0;
    lt->count--;
    return 1;
}

static size_t size_hash(unsigned op, uint64_t size, size_t mask)
{
    return live_hash(size * 64 + op, mask);
}

/* Returns the slot of (op, size) in the index: its entry's, or the empty one
 * where it would go. */
static size_t size_slot(const mt_e2e_tally_t *t, unsigned op, uint64_t size)
{
    size_t i = size_hash(op, size, t->size_mask);
    for (; t->size_index[i]; i = (i + 1) & t->size_mask) {
        const mt_e2e_size_count_t *e = &t->sizes[t->size_index[i] - 1];
        if (e->op == op && e->size == size)
            break;
    }
    return i;
}

static int size_index_grow(mt_e2e_tally_t *t)
{
    size_t nmask = t->size_index ? t->size_mask * 2 + 1 : 1023;
    uint32_t *index = calloc(nmask + 1, sizeof *index);
    if (!index)
        return -ENOMEM;
    free(t->size_index);
    t->size_index = index;
    t->size_mask = nmask;
    for (size_t k = 0; k < t->nsizes; k++)
        index[size_slot(t, t->sizes[k].op, t->sizes[k].size)] = (uint32_t)k + 1;
    return 0;
}

/* Counts one allocation of (op, size); returns the entry's index or -ENOMEM. */
static long add_size(mt_e2e_tally_t *t, unsigned op, uint64_t size)
{
    if ((!t->size_index || (t->nsizes + 1) * 2 > t->size_mask) && size_index_grow(t) < 0)
        return -ENOMEM;
    size_t slot = size_slot(t, op, size);
    if (t->size_index[slot]) {
        t->sizes[t->size_index[slot] - 1].count++;
        return (long)t->size_index[slot] - 1;
    }
    if (t->nsizes == t->capsizes) {
        size_t cap = t->capsizes ? t->capsizes * 2 : 256;
        mt_e2e_size_count_t *bigger = realloc(t->sizes, cap * sizeof *bigger);
        if (!bigger)
            return -ENOMEM;
        t->sizes = bigger;
        t->capsizes = cap;
    }
    t->sizes[t->nsizes] = (mt_e2e_size_count_t){size, 1, 0, 0, (uint8_t)op};
    t->size_index[slot] = (uint32_t)t->nsizes + 1;
    return (long)t->nsizes++;
}

static int tally(mt_e2e_trace_t *tr)
{
    mt_e2e_tally_t *t = &tr->tally;
    live_table_t lt = {NULL, 0, 0};
    mt_event_t ev;
    bool first = true;
    int rc;
    mt__trace_rewind(tr->t);
    while ((rc = mt__trace_next(tr->t, &ev)) == 1) {
        if (!first && ev.seq <= t->last_seq)
            t->bad_order++;
        if (first)
            t->first_seq = ev.seq;
        first = false;
        t->last_seq = ev.seq;
        if (ev.op == MT_EV_MARKER) {
            t->markers++;
            continue;
        }
        t->events++;
        if (ev.op <= MT_OP_MAX)
            t->by_op[ev.op]++;
        uint64_t old;
        if (mt_op_allocates(ev.op)) {
            t->allocs++;
            long entry = add_size(t, ev.op, ev.size);
            if (entry < 0)
                goto oom;
            if (!mt__trace_stack(tr->t, ev.stack))
                t->bad_stacks++;
            int r = live_insert(&lt, (live_t){ev.ptr, ev.size, ev.tid, (uint32_t)entry}, &old);
            if (r < 0)
                goto oom;
            if (r == 1) {
                t->double_allocs++;
                t->live_bytes -= old;
            } else {
                t->live_blocks++;
            }
            t->live_bytes += ev.size;
        } else if (mt_op_frees(ev.op)) {
            live_t b;
            t->frees++;
            if (live_remove(&lt, ev.ptr, &b)) {
                mt_e2e_size_count_t *e = &t->sizes[b.entry];
                t->matched_frees++;
                t->live_blocks--;
                t->live_bytes -= b.size;
                e->freed++;
                if (b.tid != ev.tid) {
                    t->cross_thread_frees++;
                    e->freed_elsewhere++;
                }
            } else {
                t->unknown_frees++;
            }
        }
    }
    free(lt.slots);
    t->error = rc;
    return rc;
oom:
    free(lt.slots);
    t->error = -ENOMEM;
    return -ENOMEM;
}

int mt_e2e_trace_open(mt_e2e_trace_t *tr, const char *path)
{
    memset(tr, 0, sizeof *tr);
    int rc = mt__trace_open(path, &tr->t, tr->err, sizeof tr->err);
    if (rc < 0) {
        tr->t = NULL;
        return rc;
    }
    tr->info = mt__trace_info(tr->t);
    rc = tally(tr);
    if (rc < 0) {
        snprintf(tr->err, sizeof tr->err, "%s", mt__trace_error(tr->t) ? mt__trace_error(tr->t) : "");
        return rc;
    }
    return 0;
}

void mt_e2e_trace_close(mt_e2e_trace_t *tr)
{
    mt__trace_close(tr->t);
    free(tr->tally.sizes);
    free(tr->tally.size_index);
    memset(tr, 0, sizeof *tr);
}

uint64_t mt_e2e_count(const mt_e2e_tally_t *t, unsigned op, uint64_t size)
{
    if (size == UINT64_MAX)
        return op <= MT_OP_MAX ? t->by_op[op] : 0;
    const mt_e2e_size_count_t *e = mt_e2e_size_entry(t, op, size);
    return e ? e->count : 0;
}

const mt_e2e_size_count_t *mt_e2e_size_entry(const mt_e2e_tally_t *t, unsigned op, uint64_t size)
{
    if (!t->size_index)
        return NULL;
    uint32_t k = t->size_index[size_slot(t, op, size)];
    return k ? &t->sizes[k - 1] : NULL;
}

uint64_t mt_e2e_count_size(const mt_e2e_tally_t *t, uint64_t size)
{
    uint64_t n = 0;
    for (size_t i = 0; i < t->nsizes; i++)
        if (t->sizes[i].size == size)
            n += t->sizes[i].count;
    return n;
}

int mt_e2e_find(mt_e2e_trace_t *tr, unsigned op, uint64_t size, uint64_t ptr, unsigned nth,
                mt_event_t *ev)
{
    int rc;
    mt__trace_rewind(tr->t);
    while ((rc = mt__trace_next(tr->t, ev)) == 1) {
        if (ev->op != op)
            continue;
        if (mt_op_allocates(op) && size != UINT64_MAX && ev->size != size)
            continue;
        if (ptr && ev->ptr != ptr)
            continue;
        if (nth-- == 0)
            return 1;
    }
    return rc;
}

int mt_e2e_find_free(mt_e2e_trace_t *tr, uint64_t ptr, uint64_t after_seq, mt_event_t *ev)
{
    int rc;
    mt__trace_rewind(tr->t);
    while ((rc = mt__trace_next(tr->t, ev)) == 1)
        if (ev->seq > after_seq && mt_op_frees(ev->op) && ev->ptr == ptr)
            return 1;
    return rc;
}

const char *mt_e2e_frame_module(const mt_e2e_trace_t *tr, const mt_event_t *ev, uint32_t i)
{
    const mt_stack_t *s = mt__trace_stack(tr->t, ev->stack);
    if (!s || i >= s->depth)
        return NULL;
    const mt_module_t *m = mt__trace_module_for(tr->t, s->frames[i], s->epoch);
    return m ? m->path : NULL;
}

int mt_e2e_stack_depth(const mt_e2e_trace_t *tr, const mt_event_t *ev)
{
    const mt_stack_t *s = mt__trace_stack(tr->t, ev->stack);
    return s ? (int)s->depth : -1;
}

/* Runs the memtrack command line; see e2e.h. */
int mt_e2e_memtrack(mt_e2e_cli_t *res, const char *const *args)
{
    char cli[PATH_MAX];
    const char *build = mt_e2e_build_dir();
    char *argv[16];
    size_t n = 0;
    memset(res, 0, sizeof *res);
    if (!build)
        return -ENOENT;
    snprintf(cli, sizeof cli, "%s/memtrack", build);
    argv[0] = cli;
    while (args[n] && n < 14) {
        argv[n + 1] = (char *)args[n];
        n++;
    }
    if (args[n])
        return -E2BIG;
    argv[n + 1] = NULL;
    mt_e2e_run_t run;
    mt_e2e_opts_t o = {.no_preload = true, .capture_stdout = true, .capture_stderr = true};
    int rc = mt_e2e_run(&run, argv, &o);
    if (rc == 0) {
        res->exit_code = run.exit_code;
        res->out = mt_e2e_read_file(run.stdout_path, NULL);
        res->err = mt_e2e_read_file(run.stderr_path, NULL);
        if (!res->out || !res->err)
            rc = -ENOMEM;
    }
    mt_e2e_run_free(&run);
    return rc;
}

/* Frees a command line run's output; see e2e.h. */
void mt_e2e_cli_free(mt_e2e_cli_t *c)
{
    free(c->out);
    free(c->err);
    c->out = c->err = NULL;
}
