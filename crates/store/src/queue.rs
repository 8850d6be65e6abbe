//! The durable queue of asynchronous events (Lambda `Event` invokes,
//! schedule ticks, events published on a bus), the dead letters of events that failed for
//! good, and each function's asynchronous invocation settings
//! (Lambda's EventInvokeConfig).
//!
//! An event is a row of `events` from the moment it is accepted until it ran
//! successfully (the row is deleted) or failed for good (the row is deleted
//! and, in the same transaction, a dead letter or an event for the on-failure
//! destination is written). A worker claims due rows with a lease
//! (`claimed_by`, `lease_until`): on PostgreSQL with `FOR UPDATE SKIP LOCKED`,
//! on SQLite inside `BEGIN IMMEDIATE`. A claimed row whose lease ran out is due
//! again, so an event held by a server that died runs elsewhere; at start-up a
//! server releases what it held itself before it died.

use crate::{fetch_all, fetch_optional, numbered_params, per_chunk, Backend, Store, StoreError};
use sqlx::any::AnyRow;
use sqlx::Row;

/// An event to put on the queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewEvent {
    /// The request id; every run of the event uses it.
    pub id: String,
    pub function: String,
    /// `""` = unqualified.
    pub qualifier: String,
    /// What produced it: `invoke`, `destination`, `schedule`, `bus`.
    pub source: String,
    pub payload: Vec<u8>,
    pub enqueued_ms: i64,
    /// Not before this time.
    pub next_attempt_ms: i64,
    /// The trace it was accepted in (a `traceparent`), continued by its runs.
    pub trace: Option<String>,
}

/// A claimed event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueuedEvent {
    pub id: String,
    pub function: String,
    pub qualifier: String,
    pub source: String,
    pub payload: Vec<u8>,
    pub enqueued_ms: i64,
    /// Runs that ended in a function error so far.
    pub attempts: i64,
    /// Times the event was claimed, this claim included (throttles and
    /// runs cut short by a crash of the server count too).
    pub runs: i64,
    pub last_error_type: Option<String>,
    pub last_error: Option<Vec<u8>>,
    pub last_version: Option<String>,
    pub trace: Option<String>,
}

/// Events waiting (or running) of one function from one source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventDepth {
    pub function: String,
    pub source: String,
    pub count: i64,
    pub oldest_enqueued_ms: i64,
}

/// What the last failed run of an event left.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LastError {
    pub error_type: String,
    pub body: Vec<u8>,
    pub version: String,
}

/// An event that failed for good and had no destination to go to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadLetter {
    pub function: String,
    pub request_id: String,
    pub failed_ms: i64,
    /// `RetriesExhausted` or `EventAgeExceeded`.
    pub condition: String,
    pub attempts: i64,
    /// Lambda's destination invocation record, as JSON.
    pub record: String,
}

/// A function's (or one qualifier's) asynchronous invocation settings;
/// None = Lambda's default.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventInvokeConfigRow {
    pub function: String,
    pub qualifier: String,
    pub max_retry_attempts: Option<i64>,
    pub max_event_age_s: Option<i64>,
    pub on_success: Option<String>,
    pub on_failure: Option<String>,
    pub updated_ms: i64,
}

const EVENT_COLS: &str = "id, function, qualifier, source, payload, enqueued_ms, attempts, runs, \
     last_error_type, last_error, last_version, trace";
const CONFIG_COLS: &str =
    "function, qualifier, max_retry_attempts, max_event_age_s, on_success, on_failure, updated_ms";

impl Store {
    /// Writes the event in its own committed transaction: once this returns,
    /// the event survives a crash.
    pub async fn enqueue_event(&self, ev: &NewEvent) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        insert_event(&mut tx, ev).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Writes several events in one committed transaction: all of them are
    /// accepted or none is (a bus event's fan-out to its subscribers).
    pub async fn enqueue_events(&self, events: &[NewEvent]) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        for ev in events {
            insert_event(&mut tx, ev).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Claims up to `limit` due events for `worker` until `lease_until`:
    /// pending ones whose time has come, and claimed ones whose lease ran out.
    pub async fn claim_events(
        &self,
        worker: &str,
        now_ms: i64,
        lease_until: i64,
        limit: i64,
    ) -> Result<Vec<QueuedEvent>, StoreError> {
        let lock = match self.backend {
            Backend::Sqlite => "",
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        };
        let sql = format!(
            "SELECT {EVENT_COLS} FROM events \
             WHERE (status = 'pending' AND next_attempt_ms <= $1) \
                OR (status = 'claimed' AND lease_until < $1) \
             ORDER BY next_attempt_ms LIMIT $2{lock}"
        );
        let mut tx = self.begin_write().await?;
        let rows = sqlx::query(&sql)
            .bind(now_ms)
            .bind(limit.max(0))
            .fetch_all(&mut *tx)
            .await?;
        let mut events = rows
            .iter()
            .map(event_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        // $1 and $2 are the worker and the lease; the ids follow.
        per_chunk(
            &mut tx,
            &events,
            200,
            |n| {
                format!(
                    "UPDATE events SET status = 'claimed', claimed_by = $1, lease_until = $2, \
                     runs = runs + 1 WHERE id IN ({})",
                    numbered_params(3, n)
                )
            },
            |q| q.bind(worker.to_owned()).bind(lease_until),
            |q, e| q.bind(e.id.as_str()),
        )
        .await?;
        tx.commit().await?;
        for e in &mut events {
            e.runs += 1;
        }
        Ok(events)
    }

    /// Extends the leases of everything `worker` holds.
    pub async fn renew_event_leases(
        &self,
        worker: &str,
        lease_until: i64,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE events SET lease_until = $2 WHERE status = 'claimed' AND claimed_by = $1",
        )
        .bind(worker)
        .bind(lease_until)
        .execute(&mut *self.write_conn().await?)
        .await?;
        Ok(done.rows_affected())
    }

    /// Makes everything `worker` holds pending again (at start-up: what a
    /// killed run of this server left claimed). Returns how many.
    pub async fn release_claimed_events(&self, worker: &str) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE events SET status = 'pending', claimed_by = NULL, lease_until = NULL \
             WHERE status = 'claimed' AND claimed_by = $1",
        )
        .bind(worker)
        .execute(&mut *self.write_conn().await?)
        .await?;
        Ok(done.rows_affected())
    }

    /// Removes events that ran successfully (those `worker` still holds).
    pub async fn complete_events(&self, worker: &str, ids: &[String]) -> Result<(), StoreError> {
        self.write_chunks(
            ids,
            200,
            |n| {
                format!(
                    "DELETE FROM events WHERE claimed_by = $1 AND id IN ({})",
                    numbered_params(2, n)
                )
            },
            |q| q.bind(worker.to_owned()),
            |q, id| q.bind(id.as_str()),
        )
        .await
    }

    /// Puts a held event back as pending, due at `next_attempt_ms`, with its
    /// attempt count and (after a function error) what that run left.
    /// False if `worker` no longer holds it.
    pub async fn reschedule_event(
        &self,
        worker: &str,
        id: &str,
        attempts: i64,
        next_attempt_ms: i64,
        last: Option<&LastError>,
    ) -> Result<bool, StoreError> {
        let sql = if last.is_some() {
            "UPDATE events SET status = 'pending', claimed_by = NULL, lease_until = NULL, \
             attempts = $3, next_attempt_ms = $4, last_error_type = $5, last_error = $6, \
             last_version = $7 WHERE id = $1 AND claimed_by = $2"
        } else {
            "UPDATE events SET status = 'pending', claimed_by = NULL, lease_until = NULL, \
             attempts = $3, next_attempt_ms = $4 WHERE id = $1 AND claimed_by = $2"
        };
        let mut q = sqlx::query(sql)
            .bind(id)
            .bind(worker)
            .bind(attempts)
            .bind(next_attempt_ms);
        if let Some(l) = last {
            q = q
                .bind(l.error_type.as_str())
                .bind(l.body.clone())
                .bind(l.version.as_str());
        }
        Ok(q.execute(&mut *self.write_conn().await?)
            .await?
            .rows_affected()
            == 1)
    }

    /// Ends a held event in one transaction: removes it and writes the dead
    /// letter and/or the event for its destination. False (and nothing
    /// written) if `worker` no longer holds it, e.g. its function was deleted.
    pub async fn finish_event(
        &self,
        worker: &str,
        id: &str,
        dead_letter: Option<&DeadLetter>,
        forward: Option<&NewEvent>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let gone = sqlx::query("DELETE FROM events WHERE id = $1 AND claimed_by = $2")
            .bind(id)
            .bind(worker)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if gone != 1 {
            return Ok(false);
        }
        if let Some(d) = dead_letter {
            sqlx::query(
                "INSERT INTO dead_letters (function, request_id, failed_ms, condition, attempts, record) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(d.function.as_str())
            .bind(d.request_id.as_str())
            .bind(d.failed_ms)
            .bind(d.condition.as_str())
            .bind(d.attempts)
            .bind(d.record.as_str())
            .execute(&mut *tx)
            .await?;
        }
        if let Some(ev) = forward {
            insert_event(&mut tx, ev).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// When the earliest pending event is due, if any is.
    pub async fn next_event_due(&self) -> Result<Option<i64>, StoreError> {
        let v: Option<i64> =
            sqlx::query_scalar("SELECT MIN(next_attempt_ms) FROM events WHERE status = 'pending'")
                .fetch_one(&self.pool)
                .await?;
        Ok(v)
    }

    /// Events on the queue (pending or claimed), of one function or all.
    pub async fn count_events(&self, function: Option<&str>) -> Result<i64, StoreError> {
        let n: i64 = match function {
            Some(f) => {
                sqlx::query_scalar("SELECT COUNT(*) FROM events WHERE function = $1")
                    .bind(f)
                    .fetch_one(&self.pool)
                    .await?
            }
            None => {
                sqlx::query_scalar("SELECT COUNT(*) FROM events")
                    .fetch_one(&self.pool)
                    .await?
            }
        };
        Ok(n)
    }

    /// Events on the queue by function and source: how many, and when the
    /// oldest was accepted (`/metrics`).
    pub async fn event_depths(&self) -> Result<Vec<EventDepth>, StoreError> {
        let rows = sqlx::query(
            "SELECT function, source, COUNT(*), MIN(enqueued_ms) FROM events \
             GROUP BY function, source ORDER BY function, source",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(EventDepth {
                    function: r.try_get(0)?,
                    source: r.try_get(1)?,
                    count: r.try_get(2)?,
                    oldest_enqueued_ms: r.try_get(3)?,
                })
            })
            .collect()
    }

    /// Dead letters kept, by function (`/metrics`).
    pub async fn dead_letter_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT function, COUNT(*) FROM dead_letters GROUP BY function ORDER BY function",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    /// Everything asynchronous about a deleted function: its queued events,
    /// its dead letters and its EventInvokeConfigs.
    pub async fn drop_function_events(&self, function: &str) -> Result<u64, StoreError> {
        let mut tx = self.begin_write().await?;
        let n = sqlx::query("DELETE FROM events WHERE function = $1")
            .bind(function)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        for sql in [
            "DELETE FROM dead_letters WHERE function = $1",
            "DELETE FROM event_invoke_configs WHERE function = $1",
        ] {
            sqlx::query(sql).bind(function).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(n)
    }

    /// The function's dead letters, oldest first, at most `limit`.
    pub async fn dead_letters(
        &self,
        function: &str,
        limit: i64,
    ) -> Result<Vec<DeadLetter>, StoreError> {
        let rows = sqlx::query(
            "SELECT function, request_id, failed_ms, condition, attempts, record FROM dead_letters \
             WHERE function = $1 ORDER BY id LIMIT $2",
        )
        .bind(function)
        .bind(limit.max(0))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(DeadLetter {
                    function: r.try_get("function")?,
                    request_id: r.try_get("request_id")?,
                    failed_ms: r.try_get("failed_ms")?,
                    condition: r.try_get("condition")?,
                    attempts: r.try_get("attempts")?,
                    record: r.try_get("record")?,
                })
            })
            .collect()
    }

    // ---- EventInvokeConfig ----

    /// Creates or replaces the row.
    pub async fn put_event_invoke_config(
        &self,
        c: &EventInvokeConfigRow,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(&format!(
            "INSERT INTO event_invoke_configs ({CONFIG_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (function, qualifier) DO UPDATE SET \
             max_retry_attempts = excluded.max_retry_attempts, \
             max_event_age_s = excluded.max_event_age_s, on_success = excluded.on_success, \
             on_failure = excluded.on_failure, updated_ms = excluded.updated_ms"
        ))
        .bind(c.function.as_str())
        .bind(c.qualifier.as_str())
        .bind(c.max_retry_attempts)
        .bind(c.max_event_age_s)
        .bind(c.on_success.as_deref())
        .bind(c.on_failure.as_deref())
        .bind(c.updated_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn get_event_invoke_config(
        &self,
        function: &str,
        qualifier: &str,
    ) -> Result<Option<EventInvokeConfigRow>, StoreError> {
        let sql = format!(
            "SELECT {CONFIG_COLS} FROM event_invoke_configs WHERE function = $1 AND qualifier = $2"
        );
        fetch_optional(&self.pool, &sql, &[function, qualifier], config_from_row).await
    }

    /// All of a function's rows, by qualifier.
    pub async fn list_event_invoke_configs(
        &self,
        function: &str,
    ) -> Result<Vec<EventInvokeConfigRow>, StoreError> {
        let sql = format!(
            "SELECT {CONFIG_COLS} FROM event_invoke_configs WHERE function = $1 ORDER BY qualifier"
        );
        fetch_all(&self.pool, &sql, &[function], config_from_row).await
    }

    /// False if there was none.
    pub async fn delete_event_invoke_config(
        &self,
        function: &str,
        qualifier: &str,
    ) -> Result<bool, StoreError> {
        let done =
            sqlx::query("DELETE FROM event_invoke_configs WHERE function = $1 AND qualifier = $2")
                .bind(function)
                .bind(qualifier)
                .execute(&mut *self.write_conn().await?)
                .await?;
        Ok(done.rows_affected() > 0)
    }
}

pub(crate) async fn insert_event(
    conn: &mut sqlx::AnyConnection,
    ev: &NewEvent,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO events (id, function, qualifier, source, payload, enqueued_ms, attempts, runs, \
         next_attempt_ms, status, trace) VALUES ($1, $2, $3, $4, $5, $6, 0, 0, $7, 'pending', $8)",
    )
    .bind(ev.id.as_str())
    .bind(ev.function.as_str())
    .bind(ev.qualifier.as_str())
    .bind(ev.source.as_str())
    .bind(ev.payload.clone())
    .bind(ev.enqueued_ms)
    .bind(ev.next_attempt_ms)
    .bind(ev.trace.as_deref())
    .execute(&mut *conn)
    .await
    .map_err(|e| match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => {
            StoreError::Conflict(format!("event {} is already queued", ev.id))
        }
        _ => StoreError::from(e),
    })?;
    Ok(())
}

fn event_from_row(row: &AnyRow) -> Result<QueuedEvent, StoreError> {
    Ok(QueuedEvent {
        id: row.try_get("id")?,
        function: row.try_get("function")?,
        qualifier: row.try_get("qualifier")?,
        source: row.try_get("source")?,
        payload: row.try_get("payload")?,
        enqueued_ms: row.try_get("enqueued_ms")?,
        attempts: row.try_get("attempts")?,
        runs: row.try_get("runs")?,
        last_error_type: row.try_get("last_error_type")?,
        last_error: row.try_get("last_error")?,
        last_version: row.try_get("last_version")?,
        trace: row.try_get("trace")?,
    })
}

fn config_from_row(row: &AnyRow) -> Result<EventInvokeConfigRow, StoreError> {
    Ok(EventInvokeConfigRow {
        function: row.try_get("function")?,
        qualifier: row.try_get("qualifier")?,
        max_retry_attempts: row.try_get("max_retry_attempts")?,
        max_event_age_s: row.try_get("max_event_age_s")?,
        on_success: row.try_get("on_success")?,
        on_failure: row.try_get("on_failure")?,
        updated_ms: row.try_get("updated_ms")?,
    })
}
