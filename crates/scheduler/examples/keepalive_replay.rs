//! Replays an invocation trace against three keep-alive policies and prints
//! what each cost: cold starts and idle instance-seconds (memory held by
//! instances waiting for work). `bench/run --only keepalive` runs it on a
//! seeded synthetic trace (bench/updraft_bench/azure_trace.py).
//!
//! Usage: `keepalive_replay TRACE FIXED_MINUTES`; TRACE has one line per
//! invocation, `FUNCTION ARRIVAL_MS DURATION_MS`, sorted by arrival.
//!
//! Every policy runs through the scheduler's own keep-alive code
//! (`updraft_scheduler::keepalive::History`): "fixed" keeps an idle
//! instance FIXED_MINUTES; "learned" is what a function without an
//! `idle_timeout` gets (the default `idle_timeout` until its history
//! predicts); "percentiles" is the paper's hybrid histogram policy. Instances are modelled as the pool keeps them: an arrival
//! takes an idle instance if one is alive, else starts one (a cold start);
//! a due pre-warm starts one when none is alive.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::time::Duration;
use tokio::time::Instant;
use updraft_core::config::Scaling;
use updraft_scheduler::keepalive::{History, Policy};

#[derive(Default, Clone, Copy)]
struct Totals {
    invocations: u64,
    cold: u64,
    prewarms: u64,
    idle_ms: u64,
}

struct Inst {
    busy_until: Option<u64>,
    idle_since: u64,
    idle_until: u64,
}

/// One function's invocations (arrival, duration), in ms, under one policy.
fn replay(calls: &[(u64, u64)], policy: Policy, fallback: Duration, end: u64) -> Totals {
    let base = Instant::now();
    let at = |ms: u64| base + Duration::from_millis(ms);
    let ms = |i: Instant| i.duration_since(base).as_millis() as u64;
    let mut h = History::default();
    let mut insts: Vec<Inst> = Vec::new();
    let mut t = Totals::default();
    // Runs every finish up to `now`, then a due pre-warm, then expiry.
    let settle = |now: u64, h: &mut History, insts: &mut Vec<Inst>| loop {
        let next = insts
            .iter_mut()
            .filter(|i| i.busy_until.is_some_and(|b| b <= now))
            .min_by_key(|i| i.busy_until);
        let Some(inst) = next else { break };
        let done = inst.busy_until.take().unwrap_or(now);
        let idle = h.finish(at(done), policy, fallback);
        inst.idle_since = done;
        inst.idle_until = done + idle.as_millis() as u64;
    };
    let expire = |now: u64, insts: &mut Vec<Inst>, t: &mut Totals| {
        insts.retain(|i| {
            let gone = i.busy_until.is_none() && i.idle_until < now;
            if gone {
                t.idle_ms += i.idle_until - i.idle_since;
            }
            !gone
        });
    };
    for &(arrival, duration) in calls {
        settle(arrival, &mut h, &mut insts);
        if let Some((due, keep)) = h.pending() {
            let due = ms(due);
            if due <= arrival {
                expire(due, &mut insts, &mut t);
                h.due(at(due));
                if insts.is_empty() {
                    t.prewarms += 1;
                    insts.push(Inst {
                        busy_until: None,
                        idle_since: due,
                        idle_until: due + keep.as_millis() as u64,
                    });
                }
            }
        }
        expire(arrival, &mut insts, &mut t);
        h.arrive(at(arrival), policy);
        t.invocations += 1;
        let warm = insts
            .iter_mut()
            .filter(|i| i.busy_until.is_none())
            .max_by_key(|i| i.idle_since);
        match warm {
            Some(i) => {
                t.idle_ms += arrival - i.idle_since;
                i.busy_until = Some(arrival + duration);
            }
            None => {
                t.cold += 1;
                insts.push(Inst {
                    busy_until: Some(arrival + duration),
                    idle_since: arrival,
                    idle_until: arrival,
                });
            }
        }
    }
    settle(u64::MAX, &mut h, &mut insts);
    if let Some((due, keep)) = h.pending() {
        let due = ms(due);
        if due < end && insts.iter().all(|i| i.idle_until < due) {
            t.prewarms += 1;
            insts.push(Inst {
                busy_until: None,
                idle_since: due,
                idle_until: due + keep.as_millis() as u64,
            });
        }
    }
    // What is still idle at the end of the trace counts up to the end.
    for i in &insts {
        t.idle_ms += i.idle_until.min(end).saturating_sub(i.idle_since);
    }
    t
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, path, fixed_min] = &args[..] else {
        return Err("usage: keepalive_replay TRACE FIXED_MINUTES".into());
    };
    let fixed = Duration::from_secs(60 * fixed_min.parse::<u64>()?);
    let default = Duration::from_millis(Scaling::default().idle_timeout_ms);
    let mut calls: BTreeMap<u64, Vec<(u64, u64)>> = BTreeMap::new();
    let mut end = 0;
    for (n, line) in std::io::BufReader::new(std::fs::File::open(path)?)
        .lines()
        .enumerate()
    {
        let line = line?;
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let f: Vec<u64> = line
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<_, _>>()
            .map_err(|e| {
                format!(
                    "{path}:{}: expected FUNCTION ARRIVAL_MS DURATION_MS ({e})",
                    n + 1
                )
            })?;
        let [function, arrival, duration] = f[..] else {
            return Err(format!("{path}:{}: expected three numbers", n + 1).into());
        };
        calls.entry(function).or_default().push((arrival, duration));
        end = end.max(arrival + duration);
    }
    let mut out = serde_json::Map::new();
    for (name, policy, fallback) in [
        ("fixed", Policy::Fixed, fixed),
        ("learned", Policy::Learned, default),
        ("percentiles", Policy::Percentiles, default),
    ] {
        let mut total = Totals::default();
        for c in calls.values() {
            let t = replay(c, policy, fallback, end);
            total.invocations += t.invocations;
            total.cold += t.cold;
            total.prewarms += t.prewarms;
            total.idle_ms += t.idle_ms;
        }
        out.insert(
            name.into(),
            serde_json::json!({
                "invocations": total.invocations,
                "cold_starts": total.cold,
                "prewarms": total.prewarms,
                "idle_instance_seconds": total.idle_ms as f64 / 1000.0,
                "fallback_minutes": fallback.as_secs_f64() / 60.0,
            }),
        );
    }
    if std::env::var_os("KEEPALIVE_DEBUG").is_some() {
        for (f, c) in &calls {
            let a = replay(c, Policy::Fixed, fixed, end);
            let b = replay(c, Policy::Learned, default, end);
            eprintln!(
                "{f} {} {} {} {} {}",
                a.invocations,
                a.cold,
                b.cold,
                a.idle_ms / 1000,
                b.idle_ms / 1000
            );
        }
    }
    out.insert("functions".into(), calls.len().into());
    out.insert("trace_ms".into(), end.into());
    println!("{}", serde_json::Value::Object(out));
    Ok(())
}
