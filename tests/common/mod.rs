//! Drives the real `updraft` binary: a server on an ephemeral loopback port
//! with its own data directory, and the CLI pointed at it.

#![allow(dead_code)]

mod apps;
pub mod aws;
mod sink;
#[allow(unused_imports)]
pub use apps::{write_event_app, EventFn};
#[allow(unused_imports)]
pub use sink::{wait_for, Sink};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_updraft");

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixture(name: &str) -> PathBuf {
    repo().join("tests/fixtures").join(name)
}

/// A fresh directory under target/tmp, or /var/tmp when the checkout lives
/// under /tmp: a data dir under /tmp would turn off instances' private /tmp.
pub fn scratch(name: &str) -> PathBuf {
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let base = if base.starts_with("/tmp") {
        PathBuf::from("/var/tmp/updraft-e2e")
    } else {
        base.join("e2e")
    };
    let dir = base.join(format!("{name}-{}-{}", std::process::id(), uuid_like()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{:x}{}", t % 0xffff_ffff, N.fetch_add(1, Ordering::SeqCst))
}

pub struct Server {
    pub child: Option<Child>,
    pub data_dir: PathBuf,
    /// What the server printed before it listened.
    pub startup: Vec<String>,
    pub endpoint: String,
    pub addr: String,
    stderr: mpsc::Receiver<String>,
    extra_env: Vec<(String, String)>,
}

impl Server {
    pub fn start(name: &str) -> Server {
        Self::start_in(scratch(name), &[])
    }

    /// Starts the server on `data_dir` and waits for its "listening" line.
    pub fn start_in(data_dir: PathBuf, env: &[(&str, &str)]) -> Server {
        Self::start_with(data_dir, env, &[])
    }

    /// Starts the server with extra `server` flags.
    pub fn start_with(data_dir: PathBuf, env: &[(&str, &str)], flags: &[&str]) -> Server {
        tls_provider();
        let mut cmd = Command::new(BIN);
        cmd.args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data_dir)
            .args(flags)
            .env_remove("UPDRAFT_ACCESS_KEY_ID")
            .env_remove("UPDRAFT_SECRET_ACCESS_KEY")
            .env("UPDRAFT_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // Compiled wasm components are shared between the tests' servers, so
        // each component compiles once per test run (a test may pass its own).
        cmd.env(
            "UPDRAFT_WASM_CACHE_DIR",
            PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("wasm-cache"),
        );
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn updraft server");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[server] {line}");
                if tx.send(line).is_err() {
                    // Keep draining so the server never blocks on a full pipe.
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut startup = Vec::new();
        let (scheme, addr) = loop {
            let line = rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .expect("server did not start");
            startup.push(line.clone());
            let listening = line.split(" listening on ").nth(1);
            if let Some((scheme, rest)) = listening.and_then(|r| r.split_once("://")) {
                let addr = rest.split_whitespace().next().unwrap().to_string();
                break (scheme.to_string(), addr);
            }
        };
        Server {
            child: Some(child),
            endpoint: format!("{scheme}://{addr}"),
            addr,
            data_dir,
            startup,
            stderr: rx,
            extra_env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    /// Runs the CLI against this server.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.cli_in(args, &repo())
    }

    pub fn cli_in(&self, args: &[&str], dir: &Path) -> Output {
        self.cli_command(args)
            .current_dir(dir)
            .output()
            .expect("run updraft")
    }

    /// The CLI pointed at this server (by environment), not yet run.
    pub fn cli_command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .env("UPDRAFT_ENDPOINT", &self.endpoint)
            .env("UPDRAFT_DATA_DIR", &self.data_dir)
            .env_remove("UPDRAFT_ACCESS_KEY_ID")
            .env_remove("UPDRAFT_SECRET_ACCESS_KEY");
        cmd
    }

    /// Runs the CLI and insists on success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "updraft {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn deploy(&self, dir: &Path) -> String {
        self.ok(&["deploy", dir.to_str().unwrap()])
    }

    /// Invokes and parses the result as JSON.
    pub fn invoke_json(&self, name: &str, payload: &str) -> serde_json::Value {
        let out = self.ok(&["invoke", name, "--payload", payload]);
        serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("{name} returned non-JSON {out:?}: {e}"))
    }

    /// `Authorization: Bearer` for raw HTTP calls.
    pub fn bearer(&self) -> String {
        let text = std::fs::read_to_string(self.data_dir.join("credentials")).unwrap();
        let get = |k: &str| {
            text.lines()
                .find_map(|l| {
                    l.split_once('=')
                        .filter(|(a, _)| a.trim() == k)
                        .map(|(_, v)| v.trim().to_string())
                })
                .unwrap()
        };
        format!(
            "Bearer {}:{}",
            get("aws_access_key_id"),
            get("aws_secret_access_key")
        )
    }

    pub fn function_info(&self, name: &str) -> serde_json::Value {
        let list: serde_json::Value = serde_json::from_str(&self.ok(&["ls", "--json"])).unwrap();
        list.as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == name)
            .cloned()
            .unwrap_or(serde_json::Value::Null)
    }

    pub fn live_instances(&self, name: &str) -> u64 {
        self.function_info(name)["live_instances"]
            .as_u64()
            .unwrap_or(0)
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        // SAFETY: kill(2) on our own child has no memory-safety preconditions.
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM)
        };
        child.wait().unwrap()
    }

    pub fn kill9(&mut self) {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }

    pub fn restart(&mut self) {
        if self.child.is_some() {
            assert!(self.terminate().success(), "server did not drain cleanly");
        }
        let env: Vec<(String, String)> = self.extra_env.clone();
        let env_ref: Vec<(&str, &str)> =
            env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let new = Server::start_in(self.data_dir.clone(), &env_ref);
        *self = new;
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Whether a test can run here: true when `met`. Otherwise the test cannot
/// run: under `CI=true` (where every test must run) that is a failure naming
/// `what` it needs; elsewhere it prints "skipped: …" and returns false.
pub fn require(met: bool, what: &str) -> bool {
    if met {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "this test cannot run here (CI=true runs every test): it needs {what}"
    );
    eprintln!("skipped: this test needs {what}");
    false
}

/// Whether this process runs as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    #[allow(unsafe_code)]
    let uid = unsafe { libc::geteuid() };
    uid == 0
}

/// Waits for a condition that the system reaches on its own (instances
/// stopping); `what` names it in the failure.
pub fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits up to `limit` for `child` to exit by itself; past it, kills it and
/// fails naming `what` it was expected to do.
pub fn wait_exit(child: &mut Child, what: &str, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("timed out waiting for: {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Live instance processes of the server on `data_dir`: those carrying the
/// marker of one of its instance directories.
pub fn instance_pids(data_dir: &Path) -> Vec<i32> {
    let ids: Vec<String> = std::fs::read_dir(data_dir.join("instances"))
        .map(|d| {
            d.flatten()
                .map(|e| format!("UPDRAFT_INSTANCE_ID={}", e.file_name().to_string_lossy()))
                .collect()
        })
        .unwrap_or_default();
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) {
            if env
                .split(|&b| b == 0)
                .any(|kv| ids.iter().any(|id| kv == id.as_bytes()))
                && pid_alive(pid)
            {
                out.push(pid);
            }
        }
    }
    out
}

pub fn pid_alive(pid: i32) -> bool {
    // A zombie is dead for our purposes.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(false)
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// reqwest (rustls without a built-in provider) needs the process's
/// provider installed before any client is built, as `updraft` does.
pub fn tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// One HTTP request; returns status, headers and body.
pub fn http(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    tls_provider();
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap();
    let mut req = client
        .request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), url)
        .body(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.bytes().unwrap().to_vec())
}

pub fn get(url: &str) -> (u16, String) {
    let (s, _, b) = http("GET", url, &[], vec![]);
    (s, String::from_utf8_lossy(&b).into_owned())
}

/// The peak resident memory (VmHWM) of process `pid`, in KiB.
pub fn vm_hwm_kb(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmHWM for pid {pid}"))
}

/// Calls the victim's URL until stopped; every answer must be its own.
pub struct Victim {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    answered: std::sync::Arc<std::sync::atomic::AtomicU64>,
    thread: Option<std::thread::JoinHandle<Vec<String>>>,
}

impl Victim {
    /// Starts calling `/fn/victim` (tests/fixtures/attacks) on `s`.
    pub fn start(s: &Server) -> Victim {
        let url = format!("{}/fn/victim", s.endpoint);
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let answered = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (st, an) = (stop.clone(), answered.clone());
        let thread = std::thread::spawn(move || {
            let mut wrong = Vec::new();
            let client = reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap();
            while !st.load(std::sync::atomic::Ordering::SeqCst) {
                match client.get(&url).send() {
                    Ok(r) if r.status() == 200 => {
                        let body = r.text().unwrap_or_default();
                        if body.contains("victim-env") {
                            an.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        } else {
                            wrong.push(body);
                        }
                    }
                    Ok(r) => wrong.push(format!("status {}", r.status())),
                    Err(e) => wrong.push(e.to_string()),
                }
            }
            wrong
        });
        Victim {
            stop,
            answered,
            thread: Some(thread),
        }
    }

    /// Stops and insists that every answer was right (and there were some):
    /// how many answers there were.
    pub fn finish(mut self) -> u64 {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let wrong = self.thread.take().unwrap().join().unwrap();
        assert!(wrong.is_empty(), "the victim answered wrongly: {wrong:?}");
        let answered = self.answered.load(std::sync::atomic::Ordering::SeqCst);
        assert!(answered > 0, "the victim never answered");
        answered
    }
}

/// A fresh, empty database on the test run's PostgreSQL
/// (UPDRAFT_TEST_POSTGRES_URL, which `.ci/run` starts and sets): its URL, or
/// None when there is none (after [`require`], which fails under CI=true).
pub fn fresh_postgres_database(tag: &str) -> Option<String> {
    let Ok(base) = std::env::var("UPDRAFT_TEST_POSTGRES_URL") else {
        require(
            false,
            "PostgreSQL at UPDRAFT_TEST_POSTGRES_URL (.ci/run starts it and sets it)",
        );
        return None;
    };
    let db = format!(
        "e2e_{tag}_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
            % 1_000_000_000
    );
    let created = Command::new("psql")
        .args([&base, "-q", "-c", &format!("CREATE DATABASE {db}")])
        .status()
        .unwrap();
    assert!(created.success(), "could not create a database on {base}");
    let (prefix, _) = base.rsplit_once('/').unwrap();
    Some(format!("{prefix}/{db}"))
}
