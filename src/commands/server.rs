//! `updraft server`: runs the platform until SIGTERM or Ctrl-C, then drains.

use anyhow::Context as _;
use axum::http::HeaderValue;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use updraft_platform::{IsolationMode, Platform, PlatformConfig};

/// Shown after `--help`.
pub const EXAMPLES: &str = r#"Examples:
  updraft server                                   127.0.0.1:8080, data in ./.updraft
  updraft server --listen 0.0.0.0:8080 --data-dir /var/lib/updraft
  updraft server --database-url postgres://updraft@db/updraft
  updraft server --tls-cert cert.pem --tls-key key.pem
  updraft server --isolation none                  trusted code only, no sandbox
  updraft server --runtime nodejs22.x=/opt/node22/bin/node   serve nodejs22.x with that node
  updraft server --install-sdk                     boto3 and @aws-sdk/client-* for functions (pip, npm)
  updraft server --sdk-dir /opt/updraft-sdk        an SDK installed elsewhere (hosts without network)

The server and `updraft dev` are alternatives: both listen on 127.0.0.1:8080
unless told otherwise. SIGTERM, SIGINT or SIGHUP drain it: new work is
refused, in-flight invocations finish, instances stop, exit 0."#;

#[derive(clap::Args)]
pub struct Args {
    /// The data directory (created if missing): the SQLite database, code
    /// packages, the generated credentials file, compiled wasm, the lock
    /// that keeps a second server off it.
    #[arg(long, env = "UPDRAFT_DATA_DIR", default_value = "./.updraft")]
    pub data_dir: PathBuf,
    /// Address to listen on (loopback by default).
    #[arg(long, env = "UPDRAFT_LISTEN", default_value = "127.0.0.1:8080")]
    listen: String,
    /// `sqlite://PATH` (default: DATA_DIR/updraft.db) or `postgres://…`.
    #[arg(long, env = "UPDRAFT_DATABASE_URL")]
    database_url: Option<String>,
    /// A TOML price table for `usage` (default: Lambda's public x86 prices).
    #[arg(long, env = "UPDRAFT_PRICES")]
    prices: Option<PathBuf>,
    /// The region reported in ARNs and to functions.
    #[arg(long, env = "UPDRAFT_REGION", default_value = "us-east-1")]
    region: String,
    /// The wait before an asynchronous event's first retry; the second waits
    /// twice as long (Lambda: about 1 and 2 minutes).
    #[arg(long, env = "UPDRAFT_RETRY_BASE", default_value = "1m", value_parser = parse_duration)]
    retry_base: Duration,
    /// Function log lines older than this are deleted.
    #[arg(long, env = "UPDRAFT_LOG_RETENTION", default_value = "7days", value_parser = parse_duration)]
    log_retention: Duration,
    /// Log lines kept per function; older ones are deleted first (0 keeps all).
    #[arg(long, env = "UPDRAFT_LOG_RETENTION_LINES", default_value_t = updraft_platform::DEFAULT_LOG_RETENTION_LINES)]
    log_retention_lines: u64,
    /// Output one invocation may log (e.g. 4MiB, 512KiB); past it the
    /// output is dropped and one line says how much (Lambda truncates too).
    /// Each line also counts 128 bytes.
    #[arg(long, env = "UPDRAFT_INVOCATION_LOG_LIMIT", default_value = "4MiB", value_parser = parse_size)]
    invocation_log_limit: u64,
    /// Where compiled wasm components are kept (default DATA_DIR/wasm).
    /// Servers may share one; only trusted servers may write to it.
    #[arg(long, env = "UPDRAFT_WASM_CACHE_DIR")]
    wasm_cache_dir: Option<PathBuf>,
    /// How much isolation functions must get: `strict` (every protection,
    /// or refuse to start), `auto` (what this host allows; the rest is
    /// reported off) or `none` (trusted code only: functions run as the
    /// server's user, on its network, with its files in reach).
    #[arg(long, env = "UPDRAFT_ISOLATION", default_value = "strict")]
    isolation: IsolationMode,
    /// Let functions reach what listens on the host's loopback (they share
    /// the host's network instead of a namespace of their own).
    #[arg(long, env = "UPDRAFT_ALLOW_FUNCTION_LOOPBACK")]
    allow_function_loopback: bool,
    /// The private IPv4 network instances' outbound interfaces are numbered
    /// from (a /30 each; traffic leaves through NAT). Every server on a host
    /// may share it.
    #[arg(long, env = "UPDRAFT_FUNCTION_SUBNET", default_value = updraft_platform::DEFAULT_FUNCTION_SUBNET)]
    function_subnet: updraft_platform::FunctionSubnet,
    /// How long the credentials minted for each function instance last
    /// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`;
    /// Lambda's last up to 12 hours).
    #[arg(long, env = "UPDRAFT_FUNCTION_CREDENTIALS_TTL", default_value = "12h", value_parser = parse_duration)]
    function_credentials_ttl: Duration,
    /// A role that CreateFunction's `Role` may name (its ARN
    /// `arn:aws:iam::ACCOUNT:role/NAME`, or NAME), as
    /// NAME=PERMISSION[,PERMISSION…] with permissions as in the manifest
    /// (`lambda:InvokeFunction:other`); repeat for more roles. A function
    /// naming a role the server does not define gets no permissions.
    #[arg(long = "role", value_name = "NAME=PERMISSIONS", value_parser = parse_role)]
    roles: Vec<(String, Vec<String>)>,
    /// How long a drain (SIGTERM) waits for in-flight invocations.
    #[arg(long, env = "UPDRAFT_DRAIN_TIMEOUT", default_value = "15m", value_parser = parse_duration)]
    drain_timeout: Duration,
    /// Connections held at once. At the cap, a new connection closes the
    /// oldest one that has no request in flight (idle or still sending its
    /// request head), so idle connections cannot lock clients out.
    #[arg(long, env = "UPDRAFT_MAX_CONNECTIONS", default_value_t = 8192)]
    max_connections: usize,
    /// How long a client has, from connecting (or from the first byte of its
    /// next request), to send a whole request head.
    #[arg(long, env = "UPDRAFT_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    header_read_timeout: Duration,
    /// A connection with no request in flight for this long is closed.
    #[arg(long, env = "UPDRAFT_IDLE_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    idle_timeout: Duration,
    /// Serve HTTPS with this PEM certificate chain (leaf first); needs --tls-key.
    #[arg(long, env = "UPDRAFT_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, env = "UPDRAFT_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// The AWS SDK that python3 and nodejs functions import without
    /// bundling it: `python/` (boto3, a `pip install --target` tree) and
    /// `nodejs/node_modules` (@aws-sdk/client-*) [default: DATA_DIR/runtimes/sdk].
    /// Servers may share one; it must be readable by every user.
    #[arg(long, env = "UPDRAFT_SDK_DIR")]
    sdk_dir: Option<PathBuf>,
    /// Install the pinned AWS SDK into the SDK directory at start unless it
    /// is there (`python3 -m pip` and `npm` from PyPI and npm; a failure
    /// stops the server).
    #[arg(long, env = "UPDRAFT_INSTALL_SDK")]
    install_sdk: bool,
    /// Export every invocation's trace spans over OTLP to this collector
    /// (`http://host:4318` for http/protobuf, `http://host:4317` for grpc;
    /// else OTEL_EXPORTER_OTLP_ENDPOINT). Unset: no spans are made or sent.
    #[arg(long, env = "UPDRAFT_OTLP_ENDPOINT")]
    otlp_endpoint: Option<String>,
    /// The OTLP transport: `http/protobuf` (default) or `grpc` (else
    /// OTEL_EXPORTER_OTLP_PROTOCOL).
    #[arg(long, env = "UPDRAFT_OTLP_PROTOCOL")]
    otlp_protocol: Option<updraft_traces::Protocol>,
    /// Serve `/metrics` without credentials, for a Prometheus scraper on a
    /// private network (by default it needs the admin credentials).
    #[arg(long, env = "UPDRAFT_METRICS_PUBLIC")]
    metrics_public: bool,
    /// Count nothing for `/metrics` and do not serve it (it answers 404).
    #[arg(long, env = "UPDRAFT_NO_METRICS", conflicts_with = "metrics_public")]
    no_metrics: bool,
    #[command(flatten)]
    runtime: RuntimeArgs,
}

/// `--runtime ID=PATH`, of `server` and `dev`.
#[derive(clap::Args)]
pub struct RuntimeArgs {
    /// Serve a Lambda runtime id with this interpreter, besides every
    /// python3.X and node on the instance PATH (/usr/local/bin:/usr/bin:/bin):
    /// `nodejs22.x=/opt/node22/bin/node`, `python3.13=/opt/py/bin/python3.13`.
    /// Repeatable; the interpreter must report that version. Its directory
    /// (and a `lib` beside a `bin`) is visible, read-only, to functions.
    #[arg(
        long = "runtime",
        value_name = "ID=PATH",
        env = "UPDRAFT_RUNTIME",
        value_delimiter = ','
    )]
    pub runtimes: Vec<updraft_platform::RuntimeMapping>,
    /// Start every python3 instance afresh by exec, instead of forking it
    /// from a template process that has the interpreter and the bootstrap
    /// loaded (same isolation either way; see docs/architecture.md).
    #[arg(long, env = "UPDRAFT_NO_ZYGOTES")]
    pub no_zygotes: bool,
}

/// File descriptors kept for everything but client connections: the store,
/// instances' pipes and Runtime API sockets, code and wasm files.
const FD_RESERVE: u64 = 1024;

fn parse_duration(s: &str) -> Result<Duration, String> {
    updraft_core::duration::parse(s)
}

fn parse_role(s: &str) -> Result<(String, Vec<String>), String> {
    let (name, perms) = s
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=PERMISSION[,PERMISSION…], got {s:?}"))?;
    let name = name.trim();
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b))
    {
        return Err(format!(
            "expected a role name of letters, digits and +=,.@_- before '=', got {name:?}"
        ));
    }
    let mut out = Vec::new();
    for p in perms.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if !updraft_core::permission_is_valid(p) {
            return Err(format!(
                "role {name}: expected permissions of the form {}, got {p:?}",
                updraft_core::PERMISSION_EXPECTED
            ));
        }
        out.push(p.to_string());
    }
    Ok((name.to_string(), out))
}

fn parse_size(s: &str) -> Result<u64, String> {
    s.parse::<bytesize::ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|e| format!("expected a size such as 4MiB or 512KiB, got {s:?} ({e})"))
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    init_tracing();
    // Everything is validated before the port is bound.
    let listen: SocketAddr = args.listen.parse().with_context(|| {
        format!(
            "--listen: expected an address such as 127.0.0.1:8080, got {:?}",
            args.listen
        )
    })?;
    for (flag, d) in [
        ("--header-read-timeout", args.header_read_timeout),
        ("--idle-timeout", args.idle_timeout),
    ] {
        anyhow::ensure!(
            !d.is_zero(),
            "{flag}: expected a duration above zero, such as 10s"
        );
    }
    anyhow::ensure!(
        args.max_connections > 0,
        "--max-connections: expected at least 1"
    );
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(
            updraft_listener::Tls::from_pem_files(cert, key).context("--tls-cert / --tls-key")?,
        ),
        _ => None,
    };
    let max_connections = connection_cap(args.max_connections);
    let prices = match &args.prices {
        Some(p) => updraft_metering::Prices::load(p)?,
        None => updraft_metering::Prices::default(),
    };
    let tracer = tracer(&args)?;
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating --data-dir {}", args.data_dir.display()))?;
    let data_dir = args.data_dir.canonicalize()?;
    // Before anything touches the data dir or the port: one server per data dir.
    let lock = updraft_platform::DataDirLock::acquire(&data_dir).map_err(platform_error)?;
    let database_url = args
        .database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("updraft.db").display()));
    let listener = updraft_listener::bind(listen)?;
    let local = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let shown = if local.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], local.port()))
    } else {
        local
    };
    let sdk = function_sdk(&args, &data_dir).await?;
    let config = PlatformConfig {
        data_dir: data_dir.clone(),
        lock,
        database_url,
        region: args.region.clone(),
        prices,
        log_retention: args.log_retention,
        log_limits: updraft_platform::LogLimits {
            per_invocation: args.invocation_log_limit,
            per_function_lines: args.log_retention_lines,
        },
        public_url: format!("{scheme}://{shown}"),
        retry_base: args.retry_base,
        wasm_cache_dir: args.wasm_cache_dir.clone(),
        wasm_compiler: Some(updraft_runtime_wasm::Compiler::this_binary(&[
            "compile-wasm",
        ])),
        isolation: args.isolation,
        allow_function_loopback: args.allow_function_loopback,
        function_subnet: args.function_subnet,
        roles: args.roles.iter().cloned().collect(),
        function_credentials_ttl: args.function_credentials_ttl,
        runtimes: args.runtime.runtimes.clone(),
        tracer,
        metrics: !args.no_metrics,
        zygotes: !args.runtime.no_zygotes,
    };
    let platform = Platform::start_with_sdk(config, sdk)
        .await
        .map_err(platform_error)?;

    let app = app(platform.clone(), !args.no_metrics, args.metrics_public);
    // Instances reach the AWS APIs (not the gateway) on their Runtime API
    // address, with credentials of their own.
    platform.serve_functions(updraft_api::target::wrap(
        updraft_api::router(platform.clone()),
        platform.clone(),
    ));
    // Before "listening": a SIGTERM sent as soon as that line shows drains.
    let mut signals = ShutdownSignals::new()?;
    eprintln!(
        "updraft {} listening on {scheme}://{local} (data dir {}, credentials in {})",
        env!("CARGO_PKG_VERSION"),
        data_dir.display(),
        if updraft_auth::Credentials::from_env().is_some() {
            "UPDRAFT_ACCESS_KEY_ID/UPDRAFT_SECRET_ACCESS_KEY".to_string()
        } else {
            data_dir.join("credentials").display().to_string()
        }
    );
    let config = updraft_listener::Config {
        max_connections,
        header_read_timeout: args.header_read_timeout,
        idle_timeout: args.idle_timeout,
        tls,
    };
    updraft_listener::serve(listener, app, config, async move { signals.recv().await }).await;
    eprintln!("updraft: draining");
    platform.shutdown(args.drain_timeout).await;
    // Closing every connection folds SQLite's WAL into the database file.
    platform.store().close().await;
    eprintln!("updraft: stopped");
    Ok(ExitCode::SUCCESS)
}

/// The OTLP exporter of `--otlp-endpoint` / `--otlp-protocol`, which fall
/// back to OpenTelemetry's standard variables; an empty value is unset.
fn tracer(args: &Args) -> anyhow::Result<updraft_traces::Tracer> {
    let std_var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let endpoint = (args.otlp_endpoint.clone().filter(|u| !u.is_empty()))
        .or_else(|| std_var("OTEL_EXPORTER_OTLP_ENDPOINT"));
    let Some(endpoint) = endpoint else {
        return Ok(updraft_traces::Tracer::off());
    };
    let protocol = match (args.otlp_protocol, std_var("OTEL_EXPORTER_OTLP_PROTOCOL")) {
        (Some(p), _) => p,
        (None, Some(v)) => v
            .parse()
            .with_context(|| format!("OTEL_EXPORTER_OTLP_PROTOCOL={v:?}"))?,
        (None, None) => updraft_traces::Protocol::default(),
    };
    Ok(updraft_traces::Tracer::otlp(&endpoint, protocol)?)
}

/// The AWS SDK for functions: `--sdk-dir` (or DATA_DIR/runtimes/sdk),
/// installed first with `--install-sdk`.
async fn function_sdk(
    args: &Args,
    data_dir: &std::path::Path,
) -> anyhow::Result<updraft_platform::Sdk> {
    let dir = match &args.sdk_dir {
        Some(d) => std::path::absolute(d).with_context(|| format!("--sdk-dir {}", d.display()))?,
        None => data_dir.join(updraft_platform::SDK_DIR),
    };
    let found = updraft_platform::Sdk::find(&dir);
    if !args.install_sdk || found.is_pinned() {
        return Ok(found);
    }
    eprintln!(
        "updraft: installing the AWS SDK for functions into {} (pip, npm) …",
        dir.display()
    );
    let sdk = tokio::task::spawn_blocking(move || updraft_platform::Sdk::install(&dir))
        .await?
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(sdk)
}

/// A start-up failure as the operator should read it (internal details included).
fn platform_error(e: updraft_platform::PlatformError) -> anyhow::Error {
    match e {
        updraft_platform::PlatformError::Internal(m) => anyhow::anyhow!("{m}"),
        other => anyhow::anyhow!("{other}"),
    }
}

/// `--max-connections`, lowered to what the open-files limit allows (raised
/// to its hard limit first).
fn connection_cap(wanted: usize) -> usize {
    let limit = match updraft_listener::raise_fd_limit() {
        Ok(limit) => limit,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read or raise the open-files limit");
            return wanted;
        }
    };
    let usable = limit.saturating_sub(FD_RESERVE).max(1);
    if wanted as u64 > usable {
        tracing::warn!(
            "--max-connections {wanted} is more than the open-files limit ({limit}) allows; using {usable}"
        );
        return usable as usize;
    }
    wanted
}

/// The whole HTTP surface: control API, gateway, `/metrics`, and a request id on every response.
pub fn app(platform: Platform, metrics: bool, metrics_public: bool) -> axum::Router {
    let mut app =
        updraft_api::router(platform.clone()).merge(updraft_gateway::router(platform.clone()));
    if metrics {
        app = app.merge(updraft_api::metrics_router(
            platform.clone(),
            metrics_public,
        ));
    }
    // AWS's JSON-protocol services (SQS) on `POST /` with X-Amz-Target.
    updraft_api::target::wrap(app, platform).layer(axum::middleware::map_response(
        |mut resp: axum::response::Response| async move {
            if !resp.headers().contains_key("x-amzn-requestid") {
                if let Ok(v) = HeaderValue::from_str(&updraft_core::new_request_id()) {
                    resp.headers_mut().insert("x-amzn-requestid", v);
                }
            }
            resp
        },
    ))
}

/// SIGTERM, SIGINT (Ctrl-C) or SIGHUP (the terminal closed): each stops the
/// server, or `updraft dev` and its server. Once created, these signals no
/// longer end the process by themselves: they wait for `recv`.
pub struct ShutdownSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl ShutdownSignals {
    pub fn new() -> anyhow::Result<ShutdownSignals> {
        use tokio::signal::unix::{signal, SignalKind};
        let handler = |kind: SignalKind, name: &str| {
            signal(kind).with_context(|| format!("installing the {name} handler"))
        };
        Ok(ShutdownSignals {
            term: handler(SignalKind::terminate(), "SIGTERM")?,
            int: handler(SignalKind::interrupt(), "SIGINT")?,
            hup: handler(SignalKind::hangup(), "SIGHUP")?,
        })
    }

    /// Waits for the first of the three.
    pub async fn recv(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
            _ = self.hup.recv() => {}
        }
    }
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("UPDRAFT_LOG")
        .unwrap_or_else(|_| EnvFilter::new("warn,updraft=info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}
