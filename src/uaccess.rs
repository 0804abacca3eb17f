//! Checked copies into and out of caller memory, like the Solaris kernel's
//! copyin/copyout: a pointer that is not NULL but points nowhere gives
//! `RSMERR_BAD_ADDR` instead of a crash (spec 4.1 "copy fault").
//!
//! The copy is one `process_vm_readv`/`process_vm_writev` on our own pid,
//! which the kernel performs with fault handling. Where a sandbox forbids
//! those calls, the same check is made by passing the bytes through a pipe
//! (`write` and `read` also report EFAULT). These are control-path calls;
//! the data path never comes here.

use crate::error::{RsmError, RsmResult};
use std::mem::{size_of, MaybeUninit};
use std::os::fd::AsRawFd;

/// Copies `len` bytes from `src` to `dst`, where one side is the caller's
/// unchecked pointer and the other our own buffer. EFAULT: `RSMERR_BAD_ADDR`.
fn checked_copy(dst: *mut u8, src: *const u8, len: usize) -> RsmResult<()> {
    let local = libc::iovec {
        iov_base: dst.cast(),
        iov_len: len,
    };
    let remote = libc::iovec {
        iov_base: src as *mut _,
        iov_len: len,
    };
    let pid = std::process::id() as libc::pid_t;
    // SAFETY: process_vm_readv writes only inside `local` and reads only
    // inside `remote`; the kernel validates both and reports EFAULT rather
    // than faulting this process. Callers pass buffers of `len` bytes.
    let n = unsafe { libc::process_vm_readv(pid, &local, 1, &remote, 1, 0) };
    if n == len as isize {
        return Ok(());
    }
    match std::io::Error::last_os_error().raw_os_error() {
        Some(libc::ENOSYS) | Some(libc::EPERM) => copy_through_pipe(dst, src, len),
        Some(libc::ENOMEM) => Err(RsmError::InsufficientMem),
        _ => Err(RsmError::BadAddr),
    }
}

/// The sandbox fallback of [`checked_copy`].
fn copy_through_pipe(dst: *mut u8, src: *const u8, len: usize) -> RsmResult<()> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| RsmError::from_alloc_errno(e as i32))?;
    // SAFETY: write reads `len` bytes at `src`; a bad address is EFAULT.
    let n = unsafe { libc::write(w.as_raw_fd(), src.cast(), len) };
    if n != len as isize {
        return Err(RsmError::BadAddr);
    }
    // SAFETY: read stores `len` bytes at `dst`; a bad address is EFAULT.
    let n = unsafe { libc::read(r.as_raw_fd(), dst.cast(), len) };
    if n != len as isize {
        return Err(RsmError::BadAddr);
    }
    Ok(())
}

/// Writes `value` to `dst`. NULL, misaligned, unmapped or read-only `dst`:
/// `RSMERR_BAD_ADDR`.
pub fn copy_out<T: Copy>(dst: *mut T, value: &T) -> RsmResult<()> {
    if dst.is_null() || !dst.is_aligned() {
        return Err(RsmError::BadAddr);
    }
    // The kernel writes into the caller's memory "remotely": swap roles.
    let local = libc::iovec {
        iov_base: value as *const T as *mut _,
        iov_len: size_of::<T>(),
    };
    let remote = libc::iovec {
        iov_base: dst.cast(),
        iov_len: size_of::<T>(),
    };
    let pid = std::process::id() as libc::pid_t;
    // SAFETY: as in checked_copy, with the directions exchanged: the kernel
    // reads `local` (our value) and writes `remote`, checking it.
    let n = unsafe { libc::process_vm_writev(pid, &local, 1, &remote, 1, 0) };
    if n == size_of::<T>() as isize {
        return Ok(());
    }
    match std::io::Error::last_os_error().raw_os_error() {
        Some(libc::ENOSYS) | Some(libc::EPERM) => {
            copy_through_pipe(dst.cast(), (value as *const T).cast(), size_of::<T>())
        }
        _ => Err(RsmError::BadAddr),
    }
}

/// Checks that `len` bytes at `src` can be read, through the kernel, in
/// chunks (nothing is kept): for an array the library hands to a system
/// call, so that a bad one is `RSMERR_BAD_ADDR` even where a sanitizer's
/// interceptor would read it in user space first.
pub fn check_readable(src: *const u8, len: usize) -> RsmResult<()> {
    let mut chunk = [0u8; 4096];
    let mut done = 0;
    while done < len {
        let n = (len - done).min(chunk.len());
        checked_copy(chunk.as_mut_ptr(), src.wrapping_add(done), n)?;
        done += n;
    }
    Ok(())
}

/// Reads a `T` from `src`. NULL, misaligned or unreadable: `RSMERR_BAD_ADDR`.
/// `T` must be plain data (integers, pointers) for which any bits are valid.
pub fn copy_in<T: Copy>(src: *const T) -> RsmResult<T> {
    if src.is_null() || !src.is_aligned() {
        return Err(RsmError::BadAddr);
    }
    let mut value = MaybeUninit::<T>::uninit();
    checked_copy(value.as_mut_ptr().cast(), src.cast(), size_of::<T>())?;
    // SAFETY: checked_copy filled all size_of::<T>() bytes; T is plain data.
    Ok(unsafe { value.assume_init() })
}

/// Reads a NUL-terminated C string of at most `max` bytes (without the NUL).
/// Unreadable memory: `RSMERR_BAD_ADDR`; longer than `max`: `Ok(None)`.
/// Reads in pieces that never cross a 4 KiB boundary, so a string that ends
/// just before an unmapped page is still read whole.
pub fn copy_in_cstr(src: *const std::ffi::c_char, max: usize) -> RsmResult<Option<Vec<u8>>> {
    const CHUNK: usize = 4096; // divides every Linux page size
    if src.is_null() {
        return Err(RsmError::BadAddr);
    }
    let mut out = Vec::new();
    let mut addr = src as usize;
    while out.len() <= max {
        let len = (CHUNK - addr % CHUNK).min(max + 1 - out.len());
        let mut buf = vec![0u8; len];
        checked_copy(buf.as_mut_ptr(), addr as *const u8, len)?;
        if let Some(nul) = buf.iter().position(|&b| b == 0) {
            out.extend_from_slice(&buf[..nul]);
            return Ok((out.len() <= max).then_some(out));
        }
        out.extend_from_slice(&buf);
        addr += len;
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_fail_cleanly_on_bad_pointers() {
        let mut x = 0u64;
        assert_eq!(copy_out(&mut x, &7), Ok(()));
        assert_eq!(x, 7);
        assert_eq!(copy_in(&x as *const u64), Ok(7));
        assert_eq!(
            copy_out(std::ptr::null_mut::<u64>(), &1),
            Err(RsmError::BadAddr)
        );
        assert_eq!(copy_out(0x10 as *mut u64, &1), Err(RsmError::BadAddr));
        assert_eq!(
            copy_out(3 as *mut u64, &1),
            Err(RsmError::BadAddr),
            "misaligned"
        );
        assert_eq!(copy_in(0x10 as *const u64), Err(RsmError::BadAddr));
        // The text of this very function is mapped read-only.
        let ro = copies_fail_cleanly_on_bad_pointers as *const () as *mut u8;
        assert_eq!(copy_out(ro, &1u8), Err(RsmError::BadAddr));
    }

    #[test]
    fn the_pipe_fallback_checks_as_well() {
        let mut x = 0u32;
        let v = 9u32;
        let (dst, src) = (&mut x as *mut u32 as *mut u8, &v as *const u32 as *const u8);
        assert_eq!(copy_through_pipe(dst, src, 4), Ok(()));
        assert_eq!(x, 9);
        assert_eq!(
            copy_through_pipe(0x10 as *mut u8, src, 4),
            Err(RsmError::BadAddr)
        );
        assert_eq!(
            copy_through_pipe(dst, 0x10 as *const u8, 4),
            Err(RsmError::BadAddr)
        );
    }

    #[test]
    fn c_strings() {
        let s = c"shm0";
        assert_eq!(copy_in_cstr(s.as_ptr(), 8), Ok(Some(b"shm0".to_vec())));
        assert_eq!(copy_in_cstr(s.as_ptr(), 4), Ok(Some(b"shm0".to_vec())));
        assert_eq!(copy_in_cstr(s.as_ptr(), 3), Ok(None));
        assert_eq!(copy_in_cstr(0x8 as *const _, 3), Err(RsmError::BadAddr));
        let long = vec![b'x'; 10_000]
            .into_iter()
            .chain([0])
            .collect::<Vec<u8>>();
        let got = copy_in_cstr(long.as_ptr().cast(), 20_000).unwrap().unwrap();
        assert_eq!(got.len(), 10_000);
    }
}
