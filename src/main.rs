//! `updraft`: one binary for the server and the CLI that drives it.

mod client;
mod commands;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "updraft",
    version,
    about = "A small, fast, honest serverless platform"
)]
struct Cli {
    /// The server the CLI talks to.
    #[arg(
        long,
        env = "UPDRAFT_ENDPOINT",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    endpoint: String,
    /// The server's data directory (the CLI reads credentials from it).
    #[arg(
        long,
        env = "UPDRAFT_DATA_DIR",
        default_value = "./.updraft",
        global = true
    )]
    data_dir: PathBuf,
    /// PEM certificates to trust (instead of the system's) when the endpoint
    /// is https, e.g. the certificate of a server started with --tls-cert.
    #[arg(long, env = "UPDRAFT_CA_CERT", global = true)]
    ca_cert: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the platform: gateway, control API, scheduler, runtimes, store.
    Server(commands::server::Args),
    /// Local development: a server on loopback, redeploys on change, streams logs.
    Dev(commands::dev::Args),
    /// Package and upload every function of DIR/updraft.toml.
    Deploy(commands::deploy::Args),
    /// Run a function once and print its result.
    Invoke(commands::invoke::Args),
    /// Show a function's logs.
    Logs(commands::logs::Args),
    /// Show a function's failed asynchronous events (dead letters).
    Dlq(commands::dlq::Args),
    /// List functions.
    Ls(commands::ls::Args),
    /// Delete a function (its usage history stays).
    Rm(commands::rm::Args),
    /// Make an earlier version current again, as a new version.
    Rollback(commands::rollback::Args),
    /// Metered use per function, with a cost estimate.
    Usage(commands::usage::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // rustls's provider for the server's TLS and the CLI's https: ring, which
    // builds without a C toolchain beyond cc. Nothing else installs one.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let ctx = commands::Context {
        endpoint: cli.endpoint,
        data_dir: cli.data_dir,
        ca_cert: cli.ca_cert,
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Server(a) => commands::server::run(a, ctx).await,
            Command::Dev(a) => commands::dev::run(a, ctx).await,
            Command::Deploy(a) => commands::deploy::run(a, ctx).await,
            Command::Invoke(a) => commands::invoke::run(a, ctx).await,
            Command::Logs(a) => commands::logs::run(a, ctx).await,
            Command::Dlq(a) => commands::dlq::run(a, ctx).await,
            Command::Ls(a) => commands::ls::run(a, ctx).await,
            Command::Rm(a) => commands::rm::run(a, ctx).await,
            Command::Rollback(a) => commands::rollback::run(a, ctx).await,
            Command::Usage(a) => commands::usage::run(a, ctx).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
