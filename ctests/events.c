/*
 * Events (spec 4.9, 5.2): rsm_intr_signal_post and rsm_intr_signal_wait
 * between real exporter and importer processes, the pollfd in the
 * program's own poll(2) and epoll, rsm_intr_signal_wait_pollfd mixing RSM
 * and ordinary descriptors, the implicit post of putv/getv, signals, and
 * the forced disconnect as a waiter sees it. Exact counts are also checked
 * on a segment this process both exports and imports.
 */
#define _GNU_SOURCE
#include <rsmapi.h>
#include <poll.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include "rawwire.h"

static size_t len; /* every segment: one page */
static rsmapi_controller_handle_t ctrl;

static rsm_memseg_id_t next_id(void)
{
    static unsigned k;
    return 0x400000 + (rsm_memseg_id_t)(getpid() % 100000) * 16 + k++;
}

static char *memory(void)
{
    char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) abort();
    memset(p, 'e', len);
    return p;
}

static void say(int fd, char c) { CHECK(write(fd, &c, 1) == 1); }

/* Forks a child with clean counters and a safety alarm (0 in the child). */
static pid_t child(void)
{
    fflush(stdout);
    fflush(stderr);
    /* Let this process's agent thread finish what it is doing (closing a
     * previous section's connections): under ASan a fork while another
     * thread allocates leaves the child holding the allocator's lock
     * (glibc's malloc is fork-safe; GCC 12's libasan is not). */
    usleep(20000);
    pid_t pid = fork();
    if (pid == 0) {
        passed = failed = 0;
        alarm(20);
    }
    return pid;
}

/* A segment this process exports and publishes, and imports as well. */
struct local {
    char *buf;
    rsm_memseg_export_handle_t ex;
    rsm_memseg_import_handle_t im;
    rsm_memseg_id_t id;
};

static struct local local_open(void)
{
    struct local s = {memory(), NULL, NULL, next_id()};
    CHECK_RC(rsm_memseg_export_create(ctrl, &s.ex, s.buf, len, 0), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_export_publish(s.ex, &s.id, NULL, 0), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_import_connect(ctrl, 0, s.id, RSM_PERM_RDWR, &s.im), RSM_SUCCESS);
    return s;
}

static void local_close(struct local *s)
{
    CHECK_RC(rsm_memseg_import_disconnect(s->im), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_export_destroy(s->ex), RSM_SUCCESS);
    munmap(s->buf, len);
}

/* Consumes `n` events with generous timeouts, then finds none pending. */
static void expect_events(void *seg, int n)
{
    for (int i = 0; i < n; i++) CHECK_RC(rsm_intr_signal_wait(seg, 5000), RSM_SUCCESS);
    CHECK_RC(rsm_intr_signal_wait(seg, 0), RSMERR_TIMEOUT);
}

/* An exporter process: publishes a segment and answers 'y', then obeys one
 * byte at a time, answering 'y' on success: 'P' post on the export handle,
 * 'F' post while the process has no descriptor to spare,
 * 'u' unpublish, 'd' destroy, 'D' post and destroy at once; 'q' destroys
 * (if needed) and exits. */
struct exporter {
    pid_t pid;
    int cmd, ack;
    rsm_memseg_id_t id;
};

static struct exporter start_exporter(void)
{
    struct exporter e = {0, -1, -1, next_id()};
    int cmd[2], ack[2];
    CHECK(pipe(cmd) == 0 && pipe(ack) == 0);
    e.pid = child();
    if (e.pid == 0) {
        close(cmd[1]);
        close(ack[0]);
        char *buf = memory(), c;
        rsmapi_controller_handle_t mine;
        rsm_memseg_export_handle_t seg;
        int live = 1;
        CHECK_RC(rsm_get_controller("shm0", &mine), RSM_SUCCESS);
        CHECK_RC(rsm_memseg_export_create(mine, &seg, buf, len, 0), RSM_SUCCESS);
        CHECK_RC(rsm_memseg_export_publish(seg, &e.id, NULL, 0), RSM_SUCCESS);
        say(ack[1], failed == 0 ? 'y' : 'n');
        while (read(cmd[0], &c, 1) == 1 && c != 'q') {
            int rc = RSMERR_BAD_ARGS_ERRORS;
            if (c == 'P') rc = rsm_intr_signal_post(seg, 0);
            if (c == 'F') { /* post with no descriptor to spare */
                struct rlimit old;
                CHECK(leave_no_descriptor(&old) == 0);
                rc = rsm_intr_signal_post(seg, 0);
                CHECK(setrlimit(RLIMIT_NOFILE, &old) == 0);
            }
            if (c == 'u') rc = rsm_memseg_export_unpublish(seg);
            if (c == 'd') rc = rsm_memseg_export_destroy(seg);
            if (c == 'D') {
                rc = rsm_intr_signal_post(seg, 0);
                if (rc == RSM_SUCCESS) rc = rsm_memseg_export_destroy(seg);
            }
            if ((c == 'd' || c == 'D') && rc == RSM_SUCCESS) live = 0;
            CHECK_RC(rc, RSM_SUCCESS);
            say(ack[1], rc == RSM_SUCCESS ? 'y' : 'n');
        }
        if (live) CHECK_RC(rsm_memseg_export_destroy(seg), RSM_SUCCESS);
        CHECK_RC(rsm_release_controller(mine), RSM_SUCCESS);
        child_exit();
    }
    close(cmd[0]);
    close(ack[1]);
    e.cmd = cmd[1];
    e.ack = ack[0];
    CHECK(hear(e.ack) == 'y');
    return e;
}

/* Tells the exporter to quit, checks how it ended, and closes its pipes. */
static void stop_exporter(struct exporter *e, const char *what)
{
    say(e->cmd, 'q');
    check_child(e->pid, what);
    close(e->cmd);
    close(e->ack);
}

static int command(struct exporter *e, char c)
{
    say(e->cmd, c);
    return hear(e->ack) == 'y';
}

/* 1. Both directions: this process exports, two importer processes
 * connect. Each importer gets exactly the 5 posts made on the export
 * handle, the exporter exactly the 3 + 3 posts of the importers, and the
 * last post of each importer stays pending after it disconnects or exits.
 * With spin0 the importers sleep at once (RSM_SPIN_US=0, read at their
 * first wait), otherwise they spin first. */
static void both_directions(int spin0)
{
    char *buf = memory();
    rsm_memseg_export_handle_t ex;
    rsm_memseg_id_t id = next_id();
    CHECK_RC(rsm_memseg_export_create(ctrl, &ex, buf, len, 0), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_export_publish(ex, &id, NULL, 0), RSM_SUCCESS);
    int up[2][2], down[2][2];
    pid_t pid[2];
    /* Both children are forked before either connects (see child()). */
    for (int k = 0; k < 2; k++) {
        CHECK(pipe(up[k]) == 0 && pipe(down[k]) == 0);
        pid[k] = child();
        if (pid[k] == 0) {
            rsm_memseg_import_handle_t im;
            if (spin0) setenv("RSM_SPIN_US", "0", 1);
            CHECK(hear(down[k][0]) == 's');
            CHECK_RC(rsm_memseg_import_connect(ctrl, 0, id, RSM_PERM_RDWR, &im), RSM_SUCCESS);
            say(up[k][1], 'c');
            expect_events(im, 5);
            for (int i = 0; i < 3; i++) CHECK_RC(rsm_intr_signal_post(im, 0), RSM_SUCCESS);
            CHECK(hear(down[k][0]) == 'g');
            CHECK_RC(rsm_intr_signal_post(im, 0), RSM_SUCCESS);
            if (k == 0) CHECK_RC(rsm_memseg_import_disconnect(im), RSM_SUCCESS);
            child_exit(); /* importer 1 exits still connected */
        }
        close(up[k][1]);
        close(down[k][0]);
    }
    for (int k = 0; k < 2; k++) say(down[k][1], 's');
    CHECK(hear(up[0][0]) == 'c' && hear(up[1][0]) == 'c');
    usleep(20000); /* the importers are most likely asleep in their waits */
    for (int i = 0; i < 5; i++) CHECK_RC(rsm_intr_signal_post(ex, 0), RSM_SUCCESS);
    expect_events(ex, 6);
    for (int k = 0; k < 2; k++) say(down[k][1], 'g');
    check_child(pid[0], spin0 ? "importer 0, RSM_SPIN_US=0" : "importer 0");
    check_child(pid[1], spin0 ? "importer 1, RSM_SPIN_US=0" : "importer 1");
    expect_events(ex, 2); /* posted by importers that have gone since */
    for (int k = 0; k < 2; k++) {
        close(up[k][0]);
        close(down[k][1]);
    }
    CHECK_RC(rsm_memseg_export_destroy(ex), RSM_SUCCESS);
    munmap(buf, len);
}

/* 2. Handles that are not segments: NULL, forged, a controller, and a
 * destroyed export and a disconnected import. */
static void bad_handles(void)
{
    struct local s = local_open();
    rsm_memseg_export_handle_t ex = s.ex;
    rsm_memseg_import_handle_t im = s.im;
    local_close(&s);
    void *bad[] = {NULL, (void *)0x1234, ctrl, ex, im};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_RC(rsm_intr_signal_post(bad[i], 0), RSMERR_BAD_SEG_HNDL);
        CHECK_RC(rsm_intr_signal_wait(bad[i], 0), RSMERR_BAD_SEG_HNDL);
    }
}

/* 3. Counting, on a segment this process exports and imports: a post on
 * the import handle signals the export segment, a post on the export
 * handle every import segment connected now, each post adds one event and
 * each wait takes one. */
static void counting(void)
{
    struct local s = local_open();
    rsm_memseg_import_handle_t im2, late;
    CHECK_RC(rsm_memseg_import_connect(ctrl, 0, s.id, RSM_PERM_READ, &im2), RSM_SUCCESS);

    /* Importer to exporter; a timed wait with nothing pending times out. */
    CHECK_RC(rsm_intr_signal_wait(s.ex, 100), RSMERR_TIMEOUT);
    for (int i = 0; i < 3; i++) CHECK_RC(rsm_intr_signal_post(s.im, 0), RSM_SUCCESS);
    expect_events(s.ex, 3);

    /* Exporter to both import handles, not to itself. */
    CHECK_RC(rsm_intr_signal_wait(s.im, 100), RSMERR_TIMEOUT);
    for (int i = 0; i < 2; i++) CHECK_RC(rsm_intr_signal_post(s.ex, 0), RSM_SUCCESS);
    expect_events(s.im, 2);
    expect_events(im2, 2);
    CHECK_RC(rsm_intr_signal_wait(s.ex, 0), RSMERR_TIMEOUT);

    /* An importer that connects after a post does not get it. */
    CHECK_RC(rsm_intr_signal_post(s.ex, 0), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_import_connect(ctrl, 0, s.id, RSM_PERM_RDWR, &late), RSM_SUCCESS);
    CHECK_RC(rsm_intr_signal_wait(late, 0), RSMERR_TIMEOUT);
    CHECK_RC(rsm_memseg_import_disconnect(late), RSM_SUCCESS);
    expect_events(s.im, 1);
    expect_events(im2, 1);

    /* One that connected just now gets the next post, every time (the
     * loop stops at the first miss). */
    int posts = 0, reached = 0;
    while (posts < 20 && reached == posts) {
        CHECK_RC(rsm_memseg_import_connect(ctrl, 0, s.id, RSM_PERM_RDWR, &late), RSM_SUCCESS);
        CHECK_RC(rsm_intr_signal_post(s.ex, 0), RSM_SUCCESS);
        posts++;
        reached += rsm_intr_signal_wait(late, 5000) == RSM_SUCCESS;
        CHECK_RC(rsm_memseg_import_disconnect(late), RSM_SUCCESS);
    }
    CHECK(reached == 20);
    expect_events(s.im, posts);
    expect_events(im2, posts);

    /* NO_ACCUMULATE: no event while one is pending, in both directions. */
    for (int i = 0; i < 3; i++)
        CHECK_RC(rsm_intr_signal_post(s.im, RSM_SIGPOST_NO_ACCUMULATE), RSM_SUCCESS);
    expect_events(s.ex, 1);
    CHECK_RC(rsm_intr_signal_post(s.im, 0), RSM_SUCCESS);
    CHECK_RC(rsm_intr_signal_post(s.im, RSM_SIGPOST_NO_ACCUMULATE), RSM_SUCCESS);
    expect_events(s.ex, 1);
    for (int i = 0; i < 3; i++)
        CHECK_RC(rsm_intr_signal_post(s.ex, RSM_SIGPOST_NO_ACCUMULATE), RSM_SUCCESS);
    expect_events(s.im, 1);
    expect_events(im2, 1);

    /* Unknown flag bits are ignored. */
    CHECK_RC(rsm_intr_signal_post(s.im, 0x100), RSM_SUCCESS);
    CHECK_RC(rsm_intr_signal_post(s.im, 0x80000000u), RSM_SUCCESS);
    expect_events(s.ex, 2);
    CHECK_RC(rsm_intr_signal_post(s.im, RSM_SIGPOST_NO_ACCUMULATE | 0x100), RSM_SUCCESS);
    CHECK_RC(rsm_intr_signal_post(s.im, RSM_SIGPOST_NO_ACCUMULATE | 0x100), RSM_SUCCESS);
    expect_events(s.ex, 1);

    /* Any negative timeout waits as long as it takes. */
    CHECK_RC(rsm_intr_signal_post(s.im, 0), RSM_SUCCESS);
    CHECK_RC(rsm_intr_signal_wait(s.ex, -1), RSM_SUCCESS);
    CHECK_RC(rsm_intr_signal_post(s.im, 0), RSM_SUCCESS);
    CHECK_RC(rsm_intr_signal_wait(s.ex, -7), RSM_SUCCESS);
    CHECK_RC(rsm_intr_signal_wait(s.ex, 0), RSMERR_TIMEOUT);

    /* An export handle without importers: the post succeeds, reaching no one. */
    char *buf = memory();
    rsm_memseg_export_handle_t alone;
    rsm_memseg_id_t id = next_id();
    CHECK_RC(rsm_memseg_export_create(ctrl, &alone, buf, len, 0), RSM_SUCCESS);
    CHECK_RC(rsm_intr_signal_post(alone, 0), RSM_SUCCESS); /* never published */
    CHECK_RC(rsm_memseg_export_publish(alone, &id, NULL, 0), RSM_SUCCESS);
    CHECK_RC(rsm_intr_signal_post(alone, 0), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_export_unpublish(alone), RSM_SUCCESS);
    CHECK_RC(rsm_intr_signal_post(alone, 0), RSM_SUCCESS);
    CHECK_RC(rsm_intr_signal_wait(alone, 0), RSMERR_TIMEOUT);
    CHECK_RC(rsm_memseg_export_destroy(alone), RSM_SUCCESS);
    munmap(buf, len);

    CHECK_RC(rsm_memseg_import_disconnect(im2), RSM_SUCCESS);
    local_close(&s);
}

/* 4. The pollfd in the program's own poll(2) and epoll: readable while an
 * event is pending (level-triggered, polling consumes nothing), not once
 * the waits took them all. */
static void poll_and_epoll(void)
{
    struct local s = local_open();
    struct pollfd pfd = {-1, 0, 0}, ipfd = {-1, 0, 0};
    CHECK_RC(rsm_memseg_get_pollfd(s.ex, &pfd), RSM_SUCCESS);
    CHECK(pfd.fd >= 0 && pfd.events == POLLRDNORM);
    CHECK(poll(&pfd, 1, 0) == 0);

    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev, out;
    memset(&ev, 0, sizeof ev);
    ev.events = EPOLLIN;
    ev.data.fd = pfd.fd;
    CHECK(ep >= 0 && epoll_ctl(ep, EPOLL_CTL_ADD, pfd.fd, &ev) == 0);
    CHECK(epoll_wait(ep, &out, 1, 0) == 0);

    /* Two pending: readable, again and again, for POLLRDNORM and POLLIN. */
    CHECK_RC(rsm_intr_signal_post(s.im, 0), RSM_SUCCESS);
    CHECK_RC(rsm_intr_signal_post(s.im, 0), RSM_SUCCESS);
    CHECK(poll(&pfd, 1, 5000) == 1 && (pfd.revents & POLLRDNORM));
    CHECK(poll(&pfd, 1, 5000) == 1 && (pfd.revents & POLLRDNORM));
    struct pollfd in = {pfd.fd, POLLIN, 0};
    CHECK(poll(&in, 1, 5000) == 1 && (in.revents & POLLIN));
    CHECK(epoll_wait(ep, &out, 1, 5000) == 1 && (out.events & EPOLLIN) && out.data.fd == pfd.fd);
    CHECK(epoll_wait(ep, &out, 1, 5000) == 1);

    /* One taken: still one pending, still readable. Both taken: not. */
    CHECK_RC(rsm_intr_signal_wait(s.ex, 5000), RSM_SUCCESS);
    CHECK(poll(&pfd, 1, 5000) == 1 && (pfd.revents & POLLRDNORM));
    CHECK(epoll_wait(ep, &out, 1, 5000) == 1);
    CHECK_RC(rsm_intr_signal_wait(s.ex, 5000), RSM_SUCCESS);
    CHECK(poll(&pfd, 1, 0) == 0);
    CHECK(epoll_wait(ep, &out, 1, 0) == 0);
    CHECK(close(ep) == 0);

    /* The import side, the same way. */
    CHECK_RC(rsm_memseg_get_pollfd(s.im, &ipfd), RSM_SUCCESS);
    CHECK(ipfd.fd >= 0 && ipfd.events == POLLRDNORM);
    CHECK(poll(&ipfd, 1, 0) == 0);
    CHECK_RC(rsm_intr_signal_post(s.ex, 0), RSM_SUCCESS);
    CHECK(poll(&ipfd, 1, 5000) == 1 && (ipfd.revents & POLLRDNORM));
    CHECK_RC(rsm_intr_signal_wait(s.im, 5000), RSM_SUCCESS);
    CHECK(poll(&ipfd, 1, 0) == 0);

    /* A held pollfd keeps its segment. */
    CHECK_RC(rsm_memseg_export_destroy(s.ex), RSMERR_POLLFD_IN_USE);
    CHECK_RC(rsm_memseg_import_disconnect(s.im), RSMERR_POLLFD_IN_USE);
    CHECK_RC(rsm_memseg_release_pollfd(s.ex), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_release_pollfd(s.im), RSM_SUCCESS);
    local_close(&s);
}

/* 5. rsm_intr_signal_wait_pollfd: poll(2) over RSM pollfds and a pipe,
 * taking one event per ready RSM entry. */
static void wait_pollfd(void)
{
    struct local s = local_open();
    struct pollfd fds[3];
    int p[2], n;
    CHECK(pipe(p) == 0);
    CHECK_RC(rsm_memseg_get_pollfd(s.ex, &fds[0]), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_get_pollfd(s.im, &fds[1]), RSM_SUCCESS);
    fds[2].fd = p[0];
    fds[2].events = POLLIN;

    /* Three pending: each call takes exactly one. */
    for (int i = 0; i < 3; i++) CHECK_RC(rsm_intr_signal_post(s.im, 0), RSM_SUCCESS);
    for (int i = 0; i < 3; i++) {
        n = -1;
        CHECK_RC(rsm_intr_signal_wait_pollfd(fds, 1, 5000, &n), RSM_SUCCESS);
        CHECK(n == 1 && fds[0].revents == POLLRDNORM);
    }
    n = -1;
    CHECK_RC(rsm_intr_signal_wait_pollfd(fds, 1, 0, &n), RSMERR_TIMEOUT);
    CHECK(n == 0 && fds[0].revents == 0);

    /* A pending segment and a readable pipe: two entries, one event taken. */
    CHECK_RC(rsm_intr_signal_post(s.im, 0), RSM_SUCCESS);
    say(p[1], 'x');
    CHECK_RC(rsm_intr_signal_wait_pollfd(fds, 3, 5000, &n), RSM_SUCCESS);
    CHECK(n == 2 && fds[0].revents == POLLRDNORM && fds[1].revents == 0);
    CHECK(fds[2].revents & POLLIN);
    CHECK_RC(rsm_intr_signal_wait(s.ex, 0), RSMERR_TIMEOUT);

    /* Only the pipe: one entry, with what poll said. */
    CHECK_RC(rsm_intr_signal_wait_pollfd(fds, 3, 5000, &n), RSM_SUCCESS);
    CHECK(n == 1 && fds[0].revents == 0 && fds[1].revents == 0 && (fds[2].revents & POLLIN));
    CHECK(hear(p[0]) == 'x');

    /* Nothing ready. */
    n = 99;
    CHECK_RC(rsm_intr_signal_wait_pollfd(fds, 3, 0, &n), RSMERR_TIMEOUT);
    CHECK(n == 0);
    n = 99;
    CHECK_RC(rsm_intr_signal_wait_pollfd(NULL, 0, 0, &n), RSMERR_TIMEOUT);
    CHECK(n == 0);

    /* The import side; numfdsp may be NULL. */
    CHECK_RC(rsm_intr_signal_post(s.ex, 0), RSM_SUCCESS);
    CHECK_RC(rsm_intr_signal_wait_pollfd(fds, 3, 5000, NULL), RSM_SUCCESS);
    CHECK(fds[0].revents == 0 && fds[1].revents == POLLRDNORM && fds[2].revents == 0);
    CHECK_RC(rsm_intr_signal_wait(s.im, 0), RSMERR_TIMEOUT);

    /* One event, its pollfd listed twice: one entry takes it, the other
     * finds it taken and is cleared. */
    struct pollfd twice[2] = {fds[0], fds[0]};
    CHECK_RC(rsm_intr_signal_post(s.im, 0), RSM_SUCCESS);
    CHECK_RC(rsm_intr_signal_wait_pollfd(twice, 2, 5000, &n), RSM_SUCCESS);
    CHECK(n == 1 && (twice[0].revents | twice[1].revents) == POLLRDNORM &&
          (twice[0].revents == 0 || twice[1].revents == 0));
    CHECK_RC(rsm_intr_signal_wait(s.ex, 0), RSMERR_TIMEOUT);

    /* Bad arguments. */
    CHECK_RC(rsm_intr_signal_wait_pollfd(NULL, 1, 0, &n), RSMERR_BAD_ADDR);
    CHECK_RC(rsm_intr_signal_wait_pollfd(fds, 3, 0, (int *)8), RSMERR_BAD_ADDR);
    struct rlimit old, low;
    CHECK(getrlimit(RLIMIT_NOFILE, &old) == 0);
    low = old;
    low.rlim_cur = old.rlim_cur < 64 ? old.rlim_cur : 64;
    struct pollfd *many = calloc(low.rlim_cur + 1, sizeof *many);
    for (rlim_t i = 0; many && i <= low.rlim_cur; i++) many[i].fd = -1;
    CHECK(many && setrlimit(RLIMIT_NOFILE, &low) == 0);
    int rc = rsm_intr_signal_wait_pollfd(many, (nfds_t)low.rlim_cur + 1, 0, &n);
    CHECK(setrlimit(RLIMIT_NOFILE, &old) == 0);
    CHECK_RC(rc, RSMERR_BAD_ARGS_ERRORS);
    free(many);

    CHECK_RC(rsm_memseg_release_pollfd(s.ex), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_release_pollfd(s.im), RSM_SUCCESS);
    close(p[0]);
    close(p[1]);
    local_close(&s);
}

/* 6. RSM_IMPLICIT_SIGPOST: a successful putv or getv posts one event to
 * the exporter, none while one is pending with NO_ACCUMULATE; from this
 * process and from an importer process. */
static void implicit_sigpost(void)
{
    struct local s = local_open();
    char data[64];
    memset(data, 'v', sizeof data);
    rsm_iovec_t iov;
    rsm_scat_gath_t sg;
    memset(&iov, 0, sizeof iov);
    memset(&sg, 0, sizeof sg);
    iov.io_type = RSM_VA_TYPE;
    iov.local.vaddr = data;
    iov.transfer_length = sizeof data;
    sg.remote_handle = s.im;
    sg.iovec = &iov;
    sg.io_request_count = 1;

    sg.flags = 0;
    CHECK_RC(rsm_memseg_import_putv(&sg), RSM_SUCCESS);
    CHECK_RC(rsm_intr_signal_wait(s.ex, 0), RSMERR_TIMEOUT);
    sg.flags = RSM_IMPLICIT_SIGPOST;
    CHECK_RC(rsm_memseg_import_putv(&sg), RSM_SUCCESS);
    CHECK(s.buf[0] == 'v');
    expect_events(s.ex, 1);
    CHECK_RC(rsm_memseg_import_getv(&sg), RSM_SUCCESS);
    expect_events(s.ex, 1);
    sg.flags = RSM_IMPLICIT_SIGPOST | RSM_SIGPOST_NO_ACCUMULATE;
    for (int i = 0; i < 3; i++) CHECK_RC(rsm_memseg_import_putv(&sg), RSM_SUCCESS);
    CHECK(sg.flags == (RSM_IMPLICIT_SIGPOST | RSM_SIGPOST_NO_ACCUMULATE));
    expect_events(s.ex, 1);

    /* An importer process puts twice with the implicit post, then exits. */
    pid_t pid = child();
    if (pid == 0) {
        rsm_memseg_import_handle_t im;
        CHECK_RC(rsm_memseg_import_connect(ctrl, 0, s.id, RSM_PERM_RDWR, &im), RSM_SUCCESS);
        memset(data, 'w', sizeof data);
        sg.remote_handle = im;
        sg.flags = RSM_IMPLICIT_SIGPOST;
        CHECK_RC(rsm_memseg_import_putv(&sg), RSM_SUCCESS);
        CHECK_RC(rsm_memseg_import_putv(&sg), RSM_SUCCESS);
        CHECK_RC(rsm_memseg_import_disconnect(im), RSM_SUCCESS);
        child_exit();
    }
    check_child(pid, "importer with implicit posts");
    expect_events(s.ex, 2);
    CHECK(s.buf[0] == 'w');
    local_close(&s);
}

/* 7. A signal whose handler was installed without SA_RESTART ends a
 * blocking wait with RSMERR_INTERRUPTED: in rsm_intr_signal_wait ('w'),
 * the same before the connection has its event channel ('c': the wait
 * sleeps until the channel comes), or in rsm_intr_signal_wait_pollfd
 * ('p'). Nothing is posted meanwhile. */
static volatile sig_atomic_t got_signal;
static void on_signal(int sig)
{
    (void)sig;
    got_signal = 1;
}

static void interrupted(char how)
{
    struct local s = local_open();
    int up[2];
    CHECK(pipe(up) == 0);
    pid_t pid = child();
    if (pid == 0) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_signal;
        sigemptyset(&sa.sa_mask);
        sa.sa_flags = 0; /* no SA_RESTART */
        CHECK(sigaction(SIGUSR1, &sa, NULL) == 0);
        rsm_memseg_import_handle_t im;
        struct pollfd pfd;
        int n = -1, rc;
        CHECK_RC(rsm_memseg_import_connect(ctrl, 0, s.id, RSM_PERM_RDWR, &im), RSM_SUCCESS);
        if (how != 'c') CHECK_RC(rsm_memseg_get_pollfd(im, &pfd), RSM_SUCCESS);
        say(up[1], 'r');
        if (how == 'w' || how == 'c')
            rc = rsm_intr_signal_wait(im, -1);
        else
            rc = rsm_intr_signal_wait_pollfd(&pfd, 1, 10000, &n);
        sigset_t usr1; /* no more interruptions from here on */
        sigemptyset(&usr1);
        sigaddset(&usr1, SIGUSR1);
        pthread_sigmask(SIG_BLOCK, &usr1, NULL);
        say(up[1], 'i');
        CHECK_RC(rc, RSMERR_INTERRUPTED);
        CHECK(got_signal);
        if (how == 'p') CHECK(n == 0);
        if (how != 'c') CHECK_RC(rsm_memseg_release_pollfd(im), RSM_SUCCESS);
        CHECK_RC(rsm_memseg_import_disconnect(im), RSM_SUCCESS);
        child_exit();
    }
    /* Signal until the child says its call returned: a signal that came
     * before it was asleep only costs another round. */
    close(up[1]);
    CHECK(hear(up[0]) == 'r');
    struct pollfd done = {up[0], POLLIN, 0};
    for (int i = 0; i < 100 && poll(&done, 1, 100) == 0; i++) kill(pid, SIGUSR1);
    CHECK(hear(up[0]) == 'i');
    check_child(pid, how == 'w'   ? "signal during wait"
                     : how == 'c' ? "signal during a wait for the event channel"
                                  : "signal during wait_pollfd");
    close(up[0]);
    local_close(&s);
}

/* 8. A forced disconnect (spec 5.2) by unpublish ('u'), destroy ('d') or
 * SIGKILL ('k') of the exporter process: a waiter asleep meanwhile wakes
 * with RSMERR_CONN_ABORTED; events posted before are delivered first;
 * posts to the vanished exporter succeed; wait_pollfd reports POLLHUP. */
static void forced(char cause)
{
    struct exporter e = start_exporter();
    rsm_memseg_import_handle_t im;
    CHECK_RC(rsm_memseg_import_connect(ctrl, 0, e.id, RSM_PERM_RDWR, &im), RSM_SUCCESS);
    CHECK(command(&e, 'P') && command(&e, 'P')); /* two events for us */

    /* A second importer connects after those posts and sleeps in a wait. */
    int up[2];
    CHECK(pipe(up) == 0);
    pid_t pid = child();
    if (pid == 0) {
        rsm_memseg_import_handle_t mine;
        CHECK_RC(rsm_memseg_import_connect(ctrl, 0, e.id, RSM_PERM_RDWR, &mine), RSM_SUCCESS);
        say(up[1], 'c');
        CHECK_RC(rsm_intr_signal_wait(mine, -1), RSMERR_CONN_ABORTED);
        CHECK_RC(rsm_intr_signal_post(mine, 0), RSM_SUCCESS);
        CHECK_RC(rsm_memseg_import_disconnect(mine), RSM_SUCCESS);
        child_exit();
    }
    close(up[1]);
    CHECK(hear(up[0]) == 'c');
    usleep(50000); /* most likely asleep in its wait by now */
    if (cause == 'k') {
        int status = 0;
        CHECK(kill(e.pid, SIGKILL) == 0);
        CHECK(waitpid(e.pid, &status, 0) == e.pid && WIFSIGNALED(status));
    } else {
        CHECK(command(&e, cause));
    }
    check_child(pid, cause == 'u'   ? "waiter, exporter unpublished"
                     : cause == 'd' ? "waiter, exporter destroyed"
                                    : "waiter, exporter killed");

    /* Ours: the two events first, then the end of the connection. */
    CHECK_RC(rsm_intr_signal_wait(im, 5000), RSM_SUCCESS);
    CHECK_RC(rsm_intr_signal_wait(im, 5000), RSM_SUCCESS);
    CHECK_RC(rsm_intr_signal_wait(im, 5000), RSMERR_CONN_ABORTED);
    CHECK_RC(rsm_intr_signal_post(im, 0), RSM_SUCCESS);
    CHECK_RC(rsm_intr_signal_post(im, RSM_SIGPOST_NO_ACCUMULATE), RSM_SUCCESS);
    struct pollfd pfd;
    int n = -1;
    CHECK_RC(rsm_memseg_get_pollfd(im, &pfd), RSM_SUCCESS);
    CHECK_RC(rsm_intr_signal_wait_pollfd(&pfd, 1, 5000, &n), RSM_SUCCESS);
    CHECK(n == 1 && pfd.revents == POLLHUP);
    CHECK_RC(rsm_memseg_release_pollfd(im), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_import_disconnect(im), RSM_SUCCESS);

    if (cause != 'k') {
        say(e.cmd, 'q');
        check_child(e.pid, "exporter");
    }
    close(e.cmd);
    close(e.ack);
    close(up[0]);
}

/* 9. An exporter asleep in a wait with one importer connected sleeps on
 * that connection alone; it still wakes for (a) a second importer that
 * connects and posts, and (b) after its only importer left without a
 * post, a new importer's post. The wait is untimed (a timed one would
 * find the event when its time is up and hide a lost wake-up); one not
 * over 10 s after the post is a lost wake-up, and the test ends. */
struct sleeper {
    pthread_t t;
    rsm_memseg_export_handle_t ex;
    int rc;
};

static void *sleeper_main(void *arg)
{
    struct sleeper *w = arg;
    w->rc = rsm_intr_signal_wait(w->ex, -1);
    return NULL;
}

static void sleeper_join(struct sleeper *w)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    t.tv_sec += 10;
    if (pthread_timedjoin_np(w->t, NULL, &t) != 0) {
        CHECK(!"the exporter slept through a post");
        exit(report("events"));
    }
    CHECK_RC(w->rc, RSM_SUCCESS);
}

static void sleeper_start(struct sleeper *w, rsm_memseg_export_handle_t ex)
{
    w->ex = ex;
    w->rc = -1;
    CHECK(pthread_create(&w->t, NULL, sleeper_main, w) == 0);
    usleep(50000); /* past any spin: asleep by now */
}

static void exporter_sleeps(void)
{
    char *buf = memory();
    rsm_memseg_export_handle_t ex;
    rsm_memseg_id_t id = next_id();
    CHECK_RC(rsm_memseg_export_create(ctrl, &ex, buf, len, 0), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_export_publish(ex, &id, NULL, 0), RSM_SUCCESS);
    /* Importers A, B, C, forked before any thread (see child()): each
     * connects on 's' (A at once), posts on 'p', leaves on 'q'. */
    int cmd[3][2], ack[3][2];
    pid_t pid[3];
    for (int k = 0; k < 3; k++) {
        CHECK(pipe(cmd[k]) == 0 && pipe(ack[k]) == 0);
        pid[k] = child();
        if (pid[k] == 0) {
            rsm_memseg_import_handle_t im = NULL;
            char c;
            while ((c = hear(cmd[k][0])) != 0 && c != 'q') {
                if (c == 's')
                    CHECK_RC(rsm_memseg_import_connect(ctrl, 0, id, RSM_PERM_RDWR, &im),
                             RSM_SUCCESS);
                if (c == 'p') CHECK_RC(rsm_intr_signal_post(im, 0), RSM_SUCCESS);
                say(ack[k][1], 'y');
            }
            CHECK_RC(rsm_memseg_import_disconnect(im), RSM_SUCCESS);
            child_exit();
        }
        close(cmd[k][0]);
        close(ack[k][1]);
    }
    struct sleeper w;
    say(cmd[0][1], 's');
    CHECK(hear(ack[0][0]) == 'y');

    /* (a) */
    sleeper_start(&w, ex);
    say(cmd[1][1], 's');
    say(cmd[1][1], 'p');
    CHECK(hear(ack[1][0]) == 'y' && hear(ack[1][0]) == 'y');
    sleeper_join(&w);
    say(cmd[1][1], 'q');
    check_child(pid[1], "importer B");

    /* (b) */
    sleeper_start(&w, ex);
    say(cmd[0][1], 'q');
    check_child(pid[0], "importer A");
    say(cmd[2][1], 's');
    say(cmd[2][1], 'p');
    CHECK(hear(ack[2][0]) == 'y' && hear(ack[2][0]) == 'y');
    sleeper_join(&w);
    say(cmd[2][1], 'q');
    check_child(pid[2], "importer C");

    expect_events(ex, 0);
    for (int k = 0; k < 3; k++) {
        close(cmd[k][1]);
        close(ack[k][0]);
    }
    CHECK_RC(rsm_memseg_export_destroy(ex), RSM_SUCCESS);
    munmap(buf, len);
}

/* 10. A forked child posts on the handles it inherited while its parent
 * posts on the same ones: every post of both counts. (The parent's posts
 * store its own count to a word only it writes; the child's go to a
 * second word by compare-and-swap, so neither overwrites the other's.) */
static void forked_posters(void)
{
    enum { N = 50000 };
    struct local s = local_open();
    /* The connection's event channel is made at its first signal; a child
     * shares it only if it existed before the fork (docs/compatibility.md). */
    CHECK_RC(rsm_intr_signal_post(s.im, 0), RSM_SUCCESS);
    CHECK_RC(rsm_intr_signal_wait(s.ex, 5000), RSM_SUCCESS);
    int go[2];
    CHECK(pipe(go) == 0);
    pid_t pid = child();
    if (pid == 0) {
        int bad = 0;
        close(go[1]);
        CHECK(hear(go[0]) == 'g');
        for (int i = 0; i < N; i++) {
            bad += rsm_intr_signal_post(s.im, 0) != RSM_SUCCESS;
            bad += rsm_intr_signal_post(s.ex, 0) != RSM_SUCCESS;
        }
        CHECK(bad == 0);
        child_exit();
    }
    close(go[0]);
    say(go[1], 'g');
    int bad = 0;
    for (int i = 0; i < N; i++) {
        bad += rsm_intr_signal_post(s.im, 0) != RSM_SUCCESS;
        bad += rsm_intr_signal_post(s.ex, 0) != RSM_SUCCESS;
    }
    CHECK(bad == 0);
    check_child(pid, "forked poster");
    close(go[1]);
    /* 2N on each side, then nothing. */
    int got_ex = 0, got_im = 0;
    while (rsm_intr_signal_wait(s.ex, 0) == RSM_SUCCESS) got_ex++;
    while (rsm_intr_signal_wait(s.im, 0) == RSM_SUCCESS) got_im++;
    CHECK(got_ex == 2 * N);
    CHECK(got_im == 2 * N);
    printf("events: parent and forked child posted %d each way; the exporter took %d, the importer %d\n", 2 * N,
           got_ex, got_im);
    local_close(&s);
}

/* 11. An importer can disturb only its own counters. A raw client (no
 * library) connects, fetches its event channel and becomes the exporter's
 * only one: an exporter wait sleeps on its `wakes` word. It then clears
 * SLEEPING in its own `up` flags. Another importer's first post must
 * still wake the exporter (its channel joining must not depend on a word
 * the raw client can write). */

struct waiter {
    rsm_memseg_export_handle_t ex;
    int rc;
};

static void *waiter_main(void *arg)
{
    struct waiter *w = arg;
    w->rc = rsm_intr_signal_wait(w->ex, 30000);
    return NULL;
}

/* A raw importer (no library) of segment `id`: a request (wire version
 * 3), its reply (token and secret), an attach on a second connection, the
 * channel on the first. Its page, mapped (MAP_FAILED if it failed); its
 * connection in *conn. */
static void *raw_channel(rsm_memseg_id_t id, int *conn)
{
    unsigned char b[64];
    int fds[8], nfds = 0;
    const char *fabric = getenv("RSM_FABRIC");
    *conn = segment_socket(fabric, id);
    CHECK(*conn >= 0);
    wire_request(b, WIRE_MAGIC, WIRE_VERSION, 0, RSM_PERM_READ);
    CHECK(send(*conn, b, 16, MSG_NOSIGNAL) == 16);
    CHECK(wire_recv(*conn, b, NULL, 0, &nfds, 0) == 40 && b[4] == 0);
    uint64_t token = wire_u64(b + 24), secret = wire_u64(b + 32);
    int second = segment_socket(fabric, id);
    CHECK(second >= 0);
    wire_attach(b, token, secret);
    CHECK(send(second, b, 24, MSG_NOSIGNAL) == 24);
    CHECK(wire_recv(second, b, NULL, 0, &nfds, 0) == 40 && b[4] == 0);
    close(second);
    CHECK(wire_recv(*conn, b, fds, 8, &nfds, 0) == 40 && nfds == 4); /* page, up, down x2 */
    void *page = nfds == 4 ? mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fds[0], 0) : MAP_FAILED;
    CHECK(page != MAP_FAILED);
    for (int i = 0; i < nfds && i < 8; i++) close(fds[i]);
    return page;
}

static void raw_importer_clears_sleeping(void)
{
    struct local s = local_open(); /* s.im: an importer with no channel yet */
    int conn;
    void *page = raw_channel(s.id, &conn);
    if (page == MAP_FAILED) {
        close(conn);
        local_close(&s);
        return;
    }
    /* The `up` counter's flags word (channel.rs: UP + FLAGS), SLEEPING bit. */
    uint64_t *flags = (uint64_t *)((char *)page + 64);
    struct waiter w = {s.ex, -1};
    pthread_t t;
    CHECK(pthread_create(&t, NULL, waiter_main, &w) == 0);
    int asleep = 0;
    for (int i = 0; i < 10000 && !asleep; i++) {
        asleep = (__atomic_load_n(flags, __ATOMIC_SEQ_CST) & 4) != 0;
        if (!asleep) usleep(1000);
    }
    CHECK(asleep);
    __atomic_fetch_and(flags, ~(uint64_t)4, __ATOMIC_SEQ_CST);
    /* The legitimate importer's first post: its channel joins, then the
     * event. The exporter must wake for it (it would sleep through it,
     * up to its 30 s timeout, if the join looked at the raw one's word). */
    CHECK_RC(rsm_intr_signal_post(s.im, 0), RSM_SUCCESS);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 10; /* a safety net, far beyond any wake-up */
    int joined = pthread_timedjoin_np(t, NULL, &until) == 0;
    CHECK(joined);
    if (!joined) {
        /* Release it: the raw importer posts on its own counter and wakes. */
        __atomic_fetch_add((uint64_t *)page, 1, __ATOMIC_SEQ_CST);
        __atomic_fetch_add((uint32_t *)((char *)page + 8), 1, __ATOMIC_SEQ_CST);
        syscall(SYS_futex, (uint32_t *)((char *)page + 8), 1 /* FUTEX_WAKE */, 1000, NULL, NULL, 0);
        pthread_join(t, NULL);
    }
    CHECK_RC(w.rc, RSM_SUCCESS);
    munmap(page, 4096);
    close(conn);
    local_close(&s);
}

/* 12. A look (timeout 0) or a timed wait on an import that has no event
 * channel yet, while its exporter is stopped: nothing can be pending (the
 * exporter sends the channel before its first post), so the answer is
 * RSMERR_TIMEOUT (at once, or when the wait's time is up), not a round
 * trip to a process that cannot answer (which waited out the connect
 * timeout and said RSMERR_REMOTE_NODE_UNREACHABLE). */
static void look_before_channel(void)
{
    struct exporter e = start_exporter();
    rsm_memseg_import_handle_t im;
    CHECK_RC(rsm_memseg_import_connect(ctrl, 0, e.id, RSM_PERM_RDWR, &im), RSM_SUCCESS);
    CHECK(kill(e.pid, SIGSTOP) == 0);
    CHECK_RC(rsm_intr_signal_wait(im, 0), RSMERR_TIMEOUT);
    /* A timed wait likewise ends with its own timeout: it sleeps until the
     * channel comes instead of asking for it. */
    CHECK_RC(rsm_intr_signal_wait(im, 200), RSMERR_TIMEOUT);
    CHECK(kill(e.pid, SIGCONT) == 0);
    /* Then the channel as usual: the exporter's post reaches us. */
    CHECK(command(&e, 'P'));
    CHECK_RC(rsm_intr_signal_wait(im, 5000), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_import_disconnect(im), RSM_SUCCESS);
    stop_exporter(&e, "stopped exporter");
}

/* 13. A post that cannot make an importer's event channel (the exporter
 * has no descriptor to spare) still succeeds for the others; that
 * importer is disconnected rather than left to miss events. */
static void channel_without_descriptors(void)
{
    struct exporter e = start_exporter();
    rsm_memseg_import_handle_t linked, unlinked;
    CHECK_RC(rsm_memseg_import_connect(ctrl, 0, e.id, RSM_PERM_RDWR, &linked), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_import_connect(ctrl, 0, e.id, RSM_PERM_RDWR, &unlinked), RSM_SUCCESS);
    /* The first has its channel (a post fetches it), the second none. */
    CHECK_RC(rsm_intr_signal_post(linked, 0), RSM_SUCCESS);
    CHECK(command(&e, 'F'));
    CHECK_RC(rsm_intr_signal_wait(linked, 5000), RSM_SUCCESS);
    CHECK_RC(rsm_intr_signal_wait(unlinked, 5000), RSMERR_CONN_ABORTED);
    /* Descriptors back: posts reach the one still connected. */
    CHECK(command(&e, 'P'));
    CHECK_RC(rsm_intr_signal_wait(linked, 5000), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_import_disconnect(unlinked), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_import_disconnect(linked), RSM_SUCCESS);
    stop_exporter(&e, "exporter");
}

/* 15. A malformed RSM_SPIN_US is a configuration error, as a malformed
 * config value is: every rsm_intr_signal_wait says RSMERR_BAD_CONF (and
 * RSM_DEBUG=1 says why) instead of spinning for a default. Posts and
 * rsm_intr_signal_wait_pollfd, which never spin, go on working, and no
 * event is lost. In a child: the bound is read once per process. */
static void malformed_spin(void)
{
    pid_t pid = child();
    if (pid == 0) {
        alarm(60);
        setenv("RSM_SPIN_US", "30us", 1);
        struct local s = local_open();
        struct pollfd fd;
        int n = -1;
        CHECK_RC(rsm_intr_signal_wait(NULL, 0), RSMERR_BAD_SEG_HNDL); /* the handle first */
        CHECK_RC(rsm_intr_signal_post(s.im, 0), RSM_SUCCESS);
        CHECK_RC(rsm_intr_signal_wait(s.ex, 0), RSMERR_BAD_CONF);
        CHECK_RC(rsm_intr_signal_wait(s.ex, 1000), RSMERR_BAD_CONF);
        CHECK_RC(rsm_intr_signal_wait(s.im, -1), RSMERR_BAD_CONF);
        CHECK_RC(rsm_memseg_get_pollfd(s.ex, &fd), RSM_SUCCESS);
        CHECK_RC(rsm_intr_signal_wait_pollfd(&fd, 1, 5000, &n), RSM_SUCCESS);
        CHECK(n == 1 && fd.revents == POLLRDNORM); /* the event posted above */
        CHECK_RC(rsm_intr_signal_wait_pollfd(&fd, 1, 0, &n), RSMERR_TIMEOUT);
        CHECK_RC(rsm_memseg_release_pollfd(s.ex), RSM_SUCCESS);
        local_close(&s);
        child_exit();
    }
    check_child(pid, "malformed RSM_SPIN_US (section 15)");
}

/* 14. A spinning waiter claims the next event before it comes (design
 * notes, "Signals"): with nothing pending it moves the consumed count one
 * ahead, so the next event is its own, and gives the claim back when it
 * stops spinning. No event may be lost, taken twice or held back by it:
 * (a) an exporter spinning with a claim on its only importer's channel
 * while that importer leaves and another connects and posts; (b) an
 * importer that posts and leaves at once; (c) an exporter that posts and
 * destroys at once; (d) a forked child spinning on its parent's import
 * (it must not claim: it dies holding the claim); (e) two threads
 * spinning on one import; (f) a poller (rsm_intr_signal_wait_pollfd)
 * beside a spinning waiter, on either side; (g) a raw importer scribbling
 * on the counter the exporter claims on. Run in a child that sets a
 * long spin before any wait (RSM_SPIN_US is read at a process's first
 * wait; children inherit what was read), so every wait here spins until
 * an event or its own timeout. An untimed wait that misses its event
 * spins on for the whole 1,000 s: it fails as a hang (timed_wait_join),
 * not by how long it took. */
#define CLAIM_SPIN_US 1000000000

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* One wait on a thread of its own, with its timeout (-1: none). */
struct timed_wait {
    pthread_t t;
    void *seg;
    int timeout, rc;
};

static void *timed_wait_main(void *arg)
{
    struct timed_wait *w = arg;
    w->rc = rsm_intr_signal_wait(w->seg, w->timeout);
    return NULL;
}

static void timed_wait_start(struct timed_wait *w, void *seg, int timeout)
{
    w->seg = seg;
    w->timeout = timeout;
    w->rc = -1;
    CHECK(pthread_create(&w->t, NULL, timed_wait_main, w) == 0);
}

/* Joins the wait; one that is not over 10 s after its own timeout (10 s
 * after it began, untimed) hangs, and the section ends there. */
static void timed_wait_join(struct timed_wait *w)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    t.tv_sec += w->timeout / 1000 + 10;
    if (pthread_timedjoin_np(w->t, NULL, &t) != 0) {
        CHECK(!"a wait hung");
        child_exit();
    }
}

/* (a) */
static void claim_importer_changes(void)
{
    char *buf = memory();
    rsm_memseg_export_handle_t ex;
    rsm_memseg_id_t id = next_id();
    CHECK_RC(rsm_memseg_export_create(ctrl, &ex, buf, len, 0), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_export_publish(ex, &id, NULL, 0), RSM_SUCCESS);
    /* Importer A connects and posts on 'g', posts again on 'p', leaves
     * on 'q'; B connects and posts on 's', leaves on 'q'. Both are forked
     * before A connects: a fork while this process's agent answers a
     * connect would hand the child the agent's objects of that moment,
     * which valgrind reports as lost there. */
    int cmd[2][2], ack[2][2];
    pid_t pid[2];
    char c;
    for (int k = 0; k < 2; k++) {
        CHECK(pipe(cmd[k]) == 0 && pipe(ack[k]) == 0);
        pid[k] = child();
        if (pid[k] == 0) {
            rsm_memseg_import_handle_t im;
            CHECK(hear(cmd[k][0]) == (k == 0 ? 'g' : 's'));
            CHECK_RC(rsm_memseg_import_connect(ctrl, 0, id, RSM_PERM_RDWR, &im), RSM_SUCCESS);
            do {
                CHECK_RC(rsm_intr_signal_post(im, 0), RSM_SUCCESS);
                say(ack[k][1], 'p');
            } while ((c = hear(cmd[k][0])) == 'p');
            CHECK(c == 'q');
            CHECK_RC(rsm_memseg_import_disconnect(im), RSM_SUCCESS);
            child_exit();
        }
        close(cmd[k][0]);
        close(ack[k][1]);
    }
    say(cmd[0][1], 'g');
    CHECK(hear(ack[0][0]) == 'p');
    CHECK_RC(rsm_intr_signal_wait(ex, 5000), RSM_SUCCESS); /* A's channel: the only one */
    /* A's post while the wait spins with a claim ends it then, not when
     * the spin is over. */
    struct timed_wait w;
    timed_wait_start(&w, ex, -1);
    usleep(50000);
    say(cmd[0][1], 'p');
    CHECK(hear(ack[0][0]) == 'p');
    timed_wait_join(&w);
    CHECK_RC(w.rc, RSM_SUCCESS);
    /* Now A leaves while the wait spins, and B comes and posts. */
    timed_wait_start(&w, ex, -1);
    usleep(50000); /* spinning, with a claim on A's channel */
    say(cmd[0][1], 'q');
    check_child(pid[0], "claims (a): importer A");
    usleep(20000); /* A's channel is gone */
    say(cmd[1][1], 's');
    CHECK(hear(ack[1][0]) == 'p');
    timed_wait_join(&w);
    CHECK_RC(w.rc, RSM_SUCCESS);
    /* On B's event: it gave up the claim when its channel list changed,
     * and looked at B's channel (else it spins on A's until it hangs). */
    CHECK_RC(rsm_intr_signal_wait(ex, 0), RSMERR_TIMEOUT);
    say(cmd[1][1], 'q');
    check_child(pid[1], "claims (a): importer B");
    for (int k = 0; k < 2; k++) {
        close(cmd[k][1]);
        close(ack[k][0]);
    }
    CHECK_RC(rsm_memseg_export_destroy(ex), RSM_SUCCESS);
    munmap(buf, len);
}

/* (b) Rounds with the post coming before the wait, as it starts to spin,
 * and well into its spin. The first round begins with a spinning wait that
 * times out: its claim must be given back, or the next event is lost. */
static void claim_last_post(void)
{
    char *buf = memory();
    rsm_memseg_export_handle_t ex;
    rsm_memseg_id_t id = next_id();
    CHECK_RC(rsm_memseg_export_create(ctrl, &ex, buf, len, 0), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_export_publish(ex, &id, NULL, 0), RSM_SUCCESS);
    for (int round = 0; round < 8; round++) {
        int go[2], ack[2];
        CHECK(pipe(go) == 0 && pipe(ack) == 0);
        pid_t pid = child();
        if (pid == 0) {
            rsm_memseg_import_handle_t im;
            CHECK_RC(rsm_memseg_import_connect(ctrl, 0, id, RSM_PERM_RDWR, &im), RSM_SUCCESS);
            CHECK_RC(rsm_intr_signal_post(im, 0), RSM_SUCCESS);
            say(ack[1], 'p');
            CHECK(hear(go[0]) == 'g');
            CHECK_RC(rsm_intr_signal_post(im, 0), RSM_SUCCESS);
            CHECK_RC(rsm_memseg_import_disconnect(im), RSM_SUCCESS);
            child_exit();
        }
        close(go[0]);
        close(ack[1]);
        CHECK(hear(ack[0]) == 'p');
        CHECK_RC(rsm_intr_signal_wait(ex, 5000), RSM_SUCCESS);
        if (round == 0) CHECK_RC(rsm_intr_signal_wait(ex, 30), RSMERR_TIMEOUT);
        struct timed_wait w;
        timed_wait_start(&w, ex, 3000);
        usleep((useconds_t)round * 3000);
        say(go[1], 'g');
        timed_wait_join(&w);
        CHECK_RC(w.rc, RSM_SUCCESS);
        check_child(pid, "claims (b): importer");
        CHECK_RC(rsm_intr_signal_wait(ex, 0), RSMERR_TIMEOUT);
        close(go[1]);
        close(ack[0]);
    }
    CHECK_RC(rsm_memseg_export_destroy(ex), RSM_SUCCESS);
    munmap(buf, len);
}

/* (c) The event first, then the end of the connection. */
static void claim_then_destroy(void)
{
    for (int round = 0; round < 5; round++) {
        struct exporter e = start_exporter();
        rsm_memseg_import_handle_t im;
        CHECK_RC(rsm_memseg_import_connect(ctrl, 0, e.id, RSM_PERM_RDWR, &im), RSM_SUCCESS);
        CHECK(command(&e, 'P'));
        CHECK_RC(rsm_intr_signal_wait(im, 5000), RSM_SUCCESS); /* the channel; nothing pending */
        struct timed_wait w;
        if (round == 0) { /* a post ends a spinning (claimed) wait at once */
            timed_wait_start(&w, im, -1);
            usleep(50000);
            CHECK(command(&e, 'P'));
            timed_wait_join(&w);
            CHECK_RC(w.rc, RSM_SUCCESS);
        }
        timed_wait_start(&w, im, 5000);
        usleep((useconds_t)round * 5000);
        CHECK(command(&e, 'D'));
        timed_wait_join(&w);
        CHECK_RC(w.rc, RSM_SUCCESS);
        CHECK_RC(rsm_intr_signal_wait(im, 5000), RSMERR_CONN_ABORTED);
        CHECK_RC(rsm_memseg_import_disconnect(im), RSM_SUCCESS);
        stop_exporter(&e, "claims (c): exporter");
    }
}

/* (d) A forked child's wait on its parent's import, killed while it
 * spins: the parent still gets the next event. */
static void claim_forked_child(void)
{
    struct exporter e = start_exporter();
    rsm_memseg_import_handle_t im;
    CHECK_RC(rsm_memseg_import_connect(ctrl, 0, e.id, RSM_PERM_RDWR, &im), RSM_SUCCESS);
    CHECK(command(&e, 'P'));
    CHECK_RC(rsm_intr_signal_wait(im, 5000), RSM_SUCCESS); /* the channel, before the fork */
    for (int round = 0; round < 3; round++) {
        pid_t pid = child();
        if (pid == 0) {
            rsm_intr_signal_wait(im, 10000);
            child_exit();
        }
        usleep(100000); /* spinning */
        int status = 0;
        CHECK(kill(pid, SIGKILL) == 0);
        CHECK(waitpid(pid, &status, 0) == pid && WIFSIGNALED(status));
        CHECK(command(&e, 'P'));
        CHECK_RC(rsm_intr_signal_wait(im, 3000), RSM_SUCCESS);
    }
    CHECK_RC(rsm_memseg_import_disconnect(im), RSM_SUCCESS);
    stop_exporter(&e, "claims (d): exporter");
}

/* Consumers on threads: each waits (or polls, with
 * rsm_intr_signal_wait_pollfd) with a short timeout until `claim_got`
 * reaches `claim_target`, or until it stopped moving for 5 s (an event
 * lost), or a call fails. Checked by the main thread. */
static int claim_got, claim_target;

struct consumer {
    pthread_t t;
    void *seg;
    struct pollfd pfd; /* fd -1: wait instead */
    /* If set: how many events the poster had posted (it counts here
     * before each post); a consumer never has more. */
    const uint32_t *posts;
    long mine, early;
    int failed_rc, stalled;
};

static void *consumer_main(void *arg)
{
    struct consumer *c = arg;
    int seen = -1;
    double since = now_s();
    for (;;) {
        int got = __atomic_load_n(&claim_got, __ATOMIC_SEQ_CST);
        if (got >= claim_target) break;
        if (got != seen) {
            seen = got;
            since = now_s();
        } else if (now_s() - since > 5) {
            c->stalled = 1;
            break;
        }
        int rc, n = 0;
        if (c->pfd.fd >= 0) {
            struct pollfd p = c->pfd;
            rc = rsm_intr_signal_wait_pollfd(&p, 1, 100, &n);
            if (rc == RSM_SUCCESS && (n != 1 || !(p.revents & POLLRDNORM))) rc = -1;
        } else {
            rc = rsm_intr_signal_wait(c->seg, 100);
        }
        if (rc == RSM_SUCCESS) {
            c->mine++;
            int now = __atomic_add_fetch(&claim_got, 1, __ATOMIC_SEQ_CST);
            if (c->posts && (uint32_t)now > __atomic_load_n(c->posts, __ATOMIC_ACQUIRE)) c->early++;
        } else if (rc != RSMERR_TIMEOUT) {
            c->failed_rc = rc;
            break;
        }
    }
    return NULL;
}

/* Runs `k` consumers until `target` events in all; every one taken once. */
static void consume(struct consumer *c, int k, int target)
{
    claim_target = target;
    for (int i = 0; i < k; i++) CHECK(pthread_create(&c[i].t, NULL, consumer_main, &c[i]) == 0);
    for (int i = 0; i < k; i++) {
        pthread_join(c[i].t, NULL);
        CHECK(c[i].failed_rc == 0);
        CHECK(!c[i].stalled);
        CHECK(c[i].early == 0);
    }
    CHECK(__atomic_load_n(&claim_got, __ATOMIC_SEQ_CST) == target);
}

/* Posts `n` events, a few microseconds apart, now and then idle for a
 * millisecond, and every 12,500 for longer than the consumers' waits (so
 * their claims are given back with others out), so waiters often spin
 * (claimed) with nothing pending and sometimes find several. Counts them
 * in `*count` first, if given. */
static void post_paced(void *seg, int n, uint32_t *count)
{
    int bad = 0;
    for (int i = 0; i < n; i++) {
        if (count) __atomic_store_n(count, (uint32_t)i + 1, __ATOMIC_RELEASE);
        bad += rsm_intr_signal_post(seg, 0) != RSM_SUCCESS;
        if (i % 12500 == 12499) {
            usleep(150000);
        } else if (i % 1000 == 999) {
            usleep(1000);
        } else {
            double until = now_s() + (i % 8) * 1e-6;
            while (now_s() < until) {}
        }
    }
    CHECK(bad == 0);
}

/* (e) Every event once, and none before it was posted. */
static void claim_two_waiters(void)
{
    enum { N = 100000 };
    char *buf = memory();
    rsm_memseg_export_handle_t ex;
    rsm_memseg_id_t id = next_id();
    CHECK_RC(rsm_memseg_export_create(ctrl, &ex, buf, len, 0), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_export_publish(ex, &id, NULL, 0), RSM_SUCCESS);
    int up[2];
    CHECK(pipe(up) == 0);
    pid_t pid = child();
    if (pid == 0) {
        rsm_memseg_import_handle_t im;
        CHECK_RC(rsm_memseg_import_connect(ctrl, 0, id, RSM_PERM_RDWR, &im), RSM_SUCCESS);
        say(up[1], 'c');
        CHECK_RC(rsm_intr_signal_wait(im, 5000), RSM_SUCCESS); /* the channel */
        /* The exporter counts its posts in the segment's first word. */
        uint32_t *posts = NULL;
        CHECK_RC(rsm_memseg_import_map(im, (void **)&posts, RSM_MAP_NONE, RSM_PERM_READ, 0, len),
                 RSM_SUCCESS);
        struct consumer c[2] = {{.seg = im, .pfd = {-1, 0, 0}, .posts = posts},
                                {.seg = im, .pfd = {-1, 0, 0}, .posts = posts}};
        say(up[1], 'r');
        consume(c, 2, N);
        CHECK_RC(rsm_intr_signal_wait(im, 300), RSMERR_TIMEOUT);
        printf("events: two threads spinning on one import took %ld + %ld of %d events\n", c[0].mine,
               c[1].mine, N);
        CHECK_RC(rsm_memseg_import_unmap(im), RSM_SUCCESS);
        CHECK_RC(rsm_memseg_import_disconnect(im), RSM_SUCCESS);
        child_exit();
    }
    close(up[1]);
    CHECK(hear(up[0]) == 'c');
    CHECK_RC(rsm_intr_signal_post(ex, 0), RSM_SUCCESS);
    CHECK(hear(up[0]) == 'r');
    post_paced(ex, N, (uint32_t *)buf);
    check_child(pid, "claims (e): two waiters");
    close(up[0]);
    CHECK_RC(rsm_memseg_export_destroy(ex), RSM_SUCCESS);
    munmap(buf, len);
}

/* (f) A waiter and a poller take `n` events together, then the poller
 * alone `m` more, one at a time: it must wake for each, so the waiter's
 * claims (which settle the doorbell as the last take does) must not have
 * left it silent for later posts. Then nothing is pending and the pollfd
 * is not readable. `to` and `from` talk to the process that posts. */
static void waiter_and_poller(void *seg, int to, int from, int n, int m)
{
    struct consumer c[2] = {{.seg = seg, .pfd = {-1, 0, 0}}, {.seg = seg}};
    CHECK_RC(rsm_memseg_get_pollfd(seg, &c[1].pfd), RSM_SUCCESS);
    struct pollfd pfd = c[1].pfd;
    claim_got = 0;
    say(to, 'g');
    consume(c, 2, n);
    say(to, 'h');
    consume(&c[1], 1, n + m);
    CHECK(hear(from) == 'd');
    printf("events: a spinning waiter took %ld, a poller %ld (%d alone)\n", c[0].mine, c[1].mine, m);
    int k = -1;
    for (int i = 0; i < 2; i++) { /* the first may find a stale ring */
        CHECK_RC(rsm_intr_signal_wait_pollfd(&pfd, 1, 100, &k), RSMERR_TIMEOUT);
        CHECK(k == 0);
    }
    CHECK(poll(&pfd, 1, 0) == 0);
    CHECK_RC(rsm_intr_signal_wait(seg, 0), RSMERR_TIMEOUT);
    CHECK_RC(rsm_memseg_release_pollfd(seg), RSM_SUCCESS);
}

/* Posts for waiter_and_poller: `n` paced on 'g', `m` one by one on 'h'. */
static void post_for_poller(void *seg, int to, int from, int n, int m)
{
    CHECK(hear(from) == 'g');
    post_paced(seg, n, NULL);
    CHECK(hear(from) == 'h');
    for (int i = 0; i < m; i++) {
        CHECK_RC(rsm_intr_signal_post(seg, 0), RSM_SUCCESS);
        usleep(500);
    }
    say(to, 'd');
}

/* The exporter consumes ('x') or the importer does ('i'). */
static void claim_with_poller(char side)
{
    enum { N = 50000, M = 200 };
    char *buf = memory();
    rsm_memseg_export_handle_t ex;
    rsm_memseg_id_t id = next_id();
    CHECK_RC(rsm_memseg_export_create(ctrl, &ex, buf, len, 0), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_export_publish(ex, &id, NULL, 0), RSM_SUCCESS);
    int up[2], down[2];
    CHECK(duct(up) == 0 && duct(down) == 0);
    pid_t pid = child();
    if (pid == 0) {
        rsm_memseg_import_handle_t im;
        CHECK_RC(rsm_memseg_import_connect(ctrl, 0, id, RSM_PERM_RDWR, &im), RSM_SUCCESS);
        if (side == 'x') {
            CHECK_RC(rsm_intr_signal_post(im, 0), RSM_SUCCESS); /* the channel */
            post_for_poller(im, up[1], down[0], N, M);
        } else {
            say(up[1], 'c');
            CHECK_RC(rsm_intr_signal_wait(im, 5000), RSM_SUCCESS); /* the channel */
            waiter_and_poller(im, up[1], down[0], N, M);
        }
        CHECK(hear(down[0]) == 'q');
        CHECK_RC(rsm_memseg_import_disconnect(im), RSM_SUCCESS);
        child_exit();
    }
    if (side == 'x') {
        CHECK_RC(rsm_intr_signal_wait(ex, 5000), RSM_SUCCESS);
        waiter_and_poller(ex, down[1], up[0], N, M);
    } else {
        CHECK(hear(up[0]) == 'c');
        CHECK_RC(rsm_intr_signal_post(ex, 0), RSM_SUCCESS);
        post_for_poller(ex, down[1], up[0], N, M);
    }
    say(down[1], 'q');
    check_child(pid, side == 'x' ? "claims (f): importer posting" : "claims (f): importer consuming");
    for (int k = 0; k < 2; k++) {
        close(up[k]);
        close(down[k]);
    }
    CHECK_RC(rsm_memseg_export_destroy(ex), RSM_SUCCESS);
    munmap(buf, len);
}

/* (g) A raw importer, the exporter's only one, scribbles on the words of
 * its `up` counter (channel.rs: posted, wakes, flags, extra, consumed)
 * while the exporter's waits spin with claims on it: each wait ends (an
 * event or its timeout; garbage counts only look like posts), none hangs.
 * Then a legitimate importer's post arrives once the raw one has left. */
static int scribbling;

static void *scribbler_main(void *page)
{
    volatile uint64_t *w = page; /* posted 0, wakes 1, flags 8, extra 9, consumed 16 */
    uint64_t x = 88172645463325252ull;
    while (__atomic_load_n(&scribbling, __ATOMIC_SEQ_CST)) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        uint64_t c = __atomic_load_n(&w[16], __ATOMIC_SEQ_CST);
        uint64_t e = __atomic_load_n(&w[9], __ATOMIC_SEQ_CST);
        switch (x % 10) {
        case 0: __atomic_store_n(&w[0], c - e + 1, __ATOMIC_SEQ_CST); break; /* one pending */
        case 1: __atomic_store_n(&w[0], c - e - 1, __ATOMIC_SEQ_CST); break; /* behind */
        case 2: __atomic_store_n(&w[16], c + 1, __ATOMIC_SEQ_CST); break;     /* consumed on */
        case 3: __atomic_store_n(&w[16], c - 1, __ATOMIC_SEQ_CST); break;     /* consumed back */
        case 4: __atomic_store_n(&w[16], x >> 8, __ATOMIC_SEQ_CST); break;    /* anything */
        case 5: __atomic_store_n(&w[8], x >> 61, __ATOMIC_SEQ_CST); break;    /* flags */
        case 6: __atomic_fetch_add((uint32_t *)&w[1], 1, __ATOMIC_SEQ_CST); break;
        default: __atomic_store_n(&w[0], c - e, __ATOMIC_SEQ_CST); break; /* nothing pending */
        }
        if (x % 1024 == 7) {
            usleep(30000); /* quiet a while: the waits time out, giving claims back */
        } else {
            double until = now_s() + (double)(x >> 40 & 31) * 1e-6;
            while (now_s() < until) {}
        }
    }
    /* Then it waits for a claim (consumed one ahead of the posts), moves
     * consumed back behind it, and keeps still: the claimer cannot give
     * its claim back, and must not wait for the word to change. */
    __atomic_store_n(&w[8], 0, __ATOMIC_SEQ_CST);
    __atomic_store_n(&w[9], 0, __ATOMIC_SEQ_CST);
    __atomic_store_n(&w[16], 100, __ATOMIC_SEQ_CST);
    __atomic_store_n(&w[0], 100, __ATOMIC_SEQ_CST); /* nothing pending */
    /* The waits go on until it parks: no deadline but a hang bound (under
     * valgrind, which runs one thread at a time, a claim can take long to
     * show up). */
    int parked = 0;
    for (double end = now_s() + 30; now_s() < end && !parked;) {
        uint64_t c = __atomic_load_n(&w[16], __ATOMIC_SEQ_CST);
        uint64_t total = __atomic_load_n(&w[0], __ATOMIC_SEQ_CST) + __atomic_load_n(&w[9], __ATOMIC_SEQ_CST);
        if (c == total + 1 &&
            __atomic_compare_exchange_n(&w[16], &c, c - 3, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
            parked = 1;
            usleep(1200000);
        }
    }
    /* Quiet again: nothing pending, nothing rung. */
    for (int i = 0; i < 32; i++) __atomic_store_n(&w[i], 0, __ATOMIC_SEQ_CST);
    __atomic_store_n(&scribbling, -1, __ATOMIC_SEQ_CST);
    return (void *)(intptr_t)parked;
}

static void claim_hostile(void)
{
    struct local s = local_open(); /* s.im: no channel yet */
    int conn;
    void *page = raw_channel(s.id, &conn);
    if (page == MAP_FAILED) {
        close(conn);
        local_close(&s);
        return;
    }
    pthread_t t;
    scribbling = 1;
    CHECK(pthread_create(&t, NULL, scribbler_main, page) == 0);
    int waits = 0, got = 0, bad = 0;
    for (double end = now_s() + 1; __atomic_load_n(&scribbling, __ATOMIC_SEQ_CST) >= 0; waits++) {
        if (now_s() > end) __atomic_store_n(&scribbling, 0, __ATOMIC_SEQ_CST); /* then still */
        int rc = rsm_intr_signal_wait(s.ex, 20);
        got += rc == RSM_SUCCESS;
        bad += rc != RSM_SUCCESS && rc != RSMERR_TIMEOUT;
    }
    void *parked = NULL;
    pthread_join(t, &parked);
    CHECK(parked); /* it moved a claim's count back */
    CHECK(bad == 0 && waits > 0); /* a wait that hangs: the section's alarm */
    printf("events: a raw importer scribbling on its counter: %d waits, %d ended by garbage, %d timed out\n",
           waits, got, waits - got - bad);
    munmap(page, 4096);
    close(conn);
    /* Whatever it left pending moved to the exporter when it left. */
    while (rsm_intr_signal_wait(s.ex, 100) == RSM_SUCCESS) {}
    CHECK_RC(rsm_intr_signal_post(s.im, 0), RSM_SUCCESS);
    CHECK_RC(rsm_intr_signal_wait(s.ex, 5000), RSM_SUCCESS);
    CHECK_RC(rsm_intr_signal_wait(s.ex, 0), RSMERR_TIMEOUT);
    local_close(&s);
}

static void claims(void)
{
    pid_t pid = child();
    if (pid == 0) {
        char spin[16];
        alarm(120);
        snprintf(spin, sizeof spin, "%d", CLAIM_SPIN_US);
        setenv("RSM_SPIN_US", spin, 1);
        claim_importer_changes();
        claim_last_post();
        claim_then_destroy();
        claim_forked_child();
        claim_two_waiters();
        claim_with_poller('x');
        claim_with_poller('i');
        claim_hostile();
        child_exit();
    }
    check_child(pid, "claims (section 14)");
}

int main(void)
{
    len = (size_t)sysconf(_SC_PAGESIZE);
    char fabric[64];
    snprintf(fabric, sizeof fabric, "ctest-events-%d", (int)getpid());
    setenv("RSM_FABRIC", fabric, 1);
    unsetenv("RSM_SPIN_US"); /* the default spin, unless a section sets it */
    alarm(120); /* never hang */
    signal(SIGPIPE, SIG_IGN); /* a dead child fails a check, not the test */
    CHECK_RC(rsm_get_controller("shm0", &ctrl), RSM_SUCCESS);

    /* First, while no wait has read the spin bound in this process: a
     * child forked later inherits the value this process read. */
    claims();
    malformed_spin();
    both_directions(1);
    both_directions(0);
    bad_handles();
    counting();
    poll_and_epoll();
    wait_pollfd();
    implicit_sigpost();
    interrupted('w');
    interrupted('c');
    interrupted('p');
    forced('u');
    forced('d');
    forced('k');
    exporter_sleeps();
    forked_posters();
    raw_importer_clears_sleeping();
    look_before_channel();
    channel_without_descriptors();

    CHECK_RC(rsm_release_controller(ctrl), RSM_SUCCESS);
    return report("events");
}
