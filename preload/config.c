/* config.c - reads libmemtrack.so's MEMTRACK_* environment variables.
 *
 * Read once at start with secure_getenv, parsed strictly: a value that is not
 * entirely valid gets one warning naming the variable and the default used.
 * docs/configuration.md lists every variable.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

mt_config_t mt__config;

static void warn_bad(const char *name, const char *value, const char *expected)
{
    char line[512];
    size_t n = 0;
    const char *parts[] = {"ignoring ", name, "='", value, "': expected ", expected};
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
        for (const char *s = parts[i]; *s && n < sizeof line - 1; s++)
            line[n++] = *s;
    line[n] = '\0';
    mt__say(line);
}

/* Parses a whole decimal number in [lo, hi]; false when anything is off. */
static bool parse_ulong(const char *s, unsigned long lo, unsigned long hi, unsigned long *out)
{
    unsigned long v = 0;
    if (!*s)
        return false;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return false;
        if (v > (hi - (unsigned long)(*s - '0')) / 10)
            return false;
        v = v * 10 + (unsigned long)(*s - '0');
    }
    if (v < lo)
        return false;
    *out = v;
    return true;
}

static unsigned long get_ulong(const char *name, unsigned long lo, unsigned long hi,
                               unsigned long def, const char *expected)
{
    const char *s = secure_getenv(name);
    unsigned long v;
    if (!s)
        return def;
    if (parse_ulong(s, lo, hi, &v))
        return v;
    warn_bad(name, s, expected);
    return def;
}

static int parse_signal(const char *s)
{
    static const struct {
        const char *name;
        int sig;
    } names[] = {{"SIGUSR1", SIGUSR1}, {"SIGUSR2", SIGUSR2}, {"SIGPROF", SIGPROF},
                 {"SIGWINCH", SIGWINCH}, {"SIGURG", SIGURG}};
    unsigned long v;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(s, names[i].name) || !strcmp(s, names[i].name + 3))
            return names[i].sig;
    if (parse_ulong(s, 1, (unsigned long)SIGRTMAX, &v) && v != SIGKILL && v != SIGSTOP &&
        v != SIGSEGV && v != SIGBUS)
        return (int)v;
    return -1;
}

void mt__config_load(void)
{
    mt_config_t *c = &mt__config;
    const char *s = secure_getenv("MEMTRACK_OUTPUT");
    if (s && *s && strlen(s) < sizeof c->output)
        strcpy(c->output, s);
    else {
        if (s)
            warn_bad("MEMTRACK_OUTPUT", s, "a path shorter than 4096 bytes");
        strcpy(c->output, "memtrack.%e.%p.mtrace");
    }
    c->depth = (unsigned)get_ulong("MEMTRACK_DEPTH", 1, MT_MAX_DEPTH, 64, "an integer from 1 to 256");
    unsigned long ring = get_ulong("MEMTRACK_RING_EVENTS", 1024, 1u << 24, 32768,
                                   "a power of two from 1024 to 16777216");
    if (ring & (ring - 1)) {
        warn_bad("MEMTRACK_RING_EVENTS", secure_getenv("MEMTRACK_RING_EVENTS"),
                 "a power of two from 1024 to 16777216");
        ring = 32768;
    }
    c->ring_events = (unsigned)ring;
    c->ring_wait_ms = (unsigned)get_ulong("MEMTRACK_RING_WAIT_MS", 0, 600000, 10000,
                                          "milliseconds from 0 to 600000");
    c->sample_bytes = get_ulong("MEMTRACK_SAMPLE_BYTES", 0, 1ul << 40, 0,
                                "a byte count from 0 (record all) to 1099511627776");
    s = secure_getenv("MEMTRACK_UNWIND");
    c->unwind_fp = false;
    c->unwind_libunwind = false;
    if (s && !strcmp(s, "fp"))
        c->unwind_fp = true;
    else if (s && !strcmp(s, "libunwind"))
        c->unwind_libunwind = true;
    else if (s && strcmp(s, "cfi") != 0)
        warn_bad("MEMTRACK_UNWIND", s, "cfi, libunwind or fp");
    s = secure_getenv("MEMTRACK_SNAPSHOT_SIGNAL");
    c->snapshot_signal = 0;
    if (s && *s) {
        int sig = parse_signal(s);
        if (sig > 0)
            c->snapshot_signal = sig;
        else
            warn_bad("MEMTRACK_SNAPSHOT_SIGNAL", s, "a signal name such as SIGUSR2, or a number");
    }
    c->snapshot_interval_ms = (unsigned)get_ulong("MEMTRACK_SNAPSHOT_INTERVAL_MS", 1, 86400000, 0,
                                                  "milliseconds from 1 to 86400000");
    c->compress = (int)get_ulong("MEMTRACK_COMPRESS", 0, 19, 1, "a zstd level from 1 to 19, or 0 for none");
    c->fault_mmap = get_ulong("MEMTRACK_FAULT_MMAP", 1, ~0ul, 0, "a call number");
    c->fault_open = get_ulong("MEMTRACK_FAULT_OPEN", 1, ~0ul, 0, "a call number");
    c->fault_write = get_ulong("MEMTRACK_FAULT_WRITE", 1, ~0ul, 0, "a call number");
}
