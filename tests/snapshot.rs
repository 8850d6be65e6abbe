//! `snapshot = true`: instances forked from a template that ran the
//! function's init once, each in its own cgroup with its own memory limit,
//! Runtime API, log and credentials, under the function's uid.

mod common;
use common::*;
use std::path::Path;

const CODE: &str = r#"
import os, random, uuid
from snapshot_restore_py import register_after_restore, register_before_snapshot

# Drawn once, in the template.
INIT_TOKEN = uuid.uuid4().hex
INIT_PID = os.getpid()
BEFORE = []
RESTORED = []

@register_before_snapshot
def before():
    BEFORE.append(os.getpid())

def after(tag):
    RESTORED.append([tag, os.getpid()])

register_after_restore(after, "restored")

def handler(event, context):
    if event.get("exit"):
        os._exit(3)
    if event.get("mb"):
        hog = bytearray(event["mb"] << 20)
        return len(hog)
    with open("/proc/self/cgroup") as f:
        cgroup = f.read()
    return {
        "token": INIT_TOKEN,
        "init_pid": INIT_PID,
        "pid": os.getpid(),
        "before": BEFORE,
        "restored": RESTORED,
        "uid": os.getuid(),
        "cgroup": cgroup,
        "instance": os.environ.get("UPDRAFT_INSTANCE_ID"),
        "init_type": os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE"),
        "order_fd_seen": "_UPDRAFT_SNAPSHOT_FD" in os.environ,
        "random": random.random(),
        "stream": context.log_stream_name,
        "key": os.environ.get("AWS_ACCESS_KEY_ID"),
    }
"#;

fn app(dir: &Path, name: &str, runtime: &str, code: &str) {
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(dir.join("src/snap.py"), code).unwrap();
    std::fs::write(
        dir.join("updraft.toml"),
        format!(
            "[app]\nname = \"{name}-app\"\n\n[functions.{name}]\nruntime = \"{runtime}\"\nhandler = \"snap.handler\"\ncode = \"src\"\nmemory_mb = 128\ntimeout = \"30s\"\nsnapshot = true\n"
        ),
    )
    .unwrap();
}

#[test]
fn instances_fork_from_a_template_that_ran_the_init_once() {
    let s = Server::start("snapshot");
    let dir = scratch("snapshot-app");
    app(&dir, "snap", "python3", CODE);
    s.deploy(&dir);

    let a = s.invoke_json("snap", "{}");
    assert_eq!(a["init_type"], "snap-start", "{a}");
    assert_eq!(a["order_fd_seen"], false, "{a}");
    assert_ne!(a["pid"], a["init_pid"], "a child of the template: {a}");
    // The before-snapshot hook ran once, in the template; the after-restore
    // hook in this instance, with its arguments.
    assert_eq!(a["before"], serde_json::json!([a["init_pid"]]), "{a}");
    assert_eq!(
        a["restored"],
        serde_json::json!([["restored", a["pid"]]]),
        "{a}"
    );

    // A crash ends that instance; the next comes from the same template.
    let out = s.cli(&["invoke", "snap", "--payload", r#"{"exit": true}"#]);
    assert!(
        stderr(&out).starts_with("Runtime.ExitError: "),
        "{}",
        stderr(&out)
    );
    let b = s.invoke_json("snap", "{}");
    assert_eq!(b["token"], a["token"], "the init ran once: {a} {b}");
    assert_ne!(b["pid"], a["pid"], "{b}");
    assert_eq!(b["before"], a["before"], "{b}");
    assert_eq!(b["restored"], serde_json::json!([["restored", b["pid"]]]));
    // Its own random state, log stream and instance.
    assert_ne!(b["random"], a["random"], "{a} {b}");
    assert_ne!(b["stream"], a["stream"]);
    assert_ne!(b["instance"], a["instance"]);
    assert!(b["key"].as_str().is_some_and(|k| !k.is_empty()), "{b}");

    if require(is_root(), "root (per-function uids and cgroups)") {
        // The function's own uid, never root; and a cgroup of its own
        // (named after the instance), not the template's.
        let uid = b["uid"].as_u64().unwrap();
        assert!(uid >= 1000, "{b}");
        assert_eq!(a["uid"], b["uid"]);
        for v in [&a, &b] {
            let instance = v["instance"].as_str().unwrap();
            let cgroup = v["cgroup"].as_str().unwrap();
            assert!(
                cgroup
                    .lines()
                    .any(|l| l.contains(":memory:") && l.ends_with(instance))
                    || cgroup
                        .lines()
                        .any(|l| l.starts_with("0::") && l.ends_with(instance)),
                "{instance} not in {cgroup}"
            );
        }
        // Its memory limit is its own: over it, that instance is killed;
        // the template and the next instance are not.
        let out = s.cli(&["invoke", "snap", "--payload", r#"{"mb": 400}"#]);
        assert!(
            stderr(&out).starts_with("Runtime.OutOfMemory: "),
            "{}",
            stderr(&out)
        );
        let c = s.invoke_json("snap", "{}");
        assert_eq!(c["token"], a["token"], "{c}");
        assert_ne!(c["pid"], b["pid"]);
    }
    assert_eq!(
        s.ok(&["invoke", "snap", "--payload", r#"{"mb": 10}"#]),
        (10 << 20).to_string()
    );
}

#[test]
fn an_init_that_fails_fails_the_invocation_and_is_tried_again() {
    let s = Server::start("snapshot-init");
    let dir = scratch("snapshot-init-app");
    app(
        &dir,
        "broken",
        "python3",
        "raise ValueError('boom at init')\ndef handler(e, c):\n    return 1\n",
    );
    s.deploy(&dir);
    for _ in 0..2 {
        let out = s.cli(&["invoke", "broken"]);
        assert_eq!(out.status.code(), Some(1));
        assert!(stderr(&out).contains("boom at init"), "{}", stderr(&out));
    }
    // The server is still healthy.
    assert_eq!(get(&format!("{}/healthz", s.endpoint)).0, 200);
}

#[test]
fn snapshot_is_refused_for_other_runtimes() {
    let s = Server::start("snapshot-node");
    let dir = scratch("snapshot-node-app");
    app(&dir, "nodesnap", "nodejs", CODE);
    let out = s.cli_in(&["deploy"], &dir);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("functions.nodesnap.snapshot"),
        "{}",
        stderr(&out)
    );
}

/// The template ran the function's code, so the server believes nothing
/// it says: a child's pid comes from the kernel. An init that makes every
/// hello claim another process's credentials (PID 1, root) is refused by
/// the kernel, and the instance still runs as itself.
#[test]
fn attack_a_template_cannot_make_the_server_move_another_process() {
    let s = Server::start("snapshot-forge");
    let dir = scratch("snapshot-forge-app");
    let code = r#"
import os, socket, struct
_Real = socket.socket
FORGED = []

class Forging(_Real):
    def send(self, data, *args):
        if data == b"hello":
            creds = struct.pack("iII", 1, 0, 0)
            try:
                self.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_CREDENTIALS, creds)])
                FORGED.append("sent")
                return len(data)
            except OSError as e:
                FORGED.append(e.errno)
        return super().send(data, *args)

socket.socket = Forging

def handler(event, context):
    with open("/proc/self/cgroup") as f:
        cgroup = f.read()
    return {"forged": FORGED, "uid": os.getuid(), "cgroup": cgroup,
            "instance": os.environ["UPDRAFT_INSTANCE_ID"]}
"#;
    app(&dir, "forge", "python3", code);
    s.deploy(&dir);
    let server_cgroup = std::fs::read_to_string(format!("/proc/{}/cgroup", s.pid())).unwrap();
    let v = s.invoke_json("forge", "{}");
    // EPERM: only a process's own pid (without CAP_SYS_ADMIN).
    assert_eq!(v["forged"], serde_json::json!([1]), "{v}");
    if require(is_root(), "root (per-function uids and cgroups)") {
        assert!(v["uid"].as_u64().unwrap() >= 1000, "{v}");
        let instance = v["instance"].as_str().unwrap();
        assert!(
            v["cgroup"].as_str().unwrap().contains(instance),
            "the child itself was moved: {v}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(format!("/proc/{}/cgroup", s.pid())).unwrap(),
        server_cgroup,
        "the server's own cgroups are untouched"
    );
    assert_eq!(get(&format!("{}/healthz", s.endpoint)).0, 200);
}

/// A template that answers orders without forking (its init replaced
/// `os.fork`) names pids that are not its children: the start fails with a
/// clear error, promptly, and the server carries on.
#[test]
fn attack_a_template_that_lies_about_its_children_fails_the_start_only() {
    let s = Server::start("snapshot-liar");
    let dir = scratch("snapshot-liar-app");
    let code = "import os\nos.fork = lambda: 1\ndef handler(e, c):\n    return 1\n";
    app(&dir, "liar", "python3", code);
    s.deploy(&dir);
    let out = s.cli(&["invoke", "liar"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).starts_with("Runtime.StartError: ")
            && (stderr(&out).contains("did not say hello")
                || stderr(&out).contains("closed its socket")),
        "{}",
        stderr(&out)
    );
    assert_eq!(get(&format!("{}/healthz", s.endpoint)).0, 200);
    s.deploy(&fixture("py"));
    assert_eq!(
        s.invoke_json("echo", "{}")["context"]["function_name"],
        "echo"
    );
}
