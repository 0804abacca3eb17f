//! The window agent: one thread per process and window controller. Every
//! heartbeat period it beats (its process entry and the node's header),
//! looks at every heartbeat it can reach, and tidies its node's window
//! (dead processes, drained segments, republished ACLs). In between it
//! polls, backing off from `MIN_POLL` to a ceiling that depends on what
//! is going on: import slots of its node's window (connect requests to
//! answer, importers that left), its imports (an exporter that
//! unpublished, destroyed, or stopped beating), and the event counters
//! of the segments someone waits on or polls (it rings their doorbell).
//!
//! There is no interrupt across a window here (real doorbells are phase
//! 2: an NTB driver's or ivshmem's, as an eventfd), so polling is the
//! price: a connect waits up to `MAX_POLL_PUBLISHED` for the exporter's
//! answer, a sleeping waiter up to `MAX_POLL_WAITING` after a post.

use super::export::WinExport;
use super::import::WinImport;
use super::layout::{self, Window};
use super::memory::Bell;
use super::Net;
use crate::error::{RsmError, RsmResult};
use crate::transport::events::{Doorbell, Woke};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// Shortest poll interval, after anything happened.
const MIN_POLL: Duration = Duration::from_micros(20);
/// Longest, while a thread waits for a signal or a pollfd is held.
const MAX_POLL_WAITING: Duration = Duration::from_millis(1);
/// Longest, while a segment is published or imported (connects to
/// answer, aborts to notice).
const MAX_POLL_PUBLISHED: Duration = Duration::from_millis(5);
/// The agent's stack.
const AGENT_STACK: usize = 256 * 1024;

/// Starts the agent of `net`.
pub fn start(net: &Arc<Net>) -> RsmResult<()> {
    let weak = Arc::downgrade(net);
    let kick = Arc::clone(&net.kick);
    crate::transport::spawn_started("rsm-window", AGENT_STACK, move || run(weak, kick))
}

fn run(weak: Weak<Net>, kick: Arc<super::Kick>) {
    let mut interval = MIN_POLL;
    let mut next_beat = Instant::now();
    let mut claimed: HashMap<usize, u32> = HashMap::new();
    loop {
        // A strong reference only while working: when the program lets go
        // of the controller, the net drops and this thread ends.
        let Some(net) = weak.upgrade() else {
            return;
        };
        let now = Instant::now();
        let tick = now >= next_beat;
        if tick {
            net.beat();
            net.look();
            // Late (a stopped process, a busy machine): no burst of beats.
            next_beat = (next_beat + net.period()).max(now + net.period() / 2);
        }
        let busy = poll(&net, tick, &mut claimed);
        let ceiling = ceiling(&net);
        interval = if busy {
            MIN_POLL
        } else {
            (interval * 2).min(ceiling)
        };
        let nap = interval.min(next_beat.saturating_duration_since(Instant::now()));
        drop(net);
        if kick.nap(nap) {
            interval = MIN_POLL;
        }
    }
}

/// How long the agent may sleep between polls now.
fn ceiling(net: &Net) -> Duration {
    let exports: Vec<Arc<WinExport>> = net
        .exports
        .lock()
        .values()
        .filter_map(Weak::upgrade)
        .collect();
    let imports: Vec<Arc<WinImport>> = net
        .imports
        .lock()
        .iter()
        .filter_map(Weak::upgrade)
        .collect();
    if exports.iter().any(|x| x.wake.wanted()) || imports.iter().any(|i| i.wake.wanted()) {
        MAX_POLL_WAITING
    } else if !imports.is_empty() || exports.iter().any(|x| x.published()) {
        MAX_POLL_PUBLISHED
    } else {
        net.period()
    }
}

/// One round of polling; `tick` adds the once-per-period work. Returns
/// whether anything happened (the next poll comes sooner).
fn poll(net: &Arc<Net>, tick: bool, claimed: &mut HashMap<usize, u32>) -> bool {
    let mut busy = false;
    let exports: HashMap<usize, Arc<WinExport>> = {
        let mut map = net.exports.lock();
        map.retain(|_, w| w.strong_count() > 0);
        map.iter()
            .filter_map(|(&i, w)| w.upgrade().map(|x| (i, x)))
            .collect()
    };
    let imports: Vec<Arc<WinImport>> = {
        let mut list = net.imports.lock();
        list.retain(|w| w.upgrade().is_some_and(|i| !i.done()));
        list.iter().filter_map(Weak::upgrade).collect()
    };
    if let Ok(own) = net.own() {
        busy |= slots(net, &own, &exports, tick, claimed);
        if tick {
            for x in exports.values() {
                x.sync_acl();
            }
            if net.needs_reclaim(&own) {
                let _ = net.locked(|w| net.reclaim(w));
            }
        }
    }
    for imp in &imports {
        busy |= imp.check(tick);
        busy |= imp.wake.update(imp.has_pending());
    }
    for x in exports.values() {
        busy |= x.wake.update(x.has_pending());
    }
    busy
}

/// The import slots of our own node's window: requests for our segments
/// are answered, importers that left or died are let go, and slots that
/// nobody will ever finish (a claimant or an owner that died) are freed.
fn slots(
    net: &Net,
    own: &Window,
    exports: &HashMap<usize, Arc<WinExport>>,
    tick: bool,
    claimed: &mut HashMap<usize, u32>,
) -> bool {
    use layout::*;
    let mut busy = false;
    if tick {
        claimed.retain(|&s, _| own.slot_state(s).load(Ordering::Acquire) == CLAIMED);
    }
    for s in 0..SLOTS {
        let state = own.slot_state(s).load(Ordering::Acquire);
        if state == FREE || (!tick && state != REQUESTED && state != RELEASED) {
            continue;
        }
        let index = own.slot_field(s, S_DIR_INDEX) as usize;
        let ours = exports.get(&index);
        // Slots of segments this process no longer has an object for:
        // ours destroyed (draining), or a dead process's.
        let orphan = || {
            index >= DIR_ENTRIES
                || own
                    .read_entry(index)
                    .is_some_and(|e| e.state == FREE || net.mine(&e) || net.owner_gone(own, &e))
        };
        let free = |from: u32| {
            own.slot_state(s)
                .compare_exchange(from, FREE, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        };
        match state {
            REQUESTED => match ours {
                Some(x) => {
                    x.answer(s);
                    busy = true;
                }
                None if tick && orphan() => {
                    own.set_slot_field(s, S_STATUS, RsmError::SegNotPublished.code() as u32);
                    let _ = own.slot_state(s).compare_exchange(
                        REQUESTED,
                        REFUSED,
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    );
                }
                None => {}
            },
            RELEASED => match ours {
                Some(x) => {
                    x.drop_importer(s);
                    busy |= free(RELEASED);
                }
                None if tick && orphan() => {
                    free(RELEASED);
                }
                None => {}
            },
            GRANTED | ABORTED => {
                if !importer_alive(net, own, s) {
                    if let Some(x) = ours {
                        x.drop_importer(s);
                    }
                    if ours.is_some() || orphan() {
                        busy |= free(state);
                    }
                } else if state == GRANTED && ours.is_none() && orphan() {
                    // The owner died: tell its importers now rather than
                    // after their own watch of its heartbeat.
                    let _ = own.slot_state(s).compare_exchange(
                        GRANTED,
                        ABORTED,
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    );
                }
            }
            REFUSED if !importer_alive(net, own, s) => {
                free(REFUSED);
            }
            CLAIMED => {
                // The claimant fills its request in microseconds; one
                // still claiming after `misses` periods died doing it.
                let n = claimed.entry(s).or_insert(0);
                *n += 1;
                if *n > net.misses() && free(CLAIMED) {
                    claimed.remove(&s);
                }
            }
            _ => {}
        }
    }
    busy
}

/// Whether the importer that holds slot `s` of our window is alive: its
/// process entry in its own node's window still beats.
fn importer_alive(net: &Net, own: &Window, s: usize) -> bool {
    use layout::*;
    let node = own.slot_field(s, S_NODE);
    if node as usize != s / SLOTS_PER_NODE {
        return false; // not the partition's node: never a valid request
    }
    let Some(w) = net.window(node) else {
        return false;
    };
    net.proc_alive(
        node,
        &w,
        own.slot_field(s, S_PROC),
        own.slot_field(s, S_PROC_INCARNATION),
    )
}

/// A doorbell for counters in a window: nobody there sleeps on a futex
/// or a pipe across hosts (the agent polls), so nothing to ring.
pub struct NoBell;

impl Doorbell for NoBell {
    fn ring(&self) {}
    fn drain(&self) {}
    fn wake(&self, _: &AtomicU32) {}
}

/// How the waiters of one segment sleep: on a pipe the agent rings when
/// it sees events pending in the window, while anyone sleeps or the
/// program holds the pollfd.
///
/// `rung` says the pipe holds a byte: only the agent sets it (and rings),
/// only a settle clears it (after draining), so a ring is never lost: if
/// events are still pending after a drain, the next poll rings again.
pub struct Wake {
    /// The pipe; its read end is the pollfd.
    pub bell: Bell,
    sleepers: AtomicU32,
    watched: AtomicBool,
    rung: AtomicBool,
    ended: AtomicBool,
    kick: Arc<super::Kick>,
    /// The process whose agent rings the pipe (a forked child's is not).
    owner: u32,
}

impl Wake {
    /// A doorbell for a segment of `net`.
    pub fn new(net: &Net) -> RsmResult<Wake> {
        Ok(Wake {
            bell: Bell::new()?,
            sleepers: AtomicU32::new(0),
            watched: AtomicBool::new(false),
            rung: AtomicBool::new(false),
            ended: AtomicBool::new(false),
            kick: Arc::clone(&net.kick),
            owner: crate::transport::process::pid(),
        })
    }

    /// Whether anyone sleeps on the pipe or may poll it.
    pub fn wanted(&self) -> bool {
        self.sleepers.load(Ordering::SeqCst) > 0 || self.watched.load(Ordering::SeqCst)
    }

    /// The program holds (or gave back) the pollfd.
    pub fn watch(&self, on: bool) {
        self.watched.store(on, Ordering::SeqCst);
        if on {
            self.kick.kick();
        }
    }

    /// The agent's part, given whether events are pending: rings the
    /// pipe if someone wants it and it is silent; clears a ring nothing
    /// is behind any more (level-triggered within one poll). Returns
    /// whether it rang.
    pub fn update(&self, pending: bool) -> bool {
        if self.ended.load(Ordering::Acquire) {
            return false;
        }
        if pending && self.wanted() {
            if !self.rung.swap(true, Ordering::SeqCst) {
                self.bell.ring();
                return true;
            }
        } else if !pending && self.rung.load(Ordering::SeqCst) {
            self.settle(false);
        }
        false
    }

    /// After a wake-up or a take: with nothing pending, drains the pipe.
    pub fn settle(&self, pending: bool) {
        if pending || self.ended.load(Ordering::Acquire) || !self.rung.load(Ordering::SeqCst) {
            return;
        }
        // The pipe is the parent's too: a forked child must not drain a
        // ring its parent's agent made for the parent.
        if !self.in_owner() {
            return;
        }
        // Drain first, then clear: while `rung` is set the agent does not
        // ring, so no byte is drained unseen.
        self.bell.drain();
        self.rung.store(false, Ordering::SeqCst);
    }

    /// Ends every wait for good: the pipe stays readable (a destroyed
    /// export, an aborted import).
    pub fn end(&self) {
        self.ended.store(true, Ordering::SeqCst);
        self.rung.store(true, Ordering::SeqCst);
        // A forked child's sleepers look at `ended` themselves; the pipe
        // is the parent's, whose agent ends it when the parent sees the
        // end.
        if self.in_owner() {
            self.bell.ring();
        }
    }

    /// Whether this is the process whose agent rings the pipe (not a
    /// forked child using an inherited handle).
    fn in_owner(&self) -> bool {
        crate::transport::process::pid() == self.owner
    }

    /// Whether `end` was called.
    pub fn ended(&self) -> bool {
        self.ended.load(Ordering::Acquire)
    }

    /// Sleeps until the agent rings or `timeout_ms` passes, unless
    /// `pending()` says there is no need.
    pub fn sleep(&self, timeout_ms: i32, pending: impl Fn() -> bool) -> RsmResult<Woke> {
        if !self.in_owner() {
            return self.look_until(timeout_ms, pending);
        }
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        self.kick.kick();
        // After counting ourselves: a post from now on is rung for us.
        let woke = if pending() || self.ended() {
            Ok(Woke::Woken)
        } else {
            self.bell
                .sleep(timeout_ms)
                .map(|r| if r { Woke::Rung } else { Woke::TimedOut })
        };
        self.sleepers.fetch_sub(1, Ordering::SeqCst);
        woke
    }

    /// A forked child's sleep on a handle it inherited. The agent that
    /// rings the pipe is the parent's, and rings only for the parent's own
    /// sleepers, so the child looks at the counters itself, once per
    /// `LOOK_MS` (the agent polls at most that far apart while someone
    /// waits). A signal still ends it with `RSMERR_INTERRUPTED`.
    fn look_until(&self, timeout_ms: i32, pending: impl Fn() -> bool) -> RsmResult<Woke> {
        const LOOK_MS: i32 = 1;
        let deadline = u64::try_from(timeout_ms)
            .ok()
            .map(|ms| std::time::Instant::now() + std::time::Duration::from_millis(ms));
        loop {
            if pending() || self.ended() {
                return Ok(Woke::Woken);
            }
            let pause = match deadline {
                None => LOOK_MS,
                Some(d) => {
                    let left = d.saturating_duration_since(std::time::Instant::now());
                    if left.is_zero() {
                        return Ok(Woke::TimedOut);
                    }
                    LOOK_MS.min(i32::try_from(left.as_millis()).unwrap_or(i32::MAX).max(1))
                }
            };
            // SAFETY: no descriptors: poll only sleeps (and sees signals).
            unsafe { crate::platform::poll(std::ptr::null_mut(), 0, pause) }?;
        }
    }
}
