/*
 * Departed importers do not linger: an exporter under RLIMIT_NOFILE 64
 * serves 20,000 back-to-back connect/disconnect cycles of one importer,
 * then 4 importers at once, and every connect succeeds.
 *
 * The exporter keeps a socket and a doorbell per importer until its agent
 * sees the hang-up. An agent that accepted for as long as clients kept
 * coming never got to the hang-ups while an importer on another CPU
 * looped: the descriptors of departed importers piled up past the limit
 * and connects failed with RSMERR_INSUFFICIENT_RESOURCES. It showed with
 * two CPUs or more, the scheduler placing the processes (pinned one to a
 * CPU each, they raced far less).
 */
#define _GNU_SOURCE
#include <rsmapi.h>
#include <sys/resource.h>
#include "common.h"

#define LEN 65536
#define LIMIT 64
#define CYCLES 20000
#define IMPORTERS 4
#define CYCLES_EACH 5000

/* Waits (a bounded number of polls) for the descriptor count to come back
 * to `want`: the agent closes a departed peer's descriptors
 * asynchronously. */
static int settles_to(int want)
{
    for (int i = 0; i < 2000 && count_fds() != want; i++) usleep(1000);
    return count_fds();
}

/* `cycles` connect/disconnect cycles as fast as they go; returns how many
 * failed and reports the first failure. */
static int cycle(rsmapi_controller_handle_t c, rsm_memseg_id_t id, int cycles, const char *who)
{
    int failures = 0;
    for (int i = 0; i < cycles; i++) {
        rsm_memseg_import_handle_t im;
        int rc = rsm_memseg_import_connect(c, 0, id, RSM_PERM_RDWR, &im);
        if (rc == RSM_SUCCESS) rc = rsm_memseg_import_disconnect(im);
        if (rc != RSM_SUCCESS && failures++ == 0)
            fprintf(stderr, "linger: %s: cycle %d failed with %d\n", who, i, rc);
    }
    if (failures) fprintf(stderr, "linger: %s: %d of %d cycles failed\n", who, failures, cycles);
    return failures;
}

int main(void)
{
    char fabric[64];
    snprintf(fabric, sizeof fabric, "ctest-linger-%d", (int)getpid());
    setenv("RSM_FABRIC", fabric, 1);
    rsm_memseg_id_t id = 0x400000 + (rsm_memseg_id_t)(getpid() % 100000) * 16;
    int ready[2], done[2];
    CHECK(pipe(ready) == 0 && pipe(done) == 0);

    pid_t exporter = fork();
    if (exporter == 0) {
        passed = failed = 0;
        alarm(120); /* never hang */
        close(ready[0]);
        close(done[1]);
        struct rlimit low;
        CHECK(getrlimit(RLIMIT_NOFILE, &low) == 0);
        low.rlim_cur = LIMIT;
        CHECK(setrlimit(RLIMIT_NOFILE, &low) == 0);
        rsmapi_controller_handle_t c;
        CHECK_RC(rsm_get_controller("shm0", &c), RSM_SUCCESS);
        char *buf = valloc(LEN);
        memset(buf, 'G', LEN);
        rsm_memseg_export_handle_t seg;
        CHECK_RC(rsm_memseg_export_create(c, &seg, buf, LEN, 0), RSM_SUCCESS);
        CHECK_RC(rsm_memseg_export_publish(seg, &id, NULL, 0), RSM_SUCCESS);
        make_doorbell(seg);
        int rest = count_fds(), peak = rest;
        CHECK(write(ready[1], "r", 1) == 1);
        /* Until the importers are done, sample the descriptors held. */
        struct pollfd pfd = {.fd = done[0], .events = POLLIN};
        while (poll(&pfd, 1, 1) == 0) {
            int n = count_fds();
            if (n > peak) peak = n;
        }
        char b;
        CHECK(read(done[0], &b, 1) == 1);
        CHECK(settles_to(rest) == rest);
        printf("linger: exporter held at most %d descriptors (limit %d, %d at rest)\n", peak,
               LIMIT, rest);
        CHECK_RC(rsm_memseg_export_destroy(seg), RSM_SUCCESS);
        CHECK_RC(rsm_release_controller(c), RSM_SUCCESS);
        child_exit();
    }
    close(ready[1]);
    close(done[0]);
    alarm(120);
    char b;
    CHECK(read(ready[0], &b, 1) == 1);

    /* One importer, back to back. */
    rsmapi_controller_handle_t c;
    CHECK_RC(rsm_get_controller("shm0", &c), RSM_SUCCESS);
    CHECK(cycle(c, id, CYCLES, "one importer") == 0);
    CHECK_RC(rsm_release_controller(c), RSM_SUCCESS);

    /* Several at once: each has at most one connection live, so the
     * exporter needs a few descriptors per importer, however long they go. */
    pid_t importers[IMPORTERS];
    for (int k = 0; k < IMPORTERS; k++) {
        importers[k] = fork();
        if (importers[k] == 0) {
            passed = failed = 0;
            rsmapi_controller_handle_t ck;
            CHECK_RC(rsm_get_controller("shm0", &ck), RSM_SUCCESS);
            CHECK(cycle(ck, id, CYCLES_EACH, "one of several importers") == 0);
            CHECK_RC(rsm_release_controller(ck), RSM_SUCCESS);
            child_exit();
        }
    }
    for (int k = 0; k < IMPORTERS; k++) check_child(importers[k], "importer");

    CHECK(write(done[1], "d", 1) == 1);
    check_child(exporter, "exporter");
    return report("linger");
}
