//! Schedule triggers: one row per schedule of a function's `$LATEST`, with
//! the due time of its next tick. A tick fires in one transaction that moves
//! `next_due_ms` on only if it still holds the due time the firing server
//! read (compare-and-set) and enqueues the tick's event: a tick fires once,
//! however many servers share the database and however often they restart.

use crate::queue::insert_event;
use crate::{NewEvent, Store, StoreError};
use sqlx::any::AnyRow;
use sqlx::Row;

/// A schedule as the deploy wants it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewSchedule {
    /// Its place among the function's triggers.
    pub idx: i64,
    /// The trigger as JSON: a changed spec restarts the schedule.
    pub spec: String,
    /// The expression in canonical form, for listings.
    pub description: String,
    /// The first tick after now, if it ever fires.
    pub first_due_ms: Option<i64>,
}

/// A stored schedule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScheduleRow {
    pub function: String,
    pub idx: i64,
    pub spec: String,
    pub description: String,
    /// None: it never fires again.
    pub next_due_ms: Option<i64>,
    /// The due time of the last tick fired.
    pub last_due_ms: Option<i64>,
}

const COLS: &str = "function, idx, spec, description, next_due_ms, last_due_ms";

impl Store {
    /// Makes the function's schedules `wanted` (none: the function is gone
    /// or has no schedule). A schedule whose spec is unchanged keeps its
    /// next due time, so a redeploy neither skips nor repeats a tick.
    pub async fn sync_schedules(
        &self,
        function: &str,
        wanted: &[NewSchedule],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let rows = sqlx::query(&format!("SELECT {COLS} FROM schedules WHERE function = $1"))
            .bind(function)
            .fetch_all(&mut *tx)
            .await?;
        let existing = rows
            .iter()
            .map(schedule_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        for old in &existing {
            let kept = wanted
                .iter()
                .any(|w| w.idx == old.idx && w.spec == old.spec);
            if !kept {
                sqlx::query("DELETE FROM schedules WHERE function = $1 AND idx = $2")
                    .bind(function)
                    .bind(old.idx)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        for w in wanted {
            let same = existing
                .iter()
                .any(|old| old.idx == w.idx && old.spec == w.spec);
            if same {
                continue;
            }
            sqlx::query(&format!(
                "INSERT INTO schedules ({COLS}, updated_ms) VALUES ($1, $2, $3, $4, $5, NULL, $6)"
            ))
            .bind(function)
            .bind(w.idx)
            .bind(w.spec.as_str())
            .bind(w.description.as_str())
            .bind(w.first_due_ms)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Schedules, of one function or all, by function and place.
    pub async fn schedules(&self, function: Option<&str>) -> Result<Vec<ScheduleRow>, StoreError> {
        let rows = match function {
            Some(f) => {
                sqlx::query(&format!(
                    "SELECT {COLS} FROM schedules WHERE function = $1 ORDER BY function, idx"
                ))
                .bind(f)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(&format!(
                    "SELECT {COLS} FROM schedules ORDER BY function, idx"
                ))
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter().map(schedule_from_row).collect()
    }

    /// Schedules with a tick due at `now_ms` or before.
    pub async fn due_schedules(&self, now_ms: i64) -> Result<Vec<ScheduleRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLS} FROM schedules WHERE next_due_ms <= $1 ORDER BY next_due_ms"
        ))
        .bind(now_ms)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(schedule_from_row).collect()
    }

    /// The earliest next tick of any schedule.
    pub async fn next_schedule_due(&self) -> Result<Option<i64>, StoreError> {
        let v: Option<i64> = sqlx::query_scalar("SELECT MIN(next_due_ms) FROM schedules")
            .fetch_one(&self.pool)
            .await?;
        Ok(v)
    }

    /// Fires a tick: if the schedule still has `read_due` as its next due
    /// time, moves it to `next_due` (None: never again), records `fired_due`
    /// and enqueues `event`, all in one transaction. False (and nothing
    /// written) if another server fired it first or the schedule changed.
    pub async fn fire_schedule(
        &self,
        function: &str,
        idx: i64,
        read_due: i64,
        fired_due: i64,
        next_due: Option<i64>,
        event: &NewEvent,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let moved = sqlx::query(
            "UPDATE schedules SET next_due_ms = $4, last_due_ms = $5 \
             WHERE function = $1 AND idx = $2 AND next_due_ms = $3",
        )
        .bind(function)
        .bind(idx)
        .bind(read_due)
        .bind(next_due)
        .bind(fired_due)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if moved != 1 {
            return Ok(false);
        }
        insert_event(&mut tx, event).await?;
        tx.commit().await?;
        Ok(true)
    }
}

fn schedule_from_row(row: &AnyRow) -> Result<ScheduleRow, StoreError> {
    Ok(ScheduleRow {
        function: row.try_get("function")?,
        idx: row.try_get("idx")?,
        spec: row.try_get("spec")?,
        description: row.try_get("description")?,
        next_due_ms: row.try_get("next_due_ms")?,
        last_due_ms: row.try_get("last_due_ms")?,
    })
}
