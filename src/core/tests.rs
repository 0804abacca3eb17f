//! The export and import state machines against a fake transport: the
//! order of checks (spec 4.4, 4.5) without any system call.

use crate::core::export::{self, Creator};
use crate::core::import::{self, MapRequest};
use crate::core::permission::{Owner, Peer, PERM_READ, PERM_WRITE};
use crate::core::{controller, permission::AccessEntry};
use crate::error::{RsmError, RsmResult};
use crate::transport::survey::{Present, SegmentReport};
use crate::transport::{
    Admission, ControllerAttributes, ExportPort, ImportPort, ImporterInfo, Presence, Signals,
    Transport,
};
use parking_lot::Mutex;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

const PAGE: usize = 4096;
const RW: u32 = PERM_READ | PERM_WRITE;

/// Remembers published ids and counts destroys; imports are 8 pages.
#[derive(Default)]
struct Fake {
    published: Mutex<Vec<u32>>,
    destroyed: AtomicUsize,
    aborted: Arc<AtomicBool>,
    /// Events: [to the exporter, to the importer]; whether each is watched.
    events: Arc<[AtomicU64; 2]>,
    watched: Arc<[AtomicBool; 2]>,
    /// Added to the pollfds (7 export, 8 import): tests that run at once
    /// share the process-wide pollfd table.
    fd_base: i32,
    /// What the exporter grants, if not what was asked (a peer that
    /// breaks the protocol).
    grant: Mutex<Option<u32>>,
}

/// A fake's counter `side` (0: exporter, 1: importer) as `Signals`.
fn fake_take(events: &[AtomicU64; 2], side: usize) -> bool {
    events[side]
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}
struct NoPresence;
impl Presence for NoPresence {}
struct FakeExport(Arc<Fake>);
struct FakeImport {
    rights: u32,
    aborted: Arc<AtomicBool>,
    mapped: Mutex<bool>,
    events: Arc<[AtomicU64; 2]>,
    watched: Arc<[AtomicBool; 2]>,
    fd_base: i32,
}

impl Signals for FakeExport {
    fn post(&self, _: bool) -> RsmResult<()> {
        self.0.events[1].fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
    fn wait(&self, _: i32) -> RsmResult<()> {
        fake_take(&self.0.events, 0)
            .then_some(())
            .ok_or(RsmError::Timeout)
    }
    fn take(&self) -> RsmResult<bool> {
        Ok(fake_take(&self.0.events, 0))
    }
    fn pollfd(&self) -> RsmResult<RawFd> {
        Ok(7 + self.0.fd_base)
    }
    fn watch(&self, on: bool) -> RsmResult<()> {
        self.0.watched[0].store(on, Ordering::SeqCst);
        Ok(())
    }
}

impl Signals for FakeImport {
    fn post(&self, _: bool) -> RsmResult<()> {
        if !self.aborted.load(Ordering::SeqCst) {
            self.events[0].fetch_add(1, Ordering::SeqCst);
        }
        Ok(())
    }
    fn wait(&self, timeout: i32) -> RsmResult<()> {
        self.take()?.then_some(()).ok_or(if timeout == 0 {
            RsmError::Timeout
        } else {
            RsmError::Interrupted
        })
    }
    fn take(&self) -> RsmResult<bool> {
        if fake_take(&self.events, 1) {
            return Ok(true);
        }
        if self.aborted.load(Ordering::SeqCst) {
            return Err(RsmError::ConnAborted);
        }
        Ok(false)
    }
    fn pollfd(&self) -> RsmResult<RawFd> {
        Ok(8 + self.fd_base)
    }
    fn watch(&self, on: bool) -> RsmResult<()> {
        self.watched[1].store(on, Ordering::SeqCst);
        Ok(())
    }
}

impl Transport for Arc<Fake> {
    fn attributes(&self) -> RsmResult<ControllerAttributes> {
        Ok(ControllerAttributes {
            page_size: PAGE,
            max_export_segment_size: 64 * PAGE,
            max_export_segments: 1000,
            max_import_segments: 1000,
            ..Default::default()
        })
    }
    fn hwaddr(&self, node: u32) -> u64 {
        node.into()
    }
    fn announce(&self, _: u32, _: &str) -> RsmResult<Box<dyn Presence>> {
        Ok(Box::new(NoPresence))
    }
    fn nodes_present(&self) -> RsmResult<Vec<u32>> {
        Ok(vec![0])
    }
    fn bind(&self, _: usize, _: usize) -> RsmResult<Box<dyn ExportPort>> {
        Ok(Box::new(FakeExport(Arc::clone(self))))
    }
    fn connect(&self, _: u32, _: u32, segid: u32, perm: u32) -> RsmResult<Box<dyn ImportPort>> {
        if !self.published.lock().contains(&segid) {
            return Err(RsmError::SegNotPublished);
        }
        let aborted = Arc::clone(&self.aborted);
        Ok(Box::new(FakeImport {
            rights: self.grant.lock().unwrap_or(perm),
            aborted,
            mapped: Mutex::new(false),
            events: Arc::clone(&self.events),
            watched: Arc::clone(&self.watched),
            fd_base: self.fd_base,
        }))
    }
    fn present(&self) -> RsmResult<Vec<Present>> {
        Ok(vec![Present {
            node: 0,
            pid: std::process::id(),
            controller: "fake0".into(),
        }])
    }
    fn survey(&self) -> RsmResult<Vec<SegmentReport>> {
        Ok(self
            .published
            .lock()
            .iter()
            .map(|&segid| SegmentReport {
                node: 0,
                segid,
                details: Ok(None),
            })
            .collect())
    }
}

impl ExportPort for FakeExport {
    fn publish(&self, _: u32, segid: u32, admission: Arc<dyn Admission>) -> RsmResult<u32> {
        let peer = Peer {
            node: 0,
            uid: 1,
            gid: 1,
            groups: vec![],
            ipc_owner: false,
        };
        admission.admit(&peer, 0)?;
        let id = if segid == 0 { 0x8000_0000 } else { segid };
        self.0.published.lock().push(id);
        Ok(id)
    }
    fn unpublish(&self) -> RsmResult<()> {
        self.0.published.lock().clear();
        Ok(())
    }
    fn rebind(&self, _: usize) -> RsmResult<()> {
        Ok(())
    }
    fn destroy(&self) -> RsmResult<()> {
        self.0.destroyed.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
    fn importers(&self) -> Vec<ImporterInfo> {
        Vec::new()
    }
}

impl ImportPort for FakeImport {
    fn size(&self) -> usize {
        8 * PAGE
    }
    fn rights(&self) -> u32 {
        self.rights
    }
    fn map(&self, fixed: Option<usize>, _: usize, _: usize, _: u32) -> RsmResult<usize> {
        *self.mapped.lock() = true;
        Ok(fixed.unwrap_or(0x10_0000))
    }
    fn unmap(&self) -> RsmResult<()> {
        *self.mapped.lock() = false;
        Ok(())
    }
    fn aborted(&self) -> bool {
        self.aborted.load(Ordering::Relaxed)
    }
    fn data(&self) -> RsmResult<Option<(usize, usize)>> {
        Ok(None)
    }
    fn generation(&self) -> u32 {
        u32::from(self.aborted())
    }
    fn close(&self, _shared: bool) {}
}

fn me(pid: u32) -> Creator {
    Creator {
        pid,
        owner: Owner {
            uid: 1,
            gid: 1,
            creation_mode: 0o644,
        },
    }
}

fn setup(name: &str) -> (Arc<Fake>, usize) {
    let fake = Arc::new(Fake::default());
    let ctrl = controller::open(name, false, Arc::new(Arc::clone(&fake)), 0).unwrap();
    (fake, ctrl)
}

#[test]
fn export_checks_come_in_the_solaris_order() {
    let (fake, ctrl) = setup("fake1");
    assert_eq!(
        export::create(ctrl, PAGE, 65 * PAGE, 0, me(10)),
        Err(RsmError::BadLength)
    );
    let seg = export::create(ctrl, PAGE, 2 * PAGE, 0, me(10)).unwrap();
    // Not published yet.
    assert_eq!(export::unpublish(seg, 10), Err(RsmError::SegNotPublished));
    assert_eq!(
        export::republish(seg, Ok(vec![]), 10),
        Err(RsmError::SegNotPublished)
    );
    // Publish: reserved id before creator, creator before the ACL.
    assert_eq!(
        export::publish(seg, 5, Err(RsmError::BadAddr), 99),
        Err(RsmError::ReservedSegid)
    );
    assert_eq!(
        export::publish(seg, 0x40_0000, Err(RsmError::BadAddr), 99),
        Err(RsmError::NotCreator)
    );
    assert_eq!(
        export::publish(seg, 0x40_0000, Err(RsmError::BadAddr), 10),
        Err(RsmError::BadAddr)
    );
    let bad = vec![AccessEntry {
        node: 1,
        perm: 0o700,
    }];
    assert_eq!(
        export::publish(seg, 0x40_0000, Ok(bad), 10),
        Err(RsmError::BadAcl)
    );
    assert_eq!(export::publish(seg, 0, Ok(vec![]), 10), Ok(0x8000_0000));
    // Already published comes before everything the kernel checked.
    assert_eq!(
        export::publish(seg, 1, Err(RsmError::BadAddr), 99),
        Err(RsmError::SegAlreadyPublished)
    );
    assert_eq!(
        export::republish(seg, Ok(vec![]), 99),
        Err(RsmError::NotCreator)
    );
    assert_eq!(export::unpublish(seg, 99), Err(RsmError::NotCreator));
    // Rebind: the flag, then the creator, then the length.
    assert_eq!(
        export::rebind(seg, 3 * PAGE, 3 * PAGE, PAGE, 99),
        Err(RsmError::RebindNotAllowed)
    );
    // Pollfd references hold off destroy.
    assert_eq!(super::event::get_pollfd(seg), Ok(7));
    assert_eq!(export::destroy(seg, 10), Err(RsmError::PollfdInUse));
    super::event::release_pollfd(seg).unwrap();
    super::event::release_pollfd(seg).unwrap(); // never below zero
    assert_eq!(export::destroy(seg, 10), Ok(()));
    assert_eq!(fake.destroyed.load(Ordering::Relaxed), 1);
    assert_eq!(export::destroy(seg, 10), Err(RsmError::BadSegHndl));
    controller::release(ctrl).unwrap();
}

#[test]
fn rebind_order_and_forked_destroy() {
    let (fake, ctrl) = setup("fake2");
    let seg = export::create(ctrl, PAGE, 2 * PAGE, export::ALLOW_REBIND, me(20)).unwrap();
    assert_eq!(
        export::rebind(seg, 8 * PAGE, 2 * PAGE, PAGE, 21),
        Err(RsmError::NotCreator)
    );
    assert_eq!(
        export::rebind(seg, 8 * PAGE, 3 * PAGE, PAGE, 20),
        Err(RsmError::BadLength)
    );
    assert_eq!(
        export::rebind(seg, PAGE, 2 * PAGE, PAGE, 20),
        Ok(()),
        "same address: no-op"
    );
    assert_eq!(
        export::rebind(seg, 8 * PAGE + 1, 2 * PAGE, PAGE, 20),
        Err(RsmError::BadAddr)
    );
    assert_eq!(export::rebind(seg, 8 * PAGE, 2 * PAGE, PAGE, 20), Ok(()));
    // A forked child's destroy forgets the handle; the segment is the parent's.
    assert_eq!(export::destroy(seg, 21), Ok(()));
    assert_eq!(fake.destroyed.load(Ordering::Relaxed), 0);
    controller::release(ctrl).unwrap();
}

#[test]
fn import_checks_come_in_the_solaris_order() {
    let (fake, ctrl) = setup("fake3");
    let seg = export::create(ctrl, PAGE, 2 * PAGE, 0, me(30)).unwrap();
    export::publish(seg, 0x40_0001, Ok(vec![]), 30).unwrap();
    assert_eq!(
        import::connect(ctrl, 0, 0x40_0001, 0o700),
        Err(RsmError::PermDenied)
    );
    assert_eq!(
        import::connect(ctrl, 0, 0x40_0002, RW),
        Err(RsmError::SegNotPublished)
    );
    // An exporter that grants other rights than were asked is refused:
    // less would fault the first put, more would let map exceed them.
    for (asked, granted) in [(RW, PERM_READ), (PERM_READ, RW), (PERM_WRITE, 0)] {
        *fake.grant.lock() = Some(granted);
        assert_eq!(
            import::connect(ctrl, 0, 0x40_0001, asked),
            Err(RsmError::PermDenied),
            "asked {asked:#o}, granted {granted:#o}"
        );
    }
    *fake.grant.lock() = None;
    let ro = import::connect(ctrl, 0, 0x40_0001, PERM_READ).unwrap();
    let req = |perm, offset, len| MapRequest {
        fixed: None,
        perm,
        offset,
        len,
    };
    assert_eq!(
        import::map(ro, req(0o700, -1, 0), PAGE),
        Err(RsmError::BadPerms)
    );
    assert_eq!(
        import::map(ro, req(RW, -1, 0), PAGE),
        Err(RsmError::BadLength)
    );
    assert_eq!(
        import::map(ro, req(RW, -1, PAGE), PAGE),
        Err(RsmError::BadOffset)
    );
    assert_eq!(
        import::map(ro, req(RW, 0, 9 * PAGE), PAGE),
        Err(RsmError::BadLength)
    );
    assert_eq!(
        import::map(ro, req(RW, 1, PAGE), PAGE),
        Err(RsmError::BadMemAlignment)
    );
    let fixed = MapRequest {
        fixed: Some(PAGE + 8),
        ..req(RW, 0, PAGE)
    };
    assert_eq!(import::map(ro, fixed, PAGE), Err(RsmError::BadMemAlignment));
    assert_eq!(
        import::map(ro, req(RW, 0, PAGE), PAGE),
        Err(RsmError::BadPerms),
        "read-only import"
    );
    assert_eq!(
        import::map(ro, req(PERM_READ, 0, 8 * PAGE), PAGE),
        Ok(0x10_0000)
    );
    assert_eq!(
        import::map(ro, req(0o700, 0, 0), PAGE),
        Err(RsmError::SegAlreadyMapped)
    );
    // Disconnect: the explicit mapping first, then pollfd references.
    super::event::get_pollfd(ro).unwrap();
    assert_eq!(import::disconnect(ro), Err(RsmError::SegStillMapped));
    import::unmap(ro).unwrap();
    assert_eq!(import::unmap(ro), Err(RsmError::SegNotMapped));
    assert_eq!(import::disconnect(ro), Err(RsmError::PollfdInUse));
    super::event::release_pollfd(ro).unwrap();
    // After a forced disconnect: map aborts, disconnect still works.
    fake.aborted.store(true, Ordering::Relaxed);
    assert_eq!(
        import::map(ro, req(PERM_READ, 0, PAGE), PAGE),
        Err(RsmError::ConnAborted)
    );
    assert_eq!(import::disconnect(ro), Ok(()));
    assert_eq!(import::disconnect(ro), Err(RsmError::BadSegHndl));
    export::destroy(seg, 30).unwrap();
    controller::release(ctrl).unwrap();
}

#[test]
fn loopback_reaches_only_its_own_node() {
    let fake = Arc::new(Fake::default());
    let lo = controller::open("fakeloop0", true, Arc::new(Arc::clone(&fake)), 0).unwrap();
    fake.published.lock().push(0x40_0003);
    assert_eq!(
        import::connect(lo, 1, 0x40_0003, RW),
        Err(RsmError::CtlrNotPresent)
    );
    let im = import::connect(lo, 0, 0x40_0003, RW).unwrap();
    import::disconnect(im).unwrap();
    let seg = export::create(lo, PAGE, PAGE, 0, me(40)).unwrap();
    let two = vec![
        AccessEntry {
            node: 0,
            perm: 0o600,
        },
        AccessEntry {
            node: 0,
            perm: 0o600,
        },
    ];
    assert_eq!(
        export::publish(seg, 0x40_0004, Ok(two), 40),
        Err(RsmError::BadAcl)
    );
    let other = vec![AccessEntry {
        node: 3,
        perm: 0o600,
    }];
    assert_eq!(
        export::publish(seg, 0x40_0004, Ok(other), 40),
        Err(RsmError::BadAcl)
    );
    export::destroy(seg, 40).unwrap();
    controller::release(lo).unwrap();
}

#[test]
fn pollfd_table_and_wait_pollfd_consume() {
    use crate::core::{event, pollfd};
    let fake = Arc::new(Fake {
        fd_base: 100,
        ..Fake::default()
    });
    let ctrl = controller::open("fake5", false, Arc::new(Arc::clone(&fake)), 0).unwrap();
    let seg = export::create(ctrl, PAGE, PAGE, 0, me(50)).unwrap();
    export::publish(seg, 0x40_0005, Ok(vec![]), 50).unwrap();
    let im = import::connect(ctrl, 0, 0x40_0005, RW).unwrap();
    // Posts go to the other side; wait with nothing pending times out.
    event::post(im, false).unwrap();
    assert_eq!(event::wait(seg, 0), Ok(()));
    assert_eq!(event::wait(seg, 0), Err(RsmError::Timeout));
    // The first pollfd reference watches the counter and enters the table.
    assert_eq!(super::event::get_pollfd(seg), Ok(107));
    assert_eq!(super::event::get_pollfd(seg), Ok(107));
    assert!(fake.watched[0].load(Ordering::SeqCst));
    assert_eq!(pollfd::segment_of(107), Some(seg));
    let entry = |fd, revents| libc::pollfd {
        fd,
        events: libc::POLLRDNORM,
        revents,
    };
    event::post(im, false).unwrap();
    let mut fds = [entry(107, libc::POLLRDNORM), entry(99, libc::POLLIN)];
    assert_eq!(event::consume(&mut fds), 2, "segment event and other fd");
    assert_eq!(fds[0].revents, libc::POLLRDNORM);
    let mut fds = [entry(107, libc::POLLRDNORM), entry(99, libc::POLLIN)];
    assert_eq!(event::consume(&mut fds), 1, "lost race: revents cleared");
    assert_eq!(fds[0].revents, 0);
    assert_eq!(fds[1].revents, libc::POLLIN, "not ours: untouched");
    // The import's pollfd after a forced disconnect: POLLHUP, once the
    // events posted before are consumed.
    assert_eq!(super::event::get_pollfd(im), Ok(108));
    event::post(seg, false).unwrap();
    fake.aborted.store(true, Ordering::SeqCst);
    let mut fds = [entry(108, libc::POLLRDNORM)];
    assert_eq!(event::consume(&mut fds), 1);
    assert_eq!(fds[0].revents, libc::POLLRDNORM);
    assert_eq!(event::consume(&mut fds), 1);
    assert_eq!(fds[0].revents, libc::POLLHUP);
    // The last release unwatches and leaves the table.
    super::event::release_pollfd(seg).unwrap();
    assert!(fake.watched[0].load(Ordering::SeqCst));
    super::event::release_pollfd(seg).unwrap();
    assert!(!fake.watched[0].load(Ordering::SeqCst));
    assert_eq!(pollfd::segment_of(107), None);
    super::event::release_pollfd(im).unwrap();
    import::disconnect(im).unwrap();
    export::destroy(seg, 50).unwrap();
    controller::release(ctrl).unwrap();
}
