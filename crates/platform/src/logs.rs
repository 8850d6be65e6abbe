//! The log sink instances and the scheduler write to, and the writer of
//! invocation records: both batched through the store's [`BatchWriter`], so
//! the invocation path never waits for the store. A function whose lines are
//! dropped (the store did not keep up) is told so in its own log.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use updraft_core::{now_ms, LogLine, LogSink};
use updraft_store::{BatchWriter, InvocationRecord, Store};

/// Bytes of log lines that may wait for the store.
pub const LOG_QUEUE_BYTES: usize = 64 << 20;

/// Bytes of invocation records that may wait for the store.
const RECORD_QUEUE_BYTES: usize = 16 << 20;

/// The log sink instances and the scheduler write to.
pub struct Logs {
    writer: BatchWriter<LogLine>,
    invocation_limit: u64,
    /// Lines of each function dropped because the queue was full, not yet
    /// reported in that function's log.
    dropped: Mutex<HashMap<String, u64>>,
    any_dropped: AtomicBool,
}

/// How the log sink is bounded.
#[derive(Clone, Copy, Debug)]
pub struct LogLimits {
    /// Bytes one invocation may log (see `updraft_core::logs::LogBudget`).
    pub per_invocation: u64,
    /// Lines kept per function, the oldest pruned first; 0 keeps all.
    pub per_function_lines: u64,
}

impl Logs {
    pub fn new(store: Store, limits: LogLimits) -> Arc<Logs> {
        let keep = limits.per_function_lines;
        // Lines written per function since it was last pruned.
        let fresh: Arc<Mutex<HashMap<String, u64>>> = Arc::default();
        let writer = BatchWriter::spawn("logs", LOG_QUEUE_BYTES, move |lines: Vec<LogLine>| {
            let store = store.clone();
            let fresh = fresh.clone();
            async move {
                store.append_logs(&lines).await?;
                if keep > 0 {
                    // Prune a function once it wrote a tenth of its cap
                    // again, so the table holds at most 1.1 × keep lines
                    // of it and pruning stays rare.
                    let due: Vec<String> = {
                        let mut fresh = fresh.lock().unwrap_or_else(|e| e.into_inner());
                        for l in &lines {
                            *fresh.entry(l.function.clone()).or_default() += 1;
                        }
                        let step = (keep / 10).max(1);
                        let due: Vec<String> = fresh
                            .iter()
                            .filter(|(_, n)| **n >= step)
                            .map(|(f, _)| f.clone())
                            .collect();
                        for f in &due {
                            fresh.remove(f);
                        }
                        due
                    };
                    for f in due {
                        // The lines are written: a failed prune is retried
                        // by the next one, never by writing them again.
                        if let Err(e) = store.prune_function_logs(&f, keep).await {
                            tracing::warn!(function = %f, error = %e, "could not prune log lines");
                        }
                    }
                }
                Ok(())
            }
        });
        Arc::new(Logs {
            writer,
            invocation_limit: limits.per_invocation,
            dropped: Mutex::default(),
            any_dropped: AtomicBool::new(false),
        })
    }

    pub async fn flush(&self) {
        self.writer.flush().await
    }

    fn line(function: &str, request_id: &str, text: String) -> LogLine {
        LogLine {
            ts_ms: now_ms(),
            function: function.into(),
            request_id: request_id.into(),
            text,
        }
    }
}

impl LogSink for Logs {
    fn emit(&self, function: &str, request_id: &str, text: String) {
        // Drops are told once the queue has drained to half, not between
        // two drops of a flood.
        if self.any_dropped.load(Ordering::SeqCst) && self.writer.queued() < LOG_QUEUE_BYTES / 2 {
            self.report_drops(function, request_id);
        }
        if !self.writer.push(Self::line(function, request_id, text)) {
            *self
                .dropped
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(function.to_string())
                .or_default() += 1;
            self.any_dropped.store(true, Ordering::SeqCst);
        }
    }

    fn invocation_log_limit(&self) -> u64 {
        self.invocation_limit
    }
}

impl Logs {
    /// Tells `function`'s log how many of its lines were dropped, once the
    /// queue has room again.
    fn report_drops(&self, function: &str, request_id: &str) {
        let mut dropped = self.dropped.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = dropped.remove(function) {
            let notice = format!(
                "[updraft] {n} earlier log lines of this function were dropped: \
                 the log store did not keep up"
            );
            if !self.writer.push(Self::line(function, request_id, notice)) {
                dropped.insert(function.to_string(), n);
            }
        }
        if dropped.is_empty() {
            self.any_dropped.store(false, Ordering::SeqCst);
        }
    }
}

pub fn records(store: Store) -> BatchWriter<InvocationRecord> {
    BatchWriter::spawn(
        "invocations",
        RECORD_QUEUE_BYTES,
        move |recs: Vec<InvocationRecord>| {
            let store = store.clone();
            async move { store.record_invocations(&recs).await }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn dropped_lines_are_reported_in_the_functions_log() {
        let store = Store::open("sqlite::memory:").await.unwrap();
        let logs = Logs::new(
            store.clone(),
            LogLimits {
                per_invocation: 1 << 20,
                per_function_lines: 0,
            },
        );
        // Fill the queue past its bound before the writer gets a turn
        // (this test runs on one thread).
        let big = "z".repeat(1 << 20);
        for _ in 0..(LOG_QUEUE_BYTES >> 20) + 10 {
            logs.emit("f", "r1", big.clone());
        }
        logs.flush().await;
        logs.emit("f", "r2", "after".into());
        logs.flush().await;
        let lines = store.logs("f", 0, None, 0, 1000).await.unwrap();
        let texts: Vec<&str> = lines.iter().map(|(_, l)| l.text.as_str()).collect();
        let n = texts.len();
        assert!(n < (LOG_QUEUE_BYTES >> 20) + 3, "{n} lines kept");
        assert!(
            texts[n - 2].contains("log lines of this function were dropped"),
            "{}",
            texts[n - 2]
        );
        assert_eq!(texts[n - 1], "after");
    }

    #[tokio::test]
    async fn each_function_keeps_its_newest_lines() {
        let store = Store::open("sqlite::memory:").await.unwrap();
        let logs = Logs::new(
            store.clone(),
            LogLimits {
                per_invocation: 1 << 20,
                per_function_lines: 100,
            },
        );
        for i in 0..1000 {
            logs.emit("loud", "r", format!("line {i}"));
            if i % 100 == 0 {
                logs.emit("quiet", "r", format!("line {i}"));
            }
        }
        logs.flush().await;
        let loud = store.logs("loud", 0, None, 0, 10_000).await.unwrap();
        assert!(
            (100..=110).contains(&loud.len()),
            "{} lines kept",
            loud.len()
        );
        assert_eq!(loud.last().unwrap().1.text, "line 999");
        let quiet = store.logs("quiet", 0, None, 0, 10_000).await.unwrap();
        assert_eq!(quiet.len(), 10, "another function's lines are untouched");
    }
}
