//! Event counters (spec 4.9) as any transport keeps them: one 64-bit word
//! in memory both sides map, plus a doorbell descriptor for whoever has to
//! sleep (DESIGN.md 5.6).
//!
//! The word holds the pending count (bits 0-31), `ARMED` (someone may be
//! asleep on the doorbell, or the application holds the pollfd and may poll
//! it at any time) and `RUNG` (the doorbell has been made readable). A post
//! is one compare-and-swap; it makes a system call only when the counter
//! is armed and the doorbell not yet rung. A waiter spins on the word for a
//! bounded time, then arms it and sleeps on the doorbell.
//!
//! Invariant, at rest: armed and pending implies the doorbell is readable.
//! Whoever sets `RUNG` rings; whoever takes the count to zero clears `RUNG`,
//! drains the doorbell and looks again, ringing if a post slipped in.
//! Stale rings only cost a spurious wake-up, never a lost one.
//!
//! The peer can write the word (it is shared memory), so every value is
//! treated as possibly hostile: the arithmetic stays inside its field, and
//! a garbage count only looks like posts the peer could have made anyway.

use crate::error::{RsmError, RsmResult};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Pending events.
pub const COUNT: u64 = 0xFFFF_FFFF;
/// Someone may be waiting on the doorbell.
pub const ARMED: u64 = 1 << 62;
/// The doorbell has been rung and not drained since.
pub const RUNG: u64 = 1 << 63;

/// What a sleeper waits on: an eventfd on the same host, an interrupt or a
/// polled window counter elsewhere.
pub trait Doorbell {
    /// Makes the doorbell readable.
    fn ring(&self);
    /// Makes it unreadable again (reads it empty).
    fn drain(&self);
}

/// One event counter in shared memory.
#[derive(Clone, Copy)]
pub struct Counter<'a>(pub &'a AtomicU64);

impl Counter<'_> {
    /// Adds one event. With `no_accumulate`, not if one is pending; a
    /// counter at its maximum drops the post (4 billion pending events).
    /// Rings `bell` if the counter is armed and the bell is silent.
    pub fn post(self, no_accumulate: bool, bell: &dyn Doorbell) {
        let mut w = self.0.load(Ordering::Relaxed);
        loop {
            let n = w & COUNT;
            if (no_accumulate && n > 0) || n == COUNT {
                return;
            }
            let ring = w & ARMED != 0 && w & RUNG == 0;
            let new = (w + 1) | if ring { RUNG } else { 0 };
            match self
                .0
                .compare_exchange_weak(w, new, Ordering::SeqCst, Ordering::Relaxed)
            {
                Ok(_) => {
                    if ring {
                        bell.ring();
                    }
                    return;
                }
                Err(now) => w = now,
            }
        }
    }

    /// Whether an event is pending (a load; for spinning).
    pub fn pending(self) -> bool {
        self.0.load(Ordering::Acquire) & COUNT != 0
    }

    /// Consumes one event if one is pending. Settles the doorbell when this
    /// took the last one while it was rung, or when nothing was pending but
    /// the bell was rung (a lost race): level-triggered pollers must not
    /// see a readable descriptor with nothing behind it.
    pub fn take(self, bell: &dyn Doorbell) -> bool {
        let mut w = self.0.load(Ordering::Acquire);
        loop {
            if w & COUNT == 0 {
                if w & RUNG != 0 {
                    self.settle(bell);
                }
                return false;
            }
            match self
                .0
                .compare_exchange_weak(w, w - 1, Ordering::SeqCst, Ordering::Acquire)
            {
                Ok(_) => {
                    if (w - 1) & COUNT == 0 && w & RUNG != 0 {
                        self.settle(bell);
                    }
                    return true;
                }
                Err(now) => w = now,
            }
        }
    }

    /// With nothing pending: clears `RUNG`, drains the bell, and rings it
    /// again if a post arrived meanwhile (its own ring may have been
    /// drained). Also after a wake-up that found nothing, so a bell rung
    /// by a misbehaving peer cannot keep a sleeper spinning.
    pub fn settle(self, bell: &dyn Doorbell) {
        let mut w = self.0.load(Ordering::Acquire);
        loop {
            if w & COUNT != 0 {
                return;
            }
            if w & RUNG == 0 {
                break;
            }
            match self
                .0
                .compare_exchange_weak(w, w & !RUNG, Ordering::SeqCst, Ordering::Acquire)
            {
                Ok(_) => break,
                Err(now) => w = now,
            }
        }
        bell.drain();
        self.ring_if_pending(bell);
    }

    /// With nothing pending, clears `RUNG` (before a shared doorbell is
    /// drained).
    pub fn quiet(self) {
        let mut w = self.0.load(Ordering::Acquire);
        while w & COUNT == 0 && w & RUNG != 0 {
            match self
                .0
                .compare_exchange_weak(w, w & !RUNG, Ordering::SeqCst, Ordering::Acquire)
            {
                Ok(_) => return,
                Err(now) => w = now,
            }
        }
    }

    /// If anything is pending, sets `RUNG` and returns `true`: the caller
    /// rings (once for a shared doorbell).
    pub fn claim_if_pending(self) -> bool {
        let w = self.0.fetch_or(0, Ordering::SeqCst);
        if w & COUNT == 0 {
            return false;
        }
        self.0.fetch_or(RUNG, Ordering::SeqCst);
        true
    }

    /// Rings the bell if anything is pending (setting `RUNG`), whatever
    /// `RUNG` said: used after a drain and when arming.
    pub fn ring_if_pending(self, bell: &dyn Doorbell) {
        if self.claim_if_pending() {
            bell.ring();
        }
    }

    /// Sets or clears `ARMED`. Arming rings the bell if events are already
    /// pending, so a sleeper or poller that arrives late still wakes.
    pub fn arm(self, on: bool, bell: &dyn Doorbell) {
        if on {
            let w = self.0.fetch_or(ARMED, Ordering::SeqCst);
            if w & COUNT != 0 && w & RUNG == 0 {
                self.ring_if_pending(bell);
            }
        } else {
            self.0.fetch_and(!ARMED, Ordering::SeqCst);
        }
    }

    /// Takes every pending event away (for moving them elsewhere).
    pub fn take_all(self) -> u64 {
        let mut w = self.0.load(Ordering::Acquire);
        loop {
            match self
                .0
                .compare_exchange_weak(w, w & !COUNT, Ordering::SeqCst, Ordering::Acquire)
            {
                Ok(_) => return w & COUNT,
                Err(now) => w = now,
            }
        }
    }

    /// Adds `n` events at once (saturating), ringing as `post` does.
    pub fn add(self, n: u64, bell: &dyn Doorbell) {
        if n == 0 {
            return;
        }
        let mut w = self.0.load(Ordering::Relaxed);
        loop {
            let count = ((w & COUNT) + n).min(COUNT);
            let ring = w & ARMED != 0 && w & RUNG == 0;
            let new = (w & !COUNT) | count | if ring { RUNG } else { 0 };
            match self
                .0
                .compare_exchange_weak(w, new, Ordering::SeqCst, Ordering::Relaxed)
            {
                Ok(_) => {
                    if ring {
                        bell.ring();
                    }
                    return;
                }
                Err(now) => w = now,
            }
        }
    }
}

/// The side of a segment a process waits on, as the wait loop needs it.
pub trait Waitable {
    /// Consumes one pending event, if any.
    fn take(&self) -> bool;
    /// Whether an event seems pending (no system call, for spinning).
    fn pending(&self) -> bool;
    /// Looks for an event up to `rounds` times, taking it if one comes.
    fn spin(&self, rounds: u32) -> bool {
        for _ in 0..rounds {
            if self.pending() && self.take() {
                return true;
            }
            std::hint::spin_loop();
        }
        false
    }
    /// Why waiting is pointless now (`RSMERR_CONN_ABORTED` after a forced
    /// disconnect), checked when nothing is pending.
    fn ended(&self) -> Option<RsmError>;
    /// Counts one sleeper: posts ring the doorbell from now on.
    fn arm(&self) -> RsmResult<()>;
    /// Undoes one `arm`.
    fn disarm(&self);
    /// Sleeps until the doorbell is readable or `timeout_ms` (-1: no
    /// limit) passes; `Ok(true)` if readable.
    fn sleep(&self, timeout_ms: i32) -> RsmResult<bool>;
    /// After a wake-up that found nothing: drain stale doorbells.
    fn settle(&self);
}

/// How long a waiter spins before it sleeps: `RSM_SPIN_US`, else
/// `spin_us` of the config file, else 30 us (about what a blocking
/// wake-up costs on a virtual machine). Read at the first wait.
pub fn spin() -> Duration {
    static SPIN: OnceLock<Duration> = OnceLock::new();
    *SPIN.get_or_init(|| {
        let us = std::env::var("RSM_SPIN_US")
            .ok()
            .and_then(|v| match v.trim().parse::<u64>() {
                Ok(us) => Some(us),
                Err(_) => {
                    crate::why!("RSM_SPIN_US={v:?} is not a number of microseconds; ignored");
                    None
                }
            })
            .or_else(|| crate::config::get().ok().and_then(|c| c.spin_us))
            .unwrap_or(DEFAULT_SPIN_US);
        Duration::from_micros(us)
    })
}

/// Probes between two looks at the clock while spinning.
const SPIN_ROUNDS: u32 = 32;

/// Default spin bound in microseconds.
pub const DEFAULT_SPIN_US: u64 = 30;

/// Disarms when the sleeping part of a wait ends, however it ends.
struct Armed<'a>(&'a dyn Waitable);
impl Drop for Armed<'_> {
    fn drop(&mut self) {
        self.0.disarm();
    }
}

/// `rsm_intr_signal_wait`: consumes one event, waiting up to `timeout_ms`
/// (0: just look; negative: forever); spins for `spin` first.
pub fn wait(w: &dyn Waitable, timeout_ms: i32, spin: Duration) -> RsmResult<()> {
    if w.take() {
        return Ok(());
    }
    if let Some(e) = w.ended() {
        return Err(e);
    }
    if timeout_ms == 0 {
        return Err(RsmError::Timeout);
    }
    let start = Instant::now();
    let deadline = (timeout_ms > 0).then(|| start + Duration::from_millis(timeout_ms as u64));
    let spin_end = start + deadline.map_or(spin, |d| spin.min(d - start));
    // The clock is read through the vDSO: no system call while spinning.
    while Instant::now() < spin_end {
        if w.spin(SPIN_ROUNDS) {
            return Ok(());
        }
        if let Some(e) = w.ended() {
            return Err(e);
        }
    }
    w.arm()?;
    let _armed = Armed(w);
    loop {
        if w.take() {
            return Ok(());
        }
        if let Some(e) = w.ended() {
            return Err(e);
        }
        let left = match deadline {
            None => -1,
            Some(d) => {
                let now = Instant::now();
                if now >= d {
                    return Err(RsmError::Timeout);
                }
                // Round up: a sleep never ends before the deadline.
                let us = (d - now).as_micros();
                i32::try_from(us.div_ceil(1000)).unwrap_or(i32::MAX)
            }
        };
        if w.sleep(left)? {
            if w.take() {
                return Ok(());
            }
            w.settle();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[derive(Default)]
    struct Bell {
        rings: Cell<u32>,
        readable: Cell<bool>,
    }
    impl Doorbell for Bell {
        fn ring(&self) {
            self.rings.set(self.rings.get() + 1);
            self.readable.set(true);
        }
        fn drain(&self) {
            self.readable.set(false);
        }
    }

    #[test]
    fn unarmed_posts_never_ring() {
        let w = AtomicU64::new(0);
        let bell = Bell::default();
        for _ in 0..10 {
            Counter(&w).post(false, &bell);
        }
        assert_eq!(w.load(Ordering::Relaxed) & COUNT, 10);
        assert_eq!(bell.rings.get(), 0);
        for _ in 0..10 {
            assert!(Counter(&w).take(&bell));
        }
        assert!(!Counter(&w).take(&bell));
        assert_eq!(bell.rings.get(), 0);
    }

    #[test]
    fn armed_counter_keeps_the_bell_level_triggered() {
        let w = AtomicU64::new(0);
        let bell = Bell::default();
        Counter(&w).post(false, &bell); // before anyone polls
        Counter(&w).arm(true, &bell);
        assert!(bell.readable.get(), "arming with an event pending rings");
        Counter(&w).post(false, &bell);
        assert_eq!(bell.rings.get(), 1, "already rung: no second ring");
        assert!(Counter(&w).take(&bell));
        assert!(bell.readable.get(), "one still pending");
        assert!(Counter(&w).take(&bell));
        assert!(!bell.readable.get(), "drained with the last event");
        Counter(&w).post(false, &bell);
        assert!(bell.readable.get());
        assert_eq!(bell.rings.get(), 2);
    }

    #[test]
    fn no_accumulate_and_saturation() {
        let w = AtomicU64::new(0);
        let bell = Bell::default();
        for _ in 0..3 {
            Counter(&w).post(true, &bell);
        }
        assert_eq!(w.load(Ordering::Relaxed) & COUNT, 1);
        w.store(COUNT, Ordering::Relaxed);
        Counter(&w).post(false, &bell);
        assert_eq!(
            w.load(Ordering::Relaxed),
            COUNT,
            "no carry out of the field"
        );
        Counter(&w).add(5, &bell);
        assert_eq!(w.load(Ordering::Relaxed), COUNT);
    }

    #[test]
    fn hostile_ring_without_events_is_drained() {
        let w = AtomicU64::new(RUNG | ARMED);
        let bell = Bell::default();
        bell.readable.set(true);
        assert!(!Counter(&w).take(&bell));
        assert!(!bell.readable.get());
        assert_eq!(w.load(Ordering::Relaxed), ARMED);
    }

    #[test]
    fn concurrent_posts_and_takes_balance() {
        struct Null;
        impl Doorbell for Null {
            fn ring(&self) {}
            fn drain(&self) {}
        }
        let w = AtomicU64::new(ARMED);
        let taken = AtomicU64::new(0);
        std::thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| {
                    for _ in 0..100_000 {
                        Counter(&w).post(false, &Null);
                    }
                });
                s.spawn(|| {
                    let mut mine = 0;
                    while mine < 100_000 {
                        if Counter(&w).take(&Null) {
                            mine += 1;
                        }
                    }
                    taken.fetch_add(mine, Ordering::Relaxed);
                });
            }
        });
        assert_eq!(taken.load(Ordering::Relaxed), 200_000);
        assert_eq!(w.load(Ordering::Relaxed) & COUNT, 0);
    }
}
