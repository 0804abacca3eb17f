/*
 * Events under load (spec 4.9): exact counts with several threads in
 * several processes posting and waiting at once, and no deadlock.
 *
 * Phase 1, importers -> exporter: two importer processes (one with
 * RSM_SPIN_US=0, one on another node) post N events on their import
 * handles from two threads each (N/4 per thread). The exporter consumes
 * them with two threads, one in rsm_intr_signal_wait, one in
 * rsm_intr_signal_wait_pollfd on the export pollfd plus a pipe; together
 * they must consume exactly N, and then nothing more is pending.
 *
 * Phase 2, exporter -> importers: the exporter posts N/4 events on its
 * export handle from two threads; each importer consumes with two threads
 * (wait and wait_pollfd on the import pollfd) and must count exactly N/4.
 *
 * The consumers start (and the poller blocks) before the first post. The
 * waiting thread stops at N - N/20 consumed (a spinning waiter could
 * otherwise take everything and leave the poller nothing, legitimately),
 * so the polling thread must take at least the last N/20 - 1 by itself,
 * from a level-triggered pollfd: a pollfd that never becomes readable, or
 * a poller that is not woken when it does, shows up as a stall.
 *
 * Every wait is bounded (SLICE_MS for a wait, STALL_MS for a wait_pollfd;
 * STALL_MS without progress ends the phase), so a lost event or wake-up
 * shows up as a failed count, not a hang; events still pending then are
 * reported as stranded. An alarm catches a deadlock. The figures line
 * gives each phase's wall time, which includes the 200 ms wait that checks
 * nothing more arrives. argv[1] scales N (default 1,000,000).
 */
#define _GNU_SOURCE
#include <rsmapi.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <time.h>
#include "common.h"

#define STALL_MS 10000 /* no event consumed for this long: the rest are lost */
#define SLICE_MS 50    /* the bound of each rsm_intr_signal_wait */
#define POLL_MS STALL_MS /* the bound of each rsm_intr_signal_wait_pollfd */
#define WATCHDOG 120   /* seconds, for the whole test */

static long n_posts = 1000000; /* phase 1; phase 2 posts n_posts / 4 */

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec * 1e-6;
}

static rsm_memseg_id_t next_id(void)
{
    static unsigned k;
    return 0x400000 + (rsm_memseg_id_t)(getpid() % 100000) * 16 + k++;
}

/* ---- What the children report to the parent (one write on a pipe). ---- */

struct figures {
    long posted;       /* successful posts */
    long by_wait;      /* consumed by the rsm_intr_signal_wait thread */
    long by_pollfd;    /* consumed by the rsm_intr_signal_wait_pollfd thread */
    long late;         /* still consumable after the threads ended */
    long stalled;      /* STALL_MS passed without an event */
    long errors;       /* unexpected return codes, revents or numfds */
};

static void send_figures(int fd, const struct figures *f)
{
    CHECK(write(fd, f, sizeof *f) == (ssize_t)sizeof *f);
}

static int get_figures(int fd, struct figures *f)
{
    memset(f, 0, sizeof *f);
    return read(fd, f, sizeof *f) == (ssize_t)sizeof *f;
}

/* ---- Pipes between the parent and its children. ---- */

static int parent_fds[16], n_parent_fds;

static void say(int fd, char c) { CHECK(write(fd, &c, 1) == 1); }

struct proc {
    pid_t pid;
    int cmd, ack; /* the parent's ends */
};

/* Forks a child with clean counters, none of the parent's pipe ends and
 * its own watchdog; `*in`/`*out` are the child's ends. 0 in the child. */
static struct proc spawn(int *in, int *out)
{
    int cmd[2], ack[2];
    if (pipe(cmd) || pipe(ack)) abort();
    fflush(stdout);
    fflush(stderr);
    struct proc p = {fork(), cmd[1], ack[0]};
    if (p.pid < 0) abort();
    if (p.pid == 0) {
        passed = failed = 0;
        signal(SIGPIPE, SIG_DFL);
        signal(SIGALRM, SIG_DFL);
        for (int i = 0; i < n_parent_fds; i++) close(parent_fds[i]);
        close(cmd[1]);
        close(ack[0]);
        *in = cmd[0];
        *out = ack[1];
        alarm(WATCHDOG - 10); /* before the parent's, so the parent reports */
        return p;
    }
    close(cmd[0]);
    close(ack[1]);
    parent_fds[n_parent_fds++] = cmd[1];
    parent_fds[n_parent_fds++] = ack[0];
    return p;
}

/* ---- Posting threads. ---- */

struct poster {
    pthread_t t;
    void *seg;
    long count, ok, bad;
    int first_bad;
};

static void *post_thread(void *arg)
{
    struct poster *p = arg;
    for (long i = 0; i < p->count; i++) {
        int rc = rsm_intr_signal_post(p->seg, 0);
        if (rc == RSM_SUCCESS) {
            p->ok++;
        } else if (p->bad++ == 0) {
            p->first_bad = rc;
        }
    }
    return NULL;
}

/* `threads` threads post `each` events on `seg`; adds to f->posted. */
static void post_all(void *seg, int threads, long each, struct figures *f)
{
    struct poster p[4];
    memset(p, 0, sizeof p);
    for (int i = 0; i < threads; i++) {
        p[i].seg = seg;
        p[i].count = each;
        CHECK(pthread_create(&p[i].t, NULL, post_thread, &p[i]) == 0);
    }
    for (int i = 0; i < threads; i++) {
        CHECK(pthread_join(p[i].t, NULL) == 0);
        f->posted += p[i].ok;
        if (p[i].bad) {
            f->errors += p[i].bad;
            fprintf(stderr, "eventload: %ld posts failed, the first with %d\n", p[i].bad,
                    p[i].first_bad);
        }
    }
    CHECK(f->posted == threads * each);
}

/* ---- Consuming threads: one waits, one polls, until `want` together. ---- */

struct consumer {
    pthread_t t;
    long count, errors;
    int first_error;
};

struct drain {
    void *seg;
    struct pollfd pfd; /* the segment's, from rsm_memseg_get_pollfd */
    long want;
    long waiter_limit; /* the waiting thread stops when `got` reaches it */
    long got;     /* atomic: consumed by both threads */
    int stop;     /* atomic */
    int stalled;  /* atomic */
    int wake[2];  /* a pipe: written once at stop, wakes the poller */
    struct consumer waiter, poller;
};

static void stop_all(struct drain *d)
{
    if (!__atomic_exchange_n(&d->stop, 1, __ATOMIC_SEQ_CST)) {
        char c = 's';
        if (write(d->wake[1], &c, 1) != 1) abort();
    }
}

static void consumed(struct drain *d, struct consumer *c)
{
    c->count++;
    if (__atomic_add_fetch(&d->got, 1, __ATOMIC_SEQ_CST) == d->want) stop_all(d);
}

static void note_error(struct consumer *c, int what)
{
    if (c->errors++ == 0) c->first_error = what;
}

/* Ends the phase when nobody consumed anything for STALL_MS. */
static void watch(struct drain *d, long *seen, double *since)
{
    long got = __atomic_load_n(&d->got, __ATOMIC_SEQ_CST);
    double t = now_ms();
    if (got != *seen) {
        *seen = got;
        *since = t;
    } else if (t - *since > STALL_MS) {
        __atomic_store_n(&d->stalled, 1, __ATOMIC_SEQ_CST);
        stop_all(d);
    }
}

static void *wait_thread(void *arg)
{
    struct drain *d = arg;
    struct consumer *c = &d->waiter;
    long seen = -1;
    double since = now_ms();
    while (!__atomic_load_n(&d->stop, __ATOMIC_SEQ_CST) &&
           __atomic_load_n(&d->got, __ATOMIC_SEQ_CST) < d->waiter_limit) {
        int rc = rsm_intr_signal_wait(d->seg, SLICE_MS);
        if (rc == RSM_SUCCESS) {
            consumed(d, c);
        } else if (rc != RSMERR_TIMEOUT) {
            note_error(c, rc);
            stop_all(d);
        }
        watch(d, &seen, &since);
    }
    return NULL;
}

static void *poll_thread(void *arg)
{
    struct drain *d = arg;
    struct consumer *c = &d->poller;
    struct pollfd fds[2] = {d->pfd, {d->wake[0], POLLIN, 0}};
    long seen = -1;
    double since = now_ms();
    while (!__atomic_load_n(&d->stop, __ATOMIC_SEQ_CST)) {
        int n = -1;
        fds[0].revents = fds[1].revents = -1;
        double t0 = now_ms();
        int rc = rsm_intr_signal_wait_pollfd(fds, 2, POLL_MS, &n);
        if (rc == RSM_SUCCESS) {
            if (n != (fds[0].revents != 0) + (fds[1].revents != 0)) note_error(c, 1000 + n);
            /* Ready at its timeout only: nothing woke the poller when the
             * events came (STALL_MS without an event cannot happen here). */
            if (fds[0].revents && now_ms() - t0 >= POLL_MS - 100) note_error(c, 4000);
            if (fds[0].revents == POLLRDNORM) consumed(d, c);
            else if (fds[0].revents != 0) note_error(c, 2000 + fds[0].revents);
        } else if (rc == RSMERR_TIMEOUT) {
            if (n != 0) note_error(c, 3000 + n); /* timed out, or lost the race: none */
        } else {
            note_error(c, rc);
            stop_all(d);
        }
        watch(d, &seen, &since);
    }
    return NULL;
}

/* Consumes `want` events of `seg` with a waiting and a polling thread. */
static void drain_start(struct drain *d, void *seg, struct pollfd pfd, long want)
{
    memset(d, 0, sizeof *d);
    d->seg = seg;
    d->pfd = pfd;
    d->want = want;
    d->waiter_limit = want - (want / 20 > 2 ? want / 20 : 2);
    CHECK(pipe(d->wake) == 0);
    CHECK(pthread_create(&d->waiter.t, NULL, wait_thread, d) == 0);
    CHECK(pthread_create(&d->poller.t, NULL, poll_thread, d) == 0);
}

/* Joins the threads, then (once every post is known to be made) checks
 * that nothing more is pending, with both kinds of wait. */
static void drain_finish(struct drain *d, int cmd, struct figures *f)
{
    CHECK(pthread_join(d->waiter.t, NULL) == 0);
    CHECK(pthread_join(d->poller.t, NULL) == 0);
    CHECK(hear(cmd) == 'd'); /* all posts made */
    f->by_wait = d->waiter.count;
    f->by_pollfd = d->poller.count;
    f->stalled = d->stalled;
    f->errors = d->waiter.errors + d->poller.errors;
    if (d->waiter.errors)
        fprintf(stderr, "eventload: rsm_intr_signal_wait: %ld errors, the first %d\n",
                d->waiter.errors, d->waiter.first_error);
    if (d->poller.errors)
        fprintf(stderr, "eventload: rsm_intr_signal_wait_pollfd: %ld errors, the first %d "
                "(1000+n: bad *numfdsp, 2000+r: bad revents, 3000+n: *numfdsp on a timeout, "
                "4000: an event only at the timeout, the wake-up was lost)\n",
                d->poller.errors, d->poller.first_error);
    CHECK(d->waiter.errors == 0 && d->poller.errors == 0);
    CHECK(!d->stalled);
    CHECK(d->got == d->want);

    /* Nothing beyond the count: not now, not a little later. */
    long late = 0;
    while (late < 2000000 && rsm_intr_signal_wait(d->seg, 0) == RSM_SUCCESS) late++;
    CHECK_RC(rsm_intr_signal_wait(d->seg, 200), RSMERR_TIMEOUT);
    struct pollfd fds[1] = {d->pfd};
    int n = -1;
    CHECK_RC(rsm_intr_signal_wait_pollfd(fds, 1, 0, &n), RSMERR_TIMEOUT);
    CHECK(n == 0 && fds[0].revents == 0);
    f->late = late;
    CHECK(late == 0);
    close(d->wake[0]);
    close(d->wake[1]);
}

/* ---- The processes. ---- */

/* The exporter (node 0): publishes, then phase 1 on 'c' (consume N),
 * phase 2 on 'g' (post N/4 from two threads); at end of file it
 * destroys its segment. */
static void exporter(int cmd, int ack)
{
    setenv("RSM_NODE_ID", "0", 1);
    setenv("RSM_SPIN_US", "20", 1);
    size_t len = (size_t)sysconf(_SC_PAGESIZE);
    char *buf = valloc(len);
    if (!buf) abort();
    memset(buf, 'e', len);
    rsmapi_controller_handle_t c = NULL;
    rsm_memseg_export_handle_t seg = NULL;
    rsm_memseg_id_t id = next_id();
    struct pollfd pfd = {-1, 0, 0};
    CHECK_RC(rsm_get_controller("shm0", &c), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_export_create(c, &seg, buf, len, 0), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_export_publish(seg, &id, NULL, 0), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_get_pollfd(seg, &pfd), RSM_SUCCESS);
    CHECK(pfd.fd >= 0 && pfd.events == POLLRDNORM);
    if (failed) child_exit();
    CHECK(write(ack, &id, sizeof id) == (ssize_t)sizeof id);

    struct figures f;
    memset(&f, 0, sizeof f);
    struct drain d;
    CHECK(hear(cmd) == 'c');
    drain_start(&d, seg, pfd, n_posts);
    usleep(20000); /* the poller is asleep in wait_pollfd */
    say(ack, 's');
    drain_finish(&d, cmd, &f);
    send_figures(ack, &f);

    memset(&f, 0, sizeof f);
    CHECK(hear(cmd) == 'g');
    post_all(seg, 2, n_posts / 8, &f);
    send_figures(ack, &f);

    char b;
    while (read(cmd, &b, 1) == 1) {
    }
    CHECK_RC(rsm_memseg_release_pollfd(seg), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_export_destroy(seg), RSM_SUCCESS);
    CHECK_RC(rsm_release_controller(c), RSM_SUCCESS);
    free(buf);
    child_exit();
}

/* Importer k connects to the exporter's segment; phase 1 on '1' (post
 * N/4 from each of two threads), phase 2 on '2' (consume N/4). */
static void importer(int k, rsm_memseg_id_t id, int cmd, int ack)
{
    setenv("RSM_NODE_ID", k == 0 ? "0" : "1", 1);
    setenv("RSM_SPIN_US", k == 0 ? "0" : "200", 1);
    rsmapi_controller_handle_t c = NULL;
    rsm_memseg_import_handle_t im = NULL;
    struct pollfd pfd = {-1, 0, 0};
    CHECK_RC(rsm_get_controller("shm0", &c), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_import_connect(c, 0, id, RSM_PERM_RDWR, &im), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_get_pollfd(im, &pfd), RSM_SUCCESS);
    CHECK(pfd.fd >= 0 && pfd.events == POLLRDNORM);
    say(ack, failed ? 'n' : 'r');
    if (failed) child_exit();

    struct figures f;
    memset(&f, 0, sizeof f);
    CHECK(hear(cmd) == '1');
    post_all(im, 2, n_posts / 4, &f);
    send_figures(ack, &f);

    memset(&f, 0, sizeof f);
    struct drain d;
    CHECK(hear(cmd) == '2');
    drain_start(&d, im, pfd, n_posts / 4);
    usleep(20000); /* the poller is asleep in wait_pollfd */
    say(ack, 's');
    drain_finish(&d, cmd, &f);
    send_figures(ack, &f);

    CHECK_RC(rsm_memseg_release_pollfd(im), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_import_disconnect(im), RSM_SUCCESS);
    CHECK_RC(rsm_release_controller(c), RSM_SUCCESS);
    child_exit();
}

/* Posts against what one process consumed: by its threads, then (late)
 * by the final check. Late events after a stall were stranded: pending,
 * but no consumer was woken for them. */
struct tally {
    long consumed, lost, dup, stranded;
};

static struct tally tally(long posted, struct figures f)
{
    struct tally t = {f.by_wait + f.by_pollfd, 0, 0, 0};
    long short_by = posted > t.consumed ? posted - t.consumed : 0;
    t.stranded = f.late < short_by ? f.late : short_by;
    long all = t.consumed + f.late;
    t.lost = posted > all ? posted - all : 0;
    t.dup = all > posted ? all - posted : 0;
    return t;
}

static void watchdog(int sig)
{
    static const char msg[] = "eventload: watchdog expired: deadlock or hang, test failed\n";
    (void)sig;
    if (write(STDERR_FILENO, msg, sizeof msg - 1) < 0) _exit(2);
    _exit(1);
}

int main(int argc, char **argv)
{
    if (argc > 1) {
        n_posts = strtol(argv[1], NULL, 10) / 8 * 8; /* 2 x 2 x 2 divide it */
        if (n_posts < 8000) n_posts = 8000; /* enough for every thread to take a share */
    }
    char fabric[64];
    snprintf(fabric, sizeof fabric, "ctest-eventload-%d", (int)getpid());
    setenv("RSM_FABRIC", fabric, 1);
    signal(SIGALRM, watchdog); /* a deadlock fails the test instead of hanging it */
    alarm(WATCHDOG);
    signal(SIGPIPE, SIG_IGN); /* a dead child is a failed check, not our end */
    /* This process never calls the library: each child starts it fresh,
     * with its own RSM_NODE_ID and RSM_SPIN_US. */

    int in, out;
    struct proc e = spawn(&in, &out);
    if (e.pid == 0) exporter(in, out);
    rsm_memseg_id_t id = 0;
    CHECK(read(e.ack, &id, sizeof id) == (ssize_t)sizeof id);

    struct proc imp[2];
    for (int k = 0; k < 2; k++) {
        imp[k] = spawn(&in, &out);
        if (imp[k].pid == 0) importer(k, id, in, out);
    }
    for (int k = 0; k < 2; k++) CHECK(hear(imp[k].ack) == 'r');

    /* Phase 1: importers -> exporter. */
    double t0 = now_ms();
    say(e.cmd, 'c');
    CHECK(hear(e.ack) == 's'); /* consuming */
    for (int k = 0; k < 2; k++) say(imp[k].cmd, '1');
    struct figures f1[2], e1;
    long posted1 = 0;
    for (int k = 0; k < 2; k++) {
        CHECK(get_figures(imp[k].ack, &f1[k]));
        posted1 += f1[k].posted;
    }
    say(e.cmd, 'd');
    CHECK(get_figures(e.ack, &e1));
    double t1 = now_ms();
    struct tally p1 = tally(posted1, e1);
    CHECK(posted1 == n_posts);
    CHECK(e1.by_wait + e1.by_pollfd == n_posts);
    CHECK(p1.lost == 0 && p1.dup == 0 && p1.stranded == 0);
    CHECK(e1.by_wait > 0);
    CHECK(e1.by_pollfd >= n_posts / 20 - 1); /* the export pollfd, alone at the end */

    /* Phase 2: exporter -> every importer. */
    long n2 = n_posts / 4;
    struct figures f2[2], e2;
    for (int k = 0; k < 2; k++) say(imp[k].cmd, '2');
    for (int k = 0; k < 2; k++) CHECK(hear(imp[k].ack) == 's');
    say(e.cmd, 'g');
    CHECK(get_figures(e.ack, &e2));
    for (int k = 0; k < 2; k++) say(imp[k].cmd, 'd');
    struct tally p2 = {0, 0, 0, 0};
    for (int k = 0; k < 2; k++) {
        CHECK(get_figures(imp[k].ack, &f2[k]));
        struct tally t = tally(e2.posted, f2[k]);
        p2.consumed += t.consumed;
        p2.lost += t.lost;
        p2.dup += t.dup;
        p2.stranded += t.stranded;
        CHECK(f2[k].by_wait + f2[k].by_pollfd == n2);
        CHECK(f2[k].by_wait > 0);
        CHECK(f2[k].by_pollfd >= n2 / 20 - 1); /* the import pollfd, alone at the end */
    }
    double t2 = now_ms();
    CHECK(e2.posted == n2);
    CHECK(p2.lost == 0 && p2.dup == 0 && p2.stranded == 0);

    for (int k = 0; k < 2; k++) {
        close(imp[k].cmd);
        check_child(imp[k].pid, k == 0 ? "importer 0 (RSM_SPIN_US=0)" : "importer 1 (node 1)");
        close(imp[k].ack);
    }
    close(e.cmd);
    check_child(e.pid, "exporter");
    close(e.ack);

    char more1[64] = "", more2[64] = "";
    if (p1.stranded)
        snprintf(more1, sizeof more1, ", %ld stranded (pending, no consumer woke)", p1.stranded);
    if (p2.stranded)
        snprintf(more2, sizeof more2, ", %ld stranded (pending, no consumer woke)", p2.stranded);
    printf("eventload: %ld posts from 4 threads in 2 processes, %ld consumed by 2 threads "
           "(%ld wait, %ld wait_pollfd), %ld lost, %ld duplicated%s, %.0f ms; "
           "export side: %ld posts from 2 threads, %ld + %ld consumed by 2 x 2 threads "
           "(%ld/%ld and %ld/%ld), %ld lost, %ld duplicated%s, %.0f ms\n",
           posted1, p1.consumed, e1.by_wait, e1.by_pollfd, p1.lost, p1.dup, more1, t1 - t0,
           e2.posted, f2[0].by_wait + f2[0].by_pollfd, f2[1].by_wait + f2[1].by_pollfd,
           f2[0].by_wait, f2[0].by_pollfd, f2[1].by_wait, f2[1].by_pollfd, p2.lost, p2.dup, more2,
           t2 - t1);
    return report("eventload");
}
