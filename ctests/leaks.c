/*
 * No leaks: 10,000 connect/map/unmap/disconnect cycles and 1,000
 * create/publish/destroy cycles leave every process with the descriptors
 * and mappings it started with, and nothing in /dev/shm.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <rsmapi.h>
#include "common.h"

#define LEN (2 * 4096)
#define IMPORT_CYCLES 10000
#define EXPORT_CYCLES 1000

static int count_dev_shm(void)
{
    DIR *d = opendir("/dev/shm");
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d))) n++;
    if (d) closedir(d);
    return n;
}

/* Waits (a bounded number of polls) for `f()` to come back to `want`:
 * the agent closes a departed peer's descriptor asynchronously. */
static int settles_to(int (*f)(void), int want)
{
    for (int i = 0; i < 2000 && f() != want; i++) usleep(1000);
    return f();
}

int main(void)
{
    char fabric[64];
    snprintf(fabric, sizeof fabric, "ctest-leaks-%d", (int)getpid());
    setenv("RSM_FABRIC", fabric, 1);
    int shm_before = count_dev_shm();
    rsm_memseg_id_t id = 0x400000 + (rsm_memseg_id_t)(getpid() % 100000) * 16;
    int ready[2], done[2];
    CHECK(pipe(ready) == 0 && pipe(done) == 0);

    pid_t exporter = fork();
    if (exporter == 0) {
        passed = failed = 0;
        close(ready[0]);
        close(done[1]);
        rsmapi_controller_handle_t c;
        CHECK_RC(rsm_get_controller("shm0", &c), RSM_SUCCESS);
        char *buf = valloc(LEN);
        memset(buf, 'L', LEN);
        rsm_memseg_export_handle_t seg;
        CHECK_RC(rsm_memseg_export_create(c, &seg, buf, LEN, 0), RSM_SUCCESS);
        CHECK_RC(rsm_memseg_export_publish(seg, &id, NULL, 0), RSM_SUCCESS);
        make_doorbell(seg);
        int fds = count_fds(), maps = count_maps();
        CHECK(write(ready[1], "r", 1) == 1);
        char b;
        CHECK(read(done[0], &b, 1) == 1); /* the importer finished its cycles */
        CHECK(settles_to(count_fds, fds) == fds);
        CHECK(count_maps() == maps);

        /* Export side: create/publish/destroy cycles. */
        char *mem = valloc(LEN);
        memset(mem, 'M', LEN);
        int fds0 = 0, maps0 = 0;
        for (int i = 0; i < EXPORT_CYCLES; i++) {
            rsm_memseg_export_handle_t s;
            rsm_memseg_id_t sid = 0;
            int rc1 = rsm_memseg_export_create(c, &s, mem, LEN, 0);
            int rc2 = rsm_memseg_export_publish(s, &sid, NULL, 0);
            int rc3 = rsm_memseg_export_destroy(s);
            if (rc1 || rc2 || rc3) {
                CHECK(rc1 == 0 && rc2 == 0 && rc3 == 0);
                break;
            }
            /* Measure after the first cycle: it may split the heap mapping. */
            if (i == 0) {
                fds0 = count_fds();
                maps0 = count_maps();
            }
        }
        CHECK(count_fds() == fds0);
        CHECK(count_maps() == maps0);
        CHECK(mem[0] == 'M' && mem[LEN - 1] == 'M');
        printf("leaks: exporter %d fds, %d mappings after %d create/publish/destroy\n", count_fds(),
               count_maps(), EXPORT_CYCLES);
        CHECK_RC(rsm_memseg_export_destroy(seg), RSM_SUCCESS);
        child_exit();
    }
    close(ready[1]);
    close(done[0]);
    char b;
    CHECK(read(ready[0], &b, 1) == 1);

    rsmapi_controller_handle_t c;
    CHECK_RC(rsm_get_controller("shm0", &c), RSM_SUCCESS);
    int fds = 0, maps = 0, failures = 0;
    for (int i = 0; i < IMPORT_CYCLES; i++) {
        rsm_memseg_import_handle_t im;
        char *a = NULL;
        int rc1 = rsm_memseg_import_connect(c, 0, id, RSM_PERM_RDWR, &im);
        int rc2 = rc1 ? rc1 : rsm_memseg_import_map(im, (void **)&a, RSM_MAP_NONE, RSM_PERM_RDWR, 0, LEN);
        int ok = rc2 == 0 && a[0] == 'L';
        int rc3 = rc2 ? rc2 : rsm_memseg_import_unmap(im);
        int rc4 = rc1 ? rc1 : rsm_memseg_import_disconnect(im);
        if (!ok || rc3 || rc4) failures++;
        if (i == 0) { /* the first cycle starts the agent thread */
            fds = count_fds();
            maps = count_maps();
        }
    }
    CHECK(failures == 0);
    CHECK(count_fds() == fds);
    CHECK(count_maps() == maps);
    printf("leaks: importer %d fds, %d mappings after %d connect/map/unmap/disconnect\n",
           count_fds(), count_maps(), IMPORT_CYCLES);
    CHECK(write(done[1], "d", 1) == 1);
    check_child(exporter, "exporter");
    CHECK(count_dev_shm() == shm_before);
    return report("leaks");
}
