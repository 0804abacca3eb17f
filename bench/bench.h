/*
 * What the benchmark drivers share (bench/README.md describes the suite):
 *
 *   options     --smoke (tiny sizes and counts: checks that everything
 *               runs, its figures mean nothing), --out DIR (where CSV
 *               files go), --no-ucx (skip the ucx_perftest baselines)
 *   statistics  every figure is the median of B.runs runs, printed and
 *               written with its spread (min and max)
 *   workers     child processes pinned to a CPU, driven over two pipes,
 *               killed if the driver dies (PR_SET_PDEATHSIG)
 *   output      one long-format CSV per driver and one line per target,
 *               MET or MISSED; targets are reported, never asserted
 *   UCX         ucx_perftest as server and client on localhost with
 *               UCX_TLS=posix,self; if it cannot run, the driver says why
 *               and goes on without it
 *
 * A driver exits non-zero only on a real error: an RSM call that fails, a
 * worker that dies, a hang (watchdog). Slow figures are never errors.
 *
 * Include after defining _GNU_SOURCE.
 */
#ifndef BENCH_H
#define BENCH_H

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <rsmapi.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define RUNS 5      /* runs per point in a full run */
#define MAX_RUNS 16 /* most runs per point any driver keeps */

static char ucx_why[256]; /* why the UCX figures are missing */

static struct {
    const char *name; /* the driver, for messages and file names */
    int smoke;        /* --smoke */
    int runs;         /* runs per point (median and spread over them) */
    const char *out;  /* --out: directory of the CSV files */
    int ucx;          /* 1: try ucx_perftest; 0: --no-ucx, or it failed */
    int ncpus;        /* CPUs we may use, at most 2 counted */
    int cpu[2];       /* the first two of them; -1: do not pin */
    FILE *targets;    /* <out>/<name>.targets.csv */
} B = {"bench", 0, RUNS, "bench/results", 1, 1, {-1, -1}, NULL};

/* ---- Clock and statistics ---- */

static inline double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static inline int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The median of n runs and their range. */
struct spread {
    double med, min, max;
};

static inline struct spread spread_of(const double *v, int n)
{
    double c[MAX_RUNS];
    struct spread s = {0, 0, 0};
    if (n <= 0) return s;
    if (n > MAX_RUNS) n = MAX_RUNS;
    memcpy(c, v, (size_t)n * sizeof *c);
    qsort(c, (size_t)n, sizeof *c, cmp_double);
    s.med = n % 2 ? c[n / 2] : (c[n / 2 - 1] + c[n / 2]) / 2;
    s.min = c[0];
    s.max = c[n - 1];
    return s;
}

/* "med (min-max)" with `prec` decimals, in a static ring of buffers so a
 * printf may hold several. A median of 0 with no spread prints "-". */
static inline const char *sp(struct spread s, int prec)
{
    static char ring[16][48];
    static int next;
    char *b = ring[next++ % 16];
    if (s.med == 0 && s.min == 0 && s.max == 0) snprintf(b, 48, "-");
    else snprintf(b, 48, "%.*f (%.*f-%.*f)", prec, s.med, prec, s.min, prec, s.max);
    return b;
}

/* Ours against a baseline measured beside it in each run: the median and
 * range of the per-run ratios, so that a change in the machine's state
 * between runs (common on a shared VM) cancels out. Runs where either is
 * missing (0) are left out. */
static inline struct spread ratio_of(const double *ours, const double *base, int n)
{
    double r[MAX_RUNS];
    int k = 0;
    for (int i = 0; i < n && i < MAX_RUNS; i++)
        if (ours[i] > 0 && base[i] > 0) r[k++] = ours[i] / base[i];
    return spread_of(r, k);
}

/* A ratio's median as "1.23x", or "-" when it is missing. */
static inline const char *rx(struct spread r)
{
    static char ring[16][16];
    static int next;
    char *b = ring[next++ % 16];
    if (r.med <= 0) snprintf(b, 16, "-");
    else snprintf(b, 16, "%.2fx", r.med);
    return b;
}

/* A ratio of two medians measured at different times, or "-". */
static inline const char *ratio(double ours, double base)
{
    struct spread r = {ours > 0 && base > 0 ? ours / base : 0, 0, 0};
    return rx(r);
}

static inline const char *size_label(double size)
{
    static char ring[16][32];
    static int next;
    char *b = ring[next++ % 16];
    unsigned long long s = (unsigned long long)size;
    if (s >= (1ull << 20) && s % (1ull << 20) == 0) snprintf(b, 32, "%llu MiB", s >> 20);
    else if (s >= 1024 && s % 1024 == 0) snprintf(b, 32, "%llu KiB", s >> 10);
    else snprintf(b, 32, "%llu B", s);
    return b;
}

/* ---- Errors, workers, watchdog ---- */

struct worker {
    pid_t pid;
    int cmd, res; /* the driver writes commands to cmd, reads results from res */
};

#define MAX_WORKERS 256
static struct worker *workers[MAX_WORKERS];
static int n_workers;
static pid_t helpers[4]; /* ucx_perftest processes running now */

static inline void kill_all(void)
{
    for (int i = 0; i < n_workers; i++)
        if (workers[i]->pid > 0) kill(workers[i]->pid, SIGKILL);
    for (int i = 0; i < 4; i++)
        if (helpers[i] > 0) kill(helpers[i], SIGKILL);
}

/* A real error: say what, stop every worker, exit 1. */
static inline void die(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: ERROR: ", B.name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    kill_all();
    exit(1);
}

static inline const char *rsm_errname(int rc)
{
    static const struct {
        int rc;
        const char *name;
    } names[] = {
#define N(e) {e, #e}
        N(RSM_SUCCESS), N(RSMERR_BAD_LIBRARY_VERSION), N(RSMERR_BAD_TOPOLOGY_PTR),
        N(RSMERR_BAD_CTLR_HNDL), N(RSMERR_CTLR_NOT_PRESENT), N(RSMERR_BAD_SEG_HNDL),
        N(RSMERR_SEG_ALREADY_PUBLISHED), N(RSMERR_SEG_NOT_PUBLISHED),
        N(RSMERR_SEG_NOT_PUBLISHED_TO_NODE), N(RSMERR_SEG_ALREADY_MAPPED),
        N(RSMERR_SEG_STILL_MAPPED), N(RSMERR_SEG_NOT_MAPPED), N(RSMERR_NOT_CREATOR),
        N(RSMERR_BAD_BARRIER_PTR), N(RSMERR_BAD_SGIO), N(RSMERR_BAD_LOCALMEM_HNDL),
        N(RSMERR_BAD_ADDR), N(RSMERR_BAD_MEM_ALIGNMENT), N(RSMERR_BAD_OFFSET),
        N(RSMERR_MISALIGNED_OFFSET), N(RSMERR_BAD_LENGTH), N(RSMERR_BAD_ACL), N(RSMERR_BAD_SEGID),
        N(RSMERR_RESERVED_SEGID), N(RSMERR_SEGID_IN_USE), N(RSMERR_BAD_MODE), N(RSMERR_BAD_PERMS),
        N(RSMERR_PERM_DENIED), N(RSMERR_LOCKS_NOT_SUPPORTED), N(RSMERR_LOCKS_NOT_ENABLED),
        N(RSMERR_REBIND_NOT_ALLOWED), N(RSMERR_INSUFFICIENT_RESOURCES),
        N(RSMERR_INSUFFICIENT_MEM), N(RSMERR_MAP_FAILED), N(RSMERR_POLLFD_IN_USE),
        N(RSMERR_BARRIER_UNINITIALIZED), N(RSMERR_BARRIER_OPEN_FAILED),
        N(RSMERR_BARRIER_NOT_OPENED), N(RSMERR_BARRIER_FAILURE),
        N(RSMERR_REMOTE_NODE_UNREACHABLE), N(RSMERR_CONN_ABORTED), N(RSMERR_INTERRUPTED),
        N(RSMERR_TIMEOUT), N(RSMERR_BAD_APPID), N(RSMERR_BAD_CONF), N(RSMERR_SEG_NOT_CONNECTED),
        N(RSMERR_INTERNAL_ERROR),
#undef N
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (names[i].rc == rc) return names[i].name;
    return "unknown error";
}

/* Every RSM call goes through this: a failure is a real error. */
static inline void check(int rc, const char *what)
{
    if (rc != RSM_SUCCESS) die("[pid %d] %s failed: %s (%d)", (int)getpid(), what, rsm_errname(rc), rc);
}

static inline void on_alarm(int sig)
{
    static const char msg[] = ": ERROR: watchdog: the benchmark hung; giving up\n";
    (void)sig;
    if (write(2, B.name, strlen(B.name)) < 0 || write(2, msg, sizeof msg - 1) < 0) _exit(1);
    kill_all();
    _exit(1);
}

static inline void pin(int cpu)
{
    if (cpu < 0) return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0) die("sched_setaffinity(%d): %s", cpu, strerror(errno));
}

/* Spin-wait hint; on one CPU, spinning for the other side is pointless. */
static inline void relax(void)
{
    if (B.ncpus < 2) {
        sched_yield();
        return;
    }
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* Forks a worker pinned to `cpu` (-1: not pinned) that runs body(arg, cmd,
 * res) and exits 0 when it returns. body reads commands until end of file
 * (next_cmd returns 0) and exits non-zero on any error. */
static inline void spawn(struct worker *w, int cpu, void (*body)(void *arg, int cmd, int res), void *arg)
{
    int cmd[2], res[2];
    if (n_workers == MAX_WORKERS) die("too many workers");
    if (pipe2(cmd, O_CLOEXEC) || pipe2(res, O_CLOEXEC)) die("pipe: %s", strerror(errno));
    pid_t parent = getpid();
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) die("fork: %s", strerror(errno));
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(1);
        for (int i = 0; i < n_workers; i++) {
            close(workers[i]->cmd);
            close(workers[i]->res);
        }
        n_workers = 0; /* a worker's die() stops only itself */
        alarm(0);
        close(cmd[1]);
        close(res[0]);
        pin(cpu);
        body(arg, cmd[0], res[1]);
        exit(0);
    }
    close(cmd[0]);
    close(res[1]);
    w->pid = pid;
    w->cmd = cmd[1];
    w->res = res[0];
    workers[n_workers++] = w;
}

/* In a worker: the next command, 0 at end of file (time to exit). */
static inline int next_cmd(int cmd, void *msg, size_t len)
{
    ssize_t n = read(cmd, msg, len);
    if (n == 0) return 0;
    if (n != (ssize_t)len) die("[worker %d] bad command", (int)getpid());
    return 1;
}

static inline void reply(int res, const void *msg, size_t len)
{
    if (write(res, msg, len) != (ssize_t)len) die("[worker %d] driver gone", (int)getpid());
}

/* An exporter's segment: `len` bytes of fresh page-aligned memory filled
 * with `fill`, published on shm0 as `id`. */
struct published {
    rsmapi_controller_handle_t ctl;
    rsm_memseg_export_handle_t seg;
};

static inline struct published publish_segment(size_t len, rsm_memseg_id_t id, int fill)
{
    struct published p;
    char *mem = valloc(len);
    if (!mem) die("valloc");
    memset(mem, fill, len);
    check(rsm_get_controller("shm0", &p.ctl), "rsm_get_controller");
    check(rsm_memseg_export_create(p.ctl, &p.seg, mem, len, 0), "rsm_memseg_export_create");
    check(rsm_memseg_export_publish(p.seg, &id, NULL, 0), "rsm_memseg_export_publish");
    return p;
}

static inline void destroy_segment(struct published *p)
{
    check(rsm_memseg_export_destroy(p->seg), "rsm_memseg_export_destroy");
    check(rsm_release_controller(p->ctl), "rsm_release_controller");
}

static inline void w_send(struct worker *w, const void *msg, size_t len)
{
    if (write(w->cmd, msg, len) != (ssize_t)len) die("worker %d died", (int)w->pid);
}

static inline void w_recv(struct worker *w, void *msg, size_t len)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = read(w->res, (char *)msg + got, len - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            int status = 0;
            pid_t pid = w->pid;
            waitpid(pid, &status, 0);
            w->pid = 0;
            die("worker %d failed (exit status %d, signal %d)", (int)pid,
                WIFEXITED(status) ? WEXITSTATUS(status) : -1, WIFSIGNALED(status) ? WTERMSIG(status) : 0);
        }
        got += (size_t)n;
    }
}

/* Closes the worker's command pipe and waits for it to exit cleanly. */
static inline void w_stop(struct worker *w)
{
    close(w->cmd);
    int status = 0;
    if (waitpid(w->pid, &status, 0) != w->pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        die("worker %d failed at exit (status %d)", (int)w->pid, status);
    close(w->res);
    for (int i = 0; i < n_workers; i++)
        if (workers[i] == w) workers[i] = workers[--n_workers];
    w->pid = 0;
}

/* ---- Output ---- */

static inline FILE *csv_open(void)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s.csv", B.out, B.name);
    FILE *f = fopen(path, "w");
    if (!f) die("cannot write %s: %s", path, strerror(errno));
    fprintf(f, "experiment,size,series,unit,median,min,max,runs\n");
    return f;
}

static inline void csv_row(FILE *f, const char *experiment, double size, const char *series, const char *unit,
                    struct spread s)
{
    if (s.med == 0 && s.max == 0) return; /* not measured */
    fprintf(f, "%s,%.0f,%s,%s,%.6g,%.6g,%.6g,%d\n", experiment, size, series, unit, s.med, s.min, s.max,
            B.runs);
}

/* A ratio row: series "ratio <ours> / <baseline>", unit "x". */
static inline void csv_ratio(FILE *f, const char *experiment, double size, const char *ours, const char *base,
                             struct spread r)
{
    char series[160];
    snprintf(series, sizeof series, "ratio %s / %s", ours, base);
    csv_row(f, experiment, size, series, "x", r);
}

/* Reports one target: MET when `value` is at most (at_most) or at least
 * `limit`. Returns 1 if met. */
static inline int target(const char *what, double value, int at_most, double limit, const char *unit)
{
    int met = value > 0 && (at_most ? value <= limit : value >= limit);
    const char *status = value <= 0 ? "N/A" : met ? "MET" : "MISSED";
    char shown[32] = "       -";
    if (value > 0) snprintf(shown, sizeof shown, "%8.2f%s", value, unit);
    printf("  target: %-66s %s %s %.2f%s  %s%s\n", what, shown, at_most ? "<=" : ">=", limit, unit, status,
           B.smoke ? " (smoke run: figures mean nothing)" : "");
    if (B.targets)
        fprintf(B.targets, "%s,\"%s\",%.4g%s,%s %.4g%s,%s\n", B.name, what, value, unit,
                at_most ? "<=" : ">=", limit, unit, status);
    return met;
}

/* ---- Set-up ---- */

/* Parses the options, names a fresh fabric for this run, finds the CPUs,
 * starts the watchdog. */
static inline void bench_init(const char *name, int argc, char **argv)
{
    B.name = name;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--smoke")) B.smoke = 1;
        else if (!strcmp(argv[i], "--no-ucx")) B.ucx = 0, snprintf(ucx_why, sizeof ucx_why, "--no-ucx");
        else if (!strcmp(argv[i], "--out") && i + 1 < argc) B.out = argv[++i];
        else {
            fprintf(stderr, "usage: %s [--smoke] [--no-ucx] [--out DIR]\n", name);
            exit(2);
        }
    }
    if (B.smoke) B.runs = 3;
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGALRM, on_alarm);
    alarm(B.smoke ? 120 : 900);

    char fabric[64];
    snprintf(fabric, sizeof fabric, "bench-%s-%d", name, (int)getpid());
    setenv("RSM_FABRIC", fabric, 1);

    cpu_set_t allowed;
    int n = 0;
    if (sched_getaffinity(0, sizeof allowed, &allowed) == 0)
        for (int c = 0; c < CPU_SETSIZE && n < 2; c++)
            if (CPU_ISSET(c, &allowed)) B.cpu[n++] = c;
    B.ncpus = n < 1 ? 1 : n;
    if (n < 2) B.cpu[0] = B.cpu[1] = -1; /* one CPU: nothing to pin apart */

    mkdir(B.out, 0777);
    char path[512];
    snprintf(path, sizeof path, "%s/%s.targets.csv", B.out, name);
    B.targets = fopen(path, "w");
    if (!B.targets) die("cannot write %s: %s", path, strerror(errno));
    setvbuf(B.targets, NULL, _IOLBF, 0);
}

/* ---- UCX ---- */

/* Waits up to `ms` for pid; returns its status, or -1 on timeout. */
static inline int wait_ms(pid_t pid, int ms)
{
    for (int t = 0;; t += 5) {
        int status;
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) return status;
        if (r < 0) return 0;
        if (t >= ms) return -1;
        struct timespec d = {0, 5000000};
        nanosleep(&d, NULL);
    }
}

static inline pid_t ucx_start(char **args, int out_fd, int slot)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int devnull = open("/dev/null", O_RDWR);
        dup2(devnull, 0);
        dup2(out_fd >= 0 ? out_fd : devnull, 1);
        dup2(out_fd >= 0 ? out_fd : devnull, 2);
        setenv("UCX_TLS", "posix,self", 1);
        execvp("ucx_perftest", args);
        printf("cannot execute ucx_perftest: %s\n", strerror(errno));
        _exit(127);
    }
    helpers[slot] = pid;
    return pid;
}

/* One ucx_perftest test (e.g. "ucp_put_lat") of `size` bytes, server on
 * the first CPU and client on the second, as our pairs run. Fills the
 * client's overall one-way latency (us) and bandwidth (MB/s, MB = 2^20
 * bytes). Returns 0, or -1 with the reason in ucx_why (and stops trying
 * UCX in this driver: the caller reports the figure as missing). */
static inline int ucx_run(const char *test, size_t size, long iters, double *lat_us, double *bw_mbs)
{
    static int seq;
    if (!B.ucx) return -1;
    char s_size[32], s_iters[32], s_warm[32], s_cpu0[16], s_cpu1[16], s_port[16];
    long warm = iters / 10 < 2 ? 2 : iters / 10;
    snprintf(s_size, sizeof s_size, "%zu", size);
    snprintf(s_iters, sizeof s_iters, "%ld", iters);
    snprintf(s_warm, sizeof s_warm, "%ld", warm);
    snprintf(s_cpu0, sizeof s_cpu0, "%d", B.cpu[0]);
    snprintf(s_cpu1, sizeof s_cpu1, "%d", B.cpu[1]);
    char out[8192];
    for (int attempt = 0; attempt < 5; attempt++) {
        snprintf(s_port, sizeof s_port, "%d", 20000 + (int)((getpid() * 37 + seq++ * 7) % 40000));
        char *srv[24] = {"ucx_perftest", "-t", (char *)test, "-s", s_size, "-n", s_iters, "-w", s_warm,
                         "-p", s_port, NULL};
        char *cli[24] = {"ucx_perftest", "localhost", "-t", (char *)test, "-s", s_size, "-n", s_iters,
                         "-w", s_warm, "-p", s_port, "-v", "-f", NULL};
        if (B.cpu[0] >= 0) {
            int i = 11, j = 14;
            srv[i++] = "-c", srv[i++] = s_cpu0, srv[i] = NULL;
            cli[j++] = "-c", cli[j++] = s_cpu1, cli[j] = NULL;
        }
        pid_t server = ucx_start(srv, -1, 0);
        if (server < 0) break;
        /* The client retries until the server listens (connection refused
         * at first); a server that exits early had a bad port. */
        int got = 0, status = 0, ok = 0;
        double t_end = now() + 10;
        while (now() < t_end) {
            int p[2];
            if (pipe2(p, O_CLOEXEC)) break;
            pid_t client = ucx_start(cli, p[1], 1);
            close(p[1]);
            got = 0;
            int eof = 0;
            while (client > 0) {
                struct pollfd pf = {p[0], POLLIN, 0};
                if (poll(&pf, 1, 120000) <= 0) break; /* a hung client */
                ssize_t n = read(p[0], out + got, sizeof out - 1 - (size_t)got);
                if (n <= 0) {
                    eof = n == 0;
                    break;
                }
                got += (int)n;
                if (got >= (int)sizeof out - 1) break;
            }
            out[got] = 0;
            close(p[0]);
            if (client < 0) break;
            if ((status = wait_ms(client, eof ? 10000 : 0)) == -1) {
                kill(client, SIGKILL);
                waitpid(client, &status, 0);
            }
            helpers[1] = 0;
            if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
                ok = 1;
                break;
            }
            if (WIFEXITED(status) && WEXITSTATUS(status) == 127) break;
            if (!strstr(out, "Connection refused") || wait_ms(server, 0) >= 0) break;
            struct timespec d = {0, 20000000};
            nanosleep(&d, NULL);
        }
        if (wait_ms(server, ok ? 10000 : 0) < 0) {
            kill(server, SIGKILL);
            waitpid(server, NULL, 0);
        }
        helpers[0] = 0;
        if (ok) {
            /* -v -f: a header line "iterations,..." then the figures */
            char *line = strstr(out, "iterations,");
            line = line ? strchr(line, '\n') : NULL;
            double it, p50, avg, lat, avg_bw, bw;
            if (line && sscanf(line + 1, " %lf,%lf,%lf,%lf,%lf,%lf", &it, &p50, &avg, &lat, &avg_bw, &bw) == 6) {
                *lat_us = lat;
                *bw_mbs = bw;
                return 0;
            }
            snprintf(ucx_why, sizeof ucx_why, "unexpected ucx_perftest output");
            break;
        }
        if (WIFEXITED(status) && WEXITSTATUS(status) == 127) {
            snprintf(ucx_why, sizeof ucx_why, "ucx_perftest is not installed (Debian: apt-get install ucx-utils)");
            break;
        }
        /* the last line the client printed says why */
        char *end = out + strlen(out);
        while (end > out && (end[-1] == '\n' || end[-1] == ' ')) *--end = 0;
        char *last = strrchr(out, '\n');
        snprintf(ucx_why, sizeof ucx_why, "%s %s %zu failed: %s", "ucx_perftest", test, size,
                 last ? last + 1 : out[0] ? out : "no output");
    }
    if (!ucx_why[0]) snprintf(ucx_why, sizeof ucx_why, "ucx_perftest %s could not be started", test);
    printf("(UCX not measured from here on: %s)\n", ucx_why);
    B.ucx = 0;
    return -1;
}


/* ---- The mapped ping-pong (pingpong.c, windowbench.c) ----
 * A slot is a ping page and a pong page (PP_SLOT bytes); a run goes
 * through PP_SLOTS slots, n / PP_SLOTS round trips in each. A message of
 * `size` bytes ends with its sequence number, stored last (release), so
 * the other side sees the whole message when it sees the number. */
#define PP_PONG 4096 /* offset of the answer in a slot */
#define PP_SLOT 8192
#define PP_SLOTS 8

/* B: answers n pings of `size` bytes in `mem`. */
static inline void pp_answer(char *mem, const char *payload, size_t size, long n, uint64_t *seq)
{
    for (int k = 0; k < PP_SLOTS; k++) {
        char *slot = mem + k * PP_SLOT;
        uint64_t *ping = (uint64_t *)(slot + size - 8), *pong = (uint64_t *)(slot + PP_PONG + size - 8);
        for (long i = 0; i < n / PP_SLOTS; i++) {
            uint64_t q = ++*seq;
            while (__atomic_load_n(ping, __ATOMIC_ACQUIRE) != q) relax();
            memcpy(slot + PP_PONG, payload, size - 8);
            __atomic_store_n(pong, q, __ATOMIC_RELEASE);
        }
    }
}

/* A, through plain loads and stores: seconds for n round trips. */
static inline double pp_bounce(char *mem, const char *payload, size_t size, long n, uint64_t *seq)
{
    double t0 = now();
    for (int k = 0; k < PP_SLOTS; k++) {
        char *slot = mem + k * PP_SLOT;
        uint64_t *ping = (uint64_t *)(slot + size - 8), *pong = (uint64_t *)(slot + PP_PONG + size - 8);
        for (long i = 0; i < n / PP_SLOTS; i++) {
            uint64_t q = ++*seq;
            memcpy(slot, payload, size - 8);
            __atomic_store_n(ping, q, __ATOMIC_RELEASE);
            while (__atomic_load_n(pong, __ATOMIC_ACQUIRE) != q) relax();
        }
    }
    return now() - t0;
}

#endif
