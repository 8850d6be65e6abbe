//! The Runtime API's listener. Inside an instance's own network namespace
//! only that instance can reach it; on the host's network (servers started
//! with `--allow-function-loopback`, or without the privileges for a network
//! namespace) it accepts only sockets owned by the function's uid. Either
//! way it holds at most [`MAX_CONNECTIONS`] connections: past that a new one
//! is closed at once, so a function cannot exhaust the server's descriptors.

use std::io;
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use updraft_listener::{Guarded, StreamGuard};

/// Connections one instance may hold to its Runtime API (a runtime uses one or two).
pub const MAX_CONNECTIONS: usize = 32;

/// A place among an instance's [`MAX_CONNECTIONS`], held by its connection.
pub struct Place {
    _permit: OwnedSemaphorePermit,
}

impl StreamGuard for Place {}

/// A connection that frees its place when dropped.
pub type Counted = Guarded<tokio::net::TcpStream, Place>;

/// A listener for an instance's Runtime API that only accepts connections
/// from sockets owned by the function's uid, so that one function cannot take
/// or answer another's invocations over loopback.
pub struct UidListener {
    inner: tokio::net::TcpListener,
    uid: Option<u32>,
    places: Arc<Semaphore>,
    refused: u64,
}

impl UidListener {
    /// `uid`: the only user whose sockets are served (None: any, for a
    /// listener in the instance's own network namespace).
    pub fn new(inner: tokio::net::TcpListener, uid: Option<u32>) -> UidListener {
        UidListener {
            inner,
            uid,
            places: Arc::new(Semaphore::new(MAX_CONNECTIONS)),
            refused: 0,
        }
    }
}

impl axum::serve::Listener for UidListener {
    type Io = Counted;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (stream, peer) = match self.inner.accept().await {
                Ok(c) => c,
                Err(e) => {
                    // Out of descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "Runtime API accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Ok(permit) = self.places.clone().try_acquire_owned() else {
                self.refused += 1;
                if self.refused.is_power_of_two() {
                    tracing::warn!(
                        refused = self.refused,
                        max = MAX_CONNECTIONS,
                        "an instance opened too many Runtime API connections; closing the new ones"
                    );
                }
                continue;
            };
            let counted = Counted::new(stream, Place { _permit: permit });
            let Some(uid) = self.uid else {
                return (counted, peer);
            };
            let local = match self.inner.local_addr() {
                Ok(l) => l,
                Err(_) => continue,
            };
            match socket_uid(peer, local) {
                Some(owner) if owner == uid => return (counted, peer),
                owner => {
                    tracing::warn!(?owner, expected = uid, %peer, "refused a Runtime API connection from another user");
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// The uid owning the IPv4 TCP socket `peer` connected to `local`.
///
/// Asks the kernel for that one socket over NETLINK_SOCK_DIAG (an exact
/// lookup, microseconds) rather than reading /proc/net/tcp, whose generation
/// walks every socket on the host and took tens of milliseconds per call.
pub fn socket_uid(peer: std::net::SocketAddr, local: std::net::SocketAddr) -> Option<u32> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let (std::net::SocketAddr::V4(peer), std::net::SocketAddr::V4(local)) = (peer, local) else {
        return None;
    };
    const SOCK_DIAG_BY_FAMILY: u16 = 20;
    const NETLINK_SOCK_DIAG: i32 = 4;
    // nlmsghdr (16 bytes) + inet_diag_req_v2 (56 bytes), native endian
    // except the socket id's ports and addresses (network order).
    let mut req = [0u8; 72];
    req[0..4].copy_from_slice(&72u32.to_ne_bytes());
    req[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    req[6..8].copy_from_slice(&(libc::NLM_F_REQUEST as u16).to_ne_bytes());
    req[8..12].copy_from_slice(&1u32.to_ne_bytes());
    req[16] = libc::AF_INET as u8;
    req[17] = libc::IPPROTO_TCP as u8;
    req[20..24].copy_from_slice(&u32::MAX.to_ne_bytes()); // every TCP state
                                                          // The connecting socket: source = the peer, destination = our listener.
    req[24..26].copy_from_slice(&peer.port().to_be_bytes());
    req[26..28].copy_from_slice(&local.port().to_be_bytes());
    req[28..32].copy_from_slice(&peer.ip().octets());
    req[44..48].copy_from_slice(&local.ip().octets());
    req[64..72].copy_from_slice(&[0xff; 8]); // INET_DIAG_NOCOOKIE
    #[allow(unsafe_code)]
    // SAFETY: socket(2) has no memory preconditions; the fd is owned at once.
    let fd = unsafe {
        let raw = libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            NETLINK_SOCK_DIAG,
        );
        if raw < 0 {
            return None;
        }
        OwnedFd::from_raw_fd(raw)
    };
    let mut buf = [0u8; 512];
    #[allow(unsafe_code)]
    // SAFETY: the pointers and lengths describe live stack buffers; sockaddr_nl
    // is zeroed plain data with its family set.
    let got = unsafe {
        let mut addr: libc::sockaddr_nl = std::mem::zeroed();
        addr.nl_family = libc::AF_NETLINK as u16;
        let sent = libc::sendto(
            fd.as_raw_fd(),
            req.as_ptr().cast(),
            req.len(),
            0,
            (&addr as *const libc::sockaddr_nl).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as u32,
        );
        if sent != req.len() as isize {
            return None;
        }
        libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0)
    };
    // nlmsghdr + inet_diag_msg: the uid sits 64 bytes into the message.
    if got < 16 + 72 || u16::from_ne_bytes([buf[4], buf[5]]) != SOCK_DIAG_BY_FAMILY {
        return None;
    }
    Some(u32::from_ne_bytes([buf[80], buf[81], buf[82], buf[83]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn socket_uid_finds_the_connecting_user() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let local = listener.local_addr().unwrap();
        let client = tokio::net::TcpStream::connect(local).await.unwrap();
        let (_server_side, peer) = listener.accept().await.unwrap();
        assert_eq!(peer, client.local_addr().unwrap());
        // SAFETY: getuid has no preconditions.
        #[allow(unsafe_code)]
        let me = unsafe { libc::getuid() };
        assert_eq!(socket_uid(peer, local), Some(me));
        let stranger: std::net::SocketAddr = "127.0.0.1:1".parse().unwrap();
        assert_eq!(socket_uid(stranger, local), None);
    }

    /// Runs a client as `uid` that sends one HTTP request to `addr` and
    /// prints what came back.
    fn http_get_as(uid: u32, addr: std::net::SocketAddr) -> String {
        use std::os::unix::process::CommandExt;
        let script = format!(
            "import socket\ns = socket.create_connection(('127.0.0.1', {}))\ns.sendall(b'GET / HTTP/1.0\\r\\n\\r\\n')\nprint(s.recv(200))",
            addr.port()
        );
        let out = std::process::Command::new("/usr/bin/python3")
            .args(["-c", &script])
            .uid(uid)
            .gid(uid)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn the_runtime_api_listener_serves_only_its_function_uid() {
        use crate::test_support::{is_root, require};
        if !require(
            is_root() && std::path::Path::new("/usr/bin/python3").exists(),
            "root and /usr/bin/python3, to run clients as other users",
        ) {
            return;
        }
        let (owner, stranger) = (2_000_001, 2_000_002);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new().route("/", axum::routing::get(|| async { "served" }));
        tokio::spawn(
            async move { axum::serve(UidListener::new(listener, Some(owner)), app).await },
        );
        let mine = tokio::task::spawn_blocking(move || http_get_as(owner, addr))
            .await
            .unwrap();
        assert!(mine.contains("served"), "{mine}");
        let theirs = tokio::task::spawn_blocking(move || http_get_as(stranger, addr))
            .await
            .unwrap();
        assert!(
            !theirs.contains("served"),
            "another uid must be refused: {theirs}"
        );
    }
}
