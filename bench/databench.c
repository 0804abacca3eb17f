/*
 * Data-path benchmark (issue 4): per-call cost of put8/get8 in explicit
 * and implicit mode against a raw store (or load) plus fence into the same
 * mapping, and bulk put/get bandwidth from 64 B to 64 MiB against memcpy
 * into the same mapping. Every figure is the median of RUNS runs, measured
 * in this run; the table prints ratios (ours / raw). No assertion.
 */
#define _GNU_SOURCE
#include <rsmapi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "bench.h"

#define SEG (64u << 20)

static rsm_memseg_import_handle_t im;
static volatile uint8_t *raw; /* an explicit mapping of the same segment */
static char *local;

static void check(int rc, const char *what)
{
    if (rc != RSM_SUCCESS) {
        fprintf(stderr, "databench: %s: %d\n", what, rc);
        exit(1);
    }
}

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
            rsm_memseg_import_put8(im, i & 4095, &v, 1);
        }
        break;
    case 3:
    case 5:
        for (long i = 0; i < n; i++) rsm_memseg_import_get8(im, i & 4095, &v, 1);
        break;
    }
    if (v == 0xAB) fputc(' ', stderr); /* keep the loads */
    return (now() - t0) * 1e9 / n;
}

/* GB/s moving `size` bytes, `op`: 0 memcpy in, 1 put, 2 memcpy out, 3 get. */
static double bandwidth(int op, size_t size)
{
    long reps = (long)((512u << 20) / size);
    if (reps < 4) reps = 4;
    if (reps > 2000000) reps = 2000000;
    size_t span = SEG / size; /* rotate through the segment */
    double t0 = now();
    for (long i = 0; i < reps; i++) {
        size_t off = (size_t)(i % (long)span) * size;
        switch (op) {
        case 0: memcpy((void *)(raw + off), local, size); break;
        case 1: rsm_memseg_import_put(im, (off_t)off, local, size); break;
        case 2: memcpy(local, (const void *)(raw + off), size); break;
        case 3: rsm_memseg_import_get(im, (off_t)off, local, size); break;
        }
    }
    return (double)size * reps / (now() - t0) / 1e9;
}

int main(void)
{
    char fabric[64];
    snprintf(fabric, sizeof fabric, "bench-%d", (int)getpid());
    setenv("RSM_FABRIC", fabric, 1);
    char *seg_mem = valloc(SEG);
    memset(seg_mem, 0, SEG);
    local = valloc(SEG);
    memset(local, 7, SEG);
    rsmapi_controller_handle_t c;
    rsm_memseg_export_handle_t seg;
    rsm_memseg_id_t id = 0;
    check(rsm_get_controller("shm0", &c), "get_controller");
    check(rsm_memseg_export_create(c, &seg, seg_mem, SEG, 0), "export_create");
    check(rsm_memseg_export_publish(seg, &id, NULL, 0), "publish");
    check(rsm_memseg_import_connect(c, 0, id, RSM_PERM_RDWR, &im), "connect");
    void *addr = NULL;
    check(rsm_memseg_import_map(im, &addr, RSM_MAP_NONE, RSM_PERM_RDWR, 0, SEG), "map");
    raw = addr;
    rsmapi_barrier_t bar;
    check(rsm_memseg_import_init_barrier(im, RSM_BARRIER_SEGMENT, &bar), "init_barrier");

    const long n = 5000000;
    const char *names[] = {"raw store+fence", "raw load+fence", "put8 explicit", "get8 explicit",
                           "put8 implicit", "get8 implicit"};
    double ns[6], v[6][RUNS];
    for (int r = 0; r <= RUNS; r++) {
        for (int op = 0; op < 6; op++) {
            int implicit = op >= 4;
            check(rsm_memseg_import_set_mode(im, implicit ? RSM_BARRIER_MODE_IMPLICIT
                                                          : RSM_BARRIER_MODE_EXPLICIT),
                  "set_mode");
            double t = per_call(op, r == 0 ? n / 10 : n); /* run 0 warms up */
            if (r > 0) v[op][r - 1] = t;
        }
    }
    for (int op = 0; op < 6; op++) ns[op] = median(v[op]);
    FILE *csv = fopen("bench/results/data.csv", "w");
    if (csv) fprintf(csv, "experiment,size,ours,baseline,ratio\n");
    printf("Per-call cost (median of %d runs of %ld calls), ns per call; ratio = ours / raw\n", RUNS, n);
    printf("  %-16s %8s %8s %7s  %s\n", "call", "ours", "raw", "ratio", "target");
    for (int op = 2; op < 6; op++) {
        double base = ns[op % 2 == 0 ? 0 : 1];
        double ratio = ns[op] / base;
        const char *target = op < 4 ? "<= 2x" : "<= 4x";
        printf("  %-16s %8.2f %8.2f %6.2fx  %s\n", names[op], ns[op], base, ratio, target);
        if (csv) fprintf(csv, "%s,1,%.3f,%.3f,%.3f\n", names[op], ns[op], base, ratio);
    }

    check(rsm_memseg_import_set_mode(im, RSM_BARRIER_MODE_EXPLICIT), "set_mode");
    printf("\nBulk bandwidth (median of %d runs), GB/s; ratio = ours / memcpy into the same mapping\n", RUNS);
    printf("  %-9s %9s %9s %7s   %9s %9s %7s\n", "size", "put", "memcpy", "ratio", "get", "memcpy", "ratio");
    for (size_t size = 64; size <= SEG; size *= 4) {
        /* Baseline and ours alternate within each run, so drift in the
         * machine's state (other tenants, page cache) hits both alike. */
        double g[4], v[4][RUNS];
        for (int op = 0; op < 4; op++) bandwidth(op, size);
        for (int r = 0; r < RUNS; r++)
            for (int op = 0; op < 4; op++) v[op][r] = bandwidth(op, size);
        for (int op = 0; op < 4; op++) g[op] = median(v[op]);
        char label[16];
        if (size >= (1u << 20)) snprintf(label, sizeof label, "%zu MiB", size >> 20);
        else if (size >= 1024) snprintf(label, sizeof label, "%zu KiB", size >> 10);
        else snprintf(label, sizeof label, "%zu B", size);
        printf("  %-9s %9.2f %9.2f %6.2fx   %9.2f %9.2f %6.2fx\n", label, g[1], g[0], g[1] / g[0], g[3],
               g[2], g[3] / g[2]);
        if (csv) {
            fprintf(csv, "put bandwidth GB/s,%zu,%.3f,%.3f,%.3f\n", size, g[1], g[0], g[1] / g[0]);
            fprintf(csv, "get bandwidth GB/s,%zu,%.3f,%.3f,%.3f\n", size, g[3], g[2], g[3] / g[2]);
        }
    }
    if (csv) fclose(csv);
    printf("(targets: put8 explicit <= 2x raw, implicit <= 4x raw; bulk >= 0.95x memcpy from 64 KiB)\n");
    rsm_memseg_import_destroy_barrier(&bar);
    rsm_memseg_import_unmap(im);
    rsm_memseg_import_disconnect(im);
    rsm_memseg_export_destroy(seg);
    rsm_release_controller(c);
    return 0;
}
