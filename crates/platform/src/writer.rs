//! Batched, asynchronous writes of log lines and invocation records, so the
//! invocation path never waits for the store; readers flush first so they see
//! everything written before they asked.

use std::sync::Arc;
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

enum Msg<T> {
    Item(T),
    Flush(oneshot::Sender<()>),
}

/// Collects items and writes them in batches with `write`.
pub struct BatchWriter<T> {
    tx: mpsc::UnboundedSender<Msg<T>>,
}

impl<T: Clone + Send + 'static> BatchWriter<T> {
    pub fn spawn<F, Fut>(name: &'static str, write: F) -> BatchWriter<T>
    where
        F: Fn(Vec<T>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<(), updraft_store::StoreError>> + Send,
    {
        let (tx, mut rx) = mpsc::unbounded_channel::<Msg<T>>();
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
                    if batch.len() >= 1000 || !acks.is_empty() {
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
                }
                for ack in acks.drain(..) {
                    let _ = ack.send(());
                }
            }
        });
        BatchWriter { tx }
    }

    pub fn push(&self, item: T) {
        let _ = self.tx.send(Msg::Item(item));
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
}

impl Logs {
    pub fn new(store: Store) -> Arc<Logs> {
        let writer = BatchWriter::spawn("logs", move |lines: Vec<LogLine>| {
            let store = store.clone();
            async move { store.append_logs(&lines).await }
        });
        Arc::new(Logs { writer })
    }

    pub async fn flush(&self) {
        self.writer.flush().await
    }
}

impl LogSink for Logs {
    fn emit(&self, function: &str, request_id: &str, text: String) {
        self.writer.push(LogLine {
            ts_ms: now_ms(),
            function: function.into(),
            request_id: request_id.into(),
            text,
        });
    }
}

pub fn records(store: Store) -> BatchWriter<InvocationRecord> {
    BatchWriter::spawn("invocations", move |recs: Vec<InvocationRecord>| {
        let store = store.clone();
        async move { store.record_invocations(&recs).await }
    })
}
