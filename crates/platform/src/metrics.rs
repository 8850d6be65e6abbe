//! `/metrics`: the invocation families recorded as invocations finish
//! (invoker.rs) and the gauges read at scrape time: instances from the
//! scheduler, and one store query each for asynchronous events, dead
//! letters and queues.

use crate::{Platform, PlatformError};
use std::time::Duration;
use updraft_core::{now_ms, ErrorKind, InvokeResult, Outcome, TriggerKind};
use updraft_metrics::{Finished, QueueDepth, Snapshot};
use updraft_scheduler::InstanceSpec;

/// An invocation's `outcome` label.
fn outcome(o: &Outcome) -> &'static str {
    match o {
        Outcome::Success(_) => "success",
        Outcome::Error { kind, .. } => match kind {
            ErrorKind::Function => "error",
            ErrorKind::Timeout => "timeout",
            ErrorKind::OutOfMemory => "out_of_memory",
            ErrorKind::Crash => "crash",
            ErrorKind::Init => "init_error",
        },
    }
}

fn age(now: i64, since_ms: i64) -> Duration {
    Duration::from_millis(now.saturating_sub(since_ms).max(0) as u64)
}

impl Platform {
    /// Counts a finished invocation (called where it is recorded).
    pub(crate) fn count_invocation(&self, function: &str, trigger: TriggerKind, r: &InvokeResult) {
        if !self.inner.config.metrics {
            return;
        }
        let billed_ms = if r.stats.duration_us == 0 {
            0
        } else {
            r.stats.billed_ms()
        };
        self.inner.metrics.invocation(&Finished {
            function,
            version: r.version,
            trigger: trigger.as_str(),
            outcome: outcome(&r.outcome),
            duration: Duration::from_micros(r.stats.duration_us),
            init: r.stats.init_us.map(Duration::from_micros),
            billed_ms,
            memory_mb: r.stats.memory_mb as u64,
        });
    }

    /// Counts a throttled invocation.
    pub(crate) fn count_throttle(&self, spec: &InstanceSpec, trigger: TriggerKind) {
        if !self.inner.config.metrics {
            return;
        }
        self.inner
            .metrics
            .throttle(&spec.function, spec.version, trigger.as_str());
    }

    /// The Prometheus text exposition of the platform's metrics now.
    pub async fn metrics_text(&self) -> Result<String, PlatformError> {
        let store = &self.inner.store;
        let now = now_ms();
        let scheduler = &self.inner.scheduler;
        let instances = store
            .list_functions()
            .await?
            .into_iter()
            .map(|f| {
                let live = scheduler.live_instances(&f.name);
                let idle = scheduler.idle_instances(&f.name);
                (f.name, live, idle)
            })
            .collect();
        let async_events = store
            .event_depths()
            .await?
            .into_iter()
            .map(|d| {
                (
                    d.function,
                    d.source,
                    d.count,
                    age(now, d.oldest_enqueued_ms),
                )
            })
            .collect();
        let queues = store
            .queue_stats(None, now)
            .await?
            .into_iter()
            .map(|q| QueueDepth {
                name: q.name,
                visible: q.visible,
                in_flight: q.in_flight,
                delayed: q.delayed,
                oldest: q.oldest_sent_ms.map(|t| age(now, t)),
                dead_letters: q.dead_letters,
            })
            .collect();
        let snapshot = Snapshot {
            instances,
            async_events,
            dead_letters: store.dead_letter_counts().await?,
            queues,
        };
        self.inner
            .metrics
            .encode(&snapshot)
            .map_err(|e| PlatformError::internal("encoding the metrics", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_labels() {
        assert_eq!(outcome(&Outcome::Success(vec![])), "success");
        let err = |kind| Outcome::Error {
            kind,
            error_type: "X".into(),
            body: vec![],
        };
        assert_eq!(outcome(&err(ErrorKind::Function)), "error");
        assert_eq!(outcome(&err(ErrorKind::Init)), "init_error");
        assert_eq!(outcome(&err(ErrorKind::OutOfMemory)), "out_of_memory");
        assert_eq!(age(10_000, 7_500), Duration::from_millis(2500));
        assert_eq!(age(10_000, 12_000), Duration::ZERO);
    }
}
