//! Metering: one record an invocation, written in batches.

use crate::{placeholders, Store, StoreError};
use sqlx::any::AnyRow;
use sqlx::Row;

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
    /// What started it: `http`, `invoke`, `event`, `schedule`, `queue`,
    /// `bus` (`""` for records from before triggers were recorded).
    pub trigger: String,
}

const INVOCATION_COLS: &str = "request_id, function, version, start_ms, duration_us, billed_ms, \
     memory_mb, max_memory_mb, init_us, cold, outcome, error_type, trigger_kind";

impl Store {
    /// Inserts the records in one transaction; a request id already stored is
    /// skipped, so a retried flush cannot double-bill.
    pub async fn record_invocations(&self, records: &[InvocationRecord]) -> Result<(), StoreError> {
        // Multi-row inserts save round trips to PostgreSQL.
        self.write_chunks(
            records,
            50,
            |n| {
                format!(
                    "INSERT INTO invocations ({INVOCATION_COLS}) VALUES {} \
                     ON CONFLICT (request_id) DO NOTHING",
                    placeholders(self.backend, n, 13)
                )
            },
            |q| q,
            |q, r| {
                q.bind(r.request_id.as_str())
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
                    .bind(r.error_type.as_deref())
                    .bind(r.trigger.as_str())
            },
        )
        .await
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
        trigger: row.try_get("trigger_kind")?,
    })
}
