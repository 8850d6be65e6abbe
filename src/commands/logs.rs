//! `updraft logs NAME`: `RFC3339<TAB>requestId<TAB>text`, one invocation's
//! lines together.

use super::{rfc3339, since_ms, Context};
use crate::client::encode;
use reqwest::Method;
use std::process::ExitCode;
use std::time::Duration;
use updraft_platform::LogEntry;

/// Shown after `--help`.
pub const EXAMPLES: &str = r#"Examples:
  updraft logs greet
  updraft logs greet --follow --since 10m
  updraft logs greet --request-id 6f1c2d3e-... --json

Exit status: 1 when no function has that name."#;

#[derive(clap::Args)]
pub struct Args {
    /// The function's name.
    name: String,
    /// Keep printing new lines as they arrive (until Ctrl-C).
    #[arg(long, short)]
    follow: bool,
    /// How far back to start, e.g. 1h, 30m or 7days.
    #[arg(long, default_value = "24h")]
    since: String,
    /// Only the lines of this invocation (its request id).
    #[arg(long)]
    request_id: Option<String>,
    /// One JSON object per line: {"time","requestId","text"}.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    pub client: super::ClientArgs,
}

#[derive(serde::Deserialize)]
pub struct Page {
    pub lines: Vec<LogEntry>,
}

pub async fn run(args: Args, ctx: Context) -> anyhow::Result<ExitCode> {
    let client = ctx.client()?;
    let since = since_ms(&args.since)?;
    let mut after = 0i64;
    loop {
        let page = match fetch(
            &client,
            &args.name,
            since,
            after,
            args.request_id.as_deref(),
        )
        .await
        {
            Ok(p) => p,
            Err(e) if e.is_not_found() => anyhow::bail!("no function named {}", args.name),
            Err(e) => return Err(e.into()),
        };
        let full = page.lines.len() == PAGE;
        if let Some(last) = page.lines.last() {
            after = last.id;
        }
        print_grouped(&page.lines, args.json);
        if full {
            continue;
        }
        if !args.follow {
            return Ok(ExitCode::SUCCESS);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

const PAGE: usize = 5000;

/// One page of a function's log lines after id `after`.
pub async fn fetch(
    client: &crate::client::Client,
    name: &str,
    since: i64,
    after: i64,
    request_id: Option<&str>,
) -> Result<Page, crate::client::ClientError> {
    let mut path = format!(
        "/api/v1/functions/{}/logs?since_ms={since}&after_id={after}&limit={PAGE}",
        encode(name)
    );
    if let Some(r) = request_id {
        path.push_str(&format!("&request_id={}", encode(r)));
    }
    client.json(Method::GET, &path, None).await
}

/// Prints lines grouped by request id, in the order invocations first appear.
pub fn print_grouped(lines: &[LogEntry], json: bool) {
    let mut order: Vec<&str> = Vec::new();
    for l in lines {
        if !order.contains(&l.request_id.as_str()) {
            order.push(&l.request_id);
        }
    }
    for rid in order {
        for l in lines.iter().filter(|l| l.request_id == rid) {
            if json {
                println!(
                    "{}",
                    serde_json::json!({ "time": rfc3339(l.ts_ms), "requestId": l.request_id, "text": l.text })
                );
            } else {
                println!("{}\t{}\t{}", rfc3339(l.ts_ms), l.request_id, l.text);
            }
        }
    }
}
