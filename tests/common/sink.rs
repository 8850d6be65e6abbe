//! A tiny HTTP sink that test functions report to (its URL travels in the
//! event or the function's environment), and polling with a deadline.

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A tiny HTTP server collecting the JSON bodies POSTed to it, each with
/// the time it arrived.
pub struct Sink {
    pub url: String,
    pub posts: Arc<Mutex<Vec<(Instant, Value)>>>,
}

impl Sink {
    pub fn start() -> Sink {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let posts = Arc::new(Mutex::new(Vec::new()));
        let p = posts.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let p = p.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(conn.try_clone().unwrap());
                    let mut len = 0usize;
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let line = line.trim_end();
                        if line.is_empty() {
                            break;
                        }
                        if let Some((k, v)) = line.split_once(':') {
                            if k.eq_ignore_ascii_case("content-length") {
                                len = v.trim().parse().unwrap_or(0);
                            }
                        }
                    }
                    let mut body = vec![0; len];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    if let Ok(v) = serde_json::from_slice::<Value>(&body) {
                        p.lock().unwrap().push((Instant::now(), v));
                    }
                    let _ = conn.write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    );
                });
            }
        });
        Sink { url, posts }
    }

    pub fn posts(&self) -> Vec<Value> {
        let posts = self.posts.lock().unwrap();
        posts.iter().map(|(_, v)| v.clone()).collect()
    }

    /// When each run of one request id by one function reported, in order.
    pub fn run_times(&self, function: &str, id: &str) -> Vec<Instant> {
        let posts = self.posts.lock().unwrap();
        posts
            .iter()
            .filter(|(_, p)| p["fn"] == function && p["id"] == id)
            .map(|(at, _)| *at)
            .collect()
    }

    /// Posts of one request id by one function.
    pub fn runs_of(&self, function: &str, id: &str) -> usize {
        self.run_times(function, id).len()
    }
}

/// Polls `f` until it gives a value; fails the test after `limit`.
pub fn wait_for<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
