//! `updraft logs` filters and `updraft usage --by day` against the real
//! binary: each filter selects exactly the lines it names, and usage totals
//! match the invocations made and the formulas in docs/reference/cost.md.

mod common;
use common::*;
use serde_json::Value;
use std::io::BufRead;
use std::path::PathBuf;
use std::time::Duration;

const TALK: &str = r#"import logging

logger = logging.getLogger()
logger.setLevel(logging.DEBUG)


def handler(event, context):
    tag = event["tag"]
    print(f"plain {tag}")
    logger.debug(f"debug {tag}")
    logger.warning(f"warn {tag}")
    logger.error(f"Needle {tag}")
    if event.get("fail"):
        raise ValueError(f"failed {tag}")
    return {"rid": context.aws_request_id}
"#;

/// An app `logsapp` with two functions, `talk` and `other`, sharing TALK.
fn write_app(name: &str) -> PathBuf {
    let dir = scratch(name);
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(dir.join("src/talk.py"), TALK).unwrap();
    std::fs::write(
        dir.join("updraft.toml"),
        r#"[app]
name = "logsapp"

[functions.talk]
runtime = "python3"
handler = "talk.handler"
code = "src"

[functions.other]
runtime = "python3"
handler = "talk.handler"
code = "src"
"#,
    )
    .unwrap();
    dir
}

/// Invokes `name` (at `qualifier`) with `tag`; returns its request id.
fn talk(s: &Server, name: &str, qualifier: &str, tag: &str) -> String {
    let payload = format!(r#"{{"tag":"{tag}"}}"#);
    let out = s.ok(&[
        "invoke",
        name,
        "--payload",
        &payload,
        "--qualifier",
        qualifier,
    ]);
    let v: Value = serde_json::from_str(&out).unwrap();
    v["rid"].as_str().unwrap().to_string()
}

/// `updraft logs ARGS --json`, parsed.
fn json_lines(s: &Server, args: &[&str]) -> Vec<Value> {
    let mut all = args.to_vec();
    all.push("--json");
    s.ok(&all)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn texts(lines: &[Value]) -> Vec<String> {
    lines
        .iter()
        .map(|l| l["text"].as_str().unwrap().to_string())
        .collect()
}

/// The texts' user lines (START/END/REPORT aside) in order, their
/// `[LEVEL]\tTIME\tRID\t` prefix cut off.
fn messages(lines: &[Value]) -> Vec<String> {
    texts(lines)
        .into_iter()
        .filter(|t| {
            !["START ", "END ", "REPORT "]
                .iter()
                .any(|p| t.starts_with(p))
        })
        .map(|t| match t.strip_prefix('[') {
            Some(_) => t.rsplit('\t').next().unwrap().to_string(),
            None => t,
        })
        .collect()
}

fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

#[test]
fn each_logs_filter_selects_its_lines() {
    let s = Server::start("logs-filters");
    let dir = write_app("logs-filters");
    s.deploy(&dir);
    let rid_a = talk(&s, "talk", "1", "a");
    talk(&s, "other", "1", "o");
    let between = now_rfc3339();
    // A second published version of talk.
    std::fs::write(dir.join("src/talk.py"), format!("{TALK}\n# v2\n")).unwrap();
    s.deploy(&dir);
    let rid_b = talk(&s, "talk", "2", "b");

    let all = json_lines(&s, &["logs", "talk"]);
    for l in &all {
        assert_eq!(l["function"], "talk", "{l}");
        for key in ["time", "requestId", "text", "version", "level"] {
            assert!(l.get(key).is_some(), "{key} missing in {l}");
        }
    }
    let want_all: Vec<String> = ["plain a", "debug a", "warn a", "Needle a"]
        .iter()
        .chain(["plain b", "debug b", "warn b", "Needle b"].iter())
        .map(|t| t.to_string())
        .collect();
    assert_eq!(messages(&all), want_all);
    let warn_line = all
        .iter()
        .find(|l| l["text"].as_str().unwrap().ends_with("warn a"))
        .unwrap();
    assert_eq!(warn_line["level"], "WARN");
    assert_eq!(warn_line["version"], "1");
    let start = all
        .iter()
        .find(|l| l["text"].as_str().unwrap().starts_with("START "))
        .unwrap();
    assert_eq!(start["level"], Value::Null, "START carries no level");

    // --version
    let v2 = json_lines(&s, &["logs", "talk", "--version", "2"]);
    assert_eq!(messages(&v2), ["plain b", "debug b", "warn b", "Needle b"]);
    assert!(v2.iter().all(|l| l["requestId"] == rid_b.as_str()));

    // --request-id
    let a = json_lines(&s, &["logs", "talk", "--request-id", &rid_a]);
    assert_eq!(messages(&a), ["plain a", "debug a", "warn a", "Needle a"]);
    assert!(texts(&a).iter().any(|t| t.starts_with("REPORT ")));

    // --level: that level and above; lines without a level are left out.
    let warn = json_lines(&s, &["logs", "talk", "--level", "warn"]);
    assert_eq!(
        messages(&warn),
        ["warn a", "Needle a", "warn b", "Needle b"]
    );
    assert_eq!(texts(&warn).len(), 4, "{warn:?}");

    // --filter: a case-sensitive substring.
    let needle = json_lines(&s, &["logs", "talk", "--filter", "Needle"]);
    assert_eq!(messages(&needle), ["Needle a", "Needle b"]);
    assert!(json_lines(&s, &["logs", "talk", "--filter", "needle"]).is_empty());
    let grep = json_lines(&s, &["logs", "talk", "--grep", "Needle"]);
    assert_eq!(
        messages(&grep),
        ["Needle a", "Needle b"],
        "--grep is --filter"
    );

    // --since / --until with an RFC 3339 time; durations too.
    let before = json_lines(&s, &["logs", "talk", "--until", &between]);
    assert_eq!(
        messages(&before),
        ["plain a", "debug a", "warn a", "Needle a"]
    );
    let after = json_lines(&s, &["logs", "talk", "--since", &between]);
    assert_eq!(
        messages(&after),
        ["plain b", "debug b", "warn b", "Needle b"]
    );
    assert!(json_lines(&s, &["logs", "talk", "--until", "1h"]).is_empty());

    // --app: every function of the app, the function's name in each line.
    let app = s.ok(&["logs", "--app", "logsapp", "--filter", "plain"]);
    let rows: Vec<Vec<&str>> = app.lines().map(|l| l.split('\t').collect()).collect();
    let got: Vec<(&str, &str)> = rows.iter().map(|r| (r[1], r[3])).collect();
    assert_eq!(
        got,
        [
            ("talk", "plain a"),
            ("other", "plain o"),
            ("talk", "plain b")
        ]
    );
    let combined = json_lines(
        &s,
        &[
            "logs",
            "--app",
            "logsapp",
            "--version",
            "1",
            "--level",
            "ERROR",
        ],
    );
    assert_eq!(messages(&combined), ["Needle a", "Needle o"]);

    // Bad input names the flag; an unknown app is exit 1.
    let bad = s.cli(&["logs", "talk", "--level", "loud"]);
    assert_ne!(bad.status.code(), Some(0));
    assert!(stderr(&bad).contains("--level"), "{}", stderr(&bad));
    let bad = s.cli(&["logs", "talk", "--until", "yesterday"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        stderr(&bad).contains("--until") && stderr(&bad).contains("RFC 3339"),
        "{}",
        stderr(&bad)
    );
    let none = s.cli(&["logs", "--app", "nosuch"]);
    assert_eq!(none.status.code(), Some(1));
    assert!(
        stderr(&none).contains("no app named nosuch"),
        "{}",
        stderr(&none)
    );
}

#[test]
fn logs_follow_streams_filtered_lines() {
    let s = Server::start("logs-follow");
    s.deploy(&write_app("logs-follow"));
    talk(&s, "talk", "$LATEST", "early");
    let mut child = s
        .cli_command(&["logs", "talk", "--follow", "--filter", "Needle", "--json"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                return;
            }
        }
    });
    let next = || -> Value {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("logs --follow printed nothing");
        serde_json::from_str(&line).unwrap()
    };
    assert!(next()["text"].as_str().unwrap().ends_with("Needle early"));
    // A line written after the command started arrives while it runs.
    talk(&s, "talk", "$LATEST", "late");
    assert!(next()["text"].as_str().unwrap().ends_with("Needle late"));
    assert_eq!(child.try_wait().unwrap(), None, "--follow keeps running");
    child.kill().unwrap();
    child.wait().unwrap();
}

/// `Billed Duration: N ms` of the request's REPORT line.
fn billed_ms(s: &Server, rid: &str) -> u64 {
    let report = s.ok(&["logs", "talk", "--request-id", rid, "--filter", "REPORT"]);
    let text = report.lines().next().unwrap();
    let after = text.split("Billed Duration: ").nth(1).unwrap();
    after.split(' ').next().unwrap().parse().unwrap()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 + 1e-6 * b.abs()
}

/// The documented formulas (docs/reference/cost.md) hold for a row.
fn check_formulas(f: &Value) {
    let n = |k: &str| f[k].as_f64().unwrap_or_else(|| panic!("{k} in {f}"));
    let gb_seconds = n("billed_ms") / 1000.0 * n("memory_mb") / 1024.0;
    assert!(close(n("gb_seconds"), gb_seconds), "{f}");
    let requests = n("invocations") / 1e6 * 0.20;
    let compute = gb_seconds * 0.0000166667;
    assert!(close(n("requests_cost_usd"), requests), "{f}");
    assert!(close(n("compute_cost_usd"), compute), "{f}");
    assert!(close(n("cost_usd"), requests + compute), "{f}");
    let always_on = n("memory_mb") / 1024.0 * n("period_hours") * 0.0102;
    assert!(close(n("always_on_usd"), always_on), "{f}");
    let utilisation = n("billed_ms") / (n("period_hours") * 3_600_000.0);
    assert!(close(n("utilisation"), utilisation), "{f}");
    assert!(
        close(
            n("break_even_utilisation"),
            utilisation * always_on / (requests + compute)
        ),
        "{f}"
    );
}

fn parse_time(t: &Value) -> f64 {
    let t = humantime::parse_rfc3339(t.as_str().unwrap()).unwrap();
    t.duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[test]
fn usage_by_day_matches_the_invocations_and_the_formulas() {
    let s = Server::start("usage-days");
    s.deploy(&write_app("usage-days"));
    let rids: Vec<String> = (0..3)
        .map(|i| talk(&s, "talk", "$LATEST", &format!("u{i}")))
        .collect();
    let failed = s.cli(&["invoke", "other", "--payload", r#"{"tag":"x","fail":true}"#]);
    assert_eq!(failed.status.code(), Some(1));
    talk(&s, "other", "$LATEST", "y");
    let billed: Vec<u64> = rids.iter().map(|r| billed_ms(&s, r)).collect();

    let usage: Value =
        serde_json::from_str(&s.ok(&["usage", "--json", "--by", "day", "--since", "2h"])).unwrap();
    let days = usage["days"].as_array().unwrap();
    assert!(!days.is_empty() && days.len() <= 2, "{usage}");
    let mut sums = std::collections::BTreeMap::<String, [u64; 4]>::new();
    for d in days {
        let since = parse_time(&d["since"]);
        let until = parse_time(&d["until"]);
        for f in d["functions"].as_array().unwrap() {
            check_formulas(f);
            let ph = f["period_hours"].as_f64().unwrap();
            assert!(((until - since) / 3600.0 - ph).abs() <= 2.0 / 3600.0, "{d}");
            let e = sums.entry(f["name"].as_str().unwrap().into()).or_default();
            for (i, k) in ["invocations", "errors", "cold_starts", "billed_ms"]
                .iter()
                .enumerate()
            {
                e[i] += f[k].as_u64().unwrap();
            }
        }
    }
    let talk_sum = sums["talk"];
    assert_eq!(talk_sum[..3], [3, 0, 1]);
    let reported: u64 = billed.iter().sum();
    assert!(
        talk_sum[3].abs_diff(reported) <= billed.len() as u64,
        "usage billed {} ms, REPORT lines {billed:?}",
        talk_sum[3]
    );
    assert_eq!(sums["other"][..3], [2, 1, 1]);
    // The whole-period rows: the same totals, the same formulas.
    let period = (parse_time(&usage["until"]) - parse_time(&usage["since"])) / 3600.0;
    for f in usage["functions"].as_array().unwrap() {
        check_formulas(f);
        assert!((f["period_hours"].as_f64().unwrap() - period).abs() <= 2.0 / 3600.0);
        let sum = sums[f["name"].as_str().unwrap()];
        assert_eq!(f["invocations"].as_u64().unwrap(), sum[0]);
        assert_eq!(f["billed_ms"].as_u64().unwrap(), sum[3]);
    }

    let csv = s.ok(&["usage", "--csv", "--by", "day", "--since", "2h"]);
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(&header[..3], ["day", "function", "invocations"]);
    assert!(header.contains(&"always_on_usd") && header.contains(&"break_even_utilisation"));
    let talk_rows: u64 = lines
        .map(|l| l.split(',').collect::<Vec<_>>())
        .filter(|r| r[1] == "talk")
        .map(|r| r[2].parse::<u64>().unwrap())
        .sum();
    assert_eq!(talk_rows, 3);
    let table = s.ok(&["usage", "--by", "day"]);
    assert!(
        table.contains("DAY") && table.contains("ALWAYS_ON_USD"),
        "{table}"
    );
}

#[test]
fn a_json_format_function_writes_json_lines_that_logs_filters_by_level() {
    let s = Server::start("logs-json");
    let dir = write_app("logs-json");
    let toml = std::fs::read_to_string(dir.join("updraft.toml")).unwrap();
    std::fs::write(
        dir.join("updraft.toml"),
        format!(
            "{toml}\n[functions.talk.logging]\nformat = \"json\"\napplication_level = \"info\"\n"
        ),
    )
    .unwrap();
    s.deploy(&dir);
    let rid = talk(&s, "talk", "$LATEST", "j");
    let lines = json_lines(&s, &["logs", "talk", "--request-id", &rid]);
    // The handler lowers the root logger to DEBUG: Lambda still drops it.
    let records: Vec<Value> = texts(&lines)
        .iter()
        .filter_map(|t| serde_json::from_str::<Value>(t).ok())
        .collect();
    let app: Vec<&Value> = records
        .iter()
        .filter(|r| r.get("level").is_some())
        .collect();
    let got: Vec<(&str, &str)> = app
        .iter()
        .map(|r| (r["level"].as_str().unwrap(), r["message"].as_str().unwrap()))
        .collect();
    assert_eq!(got, [("WARNING", "warn j"), ("ERROR", "Needle j")]);
    for r in &app {
        assert_eq!(r["requestId"], rid.as_str());
        assert_eq!(r["logger"], "root");
        assert!(r["timestamp"].as_str().unwrap().ends_with('Z'), "{r}");
    }
    let types: Vec<&str> = records.iter().filter_map(|r| r["type"].as_str()).collect();
    assert_eq!(types, ["platform.start", "platform.report"]);
    // print() stays text, as on Lambda.
    assert!(texts(&lines).contains(&"plain j".to_string()), "{lines:?}");
    // `logs --level` reads the JSON lines' level.
    let errors = json_lines(&s, &["logs", "talk", "--level", "error"]);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0]["level"], "ERROR");
    let other = json_lines(&s, &["logs", "other"]);
    assert!(
        other.is_empty(),
        "other kept the text format and was not invoked"
    );
}
