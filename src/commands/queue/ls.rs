//! `updraft queue ls [--json]`: NAME DEPTH IN_FLIGHT OLDEST DEAD_LETTERS.

use crate::commands::Context;
use reqwest::Method;
use std::process::ExitCode;

/// Shown after `--help`.
pub const EXAMPLES: &str = r#"Examples:
  updraft queue ls
  updraft queue ls --json | jq '.[] | select(.dead_letters > 0) | .name'"#;

#[derive(clap::Args)]
pub struct Args {
    /// The queues as a JSON array (name, depth, in_flight, delayed, oldest_age_ms, dead_letters).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    pub client: crate::commands::ClientArgs,
}

#[derive(serde::Deserialize)]
struct List {
    queues: Vec<serde_json::Value>,
}

/// `850ms`, `42s`, `3m 12s`, … ; `-` for an empty queue.
fn age(ms: Option<u64>) -> String {
    match ms {
        None => "-".into(),
        Some(ms) if ms < 1000 => format!("{ms}ms"),
        Some(ms) => {
            humantime::format_duration(std::time::Duration::from_secs(ms / 1000)).to_string()
        }
    }
}

pub async fn run(args: Args, ctx: Context) -> anyhow::Result<ExitCode> {
    let list: List = ctx
        .client()?
        .json(Method::GET, "/api/v1/queues", None)
        .await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&list.queues)?);
        return Ok(ExitCode::SUCCESS);
    }
    let mut rows = vec![["NAME", "DEPTH", "IN_FLIGHT", "OLDEST", "DEAD_LETTERS"].map(String::from)];
    for q in &list.queues {
        let n = |k: &str| q[k].as_i64().unwrap_or(0).to_string();
        rows.push([
            q["name"].as_str().unwrap_or("").to_string(),
            n("depth"),
            n("in_flight"),
            age(q["oldest_age_ms"].as_u64()),
            n("dead_letters"),
        ]);
    }
    print!("{}", updraft_core::text_table(&rows));
    Ok(ExitCode::SUCCESS)
}
