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

/// What kind of interconnect a configured controller is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControllerKind {
    /// Processes on this host, on the given fabric.
    Shm {
        /// Fabric name; processes see each other only within one fabric.
        fabric: String,
    },
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

/// Parses the text of an RSM config file (the format the README documents).
pub fn parse_file(text: &str) -> Result<Config, String> {
    let mut config = Config::default();
    let mut section: Option<usize> = None; // index into controllers
    let mut typed: Vec<bool> = Vec::new();
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
            if config.controllers.iter().any(|c| c.name == canonical) {
                return Err(err("controller named twice"));
            }
            config.controllers.push(ControllerConfig {
                name: canonical,
                kind: ControllerKind::Shm {
                    fabric: config.fabric.clone(),
                },
            });
            typed.push(false);
            section = Some(config.controllers.len() - 1);
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| err("expected key = value"))?;
        let (key, value) = (key.trim(), value.trim());
        match (section, key) {
            (None, "node_id") => config.node_id = parse_node_id(value).map_err(|e| err(&e))?,
            (None, "fabric") => {
                config.fabric = parse_fabric(value).map_err(|e| err(&e))?;
                // Controllers declared earlier keep the fabric they saw.
            }
            (None, "max_segments") => {
                config.max_segments =
                    positive(value).ok_or_else(|| err(&format!("{key} is a positive integer")))?
            }
            (None, "connect_timeout_ms") => {
                config.connect_timeout_ms =
                    positive(value).ok_or_else(|| err(&format!("{key} is a positive integer")))?
            }
            (None, "spin_us") => {
                config.spin_us = Some(
                    value
                        .parse::<u64>()
                        .map_err(|_| err(&format!("{key} is a number of microseconds")))?,
                )
            }
            (Some(i), "type") => {
                if value != "shm" {
                    return Err(err("controller type must be shm"));
                }
                typed[i] = true;
            }
            (Some(i), "fabric") => {
                config.controllers[i].kind = ControllerKind::Shm {
                    fabric: parse_fabric(value).map_err(|e| err(&e))?,
                };
            }
            _ => return Err(err("unknown key")),
        }
    }
    if let Some(i) = typed.iter().position(|t| !t) {
        return Err(format!(
            "controller {}: no type",
            config.controllers[i].name
        ));
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
