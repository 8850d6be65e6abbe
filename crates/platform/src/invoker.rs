//! The invoker: what an invocation runs (resolve, the weighted alias pick,
//! function-level settings), the scheduler call, and the invocation record.
//! Producers of work outside the platform (`updraft-triggers`) reach it
//! through [`updraft_core::Invoke`]; the asynchronous path is entered with
//! [`Platform::enqueue_event`].

use crate::lambda::MAX_RESERVED_CONCURRENCY;
use crate::{Platform, PlatformError};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use updraft_core::{
    function_arn, new_request_id, now_ms, qualified_arn, FunctionConfig, HttpRequest, Invocation,
    Invoke, InvokeRequest, InvokeResult, Outcome, Qualifier, TriggerKind, UrlAuth, Version,
};
use updraft_scheduler::InstanceSpec;
use updraft_store::{AliasRow, FunctionSettings, InvocationRecord};
use updraft_traces::{InvocationTrace, TraceContext};

/// What resolving costs no store query for: specs by (function, qualifier
/// as given) and alias rows by (function, alias).
#[derive(Default)]
pub(crate) struct ResolveCache {
    specs: Mutex<HashMap<(String, String), Arc<InstanceSpec>>>,
    aliases: Mutex<HashMap<(String, String), Arc<AliasRow>>>,
    /// Bumped by every invalidation, so a fill racing with a write is dropped.
    generation: AtomicU64,
}

impl ResolveCache {
    /// Drops everything cached of `name`.
    pub(crate) fn forget(&self, name: &str) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.aliases
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(n, _), _| n != name);
        self.specs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(n, _), _| n != name);
    }

    fn fill<T>(
        &self,
        map: &Mutex<HashMap<(String, String), Arc<T>>>,
        generation: u64,
        key: (String, String),
        value: &Arc<T>,
    ) {
        let mut map = map.lock().unwrap_or_else(|e| e.into_inner());
        if self.generation.load(Ordering::SeqCst) == generation {
            map.insert(key, value.clone());
        }
    }
}

/// Makes an invocation honour function-level settings: the URL's auth and
/// CORS, and the reserved concurrency (which caps `max_instances`; 0
/// throttles at once).
pub(crate) fn apply_settings(settings: &FunctionSettings, config: &mut FunctionConfig) {
    if let Some(auth) = settings.url_auth {
        config.url = auth;
    }
    // Once either writer (a deploy, the Lambda API) wrote the URL settings,
    // their CORS is the one in force, absent included.
    if settings.url_auth.is_some() || settings.url_config {
        config.cors = settings.url_cors.as_deref().and_then(|c| {
            serde_json::from_str(c)
                .inspect_err(|e| {
                    tracing::warn!(function = %settings.function, error = %e, "stored CORS settings unreadable; none applied")
                })
                .ok()
        });
    }
    if let Some(r) = settings.reserved_concurrency {
        let r = r.clamp(0, MAX_RESERVED_CONCURRENCY) as u32;
        let s = &mut config.scaling;
        // Reserved concurrency counts invocations; a wasm instance takes
        // `per_instance` of them, so the cap is taken in single slots.
        if s.per_instance > 1 && s.max_instances.saturating_mul(s.per_instance) > r {
            s.per_instance = 1;
            s.max_instances = r;
        } else {
            s.max_instances = s.max_instances.min(r);
        }
        s.min_instances = s.min_instances.min(s.max_instances);
        if r == 0 {
            s.max_queue_wait_ms = 0;
        }
    }
}

impl Platform {
    /// What an invocation of `name` (optionally qualified: `$LATEST`, a
    /// version number or an alias) runs.
    pub async fn resolve(
        &self,
        name: &str,
        qualifier: Option<&str>,
    ) -> Result<Arc<InstanceSpec>, PlatformError> {
        let qualifier = qualifier
            .filter(|q| !q.is_empty())
            .map(|q| Qualifier::parse(Some(q)))
            .transpose()?;
        self.resolve_q(name, qualifier.as_ref()).await
    }

    /// [`Platform::resolve`] of a parsed qualifier (None: unqualified).
    pub(crate) async fn resolve_q(
        &self,
        name: &str,
        qualifier: Option<&Qualifier>,
    ) -> Result<Arc<InstanceSpec>, PlatformError> {
        // An alias picks its version per invocation (weighted); the pick is
        // then resolved like a version qualifier.
        let version = match qualifier {
            None => None,
            Some(Qualifier::Alias(a)) => Some(self.pick_alias(name, a).await?),
            Some(q) => q.version(),
        };
        let cache = &self.inner.cache;
        // Keyed as the caller named it: an alias's spec reports the alias.
        let mut shown = version.map(|v| v.to_string()).unwrap_or_default();
        if let Some(Qualifier::Alias(a)) = qualifier {
            shown = format!("{a}@{shown}");
        }
        let key = (name.to_string(), shown);
        if let Some(spec) = cache
            .specs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return Ok(spec.clone());
        }
        let generation = cache.generation.load(Ordering::SeqCst);
        let store = &self.inner.store;
        let number = version.unwrap_or(Version::LATEST).number();
        let row = store
            .get_version(name, number)
            .await?
            .ok_or_else(|| match number {
                0 => self.not_found(name),
                v => self.not_found_q(name, &v.to_string()),
            })?;
        // An unqualified call runs $LATEST; it reports the published version it equals.
        let mut reported = row.version;
        if version.is_none() {
            if let Some(f) = store.get_function(name).await? {
                if f.last_published > 0 {
                    if let Some(p) = store.get_version(name, f.last_published).await? {
                        if p.revision == row.revision {
                            reported = p.version;
                        }
                    }
                }
            }
        }
        let uid = store.function_uid(name).await?;
        let code_dir = self.inner.code.unpacked(&row.code_sha256)?;
        let mut config = row.config;
        apply_settings(&store.function_settings(name).await?, &mut config);
        let spec = Arc::new(InstanceSpec {
            function: name.to_string(),
            version: reported,
            revision: row.revision,
            config,
            code_sha256: row.code_sha256,
            code_dir,
            uid,
            invoked_arn: match qualifier {
                None => function_arn(self.region(), name),
                Some(q) => qualified_arn(self.region(), name, q),
            },
        });
        cache.fill(&cache.specs, generation, key, &spec);
        Ok(spec)
    }

    /// Picks the version an alias invocation runs: the alias's version, or
    /// its additional one with the routing weight. The alias row is cached;
    /// the pick is made anew for every invocation.
    async fn pick_alias(&self, name: &str, alias: &str) -> Result<Version, PlatformError> {
        let row = self.cached_alias(name, alias).await?;
        let version = match row.extra {
            Some((v, w)) if fastrand::f64() < w => v,
            _ => row.version,
        };
        Ok(Version::from(version))
    }

    async fn cached_alias(&self, name: &str, alias: &str) -> Result<Arc<AliasRow>, PlatformError> {
        let cache = &self.inner.cache;
        let key = (name.to_string(), alias.to_string());
        if let Some(a) = cache
            .aliases
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return Ok(a.clone());
        }
        let generation = cache.generation.load(Ordering::SeqCst);
        let row = self
            .inner
            .store
            .get_alias(name, alias)
            .await?
            .ok_or_else(|| self.not_found_q(name, alias))?;
        let row = Arc::new(row);
        cache.fill(&cache.aliases, generation, key, &row);
        Ok(row)
    }

    /// Who may call the function's URL now (the last writer wins).
    pub async fn effective_url_auth(
        &self,
        name: &str,
        latest: &FunctionConfig,
    ) -> Result<UrlAuth, PlatformError> {
        let s = self.inner.store.function_settings(name).await?;
        Ok(s.url_auth.unwrap_or(latest.url))
    }

    /// Runs a function once and records the invocation.
    pub async fn invoke(
        &self,
        name: &str,
        qualifier: Option<&str>,
        payload: Vec<u8>,
        client_context: Option<String>,
    ) -> Result<InvokeResult, PlatformError> {
        let spec = self.resolve(name, qualifier).await?;
        self.invoke_spec(
            spec,
            TriggerKind::Invoke,
            new_request_id(),
            payload,
            client_context,
            None,
        )
        .await
    }

    /// Runs a resolved function once with a given request id, continuing
    /// the caller's trace (`parent`) when it came with one.
    pub async fn invoke_spec(
        &self,
        spec: Arc<InstanceSpec>,
        trigger: TriggerKind,
        request_id: String,
        payload: Vec<u8>,
        client_context: Option<String>,
        parent: Option<TraceContext>,
    ) -> Result<InvokeResult, PlatformError> {
        let record_id = request_id.clone();
        let run = Run {
            trigger,
            request_id,
            record_id,
            client_context,
            trace: InvocationTrace::child_of(parent.as_ref()),
            accepted_ms: None,
            http: None,
        };
        self.run(spec, run, payload).await
    }

    /// Runs a resolved function once on an event the gateway built from an
    /// HTTP request, as the span `trace` (whose headers the event carries).
    pub async fn invoke_event(
        &self,
        spec: Arc<InstanceSpec>,
        request_id: String,
        payload: Vec<u8>,
        trace: InvocationTrace,
    ) -> Result<InvokeResult, PlatformError> {
        let run = Run::gateway(request_id, trace, None);
        self.run(spec, run, payload).await
    }

    /// Runs a resolved function on an HTTP request (the gateway's path into
    /// runtimes that take HTTP itself: wasm); `body` is the request body.
    pub async fn invoke_http(
        &self,
        spec: Arc<InstanceSpec>,
        request_id: String,
        http: HttpRequest,
        body: Vec<u8>,
        trace: InvocationTrace,
    ) -> Result<InvokeResult, PlatformError> {
        let run = Run::gateway(request_id, trace, Some(http));
        self.run(spec, run, body).await
    }

    /// Runs once, metered under `record_id` (retries of an asynchronous
    /// event share its request id, yet each is an invocation).
    async fn run(
        &self,
        spec: Arc<InstanceSpec>,
        run: Run,
        payload: Vec<u8>,
    ) -> Result<InvokeResult, PlatformError> {
        let Run {
            trigger,
            request_id,
            record_id,
            client_context,
            trace,
            accepted_ms,
            http,
        } = run;
        let started = std::time::SystemTime::now();
        let inv = Invocation {
            request_id,
            payload,
            client_context,
            invoked_arn: spec.invoked_arn.clone(),
            trace_id: Some(trace.xray()),
            http,
        };
        // The invocation and its record run in a task of their own: a caller
        // that goes away (a closed connection) must not cancel them half-way,
        // which would lose the instance, the scheduler's count of it and the
        // metering.
        let platform = self.clone();
        let run = tokio::spawn(async move {
            let outcome = platform.inner.scheduler.invoke(spec.clone(), inv).await;
            match &outcome {
                Ok(result) => {
                    let span = (&trace, started, accepted_ms);
                    platform.record_span(&spec, trigger, span, result);
                    platform.record(&spec, trigger, record_id, result)
                }
                Err(updraft_scheduler::SchedulerError::Throttled { .. }) => {
                    platform.record_throttle(&spec, trigger, record_id)
                }
                Err(_) => {}
            }
            outcome
        });
        let outcome = run
            .await
            .map_err(|e| PlatformError::internal("invocation task", e))?;
        outcome.map_err(PlatformError::from)
    }

    /// Accepts an asynchronous invocation (Lambda's `Event` type): stored
    /// durably, with the caller's trace context, before this returns the
    /// request id; see `updraft-triggers`.
    pub async fn enqueue_event(
        &self,
        name: &str,
        qualifier: Option<&str>,
        payload: Vec<u8>,
        trace: Option<&TraceContext>,
    ) -> Result<String, PlatformError> {
        let trace = trace.and_then(TraceContext::traceparent);
        Ok(self
            .inner
            .events
            .enqueue(self, "invoke", name, qualifier, payload, trace)
            .await?)
    }

    fn record_throttle(&self, spec: &InstanceSpec, trigger: TriggerKind, record_id: String) {
        self.count_throttle(spec, trigger);
        self.inner.records.push(InvocationRecord {
            trigger: trigger.as_str().into(),
            request_id: record_id,
            function: spec.function.clone(),
            version: spec.version,
            start_ms: now_ms(),
            duration_us: 0,
            billed_ms: 0,
            memory_mb: spec.config.memory_mb as i64,
            max_memory_mb: 0,
            init_us: None,
            cold: false,
            outcome: "throttled".into(),
            error_type: Some("TooManyRequestsException".into()),
        });
    }

    fn record(
        &self,
        spec: &InstanceSpec,
        trigger: TriggerKind,
        record_id: String,
        r: &InvokeResult,
    ) {
        self.count_invocation(&spec.function, trigger, r);
        let (outcome, error_type) = match &r.outcome {
            Outcome::Success(_) => ("success".to_string(), None),
            Outcome::Error {
                kind, error_type, ..
            } => (kind.as_str().to_string(), Some(error_type.clone())),
        };
        self.inner.records.push(InvocationRecord {
            trigger: trigger.as_str().into(),
            request_id: record_id,
            function: spec.function.clone(),
            version: r.version,
            start_ms: r.stats.start_ms,
            duration_us: r.stats.duration_us as i64,
            billed_ms: if r.stats.duration_us == 0 {
                0
            } else {
                r.stats.billed_ms() as i64
            },
            memory_mb: r.stats.memory_mb as i64,
            max_memory_mb: r.stats.max_memory_mb as i64,
            init_us: r.stats.init_us.map(|v| v as i64),
            cold: r.stats.init_us.is_some(),
            outcome,
            error_type,
        });
    }

    /// The invocation's span, when traces are exported (nothing is made otherwise).
    fn record_span(
        &self,
        spec: &InstanceSpec,
        trigger: TriggerKind,
        (trace, started, accepted_ms): (&InvocationTrace, std::time::SystemTime, Option<i64>),
        r: &InvokeResult,
    ) {
        let tracer = &self.inner.config.tracer;
        if !tracer.is_on() {
            return;
        }
        let at_ms =
            |ms: i64| std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
        tracer.record(&updraft_traces::InvocationSpan {
            trace,
            function: &spec.function,
            version: r.version,
            region: self.region(),
            request_id: &r.request_id,
            trigger,
            accepted: accepted_ms.map(at_ms),
            started,
            ended: std::time::SystemTime::now(),
            run_start: at_ms(r.stats.start_ms),
            run: std::time::Duration::from_micros(r.stats.duration_us),
            init: r.stats.init_us.map(std::time::Duration::from_micros),
            error: r.outcome.error_type(),
        });
    }

    /// Instances that exist for a function now.
    pub fn live_instances(&self, name: &str) -> u32 {
        self.inner.scheduler.live_instances(name)
    }
}

/// One run's identity and origin.
struct Run {
    trigger: TriggerKind,
    request_id: String,
    /// The id the run is metered under (see [`InvokeRequest::record_id`]).
    record_id: String,
    client_context: Option<String>,
    /// The invocation's span: its id is handed to the function before the span is made.
    trace: InvocationTrace,
    /// When the work was accepted (async events, messages), for the queue wait.
    accepted_ms: Option<i64>,
    http: Option<HttpRequest>,
}

impl Run {
    /// A run the gateway asked for: metered under its request id.
    fn gateway(request_id: String, trace: InvocationTrace, http: Option<HttpRequest>) -> Run {
        Run {
            trigger: TriggerKind::Http,
            record_id: request_id.clone(),
            request_id,
            client_context: None,
            trace,
            accepted_ms: None,
            http,
        }
    }
}

/// How the asynchronous worker (and the triggers after it) runs functions.
impl Invoke for Platform {
    async fn check(
        &self,
        function: &str,
        qualifier: Option<&Qualifier>,
    ) -> Result<u32, updraft_core::Error> {
        let spec = self.resolve_q(function, qualifier).await?;
        let s = &spec.config.scaling;
        Ok(s.max_instances.saturating_mul(s.per_instance.max(1)))
    }

    async fn invoke(&self, req: InvokeRequest) -> Result<InvokeResult, updraft_core::Error> {
        let spec = self
            .resolve_q(&req.function, req.qualifier.as_ref())
            .await?;
        let run = Run {
            trigger: req.trigger,
            request_id: req.request_id,
            record_id: req.record_id,
            client_context: req.client_context,
            trace: InvocationTrace::child_of(req.trace.as_deref().and_then(carried).as_ref()),
            accepted_ms: req.accepted_ms,
            http: None,
        };
        let r = self.run(spec, run, req.payload).await?;
        Ok(r)
    }
}

/// The trace context a stored event or message carries: `traceparent`, or X-Ray's form.
fn carried(value: &str) -> Option<TraceContext> {
    let parsed = if value.starts_with("Root=") || value.contains(";Root=") {
        TraceContext::from_xray(value)
    } else {
        TraceContext::from_traceparent(value, None)
    };
    parsed
        .inspect_err(|e| tracing::debug!(error = %e, "stored trace context ignored"))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use updraft_core::Scaling;

    #[test]
    fn reserved_concurrency_caps_and_zero_throttles() {
        let mut c = FunctionConfig {
            runtime: "python3".into(),
            handler: "a.b".into(),
            memory_mb: 128,
            ephemeral_storage_mb: updraft_core::DEFAULT_EPHEMERAL_MB,
            timeout_ms: 1000,
            env: Default::default(),
            url: UrlAuth::Private,
            cors: None,
            scaling: Scaling {
                min_instances: 3,
                ..Scaling::default()
            },
            triggers: vec![],
            description: String::new(),
            permissions: Vec::new(),
            logging: Default::default(),
            snapshot: false,
        };
        let mut s = FunctionSettings {
            reserved_concurrency: Some(2),
            url_auth: Some(UrlAuth::Public),
            ..Default::default()
        };
        c.cors = Some(updraft_core::Cors::default());
        apply_settings(&FunctionSettings::default(), &mut c);
        assert!(
            c.cors.is_some(),
            "settings never written: the config's CORS holds"
        );
        apply_settings(&s, &mut c);
        assert_eq!(c.cors, None, "settings written without CORS: none");
        let with_cors = FunctionSettings {
            url_cors: Some(r#"{"MaxAge":7}"#.into()),
            ..s.clone()
        };
        apply_settings(&with_cors, &mut c);
        assert_eq!(c.cors.as_ref().and_then(|c| c.max_age), Some(7));
        apply_settings(&s, &mut c);
        assert_eq!(c.scaling.max_instances, 2);
        assert_eq!(c.scaling.min_instances, 2);
        assert_eq!(c.url, UrlAuth::Public);
        s.reserved_concurrency = Some(0);
        apply_settings(&s, &mut c);
        assert_eq!(c.scaling.max_instances, 0);
        assert_eq!(c.scaling.max_queue_wait_ms, 0);
        // wasm: the cap counts invocations, not instances of 16.
        let wasm = FunctionConfig {
            runtime: "wasm".into(),
            scaling: Scaling {
                max_instances: 10,
                per_instance: 16,
                ..Scaling::default()
            },
            ..c.clone()
        };
        for (reserved, cap) in [(50, 50), (500, 160)] {
            let mut w = wasm.clone();
            s.reserved_concurrency = Some(reserved);
            apply_settings(&s, &mut w);
            assert_eq!(w.scaling.max_instances * w.scaling.per_instance, cap);
        }
    }
}
