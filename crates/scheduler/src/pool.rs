//! Pools of instances, one per function, and the scheduler that owns them.

use crate::keepalive::{History, Policy};
use crate::{Instance, InstanceSpec, Runtime};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use updraft_core::config::KeepAlive;
use updraft_core::{
    invoke::elapsed_us, now_ms, ErrorKind, Invocation, InvokeResult, LogSink, Outcome, RuntimeKind,
    Stats,
};

/// Why an invocation could not be scheduled at all.
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    /// Every instance was busy for longer than `max_queue_wait`.
    #[error("rate exceeded: all {max} instances of {function} stayed busy for {waited_ms} ms")]
    Throttled {
        function: String,
        max: u32,
        waited_ms: u64,
    },
    /// The server is shutting down and takes no new work.
    #[error("the server is shutting down")]
    Draining,
    /// No runtime of this kind is available in this server.
    #[error("runtime {0} is not available on this server")]
    NoRuntime(RuntimeKind),
}

struct Idle {
    instance: Box<dyn Instance>,
    /// From then on it must not take an invocation (see `Instance::retire_at`).
    stale_at: Option<Instant>,
    revision: String,
    since: Instant,
    idle_timeout: Duration,
}

#[derive(Default)]
struct PoolState {
    /// Permits configured on the semaphore (the function's `max_instances`).
    capacity: u32,
    /// Instances that exist: idle, busy or starting.
    live: u32,
    /// Idle instances, most recently used last.
    idle: Vec<Idle>,
    /// The spec `min_instances` are kept warm for.
    warm: Option<Arc<InstanceSpec>>,
    /// Permits that were in use when the capacity went down: each is
    /// forgotten when it comes back, so a lowered cap (reserved concurrency
    /// 0 included) holds at once, not once the running invocations end.
    owed: u32,
    /// Idle times and the pending pre-warm (keepalive.rs).
    history: History,
    /// The spec a pending pre-warm starts.
    prewarm: Option<Arc<InstanceSpec>>,
}

struct Pool {
    function: String,
    permits: Arc<Semaphore>,
    state: Mutex<PoolState>,
}

impl Pool {
    fn lock(&self) -> std::sync::MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes the semaphore hold `max` permits in all.
    fn resize(&self, max: u32) {
        let mut st = self.lock();
        if st.capacity < max {
            let mut grow = max - st.capacity;
            let paid = grow.min(st.owed);
            st.owed -= paid;
            grow -= paid;
            self.permits.add_permits(grow as usize);
        } else if st.capacity > max {
            let shrink = st.capacity - max;
            // Permits in use are forgotten as they come back (see `keep`).
            let gone = self.permits.forget_permits(shrink as usize) as u32;
            st.owed += shrink - gone;
        }
        st.capacity = max;
    }

    /// A permit the current capacity allows, or None when it is owed (it
    /// came back after the cap went down): then it is forgotten.
    fn keep(&self, permit: OwnedSemaphorePermit) -> Option<OwnedSemaphorePermit> {
        let mut st = self.lock();
        if st.owed > 0 {
            st.owed -= 1;
            permit.forget();
            None
        } else {
            Some(permit)
        }
    }

    fn take_idle(&self, revision: &str) -> Option<Box<dyn Instance>> {
        let mut st = self.lock();
        let now = Instant::now();
        let pos = st.idle.iter().rposition(|i| {
            i.revision == revision && i.stale_at.is_none_or(|t| now < t) && !i.instance.gone()
        })?;
        Some(st.idle.remove(pos).instance)
    }

    /// Claims room for one more instance; returns an idle instance of another
    /// revision that must be stopped to make that room.
    fn reserve(&self) -> Option<Box<dyn Instance>> {
        let mut st = self.lock();
        if st.live >= st.capacity && !st.idle.is_empty() {
            return Some(st.idle.remove(0).instance);
        }
        st.live += 1;
        None
    }

    fn release(&self) {
        let mut st = self.lock();
        st.live = st.live.saturating_sub(1);
    }

    /// Makes `instance` idle, as of `now`, for the function's `idle_timeout`.
    #[cfg(test)]
    fn put_idle(&self, instance: Box<dyn Instance>, spec: &InstanceSpec, now: Instant) {
        let timeout = Duration::from_millis(spec.config.scaling.idle_timeout_ms);
        self.put_idle_for(instance, spec, now, timeout);
    }

    /// Makes `instance` idle, as of `now`, for `idle_timeout`.
    fn put_idle_for(
        &self,
        instance: Box<dyn Instance>,
        spec: &InstanceSpec,
        now: Instant,
        idle_timeout: Duration,
    ) {
        let mut st = self.lock();
        // Unfit once an invocation begun then could outlive the instance.
        let stale_at = instance.retire_at().map(|t| {
            t.checked_sub(Duration::from_millis(spec.config.timeout_ms))
                .unwrap_or(now)
        });
        st.idle.push(Idle {
            instance,
            stale_at,
            revision: spec.revision.clone(),
            since: now,
            idle_timeout,
        });
    }

    /// An invocation of `spec` arrives at `now` (it holds a permit).
    fn arrive(&self, spec: &InstanceSpec, now: Instant) {
        self.lock().history.arrive(now, policy(spec));
    }

    /// An invocation of `spec` ended: how long its instance stays idle (zero
    /// when a pre-warm takes its place later).
    fn finish(&self, spec: &Arc<InstanceSpec>, now: Instant) -> Duration {
        let fallback = Duration::from_millis(spec.config.scaling.idle_timeout_ms);
        let mut st = self.lock();
        let idle = st.history.finish(now, policy(spec), fallback);
        if idle.is_zero() {
            st.prewarm = Some(spec.clone());
        }
        idle
    }

    /// Forgets a pending pre-warm.
    fn cancel_prewarm(&self) {
        let mut st = self.lock();
        st.history.cancel();
        st.prewarm = None;
    }

    /// Stops every idle instance and stops keeping any warm; busy ones finish.
    async fn stop_idle(&self) {
        self.cancel_prewarm();
        let idle: Vec<Idle> = {
            let mut st = self.lock();
            st.warm = None;
            let idle: Vec<Idle> = st.idle.drain(..).collect();
            st.live -= idle.len() as u32;
            idle
        };
        for i in idle {
            i.instance.stop().await;
        }
    }

    /// Removes idle instances past their idle timeout, sparing `min_instances`
    /// of the warm revision.
    fn expired(&self, now: Instant) -> Vec<Box<dyn Instance>> {
        let mut st = self.lock();
        let (warm_rev, mut spare) = match &st.warm {
            Some(w) => (w.revision.clone(), w.config.scaling.min_instances),
            None => (String::new(), 0),
        };
        let mut keep = Vec::new();
        let mut out = Vec::new();
        // Newest first, so the most recently used instances are the ones spared.
        while let Some(idle) = st.idle.pop() {
            let stale = idle.stale_at.is_some_and(|t| now >= t) || idle.instance.gone();
            let protected = !stale && spare > 0 && idle.revision == warm_rev;
            if protected {
                spare -= 1;
            }
            if stale || (!protected && now.duration_since(idle.since) >= idle.idle_timeout) {
                out.push(idle.instance);
            } else {
                keep.push(idle);
            }
        }
        keep.reverse();
        st.idle = keep;
        st.live -= out.len() as u32;
        out
    }
}

/// The keep-alive policy of a function's instances.
fn policy(spec: &InstanceSpec) -> Policy {
    match spec.config.scaling.keep_alive {
        KeepAlive::Fixed => Policy::Fixed,
        KeepAlive::Adaptive => Policy::Learned,
    }
}

struct Inner {
    runtimes: HashMap<RuntimeKind, Arc<dyn Runtime>>,
    logs: Arc<dyn LogSink>,
    pools: Mutex<HashMap<String, Arc<Pool>>>,
    draining: AtomicBool,
}

/// Schedules invocations onto instances. Cheap to clone.
#[derive(Clone)]
pub struct Scheduler {
    inner: Arc<Inner>,
}

impl Scheduler {
    /// Creates the scheduler and starts its reaper, which stops idle instances
    /// and keeps `min_instances` warm.
    pub fn new(
        runtimes: HashMap<RuntimeKind, Arc<dyn Runtime>>,
        logs: Arc<dyn LogSink>,
    ) -> Scheduler {
        let inner = Arc::new(Inner {
            runtimes,
            logs,
            pools: Mutex::new(HashMap::new()),
            draining: AtomicBool::new(false),
        });
        let weak = Arc::downgrade(&inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                Scheduler { inner }.reap(Instant::now()).await;
            }
        });
        Scheduler { inner }
    }

    fn pool(&self, function: &str) -> Arc<Pool> {
        let mut pools = self.inner.pools.lock().unwrap_or_else(|e| e.into_inner());
        pools
            .entry(function.to_string())
            .or_insert_with(|| {
                Arc::new(Pool {
                    function: function.to_string(),
                    permits: Arc::new(Semaphore::new(0)),
                    state: Mutex::new(PoolState::default()),
                })
            })
            .clone()
    }

    fn runtime(&self, spec: &InstanceSpec) -> Result<Arc<dyn Runtime>, SchedulerError> {
        let kind = spec.config.kind();
        self.inner
            .runtimes
            .get(&kind)
            .cloned()
            .ok_or(SchedulerError::NoRuntime(kind))
    }

    /// Readies a version for its first invocation (deploy time).
    pub async fn prepare(&self, spec: &InstanceSpec) -> Result<(), String> {
        let runtime = self.runtime(spec).map_err(|e| e.to_string())?;
        runtime.prepare(spec).await
    }

    /// Declares the version a function's `min_instances` are kept warm for
    /// (or none, when the function is deleted).
    pub fn set_warm(&self, function: &str, spec: Option<Arc<InstanceSpec>>) {
        let pool = self.pool(function);
        if let Some(s) = &spec {
            pool.resize(s.concurrency());
        }
        pool.lock().warm = spec;
    }

    /// Stops every instance of a function (after delete or config change).
    pub async fn retire(&self, function: &str) {
        let pool = self
            .inner
            .pools
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(function)
            .cloned();
        if let Some(pool) = pool {
            pool.stop_idle().await;
        }
    }

    /// Instances that exist for a function now (busy, idle or starting).
    pub fn live_instances(&self, function: &str) -> u32 {
        let pools = self.inner.pools.lock().unwrap_or_else(|e| e.into_inner());
        pools.get(function).map(|p| p.lock().live).unwrap_or(0)
    }

    /// Started instances waiting for work.
    pub fn idle_instances(&self, function: &str) -> u32 {
        let pools = self.inner.pools.lock().unwrap_or_else(|e| e.into_inner());
        pools
            .get(function)
            .map(|p| p.lock().idle.len() as u32)
            .unwrap_or(0)
    }

    /// Runs one invocation on an instance of `spec`, starting one if none is idle.
    pub async fn invoke(
        &self,
        spec: Arc<InstanceSpec>,
        inv: Invocation,
    ) -> Result<InvokeResult, SchedulerError> {
        if self.inner.draining.load(Ordering::SeqCst) {
            return Err(SchedulerError::Draining);
        }
        let runtime = self.runtime(&spec)?;
        let scaling = &spec.config.scaling;
        let pool = self.pool(&spec.function);
        let concurrency = spec.concurrency();
        pool.resize(concurrency);
        let permit = self
            .acquire(&pool, concurrency, scaling.max_queue_wait_ms)
            .await?;
        let memory_mb = spec.config.memory_mb;
        let rid = inv.request_id.clone();
        pool.arrive(&spec, Instant::now());

        let (instance, init_us) = match pool.take_idle(&spec.revision) {
            Some(i) => (i, None),
            None => {
                if let Some(victim) = pool.reserve() {
                    victim.stop().await;
                }
                let started = Instant::now();
                match runtime.start(spec.clone(), &rid).await {
                    Ok(i) => {
                        let init = i.started_cold().then(|| elapsed_us(started.into_std()));
                        (i, init)
                    }
                    Err(failure) => {
                        pool.finish(&spec, Instant::now());
                        // A start that fails is not pre-warmed again.
                        pool.cancel_prewarm();
                        pool.release();
                        drop(permit);
                        let stats = Stats {
                            start_ms: now_ms(),
                            duration_us: 0,
                            init_us: Some(elapsed_us(started.into_std())),
                            memory_mb,
                            max_memory_mb: failure.max_memory_mb,
                        };
                        self.log_start(&spec, &rid);
                        self.log_end(&spec, &rid, &stats, &failure.outcome);
                        return Ok(InvokeResult {
                            request_id: rid,
                            version: spec.version,
                            outcome: failure.outcome,
                            stats,
                            http: None,
                        });
                    }
                }
            }
        };

        self.log_start(&spec, &rid);
        let start_ms = now_ms();
        let started = Instant::now();
        let deadline = started + Duration::from_millis(spec.config.timeout_ms);
        let reply = instance.invoke(&inv, deadline).await;
        let stats = Stats {
            start_ms,
            duration_us: elapsed_us(started.into_std()),
            init_us,
            memory_mb,
            max_memory_mb: reply.max_memory_mb,
        };
        self.log_end(&spec, &rid, &stats, &reply.outcome);

        let idle_for = pool.finish(&spec, Instant::now());
        if reply.reusable && !self.inner.draining.load(Ordering::SeqCst) {
            pool.put_idle_for(instance, &spec, Instant::now(), idle_for);
        } else {
            instance.stop().await;
            pool.release();
        }
        drop(permit);
        Ok(InvokeResult {
            request_id: rid,
            version: spec.version,
            outcome: reply.outcome,
            stats,
            http: reply.http,
        })
    }

    async fn acquire(
        &self,
        pool: &Pool,
        max: u32,
        wait_ms: u64,
    ) -> Result<OwnedSemaphorePermit, SchedulerError> {
        let throttled = || SchedulerError::Throttled {
            function: pool.function.clone(),
            max,
            waited_ms: wait_ms,
        };
        let deadline = tokio::time::Instant::now() + Duration::from_millis(wait_ms);
        loop {
            let permit = if wait_ms == 0 {
                pool.permits
                    .clone()
                    .try_acquire_owned()
                    .map_err(|_| throttled())?
            } else {
                match tokio::time::timeout_at(deadline, pool.permits.clone().acquire_owned()).await
                {
                    Ok(Ok(p)) => p,
                    _ => return Err(throttled()),
                }
            };
            if let Some(p) = pool.keep(permit) {
                return Ok(p);
            }
        }
    }

    fn log_start(&self, spec: &InstanceSpec, rid: &str) {
        let version = if spec.version == 0 {
            updraft_core::LATEST.to_string()
        } else {
            spec.version.to_string()
        };
        if spec.config.logging.is_json() {
            return json_logs::start(&*self.inner.logs, spec, rid, &version);
        }
        self.inner.logs.emit(
            &spec.function,
            rid,
            format!("START RequestId: {rid} Version: {version}"),
        );
    }

    fn log_end(&self, spec: &InstanceSpec, rid: &str, stats: &Stats, outcome: &Outcome) {
        let logs = &self.inner.logs;
        if spec.config.logging.is_json() {
            return json_logs::report(&**logs, spec, rid, stats, outcome);
        }
        logs.emit(&spec.function, rid, format!("END RequestId: {rid}"));
        let mut report = format!(
            "REPORT RequestId: {rid}\tDuration: {:.2} ms\tBilled Duration: {} ms\tMemory Size: {} MB\tMax Memory Used: {} MB",
            stats.duration_us as f64 / 1000.0,
            stats.billed_ms(),
            stats.memory_mb,
            stats.max_memory_mb,
        );
        if let Some(init) = stats.init_us {
            report.push_str(&format!("\tInit Duration: {:.2} ms", init as f64 / 1000.0));
        }
        match outcome {
            Outcome::Error {
                kind: ErrorKind::Timeout,
                ..
            } => report.push_str("\tStatus: timeout"),
            Outcome::Error {
                kind: ErrorKind::Function,
                ..
            }
            | Outcome::Success(_) => {}
            Outcome::Error { error_type, .. } => {
                report.push_str(&format!("\tStatus: error\tError Type: {error_type}"));
            }
        }
        logs.emit(&spec.function, rid, report);
    }

    /// Every function's pool, as of now.
    fn pools(&self) -> Vec<Arc<Pool>> {
        let pools = self.inner.pools.lock().unwrap_or_else(|e| e.into_inner());
        pools.values().cloned().collect()
    }

    /// Stops the idle instances expired by `now` and tops up `min_instances`.
    async fn reap(&self, now: Instant) {
        let pools = self.pools();
        for pool in pools {
            for instance in pool.expired(now) {
                instance.stop().await;
            }
            if self.inner.draining.load(Ordering::SeqCst) {
                continue;
            }
            let warm = {
                let mut st = pool.lock();
                match &st.warm {
                    Some(w) if st.live < w.config.scaling.min_instances => {
                        let idle = Duration::from_millis(w.config.scaling.idle_timeout_ms);
                        Some((w.clone(), idle))
                    }
                    // A pre-warm is due: start one unless one is there.
                    _ => match st.history.due(now) {
                        Some(keep) if st.live == 0 => st.prewarm.take().map(|s| (s, keep)),
                        _ => None,
                    },
                }
            };
            if let Some((spec, idle)) = warm {
                self.warm_one(pool, spec, idle, now);
            }
        }
    }

    /// Starts one instance in the background to keep `min_instances` warm or
    /// to pre-warm, kept idle for `idle` from `since`; it holds a permit while
    /// starting so the cap still holds.
    fn warm_one(&self, pool: Arc<Pool>, spec: Arc<InstanceSpec>, idle: Duration, since: Instant) {
        let Ok(runtime) = self.runtime(&spec) else {
            return;
        };
        let Some(permit) = pool
            .permits
            .clone()
            .try_acquire_owned()
            .ok()
            .and_then(|p| pool.keep(p))
        else {
            return;
        };
        pool.lock().live += 1;
        tokio::spawn(async move {
            match runtime.start(spec.clone(), "").await {
                Ok(instance) => pool.put_idle_for(instance, &spec, since, idle),
                Err(failure) => {
                    tracing::warn!(function = %spec.function, error = ?failure.outcome.error_type(), "could not keep an instance warm");
                    pool.release();
                }
            }
            drop(permit);
        });
    }

    /// Drains: refuses new work, waits for in-flight invocations (up to
    /// `grace`), then stops every instance.
    pub async fn shutdown(&self, grace: Duration) {
        self.inner.draining.store(true, Ordering::SeqCst);
        let pools = self.pools();
        let deadline = Instant::now() + grace;
        for pool in &pools {
            let cap = pool.lock().capacity;
            // Holding every permit means no invocation is in flight.
            let _ = tokio::time::timeout_at(deadline, pool.permits.acquire_many(cap)).await;
        }
        for pool in pools {
            pool.stop_idle().await;
        }
    }
}

mod json_logs;

#[cfg(test)]
mod tests;
