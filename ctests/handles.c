/*
 * Garbage handles never crash (DESIGN.md 3-4; Solaris crashed on most of
 * them): NULL, released, forged and wrong-kind values, including live
 * handles of another kind (an export handle where an import handle is
 * expected and the reverse), passed to every function that takes a handle,
 * get the function's own code of spec section 4: RSMERR_BAD_CTLR_HNDL for a
 * controller, RSMERR_BAD_SEG_HNDL for a segment, RSMERR_BAD_LOCALMEM_HNDL
 * for a local memory handle. Pointer arguments that stand in for handles
 * (a barrier, a pollfd array, the topology out-pointer) get their own
 * codes. The live handles are untouched by all of it.
 */
#define _GNU_SOURCE
#include <rsmapi.h>
#include <stdint.h>
#include "common.h"

static int stack_var;
static size_t pg; /* page size; segments are one page */

/* Kinds as the handle value carries them (DESIGN.md 4): a 4-bit magic and
 * a 4-bit kind in the top byte. Used only to forge wrong-kind values. */
#define KIND_SHIFT 56
#define KIND_MASK ((uintptr_t)0xF << KIND_SHIFT)

/* A set of bad values for one kind of handle, each with a description. */
#define MAXBAD 40
struct bad {
    void *v[MAXBAD];
    const char *why[MAXBAD];
    int n;
};

static void add(struct bad *b, void *v, const char *why)
{
    if (b->n < MAXBAD) {
        b->v[b->n] = v;
        b->why[b->n] = why;
        b->n++;
    }
}

static void *with_kind(void *h, unsigned kind)
{
    return (void *)(((uintptr_t)h & ~KIND_MASK) | ((uintptr_t)kind << KIND_SHIFT));
}

/* Every live handle: a forgery that happens to equal one is left out. */
static void *live_handles[8];
static int n_live;

static void forged(struct bad *b, void *v, const char *why)
{
    for (int i = 0; i < n_live; i++)
        if (v == live_handles[i]) return;
    add(b, v, why);
}

/* Garbage every kind shares, plus forgeries of `live` (a live handle of the
 * right kind): its value off by one, another generation, the same slot
 * under every other kind but `also` (a second kind the set accepts). */
#define NONE 0xFFu
static void garbage(struct bad *b, void *live, unsigned also)
{
    add(b, NULL, "NULL");
    add(b, (void *)(uintptr_t)1, "1");
    add(b, (void *)(uintptr_t)-1, "-1");
    add(b, &stack_var, "a data address");
    add(b, (void *)(uintptr_t)garbage, "a code address");
    add(b, (void *)(uintptr_t)0xA100000000000000ull, "magic, controller kind, key 0");
    add(b, (void *)(uintptr_t)0xAF00000000000000ull, "magic, kind 15");
    add(b, (void *)(uintptr_t)0xA0FFFFFFFFFFFFFFull, "magic, kind 0, all key bits");
    forged(b, (void *)((uintptr_t)live + 1), "live + 1");
    forged(b, (void *)((uintptr_t)live - 1), "live - 1");
    forged(b, (void *)((uintptr_t)live ^ ((uintptr_t)1 << 40)), "live, another generation");
    forged(b, (void *)((uintptr_t)live ^ ((uintptr_t)1 << 63)), "live without the magic");
    static const char *kinds[] = {"live as kind 0", "live as controller", "live as export",
                                  "live as import", "live as local memory", "live as kind 5"};
    unsigned own = (unsigned)(((uintptr_t)live & KIND_MASK) >> KIND_SHIFT);
    for (unsigned k = 0; k <= 5; k++)
        if (k != own && k != also) forged(b, with_kind(live, k), kinds[k]);
}

/* CHECK_RC, naming the bad value on failure. */
#define BAD_RC(set, i, call, expected)                                                     \
    do {                                                                                   \
        int f_ = failed;                                                                   \
        CHECK_RC(call, expected);                                                          \
        if (failed != f_)                                                                  \
            fprintf(stderr, "    with %s (%p)\n", (set)->why[i], (set)->v[i]);             \
    } while (0)

int main(void)
{
    pg = (size_t)sysconf(_SC_PAGESIZE);
    char fabric[64];
    snprintf(fabric, sizeof fabric, "ctest-handles-%d", (int)getpid());
    setenv("RSM_FABRIC", fabric, 1);

    /* Live handles of every kind, and a stale one of every kind. */
    rsmapi_controller_handle_t released, c, lo;
    CHECK_RC(rsm_get_controller("shm0", &released), RSM_SUCCESS);
    CHECK_RC(rsm_release_controller(released), RSM_SUCCESS);
    CHECK_RC(rsm_get_controller("shm0", &c), RSM_SUCCESS); /* a fresh handle */
    CHECK(c != released);
    CHECK_RC(rsm_get_controller("loopback", &lo), RSM_SUCCESS);

    char *buf = valloc(pg), *gone_buf = valloc(pg), *other = valloc(pg);
    char *lbuf = valloc(pg), *gone_lbuf = valloc(pg);
    CHECK(buf && gone_buf && other && lbuf && gone_lbuf);
    memset(buf, 'h', pg);
    rsm_memseg_export_handle_t ex, gone_ex;
    rsm_memseg_id_t id = 0;
    CHECK_RC(rsm_memseg_export_create(c, &gone_ex, gone_buf, pg, 0), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_export_destroy(gone_ex), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_export_create(c, &ex, buf, pg, RSM_ALLOW_REBIND), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_export_publish(ex, &id, NULL, 0), RSM_SUCCESS);

    rsm_memseg_import_handle_t im, gone_im;
    CHECK_RC(rsm_memseg_import_connect(c, 0, id, RSM_PERM_RDWR, &gone_im), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_import_disconnect(gone_im), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_import_connect(c, 0, id, RSM_PERM_RDWR, &im), RSM_SUCCESS);

    rsm_localmemory_handle_t lh, gone_lh;
    CHECK_RC(rsm_create_localmemory_handle(c, &gone_lh, gone_lbuf, pg), RSM_SUCCESS);
    CHECK_RC(rsm_free_localmemory_handle(c, gone_lh), RSM_SUCCESS);
    CHECK_RC(rsm_create_localmemory_handle(c, &lh, lbuf, pg), RSM_SUCCESS);

    void *all_live[] = {c, lo, ex, im, lh};
    for (unsigned i = 0; i < sizeof all_live / sizeof all_live[0]; i++)
        live_handles[n_live++] = all_live[i];

    /* The bad sets: garbage, the stale handle of the kind, and live handles
     * of every other kind. */
    struct bad bc = {{0}, {0}, 0}, be = bc, bi = bc, bl = bc, bs = bc;
    garbage(&bc, c, NONE);
    add(&bc, released, "a released controller");
    add(&bc, ex, "a live export handle");
    add(&bc, im, "a live import handle");
    add(&bc, lh, "a live local memory handle");

    garbage(&be, ex, NONE);
    add(&be, gone_ex, "a destroyed export handle");
    add(&be, c, "a live controller");
    add(&be, im, "a live import handle");
    add(&be, lh, "a live local memory handle");

    garbage(&bi, im, NONE);
    add(&bi, gone_im, "a disconnected import handle");
    add(&bi, c, "a live controller");
    add(&bi, ex, "a live export handle");
    add(&bi, lh, "a live local memory handle");

    garbage(&bl, lh, NONE);
    add(&bl, gone_lh, "a freed local memory handle");
    add(&bl, c, "a live controller");
    add(&bl, ex, "a live export handle");
    add(&bl, im, "a live import handle");

    /* Signal post/wait and pollfd take either segment kind (void *). */
    garbage(&bs, im, 2); /* export and import kinds are both right */
    add(&bs, gone_ex, "a destroyed export handle");
    add(&bs, gone_im, "a disconnected import handle");
    add(&bs, c, "a live controller");
    add(&bs, lh, "a live local memory handle");

    /* Controller handles: attributes, release, export create, import
     * connect, local memory create and free. */
    for (int i = 0; i < bc.n; i++) {
        rsmapi_controller_handle_t h = (rsmapi_controller_handle_t)bc.v[i];
        rsmapi_controller_attr_t attr;
        rsm_memseg_export_handle_t s = (rsm_memseg_export_handle_t)0x1;
        rsm_memseg_import_handle_t m = (rsm_memseg_import_handle_t)0x1;
        rsm_localmemory_handle_t l = (rsm_localmemory_handle_t)0x1;
        BAD_RC(&bc, i, rsm_get_controller_attr(h, &attr), RSMERR_BAD_CTLR_HNDL);
        BAD_RC(&bc, i, rsm_release_controller(h), RSMERR_BAD_CTLR_HNDL);
        BAD_RC(&bc, i, rsm_memseg_export_create(h, &s, other, pg, 0), RSMERR_BAD_CTLR_HNDL);
        BAD_RC(&bc, i, rsm_memseg_import_connect(h, 0, id, RSM_PERM_RDWR, &m),
               RSMERR_BAD_CTLR_HNDL);
        BAD_RC(&bc, i, rsm_create_localmemory_handle(h, &l, other, pg), RSMERR_BAD_CTLR_HNDL);
        BAD_RC(&bc, i, rsm_free_localmemory_handle(h, lh), RSMERR_BAD_CTLR_HNDL);
    }

    /* Export handles. */
    for (int i = 0; i < be.n; i++) {
        rsm_memseg_export_handle_t h = (rsm_memseg_export_handle_t)be.v[i];
        rsm_memseg_id_t want = 0;
        rsmapi_access_entry_t acl[] = {{0, 0666}};
        BAD_RC(&be, i, rsm_memseg_export_publish(h, &want, NULL, 0), RSMERR_BAD_SEG_HNDL);
        BAD_RC(&be, i, rsm_memseg_export_republish(h, acl, 1), RSMERR_BAD_SEG_HNDL);
        BAD_RC(&be, i, rsm_memseg_export_unpublish(h), RSMERR_BAD_SEG_HNDL);
        BAD_RC(&be, i, rsm_memseg_export_rebind(h, other, 0, pg), RSMERR_BAD_SEG_HNDL);
        BAD_RC(&be, i, rsm_memseg_export_destroy(h), RSMERR_BAD_SEG_HNDL);
    }

    /* Import handles: connect's out-pointer aside, every import function. */
    uint64_t words[4] = {0};
    char bytes[16] = {0};
    rsm_iovec_t iov;
    memset(&iov, 0, sizeof iov);
    iov.io_type = RSM_VA_TYPE;
    iov.local.vaddr = bytes;
    iov.transfer_length = 8;
    for (int i = 0; i < bi.n; i++) {
        rsm_memseg_import_handle_t h = (rsm_memseg_import_handle_t)bi.v[i];
        void *addr = NULL;
        rsm_barrier_mode_t mode;
        rsmapi_barrier_t bar;
        memset(&bar, 0, sizeof bar);
        BAD_RC(&bi, i, rsm_memseg_import_map(h, &addr, RSM_MAP_NONE, RSM_PERM_RDWR, 0, pg),
               RSMERR_BAD_SEG_HNDL);
        CHECK(addr == NULL);
        BAD_RC(&bi, i, rsm_memseg_import_unmap(h), RSMERR_BAD_SEG_HNDL);
        BAD_RC(&bi, i, rsm_memseg_import_disconnect(h), RSMERR_BAD_SEG_HNDL);
        BAD_RC(&bi, i, rsm_memseg_import_get(h, 0, bytes, 8), RSMERR_BAD_SEG_HNDL);
        BAD_RC(&bi, i, rsm_memseg_import_get8(h, 0, (uint8_t *)words, 1), RSMERR_BAD_SEG_HNDL);
        BAD_RC(&bi, i, rsm_memseg_import_get16(h, 0, (uint16_t *)words, 1), RSMERR_BAD_SEG_HNDL);
        BAD_RC(&bi, i, rsm_memseg_import_get32(h, 0, (uint32_t *)words, 1), RSMERR_BAD_SEG_HNDL);
        BAD_RC(&bi, i, rsm_memseg_import_get64(h, 0, words, 1), RSMERR_BAD_SEG_HNDL);
        BAD_RC(&bi, i, rsm_memseg_import_put(h, 0, bytes, 8), RSMERR_BAD_SEG_HNDL);
        BAD_RC(&bi, i, rsm_memseg_import_put8(h, 0, (uint8_t *)words, 1), RSMERR_BAD_SEG_HNDL);
        BAD_RC(&bi, i, rsm_memseg_import_put16(h, 0, (uint16_t *)words, 1), RSMERR_BAD_SEG_HNDL);
        BAD_RC(&bi, i, rsm_memseg_import_put32(h, 0, (uint32_t *)words, 1), RSMERR_BAD_SEG_HNDL);
        BAD_RC(&bi, i, rsm_memseg_import_put64(h, 0, words, 1), RSMERR_BAD_SEG_HNDL);
        rsm_scat_gath_t sg;
        memset(&sg, 0, sizeof sg);
        sg.remote_handle = h;
        sg.iovec = &iov;
        sg.io_request_count = 1;
        BAD_RC(&bi, i, rsm_memseg_import_putv(&sg), RSMERR_BAD_SEG_HNDL);
        BAD_RC(&bi, i, rsm_memseg_import_getv(&sg), RSMERR_BAD_SEG_HNDL);
        BAD_RC(&bi, i, rsm_memseg_import_init_barrier(h, RSM_BARRIER_SEGMENT, &bar),
               RSMERR_BAD_SEG_HNDL);
        CHECK(bar.seg == NULL); /* not initialised by the failed call */
        BAD_RC(&bi, i, rsm_memseg_import_get_mode(h, &mode), RSMERR_BAD_SEG_HNDL);
        BAD_RC(&bi, i, rsm_memseg_import_set_mode(h, RSM_BARRIER_MODE_EXPLICIT),
               RSMERR_BAD_SEG_HNDL);
    }

    /* Barriers carry their import handle in `seg`: a barrier initialised on
     * the live import, with a bad handle put there afterwards. NULL there
     * is an uninitialised barrier (spec 4.8); any other bad value is a bad
     * segment for open and close (docs/compatibility.md). */
    for (int i = 0; i < bi.n; i++) {
        rsmapi_barrier_t bar;
        int none = bi.v[i] == NULL;
        CHECK_RC(rsm_memseg_import_init_barrier(im, RSM_BARRIER_SEGMENT, &bar), RSM_SUCCESS);
        bar.seg = bi.v[i];
        BAD_RC(&bi, i, rsm_memseg_import_open_barrier(&bar),
               none ? RSMERR_BARRIER_UNINITIALIZED : RSMERR_BAD_SEG_HNDL);
        bar.seg = im;
        CHECK_RC(rsm_memseg_import_open_barrier(&bar), RSM_SUCCESS);
        bar.seg = bi.v[i];
        BAD_RC(&bi, i, rsm_memseg_import_close_barrier(&bar),
               none ? RSMERR_BARRIER_UNINITIALIZED : RSMERR_BAD_SEG_HNDL);
        if (none) {
            BAD_RC(&bi, i, rsm_memseg_import_order_barrier(&bar), RSMERR_BARRIER_UNINITIALIZED);
            BAD_RC(&bi, i, rsm_memseg_import_destroy_barrier(&bar),
                   RSMERR_BARRIER_UNINITIALIZED);
        } else {
            /* order and destroy check it too (they once did not). */
            bar.seg = im;
            CHECK_RC(rsm_memseg_import_open_barrier(&bar), RSM_SUCCESS);
            bar.seg = bi.v[i];
            BAD_RC(&bi, i, rsm_memseg_import_order_barrier(&bar), RSMERR_BAD_SEG_HNDL);
            BAD_RC(&bi, i, rsm_memseg_import_destroy_barrier(&bar), RSMERR_BAD_SEG_HNDL);
            bar.seg = im;
            CHECK_RC(rsm_memseg_import_close_barrier(&bar), RSM_SUCCESS);
        }
        bar.seg = im;
        CHECK_RC(rsm_memseg_import_destroy_barrier(&bar), RSM_SUCCESS);
    }
    /* A NULL barrier pointer, for each barrier function. */
    CHECK_RC(rsm_memseg_import_init_barrier(im, RSM_BARRIER_SEGMENT, NULL),
             RSMERR_BAD_BARRIER_PTR);
    CHECK_RC(rsm_memseg_import_open_barrier(NULL), RSMERR_BAD_BARRIER_PTR);
    CHECK_RC(rsm_memseg_import_order_barrier(NULL), RSMERR_BAD_BARRIER_PTR);
    CHECK_RC(rsm_memseg_import_close_barrier(NULL), RSMERR_BAD_BARRIER_PTR);
    CHECK_RC(rsm_memseg_import_destroy_barrier(NULL), RSMERR_BAD_BARRIER_PTR);
    /* Garbage barrier pointers are caught where the library checks them:
     * at init (through the kernel) and, for a misaligned one, everywhere. */
    rsmapi_barrier_t *odd = (rsmapi_barrier_t *)(bytes + 1);
    CHECK_RC(rsm_memseg_import_init_barrier(im, RSM_BARRIER_SEGMENT, (rsmapi_barrier_t *)0x40),
             RSMERR_BAD_BARRIER_PTR);
    CHECK_RC(rsm_memseg_import_init_barrier(im, RSM_BARRIER_SEGMENT,
                                            (rsmapi_barrier_t *)(uintptr_t)main),
             RSMERR_BAD_BARRIER_PTR);
    CHECK_RC(rsm_memseg_import_open_barrier(odd), RSMERR_BAD_BARRIER_PTR);
    CHECK_RC(rsm_memseg_import_order_barrier(odd), RSMERR_BAD_BARRIER_PTR);
    CHECK_RC(rsm_memseg_import_close_barrier(odd), RSMERR_BAD_BARRIER_PTR);
    CHECK_RC(rsm_memseg_import_destroy_barrier(odd), RSMERR_BAD_BARRIER_PTR);

    /* Local memory handles: free, and as the local side of an iovec. */
    for (int i = 0; i < bl.n; i++) {
        rsm_localmemory_handle_t h = (rsm_localmemory_handle_t)bl.v[i];
        BAD_RC(&bl, i, rsm_free_localmemory_handle(c, h), RSMERR_BAD_LOCALMEM_HNDL);
        if (h == NULL) continue; /* a NULL handle is not a vector entry's concern */
        rsm_iovec_t hv;
        memset(&hv, 0, sizeof hv);
        hv.io_type = RSM_HANDLE_TYPE;
        hv.local.handle = h;
        hv.transfer_length = 8;
        rsm_scat_gath_t sg;
        memset(&sg, 0, sizeof sg);
        sg.remote_handle = im;
        sg.iovec = &hv;
        sg.io_request_count = 1;
        BAD_RC(&bl, i, rsm_memseg_import_putv(&sg), RSMERR_BAD_LOCALMEM_HNDL);
        CHECK(sg.io_residual_count == 1);
        BAD_RC(&bl, i, rsm_memseg_import_getv(&sg), RSMERR_BAD_LOCALMEM_HNDL);
    }

    /* Either segment kind: signals and pollfds. */
    for (int i = 0; i < bs.n; i++) {
        void *h = bs.v[i];
        struct pollfd pfd = {-7, 0, 0};
        BAD_RC(&bs, i, rsm_intr_signal_post(h, 0), RSMERR_BAD_SEG_HNDL);
        BAD_RC(&bs, i, rsm_intr_signal_wait(h, 0), RSMERR_BAD_SEG_HNDL);
        BAD_RC(&bs, i, rsm_memseg_get_pollfd(h, &pfd), RSMERR_BAD_SEG_HNDL);
        CHECK(pfd.fd == -7); /* nothing stored */
        BAD_RC(&bs, i, rsm_memseg_release_pollfd(h), RSMERR_BAD_SEG_HNDL);
    }

    /* rsm_intr_signal_wait_pollfd takes descriptors, not handles: a bad
     * array is RSMERR_BAD_ADDR, and a released pollfd with nothing pending
     * is no event. */
    int n = 5;
    CHECK_RC(rsm_intr_signal_wait_pollfd(NULL, 1, 0, &n), RSMERR_BAD_ADDR);
    CHECK(n == 0); /* zeroed at entry */
    CHECK_RC(rsm_intr_signal_wait_pollfd((struct pollfd *)0x40, 1, 0, NULL), RSMERR_BAD_ADDR);
    CHECK_RC(rsm_intr_signal_wait_pollfd((struct pollfd *)(bytes + 1), 1, 0, NULL),
             RSMERR_BAD_ADDR);
    struct pollfd held;
    CHECK_RC(rsm_memseg_get_pollfd(im, &held), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_release_pollfd(im), RSM_SUCCESS);
    struct pollfd stale[2] = {held, {-1, POLLRDNORM, 0}};
    n = 5;
    CHECK_RC(rsm_intr_signal_wait_pollfd(stale, 2, 0, &n), RSMERR_TIMEOUT);
    CHECK(n == 0 && stale[0].revents == 0 && stale[1].revents == 0);
    CHECK_RC(rsm_intr_signal_wait_pollfd(stale, 1, 0, (int *)0x40), RSMERR_BAD_ADDR);

    /* rsm_get_interconnect_topology takes no handle; its out-pointer is
     * checked: NULL is RSMERR_BAD_TOPOLOGY_PTR, garbage RSMERR_BAD_ADDR. */
    CHECK_RC(rsm_get_interconnect_topology(NULL), RSMERR_BAD_TOPOLOGY_PTR);
    CHECK_RC(rsm_get_interconnect_topology((rsm_topology_t **)0x40), RSMERR_BAD_ADDR);
    CHECK_RC(rsm_get_interconnect_topology((rsm_topology_t **)(uintptr_t)main), RSMERR_BAD_ADDR);

    /* The live handles were not disturbed by any of it. */
    rsmapi_controller_attr_t attr;
    CHECK_RC(rsm_get_controller_attr(c, &attr), RSM_SUCCESS);
    CHECK_RC(rsm_get_controller_attr(lo, &attr), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_import_set_mode(im, RSM_BARRIER_MODE_EXPLICIT), RSM_SUCCESS);
    uint8_t b8 = 0, mark = 'M';
    CHECK_RC(rsm_memseg_import_get8(im, 1, &b8, 1), RSM_SUCCESS);
    CHECK(b8 == 'h');
    CHECK_RC(rsm_memseg_import_put8(im, 1, &mark, 1), RSM_SUCCESS);
    CHECK(buf[1] == 'M'); /* the exporter's own memory */
    lbuf[0] = 'L';
    rsm_iovec_t lv;
    memset(&lv, 0, sizeof lv);
    lv.io_type = RSM_HANDLE_TYPE;
    lv.local.handle = lh;
    lv.remote_offset = 2;
    lv.transfer_length = 1;
    rsm_scat_gath_t sg;
    memset(&sg, 0, sizeof sg);
    sg.remote_handle = im;
    sg.iovec = &lv;
    sg.io_request_count = 1;
    CHECK_RC(rsm_memseg_import_putv(&sg), RSM_SUCCESS);
    CHECK(buf[2] == 'L');
    CHECK_RC(rsm_intr_signal_post(im, 0), RSM_SUCCESS);
    CHECK_RC(rsm_intr_signal_wait(ex, 5000), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_import_disconnect(im), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_import_disconnect(im), RSMERR_BAD_SEG_HNDL);
    CHECK_RC(rsm_memseg_export_rebind(ex, other, 0, pg), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_export_unpublish(ex), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_export_destroy(ex), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_export_destroy(ex), RSMERR_BAD_SEG_HNDL);
    CHECK_RC(rsm_free_localmemory_handle(c, lh), RSM_SUCCESS);
    CHECK_RC(rsm_free_localmemory_handle(c, lh), RSMERR_BAD_LOCALMEM_HNDL);
    CHECK_RC(rsm_release_controller(lo), RSM_SUCCESS);
    CHECK_RC(rsm_release_controller(lo), RSMERR_BAD_CTLR_HNDL);
    CHECK_RC(rsm_release_controller(c), RSM_SUCCESS);
    CHECK_RC(rsm_release_controller(c), RSMERR_BAD_CTLR_HNDL);
    free(buf);
    free(gone_buf);
    free(other);
    free(lbuf);
    free(gone_lbuf);
    return report("handles");
}
