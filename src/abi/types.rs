//! The C types and constants of `<rsmapi.h>`, `<sys/rsm/rsm_common.h>` and
//! `<sys/rsm/rsmapi_common.h>` (spec sections 2 and 3), exactly as Solaris
//! defines them for LP64. `tools/gen-headers` runs cbindgen over this file to
//! write `include/`; `ctests/layout.c` asserts every size, offset and value.
//!
//! Names follow the C headers, not Rust conventions, because they *are* the
//! C names.
#![allow(non_camel_case_types, non_upper_case_globals, missing_docs)]

use std::ffi::{c_char, c_int, c_uchar, c_uint, c_ulong, c_void};

// ---- Solaris base types that glibc lacks (spec 1.1) ----------------------

pub type uint_t = c_uint;
pub type ulong_t = c_ulong;
pub type uchar_t = c_uchar;
/// `long long` on Solaris; Linux has no `offset_t`.
pub type offset_t = i64;
/// glibc defines `caddr_t` only under `_DEFAULT_SOURCE`; the header guards it.
pub type caddr_t = *mut c_char;
/// `<sys/param.h>` on Solaris; glibc has no `MAXNAMELEN`. Guarded in the header.
pub const MAXNAMELEN: usize = 256;

// ---- rsm_common.h: scalars, handles, enums, barrier data ------------------

pub type rsm_addr_t = u64;
pub type rsm_node_id_t = u32;
pub type rsm_memseg_id_t = u32;
pub type rsm_permission_t = u32;

/// Opaque: handle values index librsm's handle table and are never dereferenced.
pub struct __rsm_memseg_import_handle {
    _opaque: [u8; 0],
}
/// Opaque, like the import handle.
pub struct __rsm_memseg_export_handle {
    _opaque: [u8; 0],
}
pub type rsm_memseg_import_handle_t = *mut __rsm_memseg_import_handle;
pub type rsm_memseg_export_handle_t = *mut __rsm_memseg_export_handle;

pub const RSM_VERSION: c_int = 5;

pub const RSM_SUCCESS: c_int = 0;
pub const RSMERR_BAD_LIBRARY_VERSION: c_int = 1;
pub const RSMERR_BAD_TOPOLOGY_PTR: c_int = 2;
pub const RSMERR_BAD_CTLR_HNDL: c_int = 3;
pub const RSMERR_CTLR_NOT_PRESENT: c_int = 4;
pub const RSMERR_BAD_SEG_HNDL: c_int = 5;
pub const RSMERR_SEG_ALREADY_PUBLISHED: c_int = 6;
pub const RSMERR_SEG_NOT_PUBLISHED: c_int = 7;
pub const RSMERR_SEG_NOT_PUBLISHED_TO_NODE: c_int = 8;
pub const RSMERR_SEG_ALREADY_MAPPED: c_int = 9;
pub const RSMERR_SEG_STILL_MAPPED: c_int = 10;
pub const RSMERR_SEG_NOT_MAPPED: c_int = 11;
pub const RSMERR_NOT_CREATOR: c_int = 12;
pub const RSMERR_BAD_BARRIER_PTR: c_int = 13;
pub const RSMERR_BAD_SGIO: c_int = 14;
pub const RSMERR_BAD_LOCALMEM_HNDL: c_int = 15;
pub const RSMERR_BAD_ADDR: c_int = 16;
pub const RSMERR_BAD_MEM_ALIGNMENT: c_int = 17;
pub const RSMERR_BAD_OFFSET: c_int = 18;
pub const RSMERR_MISALIGNED_OFFSET: c_int = 19;
pub const RSMERR_BAD_LENGTH: c_int = 20;
pub const RSMERR_BAD_ACL: c_int = 21;
pub const RSMERR_BAD_SEGID: c_int = 22;
pub const RSMERR_RESERVED_SEGID: c_int = 23;
pub const RSMERR_SEGID_IN_USE: c_int = 24;
pub const RSMERR_BAD_MODE: c_int = 25;
pub const RSMERR_BAD_PERMS: c_int = 26;
pub const RSMERR_PERM_DENIED: c_int = 27;
pub const RSMERR_LOCKS_NOT_SUPPORTED: c_int = 28;
pub const RSMERR_LOCKS_NOT_ENABLED: c_int = 29;
pub const RSMERR_REBIND_NOT_ALLOWED: c_int = 30;
pub const RSMERR_INSUFFICIENT_RESOURCES: c_int = 31;
pub const RSMERR_INSUFFICIENT_MEM: c_int = 32;
pub const RSMERR_MAP_FAILED: c_int = 33;
pub const RSMERR_POLLFD_IN_USE: c_int = 34;
pub const RSMERR_BARRIER_UNINITIALIZED: c_int = 35;
pub const RSMERR_BARRIER_OPEN_FAILED: c_int = 36;
pub const RSMERR_BARRIER_NOT_OPENED: c_int = 37;
pub const RSMERR_BARRIER_FAILURE: c_int = 38;
pub const RSMERR_REMOTE_NODE_UNREACHABLE: c_int = 39;
pub const RSMERR_CONN_ABORTED: c_int = 40;
pub const RSMERR_INTERRUPTED: c_int = 41;
pub const RSMERR_TIMEOUT: c_int = 42;
pub const RSMERR_BAD_APPID: c_int = 43;
pub const RSMERR_BAD_CONF: c_int = 44;
pub const RSMERR_SEG_NOT_CONNECTED: c_int = 45;

pub const RSMERR_INTERNAL_ERROR: c_int = 100;
pub const RSMERR_BAD_DRIVER_VERSION: c_int = 101;
pub const RSMERR_UNSUPPORTED_VERSION: c_int = 102;
pub const RSMERR_DRIVER_NAME_IN_USE: c_int = 103;
pub const RSMERR_DRIVER_NOT_REGISTERED: c_int = 104;
pub const RSMERR_DRIVER_THREAD_RUNNING: c_int = 105;
pub const RSMERR_NEED_THREAD_INIT: c_int = 106;
pub const RSMERR_THREAD_NOT_INITED: c_int = 107;
pub const RSMERR_CTLRS_REGISTERED: c_int = 108;
pub const RSMERR_CTLR_NOT_REGISTERED: c_int = 109;
pub const RSMERR_CTLR_ALREADY_REGISTERED: c_int = 110;
pub const RSMERR_CTLR_IN_USE: c_int = 111;
pub const RSMERR_NAME_TOO_LONG: c_int = 112;
pub const RSMERR_SEG_PUBLISHED: c_int = 113;
pub const RSMERR_SEG_NOT_PUBLISHED_TO_RSM_ADDR: c_int = 114;
pub const RSMERR_SEG_IN_USE: c_int = 115;
pub const RSMERR_BAD_SENDQ_HNDL: c_int = 116;
pub const RSMERR_BAD_ARGS_ERRORS: c_int = 117;
pub const RSMERR_BAD_MSTYPE: c_int = 118;
pub const RSMERR_NO_BACKING_MEM: c_int = 119;
pub const RSMERR_NOT_MEM: c_int = 120;
pub const RSMERR_MEM_ALREADY_BOUND: c_int = 121;
pub const RSMERR_MEM_NOT_BOUND: c_int = 122;
pub const RSMERR_HANDLER_NOT_REGISTERED: c_int = 123;
pub const RSMERR_NO_HANDLER: c_int = 124;
pub const RSMERR_UNBIND_REBIND_NOT_ALLOWED: c_int = 125;
pub const RSMERR_CALLBACKS_NOT_SUPPORTED: c_int = 126;
pub const RSMERR_UNSUPPORTED_OPERATION: c_int = 127;
pub const RSMERR_RSM_ADDR_UNREACHABLE: c_int = 128;
pub const RSMERR_UNKNOWN_RSM_ADDR: c_int = 129;
pub const RSMERR_BAD_BARRIER_HNDL: c_int = 130;
pub const RSMERR_COMM_ERR_MAYBE_DELIVERED: c_int = 131;
pub const RSMERR_COMM_ERR_NOT_DELIVERED: c_int = 132;
pub const RSMERR_QUEUE_FENCE_UP: c_int = 133;
pub const RSMERR_QUEUE_FULL: c_int = 134;

// Segment-id space (spec 3.3).
pub const RSM_DRIVER_PRIVATE_ID_BASE: u32 = 0;
pub const RSM_DRIVER_PRIVATE_ID_END: u32 = 0x0FFFFF;
pub const RSM_CLUSTER_TRANSPORT_ID_BASE: u32 = 0x100000;
pub const RSM_CLUSTER_TRANSPORT_ID_END: u32 = 0x1FFFFF;
pub const RSM_RSMLIB_ID_BASE: u32 = 0x200000;
pub const RSM_RSMLIB_ID_END: u32 = 0x2FFFFF;
pub const RSM_DLPI_ID_BASE: u32 = 0x300000;
pub const RSM_DLPI_ID_END: u32 = 0x3FFFFF;
pub const RSM_HPC_ID_BASE: u32 = 0x400000;
pub const RSM_HPC_ID_END: u32 = 0x4FFFFF;
pub const RSM_OPS_ID_BASE: u32 = 0x500000;
pub const RSM_OPS_ID_END: u32 = 0x5FFFFF;
pub const RSM_USER_APP_ID_BASE: u32 = 0x80000000;
pub const RSM_USER_APP_ID_END: u32 = 0xFFFFFFFF;

// Permissions (spec 3.4).
pub const RSM_PERM_NONE: rsm_permission_t = 0;
pub const RSM_PERM_READ: rsm_permission_t = 0o400;
pub const RSM_PERM_WRITE: rsm_permission_t = 0o200;
pub const RSM_PERM_RDWR: rsm_permission_t = RSM_PERM_READ | RSM_PERM_WRITE;

pub const RSM_MAX_SGIOREQS: c_int = 16;

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum rsm_access_size_t {
    RSM_DAS8 = 1,
    RSM_DAS16 = 2,
    RSM_DAS32 = 4,
    RSM_DAS64 = 8,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum rsm_barrier_type_t {
    RSM_BARRIER_SEGMENT = 0x01,
    RSM_BARRIER_NODE = 0x02,
    RSM_BARRIER_SEGMENT_THREAD = 0x11,
    RSM_BARRIER_NODE_THREAD = 0x12,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum rsm_barrier_mode_t {
    RSM_BARRIER_MODE_EXPLICIT = 0,
    RSM_BARRIER_MODE_IMPLICIT = 1,
}

/// How entry points receive a C enum: as the `int` it is, so that a value
/// outside the enum is an error code, never undefined behaviour in Rust.
/// The header generator renames these to the enum types in prototypes.
pub type rsm_barrier_type_raw = c_int;
/// See [`rsm_barrier_type_raw`].
pub type rsm_barrier_mode_raw = c_int;
/// See [`rsm_barrier_type_raw`].
pub type rsm_attribute_raw = c_int;

#[repr(C)]
#[derive(Clone, Copy)]
pub union rsm_barrier_component_t {
    pub u64: u64,
    pub i64: i64,
    pub u32: [u32; 2],
    pub i32: [i32; 2],
    pub u16: [u16; 4],
    pub i16: [i16; 4],
    pub u8: [u8; 8],
    pub i8: [i8; 8],
    pub uc: [uchar_t; 8],
    pub c: [c_char; 8],
    pub vp: *mut c_void,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct rsm_barrier_t {
    pub comp: [rsm_barrier_component_t; 4],
}

// ---- rsmapi_common.h -----------------------------------------------------

/// Opaque, like the segment handles.
pub struct __rsm_localmemory_handle {
    _opaque: [u8; 0],
}
/// Opaque, like the segment handles.
pub struct __rsmapi_controller_handle {
    _opaque: [u8; 0],
}
pub type rsm_localmemory_handle_t = *mut __rsm_localmemory_handle;
pub type rsmapi_controller_handle_t = *mut __rsmapi_controller_handle;

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct rsmapi_controller_attr_t {
    pub attr_direct_access_sizes: uint_t,
    pub attr_atomic_sizes: uint_t,
    pub attr_page_size: usize,
    pub attr_max_export_segment_size: usize,
    pub attr_tot_export_segment_size: usize,
    pub attr_max_export_segments: ulong_t,
    pub attr_max_import_map_size: usize,
    pub attr_tot_import_map_size: usize,
    pub attr_max_import_segments: ulong_t,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct rsmapi_access_entry_t {
    pub ae_node: rsm_node_id_t,
    pub ae_permission: rsm_permission_t,
}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct rsmapi_barrier_t {
    pub seg: *mut c_void,
    pub gnum: u16,
    pub privdata: *mut c_void,
}

/// The `local` member of `rsm_iovec_t`. Solaris declares it as an anonymous
/// union inside the struct; the layout and member names are the same.
#[repr(C)]
#[derive(Clone, Copy)]
pub union rsm_iovec_local_t {
    pub handle: rsm_localmemory_handle_t,
    pub vaddr: caddr_t,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct rsm_iovec_t {
    pub io_type: c_int,
    pub local: rsm_iovec_local_t,
    pub local_offset: usize,
    pub remote_offset: usize,
    pub transfer_length: usize,
}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct rsm_scat_gath_t {
    pub local_nodeid: rsm_node_id_t,
    pub io_request_count: ulong_t,
    pub io_residual_count: ulong_t,
    pub flags: uint_t,
    pub remote_handle: rsm_memseg_import_handle_t,
    pub iovec: *mut rsm_iovec_t,
}

pub const RSM_HANDLE_TYPE: c_int = 0x01;
pub const RSM_VA_TYPE: c_int = 0x02;
pub const RSM_ALLOW_REBIND: uint_t = 0x01;
pub const RSM_CREATE_SEG_DONTWAIT: uint_t = 0x02;
pub const RSM_IMPLICIT_SIGPOST: uint_t = 0x01;
pub const RSM_SIGPOST_NO_ACCUMULATE: uint_t = 0x02;

// ---- rsmapi.h ------------------------------------------------------------

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum rsm_attribute_t {
    RSM_MAP_NONE = 0x0,
    RSM_MAP_FIXED = 0x1,
    RSM_MAP_RESERVED = 0x2,
}

pub const RSM_CONNECTION_ACTIVE: uint_t = 3;

/// Solaris tags these structs (`struct rsm_topology_hdr`) and typedefs the
/// `_t` names; both spellings work with our header too.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct rsm_topology_hdr {
    pub local_nodeid: rsm_node_id_t,
    pub local_cntlr_count: uint_t,
}
pub type rsm_topology_hdr_t = rsm_topology_hdr;

#[repr(C)]
#[derive(Clone, Copy)]
pub struct rsm_connections_hdr {
    pub cntlr_name: [c_char; MAXNAMELEN],
    pub local_hwaddr: rsm_addr_t,
    pub remote_cntlr_count: c_int,
}
pub type rsm_connections_hdr_t = rsm_connections_hdr;

#[repr(C)]
#[derive(Clone, Copy)]
pub struct rsm_remote_cntlr {
    pub remote_nodeid: rsm_node_id_t,
    pub remote_cntlrname: [c_char; MAXNAMELEN],
    pub remote_hwaddr: rsm_addr_t,
    pub connection_state: uint_t,
}
pub type rsm_remote_cntlr_t = rsm_remote_cntlr;

#[repr(C)]
#[derive(Clone, Copy)]
pub struct rsm_connection {
    pub hdr: rsm_connections_hdr_t,
    pub remote_cntlr: [rsm_remote_cntlr_t; 1],
}
pub type rsm_connections_t = rsm_connection;

#[repr(C)]
#[derive(Clone, Copy)]
pub struct rsm_topology {
    pub topology_hdr: rsm_topology_hdr_t,
    pub connections: [*mut rsm_connections_t; 1],
}
pub type rsm_topology_t = rsm_topology;

/// `struct pollfd` from `<poll.h>` (identical on Solaris and Linux).
pub type pollfd = libc::pollfd;
/// `nfds_t` from `<poll.h>`.
pub type nfds_t = libc::nfds_t;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{RsmError, ALL};
    use std::mem::{align_of, offset_of, size_of};

    #[test]
    fn lp64_layouts_match_spec_2_4() {
        assert_eq!(size_of::<rsmapi_controller_attr_t>(), 64);
        assert_eq!(
            offset_of!(rsmapi_controller_attr_t, attr_max_import_segments),
            56
        );
        assert_eq!(size_of::<rsmapi_access_entry_t>(), 8);
        assert_eq!(
            (
                size_of::<rsmapi_barrier_t>(),
                align_of::<rsmapi_barrier_t>()
            ),
            (24, 8)
        );
        assert_eq!(offset_of!(rsmapi_barrier_t, privdata), 16);
        assert_eq!(size_of::<rsm_barrier_t>(), 32);
        assert_eq!(size_of::<rsm_iovec_t>(), 40);
        assert_eq!(offset_of!(rsm_iovec_t, local), 8);
        assert_eq!(offset_of!(rsm_iovec_t, transfer_length), 32);
        assert_eq!(size_of::<rsm_scat_gath_t>(), 48);
        assert_eq!(offset_of!(rsm_scat_gath_t, flags), 24);
        assert_eq!(offset_of!(rsm_scat_gath_t, iovec), 40);
        assert_eq!(size_of::<rsm_topology_hdr_t>(), 8);
        assert_eq!(size_of::<rsm_connections_hdr_t>(), 272);
        assert_eq!(offset_of!(rsm_connections_hdr_t, local_hwaddr), 256);
        assert_eq!(offset_of!(rsm_connections_hdr_t, remote_cntlr_count), 264);
        assert_eq!(size_of::<rsm_remote_cntlr_t>(), 280);
        assert_eq!(offset_of!(rsm_remote_cntlr_t, remote_hwaddr), 264);
        assert_eq!(offset_of!(rsm_remote_cntlr_t, connection_state), 272);
        assert_eq!(size_of::<rsm_connections_t>(), 552);
        assert_eq!(offset_of!(rsm_connections_t, remote_cntlr), 272);
        assert_eq!(size_of::<rsm_topology_t>(), 16);
    }

    #[test]
    fn error_constants_match_the_error_enum() {
        let consts = [
            RSMERR_BAD_LIBRARY_VERSION,
            RSMERR_BAD_TOPOLOGY_PTR,
            RSMERR_BAD_CTLR_HNDL,
            RSMERR_CTLR_NOT_PRESENT,
            RSMERR_BAD_SEG_HNDL,
            RSMERR_SEG_ALREADY_PUBLISHED,
            RSMERR_SEG_NOT_PUBLISHED,
            RSMERR_SEG_NOT_PUBLISHED_TO_NODE,
            RSMERR_SEG_ALREADY_MAPPED,
            RSMERR_SEG_STILL_MAPPED,
            RSMERR_SEG_NOT_MAPPED,
            RSMERR_NOT_CREATOR,
            RSMERR_BAD_BARRIER_PTR,
            RSMERR_BAD_SGIO,
            RSMERR_BAD_LOCALMEM_HNDL,
            RSMERR_BAD_ADDR,
            RSMERR_BAD_MEM_ALIGNMENT,
            RSMERR_BAD_OFFSET,
            RSMERR_MISALIGNED_OFFSET,
            RSMERR_BAD_LENGTH,
            RSMERR_BAD_ACL,
            RSMERR_BAD_SEGID,
            RSMERR_RESERVED_SEGID,
            RSMERR_SEGID_IN_USE,
            RSMERR_BAD_MODE,
            RSMERR_BAD_PERMS,
            RSMERR_PERM_DENIED,
            RSMERR_LOCKS_NOT_SUPPORTED,
            RSMERR_LOCKS_NOT_ENABLED,
            RSMERR_REBIND_NOT_ALLOWED,
            RSMERR_INSUFFICIENT_RESOURCES,
            RSMERR_INSUFFICIENT_MEM,
            RSMERR_MAP_FAILED,
            RSMERR_POLLFD_IN_USE,
            RSMERR_BARRIER_UNINITIALIZED,
            RSMERR_BARRIER_OPEN_FAILED,
            RSMERR_BARRIER_NOT_OPENED,
            RSMERR_BARRIER_FAILURE,
            RSMERR_REMOTE_NODE_UNREACHABLE,
            RSMERR_CONN_ABORTED,
            RSMERR_INTERRUPTED,
            RSMERR_TIMEOUT,
            RSMERR_BAD_APPID,
            RSMERR_BAD_CONF,
            RSMERR_SEG_NOT_CONNECTED,
            RSMERR_INTERNAL_ERROR,
            RSMERR_BAD_DRIVER_VERSION,
            RSMERR_UNSUPPORTED_VERSION,
            RSMERR_DRIVER_NAME_IN_USE,
            RSMERR_DRIVER_NOT_REGISTERED,
            RSMERR_DRIVER_THREAD_RUNNING,
            RSMERR_NEED_THREAD_INIT,
            RSMERR_THREAD_NOT_INITED,
            RSMERR_CTLRS_REGISTERED,
            RSMERR_CTLR_NOT_REGISTERED,
            RSMERR_CTLR_ALREADY_REGISTERED,
            RSMERR_CTLR_IN_USE,
            RSMERR_NAME_TOO_LONG,
            RSMERR_SEG_PUBLISHED,
            RSMERR_SEG_NOT_PUBLISHED_TO_RSM_ADDR,
            RSMERR_SEG_IN_USE,
            RSMERR_BAD_SENDQ_HNDL,
            RSMERR_BAD_ARGS_ERRORS,
            RSMERR_BAD_MSTYPE,
            RSMERR_NO_BACKING_MEM,
            RSMERR_NOT_MEM,
            RSMERR_MEM_ALREADY_BOUND,
            RSMERR_MEM_NOT_BOUND,
            RSMERR_HANDLER_NOT_REGISTERED,
            RSMERR_NO_HANDLER,
            RSMERR_UNBIND_REBIND_NOT_ALLOWED,
            RSMERR_CALLBACKS_NOT_SUPPORTED,
            RSMERR_UNSUPPORTED_OPERATION,
            RSMERR_RSM_ADDR_UNREACHABLE,
            RSMERR_UNKNOWN_RSM_ADDR,
            RSMERR_BAD_BARRIER_HNDL,
            RSMERR_COMM_ERR_MAYBE_DELIVERED,
            RSMERR_COMM_ERR_NOT_DELIVERED,
            RSMERR_QUEUE_FENCE_UP,
            RSMERR_QUEUE_FULL,
        ];
        let codes: Vec<i32> = ALL.iter().map(|e: &RsmError| e.code()).collect();
        assert_eq!(consts.to_vec(), codes);
    }
}
