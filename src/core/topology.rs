//! The interconnect topology (spec 4.2): this node, its non-loopback
//! controllers, and per controller the other nodes reachable now.

use crate::abi::types::RSM_CONNECTION_ACTIVE;
use crate::config::{self, NodeId};
use crate::core::controller;
use crate::error::RsmResult;

/// A path from a local controller to a controller on another node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteController {
    /// The other node.
    pub node: NodeId,
    /// Its controller's name.
    pub name: String,
    /// Its hardware address.
    pub hwaddr: u64,
    /// `RSM_CONNECTION_ACTIVE` for a node present now.
    pub state: u32,
}

/// One local controller and where it reaches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllerTopology {
    /// `<type><unit>`.
    pub name: String,
    /// This node's hardware address on it.
    pub hwaddr: u64,
    /// The other nodes it reaches now.
    pub remotes: Vec<RemoteController>,
}

/// A snapshot of the topology.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    /// This process's node id.
    pub local_node: NodeId,
    /// `shm0` and the configured controllers; never loopback (spec 5.6).
    pub controllers: Vec<ControllerTopology>,
}

/// Takes the snapshot. Processes on the same node id are not listed: a
/// node's own paths are not remote.
pub fn snapshot() -> RsmResult<Topology> {
    let config = config::get()?;
    let names = std::iter::once("shm0").chain(config.controllers.iter().map(|c| c.name.as_str()));
    let mut controllers = Vec::new();
    for name in names {
        let (canonical, transport) = controller::resolve(Some(name), config)?;
        let remotes = transport
            .nodes_present()?
            .into_iter()
            .filter(|&n| n != config.node_id)
            .map(|node| RemoteController {
                node,
                name: canonical.clone(),
                hwaddr: transport.hwaddr(node),
                state: RSM_CONNECTION_ACTIVE,
            })
            .collect();
        controllers.push(ControllerTopology {
            hwaddr: transport.hwaddr(config.node_id),
            name: canonical,
            remotes,
        });
    }
    Ok(Topology {
        local_node: config.node_id,
        controllers,
    })
}
