//! The asynchronous event worker: one per server.
//!
//! [`AsyncEvents::enqueue`] writes the event to the store's queue in a
//! committed transaction before it returns, so an accepted event survives a
//! crash. The worker claims due events with a lease and runs each through
//! the [`Invoke`]r, so the function's scaling limits apply; what follows a
//! run is [`crate::policy`]'s. Every run of an event uses the event's
//! request id (as Lambda's retries do); each run is metered as its own
//! invocation record.
//!
//! At start-up the worker releases the events a killed run of this server
//! left claimed (the worker id is stable per host and data directory); a
//! claimed event whose lease ran out (another server died) is due again.

use crate::policy::{
    after_error, destination_record, throttle_delay_ms, AfterError, Effective, FailureCondition,
    Response,
};
use crate::TriggersError;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, Semaphore};
use updraft_core::{
    limits, new_request_id, now_ms, qualified_arn, version_label, Error, FunctionRef, Invoke,
    InvokeRequest, Outcome, Qualifier, TriggerKind,
};
use updraft_store::{
    with_retries, BatchWriter, DeadLetter, LastError, NewEvent, QueuedEvent, Store, StoreError,
};

/// Bytes of event completions that may wait for the store.
const COMPLETION_QUEUE_BYTES: usize = 4 << 20;
/// How long a claim holds without renewal, and how often it is renewed.
const LEASE_MS: i64 = 60_000;
const RENEW_EVERY: Duration = Duration::from_secs(20);
/// The worker looks at the queue at least this often.
const POLL_MS: i64 = 1000;
/// Events run at once by one server, over all functions.
const CONCURRENCY: usize = 64;

/// The asynchronous path: accepting events and the worker that runs them.
/// Cheap to clone.
#[derive(Clone)]
pub struct AsyncEvents {
    shared: Arc<Shared>,
}

struct Shared {
    store: Store,
    region: String,
    worker: String,
    retry_base: Duration,
    notify: Notify,
    draining: AtomicBool,
    permits: Arc<Semaphore>,
    completions: BatchWriter<String>,
}

/// Logs a store call that failed after its retries; the event stays claimed
/// and runs again once its lease lapses (at least once, never lost).
fn logged<T>(what: &str, r: Result<T, StoreError>) {
    if let Err(e) = r {
        tracing::error!(error = %e, "async events: {what} failed");
    }
}

impl AsyncEvents {
    /// `worker` must be stable across restarts of the same server (host and
    /// data directory) so that it can take back what it held when it died.
    pub fn new(store: Store, region: &str, worker: String, retry_base: Duration) -> AsyncEvents {
        let (s, w) = (store.clone(), worker.clone());
        let completions = BatchWriter::spawn(
            "event completions",
            COMPLETION_QUEUE_BYTES,
            move |ids: Vec<String>| {
                let (store, w) = (s.clone(), w.clone());
                async move { store.complete_events(&w, &ids).await }
            },
        );
        AsyncEvents {
            shared: Arc::new(Shared {
                store,
                region: region.to_string(),
                worker,
                retry_base,
                notify: Notify::new(),
                draining: AtomicBool::new(false),
                permits: Arc::new(Semaphore::new(CONCURRENCY)),
                completions,
            }),
        }
    }

    /// Accepts an asynchronous invocation of `function` (optionally
    /// qualified) from `source` (`invoke`, …): checks
    /// the payload and that the function exists, writes the event durably,
    /// wakes the worker and returns the request id. The 202 a caller sends
    /// after this means the event survives a crash.
    pub async fn enqueue(
        &self,
        invoker: &impl Invoke,
        source: &str,
        function: &str,
        qualifier: Option<&str>,
        payload: Vec<u8>,
        trace: Option<String>,
    ) -> Result<String, TriggersError> {
        if payload.len() > limits::ASYNC_PAYLOAD_BYTES {
            return Err(TriggersError::TooLarge(format!(
                "Request must be smaller than {} bytes for the Event invocation type (got {} bytes)",
                limits::ASYNC_PAYLOAD_BYTES,
                payload.len()
            )));
        }
        let qualifier = qualifier.filter(|q| !q.is_empty());
        let parsed = qualifier
            .map(|q| Qualifier::parse(Some(q)))
            .transpose()
            .map_err(Error::from)?;
        // The function (and the version or alias) must exist now.
        invoker.check(function, parsed.as_ref()).await?;
        let id = new_request_id();
        let now = now_ms();
        self.shared
            .store
            .enqueue_event(&NewEvent {
                id: id.clone(),
                function: function.to_string(),
                qualifier: qualifier.unwrap_or("").to_string(),
                source: source.to_string(),
                payload,
                enqueued_ms: now,
                next_attempt_ms: now,
                trace,
            })
            .await?;
        self.shared.notify.notify_one();
        Ok(id)
    }

    /// Releases what a killed run of this server held, then starts the
    /// worker and its lease renewal.
    pub async fn start<I: Invoke + Clone>(&self, invoker: I) -> Result<(), TriggersError> {
        let sh = &self.shared;
        let released = sh.store.release_claimed_events(&sh.worker).await?;
        if released > 0 {
            tracing::info!(
                released,
                "async events: released events left running by the previous run"
            );
        }
        let me = self.clone();
        tokio::spawn(async move { me.run_loop(invoker).await });
        let weak = Arc::downgrade(&self.shared);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(RENEW_EVERY).await;
                let Some(sh) = weak.upgrade() else { return };
                if let Err(e) = sh
                    .store
                    .renew_event_leases(&sh.worker, now_ms() + LEASE_MS)
                    .await
                {
                    tracing::warn!(error = %e, "async events: renewing leases failed");
                }
            }
        });
        Ok(())
    }

    /// Wakes the worker: events were written to the queue by another path
    /// (a schedule's tick, a published event).
    pub fn wake(&self) {
        self.shared.notify.notify_one();
    }

    /// Stops claiming events; those running finish (or go back to the queue
    /// when the invoker refuses them while draining).
    pub fn stop(&self) {
        self.shared.draining.store(true, Ordering::SeqCst);
        self.shared.notify.notify_one();
    }

    /// Writes the completions still buffered.
    pub async fn flush(&self) {
        self.shared.completions.flush().await;
    }

    async fn run_loop<I: Invoke + Clone>(self, invoker: I) {
        let sh = &self.shared;
        loop {
            if sh.draining.load(Ordering::SeqCst) {
                return;
            }
            let free = sh.permits.available_permits();
            if free == 0 {
                // Wait for a running event to finish.
                if let Ok(p) = sh.permits.clone().acquire_owned().await {
                    drop(p);
                }
                continue;
            }
            let now = now_ms();
            let claimed = match sh
                .store
                .claim_events(&sh.worker, now, now + LEASE_MS, free as i64)
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
                let Ok(permit) = sh.permits.clone().acquire_owned().await else {
                    return;
                };
                let (me, invoker) = (self.clone(), invoker.clone());
                tokio::spawn(async move {
                    me.run_event(&invoker, e).await;
                    drop(permit);
                });
            }
            if full {
                continue;
            }
            let wait_ms = match sh.store.next_event_due().await {
                Ok(Some(t)) => (t - now_ms()).clamp(5, POLL_MS),
                _ => POLL_MS,
            };
            tokio::select! {
                _ = sh.notify.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(wait_ms as u64)) => {}
            }
        }
    }

    /// The qualifier an event was sent with (`""`: unqualified).
    fn event_qualifier(e: &QueuedEvent) -> Qualifier {
        Qualifier::parse(Some(&e.qualifier)).unwrap_or(Qualifier::Latest)
    }

    async fn run_event(&self, invoker: &impl Invoke, e: QueuedEvent) {
        let sh = &self.shared;
        let store = &sh.store;
        let q = Self::event_qualifier(&e).to_string();
        let row = match with_retries(|| store.get_event_invoke_config(&e.function, &q)).await {
            Ok(r) => r,
            Err(err) => {
                logged::<()>("reading EventInvokeConfig", Err(err));
                return self.requeue(&e).await;
            }
        };
        let eff = Effective::from_row(row.as_ref());
        let last = e.last_error_type.as_ref().map(|t| LastError {
            error_type: t.clone(),
            body: e.last_error.clone().unwrap_or_default(),
            version: e.last_version.clone().unwrap_or_else(|| version_label(0)),
        });
        if now_ms() - e.enqueued_ms > eff.max_age_ms {
            let cond = FailureCondition::EventAgeExceeded;
            return self
                .fail_event(&e, &eff, cond, e.attempts, last.as_ref())
                .await;
        }
        // The first run is metered under the request id, later ones (retries,
        // runs after a throttle or a crash) under a suffix, so each is a record.
        let record_id = if e.runs <= 1 {
            e.id.clone()
        } else {
            format!("{}:{}", e.id, e.runs)
        };
        let req = InvokeRequest {
            function: e.function.clone(),
            qualifier: (!e.qualifier.is_empty()).then(|| Self::event_qualifier(&e)),
            request_id: e.id.clone(),
            record_id,
            payload: e.payload.clone(),
            client_context: None,
            trigger: trigger_of(&e.source),
            trace: e.trace.clone(),
            accepted_ms: Some(e.enqueued_ms),
        };
        let r = match invoker.invoke(req).await {
            Ok(r) => r,
            Err(Error::NotFound(m)) => {
                // The function (or its version) is gone: Lambda drops its events.
                tracing::warn!(request_id = %e.id, "async events: dropping an event: {m}");
                let r = with_retries(|| store.finish_event(&sh.worker, &e.id, None, None)).await;
                return logged("dropping an event", r);
            }
            Err(err) => {
                // Throttled or draining: not an attempt.
                tracing::debug!(request_id = %e.id, error = %err, "async events: not run; will retry");
                return self.requeue(&e).await;
            }
        };
        let version = version_label(r.version);
        match r.outcome {
            Outcome::Success(body) => self.succeed_event(&e, &eff, &version, &body).await,
            Outcome::Error {
                error_type, body, ..
            } => {
                let attempts = e.attempts + 1;
                let last = LastError {
                    error_type,
                    body,
                    version,
                };
                match after_error(&eff, sh.retry_base, e.enqueued_ms, attempts, now_ms()) {
                    AfterError::RetryAt(at) => {
                        let r = with_retries(|| {
                            store.reschedule_event(&sh.worker, &e.id, attempts, at, Some(&last))
                        })
                        .await;
                        logged("rescheduling an event", r);
                        sh.notify.notify_one();
                    }
                    AfterError::Fail(cond) => {
                        self.fail_event(&e, &eff, cond, attempts, Some(&last)).await
                    }
                }
            }
        }
    }

    /// Puts the event back without counting an attempt, after the throttle backoff.
    async fn requeue(&self, e: &QueuedEvent) {
        let sh = &self.shared;
        let not_attempts = (e.runs - e.attempts).max(1);
        let at = now_ms() + throttle_delay_ms(not_attempts);
        let r = with_retries(|| {
            sh.store
                .reschedule_event(&sh.worker, &e.id, e.attempts, at, None)
        })
        .await;
        logged("requeueing an event", r);
        sh.notify.notify_one();
    }

    /// The ARN the event was sent to: unqualified means `$LATEST`, as on Lambda.
    fn qualified_arn(&self, e: &QueuedEvent) -> String {
        qualified_arn(&self.shared.region, &e.function, &Self::event_qualifier(e))
    }

    /// The destination function of an ARN, if it exists now.
    async fn destination(&self, arn: Option<&str>) -> Option<FunctionRef> {
        let dest = FunctionRef::parse_arn(arn?)?;
        match self.shared.store.get_function(&dest.name).await {
            Ok(Some(_)) => Some(dest),
            _ => {
                tracing::warn!(
                    destination = arn,
                    "async events: the destination function does not exist"
                );
                None
            }
        }
    }

    fn destination_event(dest: FunctionRef, record: &serde_json::Value) -> NewEvent {
        let now = now_ms();
        NewEvent {
            id: new_request_id(),
            qualifier: dest.qualifier_str().to_string(),
            function: dest.name,
            source: "destination".into(),
            payload: serde_json::to_vec(record).unwrap_or_default(),
            enqueued_ms: now,
            next_attempt_ms: now,
            trace: None,
        }
    }

    async fn succeed_event(&self, e: &QueuedEvent, eff: &Effective, version: &str, body: &[u8]) {
        let sh = &self.shared;
        let Some(dest) = self.destination(eff.on_success.as_deref()).await else {
            sh.completions.push(e.id.clone());
            return;
        };
        let response = Response {
            version,
            function_error: None,
            body,
        };
        let record = destination_record(
            &e.id,
            &self.qualified_arn(e),
            "Success",
            e.attempts + 1,
            now_ms(),
            &e.payload,
            Some(response),
        );
        let fwd = Self::destination_event(dest, &record);
        let r = with_retries(|| sh.store.finish_event(&sh.worker, &e.id, None, Some(&fwd))).await;
        logged("finishing an event", r);
        sh.notify.notify_one();
    }

    async fn fail_event(
        &self,
        e: &QueuedEvent,
        eff: &Effective,
        cond: FailureCondition,
        attempts: i64,
        last: Option<&LastError>,
    ) {
        let sh = &self.shared;
        let now = now_ms();
        let response = last.map(|l| Response {
            version: &l.version,
            function_error: Some("Unhandled"),
            body: &l.body,
        });
        let record = destination_record(
            &e.id,
            &self.qualified_arn(e),
            cond.as_str(),
            attempts,
            now,
            &e.payload,
            response,
        );
        let (dead, fwd) = match self.destination(eff.on_failure.as_deref()).await {
            Some(dest) => (None, Some(Self::destination_event(dest, &record))),
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
        let r = with_retries(|| {
            sh.store
                .finish_event(&sh.worker, &e.id, dead.as_ref(), fwd.as_ref())
        })
        .await;
        logged("finishing an event", r);
        if fwd.is_some() {
            sh.notify.notify_one();
        }
    }
}

/// The trigger an event's source stands for in its invocation record.
fn trigger_of(source: &str) -> TriggerKind {
    match source {
        "schedule" => TriggerKind::Schedule,
        "bus" => TriggerKind::Bus,
        "queue" => TriggerKind::Queue,
        // `invoke` (Lambda's Event type) and `destination`.
        _ => TriggerKind::Event,
    }
}
