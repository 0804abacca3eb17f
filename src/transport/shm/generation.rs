//! An import's forced-disconnect generation (spec 5.2), seen by forked
//! children too.
//!
//! The importing process's agent bumps the generation when the exporter
//! goes; get/put and barrier close compare it afterwards. A child that
//! inherited the import has no agent and none of its parent's
//! connections (`fork`), so it can learn of the end only from a word it
//! shares with its parent. Until the process forks, the word lives in the
//! import: a connect maps nothing for it. A `pthread_atfork` prepare
//! handler then moves the word of every live import into one shared
//! anonymous mapping (an `Arena`), which parent and child both read from
//! then on. Words only grow, so a child never sees an ended connection
//! live again.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Once, OnceLock, Weak};

/// Every import's generation that lives in its import still, by address.
/// A std (futex) mutex, as in `fork`: `prepare` holds it across fork, so
/// no other thread holds it then and the child can take it.
static LIVE: Mutex<Live> = Mutex::new(BTreeMap::new());

/// What `LIVE` holds.
type Live = BTreeMap<usize, Weak<Generation>>;
static INSTALL: Once = Once::new();

thread_local! {
    /// The guard `prepare` takes, held across fork by the forking thread,
    /// which is the one that continues in the child.
    static HELD: std::cell::RefCell<Option<MutexGuard<'static, Live>>> =
        const { std::cell::RefCell::new(None) };
}

fn live() -> MutexGuard<'static, Live> {
    LIVE.lock().unwrap_or_else(|e| e.into_inner())
}

/// One import's generation.
pub struct Generation {
    own: AtomicU32,
    /// Its word in an arena once the process forked (the arena, the
    /// word's index); `own` until then.
    shared: OnceLock<(Arc<Arena>, usize)>,
    /// Orders a bump against the move into an arena (bumps are rare: one
    /// per forced disconnect). Reads take no lock.
    moving: parking_lot::Mutex<()>,
}

impl Generation {
    /// A generation of 0, in the import until the process forks.
    pub fn new() -> Arc<Generation> {
        INSTALL.call_once(|| {
            // SAFETY: a plain extern "C" function with no arguments, valid
            // for the life of the process.
            unsafe { libc::pthread_atfork(Some(prepare), Some(release), Some(release)) };
        });
        let g = Arc::new(Generation {
            own: AtomicU32::new(0),
            shared: OnceLock::new(),
            moving: parking_lot::Mutex::new(()),
        });
        live().insert(Arc::as_ptr(&g) as usize, Arc::downgrade(&g));
        g
    }

    fn word(&self) -> &AtomicU32 {
        match self.shared.get() {
            Some((arena, i)) => arena.word(*i),
            None => &self.own,
        }
    }

    /// The generation now.
    pub fn get(&self) -> u32 {
        self.word().load(Ordering::Acquire)
    }

    /// Moves it on: the connection ended.
    pub fn bump(&self) {
        let _m = self.moving.lock();
        self.word().fetch_add(1, Ordering::SeqCst);
    }

    /// Moves the word to `arena`'s word `i`, with its value.
    fn share(&self, arena: &Arc<Arena>, i: usize) {
        let _m = self.moving.lock();
        if self.shared.get().is_some() {
            return;
        }
        arena
            .word(i)
            .store(self.own.load(Ordering::Acquire), Ordering::Release);
        let _ = self.shared.set((Arc::clone(arena), i));
    }
}

impl Drop for Generation {
    fn drop(&mut self) {
        live().remove(&(std::ptr::from_ref(self) as usize));
    }
}

/// Words shared with forked children: one anonymous `MAP_SHARED` mapping.
struct Arena {
    base: *mut AtomicU32,
    len: usize,
    words: usize,
}

// SAFETY: the mapping is only reached through atomics, from any thread.
unsafe impl Send for Arena {}
// SAFETY: as above.
unsafe impl Sync for Arena {}

impl Arena {
    fn new(words: usize) -> Option<Arc<Arena>> {
        let page = crate::platform::page_size();
        let len = (words * std::mem::size_of::<AtomicU32>()).div_ceil(page) * page;
        // Zero-filled, so every word is a valid AtomicU32.
        let p = crate::transport::map_anonymous(len, libc::MAP_SHARED).ok()?;
        Some(Arc::new(Arena {
            base: p as *mut AtomicU32,
            len,
            words: len / std::mem::size_of::<AtomicU32>(),
        }))
    }

    fn word(&self, i: usize) -> &AtomicU32 {
        assert!(i < self.words);
        // SAFETY: inside the mapping, aligned (page-aligned base, 4-byte
        // words), mapped as long as `self`.
        unsafe { &*self.base.add(i) }
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        // SAFETY: our own mapping; every reference into it came from
        // `word` and lived no longer than an `Arc` of `self`.
        unsafe { libc::munmap(self.base.cast(), self.len) };
    }
}

/// Before a fork: every import's word still in its import moves into one
/// new arena, so the child's copy of the import reads the word its
/// parent's agent bumps. If there is no memory for the arena, the words
/// stay where they are (the child then does not see a forced disconnect,
/// as before this existed).
extern "C" fn prepare() {
    move_live();
    let guard = live();
    HELD.with(|h| *h.borrow_mut() = Some(guard));
}

/// After fork, in parent and child: lets go of what `prepare` held.
extern "C" fn release() {
    HELD.with(|h| drop(h.borrow_mut().take()));
}

/// Moves every word still in its import into one new arena.
fn move_live() {
    let pending: Vec<Arc<Generation>> = live()
        .values()
        .filter_map(Weak::upgrade)
        .filter(|g| g.shared.get().is_none())
        .collect();
    if pending.is_empty() {
        return;
    }
    let Some(arena) = Arena::new(pending.len()) else {
        return;
    };
    let mut moved = Vec::with_capacity(pending.len());
    for (i, g) in pending.iter().enumerate() {
        g.share(&arena, i);
        moved.push(Arc::as_ptr(g) as usize);
    }
    // Before the lock: dropping the last reference to one runs its
    // `Drop`, which takes the lock.
    drop(pending);
    let mut live = live();
    for k in moved {
        live.remove(&k);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_word_moved_before_a_fork_keeps_its_value_and_its_bumps() {
        let g = Generation::new();
        g.bump();
        assert_eq!(g.get(), 1);
        move_live();
        let (arena, i) = g.shared.get().expect("moved into an arena");
        let p = std::ptr::from_ref(arena.word(*i));
        assert_eq!(g.get(), 1, "with its value");
        g.bump();
        assert_eq!(
            arena.word(*i).load(Ordering::Acquire),
            2,
            "bumps go to the arena"
        );
        assert_eq!(g.own.load(Ordering::Acquire), 1, "not to the old word");
        move_live(); // a second fork: nothing moves again
        assert_eq!(std::ptr::from_ref(g.word()), p);
        assert!(!live().contains_key(&(Arc::as_ptr(&g) as usize)));
    }
}
