//! librsm for Linux: the Solaris Remote Shared Memory API (`<rsmapi.h>`,
//! `librsm.so.2`) as a Rust cdylib.
//!
//! Layers, top to bottom (DESIGN.md section 2):
//! - [`abi`]: the C entry points. Converts and checks arguments in the order
//!   Solaris checks them, calls one function of [`core`], maps the result to
//!   the `RSMERR_*` int. No logic, no syscalls.
//! - [`core`]: RSM semantics (controllers, topology, later export/import
//!   state machines and the permission model), independent of the transport.
//!   No syscalls.
//! - [`transport`]: the [`transport::Transport`] trait and its backends
//!   (`shm`: processes on one host).
//! - [`handles`], [`config`], [`trace`], [`uaccess`]: the handle table,
//!   configuration, `RSM_DEBUG` tracing, and checked copies to caller memory.
//!
//! Panic policy: a panic never unwinds into C. Release and dev builds use
//! `panic = "abort"`; where a build unwinds (the test harness), the entry
//! macro catches the panic and returns `RSMERR_INTERNAL_ERROR`.
#![deny(unsafe_op_in_unsafe_fn)]

pub mod abi;
pub mod config;
pub mod core;
pub mod error;
pub mod handles;
pub mod oom;
pub mod platform;
pub mod trace;
pub mod transport;
pub mod uaccess;

pub use error::{RsmError, RsmResult};

/// malloc first, then an emergency reserve, so that low memory gives
/// `RSMERR_INSUFFICIENT_MEM` rather than Rust's abort ([`oom`]).
#[global_allocator]
static ALLOCATOR: oom::Allocator = oom::Allocator;
