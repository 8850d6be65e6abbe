//! Metering: turns invocation records into per-function usage (invocations,
//! errors, throttles, cold starts, billed ms, GB-seconds, p50/p99) and a cost
//! estimate from a price table (default: Lambda's public x86 prices).

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
}

fn default_requests() -> f64 {
    0.20
}
fn default_gb_second() -> f64 {
    0.0000166667
}

impl Default for Prices {
    fn default() -> Self {
        Prices {
            requests_per_million_usd: default_requests(),
            gb_second_usd: default_gb_second(),
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

/// Usage of one function over the period (SPEC §1, `usage --json`).
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
    pub cost_usd: f64,
    /// Invocations by what started them (`http`, `invoke`, `event`,
    /// `schedule`, `queue`, `bus`; `unknown` for records from before).
    #[serde(default)]
    pub by_trigger: BTreeMap<String, u64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UsageReport {
    pub since: String,
    pub until: String,
    pub functions: Vec<FunctionUsage>,
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

/// Totals records per function. Retries count as invocations, throttles do
/// not; billed ms exclude init.
pub fn usage(
    records: &[InvocationRecord],
    since: String,
    until: String,
    prices: &Prices,
) -> UsageReport {
    #[derive(Default)]
    struct Acc {
        invocations: u64,
        errors: u64,
        throttles: u64,
        cold: u64,
        billed_ms: u64,
        gb_seconds: f64,
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
        acc.durations.push(r.duration_us as f64 / 1000.0);
    }
    let functions = by_fn
        .into_iter()
        .map(|(name, mut acc)| {
            acc.durations.sort_by(|a, b| a.total_cmp(b));
            let cost = acc.invocations as f64 / 1e6 * prices.requests_per_million_usd
                + acc.gb_seconds * prices.gb_second_usd;
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
            }
        })
        .collect();
    UsageReport {
        since,
        until,
        functions,
    }
}

/// The report as an aligned text table for terminals.
pub fn render_table(report: &UsageReport) -> String {
    let mut rows = vec![[
        "FUNCTION",
        "INVOCATIONS",
        "ERRORS",
        "THROTTLES",
        "COLD",
        "BILLED_MS",
        "GB_SECONDS",
        "P50_MS",
        "P99_MS",
        "COST_USD",
        "BY_TRIGGER",
    ]
    .map(String::from)];
    for f in &report.functions {
        rows.push([
            f.name.clone(),
            f.invocations.to_string(),
            f.errors.to_string(),
            f.throttles.to_string(),
            f.cold_starts.to_string(),
            f.billed_ms.to_string(),
            format!("{:.6}", f.gb_seconds),
            format!("{:.1}", f.p50_ms),
            format!("{:.1}", f.p99_ms),
            format!("{:.8}", f.cost_usd),
            f.by_trigger
                .iter()
                .map(|(t, n)| format!("{t}={n}"))
                .collect::<Vec<_>>()
                .join(" "),
        ]);
    }
    format!(
        "usage from {} to {}\n{}",
        report.since,
        report.until,
        updraft_core::text_table(&rows)
    )
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
        let r = usage(&records, "s".into(), "u".into(), &Prices::default());
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
    }

    #[test]
    fn price_table_is_strict() {
        let dir = std::env::temp_dir().join(format!("updraft-prices-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.toml");
        std::fs::write(&good, "requests_per_million_usd = 0.1\n").unwrap();
        let p = Prices::load(&good).unwrap();
        assert_eq!(p.requests_per_million_usd, 0.1);
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
