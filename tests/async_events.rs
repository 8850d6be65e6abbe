//! Asynchronous invocation end to end: events are durable before the 202
//! (a SIGKILLed server runs every accepted event after its restart), failures
//! are retried with the configured backoff, then reach the dead-letter list
//! or the on-failure destination with Lambda's record.
//!
//! The fixture functions (tests/fixtures/async) post every run to an HTTP
//! sink this test owns; its URL travels in the event.

mod common;
use common::*;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The fixture reports to a sink on the host's loopback, which functions
/// reach only when the server allows it.
const LOOPBACK: (&str, &str) = ("UPDRAFT_ALLOW_FUNCTION_LOOPBACK", "true");

#[test]
fn every_accepted_event_runs_at_least_once_across_a_sigkill() {
    const TOTAL: usize = 1000;
    const THREADS: usize = 4;
    let sink = Sink::start();
    let mut server = Server::start_in(scratch("async-kill"), &[LOOPBACK]);
    server.deploy(&fixture("async"));
    let bearer = server.bearer();
    let endpoint = Arc::new(Mutex::new(server.endpoint.clone()));
    let accepted = Arc::new(Mutex::new(Vec::<String>::new()));
    let refused = Arc::new(AtomicUsize::new(0));

    let mut senders = Vec::new();
    for t in 0..THREADS {
        let (endpoint, accepted, refused) = (endpoint.clone(), accepted.clone(), refused.clone());
        let (bearer, sink, ran) = (bearer.clone(), sink.url.clone(), sink.posts.clone());
        senders.push(std::thread::spawn(move || {
            let client = reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap();
            let deadline = Instant::now() + Duration::from_secs(120);
            for i in 0..TOTAL / THREADS {
                // A first hundred each, then the rest once events run, so the
                // kill comes while events are both being accepted and run.
                while i == 100 && ran.lock().unwrap().len() < 30 {
                    assert!(Instant::now() < deadline, "sender {t}: nothing ran");
                    std::thread::sleep(Duration::from_millis(5));
                }
                let body = json!({ "sink": sink, "n": t * 1000 + i }).to_string();
                // Until it is accepted: the server is down for a while.
                loop {
                    assert!(Instant::now() < deadline, "sender {t} is stuck");
                    let ep = endpoint.lock().unwrap().clone();
                    let resp = client
                        .post(format!(
                            "{ep}/api/v1/functions/async-sink/invoke?async=true"
                        ))
                        .header("authorization", &bearer)
                        .body(body.clone())
                        .send();
                    match resp {
                        Ok(r) if r.status().as_u16() == 202 => {
                            let header = r.headers()["x-amzn-requestid"]
                                .to_str()
                                .unwrap()
                                .to_string();
                            let v: Value = r.json().unwrap();
                            let id = v["request_id"].as_str().unwrap().to_string();
                            assert_eq!(id, header);
                            accepted.lock().unwrap().push(id);
                            break;
                        }
                        Ok(r) => panic!("unexpected {} {:?}", r.status(), r.text()),
                        Err(_) => {
                            // Killed or restarting: try again.
                            refused.fetch_add(1, Ordering::Relaxed);
                            std::thread::sleep(Duration::from_millis(10));
                        }
                    }
                }
            }
        }));
    }

    // Kill mid-way: some hundreds accepted, some of them already ran.
    wait_for(
        "events accepted and running",
        Duration::from_secs(60),
        || {
            let n = accepted.lock().unwrap().len();
            (n >= 400 && sink.posts().len() >= 30).then_some(())
        },
    );
    let accepted_before = accepted.lock().unwrap().len();
    let ran_before = sink.posts().len();
    server.kill9();
    let ran_at_kill = sink.posts().len();
    eprintln!("killed after {accepted_before} accepted, {ran_before} ran");
    assert!(
        accepted_before < TOTAL,
        "the kill came too late to test anything"
    );
    server.restart();
    *endpoint.lock().unwrap() = server.endpoint.clone();
    for s in senders {
        s.join().unwrap();
    }
    let accepted: HashSet<String> = accepted.lock().unwrap().iter().cloned().collect();
    assert_eq!(accepted.len(), TOTAL, "every send was accepted once");

    let ran = wait_for(
        "every accepted event to run",
        Duration::from_secs(90),
        || {
            let ran: HashSet<String> = sink
                .posts()
                .iter()
                .filter(|p| p["fn"] == "async-sink")
                .filter_map(|p| p["id"].as_str().map(str::to_string))
                .collect();
            accepted.is_subset(&ran).then_some(ran)
        },
    );
    // An event that ran without its 202 reaching the sender can only be one
    // stored just before the kill, whose answer was lost: each is a failed
    // send, retried under a new id.
    let unacknowledged: Vec<&String> = ran.difference(&accepted).collect();
    assert!(
        unacknowledged.len() <= refused.load(Ordering::Relaxed),
        "runs of events never accepted: {unacknowledged:?}"
    );
    eprintln!(
        "all {TOTAL} ran; {} runs in all (re-runs after the kill: {}), {} refused sends",
        sink.posts().len(),
        sink.posts().len().saturating_sub(TOTAL),
        refused.load(Ordering::Relaxed)
    );
    // Every run since the restart is metered (records still buffered at the
    // SIGKILL may be lost with it).
    let usage: Value = serde_json::from_str(&server.ok(&["usage", "--json"])).unwrap();
    let f = usage["functions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "async-sink")
        .unwrap()
        .clone();
    let since_restart = (sink.posts().len() - ran_at_kill) as u64;
    assert!(
        f["invocations"].as_u64().unwrap() >= since_restart,
        "{f} < {since_restart}"
    );
}

fn lambda_api(server: &Server, method: &str, path: &str, body: Value) -> (u16, String, Value) {
    let bearer = server.bearer();
    let (status, headers, body) = http(
        method,
        &format!("{}{path}", server.endpoint),
        &[("authorization", &bearer)],
        if body.is_null() {
            vec![]
        } else {
            body.to_string().into_bytes()
        },
    );
    let error_type = headers
        .get("x-amzn-errortype")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (
        status,
        error_type,
        serde_json::from_slice(&body).unwrap_or(Value::Null),
    )
}

#[test]
fn failures_are_retried_then_reach_the_dead_letters_or_the_destination() {
    let sink = Sink::start();
    let server = Server::start_in(
        scratch("async-fail"),
        &[("UPDRAFT_RETRY_BASE", "100ms"), LOOPBACK],
    );
    server.deploy(&fixture("async"));

    // An unknown function is refused before anything is queued.
    let out = server.cli(&["invoke", "async-nope", "--async"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));

    // 1. Default settings (2 retries), no destination: 3 runs, then the DLQ.
    let payload = json!({ "sink": sink.url, "case": "dlq" }).to_string();
    let id = server
        .ok(&["invoke", "async-fail", "--async", "--payload", &payload])
        .trim()
        .to_string();
    assert_eq!(id.len(), 36, "a request id: {id:?}");
    let letters = wait_for("the dead letter", Duration::from_secs(30), || {
        let v: Value = serde_json::from_str(&server.ok(&["dlq", "async-fail", "--json"])).unwrap();
        (!v.as_array().unwrap().is_empty()).then_some(v)
    });
    let runs = sink.run_times("async-fail", &id);
    assert_eq!(runs.len(), 3, "{:?}", sink.posts());
    let r = &letters[0];
    assert_eq!(r["version"], "1.0");
    assert_eq!(r["requestContext"]["requestId"], id.as_str());
    assert_eq!(r["requestContext"]["condition"], "RetriesExhausted");
    assert_eq!(r["requestContext"]["approximateInvokeCount"], 3);
    assert_eq!(
        r["requestContext"]["functionArn"],
        "arn:aws:lambda:us-east-1:000000000000:function:async-fail:$LATEST"
    );
    assert_eq!(r["requestPayload"]["case"], "dlq");
    assert_eq!(r["responseContext"]["functionError"], "Unhandled");
    assert_eq!(r["responsePayload"]["errorType"], "RuntimeError");
    assert_eq!(r["responsePayload"]["errorMessage"], "asked to fail");
    // Backoff 100 ms then 200 ms (UPDRAFT_RETRY_BASE), not Lambda's minutes:
    // a retry never runs before its time (the store counts whole ms).
    let gaps = [runs[1] - runs[0], runs[2] - runs[1]];
    assert!(gaps[0] >= Duration::from_millis(99), "{gaps:?}");
    assert!(gaps[1] >= Duration::from_millis(199), "{gaps:?}");
    let text = server.ok(&["dlq", "async-fail"]);
    assert!(
        text.contains(&format!(
            "\t{id}\tRetriesExhausted\t3\tRuntimeError: asked to fail"
        )),
        "{text}"
    );
    // Retries share the request id but are each an invocation (metered).
    let usage: Value = serde_json::from_str(&server.ok(&["usage", "--json"])).unwrap();
    let f = usage["functions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "async-fail")
        .unwrap()
        .clone();
    assert_eq!(f["invocations"], 3, "{f}");
    assert_eq!(f["errors"], 3, "{f}");

    // 2. EventInvokeConfig through Lambda's REST path.
    let path = "/2019-09-25/functions/async-fail/event-invoke-config";
    let (status, _, v) = lambda_api(&server, "GET", path, Value::Null);
    assert_eq!(status, 404, "{v}");
    let (status, kind, _) = lambda_api(
        &server,
        "PUT",
        "/2019-09-25/functions/async-nope/event-invoke-config",
        json!({ "MaximumRetryAttempts": 1 }),
    );
    assert_eq!((status, kind.as_str()), (404, "ResourceNotFoundException"));
    for bad in [
        json!({ "MaximumRetryAttempts": 3 }),
        json!({ "MaximumEventAgeInSeconds": 59 }),
        json!({ "MaximumEventAgeInSeconds": 21601 }),
        json!({ "DestinationConfig": { "OnFailure": { "Destination": "arn:aws:sqs:us-east-1:000000000000:q" } } }),
    ] {
        let (status, kind, v) = lambda_api(&server, "PUT", path, bad.clone());
        assert_eq!(
            (status, kind.as_str()),
            (400, "InvalidParameterValueException"),
            "{bad} → {v}"
        );
    }
    let dest_arn = "arn:aws:lambda:us-east-1:000000000000:function:async-dest";
    let (status, _, v) = lambda_api(
        &server,
        "PUT",
        path,
        json!({
            "MaximumRetryAttempts": 2,
            "DestinationConfig": { "OnFailure": { "Destination": dest_arn } }
        }),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["MaximumRetryAttempts"], 2);
    assert_eq!(v["DestinationConfig"]["OnFailure"]["Destination"], dest_arn);
    assert_eq!(
        v["FunctionArn"],
        "arn:aws:lambda:us-east-1:000000000000:function:async-fail:$LATEST"
    );
    assert!(v["LastModified"].as_f64().unwrap() > 1.5e9, "{v}");
    let (status, _, got) = lambda_api(&server, "GET", path, Value::Null);
    assert_eq!(status, 200);
    assert_eq!(got["DestinationConfig"], v["DestinationConfig"]);
    // Update merges: the destination stays.
    let (status, _, v) = lambda_api(
        &server,
        "POST",
        path,
        json!({ "MaximumEventAgeInSeconds": 3600 }),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["MaximumEventAgeInSeconds"], 3600);
    assert_eq!(v["MaximumRetryAttempts"], 2);
    assert_eq!(v["DestinationConfig"]["OnFailure"]["Destination"], dest_arn);

    // 3. With the destination: the record goes to async-dest, not the DLQ.
    let payload = json!({ "sink": sink.url, "case": "dest" }).to_string();
    let id2 = server
        .ok(&["invoke", "async-fail", "--async", "--payload", &payload])
        .trim()
        .to_string();
    let delivered = wait_for("the destination record", Duration::from_secs(30), || {
        sink.posts().into_iter().find(|p| {
            p["fn"] == "async-dest" && p["event"]["requestContext"]["requestId"] == id2.as_str()
        })
    });
    assert_eq!(sink.runs_of("async-fail", &id2), 3);
    let r = &delivered["event"];
    assert_eq!(r["requestContext"]["condition"], "RetriesExhausted");
    assert_eq!(r["requestContext"]["approximateInvokeCount"], 3);
    assert_eq!(r["requestPayload"]["case"], "dest");
    assert_eq!(r["responsePayload"]["errorMessage"], "asked to fail");
    assert_ne!(
        delivered["id"],
        id2.as_str(),
        "the destination runs as its own request"
    );
    let dlq: Value = serde_json::from_str(&server.ok(&["dlq", "async-fail", "--json"])).unwrap();
    assert_eq!(dlq.as_array().unwrap().len(), 1, "{dlq}");

    // 4. No retries: one run, straight to the destination.
    let (status, _, _) = lambda_api(&server, "POST", path, json!({ "MaximumRetryAttempts": 0 }));
    assert_eq!(status, 200);
    let id3 = server
        .ok(&["invoke", "async-fail", "--async", "--payload", &payload])
        .trim()
        .to_string();
    let delivered = wait_for(
        "the second destination record",
        Duration::from_secs(30),
        || {
            sink.posts().into_iter().find(|p| {
                p["fn"] == "async-dest" && p["event"]["requestContext"]["requestId"] == id3.as_str()
            })
        },
    );
    assert_eq!(
        delivered["event"]["requestContext"]["approximateInvokeCount"],
        1
    );
    assert_eq!(sink.runs_of("async-fail", &id3), 1);

    // Deleting the config restores the defaults; a second delete is a 404.
    let (status, _, _) = lambda_api(&server, "DELETE", path, Value::Null);
    assert_eq!(status, 204);
    let (status, kind, _) = lambda_api(&server, "DELETE", path, Value::Null);
    assert_eq!((status, kind.as_str()), (404, "ResourceNotFoundException"));

    // A successful event just runs.
    let ok_payload = json!({ "sink": sink.url }).to_string();
    let id4 = server
        .ok(&["invoke", "async-sink", "--async", "--payload", &ok_payload])
        .trim()
        .to_string();
    wait_for("the successful event", Duration::from_secs(30), || {
        (sink.runs_of("async-sink", &id4) == 1).then_some(())
    });

    // Deleting a function drops its dead letters with it.
    server.ok(&["rm", "async-fail"]);
    let out = server.cli(&["dlq", "async-fail"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
}

#[test]
fn payload_limits_and_errors_of_the_native_endpoint() {
    let server = Server::start_in(scratch("async-limits"), &[LOOPBACK]);
    server.deploy(&fixture("async"));
    let bearer = server.bearer();
    let url = format!(
        "{}/api/v1/functions/async-sink/invoke?async=true",
        server.endpoint
    );
    // Lambda's asynchronous limit is 1 MB.
    let big = format!("{{\"x\":\"{}\"}}", "a".repeat(1024 * 1024));
    let (status, headers, _) = http(
        "POST",
        &url,
        &[("authorization", &bearer)],
        big.into_bytes(),
    );
    assert_eq!(status, 413);
    assert_eq!(
        headers["x-amzn-errortype"],
        "RequestEntityTooLargeException"
    );
    let (status, _, _) = http(
        "POST",
        &url,
        &[("authorization", &bearer)],
        b"{nope".to_vec(),
    );
    assert_eq!(status, 400);
    let (status, _, _) = http("POST", &url, &[], b"{}".to_vec());
    assert_eq!(status, 401);
    let (status, headers, _) = http(
        "POST",
        &format!(
            "{}/api/v1/functions/async-nope/invoke?async=true",
            server.endpoint
        ),
        &[("authorization", &bearer)],
        b"{}".to_vec(),
    );
    assert_eq!(status, 404);
    assert_eq!(headers["x-amzn-errortype"], "ResourceNotFoundException");
    let (status, _, body) = http("POST", &url, &[("authorization", &bearer)], vec![]);
    assert_eq!(status, 202, "{}", String::from_utf8_lossy(&body));
}
