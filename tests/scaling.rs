//! Scaling: cold and warm starts, the `max_instances` cap with queueing,
//! throttling once the wait bound is reached, and scale to zero.

mod common;
use common::*;
use std::path::Path;
use std::time::Duration;

/// An app with one function over the py fixture's code, with given scaling.
fn app(dir: &Path, name: &str, scaling: &str) {
    let code = fixture("py").join("src");
    std::fs::write(
        dir.join("updraft.toml"),
        format!(
            "[app]\nname = \"{name}-app\"\n\n[functions.{name}]\nruntime = \"python3\"\nhandler = \"sleepy.handler\"\ncode = \"{}\"\nurl = \"public\"\ntimeout = \"30s\"\n\n[functions.{name}.scaling]\n{scaling}\n",
            code.display()
        ),
    )
    .unwrap();
}

fn concurrent(s: &Server, name: &str, n: usize, ms: u64) -> Vec<std::process::Output> {
    let handles: Vec<_> = (0..n)
        .map(|_| {
            let endpoint = s.endpoint.clone();
            let data = s.data_dir.clone();
            let name = name.to_string();
            std::thread::spawn(move || {
                std::process::Command::new(BIN)
                    .args(["invoke", &name, "--payload", &format!("{{\"ms\": {ms}}}")])
                    .env("UPDRAFT_ENDPOINT", endpoint)
                    .env("UPDRAFT_DATA_DIR", data)
                    .output()
                    .unwrap()
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

#[test]
fn concurrency_is_capped_at_max_instances_and_excess_waits() {
    let s = Server::start("cap");
    let dir = scratch("cap-app");
    app(
        &dir,
        "capped",
        "max_instances = 2\nmax_queue_wait = \"60s\"",
    );
    s.deploy(&dir);
    let sampler_stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop = sampler_stop.clone();
    let data_dir = s.data_dir.clone();
    // Count this server's live instance processes while the burst runs.
    let sampler = std::thread::spawn(move || {
        let mut peak = 0;
        while !stop.load(std::sync::atomic::Ordering::SeqCst) {
            peak = peak.max(instance_pids(&data_dir).len());
        }
        peak
    });
    let outs = concurrent(&s, "capped", 6, 300);
    sampler_stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let peak = sampler.join().unwrap();
    let mut pids = std::collections::HashSet::new();
    for o in &outs {
        assert!(
            o.status.success(),
            "queued invocations succeed: {}",
            stderr(o)
        );
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        pids.insert(v["instance"].as_str().unwrap().to_string());
    }
    assert!(
        pids.len() <= 2,
        "at most 2 instances served the burst, saw instances {pids:?}"
    );
    assert!(
        (1..=2).contains(&peak),
        "at most 2 instance processes lived at once, saw {peak}"
    );
}

#[test]
fn excess_invocations_are_throttled_with_429_when_the_wait_bound_is_zero() {
    let s = Server::start("throttle");
    s.deploy(&fixture("py"));
    // sleepy: max_instances = 2, max_queue_wait = 0. Occupy both instances.
    let busy: Vec<_> = (0..2)
        .map(|_| {
            let (e, d) = (s.endpoint.clone(), s.data_dir.clone());
            std::thread::spawn(move || {
                std::process::Command::new(BIN)
                    .args(["invoke", "sleepy", "--payload", r#"{"ms": 4000}"#])
                    .env("UPDRAFT_ENDPOINT", e)
                    .env("UPDRAFT_DATA_DIR", d)
                    .output()
                    .unwrap()
            })
        })
        .collect();
    wait_until(
        "both sleepy instances busy",
        Duration::from_secs(30),
        || s.live_instances("sleepy") == 2,
    );
    let out = s.cli(&["invoke", "sleepy", "--payload", r#"{"ms": 1}"#]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("TooManyRequestsException"),
        "{}",
        stderr(&out)
    );
    // Through the function URL: HTTP 429 with a JSON message.
    let resp = get(&format!("{}/fn/sleepy", s.endpoint));
    assert_eq!(resp.0, 429, "{}", resp.1);
    assert!(resp.1.contains("\"message\""), "{}", resp.1);
    for b in busy {
        assert!(b.join().unwrap().status.success());
    }
    let usage: serde_json::Value = serde_json::from_str(&s.ok(&["usage", "--json"])).unwrap();
    let sleepy = usage["functions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "sleepy")
        .unwrap()
        .clone();
    assert_eq!(sleepy["throttles"], 2, "{sleepy}");
    assert_eq!(
        sleepy["invocations"], 2,
        "throttles are not invocations: {sleepy}"
    );
}

#[test]
fn idle_instances_stop_after_idle_timeout_and_the_next_call_starts_cold() {
    let s = Server::start("idle");
    s.deploy(&fixture("py"));
    let v = s.invoke_json("sleepy", r#"{"ms": 1}"#);
    let instance = v["instance"].as_str().unwrap().to_string();
    let host_pids = instance_pids(&s.data_dir);
    assert!(!host_pids.is_empty());
    assert_eq!(s.live_instances("sleepy"), 1);
    // idle_timeout is 2s for sleepy.
    wait_until("sleepy scaled to zero", Duration::from_secs(30), || {
        s.live_instances("sleepy") == 0
    });
    wait_until(
        "the instance process is gone",
        Duration::from_secs(10),
        || !host_pids.iter().any(|&p| pid_alive(p)),
    );
    let out = s.cli(&["invoke", "sleepy", "--payload", r#"{"ms": 1}"#]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_ne!(
        v["instance"].as_str().unwrap(),
        instance,
        "a new instance served the call"
    );
    let logs = s.ok(&["logs", "sleepy"]);
    let cold = logs
        .lines()
        .filter(|l| l.contains("REPORT") && l.contains("Init Duration"))
        .count();
    assert_eq!(cold, 2, "two cold starts in the logs:\n{logs}");
}

#[test]
fn min_instances_are_kept_warm() {
    let s = Server::start("warm");
    let dir = scratch("warm-app");
    // `warmed` keeps one instance; `control`, the same but for the minimum,
    // shows when the reaper has passed the idle timeout.
    app(&dir, "warmed", "min_instances = 1\nidle_timeout = \"1s\"");
    let code = fixture("py").join("src");
    let mut toml = std::fs::read_to_string(dir.join("updraft.toml")).unwrap();
    toml.push_str(&format!(
        "\n[functions.control]\nruntime = \"python3\"\nhandler = \"sleepy.handler\"\ncode = \"{}\"\n\n[functions.control.scaling]\nidle_timeout = \"1s\"\n",
        code.display()
    ));
    std::fs::write(dir.join("updraft.toml"), toml).unwrap();
    s.deploy(&dir);
    wait_until(
        "one warm instance, started and idle",
        Duration::from_secs(30),
        || s.function_info("warmed")["idle_instances"] == 1,
    );
    let v = s.invoke_json("warmed", r#"{"ms": 1}"#);
    let instance = v["instance"].as_str().unwrap().to_string();
    let logs = s.ok(&["logs", "warmed"]);
    assert!(
        !logs
            .lines()
            .any(|l| l.contains("REPORT") && l.contains("Init Duration")),
        "the call was warm:\n{logs}"
    );
    // `control` is used after `warmed`; once the reaper stopped it, it has
    // passed `warmed`'s idle timeout too, and spared the minimum.
    s.invoke_json("control", r#"{"ms": 1}"#);
    wait_until("control scaled to zero", Duration::from_secs(30), || {
        s.live_instances("control") == 0
    });
    assert_eq!(s.live_instances("warmed"), 1);
    let v = s.invoke_json("warmed", r#"{"ms": 1}"#);
    assert_eq!(v["instance"].as_str().unwrap(), instance);
}

#[test]
fn a_caller_that_hangs_up_does_not_lose_the_invocation_or_its_instance() {
    let s = Server::start("hangup");
    s.deploy(&fixture("py"));
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let url = format!("{}/api/v1/functions/sleepy/invoke", s.endpoint);
    let resp = client
        .post(&url)
        .header("authorization", s.bearer())
        .body(r#"{"ms": 1500}"#)
        .send();
    assert!(
        resp.is_err(),
        "the client gave up before the function finished"
    );
    // The invocation still runs to its end and its instance goes back to the pool.
    wait_until(
        "the instance is idle again",
        Duration::from_secs(30),
        || {
            let f = s.function_info("sleepy");
            f["live_instances"] == 1 && f["idle_instances"] == 1
        },
    );
    let usage: serde_json::Value = serde_json::from_str(&s.ok(&["usage", "--json"])).unwrap();
    assert_eq!(
        usage["functions"][0]["invocations"], 1,
        "the invocation was metered: {usage}"
    );
    let v = s.invoke_json("sleepy", r#"{"ms": 1}"#);
    assert_eq!(v["slept"], 1);
}
