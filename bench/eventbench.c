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
 * run on two CPUs, blocking pairs once on one CPU and once on two.
 * A spinning round trip is two cache-line transfers each way, and what
 * one transfer costs depends on the line's physical address (which slice
 * of the L3 cache homes it): on the 2-vCPU Xeon VMs this was written on,
 * the raw spin reads anywhere from 230 to 305 ns depending on the page
 * its flags sit in, the same page giving the same figure run after run.
 * So a spinning pair spreads its round trips over PLACES segments (each
 * with its own event page) and its baseline over PLACES pages: both
 * figures are means over placements, not one draw each. All
 * experiments alternate within each run, so drift in the machine's state
 * hits ours and the baselines alike. Every figure is the median of the
 * runs, printed with its range; the table prints ratios (ours / baseline)
 * and whether each target (issue 5) is met. No assertion.
 */
#define _GNU_SOURCE
#include "bench.h"
#include <sys/eventfd.h>
#include <sys/mman.h>

/* Blocking waits are untimed (-1), as the eventfd baseline's reads are; a
 * timed wait arms a kernel timer per sleep, shown in a row of its own. A
 * side that hangs dies of SIGALRM and the run gives up. */
#define TIMED_MS 10000
#define WATCHDOG_S 120

enum kind { RSM_SPIN, RAW_SPIN, RSM_BLOCK, RAW_EVENTFD };

/* Segments (ours) or flag pages (raw spin) a spinning pair cycles
 * through in each run; blocking pairs use one. */
#define PLACES 16

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
    const char *mode, *baseline, *csv;
    double target; /* ratio at most; 0: for information */
} rows[] = {
    {"spinning, 2 CPUs", "raw shared-flag spin", "spinning 2 CPUs", 1.3},
    {"blocking, 1 CPU", "raw eventfd", "blocking 1 CPU", 1.2},
    {"blocking, 2 CPUs", "raw eventfd", "blocking 2 CPUs", 1.2},
    {"blocking, 1 CPU, 10 s timeout", "raw eventfd", "blocking 1 CPU 10 s timeout", 0},
};

/* One process of a pair: the driver sends it a round-trip count on `cmd`
 * (end of file: exit); A answers with the seconds the round trips took. */
static struct worker pairs[N_EXP][2]; /* [experiment][0: A, 1: B] */
static pid_t main_pid;                /* segment ids are made of it */

static long next_count(int cmd)
{
    long n = 0;
    alarm(0); /* waiting for the driver is not hanging */
    if (!next_cmd(cmd, &n, sizeof n)) return 0;
    alarm(WATCHDOG_S);
    return n;
}

/* ---- The kinds of pair; each child loops until end of file. ---- */

static int places(int e)
{
    return exps[e].kind == RSM_SPIN || exps[e].kind == RAW_SPIN ? PLACES : 1;
}

/* The id of segment k of experiment e. */
static rsm_memseg_id_t rsm_id(int e, int k)
{
    return 0x400000 + (rsm_memseg_id_t)(main_pid % 100000) * 256 + (rsm_memseg_id_t)(e * PLACES + k);
}

/* Round trips of a run on place k of np: n split as evenly as it goes. */
static long share(long n, int k, int np)
{
    return n / np + (k < n % np);
}

/* B: exports np segments; in each run it waits on each export handle in
 * turn, then posts on it, n times in all. */
static void rsm_b(const char *spin_us, int wait_ms, int e, int np, int cmd, int res)
{
    setenv("RSM_SPIN_US", spin_us, 1); /* before this process's first wait */
    size_t len = (size_t)sysconf(_SC_PAGESIZE);
    rsmapi_controller_handle_t c;
    rsm_memseg_export_handle_t seg[PLACES];
    check(rsm_get_controller("shm0", &c), "rsm_get_controller");
    for (int k = 0; k < np; k++) {
        char *buf = valloc(len);
        if (!buf) die("valloc");
        memset(buf, 0, len);
        rsm_memseg_id_t id = rsm_id(e, k);
        check(rsm_memseg_export_create(c, &seg[k], buf, len, 0), "rsm_memseg_export_create");
        check(rsm_memseg_export_publish(seg[k], &id, NULL, 0), "rsm_memseg_export_publish");
    }
    reply(res, "r", 1);
    for (long n; (n = next_count(cmd)) > 0;)
        for (int k = 0; k < np; k++)
            for (long i = share(n, k, np); i > 0; i--) {
                check(rsm_intr_signal_wait(seg[k], wait_ms), "rsm_intr_signal_wait on the export handle");
                check(rsm_intr_signal_post(seg[k], 0), "rsm_intr_signal_post on the export handle");
            }
    for (int k = 0; k < np; k++) check(rsm_memseg_export_destroy(seg[k]), "rsm_memseg_export_destroy");
    check(rsm_release_controller(c), "rsm_release_controller");
}

/* A: imports B's np segments; in each run it posts on each import handle
 * in turn, then waits on it, n times in all. */
static void rsm_a(const char *spin_us, int wait_ms, int e, int np, int cmd, int res)
{
    setenv("RSM_SPIN_US", spin_us, 1);
    rsmapi_controller_handle_t c;
    rsm_memseg_import_handle_t im[PLACES];
    check(rsm_get_controller("shm0", &c), "rsm_get_controller");
    for (int k = 0; k < np; k++)
        check(rsm_memseg_import_connect(c, 0, rsm_id(e, k), RSM_PERM_RDWR, &im[k]), "rsm_memseg_import_connect");
    for (long n; (n = next_count(cmd)) > 0;) {
        double t0 = now();
        for (int k = 0; k < np; k++)
            for (long i = share(n, k, np); i > 0; i--) {
                check(rsm_intr_signal_post(im[k], 0), "rsm_intr_signal_post on the import handle");
                check(rsm_intr_signal_wait(im[k], wait_ms), "rsm_intr_signal_wait on the import handle");
            }
        double t = now() - t0;
        reply(res, &t, sizeof t);
    }
    for (int k = 0; k < np; k++) check(rsm_memseg_import_disconnect(im[k]), "rsm_memseg_import_disconnect");
    check(rsm_release_controller(c), "rsm_release_controller");
}

/* Raw spin: two counters a cache line apart (128 bytes: adjacent-line
 * prefetch pairs lines) in a shared page made before fork, one page per
 * place; each side stores its own and spins on the other's. */
static uint64_t *flags;

static void spin_side(int is_a, int cmd, int res)
{
    uint64_t seq[PLACES] = {0};
    for (long n; (n = next_count(cmd)) > 0;) {
        double t0 = now();
        for (int k = 0; k < PLACES; k++) {
            uint64_t *ping = flags + k * 512, *pong = ping + 16;
            for (long i = share(n, k, PLACES); i > 0; i--) {
                uint64_t q = ++seq[k];
                if (is_a) {
                    __atomic_store_n(ping, q, __ATOMIC_RELEASE);
                    while (__atomic_load_n(pong, __ATOMIC_ACQUIRE) != q) relax();
                } else {
                    while (__atomic_load_n(ping, __ATOMIC_ACQUIRE) != q) relax();
                    __atomic_store_n(pong, q, __ATOMIC_RELEASE);
                }
            }
        }
        double t = now() - t0;
        if (is_a) reply(res, &t, sizeof t);
    }
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
                if (write(out, &one, 8) != 8 || read(in, &v, 8) != 8) die("eventfd: %s", strerror(errno));
            } else {
                if (read(in, &v, 8) != 8 || write(out, &one, 8) != 8) die("eventfd: %s", strerror(errno));
            }
        }
        double t = now() - t0;
        if (is_a) reply(res, &t, sizeof t);
    }
}

/* Side s (0: A, 1: B) of experiment e, in its own process. */
static void side(void *arg, int cmd, int res)
{
    int e = (int)(intptr_t)arg / 2, s = (int)(intptr_t)arg % 2;
    switch (exps[e].kind) {
    case RSM_SPIN: (s ? rsm_b : rsm_a)("200000", exps[e].wait_ms, e, places(e), cmd, res); break;
    case RSM_BLOCK: (s ? rsm_b : rsm_a)("0", exps[e].wait_ms, e, places(e), cmd, res); break;
    case RAW_SPIN: spin_side(!s, cmd, res); break;
    case RAW_EVENTFD: eventfd_side(e, !s, cmd, res); break;
    }
}

/* Spinning needs two CPUs: on one, each round trip waits for a time slice
 * (our waits spin up to RSM_SPIN_US without yielding). */
static int skipped(int e)
{
    return B.ncpus < 2 && (exps[e].kind == RSM_SPIN || exps[e].kind == RAW_SPIN);
}

/* One run of experiment e: n round trips, in ns per round trip. */
static double run(int e, long n)
{
    if (skipped(e)) return 0;
    for (int s = 1; s >= 0; s--) w_send(&pairs[e][s], &n, sizeof n);
    double t = 0;
    w_recv(&pairs[e][0], &t, sizeof t);
    return t * 1e9 / (double)n;
}

int main(int argc, char **argv)
{
    bench_init("events", argc, argv);
    main_pid = getpid();
    long scale = B.smoke ? 100 : 1; /* smoke: a hundredth of the round trips */
    /* This process never calls the library: each child reads its own
     * RSM_SPIN_US at its first wait. */

    flags = mmap(NULL, PLACES * 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (flags == MAP_FAILED) die("mmap: %s", strerror(errno));
    memset(flags, 0, PLACES * 4096);
    for (int e = 0; e < N_EXP; e++) {
        efd[e][0] = eventfd(0, EFD_CLOEXEC);
        efd[e][1] = eventfd(0, EFD_CLOEXEC);
        if (efd[e][0] < 0 || efd[e][1] < 0) die("eventfd: %s", strerror(errno));
    }

    for (int e = 0; e < N_EXP; e++)
        for (int s = 1; s >= 0 && !skipped(e); s--) { /* B first: the exporter publishes before A connects */
            spawn(&pairs[e][s], exps[e].one_cpu ? B.cpu[0] : B.cpu[s], side, (void *)(intptr_t)(2 * e + s));
            if (s == 1 && (exps[e].kind == RSM_SPIN || exps[e].kind == RSM_BLOCK)) {
                char r = 0;
                w_recv(&pairs[e][1], &r, 1);
            }
        }

    double v[N_EXP][MAX_RUNS], ucx[MAX_RUNS];
    if (B.ncpus < 2 && B.ucx) {
        snprintf(ucx_why, sizeof ucx_why, "one CPU: ucx_perftest's latency test needs two");
        B.ucx = 0;
    }
    for (int r = 0; r <= B.runs; r++) { /* run 0 warms up */
        for (int e = 0; e < N_EXP; e++) {
            long n = exps[e].n / scale;
            double t = run(e, r == 0 ? n / 10 : n);
            if (r > 0) v[e][r - 1] = t;
        }
        /* UCX's own notification: an 8-byte active message each way
         * (ucp_am_lat reports half the round trip). */
        double lat, bw;
        if (r > 0 && ucx_run("ucp_am_lat", 8, exps[0].n / scale, &lat, &bw) == 0) ucx[r - 1] = 2 * lat * 1e3;
    }
    for (int e = 0; e < N_EXP; e++)
        for (int s = 0; s < 2 && !skipped(e); s++) w_stop(&pairs[e][s]); /* A first: it disconnects first */

    FILE *csv = csv_open();
    printf("Signal round trip between two processes, ns per round trip: median (min-max) of %d runs;\n"
           "ratio = ours / baseline%s\n",
           B.runs, B.ncpus < 2 ? " (one CPU available: nothing pinned, no spinning pair)" : "");
    printf("  %-30s %-24s %-24s %-21s %7s\n", "signal round trip", "ours", "baseline", "", "ratio");
    struct spread ours[N_EXP / 2], raw[N_EXP / 2], rt[N_EXP / 2];
    for (int m = 0; m < N_EXP / 2; m++) {
        ours[m] = spread_of(v[2 * m], B.runs);
        raw[m] = spread_of(v[2 * m + 1], B.runs);
        rt[m] = ratio_of(v[2 * m], v[2 * m + 1], B.runs);
        printf("  %-30s %-24s %-24s %-21s %7s\n", rows[m].mode, sp(ours[m], 0), sp(raw[m], 0), rows[m].baseline,
               rx(rt[m]));
        csv_row(csv, rows[m].csv, 0, "ours", "ns", ours[m]);
        csv_row(csv, rows[m].csv, 0, rows[m].baseline, "ns", raw[m]);
        csv_ratio(csv, rows[m].csv, 0, "ours", rows[m].baseline, rt[m]);
    }
    if (B.ucx && !skipped(0)) {
        struct spread su = spread_of(ucx, B.runs), ru = ratio_of(v[0], ucx, B.runs);
        printf("  %-30s %-24s %-24s %-21s %7s\n", rows[0].mode, sp(ours[0], 0), sp(su, 0), "UCX ucp_am_lat x2",
               rx(ru));
        csv_row(csv, rows[0].csv, 0, "UCX ucp_am_lat x2", "ns", su);
        csv_ratio(csv, rows[0].csv, 0, "ours", "UCX ucp_am_lat x2", ru);
    } else {
        printf("  (UCX not measured: %s)\n", ucx_why);
    }
    fclose(csv);
    printf("(ratio: median over the runs of ours / baseline measured side by side in each run;\n"
           " UCX: ucx_perftest -t ucp_am_lat, 8 bytes, UCX_TLS=posix,self, pinned as our pair,\n"
           " twice its one-way latency: a library's message round trip, for information)\n");
    printf("(spinning: RSM_SPIN_US=200000 vs a shared-flag spin, each spread over %d segments / %d pages\n"
           " (a line's transfer cost depends on its physical address); blocking: RSM_SPIN_US=0 and\n"
           " untimed waits vs an eventfd ping-pong; runs of %ld / %ld / %ld / %ld round trips)\n",
           PLACES, PLACES, exps[0].n / scale, exps[2].n / scale, exps[4].n / scale, exps[6].n / scale);
    for (int m = 0; m < N_EXP / 2; m++)
        if (rows[m].target > 0) {
            char what[96];
            snprintf(what, sizeof what, "signal round trip %s / %s", rows[m].mode, rows[m].baseline);
            target(what, rt[m].med, 1, rows[m].target, "x");
        }
    return 0;
}
