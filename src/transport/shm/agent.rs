//! The agent (DESIGN.md 5.4): one background thread per process, started on
//! the first publish or connect, waiting on epoll. It accepts connects for
//! published segments, answers them, watches importers (an importer that
//! exits or is killed is dropped) and watches imports (an exporter that
//! unpublishes, destroys, exits or is killed forcibly disconnects them).
//!
//! Hostile clients cannot stall it: every socket is non-blocking, a request
//! is one fixed-size packet, a client that sends nothing is dropped after
//! `PENDING_TIMEOUT`, and at most `MAX_PENDING` unanswered clients are kept.
//!
//! Departures go before arrivals: of the events one wait reports, hang-ups
//! are handled first, and a listener accepts at most `ACCEPT_BATCH` clients
//! before the agent waits again (one: epoll is level-triggered, so a
//! listener with more clients waiting is reported again at once, and a
//! lone connect, the usual case, costs no accept that finds nobody). Otherwise an importer that connects and
//! disconnects in a loop on another CPU keeps the listener readable, the
//! accepts never run dry, and every departed importer's socket and doorbell
//! stay open until the loop pauses: hundreds of descriptors, and connects
//! refused with `RSMERR_INSUFFICIENT_RESOURCES` under a low RLIMIT_NOFILE.

use super::export::ShmExport;
use super::import::ShmImport;
use crate::error::{RsmError, RsmResult};
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// Unanswered clients kept at once; more are closed on arrival.
pub const MAX_PENDING: usize = 64;
/// How long a client may take to send its request.
pub const PENDING_TIMEOUT: Duration = Duration::from_secs(2);
/// Clients a listener accepts per wake-up; epoll is level-triggered, so
/// the rest are reported by the next wait, after the hang-ups since.
pub const ACCEPT_BATCH: usize = 1;

/// How often the agent looks for importers' answers while a survey
/// waits for them (they do not wake it: it watches importers for
/// hang-up alone).
const SURVEY_POLL: u16 = 2;

/// The agent's stack: an epoll loop needs little.
const AGENT_STACK: usize = 256 * 1024;

/// What a registered descriptor is.
pub enum Handler {
    /// A published segment's listening socket.
    Listener(Weak<ShmExport>),
    /// An admitted importer's connection (the export owns the fd).
    Importer(Weak<ShmExport>),
    /// Our own import's connection to its exporter (the import owns the fd).
    Import(Weak<ShmImport>),
}

/// What an event asks of the agent.
enum Job {
    /// Clients wait on a listener.
    Accept(u64, Arc<ShmExport>),
    /// A pending client's request came.
    Serve(OwnedFd, Arc<ShmExport>),
    /// An importer's connection hung up: it left.
    Gone(u64, Arc<ShmExport>),
    /// Our import's connection is readable: its event channel came, or
    /// its exporter went away.
    Abort(u64, Arc<ShmImport>),
}

/// An accepted client that has not sent its request yet.
struct Pending {
    fd: OwnedFd,
    export: Weak<ShmExport>,
    deadline: Instant,
}

/// The per-process agent.
pub struct Agent {
    epoll: Epoll,
    handlers: Mutex<HashMap<u64, Handler>>,
    /// Pending clients by token; tokens grow, so the first is the oldest.
    /// Kept apart from `handlers` so that neither the timeout nor the
    /// eviction ever walks the listeners (a process may publish 100,000).
    pending: Mutex<BTreeMap<u64, Pending>>,
    next_token: AtomicU64,
    /// A descriptor held in reserve by a process that publishes (on
    /// /dev/null): with no other free, it is closed to accept a client
    /// and refuse it, then opened again. Otherwise a listener that cannot
    /// be accepted from stays readable and the agent would spin.
    spare: Mutex<Option<OwnedFd>>,
    /// Exports with a survey waiting for importers' answers.
    surveying: Mutex<Vec<Weak<ShmExport>>>,
}

static AGENT: Mutex<Option<(u32, Arc<Agent>)>> = Mutex::new(None);

/// The agent of this process, started on first use. A forked child gets
/// its own (threads do not survive fork).
pub fn agent() -> RsmResult<Arc<Agent>> {
    let pid = crate::transport::process::pid();
    let mut slot = AGENT.lock();
    if let Some((owner, agent)) = slot.as_ref() {
        if *owner == pid {
            return Ok(Arc::clone(agent));
        }
    }
    let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)
        .map_err(|e| RsmError::from_alloc_errno(e as i32))?;
    let agent = Arc::new(Agent {
        epoll,
        handlers: Mutex::new(HashMap::new()),
        pending: Mutex::new(BTreeMap::new()),
        next_token: AtomicU64::new(1),
        spare: Mutex::new(None),
        surveying: Mutex::new(Vec::new()),
    });
    let runner = Arc::clone(&agent);
    crate::transport::spawn_started("rsm-agent", AGENT_STACK, move || runner.run())?;
    *slot = Some((pid, Arc::clone(&agent)));
    Ok(agent)
}

fn open_spare() -> Option<OwnedFd> {
    // SAFETY: a NUL-terminated path; open returns a new descriptor or -1.
    let fd = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    // SAFETY: a new descriptor nothing else owns.
    (fd >= 0).then(|| unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) })
}

/// The agent of this process if it runs, without starting one (for
/// teardown, which may happen at exit or in a forked child).
pub fn running() -> Option<Arc<Agent>> {
    let slot = AGENT.lock();
    slot.as_ref()
        .filter(|(owner, _)| *owner == crate::transport::process::pid())
        .map(|(_, a)| Arc::clone(a))
}

impl Agent {
    /// Watches `fd` for `handler`; returns the token to unregister it with.
    pub fn register(&self, fd: BorrowedFd<'_>, handler: Handler) -> RsmResult<u64> {
        let token = self.reserve(handler);
        self.watch(fd, token)?;
        Ok(token)
    }

    /// The first half of `register`: a token for `handler`, no system
    /// call. Until `watch`, nothing is reported for it.
    pub fn reserve(&self, handler: Handler) -> u64 {
        let token = self.next_token.fetch_add(1, Ordering::Relaxed);
        self.handlers.lock().insert(token, handler);
        token
    }

    /// The second half of `register`: starts watching `fd` for the
    /// reserved `token`. On failure the token is released.
    pub fn watch(&self, fd: BorrowedFd<'_>, token: u64) -> RsmResult<()> {
        self.watch_for(fd, token, EpollFlags::EPOLLIN | EpollFlags::EPOLLRDHUP)
    }

    /// `watch` for the peer's hang-up alone (`EPOLLRDHUP`; errors and
    /// `EPOLLHUP` are always reported): packets that arrive wake nobody.
    pub fn watch_hangup(&self, fd: BorrowedFd<'_>, token: u64) -> RsmResult<()> {
        self.watch_for(fd, token, EpollFlags::EPOLLRDHUP)
    }

    fn watch_for(&self, fd: BorrowedFd<'_>, token: u64, flags: EpollFlags) -> RsmResult<()> {
        let event = EpollEvent::new(flags, token);
        if let Err(e) = self.epoll.add(fd, event) {
            self.handlers.lock().remove(&token);
            return Err(RsmError::from_alloc_errno(e as i32));
        }
        super::fork::track(fd.as_raw_fd());
        Ok(())
    }

    /// Makes sure the reserve descriptor is held (before a publish).
    pub fn keep_spare(&self) {
        let mut spare = self.spare.lock();
        if spare.is_none() {
            *spare = open_spare();
        }
    }

    /// Runs `f` with the reserve descriptor released, then takes it back.
    pub fn with_spare<R>(&self, f: impl FnOnce() -> R) -> R {
        let mut spare = self.spare.lock();
        drop(spare.take());
        let r = f();
        *spare = open_spare();
        r
    }

    /// Releases a reserved token that was never watched.
    pub fn release(&self, token: u64) {
        self.handlers.lock().remove(&token);
    }

    /// Stops watching; call before closing the descriptor.
    pub fn unregister(&self, token: u64, fd: BorrowedFd<'_>) {
        super::fork::untrack(fd.as_raw_fd());
        let _ = self.epoll.delete(fd);
        self.handlers.lock().remove(&token);
    }

    /// Takes an accepted client that has not sent its request yet. When
    /// `MAX_PENDING` wait already, the one waiting longest is dropped: a
    /// legitimate importer sends its request right after connecting, so
    /// the silent ones are the likely attackers.
    pub fn add_pending(&self, fd: OwnedFd, export: Weak<ShmExport>) {
        let mut pending = self.pending.lock();
        if pending.len() >= MAX_PENDING {
            if let Some((_, victim)) = pending.pop_first() {
                let _ = self.epoll.delete(victim.fd.as_fd());
                crate::why!("agent: {MAX_PENDING} clients pending; dropped the oldest");
            }
        }
        let deadline = Instant::now() + PENDING_TIMEOUT;
        let token = self.next_token.fetch_add(1, Ordering::Relaxed);
        let event = EpollEvent::new(EpollFlags::EPOLLIN | EpollFlags::EPOLLRDHUP, token);
        // Only the agent thread adds pending clients, and it holds the map,
        // so the entry is in place before epoll_wait can report the fd.
        if self.epoll.add(fd.as_fd(), event).is_ok() {
            pending.insert(
                token,
                Pending {
                    fd,
                    export,
                    deadline,
                },
            );
        }
    }

    /// `export` has a survey waiting for importers' answers: look for
    /// them every `SURVEY_POLL` ms until it is answered.
    pub fn surveying(&self, export: Weak<ShmExport>) {
        self.surveying.lock().push(export);
    }

    /// Answers the surveys that can be; keeps the exports still waiting.
    fn advance_surveys(&self) {
        let waiting = std::mem::take(&mut *self.surveying.lock());
        let mut still: Vec<Weak<ShmExport>> = waiting
            .into_iter()
            .filter(|w| w.upgrade().is_some_and(|e| e.advance_surveys()))
            .collect();
        let mut surveying = self.surveying.lock();
        still.append(&mut surveying);
        *surveying = still;
    }

    fn run(self: Arc<Self>) {
        let mut events = vec![EpollEvent::empty(); 64];
        let mut admissions = Vec::new();
        loop {
            let timeout = if !self.surveying.lock().is_empty() {
                EpollTimeout::from(SURVEY_POLL)
            } else if !self.pending.lock().is_empty() {
                EpollTimeout::from(100u16)
            } else {
                EpollTimeout::NONE
            };
            let n = match self.epoll.wait(&mut events, timeout) {
                Ok(n) => n,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
            };
            // Departures first, so the descriptors of importers that left
            // are free before new ones are admitted.
            for event in &events[..n] {
                match self.job(event.data()) {
                    Some(Job::Gone(token, e)) => e.importer_event(&self, token),
                    Some(Job::Abort(token, i)) => i.import_event(&self, token),
                    Some(job) => admissions.push(job),
                    None => {}
                }
            }
            for job in admissions.drain(..) {
                match job {
                    Job::Accept(token, e) => e.accept_some(&self, token, ACCEPT_BATCH),
                    Job::Serve(fd, e) => e.serve(&self, fd),
                    Job::Gone(..) | Job::Abort(..) => {}
                }
            }
            self.expire_pending();
            self.advance_surveys();
        }
    }

    /// What the event for `token` asks, if its owner is still there.
    fn job(&self, token: u64) -> Option<Job> {
        let pending = self.pending.lock().remove(&token);
        match pending {
            Some(p) => {
                let _ = self.epoll.delete(p.fd.as_fd());
                p.export.upgrade().map(|e| Job::Serve(p.fd, e))
            }
            None => match self.handlers.lock().get(&token) {
                Some(Handler::Listener(w)) => w.upgrade().map(|e| Job::Accept(token, e)),
                Some(Handler::Importer(w)) => w.upgrade().map(|e| Job::Gone(token, e)),
                Some(Handler::Import(w)) => w.upgrade().map(|i| Job::Abort(token, i)),
                None => None,
            },
        }
    }

    /// Drops the clients whose time to send a request has run out: the
    /// oldest come first, so this stops at the first one still in time.
    fn expire_pending(&self) {
        let now = Instant::now();
        let mut pending = self.pending.lock();
        while pending
            .first_key_value()
            .is_some_and(|(_, p)| p.deadline <= now)
        {
            if let Some((_, p)) = pending.pop_first() {
                let _ = self.epoll.delete(p.fd.as_fd());
                crate::why!("agent: dropped a client that sent no request");
            }
        }
    }
}
