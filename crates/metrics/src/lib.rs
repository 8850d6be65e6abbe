//! Prometheus metrics (`/metrics`): the families the platform records into
//! on every invocation (lock-free counters and histograms behind an
//! [`Arc`]), the gauges read at scrape time ([`Snapshot`]), and the
//! server's own process metrics ([`process`]). Encoded with
//! `prometheus-client` in the Prometheus text format, version 0.0.4.

mod process;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Metric, Registry, Unit};
use std::fmt::Write as _;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// What can go wrong producing a scrape.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("encoding the metrics failed")]
    Encode(#[from] std::fmt::Error),
}

/// Upper bounds (seconds) of the duration histograms' buckets.
pub const DURATION_BUCKETS: [f64; 16] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// A function's name as a label value: made once per invocation, shared
/// (not copied) by every family the invocation counts in.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct Name(Arc<str>);

impl EncodeLabelValue for Name {
    fn encode(&self, e: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        e.write_str(&self.0)
    }
}

/// A function version.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FunctionLabels {
    function: Name,
    version: i64,
}

/// An invocation's function version, what started it and how it ended.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InvocationLabels {
    function: Name,
    version: i64,
    trigger: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    function: Name,
    version: i64,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StartLabels {
    function: Name,
    version: i64,
    start: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ThrottleLabels {
    function: Name,
    version: i64,
    trigger: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InstanceLabels {
    function: String,
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AsyncLabels {
    function: String,
    source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabels {
    queue: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueStateLabels {
    queue: String,
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FunctionOnly {
    function: String,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;
type FloatGauge = Gauge<f64, AtomicU64>;

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

/// One finished invocation, as [`Metrics::invocation`] records it.
#[derive(Clone, Debug)]
pub struct Finished<'a> {
    pub function: &'a str,
    pub version: i64,
    /// What started it (`http`, `invoke`, `event`, `schedule`, `queue`, `bus`).
    pub trigger: &'static str,
    /// `success`, `error`, `timeout`, `out_of_memory`, `crash` or `init_error`.
    pub outcome: &'static str,
    pub duration: Duration,
    /// The instance's start, when this invocation started it (a cold start).
    pub init: Option<Duration>,
    pub billed_ms: u64,
    pub memory_mb: u64,
}

/// What the scrape reads from the scheduler and the store.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Per function: instances live (idle included) and idle.
    pub instances: Vec<(String, u32, u32)>,
    /// Asynchronous events waiting: function, source (`invoke`,
    /// `destination`, `schedule`, `bus`), count, age of the oldest.
    pub async_events: Vec<(String, String, i64, Duration)>,
    /// Dead letters of asynchronous events, per function.
    pub dead_letters: Vec<(String, i64)>,
    /// Queues: name, visible, in flight, delayed, oldest message's age
    /// (None when empty), messages in its dead-letter queue.
    pub queues: Vec<QueueDepth>,
}

/// One queue's numbers at scrape time.
#[derive(Clone, Debug)]
pub struct QueueDepth {
    pub name: String,
    pub visible: i64,
    pub in_flight: i64,
    pub delayed: i64,
    pub oldest: Option<Duration>,
    pub dead_letters: i64,
}

/// A family's name, help and unit.
type Desc = (&'static str, &'static str, Option<Unit>);

/// The families' descriptions.
mod desc {
    use super::{Desc, Unit};
    pub const INVOCATIONS: Desc = (
        "updraft_invocations",
        "Invocations by function, version, trigger and outcome (throttles included)",
        None,
    );
    pub const ERRORS: Desc = (
        "updraft_errors",
        "Invocations that ended in an error, by outcome",
        None,
    );
    pub const STARTS: Desc = (
        "updraft_starts",
        "Invocations by start: cold (started an instance) or warm",
        None,
    );
    pub const THROTTLES: Desc = (
        "updraft_throttles",
        "Invocations refused for want of concurrency",
        None,
    );
    pub const INVOCATION_DURATION: Desc = (
        "updraft_invocation_duration",
        "Run time of invocations (init excluded)",
        Some(Unit::Seconds),
    );
    pub const INIT_DURATION: Desc = (
        "updraft_init_duration",
        "Instance start time of cold starts",
        Some(Unit::Seconds),
    );
    pub const BILLED_GB_SECONDS: Desc = (
        "updraft_billed_gb_seconds",
        "Billed duration times memory (GB = 1024 MB), as Lambda bills",
        None,
    );
    pub const INSTANCES: Desc = (
        "updraft_instances",
        "Instances per function: live (idle included) and idle",
        None,
    );
    pub const ASYNC_EVENTS: Desc = (
        "updraft_async_events",
        "Asynchronous events waiting or running, by target function and source",
        None,
    );
    pub const ASYNC_OLDEST_AGE: Desc = (
        "updraft_async_oldest_age",
        "Age of the oldest asynchronous event, by target function and source",
        Some(Unit::Seconds),
    );
    pub const DEAD_LETTERS: Desc = (
        "updraft_dead_letters",
        "Asynchronous events that failed for good, kept as dead letters",
        None,
    );
    pub const QUEUE_MESSAGES: Desc = (
        "updraft_queue_messages",
        "Messages per queue: visible, in_flight or delayed",
        None,
    );
    pub const QUEUE_OLDEST_AGE: Desc = (
        "updraft_queue_oldest_age",
        "Age of the oldest message on a queue (absent when empty)",
        Some(Unit::Seconds),
    );
    pub const QUEUE_DEAD_LETTERS: Desc = (
        "updraft_queue_dead_letters",
        "Messages moved from a queue to its dead-letter queue and still there",
        None,
    );
}

fn add<M: Metric + Clone>(r: &mut Registry, (name, help, unit): Desc, m: &M) {
    match unit {
        Some(unit) => r.register_with_unit(name, help, unit, m.clone()),
        None => r.register(name, help, m.clone()),
    }
}

/// Every family, registered once. Cheap to share: hold it in an [`Arc`].
pub struct Metrics {
    registry: Registry,
    invocations: Family<InvocationLabels, Counter>,
    errors: Family<ErrorLabels, Counter>,
    starts: Family<StartLabels, Counter>,
    throttles: Family<ThrottleLabels, Counter>,
    duration: Histograms<FunctionLabels>,
    init_duration: Histograms<FunctionLabels>,
    gb_seconds: Family<FunctionLabels, Counter<f64, AtomicU64>>,
    instances: Family<InstanceLabels, Gauge>,
    async_events: Family<AsyncLabels, Gauge>,
    async_oldest: Family<AsyncLabels, FloatGauge>,
    dead_letters: Family<FunctionOnly, Gauge>,
    queue_messages: Family<QueueStateLabels, Gauge>,
    queue_oldest: Family<QueueLabels, FloatGauge>,
    queue_dead_letters: Family<QueueLabels, Gauge>,
    /// One scrape at a time: the scrape-time gauges are cleared and set.
    scrape: Mutex<()>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut m = Metrics {
            registry: Registry::default(),
            invocations: Family::default(),
            errors: Family::default(),
            starts: Family::default(),
            throttles: Family::default(),
            duration: Family::new_with_constructor(duration_histogram),
            init_duration: Family::new_with_constructor(duration_histogram),
            gb_seconds: Family::default(),
            instances: Family::default(),
            async_events: Family::default(),
            async_oldest: Family::default(),
            dead_letters: Family::default(),
            queue_messages: Family::default(),
            queue_oldest: Family::default(),
            queue_dead_letters: Family::default(),
            scrape: Mutex::new(()),
        };
        use desc::*;
        let r = &mut m.registry;
        add(r, INVOCATIONS, &m.invocations);
        add(r, ERRORS, &m.errors);
        add(r, STARTS, &m.starts);
        add(r, THROTTLES, &m.throttles);
        add(r, INVOCATION_DURATION, &m.duration);
        add(r, INIT_DURATION, &m.init_duration);
        add(r, BILLED_GB_SECONDS, &m.gb_seconds);
        add(r, INSTANCES, &m.instances);
        add(r, ASYNC_EVENTS, &m.async_events);
        add(r, ASYNC_OLDEST_AGE, &m.async_oldest);
        add(r, DEAD_LETTERS, &m.dead_letters);
        add(r, QUEUE_MESSAGES, &m.queue_messages);
        add(r, QUEUE_OLDEST_AGE, &m.queue_oldest);
        add(r, QUEUE_DEAD_LETTERS, &m.queue_dead_letters);
        // Process metrics keep their conventional names (`process_…`).
        r.register_collector(Box::new(process::ProcessCollector));
        m
    }

    /// Records a finished invocation (any outcome but a throttle).
    pub fn invocation(&self, f: &Finished<'_>) {
        let function = FunctionLabels {
            function: Name(f.function.into()),
            version: f.version,
        };
        self.invocations
            .get_or_create(&InvocationLabels {
                function: function.function.clone(),
                version: f.version,
                trigger: f.trigger,
                outcome: f.outcome,
            })
            .inc();
        if f.outcome != "success" {
            self.errors
                .get_or_create(&ErrorLabels {
                    function: function.function.clone(),
                    version: f.version,
                    outcome: f.outcome,
                })
                .inc();
        }
        let start = if f.init.is_some() { "cold" } else { "warm" };
        self.starts
            .get_or_create(&StartLabels {
                function: function.function.clone(),
                version: f.version,
                start,
            })
            .inc();
        self.duration
            .get_or_create(&function)
            .observe(f.duration.as_secs_f64());
        if let Some(init) = f.init {
            self.init_duration
                .get_or_create(&function)
                .observe(init.as_secs_f64());
        }
        let gb_seconds = f.billed_ms as f64 / 1000.0 * f.memory_mb as f64 / 1024.0;
        self.gb_seconds.get_or_create(&function).inc_by(gb_seconds);
    }

    /// Records a throttled invocation.
    pub fn throttle(&self, function: &str, version: i64, trigger: &'static str) {
        let function = Name(function.into());
        self.invocations
            .get_or_create(&InvocationLabels {
                function: function.clone(),
                version,
                trigger,
                outcome: "throttled",
            })
            .inc();
        self.throttles
            .get_or_create(&ThrottleLabels {
                function,
                version,
                trigger,
            })
            .inc();
    }

    /// The Prometheus text exposition of everything, with `snapshot`'s
    /// gauges in place of the last scrape's.
    pub fn encode(&self, snapshot: &Snapshot) -> Result<String, MetricsError> {
        let _one = self.scrape.lock().unwrap_or_else(|e| e.into_inner());
        self.set_gauges(snapshot);
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)?;
        Ok(out)
    }

    fn set_gauges(&self, s: &Snapshot) {
        self.instances.clear();
        self.async_events.clear();
        self.async_oldest.clear();
        self.dead_letters.clear();
        self.queue_messages.clear();
        self.queue_oldest.clear();
        self.queue_dead_letters.clear();
        for (function, live, idle) in &s.instances {
            for (state, n) in [("live", live), ("idle", idle)] {
                self.instances
                    .get_or_create(&InstanceLabels {
                        function: function.clone(),
                        state,
                    })
                    .set(*n as i64);
            }
        }
        for (function, source, count, oldest) in &s.async_events {
            let l = AsyncLabels {
                function: function.clone(),
                source: source.clone(),
            };
            self.async_events.get_or_create(&l).set(*count);
            self.async_oldest
                .get_or_create(&l)
                .set(oldest.as_secs_f64());
        }
        for (function, n) in &s.dead_letters {
            self.dead_letters
                .get_or_create(&FunctionOnly {
                    function: function.clone(),
                })
                .set(*n);
        }
        for q in &s.queues {
            for (state, n) in [
                ("visible", q.visible),
                ("in_flight", q.in_flight),
                ("delayed", q.delayed),
            ] {
                self.queue_messages
                    .get_or_create(&QueueStateLabels {
                        queue: q.name.clone(),
                        state,
                    })
                    .set(n);
            }
            let l = QueueLabels {
                queue: q.name.clone(),
            };
            if let Some(age) = q.oldest {
                self.queue_oldest.get_or_create(&l).set(age.as_secs_f64());
            }
            self.queue_dead_letters
                .get_or_create(&l)
                .set(q.dead_letters);
        }
    }
}

#[cfg(test)]
mod tests;
