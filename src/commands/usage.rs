//! `updraft usage [--since 24h] [--json]`.

use super::{since_ms, Context};
use reqwest::Method;
use std::process::ExitCode;
use updraft_metering::UsageReport;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, default_value = "24h")]
    since: String,
    #[arg(long)]
    json: bool,
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
