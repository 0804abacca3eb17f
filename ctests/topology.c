/*
 * rsm_get_interconnect_topology (spec 4.2): other processes of the fabric
 * show up as remote nodes of shm0 while they hold a controller, and vanish
 * when they die; a controller the config file adds (README "Configuration")
 * is listed with the nodes of its own fabric and can be opened; loopback is
 * never listed; the block is one malloc'd piece in the Solaris layout.
 */
#define _GNU_SOURCE
#include <rsmapi.h>
#include <stdint.h>
#include "common.h"

/* The parent's ends of earlier peers' pipes: a new peer must not keep them
 * open, or an earlier peer would never see its end of file. */
static int parent_fds[16], n_parent_fds;

/* A peer: node `node` holds shm0 until its hold pipe closes. It lives on
 * `fabric`, or on ours if NULL. */
static pid_t start_peer_on(const char *fabric, const char *node, int *ready_fd, int *hold_fd)
{
    int ready[2], hold[2];
    if (pipe(ready) || pipe(hold)) abort();
    pid_t pid = fork();
    if (pid == 0) {
        for (int i = 0; i < n_parent_fds; i++) close(parent_fds[i]);
        setenv("RSM_NODE_ID", node, 1);
        if (fabric) setenv("RSM_FABRIC", fabric, 1);
        close(ready[0]);
        close(hold[1]);
        rsmapi_controller_handle_t c;
        char ok = rsm_get_controller("shm0", &c) == RSM_SUCCESS ? 'y' : 'n';
        if (write(ready[1], &ok, 1) != 1) _exit(1);
        char b;
        while (read(hold[0], &b, 1) > 0) {}
        _exit(rsm_release_controller(c) == RSM_SUCCESS ? 0 : 1);
    }
    close(ready[1]);
    close(hold[0]);
    char ok = 0;
    CHECK(read(ready[0], &ok, 1) == 1 && ok == 'y');
    *ready_fd = parent_fds[n_parent_fds++] = ready[0];
    *hold_fd = parent_fds[n_parent_fds++] = hold[1];
    return pid;
}

static pid_t start_peer(const char *node, int *ready_fd, int *hold_fd)
{
    return start_peer_on(NULL, node, ready_fd, hold_fd);
}

/* Finds controller `name` in `t`, or NULL, checking it lies inside the block. */
static rsm_connections_t *find(rsm_topology_t *t, const char *name, size_t block_hint)
{
    for (uint_t i = 0; i < t->topology_hdr.local_cntlr_count; i++) {
        rsm_connections_t *c = t->connections[i];
        CHECK((uintptr_t)c > (uintptr_t)t && (uintptr_t)c < (uintptr_t)t + block_hint);
        CHECK((uintptr_t)c % 8 == 0);
        if (strcmp(c->hdr.cntlr_name, name) == 0) return c;
    }
    return NULL;
}

/* Is `node` a remote node of `c`, reached through a controller of the same
 * name (a same-host fabric's controllers share their name)? */
static int has_node(rsm_connections_t *c, rsm_node_id_t node)
{
    for (int i = 0; i < c->hdr.remote_cntlr_count; i++) {
        rsm_remote_cntlr_t *r = &c->remote_cntlr[i];
        if (r->remote_nodeid == node) {
            CHECK(strcmp(r->remote_cntlrname, c->hdr.cntlr_name) == 0);
            CHECK(r->connection_state == RSM_CONNECTION_ACTIVE);
            CHECK(r->remote_hwaddr == node);
            return 1;
        }
    }
    return 0;
}

/* A process whose config file `conf` adds controller shm1 on another fabric:
 * the topology lists shm0 (our fabric: nodes 1 and 2) and shm1 (the other
 * fabric: node 5 only), never loopback, and shm1 opens. */
static void configured(const char *conf)
{
    pid_t pid = fork();
    if (pid == 0) {
        passed = failed = 0;
        setenv("RSM_CONFIG", conf, 1); /* before this process's first call */
        setenv("RSM_NODE_ID", "0", 1);
        rsm_topology_t *t = NULL;
        CHECK_RC(rsm_get_interconnect_topology(&t), RSM_SUCCESS);
        CHECK(t != NULL);
        if (t) {
            CHECK(t->topology_hdr.local_nodeid == 0);
            CHECK(t->topology_hdr.local_cntlr_count == 2); /* shm0, shm1; never loopback */
            rsm_connections_t *s0 = find(t, "shm0", 1 << 16);
            rsm_connections_t *s1 = find(t, "shm1", 1 << 16);
            CHECK(find(t, "loopback", 1 << 16) == NULL);
            CHECK(s0 != NULL && s1 != NULL);
            if (s0) {
                CHECK(s0->hdr.remote_cntlr_count == 2);
                CHECK(has_node(s0, 1) && has_node(s0, 2) && !has_node(s0, 5));
            }
            if (s1) {
                CHECK(s1->hdr.local_hwaddr == 0);
                CHECK(s1->hdr.remote_cntlr_count == 1);
                CHECK(has_node(s1, 5) && !has_node(s1, 1) && !has_node(s1, 2));
            }
            rsm_free_interconnect_topology(t);
        }
        rsmapi_controller_handle_t c1 = NULL, c0 = NULL;
        rsmapi_controller_attr_t attr;
        CHECK_RC(rsm_get_controller("shm1", &c1), RSM_SUCCESS);
        CHECK_RC(rsm_get_controller("shm0", &c0), RSM_SUCCESS);
        CHECK(c1 != NULL && c1 != c0);
        CHECK_RC(rsm_get_controller_attr(c1, &attr), RSM_SUCCESS);
        CHECK(attr.attr_page_size == (size_t)sysconf(_SC_PAGESIZE));
        CHECK_RC(rsm_get_controller("shm2", &c0), RSMERR_CTLR_NOT_PRESENT);
        CHECK_RC(rsm_release_controller(c1), RSM_SUCCESS);
        CHECK_RC(rsm_release_controller(c0), RSM_SUCCESS);
        child_exit();
    }
    check_child(pid, "config file controller in the topology");
}

int main(void)
{
    char fabric[64], other[64];
    snprintf(fabric, sizeof fabric, "ctest-topo-%d", (int)getpid());
    snprintf(other, sizeof other, "ctest-topo2-%d", (int)getpid());
    setenv("RSM_FABRIC", fabric, 1);

    int r1, h1, r2, h2, r3, h3, r5, h5;
    pid_t p1 = start_peer("1", &r1, &h1);
    pid_t p2 = start_peer("2", &r2, &h2);
    pid_t p3 = start_peer("0", &r3, &h3); /* same node as us: not remote */
    pid_t p5 = start_peer_on(other, "5", &r5, &h5); /* only on the other fabric */

    /* Configuration is read at a process's first call: the config case
     * runs in a child forked before this process calls the library. */
    char conf[] = "/tmp/rsm-ctest-topo-XXXXXX";
    int fd = mkstemp(conf);
    char text[256];
    int n = snprintf(text, sizeof text, "[controller shm1]  # the other fabric\ntype = shm\n"
                                        "fabric = %s\n", other);
    CHECK(fd >= 0 && write(fd, text, (size_t)n) == n);
    close(fd);
    configured(conf);
    unlink(conf);
    close(h5);
    check_child(p5, "peer 5 released");

    setenv("RSM_NODE_ID", "0", 1);
    CHECK_RC(rsm_get_interconnect_topology(NULL), RSMERR_BAD_TOPOLOGY_PTR);
    rsm_topology_t *t = NULL;
    CHECK_RC(rsm_get_interconnect_topology(&t), RSM_SUCCESS);
    CHECK(t != NULL);
    if (t) {
        CHECK(t->topology_hdr.local_nodeid == 0);
        CHECK(t->topology_hdr.local_cntlr_count == 1); /* shm0; never loopback */
        rsm_connections_t *c = find(t, "shm0", 1 << 16);
        CHECK(c != NULL);
        CHECK(find(t, "loopback", 1 << 16) == NULL);
        if (c) {
            CHECK(c->hdr.local_hwaddr == 0);
            CHECK(c->hdr.remote_cntlr_count == 2);
            CHECK(has_node(c, 1) && has_node(c, 2));
            CHECK(!has_node(c, 0));
        }
        free(t); /* one block: plain free() releases it */
    }

    /* A peer killed outright disappears; no stale state is left behind. */
    kill(p2, SIGKILL);
    waitpid(p2, NULL, 0);
    CHECK_RC(rsm_get_interconnect_topology(&t), RSM_SUCCESS);
    if (t) {
        rsm_connections_t *c = find(t, "shm0", 1 << 16);
        CHECK(c != NULL && c->hdr.remote_cntlr_count == 1 && has_node(c, 1) && !has_node(c, 2));
        rsm_free_interconnect_topology(t);
    }

    /* A peer that releases its controller leaves too. */
    close(h1);
    check_child(p1, "peer 1 released");
    close(h3);
    check_child(p3, "peer 0 released");
    CHECK_RC(rsm_get_interconnect_topology(&t), RSM_SUCCESS);
    if (t) {
        rsm_connections_t *c = find(t, "shm0", 1 << 16);
        CHECK(c != NULL && c->hdr.remote_cntlr_count == 0);
        rsm_free_interconnect_topology(t);
    }
    rsm_free_interconnect_topology(NULL);
    (void)r1;
    (void)r2;
    (void)r3;
    (void)r5;
    (void)h2;
    return report("topology");
}
