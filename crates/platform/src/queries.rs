//! Read-only queries: what `ls`, `get`, `logs`, `usage` and `dlq` show.

use crate::{Platform, PlatformError};
use serde::{Deserialize, Serialize};
use updraft_core::now_ms;
use updraft_core::UrlAuth;
use updraft_metering::UsageReport;
use updraft_store::{LogQuery, VersionRow};

/// What `ls` and `get` show of a function.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FunctionInfo {
    pub name: String,
    pub app: Option<String>,
    /// The published version `$LATEST` equals, or 0 when it has unpublished changes.
    pub version: i64,
    /// The runtime as deployed (`python3`, `nodejs22.x`, …).
    pub runtime: String,
    /// Lambda's id for it here (`python3` → `python3.11`).
    #[serde(default)]
    pub runtime_id: String,
    /// The version of the interpreter it runs on (`3.11.2`); None for
    /// `provided` and `wasm`, or when this server has no such interpreter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interpreter_version: Option<String>,
    pub handler: String,
    pub memory_mb: u32,
    pub timeout_ms: u64,
    pub url: String,
    pub url_auth: updraft_core::UrlAuth,
    pub routes: Vec<String>,
    /// Each trigger in a word and its subject: `http GET /x`,
    /// `schedule rate(1 minute)`, `queue jobs`, `bus orders`.
    #[serde(default)]
    pub triggers: Vec<String>,
    pub code_sha256: String,
    pub code_size: i64,
    pub updated_ms: i64,
    pub live_instances: u32,
    /// Of those, started and waiting for work.
    pub idle_instances: u32,
}

/// Log lines as the API returns them.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LogEntry {
    pub id: i64,
    pub ts_ms: i64,
    pub request_id: String,
    pub text: String,
    #[serde(default)]
    pub function: String,
    /// The invocation's version once its record is written (0 = `$LATEST`).
    #[serde(default)]
    pub version: Option<i64>,
    /// The level the line carries (`TRACE`…`FATAL`), if any.
    #[serde(default)]
    pub level: Option<String>,
}

impl Platform {
    /// `published_revision` is that of version `last_published`, if any;
    /// `url_auth` the function's own setting (else the config's).
    fn info(
        &self,
        name: &str,
        latest: &VersionRow,
        app: Option<String>,
        updated_ms: i64,
        (last_published, published_revision): (i64, Option<&str>),
        url_auth: Option<UrlAuth>,
    ) -> FunctionInfo {
        let version = if last_published > 0 && published_revision == Some(latest.revision.as_str())
        {
            last_published
        } else {
            0
        };
        FunctionInfo {
            name: name.into(),
            app,
            version,
            runtime: latest.config.runtime.clone(),
            runtime_id: self.runtime_id(&latest.config.runtime),
            interpreter_version: match self.runtimes().resolve(&latest.config.runtime) {
                Ok(Some(i)) => Some(i.version.to_string()),
                _ => None,
            },
            handler: latest.config.handler.clone(),
            memory_mb: latest.config.memory_mb,
            timeout_ms: latest.config.timeout_ms,
            url: self.function_url(name),
            url_auth: url_auth.unwrap_or(latest.config.url),
            routes: latest.config.routes().map(|r| r.key()).collect(),
            triggers: latest
                .config
                .triggers
                .iter()
                .map(describe_trigger)
                .collect(),
            code_sha256: latest.code_sha256.clone(),
            code_size: latest.code_size,
            updated_ms,
            live_instances: self.inner.scheduler.live_instances(name),
            idle_instances: self.inner.scheduler.idle_instances(name),
        }
    }

    /// Every function, by name: one query however many there are.
    pub async fn list(&self) -> Result<Vec<FunctionInfo>, PlatformError> {
        let store = &self.inner.store;
        Ok(store
            .list_with_latest()
            .await?
            .into_iter()
            .map(|l| {
                let f = l.function;
                self.info(
                    &f.name,
                    &l.latest,
                    f.app,
                    f.updated_ms,
                    (f.last_published, l.published_revision.as_deref()),
                    l.url_auth,
                )
            })
            .collect())
    }

    pub async fn get(&self, name: &str) -> Result<FunctionInfo, PlatformError> {
        let store = &self.inner.store;
        let f = store
            .get_function(name)
            .await?
            .ok_or_else(|| self.not_found(name))?;
        let latest = store
            .get_version(name, 0)
            .await?
            .ok_or_else(|| self.not_found(name))?;
        let published = match f.last_published {
            0 => None,
            n => store.get_version(name, n).await?.map(|v| v.revision),
        };
        let url_auth = store.function_settings(name).await?.url_auth;
        Ok(self.info(
            name,
            &latest,
            f.app,
            f.updated_ms,
            (f.last_published, published.as_deref()),
            url_auth,
        ))
    }

    // ---- logs and usage ---------------------------------------------------

    /// A function's lines (optionally of one request) after `after_id`.
    pub async fn logs(
        &self,
        name: &str,
        since_ms: i64,
        request_id: Option<&str>,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<LogEntry>, PlatformError> {
        let q = LogQuery::of_function(name, since_ms, request_id, after_id, limit);
        self.query_logs(&q).await
    }

    /// The log lines `q` selects (written ones: the sink is flushed first).
    pub async fn query_logs(&self, q: &LogQuery<'_>) -> Result<Vec<LogEntry>, PlatformError> {
        self.inner.logs.flush().await;
        let rows = self.inner.store.query_logs(q).await?;
        Ok(rows
            .into_iter()
            .map(|r| LogEntry {
                id: r.id,
                ts_ms: r.line.ts_ms,
                request_id: r.line.request_id,
                text: r.line.text,
                function: r.line.function,
                version: r.version,
                level: r.level,
            })
            .collect())
    }

    /// Whether any function belongs to `app`.
    pub async fn app_exists(&self, app: &str) -> Result<bool, PlatformError> {
        Ok(!self.inner.store.app_functions(app).await?.is_empty())
    }

    /// Usage since `since_ms` per function, and per UTC day with `by_day`.
    pub async fn usage(&self, since_ms: i64, by_day: bool) -> Result<UsageReport, PlatformError> {
        self.inner.records.flush().await;
        let until_ms = now_ms() + 1;
        let records = self
            .inner
            .store
            .invocations_since(since_ms, until_ms)
            .await?;
        Ok(updraft_metering::usage(
            &records,
            since_ms,
            until_ms,
            &self.inner.config.prices,
            by_day,
        ))
    }

    /// The function's dead letters: Lambda destination invocation records of
    /// the events that failed for good without a destination, oldest first.
    pub async fn dead_letters(&self, name: &str) -> Result<Vec<serde_json::Value>, PlatformError> {
        if self.inner.store.get_function(name).await?.is_none() {
            return Err(self.not_found(name));
        }
        let letters = self.inner.store.dead_letters(name, 10_000).await?;
        Ok(letters
            .iter()
            .map(|d| {
                serde_json::from_str(&d.record)
                    .unwrap_or_else(|_| serde_json::Value::String(d.record.clone()))
            })
            .collect())
    }

    /// Events of `name` still on the queue (pending or running).
    pub async fn queued_events(&self, name: &str) -> Result<i64, PlatformError> {
        Ok(self.inner.store.count_events(Some(name)).await?)
    }
}

/// A trigger in one line, for listings.
fn describe_trigger(t: &updraft_core::Trigger) -> String {
    use updraft_core::Trigger;
    match t {
        Trigger::Http(r) => format!("http {}", r.key()),
        Trigger::Schedule(s) => match updraft_rules::schedule::Schedule::parse(s) {
            Ok(s) => format!("schedule {}", s.describe()),
            Err(_) => "schedule (invalid)".into(),
        },
        Trigger::Queue(q) => format!("queue {}", q.name),
        Trigger::Event(e) => format!("bus {}", e.bus),
    }
}
