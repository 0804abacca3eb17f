//! After `fork` the child holds copies of every socket of ours: a listener
//! that outlives its exporter in the child would keep the segment's name
//! bound with nobody answering, and an import connection kept by the child
//! would hide the parent importer's death from the exporter. Threads do not
//! survive fork, so the child cannot serve them anyway (spec 5.4: export
//! operations in the child are `RSMERR_NOT_CREATOR`).
//!
//! So a `pthread_atfork` child handler replaces each of those descriptors,
//! in the child only, with a dead socket: the numbers stay valid for the
//! child's copies of our handles (closing them later is harmless), but the
//! child no longer holds the parent's connections.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::os::fd::RawFd;
use std::sync::{Mutex, MutexGuard, Once};

/// A std (futex) mutex, not parking_lot's: if the agent thread is queued
/// on it at fork, parking_lot's unlock in the child can hand the lock to
/// that thread, which does not exist there, and the child's first connect
/// hangs. A futex mutex's unlock only clears the word and wakes nobody.
static SOCKETS: Mutex<BTreeSet<RawFd>> = Mutex::new(BTreeSet::new());
static INSTALL: Once = Once::new();

thread_local! {
    /// The guard `prepare` takes, held across fork by the forking thread,
    /// which is the one that continues in the child.
    static HELD: RefCell<Option<MutexGuard<'static, BTreeSet<RawFd>>>> =
        const { RefCell::new(None) };
}

fn sockets() -> MutexGuard<'static, BTreeSet<RawFd>> {
    SOCKETS.lock().unwrap_or_else(|e| e.into_inner())
}

extern "C" fn prepare() {
    let guard = sockets();
    HELD.with(|h| *h.borrow_mut() = Some(guard));
}

extern "C" fn parent() {
    HELD.with(|h| drop(h.borrow_mut().take()));
}

extern "C" fn child() {
    HELD.with(|h| {
        let Some(mut fds) = h.borrow_mut().take() else {
            return;
        };
        if fds.is_empty() {
            return;
        }
        // SAFETY: plain syscalls; socket and dup3 are async-signal-safe.
        unsafe {
            let dead = libc::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0);
            if dead < 0 {
                return;
            }
            for &fd in fds.iter() {
                libc::dup3(dead, fd, libc::O_CLOEXEC);
            }
            libc::close(dead);
        }
        fds.clear();
    });
}

fn install() {
    INSTALL.call_once(|| {
        // SAFETY: the handlers are plain extern "C" functions with no
        // arguments, valid for the life of the process.
        unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) };
    });
}

/// Tracks a socket of ours so a forked child lets go of it.
pub fn track(fd: RawFd) {
    install();
    sockets().insert(fd);
}

/// Stops tracking; call before closing the socket.
pub fn untrack(fd: RawFd) {
    sockets().remove(&fd);
}
