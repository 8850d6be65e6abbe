//! One module per `updraft` command.

pub mod deploy;
pub mod dev;
pub mod dlq;
pub mod invoke;
pub mod logs;
pub mod ls;
pub mod rm;
pub mod rollback;
pub mod server;
pub mod usage;

use std::path::PathBuf;

/// What every command may need: where the server is, where its data lives
/// and which certificates to trust for https.
pub struct Context {
    pub endpoint: String,
    pub data_dir: PathBuf,
    pub ca_cert: Option<PathBuf>,
}

impl Context {
    pub fn client(&self) -> anyhow::Result<crate::client::Client> {
        crate::client::Client::new(&self.endpoint, &self.data_dir, self.ca_cert.as_deref())
    }
}

/// Parses `--since 1h` into epoch milliseconds.
pub fn since_ms(since: &str) -> anyhow::Result<i64> {
    let d = updraft_core::duration::parse(since).map_err(|e| anyhow::anyhow!("--since: {e}"))?;
    Ok(updraft_core::now_ms() - d.as_millis() as i64)
}

/// RFC 3339 with milliseconds, UTC.
pub fn rfc3339(ms: i64) -> String {
    humantime::format_rfc3339_millis(
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64),
    )
    .to_string()
}
