/* test_symbols.c - tests of analyzer/symbols.c: return addresses to function, file and line.
 *
 * Real symbols come from this test binary itself (built with -g): its load
 * bias, address range and build-id are read with dl_iterate_phdr and written
 * as a MODULE record, and return addresses captured in known functions of
 * this file are resolved against known names and __LINE__ values. The
 * functions are noinline/noclone and do work after each call so that -O2
 * neither inlines nor tail-calls them away.
 */
#include <criterion/criterion.h>

#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <limits.h>
#include <link.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "trace_builder.h"

/* ---- known code ---- */

/* Kept out of line and uncloned, so the names and return addresses stay. */
#if defined(__clang__)
#define NOINLINE __attribute__((noinline))
#else
#define NOINLINE __attribute__((noinline, noclone))
#endif

static volatile int sink;

static NOINLINE uint64_t return_address(void)
{
    sink++;
    return (uint64_t)(uintptr_t)__builtin_return_address(0);
}

static NOINLINE uint64_t known_function(int *line)
{
    uint64_t r = return_address(); *line = __LINE__;
    sink++;
    return r;
}

static inline __attribute__((always_inline)) uint64_t inlined_helper(int *line)
{
    uint64_t r = return_address(); *line = __LINE__;
    sink++;
    return r;
}

static NOINLINE uint64_t inline_caller(int *inner, int *outer)
{
    uint64_t r = inlined_helper(inner); *outer = __LINE__;
    sink++;
    return r;
}

/* A function with an ELF symbol (a C++ one) but no debug info: it sits in a
 * section of its own, outside every compilation unit's ranges. It is never
 * called, only looked up. */
__asm__(".pushsection .text.mt_test_probe,\"ax\"\n"
        ".globl _ZN2mt4test5probeEv\n"
        ".type _ZN2mt4test5probeEv, STT_FUNC\n"
        "_ZN2mt4test5probeEv:\n"
        ".zero 16\n"
        ".size _ZN2mt4test5probeEv, 16\n"
        ".popsection\n");
void mt_test_probe(void) __asm__("_ZN2mt4test5probeEv");

/* ---- this executable's module record ---- */

typedef struct self {
    uint64_t base, start, end;
    uint8_t build_id[64];
    size_t build_id_len;
    char path[PATH_MAX];
} self_t;

static void read_build_id(const struct dl_phdr_info *info, const ElfW(Phdr) *ph, self_t *self)
{
    const uint8_t *p = (const uint8_t *)(info->dlpi_addr + ph->p_vaddr);
    const uint8_t *end = p + ph->p_filesz;
    size_t align = ph->p_align == 8 ? 8 : 4;
    while (p + sizeof(ElfW(Nhdr)) <= end) {
        const ElfW(Nhdr) *nh = (const ElfW(Nhdr) *)p;
        const uint8_t *name = p + sizeof *nh;
        const uint8_t *desc = name + ((nh->n_namesz + align - 1) & ~(align - 1));
        if (nh->n_type == NT_GNU_BUILD_ID && nh->n_namesz == 4 && memcmp(name, "GNU", 4) == 0 &&
            nh->n_descsz <= sizeof self->build_id && desc + nh->n_descsz <= end) {
            memcpy(self->build_id, desc, nh->n_descsz);
            self->build_id_len = nh->n_descsz;
            return;
        }
        p = desc + ((nh->n_descsz + align - 1) & ~(align - 1));
    }
}

static int find_self(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    self_t *self = data;
    uint64_t lo = UINT64_MAX, hi = 0;
    uint64_t probe = (uint64_t)(uintptr_t)&known_function;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD)
            continue;
        uint64_t s = info->dlpi_addr + ph->p_vaddr;
        if (s < lo)
            lo = s;
        if (s + ph->p_memsz > hi)
            hi = s + ph->p_memsz;
    }
    if (probe < lo || probe >= hi)
        return 0;
    self->base = info->dlpi_addr;
    self->start = lo;
    self->end = hi;
    for (int i = 0; i < info->dlpi_phnum; i++)
        if (info->dlpi_phdr[i].p_type == PT_NOTE && self->build_id_len == 0)
            read_build_id(info, &info->dlpi_phdr[i], self);
    return 1;
}

static self_t get_self(void)
{
    self_t self;
    memset(&self, 0, sizeof self);
    cr_assert_eq(dl_iterate_phdr(find_self, &self), 1, "test executable not found");
    ssize_t len = readlink("/proc/self/exe", self.path, sizeof self.path - 1);
    cr_assert(len > 0);
    self.path[len] = '\0';
    cr_assert(self.build_id_len > 0, "test executable has no build-id");
    return self;
}

/* ---- helpers ---- */

static mt_trace_t *open_trace(mt_tb_t *b)
{
    mt_tb_end(b, 0, 0, 0, 0, 0);
    char *path = mt_tb_write_temp(b);
    cr_assert_not_null(path);
    mt_trace_t *t = NULL;
    char err[512] = "";
    int rc = mt__trace_open(path, &t, err, sizeof err);
    cr_assert_eq(rc, 0, "mt__trace_open: %s", err);
    unlink(path);
    free(path);
    mt_tb_destroy(b);
    return t;
}

/* A trace whose only module is this executable, loaded at epoch 0. */
static mt_trace_t *self_trace(const self_t *self)
{
    mt_tb_t *b = mt_tb_new();
    mt_tb_module(b, 1, 0, self->base, self->start, self->end, self->path, self->build_id,
                 self->build_id_len);
    return open_trace(b);
}

static const char *basename_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

static void expect_source(const mt_frame_t *f, const char *function, int line, bool inlined)
{
    cr_assert_not_null(f->function);
    cr_expect_str_eq(f->function, function);
    cr_assert_not_null(f->file, "no file for %s", function);
    cr_expect_str_eq(basename_of(f->file), "test_symbols.c");
    cr_expect_eq(f->line, (uint32_t)line, "%s: line %u, expected %d", function, f->line, line);
    cr_expect_eq(f->inlined, inlined);
}

/* One frame that names the module but nothing inside it. */
/* Symbolizes ra, the return address inline_caller gave, and expects its
 * two frames: inlined_helper at line inner, inlined into inline_caller at
 * line outer. Returns the frames (valid until the next call on s). */
static const mt_frame_t *expect_inline_pair(mt_symbolizer_t *s, uint64_t ra, int inner, int outer)
{
    const mt_frame_t *fr = NULL;
    size_t n = 0;
    mt__symbolize(s, ra, 0, &fr, &n);
    cr_assert_eq(n, 2);
    expect_source(&fr[0], "inlined_helper", inner, true);
    expect_source(&fr[1], "inline_caller", outer, false);
    return fr;
}

static void expect_module_offset(const mt_frame_t *fr, size_t n, uint64_t address, const char *module,
                                 uint64_t offset)
{
    cr_assert_eq(n, 1);
    cr_expect_null(fr[0].function);
    cr_expect_null(fr[0].file);
    cr_expect_eq(fr[0].line, 0);
    cr_assert_not_null(fr[0].module);
    cr_expect_str_eq(fr[0].module, module);
    cr_expect_eq(fr[0].address, address);
    cr_expect_eq(fr[0].offset, offset);
    cr_expect_not(fr[0].inlined);
}

static void expect_outside(const mt_frame_t *fr, size_t n, uint64_t address)
{
    cr_assert_eq(n, 1);
    cr_expect_null(fr[0].function);
    cr_expect_null(fr[0].file);
    cr_expect_eq(fr[0].line, 0);
    cr_expect_null(fr[0].module);
    cr_expect_eq(fr[0].address, address);
    cr_expect_eq(fr[0].offset, address);
}

static void hermetic(void)
{
    /* No network lookups, and no system debug directory: only what the tests set up. */
    unsetenv("DEBUGINFOD_URLS");
    setenv("MEMTRACK_DEBUGINFO_PATH", "/nonexistent/memtrack-test-debug", 1);
}

TestSuite(symbols, .init = hermetic);

/* ---- tests ---- */

Test(symbols, return_address_resolves_to_function_file_and_line)
{
    self_t self = get_self();
    int line = 0;
    uint64_t ra = known_function(&line);
    mt_trace_t *t = self_trace(&self);
    mt_symbolizer_t *s = mt__symbolizer_new(t);
    cr_assert_not_null(s);

    const mt_frame_t *fr = NULL;
    size_t n = 0;
    mt__symbolize(s, ra, 0, &fr, &n);
    cr_assert_eq(n, 1);
    expect_source(&fr[0], "known_function", line, false);
    cr_expect_str_eq(fr[0].module, self.path);
    cr_expect_eq(fr[0].address, ra);
    cr_expect_eq(fr[0].offset, ra - self.base);

    mt__symbolizer_free(s);
    mt__trace_close(t);
}

Test(symbols, inlined_call_shows_the_inlined_frame_then_its_caller)
{
    self_t self = get_self();
    int inner = 0, outer = 0;
    uint64_t ra = inline_caller(&inner, &outer);
    mt_trace_t *t = self_trace(&self);
    mt_symbolizer_t *s = mt__symbolizer_new(t);
    cr_assert_not_null(s);

    const mt_frame_t *fr = expect_inline_pair(s, ra, inner, outer);
    for (size_t i = 0; i < 2; i++) {
        cr_expect_eq(fr[i].address, ra);
        cr_expect_eq(fr[i].offset, ra - self.base);
        cr_expect_str_eq(fr[i].module, self.path);
    }

    mt__symbolizer_free(s);
    mt__trace_close(t);
}

Test(symbols, symbol_table_name_is_used_and_demangled_without_debug_info)
{
    self_t self = get_self();
    uint64_t ra = (uint64_t)(uintptr_t)&mt_test_probe + 8;
    mt_trace_t *t = self_trace(&self);
    mt_symbolizer_t *s = mt__symbolizer_new(t);
    cr_assert_not_null(s);

    /* The symbolizer demangles when libstdc++ can be found at run time. */
    void *cxx = dlopen("libstdc++.so.6", RTLD_LAZY | RTLD_LOCAL);
    const char *expected = cxx ? "mt::test::probe()" : "_ZN2mt4test5probeEv";
    const mt_frame_t *fr = NULL;
    size_t n = 0;
    mt__symbolize(s, ra, 0, &fr, &n);
    cr_assert_eq(n, 1);
    cr_assert_not_null(fr[0].function);
    cr_expect_str_eq(fr[0].function, expected);
    cr_expect_null(fr[0].file);
    cr_expect_eq(fr[0].line, 0);
    cr_expect_str_eq(fr[0].module, self.path);
    cr_expect_eq(fr[0].offset, ra - self.base);
    if (cxx)
        dlclose(cxx);

    mt__symbolizer_free(s);
    mt__trace_close(t);
}

Test(symbols, missing_module_file_falls_back_to_module_and_offset)
{
    static const uint8_t id[20] = { 0xfe, 0xed, 0xfa, 0xce, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 };
    mt_tb_t *b = mt_tb_new();
    mt_tb_module(b, 1, 0, 0x7f0000000000, 0x7f0000001000, 0x7f0000009000, "/nonexistent/libgone.so", id,
                 sizeof id);
    mt_trace_t *t = open_trace(b);
    mt_symbolizer_t *s = mt__symbolizer_new(t);
    cr_assert_not_null(s);

    const mt_frame_t *fr = NULL;
    size_t n = 0;
    mt__symbolize(s, 0x7f0000001234, 0, &fr, &n);
    expect_module_offset(fr, n, 0x7f0000001234, "/nonexistent/libgone.so", 0x1234);

    mt__symbolizer_free(s);
    mt__trace_close(t);
}

/* Writes an ELF file of this machine with one PT_LOAD and no sections at all:
 * no symbol table, no debug info, no build-id. */
static void write_sectionless_elf(const char *path)
{
    ElfW(Ehdr) eh;
    int fd = open("/proc/self/exe", O_RDONLY);
    cr_assert(fd >= 0);
    cr_assert_eq(read(fd, &eh, sizeof eh), (ssize_t)sizeof eh);
    close(fd);
    eh.e_type = ET_DYN;
    eh.e_entry = 0;
    eh.e_phoff = sizeof eh;
    eh.e_shoff = 0;
    eh.e_phentsize = sizeof(ElfW(Phdr));
    eh.e_phnum = 1;
    eh.e_shentsize = 0;
    eh.e_shnum = 0;
    eh.e_shstrndx = SHN_UNDEF;
    ElfW(Phdr) ph;
    memset(&ph, 0, sizeof ph);
    ph.p_type = PT_LOAD;
    ph.p_flags = PF_R | PF_X;
    ph.p_offset = 0;
    ph.p_vaddr = 0;
    ph.p_paddr = 0;
    ph.p_filesz = 4096;
    ph.p_memsz = 4096;
    ph.p_align = 4096;
    uint8_t image[4096];
    memset(image, 0, sizeof image);
    memcpy(image, &eh, sizeof eh);
    memcpy(image + sizeof eh, &ph, sizeof ph);
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(image, 1, sizeof image, f), sizeof image);
    cr_assert_eq(fclose(f), 0);
}

Test(symbols, module_without_any_symbols_falls_back_to_module_and_offset)
{
    char path[] = "/tmp/mt-test-symbols-XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    close(fd);
    write_sectionless_elf(path);

    mt_tb_t *b = mt_tb_new();
    mt_tb_module(b, 1, 0, 0x500000000, 0x500000000, 0x500001000, path, NULL, 0);
    mt_trace_t *t = open_trace(b);
    mt_symbolizer_t *s = mt__symbolizer_new(t);
    cr_assert_not_null(s);

    const mt_frame_t *fr = NULL;
    size_t n = 0;
    mt__symbolize(s, 0x500000100, 0, &fr, &n);
    expect_module_offset(fr, n, 0x500000100, path, 0x100);

    mt__symbolizer_free(s);
    mt__trace_close(t);
    unlink(path);
}

Test(symbols, module_file_that_is_not_elf_falls_back_to_module_and_offset)
{
    char path[] = "/tmp/mt-test-symbols-XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    cr_assert_eq(write(fd, "not an ELF file\n", 16), 16);
    close(fd);

    mt_tb_t *b = mt_tb_new();
    mt_tb_module(b, 1, 0, 0x500000000, 0x500000000, 0x500001000, path, NULL, 0);
    mt_trace_t *t = open_trace(b);
    mt_symbolizer_t *s = mt__symbolizer_new(t);
    cr_assert_not_null(s);

    const mt_frame_t *fr = NULL;
    size_t n = 0;
    mt__symbolize(s, 0x500000100, 0, &fr, &n);
    expect_module_offset(fr, n, 0x500000100, path, 0x100);

    mt__symbolizer_free(s);
    mt__trace_close(t);
    unlink(path);
}

Test(symbols, module_file_with_another_build_id_is_not_trusted)
{
    self_t self = get_self();
    int line = 0;
    uint64_t ra = known_function(&line);
    uint8_t other[sizeof self.build_id];
    memcpy(other, self.build_id, self.build_id_len);
    other[0] ^= 0xff;

    mt_tb_t *b = mt_tb_new();
    mt_tb_module(b, 1, 0, self.base, self.start, self.end, self.path, other, self.build_id_len);
    mt_trace_t *t = open_trace(b);
    mt_symbolizer_t *s = mt__symbolizer_new(t);
    cr_assert_not_null(s);

    const mt_frame_t *fr = NULL;
    size_t n = 0;
    mt__symbolize(s, ra, 0, &fr, &n);
    expect_module_offset(fr, n, ra, self.path, ra - self.base);

    mt__symbolizer_free(s);
    mt__trace_close(t);
}

Test(symbols, missing_module_file_is_found_by_build_id_in_the_debug_directory)
{
    self_t self = get_self();
    int line = 0;
    uint64_t ra = known_function(&line);

    char dir[] = "/tmp/mt-test-debug-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char hex[2 * sizeof self.build_id + 1];
    for (size_t i = 0; i < self.build_id_len; i++)
        snprintf(hex + 2 * i, 3, "%02x", self.build_id[i]);
    char sub[64], sub2[64], link_path[256];
    snprintf(sub, sizeof sub, "%s/.build-id", dir);
    snprintf(sub2, sizeof sub2, "%s/.build-id/%.2s", dir, hex);
    snprintf(link_path, sizeof link_path, "%s/.build-id/%.2s/%s.debug", dir, hex, hex + 2);
    cr_assert_eq(mkdir(sub, 0700), 0);
    cr_assert_eq(mkdir(sub2, 0700), 0);
    cr_assert_eq(symlink(self.path, link_path), 0);
    setenv("MEMTRACK_DEBUGINFO_PATH", dir, 1);

    mt_tb_t *b = mt_tb_new();
    mt_tb_module(b, 1, 0, self.base, self.start, self.end, "/nonexistent/memtrack-test-exe", self.build_id,
                 self.build_id_len);
    mt_trace_t *t = open_trace(b);
    mt_symbolizer_t *s = mt__symbolizer_new(t);
    cr_assert_not_null(s);

    const mt_frame_t *fr = NULL;
    size_t n = 0;
    mt__symbolize(s, ra, 0, &fr, &n);
    unlink(link_path);
    rmdir(sub2);
    rmdir(sub);
    rmdir(dir);
    cr_assert_eq(n, 1);
    expect_source(&fr[0], "known_function", line, false);
    cr_expect_str_eq(fr[0].module, "/nonexistent/memtrack-test-exe");
    cr_expect_eq(fr[0].offset, ra - self.base);

    mt__symbolizer_free(s);
    mt__trace_close(t);
}

Test(symbols, address_outside_every_module_has_no_module)
{
    self_t self = get_self();
    mt_trace_t *t = self_trace(&self);
    mt_symbolizer_t *s = mt__symbolizer_new(t);
    cr_assert_not_null(s);

    static const uint64_t addrs[] = { 0, 1, 0x10, 0xdeadbeef00000000ull, UINT64_MAX };
    for (size_t i = 0; i < sizeof addrs / sizeof addrs[0]; i++) {
        const mt_frame_t *fr = NULL;
        size_t n = 0;
        mt__symbolize(s, addrs[i], 0, &fr, &n);
        expect_outside(fr, n, addrs[i]);
    }
    /* Just past the end of the module. */
    const mt_frame_t *fr = NULL;
    size_t n = 0;
    mt__symbolize(s, self.end + 1, 0, &fr, &n);
    expect_outside(fr, n, self.end + 1);

    mt__symbolizer_free(s);
    mt__trace_close(t);
}

Test(symbols, vdso_module_is_shown_as_outside_every_module)
{
    mt_tb_t *b = mt_tb_new();
    mt_tb_module(b, 1, 0, 0x7ffff7fc1000, 0x7ffff7fc1000, 0x7ffff7fc3000, "linux-vdso.so.1", NULL, 0);
    mt_tb_module(b, 2, 0, 0x7ffff8000000, 0x7ffff8000000, 0x7ffff8002000, "[vdso]", NULL, 0);
    mt_trace_t *t = open_trace(b);
    mt_symbolizer_t *s = mt__symbolizer_new(t);
    cr_assert_not_null(s);

    const mt_frame_t *fr = NULL;
    size_t n = 0;
    mt__symbolize(s, 0x7ffff7fc1a00, 0, &fr, &n);
    expect_outside(fr, n, 0x7ffff7fc1a00);
    mt__symbolize(s, 0x7ffff8000a00, 0, &fr, &n);
    expect_outside(fr, n, 0x7ffff8000a00);

    mt__symbolizer_free(s);
    mt__trace_close(t);
}

Test(symbols, unloaded_module_symbolizes_only_stacks_of_earlier_epochs)
{
    self_t self = get_self();
    int line = 0;
    uint64_t ra = known_function(&line);
    mt_tb_t *b = mt_tb_new();
    mt_tb_module(b, 1, 0, self.base, self.start, self.end, self.path, self.build_id, self.build_id_len);
    mt_tb_unload(b, 1, 1);
    uint64_t frames[1] = { ra };
    mt_tb_stack(b, 1, 0, frames, 1);
    mt_tb_stack(b, 2, 1, frames, 1);
    mt_trace_t *t = open_trace(b);
    mt_symbolizer_t *s = mt__symbolizer_new(t);
    cr_assert_not_null(s);

    const mt_frame_t *fr = NULL;
    size_t n = 0;
    mt__symbolize(s, ra, 1, &fr, &n);
    expect_outside(fr, n, ra);
    mt__symbolize(s, ra, 0, &fr, &n);
    cr_assert_eq(n, 1);
    expect_source(&fr[0], "known_function", line, false);
    cr_expect_str_eq(fr[0].module, self.path);

    mt__symbolizer_free(s);
    mt__trace_close(t);
}

Test(symbols, same_address_in_two_epochs_belongs_to_two_different_modules)
{
    self_t self = get_self();
    int line = 0;
    uint64_t ra = known_function(&line);
    mt_tb_t *b = mt_tb_new();
    mt_tb_module(b, 1, 0, self.base, self.start, self.end, self.path, self.build_id, self.build_id_len);
    mt_tb_unload(b, 1, 1);
    mt_tb_module(b, 2, 1, self.start, self.start, self.end, "/nonexistent/libother.so", NULL, 0);
    mt_trace_t *t = open_trace(b);
    mt_symbolizer_t *s = mt__symbolizer_new(t);
    cr_assert_not_null(s);

    const mt_frame_t *fr = NULL;
    size_t n = 0;
    mt__symbolize(s, ra, 1, &fr, &n);
    expect_module_offset(fr, n, ra, "/nonexistent/libother.so", ra - self.start);
    mt__symbolize(s, ra, 0, &fr, &n);
    cr_assert_eq(n, 1);
    expect_source(&fr[0], "known_function", line, false);
    cr_expect_str_eq(fr[0].module, self.path);
    mt__symbolize(s, ra, 2, &fr, &n);
    expect_module_offset(fr, n, ra, "/nonexistent/libother.so", ra - self.start);

    mt__symbolizer_free(s);
    mt__trace_close(t);
}

Test(symbols, repeated_lookups_return_the_same_cached_frames)
{
    self_t self = get_self();
    int inner = 0, outer = 0, line = 0;
    uint64_t ra1 = inline_caller(&inner, &outer);
    uint64_t ra2 = known_function(&line);
    mt_trace_t *t = self_trace(&self);
    mt_symbolizer_t *s = mt__symbolizer_new(t);
    cr_assert_not_null(s);

    const mt_frame_t *a = NULL, *b = NULL, *c = NULL;
    size_t na = 0, nb = 0, nc = 0;
    mt__symbolize(s, ra1, 0, &a, &na);
    mt__symbolize(s, ra2, 0, &c, &nc);
    mt__symbolize(s, ra1, 0, &b, &nb);
    cr_expect_eq(a, b);
    cr_expect_eq(na, nb);
    cr_expect_neq(a, c);
    /* Another epoch of the same module gives the same frames, strings included. */
    mt__symbolize(s, ra1, 7, &b, &nb);
    cr_assert_eq(nb, 2);
    cr_expect_eq(b[0].function, a[0].function);
    cr_expect_eq(b[1].function, a[1].function);
    cr_expect_eq(b[1].file, a[1].file);
    cr_expect_eq(b[1].line, (uint32_t)outer);

    mt__symbolizer_free(s);
    mt__trace_close(t);
}

Test(symbols, warming_up_in_a_thread_gives_the_same_frames)
{
    self_t self = get_self();
    int inner = 0, outer = 0, line = 0;
    uint64_t ra1 = inline_caller(&inner, &outer);
    uint64_t ra2 = known_function(&line);
    mt_tb_t *b = mt_tb_new();
    mt_tb_module(b, 1, 0, self.base, self.start, self.end, self.path, self.build_id, self.build_id_len);
    uint64_t frames[3] = {0x10, ra2, ra1}; /* the first outside every module */
    mt_tb_stack(b, 0, 0, frames, 3);
    mt_trace_t *t = open_trace(b);
    mt_symbolizer_t *s = mt__symbolizer_new(t);
    cr_assert_not_null(s);

    mt__symbolizer_warm_start(s);
    mt__symbolizer_warm_start(s); /* a second start while warming does nothing */
    mt__symbolizer_warm_join(s);
    expect_inline_pair(s, ra1, inner, outer);
    const mt_frame_t *fr = NULL;
    size_t n = 0;
    mt__symbolize(s, ra2, 0, &fr, &n);
    cr_assert_eq(n, 1);
    expect_source(&fr[0], "known_function", line, false);
    mt__symbolizer_warm_join(s); /* joining twice is harmless */
    mt__symbolizer_free(s);

    /* Freed while warming: the free waits for the thread. */
    s = mt__symbolizer_new(t);
    cr_assert_not_null(s);
    mt__symbolizer_warm_start(s);
    mt__symbolizer_free(s);
    mt__trace_close(t);
}

Test(symbols, many_addresses_all_resolve_once_each)
{
    self_t self = get_self();
    int line = 0;
    uint64_t ra = known_function(&line);
    mt_trace_t *t = self_trace(&self);
    mt_symbolizer_t *s = mt__symbolizer_new(t);
    cr_assert_not_null(s);

    /* Enough distinct keys to grow the caches several times; garbage inside
     * the module must not crash either. */
    enum { N = 3000 };
    static const mt_frame_t *first[N];
    for (int round = 0; round < 2; round++) {
        for (uint64_t i = 0; i < N; i++) {
            uint64_t addr = self.start + (i * 97) % (self.end - self.start);
            const mt_frame_t *fr = NULL;
            size_t n = 0;
            mt__symbolize(s, addr, i % 3, &fr, &n);
            cr_assert(n >= 1);
            cr_assert_eq(fr[0].address, addr);
            if (round == 0)
                first[i] = fr;
            else
                cr_assert_eq(fr, first[i]);
        }
    }
    const mt_frame_t *fr = NULL;
    size_t n = 0;
    mt__symbolize(s, ra, 0, &fr, &n);
    cr_assert_eq(n, 1);
    expect_source(&fr[0], "known_function", line, false);

    mt__symbolizer_free(s);
    mt__trace_close(t);
}
