//! Controllers (spec 4.1): opened by name, reference counted per process,
//! each backed by a transport.
//!
//! Names: `loopback` (also NULL and `loopback<digits>`; local node only, as
//! on Solaris), `shm0` (every node of this process's fabric on this host),
//! and the controllers of the config file. Matching ignores case; the
//! trailing digits are the unit, none meaning 0 (so `shm` is `shm0`).

use crate::config::{self, Config, ControllerKind, NodeId};
use crate::error::{RsmError, RsmResult};
use crate::handles::{HandleTable, Kind};
use crate::transport::shm::ShmTransport;
use crate::transport::window::WindowTransport;
use crate::transport::{ControllerAttributes, Presence, Transport};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

/// An open controller.
pub struct Controller {
    /// Canonical name: `loopback`, `shm0`, or a config name.
    pub name: String,
    /// Loopback reaches only the local node (spec 5.6).
    pub loopback: bool,
    /// Node id of this process.
    pub local_node: NodeId,
    /// The interconnect.
    pub transport: Arc<dyn Transport>,
    /// Shows this process on the fabric for as long as the controller is open.
    _presence: Box<dyn Presence>,
}

struct Open {
    handle: usize,
    refs: u32,
}

struct Registry {
    table: HandleTable<Arc<Controller>>,
    open: Mutex<HashMap<String, Open>>,
}

static REGISTRY: LazyLock<Registry> = LazyLock::new(|| Registry {
    table: HandleTable::new(Kind::Controller),
    open: Mutex::new(HashMap::new()),
});

/// The transport behind a controller name, or `RSMERR_CTLR_NOT_PRESENT`.
/// Returns the canonical name with it.
pub fn resolve(name: Option<&str>, config: &Config) -> RsmResult<(String, Arc<dyn Transport>)> {
    let (ty, unit) = match name {
        None => ("loopback".to_string(), 0),
        Some(n) => config::canonical_controller_name(n).ok_or(RsmError::CtlrNotPresent)?,
    };
    let same_host = |fabric: &str| -> Arc<dyn Transport> {
        let timeout = std::time::Duration::from_millis(config.connect_timeout_ms);
        Arc::new(ShmTransport::new(fabric, config.max_segments, timeout))
    };
    if ty == "loopback" {
        return Ok(("loopback".into(), same_host(&config.fabric)));
    }
    let canonical = format!("{ty}{unit}");
    if canonical == "shm0" {
        return Ok((canonical, same_host(&config.fabric)));
    }
    let configured = config.controllers.iter().find(|c| c.name == canonical);
    match configured.map(|c| &c.kind) {
        Some(ControllerKind::Shm { fabric }) => Ok((canonical, same_host(fabric))),
        Some(ControllerKind::Window(window)) => {
            let timeout = std::time::Duration::from_millis(config.connect_timeout_ms);
            let transport = WindowTransport::new(
                &canonical,
                window,
                config.node_id,
                timeout,
                config.max_segments,
            );
            Ok((canonical, Arc::new(transport)))
        }
        None => {
            crate::why!("no controller {canonical:?}: not built in, not in the config file");
            Err(RsmError::CtlrNotPresent)
        }
    }
}

/// `rsm_get_controller`: the handle of the named controller, the same one
/// for every get of the same controller until it is fully released.
pub fn get(name: Option<&str>) -> RsmResult<usize> {
    let config = config::get()?;
    let (canonical, transport) = resolve(name, config)?;
    let loopback = canonical == "loopback";
    open(&canonical, loopback, transport, config.node_id)
}

/// Opens (or takes one more reference to) the controller `canonical` on
/// `transport`, as node `node`; `loopback` restricts it to that node.
pub fn open(
    canonical: &str,
    loopback: bool,
    transport: Arc<dyn Transport>,
    node: NodeId,
) -> RsmResult<usize> {
    let registry = &*REGISTRY;
    let mut open = registry.open.lock();
    if let Some(o) = open.get_mut(canonical) {
        o.refs = o
            .refs
            .checked_add(1)
            .ok_or(RsmError::InsufficientResources)?;
        return Ok(o.handle);
    }
    crate::oom::headroom()?;
    let presence = transport.announce(node, canonical)?;
    let controller = Controller {
        loopback,
        name: canonical.to_string(),
        local_node: node,
        transport,
        _presence: presence,
    };
    let handle = registry.table.insert(Arc::new(controller))?;
    open.insert(canonical.to_string(), Open { handle, refs: 1 });
    Ok(handle)
}

/// `rsm_release_controller`: drops one reference; the last one closes the
/// controller and its handle goes stale.
pub fn release(handle: usize) -> RsmResult<()> {
    let registry = &*REGISTRY;
    let name = registry
        .table
        .get(handle, RsmError::BadCtlrHndl)?
        .name
        .clone();
    let mut open = registry.open.lock();
    let entry = open
        .get_mut(&name)
        .filter(|o| o.handle == handle)
        .ok_or(RsmError::BadCtlrHndl)?;
    entry.refs -= 1;
    if entry.refs == 0 {
        open.remove(&name);
        registry.table.remove(handle);
    }
    Ok(())
}

/// The open controller behind `handle`, or `RSMERR_BAD_CTLR_HNDL`.
pub fn lookup(handle: usize) -> RsmResult<Arc<Controller>> {
    Ok(Arc::clone(
        &*REGISTRY.table.get(handle, RsmError::BadCtlrHndl)?,
    ))
}

/// `rsm_get_controller_attr`.
pub fn attributes(handle: usize) -> RsmResult<ControllerAttributes> {
    lookup(handle)?.transport.attributes()
}

/// How many references `handle` holds (0 if not open), for tests and tools.
pub fn refs(handle: usize) -> u32 {
    let Ok(name) = REGISTRY
        .table
        .get(handle, RsmError::BadCtlrHndl)
        .map(|c| c.name.clone())
    else {
        return 0;
    };
    REGISTRY
        .open
        .lock()
        .get(&name)
        .filter(|o| o.handle == handle)
        .map_or(0, |o| o.refs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve_like_solaris() {
        let mut config = Config::default();
        config.controllers.push(config::ControllerConfig {
            name: "shm4".into(),
            kind: ControllerKind::Shm { fabric: "b".into() },
        });
        let name = |n| resolve(n, &config).map(|(c, _)| c);
        assert_eq!(name(None), Ok("loopback".into()));
        assert_eq!(name(Some("loopback")), Ok("loopback".into()));
        assert_eq!(name(Some("loopback7")), Ok("loopback".into()));
        assert_eq!(name(Some("LOOPBACK")), Ok("loopback".into()));
        assert_eq!(name(Some("shm0")), Ok("shm0".into()));
        assert_eq!(name(Some("shm")), Ok("shm0".into()));
        assert_eq!(name(Some("SHM4")), Ok("shm4".into()));
        for absent in ["shm1", "sci0", "wrsm", "", "0", "loop back"] {
            assert_eq!(
                name(Some(absent)),
                Err(RsmError::CtlrNotPresent),
                "{absent:?}"
            );
        }
    }

    #[test]
    fn get_is_reference_counted_and_release_stales_the_handle() {
        let h = get(Some("loopback")).unwrap();
        assert_eq!(get(None), Ok(h));
        assert_eq!(get(Some("loopback3")), Ok(h));
        assert_eq!(refs(h), 3);
        assert!(attributes(h).unwrap().page_size >= 4096);
        for _ in 0..3 {
            release(h).unwrap();
        }
        assert_eq!(refs(h), 0);
        assert_eq!(release(h), Err(RsmError::BadCtlrHndl));
        assert_eq!(attributes(h).err(), Some(RsmError::BadCtlrHndl));
        let again = get(Some("loopback")).unwrap();
        assert_ne!(again, h, "a reopened controller gets a fresh handle");
        release(again).unwrap();
        assert_eq!(release(0), Err(RsmError::BadCtlrHndl));
        assert_eq!(release(usize::MAX), Err(RsmError::BadCtlrHndl));
    }
}
