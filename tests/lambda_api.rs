//! The AWS Lambda API subset (SPEC §4) with the real clients: the boto3 suite
//! in tests/lambda_api/test_boto3.py (one test here per class, each against
//! its own server) and the AWS CLI script tests/lambda_api/test_awscli.sh.
//!
//! Needs `python3` with boto3 and `aws` on PATH: `.ci/run` puts a venv with
//! both first on PATH (or `pip install boto3 awscli`).

mod common;
use common::*;
use std::process::Command;

use common::aws::{aws_env, require_aws_tools, run_suite, ACCESS_KEY, KEYS, SECRET_KEY};

/// Starts a server with fixed credentials and a fast retry backoff. The
/// suites' functions report to a sink on the host's loopback, which they
/// reach only when the server allows it.
fn server(name: &str) -> Server {
    Server::start_in(
        scratch(name),
        &[
            KEYS[0],
            KEYS[1],
            ("UPDRAFT_RETRY_BASE", "100ms"),
            ("UPDRAFT_ALLOW_FUNCTION_LOOPBACK", "true"),
        ],
    )
}

/// Runs one class of the boto3 suite against a fresh server.
fn boto3_class(class: &str) {
    require_aws_tools("Lambda API");
    let s = server(&format!("lambda-api-{}", class.to_lowercase()));
    let mut cmd = Command::new("python3");
    cmd.args(["tests/lambda_api/test_boto3.py", class, "-v"]);
    aws_env(&mut cmd, &s);
    run_suite(&format!("boto3 suite {class}"), cmd);
}

#[test]
fn boto3_functions() {
    boto3_class("FunctionsTest");
}

#[test]
fn boto3_logging_config() {
    boto3_class("LoggingConfigTest");
}

#[test]
fn boto3_snap_start() {
    boto3_class("SnapStartTest");
}

#[test]
fn boto3_errors() {
    boto3_class("ErrorsTest");
}

#[test]
fn boto3_invoke() {
    boto3_class("InvokeTest");
}

#[test]
fn boto3_versions_and_aliases() {
    boto3_class("VersionsAliasesTest");
}

#[test]
fn boto3_concurrency() {
    boto3_class("ConcurrencyTest");
}

#[test]
fn boto3_function_urls() {
    boto3_class("FunctionUrlTest");
}

#[test]
fn boto3_event_invoke_config() {
    boto3_class("EventInvokeConfigTest");
}

#[test]
fn boto3_wasm_components() {
    boto3_class("WasmTest");
}

#[test]
fn aws_cli_create_invoke_tail_delete() {
    require_aws_tools("Lambda API");
    let s = server("lambda-api-cli");
    let mut cmd = Command::new("bash");
    cmd.arg("tests/lambda_api/test_awscli.sh");
    aws_env(&mut cmd, &s);
    run_suite("AWS CLI script", cmd);
}

/// Creates the function `name` through boto3; its handler answers
/// `{"from": "lambda-api", "event": EVENT}`.
fn create_with_boto3(s: &Server, name: &str) {
    let script = r#"
import io, os, sys, zipfile, boto3, botocore.config
buf = io.BytesIO()
with zipfile.ZipFile(buf, "w") as z:
    z.writestr("app.py", "def handler(event, context):\n    return {'from': 'lambda-api', 'event': event}\n")
lam = boto3.client("lambda", endpoint_url=os.environ["UPDRAFT_ENDPOINT"], region_name="us-east-1",
                   config=botocore.config.Config(retries={"max_attempts": 1, "mode": "standard"}))
lam.create_function(FunctionName=sys.argv[1], Runtime=f"python3.{sys.version_info.minor}", Role="arn:aws:iam::000000000000:role/x",
                    Handler="app.handler", Code={"ZipFile": buf.getvalue()})
"#;
    let mut cmd = Command::new("python3");
    cmd.args(["-c", script, name]);
    aws_env(&mut cmd, s);
    run_suite(&format!("create {name} through boto3"), cmd);
}

/// A function created through the Lambda API is the same function the
/// native CLI shows and invokes (issue: one function model).
#[test]
fn lambda_api_functions_are_updraft_functions() {
    require_aws_tools("Lambda API");
    let s = server("lambda-api-shared-model");
    create_with_boto3(&s, "shared-model");

    // The native CLI reads the same credentials from the environment.
    let native = |args: &[&str]| {
        let out = Command::new(BIN)
            .args(args)
            .env("UPDRAFT_ENDPOINT", &s.endpoint)
            .env("UPDRAFT_ACCESS_KEY_ID", ACCESS_KEY)
            .env("UPDRAFT_SECRET_ACCESS_KEY", SECRET_KEY)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "updraft {args:?}: {}\n{}",
            stdout(&out),
            stderr(&out)
        );
        stdout(&out)
    };
    let list: serde_json::Value = serde_json::from_str(&native(&["ls", "--json"])).unwrap();
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .any(|f| f["name"] == "shared-model"),
        "updraft ls shows the function created with boto3: {list}"
    );
    let out: serde_json::Value = serde_json::from_str(&native(&[
        "invoke",
        "shared-model",
        "--payload",
        r#"{"n":1}"#,
    ]))
    .unwrap();
    assert_eq!(out["from"], "lambda-api");
    assert_eq!(out["event"]["n"], 1);

    // And the reverse: a manifest's function through the Lambda API, its
    // `url = "public"` read as AuthType NONE.
    native(&["deploy", fixture("py").to_str().unwrap()]);
    let script = r#"
import json, os, boto3, botocore.config
lam = boto3.client("lambda", endpoint_url=os.environ["UPDRAFT_ENDPOINT"], region_name="us-east-1",
                   config=botocore.config.Config(retries={"max_attempts": 1, "mode": "standard"}))
conf = lam.get_function_configuration(FunctionName="echo")
assert conf["Handler"] == "echo.handler", conf
assert conf["FunctionArn"] == "arn:aws:lambda:us-east-1:000000000000:function:echo", conf
assert lam.get_function_url_config(FunctionName="echo")["AuthType"] == "NONE"
resp = lam.invoke(FunctionName="echo", Payload=b'{"via": "boto3"}')
body = json.loads(resp["Payload"].read())
assert body["event"] == {"via": "boto3"}, body
names = [f["FunctionName"] for p in lam.get_paginator("list_functions").paginate() for f in p["Functions"]]
assert "echo" in names and "shared-model" in names, names
"#;
    let mut cmd = Command::new("python3");
    cmd.args(["-c", script]);
    aws_env(&mut cmd, &s);
    run_suite("manifest function through boto3", cmd);
}

#[test]
fn boto3_tags_account_settings_and_unimplemented_operations() {
    boto3_class("TagsAccountTest");
}

/// The AWS CLI tags a function; the tags are still there after a restart,
/// and GetAccountSettings counts the function.
#[test]
fn aws_cli_tags_survive_a_restart() {
    require_aws_tools("Lambda API");
    let mut s = server("lambda-api-cli-tags");
    create_with_boto3(&s, "tagged");

    let arn = "arn:aws:lambda:us-east-1:000000000000:function:tagged";
    let aws = |s: &Server, args: &[&str]| -> serde_json::Value {
        let mut cmd = Command::new("aws");
        cmd.args(["lambda", "--endpoint-url", &s.endpoint, "--output", "json"])
            .args(args);
        aws_env(&mut cmd, s);
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "aws lambda {args:?}: {}\n{}",
            stdout(&out),
            stderr(&out)
        );
        let text = stdout(&out);
        if text.trim().is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        }
    };
    aws(
        &s,
        &[
            "tag-resource",
            "--resource",
            arn,
            "--tags",
            "team=core,env=dev",
        ],
    );
    aws(
        &s,
        &["untag-resource", "--resource", arn, "--tag-keys", "env"],
    );
    s.restart();
    assert_eq!(
        aws(&s, &["list-tags", "--resource", arn]),
        serde_json::json!({"Tags": {"team": "core"}})
    );
    let settings = aws(&s, &["get-account-settings"]);
    assert_eq!(settings["AccountUsage"]["FunctionCount"], 1, "{settings}");
}

/// The table of Lambda's operations (crates/api/src/lambda/operations.rs)
/// is the model of the botocore these tests run with.
#[test]
fn the_operations_table_is_botocores_model() {
    require_aws_tools("Lambda API");
    let mut cmd = Command::new("python3");
    cmd.args(["scripts/lambda-operations", "--check"])
        .current_dir(repo());
    run_suite("scripts/lambda-operations --check", cmd);
}
