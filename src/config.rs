//! Configuration: this process's node id and fabric, extra controllers, and
//! the segment-id reservation file.
//!
//! Sources, strongest first: `RSM_NODE_ID` / `RSM_FABRIC`, then the config
//! file (`RSM_CONFIG`, default `/etc/rsm/rsm.conf`), then defaults (node 0,
//! fabric `default`). A malformed value is never replaced by a default: it
//! makes every call that needs the configuration fail with
//! `RSMERR_BAD_CONF`, and `RSM_DEBUG=1` prints why.
//!
//! File format (README "Configuration"):
//! ```text
//! # comment
//! node_id = 3            # 0..63, as Solaris cluster node ids
//! fabric = lab           # [A-Za-z0-9._-], 1..64 characters
//! max_segments = 262144  # per process, each of export and import
//! connect_timeout_ms = 10000  # how long a connect waits for the exporter
//! spin_us = 30           # how long a signal wait spins before it sleeps
//!
//! [controller shm1]      # another same-host controller
//! type = shm
//! fabric = lab2
//!
//! [controller ntb0]      # a memory window (DESIGN.md 6)
//! type = window
//! heartbeat_ms = 100     # how often a process beats
//! heartbeat_misses = 10  # beats missed before a peer counts as dead
//! node 0 = /dev/shm/rsm-ntb0-node0 0 8M   # path, offset, size
//! node 1 = /sys/bus/pci/devices/0000:03:00.1/resource2_wc 0 64M
//! ```

use crate::error::{RsmError, RsmResult};
use crate::why;
use std::path::Path;
use std::sync::OnceLock;

/// A cluster node id (`rsm_node_id_t`).
pub type NodeId = u32;

/// Largest node id: Solaris limits ACL node ids to 64 and delivers no
/// message to a node id of 64 or more (spec 5.5), so 0..=63 can take part.
pub const MAX_NODE_ID: NodeId = 63;
/// Default for `max_segments`.
pub const DEFAULT_MAX_SEGMENTS: u64 = 262_144;
/// Default for `connect_timeout_ms`.
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 10_000;
/// Default config file.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/rsm/rsm.conf";
/// Default segment-id reservation file (spec 4.3).
pub const DEFAULT_SEGMENTID_PATH: &str = "/etc/rsm/rsm.segmentid";

/// Default for a window controller's `heartbeat_ms`.
pub const DEFAULT_HEARTBEAT_MS: u64 = 100;
/// Default for a window controller's `heartbeat_misses`.
pub const DEFAULT_HEARTBEAT_MISSES: u32 = 10;
/// Smallest window: the control area (docs/window-format.md) takes 640
/// KiB, and segments need room after it.
pub const MIN_WINDOW_SIZE: u64 = 1 << 20;
/// Granule of window offsets and sizes in the file (the largest common
/// page size; the window's own layout aligns to 64 KiB).
pub const WINDOW_ALIGN: u64 = 4096;

/// What kind of interconnect a configured controller is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControllerKind {
    /// Processes on this host, on the given fabric.
    Shm {
        /// Fabric name; processes see each other only within one fabric.
        fabric: String,
    },
    /// Hosts that share memory windows (DESIGN.md 6): one window per node.
    Window(WindowConfig),
}

/// Where one node's window is, as this host reaches it: a PCI BAR
/// (`resourceN_wc` of an NTB, `resource2` of an ivshmem device) or a
/// plain file (tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowSpec {
    /// The node that owns (exports from) this window.
    pub node: NodeId,
    /// The file to map.
    pub path: String,
    /// Where the window starts in the file.
    pub offset: u64,
    /// Its length.
    pub size: u64,
}

/// A window controller: the nodes' windows and the liveness settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowConfig {
    /// One per node, in increasing node order.
    pub windows: Vec<WindowSpec>,
    /// How often every process beats (milliseconds).
    pub heartbeat_ms: u64,
    /// How many of its own beats a process waits, seeing no beat of a
    /// peer, before it counts the peer as dead.
    pub heartbeat_misses: u32,
}

impl WindowConfig {
    /// The window of `node`, if configured.
    pub fn window(&self, node: NodeId) -> Option<&WindowSpec> {
        self.windows.iter().find(|w| w.node == node)
    }
}

/// A controller named in the config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllerConfig {
    /// Canonical name, `<type><unit>`, lowercase (for example `shm1`).
    pub name: String,
    /// Its transport.
    pub kind: ControllerKind,
}

/// The whole configuration of this process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Node id of this process.
    pub node_id: NodeId,
    /// Fabric of `loopback` and `shm0`.
    pub fabric: String,
    /// Most segments of each direction a process may hold.
    pub max_segments: u64,
    /// How long a connect waits for the exporter's answer.
    pub connect_timeout_ms: u64,
    /// How long a signal wait spins before sleeping, if set (`RSM_SPIN_US`
    /// overrides it).
    pub spin_us: Option<u64>,
    /// Controllers from the file.
    pub controllers: Vec<ControllerConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            node_id: 0,
            fabric: "default".into(),
            max_segments: DEFAULT_MAX_SEGMENTS,
            connect_timeout_ms: DEFAULT_CONNECT_TIMEOUT_MS,
            spin_us: None,
            controllers: Vec::new(),
        }
    }
}

/// The configuration, read once per process.
pub fn get() -> RsmResult<&'static Config> {
    static CONFIG: OnceLock<RsmResult<Config>> = OnceLock::new();
    CONFIG.get_or_init(load).as_ref().map_err(|e| *e)
}

fn load() -> RsmResult<Config> {
    let explicit = std::env::var_os("RSM_CONFIG");
    let path = explicit
        .clone()
        .unwrap_or_else(|| DEFAULT_CONFIG_PATH.into());
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => Some(text),
        // Only the default file may be absent: a named one must exist.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && explicit.is_none() => None,
        Err(e) => {
            why!("config: cannot read {}: {e}", Path::new(&path).display());
            return Err(RsmError::BadConf);
        }
    };
    let env_node = std::env::var("RSM_NODE_ID").ok();
    let env_fabric = std::env::var("RSM_FABRIC").ok();
    resolve(text.as_deref(), env_node.as_deref(), env_fabric.as_deref()).map_err(|msg| {
        why!("config: {msg}");
        RsmError::BadConf
    })
}

/// Builds the configuration from the file text and the environment values.
/// Errors are messages for `RSM_DEBUG`; the caller maps them to BAD_CONF.
pub fn resolve(
    file: Option<&str>,
    env_node: Option<&str>,
    env_fabric: Option<&str>,
) -> Result<Config, String> {
    let mut config = match file {
        Some(text) => parse_file(text)?,
        None => Config::default(),
    };
    if let Some(v) = env_node {
        config.node_id = parse_node_id(v).map_err(|e| format!("RSM_NODE_ID={v:?}: {e}"))?;
    }
    if let Some(v) = env_fabric {
        config.fabric = parse_fabric(v).map_err(|e| format!("RSM_FABRIC={v:?}: {e}"))?;
    }
    Ok(config)
}

/// A node id: decimal, 0..=63.
pub fn parse_node_id(v: &str) -> Result<NodeId, String> {
    let v = v.trim();
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err("not a decimal number".into());
    }
    match v.parse::<u64>() {
        Ok(n) if n <= u64::from(MAX_NODE_ID) => Ok(n as NodeId),
        _ => Err(format!("node ids are 0..={MAX_NODE_ID}")),
    }
}

/// A fabric name: it becomes part of socket names, so it is restricted.
pub fn parse_fabric(v: &str) -> Result<String, String> {
    let ok = !v.is_empty()
        && v.len() <= 64
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(v.to_string())
    } else {
        Err("fabric names are 1..64 of A-Z a-z 0-9 . _ -".into())
    }
}

/// Splits a controller name into type and unit the way Solaris does: the
/// trailing decimal digits are the unit (none: 0), the rest the type,
/// compared without case (spec 4.1). Returns the canonical `<type><unit>`.
pub fn canonical_controller_name(name: &str) -> Option<(String, u32)> {
    let digits = name.bytes().rev().take_while(u8::is_ascii_digit).count();
    let (ty, unit) = name.split_at(name.len() - digits);
    if ty.is_empty() {
        return None;
    }
    // atoi: a unit too large for an int is not a controller we have.
    let unit: u32 = if unit.is_empty() {
        0
    } else {
        unit.parse().ok()?
    };
    Some((ty.to_ascii_lowercase(), unit))
}

/// A positive decimal integer.
fn positive(value: &str) -> Option<u64> {
    value.parse::<u64>().ok().filter(|&n| n > 0)
}

/// A number of bytes: decimal or `0x` hexadecimal, with an optional
/// binary suffix `K`, `M` or `G`.
fn parse_bytes(v: &str) -> Option<u64> {
    let (digits, shift) = match v.as_bytes().last()? {
        b'K' | b'k' => (&v[..v.len() - 1], 10),
        b'M' | b'm' => (&v[..v.len() - 1], 20),
        b'G' | b'g' => (&v[..v.len() - 1], 30),
        _ => (v, 0),
    };
    let n = match digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        Some(hex) if !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
            u64::from_str_radix(hex, 16).ok()?
        }
        Some(_) => return None,
        None if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => {
            digits.parse().ok()?
        }
        None => return None,
    };
    n.checked_mul(1 << shift)
}

/// A `node <id> = <path> <offset> <size>` line of a window controller.
fn parse_window_line(id: &str, value: &str) -> Result<WindowSpec, String> {
    let node = parse_node_id(id)?;
    let fields: Vec<&str> = value.split_whitespace().collect();
    let [path, offset, size] = fields[..] else {
        return Err("expected node <id> = <path> <offset> <size>".into());
    };
    if !path.starts_with('/') {
        return Err("the window path must be absolute".into());
    }
    let (Some(offset), Some(size)) = (parse_bytes(offset), parse_bytes(size)) else {
        return Err("offset and size are numbers of bytes (suffix K, M or G)".into());
    };
    if offset % WINDOW_ALIGN != 0 || size % WINDOW_ALIGN != 0 {
        return Err(format!(
            "offset and size must be multiples of {WINDOW_ALIGN}"
        ));
    }
    if size < MIN_WINDOW_SIZE {
        return Err(format!("a window is at least {MIN_WINDOW_SIZE} bytes"));
    }
    if offset
        .checked_add(size)
        .is_none_or(|end| end > i64::MAX as u64)
    {
        return Err("offset + size is too large".into());
    }
    Ok(WindowSpec {
        node,
        path: path.to_string(),
        offset,
        size,
    })
}

/// A `[controller]` section being read: keys are collected first, since
/// `type` need not come first, and checked against the type at its end.
struct Section {
    name: String,
    ty: Option<String>,
    fabric: Option<(String, usize)>,
    windows: Vec<(WindowSpec, usize)>,
    heartbeat_ms: Option<(u64, usize)>,
    heartbeat_misses: Option<(u32, usize)>,
}

impl Section {
    fn new(name: String) -> Self {
        Section {
            name,
            ty: None,
            fabric: None,
            windows: Vec::new(),
            heartbeat_ms: None,
            heartbeat_misses: None,
        }
    }

    /// The controller, or why not (with the line of the offending key).
    fn finish(self, default_fabric: &str) -> Result<ControllerConfig, String> {
        let at = |line: usize, msg: &str| format!("line {line}: controller {}: {msg}", self.name);
        let kind = match self.ty.as_deref() {
            None => return Err(format!("controller {}: no type", self.name)),
            Some("shm") => {
                if let Some((_, line)) = self.windows.first() {
                    return Err(at(*line, "node lines belong to type = window"));
                }
                if let Some((_, line)) = self.heartbeat_ms {
                    return Err(at(line, "heartbeat_ms belongs to type = window"));
                }
                if let Some((_, line)) = self.heartbeat_misses {
                    return Err(at(line, "heartbeat_misses belongs to type = window"));
                }
                ControllerKind::Shm {
                    fabric: self
                        .fabric
                        .map_or_else(|| default_fabric.to_string(), |(f, _)| f),
                }
            }
            Some(_) => {
                if let Some((_, line)) = self.fabric {
                    return Err(at(line, "a window controller has no fabric"));
                }
                if self.windows.is_empty() {
                    return Err(format!(
                        "controller {}: a window controller needs node <id> = <path> <offset> <size> lines",
                        self.name
                    ));
                }
                let mut windows: Vec<WindowSpec> = Vec::new();
                for (w, line) in self.windows {
                    if windows.iter().any(|o| o.node == w.node) {
                        return Err(at(line, &format!("node {} named twice", w.node)));
                    }
                    let overlap = windows.iter().find(|o| {
                        o.path == w.path
                            && o.offset < w.offset + w.size
                            && w.offset < o.offset + o.size
                    });
                    if let Some(o) = overlap {
                        return Err(at(
                            line,
                            &format!("the window of node {} overlaps node {}'s", w.node, o.node),
                        ));
                    }
                    windows.push(w);
                }
                windows.sort_by_key(|w| w.node);
                ControllerKind::Window(WindowConfig {
                    windows,
                    heartbeat_ms: self.heartbeat_ms.map_or(DEFAULT_HEARTBEAT_MS, |(v, _)| v),
                    heartbeat_misses: self
                        .heartbeat_misses
                        .map_or(DEFAULT_HEARTBEAT_MISSES, |(v, _)| v),
                })
            }
        };
        Ok(ControllerConfig {
            name: self.name,
            kind,
        })
    }
}

/// Parses the text of an RSM config file (the format the README documents).
pub fn parse_file(text: &str) -> Result<Config, String> {
    let mut config = Config::default();
    let mut section: Option<Section> = None;
    for (n, raw) in text.lines().enumerate() {
        let lineno = n + 1;
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let err = |msg: &str| format!("line {lineno}: {msg}: {raw:?}");
        if let Some(header) = line.strip_prefix('[') {
            let header = header.strip_suffix(']').ok_or_else(|| err("unclosed ["))?;
            let mut words = header.split_whitespace();
            let (Some("controller"), Some(name), None) = (words.next(), words.next(), words.next())
            else {
                return Err(err("expected [controller <name>]"));
            };
            let valid =
                name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') && name.len() < 32;
            let (ty, unit) = canonical_controller_name(name)
                .filter(|_| valid)
                .ok_or_else(|| {
                    err("controller names are <letters><digits>, under 32 characters")
                })?;
            let canonical = format!("{ty}{unit}");
            if ty == "loopback" || canonical == "shm0" {
                return Err(err("loopback and shm0 are built in"));
            }
            let named_before = config.controllers.iter().any(|c| c.name == canonical)
                || section.as_ref().is_some_and(|s| s.name == canonical);
            if named_before {
                return Err(err("controller named twice"));
            }
            if let Some(done) = section.replace(Section::new(canonical)) {
                config.controllers.push(done.finish(&config.fabric)?);
            }
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| err("expected key = value"))?;
        let (key, value) = (key.trim(), value.trim());
        let Some(s) = section.as_mut() else {
            match key {
                "node_id" => config.node_id = parse_node_id(value).map_err(|e| err(&e))?,
                "fabric" => config.fabric = parse_fabric(value).map_err(|e| err(&e))?,
                "max_segments" => {
                    config.max_segments = positive(value)
                        .ok_or_else(|| err(&format!("{key} is a positive integer")))?
                }
                "connect_timeout_ms" => {
                    config.connect_timeout_ms = positive(value)
                        .ok_or_else(|| err(&format!("{key} is a positive integer")))?
                }
                "spin_us" => {
                    config.spin_us = Some(
                        value
                            .parse::<u64>()
                            .map_err(|_| err(&format!("{key} is a number of microseconds")))?,
                    )
                }
                _ => return Err(err("unknown key")),
            }
            continue;
        };
        let mut words = key.split_whitespace();
        match (words.next(), words.next(), words.next()) {
            (Some("type"), None, _) => {
                if value != "shm" && value != "window" {
                    return Err(err("controller type must be shm or window"));
                }
                if s.ty.replace(value.to_string()).is_some() {
                    return Err(err("type given twice"));
                }
            }
            (Some("fabric"), None, _) => {
                s.fabric = Some((parse_fabric(value).map_err(|e| err(&e))?, lineno));
            }
            (Some("heartbeat_ms"), None, _) => {
                let ms = positive(value)
                    .filter(|&ms| ms <= 60_000)
                    .ok_or_else(|| err("heartbeat_ms is 1..=60000"))?;
                s.heartbeat_ms = Some((ms, lineno));
            }
            (Some("heartbeat_misses"), None, _) => {
                let misses = value
                    .parse::<u32>()
                    .ok()
                    .filter(|m| (2..=1000).contains(m))
                    .ok_or_else(|| err("heartbeat_misses is 2..=1000"))?;
                s.heartbeat_misses = Some((misses, lineno));
            }
            (Some("node"), Some(id), None) => {
                let w = parse_window_line(id, value).map_err(|e| err(&e))?;
                s.windows.push((w, lineno));
            }
            _ => return Err(err("unknown key")),
        }
    }
    if let Some(done) = section {
        config.controllers.push(done.finish(&config.fabric)?);
    }
    Ok(config)
}

/// Path of the segment-id file: `RSM_SEGMENTID_FILE`, else the Solaris one.
pub fn segmentid_path() -> std::path::PathBuf {
    std::env::var_os("RSM_SEGMENTID_FILE").map_or_else(|| DEFAULT_SEGMENTID_PATH.into(), Into::into)
}

/// The segment-id file's text. Missing or unreadable: `RSMERR_BAD_CONF`.
pub fn read_segmentid_file() -> RsmResult<String> {
    let path = segmentid_path();
    std::fs::read(&path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .map_err(|e| {
            why!("segment-id file {}: {e}", path.display());
            RsmError::BadConf
        })
}

/// Finds `appid`'s reserved range in segment-id file text (spec 4.3).
///
/// As on Solaris: `#` lines are comments; every other line, blank ones
/// included, must have four fields (`reserved <appid> <hex base> <decimal
/// length>`), or parsing stops with `RSMERR_BAD_CONF`; the first line whose
/// appid matches without case decides; no match is `RSMERR_BAD_APPID`.
/// Beyond Solaris: the keyword may also be spelled `reserve` (as the manual
/// does), numbers must be whole and in range, and anything after the length
/// must be a `#` comment; Solaris silently read garbage as 0.
pub fn find_segmentid_range(text: &str, appid: &[u8]) -> RsmResult<(u32, u32)> {
    for (n, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.starts_with('#') {
            continue;
        }
        let bad = |msg: &str| {
            why!("segment-id file line {}: {msg}: {line:?}", n + 1);
            RsmError::BadConf
        };
        let fields: Vec<&str> = trimmed.split_whitespace().collect();
        if fields.len() < 4 {
            return Err(bad("expected: reserved <appid> <hex base> <length>"));
        }
        if !fields[1].as_bytes().eq_ignore_ascii_case(appid) {
            continue;
        }
        if !fields[0].eq_ignore_ascii_case("reserved") && !fields[0].eq_ignore_ascii_case("reserve")
        {
            return Err(bad("keyword must be 'reserved'"));
        }
        if fields.len() > 4 && !fields[4].starts_with('#') {
            return Err(bad("text after the length"));
        }
        let hex = fields[2]
            .strip_prefix("0x")
            .or_else(|| fields[2].strip_prefix("0X"));
        let base = u32::from_str_radix(hex.unwrap_or(fields[2]), 16)
            .map_err(|_| bad("base is not a 32-bit hexadecimal number"))?;
        let length: u32 = fields[3]
            .parse()
            .map_err(|_| bad("length is not a 32-bit decimal number"))?;
        if u64::from(base) + u64::from(length) > 1 << 32 {
            return Err(bad("range runs past 0xFFFFFFFF"));
        }
        return Ok((base, length));
    }
    why!(
        "segment-id file: no line for appid {:?}",
        String::from_utf8_lossy(appid)
    );
    Err(RsmError::BadAppid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_overrides_file_and_bad_values_are_errors() {
        let c = resolve(None, None, None).unwrap();
        assert_eq!((c.node_id, c.fabric.as_str()), (0, "default"));
        let c = resolve(Some("node_id = 5\nfabric = lab\n"), Some("7"), None).unwrap();
        assert_eq!((c.node_id, c.fabric.as_str()), (7, "lab"));
        let c = resolve(None, None, Some("x.y-z_1")).unwrap();
        assert_eq!(c.fabric, "x.y-z_1");
        for bad in ["", "-1", "64", "3x", "0x3", "99999999999999999999"] {
            assert!(resolve(None, Some(bad), None).is_err(), "node {bad:?}");
        }
        for bad in ["", "a/b", "a b", &"x".repeat(65)] {
            assert!(resolve(None, None, Some(bad)).is_err(), "fabric {bad:?}");
        }
        assert_eq!(resolve(None, Some(" 63 "), None).unwrap().node_id, 63);
    }

    #[test]
    fn spin_bound_from_the_file() {
        assert_eq!(resolve(None, None, None).unwrap().spin_us, None);
        let c = resolve(Some("spin_us = 0\n"), None, None).unwrap();
        assert_eq!(c.spin_us, Some(0));
        for bad in ["spin_us = -1", "spin_us = 5us", "spin_us ="] {
            assert!(resolve(Some(bad), None, None).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn config_file_with_controllers() {
        let text = "# lab\nnode_id = 2   # me\nfabric = lab\n\n[controller SHM1]\ntype = shm\n\
                    [controller net3]\ntype = shm\nfabric = other\n";
        let c = resolve(Some(text), None, None).unwrap();
        assert_eq!(c.node_id, 2);
        assert_eq!(c.controllers.len(), 2);
        assert_eq!(c.controllers[0].name, "shm1");
        assert_eq!(
            c.controllers[0].kind,
            ControllerKind::Shm {
                fabric: "lab".into()
            }
        );
        assert_eq!(c.controllers[1].name, "net3");
        assert_eq!(
            c.controllers[1].kind,
            ControllerKind::Shm {
                fabric: "other".into()
            }
        );
    }

    #[test]
    fn malformed_config_files_are_refused() {
        for bad in [
            "node_id 3",
            "node_id = 64",
            "colour = red",
            "[controller]",
            "[controller shm1",
            "[controller loopback2]\ntype = shm",
            "[controller shm0]\ntype = shm",
            "[controller shm]\ntype = shm", // shm == shm0
            "[controller 12]\ntype = shm",
            "[controller a/b1]\ntype = shm",
            "[controller shm1]\ntype = shm\n[controller shm01]\ntype = shm",
            "[controller shm1]\ntype = window",
            "[controller shm1]\nfabric = x",
            "[controller shm1]\ntype = shm\nnode_id = 3",
            "max_segments = 0",
        ] {
            assert!(resolve(Some(bad), None, None).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn window_controllers() {
        let text = "node_id = 1\n[controller NTB0]\ntype = window\nheartbeat_ms = 20\n\
                    heartbeat_misses = 5\n\
                    node 1 = /dev/shm/w1 0 8M   # this host's own window\n\
                    node 0 = /sys/bus/pci/devices/0000:03:00.1/resource2_wc 0x100000 1G\n\
                    [controller ivshmem1]\nnode 3 = /dev/shm/ivshmem 0 1M\ntype = window\n\
                    node 2 = /dev/shm/ivshmem 1M 1024K\n";
        let c = resolve(Some(text), None, None).unwrap();
        assert_eq!(c.controllers.len(), 2);
        assert_eq!(c.controllers[0].name, "ntb0");
        let ControllerKind::Window(w) = &c.controllers[0].kind else {
            panic!("not a window: {:?}", c.controllers[0]);
        };
        assert_eq!((w.heartbeat_ms, w.heartbeat_misses), (20, 5));
        assert_eq!(
            w.windows,
            vec![
                WindowSpec {
                    node: 0,
                    path: "/sys/bus/pci/devices/0000:03:00.1/resource2_wc".into(),
                    offset: 0x10_0000,
                    size: 1 << 30,
                },
                WindowSpec {
                    node: 1,
                    path: "/dev/shm/w1".into(),
                    offset: 0,
                    size: 8 << 20,
                },
            ],
            "sorted by node, numbers with suffixes and hex"
        );
        assert_eq!(w.window(1).map(|w| w.size), Some(8 << 20));
        assert!(w.window(2).is_none());
        // `type` after the node lines; defaults; one file, two windows.
        let ControllerKind::Window(w) = &c.controllers[1].kind else {
            panic!("not a window");
        };
        assert_eq!(
            (w.heartbeat_ms, w.heartbeat_misses),
            (DEFAULT_HEARTBEAT_MS, DEFAULT_HEARTBEAT_MISSES)
        );
        assert_eq!(
            w.windows
                .iter()
                .map(|w| (w.node, w.offset))
                .collect::<Vec<_>>(),
            vec![(2, 1 << 20), (3, 0)]
        );
    }

    #[test]
    fn malformed_window_controllers_are_refused() {
        let ok = "[controller w1]\ntype = window\nnode 0 = /dev/shm/a 0 1M\n";
        assert!(resolve(Some(ok), None, None).is_ok());
        for bad in [
            "[controller w1]\ntype = window\n", // no windows
            "[controller w1]\ntype = window\nnode 0 = /dev/shm/a 0\n", // no size
            "[controller w1]\ntype = window\nnode 0 = /dev/shm/a 0 1M x\n", // extra field
            "[controller w1]\ntype = window\nnode 0 = dev/shm/a 0 1M\n", // relative
            "[controller w1]\ntype = window\nnode 64 = /dev/shm/a 0 1M\n", // node id
            "[controller w1]\ntype = window\nnode x = /dev/shm/a 0 1M\n",
            "[controller w1]\ntype = window\nnode 0 = /dev/shm/a 100 1M\n", // unaligned
            "[controller w1]\ntype = window\nnode 0 = /dev/shm/a 0 1000K\n",
            "[controller w1]\ntype = window\nnode 0 = /dev/shm/a 0 512K\n", // too small
            "[controller w1]\ntype = window\nnode 0 = /dev/shm/a 0 0x\n",
            "[controller w1]\ntype = window\nnode 0 = /dev/shm/a 0 99999999999G\n",
            "[controller w1]\ntype = window\nnode 0 = /dev/shm/a 0 1M\nnode 0 = /dev/shm/b 0 1M\n",
            "[controller w1]\ntype = window\nnode 0 = /dev/shm/a 0 2M\nnode 1 = /dev/shm/a 1M 1M\n",
            "[controller w1]\ntype = window\nfabric = lab\nnode 0 = /dev/shm/a 0 1M\n",
            "[controller w1]\ntype = window\nheartbeat_ms = 0\nnode 0 = /dev/shm/a 0 1M\n",
            "[controller w1]\ntype = window\nheartbeat_misses = 1\nnode 0 = /dev/shm/a 0 1M\n",
            "[controller w1]\ntype = window\ntype = window\nnode 0 = /dev/shm/a 0 1M\n",
            "[controller w1]\ntype = shm\nnode 0 = /dev/shm/a 0 1M\n",
            "[controller w1]\ntype = shm\nheartbeat_ms = 5\n",
            "[controller w1]\nnode 0 = /dev/shm/a 0 1M\n", // no type
            "[controller w1]\ntype = ntb\nnode 0 = /dev/shm/a 0 1M\n",
            "[controller w1]\ntype = window\nnode 0 1 = /dev/shm/a 0 1M\n",
        ] {
            assert!(resolve(Some(bad), None, None).is_err(), "{bad:?} accepted");
        }
        // The line of the offending key is named.
        let e = resolve(
            Some("[controller w1]\ntype = window\n\nnode 0 = /dev/shm/a 0 1M\nfabric = x\n"),
            None,
            None,
        )
        .unwrap_err();
        assert!(e.starts_with("line 5:"), "{e}");
    }

    #[test]
    fn byte_counts() {
        assert_eq!(parse_bytes("0"), Some(0));
        assert_eq!(parse_bytes("4096"), Some(4096));
        assert_eq!(parse_bytes("0x1000"), Some(4096));
        assert_eq!(parse_bytes("4K"), Some(4096));
        assert_eq!(parse_bytes("3m"), Some(3 << 20));
        assert_eq!(parse_bytes("0x2G"), Some(2 << 30));
        for bad in [
            "",
            "K",
            "0x",
            "-1",
            "1.5M",
            "1T",
            "0xG",
            "18446744073709551615K",
        ] {
            assert_eq!(parse_bytes(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn controller_names_split_like_solaris() {
        assert_eq!(
            canonical_controller_name("loopback"),
            Some(("loopback".into(), 0))
        );
        assert_eq!(
            canonical_controller_name("LoopBack3"),
            Some(("loopback".into(), 3))
        );
        assert_eq!(canonical_controller_name("shm"), Some(("shm".into(), 0)));
        assert_eq!(canonical_controller_name("shm007"), Some(("shm".into(), 7)));
        assert_eq!(
            canonical_controller_name("wrsm12"),
            Some(("wrsm".into(), 12))
        );
        assert_eq!(canonical_controller_name("42"), None);
        assert_eq!(canonical_controller_name(""), None);
        assert_eq!(canonical_controller_name("shm99999999999"), None);
    }

    #[test]
    fn segmentid_file_follows_the_solaris_parser() {
        let text = "# reservations\n  # indented comment\nreserved SUNWfoo 0x600000 1000\n\
                    reserve  bar     700000   20  # trailing comment\n";
        assert_eq!(find_segmentid_range(text, b"sunwfoo"), Ok((0x600000, 1000)));
        assert_eq!(find_segmentid_range(text, b"BAR"), Ok((0x700000, 20)));
        assert_eq!(find_segmentid_range(text, b"baz"), Err(RsmError::BadAppid));
        assert_eq!(find_segmentid_range("", b"x"), Err(RsmError::BadAppid));
        // A blank or short line before the match stops the parse (observed).
        let blank = "reserved a 0x400000 1\n\nreserved b 0x500000 1\n";
        assert_eq!(find_segmentid_range(blank, b"a"), Ok((0x400000, 1)));
        assert_eq!(find_segmentid_range(blank, b"b"), Err(RsmError::BadConf));
        assert_eq!(
            find_segmentid_range("reserved b 0x5\n", b"b"),
            Err(RsmError::BadConf)
        );
        for bad in [
            "allocate a 0x400000 10\n",
            "reserved a 0xZZ 10\n",
            "reserved a 0x400000 ten\n",
            "reserved a 0x400000 -1\n",
            "reserved a 0x1FFFFFFFF 1\n",
            "reserved a 0xFFFFFFFF 2\n",
            "reserved a 0x400000 10 junk\n",
        ] {
            assert_eq!(
                find_segmentid_range(bad, b"a"),
                Err(RsmError::BadConf),
                "{bad:?}"
            );
        }
        // A malformed line for another appid after the match is never read.
        assert_eq!(
            find_segmentid_range("reserved a 0x10 1\nbogus\n", b"a"),
            Ok((0x10, 1))
        );
        assert_eq!(find_segmentid_range("reserved a 10 1", b"a"), Ok((0x10, 1)));
        assert_eq!(
            find_segmentid_range("reserved a 0x10 1\r\n", b"a"),
            Ok((0x10, 1))
        );
    }
}
