//! Network namespaces made ahead of need. Making one (a thread, `unshare`,
//! loopback up, a listener and, with outbound network, a veth pair: six
//! netlink round trips) takes milliseconds that a cold start would otherwise
//! wait for. A background thread keeps a few ready; a cold start takes one,
//! or makes its own when none is left (in a burst), and wakes the thread to
//! make more. Each namespace serves one instance and is never given back;
//! one made under another outbound setting is dropped, not handed out.

use super::netns::{self, Namespace, Subnet};
use std::io;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

/// Namespaces kept ready.
const READY: usize = 4;
/// After a failure to make one, the thread waits this long before trying
/// again (cold starts make their own meanwhile, and report the error).
const RETRY: Duration = Duration::from_secs(5);

#[derive(Default)]
struct Pool {
    ready: Mutex<Vec<(Option<Subnet>, Namespace)>>,
    wake: Condvar,
}

impl Pool {
    fn lock(&self) -> MutexGuard<'_, Vec<(Option<Subnet>, Namespace)>> {
        self.ready.lock().unwrap_or_else(|e| e.into_inner())
    }
}

static POOL: OnceLock<Arc<Pool>> = OnceLock::new();

/// A network namespace for a new instance: a ready one, or one made now.
pub fn take() -> io::Result<Namespace> {
    let pool = POOL.get_or_init(start);
    let wanted = netns::outbound();
    let mut ready = pool.lock();
    let mut found = None;
    while let Some((subnet, ns)) = ready.pop() {
        if subnet == wanted {
            found = Some(ns);
            break;
        }
    }
    drop(ready);
    pool.wake.notify_all();
    match found {
        Some(ns) => Ok(ns),
        None => netns::create(),
    }
}

fn start() -> Arc<Pool> {
    let pool = Arc::new(Pool::default());
    let filler = pool.clone();
    let spawned = std::thread::Builder::new()
        .name("updraft-netns-pool".into())
        .spawn(move || fill(&filler));
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "no thread to prepare network namespaces ahead: each cold start makes its own");
    }
    pool
}

fn fill(pool: &Pool) {
    loop {
        {
            let mut ready = pool.lock();
            while ready.len() >= READY {
                ready = pool.wake.wait(ready).unwrap_or_else(|e| e.into_inner());
            }
        }
        let subnet = netns::outbound();
        match netns::create() {
            Ok(ns) => {
                pool.lock().push((subnet, ns));
                pool.wake.notify_all();
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not prepare a network namespace ahead");
                let ready = pool.lock();
                let _ = pool.wake.wait_timeout(ready, RETRY);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_are_prepared_ahead_and_each_is_handed_out_once() {
        if !crate::test_support::require(
            crate::test_support::is_root(),
            "root (network namespaces)",
        ) {
            return;
        }
        let first = take().expect("a namespace");
        let pool = POOL.get().expect("started");
        // The thread fills the pool and says so on the condition variable.
        let (ready, timeout) = pool
            .wake
            .wait_timeout_while(pool.lock(), Duration::from_secs(60), |r| r.len() < READY)
            .unwrap();
        assert!(!timeout.timed_out(), "the pool stayed at {}", ready.len());
        let ino = |ns: &Namespace| {
            use std::os::fd::AsRawFd;
            std::fs::metadata(format!("/proc/self/fd/{}", ns.fd.as_raw_fd()))
                .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
                .unwrap()
        };
        let pooled: Vec<u64> = ready.iter().map(|(_, ns)| ino(ns)).collect();
        drop(ready);
        let second = take().expect("a prepared namespace");
        assert!(
            pooled.contains(&ino(&second)),
            "taken from the pool, not made"
        );
        // Two distinct namespaces.
        assert_ne!(ino(&first), ino(&second));
    }
}
