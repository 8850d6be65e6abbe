//! `updraft dev [DIR]`: local development. Runs a server on loopback with
//! its data in DIR/.updraft (or --data-dir), deploys DIR/updraft.toml,
//! redeploys whenever a file under DIR changes, and streams every function's
//! logs to the terminal. SIGINT, SIGTERM or SIGHUP stop the server with it.

use super::server::ShutdownSignals;
use super::Context;
use anyhow::Context as _;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::{Duration, SystemTime};

/// Shown after `--help`.
pub const EXAMPLES: &str = r#"Examples:
  updraft dev examples/hello                 serve on 127.0.0.1:8080, data in examples/hello/.updraft
  updraft dev . --listen 127.0.0.1:9000
  updraft dev . --data-dir /tmp/dev-data     keep the data (and credentials) elsewhere

`dev` runs its own server: stop `updraft server` first or give another
--listen. Ctrl-C, SIGTERM or closing the terminal stop both. Other commands
find its credentials with --data-dir DIR/.updraft, or when run in DIR."#;

#[derive(clap::Args)]
pub struct Args {
    /// The directory holding updraft.toml.
    #[arg(default_value = ".")]
    dir: PathBuf,
    /// Address of the development server.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
    /// The server's data directory [default: DIR/.updraft].
    #[arg(long, env = "UPDRAFT_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Isolation of functions (see `updraft server --help`); by default
    /// what this machine allows, with or without root.
    #[arg(long, env = "UPDRAFT_ISOLATION", default_value = "auto")]
    isolation: updraft_platform::IsolationMode,
    /// Let functions reach what listens on this machine's loopback.
    #[arg(long, env = "UPDRAFT_ALLOW_FUNCTION_LOOPBACK")]
    allow_function_loopback: bool,
    #[command(flatten)]
    runtime: super::server::RuntimeArgs,
}

/// Directories whose changes never call for a redeploy.
const IGNORED: [&str; 5] = [".updraft", ".git", "node_modules", "target", "__pycache__"];

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    // First, so that a signal from here on stops the server instead of
    // ending `dev` alone and leaving its server holding the port.
    let mut signals = ShutdownSignals::new()?;
    let dir = args
        .dir
        .canonicalize()
        .with_context(|| format!("{}: no such directory", args.dir.display()))?;
    let data_dir = match &args.data_dir {
        Some(d) => {
            std::fs::create_dir_all(d)
                .with_context(|| format!("creating --data-dir {}", d.display()))?;
            d.canonicalize()?
        }
        None => dir.join(".updraft"),
    };
    // The server takes the data dir's lock itself; checking first means a
    // second `dev` on the same directory says so, rather than finding the
    // first one's server on the port.
    drop(updraft_platform::DataDirLock::acquire(&data_dir).map_err(|e| anyhow::anyhow!("{e}"))?);
    let exe = std::env::current_exe().context("locating the updraft binary")?;
    let listen = resolve_listen(&args.listen)?;
    let mut command = tokio::process::Command::new(&exe);
    command
        .args(["server", "--listen", &listen, "--data-dir"])
        .arg(&data_dir)
        .args(["--isolation", &args.isolation.to_string()])
        .args(
            args.allow_function_loopback
                .then_some("--allow-function-loopback"),
        )
        .args(args.runtime.no_zygotes.then_some("--no-zygotes"))
        .args(
            args.runtime
                .runtimes
                .iter()
                .flat_map(|m| ["--runtime".to_string(), m.to_string()]),
        )
        .stdin(Stdio::null())
        .kill_on_drop(true);
    // SAFETY: prctl(2) is async-signal-safe and touches no memory of ours.
    // Should `dev` die without a word (SIGKILL), its server drains too. The
    // signal follows the thread that forks: this one, the runtime's
    // block_on thread, which lives as long as `dev`.
    #[allow(unsafe_code)]
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut server = command.spawn().context("starting the development server")?;
    let ctx = Context {
        endpoint: format!("http://{listen}"),
        data_dir: data_dir.clone(),
        ca_cert: None,
    };
    let outcome = tokio::select! {
        r = wait_healthy(&ctx.endpoint, &mut server) => r,
        _ = signals.recv() => Err(Stopped.into()),
    };
    let outcome = match outcome {
        Ok(()) => tokio::select! {
            r = watch(&ctx, &dir) => r,
            status = server.wait() => Err(anyhow::anyhow!(
                "the development server stopped ({})",
                status.map(|s| s.to_string()).unwrap_or_default()
            )),
            _ = signals.recv() => Ok(()),
        },
        Err(e) => Err(e),
    };
    stop(&mut server).await;
    match outcome {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) if e.is::<Stopped>() => Ok(ExitCode::SUCCESS),
        Err(e) => Err(e),
    }
}

/// Stopped by a signal before the server was up.
#[derive(Debug, thiserror::Error)]
#[error("stopped")]
struct Stopped;

/// Deploys on every change and prints new log lines, until stdout closes.
async fn watch(ctx: &Context, dir: &Path) -> anyhow::Result<()> {
    let client = ctx.client()?;
    let mut fingerprint = None;
    let mut names: Vec<String> = Vec::new();
    let mut cursors: HashMap<String, i64> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_millis(400));
    let started = updraft_core::now_ms();
    loop {
        tick.tick().await;
        let now = tree_fingerprint(dir);
        if fingerprint != Some(now) {
            fingerprint = Some(now);
            match super::deploy::deploy_dir(&client, dir, true).await {
                Ok(deployed) => {
                    for f in &deployed {
                        eprintln!("dev: {} version {} at {}", f.name, f.version, f.url);
                    }
                    names = deployed.into_iter().map(|f| f.name).collect();
                }
                // A broken edit is reported and the last good deploy keeps running.
                Err(e) => eprintln!("dev: not deployed: {e:#}"),
            }
        }
        for name in &names {
            let after = cursors.get(name).copied().unwrap_or(0);
            if let Ok(page) = super::logs::fetch(&client, name, started, after, None).await {
                if let Some(last) = page.lines.last() {
                    cursors.insert(name.clone(), last.id);
                }
                let mut out = std::io::stdout().lock();
                for l in &page.lines {
                    // A closed stdout (`updraft dev | head`) ends `dev`
                    // quietly, its server with it.
                    if writeln!(out, "{} {}\t{}", name, short(&l.request_id), l.text).is_err() {
                        return Ok(());
                    }
                }
            }
        }
    }
}

/// Port 0 picks a free port now, so the CLI side knows where the server is.
fn resolve_listen(listen: &str) -> anyhow::Result<String> {
    let addr: std::net::SocketAddr = listen.parse().with_context(|| {
        format!("--listen: expected an address such as 127.0.0.1:8080, got {listen:?}")
    })?;
    if addr.port() != 0 {
        return Ok(listen.to_string());
    }
    let probe = std::net::TcpListener::bind(addr).with_context(|| format!("binding {addr}"))?;
    Ok(probe.local_addr()?.to_string())
}

fn short(request_id: &str) -> &str {
    &request_id[..request_id.len().min(8)]
}

async fn wait_healthy(endpoint: &str, server: &mut tokio::process::Child) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    for _ in 0..200 {
        // Our server must still run: a healthy answer could come from another.
        if let Ok(Some(status)) = server.try_wait() {
            anyhow::bail!("the development server exited ({status})");
        }
        if let Ok(r) = http.get(format!("{endpoint}/healthz")).send().await {
            if r.status().is_success() {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("the development server did not answer on {endpoint}/healthz")
}

async fn stop(server: &mut tokio::process::Child) {
    if let Some(pid) = server.id() {
        // SAFETY: kill(2) on our own child process.
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(pid as i32, libc::SIGTERM);
        }
    }
    let _ = server.wait().await;
}

/// Sum of file sizes and newest modification time under `dir`, skipping
/// generated directories: any edit, addition or removal changes it.
fn tree_fingerprint(dir: &Path) -> (u64, u64, SystemTime) {
    fn walk(p: &Path, acc: &mut (u64, u64, SystemTime)) {
        let Ok(entries) = std::fs::read_dir(p) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            if IGNORED.iter().any(|i| name == *i) {
                continue;
            }
            let Ok(meta) = e.metadata() else { continue };
            if meta.is_dir() {
                walk(&e.path(), acc);
            } else {
                acc.0 += 1;
                acc.1 += meta.len();
                if let Ok(m) = meta.modified() {
                    acc.2 = acc.2.max(m);
                }
            }
        }
    }
    let mut acc = (0, 0, SystemTime::UNIX_EPOCH);
    walk(dir, &mut acc);
    acc
}
