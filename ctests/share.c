/*
 * True sharing of the exporter's own memory (DESIGN.md 5.2) and forced
 * disconnect (spec 5.2): after export_create on valloc, posix_memalign,
 * mmap or (page-aligned) malloc memory, the exporter's pointer and an
 * importer's mapping in another process are the same bytes; destroy gives
 * the exporter its data back privately; unpublish, destroy, exporter exit
 * and SIGKILL never crash an importer, whose mapping keeps working (on
 * anonymous memory) while map then reports RSMERR_CONN_ABORTED and
 * disconnect still succeeds. The loopback controller shares the same way,
 * within this node only.
 */
#define _GNU_SOURCE
#include <rsmapi.h>
#include <poll.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include "common.h"

#define LEN (4 * 4096)

static rsm_memseg_id_t next_id(void)
{
    static unsigned k;
    return 0x400000 + (rsm_memseg_id_t)(getpid() % 100000) * 16 + k++;
}

static void step(int fd) { CHECK(write(fd, "s", 1) == 1); }
static void wait_step(int fd)
{
    char b;
    CHECK(read(fd, &b, 1) == 1);
}

/* The kinds of private memory a program exports: valloc, posix_memalign,
 * anonymous mmap, and plain malloc rounded up to a page boundary. */
#define KINDS 4
static const char *kind_names[KINDS] = {"valloc", "posix_memalign", "mmap", "malloc"};

/* Returns `LEN` page-aligned bytes of memory of `kind`; `*raw` is what to
 * give back to free() or munmap(). */
static char *alloc(int kind, void **raw)
{
    void *p = NULL;
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    switch (kind) {
    case 0: p = *raw = valloc(LEN); break;
    case 1: if (posix_memalign(raw, 4096, LEN)) *raw = NULL; p = *raw; break;
    case 2:
        p = *raw = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) p = *raw = NULL;
        break;
    default: /* the heap: whole pages inside one malloc'd block */
        *raw = malloc(LEN + pg);
        p = *raw ? (void *)(((uintptr_t)*raw + pg - 1) & ~(uintptr_t)(pg - 1)) : NULL;
    }
    return p;
}

/* The exporter and an importer write to each other through one segment. */
static void sharing(int kind)
{
    void *raw = NULL;
    char *buf = alloc(kind, &raw);
    CHECK(buf != NULL);
    if (!buf) return;
    memset(buf, 'a' + kind, LEN);
    rsm_memseg_id_t id = next_id();
    int to_child[2], to_parent[2];
    CHECK(pipe(to_child) == 0 && pipe(to_parent) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        passed = failed = 0;
        close(to_child[1]);
        close(to_parent[0]);
        wait_step(to_child[0]);
        rsmapi_controller_handle_t c;
        rsm_memseg_import_handle_t im;
        char *a = NULL;
        CHECK_RC(rsm_get_controller("shm0", &c), RSM_SUCCESS);
        CHECK_RC(rsm_memseg_import_connect(c, 0, id, RSM_PERM_RDWR, &im), RSM_SUCCESS);
        CHECK_RC(rsm_memseg_import_map(im, (void **)&a, RSM_MAP_NONE, RSM_PERM_RDWR, 0, LEN),
                 RSM_SUCCESS);
        CHECK(a && a[0] == 'a' + kind && a[LEN - 1] == 'a' + kind);
        if (a) a[1] = 'I';
        step(to_parent[1]);
        wait_step(to_child[0]);
        CHECK(a && a[2] == 'E');
        CHECK_RC(rsm_memseg_import_unmap(im), RSM_SUCCESS);
        CHECK_RC(rsm_memseg_import_disconnect(im), RSM_SUCCESS);
        CHECK_RC(rsm_release_controller(c), RSM_SUCCESS);
        child_exit();
    }
    close(to_child[0]);
    close(to_parent[1]);
    rsmapi_controller_handle_t c;
    rsm_memseg_export_handle_t seg;
    CHECK_RC(rsm_get_controller("shm0", &c), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_export_create(c, &seg, buf, LEN, 0), RSM_SUCCESS);
    CHECK(buf[0] == 'a' + kind && buf[LEN - 1] == 'a' + kind); /* kept its data */
    CHECK_RC(rsm_memseg_export_publish(seg, &id, NULL, 0), RSM_SUCCESS);
    step(to_child[1]);
    wait_step(to_parent[0]);
    CHECK(buf[1] == 'I'); /* the importer's store, through our own pointer */
    buf[2] = 'E';
    step(to_child[1]);
    check_child(pid, kind_names[kind]);
    CHECK_RC(rsm_memseg_export_destroy(seg), RSM_SUCCESS);
    CHECK(buf[1] == 'I' && buf[2] == 'E' && buf[3] == 'a' + kind); /* data stays ours */
    CHECK(!backed_by_segment(buf));
    buf[4] = 'P'; /* and is still writable */
    CHECK_RC(rsm_release_controller(c), RSM_SUCCESS);
    close(to_child[1]);
    close(to_parent[0]);
    if (kind == 2) munmap(raw, LEN); else free(raw);
}

/* The loopback controller (spec 5.6) reaches only this node: an exporter
 * and an importer process of this node share the exporter's memory through
 * it, in both directions, by mapping and by get/put; its ACL may name only
 * this node, once; a connect to another node is RSMERR_CTLR_NOT_PRESENT. */
static void loopback_sharing(void)
{
    char *buf = valloc(LEN);
    CHECK(buf != NULL);
    if (!buf) return;
    memset(buf, 'l', LEN);
    rsm_memseg_id_t id = next_id();
    int to_child[2], to_parent[2];
    CHECK(pipe(to_child) == 0 && pipe(to_parent) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        passed = failed = 0;
        alarm(20);
        close(to_child[1]);
        close(to_parent[0]);
        wait_step(to_child[0]);
        rsmapi_controller_handle_t lo;
        rsm_memseg_import_handle_t im = (rsm_memseg_import_handle_t)0x1;
        char *a = NULL;
        CHECK_RC(rsm_get_controller("loopback", &lo), RSM_SUCCESS);
        CHECK_RC(rsm_memseg_import_connect(lo, 1, id, RSM_PERM_RDWR, &im),
                 RSMERR_CTLR_NOT_PRESENT);
        CHECK(im == NULL);
        CHECK_RC(rsm_memseg_import_connect(lo, 0, id, RSM_PERM_RDWR, &im), RSM_SUCCESS);
        CHECK_RC(rsm_memseg_import_map(im, (void **)&a, RSM_MAP_NONE, RSM_PERM_RDWR, 0, LEN),
                 RSM_SUCCESS);
        CHECK(a && a[0] == 'l' && a[LEN - 1] == 'l');
        if (a) a[1] = 'I'; /* a store through the mapping */
        uint8_t put = 'P', got = 0;
        CHECK_RC(rsm_memseg_import_set_mode(im, RSM_BARRIER_MODE_EXPLICIT), RSM_SUCCESS);
        CHECK_RC(rsm_memseg_import_put8(im, 3, &put, 1), RSM_SUCCESS);
        step(to_parent[1]);
        wait_step(to_child[0]);
        CHECK(a && a[2] == 'E'); /* the exporter's store, in our mapping */
        CHECK_RC(rsm_memseg_import_get8(im, 4, &got, 1), RSM_SUCCESS);
        CHECK(got == 'F');
        CHECK_RC(rsm_memseg_import_unmap(im), RSM_SUCCESS);
        CHECK_RC(rsm_memseg_import_disconnect(im), RSM_SUCCESS);
        CHECK_RC(rsm_release_controller(lo), RSM_SUCCESS);
        child_exit();
    }
    close(to_child[0]);
    close(to_parent[1]);
    rsmapi_controller_handle_t lo;
    rsm_memseg_export_handle_t seg;
    CHECK_RC(rsm_get_controller(NULL, &lo), RSM_SUCCESS); /* NULL: loopback */
    CHECK_RC(rsm_memseg_export_create(lo, &seg, buf, LEN, 0), RSM_SUCCESS);
    rsmapi_access_entry_t other_node[] = {{1, 0666}};
    rsmapi_access_entry_t twice[] = {{0, 0666}, {0, 0666}};
    rsmapi_access_entry_t this_node[] = {{0, 0666}};
    rsm_memseg_id_t asked = id;
    CHECK_RC(rsm_memseg_export_publish(seg, &asked, other_node, 1), RSMERR_BAD_ACL);
    CHECK_RC(rsm_memseg_export_publish(seg, &asked, twice, 2), RSMERR_BAD_ACL);
    CHECK_RC(rsm_memseg_export_publish(seg, &asked, this_node, 1), RSM_SUCCESS);
    CHECK(asked == id);
    step(to_child[1]);
    wait_step(to_parent[0]);
    CHECK(buf[1] == 'I' && buf[3] == 'P'); /* the importer's stores, in our memory */
    buf[2] = 'E';
    buf[4] = 'F';
    step(to_child[1]);
    check_child(pid, "importer through loopback");
    CHECK_RC(rsm_memseg_export_unpublish(seg), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_export_destroy(seg), RSM_SUCCESS);
    CHECK(buf[1] == 'I' && buf[2] == 'E' && buf[5] == 'l'); /* data stays ours */
    CHECK(!backed_by_segment(buf));
    CHECK_RC(rsm_release_controller(lo), RSM_SUCCESS);
    close(to_child[1]);
    close(to_parent[0]);
    free(buf);
}

enum how { UNPUBLISH, DESTROY, EXIT, KILL };
static const char *names[] = {"unpublish", "destroy", "exit", "SIGKILL"};

/* An exporter child publishes and then does `how`; an importer child has
 * the segment mapped throughout. */
static void forced(enum how how)
{
    rsm_memseg_id_t id = next_id();
    int exp_go[2], exp_ready[2], imp_ready[2], imp_go[2];
    CHECK(pipe(exp_go) == 0 && pipe(exp_ready) == 0 && pipe(imp_ready) == 0 && pipe(imp_go) == 0);
    pid_t exporter = fork();
    if (exporter == 0) {
        passed = failed = 0;
        char *buf = valloc(LEN);
        memset(buf, 'x', LEN);
        rsmapi_controller_handle_t c;
        rsm_memseg_export_handle_t seg;
        CHECK_RC(rsm_get_controller("shm0", &c), RSM_SUCCESS);
        CHECK_RC(rsm_memseg_export_create(c, &seg, buf, LEN, 0), RSM_SUCCESS);
        CHECK_RC(rsm_memseg_export_publish(seg, &id, NULL, 0), RSM_SUCCESS);
        step(exp_ready[1]);
        wait_step(exp_go[0]);
        if (how == UNPUBLISH) CHECK_RC(rsm_memseg_export_unpublish(seg), RSM_SUCCESS);
        if (how == DESTROY) CHECK_RC(rsm_memseg_export_destroy(seg), RSM_SUCCESS);
        if (how == EXIT) child_exit();
        step(exp_ready[1]);
        wait_step(exp_go[0]); /* KILL: killed while waiting here */
        child_exit();
    }
    wait_step(exp_ready[0]);
    pid_t importer = fork();
    if (importer == 0) {
        passed = failed = 0;
        alarm(20);
        rsmapi_controller_handle_t c;
        rsm_memseg_import_handle_t im;
        volatile char *a = NULL;
        CHECK_RC(rsm_get_controller("shm0", &c), RSM_SUCCESS);
        CHECK_RC(rsm_memseg_import_connect(c, 0, id, RSM_PERM_RDWR, &im), RSM_SUCCESS);
        CHECK_RC(rsm_memseg_import_map(im, (void **)&a, RSM_MAP_NONE, RSM_PERM_RDWR, 0, LEN),
                 RSM_SUCCESS);
        CHECK(a && a[0] == 'x');
        /* A forked child using the import it inherited sees the forced
         * disconnect too: its implicit puts end with RSMERR_CONN_ABORTED
         * (the parent's agent bumps a generation the child shares). */
        rsmapi_barrier_t bar;
        int kid_ready[2];
        CHECK_RC(rsm_memseg_import_init_barrier(im, RSM_BARRIER_SEGMENT, &bar), RSM_SUCCESS);
        CHECK(pipe(kid_ready) == 0);
        fflush(stdout);
        pid_t kid = fork();
        if (kid == 0) {
            passed = failed = 0;
            alarm(20);
            char k = 'k';
            CHECK_RC(rsm_memseg_import_put(im, 300, &k, 1), RSM_SUCCESS); /* still connected */
            step(kid_ready[1]);
            int rc, n = 0;
            while ((rc = rsm_memseg_import_put(im, 300, &k, 1)) == RSM_SUCCESS && n++ < 100000)
                usleep(100);
            CHECK_RC(rc, RSMERR_CONN_ABORTED);
            CHECK_RC(rsm_memseg_import_unmap(im), RSM_SUCCESS); /* its copy of the map */
            CHECK_RC(rsm_memseg_import_map(im, (void **)&a, RSM_MAP_NONE, RSM_PERM_READ, 0, LEN),
                     RSMERR_CONN_ABORTED);
            child_exit();
        }
        wait_step(kid_ready[0]);
        step(imp_ready[1]);
        wait_step(imp_go[0]);
        /* Keep using the mapping until it is re-pointed: no fault, ever. */
        int spins = 0;
        while (a && backed_by_segment((void *)a) && spins++ < 20000) {
            a[100] = 'y';
            (void)a[200];
            usleep(100);
        }
        CHECK(a && !backed_by_segment((void *)a));
        if (a) {
            a[0] = 'z';
            a[LEN - 1] = 'z';
            CHECK(a[0] == 'z' && a[LEN - 1] == 'z');
        }
        CHECK_RC(rsm_memseg_import_map(im, (void **)&a, RSM_MAP_NONE, RSM_PERM_RDWR, 0, LEN),
                 RSMERR_SEG_ALREADY_MAPPED);
        CHECK_RC(rsm_memseg_import_unmap(im), RSM_SUCCESS);
        void *b = NULL;
        CHECK_RC(rsm_memseg_import_map(im, &b, RSM_MAP_NONE, RSM_PERM_READ, 0, LEN),
                 RSMERR_CONN_ABORTED);
        check_child(kid, "forked child of the importer");
        CHECK_RC(rsm_memseg_import_destroy_barrier(&bar), RSM_SUCCESS);
        CHECK_RC(rsm_memseg_import_disconnect(im), RSM_SUCCESS);
        CHECK_RC(rsm_memseg_import_disconnect(im), RSMERR_BAD_SEG_HNDL);
        rsm_memseg_import_handle_t again;
        CHECK_RC(rsm_memseg_import_connect(c, 0, id, RSM_PERM_RDWR, &again),
                 RSMERR_SEG_NOT_PUBLISHED);
        child_exit();
    }
    wait_step(imp_ready[0]);
    if (how == KILL) {
        kill(exporter, SIGKILL);
        waitpid(exporter, NULL, 0);
    } else {
        step(exp_go[1]);
    }
    step(imp_go[1]);
    check_child(importer, names[how]);
    if (how == UNPUBLISH || how == DESTROY) {
        wait_step(exp_ready[0]);
        step(exp_go[1]);
    }
    if (how != KILL) check_child(exporter, "exporter");
    int fds[] = {exp_go[0], exp_go[1], exp_ready[0], exp_ready[1],
                 imp_ready[0], imp_ready[1], imp_go[0], imp_go[1]};
    for (unsigned i = 0; i < 8; i++) close(fds[i]);
}

/* An importer that exits or is killed is dropped by the exporter: the
 * exporter's descriptor for it is closed. */
static void importer_death(int use_kill)
{
    char *buf = valloc(LEN);
    rsm_memseg_id_t id = next_id();
    rsmapi_controller_handle_t c;
    rsm_memseg_export_handle_t seg;
    CHECK_RC(rsm_get_controller("shm0", &c), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_export_create(c, &seg, buf, LEN, 0), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_export_publish(seg, &id, NULL, 0), RSM_SUCCESS);
    make_doorbell(seg);
    int before = count_fds();
    int ready[2];
    CHECK(pipe(ready) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        rsm_memseg_import_handle_t im;
        int rc = rsm_memseg_import_connect(c, 0, id, RSM_PERM_READ, &im);
        CHECK(write(ready[1], rc == 0 ? "y" : "n", 1) == 1);
        if (use_kill) pause();
        _exit(0);
    }
    char b = 0;
    CHECK(read(ready[0], &b, 1) == 1 && b == 'y');
    if (use_kill) kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    close(ready[0]);
    close(ready[1]);
    int tries = 0;
    while (count_fds() != before && tries++ < 2000) usleep(1000);
    CHECK(count_fds() == before);
    CHECK_RC(rsm_memseg_export_destroy(seg), RSM_SUCCESS);
    CHECK_RC(rsm_release_controller(c), RSM_SUCCESS);
    free(buf);
}

/* An exporter that forked a long-lived child (without exec) and then
 * exited: the child does not keep the segment's socket, so a connect is
 * answered at once with RSMERR_SEG_NOT_PUBLISHED instead of waiting on a
 * process that can never answer. */
static void forked_child_lets_go(void)
{
    rsm_memseg_id_t id = next_id();
    int ready[2], child_ready[2], hold[2];
    CHECK(pipe(ready) == 0 && pipe(child_ready) == 0 && pipe(hold) == 0);
    pid_t exporter = fork();
    if (exporter == 0) {
        passed = failed = 0;
        close(ready[0]);
        close(hold[1]);
        char *buf = valloc(LEN);
        rsmapi_controller_handle_t c;
        rsm_memseg_export_handle_t seg;
        CHECK_RC(rsm_get_controller("shm0", &c), RSM_SUCCESS);
        CHECK_RC(rsm_memseg_export_create(c, &seg, buf, LEN, 0), RSM_SUCCESS);
        CHECK_RC(rsm_memseg_export_publish(seg, &id, NULL, 0), RSM_SUCCESS);
        if (fork() == 0) {
            /* The lingering child cannot act for its parent's segment. */
            int rc = rsm_memseg_export_unpublish(seg);
            if (write(child_ready[1], rc == RSMERR_NOT_CREATOR ? "y" : "n", 1) != 1) _exit(1);
            char b;
            while (read(hold[0], &b, 1) > 0) {}
            _exit(0);
        }
        char b = 0;
        CHECK(read(child_ready[0], &b, 1) == 1 && b == 'y');
        CHECK(write(ready[1], "y", 1) == 1);
        child_exit(); /* exits without unpublishing; its child lingers */
    }
    close(ready[1]);
    close(hold[0]);
    char b = 0;
    CHECK(read(ready[0], &b, 1) == 1 && b == 'y');
    check_child(exporter, "exporter that forked");
    rsmapi_controller_handle_t c;
    rsm_memseg_import_handle_t im;
    CHECK_RC(rsm_get_controller("shm0", &c), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_import_connect(c, 0, id, RSM_PERM_READ, &im), RSMERR_SEG_NOT_PUBLISHED);
    CHECK_RC(rsm_release_controller(c), RSM_SUCCESS);
    close(hold[1]); /* the lingering grandchild exits */
    close(ready[0]);
    close(child_ready[0]);
    close(child_ready[1]);
}

/* Memory that is already shared (here a MAP_SHARED anonymous mapping, as
 * SysV shm or a shared file would be) is refused, not cut off from its
 * other users; unmapped or read-only memory is refused too. */
static void refused_memory(void)
{
    rsmapi_controller_handle_t c;
    rsm_memseg_export_handle_t seg;
    CHECK_RC(rsm_get_controller("shm0", &c), RSM_SUCCESS);
    char *shared = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    CHECK(shared != MAP_FAILED);
    shared[0] = 's';
    CHECK_RC(rsm_memseg_export_create(c, &seg, shared, LEN, 0), RSMERR_BAD_ADDR);
    CHECK(shared[0] == 's');
    char *ro = mmap(NULL, LEN, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK_RC(rsm_memseg_export_create(c, &seg, ro, LEN, 0), RSMERR_PERM_DENIED);
    char *gone = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    munmap(gone, LEN);
    CHECK_RC(rsm_memseg_export_create(c, &seg, gone, LEN, 0), RSMERR_BAD_ADDR);
    /* Half exported already: the second segment would overlap the first. */
    char *buf = valloc(2 * LEN);
    rsm_memseg_export_handle_t first;
    CHECK_RC(rsm_memseg_export_create(c, &first, buf, LEN, 0), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_export_create(c, &seg, buf, 2 * LEN, 0), RSMERR_BAD_ADDR);
    CHECK_RC(rsm_memseg_export_destroy(first), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_export_create(c, &seg, buf, 2 * LEN, 0), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_export_destroy(seg), RSM_SUCCESS);
    munmap(shared, LEN);
    munmap(ro, LEN);
    free(buf);
    CHECK_RC(rsm_release_controller(c), RSM_SUCCESS);

    /* A segment bigger than this process may give memory files
     * (RLIMIT_FSIZE) is RSMERR_INSUFFICIENT_MEM, and the memory is left as
     * it was. */
    pid_t pid = fork();
    if (pid == 0) {
        passed = failed = 0;
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit small = {LEN / 2, LEN / 2};
        CHECK(setrlimit(RLIMIT_FSIZE, &small) == 0);
        char *mem = valloc(LEN);
        memset(mem, 'q', LEN);
        rsmapi_controller_handle_t cc;
        rsm_memseg_export_handle_t s;
        CHECK_RC(rsm_get_controller("shm0", &cc), RSM_SUCCESS);
        CHECK_RC(rsm_memseg_export_create(cc, &s, mem, LEN, 0), RSMERR_INSUFFICIENT_MEM);
        CHECK(mem[0] == 'q' && mem[LEN - 1] == 'q' && !backed_by_segment(mem));
        CHECK_RC(rsm_memseg_export_create(cc, &s, mem, LEN / 2, 0), RSM_SUCCESS);
        CHECK_RC(rsm_memseg_export_destroy(s), RSM_SUCCESS);
        child_exit();
    }
    check_child(pid, "RLIMIT_FSIZE");
}

#ifndef __SANITIZE_ADDRESS__ /* ASan reserves terabytes: RLIMIT_AS cannot apply */
/* Allocation failing during a connect: an importer whose address space is
 * nearly exhausted (RLIMIT_AS) cannot start the library's agent thread,
 * and gets RSMERR_INSUFFICIENT_MEM, not a crash. It must be a fresh
 * program (exec): a forked child would reuse its parent's thread stacks,
 * which glibc keeps after fork. */
static int tight_importer(rsm_memseg_id_t id)
{
    long kb = vm_size_kb();
    rsmapi_controller_handle_t c;
    rsm_memseg_import_handle_t im;
    CHECK_RC(rsm_get_controller("shm0", &c), RSM_SUCCESS);
    if (getenv("RSM_UNDER_VALGRIND")) { /* RLIMIT_AS would bound valgrind too */
        printf("share tight importer: skipped under valgrind\n");
        CHECK_RC(rsm_release_controller(c), RSM_SUCCESS);
        return report("share tight importer");
    }
    struct rlimit old;
    CHECK(getrlimit(RLIMIT_AS, &old) == 0);
    struct rlimit tight = {(rlim_t)(kb + 64) * 1024, old.rlim_max};
    CHECK(kb > 0 && setrlimit(RLIMIT_AS, &tight) == 0);
    CHECK_RC(rsm_memseg_import_connect(c, 0, id, RSM_PERM_READ, &im), RSMERR_INSUFFICIENT_MEM);
    CHECK(setrlimit(RLIMIT_AS, &old) == 0);
    CHECK_RC(rsm_memseg_import_connect(c, 0, id, RSM_PERM_READ, &im), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_import_disconnect(im), RSM_SUCCESS);
    return report("share tight importer");
}

static void connect_without_memory(void)
{
    char *buf = valloc(LEN);
    rsm_memseg_id_t id = next_id();
    rsmapi_controller_handle_t c;
    rsm_memseg_export_handle_t seg;
    CHECK_RC(rsm_get_controller("shm0", &c), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_export_create(c, &seg, buf, LEN, 0), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_export_publish(seg, &id, NULL, 0), RSM_SUCCESS);
    pid_t pid = fork();
    if (pid == 0) {
        char arg[16];
        snprintf(arg, sizeof arg, "%u", id);
        execl("/proc/self/exe", "share", "--tight-importer", arg, (char *)NULL);
        _exit(127);
    }
    check_child(pid, "connect under RLIMIT_AS");
    CHECK_RC(rsm_memseg_export_destroy(seg), RSM_SUCCESS);
    CHECK_RC(rsm_release_controller(c), RSM_SUCCESS);
    free(buf);
}
#endif

int main(int argc, char **argv)
{
#ifndef __SANITIZE_ADDRESS__
    if (argc == 3 && strcmp(argv[1], "--tight-importer") == 0)
        return tight_importer((rsm_memseg_id_t)strtoul(argv[2], NULL, 10));
#endif
    (void)argc;
    (void)argv;
    char fabric[64];
    snprintf(fabric, sizeof fabric, "ctest-share-%d", (int)getpid());
    setenv("RSM_FABRIC", fabric, 1);
    for (int kind = 0; kind < KINDS; kind++) sharing(kind);
    loopback_sharing();
    for (int how = UNPUBLISH; how <= KILL; how++) forced((enum how)how);
    importer_death(0);
    importer_death(1);
    forked_child_lets_go();
    refused_memory();
#ifndef __SANITIZE_ADDRESS__ /* ASan reserves terabytes: RLIMIT_AS cannot apply */
    connect_without_memory();
#endif
    return report("share");
}
