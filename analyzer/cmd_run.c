/* cmd_run.c - `memtrack run`: runs a program with libmemtrack.so preloaded.
 *
 * Sets an absolute LD_PRELOAD (the library next to this executable, or in
 * ../lib when installed), runs the program, and once it ends prints the
 * trace files it and its children wrote: the *.mtrace files that appeared in
 * the output directory during the run. The exit status is the program's own
 * (128 + N when signal N killed it), so `memtrack run` can stand in for the
 * program in scripts and CI.
 */
#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"
#include "budget.h"
#include "commands.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: memtrack run [-o PATH] [--budget FILE [--junit FILE] [--github]] [--] PROGRAM [ARGS...]\n"
               "Runs PROGRAM with libmemtrack.so preloaded and prints the trace file(s).\n"
               "  -o PATH   trace file name; %%p is the pid, %%e the program name\n"
               "            (default: memtrack.%%e.%%p.mtrace in the current directory)\n"
               "  --budget FILE  then check the traces against FILE ('memtrack check');\n"
               "            --junit FILE and --github are passed on to the check\n"
               "The exit status is the program's, or with --budget the check's when the\n"
               "program succeeded (0 all budgets hold, 1 one is exceeded, 2 bad input).\n");
}

/* Finds libmemtrack.so beside this executable or in ../lib. */
static int find_library(char *out, size_t cap)
{
    const char *env = getenv("MEMTRACK_LIBRARY");
    char self[PATH_MAX];
    if (env && *env) {
        if (!realpath(env, out))
            return -errno;
        return 0;
    }
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n < 0)
        return -errno;
    self[n] = '\0';
    const char *dir = dirname(self);
    const char *candidates[] = {"%s/libmemtrack.so", "%s/../lib/libmemtrack.so"};
    for (size_t i = 0; i < 2; i++) {
        char path[PATH_MAX + 32];
        snprintf(path, sizeof path, candidates[i], dir);
        if (access(path, R_OK) == 0 && realpath(path, out) && strlen(out) < cap)
            return 0;
    }
    return -ENOENT;
}

/* Resolves a command name through PATH, as execvp would. */
static int find_program(const char *name, char *out, size_t cap)
{
    if (strchr(name, '/')) {
        if (access(name, X_OK) != 0)
            return -errno;
        snprintf(out, cap, "%s", name);
        return 0;
    }
    const char *path = getenv("PATH");
    if (!path)
        path = "/usr/local/bin:/usr/bin:/bin";
    while (*path) {
        const char *colon = strchr(path, ':');
        size_t len = colon ? (size_t)(colon - path) : strlen(path);
        snprintf(out, cap, "%.*s/%s", (int)len, len ? path : ".", name);
        struct stat st;
        if (stat(out, &st) == 0 && S_ISREG(st.st_mode) && access(out, X_OK) == 0)
            return 0;
        path += len + (colon ? 1 : 0);
    }
    return -ENOENT;
}

/* Returns 1 when path is an ELF executable without an interpreter (static),
 * 0 otherwise (dynamic, a script, or unreadable). */
static int is_static_elf(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    Elf64_Ehdr eh;
    int result = 0;
    if (fd < 0)
        return 0;
    if (pread(fd, &eh, sizeof eh, 0) != (ssize_t)sizeof eh || memcmp(eh.e_ident, ELFMAG, SELFMAG) ||
        eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_phentsize != sizeof(Elf64_Phdr))
        goto out;
    result = 1;
    for (unsigned i = 0; i < eh.e_phnum; i++) {
        Elf64_Phdr ph;
        if (pread(fd, &ph, sizeof ph, (off_t)(eh.e_phoff + i * sizeof ph)) != (ssize_t)sizeof ph)
            break;
        if (ph.p_type == PT_INTERP) {
            result = 0;
            break;
        }
    }
out:
    close(fd);
    return result;
}

typedef struct name_set {
    char **names;
    size_t n;
} name_set_t;

static void list_traces(const char *dir, name_set_t *set)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    set->names = NULL;
    set->n = 0;
    if (!d)
        return;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len < 7 || strcmp(e->d_name + len - 7, ".mtrace"))
            continue;
        char **grown = realloc(set->names, (set->n + 1) * sizeof *grown);
        if (!grown)
            break;
        set->names = grown;
        set->names[set->n++] = strdup(e->d_name);
    }
    closedir(d);
}

static bool in_set(const name_set_t *set, const char *name)
{
    for (size_t i = 0; i < set->n; i++)
        if (set->names[i] && !strcmp(set->names[i], name))
            return true;
    return false;
}

static void free_set(name_set_t *set)
{
    for (size_t i = 0; i < set->n; i++)
        free(set->names[i]);
    free(set->names);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Runs argv with memtrack preloaded; stores the traces written in *traces
 * (malloc'd paths, sorted) and returns the program's exit status, or -1 when
 * it could not be started (message printed). */
int mt__run_program(const char *output, char **argv, char ***traces, size_t *ntraces)
{
    char lib[PATH_MAX], prog[PATH_MAX];
    *traces = NULL;
    *ntraces = 0;
    if (find_library(lib, sizeof lib) < 0) {
        fprintf(stderr, "memtrack: cannot find libmemtrack.so next to this program or in ../lib "
                        "(set MEMTRACK_LIBRARY to its path)\n");
        return -1;
    }
    if (find_program(argv[0], prog, sizeof prog) < 0) {
        fprintf(stderr, "memtrack: cannot run '%s': no such program\n", argv[0]);
        return -1;
    }
    if (is_static_elf(prog))
        fprintf(stderr, "memtrack: %s is statically linked: its allocator cannot be interposed, "
                        "so nothing will be recorded\n", prog);
    const char *pattern = output ? output : getenv("MEMTRACK_OUTPUT");
    if (!pattern || !*pattern)
        pattern = "memtrack.%e.%p.mtrace";
    char dirbuf[PATH_MAX];
    snprintf(dirbuf, sizeof dirbuf, "%s", pattern);
    const char *dir = strchr(pattern, '/') ? dirname(dirbuf) : ".";
    name_set_t before, after;
    list_traces(dir, &before);

    const char *old = getenv("LD_PRELOAD");
    char *preload = malloc(strlen(lib) + (old ? strlen(old) : 0) + 2);
    if (!preload)
        return -1;
    sprintf(preload, "%s%s%s", lib, old && *old ? ":" : "", old && *old ? old : "");
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "memtrack: cannot fork: %s\n", strerror(errno));
        free(preload);
        free_set(&before);
        return -1;
    }
    if (pid == 0) {
        setenv("LD_PRELOAD", preload, 1);
        setenv("MEMTRACK_OUTPUT", pattern, 1);
        execv(prog, argv);
        fprintf(stderr, "memtrack: cannot run '%s': %s\n", prog, strerror(errno));
        _exit(127);
    }
    free(preload);
    struct sigaction ign = {.sa_handler = SIG_IGN}, old_int, old_quit;
    sigaction(SIGINT, &ign, &old_int);
    sigaction(SIGQUIT, &ign, &old_quit);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGQUIT, &old_quit, NULL);

    list_traces(dir, &after);
    for (size_t i = 0; i < after.n; i++) {
        if (in_set(&before, after.names[i]))
            continue;
        char **grown = realloc(*traces, (*ntraces + 1) * sizeof *grown);
        if (!grown)
            break;
        *traces = grown;
        char path[PATH_MAX * 2];
        snprintf(path, sizeof path, "%s/%s", dir, after.names[i]);
        (*traces)[(*ntraces)++] = strdup(path);
    }
    if (*ntraces > 1)
        qsort(*traces, *ntraces, sizeof **traces, cmp_str);
    free_set(&before);
    free_set(&after);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return WEXITSTATUS(status);
}

/* Runs `memtrack check --budget FILE` on the traces of the run. */
static int check_budget(const char *budget, const char *junit, bool github, char **traces, size_t ntraces)
{
    if (!ntraces)
        return MT_EXIT_BAD_INPUT; /* "no trace was written" is said already */
    char **args = calloc(ntraces + 8, sizeof *args);
    if (!args) {
        fprintf(stderr, "memtrack: out of memory\n");
        return MT_EXIT_BAD_INPUT;
    }
    int n = 0;
    args[n++] = (char *)"check";
    args[n++] = (char *)"--budget";
    args[n++] = (char *)budget;
    if (junit) {
        args[n++] = (char *)"--junit";
        args[n++] = (char *)junit;
    }
    if (github)
        args[n++] = (char *)"--github";
    args[n++] = (char *)"--";
    for (size_t k = 0; k < ntraces; k++)
        args[n++] = traces[k];
    int status = mt_cmd_check(n, args);
    free(args);
    return status;
}

int mt_cmd_run(int argc, char **argv)
{
    const char *output = NULL, *budget = NULL, *junit = NULL;
    bool github = false;
    int i = 1;
    for (; i < argc; i++) {
        if (!strcmp(argv[i], "--")) {
            i++;
            break;
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return MT_EXIT_OK;
        } else if (!strcmp(argv[i], "-o") || !strcmp(argv[i], "--output")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "memtrack run: %s needs a path\n", argv[i]);
                return MT_EXIT_BAD_INPUT;
            }
            output = argv[++i];
        } else if (!strcmp(argv[i], "--budget") || !strcmp(argv[i], "--junit")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "memtrack run: %s needs a file\n", argv[i]);
                return MT_EXIT_BAD_INPUT;
            }
            *(argv[i][2] == 'b' ? &budget : &junit) = argv[i + 1];
            i++;
        } else if (!strcmp(argv[i], "--github")) {
            github = true;
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "memtrack run: unknown option '%s'; see 'memtrack run --help'\n", argv[i]);
            return MT_EXIT_BAD_INPUT;
        } else {
            break;
        }
    }
    if (i >= argc) {
        fprintf(stderr, "memtrack run: no program given; see 'memtrack run --help'\n");
        return MT_EXIT_BAD_INPUT;
    }
    if ((junit || github) && !budget) {
        fprintf(stderr, "memtrack run: --junit and --github go with --budget\n");
        return MT_EXIT_BAD_INPUT;
    }
    if (budget) {
        /* A bad budget file must not cost a whole run to find out. */
        mt_budget_set_t set;
        char err[1024];
        if (mt__budget_load(budget, &set, err, sizeof err) < 0) {
            fprintf(stderr, "memtrack: %s\n", err);
            return MT_EXIT_BAD_INPUT;
        }
        mt__budget_set_free(&set);
    }
    char **traces;
    size_t ntraces;
    int status = mt__run_program(output, argv + i, &traces, &ntraces);
    if (status < 0)
        return MT_EXIT_BAD_INPUT;
    if (ntraces == 0)
        fprintf(stderr, "memtrack: no trace was written\n");
    for (size_t k = 0; k < ntraces; k++)
        fprintf(stderr, "memtrack: trace written to %s\n", traces[k]);
    if (budget && status == 0)
        status = check_budget(budget, junit, github, traces, ntraces);
    for (size_t k = 0; k < ntraces; k++)
        free(traces[k]);
    free(traces);
    return status;
}
