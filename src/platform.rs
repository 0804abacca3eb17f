//! Facts about this process that the semantics need (its pid for the
//! creator rule, its credentials and umask as an exporter, the page size),
//! kept out of `core/`, which makes no system calls.

use crate::core::export::Creator;
use crate::core::permission::Owner;

/// This process's id.
pub fn pid() -> u32 {
    std::process::id()
}

/// The system page size.
pub fn page_size() -> usize {
    crate::transport::shm::page_size()
}

/// The umask, read without changing it (`Umask:` in /proc/self/status,
/// Linux 4.7+); `umask(2)` would have to set it, racing other threads.
fn umask() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Umask:"))
                .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        })
        .unwrap_or(0o022)
}

/// This process as an exporter: pid, effective uid and gid, and the mode
/// an empty ACL grants (`0777 & ~umask`, spec 5.1), taken at create.
pub fn creator() -> Creator {
    // SAFETY: geteuid and getegid cannot fail and touch no memory.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    Creator {
        pid: pid(),
        owner: Owner {
            uid,
            gid,
            creation_mode: 0o777 & !umask(),
        },
    }
}
