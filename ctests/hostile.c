/*
 * A hostile local client cannot crash, hang or stall an exporter. Clients
 * running as uid 65534 talk to the segment's socket directly (an abstract
 * SOCK_SEQPACKET socket "rsm/<fabric>/<node>/<segid>/<tag>", found in
 * /proc/net/unix as any local user can): they connect and
 * send nothing, send garbage, oversized or short packets, a wrong magic,
 * descriptors by SCM_RIGHTS, raw requests for rights they do not have, and
 * open a flood of connections that they keep open. Meanwhile a legitimate
 * importer connects, maps, checks, unmaps and disconnects through the
 * library, again and again. Counted, not timed: every legitimate connect
 * succeeds (retrying only when the library dropped it under the flood:
 * fewer retries in all than rounds, at most MAX_STALL for one connect),
 * the exporter is alive and serves connects afterwards, its descriptors
 * return to their starting number, and no raw client ever gets write
 * access it was not granted.
 */
#define _GNU_SOURCE
#include <rsmapi.h>
#include <dirent.h>
#include <grp.h>
#include <poll.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include "rawwire.h"

#define ROUNDS 200     /* legitimate connect/map/unmap/disconnect cycles */
#define FLOOD 300      /* connections opened at once and kept open */
#define SILENT 8       /* connections that never send anything */
#define JUNKERS 3      /* processes sending bad packets in a loop */
#define MAX_RETRIES 1000 /* 5 s of retries per connect, a safety net */
#define MAX_STALL 20   /* retries one legitimate connect may need (0.1 s) */

static char fabric[64];
static rsm_memseg_id_t seg_id;
static size_t len;

/* Pipe ends the parent keeps; every child closes them first. */
static int parent_fds[16], n_parent_fds;
static void close_parent_fds(void)
{
    for (int i = 0; i < n_parent_fds; i++)
        if (parent_fds[i] >= 0) close(parent_fds[i]);
}
static void close_in_parent(int fd)
{
    for (int i = 0; i < n_parent_fds; i++)
        if (parent_fds[i] == fd) parent_fds[i] = -1;
    close(fd);
}

static void step(int fd) { CHECK(write(fd, "s", 1) == 1); }
static void wait_step(int fd)
{
    char b = 0;
    CHECK(read(fd, &b, 1) == 1);
}
/* Waits for the parent to close its end: the signal to stop. */
static void wait_eof(int fd)
{
    char b;
    while (read(fd, &b, 1) > 0) {}
}

static void become_nobody(void)
{
    CHECK(setgroups(0, NULL) == 0 && setgid(65534) == 0 && setuid(65534) == 0);
}

/* The exporter's bytes: a pattern, and at the end a counter that each
 * legitimate round stores. */
static char pattern(size_t i) { return (char)('A' + i % 23); }
#define COUNTER_OFF (len - sizeof(uint32_t))

/* A raw connection to the segment's socket, or -1. */
static int raw_connect(void) { return segment_socket(fabric, (uint32_t)seg_id); }

/* ---- The exporter ---- */

static void exporter_main(int cmd, int ack)
{
    setenv("RSM_NODE_ID", "0", 1);
    umask(022); /* the empty ACL grants 0644: others may read */
    char *buf = valloc(len);
    CHECK(buf != NULL);
    if (!buf) child_exit();
    for (size_t i = 0; i < len; i++) buf[i] = pattern(i);
    memset(buf + COUNTER_OFF, 0, sizeof(uint32_t));
    rsmapi_controller_handle_t c;
    rsm_memseg_export_handle_t seg;
    rsm_memseg_id_t id = seg_id;
    CHECK_RC(rsm_get_controller("shm0", &c), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_export_create(c, &seg, buf, len, 0), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_export_publish(seg, &id, NULL, 0), RSM_SUCCESS);
    make_doorbell(seg);
    int start = count_fds();
    step(ack);
    char m;
    while (read(cmd, &m, 1) == 1 && m != 'q') {
        /* 'c': every client is gone; our descriptors come back to the
         * starting number (the agent closes them asynchronously). */
        int now = count_fds();
        for (int i = 0; i < 400 && now != start; i++) {
            usleep(25000);
            now = count_fds();
        }
        printf("hostile: exporter descriptors: %d at start, %d now\n", start, now);
        CHECK(now == start);
        step(ack);
    }
    int intact = 1;
    for (size_t i = 0; i < COUNTER_OFF; i++) intact &= buf[i] == pattern(i);
    CHECK(intact);
    uint32_t rounds;
    memcpy(&rounds, buf + COUNTER_OFF, sizeof rounds);
    CHECK(rounds == ROUNDS + 1); /* every legitimate round, and the one after */
    CHECK_RC(rsm_memseg_export_destroy(seg), RSM_SUCCESS);
    CHECK_RC(rsm_release_controller(c), RSM_SUCCESS);
    child_exit();
}

/* ---- The legitimate importer ---- */

/* Codes other than RSMERR_INSUFFICIENT_RESOURCES that a dropped connect gave. */
static int unexpected[256];

/* One connect/map/check/write/unmap/disconnect round; returns the number
 * of retries its connect needed, or -1 if it never connected. */
static int legit_round(rsmapi_controller_handle_t c, uint32_t round)
{
    rsm_memseg_import_handle_t im = NULL;
    int rc, tries = 0;
    for (;;) {
        rc = rsm_memseg_import_connect(c, 0, seg_id, RSM_PERM_RDWR, &im);
        if (rc == RSM_SUCCESS || tries >= MAX_RETRIES) break;
        /* Dropped by the exporter's limit of unanswered clients (after the
         * library's own retries): only "insufficient resources" may say so;
         * the segment is still published. Anything else is counted as a
         * failure, and retried so that the round still completes. */
        if (rc != RSMERR_INSUFFICIENT_RESOURCES) unexpected[rc >= 0 && rc < 256 ? rc : 255]++;
        tries++;
        usleep(5000);
    }
    CHECK_RC(rc, RSM_SUCCESS);
    if (rc != RSM_SUCCESS) return -1;
    char *a = NULL;
    CHECK_RC(rsm_memseg_import_map(im, (void **)&a, RSM_MAP_NONE, RSM_PERM_RDWR, 0, len),
             RSM_SUCCESS);
    if (a) {
        CHECK(a[0] == pattern(0) && a[len / 2] == pattern(len / 2) &&
              a[COUNTER_OFF - 1] == pattern(COUNTER_OFF - 1));
        memcpy(a + COUNTER_OFF, &round, sizeof round);
        CHECK_RC(rsm_memseg_import_unmap(im), RSM_SUCCESS);
    }
    CHECK_RC(rsm_memseg_import_disconnect(im), RSM_SUCCESS);
    return tries;
}

static pid_t start_legit(int rounds_from, int rounds, int during_attack)
{
    pid_t pid = fork();
    if (pid == 0) {
        passed = failed = 0;
        alarm(45);
        close_parent_fds();
        setenv("RSM_NODE_ID", "1", 1);
        rsmapi_controller_handle_t c;
        CHECK_RC(rsm_get_controller("shm0", &c), RSM_SUCCESS);
        int ok = 0, retries = 0, most = 0, others = 0;
        for (int i = 0; i < rounds; i++) {
            int f = failed;
            int t = legit_round(c, (uint32_t)(rounds_from + i + 1));
            if (t < 0) break; /* the exporter is gone or stalled: no use going on */
            ok += failed == f;
            retries += t;
            most = t > most ? t : most;
        }
        if (during_attack) {
            printf("hostile: %d of %d legitimate rounds succeeded during the attack; "
                   "connect retries: %d in all, at most %d for one connect\n",
                   ok, rounds, retries, most);
            /* The attack may cost a legitimate importer a retry now and
             * then, never a stall: fewer retries in all than rounds, and
             * no connect retried more than MAX_STALL times. */
            CHECK(retries < rounds);
            CHECK(most <= MAX_STALL);
        } else {
            CHECK(retries == 0); /* nothing left to be dropped by */
        }
        for (int code = 0; code < 256; code++) {
            if (!unexpected[code]) continue;
            others += unexpected[code];
            fprintf(stderr, "hostile: a dropped legitimate connect returned %d (not "
                    "RSMERR_INSUFFICIENT_RESOURCES) %d times\n", code, unexpected[code]);
        }
        CHECK(others == 0);
        CHECK(ok == rounds);
        CHECK_RC(rsm_release_controller(c), RSM_SUCCESS);
        child_exit();
    }
    return pid;
}

/* ---- Hostile clients ---- */

static int stopped(int stop)
{
    struct pollfd p = {stop, POLLIN, 0};
    return poll(&p, 1, 0) == 1; /* readable: EOF, the parent said stop */
}

/* Waits until the exporter ends the connection (EOF or reset). */
static int closed_by_exporter(int fd)
{
    char b[64];
    for (;;) {
        ssize_t n = recv(fd, b, sizeof b, 0);
        if (n == 0 || (n < 0 && errno == ECONNRESET)) return 1;
        if (n < 0 && errno != EINTR) return 0; /* timed out: still open */
    }
}

/* Connects and sends nothing; the exporter must drop every such client. */
static void silent_main(int ready, int stop)
{
    become_nobody();
    int fds[SILENT], opened = 0, closed = 0;
    for (int i = 0; i < SILENT; i++)
        if ((fds[i] = raw_connect()) >= 0) opened++;
    step(ready);
    for (int i = 0; i < SILENT; i++)
        if (fds[i] >= 0) closed += closed_by_exporter(fds[i]);
    printf("hostile: %d silent clients, %d dropped by the exporter\n", opened, closed);
    CHECK(opened == SILENT && closed == opened);
    wait_eof(stop);
    for (int i = 0; i < SILENT; i++)
        if (fds[i] >= 0) close(fds[i]);
    child_exit();
}

/* Opens FLOOD connections at once and keeps them open until told to stop;
 * the exporter must end every one of them by itself. */
static void flood_main(int ready, int stop)
{
    become_nobody();
    static int fds[FLOOD];
    int opened = 0, closed = 0;
    for (int i = 0; i < FLOOD; i++)
        if ((fds[i] = raw_connect()) >= 0) opened++;
    step(ready);
    wait_eof(stop);
    for (int i = 0; i < FLOOD; i++)
        if (fds[i] >= 0) closed += closed_by_exporter(fds[i]);
    printf("hostile: flood of %d connections (%d opened), %d ended by the exporter\n", FLOOD,
           opened, closed);
    CHECK(opened > 0 && closed == opened);
    for (int i = 0; i < FLOOD; i++)
        if (fds[i] >= 0) close(fds[i]);
    child_exit();
}

/* What a raw client sends (requests as rawwire.h lays them out). An
 * attach request guesses a token, likely another importer's (tokens are
 * small and sequential), with a made-up secret. */
enum junk {
    GARBAGE,      /* 100 random bytes */
    HUGE,         /* 64 KiB */
    LONG17,       /* a valid request and one byte more */
    SHORT15,      /* a valid request less one byte */
    EMPTY,        /* a zero-length packet */
    BAD_MAGIC,    /* 16 bytes, wrong magic */
    BAD_VERSION,  /* 16 bytes, right magic, wrong version */
    FDS_GARBAGE,  /* wrong magic, with descriptors attached */
    FDS_READ,     /* a valid read request, with 200 descriptors attached */
    RAW_RDWR,     /* a valid request for read-write (others may only read) */
    RAW_BADPERM,  /* a valid request with every permission bit set */
    ATTACH_GUESS, /* an event channel asked for with a guessed token and secret */
    N_JUNK
};
static const char *junk_names[] = {"garbage", "64 KiB", "17 bytes", "15 bytes", "empty",
                                   "wrong magic", "wrong version", "descriptors + garbage",
                                   "descriptors + read request", "raw read-write request",
                                   "raw request 0xffffffff", "guessed attach"};

/* Sends `buf` with `nfds` copies of /dev/null attached. */
static ssize_t send_with_fds(int fd, const void *buf, size_t n, int nfds)
{
    int fds[200];
    union {
        char b[CMSG_SPACE(sizeof fds)];
        struct cmsghdr align;
    } u;
    memset(&u, 0, sizeof u);
    for (int i = 0; i < nfds; i++) fds[i] = open("/dev/null", O_RDONLY | O_CLOEXEC);
    struct iovec iov = {(void *)buf, n};
    struct msghdr msg;
    memset(&msg, 0, sizeof msg);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = u.b;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
    struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
    memcpy(CMSG_DATA(cm), fds, sizeof(int) * (size_t)nfds);
    ssize_t sent = sendmsg(fd, &msg, MSG_NOSIGNAL);
    for (int i = 0; i < nfds; i++) close(fds[i]);
    return sent;
}

/* What the exporter did with one hostile client. */
struct outcome {
    int connected, sent, ended, answered, fds, writable;
};

/* Reads until the exporter ends the connection, counting packets and the
 * segment descriptors they carry (each is checked for writing; a connect's
 * reply carries no other: the event channel comes on request).
 * With `until_answer`, stops at the first packet: an admitted importer's
 * connection stays open. */
static void watch(int fd, struct outcome *o, int until_answer)
{
    for (;;) {
        char b[256];
        union {
            char b[CMSG_SPACE(sizeof(int) * 8)];
            struct cmsghdr align;
        } u;
        struct iovec iov = {b, sizeof b};
        struct msghdr msg;
        memset(&msg, 0, sizeof msg);
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = u.b;
        msg.msg_controllen = sizeof u.b;
        ssize_t n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
        if (n == 0 || (n < 0 && errno == ECONNRESET)) {
            o->ended++;
            return;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return; /* the safety net expired: the exporter kept it */
        o->answered++;
        int nth = 0; /* descriptors in this packet */
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
            if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
            int k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
            for (int i = 0; i < k; i++) {
                int got;
                memcpy(&got, CMSG_DATA(c) + i * sizeof(int), sizeof got);
                /* The first is the segment's memory. */
                if (nth++ == 0) {
                    o->fds++;
                    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, got, 0);
                    if ((fcntl(got, F_GETFL) & O_ACCMODE) != O_RDONLY || p != MAP_FAILED)
                        o->writable++;
                    if (p != MAP_FAILED) munmap(p, len);
                }
                close(got);
            }
        }
        if (until_answer) return;
    }
}

static void junk_once(enum junk kind, struct outcome *o)
{
    static unsigned seed = 1;
    int fd = raw_connect();
    if (fd < 0) return;
    o->connected++;
    unsigned char b[24];
    static char huge[65536];
    char g[100];
    ssize_t want = 16, sent = -1;
    switch (kind) {
    case GARBAGE:
        for (size_t i = 0; i < sizeof g; i++) g[i] = (char)rand_r(&seed);
        sent = send(fd, g, want = sizeof g, MSG_NOSIGNAL);
        break;
    case HUGE:
        memset(huge, 0x52, sizeof huge);
        sent = send(fd, huge, want = sizeof huge, MSG_NOSIGNAL);
        break;
    case LONG17:
        wire_request(b, WIRE_MAGIC, WIRE_VERSION, 0, RSM_PERM_READ);
        b[16] = 0;
        sent = send(fd, b, want = 17, MSG_NOSIGNAL);
        break;
    case SHORT15:
        wire_request(b, WIRE_MAGIC, WIRE_VERSION, 0, RSM_PERM_READ);
        sent = send(fd, b, want = 15, MSG_NOSIGNAL);
        break;
    case EMPTY: sent = send(fd, "", want = 0, MSG_NOSIGNAL); break;
    case BAD_MAGIC:
        wire_request(b, 0xdeadbeef, WIRE_VERSION, 0, RSM_PERM_READ);
        sent = send(fd, b, 16, MSG_NOSIGNAL);
        break;
    case BAD_VERSION:
        wire_request(b, WIRE_MAGIC, 99, 0, RSM_PERM_READ);
        sent = send(fd, b, 16, MSG_NOSIGNAL);
        break;
    case FDS_GARBAGE:
        wire_request(b, 0xdeadbeef, WIRE_VERSION, 0, RSM_PERM_READ);
        sent = send_with_fds(fd, b, 16, 3);
        break;
    case FDS_READ:
        wire_request(b, WIRE_MAGIC, WIRE_VERSION, 0, RSM_PERM_READ);
        sent = send_with_fds(fd, b, 16, 200);
        break;
    case RAW_RDWR:
        wire_request(b, WIRE_MAGIC, WIRE_VERSION, 0, RSM_PERM_RDWR);
        sent = send(fd, b, 16, MSG_NOSIGNAL);
        break;
    case RAW_BADPERM:
        wire_request(b, WIRE_MAGIC, WIRE_VERSION, 0xffffffffu, 0xffffffffu);
        sent = send(fd, b, 16, MSG_NOSIGNAL);
        break;
    case ATTACH_GUESS:
        wire_attach(b, 1 + seed % 64, ((uint64_t)rand_r(&seed) << 32) | (unsigned)rand_r(&seed));
        sent = send(fd, b, want = 24, MSG_NOSIGNAL);
        break;
    default: break;
    }
    o->sent += sent == want; /* else the exporter had already hung up */
    watch(fd, o, kind == FDS_READ);
    close(fd);
}

/* Sends every kind of bad packet, each on a new connection, until told to
 * stop. Only a valid read request may ever carry back a descriptor, and it
 * must be read-only; the exporter must end every connection. */
static void junk_main(int ready, int stop)
{
    become_nobody();
    struct outcome o[N_JUNK];
    memset(o, 0, sizeof o);
    int rounds = 0;
    do {
        for (int k = 0; k < N_JUNK; k++) junk_once((enum junk)k, &o[k]);
        if (rounds++ == 0) step(ready);
    } while (!stopped(stop));
    /* A valid read request after the attack is served: a read-only
     * descriptor (the flood may still hold the exporter's slots). */
    struct outcome after = {0, 0, 0, 0, 0, 0};
    for (int i = 0; i < 200 && after.fds == 0; i++) {
        junk_once(FDS_READ, &after);
        if (after.fds == 0) usleep(50000);
    }
    CHECK(after.fds == 1 && after.writable == 0);
    int total = 0;
    for (int k = 0; k < N_JUNK; k++) {
        total += o[k].connected;
        CHECK(o[k].writable == 0);
        if (o[k].sent == 0) {
            failed++;
            fprintf(stderr, "hostile: '%s' was never delivered\n", junk_names[k]);
        }
        if (k != FDS_READ && o[k].fds != 0) {
            failed++;
            fprintf(stderr, "hostile: '%s' got %d descriptors back\n", junk_names[k], o[k].fds);
        }
        if (k != FDS_READ && o[k].ended != o[k].connected) {
            failed++;
            fprintf(stderr, "hostile: '%s': %d of %d connections left open by the exporter\n",
                    junk_names[k], o[k].connected - o[k].ended, o[k].connected);
        }
    }
    printf("hostile: junk client: %d rounds, %d bad connections, %d raw read requests "
           "answered with a read-only descriptor\n",
           rounds, total, o[FDS_READ].fds + after.fds);
    child_exit();
}

/* Asks for connection (token, secret)'s event channel on a new connection:
 * the reply's status (-1: no reply), with the descriptors it carried. */
static int ask_attach(uint64_t token, uint64_t secret, int *nfds)
{
    int fd = raw_connect();
    unsigned char b[64];
    wire_attach(b, token, secret);
    ssize_t n = fd < 0 ? -1 : send(fd, b, 24, MSG_NOSIGNAL);
    if (n == 24) n = wire_recv(fd, b, NULL, 0, nfds, 0);
    if (fd >= 0) close(fd);
    return n == 40 ? (int)(b[4] | b[5] << 8 | b[6] << 16 | (unsigned)b[7] << 24) : -1;
}

/* The event channel of a connection is given to the process that made it,
 * showing its secret, alone; on that connection; once. */
static void attach_checks(void)
{
    int conn = raw_connect(), nfds = 0;
    unsigned char b[64];
    wire_request(b, WIRE_MAGIC, WIRE_VERSION, 0, RSM_PERM_READ);
    CHECK(conn >= 0 && send(conn, b, 16, MSG_NOSIGNAL) == 16);
    CHECK(wire_recv(conn, b, NULL, 0, &nfds, 0) == 40 && nfds == 1); /* the segment */
    uint64_t token = wire_u64(b + 24), secret = wire_u64(b + 32);
    CHECK(ask_attach(token, secret ^ 1, &nfds) == RSMERR_CONN_ABORTED && nfds == 0);
    CHECK(ask_attach(token + 1000, secret, &nfds) == RSMERR_CONN_ABORTED && nfds == 0);
    pid_t pid = fork();
    if (pid == 0) { /* same uid, another process, the right secret */
        CHECK(ask_attach(token, secret, &nfds) == RSMERR_CONN_ABORTED && nfds == 0);
        child_exit();
    }
    check_child(pid, "attach from another process");
    CHECK(wire_recv(conn, b, NULL, 0, &nfds, MSG_DONTWAIT) < 0 && errno == EAGAIN); /* nothing sent */
    CHECK(ask_attach(token, secret, &nfds) == 0 && nfds == 0);
    CHECK(wire_recv(conn, b, NULL, 0, &nfds, 0) == 40 && nfds == 4); /* page, up, down x2 */
    CHECK(ask_attach(token, secret, &nfds) == 0 && nfds == 0); /* has it: no second */
    CHECK(wire_recv(conn, b, NULL, 0, &nfds, MSG_DONTWAIT) < 0 && errno == EAGAIN);
    close(conn);
}

static pid_t start_hostile(void (*body)(int, int), int ready_w, int stop_r)
{
    pid_t pid = fork();
    if (pid == 0) {
        passed = failed = 0;
        alarm(45);
        close_parent_fds();
        body(ready_w, stop_r);
    }
    return pid;
}

int main(void)
{
    alarm(58);
    signal(SIGPIPE, SIG_IGN);
    if (geteuid() != 0) {
        fprintf(stderr, "hostile: must run as root (clients change users)\n");
        failed++;
        return report("hostile");
    }
    snprintf(fabric, sizeof fabric, "ctest-hostile-%d", (int)getpid());
    setenv("RSM_FABRIC", fabric, 1);
    seg_id = 0x400000 + (rsm_memseg_id_t)(getpid() % 100000) * 16;
    len = 4 * (size_t)sysconf(_SC_PAGESIZE);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 2048) {
        rl.rlim_cur = rl.rlim_max < 2048 ? rl.rlim_max : 2048;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    int cmd[2], ack[2], ready[2], stop[2];
    CHECK(pipe(cmd) == 0 && pipe(ack) == 0 && pipe(ready) == 0 && pipe(stop) == 0);
    pid_t exporter = fork();
    if (exporter == 0) {
        passed = failed = 0;
        alarm(55);
        close(cmd[1]);
        close(ack[0]);
        close(ready[0]);
        close(ready[1]);
        close(stop[0]);
        close(stop[1]);
        exporter_main(cmd[0], ack[1]);
    }
    close(cmd[0]);
    close(ack[1]);
    parent_fds[n_parent_fds++] = cmd[1];
    parent_fds[n_parent_fds++] = ack[0];
    parent_fds[n_parent_fds++] = ready[0];
    parent_fds[n_parent_fds++] = stop[1];
    wait_step(ack[0]);

    /* The attack: silent clients, junk senders, then the flood. */
    pid_t hostile[2 + JUNKERS];
    int n_hostile = 0;
    hostile[n_hostile++] = start_hostile(silent_main, ready[1], stop[0]);
    wait_step(ready[0]);
    for (int i = 0; i < JUNKERS; i++) {
        hostile[n_hostile++] = start_hostile(junk_main, ready[1], stop[0]);
        wait_step(ready[0]);
    }
    hostile[n_hostile++] = start_hostile(flood_main, ready[1], stop[0]);
    wait_step(ready[0]);
    close(ready[1]);
    close(stop[0]);
    close_in_parent(ready[0]);

    /* Meanwhile, a legitimate importer. */
    check_child(start_legit(0, ROUNDS, 1), "legitimate importer during the attack");
    close_in_parent(stop[1]); /* stop */
    for (int i = 0; i < n_hostile; i++) check_child(hostile[i], "hostile client");

    /* The exporter is alive, is back to its descriptors, and serves. */
    CHECK(waitpid(exporter, NULL, WNOHANG) == 0 && kill(exporter, 0) == 0);
    step(cmd[1]);
    wait_step(ack[0]);
    check_child(start_legit(ROUNDS, 1, 0), "legitimate importer after the attack");
    attach_checks();
    step(cmd[1]);
    wait_step(ack[0]);
    CHECK(write(cmd[1], "q", 1) == 1);
    check_child(exporter, "exporter");
    return report("hostile");
}
