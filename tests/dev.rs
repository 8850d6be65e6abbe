//! `updraft dev`: deploys an app, serves it, redeploys on change, streams logs.

mod common;
use common::*;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn dev_serves_the_app_and_redeploys_on_change() {
    let mut dev = Dev::start("dev", &[]);
    let url = format!("http://{}/hello/dev", dev.addr);
    wait_until(
        "the app is deployed and answers",
        Duration::from_secs(60),
        || get(&url).1.contains("Hello, dev!"),
    );
    let toml = dev.dir.join("updraft.toml");
    let text = std::fs::read_to_string(&toml)
        .unwrap()
        .replace("GREETING = \"Hello\"", "GREETING = \"Howdy\"");
    std::fs::write(&toml, text).unwrap();
    wait_until("the change is redeployed", Duration::from_secs(60), || {
        get(&url).1.contains("Howdy, dev!")
    });
    // Function logs stream to stdout, one line per log line with the function's name.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let line = dev
            .stdout
            .recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
            .expect("no logs streamed");
        if line.starts_with("greet ") && line.contains("REPORT RequestId") {
            break;
        }
    }
    dev.signal(libc::SIGINT);
    let status = wait_exit(
        &mut dev.child,
        "dev to stop on SIGINT",
        Duration::from_secs(60),
    );
    assert!(status.success(), "{status}");
}

/// `updraft dev` run by an ordinary user, in a directory only that user can
/// enter (as home directories often are), still boxes its functions: a user
/// namespace gives them the same root, namespaces, no new privileges and
/// seccomp filter as root's instances, and they answer.
#[test]
fn an_ordinary_user_in_a_private_directory_gets_boxed_functions_that_answer() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    if !require(is_root(), "root, to run dev as an ordinary user") {
        return;
    }
    const USER: u32 = 4242;
    // Outside the checkout, which may sit where USER cannot go.
    let base = std::path::PathBuf::from(format!(
        "/var/tmp/updraft-rootless-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    let home = base.join("home");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o711)).unwrap();
    let bin = base.join("updraft");
    std::fs::copy(BIN, &bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    copy_hello(&home);
    let chown = Command::new("chown")
        .args(["-R", &format!("{USER}:{USER}")])
        .arg(&home)
        .status()
        .unwrap();
    assert!(chown.success());
    std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).unwrap();

    let mut cmd = Command::new(&bin);
    cmd.args(["dev", home.to_str().unwrap(), "--listen", "127.0.0.1:0"])
        .env("HOME", &home)
        .env("UPDRAFT_LOG", "warn")
        .env_remove("UPDRAFT_ISOLATION")
        .env_remove("UPDRAFT_DATA_DIR")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: plain system calls, allowed between fork and exec.
    #[allow(unsafe_code)]
    unsafe {
        cmd.pre_exec(|| {
            if libc::setgroups(0, std::ptr::null()) != 0
                || libc::setgid(USER) != 0
                || libc::setuid(USER) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut dev = cmd.spawn().unwrap();
    let stderr = dev.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("[dev] {line}");
            let _ = tx.send(line);
        }
    });
    let mut seen = Vec::new();
    let addr = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("dev server did not start");
        seen.push(line.clone());
        if let Some(rest) = line.split("listening on http://").nth(1) {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    let report = seen.join("\n");
    assert!(
        report.contains("on   namespaces and instance root: user (rootless)"),
        "{report}"
    );
    assert!(report.contains("on   seccomp filter"), "{report}");
    assert!(report.contains("OFF  uid per function"), "{report}");
    let url = format!("http://{addr}/hello/dev");
    wait_until(
        "the app is deployed and answers",
        Duration::from_secs(60),
        || get(&url).1.contains("Hello, dev!"),
    );
    // SAFETY: kill(2) on our own child.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(dev.id() as i32, libc::SIGINT);
    }
    let status = wait_exit(&mut dev, "dev to stop on SIGINT", Duration::from_secs(60));
    assert!(status.success(), "{status}");
    let _ = std::fs::remove_dir_all(&base);
}

/// Copies examples/hello into `dir`, without data of an earlier run.
fn copy_hello(dir: &std::path::Path) {
    let copy = Command::new("cp")
        .arg("-r")
        .arg(repo().join("examples/hello/."))
        .arg(dir)
        .status()
        .unwrap();
    assert!(copy.success());
    let _ = std::fs::remove_dir_all(dir.join(".updraft"));
}

/// A running `updraft dev` on a copy of examples/hello.
struct Dev {
    child: std::process::Child,
    addr: String,
    dir: std::path::PathBuf,
    /// dev's stdout (function logs), line by line.
    stdout: std::sync::mpsc::Receiver<String>,
}

impl Dev {
    fn start(name: &str, extra: &[&str]) -> Dev {
        let dir = scratch(name);
        copy_hello(&dir);
        let mut child = Command::new(BIN)
            .args(["dev", dir.to_str().unwrap(), "--listen", "127.0.0.1:0"])
            .args(extra)
            .env("UPDRAFT_LOG", "warn")
            .env_remove("UPDRAFT_DATA_DIR")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (otx, orx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = otx.send(line);
            }
        });
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[dev] {line}");
                let _ = tx.send(line);
            }
        });
        let addr = loop {
            let line = rx
                .recv_timeout(Duration::from_secs(60))
                .expect("dev server did not start");
            if let Some(rest) = line.split("listening on http://").nth(1) {
                break rest.split_whitespace().next().unwrap().to_string();
            }
        };
        Dev {
            child,
            addr,
            dir,
            stdout: orx,
        }
    }

    /// Sends `sig`, waits for `dev` to exit 0, and checks that its server
    /// no longer listens.
    fn stop_with(&mut self, sig: i32) {
        self.signal(sig);
        let status = self.child.wait().unwrap();
        assert!(status.success(), "dev exited with {status}");
        assert!(
            std::net::TcpStream::connect(&self.addr).is_err(),
            "the server still listens on {} after dev exited",
            self.addr
        );
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child.
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }
}

impl Drop for Dev {
    /// A failed test leaves nothing running: `dev`'s server follows it.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// SIGTERM (as `kill` or a service manager sends) stops `dev` and its
/// server together: the port is free and no instance runs once `dev` has
/// exited. The server's data go where --data-dir says.
#[test]
fn dev_stopped_by_sigterm_stops_its_server_and_instances_and_honours_data_dir() {
    let data = scratch("dev-data");
    let mut dev = Dev::start("dev-term", &["--data-dir", data.to_str().unwrap()]);
    let url = format!("http://{}/hello/term", dev.addr);
    wait_until(
        "the app is deployed and answers",
        Duration::from_secs(60),
        || get(&url).1.contains("Hello, term!"),
    );
    assert!(
        data.join("credentials").exists(),
        "no credentials in --data-dir"
    );
    assert!(
        data.join("server.lock").exists(),
        "no server lock in --data-dir"
    );
    assert!(!dev.dir.join(".updraft").exists(), "dev wrote DIR/.updraft");
    let instances = instance_pids(&data);
    assert!(
        !instances.is_empty(),
        "no instance runs after an invocation"
    );

    dev.stop_with(libc::SIGTERM);
    for pid in instances {
        assert!(!pid_alive(pid), "instance {pid} outlived dev");
    }
}

/// Closing dev's terminal (SIGHUP) stops its server too.
#[test]
fn dev_stopped_by_sighup_stops_its_server() {
    let mut dev = Dev::start("dev-hup", &[]);
    dev.stop_with(libc::SIGHUP);
}

/// `dev` killed outright (SIGKILL: no handler runs) still takes its server
/// down: the server gets SIGTERM when its parent dies, and drains.
#[test]
fn dev_killed_outright_still_stops_its_server() {
    let mut dev = Dev::start("dev-kill", &[]);
    dev.child.kill().unwrap();
    dev.child.wait().unwrap();
    wait_until(
        "the orphaned server stops listening",
        Duration::from_secs(60),
        || std::net::TcpStream::connect(&dev.addr).is_err(),
    );
}
