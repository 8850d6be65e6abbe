//! `updraft logs NAME | --app APP`: `RFC3339<TAB>requestId<TAB>text` (with
//! the function's name after the time for `--app`), one invocation's lines
//! together; filters are applied by the server's store query.

use super::{rfc3339, time_ms, Context};
use crate::client::encode;
use reqwest::Method;
use std::process::ExitCode;
use std::time::Duration;
use updraft_core::logs::Level;
use updraft_platform::LogEntry;

/// Shown after `--help`.
pub const EXAMPLES: &str = r#"Examples:
  updraft logs greet
  updraft logs greet --follow --since 10m
  updraft logs greet --request-id 6f1c2d3e-... --json
  updraft logs --app shop --level warn --since 1h
  updraft logs greet --version 3 --filter timeout --until 2026-01-02T10:00:00Z

Exit status: 1 when no function (or app) has that name."#;

#[derive(clap::Args)]
pub struct Args {
    /// The function's name (or give --app).
    #[arg(required_unless_present = "app", conflicts_with = "app")]
    name: Option<String>,
    /// The lines of every function of this app instead.
    #[arg(long)]
    app: Option<String>,
    /// Keep printing new lines as they arrive (until Ctrl-C).
    #[arg(long, short)]
    follow: bool,
    /// How far back to start: a duration (1h, 30m, 7days) or an RFC 3339 time.
    #[arg(long, default_value = "24h")]
    since: String,
    /// Where to stop: a duration ago (10m) or an RFC 3339 time (default: now and on).
    #[arg(long)]
    until: Option<String>,
    /// Only lines of invocations of this version (a number or $LATEST).
    #[arg(long, value_parser = parse_version)]
    version: Option<i64>,
    /// Only lines carrying this level or a higher one (TRACE, DEBUG, INFO,
    /// WARN, ERROR, FATAL); lines without a level are left out.
    #[arg(long)]
    level: Option<Level>,
    /// Only lines containing this text (case-sensitive); --grep is the same.
    #[arg(long, visible_alias = "grep")]
    filter: Option<String>,
    /// Only the lines of this invocation (its request id).
    #[arg(long)]
    request_id: Option<String>,
    /// One JSON object per line: {"time","requestId","text","function","version","level"}.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    pub client: super::ClientArgs,
}

#[derive(serde::Deserialize)]
pub struct Page {
    pub lines: Vec<LogEntry>,
}

/// `--version`'s value: a version number, or `$LATEST` (0).
fn parse_version(v: &str) -> Result<i64, String> {
    if v == "$LATEST" || v == "LATEST" {
        return Ok(0);
    }
    match v.parse::<i64>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("expected a version number or $LATEST, got {v:?}")),
    }
}

pub async fn run(args: Args, ctx: Context) -> anyhow::Result<ExitCode> {
    let client = ctx.client()?;
    let since = time_ms("--since", &args.since)?;
    let (base, what) = match (&args.name, &args.app) {
        (_, Some(app)) => (
            format!("/api/v1/apps/{}/logs", encode(app)),
            format!("app named {app}"),
        ),
        (Some(name), None) => (
            format!("/api/v1/functions/{}/logs", encode(name)),
            format!("function named {name}"),
        ),
        (None, None) => anyhow::bail!("give a function's NAME or --app APP"),
    };
    let mut filters = String::new();
    if let Some(u) = &args.until {
        filters.push_str(&format!("&until_ms={}", time_ms("--until", u)?));
    }
    if let Some(r) = &args.request_id {
        filters.push_str(&format!("&request_id={}", encode(r)));
    }
    if let Some(v) = args.version {
        filters.push_str(&format!("&version={v}"));
    }
    if let Some(l) = args.level {
        filters.push_str(&format!("&level={}", l.as_str()));
    }
    if let Some(t) = &args.filter {
        filters.push_str(&format!("&filter={}", encode(t)));
    }
    let mut after = 0i64;
    loop {
        let path = format!("{base}?since_ms={since}&after_id={after}&limit={PAGE}{filters}");
        let page: Page = match client.json(Method::GET, &path, None).await {
            Ok(p) => p,
            Err(e) if e.is_not_found() => anyhow::bail!("no {what}"),
            Err(e) => return Err(e.into()),
        };
        let full = page.lines.len() == PAGE;
        if let Some(last) = page.lines.last() {
            after = last.id;
        }
        print_grouped(&page.lines, args.json, args.app.is_some());
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

/// Prints lines grouped by request id, in the order invocations first appear;
/// `with_function` puts the function's name after the time.
pub fn print_grouped(lines: &[LogEntry], json: bool, with_function: bool) {
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
                    serde_json::json!({
                        "time": rfc3339(l.ts_ms),
                        "requestId": l.request_id,
                        "text": l.text,
                        "function": l.function,
                        "version": l.version.map(updraft_core::version_label),
                        "level": l.level,
                    })
                );
            } else if with_function {
                println!(
                    "{}\t{}\t{}\t{}",
                    rfc3339(l.ts_ms),
                    l.function,
                    l.request_id,
                    l.text
                );
            } else {
                println!("{}\t{}\t{}", rfc3339(l.ts_ms), l.request_id, l.text);
            }
        }
    }
}
