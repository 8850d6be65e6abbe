//! Updraft's persistence: functions and their versions, invocation records and
//! logs, behind one [`Store`] whose SQL runs unchanged on SQLite (the embedded
//! default) and PostgreSQL through sqlx's `Any` driver; only DDL differs.
//!
//! One module a concern: this one holds the connection (pool, write
//! transactions, health probe); `migrate` the schema; `functions` functions
//! and versions; `settings` and `aliases` what belongs to a function as a
//! whole; `invocations`, `logs`, `queue` (asynchronous events), `identity`
//! (host uids), `messages` (durable queues), `mappings` (event source
//! mappings) and `buses` (event-bus subscriptions) the rest; `sql` the
//! statements' shared plumbing; `batch` the batched writes of the hot paths.

use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Connection, Executor};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod aliases;
pub mod batch;
mod buses;
mod functions;
mod identity;
mod invocations;
mod logs;
mod mappings;
mod messages;
mod migrate;
mod queue;
mod schedules;
mod settings;
mod sql;
mod tags;
#[cfg(test)]
mod tests;

use sql::{fetch_all, fetch_optional, numbered_params, per_chunk, placeholders, AnyQuery};

pub use aliases::{AliasRow, AliasUpdate};
pub use batch::{with_retries, BatchWriter, Weigh};
pub use buses::BusSubscription;
pub use functions::{DeployOutcome, FunctionRow, ListedFunction, VersionRow};
pub use identity::FIRST_FUNCTION_UID;
pub use invocations::InvocationRecord;
pub use logs::{LogQuery, LogRow, LogScope};
pub use mappings::MappingRow;
pub use messages::{
    Message, NewMessage, QueueRow, QueueStats, Redrive, DEFAULT_VISIBILITY_TIMEOUT_MS,
    MAX_MESSAGE_BYTES,
};
pub use migrate::{schema_version, Migration, MIGRATIONS};
pub use queue::{DeadLetter, EventDepth, EventInvokeConfigRow, LastError, NewEvent, QueuedEvent};
pub use schedules::{NewSchedule, ScheduleRow};
pub use settings::FunctionSettings;
pub use tags::{AccountUsage, Tags};

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
    /// SQLite has one writer at a time. Writers of this process queue here,
    /// in order, instead of in SQLite's busy handler, which sleeps a
    /// blocked connection's thread for up to 100 ms at a time however soon
    /// the lock is free (other processes, such as a second server on the
    /// same file, still meet the busy handler). Unused for PostgreSQL,
    /// whose row locks let writers run side by side.
    writer: Arc<tokio::sync::Mutex<()>>,
}

/// A write transaction; for SQLite it holds the process's writer turn
/// until it is committed, rolled back or dropped.
pub(crate) struct WriteTx {
    tx: sqlx::Transaction<'static, sqlx::Any>,
    _turn: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl WriteTx {
    pub(crate) async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }

    #[allow(dead_code)]
    pub(crate) async fn rollback(self) -> Result<(), sqlx::Error> {
        self.tx.rollback().await
    }
}

/// See [`Store::write_conn`].
pub(crate) struct WriteConn {
    conn: sqlx::pool::PoolConnection<sqlx::Any>,
    _turn: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl std::ops::Deref for WriteConn {
    type Target = sqlx::AnyConnection;
    fn deref(&self) -> &sqlx::AnyConnection {
        &self.conn
    }
}

impl std::ops::DerefMut for WriteConn {
    fn deref_mut(&mut self) -> &mut sqlx::AnyConnection {
        &mut self.conn
    }
}

impl std::ops::Deref for WriteTx {
    type Target = sqlx::AnyConnection;
    fn deref(&self) -> &sqlx::AnyConnection {
        &self.tx
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut sqlx::AnyConnection {
        &mut self.tx
    }
}

impl Store {
    /// Opens `sqlite://PATH` (created if missing), `sqlite::memory:` or
    /// `postgres://…`, and brings the schema up to date.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        let store = Store::connect(url).await?;
        store.migrate(MIGRATIONS).await?;
        Ok(store)
    }

    /// Opens the database without touching its schema.
    async fn connect(url: &str) -> Result<Store, StoreError> {
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
        Ok(Store {
            pool,
            backend,
            probe: Arc::default(),
            writer: Arc::default(),
        })
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
    async fn begin_write(&self) -> Result<WriteTx, StoreError> {
        Ok(match self.backend {
            Backend::Sqlite => {
                let turn = self.writer.clone().lock_owned().await;
                WriteTx {
                    tx: self.pool.begin_with("BEGIN IMMEDIATE").await?,
                    _turn: Some(turn),
                }
            }
            Backend::Postgres => WriteTx {
                tx: self.pool.begin().await?,
                _turn: None,
            },
        })
    }

    /// A pooled connection for a statement that writes outside a
    /// transaction of its own; for SQLite it holds the writer turn (see
    /// `Store::writer`) until dropped.
    async fn write_conn(&self) -> Result<WriteConn, StoreError> {
        let turn = match self.backend {
            Backend::Sqlite => Some(self.writer.clone().lock_owned().await),
            Backend::Postgres => None,
        };
        Ok(WriteConn {
            conn: self.pool.acquire().await?,
            _turn: turn,
        })
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
