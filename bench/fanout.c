/*
 * Scale with importers: 1 to 64 importer processes on one segment (smoke:
 * 1 to 4). For each count N:
 *
 *   connect cycle  one more importer's connect + map + one load + unmap +
 *                  disconnect while N - 1 others stay connected and mapped
 *                  (its cost should not depend on N)
 *   post to all    rsm_intr_signal_post on the export handle, which signals
 *                  every importer: ns per post and per importer, with the
 *                  importers idle (not waiting: a post is one atomic per
 *                  importer) and with every importer asleep in
 *                  rsm_intr_signal_wait (RSM_SPIN_US=0: each post must
 *                  wake each of them; they answer with a post, the exporter
 *                  collects the answers, and the next post comes after a
 *                  pause that lets them fall asleep again). Only the post
 *                  call is timed. Target (issue 6): linear in N.
 *   put throughput all N importers put 64 KiB blocks, each into its own
 *                  1 MiB region, for a fixed time from a common start:
 *                  aggregate and per-importer GB/s, against the same
 *                  processes memcpy-ing into a memfd they all map
 *
 * The exporter runs on the first CPU, the importers on the second (for
 * the throughput test they spread over both). Ours and raw alternate
 * within each run; run 0 warms up.
 */
#define _GNU_SOURCE
#include "bench.h"
#include <sys/mman.h>

#define SEG_ID 0x400004
#define MAX_IMPORTERS 64
#define MAX_COUNTS 7
#define ACK_TIMEOUT_MS 10000

static size_t region, chunk, seg_len;
static int raw_fd;

enum op { CYCLE, POST_IDLE, POST_SLEEP, PUT, MEMCPY, ACK };
struct cmd {
    int op;
    int cpu;
    long n;       /* cycles, posts, rounds */
    long peers;   /* POST_SLEEP: answers to collect per round */
    double start; /* PUT, MEMCPY: CLOCK_MONOTONIC start and duration */
    double dur;
};
struct tput {
    double bytes, end;
};

/* ---- The exporter ---- */

static void exporter(void *arg, int cmd, int res)
{
    (void)arg;
    struct published p = publish_segment(seg_len, SEG_ID, 0);
    rsm_memseg_export_handle_t seg = p.seg;
    reply(res, "r", 1);
    for (struct cmd c; next_cmd(cmd, &c, sizeof c);) {
        double ns = 0;
        if (c.op == POST_IDLE) {
            double t0 = now();
            for (long i = 0; i < c.n; i++) check(rsm_intr_signal_post(seg, 0), "rsm_intr_signal_post (export)");
            ns = (now() - t0) * 1e9 / (double)c.n;
        } else if (c.op == POST_SLEEP) {
            double v[MAX_RUNS * 8];
            long rounds = c.n < MAX_RUNS * 8 ? c.n : MAX_RUNS * 8;
            for (long r = 0; r < rounds; r++) {
                /* let every importer fall asleep: ~20 us each on one CPU */
                struct timespec gap = {0, 300000 + 20000 * c.peers};
                nanosleep(&gap, NULL);
                double t0 = now();
                check(rsm_intr_signal_post(seg, 0), "rsm_intr_signal_post (export, sleepers)");
                v[r] = (now() - t0) * 1e9;
                for (long p = 0; p < c.peers; p++)
                    check(rsm_intr_signal_wait(seg, ACK_TIMEOUT_MS), "rsm_intr_signal_wait (export, answers)");
            }
            /* median of the rounds: one post that the scheduler
             * interrupted is not the cost of a post */
            qsort(v, (size_t)rounds, sizeof *v, cmp_double);
            ns = v[rounds / 2];
        }
        reply(res, &ns, sizeof ns);
    }
    destroy_segment(&p);
}

/* ---- Importers ---- */

static void cycler(void *arg, int cmd, int res)
{
    (void)arg;
    static volatile uint64_t sink;
    rsmapi_controller_handle_t ctl;
    check(rsm_get_controller("shm0", &ctl), "rsm_get_controller");
    for (struct cmd c; next_cmd(cmd, &c, sizeof c);) {
        double t0 = now();
        for (long i = 0; i < c.n; i++) {
            rsm_memseg_import_handle_t im;
            void *addr = NULL;
            check(rsm_memseg_import_connect(ctl, 0, SEG_ID, RSM_PERM_RDWR, &im), "rsm_memseg_import_connect");
            check(rsm_memseg_import_map(im, &addr, RSM_MAP_NONE, RSM_PERM_RDWR, 0, seg_len),
                  "rsm_memseg_import_map");
            sink += *(volatile uint64_t *)addr;
            check(rsm_memseg_import_unmap(im), "rsm_memseg_import_unmap");
            check(rsm_memseg_import_disconnect(im), "rsm_memseg_import_disconnect");
        }
        double us = (now() - t0) * 1e6 / (double)c.n;
        reply(res, &us, sizeof us);
    }
    check(rsm_release_controller(ctl), "rsm_release_controller");
}

static void sleep_until(double t)
{
    double d = t - now();
    if (d <= 0) return;
    struct timespec ts = {(time_t)d, (long)((d - (double)(time_t)d) * 1e9)};
    nanosleep(&ts, NULL);
}

/* Importer i: stays connected and mapped; puts, copies or answers posts. */
static void importer(void *arg, int cmd, int res)
{
    int i = (int)(intptr_t)arg;
    setenv("RSM_SPIN_US", "0", 1); /* a waiting importer sleeps at once */
    char *local = valloc(chunk);
    if (!local) die("valloc");
    memset(local, 3, chunk);
    char *raw = mmap(NULL, seg_len, PROT_READ | PROT_WRITE, MAP_SHARED, raw_fd, 0);
    if (raw == MAP_FAILED) die("mmap: %s", strerror(errno));
    rsmapi_controller_handle_t ctl;
    rsm_memseg_import_handle_t im;
    void *addr = NULL;
    check(rsm_get_controller("shm0", &ctl), "rsm_get_controller");
    check(rsm_memseg_import_connect(ctl, 0, SEG_ID, RSM_PERM_RDWR, &im), "rsm_memseg_import_connect");
    check(rsm_memseg_import_map(im, &addr, RSM_MAP_NONE, RSM_PERM_RDWR, 0, seg_len), "rsm_memseg_import_map");
    check(rsm_memseg_import_set_mode(im, RSM_BARRIER_MODE_EXPLICIT), "rsm_memseg_import_set_mode");
    reply(res, "r", 1);
    size_t base = (size_t)i * region, blocks = region / chunk;
    for (struct cmd c; next_cmd(cmd, &c, sizeof c);) {
        if (c.op == PUT || c.op == MEMCPY) {
            pin(c.cpu);
            struct tput t = {0, 0};
            sleep_until(c.start);
            double end = c.start + c.dur;
            for (size_t b = 0; (t.end = now()) < end; b++) {
                size_t off = base + (b % blocks) * chunk;
                if (c.op == PUT) check(rsm_memseg_import_put(im, (off_t)off, local, chunk), "rsm_memseg_import_put");
                else memcpy(raw + off, local, chunk);
                t.bytes += (double)chunk;
            }
            reply(res, &t, sizeof t);
        } else if (c.op == ACK) {
            /* drop the events the idle posts left, then answer n posts */
            pin(c.cpu);
            int rc;
            while ((rc = rsm_intr_signal_wait(im, 0)) == RSM_SUCCESS) {
            }
            if (rc != RSMERR_TIMEOUT) check(rc, "rsm_intr_signal_wait (draining)");
            reply(res, "r", 1);
            for (long k = 0; k < c.n; k++) {
                check(rsm_intr_signal_wait(im, ACK_TIMEOUT_MS), "rsm_intr_signal_wait (import)");
                check(rsm_intr_signal_post(im, 0), "rsm_intr_signal_post (import, answer)");
            }
            reply(res, "d", 1);
        }
    }
    check(rsm_memseg_import_unmap(im), "rsm_memseg_import_unmap");
    check(rsm_memseg_import_disconnect(im), "rsm_memseg_import_disconnect");
    check(rsm_release_controller(ctl), "rsm_release_controller");
}

/* Least-squares line y = a + b x and its R^2. */
static void fit(const double *x, const double *y, int n, double *a, double *b, double *r2)
{
    double sx = 0, sy = 0, sxx = 0, sxy = 0, syy = 0;
    for (int i = 0; i < n; i++) sx += x[i], sy += y[i], sxx += x[i] * x[i], sxy += x[i] * y[i], syy += y[i] * y[i];
    double d = n * sxx - sx * sx;
    *b = d != 0 ? (n * sxy - sx * sy) / d : 0;
    *a = (sy - *b * sx) / n;
    double ss_tot = syy - sy * sy / n, ss_res = 0;
    for (int i = 0; i < n; i++) {
        double e = y[i] - (*a + *b * x[i]);
        ss_res += e * e;
    }
    *r2 = ss_tot > 0 ? 1 - ss_res / ss_tot : 1;
}

int main(int argc, char **argv)
{
    bench_init("fanout", argc, argv);
    static const int full_counts[] = {1, 2, 4, 8, 16, 32, 64}, smoke_counts[] = {1, 2, 4};
    const int *counts = B.smoke ? smoke_counts : full_counts;
    int n_counts = B.smoke ? 3 : 7;
    region = B.smoke ? (64u << 10) : (1u << 20);
    chunk = B.smoke ? (16u << 10) : (64u << 10);
    seg_len = region * MAX_IMPORTERS;
    long cycles = B.smoke ? 20 : 500, idle_posts = B.smoke ? 1000 : 20000, rounds = B.smoke ? 3 : 31;
    double dur = B.smoke ? 0.01 : 0.15;

    raw_fd = memfd_create("fanout-raw", MFD_CLOEXEC);
    if (raw_fd < 0 || ftruncate(raw_fd, (off_t)seg_len) != 0) die("memfd: %s", strerror(errno));

    static struct worker exp, cyc, imp[MAX_IMPORTERS];
    char r;
    spawn(&exp, B.cpu[0], exporter, NULL);
    w_recv(&exp, &r, 1);
    spawn(&cyc, B.cpu[1], cycler, NULL);
    int held = 0;

    static double v_cycle[MAX_COUNTS][MAX_RUNS], v_idle[MAX_COUNTS][MAX_RUNS], v_sleep[MAX_COUNTS][MAX_RUNS],
        v_tput[2][MAX_COUNTS][MAX_RUNS];
    for (int c = 0; c < n_counts; c++) {
        int n = counts[c];
        for (; held < n - 1; held++) {
            spawn(&imp[held], B.cpu[1], importer, (void *)(intptr_t)held);
            w_recv(&imp[held], &r, 1);
        }
        for (int run = 0; run <= B.runs; run++) {
            struct cmd k = {.op = CYCLE, .n = run ? cycles : cycles / 10};
            double us;
            w_send(&cyc, &k, sizeof k);
            w_recv(&cyc, &us, sizeof us);
            if (run) v_cycle[c][run - 1] = us;
        }
        for (; held < n; held++) {
            spawn(&imp[held], B.cpu[1], importer, (void *)(intptr_t)held);
            w_recv(&imp[held], &r, 1);
        }
        for (int run = 0; run <= B.runs; run++) {
            double ns;
            struct cmd k = {.op = POST_IDLE, .n = run ? idle_posts : idle_posts / 10};
            w_send(&exp, &k, sizeof k);
            w_recv(&exp, &ns, sizeof ns);
            if (run) v_idle[c][run - 1] = ns;

            struct cmd a = {.op = ACK, .cpu = B.cpu[1], .n = run ? rounds : 2};
            for (int i = 0; i < n; i++) w_send(&imp[i], &a, sizeof a);
            for (int i = 0; i < n; i++) w_recv(&imp[i], &r, 1);
            struct cmd p = {.op = POST_SLEEP, .n = a.n, .peers = n};
            w_send(&exp, &p, sizeof p);
            w_recv(&exp, &ns, sizeof ns);
            for (int i = 0; i < n; i++) w_recv(&imp[i], &r, 1);
            if (run) v_sleep[c][run - 1] = ns;

            for (int o = 0; o < 2; o++) {
                struct cmd t = {.op = o ? MEMCPY : PUT, .start = now() + 0.01 + 0.001 * n, .dur = run ? dur : dur / 4};
                double bytes = 0, end = t.start;
                for (int i = 0; i < n; i++) {
                    t.cpu = B.cpu[i % 2];
                    w_send(&imp[i], &t, sizeof t);
                }
                for (int i = 0; i < n; i++) {
                    struct tput got;
                    w_recv(&imp[i], &got, sizeof got);
                    bytes += got.bytes;
                    if (got.end > end) end = got.end;
                }
                if (run) v_tput[o][c][run - 1] = bytes / (end - t.start) / 1e9;
            }
        }
    }
    for (int i = held - 1; i >= 0; i--) w_stop(&imp[i]);
    w_stop(&cyc);
    w_stop(&exp);

    FILE *csv = csv_open();
    struct spread cyc_s[MAX_COUNTS], idle_s[MAX_COUNTS], sleep_s[MAX_COUNTS], tput_s[2][MAX_COUNTS],
        tput_r[MAX_COUNTS];
    for (int c = 0; c < n_counts; c++) {
        cyc_s[c] = spread_of(v_cycle[c], B.runs);
        idle_s[c] = spread_of(v_idle[c], B.runs);
        sleep_s[c] = spread_of(v_sleep[c], B.runs);
        tput_s[0][c] = spread_of(v_tput[0][c], B.runs);
        tput_s[1][c] = spread_of(v_tput[1][c], B.runs);
        csv_row(csv, "connect cycle vs importers", counts[c], "ours", "us", cyc_s[c]);
        csv_row(csv, "post to all", counts[c], "ours importers idle", "ns", idle_s[c]);
        csv_row(csv, "post to all", counts[c], "ours importers asleep", "ns", sleep_s[c]);
        csv_row(csv, "put throughput vs importers", counts[c], "ours put", "GB/s", tput_s[0][c]);
        csv_row(csv, "put throughput vs importers", counts[c], "raw memcpy", "GB/s", tput_s[1][c]);
        tput_r[c] = ratio_of(v_tput[0][c], v_tput[1][c], B.runs);
        csv_ratio(csv, "put throughput vs importers", counts[c], "ours put", "raw memcpy", tput_r[c]);
    }
    fclose(csv);

    printf("Importers on one segment: median (min-max) of %d runs\n", B.runs);
    printf("  %-4s %-20s %7s | %-22s %9s | %-26s %9s\n", "N", "connect cycle us", "vs N=1", "post, idle: ns",
           "ns/imp.", "post, all asleep: ns", "ns/imp.");
    for (int c = 0; c < n_counts; c++)
        printf("  %-4d %-20s %7s | %-22s %9.1f | %-26s %9.0f\n", counts[c], sp(cyc_s[c], 1),
               ratio(cyc_s[c].med, cyc_s[0].med), sp(idle_s[c], 1), idle_s[c].med / counts[c], sp(sleep_s[c], 0),
               sleep_s[c].med / counts[c]);
    printf("(connect cycle: connect+map+load+unmap+disconnect of one more importer while N-1 stay mapped;\n"
           " post: rsm_intr_signal_post on the export handle, which signals all N importers)\n\n");

    printf("Put throughput, N importers each writing %s blocks into its own %s region for %.0f ms,\n"
           "aggregate GB/s: median (min-max) of %d runs; ratio: median of ours / raw memcpy into a shared memfd,\n"
           "side by side in each run\n",
           size_label((double)chunk), size_label((double)region), dur * 1e3, B.runs);
    printf("  %-4s %-22s %-22s %7s %14s\n", "N", "ours put", "raw memcpy", "ratio", "ours per imp.");
    for (int c = 0; c < n_counts; c++)
        printf("  %-4d %-22s %-22s %7s %14.2f\n", counts[c], sp(tput_s[0][c], 2), sp(tput_s[1][c], 2),
               rx(tput_r[c]), tput_s[0][c].med / counts[c]);

    /* Linear: a least-squares line through the medians explains them
     * (R^2 >= 0.95), and the cost per added importer from N/2 to N at the
     * top is at most 1.5x the average slope (no super-linear growth). */
    printf("\nPost to all, linear fit ns = a + b * N:\n");
    for (int k = 0; k < 2; k++) {
        double x[MAX_COUNTS], y[MAX_COUNTS], a, b, r2;
        struct spread *s = k ? sleep_s : idle_s;
        for (int c = 0; c < n_counts; c++) x[c] = counts[c], y[c] = s[c].med;
        fit(x, y, n_counts, &a, &b, &r2);
        int top = n_counts - 1;
        double top_slope = (y[top] - y[top - 1]) / (x[top] - x[top - 1]);
        printf("  importers %-6s a = %.0f ns, b = %.1f ns per importer, R^2 = %.3f; last step %.1f ns per importer\n",
               k ? "asleep" : "idle", a, b, r2, top_slope);
        char what[96];
        snprintf(what, sizeof what, "post to all, importers %s: linear in N (R^2 of the line)", k ? "asleep" : "idle");
        target(what, r2, 0, 0.95, "");
        snprintf(what, sizeof what, "post to all, importers %s: last step / average slope", k ? "asleep" : "idle");
        target(what, b > 0 ? top_slope / b : 0, 1, 1.5, "x");
    }
    return 0;
}
