//! Pixels in anonymous shared memory: one sealed `memfd` per picture (the shared tier, §12).
//!
//! The process that decodes a picture (the owner) makes a [`SharedPixels`] with
//! [`SharedPixels::new`]: a `memfd` (never a file under `/dev/shm`, so a container's 64 MiB
//! there is no limit and nothing outlives the last process that maps it), sized and mapped
//! writable in the owner, then sealed: it can neither shrink nor grow, and no new writable
//! mapping or `write` is allowed on it by anyone (`F_SEAL_FUTURE_WRITE`), whichever descriptor
//! is used, a copy received over a socket or one reopened through `/proc/self/fd` included. The
//! owner's own mapping, made before the seal, stays writable; it writes the pixels once, before
//! it hands the descriptor out. Another process maps it with [`SharedPixels::map_readonly`],
//! which checks the seals first. A picture's memory goes back to the system when the last
//! descriptor is closed and the last mapping unmapped, in every process.
//!
//! # Safety
//!
//! A `SharedPixels` owns one mapping of exactly `len` bytes at `ptr` (none when `len` is 0), made
//! by `mmap` in [`SharedPixels::new`] or [`SharedPixels::map_readonly`] and unmapped once, in
//! `Drop`. The memory behind it cannot shrink (`F_SEAL_SHRINK`, checked before a foreign
//! descriptor is mapped), so reading any byte of the mapping never faults. Only the owner's
//! mapping is writable, and only through `&mut self`; after the descriptor has been handed out,
//! the owner holds the pixels behind an immutable `Bitmap`, so no process ever reads bytes that
//! are being written.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;

/// Bytes of shared pixels mapped in this process (the `mapped_bytes` of §12's statistics).
static MAPPED_BYTES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Bytes of shared pixels mapped in this process now.
pub(crate) fn mapped_bytes() -> u64 {
    MAPPED_BYTES.load(std::sync::atomic::Ordering::Relaxed)
}

/// The seals every shared picture carries.
const SEALS: libc::c_int = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_FUTURE_WRITE;

/// One picture's pixels in a sealed `memfd`, mapped in this process.
pub(crate) struct SharedPixels {
    fd: OwnedFd,
    ptr: NonNull<u8>,
    len: usize,
    writable: bool,
}

// SAFETY: the mapping is plain memory owned by this value (the module's rules); `&self` gives
// only reads, and the owner's writes need `&mut self`.
unsafe impl Send for SharedPixels {}
// SAFETY: as above.
unsafe impl Sync for SharedPixels {}

fn check(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// A new `memfd` of `len` zero bytes named `name`, close-on-exec, open to seals.
fn memfd(name: &CStr, len: usize) -> io::Result<OwnedFd> {
    // SAFETY: `name` is a valid C string; the flags are memfd_create's.
    let raw = check(unsafe {
        libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING)
    })?;
    // SAFETY: memfd_create returned a new descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let size =
        libc::off_t::try_from(len).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: a plain call on our own descriptor.
    check(unsafe { libc::ftruncate(fd.as_raw_fd(), size) })?;
    Ok(fd)
}

/// The seals and the size of the memory behind `fd`.
fn seals_and_size(fd: &OwnedFd) -> io::Result<(libc::c_int, u64)> {
    // SAFETY: plain fcntl and fstat calls on a descriptor we own, into a zeroed stat.
    unsafe {
        let seals = check(libc::fcntl(fd.as_raw_fd(), libc::F_GET_SEALS))?;
        let mut st: libc::stat = std::mem::zeroed();
        check(libc::fstat(fd.as_raw_fd(), &mut st))?;
        Ok((seals, u64::try_from(st.st_size).unwrap_or(u64::MAX)))
    }
}

impl SharedPixels {
    /// `len` zero bytes in a new sealed `memfd` named `name` (the name shows in
    /// `/proc/PID/maps` as `/memfd:NAME`), writable in this process alone.
    pub(crate) fn new(name: &CStr, len: usize) -> io::Result<SharedPixels> {
        let fd = memfd(name, len)?;
        let ptr = map(&fd, len, libc::PROT_READ | libc::PROT_WRITE)?;
        let pixels = SharedPixels {
            fd,
            ptr,
            len,
            writable: true,
        };
        // SAFETY: a plain fcntl on our own descriptor; the writable mapping above was made
        // before the seal, which leaves it writable (the module's rules).
        check(unsafe {
            libc::fcntl(
                pixels.fd.as_raw_fd(),
                libc::F_ADD_SEALS,
                SEALS | libc::F_SEAL_SEAL,
            )
        })?;
        Ok(pixels)
    }

    /// Maps a region another process made, read-only, after checking that it is sealed as
    /// [`SharedPixels::new`] seals (so it can neither shrink under the mapping nor be written)
    /// and holds `len` bytes.
    pub(crate) fn map_readonly(fd: OwnedFd, len: usize) -> io::Result<SharedPixels> {
        let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_string());
        let (seals, size) = seals_and_size(&fd)?;
        if seals & SEALS != SEALS {
            return Err(invalid(
                "the shared memory is not sealed against writes and resizing",
            ));
        }
        if size != len as u64 {
            return Err(invalid("the shared memory is not the size announced"));
        }
        let ptr = map(&fd, len, libc::PROT_READ)?;
        Ok(SharedPixels {
            fd,
            ptr,
            len,
            writable: false,
        })
    }

    /// The pixels.
    pub(crate) fn as_slice(&self) -> &[u8] {
        // SAFETY: `ptr` maps `len` readable bytes for as long as `self` lives (the module's
        // rules); nobody writes them while `&self` is borrowed.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// The pixels, to write, in the process that made the region; `None` in another.
    pub(crate) fn as_mut_slice(&mut self) -> Option<&mut [u8]> {
        // SAFETY: as in `as_slice`; the mapping is writable and `&mut self` is unique.
        self.writable
            .then(|| unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) })
    }

    /// The descriptor, to hand to another process.
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Bytes mapped.
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

/// Maps `len` bytes of `fd` shared, with `prot`; a dangling pointer for 0 bytes.
fn map(fd: &OwnedFd, len: usize, prot: libc::c_int) -> io::Result<NonNull<u8>> {
    if len == 0 {
        return Ok(NonNull::dangling());
    }
    // SAFETY: a new mapping chosen by the kernel, of a descriptor we own; the result is checked.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            prot,
            libc::MAP_SHARED,
            fd.as_raw_fd(),
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    MAPPED_BYTES.fetch_add(len as u64, std::sync::atomic::Ordering::Relaxed);
    Ok(NonNull::new(p as *mut u8).expect("mmap never returns null on success"))
}

impl Drop for SharedPixels {
    fn drop(&mut self) {
        if self.len > 0 {
            // SAFETY: the one mapping this value owns, unmapped once (the module's rules).
            unsafe { libc::munmap(self.ptr.as_ptr() as *mut libc::c_void, self.len) };
            MAPPED_BYTES.fetch_sub(self.len as u64, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

impl std::fmt::Debug for SharedPixels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SharedPixels({} bytes, fd {})",
            self.len,
            self.fd.as_raw_fd()
        )
    }
}

/// Words in shared memory that the owner and one client both write: a client's hold table
/// (§12). Unsealed (the client writes it) and private to the pair: the owner makes one for
/// each client. Its words are only ever accessed as atomics.
pub(crate) struct SharedWords {
    fd: OwnedFd,
    ptr: NonNull<u8>,
    words: usize,
}

// SAFETY: the mapping is shared memory accessed only through atomics (see `word`).
unsafe impl Send for SharedWords {}
// SAFETY: as above.
unsafe impl Sync for SharedWords {}

impl SharedWords {
    /// `words` zeroed 64-bit words in a new `memfd`, mapped writable.
    pub(crate) fn new(name: &CStr, words: usize) -> io::Result<SharedWords> {
        let len = words * 8;
        let fd = memfd(name, len)?;
        // Nobody may resize it under a mapping.
        // SAFETY: a plain fcntl on our own descriptor.
        check(unsafe {
            libc::fcntl(
                fd.as_raw_fd(),
                libc::F_ADD_SEALS,
                libc::F_SEAL_SHRINK | libc::F_SEAL_GROW,
            )
        })?;
        let ptr = map(&fd, len, libc::PROT_READ | libc::PROT_WRITE)?;
        Ok(SharedWords { fd, ptr, words })
    }

    /// Maps the words another process made, writable, after checking that they cannot
    /// shrink and hold `words` words.
    pub(crate) fn map(fd: OwnedFd, words: usize) -> io::Result<SharedWords> {
        let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_string());
        let (seals, size) = seals_and_size(&fd)?;
        if seals & libc::F_SEAL_SHRINK == 0 || size != words as u64 * 8 {
            return Err(invalid(
                "the hold table is not sealed against shrinking, or not its size",
            ));
        }
        let ptr = map(&fd, words * 8, libc::PROT_READ | libc::PROT_WRITE)?;
        Ok(SharedWords { fd, ptr, words })
    }

    /// Word `i` (panics past the end).
    pub(crate) fn word(&self, i: usize) -> &std::sync::atomic::AtomicU64 {
        assert!(i < self.words, "word {i} of {}", self.words);
        // SAFETY: `i` is inside the mapping, which lives as long as `&self`; the memory is
        // 8-aligned (page-aligned mapping) and only ever accessed as atomics, by either
        // process, so an `AtomicU64` over it is sound.
        unsafe { &*(self.ptr.as_ptr().add(i * 8) as *const std::sync::atomic::AtomicU64) }
    }

    /// The descriptor, to hand to the client.
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Drop for SharedWords {
    fn drop(&mut self) {
        // SAFETY: the one mapping this value owns, unmapped once.
        unsafe { libc::munmap(self.ptr.as_ptr() as *mut libc::c_void, self.words * 8) };
        MAPPED_BYTES.fetch_sub(self.words as u64 * 8, std::sync::atomic::Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dup(fd: BorrowedFd<'_>) -> OwnedFd {
        fd.try_clone_to_owned().unwrap()
    }

    #[test]
    fn another_mapping_sees_the_pixels_and_cannot_write_them() {
        let mut owner = SharedPixels::new(c"texcache-test", 10_000).unwrap();
        owner.as_mut_slice().unwrap().fill(7);
        let view = SharedPixels::map_readonly(dup(owner.fd()), 10_000).unwrap();
        assert_eq!(view.as_slice(), &[7u8; 10_000][..]);
        let mut view = view;
        assert!(view.as_mut_slice().is_none());
        // A writable mapping, a write, and a descriptor reopened read-write through /proc all
        // fail: the seal holds whatever descriptor is used.
        let fd = dup(owner.fd());
        let rw = map(&fd, 10_000, libc::PROT_READ | libc::PROT_WRITE);
        assert_eq!(rw.unwrap_err().raw_os_error(), Some(libc::EPERM));
        // SAFETY: a write of one byte from a live buffer to our own descriptor.
        let n = unsafe { libc::pwrite(fd.as_raw_fd(), [1u8].as_ptr().cast(), 1, 0) };
        assert_eq!(n, -1);
        let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
        let reopened = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        let reopened = OwnedFd::from(reopened);
        let rw = map(&reopened, 10_000, libc::PROT_READ | libc::PROT_WRITE);
        assert_eq!(rw.unwrap_err().raw_os_error(), Some(libc::EPERM));
        // Nor can it be resized under the mappings.
        // SAFETY: plain calls on our own descriptor.
        assert_eq!(unsafe { libc::ftruncate(reopened.as_raw_fd(), 10) }, -1);
        assert_eq!(owner.as_slice(), &[7u8; 10_000][..]);
    }

    #[test]
    fn unsealed_or_resized_memory_is_refused() {
        // SAFETY: as in `SharedPixels::new`, without the seals.
        let fd = unsafe {
            OwnedFd::from_raw_fd(
                check(libc::memfd_create(c"x".as_ptr(), libc::MFD_CLOEXEC)).unwrap(),
            )
        };
        // SAFETY: a plain call on our own descriptor.
        check(unsafe { libc::ftruncate(fd.as_raw_fd(), 100) }).unwrap();
        let e = SharedPixels::map_readonly(fd, 100).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        let owner = SharedPixels::new(c"y", 100).unwrap();
        let e = SharedPixels::map_readonly(dup(owner.fd()), 4096).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn nothing_is_left_under_dev_shm() {
        let before: Vec<_> = std::fs::read_dir("/dev/shm")
            .map(|d| d.count())
            .into_iter()
            .collect();
        let owner = SharedPixels::new(c"texcache-shm-check", 1 << 20).unwrap();
        let after: Vec<_> = std::fs::read_dir("/dev/shm")
            .map(|d| d.count())
            .into_iter()
            .collect();
        assert_eq!(before, after);
        assert_eq!(owner.len(), 1 << 20);
    }
}
