//! `rsm_get_interconnect_topology(3RSM)` and its free (spec 4.2).
//!
//! The result is the Solaris layout (spec 2.4): one 8-byte-aligned block
//! holding the header, `local_cntlr_count` pointers, and per controller its
//! `rsm_connections_hdr_t` followed at once by its `remote_cntlr_count`
//! `rsm_remote_cntlr_t`. The pointers point into the same block, so one
//! `free()` releases it: the application may call `free` itself.

use super::types::{
    rsm_connections_hdr_t, rsm_remote_cntlr_t, rsm_topology_hdr_t, rsm_topology_t, MAXNAMELEN,
};
use super::{entry, entry_void, non_null};
use crate::core::topology::{self, Topology};
use crate::error::{RsmError, RsmResult};
use crate::uaccess;
use std::ffi::{c_char, c_int};
use std::mem::size_of;
use std::ptr::null_mut;

/// Stores a snapshot of the topology in `*topology_data`; release it with
/// `rsm_free_interconnect_topology` (or `free`).
///
/// # Safety
/// `topology_data` points to writable storage for one pointer.
#[no_mangle]
pub unsafe extern "C" fn rsm_get_interconnect_topology(
    topology_data: *mut *mut rsm_topology_t,
) -> c_int {
    entry!(rsm_get_interconnect_topology(topology_data) {
        non_null(topology_data, RsmError::BadTopologyPtr)?;
        uaccess::copy_out(topology_data, &null_mut())?;
        let block = to_c_block(&topology::snapshot()?)?;
        uaccess::copy_out(topology_data, &block).inspect_err(|_| {
            // SAFETY: `block` came from malloc in to_c_block and was never
            // handed out.
            unsafe { libc::free(block.cast()) }
        })
    })
}

/// Frees a topology from `rsm_get_interconnect_topology`. NULL is ignored.
///
/// # Safety
/// `topology_data` is NULL or a block from `rsm_get_interconnect_topology`
/// that has not been freed.
#[no_mangle]
pub unsafe extern "C" fn rsm_free_interconnect_topology(topology_data: *mut rsm_topology_t) {
    entry_void!(rsm_free_interconnect_topology(topology_data) {
        // SAFETY: per the contract above the block is ours, from malloc.
        unsafe { libc::free(topology_data.cast()) }
    })
}

/// Lays the snapshot out in one malloc'd block.
fn to_c_block(topo: &Topology) -> RsmResult<*mut rsm_topology_t> {
    let count = topo.controllers.len();
    let pointers_at = size_of::<rsm_topology_hdr_t>();
    let mut size = pointers_at + count * size_of::<*mut rsm_connections_hdr_t>();
    let mut offsets = Vec::with_capacity(count);
    for c in &topo.controllers {
        offsets.push(size);
        size +=
            size_of::<rsm_connections_hdr_t>() + c.remotes.len() * size_of::<rsm_remote_cntlr_t>();
    }
    let local_cntlr_count = u32::try_from(count).map_err(|_| RsmError::InsufficientMem)?;
    // SAFETY: calloc has no preconditions; glibc aligns to 16, as Solaris'
    // memalign(8) block was aligned to 8.
    let base = unsafe { libc::calloc(1, size) }.cast::<u8>();
    if base.is_null() {
        return Err(RsmError::InsufficientMem);
    }
    let hdr = rsm_topology_hdr_t {
        local_nodeid: topo.local_node,
        local_cntlr_count,
    };
    // SAFETY: the block is `size` bytes, computed above to hold the header,
    // the pointers and every connections entry at the offsets recorded; all
    // offsets are multiples of 8 because every size involved is; calloc's
    // alignment covers the 8 these types need.
    unsafe {
        base.cast::<rsm_topology_hdr_t>().write(hdr);
        let pointers = base.add(pointers_at).cast::<*mut rsm_connections_hdr_t>();
        for (i, (c, &off)) in topo.controllers.iter().zip(&offsets).enumerate() {
            let conn = base.add(off).cast::<rsm_connections_hdr_t>();
            pointers.add(i).write(conn);
            let mut h: rsm_connections_hdr_t = std::mem::zeroed();
            copy_name(&mut h.cntlr_name, &c.name);
            h.local_hwaddr = c.hwaddr;
            h.remote_cntlr_count = c_int::try_from(c.remotes.len()).unwrap_or(c_int::MAX);
            conn.write(h);
            let remotes = conn.add(1).cast::<rsm_remote_cntlr_t>();
            for (j, r) in c.remotes.iter().enumerate() {
                let mut e: rsm_remote_cntlr_t = std::mem::zeroed();
                e.remote_nodeid = r.node;
                copy_name(&mut e.remote_cntlrname, &r.name);
                e.remote_hwaddr = r.hwaddr;
                e.connection_state = r.state;
                remotes.add(j).write(e);
            }
        }
    }
    Ok(base.cast())
}

/// Copies a name into a `char[MAXNAMELEN]`, always NUL-terminated.
fn copy_name(dst: &mut [c_char; MAXNAMELEN], name: &str) {
    for (d, &b) in dst
        .iter_mut()
        .zip(name.as_bytes().iter().take(MAXNAMELEN - 1))
    {
        *d = b as c_char;
    }
}
