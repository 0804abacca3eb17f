/*
 * Scale with published segments: the cost of a connect + disconnect while
 * 10, 1,000 or 10,000 segments are published on the node (smoke: 10, 100,
 * 1,000). In each run the exporter grows from nothing to 10, then 1,000,
 * then 10,000 one-page segments, and at each size the importer connects
 * round-robin to 10 segments spread evenly over the publication order,
 * the oldest included; then everything is destroyed for the next run.
 *
 * Why a spread and not one segment: the kernel finds an abstract socket
 * name by walking a chain of a hash table of 256 buckets per network
 * namespace, newest first, so a connect to an old segment walks past
 * everything published after it (about 40 sockets per chain at 10,000).
 * An earlier version kept three exporters (10, 1,000, 10,000) up at once
 * and measured one segment of each: whichever exporter was started first
 * sat at the tails of the chains and looked slowest (0.68x or 1.24x for
 * the same code, depending on the start order).
 *
 * Everything runs on one CPU: a wake-up on another CPU costs tens of
 * microseconds on a virtual machine and its noise would swamp the
 * differences looked for. The time to publish is shown for information.
 *
 * A published segment holds two descriptors (memfd and listener), so
 * 10,000 need more than 20,000: the driver raises RLIMIT_NOFILE when it
 * may (CAP_SYS_RESOURCE); otherwise the first exporter publishes as many
 * as its limit allows and a second process the rest, so that 10,000 are
 * published on the node all the same, and the driver says so. Each keeps
 * SPARE descriptors free for the connection in progress and the process's
 * own. Target (issue 6): the cycle at the largest count <= 1.2x the cycle
 * at 10.
 */
#define _GNU_SOURCE
#include "bench.h"
#include <sys/mman.h>
#include <sys/resource.h>

#define N_COUNTS 3
#define ID_BASE 0x400000
#define SPARE 128 /* descriptors left free in each exporter: connections, and
                   * 2 per segment once an importer has connected to it */
#define SAMPLE 10 /* segments connected to, round-robin, at each size */

/* Exporter `arg` (0 or 1): told a count, publishes or destroys segments
 * (ids ID_BASE + arg * 0x100000 + i, newest last) until it holds that
 * many; answers the seconds that took. */
static void exporter(void *arg, int cmd, int res)
{
    int part = (int)(intptr_t)arg, held = 0, cap = 1 << 17;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    /* Room for every size asked: pages are touched only when published. */
    char *mem = mmap(NULL, page * (size_t)cap, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    rsm_memseg_export_handle_t *segs = calloc((size_t)cap, sizeof *segs);
    if (mem == MAP_FAILED || !segs) die("no room for %d segments", cap);
    rsmapi_controller_handle_t ctl;
    check(rsm_get_controller("shm0", &ctl), "rsm_get_controller");
    int want;
    while (next_cmd(cmd, &want, sizeof want)) {
        if (want > cap) die("exporter %d: %d segments asked, room for %d", part, want, cap);
        double t0 = now();
        for (; held < want; held++) {
            rsm_memseg_id_t id = ID_BASE + (rsm_memseg_id_t)part * 0x100000 + (rsm_memseg_id_t)held;
            char what[96];
            snprintf(what, sizeof what, "rsm_memseg_export_create/publish of segment %d", held + 1);
            check(rsm_memseg_export_create(ctl, &segs[held], mem + (size_t)held * page, page, 0), what);
            check(rsm_memseg_export_publish(segs[held], &id, NULL, 0), what);
        }
        for (; held > want; held--) check(rsm_memseg_export_destroy(segs[held - 1]), "rsm_memseg_export_destroy");
        double t = now() - t0;
        reply(res, &t, sizeof t);
    }
    for (; held > 0; held--) check(rsm_memseg_export_destroy(segs[held - 1]), "rsm_memseg_export_destroy");
    check(rsm_release_controller(ctl), "rsm_release_controller");
}

int main(int argc, char **argv)
{
    bench_init("scale", argc, argv);
    int counts[N_COUNTS] = {10, 1000, 10000};
    if (B.smoke) counts[1] = 100, counts[2] = 1000;
    long cycles = B.smoke ? 50 : 2000;

    /* Two descriptors per published segment, plus room for connections. */
    struct rlimit fds;
    getrlimit(RLIMIT_NOFILE, &fds);
    rlim_t need = (rlim_t)counts[N_COUNTS - 1] * 2 + SPARE;
    if (fds.rlim_max < need) {
        struct rlimit more = {need, need};
        if (setrlimit(RLIMIT_NOFILE, &more) == 0) fds = more;
    }
    fds.rlim_cur = fds.rlim_max;
    setrlimit(RLIMIT_NOFILE, &fds);
    int most = (int)(((long)fds.rlim_cur - SPARE) / 2); /* segments per exporter */
    if (counts[N_COUNTS - 1] > 2 * most) die("%d segments need more than two exporters", counts[N_COUNTS - 1]);
    if (counts[N_COUNTS - 1] > most)
        printf("(RLIMIT_NOFILE hard limit %ld and no permission to raise it: one exporter publishes\n"
               " up to %d segments, a second one the rest; %d descriptors kept spare in each)\n",
               (long)fds.rlim_max, most, SPARE);

    struct worker exp[2];
    for (int p = 0; p < 2; p++) spawn(&exp[p], B.cpu[0], exporter, (void *)(intptr_t)p);
    pin(B.cpu[0]);
    rsmapi_controller_handle_t ctl;
    check(rsm_get_controller("shm0", &ctl), "rsm_get_controller");

    double v[N_COUNTS][MAX_RUNS], publish_us[N_COUNTS] = {0};
    for (int run = 0; run <= B.runs; run++) { /* run 0 warms up */
        int held = 0;
        for (int k = 0; k < N_COUNTS; k++) {
            int n = counts[k], in[2] = {n < most ? n : most, n < most ? 0 : n - most};
            double took = 0;
            for (int p = 0; p < 2; p++) {
                double t;
                w_send(&exp[p], &in[p], sizeof in[p]);
                w_recv(&exp[p], &t, sizeof t);
                took += t;
            }
            if (run == B.runs) publish_us[k] = took * 1e6 / (double)(n - held);
            held = n;
            rsm_memseg_id_t ids[SAMPLE];
            for (int s = 0; s < SAMPLE; s++) { /* evenly over the publication order */
                int i = (int)((long)s * n / SAMPLE);
                ids[s] = i < most ? ID_BASE + (rsm_memseg_id_t)i : ID_BASE + 0x100000 + (rsm_memseg_id_t)(i - most);
            }
            long c = run ? cycles : cycles / 10;
            double t0 = now();
            for (long i = 0; i < c; i++) {
                rsm_memseg_import_handle_t im;
                check(rsm_memseg_import_connect(ctl, 0, ids[i % SAMPLE], RSM_PERM_RDWR, &im), "rsm_memseg_import_connect");
                check(rsm_memseg_import_disconnect(im), "rsm_memseg_import_disconnect");
            }
            if (run) v[k][run - 1] = (now() - t0) * 1e6 / (double)c;
        }
        int none = 0;
        for (int p = 0; p < 2; p++) {
            double t;
            w_send(&exp[p], &none, sizeof none);
            w_recv(&exp[p], &t, sizeof t);
        }
    }
    check(rsm_release_controller(ctl), "rsm_release_controller");
    for (int p = 0; p < 2; p++) w_stop(&exp[p]);

    FILE *csv = csv_open();
    struct spread s[N_COUNTS], rt[N_COUNTS];
    printf("Connect + disconnect with N segments published, us per cycle (round-robin over %d segments\n"
           "spread over the publication order): median (min-max) of %d runs of %ld; ratio = against %d\n"
           "published (all on one CPU)\n",
           SAMPLE, B.runs, cycles, counts[0]);
    printf("  %8s %-22s %7s   %s\n", "N", "us per cycle", "ratio", "publishing took (us per segment)");
    for (int k = 0; k < N_COUNTS; k++) {
        s[k] = spread_of(v[k], B.runs);
        rt[k] = ratio_of(v[k], v[0], B.runs);
        csv_row(csv, "connect cycle vs segments published", counts[k], "ours", "us", s[k]);
        if (k) csv_ratio(csv, "connect cycle vs segments published", counts[k], "ours", "ours at 10", rt[k]);
        struct spread p = {publish_us[k], 0, 0};
        p.min = p.max = p.med;
        csv_row(csv, "publish time per segment", counts[k], "ours", "us", p);
        printf("  %8d %-22s %7s   %.1f\n", counts[k], sp(s[k], 1), rx(rt[k]), p.med);
    }
    fclose(csv);
    char what[96];
    snprintf(what, sizeof what, "connect cycle at %d segments / at %d", counts[N_COUNTS - 1], counts[0]);
    printf("(ratio: median over the runs of the cycle at N / the cycle at %d in the same run)\n", counts[0]);
    target(what, rt[N_COUNTS - 1].med, 1, 1.2, "x");
    return 0;
}
