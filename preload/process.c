/* process.c - the life of the traced process: start, fork, exec, exit, crash.
 *
 * Recording starts in the library constructor, after the real allocator has
 * been found (or earlier, at the first allocation of another library's
 * constructor: see start_early in hooks.c), and stops at the final flush in the destructor, _exit or _Exit.
 * A fork child gets its own trace (its header names the parent and the seq
 * at which it forked); an exec is preceded by a flush, so nothing recorded
 * before it is lost. Crash signals whose disposition is the default get a
 * handler that flushes the trace, restores the default and re-raises, so the
 * program still dies the same way. Nothing here changes the program's own
 * handlers: a program that installs one replaces ours.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

_Atomic int mt__state;
pid_t mt__pid;

static const int crash_signals[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP, SIGSYS};
/* The program's own action for the snapshot signal, which memtrack's
 * handler chains to. The program may change it at any time (through the
 * sigaction and signal hooks) while the handler runs: it writes the slot
 * not in use, then publishes it. */
static struct sigaction chained_action[2];
static _Atomic int chained_slot;
static _Atomic int snapshot_installed;
static _Atomic int disabled_said;

void mt__process_disable(const char *why)
{
    atomic_store(&mt__state, MT_STATE_OFF);
    if (why && !atomic_exchange(&disabled_said, 1))
        mt__say_all(why, "; recording stopped, the program continues unprofiled");
}

static void crash_handler(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    int saved = errno;
    if (getpid() == mt__pid && atomic_load(&mt__state) == MT_STATE_ACTIVE) {
        atomic_store(&mt__fatal_signal, sig);
        mt__writer_flush(MT_FLUSH_FINAL, 2000);
    }
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(sig, &dfl, NULL);
    errno = saved;
    /* A fault re-executes and kills; a sent signal must be sent again. */
    if (si == NULL || si->si_code <= 0 || sig == SIGABRT)
        raise(sig);
}

static void install_crash_handlers(void)
{
    for (size_t i = 0; i < sizeof crash_signals / sizeof crash_signals[0]; i++) {
        struct sigaction old, sa;
        if (sigaction(crash_signals[i], NULL, &old) != 0)
            continue;
        if (!(old.sa_flags & SA_SIGINFO) && old.sa_handler != SIG_DFL)
            continue;
        if ((old.sa_flags & SA_SIGINFO) && old.sa_sigaction != NULL)
            continue;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = crash_handler;
        sa.sa_flags = SA_SIGINFO | SA_RESETHAND | SA_NODEFER;
        sigemptyset(&sa.sa_mask);
        sigaction(crash_signals[i], &sa, NULL);
    }
}

static void snapshot_handler(int sig, siginfo_t *si, void *uc)
{
    int saved = errno;
    mt__writer_request_snapshot();
    errno = saved;
    const struct sigaction *p = &chained_action[atomic_load_explicit(&chained_slot, memory_order_acquire)];
    if (p->sa_flags & SA_SIGINFO) {
        if (p->sa_sigaction)
            p->sa_sigaction(sig, si, uc);
    } else if (p->sa_handler != SIG_DFL && p->sa_handler != SIG_IGN) {
        p->sa_handler(sig);
    }
}

static void install_snapshot_signal(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = snapshot_handler;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (sigaction(mt__config.snapshot_signal, &sa, &chained_action[0]) == 0)
        atomic_store(&snapshot_installed, 1);
}

/* Keeps memtrack's snapshot handler in front of the program's; see internal.h. */
int mt__snapshot_sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
    if (!atomic_load(&snapshot_installed) || sig != mt__config.snapshot_signal)
        return 0;
    static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    pthread_mutex_lock(&lock);
    int cur = atomic_load(&chained_slot);
    if (old)
        *old = chained_action[cur];
    if (act) {
        chained_action[!cur] = *act;
        atomic_store_explicit(&chained_slot, !cur, memory_order_release);
    }
    pthread_mutex_unlock(&lock);
    return 1;
}

static void before_fork(void)
{
    mt__modules_lock();
}

static void after_fork_parent(void)
{
    mt__modules_unlock();
}

static void after_fork_child(void)
{
    int st = atomic_load(&mt__state);
    mt__modules_after_fork();
    if (st != MT_STATE_ACTIVE)
        return;
    mt__tls.busy = 1;
    uint64_t fork_seq = atomic_load(&mt__seq.next);
    mt__pid = getpid();
    mt__writer_after_fork();
    mt__rings_after_fork();
    if (mt__writer_start(true, fork_seq) < 0)
        atomic_store(&mt__state, MT_STATE_OFF);
    mt__tls.busy = 0;
}

void mt__process_before_exec(void)
{
    if (getpid() != mt__pid || atomic_load(&mt__state) != MT_STATE_ACTIVE)
        return; /* a vfork child shares our memory: leave the parent's writer alone */
    mt__writer_flush(MT_FLUSH_EXEC, 5000);
}

void mt__process_before_exit(void)
{
    if (getpid() != mt__pid || atomic_load(&mt__state) != MT_STATE_ACTIVE)
        return;
    mt__writer_flush(MT_FLUSH_FINAL, 5000);
}

void mt__process_start(void)
{
    if (getauxval(AT_SECURE))
        return; /* setuid and the like: do nothing at all */
    mt__tls.busy = 1;
    mt__pid = getpid();
    mt__config_load();
    mt__unwind_init();
    mt__modules_scan();
    if (mt__rings_init() < 0) {
        mt__say("cannot create a thread key; the program runs unprofiled");
        goto out;
    }
    if (mt__config.sample_bytes && mt__sample_init() < 0) {
        mt__say("cannot map the sampling table; recording every allocation");
        mt__config.sample_bytes = 0;
    }
    if (mt__writer_start(false, 0) < 0)
        goto out;
    pthread_atfork(before_fork, after_fork_parent, after_fork_child);
    install_crash_handlers();
    if (mt__config.snapshot_signal)
        install_snapshot_signal();
    atomic_store(&mt__state, MT_STATE_ACTIVE);
out:
    mt__tls.busy = 0;
}

__attribute__((destructor)) static void process_stop(void)
{
    if (getpid() != mt__pid || atomic_load(&mt__state) != MT_STATE_ACTIVE)
        return;
    mt__writer_flush(MT_FLUSH_FINAL, 10000);
}
