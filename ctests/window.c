/*
 * The window transport (issue 8) between "hosts": each host is a process
 * in a network namespace of its own (unshare(CLONE_NEWNET)), so no socket
 * reaches from one to another: everything RSM does between them crosses
 * the windows, three 8 MiB files in /dev/shm named by a config file
 * (README "Window controllers"). Pipes from this test's parent carry only
 * its script ("publish now", "check now"), never RSM data.
 *
 *  1. Topology: three hosts see each other on win0 (and nobody on shm0);
 *     a host that leaves disappears.
 *  2. Data and signals: node 0 exports, nodes 1 and 2 connect, get, put,
 *     map, barrier; the exporter sees their puts in its own memory;
 *     signals both ways (wait and wait_pollfd, and a forked child's
 *     wait on an inherited import); unpublish forcibly
 *     disconnects them (RSMERR_CONN_ABORTED, no fault).
 *  3. Access: node lists, the owner/group/other mode against the uid an
 *     importer claims (a host running as nobody), republish.
 *  4. Liveness: the exporter host is SIGKILLed; its importer notices
 *     through the heartbeat within MISSES + 3 of its own heartbeat periods
 *     (counted in its window, not timed) and gets RSMERR_CONN_ABORTED; a
 *     new exporter on that node reclaims the dead one's segment id; an
 *     importer killed with all its node's import slots gives them back.
 */
#define _GNU_SOURCE
#include <rsmapi.h>
#include <dirent.h>
#include <sched.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include "common.h"

#define WINDOW_SIZE (8 << 20)
#define HEARTBEAT_MS 20
#define MISSES 10
#define H_HEARTBEAT 32 /* docs/window-format.md: header heartbeat (u64) */
#define SLOTS_PER_NODE 16
#define SEG_LEN (16 * 4096)

static char window_path[3][96];
static char config_path[96];

/* ---- hosts ---------------------------------------------------------- */

/* The test's ends of earlier hosts' pipes: a new host closes them. */
static int parent_fds[64], n_parent_fds;

struct host {
    pid_t pid;
    int cmd, ack; /* the test writes commands, reads answers */
};

typedef void body_fn(int cmd, int ack);

/* Starts node `node` as a host: a child in its own network namespace,
 * running as `uid` if nonzero, that runs `body`. */
static struct host host_start(int node, uid_t uid, body_fn *body)
{
    int cmd[2], ack[2];
    if (pipe(cmd) || pipe(ack)) abort();
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        for (int i = 0; i < n_parent_fds; i++) close(parent_fds[i]);
        close(cmd[1]);
        close(ack[0]);
        passed = failed = 0;
        alarm(60);
        char id[16];
        snprintf(id, sizeof id, "%d", node);
        setenv("RSM_NODE_ID", id, 1);
        if (unshare(CLONE_NEWNET) != 0) {
            fprintf(stderr, "unshare(CLONE_NEWNET): %s (needs root)\n", strerror(errno));
            _exit(99);
        }
        if (uid && (setgid(uid) != 0 || setuid(uid) != 0)) _exit(98);
        body(cmd[0], ack[1]);
        child_exit();
    }
    close(cmd[0]);
    close(ack[1]);
    parent_fds[n_parent_fds++] = cmd[1];
    parent_fds[n_parent_fds++] = ack[0];
    return (struct host){pid, cmd[1], ack[0]};
}

static void say(int fd, char c) { CHECK(write(fd, &c, 1) == 1); }

/* A host's answer to a step: 'y' if all its checks so far passed. */
static void done(int ack) { say(ack, failed == 0 ? 'y' : 'n'); }

/* The test asks host `h` to do step `c` and checks it went well. */
#define STEP(h, c) CHECK(ask(&(h), (c)) == 'y')
static char ask(struct host *h, char c)
{
    say(h->cmd, c);
    return hear(h->ack);
}

static void host_end(struct host *h, const char *what)
{
    say(h->cmd, 'q');
    check_child(h->pid, what);
}

/* ---- helpers every host uses ---------------------------------------- */

static rsmapi_controller_handle_t win0(void)
{
    rsmapi_controller_handle_t c = NULL;
    CHECK_RC(rsm_get_controller("win0", &c), RSM_SUCCESS);
    return c;
}

static char *pages(size_t len)
{
    char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) abort();
    for (size_t i = 0; i < len; i++) p[i] = (char)(i * 7 + 3);
    return p;
}

/* Whether win0's topology lists `node` as reachable. */
static int reaches(rsm_node_id_t node, const char *ctrl)
{
    rsm_topology_t *t = NULL;
    int found = 0;
    if (rsm_get_interconnect_topology(&t) != RSM_SUCCESS) return -1;
    for (uint_t i = 0; i < t->topology_hdr.local_cntlr_count; i++) {
        rsm_connections_t *c = t->connections[i];
        if (strcmp(c->hdr.cntlr_name, ctrl) != 0) continue;
        for (int r = 0; r < c->hdr.remote_cntlr_count; r++)
            if (c->remote_cntlr[r].remote_nodeid == node &&
                c->remote_cntlr[r].connection_state == RSM_CONNECTION_ACTIVE)
                found = 1;
    }
    rsm_free_interconnect_topology(t);
    return found;
}

/* How many remote nodes `ctrl` lists. */
static int remotes(const char *ctrl)
{
    rsm_topology_t *t = NULL;
    int n = -1;
    if (rsm_get_interconnect_topology(&t) != RSM_SUCCESS) return -1;
    for (uint_t i = 0; i < t->topology_hdr.local_cntlr_count; i++)
        if (strcmp(t->connections[i]->hdr.cntlr_name, ctrl) == 0)
            n = t->connections[i]->hdr.remote_cntlr_count;
    rsm_free_interconnect_topology(t);
    return n;
}

/* Polls `cond` every 5 ms for up to 5 s (a safety net, not a timing
 * assertion: what is bounded is checked in heartbeats). */
#define EVENTUALLY(cond)                                                   \
    ({                                                                     \
        int ok_ = 0;                                                       \
        for (int k_ = 0; k_ < 1000 && !(ok_ = (cond)); k_++) usleep(5000); \
        ok_;                                                               \
    })

/* Whether process `pid` sleeps in poll(2) (the state and wait channel
 * /proc shows): a waiter that has gone past its spin. */
static int asleep_in_poll(pid_t pid)
{
    char path[64], text[512] = "", wchan[64] = "";
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = 0;
    char *close_paren = strrchr(text, ')');
    snprintf(path, sizeof path, "/proc/%d/wchan", (int)pid);
    if (!(f = fopen(path, "r"))) return 0;
    n = fread(wchan, 1, sizeof wchan - 1, f);
    fclose(f);
    wchan[n] = 0;
    return close_paren && close_paren[1] == ' ' && close_paren[2] == 'S' && strstr(wchan, "poll");
}

/* Node `node`'s heartbeat count, read from its window file the way a
 * peer would (docs/window-format.md). */
static uint64_t heartbeat(int node)
{
    int fd = open(window_path[node], O_RDONLY);
    if (fd < 0) return 0;
    void *p = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (p == MAP_FAILED) return 0;
    uint64_t v = __atomic_load_n((uint64_t *)((char *)p + H_HEARTBEAT), __ATOMIC_SEQ_CST);
    munmap(p, 4096);
    return v;
}

/* ---- 1. topology ---------------------------------------------------- */

/* 'w': wait until the other two nodes are reachable; 'l': until node 2
 * has left (node 1 still there); 'q': release and exit. */
static void topology_host(int cmd, int ack)
{
    rsmapi_controller_handle_t c = win0();
    int me = atoi(getenv("RSM_NODE_ID"));
    done(ack);
    for (char op; (op = hear(cmd)) && op != 'q'; done(ack)) {
        if (op == 'w') {
            for (int n = 0; n < 3; n++)
                if (n != me) CHECK(EVENTUALLY(reaches(n, "win0") == 1));
            CHECK(reaches(me, "win0") == 0); /* never its own node */
            /* No other process shares this network namespace's abstract
             * sockets: shm0 reaches nobody, the window everybody. */
            CHECK(remotes("shm0") == 0);
        }
        if (op == 'l') {
            CHECK(EVENTUALLY(reaches(2, "win0") == 0));
            CHECK(reaches(1, "win0") == 1);
        }
    }
    CHECK_RC(rsm_release_controller(c), RSM_SUCCESS);
}

static void test_topology(void)
{
    struct host h[3];
    for (int n = 0; n < 3; n++) {
        h[n] = host_start(n, 0, topology_host);
        CHECK(hear(h[n].ack) == 'y');
    }
    for (int n = 0; n < 3; n++) STEP(h[n], 'w');
    host_end(&h[2], "topology node 2");
    STEP(h[0], 'l');
    host_end(&h[0], "topology node 0");
    host_end(&h[1], "topology node 1");
}

/* ---- 2. data, barriers, signals, unpublish --------------------------- */

#define SEG_DATA 0x400100

/* Node 0: exports SEG_LEN bytes of its own memory as SEG_DATA.
 * 'c': sees both importers' puts in its own memory, then writes a reply;
 * 'w': takes the 4 events the importers posted; 'p': posts one to each;
 * 'u': unpublishes; 'q': destroys (the memory stays the program's). */
static void data_exporter(int cmd, int ack)
{
    rsmapi_controller_handle_t c = win0();
    rsm_memseg_export_handle_t ex;
    rsm_memseg_id_t id = SEG_DATA;
    char *buf = pages(SEG_LEN);
    CHECK_RC(rsm_memseg_export_create(c, &ex, buf, SEG_LEN, 0), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_export_publish(ex, &id, NULL, 0), RSM_SUCCESS);
    CHECK(buf[4097] == (char)(4097 * 7 + 3)); /* still the program's data */
    done(ack);
    for (char op; (op = hear(cmd)) && op != 'q'; done(ack)) {
        if (op == 'c') {
            CHECK(strcmp(buf + 100, "put by node 1") == 0);
            CHECK(strcmp(buf + 200, "put by node 2") == 0);
            strcpy(buf + 8192, "written by the exporter");
        }
        if (op == 'w') {
            struct pollfd pfd;
            CHECK_RC(rsm_memseg_get_pollfd(ex, &pfd), RSM_SUCCESS);
            int n = 0;
            CHECK_RC(rsm_intr_signal_wait_pollfd(&pfd, 1, 5000, &n), RSM_SUCCESS);
            CHECK(n == 1 && pfd.revents == POLLRDNORM);
            CHECK_RC(rsm_memseg_release_pollfd(ex), RSM_SUCCESS);
            for (int i = 0; i < 3; i++) CHECK_RC(rsm_intr_signal_wait(ex, 5000), RSM_SUCCESS);
            CHECK_RC(rsm_intr_signal_wait(ex, 0), RSMERR_TIMEOUT);
        }
        if (op == 'p') CHECK_RC(rsm_intr_signal_post(ex, 0), RSM_SUCCESS);
        if (op == 'u') CHECK_RC(rsm_memseg_export_unpublish(ex), RSM_SUCCESS);
    }
    CHECK_RC(rsm_memseg_export_destroy(ex), RSM_SUCCESS);
    CHECK(strcmp(buf + 100, "put by node 1") == 0); /* kept, privately */
    buf[0] = 1;
    CHECK_RC(rsm_release_controller(c), RSM_SUCCESS);
}

/* Nodes 1 and 2: connect to SEG_DATA on node 0 and use it.
 * 'g': get, put (implicit barriers), map, explicit barrier;
 * 'r': read the exporter's reply through the mapping; 's': post twice;
 * 'e': wait for the exporter's post on the pollfd; 'f': fork a child
 * that waits with no timeout on the inherited handle (nobody rings for a
 * child: it looks at the window itself) and 'j': join it once the
 * exporter posted; 'a': see the forced disconnect of an unpublish. */
static void data_importer(int cmd, int ack)
{
    int me = atoi(getenv("RSM_NODE_ID"));
    rsmapi_controller_handle_t c = win0();
    rsm_memseg_import_handle_t im = NULL;
    rsmapi_barrier_t bar;
    char *map = NULL, tmp[4096], msg[32];
    pid_t waiter = -1;
    done(ack);
    for (char op; (op = hear(cmd)) && op != 'q'; done(ack)) {
        if (op == 'f') {
            fflush(stdout);
            fflush(stderr);
            if ((waiter = fork()) == 0) {
                alarm(60); /* a child nobody wakes fails here */
                CHECK_RC(rsm_intr_signal_wait(im, -1), RSM_SUCCESS);
                CHECK_RC(rsm_intr_signal_wait(im, 0), RSMERR_TIMEOUT); /* exactly one */
                child_exit();
            }
            CHECK(waiter > 0);
            /* Past its spin and asleep before the exporter posts. */
            CHECK(EVENTUALLY(asleep_in_poll(waiter)));
        }
        if (op == 'j') check_child(waiter, "a forked child's wait on a window import");
        if (op == 'g') {
            CHECK_RC(rsm_memseg_import_connect(c, 0, SEG_DATA, RSM_PERM_RDWR, &im), RSM_SUCCESS);
            CHECK_RC(rsm_memseg_import_init_barrier(im, RSM_BARRIER_SEGMENT, &bar), RSM_SUCCESS);
            CHECK_RC(rsm_memseg_import_get(im, 4096, tmp, sizeof tmp), RSM_SUCCESS);
            int same = 1;
            for (int i = 0; i < 4096; i++) same &= tmp[i] == (char)((4096 + i) * 7 + 3);
            CHECK(same);
            snprintf(msg, sizeof msg, "put by node %d", me);
            CHECK_RC(rsm_memseg_import_put(im, 100 * me, msg, strlen(msg) + 1), RSM_SUCCESS);
            CHECK_RC(rsm_memseg_import_map(im, (void **)&map, RSM_MAP_NONE, RSM_PERM_RDWR, 0,
                                           SEG_LEN),
                     RSM_SUCCESS);
            CHECK(map && map[5] == (char)(5 * 7 + 3));
            /* Explicit mode: stores through the mapping, then a barrier
             * that reads back through the window. */
            CHECK_RC(rsm_memseg_import_set_mode(im, RSM_BARRIER_MODE_EXPLICIT), RSM_SUCCESS);
            CHECK_RC(rsm_memseg_import_open_barrier(&bar), RSM_SUCCESS);
            map[16384 + me] = (char)me;
            CHECK_RC(rsm_memseg_import_order_barrier(&bar), RSM_SUCCESS);
            CHECK_RC(rsm_memseg_import_close_barrier(&bar), RSM_SUCCESS);
            uint32_t v = 0;
            CHECK_RC(rsm_memseg_import_get32(im, 16384, &v, 1), RSM_SUCCESS);
            CHECK(((char *)&v)[me] == (char)me);
            CHECK_RC(rsm_memseg_import_set_mode(im, RSM_BARRIER_MODE_IMPLICIT), RSM_SUCCESS);
        }
        if (op == 'r') CHECK(strcmp(map + 8192, "written by the exporter") == 0);
        if (op == 's')
            for (int i = 0; i < 2; i++) CHECK_RC(rsm_intr_signal_post(im, 0), RSM_SUCCESS);
        if (op == 'e') {
            struct pollfd pfd;
            int n = 0;
            CHECK_RC(rsm_memseg_get_pollfd(im, &pfd), RSM_SUCCESS);
            CHECK_RC(rsm_intr_signal_wait_pollfd(&pfd, 1, 5000, &n), RSM_SUCCESS);
            CHECK(n == 1 && pfd.revents == POLLRDNORM);
            CHECK_RC(rsm_intr_signal_wait(im, 0), RSMERR_TIMEOUT); /* exactly one */
            CHECK_RC(rsm_memseg_release_pollfd(im), RSM_SUCCESS);
            /* A barrier spanning the unpublish that comes next. */
            CHECK_RC(rsm_memseg_import_open_barrier(&bar), RSM_SUCCESS);
        }
        if (op == 'a') {
            uint8_t b = 0;
            int rc;
            CHECK(EVENTUALLY((rc = rsm_memseg_import_get8(im, 0, &b, 1)) != RSM_SUCCESS));
            CHECK_RC(rc, RSMERR_CONN_ABORTED);
            CHECK_RC(rsm_memseg_import_close_barrier(&bar), RSMERR_CONN_ABORTED);
            map[0] = 42; /* trash memory now: no fault */
            CHECK(map[0] == 42);
            CHECK_RC(rsm_memseg_import_unmap(im), RSM_SUCCESS);
            CHECK_RC(rsm_memseg_import_map(im, (void **)&map, RSM_MAP_NONE, RSM_PERM_READ, 0,
                                           4096),
                     RSMERR_CONN_ABORTED);
            CHECK_RC(rsm_intr_signal_post(im, 0), RSM_SUCCESS); /* silently */
            CHECK_RC(rsm_intr_signal_wait(im, 100), RSMERR_CONN_ABORTED);
            CHECK_RC(rsm_memseg_import_destroy_barrier(&bar), RSM_SUCCESS);
            CHECK_RC(rsm_memseg_import_disconnect(im), RSM_SUCCESS);
            CHECK_RC(rsm_memseg_import_connect(c, 0, SEG_DATA, RSM_PERM_READ, &im),
                     RSMERR_SEG_NOT_PUBLISHED);
        }
    }
    CHECK_RC(rsm_release_controller(c), RSM_SUCCESS);
}

static void test_data(void)
{
    struct host x = host_start(0, 0, data_exporter);
    CHECK(hear(x.ack) == 'y');
    struct host i1 = host_start(1, 0, data_importer), i2 = host_start(2, 0, data_importer);
    CHECK(hear(i1.ack) == 'y' && hear(i2.ack) == 'y');
    STEP(i1, 'g');
    STEP(i2, 'g');
    STEP(x, 'c');
    STEP(i1, 'r');
    STEP(i2, 'r');
    STEP(i1, 's');
    STEP(i2, 's');
    STEP(x, 'w');
    STEP(x, 'p');
    STEP(i1, 'e');
    STEP(i2, 'e');
    STEP(i1, 'f');
    STEP(x, 'p');
    STEP(i1, 'j');
    STEP(i2, 'e');
    STEP(x, 'u');
    STEP(i1, 'a');
    STEP(i2, 'a');
    host_end(&i1, "data node 1");
    host_end(&i2, "data node 2");
    host_end(&x, "data node 0");
}

/* ---- 3. access: node lists, modes, claimed uids, republish ----------- */

#define SEG_NODE2 0x400200 /* ACL: node 2 only */
#define SEG_OWNER 0x400201 /* ACL: node 1, 0640 (owner rw, group r) */
#define SEG_OPEN 0x400202  /* no ACL: the creation mode, 0755 */

/* Node 0 (root): the three segments. 'r': republish SEG_OWNER as 0644. */
static void acl_exporter(int cmd, int ack)
{
    rsmapi_controller_handle_t c = win0();
    rsm_memseg_export_handle_t ex[3];
    rsm_memseg_id_t ids[3] = {SEG_NODE2, SEG_OWNER, SEG_OPEN};
    rsmapi_access_entry_t node2 = {2, 0666}, owner = {1, 0640}, wider = {1, 0644};
    rsmapi_access_entry_t *acls[3] = {&node2, &owner, NULL};
    umask(022);
    for (int i = 0; i < 3; i++) {
        CHECK_RC(rsm_memseg_export_create(c, &ex[i], pages(4096), 4096, 0), RSM_SUCCESS);
        CHECK_RC(rsm_memseg_export_publish(ex[i], &ids[i], acls[i], acls[i] ? 1 : 0),
                 RSM_SUCCESS);
    }
    done(ack);
    for (char op; (op = hear(cmd)) && op != 'q'; done(ack))
        if (op == 'r') CHECK_RC(rsm_memseg_export_republish(ex[1], &wider, 1), RSM_SUCCESS);
    for (int i = 0; i < 3; i++) CHECK_RC(rsm_memseg_export_destroy(ex[i]), RSM_SUCCESS);
    CHECK_RC(rsm_release_controller(c), RSM_SUCCESS);
}

static int try_connect(rsm_memseg_id_t id, rsm_permission_t perm)
{
    rsmapi_controller_handle_t c = win0();
    rsm_memseg_import_handle_t im = NULL;
    int rc = rsm_memseg_import_connect(c, 0, id, perm, &im);
    if (rc == RSM_SUCCESS) CHECK_RC(rsm_memseg_import_disconnect(im), RSM_SUCCESS);
    CHECK_RC(rsm_release_controller(c), RSM_SUCCESS);
    return rc;
}

/* Nodes 1 and 2 as root: 'a' checks the node lists. */
static void acl_root(int cmd, int ack)
{
    int me = atoi(getenv("RSM_NODE_ID"));
    done(ack);
    for (char op; (op = hear(cmd)) && op != 'q'; done(ack)) {
        if (op != 'a') continue;
        if (me == 1) {
            CHECK_RC(try_connect(SEG_NODE2, RSM_PERM_READ), RSMERR_SEG_NOT_PUBLISHED_TO_NODE);
            CHECK_RC(try_connect(SEG_OWNER, RSM_PERM_RDWR), RSM_SUCCESS); /* the owner's uid */
        } else {
            CHECK_RC(try_connect(SEG_NODE2, RSM_PERM_RDWR), RSM_SUCCESS);
            CHECK_RC(try_connect(SEG_OWNER, RSM_PERM_READ), RSMERR_SEG_NOT_PUBLISHED_TO_NODE);
        }
    }
}

/* Node 1 running as nobody (another process of node 1): the exporter
 * judges the uid and gid it claims. 'a': before the republish; 'b': after. */
static void acl_nobody(int cmd, int ack)
{
    done(ack);
    for (char op; (op = hear(cmd)) && op != 'q'; done(ack)) {
        if (op == 'a') {
            CHECK(geteuid() == 65534);
            CHECK_RC(try_connect(SEG_OWNER, RSM_PERM_READ), RSMERR_PERM_DENIED);
            CHECK_RC(try_connect(SEG_OPEN, RSM_PERM_RDWR), RSMERR_PERM_DENIED);
            rsmapi_controller_handle_t c = win0();
            rsm_memseg_import_handle_t im;
            void *p = NULL;
            char b = 0;
            CHECK_RC(rsm_memseg_import_connect(c, 0, SEG_OPEN, RSM_PERM_READ, &im), RSM_SUCCESS);
            CHECK_RC(rsm_memseg_import_put(im, 0, &b, 1), RSMERR_PERM_DENIED);
            CHECK_RC(rsm_memseg_import_map(im, &p, RSM_MAP_NONE, RSM_PERM_RDWR, 0, 4096),
                     RSMERR_BAD_PERMS);
            CHECK_RC(rsm_memseg_import_map(im, &p, RSM_MAP_NONE, RSM_PERM_READ, 0, 4096),
                     RSM_SUCCESS);
            CHECK(p && ((char *)p)[9] == (char)(9 * 7 + 3));
            CHECK_RC(rsm_memseg_import_unmap(im), RSM_SUCCESS);
            CHECK_RC(rsm_memseg_import_disconnect(im), RSM_SUCCESS);
            CHECK_RC(rsm_release_controller(c), RSM_SUCCESS);
        }
        if (op == 'b') {
            CHECK_RC(try_connect(SEG_OWNER, RSM_PERM_READ), RSM_SUCCESS);
            CHECK_RC(try_connect(SEG_OWNER, RSM_PERM_RDWR), RSMERR_PERM_DENIED);
        }
    }
}

static void test_access(void)
{
    struct host x = host_start(0, 0, acl_exporter);
    CHECK(hear(x.ack) == 'y');
    struct host r1 = host_start(1, 0, acl_root), r2 = host_start(2, 0, acl_root);
    struct host nobody = host_start(1, 65534, acl_nobody);
    CHECK(hear(r1.ack) == 'y' && hear(r2.ack) == 'y' && hear(nobody.ack) == 'y');
    STEP(r1, 'a');
    STEP(r2, 'a');
    STEP(nobody, 'a');
    STEP(x, 'r');
    STEP(nobody, 'b');
    host_end(&nobody, "access nobody on node 1");
    host_end(&r1, "access node 1");
    host_end(&r2, "access node 2");
    host_end(&x, "access node 0");
}

/* ---- 4. liveness: a killed exporter, a killed importer --------------- */

#define SEG_LIVE 0x400300

/* Node 0: publishes SEG_LIVE and waits to be killed (or told to quit). */
static void live_exporter(int cmd, int ack)
{
    rsmapi_controller_handle_t c = win0();
    rsm_memseg_export_handle_t ex;
    rsm_memseg_id_t id = SEG_LIVE;
    char *buf = pages(SEG_LEN);
    CHECK_RC(rsm_memseg_export_create(c, &ex, buf, SEG_LEN, 0), RSM_SUCCESS);
    /* The killed exporter's entry is reclaimed: the id is free again. */
    CHECK_RC(rsm_memseg_export_publish(ex, &id, NULL, 0), RSM_SUCCESS);
    done(ack);
    for (char op; (op = hear(cmd)) && op != 'q'; done(ack)) {}
    CHECK_RC(rsm_memseg_export_destroy(ex), RSM_SUCCESS);
    CHECK_RC(rsm_release_controller(c), RSM_SUCCESS);
}

/* Node 1: 'c' connects and maps; 'k' (the exporter was just killed)
 * counts its own heartbeats until the import is aborted; 'n' connects
 * again to a new exporter. */
static void live_importer(int cmd, int ack)
{
    rsmapi_controller_handle_t c = win0();
    rsm_memseg_import_handle_t im = NULL;
    rsmapi_barrier_t bar;
    void *map = NULL;
    done(ack);
    for (char op; (op = hear(cmd)) && op != 'q'; done(ack)) {
        if (op == 'c' || op == 'n') {
            CHECK_RC(rsm_memseg_import_connect(c, 0, SEG_LIVE, RSM_PERM_RDWR, &im), RSM_SUCCESS);
            CHECK_RC(rsm_memseg_import_init_barrier(im, RSM_BARRIER_SEGMENT, &bar), RSM_SUCCESS);
            CHECK_RC(rsm_memseg_import_map(im, &map, RSM_MAP_NONE, RSM_PERM_RDWR, 0, SEG_LEN),
                     RSM_SUCCESS);
            CHECK(((char *)map)[11] == (char)(11 * 7 + 3));
            uint8_t b;
            CHECK_RC(rsm_memseg_import_get8(im, 0, &b, 1), RSM_SUCCESS);
        }
        if (op == 'k') {
            uint64_t before = heartbeat(1);
            uint8_t b;
            int rc = RSM_SUCCESS;
            for (int i = 0; i < 10000 && rc == RSM_SUCCESS; i++) {
                rc = rsm_memseg_import_get8(im, 0, &b, 1);
                if (rc == RSM_SUCCESS) usleep(1000);
            }
            uint64_t periods = heartbeat(1) - before;
            CHECK_RC(rc, RSMERR_CONN_ABORTED);
            CHECK(periods <= MISSES + 3);
            printf("window: exporter SIGKILL noticed after %llu of the importer's heartbeat "
                   "periods (bound %d)\n",
                   (unsigned long long)periods, MISSES + 3);
            ((char *)map)[0] = 1; /* trash now, no SIGBUS */
            CHECK_RC(rsm_intr_signal_wait(im, 100), RSMERR_CONN_ABORTED);
            CHECK_RC(rsm_memseg_import_unmap(im), RSM_SUCCESS);
            CHECK_RC(rsm_memseg_import_disconnect(im), RSM_SUCCESS);
            /* Nobody beats on node 0 any more. */
            CHECK(EVENTUALLY(reaches(0, "win0") == 0));
            CHECK_RC(rsm_memseg_import_connect(c, 0, SEG_LIVE, RSM_PERM_READ, &im),
                     RSMERR_REMOTE_NODE_UNREACHABLE);
        }
        if (op == 'n') {
            CHECK_RC(rsm_memseg_import_unmap(im), RSM_SUCCESS);
            CHECK_RC(rsm_memseg_import_disconnect(im), RSM_SUCCESS);
        }
    }
    CHECK_RC(rsm_release_controller(c), RSM_SUCCESS);
}

/* Node 2: 'h' takes every import slot node 2 has in node 0's window (the
 * next connect is refused), then waits to be killed; 'r' (another
 * process) connects once the dead one's slots came back. */
static void slot_hog(int cmd, int ack)
{
    rsmapi_controller_handle_t c = win0();
    rsm_memseg_import_handle_t im[SLOTS_PER_NODE + 1];
    done(ack);
    for (char op; (op = hear(cmd)) && op != 'q'; done(ack)) {
        if (op == 'h') {
            for (int i = 0; i < SLOTS_PER_NODE; i++)
                CHECK_RC(rsm_memseg_import_connect(c, 0, SEG_LIVE, RSM_PERM_READ, &im[i]),
                         RSM_SUCCESS);
            CHECK_RC(rsm_memseg_import_connect(c, 0, SEG_LIVE, RSM_PERM_READ, &im[SLOTS_PER_NODE]),
                     RSMERR_INSUFFICIENT_RESOURCES);
        }
        if (op == 'r') {
            int rc = -1;
            CHECK(EVENTUALLY((rc = rsm_memseg_import_connect(c, 0, SEG_LIVE, RSM_PERM_READ,
                                                             &im[0])) == RSM_SUCCESS));
            if (rc == RSM_SUCCESS) CHECK_RC(rsm_memseg_import_disconnect(im[0]), RSM_SUCCESS);
        }
    }
    CHECK_RC(rsm_release_controller(c), RSM_SUCCESS);
}

static void killed(struct host *h)
{
    int status = 0;
    kill(h->pid, SIGKILL);
    CHECK(waitpid(h->pid, &status, 0) == h->pid && WIFSIGNALED(status));
}

static void test_liveness(void)
{
    struct host x = host_start(0, 0, live_exporter);
    CHECK(hear(x.ack) == 'y');
    struct host i = host_start(1, 0, live_importer);
    CHECK(hear(i.ack) == 'y');
    STEP(i, 'c');
    killed(&x);
    STEP(i, 'k');
    /* A new exporter on node 0 takes over the dead one's segment id. */
    x = host_start(0, 0, live_exporter);
    CHECK(hear(x.ack) == 'y');
    STEP(i, 'n');
    /* An importer killed holding all of node 2's slots gives them back. */
    struct host hog = host_start(2, 0, slot_hog);
    CHECK(hear(hog.ack) == 'y');
    STEP(hog, 'h');
    killed(&hog);
    struct host again = host_start(2, 0, slot_hog);
    CHECK(hear(again.ack) == 'y');
    STEP(again, 'r');
    host_end(&again, "liveness node 2");
    host_end(&i, "liveness node 1");
    host_end(&x, "liveness node 0");
}

/* ---- setup ------------------------------------------------------------ */

/* The windows: files an administrator would make (0666 here, so a host
 * running as nobody can map them); each node formats its own. */
static void setup(void)
{
    int pid = getpid();
    snprintf(config_path, sizeof config_path, "/tmp/rsm-window-%d.conf", pid);
    FILE *f = fopen(config_path, "w");
    if (!f) abort();
    fprintf(f, "[controller win0]\ntype = window\nheartbeat_ms = %d\nheartbeat_misses = %d\n",
            HEARTBEAT_MS, MISSES);
    for (int n = 0; n < 3; n++) {
        snprintf(window_path[n], sizeof window_path[n], "/dev/shm/rsm-window-%d-node%d", pid, n);
        int fd = open(window_path[n], O_RDWR | O_CREAT | O_EXCL, 0666);
        if (fd < 0 || fchmod(fd, 0666) || ftruncate(fd, WINDOW_SIZE)) abort();
        close(fd);
        fprintf(f, "node %d = %s 0 %d\n", n, window_path[n], WINDOW_SIZE);
    }
    fclose(f);
    setenv("RSM_CONFIG", config_path, 1);
}

static void cleanup(void)
{
    for (int n = 0; n < 3; n++) unlink(window_path[n]);
    unlink(config_path);
}

/* Interrupted (make killed, a timeout): the files go anyway. */
static void on_signal(int sig)
{
    cleanup();
    signal(sig, SIG_DFL);
    raise(sig);
}

/* Windows left by runs that were killed before their cleanup. */
static void remove_stale(void)
{
    DIR *d = opendir("/dev/shm");
    for (struct dirent *e; d && (e = readdir(d));) {
        int pid = 0, node = 0;
        char path[300];
        if (sscanf(e->d_name, "rsm-window-%d-node%d", &pid, &node) != 2) continue;
        if (kill(pid, 0) == 0 || errno != ESRCH) continue;
        snprintf(path, sizeof path, "/dev/shm/%s", e->d_name);
        unlink(path);
        snprintf(path, sizeof path, "/tmp/rsm-window-%d.conf", pid);
        unlink(path);
    }
    if (d) closedir(d);
}

int main(void)
{
    remove_stale();
    setup();
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGHUP, on_signal);
    test_topology();
    test_data();
    test_access();
    test_liveness();
    cleanup();
    return report("window");
}
