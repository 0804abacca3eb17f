/*
 * Resource limits (issue 7, item 6).
 *
 * A. RLIMIT_NOFILE. With no descriptor free, export_create, publish and
 *    connect return RSMERR_INSUFFICIENT_RESOURCES (spec 4.4, 4.5: "cannot
 *    open a new descriptor"); with 0, 1, 2, ... descriptors free each call
 *    either succeeds or returns that code, and a failed call leaves no
 *    descriptor behind; once the limit is raised again every call succeeds.
 *    An exporter with no descriptor free cannot take an importer in: the
 *    importer gets a documented connect error, not a hang, and connects
 *    once the exporter's limit is raised.
 * B. RLIMIT_AS (skipped under ASan, which reserves terabytes). With the
 *    address space at its limit plus 0, 16, 32, ... KiB (and again with
 *    malloc exhausted as well, as in a program that ran out of memory),
 *    create returns 0 or RSMERR_INSUFFICIENT_MEM and leaves the memory as it
 *    was, publish and connect 0, RSMERR_INSUFFICIENT_MEM or _RESOURCES, map 0
 *    or RSMERR_BAD_LENGTH (spec 4.5 step 10: mmap's ENOMEM is BAD_LENGTH);
 *    the process never dies, and every call succeeds once the limit is
 *    raised.
 * C. 100,000 segments published by one process: RLIMIT_NOFILE is raised
 *    past the hard limit (each published segment holds a memfd and a
 *    listening socket; this needs CAP_SYS_RESOURCE, and vm.max_map_count is
 *    raised as root, each segment being a mapping of its own), both
 *    restored afterwards. Another process connects to the first, the last
 *    and 100 random ones and reads the right data; then all are destroyed
 *    and the exporter's descriptors and segment mappings are back where they
 *    started. Times are printed, never checked. Whatever stops it is
 *    reported as the call, the segment, the code and errno, and the test
 *    goes on with what was published.
 *
 * This process never calls the library: every case runs in a child of its
 * own (no fork ever happens while a library thread runs, see events.c).
 * Usage: limits [--fit] [segments] (default 100000). With --fit, where the
 * hard descriptor limit cannot be raised, part C publishes as many
 * segments as it allows instead (and all of those must work).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <malloc.h>
#include <rsmapi.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include "common.h"

#define SEGMENTS 100000
#define E1_ID 0x400010u   /* the exporter part A and B connect to */
#define BASE_ID 0x410000u /* part C: segments BASE_ID + 0 .. + n - 1 */

static size_t len;
static char fabric[64];
static int fit; /* --fit: part C publishes as many as the hard limit allows */

/* ---- small helpers ---- */

/* Mappings librsm makes (segments and event pages are memfds), the ones
 * checked for leaks. */
static int memfd_maps(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    char line[512];
    int n = 0;
    while (f && fgets(line, sizeof line, f)) n += strstr(line, "memfd:") != NULL;
    if (f) fclose(f);
    return n;
}

/* Prints the memfd mappings (after a leak check failed). */
static void show_memfd_maps(const char *who)
{
    FILE *f = fopen("/proc/self/maps", "r");
    char line[512];
    while (f && fgets(line, sizeof line, f))
        if (strstr(line, "memfd:")) fprintf(stderr, "limits: %s still maps %s", who, line);
    if (f) fclose(f);
}

/* The agent closes what a departed peer held asynchronously: a bounded
 * number of 1 ms naps. */
static int fds_settle_to(int want)
{
    for (int i = 0; i < 2000 && count_fds() != want; i++) usleep(1000);
    return count_fds();
}

/* A soft limit that leaves exactly `n` descriptors free. */
static rlim_t with_free(int n)
{
    int fd = 0;
    for (int free_ = 0; fd < 1 << 20; fd++) {
        if (fcntl(fd, F_GETFD) == -1) {
            if (free_ == n) break;
            free_++;
        }
    }
    return (rlim_t)fd;
}

static struct rlimit nofile0;
static void nofile(rlim_t cur)
{
    struct rlimit r = nofile0;
    r.rlim_cur = cur;
    CHECK(setrlimit(RLIMIT_NOFILE, &r) == 0);
}
static void nofile_restore(void) { CHECK(setrlimit(RLIMIT_NOFILE, &nofile0) == 0); }

static char *pages(size_t n, char c)
{
    char *p = mmap(NULL, n * len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        perror("limits: mmap");
        exit(2);
    }
    memset(p, c, n * len);
    return p;
}

static int filled(const char *p, size_t n, char c)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != c) return 0;
    return 1;
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static const char *rc_name(int rc)
{
    switch (rc) {
    case RSM_SUCCESS: return "RSM_SUCCESS";
    case RSMERR_BAD_LENGTH: return "RSMERR_BAD_LENGTH";
    case RSMERR_SEG_NOT_PUBLISHED: return "RSMERR_SEG_NOT_PUBLISHED";
    case RSMERR_INSUFFICIENT_RESOURCES: return "RSMERR_INSUFFICIENT_RESOURCES";
    case RSMERR_INSUFFICIENT_MEM: return "RSMERR_INSUFFICIENT_MEM";
    case RSMERR_REMOTE_NODE_UNREACHABLE: return "RSMERR_REMOTE_NODE_UNREACHABLE";
    case RSMERR_MAP_FAILED: return "RSMERR_MAP_FAILED";
    case RSMERR_BAD_ADDR: return "RSMERR_BAD_ADDR";
    default: return "another code";
    }
}

/* CHECK that `rc` is 0 or one of the codes given. */
static void check_in(int rc, const char *call, int a, int b)
{
    if (rc == 0 || rc == a || rc == b) {
        passed++;
    } else {
        failed++;
        fprintf(stderr, "limits: %s returned %d (%s)\n", call, rc, rc_name(rc));
    }
}

static void say(int fd, char c) { CHECK(send(fd, &c, 1, MSG_NOSIGNAL) == 1); }

/* Forks a child with clean counters and a safety alarm. */
static pid_t child(void)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        passed = failed = 0;
        alarm(300);
    }
    return pid;
}

/* ---- RLIMIT_AS helpers (not under ASan, which reserves terabytes) ---- */

#ifndef __SANITIZE_ADDRESS__
static struct rlimit as0;
/* Leaves `room` bytes of address space above what the process uses now. */
static void as_room(long room)
{
    struct rlimit r = as0;
    r.rlim_cur = (rlim_t)(vm_size_kb() * 1024 + room);
    CHECK(setrlimit(RLIMIT_AS, &r) == 0);
}
static void as_restore(void) { CHECK(setrlimit(RLIMIT_AS, &as0) == 0); }

enum as_op { AS_CREATE, AS_PUBLISH, AS_CONNECT, AS_MAP };
static const char *as_names[] = {"export_create", "export_publish", "import_connect",
                                 "import_map"};

/* In a child (a fresh process: it has started no thread yet unless
 * `warm`): `op` with `room` bytes of address space to spare, then again
 * with the limit raised. Returns through the exit status. */
/* Takes every byte malloc can still give (its free lists, then the room
 * left under the limit), as a program that ran out of memory would have. */
static void *exhaust(void)
{
    void *list = NULL;
    for (size_t size = 1 << 20; size >= sizeof(void *); size /= 2) {
        void *p;
        while ((p = malloc(size)) != NULL) {
            *(void **)p = list;
            list = p;
        }
    }
    return list;
}

static void release(void *list)
{
    while (list) {
        void *next = *(void **)list;
        free(list);
        list = next;
    }
}

#endif

/* ---- an exporter that others connect to: publishes `id` (one page of
 * `fill`), answers 'r', then obeys: '0'..'9' leaves it that many free
 * descriptors, 'u' raises the limit again, 'm' takes every byte of memory
 * malloc can give (RLIMIT_AS at what it uses, one malloc arena for all
 * threads, so its agent is out of memory too), 'M' gives it back, 'c'
 * checks its descriptors and mappings are back to where they were at 'r',
 * 'q' destroys and exits.
 * Each answered 'y' or 'n'. ---- */

struct exporter {
    pid_t pid;
    int fd;
};

static struct exporter start_exporter(rsm_memseg_id_t id, char fill)
{
    int s[2];
    struct exporter e = {0, -1};
    CHECK(duct(s) == 0);
    e.pid = child();
    if (e.pid == 0) {
        close(s[0]);
        rsmapi_controller_handle_t c;
        rsm_memseg_export_handle_t ex;
        char *buf = pages(1, fill);
#ifndef __SANITIZE_ADDRESS__
        void *hoard = NULL;
        CHECK(getrlimit(RLIMIT_AS, &as0) == 0);
        CHECK(mallopt(M_ARENA_MAX, 1) == 1);
#endif
        CHECK_RC(rsm_get_controller("shm0", &c), RSM_SUCCESS);
        CHECK_RC(rsm_memseg_export_create(c, &ex, buf, len, 0), RSM_SUCCESS);
        CHECK_RC(rsm_memseg_export_publish(ex, &id, NULL, 0), RSM_SUCCESS);
        make_doorbell(ex);
        int fds = count_fds(), maps = memfd_maps();
        say(s[1], failed ? 'n' : 'r');
        char cmd;
        while ((cmd = hear(s[1])) != 0 && cmd != 'q') {
            int before = failed;
            if (cmd >= '0' && cmd <= '9') nofile(with_free(cmd - '0'));
            if (cmd == 'u') nofile_restore();
#ifndef __SANITIZE_ADDRESS__
            if (cmd == 'm' && !hoard) {
                as_room(0);
                hoard = exhaust();
            }
            if (cmd == 'M') {
                release(hoard);
                hoard = NULL;
                as_restore();
            }
#endif
            if (cmd == 'c') {
                int now_fds = fds_settle_to(fds), now_maps = memfd_maps();
                CHECK(now_fds == fds);
                CHECK(now_maps == maps);
                if (now_fds != fds || now_maps != maps) {
                    fprintf(stderr, "limits: the exporter holds %d descriptors and %d memfd "
                                    "mappings, %d and %d before\n", now_fds, now_maps, fds, maps);
                    show_memfd_maps("the exporter");
                    fds = now_fds; /* each leak reported once */
                    maps = now_maps;
                }
            }
            say(s[1], failed == before ? 'y' : 'n');
        }
        CHECK(filled(buf, len, fill));
        CHECK_RC(rsm_memseg_export_destroy(ex), RSM_SUCCESS);
        CHECK_RC(rsm_release_controller(c), RSM_SUCCESS);
        child_exit();
    }
    close(s[1]);
    e.fd = s[0];
    CHECK(hear(e.fd) == 'r');
    return e;
}

static int command(struct exporter *e, char c)
{
    say(e->fd, c);
    return hear(e->fd) == 'y';
}

static void stop_exporter(struct exporter *e, const char *what)
{
    say(e->fd, 'q');
    check_child(e->pid, what);
    close(e->fd);
}

/* ---- A. RLIMIT_NOFILE ---- */

/* Export side, in a child. */
static void nofile_export(void)
{
    pid_t pid = child();
    if (pid != 0) {
        check_child(pid, "RLIMIT_NOFILE: create and publish");
        return;
    }
    rsmapi_controller_handle_t c;
    rsm_memseg_export_handle_t seg;
    rsm_memseg_id_t id = 0x400020;
    char *mem = pages(2, 'm');
    CHECK_RC(rsm_get_controller("shm0", &c), RSM_SUCCESS);

    /* No descriptor free: create fails, the memory is as it was. */
    nofile(with_free(0));
    int rc = rsm_memseg_export_create(c, &seg, mem, 2 * len, 0);
    nofile_restore();
    CHECK_RC(rc, RSMERR_INSUFFICIENT_RESOURCES);
    CHECK(filled(mem, 2 * len, 'm') && !backed_by_segment(mem));
    CHECK_RC(rsm_memseg_export_create(c, &seg, mem, 2 * len, 0), RSM_SUCCESS);

    /* The first publish (it also starts the agent): fails, then works. */
    nofile(with_free(0));
    rc = rsm_memseg_export_publish(seg, &id, NULL, 0);
    nofile_restore();
    CHECK_RC(rc, RSMERR_INSUFFICIENT_RESOURCES);
    CHECK_RC(rsm_memseg_export_publish(seg, &id, NULL, 0), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_export_destroy(seg), RSM_SUCCESS);
    CHECK(filled(mem, 2 * len, 'm'));

    /* 0, 1, 2, ... descriptors free: each call succeeds or says so, and
     * leaves nothing behind. */
    int fds = count_fds(), maps = memfd_maps(), first_ok = -1;
    for (int extra = 0; extra < 8; extra++) {
        nofile(with_free(extra));
        int rc1 = rsm_memseg_export_create(c, &seg, mem, 2 * len, 0);
        int rc2 = rc1 ? -1 : rsm_memseg_export_publish(seg, &id, NULL, 0);
        nofile_restore();
        check_in(rc1, "export_create", RSMERR_INSUFFICIENT_RESOURCES, 0);
        if (rc1 == 0) check_in(rc2, "export_publish", RSMERR_INSUFFICIENT_RESOURCES, 0);
        if (rc1 == 0 && rc2 == 0 && first_ok < 0) first_ok = extra;
        if (rc1 == 0 && rc2 != 0) CHECK_RC(rsm_memseg_export_publish(seg, &id, NULL, 0), RSM_SUCCESS);
        if (rc1 == 0) CHECK_RC(rsm_memseg_export_destroy(seg), RSM_SUCCESS);
        CHECK(count_fds() == fds);
        CHECK(memfd_maps() == maps);
        CHECK(filled(mem, 2 * len, 'm') && !backed_by_segment(mem));
    }
    CHECK(first_ok >= 1);
    printf("limits: create + publish need %d free descriptors\n", first_ok);
    CHECK_RC(rsm_release_controller(c), RSM_SUCCESS);
    child_exit();
}

/* Import side, in a child: connects to `e1`. */
static void nofile_import(void)
{
    pid_t pid = child();
    if (pid != 0) {
        check_child(pid, "RLIMIT_NOFILE: connect and map");
        return;
    }
    rsmapi_controller_handle_t c;
    rsm_memseg_import_handle_t im = (rsm_memseg_import_handle_t)0x1;
    CHECK_RC(rsm_get_controller("shm0", &c), RSM_SUCCESS);

    /* The first connect (it also starts the agent): fails, then works. */
    nofile(with_free(0));
    int rc = rsm_memseg_import_connect(c, 0, E1_ID, RSM_PERM_RDWR, &im);
    nofile_restore();
    CHECK_RC(rc, RSMERR_INSUFFICIENT_RESOURCES);
    CHECK(im == NULL);
    CHECK_RC(rsm_memseg_import_connect(c, 0, E1_ID, RSM_PERM_RDWR, &im), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_import_disconnect(im), RSM_SUCCESS);

    /* 0, 1, 2, ... descriptors free: connect succeeds or says so, a
     * connect that failed half way (some of the descriptors the exporter
     * sends could not be received) leaves none behind; map needs no new
     * descriptor. */
    int fds = count_fds(), maps = memfd_maps(), first_ok = -1, leaked = 0;
    for (int extra = 0; extra < 12; extra++) {
        int fds_step = count_fds();
        char *a = NULL, got[64];
        rsmapi_barrier_t bar;
        im = NULL;
        nofile(with_free(extra));
        rc = rsm_memseg_import_connect(c, 0, E1_ID, RSM_PERM_RDWR, &im);
        int mrc = rc ? -1 : rsm_memseg_import_map(im, (void **)&a, RSM_MAP_NONE, RSM_PERM_RDWR, 0, len);
        nofile_restore();
        check_in(rc, "import_connect", RSMERR_INSUFFICIENT_RESOURCES, 0);
        if (rc == 0) {
            if (first_ok < 0) first_ok = extra;
            CHECK_RC(mrc, RSM_SUCCESS);
            CHECK(a && filled(a, len, 'E'));
            if (mrc == 0) CHECK_RC(rsm_memseg_import_unmap(im), RSM_SUCCESS);
            CHECK_RC(rsm_memseg_import_init_barrier(im, RSM_BARRIER_SEGMENT, &bar), RSM_SUCCESS);
            CHECK_RC(rsm_memseg_import_get(im, 0, got, sizeof got), RSM_SUCCESS);
            CHECK(filled(got, sizeof got, 'E'));
            CHECK_RC(rsm_memseg_import_disconnect(im), RSM_SUCCESS);
        } else {
            CHECK(im == NULL);
        }
        int left = fds_settle_to(fds_step) - fds_step;
        if (left) {
            failed++;
            leaked += left;
            fprintf(stderr, "limits: connect with %d descriptors free returned %d and left %d open\n",
                    extra, rc, left);
        }
        CHECK(memfd_maps() == maps);
    }
    CHECK(fds + leaked == count_fds());
    CHECK(first_ok >= 1);
    printf("limits: connect needs %d free descriptors\n", first_ok);
    CHECK_RC(rsm_release_controller(c), RSM_SUCCESS);
    child_exit();
}

/* In a child (with RSM_CONFIG = `conf` if not NULL): connects to `id` of
 * node 0. `want` 0: must succeed, and the segment must read `fill`; -1:
 * INSUFFICIENT_RESOURCES or REMOTE_NODE_UNREACHABLE (an exporter short of
 * descriptors); else exactly `want`. Returns the code connect gave. */
static int connect_in_child(rsm_memseg_id_t id, char fill, const char *conf, int want,
                            const char *what)
{
    int s[2];
    CHECK(duct(s) == 0);
    pid_t pid = child();
    if (pid == 0) {
        close(s[0]);
        if (conf) setenv("RSM_CONFIG", conf, 1);
        rsmapi_controller_handle_t c;
        rsm_memseg_import_handle_t im = NULL;
        rsmapi_barrier_t bar;
        char got[16];
        CHECK_RC(rsm_get_controller("shm0", &c), RSM_SUCCESS);
        int rc = rsm_memseg_import_connect(c, 0, id, RSM_PERM_RDWR, &im);
        if (want == -1)
            check_in(rc, what, RSMERR_INSUFFICIENT_RESOURCES, RSMERR_REMOTE_NODE_UNREACHABLE);
        else
            CHECK_RC(rc, want);
        if (rc == 0) {
            CHECK_RC(rsm_memseg_import_init_barrier(im, RSM_BARRIER_SEGMENT, &bar), RSM_SUCCESS);
            CHECK_RC(rsm_memseg_import_get(im, 0, got, sizeof got), RSM_SUCCESS);
            CHECK(filled(got, sizeof got, fill));
            CHECK_RC(rsm_memseg_import_disconnect(im), RSM_SUCCESS);
        } else {
            CHECK(im == NULL);
        }
        CHECK(send(s[1], &rc, sizeof rc, MSG_NOSIGNAL) == (ssize_t)sizeof rc);
        CHECK_RC(rsm_release_controller(c), RSM_SUCCESS);
        child_exit();
    }
    close(s[1]);
    int rc = -1;
    CHECK(read(s[0], &rc, sizeof rc) == (ssize_t)sizeof rc);
    close(s[0]);
    check_child(pid, what);
    return rc;
}

/* An exporter with 0, 1, 2, ... descriptors free: an importer's connect
 * succeeds or fails with a documented code (after its connect timeout at
 * the latest: 1 s here) and the exporter keeps nothing of it; once the
 * exporter's limit is raised, the connect works. */
static void nofile_exporter_full(void)
{
    struct exporter e = start_exporter(0x400030, 'F');
    char conf[] = "/tmp/limits-conf-XXXXXX";
    int cf = mkstemp(conf);
    CHECK(cf >= 0 && write(cf, "connect_timeout_ms = 1000\n", 26) == 26);
    close(cf);
    int codes[9];
    for (int k = 0; k <= 8; k++) {
        CHECK(command(&e, (char)(k == 8 ? 'u' : '0' + k)));
        codes[k] = connect_in_child(0x400030, 'F', conf, k == 8 ? 0 : -1,
                                    "importer of an exporter short of descriptors");
        CHECK(command(&e, 'u'));
        CHECK(command(&e, 'c')); /* it holds what it held before */
    }
    printf("limits: connect to an exporter with 0, 1, .. 7 descriptors free, then its limit "
           "raised:");
    for (int k = 0; k <= 8; k++) printf(" %s%s", rc_name(codes[k]), k < 8 ? "," : "\n");
    stop_exporter(&e, "exporter at its RLIMIT_NOFILE");
    unlink(conf);
}

/* ---- B. RLIMIT_AS ---- */

#ifndef __SANITIZE_ADDRESS__
static void as_case(enum as_op op, long room, int warm, int starve, int *seen)
{
    int s[2];
    CHECK(duct(s) == 0);
    pid_t pid = child();
    if (pid == 0) {
        close(s[0]);
        rsmapi_controller_handle_t c;
        rsm_memseg_export_handle_t ex;
        rsm_memseg_import_handle_t im = NULL;
        rsm_memseg_id_t id = 0x400040;
        char *mem = pages(4, 'a'), *a = NULL;
        int rc;
        CHECK_RC(rsm_get_controller("shm0", &c), RSM_SUCCESS);
        if (warm) { /* the agent thread runs already */
            CHECK_RC(rsm_memseg_import_connect(c, 0, E1_ID, RSM_PERM_RDWR, &im), RSM_SUCCESS);
            CHECK_RC(rsm_memseg_import_disconnect(im), RSM_SUCCESS);
        }
        if (op == AS_PUBLISH) CHECK_RC(rsm_memseg_export_create(c, &ex, mem, 4 * len, 0), RSM_SUCCESS);
        if (op == AS_MAP) CHECK_RC(rsm_memseg_import_connect(c, 0, E1_ID, RSM_PERM_RDWR, &im), RSM_SUCCESS);
        as_room(room);
        void *hoard = starve ? exhaust() : NULL;
        switch (op) {
        case AS_CREATE: rc = rsm_memseg_export_create(c, &ex, mem, 4 * len, 0); break;
        case AS_PUBLISH: rc = rsm_memseg_export_publish(ex, &id, NULL, 0); break;
        case AS_CONNECT: rc = rsm_memseg_import_connect(c, 0, E1_ID, RSM_PERM_RDWR, &im); break;
        default: rc = rsm_memseg_import_map(im, (void **)&a, RSM_MAP_NONE, RSM_PERM_RDWR, 0, len);
        }
        release(hoard);
        as_restore();
        int first = rc;
        if (op == AS_CREATE) {
            check_in(rc, "export_create", RSMERR_INSUFFICIENT_MEM, 0);
            if (rc) CHECK(filled(mem, 4 * len, 'a') && !backed_by_segment(mem));
        }
        if (op == AS_PUBLISH || op == AS_CONNECT)
            check_in(rc, as_names[op], RSMERR_INSUFFICIENT_MEM, RSMERR_INSUFFICIENT_RESOURCES);
        if (op == AS_MAP) check_in(rc, "import_map", RSMERR_BAD_LENGTH, 0);
        /* With the limit raised, the call succeeds. */
        if (rc) {
            switch (op) {
            case AS_CREATE: rc = rsm_memseg_export_create(c, &ex, mem, 4 * len, 0); break;
            case AS_PUBLISH: rc = rsm_memseg_export_publish(ex, &id, NULL, 0); break;
            case AS_CONNECT: rc = rsm_memseg_import_connect(c, 0, E1_ID, RSM_PERM_RDWR, &im); break;
            default: rc = rsm_memseg_import_map(im, (void **)&a, RSM_MAP_NONE, RSM_PERM_RDWR, 0, len);
            }
            CHECK_RC(rc, RSM_SUCCESS);
        }
        if (op == AS_MAP && a) CHECK(filled(a, len, 'E'));
        if (op == AS_MAP) CHECK_RC(rsm_memseg_import_unmap(im), RSM_SUCCESS);
        if (op >= AS_CONNECT) CHECK_RC(rsm_memseg_import_disconnect(im), RSM_SUCCESS);
        if (op <= AS_PUBLISH) {
            CHECK_RC(rsm_memseg_export_destroy(ex), RSM_SUCCESS);
            CHECK(filled(mem, 4 * len, 'a'));
        }
        CHECK_RC(rsm_release_controller(c), RSM_SUCCESS);
        if (failed) first = 255;
        CHECK(send(s[1], &first, sizeof first, MSG_NOSIGNAL) == (ssize_t)sizeof first);
        child_exit();
    }
    close(s[1]);
    int first = -1;
    if (read(s[0], &first, sizeof first) == (ssize_t)sizeof first && first >= 0 && first < 64)
        seen[first]++;
    close(s[0]);
    char what[96];
    snprintf(what, sizeof what, "RLIMIT_AS: %s with %ld KiB to spare%s%s", as_names[op],
             room / 1024, warm ? " (agent running)" : "", starve ? ", malloc exhausted" : "");
    check_child(pid, what);
}

/* An exporter out of memory (malloc exhausted in every thread): an
 * importer's connect gets RSMERR_INSUFFICIENT_MEM, the exporter keeps
 * nothing of it and lives; with its memory back, the connect works. */
static void as_exporter_full(void)
{
    struct exporter e = start_exporter(0x400050, 'G');
    int codes[2];
    for (int k = 0; k < 2; k++) {
        CHECK(command(&e, k == 0 ? 'm' : 'M'));
        codes[k] = connect_in_child(0x400050, 'G', NULL, k == 0 ? RSMERR_INSUFFICIENT_MEM : 0,
                                    "importer of an exporter out of memory");
    }
    CHECK(command(&e, 'c'));
    printf("limits: connect to an exporter out of memory, then with its memory back: %s, %s\n",
           rc_name(codes[0]), rc_name(codes[1]));
    stop_exporter(&e, "exporter out of memory");
}

static void as_limits(void)
{
    CHECK(getrlimit(RLIMIT_AS, &as0) == 0);
    for (int op = AS_CREATE; op <= AS_MAP; op++) {
        for (int warm = 0; warm < 2; warm++) {
            int seen[64] = {0};
            for (long room = 0; room <= 1024 * 1024; room += 16 * 1024)
                as_case((enum as_op)op, room, warm, 0, seen);
            printf("limits: RLIMIT_AS, %s%s, 0..1024 KiB to spare:", as_names[op],
                   warm ? " (agent running)" : "");
            for (int rc = 0; rc < 64; rc++)
                if (seen[rc]) printf(" %s x%d", rc_name(rc), seen[rc]);
            printf("\n");
            /* And with malloc exhausted as well. */
            memset(seen, 0, sizeof seen);
            for (long room = 0; room <= 128 * 1024; room += 128 * 1024)
                as_case((enum as_op)op, room, warm, 1, seen);
            printf("limits: RLIMIT_AS, %s%s, malloc exhausted, 0 and 128 KiB to spare:", as_names[op],
                   warm ? " (agent running)" : "");
            for (int rc = 0; rc < 64; rc++)
                if (seen[rc]) printf(" %s x%d", rc_name(rc), seen[rc]);
            printf("\n");
        }
    }
}
#endif

/* ---- C. 100,000 published segments ---- */

static const char *NR_OPEN = "/proc/sys/fs/nr_open";
static const char *MAX_MAP = "/proc/sys/vm/max_map_count";
static long nr_open0, max_map0; /* what to restore; 0: untouched */

static long read_long(const char *path)
{
    long v = -1;
    FILE *f = fopen(path, "r");
    if (f && fscanf(f, "%ld", &v) != 1) v = -1;
    if (f) fclose(f);
    return v;
}

/* Async-signal-safe: also used from the alarm handler. */
static int write_long(const char *path, long v)
{
    char buf[32];
    int n = 0;
    char tmp[32];
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v && n < 30);
    for (int i = 0; i < n; i++) buf[i] = tmp[n - 1 - i];
    buf[n++] = '\n';
    int fd = open(path, O_WRONLY);
    int ok = fd >= 0 && write(fd, buf, (size_t)n) == n;
    if (fd >= 0) close(fd);
    return ok;
}

static void restore_sysctls(void)
{
    if (nr_open0) write_long(NR_OPEN, nr_open0);
    if (max_map0) write_long(MAX_MAP, max_map0);
    nr_open0 = max_map0 = 0;
}

static void on_alarm(int sig)
{
    (void)sig;
    restore_sysctls();
    static const char msg[] = "limits: timed out\n";
    if (write(2, msg, sizeof msg - 1)) {}
    _exit(1);
}

/* Raises a system limit to at least `want`, remembering the old value. */
static int raise_sysctl(const char *path, long want, long *old)
{
    long v = read_long(path);
    if (v < 0) {
        fprintf(stderr, "limits: cannot read %s\n", path);
        return 0;
    }
    if (v >= want) return 1;
    if (!write_long(path, want)) {
        fprintf(stderr, "limits: cannot raise %s from %ld to %ld: %s\n", path, v, want,
                strerror(errno));
        return 0;
    }
    *old = v;
    printf("limits: raised %s from %ld to %ld (restored at the end)\n", path, v, want);
    return 1;
}

/* The importer: connects to the first, the last and 100 random segments of
 * `n`, reads each through get and a mapping. */
static void sample_importer(int n)
{
    rsmapi_controller_handle_t c;
    CHECK_RC(rsm_get_controller("shm0", &c), RSM_SUCCESS);
    /* Warm up (the agent thread), then the starting point. */
    rsm_memseg_import_handle_t im;
    CHECK_RC(rsm_memseg_import_connect(c, 0, BASE_ID, RSM_PERM_READ, &im), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_import_disconnect(im), RSM_SUCCESS);
    int fds = count_fds(), maps = memfd_maps();
    uint64_t r = (uint64_t)getpid() * 0x9E3779B97F4A7C15ULL + 1;
    int ok = 0, tried = 0;
    double t0 = now();
    for (int k = 0; k < 102; k++) {
        int i = k == 0 ? 0 : k == 1 ? n - 1 : (int)((r = r * 6364136223846793005ULL + 1) >> 33) % n;
        rsm_memseg_id_t id = BASE_ID + (rsm_memseg_id_t)i;
        uint32_t stamp = 0;
        char *a = NULL, got[64];
        rsmapi_barrier_t bar;
        tried++;
        int rc = rsm_memseg_import_connect(c, 0, id, RSM_PERM_READ, &im);
        if (rc) {
            failed++;
            fprintf(stderr, "limits: connect to segment %d (id %#x): %d (%s)\n", i, id, rc,
                    rc_name(rc));
            continue;
        }
        /* Read-only: map read-only first (spec 4.6 step 6). */
        CHECK_RC(rsm_memseg_import_map(im, (void **)&a, RSM_MAP_NONE, RSM_PERM_READ, 0, len),
                 RSM_SUCCESS);
        CHECK_RC(rsm_memseg_import_init_barrier(im, RSM_BARRIER_SEGMENT, &bar), RSM_SUCCESS);
        CHECK_RC(rsm_memseg_import_get32(im, 0, &stamp, 1), RSM_SUCCESS);
        CHECK_RC(rsm_memseg_import_get(im, 64, got, sizeof got), RSM_SUCCESS);
        int right = stamp == id && filled(got, sizeof got, (char)(i * 7 + 1)) && a &&
                    memcmp(a, &stamp, sizeof stamp) == 0 && filled(a + len - 64, 64, (char)(i * 7 + 1));
        if (right) {
            ok++;
        } else {
            failed++;
            fprintf(stderr, "limits: segment %d (id %#x) holds other data\n", i, id);
        }
        CHECK_RC(rsm_memseg_import_unmap(im), RSM_SUCCESS);
        CHECK_RC(rsm_memseg_import_disconnect(im), RSM_SUCCESS);
    }
    double t1 = now();
    CHECK(fds_settle_to(fds) == fds);
    CHECK(memfd_maps() == maps);
    printf("limits: the importer read the right data from %d of %d segments (the first, the "
           "last, 100 random), %.0f us per connect+map+get+disconnect\n",
           ok, tried, (t1 - t0) * 1e6 / tried);
    CHECK_RC(rsm_release_controller(c), RSM_SUCCESS);
    child_exit();
}

static void hundred_thousand(int n)
{
    if (geteuid() != 0) {
        failed++;
        fprintf(stderr, "limits: %d segments need root (RLIMIT_NOFILE above the hard limit, "
                        "vm.max_map_count): not run\n", n);
        return;
    }
    /* Per segment: a memfd and a listener; one mapping (plus the rest of
     * the region between them). */
    long want_fds = 2L * n + 4096, want_maps = 2L * n + 65536;
    signal(SIGALRM, on_alarm);
    if (!raise_sysctl(NR_OPEN, want_fds, &nr_open0) || !raise_sysctl(MAX_MAP, want_maps, &max_map0)) {
        failed++;
        restore_sysctls();
        return;
    }
    int s[2];
    CHECK(duct(s) == 0);
    pid_t pid = child();
    if (pid == 0) {
        close(s[0]);
        struct rlimit big = {(rlim_t)want_fds, (rlim_t)want_fds};
        if (setrlimit(RLIMIT_NOFILE, &big) != 0) {
            /* Above the hard limit needs CAP_SYS_RESOURCE (a container may
             * withhold it even from root). With --fit, as many as the hard
             * limit allows must work; without, say so and go as far as it
             * allows, to show which call stops where. */
            int e = errno;
            big = nofile0;
            big.rlim_cur = big.rlim_max;
            CHECK(setrlimit(RLIMIT_NOFILE, &big) == 0);
            int fits = (int)(((long)big.rlim_max - 4096) / 2);
            if (fit && fits > 0) {
                printf("limits: %d segments asked; the hard descriptor limit (%ld) allows %d and "
                       "cannot be raised here (%s: needs CAP_SYS_RESOURCE): publishing %d\n",
                       n, (long)big.rlim_max, fits, strerror(e), fits);
                n = fits;
            } else {
                failed++;
                fprintf(stderr, "limits: setrlimit(RLIMIT_NOFILE, %ld) failed: %s (hard limit %ld; "
                                "raising it needs CAP_SYS_RESOURCE)\n",
                        want_fds, strerror(e), (long)nofile0.rlim_max);
            }
        }
        rsmapi_controller_handle_t c;
        CHECK_RC(rsm_get_controller("shm0", &c), RSM_SUCCESS);
        /* The starting point: after one segment came and went (the agent
         * thread runs), before the region is mapped. */
        char *one = pages(1, 'w');
        rsm_memseg_export_handle_t w;
        rsm_memseg_id_t wid = 0;
        CHECK_RC(rsm_memseg_export_create(c, &w, one, len, 0), RSM_SUCCESS);
        CHECK_RC(rsm_memseg_export_publish(w, &wid, NULL, 0), RSM_SUCCESS);
        CHECK_RC(rsm_memseg_export_destroy(w), RSM_SUCCESS);
        munmap(one, len);
        /* Mappings: those of segments (memfd); the allocator's own (the
         * heap that 100,000 handles grow) are not librsm's to give back. */
        int fds = count_fds(), maps = memfd_maps(), all_maps = count_maps();

        rsm_memseg_export_handle_t *seg = calloc((size_t)n, sizeof *seg);
        char *region = mmap(NULL, (size_t)n * len, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        CHECK(seg != NULL && region != MAP_FAILED);
        if (!seg || region == MAP_FAILED) child_exit();
        for (int i = 0; i < n; i++) {
            char *p = region + (size_t)i * len;
            memset(p, i * 7 + 1, len);
            uint32_t stamp = BASE_ID + (uint32_t)i;
            memcpy(p, &stamp, sizeof stamp);
        }
        double t0 = now(), t_create = 0;
        int made = 0;
        for (; made < n; made++) {
            rsm_memseg_id_t id = BASE_ID + (rsm_memseg_id_t)made;
            double a = now();
            errno = 0;
            int rc = rsm_memseg_export_create(c, &seg[made], region + (size_t)made * len, len, 0);
            t_create += now() - a;
            if (rc) {
                failed++;
                fprintf(stderr, "limits: rsm_memseg_export_create of segment %d returned %d (%s), "
                                "errno %d (%s), %d descriptors open\n",
                        made, rc, rc_name(rc), errno, strerror(errno), count_fds());
                break;
            }
            errno = 0;
            rc = rsm_memseg_export_publish(seg[made], &id, NULL, 0);
            if (rc) {
                failed++;
                fprintf(stderr, "limits: rsm_memseg_export_publish of segment %d (id %#x) returned "
                                "%d (%s), errno %d (%s), %d descriptors open\n",
                        made, id, rc, rc_name(rc), errno, strerror(errno), count_fds());
                CHECK_RC(rsm_memseg_export_destroy(seg[made]), RSM_SUCCESS);
                break;
            }
        }
        double t1 = now();
        int created = made;
        if (made < n) {
            /* Stopped by the descriptor limit: give back a few, or no
             * importer could connect (the exporter needs descriptors to
             * take one in). */
            int back = made < 256 ? made : 256;
            for (int i = 0; i < back; i++)
                CHECK_RC(rsm_memseg_export_destroy(seg[--made]), RSM_SUCCESS);
            printf("limits: destroyed the last %d to leave descriptors for importers\n", back);
        }
        printf("limits: published %d segments of one page in %.2f s (%.1f us each: create %.1f, "
               "publish %.1f); %d descriptors, %d memfd mappings\n",
               made, t1 - t0, (t1 - t0) * 1e6 / (made ? made : 1), t_create * 1e6 / (made ? made : 1),
               (t1 - t0 - t_create) * 1e6 / (made ? made : 1), count_fds(), memfd_maps());
        CHECK(send(s[1], &made, sizeof made, MSG_NOSIGNAL) == (ssize_t)sizeof made);
        CHECK(hear(s[1]) == 'd'); /* the importer is done */
        double t2 = now();
        int bad = 0;
        for (int i = 0; i < made; i++) bad += rsm_memseg_export_destroy(seg[i]) != RSM_SUCCESS;
        double t3 = now();
        CHECK(bad == 0);
        printf("limits: destroyed %d segments in %.2f s (%.1f us each)\n", made, t3 - t2,
               (t3 - t2) * 1e6 / (made ? made : 1));
        /* The memory is the program's again, with its data. */
        int kept = 0;
        for (int i = 0; i < created; i++) {
            uint32_t stamp;
            memcpy(&stamp, region + (size_t)i * len, sizeof stamp);
            kept += stamp == BASE_ID + (uint32_t)i && region[(size_t)i * len + len - 1] == (char)(i * 7 + 1);
        }
        CHECK(kept == created);
        CHECK(memfd_maps() == 0);
        if (memfd_maps()) show_memfd_maps("the exporter");
        munmap(region, (size_t)n * len);
        free(seg);
        int fds_end = fds_settle_to(fds), maps_end = memfd_maps();
        CHECK(fds_end == fds);
        CHECK(maps_end == maps);
        printf("limits: the exporter holds %d descriptors and %d segment mappings, %d and %d "
               "before (%d mappings in all, %d before)\n",
               fds_end, maps_end, fds, maps, count_maps(), all_maps);
        CHECK_RC(rsm_release_controller(c), RSM_SUCCESS);
        child_exit();
    }
    close(s[1]);
    int made = 0;
    CHECK(read(s[0], &made, sizeof made) == (ssize_t)sizeof made);
    if (made > 0) { /* what was published, also when not all were */
        pid_t imp = child();
        if (imp == 0) {
            close(s[0]);
            sample_importer(made);
        }
        check_child(imp, "importer of a sample");
        say(s[0], 'd');
    }
    check_child(pid, "exporter of many segments");
    close(s[0]);
    restore_sysctls();
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--fit") == 0) {
        fit = 1;
        argc--;
        argv++;
    }
    int n = argc > 1 ? atoi(argv[1]) : SEGMENTS;
    len = (size_t)sysconf(_SC_PAGESIZE);
    snprintf(fabric, sizeof fabric, "ctest-limits-%d", (int)getpid());
    setenv("RSM_FABRIC", fabric, 1);
    /* Never hang: 10 minutes, and 20 ms more per segment of part C (a
     * guest under software emulation publishes about 50 per second). */
    alarm(600 + (unsigned)(n / 50));
    CHECK(getrlimit(RLIMIT_NOFILE, &nofile0) == 0);

    struct exporter e1 = start_exporter(E1_ID, 'E');
    nofile_export();
    nofile_import();
    nofile_exporter_full();
#ifndef __SANITIZE_ADDRESS__ /* ASan reserves terabytes: RLIMIT_AS cannot apply */
    as_limits();
    as_exporter_full();
#endif
    stop_exporter(&e1, "exporter");
    hundred_thousand(n);
    return report("limits");
}
