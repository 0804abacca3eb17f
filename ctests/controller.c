/*
 * The controller family (spec 4.1): names, reference counting, attributes,
 * configuration errors and the RSM_DEBUG trace.
 */
#define _GNU_SOURCE
#include <rsmapi.h>
#include "common.h"

/* Runs `fn` in a child whose environment is set first, so the library reads
 * that configuration on its first call. */
static void in_child(const char *what, void (*fn)(void), const char *k1, const char *v1,
                     const char *k2, const char *v2)
{
    pid_t pid = fork();
    if (pid == 0) {
        passed = failed = 0;
        if (k1) setenv(k1, v1, 1);
        if (k2) setenv(k2, v2, 1);
        fn();
        child_exit();
    }
    check_child(pid, what);
}

static void bad_config(void)
{
    rsmapi_controller_handle_t c = NULL;
    CHECK_RC(rsm_get_controller("loopback", &c), RSMERR_BAD_CONF);
    CHECK(c == NULL);
    rsm_topology_t *t = (rsm_topology_t *)&c;
    CHECK_RC(rsm_get_interconnect_topology(&t), RSMERR_BAD_CONF);
    CHECK(t == NULL);
}

/* The same, with RSM_DEBUG on: the trace file gives the reason, in the
 * words of the library's message (README "Configuration"). */
static char trace_path[64];
static const char *reason;

static void bad_config_traced(void)
{
    setenv("RSM_DEBUG", "1", 1);
    setenv("RSM_DEBUG_FILE", trace_path, 1);
    unlink(trace_path);
    bad_config();
    FILE *f = fopen(trace_path, "r");
    CHECK(f != NULL);
    if (!f) return;
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    char want[256];
    snprintf(want, sizeof want, "librsm[%d]: %s", (int)getpid(), reason);
    CHECK(strstr(buf, want) != NULL);
    if (!strstr(buf, want)) fprintf(stderr, "controller: trace lacks \"%s\":\n%s", want, buf);
    /* and the calls it refused, with their code */
    CHECK(strstr(buf, "rsm_get_controller(name=") != NULL);
    CHECK(strstr(buf, "= 44 RSMERR_BAD_CONF") != NULL);
    unlink(trace_path);
}

static void configured_controller(void)
{
    rsmapi_controller_handle_t a = NULL, b = NULL;
    CHECK_RC(rsm_get_controller("shm1", &a), RSM_SUCCESS);
    CHECK_RC(rsm_get_controller("SHM01", &b), RSM_SUCCESS);
    CHECK(a == b && a != NULL);
    CHECK_RC(rsm_get_controller("shm2", &b), RSMERR_CTLR_NOT_PRESENT);
    CHECK_RC(rsm_release_controller(a), RSM_SUCCESS);
    CHECK_RC(rsm_release_controller(a), RSM_SUCCESS);
    CHECK_RC(rsm_release_controller(a), RSMERR_BAD_CTLR_HNDL);
}

static void traced(void)
{
    rsmapi_controller_handle_t c;
    CHECK_RC(rsm_get_controller("nosuch7", &c), RSMERR_CTLR_NOT_PRESENT);
    CHECK_RC(rsm_get_controller("loopback", &c), RSM_SUCCESS);
    CHECK_RC(rsm_release_controller(c), RSM_SUCCESS);
    FILE *f = fopen(trace_path, "r");
    CHECK(f != NULL);
    if (!f) return;
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    CHECK(strstr(buf, "rsm_get_controller(name=") != NULL);
    CHECK(strstr(buf, "= 4 RSMERR_CTLR_NOT_PRESENT") != NULL);
    CHECK(strstr(buf, "rsm_release_controller(controller=0x") != NULL);
    CHECK(strstr(buf, "= 0 RSM_SUCCESS") != NULL);
    CHECK(strstr(buf, "no controller \"nosuch7\"") != NULL);
}

int main(void)
{
    snprintf(trace_path, sizeof trace_path, "/tmp/rsm-ctest-trace-%d", (int)getpid());
    /* Configuration is read once, on first use: these cases run in children
     * before this process calls the library. */
    in_child("bad RSM_NODE_ID", bad_config, "RSM_NODE_ID", "abc", NULL, NULL);
    in_child("node id out of range", bad_config, "RSM_NODE_ID", "64", NULL, NULL);
    in_child("bad RSM_FABRIC", bad_config, "RSM_FABRIC", "a/b", NULL, NULL);
    in_child("missing RSM_CONFIG", bad_config, "RSM_CONFIG", "/nonexistent/rsm.conf", NULL, NULL);

    char conf[] = "/tmp/rsm-ctest-conf-XXXXXX";
    int fd = mkstemp(conf);
    const char *text = "# test\nnode_id = 4\n[controller shm1]\ntype = shm\n";
    CHECK(fd >= 0 && write(fd, text, strlen(text)) == (ssize_t)strlen(text));
    close(fd);
    in_child("config controller", configured_controller, "RSM_CONFIG", conf, NULL, NULL);
    fd = open(conf, O_WRONLY | O_TRUNC);
    CHECK(fd >= 0 && write(fd, "node_id = 4\nbogus\n", 18) == 18);
    close(fd);
    in_child("malformed config", bad_config, "RSM_CONFIG", conf, NULL, NULL);
    reason = "config: line 2: expected key = value: \"bogus\"";
    in_child("malformed config, traced", bad_config_traced, "RSM_CONFIG", conf, NULL, NULL);
    fd = open(conf, O_WRONLY | O_TRUNC);
    CHECK(fd >= 0 && write(fd, "node_id = 99\n", 13) == 13);
    close(fd);
    reason = "config: line 1: node ids are 0..=63: \"node_id = 99\"";
    in_child("node id out of range in the file, traced", bad_config_traced, "RSM_CONFIG", conf,
             NULL, NULL);
    unlink(conf);
    reason = "config: RSM_NODE_ID=\"abc\": not a decimal number";
    in_child("bad RSM_NODE_ID, traced", bad_config_traced, "RSM_NODE_ID", "abc", NULL, NULL);
    reason = "config: cannot read /nonexistent/rsm.conf: ";
    in_child("missing RSM_CONFIG, traced", bad_config_traced, "RSM_CONFIG",
             "/nonexistent/rsm.conf", NULL, NULL);

    in_child("RSM_DEBUG trace", traced, "RSM_DEBUG", "1", "RSM_DEBUG_FILE", trace_path);
    unlink(trace_path);

    /* Names: NULL, loopback with any unit and any case are one controller. */
    rsmapi_controller_handle_t lo = NULL, h = NULL;
    CHECK_RC(rsm_get_controller("loopback", &lo), RSM_SUCCESS);
    CHECK(lo != NULL);
    CHECK_RC(rsm_get_controller(NULL, &h), RSM_SUCCESS);
    CHECK(h == lo);
    CHECK_RC(rsm_get_controller("loopback0", &h), RSM_SUCCESS);
    CHECK(h == lo);
    CHECK_RC(rsm_get_controller("LoopBack3", &h), RSM_SUCCESS);
    CHECK(h == lo);

    rsmapi_controller_handle_t shm = NULL;
    CHECK_RC(rsm_get_controller("shm0", &shm), RSM_SUCCESS);
    CHECK(shm != NULL && shm != lo);
    CHECK_RC(rsm_get_controller("shm", &h), RSM_SUCCESS);
    CHECK(h == shm);

    const char *absent[] = {"shm1", "sci0", "wrsm12", "", "42", "ntb0"};
    for (size_t i = 0; i < sizeof absent / sizeof absent[0]; i++) {
        h = (rsmapi_controller_handle_t)0x1;
        CHECK_RC(rsm_get_controller((char *)absent[i], &h), RSMERR_CTLR_NOT_PRESENT);
    }
    char long_name[600];
    memset(long_name, 'a', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = 0;
    CHECK_RC(rsm_get_controller(long_name, &h), RSMERR_CTLR_NOT_PRESENT);
    CHECK_RC(rsm_get_controller("loopback", NULL), RSMERR_BAD_CTLR_HNDL);
    CHECK_RC(rsm_get_controller((char *)0x10, &h), RSMERR_BAD_ADDR);
    CHECK_RC(rsm_get_controller("loopback", (rsmapi_controller_handle_t *)0x10), RSMERR_BAD_ADDR);

    /* Attributes are this machine's, not Solaris' loopback zeros. */
    rsmapi_controller_attr_t attr;
    memset(&attr, 0xff, sizeof attr);
    CHECK_RC(rsm_get_controller_attr(shm, &attr), RSM_SUCCESS);
    CHECK(attr.attr_page_size == (size_t)sysconf(_SC_PAGESIZE));
    CHECK(attr.attr_direct_access_sizes == (RSM_DAS8 | RSM_DAS16 | RSM_DAS32 | RSM_DAS64));
    CHECK(attr.attr_atomic_sizes == attr.attr_direct_access_sizes);
    CHECK(attr.attr_max_export_segment_size >= attr.attr_page_size);
    CHECK(attr.attr_max_export_segments > 0 && attr.attr_max_import_segments > 0);
    CHECK(attr.attr_tot_import_map_size >= attr.attr_max_import_map_size);
    CHECK_RC(rsm_get_controller_attr(lo, &attr), RSM_SUCCESS);
    CHECK(attr.attr_page_size == (size_t)sysconf(_SC_PAGESIZE));
    CHECK_RC(rsm_get_controller_attr(NULL, &attr), RSMERR_BAD_CTLR_HNDL);
    CHECK_RC(rsm_get_controller_attr(shm, NULL), RSMERR_BAD_ADDR);
    CHECK_RC(rsm_get_controller_attr(shm, (rsmapi_controller_attr_t *)0x10), RSMERR_BAD_ADDR);

    /* Reference counting: four gets of loopback, four releases. */
    for (int i = 0; i < 4; i++) CHECK_RC(rsm_release_controller(lo), RSM_SUCCESS);
    CHECK_RC(rsm_release_controller(lo), RSMERR_BAD_CTLR_HNDL);
    CHECK_RC(rsm_get_controller_attr(lo, &attr), RSMERR_BAD_CTLR_HNDL);
    CHECK_RC(rsm_get_controller("loopback", &h), RSM_SUCCESS);
    CHECK(h != lo); /* a reopened controller has a fresh handle */
    CHECK_RC(rsm_get_controller_attr(lo, &attr), RSMERR_BAD_CTLR_HNDL);
    CHECK_RC(rsm_release_controller(h), RSM_SUCCESS);
    CHECK_RC(rsm_release_controller(shm), RSM_SUCCESS);
    CHECK_RC(rsm_release_controller(shm), RSM_SUCCESS);
    CHECK_RC(rsm_release_controller(shm), RSMERR_BAD_CTLR_HNDL);
    return report("controller");
}
