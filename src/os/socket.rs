//! The Unix sockets texcache serves (the control socket, §9; the shared tier's, §12): made so
//! that nobody else can connect even for an instant, a stale one replaced, anything else at the
//! path left alone, and removed at the end only if it is still ours; and the pipe that wakes a
//! server thread.
//!
//! A socket is bound inside a private 0700 directory with a random name (so nobody can make it
//! fail or take it over in a shared folder such as `/tmp`), set to mode 0600, then renamed into
//! place.

use std::io::{self, Read};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// A socket file this process made: its path and inode, to remove it only while it is ours.
pub(crate) struct SocketFile {
    path: PathBuf,
    ino: u64,
}

impl SocketFile {
    /// Binds a socket at `path` with `bind` (which binds and listens at the path it is given),
    /// mode 0600, replacing a stale socket there (one nobody accepts on). The error is in words.
    pub(crate) fn bind<T>(
        path: &Path,
        bind: impl FnOnce(&Path) -> io::Result<T>,
    ) -> Result<(T, SocketFile), String> {
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_socket() => {
                if is_served(path) {
                    return Err("another process is serving this socket".into());
                }
                std::fs::remove_file(path).map_err(|e| format!("stale socket: {e}"))?
            }
            Ok(_) => {
                return Err(
                    "a file that is not a socket exists at this path; left untouched".into(),
                )
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.to_string()),
        }
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let private = parent.join(format!(".texcache-socket-{:016x}", random_u64()));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&private)
            .map_err(|e| {
                format!(
                    "cannot create a private directory in {}: {e}",
                    parent.display()
                )
            })?;
        let staged = private.join("s");
        let bound = bind(&staged).and_then(|l| {
            std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o600))?;
            std::fs::rename(&staged, path)?;
            Ok(l)
        });
        let _ = std::fs::remove_file(&staged);
        let _ = std::fs::remove_dir(&private);
        let bound = bound.map_err(|e| e.to_string())?;
        let ino = std::fs::symlink_metadata(path)
            .map_err(|e| e.to_string())?
            .ino();
        Ok((
            bound,
            SocketFile {
                path: path.into(),
                ino,
            },
        ))
    }
}

impl Drop for SocketFile {
    /// Removes the socket file, if the file at the path is still this one.
    fn drop(&mut self) {
        if std::fs::symlink_metadata(&self.path).is_ok_and(|m| m.ino() == self.ino) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Whether a process accepts connections on the socket at `path` (of either kind texcache
/// serves: stream or sequenced packets).
fn is_served(path: &Path) -> bool {
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        return true;
    }
    connect_seqpacket(path).is_ok()
}

/// Waits until `listener` has a connection to accept (`true`), or until the write end of the
/// `wake` pipe is closed or polling fails (`false`: the server is stopping).
pub(crate) fn wait_for_connection(listener: BorrowedFd<'_>, wake: BorrowedFd<'_>) -> bool {
    match crate::os::file::poll_two([listener.as_raw_fd(), wake.as_raw_fd()], libc::POLLIN) {
        Ok(revents) => revents[1] == 0,
        Err(_) => false,
    }
}

/// A pipe (read end, write end), both close-on-exec.
pub(crate) fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded, so both are open descriptors that nothing else owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// The `sockaddr_un` of `path`.
fn address(path: &Path) -> io::Result<(libc::sockaddr_un, libc::socklen_t)> {
    // SAFETY: an all-zero sockaddr_un is a valid value.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes = path.as_os_str().as_encoded_bytes();
    if bytes.len() >= addr.sun_path.len() || bytes.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "a socket path must be under {} bytes, without NUL",
                addr.sun_path.len()
            ),
        ));
    }
    for (d, &s) in addr.sun_path.iter_mut().zip(bytes) {
        *d = s as libc::c_char;
    }
    let len = std::mem::size_of::<libc::sa_family_t>() + bytes.len() + 1;
    Ok((addr, len as libc::socklen_t))
}

/// A new `SOCK_SEQPACKET` Unix socket, close-on-exec.
fn seqpacket() -> io::Result<OwnedFd> {
    // SAFETY: a plain socket call; the result is checked.
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new descriptor nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A `SOCK_SEQPACKET` socket bound and listening at `path` (message boundaries kept, and a
/// descriptor passed with a message arrives with it).
pub(crate) fn listen_seqpacket(path: &Path) -> io::Result<OwnedFd> {
    let fd = seqpacket()?;
    let (addr, len) = address(path)?;
    // SAFETY: `addr` is a valid sockaddr_un of `len` bytes; `fd` is ours.
    let r = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            &addr as *const libc::sockaddr_un as *const libc::sockaddr,
            len,
        )
    };
    // SAFETY: as above.
    if r < 0 || unsafe { libc::listen(fd.as_raw_fd(), 128) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

/// A `SOCK_SEQPACKET` connection to the socket at `path`.
pub(crate) fn connect_seqpacket(path: &Path) -> io::Result<OwnedFd> {
    let fd = seqpacket()?;
    let (addr, len) = address(path)?;
    loop {
        // SAFETY: as in `listen_seqpacket`.
        let r = unsafe {
            libc::connect(
                fd.as_raw_fd(),
                &addr as *const libc::sockaddr_un as *const libc::sockaddr,
                len,
            )
        };
        if r == 0 {
            return Ok(fd);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// A random number from the kernel, for names others must not guess.
pub(crate) fn random_u64() -> u64 {
    let mut bytes = [0u8; 8];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .is_ok()
    {
        return u64::from_ne_bytes(bytes);
    }
    // No /dev/urandom (a sandbox): the std hasher's per-process random keys.
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

/// Sends one packet on a `SOCK_SEQPACKET` socket, with `fd` attached if given (`SCM_RIGHTS`);
/// never raises `SIGPIPE`.
pub(crate) fn send_packet(
    socket: BorrowedFd<'_>,
    bytes: &[u8],
    fd: Option<BorrowedFd<'_>>,
) -> io::Result<()> {
    let mut iov = libc::iovec {
        iov_base: bytes.as_ptr() as *mut libc::c_void,
        iov_len: bytes.len(),
    };
    // Room for one descriptor's control message, aligned as cmsghdr wants.
    let mut control = [0u64; 4];
    // SAFETY: an all-zero msghdr is a valid value; its pointers are set below to live buffers.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if let Some(fd) = fd {
        // SAFETY: CMSG_SPACE is a size computation.
        let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<libc::c_int>() as u32) } as usize;
        msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
        msg.msg_controllen = space;
        // SAFETY: `control` holds `space` bytes (32 ≥ CMSG_SPACE(4)), so the first header and
        // its data lie inside it; CMSG_FIRSTHDR is non-null for a non-empty control buffer.
        unsafe {
            let c = libc::CMSG_FIRSTHDR(&msg);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<libc::c_int>() as u32) as usize;
            std::ptr::write_unaligned(libc::CMSG_DATA(c) as *mut libc::c_int, fd.as_raw_fd());
        }
    }
    loop {
        // SAFETY: `msg` points at `iov` and `control`, live for the call.
        let n = unsafe { libc::sendmsg(socket.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
        if n >= 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Receives one packet into `buf` (cleared first, filled up to its capacity), and the
/// descriptor that came with it, if any (close-on-exec). `Ok(false)` at the end of the
/// connection; a packet longer than the capacity is an `InvalidData` error.
pub(crate) fn recv_packet(
    socket: BorrowedFd<'_>,
    buf: &mut Vec<u8>,
    fd: &mut Option<OwnedFd>,
) -> io::Result<bool> {
    buf.clear();
    *fd = None;
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr() as *mut libc::c_void,
        iov_len: buf.capacity(),
    };
    let mut control = [0u64; 8];
    // SAFETY: as in `send_packet`.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
    msg.msg_controllen = std::mem::size_of_val(&control);
    let n = loop {
        // SAFETY: `msg` points at `buf`'s spare capacity and `control`, live for the call.
        let n = unsafe { libc::recvmsg(socket.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n >= 0 {
            break n as usize;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    };
    // SAFETY: recvmsg wrote `n` bytes at the start of the capacity.
    unsafe { buf.set_len(n) };
    // Take every descriptor that came, so none leaks, keeping the first.
    // SAFETY: the control buffer was filled by recvmsg; CMSG_FIRSTHDR/NXTHDR walk it within
    // `msg_controllen`, and each SCM_RIGHTS payload holds (len - CMSG_LEN(0)) / 4 descriptors
    // now owned by this process.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let count = ((*c).cmsg_len - libc::CMSG_LEN(0) as usize)
                    / std::mem::size_of::<libc::c_int>();
                let data = libc::CMSG_DATA(c) as *const libc::c_int;
                for i in 0..count {
                    let raw = std::ptr::read_unaligned(data.add(i));
                    let owned = OwnedFd::from_raw_fd(raw);
                    if fd.is_none() {
                        *fd = Some(owned);
                    }
                }
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    if msg.msg_flags & (libc::MSG_TRUNC | libc::MSG_CTRUNC) != 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "a message longer than allowed",
        ));
    }
    Ok(n > 0)
}

/// The process id of the peer of a connected Unix socket (`SO_PEERCRED`).
pub(crate) fn peer_pid(socket: BorrowedFd<'_>) -> Option<u32> {
    // SAFETY: an all-zero ucred is valid; getsockopt writes at most `len` bytes into it.
    let mut cred: libc::ucred = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: as above.
    let r = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            &mut cred as *mut libc::ucred as *mut libc::c_void,
            &mut len,
        )
    };
    (r == 0).then_some(cred.pid as u32)
}

/// Sets how long a send may block before it fails (`SO_SNDTIMEO`).
pub(crate) fn set_send_timeout(
    socket: BorrowedFd<'_>,
    timeout: std::time::Duration,
) -> io::Result<()> {
    let tv = libc::timeval {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_usec: timeout.subsec_micros() as libc::suseconds_t,
    };
    // SAFETY: `tv` is a valid timeval for the call.
    let r = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDTIMEO,
            &tv as *const libc::timeval as *const libc::c_void,
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
