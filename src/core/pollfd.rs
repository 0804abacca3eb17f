//! The poll-descriptor reference count both segment kinds keep (spec 4.9):
//! while it is above zero, destroy and disconnect fail with
//! `RSMERR_POLLFD_IN_USE`.

use crate::error::{RsmError, RsmResult};

/// References taken by `rsm_memseg_get_pollfd`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PollfdRefs(u32);

impl PollfdRefs {
    /// Counts one more reference.
    pub fn take(&mut self) -> RsmResult<()> {
        self.0 = self
            .0
            .checked_add(1)
            .ok_or(RsmError::InsufficientResources)?;
        Ok(())
    }

    /// Drops one reference; never below zero (spec 4.9).
    pub fn release(&mut self) {
        self.0 = self.0.saturating_sub(1);
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
