//! `updraft rm NAME`: deletes a function; its usage history stays.

use super::Context;
use crate::client::encode;
use bytes::Bytes;
use reqwest::Method;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    name: String,
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
