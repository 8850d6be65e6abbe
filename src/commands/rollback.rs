//! `updraft rollback NAME [--to VERSION]`.

use super::Context;
use crate::client::encode;
use reqwest::Method;
use std::process::ExitCode;

/// Shown after `--help`.
pub const EXAMPLES: &str = r#"Examples:
  updraft rollback greet              back to the version before the current one
  updraft rollback greet --to 1       version 1's code and configuration, as a new version

A function needs two versions to roll back: deploy twice (a change in code or
configuration publishes a new version)."#;

#[derive(clap::Args)]
pub struct Args {
    /// The function's name.
    name: String,
    /// The version to return to (default: the one before the current).
    #[arg(long)]
    to: Option<i64>,
    #[command(flatten)]
    pub client: super::ClientArgs,
}

pub async fn run(args: Args, ctx: Context) -> anyhow::Result<ExitCode> {
    let path = format!("/api/v1/functions/{}/rollback", encode(&args.name));
    let body = serde_json::json!({ "to": args.to });
    let d: updraft_platform::Deployed =
        ctx.client()?.json(Method::POST, &path, Some(&body)).await?;
    println!("{} {} {}", d.name, d.version, d.url);
    Ok(ExitCode::SUCCESS)
}
