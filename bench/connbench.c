/*
 * Connect cycle: what it costs an importer to reach a segment and leave.
 *
 *   ours  rsm_memseg_import_connect + rsm_memseg_import_map + one load
 *         through the mapping + rsm_memseg_import_unmap +
 *         rsm_memseg_import_disconnect, against an exporter process that
 *         published a 64 KiB segment
 *   raw   the least a descriptor-passing design can do: socket + connect
 *         to an abstract SOCK_SEQPACKET socket, send an 8-byte request,
 *         receive the memfd with SCM_RIGHTS, mmap + one load + munmap,
 *         close both descriptors; the server is another process that
 *         accepts, reads the request, sends the descriptor and waits for
 *         the client to hang up (single-threaded, blocking)
 *
 * Where the processes run decides the figure on a virtual machine (a
 * wake-up on another CPU costs tens of microseconds), so both placements
 * are measured: exporter and importer on one CPU, and on two. Ours and raw
 * alternate within each run. Target (issue 6): ours <= 1.5x raw.
 */
#define _GNU_SOURCE
#include "bench.h"
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>

#define SEG_LEN 65536
#define SEG_ID 0x400003

enum { ONE_CPU, TWO_CPUS, N_PLACE };
enum { OURS, RAW, N_KIND };
static const char *place_name[N_PLACE] = {"1 CPU", "2 CPUs"};
static const char *kind_name[N_KIND] = {"ours connect+map+unmap+disconnect",
                                        "raw fd pass+mmap+munmap+close"};

static int raw_fd; /* the raw server's memfd, made before the workers */

static void socket_name(int place, struct sockaddr_un *a, socklen_t *len)
{
    memset(a, 0, sizeof *a);
    a->sun_family = AF_UNIX;
    /* abstract: a leading NUL, nothing in the file system */
    int n = snprintf(a->sun_path + 1, sizeof a->sun_path - 1, "rsm-bench-conn/%d/%d", (int)getppid(), place);
    *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
}

/* ---- Exporters (ours and raw), one per placement ---- */

static void rsm_exporter(void *arg, int cmd, int res)
{
    struct published p = publish_segment(SEG_LEN, SEG_ID + (rsm_memseg_id_t)(intptr_t)arg, 1);
    reply(res, "r", 1);
    char c;
    while (next_cmd(cmd, &c, 1)) {
    }
    destroy_segment(&p);
}

static void raw_server(void *arg, int cmd, int res)
{
    struct sockaddr_un a;
    socklen_t alen;
    socket_name((int)(intptr_t)arg, &a, &alen);
    int ls = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (ls < 0 || bind(ls, (struct sockaddr *)&a, alen) || listen(ls, 64)) die("raw server: %s", strerror(errno));
    reply(res, "r", 1);
    for (;;) {
        struct pollfd p[2] = {{ls, POLLIN, 0}, {cmd, POLLIN, 0}};
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR) continue;
            die("poll: %s", strerror(errno));
        }
        if (p[1].revents) return; /* the driver closed the command pipe */
        int s = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
        if (s < 0) die("accept: %s", strerror(errno));
        uint64_t req;
        if (recv(s, &req, sizeof req, 0) != (ssize_t)sizeof req) die("raw server: no request");
        char control[CMSG_SPACE(sizeof(int))];
        memset(control, 0, sizeof control);
        struct iovec iov = {&req, sizeof req};
        struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof control};
        struct cmsghdr *c = CMSG_FIRSTHDR(&m);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &raw_fd, sizeof(int));
        if (sendmsg(s, &m, 0) != (ssize_t)sizeof req) die("sendmsg: %s", strerror(errno));
        while (recv(s, &req, sizeof req, 0) > 0) { /* until the client hangs up */
        }
        close(s);
    }
}

/* ---- Importers ---- */

static volatile uint64_t sink;

static void rsm_importer(void *arg, int cmd, int res)
{
    rsm_memseg_id_t id = SEG_ID + (rsm_memseg_id_t)(intptr_t)arg;
    rsmapi_controller_handle_t ctl;
    check(rsm_get_controller("shm0", &ctl), "rsm_get_controller");
    for (long n; next_cmd(cmd, &n, sizeof n);) {
        double t0 = now();
        for (long i = 0; i < n; i++) {
            rsm_memseg_import_handle_t im;
            void *addr = NULL;
            check(rsm_memseg_import_connect(ctl, 0, id, RSM_PERM_RDWR, &im), "rsm_memseg_import_connect");
            check(rsm_memseg_import_map(im, &addr, RSM_MAP_NONE, RSM_PERM_RDWR, 0, SEG_LEN),
                  "rsm_memseg_import_map");
            sink += *(volatile uint64_t *)addr;
            check(rsm_memseg_import_unmap(im), "rsm_memseg_import_unmap");
            check(rsm_memseg_import_disconnect(im), "rsm_memseg_import_disconnect");
        }
        double t = now() - t0;
        reply(res, &t, sizeof t);
    }
    check(rsm_release_controller(ctl), "rsm_release_controller");
}

static void raw_client(void *arg, int cmd, int res)
{
    struct sockaddr_un a;
    socklen_t alen;
    socket_name((int)(intptr_t)arg, &a, &alen);
    for (long n; next_cmd(cmd, &n, sizeof n);) {
        double t0 = now();
        for (long i = 0; i < n; i++) {
            int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
            if (s < 0 || connect(s, (struct sockaddr *)&a, alen)) die("raw connect: %s", strerror(errno));
            uint64_t req = 1;
            if (send(s, &req, sizeof req, 0) != (ssize_t)sizeof req) die("send: %s", strerror(errno));
            char control[CMSG_SPACE(sizeof(int))];
            struct iovec iov = {&req, sizeof req};
            struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof control};
            if (recvmsg(s, &m, MSG_CMSG_CLOEXEC) != (ssize_t)sizeof req) die("recvmsg: %s", strerror(errno));
            struct cmsghdr *c = CMSG_FIRSTHDR(&m);
            if (!c || c->cmsg_type != SCM_RIGHTS) die("no descriptor received");
            int fd;
            memcpy(&fd, CMSG_DATA(c), sizeof fd);
            void *p = mmap(NULL, SEG_LEN, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
            if (p == MAP_FAILED) die("mmap: %s", strerror(errno));
            sink += *(volatile uint64_t *)p;
            munmap(p, SEG_LEN);
            close(fd);
            close(s);
        }
        double t = now() - t0;
        reply(res, &t, sizeof t);
    }
}

int main(int argc, char **argv)
{
    bench_init("connect", argc, argv);
    long n = B.smoke ? 50 : 2000; /* cycles per run */

    raw_fd = memfd_create("connect-raw", MFD_CLOEXEC);
    if (raw_fd < 0 || ftruncate(raw_fd, SEG_LEN) != 0) die("memfd: %s", strerror(errno));
    char *m = mmap(NULL, SEG_LEN, PROT_READ | PROT_WRITE, MAP_SHARED, raw_fd, 0);
    if (m == MAP_FAILED) die("mmap: %s", strerror(errno));
    memset(m, 1, SEG_LEN);
    munmap(m, SEG_LEN);

    /* [placement][kind]: the exporter (or server) on the first CPU, the
     * importer (or client) on the first or the second. */
    struct worker server[N_PLACE][N_KIND], client[N_PLACE][N_KIND];
    for (int p = 0; p < N_PLACE; p++) {
        char r;
        spawn(&server[p][OURS], B.cpu[0], rsm_exporter, (void *)(intptr_t)p);
        spawn(&server[p][RAW], B.cpu[0], raw_server, (void *)(intptr_t)p);
        w_recv(&server[p][OURS], &r, 1);
        w_recv(&server[p][RAW], &r, 1);
        int cpu = p == ONE_CPU ? B.cpu[0] : B.cpu[1];
        spawn(&client[p][OURS], cpu, rsm_importer, (void *)(intptr_t)p);
        spawn(&client[p][RAW], cpu, raw_client, (void *)(intptr_t)p);
    }

    double v[N_PLACE][N_KIND][MAX_RUNS];
    for (int run = 0; run <= B.runs; run++) /* run 0 warms up */
        for (int p = 0; p < N_PLACE; p++)
            for (int k = 0; k < N_KIND; k++) {
                long cycles = run ? n : n / 10;
                double t;
                w_send(&client[p][k], &cycles, sizeof cycles);
                w_recv(&client[p][k], &t, sizeof t);
                if (run) v[p][k][run - 1] = t * 1e6 / (double)cycles;
            }
    for (int p = 0; p < N_PLACE; p++)
        for (int k = 0; k < N_KIND; k++) {
            w_stop(&client[p][k]);
            w_stop(&server[p][k]);
        }

    FILE *csv = csv_open();
    printf("Connect cycle, us per cycle: median (min-max) of %d runs of %ld cycles; ratio = ours / raw\n",
           B.runs, n);
    printf("  %-8s %-34s %-34s %7s\n", "placement", kind_name[OURS], kind_name[RAW], "ratio");
    struct spread s[N_PLACE][N_KIND], rt[N_PLACE];
    for (int p = 0; p < N_PLACE; p++) {
        char exp_name[64];
        snprintf(exp_name, sizeof exp_name, "connect cycle %s", place_name[p]);
        for (int k = 0; k < N_KIND; k++) {
            s[p][k] = spread_of(v[p][k], B.runs);
            csv_row(csv, exp_name, 0, k == OURS ? "ours" : "raw fd pass", "us", s[p][k]);
        }
        rt[p] = ratio_of(v[p][OURS], v[p][RAW], B.runs);
        csv_ratio(csv, exp_name, 0, "ours", "raw fd pass", rt[p]);
        printf("  %-8s %-34s %-34s %7s\n", place_name[p], sp(s[p][OURS], 1), sp(s[p][RAW], 1), rx(rt[p]));
    }
    fclose(csv);
    printf("(exporter/server on the first CPU; importer/client on the same CPU or the other one;\n"
           " ratio: median over the runs of ours / raw measured side by side in each run)\n");
    for (int p = 0; p < N_PLACE; p++) {
        char what[96];
        snprintf(what, sizeof what, "connect cycle, %s / raw fd pass + mmap", place_name[p]);
        target(what, rt[p].med, 1, 1.5, "x");
    }
    return 0;
}
