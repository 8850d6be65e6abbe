//! Asynchronous invocation: the one path of every asynchronous event (Lambda
//! `Event` invokes and `updraft invoke --async` today; cron and topic triggers
//! later).
//!
//! [`Platform::enqueue_event`] writes the event to the store's queue in a
//! committed transaction before it returns, so an accepted event survives a
//! crash. One worker per server claims due events with a lease and runs each
//! through [`Platform::invoke_spec`], so the function's scaling limits apply:
//!
//! - success: the event is deleted (in batches), or sent on to the on-success
//!   destination;
//! - a function error (any `Outcome::Error`) is an attempt: retried after
//!   `retry_base × 2^(attempt-1)` (Lambda: about 1 then 2 minutes) up to
//!   `MaximumRetryAttempts` (default 2);
//! - a throttle, a draining server or a store hiccup is not an attempt: the
//!   event is retried after 1 s, doubling up to 5 minutes, as Lambda retries
//!   throttles;
//! - out of retries, or older than `MaximumEventAgeInSeconds` (default 6 h):
//!   Lambda's destination invocation record goes to the on-failure destination
//!   function as a new event, or, without one, to the function's dead letters
//!   (`updraft dlq NAME`).
//!
//! Every run of an event uses the event's request id (as Lambda's retries
//! do); each run is metered as its own invocation record.
//!
//! At start-up the worker releases the events a killed run of this server
//! left claimed (the worker id is stable per host and data directory); a
//! claimed event whose lease ran out (another server died) is due again.
//! Deleting a function drops its queued events, its dead letters and its
//! EventInvokeConfigs, as Lambda drops a deleted function's queue.

use crate::writer::BatchWriter;
use crate::{Platform, PlatformError};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, Semaphore};
use updraft_core::{function_arn, new_request_id, now_ms, Outcome};
use updraft_store::{
    DeadLetter, EventInvokeConfigRow, LastError, NewEvent, QueuedEvent, Store, StoreError,
};

/// Largest asynchronous invocation payload. Lambda raised it from 256 KB to
/// 1 MB in October 2025 ("AWS Lambda increases maximum payload size from
/// 256 KB to 1 MB for asynchronous invocations"; AWS Compute Blog, "More room
/// to build: serverless services now support payloads up to 1 MB").
pub const MAX_EVENT_PAYLOAD_BYTES: usize = 1024 * 1024;
/// Lambda's defaults and ranges for EventInvokeConfig.
pub const DEFAULT_MAX_RETRY_ATTEMPTS: u32 = 2;
pub const DEFAULT_MAX_EVENT_AGE_S: u32 = 6 * 60 * 60;
const MAX_RETRY_ATTEMPTS: i64 = 2;
const MIN_EVENT_AGE_S: i64 = 60;
/// The default backoff base (`updraft server --retry-base`).
pub const DEFAULT_RETRY_BASE: Duration = Duration::from_secs(60);

/// Bytes of event completions that may wait for the store.
const COMPLETION_QUEUE_BYTES: usize = 4 << 20;

/// How long a claim holds without renewal, and how often it is renewed.
const LEASE_MS: i64 = 60_000;
const RENEW_EVERY: Duration = Duration::from_secs(20);
/// The worker looks at the queue at least this often.
const POLL_MS: i64 = 1000;
/// Events run at once by one server, over all functions.
const CONCURRENCY: usize = 64;
/// Throttle retries: 1 s doubling to 5 minutes (Lambda's documented backoff).
const THROTTLE_FIRST_MS: i64 = 1000;
const THROTTLE_MAX_MS: i64 = 5 * 60 * 1000;

/// The worker's state, one per platform.
pub(crate) struct Events {
    worker: String,
    retry_base: Duration,
    notify: Notify,
    draining: AtomicBool,
    permits: Arc<Semaphore>,
    completions: BatchWriter<String>,
}

impl Events {
    /// `worker` must be stable across restarts of the same server (host and
    /// data directory) so that it can take back what it held when it died.
    pub(crate) fn new(store: Store, worker: String, retry_base: Duration) -> Events {
        let w = worker.clone();
        // A completion dropped or lost leaves its event claimed: it runs
        // again once the lease lapses (at least once, never lost).
        let completions = BatchWriter::spawn(
            "event completions",
            COMPLETION_QUEUE_BYTES,
            move |ids: Vec<String>| {
                let store = store.clone();
                let w = w.clone();
                async move { store.complete_events(&w, &ids).await }
            },
        );
        Events {
            worker,
            retry_base,
            notify: Notify::new(),
            draining: AtomicBool::new(false),
            permits: Arc::new(Semaphore::new(CONCURRENCY)),
            completions,
        }
    }
}

/// Why an event failed for good (Lambda's `requestContext.condition`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureCondition {
    RetriesExhausted,
    EventAgeExceeded,
}

impl FailureCondition {
    pub fn as_str(&self) -> &'static str {
        match self {
            FailureCondition::RetriesExhausted => "RetriesExhausted",
            FailureCondition::EventAgeExceeded => "EventAgeExceeded",
        }
    }
}

/// A function's asynchronous invocation settings (Lambda's
/// FunctionEventInvokeConfig); None = not set, Lambda's default applies.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventInvokeConfig {
    pub function: String,
    /// `$LATEST`, a version number or an alias.
    pub qualifier: String,
    /// The qualified ARN the settings belong to.
    pub function_arn: String,
    pub maximum_retry_attempts: Option<u32>,
    pub maximum_event_age_s: Option<u32>,
    /// Destination ARNs.
    pub on_success: Option<String>,
    pub on_failure: Option<String>,
    pub last_modified_ms: i64,
}

/// What a Put (replace) or Update (merge) sets. For Update, None leaves a
/// setting as it is; for Put, None unsets it. An empty destination string
/// removes the destination.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventInvokeConfigInput {
    pub maximum_retry_attempts: Option<i64>,
    pub maximum_event_age_s: Option<i64>,
    pub on_success: Option<String>,
    pub on_failure: Option<String>,
}

/// The settings an event runs under.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Effective {
    max_retries: i64,
    max_age_ms: i64,
    on_success: Option<String>,
    on_failure: Option<String>,
}

impl Effective {
    fn from_row(row: Option<&EventInvokeConfigRow>) -> Effective {
        Effective {
            max_retries: row
                .and_then(|r| r.max_retry_attempts)
                .unwrap_or(DEFAULT_MAX_RETRY_ATTEMPTS as i64),
            max_age_ms: row
                .and_then(|r| r.max_event_age_s)
                .unwrap_or(DEFAULT_MAX_EVENT_AGE_S as i64)
                * 1000,
            on_success: row.and_then(|r| r.on_success.clone()),
            on_failure: row.and_then(|r| r.on_failure.clone()),
        }
    }
}

/// What to do after a run that ended in a function error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AfterError {
    RetryAt(i64),
    Fail(FailureCondition),
}

/// `base × 2^(attempt-1)`: the wait after the `attempt`-th failed run.
pub fn backoff(base: Duration, attempt: u32) -> Duration {
    let factor = 1u32 << attempt.saturating_sub(1).min(16);
    base.saturating_mul(factor)
}

fn after_error(
    eff: &Effective,
    base: Duration,
    enqueued_ms: i64,
    attempts: i64,
    now: i64,
) -> AfterError {
    if attempts > eff.max_retries {
        return AfterError::Fail(FailureCondition::RetriesExhausted);
    }
    let at = now.saturating_add(backoff(base, attempts as u32).as_millis() as i64);
    if at - enqueued_ms > eff.max_age_ms {
        // It would be too old by the time it could run again.
        return AfterError::Fail(FailureCondition::EventAgeExceeded);
    }
    AfterError::RetryAt(at)
}

/// The wait before re-running an event after its `n`-th run that was not an
/// attempt (throttled, server draining).
fn throttle_delay_ms(n: i64) -> i64 {
    let shift = n.saturating_sub(1).clamp(0, 20) as u32;
    THROTTLE_FIRST_MS
        .saturating_mul(1i64 << shift)
        .min(THROTTLE_MAX_MS)
}

fn version_label(v: i64) -> String {
    if v == 0 {
        "$LATEST".into()
    } else {
        v.to_string()
    }
}

fn json_or_string(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

/// Lambda's destination invocation record.
#[allow(clippy::too_many_arguments)]
fn destination_record(
    request_id: &str,
    function_arn: &str,
    condition: &str,
    invoke_count: i64,
    timestamp_ms: i64,
    request_payload: &[u8],
    response: Option<(&str, Option<&str>, &[u8])>,
) -> serde_json::Value {
    let ts = humantime::format_rfc3339_millis(
        std::time::UNIX_EPOCH + Duration::from_millis(timestamp_ms.max(0) as u64),
    )
    .to_string();
    let mut record = serde_json::json!({
        "version": "1.0",
        "timestamp": ts,
        "requestContext": {
            "requestId": request_id,
            "functionArn": function_arn,
            "condition": condition,
            "approximateInvokeCount": invoke_count,
        },
        "requestPayload": json_or_string(request_payload),
    });
    if let Some((version, function_error, body)) = response {
        let mut ctx = serde_json::json!({ "statusCode": 200, "executedVersion": version });
        if let Some(fe) = function_error {
            ctx["functionError"] = fe.into();
        }
        record["responseContext"] = ctx;
        record["responsePayload"] = json_or_string(body);
    }
    record
}

/// `arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]` → (name, qualifier).
fn parse_function_arn(arn: &str) -> Option<(String, String)> {
    let parts: Vec<&str> = arn.split(':').collect();
    if parts.len() < 7
        || parts.len() > 8
        || parts[0] != "arn"
        || !parts[1].starts_with("aws")
        || parts[2] != "lambda"
        || parts[5] != "function"
        || !updraft_core::valid_function_name(parts[6])
    {
        return None;
    }
    let qualifier = parts.get(7).copied().unwrap_or("");
    if parts.len() == 8 && qualifier.is_empty() {
        return None;
    }
    Some((parts[6].to_string(), qualifier.to_string()))
}

fn check_destination(field: &str, arn: &str) -> Result<(), PlatformError> {
    if parse_function_arn(arn).is_some() {
        return Ok(());
    }
    let service = arn.split(':').nth(2).unwrap_or("");
    if arn.starts_with("arn:") && ["sqs", "sns", "s3", "events"].contains(&service) {
        return Err(PlatformError::InvalidParameter(format!(
            "The destination ARN {arn} of {field} is not supported: Updraft delivers to Lambda functions only \
             (arn:aws:lambda:REGION:000000000000:function:NAME)"
        )));
    }
    Err(PlatformError::InvalidParameter(format!(
        "1 validation error detected: Value '{arn}' at '{field}' failed to satisfy constraint: \
         Member must be a function ARN (arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER])"
    )))
}

fn check_range(field: &str, v: i64, min: i64, max: i64) -> Result<(), PlatformError> {
    if v < min {
        return Err(PlatformError::InvalidParameter(format!(
            "1 validation error detected: Value '{v}' at '{field}' failed to satisfy constraint: \
             Member must have value greater than or equal to {min}"
        )));
    }
    if v > max {
        return Err(PlatformError::InvalidParameter(format!(
            "1 validation error detected: Value '{v}' at '{field}' failed to satisfy constraint: \
             Member must have value less than or equal to {max}"
        )));
    }
    Ok(())
}

/// `None`/`""`/`$LATEST` → `$LATEST`: the key EventInvokeConfigs are stored under.
fn config_qualifier(q: &str) -> String {
    if q.is_empty() {
        "$LATEST".into()
    } else {
        q.to_string()
    }
}

/// Retries a store call a few times: SQLite may be busy for a moment.
async fn with_retries<T, F, Fut>(what: &str, mut f: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let mut attempt = 0u32;
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) if attempt >= 4 => {
                tracing::error!(error = %e, "async events: {what} failed");
                return Err(e);
            }
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
                attempt += 1;
            }
        }
    }
}

impl Platform {
    fn events(&self) -> &Events {
        &self.inner.events
    }

    /// Accepts an asynchronous invocation of `name` (optionally qualified):
    /// checks the function and the payload, writes the event durably, wakes
    /// the worker and returns the request id. The 202 a caller sends after
    /// this means the event survives a crash.
    pub async fn enqueue_event(
        &self,
        name: &str,
        qualifier: Option<&str>,
        payload: Vec<u8>,
    ) -> Result<String, PlatformError> {
        self.enqueue_event_from("invoke", name, qualifier, payload)
            .await
    }

    /// [`Platform::enqueue_event`] for any producer of events (`source`:
    /// `invoke`, `schedule`, `topic`, …).
    pub async fn enqueue_event_from(
        &self,
        source: &str,
        name: &str,
        qualifier: Option<&str>,
        payload: Vec<u8>,
    ) -> Result<String, PlatformError> {
        if payload.len() > MAX_EVENT_PAYLOAD_BYTES {
            return Err(PlatformError::TooLarge(format!(
                "Request must be smaller than {MAX_EVENT_PAYLOAD_BYTES} bytes for the Event invocation type (got {} bytes)",
                payload.len()
            )));
        }
        // The function (and the version or alias) must exist now.
        self.resolve(name, qualifier).await?;
        let id = new_request_id();
        let now = now_ms();
        self.inner
            .store
            .enqueue_event(&NewEvent {
                id: id.clone(),
                function: name.to_string(),
                qualifier: qualifier
                    .filter(|q| !q.is_empty())
                    .unwrap_or("")
                    .to_string(),
                source: source.to_string(),
                payload,
                enqueued_ms: now,
                next_attempt_ms: now,
            })
            .await?;
        self.events().notify.notify_one();
        Ok(id)
    }

    /// The function's dead letters: Lambda destination invocation records of
    /// the events that failed for good without a destination, oldest first.
    pub async fn dead_letters(&self, name: &str) -> Result<Vec<serde_json::Value>, PlatformError> {
        if self.inner.store.get_function(name).await?.is_none() {
            return Err(self.not_found(name));
        }
        let letters = self.inner.store.dead_letters(name, 10_000).await?;
        Ok(letters
            .iter()
            .map(|d| {
                serde_json::from_str(&d.record)
                    .unwrap_or_else(|_| serde_json::Value::String(d.record.clone()))
            })
            .collect())
    }

    /// Events of `name` still on the queue (pending or running).
    pub async fn queued_events(&self, name: &str) -> Result<i64, PlatformError> {
        Ok(self.inner.store.count_events(Some(name)).await?)
    }

    // ---- EventInvokeConfig ----------------------------------------------

    async fn event_config_target(
        &self,
        name: &str,
        qualifier: Option<&str>,
    ) -> Result<String, PlatformError> {
        let q = qualifier.filter(|q| !q.is_empty());
        match q {
            None | Some("$LATEST") => {
                if self.inner.store.get_function(name).await?.is_none() {
                    return Err(self.not_found(name));
                }
            }
            Some(_) => {
                self.resolve(name, q).await?;
            }
        }
        Ok(config_qualifier(q.unwrap_or("")))
    }

    fn event_config_out(&self, row: EventInvokeConfigRow) -> EventInvokeConfig {
        EventInvokeConfig {
            function_arn: format!(
                "{}:{}",
                function_arn(self.region(), &row.function),
                row.qualifier
            ),
            function: row.function,
            qualifier: row.qualifier,
            maximum_retry_attempts: row.max_retry_attempts.map(|v| v as u32),
            maximum_event_age_s: row.max_event_age_s.map(|v| v as u32),
            on_success: row.on_success,
            on_failure: row.on_failure,
            last_modified_ms: row.updated_ms,
        }
    }

    /// PutFunctionEventInvokeConfig (`merge` false: replaces every setting)
    /// and UpdateFunctionEventInvokeConfig (`merge` true: changes only those given).
    pub async fn put_event_invoke_config(
        &self,
        name: &str,
        qualifier: Option<&str>,
        input: EventInvokeConfigInput,
        merge: bool,
    ) -> Result<EventInvokeConfig, PlatformError> {
        if let Some(v) = input.maximum_retry_attempts {
            check_range("maximumRetryAttempts", v, 0, MAX_RETRY_ATTEMPTS)?;
        }
        if let Some(v) = input.maximum_event_age_s {
            check_range(
                "maximumEventAgeInSeconds",
                v,
                MIN_EVENT_AGE_S,
                DEFAULT_MAX_EVENT_AGE_S as i64,
            )?;
        }
        for (field, d) in [
            ("destinationConfig.onSuccess.destination", &input.on_success),
            ("destinationConfig.onFailure.destination", &input.on_failure),
        ] {
            if let Some(arn) = d.as_deref().filter(|a| !a.is_empty()) {
                check_destination(field, arn)?;
            }
        }
        let q = self.event_config_target(name, qualifier).await?;
        let store = &self.inner.store;
        let old = if merge {
            store.get_event_invoke_config(name, &q).await?
        } else {
            None
        };
        let pick = |new: Option<String>, old: Option<String>| match new {
            Some(s) if s.is_empty() => None,
            Some(s) => Some(s),
            None => old,
        };
        let row = EventInvokeConfigRow {
            function: name.to_string(),
            qualifier: q,
            max_retry_attempts: input
                .maximum_retry_attempts
                .or(old.as_ref().and_then(|o| o.max_retry_attempts)),
            max_event_age_s: input
                .maximum_event_age_s
                .or(old.as_ref().and_then(|o| o.max_event_age_s)),
            on_success: pick(
                input.on_success,
                old.as_ref().and_then(|o| o.on_success.clone()),
            ),
            on_failure: pick(
                input.on_failure,
                old.as_ref().and_then(|o| o.on_failure.clone()),
            ),
            updated_ms: now_ms(),
        };
        store.put_event_invoke_config(&row).await?;
        Ok(self.event_config_out(row))
    }

    /// GetFunctionEventInvokeConfig: NotFound when none was put.
    pub async fn get_event_invoke_config(
        &self,
        name: &str,
        qualifier: Option<&str>,
    ) -> Result<EventInvokeConfig, PlatformError> {
        let q = self.event_config_target(name, qualifier).await?;
        match self.inner.store.get_event_invoke_config(name, &q).await? {
            Some(row) => Ok(self.event_config_out(row)),
            None => Err(self.no_event_config(name, &q)),
        }
    }

    /// ListFunctionEventInvokeConfigs: every qualifier's settings.
    pub async fn list_event_invoke_configs(
        &self,
        name: &str,
    ) -> Result<Vec<EventInvokeConfig>, PlatformError> {
        self.event_config_target(name, None).await?;
        let rows = self.inner.store.list_event_invoke_configs(name).await?;
        Ok(rows.into_iter().map(|r| self.event_config_out(r)).collect())
    }

    /// DeleteFunctionEventInvokeConfig: NotFound when none was put.
    pub async fn delete_event_invoke_config(
        &self,
        name: &str,
        qualifier: Option<&str>,
    ) -> Result<(), PlatformError> {
        let q = self.event_config_target(name, qualifier).await?;
        if !self
            .inner
            .store
            .delete_event_invoke_config(name, &q)
            .await?
        {
            return Err(self.no_event_config(name, &q));
        }
        Ok(())
    }

    fn no_event_config(&self, name: &str, q: &str) -> PlatformError {
        PlatformError::NotFound(format!(
            "The function {}:{q} doesn't have an EventInvokeConfig",
            function_arn(self.region(), name)
        ))
    }

    // ---- the worker -------------------------------------------------------

    /// Releases what a killed run of this server held, then starts the
    /// worker and its lease renewal.
    pub(crate) async fn start_event_worker(&self) -> Result<(), PlatformError> {
        let ev = self.events();
        let released = self.inner.store.release_claimed_events(&ev.worker).await?;
        if released > 0 {
            tracing::info!(
                released,
                "async events: released events left running by the previous run"
            );
        }
        let p = self.clone();
        tokio::spawn(async move { p.event_loop().await });
        let p = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(RENEW_EVERY).await;
                let ev = p.events();
                if let Err(e) = p
                    .inner
                    .store
                    .renew_event_leases(&ev.worker, now_ms() + LEASE_MS)
                    .await
                {
                    tracing::warn!(error = %e, "async events: renewing leases failed");
                }
            }
        });
        Ok(())
    }

    /// Stops claiming events; those running finish (or go back to the queue
    /// when the scheduler refuses them while draining).
    pub(crate) fn stop_event_worker(&self) {
        self.events().draining.store(true, Ordering::SeqCst);
        self.events().notify.notify_one();
    }

    /// Writes the completions still buffered.
    pub(crate) async fn flush_events(&self) {
        self.events().completions.flush().await;
    }

    async fn event_loop(self) {
        let ev = self.events();
        let store = &self.inner.store;
        loop {
            if ev.draining.load(Ordering::SeqCst) {
                return;
            }
            let free = ev.permits.available_permits();
            if free == 0 {
                // Wait for a running event to finish.
                if let Ok(p) = ev.permits.clone().acquire_owned().await {
                    drop(p);
                }
                continue;
            }
            let now = now_ms();
            let claimed = match store
                .claim_events(&ev.worker, now, now + LEASE_MS, free as i64)
                .await
            {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "async events: claiming failed");
                    tokio::time::sleep(Duration::from_millis(POLL_MS as u64)).await;
                    continue;
                }
            };
            let full = claimed.len() == free;
            for e in claimed {
                let Ok(permit) = ev.permits.clone().acquire_owned().await else {
                    return;
                };
                let p = self.clone();
                tokio::spawn(async move {
                    p.run_event(e).await;
                    drop(permit);
                });
            }
            if full {
                continue;
            }
            let wait_ms = match store.next_event_due().await {
                Ok(Some(t)) => (t - now_ms()).clamp(5, POLL_MS),
                _ => POLL_MS,
            };
            tokio::select! {
                _ = ev.notify.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(wait_ms as u64)) => {}
            }
        }
    }

    async fn run_event(&self, e: QueuedEvent) {
        let ev = self.events();
        let store = &self.inner.store;
        let q = config_qualifier(&e.qualifier);
        let row = match with_retries("reading EventInvokeConfig", || {
            store.get_event_invoke_config(&e.function, &q)
        })
        .await
        {
            Ok(r) => r,
            Err(_) => return self.requeue(&e, e.attempts, None).await,
        };
        let eff = Effective::from_row(row.as_ref());
        let last = e.last_error_type.as_ref().map(|t| LastError {
            error_type: t.clone(),
            body: e.last_error.clone().unwrap_or_default(),
            version: e.last_version.clone().unwrap_or_else(|| "$LATEST".into()),
        });
        if now_ms() - e.enqueued_ms > eff.max_age_ms {
            return self
                .fail_event(
                    &e,
                    &eff,
                    FailureCondition::EventAgeExceeded,
                    e.attempts,
                    last.as_ref(),
                )
                .await;
        }
        let qualifier = (!e.qualifier.is_empty()).then_some(e.qualifier.as_str());
        let spec = match self.resolve(&e.function, qualifier).await {
            Ok(s) => s,
            Err(PlatformError::NotFound(m)) => {
                // The function (or its version) is gone: Lambda drops its events.
                tracing::warn!(request_id = %e.id, "async events: dropping an event: {m}");
                let _ = with_retries("dropping an event", || {
                    store.finish_event(&ev.worker, &e.id, None, None)
                })
                .await;
                return;
            }
            Err(err) => {
                tracing::warn!(request_id = %e.id, error = %err, "async events: cannot resolve the function; will retry");
                return self.requeue(&e, e.attempts, None).await;
            }
        };
        // The first run is metered under the request id, later ones (retries,
        // runs after a throttle or a crash) under a suffix, so each is a record.
        let record_id = if e.runs <= 1 {
            e.id.clone()
        } else {
            format!("{}:{}", e.id, e.runs)
        };
        let result = self
            .invoke_spec_as(spec, e.id.clone(), record_id, e.payload.clone(), None, None)
            .await;
        match result {
            Ok(r) => {
                let version = version_label(r.version);
                match r.outcome {
                    Outcome::Success(body) => {
                        self.succeed_event(&e, &eff, &version, &body).await;
                    }
                    Outcome::Error {
                        error_type, body, ..
                    } => {
                        let attempts = e.attempts + 1;
                        let last = LastError {
                            error_type,
                            body,
                            version,
                        };
                        match after_error(&eff, ev.retry_base, e.enqueued_ms, attempts, now_ms()) {
                            AfterError::RetryAt(at) => {
                                let _ = with_retries("rescheduling an event", || {
                                    store.reschedule_event(
                                        &ev.worker,
                                        &e.id,
                                        attempts,
                                        at,
                                        Some(&last),
                                    )
                                })
                                .await;
                                ev.notify.notify_one();
                            }
                            AfterError::Fail(cond) => {
                                self.fail_event(&e, &eff, cond, attempts, Some(&last)).await
                            }
                        }
                    }
                }
            }
            Err(err) => {
                // Throttled or draining: not an attempt.
                tracing::debug!(request_id = %e.id, error = %err, "async events: not run; will retry");
                self.requeue(&e, e.attempts, None).await
            }
        }
    }

    /// Puts the event back without counting an attempt, after the throttle backoff.
    async fn requeue(&self, e: &QueuedEvent, attempts: i64, last: Option<&LastError>) {
        let ev = self.events();
        let not_attempts = (e.runs - e.attempts).max(1);
        let at = now_ms() + throttle_delay_ms(not_attempts);
        let _ = with_retries("requeueing an event", || {
            self.inner
                .store
                .reschedule_event(&ev.worker, &e.id, attempts, at, last)
        })
        .await;
        ev.notify.notify_one();
    }

    /// The ARN the event was sent to: unqualified means `$LATEST`, as on Lambda.
    fn qualified_arn(&self, e: &QueuedEvent) -> String {
        let q = if e.qualifier.is_empty() {
            "$LATEST"
        } else {
            &e.qualifier
        };
        format!("{}:{q}", function_arn(self.region(), &e.function))
    }

    /// The destination function of an ARN, if it exists now.
    async fn destination(&self, arn: Option<&str>) -> Option<(String, String)> {
        let (name, q) = parse_function_arn(arn?)?;
        match self.inner.store.get_function(&name).await {
            Ok(Some(_)) => Some((name, q)),
            _ => {
                tracing::warn!(
                    destination = arn,
                    "async events: the destination function does not exist"
                );
                None
            }
        }
    }

    fn destination_event(
        &self,
        function: String,
        qualifier: String,
        record: &serde_json::Value,
    ) -> NewEvent {
        let now = now_ms();
        NewEvent {
            id: new_request_id(),
            function,
            qualifier,
            source: "destination".into(),
            payload: serde_json::to_vec(record).unwrap_or_default(),
            enqueued_ms: now,
            next_attempt_ms: now,
        }
    }

    async fn succeed_event(&self, e: &QueuedEvent, eff: &Effective, version: &str, body: &[u8]) {
        let ev = self.events();
        let Some((dest, dq)) = self.destination(eff.on_success.as_deref()).await else {
            ev.completions.push(e.id.clone());
            return;
        };
        let record = destination_record(
            &e.id,
            &self.qualified_arn(e),
            "Success",
            e.attempts + 1,
            now_ms(),
            &e.payload,
            Some((version, None, body)),
        );
        let fwd = self.destination_event(dest, dq, &record);
        let _ = with_retries("finishing an event", || {
            self.inner
                .store
                .finish_event(&ev.worker, &e.id, None, Some(&fwd))
        })
        .await;
        ev.notify.notify_one();
    }

    async fn fail_event(
        &self,
        e: &QueuedEvent,
        eff: &Effective,
        cond: FailureCondition,
        attempts: i64,
        last: Option<&LastError>,
    ) {
        let ev = self.events();
        let now = now_ms();
        let record = destination_record(
            &e.id,
            &self.qualified_arn(e),
            cond.as_str(),
            attempts,
            now,
            &e.payload,
            last.map(|l| (l.version.as_str(), Some("Unhandled"), l.body.as_slice())),
        );
        let (dead, fwd) = match self.destination(eff.on_failure.as_deref()).await {
            Some((dest, dq)) => (None, Some(self.destination_event(dest, dq, &record))),
            None => (
                Some(DeadLetter {
                    function: e.function.clone(),
                    request_id: e.id.clone(),
                    failed_ms: now,
                    condition: cond.as_str().into(),
                    attempts,
                    record: record.to_string(),
                }),
                None,
            ),
        };
        tracing::info!(request_id = %e.id, function = %e.function, condition = cond.as_str(), "async events: event failed for good");
        let _ = with_retries("finishing an event", || {
            self.inner
                .store
                .finish_event(&ev.worker, &e.id, dead.as_ref(), fwd.as_ref())
        })
        .await;
        if fwd.is_some() {
            ev.notify.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eff(retries: i64, age_s: i64) -> Effective {
        Effective {
            max_retries: retries,
            max_age_ms: age_s * 1000,
            on_success: None,
            on_failure: None,
        }
    }

    #[test]
    fn backoff_doubles_from_the_base() {
        let b = Duration::from_secs(60);
        assert_eq!(backoff(b, 1), Duration::from_secs(60));
        assert_eq!(backoff(b, 2), Duration::from_secs(120));
        assert_eq!(backoff(b, 3), Duration::from_secs(240));
        assert_eq!(
            backoff(Duration::from_millis(100), 0),
            Duration::from_millis(100)
        );
        // Never overflows.
        assert!(backoff(Duration::from_secs(u64::MAX / 2), 60) >= Duration::from_secs(1));
    }

    #[test]
    fn retries_then_exhausted() {
        let base = Duration::from_millis(100);
        let e = eff(2, 21600);
        assert_eq!(after_error(&e, base, 0, 1, 1000), AfterError::RetryAt(1100));
        assert_eq!(after_error(&e, base, 0, 2, 2000), AfterError::RetryAt(2200));
        assert_eq!(
            after_error(&e, base, 0, 3, 3000),
            AfterError::Fail(FailureCondition::RetriesExhausted)
        );
        let none = eff(0, 21600);
        assert_eq!(
            after_error(&none, base, 0, 1, 1000),
            AfterError::Fail(FailureCondition::RetriesExhausted)
        );
    }

    #[test]
    fn a_retry_past_the_maximum_age_fails_at_once() {
        let e = eff(2, 60);
        // One minute base: the retry would come 61 s after enqueueing.
        assert_eq!(
            after_error(&e, Duration::from_secs(60), 0, 1, 1000),
            AfterError::Fail(FailureCondition::EventAgeExceeded)
        );
        assert_eq!(
            after_error(&e, Duration::from_secs(10), 0, 1, 1000),
            AfterError::RetryAt(11_000)
        );
    }

    #[test]
    fn throttle_backoff_is_bounded() {
        assert_eq!(throttle_delay_ms(1), 1000);
        assert_eq!(throttle_delay_ms(2), 2000);
        assert_eq!(throttle_delay_ms(0), 1000);
        assert_eq!(throttle_delay_ms(100), THROTTLE_MAX_MS);
    }

    #[test]
    fn defaults_without_a_config() {
        let e = Effective::from_row(None);
        assert_eq!(e, eff(2, 6 * 3600));
    }

    #[test]
    fn function_arns() {
        assert_eq!(
            parse_function_arn("arn:aws:lambda:us-east-1:000000000000:function:dest"),
            Some(("dest".into(), "".into()))
        );
        assert_eq!(
            parse_function_arn("arn:aws:lambda:eu-west-1:123456789012:function:d:3"),
            Some(("d".into(), "3".into()))
        );
        assert_eq!(
            parse_function_arn("arn:aws:sqs:us-east-1:000000000000:q"),
            None
        );
        assert_eq!(parse_function_arn("dest"), None);
        assert_eq!(
            parse_function_arn("arn:aws:lambda:us-east-1:0:function:a/b"),
            None
        );
        assert!(check_destination("f", "arn:aws:sqs:us-east-1:000000000000:q").is_err());
        assert!(check_destination("f", "nonsense").is_err());
        assert!(check_range("maximumRetryAttempts", 3, 0, 2).is_err());
        assert!(check_range("maximumEventAgeInSeconds", 59, 60, 21600).is_err());
        assert!(check_range("maximumEventAgeInSeconds", 60, 60, 21600).is_ok());
    }

    #[test]
    fn destination_record_has_lambda_shape() {
        let r = destination_record(
            "rid",
            "arn:aws:lambda:us-east-1:000000000000:function:f:$LATEST",
            "RetriesExhausted",
            3,
            1_573_686_021_479,
            br#"{"a":1}"#,
            Some((
                "$LATEST",
                Some("Unhandled"),
                br#"{"errorType":"ValueError"}"#,
            )),
        );
        assert_eq!(r["version"], "1.0");
        assert_eq!(r["timestamp"], "2019-11-13T23:00:21.479Z");
        assert_eq!(r["requestContext"]["requestId"], "rid");
        assert_eq!(r["requestContext"]["condition"], "RetriesExhausted");
        assert_eq!(r["requestContext"]["approximateInvokeCount"], 3);
        assert_eq!(r["requestPayload"]["a"], 1);
        assert_eq!(r["responseContext"]["statusCode"], 200);
        assert_eq!(r["responseContext"]["executedVersion"], "$LATEST");
        assert_eq!(r["responseContext"]["functionError"], "Unhandled");
        assert_eq!(r["responsePayload"]["errorType"], "ValueError");
        let bare = destination_record("r", "a", "EventAgeExceeded", 0, 0, b"not json", None);
        assert_eq!(bare["requestPayload"], "not json");
        assert!(bare.get("responseContext").is_none());
    }
}
