//! One module per `updraft` command.

pub mod compile_wasm;
pub mod deploy;
pub mod dev;
pub mod dlq;
pub mod invoke;
pub mod logs;
pub mod ls;
pub mod publish;
pub mod queue;
pub mod rm;
pub mod rollback;
pub mod server;
pub mod usage;

use std::path::PathBuf;

/// The flags of every command that talks to a server.
#[derive(clap::Args)]
pub struct ClientArgs {
    /// The server to talk to.
    #[arg(
        long,
        env = "UPDRAFT_ENDPOINT",
        default_value = "http://127.0.0.1:8080"
    )]
    pub endpoint: String,
    /// The server's data directory: the CLI reads the admin credentials from
    /// DATA_DIR/credentials unless UPDRAFT_ACCESS_KEY_ID and
    /// UPDRAFT_SECRET_ACCESS_KEY are set.
    #[arg(long, env = "UPDRAFT_DATA_DIR", default_value = "./.updraft")]
    pub data_dir: PathBuf,
    /// PEM certificates to trust (instead of the system's) when the endpoint
    /// is https, e.g. the certificate of a server started with --tls-cert.
    #[arg(long, env = "UPDRAFT_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
}

/// What a client command needs: where the server is, where its
/// credentials live and which certificates to trust for https.
pub struct Context {
    pub endpoint: String,
    pub data_dir: PathBuf,
    pub ca_cert: Option<PathBuf>,
}

impl From<&ClientArgs> for Context {
    fn from(a: &ClientArgs) -> Context {
        Context {
            endpoint: a.endpoint.clone(),
            data_dir: a.data_dir.clone(),
            ca_cert: a.ca_cert.clone(),
        }
    }
}

impl Context {
    pub fn client(&self) -> anyhow::Result<crate::client::Client> {
        crate::client::Client::new(&self.endpoint, &self.data_dir, self.ca_cert.as_deref())
    }
}

/// A point in time for `flag`: a duration ago (`10m`, `7days`) or an RFC 3339
/// time (`2026-01-02T10:00:00Z`, any offset), as Unix milliseconds.
pub fn time_ms(flag: &str, value: &str) -> anyhow::Result<i64> {
    if let Ok(d) = updraft_core::duration::parse(value) {
        return Ok(updraft_core::now_ms() - d.as_millis() as i64);
    }
    match chrono::DateTime::parse_from_rfc3339(value) {
        Ok(t) => Ok(t.timestamp_millis()),
        Err(_) => anyhow::bail!(
            "{flag}: expected a duration such as 10m or 7days, or an RFC 3339 time such as \
             2026-01-02T10:00:00Z, got {value:?}"
        ),
    }
}

/// RFC 3339 with milliseconds, UTC.
pub fn rfc3339(ms: i64) -> String {
    humantime::format_rfc3339_millis(
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64),
    )
    .to_string()
}

/// A flag's value: the text itself, `@FILE`'s bytes, or stdin's for `@-`.
pub fn read_arg(flag: &str, arg: &str) -> anyhow::Result<Vec<u8>> {
    use std::io::Read;
    Ok(match arg.strip_prefix('@') {
        Some("-") => {
            let mut buf = Vec::new();
            std::io::stdin().read_to_end(&mut buf)?;
            buf
        }
        Some(file) => std::fs::read(file).map_err(|e| anyhow::anyhow!("{flag} @{file}: {e}"))?,
        None => arg.as_bytes().to_vec(),
    })
}

/// A command whose every failure exits 2, its message on stderr (`invoke`,
/// `queue send`: 1 is kept for a function's own error).
pub async fn exit_2_on_error(
    command: impl std::future::Future<Output = anyhow::Result<std::process::ExitCode>>,
) -> anyhow::Result<std::process::ExitCode> {
    match command.await {
        Ok(code) => Ok(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            Ok(std::process::ExitCode::from(2))
        }
    }
}
