//! Function log lines: appended in batches, read by function (and request),
//! pruned by age and by count.

use crate::{placeholders, Store, StoreError};
use sqlx::Row;
use updraft_core::LogLine;

impl Store {
    /// Appends the lines in one transaction; ids grow in slice order.
    pub async fn append_logs(&self, lines: &[LogLine]) -> Result<(), StoreError> {
        self.write_chunks(
            lines,
            200,
            |n| {
                format!(
                    "INSERT INTO logs (ts_ms, function, request_id, text) VALUES {}",
                    placeholders(self.backend, n, 4)
                )
            },
            |q| q,
            |q, l| {
                q.bind(l.ts_ms)
                    .bind(l.function.as_str())
                    .bind(l.request_id.as_str())
                    .bind(l.text.as_str())
            },
        )
        .await
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
            .execute(&mut *self.write_conn().await?)
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
        .execute(&mut *self.write_conn().await?)
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
