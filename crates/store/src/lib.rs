//! Updraft's persistence: functions and their versions, invocation records and
//! logs, behind one [`Store`] whose SQL runs unchanged on SQLite (the embedded
//! default) and PostgreSQL through sqlx's `Any` driver; only DDL differs.

use sha2::{Digest, Sha256};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyConnection, Connection};
use sqlx::{AnyPool, Executor, Row};
use std::sync::Arc;
use std::time::{Duration, Instant};
use updraft_core::{now_ms, FunctionConfig, LogLine};

pub mod batch;
mod identity;
mod queue;
mod settings;
#[cfg(test)]
mod tests;

pub use batch::{with_retries, BatchWriter, Weigh};
pub use identity::FIRST_FUNCTION_UID;
pub use queue::{DeadLetter, EventInvokeConfigRow, LastError, NewEvent, QueuedEvent};
pub use settings::{AliasRow, AliasUpdate, FunctionSettings};

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store configuration: {0}")]
    Config(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("conflict: {0}")]
    Conflict(String),
    /// The database cannot be written or reached now (a full disk, an I/O
    /// error, a lost connection); the cause is safe to show to clients.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    #[error("database: {0}")]
    Database(sqlx::Error),
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match unavailable_cause(&e) {
            Some(cause) => StoreError::Unavailable(cause),
            None => StoreError::Database(e),
        }
    }
}

/// Why the store cannot serve now, for errors that are about the database's
/// state rather than the request: SQLite's full, I/O, read-only, cannot-open
/// and busy results; PostgreSQL's insufficient resources (class 53, with
/// `disk_full`), connection and system errors; a lost connection or a
/// pool that had none to give.
fn unavailable_cause(e: &sqlx::Error) -> Option<String> {
    match e {
        sqlx::Error::Database(db) => {
            if let Some(sqlite) = db.try_downcast_ref::<sqlx::sqlite::SqliteError>() {
                let code: i64 = sqlx::error::DatabaseError::code(sqlite)?.parse().ok()?;
                // The primary result code is the low byte of an extended one.
                matches!(code & 0xff, 5 | 7 | 8 | 10 | 13 | 14)
                    .then(|| format!("{} (SQLite error {code})", db.message()))
            } else if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
                let state = pg.code();
                ["53", "08", "57P", "58"]
                    .iter()
                    .any(|class| state.starts_with(class))
                    .then(|| format!("{} (PostgreSQL error {state})", db.message()))
            } else {
                None
            }
        }
        sqlx::Error::Io(io) => Some(format!("cannot reach the database: {io}")),
        sqlx::Error::PoolTimedOut => Some("no database connection was free in time".into()),
        sqlx::Error::PoolClosed => Some("the store is closed".into()),
        sqlx::Error::WorkerCrashed => Some("the database connection's worker stopped".into()),
        _ => None,
    }
}

/// Which SQL dialect the store talks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// One function; its content lives in its versions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FunctionRow {
    pub name: String,
    pub app: Option<String>,
    pub created_ms: i64,
    pub updated_ms: i64,
    /// The highest published version that still exists, 0 if none.
    pub last_published: i64,
}

/// `$LATEST` (version 0) or a published, immutable version (1, 2, …).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionRow {
    pub function: String,
    /// 0 = `$LATEST`.
    pub version: i64,
    pub config: FunctionConfig,
    pub code_sha256: String,
    pub code_size: i64,
    /// Hex sha256 over the config JSON and the code hash: same content, same revision.
    pub revision: String,
    /// For `$LATEST`, when it was last written.
    pub created_ms: i64,
    pub description: String,
}

/// What [`Store::deploy`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeployOutcome {
    /// The published version now matching `$LATEST`.
    pub version: VersionRow,
    /// False when the deploy changed nothing at all.
    pub changed: bool,
}

/// The metering record of one invocation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvocationRecord {
    pub request_id: String,
    pub function: String,
    pub version: i64,
    pub start_ms: i64,
    pub duration_us: i64,
    pub billed_ms: i64,
    pub memory_mb: i64,
    pub max_memory_mb: i64,
    pub init_us: Option<i64>,
    pub cold: bool,
    /// `success`, `function`, `timeout`, `out_of_memory`, `crash`, `init` or `throttled`.
    pub outcome: String,
    pub error_type: Option<String>,
}

/// One schema step; the two texts must leave both databases equivalent.
pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sqlite: &'static str,
    pub postgres: &'static str,
}

/// Applied in order at open; never edit a released entry, append a new one.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial",
        // `version_seq` never goes down, so deleted version numbers are never reused
        // (Lambda semantics); `last_published` tracks the highest surviving one.
        sqlite: "
CREATE TABLE functions (
    name TEXT PRIMARY KEY,
    app TEXT,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL,
    last_published BIGINT NOT NULL DEFAULT 0,
    version_seq BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE versions (
    function TEXT NOT NULL REFERENCES functions(name) ON DELETE CASCADE,
    version BIGINT NOT NULL,
    config TEXT NOT NULL,
    code_sha256 TEXT NOT NULL,
    code_size BIGINT NOT NULL,
    revision TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (function, version)
);
CREATE TABLE invocations (
    request_id TEXT PRIMARY KEY,
    function TEXT NOT NULL,
    version BIGINT NOT NULL,
    start_ms BIGINT NOT NULL,
    duration_us BIGINT NOT NULL,
    billed_ms BIGINT NOT NULL,
    memory_mb BIGINT NOT NULL,
    max_memory_mb BIGINT NOT NULL,
    init_us BIGINT,
    cold BIGINT NOT NULL,
    outcome TEXT NOT NULL,
    error_type TEXT
);
CREATE INDEX invocations_start_ms ON invocations (start_ms);
CREATE TABLE logs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts_ms BIGINT NOT NULL,
    function TEXT NOT NULL,
    request_id TEXT NOT NULL,
    text TEXT NOT NULL
);
CREATE INDEX logs_function_id ON logs (function, id);
CREATE INDEX logs_ts_ms ON logs (ts_ms);
",
        // COLLATE "C" makes ORDER BY name match SQLite's byte order.
        postgres: r#"
CREATE TABLE functions (
    name TEXT COLLATE "C" PRIMARY KEY,
    app TEXT,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL,
    last_published BIGINT NOT NULL DEFAULT 0,
    version_seq BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE versions (
    function TEXT COLLATE "C" NOT NULL REFERENCES functions(name) ON DELETE CASCADE,
    version BIGINT NOT NULL,
    config TEXT NOT NULL,
    code_sha256 TEXT NOT NULL,
    code_size BIGINT NOT NULL,
    revision TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (function, version)
);
CREATE TABLE invocations (
    request_id TEXT PRIMARY KEY,
    function TEXT NOT NULL,
    version BIGINT NOT NULL,
    start_ms BIGINT NOT NULL,
    duration_us BIGINT NOT NULL,
    billed_ms BIGINT NOT NULL,
    memory_mb BIGINT NOT NULL,
    max_memory_mb BIGINT NOT NULL,
    init_us BIGINT,
    cold BIGINT NOT NULL,
    outcome TEXT NOT NULL,
    error_type TEXT
);
CREATE INDEX invocations_start_ms ON invocations (start_ms);
CREATE TABLE logs (
    id BIGSERIAL PRIMARY KEY,
    ts_ms BIGINT NOT NULL,
    function TEXT NOT NULL,
    request_id TEXT NOT NULL,
    text TEXT NOT NULL
);
CREATE INDEX logs_function_id ON logs (function, id);
CREATE INDEX logs_ts_ms ON logs (ts_ms);
"#,
    },
    Migration {
        version: 2,
        name: "lambda_api_settings",
        sqlite: settings::MIGRATION_SQLITE,
        postgres: settings::MIGRATION_POSTGRES,
    },
    queue::MIGRATION,
    identity::MIGRATION,
];

impl Migration {
    fn sql(&self, backend: Backend) -> &'static str {
        match backend {
            Backend::Sqlite => self.sqlite,
            Backend::Postgres => self.postgres,
        }
    }
}

/// The highest schema version this binary knows.
pub fn schema_version() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

const VERSION_COLS: &str =
    "function, version, config, code_sha256, code_size, revision, created_ms, description";
const FUNCTION_COLS: &str = "name, app, created_ms, updated_ms, last_published";
const INVOCATION_COLS: &str = "request_id, function, version, start_ms, duration_us, billed_ms, \
     memory_mb, max_memory_mb, init_us, cold, outcome, error_type";

/// How long the answer of a write probe stands ([`Store::check_writable`]).
const PROBE_TTL: Duration = Duration::from_secs(1);
/// How long a write probe may take before the store counts as unwritable.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// The last write probe: when it ran and what it found.
type Probe = Option<(Instant, Result<(), String>)>;

/// The persistence of Updraft; cheap to clone (it wraps a pool).
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    probe: Arc<tokio::sync::Mutex<Probe>>,
}

impl Store {
    /// Opens `sqlite://PATH` (created if missing), `sqlite::memory:` or
    /// `postgres://…`, and brings the schema up to date.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let (backend, connect_url, memory) = parse_url(url)?;
        let opts = match backend {
            Backend::Sqlite if memory => {
                // Every in-memory connection is its own database: keep exactly one, forever.
                AnyPoolOptions::new()
                    .max_connections(1)
                    .min_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None)
            }
            // One writer at a time anyway; a few readers run beside it under WAL.
            Backend::Sqlite => AnyPoolOptions::new().max_connections(4),
            Backend::Postgres => AnyPoolOptions::new().max_connections(8),
        };
        let opts = if backend == Backend::Sqlite {
            opts.after_connect(|conn, _meta| {
                Box::pin(async move {
                    // The Any driver cannot take SqliteConnectOptions pragmas, so
                    // set them on every new connection.
                    conn.execute(
                        "PRAGMA journal_mode=WAL; PRAGMA busy_timeout=5000; \
                         PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;",
                    )
                    .await?;
                    Ok(())
                })
            })
        } else {
            opts
        };
        // A transaction whose COMMIT (or ROLLBACK) failed, on a full disk for
        // one, may leave its connection inside a transaction, where every
        // later BEGIN fails: such a connection is closed, never pooled. The
        // in-memory database lives in its one connection and must stay.
        let opts = if memory {
            opts
        } else {
            opts.after_release(|conn, _meta| Box::pin(async move { Ok(!conn.is_in_transaction()) }))
        };
        let pool = opts.connect(&connect_url).await?;
        let store = Store {
            pool,
            backend,
            probe: Arc::default(),
        };
        store.migrate().await?;
        Ok(store)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Whether the store can commit a write now: a small real write (see
    /// `probe_write`), whose answer
    /// stands for a second so that callers such as `/healthz` stay cheap;
    /// concurrent callers share one probe.
    pub async fn check_writable(&self) -> Result<(), String> {
        let mut last = self.probe.lock().await;
        if let Some((at, result)) = &*last {
            if at.elapsed() < PROBE_TTL {
                return result.clone();
            }
        }
        let result = match tokio::time::timeout(PROBE_TIMEOUT, self.probe_write()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(StoreError::Unavailable(cause))) => Err(cause),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!(
                "a write did not complete within {} seconds",
                PROBE_TIMEOUT.as_secs()
            )),
        };
        if let Err(cause) = &result {
            tracing::warn!(%cause, "the store cannot write");
        }
        *last = Some((Instant::now(), result.clone()));
        result
    }

    /// Changes the newest `schema_migrations` row and changes it back in
    /// one transaction: the row ends as it was, but its page is written
    /// (SQLite skips a write that changes nothing, so `SET x = x` is not a
    /// probe).
    async fn probe_write(&self) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        for _ in 0..2 {
            sqlx::query(
                "UPDATE schema_migrations SET applied_ms = -applied_ms \
                 WHERE version = (SELECT MAX(version) FROM schema_migrations)",
            )
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Closes the pool; clones of this store stop working too.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// A transaction that will write. SQLite must take the write lock up front:
    /// a deferred transaction that reads then writes fails with SQLITE_BUSY
    /// (busy_timeout does not help) when another writer got in between.
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, StoreError> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        })
    }

    /// Applies pending migrations, one transaction each, serialised across
    /// processes (BEGIN IMMEDIATE on SQLite, an advisory lock on PostgreSQL).
    async fn migrate(&self) -> Result<(), StoreError> {
        loop {
            let mut tx = self.begin_write().await?;
            if self.backend == Backend::Postgres {
                sqlx::query("SELECT pg_advisory_xact_lock(7329104417)")
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::raw_sql(
                "CREATE TABLE IF NOT EXISTS schema_migrations \
                 (version BIGINT PRIMARY KEY, name TEXT, applied_ms BIGINT)",
            )
            .execute(&mut *tx)
            .await?;
            let current: Option<i64> =
                sqlx::query_scalar("SELECT MAX(version) FROM schema_migrations")
                    .fetch_one(&mut *tx)
                    .await?;
            let current = current.unwrap_or(0);
            if current > schema_version() {
                return Err(StoreError::Config(format!(
                    "the database has schema version {current} but this binary knows only up to {}; \
                     upgrade Updraft or use another database",
                    schema_version()
                )));
            }
            let Some(m) = MIGRATIONS.iter().find(|m| m.version > current) else {
                tx.commit().await?;
                return Ok(());
            };
            tracing::info!(
                version = m.version,
                name = m.name,
                "applying store migration"
            );
            sqlx::raw_sql(m.sql(self.backend)).execute(&mut *tx).await?;
            sqlx::query(
                "INSERT INTO schema_migrations (version, name, applied_ms) VALUES ($1, $2, $3)",
            )
            .bind(m.version)
            .bind(m.name)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        }
    }

    /// The schema version recorded in the database.
    pub async fn current_schema_version(&self) -> Result<i64, StoreError> {
        let v: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM schema_migrations")
            .fetch_one(&self.pool)
            .await?;
        Ok(v.unwrap_or(0))
    }

    // ---- functions ----

    /// Creates the function with its `$LATEST`; Conflict if the name exists.
    pub async fn create_function(
        &self,
        name: &str,
        app: Option<&str>,
        config: &FunctionConfig,
        code_sha256: &str,
        code_size: i64,
    ) -> Result<VersionRow, StoreError> {
        let content = Content::new(config, code_sha256, code_size)?;
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        if !insert_function(&mut tx, name, app, now).await? {
            return Err(StoreError::Conflict(format!(
                "function {name} already exists"
            )));
        }
        let row = write_latest(&mut tx, name, &content, now).await?;
        tx.commit().await?;
        Ok(row)
    }

    /// Replaces `$LATEST`; NotFound if the function does not exist.
    pub async fn update_latest(
        &self,
        name: &str,
        config: &FunctionConfig,
        code_sha256: &str,
        code_size: i64,
    ) -> Result<VersionRow, StoreError> {
        let content = Content::new(config, code_sha256, code_size)?;
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        if !lock_function(&mut tx, name, Some(now)).await? {
            return Err(not_found(name));
        }
        let row = write_latest(&mut tx, name, &content, now).await?;
        tx.commit().await?;
        Ok(row)
    }

    /// Publishes `$LATEST` as a new version, unless the last published version
    /// already has its revision: then that one is returned unchanged.
    pub async fn publish(&self, name: &str, description: &str) -> Result<VersionRow, StoreError> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        if !lock_function(&mut tx, name, None).await? {
            return Err(not_found(name));
        }
        let (row, _) = publish_locked(&mut tx, name, Some(description), now).await?;
        tx.commit().await?;
        Ok(row)
    }

    /// Creates or updates the function of `app` and publishes it when its
    /// content differs from the last published version, all in one transaction.
    pub async fn deploy(
        &self,
        name: &str,
        app: &str,
        config: &FunctionConfig,
        code_sha256: &str,
        code_size: i64,
    ) -> Result<DeployOutcome, StoreError> {
        let content = Content::new(config, code_sha256, code_size)?;
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let created = insert_function(&mut tx, name, Some(app), now).await?;
        let mut changed = created;
        if created {
            write_latest(&mut tx, name, &content, now).await?;
        } else {
            lock_function(&mut tx, name, None).await?;
            let owner: Option<String> =
                sqlx::query_scalar("SELECT app FROM functions WHERE name = $1")
                    .bind(name)
                    .fetch_one(&mut *tx)
                    .await?;
            if owner.as_deref() != Some(app) {
                let owner = owner.map_or_else(
                    || "no app (it was created through the API)".to_string(),
                    |o| format!("app {o}"),
                );
                return Err(StoreError::Conflict(format!(
                    "function {name} belongs to {owner}, not to app {app}; rename it or delete it first"
                )));
            }
            let latest = read_version(&mut tx, name, 0).await?;
            if latest.as_ref().map(|l| l.revision.as_str()) != Some(content.revision.as_str()) {
                write_latest(&mut tx, name, &content, now).await?;
                changed = true;
            }
        }
        let (version, published) = publish_locked(&mut tx, name, None, now).await?;
        changed |= published;
        if changed {
            sqlx::query("UPDATE functions SET updated_ms = $1 WHERE name = $2")
                .bind(now)
                .bind(name)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(DeployOutcome { version, changed })
    }

    pub async fn get_function(&self, name: &str) -> Result<Option<FunctionRow>, StoreError> {
        let sql = format!("SELECT {FUNCTION_COLS} FROM functions WHERE name = $1");
        let row = sqlx::query(&sql)
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(function_from_row).transpose()
    }

    /// All functions, ordered by name.
    pub async fn list_functions(&self) -> Result<Vec<FunctionRow>, StoreError> {
        let sql = format!("SELECT {FUNCTION_COLS} FROM functions ORDER BY name");
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
        rows.iter().map(function_from_row).collect()
    }

    pub async fn get_version(
        &self,
        name: &str,
        version: i64,
    ) -> Result<Option<VersionRow>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        read_version(&mut conn, name, version).await
    }

    /// `$LATEST` first, then published versions ascending.
    pub async fn list_versions(&self, name: &str) -> Result<Vec<VersionRow>, StoreError> {
        let sql =
            format!("SELECT {VERSION_COLS} FROM versions WHERE function = $1 ORDER BY version");
        let rows = sqlx::query(&sql).bind(name).fetch_all(&self.pool).await?;
        rows.iter().map(version_from_row).collect()
    }

    /// Removes the function and its versions; invocation records and logs stay
    /// (they are billing and audit history). False if there was no such function.
    pub async fn delete_function(&self, name: &str) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        // Explicit rather than relying on ON DELETE CASCADE, which SQLite only
        // honours with foreign_keys=ON.
        sqlx::query("DELETE FROM versions WHERE function = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        let gone = sqlx::query("DELETE FROM functions WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(gone > 0)
    }

    /// Deletes one published version (`$LATEST` cannot be deleted alone: Conflict).
    /// Its number is never reused.
    pub async fn delete_version(&self, name: &str, version: i64) -> Result<bool, StoreError> {
        if version < 1 {
            return Err(StoreError::Conflict(format!(
                "cannot delete version {version} of {name}: only published versions (1 and up) can be deleted; \
                 delete the function to remove $LATEST"
            )));
        }
        let mut tx = self.begin_write().await?;
        let gone = sqlx::query("DELETE FROM versions WHERE function = $1 AND version = $2")
            .bind(name)
            .bind(version)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if gone > 0 {
            sqlx::query(
                "UPDATE functions SET last_published = \
                 (SELECT COALESCE(MAX(version), 0) FROM versions WHERE function = $1 AND version >= 1), \
                 updated_ms = $2 WHERE name = $1",
            )
            .bind(name)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(gone > 0)
    }

    /// `$LATEST` of every function, ordered by name (input of the route table).
    pub async fn all_latest(&self) -> Result<Vec<VersionRow>, StoreError> {
        let sql =
            format!("SELECT {VERSION_COLS} FROM versions WHERE version = 0 ORDER BY function");
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
        rows.iter().map(version_from_row).collect()
    }

    // ---- metering ----

    /// Inserts the records in one transaction; a request id already stored is
    /// skipped, so a retried flush cannot double-bill.
    pub async fn record_invocations(&self, records: &[InvocationRecord]) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        // Multi-row inserts save round trips to PostgreSQL; 50 × 12 parameters
        // stays far below both databases' parameter limits.
        for chunk in records.chunks(50) {
            let sql = format!(
                "INSERT INTO invocations ({INVOCATION_COLS}) VALUES {} ON CONFLICT (request_id) DO NOTHING",
                placeholders(self.backend, chunk.len(), 12)
            );
            let mut q = sqlx::query(&sql);
            for r in chunk {
                q = q
                    .bind(r.request_id.as_str())
                    .bind(r.function.as_str())
                    .bind(r.version)
                    .bind(r.start_ms)
                    .bind(r.duration_us)
                    .bind(r.billed_ms)
                    .bind(r.memory_mb)
                    .bind(r.max_memory_mb)
                    .bind(r.init_us)
                    .bind(i64::from(r.cold))
                    .bind(r.outcome.as_str())
                    .bind(r.error_type.as_deref());
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Records with `since_ms <= start_ms < until_ms`, ordered by start time.
    pub async fn invocations_since(
        &self,
        since_ms: i64,
        until_ms: i64,
    ) -> Result<Vec<InvocationRecord>, StoreError> {
        let sql = format!(
            "SELECT {INVOCATION_COLS} FROM invocations WHERE start_ms >= $1 AND start_ms < $2 \
             ORDER BY start_ms, request_id"
        );
        let rows = sqlx::query(&sql)
            .bind(since_ms)
            .bind(until_ms)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(invocation_from_row).collect()
    }

    // ---- logs ----

    /// Appends the lines in one transaction; ids grow in slice order.
    pub async fn append_logs(&self, lines: &[LogLine]) -> Result<(), StoreError> {
        if lines.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        for chunk in lines.chunks(200) {
            let sql = format!(
                "INSERT INTO logs (ts_ms, function, request_id, text) VALUES {}",
                placeholders(self.backend, chunk.len(), 4)
            );
            let mut q = sqlx::query(&sql);
            for l in chunk {
                q = q
                    .bind(l.ts_ms)
                    .bind(l.function.as_str())
                    .bind(l.request_id.as_str())
                    .bind(l.text.as_str());
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Lines of `function` with `ts_ms >= since_ms` and `id > after_id`
    /// (optionally of one request), by id ascending, at most `limit`.
    pub async fn logs(
        &self,
        function: &str,
        since_ms: i64,
        request_id: Option<&str>,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<(i64, LogLine)>, StoreError> {
        let filter = if request_id.is_some() {
            " AND request_id = $5"
        } else {
            ""
        };
        let sql = format!(
            "SELECT id, ts_ms, function, request_id, text FROM logs \
             WHERE function = $1 AND ts_ms >= $2 AND id > $3{filter} ORDER BY id LIMIT $4"
        );
        let mut q = sqlx::query(&sql)
            .bind(function)
            .bind(since_ms)
            .bind(after_id)
            .bind(limit.max(0));
        if let Some(r) = request_id {
            q = q.bind(r);
        }
        let rows = q.fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get("id")?,
                    LogLine {
                        ts_ms: row.try_get("ts_ms")?,
                        function: row.try_get("function")?,
                        request_id: row.try_get("request_id")?,
                        text: row.try_get("text")?,
                    },
                ))
            })
            .collect()
    }

    /// Deletes lines older than `before_ms`; returns how many.
    pub async fn prune_logs(&self, before_ms: i64) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM logs WHERE ts_ms < $1")
            .bind(before_ms)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// Keeps only the newest `keep` lines of `function`; returns how many
    /// were deleted. Walks the (function, id) index: cost grows with `keep`,
    /// not with the table.
    pub async fn prune_function_logs(&self, function: &str, keep: u64) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "DELETE FROM logs WHERE function = $1 AND id <= \
             (SELECT id FROM logs WHERE function = $1 ORDER BY id DESC LIMIT 1 OFFSET $2)",
        )
        .bind(function)
        .bind(i64::try_from(keep).unwrap_or(i64::MAX))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// The functions that have log lines (deleted ones too: their lines stay).
    pub async fn log_functions(&self) -> Result<Vec<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT DISTINCT function FROM logs ORDER BY function")
                .fetch_all(&self.pool)
                .await?,
        )
    }
}

/// Splits a store URL into backend, the URL sqlx should connect to, and
/// whether it is an in-memory SQLite database.
fn parse_url(url: &str) -> Result<(Backend, String, bool), StoreError> {
    if let Some(rest) = url.strip_prefix("sqlite:") {
        let rest = rest.strip_prefix("//").unwrap_or(rest);
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        if path.is_empty() || path == ":memory:" {
            return Ok((Backend::Sqlite, "sqlite::memory:".to_string(), true));
        }
        if let Some(dir) = std::path::Path::new(path).parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir).map_err(|e| {
                    StoreError::Config(format!(
                        "cannot create the directory {} of the SQLite database: {e}",
                        dir.display()
                    ))
                })?;
            }
        }
        let mode = if query.split('&').any(|kv| kv.starts_with("mode=")) {
            ""
        } else {
            "mode=rwc"
        };
        let query = [query, mode]
            .iter()
            .filter(|s| !s.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join("&");
        return Ok((Backend::Sqlite, format!("sqlite://{path}?{query}"), false));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok((Backend::Postgres, url.to_string(), false));
    }
    // Only the scheme is echoed: the rest may hold a password.
    let scheme = url.split_once(':').map_or("(none)", |(s, _)| s);
    Err(StoreError::Config(format!(
        "unsupported database URL scheme {scheme:?}: expected sqlite://PATH or postgres://USER@HOST:PORT/DB"
    )))
}

/// The VALUES list of a multi-row insert of `rows` rows of `cols` columns.
/// PostgreSQL numbers its parameters (`($1, $2), ($3, $4)`); SQLite gets
/// anonymous `?`s bound in order, because sqlx looks every parameter up by
/// name and SQLite finds a name by scanning all of them, which makes binding
/// `$N`s quadratic in the row count.
fn placeholders(backend: Backend, rows: usize, cols: usize) -> String {
    (0..rows)
        .map(|r| {
            let cells: Vec<String> = (1..=cols)
                .map(|c| match backend {
                    Backend::Postgres => format!("${}", r * cols + c),
                    Backend::Sqlite => "?".to_string(),
                })
                .collect();
            format!("({})", cells.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn not_found(name: &str) -> StoreError {
    StoreError::NotFound(format!("function {name}"))
}

/// A version's content, serialised once.
struct Content {
    config: FunctionConfig,
    config_json: String,
    code_sha256: String,
    code_size: i64,
    revision: String,
}

impl Content {
    fn new(
        config: &FunctionConfig,
        code_sha256: &str,
        code_size: i64,
    ) -> Result<Content, StoreError> {
        let config_json = serde_json::to_string(config)
            .map_err(|e| StoreError::Corrupt(format!("cannot encode the function config: {e}")))?;
        let revision = revision(&config_json, code_sha256);
        Ok(Content {
            config: config.clone(),
            config_json,
            code_sha256: code_sha256.to_string(),
            code_size,
            revision,
        })
    }
}

/// Hex sha256 of the config JSON then the code hash; the JSON always ends in
/// `}`, so the concatenation is unambiguous.
fn revision(config_json: &str, code_sha256: &str) -> String {
    let mut h = Sha256::new();
    h.update(config_json.as_bytes());
    h.update(code_sha256.as_bytes());
    hex::encode(h.finalize())
}

/// Inserts a function row; false if the name is taken.
async fn insert_function(
    conn: &mut AnyConnection,
    name: &str,
    app: Option<&str>,
    now: i64,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "INSERT INTO functions (name, app, created_ms, updated_ms, last_published, version_seq) \
         VALUES ($1, $2, $3, $3, 0, 0) ON CONFLICT (name) DO NOTHING",
    )
    .bind(name)
    .bind(app)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Row-locks the function (PostgreSQL; SQLite already holds the write lock)
/// so concurrent publishes cannot pick the same version number. With `touch`,
/// also sets updated_ms. False if the function does not exist.
async fn lock_function(
    conn: &mut AnyConnection,
    name: &str,
    touch: Option<i64>,
) -> Result<bool, StoreError> {
    let done = match touch {
        Some(now) => {
            sqlx::query("UPDATE functions SET updated_ms = $1 WHERE name = $2")
                .bind(now)
                .bind(name)
                .execute(&mut *conn)
                .await?
        }
        None => {
            sqlx::query("UPDATE functions SET updated_ms = updated_ms WHERE name = $1")
                .bind(name)
                .execute(&mut *conn)
                .await?
        }
    };
    Ok(done.rows_affected() == 1)
}

async fn write_latest(
    conn: &mut AnyConnection,
    name: &str,
    c: &Content,
    now: i64,
) -> Result<VersionRow, StoreError> {
    sqlx::query(
        "INSERT INTO versions (function, version, config, code_sha256, code_size, revision, created_ms, description) \
         VALUES ($1, 0, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (function, version) DO UPDATE SET config = excluded.config, \
         code_sha256 = excluded.code_sha256, code_size = excluded.code_size, revision = excluded.revision, \
         created_ms = excluded.created_ms, description = excluded.description",
    )
    .bind(name)
    .bind(c.config_json.as_str())
    .bind(c.code_sha256.as_str())
    .bind(c.code_size)
    .bind(c.revision.as_str())
    .bind(now)
    .bind(c.config.description.as_str())
    .execute(&mut *conn)
    .await?;
    Ok(VersionRow {
        function: name.to_string(),
        version: 0,
        config: c.config.clone(),
        code_sha256: c.code_sha256.clone(),
        code_size: c.code_size,
        revision: c.revision.clone(),
        created_ms: now,
        description: c.config.description.clone(),
    })
}

/// Publishes `$LATEST` of a function locked by the caller, or returns the last
/// published version when it already has the same revision. The bool says
/// whether a version was created. `description` None = the config's.
async fn publish_locked(
    conn: &mut AnyConnection,
    name: &str,
    description: Option<&str>,
    now: i64,
) -> Result<(VersionRow, bool), StoreError> {
    let latest = read_version(conn, name, 0)
        .await?
        .ok_or_else(|| StoreError::Corrupt(format!("function {name} has no $LATEST version")))?;
    let sql = format!(
        "SELECT {VERSION_COLS} FROM versions WHERE function = $1 AND version >= 1 ORDER BY version DESC LIMIT 1"
    );
    let last = sqlx::query(&sql)
        .bind(name)
        .fetch_optional(&mut *conn)
        .await?;
    if let Some(last) = last.as_ref().map(version_from_row).transpose()? {
        if last.revision == latest.revision {
            return Ok((last, false));
        }
    }
    let seq: i64 = sqlx::query_scalar("SELECT version_seq FROM functions WHERE name = $1")
        .bind(name)
        .fetch_one(&mut *conn)
        .await?;
    let version = seq + 1;
    let description = description
        .unwrap_or(&latest.config.description)
        .to_string();
    sqlx::query(
        "INSERT INTO versions (function, version, config, code_sha256, code_size, revision, created_ms, description) \
         SELECT function, $2, config, code_sha256, code_size, revision, $3, $4 FROM versions \
         WHERE function = $1 AND version = 0",
    )
    .bind(name)
    .bind(version)
    .bind(now)
    .bind(description.as_str())
    .execute(&mut *conn)
    .await?;
    sqlx::query("UPDATE functions SET version_seq = $2, last_published = $2, updated_ms = $3 WHERE name = $1")
        .bind(name)
        .bind(version)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    Ok((
        VersionRow {
            version,
            created_ms: now,
            description,
            ..latest
        },
        true,
    ))
}

async fn read_version(
    conn: &mut AnyConnection,
    name: &str,
    version: i64,
) -> Result<Option<VersionRow>, StoreError> {
    let sql = format!("SELECT {VERSION_COLS} FROM versions WHERE function = $1 AND version = $2");
    let row = sqlx::query(&sql)
        .bind(name)
        .bind(version)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(version_from_row).transpose()
}

fn function_from_row(row: &AnyRow) -> Result<FunctionRow, StoreError> {
    Ok(FunctionRow {
        name: row.try_get("name")?,
        app: row.try_get("app")?,
        created_ms: row.try_get("created_ms")?,
        updated_ms: row.try_get("updated_ms")?,
        last_published: row.try_get("last_published")?,
    })
}

fn version_from_row(row: &AnyRow) -> Result<VersionRow, StoreError> {
    let function: String = row.try_get("function")?;
    let version: i64 = row.try_get("version")?;
    let json: String = row.try_get("config")?;
    let config = serde_json::from_str(&json).map_err(|e| {
        StoreError::Corrupt(format!(
            "config of function {function} version {version}: {e}"
        ))
    })?;
    Ok(VersionRow {
        function,
        version,
        config,
        code_sha256: row.try_get("code_sha256")?,
        code_size: row.try_get("code_size")?,
        revision: row.try_get("revision")?,
        created_ms: row.try_get("created_ms")?,
        description: row.try_get("description")?,
    })
}

fn invocation_from_row(row: &AnyRow) -> Result<InvocationRecord, StoreError> {
    Ok(InvocationRecord {
        request_id: row.try_get("request_id")?,
        function: row.try_get("function")?,
        version: row.try_get("version")?,
        start_ms: row.try_get("start_ms")?,
        duration_us: row.try_get("duration_us")?,
        billed_ms: row.try_get("billed_ms")?,
        memory_mb: row.try_get("memory_mb")?,
        max_memory_mb: row.try_get("max_memory_mb")?,
        init_us: row.try_get("init_us")?,
        cold: row.try_get::<i64, _>("cold")? != 0,
        outcome: row.try_get("outcome")?,
        error_type: row.try_get("error_type")?,
    })
}
