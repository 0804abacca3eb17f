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

use parking_lot::Mutex;
use std::collections::BTreeSet;
use std::os::fd::RawFd;
use std::sync::Once;

static SOCKETS: Mutex<BTreeSet<RawFd>> = Mutex::new(BTreeSet::new());
static INSTALL: Once = Once::new();

extern "C" fn prepare() {
    // Held across fork, so the child's copy is consistent and unlocked by
    // the forking thread, which is the one that continues in the child.
    std::mem::forget(SOCKETS.lock());
}

extern "C" fn parent() {
    // SAFETY: prepare() locked it on this thread and forgot the guard.
    unsafe { SOCKETS.force_unlock() };
}

extern "C" fn child() {
    // SAFETY: as in parent(); the child's copy was locked by this thread.
    let fds = unsafe {
        SOCKETS.force_unlock();
        &mut *SOCKETS.data_ptr()
    };
    if fds.is_empty() {
        return;
    }
    // SAFETY: plain syscalls; socket and dup2 are async-signal-safe.
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
}

/// Tracks a socket of ours so a forked child lets go of it.
pub fn track(fd: RawFd) {
    INSTALL.call_once(|| {
        // SAFETY: the handlers are plain extern "C" functions with no
        // arguments, valid for the life of the process.
        unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) };
    });
    SOCKETS.lock().insert(fd);
}

/// Stops tracking; call before closing the socket.
pub fn untrack(fd: RawFd) {
    SOCKETS.lock().remove(&fd);
}
