//! `/metrics` end to end: after a known sequence of invocations (3 cold
//! starts, 5 warm, 2 errors, 1 throttle, 1 dead letter) every series holds
//! exactly what happened, and the whole scrape parses with the Prometheus
//! text parser of the `prometheus-client` PyPI package (scripts/setup puts
//! it in the tests' venv). Without credentials the scrape is refused unless
//! the server runs with `--metrics-public`.

mod common;
use common::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

const HANDLERS: &str = "\
def ok(event, context):
    return {\"ok\": True}

def fail(event, context):
    raise RuntimeError(\"asked to fail\")
";

/// m-ok and m-two succeed, m-fail raises, m-zero is throttled (reserved
/// concurrency 0, set through the Lambda API).
fn write_app(dir: &std::path::Path) {
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(dir.join("src/handlers.py"), HANDLERS).unwrap();
    let mut toml = String::from("[app]\nname = \"metrics\"\n");
    for (name, handler) in [
        ("m-ok", "ok"),
        ("m-two", "ok"),
        ("m-fail", "fail"),
        ("m-zero", "ok"),
    ] {
        toml.push_str(&format!(
            "\n[functions.{name}]\nruntime = \"python3\"\nhandler = \"handlers.{handler}\"\ncode = \"src\"\n"
        ));
    }
    std::fs::write(dir.join("updraft.toml"), toml).unwrap();
}

fn scrape(server: &Server, auth: Option<&str>) -> (u16, String, String) {
    let headers: Vec<(&str, &str)> = auth.map(|a| ("authorization", a)).into_iter().collect();
    let (status, h, body) = http(
        "GET",
        &format!("{}/metrics", server.endpoint),
        &headers,
        vec![],
    );
    let ct = h
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, ct, String::from_utf8(body).unwrap())
}

/// Every sample of a scrape as `name{k="v",…}` (labels sorted) → value,
/// and every family's type, read by `prometheus_client.parser`.
struct Parsed {
    samples: BTreeMap<String, f64>,
    types: BTreeMap<String, String>,
}

impl Parsed {
    fn get(&self, key: &str) -> Option<f64> {
        self.samples.get(key).copied()
    }

    /// The sample, which must be there.
    fn at(&self, key: &str) -> f64 {
        self.get(key)
            .unwrap_or_else(|| panic!("no sample {key}; samples: {:#?}", self.samples))
    }

    /// Samples of family sample `name`, whatever their labels.
    fn named(&self, name: &str) -> BTreeMap<&str, f64> {
        self.samples
            .iter()
            .filter(|(k, _)| k.split('{').next() == Some(name))
            .map(|(k, v)| (k.as_str(), *v))
            .collect()
    }
}

const PARSER: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = {"types": {}, "samples": []}
for fam in text_string_to_metric_families(sys.stdin.read()):
    out["types"][fam.name] = fam.type
    for s in fam.samples:
        out["samples"].append([s.name, s.labels, s.value])
print(json.dumps(out))
"#;

/// Parses with the real parser; None when it is not installed here.
fn parse(text: &str) -> Option<Parsed> {
    let has_parser = Command::new("python3")
        .args(["-c", "import prometheus_client.parser"])
        .status()
        .is_ok_and(|s| s.success());
    if !require(
        has_parser,
        "python3 with prometheus_client (scripts/setup installs it in the venv)",
    ) {
        return None;
    }
    let mut child = Command::new("python3")
        .args(["-c", PARSER])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the Prometheus parser refused the scrape: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut samples = BTreeMap::new();
    for s in v["samples"].as_array().unwrap() {
        let labels: BTreeMap<&str, &str> = s[1]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str().unwrap()))
            .collect();
        let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
        let key = format!("{}{{{}}}", s[0].as_str().unwrap(), labels.join(","));
        let prev = samples.insert(key.clone(), s[2].as_f64().unwrap());
        assert!(prev.is_none(), "sample {key} twice");
    }
    let types = v["types"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, t)| (k.clone(), t.as_str().unwrap().to_string()))
        .collect();
    Some(Parsed { samples, types })
}

/// GET argv[1] signed with SigV4 (argv[2], argv[3]); prints the status and body.
const SIGNED_GET: &str = r#"
import sys, urllib.request, urllib.error
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
url, key, secret = sys.argv[1:4]
req = AWSRequest(method="GET", url=url)
SigV4Auth(Credentials(key, secret), "lambda", "us-east-1").add_auth(req)
try:
    r = urllib.request.urlopen(urllib.request.Request(url, headers=dict(req.headers.items())))
    print(r.status)
    sys.stdout.write(r.read().decode())
except urllib.error.HTTPError as e:
    print(e.code)
    sys.stdout.write(e.read().decode())
"#;

fn lambda_api(server: &Server, method: &str, path: &str, body: Value) -> u16 {
    let bearer = server.bearer();
    let (status, _, body) = http(
        method,
        &format!("{}{path}", server.endpoint),
        &[("authorization", &bearer)],
        body.to_string().into_bytes(),
    );
    assert!(
        status < 300,
        "{method} {path}: {status} {}",
        String::from_utf8_lossy(&body)
    );
    status
}

#[test]
fn a_known_sequence_shows_exactly_in_every_series() {
    let server = Server::start_in(scratch("metrics"), &[]);
    let app = scratch("metrics-app");
    write_app(&app);
    let deployed = server.deploy(&app);
    let version = |name: &str| -> String {
        deployed
            .lines()
            .find_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.first() == Some(&name)).then(|| f[1].to_string())
            })
            .unwrap_or_else(|| panic!("{name} not in the deploy output: {deployed}"))
    };
    let (v_ok, v_two, v_fail, v_zero) = (
        version("m-ok"),
        version("m-two"),
        version("m-fail"),
        version("m-zero"),
    );
    lambda_api(
        &server,
        "PUT",
        "/2017-10-31/functions/m-zero/concurrency",
        json!({ "ReservedConcurrentExecutions": 0 }),
    );
    lambda_api(
        &server,
        "PUT",
        "/2019-09-25/functions/m-fail/event-invoke-config",
        json!({ "MaximumRetryAttempts": 0 }),
    );

    // m-ok: 1 cold + 4 warm; m-two: 1 cold; m-fail: 1 cold error, then an
    // asynchronous run (warm, an error, no retries) that becomes a dead letter.
    for _ in 0..5 {
        server.ok(&["invoke", "m-ok"]);
    }
    server.ok(&["invoke", "m-two"]);
    let out = server.cli(&["invoke", "m-fail"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let out = server.cli(&["invoke", "m-zero"]);
    assert_eq!(out.status.code(), Some(2), "throttled: {}", stderr(&out));
    assert!(
        stderr(&out).contains("TooManyRequests") || stderr(&out).contains("429"),
        "{}",
        stderr(&out)
    );
    server.ok(&["invoke", "m-fail", "--async"]);
    wait_until("the dead letter", Duration::from_secs(60), || {
        let v: Value = serde_json::from_str(&server.ok(&["dlq", "m-fail", "--json"])).unwrap();
        v.as_array().unwrap().len() == 1
    });
    // An instance goes back to idle as its invocation ends.
    let bearer = server.bearer();
    let idle = |f: &str| format!("updraft_instances{{function=\"{f}\",state=\"idle\"}} 1\n");
    wait_until(
        "every started instance idle",
        Duration::from_secs(30),
        || {
            let (_, _, text) = scrape(&server, Some(&bearer));
            ["m-ok", "m-two", "m-fail"]
                .iter()
                .all(|f| text.contains(&idle(f)))
        },
    );

    let (status, content_type, text) = scrape(&server, Some(&bearer));
    assert_eq!(status, 200, "{text}");
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    let Some(m) = parse(&text) else { return };

    // Invocations by function, version, trigger and outcome: nothing else.
    let inv = |f: &str, v: &str, trigger: &str, outcome: &str| {
        format!(
            "updraft_invocations_total{{function=\"{f}\",outcome=\"{outcome}\",trigger=\"{trigger}\",version=\"{v}\"}}"
        )
    };
    let want: BTreeMap<String, f64> = [
        (inv("m-ok", &v_ok, "invoke", "success"), 5.0),
        (inv("m-two", &v_two, "invoke", "success"), 1.0),
        (inv("m-fail", &v_fail, "invoke", "error"), 1.0),
        (inv("m-fail", &v_fail, "event", "error"), 1.0),
        (inv("m-zero", &v_zero, "invoke", "throttled"), 1.0),
    ]
    .into_iter()
    .collect();
    let got: BTreeMap<String, f64> = m
        .named("updraft_invocations_total")
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    assert_eq!(got, want);

    let errors = m.named("updraft_errors_total");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(
        m.at(&format!(
            "updraft_errors_total{{function=\"m-fail\",outcome=\"error\",version=\"{v_fail}\"}}"
        )),
        2.0
    );
    let starts = |f: &str, v: &str, s: &str| {
        format!("updraft_starts_total{{function=\"{f}\",start=\"{s}\",version=\"{v}\"}}")
    };
    let got = m.named("updraft_starts_total");
    assert_eq!(got.len(), 5, "{got:?}");
    assert_eq!(m.at(&starts("m-ok", &v_ok, "cold")), 1.0);
    assert_eq!(m.at(&starts("m-ok", &v_ok, "warm")), 4.0);
    assert_eq!(m.at(&starts("m-two", &v_two, "cold")), 1.0);
    assert_eq!(m.at(&starts("m-fail", &v_fail, "cold")), 1.0);
    assert_eq!(m.at(&starts("m-fail", &v_fail, "warm")), 1.0);
    assert_eq!(got.values().sum::<f64>(), 8.0, "3 cold + 5 warm");
    let throttles = m.named("updraft_throttles_total");
    assert_eq!(
        throttles.into_iter().collect::<Vec<_>>(),
        [(
            format!(
                "updraft_throttles_total{{function=\"m-zero\",trigger=\"invoke\",version=\"{v_zero}\"}}"
            )
            .as_str(),
            1.0
        )]
    );

    // Histograms: one observation per run (throttles none), cumulative
    // buckets ending at +Inf = count; init only for the cold starts.
    for (f, v, runs, colds) in [
        ("m-ok", &v_ok, 5.0, 1.0),
        ("m-two", &v_two, 1.0, 1.0),
        ("m-fail", &v_fail, 2.0, 1.0),
    ] {
        let l = format!("function=\"{f}\",version=\"{v}\"");
        for (h, n) in [
            ("updraft_invocation_duration_seconds", runs),
            ("updraft_init_duration_seconds", colds),
        ] {
            assert_eq!(m.at(&format!("{h}_count{{{l}}}")), n, "{h} {f}");
            let inf = format!("{h}_bucket{{function=\"{f}\",le=\"+Inf\",version=\"{v}\"}}");
            assert_eq!(m.at(&inf), n);
            assert!(m.at(&format!("{h}_sum{{{l}}}")) > 0.0, "{h} {f}");
            let buckets: Vec<f64> = m
                .named(&format!("{h}_bucket"))
                .into_iter()
                .filter(|(k, _)| k.contains(&format!("function=\"{f}\"")))
                .map(|(_, v)| v)
                .collect();
            assert_eq!(buckets.len(), 17, "16 bounds and +Inf");
        }
    }
    assert!(m
        .named("updraft_invocation_duration_seconds_count")
        .keys()
        .all(|k| !k.contains("m-zero")));

    // Billed GB-seconds: what `usage` bills, per function.
    let usage: Value = serde_json::from_str(&server.ok(&["usage", "--json"])).unwrap();
    for f in ["m-ok", "m-two", "m-fail"] {
        let u = usage["functions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["name"] == f)
            .unwrap_or_else(|| panic!("{f} in {usage}"));
        let v = version(f);
        let got = m.at(&format!(
            "updraft_billed_gb_seconds_total{{function=\"{f}\",version=\"{v}\"}}"
        ));
        let billed = u["billed_ms"].as_f64().unwrap();
        assert!(
            (got - billed / 1000.0 * 128.0 / 1024.0).abs() < 1e-9,
            "{f}: {got} vs {u}"
        );
    }

    // Gauges read at scrape time.
    for f in ["m-ok", "m-two", "m-fail"] {
        for state in ["live", "idle"] {
            let key = format!("updraft_instances{{function=\"{f}\",state=\"{state}\"}}");
            assert_eq!(m.at(&key), 1.0, "{key}");
        }
    }
    assert_eq!(
        m.at("updraft_instances{function=\"m-zero\",state=\"live\"}"),
        0.0
    );
    assert_eq!(
        m.named("updraft_dead_letters")
            .into_iter()
            .collect::<Vec<_>>(),
        [("updraft_dead_letters{function=\"m-fail\"}", 1.0)]
    );
    assert!(m.named("updraft_async_events").is_empty(), "none waiting");

    // The server's own process.
    assert!(m.at("process_resident_memory_bytes{}") > 1e6);
    assert!(m.at("process_open_fds{}") > 3.0);
    assert!(m.at("process_cpu_seconds_total{}") > 0.0);
    let start = m.at("process_start_time_seconds{}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        start > now - 600.0 && start <= now + 1.0,
        "{start} vs {now}"
    );

    for (family, t) in [
        ("updraft_invocations", "counter"),
        ("updraft_invocation_duration_seconds", "histogram"),
        ("updraft_init_duration_seconds", "histogram"),
        ("updraft_billed_gb_seconds", "counter"),
        ("updraft_instances", "gauge"),
        ("updraft_dead_letters", "gauge"),
        ("process_cpu_seconds", "counter"),
    ] {
        assert_eq!(m.types.get(family).map(String::as_str), Some(t), "{family}");
    }
    assert!(!text.contains("request_id"), "no unbounded label");
}

#[test]
fn queue_depths_show_at_scrape_time() {
    let server = Server::start_in(scratch("metrics-queue"), &[]);
    let bearer = server.bearer();
    let sqs = |target: &str, body: Value| {
        let (status, _, body) = http(
            "POST",
            &format!("{}/", server.endpoint),
            &[
                ("authorization", &bearer),
                ("x-amz-target", &format!("AmazonSQS.{target}")),
                ("content-type", "application/x-amz-json-1.0"),
            ],
            body.to_string().into_bytes(),
        );
        assert_eq!(status, 200, "{target}: {}", String::from_utf8_lossy(&body));
        serde_json::from_slice::<Value>(&body).unwrap()
    };
    let url = sqs("CreateQueue", json!({ "QueueName": "jobs" }))["QueueUrl"]
        .as_str()
        .unwrap()
        .to_string();
    for body in ["a", "b"] {
        sqs(
            "SendMessage",
            json!({ "QueueUrl": url, "MessageBody": body }),
        );
    }
    sqs(
        "SendMessage",
        json!({ "QueueUrl": url, "MessageBody": "later", "DelaySeconds": 900 }),
    );
    let got = sqs(
        "ReceiveMessage",
        json!({ "QueueUrl": url, "MaxNumberOfMessages": 1, "VisibilityTimeout": 900 }),
    );
    assert_eq!(got["Messages"].as_array().unwrap().len(), 1, "{got}");

    let (status, _, text) = scrape(&server, Some(&bearer));
    assert_eq!(status, 200, "{text}");
    let Some(m) = parse(&text) else { return };
    for (state, n) in [("visible", 1.0), ("in_flight", 1.0), ("delayed", 1.0)] {
        assert_eq!(
            m.at(&format!(
                "updraft_queue_messages{{queue=\"jobs\",state=\"{state}\"}}"
            )),
            n,
            "{state}"
        );
    }
    assert_eq!(m.at("updraft_queue_dead_letters{queue=\"jobs\"}"), 0.0);
    let age = m.at("updraft_queue_oldest_age_seconds{queue=\"jobs\"}");
    assert!((0.0..600.0).contains(&age), "{age}");
}

#[test]
fn a_scrape_needs_the_admin_credentials_unless_public() {
    let server = Server::start_in(scratch("metrics-auth"), &[]);
    let (status, _, body) = scrape(&server, None);
    assert_eq!(status, 401, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert!(v["message"].as_str().is_some(), "{body}");
    let (status, _, body) = scrape(&server, Some("Bearer AKIDWRONG:nope"));
    assert_eq!(status, 403, "{body}");
    assert!(!body.contains("updraft_"), "{body}");
    let (status, _, body) = scrape(&server, Some(&server.bearer()));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("# TYPE process_open_fds gauge"), "{body}");
    // SigV4 (service lambda), as botocore signs.
    aws::require_boto3();
    let bearer = server.bearer();
    let (key, secret) = bearer["Bearer ".len()..].split_once(':').unwrap();
    let out = Command::new("python3")
        .args([
            "-c",
            SIGNED_GET,
            &format!("{}/metrics", server.endpoint),
            key,
            secret,
        ])
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    assert!(text.starts_with("200\n"), "{text}");
    assert!(text.contains("# TYPE process_open_fds gauge"), "{text}");

    let public = Server::start_with(scratch("metrics-public"), &[], &["--metrics-public"]);
    let (status, content_type, body) = scrape(&public, None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    assert!(body.contains("# TYPE process_open_fds gauge"), "{body}");
    // Only /metrics is opened: the control API still wants credentials.
    let (status, body) = get(&format!("{}/api/v1/functions", public.endpoint));
    assert_eq!(status, 401, "{body}");
}

#[test]
fn no_metrics_serves_none() {
    let server = Server::start_with(scratch("metrics-off"), &[], &["--no-metrics"]);
    let (status, _, body) = scrape(&server, Some(&server.bearer()));
    assert_eq!(status, 404, "{body}");
    assert!(!body.contains("updraft_"), "{body}");
}
