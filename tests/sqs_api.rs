//! Durable queues through SQS's JSON protocol (SPEC §5) with the real
//! clients: the boto3 suite in tests/sqs_api/test_boto3.py (one test here per
//! class, each against its own server), the AWS CLI script
//! tests/sqs_api/test_awscli.sh, and the `updraft queue …` commands.
//!
//! Needs `python3` with boto3 and `aws` on PATH: `.ci/run` puts a venv with
//! both first on PATH (or `pip install boto3 awscli`).

mod common;
use common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, SystemTime};

use common::aws::{aws_env, require_aws_tools, run_suite, ACCESS_KEY, KEYS, SECRET_KEY};

fn server(name: &str) -> Server {
    Server::start_in(scratch(name), &KEYS)
}

/// Runs one class of the boto3 suite against a fresh server.
fn boto3_class(class: &str) {
    require_aws_tools("SQS API");
    let s = server(&format!("sqs-api-{}", class.to_lowercase()));
    let mut cmd = Command::new("python3");
    cmd.args(["tests/sqs_api/test_boto3.py", class, "-v"]);
    aws_env(&mut cmd, &s);
    run_suite(&format!("boto3 suite {class}"), cmd);
}

#[test]
fn boto3_queues() {
    boto3_class("QueuesTest");
}

#[test]
fn boto3_messages() {
    boto3_class("MessagesTest");
}

#[test]
fn boto3_redrive_policy() {
    boto3_class("RedriveTest");
}

#[test]
fn aws_cli_create_send_receive_delete() {
    require_aws_tools("SQS API");
    let s = server("sqs-api-cli");
    let mut cmd = Command::new("bash");
    cmd.arg("tests/sqs_api/test_awscli.sh");
    aws_env(&mut cmd, &s);
    run_suite("AWS CLI script", cmd);
}

/// An SQS call signed with the server's key (as an SDK signs it), answered
/// as (status, JSON body).
fn sqs(s: &Server, op: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
    let creds = updraft_auth::Credentials {
        access_key_id: ACCESS_KEY.into(),
        secret_access_key: SECRET_KEY.into(),
    };
    let url = format!("{}/", s.endpoint);
    let body = serde_json::to_vec(&body).unwrap();
    let mut h = http::HeaderMap::new();
    h.insert("x-amz-target", format!("AmazonSQS.{op}").parse().unwrap());
    h.insert(
        "content-type",
        "application/x-amz-json-1.0".parse().unwrap(),
    );
    h.insert(
        "amz-sdk-invocation-id",
        format!("{op}-{:?}", SystemTime::now()).parse().unwrap(),
    );
    updraft_auth::sign(
        &creds,
        "us-east-1",
        "POST",
        &url,
        &mut h,
        &body,
        SystemTime::now(),
    )
    .unwrap();
    let headers: Vec<(String, String)> = h
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_string()))
        .collect();
    let refs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let (status, _, out) = http("POST", &url, &refs, body);
    let v = serde_json::from_slice(&out).unwrap_or(serde_json::Value::Null);
    (status, v)
}

fn ok(s: &Server, op: &str, body: serde_json::Value) -> serde_json::Value {
    let (status, v) = sqs(s, op, body);
    assert_eq!(status, 200, "{op}: {v}");
    v
}

/// `updraft queue …` against queues made through the SQS API: they are the
/// same queues.
#[test]
fn queue_commands() {
    let s = server("sqs-cli-commands");
    let cli = |args: &[&str]| {
        s.cli_command(args)
            .env("UPDRAFT_ACCESS_KEY_ID", ACCESS_KEY)
            .env("UPDRAFT_SECRET_ACCESS_KEY", SECRET_KEY)
            .output()
            .unwrap()
    };
    let good = |args: &[&str]| {
        let out = cli(args);
        assert!(
            out.status.success(),
            "updraft {args:?}: {}{}",
            stdout(&out),
            stderr(&out)
        );
        stdout(&out)
    };
    ok(
        &s,
        "CreateQueue",
        serde_json::json!({"QueueName": "cli-dlq"}),
    );
    let policy = r#"{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:000000000000:cli-dlq","maxReceiveCount":"1"}"#;
    let url = ok(
        &s,
        "CreateQueue",
        serde_json::json!({"QueueName": "cli-jobs", "Attributes": {"RedrivePolicy": policy}}),
    )["QueueUrl"]
        .as_str()
        .unwrap()
        .to_string();

    let id = good(&[
        "queue",
        "send",
        "cli-jobs",
        "--data",
        r#"{"n": 1}"#,
        "--attr",
        "source=cli",
    ]);
    let id = id.trim();
    assert_eq!(id.len(), 36, "a message id: {id}");
    let table = good(&["queue", "ls"]);
    let row: Vec<&str> = table
        .lines()
        .find(|l| l.starts_with("cli-jobs "))
        .unwrap_or_else(|| panic!("{table}"))
        .split_whitespace()
        .collect();
    assert_eq!(row[1..3], ["1", "0"], "{table}");
    assert!(table.starts_with("NAME"), "{table}");
    assert!(table.contains("DEAD_LETTERS"), "{table}");

    // Received (max receive count 1) and not deleted: the next receive moves
    // it to cli-dlq.
    let got = ok(
        &s,
        "ReceiveMessage",
        serde_json::json!({"QueueUrl": url, "VisibilityTimeout": 0, "MessageAttributeNames": ["All"]}),
    );
    assert_eq!(got["Messages"][0]["MessageId"], id, "{got}");
    assert_eq!(got["Messages"][0]["Body"], r#"{"n": 1}"#);
    assert_eq!(
        got["Messages"][0]["MessageAttributes"]["source"]["StringValue"],
        "cli"
    );
    let none = ok(&s, "ReceiveMessage", serde_json::json!({"QueueUrl": url}));
    assert!(none.get("Messages").is_none(), "{none}");
    let listed: serde_json::Value =
        serde_json::from_str(&good(&["queue", "ls", "--json"])).unwrap();
    let jobs = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == "cli-jobs")
        .unwrap();
    assert_eq!(
        (jobs["depth"].as_i64(), jobs["dead_letters"].as_i64()),
        (Some(0), Some(1))
    );
    let dead = good(&["queue", "dlq", "cli-jobs"]);
    let fields: Vec<&str> = dead.trim_end().split('\t').collect();
    assert_eq!(fields.len(), 4, "{dead}");
    assert_eq!((fields[0], fields[1], fields[3]), (id, "0", r#"{"n": 1}"#));
    assert!(fields[2].ends_with('Z'), "an RFC 3339 time: {dead}");

    assert_eq!(good(&["queue", "redrive", "cli-jobs"]).trim(), "1");
    assert!(good(&["queue", "dlq", "cli-jobs"]).is_empty());
    assert_eq!(good(&["queue", "redrive", "cli-jobs"]).trim(), "0");
    good(&["queue", "send", "cli-jobs", "--data", "[2]"]);
    assert_eq!(good(&["queue", "purge", "cli-jobs"]).trim(), "2");

    // An unknown queue: exit 2 naming it; bad input likewise.
    let out = cli(&["queue", "send", "no-such-queue", "--data", "{}"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no queue named no-such-queue"),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).is_empty());
    let out = cli(&["queue", "send", "cli-jobs", "--data", "{not json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--data: expected JSON"),
        "{}",
        stderr(&out)
    );
    let big = format!("\"{}\"", "x".repeat(1_048_576));
    let file = s.data_dir.join("big.json");
    std::fs::write(&file, big).unwrap();
    let out = cli(&[
        "queue",
        "send",
        "cli-jobs",
        "--data",
        &format!("@{}", file.display()),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("1048576"), "{}", stderr(&out));
    let out = cli(&["queue", "dlq", "no-such-queue"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no queue named no-such-queue"),
        "{}",
        stderr(&out)
    );
}

/// A stranger's SQS call is refused from its head, in SQS's shape, before
/// its body is read; `POST /` without X-Amz-Target is not SQS's.
#[test]
fn unauthenticated_sqs_requests_are_refused_before_the_body_is_read() {
    let s = server("sqs-unauthenticated");
    const BODY_BYTES: u64 = 64 * 1024 * 1024;
    let stream = TcpStream::connect(&s.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut w = stream.try_clone().unwrap();
    let head = format!(
        "POST / HTTP/1.1\r\nHost: {}\r\nX-Amz-Target: AmazonSQS.SendMessage\r\n\
         Content-Type: application/x-amz-json-1.0\r\nContent-Length: {BODY_BYTES}\r\n\r\n",
        s.addr
    );
    w.write_all(head.as_bytes()).unwrap();
    let writer = std::thread::spawn(move || {
        let chunk = vec![b'x'; 1 << 20];
        let mut sent = 0u64;
        while sent < BODY_BYTES && w.write_all(&chunk).is_ok() {
            sent += chunk.len() as u64;
        }
        sent
    });
    let mut r = BufReader::new(stream);
    let mut status_line = String::new();
    r.read_line(&mut status_line).unwrap();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        if line.trim().is_empty() {
            break;
        }
        headers.push(line.trim().to_ascii_lowercase());
    }
    let length: usize = headers
        .iter()
        .find_map(|h| h.strip_prefix("content-length: "))
        .and_then(|v| v.parse().ok())
        .unwrap();
    let mut body = vec![0; length];
    r.read_exact(&mut body).unwrap();
    let _ = r.read_to_end(&mut Vec::new());
    let taken = writer.join().unwrap();
    assert!(status_line.contains(" 403 "), "{status_line}");
    assert!(
        headers.contains(&"x-amzn-query-error: accessdenied;sender".to_string()),
        "{headers:?}"
    );
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["__type"], "com.amazonaws.sqs#AccessDenied", "{v}");
    assert!(
        taken < BODY_BYTES / 4,
        "the server took {taken} bytes of the body"
    );

    // Without X-Amz-Target, `POST /` is the gateway's (no manifest route here).
    let (status, headers, _) = http("POST", &format!("{}/", s.endpoint), &[], b"{}".to_vec());
    assert_eq!(status, 404);
    assert!(!headers.contains_key("x-amzn-query-error"), "{headers:?}");
    // An AWS JSON target Updraft does not speak: the JSON protocol's error.
    let (status, _, body) = http(
        "POST",
        &format!("{}/", s.endpoint),
        &[
            ("x-amz-target", "DynamoDB_20120810.ListTables"),
            ("authorization", &s_bearer()),
        ],
        b"{}".to_vec(),
    );
    assert_eq!(status, 400);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["__type"], "UnknownOperationException");
    assert!(v["message"]
        .as_str()
        .unwrap()
        .contains("DynamoDB_20120810.ListTables"));
}

fn s_bearer() -> String {
    format!("Bearer {ACCESS_KEY}:{SECRET_KEY}")
}
