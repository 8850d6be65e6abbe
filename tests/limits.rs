//! Limits and failures: timeouts, crashes and out-of-memory are reported with
//! Lambda's error types, and the next invocation gets a fresh instance.

mod common;
use common::*;

#[test]
fn timeout_is_reported_and_the_instance_replaced() {
    let s = Server::start("timeout");
    s.deploy(&fixture("py"));
    let out = s.cli(&["invoke", "slow"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with("Sandbox.Timedout: "),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("Task timed out after 1.00 seconds"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        s.live_instances("slow"),
        0,
        "the timed-out instance was stopped"
    );
    // Through the function URL: 504.
    let (status, body) = get(&format!("{}/fn/slow", s.endpoint));
    assert_eq!(status, 504, "{body}");
    assert!(!body.contains("Traceback"));
    // Other functions are unaffected.
    assert_eq!(
        s.invoke_json("echo", "{}")["context"]["function_name"],
        "echo"
    );
    let logs = s.ok(&["logs", "slow"]);
    assert!(logs.contains("Status: timeout"), "{logs}");
}

#[test]
fn crash_is_reported_and_the_next_call_gets_a_fresh_instance() {
    let s = Server::start("crash");
    s.deploy(&fixture("py"));
    assert_eq!(s.ok(&["invoke", "crash"]), "\"ok\"");
    let out = s.cli(&["invoke", "crash", "--payload", r#"{"crash": true}"#]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with("Runtime.ExitError: "),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("exit status 3"), "{}", stderr(&out));
    assert_eq!(s.ok(&["invoke", "crash"]), "\"ok\"");
    let (status, _) = get(&format!("{}/fn/crash", s.endpoint));
    assert_eq!(status, 200);
    let (status, body) = {
        let (st, _, b) = http(
            "POST",
            &format!("{}/fn/crash", s.endpoint),
            &[("content-type", "application/json")],
            br#"{"crash": true}"#.to_vec(),
        );
        (st, String::from_utf8_lossy(&b).into_owned())
    };
    // The function URL passes the HTTP event, not the body, so this call does not crash.
    assert_eq!(status, 200, "{body}");
}

#[test]
fn memory_limit_is_enforced_and_reported_as_out_of_memory() {
    let s = Server::start("oom");
    s.deploy(&fixture("py"));
    assert_eq!(
        s.ok(&["invoke", "hog", "--payload", r#"{"mb": 10}"#]),
        "\"survived\""
    );
    let out = s.cli(&["invoke", "hog", "--payload", r#"{"mb": 400}"#]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).starts_with("Runtime.OutOfMemory: "),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        s.ok(&["invoke", "hog", "--payload", r#"{"mb": 10}"#]),
        "\"survived\""
    );
    let logs = s.ok(&["logs", "hog"]);
    assert!(logs.contains("Error Type: Runtime.OutOfMemory"), "{logs}");
    // The server is still healthy.
    assert_eq!(get(&format!("{}/healthz", s.endpoint)).0, 200);
}

#[test]
fn malformed_and_oversize_payloads_get_clear_4xx() {
    let s = Server::start("payloads");
    s.deploy(&fixture("py"));
    let url = format!("{}/api/v1/functions/echo/invoke", s.endpoint);
    let auth = s.bearer();
    let (status, headers, body) = http(
        "POST",
        &url,
        &[("authorization", &auth)],
        b"{not json".to_vec(),
    );
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    assert_eq!(
        headers["x-amzn-errortype"],
        "InvalidRequestContentException"
    );
    let big = format!("{{\"x\": \"{}\"}}", "a".repeat(7 * 1024 * 1024));
    let (status, headers, _) = http(
        "POST",
        &url,
        &[("authorization", &auth)],
        big.clone().into_bytes(),
    );
    assert_eq!(status, 413);
    assert_eq!(
        headers["x-amzn-errortype"],
        "RequestEntityTooLargeException"
    );
    let (status, _, body) = http(
        "POST",
        &format!("{}/fn/echo", s.endpoint),
        &[],
        big.into_bytes(),
    );
    assert_eq!(status, 413, "{}", String::from_utf8_lossy(&body));
    // The CLI refuses a non-JSON payload before sending it.
    let out = s.cli(&["invoke", "echo", "--payload", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--payload: expected JSON"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        s.invoke_json("echo", "{}")["context"]["function_name"],
        "echo"
    );
}

#[test]
fn a_runtime_that_never_asks_for_work_times_out_in_init() {
    let s = Server::start("init-timeout");
    let dir = scratch("init-timeout-app");
    std::fs::create_dir_all(dir.join("code")).unwrap();
    let bootstrap = dir.join("code/bootstrap");
    std::fs::write(
        &bootstrap,
        "#!/bin/sh\necho starting but never polling\nexec sleep 600\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&bootstrap, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(
        dir.join("updraft.toml"),
        "[app]\nname = \"stuck\"\n\n[functions.stuck]\nruntime = \"provided.al2023\"\ncode = \"code\"\ntimeout = \"1s\"\n",
    )
    .unwrap();
    s.deploy(&dir);
    let out = s.cli(&["invoke", "stuck"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with("Sandbox.Timedout: "),
        "{}",
        stderr(&out)
    );
    assert_eq!(s.live_instances("stuck"), 0);
    let logs = s.ok(&["logs", "stuck"]);
    assert!(
        logs.contains("starting but never polling"),
        "init output is logged: {logs}"
    );
}

#[test]
fn a_malformed_upload_is_refused_and_changes_nothing() {
    let s = Server::start("bad-upload");
    let garbage = b"this is not a zip".to_vec();
    let sha = {
        use std::fmt::Write;
        let digest = <sha2::Sha256 as sha2::Digest>::digest(&garbage);
        digest.iter().fold(String::new(), |mut acc, b| {
            let _ = write!(acc, "{b:02x}");
            acc
        })
    };
    let (status, headers, body) = http(
        "PUT",
        &format!("{}/api/v1/code/{sha}", s.endpoint),
        &[("authorization", &s.bearer())],
        garbage,
    );
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    assert_eq!(
        headers["x-amzn-errortype"],
        "InvalidParameterValueException"
    );
    assert!(String::from_utf8_lossy(&body).contains("expected a zip file"));
    assert_eq!(get(&format!("{}/healthz", s.endpoint)).0, 200);
}
