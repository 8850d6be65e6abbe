//! Batched, asynchronous writes of log lines and invocation records, so the
//! invocation path never waits for the store; readers flush first so they see
//! everything written before they asked.
//!
//! What waits to be written is bounded in bytes: past the bound (the store
//! is slower than the output, or cannot write at all) new items are dropped
//! and counted, and the count is reported, never held in memory.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use updraft_core::{now_ms, LogLine, LogSink};
use updraft_store::{InvocationRecord, Store};

/// How long a batch waits for more items once it holds one. Every request
/// writes a few log lines and an invocation record; without a wait, a server
/// at tens or hundreds of requests a second commits a transaction per request
/// (each a round of wake-ups through the database's worker thread). Readers
/// never wait for it: they flush, which writes at once.
const LINGER: Duration = Duration::from_millis(10);

/// Most items in one batch.
const BATCH: usize = 1000;

/// Bytes of log lines that may wait for the store.
pub const LOG_QUEUE_BYTES: usize = 64 << 20;

/// Bytes of invocation records that may wait for the store.
const RECORD_QUEUE_BYTES: usize = 16 << 20;

/// What an item costs while it waits in memory.
pub trait Weigh {
    fn weight(&self) -> usize;
}

impl Weigh for LogLine {
    fn weight(&self) -> usize {
        self.text.len() + self.function.len() + self.request_id.len() + 64
    }
}

impl Weigh for InvocationRecord {
    fn weight(&self) -> usize {
        std::mem::size_of::<InvocationRecord>()
            + self.request_id.len()
            + self.function.len()
            + self.outcome.len()
            + self.error_type.as_ref().map_or(0, String::len)
    }
}

impl Weigh for String {
    fn weight(&self) -> usize {
        self.len() + std::mem::size_of::<String>()
    }
}

enum Msg<T> {
    Item(T),
    Flush(oneshot::Sender<()>),
}

/// Collects items and writes them in batches with `write`.
pub struct BatchWriter<T> {
    tx: mpsc::UnboundedSender<Msg<T>>,
    /// Bytes of items pushed and not yet written (or given up on).
    queued: Arc<AtomicUsize>,
    limit: usize,
    /// Items refused since the writer last reported.
    dropped: Arc<AtomicU64>,
}

impl<T: Weigh + Clone + Send + 'static> BatchWriter<T> {
    /// `limit`: the bytes of items that may wait; pushes past it are dropped.
    pub fn spawn<F, Fut>(name: &'static str, limit: usize, write: F) -> BatchWriter<T>
    where
        F: Fn(Vec<T>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<(), updraft_store::StoreError>> + Send,
    {
        let (tx, mut rx) = mpsc::unbounded_channel::<Msg<T>>();
        let queued = Arc::new(AtomicUsize::new(0));
        let dropped = Arc::new(AtomicU64::new(0));
        let (task_queued, task_dropped) = (queued.clone(), dropped.clone());
        tokio::spawn(async move {
            let mut batch = Vec::new();
            let mut acks = Vec::new();
            while let Some(first) = rx.recv().await {
                let mut msg = Some(first);
                let linger_until = tokio::time::Instant::now() + LINGER;
                // Gather what comes within LINGER, up to a batch's size; a
                // flush request writes at once.
                loop {
                    match msg.take() {
                        Some(Msg::Item(t)) => batch.push(t),
                        Some(Msg::Flush(ack)) => acks.push(ack),
                        None => {}
                    }
                    if batch.len() >= BATCH || !acks.is_empty() {
                        break;
                    }
                    msg = match rx.try_recv() {
                        Ok(m) => Some(m),
                        Err(mpsc::error::TryRecvError::Empty) => {
                            match tokio::time::timeout_at(linger_until, rx.recv()).await {
                                Ok(Some(m)) => Some(m),
                                // Closed, or the batch has waited long enough.
                                Ok(None) | Err(_) => break,
                            }
                        }
                        Err(mpsc::error::TryRecvError::Disconnected) => break,
                    };
                }
                if !batch.is_empty() {
                    let items = std::mem::take(&mut batch);
                    let weight: usize = items.iter().map(Weigh::weight).sum();
                    // The store may be briefly busy; a few retries keep the batch.
                    for attempt in 0..5u32 {
                        match write(items.clone()).await {
                            Ok(()) => break,
                            Err(e) if attempt == 4 => {
                                tracing::error!(writer = name, lost = items.len(), error = %e, "could not write a batch");
                            }
                            Err(_) => {
                                tokio::time::sleep(Duration::from_millis(50 << attempt)).await
                            }
                        }
                    }
                    task_queued.fetch_sub(weight, Ordering::SeqCst);
                }
                let dropped = task_dropped.swap(0, Ordering::SeqCst);
                if dropped > 0 {
                    tracing::warn!(
                        writer = name,
                        dropped,
                        "the store did not keep up: items were dropped"
                    );
                }
                for ack in acks.drain(..) {
                    let _ = ack.send(());
                }
            }
        });
        BatchWriter {
            tx,
            queued,
            limit,
            dropped,
        }
    }

    /// Queues `item` for writing; false (and counted) when the queue is full.
    pub fn push(&self, item: T) -> bool {
        let weight = item.weight();
        let before = self.queued.fetch_add(weight, Ordering::SeqCst);
        if before + weight > self.limit {
            self.queued.fetch_sub(weight, Ordering::SeqCst);
            self.dropped.fetch_add(1, Ordering::SeqCst);
            return false;
        }
        if self.tx.send(Msg::Item(item)).is_err() {
            self.queued.fetch_sub(weight, Ordering::SeqCst);
            return false;
        }
        true
    }

    /// Bytes waiting to be written.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::SeqCst)
    }

    /// Returns once everything pushed before is written.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Msg::Flush(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

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

    fn line(function: &str, text: &str) -> LogLine {
        Logs::line(function, "r", text.to_string())
    }

    #[tokio::test]
    async fn a_full_queue_drops_and_counts_instead_of_growing() {
        // A store that never answers: nothing leaves the queue.
        let (_hold, wait) = oneshot::channel::<()>();
        let wait = Arc::new(tokio::sync::Mutex::new(Some(wait)));
        let w = BatchWriter::spawn("test", 10 * line("f", "x").weight(), move |_| {
            let wait = wait.clone();
            async move {
                if let Some(rx) = wait.lock().await.take() {
                    let _ = rx.await;
                }
                Ok(())
            }
        });
        let accepted = (0..1000).filter(|_| w.push(line("f", "x"))).count();
        assert_eq!(accepted, 10);
        assert!(w.queued.load(Ordering::SeqCst) <= w.limit);
        assert_eq!(w.dropped.load(Ordering::SeqCst), 990);
    }

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
