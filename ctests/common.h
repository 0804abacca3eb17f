/*
 * What every C test shares: a check macro that counts, and the closing line
 * "<test>: N passed, M failed" that `make test` reads. Tests fork real
 * processes; a child reports through its exit status.
 */
#ifndef CTESTS_COMMON_H
#define CTESTS_COMMON_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static int passed, failed;

/* CHECK_RC(call, expected): the call returns exactly the expected RSMERR. */
#define CHECK_RC(call, expected)                                                          \
    do {                                                                                  \
        int rc_ = (call);                                                                 \
        if (rc_ == (expected)) {                                                          \
            passed++;                                                                     \
        } else {                                                                          \
            failed++;                                                                     \
            fprintf(stderr, "%s:%d: %s returned %d, expected %s (%d)\n", __FILE__,        \
                    __LINE__, #call, rc_, #expected, (int)(expected));                    \
        }                                                                                 \
    } while (0)

/* CHECK(cond): any other condition. */
#define CHECK(cond)                                                                       \
    do {                                                                                  \
        if (cond) {                                                                       \
            passed++;                                                                     \
        } else {                                                                          \
            failed++;                                                                     \
            fprintf(stderr, "%s:%d: failed: %s\n", __FILE__, __LINE__, #cond);            \
        }                                                                                 \
    } while (0)

/* Waits for a child that reports its failures as its exit status. */
static inline void check_child(pid_t pid, const char *what)
{
    int status = 0;
    if (waitpid(pid, &status, 0) != pid) {
        failed++;
        fprintf(stderr, "%s: waitpid: %s\n", what, strerror(errno));
    } else if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        passed++;
    } else {
        failed++;
        fprintf(stderr, "%s: child %s %d\n", what,
                WIFEXITED(status) ? "exited with" : "died of signal",
                WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
    }
}

/* The child's end: its failure count is its exit status. */
static inline void child_exit(void)
{
    fflush(stdout);
    fflush(stderr);
    _exit(failed > 125 ? 125 : failed);
}

#ifdef _RSMAPI_H
/* An export segment's doorbell pipe (its pollfd) is made on first need and
 * kept until destroy. Tests that count descriptors around connections
 * make it first, so the count shows only what the connections hold. */
static inline void make_doorbell(rsm_memseg_export_handle_t seg)
{
    struct pollfd pfd;
    CHECK_RC(rsm_memseg_get_pollfd(seg, &pfd), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_release_pollfd(seg), RSM_SUCCESS);
}
#endif

/* ---- What several tests look at ---- */

/* This process's address space in KiB (VmSize), for RLIMIT_AS tests. */
static inline long vm_size_kb(void)
{
    long kb = 0;
    char line[256];
    FILE *f = fopen("/proc/self/status", "r");
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmSize: %ld kB", &kb) == 1) break;
    if (f) fclose(f);
    return kb;
}

/* Lowers RLIMIT_NOFILE to the lowest free descriptor, so none is left to
 * open; the limit before goes to *old, to be set back. 0, or -1. */
static inline int leave_no_descriptor(struct rlimit *old)
{
    if (getrlimit(RLIMIT_NOFILE, old) != 0) return -1;
    /* The lowest free descriptor is the next one open() would return; a
     * limit of that number leaves none. */
    int lowest = open("/dev/null", O_RDONLY);
    if (lowest < 0) return -1;
    close(lowest);
    struct rlimit low = *old;
    low.rlim_cur = (rlim_t)lowest;
    return setrlimit(RLIMIT_NOFILE, &low);
}

/* Descriptors open in this process. */
static inline int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    struct dirent *e;
    if (!d) { /* none free to read the directory with */
        struct rlimit r;
        getrlimit(RLIMIT_NOFILE, &r);
        for (int fd = 0; fd < (int)r.rlim_cur; fd++) n += fcntl(fd, F_GETFD) != -1;
        return n;
    }
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n - 1; /* the directory's own descriptor */
}

/* Mappings of this process. Under AddressSanitizer its allocator maps and
 * quarantines memory of its own as threads allocate, so there only the
 * mappings librsm makes are counted (segments are memfd mappings). */
static inline int count_maps(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    char line[512];
    int n = 0;
    while (f && fgets(line, sizeof line, f)) {
#ifdef __SANITIZE_ADDRESS__
        n += strstr(line, "memfd:") != NULL;
#else
        n++;
#endif
    }
    if (f) fclose(f);
    return n;
}

/* Whether `addr` lies in a mapping of a segment's memfd. */
static inline int backed_by_segment(const void *addr)
{
    FILE *f = fopen("/proc/self/maps", "r");
    char line[512];
    int found = 0;
    while (f && fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx", &lo, &hi) == 2 && (unsigned long)addr >= lo &&
            (unsigned long)addr < hi)
            found = strstr(line, "memfd:rsm-segment") != NULL;
    }
    if (f) fclose(f);
    return found;
}

/* A channel between a test and its children: a socket pair, so messages
 * can go with MSG_NOSIGNAL where a child may have died (SIGPIPE keeps its
 * default action, so a library that raised it would kill the test). */
static inline int duct(int fds[2]) { return socketpair(AF_UNIX, SOCK_STREAM, 0, fds); }

/* One byte from the other side; 0 at end of file. */
static inline char hear(int fd)
{
    char c = 0;
    return read(fd, &c, 1) == 1 ? c : 0;
}

static inline int report(const char *name)
{
    printf("%s: %d passed, %d failed\n", name, passed, failed);
    return failed == 0 ? 0 : 1;
}

#endif
