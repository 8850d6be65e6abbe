//! Durable queues: the operations the SQS API, the native API and the CLI
//! share, with SQS's input rules (queue names, message size and
//! characters, attribute names and types, the ranges of DelaySeconds,
//! VisibilityTimeout, MaxNumberOfMessages and WaitTimeSeconds). Long polls
//! wait on a `Notify` that sends on this server wake, bounded by their wait.

pub mod attributes;

use crate::{Platform, PlatformError};
use attributes::{check_attributes, check_body, md5_of_attributes, md5_of_body, message_size};
pub use attributes::{MessageAttribute, MessageAttributes};
use std::time::Duration;
use tokio::sync::Notify;
use updraft_core::{now_ms, Invalid};
use updraft_store::{
    Message, NewMessage, QueueRow, QueueStats, Redrive, DEFAULT_VISIBILITY_TIMEOUT_MS,
    MAX_MESSAGE_BYTES,
};

/// SQS's bounds, in seconds.
pub const MAX_DELAY_S: i64 = 900;
pub const MAX_VISIBILITY_S: i64 = 43_200;
pub const MAX_WAIT_S: i64 = 20;
pub const MAX_RECEIVE: i64 = 10;
pub const MAX_RECEIVE_COUNT: i64 = 1000;
/// The smallest `MaximumMessageSize` SQS takes.
pub const MIN_MESSAGE_BYTES: i64 = 1024;

/// Wakes long polls when a message is sent on this server.
#[derive(Default)]
pub(crate) struct Waiters {
    sent: Notify,
}

/// A queue's settings as a caller gives them; None = not given (SQS's
/// default for a new queue, the existing value for CreateQueue's comparison).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueueSettings {
    pub visibility_timeout_s: Option<i64>,
    pub delay_s: Option<i64>,
    pub max_message_bytes: Option<i64>,
    /// Some(None): explicitly none.
    pub redrive: Option<Option<Redrive>>,
}

/// One message to send.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SendMessage {
    pub body: String,
    pub attributes: MessageAttributes,
    /// None: the queue's delay.
    pub delay_s: Option<i64>,
    /// The sender's trace context (a `traceparent`), continued by the consumer.
    pub trace: Option<String>,
}

/// What a send answers (SQS's SendMessage result).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Sent {
    pub message_id: String,
    pub md5_of_body: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub md5_of_attributes: Option<String>,
}

/// A receive: how many, how long they stay invisible, how long to wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Receive {
    pub max: i64,
    /// None: the queue's visibility timeout.
    pub visibility_s: Option<i64>,
    pub wait_s: i64,
}

impl Default for Receive {
    fn default() -> Self {
        Receive {
            max: 1,
            visibility_s: None,
            wait_s: 0,
        }
    }
}

/// SQS's queue name rules; `.fifo` is refused as unsupported.
pub fn check_queue_name(name: &str) -> Result<(), Invalid> {
    if name.ends_with(".fifo") {
        return Err(Invalid::new(
            "QueueName",
            "a standard queue's name: FIFO queues are not supported",
            name,
        ));
    }
    let ok = (1..=80).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        return Ok(());
    }
    Err(Invalid::new(
        "QueueName",
        "1 to 80 characters of A-Z, a-z, 0-9, - and _",
        name,
    ))
}

pub(crate) fn check_range(field: &str, v: i64, min: i64, max: i64) -> Result<(), Invalid> {
    if (min..=max).contains(&v) {
        return Ok(());
    }
    Err(Invalid::new(field, format!("{min} to {max}"), v))
}

/// A queue's settings with SQS's defaults for what is not given.
fn settings_row(name: &str, s: &QueueSettings, base: Option<&QueueRow>) -> QueueRow {
    let default = QueueRow {
        name: name.to_string(),
        created_ms: now_ms(),
        visibility_timeout_ms: DEFAULT_VISIBILITY_TIMEOUT_MS,
        delay_ms: 0,
        max_message_bytes: MAX_MESSAGE_BYTES,
        redrive: None,
        origin: "api".into(),
    };
    let base = base.unwrap_or(&default);
    QueueRow {
        visibility_timeout_ms: s
            .visibility_timeout_s
            .map_or(base.visibility_timeout_ms, |v| v * 1000),
        delay_ms: s.delay_s.map_or(base.delay_ms, |v| v * 1000),
        max_message_bytes: s.max_message_bytes.unwrap_or(base.max_message_bytes),
        redrive: s.redrive.clone().unwrap_or_else(|| base.redrive.clone()),
        ..base.clone()
    }
}

impl Platform {
    fn queue_gone(&self, name: &str) -> PlatformError {
        PlatformError::NotFound(format!("no queue named {name}"))
    }

    /// SQS's CreateQueue: a new queue, or the existing one when what is
    /// given matches it (a Conflict otherwise).
    pub async fn create_queue(
        &self,
        name: &str,
        settings: &QueueSettings,
    ) -> Result<QueueRow, PlatformError> {
        check_queue_name(name)?;
        self.check_settings(name, settings).await?;
        let store = &self.inner.store;
        let existing = store.get_queue(name).await?;
        let wanted = settings_row(name, settings, existing.as_ref());
        match existing {
            Some(q) if q.same_settings(&wanted) => Ok(q),
            Some(_) => Err(PlatformError::Conflict(format!(
                "a queue named {name} already exists with other attributes"
            ))),
            None => Ok(store.create_queue(&wanted).await?.0),
        }
    }

    async fn check_settings(&self, name: &str, s: &QueueSettings) -> Result<(), PlatformError> {
        if let Some(v) = s.visibility_timeout_s {
            check_range("VisibilityTimeout", v, 0, MAX_VISIBILITY_S)?;
        }
        if let Some(v) = s.delay_s {
            check_range("DelaySeconds", v, 0, MAX_DELAY_S)?;
        }
        if let Some(v) = s.max_message_bytes {
            check_range(
                "MaximumMessageSize",
                v,
                MIN_MESSAGE_BYTES,
                MAX_MESSAGE_BYTES,
            )?;
        }
        if let Some(Some(r)) = &s.redrive {
            check_range(
                "RedrivePolicy.maxReceiveCount",
                r.max_receive_count,
                1,
                MAX_RECEIVE_COUNT,
            )?;
            let dlq = &r.dead_letter_queue;
            if dlq == name || self.inner.store.get_queue(dlq).await?.is_none() {
                return Err(Invalid::new(
                    "RedrivePolicy.deadLetterTargetArn",
                    "the ARN of another existing queue",
                    dlq,
                )
                .into());
            }
        }
        Ok(())
    }

    pub async fn get_queue(&self, name: &str) -> Result<QueueRow, PlatformError> {
        self.inner
            .store
            .get_queue(name)
            .await?
            .ok_or_else(|| self.queue_gone(name))
    }

    /// Queues by name from `prefix`, at most `limit` after `after`.
    pub async fn list_queues(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<QueueRow>, PlatformError> {
        Ok(self.inner.store.list_queues(prefix, after, limit).await?)
    }

    pub async fn delete_queue(&self, name: &str) -> Result<(), PlatformError> {
        if !self.inner.store.delete_queue(name).await? {
            return Err(self.queue_gone(name));
        }
        Ok(())
    }

    /// Sends a batch: each message is checked on its own (its result says
    /// why one is refused); the accepted ones are stored in one transaction.
    pub async fn send_messages(
        &self,
        queue: &str,
        msgs: Vec<SendMessage>,
    ) -> Result<Vec<Result<Sent, PlatformError>>, PlatformError> {
        let q = self.get_queue(queue).await?;
        let now = now_ms();
        let mut results = Vec::with_capacity(msgs.len());
        let mut rows = Vec::new();
        for m in msgs {
            match message_row(&q, m, now) {
                Ok(row) => {
                    results.push(Ok(Sent {
                        message_id: row.id.clone(),
                        md5_of_body: row.md5_of_body.clone(),
                        md5_of_attributes: row.md5_of_attributes.clone(),
                    }));
                    rows.push(row);
                }
                Err(e) => results.push(Err(e.into())),
            }
        }
        if rows.is_empty() {
            return Ok(results);
        }
        self.inner
            .store
            .send_messages(queue, &rows)
            .await
            .map_err(|e| match e {
                updraft_store::StoreError::NotFound(_) => self.queue_gone(queue),
                other => other.into(),
            })?;
        self.inner.waiters.sent.notify_waiters();
        self.inner.queues.arrived();
        Ok(results)
    }

    /// One message; its refusal is the error.
    pub async fn send_message(&self, queue: &str, m: SendMessage) -> Result<Sent, PlatformError> {
        self.send_messages(queue, vec![m])
            .await?
            .pop()
            .unwrap_or_else(|| Err(PlatformError::Internal("a send without a result".into())))
    }

    /// Receives up to `r.max` messages, waiting up to `r.wait_s` for the
    /// first (woken by sends on this server, and when a delayed or
    /// in-flight message comes due); empty when none came in time.
    pub async fn receive_messages(
        &self,
        queue: &str,
        r: Receive,
    ) -> Result<Vec<Message>, PlatformError> {
        check_range("MaxNumberOfMessages", r.max, 1, MAX_RECEIVE)?;
        check_range("WaitTimeSeconds", r.wait_s, 0, MAX_WAIT_S)?;
        if let Some(v) = r.visibility_s {
            check_range("VisibilityTimeout", v, 0, MAX_VISIBILITY_S)?;
        }
        let store = &self.inner.store;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(r.wait_s as u64);
        loop {
            let sent = self.inner.waiters.sent.notified();
            tokio::pin!(sent);
            sent.as_mut().enable();
            let now = now_ms();
            let got = store
                .receive_messages(queue, now, r.max, r.visibility_s.map(|v| v * 1000))
                .await
                .map_err(|e| match e {
                    updraft_store::StoreError::NotFound(_) => self.queue_gone(queue),
                    other => other.into(),
                })?;
            if !got.is_empty() || tokio::time::Instant::now() >= deadline {
                return Ok(got);
            }
            // A message that comes due on its own (a delay, a visibility
            // timeout) wakes no one: wait for it too.
            let mut until = deadline;
            if let Some(next) = store.next_visible_ms(queue).await? {
                let due =
                    tokio::time::Instant::now() + Duration::from_millis((next - now).max(1) as u64);
                until = until.min(due);
            }
            tokio::select! {
                _ = &mut sent => {}
                _ = tokio::time::sleep_until(until) => {}
            }
        }
    }

    /// Deletes received messages by receipt handle, each on its own: a
    /// malformed handle is refused; one that no longer names a message
    /// (deleted, received again since) is accepted, as SQS does.
    pub async fn delete_messages(
        &self,
        queue: &str,
        handles: &[&str],
    ) -> Result<Vec<Result<(), PlatformError>>, PlatformError> {
        self.get_queue(queue).await?;
        let valid: Vec<&str> = handles
            .iter()
            .copied()
            .filter(|h| check_handle(h).is_ok())
            .collect();
        self.inner.store.delete_messages(queue, &valid).await?;
        Ok(handles.iter().map(|h| check_handle(h)).collect())
    }

    /// Makes a received message visible again after `timeout_s`.
    pub async fn change_visibility(
        &self,
        queue: &str,
        handle: &str,
        timeout_s: i64,
    ) -> Result<(), PlatformError> {
        self.get_queue(queue).await?;
        check_handle(handle)?;
        check_range("VisibilityTimeout", timeout_s, 0, MAX_VISIBILITY_S)?;
        let at = now_ms() + timeout_s * 1000;
        if !self
            .inner
            .store
            .change_visibility(queue, handle, at)
            .await?
        {
            return Err(PlatformError::ReceiptHandleInvalid(format!(
                "the receipt handle {handle} no longer names a message in flight: it was \
                 deleted or received again"
            )));
        }
        if timeout_s == 0 {
            self.inner.waiters.sent.notify_waiters();
            self.inner.queues.arrived();
        }
        Ok(())
    }

    /// Deletes every message of the queue; how many.
    pub async fn purge_queue(&self, queue: &str) -> Result<u64, PlatformError> {
        self.get_queue(queue).await?;
        Ok(self.inner.store.purge_queue(queue).await?)
    }

    /// Moves the dead letters that came from `queue` back to it; how many.
    pub async fn redrive_queue(&self, queue: &str) -> Result<u64, PlatformError> {
        self.get_queue(queue).await?;
        let n = self.inner.store.redrive(queue, now_ms()).await?;
        if n > 0 {
            self.inner.waiters.sent.notify_waiters();
            self.inner.queues.arrived();
        }
        Ok(n)
    }

    /// The dead letters that came from `queue`, oldest first.
    pub async fn queue_dead_letters(
        &self,
        queue: &str,
        limit: i64,
    ) -> Result<Vec<Message>, PlatformError> {
        self.get_queue(queue).await?;
        Ok(self.inner.store.dead_letter_messages(queue, limit).await?)
    }

    /// The numbers of one queue.
    pub async fn queue_stats(&self, queue: &str) -> Result<QueueStats, PlatformError> {
        self.inner
            .store
            .queue_stats(Some(queue), now_ms())
            .await?
            .pop()
            .ok_or_else(|| self.queue_gone(queue))
    }

    /// The numbers of every queue, by name.
    pub async fn all_queue_stats(&self) -> Result<Vec<QueueStats>, PlatformError> {
        Ok(self.inner.store.queue_stats(None, now_ms()).await?)
    }
}

/// A receipt handle as the store makes them: 32 hex digits, `-`, a number.
fn check_handle(handle: &str) -> Result<(), PlatformError> {
    let ok = handle.split_once('-').is_some_and(|(nonce, seq)| {
        nonce.len() == 32
            && nonce.bytes().all(|b| b.is_ascii_hexdigit())
            && !seq.is_empty()
            && seq.bytes().all(|b| b.is_ascii_digit())
    });
    if ok {
        return Ok(());
    }
    Err(PlatformError::ReceiptHandleInvalid(format!(
        "the receipt handle {:?} is not valid: use the ReceiptHandle a ReceiveMessage returned",
        handle.chars().take(100).collect::<String>()
    )))
}

/// The stored form of a message, checked against the queue's limits.
fn message_row(q: &QueueRow, m: SendMessage, now: i64) -> Result<NewMessage, Invalid> {
    check_body(&m.body)?;
    check_attributes(&m.attributes)?;
    let size = message_size(&m.body, &m.attributes);
    if size as i64 > q.max_message_bytes {
        return Err(Invalid::new(
            "MessageBody",
            format!(
                "a message (body and attributes) of at most {} bytes, the queue's \
                 MaximumMessageSize",
                q.max_message_bytes
            ),
            format!("{size} bytes"),
        ));
    }
    let delay_ms = match m.delay_s {
        Some(d) => {
            check_range("DelaySeconds", d, 0, MAX_DELAY_S)?;
            d * 1000
        }
        None => q.delay_ms,
    };
    Ok(NewMessage {
        id: updraft_core::new_request_id(),
        md5_of_body: md5_of_body(&m.body),
        md5_of_attributes: md5_of_attributes(&m.attributes),
        attributes: attributes::to_json(&m.attributes),
        body: m.body,
        sent_ms: now,
        visible_ms: now + delay_ms,
        trace: m.trace,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_names_follow_sqs() {
        for ok in ["a", "jobs-1_x", &"q".repeat(80)] {
            assert!(check_queue_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a.b", "a b", &"q".repeat(81)] {
            let e = check_queue_name(bad).unwrap_err();
            assert!(e.expected.contains("1 to 80"), "{bad}: {e}");
        }
        let e = check_queue_name("jobs.fifo").unwrap_err();
        assert!(
            e.to_string().contains("FIFO queues are not supported"),
            "{e}"
        );
    }

    #[test]
    fn receipt_handles_are_checked_for_form() {
        assert!(check_handle(&format!("{}-12", "a".repeat(32))).is_ok());
        for bad in ["", "x", "abc-1", &format!("{}-", "a".repeat(32))] {
            assert!(
                matches!(
                    check_handle(bad),
                    Err(PlatformError::ReceiptHandleInvalid(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_message_over_the_limit_names_it() {
        let q = settings_row("q", &QueueSettings::default(), None);
        assert_eq!(q.max_message_bytes, 1_048_576);
        let big = SendMessage {
            body: "x".repeat(1_048_577),
            ..Default::default()
        };
        let e = message_row(&q, big, 0).unwrap_err();
        assert!(e.to_string().contains("at most 1048576 bytes"), "{e}");
        let fits = SendMessage {
            body: "x".repeat(1_048_576),
            delay_s: Some(3),
            ..Default::default()
        };
        let row = message_row(&q, fits, 10).unwrap();
        assert_eq!(row.visible_ms, 3_010);
        let late = SendMessage {
            body: "x".into(),
            delay_s: Some(901),
            ..Default::default()
        };
        assert_eq!(message_row(&q, late, 0).unwrap_err().field, "DelaySeconds");
    }
}
