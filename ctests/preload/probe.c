/*
 * Asks for a controller and the topology. `probe stub` expects the stub's
 * answers, `probe real` expects real ones: the same binary passes both only
 * if LD_PRELOAD of our librsm.so.2 replaces the library it was linked with.
 */
#include <rsmapi.h>
#include "../common.h"

int main(int argc, char **argv)
{
    int real = argc > 1 && strcmp(argv[1], "real") == 0;
    rsmapi_controller_handle_t c = NULL;
    rsm_topology_t *t = NULL;
    if (!real) {
        CHECK_RC(rsm_get_controller("loopback", &c), RSMERR_CTLR_NOT_PRESENT);
        CHECK_RC(rsm_get_interconnect_topology(&t), RSMERR_CTLR_NOT_PRESENT);
        return report("preload-stub");
    }
    CHECK_RC(rsm_get_controller("loopback", &c), RSM_SUCCESS);
    rsmapi_controller_attr_t attr;
    CHECK_RC(rsm_get_controller_attr(c, &attr), RSM_SUCCESS);
    CHECK(attr.attr_page_size == (size_t)sysconf(_SC_PAGESIZE));
    CHECK_RC(rsm_release_controller(c), RSM_SUCCESS);
    CHECK_RC(rsm_get_interconnect_topology(&t), RSM_SUCCESS);
    CHECK(t != NULL && t->topology_hdr.local_cntlr_count >= 1);
    rsm_free_interconnect_topology(t);
    return report("preload-real");
}
