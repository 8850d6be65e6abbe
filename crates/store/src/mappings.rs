//! Event source mappings (Lambda's): which function consumes which queue,
//! with its batch settings. Those a manifest declares (`origin` =
//! `manifest`) are replaced as a whole at each deploy of their function;
//! those made through the Lambda API (`api`) are the API's.

use crate::{fetch_all, fetch_optional, Store, StoreError};
use sqlx::any::AnyRow;
use sqlx::Row;

/// One mapping; (queue, function, qualifier) is unique.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MappingRow {
    pub uuid: String,
    pub queue: String,
    pub function: String,
    /// `""` = unqualified.
    pub qualifier: String,
    pub batch_size: i64,
    pub batch_window_ms: i64,
    /// Lambda's `FunctionResponseTypes: ["ReportBatchItemFailures"]`.
    pub report_batch_item_failures: bool,
    pub enabled: bool,
    /// `api` or `manifest`.
    pub origin: String,
    pub created_ms: i64,
    pub updated_ms: i64,
}

const COLS: &str = "uuid, queue, function, qualifier, batch_size, batch_window_ms, \
     report_batch_item_failures, enabled, origin, created_ms, updated_ms";

/// The INSERT of one row; `$1`…`$11` in [`COLS`]' order.
fn insert_sql(on_conflict: &str) -> String {
    format!(
        "INSERT INTO event_source_mappings ({COLS}) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11){on_conflict}"
    )
}

impl Store {
    /// Conflict if the function already consumes the queue (same qualifier)
    /// or the uuid is taken.
    pub async fn create_mapping(&self, m: &MappingRow) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        bind(sqlx::query(&insert_sql("")), m)
            .execute(&mut *tx)
            .await
            .map_err(|e| match &e {
                sqlx::Error::Database(d) if d.is_unique_violation() => {
                    StoreError::Conflict(format!(
                        "an event source mapping of queue {} to function {} already exists",
                        m.queue, m.function
                    ))
                }
                _ => StoreError::from(e),
            })?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn get_mapping(&self, uuid: &str) -> Result<Option<MappingRow>, StoreError> {
        let sql = format!("SELECT {COLS} FROM event_source_mappings WHERE uuid = $1");
        fetch_optional(&self.pool, &sql, &[uuid], mapping_from_row).await
    }

    /// The mappings of a function, of a queue, of both, or all (None, None),
    /// in creation order.
    pub async fn list_mappings(
        &self,
        function: Option<&str>,
        queue: Option<&str>,
    ) -> Result<Vec<MappingRow>, StoreError> {
        let (filter, keys): (&str, Vec<&str>) = match (function, queue) {
            (Some(f), Some(q)) => ("WHERE function = $1 AND queue = $2", vec![f, q]),
            (Some(f), None) => ("WHERE function = $1", vec![f]),
            (None, Some(q)) => ("WHERE queue = $1", vec![q]),
            (None, None) => ("", vec![]),
        };
        let sql =
            format!("SELECT {COLS} FROM event_source_mappings {filter} ORDER BY created_ms, uuid");
        fetch_all(&self.pool, &sql, &keys, mapping_from_row).await
    }

    /// Replaces the row of `m.uuid` with `m` (its uuid, queue, function,
    /// qualifier and creation time stay); false if there is none.
    pub async fn update_mapping(&self, m: &MappingRow) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let n = sqlx::query(
            "UPDATE event_source_mappings SET batch_size = $2, batch_window_ms = $3, \
             report_batch_item_failures = $4, enabled = $5, origin = $6, updated_ms = $7 \
             WHERE uuid = $1",
        )
        .bind(m.uuid.as_str())
        .bind(m.batch_size)
        .bind(m.batch_window_ms)
        .bind(i64::from(m.report_batch_item_failures))
        .bind(i64::from(m.enabled))
        .bind(m.origin.as_str())
        .bind(m.updated_ms)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(n > 0)
    }

    /// The deleted row, None if there was none.
    pub async fn delete_mapping(&self, uuid: &str) -> Result<Option<MappingRow>, StoreError> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(&format!(
            "DELETE FROM event_source_mappings WHERE uuid = $1 RETURNING {COLS}"
        ))
        .bind(uuid)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        row.as_ref().map(mapping_from_row).transpose()
    }

    /// Makes `function`'s manifest mappings exactly `rows` (all of origin
    /// `manifest`, of that function), in one transaction: a row whose
    /// (queue, function, qualifier) already has a mapping takes it over,
    /// keeping its uuid and creation time (the manifest wins over the API);
    /// the function's other manifest mappings are deleted.
    pub async fn replace_manifest_mappings(
        &self,
        function: &str,
        rows: &[MappingRow],
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let upsert = insert_sql(
            " ON CONFLICT (queue, function, qualifier) DO UPDATE SET \
             batch_size = excluded.batch_size, batch_window_ms = excluded.batch_window_ms, \
             report_batch_item_failures = excluded.report_batch_item_failures, \
             enabled = excluded.enabled, origin = excluded.origin, updated_ms = excluded.updated_ms",
        );
        let mut keep = Vec::new();
        for m in rows {
            bind(sqlx::query(&upsert), m).execute(&mut *tx).await?;
            let uuid: String = sqlx::query_scalar(
                "SELECT uuid FROM event_source_mappings \
                 WHERE queue = $1 AND function = $2 AND qualifier = $3",
            )
            .bind(m.queue.as_str())
            .bind(m.function.as_str())
            .bind(m.qualifier.as_str())
            .fetch_one(&mut *tx)
            .await?;
            keep.push(uuid);
        }
        let stale: Vec<String> = sqlx::query_scalar(
            "SELECT uuid FROM event_source_mappings WHERE function = $1 AND origin = 'manifest'",
        )
        .bind(function)
        .fetch_all(&mut *tx)
        .await?;
        for uuid in stale.iter().filter(|u| !keep.contains(u)) {
            sqlx::query("DELETE FROM event_source_mappings WHERE uuid = $1")
                .bind(uuid.as_str())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

fn bind<'q>(q: crate::AnyQuery<'q>, m: &'q MappingRow) -> crate::AnyQuery<'q> {
    q.bind(m.uuid.as_str())
        .bind(m.queue.as_str())
        .bind(m.function.as_str())
        .bind(m.qualifier.as_str())
        .bind(m.batch_size)
        .bind(m.batch_window_ms)
        .bind(i64::from(m.report_batch_item_failures))
        .bind(i64::from(m.enabled))
        .bind(m.origin.as_str())
        .bind(m.created_ms)
        .bind(m.updated_ms)
}

fn mapping_from_row(row: &AnyRow) -> Result<MappingRow, StoreError> {
    Ok(MappingRow {
        uuid: row.try_get("uuid")?,
        queue: row.try_get("queue")?,
        function: row.try_get("function")?,
        qualifier: row.try_get("qualifier")?,
        batch_size: row.try_get("batch_size")?,
        batch_window_ms: row.try_get("batch_window_ms")?,
        report_batch_item_failures: row.try_get::<i64, _>("report_batch_item_failures")? != 0,
        enabled: row.try_get::<i64, _>("enabled")? != 0,
        origin: row.try_get("origin")?,
        created_ms: row.try_get("created_ms")?,
        updated_ms: row.try_get("updated_ms")?,
    })
}
