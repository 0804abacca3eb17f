/*
 * Connect, disconnect, segment ids and the creator rules (spec 3.3, 4.4,
 * 4.5, 5.1, 5.2, 5.4), each with real exporter and importer processes:
 * every error rsm_memseg_import_connect documents, what keeps disconnect
 * from succeeding (a mapping, a pollfd), which ids publish accepts and how
 * they are unique per node, and the calls only the creating process may
 * make, with a rebind that a mapped importer follows; and the argument
 * checks of rsm_memseg_export_create and rsm_memseg_import_map, in order.
 */
#define _GNU_SOURCE
#include <rsmapi.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include "common.h"

static size_t len; /* every segment: four pages */
static rsmapi_controller_handle_t ctrl; /* this process's shm0, node 0 */

static rsm_memseg_id_t next_id(void)
{
    static unsigned k;
    return 0x400000 + (rsm_memseg_id_t)(getpid() % 100000) * 16 + k++;
}

/* Private, page-aligned memory of `pages` * len bytes filled with `fill`. */
static char *memory(size_t pages, char fill)
{
    char *p = mmap(NULL, pages * len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) abort();
    memset(p, fill, pages * len);
    return p;
}

static int all(const volatile char *p, size_t n, char c)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != c) return 0;
    return 1;
}

/* The parent's pipe ends: a child must close them, or an exporter would
 * never see the end of file that tells it to stop. */
static int parent_fds[64], n_parent_fds;

static void keep(int fd) { parent_fds[n_parent_fds++] = fd; }

static void parent_close(int fd)
{
    for (int i = 0; i < n_parent_fds; i++)
        if (parent_fds[i] == fd) parent_fds[i] = parent_fds[--n_parent_fds];
    close(fd);
}

static void say(int fd, char c) { CHECK(write(fd, &c, 1) == 1); }

/* Forks a child that starts with clean counters, none of the parent's pipe
 * ends and a safety alarm. Returns 0 in the child, as fork does. */
static pid_t child(void)
{
    pid_t pid = fork();
    if (pid == 0) {
        passed = failed = 0;
        for (int i = 0; i < n_parent_fds; i++) close(parent_fds[i]);
        n_parent_fds = 0;
        alarm(20);
    }
    return pid;
}

/* An exporter process on node `node` with one segment of `len` bytes of
 * `fill`, published as `id` for `acl`. It answers 'y' when published, then
 * obeys: 'u' unpublish (answers 'y'), 'x' exit at once with the segment
 * still published; at end of file it destroys the segment and exits. */
struct exporter {
    pid_t pid;
    int cmd, ack;
    rsm_memseg_id_t id;
};

static struct exporter start_exporter(const char *node, rsm_memseg_id_t id,
                                      rsmapi_access_entry_t *acl, uint_t n, char fill)
{
    int cmd[2], ack[2];
    if (pipe(cmd) || pipe(ack)) abort();
    pid_t pid = child();
    if (pid == 0) {
        close(cmd[1]);
        close(ack[0]);
        setenv("RSM_NODE_ID", node, 1); /* before this process's first call */
        rsmapi_controller_handle_t c = NULL;
        rsm_memseg_export_handle_t seg = NULL;
        char *buf = memory(1, fill);
        CHECK_RC(rsm_get_controller("shm0", &c), RSM_SUCCESS);
        CHECK_RC(rsm_memseg_export_create(c, &seg, buf, len, 0), RSM_SUCCESS);
        CHECK_RC(rsm_memseg_export_publish(seg, &id, acl, n), RSM_SUCCESS);
        say(ack[1], failed == 0 ? 'y' : 'n');
        char b;
        while (read(cmd[0], &b, 1) == 1) {
            if (b == 'x') child_exit(); /* exit: the library unpublishes */
            if (b == 'u') {
                int rc = rsm_memseg_export_unpublish(seg);
                CHECK_RC(rc, RSM_SUCCESS);
                say(ack[1], rc == RSM_SUCCESS ? 'y' : 'n');
            }
        }
        CHECK_RC(rsm_memseg_export_destroy(seg), RSM_SUCCESS);
        CHECK_RC(rsm_release_controller(c), RSM_SUCCESS);
        child_exit();
    }
    close(cmd[0]);
    close(ack[1]);
    keep(cmd[1]);
    keep(ack[0]);
    struct exporter e = {pid, cmd[1], ack[0], id};
    CHECK(hear(e.ack) == 'y');
    return e;
}

/* Closes the command pipe (the exporter destroys and exits) and reaps it. */
static void stop_exporter(struct exporter *e, const char *what)
{
    parent_close(e->cmd);
    check_child(e->pid, what);
    parent_close(e->ack);
}

/* A fresh importer process connects to (node, id): `expected`, and on
 * success it maps the segment and finds `fill` there. */
static void importer(const char *what, rsm_node_id_t node, rsm_memseg_id_t id, int expected,
                     char fill)
{
    pid_t pid = child();
    if (pid == 0) {
        rsmapi_controller_handle_t c;
        rsm_memseg_import_handle_t im = NULL;
        char *a = NULL;
        CHECK_RC(rsm_get_controller("shm0", &c), RSM_SUCCESS);
        CHECK_RC(rsm_memseg_import_connect(c, node, id, RSM_PERM_RDWR, &im), expected);
        if (expected == RSM_SUCCESS && im) {
            CHECK_RC(rsm_memseg_import_map(im, (void **)&a, RSM_MAP_NONE, RSM_PERM_RDWR, 0, len),
                     RSM_SUCCESS);
            CHECK(a && a[0] == fill && a[len - 1] == fill);
            CHECK_RC(rsm_memseg_import_unmap(im), RSM_SUCCESS);
            CHECK_RC(rsm_memseg_import_disconnect(im), RSM_SUCCESS);
        } else {
            CHECK(im == NULL);
        }
        CHECK_RC(rsm_release_controller(c), RSM_SUCCESS);
        child_exit();
    }
    check_child(pid, what);
}

/* The exporters. Configuration (the node id) is read once per process, at
 * its first call, and fork copies it: every exporter starts before this
 * process first calls the library. */
static struct exporter e_main;   /* node 0, no ACL, fill 'm' */
static struct exporter e_acl;    /* node 1, ACL [{5, 0666}] */
static struct exporter e_exit;   /* node 0, exits with the segment published */
static struct exporter e_stop;   /* node 0, stopped by SIGSTOP */
static struct exporter e_busy;   /* node 0, holds an id we then try to publish */
static struct exporter e_node1;  /* node 1, id `shared_id`, fill '1' */
static struct exporter e_node2;  /* node 2, the same id, fill '2' */
static rsm_memseg_id_t shared_id;

/* A. Arguments and controllers. */
static void connect_arguments(void)
{
    rsm_memseg_import_handle_t im = (rsm_memseg_import_handle_t)0x1;
    rsm_memseg_id_t id = e_main.id;

    CHECK_RC(rsm_memseg_import_connect(NULL, 0, id, RSM_PERM_RDWR, &im), RSMERR_BAD_CTLR_HNDL);

    rsmapi_controller_handle_t gone;
    CHECK_RC(rsm_get_controller("loopback", &gone), RSM_SUCCESS);
    CHECK_RC(rsm_release_controller(gone), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_import_connect(gone, 0, id, RSM_PERM_RDWR, &im), RSMERR_BAD_CTLR_HNDL);
    CHECK_RC(rsm_memseg_import_connect((rsmapi_controller_handle_t)0x1234, 0, id, RSM_PERM_RDWR,
                                       &im),
             RSMERR_BAD_CTLR_HNDL);

    /* Handles of the other kinds are not controllers. */
    rsm_memseg_export_handle_t ex;
    char *buf = memory(1, 'e');
    CHECK_RC(rsm_memseg_export_create(ctrl, &ex, buf, len, 0), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_import_connect((rsmapi_controller_handle_t)ex, 0, id, RSM_PERM_RDWR, &im),
             RSMERR_BAD_CTLR_HNDL);
    rsm_memseg_import_handle_t good = NULL;
    CHECK_RC(rsm_memseg_import_connect(ctrl, 0, id, RSM_PERM_RDWR, &good), RSM_SUCCESS);
    CHECK(good != NULL);
    CHECK_RC(rsm_memseg_import_connect((rsmapi_controller_handle_t)good, 0, id, RSM_PERM_RDWR,
                                       &im),
             RSMERR_BAD_CTLR_HNDL);
    CHECK_RC(rsm_memseg_import_disconnect(good), RSM_SUCCESS);

    /* Loopback reaches the local node only (spec 5.6), even a node that is
     * present on the fabric (e_acl lives on node 1); locally it finds a
     * segment whichever controller exported it. */
    rsmapi_controller_handle_t lo;
    CHECK_RC(rsm_get_controller("loopback", &lo), RSM_SUCCESS);
    im = (rsm_memseg_import_handle_t)0x1;
    CHECK_RC(rsm_memseg_import_connect(lo, 1, e_acl.id, RSM_PERM_RDWR, &im),
             RSMERR_CTLR_NOT_PRESENT);
    CHECK(im == NULL);
    CHECK_RC(rsm_memseg_import_connect(lo, 9, id, RSM_PERM_RDWR, &im), RSMERR_CTLR_NOT_PRESENT);
    CHECK_RC(rsm_memseg_import_connect(lo, 0, id, RSM_PERM_RDWR, &im), RSM_SUCCESS);
    CHECK(im != NULL);
    CHECK_RC(rsm_memseg_import_disconnect(im), RSM_SUCCESS);
    CHECK_RC(rsm_release_controller(lo), RSM_SUCCESS);

    CHECK_RC(rsm_memseg_import_connect(ctrl, 0, id, RSM_PERM_RDWR, NULL), RSMERR_BAD_SEG_HNDL);
    CHECK_RC(rsm_memseg_import_connect(ctrl, 0, id, RSM_PERM_RDWR,
                                       (rsm_memseg_import_handle_t *)0x10),
             RSMERR_BAD_ADDR);

    /* perm is RSM_PERM_READ and/or RSM_PERM_WRITE, nothing else. */
    rsm_permission_t bad_perms[] = {0700, 04, 01000, 0777, 0x10000};
    for (size_t i = 0; i < sizeof bad_perms / sizeof bad_perms[0]; i++) {
        im = (rsm_memseg_import_handle_t)0x1;
        CHECK_RC(rsm_memseg_import_connect(ctrl, 0, id, bad_perms[i], &im), RSMERR_PERM_DENIED);
        CHECK(im == NULL); /* cleared before the perm check */
    }
    rsm_permission_t good_perms[] = {RSM_PERM_READ, RSM_PERM_WRITE, RSM_PERM_RDWR};
    for (size_t i = 0; i < sizeof good_perms / sizeof good_perms[0]; i++) {
        CHECK_RC(rsm_memseg_import_connect(ctrl, 0, id, good_perms[i], &im), RSM_SUCCESS);
        CHECK_RC(rsm_memseg_import_disconnect(im), RSM_SUCCESS);
    }

    /* The ACL names node 5 only; we are node 0 (spec 5.1). */
    im = (rsm_memseg_import_handle_t)0x1;
    CHECK_RC(rsm_memseg_import_connect(ctrl, 1, e_acl.id, RSM_PERM_RDWR, &im),
             RSMERR_SEG_NOT_PUBLISHED_TO_NODE);
    CHECK(im == NULL);
    CHECK_RC(rsm_memseg_import_connect(ctrl, 1, e_acl.id, RSM_PERM_READ, &im),
             RSMERR_SEG_NOT_PUBLISHED_TO_NODE);
    importer("ACL without our node", 1, e_acl.id, RSMERR_SEG_NOT_PUBLISHED_TO_NODE, 0);

    CHECK_RC(rsm_memseg_export_destroy(ex), RSM_SUCCESS);
    munmap(buf, len);
}

/* A. RSMERR_SEG_NOT_PUBLISHED and RSMERR_REMOTE_NODE_UNREACHABLE. */
static void not_published(void)
{
    rsm_memseg_import_handle_t im = (rsm_memseg_import_handle_t)0x1, kept = NULL;
    rsm_memseg_id_t never = next_id();

    /* Never published, on our own node and on a node that is present. */
    CHECK_RC(rsm_memseg_import_connect(ctrl, 0, never, RSM_PERM_RDWR, &im),
             RSMERR_SEG_NOT_PUBLISHED);
    CHECK(im == NULL);
    importer("never published", 0, never, RSMERR_SEG_NOT_PUBLISHED, 0);
    CHECK_RC(rsm_memseg_import_connect(ctrl, 1, never, RSM_PERM_RDWR, &im),
             RSMERR_SEG_NOT_PUBLISHED);

    /* Published, then unpublished: new connects fail at once (spec 5.2). */
    CHECK_RC(rsm_memseg_import_connect(ctrl, 0, e_main.id, RSM_PERM_RDWR, &kept), RSM_SUCCESS);
    say(e_main.cmd, 'u');
    CHECK(hear(e_main.ack) == 'y');
    CHECK_RC(rsm_memseg_import_connect(ctrl, 0, e_main.id, RSM_PERM_RDWR, &im),
             RSMERR_SEG_NOT_PUBLISHED);
    importer("unpublished", 0, e_main.id, RSMERR_SEG_NOT_PUBLISHED, 0);
    CHECK_RC(rsm_memseg_import_disconnect(kept), RSM_SUCCESS); /* after a forced disconnect */

    /* The exporter exited with its segment published. */
    importer("before exit", 0, e_exit.id, RSM_SUCCESS, 'x');
    say(e_exit.cmd, 'x');
    check_child(e_exit.pid, "exporter that exits");
    parent_close(e_exit.cmd);
    parent_close(e_exit.ack);
    CHECK_RC(rsm_memseg_import_connect(ctrl, 0, e_exit.id, RSM_PERM_RDWR, &im),
             RSMERR_SEG_NOT_PUBLISHED);
    importer("exporter exited", 0, e_exit.id, RSMERR_SEG_NOT_PUBLISHED, 0);

    /* No process of the fabric lives on node 9. */
    im = (rsm_memseg_import_handle_t)0x1;
    CHECK_RC(rsm_memseg_import_connect(ctrl, 9, e_main.id, RSM_PERM_RDWR, &im),
             RSMERR_REMOTE_NODE_UNREACHABLE);
    CHECK(im == NULL);
    CHECK_RC(rsm_memseg_import_connect(ctrl, 9, never, RSM_PERM_READ, &im),
             RSMERR_REMOTE_NODE_UNREACHABLE);
    importer("node 9", 9, never, RSMERR_REMOTE_NODE_UNREACHABLE, 0);
}

static volatile sig_atomic_t alarmed;
static void on_alarm(int sig)
{
    (void)sig;
    alarmed = 1;
}

/* A. The exporter is stopped, so nobody answers; a signal ends the wait. */
static void interrupted(void)
{
    int status = 0;
    CHECK(kill(e_stop.pid, SIGSTOP) == 0);
    CHECK(waitpid(e_stop.pid, &status, WUNTRACED) == e_stop.pid && WIFSTOPPED(status));
    pid_t pid = child();
    if (pid == 0) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_alarm;
        sigemptyset(&sa.sa_mask);
        sa.sa_flags = 0; /* no SA_RESTART */
        CHECK(sigaction(SIGALRM, &sa, NULL) == 0);
        rsmapi_controller_handle_t c;
        rsm_memseg_import_handle_t im = (rsm_memseg_import_handle_t)0x1;
        CHECK_RC(rsm_get_controller("shm0", &c), RSM_SUCCESS);
        alarm(1);
        CHECK_RC(rsm_memseg_import_connect(c, 0, e_stop.id, RSM_PERM_RDWR, &im),
                 RSMERR_INTERRUPTED);
        alarm(0);
        CHECK(alarmed);
        CHECK(im == NULL);
        CHECK_RC(rsm_release_controller(c), RSM_SUCCESS);
        child_exit();
    }
    check_child(pid, "connect interrupted by SIGALRM");
    CHECK(kill(e_stop.pid, SIGCONT) == 0);
    /* Running again, it answers. */
    importer("exporter continued", 0, e_stop.id, RSM_SUCCESS, 's');
}

/* A. No descriptor can be opened: RSMERR_INSUFFICIENT_RESOURCES. */
static void no_descriptors(void)
{
    pid_t pid = child();
    if (pid == 0) {
        rsmapi_controller_handle_t c;
        rsm_memseg_import_handle_t im = (rsm_memseg_import_handle_t)0x1;
        CHECK_RC(rsm_get_controller("shm0", &c), RSM_SUCCESS);
        struct rlimit old;
        CHECK(leave_no_descriptor(&old) == 0);
        int probe = open("/dev/null", O_RDONLY);
        CHECK(probe < 0 && errno == EMFILE);
        if (probe >= 0) close(probe);
        int rc = rsm_memseg_import_connect(c, 0, e_main.id, RSM_PERM_RDWR, &im);
        CHECK(setrlimit(RLIMIT_NOFILE, &old) == 0);
        CHECK_RC(rc, RSMERR_INSUFFICIENT_RESOURCES);
        CHECK(im == NULL);
        CHECK_RC(rsm_memseg_import_connect(c, 0, e_main.id, RSM_PERM_RDWR, &im), RSM_SUCCESS);
        CHECK_RC(rsm_memseg_import_disconnect(im), RSM_SUCCESS);
        CHECK_RC(rsm_release_controller(c), RSM_SUCCESS);
        child_exit();
    }
    check_child(pid, "connect without a free descriptor");
}

/* B. Disconnect. */
static void disconnect(void)
{
    rsm_memseg_import_handle_t im = NULL;
    struct pollfd pfd;
    char *a = NULL;

    CHECK_RC(rsm_memseg_import_disconnect(NULL), RSMERR_BAD_SEG_HNDL);
    CHECK_RC(rsm_memseg_import_disconnect((rsm_memseg_import_handle_t)0x1234), RSMERR_BAD_SEG_HNDL);

    /* An explicit mapping must go first. */
    CHECK_RC(rsm_memseg_import_connect(ctrl, 0, e_main.id, RSM_PERM_RDWR, &im), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_import_map(im, (void **)&a, RSM_MAP_NONE, RSM_PERM_RDWR, 0, len),
             RSM_SUCCESS);
    CHECK(a && a[0] == 'm');
    CHECK_RC(rsm_memseg_import_disconnect(im), RSMERR_SEG_STILL_MAPPED);
    CHECK(a && a[len - 1] == 'm'); /* still connected and mapped */
    CHECK_RC(rsm_memseg_import_unmap(im), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_import_disconnect(im), RSM_SUCCESS);
    /* The handle is gone. */
    CHECK_RC(rsm_memseg_import_disconnect(im), RSMERR_BAD_SEG_HNDL);
    CHECK_RC(rsm_memseg_import_unmap(im), RSMERR_BAD_SEG_HNDL);
    CHECK_RC(rsm_memseg_import_map(im, (void **)&a, RSM_MAP_NONE, RSM_PERM_RDWR, 0, len),
             RSMERR_BAD_SEG_HNDL);

    /* A held pollfd, counted: two gets need two releases. */
    CHECK_RC(rsm_memseg_import_connect(ctrl, 0, e_main.id, RSM_PERM_RDWR, &im), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_get_pollfd(im, &pfd), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_get_pollfd(im, &pfd), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_import_disconnect(im), RSMERR_POLLFD_IN_USE);
    CHECK_RC(rsm_memseg_release_pollfd(im), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_import_disconnect(im), RSMERR_POLLFD_IN_USE);
    CHECK_RC(rsm_memseg_release_pollfd(im), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_import_disconnect(im), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_import_disconnect(im), RSMERR_BAD_SEG_HNDL);

    /* Both: the mapping is reported first (spec 4.5 order). */
    CHECK_RC(rsm_memseg_import_connect(ctrl, 0, e_main.id, RSM_PERM_RDWR, &im), RSM_SUCCESS);
    a = NULL;
    CHECK_RC(rsm_memseg_import_map(im, (void **)&a, RSM_MAP_NONE, RSM_PERM_READ, 0, len),
             RSM_SUCCESS);
    CHECK_RC(rsm_memseg_get_pollfd(im, &pfd), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_import_disconnect(im), RSMERR_SEG_STILL_MAPPED);
    CHECK_RC(rsm_memseg_import_unmap(im), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_import_disconnect(im), RSMERR_POLLFD_IN_USE);
    CHECK_RC(rsm_memseg_release_pollfd(im), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_import_disconnect(im), RSM_SUCCESS);

    /* An export handle is not an import handle. */
    rsm_memseg_export_handle_t ex;
    char *buf = memory(1, 'e');
    CHECK_RC(rsm_memseg_export_create(ctrl, &ex, buf, len, 0), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_import_disconnect((rsm_memseg_import_handle_t)ex), RSMERR_BAD_SEG_HNDL);
    CHECK_RC(rsm_memseg_export_destroy(ex), RSM_SUCCESS);
    munmap(buf, len);
}

/* C. Segment ids. */
static void segment_ids(void)
{
    char *b1 = memory(1, 'p'), *b2 = memory(1, 'q'), *b3 = memory(1, 'r');
    rsm_memseg_export_handle_t s1, s2, s3;
    CHECK_RC(rsm_memseg_export_create(ctrl, &s1, b1, len, 0), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_export_create(ctrl, &s2, b2, len, 0), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_export_create(ctrl, &s3, b3, len, 0), RSM_SUCCESS);

    /* Reserved: 1..0x3FFFFF, and 0x80000000 and up asked for explicitly. */
    rsm_memseg_id_t reserved[] = {1,        0xFFFFF,    0x100000,   0x200000,  0x2FFFFF,
                                  0x300000, 0x3FFFFF,   0x80000000, 0x80000001, 0xFFFFFFFF};
    for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++) {
        rsm_memseg_id_t id = reserved[i];
        CHECK_RC(rsm_memseg_export_publish(s1, &id, NULL, 0), RSMERR_RESERVED_SEGID);
        CHECK(id == reserved[i]);
    }

    /* The two ends of the free range are accepted as given. */
    rsm_memseg_id_t lowest = 0x400000, highest = 0x7FFFFFFF;
    CHECK_RC(rsm_memseg_export_publish(s1, &lowest, NULL, 0), RSM_SUCCESS);
    CHECK(lowest == 0x400000);
    importer("id 0x400000", 0, 0x400000, RSM_SUCCESS, 'p');
    CHECK_RC(rsm_memseg_export_unpublish(s1), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_export_publish(s1, &highest, NULL, 0), RSM_SUCCESS);
    CHECK(highest == 0x7FFFFFFF);
    importer("id 0x7FFFFFFF", 0, 0x7FFFFFFF, RSM_SUCCESS, 'p');
    CHECK_RC(rsm_memseg_export_unpublish(s1), RSM_SUCCESS);

    /* 0: the system picks an id from 0x80000000 up and writes it back. */
    rsm_memseg_id_t a = 0, b = 0;
    CHECK_RC(rsm_memseg_export_publish(s1, &a, NULL, 0), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_export_publish(s2, &b, NULL, 0), RSM_SUCCESS);
    CHECK(a >= 0x80000000 && b >= 0x80000000 && a != b);
    importer("system id", 0, a, RSM_SUCCESS, 'p');
    importer("second system id", 0, b, RSM_SUCCESS, 'q');
    /* Asking for a system id explicitly is still reserved. */
    rsm_memseg_id_t taken = a;
    CHECK_RC(rsm_memseg_export_publish(s3, &taken, NULL, 0), RSMERR_RESERVED_SEGID);
    CHECK_RC(rsm_memseg_export_unpublish(s2), RSM_SUCCESS);

    /* Publishing twice, whatever id is asked for the second time. */
    rsm_memseg_id_t again = a, other = next_id(), zero = 0;
    CHECK_RC(rsm_memseg_export_publish(s1, &again, NULL, 0), RSMERR_SEG_ALREADY_PUBLISHED);
    CHECK_RC(rsm_memseg_export_publish(s1, &other, NULL, 0), RSMERR_SEG_ALREADY_PUBLISHED);
    CHECK_RC(rsm_memseg_export_publish(s1, &zero, NULL, 0), RSMERR_SEG_ALREADY_PUBLISHED);
    CHECK(zero == 0);
    importer("still under its first id", 0, a, RSM_SUCCESS, 'p');
    CHECK_RC(rsm_memseg_export_unpublish(s1), RSM_SUCCESS);

    /* Ids are unique per node: another process of node 0 holds this one... */
    rsm_memseg_id_t busy = e_busy.id;
    CHECK_RC(rsm_memseg_export_publish(s3, &busy, NULL, 0), RSMERR_SEGID_IN_USE);
    CHECK(busy == e_busy.id);
    CHECK_RC(rsm_memseg_export_unpublish(s3), RSMERR_SEG_NOT_PUBLISHED);
    importer("id in use, still the other exporter's", 0, e_busy.id, RSM_SUCCESS, 'b');
    /* ...and so does another segment of this process. */
    rsm_memseg_id_t mine = next_id(), dup = mine;
    CHECK_RC(rsm_memseg_export_publish(s1, &mine, NULL, 0), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_export_publish(s2, &dup, NULL, 0), RSMERR_SEGID_IN_USE);
    CHECK_RC(rsm_memseg_export_unpublish(s1), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_export_publish(s2, &dup, NULL, 0), RSM_SUCCESS); /* free again */
    CHECK_RC(rsm_memseg_export_unpublish(s2), RSM_SUCCESS);
    /* When its exporter exits, the id is free. */
    say(e_busy.cmd, 'x');
    check_child(e_busy.pid, "exporter holding the id");
    parent_close(e_busy.cmd);
    parent_close(e_busy.ack);
    busy = e_busy.id;
    CHECK_RC(rsm_memseg_export_publish(s3, &busy, NULL, 0), RSM_SUCCESS);
    importer("id taken over", 0, e_busy.id, RSM_SUCCESS, 'r');
    CHECK_RC(rsm_memseg_export_unpublish(s3), RSM_SUCCESS);

    /* Nodes 1 and 2 both published `shared_id` (each exporter checked its
     * own publish); each node's segment is its own, and node 0 may use the
     * id too. */
    rsm_memseg_import_handle_t i1, i2;
    char *m1 = NULL, *m2 = NULL;
    CHECK_RC(rsm_memseg_import_connect(ctrl, 1, shared_id, RSM_PERM_RDWR, &i1), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_import_connect(ctrl, 2, shared_id, RSM_PERM_RDWR, &i2), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_import_map(i1, (void **)&m1, RSM_MAP_NONE, RSM_PERM_READ, 0, len),
             RSM_SUCCESS);
    CHECK_RC(rsm_memseg_import_map(i2, (void **)&m2, RSM_MAP_NONE, RSM_PERM_READ, 0, len),
             RSM_SUCCESS);
    CHECK(m1 && all(m1, len, '1'));
    CHECK(m2 && all(m2, len, '2'));
    CHECK_RC(rsm_memseg_import_unmap(i1), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_import_unmap(i2), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_import_disconnect(i1), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_import_disconnect(i2), RSM_SUCCESS);
    rsm_memseg_id_t shared = shared_id;
    CHECK_RC(rsm_memseg_export_publish(s1, &shared, NULL, 0), RSM_SUCCESS);
    importer("shared id on node 0", 0, shared_id, RSM_SUCCESS, 'p');
    importer("shared id on node 2", 2, shared_id, RSM_SUCCESS, '2');
    CHECK_RC(rsm_memseg_export_unpublish(s1), RSM_SUCCESS);

    /* Arguments. */
    rsm_memseg_id_t id = next_id();
    const rsm_memseg_id_t asked = id;
    rsmapi_access_entry_t acl_0700[] = {{0, 0700}};
    rsmapi_access_entry_t acl_65[] = {{65, 0666}};
    rsmapi_access_entry_t acl_late_bad[] = {{0, 0666}, {3, 0644}, {65, 0666}};
    CHECK_RC(rsm_memseg_export_publish(s1, NULL, NULL, 0), RSMERR_BAD_SEGID);
    CHECK_RC(rsm_memseg_export_publish(NULL, NULL, NULL, 0), RSMERR_BAD_SEGID); /* id first */
    CHECK_RC(rsm_memseg_export_publish(NULL, &id, NULL, 0), RSMERR_BAD_SEG_HNDL);
    CHECK_RC(rsm_memseg_export_publish(s1, &id, NULL, 1), RSMERR_BAD_ACL);
    CHECK_RC(rsm_memseg_export_publish(s1, &id, acl_0700, 1), RSMERR_BAD_ACL);
    CHECK_RC(rsm_memseg_export_publish(s1, &id, acl_65, 1), RSMERR_BAD_ACL);
    CHECK_RC(rsm_memseg_export_publish(s1, &id, acl_late_bad, 3), RSMERR_BAD_ACL);
    CHECK(id == asked);
    /* None of them published the segment or took the id. */
    CHECK_RC(rsm_memseg_export_unpublish(s1), RSMERR_SEG_NOT_PUBLISHED);
    importer("after bad publishes", 0, id, RSMERR_SEG_NOT_PUBLISHED, 0);
    CHECK_RC(rsm_memseg_export_publish(s1, &id, NULL, 0), RSM_SUCCESS);
    importer("after a good publish", 0, id, RSM_SUCCESS, 'p');

    CHECK_RC(rsm_memseg_export_destroy(s1), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_export_destroy(s2), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_export_destroy(s3), RSM_SUCCESS);
    munmap(b1, len);
    munmap(b2, len);
    munmap(b3, len);
}

/* D. Only the creating process may publish, unpublish, republish and
 * rebind; rebind needs RSM_ALLOW_REBIND and the same length, and a mapped
 * importer follows it to the new memory. */
static void creator_rules(void)
{
    char *old = memory(1, 'A'), *new = memory(1, 'B');
    char *spare = memory(1, 'S'), *fixed = memory(1, 'F'), *big = memory(2, 'G');
    rsm_memseg_export_handle_t rb, unpub, norb;
    rsm_memseg_id_t rb_id = next_id(), norb_id = next_id();
    CHECK_RC(rsm_memseg_export_create(ctrl, &rb, old, len, RSM_ALLOW_REBIND), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_export_create(ctrl, &unpub, spare, len, RSM_ALLOW_REBIND), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_export_create(ctrl, &norb, fixed, len, 0), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_export_publish(rb, &rb_id, NULL, 0), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_export_publish(norb, &norb_id, NULL, 0), RSM_SUCCESS);

    /* A forked child has the handles but did not create the segments. */
    pid_t pid = child();
    if (pid == 0) {
        rsm_memseg_id_t id = next_id();
        char *mine = memory(1, 'K');
        CHECK_RC(rsm_memseg_export_publish(unpub, &id, NULL, 0), RSMERR_NOT_CREATOR);
        CHECK_RC(rsm_memseg_export_unpublish(rb), RSMERR_NOT_CREATOR);
        CHECK_RC(rsm_memseg_export_republish(rb, NULL, 0), RSMERR_NOT_CREATOR);
        CHECK_RC(rsm_memseg_export_rebind(rb, mine, 0, len), RSMERR_NOT_CREATOR);
        CHECK_RC(rsm_memseg_export_rebind(unpub, mine, 0, len), RSMERR_NOT_CREATOR);
        /* Library checks come before the creator check (spec 4.4). */
        CHECK_RC(rsm_memseg_export_publish(rb, &id, NULL, 0), RSMERR_SEG_ALREADY_PUBLISHED);
        CHECK_RC(rsm_memseg_export_unpublish(unpub), RSMERR_SEG_NOT_PUBLISHED);
        CHECK_RC(rsm_memseg_export_rebind(norb, mine, 0, len), RSMERR_REBIND_NOT_ALLOWED);
        child_exit();
    }
    check_child(pid, "forked child of the exporter");
    /* The child changed nothing. */
    importer("after the child's attempts", 0, rb_id, RSM_SUCCESS, 'A');
    CHECK(all(old, len, 'A'));

    CHECK_RC(rsm_memseg_export_rebind(norb, new, 0, len), RSMERR_REBIND_NOT_ALLOWED);
    CHECK_RC(rsm_memseg_export_rebind(rb, big, 0, 2 * len), RSMERR_BAD_LENGTH);
    CHECK_RC(rsm_memseg_export_rebind(rb, new, 0, len - (size_t)sysconf(_SC_PAGESIZE)),
             RSMERR_BAD_LENGTH);
    CHECK_RC(rsm_memseg_export_rebind(rb, NULL, 0, len), RSMERR_BAD_ADDR);
    CHECK_RC(rsm_memseg_export_rebind(NULL, new, 0, len), RSMERR_BAD_SEG_HNDL);
    CHECK(all(new, len, 'B') && all(old, len, 'A'));

    /* An importer maps the segment, then the exporter rebinds it. */
    int ready[2], go[2];
    CHECK(pipe(ready) == 0 && pipe(go) == 0);
    pid = child();
    if (pid == 0) {
        close(ready[0]);
        close(go[1]);
        rsm_memseg_import_handle_t im;
        volatile char *m = NULL;
        CHECK_RC(rsm_memseg_import_connect(ctrl, 0, rb_id, RSM_PERM_RDWR, &im), RSM_SUCCESS);
        CHECK_RC(rsm_memseg_import_map(im, (void **)&m, RSM_MAP_NONE, RSM_PERM_RDWR, 0, len),
                 RSM_SUCCESS);
        CHECK(m && all(m, len, 'A'));
        say(ready[1], 'r');
        CHECK(hear(go[0]) == 'g'); /* rebound */
        CHECK(m && all(m, len, 'B')); /* the same mapping, the new memory */
        if (m) m[1] = 'C';
        say(ready[1], 'w');
        CHECK(hear(go[0]) == 'g'); /* the exporter wrote its old memory */
        CHECK(m && m[0] == 'B' && m[1] == 'C' && m[2] == 'B');
        CHECK_RC(rsm_memseg_import_unmap(im), RSM_SUCCESS);
        CHECK_RC(rsm_memseg_import_disconnect(im), RSM_SUCCESS);
        child_exit();
    }
    close(ready[1]);
    close(go[0]);
    CHECK(hear(ready[0]) == 'r');
    CHECK_RC(rsm_memseg_export_rebind(rb, new, 0, len), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_export_rebind(rb, new, 0, len), RSM_SUCCESS); /* same memory: no-op */
    CHECK(all(new, len, 'B'));
    say(go[1], 'g');
    CHECK(hear(ready[0]) == 'w');
    CHECK(new[1] == 'C'); /* the importer's store reaches the new memory */
    CHECK(all(old, len, 'A')); /* the old memory is ours alone, as it was */
    old[0] = 'Z';
    say(go[1], 'g');
    check_child(pid, "importer across a rebind");
    close(ready[0]);
    close(go[1]);
    CHECK(old[0] == 'Z' && all(old + 1, len - 1, 'A'));
    importer("after the rebind", 0, rb_id, RSM_SUCCESS, 'B');

    CHECK_RC(rsm_memseg_export_destroy(rb), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_export_destroy(unpub), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_export_destroy(norb), RSM_SUCCESS);
    CHECK(new[0] == 'B' && new[1] == 'C'); /* destroy leaves the data with us */
    munmap(old, len);
    munmap(new, len);
    munmap(spare, len);
    munmap(fixed, len);
    munmap(big, 2 * len);
}

/* E. rsm_memseg_export_create's checks in the order of spec 4.4: each call
 * breaks the rule under test and every later one, so only the order makes
 * the answer right. Flag bits other than the two defined are ignored. */
static void create_arguments(void)
{
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    /* Two segments' worth of memory, then read-only memory. */
    char *buf = memory(3, 'c');
    CHECK(mprotect(buf + 2 * len, len, PROT_READ) == 0);
    rsm_memseg_export_handle_t s = (rsm_memseg_export_handle_t)0x1;
    rsmapi_controller_handle_t gone, lo;
    CHECK_RC(rsm_get_controller("loopback", &gone), RSM_SUCCESS);
    CHECK_RC(rsm_release_controller(gone), RSM_SUCCESS);

    /* 1. The controller: NULL, released, or not a controller. */
    CHECK_RC(rsm_memseg_export_create(NULL, NULL, NULL, 0, 0), RSMERR_BAD_CTLR_HNDL);
    CHECK_RC(rsm_memseg_export_create(gone, &s, buf + 1, 0, 0), RSMERR_BAD_CTLR_HNDL);
    CHECK_RC(rsm_memseg_export_create((rsmapi_controller_handle_t)0x1234, &s, buf, len, 0),
             RSMERR_BAD_CTLR_HNDL);
    CHECK(s == (rsm_memseg_export_handle_t)0x1); /* not touched before step 2 */
    /* 2. The out-pointer; a bad non-NULL one is RSMERR_BAD_ADDR here. */
    CHECK_RC(rsm_memseg_export_create(ctrl, NULL, NULL, 0, 0), RSMERR_BAD_SEG_HNDL);
    CHECK_RC(rsm_memseg_export_create(ctrl, (rsm_memseg_export_handle_t *)0x10, buf, len, 0),
             RSMERR_BAD_ADDR);
    /* 3. The address; from here on *memseg is NULL on error. */
    CHECK_RC(rsm_memseg_export_create(ctrl, &s, NULL, 0, 0), RSMERR_BAD_ADDR);
    CHECK(s == NULL);
    /* 4. Length 0, before alignment. */
    s = (rsm_memseg_export_handle_t)0x1;
    CHECK_RC(rsm_memseg_export_create(ctrl, &s, buf + 1, 0, 0), RSMERR_BAD_LENGTH);
    CHECK(s == NULL);
    /* 5. Address or length not a multiple of the system page size. */
    CHECK_RC(rsm_memseg_export_create(ctrl, &s, buf + 1, len + 1, 0), RSMERR_BAD_MEM_ALIGNMENT);
    CHECK_RC(rsm_memseg_export_create(ctrl, &s, buf + pg / 2, len, 0), RSMERR_BAD_MEM_ALIGNMENT);
    CHECK_RC(rsm_memseg_export_create(ctrl, &s, buf, len + 1, 0), RSMERR_BAD_MEM_ALIGNMENT);
    CHECK_RC(rsm_memseg_export_create(ctrl, &s, buf, pg / 2, 0), RSMERR_BAD_MEM_ALIGNMENT);
    /* 6. Longer than the controller's maximum: RSMERR_BAD_LENGTH, before the
     * memory is looked at; except on loopback, which skips the check (spec
     * 4.4) and so finds the read-only memory after `buf`
     * (RSMERR_PERM_DENIED, from the page lock on Solaris). */
    rsmapi_controller_attr_t attr;
    CHECK_RC(rsm_get_controller_attr(ctrl, &attr), RSM_SUCCESS);
    size_t big = (attr.attr_max_export_segment_size / pg + 1) * pg;
    CHECK_RC(rsm_memseg_export_create(ctrl, &s, buf, big, 0), RSMERR_BAD_LENGTH);
    CHECK_RC(rsm_get_controller("loopback", &lo), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_export_create(lo, &s, buf, big, 0), RSMERR_PERM_DENIED);
    CHECK(s == NULL);
    /* None of them took the memory: it is still private and whole. */
    CHECK(all(buf, 2 * len, 'c'));
    /* 7. Flags: unknown bits are not checked, as on Solaris. */
    CHECK_RC(rsm_memseg_export_create(ctrl, &s, buf, len, 0xFFFFFFF0u), RSM_SUCCESS);
    CHECK(s != NULL);
    CHECK_RC(rsm_memseg_export_destroy(s), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_export_create(lo, &s, buf, 2 * len,
                                      RSM_ALLOW_REBIND | RSM_CREATE_SEG_DONTWAIT),
             RSM_SUCCESS);
    CHECK_RC(rsm_memseg_export_destroy(s), RSM_SUCCESS);
    CHECK_RC(rsm_release_controller(lo), RSM_SUCCESS);
    CHECK(all(buf, 2 * len, 'c'));
    munmap(buf, 3 * len);
}

/* E. rsm_memseg_import_map's checks in the order of spec 4.5, by an
 * importer process: handle, address, already mapped, perm, length,
 * bounds, offset alignment, RSM_MAP_FIXED alignment, then the rights the
 * connect granted. Pages of the segment hold 'A', 'B', 'C', 'D'. */
static void map_arguments(void)
{
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    char *buf = memory(1, 0);
    for (size_t i = 0; i < len; i++) buf[i] = (char)('A' + i / pg);
    rsm_memseg_export_handle_t seg;
    rsm_memseg_id_t id = next_id();
    CHECK_RC(rsm_memseg_export_create(ctrl, &seg, buf, len, 0), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_export_publish(seg, &id, NULL, 0), RSM_SUCCESS);
    pid_t pid = child();
    if (pid == 0) {
        rsm_memseg_import_handle_t im, ro;
        char *a = NULL, *b = NULL;
        CHECK_RC(rsm_memseg_import_connect(ctrl, 0, id, RSM_PERM_RDWR, &im), RSM_SUCCESS);
        /* 1-2. Handle, then the address pointer. */
        CHECK_RC(rsm_memseg_import_map(NULL, NULL, RSM_MAP_NONE, 0700, 1, 0), RSMERR_BAD_SEG_HNDL);
        CHECK_RC(rsm_memseg_import_map(im, NULL, RSM_MAP_NONE, 0700, 1, 0), RSMERR_BAD_ADDR);
        CHECK_RC(rsm_memseg_import_map(im, (void **)0x10, RSM_MAP_FIXED, RSM_PERM_RDWR, 0, len),
                 RSMERR_BAD_ADDR);
        /* 5. perm above 0600, before the length. */
        rsm_permission_t bad_perms[] = {0700, 0601, 0777, 01000};
        for (size_t i = 0; i < sizeof bad_perms / sizeof bad_perms[0]; i++)
            CHECK_RC(rsm_memseg_import_map(im, (void **)&a, RSM_MAP_NONE, bad_perms[i], 1, 0),
                     RSMERR_BAD_PERMS);
        /* 6. Length 0, before the bounds and the offset's alignment. */
        CHECK_RC(rsm_memseg_import_map(im, (void **)&a, RSM_MAP_NONE, RSM_PERM_RDWR, 1, 0),
                 RSMERR_BAD_LENGTH);
        /* 7. The window must lie in the segment; checked before alignment. */
        CHECK_RC(rsm_memseg_import_map(im, (void **)&a, RSM_MAP_NONE, RSM_PERM_RDWR, 0, len + 1),
                 RSMERR_BAD_LENGTH);
        CHECK_RC(rsm_memseg_import_map(im, (void **)&a, RSM_MAP_NONE, RSM_PERM_RDWR, (off_t)pg,
                                       len),
                 RSMERR_BAD_LENGTH);
        CHECK_RC(rsm_memseg_import_map(im, (void **)&a, RSM_MAP_NONE, RSM_PERM_RDWR, (off_t)len,
                                       1),
                 RSMERR_BAD_LENGTH);
        CHECK_RC(rsm_memseg_import_map(im, (void **)&a, RSM_MAP_NONE, RSM_PERM_RDWR, 1, len),
                 RSMERR_BAD_LENGTH);
        CHECK_RC(rsm_memseg_import_map(im, (void **)&a, RSM_MAP_NONE, RSM_PERM_RDWR,
                                       -(off_t)pg, pg),
                 RSMERR_BAD_OFFSET);
        /* 8. The offset is page-aligned. */
        CHECK_RC(rsm_memseg_import_map(im, (void **)&a, RSM_MAP_NONE, RSM_PERM_RDWR, 1, pg),
                 RSMERR_BAD_MEM_ALIGNMENT);
        CHECK_RC(rsm_memseg_import_map(im, (void **)&a, RSM_MAP_NONE, RSM_PERM_RDWR,
                                       (off_t)(pg / 2), pg),
                 RSMERR_BAD_MEM_ALIGNMENT);
        /* 9. RSM_MAP_FIXED needs a page-aligned *address. */
        char *area = mmap(NULL, 2 * len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        CHECK(area != MAP_FAILED);
        a = area + 1;
        CHECK_RC(rsm_memseg_import_map(im, (void **)&a, RSM_MAP_FIXED, RSM_PERM_RDWR, 0, pg),
                 RSMERR_BAD_MEM_ALIGNMENT);
        CHECK(a == area + 1);
        /* None of them mapped anything. */
        CHECK_RC(rsm_memseg_import_unmap(im), RSMERR_SEG_NOT_MAPPED);

        /* A window: page 1, a length that is not a page multiple. */
        a = NULL;
        CHECK_RC(rsm_memseg_import_map(im, (void **)&a, RSM_MAP_NONE, RSM_PERM_READ, (off_t)pg,
                                       pg / 2 + 1),
                 RSM_SUCCESS);
        CHECK(a && a[0] == 'B' && a[pg / 2] == 'B');
        /* 3. Already mapped: before perm, length and bounds. */
        CHECK_RC(rsm_memseg_import_map(im, (void **)&b, RSM_MAP_NONE, 0700, 1, 0),
                 RSMERR_SEG_ALREADY_MAPPED);
        CHECK(b == NULL);
        CHECK_RC(rsm_memseg_import_unmap(im), RSM_SUCCESS);
        CHECK_RC(rsm_memseg_import_unmap(im), RSMERR_SEG_NOT_MAPPED);

        /* RSM_MAP_FIXED at an aligned address maps exactly there. */
        a = area + pg;
        CHECK_RC(rsm_memseg_import_map(im, (void **)&a, RSM_MAP_FIXED, RSM_PERM_RDWR,
                                       (off_t)(2 * pg), pg),
                 RSM_SUCCESS);
        CHECK(a == area + pg);
        if (a == area + pg) {
            CHECK(a[0] == 'C' && a[pg - 1] == 'C');
            a[1] = 'w'; /* seen by the exporter */
        }
        CHECK_RC(rsm_memseg_import_unmap(im), RSM_SUCCESS);
        CHECK_RC(rsm_memseg_import_disconnect(im), RSM_SUCCESS);

        /* 10. Rights beyond the connect's: RSMERR_BAD_PERMS. */
        CHECK_RC(rsm_memseg_import_connect(ctrl, 0, id, RSM_PERM_READ, &ro), RSM_SUCCESS);
        CHECK_RC(rsm_memseg_import_map(ro, (void **)&b, RSM_MAP_NONE, RSM_PERM_RDWR, 0, len),
                 RSMERR_BAD_PERMS);
        CHECK_RC(rsm_memseg_import_map(ro, (void **)&b, RSM_MAP_NONE, RSM_PERM_WRITE, 0, len),
                 RSMERR_BAD_PERMS);
        CHECK_RC(rsm_memseg_import_map(ro, (void **)&b, RSM_MAP_NONE, RSM_PERM_READ, 0, len),
                 RSM_SUCCESS);
        CHECK(b && b[0] == 'A' && b[3 * pg] == 'D' && b[2 * pg + 1] == 'w');
        CHECK_RC(rsm_memseg_import_unmap(ro), RSM_SUCCESS);
        CHECK_RC(rsm_memseg_import_disconnect(ro), RSM_SUCCESS);
        munmap(area, 2 * len);
        child_exit();
    }
    check_child(pid, "import_map arguments");
    CHECK(buf[2 * pg + 1] == 'w' && buf[2 * pg] == 'C' && buf[0] == 'A');
    CHECK_RC(rsm_memseg_export_destroy(seg), RSM_SUCCESS);
    munmap(buf, len);
}

int main(void)
{
    len = 4 * (size_t)sysconf(_SC_PAGESIZE);
    char fabric[64];
    snprintf(fabric, sizeof fabric, "ctest-connect-%d", (int)getpid());
    setenv("RSM_FABRIC", fabric, 1);
    setenv("RSM_NODE_ID", "0", 1);
    alarm(25); /* never hang */

    rsmapi_access_entry_t only_node5[] = {{5, 0666}};
    e_main = start_exporter("0", next_id(), NULL, 0, 'm');
    e_acl = start_exporter("1", next_id(), only_node5, 1, 'a');
    e_exit = start_exporter("0", next_id(), NULL, 0, 'x');
    e_stop = start_exporter("0", next_id(), NULL, 0, 's');
    e_busy = start_exporter("0", next_id(), NULL, 0, 'b');
    shared_id = next_id();
    e_node1 = start_exporter("1", shared_id, NULL, 0, '1');
    e_node2 = start_exporter("2", shared_id, NULL, 0, '2');

    CHECK_RC(rsm_get_controller("shm0", &ctrl), RSM_SUCCESS);
    connect_arguments();
    disconnect();
    no_descriptors();
    interrupted();
    not_published(); /* unpublishes e_main, ends e_exit */
    segment_ids();   /* ends e_busy */
    creator_rules();
    create_arguments();
    map_arguments();

    stop_exporter(&e_main, "exporter on node 0");
    stop_exporter(&e_acl, "exporter with an ACL");
    stop_exporter(&e_stop, "exporter that was stopped");
    stop_exporter(&e_node1, "exporter on node 1");
    stop_exporter(&e_node2, "exporter on node 2");
    CHECK_RC(rsm_release_controller(ctrl), RSM_SUCCESS);
    return report("connect");
}
