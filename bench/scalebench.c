/*
 * Scale with published segments: the cost of a connect + disconnect to one
 * segment while its exporter has 10, 1,000 or 10,000 segments published
 * (smoke: 10, 100, 1,000). Three exporter processes publish (one after
 * another, so the time each took is its own) and stay up; the importer's
 * cycles against them alternate within each run, so drift hits all three
 * alike. Everything runs on one CPU: a wake-up on another CPU
 * costs tens of microseconds on a virtual machine and its noise would
 * swamp the differences looked for. The time each exporter took to
 * publish its segments is shown for information.
 *
 * A published segment holds two descriptors (memfd and listener), so the
 * exporter of 10,000 needs more than 20,000: the driver raises its
 * RLIMIT_NOFILE when it may (CAP_SYS_RESOURCE); otherwise the exporter
 * connected to publishes as many as the limit allows and another process
 * publishes the rest, so that 10,000 are published on the node all the
 * same, and the driver says so. Each keeps SPARE descriptors free
 * for the connection in progress and the process's own (the agent handles
 * departed importers before new ones, so they do not pile up). Target
 * (issue 6): the cycle at the largest count <= 1.2x the cycle at 10.
 */
#define _GNU_SOURCE
#include "bench.h"
#include <sys/resource.h>

#define N_COUNTS 3
#define ID_BASE 0x400000
#define SPARE 64 /* descriptors left free in the exporter */

#define MAX_PARTS 8

static int counts[N_COUNTS];
/* Who publishes what: part j publishes part_n[j] segments, ids
 * part_base[j] + i. Count k's segments are parts first[k] ..
 * first[k + 1] - 1; the segment connected to is in its first part. */
static int part_n[MAX_PARTS], first[N_COUNTS + 1];
static rsm_memseg_id_t part_base[MAX_PARTS];

/* Exporter of part j: publishes its one-page segments; answers the
 * seconds that took. */
static void exporter(void *arg, int cmd, int res)
{
    int j = (int)(intptr_t)arg, n = part_n[j];
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    char *mem = valloc(page * (size_t)n);
    if (!mem) die("valloc");
    memset(mem, 0, page * (size_t)n);
    rsm_memseg_export_handle_t *segs = calloc((size_t)n, sizeof *segs);
    if (!segs) die("calloc");
    rsmapi_controller_handle_t ctl;
    check(rsm_get_controller("shm0", &ctl), "rsm_get_controller");
    double t0 = now();
    for (int i = 0; i < n; i++) {
        rsm_memseg_id_t id = part_base[j] + (rsm_memseg_id_t)i;
        char what[96];
        snprintf(what, sizeof what, "rsm_memseg_export_create/publish of segment %d of %d", i + 1, n);
        check(rsm_memseg_export_create(ctl, &segs[i], mem + (size_t)i * page, page, 0), what);
        check(rsm_memseg_export_publish(segs[i], &id, NULL, 0), what);
    }
    double t = now() - t0;
    reply(res, &t, sizeof t);
    char c;
    while (next_cmd(cmd, &c, 1)) {
    }
    for (int i = 0; i < n; i++) check(rsm_memseg_export_destroy(segs[i]), "rsm_memseg_export_destroy");
    check(rsm_release_controller(ctl), "rsm_release_controller");
}

int main(int argc, char **argv)
{
    bench_init("scale", argc, argv);
    int want[N_COUNTS] = {10, 1000, 10000};
    if (B.smoke) want[1] = 100, want[2] = 1000;
    long cycles = B.smoke ? 50 : 2000;

    /* Two descriptors per published segment, plus room for connections. */
    struct rlimit fds;
    getrlimit(RLIMIT_NOFILE, &fds);
    rlim_t need = (rlim_t)want[N_COUNTS - 1] * 2 + SPARE;
    if (fds.rlim_max < need) {
        struct rlimit more = {need, need};
        if (setrlimit(RLIMIT_NOFILE, &more) == 0) fds = more;
    }
    fds.rlim_cur = fds.rlim_max;
    setrlimit(RLIMIT_NOFILE, &fds);
    long most = ((long)fds.rlim_cur - SPARE) / 2; /* segments per process */
    int parts = 0;
    for (int k = 0; k < N_COUNTS; k++) {
        counts[k] = want[k];
        first[k] = parts;
        for (int done = 0; done < want[k]; parts++) {
            if (parts == MAX_PARTS) die("%d segments need more than %d processes", want[k], MAX_PARTS);
            part_n[parts] = want[k] - done < most ? want[k] - done : (int)most;
            part_base[parts] = ID_BASE + (rsm_memseg_id_t)k * 0x100000 + (rsm_memseg_id_t)done;
            done += part_n[parts];
        }
    }
    first[N_COUNTS] = parts;
    if (first[N_COUNTS] - first[N_COUNTS - 1] > 1)
        printf("(RLIMIT_NOFILE hard limit %ld and no permission to raise it: the exporter connected to\n"
               " publishes %d of the %d segments, %d more processes the rest; %d descriptors kept spare)\n",
               (long)fds.rlim_max, part_n[first[N_COUNTS - 1]], counts[N_COUNTS - 1],
               first[N_COUNTS] - first[N_COUNTS - 1] - 1, SPARE);

    struct worker exp[MAX_PARTS];
    double publish_s[N_COUNTS] = {0};
    for (int k = 0; k < N_COUNTS; k++) /* one after another: each publishes alone */
        for (int j = first[k]; j < first[k + 1]; j++) {
            double t;
            spawn(&exp[j], B.cpu[0], exporter, (void *)(intptr_t)j);
            w_recv(&exp[j], &t, sizeof t);
            publish_s[k] += t;
        }
    pin(B.cpu[0]);

    rsmapi_controller_handle_t ctl;
    check(rsm_get_controller("shm0", &ctl), "rsm_get_controller");
    double v[N_COUNTS][MAX_RUNS];
    for (int run = 0; run <= B.runs; run++) /* run 0 warms up */
        for (int k = 0; k < N_COUNTS; k++) {
            rsm_memseg_id_t id = part_base[first[k]] + (rsm_memseg_id_t)(part_n[first[k]] / 2);
            long n = run ? cycles : cycles / 10;
            double t0 = now();
            for (long i = 0; i < n; i++) {
                rsm_memseg_import_handle_t im;
                check(rsm_memseg_import_connect(ctl, 0, id, RSM_PERM_RDWR, &im), "rsm_memseg_import_connect");
                check(rsm_memseg_import_disconnect(im), "rsm_memseg_import_disconnect");
            }
            if (run) v[k][run - 1] = (now() - t0) * 1e6 / (double)n;
        }
    check(rsm_release_controller(ctl), "rsm_release_controller");
    for (int j = 0; j < parts; j++) w_stop(&exp[j]);

    FILE *csv = csv_open();
    struct spread s[N_COUNTS], rt[N_COUNTS];
    printf("Connect + disconnect with N segments published, us per cycle: median (min-max) of %d runs of %ld;\n"
           "ratio = against %d published (all on one CPU)\n",
           B.runs, cycles, counts[0]);
    printf("  %8s %-22s %7s   %s\n", "N", "us per cycle", "ratio", "publishing took (us per segment)");
    for (int k = 0; k < N_COUNTS; k++) {
        s[k] = spread_of(v[k], B.runs);
        rt[k] = ratio_of(v[k], v[0], B.runs);
        csv_row(csv, "connect cycle vs segments published", counts[k], "ours", "us", s[k]);
        if (k) csv_ratio(csv, "connect cycle vs segments published", counts[k], "ours", "ours at 10", rt[k]);
        struct spread p = {publish_s[k] * 1e6 / counts[k], 0, 0};
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
