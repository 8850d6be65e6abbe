//! Reads an instance's stdout and stderr (one pipe, so their order holds) and
//! writes each line to the log sink under the request id running at the time.
//! A flush barrier lets an invocation collect every line written before its
//! response, so END and REPORT come after the function's own lines.
//!
//! Each invocation may log up to the sink's per-invocation limit; past it the
//! pipe is still drained (the function never stalls on a full pipe) but the
//! output is only counted, and one line at the end of the invocation says how
//! much was dropped.

use std::io;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex, OnceLock};
use tokio::net::unix::pipe;
use updraft_core::lines;
use updraft_core::logs::{LineSplitter, LogBudget};
use updraft_core::LogSink;

/// Bytes read per wake-up before other work (a flush, other tasks) gets a turn.
const READ_SLICE: usize = 1 << 20;

/// The instance's handle on its output reader.
pub struct Output {
    state: Arc<Mutex<State>>,
}

impl Output {
    /// Starts reading `fd` until end of file.
    pub fn spawn(
        fd: OwnedFd,
        function: String,
        request_id: &str,
        logs: Arc<dyn LogSink>,
    ) -> io::Result<Output> {
        // tokio's reads answer from its cached readiness, which lags behind
        // the pipe; a flush reads through a second handle on the same pipe
        // to see everything written before it.
        let direct = std::fs::File::from(fd.try_clone()?);
        let rx = pipe::Receiver::from_owned_fd(fd)?;
        let limit = logs.invocation_log_limit();
        let state = Arc::new(Mutex::new(State {
            direct,
            buf: vec![0u8; 64 * 1024],
            function,
            current: request_id.to_string(),
            logs,
            lines: LineSplitter::default(),
            budget_for: request_id.to_string(),
            budget: LogBudget::new(limit),
            limit,
        }));
        tokio::spawn(read_until_end(rx, state.clone()));
        Ok(Output { state })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn set_request(&self, request_id: &str) {
        self.state().current = request_id.to_string();
    }

    /// Returns once every byte written to the pipe before this call is logged
    /// (or the pipe is closed). It reads the pipe itself, on the caller's
    /// task: an invocation's end costs no round trip through the reader.
    pub fn flush(&self) {
        let mut st = self.state();
        // Whatever was written before the flush is in the pipe, which holds
        // at most its capacity: reading that much is enough, and a function
        // that keeps writing cannot hold the invocation up.
        st.read(None, pipe_capacity_bound());
        st.finish_request();
    }
}

/// What a read of the pipe ended with.
#[derive(PartialEq, Eq)]
enum Read {
    /// Nothing more to read now.
    Empty,
    /// The slice's limit was reached; there may be more.
    More,
    Eof,
}

/// Reads the pipe as output arrives, until end of file.
async fn read_until_end(rx: pipe::Receiver, state: Arc<Mutex<State>>) {
    loop {
        if rx.readable().await.is_err() {
            break;
        }
        let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
        if st.read(Some(&rx), READ_SLICE) == Read::Eof {
            break;
        }
    }
    state
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .finish_request();
}

/// The reader's state, shared by the task that follows the pipe and the
/// flushes of invocations ending.
struct State {
    /// The same pipe, read with plain (non-blocking) reads.
    direct: std::fs::File,
    buf: Vec<u8>,
    function: String,
    /// The request id output is attributed to now.
    current: String,
    logs: Arc<dyn LogSink>,
    lines: LineSplitter,
    /// The request id `budget` (and `lines`) belong to.
    budget_for: String,
    budget: LogBudget,
    limit: u64,
}

impl State {
    /// Reads what is available now, up to `limit` bytes: through tokio's
    /// handle `rx` (which clears its readiness when the pipe is empty) or,
    /// without it, with plain reads that see what tokio has not been told
    /// of yet.
    fn read(&mut self, rx: Option<&pipe::Receiver>, limit: usize) -> Read {
        use std::io::Read as _;
        let mut buf = std::mem::take(&mut self.buf);
        let mut total = 0;
        let end = loop {
            if total >= limit {
                break Read::More;
            }
            let got = match rx {
                Some(rx) => rx.try_read(&mut buf),
                None => (&self.direct).read(&mut buf),
            };
            match got {
                Ok(0) => break Read::Eof,
                Ok(n) => {
                    total += n;
                    self.take(&buf[..n]);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break Read::Empty,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break Read::Eof,
            }
        };
        self.buf = buf;
        end
    }

    /// Logs `bytes` under the current request, within its budget.
    fn take(&mut self, bytes: &[u8]) {
        self.follow_request();
        let (function, logs, budget_for) = (&self.function, &self.logs, &self.budget_for);
        lines::feed(&mut self.lines, &mut self.budget, bytes, |line| {
            logs.emit(function, budget_for, line)
        });
    }

    /// A new request starts with a budget of its own.
    fn follow_request(&mut self) {
        if self.current == self.budget_for {
            return;
        }
        self.finish_request();
        self.budget_for = self.current.clone();
        self.budget = LogBudget::new(self.limit);
    }

    /// Logs the request's unfinished last line, then what was dropped.
    fn finish_request(&mut self) {
        let (function, logs, budget_for) = (&self.function, &self.logs, &self.budget_for);
        lines::finish(&mut self.lines, &mut self.budget, |line| {
            logs.emit(function, budget_for, line)
        });
        if let Some(notice) = self.budget.take_notice() {
            logs.emit(function, budget_for, notice);
        }
    }
}

/// The most a pipe can hold: its owner may raise the capacity up to
/// `/proc/sys/fs/pipe-max-size` (1 MiB by default).
fn pipe_capacity_bound() -> usize {
    static BOUND: OnceLock<usize> = OnceLock::new();
    *BOUND.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/fs/pipe-max-size")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(1 << 20)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[derive(Default)]
    struct Lines {
        lines: Mutex<Vec<(String, String)>>,
        limit: u64,
    }
    impl LogSink for Lines {
        fn emit(&self, _function: &str, request_id: &str, text: String) {
            self.lines
                .lock()
                .unwrap()
                .push((request_id.to_string(), text));
        }
        fn invocation_log_limit(&self) -> u64 {
            self.limit
        }
    }

    fn pipe() -> (OwnedFd, std::fs::File) {
        let (r, w) = std::io::pipe().unwrap();
        (OwnedFd::from(r), std::fs::File::from(OwnedFd::from(w)))
    }

    #[tokio::test]
    async fn a_flood_is_drained_cut_at_the_limit_and_reported_once_per_request() {
        let sink = Arc::new(Lines {
            limit: 10_000,
            ..Default::default()
        });
        let (r, mut w) = pipe();
        let out = Output::spawn(r, "f".into(), "r1", sink.clone()).unwrap();
        // 8 MB in 1 KB lines from another thread: the writer must never stall.
        let writer = std::thread::spawn(move || {
            let line = [b'x'; 1023];
            for _ in 0..8192 {
                w.write_all(&line).unwrap();
                w.write_all(b"\n").unwrap();
            }
            w
        });
        let mut w = tokio::task::spawn_blocking(move || writer.join().unwrap())
            .await
            .unwrap();
        out.flush();
        out.set_request("r2");
        w.write_all(b"short\n").unwrap();
        drop(w);
        out.flush();

        let got = sink.lines.lock().unwrap().clone();
        let r1: Vec<&String> = got
            .iter()
            .filter(|(r, _)| r == "r1")
            .map(|(_, t)| t)
            .collect();
        // 10,000 bytes hold 8 lines of 1,024 (with the newline) + 128.
        assert_eq!(r1.len(), 9, "{:?}", &r1[8..]);
        assert!(r1[..8].iter().all(|t| t.len() == 1023));
        let dropped = (8192 - 8) * 1024;
        assert!(
            r1[8].contains(&format!("{dropped} bytes of output were dropped")),
            "{}",
            r1[8]
        );
        let r2: Vec<&String> = got
            .iter()
            .filter(|(r, _)| r == "r2")
            .map(|(_, t)| t)
            .collect();
        assert_eq!(r2, ["short"], "the next request has a budget of its own");
    }

    #[tokio::test]
    async fn flush_returns_while_the_function_keeps_writing() {
        let sink = Arc::new(Lines {
            limit: 1 << 20,
            ..Default::default()
        });
        let (r, mut w) = pipe();
        let out = Output::spawn(r, "f".into(), "r1", sink.clone()).unwrap();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let chunk = [b'y'; 4096];
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    if w.write_all(&chunk).is_err() {
                        break;
                    }
                }
            })
        };
        for _ in 0..20 {
            out.flush();
        }
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        drop(out);
        tokio::task::spawn_blocking(move || writer.join().unwrap())
            .await
            .unwrap();
    }
}
