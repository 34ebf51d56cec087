/* memtrack.h - the public API of libmemtrack.so, the memtrack allocation profiler.
 *
 * Programs call memtrack_snapshot() to mark points of a run (the end of a
 * batch, a request, a test) so that `memtrack diff` and `memtrack leaks` can
 * compare the live heap between them. The call records a marker in the global
 * event order; it does not stop the program or walk the heap, and it costs
 * about as much as one malloc.
 *
 * The same program must link and run without memtrack. The declaration below
 * is weak: when libmemtrack.so is not preloaded, memtrack_snapshot is a null
 * pointer. Call it through MEMTRACK_SNAPSHOT(label), which checks:
 *
 *     #include <memtrack.h>
 *     for (int i = 0; i < batches; i++) {
 *         run_batch(i);
 *         MEMTRACK_SNAPSHOT("batch");
 *     }
 *
 * Without this header, the same works with dlsym:
 *
 *     void (*snap)(const char *) = (void (*)(const char *))dlsym(RTLD_DEFAULT, "memtrack_snapshot");
 *     if (snap) snap("batch");
 */
#ifndef MEMTRACK_H
#define MEMTRACK_H

#ifdef __cplusplus
extern "C" {
#endif

#ifdef MEMTRACK_BUILDING_LIBRARY
void memtrack_snapshot(const char *label);
#else
/* Records a snapshot marker named label (copied; NULL means ""). Labels are
 * how budgets and diffs name points: use the same label for every batch of
 * one kind. Null when libmemtrack.so is not loaded: see MEMTRACK_SNAPSHOT. */
void memtrack_snapshot(const char *label) __attribute__((weak));
#endif

/* Calls memtrack_snapshot(label) when libmemtrack.so is loaded, else nothing. */
#define MEMTRACK_SNAPSHOT(label)              \
    do {                                      \
        if (memtrack_snapshot)                \
            memtrack_snapshot(label);         \
    } while (0)

#ifdef __cplusplus
}
#endif

#endif /* MEMTRACK_H */
