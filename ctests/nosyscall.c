/*
 * The data path makes no system call: between two marker calls
 * (getppid, then getpgid) this program does 1,000,000 put8 and get8 in
 * explicit mode and 100,000 in implicit mode with barriers open, order and
 * close; then 100,000 signal posts each way, each consumed by a wait with
 * timeout 0 (nobody sleeps, so nothing rings a doorbell). `make
 * syscall-test` runs it under strace and requires that this thread made no
 * system call between the markers.
 */
#define _GNU_SOURCE
#include <rsmapi.h>
#include <stdint.h>
#include "common.h"

#define LEN 4096

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 1000000;
    char fabric[64];
    snprintf(fabric, sizeof fabric, "ctest-nosys-%d", (int)getpid());
    setenv("RSM_FABRIC", fabric, 1);
    char *buf = valloc(LEN);
    rsmapi_controller_handle_t c;
    rsm_memseg_export_handle_t seg;
    rsm_memseg_import_handle_t im;
    rsm_memseg_id_t id = 0;
    CHECK_RC(rsm_get_controller("shm0", &c), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_export_create(c, &seg, buf, LEN, 0), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_export_publish(seg, &id, NULL, 0), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_import_connect(c, 0, id, RSM_PERM_RDWR, &im), RSM_SUCCESS);
    rsmapi_barrier_t bar;
    CHECK_RC(rsm_memseg_import_init_barrier(im, RSM_BARRIER_SEGMENT, &bar), RSM_SUCCESS);
    long errors = 0;
    uint8_t v = 0;

    (void)getppid(); /* start marker */
    CHECK_RC(rsm_memseg_import_set_mode(im, RSM_BARRIER_MODE_EXPLICIT), RSM_SUCCESS);
    for (long i = 0; i < n; i++) {
        v = (uint8_t)i;
        errors += rsm_memseg_import_put8(im, i % LEN, &v, 1) != 0;
        errors += rsm_memseg_import_get8(im, i % LEN, &v, 1) != 0;
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
    CHECK(events == 2 * (n / 10));
    CHECK_RC(rsm_intr_signal_wait(seg, 0), RSMERR_TIMEOUT);
    CHECK_RC(rsm_intr_signal_wait(im, 0), RSMERR_TIMEOUT);
    CHECK(buf[(n - 1) % LEN] == (char)(uint8_t)(n - 1) || n == 0);
    CHECK_RC(rsm_memseg_import_destroy_barrier(&bar), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_import_disconnect(im), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_export_destroy(seg), RSM_SUCCESS);
    CHECK_RC(rsm_release_controller(c), RSM_SUCCESS);
    return report("nosyscall");
}
