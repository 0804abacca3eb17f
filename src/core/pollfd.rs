//! The poll-descriptor reference count both segment kinds keep (spec 4.9):
//! while it is above zero, destroy and disconnect fail with
//! `RSMERR_POLLFD_IN_USE`. And the process-wide table that tells
//! `rsm_intr_signal_wait_pollfd` which descriptors are segments'.

use crate::error::{RsmError, RsmResult};
use parking_lot::Mutex;
use std::collections::HashMap;

/// Descriptors handed out by `rsm_memseg_get_pollfd` and still referenced,
/// with the handle of their segment.
static TABLE: Mutex<Option<HashMap<i32, usize>>> = Mutex::new(None);

/// Records that `fd` is the pollfd of segment `handle`.
pub fn register(fd: i32, handle: usize) {
    TABLE
        .lock()
        .get_or_insert_with(HashMap::new)
        .insert(fd, handle);
}

/// Forgets `fd` (its last reference was released).
pub fn unregister(fd: i32) {
    if let Some(t) = TABLE.lock().as_mut() {
        t.remove(&fd);
    }
}

/// The segment whose pollfd `fd` is, if it is one.
pub fn segment_of(fd: i32) -> Option<usize> {
    TABLE.lock().as_ref().and_then(|t| t.get(&fd).copied())
}

/// References taken by `rsm_memseg_get_pollfd`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PollfdRefs(u32);

impl PollfdRefs {
    /// Counts one more reference; `true` if it is the first.
    pub fn take(&mut self) -> RsmResult<bool> {
        self.0 = self
            .0
            .checked_add(1)
            .ok_or(RsmError::InsufficientResources)?;
        Ok(self.0 == 1)
    }

    /// Drops one reference; never below zero (spec 4.9). `true` if it was
    /// the last.
    pub fn release(&mut self) -> bool {
        let last = self.0 == 1;
        self.0 = self.0.saturating_sub(1);
        last
    }

    /// `RSMERR_POLLFD_IN_USE` while any reference is held.
    pub fn check_unused(&self) -> RsmResult<()> {
        if self.0 > 0 {
            Err(RsmError::PollfdInUse)
        } else {
            Ok(())
        }
    }
}
