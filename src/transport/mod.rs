//! The interconnect behind a controller. `core/` speaks only this trait;
//! each backend hides its mechanism (sockets and memfds for `shm`, later a
//! shared memory window). Export, import, data path and events join the
//! trait with the issues that build them (DESIGN.md 5-7).

pub mod shm;

use crate::config::NodeId;
use crate::error::RsmResult;

/// Limits and sizes of a controller, as `rsmapi_controller_attr_t` reports
/// them: the values the transport enforces, not placeholders.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ControllerAttributes {
    /// `RSM_DAS*` bits of the loads and stores get/put use.
    pub direct_access_sizes: u32,
    /// `RSM_DAS*` bits of the sizes that are single-copy atomic.
    pub atomic_sizes: u32,
    /// Granule of export addresses and lengths.
    pub page_size: usize,
    /// Largest export segment.
    pub max_export_segment_size: usize,
    /// Most memory all export segments of this process may hold.
    pub tot_export_segment_size: usize,
    /// Most export segments a process may hold.
    pub max_export_segments: u64,
    /// Largest single import mapping.
    pub max_import_map_size: usize,
    /// Most address space all import mappings may take.
    pub tot_import_map_size: usize,
    /// Most import segments a process may hold.
    pub max_import_segments: u64,
}

/// Keeps this process visible on a fabric while it lives.
pub trait Presence: Send + Sync {}

/// One interconnect instance, as seen by one process.
pub trait Transport: Send + Sync {
    /// The attributes a controller on this transport reports.
    fn attributes(&self) -> RsmResult<ControllerAttributes>;

    /// Hardware address of `node` on this interconnect (topology `*_hwaddr`).
    fn hwaddr(&self, node: NodeId) -> u64;

    /// Makes this process, as `node`, visible to others on the fabric until
    /// the returned value drops. `label` tells apart several controllers of
    /// one process on one fabric.
    fn announce(&self, node: NodeId, label: &str) -> RsmResult<Box<dyn Presence>>;

    /// Node ids of the processes visible on the fabric now (with repeats
    /// removed, in increasing order; may include the caller's own node).
    fn nodes_present(&self) -> RsmResult<Vec<NodeId>>;
}
