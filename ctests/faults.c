/*
 * Fault injection (issue 7, item 3): 1,000 SIGKILLs, each to an exporter or
 * an importer, at a random point of the work on a segment: connect, map, an
 * access through the mapping, unmap, barrier init/open/close/destroy, put,
 * get, signal post or wait, disconnect.
 *
 * The processes, all forked by this one, which never calls the library (so
 * no fork happens while a library thread runs, see events.c):
 *   PE  a persistent exporter; victim importers connect to its segment;
 *   W   a witness importer of PE's segment that keeps working throughout: it
 *       checks its slot still holds what it wrote last, writes a new value
 *       with put in a barrier, reads it back with get, reads PE's own region;
 *   SI  a survivor importer that works on each victim exporter's segment
 *       (connect .. disconnect cycles, and one connection held and mapped for
 *       the whole round) until that exporter has been killed;
 *   VI  a victim importer, cycling on PE's segment, and VE a victim exporter
 *       (posting, waiting, now and then unpublishing and publishing again):
 *       one per round, killed in operation number N (random) of the process
 *       at work (VI, or SI for VE). Half the time this process kills after
 *       seeing N operations done plus 0..63 us; half the time the kill comes
 *       from inside the operation: VI's own SIGKILL timer armed on entering
 *       operation N (firing 0..20 us later), or SI killing VE on entering it.
 *       One victim exporter in 16 dies while it creates or publishes.
 * After each round the survivors check: every return code was 0 or one of
 * the RSMERR codes the spec documents for the function; their descriptors
 * (/proc/self/fd) and mappings (/proc/self/maps; under ASan only memfd
 * mappings, as leaks.c) are back to their starting number (taken after four
 * warm-up rounds); PE's own region and W's slot are intact; and whatever SI
 * is told succeeded is true: a successful get returns what its successful
 * put wrote, and a successful close_barrier means the bytes read through the
 * mapping in the span were the segment's (spec 4.8), even when the exporter
 * died meanwhile. At the end no /dev/shm name and no socket of this fabric
 * is left. Nothing is timed: loops are bounded by counts and alarm() ends a
 * hang. Usage: faults [rounds [seed]].
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <rsmapi.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include "common.h"

#define ROUNDS 1000
#define PE_ID 0x400100u /* PE's segment; victim exporters use VE_BASE + round */
#define VE_BASE 0x500000u
#define OWN 0          /* an exporter's own region: [0, 1024) */
#define SLOT 1024      /* the witness's (or SI's) slot: [1024, 2048) */
#define SCRATCH 2048   /* victim importers write here: [2048, 3072) */
#define HELD 3072      /* SI's held connection: [3072, 4096) */
#define PART 1024

static size_t len; /* every segment: one page */

/* ---- what the processes share ---- */

enum op {
    OP_NONE, OP_START, OP_CONNECT, OP_MAP, OP_ACCESS, OP_UNMAP, OP_INIT_BARRIER,
    OP_OPEN_BARRIER, OP_PUT, OP_CLOSE_BARRIER, OP_GET, OP_DESTROY_BARRIER, OP_POST,
    OP_WAIT, OP_DISCONNECT, N_OPS
};
static const char *op_name[N_OPS] = {
    "none", "start", "connect", "map", "access", "unmap", "init_barrier", "open_barrier",
    "put", "close_barrier", "get", "destroy_barrier", "post", "wait", "disconnect"};

/* A MAP_SHARED page: the working process writes the operation it is in and
 * counts the operations it finished; victims count their own failures. */
struct shared {
    int op;
    unsigned long ops;
    int victim_bad;
    /* Self-timed kills: on entering operation number `kill_at`, the process
     * at work kills `kill_pid` (the victim exporter), or itself (0) with a
     * timer that fires `delay_ns` later, in the middle of the operation. */
    int armed;
    unsigned long entered, kill_at;
    pid_t kill_pid;
    long delay_ns;
    int op_at_kill;
};
static struct shared *sh;
static timer_t self_timer; /* a victim importer's SIGKILL timer */

static void enter(enum op op)
{
    __atomic_store_n(&sh->op, (int)op, __ATOMIC_SEQ_CST);
    if (!__atomic_load_n(&sh->armed, __ATOMIC_SEQ_CST) ||
        __atomic_fetch_add(&sh->entered, 1, __ATOMIC_SEQ_CST) != sh->kill_at)
        return;
    __atomic_store_n(&sh->armed, 0, __ATOMIC_SEQ_CST);
    sh->op_at_kill = (int)op;
    if (sh->kill_pid) {
        kill(sh->kill_pid, SIGKILL);
    } else {
        struct itimerspec t;
        memset(&t, 0, sizeof t);
        t.it_value.tv_nsec = sh->delay_ns > 0 ? sh->delay_ns : 1;
        timer_settime(self_timer, 0, &t, NULL);
    }
}
static void done(void) { __atomic_fetch_add(&sh->ops, 1, __ATOMIC_SEQ_CST); }

/* ---- return codes: 0 or an RSMERR the spec documents for the function ---- */

#define B(code) (1ULL << (code))
static uint64_t documented(enum op op)
{
    switch (op) {
    case OP_CONNECT: /* spec 4.5 */
        return B(RSMERR_BAD_SEG_HNDL) | B(RSMERR_BAD_CTLR_HNDL) | B(RSMERR_CTLR_NOT_PRESENT) |
               B(RSMERR_PERM_DENIED) | B(RSMERR_INSUFFICIENT_MEM) |
               B(RSMERR_INSUFFICIENT_RESOURCES) | B(RSMERR_SEG_NOT_PUBLISHED_TO_NODE) |
               B(RSMERR_SEG_NOT_PUBLISHED) | B(RSMERR_BAD_ADDR) |
               B(RSMERR_REMOTE_NODE_UNREACHABLE) | B(RSMERR_INTERRUPTED);
    case OP_MAP: /* spec 4.5, with the mmap translations of step 10 */
        return B(RSMERR_BAD_SEG_HNDL) | B(RSMERR_BAD_ADDR) | B(RSMERR_BAD_LENGTH) |
               B(RSMERR_BAD_MEM_ALIGNMENT) | B(RSMERR_BAD_OFFSET) | B(RSMERR_BAD_PERMS) |
               B(RSMERR_CONN_ABORTED) | B(RSMERR_MAP_FAILED) | B(RSMERR_SEG_ALREADY_MAPPED) |
               B(RSMERR_SEG_NOT_CONNECTED) | B(RSMERR_INSUFFICIENT_RESOURCES);
    case OP_PUT:
    case OP_GET: /* spec 4.6 */
        return B(RSMERR_BAD_SEG_HNDL) | B(RSMERR_BAD_ADDR) | B(RSMERR_BAD_MEM_ALIGNMENT) |
               B(RSMERR_BAD_OFFSET) | B(RSMERR_BAD_LENGTH) | B(RSMERR_PERM_DENIED) |
               B(RSMERR_INSUFFICIENT_RESOURCES) | B(RSMERR_BARRIER_UNINITIALIZED) |
               B(RSMERR_BARRIER_FAILURE) | B(RSMERR_CONN_ABORTED);
    case OP_INIT_BARRIER: /* spec 4.8 */
        return B(RSMERR_BAD_SEG_HNDL) | B(RSMERR_BAD_BARRIER_PTR) | B(RSMERR_INSUFFICIENT_MEM);
    case OP_OPEN_BARRIER:
        return B(RSMERR_BAD_SEG_HNDL) | B(RSMERR_BAD_BARRIER_PTR) |
               B(RSMERR_BARRIER_UNINITIALIZED) | B(RSMERR_BARRIER_OPEN_FAILED);
    case OP_CLOSE_BARRIER:
        return B(RSMERR_BAD_SEG_HNDL) | B(RSMERR_BAD_BARRIER_PTR) |
               B(RSMERR_BARRIER_UNINITIALIZED) | B(RSMERR_BARRIER_NOT_OPENED) |
               B(RSMERR_BARRIER_FAILURE) | B(RSMERR_CONN_ABORTED);
    case OP_DESTROY_BARRIER:
        return B(RSMERR_BAD_SEG_HNDL) | B(RSMERR_BAD_BARRIER_PTR) |
               B(RSMERR_BARRIER_UNINITIALIZED);
    case OP_POST: /* spec 4.9 */
        return B(RSMERR_BAD_SEG_HNDL) | B(RSMERR_CONN_ABORTED) |
               B(RSMERR_REMOTE_NODE_UNREACHABLE);
    case OP_WAIT: /* spec 4.9; CONN_ABORTED after a forced disconnect is this
                   * library's documented choice (README, events.c section 8) */
        return B(RSMERR_BAD_SEG_HNDL) | B(RSMERR_INTERRUPTED) | B(RSMERR_TIMEOUT) |
               B(RSMERR_CONN_ABORTED);
    default: /* unmap and disconnect after success: only 0 */
        return 0;
    }
}

static int badcodes; /* in a survivor: codes outside the documented set */
static unsigned long seen[N_OPS][64]; /* in a survivor: the codes it got */

/* Checks `rc` from `op` and returns it. */
static int rc_ok(enum op op, int rc, const char *who)
{
    if (rc == 0 || (rc > 0 && rc < 64 && (documented(op) & B(rc)))) {
        passed++;
        seen[op][rc]++;
    } else {
        failed++;
        badcodes++;
        fprintf(stderr, "faults: %s: %s returned %d, not a documented code\n", who,
                op_name[op], rc);
    }
    return rc;
}

/* ---- counting what a process holds ---- */

/* Every process this test made, for the /dev/shm check. */
static pid_t our_pids[4096];
static int n_our_pids;
static void ours(pid_t pid)
{
    if (n_our_pids < (int)(sizeof our_pids / sizeof our_pids[0])) our_pids[n_our_pids++] = pid;
}

/* Names in /dev/shm left by this test's processes: names holding the pid of
 * one of them that has exited, or this test's fabric. (Other programs, such
 * as tests of other transports running meanwhile, may make names there.) */
static int count_dev_shm(const char *fabric)
{
    DIR *d = opendir("/dev/shm");
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        int mine = strstr(e->d_name, fabric) != NULL;
        for (const char *p = e->d_name; *p && !mine; p++) {
            if (*p < '0' || *p > '9' || (p > e->d_name && p[-1] >= '0' && p[-1] <= '9')) continue;
            long v = strtol(p, NULL, 10);
            for (int i = 0; i < n_our_pids && !mine; i++)
                mine = v == our_pids[i] && kill(our_pids[i], 0) != 0;
        }
        if (mine) fprintf(stderr, "faults: /dev/shm/%s left behind\n", e->d_name);
        n += mine;
    }
    if (d) closedir(d);
    return n;
}

/* Sockets whose name mentions this test's fabric. */
static int count_sockets(const char *fabric)
{
    FILE *f = fopen("/proc/net/unix", "r");
    char line[512];
    int n = 0;
    while (f && fgets(line, sizeof line, f)) n += strstr(line, fabric) != NULL;
    if (f) fclose(f);
    return n;
}

struct baseline {
    int fds, maps;
};

static struct baseline measure(void)
{
    struct baseline b = {count_fds(), count_maps()};
    return b;
}

static int leaks; /* in a survivor: checks that found more than at the start */

/* Waits (a bounded number of 1 ms naps) for the agent to drop a dead peer,
 * then compares with the baseline; a leak is reported once (the baseline
 * moves). `consume` is an export handle whose events are drained
 * meanwhile, or NULL. */
static void settle(struct baseline *base, const char *who, void *consume)
{
    struct baseline b = *base, now = measure();
    for (int i = 0; i < 3000 && (now.fds != b.fds || now.maps != b.maps); i++) {
        if (consume) (void)rsm_intr_signal_wait(consume, 0);
        usleep(1000);
        now = measure();
    }
    if (now.fds == b.fds && now.maps == b.maps) {
        passed++;
    } else {
        failed++;
        leaks++;
        fprintf(stderr, "faults: %s holds %d descriptors and %d mappings, %d and %d at the start\n",
                who, now.fds, now.maps, b.fds, b.maps);
        *base = now;
    }
}

/* ---- helpers ---- */

static uint64_t rng;
static unsigned rnd(unsigned n) /* xorshift64*, 0..n-1 */
{
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return (unsigned)((rng * 0x2545F4914F6CDD1DULL) >> 33) % n;
}

static char *page(void)
{
    char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) abort();
    return p;
}

static void fill(char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++) p[i] = (char)(seed * 31 + i * 7 + 1);
}

static int same(const char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != (char)(seed * 31 + i * 7 + 1)) return 0;
    return 1;
}

static int send_all(int fd, const void *p, size_t n)
{
    return send(fd, p, n, MSG_NOSIGNAL) == (ssize_t)n;
}

static void say(int fd, char c)
{
    if (!send_all(fd, &c, 1)) _exit(120);
}

/* Is a command waiting on `fd`? */
static int pending(int fd)
{
    struct pollfd p = {fd, POLLIN, 0};
    return poll(&p, 1, 0) == 1;
}

/* A survivor's report after a check: leaks, corrupt data, bad codes (all
 * cumulative), so the parent can print the totals. */
struct tally {
    int leaks, corrupt, badcodes, false_success;
};
static int corrupt;       /* live data that changed */
static int false_success; /* a successful close over bytes that were not the segment's */
static int false_kind[2];  /* ... barrier opened before, after the forced disconnect */

static void answer(int fd)
{
    struct tally t = {leaks, corrupt, badcodes, false_success};
    if (!send_all(fd, &t, sizeof t)) _exit(120);
}

/* Channel ends the parent keeps: every child closes them first. */
static int parent_fds[16], n_parent_fds;
static void close_parent_fds(void)
{
    for (int i = 0; i < n_parent_fds; i++) close(parent_fds[i]);
}

static char fabric[64];

/* ---- PE: the persistent exporter ---- */

static void pe_main(int cmd, int ack)
{
    rsmapi_controller_handle_t c;
    rsm_memseg_export_handle_t ex;
    rsm_memseg_id_t id = PE_ID;
    char *buf = page();
    memset(buf, 0, len);
    fill(buf + OWN, PART, 7);
    CHECK_RC(rsm_get_controller("shm0", &c), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_export_create(c, &ex, buf, len, 0), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_export_publish(ex, &id, NULL, 0), RSM_SUCCESS);
    make_doorbell(ex);
    say(ack, failed ? 'n' : 'r');
    struct baseline b = {0, 0};
    unsigned long events = 0;
    for (long i = 0; i < 100000000L; i++) {
        /* Its own region: nobody else writes it. */
        if (!same(buf + OWN, PART, 7)) {
            failed++;
            corrupt++;
            fprintf(stderr, "faults: PE: its own region changed\n");
            fill(buf + OWN, PART, 7);
        }
        /* Wait a little for victims' posts; post to every importer (the
         * witness and the victim being killed) when nothing came. */
        int rc = rc_ok(OP_WAIT, rsm_intr_signal_wait(ex, 1), "PE");
        if (rc == 0) events++;
        if (rc == RSMERR_TIMEOUT) CHECK_RC(rsm_intr_signal_post(ex, 0), RSM_SUCCESS);
        if (rc != 0 && rc != RSMERR_TIMEOUT) CHECK(!"PE: wait failed");
        if (!pending(cmd)) continue;
        char c = hear(cmd);
        if (c == 'b') { /* after the warm-up rounds: the starting point */
            b = measure();
        } else if (c == 'c') { /* a round ended */
            settle(&b, "PE", ex);
        } else {
            break; /* 'q' or the parent is gone */
        }
        answer(ack);
    }
    CHECK_RC(rsm_memseg_export_destroy(ex), RSM_SUCCESS);
    CHECK_RC(rsm_release_controller(c), RSM_SUCCESS);
    printf("faults: PE consumed %lu events\n", events);
    answer(ack);
    child_exit();
}

/* ---- W: the witness importer ---- */

struct witness {
    rsm_memseg_import_handle_t im;
    rsmapi_barrier_t bar;
    unsigned v; /* the value its slot holds */
    unsigned long steps, events;
};

/* One step: what it wrote last is still there; a new value, written in a
 * barrier and read back; PE's own region as PE keeps it; a signal now and
 * then, and a short wait for PE's. */
static void w_step(struct witness *w)
{
    char mine[PART], got[PART];
    int rc = rsm_memseg_import_get(w->im, SLOT, got, PART);
    CHECK_RC(rc, RSM_SUCCESS);
    if (rc == 0 && !same(got, PART, w->v)) {
        failed++;
        corrupt++;
        fprintf(stderr, "faults: W: its slot changed\n");
    }
    w->v++;
    fill(mine, PART, w->v);
    CHECK_RC(rsm_memseg_import_open_barrier(&w->bar), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_import_put(w->im, SLOT, mine, PART), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_import_close_barrier(&w->bar), RSM_SUCCESS);
    rc = rsm_memseg_import_get(w->im, SLOT, got, PART);
    CHECK_RC(rc, RSM_SUCCESS);
    if (rc == 0 && !same(got, PART, w->v)) {
        failed++;
        corrupt++;
        fprintf(stderr, "faults: W: read back another value\n");
    }
    rc = rsm_memseg_import_get(w->im, OWN, got, PART);
    CHECK_RC(rc, RSM_SUCCESS);
    if (rc == 0 && !same(got, PART, 7)) {
        failed++;
        corrupt++;
        fprintf(stderr, "faults: W: PE's region changed\n");
    }
    if (w->steps++ % 64 == 0) CHECK_RC(rsm_intr_signal_post(w->im, 0), RSM_SUCCESS);
    rc = rsm_intr_signal_wait(w->im, 1);
    if (rc == 0) w->events++;
    if (rc != 0 && rc != RSMERR_TIMEOUT) CHECK_RC(rc, RSM_SUCCESS);
}

static void w_main(int cmd, int ack)
{
    rsmapi_controller_handle_t c;
    struct witness w;
    char mine[PART];
    memset(&w, 0, sizeof w);
    CHECK_RC(rsm_get_controller("shm0", &c), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_import_connect(c, 0, PE_ID, RSM_PERM_RDWR, &w.im), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_import_init_barrier(w.im, RSM_BARRIER_SEGMENT, &w.bar), RSM_SUCCESS);
    w.v = 1000;
    fill(mine, PART, w.v);
    CHECK_RC(rsm_memseg_import_put(w.im, SLOT, mine, PART), RSM_SUCCESS);
    struct baseline b = measure();
    say(ack, failed ? 'n' : 'r');
    for (long i = 0; i < 100000000L; i++) {
        w_step(&w);
        if (!pending(cmd)) continue;
        char cm = hear(cmd);
        if (cm == 'b') /* after the warm-up rounds: the starting point */
            b = measure();
        else if (cm == 'c')
            settle(&b, "W", NULL);
        else
            break;
        answer(ack);
    }
    CHECK_RC(rsm_memseg_import_destroy_barrier(&w.bar), RSM_SUCCESS);
    CHECK_RC(rsm_memseg_import_disconnect(w.im), RSM_SUCCESS);
    CHECK_RC(rsm_release_controller(c), RSM_SUCCESS);
    printf("faults: W wrote and checked its slot %lu times, %lu events from PE\n", w.steps,
           w.events);
    answer(ack);
    child_exit();
}

/* ---- the importer's cycle, shared by SI (checked) and VI (killed) ---- */

/* One connect .. disconnect cycle on segment `id`. `slot` is where it
 * writes; `seed` its value. A checked cycle reports every code. */
static void cycle(rsmapi_controller_handle_t c, rsm_memseg_id_t id, size_t slot, unsigned seed,
                  const char *who)
{
    rsm_memseg_import_handle_t im;
    rsmapi_barrier_t bar;
    char mine[PART], got[PART];
    char *a = NULL;
    int rc;

    enter(OP_CONNECT);
    rc = rc_ok(OP_CONNECT, rsm_memseg_import_connect(c, 0, id, RSM_PERM_RDWR, &im), who);
    done();
    if (rc != 0) return;

    enter(OP_MAP);
    rc = rc_ok(OP_MAP, rsm_memseg_import_map(im, (void **)&a, RSM_MAP_NONE, RSM_PERM_RDWR, 0, len),
               who);
    done();
    if (rc == 0) {
        enter(OP_ACCESS); /* never faults, even once the exporter is gone */
        memset(a + slot, (int)seed, PART);
        done();
        enter(OP_UNMAP);
        CHECK_RC(rsm_memseg_import_unmap(im), RSM_SUCCESS);
        done();
    }

    fill(mine, PART, seed);
    enter(OP_INIT_BARRIER);
    int inited = rc_ok(OP_INIT_BARRIER,
                       rsm_memseg_import_init_barrier(im, RSM_BARRIER_SEGMENT, &bar), who) == 0;
    done();
    int put = -1, closed = -1, get = -1;
    if (inited) {
        enter(OP_OPEN_BARRIER);
        int opened = rc_ok(OP_OPEN_BARRIER, rsm_memseg_import_open_barrier(&bar), who) == 0;
        done();
        enter(OP_PUT);
        put = rc_ok(OP_PUT, rsm_memseg_import_put(im, (off_t)slot, mine, PART), who);
        done();
        if (opened) {
            enter(OP_CLOSE_BARRIER);
            closed = rc_ok(OP_CLOSE_BARRIER, rsm_memseg_import_close_barrier(&bar), who);
            done();
        }
        enter(OP_GET);
        get = rc_ok(OP_GET, rsm_memseg_import_get(im, (off_t)slot, got, PART), who);
        done();
        enter(OP_DESTROY_BARRIER);
        rc_ok(OP_DESTROY_BARRIER, rsm_memseg_import_destroy_barrier(&bar), who);
        done();
    }
    /* What a live exporter holds is what was put: a put, close and get
     * that all succeeded saw no forced disconnect in between. */
    if (put == 0 && closed == 0 && get == 0) {
        if (same(got, PART, seed)) {
            passed++;
        } else {
            failed++;
            corrupt++;
            fprintf(stderr, "faults: %s: read back another value than it put\n", who);
        }
    }

    enter(OP_POST);
    rc_ok(OP_POST, rsm_intr_signal_post(im, 0), who);
    done();
    enter(OP_WAIT);
    rc_ok(OP_WAIT, rsm_intr_signal_wait(im, 0), who);
    done();
    enter(OP_DISCONNECT);
    CHECK_RC(rsm_memseg_import_disconnect(im), RSM_SUCCESS);
    done();
}

/* ---- SI: the survivor importer of victim exporters ---- */

static void si_main(int cmd, int ack)
{
    rsmapi_controller_handle_t c;
    CHECK_RC(rsm_get_controller("shm0", &c), RSM_SUCCESS);
    struct baseline b = measure();
    say(ack, failed ? 'n' : 'r');
    unsigned long cycles = 0;
    unsigned seed = 1;
    for (;;) {
        rsm_memseg_id_t id;
        char cm = hear(cmd);
        if (cm == 'b') { /* after the warm-up rounds: the starting point */
            b = measure();
            answer(ack);
            continue;
        }
        if (cm != 'g' || read(cmd, &id, sizeof id) != (ssize_t)sizeof id) break;
        /* A connection held, and mapped, for the whole round: the kill
         * forcibly disconnects it while it is in use. */
        rsm_memseg_import_handle_t held = NULL;
        rsmapi_barrier_t bar;
        char *a = NULL;
        if (rc_ok(OP_CONNECT, rsm_memseg_import_connect(c, 0, id, RSM_PERM_RDWR, &held), "SI")) {
            held = NULL;
        } else {
            CHECK_RC(rsm_memseg_import_init_barrier(held, RSM_BARRIER_SEGMENT, &bar), RSM_SUCCESS);
            if (rc_ok(OP_MAP, rsm_memseg_import_map(held, (void **)&a, RSM_MAP_NONE, RSM_PERM_RDWR,
                                                    0, len), "SI"))
                a = NULL;
        }
        /* Work on the victim's segment until told it is over. */
        for (long i = 0; i < 1000000L && !pending(cmd); i++, cycles++) {
            cycle(c, id, SLOT, ++seed, "SI");
            if (!held) continue;
            char mine[PART], got[PART], seen_a[PART];
            fill(mine, PART, seed);
            enter(OP_PUT);
            int put = rc_ok(OP_PUT, rsm_memseg_import_put(held, HELD, mine, PART), "SI");
            done();
            /* The same bytes through its own mapping, in a barrier: a close
             * that succeeds says every access in the span reached the
             * segment (spec 4.8), even if the exporter died meanwhile. */
            int closed = -1;
            if (a) {
                enter(OP_OPEN_BARRIER);
                int opened = rc_ok(OP_OPEN_BARRIER, rsm_memseg_import_open_barrier(&bar), "SI");
                done();
                enter(OP_ACCESS); /* a load; never faults, even after the kill */
                memcpy(seen_a, a + HELD, PART);
                done();
                if (opened == 0) {
                    enter(OP_CLOSE_BARRIER);
                    closed = rc_ok(OP_CLOSE_BARRIER, rsm_memseg_import_close_barrier(&bar), "SI");
                    done();
                }
            }
            enter(OP_GET);
            int get = rc_ok(OP_GET, rsm_memseg_import_get(held, HELD, got, PART), "SI");
            done();
            if (put == 0 && get == 0 && !same(got, PART, seed)) {
                failed++;
                corrupt++;
                fprintf(stderr, "faults: SI: get succeeded with other bytes than put wrote\n");
            }
            if (put == 0 && closed == 0 && !same(seen_a, PART, seed)) {
                failed++;
                false_success++;
                false_kind[bar.gnum != 0]++;
                if (false_success <= 3)
                    fprintf(stderr, "faults: SI: close_barrier succeeded, but its mapping read "
                                    "other bytes than put wrote (%s)\n",
                            bar.gnum ? "barrier opened after the forced disconnect"
                                     : "read between the re-pointing and the generation bump");
            }
        }
        if (a) CHECK_RC(rsm_memseg_import_unmap(held), RSM_SUCCESS);
        if (held) {
            rc_ok(OP_DESTROY_BARRIER, rsm_memseg_import_destroy_barrier(&bar), "SI");
            CHECK_RC(rsm_memseg_import_disconnect(held), RSM_SUCCESS);
        }
        cm = hear(cmd);
        if (cm != 's' && cm != 'S') break;
        enter(OP_NONE);
        if (cm == 'S') settle(&b, "SI", NULL); /* 's': a warm-up round */
        answer(ack);
    }
    CHECK_RC(rsm_release_controller(c), RSM_SUCCESS);
    printf("faults: SI ran %lu cycles on victim exporters' segments; codes other than 0:", cycles);
    for (int op = 0; op < N_OPS; op++)
        for (int rc = 1; rc < 64; rc++)
            if (seen[op][rc]) printf(" %s %d x%lu,", op_name[op], rc, seen[op][rc]);
    printf("\n");
    if (false_success)
        printf("faults: SI: close_barrier succeeded over the trash mapping %d times: %d with the "
               "barrier opened before the forced disconnect, %d after it\n",
               false_success, false_kind[0], false_kind[1]);
    answer(ack);
    child_exit();
}

/* ---- the victims ---- */

static void victim_failed(const char *what, int rc)
{
    __atomic_fetch_add(&sh->victim_bad, 1, __ATOMIC_SEQ_CST);
    fprintf(stderr, "faults: victim: %s returned %d\n", what, rc);
}

/* VI: cycles on PE's segment (scratch area) until killed. PE is alive, so
 * everything succeeds. */
static void vi_main(void)
{
    rsmapi_controller_handle_t c;
    struct sigevent sev;
    memset(&sev, 0, sizeof sev);
    sev.sigev_notify = SIGEV_SIGNAL;
    sev.sigev_signo = SIGKILL;
    if (timer_create(CLOCK_MONOTONIC, &sev, &self_timer) != 0) victim_failed("timer_create", errno);
    enter(OP_START);
    int rc = rsm_get_controller("shm0", &c);
    if (rc) victim_failed("rsm_get_controller", rc);
    done();
    for (int i = 0; i < 100000; i++) {
        int before = failed;
        cycle(c, PE_ID, SCRATCH, (unsigned)i, "VI");
        if (failed != before) victim_failed("a cycle", failed - before);
    }
    pause();
    _exit(0);
}

/* VE: publishes `id`, answers 'r' on `ready`, then posts, waits, checks its
 * own region and now and then unpublishes and publishes again, until
 * killed. */
static void ve_main(rsm_memseg_id_t id, int ready)
{
    rsmapi_controller_handle_t c;
    rsm_memseg_export_handle_t ex;
    char *buf = page();
    memset(buf, 0, len);
    fill(buf + OWN, PART, 9);
    int rc = rsm_get_controller("shm0", &c);
    if (rc) victim_failed("rsm_get_controller", rc);
    rc = rsm_memseg_export_create(c, &ex, buf, len, 0);
    if (rc) victim_failed("rsm_memseg_export_create", rc);
    rc = rsm_memseg_export_publish(ex, &id, NULL, 0);
    if (rc) victim_failed("rsm_memseg_export_publish", rc);
    (void)send_all(ready, "r", 1); /* the parent may have stopped listening (early kill) */
    uint64_t r = (uint64_t)getpid() * 0x9E3779B97F4A7C15ULL;
    for (int i = 0; i < 1000000; i++) {
        rc = rsm_intr_signal_post(ex, 0);
        if (rc) victim_failed("rsm_intr_signal_post", rc);
        rc = rsm_intr_signal_wait(ex, 1);
        if (rc != 0 && rc != RSMERR_TIMEOUT) victim_failed("rsm_intr_signal_wait", rc);
        if (!same(buf + OWN, PART, 9)) victim_failed("its own region changed", 0);
        r = r * 6364136223846793005ULL + 1;
        if ((r >> 33) % 16 == 0) {
            rc = rsm_memseg_export_unpublish(ex);
            if (rc) victim_failed("rsm_memseg_export_unpublish", rc);
            rc = rsm_memseg_export_publish(ex, &id, NULL, 0);
            if (rc) victim_failed("rsm_memseg_export_publish again", rc);
        }
    }
    pause();
    _exit(0);
}

/* ---- the parent ---- */

struct survivor {
    pid_t pid;
    int cmd, ack;
    const char *name;
    struct tally t;
};

static struct survivor start(void (*fn)(int, int), const char *name)
{
    int cmd[2], ack[2];
    struct survivor s = {0, -1, -1, name, {0, 0, 0, 0}};
    CHECK(duct(cmd) == 0 && duct(ack) == 0);
    fflush(stdout);
    fflush(stderr);
    s.pid = fork();
    if (s.pid == 0) {
        close_parent_fds();
        close(cmd[1]);
        close(ack[0]);
        passed = failed = 0;
        alarm(600); /* the parent's alarm ends the test first */
        fn(cmd[0], ack[1]);
        _exit(0);
    }
    ours(s.pid);
    close(cmd[0]);
    close(ack[1]);
    s.cmd = cmd[1];
    s.ack = ack[0];
    parent_fds[n_parent_fds++] = s.cmd;
    parent_fds[n_parent_fds++] = s.ack;
    char r = hear(s.ack);
    if (r != 'r') {
        fprintf(stderr, "faults: %s did not start (%c)\n", name, r ? r : '0');
        exit(report("faults"));
    }
    return s;
}

/* Sends a command and reads the survivor's tally. */
static int ask(struct survivor *s, const void *msg, size_t n)
{
    struct tally t;
    if (!send_all(s->cmd, msg, n) || read(s->ack, &t, sizeof t) != (ssize_t)sizeof t) {
        failed++;
        fprintf(stderr, "faults: %s is gone\n", s->name);
        return 0;
    }
    s->t = t;
    passed++;
    return 1;
}

static pid_t fork_victim(void)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        close_parent_fds();
        passed = failed = 0;
        alarm(30);
    }
    ours(pid);
    return pid;
}

/* Waits until the working process finished `target` operations, so it is
 * in operation number `target`, then 0..63 us more (a spin: usleep would
 * oversleep), bounded by counts. */
static int early_status = -1; /* a victim reaped before its kill */

static void wait_ops(unsigned long target, pid_t victim)
{
    early_status = -1;
    for (long k = 0; k < 50000000L && __atomic_load_n(&sh->ops, __ATOMIC_SEQ_CST) < target; k++) {
        int status = 0;
        if (k % 4096 == 4095 && waitpid(victim, &status, WNOHANG) == victim) {
            early_status = status; /* died on its own: a crash */
            return;
        }
        if (k > 1000000L) usleep(10); /* it is slow (ASan, a loaded machine) */
    }
    unsigned d = rnd(2) ? rnd(4) : rnd(64);
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long k = 0; d && k < 10000000L; k++) {
        clock_gettime(CLOCK_MONOTONIC, &t);
        if ((t.tv_sec - t0.tv_sec) * 1000000L + (t.tv_nsec - t0.tv_nsec) / 1000 >= (long)d) break;
    }
}

static int crashes;

/* Kills the victim, checks it died of our SIGKILL and nothing else. */
static void kill_victim(pid_t pid, const char *what, int by_us)
{
    int status = early_status;
    early_status = -1;
    if (status == -1 && by_us) kill(pid, SIGKILL);
    if (status == -1 && waitpid(pid, &status, 0) != pid) {
        failed++;
        fprintf(stderr, "faults: waitpid %s: %s\n", what, strerror(errno));
    } else if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) {
        passed++;
    } else {
        failed++;
        crashes++;
        fprintf(stderr, "faults: %s %s %d before the kill\n", what,
                WIFEXITED(status) ? "exited with" : "died of signal",
                WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
    }
}

static struct survivor pe, w, si;
static int kills_ex, kills_im, early_ex, alive = 1;
static int hist_vi[N_OPS], hist_si[N_OPS];

/* One round: a victim importer (kind 0) or exporter (kind 1) is killed in
 * operation number `target` of the process at work (the victim importer,
 * or SI on the victim exporter's segment); with `check`, the survivors
 * check themselves afterwards. */
static void round_(int round, int kind, unsigned long target, int check)
{
    /* Half the kills come from this process after a random delay; the
     * other half on entering operation number `target` exactly. */
    int timed = check && rnd(2);
    __atomic_store_n(&sh->ops, 0, __ATOMIC_SEQ_CST);
    __atomic_store_n(&sh->op, OP_NONE, __ATOMIC_SEQ_CST);
    __atomic_store_n(&sh->entered, 0, __ATOMIC_SEQ_CST);
    sh->kill_at = target;
    sh->kill_pid = 0;
    sh->delay_ns = rnd(2) ? (long)rnd(1000) : (long)rnd(20000);
    __atomic_store_n(&sh->armed, kind == 0 && timed, __ATOMIC_SEQ_CST);
    if (kind == 0) {
        /* An importer dies; PE and W survive. */
        pid_t pid = fork_victim();
        if (pid == 0) vi_main();
        if (!timed) wait_ops(target, pid);
        kill_victim(pid, "victim importer", !timed);
        hist_vi[__atomic_load_n(&sh->op, __ATOMIC_SEQ_CST)]++;
        kills_im++;
    } else {
        /* An exporter dies while SI works on its segment. */
        rsm_memseg_id_t id = VE_BASE + (rsm_memseg_id_t)round;
        int ready[2];
        CHECK(duct(ready) == 0);
        pid_t pid = fork_victim();
        if (pid == 0) {
            close(ready[0]);
            ve_main(id, ready[1]);
        }
        close(ready[1]);
        /* One in 16: killed while it creates or publishes. */
        int early = check && rnd(16) == 0;
        if (early) {
            unsigned d = rnd(2000);
            if (d) usleep(d);
        } else if (hear(ready[0]) != 'r') {
            CHECK(!"victim exporter did not publish");
        }
        close(ready[0]);
        if (timed && !early) { /* SI kills it on entering operation `target` */
            sh->kill_pid = pid;
            __atomic_store_n(&sh->armed, 1, __ATOMIC_SEQ_CST);
        }
        char go[1 + sizeof id] = {'g'};
        memcpy(go + 1, &id, sizeof id);
        if (!send_all(si.cmd, go, sizeof go)) alive = 0;
        if (early) {
            early_ex++;
        } else if (!timed) {
            wait_ops(target, pid);
            sh->op_at_kill = __atomic_load_n(&sh->op, __ATOMIC_SEQ_CST);
        }
        kill_victim(pid, "victim exporter", !timed || early);
        if (!early) hist_si[__atomic_load_n(&sh->op_at_kill, __ATOMIC_SEQ_CST)]++;
        kills_ex++;
        /* SI goes on until it notices, then stops and checks. */
        for (int k = 0; k < 2000 && __atomic_load_n(&sh->ops, __ATOMIC_SEQ_CST) < target + 20; k++)
            usleep(50);
        alive &= ask(&si, check ? "S" : "s", 1);
    }
    if (check) {
        alive &= ask(&pe, "c", 1);
        alive &= ask(&w, "c", 1);
    }
    if (__atomic_load_n(&sh->victim_bad, __ATOMIC_SEQ_CST)) {
        failed++;
        fprintf(stderr, "faults: round %d: a victim saw a failure before it was killed\n", round);
        __atomic_store_n(&sh->victim_bad, 0, __ATOMIC_SEQ_CST);
    }
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : ROUNDS;
    rng = argc > 2 ? strtoull(argv[2], NULL, 0) : (uint64_t)time(NULL) * 2654435761u ^ (uint64_t)getpid();
    if (rng == 0) rng = 1;
    printf("faults: %d rounds, seed %llu\n", rounds, (unsigned long long)rng);
    len = (size_t)sysconf(_SC_PAGESIZE);
    snprintf(fabric, sizeof fabric, "ctest-faults-%d", (int)getpid());
    setenv("RSM_FABRIC", fabric, 1);
    alarm(300);               /* never hang */
    ours(getpid());
    int fds_before = count_fds();
    sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED) abort();
    memset(sh, 0, sizeof *sh);

    pe = start(pe_main, "PE");
    w = start(w_main, "W");
    si = start(si_main, "SI");
    /* Warm-up: two kills of each kind, unchecked, so the survivors' agent
     * threads and allocators have done once what they do after a kill (a
     * thread's first malloc makes a glibc arena, a mapping of its own);
     * then each survivor takes its starting point. */
    for (int k = 0; k < 4; k++) round_(rounds + k, k % 2, 14 + rnd(20), 0);
    alive = ask(&pe, "b", 1) && ask(&w, "b", 1) && ask(&si, "b", 1);
    kills_ex = kills_im = early_ex = 0;
    memset(hist_vi, 0, sizeof hist_vi);
    memset(hist_si, 0, sizeof hist_si);

    for (int round = 0; round < rounds && alive; round++) {
        /* Up to about 3 cycles in; now and then during the first steps. */
        unsigned long target = rnd(8) == 0 ? rnd(3) : rnd(45);
        round_(round, (int)rnd(2), target, 1);
    }

    struct survivor *all[] = {&si, &w, &pe};
    int leaked = 0, corrupted = 0, bad = 0, falsely = 0;
    for (int i = 0; i < 3; i++) {
        ask(all[i], "q", 1);
        leaked += all[i]->t.leaks;
        corrupted += all[i]->t.corrupt;
        bad += all[i]->t.badcodes;
        falsely += all[i]->t.false_success;
        int status = 0;
        if (waitpid(all[i]->pid, &status, 0) != all[i]->pid) {
            failed++;
        } else if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
            passed++;
        } else {
            failed++;
            if (WIFSIGNALED(status)) crashes++;
            fprintf(stderr, "faults: %s %s %d\n", all[i]->name,
                    WIFEXITED(status) ? "exited with" : "died of signal",
                    WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
        }
        close(all[i]->cmd);
        close(all[i]->ack);
    }
    /* Nothing left behind on the host. */
    int shm_left = count_dev_shm(fabric), sockets = count_sockets(fabric);
    CHECK(shm_left == 0);
    CHECK(sockets == 0);
    CHECK(count_fds() == fds_before);
    leaked += shm_left + sockets;

    printf("faults: importers killed in:");
    for (int op = 0; op < N_OPS; op++)
        if (hist_vi[op]) printf(" %s %d,", op_name[op], hist_vi[op]);
    printf("\nfaults: exporters killed while creating or publishing: %d; while the survivor "
           "importer was in:", early_ex);
    for (int op = 0; op < N_OPS; op++)
        if (hist_si[op]) printf(" %s %d,", op_name[op], hist_si[op]);
    printf("\n");
    if (falsely)
        printf("faults: %d barrier closes succeeded over reads of the trash mapping\n", falsely);
    printf("faults: %d kills (%d exporters, %d importers), %d crashes, %d leaks, %d undocumented "
           "codes, data %s\n",
           kills_ex + kills_im, kills_ex, kills_im, crashes, leaked, bad,
           corrupted ? "CORRUPTED" : falsely ? "intact, wrong data reported good" : "intact");
    return report("faults");
}
