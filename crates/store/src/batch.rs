//! Batched, asynchronous writes to the store, so hot paths (invocations,
//! their logs, event completions) never wait for it; readers flush first so
//! they see everything written before they asked.
//!
//! What waits to be written is bounded in bytes: past the bound (the store
//! is slower than the output, or cannot write at all) new items are dropped
//! and counted, and the count is reported, never held in memory.

use crate::{InvocationRecord, StoreError};
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use updraft_core::LogLine;

/// Runs a store call again, up to five times with a growing pause (50 ms
/// doubling), while it fails: SQLite may be busy for a moment. The last
/// error is returned.
pub async fn with_retries<T, F, Fut>(mut f: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let mut attempt = 0u32;
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) if attempt >= 4 => return Err(e),
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
                attempt += 1;
            }
        }
    }
}

/// How long a batch waits for more items once it holds one. Every request
/// writes a few log lines and an invocation record; without a wait, a server
/// at tens or hundreds of requests a second commits a transaction per request
/// (each a round of wake-ups through the database's worker thread). Readers
/// never wait for it: they flush, which writes at once.
const LINGER: Duration = Duration::from_millis(10);

/// Most items in one batch.
const BATCH: usize = 1000;

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
    /// Ends a batch's linger at once: a flush is waiting.
    urgent: Arc<tokio::sync::Notify>,
    /// Bytes of items pushed and not yet written (or given up on).
    queued: Arc<AtomicUsize>,
    limit: usize,
    /// Items refused since the writer last reported.
    dropped: Arc<AtomicU64>,
}

impl<T: Weigh + Clone + Send + Sync + 'static> BatchWriter<T> {
    /// `limit`: the bytes of items that may wait; pushes past it are dropped.
    pub fn spawn<F, Fut>(name: &'static str, limit: usize, write: F) -> BatchWriter<T>
    where
        F: Fn(Vec<T>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), StoreError>> + Send,
    {
        Self::spawn_lingering(name, limit, LINGER, write)
    }

    /// [`BatchWriter::spawn`] with a batch waiting `linger` for more items.
    fn spawn_lingering<F, Fut>(
        name: &'static str,
        limit: usize,
        linger: Duration,
        write: F,
    ) -> BatchWriter<T>
    where
        F: Fn(Vec<T>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), StoreError>> + Send,
    {
        let (tx, mut rx) = mpsc::unbounded_channel::<Msg<T>>();
        let urgent = Arc::new(tokio::sync::Notify::new());
        let queued = Arc::new(AtomicUsize::new(0));
        let dropped = Arc::new(AtomicU64::new(0));
        let (task_queued, task_dropped, task_urgent) =
            (queued.clone(), dropped.clone(), urgent.clone());
        tokio::spawn(async move {
            let mut batch = Vec::new();
            let mut acks = Vec::new();
            while let Some(first) = rx.recv().await {
                let mut msg = Some(first);
                let linger_until = tokio::time::Instant::now() + linger;
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
                            // Wait out the linger without polling the
                            // channel, so that items sent meanwhile wake
                            // nothing (one wake-up per batch, not per log
                            // line); a flush ends the wait through `urgent`.
                            if tokio::time::Instant::now() >= linger_until {
                                break;
                            }
                            tokio::select! {
                                _ = tokio::time::sleep_until(linger_until) => {}
                                _ = task_urgent.notified() => {}
                            }
                            match rx.try_recv() {
                                Ok(m) => Some(m),
                                Err(_) => break,
                            }
                        }
                        Err(mpsc::error::TryRecvError::Disconnected) => break,
                    };
                }
                if !batch.is_empty() {
                    let items = std::mem::take(&mut batch);
                    let weight: usize = items.iter().map(Weigh::weight).sum();
                    // The store may be briefly busy; a few retries keep the batch.
                    if let Err(e) = with_retries(|| write(items.clone())).await {
                        tracing::error!(writer = name, lost = items.len(), error = %e, "could not write a batch");
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
            urgent,
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
            self.urgent.notify_one();
            let _ = rx.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_queue_drops_and_counts_instead_of_growing() {
        // A store that never answers: nothing leaves the queue.
        let (_hold, wait) = oneshot::channel::<()>();
        let wait = Arc::new(tokio::sync::Mutex::new(Some(wait)));
        let item = "x".to_string();
        let w = BatchWriter::spawn("test", 10 * item.weight(), move |_: Vec<String>| {
            let wait = wait.clone();
            async move {
                if let Some(rx) = wait.lock().await.take() {
                    let _ = rx.await;
                }
                Ok(())
            }
        });
        let accepted = (0..1000).filter(|_| w.push(item.clone())).count();
        assert_eq!(accepted, 10);
        assert!(w.queued.load(Ordering::SeqCst) <= w.limit);
        assert_eq!(w.dropped.load(Ordering::SeqCst), 990);
    }

    #[tokio::test]
    async fn a_flush_ends_the_linger_and_writes_the_batch_gathered() {
        let (tx, mut batches) = mpsc::unbounded_channel();
        // A linger no test outlives: only the flush can end it.
        let w = BatchWriter::spawn_lingering("test", 1 << 20, Duration::from_secs(3600), {
            move |items: Vec<String>| {
                let _ = tx.send(items);
                async { Ok(()) }
            }
        });
        for i in 0..5 {
            assert!(w.push(format!("line {i}")));
            tokio::task::yield_now().await;
        }
        tokio::time::timeout(Duration::from_secs(60), w.flush())
            .await
            .expect("the flush ended the linger");
        let batch = batches
            .try_recv()
            .expect("written before the flush returned");
        assert_eq!(batch.len(), 5, "one batch: {batch:?}");
        assert!(batches.try_recv().is_err());
    }

    #[tokio::test]
    async fn retries_stop_at_the_first_success_or_after_five_tries() {
        let calls = std::sync::atomic::AtomicU32::new(0);
        let r = with_retries(|| {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move {
                if n < 2 {
                    Err(StoreError::Unavailable("busy".into()))
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert_eq!(r.unwrap(), 2);
        calls.store(0, Ordering::SeqCst);
        let r: Result<(), _> = with_retries(|| {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Err(StoreError::Unavailable("down".into())) }
        })
        .await;
        assert!(r.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 5);
    }
}
