//! What `rsminfo` shows about a fabric (issue 9): the processes present
//! and the segments published, as a transport reports them, and the text
//! an exporter's agent answers a survey with.
//!
//! The answer is lines of `key=value` words, so it can grow fields without
//! a new wire version: a reader skips keys it does not know. Values never
//! hold spaces. A segment whose details the asker may not see is answered
//! with the single word `hidden`.

use crate::config::NodeId;
use crate::core::permission::{AccessEntry, Owner};
use crate::transport::ImporterInfo;

/// A process present on a fabric.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Present {
    /// Its node id.
    pub node: NodeId,
    /// Its process id.
    pub pid: u32,
    /// The controller it announced with.
    pub controller: String,
}

/// Who may import a segment: the exporter's credentials and its ACL.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Access {
    /// The exporter's uid, gid and the mode an empty ACL grants.
    pub owner: Owner,
    /// The ACL; empty: every node, with the owner's creation mode.
    pub acl: Vec<AccessEntry>,
}

/// One importer of a segment.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ImporterReport {
    /// Who it is and what it was granted.
    pub info: ImporterInfo,
    /// Whether it holds an explicit mapping (`rsm_memseg_import_map`), as
    /// it reports it in its event page.
    pub mapped: bool,
    /// Events it posted that the exporter has not consumed.
    pub pending_to_exporter: u64,
    /// Events the exporter posted that it has not consumed.
    pub pending_to_importer: u64,
}

/// What the exporter tells someone allowed to see a segment's details.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SegmentDetails {
    /// Length in bytes.
    pub size: u64,
    /// Exporting process.
    pub pid: u32,
    /// Credentials and ACL.
    pub access: Access,
    /// Events of importers that have left, not consumed yet.
    pub pending_departed: u64,
    /// Its importers (at most `MAX_LISTED`).
    pub importers: Vec<ImporterReport>,
    /// Importers beyond those listed.
    pub more: u64,
}

/// A published segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentReport {
    /// Exporter's node.
    pub node: NodeId,
    /// Segment id.
    pub segid: u32,
    /// Its details, if the asker may see them (root or the exporter's
    /// uid); `Ok(None)`: it exists, no more. `Err`: no answer (why).
    pub details: Result<Option<SegmentDetails>, String>,
}

/// Importers listed in one answer; the rest are counted in `more`.
pub const MAX_LISTED: usize = 1000;

/// The answer text for `details` (`None`: hidden).
pub fn encode(details: Option<&SegmentDetails>) -> String {
    let Some(d) = details else {
        return "hidden\n".into();
    };
    let acl = if d.access.acl.is_empty() {
        "-".to_string()
    } else {
        d.access
            .acl
            .iter()
            .map(|e| format!("{}:{:o}", e.node, e.perm))
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut s = format!(
        "segment size={} pid={} uid={} gid={} mode={:o} acl={acl} departed={} importers={} more={}\n",
        d.size,
        d.pid,
        d.access.owner.uid,
        d.access.owner.gid,
        d.access.owner.creation_mode,
        d.pending_departed,
        d.importers.len(),
        d.more
    );
    for i in &d.importers {
        s += &format!(
            "importer pid={} uid={} node={} rights={:o} mapped={} to_exporter={} to_importer={}\n",
            i.info.pid,
            i.info.uid,
            i.info.node,
            i.info.rights,
            u8::from(i.mapped),
            i.pending_to_exporter,
            i.pending_to_importer
        );
    }
    s
}

fn words(line: &str) -> impl Iterator<Item = (&str, &str)> {
    line.split_whitespace().filter_map(|w| w.split_once('='))
}

fn num(v: &str, radix: u32) -> Option<u64> {
    u64::from_str_radix(v, radix).ok()
}

/// Parses an answer: `Some(None)` hidden, `Some(Some(d))` details, `None`
/// if it is not an answer at all.
pub fn decode(text: &str) -> Option<Option<SegmentDetails>> {
    let mut lines = text.lines();
    let first = lines.next()?;
    if first.trim() == "hidden" {
        return Some(None);
    }
    let mut d = SegmentDetails::default();
    let mut seg = first.split_whitespace();
    if seg.next()? != "segment" {
        return None;
    }
    for (k, v) in words(first) {
        match k {
            "size" => d.size = num(v, 10)?,
            "pid" => d.pid = num(v, 10)? as u32,
            "uid" => d.access.owner.uid = num(v, 10)? as u32,
            "gid" => d.access.owner.gid = num(v, 10)? as u32,
            "mode" => d.access.owner.creation_mode = num(v, 8)? as u32,
            "departed" => d.pending_departed = num(v, 10)?,
            "more" => d.more = num(v, 10)?,
            "acl" if v != "-" => {
                for e in v.split(',') {
                    let (n, m) = e.split_once(':')?;
                    d.access.acl.push(AccessEntry {
                        node: num(n, 10)? as NodeId,
                        perm: num(m, 8)? as u32,
                    });
                }
            }
            _ => {}
        }
    }
    for line in lines {
        if line.split_whitespace().next() != Some("importer") {
            continue;
        }
        let mut i = ImporterReport::default();
        for (k, v) in words(line) {
            match k {
                "pid" => i.info.pid = num(v, 10)? as u32,
                "uid" => i.info.uid = num(v, 10)? as u32,
                "node" => i.info.node = num(v, 10)? as NodeId,
                "rights" => i.info.rights = num(v, 8)? as u32,
                "mapped" => i.mapped = v == "1",
                "to_exporter" => i.pending_to_exporter = num(v, 10)?,
                "to_importer" => i.pending_to_importer = num(v, 10)?,
                _ => {}
            }
        }
        d.importers.push(i);
    }
    Some(Some(d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_round_trip_and_garbage_is_refused() {
        let d = SegmentDetails {
            size: 1 << 20,
            pid: 42,
            access: Access {
                owner: Owner {
                    uid: 1000,
                    gid: 100,
                    creation_mode: 0o640,
                },
                acl: vec![
                    AccessEntry {
                        node: 0,
                        perm: 0o600,
                    },
                    AccessEntry {
                        node: 3,
                        perm: 0o444,
                    },
                ],
            },
            pending_departed: 2,
            importers: vec![ImporterReport {
                info: ImporterInfo {
                    pid: 43,
                    uid: 1001,
                    node: 3,
                    rights: 0o400,
                },
                mapped: true,
                pending_to_exporter: 5,
                pending_to_importer: 0,
            }],
            more: 0,
        };
        assert_eq!(decode(&encode(Some(&d))), Some(Some(d.clone())));
        assert_eq!(decode(&encode(None)), Some(None));
        let open = SegmentDetails::default();
        assert_eq!(decode(&encode(Some(&open))), Some(Some(open)));
        assert_eq!(decode(""), None);
        assert_eq!(decode("importer pid=1"), None);
        assert_eq!(decode("segment size=x"), None);
        assert_eq!(decode("segment acl=1:9"), None, "9 is not octal");
        // Unknown keys are skipped: answers may grow.
        let newer = "segment size=8 colour=blue\nimporter pid=7 shape=round\n";
        let got = decode(newer).unwrap().unwrap();
        assert_eq!(
            (got.size, got.importers.len(), got.importers[0].info.pid),
            (8, 1, 7)
        );
    }
}
