//! What one request's `Store` holds: the WASI and wasi:http contexts, the
//! memory limiter, and the guest's stdout/stderr, written line by line into
//! the invocation's log.

use bytes::Bytes;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::AsyncWrite;
use updraft_core::LogSink;
use wasmtime::component::ResourceTable;
use wasmtime::ResourceLimiter;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// Longest line kept whole; longer ones are split (as the process runtime does).
const MAX_LINE: usize = 256 * 1024;

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

/// The guest's stdout or stderr: complete lines go to the log as they come.
#[derive(Clone)]
pub struct LogStream {
    inner: Arc<LogInner>,
}

struct LogInner {
    function: String,
    request_id: String,
    logs: Arc<dyn LogSink>,
    pending: Mutex<Vec<u8>>,
}

impl LogStream {
    pub fn new(function: &str, request_id: &str, logs: Arc<dyn LogSink>) -> LogStream {
        LogStream {
            inner: Arc::new(LogInner {
                function: function.to_string(),
                request_id: request_id.to_string(),
                logs,
                pending: Mutex::new(Vec::new()),
            }),
        }
    }

    fn write_bytes(&self, bytes: &[u8]) {
        let inner = &self.inner;
        let mut pending = inner.pending.lock().unwrap_or_else(|e| e.into_inner());
        pending.extend_from_slice(bytes);
        let mut start = 0;
        while let Some(pos) = pending[start..].iter().position(|b| *b == b'\n') {
            let end = start + pos;
            let line = pending[start..end]
                .strip_suffix(b"\r")
                .unwrap_or(&pending[start..end]);
            self.emit(line);
            start = end + 1;
        }
        pending.drain(..start);
        while pending.len() >= MAX_LINE {
            let rest = pending.split_off(MAX_LINE);
            self.emit(&pending);
            *pending = rest;
        }
    }

    fn emit(&self, line: &[u8]) {
        let inner = &self.inner;
        inner.logs.emit(
            &inner.function,
            &inner.request_id,
            String::from_utf8_lossy(line).into_owned(),
        );
    }

    /// Logs what is left of an unfinished last line.
    pub fn finish(&self) {
        let rest =
            std::mem::take(&mut *self.inner.pending.lock().unwrap_or_else(|e| e.into_inner()));
        if !rest.is_empty() {
            self.emit(&rest);
        }
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
    struct Lines(Mutex<Vec<(String, String)>>);
    impl LogSink for Lines {
        fn emit(&self, _function: &str, request_id: &str, text: String) {
            self.0.lock().unwrap().push((request_id.to_string(), text));
        }
    }

    #[test]
    fn output_becomes_lines_under_the_request_id() {
        let sink = Arc::new(Lines::default());
        let s = LogStream::new("f", "r1", sink.clone());
        s.write_bytes(b"one\ntw");
        s.write_bytes(b"o\r\nthree");
        s.finish();
        let got = sink.0.lock().unwrap().clone();
        let texts: Vec<&str> = got.iter().map(|(_, t)| t.as_str()).collect();
        assert_eq!(texts, ["one", "two", "three"]);
        assert!(got.iter().all(|(r, _)| r == "r1"));
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
