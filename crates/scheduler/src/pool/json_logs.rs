//! START and REPORT in Lambda's JSON log format: `platform.start` and
//! `platform.report` records (both INFO, dropped when the function's system
//! log level is above), and no END line.

use crate::InstanceSpec;
use updraft_core::logs::{platform_report, platform_start, Level, PlatformReport};
use updraft_core::{ErrorKind, LogSink, Outcome, Stats};

fn shown(spec: &InstanceSpec) -> bool {
    spec.config.logging.system_level() <= Level::Info
}

pub(super) fn start(logs: &dyn LogSink, spec: &InstanceSpec, rid: &str, version: &str) {
    if shown(spec) {
        logs.emit(&spec.function, rid, platform_start(rid, version));
    }
}

pub(super) fn report(
    logs: &dyn LogSink,
    spec: &InstanceSpec,
    rid: &str,
    stats: &Stats,
    outcome: &Outcome,
) {
    if !shown(spec) {
        return;
    }
    // As the text REPORT: a function's own error is not a platform status.
    let (status, error_type) = match outcome {
        Outcome::Error {
            kind: ErrorKind::Timeout,
            ..
        } => ("timeout", None),
        Outcome::Success(_)
        | Outcome::Error {
            kind: ErrorKind::Function,
            ..
        } => ("success", None),
        Outcome::Error { error_type, .. } => ("error", Some(error_type.as_str())),
    };
    let line = platform_report(&PlatformReport {
        request_id: rid,
        duration_ms: stats.duration_us as f64 / 1000.0,
        billed_ms: stats.billed_ms(),
        memory_mb: stats.memory_mb.into(),
        max_memory_mb: stats.max_memory_mb.into(),
        init_ms: stats.init_us.map(|i| i as f64 / 1000.0),
        status,
        error_type,
    });
    logs.emit(&spec.function, rid, line);
}
