//! Facts about this process that the semantics need (its pid for the
//! creator rule, its credentials and umask as an exporter, the page size),
//! kept out of `core/`, which makes no system calls.

use crate::core::export::Creator;
use crate::core::permission::Owner;
use crate::error::{RsmError, RsmResult};

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

/// `poll(2)` over `nfds` entries at `fds`, which the kernel reads and
/// writes with fault checks (a bad array is `RSMERR_BAD_ADDR`, not a
/// crash). Errors as spec 4.9 maps them; returns how many are ready.
///
/// # Safety
/// Nothing else may use the entries while the kernel writes them; a
/// pointer that points nowhere is reported, not followed.
pub unsafe fn poll(
    fds: *mut libc::pollfd,
    nfds: libc::nfds_t,
    timeout_ms: i32,
) -> RsmResult<usize> {
    // SAFETY: the kernel validates the array (EFAULT) before use; nothing
    // here dereferences it.
    let n = unsafe { libc::poll(fds, nfds, timeout_ms) };
    if let Ok(n) = usize::try_from(n) {
        return Ok(n);
    }
    Err(match std::io::Error::last_os_error().raw_os_error() {
        Some(libc::EINTR) => RsmError::Interrupted,
        Some(libc::EAGAIN) => RsmError::InsufficientResources,
        Some(libc::ENOMEM) => RsmError::InsufficientMem,
        Some(libc::EFAULT) => RsmError::BadAddr,
        _ => RsmError::BadArgsErrors,
    })
}

/// [`poll`] over the caller's array (`rsm_intr_signal_wait_pollfd`): the
/// array is first read through the kernel, since a sanitizer's `poll`
/// interceptor in the program would read it in user space and fault on a
/// bad one; the kernel's own check would have said `RSMERR_BAD_ADDR`.
///
/// # Safety
/// As [`poll`].
pub unsafe fn poll_caller_array(
    fds: *mut libc::pollfd,
    nfds: libc::nfds_t,
    timeout_ms: i32,
) -> RsmResult<usize> {
    // The kernel refuses more entries than RLIMIT_NOFILE before it reads
    // any: say the same before reading such an array.
    if nfds > 1024 {
        let limit = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
            .map_or(libc::RLIM_INFINITY, |(soft, _)| soft);
        if nfds > limit {
            return Err(RsmError::BadArgsErrors);
        }
    }
    let bytes = (nfds as usize).saturating_mul(std::mem::size_of::<libc::pollfd>());
    crate::uaccess::check_readable(fds.cast::<u8>(), bytes)?;
    // SAFETY: as the caller promised.
    unsafe { poll(fds, nfds, timeout_ms) }
}
