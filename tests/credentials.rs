//! Function credentials (issue 13): each instance gets credentials minted for
//! its function and the endpoints of Updraft's AWS APIs, so the AWS SDK in a
//! handler calls Updraft with no code change; they allow only what the
//! function was granted, and they expire.

mod common;

use common::aws::{aws_env, require_boto3, run_suite, server_with_keys_and_flags, SECRET_KEY};
use common::{fixture, Server};
use serde_json::Value;
use std::process::Command;

/// A server with the test keys and the AWS SDK scripts/setup installs for
/// functions (UPDRAFT_TEST_SDK_DIR).
fn start(name: &str, flags: &[&str]) -> Server {
    let sdk = std::env::var("UPDRAFT_TEST_SDK_DIR").expect(
        "UPDRAFT_TEST_SDK_DIR: the AWS SDK for functions (scripts/setup installs it in \
         target/ci/sdk and names it in target/ci/env)",
    );
    server_with_keys_and_flags(name, &[("UPDRAFT_SDK_DIR", &sdk)], flags)
}

fn call(s: &Server, payload: &str) -> Value {
    s.invoke_json("caller", payload)
}

#[test]
fn a_function_calls_the_lambda_api_with_its_own_credentials_and_only_as_granted() {
    require_boto3();
    let s = start("creds", &[]);
    s.deploy(&fixture("credentials"));

    // The boto3 client made at import time invokes the granted function.
    let got = call(&s, r#"{"op": "invoke", "target": "callee"}"#);
    assert_eq!(got["ok"]["called"], "callee", "{got}");
    assert_eq!(got["ok"]["event"]["from"], "caller", "{got}");

    // Everything else is AccessDeniedException: the control plane, another
    // function, even reading the function list.
    for (payload, what) in [
        (r#"{"op": "create"}"#, "lambda:CreateFunction"),
        (
            r#"{"op": "invoke", "target": "private"}"#,
            "lambda:InvokeFunction on resource: private",
        ),
        (r#"{"op": "list"}"#, "lambda:ListFunctions"),
    ] {
        let got = call(&s, payload);
        assert_eq!(got["error"], "AccessDeniedException", "{payload}: {got}");
        assert_eq!(got["status"], 403, "{payload}: {got}");
        let msg = got["message"].as_str().unwrap_or_default();
        assert!(msg.contains(what), "{payload}: {msg}");
    }
    assert!(
        !s.ok(&["ls"]).contains("made-by-a-function"),
        "a refused CreateFunction created nothing"
    );

    // What the instance was given: temporary credentials and endpoints, and
    // never the server's admin key.
    let env = call(&s, r#"{"op": "env"}"#);
    let given = &env["ok"];
    assert!(
        given["AWS_ACCESS_KEY_ID"]
            .as_str()
            .unwrap()
            .starts_with("ASIA"),
        "{given}"
    );
    assert!(
        given["AWS_SESSION_TOKEN"]
            .as_str()
            .is_some_and(|t| t.len() > 40),
        "{given}"
    );
    for service in ["LAMBDA", "SQS", "EVENTBRIDGE"] {
        let url = given[format!("AWS_ENDPOINT_URL_{service}")]
            .as_str()
            .unwrap();
        assert!(url.starts_with("http://127.0.0.1:"), "{service}: {url}");
    }
    let all = env["all"].to_string();
    assert!(
        !all.contains(SECRET_KEY),
        "the admin secret is in a function's environment"
    );
    assert!(
        !all.contains(common::aws::ACCESS_KEY),
        "the admin key id is in a function's environment"
    );

    // Used from outside, a tampered token is refused.
    let mut cmd = Command::new("python3");
    cmd.arg("tests/credentials/outside.py").arg("forged");
    aws_env(&mut cmd, &s);
    cmd.env("CREDS", given.to_string());
    run_suite("forged function credentials", cmd);
}

#[test]
fn function_credentials_expire() {
    require_boto3();
    let s = start("creds-ttl", &["--function-credentials-ttl", "3s"]);
    s.deploy(&fixture("credentials"));
    let env = call(&s, r#"{"op": "env"}"#);
    let mut cmd = Command::new("python3");
    cmd.arg("tests/credentials/outside.py").arg("until-expired");
    aws_env(&mut cmd, &s);
    cmd.env("CREDS", env["ok"].to_string());
    run_suite("function credentials until they expire", cmd);
    // A new instance gets new credentials that work.
    let got = call(&s, r#"{"op": "invoke", "target": "callee"}"#);
    assert_eq!(got["ok"]["called"], "callee", "{got}");
}

#[test]
fn create_functions_role_names_a_role_the_server_defines() {
    require_boto3();
    let s = start(
        "creds-role",
        &["--role", "invoker=lambda:InvokeFunction:callee"],
    );
    s.deploy(&fixture("credentials"));
    let mut cmd = Command::new("python3");
    cmd.arg("tests/credentials/by_role.py");
    aws_env(&mut cmd, &s);
    run_suite("CreateFunction with a Role", cmd);
}

/// Attack: a function that can reach the server (here: functions share the
/// host's loopback) signs a request to another function's private URL with
/// its own credentials. Without lambda:InvokeFunctionUrl on that function it
/// is refused; granted, it runs.
#[test]
fn a_functions_credentials_open_a_private_function_url_only_when_granted() {
    require_boto3();
    let sdk = std::env::var("UPDRAFT_TEST_SDK_DIR").expect("UPDRAFT_TEST_SDK_DIR");
    let s = server_with_keys_and_flags(
        "creds-url",
        &[
            ("UPDRAFT_SDK_DIR", &sdk),
            ("UPDRAFT_ALLOW_FUNCTION_LOOPBACK", "true"),
        ],
        &[],
    );
    s.deploy(&fixture("credentials"));
    let url = format!("{}/fn/private", s.endpoint);
    let payload = serde_json::json!({"op": "url", "url": url}).to_string();
    let refused = s.invoke_json("caller", &payload);
    assert_eq!(refused["ok"]["status"], 403, "{refused}");
    let body = refused["ok"]["body"].as_str().unwrap_or_default();
    assert!(body.contains("lambda:InvokeFunctionUrl"), "{body}");
    assert!(
        !body.contains("\"called\""),
        "the private function ran: {body}"
    );
    let granted = s.invoke_json("url-caller", &payload);
    assert_eq!(granted["ok"]["status"], 200, "{granted}");
    let body: Value = serde_json::from_str(granted["ok"]["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["called"], "private", "{body}");
    let headers = &body["event"]["headers"];
    assert!(
        headers.get("authorization").is_none() && headers.get("x-amz-security-token").is_none(),
        "the caller's credentials reached the function: {headers}"
    );
}
