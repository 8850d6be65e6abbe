//! Durable queues (SQS's model): `queues` holds each queue's settings,
//! `messages` every message from its send until it is deleted.
//!
//! A message is visible when `visible_ms <= now`. Receiving claims visible
//! messages in send order: a fresh receipt handle, `visible_ms` pushed out
//! by the visibility timeout, `receive_count + 1`, all in one statement (on
//! PostgreSQL over `FOR UPDATE SKIP LOCKED`, on SQLite inside `BEGIN
//! IMMEDIATE`). The same transaction first moves every visible message that
//! was already received the queue's `max_receive_count` times to its
//! dead-letter queue (SQS's RedrivePolicy), remembering where it came from
//! (`source_queue`) so that a redrive can move it back.

use crate::{per_chunk, placeholders, Backend, Store, StoreError};
use sqlx::any::AnyRow;
use sqlx::Row;

/// SQS's default visibility timeout.
pub const DEFAULT_VISIBILITY_TIMEOUT_MS: i64 = 30_000;
/// SQS's largest message (body and attributes), since 2025.
pub const MAX_MESSAGE_BYTES: i64 = 1_048_576;

/// A queue and its settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueRow {
    pub name: String,
    pub created_ms: i64,
    pub visibility_timeout_ms: i64,
    /// Every message sent waits this long before it is visible.
    pub delay_ms: i64,
    pub max_message_bytes: i64,
    /// SQS's RedrivePolicy: the dead-letter queue's name and the receives
    /// after which a message goes there.
    pub redrive: Option<Redrive>,
    /// `api` or `manifest`.
    pub origin: String,
}

/// Where a queue's messages go after too many receives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Redrive {
    pub dead_letter_queue: String,
    pub max_receive_count: i64,
}

impl QueueRow {
    /// Whether the settings (not the name, creation time or origin) are the same.
    pub fn same_settings(&self, other: &QueueRow) -> bool {
        (
            self.visibility_timeout_ms,
            self.delay_ms,
            self.max_message_bytes,
            &self.redrive,
        ) == (
            other.visibility_timeout_ms,
            other.delay_ms,
            other.max_message_bytes,
            &other.redrive,
        )
    }
}

/// A message to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewMessage {
    /// A uuid.
    pub id: String,
    pub body: String,
    pub md5_of_body: String,
    /// The message attributes as JSON (None: none).
    pub attributes: Option<String>,
    pub md5_of_attributes: Option<String>,
    pub sent_ms: i64,
    /// Not visible before this time (`sent_ms` + the delay).
    pub visible_ms: i64,
    /// The sender's trace context (a `traceparent`), continued by its consumer.
    pub trace: Option<String>,
}

/// A stored message as a receive (or a look at dead letters) returns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub id: String,
    pub queue: String,
    pub body: String,
    pub md5_of_body: String,
    pub attributes: Option<String>,
    pub md5_of_attributes: Option<String>,
    pub sent_ms: i64,
    pub visible_ms: i64,
    /// Receives so far, this one included.
    pub receive_count: i64,
    pub first_receive_ms: Option<i64>,
    /// The handle of the latest receive (None: never received, or released).
    pub receipt_handle: Option<String>,
    /// For a dead letter: the queue it was moved from.
    pub source_queue: Option<String>,
    pub trace: Option<String>,
}

/// The numbers of one queue, at one time.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueueStats {
    pub name: String,
    /// Visible now.
    pub visible: i64,
    /// Received and not yet visible again.
    pub in_flight: i64,
    /// Sent with a delay that has not passed.
    pub delayed: i64,
    /// When the oldest message on the queue was sent.
    pub oldest_sent_ms: Option<i64>,
    /// Messages moved from this queue to its dead-letter queue and still there.
    pub dead_letters: i64,
}

const QUEUE_COLS: &str = "name, created_ms, visibility_timeout_ms, delay_ms, max_message_bytes, \
     dead_letter_queue, max_receive_count, origin";
const MESSAGE_COLS: &str = "seq, id, queue, body, md5_of_body, attributes, md5_of_attributes, \
     sent_ms, visible_ms, receive_count, first_receive_ms, receipt_handle, source_queue, trace";

impl Store {
    /// Creates the queue, or (SQS's CreateQueue) returns the existing one
    /// of that name when its settings are the same; different settings are
    /// a Conflict. The flag says whether it was created.
    pub async fn create_queue(&self, q: &QueueRow) -> Result<(QueueRow, bool), StoreError> {
        let mut tx = self.begin_write().await?;
        if let Some(existing) = queue_in(&mut tx, &q.name).await? {
            tx.commit().await?;
            if existing.same_settings(q) {
                return Ok((existing, false));
            }
            return Err(StoreError::Conflict(format!(
                "a queue named {} already exists with other attributes",
                q.name
            )));
        }
        insert_queue(&mut tx, q, false).await?;
        tx.commit().await?;
        Ok((q.clone(), true))
    }

    /// Creates the queue or sets its settings to these (a manifest's
    /// queue: the manifest wins); it is `manifest`'s from then on.
    pub async fn ensure_queue(&self, q: &QueueRow) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        insert_queue(&mut tx, q, true).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn get_queue(&self, name: &str) -> Result<Option<QueueRow>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        queue_in(&mut conn, name).await
    }

    /// The queues whose names start with `prefix`, by name, at most `limit`
    /// after the name `after` (a page's last, for the next page).
    pub async fn list_queues(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<QueueRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {QUEUE_COLS} FROM queues WHERE SUBSTR(name, 1, $1) = $2 AND name > $3 \
             ORDER BY name LIMIT $4"
        ))
        .bind(i32::try_from(prefix.chars().count()).unwrap_or(i32::MAX))
        .bind(prefix)
        .bind(after.unwrap_or(""))
        .bind(limit.max(0))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(queue_from_row).collect()
    }

    /// Deletes the queue and its messages; false if there was none.
    pub async fn delete_queue(&self, name: &str) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM messages WHERE queue = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        let n = sqlx::query("DELETE FROM queues WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(n > 0)
    }

    /// Sends a batch in one transaction: all are stored or none. NotFound
    /// if the queue does not exist; Conflict if a message id is taken.
    pub async fn send_messages(&self, queue: &str, msgs: &[NewMessage]) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM queues WHERE name = $1")
            .bind(queue)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            return Err(StoreError::NotFound(format!("no queue named {queue}")));
        }
        let backend = self.backend;
        per_chunk(
            &mut tx,
            msgs,
            100,
            |n| {
                format!(
                    "INSERT INTO messages (queue, id, body, md5_of_body, attributes, \
                     md5_of_attributes, sent_ms, visible_ms, trace) VALUES {}",
                    placeholders(backend, n, 9)
                )
            },
            |q| q,
            |q, m| {
                q.bind(queue.to_owned())
                    .bind(m.id.as_str())
                    .bind(m.body.as_str())
                    .bind(m.md5_of_body.as_str())
                    .bind(m.attributes.as_deref())
                    .bind(m.md5_of_attributes.as_deref())
                    .bind(m.sent_ms)
                    .bind(m.visible_ms)
                    .bind(m.trace.as_deref())
            },
        )
        .await
        .map_err(|e| match e {
            StoreError::Database(sqlx::Error::Database(d)) if d.is_unique_violation() => {
                StoreError::Conflict("a message id is already taken".into())
            }
            other => other,
        })?;
        tx.commit().await?;
        Ok(())
    }

    /// Receives up to `max` visible messages of `queue` at `now_ms` (those
    /// visible longest first, then in send order; returned in send order), each invisible for `visibility_ms` (None: the queue's
    /// timeout) under a new receipt handle. In the same transaction, the
    /// visible messages already received the queue's max receive count are
    /// moved to its dead-letter queue instead. NotFound if the queue does
    /// not exist.
    pub async fn receive_messages(
        &self,
        queue: &str,
        now_ms: i64,
        max: i64,
        visibility_ms: Option<i64>,
    ) -> Result<Vec<Message>, StoreError> {
        let lock = match self.backend {
            Backend::Sqlite => "",
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        };
        let mut tx = self.begin_write().await?;
        let q = queue_in(&mut tx, queue)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("no queue named {queue}")))?;
        if let Some(r) = &q.redrive {
            // Only into a queue that exists: a message is never moved out of sight.
            sqlx::query(&format!(
                "UPDATE messages SET queue = $3, source_queue = $1, receive_count = 0, \
                 first_receive_ms = NULL, receipt_handle = NULL, visible_ms = $2 \
                 WHERE seq IN (SELECT seq FROM messages WHERE queue = $1 AND visible_ms <= $2 \
                 AND receive_count >= $4{lock}) \
                 AND EXISTS (SELECT 1 FROM queues WHERE name = $3)"
            ))
            .bind(queue)
            .bind(now_ms)
            .bind(r.dead_letter_queue.as_str())
            .bind(r.max_receive_count)
            .execute(&mut *tx)
            .await?;
        }
        // One nonce per receive; the sequence number tells the messages apart.
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        let rows = sqlx::query(&format!(
            "UPDATE messages SET receipt_handle = $1 || '-' || CAST(seq AS TEXT), \
             visible_ms = $2, receive_count = receive_count + 1, \
             first_receive_ms = COALESCE(first_receive_ms, $3) \
             WHERE seq IN (SELECT seq FROM messages WHERE queue = $4 AND visible_ms <= $3 \
             ORDER BY visible_ms, seq LIMIT $5{lock}) RETURNING {MESSAGE_COLS}"
        ))
        .bind(nonce)
        .bind(now_ms + visibility_ms.unwrap_or(q.visibility_timeout_ms))
        .bind(now_ms)
        .bind(queue)
        .bind(max.max(0))
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let mut got = rows
            .iter()
            .map(|r| Ok((r.try_get::<i64, _>("seq")?, message_from_row(r)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        got.sort_by_key(|(seq, _)| *seq);
        Ok(got.into_iter().map(|(_, m)| m).collect())
    }

    /// Deletes the messages received under these handles, in one
    /// statement; true for each handle that named a message.
    pub async fn delete_messages(
        &self,
        queue: &str,
        handles: &[&str],
    ) -> Result<Vec<bool>, StoreError> {
        let done = self
            .by_handles("DELETE FROM messages", queue, handles, &[])
            .await?;
        Ok(handles
            .iter()
            .map(|h| done.iter().any(|d| d == h))
            .collect())
    }

    /// Makes the message received under `handle` visible at `visible_ms`;
    /// false if the handle names none.
    pub async fn change_visibility(
        &self,
        queue: &str,
        handle: &str,
        visible_ms: i64,
    ) -> Result<bool, StoreError> {
        let done = self
            .by_handles(
                "UPDATE messages SET visible_ms = $2",
                queue,
                &[handle],
                &[visible_ms],
            )
            .await?;
        Ok(!done.is_empty())
    }

    /// Gives received messages back as if they had not been received (a
    /// throttled invocation): visible at `now_ms`, the receive uncounted,
    /// the handle void. Returns how many.
    pub async fn release_messages(
        &self,
        queue: &str,
        handles: &[&str],
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        let done = self
            .by_handles(
                "UPDATE messages SET visible_ms = $2, receipt_handle = NULL, \
                 receive_count = receive_count - 1, first_receive_ms = CASE WHEN \
                 receive_count <= 1 THEN NULL ELSE first_receive_ms END",
                queue,
                handles,
                &[now_ms],
            )
            .await?;
        Ok(done.len() as u64)
    }

    /// `sql` (a `DELETE FROM messages` or `UPDATE messages SET …`) on the
    /// messages of `queue` received under the handles, `queue` bound as $1
    /// and `values` as $2…; the handles of the rows it touched.
    async fn by_handles(
        &self,
        sql: &str,
        queue: &str,
        handles: &[&str],
        values: &[i64],
    ) -> Result<Vec<String>, StoreError> {
        if handles.is_empty() {
            return Ok(Vec::new());
        }
        let first = values.len() + 2;
        // The handles find the rows (a unique index). SQLite, without
        // statistics, would rather walk the queue's index once the list has
        // ten handles: a scan of the whole queue per batch. `+queue` keeps
        // the queue column out of its choice.
        let queue_col = match self.backend {
            Backend::Sqlite => "+queue",
            Backend::Postgres => "queue",
        };
        let sql = format!(
            "{sql} WHERE {queue_col} = $1 AND receipt_handle IN ({}) RETURNING receipt_handle",
            crate::numbered_params(first, handles.len())
        );
        let mut tx = self.begin_write().await?;
        let mut q = sqlx::query(&sql).bind(queue);
        for v in values {
            q = q.bind(*v);
        }
        for h in handles {
            q = q.bind(*h);
        }
        let rows = q.fetch_all(&mut *tx).await?;
        tx.commit().await?;
        // A release returns the new (NULL) handle: count the rows then.
        Ok(rows
            .iter()
            .map(|r| {
                r.try_get::<Option<String>, _>(0)
                    .map(Option::unwrap_or_default)
            })
            .collect::<Result<_, _>>()?)
    }

    /// Deletes every message of the queue; how many.
    pub async fn purge_queue(&self, queue: &str) -> Result<u64, StoreError> {
        let mut tx = self.begin_write().await?;
        let n = sqlx::query("DELETE FROM messages WHERE queue = $1")
            .bind(queue)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(n)
    }

    /// Moves the dead letters that came from `queue` back to it, visible at
    /// `now_ms` and never received; how many.
    pub async fn redrive(&self, queue: &str, now_ms: i64) -> Result<u64, StoreError> {
        let mut tx = self.begin_write().await?;
        let n = sqlx::query(
            "UPDATE messages SET queue = $1, source_queue = NULL, visible_ms = $2, \
             receive_count = 0, first_receive_ms = NULL, receipt_handle = NULL \
             WHERE source_queue = $1 AND EXISTS (SELECT 1 FROM queues WHERE name = $1)",
        )
        .bind(queue)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(n)
    }

    /// The dead letters that came from `queue`, oldest first, at most `limit`.
    pub async fn dead_letter_messages(
        &self,
        queue: &str,
        limit: i64,
    ) -> Result<Vec<Message>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {MESSAGE_COLS} FROM messages WHERE source_queue = $1 ORDER BY seq LIMIT $2"
        ))
        .bind(queue)
        .bind(limit.max(0))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(message_from_row).collect()
    }

    /// The numbers of one queue (`Some(name)`) or of every queue, by name,
    /// at `now_ms`.
    pub async fn queue_stats(
        &self,
        queue: Option<&str>,
        now_ms: i64,
    ) -> Result<Vec<QueueStats>, StoreError> {
        let filter = if queue.is_some() {
            "WHERE q.name = $2"
        } else {
            ""
        };
        let sql = format!(
            "SELECT q.name, \
             (SELECT COUNT(*) FROM messages m WHERE m.queue = q.name AND m.visible_ms <= $1), \
             (SELECT COUNT(*) FROM messages m WHERE m.queue = q.name AND m.visible_ms > $1 \
                AND m.receipt_handle IS NOT NULL), \
             (SELECT COUNT(*) FROM messages m WHERE m.queue = q.name AND m.visible_ms > $1 \
                AND m.receipt_handle IS NULL), \
             (SELECT MIN(m.sent_ms) FROM messages m WHERE m.queue = q.name), \
             (SELECT COUNT(*) FROM messages m WHERE m.source_queue = q.name) \
             FROM queues q {filter} ORDER BY q.name"
        );
        let mut query = sqlx::query(&sql).bind(now_ms);
        if let Some(name) = queue {
            query = query.bind(name);
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                Ok(QueueStats {
                    name: r.try_get(0)?,
                    visible: r.try_get(1)?,
                    in_flight: r.try_get(2)?,
                    delayed: r.try_get(3)?,
                    oldest_sent_ms: r.try_get(4)?,
                    dead_letters: r.try_get(5)?,
                })
            })
            .collect()
    }

    /// When the next message of `queue` is (or became) visible; None if it
    /// has none.
    pub async fn next_visible_ms(&self, queue: &str) -> Result<Option<i64>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT MIN(visible_ms) FROM messages WHERE queue = $1")
                .bind(queue)
                .fetch_one(&self.pool)
                .await?,
        )
    }
}

async fn queue_in(
    conn: &mut sqlx::AnyConnection,
    name: &str,
) -> Result<Option<QueueRow>, StoreError> {
    let row = sqlx::query(&format!("SELECT {QUEUE_COLS} FROM queues WHERE name = $1"))
        .bind(name)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(queue_from_row).transpose()
}

/// Inserts the queue; with `replace`, an existing one takes these settings
/// and origin (its creation time stays).
async fn insert_queue(
    conn: &mut sqlx::AnyConnection,
    q: &QueueRow,
    replace: bool,
) -> Result<(), StoreError> {
    let on_conflict = if replace {
        " ON CONFLICT (name) DO UPDATE SET visibility_timeout_ms = excluded.visibility_timeout_ms, \
         delay_ms = excluded.delay_ms, max_message_bytes = excluded.max_message_bytes, \
         dead_letter_queue = excluded.dead_letter_queue, \
         max_receive_count = excluded.max_receive_count, origin = excluded.origin"
    } else {
        ""
    };
    sqlx::query(&format!(
        "INSERT INTO queues ({QUEUE_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8){on_conflict}"
    ))
    .bind(q.name.as_str())
    .bind(q.created_ms)
    .bind(q.visibility_timeout_ms)
    .bind(q.delay_ms)
    .bind(q.max_message_bytes)
    .bind(q.redrive.as_ref().map(|r| r.dead_letter_queue.clone()))
    .bind(q.redrive.as_ref().map(|r| r.max_receive_count))
    .bind(q.origin.as_str())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

fn queue_from_row(row: &AnyRow) -> Result<QueueRow, StoreError> {
    let dlq: Option<String> = row.try_get("dead_letter_queue")?;
    let max: Option<i64> = row.try_get("max_receive_count")?;
    Ok(QueueRow {
        name: row.try_get("name")?,
        created_ms: row.try_get("created_ms")?,
        visibility_timeout_ms: row.try_get("visibility_timeout_ms")?,
        delay_ms: row.try_get("delay_ms")?,
        max_message_bytes: row.try_get("max_message_bytes")?,
        redrive: dlq
            .zip(max)
            .map(|(dead_letter_queue, max_receive_count)| Redrive {
                dead_letter_queue,
                max_receive_count,
            }),
        origin: row.try_get("origin")?,
    })
}

fn message_from_row(row: &AnyRow) -> Result<Message, StoreError> {
    Ok(Message {
        id: row.try_get("id")?,
        queue: row.try_get("queue")?,
        body: row.try_get("body")?,
        md5_of_body: row.try_get("md5_of_body")?,
        attributes: row.try_get("attributes")?,
        md5_of_attributes: row.try_get("md5_of_attributes")?,
        sent_ms: row.try_get("sent_ms")?,
        visible_ms: row.try_get("visible_ms")?,
        receive_count: row.try_get("receive_count")?,
        first_receive_ms: row.try_get("first_receive_ms")?,
        receipt_handle: row.try_get("receipt_handle")?,
        source_queue: row.try_get("source_queue")?,
        trace: row.try_get("trace")?,
    })
}
