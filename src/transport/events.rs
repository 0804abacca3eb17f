//! Event counters (spec 4.9) as any transport keeps them: five words in
//! memory both sides map (`Words`), plus a doorbell for whoever has to
//! sleep (DESIGN.md 5.6).
//!
//! `posted` is written by the posting process: the number of events it
//! ever posted (48 bits, wrapping); `extra` counts posts by other
//! processes (a forked child). `flags` holds `ARMED` (someone may be
//! asleep on the doorbell, or the program holds the pollfd and may poll
//! it at any time), `RUNG` (the doorbell has been made readable) and
//! `SLEEPING`. `consumed` is written by consumers: the number of events
//! ever taken. Pending = posted + extra - consumed. Split so a spinning
//! consumer's take does not pull the poster's cache line back: a round
//! trip moves each line as often as a raw shared-flag ping-pong.
//!
//! A post is a plain store to `posted` and a locked add on a line of the
//! poster's own process (`Poster`); it makes a system call only when
//! someone may be asleep. A waiter that spins first claims the next event
//! (`claim`): the event, when it comes, is already its own, and it
//! returns on a plain load, with no locked instruction between the event
//! and the answer. A waiter spins for a bounded time, then
//! sleeps in one of two ways. On a `wakes` word next to the counter (a
//! futex on the same host): it sets `SLEEPING` and sleeps while `wakes`
//! is unchanged; a post that clears `SLEEPING` bumps `wakes` and wakes
//! it. One system call each side, with a timeout, nothing to drain. Or,
//! where one sleep must cover many counters or the program polls, on the
//! doorbell: it arms the counter, and posts ring.
//!
//! `wakes` is a sequence, not a flag, so a sleeper that re-set `SLEEPING`
//! after a post cleared it cannot make another sleep through that post
//! (ABA would need 2^32 wake-ups in between).
//!
//! Invariant, at rest: armed and pending implies the doorbell is readable.
//! Whoever sets `RUNG` rings; whoever takes the last event clears `RUNG`,
//! drains the doorbell and looks again, ringing if a post slipped in.
//! Stale rings only cost a spurious wake-up, never a lost one.
//!
//! The peer can write both words (shared memory), so every value is
//! treated as possibly hostile: arithmetic stays inside its field, and a
//! garbage count only looks like posts the peer could have made anyway.

use crate::error::{RsmError, RsmResult};
use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The count field of `posted`, `extra` and `consumed` (compared modulo
/// 2^48).
pub const COUNT: u64 = (1 << 48) - 1;
/// A difference this large means `consumed` is ahead of the posts read
/// (a poster's stale store, being repaired, or a hostile peer): nothing
/// is pending.
const BEHIND: u64 = 1 << 47;
/// Most events pending at once; a post beyond is dropped. Checked once per
/// 65,536 posts, so the check costs the poster nothing in between.
pub const MAX_PENDING: u64 = 1 << 46;
/// In `flags`: someone may be waiting on the doorbell.
pub const ARMED: u64 = 1 << 0;
/// In `flags`: the doorbell has been rung and not drained since.
pub const RUNG: u64 = 1 << 1;
/// In `flags`: someone may be asleep on the `wakes` word.
pub const SLEEPING: u64 = 1 << 2;
/// Tries a poster makes to leave `posted` equal to its count before it
/// gives up (only a peer scribbling on the word can make it give up).
const PUBLISH_TRIES: u32 = 64;

/// A waiter's claim on the next event of a counter (`Counter::claim`):
/// the event's number.
#[derive(Debug)]
pub struct Ticket(u64);

#[cfg(test)]
thread_local! {
    /// Tests: run once between `unclaim`'s look for the claimed event and
    /// its give-back, to place another thread's steps in that window.
    pub static BEFORE_GIVE_BACK: std::cell::RefCell<Option<Box<dyn FnOnce()>>> =
        const { std::cell::RefCell::new(None) };
}

/// How a sleep on a doorbell ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Woke {
    /// The time was up.
    TimedOut,
    /// The doorbell is readable: take, or settle it if nothing came.
    Rung,
    /// Woken with nothing to drain (a futex, or events already pending).
    Woken,
}

/// What a sleeper waits on: a pipe on the same host, an interrupt or a
/// polled window counter elsewhere.
pub trait Doorbell {
    /// Makes the doorbell readable.
    fn ring(&self);
    /// Makes it unreadable again (reads it empty).
    fn drain(&self);
    /// Wakes whoever sleeps on `wakes` (just bumped).
    fn wake(&self, wakes: &AtomicU32);
}

/// One event counter in shared memory: its five words.
#[derive(Clone, Copy)]
pub struct Counter<'a> {
    posted: &'a AtomicU64,
    extra: &'a AtomicU64,
    consumed: &'a AtomicU64,
    flags: &'a AtomicU64,
    wakes: &'a AtomicU32,
}

/// The words of a counter, where a transport keeps them: `posted` on a
/// cache line of its own with `wakes` (a post that wakes writes both),
/// `flags` and `extra` on another line the poster reads, `consumed` on a
/// third, 128 bytes from the others (adjacent-line prefetch).
pub struct Words<'a> {
    /// Written by the owning poster only.
    pub posted: &'a AtomicU64,
    /// Written by other posters (compare-and-swap).
    pub extra: &'a AtomicU64,
    /// Written by consumers.
    pub consumed: &'a AtomicU64,
    /// `ARMED`, `RUNG`, `SLEEPING`.
    pub flags: &'a AtomicU64,
    /// The futex word sleepers sleep on.
    pub wakes: &'a AtomicU32,
}

/// The posting side of a counter, private to the process that posts on
/// it (the importer for `up`, the exporter for `down`): its threads
/// count here and publish the count to `posted` with a plain store, so a
/// post moves the shared line once, as a raw flag store does, and makes
/// no locked instruction on it. A process that is not the owner (a
/// forked child holding the parent's handle) posts on `extra` instead,
/// with a compare-and-swap, so two processes never store to one word.
pub struct Poster {
    count: AtomicU64,
    owner: u32,
}

impl Poster {
    /// Whether this process owns the counter this poster posts on (and
    /// the process on this side of the channel: its waiters may claim).
    pub fn owned(&self) -> bool {
        self.owner == crate::transport::process::pid()
    }

    /// The poster of a counter that has seen no post, owned by this
    /// process.
    pub fn fresh() -> Poster {
        Poster {
            count: AtomicU64::new(0),
            owner: crate::transport::process::pid(),
        }
    }

    /// The poster of `counter`, owned by this process, going on from the
    /// count it holds.
    pub fn new(counter: Counter<'_>) -> Poster {
        Poster {
            count: AtomicU64::new(counter.posted.load(Ordering::Acquire) & COUNT),
            owner: crate::transport::process::pid(),
        }
    }
}

/// The fence between a post's store to `posted`, already followed by a
/// locked add, and its read of `flags`. On x86-64 the locked instruction
/// is that fence: "reads or writes cannot be reordered with ... locked
/// instructions" (Intel SDM vol. 3A, "Memory Ordering in P6 and More
/// Recent Processor Families"), so the store is visible before `flags` is
/// read; a fence would add a second locked instruction to every post
/// (about 3% of a spinning round trip). Elsewhere the language's fence.
#[inline(always)]
fn after_locked_add() {
    #[cfg(target_arch = "x86_64")]
    std::sync::atomic::compiler_fence(Ordering::SeqCst);
    #[cfg(not(target_arch = "x86_64"))]
    fence(Ordering::SeqCst);
}

/// Events pending between a posted total and a `consumed` value; none
/// when `consumed` is ahead.
fn pending_of(p: u64, c: u64) -> u64 {
    let d = p.wrapping_sub(c) & COUNT;
    if d >= BEHIND {
        0
    } else {
        d
    }
}

impl<'a> Counter<'a> {
    /// The counter made of these words.
    pub fn new(w: Words<'a>) -> Self {
        Counter {
            posted: w.posted,
            extra: w.extra,
            consumed: w.consumed,
            flags: w.flags,
            wakes: w.wakes,
        }
    }

    /// Every event ever posted (`posted` + `extra`, modulo 2^48).
    fn total(self, order: Ordering) -> u64 {
        self.posted.load(order).wrapping_add(self.extra.load(order)) & COUNT
    }

    /// Events pending now.
    pub fn count(self) -> u64 {
        // `consumed` first: the totals read after it are at least as far
        // on (but for a poster's stale store, which `pending_of` reads as
        // nothing pending).
        let c = self.consumed.load(Ordering::SeqCst);
        pending_of(self.total(Ordering::SeqCst), c)
    }

    /// Adds one event. With `no_accumulate`, not if one is pending.
    /// Rings `bell` if the counter is armed and the bell is silent, and
    /// wakes a sleeper.
    ///
    /// The owner's threads store the next number to `posted`, take it
    /// from `poster` (a locked instruction on a line of this process), and
    /// make sure `posted` is left at the latest number: a thread that
    /// stored an older one after a newer one, or one another thread took,
    /// sees the difference and stores the latest. `posted` never runs
    /// ahead of the numbers taken by more than the posts under way. Then a
    /// fence (on x86-64, the locked add), and `flags` is read: the store
    /// and the read are ordered as a sleeper's set of `SLEEPING` (or
    /// `ARMED`) and its read of the counts are, so either the poster sees
    /// the flag or the sleeper sees the event (Dekker).
    pub fn post(self, poster: &Poster, no_accumulate: bool, bell: &dyn Doorbell) {
        if poster.owner != crate::transport::process::pid() {
            self.add_extra(1, no_accumulate, bell);
            return;
        }
        let mut s = poster.count.load(Ordering::Relaxed);
        if no_accumulate || s & 0xFFFF == 0xFFFF {
            // `consumed` is the consumer's line: read it only when needed.
            loop {
                let c = self.consumed.load(Ordering::SeqCst);
                let total = s.wrapping_add(self.extra.load(Ordering::SeqCst));
                let pending = pending_of(total, c);
                if (no_accumulate && pending > 0) || pending >= MAX_PENDING {
                    return;
                }
                match poster.count.compare_exchange_weak(
                    s,
                    s.wrapping_add(1),
                    Ordering::SeqCst,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => break,
                    Err(now) => s = now,
                }
            }
            self.posted
                .store(s.wrapping_add(1) & COUNT, Ordering::Release);
            fence(Ordering::SeqCst);
        } else {
            // The store first, with the number this thread expects to
            // get: the consumer's line starts moving at once, and the
            // locked add that takes the number then serves as the fence.
            // If another thread took that number first, the store was its
            // event (it stores it too), and ours is published below.
            self.posted
                .store(s.wrapping_add(1) & COUNT, Ordering::Release);
            poster.count.fetch_add(1, Ordering::SeqCst);
            after_locked_add();
        }
        // Leave `posted` at the latest number: a thread whose older number
        // landed after a newer one stores the latest again. Every store is
        // followed by a fence before `flags` is read.
        for _ in 0..PUBLISH_TRIES {
            let latest = poster.count.load(Ordering::Relaxed) & COUNT;
            if self.posted.load(Ordering::Relaxed) == latest {
                break;
            }
            self.posted.store(latest, Ordering::Release);
            fence(Ordering::SeqCst);
        }
        let f = self.flags.load(Ordering::Relaxed);
        if f & (ARMED | SLEEPING) != 0 {
            self.alert(bell);
        }
    }

    /// Adds `n` events at once on `extra`, ringing as `post` does: events
    /// moved from elsewhere, and posts by a process other than the owner.
    pub fn add(self, n: u64, bell: &dyn Doorbell) {
        if n > 0 {
            self.add_extra(n.min(MAX_PENDING), false, bell);
        }
    }

    fn add_extra(self, n: u64, no_accumulate: bool, bell: &dyn Doorbell) {
        let mut e = self.extra.load(Ordering::Relaxed);
        loop {
            let c = self.consumed.load(Ordering::SeqCst);
            let total = self.posted.load(Ordering::SeqCst).wrapping_add(e);
            let pending = pending_of(total, c);
            if (no_accumulate && pending > 0) || pending + n > MAX_PENDING {
                return;
            }
            match self.extra.compare_exchange_weak(
                e,
                e.wrapping_add(n) & COUNT,
                Ordering::SeqCst,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(now) => e = now,
            }
        }
        fence(Ordering::SeqCst);
        if self.flags.load(Ordering::Relaxed) & (ARMED | SLEEPING) != 0 {
            self.alert(bell);
        }
    }

    /// After a post found someone waiting: rings the bell if the counter
    /// is armed and the bell silent (the one that sets `RUNG` rings), and
    /// wakes the sleepers if `SLEEPING` was set.
    fn alert(self, bell: &dyn Doorbell) {
        let f = self.flags.load(Ordering::SeqCst);
        if f & ARMED != 0
            && f & RUNG == 0
            && self.flags.fetch_or(RUNG, Ordering::SeqCst) & RUNG == 0
        {
            bell.ring();
        }
        if f & SLEEPING != 0 && self.flags.fetch_and(!SLEEPING, Ordering::SeqCst) & SLEEPING != 0 {
            self.wake_all(bell);
        }
    }

    /// Whether an event is pending (three loads; for spinning).
    pub fn pending(self) -> bool {
        let c = self.consumed.load(Ordering::Relaxed);
        pending_of(self.total(Ordering::Acquire), c) != 0
    }

    /// Claims the next event, when none is pending and no other claim is
    /// out: `consumed` moves one ahead of the posted total, so the event,
    /// when it comes, is already taken by the claimer, and nobody else
    /// sees it pending. The claimer learns it came with plain loads
    /// (`claimed`), and gives the claim back if it stops waiting
    /// (`unclaim`). The locked instruction is paid here, before the event,
    /// not between the event and the wait's return. `None`: take instead.
    ///
    /// A claim is given back before a sleep, so it is only ever out while
    /// a thread spins. A process that dies while it spins with one takes
    /// the next event with it; only processes that own the channel's side
    /// claim (not a forked child), so that event had nobody else to go to.
    pub fn claim(self) -> Option<Ticket> {
        let c = self.consumed.load(Ordering::SeqCst);
        if self.total(Ordering::SeqCst) != c {
            return None;
        }
        self.consumed
            .compare_exchange(
                c,
                c.wrapping_add(1) & COUNT,
                Ordering::SeqCst,
                Ordering::Relaxed,
            )
            .ok()
            .map(|_| Ticket(c))
    }

    /// Whether the claimed event has come (plain loads). When it has, the
    /// doorbell is settled if it was rung, as `take` does for the last
    /// event.
    pub fn claimed(self, t: &Ticket, bell: &dyn Doorbell) -> bool {
        if pending_of(self.total(Ordering::Acquire), t.0) == 0 {
            return false;
        }
        if self.flags.load(Ordering::Relaxed) & RUNG != 0 {
            self.settle(bell);
        }
        true
    }

    /// Gives a claim back. `true` if the event came first: it is the
    /// caller's (taken).
    ///
    /// Nobody but the claimer moves `consumed` from one ahead of the
    /// ticket while the claimed event has not come: a take or `take_all`
    /// needs events beyond it, another claim needs it come. So a give-back
    /// that finds `consumed` moved on means the event came, whatever
    /// `posted` reads now: a poster thread's late store of an older number
    /// can make it read behind for a moment, and a claimer that trusted
    /// that read gave up an event the others had passed (lost). Found
    /// further back, `consumed` was scribbled by the peer: the claim goes
    /// with it.
    pub fn unclaim(self, t: Ticket, bell: &dyn Doorbell) -> bool {
        if self.claimed(&t, bell) {
            return true;
        }
        #[cfg(test)]
        if let Some(between) = BEFORE_GIVE_BACK.with(|h| h.borrow_mut().take()) {
            between();
        }
        let ahead = t.0.wrapping_add(1) & COUNT;
        match self
            .consumed
            .compare_exchange(ahead, t.0, Ordering::SeqCst, Ordering::SeqCst)
        {
            Ok(_) => false,
            Err(now) if pending_of(now, ahead) == 0 => false,
            Err(_) => {
                if self.flags.load(Ordering::Relaxed) & RUNG != 0 {
                    self.settle(bell);
                }
                true
            }
        }
    }

    /// Consumes one event if one is pending. Settles the doorbell when this
    /// took the last one while it was rung, or when nothing was pending but
    /// the bell was rung (a lost race): level-triggered pollers must not
    /// see a readable descriptor with nothing behind it.
    pub fn take(self, bell: &dyn Doorbell) -> bool {
        let mut c = self.consumed.load(Ordering::Acquire);
        loop {
            let n = pending_of(self.total(Ordering::SeqCst), c);
            if n == 0 {
                if self.flags.load(Ordering::Relaxed) & RUNG != 0 {
                    self.settle(bell);
                }
                return false;
            }
            match self.consumed.compare_exchange_weak(
                c,
                c.wrapping_add(1) & COUNT,
                Ordering::SeqCst,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    if n == 1 && self.flags.load(Ordering::Relaxed) & RUNG != 0 {
                        self.settle(bell);
                    }
                    return true;
                }
                Err(now) => c = now,
            }
        }
    }

    /// With nothing pending: clears `RUNG`, drains the bell, and rings it
    /// again if a post arrived meanwhile (its own ring may have been
    /// drained). Also after a wake-up that found nothing, so a bell rung
    /// by a misbehaving peer cannot keep a sleeper spinning.
    pub fn settle(self, bell: &dyn Doorbell) {
        if !self.quiet() {
            return;
        }
        bell.drain();
        self.ring_if_pending(bell);
    }

    /// With nothing pending, clears `RUNG` (before a doorbell is drained)
    /// and returns `true`; `false` if events are pending. A post that
    /// comes after the look and saw `RUNG` still set did not ring: the
    /// caller's `ring_if_pending` after the drain finds it.
    pub fn quiet(self) -> bool {
        if self.count() != 0 {
            return false;
        }
        self.flags.fetch_and(!RUNG, Ordering::SeqCst);
        true
    }

    /// If anything is pending, sets `RUNG` and returns `true`: the caller
    /// rings (once for a shared doorbell).
    pub fn claim_if_pending(self) -> bool {
        // Orders a `RUNG` cleared or `ARMED` set before against the
        // counts read now (the other half of `post`'s fence).
        fence(Ordering::SeqCst);
        if self.count() == 0 {
            return false;
        }
        self.flags.fetch_or(RUNG, Ordering::SeqCst);
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
            let f = self.flags.fetch_or(ARMED, Ordering::SeqCst);
            if f & RUNG == 0 {
                self.ring_if_pending(bell);
            }
        } else {
            self.flags.fetch_and(!ARMED, Ordering::SeqCst);
        }
    }

    /// Before a sleep on `wakes`: returns its value for the sleep, then
    /// sets `SLEEPING`. The caller looks for events after this and sleeps
    /// only if none, while `wakes` still has the value returned.
    pub fn prepare_sleep(self) -> u32 {
        let seen = self.wakes.load(Ordering::SeqCst);
        self.flags.fetch_or(SLEEPING, Ordering::SeqCst);
        // The caller's look at the counts comes after this (see `post`).
        fence(Ordering::SeqCst);
        seen
    }

    /// Wakes every sleeper on `wakes` (a post; also a forced disconnect or
    /// a change in what the sleeper should sleep on).
    pub fn wake_all(self, bell: &dyn Doorbell) {
        self.wakes.fetch_add(1, Ordering::SeqCst);
        bell.wake(self.wakes);
    }

    /// The word sleepers sleep on.
    pub fn wakes(self) -> &'a AtomicU32 {
        self.wakes
    }

    /// Takes every pending event away (for moving them elsewhere).
    pub fn take_all(self) -> u64 {
        let mut c = self.consumed.load(Ordering::Acquire);
        loop {
            let n = pending_of(self.total(Ordering::SeqCst), c);
            match self.consumed.compare_exchange_weak(
                c,
                c.wrapping_add(n) & COUNT,
                Ordering::SeqCst,
                Ordering::Acquire,
            ) {
                Ok(_) => return n,
                Err(now) => c = now,
            }
        }
    }
}

/// A counter in this process's own memory (events of importers that left,
/// or of an import aborted with events pending): the same protocol.
#[derive(Default)]
pub struct LocalCounter {
    posted: AtomicU64,
    extra: AtomicU64,
    consumed: AtomicU64,
    flags: AtomicU64,
    wakes: AtomicU32,
}

impl LocalCounter {
    /// As an events counter.
    pub fn counter(&self) -> Counter<'_> {
        Counter::new(Words {
            posted: &self.posted,
            extra: &self.extra,
            consumed: &self.consumed,
            flags: &self.flags,
            wakes: &self.wakes,
        })
    }
}

/// The side of a segment a process waits on, as the wait loop needs it.
pub trait Waitable {
    /// What a spinning waiter holds while it has claimed the next event
    /// (`Counter::claim`): the ticket, and what keeps its counter alive.
    type Claim;
    /// Claims the next event for a spin, if this side can (one counter to
    /// wait on, owned by this process, nothing pending); `None`: spin
    /// with `pending` and `take`.
    fn claim(&self) -> Option<Self::Claim> {
        None
    }
    /// Looks up to `rounds` times for the claimed event: `Some(true)` it
    /// came (taken), `Some(false)` not yet, `None` the claim should be
    /// given back (events came elsewhere, or what it was on changed).
    fn spin_claimed(&self, _claim: &Self::Claim, _rounds: u32) -> Option<bool> {
        None
    }
    /// Gives a claim back; `true` if the event came first (taken).
    fn unclaim(&self, _claim: Self::Claim) -> bool {
        false
    }
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
    /// Sleeps until an event may be pending or `timeout_ms` (-1: no
    /// limit) passes: on a `wakes` word (`Counter::prepare_sleep`), or
    /// with the counters armed for that one sleep, on the doorbell.
    fn sleep(&self, timeout_ms: i32) -> RsmResult<Woke>;
    /// After a wake-up that found nothing: drain stale doorbells.
    fn settle(&self);
}

/// How long a waiter spins before it sleeps: `RSM_SPIN_US`, else
/// `spin_us` of the config file, else 30 us (about what a blocking
/// wake-up costs on a virtual machine). Read at the first wait. A
/// malformed `RSM_SPIN_US` is a configuration error, as a malformed
/// config value is: every wait returns `RSMERR_BAD_CONF`, and
/// `RSM_DEBUG` says why.
pub fn spin() -> RsmResult<Duration> {
    static SPIN: OnceLock<RsmResult<Duration>> = OnceLock::new();
    *SPIN.get_or_init(|| {
        let env = std::env::var_os("RSM_SPIN_US").map(|v| v.to_string_lossy().into_owned());
        let file = crate::config::get().ok().and_then(|c| c.spin_us);
        spin_us(env.as_deref(), file)
            .map(Duration::from_micros)
            .map_err(|msg| {
                crate::why!("config: {msg}");
                RsmError::BadConf
            })
    })
}

/// The spin bound in microseconds from `RSM_SPIN_US` (if set) and the
/// config file's `spin_us` (if set).
fn spin_us(env: Option<&str>, file: Option<u64>) -> Result<u64, String> {
    match env {
        Some(v) => v
            .trim()
            .parse::<u64>()
            .map_err(|_| format!("RSM_SPIN_US={v:?}: not a number of microseconds")),
        None => Ok(file.unwrap_or(DEFAULT_SPIN_US)),
    }
}

/// `rsm_intr_signal_wait` with timeout 0 on a transport's side: one
/// event if pending, else why waiting is pointless, else (a wake-up that
/// found nothing) the doorbells are settled and `false`.
pub fn take_now<W: Waitable + ?Sized>(w: &W) -> RsmResult<bool> {
    if w.take() {
        return Ok(true);
    }
    match ended(w) {
        Some(Ok(())) => Ok(true),
        Some(Err(e)) => Err(e),
        None => {
            w.settle();
            Ok(false)
        }
    }
}

/// After a look that found no event: `None` to wait on, else how the
/// wait ends. An event the peer posted just before the end of the
/// connection (its forced disconnect) can land between that look and the
/// look at the end; the end came after it, so one more take, after the
/// end is seen, finds it: events before the end are delivered first. (A
/// segment destroyed under its own waiters just sends them away.)
fn ended<W: Waitable + ?Sized>(w: &W) -> Option<RsmResult<()>> {
    let e = w.ended()?;
    Some(if e == RsmError::ConnAborted && w.take() {
        Ok(())
    } else {
        Err(e)
    })
}

/// Probes between two looks at the clock while spinning.
const SPIN_ROUNDS: u32 = 32;

/// Default spin bound in microseconds.
pub const DEFAULT_SPIN_US: u64 = 30;

/// One batch of probes while spinning: on the claimed event if there is a
/// claim (given back if `spin_claimed` says so), else with takes.
fn probe<W: Waitable + ?Sized>(w: &W, claim: &mut Option<W::Claim>) -> bool {
    if let Some(c) = claim {
        match w.spin_claimed(c, SPIN_ROUNDS) {
            Some(got) => return got,
            None => {
                if claim.take().is_some_and(|c| w.unclaim(c)) {
                    return true;
                }
            }
        }
    }
    w.spin(SPIN_ROUNDS)
}

/// Ends a spin: gives the claim back, if any; `true` if its event came.
fn end_spin<W: Waitable + ?Sized>(w: &W, claim: &mut Option<W::Claim>) -> bool {
    claim.take().is_some_and(|c| w.unclaim(c))
}

/// `rsm_intr_signal_wait`: consumes one event, waiting up to `timeout_ms`
/// (0: just look; negative: forever); spins for `spin` first, holding a
/// claim on the next event where the side allows one.
pub fn wait<W: Waitable + ?Sized>(w: &W, timeout_ms: i32, spin: Duration) -> RsmResult<()> {
    if w.take() {
        return Ok(());
    }
    if let Some(r) = ended(w) {
        return r;
    }
    if timeout_ms == 0 {
        return Err(RsmError::Timeout);
    }
    let mut start = None;
    if !spin.is_zero() {
        let mut claim = w.claim();
        // One batch of probes before the first look at the clock: a peer
        // that answers within it (a ping-pong) costs no clock read at all.
        if probe(w, &mut claim) {
            return Ok(());
        }
        let now = *start.insert(Instant::now());
        let spin_end = if timeout_ms > 0 {
            now + spin.min(Duration::from_millis(timeout_ms as u64))
        } else {
            now + spin
        };
        // The clock is read through the vDSO: no system call while
        // spinning.
        while Instant::now() < spin_end {
            if probe(w, &mut claim) {
                return Ok(());
            }
            if w.ended().is_some() {
                // The claim first (given back, its event may be pending).
                if end_spin(w, &mut claim) {
                    return Ok(());
                }
                if let Some(r) = ended(w) {
                    return r;
                }
            }
        }
        // Never asleep with a claim: a post wakes sleepers by the pending
        // count, which a claim hides.
        if end_spin(w, &mut claim) {
            return Ok(());
        }
    }
    let start = start.unwrap_or_else(Instant::now);
    let deadline = (timeout_ms > 0).then(|| start + Duration::from_millis(timeout_ms as u64));
    loop {
        if w.take() {
            return Ok(());
        }
        if let Some(r) = ended(w) {
            return r;
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
        match w.sleep(left)? {
            Woke::TimedOut | Woke::Woken => {}
            Woke::Rung => {
                if w.take() {
                    return Ok(());
                }
                w.settle();
            }
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
        wakes: Cell<u32>,
    }
    impl Doorbell for Bell {
        fn ring(&self) {
            self.rings.set(self.rings.get() + 1);
            self.readable.set(true);
        }
        fn drain(&self) {
            self.readable.set(false);
        }
        fn wake(&self, _: &AtomicU32) {
            self.wakes.set(self.wakes.get() + 1);
        }
    }

    /// A doorbell that does nothing (sleepers poll `wakes`).
    struct Null;
    impl Doorbell for Null {
        fn ring(&self) {}
        fn drain(&self) {}
        fn wake(&self, _: &AtomicU32) {}
    }

    /// A counter's words, and the owner's poster.
    struct W {
        words: LocalCounter,
        poster: Poster,
    }
    impl Default for W {
        fn default() -> Self {
            W {
                words: LocalCounter::default(),
                poster: Poster::fresh(),
            }
        }
    }
    impl W {
        fn c(&self) -> Counter<'_> {
            self.words.counter()
        }
        fn post(&self, no_accumulate: bool, bell: &dyn Doorbell) {
            self.c().post(&self.poster, no_accumulate, bell);
        }
        fn pending(&self) -> u64 {
            self.c().count()
        }
        fn flags(&self) -> u64 {
            self.words.flags.load(Ordering::SeqCst)
        }
    }

    #[test]
    fn spin_bound_from_the_environment_or_the_file() {
        assert_eq!(spin_us(None, None), Ok(DEFAULT_SPIN_US));
        assert_eq!(spin_us(None, Some(0)), Ok(0));
        assert_eq!(
            spin_us(Some(" 200 "), Some(5)),
            Ok(200),
            "the variable wins"
        );
        for bad in ["", "30us", "-1", "1e3", "99999999999999999999999"] {
            assert!(spin_us(Some(bad), Some(5)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn unarmed_posts_never_ring() {
        let w = W::default();
        let bell = Bell::default();
        for _ in 0..10 {
            w.post(false, &bell);
        }
        assert_eq!(w.pending(), 10);
        assert_eq!(bell.rings.get(), 0);
        for _ in 0..10 {
            assert!(w.c().take(&bell));
        }
        assert!(!w.c().take(&bell));
        assert_eq!(bell.rings.get(), 0);
    }

    #[test]
    fn armed_counter_keeps_the_bell_level_triggered() {
        let w = W::default();
        let bell = Bell::default();
        w.post(false, &bell); // before anyone polls
        w.c().arm(true, &bell);
        assert!(bell.readable.get(), "arming with an event pending rings");
        w.post(false, &bell);
        assert_eq!(bell.rings.get(), 1, "already rung: no second ring");
        assert!(w.c().take(&bell));
        assert!(bell.readable.get(), "one still pending");
        assert!(w.c().take(&bell));
        assert!(!bell.readable.get(), "drained with the last event");
        w.post(false, &bell);
        assert!(bell.readable.get());
        assert_eq!(bell.rings.get(), 2);
        // Posts by another process (on `extra`) ring the same way.
        assert!(w.c().take(&bell));
        assert!(!bell.readable.get());
        w.c().add(1, &bell);
        assert!(bell.readable.get());
        assert_eq!(bell.rings.get(), 3);
    }

    #[test]
    fn no_accumulate_saturation_and_wrapping() {
        let w = W::default();
        let bell = Bell::default();
        for _ in 0..3 {
            w.post(true, &bell);
        }
        assert_eq!(w.pending(), 1);
        // Near the top of the field, and across its wrap.
        let w = W {
            words: LocalCounter::default(),
            poster: Poster {
                count: AtomicU64::new(COUNT - 1),
                owner: crate::transport::process::pid(),
            },
        };
        w.words.posted.store(COUNT - 1, Ordering::Relaxed);
        w.words.consumed.store(COUNT - 3, Ordering::Relaxed);
        for _ in 0..4 {
            w.post(false, &bell);
        }
        assert_eq!(w.pending(), 6, "counts wrap inside their field");
        assert_eq!(w.words.posted.load(Ordering::Relaxed), 2, "no carry out");
        while w.c().take(&bell) {}
        assert_eq!(w.pending(), 0);
        // At the limit a post is dropped, not wrapped to zero pending.
        // Low 16 bits all ones: the post checks the limit.
        let top = (3 << 46) | 0xFFFF;
        let w = W {
            words: LocalCounter::default(),
            poster: Poster {
                count: AtomicU64::new(top),
                owner: crate::transport::process::pid(),
            },
        };
        w.words.posted.store(top, Ordering::Relaxed);
        w.words
            .consumed
            .store(top - (MAX_PENDING - 1), Ordering::Relaxed);
        w.post(false, &bell);
        assert_eq!(w.pending(), MAX_PENDING, "the last one that fits");
        let top = top + (1 << 16);
        w.poster.count.store(top, Ordering::Relaxed);
        w.words.posted.store(top, Ordering::Relaxed);
        w.words.consumed.store(top - MAX_PENDING, Ordering::Relaxed);
        w.post(false, &bell);
        assert_eq!(w.pending(), MAX_PENDING, "over the limit: dropped");
        w.c().add(5, &bell);
        assert_eq!(w.pending(), MAX_PENDING);
        assert_eq!(w.c().take_all(), MAX_PENDING);
        assert_eq!(w.pending(), 0);
    }

    /// A consumer ahead of `posted` (a poster's store being repaired, or
    /// a peer's scribble) sees nothing pending, never 2^48 events.
    #[test]
    fn consumed_ahead_means_nothing_pending() {
        let w = W::default();
        w.words.posted.store(5, Ordering::Relaxed);
        w.words.consumed.store(6, Ordering::Relaxed);
        assert_eq!(w.pending(), 0);
        assert!(!w.c().take(&Null));
        assert_eq!(w.c().take_all(), 0);
        assert_eq!(w.words.consumed.load(Ordering::Relaxed), 6);
    }

    /// A claim takes the next event before it comes: nobody else sees it
    /// pending, and the claimer finds it with loads.
    #[test]
    fn a_claimed_event_is_the_claimers() {
        let w = W::default();
        let bell = Bell::default();
        let t = w.c().claim().expect("nothing pending: claims");
        assert!(w.c().claim().is_none(), "one claim out at a time");
        assert!(!w.c().claimed(&t, &bell));
        w.post(false, &bell);
        assert_eq!(w.pending(), 0, "the claimer's, not pending");
        assert!(!w.c().take(&bell), "nobody else takes it");
        assert!(w.c().claimed(&t, &bell));
        // The next event is anybody's again.
        w.post(false, &bell);
        assert_eq!(w.pending(), 1);
        assert!(w.c().claim().is_none(), "events pending: take instead");
        assert!(w.c().take(&bell));
        assert_eq!(w.pending(), 0);
    }

    /// A claim given back before its event leaves the count as it was; one
    /// given back after its event came takes it.
    #[test]
    fn unclaim_gives_back_or_takes() {
        let w = W::default();
        let t = w.c().claim().unwrap();
        assert!(!w.c().unclaim(t, &Null), "nothing came: given back");
        w.post(false, &Null);
        assert_eq!(w.pending(), 1, "the event after a give-back is pending");
        assert!(w.c().take(&Null));
        let t = w.c().claim().unwrap();
        w.post(false, &Null);
        w.post(false, &Null);
        // Another consumer takes the second event meanwhile.
        assert!(w.c().take(&Null));
        assert!(w.c().unclaim(t, &Null), "the first event came: it is ours");
        assert_eq!(w.pending(), 0);
        assert!(!w.c().take(&Null));
    }

    /// A post with `no_accumulate` goes through while a claim is out
    /// (nothing is pending: somebody waits), and the claimed event, once
    /// come, does not block the next one.
    #[test]
    fn no_accumulate_with_a_claim_out() {
        let w = W::default();
        let t = w.c().claim().unwrap();
        w.post(true, &Null);
        assert!(w.c().claimed(&t, &Null));
        w.post(true, &Null);
        w.post(true, &Null);
        assert_eq!(w.pending(), 1);
    }

    /// The claimed event settles a rung doorbell, as the last take does: a
    /// level-triggered poller must not see it readable with nothing behind.
    #[test]
    fn a_claimed_event_settles_the_doorbell() {
        let w = W::default();
        let bell = Bell::default();
        w.c().arm(true, &bell);
        let t = w.c().claim().unwrap();
        w.post(false, &bell);
        assert!(bell.readable.get(), "an armed counter rings at a post");
        assert!(w.c().claimed(&t, &bell));
        assert!(!bell.readable.get(), "drained: nothing is pending");
        w.post(false, &bell);
        assert!(bell.readable.get(), "the next event rings again");
    }

    /// `posted` can read behind for a moment: a poster thread whose store
    /// of an older number lands after newer ones (it repairs it after
    /// taking its number). A claimer giving back then does not see its
    /// event, but `consumed` moved on past it: only a consumer that saw
    /// it come moves `consumed` on, so it is the claimer's, not lost.
    #[test]
    fn a_claim_others_passed_is_kept_over_a_stale_posted() {
        let w = W::default();
        w.post(false, &Null);
        assert!(w.c().take(&Null));
        let t = w.c().claim().unwrap(); // the second event is ours
                                        // Two more events published (two poster threads), and another
                                        // waiter takes the third.
        w.words.posted.store(3, Ordering::Relaxed);
        assert!(w.c().take(&Null));
        // A third poster thread, which read the count before the first
        // event, stores its stale number now (then takes its number, 4).
        w.words.posted.store(1, Ordering::Relaxed);
        assert!(w.c().unclaim(t, &Null), "the second event came: ours");
        w.words.posted.store(4, Ordering::Relaxed);
        assert_eq!(w.pending(), 1, "the fourth is pending, nothing else");
    }

    /// A peer scribbling on `consumed` while a claim is out cannot make
    /// the claimer spin for ever giving it back: moved on, it reads as
    /// the event come (a post the peer could have made); moved back, the
    /// claim is lost with the scribble.
    #[test]
    fn unclaim_survives_a_scribbled_counter() {
        let w = W::default();
        let t = w.c().claim().unwrap();
        w.words.consumed.store(1000, Ordering::Relaxed);
        assert!(w.c().unclaim(t, &Null));
        w.words.consumed.store(1000, Ordering::Relaxed);
        w.words.posted.store(1000, Ordering::Relaxed);
        let t = w.c().claim().unwrap();
        w.words.consumed.store(5, Ordering::Relaxed);
        assert!(!w.c().unclaim(t, &Null));
    }

    /// A side whose peer posts one last event and then ends the
    /// connection: the event lands after the wait's last look for one and
    /// before its look at the end (with a claim: just before the claim is
    /// given back, so it is pending again). The end is a message the
    /// event preceded, so a waiter that sees the end can see the event.
    struct Ending {
        w: std::sync::Arc<W>,
        claims: bool,
        /// The look at the end that first sees it (the first is before
        /// any spin).
        at: u32,
        looks: std::cell::Cell<u32>,
    }
    impl Waitable for Ending {
        type Claim = Ticket;
        fn claim(&self) -> Option<Ticket> {
            self.claims.then(|| self.w.c().claim()).flatten()
        }
        fn spin_claimed(&self, t: &Ticket, _: u32) -> Option<bool> {
            Some(self.w.c().claimed(t, &Null))
        }
        fn unclaim(&self, t: Ticket) -> bool {
            self.w.c().unclaim(t, &Null)
        }
        fn take(&self) -> bool {
            self.w.c().take(&Null)
        }
        fn pending(&self) -> bool {
            self.w.c().pending()
        }
        fn ended(&self) -> Option<RsmError> {
            self.looks.set(self.looks.get() + 1);
            if self.looks.get() < self.at {
                return None;
            }
            if self.looks.get() == self.at {
                if self.claims {
                    let w = std::sync::Arc::clone(&self.w);
                    BEFORE_GIVE_BACK
                        .with(|h| *h.borrow_mut() = Some(Box::new(move || w.post(false, &Null))));
                } else {
                    self.w.post(false, &Null);
                }
            }
            Some(RsmError::ConnAborted)
        }
        fn sleep(&self, _: i32) -> RsmResult<Woke> {
            Ok(Woke::Woken)
        }
        fn settle(&self) {}
    }

    /// Events that came before a forced disconnect are delivered first,
    /// however the wait was looking when it came: right away, spinning
    /// with takes, or spinning with a claim. The spin is long and the wait
    /// untimed, so the second look at the end is in the spin loop however
    /// slowly the test runs (Miri); the fake side ends it there.
    #[test]
    fn the_last_event_comes_before_the_end() {
        for (claims, spin, at) in [(false, 0, 1), (false, 60, 2), (true, 60, 2)] {
            let e = Ending {
                w: Default::default(),
                claims,
                at,
                looks: Default::default(),
            };
            let spin = Duration::from_secs(spin);
            assert_eq!(wait(&e, -1, spin), Ok(()), "claims {claims}, spin {spin:?}");
            assert_eq!(wait(&e, -1, spin), Err(RsmError::ConnAborted));
            assert_eq!(e.w.pending(), 0);
        }
    }

    #[test]
    fn hostile_ring_without_events_is_drained() {
        let w = W::default();
        w.words.flags.store(RUNG | ARMED, Ordering::Relaxed);
        w.words.posted.store(7, Ordering::Relaxed);
        w.words.consumed.store(7, Ordering::Relaxed);
        let bell = Bell::default();
        bell.readable.set(true);
        assert!(!w.c().take(&bell));
        assert!(!bell.readable.get());
        assert_eq!(w.flags(), ARMED);
    }

    /// The owner keeps posting on `posted` whatever a peer stored there.
    #[test]
    fn the_owner_restores_its_count_over_a_scribble() {
        let w = W::default();
        w.post(false, &Null);
        w.words.posted.store(1000, Ordering::Relaxed);
        w.post(false, &Null);
        assert_eq!(w.words.posted.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn only_a_post_to_a_sleeper_wakes_and_each_wakes_once() {
        let w = W::default();
        let bell = Bell::default();
        w.post(false, &bell);
        assert_eq!(bell.wakes.get(), 0, "nobody asleep: no wake-up");
        assert!(w.c().take(&bell));
        let seen = w.c().prepare_sleep();
        assert_eq!(seen, 0);
        w.post(false, &bell);
        assert_eq!(bell.wakes.get(), 1);
        assert_ne!(
            w.words.wakes.load(Ordering::Relaxed),
            seen,
            "the sleep ends"
        );
        w.post(false, &bell);
        assert_eq!(bell.wakes.get(), 1, "SLEEPING was cleared by the first");
        assert_eq!(w.flags() & SLEEPING, 0);
        assert_eq!(w.pending(), 2);
    }

    /// Two sleepers that re-arm in between (the ABA case), and posts from
    /// two threads of the owner and from another process (`extra`):
    /// nobody sleeps through a post; the test ends itself.
    #[test]
    fn sleepers_never_miss_a_post() {
        let w = W::default();
        const N: u64 = 100_000;
        let taken = AtomicU64::new(0);
        std::thread::scope(|s| {
            s.spawn(|| {
                for _ in 0..N / 2 {
                    w.post(false, &Null);
                }
            });
            s.spawn(|| {
                for i in 0..N / 2 {
                    if i % 16 == 0 {
                        w.c().add(1, &Null);
                    } else {
                        w.post(false, &Null);
                    }
                }
            });
            for _ in 0..2 {
                s.spawn(|| loop {
                    if taken.load(Ordering::SeqCst) >= N {
                        return;
                    }
                    if w.c().take(&Null) {
                        taken.fetch_add(1, Ordering::SeqCst);
                        continue;
                    }
                    let seen = w.c().prepare_sleep();
                    if w.c().pending() || taken.load(Ordering::SeqCst) >= N {
                        continue;
                    }
                    // "Sleep" while `wakes` is unchanged; a lost wake-up
                    // is a sleep no later post ends.
                    let mut spins = 0u64;
                    while w.words.wakes.load(Ordering::SeqCst) == seen {
                        if taken.load(Ordering::SeqCst) >= N {
                            return;
                        }
                        spins += 1;
                        assert!(
                            spins < 1 << 34 || w.pending() == 0,
                            "asleep with events pending"
                        );
                        std::hint::spin_loop();
                    }
                });
            }
        });
        assert_eq!(taken.load(Ordering::SeqCst), N);
    }

    /// Posters on several threads of the owner (publishing through one
    /// `Poster`), one on `extra`, takers and a claimer: every event taken
    /// once.
    #[test]
    fn concurrent_posts_and_takes_balance() {
        let w = W::default();
        w.words.flags.store(ARMED, Ordering::Relaxed);
        let taken = AtomicU64::new(0);
        let posters_left = std::sync::atomic::AtomicUsize::new(3);
        std::thread::scope(|s| {
            for k in 0..3 {
                let w = &w;
                let posters_left = &posters_left;
                s.spawn(move || {
                    for _ in 0..100_000 {
                        if k == 2 {
                            w.c().add(1, &Null);
                        } else {
                            w.post(false, &Null);
                        }
                    }
                    posters_left.fetch_sub(1, Ordering::SeqCst);
                });
            }
            for k in 0..3 {
                let (w, taken, posters_left) = (&w, &taken, &posters_left);
                s.spawn(move || {
                    // Until the posters are done and nothing is left: a
                    // lost post fails the test below instead of hanging it.
                    // The third consumer claims, spins a little and gives
                    // back, as a spinning waiter does.
                    let mut mine = 0;
                    loop {
                        if k == 2 {
                            if let Some(t) = w.c().claim() {
                                let got = (0..20).any(|_| w.c().claimed(&t, &Null));
                                if got || w.c().unclaim(t, &Null) {
                                    mine += 1;
                                    continue;
                                }
                            }
                        }
                        if w.c().take(&Null) {
                            mine += 1;
                        } else if posters_left.load(Ordering::SeqCst) == 0 && w.c().count() == 0 {
                            break;
                        }
                    }
                    taken.fetch_add(mine, Ordering::Relaxed);
                });
            }
        });
        assert_eq!(
            taken.load(Ordering::Relaxed),
            300_000,
            "posts lost or taken twice"
        );
        assert_eq!(w.pending(), 0);
        assert_eq!(
            w.words.posted.load(Ordering::Relaxed),
            200_000,
            "posted left at the latest count"
        );
    }
}
