//! Transport-independent RSM semantics. Nothing here makes a system call:
//! what touches the OS is behind [`crate::transport::Transport`] or in
//! [`crate::config`].

pub mod barrier;
mod cache;
pub mod controller;
pub mod event;
pub mod export;
pub mod import;
pub mod localmem;
pub mod permission;
pub mod pollfd;
pub mod segmentid;
pub mod topology;

#[cfg(test)]
mod tests;
