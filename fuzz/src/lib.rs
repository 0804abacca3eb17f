//! What the three fuzz targets share: the return-code check, the process
//! setup that keeps a fuzzing process off every other librsm user's fabric,
//! and small memory helpers.
//!
//! The targets live in `fuzz_targets/`; `fuzz/README.md` says how to run
//! them and `fuzz/RESULTS.md` what they found.

use std::collections::HashSet;
use std::ffi::c_int;
use std::sync::Mutex;

/// Whether `rc` is something a librsm function may return: `RSM_SUCCESS`
/// or one of the `RSMERR_*` values of `<sys/rsm/rsm_common.h>` (1..=45,
/// 100..=134).
pub fn is_rsm_code(rc: c_int) -> bool {
    rc == 0 || rsm::error::ALL.iter().any(|e| e.code() == rc)
}

static INTERNAL: Mutex<Option<HashSet<&'static str>>> = Mutex::new(None);

/// Checks the return value of `func`: anything but 0 or an RSMERR code
/// aborts the process (libFuzzer saves the input as a crash).
///
/// `RSMERR_INTERNAL_ERROR` is an RSMERR code, so it is allowed, but the
/// library uses it for "a fault of ours": the first one per function is
/// printed, and with `RSM_FUZZ_STRICT=1` it aborts like a bad code.
pub fn check_rc(func: &'static str, rc: c_int, detail: &dyn std::fmt::Debug) {
    if !is_rsm_code(rc) {
        eprintln!("FUZZ BUG: {func} returned {rc}, not 0 or an RSMERR code; call: {detail:?}");
        std::process::abort();
    }
    if rc == rsm::error::RsmError::InternalError.code() {
        let first = INTERNAL
            .lock()
            .map(|mut s| s.get_or_insert_with(HashSet::new).insert(func))
            .unwrap_or(false);
        if first {
            eprintln!("FUZZ NOTE: {func} returned RSMERR_INTERNAL_ERROR; call: {detail:?}");
        }
        if std::env::var_os("RSM_FUZZ_STRICT").is_some_and(|v| v == "1") {
            eprintln!("FUZZ BUG (strict): {func} returned RSMERR_INTERNAL_ERROR");
            std::process::abort();
        }
    }
}

/// Fails the run with a message (libFuzzer records the input).
#[macro_export]
macro_rules! fuzz_bug {
    ($($arg:tt)*) => {{
        eprintln!("FUZZ BUG: {}", format!($($arg)*));
        std::process::abort();
    }};
}

/// Puts this process on a fabric of its own, as node 0, with a config file
/// of its own and no tracing, before librsm reads its configuration (it
/// does so once).
/// Call from the target's `init`, before any thread of ours exists.
pub fn isolate(tag: &str) {
    let fabric = format!("fuzz-{tag}-{}", std::process::id());
    // SAFETY (set_var/remove_var): called from the fuzz target's init, on
    // the main thread, before librsm or the harness starts a thread.
    std::env::set_var("RSM_FABRIC", &fabric);
    std::env::set_var("RSM_NODE_ID", "0");
    // A config of our own (not /etc/rsm/rsm.conf), kept open for the
    // process: a connect whose exporter never answers gives up after 3 s,
    // well inside libFuzzer's -timeout, so a wedged agent is reported as a
    // failed check with its context rather than as a bare timeout.
    static CONFIG: std::sync::OnceLock<MemFile> = std::sync::OnceLock::new();
    let config = CONFIG.get_or_init(|| MemFile::new(b"connect_timeout_ms = 3000\n"));
    std::env::set_var("RSM_CONFIG", &config.path);
    std::env::remove_var("RSM_DEBUG");
    std::env::remove_var("RSM_SEGMENTID_FILE");
}

/// The page size.
pub fn page() -> usize {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_PAGESIZE) as usize }
}

/// A fresh anonymous mapping of `len` bytes with `prot`; `shared` for
/// `MAP_SHARED`. Aborts on failure (the harness cannot run without it).
pub fn map_anon(len: usize, prot: c_int, shared: bool) -> usize {
    let flags = libc::MAP_ANONYMOUS
        | if shared {
            libc::MAP_SHARED
        } else {
            libc::MAP_PRIVATE
        };
    // SAFETY: a new mapping where the kernel chooses.
    let p = unsafe { libc::mmap(std::ptr::null_mut(), len, prot, flags, -1, 0) };
    if p == libc::MAP_FAILED {
        fuzz_bug!("harness: mmap of {len} bytes failed");
    }
    p as usize
}

/// Makes `[addr, addr + len)` inaccessible (a guard).
pub fn guard(addr: usize, len: usize) {
    // SAFETY: only ever called on mappings the harness made.
    if unsafe { libc::mprotect(addr as *mut _, len, libc::PROT_NONE) } != 0 {
        fuzz_bug!("harness: mprotect guard failed");
    }
}

/// A memfd holding `text`, and a path that opens it (`/proc/self/fd/N`):
/// a file for librsm to read that leaves nothing on disk.
pub struct MemFile {
    fd: c_int,
    /// Its path.
    pub path: String,
}

impl MemFile {
    /// A new memfd with `text` in it.
    pub fn new(text: &[u8]) -> MemFile {
        // SAFETY: the name is a C string literal.
        let fd = unsafe { libc::memfd_create(c"rsm-fuzz".as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            fuzz_bug!("harness: memfd_create failed");
        }
        let f = MemFile {
            fd,
            path: format!("/proc/self/fd/{fd}"),
        };
        f.set(text);
        f
    }

    /// Replaces the contents with `text`.
    pub fn set(&self, text: &[u8]) {
        // SAFETY: plain syscalls on our own descriptor and buffer.
        unsafe {
            libc::ftruncate(self.fd, 0);
            let mut done = 0;
            while done < text.len() {
                let n = libc::pwrite(
                    self.fd,
                    text[done..].as_ptr().cast(),
                    text.len() - done,
                    done as libc::off_t,
                );
                if n <= 0 {
                    fuzz_bug!("harness: pwrite to memfd failed");
                }
                done += n as usize;
            }
        }
    }
}

/// How many descriptors this process has open.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}
