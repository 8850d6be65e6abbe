//! What one request's `Store` holds: the WASI and wasi:http contexts, the
//! memory limiter, and the guest's stdout/stderr, written line by line into
//! the invocation's log within one per-invocation budget (past it, output is
//! counted and dropped, and one line says so).

use bytes::Bytes;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::AsyncWrite;
use updraft_core::lines;
use updraft_core::logs::{LineSplitter, LogBudget};
use updraft_core::LogSink;
use wasmtime::component::ResourceTable;
use wasmtime::ResourceLimiter;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

pub struct Guest {
    pub wasi: WasiCtx,
    pub http: WasiHttpCtx,
    /// Where outgoing requests may go (outbound.rs).
    pub outbound: crate::outbound::Outbound,
    pub table: ResourceTable,
    pub limits: Limits,
}

impl WasiView for Guest {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for Guest {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.outbound,
        }
    }
}

/// Memory use of one request, shared with whoever waits for its outcome.
#[derive(Default)]
pub struct MemoryUse {
    /// The most bytes of linear memory the guest held at once.
    pub peak: AtomicUsize,
    /// A growth past the limit was refused.
    pub refused: AtomicBool,
}

/// Caps the guest's linear memory (all its memories together) at `memory_mb`.
pub struct Limits {
    pub max_bytes: usize,
    pub used: usize,
    pub stats: Arc<MemoryUse>,
}

impl ResourceLimiter for Limits {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let after = self.used - current.min(self.used) + desired;
        if after > self.max_bytes {
            self.stats.refused.store(true, Ordering::SeqCst);
            return Ok(false);
        }
        self.used = after;
        self.stats.peak.fetch_max(after, Ordering::SeqCst);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Table elements are pointers: bound them like memory.
        Ok(desired.saturating_mul(8) <= self.max_bytes)
    }
}

/// One request's stdout and stderr; they share one log budget.
pub struct GuestOutput {
    pub stdout: LogStream,
    pub stderr: LogStream,
    shared: Arc<Shared>,
}

/// What both streams of one request share.
struct Shared {
    function: String,
    request_id: String,
    logs: Arc<dyn LogSink>,
    budget: Mutex<LogBudget>,
}

impl GuestOutput {
    pub fn new(function: &str, request_id: &str, logs: Arc<dyn LogSink>) -> GuestOutput {
        let limit = logs.invocation_log_limit();
        let shared = Arc::new(Shared {
            function: function.to_string(),
            request_id: request_id.to_string(),
            logs,
            budget: Mutex::new(LogBudget::new(limit)),
        });
        let stream = || LogStream {
            shared: shared.clone(),
            lines: Arc::new(Mutex::new(LineSplitter::default())),
        };
        GuestOutput {
            stdout: stream(),
            stderr: stream(),
            shared: shared.clone(),
        }
    }

    /// Logs both streams' unfinished last lines, then what was dropped.
    pub fn finish(&self) {
        self.stdout.finish();
        self.stderr.finish();
        let notice = self.shared.budget().take_notice();
        if let Some(notice) = notice {
            self.shared.emit(notice);
        }
    }
}

impl Shared {
    fn budget(&self) -> std::sync::MutexGuard<'_, LogBudget> {
        self.budget.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn emit(&self, text: String) {
        self.logs.emit(&self.function, &self.request_id, text);
    }
}

/// The guest's stdout or stderr: complete lines go to the log as they come,
/// within the request's budget.
#[derive(Clone)]
pub struct LogStream {
    shared: Arc<Shared>,
    lines: Arc<Mutex<LineSplitter>>,
}

impl LogStream {
    fn write_bytes(&self, bytes: &[u8]) {
        let mut lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        let mut budget = self.shared.budget();
        lines::feed(&mut lines, &mut budget, bytes, |line| {
            self.shared.emit(line)
        });
    }

    fn finish(&self) {
        let mut lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        let mut budget = self.shared.budget();
        lines::finish(&mut lines, &mut budget, |line| self.shared.emit(line));
    }
}

impl IsTerminal for LogStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogStream {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for LogStream {
    async fn ready(&mut self) {}
}

impl OutputStream for LogStream {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.write_bytes(&bytes);
        Ok(())
    }
    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }
    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(1024 * 1024)
    }
}

impl AsyncWrite for LogStream {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.write_bytes(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            if self.limit == 0 {
                u64::MAX
            } else {
                self.limit
            }
        }
    }

    #[test]
    fn output_becomes_lines_under_the_request_id() {
        let sink = Arc::new(Lines::default());
        let out = GuestOutput::new("f", "r1", sink.clone());
        out.stdout.write_bytes(b"one\ntw");
        out.stdout.write_bytes(b"o\r\nthree");
        out.finish();
        let got = sink.lines.lock().unwrap().clone();
        let texts: Vec<&str> = got.iter().map(|(_, t)| t.as_str()).collect();
        assert_eq!(texts, ["one", "two", "three"]);
        assert!(got.iter().all(|(r, _)| r == "r1"));
    }

    #[test]
    fn stdout_and_stderr_share_one_budget_and_the_cut_is_reported() {
        let sink = Arc::new(Lines {
            limit: 4 * (100 + updraft_core::logs::LINE_COST),
            ..Default::default()
        });
        let out = GuestOutput::new("f", "r1", sink.clone());
        let line = [vec![b'o'; 99], vec![b'\n']].concat();
        let eline = [vec![b'e'; 99], vec![b'\n']].concat();
        for _ in 0..2 {
            out.stdout.write_bytes(&line);
            out.stderr.write_bytes(&eline);
        }
        // The budget is spent: a flood is only counted.
        for _ in 0..10_000 {
            out.stdout.write_bytes(&[b'x'; 1000]);
            out.stderr.write_bytes(b"y\n");
        }
        out.finish();
        let got = sink.lines.lock().unwrap().clone();
        assert_eq!(got.len(), 5, "{got:?}");
        assert_eq!(got.iter().filter(|(_, t)| t.len() == 99).count(), 4);
        assert!(
            got[4].1.contains("10020000 bytes of output were dropped"),
            "{}",
            got[4].1
        );
    }

    #[test]
    fn memory_past_the_limit_is_refused_and_noted() {
        let stats = Arc::new(MemoryUse::default());
        let mut l = Limits {
            max_bytes: 10 << 20,
            used: 0,
            stats: stats.clone(),
        };
        assert!(l.memory_growing(0, 4 << 20, None).unwrap());
        assert!(l.memory_growing(0, 4 << 20, None).unwrap());
        assert!(!l.memory_growing(4 << 20, 8 << 20, None).unwrap());
        assert!(stats.refused.load(Ordering::SeqCst));
        assert_eq!(stats.peak.load(Ordering::SeqCst), 8 << 20);
    }
}
