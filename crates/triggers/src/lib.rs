//! Where an event becomes an invocation. The durable asynchronous path
//! every asynchronous event takes (Lambda `Event` invokes, `updraft invoke
//! --async`, schedule ticks, events published on a bus): stored before it is
//! acknowledged, claimed with a lease, run through an
//! [`updraft_core::Invoke`]r, retried with backoff, and sent on to a
//! destination or the function's dead letters (`worker.rs`, [`policy`]).
//! Schedules fire into that path ([`schedules`]); queue consumers run
//! Lambda's SQS batches ([`queues`], [`sqs`]).
//!
//! This crate knows nothing of the platform: it runs functions through the
//! [`updraft_core::Invoke`] trait and keeps its events in the store.

pub mod policy;
pub mod queues;
pub mod schedules;
pub mod sqs;
mod worker;

pub use policy::{
    backoff, FailureCondition, DEFAULT_MAX_EVENT_AGE_S, DEFAULT_MAX_RETRY_ATTEMPTS,
    DEFAULT_RETRY_BASE, MAX_RETRY_ATTEMPTS, MIN_EVENT_AGE_S,
};
pub use queues::QueueConsumers;
pub use schedules::Schedules;
pub use worker::AsyncEvents;

use updraft_store::StoreError;

/// What accepting or running events fails with.
#[derive(Debug, thiserror::Error)]
pub enum TriggersError {
    /// The payload is over the asynchronous limit.
    #[error("{0}")]
    TooLarge(String),
    /// The function (or its qualifier) cannot be invoked.
    #[error(transparent)]
    Invoke(#[from] updraft_core::Error),
    /// A trigger that does not hold up (a stored schedule, say).
    #[error(transparent)]
    Invalid(#[from] updraft_core::Invalid),
    #[error(transparent)]
    Store(#[from] StoreError),
}
