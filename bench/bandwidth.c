/*
 * Put and get bandwidth, 64 B to 64 MiB: rsm_memseg_import_put/get of one
 * block per call (explicit barrier mode: no barrier per call) against
 * memcpy into and out of a memfd this process maps MAP_SHARED (the limit)
 * and against ucx_perftest's put and get bandwidth (UCX_TLS=posix,self).
 * The exporter is another process, idle on the other CPU; this process is
 * the importer.
 *
 * Two access patterns:
 *   hot     every call moves the same block to the same place, as
 *           ucx_perftest does: small sizes run from the caches (the place
 *           changes between runs, as the placement of the pages decides
 *           sizes that just fit in a cache)
 *   stream  the remote offset walks the whole 64 MiB segment, so every
 *           size streams through memory (what bench/databench.c measured
 *           before this suite)
 * Each measurement lasts about 30 ms, 90 ms from 1 MiB (ucx_perftest:
 * 1 GiB or a million calls), cut into 6 slices that alternate with the
 * baseline's, so drift in the machine during a run hits both alike; the
 * order turns from run to run. Targets (issue 6): put and get >= 0.95x memcpy from 64 KiB
 * up; put >= UCX put bandwidth at every size.
 */
#define _GNU_SOURCE
#include "bench.h"
#include <sys/mman.h>

#define SEG_ID 0x400002
#define MAX_SIZES 16

enum op { PUT, MEMCPY_IN, GET, MEMCPY_OUT, N_OP };
enum pattern { HOT, STREAM, N_PATTERN };
static const char *op_name[N_OP] = {"ours put", "raw memcpy in", "ours get", "raw memcpy out"};
static const char *pattern_name[N_PATTERN] = {"hot", "stream"};

static size_t seg_len;
static rsm_memseg_import_handle_t im;
static char *raw;   /* the memfd mapping */
static char *local; /* this process's buffer */

static void copy(enum op op, size_t off, size_t size)
{
    switch (op) {
    case PUT: check(rsm_memseg_import_put(im, (off_t)off, local, size), "rsm_memseg_import_put"); break;
    case MEMCPY_IN: memcpy(raw + off, local, size); break;
    case GET: check(rsm_memseg_import_get(im, (off_t)off, local, size), "rsm_memseg_import_get"); break;
    case MEMCPY_OUT: memcpy(local, raw + off, size); break;
    case N_OP: break;
    }
}

/* Where each operation's next call goes in the stream pattern: a slice
 * goes on where the previous one of the same operation stopped. */
static size_t next_block[N_OP];

/* Calls of `op` that take about `seconds`, found by an untimed first pass
 * (an eighth of the time, at least one pass over the segment in the
 * stream pattern) that also puts the caches in this operation's own
 * steady state, not the one the previous measurement left behind (for
 * sizes near the cache size that decided the figure). */
static long calibrate(enum op op, enum pattern pat, size_t size, double seconds, size_t base)
{
    size_t span = pat == HOT ? 1 : seg_len / size;
    long warm = (long)span;
    double t0 = now();
    for (long i = 0; i < warm; i++) copy(op, base + (size_t)(i % (long)span) * size, size);
    while (now() - t0 < seconds / 8) { /* small sizes: more warm-up calls */
        for (long i = 0; i < warm; i++) copy(op, base + (size_t)(i % (long)span) * size, size);
        warm *= 2;
    }
    long reps = (long)((double)warm * seconds / (now() - t0));
    return reps < 4 ? 4 : reps;
}

/* Seconds `reps` calls of `op` take. */
static double timed(enum op op, enum pattern pat, size_t size, long reps, size_t base)
{
    size_t span = pat == HOT ? 1 : seg_len / size;
    double t0 = now();
    for (long i = 0; i < reps; i++) {
        copy(op, base + (next_block[op] % span) * size, size);
        next_block[op]++;
    }
    return now() - t0;
}

/* Slices a measurement is cut into; ours and its baseline alternate. */
#define SLICES 6

/* GB/s (1e9 bytes) of ours (`a`) and its baseline (`b`), moving `size`
 * bytes per call for about `seconds` each. The two alternate in SLICES
 * slices, starting with either in turn, so a change in the machine's
 * state during the measurement (another VM, a frequency step) hits both
 * alike: the ratio of the sums is what the targets read. */
static void pair(enum op a, enum op b, enum pattern pat, size_t size, double seconds, int run, double *ga, double *gb)
{
    /* hot: the block moves between runs (one of 4 places), so that where
     * its pages sit in the caches, which decides sizes that just fit,
     * varies as the median is taken */
    size_t base = pat == HOT && 4 * size <= seg_len ? (size_t)(run % 4) * size : 0;
    enum op op[2] = {a, b};
    long reps[2];
    double t[2] = {0, 0};
    for (int k = 0; k < 2; k++) reps[k] = calibrate(op[k], pat, size, seconds / SLICES, base);
    for (int i = 0; i < SLICES; i++)
        for (int j = 0; j < 2; j++) {
            int k = (i + j + run) % 2;
            t[k] += timed(op[k], pat, size, reps[k], base);
        }
    if (local[size / 2] == 0x5A) fputc(' ', stderr); /* keep the copies */
    *ga = (double)size * (double)reps[0] * SLICES / t[0] / 1e9;
    *gb = (double)size * (double)reps[1] * SLICES / t[1] / 1e9;
}

/* The exporter: publishes the segment, then idles until told to leave. */
static void exporter(void *arg, int cmd, int res)
{
    (void)arg;
    struct published p = publish_segment(seg_len, SEG_ID, 0);
    reply(res, "r", 1);
    char c;
    while (next_cmd(cmd, &c, 1)) {
    }
    destroy_segment(&p);
}

int main(int argc, char **argv)
{
    bench_init("bandwidth", argc, argv);
    if (!B.smoke) B.runs = 7; /* ratios near 1 on a noisy machine need more */
    seg_len = B.smoke ? (1u << 20) : (64u << 20);
    double seconds = B.smoke ? 0.002 : 0.03;          /* per measurement, x3 from 1 MiB */
    size_t ucx_budget = B.smoke ? (4u << 20) : (1u << 30); /* bytes per ucx_perftest run */
    size_t sizes[MAX_SIZES];
    int n_sizes = 0;
    for (size_t s = 64; s <= seg_len; s *= B.smoke ? 16 : 4) sizes[n_sizes++] = s;

    struct worker exp;
    char r;
    spawn(&exp, B.cpu[0], exporter, NULL);
    w_recv(&exp, &r, 1);
    pin(B.cpu[1]); /* after the fork: the exporter runs on the other CPU */

    local = valloc(seg_len);
    if (!local) die("valloc");
    memset(local, 7, seg_len);
    int fd = memfd_create("bandwidth-raw", MFD_CLOEXEC);
    if (fd < 0 || ftruncate(fd, (off_t)seg_len) != 0) die("memfd: %s", strerror(errno));
    raw = mmap(NULL, seg_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (raw == MAP_FAILED) die("mmap: %s", strerror(errno));
    memset(raw, 0, seg_len);

    rsmapi_controller_handle_t ctl;
    check(rsm_get_controller("shm0", &ctl), "rsm_get_controller");
    check(rsm_memseg_import_connect(ctl, 0, SEG_ID, RSM_PERM_RDWR, &im), "rsm_memseg_import_connect");
    check(rsm_memseg_import_set_mode(im, RSM_BARRIER_MODE_EXPLICIT), "rsm_memseg_import_set_mode");

    /* [op][pattern][size][run]; UCX put and get in ucx[0..1][size][run] */
    static double v[N_OP][N_PATTERN][MAX_SIZES][MAX_RUNS], ucx[2][MAX_SIZES][MAX_RUNS];
    for (int run = 0; run <= B.runs; run++) /* run 0 warms up */
        for (int s = 0; s < n_sizes; s++) {
            for (int p = 0; p < N_PATTERN; p++)
                for (int k = 0; k < 2; k++) { /* put, then get first, turning with each run */
                    int dir = (k + run) % 2;
                    int ours = dir ? GET : PUT, base = dir ? MEMCPY_OUT : MEMCPY_IN;
                    double t = sizes[s] >= (1u << 20) ? 3 * seconds : seconds; /* few calls: noisier */
                    double go, gb;
                    pair(ours, base, p, sizes[s], run ? t : t / 8, run, &go, &gb);
                    if (run) v[ours][p][s][run - 1] = go, v[base][p][s][run - 1] = gb;
                }
            if (!run) continue;
            long iters = (long)(ucx_budget / sizes[s]);
            if (iters < 8) iters = 8;
            if (iters > 1000000) iters = 1000000;
            double lat, mbs;
            if (ucx_run("ucp_put_bw", sizes[s], iters, &lat, &mbs) == 0) ucx[0][s][run - 1] = mbs * 1048576 / 1e9;
            if (ucx_run("ucp_get", sizes[s], iters, &lat, &mbs) == 0) ucx[1][s][run - 1] = mbs * 1048576 / 1e9;
        }

    check(rsm_memseg_import_disconnect(im), "rsm_memseg_import_disconnect");
    check(rsm_release_controller(ctl), "rsm_release_controller");
    w_stop(&exp);

    /* rm: ours / memcpy [dir][pattern]; ru: ours / UCX [dir] (hot) */
    struct spread st[N_OP][N_PATTERN][MAX_SIZES], su[2][MAX_SIZES];
    struct spread rm[2][N_PATTERN][MAX_SIZES], ru[2][MAX_SIZES];
    FILE *csv = csv_open();
    for (int s = 0; s < n_sizes; s++) {
        for (int dir = 0; dir < 2; dir++) {
            int ours = dir ? GET : PUT, base = dir ? MEMCPY_OUT : MEMCPY_IN;
            for (int p = 0; p < N_PATTERN; p++) {
                char exp_name[64];
                snprintf(exp_name, sizeof exp_name, "%s bandwidth %s", dir ? "get" : "put", pattern_name[p]);
                st[ours][p][s] = spread_of(v[ours][p][s], B.runs);
                st[base][p][s] = spread_of(v[base][p][s], B.runs);
                rm[dir][p][s] = ratio_of(v[ours][p][s], v[base][p][s], B.runs);
                csv_row(csv, exp_name, (double)sizes[s], op_name[ours], "GB/s", st[ours][p][s]);
                csv_row(csv, exp_name, (double)sizes[s], op_name[base], "GB/s", st[base][p][s]);
                csv_ratio(csv, exp_name, (double)sizes[s], op_name[ours], op_name[base], rm[dir][p][s]);
            }
            const char *exp_name = dir ? "get bandwidth hot" : "put bandwidth hot";
            const char *ucx_name = dir ? "UCX ucp_get" : "UCX ucp_put_bw";
            su[dir][s] = spread_of(ucx[dir][s], B.ucx ? B.runs : 0);
            ru[dir][s] = ratio_of(v[ours][HOT][s], ucx[dir][s], B.ucx ? B.runs : 0);
            csv_row(csv, exp_name, (double)sizes[s], ucx_name, "GB/s", su[dir][s]);
            csv_ratio(csv, exp_name, (double)sizes[s], op_name[ours], ucx_name, ru[dir][s]);
        }
    }
    fclose(csv);

    /* Tables: put and get in the hot pattern against memcpy and UCX, then
     * the stream pattern against memcpy. */
    double worst[2][N_PATTERN] = {{9, 9}, {9, 9}}, worst_ucx = 9;
    size_t at[2][N_PATTERN] = {{0, 0}, {0, 0}}, at_ucx = 0;
    for (int dir = 0; dir < 2; dir++) {
        int ours = dir ? GET : PUT, base = dir ? MEMCPY_OUT : MEMCPY_IN;
        printf("%s bandwidth, hot (same block every call, as ucx_perftest), GB/s: median (min-max) of %d "
               "runs\n",
               dir ? "Get" : "Put", B.runs);
        printf("  %-8s %-20s %-20s %-20s %11s %9s\n", "size", op_name[ours], op_name[base],
               dir ? "UCX ucp_get" : "UCX ucp_put_bw", "ours/memcpy", "ours/UCX");
        for (int s = 0; s < n_sizes; s++) {
            double m = rm[dir][HOT][s].med, u = ru[dir][s].med;
            printf("  %-8s %-20s %-20s %-20s %11s %9s\n", size_label((double)sizes[s]), sp(st[ours][HOT][s], 2),
                   sp(st[base][HOT][s], 2), sp(su[dir][s], 2), rx(rm[dir][HOT][s]), rx(ru[dir][s]));
            if (sizes[s] >= 65536 && m < worst[dir][HOT]) worst[dir][HOT] = m, at[dir][HOT] = sizes[s];
            if (!dir && u > 0 && u < worst_ucx) worst_ucx = u, at_ucx = sizes[s];
        }
        printf("\n");
    }
    printf("Bandwidth, stream (offset walks the %s segment), GB/s: median (min-max) of %d runs\n",
           size_label((double)seg_len), B.runs);
    printf("  %-8s %-20s %-20s %7s   %-20s %-20s %7s\n", "size", op_name[PUT], op_name[MEMCPY_IN], "ratio",
           op_name[GET], op_name[MEMCPY_OUT], "ratio");
    for (int s = 0; s < n_sizes; s++) {
        printf("  %-8s %-20s %-20s %7s   %-20s %-20s %7s\n", size_label((double)sizes[s]),
               sp(st[PUT][STREAM][s], 2), sp(st[MEMCPY_IN][STREAM][s], 2), rx(rm[0][STREAM][s]),
               sp(st[GET][STREAM][s], 2), sp(st[MEMCPY_OUT][STREAM][s], 2), rx(rm[1][STREAM][s]));
        for (int dir = 0; dir < 2; dir++)
            if (sizes[s] >= 65536 && rm[dir][STREAM][s].med < worst[dir][STREAM])
                worst[dir][STREAM] = rm[dir][STREAM][s].med, at[dir][STREAM] = sizes[s];
    }
    printf("(ratio: median over the runs of ours / baseline measured side by side in each run; explicit\n"
           " barrier mode; UCX MB/s converted to GB/s of 1e9 bytes)\n");
    for (int dir = 0; dir < 2; dir++)
        for (int p = 0; p < N_PATTERN; p++) {
            char what[128];
            snprintf(what, sizeof what, "%s / memcpy from 64 KiB, %s, worst size (%s)", dir ? "get" : "put",
                     pattern_name[p], at[dir][p] ? size_label((double)at[dir][p]) : "none");
            target(what, at[dir][p] ? worst[dir][p] : 0, 0, 0.95, "x");
        }
    if (at_ucx) {
        char what[128];
        snprintf(what, sizeof what, "put / UCX put bandwidth, hot, worst size (%s)", size_label((double)at_ucx));
        target(what, worst_ucx, 0, 1.0, "x");
    } else {
        target("put / UCX put bandwidth (UCX not measured)", 0, 0, 1.0, "x");
    }
    return 0;
}
