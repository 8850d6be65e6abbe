//! A network namespace per instance, holding a loopback interface with the
//! instance's Runtime API listener at 127.0.0.1:9001 (Lambda's own address)
//! and, when outbound network is on, an `eth0` leading out: one end of a
//! veth pair whose other end (`ud<slot>`) is on the host, with a /30 of the
//! functions' subnet and a default route via the host end. Nothing on the
//! host's loopback — the server's listener, a local PostgreSQL, any daemon
//! trusting 127.0.0.0/8 — is reachable from it, nothing but this instance
//! can reach its Runtime API, and the host's firewall (firewall.rs) keeps
//! the host and other instances out of reach of `eth0`.

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL,
    NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, RwLock};

/// The functions' subnet when none is given.
pub const DEFAULT_SUBNET: &str = "10.213.0.0/16";

/// The IPv4 network instances get their addresses from, a /30 each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Subnet {
    pub base: Ipv4Addr,
    pub prefix: u8,
}

impl std::str::FromStr for Subnet {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!("expected a private IPv4 network from /8 to /24 such as {DEFAULT_SUBNET}, got {s:?}")
        };
        let (addr, prefix) = s.split_once('/').ok_or_else(bad)?;
        let base: Ipv4Addr = addr.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        if !(8..=24).contains(&prefix) || !base.is_private() {
            return Err(bad());
        }
        let mask = u32::MAX << (32 - prefix);
        if u32::from(base) & !mask != 0 {
            return Err(format!(
                "{s:?} has host bits set: expected {}/{prefix}",
                Ipv4Addr::from(u32::from(base) & mask)
            ));
        }
        Ok(Subnet { base, prefix })
    }
}

impl std::fmt::Display for Subnet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.base, self.prefix)
    }
}

impl Subnet {
    /// How many /30s it holds.
    fn slots(&self) -> u32 {
        1 << (30 - u32::from(self.prefix))
    }

    /// The host end's and the instance's addresses in a slot.
    fn pair(&self, slot: u32) -> (Ipv4Addr, Ipv4Addr) {
        let net = u32::from(self.base) + slot * 4;
        (Ipv4Addr::from(net + 1), Ipv4Addr::from(net + 2))
    }
}

/// The subnet new namespaces lead out through; `None`: no outbound network.
/// Set once at start-up by `Isolation::detect`, after the firewall is in.
static OUTBOUND: RwLock<Option<Subnet>> = RwLock::new(None);

pub fn set_outbound(subnet: Option<Subnet>) {
    *OUTBOUND.write().unwrap_or_else(|e| e.into_inner()) = subnet;
}

pub(crate) fn outbound() -> Option<Subnet> {
    *OUTBOUND.read().unwrap_or_else(|e| e.into_inner())
}

/// Where the Runtime API listens inside the namespace.
pub const RUNTIME_API_ADDR: &str = "127.0.0.1:9001";

/// A fresh namespace (as a descriptor) and a listener bound inside it.
pub struct Namespace {
    pub fd: OwnedFd,
    pub listener: std::net::TcpListener,
}

/// Held while a namespace is made: one at a time in this process.
///
/// Nearly every step of making one (the namespace's own set-up, bringing
/// `lo` up, the veth pair, its addresses and route) takes the kernel's
/// rtnl lock, some of them across an RCU grace period. Made side by side,
/// as in a burst of cold starts, each takes the lock in turn for every
/// step, so all of them finish late: 50 at once took 95–190 ms each (the
/// median; up to 0.5 s) on a 2-core VM. Made in turn, each takes ~3 ms:
/// the first start of a burst has its namespace after ~3 ms and the n-th
/// after ~3n ms.
static MAKING: Mutex<()> = Mutex::new(());

/// Makes the namespace on a short-lived thread of its own: `unshare` moves
/// only the calling thread, and the namespace outlives it through the
/// descriptor and the listening socket.
pub fn create() -> io::Result<Namespace> {
    std::thread::Builder::new()
        .name("updraft-netns".into())
        .spawn(|| {
            let _turn = MAKING.lock().unwrap_or_else(|e| e.into_inner());
            make()
        })?
        .join()
        .map_err(|_| io::Error::other("the network namespace thread panicked"))?
}

fn make() -> io::Result<Namespace> {
    let subnet = outbound();
    // Opened before unshare: they stay in the host's namespace.
    let host = match subnet {
        Some(_) => Some((
            std::fs::File::open("/proc/thread-self/ns/net")?,
            Netlink::open()?,
        )),
        None => None,
    };
    #[allow(unsafe_code)]
    // SAFETY: unshare affects only this thread, which ends after this call.
    unsafe {
        if libc::unshare(libc::CLONE_NEWNET) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    loopback_up()?;
    if let (Some(subnet), Some((host_ns, host_nl))) = (subnet, host) {
        lead_out(subnet, &host_ns, host_nl)?;
    }
    let fd = std::fs::File::open("/proc/thread-self/ns/net")?;
    let listener = std::net::TcpListener::bind(RUNTIME_API_ADDR)?;
    listener.set_nonblocking(true)?;
    Ok(Namespace {
        fd: OwnedFd::from(fd),
        listener,
    })
}

/// A listener at 127.0.0.1 (any port) inside the network namespace `ns`:
/// one more Runtime API in a namespace that holds one already (the
/// instances of a snapshot template share its namespace).
pub fn listen_in(ns: &OwnedFd) -> io::Result<std::net::TcpListener> {
    let ns = ns.try_clone()?;
    std::thread::Builder::new()
        .name("updraft-netns".into())
        .spawn(move || {
            #[allow(unsafe_code)]
            // SAFETY: setns affects only this thread, which ends after this call.
            unsafe {
                if libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
            listener.set_nonblocking(true)?;
            Ok(listener)
        })?
        .join()
        .map_err(|_| io::Error::other("the network namespace thread panicked"))?
}

/// Where the next slot search starts: spread over the subnet so that servers
/// sharing a host (and the slots of instances just stopped, whose veth may
/// still be going away) rarely meet. The kernel settles any meeting: a host
/// interface name is taken once, so a taken slot fails with EEXIST.
static NEXT_SLOT: AtomicU32 = AtomicU32::new(0);

/// Slots tried before giving up.
const SLOT_TRIES: u32 = 64;

/// Gives the calling thread's (new) namespace an `eth0` leading out through
/// a veth pair whose other end is in `host_ns`: six netlink round trips.
fn lead_out(subnet: Subnet, host_ns: &std::fs::File, mut host_nl: Netlink) -> io::Result<()> {
    let mut nl = Netlink::open()?;
    if NEXT_SLOT.load(Ordering::Relaxed) == 0 {
        let mut seed = [0u8; 4];
        #[allow(unsafe_code)]
        // SAFETY: getrandom writes at most seed.len() bytes into seed.
        unsafe {
            libc::getrandom(seed.as_mut_ptr().cast(), seed.len(), 0);
        }
        let _ = NEXT_SLOT.compare_exchange(
            0,
            u32::from_ne_bytes(seed) | 1,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }
    let mut found = None;
    for _ in 0..SLOT_TRIES {
        let slot = NEXT_SLOT.fetch_add(1, Ordering::Relaxed) % subnet.slots();
        let name = format!("ud{slot}");
        let mut peer = LinkMessage::default();
        peer.attributes = vec![
            LinkAttribute::IfName(name.clone()),
            LinkAttribute::NetNsFd(host_ns.as_raw_fd()),
        ];
        let mut veth = LinkMessage::default();
        veth.attributes = vec![
            LinkAttribute::IfName("eth0".into()),
            LinkAttribute::LinkInfo(vec![
                LinkInfo::Kind(InfoKind::Veth),
                LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
            ]),
        ];
        match nl.call(
            RouteNetlinkMessage::NewLink(veth),
            NLM_F_CREATE | NLM_F_EXCL,
        ) {
            Ok(_) => {
                found = Some((slot, name));
                break;
            }
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => continue,
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("creating a veth pair: {e}"),
                ))
            }
        }
    }
    let Some((slot, name)) = found else {
        return Err(io::Error::other(format!(
            "no free slot in {subnet} after {SLOT_TRIES} tries"
        )));
    };
    let (host_ip, instance_ip) = subnet.pair(slot);
    // The host end: its address, then up.
    let host_index = host_nl.index_of(&name)?;
    host_nl.add_address(host_index, host_ip)?;
    host_nl.set_up(host_index)?;
    // The instance's end: its address, up, and the default route.
    let index = nametoindex("eth0")?;
    nl.add_address(index, instance_ip)?;
    nl.set_up(index)?;
    let mut route = RouteMessage::default();
    route.header = RouteHeader {
        address_family: AddressFamily::Inet,
        table: RouteHeader::RT_TABLE_MAIN,
        protocol: RouteProtocol::Static,
        scope: RouteScope::Universe,
        kind: RouteType::Unicast,
        ..route.header
    };
    route.attributes = vec![
        RouteAttribute::Gateway(RouteAddress::Inet(host_ip)),
        RouteAttribute::Oif(index),
    ];
    nl.call(
        RouteNetlinkMessage::NewRoute(route),
        NLM_F_CREATE | NLM_F_EXCL,
    )
    .map_err(|e| io::Error::new(e.kind(), format!("adding the default route: {e}")))?;
    Ok(())
}

fn nametoindex(name: &str) -> io::Result<u32> {
    let c = std::ffi::CString::new(name).map_err(io::Error::other)?;
    #[allow(unsafe_code)]
    // SAFETY: c is a valid NUL-terminated string.
    let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if index == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(index)
}

/// A blocking rtnetlink socket in the namespace of the thread that opened it.
struct Netlink {
    socket: Socket,
    seq: u32,
}

impl Netlink {
    fn open() -> io::Result<Netlink> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        Ok(Netlink { socket, seq: 0 })
    }

    /// Sends one request and waits for its answer: the kernel's reply
    /// message if there is one, after the acknowledgement (or error).
    fn call(
        &mut self,
        message: RouteNetlinkMessage,
        flags: u16,
    ) -> io::Result<Option<RouteNetlinkMessage>> {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
        header.sequence_number = self.seq;
        let mut msg = NetlinkMessage::new(header, NetlinkPayload::from(message));
        msg.finalize();
        let mut buf = vec![0; msg.buffer_len()];
        msg.serialize(&mut buf);
        self.socket.send(&buf, 0)?;
        let mut reply = None;
        let mut rx = vec![0; 32 * 1024];
        loop {
            let n = self.socket.recv(&mut &mut rx[..], 0)?;
            let mut at = 0;
            while at < n {
                let m = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&rx[at..n])
                    .map_err(|e| io::Error::other(format!("a netlink reply: {e}")))?;
                let len = m.header.length as usize;
                if len == 0 {
                    return Err(io::Error::other("an empty netlink reply"));
                }
                at += (len + 3) & !3;
                if m.header.sequence_number != self.seq {
                    continue;
                }
                match m.payload {
                    NetlinkPayload::Error(e) => {
                        return match e.code {
                            None => Ok(reply),
                            Some(_) => Err(e.to_io()),
                        }
                    }
                    NetlinkPayload::InnerMessage(inner) => reply = Some(inner),
                    _ => {}
                }
            }
        }
    }

    fn index_of(&mut self, name: &str) -> io::Result<u32> {
        let mut get = LinkMessage::default();
        get.attributes = vec![LinkAttribute::IfName(name.into())];
        match self.call(RouteNetlinkMessage::GetLink(get), 0)? {
            Some(RouteNetlinkMessage::NewLink(link)) => Ok(link.header.index),
            _ => Err(io::Error::other(format!("no index for {name}"))),
        }
    }

    fn add_address(&mut self, index: u32, ip: Ipv4Addr) -> io::Result<()> {
        let mut addr = AddressMessage::default();
        addr.header.family = AddressFamily::Inet;
        addr.header.prefix_len = 30;
        addr.header.index = index;
        addr.attributes = vec![
            AddressAttribute::Local(IpAddr::V4(ip)),
            AddressAttribute::Address(IpAddr::V4(ip)),
        ];
        self.call(
            RouteNetlinkMessage::NewAddress(addr),
            NLM_F_CREATE | NLM_F_EXCL,
        )
        .map(drop)
        .map_err(|e| io::Error::new(e.kind(), format!("adding address {ip}: {e}")))
    }

    fn set_up(&mut self, index: u32) -> io::Result<()> {
        let mut link = LinkMessage::default();
        link.header.index = index;
        link.header.flags = LinkFlags::Up;
        link.header.change_mask = LinkFlags::Up;
        self.call(RouteNetlinkMessage::SetLink(link), 0)
            .map(drop)
            .map_err(|e| io::Error::new(e.kind(), format!("setting link {index} up: {e}")))
    }
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
        use crate::test_support::{is_root, require};
        if !require(is_root(), "root, to create network namespaces") {
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

#[cfg(test)]
mod subnet_tests {
    use super::*;

    #[test]
    fn a_subnet_is_a_private_aligned_network() {
        let s: Subnet = DEFAULT_SUBNET.parse().unwrap();
        assert_eq!(s.slots(), 16384);
        assert_eq!(
            s.pair(1),
            (Ipv4Addr::new(10, 213, 0, 5), Ipv4Addr::new(10, 213, 0, 6))
        );
        for bad in [
            "10.213.0.0",
            "8.8.0.0/16",
            "10.213.0.0/30",
            "10.213.1.0/16",
            "x/16",
        ] {
            let err = bad.parse::<Subnet>().unwrap_err();
            assert!(err.contains(bad), "{bad}: {err}");
        }
    }
}
