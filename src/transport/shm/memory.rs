//! True sharing of the exporter's own pages (DESIGN.md 5.2).
//!
//! `export_create` hands us memory the program already has (malloc, valloc,
//! an anonymous mmap). We copy it into a sealed memfd and map the memfd
//! `MAP_SHARED | MAP_FIXED` over the same range, so the program's pointer
//! keeps working and is now shared with importers. Destroy and rebind put a
//! private anonymous copy back. A memfd has no name in /dev/shm, so a
//! killed process leaks nothing.
//!
//! Ranges that are already shared (SysV shm, a `MAP_SHARED` file or another
//! segment) are refused with `RSMERR_BAD_ADDR`: remapping them would cut the
//! program off from their other users (docs/compatibility.md).

use crate::error::{RsmError, RsmResult};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// The memfd behind a segment, and where the exporter has it mapped.
pub struct Region {
    memfd: OwnedFd,
    vaddr: usize,
    len: usize,
}

fn errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// The RSMERR for a failure to give the segment's memfd its pages: a full
/// tmpfs, the memory cgroup, or `RLIMIT_FSIZE` (the per-process analogue
/// of Solaris' `max-exported-memory`) are all "insufficient memory".
fn memory_error(errno: i32) -> RsmError {
    match errno {
        libc::ENOSPC | libc::EFBIG | libc::ENOMEM => RsmError::InsufficientMem,
        e => RsmError::from_alloc_errno(e),
    }
}

/// Checks that `[vaddr, vaddr + len)` is mapped, private, readable and
/// writable: by asking the kernel for the mappings that cover it
/// (`PROCMAP_QUERY`, Linux 6.11), else from the text of `/proc/self/maps`.
/// The text grows by a line per exported segment, so reading it made
/// every create slower than the last (1.5 ms at 8,000 segments).
pub fn check_private_rw(vaddr: usize, len: usize) -> RsmResult<()> {
    let file =
        std::fs::File::open("/proc/self/maps").map_err(|_| RsmError::InsufficientResources)?;
    if let Some(verdict) = query_private_rw(&file, vaddr, len) {
        return verdict;
    }
    // Line by line, stopping at the range's end: the kernel makes the text
    // as it is read, so mappings above the range (with top-down mmap, the
    // segments exported before) are never produced.
    use std::io::BufRead;
    let lines = std::io::BufReader::with_capacity(64 << 10, file)
        .lines()
        .map_while(Result::ok);
    check_private_rw_lines(lines, vaddr, len)
}

/// `struct procmap_query` of `<linux/fs.h>`.
#[repr(C)]
#[derive(Default)]
struct ProcmapQuery {
    size: u64,
    query_flags: u64,
    query_addr: u64,
    vma_start: u64,
    vma_end: u64,
    vma_flags: u64,
    vma_page_size: u64,
    vma_offset: u64,
    inode: u64,
    dev_major: u32,
    dev_minor: u32,
    vma_name_size: u32,
    build_id_size: u32,
    vma_name_addr: u64,
    build_id_addr: u64,
}

/// `PROCMAP_QUERY`: `_IOWR('f', 17, struct procmap_query)`.
const PROCMAP_QUERY: libc::c_ulong = 0xC000_0000
    | ((std::mem::size_of::<ProcmapQuery>() as libc::c_ulong) << 16)
    | ((b'f' as libc::c_ulong) << 8)
    | 17;
const VMA_READABLE: u64 = 0x01;
const VMA_WRITABLE: u64 = 0x02;
const VMA_SHARED: u64 = 0x08;

/// The check of `check_private_rw` through `PROCMAP_QUERY` on `maps` (an
/// open `/proc/self/maps`); `None` if the kernel does not have it.
fn query_private_rw(maps: &std::fs::File, vaddr: usize, len: usize) -> Option<RsmResult<()>> {
    let Some(end) = vaddr.checked_add(len) else {
        return Some(Err(RsmError::BadAddr));
    };
    let mut covered = vaddr;
    while covered < end {
        let mut q = ProcmapQuery {
            size: std::mem::size_of::<ProcmapQuery>() as u64,
            query_addr: covered as u64,
            ..Default::default()
        };
        // SAFETY: the kernel reads and writes `q`, whose size it is told;
        // no name or build-id buffer is given (their sizes are 0).
        let rc = unsafe { libc::ioctl(maps.as_raw_fd(), PROCMAP_QUERY, &mut q) };
        if rc != 0 {
            return match errno() {
                libc::ENOENT => {
                    crate::why!("export: {vaddr:#x}+{len:#x} is not all mapped");
                    Some(Err(RsmError::BadAddr))
                }
                _ => None, // no PROCMAP_QUERY here: read the text
            };
        }
        let (lo, hi) = (q.vma_start as usize, q.vma_end as usize);
        if q.vma_flags & VMA_SHARED != 0 {
            crate::why!("export: {lo:#x}-{hi:#x} is a shared mapping; export private memory");
            return Some(Err(RsmError::BadAddr));
        }
        if q.vma_flags & (VMA_READABLE | VMA_WRITABLE) != VMA_READABLE | VMA_WRITABLE {
            crate::why!("export: {lo:#x}-{hi:#x} is not readable and writable");
            return Some(Err(RsmError::PermDenied));
        }
        if hi <= covered {
            return None; // not what the interface promises: read the text
        }
        covered = hi;
    }
    Some(Ok(()))
}

#[cfg(test)]
fn check_private_rw_in(maps: &str, vaddr: usize, len: usize) -> RsmResult<()> {
    check_private_rw_lines(maps.lines(), vaddr, len)
}

/// The check of `check_private_rw` on the lines of a maps text, in
/// address order; reads no line past the one that ends the verdict.
fn check_private_rw_lines<L: AsRef<str>>(
    lines: impl Iterator<Item = L>,
    vaddr: usize,
    len: usize,
) -> RsmResult<()> {
    let end = vaddr.checked_add(len).ok_or(RsmError::BadAddr)?;
    let mut covered = vaddr;
    for line in lines {
        let line = line.as_ref();
        let mut fields = line.split_whitespace();
        let (Some(range), Some(perms)) = (fields.next(), fields.next()) else {
            continue;
        };
        let Some((lo, hi)) = range.split_once('-') else {
            continue;
        };
        let (Ok(lo), Ok(hi)) = (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16))
        else {
            continue;
        };
        if hi <= covered {
            continue;
        }
        if lo > covered {
            break; // a hole, or the range starts after what is mapped
        }
        let p = perms.as_bytes();
        if p.len() < 4 || p[3] != b'p' {
            crate::why!("export: {lo:#x}-{hi:#x} is a shared mapping; export private memory");
            return Err(RsmError::BadAddr);
        }
        if p[0] != b'r' || p[1] != b'w' {
            crate::why!("export: {lo:#x}-{hi:#x} is not readable and writable");
            return Err(RsmError::PermDenied);
        }
        covered = hi;
        if covered >= end {
            return Ok(());
        }
    }
    crate::why!("export: {vaddr:#x}+{len:#x} is not all mapped");
    Err(RsmError::BadAddr)
}

/// Maps `len` bytes of `fd` (or anonymous memory if `fd` is -1) at
/// exactly `vaddr`, replacing what was there.
fn map_fixed(vaddr: usize, len: usize, fd: i32, shared: bool) -> RsmResult<()> {
    let flags = libc::MAP_FIXED
        | if shared {
            libc::MAP_SHARED
        } else {
            libc::MAP_PRIVATE
        }
        | if fd < 0 { libc::MAP_ANONYMOUS } else { 0 };
    // SAFETY: MAP_FIXED over a range the caller owns (checked mapped and
    // private by check_private_rw, or our own segment mapping); the bytes
    // it held were copied away first by every caller.
    let p = unsafe {
        libc::mmap(
            vaddr as *mut _,
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            flags,
            fd,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(RsmError::from_alloc_errno(errno()));
    }
    Ok(())
}

/// Writes `[vaddr, vaddr + len)` into `fd` from offset 0.
fn copy_into(fd: &OwnedFd, vaddr: usize, len: usize) -> RsmResult<()> {
    let mut done = 0;
    while done < len {
        // SAFETY: the range is mapped and readable (checked by the caller);
        // pwrite only reads from it.
        let n = unsafe {
            libc::pwrite(
                fd.as_raw_fd(),
                (vaddr + done) as *const _,
                len - done,
                done as i64,
            )
        };
        if n <= 0 {
            return Err(memory_error(if n < 0 { errno() } else { libc::ENOSPC }));
        }
        done += n as usize;
    }
    Ok(())
}

/// Replaces the shared mapping at `[vaddr, vaddr + len)` with a private
/// anonymous copy of its current contents (also the window transport's).
pub(crate) fn privatize(vaddr: usize, len: usize) -> RsmResult<()> {
    let tmp = crate::transport::map_anonymous(len, libc::MAP_PRIVATE)
        .map_err(RsmError::from_alloc_errno)? as *mut libc::c_void;
    // SAFETY: both ranges are `len` bytes, mapped, and do not overlap.
    unsafe { std::ptr::copy_nonoverlapping(vaddr as *const u8, tmp.cast::<u8>(), len) };
    // SAFETY: moves our temporary mapping over the segment range atomically;
    // the old (shared) mapping there is dropped, its data already copied.
    let moved = unsafe {
        libc::mremap(
            tmp,
            len,
            len,
            libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED,
            vaddr as *mut libc::c_void,
        )
    };
    if moved == libc::MAP_FAILED {
        let e = errno();
        // SAFETY: tmp is our own mapping, still in place.
        unsafe { libc::munmap(tmp, len) };
        return Err(RsmError::from_alloc_errno(e));
    }
    Ok(())
}

impl Region {
    /// Makes `[vaddr, vaddr + len)` shared in place.
    pub fn create(vaddr: usize, len: usize) -> RsmResult<Region> {
        check_private_rw(vaddr, len)?;
        // SAFETY: the name is a C string literal.
        let fd = unsafe {
            libc::memfd_create(
                c"rsm-segment".as_ptr(),
                libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
            )
        };
        if fd < 0 {
            return Err(RsmError::from_alloc_errno(errno()));
        }
        // SAFETY: memfd_create just returned this descriptor to us alone.
        let memfd = unsafe { OwnedFd::from_raw_fd(fd) };
        // Only our uid (and root) may reopen it for writing through /proc,
        // whatever descriptor an importer holds (DESIGN.md 5.3).
        // SAFETY: plain syscalls on our own descriptor.
        let ok =
            unsafe { libc::fchmod(fd, 0o600) == 0 && libc::ftruncate(fd, len as libc::off_t) == 0 };
        if !ok {
            return Err(memory_error(errno()));
        }
        copy_into(&memfd, vaddr, len)?;
        // No importer may shrink (SIGBUS for the others) or grow it.
        let seals = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;
        // SAFETY: fcntl on our own descriptor.
        if unsafe { libc::fcntl(fd, libc::F_ADD_SEALS, seals) } != 0 {
            return Err(RsmError::InternalError);
        }
        map_fixed(vaddr, len, fd, true)?;
        Ok(Region { memfd, vaddr, len })
    }

    /// The memfd, for handing to importers.
    pub fn memfd(&self) -> &OwnedFd {
        &self.memfd
    }

    /// Length in bytes.
    pub fn size(&self) -> usize {
        self.len
    }

    /// Moves the segment onto `new_vaddr`: the old range becomes a private
    /// copy, the memfd takes the new range's bytes and is mapped there.
    /// Importers keep the same memfd and so see the new contents.
    pub fn rebind(&mut self, new_vaddr: usize) -> RsmResult<()> {
        check_private_rw(new_vaddr, self.len)?;
        privatize(self.vaddr, self.len)?;
        copy_into(&self.memfd, new_vaddr, self.len)?;
        map_fixed(new_vaddr, self.len, self.memfd.as_raw_fd(), true)?;
        self.vaddr = new_vaddr;
        Ok(())
    }

    /// Puts a fresh memfd behind the range, with the same contents, so that
    /// descriptors handed out before (to importers now disconnected) no
    /// longer reach this memory.
    pub fn rotate(&mut self) -> RsmResult<()> {
        privatize(self.vaddr, self.len)?;
        let fresh = Region::create(self.vaddr, self.len)?;
        *self = fresh;
        Ok(())
    }

    /// Gives the program its memory back as private memory.
    pub fn release(self) -> RsmResult<()> {
        privatize(self.vaddr, self.len)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A fresh private anonymous mapping of `len` bytes (never unmapped).
    pub(crate) fn anon(len: usize) -> usize {
        crate::transport::map_anonymous(len, libc::MAP_PRIVATE).unwrap()
    }

    #[test]
    fn maps_lines_are_checked() {
        let maps =
            "1000-3000 rw-p 0 0:0 0\n3000-4000 rw-s 0 0:0 0 /dev/zero\n5000-6000 r--p 0 0:0 0\n";
        assert_eq!(check_private_rw_in(maps, 0x1000, 0x2000), Ok(()));
        assert_eq!(
            check_private_rw_in(maps, 0x2000, 0x2000),
            Err(RsmError::BadAddr)
        );
        assert_eq!(
            check_private_rw_in(maps, 0x5000, 0x1000),
            Err(RsmError::PermDenied)
        );
        assert_eq!(
            check_private_rw_in(maps, 0x4000, 0x1000),
            Err(RsmError::BadAddr)
        );
        assert_eq!(
            check_private_rw_in(maps, 0x0, 0x2000),
            Err(RsmError::BadAddr)
        );
        assert_eq!(
            check_private_rw_in(maps, usize::MAX - 10, 0x2000),
            Err(RsmError::BadAddr)
        );
    }

    /// The kernel's answer and the text's agree, mapping by mapping.
    #[test]
    fn procmap_query_agrees_with_the_text() {
        let page = 4096;
        let base = anon(4 * page);
        // SAFETY: our own fresh mapping: page 2 read-only, page 3 gone.
        unsafe {
            libc::mprotect((base + 2 * page) as *mut _, page, libc::PROT_READ);
            libc::munmap((base + 3 * page) as *mut _, page);
        }
        let shared = crate::transport::map_anonymous(page, libc::MAP_SHARED).unwrap();
        let file = std::fs::File::open("/proc/self/maps").unwrap();
        for (addr, len) in [
            (base, 2 * page),
            (base, 3 * page),
            (base + 2 * page, page),
            (base + 3 * page, page),
            (base, 4 * page),
            (shared, page),
            (usize::MAX - 10, page),
        ] {
            // Other tests run in parallel threads and may map the freed
            // page between the two reads: compare fresh snapshots until
            // they are of the same address space, a few times at most.
            let mut last = None;
            for _ in 0..5 {
                let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
                let text = check_private_rw_in(&maps, addr, len);
                // The fallback's own way: streamed from the file, stopping
                // at the range's end.
                let streamed = {
                    use std::io::BufRead;
                    let f = std::fs::File::open("/proc/self/maps").unwrap();
                    let lines = std::io::BufReader::new(f).lines().map_while(Result::ok);
                    check_private_rw_lines(lines, addr, len)
                };
                let kernel = query_private_rw(&file, addr, len);
                let same = kernel.is_none_or(|k| k == text) && streamed == text;
                last = Some((kernel, text, streamed));
                if same {
                    break;
                }
            }
            match last {
                Some((Some(kernel), text, streamed)) => {
                    assert_eq!(kernel, text, "{addr:#x}+{len:#x}");
                    assert_eq!(streamed, text, "{addr:#x}+{len:#x}");
                }
                Some((None, text, streamed)) => {
                    eprintln!("PROCMAP_QUERY not available: the text decides");
                    assert_eq!(streamed, text, "{addr:#x}+{len:#x}");
                }
                None => unreachable!(),
            }
        }
        assert_eq!(check_private_rw(base, 2 * page), Ok(()));
        assert_eq!(check_private_rw(base, 3 * page), Err(RsmError::PermDenied));
        assert_eq!(check_private_rw(shared, page), Err(RsmError::BadAddr));
    }

    #[test]
    fn sharing_in_place_keeps_the_data_and_gives_it_back() {
        let len = 3 * 4096;
        let base = anon(len);
        // SAFETY: our own fresh mapping of `len` bytes.
        let bytes = unsafe { std::slice::from_raw_parts_mut(base as *mut u8, len) };
        bytes.iter_mut().enumerate().for_each(|(i, b)| *b = i as u8);
        let region = Region::create(base, len).unwrap();
        assert!(
            bytes.iter().enumerate().all(|(i, &b)| b == i as u8),
            "data kept"
        );
        // A second view through the memfd sees the program's writes.
        bytes[5] = 0xAB;
        let mut one = [0u8; 1];
        // SAFETY: reading one byte of our own memfd into a local buffer.
        unsafe { libc::pread(region.memfd().as_raw_fd(), one.as_mut_ptr().cast(), 1, 5) };
        assert_eq!(one[0], 0xAB);
        assert_eq!(
            Region::create(base, len).err(),
            Some(RsmError::BadAddr),
            "already shared"
        );
        region.release().unwrap();
        assert_eq!(bytes[5], 0xAB);
        assert!(check_private_rw(base, len).is_ok());
        // SAFETY: unmapping our own mapping.
        unsafe { libc::munmap(base as *mut _, len) };
    }
}
