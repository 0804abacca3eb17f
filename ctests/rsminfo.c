/*
 * rsminfo against live exporters and importers: two exporter processes
 * (one root, one running as nobody) and two importer processes (one
 * read/write that maps the segment and posts twice, one read-only), then
 * every view of the tool: the table, --json, each filter, --watch, what a
 * user who is neither root nor the exporter sees, and bad arguments.
 *
 * Usage: rsminfo <path of the rsminfo binary>
 */
#define _GNU_SOURCE
#include <rsmapi.h>
#include <sys/mman.h>
#include <time.h>
#include "common.h"

#define NOBODY 65534

static const char *tool;
static size_t len;
static rsm_memseg_id_t id1, id2;

static void say(int fd, char c) { CHECK(write(fd, &c, 1) == 1); }

/* Runs `rsminfo args` (stderr with stdout); returns its exit status and
 * its output in a static buffer. */
static char out[256 * 1024];
static int run(const char *args)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "%s %s 2>&1", tool, args);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int has(const char *s) { return strstr(out, s) != NULL; }

static int count(const char *s)
{
    int n = 0;
    for (const char *p = out; (p = strstr(p, s)) != NULL; p += strlen(s)) n++;
    return n;
}

#define HAS(fmt, ...)                                                                     \
    do {                                                                                  \
        char want_[256];                                                                  \
        snprintf(want_, sizeof want_, fmt, __VA_ARGS__);                                  \
        if (!has(want_)) fprintf(stderr, "missing %s in:\n%s\n", want_, out);             \
        CHECK(has(want_));                                                                \
    } while (0)

/* An exporter process: publishes `id` (as `uid`), answers 'y', exits on
 * 'q'. With an ACL entry for node 0, else the umask's mode for all. */
static pid_t exporter(rsm_memseg_id_t id, uid_t uid, int acl, int cmd[2], int ack[2])
{
    CHECK(pipe(cmd) == 0 && pipe(ack) == 0);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        if (uid != 0) CHECK(setresgid(NOBODY, NOBODY, NOBODY) == 0 && setresuid(uid, uid, uid) == 0);
        rsmapi_controller_handle_t c;
        rsm_memseg_export_handle_t seg;
        rsmapi_access_entry_t entry = {0, 0666};
        char *buf = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        CHECK(buf != MAP_FAILED);
        CHECK_RC(rsm_get_controller("shm0", &c), RSM_SUCCESS);
        CHECK_RC(rsm_memseg_export_create(c, &seg, buf, len, 0), RSM_SUCCESS);
        CHECK_RC(rsm_memseg_export_publish(seg, &id, acl ? &entry : NULL, acl ? 1 : 0),
                 RSM_SUCCESS);
        say(ack[1], failed ? 'n' : 'y');
        CHECK(hear(cmd[0]) == 'q');
        CHECK_RC(rsm_memseg_export_destroy(seg), RSM_SUCCESS);
        CHECK_RC(rsm_release_controller(c), RSM_SUCCESS);
        child_exit();
    }
    CHECK(hear(ack[0]) == 'y');
    return pid;
}

/* An importer process: connects to `id` with `perm`; if `busy` is 1 maps
 * it and posts twice; 2: maps it; 3: maps and unmaps it 100 times, then
 * maps it; 4: maps and unmaps it (2 to 4 never signal: with no event
 * channel, they say whether they mapped when the exporter asks);
 * answers 'y', disconnects and exits on 'q'. */
static pid_t importer(rsm_memseg_id_t id, int perm, int busy, int cmd[2], int ack[2])
{
    CHECK(pipe(cmd) == 0 && pipe(ack) == 0);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        rsmapi_controller_handle_t c;
        rsm_memseg_import_handle_t im;
        void *addr = NULL;
        CHECK_RC(rsm_get_controller("shm0", &c), RSM_SUCCESS);
        CHECK_RC(rsm_memseg_import_connect(c, 0, id, perm, &im), RSM_SUCCESS);
        for (int i = 0; busy == 3 && i < 100; i++) {
            CHECK_RC(rsm_memseg_import_map(im, &addr, RSM_MAP_NONE, perm, 0, len), RSM_SUCCESS);
            CHECK_RC(rsm_memseg_import_unmap(im), RSM_SUCCESS);
        }
        if (busy) CHECK_RC(rsm_memseg_import_map(im, &addr, RSM_MAP_NONE, perm, 0, len), RSM_SUCCESS);
        if (busy == 1) {
            CHECK_RC(rsm_intr_signal_post(im, 0), RSM_SUCCESS);
            CHECK_RC(rsm_intr_signal_post(im, 0), RSM_SUCCESS);
        }
        if (busy == 4) CHECK_RC(rsm_memseg_import_unmap(im), RSM_SUCCESS);
        say(ack[1], failed ? 'n' : 'y');
        CHECK(hear(cmd[0]) == 'q');
        if (busy && busy != 4) CHECK_RC(rsm_memseg_import_unmap(im), RSM_SUCCESS);
        CHECK_RC(rsm_memseg_import_disconnect(im), RSM_SUCCESS);
        CHECK_RC(rsm_release_controller(c), RSM_SUCCESS);
        child_exit();
    }
    CHECK(hear(ack[0]) == 'y');
    return pid;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s <rsminfo binary>\n", argv[0]);
        return 2;
    }
    tool = argv[1];
    len = (size_t)sysconf(_SC_PAGESIZE);
    char fabric[64];
    snprintf(fabric, sizeof fabric, "ctest-rsminfo-%d", (int)getpid());
    setenv("RSM_FABRIC", fabric, 1);
    alarm(120);
    id1 = 0x400000 + (rsm_memseg_id_t)(getpid() % 100000) * 4;
    id2 = id1 + 1;

    int ec1[2], ea1[2], ec2[2], ea2[2], ic1[2], ia1[2], ic2[2], ia2[2];
    pid_t e1 = exporter(id1, 0, 1, ec1, ea1);
    pid_t e2 = exporter(id2, NOBODY, 0, ec2, ea2);
    pid_t i1 = importer(id1, RSM_PERM_RDWR, 1, ic1, ia1);
    pid_t i2 = importer(id1, RSM_PERM_READ, 0, ic2, ia2);

    /* The table, as root: everything (shown: the README quotes it). */
    CHECK(run("") == 0);
    printf("%s", out);
    HAS("fabric \"%s\"", fabric);
    HAS("%s", "loopback");
    HAS("%#x", id1);
    HAS("%#x", id2);
    HAS("importer pid %d uid 0 node 0 rights 0600 mapped, pending: 2 to the exporter", (int)i1);
    HAS("importer pid %d uid 0 node 0 rights 0400 not mapped", (int)i2);
    HAS("%s", "0:0666");
    HAS("%d  shm0", (int)e1);

    /* JSON: the same, for scripts. */
    CHECK(run("--json") == 0);
    CHECK(count("\n") == 1 && out[0] == '{');
    HAS("\"page_size\":%zu", len);
    HAS("{\"node\":0,\"pid\":%d,\"controller\":\"shm0\"}", (int)e2);
    HAS("\"node\":0,\"segment\":%u,\"visible\":true,\"state\":\"published\",\"size\":%zu,"
        "\"pid\":%d,\"uid\":0",
        id1, len, (int)e1);
    HAS("\"acl\":[{\"node\":0,\"perm\":%d}]", 0666);
    HAS("\"importer_count\":%d", 2);
    HAS("{\"pid\":%d,\"uid\":0,\"node\":0,\"rights\":%d,\"mapped\":true,"
        "\"pending_to_exporter\":2,\"pending_to_importer\":0}",
        (int)i1, 0600);
    HAS("{\"pid\":%d,\"uid\":0,\"node\":0,\"rights\":%d,\"mapped\":false,",
        (int)i2, 0400);
    HAS("\"segment\":%u,\"visible\":true,\"state\":\"published\",\"size\":%zu,\"pid\":%d,"
        "\"uid\":%d",
        id2, len, (int)e2, NOBODY);

    /* Filters. */
    CHECK(run("--json --node 5") == 0);
    HAS("%s", "\"present\":[],\"segments\":[]");
    char args[128];
    snprintf(args, sizeof args, "--json --segment %#x", id2);
    CHECK(run(args) == 0);
    CHECK(count("\"visible\"") == 1);
    HAS("\"segment\":%u", id2);
    snprintf(args, sizeof args, "--json --pid %d", (int)i2);
    CHECK(run(args) == 0);
    CHECK(count("\"visible\"") == 1);
    HAS("\"segment\":%u", id1);
    HAS("{\"node\":0,\"pid\":%d,\"controller\":\"shm0\"}", (int)i2);
    CHECK(count("\"controller\":\"shm0\"}") == 1); /* i2 alone is present */
    snprintf(args, sizeof args, "--pid %d", (int)e2);
    CHECK(run(args) == 0);
    HAS("%#x", id2);
    CHECK(!has("importer pid"));

    /* --watch refreshes (--count ends it). */
    CHECK(run("--json --watch 0.1 --count 3") == 0);
    CHECK(count("\n") == 3 && count("\"node_id\"") == 3);

    /* Neither root nor the exporter: it exists, no more. */
    fflush(stdout);
    pid_t who = fork();
    if (who == 0) {
        CHECK(setresgid(NOBODY, NOBODY, NOBODY) == 0 && setresuid(NOBODY, NOBODY, NOBODY) == 0);
        CHECK(run("--json") == 0);
        HAS("{\"node\":0,\"segment\":%u,\"visible\":false}", id1);
        HAS("\"segment\":%u,\"visible\":true", id2); /* its own */
        CHECK(!has("\"importers\":[{"));
        CHECK(run("") == 0);
        HAS("%#x     (details only for root and the exporter's uid)", id1);
        child_exit();
    }
    check_child(who, "rsminfo as nobody");

    /* Bad arguments: a message and a non-zero exit. */
    CHECK(run("--node 99") == 2 && has("--node") && has("usage:"));
    CHECK(run("--segment") == 2 && has("--segment needs"));
    CHECK(run("--pid x") == 2 && has("--pid"));
    CHECK(run("--count 2") == 2 && has("--count needs --watch"));
    CHECK(run("--watch 0") == 2 && has("--watch"));
    CHECK(run("--frobnicate") == 2 && has("unknown argument"));
    CHECK(run("--help") == 0 && has("usage:"));

    /* Importers gone, then exporters: the views follow. */
    say(ic1[1], 'q');
    say(ic2[1], 'q');
    check_child(i1, "importer 1");
    check_child(i2, "importer 2");
    usleep(100000); /* the exporter's agent notices the departures */
    CHECK(run("--json") == 0);
    HAS("\"importer_count\":0,\"importers\":[]%s", "");
    HAS("\"pending_departed\":%d", 2); /* the posts of importer 1 are kept */
    say(ec1[1], 'q');
    say(ec2[1], 'q');
    check_child(e1, "exporter 1");
    check_child(e2, "exporter 2");
    CHECK(run("--json") == 0);
    HAS("%s", "\"present\":[],\"segments\":[]");

    /* Importers that never signal say whether they mapped all the same. */
    int ec3[2], ea3[2], jc[3][2], ja[3][2];
    pid_t e3 = exporter(id1 + 2, 0, 1, ec3, ea3);
    pid_t j[3];
    for (int k = 0; k < 3; k++) j[k] = importer(id1 + 2, RSM_PERM_RDWR, 2 + k, jc[k], ja[k]);
    CHECK(run("") == 0);
    HAS("importer pid %d uid 0 node 0 rights 0600 mapped, pending: 0", (int)j[0]);
    HAS("importer pid %d uid 0 node 0 rights 0600 mapped, pending: 0", (int)j[1]);
    HAS("importer pid %d uid 0 node 0 rights 0600 not mapped", (int)j[2]);
    CHECK(run("") == 0); /* asked again: the same (what was read is kept) */
    HAS("importer pid %d uid 0 node 0 rights 0600 mapped, pending: 0", (int)j[0]);
    HAS("importer pid %d uid 0 node 0 rights 0600 not mapped", (int)j[2]);
    for (int k = 0; k < 3; k++) {
        say(jc[k][1], 'q');
        check_child(j[k], "importer that never signals");
    }
    say(ec3[1], 'q');
    check_child(e3, "exporter 3");

    /* An exporter that imports its own segment answers its own ask (one
     * agent thread serves both sides). */
    int sc[2], sa[2];
    CHECK(pipe(sc) == 0 && pipe(sa) == 0);
    fflush(stdout);
    pid_t self = fork();
    if (self == 0) {
        rsmapi_controller_handle_t c;
        rsm_memseg_export_handle_t seg;
        rsm_memseg_import_handle_t im;
        rsm_memseg_id_t id = id1 + 3;
        void *addr = NULL;
        char *buf = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        CHECK(buf != MAP_FAILED);
        CHECK_RC(rsm_get_controller("shm0", &c), RSM_SUCCESS);
        CHECK_RC(rsm_memseg_export_create(c, &seg, buf, len, 0), RSM_SUCCESS);
        CHECK_RC(rsm_memseg_export_publish(seg, &id, NULL, 0), RSM_SUCCESS);
        CHECK_RC(rsm_memseg_import_connect(c, 0, id, RSM_PERM_RDWR, &im), RSM_SUCCESS);
        CHECK_RC(rsm_memseg_import_map(im, &addr, RSM_MAP_NONE, RSM_PERM_RDWR, 0, len), RSM_SUCCESS);
        say(sa[1], failed ? 'n' : 'y');
        CHECK(hear(sc[0]) == 'q');
        CHECK_RC(rsm_memseg_import_unmap(im), RSM_SUCCESS);
        CHECK_RC(rsm_memseg_import_disconnect(im), RSM_SUCCESS);
        CHECK_RC(rsm_memseg_export_destroy(seg), RSM_SUCCESS);
        CHECK_RC(rsm_release_controller(c), RSM_SUCCESS);
        child_exit();
    }
    CHECK(hear(sa[0]) == 'y');
    CHECK(run("") == 0);
    HAS("importer pid %d uid 0 node 0 rights 0600 mapped, pending: 0", (int)self);
    say(sc[1], 'q');
    check_child(self, "exporter importing itself");

    /* Stopped exporters cannot answer: each segment says so, and the
     * others are still shown. The survey asks them all at once, so it
     * waits one connect timeout (here 1 s, from a config file), not one
     * per stopped exporter: the time is printed, not checked. */
    enum { STOPPED = 4 };
    int sxc[STOPPED + 1][2], sxa[STOPPED + 1][2];
    pid_t sx[STOPPED + 1];
    for (int k = 0; k <= STOPPED; k++) sx[k] = exporter(id1 + 4 + k, 0, 1, sxc[k], sxa[k]);
    for (int k = 0; k < STOPPED; k++) CHECK(kill(sx[k], SIGSTOP) == 0);
    char conf[64];
    snprintf(conf, sizeof conf, "/tmp/rsminfo-test-%d.conf", (int)getpid());
    FILE *cf = fopen(conf, "w");
    CHECK(cf && fputs("connect_timeout_ms = 1000\n", cf) >= 0 && fclose(cf) == 0);
    setenv("RSM_CONFIG", conf, 1);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CHECK(run("") == 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    unsetenv("RSM_CONFIG");
    unlink(conf);
    CHECK(count("(no answer (the exporter's agent is stopped or busy))") == STOPPED);
    HAS("%#x", id1 + 4 + STOPPED);
    HAS("%d  shm0", (int)sx[STOPPED]); /* the one still running, in full */
    printf("rsminfo: %d stopped exporters (1 s connect timeout) took %.2f s\n", STOPPED,
           (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
    for (int k = 0; k <= STOPPED; k++) {
        if (k < STOPPED) CHECK(kill(sx[k], SIGCONT) == 0);
        say(sxc[k][1], 'q');
        check_child(sx[k], "exporter stopped during a survey");
    }
    return report("rsminfo");
}
