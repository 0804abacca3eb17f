/*
 * The window transport against shm0 (issue 8 item 6), in the same run,
 * through the public API: an exporter process (node 0) and an importer
 * process (node 1), each with its own config file naming a window
 * controller `win0` over two window files in /dev/shm (README "Window
 * controllers"), and both also open `shm0`. Every experiment runs over
 * both controllers in the same two processes, alternating within each run;
 * a ratio is window / shm0 per run, then the median.
 *
 *   latency    mapped ping-pong one-way latency, 8 B to 4 KiB: the code
 *              of pingpong.c's "ours mapped" (payload, then a sequence
 *              number stored with release order in the last 8 bytes; the
 *              other side spins on it), over the segment mapped with
 *              rsm_memseg_import_map
 *   bandwidth  rsm_memseg_import_put and _get, 64 B to 64 MiB, explicit
 *              barrier mode, the hot and stream patterns of bandwidth.c
 *   signals    rsm_intr_signal_post -> rsm_intr_signal_wait round trip,
 *              importer posts, exporter waits and posts back: spinning
 *              (RSM_SPIN_US=200000) and blocking (RSM_SPIN_US=0, a second
 *              pair of processes: the spin bound is read once per process)
 *
 * The two "hosts" are plain processes with different node ids, not
 * network namespaces as in ctests/window.c: the window transport uses no
 * socket at all (everything crosses the window files), so the namespaces
 * there only prove that; here they would keep shm0 from connecting the
 * same two processes. On this machine a window is a /dev/shm file, the
 * same memory as shm0's memfd, so the data path should measure the same;
 * what differs is control: window signals that sleep are seen by an agent
 * thread that polls the window (no interrupt across hosts yet).
 *
 * No target (the issue gives none): the tables print the ratios and what
 * bounds them. The window files and config files are per run
 * (/dev/shm/rsm-bench-window-<pid>-*) and removed at the end; files of a
 * killed run are removed by the next.
 */
#define _GNU_SOURCE
#include "bench.h"
#include <dirent.h>
#include <sys/mman.h>

enum ctl { SHM, WIN, N_CTL };
static char *ctl_name[N_CTL] = {"shm0", "win0"}; /* rsm_get_controller takes char * */
static const char *lat_name[N_CTL] = {"shm0 mapped", "window mapped"};

/* ping-pong segment: as pingpong.c */
#define PONG PP_PONG
#define SLOT PP_SLOT
#define SLOTS PP_SLOTS
#define PP_LEN (SLOT * SLOTS)
#define PP_ID 0x400010 /* + pair */
#define BW_ID 0x400020
#define MAX_SIZES 16
#define TIMED_MS 10000

enum kind { PING, PUT_HOT, PUT_STREAM, GET_HOT, GET_STREAM, SIGNAL };
static const char *bw_exp[] = {NULL, "put bandwidth hot", "put bandwidth stream", "get bandwidth hot",
                               "get bandwidth stream"};
static const char *bw_name[] = {NULL, "put", "put", "get", "get"};

struct cmd {
    int kind, ctl, run;
    long size; /* bytes (ping, bandwidth) */
    long n;    /* round trips (ping, signal) */
    double seconds; /* bandwidth: how long to measure */
};

static pid_t main_pid;
static char window_path[2][96], config_path[2][96];
static size_t seg_len;        /* the bandwidth segment */
static char payload[4096];

/* ---- Files: windows and config files, per run ---- */

static void cleanup(void)
{
    if (getpid() != main_pid) return; /* workers inherit the atexit hook */
    for (int n = 0; n < 2; n++) {
        if (window_path[n][0]) unlink(window_path[n]);
        if (config_path[n][0]) unlink(config_path[n]);
    }
}

static void on_signal(int sig)
{
    cleanup();
    signal(sig, SIG_DFL);
    raise(sig);
}

/* Files of runs that died before their cleanup (the watchdog _exits). */
static void remove_stale(void)
{
    DIR *d = opendir("/dev/shm");
    for (struct dirent *e; d && (e = readdir(d));) {
        int pid = 0;
        char path[300];
        if (sscanf(e->d_name, "rsm-bench-window-%d-", &pid) != 1) continue;
        if (kill(pid, 0) == 0 || errno != ESRCH) continue;
        snprintf(path, sizeof path, "/dev/shm/%s", e->d_name);
        unlink(path);
    }
    if (d) closedir(d);
}

/* Node 0's window holds the exporters' segments, node 1's only its
 * control area (the importer attaches to its own node's window too). */
static void make_files(void)
{
    size_t size[2];
    size[0] = ((seg_len + 4 * PP_LEN) >> 20) + 2; /* MiB: data + 640 KiB control area */
    size[1] = 1;
    for (int n = 0; n < 2; n++) {
        snprintf(window_path[n], sizeof window_path[n], "/dev/shm/rsm-bench-window-%d-node%d", (int)main_pid, n);
        snprintf(config_path[n], sizeof config_path[n], "/dev/shm/rsm-bench-window-%d-node%d.conf",
                 (int)main_pid, n);
        int fd = open(window_path[n], O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0 || ftruncate(fd, (off_t)(size[n] << 20)) != 0) die("%s: %s", window_path[n], strerror(errno));
        close(fd);
    }
    for (int n = 0; n < 2; n++) { /* the same windows, seen from each node */
        FILE *f = fopen(config_path[n], "w");
        if (!f) die("%s: %s", config_path[n], strerror(errno));
        fprintf(f, "# windowbench: the %s's host\nnode_id = %d\n\n[controller win0]\ntype = window\n",
                n ? "importer" : "exporter", n);
        for (int w = 0; w < 2; w++) fprintf(f, "node %d = %s 0 %zuM\n", w, window_path[w], size[w]);
        if (fclose(f) != 0) die("%s: %s", config_path[n], strerror(errno));
    }
}

/* In a worker, before its first RSM call: which host it is. */
static void be_node(int node, const char *spin_us)
{
    unsetenv("RSM_NODE_ID"); /* the config file says */
    setenv("RSM_CONFIG", config_path[node], 1);
    setenv("RSM_SPIN_US", spin_us, 1);
}

/* ---- Ping-pong (pingpong.c's mapped method) ---- */

static void answer(char *mem, size_t size, long n, uint64_t *seq) { pp_answer(mem, payload, size, n, seq); }

static double bounce(char *mem, size_t size, long n, uint64_t *seq) { return pp_bounce(mem, payload, size, n, seq); }

/* ---- Bandwidth (bandwidth.c's method) ---- */

static char *local; /* the importer's buffer */

static void copy(rsm_memseg_import_handle_t im, int put, size_t off, size_t size)
{
    if (put) check(rsm_memseg_import_put(im, (off_t)off, local, size), "rsm_memseg_import_put");
    else check(rsm_memseg_import_get(im, (off_t)off, local, size), "rsm_memseg_import_get");
}

/* GB/s moving `size` bytes per call for about `seconds`, after an untimed
 * pass that sizes the run and sets this operation's cache state. */
static double bandwidth(rsm_memseg_import_handle_t im, int kind, size_t size, double seconds, int run)
{
    int put = kind == PUT_HOT || kind == PUT_STREAM, hot = kind == PUT_HOT || kind == GET_HOT;
    size_t span = hot ? 1 : seg_len / size;
    size_t base = hot && 4 * size <= seg_len ? (size_t)(run % 4) * size : 0;
    long warm = (long)span, reps;
    double t0 = now();
    for (long i = 0; i < warm; i++) copy(im, put, base + (size_t)(i % (long)span) * size, size);
    while (now() - t0 < seconds / 8) {
        for (long i = 0; i < warm; i++) copy(im, put, base + (size_t)(i % (long)span) * size, size);
        warm *= 2;
    }
    reps = (long)((double)warm * seconds / (now() - t0));
    if (reps < 4) reps = 4;
    t0 = now();
    for (long i = 0; i < reps; i++) copy(im, put, base + (size_t)(i % (long)span) * size, size);
    double t = now() - t0;
    if (local[size / 2] == 0x5A) fputc(' ', stderr); /* keep the copies */
    return (double)size * (double)reps / t / 1e9;
}

/* ---- The two processes ---- */

struct pair_cfg {
    int pair;            /* 0: data and spinning signals; 1: blocking signals */
    const char *spin_us; /* RSM_SPIN_US of both processes */
    int wait_ms;         /* timeout of the waits (-1: none, as eventbench's blocking rows) */
};

static void exporter(void *arg, int cmd, int res)
{
    const struct pair_cfg *p = arg;
    be_node(0, p->spin_us);
    rsmapi_controller_handle_t ctl[N_CTL];
    rsm_memseg_export_handle_t pp[N_CTL], bw[N_CTL];
    char *pp_mem[N_CTL];
    for (int c = 0; c < N_CTL; c++) {
        rsm_memseg_id_t id = PP_ID + (rsm_memseg_id_t)p->pair;
        check(rsm_get_controller(ctl_name[c], &ctl[c]), "rsm_get_controller");
        pp_mem[c] = valloc(PP_LEN);
        if (!pp_mem[c]) die("valloc");
        memset(pp_mem[c], 0, PP_LEN);
        check(rsm_memseg_export_create(ctl[c], &pp[c], pp_mem[c], PP_LEN, 0), "rsm_memseg_export_create");
        check(rsm_memseg_export_publish(pp[c], &id, NULL, 0), "rsm_memseg_export_publish");
        if (p->pair == 0) {
            char *mem = valloc(seg_len);
            if (!mem) die("valloc");
            memset(mem, 0, seg_len);
            id = BW_ID;
            check(rsm_memseg_export_create(ctl[c], &bw[c], mem, seg_len, 0), "rsm_memseg_export_create");
            check(rsm_memseg_export_publish(bw[c], &id, NULL, 0), "rsm_memseg_export_publish");
        }
    }
    reply(res, "r", 1);
    uint64_t seq = 0;
    for (struct cmd c; next_cmd(cmd, &c, sizeof c);) {
        if (c.kind == PING) {
            answer(pp_mem[c.ctl], (size_t)c.size, c.n, &seq);
        } else if (c.kind == SIGNAL) {
            for (long i = 0; i < c.n; i++) {
                check(rsm_intr_signal_wait(pp[c.ctl], p->wait_ms), "rsm_intr_signal_wait on the export handle");
                check(rsm_intr_signal_post(pp[c.ctl], 0), "rsm_intr_signal_post on the export handle");
            }
        }
    }
    for (int c = 0; c < N_CTL; c++) {
        check(rsm_memseg_export_unpublish(pp[c]), "rsm_memseg_export_unpublish");
        check(rsm_memseg_export_destroy(pp[c]), "rsm_memseg_export_destroy");
        if (p->pair == 0) {
            check(rsm_memseg_export_unpublish(bw[c]), "rsm_memseg_export_unpublish");
            check(rsm_memseg_export_destroy(bw[c]), "rsm_memseg_export_destroy");
        }
        check(rsm_release_controller(ctl[c]), "rsm_release_controller");
    }
}

static void importer(void *arg, int cmd, int res)
{
    const struct pair_cfg *p = arg;
    be_node(1, p->spin_us);
    rsmapi_controller_handle_t ctl[N_CTL];
    rsm_memseg_import_handle_t pp[N_CTL], bw[N_CTL];
    void *addr[N_CTL];
    if (p->pair == 0) {
        local = valloc(seg_len);
        if (!local) die("valloc");
        memset(local, 7, seg_len);
    }
    for (int c = 0; c < N_CTL; c++) {
        check(rsm_get_controller(ctl_name[c], &ctl[c]), "rsm_get_controller");
        check(rsm_memseg_import_connect(ctl[c], 0, PP_ID + (rsm_memseg_id_t)p->pair, RSM_PERM_RDWR, &pp[c]),
              "rsm_memseg_import_connect");
        addr[c] = NULL;
        check(rsm_memseg_import_map(pp[c], &addr[c], RSM_MAP_NONE, RSM_PERM_RDWR, 0, PP_LEN),
              "rsm_memseg_import_map");
        if (p->pair == 0) {
            check(rsm_memseg_import_connect(ctl[c], 0, BW_ID, RSM_PERM_RDWR, &bw[c]), "rsm_memseg_import_connect");
            check(rsm_memseg_import_set_mode(bw[c], RSM_BARRIER_MODE_EXPLICIT), "rsm_memseg_import_set_mode");
        }
    }
    reply(res, "r", 1);
    uint64_t seq = 0;
    for (struct cmd c; next_cmd(cmd, &c, sizeof c);) {
        double v = 0;
        if (c.kind == PING) {
            v = bounce(addr[c.ctl], (size_t)c.size, c.n, &seq);
        } else if (c.kind == SIGNAL) {
            double t0 = now();
            for (long i = 0; i < c.n; i++) {
                check(rsm_intr_signal_post(pp[c.ctl], 0), "rsm_intr_signal_post on the import handle");
                check(rsm_intr_signal_wait(pp[c.ctl], p->wait_ms), "rsm_intr_signal_wait on the import handle");
            }
            v = now() - t0;
        } else {
            v = bandwidth(bw[c.ctl], c.kind, (size_t)c.size, c.seconds, c.run);
        }
        reply(res, &v, sizeof v);
    }
    for (int c = 0; c < N_CTL; c++) {
        check(rsm_memseg_import_unmap(pp[c]), "rsm_memseg_import_unmap");
        check(rsm_memseg_import_disconnect(pp[c]), "rsm_memseg_import_disconnect");
        if (p->pair == 0) check(rsm_memseg_import_disconnect(bw[c]), "rsm_memseg_import_disconnect");
        check(rsm_release_controller(ctl[c]), "rsm_release_controller");
    }
}

struct pair {
    struct worker exp, imp;
};

static void start_pair(struct pair *w, struct pair_cfg *cfg)
{
    char r;
    spawn(&w->exp, B.cpu[0], exporter, cfg);
    w_recv(&w->exp, &r, 1);
    spawn(&w->imp, B.cpu[1], importer, cfg);
    w_recv(&w->imp, &r, 1);
}

static void stop_pair(struct pair *w)
{
    w_stop(&w->imp); /* the importer leaves before the exporter */
    w_stop(&w->exp);
}

/* One command to the pair; the importer's answer. */
static double ask(struct pair *w, struct cmd c)
{
    double v;
    if (c.kind == PING || c.kind == SIGNAL) w_send(&w->exp, &c, sizeof c);
    w_send(&w->imp, &c, sizeof c);
    w_recv(&w->imp, &v, sizeof v);
    return v;
}

/* ---- Driver ---- */

static const size_t lat_full[] = {8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096};
static const size_t lat_smoke[] = {8, 64, 4096};

int main(int argc, char **argv)
{
    bench_init("window", argc, argv);
    main_pid = getpid();
    if (!B.smoke) B.runs = 7; /* bandwidth ratios near 1 need more, as bandwidth.c */
    seg_len = B.smoke ? (1u << 20) : (64u << 20);
    const size_t *lat_sizes = B.smoke ? lat_smoke : lat_full;
    int n_lat = B.smoke ? 3 : 10;
    long n_ping = B.smoke ? 2000 : 100000;
    double seconds = B.smoke ? 0.002 : 0.03;
    size_t bw_sizes[MAX_SIZES];
    int n_bw = 0;
    for (size_t s = 64; s <= seg_len; s *= B.smoke ? 16 : 4) bw_sizes[n_bw++] = s;
    /* round trips per run: spinning, blocking shm0, blocking window */
    long n_spin = B.smoke ? 2000 : 50000, n_block[N_CTL] = {B.smoke ? 200 : 5000, B.smoke ? 20 : 500};
    memset(payload, 0xA5, sizeof payload);

    remove_stale();
    atexit(cleanup);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGHUP, on_signal);
    make_files();

    struct pair_cfg cfg[2] = {{0, "200000", TIMED_MS}, {1, "0", -1}};
    struct pair w[2];
    start_pair(&w[0], &cfg[0]);
    start_pair(&w[1], &cfg[1]);

    static double lat[N_CTL][MAX_SIZES][MAX_RUNS];       /* ns one way */
    static double bw[5][N_CTL][MAX_SIZES][MAX_RUNS];     /* [kind][ctl] GB/s */
    static double sig[2][N_CTL][MAX_RUNS];               /* [spin, block][ctl] ns per round trip */
    for (int run = 0; run <= B.runs; run++) { /* run 0 warms up */
        int first = run % 2;                   /* which controller goes first turns */
        for (int s = 0; s < n_lat; s++)
            for (int k = 0; k < N_CTL; k++) {
                int c = (k + first) % N_CTL;
                struct cmd m = {PING, c, run, (long)lat_sizes[s], run ? n_ping : n_ping / 10, 0};
                double t = ask(&w[0], m);
                if (run) lat[c][s][run - 1] = t * 1e9 / (2.0 * (double)(m.n / SLOTS * SLOTS));
            }
        for (int s = 0; s < n_bw; s++)
            for (int kind = PUT_HOT; kind <= GET_STREAM; kind++)
                for (int k = 0; k < N_CTL; k++) {
                    int c = (k + first) % N_CTL;
                    double t = bw_sizes[s] >= (1u << 20) ? 3 * seconds : seconds;
                    struct cmd m = {kind, c, run, (long)bw_sizes[s], 0, run ? t : t / 8};
                    double g = ask(&w[0], m);
                    if (run) bw[kind][c][s][run - 1] = g;
                }
        for (int mode = 0; mode < 2; mode++)
            for (int k = 0; k < N_CTL; k++) {
                int c = (k + first) % N_CTL;
                long n = mode ? n_block[c] : n_spin;
                struct cmd m = {SIGNAL, c, run, 0, run ? n : n / 10 + 1, 0};
                double t = ask(&w[mode], m);
                if (run) sig[mode][c][run - 1] = t * 1e9 / (double)m.n;
            }
    }
    stop_pair(&w[1]);
    stop_pair(&w[0]);

    FILE *csv = csv_open();
    struct spread st[N_CTL][MAX_SIZES], rt[MAX_SIZES];
    printf("Window (win0, /dev/shm files) against shm0, same two processes (node 0 exports, node 1\n"
           "imports), same run; median (min-max) of %d runs; ratio = median of per-run window / shm0\n\n",
           B.runs);
    printf("Mapped ping-pong, one-way latency, ns (%ld round trips per run)\n", n_ping);
    printf("  %-8s %-18s %-18s %8s\n", "size", lat_name[SHM], lat_name[WIN], "win/shm0");
    double lo = 1e9, hi = 0;
    for (int s = 0; s < n_lat; s++) {
        for (int c = 0; c < N_CTL; c++) {
            st[c][s] = spread_of(lat[c][s], B.runs);
            csv_row(csv, "one-way latency", (double)lat_sizes[s], lat_name[c], "ns", st[c][s]);
        }
        rt[s] = ratio_of(lat[WIN][s], lat[SHM][s], B.runs);
        csv_ratio(csv, "one-way latency", (double)lat_sizes[s], lat_name[WIN], lat_name[SHM], rt[s]);
        if (rt[s].med < lo) lo = rt[s].med;
        if (rt[s].med > hi) hi = rt[s].med;
        printf("  %-8s %-18s %-18s %8s\n", size_label((double)lat_sizes[s]), sp(st[SHM][s], 0), sp(st[WIN][s], 0),
               rx(rt[s]));
    }
    printf("  window / shm0 over the sizes: %.2fx to %.2fx\n\n", lo, hi);

    for (int kind = PUT_HOT; kind <= GET_STREAM; kind++) {
        char shm[32], win[32];
        snprintf(shm, sizeof shm, "shm0 %s", bw_name[kind]);
        snprintf(win, sizeof win, "window %s", bw_name[kind]);
        printf("%s, GB/s (%s)\n", bw_exp[kind],
               kind == PUT_HOT || kind == GET_HOT ? "the same block every call"
                                                   : "the offset walks the whole segment");
        printf("  %-8s %-24s %-24s %8s\n", "size", shm, win, "win/shm0");
        lo = 1e9, hi = 0;
        for (int s = 0; s < n_bw; s++) {
            struct spread a = spread_of(bw[kind][SHM][s], B.runs), b = spread_of(bw[kind][WIN][s], B.runs);
            struct spread r = ratio_of(bw[kind][WIN][s], bw[kind][SHM][s], B.runs);
            csv_row(csv, bw_exp[kind], (double)bw_sizes[s], shm, "GB/s", a);
            csv_row(csv, bw_exp[kind], (double)bw_sizes[s], win, "GB/s", b);
            csv_ratio(csv, bw_exp[kind], (double)bw_sizes[s], win, shm, r);
            if (r.med < lo) lo = r.med;
            if (r.med > hi) hi = r.med;
            printf("  %-8s %-24s %-24s %8s\n", size_label((double)bw_sizes[s]), sp(a, 2), sp(b, 2), rx(r));
        }
        printf("  window / shm0 over the sizes: %.2fx to %.2fx\n\n", lo, hi);
    }

    static const char *sig_exp[2] = {"signal round trip spinning", "signal round trip blocking"};
    printf("Signal post -> wait round trip, ns (importer posts, exporter waits and posts back)\n");
    printf("  %-44s %-24s %-24s %8s\n", "mode (round trips per run, shm0 / window)", "shm0", "window", "win/shm0");
    for (int mode = 0; mode < 2; mode++) {
        struct spread a = spread_of(sig[mode][SHM], B.runs), b = spread_of(sig[mode][WIN], B.runs);
        struct spread r = ratio_of(sig[mode][WIN], sig[mode][SHM], B.runs);
        csv_row(csv, sig_exp[mode], 0, "shm0", "ns", a);
        csv_row(csv, sig_exp[mode], 0, "window", "ns", b);
        csv_ratio(csv, sig_exp[mode], 0, "window", "shm0", r);
        char label[64];
        snprintf(label, sizeof label, "%s (%ld / %ld)",
                 mode ? "blocking, RSM_SPIN_US=0" : "spinning, RSM_SPIN_US=200000", mode ? n_block[SHM] : n_spin,
                 mode ? n_block[WIN] : n_spin);
        printf("  %-44s %-24s %-24s %8s\n", label, sp(a, 0), sp(b, 0), rx(r));
    }
    fclose(csv);

    printf("\nWhat bounds the ratios: here a window is a /dev/shm file, the same memory as shm0's memfd,\n"
           "mapped the same way, and put/get and mapped stores are the same memcpy and plain stores: the\n"
           "data path should measure 1.0x, and spinning signals are the same counters in shared memory.\n"
           "A blocking wait differs: across hosts there is no futex or pipe to ring, so the waiter\n"
           "sleeps on a pipe that its own agent thread rings when it polls the window and finds the\n"
           "count moved (every 20 us after activity, backing off to 1 ms while a thread waits); shm0\n"
           "wakes the sleeper with a system call at once. On a real NTB the data path is bounded by\n"
           "the link instead (posted writes through the BAR; reads are non-posted round trips).\n");
    if (B.smoke) printf("(smoke run: figures mean nothing)\n");
    return 0;
}
