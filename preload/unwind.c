/* unwind.c - captures the call stack of an allocation.
 *
 * Three unwinders. The default on x86-64 is a walk driven by the DWARF call
 * frame information (.eh_frame) that caches, per return address, the one
 * thing it needs to step over that frame: where the canonical frame address
 * (CFA) is (the stack pointer or the frame pointer plus an offset), where the
 * return address and the caller's frame pointer were saved. A repeated
 * return address costs a table probe and two loads; only the first sight of
 * an address parses its FDE (found through _dl_find_object and the
 * .eh_frame_hdr search table). Once a walk reaches a frame the previous walk
 * passed through (or one at the same place that steps alike) and the stack
 * words that walk read from there outwards are unchanged, the rest is
 * copied from it (see mt__cfi_walk). A walk that would start where a kept
 * earlier walk started, over words that still hold, is not made at all:
 * its interned stack id is known (mt__unwind_known). Every load is checked
 * against the thread's stack bounds, and whatever the walk cannot handle
 * exactly (a signal frame, a CFA expression, code without unwind
 * information, a stack outside the thread's known stack) falls back to
 * libunwind's unw_backtrace for that stack, so the recorded frames are the
 * same either way.
 * MEMTRACK_UNWIND=fp walks frame pointers, for programs built with
 * -fno-omit-frame-pointer. Frames inside libmemtrack.so itself are dropped,
 * so the first recorded frame is always the return address into the code
 * that called the allocation function.
 */
#define UNW_LOCAL_ONLY
#include <dlfcn.h>
#include <libunwind.h>
#include <link.h>
#include <string.h>

#include "internal.h"

/* Weak: on a C library older than glibc 2.35 every stack goes to libunwind. */
#pragma weak _dl_find_object

static uintptr_t self_lo, self_hi;

#ifdef MT_UNWIND_VERIFY
#include <stdio.h>
/* The test build's counts (see mt__unwind_verify). */
static _Atomic uint64_t verify_walks, verify_unlike, verify_same_place, verify_in_place, verify_known;
#define VERIFY_COUNT(c) atomic_fetch_add_explicit(&(c), 1, memory_order_relaxed)
#else
#define VERIFY_COUNT(c) ((void)0)
#endif

/* Bumped when a module is unloaded: every cached rule may be stale. */
static _Atomic uint32_t rule_generation = 1;

static int find_self(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    uintptr_t addr = (uintptr_t)data;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD)
            continue;
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr, hi = lo + ph->p_memsz;
        if (addr >= lo && addr < hi) {
            self_lo = info->dlpi_addr;
            self_hi = 0;
            for (int j = 0; j < info->dlpi_phnum; j++) {
                const ElfW(Phdr) *q = &info->dlpi_phdr[j];
                uintptr_t end = info->dlpi_addr + q->p_vaddr + q->p_memsz;
                if (q->p_type == PT_LOAD && end > self_hi)
                    self_hi = end;
            }
            return 1;
        }
    }
    return 0;
}

void mt__unwind_init(void)
{
    unw_set_caching_policy(unw_local_addr_space, UNW_CACHE_PER_THREAD);
    dl_iterate_phdr(find_self, (void *)(uintptr_t)&mt__unwind_init);
}

void mt__unwind_flush(void)
{
    unw_flush_cache(unw_local_addr_space, 0, 0);
    atomic_fetch_add_explicit(&rule_generation, 1, memory_order_release);
}

static uint32_t fp_walk(uint64_t *frames, uint32_t max)
{
    const mt_tls_t *t = &mt__tls;
    uintptr_t *fp = __builtin_frame_address(0);
    uint32_t n = 0;
    if (!t->stack_hi && !mt__stack_bounds())
        return 0;
    while (n < max) {
        if ((uintptr_t)fp < t->stack_lo || (uintptr_t)fp + 2 * sizeof(uintptr_t) > t->stack_hi ||
            ((uintptr_t)fp & (sizeof(uintptr_t) - 1)))
            break;
        uintptr_t ret = fp[1];
        uintptr_t *next = (uintptr_t *)fp[0];
        if (ret < 4096)
            break;
        frames[n++] = ret;
        if (next <= fp)
            break;
        fp = next;
    }
    return n;
}

#if defined(__x86_64__)

/* ---- the cached CFI walk ---- */

enum { RULE_EMPTY = 0, RULE_STEP = 1, RULE_END = 2, RULE_FAIL = 3 };
enum { DW_RBP = 6, DW_RSP = 7, DW_RA = 16 };

/* How to step over the frame of one return address. */
typedef struct uw_rule {
    uint64_t ip;
    union {
        struct {
            int32_t cfa_off;   /* CFA = (cfa_rbp ? rbp : sp) + cfa_off */
            int16_t rbp_off;   /* the caller's rbp is at CFA + rbp_off; 0: unchanged */
            int8_t ra_off;     /* the return address is at CFA + ra_off */
            uint8_t kind : 2;  /* RULE_* */
            uint8_t cfa_rbp : 1;
        };
        uint64_t how; /* all of the above: equal for rules that step alike */
    };
} uw_rule_t;

_Static_assert(sizeof(uw_rule_t) == 16, "a rule is 16 bytes");

#define RULE_SLOTS 8192u /* per ring, direct-mapped: 128 KiB */
#define SEEN_MAX (MT_MAX_DEPTH + 8) /* frames of a walk */
#define CHK_MAX (2 * SEEN_MAX)       /* stack words it reads: a return address and maybe rbp per frame */

/* How a walk ended at its outermost frame. */
enum { SEEN_END = 0, SEEN_ZERO = 1, SEEN_TRUNC = 2 };

/* A stack word a step read, and what it held. */
typedef struct uw_check {
    const uint64_t *at;
    uint64_t val;
} uw_check_t;

/* The previous walk, anchored at the end of its arrays: the outermost frame
 * is at position SEEN_MAX - 1, the innermost at start. A frame's state is
 * its return address, the stack pointer and rbp there; the words read to
 * step over the frames at positions p and outwards are chk[first_chk[p] ..
 * CHK_MAX); fold[p] is the stack fold (mt__stack_fold) of ip[SEEN_MAX - 1]
 * down to ip[p]. Frames are added and dropped only at the inner end, so
 * the remembered outer part never moves. */
typedef struct uw_seen {
    uint32_t start;   /* SEEN_MAX: nothing remembered */
    uint32_t end;     /* SEEN_*: how the walk ended at position SEEN_MAX - 1 */
    uintptr_t lo, hi; /* the stack bounds its steps were checked against */
    uint64_t ip[SEEN_MAX], sp[SEEN_MAX + 1], rbp[SEEN_MAX]; /* sp[SEEN_MAX] = UINTPTR_MAX */
    uint64_t fold[SEEN_MAX + 1];      /* [SEEN_MAX] = MT_STACK_FOLD_SEED */
    uint16_t first_chk[SEEN_MAX + 1]; /* [SEEN_MAX] = CHK_MAX */
    uint8_t needs_rbp[SEEN_MAX]; /* the walk from this frame outwards depends on its rbp */
    uint64_t how[SEEN_MAX];      /* the rule that stepped over the frame (uw_rule_t.how), 0: none */
    uw_check_t chk[CHK_MAX];
} uw_seen_t;

/* The frames the current walk stepped itself, innermost first (their
 * return addresses are the walk's output), with the words each step read:
 * ra_at NULL for a frame not stepped over, rbp_at NULL when the step left
 * rbp as it was. */
typedef struct uw_fresh {
    uint64_t sp[SEEN_MAX], rbp[SEEN_MAX];
    const uint64_t *ra_at[SEEN_MAX], *rbp_at[SEEN_MAX];
    uint64_t ra[SEEN_MAX], rbpv[SEEN_MAX];
    uint64_t how[SEEN_MAX]; /* the frame's rule (uw_rule_t.how), 0 when not stepped over */
} uw_fresh_t;

/* Whole walks the thread made, each keyed by the state it started from
 * (the allocating function's return address, stack pointer and, when the
 * walk depended on it, rbp), with every stack word it read and the id its
 * stack was interned as. A walk from the same state over words that still
 * hold what they held is that walk again (the argument of mt__cfi_walk's
 * join, made at the first frame), so its stack id is known without walking
 * or interning: mt__unwind_known. Programs mostly allocate from a few call
 * paths in turn: sqlite from two that alternate and share no inner frame,
 * python from about sixteen. Two ways per set, the one used last kept. */
#ifdef MT_UNWIND_VERIFY
#define KNOWN_SETS 2u /* the test build: walks from many starts meet in a set, so every key compare counts */
#else
#define KNOWN_SETS 64u
#endif
#define KNOWN_WAYS 2u
#define KNOWN_CHK 60u /* words a known walk may have read: deeper walks are not kept */

typedef struct uw_known {
    uint64_t ip, sp, rbp; /* ip 0: empty */
    uint64_t epoch;       /* mt__epoch when its stack was interned */
    uint32_t id;          /* the ring's stack id */
    uint16_t nchk;
    uint8_t needs_rbp;
    uw_check_t chk[KNOWN_CHK]; /* innermost first: a changed word is mostly there */
} uw_known_t;

typedef struct uw_cache {
    uint32_t generation;
    bool walked; /* the last mt__cfi_walk succeeded and seen holds it from its first frame */
    uw_seen_t seen;
    uw_fresh_t fresh;
    uint8_t known_last[KNOWN_SETS]; /* the way of each set used last */
    uw_known_t known[KNOWN_SETS][KNOWN_WAYS];
    uw_rule_t rules[RULE_SLOTS];
} uw_cache_t;

/* One column's rule while the CFA program runs. */
typedef struct cfa_state {
    int cfa_reg;
    int64_t cfa_off;
    int rbp_how, ra_how; /* 0 same value / unset, 1 at CFA+off, 2 undefined, 3 unsupported */
    int64_t rbp_off, ra_off;
} cfa_state_t;

typedef struct reader {
    const uint8_t *p, *end;
    int bad;
} reader_t;

static uint64_t rd_uleb(reader_t *r)
{
    uint64_t v = 0;
    unsigned shift = 0;
    while (r->p < r->end) {
        uint8_t b = *r->p++;
        if (shift < 64)
            v |= (uint64_t)(b & 0x7f) << shift;
        shift += 7;
        if (!(b & 0x80))
            return v;
    }
    r->bad = 1;
    return 0;
}

static int64_t rd_sleb(reader_t *r)
{
    int64_t v = 0;
    unsigned shift = 0;
    uint8_t b = 0;
    while (r->p < r->end) {
        b = *r->p++;
        if (shift < 64)
            v |= (int64_t)((uint64_t)(b & 0x7f) << shift);
        shift += 7;
        if (!(b & 0x80)) {
            if (shift < 64 && (b & 0x40))
                v |= -(int64_t)((uint64_t)1 << shift);
            return v;
        }
    }
    r->bad = 1;
    return 0;
}

static uint64_t rd_fixed(reader_t *r, unsigned n)
{
    uint64_t v = 0;
    if ((size_t)(r->end - r->p) < n) {
        r->bad = 1;
        return 0;
    }
    memcpy(&v, r->p, n); /* little-endian */
    r->p += n;
    return v;
}

/* Reads a pointer in DW_EH_PE encoding enc; pcrel is relative to the field,
 * datarel to dbase. Indirect pointers and unknown formats are errors. */
static uint64_t rd_encoded(reader_t *r, uint8_t enc, uint64_t dbase)
{
    uint64_t at = (uint64_t)(uintptr_t)r->p, v;
    if (enc == 0xff)
        return 0;
    switch (enc & 0x0f) {
    case 0x00: v = rd_fixed(r, 8); break;
    case 0x01: v = rd_uleb(r); break;
    case 0x02: v = rd_fixed(r, 2); break;
    case 0x03: v = rd_fixed(r, 4); break;
    case 0x04: v = rd_fixed(r, 8); break;
    case 0x09: v = (uint64_t)rd_sleb(r); break;
    case 0x0a: v = (uint64_t)(int64_t)(int16_t)rd_fixed(r, 2); break;
    case 0x0b: v = (uint64_t)(int64_t)(int32_t)rd_fixed(r, 4); break;
    case 0x0c: v = rd_fixed(r, 8); break;
    default: r->bad = 1; return 0;
    }
    switch (enc & 0x70) {
    case 0x00: break;
    case 0x10: v += at; break;
    case 0x30: v += dbase; break;
    default: r->bad = 1; return 0;
    }
    if (enc & 0x80)
        r->bad = 1;
    return v;
}

/* Runs CFA instructions [p, end) up to target, starting from *s. init is the
 * CIE's state (for DW_CFA_restore). Returns 0, or -1 for anything the walk
 * does not model exactly. */
static int run_cfa(reader_t *r, uint64_t loc, uint64_t target, uint64_t code_align, int64_t data_align,
                   cfa_state_t *s, const cfa_state_t *init)
{
    cfa_state_t saved[8];
    int nsaved = 0;
    while (r->p < r->end && !r->bad) {
        uint8_t op = *r->p++;
        uint64_t reg, delta = 0;
        int64_t off;
        switch (op >> 6) {
        case 1:
            delta = (op & 0x3f) * code_align;
            goto advance;
        case 2:
            reg = op & 0x3f;
            off = (int64_t)rd_uleb(r) * data_align;
            goto set_offset;
        case 3:
            reg = op & 0x3f;
            goto restore;
        }
        switch (op) {
        case 0x00: break; /* nop */
        case 0x01: return -1; /* set_loc: not emitted by GCC or Clang */
        case 0x02: delta = rd_fixed(r, 1) * code_align; goto advance;
        case 0x03: delta = rd_fixed(r, 2) * code_align; goto advance;
        case 0x04: delta = rd_fixed(r, 4) * code_align; goto advance;
        case 0x05: reg = rd_uleb(r); off = (int64_t)rd_uleb(r) * data_align; goto set_offset;
        case 0x06: reg = rd_uleb(r); goto restore;
        case 0x07: reg = rd_uleb(r); if (reg == DW_RA) s->ra_how = 2; else if (reg == DW_RBP) s->rbp_how = 3; break;
        case 0x08: reg = rd_uleb(r); if (reg == DW_RBP) s->rbp_how = 0; else if (reg == DW_RA) return -1; break;
        case 0x09: reg = rd_uleb(r); rd_uleb(r); if (reg == DW_RBP || reg == DW_RA) return -1; break;
        case 0x0a: if (nsaved == 8) return -1; saved[nsaved++] = *s; break;
        case 0x0b: /* restore_state: the CFA rule too, as GCC's epilogues expect */
            if (!nsaved) return -1;
            *s = saved[--nsaved];
            break;
        case 0x0c: s->cfa_reg = (int)rd_uleb(r); s->cfa_off = (int64_t)rd_uleb(r); break;
        case 0x0d: s->cfa_reg = (int)rd_uleb(r); break;
        case 0x0e: s->cfa_off = (int64_t)rd_uleb(r); break;
        case 0x0f: return -1; /* def_cfa_expression */
        case 0x10: case 0x16: { /* expression, val_expression */
            reg = rd_uleb(r);
            uint64_t len = rd_uleb(r);
            if (reg == DW_RBP || reg == DW_RA || len > (uint64_t)(r->end - r->p))
                return -1;
            r->p += len;
            break;
        }
        case 0x11: reg = rd_uleb(r); off = rd_sleb(r) * data_align; goto set_offset;
        case 0x12: s->cfa_reg = (int)rd_uleb(r); s->cfa_off = rd_sleb(r) * data_align; break;
        case 0x13: s->cfa_off = rd_sleb(r) * data_align; break;
        case 0x14: case 0x15: /* val_offset(_sf) */
            reg = rd_uleb(r);
            if (op == 0x14) rd_uleb(r); else rd_sleb(r);
            if (reg == DW_RBP || reg == DW_RA) return -1;
            break;
        case 0x2e: rd_uleb(r); break; /* GNU_args_size */
        case 0x2f: reg = rd_uleb(r); off = -(int64_t)rd_uleb(r) * data_align; goto set_offset;
        default: return -1;
        }
        continue;
    advance:
        loc += delta;
        if (loc > target)
            return 0;
        continue;
    set_offset:
        if (reg == DW_RBP) {
            s->rbp_how = 1;
            s->rbp_off = off;
        } else if (reg == DW_RA) {
            s->ra_how = 1;
            s->ra_off = off;
        }
        continue;
    restore:
        if (!init)
            return -1;
        if (reg == DW_RBP) {
            s->rbp_how = init->rbp_how;
            s->rbp_off = init->rbp_off;
        } else if (reg == DW_RA) {
            s->ra_how = init->ra_how;
            s->ra_off = init->ra_off;
        }
    }
    return r->bad ? -1 : 0;
}

/* Finds the FDE covering ip (a return address: the call is at ip - 1) and
 * turns its CFA program into a rule. */
static void compute_rule(uint64_t ip, uw_rule_t *out)
{
    struct dl_find_object dlfo;
    uint64_t target = ip - 1;
    out->kind = RULE_FAIL;
    if (!_dl_find_object || _dl_find_object((void *)(uintptr_t)target, &dlfo) != 0 || !dlfo.dlfo_eh_frame)
        return;
    /* .eh_frame_hdr: version, eh_frame_ptr enc, fde_count enc, table enc. */
    const uint8_t *hdr = dlfo.dlfo_eh_frame;
    if (hdr[0] != 1 || hdr[3] != 0x3b)
        return;
    reader_t r = {hdr + 4, hdr + 4 + 16, 0};
    uint64_t hbase = (uint64_t)(uintptr_t)hdr;
    rd_encoded(&r, hdr[1], hbase);
    uint64_t count = rd_encoded(&r, hdr[2], hbase);
    if (r.bad || !count)
        return;
    const int32_t *table = (const int32_t *)(const void *)r.p;
    uint64_t lo = 0, hi = count;
    while (hi - lo > 1) {
        uint64_t mid = (lo + hi) / 2;
        if (hbase + (int64_t)table[2 * mid] <= target)
            lo = mid;
        else
            hi = mid;
    }
    if (hbase + (int64_t)table[2 * lo] > target)
        return;
    const uint8_t *fde = (const uint8_t *)(uintptr_t)(hbase + (int64_t)table[2 * lo + 1]);
    uint32_t fde_len, cie_off;
    memcpy(&fde_len, fde, 4);
    memcpy(&cie_off, fde + 4, 4);
    if (fde_len == 0 || fde_len == 0xffffffffu || cie_off == 0)
        return;
    const uint8_t *cie = fde + 4 - cie_off;
    uint32_t cie_len, cie_id;
    memcpy(&cie_len, cie, 4);
    memcpy(&cie_id, cie + 4, 4);
    if (cie_len == 0 || cie_len == 0xffffffffu || cie_id != 0)
        return;
    /* The CIE. */
    reader_t c = {cie + 8, cie + 4 + cie_len, 0};
    uint8_t version = (uint8_t)rd_fixed(&c, 1);
    const char *aug = (const char *)c.p;
    size_t aug_len = strnlen(aug, (size_t)(c.end - c.p));
    c.p += aug_len + 1;
    if (version != 1 && version != 3)
        return;
    if (aug_len && aug[0] != 'z')
        return;
    uint64_t code_align = rd_uleb(&c);
    int64_t data_align = rd_sleb(&c);
    uint64_t ra_reg = version == 1 ? rd_fixed(&c, 1) : rd_uleb(&c);
    uint8_t fde_enc = 0;
    if (ra_reg != DW_RA)
        return;
    if (aug_len) {
        uint64_t alen = rd_uleb(&c);
        const uint8_t *aend = c.p + alen;
        for (size_t i = 1; i < aug_len && !c.bad; i++) {
            switch (aug[i]) {
            case 'L': rd_fixed(&c, 1); break;
            case 'R': fde_enc = (uint8_t)rd_fixed(&c, 1); break;
            case 'P': {
                uint8_t enc = (uint8_t)rd_fixed(&c, 1);
                rd_encoded(&c, (uint8_t)(enc & 0x7f), 0);
                break;
            }
            default: return; /* 'S' (signal frame) and the unknown: libunwind's job */
            }
        }
        if (c.bad || aend > c.end)
            return;
        c.p = aend;
    }
    cfa_state_t init = {DW_RSP, 8, 0, 0, 0, 0};
    if (run_cfa(&c, 0, 0, code_align, data_align, &init, NULL) != 0)
        return;
    /* The FDE. */
    reader_t f = {fde + 8, fde + 4 + fde_len, 0};
    uint64_t start = rd_encoded(&f, fde_enc, 0);
    uint64_t range = rd_encoded(&f, (uint8_t)(fde_enc & 0x0f), 0);
    if (f.bad || target < start || target - start >= range)
        return;
    if (aug_len) {
        uint64_t alen = rd_uleb(&f);
        if (f.bad || alen > (uint64_t)(f.end - f.p))
            return;
        f.p += alen;
    }
    cfa_state_t s = init;
    /* Initial instructions run to completion; the FDE's up to the target. */
    if (run_cfa(&f, start, target, code_align, data_align, &s, &init) != 0)
        return;
    if (s.ra_how == 2) {
        out->kind = RULE_END;
        return;
    }
    if ((s.cfa_reg != DW_RSP && s.cfa_reg != DW_RBP) || s.ra_how != 1 || s.rbp_how > 1 ||
        s.cfa_off < 0 || s.cfa_off > INT32_MAX || s.ra_off < -128 || s.ra_off > -8 ||
        (s.rbp_how == 1 && (s.rbp_off < -32768 || s.rbp_off >= 0)))
        return;
    out->cfa_off = (int32_t)s.cfa_off;
    out->cfa_rbp = s.cfa_reg == DW_RBP;
    out->ra_off = (int8_t)s.ra_off;
    out->rbp_off = s.rbp_how == 1 ? (int16_t)s.rbp_off : 0;
    out->kind = RULE_STEP;
}

static void seen_forget(uw_seen_t *s)
{
    s->start = SEEN_MAX;
    s->first_chk[SEEN_MAX] = CHK_MAX;
    s->fold[SEEN_MAX] = MT_STACK_FOLD_SEED;
    s->sp[SEEN_MAX] = UINTPTR_MAX; /* ends the search for a remembered frame */
}

/* Forgets every known walk. */
static void known_forget(uw_cache_t *c)
{
    for (uint32_t i = 0; i < KNOWN_SETS; i++)
        for (uint32_t w = 0; w < KNOWN_WAYS; w++)
            c->known[i][w].ip = 0;
}

static uw_cache_t *cache_get(mt_ring_t *r)
{
    uw_cache_t *c = r->uw_cache;
    uint32_t gen = atomic_load_explicit(&rule_generation, memory_order_acquire);
    if (MT_UNLIKELY(!c)) {
        c = mt__os_map(sizeof *c); /* zeroed: every slot empty */
        if (!c)
            return NULL;
        seen_forget(&c->seen);
        c->generation = gen;
        r->uw_cache = c;
    } else if (MT_UNLIKELY(c->generation != gen)) {
        memset(c->rules, 0, sizeof c->rules);
        seen_forget(&c->seen); /* its steps followed rules that may be stale */
        known_forget(c);
        c->generation = gen;
    }
    return c;
}

/* Checks the words read to step over the remembered frames at positions
 * [p, ok) in the order a walk from p would read them, innermost first, up
 * to the first that changed. Returns p when all still hold what they held;
 * otherwise the position just outside the frame whose word changed (a walk
 * from p passes the remembered frames up to that one). No word past a
 * changed one is read: beyond a changed return address lies another stack,
 * perhaps no longer mapped. */
static uint32_t seen_unchanged_from(const uw_seen_t *s, uint32_t p, uint32_t ok)
{
    const uw_check_t *c = &s->chk[s->first_chk[p]], *end = &s->chk[s->first_chk[ok]];
    for (; c != end; c++) {
        if (MT_UNLIKELY(*c->at != c->val)) {
            uint32_t j = (uint32_t)(c - s->chk), q = p;
            while (s->first_chk[q + 1] <= j)
                q++;
            return q + 1;
        }
    }
    return p;
}

/* Makes this walk the remembered one: its n fresh frames (return addresses
 * in frames), followed, when join < SEEN_MAX, by the remembered frames from
 * position join outwards that it reused. A frame's walk outwards depends on
 * its rbp when its CFA is based on rbp, or when its step leaves rbp as it
 * is and the caller's walk depends on it; the rbp a step read is only
 * checked later when the caller's walk depends on it. */
static void remember(uw_seen_t *s, const uw_fresh_t *f, const uint64_t *frames, uint32_t n, uint32_t join,
                     uint32_t end)
{
    if (n > join) {
        seen_forget(s); /* deeper than can be remembered */
        return;
    }
    uint32_t start = join - n, c = s->first_chk[join];
    uint32_t needs = join < SEEN_MAX ? s->needs_rbp[join] : end == SEEN_TRUNC;
    uint64_t fold = s->fold[join];
    for (uint32_t i = n; i-- > 0;) {
        uint32_t d = start + i;
        if (f->ra_at[i]) {
            if (f->rbp_at[i] && needs)
                s->chk[--c] = (uw_check_t){f->rbp_at[i], f->rbpv[i]};
            s->chk[--c] = (uw_check_t){f->ra_at[i], f->ra[i]};
            needs = (uw_rule_t){.how = f->how[i]}.cfa_rbp | (needs & !f->rbp_at[i]);
        } else {
            needs = 0; /* not stepped over: the rule says it is the outermost frame */
        }
        fold = mt__stack_fold(fold, frames[i]);
        s->ip[d] = frames[i];
        s->sp[d] = f->sp[i];
        s->rbp[d] = f->rbp[i];
        s->fold[d] = fold;
        s->first_chk[d] = (uint16_t)c;
        s->needs_rbp[d] = (uint8_t)needs;
        s->how[d] = f->how[i];
    }
    s->start = start;
    if (join == SEEN_MAX)
        s->end = end;
}

/* Returns the cached rule for return address ip, computing it on a miss. */
static inline const uw_rule_t *rule_for(uw_cache_t *c, uintptr_t ip)
{
    uw_rule_t *rule = &c->rules[(ip ^ (ip >> 13)) & (RULE_SLOTS - 1)];
    if (MT_UNLIKELY(rule->ip != ip)) { /* ip is never 0: an empty slot never matches */
        uw_rule_t fresh = {0};
        compute_rule(ip, &fresh);
        fresh.ip = ip;
        *rule = fresh;
    }
    return rule;
}

/* Steps from the state (*ip, *sp, *rbp) over its frame with a RULE_STEP
 * rule, to the caller's state. Sets *ra_at to where the return address was
 * read, *rbp_at to where rbp was (NULL: left as it was). Returns 0, or -1
 * when a load would leave the stack or the frame makes no sense. */
static inline int step_over(const uw_rule_t *rule, uintptr_t hi, uintptr_t *ip, uintptr_t *sp, uintptr_t *rbp,
                            uintptr_t *ra_at, uintptr_t *rbp_at)
{
    uintptr_t cfa = (rule->cfa_rbp ? *rbp : *sp) + (uintptr_t)(intptr_t)rule->cfa_off;
    if (cfa <= *sp || cfa > hi || (cfa & 7))
        return -1;
    *ra_at = cfa + (uintptr_t)(intptr_t)rule->ra_off;
    if (*ra_at < *sp)
        return -1;
    *rbp_at = 0;
    if (rule->rbp_off) {
        *rbp_at = cfa + (uintptr_t)(intptr_t)rule->rbp_off;
        if (*rbp_at < *sp)
            return -1;
        *rbp = *(const uintptr_t *)*rbp_at;
    }
    *ip = *(const uintptr_t *)*ra_at;
    *sp = cfa;
    return 0;
}

/* Walks the stack with cached rules from the first frame outside the
 * library into frames, or, when the walk's outer part is the remembered
 * walk's and fits whole, sets *out to the remembered frames, where the
 * stack then lies in place. Returns the frame count, or -1 when libunwind
 * must do it.
 *
 * A walk is a function of the state it starts from (return address, stack
 * pointer, rbp), the rules and the stack words it reads. So once this walk
 * reaches a state the previous walk passed through (rbp compared only when
 * the rest of that walk depended on it), and every word the previous walk
 * read from there outwards still holds what it held, the rest of the walk
 * is the previous one's: it is copied instead of stepped. A state with
 * another return address at the same stack pointer counts as well when its
 * rule is the same: the step computes the same CFA and reads the same words,
 * so it reaches the same caller's state; only that frame's return address
 * differs. That is the usual case where two stacks part: the same function
 * called the allocating code from another site, and it saves a step.
 * Programs with deep stacks (interpreters, recursions) mostly allocate with
 * a changing inner and an unchanged outer part. */
int mt__cfi_walk(uint64_t *frames, uint32_t max, const uint64_t **out, const uint64_t **folds,
                 const mt_unwind_from_t *start)
{
    mt_tls_t *t = &mt__tls;
    if (!t->ring || (MT_UNLIKELY(!t->stack_hi) && !mt__stack_bounds()))
        return -1;
    uw_cache_t *c = cache_get(t->ring);
    if (!c)
        return -1;
    c->walked = false;
    const uintptr_t lo = t->stack_lo, hi = t->stack_hi;
    const uintptr_t *fp = __builtin_frame_address(0);
    uintptr_t ip = fp[1], sp = (uintptr_t)(fp + 2), rbp = fp[0];
    if (start && start->sp > sp && start->sp < hi) {
        /* The hook read its caller's state from its own frame: no rule
         * lookups to step over this function and the hook. */
        ip = start->ip;
        sp = start->sp;
        rbp = start->rbp;
    }
    uint32_t n = 0, end;
    *folds = NULL;
    if (sp < lo || sp >= hi)
        return -1;
    uintptr_t ra_at, rbp_at;
    /* The library's own frames are not recorded: stepped over, not remembered. */
    while (ip >= self_lo && ip < self_hi) {
        const uw_rule_t *rule = rule_for(c, ip);
        if (rule->kind != RULE_STEP || step_over(rule, hi, &ip, &sp, &rbp, &ra_at, &rbp_at) != 0)
            return -1;
    }
    uw_seen_t *s = &c->seen;
    uw_fresh_t *f = &c->fresh;
    if (MT_UNLIKELY(s->lo != lo || s->hi != hi)) {
        seen_forget(s);
        known_forget(c); /* their words may lie outside this thread's stack */
        s->lo = lo;
        s->hi = hi;
    }
    uint32_t k = s->start; /* the innermost remembered frame not below sp */
    uint32_t ok = SEEN_MAX; /* remembered frames from here outwards are unchanged */
    for (;;) {
        const uw_rule_t *rule = NULL;
        while (s->sp[k] < sp)
            k++;
        /* A frame at the remembered frame's place whose return address
         * differs (mostly: the same function calling from another site)
         * steps alike when its rule does: the same CFA, the same words
         * read, so the same caller's state. */
        bool same = false;
        if (s->sp[k] == sp && (!s->needs_rbp[k] || s->rbp[k] == rbp) &&
            ((same = s->ip[k] == ip) || ((rule = rule_for(c, ip))->kind == RULE_STEP && rule->how == s->how[k]))) {
            uint32_t from = k < ok ? seen_unchanged_from(s, k, ok) : k;
            /* A walk cut short at max frames is only known up to where it stopped. */
            if (from == k && (s->end != SEEN_TRUNC || n + (SEEN_MAX - k) >= max)) {
                uint32_t m = SEEN_MAX - k < max - n ? SEEN_MAX - k : max - n;
                if (!same) {
                    VERIFY_COUNT(verify_same_place);
                    s->ip[k] = ip;
                    s->fold[k] = mt__stack_fold(s->fold[k + 1], ip);
                }
                if (m == SEEN_MAX - k && n <= k) {
                    /* Remembered whole: the stack is the remembered one's
                     * outer part below this walk's fresh frames, in place. */
                    remember(s, f, frames, n, k, 0);
                    c->walked = true;
                    VERIFY_COUNT(verify_in_place);
                    *out = &s->ip[s->start];
                    *folds = &s->fold[s->start];
                    return (int)(n + m);
                }
                memcpy(frames + n, &s->ip[k], m * sizeof *frames);
                remember(s, f, frames, n, k, 0);
                c->walked = true;
                return (int)(n + m);
            }
            /* Unchanged from k outwards (but cut short): no need to check
             * again. Changed: the walk steps on; remembered frames inside
             * the changed one would fail the same check. */
            if (from == k)
                ok = k;
            k = from;
        }
        if (n == max) {
            end = SEEN_TRUNC;
            break;
        }
        f->sp[n] = sp;
        f->rbp[n] = rbp;
        uint32_t i = n;
        frames[n++] = ip;
        if (!rule)
            rule = rule_for(c, ip);
        if (rule->kind != RULE_STEP) {
            if (rule->kind != RULE_END)
                return -1;
            f->ra_at[i] = NULL;
            f->how[i] = 0;
            end = SEEN_END;
            break;
        }
        if (step_over(rule, hi, &ip, &sp, &rbp, &ra_at, &rbp_at) != 0)
            return -1;
        f->how[i] = rule->how;
        f->rbp_at[i] = (const uint64_t *)rbp_at;
        f->rbpv[i] = rbp;
        f->ra_at[i] = (const uint64_t *)ra_at;
        f->ra[i] = ip;
        if (ip == 0) {
            end = SEEN_ZERO; /* the outermost frame says so */
            break;
        }
    }
    remember(s, f, frames, n, SEEN_MAX, end);
    if (s->start == SEEN_MAX - n)
        *folds = &s->fold[s->start];
    c->walked = true;
    return (int)n;
}

static inline uw_known_t *known_set(uw_cache_t *c, uint64_t ip, uint64_t sp, uint32_t *set)
{
    /* Middle bits of the product: its top bits barely move between call
     * sites 144 bytes apart (a Fibonacci number, against the golden ratio). */
    *set = (uint32_t)(((ip ^ (sp << 20)) * 0x9E3779B97F4A7C15ull) >> 40) & (KNOWN_SETS - 1);
    return c->known[*set];
}

/* Whether every word a known walk read still holds what it held. One at
 * a time, in the order the walk read them, up to the first that changed:
 * each word is then one a walk from here would read too, never one beyond
 * a changed return address (another stack, perhaps no longer mapped). */
static inline bool known_holds(const uw_known_t *e)
{
    for (const uw_check_t *ck = e->chk, *end = e->chk + e->nchk; ck != end; ck++)
        if (*ck->at != ck->val)
            return false;
    return true;
}

uint32_t mt__unwind_known(mt_ring_t *r, const mt_unwind_from_t *from, uint64_t epoch)
{
    const mt_tls_t *t = &mt__tls;
    uw_cache_t *c = r->uw_cache;
    if (MT_UNLIKELY(!c || c->generation != atomic_load_explicit(&rule_generation, memory_order_acquire) ||
                    c->seen.lo != t->stack_lo || c->seen.hi != t->stack_hi))
        return UINT32_MAX; /* the walk sees to it */
    uint32_t set;
    uw_known_t *way = known_set(c, from->ip, from->sp, &set);
    /* The way used last first: when one start has two walks, mostly the
     * same one follows (a changed word is often the outermost). */
    for (uint32_t i = 0, w = c->known_last[set]; i < KNOWN_WAYS; i++, w = (w + 1) % KNOWN_WAYS) {
        uw_known_t *e = &way[w];
        if (e->ip == from->ip && e->sp == from->sp && (!e->needs_rbp || e->rbp == from->rbp) &&
            e->epoch == epoch && known_holds(e)) {
            c->known_last[set] = (uint8_t)w;
            c->walked = false;
#ifdef MT_UNWIND_VERIFY
            const mt_stack_entry_t *st = mt__ring_stack(r, e->id);
            VERIFY_COUNT(verify_known);
            if (st->epoch != epoch && !atomic_fetch_add(&verify_unlike, 1))
                mt__say("unwind verify: unlike libunwind: a known walk's stack is of another epoch");
            mt__unwind_verify(st->frames, st->depth, 0, mt__config.depth);
#endif
            return e->id;
        }
    }
    return UINT32_MAX;
}

void mt__unwind_learn(mt_ring_t *r, const mt_unwind_from_t *from, uint64_t epoch, uint32_t id)
{
    uw_cache_t *c = r->uw_cache;
    if (!c || !c->walked)
        return;
    const uw_seen_t *s = &c->seen;
    uint32_t st = s->start;
    /* A remembered rbp is only kept up to date where the walk depends on it. */
    if (st >= SEEN_MAX || s->ip[st] != from->ip || s->sp[st] != from->sp ||
        (s->needs_rbp[st] && s->rbp[st] != from->rbp) ||
        CHK_MAX - (uint32_t)s->first_chk[st] > KNOWN_CHK)
        return;
    /* The way used longer ago, even when the other holds the same start:
     * the same call site is often reached from two paths. */
    uint32_t set;
    uw_known_t *way = known_set(c, from->ip, from->sp, &set);
    uint32_t w = (c->known_last[set] + 1) % KNOWN_WAYS;
    uw_known_t *e = &way[w];
    e->ip = from->ip;
    e->sp = from->sp;
    e->rbp = from->rbp;
    e->needs_rbp = s->needs_rbp[st];
    e->epoch = epoch;
    e->id = id;
    e->nchk = (uint16_t)(CHK_MAX - (uint32_t)s->first_chk[st]);
    memcpy(e->chk, &s->chk[s->first_chk[st]], e->nchk * sizeof *e->chk);
    c->known_last[set] = (uint8_t)w;
    c->walked = false;
}
#else
uint32_t mt__unwind_known(mt_ring_t *r, const mt_unwind_from_t *from, uint64_t epoch)
{
    (void)r;
    (void)from;
    (void)epoch;
    return UINT32_MAX;
}

void mt__unwind_learn(mt_ring_t *r, const mt_unwind_from_t *from, uint64_t epoch, uint32_t id)
{
    (void)r;
    (void)from;
    (void)epoch;
    (void)id;
}

int mt__cfi_walk(uint64_t *frames, uint32_t max, const uint64_t **out, const uint64_t **folds,
                 const mt_unwind_from_t *start)
{
    (void)frames;
    (void)out;
    (void)max;
    (void)start;
    *folds = NULL;
    return -1;
}
#endif

const uint64_t *mt__unwind_other(uint64_t *buf, uint32_t max, uint32_t *count, uint64_t *fold)
{
    uint32_t want = max + 8 < MT_UNWIND_BUF ? max + 8 : MT_UNWIND_BUF;
    uint32_t n, skip = 0;
    if (mt__config.unwind_fp)
        n = fp_walk(buf, want);
    else {
        int r = unw_backtrace((void **)buf, (int)want);
        n = r > 0 ? (uint32_t)r : 0;
    }
    while (skip < n && buf[skip] >= self_lo && buf[skip] < self_hi)
        skip++;
    n -= skip;
    *count = n < max ? n : max;
    *fold = 0;
    return buf + skip;
}

#ifdef MT_UNWIND_VERIFY
/* Test builds only (the verify library `make tests` builds): every stack
 * the cached walk gave is walked again by libunwind and compared frame by
 * frame, and its fold recomputed from its frames. The counts go to stderr
 * at exit; the first stack unlike libunwind's is printed whole. */
void mt__unwind_verify(const uint64_t *frames, uint32_t n, uint64_t fold, uint32_t max)
{
    uint64_t buf[MT_UNWIND_BUF], want_fold;
    uint32_t m;
    const uint64_t *want = mt__unwind_other(buf, max, &m, &want_fold);
    bool unlike = m != n;
    for (uint32_t i = 0; !unlike && i < n; i++)
        unlike = want[i] != frames[i];
    if (!unlike && fold) {
        want_fold = MT_STACK_FOLD_SEED;
        for (uint32_t i = n; i-- > 0;)
            want_fold = mt__stack_fold(want_fold, frames[i]);
        unlike = want_fold != fold;
    }
    VERIFY_COUNT(verify_walks);
    if (!unlike || atomic_fetch_add(&verify_unlike, 1))
        return;
    char line[128];
    snprintf(line, sizeof line, "unwind verify: unlike libunwind, %u frames against %u%s", n, m,
             fold ? " (or its fold)" : "");
    mt__say(line);
    for (uint32_t i = 0; i < n || i < m; i++) {
        snprintf(line, sizeof line, "  %3u %16llx %16llx", i, i < n ? (unsigned long long)frames[i] : 0ull,
                 i < m ? (unsigned long long)want[i] : 0ull);
        mt__say(line);
    }
}

static __attribute__((destructor)) void verify_report(void)
{
    char line[200];
    snprintf(line, sizeof line,
             "unwind verify: %llu walks, %llu same-place joins, %llu in place, %llu known, %llu unlike libunwind",
             (unsigned long long)verify_walks, (unsigned long long)verify_same_place,
             (unsigned long long)verify_in_place, (unsigned long long)verify_known,
             (unsigned long long)verify_unlike);
    mt__say(line);
}
#endif
