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
