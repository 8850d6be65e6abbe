//! Queue triggers end to end: a manifest's `queue` consumer gets Lambda's
//! SQS batches; `batchItemFailures` retries only the failed messages; a
//! poison message is received exactly `max_receive` times, then sits in the
//! dead-letter queue until a redrive; 5,000 messages sent through the SQS
//! API across a SIGKILL of the server are each processed; two servers on
//! one PostgreSQL share a queue and never fire a schedule tick twice.
//!
//! The consumer (tests/fixtures/events, `handlers.batch`) reports every
//! batch to an HTTP sink the test owns.

mod common;
use common::*;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The fixture reports to a sink on the host's loopback, which functions
/// reach only when the server allows it.
const LOOPBACK: (&str, &str) = ("UPDRAFT_ALLOW_FUNCTION_LOOPBACK", "true");

/// How many times each message body was delivered to `function`.
fn deliveries(sink: &Sink, function: &str) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for p in sink.posts().iter().filter(|p| p["fn"] == function) {
        for r in p["event"]["Records"].as_array().unwrap() {
            *seen
                .entry(r["body"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
    }
    seen
}

/// Sends `bodies` with SQS's SendMessageBatch (the JSON protocol) and
/// returns the bodies SQS accepted; Err if the server did not answer.
fn send_batch(
    endpoint: &str,
    bearer: &str,
    queue: &str,
    bodies: &[String],
) -> Result<Vec<String>, String> {
    let entries: Vec<Value> = bodies
        .iter()
        .enumerate()
        .map(|(i, b)| json!({ "Id": format!("m{i}"), "MessageBody": b }))
        .collect();
    let body = json!({
        "QueueUrl": format!("{endpoint}/000000000000/{queue}"),
        "Entries": entries,
    });
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let resp = client
        .post(format!("{endpoint}/"))
        .header("authorization", bearer)
        .header("x-amz-target", "AmazonSQS.SendMessageBatch")
        .header("content-type", "application/x-amz-json-1.0")
        .body(body.to_string())
        .send()
        .map_err(|e| e.to_string())?;
    let status = resp.status();
    let v: Value = resp.json().map_err(|e| e.to_string())?;
    if !status.is_success() {
        return Err(format!("{status}: {v}"));
    }
    Ok(v["Successful"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let i: usize = s["Id"].as_str().unwrap()[1..].parse().unwrap();
            bodies[i].clone()
        })
        .collect())
}

#[test]
fn poison_goes_to_the_dlq_after_max_receive_partial_failures_retry_alone_and_redrive_redelivers() {
    let sink = Sink::start();
    let dir = scratch("queue-poison");
    let app = dir.join("app");
    let server = Server::start_in(dir.join("data"), &[LOOPBACK]);
    write_event_app(
        &app,
        "q",
        &sink,
        &[EventFn {
            name: "worker",
            handler: "batch",
            trigger: "queue = { name = \"jobs\", batch_size = 10, max_receive = 3, visibility_timeout = \"10s\" }",
        }],
    );
    server.deploy(&app);
    let ls: Value = serde_json::from_str(&server.ok(&["ls", "--json"])).unwrap();
    assert_eq!(ls[0]["triggers"][0], "queue jobs", "{ls}");

    let mut bodies: Vec<String> = (0..18).map(|i| format!("{{\"n\":{i}}}")).collect();
    bodies.push("{\"case\":\"fail-once\"}".into());
    bodies.push("{\"case\":\"poison\"}".into());
    for b in &bodies {
        server.ok(&["queue", "send", "jobs", "--data", b]);
    }
    let letters = wait_for(
        "the poison message in the DLQ",
        Duration::from_secs(120),
        || {
            let v: Value =
                serde_json::from_str(&server.ok(&["queue", "dlq", "jobs", "--json"])).unwrap();
            (v.as_array().unwrap().len() == 1).then_some(v)
        },
    );
    assert_eq!(letters[0]["body"], "{\"case\":\"poison\"}", "{letters}");
    wait_until("the queue to drain", Duration::from_secs(30), || {
        let q: Value = serde_json::from_str(&server.ok(&["queue", "ls", "--json"])).unwrap();
        let jobs = q
            .as_array()
            .unwrap()
            .iter()
            .find(|q| q["name"] == "jobs")
            .unwrap()
            .clone();
        jobs["depth"] == 0 && jobs["in_flight"] == 0
    });
    // Every delivery is a receive: the poison was received exactly
    // max_receive times. (A batch still running when its visibility timeout
    // ends, behind a very slow cold start, is rightly delivered again: the
    // others are counted at least once.)
    let seen = deliveries(&sink, "worker");
    assert_eq!(
        seen["{\"case\":\"poison\"}"], 3,
        "max_receive = 3: {seen:?}"
    );
    assert!(seen["{\"case\":\"fail-once\"}"] >= 2, "{seen:?}");
    for b in &bodies[..18] {
        assert!(seen.contains_key(b), "{b} was delivered: {seen:?}");
    }
    // Only the failed item was retried: the messages that shared a batch
    // with the fail-once message's first delivery came once.
    let first_batch: Vec<String> = sink
        .posts()
        .iter()
        .filter(|p| p["fn"] == "worker")
        .map(|p| p["event"]["Records"].as_array().unwrap().clone())
        .find(|rs| {
            rs.iter().any(|r| {
                r["body"] == "{\"case\":\"fail-once\"}"
                    && r["attributes"]["ApproximateReceiveCount"] == "1"
            })
        })
        .unwrap()
        .iter()
        .map(|r| r["body"].as_str().unwrap().to_string())
        .filter(|b| !b.contains("fail-once") && !b.contains("poison"))
        .collect();
    for b in &first_batch {
        assert_eq!(
            seen[b], 1,
            "{b} shared a batch with a failed item: {seen:?}"
        );
    }
    // The batches are Lambda's SQS event.
    let post = sink
        .posts()
        .into_iter()
        .find(|p| p["fn"] == "worker")
        .unwrap();
    let r = &post["event"]["Records"][0];
    assert_eq!(r["eventSource"], "aws:sqs");
    assert_eq!(
        r["eventSourceARN"],
        "arn:aws:sqs:us-east-1:000000000000:jobs"
    );
    assert_eq!(r["awsRegion"], "us-east-1");
    assert_eq!(r["attributes"]["ApproximateReceiveCount"], "1");
    assert!(r["attributes"]["SentTimestamp"]
        .as_str()
        .unwrap()
        .parse::<u64>()
        .is_ok());
    assert_eq!(r["md5OfBody"].as_str().unwrap().len(), 32);
    assert_eq!(r["messageId"].as_str().unwrap().len(), 36);
    assert!(!r["receiptHandle"].as_str().unwrap().is_empty());

    // Redrive puts it back on `jobs`: three more receives, then the DLQ again.
    assert_eq!(server.ok(&["queue", "redrive", "jobs"]).trim(), "1");
    wait_until(
        "the redriven message back in the DLQ",
        Duration::from_secs(120),
        || {
            deliveries(&sink, "worker")["{\"case\":\"poison\"}"] == 6
                && serde_json::from_str::<Value>(&server.ok(&["queue", "dlq", "jobs", "--json"]))
                    .unwrap()
                    .as_array()
                    .unwrap()
                    .len()
                    == 1
        },
    );
    let usage: Value = serde_json::from_str(&server.ok(&["usage", "--json"])).unwrap();
    assert!(
        usage["functions"][0]["by_trigger"]["queue"]
            .as_u64()
            .unwrap()
            >= 7,
        "{usage}"
    );
}

#[test]
fn every_message_accepted_through_the_sqs_api_is_processed_across_a_sigkill() {
    const THREADS: usize = 4;
    const BATCHES: usize = 125; // × 10 messages × 4 threads = 5,000
    let sink = Sink::start();
    let dir = scratch("queue-sigkill");
    let app = dir.join("app");
    let mut server = Server::start_in(dir.join("data"), &[LOOPBACK]);
    write_event_app(
        &app,
        "bulk",
        &sink,
        &[EventFn {
            name: "drain",
            handler: "batch",
            trigger: "queue = { name = \"bulk\", batch_size = 10, visibility_timeout = \"5s\" }",
        }],
    );
    server.deploy(&app);
    let target = Arc::new(Mutex::new((server.endpoint.clone(), server.bearer())));
    let accepted = Arc::new(Mutex::new(HashSet::new()));
    let sent = Arc::new(AtomicUsize::new(0));
    let senders: Vec<_> = (0..THREADS)
        .map(|t| {
            let (target, accepted, sent) = (target.clone(), accepted.clone(), sent.clone());
            std::thread::spawn(move || {
                for k in 0..BATCHES {
                    let bodies: Vec<String> = (0..10)
                        .map(|i| format!("{{\"m\":\"{t}-{k}-{i}\"}}"))
                        .collect();
                    // A batch the server did not answer (it was being killed)
                    // is sent again; duplicates are fine (at least once).
                    let mut tries = 0;
                    loop {
                        let (endpoint, bearer) = target.lock().unwrap().clone();
                        match send_batch(&endpoint, &bearer, "bulk", &bodies) {
                            Ok(ok) => {
                                sent.fetch_add(ok.len(), Ordering::Relaxed);
                                accepted.lock().unwrap().extend(ok);
                                break;
                            }
                            Err(e) => {
                                tries += 1;
                                assert!(tries < 600, "the server never came back: {e}");
                                std::thread::sleep(Duration::from_millis(100));
                            }
                        }
                    }
                }
            })
        })
        .collect();
    wait_until("2,000 messages accepted", Duration::from_secs(120), || {
        sent.load(Ordering::Relaxed) >= 2000
    });
    server.kill9();
    assert!(
        sent.load(Ordering::Relaxed) < THREADS * BATCHES * 10,
        "the kill came too late"
    );
    server.restart();
    *target.lock().unwrap() = (server.endpoint.clone(), server.bearer());
    for s in senders {
        s.join().unwrap();
    }
    let accepted: HashSet<String> = accepted.lock().unwrap().clone();
    assert_eq!(accepted.len(), THREADS * BATCHES * 10);
    wait_until(
        "every accepted message processed",
        Duration::from_secs(300),
        || {
            let seen = deliveries(&sink, "drain");
            accepted.iter().all(|b| seen.contains_key(b))
        },
    );
}

#[test]
fn two_servers_on_one_postgresql_share_a_queue_and_fire_each_tick_once() {
    let Some(url) = fresh_postgres_database("q") else {
        return;
    };
    let env = [LOOPBACK, ("UPDRAFT_DATABASE_URL", url.as_str())];
    let dir = scratch("queue-two-servers");
    let a = Server::start_in(dir.join("a"), &env);
    let b = Server::start_in(dir.join("b"), &env);
    let sink = Sink::start();
    let app = dir.join("app");
    write_event_app(
        &app,
        "pair",
        &sink,
        &[
            EventFn {
                name: "drain",
                handler: "batch",
                trigger:
                    "queue = { name = \"shared\", batch_size = 10, visibility_timeout = \"10s\" }",
            },
            EventFn {
                name: "ticker",
                handler: "record",
                trigger: "schedule = { rate = \"1s\" }",
            },
        ],
    );
    // Code lives in each server's data directory: deploy to both (the
    // second deploy changes nothing in the shared store).
    a.deploy(&app);
    b.deploy(&app);

    let mut accepted = HashSet::new();
    for k in 0..200 {
        let s = if k % 2 == 0 { &a } else { &b };
        let bodies: Vec<String> = (0..10).map(|i| format!("{{\"m\":\"{k}-{i}\"}}")).collect();
        accepted.extend(send_batch(&s.endpoint, &s.bearer(), "shared", &bodies).unwrap());
    }
    assert_eq!(accepted.len(), 2000);
    wait_until("all 2,000 processed", Duration::from_secs(180), || {
        let seen = deliveries(&sink, "drain");
        accepted.iter().all(|b| seen.contains_key(b))
    });
    wait_until("10 ticks", Duration::from_secs(60), || {
        sink.posts().iter().filter(|p| p["fn"] == "ticker").count() >= 10
    });
    // Each due time fired as one event (a re-run keeps the event's id).
    let mut by_time: BTreeMap<String, HashSet<String>> = BTreeMap::new();
    for p in sink.posts().iter().filter(|p| p["fn"] == "ticker") {
        by_time
            .entry(p["event"]["time"].as_str().unwrap().to_string())
            .or_default()
            .insert(p["event"]["id"].as_str().unwrap().to_string());
    }
    for (t, ids) in &by_time {
        assert_eq!(ids.len(), 1, "tick {t} fired on both servers: {ids:?}");
    }
}

#[test]
fn event_source_mappings_through_boto3_are_the_same_consumers_as_manifest_triggers() {
    common::aws::require_boto3();
    let sink = Sink::start();
    let dir = scratch("queue-esm");
    let app = dir.join("app");
    let server = common::aws::server_with_keys("queue-esm-server", &[LOOPBACK]);
    write_event_app(
        &app,
        "esm",
        &sink,
        &[
            EventFn {
                name: "esm-worker",
                handler: "batch",
                trigger: "",
            },
            EventFn {
                name: "manifest-worker",
                handler: "batch",
                trigger: "queue = { name = \"manifest-q\" }",
            },
        ],
    );
    server.deploy(&app);
    let mut cmd = std::process::Command::new("python3");
    cmd.args(["tests/queue_trigger/test_esm.py", "-v"]);
    common::aws::aws_env(&mut cmd, &server);
    common::aws::run_suite("event source mappings with boto3", cmd);
    // The API-made mapping delivered Lambda's batches to the function.
    let seen = deliveries(&sink, "esm-worker");
    for i in 0..3 {
        assert!(seen.contains_key(&format!("{{\"esm\": {i}}}")), "{seen:?}");
    }
}
