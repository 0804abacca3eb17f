/*
 * The data path (spec 4.6, 4.8): get/put with the checks in Solaris' order,
 * barriers and barrier modes, forced-disconnect detection, and native-width
 * single loads and stores (no torn values under a concurrent writer).
 */
#define _GNU_SOURCE
#include <rsmapi.h>
#include <poll.h>
#include <pthread.h>
#include <limits.h>
#include <stdint.h>
#include "common.h"

#define LEN (4 * 4096)

static rsm_memseg_id_t next_id(void)
{
    static unsigned k;
    return 0x400000 + (rsm_memseg_id_t)(getpid() % 100000) * 16 + k++;
}

/* An exporter child: fills its segment with 'e', then obeys one-byte
 * commands: 'u' unpublish, 'd' destroy, 'x' exit; end of file: exit. */
struct exporter {
    pid_t pid;
    int cmd, ack;
    rsm_memseg_id_t id;
};

/* The exporter's body, in a process of its own (see start_exporter). */
static void exporter_main(int cmd, int ack, rsm_memseg_id_t id)
{
    char *buf = valloc(LEN);
    memset(buf, 'e', LEN);
    rsmapi_controller_handle_t c;
    rsm_memseg_export_handle_t seg;
    CHECK_RC(rsm_get_controller("shm0", &c), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_export_create(c, &seg, buf, LEN, 0), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_export_publish(seg, &id, NULL, 0), RSM_SUCCESS);
    char b = 'r';
    CHECK(write(ack, &b, 1) == 1);
    while (read(cmd, &b, 1) == 1) {
        if (b == 'u') CHECK_RC(rsm_memseg_export_unpublish(seg), RSM_SUCCESS);
        if (b == 'd') CHECK_RC(rsm_memseg_export_destroy(seg), RSM_SUCCESS);
        if (b == 'x') break;
        if (b == 'p') { /* count signal posts: wait for n, then drain */
            char want = 0;
            CHECK(read(cmd, &want, 1) == 1);
            int got = 0;
            while (got < want && rsm_intr_signal_wait(seg, 5000) == RSM_SUCCESS) got++;
            while (rsm_intr_signal_wait(seg, 0) == RSM_SUCCESS) got++;
            b = (char)got;
        }
        /* 'v': report what the importer stored at offset 64 */
        if (b == 'v') b = buf[64];
        CHECK(write(ack, &b, 1) == 1);
    }
    child_exit();
}

/* The exporter runs as a fresh program (this one, re-executed): a child
 * forked from a process whose library threads may hold allocator locks
 * (ASan's, for one) could block on them forever. */
static struct exporter start_exporter(void)
{
    struct exporter e = {0, -1, -1, next_id()};
    int cmd[2], ack[2];
    CHECK(pipe(cmd) == 0 && pipe(ack) == 0);
    fflush(stdout); /* or the child would print our buffered lines again */
    e.pid = fork();
    if (e.pid == 0) {
        close(cmd[1]);
        close(ack[0]);
        char a[3][16];
        snprintf(a[0], sizeof a[0], "%d", cmd[0]);
        snprintf(a[1], sizeof a[1], "%d", ack[1]);
        snprintf(a[2], sizeof a[2], "%u", (unsigned)e.id);
        execl("/proc/self/exe", "data", "--exporter", a[0], a[1], a[2], (char *)NULL);
        _exit(127);
    }
    close(cmd[0]);
    close(ack[1]);
    e.cmd = cmd[1];
    e.ack = ack[0];
    char b = 0;
    CHECK(read(e.ack, &b, 1) == 1 && b == 'r');
    return e;
}

static char command(struct exporter *e, char c)
{
    char b = 0;
    CHECK(write(e->cmd, &c, 1) == 1);
    if (c != 'x') CHECK(read(e->ack, &b, 1) == 1);
    return b;
}

static void stop_exporter(struct exporter *e)
{
    close(e->cmd);
    close(e->ack);
    check_child(e->pid, "exporter");
}

/* Waits, a bounded number of times, until implicit-mode gets report the
 * forced disconnect (the importer's agent handles it asynchronously). */
static int wait_aborted(rsm_memseg_import_handle_t im)
{
    uint8_t v;
    int rc = RSM_SUCCESS;
    for (int i = 0; i < 5000 && rc == RSM_SUCCESS; i++) {
        rc = rsm_memseg_import_get8(im, 0, &v, 1);
        if (rc == RSM_SUCCESS) usleep(1000);
    }
    return rc;
}

static void checks_in_order(rsmapi_controller_handle_t c)
{
    struct exporter e = start_exporter();
    rsm_memseg_import_handle_t im, ro;
    CHECK_RC(rsm_memseg_import_connect(c, 0, e.id, RSM_PERM_RDWR, &im), RSM_SUCCESS);
    uint64_t words[4] = {0};
    uint8_t *bytes = (uint8_t *)words;

    /* Spec 4.6 steps 1-4, then the segment, direction, bounds, barrier. */
    CHECK_RC(rsm_memseg_import_get8(NULL, 0, bytes, 1), RSMERR_BAD_SEG_HNDL);
    CHECK_RC(rsm_memseg_import_get8(im, 0, NULL, 1), RSMERR_BAD_ADDR);
    CHECK_RC(rsm_memseg_import_put16(im, 0, (uint16_t *)(bytes + 1), 1), RSMERR_BAD_MEM_ALIGNMENT);
    CHECK_RC(rsm_memseg_import_get32(im, 2, (uint32_t *)words, 1), RSMERR_BAD_MEM_ALIGNMENT);
    CHECK_RC(rsm_memseg_import_get64(im, 4, words, 1), RSMERR_BAD_MEM_ALIGNMENT);
    CHECK_RC(rsm_memseg_import_get64((rsm_memseg_import_handle_t)words, 0, words, 1),
             RSMERR_BAD_SEG_HNDL);
    /* Implicit mode (the default) needs a barrier. */
    rsm_barrier_mode_t mode = RSM_BARRIER_MODE_EXPLICIT;
    CHECK_RC(rsm_memseg_import_get_mode(im, &mode), RSM_SUCCESS);
    CHECK(mode == RSM_BARRIER_MODE_IMPLICIT);
    CHECK_RC(rsm_memseg_import_get8(im, 0, bytes, 1), RSMERR_BARRIER_UNINITIALIZED);
    rsmapi_barrier_t bar;
    memset(&bar, 0, sizeof bar);
    CHECK_RC(rsm_memseg_import_init_barrier(NULL, RSM_BARRIER_SEGMENT, &bar), RSMERR_BAD_SEG_HNDL);
    CHECK_RC(rsm_memseg_import_init_barrier(im, RSM_BARRIER_SEGMENT, NULL), RSMERR_BAD_BARRIER_PTR);
    CHECK_RC(rsm_memseg_import_init_barrier(im, RSM_BARRIER_SEGMENT,
                                            (rsmapi_barrier_t *)0x40), RSMERR_BAD_BARRIER_PTR);
    CHECK_RC(rsm_memseg_import_init_barrier(im, RSM_BARRIER_NODE, &bar), RSM_SUCCESS);
    CHECK(bar.seg == (void *)im);
    CHECK_RC(rsm_memseg_import_get8(im, 0, bytes, 1), RSM_SUCCESS);
    CHECK(bytes[0] == 'e');
    /* Bounds: the range must lie in the segment. */
    CHECK_RC(rsm_memseg_import_get(im, LEN - 4, bytes, 8), RSMERR_BAD_OFFSET);
    CHECK_RC(rsm_memseg_import_get(im, -8, bytes, 8), RSMERR_BAD_OFFSET);
    CHECK_RC(rsm_memseg_import_put64(im, LEN, words, 1), RSMERR_BAD_OFFSET);
    CHECK_RC(rsm_memseg_import_get(im, LEN - 8, bytes, 8), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_import_get(im, 0, bytes, 0), RSM_SUCCESS);

    /* Data reaches the exporter's own memory. */
    uint8_t mark = 'P';
    CHECK_RC(rsm_memseg_import_put8(im, 64, &mark, 1), RSM_SUCCESS);
    CHECK(command(&e, 'v') == 'P');
    uint64_t in[3] = {0x1122334455667788ull, 0x99aabbccddeeff00ull, 42}, out[3] = {0};
    CHECK_RC(rsm_memseg_import_put64(im, 128, in, 3), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_import_get64(im, 128, out, 3), RSM_SUCCESS);
    CHECK(memcmp(in, out, sizeof in) == 0);
    uint16_t h16[2] = {0xBEEF, 0xCAFE}, g16[2] = {0};
    uint32_t h32[2] = {0xDEADBEEF, 7}, g32[2] = {0};
    CHECK_RC(rsm_memseg_import_put16(im, 256, h16, 2), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_import_get16(im, 256, g16, 2), RSM_SUCCESS);
    CHECK(g16[0] == 0xBEEF && g16[1] == 0xCAFE);
    CHECK_RC(rsm_memseg_import_put32(im, 512, h32, 2), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_import_get32(im, 512, g32, 2), RSM_SUCCESS);
    CHECK(g32[0] == 0xDEADBEEF && g32[1] == 7);

    /* Deviation: an explicit map after get/put works (Solaris: ALREADY_MAPPED). */
    char *a = NULL;
    CHECK_RC(rsm_memseg_import_map(im, (void **)&a, RSM_MAP_NONE, RSM_PERM_RDWR, 0, LEN), RSM_SUCCESS);
    CHECK(a && a[64] == 'P' && memcmp(a + 128, in, sizeof in) == 0);
    CHECK_RC(rsm_memseg_import_unmap(im), RSM_SUCCESS);

    /* Deviation: a read-only importer's get works; its put is refused. */
    CHECK_RC(rsm_memseg_import_connect(c, 0, e.id, RSM_PERM_READ, &ro), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_import_set_mode(ro, 7), RSMERR_BAD_MODE);
    CHECK_RC(rsm_memseg_import_set_mode(NULL, RSM_BARRIER_MODE_EXPLICIT), RSMERR_BAD_SEG_HNDL);
    CHECK_RC(rsm_memseg_import_set_mode(ro, RSM_BARRIER_MODE_EXPLICIT), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_import_get_mode(ro, &mode), RSM_SUCCESS);
    CHECK(mode == RSM_BARRIER_MODE_EXPLICIT);
    CHECK_RC(rsm_memseg_import_get_mode(ro, NULL), RSMERR_BAD_ADDR);
    CHECK_RC(rsm_memseg_import_get_mode(NULL, &mode), RSMERR_BAD_SEG_HNDL);
    CHECK_RC(rsm_memseg_import_get_mode(NULL, NULL), RSMERR_BAD_SEG_HNDL); /* handle first */
    memset(out, 0, sizeof out);
    CHECK_RC(rsm_memseg_import_get64(ro, 128, out, 3), RSM_SUCCESS);
    CHECK(memcmp(in, out, sizeof in) == 0);
    CHECK_RC(rsm_memseg_import_put8(ro, 64, &mark, 1), RSMERR_PERM_DENIED);
    CHECK_RC(rsm_memseg_import_put(ro, 64, &mark, 1), RSMERR_PERM_DENIED);
    CHECK_RC(rsm_memseg_import_disconnect(ro), RSM_SUCCESS);

    /* A write-only importer: its gets are RSMERR_PERM_DENIED (spec 4.6 step
     * 7, before the barrier check of step 9), its puts work. */
    rsm_memseg_import_handle_t wo;
    CHECK_RC(rsm_memseg_import_connect(c, 0, e.id, RSM_PERM_WRITE, &wo), RSM_SUCCESS);
    /* (still implicit mode, no barrier: the direction is checked first) */
    CHECK_RC(rsm_memseg_import_get8(wo, 0, bytes, 1), RSMERR_PERM_DENIED);
    CHECK_RC(rsm_memseg_import_set_mode(wo, RSM_BARRIER_MODE_EXPLICIT), RSM_SUCCESS);
    memset(out, 0, sizeof out);
    CHECK_RC(rsm_memseg_import_get(wo, 128, out, 8), RSMERR_PERM_DENIED);
    CHECK_RC(rsm_memseg_import_get8(wo, 128, (uint8_t *)out, 1), RSMERR_PERM_DENIED);
    CHECK_RC(rsm_memseg_import_get16(wo, 128, (uint16_t *)out, 1), RSMERR_PERM_DENIED);
    CHECK_RC(rsm_memseg_import_get32(wo, 128, (uint32_t *)out, 1), RSMERR_PERM_DENIED);
    CHECK_RC(rsm_memseg_import_get64(wo, 128, out, 1), RSMERR_PERM_DENIED);
    CHECK(out[0] == 0); /* nothing was copied */
    uint8_t wmark = 'W';
    CHECK_RC(rsm_memseg_import_put8(wo, 66, &wmark, 1), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_import_get8(im, 66, bytes, 1), RSM_SUCCESS);
    CHECK(bytes[0] == 'W');
    CHECK_RC(rsm_memseg_import_disconnect(wo), RSM_SUCCESS);

    /* A count whose byte length overflows is RSMERR_BAD_LENGTH, for every
     * width (docs/compatibility.md; Solaris' was undefined). */
    const ulong_t n16 = ULONG_MAX / 2 + 1, n32 = ULONG_MAX / 4 + 1, n64 = ULONG_MAX / 8 + 1;
    CHECK_RC(rsm_memseg_import_get16(im, 0, (uint16_t *)words, n16), RSMERR_BAD_LENGTH);
    CHECK_RC(rsm_memseg_import_get32(im, 0, (uint32_t *)words, n32), RSMERR_BAD_LENGTH);
    CHECK_RC(rsm_memseg_import_get64(im, 0, words, n64), RSMERR_BAD_LENGTH);
    CHECK_RC(rsm_memseg_import_put16(im, 0, (uint16_t *)words, n16), RSMERR_BAD_LENGTH);
    CHECK_RC(rsm_memseg_import_put32(im, 0, (uint32_t *)words, n32), RSMERR_BAD_LENGTH);
    CHECK_RC(rsm_memseg_import_put64(im, 0, words, n64), RSMERR_BAD_LENGTH);
    CHECK_RC(rsm_memseg_import_get16(im, 2, (uint16_t *)words, ULONG_MAX), RSMERR_BAD_LENGTH);
    CHECK_RC(rsm_memseg_import_put64(im, 8, words, ULONG_MAX), RSMERR_BAD_LENGTH);
    /* Byte lengths past half the address space fit in a size_t but are no
     * buffer's length: they once passed the bounds check and crashed. */
    CHECK_RC(rsm_memseg_import_get(im, 1, bytes, (size_t)-1), RSMERR_BAD_LENGTH);
    CHECK_RC(rsm_memseg_import_put(im, 1, bytes, (size_t)-1), RSMERR_BAD_LENGTH);
    CHECK_RC(rsm_memseg_import_get(im, 4096, bytes, SIZE_MAX - 4095), RSMERR_BAD_LENGTH);
    CHECK_RC(rsm_memseg_import_get64(im, 8, words, ULONG_MAX / 8), RSMERR_BAD_LENGTH);
    CHECK_RC(rsm_memseg_import_put16(im, 2, (uint16_t *)words, ULONG_MAX / 2), RSMERR_BAD_LENGTH);

    /* Barriers: open state is tracked (Solaris never said NOT_OPENED). */
    CHECK_RC(rsm_memseg_import_close_barrier(&bar), RSMERR_BARRIER_NOT_OPENED);
    CHECK_RC(rsm_memseg_import_order_barrier(&bar), RSMERR_BARRIER_NOT_OPENED);
    CHECK_RC(rsm_memseg_import_open_barrier(&bar), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_import_put8(im, 65, &mark, 1), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_import_order_barrier(&bar), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_import_close_barrier(&bar), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_import_close_barrier(&bar), RSMERR_BARRIER_NOT_OPENED);
    CHECK_RC(rsm_memseg_import_open_barrier(NULL), RSMERR_BAD_BARRIER_PTR);
    CHECK_RC(rsm_memseg_import_order_barrier(NULL), RSMERR_BAD_BARRIER_PTR);
    CHECK_RC(rsm_memseg_import_close_barrier(NULL), RSMERR_BAD_BARRIER_PTR);
    CHECK_RC(rsm_memseg_import_destroy_barrier(NULL), RSMERR_BAD_BARRIER_PTR);
    rsmapi_barrier_t never;
    memset(&never, 0, sizeof never);
    CHECK_RC(rsm_memseg_import_open_barrier(&never), RSMERR_BARRIER_UNINITIALIZED);
    CHECK_RC(rsm_memseg_import_order_barrier(&never), RSMERR_BARRIER_UNINITIALIZED);
    CHECK_RC(rsm_memseg_import_close_barrier(&never), RSMERR_BARRIER_UNINITIALIZED);
    CHECK_RC(rsm_memseg_import_destroy_barrier(&never), RSMERR_BARRIER_UNINITIALIZED);
    CHECK_RC(rsm_memseg_import_destroy_barrier(&bar), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_import_get8(im, 0, bytes, 1), RSMERR_BARRIER_UNINITIALIZED);
    CHECK_RC(rsm_memseg_import_set_mode(im, RSM_BARRIER_MODE_EXPLICIT), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_import_get8(im, 0, bytes, 1), RSM_SUCCESS);

    CHECK_RC(rsm_memseg_import_disconnect(im), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_import_get8(im, 0, bytes, 1), RSMERR_BAD_SEG_HNDL);
    CHECK_RC(rsm_memseg_import_open_barrier(&bar), RSMERR_BAD_SEG_HNDL);
    stop_exporter(&e);
}

/* A barrier opened before the exporter unpublishes, destroys or dies
 * closes with RSMERR_CONN_ABORTED; implicit-mode get/put report it too;
 * explicit-mode accesses go to private memory and never fault. */
static void forced(rsmapi_controller_handle_t c, char how)
{
    struct exporter e = start_exporter();
    rsm_memseg_import_handle_t im;
    CHECK_RC(rsm_memseg_import_connect(c, 0, e.id, RSM_PERM_RDWR, &im), RSM_SUCCESS);
    rsmapi_barrier_t bar;
    CHECK_RC(rsm_memseg_import_init_barrier(im, RSM_BARRIER_SEGMENT, &bar), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_import_open_barrier(&bar), RSM_SUCCESS);
    uint64_t v = 5;
    CHECK_RC(rsm_memseg_import_put64(im, 0, &v, 1), RSM_SUCCESS);
    if (how == 'k') {
        kill(e.pid, SIGKILL);
        waitpid(e.pid, NULL, 0);
        close(e.cmd);
        close(e.ack);
    } else {
        command(&e, how);
    }
    CHECK_RC(wait_aborted(im), RSMERR_CONN_ABORTED);
    CHECK_RC(rsm_memseg_import_close_barrier(&bar), RSMERR_CONN_ABORTED);
    CHECK_RC(rsm_memseg_import_put64(im, 8, &v, 1), RSMERR_CONN_ABORTED);
    CHECK_RC(rsm_memseg_import_set_mode(im, RSM_BARRIER_MODE_EXPLICIT), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_import_put64(im, 8, &v, 1), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_import_get64(im, 8, &v, 1), RSM_SUCCESS);
    /* A barrier opened after the abort records the connect-time
     * generation (spec 4.8), so it too closes with RSMERR_CONN_ABORTED:
     * what went between went to anonymous pages, not to the segment. */
    CHECK_RC(rsm_memseg_import_open_barrier(&bar), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_import_close_barrier(&bar), RSMERR_CONN_ABORTED);
    CHECK_RC(rsm_memseg_import_destroy_barrier(&bar), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_import_disconnect(im), RSM_SUCCESS);
    if (how != 'k') stop_exporter(&e);
}

/* A writer process alternates all-zero and all-one values; the reader
 * must only ever see one or the other, for each width. */
static void no_torn_values(rsmapi_controller_handle_t c)
{
    enum { ROUNDS = 200000 };
    struct exporter e = start_exporter();
    int go[2];
    CHECK(pipe(go) == 0);
    pid_t writer = fork();
    if (writer == 0) {
        passed = failed = 0;
        close(go[0]);
        rsm_memseg_import_handle_t w;
        CHECK_RC(rsm_memseg_import_connect(c, 0, e.id, RSM_PERM_WRITE, &w), RSM_SUCCESS);
        CHECK_RC(rsm_memseg_import_set_mode(w, RSM_BARRIER_MODE_EXPLICIT), RSM_SUCCESS);
        /* Zeros first: the exporter's fill pattern is neither value, and a
         * busy machine may hold the writer back after 'g'. */
        uint64_t z64 = 0;
        uint32_t z32 = 0;
        uint16_t z16 = 0;
        CHECK_RC(rsm_memseg_import_put64(w, 1024, &z64, 1), RSM_SUCCESS);
        CHECK_RC(rsm_memseg_import_put32(w, 2048, &z32, 1), RSM_SUCCESS);
        CHECK_RC(rsm_memseg_import_put16(w, 3072, &z16, 1), RSM_SUCCESS);
        CHECK(write(go[1], "g", 1) == 1);
        for (int i = 0; i < 2 * ROUNDS; i++) {
            uint64_t v64 = (i & 1) ? ~0ull : 0;
            uint32_t v32 = (uint32_t)v64;
            uint16_t v16 = (uint16_t)v64;
            if (rsm_memseg_import_put64(w, 1024, &v64, 1) || rsm_memseg_import_put32(w, 2048, &v32, 1) ||
                rsm_memseg_import_put16(w, 3072, &v16, 1)) {
                failed++;
                break;
            }
        }
        CHECK_RC(rsm_memseg_import_disconnect(w), RSM_SUCCESS);
        child_exit();
    }
    close(go[1]);
    char b;
    CHECK(read(go[0], &b, 1) == 1);
    rsm_memseg_import_handle_t r;
    CHECK_RC(rsm_memseg_import_connect(c, 0, e.id, RSM_PERM_READ, &r), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_import_set_mode(r, RSM_BARRIER_MODE_EXPLICIT), RSM_SUCCESS);
    long torn = 0, ones = 0, errors = 0;
    for (int i = 0; i < ROUNDS; i++) {
        uint64_t v64;
        uint32_t v32;
        uint16_t v16;
        errors += rsm_memseg_import_get64(r, 1024, &v64, 1) != 0;
        errors += rsm_memseg_import_get32(r, 2048, &v32, 1) != 0;
        errors += rsm_memseg_import_get16(r, 3072, &v16, 1) != 0;
        torn += (v64 != 0 && v64 != ~0ull) + (v32 != 0 && v32 != ~0u) + (v16 != 0 && v16 != 0xFFFF);
        ones += v64 == ~0ull;
    }
    printf("data: %d reads of 16/32/64-bit values under a concurrent writer: %ld torn, %ld all-ones\n",
           ROUNDS, torn, ones);
    CHECK(errors == 0);
    CHECK(torn == 0);
    CHECK_RC(rsm_memseg_import_disconnect(r), RSM_SUCCESS);
    check_child(writer, "writer");
    close(go[0]);
    stop_exporter(&e);
}

/* One thread puts in a loop while another disconnects the handle: no
 * fault, and every call after the disconnect is RSMERR_BAD_SEG_HNDL. */
static volatile int stop_putter;
static volatile long puts_ok, puts_bad, puts_other;

static void *putter(void *arg)
{
    rsm_memseg_import_handle_t h = (rsm_memseg_import_handle_t)arg;
    uint64_t v = 0;
    while (!stop_putter) {
        int rc = rsm_memseg_import_put64(h, 8 * (v % 64), &v, 1);
        if (rc == RSM_SUCCESS) puts_ok++;
        else if (rc == RSMERR_BAD_SEG_HNDL) puts_bad++;
        else puts_other++;
        v++;
    }
    return NULL;
}

static void disconnect_under_load(rsmapi_controller_handle_t c)
{
    struct exporter e = start_exporter();
    rsm_memseg_import_handle_t im;
    CHECK_RC(rsm_memseg_import_connect(c, 0, e.id, RSM_PERM_RDWR, &im), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_import_set_mode(im, RSM_BARRIER_MODE_EXPLICIT), RSM_SUCCESS);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, putter, im) == 0);
    while (puts_ok < 100000) usleep(100);
    CHECK_RC(rsm_memseg_import_disconnect(im), RSM_SUCCESS);
    long bad_before = puts_bad;
    while (puts_bad < bad_before + 1000) usleep(100);
    stop_putter = 1;
    CHECK(pthread_join(t, NULL) == 0);
    CHECK(puts_other == 0);
    printf("data: %ld puts before a concurrent disconnect, then %ld x RSMERR_BAD_SEG_HNDL\n",
           puts_ok, puts_bad);
    /* The exporter saw the importer leave, although the other thread
     * touched the segment last: it can unpublish and destroy at once. */
    command(&e, 'd');
    stop_exporter(&e);
}

static int posts(struct exporter *e, char want)
{
    CHECK(write(e->cmd, "p", 1) == 1 && write(e->cmd, &want, 1) == 1);
    char b = 0;
    CHECK(read(e->ack, &b, 1) == 1);
    return b;
}

/* Local memory handles and scatter/gather (spec 4.7), with the implicit
 * signal post. */
static void vectors(rsmapi_controller_handle_t c)
{
    struct exporter e = start_exporter();
    char *a = valloc(2 * 4096), *b = valloc(4096);
    memset(a, 'A', 2 * 4096);
    memset(b, 'B', 4096);
    rsm_localmemory_handle_t lh;
    CHECK_RC(rsm_create_localmemory_handle(c, &lh, a + 1, 16), RSMERR_BAD_ADDR);
    CHECK_RC(rsm_create_localmemory_handle(NULL, &lh, a, 16), RSMERR_BAD_CTLR_HNDL);
    CHECK_RC(rsm_create_localmemory_handle(c, NULL, a, 16), RSMERR_BAD_LOCALMEM_HNDL);
    CHECK_RC(rsm_create_localmemory_handle(c, &lh, a, 0), RSMERR_BAD_LENGTH);
    CHECK_RC(rsm_create_localmemory_handle(c, &lh, a, 2 * 4096), RSM_SUCCESS);

    rsm_memseg_import_handle_t im, ro;
    CHECK_RC(rsm_memseg_import_connect(c, 0, e.id, RSM_PERM_RDWR, &im), RSM_SUCCESS);
    rsm_iovec_t iov[3];
    memset(iov, 0, sizeof iov);
    iov[0].io_type = RSM_VA_TYPE;      /* 'B' x 8 -> segment 64 */
    iov[0].local.vaddr = b;
    iov[0].remote_offset = 64;
    iov[0].transfer_length = 8;
    iov[1].io_type = RSM_HANDLE_TYPE;  /* 'A' x 100 from a+4096 -> segment 1000 */
    iov[1].local.handle = lh;
    iov[1].local_offset = 4096;
    iov[1].remote_offset = 1000;
    iov[1].transfer_length = 100;
    iov[2].io_type = RSM_VA_TYPE;      /* 'B' x 4 -> segment 2000 */
    iov[2].local.vaddr = b;
    iov[2].local_offset = 10;
    iov[2].remote_offset = 2000;
    iov[2].transfer_length = 4;
    rsm_scat_gath_t sg;
    memset(&sg, 0, sizeof sg);
    sg.remote_handle = im;
    sg.iovec = iov;
    sg.io_request_count = 3;
    sg.io_residual_count = 99;

    CHECK_RC(rsm_memseg_import_putv(NULL), RSMERR_BAD_SGIO);
    sg.remote_handle = NULL;
    CHECK_RC(rsm_memseg_import_putv(&sg), RSMERR_BAD_SEG_HNDL);
    sg.remote_handle = im;
    sg.io_request_count = 0;
    CHECK_RC(rsm_memseg_import_putv(&sg), RSMERR_BAD_SGIO);
    sg.io_request_count = RSM_MAX_SGIOREQS + 1;
    CHECK_RC(rsm_memseg_import_getv(&sg), RSMERR_BAD_SGIO);
    sg.io_request_count = 3;
    sg.iovec = NULL;
    CHECK_RC(rsm_memseg_import_putv(&sg), RSMERR_BAD_SGIO);
    sg.iovec = iov;

    /* No barrier needed, in either mode; all three entries land. */
    CHECK_RC(rsm_memseg_import_putv(&sg), RSM_SUCCESS);
    CHECK(sg.io_residual_count == 0);
    CHECK(command(&e, 'v') == 'B'); /* segment byte 64, seen by the exporter */
    char back[3][128];
    memset(back, 0, sizeof back);
    rsm_iovec_t get[3];
    memcpy(get, iov, sizeof get);
    for (int i = 0; i < 3; i++) {
        get[i].io_type = RSM_VA_TYPE;
        get[i].local.vaddr = back[i];
        get[i].local_offset = 0;
    }
    sg.iovec = get;
    CHECK_RC(rsm_memseg_import_getv(&sg), RSM_SUCCESS);
    CHECK(memcmp(back[0], "BBBBBBBB", 8) == 0 && back[1][0] == 'A' && back[1][99] == 'A' &&
          memcmp(back[2], "BBBB", 4) == 0);

    /* Errors stop the vector; io_residual_count says how many were left. */
    iov[2].remote_offset = LEN - 2; /* runs past the segment */
    sg.iovec = iov;
    CHECK_RC(rsm_memseg_import_putv(&sg), RSMERR_BAD_OFFSET);
    CHECK(sg.io_residual_count == 1);
    iov[2].remote_offset = 2000;
    iov[1].transfer_length = 4097; /* past the local handle's buffer */
    CHECK_RC(rsm_memseg_import_putv(&sg), RSMERR_BAD_LENGTH);
    CHECK(sg.io_residual_count == 2);
    iov[1].transfer_length = 100;
    iov[0].io_type = 7;
    CHECK_RC(rsm_memseg_import_putv(&sg), RSMERR_BAD_SGIO);
    CHECK(sg.io_residual_count == 3);
    iov[0].io_type = RSM_VA_TYPE;
    CHECK_RC(rsm_memseg_import_connect(c, 0, e.id, RSM_PERM_READ, &ro), RSM_SUCCESS);
    sg.remote_handle = ro;
    CHECK_RC(rsm_memseg_import_putv(&sg), RSMERR_PERM_DENIED); /* Solaris: no check */
    CHECK(sg.io_residual_count == 3);
    sg.iovec = get;
    CHECK_RC(rsm_memseg_import_getv(&sg), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_import_disconnect(ro), RSM_SUCCESS);
    sg.remote_handle = im;
    sg.iovec = iov;

    /* RSM_IMPLICIT_SIGPOST signals the exporter once per vector. */
    sg.flags = RSM_IMPLICIT_SIGPOST;
    CHECK_RC(rsm_memseg_import_putv(&sg), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_import_putv(&sg), RSM_SUCCESS);
    CHECK(sg.flags == RSM_IMPLICIT_SIGPOST); /* restored */
    CHECK(posts(&e, 2) == 2);
    /* NO_ACCUMULATE drops a post while one is pending (Solaris ignored it);
     * a final accumulating post shows the agent handled all three. */
    sg.flags = RSM_IMPLICIT_SIGPOST | RSM_SIGPOST_NO_ACCUMULATE;
    CHECK_RC(rsm_memseg_import_putv(&sg), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_import_putv(&sg), RSM_SUCCESS);
    sg.flags = RSM_IMPLICIT_SIGPOST;
    CHECK_RC(rsm_memseg_import_getv(&sg), RSM_SUCCESS);
    CHECK(posts(&e, 2) == 2);

    CHECK_RC(rsm_memseg_import_disconnect(im), RSM_SUCCESS);
    CHECK_RC(rsm_free_localmemory_handle(NULL, lh), RSMERR_BAD_CTLR_HNDL);
    CHECK_RC(rsm_free_localmemory_handle(c, NULL), RSMERR_BAD_LOCALMEM_HNDL);
    CHECK_RC(rsm_free_localmemory_handle(c, lh), RSM_SUCCESS);
    CHECK_RC(rsm_free_localmemory_handle(c, lh), RSMERR_BAD_LOCALMEM_HNDL);
    free(a);
    free(b);
    stop_exporter(&e);
}

int main(int argc, char **argv)
{
    if (argc == 5 && strcmp(argv[1], "--exporter") == 0) {
        exporter_main(atoi(argv[2]), atoi(argv[3]), (rsm_memseg_id_t)strtoul(argv[4], NULL, 10));
    }
    char fabric[64];
    snprintf(fabric, sizeof fabric, "ctest-data-%d", (int)getpid());
    setenv("RSM_FABRIC", fabric, 1);
    rsmapi_controller_handle_t c;
    CHECK_RC(rsm_get_controller("shm0", &c), RSM_SUCCESS);
    checks_in_order(c);
    forced(c, 'u');
    forced(c, 'd');
    forced(c, 'k');
    no_torn_values(c);
    disconnect_under_load(c);
    vectors(c);
    CHECK_RC(rsm_release_controller(c), RSM_SUCCESS);
    return report("data");
}
