//! The server's own process metrics, read from `/proc/self` at each scrape
//! under the names Prometheus client libraries use: `process_cpu_seconds_total`,
//! `process_resident_memory_bytes`, `process_open_fds`, `process_max_fds`,
//! `process_start_time_seconds`.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Unit;

/// Reads `/proc/self` when encoded; a value that cannot be read is left out.
#[derive(Debug)]
pub(crate) struct ProcessCollector;

/// What one read of `/proc/self` found.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct ProcessStats {
    pub cpu_seconds: Option<f64>,
    pub resident_bytes: Option<i64>,
    pub open_fds: Option<i64>,
    pub max_fds: Option<i64>,
    pub start_time_seconds: Option<f64>,
}

impl ProcessStats {
    pub(crate) fn read() -> ProcessStats {
        let stat = std::fs::read_to_string("/proc/self/stat").ok();
        let stat = stat.as_deref().and_then(parse_stat);
        let boot = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| boot_time(&s));
        let ticks = sysconf(libc::_SC_CLK_TCK, 100) as f64;
        let page = sysconf(libc::_SC_PAGESIZE, 4096);
        ProcessStats {
            cpu_seconds: stat.map(|s| (s.utime + s.stime) as f64 / ticks),
            resident_bytes: stat.map(|s| s.rss_pages * page),
            open_fds: std::fs::read_dir("/proc/self/fd")
                .ok()
                .map(|d| d.count() as i64),
            max_fds: std::fs::read_to_string("/proc/self/limits")
                .ok()
                .and_then(|s| max_open_files(&s)),
            start_time_seconds: stat
                .zip(boot)
                .map(|(s, boot)| boot as f64 + s.start_ticks as f64 / ticks),
        }
    }
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = ProcessStats::read();
        if let Some(v) = s.cpu_seconds {
            let c = ConstCounter::new(v);
            let e = encoder.encode_descriptor(
                "process_cpu",
                "Total user and system CPU time spent",
                Some(&Unit::Seconds),
                c.metric_type(),
            )?;
            c.encode(e)?;
        }
        let gauges = [
            (
                "process_resident_memory",
                "Resident memory size",
                Some(Unit::Bytes),
                s.resident_bytes.map(|v| v as f64),
            ),
            (
                "process_open_fds",
                "Open file descriptors",
                None,
                s.open_fds.map(|v| v as f64),
            ),
            (
                "process_max_fds",
                "The limit of open file descriptors",
                None,
                s.max_fds.map(|v| v as f64),
            ),
            (
                "process_start_time",
                "Start time of the process since the Unix epoch",
                Some(Unit::Seconds),
                s.start_time_seconds,
            ),
        ];
        for (name, help, unit, value) in gauges {
            let Some(v) = value else { continue };
            let g = ConstGauge::new(v);
            let e = encoder.encode_descriptor(name, help, unit.as_ref(), g.metric_type())?;
            g.encode(e)?;
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Stat {
    utime: u64,
    stime: u64,
    start_ticks: u64,
    rss_pages: i64,
}

/// Fields of `/proc/self/stat` (proc(5)); the command name, in parentheses,
/// may hold spaces, so fields are counted after its closing one.
pub(crate) fn parse_stat(s: &str) -> Option<Stat> {
    let rest = &s[s.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state): field N is f[N - 3].
    Some(Stat {
        utime: f.get(11)?.parse().ok()?,
        stime: f.get(12)?.parse().ok()?,
        start_ticks: f.get(19)?.parse().ok()?,
        rss_pages: f.get(21)?.parse().ok()?,
    })
}

/// `btime` of `/proc/stat`: the boot time, seconds since the epoch.
fn boot_time(s: &str) -> Option<u64> {
    s.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// The soft limit of `Max open files` in `/proc/self/limits`.
fn max_open_files(s: &str) -> Option<i64> {
    let line = s.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// A constant of the system (`sysconf(3)`), or `fallback` when it has none.
#[allow(unsafe_code)]
fn sysconf(name: libc::c_int, fallback: i64) -> i64 {
    // SAFETY: sysconf reads a constant of the system; no memory is passed.
    let v = unsafe { libc::sysconf(name) };
    if v > 0 {
        v as i64
    } else {
        fallback
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_after_a_name_with_spaces_and_parentheses() {
        let line = "4242 (up (d) raft) S 1 2 3 4 5 6 7 8 9 10 150 50 0 0 20 0 8 0 \
                    9000 123456789 2500 18446744073709551615";
        assert_eq!(
            parse_stat(line),
            Some(Stat {
                utime: 150,
                stime: 50,
                start_ticks: 9000,
                rss_pages: 2500
            })
        );
        assert_eq!(parse_stat("4242 (x) S 1 2"), None);
    }

    #[test]
    fn boot_time_and_fd_limit() {
        assert_eq!(
            boot_time("cpu  1 2 3\nbtime 1764660000\nprocesses 9\n"),
            Some(1764660000)
        );
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max processes             63704                63704                processes\n\
                      Max open files            1048576              1048576              files\n";
        assert_eq!(max_open_files(limits), Some(1048576));
    }

    #[test]
    fn reads_this_process() {
        let s = ProcessStats::read();
        assert!(s.resident_bytes.is_some_and(|b| b > 0), "{s:?}");
        assert!(s.open_fds.is_some_and(|n| n > 0), "{s:?}");
        assert!(s.cpu_seconds.is_some(), "{s:?}");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let start = s.start_time_seconds.expect("start time");
        assert!(
            start <= now + 1.0 && start > now - 86_400.0 * 365.0,
            "{start} vs {now}"
        );
    }
}
