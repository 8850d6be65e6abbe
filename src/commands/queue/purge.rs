//! `updraft queue purge QUEUE`: deletes every message of QUEUE (in flight
//! or not; its dead letters, in another queue, stay); prints how many.

use crate::commands::Context;
use std::process::ExitCode;

/// Shown after `--help`.
pub const EXAMPLES: &str = r#"Examples:
  updraft queue purge jobs"#;

#[derive(clap::Args)]
pub struct Args {
    /// The queue to empty.
    queue: String,
    #[command(flatten)]
    pub client: crate::commands::ClientArgs,
}

pub async fn run(args: Args, ctx: Context) -> anyhow::Result<ExitCode> {
    super::count(&ctx, &args.queue, "purge", "purged").await
}
