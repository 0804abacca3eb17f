//! This process's id for every transport, kept across calls and read
//! again after `fork`: event counters record which process owns a side
//! (`events::Poster`), and the same-host agent which process made it.
//! A `pthread_atfork` child handler clears the cache; a child made by a
//! raw `clone` that skips the handlers is not supported (as for the
//! same-host transport's sockets, `shm::fork`).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Once;

/// The id once read; 0 until then and again in a forked child, so a
/// lookup costs no `getpid` call.
static PID: AtomicU32 = AtomicU32::new(0);
static INSTALL: Once = Once::new();

extern "C" fn child() {
    PID.store(0, Ordering::Relaxed);
}

/// This process's id.
pub fn pid() -> u32 {
    INSTALL.call_once(|| {
        // SAFETY: the handler is a plain extern "C" function with no
        // arguments, valid for the life of the process.
        unsafe { libc::pthread_atfork(None, None, Some(child)) };
    });
    match PID.load(Ordering::Relaxed) {
        0 => {
            let pid = std::process::id();
            PID.store(pid, Ordering::Relaxed);
            pid
        }
        pid => pid,
    }
}
