//! What a function's credentials may do. A request signed with them (see
//! `updraft_auth::Minter`) is allowed only the actions its claims grant
//! (`permissions = ["lambda:InvokeFunction:other", …]` in the manifest, or
//! the role named in CreateFunction's `Role`), in IAM's words: the action
//! (`lambda:InvokeFunction`, `sqs:SendMessage`, `events:PutEvents`) on the
//! resource it names (a function, a queue, a bus). Everything else, above
//! all the control plane (creating or changing functions, the native API),
//! is `AccessDeniedException`. Admin credentials are not checked here.

use axum::http::HeaderMap;
use serde_json::Value;
use updraft_auth::{permits, Claims};
use updraft_platform::PlatformError;

/// Checks a function's request; `body` is the whole (verified) body.
pub(crate) fn check(
    claims: &Claims,
    method: &str,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), PlatformError> {
    let wanted = requested(method, path, query, headers, body);
    for (action, resource) in &wanted {
        if !permits(&claims.permissions, action, resource) {
            return Err(PlatformError::AccessDenied(format!(
                "User: function {} is not authorized to perform: {action} on resource: {resource} \
                 because its permissions do not allow it (grant it with permissions = \
                 [\"{action}:{resource}\"] in the function's manifest)",
                claims.function
            )));
        }
    }
    Ok(())
}

/// The (action, resource) pairs a request needs; a request no permission
/// can grant (the native API) needs an action no permission names.
fn requested(
    method: &str,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Vec<(String, String)> {
    if path == "/" {
        if let Some(target) = headers.get("x-amz-target").and_then(|v| v.to_str().ok()) {
            return target_actions(target, body);
        }
    }
    if let Some(op) = crate::lambda::fallback::operation(method, path, query) {
        let action = match op.name {
            "Invoke" | "InvokeWithResponseStream" => "InvokeFunction",
            other => other,
        };
        let resource = path_param(op.path, path, &["{FunctionName}", "{Resource}"])
            .map(|r| function_name(&r))
            .unwrap_or_else(|| "*".into());
        return vec![(format!("lambda:{action}"), resource)];
    }
    // The native API and anything else: the control plane.
    vec![("updraft:ControlPlane".into(), path.to_string())]
}

/// The value of the first of `names` in `pattern`, percent-decoded, taken
/// from the same segment of `path`.
fn path_param(pattern: &str, path: &str, names: &[&str]) -> Option<String> {
    let pat: Vec<&str> = pattern.trim_end_matches('/').split('/').collect();
    let got: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    let i = pat.iter().position(|p| names.contains(p))?;
    let raw = got.get(i)?;
    Some(
        percent_encoding::percent_decode_str(raw)
            .decode_utf8_lossy()
            .into_owned(),
    )
}

/// A function named by name, `name:qualifier` or ARN, as its bare name.
fn function_name(s: &str) -> String {
    let name = match s.strip_prefix("arn:") {
        // arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]
        Some(_) => s.split(':').nth(6).unwrap_or(s),
        None => s.split(':').next().unwrap_or(s),
    };
    name.to_string()
}

/// SQS and EventBridge operations on `POST /`: the action and what it acts on.
fn target_actions(target: &str, body: &[u8]) -> Vec<(String, String)> {
    let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let field = |k: &str| json.get(k).and_then(Value::as_str);
    if let Some(op) = target.strip_prefix("AmazonSQS.") {
        // IAM names a batch by its single form.
        let action = op.strip_suffix("Batch").unwrap_or(op);
        let queue = field("QueueUrl")
            .map(|u| u.trim_end_matches('/').rsplit('/').next().unwrap_or(u))
            .or_else(|| field("QueueName"))
            .unwrap_or("*");
        return vec![(format!("sqs:{action}"), queue.to_string())];
    }
    if let Some(op) = target.strip_prefix("AWSEvents.") {
        if op == "PutEvents" {
            let mut buses: Vec<(String, String)> = json
                .get("Entries")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|e| {
                    let bus = e
                        .get("EventBusName")
                        .and_then(Value::as_str)
                        .filter(|b| !b.is_empty())
                        .unwrap_or("default");
                    // An ARN names the bus after `event-bus/`.
                    let bus = bus.rsplit("event-bus/").next().unwrap_or(bus);
                    ("events:PutEvents".to_string(), bus.to_string())
                })
                .collect();
            buses.dedup();
            if buses.is_empty() {
                buses.push(("events:PutEvents".into(), "default".into()));
            }
            return buses;
        }
        let name = field("Name")
            .or_else(|| field("EventBusName"))
            .unwrap_or("*");
        return vec![(format!("events:{op}"), name.to_string())];
    }
    vec![("updraft:UnknownTarget".into(), target.to_string())]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(p: &[&str]) -> Claims {
        Claims {
            function: "caller".into(),
            permissions: p.iter().map(|s| s.to_string()).collect(),
            expires: u64::MAX,
            key_id: "ASIAX".into(),
        }
    }

    fn target(t: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-amz-target", t.parse().unwrap());
        h
    }

    #[test]
    fn lambda_operations_need_their_action_on_the_function() {
        let c = claims(&["lambda:InvokeFunction:other"]);
        let h = HeaderMap::new();
        let invoke = |name: &str| {
            check(
                &c,
                "POST",
                &format!("/2015-03-31/functions/{name}/invocations"),
                "",
                &h,
                b"{}",
            )
        };
        assert!(invoke("other").is_ok());
        assert!(invoke("other%3Aprod").is_ok());
        assert!(invoke("arn%3Aaws%3Alambda%3Aus-east-1%3A000000000000%3Afunction%3Aother").is_ok());
        let e = invoke("secret").unwrap_err();
        assert!(matches!(e, PlatformError::AccessDenied(_)));
        assert!(
            e.to_string()
                .contains("lambda:InvokeFunction on resource: secret"),
            "{e}"
        );
        for (m, p) in [
            ("POST", "/2015-03-31/functions"),
            ("PUT", "/2015-03-31/functions/other/code"),
            ("GET", "/2015-03-31/functions"),
            ("GET", "/api/v1/functions"),
            ("POST", "/api/v1/deploy"),
            ("GET", "/metrics"),
        ] {
            assert!(
                matches!(
                    check(&c, m, p, "", &h, b""),
                    Err(PlatformError::AccessDenied(_))
                ),
                "{m} {p}"
            );
        }
        let lister = claims(&["lambda:ListFunctions"]);
        assert!(check(&lister, "GET", "/2015-03-31/functions", "", &h, b"").is_ok());
    }

    #[test]
    fn sqs_and_eventbridge_need_their_action_on_the_queue_or_bus() {
        let c = claims(&["sqs:SendMessage:jobs", "events:PutEvents:orders"]);
        let send = |t: &str, body: &str| check(&c, "POST", "/", "", &target(t), body.as_bytes());
        assert!(send(
            "AmazonSQS.SendMessage",
            r#"{"QueueUrl":"http://h/000000000000/jobs"}"#
        )
        .is_ok());
        assert!(send(
            "AmazonSQS.SendMessageBatch",
            r#"{"QueueUrl":"http://h/000000000000/jobs"}"#
        )
        .is_ok());
        assert!(send(
            "AmazonSQS.SendMessage",
            r#"{"QueueUrl":"http://h/000000000000/other"}"#
        )
        .is_err());
        assert!(send(
            "AmazonSQS.ReceiveMessage",
            r#"{"QueueUrl":"http://h/000000000000/jobs"}"#
        )
        .is_err());
        assert!(send(
            "AmazonSQS.DeleteQueue",
            r#"{"QueueUrl":"http://h/000000000000/jobs"}"#
        )
        .is_err());
        assert!(send(
            "AWSEvents.PutEvents",
            r#"{"Entries":[{"EventBusName":"orders"}]}"#
        )
        .is_ok());
        assert!(send(
            "AWSEvents.PutEvents",
            r#"{"Entries":[{"EventBusName":"arn:aws:events:us-east-1:000000000000:event-bus/orders"}]}"#
        )
        .is_ok());
        // One entry for a bus not granted refuses the whole call.
        assert!(send(
            "AWSEvents.PutEvents",
            r#"{"Entries":[{"EventBusName":"orders"},{"Source":"s"}]}"#
        )
        .is_err());
        assert!(send("AWSEvents.CreateEventBus", r#"{"Name":"orders"}"#).is_err());
        assert!(send("AmazonSQS.SendMessage", "not json").is_err());
    }
}
