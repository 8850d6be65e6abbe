//! `updraft dev`: deploys an app, serves it, redeploys on change, streams logs.

mod common;
use common::*;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn dev_serves_the_app_and_redeploys_on_change() {
    let dir = scratch("dev");
    let copy = Command::new("cp")
        .arg("-r")
        .arg(repo().join("examples/hello/."))
        .arg(&dir)
        .status()
        .unwrap();
    assert!(copy.success());
    let _ = std::fs::remove_dir_all(dir.join(".updraft"));
    let mut dev = Command::new(BIN)
        .args(["dev", dir.to_str().unwrap(), "--listen", "127.0.0.1:0"])
        .env("UPDRAFT_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = dev.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("[dev] {line}");
            let _ = tx.send(line);
        }
    });
    let stdout = dev.stdout.take().unwrap();
    let (otx, orx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = otx.send(line);
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
    let url = format!("http://{addr}/hello/dev");
    wait_until(
        "the app is deployed and answers",
        Duration::from_secs(60),
        || get(&url).1.contains("Hello, dev!"),
    );
    let toml = dir.join("updraft.toml");
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
        let line = orx
            .recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
            .expect("no logs streamed");
        if line.starts_with("greet ") && line.contains("REPORT RequestId") {
            break;
        }
    }
    // SAFETY: kill(2) on our own child.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(dev.id() as i32, libc::SIGINT);
    }
    assert!(dev.wait().unwrap().success());
}
