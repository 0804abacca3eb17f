/*
 * Signal benchmark (spec 4.9): the post -> wait round trip between two
 * processes. A (the importer) posts on its import handle; B (the exporter)
 * waits on its export handle, then posts on it; A waits on its import
 * handle: one round trip.
 *
 * Two modes, each against a raw baseline between two processes, measured
 * in this run on this machine:
 *   spinning (RSM_SPIN_US=200000 in both)  vs a shared-flag spin ping-pong
 *   blocking (RSM_SPIN_US=0 in both)       vs an eventfd ping-pong
 * Blocking waits are untimed, like the baseline's reads; one more row shows
 * the cost of a timeout (a kernel timer armed per sleep).
 * The processes are pinned, because where the scheduler puts a blocking
 * pair decides its figure (on a virtual machine a wake-up on another CPU
 * costs tens of microseconds, on the same CPU about one): spinning pairs
 * run on two CPUs, blocking pairs once on one CPU and once on two. All
 * experiments alternate within each run, so drift in the machine's state
 * hits ours and the baselines alike. Every figure is the median of RUNS
 * runs; the table prints ratios (ours / baseline). No assertion.
 */
#define _GNU_SOURCE
#include <rsmapi.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "bench.h"

/* Blocking waits are untimed (-1), as the eventfd baseline's reads are; a
 * timed wait arms a kernel timer per sleep, shown in a row of its own. A
 * side that hangs dies of SIGALRM and the run gives up. */
#define TIMED_MS 10000
#define WATCHDOG_S 120

enum kind { RSM_SPIN, RAW_SPIN, RSM_BLOCK, RAW_EVENTFD };

/* Ours and its baseline are neighbours: experiment 2m is ours of row m,
 * 2m + 1 its baseline. */
static const struct experiment {
    enum kind kind;
    int one_cpu; /* both processes on the same CPU */
    long n;      /* round trips per run */
    int wait_ms; /* timeout of our waits */
} exps[] = {
    {RSM_SPIN, 0, 100000, TIMED_MS}, {RAW_SPIN, 0, 100000, 0},
    {RSM_BLOCK, 1, 20000, -1},       {RAW_EVENTFD, 1, 20000, 0},
    {RSM_BLOCK, 0, 4000, -1},        {RAW_EVENTFD, 0, 4000, 0},
    {RSM_BLOCK, 1, 20000, TIMED_MS}, {RAW_EVENTFD, 1, 20000, 0},
};
#define N_EXP ((int)(sizeof exps / sizeof exps[0]))

static const struct row {
    const char *mode, *baseline, *target, *csv;
} rows[] = {
    {"spinning, 2 CPUs", "(spin)", "<= 1.3x", "signal round trip ns spinning 2 CPUs"},
    {"blocking, 1 CPU", "(eventfd)", "<= 1.2x", "signal round trip ns blocking 1 CPU"},
    {"blocking, 2 CPUs", "(eventfd)", "<= 1.2x", "signal round trip ns blocking 2 CPUs"},
    {"blocking, 1 CPU, 10 s timeout", "(eventfd)", "(info)",
     "signal round trip ns blocking 1 CPU timed"},
};

/* One process of a pair: the parent sends it a round-trip count on `cmd`
 * (0: exit); A answers with the seconds the round trips took on `res`. */
struct side {
    pid_t pid;
    int cmd, res;
};

static struct side pairs[N_EXP][2]; /* [experiment][0: A, 1: B] */
static int cpus[2] = {-1, -1};      /* the first two CPUs we may use */
static pid_t main_pid;              /* segment ids are made of it */

static void check(int rc, const char *what)
{
    if (rc != RSM_SUCCESS) {
        fprintf(stderr, "eventbench: %s: %d\n", what, rc);
        exit(1);
    }
}

static void give_up(const char *what)
{
    fprintf(stderr, "eventbench: %s\n", what);
    for (int e = 0; e < N_EXP; e++)
        for (int s = 0; s < 2; s++)
            if (pairs[e][s].pid > 0) kill(pairs[e][s].pid, SIGKILL);
    exit(1);
}

static long next_count(int cmd)
{
    long n = 0;
    alarm(0); /* waiting for the parent is not hanging */
    if (read(cmd, &n, sizeof n) != (ssize_t)sizeof n) return 0;
    alarm(WATCHDOG_S);
    return n;
}

static void answer(int res, const void *v, size_t len)
{
    if (write(res, v, len) != (ssize_t)len) exit(1);
}

static inline void relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* ---- The kinds of pair; each child loops until a count of 0. ---- */

static rsm_memseg_id_t rsm_id(int e)
{
    return 0x400000 + (rsm_memseg_id_t)(main_pid % 100000) * 16 + (rsm_memseg_id_t)e;
}

/* B: waits on its export handle, then posts on it, n times per run. */
static void rsm_b(const char *spin_us, int wait_ms, rsm_memseg_id_t id, int cmd, int res)
{
    setenv("RSM_SPIN_US", spin_us, 1); /* before this process's first wait */
    size_t len = (size_t)sysconf(_SC_PAGESIZE);
    char *buf = valloc(len);
    memset(buf, 0, len);
    rsmapi_controller_handle_t c;
    rsm_memseg_export_handle_t seg;
    check(rsm_get_controller("shm0", &c), "get_controller");
    check(rsm_memseg_export_create(c, &seg, buf, len, 0), "export_create");
    check(rsm_memseg_export_publish(seg, &id, NULL, 0), "publish");
    answer(res, "r", 1);
    for (long n; (n = next_count(cmd)) > 0;)
        for (long i = 0; i < n; i++) {
            check(rsm_intr_signal_wait(seg, wait_ms), "wait on the export handle");
            check(rsm_intr_signal_post(seg, 0), "post on the export handle");
        }
    check(rsm_memseg_export_destroy(seg), "export_destroy");
    rsm_release_controller(c);
    exit(0);
}

/* A: posts on its import handle, then waits on it, n times per run. */
static void rsm_a(const char *spin_us, int wait_ms, rsm_memseg_id_t id, int cmd, int res)
{
    setenv("RSM_SPIN_US", spin_us, 1);
    rsmapi_controller_handle_t c;
    rsm_memseg_import_handle_t im;
    check(rsm_get_controller("shm0", &c), "get_controller");
    check(rsm_memseg_import_connect(c, 0, id, RSM_PERM_RDWR, &im), "import_connect");
    for (long n; (n = next_count(cmd)) > 0;) {
        double t0 = now();
        for (long i = 0; i < n; i++) {
            check(rsm_intr_signal_post(im, 0), "post on the import handle");
            check(rsm_intr_signal_wait(im, wait_ms), "wait on the import handle");
        }
        double t = now() - t0;
        answer(res, &t, sizeof t);
    }
    check(rsm_memseg_import_disconnect(im), "import_disconnect");
    rsm_release_controller(c);
    exit(0);
}

/* Raw spin: two counters a cache line apart (128 bytes: adjacent-line
 * prefetch pairs lines) in a shared page made before fork; each side
 * stores its own and spins on the other's. */
static uint64_t *flags;

static void spin_side(int is_a, int cmd, int res)
{
    uint64_t *ping = flags, *pong = flags + 16;
    uint64_t seq = 0;
    for (long n; (n = next_count(cmd)) > 0;) {
        double t0 = now();
        for (long i = 0; i < n; i++) {
            seq++;
            if (is_a) {
                __atomic_store_n(ping, seq, __ATOMIC_RELEASE);
                while (__atomic_load_n(pong, __ATOMIC_ACQUIRE) != seq) relax();
            } else {
                while (__atomic_load_n(ping, __ATOMIC_ACQUIRE) != seq) relax();
                __atomic_store_n(pong, seq, __ATOMIC_RELEASE);
            }
        }
        double t = now() - t0;
        if (is_a) answer(res, &t, sizeof t);
    }
    exit(0);
}

/* Raw eventfd (blocking): A writes the first and reads the second, B the
 * other way round; made before fork, one pair of them per experiment. */
static int efd[N_EXP][2];

static void eventfd_side(int e, int is_a, int cmd, int res)
{
    uint64_t one = 1, v;
    int out = efd[e][is_a ? 0 : 1], in = efd[e][is_a ? 1 : 0];
    for (long n; (n = next_count(cmd)) > 0;) {
        double t0 = now();
        for (long i = 0; i < n; i++) {
            if (is_a) {
                if (write(out, &one, 8) != 8 || read(in, &v, 8) != 8) exit(1);
            } else {
                if (read(in, &v, 8) != 8 || write(out, &one, 8) != 8) exit(1);
            }
        }
        double t = now() - t0;
        if (is_a) answer(res, &t, sizeof t);
    }
    exit(0);
}

static void pin(int cpu)
{
    if (cpu < 0) return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0) exit(1);
}

/* Forks side s (0: A, 1: B) of experiment e. */
static void start(int e, int s)
{
    int cmd[2], res[2];
    if (pipe(cmd) || pipe(res)) give_up("pipe");
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) give_up("fork");
    if (pid == 0) {
        for (int i = 0; i < N_EXP; i++)
            for (int j = 0; j < 2; j++)
                if (pairs[i][j].pid > 0) {
                    close(pairs[i][j].cmd);
                    close(pairs[i][j].res);
                }
        close(cmd[1]);
        close(res[0]);
        pin(exps[e].one_cpu ? cpus[0] : cpus[s]);
        switch (exps[e].kind) {
        case RSM_SPIN:
            (s ? rsm_b : rsm_a)("200000", exps[e].wait_ms, rsm_id(e), cmd[0], res[1]);
            break;
        case RSM_BLOCK: (s ? rsm_b : rsm_a)("0", exps[e].wait_ms, rsm_id(e), cmd[0], res[1]); break;
        case RAW_SPIN: spin_side(!s, cmd[0], res[1]); break;
        case RAW_EVENTFD: eventfd_side(e, !s, cmd[0], res[1]); break;
        }
        exit(1);
    }
    close(cmd[0]);
    close(res[1]);
    pairs[e][s] = (struct side){pid, cmd[1], res[0]};
}

/* One run of experiment e: n round trips, in ns per round trip. */
static double run(int e, long n)
{
    for (int s = 1; s >= 0; s--)
        if (write(pairs[e][s].cmd, &n, sizeof n) != (ssize_t)sizeof n) give_up("a pair died");
    double t = 0;
    if (read(pairs[e][0].res, &t, sizeof t) != (ssize_t)sizeof t) give_up("a pair died");
    return t * 1e9 / n;
}

int main(void)
{
    char fabric[64];
    main_pid = getpid();
    snprintf(fabric, sizeof fabric, "bench-events-%d", (int)main_pid);
    setenv("RSM_FABRIC", fabric, 1);
    signal(SIGPIPE, SIG_IGN);
    /* This process never calls the library: each child reads its own
     * RSM_SPIN_US at its first wait. */

    cpu_set_t allowed;
    int ncpus = 0;
    if (sched_getaffinity(0, sizeof allowed, &allowed) == 0)
        for (int c = 0; c < CPU_SETSIZE && ncpus < 2; c++)
            if (CPU_ISSET(c, &allowed)) cpus[ncpus++] = c;
    if (ncpus < 2) cpus[0] = cpus[1] = -1; /* one CPU: no pinning at all */

    flags = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (flags == MAP_FAILED) give_up("mmap");
    memset(flags, 0, 4096);
    for (int e = 0; e < N_EXP; e++) {
        efd[e][0] = eventfd(0, EFD_CLOEXEC);
        efd[e][1] = eventfd(0, EFD_CLOEXEC);
        if (efd[e][0] < 0 || efd[e][1] < 0) give_up("eventfd");
    }

    for (int e = 0; e < N_EXP; e++) {
        start(e, 1); /* B first: the exporter publishes before A connects */
        if (exps[e].kind == RSM_SPIN || exps[e].kind == RSM_BLOCK) {
            char r = 0;
            if (read(pairs[e][1].res, &r, 1) != 1 || r != 'r') give_up("exporter did not start");
        }
        start(e, 0);
    }

    double v[N_EXP][RUNS], ns[N_EXP];
    for (int r = 0; r <= RUNS; r++) /* run 0 warms up */
        for (int e = 0; e < N_EXP; e++) {
            double t = run(e, r == 0 ? exps[e].n / 10 : exps[e].n);
            if (r > 0) v[e][r - 1] = t;
        }
    for (int e = 0; e < N_EXP; e++) ns[e] = median(v[e]);

    for (int e = 0; e < N_EXP; e++) {
        long zero = 0;
        for (int s = 0; s < 2; s++) { /* A first: it disconnects before B destroys */
            if (write(pairs[e][s].cmd, &zero, sizeof zero) != (ssize_t)sizeof zero)
                give_up("a pair died");
            int status = 0;
            if (waitpid(pairs[e][s].pid, &status, 0) != pairs[e][s].pid || !WIFEXITED(status) ||
                WEXITSTATUS(status) != 0)
                give_up("a pair failed");
            pairs[e][s].pid = 0;
        }
    }

    FILE *csv = fopen("bench/results/events.csv", "w");
    if (csv) fprintf(csv, "experiment,size,ours,baseline,ratio\n");
    printf("Signal round trip between two processes (median of %d runs), ns per round trip;\n"
           "ratio = ours / baseline%s\n",
           RUNS, ncpus < 2 ? " (one CPU available: nothing pinned)" : "");
    printf("  %-30s %9s %12s %-10s %7s   %s\n", "signal round trip", "ours ns", "baseline ns", "",
           "ratio", "target");
    for (int m = 0; m < N_EXP / 2; m++) {
        double ours = ns[2 * m], raw = ns[2 * m + 1];
        printf("  %-30s %9.0f %12.0f %-10s %6.2fx   %s\n", rows[m].mode, ours, raw,
               rows[m].baseline, ours / raw, rows[m].target);
        if (csv)
            fprintf(csv, "%s,1,%.1f,%.1f,%.3f\n", rows[m].csv, ours, raw, ours / raw);
    }
    if (csv) fclose(csv);
    printf("(spinning: RSM_SPIN_US=200000 vs a shared-flag spin; blocking: RSM_SPIN_US=0 and\n"
           " untimed waits vs an eventfd ping-pong; runs of %ld / %ld / %ld / %ld round trips)\n",
           exps[0].n, exps[2].n, exps[4].n, exps[6].n);
    return 0;
}
