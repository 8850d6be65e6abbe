//! Deletes done messages for one consumer, many batches in one store write.
//!
//! Every successful batch ends in a delete. Under load, batches finish close
//! together; a delete per batch would make the store commit once per batch
//! and, on SQLite, queue every batch behind the one writer. The deleter takes
//! what has piled up since its last write and deletes it in one transaction
//! (group commit), so the store's work grows with the rounds, not the
//! batches. A batch still waits for its own delete to be written.

use tokio::sync::{mpsc, oneshot};
use updraft_store::{with_retries, Store, StoreError};

/// Most receipt handles in one delete statement (well inside the bound
/// parameter limits of SQLite and PostgreSQL).
const MAX_HANDLES: usize = 500;

type Job = (Vec<String>, oneshot::Sender<Result<(), String>>);

/// A handle on one queue's deleter task; the task ends when every handle
/// is dropped.
#[derive(Clone)]
pub(super) struct Deleter {
    tx: mpsc::UnboundedSender<Job>,
}

impl Deleter {
    pub(super) fn start(store: Store, queue: String) -> Deleter {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(store, queue, rx));
        Deleter { tx }
    }

    /// Deletes the messages received under `handles`; an error says why
    /// (they come back after their visibility timeout).
    pub(super) async fn delete(&self, handles: Vec<String>) -> Result<(), String> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send((handles, done))
            .map_err(|_| "the deleter stopped".to_string())?;
        wait.await.map_err(|_| "the deleter stopped".to_string())?
    }
}

async fn run(store: Store, queue: String, mut rx: mpsc::UnboundedReceiver<Job>) {
    while let Some(first) = rx.recv().await {
        let mut jobs = vec![first];
        let mut count = jobs[0].0.len();
        while count < MAX_HANDLES {
            match rx.try_recv() {
                Ok(job) => {
                    count += job.0.len();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        let handles: Vec<&str> = jobs
            .iter()
            .flat_map(|(h, _)| h.iter().map(String::as_str))
            .collect();
        let result = delete_all(&store, &queue, &handles)
            .await
            .map_err(|e| e.to_string());
        for (_, done) in jobs {
            let _ = done.send(result.clone());
        }
    }
}

async fn delete_all(store: &Store, queue: &str, handles: &[&str]) -> Result<(), StoreError> {
    for chunk in handles.chunks(MAX_HANDLES) {
        with_retries(|| store.delete_messages(queue, chunk)).await?;
    }
    Ok(())
}
