//! `updraft usage [--since 24h] [--json]`.

use super::{since_ms, Context};
use reqwest::Method;
use std::process::ExitCode;
use updraft_metering::UsageReport;

/// Shown after `--help`.
pub const EXAMPLES: &str = r#"Examples:
  updraft usage
  updraft usage --since 7days --json | jq '.functions[] | {name, cost_usd}'"#;

#[derive(clap::Args)]
pub struct Args {
    /// How far back to count, e.g. 1h, 24h or 7days.
    #[arg(long, default_value = "24h")]
    since: String,
    /// One JSON object: {"since","until","functions":[…]}.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    pub client: super::ClientArgs,
}

pub async fn run(args: Args, ctx: Context) -> anyhow::Result<ExitCode> {
    let path = format!("/api/v1/usage?since_ms={}", since_ms(&args.since)?);
    let report: UsageReport = ctx.client()?.json(Method::GET, &path, None).await?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", updraft_metering::render_table(&report));
    }
    Ok(ExitCode::SUCCESS)
}
