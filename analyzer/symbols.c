/* symbols.c - turns recorded return addresses into function, file and line with libdwfl.
 *
 * Each distinct ELF file of the trace's module map (same path, same recorded
 * build-id) gets its own offline Dwfl, opened on first use and reported at
 * load bias 0, so that the Dwfl's address space is the file's own virtual
 * address space. A recorded address A of module record M is looked up at
 * (A - 1) - M.base: the records carry the bias of each load, so a library
 * loaded, unloaded and loaded again elsewhere shares one Dwfl, modules that
 * were dlclosed before the end still symbolize, and two modules that occupied
 * the same addresses in different epochs never meet in one address space.
 * One Dwfl per file rather than per module record also keeps the number of
 * open files bounded by the number of distinct libraries.
 *
 * Before a file's symbols are trusted its build-id is compared with the one
 * recorded at load time. When the file is missing or has been rebuilt, the
 * build-id is looked up under the debug directories instead
 * (DIR/.build-id/xx/yyyy.debug, then DIR/.build-id/xx/yyyy); failing that the
 * module is shown as module+offset. The vdso, which has no file, is treated
 * like an address outside every module. Separate debug info of a trusted file is
 * found by dwfl_standard_find_debuginfo (build-id, .gnu_debuglink, and
 * debuginfod when the user set DEBUGINFOD_URLS). The debug path is
 * ":.debug:/usr/lib/debug", or MEMTRACK_DEBUGINFO_PATH when set (same syntax
 * as libdwfl's debuginfo_path).
 *
 * Names come from DWARF first: the chain of DIEs around the address gives the
 * inlined subroutines, innermost first, each followed by its caller at the
 * call site's file:line (what eu-addr2line -i prints); then from the ELF
 * symbol table. The CU of an address is found through .debug_aranges, or,
 * for files without them (clang does not emit them by default), through the
 * CUs' own address ranges. C++ names are demangled with __cxa_demangle, found at run
 * time (already loaded, or from libstdc++.so.6 through dlopen) so that the
 * analyzer does not link against libstdc++; without it, names stay mangled.
 *
 * Opening a file and reading its debug information (inflating compressed
 * sections, as Debian's libc6-dbg has them) is the slow part; a caller can
 * have it done in a thread while it does something else
 * (mt__symbolizer_warm_start).
 *
 * Results are cached twice: by (address, epoch), which is what callers ask,
 * and by (address, module record), so that the same address seen in many
 * epochs (every dlopen starts one) is resolved by libdw only once. Frames and
 * interned strings belong to the symbolizer.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <sched.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <dwarf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>

#include "internal.h"

#define DEFAULT_DEBUGINFO_PATH ":.debug:/usr/lib/debug"
/* Key of results for addresses outside every module, in the module cache. */
#define NO_MODULE UINT64_MAX
/* Inline chains deeper than this are cut: the innermost frames and the real
 * function are kept, the inlined frames just inside it dropped. */
#define MAX_INLINE_DEPTH 64

typedef char *(*cxa_demangle_fn)(const char *mangled, char *buf, size_t *len, int *status);

/* An address range of a compilation unit, in DWARF addresses. */
typedef struct cu_range {
    Dwarf_Addr lo, hi;
    Dwarf_Addr bias; /* Dwfl address = DWARF address + bias */
    Dwarf_Die *cudie;
} cu_range_t;

/* One distinct ELF file: path and the build-id recorded for it. */
typedef struct dfile {
    const char *path; /* interned */
    const uint8_t *build_id; /* owned by the trace */
    size_t build_id_len;
    Dwfl *dwfl;          /* NULL when no trustworthy file was found */
    Dwfl_Module *mod;
    GElf_Addr bias;      /* Dwfl address = ELF virtual address + bias */
    bool ranges_built;
    cu_range_t *ranges;  /* sorted by lo; built only when .debug_aranges fail */
    size_t nranges;
} dfile_t;

/* What the symbolizer knows about one module record of the trace. */
typedef struct modstate {
    bool opened;
    bool vdso;
    const char *path; /* interned */
    dfile_t *file;
} modstate_t;

/* A cache slot; frames == NULL marks a free slot. */
typedef struct slot {
    uint64_t k1, k2;
    mt_frame_t *frames;
    size_t n;
} slot_t;

typedef struct cache {
    slot_t *slots;
    size_t cap; /* a power of two, or 0 */
    size_t used;
} cache_t;

typedef struct intern {
    char **slots;
    size_t cap;
    size_t used;
} intern_t;

struct mt_symbolizer {
    const mt_trace_t *trace;
    const mt_module_t *modules;
    size_t nmodules;
    modstate_t *mods;
    dfile_t **files;
    size_t nfiles, files_cap;
    char *debuginfo_path;
    Dwfl_Callbacks callbacks; /* Dwfl keeps a pointer to it */
    cache_t by_epoch;         /* (address, epoch) -> frames owned by by_module */
    cache_t by_module;        /* (address, module index) -> frames, owner */
    intern_t strings;
    void *libstdcxx;          /* dlopen handle, or NULL */
    cxa_demangle_fn demangle;
    bool demangle_looked_up;
    mt_frame_t oom_frame; /* returned when even the result cannot be stored */
    pthread_t warmer;     /* see mt__symbolizer_warm_start */
    bool warming;
};

/* ---- hashing, caches and string interning ---- */

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

static uint64_t hash_pair(uint64_t a, uint64_t b) { return mix64(a ^ mix64(b + 0x9e3779b97f4a7c15ull)); }

static uint64_t hash_str(const char *p)
{
    uint64_t h = 0xcbf29ce484222325ull;
    while (*p) {
        h ^= (unsigned char)*p++;
        h *= 0x100000001b3ull;
    }
    return h;
}

static slot_t *cache_find(const cache_t *c, uint64_t k1, uint64_t k2)
{
    if (c->cap == 0)
        return NULL;
    size_t mask = c->cap - 1;
    for (size_t i = hash_pair(k1, k2) & mask;; i = (i + 1) & mask) {
        slot_t *sl = &c->slots[i];
        if (!sl->frames)
            return NULL;
        if (sl->k1 == k1 && sl->k2 == k2)
            return sl;
    }
}

static void cache_place(slot_t *slots, size_t cap, const slot_t *in)
{
    size_t mask = cap - 1;
    size_t i = hash_pair(in->k1, in->k2) & mask;
    while (slots[i].frames)
        i = (i + 1) & mask;
    slots[i] = *in;
}

/* Adds a key known to be absent. Returns 0 or -ENOMEM. */
static int cache_add(cache_t *c, uint64_t k1, uint64_t k2, mt_frame_t *frames, size_t n)
{
    if ((c->used + 1) * 2 > c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 256;
        slot_t *slots = calloc(cap, sizeof *slots);
        if (!slots)
            return -ENOMEM;
        for (size_t i = 0; i < c->cap; i++)
            if (c->slots[i].frames)
                cache_place(slots, cap, &c->slots[i]);
        free(c->slots);
        c->slots = slots;
        c->cap = cap;
    }
    slot_t in = { .k1 = k1, .k2 = k2, .frames = frames, .n = n };
    cache_place(c->slots, c->cap, &in);
    c->used++;
    return 0;
}

/* Returns the symbolizer's copy of str (the same pointer for equal strings),
 * or NULL for a NULL str or when out of memory. */
static const char *intern(mt_symbolizer_t *s, const char *str)
{
    if (!str)
        return NULL;
    intern_t *t = &s->strings;
    if ((t->used + 1) * 2 > t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 256;
        char **slots = calloc(cap, sizeof *slots);
        if (!slots)
            return NULL;
        for (size_t i = 0; i < t->cap; i++) {
            if (!t->slots[i])
                continue;
            size_t j = hash_str(t->slots[i]) & (cap - 1);
            while (slots[j])
                j = (j + 1) & (cap - 1);
            slots[j] = t->slots[i];
        }
        free(t->slots);
        t->slots = slots;
        t->cap = cap;
    }
    size_t mask = t->cap - 1;
    size_t i = hash_str(str) & mask;
    for (; t->slots[i]; i = (i + 1) & mask)
        if (strcmp(t->slots[i], str) == 0)
            return t->slots[i];
    char *copy = strdup(str);
    if (!copy)
        return NULL;
    t->slots[i] = copy;
    t->used++;
    return copy;
}

/* ---- demangling ---- */

static const char *demangled(mt_symbolizer_t *s, const char *name)
{
    if (!name || strncmp(name, "_Z", 2) != 0)
        return NULL;
    if (!s->demangle_looked_up) {
        s->demangle_looked_up = true;
        void *fn = dlsym(RTLD_DEFAULT, "__cxa_demangle");
        if (!fn) {
            s->libstdcxx = dlopen("libstdc++.so.6", RTLD_LAZY | RTLD_LOCAL);
            if (s->libstdcxx)
                fn = dlsym(s->libstdcxx, "__cxa_demangle");
        }
        s->demangle = (cxa_demangle_fn)fn;
    }
    if (!s->demangle)
        return NULL;
    int status = -1;
    char *out = s->demangle(name, NULL, NULL, &status);
    const char *r = status == 0 && out ? intern(s, out) : NULL;
    free(out);
    return r;
}

/* A display name for a (possibly mangled) symbol name. */
static const char *symbol_name(mt_symbolizer_t *s, const char *name)
{
    const char *d = demangled(s, name);
    return d ? d : intern(s, name);
}

/* ---- opening module files ---- */

static bool is_vdso(const char *path)
{
    if (!path || !path[0] || path[0] == '[')
        return true;
    return !strchr(path, '/') && (strstr(path, "vdso") || strstr(path, "linux-gate"));
}

/* Reports file_name alone in a new Dwfl and keeps it in f when its build-id
 * matches the recorded one (or none was recorded). Returns 0 or -ENOENT. */
static int try_file(mt_symbolizer_t *s, dfile_t *f, const char *file_name)
{
    /* Only regular files: opening a FIFO or a device could block or worse. */
    struct stat st;
    if (stat(file_name, &st) != 0 || !S_ISREG(st.st_mode))
        return -ENOENT;
    Dwfl *dwfl = dwfl_begin(&s->callbacks);
    if (!dwfl)
        return -ENOMEM;
    dwfl_report_begin(dwfl);
    /* ET_DYN with base 0 relative to p_vaddr: bias 0, ELF addresses as they are. */
    Dwfl_Module *mod = dwfl_report_elf(dwfl, f->path, file_name, -1, 0, true);
    if (dwfl_report_end(dwfl, NULL, NULL) != 0 || !mod)
        goto fail;
    GElf_Addr bias = 0;
    if (!dwfl_module_getelf(mod, &bias))
        goto fail;
    if (f->build_id_len > 0) {
        const unsigned char *bits = NULL;
        GElf_Addr vaddr = 0;
        int len = dwfl_module_build_id(mod, &bits, &vaddr);
        if (len <= 0 || (size_t)len != f->build_id_len || memcmp(bits, f->build_id, f->build_id_len) != 0)
            goto fail;
    }
    f->dwfl = dwfl;
    f->mod = mod;
    f->bias = bias;
    return 0;
fail:
    dwfl_end(dwfl);
    return -ENOENT;
}

/* Looks for the recorded build-id under every absolute directory of the
 * debug path. Returns 0 when a matching file was found, else -ENOENT. */
static int try_build_id(mt_symbolizer_t *s, dfile_t *f)
{
    if (f->build_id_len < 2 || f->build_id_len > 64)
        return -ENOENT;
    char hex[2 * 64 + 1];
    for (size_t i = 0; i < f->build_id_len; i++)
        snprintf(hex + 2 * i, 3, "%02x", f->build_id[i]);
    const char *p = s->debuginfo_path;
    while (*p) {
        const char *colon = strchr(p, ':');
        size_t len = colon ? (size_t)(colon - p) : strlen(p);
        if (len > 0 && (p[0] == '+' || p[0] == '-')) {
            p++;
            len--;
        }
        if (len > 0 && p[0] == '/' && len < 4096) {
            static const char *const suffixes[] = { ".debug", "" };
            for (size_t k = 0; k < 2; k++) {
                char path[4096 + 2 * 64 + 32];
                snprintf(path, sizeof path, "%.*s/.build-id/%.2s/%s%s", (int)len, p, hex, hex + 2,
                         suffixes[k]);
                if (try_file(s, f, path) == 0)
                    return 0;
            }
        }
        if (!colon)
            break;
        p = colon + 1;
    }
    return -ENOENT;
}

static dfile_t *find_or_open_file(mt_symbolizer_t *s, const mt_module_t *m, const char *path)
{
    for (size_t i = 0; i < s->nfiles; i++) {
        dfile_t *f = s->files[i];
        if (f->path == path && f->build_id_len == m->build_id_len &&
            (m->build_id_len == 0 || memcmp(f->build_id, m->build_id, m->build_id_len) == 0))
            return f;
    }
    if (s->nfiles == s->files_cap) {
        size_t cap = s->files_cap ? s->files_cap * 2 : 16;
        dfile_t **files = realloc(s->files, cap * sizeof *files);
        if (!files)
            return NULL;
        s->files = files;
        s->files_cap = cap;
    }
    dfile_t *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->path = path;
    f->build_id = m->build_id;
    f->build_id_len = m->build_id_len;
    if (try_file(s, f, path) != 0)
        try_build_id(s, f);
    s->files[s->nfiles++] = f;
    return f;
}

static modstate_t *module_state(mt_symbolizer_t *s, const mt_module_t *m, uint64_t *index)
{
    size_t i;
    if (m >= s->modules && m < s->modules + s->nmodules) {
        i = (size_t)(m - s->modules);
    } else {
        for (i = 0; i < s->nmodules && s->modules[i].id != m->id; i++)
            ;
        if (i == s->nmodules)
            return NULL;
    }
    modstate_t *ms = &s->mods[i];
    *index = i;
    if (!ms->opened) {
        ms->opened = true;
        ms->vdso = is_vdso(m->path);
        if (!ms->vdso) {
            ms->path = intern(s, m->path);
            if (ms->path)
                ms->file = find_or_open_file(s, m, ms->path);
        }
    }
    return ms;
}

/* ---- resolving one address ---- */

typedef struct chain {
    mt_frame_t frames[MAX_INLINE_DEPTH];
    size_t n;
} chain_t;

static void push(chain_t *c, const mt_frame_t *proto, const char *function, const char *file,
                 uint32_t line, bool inlined)
{
    if (c->n == MAX_INLINE_DEPTH)
        return;
    mt_frame_t *fr = &c->frames[c->n++];
    *fr = *proto;
    fr->function = function;
    fr->file = file;
    fr->line = line;
    fr->inlined = inlined;
}

static const char *die_function_name(mt_symbolizer_t *s, Dwarf_Die *die)
{
    Dwarf_Attribute attr;
    const char *linkage = dwarf_formstring(dwarf_attr_integrate(die, DW_AT_linkage_name, &attr));
    if (!linkage)
        linkage = dwarf_formstring(dwarf_attr_integrate(die, DW_AT_MIPS_linkage_name, &attr));
    const char *d = demangled(s, linkage);
    if (d)
        return d;
    /* The plain name is readable when demangling is not available. */
    const char *name = dwarf_formstring(dwarf_attr_integrate(die, DW_AT_name, &attr));
    return intern(s, name ? name : linkage);
}

static const char *symtab_name(mt_symbolizer_t *s, Dwfl_Module *mod, Dwarf_Addr pc)
{
    GElf_Off off = 0;
    GElf_Sym sym;
    const char *name = dwfl_module_addrinfo(mod, pc, &off, &sym, NULL, NULL, NULL);
    return name && name[0] ? symbol_name(s, name) : NULL;
}

static int compare_ranges(const void *a, const void *b)
{
    const cu_range_t *x = a, *y = b;
    Dwarf_Addr xa = x->lo + x->bias, ya = y->lo + y->bias;
    return xa < ya ? -1 : xa > ya;
}

static void sort_ranges(dfile_t *f)
{
    if (f->nranges > 1)
        qsort(f->ranges, f->nranges, sizeof *f->ranges, compare_ranges);
}

/* Builds f's table of CU ranges from the CU DIEs themselves. Returns 0 or
 * -ENOMEM (the table then holds what was gathered). */
static int build_cu_ranges(dfile_t *f)
{
    size_t cap = 0;
    Dwarf_Addr bias = 0;
    Dwarf_Die *cu = NULL;
    f->ranges_built = true;
    while ((cu = dwfl_module_nextcu(f->mod, cu, &bias)) != NULL) {
        Dwarf_Addr base, lo, hi;
        ptrdiff_t off = 0;
        while ((off = dwarf_ranges(cu, off, &base, &lo, &hi)) > 0) {
            if (lo >= hi)
                continue;
            if (f->nranges == cap) {
                size_t ncap = cap ? cap * 2 : 64;
                cu_range_t *r = realloc(f->ranges, ncap * sizeof *r);
                if (!r)
                    goto fail;
                f->ranges = r;
                cap = ncap;
            }
            f->ranges[f->nranges++] = (cu_range_t){ .lo = lo, .hi = hi, .bias = bias, .cudie = cu };
        }
    }
    sort_ranges(f);
    return 0;
fail:
    sort_ranges(f);
    return -ENOMEM;
}

/* The CU holding pc. libdwfl finds it through .debug_aranges, which some
 * compilers (clang by default) do not emit: then the CUs' own ranges are
 * searched. */
static Dwarf_Die *find_cu(dfile_t *f, Dwarf_Addr pc, Dwarf_Addr *bias)
{
    Dwarf_Die *cudie = dwfl_module_addrdie(f->mod, pc, bias);
    if (cudie)
        return cudie;
    if (!f->ranges_built)
        build_cu_ranges(f);
    size_t lo = 0, hi = f->nranges;
    while (lo < hi) { /* first range starting above pc */
        size_t mid = lo + (hi - lo) / 2;
        if (f->ranges[mid].lo + f->ranges[mid].bias <= pc)
            lo = mid + 1;
        else
            hi = mid;
    }
    /* Ranges rarely nest; a few steps back cover those that do. */
    for (size_t i = lo, steps = 0; i > 0 && steps < 8; i--, steps++) {
        const cu_range_t *r = &f->ranges[i - 1];
        if (pc - r->bias >= r->lo && pc - r->bias < r->hi) {
            *bias = r->bias;
            return r->cudie;
        }
    }
    return NULL;
}

/* Fills c with the source frames of pc (a Dwfl address of f), innermost
 * first; always at least one. */
static void resolve_in_file(mt_symbolizer_t *s, dfile_t *f, Dwarf_Addr pc, const mt_frame_t *proto,
                            chain_t *c)
{
    Dwarf_Addr bias = 0;
    Dwarf_Die *cudie = find_cu(f, pc, &bias);
    const char *file = NULL;
    uint32_t line = 0;
    Dwarf_Line *dl = cudie ? dwarf_getsrc_die(cudie, pc - bias) : NULL;
    if (dl) {
        int l = 0;
        const char *name = dwarf_linesrc(dl, NULL, NULL);
        if (name && dwarf_lineno(dl, &l) == 0) {
            file = intern(s, name);
            line = l > 0 ? (uint32_t)l : 0;
        }
    }

    /* dwarf_getscopes leaves an inlined instance for its abstract origin;
     * the chain of DIEs physically around the innermost scope is the one
     * that lists every inlined call and, last, the real function. */
    Dwarf_Die *scopes = NULL;
    int nscopes = 0;
    if (cudie && dwarf_getscopes(cudie, pc - bias, &scopes) > 0) {
        Dwarf_Die inner = scopes[0];
        free(scopes);
        scopes = NULL;
        nscopes = dwarf_getscopes_die(&inner, &scopes);
    }
    Dwarf_Files *files = NULL;
    bool have_files = false, done = false;
    for (int i = 0; i < nscopes && !done; i++) {
        Dwarf_Die *die = &scopes[i];
        switch (dwarf_tag(die)) {
        case DW_TAG_inlined_subroutine: {
            push(c, proto, die_function_name(s, die), file, line, true);
            Dwarf_Attribute attr;
            Dwarf_Word v;
            if (!have_files) {
                have_files = true;
                if (dwarf_getsrcfiles(cudie, &files, NULL) != 0)
                    files = NULL;
            }
            file = NULL;
            line = 0;
            if (files && dwarf_formudata(dwarf_attr(die, DW_AT_call_file, &attr), &v) == 0)
                file = intern(s, dwarf_filesrc(files, v, NULL, NULL));
            if (dwarf_formudata(dwarf_attr(die, DW_AT_call_line, &attr), &v) == 0)
                line = v <= UINT32_MAX ? (uint32_t)v : 0;
            break;
        }
        case DW_TAG_subprogram:
        case DW_TAG_entry_point: {
            const char *name = die_function_name(s, die);
            if (c->n == MAX_INLINE_DEPTH)
                c->n--;
            push(c, proto, name ? name : symtab_name(s, f->mod, pc), file, line, false);
            done = true;
            break;
        }
        default:
            break;
        }
    }
    free(scopes);
    if (!done) {
        /* Room for the real function even when the inline chain was cut. */
        if (c->n == MAX_INLINE_DEPTH)
            c->n--;
        push(c, proto, symtab_name(s, f->mod, pc), file, line, false);
    }
}

static void resolve(mt_symbolizer_t *s, uint64_t address, const mt_module_t *m, modstate_t *ms,
                    chain_t *c)
{
    mt_frame_t proto = { .address = address, .offset = address };
    if (!m || !ms || ms->vdso) {
        push(c, &proto, NULL, NULL, 0, false);
        return;
    }
    proto.module = ms->path;
    proto.offset = address - m->base;
    if (!ms->file || !ms->file->dwfl || address == 0) {
        push(c, &proto, NULL, NULL, 0, false);
        return;
    }
    /* A return address follows the call: the call itself is one byte back. */
    Dwarf_Addr pc = (address - 1 - m->base) + ms->file->bias;
    resolve_in_file(s, ms->file, pc, &proto, c);
}

/* ---- public functions ---- */

/* Creates a symbolizer over trace t's module map. Nothing is opened yet:
 * files are opened the first time one of their addresses is resolved. The
 * trace must outlive the symbolizer. Returns NULL when out of memory. */
mt_symbolizer_t *mt__symbolizer_new(const mt_trace_t *t)
{
    mt_symbolizer_t *s = calloc(1, sizeof *s);
    if (!s)
        goto fail;
    const mt_trace_info_t *info = mt__trace_info(t);
    s->trace = t;
    s->modules = info ? info->modules : NULL;
    s->nmodules = info && info->modules ? info->nmodules : 0;
    s->mods = calloc(s->nmodules ? s->nmodules : 1, sizeof *s->mods);
    if (!s->mods)
        goto fail;
    const char *env = getenv("MEMTRACK_DEBUGINFO_PATH");
    s->debuginfo_path = strdup(env && env[0] ? env : DEFAULT_DEBUGINFO_PATH);
    if (!s->debuginfo_path)
        goto fail;
    s->callbacks.find_elf = dwfl_build_id_find_elf;
    s->callbacks.find_debuginfo = dwfl_standard_find_debuginfo;
    s->callbacks.section_address = dwfl_offline_section_address;
    s->callbacks.debuginfo_path = &s->debuginfo_path;
    return s;
fail:
    mt__symbolizer_free(s);
    return NULL;
}

/* Frees the symbolizer: its Dwfl handles, cached frames and interned
 * strings. Pointers it returned are invalid afterwards. NULL is allowed. */
void mt__symbolizer_free(mt_symbolizer_t *s)
{
    if (!s)
        return;
    mt__symbolizer_warm_join(s);
    for (size_t i = 0; i < s->nfiles; i++) {
        if (s->files[i]->dwfl)
            dwfl_end(s->files[i]->dwfl);
        free(s->files[i]->ranges);
        free(s->files[i]);
    }
    free(s->files);
    for (size_t i = 0; i < s->by_module.cap; i++)
        free(s->by_module.slots[i].frames);
    free(s->by_module.slots);
    free(s->by_epoch.slots);
    for (size_t i = 0; i < s->strings.cap; i++)
        free(s->strings.slots[i]);
    free(s->strings.slots);
    if (s->libstdcxx)
        dlclose(s->libstdcxx);
    free(s->debuginfo_path);
    free(s->mods);
    free(s);
}

/* Resolves the return address `address` of a stack of epoch `epoch` into
 * *n >= 1 source frames, innermost (inlined) first, stored in *frames. The
 * frames and their strings belong to s and stay valid until it is freed;
 * the same (address, epoch) always yields the same pointer. Never fails:
 * missing files, stripped binaries and garbage addresses give a frame with
 * NULL function (and NULL module outside every module). Only when memory
 * runs out is a single frame returned that the next call overwrites. */
void mt__symbolize(mt_symbolizer_t *s, uint64_t address, uint64_t epoch, const mt_frame_t **frames,
                   size_t *n)
{
    slot_t *hit = cache_find(&s->by_epoch, address, epoch);
    if (hit) {
        *frames = hit->frames;
        *n = hit->n;
        return;
    }
    /* The call instruction, not the return address, decides the module:
     * a call can be the last instruction of a module. */
    const mt_module_t *m = mt__trace_module_for(s->trace, address ? address - 1 : 0, epoch);
    uint64_t index = NO_MODULE;
    modstate_t *ms = m ? module_state(s, m, &index) : NULL;
    if (!ms)
        index = NO_MODULE;

    hit = cache_find(&s->by_module, address, index);
    if (!hit) {
        chain_t c = { .n = 0 };
        resolve(s, address, ms ? m : NULL, ms, &c);
        mt_frame_t *copy = malloc(c.n * sizeof *copy);
        if (!copy)
            goto fail;
        memcpy(copy, c.frames, c.n * sizeof *copy);
        if (cache_add(&s->by_module, address, index, copy, c.n) != 0) {
            free(copy);
            goto fail;
        }
        hit = cache_find(&s->by_module, address, index);
    }
    /* A full epoch cache only costs a module lookup next time. */
    (void)cache_add(&s->by_epoch, address, epoch, hit->frames, hit->n);
    *frames = hit->frames;
    *n = hit->n;
    return;
fail:
    s->oom_frame = (mt_frame_t){ .address = address, .offset = address };
    *frames = &s->oom_frame;
    *n = 1;
}

/* ---- warming up while the replay runs ---- */

/* Stacks looked at for modules not yet opened: enough for every module a
 * program allocates from in practice, few enough to take no time. */
#define WARM_STACKS 4096u

/* Resolves one address of every module the first WARM_STACKS stacks pass
 * through, so that their files are open and their debug information read
 * (inflated, when its sections are compressed, as Debian's libc6-dbg is)
 * before anyone asks. */
static void *warm_main(void *arg)
{
    mt_symbolizer_t *s = arg;
    const mt_trace_info_t *info = mt__trace_info(s->trace);
    size_t left = s->nmodules;
    bool *seen = calloc(s->nmodules ? s->nmodules : 1, sizeof *seen);
    if (!seen)
        return NULL;
    for (uint32_t i = 0; i < info->nstacks && i < WARM_STACKS && left; i++) {
        const mt_stack_t *st = mt__trace_stack(s->trace, i);
        for (uint32_t d = 0; st && d < st->depth && left; d++) {
            uint64_t a = st->frames[d];
            const mt_module_t *m = mt__trace_module_for(s->trace, a ? a - 1 : 0, st->epoch);
            if (!m || seen[m - s->modules])
                continue;
            seen[m - s->modules] = true;
            left--;
            const mt_frame_t *frames;
            size_t n;
            mt__symbolize(s, a, st->epoch, &frames, &n);
        }
    }
    free(seen);
    return NULL;
}

/* Starts resolving, in a thread of its own, one address in each module the
 * trace's stacks use, which opens the files and reads their debug
 * information: the slow part of symbolizing, done while the caller replays
 * the trace on another CPU. Until mt__symbolizer_warm_join returns, the
 * caller must not use s; the trace may be read. Does nothing on a machine
 * with one CPU or when the thread cannot be started. */
void mt__symbolizer_warm_start(mt_symbolizer_t *s)
{
    cpu_set_t set;
    if (s->warming || sched_getaffinity(0, sizeof set, &set) != 0 || CPU_COUNT(&set) < 2)
        return;
    s->warming = pthread_create(&s->warmer, NULL, warm_main, s) == 0;
}

/* Waits for the thread mt__symbolizer_warm_start started, if any. */
void mt__symbolizer_warm_join(mt_symbolizer_t *s)
{
    if (s->warming)
        pthread_join(s->warmer, NULL);
    s->warming = false;
}
