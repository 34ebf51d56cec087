/* sample.c - MEMTRACK_SAMPLE_BYTES: Poisson sampling of allocations by bytes.
 *
 * Each thread counts down the bytes it allocates; when an allocation reaches
 * the countdown it is sampled, and a new countdown is drawn from an
 * exponential distribution with mean S (MEMTRACK_SAMPLE_BYTES). The sample
 * points thus form a Poisson process of rate 1/S over the bytes allocated,
 * so a block of n bytes is sampled with probability 1 - exp(-n/S),
 * independently of every other block: the scheme of jemalloc's and
 * tcmalloc's heap profilers. The analyzer weights each sampled block by the
 * inverse of that probability (analyzer/replay.c). The PRNG of a thread is
 * seeded from the order in which threads first allocate, so a deterministic
 * program samples the same blocks on every run.
 *
 * Only sampled blocks are unwound and recorded. Their frees must be recorded
 * too, and only theirs (recording every free costs a sequence number and a
 * ring event per free, which is most of what sampling saves), so sampled
 * addresses are kept in a table of 64-byte buckets of eight slots. A block
 * is owned by one thread at a time and its slot changes only while it is
 * owned (set after the real allocation returns, cleared before the real
 * free), so a lookup never misses a sampled block and needs no lock: slots
 * are claimed with compare-and-swap. A bucket whose eight slots are all
 * taken marks itself overflowed for good, and from then on every free that
 * hashes to it is recorded; the analyzer ignores frees of blocks it never
 * saw in a sampled trace.
 *
 * Most frees are of blocks that were not sampled, and most buckets are
 * empty, so a free first reads a compact array of per-bucket counts (32 KiB,
 * which stays in cache) and looks at the bucket only when its count is not
 * zero. A bucket's count is raised after a slot is claimed and lowered after
 * it is cleared; the owner of a sampled block raised it itself and has not
 * lowered it, and every other block's raise comes before its lowering, so
 * the count of a bucket holding the caller's block is never read as zero.
 */
#include <errno.h>
#include <string.h>

#include "internal.h"

#define BUCKET_SLOTS 8
#define BUCKETS (1u << 14) /* 1 MiB of address space, touched as needed */
_Static_assert(BUCKETS == 1u << 14, "bucket_of takes 14 bits of the hash");

typedef struct bucket {
    _Alignas(64) _Atomic uint64_t slot[BUCKET_SLOTS];
} bucket_t;

/* Per bucket: slots taken, plus OVERFLOWED once the bucket was ever full. */
#define OVERFLOWED 0x8000u

static bucket_t *table;
static _Atomic uint16_t *counts;
static _Atomic uint64_t threads_seeded;

/* A bucket is one cache line. */
_Static_assert(sizeof(bucket_t) == 64, "a bucket is one cache line");

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* The natural logarithm of u in (0, 1], without libm (so the draws are the
 * same whatever C library the program runs with): u = m * 2^e with m in
 * [sqrt(1/2), sqrt(2)), and ln(m) = 2 atanh((m - 1) / (m + 1)) by its series,
 * exact to about 1e-12. */
static double log_unit(double u)
{
    uint64_t bits;
    memcpy(&bits, &u, sizeof bits);
    int e = (int)((bits >> 52) & 0x7ff) - 1023;
    bits = (bits & ((1ull << 52) - 1)) | (1023ull << 52);
    double m;
    memcpy(&m, &bits, sizeof m);
    if (m > 1.4142135623730951) {
        m *= 0.5;
        e++;
    }
    double z = (m - 1) / (m + 1), z2 = z * z;
    double s = z * (2 + z2 * (2 / 3.0 + z2 * (2 / 5.0 + z2 * (2 / 7.0 + z2 * (2 / 9.0 + z2 * (2 / 11.0 +
                                                                                        z2 * (2 / 13.0)))))));
    return e * 0.6931471805599453 + s;
}

/* Draws the bytes to the next sample point: floor(X) + 1 with X exponential
 * of mean S, so that the point falls in an allocation of n bytes with
 * probability P(X < n) = 1 - exp(-n/S). */
static uint64_t draw(void)
{
    double u = (double)((splitmix64(&mt__tls.sample_rng) >> 11) + 1) * 0x1p-53; /* (0, 1] */
    return (uint64_t)(-log_unit(u) * (double)mt__config.sample_bytes) + 1;
}

static size_t bucket_of(uint64_t p)
{
    return (size_t)(((p >> 4) * 0x9e3779b97f4a7c15ull) >> (64 - 14));
}

static void remember(const void *ptr)
{
    uint64_t p = (uint64_t)(uintptr_t)ptr;
    size_t k = bucket_of(p);
    bucket_t *b = &table[k];
    for (int i = 0; i < BUCKET_SLOTS; i++) {
        uint64_t empty = 0;
        if (atomic_load_explicit(&b->slot[i], memory_order_relaxed) == 0 &&
            atomic_compare_exchange_strong_explicit(&b->slot[i], &empty, p, memory_order_relaxed,
                                                    memory_order_relaxed)) {
            atomic_fetch_add_explicit(&counts[k], 1, memory_order_relaxed);
            return;
        }
    }
    atomic_fetch_or_explicit(&counts[k], OVERFLOWED, memory_order_relaxed);
}

/* Decides for an allocation that reached the countdown; see internal.h. */
bool mt__sample_slow(const void *p, size_t n)
{
    mt_tls_t *t = &mt__tls;
    if (!t->sample_rng) {
        uint64_t seed = atomic_fetch_add_explicit(&threads_seeded, 1, memory_order_relaxed) + 1;
        t->sample_rng = seed * 0xd1342543de82ef95ull;
        t->sample_left = draw();
        if (t->sample_left > n) {
            t->sample_left -= n;
            return false;
        }
    }
    t->sample_left = draw();
    remember(p);
    return true;
}

/* Says whether the free of p is recorded, forgetting p; see internal.h. */
bool mt__sample_forget(const void *ptr)
{
    uint64_t p = (uint64_t)(uintptr_t)ptr;
    size_t k = bucket_of(p);
    unsigned c = atomic_load_explicit(&counts[k], memory_order_relaxed);
    if (MT_LIKELY(c == 0))
        return false;
    bucket_t *b = &table[k];
    for (int i = 0; i < BUCKET_SLOTS; i++)
        if (atomic_load_explicit(&b->slot[i], memory_order_relaxed) == p) {
            atomic_store_explicit(&b->slot[i], 0, memory_order_relaxed);
            atomic_fetch_sub_explicit(&counts[k], 1, memory_order_relaxed);
            return true;
        }
    return (c & OVERFLOWED) != 0;
}

/* Remembers p again; see internal.h. */
void mt__sample_keep(const void *p)
{
    remember(p);
}

/* Maps the table; see internal.h. */
int mt__sample_init(void)
{
    table = mt__os_map(sizeof(bucket_t) * BUCKETS);
    counts = table ? mt__os_map(sizeof *counts * BUCKETS) : NULL;
    return counts ? 0 : -ENOMEM;
}
