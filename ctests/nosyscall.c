/*
 * The data path makes no system call: between two marker calls
 * (getppid, then getpgid) this program does 1,000,000 put8 and get8 in
 * explicit mode; 100,000 each of put16/get16, put32/get32, put64/get64 and
 * bulk put/get of 256 bytes; 10,000 bulk put/get of 64 KiB; 100,000 put8
 * in implicit mode with barriers open, order and close; then 100,000
 * signal posts each way, each consumed by a wait with timeout 0 (nobody
 * sleeps, so nothing rings a doorbell). `make syscall-test` runs it under
 * strace and requires that this thread made no system call between the
 * markers. (The argument scales every count: N, N/10, N/100.) The
 * import's first get, which maps the segment once, and its first signal
 * call, which fetches its event channel once, come before them.
 */
#define _GNU_SOURCE
#include <rsmapi.h>
#include <stdint.h>
#include "common.h"

#define LEN 4096            /* the range the byte loop walks */
#define SEGLEN (128 * 1024) /* the segment: room for 64 KiB bulk copies */
#define BULK (64 * 1024)

static uint8_t bulk_out[BULK], bulk_in[BULK];

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 1000000;
    char fabric[64];
    snprintf(fabric, sizeof fabric, "ctest-nosys-%d", (int)getpid());
    setenv("RSM_FABRIC", fabric, 1);
    char *buf = valloc(SEGLEN);
    rsmapi_controller_handle_t c;
    rsm_memseg_export_handle_t seg;
    rsm_memseg_import_handle_t im;
    rsm_memseg_id_t id = 0;
    CHECK_RC(rsm_get_controller("shm0", &c), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_export_create(c, &seg, buf, SEGLEN, 0), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_export_publish(seg, &id, NULL, 0), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_import_connect(c, 0, id, RSM_PERM_RDWR, &im), RSM_SUCCESS);
    rsmapi_barrier_t bar;
    CHECK_RC(rsm_memseg_import_init_barrier(im, RSM_BARRIER_SEGMENT, &bar), RSM_SUCCESS);
    long errors = 0, wrong = 0;
    uint8_t v = 0;
    uint16_t h16[4] = {1, 2, 3, 4}, g16[4];
    uint32_t h32[4] = {5, 6, 7, 8}, g32[4];
    uint64_t h64[4] = {9, 10, 11, 12}, g64[4];
    for (size_t i = 0; i < BULK; i++) bulk_out[i] = (uint8_t)(i * 7);

    /* An import's first get or put maps the segment for the data path (one
     * mmap per connection, like Solaris' implicit map): done here, before
     * the loop, which measures the calls after it. */
    CHECK_RC(rsm_memseg_import_get8(im, 0, &v, 1), RSM_SUCCESS);
    /* Likewise its first signal call fetches its event channel (one round
     * trip to the exporter per connection, made on first use). A post, not
     * a look: a look with no channel and nothing sent fetches none. */
    CHECK_RC(rsm_intr_signal_post(im, 0), RSM_SUCCESS);
    CHECK_RC(rsm_intr_signal_wait(seg, 0), RSM_SUCCESS);

    (void)getppid(); /* start marker */
    CHECK_RC(rsm_memseg_import_set_mode(im, RSM_BARRIER_MODE_EXPLICIT), RSM_SUCCESS);
    for (long i = 0; i < n; i++) {
        v = (uint8_t)i;
        errors += rsm_memseg_import_put8(im, i % LEN, &v, 1) != 0;
        errors += rsm_memseg_import_get8(im, i % LEN, &v, 1) != 0;
    }
    /* 16/32/64-bit and 256-byte bulk, at offsets past the byte loop's. */
    for (long i = 0; i < n / 10; i++) {
        off_t o = LEN + (i % 64) * 32;
        h16[0] = (uint16_t)i;
        h32[0] = (uint32_t)i;
        h64[0] = (uint64_t)i;
        errors += rsm_memseg_import_put16(im, o, h16, 4) != 0;
        errors += rsm_memseg_import_get16(im, o, g16, 4) != 0;
        errors += rsm_memseg_import_put32(im, o + 8, h32, 4) != 0;
        errors += rsm_memseg_import_get32(im, o + 8, g32, 4) != 0;
        errors += rsm_memseg_import_put64(im, 2 * LEN + o, h64, 4) != 0;
        errors += rsm_memseg_import_get64(im, 2 * LEN + o, g64, 4) != 0;
        wrong += g16[0] != (uint16_t)i || g32[0] != (uint32_t)i || g64[0] != (uint64_t)i ||
                 g16[3] != 4 || g32[3] != 8 || g64[3] != 12;
        off_t b = 4 * LEN + (i % 16) * 256;
        errors += rsm_memseg_import_put(im, b, bulk_out + (i % 256), 256) != 0;
        errors += rsm_memseg_import_get(im, b, bulk_in, 256) != 0;
        wrong += memcmp(bulk_in, bulk_out + (i % 256), 256) != 0;
    }
    /* 64 KiB bulk. */
    for (long i = 0; i < n / 100; i++) {
        bulk_out[0] = (uint8_t)i;
        errors += rsm_memseg_import_put(im, SEGLEN - BULK, bulk_out, BULK) != 0;
        errors += rsm_memseg_import_get(im, SEGLEN - BULK, bulk_in, BULK) != 0;
        wrong += bulk_in[0] != (uint8_t)i || bulk_in[BULK - 1] != bulk_out[BULK - 1];
    }
    CHECK_RC(rsm_memseg_import_set_mode(im, RSM_BARRIER_MODE_IMPLICIT), RSM_SUCCESS);
    for (long i = 0; i < n / 10; i++) {
        errors += rsm_memseg_import_open_barrier(&bar) != 0;
        errors += rsm_memseg_import_put8(im, i % LEN, &v, 1) != 0;
        errors += rsm_memseg_import_order_barrier(&bar) != 0;
        errors += rsm_memseg_import_close_barrier(&bar) != 0;
    }
    long events = 0;
    for (long i = 0; i < n / 10; i++) {
        errors += rsm_intr_signal_post(im, 0) != 0;
        errors += rsm_intr_signal_post(seg, 0) != 0;
        events += rsm_intr_signal_wait(seg, 0) == RSM_SUCCESS;
        events += rsm_intr_signal_wait(im, 0) == RSM_SUCCESS;
    }
    (void)getpgid(0); /* end marker */

    CHECK(errors == 0);
    CHECK(wrong == 0);
    CHECK(events == 2 * (n / 10));
    /* What the last wide and bulk puts left is in the exporter's memory. */
    if (n >= 100) {
        long last = n / 10 - 1;
        uint16_t s16;
        uint64_t s64;
        memcpy(&s16, buf + LEN + (last % 64) * 32, sizeof s16);
        memcpy(&s64, buf + 2 * LEN + LEN + (last % 64) * 32, sizeof s64);
        CHECK(s16 == (uint16_t)last && s64 == (uint64_t)last);
        CHECK((uint8_t)buf[SEGLEN - BULK] == (uint8_t)(n / 100 - 1));
        CHECK(memcmp(buf + SEGLEN - BULK + 1, bulk_out + 1, BULK - 1) == 0);
    }
    CHECK_RC(rsm_intr_signal_wait(seg, 0), RSMERR_TIMEOUT);
    CHECK_RC(rsm_intr_signal_wait(im, 0), RSMERR_TIMEOUT);
    CHECK(buf[(n - 1) % LEN] == (char)(uint8_t)(n - 1) || n == 0);
    CHECK_RC(rsm_memseg_import_destroy_barrier(&bar), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_import_disconnect(im), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_export_destroy(seg), RSM_SUCCESS);
    CHECK_RC(rsm_release_controller(c), RSM_SUCCESS);
    free(buf);
    return report("nosyscall");
}
