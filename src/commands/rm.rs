//! `updraft rm NAME`: deletes a function; its usage history stays.

use super::Context;
use crate::client::encode;
use bytes::Bytes;
use reqwest::Method;
use std::process::ExitCode;

/// Shown after `--help`.
pub const EXAMPLES: &str = r#"Examples:
  updraft rm greet                    exit 1 when no function has that name"#;

#[derive(clap::Args)]
pub struct Args {
    /// The function's name.
    name: String,
    #[command(flatten)]
    pub client: super::ClientArgs,
}

pub async fn run(args: Args, ctx: Context) -> anyhow::Result<ExitCode> {
    let path = format!("/api/v1/functions/{}", encode(&args.name));
    match ctx
        .client()?
        .send(Method::DELETE, &path, Bytes::new(), None)
        .await
    {
        Ok(_) => {
            eprintln!("deleted {}", args.name);
            Ok(ExitCode::SUCCESS)
        }
        Err(e) if e.is_not_found() => anyhow::bail!("no function named {}", args.name),
        Err(e) => Err(e.into()),
    }
}
