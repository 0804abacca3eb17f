//! Fuzz target (a) of issue 7: random sequences of RSMAPI calls, made
//! through the C entry points of `rsm::abi`, with random handles, pointers,
//! offsets, lengths, flags, ACLs and iovecs, against a live exporter and
//! importer in this process (loopback controller, node 0).
//!
//! Pointers: librsm checks through the kernel every pointer the C contract
//! lets it check (out-pointers, ACLs, names, the map address, barriers at
//! init, poll arrays), so those get garbage too: NULL, misaligned, low,
//! unmapped, kernel, read-only and guard-page addresses. Buffers the C
//! contract says are the caller's (get/put data, iovec memory, local memory
//! handles, an initialised barrier, export memory) are always real memory of
//! this harness, large enough for any length the library may accept; any
//! length beyond a segment is still tried, and must be refused before a
//! byte is copied (the buffers end at guard pages, so a copy that is not
//! refused crashes).
//!
//! Checks, besides "no crash": every return value is 0 or an RSMERR code;
//! a successful get/put moved exactly the exporter's bytes; a successful
//! map is accessible as granted; disconnect/destroy refuse while mapped or
//! while pollfd references are held; at the end of every input all that
//! the input created is torn down without an error, and the persistent
//! exporter/importer pair still moves data intact.
//!
//! State persists across inputs (the pair, the controller) for speed, and
//! is put back into the same shape after every input, so an input replays
//! the same way in a fresh process (fuzz/regressions/api_sequence).
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use librsm_fuzz::{check_rc, fuzz_bug, guard, map_anon, page, MemFile};
use rsm::abi::types::*;
use rsm::abi::{
    barrier as bar, controller as ctl, event as ev, export as ex, getput as gp, import as im,
    localmem as lm, scatter as sc, segmentid as sid, topology as topo,
};
use std::collections::VecDeque;
use std::ffi::{c_char, c_int, c_void};
use std::sync::Mutex;

/// Pages of the arena export segments are made from (guard page each side).
const ARENA_PAGES: usize = 32;
/// Pages of the local buffer for get/put/iovec/local memory (guard after).
/// Any length a segment accepts (at most ARENA_PAGES) plus the largest
/// pointer and local offsets the harness uses fit.
const LOCAL_PAGES: usize = 40;
/// Largest pointer offset into the local buffer, and largest iovec
/// local_offset (2 pages each).
const LOCAL_SLACK: usize = 8192;
/// Reserved (PROT_NONE) slots for RSM_MAP_FIXED, ARENA_PAGES pages each.
const FIX_SLOTS: usize = 4;
/// Most operations decoded from one input.
const MAX_OPS: usize = 40;
/// The persistent export segment: arena pages 0..E0_PAGES.
const E0_PAGES: usize = 4;
/// Its segment id (user range, spec 3.3).
const E0_SEGID: u32 = 0x4000_0000;
/// Handles of earlier inputs, kept for stale-handle use.
const RETIRED_MAX: usize = 64;
/// Never mapped (below mmap_min_addr; the harness never maps there).
const UNMAPPED: usize = 0x1000;
/// A kernel address.
const KERNEL: usize = 0xffff_8000_0000_0000;
/// Just past the 47-bit user address space.
const NONCANON: usize = 1 << 47;
/// Descriptor and mapping counts every this many inputs.
const LEAK_EVERY: u64 = 1024;
/// Descriptors that may come and go between counts (the agent's own).
const FD_SLACK: usize = 16;
/// Mappings that may come and go (the sanitizer's allocator, split VMAs).
const MAPS_SLACK: usize = 4096;

// ---- what an input decodes to ---------------------------------------------

/// A handle argument.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum H {
    Null,
    Ctrl(u8),
    Exp(u8),
    Imp(u8),
    Loc(u8),
    Retired(u8),
    /// A known handle with one bit flipped (forged, wrong kind, stale).
    Flip(u8, u8, u8),
    Raw(u64),
}

/// A pointer the library checks through the kernel.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum P {
    Valid,
    Null,
    Misaligned,
    Low(u16),
    ReadOnly,
    Unmapped,
    Kernel,
    Guard,
}

/// A controller name (or appid).
#[derive(Arbitrary, Debug, Clone)]
enum Name {
    Null,
    Loopback,
    Shm0,
    LoopbackUnit(u8),
    Mixed(u8),
    FuzzApp,
    Text(Vec<u8>),
    Ptr(P),
    /// That many bytes without a NUL, ending at a guard page.
    Unterminated(u8),
}

/// Export memory.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Va {
    Null,
    /// Arena page `page - 1` (so 0 is the guard below), plus a misalignment.
    Arena {
        page: u8,
        mis: u16,
    },
    ReadOnly,
    Shared,
    Unmapped,
    Kernel,
    Guard,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Size {
    Pages(u8),
    Bytes(u32),
    Huge(u64),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Off {
    Zero,
    Pages(u8),
    Small(u16),
    Neg(u16),
    Raw(i64),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Len {
    Pages(u8),
    Small(u16),
    Raw(u64),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Perm {
    R,
    W,
    RW,
    None,
    Raw(u32),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Node {
    Zero,
    Small(u8),
    Raw(u32),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Segid {
    E0,
    /// The id of an export of this input.
    Exp(u8),
    Zero,
    User(u32),
    Raw(u32),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum AclPtr {
    Null,
    Valid,
    Misaligned,
    Garbage(P),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum AclLen {
    Actual,
    Plus(u8),
    Raw(u32),
}

#[derive(Arbitrary, Debug, Clone)]
struct Acl {
    ptr: AclPtr,
    len: AclLen,
    /// (node selector, permission selector)
    entries: Vec<(u8, u16)>,
}

/// A data pointer (get/put): real memory, NULL or misaligned.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Dp {
    Null,
    Buf(u16),
    Mis(u16),
}

/// An address for RSM_MAP_FIXED.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Fixed {
    Slot(u8),
    SlotMis(u8, u16),
    Kernel,
    NonCanonical,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Cnt {
    Small(u16),
    Raw(u64),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum BarrierPtr {
    Null,
    Slot(u8),
    Mis(u8),
    Garbage(P),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum IoTy {
    Va,
    Handle,
    Raw(i32),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum LocalOff {
    Small(u16),
    /// usize::MAX - n: overflows any real address.
    Huge(u16),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
struct Iov {
    ty: IoTy,
    va: Dp,
    handle: H,
    local_off: LocalOff,
    remote_off: Len,
    len: Len,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum SgPtr {
    Null,
    Valid,
    Misaligned,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum SgCount {
    Actual,
    Raw(u64),
}

#[derive(Arbitrary, Debug, Clone)]
struct Sg {
    sg_ptr: SgPtr,
    iov_ptr: SgPtr,
    remote: H,
    count: SgCount,
    flags: u8,
    node: u32,
    entries: Vec<Iov>,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum FdSel {
    Pollfd(u8),
    Raw(i16),
    Minus1,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum FdsPtr {
    Null,
    Valid,
    Misaligned,
    Garbage(P),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum LocalVa {
    Null,
    Page(u8),
    Mis(u8),
}

#[derive(Arbitrary, Debug, Clone)]
enum Op {
    GetController {
        name: Name,
        out: P,
    },
    ReleaseController {
        h: H,
    },
    ControllerAttr {
        h: H,
        out: P,
    },
    Topology {
        out: P,
    },
    FreeTopologyNull,
    SegmentidRange {
        appid: Name,
        base: P,
        len: P,
    },
    ExportCreate {
        ctrl: H,
        out: P,
        va: Va,
        size: Size,
        flags: u32,
    },
    ExportDestroy {
        h: H,
    },
    ExportRebind {
        h: H,
        va: Va,
        off: i64,
        size: Size,
    },
    ExportPublish {
        h: H,
        segid_ptr: P,
        segid: Segid,
        acl: Acl,
    },
    ExportRepublish {
        h: H,
        acl: Acl,
    },
    ExportUnpublish {
        h: H,
    },
    ImportConnect {
        ctrl: H,
        node: Node,
        segid: Segid,
        perm: Perm,
        out: P,
    },
    ImportDisconnect {
        h: H,
    },
    ImportMap {
        h: H,
        addr: P,
        fixed: Fixed,
        attr: i32,
        perm: Perm,
        offset: Off,
        len: Len,
    },
    ImportUnmap {
        h: H,
    },
    Get {
        h: H,
        das: u8,
        offset: Off,
        ptr: Dp,
        count: Cnt,
    },
    Put {
        h: H,
        das: u8,
        offset: Off,
        ptr: Dp,
        count: Cnt,
        fill: u8,
    },
    Vector {
        put: bool,
        sg: Sg,
    },
    LocalCreate {
        ctrl: H,
        out: P,
        va: LocalVa,
        len: u32,
    },
    LocalFree {
        ctrl: H,
        l: H,
    },
    BarrierInit {
        h: H,
        ty: i32,
        b: BarrierPtr,
    },
    BarrierOpen {
        b: BarrierPtr,
    },
    BarrierOrder {
        b: BarrierPtr,
    },
    BarrierClose {
        b: BarrierPtr,
    },
    BarrierDestroy {
        b: BarrierPtr,
    },
    /// Writes arbitrary contents into a barrier slot.
    BarrierScribble {
        slot: u8,
        seg: H,
        gnum: u16,
        privdata: u64,
        state: u8,
    },
    GetMode {
        h: H,
        out: P,
    },
    SetMode {
        h: H,
        mode: i32,
    },
    GetPollfd {
        h: H,
        out: P,
    },
    ReleasePollfd {
        h: H,
    },
    SignalPost {
        h: H,
        flags: u32,
    },
    SignalWait {
        h: H,
        timeout: u8,
    },
    WaitPollfd {
        fds: Vec<(FdSel, i16)>,
        nfds: Option<u8>,
        ptr: FdsPtr,
        timeout: u8,
        num: P,
    },
    /// Lets the agent thread run (forced disconnects are asynchronous).
    Settle(u8),
}

// ---- the model --------------------------------------------------------------

#[derive(Debug, Clone)]
struct ExpM {
    h: usize,
    vaddr: usize,
    size: usize,
    segid: Option<u32>,
    live: bool,
    /// Changes whenever importers may stop seeing `vaddr` (destroy,
    /// unpublish, rebind).
    epoch: u64,
    persistent: bool,
}

#[derive(Debug, Clone)]
struct ImpM {
    h: usize,
    /// The export it reached: (export handle, its epoch at connect).
    exp: Option<(usize, u64)>,
    live: bool,
    /// Explicitly mapped; with the fixed slot if it is in one.
    mapped: Option<Option<usize>>,
    persistent: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Slot {
    Free,
    Used { h: usize, len: usize },
    Poisoned,
}

/// Addresses of the harness's memory (usize, so the world is `Send`).
struct Mem {
    pg: usize,
    arena: usize,
    arena_guard_lo: usize,
    local: usize,
    scratch: usize,
    name: usize,
    misc_guard: usize,
    ro: usize,
    shared: usize,
    fixed: usize,
    barriers: usize,
    barrier0: usize,
    pollfds: usize,
    sg: usize,
    iov: usize,
    acl: usize,
}

struct World {
    m: Mem,
    ctrl: usize,
    exps: Vec<ExpM>,
    imps: Vec<ImpM>,
    /// Controller handles seen in this input.
    ctrls: Vec<usize>,
    /// Local memory handles: (handle, live).
    locs: Vec<(usize, bool)>,
    /// pollfd references held, by handle.
    pollrefs: Vec<(usize, u32)>,
    pollfds: Vec<c_int>,
    slots: [Slot; FIX_SLOTS],
    retired: VecDeque<usize>,
    /// (descriptors, mappings) at the first count.
    baseline: Option<(usize, usize)>,
    epoch: u64,
    iter: u64,
    _segid_file: MemFile,
}

static WORLD: Mutex<Option<World>> = Mutex::new(None);

/// Scratch cells (64 bytes each) for out-pointers and small inputs.
const CELL_A: usize = 0;
const CELL_B: usize = 1;
const CELL_C: usize = 2;

/// Whether to generate the arguments of known, unfixed finding `which`
/// (fuzz/RESULTS.md) too: `RSM_FUZZ_ALL=1` for all of them, as the
/// regression replay does, or `RSM_FUZZ_KNOWN=poll,getput,vector` for some.
/// Off by default, so that a long run gets past them to new ground.
fn known(which: &str) -> bool {
    static ON: std::sync::OnceLock<(bool, String)> = std::sync::OnceLock::new();
    let (all, some) = ON.get_or_init(|| {
        (
            std::env::var_os("RSM_FUZZ_ALL").is_some_and(|v| v == "1"),
            std::env::var("RSM_FUZZ_KNOWN").unwrap_or_default(),
        )
    });
    *all || FIXED.contains(&which) || some.split(',').any(|w| w == which)
}

/// Findings fixed since (getput, vector: 6787334; poll: 4ba1464): their
/// arguments are generated again by default.
const FIXED: &[&str] = &["getput", "vector", "poll"];

/// Finding 2: lengths whose byte count exceeds isize::MAX make the library
/// build a slice that long before it checks the segment (UB). Unless
/// `known("getput")` / `known("vector")`, such lengths are folded below isize::MAX (still huge).
fn fold_len(which: &str, bytes_per: u64, n: u64) -> u64 {
    let max = isize::MAX as u64 / bytes_per;
    if known(which) || n <= max {
        n
    } else {
        n % (max + 1)
    }
}

fn pick(pool: &[usize], i: u8) -> usize {
    if pool.is_empty() {
        0
    } else {
        pool[i as usize % pool.len()]
    }
}

impl World {
    fn new() -> World {
        let pg = page();
        let rw = libc::PROT_READ | libc::PROT_WRITE;
        // Arena: guard, ARENA_PAGES, guard.
        let a = map_anon((ARENA_PAGES + 2) * pg, rw, false);
        guard(a, pg);
        guard(a + (ARENA_PAGES + 1) * pg, pg);
        // Local buffer, then a guard.
        let local = map_anon((LOCAL_PAGES + 1) * pg, rw, false);
        guard(local + LOCAL_PAGES * pg, pg);
        // Scratch page, name page, guard.
        let misc = map_anon(3 * pg, rw, false);
        guard(misc + 2 * pg, pg);
        // Read-only page of 0x01 bytes: read as an address, it is misaligned.
        let ro = map_anon(pg, rw, false);
        // SAFETY: our fresh page.
        unsafe { std::ptr::write_bytes(ro as *mut u8, 1, pg) };
        // SAFETY: our own page.
        unsafe { libc::mprotect(ro as *mut _, pg, libc::PROT_READ) };
        let shared = map_anon(pg, rw, true);
        // Reservation for fixed mappings.
        // SAFETY: a new inaccessible reservation where the kernel chooses.
        let fixed = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                FIX_SLOTS * ARENA_PAGES * pg,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if fixed == libc::MAP_FAILED {
            fuzz_bug!("harness: cannot reserve the fixed-map slots");
        }
        let zero_barrier = rsmapi_barrier_t {
            seg: std::ptr::null_mut(),
            gnum: 0,
            privdata: std::ptr::null_mut(),
        };
        let barriers = Box::leak(Box::new([zero_barrier; 4])).as_mut_ptr() as usize;
        let barrier0 = Box::leak(Box::new(zero_barrier)) as *mut _ as usize;
        let pfd = libc::pollfd {
            fd: -1,
            events: 0,
            revents: 0,
        };
        let pollfds = Box::leak(Box::new([pfd; 16])).as_mut_ptr() as usize;
        let sg = Box::leak(Box::new(rsm_scat_gath_t {
            local_nodeid: 0,
            io_request_count: 0,
            io_residual_count: 0,
            flags: 0,
            remote_handle: std::ptr::null_mut(),
            iovec: std::ptr::null_mut(),
        })) as *mut _ as usize;
        // SAFETY: all-zero is a valid rsm_iovec_t (io_type 0, NULL local).
        let iov = Box::leak(Box::new(unsafe { std::mem::zeroed::<[rsm_iovec_t; 16]>() }))
            .as_mut_ptr() as usize;
        let acl = Box::leak(Box::new([rsmapi_access_entry_t::default(); 72])).as_mut_ptr() as usize;
        let segid_file =
            MemFile::new(b"# fuzz\nreserved fuzzapp 0x600000 100\nreserve Other 0x700000 5 # c\n");
        // SAFETY (set_var): the harness is single-threaded here apart from
        // librsm's agent, which never reads the environment.
        std::env::set_var("RSM_SEGMENTID_FILE", &segid_file.path);
        let m = Mem {
            pg,
            arena: a + pg,
            arena_guard_lo: a,
            local,
            scratch: misc,
            name: misc + pg,
            misc_guard: misc + 2 * pg,
            ro,
            shared,
            fixed: fixed as usize,
            barriers,
            barrier0,
            pollfds,
            sg,
            iov,
            acl,
        };
        let mut w = World {
            m,
            ctrl: 0,
            exps: Vec::new(),
            imps: Vec::new(),
            ctrls: Vec::new(),
            locs: Vec::new(),
            pollrefs: Vec::new(),
            pollfds: Vec::new(),
            slots: [Slot::Free; FIX_SLOTS],
            retired: VecDeque::new(),
            baseline: None,
            epoch: 1,
            iter: 0,
            _segid_file: segid_file,
        };
        w.ctrl = w.must_get_controller();
        w.ctrls.push(w.ctrl);
        w.repair();
        w
    }

    fn next_epoch(&mut self) -> u64 {
        self.epoch += 1;
        self.epoch
    }

    // ---- argument resolution ----------------------------------------------

    fn cell(&self, i: usize) -> usize {
        self.m.scratch + 64 * i
    }

    fn ptr(&self, p: P, cell: usize) -> usize {
        match p {
            P::Valid => self.cell(cell),
            P::Null => 0,
            P::Misaligned => self.cell(cell) + 1,
            P::Low(n) => n as usize,
            P::ReadOnly => self.m.ro,
            P::Unmapped => UNMAPPED,
            P::Kernel => KERNEL,
            P::Guard => self.m.misc_guard,
        }
    }

    fn zero_cell(&self, cell: usize) {
        // SAFETY: a cell of our scratch page.
        unsafe { std::ptr::write_bytes(self.cell(cell) as *mut u8, 0, 64) };
    }

    fn read_cell<T: Copy>(&self, cell: usize) -> T {
        // SAFETY: a cell of our scratch page, 8-aligned, 64 bytes.
        unsafe { std::ptr::read(self.cell(cell) as *const T) }
    }

    fn write_cell<T: Copy>(&self, cell: usize, v: T) {
        // SAFETY: as in read_cell.
        unsafe { std::ptr::write(self.cell(cell) as *mut T, v) }
    }

    fn handle(&self, h: H) -> usize {
        let exps: Vec<usize> = self.exps.iter().map(|e| e.h).collect();
        let imps: Vec<usize> = self.imps.iter().map(|i| i.h).collect();
        let locs: Vec<usize> = self.locs.iter().map(|l| l.0).collect();
        let retired: Vec<usize> = self.retired.iter().copied().collect();
        match h {
            H::Null => 0,
            H::Ctrl(i) => pick(&self.ctrls, i),
            H::Exp(i) => pick(&exps, i),
            H::Imp(i) => pick(&imps, i),
            H::Loc(i) => pick(&locs, i),
            H::Retired(i) => pick(&retired, i),
            H::Flip(k, i, bit) => {
                let base = match k % 4 {
                    0 => pick(&self.ctrls, i),
                    1 => pick(&exps, i),
                    2 => pick(&imps, i),
                    _ => pick(&locs, i),
                };
                base ^ (1usize << (bit % 64))
            }
            H::Raw(v) => v as usize,
        }
    }

    /// Writes the name into the name page; returns the pointer to pass.
    fn name(&self, n: &Name) -> usize {
        let pg = self.m.pg;
        let put = |bytes: &[u8]| -> usize {
            let len = bytes.len().min(pg - 1);
            // SAFETY: our name page, `len + 1 <= pg` bytes.
            unsafe {
                std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.m.name as *mut u8, len);
                *((self.m.name + len) as *mut u8) = 0;
            }
            self.m.name
        };
        match n {
            Name::Null => 0,
            Name::Loopback => put(b"loopback"),
            Name::Shm0 => put(b"shm0"),
            Name::LoopbackUnit(u) => put(format!("loopback{u}").as_bytes()),
            Name::Mixed(k) => {
                let names: [&[u8]; 8] = [
                    b"LoopBack",
                    b"SHM",
                    b"shm00",
                    b"shm1",
                    b"loopback99999999999",
                    b"",
                    b"0",
                    b"loop back",
                ];
                put(names[*k as usize % names.len()])
            }
            Name::FuzzApp => put(b"FUZZAPP"),
            Name::Text(t) => put(&t[..t.len().min(400)]),
            Name::Ptr(p) => self.ptr(*p, CELL_C),
            Name::Unterminated(k) => {
                let len = *k as usize + 1;
                let start = self.m.name + pg - len;
                // SAFETY: the last `len` bytes of our name page.
                unsafe { std::ptr::write_bytes(start as *mut u8, b'l', len) };
                start
            }
        }
    }

    fn va(&self, v: Va) -> usize {
        let pg = self.m.pg;
        match v {
            Va::Null => 0,
            Va::Arena { page, mis } => {
                let idx = page as usize % (ARENA_PAGES + 2);
                self.m.arena_guard_lo + idx * pg + (mis as usize % pg)
            }
            Va::ReadOnly => self.m.ro,
            Va::Shared => self.m.shared,
            Va::Unmapped => UNMAPPED,
            Va::Kernel => KERNEL,
            Va::Guard => self.m.misc_guard,
        }
    }

    fn size(&self, s: Size) -> usize {
        match s {
            Size::Pages(n) => (n as usize % 40) * self.m.pg,
            Size::Bytes(b) => b as usize,
            Size::Huge(h) => h as usize,
        }
    }

    fn off(&self, o: Off) -> i64 {
        match o {
            Off::Zero => 0,
            Off::Pages(n) => (n as i64 % 40) * self.m.pg as i64,
            Off::Small(n) => n as i64,
            Off::Neg(n) => -(n as i64) - 1,
            Off::Raw(r) => r,
        }
    }

    fn len(&self, l: Len) -> usize {
        match l {
            Len::Pages(n) => (n as usize % 40) * self.m.pg,
            Len::Small(n) => n as usize,
            Len::Raw(r) => r as usize,
        }
    }

    fn segid(&self, s: Segid) -> u32 {
        match s {
            Segid::E0 => E0_SEGID,
            Segid::Exp(i) => {
                let ids: Vec<u32> = self.exps.iter().filter_map(|e| e.segid).collect();
                if ids.is_empty() {
                    E0_SEGID
                } else {
                    ids[i as usize % ids.len()]
                }
            }
            Segid::Zero => 0,
            Segid::User(v) => 0x40_0000 + v % (0x8000_0000 - 0x40_0000),
            Segid::Raw(v) => v,
        }
    }

    fn acl(&self, a: &Acl) -> (usize, u32) {
        let entries = a.entries.len().min(72);
        // SAFETY: our 72-entry ACL buffer.
        unsafe { std::ptr::write_bytes(self.m.acl as *mut rsmapi_access_entry_t, 0, 72) };
        for (i, &(node, perm)) in a.entries.iter().take(72).enumerate() {
            let e = rsmapi_access_entry_t {
                ae_node: node as u32 % 72,
                ae_permission: perm as u32 % 0o1000,
            };
            // SAFETY: entry i of our 72-entry ACL buffer.
            unsafe { std::ptr::write((self.m.acl as *mut rsmapi_access_entry_t).add(i), e) };
        }
        let ptr = match a.ptr {
            AclPtr::Null => 0,
            AclPtr::Valid => self.m.acl,
            AclPtr::Misaligned => self.m.acl + 2,
            AclPtr::Garbage(p) => self.ptr(p, CELL_C),
        };
        let len = match a.len {
            AclLen::Actual => entries as u32,
            AclLen::Plus(n) => entries as u32 + n as u32 % 4,
            AclLen::Raw(r) => r,
        };
        (ptr, len)
    }

    /// A data pointer aligned to `das` (unless misaligned on purpose).
    fn dp(&self, d: Dp, das: usize) -> usize {
        match d {
            Dp::Null => 0,
            Dp::Buf(o) => self.m.local + (o as usize % LOCAL_SLACK) / das * das,
            Dp::Mis(o) => self.m.local + (o as usize % LOCAL_SLACK) / das * das + 1,
        }
    }

    fn perm(p: Perm) -> u32 {
        match p {
            Perm::R => RSM_PERM_READ,
            Perm::W => RSM_PERM_WRITE,
            Perm::RW => RSM_PERM_RDWR,
            Perm::None => 0,
            Perm::Raw(r) => r,
        }
    }

    fn barrier_ptr(&self, b: BarrierPtr, checked: bool) -> usize {
        let slot =
            |i: u8| self.m.barriers + (i as usize % 4) * std::mem::size_of::<rsmapi_barrier_t>();
        match b {
            BarrierPtr::Null => 0,
            BarrierPtr::Slot(i) => slot(i),
            BarrierPtr::Mis(i) => slot(i) + 4,
            // Only init checks the pointer through the kernel.
            BarrierPtr::Garbage(p) if checked => self.ptr(p, CELL_C),
            BarrierPtr::Garbage(_) => 0,
        }
    }

    // ---- the model ------------------------------------------------------

    fn exp_mut(&mut self, h: usize) -> Option<&mut ExpM> {
        self.exps.iter_mut().find(|e| e.h == h && e.live)
    }

    fn imp_mut(&mut self, h: usize) -> Option<&mut ImpM> {
        self.imps.iter_mut().find(|i| i.h == h && i.live)
    }

    fn pollrefs_of(&self, h: usize) -> u32 {
        self.pollrefs
            .iter()
            .find(|(x, _)| *x == h)
            .map_or(0, |(_, n)| *n)
    }

    /// Where an import's bytes are in its exporter's memory, if the model
    /// is sure nothing moved them since the connect.
    fn shadow(&self, h: usize) -> Option<(usize, usize)> {
        let imp = self.imps.iter().find(|i| i.h == h && i.live)?;
        let (eh, epoch) = imp.exp?;
        let e = self.exps.iter().find(|e| e.h == eh && e.live)?;
        (e.epoch == epoch && e.segid.is_some()).then_some((e.vaddr, e.size))
    }

    /// Refills the holes the library left in fixed slot `i` (after an
    /// unmap, or a failed MAP_FIXED, which may drop what was there) with
    /// our PROT_NONE reservation. A hole something else got into first
    /// poisons the slot for good.
    fn reserve_slot(&mut self, i: usize) {
        let pg = self.m.pg;
        let base = self.slot_addr(i);
        let mut ok = true;
        for k in 0..ARENA_PAGES {
            let addr = base + k * pg;
            let mut vec = 0u8;
            // SAFETY: mincore only reports on the range; ENOMEM: unmapped.
            let mapped = unsafe { libc::mincore(addr as *mut _, pg, &mut vec) } == 0;
            if mapped {
                continue;
            }
            // SAFETY: fills a hole in our own reservation; NOREPLACE never
            // touches a mapping that got there meanwhile.
            let p = unsafe {
                libc::mmap(
                    addr as *mut _,
                    pg,
                    libc::PROT_NONE,
                    libc::MAP_PRIVATE
                        | libc::MAP_ANONYMOUS
                        | libc::MAP_NORESERVE
                        | libc::MAP_FIXED_NOREPLACE,
                    -1,
                    0,
                )
            };
            if p as usize != addr {
                if p != libc::MAP_FAILED {
                    // SAFETY: a mapping we just made elsewhere (kernels
                    // before 4.17 treat NOREPLACE as a hint).
                    unsafe { libc::munmap(p, pg) };
                }
                ok = false;
            }
        }
        self.slots[i] = if ok { Slot::Free } else { Slot::Poisoned };
    }

    /// Barrier slots start every input zeroed (never initialised).
    fn reset_barriers(&self) {
        // SAFETY: our 4 barrier slots; all-zero is a valid rsmapi_barrier_t.
        unsafe { std::ptr::write_bytes(self.m.barriers as *mut rsmapi_barrier_t, 0, 4) };
    }

    fn slot_addr(&self, i: usize) -> usize {
        self.m.fixed + i * ARENA_PAGES * self.m.pg
    }

    // ---- helpers that must succeed ------------------------------------------

    fn must(&self, what: &str, rc: c_int) {
        if rc != 0 {
            fuzz_bug!(
                "{what} failed with {} ({rc}) during the harness's own setup/teardown",
                rsm::error::name_of_code(rc)
            );
        }
    }

    fn must_get_controller(&mut self) -> usize {
        let mut h: rsmapi_controller_handle_t = std::ptr::null_mut();
        // SAFETY: a C string and a pointer to our own storage.
        let rc = unsafe { ctl::rsm_get_controller(c"loopback".as_ptr() as *mut c_char, &mut h) };
        self.must("rsm_get_controller(loopback)", rc);
        h as usize
    }

    /// Puts the persistent pair back: E0 published as E0_SEGID with an
    /// empty ACL, I0 connected to it read-write, implicit mode, barrier 0
    /// initialised; then checks that data goes through intact.
    fn repair(&mut self) {
        let pg = self.m.pg;
        // The controller.
        if rsm::core::controller::refs(self.ctrl) == 0 {
            self.ctrl = self.must_get_controller();
            self.ctrls.push(self.ctrl);
        }
        // E0.
        let e0 = self.exps.iter().position(|e| e.persistent && e.live);
        let mut moved = false;
        let e0 = match e0 {
            Some(i) => i,
            None => {
                let mut h: rsm_memseg_export_handle_t = std::ptr::null_mut();
                // SAFETY: our arena pages and our own out-pointer.
                let rc = unsafe {
                    ex::rsm_memseg_export_create(
                        self.ctrl as _,
                        &mut h,
                        self.m.arena as *mut c_void,
                        E0_PAGES * pg,
                        0,
                    )
                };
                self.must("export_create(E0)", rc);
                self.exps.retain(|e| !e.persistent);
                let epoch = self.next_epoch();
                self.exps.insert(
                    0,
                    ExpM {
                        h: h as usize,
                        vaddr: self.m.arena,
                        size: E0_PAGES * pg,
                        segid: None,
                        live: true,
                        epoch,
                        persistent: true,
                    },
                );
                moved = true;
                0
            }
        };
        let eh = self.exps[e0].h;
        if self.exps[e0].segid.is_some_and(|s| s != E0_SEGID) {
            // SAFETY: a live handle of ours.
            let rc = unsafe { ex::rsm_memseg_export_unpublish(eh as _) };
            self.must("unpublish(E0 under another id)", rc);
            self.exps[e0].segid = None;
        }
        if self.exps[e0].segid.is_none() {
            let mut id = E0_SEGID;
            // SAFETY: our own id; an empty ACL.
            let rc =
                unsafe { ex::rsm_memseg_export_publish(eh as _, &mut id, std::ptr::null_mut(), 0) };
            self.must("publish(E0)", rc);
            self.exps[e0].segid = Some(E0_SEGID);
            moved = true;
        }
        // SAFETY: a live handle; an empty ACL.
        let rc = unsafe { ex::rsm_memseg_export_republish(eh as _, std::ptr::null_mut(), 0) };
        self.must("republish(E0, empty ACL)", rc);
        let e0_epoch = self.exps[e0].epoch;
        // I0.
        let i0 = self.imps.iter().position(|i| i.persistent && i.live);
        let fresh = match i0 {
            Some(i) if !moved && self.imps[i].exp == Some((eh, e0_epoch)) => None,
            Some(i) => {
                // SAFETY: a live handle of ours.
                let rc = unsafe { im::rsm_memseg_import_disconnect(self.imps[i].h as _) };
                self.must("disconnect(I0 of an older E0)", rc);
                self.imps[i].live = false;
                Some(())
            }
            None => Some(()),
        };
        if fresh.is_some() {
            let mut h: rsm_memseg_import_handle_t = std::ptr::null_mut();
            // SAFETY: our own out-pointer.
            let rc = unsafe {
                im::rsm_memseg_import_connect(self.ctrl as _, 0, E0_SEGID, RSM_PERM_RDWR, &mut h)
            };
            self.must("connect(I0)", rc);
            self.imps.retain(|i| !i.persistent);
            self.imps.insert(
                0,
                ImpM {
                    h: h as usize,
                    exp: Some((eh, e0_epoch)),
                    live: true,
                    mapped: None,
                    persistent: true,
                },
            );
        }
        let i0h = self
            .imps
            .iter()
            .find(|i| i.persistent && i.live)
            .map(|i| i.h);
        let Some(i0h) = i0h else {
            fuzz_bug!("harness: no I0 after repair");
        };
        // SAFETY: a live handle; barrier0 is our own storage.
        unsafe {
            self.must(
                "set_mode(I0, implicit)",
                bar::rsm_memseg_import_set_mode(i0h as _, 1),
            );
            let b0 = self.m.barrier0 as *mut rsmapi_barrier_t;
            self.must(
                "init_barrier(I0)",
                bar::rsm_memseg_import_init_barrier(i0h as _, 1, b0),
            );
        }
        self.integrity(i0h);
    }

    /// Puts 64 bytes through I0 and finds them in E0's memory, and gets
    /// back what E0's memory holds.
    fn integrity(&mut self, i0h: usize) {
        let size = E0_PAGES * self.m.pg;
        let off = (self.iter as usize * 64) % size;
        let pattern: Vec<u8> = (0..64)
            .map(|k| (self.iter as u8).wrapping_mul(31).wrapping_add(k))
            .collect();
        let b0 = self.m.barrier0 as *mut rsmapi_barrier_t;
        let mut back = [0u8; 64];
        // SAFETY: our own buffers; a live handle and barrier.
        unsafe {
            self.must("open_barrier(I0)", bar::rsm_memseg_import_open_barrier(b0));
            self.must(
                "put(I0)",
                gp::rsm_memseg_import_put(i0h as _, off as i64, pattern.as_ptr() as *mut _, 64),
            );
            self.must(
                "close_barrier(I0)",
                bar::rsm_memseg_import_close_barrier(b0),
            );
            let seen = std::slice::from_raw_parts((self.m.arena + off) as *const u8, 64);
            if seen != &pattern[..] {
                fuzz_bug!("put through I0 at {off} is not in E0's memory: {seen:?} != {pattern:?}");
            }
            // The exporter writes; the importer reads.
            std::ptr::write_bytes((self.m.arena + off) as *mut u8, 0x5A, 64);
            self.must(
                "get(I0)",
                gp::rsm_memseg_import_get(i0h as _, off as i64, back.as_mut_ptr().cast(), 64),
            );
        }
        if back != [0x5A; 64] {
            fuzz_bug!("get through I0 at {off} does not see E0's memory: {back:?}");
        }
    }

    /// Tears down everything the input made and repairs the pair.
    fn settle(&mut self) {
        // pollfd references.
        for (h, n) in std::mem::take(&mut self.pollrefs) {
            for _ in 0..n {
                // SAFETY: a value; the library checks it.
                let rc = unsafe { ev::rsm_memseg_release_pollfd(h as *mut c_void) };
                self.must("release_pollfd (teardown)", rc);
            }
        }
        self.pollfds.clear();
        // Explicit mappings.
        for k in 0..self.imps.len() {
            if let (true, Some(slot)) = (self.imps[k].live, self.imps[k].mapped) {
                // SAFETY: a live handle of ours.
                let rc = unsafe { im::rsm_memseg_import_unmap(self.imps[k].h as _) };
                self.must("unmap (teardown)", rc);
                self.imps[k].mapped = None;
                self.after_unmap(slot, self.imps[k].h);
            }
        }
        // Imports, exports, local memory of this input.
        for k in 0..self.imps.len() {
            if self.imps[k].live && !self.imps[k].persistent {
                // SAFETY: a live handle of ours.
                let rc = unsafe { im::rsm_memseg_import_disconnect(self.imps[k].h as _) };
                self.must("disconnect (teardown)", rc);
                self.imps[k].live = false;
            }
        }
        for k in 0..self.exps.len() {
            if self.exps[k].live && !self.exps[k].persistent {
                // SAFETY: a live handle of ours.
                let rc = unsafe { ex::rsm_memseg_export_destroy(self.exps[k].h as _) };
                self.must("export_destroy (teardown)", rc);
                self.exps[k].live = false;
            }
        }
        if rsm::core::controller::refs(self.ctrl) == 0 {
            self.ctrl = self.must_get_controller();
            self.ctrls.push(self.ctrl);
        }
        for k in 0..self.locs.len() {
            if self.locs[k].1 {
                // SAFETY: values; the library checks them.
                let rc =
                    unsafe { lm::rsm_free_localmemory_handle(self.ctrl as _, self.locs[k].0 as _) };
                self.must("free_localmemory_handle (teardown)", rc);
                self.locs[k].1 = false;
            }
        }
        // Controller references taken by the input.
        for &c in &self.ctrls.clone() {
            let keep = u32::from(c == self.ctrl);
            while rsm::core::controller::refs(c) > keep {
                // SAFETY: a value; the library checks it.
                let rc = unsafe { ctl::rsm_release_controller(c as _) };
                self.must("release_controller (teardown)", rc);
            }
        }
        for k in 0..FIX_SLOTS {
            if let Slot::Used { .. } = self.slots[k] {
                fuzz_bug!("harness: fixed slot {k} still used after teardown");
            }
        }
        self.repair();
        // Retire the dead handles; keep the persistent ones for the next input.
        let mut dead: Vec<usize> = Vec::new();
        dead.extend(self.exps.iter().filter(|e| !e.live).map(|e| e.h));
        dead.extend(self.imps.iter().filter(|i| !i.live).map(|i| i.h));
        dead.extend(self.locs.iter().map(|l| l.0));
        dead.extend(
            self.ctrls
                .iter()
                .copied()
                .filter(|&c| rsm::core::controller::refs(c) == 0),
        );
        for h in dead {
            if !self.retired.contains(&h) {
                self.retired.push_back(h);
            }
        }
        while self.retired.len() > RETIRED_MAX {
            self.retired.pop_front();
        }
        self.exps.retain(|e| e.persistent && e.live);
        self.imps.retain(|i| i.persistent && i.live);
        self.locs.clear();
        self.ctrls = vec![self.ctrl];
    }

    /// After teardown only the pair is left: the descriptors and mappings
    /// of the process must not grow from input to input. Counted every
    /// LEAK_EVERY inputs against the first count.
    fn leaks(&mut self) {
        if !self.iter.is_multiple_of(LEAK_EVERY) {
            return;
        }
        let fds = librsm_fuzz::open_fds();
        let maps = std::fs::read_to_string("/proc/self/maps").map_or(0, |m| m.lines().count());
        if std::env::var_os("RSM_FUZZ_SHOW_LEAKS").is_some() {
            eprintln!("leaks: input {} fds {fds} maps {maps}", self.iter);
        }
        match self.baseline {
            None => self.baseline = Some((fds, maps)),
            Some((f0, _)) if fds > f0 + FD_SLACK => {
                fuzz_bug!(
                    "descriptors: {fds} open after teardown, {f0} at input {LEAK_EVERY}: a leak"
                );
            }
            Some((_, m0)) if maps > m0 + MAPS_SLACK => {
                fuzz_bug!("mappings: {maps} after teardown, {m0} at input {LEAK_EVERY}: a leak");
            }
            Some(_) => {}
        }
    }

    fn after_unmap(&mut self, slot: Option<usize>, h: usize) {
        if let Some(i) = slot {
            if let Slot::Used { h: owner, .. } = self.slots[i] {
                if owner == h {
                    self.reserve_slot(i);
                }
            }
        }
    }

    // ---- one operation ----------------------------------------------------

    fn run(&mut self, op: &Op) {
        let pg = self.m.pg;
        // Nothing an earlier operation left in the scratch cells may change
        // what this one does (inputs must replay the same way).
        // SAFETY: the first 256 bytes of our scratch page.
        unsafe { std::ptr::write_bytes(self.m.scratch as *mut u8, 0, 256) };
        match op {
            Op::GetController { name, out } => {
                let n = self.name(name);
                self.zero_cell(CELL_A);
                let o = self.ptr(*out, CELL_A);
                // SAFETY: checked pointers (spec 4.1).
                let rc = unsafe { ctl::rsm_get_controller(n as *mut c_char, o as *mut _) };
                check_rc("rsm_get_controller", rc, op);
                if rc == 0 {
                    let h: usize = self.read_cell(CELL_A);
                    if h == 0 || !matches!(out, P::Valid) {
                        fuzz_bug!("get_controller succeeded without storing a handle: {op:?}");
                    }
                    if !self.ctrls.contains(&h) {
                        self.ctrls.push(h);
                    }
                }
            }
            Op::ReleaseController { h } => {
                let h = self.handle(*h);
                // SAFETY: a value; the library checks it.
                let rc = unsafe { ctl::rsm_release_controller(h as _) };
                check_rc("rsm_release_controller", rc, op);
            }
            Op::ControllerAttr { h, out } => {
                let h = self.handle(*h);
                self.zero_cell(CELL_A);
                let o = self.ptr(*out, CELL_A);
                // SAFETY: a checked out-pointer.
                let rc = unsafe { ctl::rsm_get_controller_attr(h as _, o as *mut _) };
                check_rc("rsm_get_controller_attr", rc, op);
                if rc == 0 {
                    let a: rsmapi_controller_attr_t = self.read_cell(CELL_A);
                    if a.attr_page_size != pg || a.attr_direct_access_sizes == 0 {
                        fuzz_bug!("controller attributes wrong: {a:?}");
                    }
                }
            }
            Op::Topology { out } => {
                self.zero_cell(CELL_A);
                let o = self.ptr(*out, CELL_A);
                // SAFETY: a checked out-pointer.
                let rc = unsafe { topo::rsm_get_interconnect_topology(o as *mut _) };
                check_rc("rsm_get_interconnect_topology", rc, op);
                if rc == 0 {
                    let t: *mut rsm_topology_t = self.read_cell(CELL_A);
                    if t.is_null() {
                        fuzz_bug!("topology succeeded with NULL");
                    }
                    // SAFETY: the block the library just gave us.
                    let hdr = unsafe { (*t).topology_hdr };
                    if hdr.local_nodeid != 0 || hdr.local_cntlr_count == 0 {
                        fuzz_bug!("topology header wrong: {hdr:?}");
                    }
                    // SAFETY: ours to free, once.
                    unsafe { topo::rsm_free_interconnect_topology(t) };
                }
            }
            Op::FreeTopologyNull => {
                // SAFETY: NULL is ignored.
                unsafe { topo::rsm_free_interconnect_topology(std::ptr::null_mut()) };
            }
            Op::SegmentidRange { appid, base, len } => {
                let a = self.name(appid);
                let (b, l) = (self.ptr(*base, CELL_A), self.ptr(*len, CELL_B));
                // SAFETY: checked pointers.
                let rc = unsafe {
                    sid::rsm_get_segmentid_range(a as *const c_char, b as *mut _, l as *mut _)
                };
                check_rc("rsm_get_segmentid_range", rc, op);
                if rc == 0 && matches!(appid, Name::FuzzApp) {
                    let (gb, gl): (u32, u32) = (self.read_cell(CELL_A), self.read_cell(CELL_B));
                    if (gb, gl) != (0x600000, 100) {
                        fuzz_bug!("segment-id range of FUZZAPP: {gb:#x}+{gl}");
                    }
                }
            }
            Op::ExportCreate {
                ctrl,
                out,
                va,
                size,
                flags,
            } => {
                let c = self.handle(*ctrl);
                self.zero_cell(CELL_A);
                let o = self.ptr(*out, CELL_A);
                let (v, s) = (self.va(*va), self.size(*size));
                // SAFETY: `v` is our arena, or memory the library must refuse
                // (checked against the process's mappings before use).
                let rc = unsafe {
                    ex::rsm_memseg_export_create(c as _, o as *mut _, v as *mut c_void, s, *flags)
                };
                check_rc("rsm_memseg_export_create", rc, op);
                if rc == 0 {
                    let h: usize = self.read_cell(CELL_A);
                    let in_arena = v >= self.m.arena && v + s <= self.m.arena + ARENA_PAGES * pg;
                    if !in_arena {
                        fuzz_bug!("export_create accepted memory outside the arena: {v:#x}+{s:#x}");
                    }
                    let epoch = self.next_epoch();
                    self.exps.push(ExpM {
                        h,
                        vaddr: v,
                        size: s,
                        segid: None,
                        live: true,
                        epoch,
                        persistent: false,
                    });
                }
            }
            Op::ExportDestroy { h } => {
                let h = self.handle(*h);
                let refs = self.pollrefs_of(h);
                // SAFETY: a value; the library checks it.
                let rc = unsafe { ex::rsm_memseg_export_destroy(h as _) };
                check_rc("rsm_memseg_export_destroy", rc, op);
                if rc == 0 {
                    if refs > 0 {
                        fuzz_bug!("export_destroy succeeded with {refs} pollfd references held");
                    }
                    if self.exp_mut(h).is_none() {
                        fuzz_bug!("export_destroy succeeded on a handle not live: {h:#x}");
                    }
                    let epoch = self.next_epoch();
                    if let Some(e) = self.exp_mut(h) {
                        e.live = false;
                        e.epoch = epoch;
                    }
                }
            }
            Op::ExportRebind { h, va, off, size } => {
                let h = self.handle(*h);
                let (v, s) = (self.va(*va), self.size(*size));
                // SAFETY: as in create.
                let rc = unsafe { ex::rsm_memseg_export_rebind(h as _, v as *mut c_void, *off, s) };
                check_rc("rsm_memseg_export_rebind", rc, op);
                if rc == 0 {
                    let epoch = self.next_epoch();
                    match self.exp_mut(h) {
                        Some(e) => {
                            e.vaddr = v;
                            e.epoch = epoch;
                        }
                        None => fuzz_bug!("rebind succeeded on a handle not live: {h:#x}"),
                    }
                }
            }
            Op::ExportPublish {
                h,
                segid_ptr,
                segid,
                acl,
            } => {
                let h = self.handle(*h);
                let id = self.segid(*segid);
                self.write_cell(CELL_A, id);
                let sp = self.ptr(*segid_ptr, CELL_A);
                let (ap, al) = self.acl(acl);
                // SAFETY: checked pointers.
                let rc = unsafe {
                    ex::rsm_memseg_export_publish(h as _, sp as *mut _, ap as *mut _, al)
                };
                check_rc("rsm_memseg_export_publish", rc, op);
                if rc == 0 {
                    let got: u32 = match segid_ptr {
                        P::Valid => self.read_cell(CELL_A),
                        P::ReadOnly => 0x0101_0101,
                        _ => fuzz_bug!(
                            "publish succeeded with an unreadable segment id pointer: {op:?}"
                        ),
                    };
                    match self.exp_mut(h) {
                        Some(e) => e.segid = Some(got),
                        None => fuzz_bug!("publish succeeded on a handle not live: {h:#x}"),
                    }
                }
            }
            Op::ExportRepublish { h, acl } => {
                let h = self.handle(*h);
                let (ap, al) = self.acl(acl);
                // SAFETY: checked pointers.
                let rc = unsafe { ex::rsm_memseg_export_republish(h as _, ap as *mut _, al) };
                check_rc("rsm_memseg_export_republish", rc, op);
            }
            Op::ExportUnpublish { h } => {
                let h = self.handle(*h);
                // SAFETY: a value; the library checks it.
                let rc = unsafe { ex::rsm_memseg_export_unpublish(h as _) };
                check_rc("rsm_memseg_export_unpublish", rc, op);
                if rc == 0 {
                    let epoch = self.next_epoch();
                    match self.exp_mut(h) {
                        Some(e) => {
                            e.segid = None;
                            e.epoch = epoch;
                        }
                        None => fuzz_bug!("unpublish succeeded on a handle not live: {h:#x}"),
                    }
                }
            }
            Op::ImportConnect {
                ctrl,
                node,
                segid,
                perm,
                out,
            } => {
                let c = self.handle(*ctrl);
                let node = match node {
                    Node::Zero => 0,
                    Node::Small(n) => *n as u32 % 70,
                    Node::Raw(r) => *r,
                };
                let id = self.segid(*segid);
                let perm = Self::perm(*perm);
                self.zero_cell(CELL_A);
                let o = self.ptr(*out, CELL_A);
                // SAFETY: a checked out-pointer.
                let rc =
                    unsafe { im::rsm_memseg_import_connect(c as _, node, id, perm, o as *mut _) };
                check_rc("rsm_memseg_import_connect", rc, op);
                if rc == 0 {
                    let h: usize = self.read_cell(CELL_A);
                    let exp = (node == 0)
                        .then(|| self.exps.iter().find(|e| e.live && e.segid == Some(id)))
                        .flatten()
                        .map(|e| (e.h, e.epoch));
                    self.imps.push(ImpM {
                        h,
                        exp,
                        live: true,
                        mapped: None,
                        persistent: false,
                    });
                }
            }
            Op::ImportDisconnect { h } => {
                let h = self.handle(*h);
                let refs = self.pollrefs_of(h);
                let mapped = self
                    .imps
                    .iter()
                    .any(|i| i.h == h && i.live && i.mapped.is_some());
                // SAFETY: a value; the library checks it.
                let rc = unsafe { im::rsm_memseg_import_disconnect(h as _) };
                check_rc("rsm_memseg_import_disconnect", rc, op);
                if rc == 0 {
                    if refs > 0 || mapped {
                        fuzz_bug!("disconnect succeeded while mapped ({mapped}) or with {refs} pollfd refs");
                    }
                    match self.imp_mut(h) {
                        Some(i) => i.live = false,
                        None => fuzz_bug!("disconnect succeeded on a handle not live: {h:#x}"),
                    }
                }
            }
            Op::ImportMap {
                h,
                addr,
                fixed,
                attr,
                perm,
                offset,
                len,
            } => {
                let h = self.handle(*h);
                let perm = Self::perm(*perm);
                let (offset, len) = (self.off(*offset), self.len(*len));
                // The address to map at, if attr asks for RSM_MAP_FIXED: one
                // of our reserved slots, or one the kernel must refuse.
                let mut slot = None;
                let at = match *fixed {
                    Fixed::Slot(i) => {
                        let free = (0..FIX_SLOTS)
                            .map(|k| (k + i as usize) % FIX_SLOTS)
                            .find(|&k| self.slots[k] == Slot::Free);
                        match free {
                            Some(k) => {
                                slot = Some(k);
                                self.slot_addr(k)
                            }
                            None => self.slot_addr(0) + 1,
                        }
                    }
                    Fixed::SlotMis(i, m) => {
                        self.slot_addr(i as usize % FIX_SLOTS) + 1 + m as usize % (pg - 1)
                    }
                    Fixed::Kernel => KERNEL,
                    Fixed::NonCanonical => NONCANON,
                };
                self.write_cell(CELL_A, at);
                let ap = self.ptr(*addr, CELL_A);
                let is_fixed = attr & 1 != 0 && matches!(addr, P::Valid);
                if is_fixed {
                    if let Some(k) = slot {
                        self.slots[k] = Slot::Used { h, len };
                    }
                }
                // SAFETY: a checked pointer; a fixed address is one of our
                // reserved slots (or refused by the kernel).
                let rc = unsafe {
                    im::rsm_memseg_import_map(h as _, ap as *mut _, *attr, perm, offset, len)
                };
                check_rc("rsm_memseg_import_map", rc, op);
                if rc != 0 {
                    if let (true, Some(k)) = (is_fixed, slot) {
                        self.reserve_slot(k);
                    }
                    return;
                }
                let got: usize = self.read_cell(CELL_A);
                if is_fixed && got != at {
                    fuzz_bug!("fixed map at {at:#x} returned {got:#x}");
                }
                match self.imp_mut(h) {
                    Some(i) => i.mapped = Some(if is_fixed { slot } else { None }),
                    None => fuzz_bug!("map succeeded on a handle not live: {h:#x}"),
                }
                // The mapping is there with the rights asked for.
                // SAFETY: the mapping the library just made, `len > 0` bytes.
                unsafe {
                    let p = got as *mut u8;
                    let v = if perm & RSM_PERM_READ != 0 {
                        std::ptr::read_volatile(p)
                    } else {
                        0
                    };
                    if perm & RSM_PERM_WRITE != 0 && perm & RSM_PERM_READ != 0 {
                        std::ptr::write_volatile(p, v);
                    }
                }
            }
            Op::ImportUnmap { h } => {
                let h = self.handle(*h);
                // SAFETY: a value; the library checks it.
                let rc = unsafe { im::rsm_memseg_import_unmap(h as _) };
                check_rc("rsm_memseg_import_unmap", rc, op);
                if rc == 0 {
                    let slot = match self.imp_mut(h) {
                        Some(i) => i.mapped.take(),
                        None => fuzz_bug!("unmap succeeded on a handle not live: {h:#x}"),
                    };
                    match slot {
                        Some(s) => self.after_unmap(s, h),
                        None => fuzz_bug!("unmap succeeded on an import not mapped: {h:#x}"),
                    }
                }
            }
            Op::Get {
                h,
                das,
                offset,
                ptr,
                count,
            }
            | Op::Put {
                h,
                das,
                offset,
                ptr,
                count,
                ..
            } => {
                let put = matches!(op, Op::Put { .. });
                let h = self.handle(*h);
                let (das_n, das) = match das % 5 {
                    0 => (0, 1),
                    1 => (1, 1),
                    2 => (2, 2),
                    3 => (3, 4),
                    _ => (4, 8),
                };
                let offset = self.off(*offset);
                let p = self.dp(*ptr, das);
                let n = match count {
                    Cnt::Small(c) => *c as u64,
                    Cnt::Raw(r) => fold_len("getput", das as u64, *r),
                };
                let bytes = (n as usize).saturating_mul(das);
                if let (true, Op::Put { fill, .. }) = (put, op) {
                    if p != 0 && bytes <= ARENA_PAGES * pg {
                        // SAFETY: inside our local buffer (see LOCAL_PAGES).
                        unsafe { std::ptr::write_bytes(p as *mut u8, *fill, bytes) };
                    }
                }
                let shadow = self.shadow(h);
                // SAFETY: `p` is NULL, misaligned or our local buffer, which
                // holds any length a segment can accept.
                let rc = unsafe {
                    let hh = h as rsm_memseg_import_handle_t;
                    match (put, das_n) {
                        (false, 0) => {
                            gp::rsm_memseg_import_get(hh, offset, p as *mut c_void, n as usize)
                        }
                        (false, 1) => gp::rsm_memseg_import_get8(hh, offset, p as *mut u8, n as _),
                        (false, 2) => {
                            gp::rsm_memseg_import_get16(hh, offset, p as *mut u16, n as _)
                        }
                        (false, 3) => {
                            gp::rsm_memseg_import_get32(hh, offset, p as *mut u32, n as _)
                        }
                        (false, _) => {
                            gp::rsm_memseg_import_get64(hh, offset, p as *mut u64, n as _)
                        }
                        (true, 0) => {
                            gp::rsm_memseg_import_put(hh, offset, p as *mut c_void, n as usize)
                        }
                        (true, 1) => gp::rsm_memseg_import_put8(hh, offset, p as *mut u8, n as _),
                        (true, 2) => gp::rsm_memseg_import_put16(hh, offset, p as *mut u16, n as _),
                        (true, 3) => gp::rsm_memseg_import_put32(hh, offset, p as *mut u32, n as _),
                        (true, _) => gp::rsm_memseg_import_put64(hh, offset, p as *mut u64, n as _),
                    }
                };
                check_rc(
                    if put {
                        "rsm_memseg_import_put*"
                    } else {
                        "rsm_memseg_import_get*"
                    },
                    rc,
                    op,
                );
                if rc == 0 {
                    if p == 0 {
                        fuzz_bug!("get/put succeeded with a NULL buffer: {op:?}");
                    }
                    let Some((vaddr, size)) = shadow else { return };
                    if offset < 0 || offset as usize + bytes > size {
                        fuzz_bug!("get/put succeeded outside the segment ({size} bytes): {op:?}");
                    }
                    // SAFETY: both ranges checked above to be inside our
                    // buffers (the export's memory is our arena).
                    let (mine, theirs) = unsafe {
                        (
                            std::slice::from_raw_parts(p as *const u8, bytes),
                            std::slice::from_raw_parts(
                                (vaddr + offset as usize) as *const u8,
                                bytes,
                            ),
                        )
                    };
                    if mine != theirs {
                        fuzz_bug!("get/put moved other bytes than the exporter's: {op:?}");
                    }
                }
            }
            Op::Vector { put, sg } => self.vector(*put, sg, op),
            Op::LocalCreate { ctrl, out, va, len } => {
                let c = self.handle(*ctrl);
                self.zero_cell(CELL_A);
                let o = self.ptr(*out, CELL_A);
                let (v, l) = match va {
                    LocalVa::Null => (0, *len as usize),
                    LocalVa::Page(k) | LocalVa::Mis(k) => {
                        let k = *k as usize % LOCAL_PAGES;
                        let room = (LOCAL_PAGES - k) * pg;
                        let mis = usize::from(matches!(va, LocalVa::Mis(_)));
                        (self.m.local + k * pg + mis, *len as usize % (room + 1))
                    }
                };
                // SAFETY: `v` is our local buffer with `l` bytes in it (or
                // NULL/misaligned, which the library refuses).
                let rc = unsafe {
                    lm::rsm_create_localmemory_handle(c as _, o as *mut _, v as caddr_t, l)
                };
                check_rc("rsm_create_localmemory_handle", rc, op);
                if rc == 0 {
                    let h: usize = self.read_cell(CELL_A);
                    self.locs.push((h, true));
                }
            }
            Op::LocalFree { ctrl, l } => {
                let c = self.handle(*ctrl);
                let l = self.handle(*l);
                // SAFETY: values; the library checks them.
                let rc = unsafe { lm::rsm_free_localmemory_handle(c as _, l as _) };
                check_rc("rsm_free_localmemory_handle", rc, op);
                if rc == 0 {
                    match self.locs.iter_mut().find(|x| x.0 == l && x.1) {
                        Some(x) => x.1 = false,
                        None => fuzz_bug!("free_localmemory_handle succeeded on {l:#x}, not live"),
                    }
                }
            }
            Op::BarrierInit { h, ty, b } => {
                let h = self.handle(*h);
                let bp = self.barrier_ptr(*b, true);
                // SAFETY: checked through the kernel at init.
                let rc = unsafe { bar::rsm_memseg_import_init_barrier(h as _, *ty, bp as *mut _) };
                check_rc("rsm_memseg_import_init_barrier", rc, op);
            }
            Op::BarrierOpen { b }
            | Op::BarrierOrder { b }
            | Op::BarrierClose { b }
            | Op::BarrierDestroy { b } => {
                let bp = self.barrier_ptr(*b, false) as *mut rsmapi_barrier_t;
                // SAFETY: NULL, misaligned, or one of our barrier slots.
                let (name, rc) = unsafe {
                    match op {
                        Op::BarrierOpen { .. } => (
                            "rsm_memseg_import_open_barrier",
                            bar::rsm_memseg_import_open_barrier(bp),
                        ),
                        Op::BarrierOrder { .. } => (
                            "rsm_memseg_import_order_barrier",
                            bar::rsm_memseg_import_order_barrier(bp),
                        ),
                        Op::BarrierClose { .. } => (
                            "rsm_memseg_import_close_barrier",
                            bar::rsm_memseg_import_close_barrier(bp),
                        ),
                        _ => (
                            "rsm_memseg_import_destroy_barrier",
                            bar::rsm_memseg_import_destroy_barrier(bp),
                        ),
                    }
                };
                check_rc(name, rc, op);
            }
            Op::BarrierScribble {
                slot,
                seg,
                gnum,
                privdata,
                state,
            } => {
                let seg = self.handle(*seg);
                let privdata = match state % 3 {
                    0 => 0x5253_4D42_0000_0000usize,
                    1 => 0x5253_4D42_0000_0001,
                    _ => *privdata as usize,
                };
                let b = rsmapi_barrier_t {
                    seg: seg as *mut c_void,
                    gnum: *gnum,
                    privdata: privdata as *mut c_void,
                };
                let bp = self.barrier_ptr(BarrierPtr::Slot(*slot), false) as *mut rsmapi_barrier_t;
                // SAFETY: one of our barrier slots.
                unsafe { std::ptr::write(bp, b) };
            }
            Op::GetMode { h, out } => {
                let h = self.handle(*h);
                self.zero_cell(CELL_A);
                let o = self.ptr(*out, CELL_A);
                // SAFETY: a checked out-pointer.
                let rc = unsafe { bar::rsm_memseg_import_get_mode(h as _, o as *mut _) };
                check_rc("rsm_memseg_import_get_mode", rc, op);
                if rc == 0 {
                    let m: c_int = self.read_cell(CELL_A);
                    if m != 0 && m != 1 {
                        fuzz_bug!("get_mode stored {m}");
                    }
                }
            }
            Op::SetMode { h, mode } => {
                let h = self.handle(*h);
                // SAFETY: values; the library checks them.
                let rc = unsafe { bar::rsm_memseg_import_set_mode(h as _, *mode) };
                check_rc("rsm_memseg_import_set_mode", rc, op);
            }
            Op::GetPollfd { h, out } => {
                let h = self.handle(*h);
                self.zero_cell(CELL_A);
                let o = self.ptr(*out, CELL_A);
                // SAFETY: a checked out-pointer.
                let rc = unsafe { ev::rsm_memseg_get_pollfd(h as *mut c_void, o as *mut _) };
                check_rc("rsm_memseg_get_pollfd", rc, op);
                if rc == 0 {
                    let p: libc::pollfd = self.read_cell(CELL_A);
                    if p.fd < 0 {
                        fuzz_bug!("get_pollfd stored fd {}", p.fd);
                    }
                    self.pollfds.push(p.fd);
                    match self.pollrefs.iter_mut().find(|(x, _)| *x == h) {
                        Some((_, n)) => *n += 1,
                        None => self.pollrefs.push((h, 1)),
                    }
                }
            }
            Op::ReleasePollfd { h } => {
                let h = self.handle(*h);
                // SAFETY: a value; the library checks it.
                let rc = unsafe { ev::rsm_memseg_release_pollfd(h as *mut c_void) };
                check_rc("rsm_memseg_release_pollfd", rc, op);
                if rc == 0 {
                    if let Some((_, n)) = self.pollrefs.iter_mut().find(|(x, _)| *x == h) {
                        *n = n.saturating_sub(1);
                    }
                }
            }
            Op::SignalPost { h, flags } => {
                let h = self.handle(*h);
                // SAFETY: a value; the library checks it.
                let rc = unsafe { ev::rsm_intr_signal_post(h as *mut c_void, *flags) };
                check_rc("rsm_intr_signal_post", rc, op);
            }
            Op::SignalWait { h, timeout } => {
                let h = self.handle(*h);
                // SAFETY: a value; the library checks it.
                let rc =
                    unsafe { ev::rsm_intr_signal_wait(h as *mut c_void, (*timeout % 3) as c_int) };
                check_rc("rsm_intr_signal_wait", rc, op);
            }
            Op::WaitPollfd {
                fds,
                nfds,
                ptr,
                timeout,
                num,
            } => {
                let arr = self.m.pollfds as *mut libc::pollfd;
                for k in 0..16 {
                    let (fd, events) = fds.get(k).map_or((-1, 0), |&(sel, ev)| match sel {
                        // A segment's pollfd, asked for what it signals.
                        FdSel::Pollfd(i) if !self.pollfds.is_empty() => (
                            self.pollfds[i as usize % self.pollfds.len()],
                            ev | libc::POLLIN | libc::POLLRDNORM,
                        ),
                        FdSel::Pollfd(_) | FdSel::Minus1 => (-1, ev),
                        FdSel::Raw(r) => (r as c_int, ev),
                    });
                    // SAFETY: entry k of our 16-entry array.
                    unsafe {
                        *arr.add(k) = libc::pollfd {
                            fd,
                            events,
                            revents: 0,
                        }
                    };
                }
                let count = nfds.map_or(fds.len(), |n| n as usize);
                let (p, n) = match ptr {
                    FdsPtr::Null => (0, count),
                    // poll reads and writes all nfds entries: at most ours.
                    FdsPtr::Valid => (arr as usize, count.min(16)),
                    FdsPtr::Misaligned => (arr as usize + 2, count.min(15)),
                    FdsPtr::Garbage(P::Valid) => (arr as usize, count.min(16)),
                    // poll(2) would answer EFAULT, but ASan's poll
                    // interceptor reads the array first and crashes (see
                    // fuzz/RESULTS.md, finding 1): garbage only with
                    // nfds 0, unless known("poll").
                    FdsPtr::Garbage(g) if count == 0 || known("poll") => {
                        (self.ptr(*g, CELL_C), count)
                    }
                    FdsPtr::Garbage(_) => (arr as usize, count.min(16)),
                };
                self.zero_cell(CELL_A);
                let np = self.ptr(*num, CELL_A);
                // SAFETY: `p` is our array of at least `n` entries, or memory
                // poll(2) refuses with EFAULT; `np` is checked.
                let rc = unsafe {
                    ev::rsm_intr_signal_wait_pollfd(
                        p as *mut _,
                        n as _,
                        (*timeout % 2) as c_int,
                        np as *mut c_int,
                    )
                };
                check_rc("rsm_intr_signal_wait_pollfd", rc, op);
                if rc == 0 && matches!(num, P::Valid) {
                    let got: c_int = self.read_cell(CELL_A);
                    if got <= 0 || got as usize > n {
                        fuzz_bug!("wait_pollfd succeeded with *numfdsp = {got} of {n}");
                    }
                }
            }
            Op::Settle(ms) => {
                std::thread::sleep(std::time::Duration::from_micros(200 * (*ms as u64 % 4)))
            }
        }
    }

    fn vector(&mut self, put: bool, sg: &Sg, op: &Op) {
        let iov = self.m.iov as *mut rsm_iovec_t;
        for k in 0..16 {
            let e = match sg.entries.get(k) {
                None => {
                    // SAFETY: all-zero is a valid rsm_iovec_t.
                    unsafe { std::mem::zeroed() }
                }
                Some(e) => {
                    let io_type = match e.ty {
                        IoTy::Va => RSM_VA_TYPE,
                        IoTy::Handle => RSM_HANDLE_TYPE,
                        IoTy::Raw(r) => r,
                    };
                    let local = if io_type == RSM_HANDLE_TYPE {
                        rsm_iovec_local_t {
                            handle: self.handle(e.handle) as _,
                        }
                    } else {
                        // Real memory or NULL only: the library uses it as is.
                        let va = match e.va {
                            Dp::Null => 0,
                            Dp::Buf(o) | Dp::Mis(o) => self.m.local + o as usize % LOCAL_SLACK,
                        };
                        rsm_iovec_local_t {
                            vaddr: va as caddr_t,
                        }
                    };
                    let local_offset = match e.local_off {
                        LocalOff::Small(o) => o as usize % LOCAL_SLACK,
                        LocalOff::Huge(n) => usize::MAX - n as usize,
                    };
                    rsm_iovec_t {
                        io_type,
                        local,
                        local_offset,
                        remote_offset: self.len(e.remote_off),
                        transfer_length: fold_len("vector", 1, self.len(e.len) as u64) as usize,
                    }
                }
            };
            // SAFETY: entry k of our 16-entry array.
            unsafe { *iov.add(k) = e };
        }
        let count = match sg.count {
            SgCount::Actual => sg.entries.len() as u64,
            SgCount::Raw(r) => r,
        };
        let iov_p = match sg.iov_ptr {
            SgPtr::Null => 0,
            SgPtr::Valid => iov as usize,
            SgPtr::Misaligned => iov as usize + 4,
        };
        let s = self.m.sg as *mut rsm_scat_gath_t;
        // SAFETY: our own structure.
        unsafe {
            *s = rsm_scat_gath_t {
                local_nodeid: sg.node,
                io_request_count: count as _,
                io_residual_count: 0xDEAD,
                flags: sg.flags as u32 & 3,
                remote_handle: self.handle(sg.remote) as _,
                iovec: iov_p as *mut _,
            }
        };
        let sp = match sg.sg_ptr {
            SgPtr::Null => 0,
            SgPtr::Valid => s as usize,
            SgPtr::Misaligned => s as usize + 4,
        };
        // SAFETY: `sp` is NULL, misaligned or our structure, whose iovec
        // is NULL, misaligned or our 16 entries (count > 16 is refused
        // before any is read); each entry's memory is ours or NULL or
        // overflows (see LocalOff::Huge).
        let rc = unsafe {
            if put {
                sc::rsm_memseg_import_putv(sp as *mut _)
            } else {
                sc::rsm_memseg_import_getv(sp as *mut _)
            }
        };
        check_rc(
            if put {
                "rsm_memseg_import_putv"
            } else {
                "rsm_memseg_import_getv"
            },
            rc,
            op,
        );
        if rc == 0 {
            // SAFETY: our own structure.
            let residual = unsafe { (*s).io_residual_count };
            if residual != 0 {
                fuzz_bug!("vector succeeded with io_residual_count {residual}");
            }
        }
    }
}

fuzz_target!(
    init: {
        librsm_fuzz::isolate("api");
        let w = World::new();
        *WORLD.lock().unwrap() = Some(w);
    },
    |data: &[u8]| {
        let mut u = Unstructured::new(data);
        let mut ops = Vec::new();
        while ops.len() < MAX_OPS && !u.is_empty() {
            match Op::arbitrary(&mut u) {
                Ok(op) => ops.push(op),
                Err(_) => break,
            }
        }
        let mut guard = WORLD.lock().unwrap();
        let w = guard.as_mut().expect("initialised");
        w.iter += 1;
        w.reset_barriers();
        if std::env::var_os("RSM_FUZZ_SHOW").is_some() {
            for op in &ops {
                eprintln!("op: {op:?}");
            }
        }
        for op in &ops {
            w.run(op);
        }
        w.settle();
        w.leaks();
    }
);
