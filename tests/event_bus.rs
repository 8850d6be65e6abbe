//! The event bus end to end (SPEC §5): functions subscribe to bus `orders`
//! with EventBridge patterns (tests/fixtures/bus); events published through
//! boto3's PutEvents and `updraft publish` reach exactly the subscribers
//! whose patterns they match, as EventBridge's event; bad entries get
//! EventBridge's per-entry errors while the rest of the call succeeds; the
//! EventBridge entry point answers in its own error shape and refuses a
//! stranger from the request head.
//!
//! Needs `python3` with boto3 (`.ci/run` puts a venv with it first on PATH).

mod common;
use common::aws::{aws_env, require_boto3, server_with_keys};
use common::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

/// The subscribers report to a sink on the host's loopback, which they
/// reach only when the server allows it.
const LOOPBACK: (&str, &str) = ("UPDRAFT_ALLOW_FUNCTION_LOOPBACK", "true");
/// The sink URL in the fixture's manifest, replaced by the test's own.
const FIXTURE_SINK: &str = "http://127.0.0.1:9/";
/// Where the fixture's code is, replaced by the copy's.
const FIXTURE_CODE: &str = "code = \"../events/src\"";
/// How long deliveries may take before the test gives up.
const DEADLINE: Duration = Duration::from_secs(60);

fn server(name: &str) -> Server {
    server_with_keys(name, &[LOOPBACK])
}

/// A copy of tests/fixtures/bus (with its code) whose functions report to
/// `sink`.
fn app(sink: &Sink) -> PathBuf {
    let dir = scratch("bus-app");
    std::fs::create_dir_all(dir.join("src")).unwrap();
    let handlers = fixture("events").join("src/handlers.py");
    std::fs::copy(handlers, dir.join("src/handlers.py")).unwrap();
    let toml = std::fs::read_to_string(fixture("bus").join("updraft.toml")).unwrap();
    assert!(toml.contains(FIXTURE_SINK) && toml.contains(FIXTURE_CODE));
    let toml = toml
        .replace(FIXTURE_SINK, &sink.url)
        .replace(FIXTURE_CODE, "code = \"src\"");
    std::fs::write(dir.join("updraft.toml"), toml).unwrap();
    dir
}

/// tests/event_bus/put_events.py MODE with `input` on stdin; its JSON output.
fn boto3(s: &Server, mode: &str, input: &Value) -> Value {
    let mut cmd = Command::new("python3");
    cmd.args(["tests/event_bus/put_events.py", mode])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    aws_env(&mut cmd, s);
    let mut child = cmd.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "put_events.py {mode}: {}\n{}",
        stdout(&out),
        stderr(&out)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The events `function` reported, in arrival order.
fn got(sink: &Sink, function: &str) -> Vec<Value> {
    sink.posts()
        .into_iter()
        .filter(|p| p["fn"] == function)
        .map(|p| p["event"].clone())
        .collect()
}

fn ids(events: &[Value]) -> BTreeSet<String> {
    events
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect()
}

/// Waits until `function` has reported every event of `want` (by id).
fn wait_for_events(sink: &Sink, function: &str, want: &BTreeSet<String>) {
    wait_for(&format!("{function} to get {want:?}"), DEADLINE, || {
        ids(&got(sink, function)).is_superset(want).then_some(())
    });
}

#[test]
fn events_reach_exactly_the_subscribers_whose_patterns_match() {
    require_boto3();
    let sink = Sink::start();
    let s = server("bus");
    s.deploy(&app(&sink));

    // 2026-12-02T01:02:03Z
    let time = 1_796_173_323;
    let order = |detail: &str| json!({"Source": "shop", "DetailType": "OrderPlaced", "Detail": detail, "EventBusName": "orders"});
    let mut first = order(r#"{"region": "us-east", "total": 42}"#);
    first["Resources"] = json!(["arn:aws:shop:::order/1"]);
    first["Time"] = json!(time);
    let mut nobody = order("{}");
    nobody["EventBusName"] = json!("nobody");
    let mut by_arn = order(r#"{"region": "eu-west", "total": 250.5}"#);
    by_arn["EventBusName"] = json!("arn:aws:events:us-east-1:000000000000:event-bus/orders");
    let mut other_source = order(r#"{"region": "eu-west", "total": 500}"#);
    other_source["Source"] = json!("warehouse");
    let mut no_source = order("{}");
    no_source.as_object_mut().unwrap().remove("Source");
    let entries = json!([
        first,                                            // 0: bus-shop only (not eu-, not > 100)
        other_source,                                     // 1: nobody (source)
        order("[1, 2]"),                                  // 2: MalformedDetail
        by_arn,                                           // 3: both
        no_source,                                        // 4: InvalidArgument
        nobody,                                           // 5: accepted, goes nowhere
        order(r#"{"region": "eu-north", "total": 100}"#), // 6: bus-shop only (numeric > is strict)
        order(r#"{"region": "us-west", "total": 500}"#),  // 7: bus-shop only (prefix)
    ]);
    let resp = boto3(&s, "put", &entries);
    assert_eq!(resp["FailedEntryCount"], 2, "{resp}");
    let results = resp["Entries"].as_array().unwrap();
    assert_eq!(results.len(), 8, "{resp}");
    assert_eq!(results[2]["ErrorCode"], "MalformedDetail", "{resp}");
    assert_eq!(results[4]["ErrorCode"], "InvalidArgument", "{resp}");
    assert!(
        results[4]["ErrorMessage"]
            .as_str()
            .unwrap()
            .contains("Source"),
        "{resp}"
    );
    let id = |i: usize| -> String {
        let r = &results[i];
        assert!(r.get("ErrorCode").is_none(), "entry {i}: {r}");
        let id = r["EventId"].as_str().unwrap().to_string();
        assert_eq!(id.len(), 36, "entry {i}: {r}");
        id
    };
    let (e0, e3, e6, e7) = (id(0), id(3), id(6), id(7));
    // Accepted, and delivered to nobody (the exact sets below).
    id(1);
    id(5);

    let shop: BTreeSet<String> = [&e0, &e3, &e6, &e7].map(|s| s.to_string()).into();
    let big_eu: BTreeSet<String> = [e3.clone()].into();
    wait_for_events(&sink, "bus-shop", &shop);
    wait_for_events(&sink, "bus-big-eu", &big_eu);

    // EventBridge's event, field by field and nothing else.
    let shop_events = got(&sink, "bus-shop");
    let ev0 = shop_events.iter().find(|e| e["id"] == e0.as_str()).unwrap();
    assert_eq!(
        *ev0,
        json!({
            "version": "0", "id": e0, "detail-type": "OrderPlaced", "source": "shop",
            "account": "000000000000", "time": "2026-12-02T01:02:03Z", "region": "us-east-1",
            "resources": ["arn:aws:shop:::order/1"], "detail": {"region": "us-east", "total": 42},
        })
    );
    // Both subscribers get the same event; without a Time it is the call's.
    let ev3 = shop_events.iter().find(|e| e["id"] == e3.as_str()).unwrap();
    let big3 = got(&sink, "bus-big-eu")
        .into_iter()
        .find(|e| e["id"] == e3.as_str());
    assert_eq!(big3.as_ref(), Some(ev3));
    assert_eq!(ev3["detail"], json!({"region": "eu-west", "total": 250.5}));
    assert_eq!(ev3["resources"], json!([]));
    let t = ev3["time"].as_str().unwrap();
    assert!(
        t.len() == 20 && t.ends_with('Z') && t.starts_with("20"),
        "{t}"
    );
    // Each delivery is its own asynchronous invocation with its own id.
    let run_ids: BTreeSet<String> = sink
        .posts()
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(run_ids.len(), sink.posts().len());

    // `updraft publish` (detail from a file), matching both. Each function
    // runs one event at a time (max_instances = 1), in the order its
    // events were claimed, and every event of the PutEvents call above was
    // claimed before this one was published: once both have this one, any
    // event of that call queued for the wrong function would have arrived.
    let file = s.data_dir.join("order.json");
    std::fs::write(&file, r#"{"region": "eu-central", "total": 101}"#).unwrap();
    let detail = format!("@{}", file.display());
    let out = s.ok(&[
        "publish",
        "orders",
        "--source",
        "shop",
        "--detail-type",
        "OrderPaid",
        "--detail",
        &detail,
    ]);
    let marker = out.trim().to_string();
    assert_eq!(marker.len(), 36, "{out:?}");
    let marker_set: BTreeSet<String> = [marker.clone()].into();
    wait_for_events(&sink, "bus-shop", &marker_set);
    wait_for_events(&sink, "bus-big-eu", &marker_set);
    let mut shop_all = shop.clone();
    shop_all.insert(marker.clone());
    assert_eq!(ids(&got(&sink, "bus-shop")), shop_all);
    assert_eq!(ids(&got(&sink, "bus-big-eu")), [e3, marker].into());
    assert_eq!(
        got(&sink, "bus-shop").len(),
        shop_all.len(),
        "each event once"
    );
    let paid = got(&sink, "bus-big-eu").pop().unwrap();
    assert_eq!(
        (&paid["source"], &paid["detail-type"], &paid["detail"]),
        (
            &json!("shop"),
            &json!("OrderPaid"),
            &json!({"region": "eu-central", "total": 101})
        )
    );

    // A bus nobody subscribes to still gives an id; refused events exit 2.
    let out = s.ok(&[
        "publish",
        "nobody",
        "--source",
        "shop",
        "--detail-type",
        "X",
    ]);
    assert_eq!(out.trim().len(), 36, "{out:?}");
    for (args, want) in [
        (
            [
                "orders",
                "--source",
                "shop",
                "--detail-type",
                "X",
                "--detail",
                "[1]",
            ],
            "--detail: expected a JSON object",
        ),
        (
            [
                "orders",
                "--source",
                "",
                "--detail-type",
                "X",
                "--detail",
                "{}",
            ],
            "Source",
        ),
        (
            [
                "no spaces",
                "--source",
                "shop",
                "--detail-type",
                "X",
                "--detail",
                "{}",
            ],
            "EventBusName",
        ),
    ] {
        let mut all = vec!["publish"];
        all.extend(args);
        let out = s.cli(&all);
        assert_eq!(out.status.code(), Some(2), "{all:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(want), "{all:?}: {}", stderr(&out));
        assert!(stdout(&out).is_empty(), "{all:?}: {}", stdout(&out));
    }
}

/// Reads one HTTP/1.1 response: status and the JSON body.
fn read_response(conn: std::net::TcpStream) -> (u16, Value) {
    let mut r = BufReader::new(conn);
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let status = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    let mut len = 0;
    loop {
        let mut h = String::new();
        r.read_line(&mut h).unwrap();
        if h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().unwrap();
            }
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).unwrap();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

#[test]
fn the_entry_point_speaks_eventbridges_errors_and_refuses_strangers_from_the_head() {
    require_boto3();
    let s = server("bus-errors");

    // Without valid credentials: refused from the head alone. The body is
    // announced and never sent, so an answer means it was not waited for.
    for (auth, status, error_type) in [
        ("", 401, "UnrecognizedClientException"),
        (
            "Authorization: Bearer AKUDWRONG:nope\r\n",
            403,
            "InvalidSignatureException",
        ),
    ] {
        let mut conn = std::net::TcpStream::connect(&s.addr).unwrap();
        conn.set_read_timeout(Some(DEADLINE)).unwrap();
        write!(
            conn,
            "POST / HTTP/1.1\r\nHost: {}\r\nX-Amz-Target: AWSEvents.PutEvents\r\n\
             Content-Type: application/x-amz-json-1.1\r\n{auth}Content-Length: 1048576\r\n\r\n",
            s.addr
        )
        .unwrap();
        let (got, body) = read_response(conn);
        assert_eq!(
            (got, &body["__type"]),
            (status, &json!(error_type)),
            "{body}"
        );
    }

    // boto3 with a wrong secret, and an operation Updraft does not implement.
    let bad = boto3(&s, "bad-secret", &Value::Null);
    assert_eq!(
        (&bad["code"], &bad["status"]),
        (&json!("InvalidSignatureException"), &json!(403)),
        "{bad}"
    );
    let unknown = boto3(&s, "list-rules", &Value::Null);
    assert_eq!(
        (&unknown["code"], &unknown["status"]),
        (&json!("UnknownOperationException"), &json!(400)),
        "{unknown}"
    );
    assert!(
        unknown["message"].as_str().unwrap().contains("ListRules"),
        "{unknown}"
    );

    // The request-level errors, in the same shape.
    let bearer = s.bearer();
    let post = |target: &str, body: &str| {
        let headers = [("authorization", bearer.as_str()), ("x-amz-target", target)];
        let (status, h, body) = http(
            "POST",
            &format!("{}/", s.endpoint),
            &headers,
            body.as_bytes().to_vec(),
        );
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(h["content-type"], "application/x-amz-json-1.1");
        (
            status,
            v["__type"].as_str().unwrap().to_string(),
            v["message"].to_string(),
        )
    };
    // Without X-Amz-Target, `POST /` is no AWS API's: the gateway's (a
    // manifest route on `/`; none here).
    let (status, _, body) = http(
        "POST",
        &format!("{}/", s.endpoint),
        &[("authorization", bearer.as_str())],
        b"{}".to_vec(),
    );
    assert_eq!(status, 404, "{}", String::from_utf8_lossy(&body));
    let eleven: Vec<Value> = (0..11)
        .map(|_| json!({"Source": "s", "DetailType": "t", "Detail": "{}"}))
        .collect();
    for (body, want) in [
        (json!({"Entries": eleven}).to_string(), "Entries"),
        (
            r#"{"Entries": [{"Source": 5}]}"#.to_string(),
            "Entries[0].Source",
        ),
        ("{}".to_string(), "Entries"),
        (
            r#"{"Entries": [{"Source": "s", "Time": "yesterday"}]}"#.to_string(),
            "Entries[0].Time",
        ),
    ] {
        let (status, ty, msg) = post("AWSEvents.PutEvents", &body);
        assert_eq!(
            (status, ty.as_str()),
            (400, "ValidationException"),
            "{body}: {msg}"
        );
        assert!(msg.contains(want), "{body}: {msg}");
    }
}
