//! The schema: SQL files in `crates/store/migrations/sqlite/` and
//! `crates/store/migrations/postgres/` (`NNNN_name.sql`, one pair a version),
//! compiled into the binary and applied in order at open. Which versions a
//! database has is recorded in its `schema_migrations` table.

use crate::{Backend, Store, StoreError};
use sqlx::{Any, Executor};
use updraft_core::now_ms;

/// One schema step; the two texts must leave both databases equivalent.
pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sqlite: &'static str,
    pub postgres: &'static str,
}

/// Migration `$version` recorded as `$name`, from the file pair `$file.sql`.
macro_rules! migration {
    ($version:literal, $name:literal, $file:literal) => {
        Migration {
            version: $version,
            name: $name,
            sqlite: include_str!(concat!("../migrations/sqlite/", $file, ".sql")),
            postgres: include_str!(concat!("../migrations/postgres/", $file, ".sql")),
        }
    };
}

/// Applied in order at open; never edit a released file, add a new pair.
/// The names are what `schema_migrations` records (databases from before the
/// SQL files have these very names).
pub const MIGRATIONS: &[Migration] = &[
    migration!(1, "initial", "0001_initial"),
    migration!(2, "lambda_api_settings", "0002_lambda_api_settings"),
    migration!(3, "async events", "0003_async_events"),
    migration!(4, "function uids", "0004_function_uids"),
    migration!(5, "queues", "0005_queues"),
    migration!(6, "schedules", "0006_schedules"),
    migration!(7, "buses", "0007_buses"),
    migration!(8, "function tags", "0008_function_tags"),
    migration!(9, "log levels", "0009_log_levels"),
    migration!(10, "trace context", "0010_trace_context"),
    migration!(11, "route index", "0011_route_index"),
];

impl Migration {
    pub(crate) fn sql(&self, backend: Backend) -> &'static str {
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

/// The highest version recorded in `schema_migrations`, 0 if none.
async fn recorded_version<'c>(conn: impl Executor<'c, Database = Any>) -> Result<i64, StoreError> {
    let v: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM schema_migrations")
        .fetch_one(conn)
        .await?;
    Ok(v.unwrap_or(0))
}

impl Store {
    /// Applies the pending ones of `migrations`, one transaction each,
    /// serialised across processes (BEGIN IMMEDIATE on SQLite, an advisory
    /// lock on PostgreSQL). A database newer than [`schema_version`] is refused.
    pub(crate) async fn migrate(&self, migrations: &[Migration]) -> Result<(), StoreError> {
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
            let current = recorded_version(&mut *tx).await?;
            if current > schema_version() {
                return Err(StoreError::Config(format!(
                    "the database has schema version {current} but this binary knows only up to {}; \
                     upgrade Updraft or use another database",
                    schema_version()
                )));
            }
            let Some(m) = migrations.iter().find(|m| m.version > current) else {
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
        recorded_version(&self.pool).await
    }
}
