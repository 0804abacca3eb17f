//! The permission model of a connect (spec 5.1): the exporter's node-level
//! access list, then a Unix-style owner/group/other test of the importer's
//! credentials against the exporter's. Pure logic; the transport supplies
//! the credentials (from `SO_PEERCRED`, so the kernel vouches for them) and
//! enforces the result by handing out a read-only or read-write descriptor.

use crate::config::NodeId;
use crate::error::{RsmError, RsmResult};

/// `RSM_PERM_READ`.
pub const PERM_READ: u32 = 0o400;
/// `RSM_PERM_WRITE`.
pub const PERM_WRITE: u32 = 0o200;
/// Largest ACL permission (`RSM_ACCESS_TRUSTED`, spec 3.4).
pub const ACCESS_TRUSTED: u32 = 0o666;
/// Largest ACL length and node id in an ACL (`MAX_NODES`, spec 3.6).
pub const MAX_NODES: u32 = 64;

/// One `rsmapi_access_entry_t`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AccessEntry {
    /// Node allowed to import.
    pub node: NodeId,
    /// Its owner/group/other mode, each digit 4, 2 or 6.
    pub perm: u32,
}

/// Checks an ACL the way the Solaris kernel did at publish (spec 4.4).
pub fn validate_acl(acl: &[AccessEntry], loopback: bool, local_node: NodeId) -> RsmResult<()> {
    if acl.len() > MAX_NODES as usize || (loopback && acl.len() > 1) {
        return Err(RsmError::BadAcl);
    }
    for e in acl {
        let foreign = loopback && e.node != local_node;
        if e.node > MAX_NODES || foreign || e.perm > ACCESS_TRUSTED {
            return Err(RsmError::BadAcl);
        }
    }
    Ok(())
}

/// The exporter as the "owner of the file", captured at create.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Owner {
    /// Effective uid of the exporting process.
    pub uid: u32,
    /// Effective gid of the exporting process.
    pub gid: u32,
    /// `0777 & ~umask` at create: the mode an empty ACL grants.
    pub creation_mode: u32,
}

/// The importing process, as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Its node id (from its request; node ids are not secrets).
    pub node: NodeId,
    /// Effective uid.
    pub uid: u32,
    /// Effective gid.
    pub gid: u32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
    /// Holds `CAP_IPC_OWNER` (root does): the analogue of Solaris'
    /// `PRIV_IPC_DAC_READ/WRITE` override.
    pub ipc_owner: bool,
}

/// The mode an importing node is granted: its ACL entry, or the creation
/// mode for an empty ACL. A non-empty ACL without the node:
/// `RSMERR_SEG_NOT_PUBLISHED_TO_NODE`.
pub fn granted_mode(acl: &[AccessEntry], owner: &Owner, node: NodeId) -> RsmResult<u32> {
    if acl.is_empty() {
        return Ok(ACCESS_TRUSTED & owner.creation_mode);
    }
    acl.iter()
        .find(|e| e.node == node)
        .map(|e| ACCESS_TRUSTED & e.perm)
        .ok_or(RsmError::SegNotPublishedToNode)
}

/// Decides a connect: returns the rights the import gets (`PERM_READ` and/or
/// `PERM_WRITE`, exactly those requested) or `RSMERR_PERM_DENIED`.
///
/// As on Solaris the digit tested is the owner's if the uids match, else
/// the group's if the importer is in the exporter's group, else other's.
/// Unlike Solaris, rights admitted through the group or other digit can be
/// mapped (Solaris tested only the owner bits again at map time and failed
/// such mappings with `RSMERR_BAD_PERMS`; docs/compatibility.md).
pub fn admit(acl: &[AccessEntry], owner: &Owner, peer: &Peer, requested: u32) -> RsmResult<u32> {
    if requested & !(PERM_READ | PERM_WRITE) != 0 {
        return Err(RsmError::PermDenied);
    }
    let granted = granted_mode(acl, owner, peer.node)?;
    let shift = if peer.uid == owner.uid {
        0
    } else if peer.gid == owner.gid || peer.groups.contains(&owner.gid) {
        3
    } else {
        6
    };
    let allowed = (granted << shift) & (PERM_READ | PERM_WRITE);
    if requested & !allowed != 0 && !peer.ipc_owner {
        return Err(RsmError::PermDenied);
    }
    Ok(requested)
}

#[cfg(test)]
mod tests {
    use super::*;

    // The worked examples of spec 5.1: exporter euid 100, egid 10, umask 022.
    const OWNER: Owner = Owner {
        uid: 100,
        gid: 10,
        creation_mode: 0o755,
    };
    const RW: u32 = PERM_READ | PERM_WRITE;

    fn peer(uid: u32, gid: u32, groups: &[u32]) -> Peer {
        Peer {
            node: 2,
            uid,
            gid,
            groups: groups.to_vec(),
            ipc_owner: false,
        }
    }

    fn entry(node: NodeId, perm: u32) -> AccessEntry {
        AccessEntry { node, perm }
    }

    #[test]
    fn spec_worked_examples() {
        // No ACL: granted 0644.
        assert_eq!(granted_mode(&[], &OWNER, 2), Ok(0o644));
        assert_eq!(admit(&[], &OWNER, &peer(100, 99, &[]), RW), Ok(RW));
        assert_eq!(
            admit(&[], &OWNER, &peer(7, 10, &[]), PERM_READ),
            Ok(PERM_READ)
        );
        assert_eq!(
            admit(&[], &OWNER, &peer(7, 10, &[]), RW),
            Err(RsmError::PermDenied)
        );
        // ACL [{1, 0666}]: node 2 is not in it.
        assert_eq!(
            admit(&[entry(1, 0o666)], &OWNER, &peer(100, 10, &[]), PERM_READ),
            Err(RsmError::SegNotPublishedToNode)
        );
        // ACL [{2, 0600}]: only the owner.
        let acl = [entry(2, 0o600)];
        assert_eq!(admit(&acl, &OWNER, &peer(100, 10, &[]), RW), Ok(RW));
        assert_eq!(
            admit(&acl, &OWNER, &peer(7, 10, &[]), PERM_READ),
            Err(RsmError::PermDenied)
        );
    }

    #[test]
    fn owner_group_other_digits() {
        let acl = [entry(2, 0o624)]; // owner rw, group w, other r
        assert_eq!(admit(&acl, &OWNER, &peer(100, 1, &[]), RW), Ok(RW));
        assert_eq!(
            admit(&acl, &OWNER, &peer(5, 10, &[]), PERM_WRITE),
            Ok(PERM_WRITE)
        );
        assert_eq!(
            admit(&acl, &OWNER, &peer(5, 1, &[3, 10]), PERM_WRITE),
            Ok(PERM_WRITE)
        );
        assert_eq!(
            admit(&acl, &OWNER, &peer(5, 10, &[]), PERM_READ),
            Err(RsmError::PermDenied)
        );
        assert_eq!(
            admit(&acl, &OWNER, &peer(5, 1, &[]), PERM_READ),
            Ok(PERM_READ)
        );
        assert_eq!(
            admit(&acl, &OWNER, &peer(5, 1, &[]), PERM_WRITE),
            Err(RsmError::PermDenied)
        );
        // The owner's digit applies to the owner even when it grants less.
        let acl = [entry(2, 0o066)];
        assert_eq!(
            admit(&acl, &OWNER, &peer(100, 10, &[]), PERM_READ),
            Err(RsmError::PermDenied)
        );
    }

    #[test]
    fn zero_request_bad_bits_and_privilege() {
        let acl = [entry(2, 0o600)];
        assert_eq!(admit(&acl, &OWNER, &peer(7, 7, &[]), 0), Ok(0));
        assert_eq!(
            admit(&[], &OWNER, &peer(100, 10, &[]), 0o700),
            Err(RsmError::PermDenied)
        );
        assert_eq!(
            admit(&[], &OWNER, &peer(100, 10, &[]), 0o004),
            Err(RsmError::PermDenied)
        );
        let root = Peer {
            ipc_owner: true,
            ..peer(0, 0, &[])
        };
        assert_eq!(admit(&acl, &OWNER, &root, RW), Ok(RW));
        // Privilege does not override the node-level list.
        assert_eq!(
            admit(&[entry(1, 0o666)], &OWNER, &root, RW),
            Err(RsmError::SegNotPublishedToNode)
        );
    }

    #[test]
    fn acl_validation_matches_the_kernel() {
        assert_eq!(validate_acl(&[], false, 0), Ok(()));
        assert_eq!(validate_acl(&[entry(64, 0o666)], false, 0), Ok(()));
        assert_eq!(
            validate_acl(&[entry(65, 0o666)], false, 0),
            Err(RsmError::BadAcl)
        );
        assert_eq!(
            validate_acl(&[entry(1, 0o667)], false, 0),
            Err(RsmError::BadAcl)
        );
        assert_eq!(
            validate_acl(&[entry(1, 0o700)], false, 0),
            Err(RsmError::BadAcl)
        );
        let many: Vec<AccessEntry> = (0..=64).map(|n| entry(n, 0o600)).collect();
        assert_eq!(validate_acl(&many, false, 0), Err(RsmError::BadAcl));
        assert_eq!(validate_acl(&many[..64], false, 0), Ok(()));
        // Loopback: at most one entry, naming the local node.
        assert_eq!(validate_acl(&[entry(3, 0o600)], true, 3), Ok(()));
        assert_eq!(
            validate_acl(&[entry(2, 0o600)], true, 3),
            Err(RsmError::BadAcl)
        );
        assert_eq!(
            validate_acl(&[entry(3, 0o600), entry(3, 0o600)], true, 3),
            Err(RsmError::BadAcl)
        );
    }
}
