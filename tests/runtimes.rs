//! Python, Node and `provided` functions (three real Lambda runtime clients)
//! deployed and invoked through the real binary.

mod common;
use common::*;

#[test]
fn python_function_gets_lambda_context_and_environment() {
    let s = Server::start("py-context");
    let out = s.deploy(&fixture("py"));
    assert!(
        out.lines().any(|l| l.starts_with("echo 1 http://")),
        "deploy prints NAME VERSION URL: {out}"
    );
    let v = s.invoke_json("echo", r#"{"hello": "world"}"#);
    assert_eq!(v["event"]["hello"], "world");
    let ctx = &v["context"];
    assert_eq!(ctx["function_name"], "echo");
    assert_eq!(ctx["memory_limit_in_mb"], 128);
    assert!(ctx["invoked_function_arn"]
        .as_str()
        .unwrap()
        .starts_with("arn:aws:lambda:us-east-1:000000000000:function:echo"));
    assert!(ctx["remaining_ms"].as_i64().unwrap() > 0);
    assert_eq!(v["env"]["FIXTURE_GREETING"], "hello from the manifest");
    assert_eq!(v["env"]["AWS_LAMBDA_FUNCTION_NAME"], "echo");
    // The host's secrets are not visible to functions.
    assert_eq!(v["env"]["host_secret_visible"], false);
}

fn started_as(v: &serde_json::Value) -> String {
    let argv = v["argv"].as_array().expect("argv");
    let script = argv.get(1).and_then(|a| a.as_str()).unwrap_or_default();
    script.rsplit('/').next().unwrap_or_default().to_string()
}

#[test]
fn python_instances_are_forked_from_a_template_unless_told_not_to() {
    let s = Server::start("py-zygote");
    s.deploy(&fixture("py"));
    let a = s.invoke_json("echo", r#"{"n": 1}"#);
    assert_eq!(started_as(&a), "zygote.py", "{a}");
    assert_eq!(a["event"]["n"], 1, "{a}");
    assert_eq!(a["env"]["FIXTURE_GREETING"], "hello from the manifest");
    assert_eq!(a["env"]["host_secret_visible"], false);
    assert_eq!(a["proc_environ"], true, "{a}");
    // A second instance (the first removed with its function), forked from
    // the same template: state drawn at import is its own.
    s.ok(&["rm", "echo"]);
    s.deploy(&fixture("py"));
    let b = s.invoke_json("echo", r#"{"n": 2}"#);
    assert_eq!(started_as(&b), "zygote.py", "{b}");
    assert_ne!(a["random"], b["random"], "{a} {b}");
    assert_ne!(
        a["env"]["AWS_LAMBDA_LOG_STREAM_NAME"],
        b["env"]["AWS_LAMBDA_LOG_STREAM_NAME"]
    );

    // A function that sets a PYTHON… variable starts by exec: only an
    // interpreter's start reads them.
    let app = scratch("py-zygote-env");
    std::fs::create_dir_all(app.join("src")).unwrap();
    std::fs::copy(fixture("py").join("src/echo.py"), app.join("src/echo.py")).unwrap();
    std::fs::write(
        app.join("updraft.toml"),
        "[app]\nname = \"pyenv\"\n\n[functions.pyenv]\nruntime = \"python3\"\nhandler = \"echo.handler\"\ncode = \"src\"\nenv = { PYTHONDONTWRITEBYTECODE = \"1\" }\n",
    )
    .unwrap();
    s.deploy(&app);
    let v = s.invoke_json("pyenv", "{}");
    assert_eq!(started_as(&v), "bootstrap.py", "{v}");
    assert_eq!(v["dont_write_bytecode"], 1, "{v}");
    // The template's own instances do not have it.
    assert_eq!(b["dont_write_bytecode"], 0, "{b}");

    // `--no-zygotes`: every instance by exec.
    let s2 = Server::start_with(scratch("py-no-zygote"), &[], &["--no-zygotes"]);
    s2.deploy(&fixture("py"));
    let v = s2.invoke_json("echo", r#"{"n": 3}"#);
    assert_eq!(started_as(&v), "bootstrap.py", "{v}");
    assert_eq!(v["event"]["n"], 3, "{v}");
}

/// The server's python3 template processes (`zygote.py`, children of `server`).
fn template_pids(server: i32) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let ppid = stat
            .rsplit(')')
            .next()
            .and_then(|r| r.split_whitespace().nth(1));
        if ppid == Some(&server.to_string())
            && cmdline.split(|&b| b == 0).any(|a| a == b"zygote.py")
        {
            out.push(pid);
        }
    }
    out
}

#[test]
fn a_template_that_dies_takes_its_instances_and_the_next_call_starts_afresh() {
    let s = Server::start("py-zygote-dies");
    s.deploy(&fixture("py"));
    let a = s.invoke_json("echo", r#"{"n": 1}"#);
    assert_eq!(started_as(&a), "zygote.py", "{a}");
    let templates = template_pids(s.pid());
    assert_eq!(
        templates.len(),
        1,
        "one template per interpreter: {templates:?}"
    );
    assert_eq!(s.live_instances("echo"), 1);
    // SIGKILL: its children (the instance, the parked ones) die with it,
    // and the server sees the instance gone.
    unsafe_kill(templates[0]);
    wait_until(
        "the instance gone with its template",
        std::time::Duration::from_secs(30),
        || s.live_instances("echo") == 0,
    );
    // The next call starts a new template and is served from it.
    let b = s.invoke_json("echo", r#"{"n": 2}"#);
    assert_eq!(b["event"]["n"], 2, "{b}");
    assert_eq!(started_as(&b), "zygote.py", "{b}");
    let again = template_pids(s.pid());
    assert_eq!(again.len(), 1, "{again:?}");
    assert_ne!(again, templates);
}

fn unsafe_kill(pid: i32) {
    let status = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn python_errors_have_lambda_shape_and_exit_1() {
    let s = Server::start("py-errors");
    s.deploy(&fixture("py"));
    let out = s.cli(&["invoke", "fail"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.starts_with("ValueError: boom"), "{err}");
    assert!(err.contains("\"stackTrace\""), "{err}");
    assert!(stdout(&out).is_empty());

    let out = s.cli(&["invoke", "initfail"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("RuntimeError"), "{}", stderr(&out));

    // Unknown function: a clear message and exit 2.
    let out = s.cli(&["invoke", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("Function not found"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn node_functions_async_callback_and_errors() {
    let s = Server::start("node");
    s.deploy(&fixture("node"));
    let v = s.invoke_json("node-echo", r#"{"n": 1}"#);
    assert_eq!(v["event"]["n"], 1);
    assert_eq!(v["context"]["functionName"], "node-echo");
    assert_eq!(v["context"]["memoryLimitInMB"], "128");
    let v = s.invoke_json("node-cb", r#"{"n": 2}"#);
    assert_eq!(v["callback"], true);
    let out = s.cli(&["invoke", "node-fail"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with("TypeError: node boom"),
        "{}",
        stderr(&out)
    );
}

fn check_provided(s: &Server, name: &str, runtime: &str) {
    let v = s.invoke_json(name, r#"{"x": [1, 2, 3]}"#);
    assert_eq!(v["runtime"], runtime, "{v}");
    assert_eq!(v["echo"]["x"][2], 3, "{v}");
    // Warm path: a second call reuses the instance and still answers.
    let v = s.invoke_json(name, r#"{"x": [4]}"#);
    assert_eq!(v["echo"]["x"][0], 4);
    let out = s.cli(&["invoke", name, "--payload", r#"{"fail": true}"#]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("asked to fail"), "{}", stderr(&out));
}

#[test]
fn lambda_runtime_crate_runs_unchanged() {
    let s = Server::start("rust-ric");
    s.deploy(&fixture("provided-rust"));
    check_provided(&s, "rust-echo", "lambda_runtime");
}

#[test]
fn awslambdaric_runs_unchanged() {
    let s = Server::start("py-ric");
    s.deploy(&fixture("provided-python-ric"));
    check_provided(&s, "py-ric", "awslambdaric");
}

#[test]
fn aws_lambda_ric_runs_unchanged() {
    let s = Server::start("node-ric");
    s.deploy(&fixture("provided-node-ric"));
    check_provided(&s, "node-ric", "aws-lambda-ric");
}

#[test]
fn each_instance_has_a_private_tmp() {
    let s = Server::start("tmp");
    s.deploy(&fixture("py"));
    let a = s.invoke_json("tmpfile", "{}");
    let mine = a["wrote"].as_str().unwrap().to_string();
    assert!(
        a["tmp"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f == mine.as_str()),
        "{a}"
    );
    // The host's /tmp does not have the file.
    assert!(!std::path::Path::new("/tmp").join(&mine).exists());
}

#[test]
fn functions_cannot_read_the_servers_secrets_or_each_others_code() {
    let s = Server::start("isolation");
    s.deploy(&fixture("py"));
    let dir = scratch("peek-app");
    std::fs::create_dir_all(dir.join("code")).unwrap();
    std::fs::write(
        dir.join("code/app.py"),
        "import os\ndef handler(e, c):\n    out = {}\n    for p in e['paths']:\n        try:\n            open(p, 'rb').read(1) if os.path.isfile(p) else os.listdir(p)\n            out[p] = 'readable'\n        except Exception as x:\n            out[p] = type(x).__name__\n    return out\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("updraft.toml"),
        "[app]\nname = \"peek\"\n\n[functions.peek]\nruntime = \"python3\"\nhandler = \"app.handler\"\ncode = \"code\"\n",
    )
    .unwrap();
    s.deploy(&dir);
    if !require(
        is_root(),
        "root: the file isolation checks need per-function users",
    ) {
        return;
    }
    let data = s.data_dir.canonicalize().unwrap();
    let echo_code = data.join("code");
    let paths = [
        data.join("credentials"),
        data.join("updraft.db"),
        echo_code.clone(),
        data.join("blobs"),
    ];
    let payload = serde_json::json!({ "paths": paths });
    let v = s.invoke_json("peek", &payload.to_string());
    for p in &paths {
        assert_ne!(
            v[p.to_str().unwrap()],
            "readable",
            "{} must be out of reach: {v}",
            p.display()
        );
    }
}
