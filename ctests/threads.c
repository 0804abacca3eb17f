/*
 * Concurrency (issue 7, item 5): 8 threads of one importer process work on
 * one segment of an exporter process at the same time, bounded in
 * iterations, with exact counts.
 *
 *   threads 0-3 share one import handle (connected before they start): each
 *     puts and gets its own slot, in implicit mode and inside its own
 *     barrier, races the others to map the handle (exactly one mapping per
 *     handle: the others get RSMERR_SEG_ALREADY_MAPPED), posts to the
 *     exporter and takes the exporter's posts from the shared handle;
 *   threads 4-7 each connect, init a barrier, map, store, unmap, get, open
 *     the barrier, put, order, close, get, destroy the barrier, post, take
 *     the exporter's post if one came, hold a pollfd (disconnect refused)
 *     and disconnect their own handle, every iteration.
 *
 * Checked exactly: every return code; every value a thread put or stored is
 * the one it gets back; maps won + lost = attempts and every won map is
 * unmapped; the exporter consumes exactly as many events as the threads
 * posted (the events of handles disconnected meanwhile included) and no
 * more; the threads on the shared handle consume exactly the exporter's
 * posts, each once; the exporter finds every thread's last value in its
 * memory. Nothing is timed; alarm() ends a deadlock.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <rsmapi.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include "common.h"

#define THREADS 8
#define SHARED 4          /* threads 0..SHARED-1 share one handle */
#define ITER 2000         /* iterations per thread */
#define EXPORTER_POSTS 1000
#define SLOT 256          /* bytes per thread, thread k at k * SLOT */

static size_t len;
static rsm_memseg_id_t id;
static rsmapi_controller_handle_t ctrl;
static rsm_memseg_import_handle_t shared_im;
static rsmapi_barrier_t shared_bar[SHARED];

/* Counts all threads add to. */
static unsigned long posts, consumed_on_shared, maps_won, maps_lost;
static int thread_passed, thread_failed; /* inside threads (passed/failed are not atomic) */

static void add(unsigned long *n, unsigned long v) { __atomic_fetch_add(n, v, __ATOMIC_SEQ_CST); }
static unsigned long get_n(unsigned long *n) { return __atomic_load_n(n, __ATOMIC_SEQ_CST); }

/* In a thread: counts a failure and says what it was (the first 20). */
#define T_CHECK_RC(call, expected)                                                         \
    do {                                                                                   \
        int rc_ = (call);                                                                  \
        if (rc_ == (expected)) {                                                           \
            __atomic_fetch_add(&thread_passed, 1, __ATOMIC_SEQ_CST);                       \
        } else {                                                                           \
            if (__atomic_fetch_add(&thread_failed, 1, __ATOMIC_SEQ_CST) < 20)              \
                fprintf(stderr, "%s:%d: thread %d: %s returned %d, expected %d\n",         \
                        __FILE__, __LINE__, k, #call, rc_, (int)(expected));               \
        }                                                                                  \
    } while (0)
#define T_CHECK(cond)                                                                      \
    do {                                                                                   \
        if (cond) {                                                                        \
            __atomic_fetch_add(&thread_passed, 1, __ATOMIC_SEQ_CST);                       \
        } else {                                                                           \
            if (__atomic_fetch_add(&thread_failed, 1, __ATOMIC_SEQ_CST) < 20)              \
                fprintf(stderr, "%s:%d: thread %d: failed: %s\n", __FILE__, __LINE__, k,   \
                        #cond);                                                            \
        }                                                                                  \
    } while (0)

/* The bytes thread k writes in iteration i, step s. */
static void fill(char *p, int k, int i, int s)
{
    for (int j = 0; j < SLOT; j++) p[j] = (char)(k * 37 + i * 11 + s * 5 + j + 1);
}
static int same(const char *p, int k, int i, int s)
{
    char want[SLOT];
    fill(want, k, i, s);
    return memcmp(p, want, SLOT) == 0;
}

/* Takes an event from the shared handle without waiting; counts it. */
static void take_shared(int k, int timeout)
{
    int rc = rsm_intr_signal_wait(shared_im, timeout);
    if (rc == RSM_SUCCESS)
        add(&consumed_on_shared, 1);
    else
        T_CHECK_RC(rc, RSMERR_TIMEOUT);
}

static void *shared_thread(void *arg)
{
    int k = (int)(long)arg;
    size_t off = (size_t)k * SLOT;
    char mine[SLOT], got[SLOT];
    rsmapi_controller_handle_t c;
    rsmapi_barrier_t *bar = &shared_bar[k];
    /* The same controller, counted once more. */
    T_CHECK_RC(rsm_get_controller("shm0", &c), RSM_SUCCESS);
    T_CHECK(c == ctrl);
    T_CHECK_RC(rsm_memseg_import_init_barrier(shared_im, RSM_BARRIER_SEGMENT, bar), RSM_SUCCESS);
    for (int i = 0; i < ITER; i++) {
        /* Race the other three for the handle's one mapping. */
        char *a = NULL;
        int rc = rsm_memseg_import_map(shared_im, (void **)&a, RSM_MAP_NONE, RSM_PERM_RDWR, 0, len);
        if (rc == RSM_SUCCESS) {
            add(&maps_won, 1);
            fill(mine, k, i, 0);
            memcpy(a + off, mine, SLOT);
            T_CHECK_RC(rsm_memseg_import_get(shared_im, (off_t)off, got, SLOT), RSM_SUCCESS);
            T_CHECK(same(got, k, i, 0));
            T_CHECK_RC(rsm_memseg_import_unmap(shared_im), RSM_SUCCESS);
        } else {
            T_CHECK_RC(rc, RSMERR_SEG_ALREADY_MAPPED);
            add(&maps_lost, 1);
        }
        /* Implicit mode: put, get. */
        fill(mine, k, i, 1);
        T_CHECK_RC(rsm_memseg_import_put(shared_im, (off_t)off, mine, SLOT), RSM_SUCCESS);
        T_CHECK_RC(rsm_memseg_import_get(shared_im, (off_t)off, got, SLOT), RSM_SUCCESS);
        T_CHECK(same(got, k, i, 1));
        /* Its own barrier around a put (the last write of the iteration). */
        fill(mine, k, i, 2);
        T_CHECK_RC(rsm_memseg_import_open_barrier(bar), RSM_SUCCESS);
        T_CHECK_RC(rsm_memseg_import_put(shared_im, (off_t)off, mine, SLOT), RSM_SUCCESS);
        T_CHECK_RC(rsm_memseg_import_order_barrier(bar), RSM_SUCCESS);
        T_CHECK_RC(rsm_memseg_import_get(shared_im, (off_t)off, got, SLOT), RSM_SUCCESS);
        T_CHECK_RC(rsm_memseg_import_close_barrier(bar), RSM_SUCCESS);
        T_CHECK(same(got, k, i, 2));
        /* Signals both ways. */
        T_CHECK_RC(rsm_intr_signal_post(shared_im, 0), RSM_SUCCESS);
        add(&posts, 1);
        take_shared(k, 0);
    }
    /* Take what the exporter still posts, until all its posts are taken
     * (bounded: the exporter posts a fixed number). */
    for (int t = 0; t < 4 * EXPORTER_POSTS && get_n(&consumed_on_shared) < EXPORTER_POSTS; t++)
        take_shared(k, 100);
    T_CHECK_RC(rsm_release_controller(c), RSM_SUCCESS);
    return NULL;
}

static void *own_thread(void *arg)
{
    int k = (int)(long)arg;
    size_t off = (size_t)k * SLOT;
    char mine[SLOT], got[SLOT];
    rsmapi_controller_handle_t c;
    T_CHECK_RC(rsm_get_controller("shm0", &c), RSM_SUCCESS);
    T_CHECK(c == ctrl);
    for (int i = 0; i < ITER; i++) {
        rsm_memseg_import_handle_t im = NULL;
        rsmapi_barrier_t bar;
        char *a = NULL;
        T_CHECK_RC(rsm_memseg_import_connect(c, 0, id, RSM_PERM_RDWR, &im), RSM_SUCCESS);
        if (!im) continue;
        T_CHECK_RC(rsm_memseg_import_init_barrier(im, RSM_BARRIER_SEGMENT, &bar), RSM_SUCCESS);
        T_CHECK_RC(rsm_memseg_import_map(im, (void **)&a, RSM_MAP_NONE, RSM_PERM_RDWR, 0, len),
                   RSM_SUCCESS);
        if (a) {
            fill(mine, k, i, 0);
            memcpy(a + off, mine, SLOT);
            T_CHECK_RC(rsm_memseg_import_unmap(im), RSM_SUCCESS);
        }
        T_CHECK_RC(rsm_memseg_import_get(im, (off_t)off, got, SLOT), RSM_SUCCESS);
        T_CHECK(same(got, k, i, 0));
        fill(mine, k, i, 2);
        T_CHECK_RC(rsm_memseg_import_open_barrier(&bar), RSM_SUCCESS);
        T_CHECK_RC(rsm_memseg_import_put(im, (off_t)off, mine, SLOT), RSM_SUCCESS);
        T_CHECK_RC(rsm_memseg_import_order_barrier(&bar), RSM_SUCCESS);
        T_CHECK_RC(rsm_memseg_import_close_barrier(&bar), RSM_SUCCESS);
        T_CHECK_RC(rsm_memseg_import_get(im, (off_t)off, got, SLOT), RSM_SUCCESS);
        T_CHECK(same(got, k, i, 2));
        T_CHECK_RC(rsm_memseg_import_destroy_barrier(&bar), RSM_SUCCESS);
        T_CHECK_RC(rsm_intr_signal_post(im, 0), RSM_SUCCESS);
        add(&posts, 1);
        int rc = rsm_intr_signal_wait(im, 0); /* the exporter's, if one came */
        if (rc != RSM_SUCCESS) T_CHECK_RC(rc, RSMERR_TIMEOUT);
        if (i % 16 == 0) {
            struct pollfd pfd;
            T_CHECK_RC(rsm_memseg_get_pollfd(im, &pfd), RSM_SUCCESS);
            T_CHECK_RC(rsm_memseg_import_disconnect(im), RSMERR_POLLFD_IN_USE);
            T_CHECK_RC(rsm_memseg_release_pollfd(im), RSM_SUCCESS);
        }
        T_CHECK_RC(rsm_memseg_import_disconnect(im), RSM_SUCCESS);
    }
    T_CHECK_RC(rsm_release_controller(c), RSM_SUCCESS);
    return NULL;
}

/* The test's own messages go over a socket pair with MSG_NOSIGNAL: SIGPIPE
 * keeps its default action, so a library that raised it would be caught. */
static void say_n(int fd, const void *p, size_t n)
{
    CHECK(send(fd, p, n, MSG_NOSIGNAL) == (ssize_t)n);
}
static int hear_n(int fd, void *p, size_t n) { return read(fd, p, n) == (ssize_t)n; }

/* The exporter: publishes, posts EXPORTER_POSTS times while the threads
 * run, then consumes exactly the number of events the importer says its
 * threads posted, finds no more, and checks every thread's last value. */
static void exporter(int cmd, int ack)
{
    rsmapi_controller_handle_t c;
    rsm_memseg_export_handle_t ex;
    char *buf = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(buf != MAP_FAILED);
    memset(buf, 0, len);
    CHECK_RC(rsm_get_controller("shm0", &c), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_export_create(c, &ex, buf, len, 0), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_export_publish(ex, &id, NULL, 0), RSM_SUCCESS);
    char go = 0;
    say_n(ack, "r", 1);
    CHECK(hear_n(cmd, &go, 1) && go == 'g'); /* the shared handle is connected */
    unsigned long got = 0, want = 0;
    for (int i = 0; i < EXPORTER_POSTS; i++) {
        CHECK_RC(rsm_intr_signal_post(ex, 0), RSM_SUCCESS);
        if (rsm_intr_signal_wait(ex, 0) == RSM_SUCCESS) got++;
        usleep(100); /* spread over the threads' work */
    }
    CHECK(hear_n(cmd, &want, sizeof want)); /* all threads are done */
    while (got < want) {
        int rc = rsm_intr_signal_wait(ex, 5000);
        CHECK_RC(rc, RSM_SUCCESS);
        if (rc != RSM_SUCCESS) break;
        got++;
    }
    CHECK_RC(rsm_intr_signal_wait(ex, 0), RSMERR_TIMEOUT); /* not one more */
    printf("threads: the exporter consumed %lu events, the threads posted %lu\n", got, want);
    for (int k = 0; k < THREADS; k++) CHECK(same(buf + k * SLOT, k, ITER - 1, 2));
    CHECK_RC(rsm_memseg_export_destroy(ex), RSM_SUCCESS);
    CHECK_RC(rsm_release_controller(c), RSM_SUCCESS);
    child_exit();
}

int main(void)
{
    len = (size_t)sysconf(_SC_PAGESIZE);
    char fabric[64];
    snprintf(fabric, sizeof fabric, "ctest-threads-%d", (int)getpid());
    setenv("RSM_FABRIC", fabric, 1);
    alarm(120); /* a deadlock ends the test */
    id = 0x400000 + (rsm_memseg_id_t)(getpid() % 100000) * 16;
    int cmd[2], ack[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, cmd) == 0 &&
          socketpair(AF_UNIX, SOCK_STREAM, 0, ack) == 0);
    /* The exporter is forked before this process starts any thread. */
    pid_t pid = fork();
    if (pid == 0) {
        passed = failed = 0;
        close(cmd[1]);
        close(ack[0]);
        exporter(cmd[0], ack[1]);
    }
    close(cmd[0]);
    close(ack[1]);
    char r = 0;
    CHECK(hear_n(ack[0], &r, 1) && r == 'r');

    CHECK_RC(rsm_get_controller("shm0", &ctrl), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_import_connect(ctrl, 0, id, RSM_PERM_RDWR, &shared_im), RSM_SUCCESS);
    say_n(cmd[1], "g", 1);
    pthread_t t[THREADS];
    for (long k = 0; k < THREADS; k++)
        CHECK(pthread_create(&t[k], NULL, k < SHARED ? shared_thread : own_thread, (void *)k) == 0);
    for (int k = 0; k < THREADS; k++) CHECK(pthread_join(t[k], NULL) == 0);

    unsigned long n = get_n(&posts);
    CHECK(n == (unsigned long)THREADS * ITER);
    CHECK(maps_won + maps_lost == (unsigned long)SHARED * ITER);
    CHECK(maps_won > 0);
    CHECK(consumed_on_shared == EXPORTER_POSTS);
    CHECK_RC(rsm_intr_signal_wait(shared_im, 0), RSMERR_TIMEOUT); /* each taken once */
    for (int k = 0; k < SHARED; k++)
        CHECK_RC(rsm_memseg_import_destroy_barrier(&shared_bar[k]), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_import_disconnect(shared_im), RSM_SUCCESS);
    say_n(cmd[1], &n, sizeof n);
    check_child(pid, "exporter");
    CHECK_RC(rsm_release_controller(ctrl), RSM_SUCCESS);
    printf("threads: %d threads x %d iterations; shared handle: %lu maps won, %lu lost, %lu of "
           "the exporter's %d posts taken\n",
           THREADS, ITER, maps_won, maps_lost, consumed_on_shared, EXPORTER_POSTS);
    passed += thread_passed;
    failed += thread_failed;
    close(cmd[1]);
    close(ack[0]);
    return report("threads");
}
