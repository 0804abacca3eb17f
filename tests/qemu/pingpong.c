/*
 * The guest side of `make qemu-test` (tests/qemu/ivshmem-test.sh): two
 * QEMU guests share one ivshmem device; each is a node of a `type =
 * window` controller "win0" whose windows are slices of that device's
 * BAR 2 (/sys/bus/pci/devices/<bdf>/resource2, written into
 * /etc/rsm/rsm.conf by the guest's /init). Nothing else connects the
 * guests: every byte and every signal below crosses the BAR.
 *
 *   pingpong export N   node 0: creates and publishes SEG_ID over its own
 *                       memory, answers N pings in that memory
 *   pingpong import N   node 1: connects, checks get/put, a barrier,
 *                       signals both ways, maps, bounces a counter N
 *                       times through the mapping, disconnects
 *
 * Order of events (each side waits for the other with a timeout):
 *   importer  connect (retrying until node 0 has published), get the
 *             exporter's pattern, put a message, post a signal
 *   exporter  wait for that signal, find the message in its own memory,
 *             write a reply, post a signal
 *   importer  wait, get the reply, map, an explicit barrier around
 *             stores through the mapping (read back with get), then the
 *             ping-pong: ping = i through the mapping, wait for pong == i
 *   exporter  for i in 1..N: wait for ping == i, store pong = i
 *   importer  post "done"; exporter waits for it, checks the last values,
 *             posts back; importer waits, unmaps, marks DONE with put,
 *             disconnects; exporter waits for DONE, unpublishes, destroys
 *
 * Every RSM call's return code is checked; the last line is "PASS" or
 * "FAIL" with the reason (the /init turns it into the console verdict).
 */
#define _GNU_SOURCE
#include <rsmapi.h>
#include <sched.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define SEG_ID 0x400777
#define SEG_LEN (64 * 1024)
#define PING 0         /* u64, written by the importer (mapping) */
#define PONG 64        /* u64, written by the exporter (own memory) */
#define DONE_AT 128    /* u64, DONE_MAGIC put by the importer at the end */
#define PATTERN 4096   /* 4 KiB the exporter fills before publishing */
#define MSG 8192       /* the importer's put */
#define REPLY 12288    /* the exporter's answer */
#define FENCED 16384   /* stores under an explicit barrier */
#define DONE_MAGIC 0x444f4e45444f4e45ull
#define WAIT_MS 120000 /* any wait for the other guest */

static const char *role = "?";

static void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("pingpong %s: FAIL: ", role);
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    fflush(stdout);
    exit(1);
}

#define RC(call)                                                             \
    do {                                                                     \
        int rc_ = (call);                                                    \
        if (rc_ != RSM_SUCCESS) fail("%s returned %d (line %d)", #call, rc_, __LINE__); \
    } while (0)

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* A compiler barrier, not PAUSE: under QEMU's TCG every PAUSE leaves the
 * translated code for the main loop, which made a round trip 727 us instead
 * of 0.32 us (at -smp 1; docs/hardware.md). */
static inline void relax(void) { __asm__ __volatile__("" ::: "memory"); }

/* Spins until *p == v; fails after WAIT_MS. */
static void await64(volatile uint64_t *p, uint64_t v, const char *what)
{
    double limit = now() + WAIT_MS / 1000.0;
    for (unsigned k = 1; __atomic_load_n(p, __ATOMIC_ACQUIRE) != v; k++) {
        relax();
        if ((k & 0xfff) == 0) {
            if (now() > limit)
                fail("timed out waiting for %s == %llu (is %llu)", what, (unsigned long long)v,
                     (unsigned long long)__atomic_load_n(p, __ATOMIC_ACQUIRE));
            if ((k & 0xfffff) == 0) sched_yield();
        }
    }
}

static char pattern_byte(int i) { return (char)(i * 7 + 3); }

static void exporter(long n)
{
    rsmapi_controller_handle_t c;
    rsm_memseg_export_handle_t ex;
    rsm_memseg_id_t id = SEG_ID;
    char *buf = mmap(NULL, SEG_LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (buf == MAP_FAILED) fail("mmap");
    for (int i = 0; i < 4096; i++) buf[PATTERN + i] = pattern_byte(i);
    RC(rsm_get_controller("win0", &c));
    RC(rsm_memseg_export_create(c, &ex, buf, SEG_LEN, 0));
    RC(rsm_memseg_export_publish(ex, &id, NULL, 0));
    if (id != SEG_ID) fail("published as %#x", (unsigned)id);
    if (buf[PATTERN + 5] != pattern_byte(5)) fail("own data lost at create");
    printf("pingpong export: published segment %#x, %d bytes\n", (unsigned)id, SEG_LEN);
    fflush(stdout);

    /* Importer -> exporter signal; the importer's put is in our memory. */
    RC(rsm_intr_signal_wait(ex, WAIT_MS));
    if (strcmp(buf + MSG, "put by node 1") != 0) fail("the importer's put is not in our memory");
    strcpy(buf + REPLY, "reply from node 0");
    __atomic_thread_fence(__ATOMIC_RELEASE);
    RC(rsm_intr_signal_post(ex, 0));
    printf("pingpong export: signal and put from node 1 received, reply posted\n");
    fflush(stdout);

    volatile uint64_t *ping = (volatile uint64_t *)(buf + PING);
    volatile uint64_t *pong = (volatile uint64_t *)(buf + PONG);
    for (long i = 1; i <= n; i++) {
        await64(ping, (uint64_t)i, "ping");
        __atomic_store_n(pong, (uint64_t)i, __ATOMIC_RELEASE);
    }
    RC(rsm_intr_signal_wait(ex, WAIT_MS)); /* "done" */
    if (*ping != (uint64_t)n || *pong != (uint64_t)n) fail("counters at the end: %llu %llu",
                                                             (unsigned long long)*ping,
                                                             (unsigned long long)*pong);
    if (buf[FENCED + 1] != 1) fail("the importer's store under a barrier is not in our memory");
    RC(rsm_intr_signal_post(ex, 0));
    await64((volatile uint64_t *)(buf + DONE_AT), DONE_MAGIC, "DONE");
    printf("pingpong export: %ld pings answered; unpublishing\n", n);
    RC(rsm_memseg_export_unpublish(ex));
    RC(rsm_memseg_export_destroy(ex));
    /* The memory is the program's again, with what was written into it. */
    if (strcmp(buf + MSG, "put by node 1") != 0) fail("data lost at destroy");
    buf[0] = 1;
    RC(rsm_release_controller(c));
}

static void importer(long n)
{
    rsmapi_controller_handle_t c;
    rsm_memseg_import_handle_t im = NULL;
    rsmapi_barrier_t bar;
    char tmp[4096];
    char *map = NULL;
    int rc;
    RC(rsm_get_controller("win0", &c));
    /* Node 0 may still be booting: retry for a while. Until it has
     * formatted its window and published, connect fails with one of
     * these; anything else is an error. */
    double limit = now() + WAIT_MS / 1000.0, t0 = now();
    int tries = 0;
    for (;; tries++) {
        rc = rsm_memseg_import_connect(c, 0, SEG_ID, RSM_PERM_RDWR, &im);
        if (rc == RSM_SUCCESS) break;
        if (rc != RSMERR_SEG_NOT_PUBLISHED && rc != RSMERR_REMOTE_NODE_UNREACHABLE &&
            rc != RSMERR_CONN_ABORTED)
            fail("rsm_memseg_import_connect returned %d", rc);
        if (now() > limit) fail("rsm_memseg_import_connect: still %d after %d s", rc, WAIT_MS / 1000);
        usleep(100000);
    }
    printf("pingpong import: connected to node 0 segment %#x after %.1f s (%d retries)\n",
           (unsigned)SEG_ID, now() - t0, tries);
    fflush(stdout);

    /* Implicit barrier mode (the default) needs an initialized barrier. */
    RC(rsm_memseg_import_init_barrier(im, RSM_BARRIER_SEGMENT, &bar));
    RC(rsm_memseg_import_get(im, PATTERN, tmp, sizeof tmp));
    for (int i = 0; i < 4096; i++)
        if (tmp[i] != pattern_byte(i)) fail("get: byte %d is %d", i, tmp[i]);
    RC(rsm_memseg_import_put(im, MSG, "put by node 1", sizeof "put by node 1"));
    RC(rsm_intr_signal_post(im, 0));
    RC(rsm_intr_signal_wait(im, WAIT_MS));
    RC(rsm_memseg_import_get(im, REPLY, tmp, sizeof "reply from node 0"));
    if (strcmp(tmp, "reply from node 0") != 0) fail("get: reply is \"%.32s\"", tmp);
    printf("pingpong import: get, put and signals both ways done\n");

    RC(rsm_memseg_import_map(im, (void **)&map, RSM_MAP_NONE, RSM_PERM_RDWR, 0, SEG_LEN));
    if (map[PATTERN + 9] != pattern_byte(9)) fail("mapping: wrong pattern");
    RC(rsm_memseg_import_set_mode(im, RSM_BARRIER_MODE_EXPLICIT));
    RC(rsm_memseg_import_open_barrier(&bar));
    map[FENCED + 1] = 1;
    RC(rsm_memseg_import_order_barrier(&bar));
    RC(rsm_memseg_import_close_barrier(&bar));
    uint32_t v = 0;
    RC(rsm_memseg_import_get32(im, FENCED, &v, 1));
    if (((char *)&v)[1] != 1) fail("store under a barrier not read back");
    RC(rsm_memseg_import_set_mode(im, RSM_BARRIER_MODE_IMPLICIT));

    volatile uint64_t *ping = (volatile uint64_t *)(map + PING);
    volatile uint64_t *pong = (volatile uint64_t *)(map + PONG);
    t0 = now();
    for (long i = 1; i <= n; i++) {
        __atomic_store_n(ping, (uint64_t)i, __ATOMIC_RELEASE);
        await64(pong, (uint64_t)i, "pong");
    }
    double t = now() - t0;
    printf("pingpong import: %ld round trips through the mapping in %.3f s: %.2f us per round "
           "trip (informative)\n",
           n, t, t / (double)n * 1e6);

    RC(rsm_intr_signal_post(im, 0)); /* "done" */
    RC(rsm_intr_signal_wait(im, WAIT_MS));
    RC(rsm_memseg_import_unmap(im));
    uint64_t done = DONE_MAGIC;
    RC(rsm_memseg_import_put64(im, DONE_AT, &done, 1));
    RC(rsm_memseg_import_destroy_barrier(&bar));
    RC(rsm_memseg_import_disconnect(im));
    RC(rsm_release_controller(c));
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc != 3 || (strcmp(argv[1], "export") != 0 && strcmp(argv[1], "import") != 0)) {
        fprintf(stderr, "usage: pingpong export|import ROUND_TRIPS\n");
        return 2;
    }
    role = argv[1];
    long n = atol(argv[2]);
    if (n < 1) fail("ROUND_TRIPS must be at least 1");
    if (role[0] == 'e')
        exporter(n);
    else
        importer(n);
    printf("pingpong %s: PASS\n", role);
    return 0;
}
