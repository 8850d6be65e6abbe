//! Lambda's SQS event: the `Records` batch a queue consumer sends, and the
//! `batchItemFailures` answer that retries only some of its messages.

use serde_json::{json, Map, Value};
use updraft_core::arn::ACCOUNT;
use updraft_store::Message;

/// A queue's ARN as SQS writes it.
pub fn queue_arn(region: &str, queue: &str) -> String {
    format!("arn:aws:sqs:{region}:{ACCOUNT}:{queue}")
}

/// One message as a record of Lambda's SQS event.
pub fn record(region: &str, m: &Message) -> Value {
    let mut attributes = Map::new();
    attributes.insert(
        "ApproximateReceiveCount".into(),
        m.receive_count.to_string().into(),
    );
    attributes.insert("SentTimestamp".into(), m.sent_ms.to_string().into());
    attributes.insert("SenderId".into(), ACCOUNT.into());
    attributes.insert(
        "ApproximateFirstReceiveTimestamp".into(),
        m.first_receive_ms.unwrap_or(m.sent_ms).to_string().into(),
    );
    let mut r = json!({
        "messageId": m.id,
        "receiptHandle": m.receipt_handle.as_deref().unwrap_or_default(),
        "body": m.body,
        "attributes": attributes,
        "messageAttributes": message_attributes(m.attributes.as_deref()),
        "md5OfBody": m.md5_of_body,
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn(region, &m.queue),
        "awsRegion": region,
    });
    if let Some(md5) = &m.md5_of_attributes {
        r["md5OfMessageAttributes"] = md5.as_str().into();
    }
    r
}

/// The stored attributes (SQS's API shape: `DataType`, `StringValue`,
/// `BinaryValue` in base64) in the event's shape (`dataType`,
/// `stringValue`, `binaryValue`, and the list fields Lambda always sends).
fn message_attributes(stored: Option<&str>) -> Value {
    let Some(Value::Object(attrs)) = stored.and_then(|s| serde_json::from_str(s).ok()) else {
        return json!({});
    };
    let out: Map<String, Value> = attrs
        .into_iter()
        .map(|(name, a)| {
            let mut v = json!({
                "stringListValues": [],
                "binaryListValues": [],
                "dataType": a.get("DataType").cloned().unwrap_or(Value::Null),
            });
            if let Some(s) = a.get("StringValue") {
                v["stringValue"] = s.clone();
            }
            if let Some(b) = a.get("BinaryValue") {
                v["binaryValue"] = b.clone();
            }
            (name, v)
        })
        .collect();
    Value::Object(out)
}

/// The event for a batch.
pub fn event(records: Vec<Value>) -> Vec<u8> {
    serde_json::to_vec(&json!({ "Records": records })).unwrap_or_default()
}

/// What a successful invocation's answer asks of its batch.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// Every message is done.
    AllDone,
    /// These message ids failed (retry them); the others are done.
    Failed(Vec<String>),
    /// The answer names a message not in the batch, or is malformed:
    /// Lambda then treats the whole batch as failed.
    Invalid,
}

/// Reads `{"batchItemFailures": [{"itemIdentifier": id}, …]}` as Lambda
/// does with `ReportBatchItemFailures`: an empty or absent list (or any
/// other answer) means all done; an item without a valid identifier, or one
/// naming a message outside the batch, fails the whole batch.
pub fn answer(body: &[u8], batch_ids: &[&str]) -> Answer {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return Answer::AllDone;
    };
    let Some(items) = v.get("batchItemFailures") else {
        return Answer::AllDone;
    };
    let items = match items {
        Value::Null => return Answer::AllDone,
        Value::Array(a) => a,
        _ => return Answer::Invalid,
    };
    let mut failed = Vec::with_capacity(items.len());
    for item in items {
        match item.get("itemIdentifier").and_then(Value::as_str) {
            Some(id) if !id.is_empty() && batch_ids.contains(&id) => failed.push(id.to_string()),
            _ => return Answer::Invalid,
        }
    }
    if failed.is_empty() {
        Answer::AllDone
    } else {
        Answer::Failed(failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg() -> Message {
        Message {
            id: "m-1".into(),
            queue: "jobs".into(),
            body: "hello".into(),
            md5_of_body: "5d41402abc4b2a76b9719d911017c592".into(),
            attributes: Some(
                r#"{"color":{"DataType":"String","StringValue":"red"},"blob":{"DataType":"Binary","BinaryValue":"AAE="}}"#
                    .into(),
            ),
            md5_of_attributes: Some("abc".into()),
            sent_ms: 1000,
            visible_ms: 2000,
            receive_count: 2,
            first_receive_ms: Some(1500),
            receipt_handle: Some("rh".into()),
            source_queue: None,
            trace: None,
        }
    }

    #[test]
    fn a_record_is_lambdas() {
        let r = record("eu-west-1", &msg());
        assert_eq!(r["messageId"], "m-1");
        assert_eq!(r["receiptHandle"], "rh");
        assert_eq!(r["body"], "hello");
        assert_eq!(r["attributes"]["ApproximateReceiveCount"], "2");
        assert_eq!(r["attributes"]["SentTimestamp"], "1000");
        assert_eq!(r["attributes"]["ApproximateFirstReceiveTimestamp"], "1500");
        assert_eq!(r["md5OfBody"], "5d41402abc4b2a76b9719d911017c592");
        assert_eq!(r["md5OfMessageAttributes"], "abc");
        assert_eq!(r["eventSource"], "aws:sqs");
        assert_eq!(
            r["eventSourceARN"],
            "arn:aws:sqs:eu-west-1:000000000000:jobs"
        );
        assert_eq!(r["awsRegion"], "eu-west-1");
        assert_eq!(
            r["messageAttributes"]["color"],
            json!({"stringValue": "red", "stringListValues": [], "binaryListValues": [], "dataType": "String"})
        );
        assert_eq!(r["messageAttributes"]["blob"]["binaryValue"], "AAE=");
        let mut plain = msg();
        plain.attributes = None;
        plain.md5_of_attributes = None;
        let r = record("eu-west-1", &plain);
        assert_eq!(r["messageAttributes"], json!({}));
        assert!(r.get("md5OfMessageAttributes").is_none());
    }

    #[test]
    fn batch_item_failures_as_lambda_reads_them() {
        let ids = ["a", "b", "c"];
        let a = |s: &str| answer(s.as_bytes(), &ids);
        assert_eq!(a(r#"{"batchItemFailures": []}"#), Answer::AllDone);
        assert_eq!(a(r#"{"batchItemFailures": null}"#), Answer::AllDone);
        assert_eq!(a(r#"{"ok": true}"#), Answer::AllDone);
        assert_eq!(a("null"), Answer::AllDone);
        assert_eq!(a("not json"), Answer::AllDone);
        assert_eq!(
            a(r#"{"batchItemFailures": [{"itemIdentifier": "b"}, {"itemIdentifier": "c"}]}"#),
            Answer::Failed(vec!["b".into(), "c".into()])
        );
        assert_eq!(
            a(r#"{"batchItemFailures": [{"itemIdentifier": "zzz"}]}"#),
            Answer::Invalid
        );
        assert_eq!(
            a(r#"{"batchItemFailures": [{"itemIdentifier": ""}]}"#),
            Answer::Invalid
        );
        assert_eq!(a(r#"{"batchItemFailures": [{}]}"#), Answer::Invalid);
        assert_eq!(a(r#"{"batchItemFailures": "b"}"#), Answer::Invalid);
    }
}
