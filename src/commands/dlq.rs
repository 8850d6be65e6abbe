//! `updraft dlq NAME [--json]`: the asynchronous events of a function that
//! failed for good without an on-failure destination (its dead letters).
//! Each is Lambda's destination invocation record; `--json` prints them as a
//! JSON array, otherwise one line each:
//! `RFC3339<TAB>requestId<TAB>condition<TAB>attempts<TAB>errorType: errorMessage`.

use super::Context;
use crate::client::encode;
use reqwest::Method;
use std::process::ExitCode;

/// Shown after `--help`.
pub const EXAMPLES: &str = r#"Examples:
  updraft dlq greet
  updraft dlq greet --json | jq '.[0].requestContext'"#;

#[derive(clap::Args)]
pub struct Args {
    /// The function's name.
    name: String,
    /// The records as a JSON array.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    pub client: super::ClientArgs,
}

#[derive(serde::Deserialize)]
struct Page {
    dead_letters: Vec<serde_json::Value>,
}

pub async fn run(args: Args, ctx: Context) -> anyhow::Result<ExitCode> {
    let path = format!("/api/v1/functions/{}/dlq", encode(&args.name));
    let page: Page = match ctx.client()?.json(Method::GET, &path, None).await {
        Ok(p) => p,
        Err(e) if e.is_not_found() => anyhow::bail!("no function named {}", args.name),
        Err(e) => return Err(e.into()),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&page.dead_letters)?);
        return Ok(ExitCode::SUCCESS);
    }
    for r in &page.dead_letters {
        let s = |v: &serde_json::Value| v.as_str().unwrap_or("").to_string();
        let ctx = &r["requestContext"];
        let resp = &r["responsePayload"];
        let error = match (resp.get("errorType"), resp.get("errorMessage")) {
            (Some(t), Some(m)) => format!("{}: {}", s(t), s(m)),
            (Some(t), None) => s(t),
            _ => String::new(),
        };
        println!(
            "{}\t{}\t{}\t{}\t{}",
            s(&r["timestamp"]),
            s(&ctx["requestId"]),
            s(&ctx["condition"]),
            ctx["approximateInvokeCount"].as_i64().unwrap_or(0),
            error
        );
    }
    Ok(ExitCode::SUCCESS)
}
