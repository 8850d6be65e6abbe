//! `updraft queue send QUEUE --data JSON|@FILE [--attr K=V]…`: prints the
//! message id. Any failure (an unknown queue, a message over 1 MiB, an
//! unreachable server) exits 2 with a message.

use crate::client::encode;
use crate::commands::Context;
use reqwest::Method;
use std::process::ExitCode;

/// Shown after `--help`.
pub const EXAMPLES: &str = r#"Examples:
  updraft queue send jobs --data '{"order": 42}'
  updraft queue send jobs --data @message.json --attr source=cli --attr priority=high
  echo '{"n": 1}' | updraft queue send jobs --data @-"#;

#[derive(clap::Args)]
pub struct Args {
    /// The queue's name.
    queue: String,
    /// The message body: JSON, @FILE, or @- for stdin.
    #[arg(long)]
    data: String,
    /// A string message attribute, NAME=VALUE (repeatable).
    #[arg(long = "attr", value_name = "K=V")]
    attrs: Vec<String>,
    #[command(flatten)]
    pub client: crate::commands::ClientArgs,
}

/// The body: UTF-8 JSON.
fn read_data(arg: &str) -> anyhow::Result<String> {
    let bytes = crate::commands::read_arg("--data", arg)?;
    let text =
        String::from_utf8(bytes).map_err(|_| anyhow::anyhow!("--data: expected UTF-8 text"))?;
    if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(&text) {
        anyhow::bail!("--data: expected JSON ({e})");
    }
    Ok(text)
}

pub async fn run(args: Args, ctx: Context) -> anyhow::Result<ExitCode> {
    crate::commands::exit_2_on_error(send(args, ctx)).await
}

async fn send(args: Args, ctx: Context) -> anyhow::Result<ExitCode> {
    let body = read_data(&args.data)?;
    let mut attributes = serde_json::Map::new();
    for kv in &args.attrs {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--attr {kv:?}: expected NAME=VALUE"))?;
        attributes.insert(k.to_string(), v.into());
    }
    let path = format!("/api/v1/queues/{}/messages", encode(&args.queue));
    let req = serde_json::json!({ "body": body, "attributes": attributes });
    let v: serde_json::Value = ctx
        .client()?
        .json(Method::POST, &path, Some(&req))
        .await
        .map_err(|e| super::queue_error(&args.queue, e))?;
    let id = v["message_id"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("unexpected response from the server: {v}"))?;
    println!("{id}");
    Ok(ExitCode::SUCCESS)
}
