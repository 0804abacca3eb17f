/*
 * rsm_get_segmentid_range (spec 4.3) against a reservation file named by
 * RSM_SEGMENTID_FILE.
 */
#define _GNU_SOURCE
#include <rsmapi.h>
#include "common.h"

static char path[] = "/tmp/rsm-ctest-segid-XXXXXX";

static void write_file(const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f || fputs(text, f) < 0 || fclose(f)) abort();
}

int main(void)
{
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    close(fd);
    setenv("RSM_SEGMENTID_FILE", path, 1);
    write_file("# reserved ranges\n"
               "reserved   SUNWfoo  0x600000  1000\n"
               "  # indented comment\n"
               "reserve    bar      700000    20\n"
               "reserved   big      0xFFFFFF00 256\n");
    rsm_memseg_id_t base = 0;
    uint32_t len = 0;
    CHECK_RC(rsm_get_segmentid_range("SUNWfoo", &base, &len), RSM_SUCCESS);
    CHECK(base == 0x600000 && len == 1000);
    CHECK_RC(rsm_get_segmentid_range("sunwFOO", &base, &len), RSM_SUCCESS);
    CHECK_RC(rsm_get_segmentid_range("bar", &base, &len), RSM_SUCCESS);
    CHECK(base == 0x700000 && len == 20);
    CHECK_RC(rsm_get_segmentid_range("big", &base, &len), RSM_SUCCESS);
    CHECK(base == 0xFFFFFF00u && len == 256);
    CHECK_RC(rsm_get_segmentid_range("nobody", &base, &len), RSMERR_BAD_APPID);

    CHECK_RC(rsm_get_segmentid_range(NULL, &base, &len), RSMERR_BAD_ADDR);
    CHECK_RC(rsm_get_segmentid_range("bar", NULL, &len), RSMERR_BAD_ADDR);
    CHECK_RC(rsm_get_segmentid_range("bar", &base, NULL), RSMERR_BAD_ADDR);
    CHECK_RC(rsm_get_segmentid_range("bar", (rsm_memseg_id_t *)0x10, &len), RSMERR_BAD_ADDR);

    /* A blank line before the entry is fatal, as on Solaris. */
    write_file("reserved a 0x400000 1\n\nreserved b 0x500000 1\n");
    CHECK_RC(rsm_get_segmentid_range("a", &base, &len), RSM_SUCCESS);
    CHECK_RC(rsm_get_segmentid_range("b", &base, &len), RSMERR_BAD_CONF);
    write_file("allocated b 0x500000 1\n");
    CHECK_RC(rsm_get_segmentid_range("b", &base, &len), RSMERR_BAD_CONF);
    write_file("reserved b 0x500000 many\n");
    CHECK_RC(rsm_get_segmentid_range("b", &base, &len), RSMERR_BAD_CONF);

    unlink(path);
    CHECK_RC(rsm_get_segmentid_range("a", &base, &len), RSMERR_BAD_CONF);
    return report("segmentid");
}
