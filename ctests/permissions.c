/*
 * The permission model of a connect (spec 4.4, 4.5, 5.1), between real
 * processes of different users. The exporter drops to uid 1000, gid 1000
 * and is "the owner of the file"; importers drop to other users before
 * their first rsm_* call (root, as an importer, holds CAP_IPC_OWNER and
 * would pass every mode check). Covered: the owner, group (primary and
 * supplementary) and other digits; the umask mode of an empty ACL; node
 * entries of one and several ACL entries; ACL values above 0666; republish
 * (new connects follow the new list, existing connections keep their
 * rights); and the kernel enforcing a read-only import even when the
 * program bypasses the library (mmap, mprotect, reopen through /proc).
 * Needs root, to change users.
 */
#define _GNU_SOURCE
#include <rsmapi.h>
#include <dirent.h>
#include <grp.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include "common.h"

#define R RSM_PERM_READ
#define W RSM_PERM_WRITE
#define RW RSM_PERM_RDWR

/* The users of the tests. The exporter is OWNER. */
struct who {
    const char *name;
    uid_t uid;
    gid_t gid;
    int ngroups;
    gid_t groups[3];
};
static const struct who OWNER = {"owner (1000:1000)", 1000, 1000, 0, {0}};
static const struct who GROUP = {"group member (65534:1000)", 65534, 1000, 0, {0}};
static const struct who SUPP = {"supplementary member (65534:65534 +100,1000)", 65534, 65534, 2,
                                {100, 1000}};
static const struct who OTHER = {"other (65534:65534)", 65534, 65534, 0, {0}};
static const struct who ROOT = {"root", 0, 0, 0, {0}};

static size_t len;
static rsm_memseg_id_t id_base;

/* Segment k of this run; its bytes start as 'a' + k. */
static rsm_memseg_id_t seg_id(int k) { return id_base + (rsm_memseg_id_t)k; }
static char fill_of(rsm_memseg_id_t id) { return (char)('a' + (int)(id - id_base)); }

/* Pipe ends the parent keeps; every child closes them first. */
static int parent_fds[64], n_parent_fds;
static void keep_in_parent(int fd) { parent_fds[n_parent_fds++] = fd; }
static void close_parent_fds(void)
{
    for (int i = 0; i < n_parent_fds; i++) close(parent_fds[i]);
}

/* Becomes `w` (groups, then gid, then uid) and checks that it stuck. */
static int become(const struct who *w)
{
    if (w->uid == 0) return 0;
    if (setgroups((size_t)w->ngroups, w->ngroups ? w->groups : NULL) != 0) return -1;
    if (setgid(w->gid) != 0 || setuid(w->uid) != 0) return -1;
    return geteuid() == w->uid && getegid() == w->gid && getgroups(0, NULL) == w->ngroups ? 0
                                                                                        : -1;
}

static void set_node(int node)
{
    char s[16];
    snprintf(s, sizeof s, "%d", node);
    setenv("RSM_NODE_ID", s, 1);
}

static void step(int fd) { CHECK(write(fd, "s", 1) == 1); }
static void wait_step(int fd)
{
    char b = 0;
    CHECK(read(fd, &b, 1) == 1);
}

/* ---- The exporter: a child, uid 1000, that obeys commands on a pipe. ---- */

struct segdef {
    int k;             /* segment k of the run */
    mode_t umask;      /* umask at create */
    unsigned n;        /* ACL length; 0 publishes with (NULL, 0) */
    rsmapi_access_entry_t acl[64];
    int probe_bad_acl; /* first try publishes that must fail */
};

struct cmd {
    char op;  /* 'R' republish, 'W' write a byte, 'C' check a byte, 'Q' quit */
    int seg;  /* index in the exporter's table */
    int expect;
    unsigned n;
    rsmapi_access_entry_t acl[4];
    int off;
    char byte;
};

struct exporter {
    pid_t pid;
    int cmd, ack;
};

static void publish_bad_acls(rsm_memseg_export_handle_t seg, rsm_memseg_id_t id)
{
    /* Permissions above RSM_ACCESS_TRUSTED (0666, compared numerically), in
     * the first or a later entry, and a node above 64. */
    rsmapi_access_entry_t a667[] = {{0, 0667}}, a700[] = {{0, 0700}}, a1000[] = {{0, 01000}};
    rsmapi_access_entry_t later[] = {{1, 0666}, {0, 0700}}, node65[] = {{65, 0600}};
    rsm_memseg_id_t i = id;
    CHECK_RC(rsm_memseg_export_publish(seg, &i, a667, 1), RSMERR_BAD_ACL);
    CHECK_RC(rsm_memseg_export_publish(seg, &i, a700, 1), RSMERR_BAD_ACL);
    CHECK_RC(rsm_memseg_export_publish(seg, &i, a1000, 1), RSMERR_BAD_ACL);
    CHECK_RC(rsm_memseg_export_publish(seg, &i, later, 2), RSMERR_BAD_ACL);
    CHECK_RC(rsm_memseg_export_publish(seg, &i, node65, 1), RSMERR_BAD_ACL);
    CHECK(i == id);
}

static void exporter_main(const struct segdef *defs, int n, int cmd, int ack)
{
    CHECK(become(&OWNER) == 0);
    set_node(0);
    rsmapi_controller_handle_t c;
    rsm_memseg_export_handle_t seg[8];
    char *buf[8];
    CHECK_RC(rsm_get_controller("shm0", &c), RSM_SUCCESS);
    for (int i = 0; i < n; i++) {
        buf[i] = valloc(len);
        CHECK(buf[i] != NULL);
        if (!buf[i]) child_exit();
        memset(buf[i], fill_of(seg_id(defs[i].k)), len);
        umask(defs[i].umask); /* captured now, at create */
        CHECK_RC(rsm_memseg_export_create(c, &seg[i], buf[i], len, 0), RSM_SUCCESS);
    }
    umask(0); /* the umask at publish time does not matter */
    for (int i = 0; i < n; i++) {
        rsm_memseg_id_t id = seg_id(defs[i].k);
        if (defs[i].probe_bad_acl) publish_bad_acls(seg[i], id);
        rsmapi_access_entry_t *acl = defs[i].n ? (rsmapi_access_entry_t *)defs[i].acl : NULL;
        CHECK_RC(rsm_memseg_export_publish(seg[i], &id, acl, defs[i].n), RSM_SUCCESS);
        CHECK(id == seg_id(defs[i].k));
    }
    step(ack);
    struct cmd m;
    while (read(cmd, &m, sizeof m) == (ssize_t)sizeof m && m.op != 'Q') {
        if (m.op == 'R') {
            CHECK_RC(rsm_memseg_export_republish(seg[m.seg], m.n ? m.acl : NULL, m.n), m.expect);
        } else if (m.op == 'W') {
            buf[m.seg][m.off] = m.byte;
        } else if (m.op == 'C') {
            if (buf[m.seg][m.off] != m.byte) {
                failed++;
                fprintf(stderr, "exporter: segment %d byte %d is '%c', expected '%c'\n", m.seg,
                        m.off, buf[m.seg][m.off], m.byte);
            } else {
                passed++;
            }
        }
        step(ack);
    }
    for (int i = 0; i < n; i++) CHECK_RC(rsm_memseg_export_destroy(seg[i]), RSM_SUCCESS);
    CHECK_RC(rsm_release_controller(c), RSM_SUCCESS);
    child_exit();
}

/* Starts an exporter publishing `defs`; returns once they are published. */
static struct exporter start_exporter(const struct segdef *defs, int n)
{
    int cmd[2], ack[2];
    struct exporter e = {-1, -1, -1};
    if (pipe(cmd) || pipe(ack)) abort();
    e.pid = fork();
    if (e.pid == 0) {
        passed = failed = 0;
        alarm(40);
        close_parent_fds();
        close(cmd[1]);
        close(ack[0]);
        exporter_main(defs, n, cmd[0], ack[1]);
    }
    close(cmd[0]);
    close(ack[1]);
    e.cmd = cmd[1];
    e.ack = ack[0];
    keep_in_parent(e.cmd);
    keep_in_parent(e.ack);
    wait_step(e.ack);
    return e;
}

static void send_cmd(struct exporter *e, struct cmd m)
{
    CHECK(write(e->cmd, &m, sizeof m) == (ssize_t)sizeof m);
    if (m.op != 'Q') wait_step(e->ack);
}

static void republish(struct exporter *e, int seg, const rsmapi_access_entry_t *acl, unsigned n,
                      int expect)
{
    struct cmd m = {'R', seg, expect, n, {{0, 0}}, 0, 0};
    for (unsigned i = 0; i < n; i++) m.acl[i] = acl[i];
    send_cmd(e, m);
}

static void poke(struct exporter *e, int seg, int off, char byte)
{
    struct cmd m = {'W', seg, 0, 0, {{0, 0}}, off, byte};
    send_cmd(e, m);
}

static void peek(struct exporter *e, int seg, int off, char byte)
{
    struct cmd m = {'C', seg, 0, 0, {{0, 0}}, off, byte};
    send_cmd(e, m);
}

static void stop_exporter(struct exporter *e, const char *what)
{
    struct cmd m = {'Q', 0, 0, 0, {{0, 0}}, 0, 0};
    send_cmd(e, m);
    check_child(e->pid, what);
}

/* ---- Importers ---- */

/* In a child: becomes `w` on node `node`, connects to segment `id` asking
 * `perm` and expects `expected`. On success, with `map` set, it maps: a
 * read-only import may not map read-write, the granted rights map, and a
 * reader sees the exporter's bytes; with no rights nothing maps. */
static void expect_connect(const struct who *w, int node, rsm_memseg_id_t id,
                           rsm_permission_t perm, int expected, int map)
{
    char what[160];
    snprintf(what, sizeof what, "%s on node %d asking %04o of segment %d", w->name, node,
             (unsigned)perm, (int)(id - id_base));
    pid_t pid = fork();
    if (pid == 0) {
        passed = failed = 0;
        alarm(20);
        close_parent_fds();
        CHECK(become(w) == 0);
        set_node(node);
        rsmapi_controller_handle_t c;
        rsm_memseg_import_handle_t im = NULL;
        CHECK_RC(rsm_get_controller("shm0", &c), RSM_SUCCESS);
        int rc = rsm_memseg_import_connect(c, 0, id, perm, &im);
        if (rc == expected) {
            passed++;
        } else {
            failed++;
            fprintf(stderr, "%s: rsm_memseg_import_connect returned %d, expected %d\n", what, rc,
                    expected);
        }
        if (rc == RSM_SUCCESS && map) {
            char *a = NULL;
            if (perm == 0) {
                CHECK_RC(rsm_memseg_import_map(im, (void **)&a, RSM_MAP_NONE, R, 0, len),
                         RSMERR_BAD_PERMS);
            } else {
                if (perm != RW)
                    CHECK_RC(rsm_memseg_import_map(im, (void **)&a, RSM_MAP_NONE, RW, 0, len),
                             RSMERR_BAD_PERMS);
                a = NULL;
                CHECK_RC(rsm_memseg_import_map(im, (void **)&a, RSM_MAP_NONE, perm, 0, len),
                         RSM_SUCCESS);
                if (a && (perm & R)) CHECK(a[0] == fill_of(id) && a[len - 1] == fill_of(id));
                CHECK_RC(rsm_memseg_import_unmap(im), RSM_SUCCESS);
            }
        }
        if (rc == RSM_SUCCESS) CHECK_RC(rsm_memseg_import_disconnect(im), RSM_SUCCESS);
        CHECK_RC(rsm_release_controller(c), RSM_SUCCESS);
        if (failed) fprintf(stderr, "  (in: %s)\n", what);
        child_exit();
    }
    check_child(pid, what);
}

#define OK RSM_SUCCESS
#define DENIED RSMERR_PERM_DENIED
#define NOT_TO_NODE RSMERR_SEG_NOT_PUBLISHED_TO_NODE

/* Owner, group and other digits; a supplementary group counts as group. */
static void digits(void)
{
    static const struct segdef defs[] = {
        {0, 022, 1, {{0, 0640}}, 0},
        {1, 022, 1, {{0, 0624}}, 0}, /* the man page's example */
        {2, 022, 1, {{0, 0066}}, 0},
    };
    struct exporter e = start_exporter(defs, 3);
    rsm_memseg_id_t s0 = seg_id(0), s1 = seg_id(1), s2 = seg_id(2);

    /* 0640: owner rw, group r, other nothing. */
    expect_connect(&OWNER, 0, s0, RW, OK, 1);
    expect_connect(&GROUP, 0, s0, R, OK, 1);
    expect_connect(&GROUP, 0, s0, RW, DENIED, 1);
    expect_connect(&GROUP, 0, s0, W, DENIED, 1);
    expect_connect(&SUPP, 0, s0, R, OK, 1);
    expect_connect(&SUPP, 0, s0, W, DENIED, 1);
    expect_connect(&OTHER, 0, s0, R, DENIED, 1);
    expect_connect(&OTHER, 0, s0, W, DENIED, 1);
    expect_connect(&OTHER, 0, s0, 0, OK, 1); /* no rights asked, none given */
    expect_connect(&ROOT, 0, s0, RW, OK, 1); /* CAP_IPC_OWNER overrides the mode */

    /* 0624: owner rw, group write only, other read only. */
    expect_connect(&OWNER, 0, s1, RW, OK, 1);
    expect_connect(&GROUP, 0, s1, W, OK, 1);
    expect_connect(&GROUP, 0, s1, R, DENIED, 1);
    expect_connect(&SUPP, 0, s1, W, OK, 1);
    expect_connect(&SUPP, 0, s1, R, DENIED, 1);
    expect_connect(&OTHER, 0, s1, R, OK, 1);
    expect_connect(&OTHER, 0, s1, W, DENIED, 1);

    /* 0066: the owner's digit applies to the owner even when it grants less.
     * (Not mapped: Solaris refused every map admitted through the group or
     * other digit, and this library deliberately does not.) */
    expect_connect(&OWNER, 0, s2, R, DENIED, 0);
    expect_connect(&GROUP, 0, s2, RW, OK, 0);
    expect_connect(&OTHER, 0, s2, RW, OK, 0);

    stop_exporter(&e, "exporter (digits)");
}

/* An empty ACL grants 0777 & ~umask of the exporter at create. */
static void empty_acl_umask(void)
{
    static const struct segdef d022[] = {{3, 022, 0, {{0, 0}}, 0}, {4, 0, 0, {{0, 0}}, 0}};
    static const struct segdef d077[] = {{5, 077, 0, {{0, 0}}, 0}};
    struct exporter e022 = start_exporter(d022, 2);
    struct exporter e077 = start_exporter(d077, 1);
    rsm_memseg_id_t s022 = seg_id(3), s000 = seg_id(4), s077 = seg_id(5);

    expect_connect(&OTHER, 0, s022, R, OK, 1); /* 0644 */
    expect_connect(&OTHER, 0, s077, R, DENIED, 1); /* 0600 */
    expect_connect(&OTHER, 0, s022, RW, DENIED, 1);
    expect_connect(&GROUP, 0, s022, R, OK, 1);
    expect_connect(&GROUP, 0, s077, R, DENIED, 1);
    expect_connect(&OWNER, 0, s077, RW, OK, 1);
    expect_connect(&OTHER, 9, s022, R, OK, 1); /* every node may import */
    expect_connect(&OTHER, 63, s000, RW, OK, 1); /* umask 0: 0666 */

    stop_exporter(&e022, "exporter (umask 022)");
    stop_exporter(&e077, "exporter (umask 077)");
}

/* Node-level entries: one, several, a repeated node, all 64 nodes. */
static void node_entries(void)
{
    static struct segdef defs[] = {
        {6, 022, 1, {{0, 0600}}, 0},
        {7, 022, 3, {{1, 0666}, {0, 0604}, {5, 0600}}, 0},
        {8, 022, 2, {{3, 0600}, {3, 0666}}, 0},
        {9, 022, 64, {{0, 0}}, 0},
    };
    for (unsigned i = 0; i < 64; i++) {
        defs[3].acl[i].ae_node = i;
        defs[3].acl[i].ae_permission = 0666;
    }
    struct exporter e = start_exporter(defs, 4);
    rsm_memseg_id_t one = seg_id(6), several = seg_id(7), twice = seg_id(8), all = seg_id(9);

    expect_connect(&OWNER, 0, one, RW, OK, 1);
    expect_connect(&OWNER, 1, one, RW, NOT_TO_NODE, 1);
    expect_connect(&OTHER, 1, one, R, NOT_TO_NODE, 1); /* the node is checked first */
    expect_connect(&ROOT, 1, one, R, NOT_TO_NODE, 1); /* privilege does not help */

    expect_connect(&OTHER, 1, several, RW, OK, 1); /* node 1: 0666 */
    expect_connect(&OTHER, 0, several, R, OK, 1); /* node 0: 0604 */
    expect_connect(&OTHER, 0, several, W, DENIED, 1);
    expect_connect(&GROUP, 0, several, R, DENIED, 1); /* group digit 0 */
    expect_connect(&OWNER, 0, several, RW, OK, 1);
    expect_connect(&OTHER, 5, several, R, DENIED, 1); /* node 5: 0600 */
    expect_connect(&OWNER, 5, several, RW, OK, 1);
    expect_connect(&OTHER, 2, several, R, NOT_TO_NODE, 1);
    expect_connect(&OWNER, 63, several, R, NOT_TO_NODE, 1);

    expect_connect(&OTHER, 3, twice, R, DENIED, 1); /* the first entry for a node counts */
    expect_connect(&OWNER, 3, twice, RW, OK, 1);

    expect_connect(&OTHER, 63, all, RW, OK, 1);
    expect_connect(&OTHER, 0, all, RW, OK, 1);

    stop_exporter(&e, "exporter (nodes)");
}

/* ACL values above 0666 are refused by publish and by republish; a refused
 * republish leaves the old list in force. */
static void bad_acls(void)
{
    static const struct segdef defs[] = {{10, 022, 1, {{0, 0644}}, 1}};
    struct exporter e = start_exporter(defs, 1);
    rsm_memseg_id_t s = seg_id(10);
    rsmapi_access_entry_t a700[] = {{1, 0700}}, a1000[] = {{1, 0666}, {1, 01000}};
    rsmapi_access_entry_t a667[] = {{1, 0667}};
    republish(&e, 0, a700, 1, RSMERR_BAD_ACL);
    republish(&e, 0, a1000, 2, RSMERR_BAD_ACL);
    republish(&e, 0, a667, 1, RSMERR_BAD_ACL);
    expect_connect(&OTHER, 0, s, R, OK, 1);
    expect_connect(&OTHER, 1, s, R, NOT_TO_NODE, 1);
    stop_exporter(&e, "exporter (bad ACLs)");
}

/* Republish: who may connect next changes; A, connected before, keeps its
 * read-write mapping and the exporter sees its writes. */
static void republishing(void)
{
    static const struct segdef defs[] = {{11, 022, 1, {{2, 0666}}, 0}};
    struct exporter e = start_exporter(defs, 1);
    rsm_memseg_id_t s = seg_id(11);
    char f = fill_of(s);
    int go[2], done[2];
    CHECK(pipe(go) == 0 && pipe(done) == 0);
    pid_t a_pid = fork();
    if (a_pid == 0) {
        passed = failed = 0;
        alarm(30);
        close_parent_fds();
        close(go[1]);
        close(done[0]);
        CHECK(become(&OTHER) == 0);
        set_node(2);
        rsmapi_controller_handle_t c;
        rsm_memseg_import_handle_t im, im2 = NULL;
        char *a = NULL;
        CHECK_RC(rsm_get_controller("shm0", &c), RSM_SUCCESS);
        CHECK_RC(rsm_memseg_import_connect(c, 0, s, RW, &im), RSM_SUCCESS);
        CHECK_RC(rsm_memseg_import_map(im, (void **)&a, RSM_MAP_NONE, RW, 0, len), RSM_SUCCESS);
        if (!a) child_exit();
        CHECK(a[0] == f);
        a[1] = 'A';
        step(done[1]);
        wait_step(go[0]); /* the exporter republished without node 2 */
        a[2] = 'B';
        CHECK_RC(rsm_memseg_import_connect(c, 0, s, R, &im2), NOT_TO_NODE);
        CHECK_RC(rsm_memseg_import_unmap(im), RSM_SUCCESS);
        a = NULL;
        CHECK_RC(rsm_memseg_import_map(im, (void **)&a, RSM_MAP_NONE, RW, 0, len), RSM_SUCCESS);
        if (a) a[3] = 'C';
        step(done[1]);
        wait_step(go[0]);
        CHECK(a && a[4] == 'E'); /* the exporter's write */
        CHECK_RC(rsm_memseg_import_unmap(im), RSM_SUCCESS);
        CHECK_RC(rsm_memseg_import_disconnect(im), RSM_SUCCESS);
        CHECK_RC(rsm_release_controller(c), RSM_SUCCESS);
        child_exit();
    }
    close(go[0]);
    close(done[1]);
    keep_in_parent(go[1]);
    keep_in_parent(done[0]);
    wait_step(done[0]);
    peek(&e, 0, 1, 'A');

    rsmapi_access_entry_t not2[] = {{1, 0666}};
    republish(&e, 0, not2, 1, RSM_SUCCESS);
    expect_connect(&OTHER, 2, s, R, NOT_TO_NODE, 1);
    expect_connect(&OWNER, 2, s, RW, NOT_TO_NODE, 1);
    expect_connect(&OTHER, 1, s, RW, OK, 1);
    step(go[1]);
    wait_step(done[0]);
    peek(&e, 0, 2, 'B'); /* A's writes after the republish reach the exporter */
    peek(&e, 0, 3, 'C');
    poke(&e, 0, 4, 'E');
    step(go[1]);
    check_child(a_pid, "importer A (connected before republish)");

    rsmapi_access_entry_t ro2[] = {{2, 0644}};
    republish(&e, 0, ro2, 1, RSM_SUCCESS);
    expect_connect(&OTHER, 2, s, R, OK, 1);
    expect_connect(&OTHER, 2, s, RW, DENIED, 1);
    expect_connect(&OTHER, 1, s, R, NOT_TO_NODE, 1);
    republish(&e, 0, NULL, 0, RSM_SUCCESS); /* empty: the creation mode, 0644 */
    expect_connect(&OTHER, 7, s, R, OK, 1);
    expect_connect(&OTHER, 7, s, W, DENIED, 1);
    stop_exporter(&e, "exporter (republish)");
}

/* The import's descriptor of the segment: the one link in /proc/self/fd
 * that names a memfd "rsm-segment". */
static int segment_fd(int *count)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *ent;
    int fd = -1;
    *count = 0;
    while (d && (ent = readdir(d))) {
        char target[256];
        ssize_t n = readlinkat(dirfd(d), ent->d_name, target, sizeof target - 1);
        if (n <= 0) continue;
        target[n] = 0;
        if (strncmp(target, "/memfd:rsm-segment", 18) == 0) {
            fd = atoi(ent->d_name);
            (*count)++;
        }
    }
    if (d) closedir(d);
    return fd;
}

/* A read-only import cannot get write access, even around the library. */
static void kernel_enforcement(void)
{
    static const struct segdef defs[] = {{12, 022, 1, {{0, 0644}}, 0}};
    struct exporter e = start_exporter(defs, 1);
    rsm_memseg_id_t s = seg_id(12);
    char f = fill_of(s);
    int done[2];
    CHECK(pipe(done) == 0);

    pid_t reader = fork();
    if (reader == 0) {
        passed = failed = 0;
        alarm(20);
        close_parent_fds();
        close(done[0]);
        CHECK(become(&OTHER) == 0);
        set_node(0);
        rsmapi_controller_handle_t c;
        rsm_memseg_import_handle_t im;
        char *a = NULL;
        CHECK_RC(rsm_get_controller("shm0", &c), RSM_SUCCESS);
        CHECK_RC(rsm_memseg_import_connect(c, 0, s, R, &im), RSM_SUCCESS);
        CHECK_RC(rsm_memseg_import_map(im, (void **)&a, RSM_MAP_NONE, RW, 0, len),
                 RSMERR_BAD_PERMS);
        CHECK_RC(rsm_memseg_import_map(im, (void **)&a, RSM_MAP_NONE, W, 0, len),
                 RSMERR_BAD_PERMS);
        a = NULL;
        CHECK_RC(rsm_memseg_import_map(im, (void **)&a, RSM_MAP_NONE, R, 0, len), RSM_SUCCESS);
        CHECK(a && a[0] == f);

        int count = 0, fd = segment_fd(&count);
        CHECK(count == 1 && fd >= 0);
        if (fd >= 0) {
            char path[64];
            snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
            CHECK((fcntl(fd, F_GETFL) & O_ACCMODE) == O_RDONLY);
            /* A shared writable mapping of it. */
            errno = 0;
            void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
            CHECK(p == MAP_FAILED && errno == EACCES);
            if (p != MAP_FAILED) munmap(p, len);
            /* Upgrading the library's mapping. */
            errno = 0;
            CHECK(a && mprotect(a, len, PROT_READ | PROT_WRITE) == -1 && errno == EACCES);
            /* Reopening it writable through /proc. */
            errno = 0;
            int w = open(path, O_RDWR);
            CHECK(w == -1 && errno == EACCES);
            if (w >= 0) close(w);
            errno = 0;
            w = open(path, O_WRONLY);
            CHECK(w == -1 && errno == EACCES);
            if (w >= 0) close(w);
            /* Writing, truncating, or loosening its mode. */
            CHECK(pwrite(fd, "X", 1, 0) == -1);
            CHECK(ftruncate(fd, 0) == -1);
            CHECK(fchmod(fd, 0666) == -1);
            /* A private writable mapping is only a copy. */
            char *q = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
            CHECK(q != MAP_FAILED);
            if (q != MAP_FAILED) {
                q[0] = 'P';
                CHECK(a && a[0] == f);
                munmap(q, len);
            }
        }
        step(done[1]); /* the exporter checks its bytes now */
        CHECK_RC(rsm_memseg_import_unmap(im), RSM_SUCCESS);
        CHECK_RC(rsm_memseg_import_disconnect(im), RSM_SUCCESS);
        CHECK_RC(rsm_release_controller(c), RSM_SUCCESS);
        child_exit();
    }
    close(done[1]);
    wait_step(done[0]);
    peek(&e, 0, 0, f);
    check_child(reader, "read-only importer (other, 0644)");
    close(done[0]);

    CHECK(pipe(done) == 0);
    pid_t writer = fork();
    if (writer == 0) {
        passed = failed = 0;
        alarm(20);
        close_parent_fds();
        close(done[0]);
        CHECK(become(&OWNER) == 0);
        set_node(0);
        rsmapi_controller_handle_t c;
        rsm_memseg_import_handle_t im;
        char *a = NULL;
        CHECK_RC(rsm_get_controller("shm0", &c), RSM_SUCCESS);
        CHECK_RC(rsm_memseg_import_connect(c, 0, s, RW, &im), RSM_SUCCESS);
        CHECK_RC(rsm_memseg_import_map(im, (void **)&a, RSM_MAP_NONE, RW, 0, len), RSM_SUCCESS);
        int count = 0, fd = segment_fd(&count);
        CHECK(count == 1 && fd >= 0);
        if (fd >= 0 && a) {
            CHECK((fcntl(fd, F_GETFL) & O_ACCMODE) == O_RDWR);
            char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
            CHECK(p != MAP_FAILED);
            if (p != MAP_FAILED) {
                p[5] = 'W';
                CHECK(a[5] == 'W'); /* the same memory as the library's mapping */
                munmap(p, len);
            }
        }
        step(done[1]);
        CHECK_RC(rsm_memseg_import_unmap(im), RSM_SUCCESS);
        CHECK_RC(rsm_memseg_import_disconnect(im), RSM_SUCCESS);
        CHECK_RC(rsm_release_controller(c), RSM_SUCCESS);
        child_exit();
    }
    close(done[1]);
    wait_step(done[0]);
    peek(&e, 0, 5, 'W');
    check_child(writer, "read-write importer (owner, 0644)");
    close(done[0]);
    stop_exporter(&e, "exporter (kernel enforcement)");
}

int main(void)
{
    alarm(55);
    if (geteuid() != 0) {
        fprintf(stderr, "permissions: must run as root (to change users)\n");
        failed++;
        return report("permissions");
    }
    char fabric[64];
    snprintf(fabric, sizeof fabric, "ctest-perm-%d", (int)getpid());
    setenv("RSM_FABRIC", fabric, 1);
    len = 2 * (size_t)sysconf(_SC_PAGESIZE);
    id_base = 0x400000 + (rsm_memseg_id_t)(getpid() % 100000) * 16;
    signal(SIGPIPE, SIG_IGN);

    digits();
    empty_acl_umask();
    node_entries();
    bad_acls();
    republishing();
    kernel_enforcement();
    return report("permissions");
}
