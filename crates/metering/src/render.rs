//! The usage report as a text table for terminals and as CSV.

use crate::{FunctionUsage, UsageReport};

/// Each row with its day (`None`: the whole period): the days' rows when the
/// report has days, else the per-function totals.
fn rows(report: &UsageReport) -> Vec<(Option<&str>, &FunctionUsage)> {
    if report.days.is_empty() {
        return report.functions.iter().map(|f| (None, f)).collect();
    }
    report
        .days
        .iter()
        .flat_map(|d| d.functions.iter().map(|f| (Some(d.day.as_str()), f)))
        .collect()
}

/// The name and the counts, the first columns of both forms.
fn counts(f: &FunctionUsage) -> [String; 6] {
    [
        f.name.clone(),
        f.invocations.to_string(),
        f.errors.to_string(),
        f.throttles.to_string(),
        f.cold_starts.to_string(),
        f.billed_ms.to_string(),
    ]
}

fn break_even(f: &FunctionUsage) -> String {
    f.break_even_utilisation
        .map_or_else(String::new, |b| format!("{b:.6}"))
}

/// The report as an aligned text table for terminals (a DAY column with
/// `--by day`).
pub fn render_table(report: &UsageReport) -> String {
    let by_day = !report.days.is_empty();
    let mut header = vec![
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
        "ALWAYS_ON_USD",
        "BREAK_EVEN",
        "BY_TRIGGER",
    ];
    if by_day {
        header.insert(0, "DAY");
    }
    let mut table = vec![header.into_iter().map(String::from).collect::<Vec<_>>()];
    for (day, f) in rows(report) {
        let mut row: Vec<String> = day.map(String::from).into_iter().collect();
        row.extend(counts(f));
        row.extend([
            format!("{:.6}", f.gb_seconds),
            format!("{:.1}", f.p50_ms),
            format!("{:.1}", f.p99_ms),
            format!("{:.8}", f.cost_usd),
            format!("{:.6}", f.always_on_usd),
            break_even(f),
            f.by_trigger
                .iter()
                .map(|(t, n)| format!("{t}={n}"))
                .collect::<Vec<_>>()
                .join(" "),
        ]);
        table.push(row);
    }
    format!(
        "usage from {} to {}\n{}",
        report.since,
        report.until,
        updraft_core::text_table(&table)
    )
}

/// The report as CSV with a header: one row per function, or per day and
/// function with `--by day` (`day` is empty for whole-period rows).
pub fn render_csv(report: &UsageReport) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    let header = [
        "day",
        "function",
        "invocations",
        "errors",
        "throttles",
        "cold_starts",
        "billed_ms",
        "gb_seconds",
        "requests_cost_usd",
        "compute_cost_usd",
        "cost_usd",
        "memory_mb",
        "period_hours",
        "always_on_usd",
        "utilisation",
        "break_even_utilisation",
    ];
    // Writing to a Vec cannot fail.
    let _ = w.write_record(header);
    for (day, f) in rows(report) {
        let mut row = vec![day.unwrap_or("").to_string()];
        row.extend(counts(f));
        row.extend([
            f.gb_seconds.to_string(),
            f.requests_cost_usd.to_string(),
            f.compute_cost_usd.to_string(),
            f.cost_usd.to_string(),
            f.memory_mb.to_string(),
            f.period_hours.to_string(),
            f.always_on_usd.to_string(),
            f.utilisation.to_string(),
            f.break_even_utilisation
                .map_or_else(String::new, |b| b.to_string()),
        ]);
        let _ = w.write_record(&row);
    }
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}
