//! `rsminfo`: a live view of the RSM fabrics of this host (issue 9).
//!
//! Shows this process's configuration (node id, fabric, controllers and
//! their attributes), the processes present on each fabric, and the
//! segments published there with their importers, as each exporter's
//! agent answers over the segment's own socket (no daemon). An exporter
//! shows the details only to root and to its own uid; anyone else sees
//! that the segment exists.

use rsm::config::{self, Config, ControllerKind};
use rsm::core::controller;
use rsm::transport::survey::{Present, SegmentDetails, SegmentReport};
use rsm::transport::{ControllerAttributes, Transport};
use std::fmt::Write as _;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

const USAGE: &str = "\
usage: rsminfo [--json] [--node N] [--segment ID] [--pid PID]
               [--watch [SECONDS]] [--count N]

  --json          machine-readable output (one JSON object per refresh)
  --node N        only processes and segments of node N (0-63)
  --segment ID    only segment ID (decimal, or hex with 0x)
  --pid PID       only process PID: its presence, the segments it exports
                  and those it imports
  --watch [S]     refresh every S seconds (default 2) until interrupted
  --count N       with --watch: stop after N refreshes

The fabric and node id come from the environment and the configuration
file, as for any RSM program (RSM_FABRIC, RSM_NODE_ID, RSM_CONFIG).";

#[derive(Debug, Default, PartialEq)]
struct Opts {
    json: bool,
    node: Option<u32>,
    segment: Option<u32>,
    pid: Option<u32>,
    watch: Option<Duration>,
    count: Option<u64>,
    help: bool,
}

fn number(s: &str) -> Option<u64> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

fn parse_args(args: &[String]) -> Result<Opts, String> {
    let mut o = Opts::default();
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].as_str();
        let mut value = |what: &str| -> Result<&str, String> {
            i += 1;
            args.get(i)
                .map(String::as_str)
                .ok_or_else(|| format!("{arg} needs {what}"))
        };
        match arg {
            "--json" => o.json = true,
            "-h" | "--help" => o.help = true,
            "--node" => {
                let v = value("a node id")?;
                o.node = Some(
                    number(v)
                        .filter(|&n| n <= u64::from(config::MAX_NODE_ID))
                        .ok_or_else(|| format!("--node: {v:?} is not a node id (0-63)"))?
                        as u32,
                );
            }
            "--segment" => {
                let v = value("a segment id")?;
                o.segment = Some(
                    number(v)
                        .and_then(|n| u32::try_from(n).ok())
                        .ok_or_else(|| format!("--segment: {v:?} is not a segment id"))?,
                );
            }
            "--pid" => {
                let v = value("a process id")?;
                o.pid = Some(
                    v.parse::<u32>()
                        .ok()
                        .filter(|&p| p > 0)
                        .ok_or_else(|| format!("--pid: {v:?} is not a process id"))?,
                );
            }
            "--watch" => {
                // The interval is optional: take the next word if it is one.
                let secs = match args.get(i + 1).map(|s| s.parse::<f64>()) {
                    Some(Ok(s)) => {
                        i += 1;
                        s
                    }
                    _ => 2.0,
                };
                if !(secs.is_finite() && (0.1..=86_400.0).contains(&secs)) {
                    return Err(format!(
                        "--watch: {secs} is not an interval (0.1 to 86400 seconds)"
                    ));
                }
                o.watch = Some(Duration::from_secs_f64(secs));
            }
            "--count" => {
                let v = value("a number of refreshes")?;
                o.count = Some(
                    v.parse::<u64>()
                        .ok()
                        .filter(|&n| n > 0)
                        .ok_or_else(|| format!("--count: {v:?} is not a positive number"))?,
                );
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
        i += 1;
    }
    if o.count.is_some() && o.watch.is_none() {
        return Err("--count needs --watch".into());
    }
    Ok(o)
}

/// One controller as configured.
struct Ctlr {
    name: String,
    /// "same-host" or "window".
    kind: &'static str,
    fabric: String,
    transport: Arc<dyn Transport>,
}

/// What is on one fabric.
struct Fabric {
    name: String,
    present: Result<Vec<Present>, String>,
    segments: Result<Vec<SegmentReport>, String>,
}

fn controllers(config: &Config) -> Vec<Ctlr> {
    let mut names = vec!["loopback".to_string(), "shm0".to_string()];
    for c in &config.controllers {
        if !names.contains(&c.name) {
            names.push(c.name.clone());
        }
    }
    names
        .into_iter()
        .filter_map(|name| {
            let (kind, fabric) = match config.controllers.iter().find(|c| c.name == name) {
                Some(c) => match &c.kind {
                    ControllerKind::Shm { fabric } => ("same-host", fabric.clone()),
                    // A window controller is its own fabric (issue 8).
                    ControllerKind::Window(_) => ("window", format!("window:{name}")),
                },
                None => ("same-host", config.fabric.clone()),
            };
            let (name, transport) = controller::resolve(Some(&name), config).ok()?;
            Some(Ctlr {
                name,
                kind,
                fabric,
                transport,
            })
        })
        .collect()
}

fn keep_segment(o: &Opts, s: &SegmentReport) -> bool {
    let pid_ok = o.pid.is_none_or(|p| match &s.details {
        Ok(Some(d)) => d.pid == p || d.importers.iter().any(|i| i.info.pid == p),
        _ => false,
    });
    o.node.is_none_or(|n| s.node == n) && o.segment.is_none_or(|id| s.segid == id) && pid_ok
}

fn survey(o: &Opts, ctlrs: &[Ctlr]) -> Vec<Fabric> {
    let mut fabrics: Vec<Fabric> = Vec::new();
    for c in ctlrs {
        if fabrics.iter().any(|f| f.name == c.fabric) {
            continue;
        }
        let present = c
            .transport
            .present()
            .map(|v| {
                v.into_iter()
                    .filter(|p| o.node.is_none_or(|n| p.node == n))
                    .filter(|p| o.pid.is_none_or(|id| p.pid == id))
                    .filter(|_| o.segment.is_none())
                    .collect()
            })
            .map_err(|e| format!("{e:?}"));
        let segments = c
            .transport
            .survey()
            .map(|v| v.into_iter().filter(|s| keep_segment(o, s)).collect())
            .map_err(|e| format!("{e:?}"));
        fabrics.push(Fabric {
            name: c.fabric.clone(),
            present,
            segments,
        });
    }
    fabrics
}

fn config_path() -> (String, bool) {
    let path = std::env::var("RSM_CONFIG").unwrap_or_else(|_| config::DEFAULT_CONFIG_PATH.into());
    let exists = std::path::Path::new(&path).exists();
    (path, exists)
}

fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn acl_text(d: &SegmentDetails) -> String {
    if d.access.acl.is_empty() {
        format!("any node {:04o}", d.access.owner.creation_mode)
    } else {
        d.access
            .acl
            .iter()
            .map(|e| format!("{}:{:04o}", e.node, e.perm))
            .collect::<Vec<_>>()
            .join(",")
    }
}

fn table(config: &Config, ctlrs: &[Ctlr], fabrics: &[Fabric]) -> String {
    let mut s = String::new();
    let (path, exists) = config_path();
    let _ = writeln!(
        s,
        "This process: node {}, fabric {:?}, config {path}{}",
        config.node_id,
        config.fabric,
        if exists { "" } else { " (absent: defaults)" }
    );
    let _ = writeln!(s, "\nControllers");
    let _ = writeln!(
        s,
        "  {:<10} {:<10} {:<20} {:>6} {:>12} {:>12} {:>9}",
        "NAME", "TRANSPORT", "FABRIC", "PAGE", "MAX EXPORT", "MAX MAP", "MAX SEGS"
    );
    for c in ctlrs {
        match c.transport.attributes() {
            Ok(a) => {
                let _ = writeln!(
                    s,
                    "  {:<10} {:<10} {:<20} {:>6} {:>12} {:>12} {:>9}",
                    c.name,
                    c.kind,
                    c.fabric,
                    a.page_size,
                    bytes(a.max_export_segment_size as u64),
                    bytes(a.max_import_map_size as u64),
                    a.max_export_segments
                );
            }
            Err(e) => {
                let _ = writeln!(s, "  {:<10} attributes unavailable: {e:?}", c.name);
            }
        }
    }
    for f in fabrics {
        let _ = writeln!(s, "\nProcesses present on fabric {:?}", f.name);
        match &f.present {
            Err(e) => {
                let _ = writeln!(s, "  (cannot list: {e})");
            }
            Ok(v) if v.is_empty() => {
                let _ = writeln!(s, "  (none)");
            }
            Ok(v) => {
                let _ = writeln!(s, "  {:<5} {:>8}  CONTROLLER", "NODE", "PID");
                for p in v {
                    let _ = writeln!(s, "  {:<5} {:>8}  {}", p.node, p.pid, p.controller);
                }
            }
        }
        let _ = writeln!(s, "\nSegments published on fabric {:?}", f.name);
        match &f.segments {
            Err(e) => {
                let _ = writeln!(s, "  (cannot list: {e})");
            }
            Ok(v) if v.is_empty() => {
                let _ = writeln!(s, "  (none)");
            }
            Ok(v) => {
                let _ = writeln!(
                    s,
                    "  {:<5} {:<12} {:>10} {:>8} {:>6}  {:<18} {:>9} {:>7}",
                    "NODE", "SEGMENT", "SIZE", "PID", "UID", "ACL", "IMPORTERS", "PENDING"
                );
                for seg in v {
                    let id = format!("{:#x}", seg.segid);
                    match &seg.details {
                        Err(e) => {
                            let _ = writeln!(s, "  {:<5} {:<12} ({e})", seg.node, id);
                        }
                        Ok(None) => {
                            let _ = writeln!(
                                s,
                                "  {:<5} {:<12} (details only for root and the exporter's uid)",
                                seg.node, id
                            );
                        }
                        Ok(Some(d)) => {
                            let importers = d.importers.len() as u64 + d.more;
                            let _ = writeln!(
                                s,
                                "  {:<5} {:<12} {:>10} {:>8} {:>6}  {:<18} {:>9} {:>7}",
                                seg.node,
                                id,
                                bytes(d.size),
                                d.pid,
                                d.access.owner.uid,
                                acl_text(d),
                                importers,
                                d.pending_departed
                                    + d.importers
                                        .iter()
                                        .map(|i| i.pending_to_exporter)
                                        .sum::<u64>()
                            );
                            for i in &d.importers {
                                let _ = writeln!(
                                    s,
                                    "        importer pid {} uid {} node {} rights {:04o} {}, \
                                     pending: {} to the exporter, {} to it",
                                    i.info.pid,
                                    i.info.uid,
                                    i.info.node,
                                    i.info.rights,
                                    if i.mapped { "mapped" } else { "not mapped" },
                                    i.pending_to_exporter,
                                    i.pending_to_importer
                                );
                            }
                            if d.more > 0 {
                                let _ = writeln!(s, "        ... and {} more importers", d.more);
                            }
                        }
                    }
                }
            }
        }
    }
    if ctlrs.iter().all(|c| c.kind != "window") {
        let _ = writeln!(
            s,
            "\nWindow controllers (peers, heartbeats): none configured on this host"
        );
    }
    s
}

fn esc(v: &str) -> String {
    let mut o = String::with_capacity(v.len() + 2);
    o.push('"');
    for ch in v.chars() {
        match ch {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn attrs_json(a: &ControllerAttributes) -> String {
    format!(
        "{{\"page_size\":{},\"direct_access_sizes\":{},\"atomic_sizes\":{},\
         \"max_export_segment_size\":{},\"tot_export_segment_size\":{},\
         \"max_export_segments\":{},\"max_import_map_size\":{},\
         \"tot_import_map_size\":{},\"max_import_segments\":{}}}",
        a.page_size,
        a.direct_access_sizes,
        a.atomic_sizes,
        a.max_export_segment_size,
        a.tot_export_segment_size,
        a.max_export_segments,
        a.max_import_map_size,
        a.tot_import_map_size,
        a.max_import_segments
    )
}

fn segment_json(seg: &SegmentReport) -> String {
    let head = format!("\"node\":{},\"segment\":{}", seg.node, seg.segid);
    match &seg.details {
        Err(e) => format!("{{{head},\"visible\":false,\"error\":{}}}", esc(e)),
        Ok(None) => format!("{{{head},\"visible\":false}}"),
        Ok(Some(d)) => {
            let acl: Vec<String> = d
                .access
                .acl
                .iter()
                .map(|e| format!("{{\"node\":{},\"perm\":{}}}", e.node, e.perm))
                .collect();
            let importers: Vec<String> = d
                .importers
                .iter()
                .map(|i| {
                    format!(
                        "{{\"pid\":{},\"uid\":{},\"node\":{},\"rights\":{},\"mapped\":{},\
                         \"pending_to_exporter\":{},\"pending_to_importer\":{}}}",
                        i.info.pid,
                        i.info.uid,
                        i.info.node,
                        i.info.rights,
                        i.mapped,
                        i.pending_to_exporter,
                        i.pending_to_importer
                    )
                })
                .collect();
            format!(
                "{{{head},\"visible\":true,\"state\":\"published\",\"size\":{},\"pid\":{},\
                 \"uid\":{},\"gid\":{},\"mode\":{},\"acl\":[{}],\"pending_departed\":{},\
                 \"importer_count\":{},\"importers\":[{}]}}",
                d.size,
                d.pid,
                d.access.owner.uid,
                d.access.owner.gid,
                d.access.owner.creation_mode,
                acl.join(","),
                d.pending_departed,
                d.importers.len() as u64 + d.more,
                importers.join(",")
            )
        }
    }
}

fn json(config: &Config, ctlrs: &[Ctlr], fabrics: &[Fabric]) -> String {
    let (path, exists) = config_path();
    let ctl: Vec<String> = ctlrs
        .iter()
        .map(|c| {
            let attrs = c
                .transport
                .attributes()
                .map(|a| attrs_json(&a))
                .unwrap_or_else(|_| "null".into());
            format!(
                "{{\"name\":{},\"transport\":\"{}\",\"fabric\":{},\"attributes\":{attrs}}}",
                esc(&c.name),
                c.kind,
                esc(&c.fabric)
            )
        })
        .collect();
    let fab: Vec<String> = fabrics
        .iter()
        .map(|f| {
            let present = match &f.present {
                Ok(v) => format!(
                    "[{}]",
                    v.iter()
                        .map(|p| format!(
                            "{{\"node\":{},\"pid\":{},\"controller\":{}}}",
                            p.node,
                            p.pid,
                            esc(&p.controller)
                        ))
                        .collect::<Vec<_>>()
                        .join(",")
                ),
                Err(e) => format!("{{\"error\":{}}}", esc(e)),
            };
            let segments = match &f.segments {
                Ok(v) => format!(
                    "[{}]",
                    v.iter().map(segment_json).collect::<Vec<_>>().join(",")
                ),
                Err(e) => format!("{{\"error\":{}}}", esc(e)),
            };
            format!(
                "{{\"fabric\":{},\"present\":{present},\"segments\":{segments}}}",
                esc(&f.name)
            )
        })
        .collect();
    format!(
        "{{\"node_id\":{},\"fabric\":{},\"config\":{{\"path\":{},\"exists\":{exists}}},\
         \"controllers\":[{}],\"fabrics\":[{}],\"windows\":[]}}",
        config.node_id,
        esc(&config.fabric),
        esc(&path),
        ctl.join(","),
        fab.join(",")
    )
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opts = match parse_args(&args) {
        Ok(o) => o,
        Err(msg) => {
            eprintln!("rsminfo: {msg}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if opts.help {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let config = match config::get() {
        Ok(c) => c,
        Err(_) => {
            let (path, _) = config_path();
            eprintln!(
                "rsminfo: the RSM configuration is not valid ({path}, RSM_NODE_ID, RSM_FABRIC); \
                 run with RSM_DEBUG=1 to see why"
            );
            return ExitCode::from(1);
        }
    };
    let ctlrs = controllers(config);
    let tty = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let mut shown = 0u64;
    loop {
        let fabrics = survey(&opts, &ctlrs);
        let out = if opts.json {
            json(config, &ctlrs, &fabrics) + "\n"
        } else {
            table(config, &ctlrs, &fabrics)
        };
        if opts.watch.is_some() && tty {
            print!("\x1b[H\x1b[2J"); // clear the screen between refreshes
        }
        print!("{out}");
        shown += 1;
        let Some(every) = opts.watch else { break };
        if opts.count.is_some_and(|n| shown >= n) {
            break;
        }
        if !opts.json {
            println!();
        }
        std::thread::sleep(every);
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn arguments() {
        assert_eq!(parse_args(&[]).unwrap(), Opts::default());
        let o = parse_args(&args("--json --node 3 --segment 0x400000 --pid 77")).unwrap();
        assert!(o.json);
        assert_eq!(
            (o.node, o.segment, o.pid),
            (Some(3), Some(0x40_0000), Some(77))
        );
        let o = parse_args(&args("--watch --count 2")).unwrap();
        assert_eq!((o.watch, o.count), (Some(Duration::from_secs(2)), Some(2)));
        let o = parse_args(&args("--watch 0.5")).unwrap();
        assert_eq!(o.watch, Some(Duration::from_millis(500)));
        for bad in [
            "--node 64",
            "--node x",
            "--node",
            "--segment 0x1ffffffff",
            "--pid 0",
            "--pid -1",
            "--count 2",
            "--watch 0",
            "--watch nan",
            "--watch --count 0",
            "--frobnicate",
        ] {
            assert!(parse_args(&args(bad)).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(esc("a\"b\\c\n"), "\"a\\\"b\\\\c\\u000a\"");
    }
}
