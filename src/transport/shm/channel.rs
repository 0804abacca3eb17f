//! The event channel of one connection (DESIGN.md 5.6, design-notes
//! "Signals"): a sealed one-page memfd both processes map, holding two
//! event counters (`transport::events`), and pipes as doorbells.
//!
//! `up` carries importer -> exporter posts, `down` exporter -> importer.
//! Every connection has its own page and `down` pipe, made by the
//! exporter: an importer can only disturb its own counters. The exporter
//! sleeps on one pipe for all its importers; importers get only its write
//! end, so none can drain it to make the exporter sleep through a post.
//!
//! Doorbells are pipes because a pipe reports `POLLRDNORM`, the event
//! `rsm_memseg_get_pollfd` asks for, and wakes pollers that ask only for
//! it; eventfds and epoll descriptors report and wake with `POLLIN` alone.

use crate::error::{RsmError, RsmResult};
use crate::transport::events::{Counter, Doorbell, Poster, Woke, Words};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::OnceLock;

/// Size of the shared page.
const PAGE: usize = 4096;
/// Offsets of the two counters, and of their words inside one: `posted`
/// with `wakes` (a post that wakes writes both), `flags` with `extra` on
/// the next line (read by every post, written rarely), `consumed` 128
/// bytes on (adjacent-line prefetch pairs lines).
const UP: usize = 0;
const DOWN: usize = 256;
const WAKES: usize = 8;
const FLAGS: usize = 64;
const EXTRA: usize = 72;
const CONSUMED: usize = 128;
/// Offset of the importer's status word (`rsminfo`): 1 while it holds an
/// explicit mapping. Only informative; the exporter trusts nothing in it.
const STATUS: usize = 512;

fn last_errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// A doorbell pipe, or the end of one a process holds: rung by writing a
/// byte, readable while bytes are in it, drained by reading them all.
pub struct Bell {
    /// Read end: sleep on it, drain it.
    pub read: Option<OwnedFd>,
    /// Write end: ring it.
    pub write: Option<OwnedFd>,
}

impl Bell {
    /// A new non-blocking pipe.
    pub fn new() -> RsmResult<Bell> {
        let mut fds = [0; 2];
        // SAFETY: pipe2 writes two descriptors into `fds`.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } != 0 {
            return Err(RsmError::from_alloc_errno(last_errno()));
        }
        // SAFETY: pipe2 returned two new descriptors that nothing else owns.
        let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        Ok(Bell {
            read: Some(r),
            write: Some(w),
        })
    }

    /// The read end's descriptor (the pollfd), or -1.
    pub fn read_fd(&self) -> RawFd {
        self.read.as_ref().map_or(-1, |f| f.as_raw_fd())
    }
}

impl Doorbell for Bell {
    fn ring(&self) {
        if let Some(w) = &self.write {
            ring(w.as_raw_fd());
        }
    }
    fn drain(&self) {
        if let Some(r) = &self.read {
            drain(r.as_raw_fd());
        }
    }
    fn wake(&self, wakes: &AtomicU32) {
        futex_wake(wakes);
    }
}

/// Whether this kernel honours `RWF_NOWAIT` on pipes (Linux 5.x and
/// later): then a ring or drain never blocks, whatever the mode of the
/// descriptor another process handed us, and those need no checking.
/// Probed once per process on a pipe of our own.
fn nowait_pipes() -> bool {
    static NOWAIT: OnceLock<bool> = OnceLock::new();
    *NOWAIT.get_or_init(|| {
        let mut fds = [0; 2];
        // SAFETY: pipe2 writes two descriptors into `fds`.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return false;
        }
        // SAFETY: pipe2 returned two new descriptors that nothing else owns.
        let (r, _w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let mut byte = 0u8;
        let iov = libc::iovec {
            iov_base: (&mut byte as *mut u8).cast(),
            iov_len: 1,
        };
        // SAFETY: reads at most 1 byte into `byte`; the pipe is empty and
        // blocking, so only RWF_NOWAIT keeps this from sleeping.
        let n = unsafe { libc::preadv2(r.as_raw_fd(), &iov, 1, -1, libc::RWF_NOWAIT) };
        n < 0 && last_errno() == libc::EAGAIN
    })
}

/// Writes one byte to pipe `fd` (a full pipe is readable anyway).
///
/// The reader may be gone (a peer died, or left as we posted): the write
/// then fails with EPIPE, and the SIGPIPE the kernel raises, which would
/// kill a program with the default action, must not reach it. A pipe has
/// no `MSG_NOSIGNAL`, so the signal is blocked for this thread during the
/// write and, if the write raised it, taken back. Rings are rare (only an
/// armed counter rings), so the two mask calls cost little.
pub fn ring(fd: RawFd) {
    let mut one = 1u8;
    let iov = libc::iovec {
        iov_base: (&mut one as *mut u8).cast(),
        iov_len: 1,
    };
    let flags = if nowait_pipes() { libc::RWF_NOWAIT } else { 0 };
    // SAFETY: signal-set calls on local sigset_t values the calls
    // initialise; pwritev2 reads 1 byte from `one`; sigtimedwait with a
    // zero timeout only takes a SIGPIPE that is pending for this thread.
    unsafe {
        let mut pipe: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut pipe);
        libc::sigaddset(&mut pipe, libc::SIGPIPE);
        libc::pthread_sigmask(libc::SIG_BLOCK, &pipe, &mut old);
        let n = libc::pwritev2(fd, &iov, 1, -1, flags);
        if n < 0 && last_errno() == libc::EPIPE {
            let zero = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            libc::sigtimedwait(&pipe, std::ptr::null_mut(), &zero);
        }
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
    }
}

/// Reads pipe `fd` empty, never blocking.
pub fn drain(fd: RawFd) {
    let mut buf = [0u8; 256];
    let iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let flags = if nowait_pipes() { libc::RWF_NOWAIT } else { 0 };
    loop {
        // SAFETY: reads at most buf.len() bytes into `buf`.
        let n = unsafe { libc::preadv2(fd, &iov, 1, -1, flags) };
        if n < buf.len() as isize {
            return;
        }
    }
}

/// One connection's event channel, as mapped by either side.
pub struct Channel {
    addr: usize,
    /// The importer's doorbell: the exporter holds its write end, the
    /// importer both ends.
    pub down: Bell,
    /// Importer only: the write end of the exporter's doorbell.
    pub up: Option<OwnedFd>,
    /// This side's poster: on `down` for the exporter, `up` for the
    /// importer.
    poster: Poster,
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

/// What the exporter sends an importer for its channel, in this order
/// after the segment's descriptor: the page, the write end of the
/// exporter's doorbell, the read and write ends of the importer's.
pub struct Handout {
    /// The memfd of the page.
    pub page: OwnedFd,
    /// Read end of the `down` pipe (the exporter keeps only the write end).
    pub down_read: OwnedFd,
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
    /// The exporter makes a channel; the handout goes to the importer and
    /// is closed here once sent.
    pub fn create() -> RsmResult<(Channel, Handout)> {
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
        let page = unsafe { OwnedFd::from_raw_fd(fd) };
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
        // The pipe first: if it cannot be made, nothing is mapped yet.
        let mut pipe = Bell::new()?;
        let addr = map(&page)?;
        let down_read = pipe.read.take().ok_or(RsmError::InternalError)?;
        let channel = Channel {
            addr,
            down: pipe,
            up: None,
            poster: Poster::fresh(),
        };
        Ok((channel, Handout { page, down_read }))
    }

    /// A channel of this process alone, for an import whose exporter is
    /// gone before it was given one: nothing is ever posted to it, and
    /// the forced disconnect rings its doorbell like any other's.
    pub fn dead() -> RsmResult<Channel> {
        let down = Bell::new()?;
        let addr = crate::transport::map_anonymous(PAGE, libc::MAP_PRIVATE)
            .map_err(RsmError::from_alloc_errno)?;
        Ok(Channel {
            addr,
            down,
            up: None,
            poster: Poster::fresh(),
        })
    }

    /// The importer maps what the exporter sent, after checking that the
    /// page is sealed so it cannot shrink under it (else SIGBUS). Where
    /// rings and drains cannot block (`nowait_pipes`), a doorbell that is
    /// not what it claims only fails to ring, which an exporter can do to
    /// its own importers anyway; elsewhere they are checked to be
    /// non-blocking pipe ends as described.
    pub fn attach(
        page: OwnedFd,
        up: OwnedFd,
        down_read: OwnedFd,
        down_write: OwnedFd,
    ) -> RsmResult<Channel> {
        // SAFETY: fcntl and fstat on a descriptor we own; `st` is written
        // by fstat before it is read.
        let sealed = unsafe {
            let seals = libc::fcntl(page.as_raw_fd(), libc::F_GET_SEALS);
            let mut st: libc::stat = std::mem::zeroed();
            seals >= 0
                && seals & libc::F_SEAL_SHRINK != 0
                && libc::fstat(page.as_raw_fd(), &mut st) == 0
                && st.st_size >= PAGE as libc::off_t
        };
        let pipes = nowait_pipes() || {
            let down = (
                pipe_end(&down_read, libc::O_RDONLY),
                pipe_end(&down_write, libc::O_WRONLY),
            );
            matches!(down, (Some(a), Some(b)) if a == b) && pipe_end(&up, libc::O_WRONLY).is_some()
        };
        if !sealed || !pipes {
            crate::why!("connect: the exporter sent an event channel that is not one");
            return Err(RsmError::InternalError);
        }
        let addr = map(&page)?;
        // A channel is made for one connection: nobody posted on `up` yet
        // (an exporter that wrote there only garbles its own events).
        Ok(Channel {
            addr,
            down: Bell {
                read: Some(down_read),
                write: Some(down_write),
            },
            up: Some(up),
            poster: Poster::fresh(),
        })
    }

    fn word(&self, offset: usize) -> &AtomicU64 {
        // SAFETY: `offset` is 8-aligned and inside our page, which lives as
        // long as `self`; shared words are only touched atomically.
        unsafe { &*((self.addr + offset) as *const AtomicU64) }
    }

    fn word32(&self, offset: usize) -> &AtomicU32 {
        // SAFETY: as `word`, 4-aligned.
        unsafe { &*((self.addr + offset) as *const AtomicU32) }
    }

    /// The importer says whether it holds an explicit mapping.
    pub fn set_mapped(&self, on: bool) {
        self.word32(STATUS).store(u32::from(on), Ordering::Relaxed);
    }

    /// What the importer said.
    pub fn mapped(&self) -> bool {
        self.word32(STATUS).load(Ordering::Relaxed) == 1
    }

    fn counter(&self, at: usize) -> Counter<'_> {
        Counter::new(Words {
            posted: self.word(at),
            extra: self.word(at + EXTRA),
            consumed: self.word(at + CONSUMED),
            flags: self.word(at + FLAGS),
            wakes: self.word32(at + WAKES),
        })
    }

    /// Importer -> exporter counter.
    pub fn up(&self) -> Counter<'_> {
        self.counter(UP)
    }

    /// Exporter -> importer counter.
    pub fn down(&self) -> Counter<'_> {
        self.counter(DOWN)
    }

    /// This side's poster (of `down` for the exporter, `up` for the
    /// importer).
    pub fn poster(&self) -> &Poster {
        &self.poster
    }
}

/// The pipe's inode if `fd` is a non-blocking pipe end open with access
/// mode `mode`.
fn pipe_end(fd: &OwnedFd, mode: i32) -> Option<u64> {
    // SAFETY: fcntl and fstat on a descriptor we own; `st` is written by
    // fstat before it is read.
    unsafe {
        let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        let mut st: libc::stat = std::mem::zeroed();
        (flags >= 0
            && flags & libc::O_ACCMODE == mode
            && flags & libc::O_NONBLOCK != 0
            && libc::fstat(fd.as_raw_fd(), &mut st) == 0
            && st.st_mode & libc::S_IFMT == libc::S_IFIFO)
            .then_some(st.st_ino)
    }
}

/// Sleeps until `fd` is readable or `timeout_ms` passes (-1: forever).
pub fn sleep_on(fd: RawFd, timeout_ms: i32) -> RsmResult<Woke> {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one pollfd of ours, borrowed for the call.
    let n = unsafe { crate::platform::poll(&mut pfd, 1, timeout_ms) }?;
    Ok(if n > 0 { Woke::Rung } else { Woke::TimedOut })
}

/// Wakes every thread, in any process, asleep on `wakes` (a futex word in
/// a shared page; not `FUTEX_PRIVATE`, so other processes' sleeps count).
pub fn futex_wake(wakes: &AtomicU32) {
    // SAFETY: FUTEX_WAKE only uses the address as a key; no other
    // argument is read.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            wakes.as_ptr(),
            libc::FUTEX_WAKE,
            i32::MAX,
            std::ptr::null::<libc::timespec>(),
            0usize,
            0u32,
        )
    };
}

/// Sleeps while `wakes` holds `seen`, up to `timeout_ms` (-1: forever).
/// A handler installed with `SA_RESTART` resumes the sleep, as it does a
/// `read`; without, the wait ends with `RSMERR_INTERRUPTED`.
pub fn futex_sleep(wakes: &AtomicU32, seen: u32, timeout_ms: i32) -> RsmResult<Woke> {
    let ts = (timeout_ms >= 0).then(|| libc::timespec {
        tv_sec: (timeout_ms / 1000).into(),
        tv_nsec: ((timeout_ms % 1000) * 1_000_000).into(),
    });
    let tsp = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: the kernel reads `wakes` (ours, mapped while we sleep: the
    // caller holds its channel) and `tsp` (null or our timespec).
    let r = unsafe {
        libc::syscall(
            libc::SYS_futex,
            wakes.as_ptr(),
            libc::FUTEX_WAIT,
            seen,
            tsp,
            0usize,
            0u32,
        )
    };
    if r == 0 {
        return Ok(Woke::Woken);
    }
    match last_errno() {
        libc::EAGAIN => Ok(Woke::Woken), // `wakes` moved before we slept
        libc::ETIMEDOUT => Ok(Woke::TimedOut),
        libc::EINTR => Err(RsmError::Interrupted),
        e => {
            crate::why!("signal wait: futex failed with errno {e}");
            Err(RsmError::InternalError)
        }
    }
}
