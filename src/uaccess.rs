//! Checked copies into and out of caller memory, like the Solaris kernel's
//! copyout: a pointer that is not NULL but points nowhere gives
//! `RSMERR_BAD_ADDR` instead of a crash (spec 4.1 "copy fault").
//!
//! The copy is one `process_vm_writev`/`process_vm_readv` on our own pid,
//! which the kernel performs with fault handling. These are control-path
//! calls only; the data path never comes here.

use crate::error::{RsmError, RsmResult};
use std::mem::{size_of, MaybeUninit};

/// Writes `value` to `dst`. NULL or unmapped/read-only `dst`: `RSMERR_BAD_ADDR`.
pub fn copy_out<T: Copy>(dst: *mut T, value: &T) -> RsmResult<()> {
    if dst.is_null() || !dst.is_aligned() {
        return Err(RsmError::BadAddr);
    }
    let local = libc::iovec {
        iov_base: value as *const T as *mut _,
        iov_len: size_of::<T>(),
    };
    let remote = libc::iovec {
        iov_base: dst.cast(),
        iov_len: size_of::<T>(),
    };
    // SAFETY: both iovecs describe size_of::<T>() bytes; the kernel checks
    // `remote` itself and reports EFAULT rather than faulting us.
    let n = unsafe { libc::process_vm_writev(libc::getpid(), &local, 1, &remote, 1, 0) };
    if n == size_of::<T>() as isize {
        return Ok(());
    }
    match std::io::Error::last_os_error().raw_os_error() {
        Some(libc::EFAULT) | None => Err(RsmError::BadAddr),
        // A sandbox without process_vm_*: fall back to a plain store.
        Some(libc::ENOSYS) | Some(libc::EPERM) => {
            // SAFETY: dst is non-NULL and aligned; without the syscall we
            // can only trust the caller, as Solaris user space did.
            unsafe { dst.write(*value) };
            Ok(())
        }
        Some(_) => Err(RsmError::BadAddr),
    }
}

/// Reads a `T` from `src`. NULL or unreadable `src`: `RSMERR_BAD_ADDR`.
pub fn copy_in<T: Copy>(src: *const T) -> RsmResult<T> {
    if src.is_null() || !src.is_aligned() {
        return Err(RsmError::BadAddr);
    }
    let mut value = MaybeUninit::<T>::uninit();
    let local = libc::iovec {
        iov_base: value.as_mut_ptr().cast(),
        iov_len: size_of::<T>(),
    };
    let remote = libc::iovec {
        iov_base: src as *mut _,
        iov_len: size_of::<T>(),
    };
    // SAFETY: as in copy_out; `local` is our own buffer of the right size.
    let n = unsafe { libc::process_vm_readv(libc::getpid(), &local, 1, &remote, 1, 0) };
    if n == size_of::<T>() as isize {
        // SAFETY: the kernel filled all size_of::<T>() bytes; T is Copy
        // plain data (integers and pointers) for which any bits are valid.
        return Ok(unsafe { value.assume_init() });
    }
    match std::io::Error::last_os_error().raw_os_error() {
        Some(libc::ENOSYS) | Some(libc::EPERM) => {
            // SAFETY: non-NULL and aligned; see copy_out.
            Ok(unsafe { src.read() })
        }
        _ => Err(RsmError::BadAddr),
    }
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
        let local = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: len,
        };
        let remote = libc::iovec {
            iov_base: addr as *mut _,
            iov_len: len,
        };
        // SAFETY: `local` is our own buffer of `len` bytes; the kernel checks
        // `remote` and reports EFAULT instead of faulting.
        let n = unsafe { libc::process_vm_readv(libc::getpid(), &local, 1, &remote, 1, 0) };
        if n != len as isize {
            return Err(RsmError::BadAddr);
        }
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
        assert_eq!(copy_in(0x10 as *const u64), Err(RsmError::BadAddr));
        // Text of this very function is mapped read-only.
        let ro = copies_fail_cleanly_on_bad_pointers as *const () as *mut u8;
        assert_eq!(copy_out(ro, &1u8), Err(RsmError::BadAddr));
    }

    #[test]
    fn c_strings() {
        let s = c"shm0";
        assert_eq!(copy_in_cstr(s.as_ptr(), 8), Ok(Some(b"shm0".to_vec())));
        assert_eq!(copy_in_cstr(s.as_ptr(), 3), Ok(None));
        assert_eq!(copy_in_cstr(0x8 as *const _, 3), Err(RsmError::BadAddr));
    }
}
