//! Schedule triggers end to end: a `rate` schedule fires each tick once —
//! across a SIGKILL and restart too (ticks carry their due time, the test
//! counts distinct times per event) — a cron schedule sends EventBridge's
//! Scheduled Event, and a schedule removed from the manifest stops.
//!
//! The functions (tests/fixtures/events) report every run to an HTTP sink
//! the test owns.

mod common;
use common::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

/// The fixture reports to a sink on the host's loopback, which functions
/// reach only when the server allows it.
const LOOPBACK: (&str, &str) = ("UPDRAFT_ALLOW_FUNCTION_LOOPBACK", "true");

/// Writes an app in `dir` whose functions (name, trigger TOML line) run the
/// fixture's `record` handler and report to `sink`.
fn write_app(dir: &Path, sink: &Sink, functions: &[(&str, &str)]) {
    let fns: Vec<EventFn> = functions
        .iter()
        .map(|(name, trigger)| EventFn {
            name,
            handler: "record",
            trigger,
        })
        .collect();
    write_event_app(dir, "sched", sink, &fns);
}

/// Each run's (due time, event id) of one function, from the sink.
fn ticks(sink: &Sink, function: &str) -> Vec<(i64, String)> {
    sink.posts()
        .iter()
        .filter(|p| p["fn"] == function)
        .map(|p| {
            let time = p["event"]["time"].as_str().unwrap().to_string();
            let t = humantime::parse_rfc3339(&time).unwrap();
            let secs = t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
            (secs, p["event"]["id"].as_str().unwrap().to_string())
        })
        .collect()
}

/// Asserts that no due time was fired as two events (a re-run of one
/// event after a crash keeps its id, so it is not a second firing).
fn each_tick_fired_once(ticks: &[(i64, String)]) -> BTreeSet<i64> {
    let mut by_time: BTreeMap<i64, BTreeSet<&str>> = BTreeMap::new();
    for (t, id) in ticks {
        by_time.entry(*t).or_default().insert(id);
    }
    for (t, ids) in &by_time {
        assert_eq!(
            ids.len(),
            1,
            "tick {t} fired as {} events: {ids:?}",
            ids.len()
        );
    }
    by_time.into_keys().collect()
}

/// Consecutive seconds, none missing.
fn contiguous(times: &[i64]) -> bool {
    times.windows(2).all(|w| w[1] == w[0] + 1)
}

#[test]
fn a_rate_schedule_fires_each_tick_once_across_a_sigkill_and_stops_when_removed() {
    let sink = Sink::start();
    let dir = scratch("schedules-rate");
    let app = dir.join("app");
    let mut server = Server::start_in(dir.join("data"), &[LOOPBACK]);
    write_app(&app, &sink, &[("ticker", "schedule = { rate = \"1s\" }")]);
    server.deploy(&app);
    let ls: Value = serde_json::from_str(&server.ok(&["ls", "--json"])).unwrap();
    assert_eq!(ls[0]["triggers"][0], "schedule rate(1 second)", "{ls}");

    // While the server runs, every tick fires, once, one second apart.
    wait_until("5 ticks", Duration::from_secs(60), || {
        ticks(&sink, "ticker").len() >= 5
    });
    server.kill9();
    let before = each_tick_fired_once(&ticks(&sink, "ticker"));
    let before: Vec<i64> = before.into_iter().collect();
    assert!(
        contiguous(&before),
        "ticks skipped while running: {before:?}"
    );

    // After the restart: ticks missed while down fire once (the latest), and
    // nothing fired before the kill fires again.
    server.restart();
    let last_before = *before.last().unwrap();
    wait_until("3 ticks after the restart", Duration::from_secs(60), || {
        ticks(&sink, "ticker")
            .iter()
            .filter(|(t, _)| *t > last_before)
            .count()
            >= 3
    });
    let all: Vec<i64> = each_tick_fired_once(&ticks(&sink, "ticker"))
        .into_iter()
        .collect();
    let after: Vec<i64> = all.iter().copied().filter(|t| *t > last_before).collect();
    // The first tick after the restart may stand for several missed ones;
    // from there on, every second again.
    assert!(
        contiguous(&after[1..]),
        "ticks skipped after the restart: {after:?}"
    );

    // The records name the trigger.
    let usage: Value = serde_json::from_str(&server.ok(&["usage", "--json"])).unwrap();
    let f = &usage["functions"][0];
    assert!(f["by_trigger"]["schedule"].as_u64().unwrap() >= 3, "{f}");

    // Removing the schedule stops it: another function's three ticks later,
    // the removed one has fired nothing more.
    write_app(
        &app,
        &sink,
        &[("ticker", ""), ("witness", "schedule = { rate = \"1s\" }")],
    );
    server.deploy(&app);
    let stopped_at = ticks(&sink, "ticker").len();
    wait_until("3 witness ticks", Duration::from_secs(60), || {
        ticks(&sink, "witness").len() >= 3
    });
    // A tick fired just before the redeploy may still be running: at most one.
    let more = ticks(&sink, "ticker").len() - stopped_at;
    assert!(more <= 1, "the removed schedule fired {more} more times");
}

#[test]
fn a_cron_schedule_sends_eventbridges_scheduled_event() {
    let sink = Sink::start();
    let dir = scratch("schedules-cron");
    let app = dir.join("app");
    let server = Server::start_in(dir.join("data"), &[LOOPBACK]);
    write_app(
        &app,
        &sink,
        &[(
            "minutely",
            "schedule = { cron = \"* * * * *\", timezone = \"Europe/Paris\" }",
        )],
    );
    server.deploy(&app);
    wait_until("the first minute's tick", Duration::from_secs(90), || {
        !ticks(&sink, "minutely").is_empty()
    });
    let post = sink
        .posts()
        .into_iter()
        .find(|p| p["fn"] == "minutely")
        .unwrap();
    let e = &post["event"];
    assert_eq!(e["version"], "0", "{e}");
    assert_eq!(e["detail-type"], "Scheduled Event");
    assert_eq!(e["source"], "aws.events");
    assert_eq!(e["account"], "000000000000");
    assert_eq!(e["region"], "us-east-1");
    assert_eq!(e["detail"], serde_json::json!({}));
    assert_eq!(
        e["resources"],
        serde_json::json!(["arn:aws:events:us-east-1:000000000000:rule/minutely-schedule-0"])
    );
    let time = e["time"].as_str().unwrap();
    assert!(
        time.ends_with(":00Z") && time.len() == 20,
        "a minute's due time: {time}"
    );
    assert_eq!(e["id"].as_str().unwrap().len(), 36);
    // The event's id is not the invocation's request id, which the function
    // sees as context.aws_request_id (for idempotent handlers).
    assert_eq!(post["id"].as_str().unwrap().len(), 36);
}

#[test]
fn bad_schedules_are_refused_at_deploy_naming_the_key() {
    let sink = Sink::start();
    let dir = scratch("schedules-bad");
    let app = dir.join("app");
    let server = Server::start_in(dir.join("data"), &[]);
    write_app(
        &app,
        &sink,
        &[("bad", "schedule = { cron = \"61 * * * *\" }")],
    );
    let out = server.cli_in(&["deploy"], &app);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("functions.bad.triggers[0].schedule.cron"),
        "{err}"
    );
    assert_eq!(
        server.ok(&["ls", "--json"]).trim(),
        "[]",
        "nothing deployed"
    );
}
