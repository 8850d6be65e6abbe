//! `updraft logs NAME`: `RFC3339<TAB>requestId<TAB>text`, one invocation's
//! lines together.

use super::{rfc3339, since_ms, Context};
use crate::client::encode;
use reqwest::Method;
use std::process::ExitCode;
use std::time::Duration;
use updraft_platform::LogEntry;

#[derive(clap::Args)]
pub struct Args {
    name: String,
    /// Keep printing new lines as they arrive.
    #[arg(long, short)]
    follow: bool,
    /// How far back to start, e.g. 1h or 30m.
    #[arg(long, default_value = "24h")]
    since: String,
    /// Only this invocation's lines.
    #[arg(long)]
    request_id: Option<String>,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
}

#[derive(serde::Deserialize)]
struct Page {
    lines: Vec<LogEntry>,
}

pub async fn run(args: Args, ctx: Context) -> anyhow::Result<ExitCode> {
    let client = ctx.client()?;
    let since = since_ms(&args.since)?;
    let mut after = 0i64;
    loop {
        let mut path = format!(
            "/api/v1/functions/{}/logs?since_ms={since}&after_id={after}&limit=5000",
            encode(&args.name)
        );
        if let Some(r) = &args.request_id {
            path.push_str(&format!("&request_id={}", encode(r)));
        }
        let page: Page = client.json(Method::GET, &path, None).await?;
        let full = page.lines.len() == 5000;
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

/// Prints lines grouped by request id, in the order invocations first appear.
fn print_grouped(lines: &[LogEntry], json: bool) {
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
