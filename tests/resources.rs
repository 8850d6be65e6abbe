//! Host resources stay bounded against hostile functions, and the server
//! survives its disk: a function (process or wasm) printing 1 GiB is cut at
//! the per-invocation log limit while the server's memory and database stay
//! small; a full disk makes writes fail clearly and `/healthz` say 503, and
//! everything works again once space is back, without a restart; a second
//! server on a data dir in use is refused.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `--invocation-log-limit`'s default.
const LOG_LIMIT: u64 = 4 << 20;
const GIB: u64 = 1 << 30;

/// updraft.db and its WAL, in bytes.
fn db_bytes(data_dir: &Path) -> u64 {
    ["updraft.db", "updraft.db-wal"]
        .iter()
        .map(|f| std::fs::metadata(data_dir.join(f)).map_or(0, |m| m.len()))
        .sum()
}

/// The bytes a truncation notice in `logs` says were dropped (one notice).
fn dropped_bytes(logs: &str) -> u64 {
    let notices: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("[updraft] log output truncated"))
        .collect();
    assert_eq!(
        notices.len(),
        1,
        "one truncation notice expected:\n{notices:?}"
    );
    let n = notices[0];
    assert!(n.contains("Lambda truncates"), "{n}");
    n.split(": ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|d| d.parse().ok())
        .unwrap_or_else(|| panic!("no byte count in {n}"))
}

/// The log after the warm-up runs, which end in "flood-done".
fn after_last_done(logs: &str) -> &str {
    &logs[logs.rfind("flood-done").expect("a warm-up run") + 10..]
}

/// The flood's lines, the notice, and END/REPORT: in that order, and the
/// function's last line ("flood-done") is not among them.
fn assert_flood_logged(logs: &str) {
    let dropped = dropped_bytes(logs);
    assert!(
        (GIB - LOG_LIMIT..=GIB + 4096).contains(&dropped),
        "dropped {dropped} bytes of a 1 GiB flood"
    );
    let kept = logs
        .lines()
        .filter(|l| l.ends_with(&"x".repeat(1023)))
        .count() as u64;
    assert!(kept > 0 && kept * 1024 <= LOG_LIMIT, "{kept} lines kept");
    let notice = logs.find("log output truncated").unwrap();
    let end = logs.rfind("END RequestId").expect("END line");
    assert!(notice < end, "the notice comes before END");
}

#[test]
fn a_process_function_printing_1_gib_is_cut_at_the_limit_and_the_server_stays_small() {
    let mut s = Server::start("flood-process");
    s.deploy(&fixture("flood"));
    assert_eq!(s.invoke_json("flood", r#"{"mb": 1}"#)["wrote_mb"], 1);
    // The database as it is before the flood: a clean stop folds the WAL in.
    assert!(s.terminate().success());
    let db_before = db_bytes(&s.data_dir);
    s.restart();
    // Another function keeps answering throughout.
    s.deploy(&fixture("attacks"));
    let victim = Victim::start(&s);
    // Warm (an instance), nearly silent.
    assert_eq!(s.invoke_json("flood", r#"{"mb": 0}"#)["wrote_mb"], 0);
    let hwm_before = vm_hwm_kb(s.pid());

    let started = Instant::now();
    assert_eq!(s.invoke_json("flood", r#"{"mb": 1024}"#)["wrote_mb"], 1024);
    let grew_kb = vm_hwm_kb(s.pid()) - hwm_before;
    eprintln!(
        "1 GiB flood: {:?}, server peak memory grew by {grew_kb} KiB",
        started.elapsed()
    );
    assert!(grew_kb < 100 << 10, "the server grew by {grew_kb} KiB");

    let logs = s.ok(&["logs", "flood"]);
    // The two small runs logged everything and were not cut.
    assert_eq!(logs.matches("flood-done").count(), 2);
    assert_flood_logged(after_last_done(&logs));
    let victim_calls = victim.finish();

    assert!(s.terminate().success());
    assert!(!s.data_dir.join("updraft.db-wal").exists());
    let grew = db_bytes(&s.data_dir).saturating_sub(db_before);
    eprintln!("the database grew by {grew} bytes ({victim_calls} calls of the victim)");
    // SQLite packs three 1 KiB lines into a 4 KiB page: about 1.3 × the text.
    // The victim's calls, as many as the server answered meanwhile, add
    // their records and START / END / REPORT lines: well under 2 KiB each.
    let victims = victim_calls * 2048;
    assert!(
        grew <= LOG_LIMIT + LOG_LIMIT / 2 + victims,
        "the database grew by {grew} bytes for a {LOG_LIMIT}-byte log limit \
         and {victim_calls} calls of the victim"
    );
}

#[test]
fn a_wasm_guest_printing_1_gib_is_cut_at_the_limit_and_the_server_stays_small() {
    let s = Server::start("flood-wasm");
    s.deploy(&fixture("flood"));
    // Another function keeps answering throughout.
    s.deploy(&fixture("attacks"));
    let victim = Victim::start(&s);
    let flood = |mb: u32| get(&format!("{}/fn/wasm-flood/flood?mb={mb}", s.endpoint));
    // Warm: the guest's own memory lives in the server process.
    assert_eq!(flood(1), (200, "flooded 1".to_string()));
    let hwm_before = vm_hwm_kb(s.pid());

    let started = Instant::now();
    assert_eq!(flood(1024), (200, "flooded 1024".to_string()));
    let grew_kb = vm_hwm_kb(s.pid()) - hwm_before;
    eprintln!(
        "1 GiB wasm flood: {:?}, server peak memory grew by {grew_kb} KiB",
        started.elapsed()
    );
    assert!(grew_kb < 100 << 10, "the server grew by {grew_kb} KiB");

    let logs = s.ok(&["logs", "wasm-flood"]);
    // The warm-up printed "flood-done" within its limit; the flood did not get there.
    assert_eq!(logs.matches("flood-done").count(), 1);
    assert_flood_logged(after_last_done(&logs));
    victim.finish();
}

/// A tmpfs of `size` mounted for one test; unmounted when dropped.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    /// None (the test is skipped) where mounting is not allowed, except
    /// under CI, where every test must run.
    fn mount(name: &str, size: &str) -> Option<Tmpfs> {
        let dir = scratch(name).join("disk");
        std::fs::create_dir_all(&dir).unwrap();
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(&dir)
            .output()
            .expect("run mount");
        let why = stderr(&out);
        if !require(
            out.status.success(),
            &format!("to mount a tmpfs (as root); mount said: {why}"),
        ) {
            return None;
        }
        Some(Tmpfs { dir })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: instances may still be exiting.
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// Fills the file system under `dir` with `dir/filler` until it refuses.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    for chunk in [1 << 20, 4096, 1] {
        let buf = vec![0u8; chunk];
        while f.write_all(&buf).is_ok() {}
    }
    path
}

fn healthz(s: &Server) -> (u16, String) {
    get(&format!("{}/healthz", s.endpoint))
}

#[test]
fn a_full_disk_fails_writes_clearly_and_they_work_again_once_space_is_back() {
    let Some(disk) = Tmpfs::mount("full-disk", "64m") else {
        return;
    };
    // The server is stopped before the tmpfs goes.
    let s = Server::start_in(disk.dir.join("data"), &[]);
    s.deploy(&fixture("py"));
    assert_eq!(
        s.invoke_json("echo", "{}")["context"]["function_name"],
        "echo"
    );
    assert_eq!(healthz(&s).0, 200);

    let filler = fill(&disk.dir);
    // An event that cannot be stored is refused (not accepted), naming why.
    let out = s.cli(&["invoke", "echo", "--async"]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("database or disk is full") && stderr(&out).contains("HTTP 503"),
        "{}",
        stderr(&out)
    );
    // The same through the Lambda API.
    let (status, _, body) = http(
        "POST",
        &format!("{}/2015-03-31/functions/echo/invocations", s.endpoint),
        &[
            ("authorization", &s.bearer()),
            ("x-amz-invocation-type", "Event"),
        ],
        b"{}".to_vec(),
    );
    let body = String::from_utf8_lossy(&body);
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("database or disk is full"), "{body}");
    // /healthz's probe answer stands for a second.
    let mut body = String::new();
    wait_until("/healthz says 503", Duration::from_secs(30), || {
        let (status, text) = healthz(&s);
        body = text;
        status == 503
    });
    assert!(body.contains("database or disk is full"), "{body}");
    // Reads still work.
    assert!(s.ok(&["ls"]).contains("echo"));

    std::fs::remove_file(&filler).unwrap();
    wait_until("/healthz says 200 again", Duration::from_secs(30), || {
        healthz(&s).0 == 200
    });
    // Every later write succeeds, and every accepted event runs.
    let ids: Vec<String> = (0..5)
        .map(|_| s.ok(&["invoke", "echo", "--async"]).trim().to_string())
        .collect();
    assert_eq!(
        s.invoke_json("echo", "{}")["context"]["function_name"],
        "echo"
    );
    wait_until("every accepted event ran", Duration::from_secs(60), || {
        let logs = s.ok(&["logs", "echo"]);
        ids.iter()
            .all(|id| logs.contains(&format!("echo-log {id}")))
    });
    s.deploy(&fixture("async"));
    drop(s);
}

/// Runs `updraft ARGS` that must exit by itself (bounded); its output.
fn run_to_exit(args: &[&str]) -> std::process::Output {
    let mut child = Command::new(BIN)
        .args(args)
        .env("UPDRAFT_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_exit(
        &mut child,
        &format!("updraft {args:?} to exit"),
        Duration::from_secs(30),
    );
    child.wait_with_output().unwrap()
}

#[test]
fn a_second_server_on_a_data_dir_in_use_is_refused_and_the_first_keeps_serving() {
    let app = scratch("lock");
    let s = Server::start_in(app.join(".updraft"), &[]);
    s.deploy(&fixture("py"));
    assert_eq!(
        s.invoke_json("echo", "{}")["context"]["function_name"],
        "echo"
    );
    let instances = instance_pids(&s.data_dir);
    assert!(!instances.is_empty());

    let data_dir = s.data_dir.canonicalize().unwrap();
    let data = data_dir.to_str().unwrap();
    let second = run_to_exit(&["server", "--listen", "127.0.0.1:0", "--data-dir", data]);
    let dev = run_to_exit(&["dev", app.to_str().unwrap(), "--listen", "127.0.0.1:0"]);
    for (what, out) in [("server", second), ("dev", dev)] {
        assert_eq!(out.status.code(), Some(1), "{what}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains(data) && err.contains(&format!("process {}", s.pid())),
            "{what} must name the data dir and the pid holding it: {err}"
        );
    }
    // The refused servers touched nothing: the first one's instance lives
    // and it keeps answering.
    assert!(instances.iter().all(|p| pid_alive(*p)));
    assert_eq!(healthz(&s).0, 200);
    assert_eq!(
        s.invoke_json("echo", "{}")["context"]["function_name"],
        "echo"
    );
}
