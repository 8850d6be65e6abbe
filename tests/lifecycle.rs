//! The life of a deployment: versions, rollback, logs, usage, manifest
//! errors, restarts, SIGTERM drains and SIGKILL recovery.

mod common;
use common::*;
use std::time::Duration;

fn simple_app(dir: &std::path::Path, body: &str, memory: u32) {
    std::fs::create_dir_all(dir.join("code")).unwrap();
    std::fs::write(
        dir.join("code/app.py"),
        format!("def handler(e, c):\n    return {body}\n"),
    )
    .unwrap();
    std::fs::write(
        dir.join("updraft.toml"),
        format!("[app]\nname = \"life\"\n\n[functions.life]\nruntime = \"python3\"\nhandler = \"app.handler\"\ncode = \"code\"\nmemory_mb = {memory}\n"),
    )
    .unwrap();
}

#[test]
fn versions_publish_only_on_change_and_rollback_returns_to_earlier_code() {
    let s = Server::start("versions");
    let dir = scratch("versions-app");
    simple_app(&dir, "'one'", 128);
    assert!(s.deploy(&dir).starts_with("life 1 http://"));
    assert!(
        s.deploy(&dir).starts_with("life 1 "),
        "unchanged deploy reports the current version"
    );
    simple_app(&dir, "'two'", 128);
    assert!(s.deploy(&dir).starts_with("life 2 "));
    assert_eq!(s.ok(&["invoke", "life"]), "\"two\"");
    simple_app(&dir, "'two'", 256);
    assert!(
        s.deploy(&dir).starts_with("life 3 "),
        "a configuration change is a new version"
    );
    let out = s.ok(&["rollback", "life", "--to", "1"]);
    assert!(out.starts_with("life 4 "), "{out}");
    assert_eq!(s.ok(&["invoke", "life"]), "\"one\"");
    assert_eq!(s.ok(&["invoke", "life", "--qualifier", "2"]), "\"two\"");
}

#[test]
fn bad_manifests_name_file_key_and_expectation_and_deploy_nothing() {
    let s = Server::start("manifest");
    let dir = scratch("bad-manifest");
    simple_app(&dir, "1", 128);
    let toml = dir.join("updraft.toml");
    let good = std::fs::read_to_string(&toml).unwrap();
    for (bad, expect) in [
        (
            good.replace("memory_mb = 128", "memory_mb = 128\nmemry = 1"),
            "functions.life.memry",
        ),
        (
            good.replace("memory_mb = 128", "memory_mb = 64"),
            "expected a number from 128 to 10240, got 64",
        ),
        (
            good.replace("code = \"code\"", "code = \"missing\""),
            "functions.life.code",
        ),
        (
            good.replace("\"python3\"", "\"cobol\""),
            "functions.life.runtime",
        ),
        (
            format!("{good}\n[[functions.life.triggers]]\nschedule = {{ rate = \"90ms\" }}\n"),
            "functions.life.triggers[0].schedule.rate",
        ),
    ] {
        std::fs::write(&toml, &bad).unwrap();
        let out = s.cli(&["deploy", dir.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1));
        let err = stderr(&out);
        assert!(
            err.contains("updraft.toml") && err.contains(expect),
            "expected {expect:?} in: {err}"
        );
    }
    assert_eq!(s.ok(&["ls", "--json"]).trim(), "[]", "nothing was deployed");
}

#[test]
fn logs_and_usage_show_what_happened() {
    let s = Server::start("observe");
    s.deploy(&fixture("py"));
    let v = s.invoke_json("echo", "{}");
    let rid = v["context"]["aws_request_id"].as_str().unwrap().to_string();
    s.invoke_json("echo", "{}");
    let failed = s.cli(&["invoke", "fail"]);
    assert_eq!(failed.status.code(), Some(1), "a function error exits 1");
    let logs = s.ok(&["logs", "echo", "--request-id", &rid]);
    let texts: Vec<&str> = logs
        .lines()
        .map(|l| l.splitn(3, '\t').nth(2).unwrap())
        .collect();
    assert!(
        logs.lines()
            .all(|l| l.split('\t').nth(1) == Some(rid.as_str())),
        "{logs}"
    );
    let pos = |p: &str| {
        texts
            .iter()
            .position(|t| t.starts_with(p))
            .unwrap_or_else(|| panic!("no {p:?} in {logs}"))
    };
    assert!(pos("START RequestId") < pos("echo-log"));
    assert!(pos("echo-log") < pos("END RequestId"));
    let report = texts[pos("REPORT RequestId")];
    for field in [
        "Duration: ",
        "Billed Duration: ",
        "Memory Size: 128 MB",
        "Max Memory Used: ",
        "Init Duration: ",
    ] {
        assert!(report.contains(field), "{field:?} missing in {report}");
    }
    let usage: serde_json::Value = serde_json::from_str(&s.ok(&["usage", "--json"])).unwrap();
    let f = |n: &str| {
        usage["functions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == n)
            .unwrap()
            .clone()
    };
    let echo = f("echo");
    assert_eq!(echo["invocations"], 2);
    assert_eq!(echo["errors"], 0);
    assert_eq!(echo["cold_starts"], 1);
    assert!(echo["billed_ms"].as_u64().unwrap() >= 2);
    assert!(echo["cost_usd"].as_f64().unwrap() > 0.0);
    assert_eq!(f("fail")["errors"], 1);
    let table = s.ok(&["usage"]);
    assert!(
        table.contains("echo") && table.contains("COST_USD"),
        "{table}"
    );
}

#[test]
fn a_restart_loses_nothing() {
    let mut s = Server::start("restart");
    s.deploy(&fixture("py"));
    let v = s.invoke_json("echo", "{}");
    let rid = v["context"]["aws_request_id"].as_str().unwrap().to_string();
    let before = s.ok(&["ls", "--json"]);
    s.restart();
    let after: serde_json::Value = serde_json::from_str(&s.ok(&["ls", "--json"])).unwrap();
    let before: serde_json::Value = serde_json::from_str(&before).unwrap();
    let names = |v: &serde_json::Value| {
        v.as_array()
            .unwrap()
            .iter()
            .map(|f| (f["name"].clone(), f["version"].clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&before), names(&after));
    assert!(s
        .ok(&["logs", "echo", "--request-id", &rid])
        .contains("echo-log"));
    let usage: serde_json::Value = serde_json::from_str(&s.ok(&["usage", "--json"])).unwrap();
    assert_eq!(usage["functions"][0]["invocations"], 1, "{usage}");
    assert_eq!(
        s.invoke_json("echo", "{}")["context"]["function_name"],
        "echo"
    );
}

#[test]
fn sigterm_drains_in_flight_invocations_and_exits_0() {
    let mut s = Server::start("drain");
    s.deploy(&fixture("py"));
    let (e, d) = (s.endpoint.clone(), s.data_dir.clone());
    let inflight = std::thread::spawn(move || {
        std::process::Command::new(BIN)
            .args(["invoke", "sleepy", "--payload", r#"{"ms": 1500}"#])
            .env("UPDRAFT_ENDPOINT", e)
            .env("UPDRAFT_DATA_DIR", d)
            .output()
            .unwrap()
    });
    wait_until("the invocation is running", Duration::from_secs(30), || {
        s.live_instances("sleepy") == 1
    });
    let instances = s.data_dir.join("instances");
    let status = s.terminate();
    assert!(status.success(), "{status}");
    let out = inflight.join().unwrap();
    assert!(
        out.status.success(),
        "in-flight invocation finished: {}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read_dir(instances).unwrap().count(),
        0,
        "instances stopped"
    );
}

#[test]
fn after_sigkill_no_instance_survives_and_the_next_start_cleans_up() {
    let mut s = Server::start("sigkill");
    s.deploy(&fixture("py"));
    s.invoke_json("echo", "{}");
    s.invoke_json("sleepy", r#"{"ms": 1}"#);
    // The instances' processes as the host numbers them.
    let pids = instance_pids(&s.data_dir);
    assert!(!pids.is_empty() && pids.iter().all(|&p| pid_alive(p)));
    s.kill9();
    wait_until(
        "the instance died with the server",
        Duration::from_secs(10),
        || !pids.iter().any(|&p| pid_alive(p)),
    );
    s.restart();
    assert_eq!(
        std::fs::read_dir(s.data_dir.join("instances"))
            .unwrap()
            .count(),
        0,
        "leftovers cleaned"
    );
    assert_eq!(s.invoke_json("sleepy", r#"{"ms": 1}"#)["slept"], 1);
}

/// The same server on PostgreSQL (`--database-url`), when the test run has one
/// (`.ci/run` starts it and sets UPDRAFT_TEST_POSTGRES_URL).
#[test]
fn the_server_runs_on_postgresql_and_a_restart_loses_nothing() {
    let Some(url) = fresh_postgres_database("life") else {
        return;
    };
    let mut s = Server::start_in(scratch("pg"), &[("UPDRAFT_DATABASE_URL", url.as_str())]);
    s.deploy(&fixture("py"));
    let v = s.invoke_json("echo", "{}");
    let rid = v["context"]["aws_request_id"].as_str().unwrap().to_string();
    s.restart();
    assert!(s
        .ok(&["logs", "echo", "--request-id", &rid])
        .contains("echo-log"));
    let usage: serde_json::Value = serde_json::from_str(&s.ok(&["usage", "--json"])).unwrap();
    assert_eq!(usage["functions"][0]["invocations"], 1, "{usage}");
    assert!(
        !s.data_dir.join("updraft.db").exists(),
        "no SQLite file when PostgreSQL is selected"
    );
}
