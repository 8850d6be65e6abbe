//! What the runtime reads from `/proc` about its instances' processes, and the
//! memory watchdog and leftover cleanup built on it.

use crate::instance::exited;
use crate::sandbox;
use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Peak resident set of a process, from /proc.
pub(crate) fn vm_hwm(pid: i32) -> Option<u64> {
    proc_status_kb(pid, "VmHWM:").map(|kb| kb * 1024)
}

fn proc_status_kb(pid: i32, key: &str) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    line[key.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// Enforces `memory_mb` on hosts without a memory cgroup by polling the
/// resident set, killing the instance when it goes over.
pub(crate) async fn rss_watchdog(
    spawned: i32,
    pid_ns: bool,
    limit: u64,
    peak: Arc<AtomicU64>,
    oom: Arc<AtomicBool>,
    mut exit: watch::Receiver<Option<String>>,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = exited(&mut exit) => return,
        }
        let pid = main_pid(spawned, pid_ns);
        if pid_ns && pid == spawned {
            // Not forked into its namespace yet; the waiter is not the instance.
            continue;
        }
        let Some(rss) = proc_status_kb(pid, "VmRSS:").map(|kb| kb * 1024) else {
            return;
        };
        peak.fetch_max(rss, Ordering::Relaxed);
        if rss > limit {
            oom.store(true, Ordering::SeqCst);
            sandbox::kill(-pid, libc::SIGKILL);
            sandbox::kill(pid, libc::SIGKILL);
            return;
        }
    }
}

/// Kills instances an earlier run left (after a SIGKILL of the server, the
/// parent-death signal should have done it already) and removes their files.
pub(crate) fn cleanup_leftovers(instances_dir: &Path) {
    let Ok(entries) = fs::read_dir(instances_dir) else {
        return;
    };
    for e in entries.flatten() {
        let id = e.file_name().to_string_lossy().into_owned();
        let recorded = fs::read_to_string(e.path().join("pid")).unwrap_or_default();
        let mut parts = recorded.split_whitespace();
        let pid = parts.next().and_then(|p| p.parse::<i32>().ok());
        let started = parts.next().and_then(|t| t.parse::<u64>().ok());
        if let (Some(pid), Some(started)) = (pid, started) {
            // Only the process that started then is ours: pids get reused.
            if pid > 0 && start_time(pid) == Some(started) {
                sandbox::kill(-pid, libc::SIGKILL);
                sandbox::kill(pid, libc::SIGKILL);
            }
        }
        let _ = id;
        let _ = fs::remove_dir_all(e.path());
    }
}

/// A process's start time (clock ticks since boot), from /proc.
pub(crate) fn start_time(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which may hold spaces: ") S ppid …".
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// The instance's own first process: with a PID namespace, the child of the
/// process that was spawned (which waits outside the namespace).
pub(crate) fn main_pid(spawned: i32, pid_ns: bool) -> i32 {
    if !pid_ns {
        return spawned;
    }
    fs::read_to_string(format!("/proc/{spawned}/task/{spawned}/children"))
        .ok()
        .and_then(|c| c.split_whitespace().next()?.parse().ok())
        .unwrap_or(spawned)
}
