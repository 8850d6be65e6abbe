//! The pool and the scheduler with a fake runtime: idle expiry against an
//! injected `now`, reuse, the `max_instances` cap, queueing and draining.

use super::*;
use crate::{Reply, StartFailure};
use futures_util::future::BoxFuture;
use std::sync::atomic::{AtomicBool, AtomicU32};
use updraft_core::config::{KeepAlive, Scaling};
use updraft_core::FunctionConfig;

/// What the fake runtime did, shared with the test.
#[derive(Default)]
struct Counts {
    starts: AtomicU32,
    stops: AtomicU32,
    invokes: AtomicU32,
}

/// How the fake instances behave.
#[derive(Clone, Default)]
struct Behaviour {
    /// Each invocation waits for one permit here first, when set.
    gate: Option<Arc<Semaphore>>,
    /// Replies say the instance must not be reused.
    spent: bool,
    /// Starting fails.
    fail_start: bool,
    /// Instances retire this long after they start (their credentials expire).
    lifetime: Option<Duration>,
}

struct FakeRuntime {
    counts: Arc<Counts>,
    behaviour: Behaviour,
}

struct FakeInstance {
    id: u32,
    counts: Arc<Counts>,
    behaviour: Behaviour,
    retire_at: Option<Instant>,
    /// Set: the instance has ended by itself.
    gone: Arc<AtomicBool>,
}

impl Instance for FakeInstance {
    fn invoke<'a>(&'a self, inv: &'a Invocation, _deadline: Instant) -> BoxFuture<'a, Reply> {
        Box::pin(async move {
            self.counts.invokes.fetch_add(1, Ordering::SeqCst);
            if let Some(gate) = &self.behaviour.gate {
                gate.acquire().await.unwrap().forget();
            }
            let body = format!("{}:{}", self.id, String::from_utf8_lossy(&inv.payload));
            Reply {
                outcome: Outcome::Success(body.into_bytes()),
                max_memory_mb: 1,
                reusable: !self.behaviour.spent,
                http: None,
            }
        })
    }

    fn stop(&self) -> BoxFuture<'_, ()> {
        self.counts.stops.fetch_add(1, Ordering::SeqCst);
        Box::pin(async {})
    }

    fn retire_at(&self) -> Option<Instant> {
        self.retire_at
    }

    fn gone(&self) -> bool {
        self.gone.load(Ordering::SeqCst)
    }
}

impl Runtime for FakeRuntime {
    fn start<'a>(
        &'a self,
        _spec: Arc<InstanceSpec>,
        _request_id: &'a str,
    ) -> BoxFuture<'a, Result<Box<dyn Instance>, StartFailure>> {
        Box::pin(async move {
            if self.behaviour.fail_start {
                return Err(StartFailure {
                    outcome: Outcome::platform_error(
                        ErrorKind::Init,
                        "Runtime.ExitError",
                        "no start".into(),
                    ),
                    max_memory_mb: 0,
                });
            }
            let id = self.counts.starts.fetch_add(1, Ordering::SeqCst) + 1;
            Ok(Box::new(FakeInstance {
                id,
                counts: self.counts.clone(),
                behaviour: self.behaviour.clone(),
                retire_at: self.behaviour.lifetime.map(|d| Instant::now() + d),
                gone: Arc::default(),
            }) as Box<dyn Instance>)
        })
    }
}

#[derive(Default)]
struct Lines(Mutex<Vec<String>>);

impl LogSink for Lines {
    fn emit(&self, _function: &str, _request_id: &str, text: String) {
        self.0.lock().unwrap().push(text);
    }
}

fn spec(revision: &str, scaling: Scaling) -> Arc<InstanceSpec> {
    Arc::new(InstanceSpec {
        function: "f".into(),
        version: 0,
        invoked_arn: String::new(),
        revision: revision.into(),
        config: FunctionConfig {
            runtime: "python3".into(),
            handler: "app.handler".into(),
            memory_mb: 128,
            ephemeral_storage_mb: 512,
            timeout_ms: 60_000,
            env: Default::default(),
            url: Default::default(),
            cors: None,
            scaling,
            triggers: vec![],
            description: String::new(),
            permissions: Vec::new(),
            logging: Default::default(),
            snapshot: false,
        },
        code_sha256: String::new(),
        code_dir: std::path::PathBuf::new(),
        uid: 0,
    })
}

fn scaling(max_instances: u32, max_queue_wait_ms: u64) -> Scaling {
    Scaling {
        max_instances,
        max_queue_wait_ms,
        ..Scaling::default()
    }
}

fn scheduler(behaviour: Behaviour) -> (Scheduler, Arc<Counts>, Arc<Lines>) {
    let counts = Arc::new(Counts::default());
    let runtime: Arc<dyn Runtime> = Arc::new(FakeRuntime {
        counts: counts.clone(),
        behaviour,
    });
    let lines = Arc::new(Lines::default());
    let runtimes = HashMap::from([(RuntimeKind::Python3, runtime)]);
    (Scheduler::new(runtimes, lines.clone()), counts, lines)
}

fn invocation(id: &str) -> Invocation {
    Invocation {
        request_id: id.into(),
        payload: id.as_bytes().to_vec(),
        client_context: None,
        invoked_arn: String::new(),
        trace_id: None,
        http: None,
    }
}

fn body(r: &InvokeResult) -> String {
    match &r.outcome {
        Outcome::Success(b) => String::from_utf8_lossy(b).into_owned(),
        other => panic!("{other:?}"),
    }
}

// ---- the pool, against an injected clock ----

fn pool() -> (Pool, Arc<Counts>) {
    let pool = Pool {
        function: "f".into(),
        permits: Arc::new(Semaphore::new(0)),
        state: Mutex::new(PoolState::default()),
    };
    pool.resize(10);
    (pool, Arc::new(Counts::default()))
}

fn instance(id: u32, counts: &Arc<Counts>) -> Box<dyn Instance> {
    Box::new(FakeInstance {
        id,
        counts: counts.clone(),
        behaviour: Behaviour::default(),
        retire_at: None,
        gone: Arc::default(),
    })
}

fn idle_ms(ms: u64) -> Scaling {
    Scaling {
        idle_timeout_ms: ms,
        ..Scaling::default()
    }
}

/// Instances that exist and idle ones.
fn live_and_idle(pool: &Pool) -> (u32, usize) {
    let st = pool.lock();
    (st.live, st.idle.len())
}

#[test]
fn an_idle_instance_expires_at_its_idle_timeout_not_before() {
    let (pool, counts) = pool();
    let s = spec("r1", idle_ms(1_000));
    let t0 = Instant::now();
    pool.reserve();
    pool.put_idle(instance(1, &counts), &s, t0);
    assert!(pool.expired(t0 + Duration::from_millis(999)).is_empty());
    assert_eq!(live_and_idle(&pool), (1, 1));
    let gone = pool.expired(t0 + Duration::from_millis(1_000));
    assert_eq!(gone.len(), 1);
    assert_eq!(live_and_idle(&pool), (0, 0));
}

#[test]
fn each_idle_instance_expires_by_its_own_time_and_timeout() {
    let (pool, counts) = pool();
    let t0 = Instant::now();
    for (i, (offset, timeout)) in [(0, 1_000), (500, 1_000), (0, 5_000)]
        .into_iter()
        .enumerate()
    {
        pool.reserve();
        pool.put_idle(
            instance(i as u32, &counts),
            &spec("r1", idle_ms(timeout)),
            t0 + Duration::from_millis(offset),
        );
    }
    assert_eq!(pool.expired(t0 + Duration::from_millis(1_000)).len(), 1);
    assert_eq!(pool.expired(t0 + Duration::from_millis(1_499)).len(), 0);
    assert_eq!(pool.expired(t0 + Duration::from_millis(1_500)).len(), 1);
    assert_eq!(pool.lock().idle.len(), 1);
    assert_eq!(pool.expired(t0 + Duration::from_millis(5_000)).len(), 1);
    assert_eq!(pool.lock().live, 0);
}

#[test]
fn min_instances_of_the_warm_revision_are_spared_most_recent_first() {
    let (pool, counts) = pool();
    let warm = spec(
        "r1",
        Scaling {
            min_instances: 1,
            idle_timeout_ms: 1_000,
            ..Scaling::default()
        },
    );
    pool.lock().warm = Some(warm.clone());
    let t0 = Instant::now();
    for (id, revision, at) in [(1, "r1", 0), (2, "r1", 100), (3, "r0", 200)] {
        pool.reserve();
        let s = if revision == "r1" {
            warm.clone()
        } else {
            spec(revision, idle_ms(1_000))
        };
        pool.put_idle(instance(id, &counts), &s, t0 + Duration::from_millis(at));
    }
    let gone = pool.expired(t0 + Duration::from_secs(3600));
    assert_eq!(gone.len(), 2, "the oldest r1 and the r0 instance");
    let st = pool.lock();
    assert_eq!((st.live, st.idle.len()), (1, 1));
    assert_eq!(st.idle[0].since, t0 + Duration::from_millis(100));
}

#[test]
fn an_idle_instance_that_ended_by_itself_is_never_taken_and_is_reaped() {
    let (pool, counts) = pool();
    let t0 = Instant::now();
    let gone = Arc::new(AtomicBool::new(false));
    pool.reserve();
    pool.put_idle(
        Box::new(FakeInstance {
            id: 1,
            counts: counts.clone(),
            behaviour: Behaviour::default(),
            retire_at: None,
            gone: gone.clone(),
        }),
        &spec("r1", idle_ms(60_000)),
        t0,
    );
    gone.store(true, Ordering::SeqCst);
    assert!(
        pool.take_idle("r1").is_none(),
        "a dead instance was handed out"
    );
    let reaped = pool.expired(t0 + Duration::from_millis(1));
    assert_eq!(reaped.len(), 1, "well before its idle timeout");
    assert_eq!(live_and_idle(&pool), (0, 0));
}

#[test]
fn an_idle_instance_is_taken_by_revision_most_recent_first() {
    let (pool, counts) = pool();
    let t0 = Instant::now();
    for (id, revision) in [(1, "r1"), (2, "r2"), (3, "r1")] {
        pool.reserve();
        pool.put_idle(instance(id, &counts), &spec(revision, idle_ms(1_000)), t0);
    }
    assert!(pool.take_idle("r9").is_none());
    assert!(pool.take_idle("r1").is_some());
    let st = pool.lock();
    let left: Vec<&str> = st.idle.iter().map(|i| i.revision.as_str()).collect();
    assert_eq!(left, ["r1", "r2"], "the most recent r1 was taken");
}

#[test]
fn room_at_capacity_is_made_by_stopping_the_oldest_idle_instance() {
    let (pool, counts) = pool();
    pool.resize(2);
    let t0 = Instant::now();
    for (id, at) in [(1, 0), (2, 100)] {
        assert!(pool.reserve().is_none(), "room for a new instance");
        pool.put_idle(
            instance(id, &counts),
            &spec("old", idle_ms(1_000)),
            t0 + Duration::from_millis(at),
        );
    }
    assert!(pool.reserve().is_some(), "full: an idle instance must go");
    let st = pool.lock();
    assert_eq!(st.live, 2, "one out, one in");
    assert_eq!(st.idle.len(), 1);
    assert_eq!(st.idle[0].since, t0 + Duration::from_millis(100));
}

#[test]
fn resizing_sets_the_permits_to_the_new_cap() {
    let (pool, _) = pool();
    assert_eq!(pool.permits.available_permits(), 10);
    pool.resize(3);
    assert_eq!(pool.permits.available_permits(), 3);
    pool.resize(1);
    assert_eq!(pool.permits.available_permits(), 1);
    pool.resize(1);
    assert_eq!(pool.permits.available_permits(), 1);
    assert_eq!(pool.lock().capacity, 1);
}

// ---- the scheduler with a fake runtime ----

#[tokio::test]
async fn the_first_invocation_starts_cold_and_the_next_reuses_the_instance() {
    let (sched, counts, lines) = scheduler(Behaviour::default());
    let s = spec("r1", scaling(2, 1_000));
    let first = sched.invoke(s.clone(), invocation("a")).await.unwrap();
    let second = sched.invoke(s.clone(), invocation("b")).await.unwrap();
    assert_eq!((body(&first), body(&second)), ("1:a".into(), "1:b".into()));
    assert!(first.stats.init_us.is_some(), "a cold start is metered");
    assert_eq!(second.stats.init_us, None, "a warm call has no init");
    assert_eq!(counts.starts.load(Ordering::SeqCst), 1);
    assert_eq!(
        (sched.live_instances("f"), sched.idle_instances("f")),
        (1, 1)
    );
    let lines = lines.0.lock().unwrap();
    let reports: Vec<&String> = lines.iter().filter(|l| l.starts_with("REPORT")).collect();
    assert_eq!(reports.len(), 2, "{lines:?}");
    assert!(reports[0].contains("Init Duration"), "{}", reports[0]);
    assert!(!reports[1].contains("Init Duration"), "{}", reports[1]);
    assert!(lines.contains(&"START RequestId: a Version: $LATEST".to_string()));
}

#[tokio::test]
async fn an_instance_takes_no_invocation_that_could_outlive_its_credentials() {
    // Invocations of up to 60 s. Credentials for an hour: reused.
    let (sched, counts, _) = scheduler(Behaviour {
        lifetime: Some(Duration::from_secs(3600)),
        ..Behaviour::default()
    });
    let s = spec("r1", scaling(2, 1_000));
    sched.invoke(s.clone(), invocation("a")).await.unwrap();
    let again = sched.invoke(s.clone(), invocation("b")).await.unwrap();
    assert_eq!(body(&again), "1:b");
    // Credentials for 30 s: an invocation begun now could outlive them, so
    // every invocation gets a new instance, and an idle one is reaped at once.
    let (sched, counts2, _) = scheduler(Behaviour {
        lifetime: Some(Duration::from_secs(30)),
        ..Behaviour::default()
    });
    let first = sched.invoke(s.clone(), invocation("a")).await.unwrap();
    let second = sched.invoke(s.clone(), invocation("b")).await.unwrap();
    assert_eq!((body(&first), body(&second)), ("1:a".into(), "2:b".into()));
    sched.reap(Instant::now()).await;
    assert_eq!(sched.idle_instances("f"), 0);
    assert_eq!(counts2.stops.load(Ordering::SeqCst), 2);
    assert_eq!(counts.starts.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn another_revision_gets_its_own_instance() {
    let (sched, counts, _) = scheduler(Behaviour::default());
    let r1 = sched
        .invoke(spec("r1", scaling(2, 1_000)), invocation("a"))
        .await;
    let r2 = sched
        .invoke(spec("r2", scaling(2, 1_000)), invocation("b"))
        .await;
    assert_eq!(
        (body(&r1.unwrap()), body(&r2.unwrap())),
        ("1:a".into(), "2:b".into())
    );
    assert_eq!(counts.starts.load(Ordering::SeqCst), 2);
}

/// A scheduler whose invocations each wait for a permit of the returned gate.
fn gated() -> (Scheduler, Arc<Counts>, Arc<Semaphore>) {
    let gate = Arc::new(Semaphore::new(0));
    let (sched, counts, _) = scheduler(Behaviour {
        gate: Some(gate.clone()),
        ..Behaviour::default()
    });
    (sched, counts, gate)
}

/// Starts an invocation that holds its instance until `gate` gets a permit;
/// returns once the instance is running it.
async fn occupy(
    sched: &Scheduler,
    s: &Arc<InstanceSpec>,
    counts: &Counts,
    id: &str,
) -> tokio::task::JoinHandle<Result<InvokeResult, SchedulerError>> {
    let before = counts.invokes.load(Ordering::SeqCst);
    let task = tokio::spawn({
        let (sched, s, inv) = (sched.clone(), s.clone(), invocation(id));
        async move { sched.invoke(s, inv).await }
    });
    while counts.invokes.load(Ordering::SeqCst) == before {
        tokio::task::yield_now().await;
    }
    task
}

#[tokio::test]
async fn past_max_instances_with_no_wait_an_invocation_is_throttled() {
    let (sched, counts, gate) = gated();
    let s = spec("r1", scaling(1, 0));
    let busy = occupy(&sched, &s, &counts, "a").await;
    match sched.invoke(s.clone(), invocation("b")).await {
        Err(SchedulerError::Throttled { max, waited_ms, .. }) => {
            assert_eq!((max, waited_ms), (1, 0))
        }
        other => panic!("{other:?}"),
    }
    gate.add_permits(2);
    assert_eq!(body(&busy.await.unwrap().unwrap()), "1:a");
    let again = sched.invoke(s, invocation("c")).await.unwrap();
    assert_eq!(
        body(&again),
        "1:c",
        "the freed instance takes the next call"
    );
}

#[tokio::test]
async fn past_max_instances_an_invocation_waits_for_the_busy_one() {
    let (sched, counts, gate) = gated();
    let s = spec("r1", scaling(1, 600_000));
    let busy = occupy(&sched, &s, &counts, "a").await;
    let queued = tokio::spawn({
        let (sched, s) = (sched.clone(), s.clone());
        async move { sched.invoke(s, invocation("b")).await }
    });
    // Let the queued call run as far as it can: it cannot reach an instance.
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    assert_eq!(counts.invokes.load(Ordering::SeqCst), 1, "b waits");
    assert_eq!(sched.live_instances("f"), 1);
    gate.add_permits(2);
    assert_eq!(body(&busy.await.unwrap().unwrap()), "1:a");
    assert_eq!(body(&queued.await.unwrap().unwrap()), "1:b");
    assert_eq!(
        counts.starts.load(Ordering::SeqCst),
        1,
        "never a second instance"
    );
}

#[tokio::test]
async fn a_spent_instance_is_stopped_and_its_room_given_back() {
    let (sched, counts, _) = scheduler(Behaviour {
        spent: true,
        ..Behaviour::default()
    });
    let s = spec("r1", scaling(1, 0));
    for (id, n) in [("a", "1:a"), ("b", "2:b")] {
        let r = sched.invoke(s.clone(), invocation(id)).await.unwrap();
        assert_eq!(body(&r), n);
    }
    assert_eq!(counts.stops.load(Ordering::SeqCst), 2);
    assert_eq!(sched.live_instances("f"), 0);
}

#[tokio::test]
async fn a_failed_start_is_the_invocations_error_and_frees_its_room() {
    let (sched, counts, lines) = scheduler(Behaviour {
        fail_start: true,
        ..Behaviour::default()
    });
    let s = spec("r1", scaling(1, 0));
    for id in ["a", "b"] {
        let r = sched.invoke(s.clone(), invocation(id)).await.unwrap();
        assert_eq!(r.outcome.error_type(), Some("Runtime.ExitError"));
        assert!(r.stats.init_us.is_some());
    }
    assert_eq!(counts.starts.load(Ordering::SeqCst), 0);
    assert_eq!(sched.live_instances("f"), 0);
    let lines = lines.0.lock().unwrap();
    assert!(
        lines.iter().any(|l| l.starts_with("REPORT RequestId: b")
            && l.contains("Status: error\tError Type: Runtime.ExitError")),
        "{lines:?}"
    );
}

#[tokio::test]
async fn retiring_stops_the_idle_instances() {
    let (sched, counts, _) = scheduler(Behaviour::default());
    sched
        .invoke(spec("r1", scaling(2, 0)), invocation("a"))
        .await
        .unwrap();
    sched.retire("f").await;
    assert_eq!(counts.stops.load(Ordering::SeqCst), 1);
    assert_eq!(
        (sched.live_instances("f"), sched.idle_instances("f")),
        (0, 0)
    );
}

#[tokio::test]
async fn a_draining_scheduler_finishes_in_flight_work_and_takes_no_more() {
    let (sched, counts, gate) = gated();
    let s = spec("r1", scaling(1, 0));
    let busy = occupy(&sched, &s, &counts, "a").await;
    let draining = tokio::spawn({
        let sched = sched.clone();
        async move { sched.shutdown(Duration::from_secs(600)).await }
    });
    while !sched.inner.draining.load(Ordering::SeqCst) {
        tokio::task::yield_now().await;
    }
    assert!(matches!(
        sched.invoke(s.clone(), invocation("b")).await,
        Err(SchedulerError::Draining)
    ));
    gate.add_permits(1);
    assert_eq!(body(&busy.await.unwrap().unwrap()), "1:a");
    draining.await.unwrap();
    assert_eq!(
        counts.stops.load(Ordering::SeqCst),
        1,
        "stopped, not kept idle"
    );
    assert_eq!(sched.live_instances("f"), 0);
}

#[tokio::test]
async fn a_runtime_this_server_lacks_is_an_error() {
    let (sched, _, _) = scheduler(Behaviour::default());
    let mut wasm = (*spec("r1", scaling(1, 0))).clone();
    wasm.config.runtime = "wasm".into();
    match sched.invoke(Arc::new(wasm), invocation("a")).await {
        Err(SchedulerError::NoRuntime(kind)) => assert_eq!(kind, RuntimeKind::Wasm),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn the_reaper_stops_instances_idle_past_their_timeout() {
    let (sched, counts, _) = scheduler(Behaviour::default());
    let s = spec(
        "r1",
        Scaling {
            idle_timeout_ms: 60_000,
            ..scaling(2, 0)
        },
    );
    // The instance went idle between `before` and `after`.
    let before = Instant::now();
    sched.invoke(s.clone(), invocation("a")).await.unwrap();
    let after = Instant::now();
    sched.reap(before + Duration::from_millis(59_999)).await;
    assert_eq!(sched.idle_instances("f"), 1, "not yet");
    sched.reap(after + Duration::from_secs(60)).await;
    assert_eq!(counts.stops.load(Ordering::SeqCst), 1);
    assert_eq!(sched.live_instances("f"), 0);
}

#[tokio::test]
async fn the_reaper_keeps_min_instances_warm() {
    let (sched, counts, _) = scheduler(Behaviour::default());
    let s = spec(
        "r1",
        Scaling {
            min_instances: 1,
            idle_timeout_ms: 1,
            ..scaling(2, 0)
        },
    );
    sched.set_warm("f", Some(s.clone()));
    sched.reap(Instant::now()).await;
    while sched.idle_instances("f") == 0 {
        tokio::task::yield_now().await;
    }
    assert_eq!(counts.starts.load(Ordering::SeqCst), 1);
    // Long past its idle timeout, the minimum stays and takes the next call.
    sched.reap(Instant::now() + Duration::from_secs(3600)).await;
    assert_eq!(
        (sched.live_instances("f"), sched.idle_instances("f")),
        (1, 1)
    );
    let r = sched.invoke(s, invocation("a")).await.unwrap();
    assert_eq!((body(&r), r.stats.init_us), ("1:a".to_string(), None));
    // Once the function is gone, nothing is kept.
    sched.set_warm("f", None);
    sched.reap(Instant::now() + Duration::from_secs(3600)).await;
    assert_eq!(sched.live_instances("f"), 0);
    assert_eq!(counts.stops.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_learned_gap_releases_the_instance_and_prewarms_it_before_the_next_call() {
    let (sched, counts, _) = scheduler(Behaviour::default());
    let s = spec("r1", scaling(2, 0));
    assert_eq!(s.config.scaling.keep_alive, KeepAlive::Adaptive);
    let pool = sched.pool("f");
    pool.resize(2);
    let minutes = |m: u32| Duration::from_secs(60) * m;
    // Called 30 minutes after the last call ended, ten times (the history,
    // at injected times).
    let t0 = Instant::now();
    let mut end = t0;
    for i in 0..10 {
        let at = end + minutes(30);
        pool.arrive(&s, at);
        end = at + Duration::from_secs(1);
        assert!(
            pool.finish(&s, end) > Duration::ZERO,
            "still learning at call {i}"
        );
    }
    // Learned: the next call's instance is released at once...
    let at = end + minutes(30);
    pool.arrive(&s, at);
    pool.reserve();
    end = at + Duration::from_secs(1);
    let idle = pool.finish(&s, end);
    assert_eq!(idle, Duration::ZERO);
    pool.put_idle_for(instance(7, &counts), &s, end, idle);
    sched.reap(end).await;
    assert_eq!(counts.stops.load(Ordering::SeqCst), 1);
    assert_eq!(sched.live_instances("f"), 0);
    // ...and one is started 27 minutes later (30, less 10%), not before.
    sched
        .reap(end + minutes(27) - Duration::from_millis(1))
        .await;
    assert_eq!(counts.starts.load(Ordering::SeqCst), 0);
    let due = end + minutes(27);
    sched.reap(due).await;
    let started = async {
        while sched.idle_instances("f") == 0 {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), started)
        .await
        .expect("the pre-warmed instance went idle");
    assert_eq!(counts.starts.load(Ordering::SeqCst), 1);
    // Kept to the end of the 30-minute bin (4 minutes).
    let keep = minutes(4);
    sched.reap(due + keep - Duration::from_millis(1)).await;
    assert_eq!(sched.idle_instances("f"), 1);
    // The next call finds it warm.
    let r = sched.invoke(s.clone(), invocation("a")).await.unwrap();
    assert_eq!((body(&r), r.stats.init_us), ("1:a".to_string(), None));
    assert_eq!(counts.starts.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_set_idle_timeout_is_never_learned_over() {
    let (sched, counts, _) = scheduler(Behaviour::default());
    let s = spec(
        "r1",
        Scaling {
            keep_alive: KeepAlive::Fixed,
            ..idle_ms(60_000)
        },
    );
    let pool = sched.pool("f");
    let t0 = Instant::now();
    for i in 0..30 {
        let at = t0 + Duration::from_secs(1800) * i;
        pool.arrive(&s, at);
        assert_eq!(pool.finish(&s, at), Duration::from_secs(60));
    }
    sched.reap(t0 + Duration::from_secs(3600 * 24)).await;
    assert_eq!(counts.starts.load(Ordering::SeqCst), 0);
}

// The cap: permits owed when max_instances goes down while busy.

fn bare_pool() -> Pool {
    Pool {
        function: "f".into(),
        permits: Arc::new(Semaphore::new(0)),
        state: Mutex::new(PoolState::default()),
    }
}

#[test]
fn a_cap_lowered_while_busy_holds_when_the_permit_comes_back() {
    let p = bare_pool();
    p.resize(1);
    let busy = p.permits.clone().try_acquire_owned().unwrap();
    // Reserved concurrency 0 while the one invocation runs.
    p.resize(0);
    drop(busy);
    let back = p.permits.clone().try_acquire_owned().unwrap();
    assert!(p.keep(back).is_none(), "the returned permit is owed");
    assert!(p.permits.clone().try_acquire_owned().is_err());
    // Raising the cap again pays the debt first, then adds.
    p.resize(2);
    let a = p.permits.clone().try_acquire_owned().unwrap();
    let a = p.keep(a).unwrap();
    let b = p.permits.clone().try_acquire_owned().unwrap();
    let b = p.keep(b).unwrap();
    assert!(p.permits.clone().try_acquire_owned().is_err());
    drop((a, b));
}

#[test]
fn owed_permits_are_paid_before_new_ones_are_added() {
    let p = bare_pool();
    p.resize(2);
    let x = p.permits.clone().try_acquire_owned().unwrap();
    let y = p.permits.clone().try_acquire_owned().unwrap();
    p.resize(0);
    assert_eq!(p.lock().owed, 2);
    p.resize(1);
    assert_eq!(p.lock().owed, 1);
    assert_eq!(p.permits.available_permits(), 0);
    drop((x, y));
    // Two came back, one was owed: one is usable, as the cap says.
    let first = p.permits.clone().try_acquire_owned().unwrap();
    let second = p.permits.clone().try_acquire_owned().unwrap();
    let kept: Vec<_> = [p.keep(first), p.keep(second)]
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(kept.len(), 1);
}

#[tokio::test]
async fn a_start_that_fails_is_not_prewarmed_again() {
    let (sched, _, _) = scheduler(Behaviour {
        fail_start: true,
        ..Behaviour::default()
    });
    let s = spec("r1", scaling(2, 0));
    let pool = sched.pool("f");
    pool.resize(2);
    // Learned: called 30 minutes after each end, so the next end asks for a
    // pre-warm (see the test above).
    let mut end = Instant::now();
    for _ in 0..10 {
        let at = end + Duration::from_secs(1800);
        pool.arrive(&s, at);
        end = at + Duration::from_secs(1);
        pool.finish(&s, end);
    }
    pool.arrive(&s, end + Duration::from_secs(1800));
    assert_eq!(
        pool.finish(&s, end + Duration::from_secs(1801)),
        Duration::ZERO
    );
    assert!(pool.lock().prewarm.is_some(), "a pre-warm is pending");
    let r = sched.invoke(s.clone(), invocation("a")).await.unwrap();
    assert!(matches!(r.outcome, Outcome::Error { .. }));
    assert!(
        pool.lock().prewarm.is_none(),
        "the failed start left a pre-warm"
    );
}
