//! The AWS SDK in the managed runtimes: python3 functions `import boto3`
//! and nodejs functions import `@aws-sdk/client-*` without bundling them,
//! from the server's SDK directory (`--sdk-dir`, `--install-sdk`); a
//! function's own copy wins; a server without the SDK says how to get it.
//!
//! The handlers (tests/function_sdk/) call the server's own Lambda API with
//! the SDK, with nothing but what the server gives every instance: its
//! function's credentials and the `AWS_ENDPOINT_URL_*` variables; each is
//! granted `lambda:ListFunctions`.

mod common;
use common::aws::server_with_keys;
use common::*;
use std::path::{Path, PathBuf};
use updraft_platform::Sdk;

/// The SDK scripts/setup installs (target/ci/sdk), named by target/ci/env.
fn sdk_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(std::env::var_os("UPDRAFT_TEST_SDK_DIR")?);
    let complete = dir.join("python/boto3/__init__.py").is_file()
        && dir
            .join("nodejs/node_modules/@aws-sdk/client-lambda/package.json")
            .is_file();
    complete.then_some(dir)
}

/// A server with the test SDK and fixed keys, or None (skipped) without it.
fn server(name: &str) -> Option<Server> {
    let dir = sdk_dir();
    if !require(
        dir.is_some(),
        "the AWS SDK for functions in UPDRAFT_TEST_SDK_DIR (scripts/setup installs it in \
         target/ci/sdk and names it in target/ci/env)",
    ) {
        return None;
    }
    let dir = dir.unwrap().display().to_string();
    Some(server_with_keys(name, &[("UPDRAFT_SDK_DIR", &dir)]))
}

/// Writes an app whose one function runs `code` (a directory under
/// tests/function_sdk), allowed to list functions; returns its dir.
fn app(name: &str, runtime: &str, handler: &str, code: &str) -> PathBuf {
    let dir = scratch(&format!("app-{name}"));
    let code = repo().join("tests/function_sdk").join(code);
    let manifest = format!(
        r#"[app]
name = "{name}"

[functions.{name}]
runtime = "{runtime}"
handler = "{handler}"
code = "{code}"
timeout = "60s"
memory_mb = 256
permissions = ["lambda:ListFunctions"]
"#,
        code = code.display(),
    );
    std::fs::write(dir.join("updraft.toml"), manifest).unwrap();
    dir
}

fn deploy(s: &Server, dir: &Path) {
    let out = s.cli(&["deploy", dir.to_str().unwrap()]);
    assert!(out.status.success(), "deploy failed: {}", stderr(&out));
}

fn listed(v: &serde_json::Value) -> Vec<String> {
    let body: serde_json::Value = serde_json::from_str(v["body"].as_str().unwrap()).unwrap();
    serde_json::from_value(body["functions"].clone()).unwrap()
}

#[test]
fn python_boto3_client_made_at_import_calls_the_lambda_api() {
    let Some(s) = server("sdk-python") else {
        return;
    };
    let (boto3, client) = Sdk::pinned_versions();
    assert!(
        s.startup.iter().any(|l| l.contains("AWS SDK for functions")
            && l.contains(&format!("boto3 {boto3}"))
            && l.contains(&format!("@aws-sdk/client-* {client}"))),
        "the server says which SDK it has: {:?}",
        s.startup
    );
    deploy(&s, &app("list-py", "python3", "app.lambda_handler", "py"));
    let v = s.invoke_json("list-py", "{}");
    assert_eq!(v["statusCode"], 200, "{v}");
    assert_eq!(listed(&v), ["list-py"], "{v}");
    assert_eq!(v["boto3"], boto3, "the shipped boto3: {v}");
    assert!(
        v["boto3_file"]
            .as_str()
            .unwrap()
            .ends_with("/sdk/boto3/__init__.py"),
        "{v}"
    );
    // Bootstrap fidelity: as awslambdaric, a string; an unqualified invoke
    // reports the unqualified ARN (deploy published version 1); a trace id.
    assert_eq!(v["memory_limit_in_mb"], "256");
    assert_eq!(
        v["invoked_function_arn"],
        "arn:aws:lambda:us-east-1:000000000000:function:list-py"
    );
    assert!(
        v["trace_id"].as_str().unwrap().starts_with("Root=1-"),
        "{v}"
    );
    let out = s.cli(&["invoke", "list-py", "--qualifier", "1"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["invoked_function_arn"],
        "arn:aws:lambda:us-east-1:000000000000:function:list-py:1"
    );
    // The logging module's lines have Lambda's form.
    let logs = s.ok(&["logs", "list-py"]);
    assert!(
        logs.lines()
            .any(|l| l.contains("[INFO]\t") && l.ends_with("\tfound 1 functions")),
        "{logs}"
    );
}

/// Jailed instances see the SDK at /var/runtime/sdk, read-only.
#[test]
fn the_shipped_sdk_is_read_only_to_functions() {
    let Some(s) = server("sdk-readonly") else {
        return;
    };
    deploy(&s, &app("probe", "python3", "probe.handler", "py"));
    let v = s.invoke_json("probe", "{}");
    assert_eq!(v["boto3_file"], "/var/runtime/sdk/boto3/__init__.py", "{v}");
    assert_eq!(v["write"], "Read-only file system", "{v}");
}

#[test]
fn node_esm_handler_imports_the_shipped_client_lambda() {
    let Some(s) = server("sdk-node") else { return };
    deploy(&s, &app("list-node", "nodejs", "index.handler", "node"));
    let v = s.invoke_json("list-node", "{}");
    assert_eq!(v["statusCode"], 200, "{v}");
    assert_eq!(listed(&v), ["list-node"], "{v}");
}

#[test]
fn a_functions_own_boto3_wins_over_the_shipped_one() {
    let Some(s) = server("sdk-bundled") else {
        return;
    };
    deploy(&s, &app("own-boto3", "python3", "app.handler", "bundled"));
    let v = s.invoke_json("own-boto3", "{}");
    assert_eq!(v["boto3"], "0.0.0-bundled", "{v}");
}

#[test]
fn without_the_sdk_functions_that_need_none_run_and_the_others_say_how_to_install_it() {
    // An SDK directory with nothing in it (whatever the caller's environment).
    let empty = scratch("no-sdk");
    let s = server_with_keys(
        "sdk-missing",
        &[("UPDRAFT_SDK_DIR", empty.to_str().unwrap())],
    );
    assert!(
        s.startup.iter().any(|l| l.contains("AWS SDK for functions")
            && l.contains("not installed")
            && l.contains("--install-sdk")),
        "{:?}",
        s.startup
    );
    s.deploy(&fixture("py"));
    assert_eq!(
        s.invoke_json("echo", "{}")["context"]["function_name"],
        "echo"
    );
    deploy(
        &s,
        &app("needs-boto3", "python3", "app.lambda_handler", "py"),
    );
    let out = s.cli(&["invoke", "needs-boto3"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("Runtime.ImportModuleError"), "{err}");
    assert!(
        err.contains("No module named 'boto3'") && err.contains("updraft server --install-sdk"),
        "{err}"
    );
    deploy(&s, &app("needs-sdk-js", "nodejs", "index.handler", "node"));
    let err = stderr(&s.cli(&["invoke", "needs-sdk-js"]));
    assert!(
        err.contains("@aws-sdk/client-lambda") && err.contains("updraft server --install-sdk"),
        "{err}"
    );
}

#[test]
fn install_sdk_installs_the_pinned_versions_once() {
    // Real installs from PyPI and npm (the registries CI reaches).
    let sdk = scratch("install-sdk");
    let env = [
        ("UPDRAFT_SDK_DIR", sdk.to_str().unwrap()),
        ("UPDRAFT_INSTALL_SDK", "true"),
    ];
    let mut s = Server::start_in(scratch("sdk-install"), &env);
    assert!(
        s.startup
            .iter()
            .any(|l| l.contains("installing the AWS SDK")),
        "{:?}",
        s.startup
    );
    let (boto3, client) = Sdk::pinned_versions();
    assert!(
        s.startup
            .iter()
            .any(|l| l.contains(&format!("boto3 {boto3}"))
                && l.contains(&format!("@aws-sdk/client-* {client}"))
                && !l.contains("not installed")),
        "{:?}",
        s.startup
    );
    assert!(sdk.join("python/boto3/__init__.py").is_file());
    assert!(sdk
        .join("nodejs/node_modules/@aws-sdk/client-sqs/package.json")
        .is_file());
    // Present at the pinned versions: nothing to install at the next start.
    s.restart();
    assert!(
        !s.startup.iter().any(|l| l.contains("installing")),
        "{:?}",
        s.startup
    );
    drop(s);
    std::fs::remove_dir_all(&sdk).unwrap(); // 70 MB
}
