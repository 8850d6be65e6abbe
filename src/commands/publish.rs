//! `updraft publish BUS --source S --detail-type T --detail JSON|@FILE`:
//! one event onto an event bus (EventBridge's PutEvents with one entry);
//! prints the event's id. Every subscriber whose pattern matches gets it
//! asynchronously. A refused event or any other failure exits 2.

use super::Context;
use crate::client::encode;
use reqwest::Method;
use std::process::ExitCode;

/// Shown after `--help`.
pub const EXAMPLES: &str = r#"Examples:
  updraft publish orders --source shop --detail-type OrderPlaced --detail '{"id": 7, "total": 42}'
  updraft publish orders --source shop --detail-type OrderPlaced --detail @order.json
  echo '{"id": 7}' | updraft publish orders --source shop --detail-type OrderPlaced --detail @-

Buses exist as soon as they are named: an event on a bus nobody subscribes to
is accepted (its id is printed) and goes nowhere.
Exit status: 0 when the event was accepted, 2 otherwise (the reason on stderr)."#;

#[derive(clap::Args)]
pub struct Args {
    /// The bus's name (`default` is EventBridge's default bus).
    bus: String,
    /// The event's `source`, e.g. `shop`.
    #[arg(long)]
    source: String,
    /// The event's `detail-type`, e.g. `OrderPlaced`.
    #[arg(long)]
    detail_type: String,
    /// The event's `detail`: a JSON object, @FILE, or @- for stdin.
    #[arg(long, default_value = "{}")]
    detail: String,
    #[command(flatten)]
    pub client: super::ClientArgs,
}

#[derive(serde::Deserialize)]
struct Published {
    event_id: String,
}

pub async fn run(args: Args, ctx: Context) -> anyhow::Result<ExitCode> {
    match publish(args, ctx).await {
        Ok(id) => {
            println!("{id}");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            Ok(ExitCode::from(2))
        }
    }
}

async fn publish(args: Args, ctx: Context) -> anyhow::Result<String> {
    let raw = super::read_arg("--detail", &args.detail)?;
    let detail: serde_json::Value = serde_json::from_slice(&raw)
        .map_err(|e| anyhow::anyhow!("--detail: expected a JSON object ({e})"))?;
    anyhow::ensure!(
        detail.is_object(),
        "--detail: expected a JSON object, got {}",
        detail
    );
    let body = serde_json::json!({
        "source": args.source,
        "detail_type": args.detail_type,
        "detail": detail,
    });
    let path = format!("/api/v1/buses/{}/events", encode(&args.bus));
    let out: Published = ctx.client()?.json(Method::POST, &path, Some(&body)).await?;
    Ok(out.event_id)
}
