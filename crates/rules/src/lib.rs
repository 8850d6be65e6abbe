//! What an event source's rules mean, apart from any server: when a schedule
//! fires ([`schedule`]: 5-field cron, EventBridge's `cron(…)` and `rate(…)`
//! forms, plain durations, in a time zone) and which events an EventBridge
//! pattern selects ([`pattern`]). The manifest checks rules with this crate
//! at load, the platform at deploy, and `updraft-triggers` runs them.
//!
//! Errors are [`updraft_core::Invalid`]: which field, what was expected,
//! what came.

pub mod pattern;
pub mod schedule;

use updraft_core::{Invalid, Trigger};

/// Messages per queue invocation: Lambda's range for SQS.
pub const BATCH_SIZE_RANGE: std::ops::RangeInclusive<u32> = 1..=10_000;
/// Lambda's longest batching window for SQS.
pub const MAX_BATCH_WINDOW_MS: u64 = 300_000;
/// SQS's range for a redrive policy's maxReceiveCount.
pub const MAX_RECEIVE_RANGE: std::ops::RangeInclusive<u32> = 1..=1000;
/// SQS's longest visibility timeout (12 hours).
pub const MAX_VISIBILITY_TIMEOUT_MS: u64 = 43_200_000;

/// SQS's rule for a (standard) queue name: 1 to 80 letters, digits, `-` and `_`.
pub fn valid_queue_name(name: &str) -> bool {
    (1..=80).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// EventBridge's rule for an event bus name: 1 to 256 of letters, digits,
/// `.`, `-`, `_` and `/`.
pub fn valid_bus_name(name: &str) -> bool {
    (1..=256).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-/".contains(&b))
}

/// Checks a schedule, queue or bus trigger as every surface must (the
/// manifest at load, the server at deploy). The error's field is relative
/// to the trigger entry: `schedule.cron`, `queue.batch_size`,
/// `event.pattern.detail.price[0]` …
pub fn check_trigger(t: &Trigger) -> Result<(), Invalid> {
    match t {
        Trigger::Http(_) => Ok(()),
        Trigger::Schedule(s) => schedule::Schedule::parse(s)
            .map(drop)
            .map_err(|e| e.prefixed("schedule.")),
        Trigger::Queue(q) => {
            if !valid_queue_name(&q.name) {
                let expected = if q.name.ends_with(".fifo") {
                    "a standard queue name (FIFO queues are not supported)"
                } else {
                    "1 to 80 letters, digits, '-' and '_' (SQS's rule)"
                };
                return Err(Invalid::new("queue.name", expected, &q.name));
            }
            if !BATCH_SIZE_RANGE.contains(&q.batch_size) {
                return Err(Invalid::new("queue.batch_size", "1 to 10000", q.batch_size));
            }
            if q.batch_window_ms > MAX_BATCH_WINDOW_MS {
                return Err(Invalid::new(
                    "queue.batch_window",
                    "at most 5m (Lambda's limit)",
                    format!("{} ms", q.batch_window_ms),
                ));
            }
            if let Some(n) = q.max_receive {
                if !MAX_RECEIVE_RANGE.contains(&n) {
                    return Err(Invalid::new("queue.max_receive", "1 to 1000", n));
                }
            }
            if let Some(v) = q.visibility_timeout_ms {
                if v > MAX_VISIBILITY_TIMEOUT_MS {
                    return Err(Invalid::new(
                        "queue.visibility_timeout",
                        "at most 12h (SQS's limit)",
                        format!("{v} ms"),
                    ));
                }
            }
            Ok(())
        }
        Trigger::Event(e) => {
            if !valid_bus_name(&e.bus) {
                return Err(Invalid::new(
                    "event.bus",
                    "1 to 256 letters, digits, '.', '-', '_' and '/'",
                    &e.bus,
                ));
            }
            pattern::Pattern::parse(&e.pattern)
                .map(drop)
                .map_err(|err| err.prefixed("event."))
        }
    }
}
