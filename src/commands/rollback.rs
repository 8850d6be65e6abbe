//! `updraft rollback NAME [--to VERSION]`.

use super::Context;
use crate::client::encode;
use reqwest::Method;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    name: String,
    /// The version to return to (default: the one before the current).
    #[arg(long)]
    to: Option<i64>,
}

pub async fn run(args: Args, ctx: Context) -> anyhow::Result<ExitCode> {
    let path = format!("/api/v1/functions/{}/rollback", encode(&args.name));
    let body = serde_json::json!({ "to": args.to });
    let d: updraft_platform::Deployed =
        ctx.client()?.json(Method::POST, &path, Some(&body)).await?;
    println!("{} {} {}", d.name, d.version, d.url);
    Ok(ExitCode::SUCCESS)
}
