//! The event channel of one connection (DESIGN.md 5.6, design-notes
//! "Signals"): a sealed one-page memfd both processes map, holding two
//! event counters (`transport::events`), and two eventfds as doorbells.
//!
//! `up` carries importer -> exporter posts, `down` exporter -> importer.
//! Every connection has its own page and doorbells, made by the exporter:
//! an importer can only disturb its own channel (its own posts, its own
//! wake-ups), never another importer's events.

use crate::error::{RsmError, RsmResult};
use crate::transport::events::{Counter, Doorbell};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::AtomicU64;

/// Size of the shared page.
const PAGE: usize = 4096;
/// Offsets of the two counters, a cache line apart.
const UP: usize = 0;
const DOWN: usize = 128;

/// An eventfd used as a doorbell: readable while its value is non-zero.
pub struct EventFd(pub OwnedFd);

impl EventFd {
    /// A non-blocking, non-semaphore eventfd.
    pub fn new() -> RsmResult<EventFd> {
        // SAFETY: eventfd has no memory preconditions.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(RsmError::from_alloc_errno(last_errno()));
        }
        // SAFETY: eventfd returned a new descriptor that nothing else owns.
        Ok(EventFd(unsafe { OwnedFd::from_raw_fd(fd) }))
    }
}

fn last_errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

impl Doorbell for EventFd {
    fn ring(&self) {
        ring(self.0.as_raw_fd());
    }
    fn drain(&self) {
        drain(self.0.as_raw_fd());
    }
}

/// Adds 1 to eventfd `fd` (at its maximum it is readable anyway).
pub fn ring(fd: RawFd) {
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from `one`.
    unsafe { libc::write(fd, (&one as *const u64).cast(), 8) };
}

/// Reads eventfd `fd` to zero (non-blocking).
pub fn drain(fd: RawFd) {
    let mut v: u64 = 0;
    // SAFETY: reads at most 8 bytes into `v`.
    unsafe { libc::read(fd, (&mut v as *mut u64).cast(), 8) };
}

/// One connection's event channel, as mapped by either side.
pub struct Channel {
    addr: usize,
    /// Doorbell of `up`: the exporter sleeps on it.
    pub up_bell: EventFd,
    /// Doorbell of `down`: the importer sleeps on it.
    pub down_bell: EventFd,
}

// SAFETY: the page is only accessed through atomics.
unsafe impl Send for Channel {}
// SAFETY: as above.
unsafe impl Sync for Channel {}

impl Drop for Channel {
    fn drop(&mut self) {
        // SAFETY: our own mapping of PAGE bytes; counters borrowed from it
        // do not outlive `self`.
        unsafe { libc::munmap(self.addr as *mut _, PAGE) };
    }
}

fn map(memfd: &OwnedFd) -> RsmResult<usize> {
    // SAFETY: a fresh shared mapping where the kernel chooses; the memfd
    // is sealed against shrinking, so the page cannot vanish under us.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            PAGE,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            memfd.as_raw_fd(),
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(RsmError::from_alloc_errno(last_errno()));
    }
    Ok(p as usize)
}

impl Channel {
    /// The exporter makes a channel; the memfd goes to the importer with
    /// the doorbells, and is closed here once sent.
    pub fn create() -> RsmResult<(Channel, OwnedFd)> {
        // SAFETY: a NUL-terminated name.
        let fd = unsafe {
            libc::memfd_create(
                c"rsm-events".as_ptr(),
                libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
            )
        };
        if fd < 0 {
            return Err(RsmError::from_alloc_errno(last_errno()));
        }
        // SAFETY: memfd_create returned a new descriptor we own.
        let memfd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: plain calls on our own descriptor.
        let ok = unsafe {
            libc::ftruncate(fd, PAGE as libc::off_t) == 0
                && libc::fcntl(
                    fd,
                    libc::F_ADD_SEALS,
                    libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL,
                ) == 0
        };
        if !ok {
            return Err(RsmError::from_alloc_errno(last_errno()));
        }
        let addr = map(&memfd)?;
        let channel = Channel {
            addr,
            up_bell: EventFd::new()?,
            down_bell: EventFd::new()?,
        };
        Ok((channel, memfd))
    }

    /// The importer maps what the exporter sent, after checking that it
    /// is a sealed page that cannot shrink under it (else SIGBUS).
    pub fn attach(memfd: OwnedFd, up: OwnedFd, down: OwnedFd) -> RsmResult<Channel> {
        // SAFETY: fcntl and fstat on a descriptor we own; `st` is written
        // by fstat before it is read.
        let sealed = unsafe {
            let seals = libc::fcntl(memfd.as_raw_fd(), libc::F_GET_SEALS);
            let mut st: libc::stat = std::mem::zeroed();
            seals >= 0
                && seals & libc::F_SEAL_SHRINK != 0
                && libc::fstat(memfd.as_raw_fd(), &mut st) == 0
                && st.st_size >= PAGE as libc::off_t
        };
        if !sealed || !is_eventfd(&up) || !is_eventfd(&down) {
            crate::why!("connect: the exporter sent an event channel that is not one");
            return Err(RsmError::InternalError);
        }
        let addr = map(&memfd)?;
        Ok(Channel {
            addr,
            up_bell: EventFd(up),
            down_bell: EventFd(down),
        })
    }

    fn word(&self, offset: usize) -> &AtomicU64 {
        // SAFETY: `offset` is 8-aligned and inside our page, which lives as
        // long as `self`; shared words are only touched atomically.
        unsafe { &*((self.addr + offset) as *const AtomicU64) }
    }

    /// Importer -> exporter counter.
    pub fn up(&self) -> Counter<'_> {
        Counter(self.word(UP))
    }

    /// Exporter -> importer counter.
    pub fn down(&self) -> Counter<'_> {
        Counter(self.word(DOWN))
    }
}

/// Whether `fd` is an eventfd (`anon_inode:[eventfd]`).
fn is_eventfd(fd: &OwnedFd) -> bool {
    std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .is_ok_and(|p| p.as_os_str() == "anon_inode:[eventfd]")
}

/// Sleeps until `fd` is readable or `timeout_ms` passes (-1: forever).
pub fn sleep_on(fd: RawFd, timeout_ms: i32) -> RsmResult<bool> {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one pollfd of ours, borrowed for the call.
    unsafe { crate::platform::poll(&mut pfd, 1, timeout_ms) }.map(|n| n > 0)
}
