/*
 * A stand-in librsm.so.2 whose every function says "no controller": what a
 * program finds when some other build of the library is installed. The
 * LD_PRELOAD test links a program against this and then runs the same
 * binary with LD_PRELOAD of ours.
 */
#include <rsmapi.h>

int rsm_get_controller(char *name, rsmapi_controller_handle_t *controller)
{
    (void)name;
    (void)controller;
    return RSMERR_CTLR_NOT_PRESENT;
}
int rsm_get_controller_attr(rsmapi_controller_handle_t chdl, rsmapi_controller_attr_t *attr)
{
    (void)chdl;
    (void)attr;
    return RSMERR_CTLR_NOT_PRESENT;
}
int rsm_release_controller(rsmapi_controller_handle_t controller)
{
    (void)controller;
    return RSMERR_CTLR_NOT_PRESENT;
}
int rsm_get_interconnect_topology(rsm_topology_t **topology_data)
{
    (void)topology_data;
    return RSMERR_CTLR_NOT_PRESENT;
}
void rsm_free_interconnect_topology(rsm_topology_t *topology_data)
{
    (void)topology_data;
}
int rsm_get_segmentid_range(const char *appid, rsm_memseg_id_t *baseid, uint32_t *length)
{
    (void)appid;
    (void)baseid;
    (void)length;
    return RSMERR_CTLR_NOT_PRESENT;
}
