//! Memory tricks the window transport shares with `shm`: sharing the
//! exporter's own range in place (here onto window memory instead of a
//! memfd), giving it back as private memory, and re-pointing an
//! importer's mapping at anonymous memory after a forced disconnect.
//!
//! `check_private_rw` and `privatize` are the same-host transport's own
//! (`transport/shm/memory.rs`); the pipe doorbell here is a reduced copy
//! of `shm/channel.rs`'s (local pipes only: both ends in this process).

use crate::error::{RsmError, RsmResult};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

fn errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// Checks that `[vaddr, vaddr + len)` is mapped, private, readable and
/// writable: the same-host transport's check (PROCMAP_QUERY, else the
/// text of /proc/self/maps), which has its own tests.
pub(crate) use crate::transport::shm::memory::check_private_rw;

/// Maps `len` bytes of `fd` from `offset`, shared and read-write, at
/// exactly `vaddr`, replacing what was there (the caller copied it away).
pub fn map_window_at(vaddr: usize, len: usize, fd: RawFd, offset: u64) -> RsmResult<()> {
    // SAFETY: MAP_FIXED over a range the caller owns (checked mapped and
    // private, or our own segment mapping), its bytes already copied.
    let p = unsafe {
        libc::mmap(
            vaddr as *mut _,
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_FIXED,
            fd,
            offset as libc::off_t,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(RsmError::from_alloc_errno(errno()));
    }
    Ok(())
}

/// Replaces the shared mapping at `[vaddr, vaddr + len)` with a private
/// anonymous copy of its current contents, atomically (`mremap`).
pub(crate) use crate::transport::shm::memory::privatize;

pub use crate::transport::Mapping;

/// Maps `len` bytes of the window file `fd` from `offset` with `prot`,
/// at `fixed` if given; mmap's errno becomes an error by `error`.
pub fn map_segment(
    fd: RawFd,
    offset: u64,
    len: usize,
    prot: i32,
    fixed: Option<usize>,
    error: fn(i32) -> RsmError,
) -> RsmResult<Mapping> {
    let addr = crate::transport::map_shared(fd, offset, len, prot, fixed).map_err(error)?;
    Ok(Mapping { addr, len })
}

/// Anonymous memory standing in for a segment that went away.
pub fn anonymous(len: usize) -> RsmResult<Mapping> {
    let addr = crate::transport::map_anonymous(len, libc::MAP_PRIVATE | libc::MAP_NORESERVE)
        .map_err(RsmError::from_alloc_errno)?;
    Ok(Mapping { addr, len })
}

/// A doorbell pipe of this process: the agent rings it when events it
/// polled for in the window are pending; its read end is the pollfd
/// (pipes report `POLLRDNORM`, which `rsm_memseg_get_pollfd` asks for).
pub struct Bell {
    read: OwnedFd,
    write: OwnedFd,
}

impl Bell {
    /// A new non-blocking pipe.
    pub fn new() -> RsmResult<Bell> {
        let mut fds = [0; 2];
        // SAFETY: pipe2 writes two descriptors into `fds`.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } != 0 {
            return Err(RsmError::from_alloc_errno(errno()));
        }
        // SAFETY: pipe2 returned two new descriptors that nothing else owns.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        Ok(Bell { read, write })
    }

    /// The read end (the pollfd).
    pub fn read_fd(&self) -> RawFd {
        self.read.as_raw_fd()
    }

    /// Makes the read end readable.
    pub fn ring(&self) {
        let one = 1u8;
        // SAFETY: writes 1 byte from `one`; non-blocking (a full pipe is
        // readable anyway).
        unsafe { libc::write(self.write.as_raw_fd(), (&one as *const u8).cast(), 1) };
    }

    /// Reads the pipe empty.
    pub fn drain(&self) {
        let mut buf = [0u8; 64];
        loop {
            // SAFETY: reads at most buf.len() bytes into `buf`.
            let n = unsafe { libc::read(self.read_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n < buf.len() as isize {
                return;
            }
        }
    }

    /// Sleeps until the pipe is readable or `timeout_ms` passes.
    pub fn sleep(&self, timeout_ms: i32) -> RsmResult<bool> {
        let mut pfd = libc::pollfd {
            fd: self.read_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one pollfd of ours, borrowed for the call.
        let n = unsafe { crate::platform::poll(&mut pfd, 1, timeout_ms) }?;
        Ok(n > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bell_rings_and_drains() {
        let b = Bell::new().unwrap();
        assert_eq!(b.sleep(0), Ok(false));
        b.ring();
        b.ring();
        assert_eq!(b.sleep(0), Ok(true));
        b.drain();
        assert_eq!(b.sleep(0), Ok(false));
    }
}
