//! `updraft invoke NAME`: stdout holds exactly the result bytes; a function
//! error exits 1 (details on stderr); any other failure exits 2.

use super::Context;
use crate::client::{encode, ClientError};
use bytes::Bytes;
use reqwest::Method;
use std::io::Write;
use std::process::ExitCode;

/// Shown after `--help`.
pub const EXAMPLES: &str = r#"Examples:
  updraft invoke greet
  updraft invoke greet --payload '{"pathParameters": {"name": "ada"}}' | jq .
  updraft invoke greet --payload @event.json --qualifier 2
  echo '{}' | updraft invoke greet --payload @-
  updraft invoke greet --async        prints the request id

Exit status: 0 on success, 1 on a function error (errorType: errorMessage on
stderr), 2 on any other failure. A closed stdout (| head) ends it by SIGPIPE."#;

#[derive(clap::Args)]
pub struct Args {
    /// The function's name.
    name: String,
    /// The event: JSON, @FILE, or @- for stdin.
    #[arg(long, default_value = "{}")]
    payload: String,
    /// A version number, an alias name or $LATEST (the default).
    #[arg(long)]
    qualifier: Option<String>,
    /// Queue the event and print its request id instead of waiting.
    #[arg(long)]
    r#async: bool,
    #[command(flatten)]
    pub client: super::ClientArgs,
}

pub async fn run(args: Args, ctx: Context) -> anyhow::Result<ExitCode> {
    super::exit_2_on_error(invoke(args, ctx)).await
}

async fn invoke(args: Args, ctx: Context) -> anyhow::Result<ExitCode> {
    let payload = super::read_arg("--payload", &args.payload)?;
    if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(&payload) {
        anyhow::bail!("--payload: expected JSON ({e})");
    }
    let client = ctx.client()?;
    let mut path = format!("/api/v1/functions/{}/invoke", encode(&args.name));
    let mut query = Vec::new();
    if let Some(q) = &args.qualifier {
        query.push(format!("qualifier={}", encode(q)));
    }
    if args.r#async {
        query.push("async=true".to_string());
    }
    if !query.is_empty() {
        path.push('?');
        path.push_str(&query.join("&"));
    }
    let resp = client
        .send(Method::POST, &path, Bytes::from(payload), None)
        .await
        .map_err(|e| match e {
            ClientError::Api {
                status: 404,
                message,
                ..
            } => anyhow::anyhow!("{message}"),
            other => anyhow::anyhow!(other),
        })?;
    if args.r#async {
        // 202 {"request_id"}: the event is queued durably.
        let v: serde_json::Value = resp.json().await?;
        let id = v
            .get("request_id")
            .and_then(|x| x.as_str())
            .ok_or_else(|| anyhow::anyhow!("unexpected response from the server: {v}"))?;
        println!("{id}");
        return Ok(ExitCode::SUCCESS);
    }
    let failed = resp.headers().contains_key("x-amz-function-error");
    let body = resp.bytes().await?;
    if failed {
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
        let t = v
            .get("errorType")
            .and_then(|x| x.as_str())
            .unwrap_or("Unhandled");
        let m = v.get("errorMessage").and_then(|x| x.as_str()).unwrap_or("");
        eprintln!("{t}: {m}");
        eprintln!("{}", String::from_utf8_lossy(&body));
        return Ok(ExitCode::from(1));
    }
    let mut out = std::io::stdout().lock();
    out.write_all(&body)?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
