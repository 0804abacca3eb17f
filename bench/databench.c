/*
 * Data-path benchmark (issue 4): the per-call cost of put8/get8 in
 * explicit and implicit barrier mode against a raw store (or load) plus
 * fence into the same mapping of the same segment. Every figure is the
 * median of the runs, measured in this run, printed with its range; ours
 * and raw alternate within each run. Targets: explicit <= 2x raw,
 * implicit <= 4x raw. (Bulk put/get bandwidth is bench/bandwidth.c.)
 */
#define _GNU_SOURCE
#include "bench.h"

#define SEG (1u << 20)

static rsm_memseg_import_handle_t im;
static volatile uint8_t *raw; /* an explicit mapping of the same segment */

/* ns per call of `op` over n calls. */
static double per_call(int op, long n)
{
    double t0 = now();
    uint8_t v = 1;
    switch (op) {
    case 0: /* raw store + fence */
        for (long i = 0; i < n; i++) {
            raw[i & 4095] = (uint8_t)i;
            __atomic_thread_fence(__ATOMIC_SEQ_CST);
        }
        break;
    case 1: /* raw load + fence */
        for (long i = 0; i < n; i++) {
            v += raw[i & 4095];
            __atomic_thread_fence(__ATOMIC_SEQ_CST);
        }
        break;
    case 2:
    case 4:
        for (long i = 0; i < n; i++) {
            v = (uint8_t)i;
            check(rsm_memseg_import_put8(im, i & 4095, &v, 1), "rsm_memseg_import_put8");
        }
        break;
    case 3:
    case 5:
        for (long i = 0; i < n; i++) check(rsm_memseg_import_get8(im, i & 4095, &v, 1), "rsm_memseg_import_get8");
        break;
    }
    if (v == 0xAB) fputc(' ', stderr); /* keep the loads */
    return (now() - t0) * 1e9 / (double)n;
}

int main(int argc, char **argv)
{
    bench_init("data", argc, argv);
    pin(B.cpu[1]);
    char *seg_mem = valloc(SEG);
    if (!seg_mem) die("valloc");
    memset(seg_mem, 0, SEG);
    rsmapi_controller_handle_t c;
    rsm_memseg_export_handle_t seg;
    rsm_memseg_id_t id = 0;
    check(rsm_get_controller("shm0", &c), "rsm_get_controller");
    check(rsm_memseg_export_create(c, &seg, seg_mem, SEG, 0), "rsm_memseg_export_create");
    check(rsm_memseg_export_publish(seg, &id, NULL, 0), "rsm_memseg_export_publish");
    check(rsm_memseg_import_connect(c, 0, id, RSM_PERM_RDWR, &im), "rsm_memseg_import_connect");
    void *addr = NULL;
    check(rsm_memseg_import_map(im, &addr, RSM_MAP_NONE, RSM_PERM_RDWR, 0, SEG), "rsm_memseg_import_map");
    raw = addr;
    rsmapi_barrier_t bar;
    check(rsm_memseg_import_init_barrier(im, RSM_BARRIER_SEGMENT, &bar), "rsm_memseg_import_init_barrier");

    const long n = B.smoke ? 50000 : 5000000;
    const char *names[] = {"raw store+fence", "raw load+fence", "put8 explicit", "get8 explicit",
                           "put8 implicit", "get8 implicit"};
    double v[6][MAX_RUNS];
    for (int r = 0; r <= B.runs; r++) { /* run 0 warms up */
        for (int op = 0; op < 6; op++) {
            int implicit = op >= 4;
            check(rsm_memseg_import_set_mode(im, implicit ? RSM_BARRIER_MODE_IMPLICIT : RSM_BARRIER_MODE_EXPLICIT),
                  "rsm_memseg_import_set_mode");
            double t = per_call(op, r == 0 ? n / 10 : n);
            if (r > 0) v[op][r - 1] = t;
        }
    }
    check(rsm_memseg_import_destroy_barrier(&bar), "rsm_memseg_import_destroy_barrier");
    check(rsm_memseg_import_unmap(im), "rsm_memseg_import_unmap");
    check(rsm_memseg_import_disconnect(im), "rsm_memseg_import_disconnect");
    check(rsm_memseg_export_destroy(seg), "rsm_memseg_export_destroy");
    check(rsm_release_controller(c), "rsm_release_controller");

    struct spread s[6], rt[6];
    FILE *csv = csv_open();
    for (int op = 0; op < 6; op++) {
        s[op] = spread_of(v[op], B.runs);
        csv_row(csv, "per call", 1, names[op], "ns", s[op]);
    }
    for (int op = 2; op < 6; op++) {
        rt[op] = ratio_of(v[op], v[op % 2], B.runs);
        csv_ratio(csv, "per call", 1, names[op], names[op % 2], rt[op]);
    }
    fclose(csv);
    printf("Per-call cost, ns per call: median (min-max) of %d runs of %ld calls; ratio = ours / raw\n", B.runs, n);
    printf("  %-16s %-20s %-20s %7s\n", "call", "ours", "raw", "ratio");
    for (int op = 2; op < 6; op++)
        printf("  %-16s %-20s %-20s %7s\n", names[op], sp(s[op], 2), sp(s[op % 2], 2), rx(rt[op]));
    printf("(ratio: median over the runs of ours / raw measured side by side in each run)\n");
    for (int op = 2; op < 6; op++) {
        char what[64];
        snprintf(what, sizeof what, "%s / %s", names[op], names[op % 2]);
        target(what, rt[op].med, 1, op < 4 ? 2.0 : 4.0, "x");
    }
    return 0;
}
