//! The event bus: functions subscribe with `event` triggers (a bus name and
//! an EventBridge pattern); [`Platform::publish`] turns each PutEvents entry
//! into EventBridge's event, matches it against the bus's subscriptions and
//! queues one asynchronous event per matching subscriber, all in one
//! transaction, then wakes the asynchronous worker, so that path's retries
//! and dead letters apply.
//!
//! Buses exist implicitly: an entry on a bus nobody subscribes to is
//! accepted and goes nowhere, as on EventBridge's default bus. Parsed
//! patterns are cached per bus, dropped whenever a function's subscriptions
//! change here and re-read after [`CACHE_TTL`], so another server's deploy
//! on a shared database is seen too.

use crate::{Platform, PlatformError};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use updraft_core::arn::ACCOUNT;
use updraft_core::{new_request_id, now_ms, FunctionConfig, Invalid, Trigger};
use updraft_rules::pattern::Pattern;
use updraft_store::{BusSubscription, NewEvent};

/// Entries per PutEvents call (EventBridge's limit).
pub const MAX_ENTRIES: usize = 10;
/// The largest entry, counted as EventBridge counts it (see [`entry_size`]).
pub const MAX_ENTRY_BYTES: usize = 256 * 1024;
/// The bus of an entry that names none.
pub const DEFAULT_BUS: &str = "default";
/// How long a bus's parsed subscriptions serve without a look at the store.
pub const CACHE_TTL: Duration = Duration::from_secs(5);
/// Buses whose subscriptions are cached at most (publishers name buses).
const CACHED_BUSES: usize = 1024;
/// `source` of the asynchronous events a bus queues.
const EVENT_SOURCE: &str = "bus";

/// One PutEvents entry, as the caller gave it.
#[derive(Clone, Debug, Default)]
pub struct PutEntry {
    pub source: Option<String>,
    pub detail_type: Option<String>,
    /// A JSON object, as text.
    pub detail: Option<String>,
    pub resources: Vec<String>,
    /// None = the time of the call.
    pub time: Option<SystemTime>,
    /// A bus name or its ARN; None = [`DEFAULT_BUS`].
    pub event_bus_name: Option<String>,
    /// The publisher's trace context (a `traceparent`), continued by the targets' runs.
    pub trace: Option<String>,
}

/// What became of one entry, in EventBridge's terms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PutResult {
    /// The event's id.
    Accepted(String),
    Failed {
        /// `InvalidArgument`, `MalformedDetail`, `InternalFailure`.
        code: &'static str,
        message: String,
    },
}

impl PutResult {
    fn failed(code: &'static str, message: impl Into<String>) -> PutResult {
        PutResult::Failed {
            code,
            message: message.into(),
        }
    }
}

/// A subscriber of a bus, its pattern parsed.
#[derive(Debug)]
struct Subscriber {
    function: String,
    qualifier: String,
    pattern: Pattern,
}

type Subscribers = Arc<Vec<Subscriber>>;

/// Parsed subscriptions by bus, with when they were read.
#[derive(Default)]
pub(crate) struct BusCache {
    buses: Mutex<HashMap<String, (Instant, Subscribers)>>,
    /// Bumped by every invalidation, so a fill racing with a change is dropped.
    generation: AtomicU64,
}

impl BusCache {
    fn forget(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.buses.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    fn get(&self, bus: &str) -> Option<Subscribers> {
        let buses = self.buses.lock().unwrap_or_else(|e| e.into_inner());
        buses
            .get(bus)
            .filter(|(at, _)| at.elapsed() < CACHE_TTL)
            .map(|(_, s)| s.clone())
    }

    fn fill(&self, generation: u64, bus: &str, subscribers: &Subscribers) {
        let mut buses = self.buses.lock().unwrap_or_else(|e| e.into_inner());
        if self.generation.load(Ordering::SeqCst) != generation {
            return;
        }
        if buses.len() >= CACHED_BUSES {
            buses.retain(|_, (at, _)| at.elapsed() < CACHE_TTL);
            if buses.len() >= CACHED_BUSES {
                buses.clear();
            }
        }
        buses.insert(bus.to_string(), (Instant::now(), subscribers.clone()));
    }
}

/// The size EventBridge counts for an entry: Source, DetailType, Detail and
/// each resource in UTF-8 bytes, and 14 for a Time.
pub fn entry_size(e: &PutEntry) -> usize {
    let text = |s: &Option<String>| s.as_deref().map_or(0, str::len);
    text(&e.source)
        + text(&e.detail_type)
        + text(&e.detail)
        + e.resources.iter().map(String::len).sum::<usize>()
        + if e.time.is_some() { 14 } else { 0 }
}

/// The bus an entry names: its `EventBusName`, a name or an event bus ARN.
fn bus_name(name: Option<&str>) -> Result<&str, String> {
    let Some(given) = name.filter(|n| !n.is_empty()) else {
        return Ok(DEFAULT_BUS);
    };
    let name = match given.strip_prefix("arn:aws:events:") {
        Some(rest) => rest
            .split_once(':')
            .and_then(|(_region, rest)| rest.split_once(":event-bus/"))
            .map_or("", |(_account, name)| name),
        None => given,
    };
    if updraft_rules::valid_bus_name(name) {
        Ok(name)
    } else {
        Err(format!(
            "Parameter EventBusName is not valid: expected a bus name (1 to 256 letters, digits, \
             '.', '-', '_' and '/') or arn:aws:events:REGION:{ACCOUNT}:event-bus/NAME, got {given:?}"
        ))
    }
}

/// EventBridge's event for an entry, and its bus; or the entry's error.
fn event_of(
    e: &PutEntry,
    region: &str,
    now: SystemTime,
) -> Result<(String, serde_json::Value), PutResult> {
    let required = |v: &Option<String>, name: &str| -> Result<String, PutResult> {
        match v.as_deref() {
            Some(s) if !s.is_empty() => Ok(s.to_string()),
            _ => Err(PutResult::failed(
                "InvalidArgument",
                format!("Parameter {name} is not valid. Reason: {name} is a required argument."),
            )),
        }
    };
    let source = required(&e.source, "Source")?;
    let detail_type = required(&e.detail_type, "DetailType")?;
    let detail = required(&e.detail, "Detail")?;
    let size = entry_size(e);
    if size > MAX_ENTRY_BYTES {
        return Err(PutResult::failed(
            "InvalidArgument",
            format!(
                "the entry is {size} bytes (Source, DetailType, Detail and Resources); \
                 EventBridge's limit is {MAX_ENTRY_BYTES} bytes (256 KB) per entry"
            ),
        ));
    }
    let detail = match serde_json::from_str::<serde_json::Value>(&detail) {
        Ok(v @ serde_json::Value::Object(_)) => v,
        Ok(_) => {
            return Err(PutResult::failed(
                "MalformedDetail",
                "Detail is malformed: expected a JSON object",
            ))
        }
        Err(err) => {
            return Err(PutResult::failed(
                "MalformedDetail",
                format!("Detail is malformed: expected a JSON object ({err})"),
            ))
        }
    };
    let bus = bus_name(e.event_bus_name.as_deref())
        .map_err(|m| PutResult::failed("InvalidArgument", m))?;
    let time = humantime::format_rfc3339_seconds(e.time.unwrap_or(now)).to_string();
    let event = serde_json::json!({
        "version": "0",
        "id": new_request_id(),
        "detail-type": detail_type,
        "source": source,
        "account": ACCOUNT,
        "time": time,
        "region": region,
        "resources": e.resources,
        "detail": detail,
    });
    Ok((bus.to_string(), event))
}

/// The `event` triggers of a configuration, as subscription rows.
fn subscriptions_of(function: &str, config: &FunctionConfig) -> Vec<BusSubscription> {
    config
        .triggers
        .iter()
        .enumerate()
        .filter_map(|(idx, t)| match t {
            Trigger::Event(b) => Some(BusSubscription {
                function: function.to_string(),
                idx: idx as i64,
                bus: b.bus.clone(),
                qualifier: String::new(),
                pattern: b.pattern.to_string(),
            }),
            _ => None,
        })
        .collect()
}

impl Platform {
    /// Makes the function's bus subscriptions those of `config`, its
    /// `$LATEST` configuration now (None: the function is gone); part of
    /// [`Platform::sync_triggers`].
    pub(crate) async fn sync_subscriptions(
        &self,
        function: &str,
        config: Option<&FunctionConfig>,
    ) -> Result<(), PlatformError> {
        let store = &self.inner.store;
        match config {
            Some(c) => {
                store
                    .replace_bus_subscriptions(function, &subscriptions_of(function, c))
                    .await?
            }
            None => {
                store.drop_bus_subscriptions(function).await?;
            }
        }
        self.inner.buses.forget();
        Ok(())
    }

    /// A bus's subscribers, their patterns parsed (cached).
    async fn subscribers(&self, bus: &str) -> Result<Subscribers, PlatformError> {
        let cache = &self.inner.buses;
        if let Some(s) = cache.get(bus) {
            return Ok(s);
        }
        let generation = cache.generation.load(Ordering::SeqCst);
        let rows = self.inner.store.bus_subscriptions(bus).await?;
        let mut subscribers = Vec::with_capacity(rows.len());
        for row in rows {
            let parsed = serde_json::from_str(&row.pattern)
                .map_err(|e| Invalid::new("pattern", "JSON", e.to_string()))
                .and_then(|v| Pattern::parse(&v));
            match parsed {
                Ok(pattern) => subscribers.push(Subscriber {
                    function: row.function,
                    qualifier: row.qualifier,
                    pattern,
                }),
                // Checked at deploy; a row that no longer parses is skipped.
                Err(e) => tracing::warn!(
                    bus,
                    function = %row.function,
                    error = %e,
                    "skipping a bus subscription whose pattern does not parse"
                ),
            }
        }
        let subscribers = Arc::new(subscribers);
        cache.fill(generation, bus, &subscribers);
        Ok(subscribers)
    }

    /// EventBridge's PutEvents: each valid entry becomes an event with its
    /// own id, queued for every subscriber whose pattern it matches; all
    /// the call's queued events are written in one transaction. The results
    /// are in entry order. More than [`MAX_ENTRIES`] entries (or none) is
    /// refused as a whole.
    pub async fn publish(&self, entries: Vec<PutEntry>) -> Result<Vec<PutResult>, PlatformError> {
        if entries.is_empty() || entries.len() > MAX_ENTRIES {
            return Err(Invalid::new(
                "Entries",
                "1 to 10 entries (EventBridge's limit per PutEvents call)",
                format!("{} entries", entries.len()),
            )
            .into());
        }
        let now = SystemTime::now();
        let now_ms = now_ms();
        let mut results = Vec::with_capacity(entries.len());
        let mut queued = Vec::new();
        // The results that stand only if the queued events are written.
        let mut pending = Vec::new();
        for entry in &entries {
            let (bus, event) = match event_of(entry, self.region(), now) {
                Ok(v) => v,
                Err(failed) => {
                    results.push(failed);
                    continue;
                }
            };
            let subscribers = match self.subscribers(&bus).await {
                Ok(s) => s,
                Err(e) => {
                    results.push(PutResult::failed("InternalFailure", e.public_message()));
                    continue;
                }
            };
            let payload = event.to_string().into_bytes();
            for s in subscribers.iter().filter(|s| s.pattern.matches(&event)) {
                queued.push(NewEvent {
                    id: new_request_id(),
                    function: s.function.clone(),
                    qualifier: s.qualifier.clone(),
                    source: EVENT_SOURCE.to_string(),
                    payload: payload.clone(),
                    enqueued_ms: now_ms,
                    next_attempt_ms: now_ms,
                    trace: entry.trace.clone(),
                });
            }
            pending.push(results.len());
            let id = event["id"].as_str().unwrap_or_default().to_string();
            results.push(PutResult::Accepted(id));
        }
        if !queued.is_empty() {
            match self.inner.store.enqueue_events(&queued).await {
                Ok(()) => self.inner.events.wake(),
                Err(e) => {
                    let message = PlatformError::from(e).public_message();
                    for i in pending {
                        results[i] = PutResult::failed("InternalFailure", message.clone());
                    }
                }
            }
        }
        Ok(results)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(detail: &str) -> PutEntry {
        PutEntry {
            source: Some("shop".into()),
            detail_type: Some("OrderPlaced".into()),
            detail: Some(detail.into()),
            ..PutEntry::default()
        }
    }

    fn code(r: PutResult) -> &'static str {
        match r {
            PutResult::Failed { code, .. } => code,
            PutResult::Accepted(id) => panic!("accepted as {id}"),
        }
    }

    #[test]
    fn an_entry_becomes_eventbridges_event() {
        let mut e = entry(r#"{"n": 1, "region": "eu"}"#);
        e.resources = vec!["arn:aws:s3:::b".into()];
        e.event_bus_name = Some("orders".into());
        let at = std::time::UNIX_EPOCH + Duration::from_millis(1_796_173_323_456);
        let (bus, ev) = event_of(&e, "eu-west-1", at).unwrap();
        assert_eq!(bus, "orders");
        assert_eq!(ev["id"].as_str().unwrap().len(), 36);
        let mut ev = ev;
        ev["id"] = json!("ID");
        assert_eq!(
            ev,
            json!({
                "version": "0", "id": "ID", "detail-type": "OrderPlaced", "source": "shop",
                "account": "000000000000", "time": "2026-12-02T01:02:03Z", "region": "eu-west-1",
                "resources": ["arn:aws:s3:::b"], "detail": {"n": 1, "region": "eu"},
            })
        );
        // The entry's own Time wins; no bus is the default one.
        e.time = Some(std::time::UNIX_EPOCH + Duration::from_secs(86_400));
        e.event_bus_name = None;
        let (bus, ev) = event_of(&e, "r", at).unwrap();
        assert_eq!(
            (bus.as_str(), &ev["time"]),
            ("default", &json!("1970-01-02T00:00:00Z"))
        );
    }

    #[test]
    fn bad_entries_get_eventbridges_error_codes() {
        let now = SystemTime::now();
        let check = |e: PutEntry| code(event_of(&e, "r", now).unwrap_err());
        for missing in ["Source", "DetailType", "Detail"] {
            let mut e = entry("{}");
            match missing {
                "Source" => e.source = None,
                "DetailType" => e.detail_type = Some(String::new()),
                _ => e.detail = None,
            }
            let PutResult::Failed { code, message } = event_of(&e, "r", now).unwrap_err() else {
                unreachable!()
            };
            assert_eq!(code, "InvalidArgument");
            assert!(message.contains(missing), "{message}");
        }
        for detail in ["[1]", "\"x\"", "{nope", "3"] {
            assert_eq!(check(entry(detail)), "MalformedDetail", "{detail}");
        }
        let big = format!(r#"{{"x": "{}"}}"#, "a".repeat(MAX_ENTRY_BYTES));
        assert_eq!(check(entry(&big)), "InvalidArgument");
        let mut e = entry("{}");
        e.event_bus_name = Some("no spaces".into());
        assert_eq!(check(e), "InvalidArgument");
    }

    #[test]
    fn sizes_and_bus_names_follow_eventbridge() {
        let mut e = entry(r#"{"a":1}"#);
        assert_eq!(entry_size(&e), 4 + 11 + 7);
        e.time = Some(SystemTime::now());
        e.resources = vec!["ab".into(), "c".into()];
        assert_eq!(entry_size(&e), 4 + 11 + 7 + 14 + 3);
        // Just at the limit passes.
        let at_limit = "a".repeat(MAX_ENTRY_BYTES - 4 - 11 - 6);
        let e = entry(&format!(r#"{{"{at_limit}":1}}"#));
        assert_eq!(entry_size(&e), MAX_ENTRY_BYTES);
        assert!(event_of(&e, "r", SystemTime::now()).is_ok());

        assert_eq!(bus_name(None), Ok("default"));
        assert_eq!(bus_name(Some("")), Ok("default"));
        assert_eq!(bus_name(Some("orders")), Ok("orders"));
        assert_eq!(
            bus_name(Some(
                "arn:aws:events:us-east-1:000000000000:event-bus/orders"
            )),
            Ok("orders")
        );
        assert!(bus_name(Some("arn:aws:events:us-east-1:000000000000:rule/x")).is_err());
        assert!(bus_name(Some(&"b".repeat(257))).is_err());
    }

    #[test]
    fn only_event_triggers_subscribe() {
        let config: FunctionConfig = serde_json::from_value(json!({
            "runtime": "python3", "handler": "a.b", "memory_mb": 128, "timeout_ms": 1000,
            "triggers": [
                {"http": {"method": "GET", "path": "/x"}},
                {"event": {"bus": "orders", "pattern": {"source": ["shop"]}}},
                {"event": {"bus": "audit", "pattern": {}}},
            ],
        }))
        .unwrap();
        let subs = subscriptions_of("f", &config);
        assert_eq!(
            subs.iter()
                .map(|s| (s.idx, s.bus.as_str(), s.pattern.as_str()))
                .collect::<Vec<_>>(),
            [(1, "orders", r#"{"source":["shop"]}"#), (2, "audit", "{}")]
        );
    }
}
