//! `updraft usage [--since 24h] [--by day] [--json | --csv]`.

use super::{time_ms, Context};
use reqwest::Method;
use std::process::ExitCode;
use updraft_metering::UsageReport;

/// Shown after `--help`.
pub const EXAMPLES: &str = r#"Examples:
  updraft usage
  updraft usage --since 7days --by day
  updraft usage --since 7days --json | jq '.functions[] | {name, cost_usd, always_on_usd}'
  updraft usage --since 30days --by day --csv > usage.csv"#;

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum By {
    Function,
    Day,
}

#[derive(clap::Args)]
pub struct Args {
    /// How far back to count: a duration (1h, 24h, 7days) or an RFC 3339 time.
    #[arg(long, default_value = "24h")]
    since: String,
    /// `function`: a row per function (the default); `day`: per UTC day and function.
    #[arg(
        long,
        value_enum,
        default_value = "function",
        hide_possible_values = true
    )]
    by: By,
    /// One JSON object: {"since","until","functions":[…]} (+ "days":[…] with --by day).
    #[arg(long, conflicts_with = "csv")]
    json: bool,
    /// CSV with a header line, one row per function (or day and function).
    #[arg(long)]
    csv: bool,
    #[command(flatten)]
    pub client: super::ClientArgs,
}

pub async fn run(args: Args, ctx: Context) -> anyhow::Result<ExitCode> {
    let mut path = format!(
        "/api/v1/usage?since_ms={}",
        time_ms("--since", &args.since)?
    );
    if args.by == By::Day {
        path.push_str("&by=day");
    }
    let report: UsageReport = ctx.client()?.json(Method::GET, &path, None).await?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else if args.csv {
        print!("{}", updraft_metering::render_csv(&report));
    } else {
        print!("{}", updraft_metering::render_table(&report));
    }
    Ok(ExitCode::SUCCESS)
}
