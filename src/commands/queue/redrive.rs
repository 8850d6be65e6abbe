//! `updraft queue redrive QUEUE`: moves the dead letters that came from
//! QUEUE back to it (visible at once, their receive counts reset); prints
//! how many.

use crate::commands::Context;
use std::process::ExitCode;

/// Shown after `--help`.
pub const EXAMPLES: &str = r#"Examples:
  updraft queue redrive jobs"#;

#[derive(clap::Args)]
pub struct Args {
    /// The queue whose dead letters to move back.
    queue: String,
    #[command(flatten)]
    pub client: crate::commands::ClientArgs,
}

pub async fn run(args: Args, ctx: Context) -> anyhow::Result<ExitCode> {
    super::count(&ctx, &args.queue, "redrive", "moved").await
}
