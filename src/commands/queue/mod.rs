//! `updraft queue …`: durable queues, one file per subcommand (`ls`,
//! `send`, `dlq`; `redrive` and `purge`, a number each, are [`count`])
//! over the native API's `/api/v1/queues` endpoints. A queue's dead letters are the messages moved
//! from it to its dead-letter queue after too many receives (`updraft dlq
//! NAME` is a function's failed asynchronous events).

pub mod dlq;
pub mod ls;
pub mod send;

use super::{ClientArgs, Context};
use crate::client::ClientError;
use std::process::ExitCode;

/// Shown after `--help`.
pub const EXAMPLES: &str = r#"Examples:
  updraft queue ls
  updraft queue send jobs --data '{"order": 42}' --attr source=cli
  updraft queue dlq jobs
  updraft queue redrive jobs
  updraft queue purge jobs"#;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// List queues: depth, in flight, oldest message's age, dead letters.
    #[command(after_help = ls::EXAMPLES)]
    Ls(ls::Args),
    /// Send a message to a queue; prints its message id.
    #[command(after_help = send::EXAMPLES)]
    Send(send::Args),
    /// Show the dead letters that came from a queue.
    #[command(after_help = dlq::EXAMPLES)]
    Dlq(dlq::Args),
    /// Move a queue's dead letters back to it (visible at once, receive
    /// counts reset); prints how many.
    #[command(after_help = "Examples:\n  updraft queue redrive jobs")]
    Redrive(QueueArgs),
    /// Delete every message of a queue, in flight or not (its dead letters,
    /// in another queue, stay); prints how many.
    #[command(after_help = "Examples:\n  updraft queue purge jobs")]
    Purge(QueueArgs),
}

impl Args {
    /// The client flags of the subcommand.
    pub fn client_args(&mut self) -> &mut ClientArgs {
        match &mut self.command {
            Command::Ls(a) => &mut a.client,
            Command::Send(a) => &mut a.client,
            Command::Dlq(a) => &mut a.client,
            Command::Redrive(a) => &mut a.client,
            Command::Purge(a) => &mut a.client,
        }
    }
}

pub async fn run(args: Args, ctx: Context) -> anyhow::Result<ExitCode> {
    match args.command {
        Command::Ls(a) => ls::run(a, ctx).await,
        Command::Send(a) => send::run(a, ctx).await,
        Command::Dlq(a) => dlq::run(a, ctx).await,
        Command::Redrive(a) => count(a, ctx, "redrive", "moved").await,
        Command::Purge(a) => count(a, ctx, "purge", "purged").await,
    }
}

/// The arguments of a command on one queue (`redrive`, `purge`).
#[derive(clap::Args)]
pub struct QueueArgs {
    /// The queue's name.
    queue: String,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// A 404 from a queue endpoint names the queue; other errors as they are.
pub(super) fn queue_error(name: &str, e: ClientError) -> anyhow::Error {
    if e.is_not_found() {
        anyhow::anyhow!("no queue named {name}")
    } else {
        e.into()
    }
}

/// Prints the number `POST /api/v1/queues/{name}/{action}` answers in `field`.
pub(super) async fn count(
    args: QueueArgs,
    ctx: Context,
    action: &str,
    field: &str,
) -> anyhow::Result<ExitCode> {
    let name = &args.queue;
    let path = format!("/api/v1/queues/{}/{action}", crate::client::encode(name));
    let v: serde_json::Value = ctx
        .client()?
        .json(reqwest::Method::POST, &path, None)
        .await
        .map_err(|e| queue_error(name, e))?;
    let n = v[field]
        .as_u64()
        .ok_or_else(|| anyhow::anyhow!("unexpected response from the server: {v}"))?;
    println!("{n}");
    Ok(ExitCode::SUCCESS)
}
