//! `updraft queue dlq QUEUE [--json]`: the messages moved from QUEUE to its
//! dead-letter queue, oldest first, one a line:
//! `messageId<TAB>receiveCount<TAB>RFC3339 sent time<TAB>body`.

use crate::client::encode;
use crate::commands::{rfc3339, Context};
use reqwest::Method;
use std::process::ExitCode;

/// Shown after `--help`.
pub const EXAMPLES: &str = r#"Examples:
  updraft queue dlq jobs
  updraft queue dlq jobs --json | jq '.[].body'"#;

#[derive(clap::Args)]
pub struct Args {
    /// The queue whose dead letters to show (not its dead-letter queue).
    queue: String,
    /// The dead letters as a JSON array.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    pub client: crate::commands::ClientArgs,
}

#[derive(serde::Deserialize)]
struct Page {
    dead_letters: Vec<serde_json::Value>,
}

pub async fn run(args: Args, ctx: Context) -> anyhow::Result<ExitCode> {
    let path = format!("/api/v1/queues/{}/dlq", encode(&args.queue));
    let page: Page = ctx
        .client()?
        .json(Method::GET, &path, None)
        .await
        .map_err(|e| super::queue_error(&args.queue, e))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&page.dead_letters)?);
        return Ok(ExitCode::SUCCESS);
    }
    for m in &page.dead_letters {
        // One line a message: a body's own line breaks are escaped.
        let body = m["body"].as_str().unwrap_or("").replace('\n', "\\n");
        println!(
            "{}\t{}\t{}\t{}",
            m["message_id"].as_str().unwrap_or(""),
            m["receive_count"].as_i64().unwrap_or(0),
            rfc3339(m["sent_ms"].as_i64().unwrap_or(0)),
            body
        );
    }
    Ok(ExitCode::SUCCESS)
}
