//! A network namespace per instance, holding only a loopback interface and
//! the instance's Runtime API listener at 127.0.0.1:9001 (Lambda's own
//! address). Nothing on the host's loopback — the server's listener, a local
//! PostgreSQL, any daemon trusting 127.0.0.0/8 — and no other instance can be
//! reached from it, and nothing but this instance can reach its Runtime API.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

/// Where the Runtime API listens inside the namespace.
pub const RUNTIME_API_ADDR: &str = "127.0.0.1:9001";

/// A fresh namespace (as a descriptor) and a listener bound inside it.
pub struct Namespace {
    pub fd: OwnedFd,
    pub listener: std::net::TcpListener,
}

/// Makes the namespace on a short-lived thread of its own: `unshare` moves
/// only the calling thread, and the namespace outlives it through the
/// descriptor and the listening socket.
pub fn create() -> io::Result<Namespace> {
    std::thread::Builder::new()
        .name("updraft-netns".into())
        .spawn(make)?
        .join()
        .map_err(|_| io::Error::other("the network namespace thread panicked"))?
}

fn make() -> io::Result<Namespace> {
    #[allow(unsafe_code)]
    // SAFETY: unshare affects only this thread, which ends after this call.
    unsafe {
        if libc::unshare(libc::CLONE_NEWNET) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    loopback_up()?;
    let fd = std::fs::File::open("/proc/thread-self/ns/net")?;
    let listener = std::net::TcpListener::bind(RUNTIME_API_ADDR)?;
    listener.set_nonblocking(true)?;
    Ok(Namespace {
        fd: OwnedFd::from(fd),
        listener,
    })
}

/// Sets `lo` up in the calling thread's network namespace.
fn loopback_up() -> io::Result<()> {
    #[allow(unsafe_code)]
    // SAFETY: the ifreq is zeroed plain data we own; the socket is owned at once.
    unsafe {
        let raw = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        let sock = OwnedFd::from_raw_fd(raw);
        let mut req: libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lo".iter().enumerate() {
            req.ifr_name[i] = *b as libc::c_char;
        }
        use std::os::fd::AsRawFd;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) != 0 {
            return Err(io::Error::last_os_error());
        }
        req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_namespace_has_its_own_loopback() {
        #[allow(unsafe_code)]
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            assert!(
                std::env::var("CI").is_err(),
                "CI runs as root: network namespaces must work"
            );
            eprintln!("needs root: skipped");
            return;
        }
        // Two namespaces both bind 127.0.0.1:9001: they are separate.
        let a = create().unwrap();
        let b = create().unwrap();
        assert_eq!(
            a.listener.local_addr().unwrap().to_string(),
            RUNTIME_API_ADDR
        );
        assert_eq!(
            b.listener.local_addr().unwrap().to_string(),
            RUNTIME_API_ADDR
        );
    }
}
