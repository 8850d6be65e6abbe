//! The live connections: how many there are (at most the cap), which of them
//! have no request in flight, and when each must have sent its next request.
//! At the cap, a new connection sheds the oldest one with no request in
//! flight, so idle and half-sent connections (slowloris) cannot crowd out a
//! client that sends its request at once.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// No request has started arriving since the connection went idle.
const NOT_STARTED: u64 = u64::MAX;

pub(crate) struct Registry {
    max: usize,
    epoch: Instant,
    next_id: AtomicU64,
    conns: Mutex<BTreeMap<u64, Arc<Conn>>>,
    shed_total: AtomicU64,
    /// Milliseconds (since `epoch`) of the last warning about the cap.
    warned_at: AtomicU64,
}

/// One connection's state, shared by its task, its I/O and its requests.
pub(crate) struct Conn {
    id: u64,
    epoch: Instant,
    in_flight: AtomicUsize,
    /// When it last had no request in flight (accepted, or a response done).
    idle_since: AtomicU64,
    /// When the first bytes of its next request arrived; `NOT_STARTED` if none.
    request_started: AtomicU64,
    shed: AtomicBool,
    /// Wakes the connection's task: it was shed, went idle, or a request began.
    pub(crate) changed: Notify,
}

pub(crate) enum Admission {
    Admitted(Arc<Conn>),
    /// At the cap and every connection has a request in flight.
    Full,
}

impl Registry {
    pub(crate) fn new(max: usize) -> Registry {
        Registry {
            max: max.max(1),
            epoch: Instant::now(),
            next_id: AtomicU64::new(0),
            conns: Mutex::new(BTreeMap::new()),
            shed_total: AtomicU64::new(0),
            warned_at: AtomicU64::new(NOT_STARTED),
        }
    }

    /// Registers a new connection, shedding the oldest idle one at the cap.
    pub(crate) fn admit(&self) -> Admission {
        let mut conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        if conns.len() >= self.max {
            if !shed_oldest_idle(&mut conns) {
                drop(conns);
                self.warn_at_cap("every connection has a request in flight: refusing new ones");
                return Admission::Full;
            }
            self.shed_total.fetch_add(1, Ordering::Relaxed);
            self.warn_at_cap("closing the oldest connections that have no request in flight");
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn::new(id, self.epoch));
        conns.insert(id, conn.clone());
        Admission::Admitted(conn)
    }

    /// Sheds the oldest idle connection (file descriptors ran out).
    pub(crate) fn shed_one(&self) -> bool {
        let mut conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        shed_oldest_idle(&mut conns)
    }

    pub(crate) fn remove(&self, id: u64) {
        let mut conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        conns.remove(&id);
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.conns.lock().unwrap().len()
    }

    /// At most one warning a minute.
    fn warn_at_cap(&self, what: &str) {
        let now = ms_since(self.epoch);
        let last = self.warned_at.load(Ordering::Relaxed);
        if last != NOT_STARTED && now.saturating_sub(last) < 60_000 {
            return;
        }
        if self
            .warned_at
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            tracing::warn!(
                max_connections = self.max,
                shed_so_far = self.shed_total.load(Ordering::Relaxed),
                "connection cap reached: {what} (--max-connections)"
            );
        }
    }
}

fn shed_oldest_idle(conns: &mut BTreeMap<u64, Arc<Conn>>) -> bool {
    let Some(id) = conns
        .iter()
        .find(|(_, c)| c.in_flight.load(Ordering::Acquire) == 0)
        .map(|(id, _)| *id)
    else {
        return false;
    };
    if let Some(conn) = conns.remove(&id) {
        conn.shed.store(true, Ordering::Release);
        conn.changed.notify_one();
    }
    true
}

fn ms_since(epoch: Instant) -> u64 {
    Instant::now().saturating_duration_since(epoch).as_millis() as u64
}

impl Conn {
    fn new(id: u64, epoch: Instant) -> Conn {
        let now = ms_since(epoch);
        Conn {
            id,
            epoch,
            in_flight: AtomicUsize::new(0),
            idle_since: AtomicU64::new(now),
            // A new connection owes its first request within the header-read timeout.
            request_started: AtomicU64::new(now),
            shed: AtomicBool::new(false),
            changed: Notify::new(),
        }
    }

    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    pub(crate) fn is_idle(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0
    }

    /// Shed at the cap and idle: to be closed now.
    pub(crate) fn must_close(&self) -> bool {
        self.shed.load(Ordering::Acquire) && self.is_idle()
    }

    /// Bytes arrived; if the connection was idle, a request has begun.
    pub(crate) fn bytes_arrived(&self) {
        if self.is_idle() && self.request_started.load(Ordering::Relaxed) == NOT_STARTED {
            let now = ms_since(self.epoch);
            if self
                .request_started
                .compare_exchange(NOT_STARTED, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
            {
                self.changed.notify_one();
            }
        }
    }

    /// A request's headers were read: it is in flight until its response is done.
    pub(crate) fn request_began(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(self.clone())
    }

    /// When the connection must be closed unless a request is in flight by
    /// then: `idle_timeout` after it went idle, `header_read_timeout` after
    /// its next request began to arrive (or it was accepted). `None` while a
    /// request is in flight.
    pub(crate) fn deadline(
        &self,
        header_read_timeout: Duration,
        idle_timeout: Duration,
    ) -> Option<Instant> {
        if !self.is_idle() {
            return None;
        }
        let idle = self
            .idle_since
            .load(Ordering::Relaxed)
            .saturating_add(idle_timeout.as_millis() as u64);
        let started = self.request_started.load(Ordering::Relaxed);
        let headers = if started == NOT_STARTED {
            u64::MAX
        } else {
            started.saturating_add(header_read_timeout.as_millis() as u64)
        };
        let at = idle.min(headers);
        Some(self.epoch + Duration::from_millis(at))
    }
}

/// Held while a request is in flight (its response body included).
pub(crate) struct InFlight(Arc<Conn>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let conn = &self.0;
        conn.idle_since
            .store(ms_since(conn.epoch), Ordering::Relaxed);
        conn.request_started.store(NOT_STARTED, Ordering::Relaxed);
        if conn.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            conn.changed.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admitted(r: &Registry) -> Arc<Conn> {
        match r.admit() {
            Admission::Admitted(c) => c,
            Admission::Full => panic!("refused"),
        }
    }

    #[tokio::test]
    async fn at_the_cap_the_oldest_idle_connection_is_shed() {
        let r = Registry::new(3);
        let a = admitted(&r);
        let b = admitted(&r);
        let c = admitted(&r);
        let busy = a.request_began();
        let d = admitted(&r);
        // `a` is older but busy: `b` goes.
        assert!(!a.must_close());
        assert!(b.must_close());
        assert!(!c.must_close() && !d.must_close());
        assert_eq!(r.len(), 3);
        let _busy_c = c.request_began();
        let _busy_d = d.request_began();
        assert!(matches!(r.admit(), Admission::Full));
        drop(busy);
        admitted(&r);
        assert!(a.must_close());
    }

    #[tokio::test]
    async fn deadlines_follow_the_request_cycle() {
        let r = Registry::new(10);
        let c = admitted(&r);
        let (hrt, idle) = (Duration::from_secs(5), Duration::from_secs(60));
        let fresh = c.deadline(hrt, idle).unwrap();
        assert!(fresh <= Instant::now() + hrt);
        let guard = c.request_began();
        assert_eq!(c.deadline(hrt, idle), None);
        drop(guard);
        // Idle after a response: the idle timeout, until bytes arrive.
        let after = c.deadline(hrt, idle).unwrap();
        assert!(after > Instant::now() + hrt);
        c.bytes_arrived();
        let reading = c.deadline(hrt, idle).unwrap();
        assert!(reading <= Instant::now() + hrt);
    }
}
