/*
 * Scale benchmark: the cost of a connect + disconnect to one segment while
 * the exporter has 10, 1,000 or 10,000 segments published. Medians of 5
 * runs of 2,000 cycles; the ratio is against 10 published segments,
 * measured in the same run. No assertion.
 */
#define _GNU_SOURCE
#include <rsmapi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "bench.h"

#define CYCLES 2000

/* Microseconds per connect+disconnect with `n` segments published. */
static double measure(int n, const char *fabric)
{
    int ready[2], done[2];
    if (pipe(ready) || pipe(done)) exit(1);
    pid_t pid = fork();
    if (pid == 0) {
        setenv("RSM_FABRIC", fabric, 1);
        long page = sysconf(_SC_PAGESIZE);
        char *mem = valloc((size_t)page * (size_t)n);
        rsmapi_controller_handle_t c;
        if (rsm_get_controller("shm0", &c)) _exit(1);
        for (int i = 0; i < n; i++) {
            rsm_memseg_export_handle_t seg;
            rsm_memseg_id_t id = 0x400000 + (rsm_memseg_id_t)i;
            if (rsm_memseg_export_create(c, &seg, mem + (size_t)i * (size_t)page, (size_t)page, 0) ||
                rsm_memseg_export_publish(seg, &id, NULL, 0)) {
                fprintf(stderr, "scalebench: publishing segment %d failed\n", i);
                _exit(1);
            }
        }
        if (write(ready[1], "r", 1) != 1) _exit(1);
        char b;
        if (read(done[0], &b, 1) != 1) _exit(1);
        _exit(0); /* the kernel unpublishes everything */
    }
    close(ready[1]); /* so a failed exporter is end of file, not a hang */
    close(done[0]);
    char b;
    if (read(ready[0], &b, 1) != 1) {
        fprintf(stderr, "scalebench: the exporter of %d segments failed\n", n);
        exit(1);
    }
    rsmapi_controller_handle_t c;
    rsm_get_controller("shm0", &c);
    double v[RUNS];
    for (int r = 0; r < RUNS; r++) {
        double t0 = now();
        for (int i = 0; i < CYCLES; i++) {
            rsm_memseg_import_handle_t im;
            if (rsm_memseg_import_connect(c, 0, 0x400000 + (rsm_memseg_id_t)(n / 2), RSM_PERM_RDWR, &im) ||
                rsm_memseg_import_disconnect(im)) {
                fprintf(stderr, "scalebench: connect failed\n");
                exit(1);
            }
        }
        v[r] = (now() - t0) * 1e6 / CYCLES;
    }
    rsm_release_controller(c);
    if (write(done[1], "d", 1) != 1) exit(1);
    waitpid(pid, NULL, 0);
    close(ready[0]);
    close(done[1]);
    return median(v);
}

int main(void)
{
    struct rlimit fds;
    getrlimit(RLIMIT_NOFILE, &fds);
    fds.rlim_cur = fds.rlim_max; /* 2 descriptors per published segment */
    setrlimit(RLIMIT_NOFILE, &fds);
    /* 10,000 segments, or as many as the descriptor limit allows. */
    long most = ((long)fds.rlim_max - 256) / 2;
    char fabric[64];
    snprintf(fabric, sizeof fabric, "scale-%d", (int)getpid());
    setenv("RSM_FABRIC", fabric, 1);
    int counts[] = {10, 1000, most < 10000 ? (int)most : 10000};
    if (counts[2] < 10000)
        printf("(RLIMIT_NOFILE hard limit %ld: %d segments at most)\n", (long)fds.rlim_max, counts[2]);
    double us[3];
    for (int i = 0; i < 3; i++) us[i] = measure(counts[i], fabric);
    FILE *csv = fopen("bench/results/scale.csv", "w");
    if (csv) fprintf(csv, "experiment,size,ours,baseline,ratio\n");
    printf("Connect + disconnect, us per cycle (median of %d x %d); ratio = against 10 published\n",
           RUNS, CYCLES);
    for (int i = 0; i < 3; i++) {
        printf("  %6d segments published: %8.2f us  %5.2fx%s\n", counts[i], us[i], us[i] / us[0],
               i == 2 ? "  (target <= 1.2x)" : "");
        if (csv) fprintf(csv, "connect cycle us,%d,%.3f,%.3f,%.3f\n", counts[i], us[i], us[0], us[i] / us[0]);
    }
    if (csv) fclose(csv);
    return 0;
}
