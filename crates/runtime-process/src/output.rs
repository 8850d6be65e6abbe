//! Reads an instance's stdout and stderr (one pipe, so their order holds) and
//! writes each line to the log sink under the request id running at the time.
//! A flush barrier lets an invocation collect every line written before its
//! response, so END and REPORT come after the function's own lines.

use std::io;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};
use tokio::net::unix::pipe;
use tokio::sync::{mpsc, oneshot};
use updraft_core::LogSink;

/// Longest line kept whole; longer ones are split, as Lambda does.
const MAX_LINE: usize = 256 * 1024;

/// The instance's handle on its output reader.
pub struct Output {
    /// The request id output is attributed to now.
    pub current: Arc<Mutex<String>>,
    flush: mpsc::Sender<oneshot::Sender<()>>,
}

impl Output {
    /// Starts reading `fd` until end of file.
    pub fn spawn(
        fd: OwnedFd,
        function: String,
        request_id: &str,
        logs: Arc<dyn LogSink>,
    ) -> io::Result<Output> {
        let rx = pipe::Receiver::from_owned_fd(fd)?;
        let current = Arc::new(Mutex::new(request_id.to_string()));
        let (flush_tx, flush_rx) = mpsc::channel(4);
        let reader = Reader {
            rx,
            function,
            current: current.clone(),
            logs,
            pending: Vec::new(),
        };
        tokio::spawn(reader.run(flush_rx));
        Ok(Output {
            current,
            flush: flush_tx,
        })
    }

    pub fn set_request(&self, request_id: &str) {
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = request_id.to_string();
    }

    /// Returns once every byte written to the pipe before this call is logged
    /// (or the pipe is closed).
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.flush.send(tx).await.is_ok() {
            let _ = rx.await;
        }
    }
}

struct Reader {
    rx: pipe::Receiver,
    function: String,
    current: Arc<Mutex<String>>,
    logs: Arc<dyn LogSink>,
    pending: Vec<u8>,
}

impl Reader {
    async fn run(mut self, mut flush: mpsc::Receiver<oneshot::Sender<()>>) {
        loop {
            tokio::select! {
                ready = self.rx.readable() => {
                    if ready.is_err() || self.drain() {
                        break;
                    }
                }
                Some(ack) = flush.recv() => {
                    let eof = self.drain();
                    self.emit_partial();
                    let _ = ack.send(());
                    if eof {
                        break;
                    }
                }
            }
        }
        self.emit_partial();
        // Answer flushes that raced with end of file.
        flush.close();
        while let Some(ack) = flush.recv().await {
            let _ = ack.send(());
        }
    }

    /// Reads what is available now; true at end of file.
    fn drain(&mut self) -> bool {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match self.rx.try_read(&mut buf) {
                Ok(0) => return true,
                Ok(n) => {
                    self.pending.extend_from_slice(&buf[..n]);
                    self.emit_lines();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return true,
            }
        }
    }

    fn emit_lines(&mut self) {
        let mut start = 0;
        while let Some(pos) = self.pending[start..].iter().position(|&b| b == b'\n') {
            let end = start + pos;
            let line = &self.pending[start..end];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            self.emit(line);
            start = end + 1;
        }
        self.pending.drain(..start);
        while self.pending.len() > MAX_LINE {
            let rest = self.pending.split_off(MAX_LINE);
            let line = std::mem::replace(&mut self.pending, rest);
            self.emit(&line);
        }
    }

    fn emit_partial(&mut self) {
        if !self.pending.is_empty() {
            let line = std::mem::take(&mut self.pending);
            self.emit(&line);
        }
    }

    fn emit(&self, line: &[u8]) {
        let rid = self
            .current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        self.logs.emit(
            &self.function,
            &rid,
            String::from_utf8_lossy(line).into_owned(),
        );
    }
}
