//! SQS's message operations: SendMessage(Batch), ReceiveMessage,
//! DeleteMessage(Batch), ChangeMessageVisibility, with SQS's batch rules
//! (1–10 entries, distinct ids of up to 80 of `[A-Za-z0-9_-]`, 1 MiB in all)
//! and per-entry results.

use super::{parse, queue_name, required, SqsResult};
use crate::error::sqs::{SqsCode, SqsError};
use axum::http::HeaderMap;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::HashSet;
use updraft_platform::queues::attributes::{self, md5_of_attributes};
use updraft_platform::queues::{MessageAttributes, Receive, SendMessage};
use updraft_platform::{Platform, PlatformError};
use updraft_store::MAX_MESSAGE_BYTES;

/// At most this many entries a batch.
const MAX_BATCH: usize = 10;

/// One message of a SendMessage or a SendMessageBatch entry.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct MessageFields {
    message_body: Option<String>,
    delay_seconds: Option<i64>,
    #[serde(default)]
    message_attributes: MessageAttributes,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SendInput {
    queue_url: Option<String>,
    #[serde(flatten)]
    message: MessageFields,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SendEntry {
    id: Option<String>,
    #[serde(flatten)]
    message: MessageFields,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SendBatchInput {
    queue_url: Option<String>,
    #[serde(default)]
    entries: Vec<SendEntry>,
}

fn sent_json(s: &updraft_platform::queues::Sent) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("MessageId".into(), json!(s.message_id));
    out.insert("MD5OfMessageBody".into(), json!(s.md5_of_body));
    if let Some(md5) = &s.md5_of_attributes {
        out.insert("MD5OfMessageAttributes".into(), json!(md5));
    }
    out
}

/// The sender's trace (`traceparent`, else `X-Amzn-Trace-Id`), which the
/// message carries to its consumer's invocation.
fn sender_trace(headers: &HeaderMap) -> Option<String> {
    updraft_platform::traces::TraceContext::from_headers(headers)?.traceparent()
}

pub(super) async fn send(p: &Platform, headers: &HeaderMap, body: &[u8]) -> SqsResult {
    let input: SendInput = parse(body)?;
    let queue = queue_name(&input.queue_url)?;
    let m = input.message;
    let body = required(&m.message_body, "MessageBody")?;
    let sent = p
        .send_message(
            &queue,
            SendMessage {
                body: body.to_string(),
                attributes: m.message_attributes,
                delay_s: m.delay_seconds,
                trace: sender_trace(headers),
            },
        )
        .await?;
    Ok(Value::Object(sent_json(&sent)))
}

/// SQS's rules for a batch's entries and their ids.
fn check_batch<'a>(ids: impl ExactSizeIterator<Item = &'a Option<String>>) -> Result<(), SqsError> {
    if ids.len() == 0 {
        return Err(SqsError::new(
            SqsCode::EmptyBatchRequest,
            "There should be at least one entry in the request.",
        ));
    }
    if ids.len() > MAX_BATCH {
        return Err(SqsError::new(
            SqsCode::TooManyEntriesInBatchRequest,
            format!(
                "Maximum number of entries per request are {MAX_BATCH}. You have sent {}.",
                ids.len()
            ),
        ));
    }
    let mut seen = HashSet::new();
    for id in ids {
        let id = id.as_deref().unwrap_or("");
        let ok = (1..=80).contains(&id.len())
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !ok {
            return Err(SqsError::new(
                SqsCode::InvalidBatchEntryId,
                format!(
                    "A batch entry id can only contain alphanumeric characters, hyphens and \
                     underscores. It can be at most 80 letters long: got {id:?}"
                ),
            ));
        }
        if !seen.insert(id) {
            return Err(SqsError::new(
                SqsCode::BatchEntryIdsNotDistinct,
                format!("Id {id} repeated."),
            ));
        }
    }
    Ok(())
}

fn failed(id: &str, e: SqsError) -> Value {
    json!({
        "Id": id,
        "SenderFault": e.code.sender_fault(),
        "Code": e.code.query_code(),
        "Message": e.message,
    })
}

pub(super) async fn send_batch(p: &Platform, headers: &HeaderMap, body: &[u8]) -> SqsResult {
    let input: SendBatchInput = parse(body)?;
    let queue = queue_name(&input.queue_url)?;
    check_batch(input.entries.iter().map(|e| &e.id))?;
    let total: usize = input
        .entries
        .iter()
        .map(|e| {
            attributes::message_size(
                e.message.message_body.as_deref().unwrap_or(""),
                &e.message.message_attributes,
            )
        })
        .sum();
    if total as i64 > MAX_MESSAGE_BYTES {
        return Err(SqsError::new(
            SqsCode::BatchRequestTooLong,
            format!(
                "Batch requests cannot be longer than {MAX_MESSAGE_BYTES} bytes. You have sent \
                 {total} bytes."
            ),
        ));
    }
    let mut ids = Vec::new();
    let mut msgs = Vec::new();
    let mut failures = Vec::new();
    for e in input.entries {
        let id = e.id.unwrap_or_default();
        let m = e.message;
        match m.message_body.filter(|b| !b.is_empty()) {
            Some(body) => {
                ids.push(id);
                msgs.push(SendMessage {
                    body,
                    attributes: m.message_attributes,
                    delay_s: m.delay_seconds,
                    trace: sender_trace(headers),
                });
            }
            None => failures.push(failed(&id, SqsError::missing("MessageBody"))),
        }
    }
    let mut successes = Vec::new();
    if !msgs.is_empty() {
        for (id, result) in ids.iter().zip(p.send_messages(&queue, msgs).await?) {
            match result {
                Ok(sent) => {
                    let mut entry = sent_json(&sent);
                    entry.insert("Id".into(), json!(id));
                    successes.push(Value::Object(entry));
                }
                Err(e) => failures.push(failed(id, e.into())),
            }
        }
    }
    Ok(json!({ "Successful": successes, "Failed": failures }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ReceiveInput {
    queue_url: Option<String>,
    #[serde(default)]
    attribute_names: Vec<String>,
    #[serde(default)]
    message_system_attribute_names: Vec<String>,
    #[serde(default)]
    message_attribute_names: Vec<String>,
    max_number_of_messages: Option<i64>,
    visibility_timeout: Option<i64>,
    wait_time_seconds: Option<i64>,
    #[serde(default, rename = "ReceiveRequestAttemptId")]
    _attempt: Option<String>,
}

/// The system attributes a receive may ask for; the ones Updraft has a
/// value for are answered.
const SYSTEM_ATTRIBUTES: &[&str] = &[
    "All",
    "SenderId",
    "SentTimestamp",
    "ApproximateReceiveCount",
    "ApproximateFirstReceiveTimestamp",
    "AWSTraceHeader",
    "SequenceNumber",
    "MessageDeduplicationId",
    "MessageGroupId",
    "DeadLetterQueueSourceArn",
];

/// Whether `name` is one of the message attributes asked for: `All`, `.*`,
/// a name, or a `prefix.*`.
fn attribute_wanted(wanted: &[String], name: &str) -> bool {
    wanted.iter().any(|w| {
        w == "All"
            || w == ".*"
            || w == name
            || w.strip_suffix(".*")
                .is_some_and(|prefix| name.starts_with(&format!("{prefix}.")))
    })
}

pub(super) async fn receive(p: &Platform, body: &[u8]) -> SqsResult {
    let input: ReceiveInput = parse(body)?;
    let queue = queue_name(&input.queue_url)?;
    let system: Vec<&String> = input
        .attribute_names
        .iter()
        .chain(&input.message_system_attribute_names)
        .collect();
    if let Some(bad) = system
        .iter()
        .find(|n| !SYSTEM_ATTRIBUTES.contains(&n.as_str()))
    {
        return Err(SqsError::new(
            SqsCode::InvalidAttributeName,
            format!("Unknown Attribute {bad}."),
        ));
    }
    let want = |n: &str| system.iter().any(|a| *a == "All" || *a == n);
    let msgs = p
        .receive_messages(
            &queue,
            Receive {
                max: input.max_number_of_messages.unwrap_or(1),
                visibility_s: input.visibility_timeout,
                wait_s: input.wait_time_seconds.unwrap_or(0),
            },
        )
        .await?;
    if msgs.is_empty() {
        return Ok(json!({}));
    }
    let sender = p.credentials().access_key_id.clone();
    let out: Vec<Value> = msgs
        .into_iter()
        .map(|m| {
            let mut system = Map::new();
            let mut put = |name: &str, v: String| {
                if want(name) {
                    system.insert(name.to_string(), json!(v));
                }
            };
            put("SenderId", sender.clone());
            put("SentTimestamp", m.sent_ms.to_string());
            put("ApproximateReceiveCount", m.receive_count.to_string());
            if let Some(first) = m.first_receive_ms {
                put("ApproximateFirstReceiveTimestamp", first.to_string());
            }
            let attrs: MessageAttributes = attributes::from_json(m.attributes.as_deref())
                .into_iter()
                .filter(|(n, _)| attribute_wanted(&input.message_attribute_names, n))
                .collect();
            let mut v = json!({
                "MessageId": m.id,
                "ReceiptHandle": m.receipt_handle,
                "MD5OfBody": m.md5_of_body,
                "Body": m.body,
            });
            if !system.is_empty() {
                v["Attributes"] = Value::Object(system);
            }
            if let Some(md5) = md5_of_attributes(&attrs) {
                v["MD5OfMessageAttributes"] = json!(md5);
                v["MessageAttributes"] = json!(attrs);
            }
            v
        })
        .collect();
    Ok(json!({ "Messages": out }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HandleInput {
    queue_url: Option<String>,
    receipt_handle: Option<String>,
    visibility_timeout: Option<i64>,
}

pub(super) async fn delete(p: &Platform, body: &[u8]) -> SqsResult {
    let input: HandleInput = parse(body)?;
    let queue = queue_name(&input.queue_url)?;
    let handle = required(&input.receipt_handle, "ReceiptHandle")?;
    let mut results = p.delete_messages(&queue, &[handle]).await?;
    results
        .pop()
        .unwrap_or_else(|| Err(PlatformError::Internal("a delete without a result".into())))?;
    Ok(json!({}))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DeleteEntry {
    id: Option<String>,
    receipt_handle: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DeleteBatchInput {
    queue_url: Option<String>,
    #[serde(default)]
    entries: Vec<DeleteEntry>,
}

pub(super) async fn delete_batch(p: &Platform, body: &[u8]) -> SqsResult {
    let input: DeleteBatchInput = parse(body)?;
    let queue = queue_name(&input.queue_url)?;
    check_batch(input.entries.iter().map(|e| &e.id))?;
    let handles: Vec<&str> = input
        .entries
        .iter()
        .map(|e| e.receipt_handle.as_deref().unwrap_or(""))
        .collect();
    let results = p.delete_messages(&queue, &handles).await?;
    let (mut successes, mut failures) = (Vec::new(), Vec::new());
    for (e, result) in input.entries.iter().zip(results) {
        let id = e.id.as_deref().unwrap_or("");
        match result {
            Ok(()) => successes.push(json!({ "Id": id })),
            Err(err) => failures.push(failed(id, err.into())),
        }
    }
    Ok(json!({ "Successful": successes, "Failed": failures }))
}

pub(super) async fn change_visibility(p: &Platform, body: &[u8]) -> SqsResult {
    let input: HandleInput = parse(body)?;
    let queue = queue_name(&input.queue_url)?;
    let handle = required(&input.receipt_handle, "ReceiptHandle")?;
    let timeout = input
        .visibility_timeout
        .ok_or_else(|| SqsError::missing("VisibilityTimeout"))?;
    p.change_visibility(&queue, handle, timeout).await?;
    Ok(json!({}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_rules() {
        let ids = |v: &[&str]| v.iter().map(|s| Some(s.to_string())).collect::<Vec<_>>();
        let code = |v: &[&str]| check_batch(ids(v).iter()).map_err(|e| e.code);
        assert_eq!(code(&[]), Err(SqsCode::EmptyBatchRequest));
        assert_eq!(code(&["a"; 11]), Err(SqsCode::TooManyEntriesInBatchRequest));
        assert_eq!(code(&["a", "a"]), Err(SqsCode::BatchEntryIdsNotDistinct));
        assert_eq!(code(&["a b"]), Err(SqsCode::InvalidBatchEntryId));
        assert_eq!(code(&["a", "b-1_c"]), Ok(()));
    }

    #[test]
    fn message_attribute_names_select() {
        let w = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(attribute_wanted(&w(&["All"]), "x"));
        assert!(attribute_wanted(&w(&[".*"]), "x"));
        assert!(attribute_wanted(&w(&["trace.*"]), "trace.id"));
        assert!(!attribute_wanted(&w(&["trace.*"]), "tracex"));
        assert!(attribute_wanted(&w(&["x"]), "x"));
        assert!(!attribute_wanted(&w(&[]), "x"));
    }
}
