//! Metering: turns invocation records into per-function usage (invocations,
//! errors, throttles, cold starts, billed ms, GB-seconds, p50/p99), per
//! function and optionally per UTC day, a cost estimate from a price table
//! (default: Lambda's public x86 prices) and beside it what always-on
//! capacity would cost (docs/reference/cost.md has the formulas).

mod render;

pub use render::{render_csv, render_table};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use updraft_store::InvocationRecord;

#[derive(Debug, thiserror::Error)]
pub enum MeteringError {
    #[error("{file}: cannot read the price table: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}: {message}")]
    Invalid { file: String, message: String },
}

/// What one request and one GB-second cost.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prices {
    /// USD per million requests.
    #[serde(default = "default_requests")]
    pub requests_per_million_usd: f64,
    /// USD per GB-second of duration (GB = 1024 MB, as Lambda counts).
    #[serde(default = "default_gb_second")]
    pub gb_second_usd: f64,
    /// USD per GiB-hour of an always-on instance, for the comparison.
    #[serde(default = "default_always_on")]
    pub always_on_gb_hour_usd: f64,
}

fn default_requests() -> f64 {
    0.20
}
fn default_gb_second() -> f64 {
    0.0000166667
}
/// An AWS EC2 m7g.large (2 vCPU, 8 GiB) on demand in us-east-1, Linux:
/// $0.0816 an hour (June 2026) / 8 GiB.
fn default_always_on() -> f64 {
    0.0102
}

impl Default for Prices {
    fn default() -> Self {
        Prices {
            requests_per_million_usd: default_requests(),
            gb_second_usd: default_gb_second(),
            always_on_gb_hour_usd: default_always_on(),
        }
    }
}

impl Prices {
    /// Reads a TOML price table such as `requests_per_million_usd = 0.2`.
    pub fn load(path: &Path) -> Result<Prices, MeteringError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| MeteringError::Read {
            file: file.clone(),
            source,
        })?;
        let prices: Prices = toml::from_str(&text).map_err(|e| MeteringError::Invalid {
            file: file.clone(),
            message: e.message().to_string(),
        })?;
        for (key, v) in [
            ("requests_per_million_usd", prices.requests_per_million_usd),
            ("gb_second_usd", prices.gb_second_usd),
            ("always_on_gb_hour_usd", prices.always_on_gb_hour_usd),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(MeteringError::Invalid {
                    file,
                    message: format!("{key}: expected a price of 0 or more, got {v}"),
                });
            }
        }
        Ok(prices)
    }
}

/// Usage of one function over a period (SPEC §1, `usage --json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FunctionUsage {
    pub name: String,
    pub invocations: u64,
    pub errors: u64,
    pub throttles: u64,
    pub cold_starts: u64,
    pub billed_ms: u64,
    pub gb_seconds: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// `requests_cost_usd + compute_cost_usd`.
    pub cost_usd: f64,
    /// Invocations by what started them (`http`, `invoke`, `event`,
    /// `schedule`, `queue`, `bus`; `unknown` for records from before).
    #[serde(default)]
    pub by_trigger: BTreeMap<String, u64>,
    /// invocations / 10⁶ × `requests_per_million_usd`.
    #[serde(default)]
    pub requests_cost_usd: f64,
    /// gb_seconds × `gb_second_usd`.
    #[serde(default)]
    pub compute_cost_usd: f64,
    /// The largest memory size its invocations had.
    #[serde(default)]
    pub memory_mb: u64,
    /// Hours of the period this row covers.
    #[serde(default)]
    pub period_hours: f64,
    /// memory_mb / 1024 × period_hours × `always_on_gb_hour_usd`.
    #[serde(default)]
    pub always_on_usd: f64,
    /// The fraction of the period it was busy: billed_ms / (period_hours × 3.6e6).
    #[serde(default)]
    pub utilisation: f64,
    /// The utilisation (same mix of requests) at which cost_usd would equal
    /// always_on_usd: utilisation × always_on_usd / cost_usd; None when
    /// nothing was billed.
    #[serde(default)]
    pub break_even_utilisation: Option<f64>,
}

/// One UTC day of `usage --by day`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DayUsage {
    /// `YYYY-MM-DD`.
    pub day: String,
    pub since: String,
    pub until: String,
    pub functions: Vec<FunctionUsage>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UsageReport {
    pub since: String,
    pub until: String,
    /// Per function over the whole period.
    pub functions: Vec<FunctionUsage>,
    /// With `--by day`: per UTC day that had records, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub days: Vec<DayUsage>,
}

/// The `q`-quantile (nearest rank) of sorted values.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn round(v: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (v * f).round() / f
}

const DAY_MS: i64 = 86_400_000;

/// RFC 3339 to the second, UTC.
fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Totals the records of `[since_ms, until_ms)` per function (and per UTC
/// day with `by_day`). Retries count as invocations, throttles do not;
/// billed ms exclude init.
pub fn usage(
    records: &[InvocationRecord],
    since_ms: i64,
    until_ms: i64,
    prices: &Prices,
    by_day: bool,
) -> UsageReport {
    let mut days = Vec::new();
    if by_day {
        let mut by: BTreeMap<i64, Vec<&InvocationRecord>> = BTreeMap::new();
        for r in records {
            by.entry(r.start_ms.div_euclid(DAY_MS)).or_default().push(r);
        }
        for (day, recs) in by {
            let from = (day * DAY_MS).max(since_ms);
            let to = ((day + 1) * DAY_MS).min(until_ms);
            days.push(DayUsage {
                day: rfc3339(day * DAY_MS)[..10].to_string(),
                since: rfc3339(from),
                until: rfc3339(to),
                functions: per_function(recs, to - from, prices),
            });
        }
    }
    UsageReport {
        since: rfc3339(since_ms),
        until: rfc3339(until_ms),
        functions: per_function(records.iter().collect(), until_ms - since_ms, prices),
        days,
    }
}

/// Totals per function over a period of `period_ms`.
fn per_function(
    records: Vec<&InvocationRecord>,
    period_ms: i64,
    prices: &Prices,
) -> Vec<FunctionUsage> {
    #[derive(Default)]
    struct Acc {
        invocations: u64,
        errors: u64,
        throttles: u64,
        cold: u64,
        billed_ms: u64,
        gb_seconds: f64,
        memory_mb: u64,
        durations: Vec<f64>,
        by_trigger: BTreeMap<String, u64>,
    }
    let mut by_fn: BTreeMap<&str, Acc> = BTreeMap::new();
    for r in records {
        let acc = by_fn.entry(&r.function).or_default();
        if r.outcome == "throttled" {
            acc.throttles += 1;
            continue;
        }
        acc.invocations += 1;
        let trigger = if r.trigger.is_empty() {
            "unknown"
        } else {
            r.trigger.as_str()
        };
        *acc.by_trigger.entry(trigger.to_string()).or_default() += 1;
        if r.outcome != "success" {
            acc.errors += 1;
        }
        if r.cold {
            acc.cold += 1;
        }
        let billed = r.billed_ms.max(0) as u64;
        acc.billed_ms += billed;
        acc.gb_seconds += billed as f64 / 1000.0 * r.memory_mb.max(0) as f64 / 1024.0;
        acc.memory_mb = acc.memory_mb.max(r.memory_mb.max(0) as u64);
        acc.durations.push(r.duration_us as f64 / 1000.0);
    }
    let period_hours = period_ms.max(0) as f64 / 3_600_000.0;
    by_fn
        .into_iter()
        .map(|(name, mut acc)| {
            acc.durations.sort_by(|a, b| a.total_cmp(b));
            let requests = acc.invocations as f64 / 1e6 * prices.requests_per_million_usd;
            let compute = acc.gb_seconds * prices.gb_second_usd;
            let cost = requests + compute;
            let always_on =
                acc.memory_mb as f64 / 1024.0 * period_hours * prices.always_on_gb_hour_usd;
            let utilisation = if period_hours > 0.0 {
                acc.billed_ms as f64 / (period_hours * 3_600_000.0)
            } else {
                0.0
            };
            let break_even =
                (cost > 0.0 && acc.billed_ms > 0).then(|| round(utilisation * always_on / cost, 9));
            FunctionUsage {
                name: name.to_string(),
                invocations: acc.invocations,
                errors: acc.errors,
                throttles: acc.throttles,
                cold_starts: acc.cold,
                billed_ms: acc.billed_ms,
                gb_seconds: round(acc.gb_seconds, 6),
                p50_ms: round(quantile(&acc.durations, 0.50), 3),
                p99_ms: round(quantile(&acc.durations, 0.99), 3),
                cost_usd: round(cost, 10),
                by_trigger: acc.by_trigger,
                requests_cost_usd: round(requests, 10),
                compute_cost_usd: round(compute, 10),
                memory_mb: acc.memory_mb,
                period_hours: round(period_hours, 9),
                always_on_usd: round(always_on, 10),
                utilisation: round(utilisation, 12),
                break_even_utilisation: break_even,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(
        function: &str,
        outcome: &str,
        duration_us: i64,
        billed_ms: i64,
        cold: bool,
    ) -> InvocationRecord {
        InvocationRecord {
            request_id: format!("{function}-{duration_us}-{outcome}"),
            function: function.into(),
            version: 1,
            start_ms: 0,
            duration_us,
            billed_ms,
            memory_mb: 1024,
            max_memory_mb: 30,
            init_us: cold.then_some(1000),
            cold,
            outcome: outcome.into(),
            error_type: None,
            trigger: "invoke".into(),
        }
    }

    #[test]
    fn totals_and_cost() {
        let records = vec![
            rec("a", "success", 1500, 2, true),
            rec("a", "function", 999, 1, false),
            rec("a", "throttled", 0, 0, false),
            rec("b", "success", 10_000, 10, false),
        ];
        let r = usage(&records, 0, 3_600_000, &Prices::default(), false);
        let a = &r.functions[0];
        assert_eq!(
            (
                a.invocations,
                a.errors,
                a.throttles,
                a.cold_starts,
                a.billed_ms
            ),
            (2, 1, 1, 1, 3)
        );
        assert!((a.gb_seconds - 0.003).abs() < 1e-9);
        let expected = 2.0 / 1e6 * 0.2 + 0.003 * 0.0000166667;
        assert!((a.cost_usd - expected).abs() < 1e-12);
        assert_eq!(a.p50_ms, 0.999);
        assert_eq!(a.p99_ms, 1.5);
        assert_eq!(r.functions[1].name, "b");
        assert!(render_table(&r).contains("FUNCTION"));
        // One hour of a 1 GiB instance; busy 3 ms of it.
        assert_eq!(a.always_on_usd, 0.0102);
        assert_eq!(a.period_hours, 1.0);
        let utilisation = 3.0 / 3_600_000.0;
        assert!((a.utilisation - utilisation).abs() < 1e-12);
        let be = a.break_even_utilisation.unwrap();
        assert!((be - utilisation * 0.0102 / expected).abs() < 1e-9, "{be}");
        assert!(r.days.is_empty());
    }

    #[test]
    fn by_day_splits_at_utc_midnight() {
        let mut early = rec("a", "success", 1000, 1, true);
        early.start_ms = DAY_MS - 1;
        let mut late = rec("a", "success", 2000, 2, false);
        late.start_ms = DAY_MS;
        let since = DAY_MS / 2;
        let r = usage(
            &[early, late],
            since,
            DAY_MS + 6 * 3_600_000,
            &Prices::default(),
            true,
        );
        assert_eq!(r.days.len(), 2);
        assert_eq!(r.days[0].day, "1970-01-01");
        assert_eq!(r.days[0].since, "1970-01-01T12:00:00Z");
        assert_eq!(r.days[0].functions[0].billed_ms, 1);
        assert_eq!(r.days[0].functions[0].period_hours, 12.0);
        assert_eq!(r.days[1].day, "1970-01-02");
        assert_eq!(r.days[1].until, "1970-01-02T06:00:00Z");
        assert_eq!(r.days[1].functions[0].cold_starts, 0);
        assert_eq!(r.days[1].functions[0].period_hours, 6.0);
        assert_eq!(r.functions[0].billed_ms, 3);
        assert_eq!(r.functions[0].period_hours, 18.0);
        let csv = render_csv(&r);
        let mut lines = csv.lines();
        assert!(lines
            .next()
            .unwrap()
            .starts_with("day,function,invocations,"));
        assert!(
            lines.next().unwrap().starts_with("1970-01-01,a,1,"),
            "{csv}"
        );
        assert_eq!(csv.lines().count(), 3, "{csv}");
    }

    #[test]
    fn price_table_is_strict() {
        let dir = std::env::temp_dir().join(format!("updraft-prices-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.toml");
        std::fs::write(&good, "requests_per_million_usd = 0.1\n").unwrap();
        let p = Prices::load(&good).unwrap();
        assert_eq!(p.requests_per_million_usd, 0.1);
        assert_eq!(p.always_on_gb_hour_usd, 0.0102);
        assert_eq!(p.gb_second_usd, 0.0000166667);
        let bad = dir.join("bad.toml");
        std::fs::write(&bad, "request_price = 1\n").unwrap();
        let err = Prices::load(&bad).unwrap_err().to_string();
        assert!(
            err.contains("bad.toml") && err.contains("request_price"),
            "{err}"
        );
    }
}
