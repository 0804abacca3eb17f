//! `RSM_DEBUG=1`: every API call with its arguments and result, to stderr or
//! to the file named by `RSM_DEBUG_FILE`; also the reason behind a
//! configuration error. When off, [`enabled`] is one load and one
//! predictable branch.

use parking_lot::Mutex;
use std::fmt::{Debug, Write as _};
use std::fs::File;
use std::io::Write as _;
use std::sync::atomic::{AtomicU8, Ordering};

const UNKNOWN: u8 = 0;
const OFF: u8 = 1;
const ON: u8 = 2;

static STATE: AtomicU8 = AtomicU8::new(UNKNOWN);
static SINK: Mutex<Option<File>> = Mutex::new(None);

/// Is tracing on? Reads the environment once, on first use.
#[inline(always)]
pub fn enabled() -> bool {
    let state = STATE.load(Ordering::Relaxed);
    if state == OFF {
        return false;
    }
    enabled_slow(state)
}

#[cold]
#[inline(never)]
fn enabled_slow(state: u8) -> bool {
    if state == ON {
        return true;
    }
    let on = std::env::var_os("RSM_DEBUG").is_some_and(|v| !v.is_empty() && v != "0");
    if on {
        if let Some(path) = std::env::var_os("RSM_DEBUG_FILE") {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path);
            match file {
                Ok(f) => *SINK.lock() = Some(f),
                Err(e) => eprintln!("librsm: RSM_DEBUG_FILE {path:?}: {e}; tracing to stderr"),
            }
        }
    }
    STATE.store(if on { ON } else { OFF }, Ordering::Relaxed);
    on
}

/// Writes one line, prefixed with `librsm[pid]: `.
fn emit(line: &str) {
    let line = format!("librsm[{}]: {line}\n", std::process::id());
    let mut sink = SINK.lock();
    match sink.as_mut() {
        Some(f) => {
            let _ = f.write_all(line.as_bytes());
        }
        None => {
            let _ = std::io::stderr().write_all(line.as_bytes());
        }
    }
}

/// Traces one API call: `rsm_x(a=1, b=0x7f..) = 3 RSMERR_BAD_CTLR_HNDL`.
#[cold]
pub fn call(name: &str, args: &[(&str, &dyn Debug)], code: Option<i32>) {
    let mut line = String::with_capacity(128);
    let _ = write!(line, "{name}(");
    for (i, (arg, value)) in args.iter().enumerate() {
        let sep = if i == 0 { "" } else { ", " };
        let _ = write!(line, "{sep}{arg}={value:?}");
    }
    match code {
        Some(code) => {
            let _ = write!(line, ") = {code} {}", crate::error::name_of_code(code));
        }
        None => line.push(')'),
    }
    emit(&line);
}

/// Explains an error (bad configuration, refused input) when tracing is on.
pub fn why(args: std::fmt::Arguments<'_>) {
    if enabled() {
        emit(&args.to_string());
    }
}

/// `why!("config: {}", x)`: a reason, printed only with `RSM_DEBUG`.
#[macro_export]
macro_rules! why {
    ($($arg:tt)*) => { $crate::trace::why(format_args!($($arg)*)) };
}
