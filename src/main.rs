//! `updraft`: one binary for the server and the CLI that drives it.

mod client;
mod commands;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use commands::{ClientArgs, Context};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "updraft",
    version,
    about = "A small, fast, honest serverless platform",
    after_help = "Examples:\n  \
        updraft dev examples/hello          serve an app, redeploy on change\n  \
        updraft invoke greet | jq .         run a function once\n  \
        updraft <COMMAND> --help            a command's flags and examples"
)]
struct Cli {
    // Accepted before the command too (`updraft --endpoint URL ls`), as
    // earlier releases took them; the commands that use them list them.
    #[arg(long, hide = true)]
    endpoint: Option<String>,
    #[arg(long, hide = true)]
    data_dir: Option<PathBuf>,
    #[arg(long, hide = true)]
    ca_cert: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the platform: gateway, control API, scheduler, runtimes, store.
    #[command(after_help = commands::server::EXAMPLES)]
    Server(Box<commands::server::Args>),
    /// Local development: a server on loopback, redeploys on change, streams logs.
    #[command(after_help = commands::dev::EXAMPLES)]
    Dev(commands::dev::Args),
    /// Package and upload every function of DIR/updraft.toml.
    #[command(after_help = commands::deploy::EXAMPLES)]
    Deploy(commands::deploy::Args),
    /// Run a function once and print its result.
    #[command(after_help = commands::invoke::EXAMPLES)]
    Invoke(commands::invoke::Args),
    /// Show a function's logs.
    #[command(after_help = commands::logs::EXAMPLES)]
    Logs(commands::logs::Args),
    /// Show a function's failed asynchronous events (dead letters).
    #[command(after_help = commands::dlq::EXAMPLES)]
    Dlq(commands::dlq::Args),
    /// Put an event on an event bus; prints its id.
    #[command(after_help = commands::publish::EXAMPLES)]
    Publish(commands::publish::Args),
    /// Durable queues: list, send, dead letters, redrive, purge.
    #[command(after_help = commands::queue::EXAMPLES)]
    Queue(commands::queue::Args),
    /// List functions.
    #[command(after_help = commands::ls::EXAMPLES)]
    Ls(commands::ls::Args),
    /// Delete a function (its usage history stays).
    #[command(after_help = commands::rm::EXAMPLES)]
    Rm(commands::rm::Args),
    /// Make an earlier version current again, as a new version.
    #[command(after_help = commands::rollback::EXAMPLES)]
    Rollback(commands::rollback::Args),
    /// Metered use per function, with a cost estimate.
    #[command(after_help = commands::usage::EXAMPLES)]
    Usage(commands::usage::Args),
    /// The server's wasm compile helper (run by the server, not by people).
    #[command(hide = true)]
    CompileWasm(commands::compile_wasm::Args),
}

impl Command {
    /// The client flags of a command that talks to a server.
    fn client_args(&mut self) -> Option<&mut ClientArgs> {
        match self {
            Command::Server(_) | Command::Dev(_) | Command::CompileWasm(_) => None,
            Command::Deploy(a) => Some(&mut a.client),
            Command::Invoke(a) => Some(&mut a.client),
            Command::Logs(a) => Some(&mut a.client),
            Command::Dlq(a) => Some(&mut a.client),
            Command::Publish(a) => Some(&mut a.client),
            Command::Queue(a) => Some(a.client_args()),
            Command::Ls(a) => Some(&mut a.client),
            Command::Rm(a) => Some(&mut a.client),
            Command::Rollback(a) => Some(&mut a.client),
            Command::Usage(a) => Some(&mut a.client),
        }
    }

    /// Prints on stdout for a pipe's reader (`| head`, `| jq`); the server
    /// and `dev` (which must stop its server first) handle a closed pipe
    /// themselves.
    fn prints_for_a_pipe(&self) -> bool {
        !matches!(
            self,
            Command::Server(_) | Command::Dev(_) | Command::CompileWasm(_)
        )
    }
}

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let mut cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    apply_leading_flags(&mut cli, &matches);
    if let Command::CompileWasm(args) = cli.command {
        return commands::compile_wasm::run(args);
    }
    if cli.command.prints_for_a_pipe() {
        // A reader that goes away (`updraft invoke f | head -c1`) ends the
        // command as it ends `cat`: quietly, by SIGPIPE (exit status 141 in
        // a shell). Rust ignores SIGPIPE, which turns the next write into an
        // error message instead. Sockets are not affected (MSG_NOSIGNAL).
        // SAFETY: signal(2) before any thread exists; SIG_DFL is always valid.
        #[allow(unsafe_code)]
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
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
    let ctx = cli.command.client_args().map(|c| Context::from(&*c));
    let result = runtime.block_on(async move {
        let ctx = || ctx.expect("a client command has client flags");
        match cli.command {
            Command::Server(a) => commands::server::run(*a).await,
            Command::Dev(a) => commands::dev::run(a).await,
            Command::Deploy(a) => commands::deploy::run(a, ctx()).await,
            Command::Invoke(a) => commands::invoke::run(a, ctx()).await,
            Command::Logs(a) => commands::logs::run(a, ctx()).await,
            Command::Dlq(a) => commands::dlq::run(a, ctx()).await,
            Command::Publish(a) => commands::publish::run(a, ctx()).await,
            Command::Queue(a) => commands::queue::run(a, ctx()).await,
            Command::Ls(a) => commands::ls::run(a, ctx()).await,
            Command::Rm(a) => commands::rm::run(a, ctx()).await,
            Command::Rollback(a) => commands::rollback::run(a, ctx()).await,
            Command::Usage(a) => commands::usage::run(a, ctx()).await,
            Command::CompileWasm(_) => unreachable!("compile-wasm runs before the async runtime"),
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

/// `updraft --endpoint URL ls`: a flag before the command applies unless the
/// command's own flag was given on the command line (an environment variable
/// or default gives way to it).
fn apply_leading_flags(cli: &mut Cli, matches: &clap::ArgMatches) {
    use clap::parser::ValueSource;
    let Some((_, sub)) = matches.subcommand() else {
        return;
    };
    let typed = |id: &str| {
        sub.try_get_raw(id)
            .ok()
            .flatten()
            .is_some_and(|_| sub.value_source(id) == Some(ValueSource::CommandLine))
    };
    let (endpoint, data_dir, ca_cert) =
        (cli.endpoint.take(), cli.data_dir.take(), cli.ca_cert.take());
    if let Some(d) = data_dir.filter(|_| !typed("data_dir")) {
        match &mut cli.command {
            Command::Server(a) => a.data_dir = d,
            Command::Dev(a) => a.data_dir = Some(d),
            other => {
                if let Some(c) = other.client_args() {
                    c.data_dir = d;
                }
            }
        }
    }
    if let Some(c) = cli.command.client_args() {
        if let Some(e) = endpoint.filter(|_| !typed("endpoint")) {
            c.endpoint = e;
        }
        if let Some(p) = ca_cert.filter(|_| !typed("ca_cert")) {
            c.ca_cert = Some(p);
        }
    }
}
