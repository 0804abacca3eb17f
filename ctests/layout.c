/*
 * Compile-only conformance unit: the headers have the Solaris LP64 layout,
 * values and prototypes (spec sections 2-4). Built as C99 and as C++ with
 * -Wall -Wextra -Werror -pedantic; there is nothing to run: if it compiles,
 * it passes.
 */
#include <rsmapi.h>
#include <sys/rsm/rsm_common.h>
#include <sys/rsm/rsmapi_common.h>
#include <stddef.h>

#ifdef __cplusplus
#define STATIC_ASSERT(c, m) static_assert(c, m)
#else
#define STATIC_ASSERT(c, m) _Static_assert(c, m)
#endif

#define CHECK_SIZE(t, n) STATIC_ASSERT(sizeof(t) == (n), "sizeof " #t)
#define CHECK_OFF(t, f, n) STATIC_ASSERT(offsetof(t, f) == (n), "offsetof " #t "." #f)
#define CHECK_VALUE(c, v) STATIC_ASSERT((c) == (v), #c " == " #v)

/* Solaris base types (spec 1.1). */
CHECK_SIZE(uint_t, 4);
CHECK_SIZE(ulong_t, 8);
CHECK_SIZE(uchar_t, 1);
CHECK_SIZE(caddr_t, 8);
CHECK_SIZE(offset_t, 8);
CHECK_VALUE(MAXNAMELEN, 256);

/* Scalars (spec 2.1) and handles (2.2). */
CHECK_SIZE(rsm_addr_t, 8);
CHECK_SIZE(rsm_node_id_t, 4);
CHECK_SIZE(rsm_memseg_id_t, 4);
CHECK_SIZE(rsm_permission_t, 4);
CHECK_SIZE(rsm_memseg_import_handle_t, 8);
CHECK_SIZE(rsm_memseg_export_handle_t, 8);
CHECK_SIZE(rsmapi_controller_handle_t, 8);
CHECK_SIZE(rsm_localmemory_handle_t, 8);

/* Enums (spec 2.3). */
CHECK_SIZE(rsm_attribute_t, 4);
CHECK_SIZE(rsm_access_size_t, 4);
CHECK_SIZE(rsm_barrier_type_t, 4);
CHECK_SIZE(rsm_barrier_mode_t, 4);
CHECK_VALUE(RSM_MAP_NONE, 0);
CHECK_VALUE(RSM_MAP_FIXED, 1);
CHECK_VALUE(RSM_MAP_RESERVED, 2);
CHECK_VALUE(RSM_DAS8, 1);
CHECK_VALUE(RSM_DAS16, 2);
CHECK_VALUE(RSM_DAS32, 4);
CHECK_VALUE(RSM_DAS64, 8);
CHECK_VALUE(RSM_BARRIER_SEGMENT, 0x01);
CHECK_VALUE(RSM_BARRIER_NODE, 0x02);
CHECK_VALUE(RSM_BARRIER_SEGMENT_THREAD, 0x11);
CHECK_VALUE(RSM_BARRIER_NODE_THREAD, 0x12);
CHECK_VALUE(RSM_BARRIER_MODE_EXPLICIT, 0);
CHECK_VALUE(RSM_BARRIER_MODE_IMPLICIT, 1);

/* Structures (spec 2.4), LP64. */
CHECK_SIZE(rsmapi_controller_attr_t, 64);
CHECK_OFF(rsmapi_controller_attr_t, attr_direct_access_sizes, 0);
CHECK_OFF(rsmapi_controller_attr_t, attr_atomic_sizes, 4);
CHECK_OFF(rsmapi_controller_attr_t, attr_page_size, 8);
CHECK_OFF(rsmapi_controller_attr_t, attr_max_export_segment_size, 16);
CHECK_OFF(rsmapi_controller_attr_t, attr_tot_export_segment_size, 24);
CHECK_OFF(rsmapi_controller_attr_t, attr_max_export_segments, 32);
CHECK_OFF(rsmapi_controller_attr_t, attr_max_import_map_size, 40);
CHECK_OFF(rsmapi_controller_attr_t, attr_tot_import_map_size, 48);
CHECK_OFF(rsmapi_controller_attr_t, attr_max_import_segments, 56);

CHECK_SIZE(rsmapi_access_entry_t, 8);
CHECK_OFF(rsmapi_access_entry_t, ae_node, 0);
CHECK_OFF(rsmapi_access_entry_t, ae_permission, 4);

CHECK_SIZE(rsmapi_barrier_t, 24);
CHECK_OFF(rsmapi_barrier_t, seg, 0);
CHECK_OFF(rsmapi_barrier_t, gnum, 8);
CHECK_OFF(rsmapi_barrier_t, privdata, 16);

CHECK_SIZE(rsm_barrier_component_t, 8);
CHECK_SIZE(rsm_barrier_t, 32);
CHECK_OFF(rsm_barrier_t, comp, 0);

CHECK_SIZE(rsm_iovec_t, 40);
CHECK_OFF(rsm_iovec_t, io_type, 0);
CHECK_OFF(rsm_iovec_t, local, 8);
CHECK_OFF(rsm_iovec_t, local.handle, 8);
CHECK_OFF(rsm_iovec_t, local.vaddr, 8);
CHECK_OFF(rsm_iovec_t, local_offset, 16);
CHECK_OFF(rsm_iovec_t, remote_offset, 24);
CHECK_OFF(rsm_iovec_t, transfer_length, 32);

CHECK_SIZE(rsm_scat_gath_t, 48);
CHECK_OFF(rsm_scat_gath_t, local_nodeid, 0);
CHECK_OFF(rsm_scat_gath_t, io_request_count, 8);
CHECK_OFF(rsm_scat_gath_t, io_residual_count, 16);
CHECK_OFF(rsm_scat_gath_t, flags, 24);
CHECK_OFF(rsm_scat_gath_t, remote_handle, 32);
CHECK_OFF(rsm_scat_gath_t, iovec, 40);

CHECK_SIZE(rsm_topology_hdr_t, 8);
CHECK_OFF(rsm_topology_hdr_t, local_nodeid, 0);
CHECK_OFF(rsm_topology_hdr_t, local_cntlr_count, 4);
CHECK_SIZE(struct rsm_topology_hdr, 8);

CHECK_SIZE(rsm_connections_hdr_t, 272);
CHECK_OFF(rsm_connections_hdr_t, cntlr_name, 0);
CHECK_OFF(rsm_connections_hdr_t, local_hwaddr, 256);
CHECK_OFF(rsm_connections_hdr_t, remote_cntlr_count, 264);

CHECK_SIZE(rsm_remote_cntlr_t, 280);
CHECK_OFF(rsm_remote_cntlr_t, remote_nodeid, 0);
CHECK_OFF(rsm_remote_cntlr_t, remote_cntlrname, 4);
CHECK_OFF(rsm_remote_cntlr_t, remote_hwaddr, 264);
CHECK_OFF(rsm_remote_cntlr_t, connection_state, 272);

CHECK_SIZE(rsm_connections_t, 552);
CHECK_SIZE(struct rsm_connection, 552);
CHECK_OFF(rsm_connections_t, hdr, 0);
CHECK_OFF(rsm_connections_t, remote_cntlr, 272);

CHECK_SIZE(rsm_topology_t, 16);
CHECK_SIZE(struct rsm_topology, 16);
CHECK_OFF(rsm_topology_t, topology_hdr, 0);
CHECK_OFF(rsm_topology_t, connections, 8);

/* Every constant, with its Solaris value (spec 3). */
CHECK_VALUE(RSM_VERSION, 5);
CHECK_VALUE(RSM_SUCCESS, 0);
CHECK_VALUE(RSMERR_BAD_LIBRARY_VERSION, 1);
CHECK_VALUE(RSMERR_BAD_TOPOLOGY_PTR, 2);
CHECK_VALUE(RSMERR_BAD_CTLR_HNDL, 3);
CHECK_VALUE(RSMERR_CTLR_NOT_PRESENT, 4);
CHECK_VALUE(RSMERR_BAD_SEG_HNDL, 5);
CHECK_VALUE(RSMERR_SEG_ALREADY_PUBLISHED, 6);
CHECK_VALUE(RSMERR_SEG_NOT_PUBLISHED, 7);
CHECK_VALUE(RSMERR_SEG_NOT_PUBLISHED_TO_NODE, 8);
CHECK_VALUE(RSMERR_SEG_ALREADY_MAPPED, 9);
CHECK_VALUE(RSMERR_SEG_STILL_MAPPED, 10);
CHECK_VALUE(RSMERR_SEG_NOT_MAPPED, 11);
CHECK_VALUE(RSMERR_NOT_CREATOR, 12);
CHECK_VALUE(RSMERR_BAD_BARRIER_PTR, 13);
CHECK_VALUE(RSMERR_BAD_SGIO, 14);
CHECK_VALUE(RSMERR_BAD_LOCALMEM_HNDL, 15);
CHECK_VALUE(RSMERR_BAD_ADDR, 16);
CHECK_VALUE(RSMERR_BAD_MEM_ALIGNMENT, 17);
CHECK_VALUE(RSMERR_BAD_OFFSET, 18);
CHECK_VALUE(RSMERR_MISALIGNED_OFFSET, 19);
CHECK_VALUE(RSMERR_BAD_LENGTH, 20);
CHECK_VALUE(RSMERR_BAD_ACL, 21);
CHECK_VALUE(RSMERR_BAD_SEGID, 22);
CHECK_VALUE(RSMERR_RESERVED_SEGID, 23);
CHECK_VALUE(RSMERR_SEGID_IN_USE, 24);
CHECK_VALUE(RSMERR_BAD_MODE, 25);
CHECK_VALUE(RSMERR_BAD_PERMS, 26);
CHECK_VALUE(RSMERR_PERM_DENIED, 27);
CHECK_VALUE(RSMERR_LOCKS_NOT_SUPPORTED, 28);
CHECK_VALUE(RSMERR_LOCKS_NOT_ENABLED, 29);
CHECK_VALUE(RSMERR_REBIND_NOT_ALLOWED, 30);
CHECK_VALUE(RSMERR_INSUFFICIENT_RESOURCES, 31);
CHECK_VALUE(RSMERR_INSUFFICIENT_MEM, 32);
CHECK_VALUE(RSMERR_MAP_FAILED, 33);
CHECK_VALUE(RSMERR_POLLFD_IN_USE, 34);
CHECK_VALUE(RSMERR_BARRIER_UNINITIALIZED, 35);
CHECK_VALUE(RSMERR_BARRIER_OPEN_FAILED, 36);
CHECK_VALUE(RSMERR_BARRIER_NOT_OPENED, 37);
CHECK_VALUE(RSMERR_BARRIER_FAILURE, 38);
CHECK_VALUE(RSMERR_REMOTE_NODE_UNREACHABLE, 39);
CHECK_VALUE(RSMERR_CONN_ABORTED, 40);
CHECK_VALUE(RSMERR_INTERRUPTED, 41);
CHECK_VALUE(RSMERR_TIMEOUT, 42);
CHECK_VALUE(RSMERR_BAD_APPID, 43);
CHECK_VALUE(RSMERR_BAD_CONF, 44);
CHECK_VALUE(RSMERR_SEG_NOT_CONNECTED, 45);
CHECK_VALUE(RSMERR_INTERNAL_ERROR, 100);
CHECK_VALUE(RSMERR_BAD_DRIVER_VERSION, 101);
CHECK_VALUE(RSMERR_UNSUPPORTED_VERSION, 102);
CHECK_VALUE(RSMERR_DRIVER_NAME_IN_USE, 103);
CHECK_VALUE(RSMERR_DRIVER_NOT_REGISTERED, 104);
CHECK_VALUE(RSMERR_DRIVER_THREAD_RUNNING, 105);
CHECK_VALUE(RSMERR_NEED_THREAD_INIT, 106);
CHECK_VALUE(RSMERR_THREAD_NOT_INITED, 107);
CHECK_VALUE(RSMERR_CTLRS_REGISTERED, 108);
CHECK_VALUE(RSMERR_CTLR_NOT_REGISTERED, 109);
CHECK_VALUE(RSMERR_CTLR_ALREADY_REGISTERED, 110);
CHECK_VALUE(RSMERR_CTLR_IN_USE, 111);
CHECK_VALUE(RSMERR_NAME_TOO_LONG, 112);
CHECK_VALUE(RSMERR_SEG_PUBLISHED, 113);
CHECK_VALUE(RSMERR_SEG_NOT_PUBLISHED_TO_RSM_ADDR, 114);
CHECK_VALUE(RSMERR_SEG_IN_USE, 115);
CHECK_VALUE(RSMERR_BAD_SENDQ_HNDL, 116);
CHECK_VALUE(RSMERR_BAD_ARGS_ERRORS, 117);
CHECK_VALUE(RSMERR_BAD_MSTYPE, 118);
CHECK_VALUE(RSMERR_NO_BACKING_MEM, 119);
CHECK_VALUE(RSMERR_NOT_MEM, 120);
CHECK_VALUE(RSMERR_MEM_ALREADY_BOUND, 121);
CHECK_VALUE(RSMERR_MEM_NOT_BOUND, 122);
CHECK_VALUE(RSMERR_HANDLER_NOT_REGISTERED, 123);
CHECK_VALUE(RSMERR_NO_HANDLER, 124);
CHECK_VALUE(RSMERR_UNBIND_REBIND_NOT_ALLOWED, 125);
CHECK_VALUE(RSMERR_CALLBACKS_NOT_SUPPORTED, 126);
CHECK_VALUE(RSMERR_UNSUPPORTED_OPERATION, 127);
CHECK_VALUE(RSMERR_RSM_ADDR_UNREACHABLE, 128);
CHECK_VALUE(RSMERR_UNKNOWN_RSM_ADDR, 129);
CHECK_VALUE(RSMERR_BAD_BARRIER_HNDL, 130);
CHECK_VALUE(RSMERR_COMM_ERR_MAYBE_DELIVERED, 131);
CHECK_VALUE(RSMERR_COMM_ERR_NOT_DELIVERED, 132);
CHECK_VALUE(RSMERR_QUEUE_FENCE_UP, 133);
CHECK_VALUE(RSMERR_QUEUE_FULL, 134);
CHECK_VALUE(RSM_DRIVER_PRIVATE_ID_BASE, 0);
CHECK_VALUE(RSM_DRIVER_PRIVATE_ID_END, 0x0FFFFF);
CHECK_VALUE(RSM_CLUSTER_TRANSPORT_ID_BASE, 0x100000);
CHECK_VALUE(RSM_CLUSTER_TRANSPORT_ID_END, 0x1FFFFF);
CHECK_VALUE(RSM_RSMLIB_ID_BASE, 0x200000);
CHECK_VALUE(RSM_RSMLIB_ID_END, 0x2FFFFF);
CHECK_VALUE(RSM_DLPI_ID_BASE, 0x300000);
CHECK_VALUE(RSM_DLPI_ID_END, 0x3FFFFF);
CHECK_VALUE(RSM_HPC_ID_BASE, 0x400000);
CHECK_VALUE(RSM_HPC_ID_END, 0x4FFFFF);
CHECK_VALUE(RSM_OPS_ID_BASE, 0x500000);
CHECK_VALUE(RSM_OPS_ID_END, 0x5FFFFF);
CHECK_VALUE(RSM_USER_APP_ID_BASE, 0x80000000);
CHECK_VALUE(RSM_USER_APP_ID_END, 0xFFFFFFFF);
CHECK_VALUE(RSM_PERM_NONE, 0);
CHECK_VALUE(RSM_PERM_READ, 0400);
CHECK_VALUE(RSM_PERM_WRITE, 0200);
CHECK_VALUE(RSM_PERM_RDWR, 0600);
CHECK_VALUE(RSM_MAX_SGIOREQS, 16);
CHECK_VALUE(RSM_HANDLE_TYPE, 0x01);
CHECK_VALUE(RSM_VA_TYPE, 0x02);
CHECK_VALUE(RSM_ALLOW_REBIND, 0x01);
CHECK_VALUE(RSM_CREATE_SEG_DONTWAIT, 0x02);
CHECK_VALUE(RSM_IMPLICIT_SIGPOST, 0x01);
CHECK_VALUE(RSM_SIGPOST_NO_ACCUMULATE, 0x02);
CHECK_VALUE(RSM_CONNECTION_ACTIVE, 3);
/* Every implemented function, assigned to a pointer of its Solaris prototype
 * (usr/src/lib/librsm/inc/rsmapi.h). A changed parameter or return type is
 * an incompatible-pointer error under -Werror (C) or a hard error (C++). */
int (*p_get_controller)(char *, rsmapi_controller_handle_t *) = rsm_get_controller;
int (*p_get_controller_attr)(rsmapi_controller_handle_t, rsmapi_controller_attr_t *) =
    rsm_get_controller_attr;
int (*p_release_controller)(rsmapi_controller_handle_t) = rsm_release_controller;
int (*p_get_interconnect_topology)(rsm_topology_t **) = rsm_get_interconnect_topology;
void (*p_free_interconnect_topology)(rsm_topology_t *) = rsm_free_interconnect_topology;
int (*p_get_segmentid_range)(const char *, rsm_memseg_id_t *, uint32_t *) =
    rsm_get_segmentid_range;
int (*p_export_create)(rsmapi_controller_handle_t, rsm_memseg_export_handle_t *, void *, size_t,
                       uint_t) = rsm_memseg_export_create;
int (*p_export_destroy)(rsm_memseg_export_handle_t) = rsm_memseg_export_destroy;
int (*p_export_rebind)(rsm_memseg_export_handle_t, void *, offset_t, size_t) =
    rsm_memseg_export_rebind;
int (*p_export_publish)(rsm_memseg_export_handle_t, rsm_memseg_id_t *, rsmapi_access_entry_t[],
                        uint_t) = rsm_memseg_export_publish;
int (*p_export_unpublish)(rsm_memseg_export_handle_t) = rsm_memseg_export_unpublish;
int (*p_export_republish)(rsm_memseg_export_handle_t, rsmapi_access_entry_t[], uint_t) =
    rsm_memseg_export_republish;
int (*p_import_connect)(rsmapi_controller_handle_t, rsm_node_id_t, rsm_memseg_id_t,
                        rsm_permission_t, rsm_memseg_import_handle_t *) =
    rsm_memseg_import_connect;
int (*p_import_disconnect)(rsm_memseg_import_handle_t) = rsm_memseg_import_disconnect;
int (*p_import_map)(rsm_memseg_import_handle_t, void **, rsm_attribute_t, rsm_permission_t, off_t,
                    size_t) = rsm_memseg_import_map;
int (*p_import_unmap)(rsm_memseg_import_handle_t) = rsm_memseg_import_unmap;
int (*p_get_pollfd)(void *, struct pollfd *) = rsm_memseg_get_pollfd;
int (*p_release_pollfd)(void *) = rsm_memseg_release_pollfd;
int (*p_signal_post)(void *, uint_t) = rsm_intr_signal_post;
int (*p_signal_wait)(void *, int) = rsm_intr_signal_wait;
int (*p_signal_wait_pollfd)(struct pollfd[], nfds_t, int, int *) = rsm_intr_signal_wait_pollfd;
int (*p_get)(rsm_memseg_import_handle_t, off_t, void *, size_t) = rsm_memseg_import_get;
int (*p_get8)(rsm_memseg_import_handle_t, off_t, uint8_t *, ulong_t) = rsm_memseg_import_get8;
int (*p_get16)(rsm_memseg_import_handle_t, off_t, uint16_t *, ulong_t) = rsm_memseg_import_get16;
int (*p_get32)(rsm_memseg_import_handle_t, off_t, uint32_t *, ulong_t) = rsm_memseg_import_get32;
int (*p_get64)(rsm_memseg_import_handle_t, off_t, uint64_t *, ulong_t) = rsm_memseg_import_get64;
int (*p_put)(rsm_memseg_import_handle_t, off_t, void *, size_t) = rsm_memseg_import_put;
int (*p_put8)(rsm_memseg_import_handle_t, off_t, uint8_t *, ulong_t) = rsm_memseg_import_put8;
int (*p_put16)(rsm_memseg_import_handle_t, off_t, uint16_t *, ulong_t) = rsm_memseg_import_put16;
int (*p_put32)(rsm_memseg_import_handle_t, off_t, uint32_t *, ulong_t) = rsm_memseg_import_put32;
int (*p_put64)(rsm_memseg_import_handle_t, off_t, uint64_t *, ulong_t) = rsm_memseg_import_put64;
int (*p_init_barrier)(rsm_memseg_import_handle_t, rsm_barrier_type_t, rsmapi_barrier_t *) =
    rsm_memseg_import_init_barrier;
int (*p_open_barrier)(rsmapi_barrier_t *) = rsm_memseg_import_open_barrier;
int (*p_order_barrier)(rsmapi_barrier_t *) = rsm_memseg_import_order_barrier;
int (*p_close_barrier)(rsmapi_barrier_t *) = rsm_memseg_import_close_barrier;
int (*p_destroy_barrier)(rsmapi_barrier_t *) = rsm_memseg_import_destroy_barrier;
int (*p_get_mode)(rsm_memseg_import_handle_t, rsm_barrier_mode_t *) = rsm_memseg_import_get_mode;
int (*p_set_mode)(rsm_memseg_import_handle_t, rsm_barrier_mode_t) = rsm_memseg_import_set_mode;
int (*p_putv)(rsm_scat_gath_t *) = rsm_memseg_import_putv;
int (*p_getv)(rsm_scat_gath_t *) = rsm_memseg_import_getv;
int (*p_create_localmem)(rsmapi_controller_handle_t, rsm_localmemory_handle_t *, caddr_t, size_t) =
    rsm_create_localmemory_handle;
int (*p_free_localmem)(rsmapi_controller_handle_t, rsm_localmemory_handle_t) =
    rsm_free_localmemory_handle;

/* A translation unit must not be empty, and the pointers must be used. */
int layout_ok(void);
int layout_ok(void)
{
    return p_get_controller != 0 && p_get_controller_attr != 0 && p_release_controller != 0 &&
           p_get_interconnect_topology != 0 && p_free_interconnect_topology != 0 &&
           p_get_segmentid_range != 0 && p_export_create != 0 && p_export_destroy != 0 &&
           p_export_rebind != 0 && p_export_publish != 0 && p_export_unpublish != 0 &&
           p_export_republish != 0 && p_import_connect != 0 && p_import_disconnect != 0 &&
           p_import_map != 0 && p_import_unmap != 0 && p_get_pollfd != 0 && p_release_pollfd != 0 &&
           p_get != 0 && p_get8 != 0 && p_get16 != 0 && p_get32 != 0 && p_get64 != 0 && p_put != 0 &&
           p_put8 != 0 && p_put16 != 0 && p_put32 != 0 && p_put64 != 0 && p_init_barrier != 0 &&
           p_open_barrier != 0 && p_order_barrier != 0 && p_close_barrier != 0 &&
           p_destroy_barrier != 0 && p_get_mode != 0 && p_set_mode != 0 && p_putv != 0 &&
           p_getv != 0 && p_create_localmem != 0 && p_free_localmem != 0;
}
