//! Amazon SQS's JSON protocol (`POST /`, `X-Amz-Target: AmazonSQS.<Op>`,
//! `application/x-amz-json-1.0`), so boto3, the AWS CLI and the other SDKs
//! send and receive through Updraft's durable queues with an endpoint URL.
//! Requests are parsed here into calls on [`Platform`] (`queues.rs` there);
//! errors leave through [`SqsError`], SQS's shape. Queue URLs read
//! `http://HOST/000000000000/NAME`; any URL whose last segment is the name
//! is accepted.

mod messages;

use crate::error::sqs::{SqsCode, SqsError};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use updraft_core::arn::ACCOUNT as ACCOUNT_ID;
use updraft_platform::queues::{QueueSettings, MAX_RECEIVE_COUNT};
use updraft_platform::Platform;
use updraft_store::{QueueRow, Redrive};

type SqsResult = Result<Value, SqsError>;

/// The operations Updraft implements; any other `AmazonSQS.*` answers
/// UnsupportedOperation naming it.
pub async fn handle(p: &Platform, op: &str, headers: &HeaderMap, body: &[u8]) -> Response {
    let result = match op {
        "CreateQueue" => create_queue(p, headers, body).await,
        "GetQueueUrl" => get_queue_url(p, headers, body).await,
        "ListQueues" => list_queues(p, headers, body).await,
        "GetQueueAttributes" => get_queue_attributes(p, body).await,
        "PurgeQueue" => purge_queue(p, body).await,
        "DeleteQueue" => delete_queue(p, body).await,
        "SendMessage" => messages::send(p, headers, body).await,
        "SendMessageBatch" => messages::send_batch(p, headers, body).await,
        "ReceiveMessage" => messages::receive(p, body).await,
        "DeleteMessage" => messages::delete(p, body).await,
        "DeleteMessageBatch" => messages::delete_batch(p, body).await,
        "ChangeMessageVisibility" => messages::change_visibility(p, body).await,
        other => Err(SqsError::unsupported(other)),
    };
    match result {
        Ok(v) => {
            let mut resp = axum::Json(v).into_response();
            resp.headers_mut().insert(
                "content-type",
                HeaderValue::from_static("application/x-amz-json-1.0"),
            );
            resp
        }
        Err(e) => e.into_response(),
    }
}

/// The request body as `T`; a body that is not is InvalidParameterValue.
fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, SqsError> {
    let body = if body.is_empty() { b"{}" } else { body };
    serde_json::from_slice(body)
        .map_err(|e| SqsError::invalid(format!("the request body is not what was expected: {e}")))
}

/// A required string parameter.
fn required<'a>(v: &'a Option<String>, name: &str) -> Result<&'a str, SqsError> {
    v.as_deref()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| SqsError::missing(name))
}

/// The queue a `QueueUrl` names: its last path segment.
pub(crate) fn queue_name(url: &Option<String>) -> Result<String, SqsError> {
    let url = required(url, "QueueUrl")?;
    let url_path = url.split(['?', '#']).next().unwrap_or("");
    // Past `scheme://host` when there is one.
    let path = match url_path.split_once("://") {
        Some((_, rest)) => rest.split_once('/').map_or("", |(_, p)| p),
        None => url_path,
    };
    match path.trim_end_matches('/').rsplit('/').next() {
        Some(name) if !name.is_empty() && !name.contains(':') => Ok(name.to_string()),
        _ => Err(SqsError::new(
            SqsCode::QueueDoesNotExist,
            format!("the queue URL {url:?} names no queue: expected http://HOST/ACCOUNT/NAME"),
        )),
    }
}

/// `http://HOST/000000000000/NAME`, HOST as the request named it.
fn queue_url(headers: &HeaderMap, name: &str) -> String {
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    format!("http://{host}/{ACCOUNT_ID}/{name}")
}

fn queue_arn(p: &Platform, name: &str) -> String {
    format!("arn:aws:sqs:{}:{ACCOUNT_ID}:{name}", p.region())
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateQueueInput {
    queue_name: Option<String>,
    #[serde(default)]
    attributes: BTreeMap<String, String>,
    #[serde(default, rename = "tags")]
    _tags: BTreeMap<String, String>,
}

async fn create_queue(p: &Platform, headers: &HeaderMap, body: &[u8]) -> SqsResult {
    let input: CreateQueueInput = parse(body)?;
    let name = required(&input.queue_name, "QueueName")?;
    let settings = queue_settings(&input.attributes)?;
    p.create_queue(name, &settings).await?;
    Ok(json!({ "QueueUrl": queue_url(headers, name) }))
}

/// A whole number of seconds (or bytes) in an attribute.
fn int_attribute(name: &str, value: &str) -> Result<i64, SqsError> {
    value.trim().parse().map_err(|_| {
        SqsError::new(
            SqsCode::InvalidAttributeValue,
            format!(
                "Invalid value for the parameter {name}: expected a whole number, got {value:?}"
            ),
        )
    })
}

/// CreateQueue's `Attributes`: the ones Updraft keeps; the other names
/// SQS knows are refused by name (FifoQueue=false aside).
fn queue_settings(attrs: &BTreeMap<String, String>) -> Result<QueueSettings, SqsError> {
    let mut s = QueueSettings::default();
    for (name, value) in attrs {
        match name.as_str() {
            "VisibilityTimeout" => s.visibility_timeout_s = Some(int_attribute(name, value)?),
            "DelaySeconds" => s.delay_s = Some(int_attribute(name, value)?),
            "MaximumMessageSize" => s.max_message_bytes = Some(int_attribute(name, value)?),
            "RedrivePolicy" => s.redrive = Some(redrive_policy(value)?),
            "FifoQueue" if value == "false" => {}
            "FifoQueue" => {
                return Err(SqsError::new(
                    SqsCode::InvalidAttributeValue,
                    "FIFO queues are not supported: Updraft's queues are standard queues",
                ))
            }
            other => {
                return Err(SqsError::new(
                    SqsCode::InvalidAttributeName,
                    format!(
                        "Unknown or unsupported queue attribute {other}: Updraft supports \
                         VisibilityTimeout, DelaySeconds, MaximumMessageSize and RedrivePolicy"
                    ),
                ))
            }
        }
    }
    Ok(s)
}

/// `{"deadLetterTargetArn": "arn:aws:sqs:R:A:NAME", "maxReceiveCount": "3"}`;
/// an empty string removes the policy.
fn redrive_policy(value: &str) -> Result<Option<Redrive>, SqsError> {
    if value.trim().is_empty() {
        return Ok(None);
    }
    let bad = |why: &str| {
        SqsError::new(
            SqsCode::InvalidAttributeValue,
            format!(
                "Invalid value for the parameter RedrivePolicy: {why} (expected \
                 {{\"deadLetterTargetArn\": \"arn:aws:sqs:REGION:ACCOUNT:NAME\", \
                 \"maxReceiveCount\": 1 to {MAX_RECEIVE_COUNT}}})"
            ),
        )
    };
    let v: Value = serde_json::from_str(value).map_err(|_| bad("not JSON"))?;
    let arn = v["deadLetterTargetArn"]
        .as_str()
        .ok_or_else(|| bad("no deadLetterTargetArn"))?;
    let parts: Vec<&str> = arn.split(':').collect();
    let dlq = match parts[..] {
        ["arn", _, "sqs", _, _, name] if !name.is_empty() => name,
        _ => return Err(bad("deadLetterTargetArn is not an SQS queue ARN")),
    };
    let max = match &v["maxReceiveCount"] {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .ok_or_else(|| bad("maxReceiveCount is not a whole number"))?;
    Ok(Some(Redrive {
        dead_letter_queue: dlq.to_string(),
        max_receive_count: max,
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GetQueueUrlInput {
    queue_name: Option<String>,
    #[serde(default, rename = "QueueOwnerAWSAccountId")]
    _owner: Option<String>,
}

async fn get_queue_url(p: &Platform, headers: &HeaderMap, body: &[u8]) -> SqsResult {
    let input: GetQueueUrlInput = parse(body)?;
    let name = required(&input.queue_name, "QueueName")?;
    p.get_queue(name).await?;
    Ok(json!({ "QueueUrl": queue_url(headers, name) }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListQueuesInput {
    #[serde(default)]
    queue_name_prefix: String,
    next_token: Option<String>,
    max_results: Option<i64>,
}

/// All queues (up to 1,000, as SQS), or pages of MaxResults with a NextToken.
async fn list_queues(p: &Platform, headers: &HeaderMap, body: &[u8]) -> SqsResult {
    let input: ListQueuesInput = parse(body)?;
    let limit = match input.max_results {
        Some(n) if (1..=1000).contains(&n) => n,
        Some(n) => {
            return Err(SqsError::invalid(format!(
                "MaxResults: expected 1 to 1000, got {n}"
            )))
        }
        None => 1000,
    };
    let after = match &input.next_token {
        Some(t) => Some(
            String::from_utf8(hex::decode(t).map_err(|_| SqsError::invalid("Invalid NextToken"))?)
                .map_err(|_| SqsError::invalid("Invalid NextToken"))?,
        ),
        None => None,
    };
    let mut queues = p
        .list_queues(&input.queue_name_prefix, after.as_deref(), limit + 1)
        .await?;
    let more = queues.len() as i64 > limit;
    queues.truncate(limit as usize);
    let urls: Vec<String> = queues.iter().map(|q| queue_url(headers, &q.name)).collect();
    let mut out = json!({ "QueueUrls": urls });
    if more && input.max_results.is_some() {
        if let Some(last) = queues.last() {
            out["NextToken"] = json!(hex::encode(&last.name));
        }
    }
    Ok(out)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct QueueUrlInput {
    queue_url: Option<String>,
    #[serde(default)]
    attribute_names: Vec<String>,
}

/// The queue attributes SQS defines; those Updraft has no value for are
/// left out of the answer.
const KNOWN_ATTRIBUTES: &[&str] = &[
    "All",
    "Policy",
    "VisibilityTimeout",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "CreatedTimestamp",
    "LastModifiedTimestamp",
    "QueueArn",
    "ApproximateNumberOfMessagesDelayed",
    "DelaySeconds",
    "ReceiveMessageWaitTimeSeconds",
    "RedrivePolicy",
    "FifoQueue",
    "ContentBasedDeduplication",
    "KmsMasterKeyId",
    "KmsDataKeyReusePeriodSeconds",
    "DeduplicationScope",
    "FifoThroughputLimit",
    "RedriveAllowPolicy",
    "SqsManagedSseEnabled",
];

async fn get_queue_attributes(p: &Platform, body: &[u8]) -> SqsResult {
    let input: QueueUrlInput = parse(body)?;
    let name = queue_name(&input.queue_url)?;
    if let Some(bad) = input
        .attribute_names
        .iter()
        .find(|n| !KNOWN_ATTRIBUTES.contains(&n.as_str()))
    {
        return Err(SqsError::new(
            SqsCode::InvalidAttributeName,
            format!("Unknown Attribute {bad}."),
        ));
    }
    let q = p.get_queue(&name).await?;
    let stats = p.queue_stats(&name).await?;
    let all = queue_attributes(p, &q, &stats);
    let wanted = |n: &str| input.attribute_names.iter().any(|a| a == "All" || a == n);
    let attrs: BTreeMap<&str, String> = all.into_iter().filter(|(n, _)| wanted(n)).collect();
    if attrs.is_empty() {
        return Ok(json!({}));
    }
    Ok(json!({ "Attributes": attrs }))
}

fn queue_attributes(
    p: &Platform,
    q: &QueueRow,
    s: &updraft_store::QueueStats,
) -> Vec<(&'static str, String)> {
    let mut out = vec![
        ("QueueArn", queue_arn(p, &q.name)),
        ("ApproximateNumberOfMessages", s.visible.to_string()),
        (
            "ApproximateNumberOfMessagesNotVisible",
            s.in_flight.to_string(),
        ),
        ("ApproximateNumberOfMessagesDelayed", s.delayed.to_string()),
        ("CreatedTimestamp", (q.created_ms / 1000).to_string()),
        ("LastModifiedTimestamp", (q.created_ms / 1000).to_string()),
        (
            "VisibilityTimeout",
            (q.visibility_timeout_ms / 1000).to_string(),
        ),
        ("DelaySeconds", (q.delay_ms / 1000).to_string()),
        ("MaximumMessageSize", q.max_message_bytes.to_string()),
        ("ReceiveMessageWaitTimeSeconds", "0".into()),
        ("SqsManagedSseEnabled", "false".into()),
    ];
    if let Some(r) = &q.redrive {
        let policy = json!({
            "deadLetterTargetArn": queue_arn(p, &r.dead_letter_queue),
            "maxReceiveCount": r.max_receive_count,
        });
        out.push(("RedrivePolicy", policy.to_string()));
    }
    out
}

async fn purge_queue(p: &Platform, body: &[u8]) -> SqsResult {
    let input: QueueUrlInput = parse(body)?;
    p.purge_queue(&queue_name(&input.queue_url)?).await?;
    Ok(json!({}))
}

async fn delete_queue(p: &Platform, body: &[u8]) -> SqsResult {
    let input: QueueUrlInput = parse(body)?;
    p.delete_queue(&queue_name(&input.queue_url)?).await?;
    Ok(json!({}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_urls_name_their_last_segment() {
        let name = |u: &str| queue_name(&Some(u.to_string())).map_err(|e| e.code);
        assert_eq!(name("http://h:1/000000000000/jobs").unwrap(), "jobs");
        assert_eq!(
            name("https://sqs.us-east-1.amazonaws.com/123/jobs/").unwrap(),
            "jobs"
        );
        assert_eq!(name("jobs").unwrap(), "jobs");
        assert_eq!(name("").unwrap_err(), SqsCode::MissingParameter);
        assert_eq!(name("http://h/").unwrap_err(), SqsCode::QueueDoesNotExist);
    }

    #[test]
    fn redrive_policies_parse_as_sqs_writes_them() {
        let r = redrive_policy(
            r#"{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:000000000000:dlq","maxReceiveCount":"3"}"#,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            (r.dead_letter_queue.as_str(), r.max_receive_count),
            ("dlq", 3)
        );
        let r =
            redrive_policy(r#"{"deadLetterTargetArn":"arn:aws:sqs:r:1:d","maxReceiveCount":5}"#)
                .unwrap()
                .unwrap();
        assert_eq!(r.max_receive_count, 5);
        assert_eq!(redrive_policy("").unwrap(), None);
        for bad in [
            "x",
            r#"{"deadLetterTargetArn":"arn:aws:sns:r:1:d","maxReceiveCount":1}"#,
        ] {
            assert_eq!(
                redrive_policy(bad).unwrap_err().code,
                SqsCode::InvalidAttributeValue
            );
        }
    }

    #[test]
    fn unknown_queue_attributes_are_refused_by_name() {
        let attrs: BTreeMap<String, String> = [("Policy".to_string(), "{}".to_string())].into();
        let e = queue_settings(&attrs).unwrap_err();
        assert_eq!(e.code, SqsCode::InvalidAttributeName);
        assert!(e.message.contains("Policy"), "{}", e.message);
        let attrs: BTreeMap<String, String> =
            [("FifoQueue".to_string(), "true".to_string())].into();
        assert!(queue_settings(&attrs)
            .unwrap_err()
            .message
            .contains("FIFO queues are not supported"));
    }
}
