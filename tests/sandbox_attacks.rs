//! Functions attacking the sandbox (tests/fixtures/attacks): every attempt is
//! bounded in time and count, runs on loopback only, and must fail, while a
//! victim function keeps answering correctly the whole time. Needs root (CI
//! runs as root); elsewhere it fails under CI=true and is skipped otherwise.

mod common;

use common::*;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

fn root() -> bool {
    require(is_root(), "root: the sandbox attacks need strict isolation")
}

fn attack(s: &Server, payload: Value) -> Value {
    s.invoke_json("attacker", &payload.to_string())
}

fn failed(v: &Value) -> bool {
    v["ok"] == false
}

/// Whether the instance that answered `whoami` was forked from the python3
/// template process (`zygote.py`) rather than started by exec.
fn forked_from_template(who: &Value) -> bool {
    who["argv"].as_array().is_some_and(|a| {
        a.iter()
            .any(|x| x.as_str().is_some_and(|x| x.ends_with("zygote.py")))
    })
}

fn setup(name: &str) -> Option<(Server, Victim)> {
    if !root() {
        return None;
    }
    let s = Server::start(name);
    s.deploy(&fixture("attacks"));
    let v = Victim::start(&s);
    Some((s, v))
}

#[test]
fn functions_cannot_write_their_code_chown_or_reach_host_files() {
    let Some((s, victim)) = setup("atk-code") else {
        return;
    };
    let who = attack(&s, json!({"attack": "whoami"}));
    assert_eq!(who["task_root"], "/var/task", "{who}");
    assert_eq!(who["cwd"], "/var/task", "{who}");
    assert_eq!(who["runtime_api"], "127.0.0.1:9001", "{who}");
    assert_ne!(who["uid"], 0, "{who}");
    assert_eq!(who["status"]["NoNewPrivs"], "1", "{who}");
    assert_eq!(who["status"]["Seccomp"], "2", "{who}");
    assert_eq!(who["status"]["CapEff"], "0000000000000000", "{who}");
    // All of that on an instance forked from the python3 template process.
    assert!(forked_from_template(&who), "{who}");

    // Redeploys while the function tries to plant files and links in its
    // code: the code is the server's, published by rename from a staging
    // directory no function can see.
    let data = s.data_dir.canonicalize().unwrap();
    let guard = data.join("guard-file");
    std::fs::write(&guard, "root's").unwrap();
    let app = scratch("atk-app");
    std::fs::create_dir_all(app.join("src")).unwrap();
    for f in ["updraft.toml", "src/attack.py", "src/victim.py"] {
        std::fs::copy(fixture("attacks").join(f), app.join(f)).unwrap();
    }
    for round in 0..3 {
        std::fs::write(app.join("src/round.py"), format!("ROUND = {round}\n")).unwrap();
        let deploy = std::thread::spawn({
            let app = app.clone();
            let endpoint = s.endpoint.clone();
            let data_dir = s.data_dir.clone();
            move || {
                std::process::Command::new(BIN)
                    .args(["deploy", app.to_str().unwrap()])
                    .env("UPDRAFT_ENDPOINT", endpoint)
                    .env("UPDRAFT_DATA_DIR", data_dir)
                    .env_remove("UPDRAFT_ACCESS_KEY_ID")
                    .env_remove("UPDRAFT_SECRET_ACCESS_KEY")
                    .output()
                    .unwrap()
            }
        });
        let v = attack(
            &s,
            json!({"attack": "write_code", "host_paths": [
                guard.to_str().unwrap(),
                data.join("code").to_str().unwrap(),
                data.join("staging").to_str().unwrap(),
            ]}),
        );
        assert!(deploy.join().unwrap().status.success());
        for (k, r) in v.as_object().unwrap() {
            assert!(failed(r), "{k} must fail: {v}");
        }
    }
    assert_eq!(std::fs::read_to_string(&guard).unwrap(), "root's");
    {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(&guard).unwrap();
        assert_eq!((m.uid(), m.gid()), (0, 0));
        // Every published code file belongs to the server and is read-only to others.
        for e in walk(&data.join("code")) {
            let m = std::fs::symlink_metadata(&e).unwrap();
            assert_eq!(m.uid(), 0, "{}", e.display());
            assert!(!m.file_type().is_symlink(), "{}", e.display());
            assert_eq!(m.mode() & 0o022, 0, "{} is writable by others", e.display());
        }
    }

    // The server's files are not in the function's world at all.
    let paths = [
        data.join("credentials"),
        data.join("updraft.db"),
        data.join("code"),
        data.join("blobs"),
        "/root".into(),
        "/home".into(),
        std::env::current_dir().unwrap(),
    ];
    let v = attack(&s, json!({"attack": "read_paths", "paths": paths}));
    for p in &paths {
        assert!(
            failed(&v[p.to_str().unwrap()]),
            "{} must be out of reach: {v}",
            p.display()
        );
    }
    victim.finish();
}

/// The memory limit of the cgroup an instance's /proc/self/cgroup names
/// (v1 `memory` or v2), read on the host.
fn memory_limit(cgroup: &Value) -> u64 {
    let text = cgroup.as_str().expect("/proc/self/cgroup");
    let line = text
        .lines()
        .find(|l| {
            l.split(':')
                .nth(1)
                .is_some_and(|c| c.split(',').any(|c| c == "memory"))
        })
        .or_else(|| text.lines().find(|l| l.starts_with("0::")))
        .expect("a memory cgroup");
    let path = line.splitn(3, ':').nth(2).unwrap().trim_start_matches('/');
    let v1 = std::path::Path::new("/sys/fs/cgroup/memory")
        .join(path)
        .join("memory.limit_in_bytes");
    let file = if v1.exists() {
        v1
    } else {
        std::path::Path::new("/sys/fs/cgroup")
            .join(path)
            .join("memory.max")
    };
    std::fs::read_to_string(&file)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// Redeploys `app` until `call` is answered by an instance made from a
/// parked child of the python3 template (its cgroup, which `cgroup` picks
/// from the answer, was made for a parked child); that answer.
fn answer_from_a_parked_child(
    s: &Server,
    function: &str,
    app: &str,
    cgroup: fn(&Value) -> &Value,
    call: impl Fn() -> Value,
) -> Value {
    let mut found = None;
    wait_until(
        "an instance made from a parked child",
        Duration::from_secs(60),
        || {
            s.ok(&["rm", function]);
            s.deploy(&fixture(app));
            let v = call();
            let parked = cgroup(&v).as_str().is_some_and(|c| c.contains("/parked-"));
            if parked {
                found = Some(v);
            }
            parked
        },
    );
    found.unwrap()
}

/// A function's own uid (not root, not the victim's), no new privileges,
/// seccomp on, no capabilities.
fn assert_boxed(uid: &Value, status: &Value, victim_uid: &Value, answer: &Value) {
    assert_ne!(*uid, 0, "{answer}");
    assert_ne!(uid, victim_uid, "{answer}");
    assert_eq!(status["NoNewPrivs"], "1", "{answer}");
    assert_eq!(status["Seccomp"], "2", "{answer}");
    assert_eq!(status["CapEff"], "0000000000000000", "{answer}");
}

#[test]
fn a_parked_child_becomes_an_instance_with_its_functions_box() {
    let Some((s, victim)) = setup("atk-parked") else {
        return;
    };
    // Children of the python3 template wait, parked in a cgroup and network
    // namespace made ahead of need, to become instances: a new instance
    // (its predecessor removed with the function) is soon one of them.
    let who = answer_from_a_parked_child(
        &s,
        "attacker",
        "attacks",
        |who| &who["cgroup"],
        || attack(&s, json!({"attack": "whoami"})),
    );
    assert!(forked_from_template(&who), "{who}");
    // The function's identity and protections, as for any instance.
    assert_boxed(&who["uid"], &who["status"], &victim_uid(&s), &who);
    assert_eq!(who["task_root"], "/var/task", "{who}");
    assert_eq!(who["runtime_api"], "127.0.0.1:9001", "{who}");
    // Its cgroup carries the function's memory_mb (1,024), set when the
    // parked child became this instance.
    assert_eq!(memory_limit(&who["cgroup"]), 1024 << 20, "{who}");
    // And it is bounded by it: a child allocating past it is stopped.
    assert_a_child_past_memory_mb_is_stopped(&s);
    // Its /tmp is its own.
    let v = attack(&s, json!({"attack": "shared_dirs", "mark": "parked"}));
    assert!(v["/tmp"]["write"]["ok"] == true, "{v}");
    assert!(!std::path::Path::new("/tmp/mark-parked").exists());
    victim.finish();
}

#[test]
fn nodejs_instances_exec_from_a_parked_child_in_their_own_box() {
    let Some((s, victim)) = setup("atk-parked-exec") else {
        return;
    };
    // Other runtimes' instances start from the python3 template's parked
    // children too: the child boxes itself, then execs node.
    s.deploy(&fixture("node"));
    let v = answer_from_a_parked_child(
        &s,
        "node-echo",
        "node",
        |v| &v["box"]["cgroup"],
        || s.invoke_json("node-echo", r#"{"n": 1}"#),
    );
    assert_eq!(v["event"]["n"], 1, "{v}");
    assert_eq!(v["env"]["hostSecretVisible"], false, "{v}");
    assert_boxed(&v["box"]["uid"], &v["box"]["status"], &victim_uid(&s), &v);
    assert_eq!(memory_limit(&v["box"]["cgroup"]), 128 << 20, "{v}");
    victim.finish();
}

/// The attacker's child allocating 1,600 MB, past its memory_mb (1,024),
/// is stopped before it reports the allocation done.
fn assert_a_child_past_memory_mb_is_stopped(s: &Server) {
    let out = s.cli(&[
        "invoke",
        "attacker",
        "--payload",
        &json!({"attack": "child_memory", "mb": 1600}).to_string(),
    ]);
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        !text.contains("allocated")
            && (text.contains("OutOfMemory")
                || text.contains("\"returncode\": -9")
                || text.contains("\"returncode\":-9")),
        "{text}"
    );
}

fn victim_uid(s: &Server) -> Value {
    s.invoke_json("victim", "{}")["uid"].clone()
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() && !p.is_symlink() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// The uid the server gave functions before round 2: FNV-1a of the name.
fn old_hash_uid(name: &str) -> u32 {
    let mut h: u32 = 0x811c9dc5;
    for b in name.bytes() {
        h ^= b as u32;
        h = h.wrapping_mul(0x01000193);
    }
    2_000_000 + h % 1_000_000
}

#[test]
fn a_colliding_name_gets_its_own_uid_and_nothing_of_the_other() {
    let Some((s, victim)) = setup("atk-collide") else {
        return;
    };
    // A name whose old uid equals the victim's.
    let target = old_hash_uid("victim");
    let twin = (0u64..)
        .map(|i| format!("v{i}"))
        .find(|n| old_hash_uid(n) == target)
        .unwrap();
    let dir = scratch("atk-twin");
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::copy(
        fixture("attacks").join("src/attack.py"),
        dir.join("src/attack.py"),
    )
    .unwrap();
    std::fs::write(
        dir.join("updraft.toml"),
        format!("[app]\nname = \"twin\"\n\n[functions.{twin}]\nruntime = \"python3\"\nhandler = \"attack.handler\"\ncode = \"src\"\n"),
    )
    .unwrap();
    s.deploy(&dir);
    let victim_uid = s.invoke_json("victim", "{}")["uid"].clone();
    let twin_who = s.invoke_json(&twin, &json!({"attack": "whoami"}).to_string());
    assert_ne!(
        twin_who["uid"], victim_uid,
        "{twin} shares the victim's uid"
    );
    // The twin's world has its own code only; the victim's code and
    // environment are nowhere in it.
    let v = s.invoke_json(
        &twin,
        &json!({"attack": "read_paths", "paths": ["/var/task", "/proc/1/environ"]}).to_string(),
    );
    let listing = v["/var/task"]["value"].to_string();
    assert!(!listing.contains("victim.py"), "{v}");
    assert!(
        !v["/proc/1/environ"].to_string().contains("victim-env"),
        "{v}"
    );
    victim.finish();
}

#[test]
fn instances_see_no_host_or_sibling_processes_tmp_or_runtime_api() {
    let Some((s, victim)) = setup("atk-procs") else {
        return;
    };
    let server_pid = s.pid();
    let v = attack(&s, json!({"attack": "processes", "pid": server_pid}));
    // Its own PID namespace: the runtime is PID 1, and the server is not there.
    let pids: Vec<i64> = v["pids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_i64().unwrap())
        .collect();
    assert!(pids.contains(&1), "{v}");
    assert!(
        !pids.contains(&(server_pid as i64)) || server_pid < 10,
        "{v}"
    );
    assert!(pids.len() < 10, "host processes are visible: {v}");
    for k in [
        "kill0",
        "kill_term",
        "ptrace",
        "ptrace_any",
        "unshare_user",
        "mount",
    ] {
        assert_eq!(v[k]["ok"], false, "{k} must fail: {v}");
    }
    assert!(common::pid_alive(server_pid));

    // Nothing of the python3 template crosses into the instance: no Unix
    // socket (the template's, a parked child's), no pipe but its log.
    let fds = attack(&s, json!({"attack": "descriptors"}));
    for (fd, e) in fds.as_object().unwrap() {
        assert_ne!(e["family"], "AF_UNIX", "fd {fd} is a Unix socket: {fds}");
        let target = e["target"].as_str().unwrap_or_default();
        if target.starts_with("pipe:") {
            assert!(fd == "1" || fd == "2", "fd {fd} is another pipe: {fds}");
        }
    }
    assert!(fds.as_object().unwrap().len() < 16, "{fds}");

    // Two instances at once: each sees its own /tmp and processes only.
    let hold = |mark: &'static str| {
        let endpoint = s.endpoint.clone();
        let data_dir = s.data_dir.clone();
        std::thread::spawn(move || {
            let out = std::process::Command::new(BIN)
                .args(["invoke", "attacker", "--payload"])
                .arg(json!({"attack": "hold", "mark": mark, "seconds": 3}).to_string())
                .env("UPDRAFT_ENDPOINT", endpoint)
                .env("UPDRAFT_DATA_DIR", data_dir)
                .env_remove("UPDRAFT_ACCESS_KEY_ID")
                .env_remove("UPDRAFT_SECRET_ACCESS_KEY")
                .output()
                .unwrap();
            serde_json::from_slice::<Value>(&out.stdout).unwrap()
        })
    };
    let (a, b) = (hold("a"), hold("b"));
    let (a, b) = (a.join().unwrap(), b.join().unwrap());
    assert_ne!(a["instance"], b["instance"], "{a} {b}");
    assert_eq!(a["seen_tmp"], json!(["hold-a"]), "{a}");
    assert_eq!(b["seen_tmp"], json!(["hold-b"]), "{b}");

    // Its Runtime API holds a bounded number of connections.
    let v = attack(&s, json!({"attack": "runtime_api_flood", "count": 200}));
    let served = v["served"].as_u64().unwrap();
    assert!(
        served <= 32,
        "more Runtime API connections served than the cap: {v}"
    );
    victim.finish();
}

#[test]
fn tmp_shm_pids_and_memory_are_bounded_and_private() {
    let Some((s, victim)) = setup("atk-limits") else {
        return;
    };
    // These instances are forked from the python3 template process: the
    // limits below are theirs all the same.
    let who = attack(&s, json!({"attack": "whoami"}));
    assert!(forked_from_template(&who), "{who}");
    // /tmp is Lambda's 512 MB and no more.
    let v = attack(&s, json!({"attack": "fill_tmp", "limit_mb": 700}));
    assert_eq!(v["error"], "ENOSPC", "{v}");
    assert!(v["written_mb"].as_u64().unwrap() <= 512, "{v}");

    // /tmp, /dev/shm and /var/tmp are the instance's own: a mark written
    // there is not on the host, and not seen by a later instance.
    let first = attack(&s, json!({"attack": "shared_dirs", "mark": "one"}));
    for d in ["/tmp", "/dev/shm", "/var/tmp"] {
        assert!(first[d]["write"]["ok"] == true, "{d}: {first}");
        assert!(
            !std::path::Path::new(d).join("mark-one").exists(),
            "{d} is the host's"
        );
    }
    // Stop every instance (rm + deploy), so the next call starts a new one.
    s.ok(&["rm", "attacker"]);
    s.deploy(&fixture("attacks"));
    let second = attack(&s, json!({"attack": "shared_dirs", "mark": "two"}));
    for d in ["/tmp", "/dev/shm", "/var/tmp"] {
        let before = second[d]["before"]["value"].to_string();
        assert!(!before.contains("mark-one"), "{d} was shared: {second}");
    }

    // A fork bomb stops at the pids limit (1,024 per instance).
    let v = attack(&s, json!({"attack": "fork_bomb", "max": 1500}));
    assert!(v["forked"].as_u64().unwrap() < 1024, "{v}");
    assert_eq!(v["error"], "EAGAIN", "{v}");

    // A child process allocating past memory_mb (1,024) is stopped.
    assert_a_child_past_memory_mb_is_stopped(&s);
    victim.finish();
}

#[test]
fn functions_cannot_reach_the_hosts_loopback() {
    let Some((s, victim)) = setup("atk-net") else {
        return;
    };
    // A loopback-only service of the host's.
    let service = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let service_addr = service.local_addr().unwrap().to_string();
    let v = attack(
        &s,
        json!({"attack": "connect", "targets": [s.addr, service_addr]}),
    );
    for t in [&s.addr, &service_addr] {
        assert!(failed(&v[t.as_str()]), "{t} must be out of reach: {v}");
    }
    service.set_nonblocking(true).unwrap();
    assert!(
        service.accept().is_err(),
        "the function reached the host's service"
    );
    victim.finish();
}

/// A "remote host" on this machine: a network namespace behind a veth in
/// 10.214.X.0/30 (the host at .1, the remote at .2), answering HTTP on
/// .2:8080 and handing over `ANNOUNCE` connections. Removed on drop.
struct RemoteHost {
    name: String,
    link: String,
    host_ip: String,
    addr: String,
    /// Who connected with HTTP (as the remote saw them).
    peers: Arc<std::sync::Mutex<Vec<std::net::SocketAddr>>>,
    announced: std::sync::mpsc::Receiver<(String, std::net::TcpStream)>,
}

fn ip(args: &[&str]) {
    let out = std::process::Command::new("ip")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl RemoteHost {
    fn start() -> RemoteHost {
        let id = std::process::id();
        let x = id % 250;
        let mut r = RemoteHost {
            name: format!("updraft-remote-{id}"),
            link: format!("rmt{}", id % 1_000_000),
            host_ip: format!("10.214.{x}.1"),
            addr: format!("10.214.{x}.2:8080"),
            peers: Default::default(),
            announced: std::sync::mpsc::channel().1,
        };
        let (name, link) = (r.name.clone(), r.link.clone());
        ip(&["netns", "add", &name]);
        ip(&[
            "link", "add", &link, "type", "veth", "peer", "name", "eth0", "netns", &name,
        ]);
        ip(&["addr", "add", &format!("{}/30", r.host_ip), "dev", &link]);
        ip(&["link", "set", &link, "up"]);
        let remote_ip = format!("10.214.{x}.2/30");
        for args in [
            vec!["addr", "add", remote_ip.as_str(), "dev", "eth0"],
            vec!["link", "set", "eth0", "up"],
            vec!["link", "set", "lo", "up"],
        ] {
            let mut full = vec!["netns", "exec", name.as_str(), "ip"];
            full.extend(args);
            ip(&full);
        }
        // Bound inside the namespace on a thread of its own (setns moves
        // only the calling thread); the socket stays there.
        let ns_path = format!("/run/netns/{name}");
        let addr = r.addr.clone();
        let listener = std::thread::spawn(move || {
            let ns = std::fs::File::open(&ns_path).unwrap();
            use std::os::fd::AsRawFd;
            // SAFETY: setns on a namespace descriptor we own; this thread ends here.
            #[allow(unsafe_code)]
            let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
            std::net::TcpListener::bind(&addr).unwrap()
        })
        .join()
        .unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        r.announced = rx;
        let peers = r.peers.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().take(64) {
                let Ok(mut conn) = conn else { continue };
                use std::io::{BufRead, Write};
                conn.set_read_timeout(Some(Duration::from_secs(10)))
                    .unwrap();
                let mut line = String::new();
                let mut reader = std::io::BufReader::new(conn.try_clone().unwrap());
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                if let Some(who) = line.strip_prefix("ANNOUNCE ") {
                    let _ = tx.send((who.trim().to_string(), conn));
                } else {
                    peers.lock().unwrap().push(conn.peer_addr().unwrap());
                    let _ = conn.write_all(b"HTTP/1.0 200 OK\r\n\r\nremote-ok");
                }
            }
        });
        r
    }
}

impl Drop for RemoteHost {
    fn drop(&mut self) {
        // The veth pair and its connected route go with the namespace.
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &self.link])
            .output();
    }
}

#[test]
fn functions_reach_the_outside_but_not_the_host_or_each_other() {
    let Some((s, victim)) = setup("atk-out") else {
        return;
    };
    let remote = RemoteHost::start();
    // Host services on every address: the server's kind of listener.
    let service = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = service.local_addr().unwrap().port();
    let local_service = format!("127.0.0.1:{port}");
    let host_side = format!("{}:{port}", remote.host_ip);
    let gateway = format!("gateway:{port}");

    // Outbound works, through NAT: the remote sees the host's address.
    let v = attack(
        &s,
        json!({"attack": "network", "targets": [remote.addr, s.addr, local_service, host_side, gateway]}),
    );
    let results = &v["results"];
    assert_eq!(
        results[remote.addr.as_str()]["value"],
        "HTTP/1.0 200 OK\r\n\r\nremote-ok",
        "the remote host must be reachable: {v}"
    );
    let peers = remote.peers.lock().unwrap().clone();
    assert!(
        !peers.is_empty() && peers.iter().all(|p| p.ip().to_string() == remote.host_ip),
        "the remote must see the host's address (NAT): {peers:?}"
    );
    // Not the host: its loopback, its own addresses, the veth's host end.
    let gw = v["gateway"].as_str().unwrap();
    assert!(gw.starts_with("10.213."), "{v}");
    let at_gateway = format!("{gw}:{port}");
    for t in [&s.addr, &local_service, &host_side, &at_gateway] {
        assert!(
            failed(&results[t.as_str()]),
            "{t} must be out of reach: {v}"
        );
    }

    // Not another instance: one listens on 0.0.0.0:7000 and announces its
    // address through the remote; a second instance tries it.
    let listener = {
        let endpoint = s.endpoint.clone();
        let data_dir = s.data_dir.clone();
        let remote_addr = remote.addr.clone();
        std::thread::spawn(move || {
            let out = std::process::Command::new(BIN)
                .args(["invoke", "attacker", "--payload"])
                .arg(json!({"attack": "listen", "port": 7000, "remote": remote_addr}).to_string())
                .env("UPDRAFT_ENDPOINT", endpoint)
                .env("UPDRAFT_DATA_DIR", data_dir)
                .env_remove("UPDRAFT_ACCESS_KEY_ID")
                .env_remove("UPDRAFT_SECRET_ACCESS_KEY")
                .output()
                .unwrap();
            serde_json::from_slice::<Value>(&out.stdout)
                .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)))
        })
    };
    let (sibling, mut control) = remote
        .announced
        .recv_timeout(Duration::from_secs(60))
        .expect("the listening instance announced itself");
    let v = attack(&s, json!({"attack": "network", "targets": [sibling]}));
    assert!(
        failed(&v["results"][sibling.as_str()]),
        "another instance must be out of reach: {v}"
    );
    use std::io::Write;
    control.write_all(b"stop\n").unwrap();
    let heard = listener.join().unwrap();
    assert_eq!(
        heard["address"].as_str(),
        sibling.split(':').next(),
        "{heard}"
    );
    assert_eq!(heard["accepted"], 0, "{heard}");

    service.set_nonblocking(true).unwrap();
    assert!(
        service.accept().is_err(),
        "the function reached the host's service"
    );
    victim.finish();
}
