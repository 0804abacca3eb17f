/*
 * Ping-pong latency through shared memory between two processes, one way
 * (half a round trip), message sizes 8 B to 4 KiB.
 *
 * A message of S bytes is S - 8 bytes of payload and an 8-byte sequence
 * number in its last word, stored after the payload with release order;
 * the receiver spins on that word (as ucx_perftest's put latency test
 * polls the last byte). A sends the ping, B answers with a pong of the
 * same size on the next page. B is the exporter (it works on its own
 * memory), A the importer; they run on two CPUs. Each run spreads its
 * round trips over 8 such page pairs: where the two lines sit physically
 * moves the figure by up to 15% for the life of a mapping, the same for
 * the RSM mapping and the memfd, so one pair would measure luck.
 *
 *   ours, mapped   A maps B's segment with rsm_memseg_import_map and uses
 *                  plain loads and stores through the mapping
 *   ours, put/get  A writes with rsm_memseg_import_put (payload) and
 *                  rsm_memseg_import_put64 (sequence number) and polls the
 *                  pong with rsm_memseg_import_get64, in the default
 *                  implicit barrier mode (each call its own barrier)
 *   raw flag       the same code as "mapped", in the same two processes,
 *                  over a memfd both mmap MAP_SHARED: the limit for this
 *                  machine (only the mapping differs)
 *   UCX            ucx_perftest -t ucp_put_lat, UCX_TLS=posix,self, client
 *                  and server on localhost, same CPUs, same sizes
 *
 * Ours and its baselines alternate within each run. Targets (issue 6):
 * mapped ping-pong <= 1.1x the raw flag and <= UCX at every size.
 */
#define _GNU_SOURCE
#include "bench.h"
#include <sys/mman.h>

#define PONG PP_PONG           /* offset of B's answer in a slot */
#define SLOT PP_SLOT           /* a ping page and a pong page */
#define SLOTS PP_SLOTS         /* page pairs each run goes through */
#define SEGLEN (SLOT * SLOTS) /* the segment */
#define SEG_ID 0x400001

enum method { RAW, MAP, PUT, UCX, N_METHOD };
static const char *method_name[N_METHOD] = {"raw flag", "ours mapped", "ours put/get", "UCX ucp_put_lat"};

struct cmd {
    int method;
    int size;
    long n; /* round trips */
};

static char payload[4096];
static int raw_fd; /* the raw baseline's memfd, made before the workers */

/* B: answers n pings (bench.h). */
static void answer(char *mem, size_t size, long n, uint64_t *seq) { pp_answer(mem, payload, size, n, seq); }

/* A, through plain loads and stores: seconds for n round trips. */
static double bounce_mapped(char *mem, size_t size, long n, uint64_t *seq)
{
    return pp_bounce(mem, payload, size, n, seq);
}

/* A, through put/get calls (implicit barriers: each put is complete and
 * ordered before the next call). */
static double bounce_putget(rsm_memseg_import_handle_t im, size_t size, long n, uint64_t *seq)
{
    double t0 = now();
    for (int k = 0; k < SLOTS; k++) {
        off_t slot = (off_t)k * SLOT, ping = slot + (off_t)size - 8, pong = slot + PONG + (off_t)size - 8;
        for (long i = 0; i < n / SLOTS; i++) {
            uint64_t q = ++*seq, v = 0;
            if (size > 8) check(rsm_memseg_import_put(im, slot, payload, size - 8), "rsm_memseg_import_put");
            check(rsm_memseg_import_put64(im, ping, &q, 1), "rsm_memseg_import_put64");
            do {
                check(rsm_memseg_import_get64(im, pong, &v, 1), "rsm_memseg_import_get64");
                if (v != q) relax();
            } while (v != q);
        }
    }
    return now() - t0;
}

static char *map_raw(void)
{
    char *mem = mmap(NULL, SEGLEN, PROT_READ | PROT_WRITE, MAP_SHARED, raw_fd, 0);
    if (mem == MAP_FAILED) die("mmap memfd: %s", strerror(errno));
    return mem;
}

/* ---- The two processes ---- */

static void exporter(void *arg, int cmd, int res)
{
    (void)arg;
    char *raw = map_raw();
    char *mem = valloc(SEGLEN);
    if (!mem) die("valloc");
    memset(mem, 0, SEGLEN);
    rsmapi_controller_handle_t ctl;
    rsm_memseg_export_handle_t seg;
    rsm_memseg_id_t id = SEG_ID;
    check(rsm_get_controller("shm0", &ctl), "rsm_get_controller");
    check(rsm_memseg_export_create(ctl, &seg, mem, SEGLEN, 0), "rsm_memseg_export_create");
    check(rsm_memseg_export_publish(seg, &id, NULL, 0), "rsm_memseg_export_publish");
    reply(res, "r", 1);
    uint64_t seq = 0;
    for (struct cmd c; next_cmd(cmd, &c, sizeof c);) answer(c.method == RAW ? raw : mem, (size_t)c.size, c.n, &seq);
    check(rsm_memseg_export_unpublish(seg), "rsm_memseg_export_unpublish");
    check(rsm_memseg_export_destroy(seg), "rsm_memseg_export_destroy");
    check(rsm_release_controller(ctl), "rsm_release_controller");
}

static void importer(void *arg, int cmd, int res)
{
    (void)arg;
    char *raw = map_raw();
    rsmapi_controller_handle_t ctl;
    rsm_memseg_import_handle_t im;
    rsmapi_barrier_t bar;
    void *addr = NULL;
    check(rsm_get_controller("shm0", &ctl), "rsm_get_controller");
    check(rsm_memseg_import_connect(ctl, 0, SEG_ID, RSM_PERM_RDWR, &im), "rsm_memseg_import_connect");
    check(rsm_memseg_import_map(im, &addr, RSM_MAP_NONE, RSM_PERM_RDWR, 0, SEGLEN), "rsm_memseg_import_map");
    check(rsm_memseg_import_init_barrier(im, RSM_BARRIER_SEGMENT, &bar), "rsm_memseg_import_init_barrier");
    uint64_t seq = 0;
    for (struct cmd c; next_cmd(cmd, &c, sizeof c);) {
        double t = c.method == PUT ? bounce_putget(im, (size_t)c.size, c.n, &seq)
                                   : bounce_mapped(c.method == RAW ? raw : addr, (size_t)c.size, c.n, &seq);
        reply(res, &t, sizeof t);
    }
    check(rsm_memseg_import_destroy_barrier(&bar), "rsm_memseg_import_destroy_barrier");
    check(rsm_memseg_import_unmap(im), "rsm_memseg_import_unmap");
    check(rsm_memseg_import_disconnect(im), "rsm_memseg_import_disconnect");
    check(rsm_release_controller(ctl), "rsm_release_controller");
}

/* ---- Driver ---- */

static const size_t full_sizes[] = {8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096};
static const size_t smoke_sizes[] = {8, 64, 4096};
#define MAX_SIZES 10

int main(int argc, char **argv)
{
    bench_init("pingpong", argc, argv);
    const size_t *sizes = B.smoke ? smoke_sizes : full_sizes;
    int n_sizes = B.smoke ? 3 : 10;
    long n = B.smoke ? 2000 : 100000; /* round trips per run */
    memset(payload, 0xA5, sizeof payload);
    if (B.ncpus < 2 && B.ucx) {
        /* ucx_perftest polls without yielding: on one CPU each round trip
         * would wait for a time slice */
        snprintf(ucx_why, sizeof ucx_why, "one CPU: ucx_perftest's latency test needs two");
        printf("(UCX not measured: %s)\n", ucx_why);
        B.ucx = 0;
    }

    raw_fd = memfd_create("pingpong-raw", MFD_CLOEXEC);
    if (raw_fd < 0 || ftruncate(raw_fd, SEGLEN) != 0) die("memfd: %s", strerror(errno));

    /* B exports, A imports; both also map the raw memfd. A on the second
     * CPU, B on the first, as UCX's client and server. */
    struct worker b, a;
    char r;
    spawn(&b, B.cpu[0], exporter, NULL);
    w_recv(&b, &r, 1);
    spawn(&a, B.cpu[1], importer, NULL);

    static double v[N_METHOD][MAX_SIZES][MAX_RUNS]; /* ns one way */
    for (int run = 0; run <= B.runs; run++) {         /* run 0 warms up */
        for (int s = 0; s < n_sizes; s++) {
            for (int m = RAW; m <= PUT; m++) {
                struct cmd c = {m, (int)sizes[s], run ? n : n / 10};
                w_send(&b, &c, sizeof c);
                w_send(&a, &c, sizeof c);
                double t;
                w_recv(&a, &t, sizeof t);
                if (run) v[m][s][run - 1] = t * 1e9 / (2.0 * (double)(c.n / SLOTS * SLOTS));
            }
            double lat, bw;
            if (run && ucx_run("ucp_put_lat", sizes[s], n, &lat, &bw) == 0) v[UCX][s][run - 1] = lat * 1e3;
        }
    }
    w_stop(&a); /* the importer leaves before the exporter */
    w_stop(&b);

    /* ratios per run: [ours: MAP, PUT][baseline: RAW, UCX] */
    struct spread st[N_METHOD][MAX_SIZES], rt[2][2][MAX_SIZES];
    FILE *csv = csv_open();
    for (int s = 0; s < n_sizes; s++) {
        for (int m = 0; m < N_METHOD; m++) {
            st[m][s] = spread_of(v[m][s], m == UCX && !B.ucx ? 0 : B.runs);
            csv_row(csv, "one-way latency", (double)sizes[s], method_name[m], "ns", st[m][s]);
        }
        for (int o = 0; o < 2; o++)
            for (int b = 0; b < 2; b++) {
                rt[o][b][s] = ratio_of(v[o ? PUT : MAP][s], v[b ? UCX : RAW][s], B.ucx || !b ? B.runs : 0);
                csv_ratio(csv, "one-way latency", (double)sizes[s], method_name[o ? PUT : MAP],
                          method_name[b ? UCX : RAW], rt[o][b][s]);
            }
    }
    fclose(csv);

    printf("Ping-pong one-way latency between two processes, ns: median (min-max) of %d runs of %ld round "
           "trips\n",
           B.runs, n);
    printf("  %-7s %-16s %-16s %-16s %-16s %8s %8s %8s %8s\n", "size", method_name[MAP], method_name[PUT],
           method_name[RAW], method_name[UCX], "map/raw", "map/UCX", "put/raw", "put/UCX");
    double worst_raw = 0, worst_ucx = 0;
    size_t at_raw = 0, at_ucx = 0;
    int met_raw = 0, met_ucx = 0;
    for (int s = 0; s < n_sizes; s++) {
        double to_raw = rt[0][0][s].med, to_ucx = rt[0][1][s].med;
        printf("  %-7s %-16s %-16s %-16s %-16s %8s %8s %8s %8s\n", size_label((double)sizes[s]),
               sp(st[MAP][s], 0), sp(st[PUT][s], 0), sp(st[RAW][s], 0), sp(st[UCX][s], 0), rx(rt[0][0][s]),
               rx(rt[0][1][s]), rx(rt[1][0][s]), rx(rt[1][1][s]));
        if (to_raw > worst_raw) worst_raw = to_raw, at_raw = sizes[s];
        met_raw += to_raw <= 1.1;
        if (to_ucx > 0) {
            if (to_ucx > worst_ucx) worst_ucx = to_ucx, at_ucx = sizes[s];
            met_ucx += to_ucx <= 1.0;
        }
    }
    printf("(ratio: median over the runs of ours / baseline measured side by side in each run)\n");
    printf("(ours mapped and raw flag: the same code in the same two processes, over the RSM mapping and\n"
           " over a plain memfd mapping)\n");
    char what[128];
    snprintf(what, sizeof what, "mapped ping-pong / raw flag, worst size (%s; %d of %d sizes met)",
             size_label((double)at_raw), met_raw, n_sizes);
    target(what, worst_raw, 1, 1.1, "x");
    if (worst_ucx > 0) {
        snprintf(what, sizeof what, "mapped ping-pong / UCX put latency, worst size (%s; %d of %d met)",
                 size_label((double)at_ucx), met_ucx, n_sizes);
        target(what, worst_ucx, 1, 1.0, "x");
    } else {
        target("mapped ping-pong / UCX put latency (UCX not measured)", 0, 1, 1.0, "x");
    }
    return 0;
}
