//! The handle table (DESIGN.md section 4).
//!
//! C code holds opaque pointers; here they are keys into lock-free slabs
//! (`sharded-slab`, the table `tracing` uses), never addresses. A handle's
//! value packs, from the top: a 4-bit magic, the 4-bit [`Kind`], and the
//! slab key, which itself carries the slot index and a generation. So a
//! NULL, forged, freed (stale generation) or wrong-kind handle is recognised
//! and answered with the function's `BAD_*_HNDL`, and the `void *` functions
//! (signal post/wait, pollfd) can tell an export handle from an import one.
//!
//! Lookups take no lock: `get` is a few atomic loads plus a reference count
//! on the slot, which defers a concurrent `remove` until the user is done.

use crate::error::{RsmError, RsmResult};
use sharded_slab::{Config, Entry, Slab};

/// What a handle stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// `rsmapi_controller_handle_t`
    Controller = 1,
    /// `rsm_memseg_export_handle_t`
    Export = 2,
    /// `rsm_memseg_import_handle_t`
    Import = 3,
    /// `rsm_localmemory_handle_t`
    LocalMemory = 4,
}

const MAGIC: usize = 0xA;
const MAGIC_SHIFT: u32 = usize::BITS - 4;
const KIND_SHIFT: u32 = usize::BITS - 8;
const KEY_MASK: usize = (1 << KIND_SHIFT) - 1;

/// Leaves the top 8 bits of every key to us.
#[doc(hidden)]
pub struct HandleConfig;
impl Config for HandleConfig {
    const RESERVED_BITS: usize = 8;
}

/// The kind a raw handle value claims to be, if it carries our magic.
pub fn kind_of(raw: usize) -> Option<Kind> {
    if raw >> MAGIC_SHIFT != MAGIC {
        return None;
    }
    match (raw >> KIND_SHIFT) & 0xF {
        1 => Some(Kind::Controller),
        2 => Some(Kind::Export),
        3 => Some(Kind::Import),
        4 => Some(Kind::LocalMemory),
        _ => None,
    }
}

/// A table of live objects of one kind.
pub struct HandleTable<T> {
    kind: Kind,
    slab: Slab<T, HandleConfig>,
}

/// A borrowed object; the slot stays valid while this lives.
pub type Guard<'a, T> = Entry<'a, T, HandleConfig>;

impl<T: Send + Sync + 'static> HandleTable<T> {
    /// An empty table for handles of `kind`.
    pub fn new(kind: Kind) -> Self {
        HandleTable {
            kind,
            slab: Slab::new_with_config::<HandleConfig>(),
        }
    }

    /// Stores `value` and returns its handle value (never 0).
    pub fn insert(&self, value: T) -> RsmResult<usize> {
        let key = self
            .slab
            .insert(value)
            .ok_or(RsmError::InsufficientResources)?;
        debug_assert_eq!(key & !KEY_MASK, 0);
        Ok((MAGIC << MAGIC_SHIFT) | ((self.kind as usize) << KIND_SHIFT) | key)
    }

    fn key(&self, raw: usize) -> Option<usize> {
        (kind_of(raw) == Some(self.kind)).then_some(raw & KEY_MASK)
    }

    /// The object behind `raw`, or `err` for NULL, forged, stale or
    /// wrong-kind values.
    pub fn get(&self, raw: usize, err: RsmError) -> RsmResult<Guard<'_, T>> {
        self.key(raw).and_then(|k| self.slab.get(k)).ok_or(err)
    }

    /// Removes the object; false if `raw` was not live. Guards still held
    /// keep it alive until they drop; new lookups fail at once.
    pub fn remove(&self, raw: usize) -> bool {
        self.key(raw).is_some_and(|k| self.slab.remove(k))
    }

    /// Removes and returns the object, waiting for outstanding guards.
    pub fn take(&self, raw: usize) -> Option<T> {
        self.key(raw).and_then(|k| self.slab.take(k))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ERR: RsmError = RsmError::BadSegHndl;

    #[test]
    fn live_handles_resolve_and_dead_ones_do_not() {
        let t = HandleTable::new(Kind::Import);
        let h = t.insert(42u32).unwrap();
        assert_ne!(h, 0);
        assert_eq!(kind_of(h), Some(Kind::Import));
        assert_eq!(*t.get(h, ERR).unwrap(), 42);
        assert!(t.remove(h));
        assert_eq!(t.get(h, ERR).err(), Some(ERR), "freed");
        assert!(!t.remove(h), "double free");
        // The slot is reused with a new generation; the old value stays dead.
        let h2 = t.insert(7).unwrap();
        assert_ne!(h, h2);
        assert_eq!(t.get(h, ERR).err(), Some(ERR), "stale");
        assert_eq!(*t.get(h2, ERR).unwrap(), 7);
    }

    #[test]
    fn wrong_kind_null_and_forged_values_are_rejected() {
        let imports = HandleTable::new(Kind::Import);
        let exports = HandleTable::new(Kind::Export);
        let hi = imports.insert(1u8).unwrap();
        let he = exports.insert(2u8).unwrap();
        assert_eq!(exports.get(hi, ERR).err(), Some(ERR));
        assert_eq!(imports.get(he, ERR).err(), Some(ERR));
        assert_eq!(kind_of(he), Some(Kind::Export));
        for forged in [
            0usize,
            1,
            0x1000,
            usize::MAX,
            hi ^ 1,
            hi + 0x10_0000,
            0xA100_0000_0000_0000,
        ] {
            if forged != hi {
                assert!(imports.get(forged, ERR).is_err(), "{forged:#x}");
                assert!(!imports.remove(forged));
            }
        }
        assert_eq!(*imports.get(hi, ERR).unwrap(), 1);
    }

    #[test]
    fn random_values_never_crash_a_lookup() {
        let t = HandleTable::new(Kind::Controller);
        let live: Vec<usize> = (0..64).map(|i| t.insert(i).unwrap()).collect();
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..200_000 {
            // xorshift; half the probes carry our magic and kind bits.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mut raw = x as usize;
            if x & 1 == 0 {
                raw = (raw & KEY_MASK) | (live[0] & !KEY_MASK);
            }
            if let Ok(v) = t.get(raw, ERR) {
                assert!(live.contains(&raw), "{raw:#x} resolved to {}", *v);
            }
        }
    }

    #[test]
    fn concurrent_insert_lookup_remove() {
        let t = std::sync::Arc::new(HandleTable::new(Kind::LocalMemory));
        let threads: Vec<_> = (0..4)
            .map(|n| {
                let t = t.clone();
                std::thread::spawn(move || {
                    for i in 0..5_000u64 {
                        let h = t.insert(n * 1_000_000 + i).unwrap();
                        assert_eq!(*t.get(h, ERR).unwrap(), n * 1_000_000 + i);
                        assert!(t.remove(h));
                        assert!(t.get(h, ERR).is_err());
                    }
                })
            })
            .collect();
        for th in threads {
            th.join().unwrap();
        }
    }
}
