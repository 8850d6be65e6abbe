//! Queue triggers: where a message becomes an invocation.
//!
//! An event source mapping (a manifest's `queue` trigger, or one made with
//! Lambda's CreateEventSourceMapping) names a queue and a function. Every
//! server runs one consumer per enabled mapping ([`QueueConsumers`]'s
//! supervisor starts and stops them as the mappings change). A consumer
//! receives a batch (up to `batch_size` messages, gathering for up to
//! `batch_window`), which makes the messages invisible for the queue's
//! visibility timeout, and invokes the function with Lambda's SQS event:
//!
//! - success: the batch is deleted, except the messages a
//!   `{"batchItemFailures": […]}` answer names (Lambda's
//!   ReportBatchItemFailures), which come back after the visibility timeout;
//! - a function error, timeout, crash or out-of-memory: nothing is deleted;
//!   the batch comes back after the visibility timeout, and a message
//!   received `max_receive` times goes to the queue's dead-letter queue;
//! - a throttle or a draining server: the batch is released at once, its
//!   receives uncounted, and the consumer backs off.
//!
//! A message is deleted only after an invocation that succeeded, so a crash
//! of the function or of the server loses nothing (at least once).
//! Consumers scale with the queue: up to the function's capacity
//! ([`Invoke::check`]) batches run at once, and claiming uses the store's
//! row locks, so several servers share a queue without taking a message
//! twice.

mod deleter;

use crate::sqs;
use crate::TriggersError;
use deleter::Deleter;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use updraft_core::{
    limits, new_request_id, now_ms, Error, FunctionConfig, Invoke, InvokeRequest, Outcome,
    Qualifier, Trigger, TriggerKind,
};
use updraft_rules::MAX_VISIBILITY_TIMEOUT_MS;
use updraft_store::{
    with_retries, MappingRow, Message, QueueRow, Redrive, Store, StoreError,
    DEFAULT_VISIBILITY_TIMEOUT_MS, MAX_MESSAGE_BYTES,
};

/// The supervisor re-reads the mappings, and an idle consumer looks at its
/// queue, at least this often (another server may have sent or changed them).
const POLL: Duration = Duration::from_secs(1);
/// While gathering a batch, a consumer looks at its queue this often.
const GATHER_POLL: Duration = Duration::from_millis(50);
/// Waits after a throttle or a store failure, doubling up to the maximum.
const MIN_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// Most batches one receive claims (each with a permit of its own).
const MAX_BATCHES_PER_RECEIVE: usize = 16;
/// Room left in the synchronous payload limit for the event's envelope.
const ENVELOPE_BYTES: usize = 16 * 1024;

/// The name of the dead-letter queue a manifest's `max_receive` creates.
pub fn dead_letter_queue_name(queue: &str) -> String {
    format!("{queue}-dlq")
}

/// The queue consumers of one server. Cheap to clone.
#[derive(Clone)]
pub struct QueueConsumers {
    shared: Arc<Shared>,
}

struct Shared {
    store: Store,
    region: String,
    /// Mappings changed: the supervisor looks again.
    changed: Notify,
    /// Messages were sent through this server: idle consumers look again.
    arrived: Notify,
    stopped: AtomicBool,
    stop_tx: watch::Sender<bool>,
}

impl QueueConsumers {
    pub fn new(store: Store, region: &str) -> QueueConsumers {
        let (stop_tx, _) = watch::channel(false);
        QueueConsumers {
            shared: Arc::new(Shared {
                store,
                region: region.to_string(),
                changed: Notify::new(),
                arrived: Notify::new(),
                stopped: AtomicBool::new(false),
                stop_tx,
            }),
        }
    }

    /// Starts the supervisor, which runs a consumer per enabled mapping.
    pub fn start<I: Invoke + Clone>(&self, invoker: I) {
        let me = self.clone();
        tokio::spawn(async move { me.supervise(invoker).await });
    }

    /// Stops receiving; batches already running finish (or, refused by a
    /// draining server, are released).
    pub fn stop(&self) {
        self.shared.stopped.store(true, Ordering::SeqCst);
        let _ = self.shared.stop_tx.send(true);
        self.shared.changed.notify_one();
    }

    /// Messages were sent to some queue through this server: consumers
    /// waiting for work look now instead of at their next poll.
    pub fn arrived(&self) {
        self.shared.arrived.notify_waiters();
    }

    /// Event source mappings changed (the Lambda API): look again now.
    pub fn mappings_changed(&self) {
        self.shared.changed.notify_one();
    }

    /// Makes the function's manifest queue triggers those of `config`
    /// (None: the function is gone, and so are all its mappings): each
    /// queue exists with its settings (and its dead-letter queue when
    /// `max_receive` is set), and one mapping per trigger consumes it.
    pub async fn sync(
        &self,
        function: &str,
        config: Option<&FunctionConfig>,
    ) -> Result<(), TriggersError> {
        let store = &self.shared.store;
        let now = now_ms();
        let mut rows = Vec::new();
        for t in config.iter().flat_map(|c| c.triggers.iter()) {
            let Trigger::Queue(q) = t else { continue };
            let timeout_ms = config.map_or(0, |c| c.timeout_ms);
            // Lambda's advice: six times the function's timeout.
            let visibility = q
                .visibility_timeout_ms
                .unwrap_or(timeout_ms.saturating_mul(6))
                .min(MAX_VISIBILITY_TIMEOUT_MS) as i64;
            let redrive = q.max_receive.map(|n| Redrive {
                dead_letter_queue: dead_letter_queue_name(&q.name),
                max_receive_count: i64::from(n),
            });
            if let Some(r) = &redrive {
                store
                    .ensure_queue(&queue_row(
                        &r.dead_letter_queue,
                        now,
                        DEFAULT_VISIBILITY_TIMEOUT_MS,
                        None,
                    ))
                    .await?;
            }
            store
                .ensure_queue(&queue_row(&q.name, now, visibility, redrive))
                .await?;
            rows.push(MappingRow {
                uuid: new_request_id(),
                queue: q.name.clone(),
                function: function.to_string(),
                qualifier: String::new(),
                batch_size: i64::from(q.batch_size),
                batch_window_ms: q.batch_window_ms as i64,
                // A manifest's consumer always honours batchItemFailures (SPEC §5).
                report_batch_item_failures: true,
                enabled: true,
                origin: "manifest".into(),
                created_ms: now,
                updated_ms: now,
            });
        }
        store.replace_manifest_mappings(function, &rows).await?;
        if config.is_none() {
            for m in store.list_mappings(Some(function), None).await? {
                store.delete_mapping(&m.uuid).await?;
            }
        }
        self.shared.changed.notify_one();
        Ok(())
    }

    async fn supervise<I: Invoke + Clone>(self, invoker: I) {
        let sh = &self.shared;
        let mut running: HashMap<String, (MappingRow, watch::Sender<bool>)> = HashMap::new();
        loop {
            if sh.stopped.load(Ordering::SeqCst) {
                for (_, (_, stop)) in running.drain() {
                    let _ = stop.send(true);
                }
                return;
            }
            match sh.store.list_mappings(None, None).await {
                Ok(rows) => {
                    let wanted: HashMap<String, MappingRow> = rows
                        .into_iter()
                        .filter(|m| m.enabled)
                        .map(|m| (m.uuid.clone(), m))
                        .collect();
                    // Gone, disabled or changed: stop (a changed one restarts below).
                    running.retain(|uuid, (row, stop)| {
                        let keep = wanted.get(uuid) == Some(row);
                        if !keep {
                            let _ = stop.send(true);
                        }
                        keep
                    });
                    for (uuid, m) in wanted {
                        if running.contains_key(&uuid) {
                            continue;
                        }
                        let (stop, stopped) = watch::channel(false);
                        let consumer = Consumer {
                            sh: self.shared.clone(),
                            mapping: m.clone(),
                            stopped,
                        };
                        tokio::spawn(consumer.run(invoker.clone()));
                        running.insert(uuid, (m, stop));
                    }
                }
                Err(e) => tracing::error!(error = %e, "queues: reading the mappings failed"),
            }
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                _ = sh.changed.notified() => {}
            }
        }
    }
}

fn queue_row(name: &str, now: i64, visibility_ms: i64, redrive: Option<Redrive>) -> QueueRow {
    QueueRow {
        name: name.to_string(),
        created_ms: now,
        visibility_timeout_ms: visibility_ms,
        delay_ms: 0,
        max_message_bytes: MAX_MESSAGE_BYTES,
        redrive,
        origin: "manifest".into(),
    }
}

/// One mapping's consumer on this server.
struct Consumer {
    sh: Arc<Shared>,
    mapping: MappingRow,
    stopped: watch::Receiver<bool>,
}

impl Consumer {
    fn stopping(&self) -> bool {
        *self.stopped.borrow() || *self.sh.stop_tx.borrow()
    }

    /// Waits `d`, or less if the consumer is stopped or `wake` fires.
    async fn pause(&mut self, d: Duration, wake: Option<&Notify>) {
        let server_stop = self.sh.stop_tx.subscribe();
        let mut server_stop = server_stop;
        match wake {
            Some(n) => tokio::select! {
                _ = tokio::time::sleep(d) => {}
                _ = n.notified() => {}
                _ = self.stopped.changed() => {}
                _ = server_stop.changed() => {}
            },
            None => tokio::select! {
                _ = tokio::time::sleep(d) => {}
                _ = self.stopped.changed() => {}
                _ = server_stop.changed() => {}
            },
        }
    }

    async fn run<I: Invoke + Clone>(mut self, invoker: I) {
        let m = self.mapping.clone();
        let qualifier = match (!m.qualifier.is_empty())
            .then(|| Qualifier::parse(Some(&m.qualifier)))
            .transpose()
        {
            Ok(q) => q,
            Err(e) => {
                tracing::error!(mapping = %m.uuid, error = %e, "queues: a mapping with a bad qualifier");
                return;
            }
        };
        let permits = Arc::new(Semaphore::new(0));
        let deleter = Deleter::start(self.sh.store.clone(), m.queue.clone());
        let mut granted: u32 = 0;
        let mut backoff = MIN_BACKOFF;
        while !self.stopping() {
            // As many batches at once as the function can run (its scaling
            // may change between batches).
            match invoker.check(&m.function, qualifier.as_ref()).await {
                Ok(n) if n > granted => {
                    permits.add_permits((n - granted) as usize);
                    granted = n;
                }
                Ok(n) if n < granted => {
                    granted -= permits.forget_permits((granted - n) as usize) as u32;
                }
                Ok(_) => {}
                Err(e) => {
                    // Not deployed (yet), or deleted: its mapping goes with it.
                    tracing::debug!(mapping = %m.uuid, error = %e, "queues: the function cannot run now");
                    self.pause(POLL, None).await;
                    continue;
                }
            }
            if granted == 0 {
                self.pause(POLL, None).await;
                continue;
            }
            let permit = tokio::select! {
                p = permits.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => return,
                },
                _ = self.stopped.changed() => continue,
            };
            // Every free permit may take a batch: one receive claims them
            // all, so a deep queue costs one store write per round of
            // batches, not one per batch.
            let mut turn = vec![permit];
            while turn.len() < MAX_BATCHES_PER_RECEIVE {
                match permits.clone().try_acquire_owned() {
                    Ok(p) => turn.push(p),
                    Err(_) => break,
                }
            }
            match self.gather(turn.len() as i64 * m.batch_size).await {
                Ok(got) if got.is_empty() => {
                    drop(turn);
                    let wait = match self.sh.store.next_visible_ms(&m.queue).await {
                        Ok(Some(t)) => {
                            Duration::from_millis((t - now_ms()).max(1) as u64).min(POLL)
                        }
                        _ => POLL,
                    };
                    let sh = self.sh.clone();
                    self.pause(wait, Some(&sh.arrived)).await;
                }
                Ok(got) => {
                    backoff = MIN_BACKOFF;
                    let mut got = got.into_iter().peekable();
                    // Permits left without a batch are dropped with `turn`.
                    for permit in turn {
                        if got.peek().is_none() {
                            break;
                        }
                        let run = Batch {
                            sh: self.sh.clone(),
                            deleter: deleter.clone(),
                            mapping: m.clone(),
                            qualifier: qualifier.clone(),
                            messages: got.by_ref().take(m.batch_size.max(1) as usize).collect(),
                        };
                        tokio::spawn(run.invoke(invoker.clone(), permit));
                    }
                }
                Err(e) => {
                    drop(turn);
                    tracing::warn!(queue = %m.queue, error = %e, "queues: receiving failed");
                    self.pause(backoff, None).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// Receives up to `max` messages (whole batches for several permits);
    /// when the first batch is not full, gathers for up to the mapping's
    /// window once the first message has come.
    async fn gather(&mut self, max: i64) -> Result<Vec<Message>, StoreError> {
        let m = self.mapping.clone();
        let store = self.sh.store.clone();
        let mut got = store
            .receive_messages(&m.queue, now_ms(), max, None)
            .await?;
        if got.is_empty() || m.batch_window_ms <= 0 || got.len() as i64 >= m.batch_size {
            return Ok(got);
        }
        let deadline = Instant::now() + Duration::from_millis(m.batch_window_ms as u64);
        while (got.len() as i64) < m.batch_size && !self.stopping() {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            let sh = self.sh.clone();
            self.pause((deadline - now).min(GATHER_POLL), Some(&sh.arrived))
                .await;
            let more = store
                .receive_messages(&m.queue, now_ms(), m.batch_size - got.len() as i64, None)
                .await?;
            got.extend(more);
        }
        Ok(got)
    }
}

/// One received batch and its invocation.
struct Batch {
    sh: Arc<Shared>,
    deleter: Deleter,
    mapping: MappingRow,
    qualifier: Option<Qualifier>,
    messages: Vec<Message>,
}

impl Batch {
    async fn invoke<I: Invoke>(self, invoker: I, permit: OwnedSemaphorePermit) {
        let Batch {
            sh,
            deleter,
            mapping: m,
            qualifier,
            messages,
        } = self;
        // The event must fit the synchronous payload limit: what does not
        // fit goes back to the queue for the next batch.
        let mut records = Vec::with_capacity(messages.len());
        let mut size = ENVELOPE_BYTES;
        let mut taken = Vec::with_capacity(messages.len());
        let mut overflow = Vec::new();
        for msg in messages {
            let r = sqs::record(&sh.region, &msg);
            let len = serde_json::to_vec(&r).map_or(0, |b| b.len()) + 1;
            if !records.is_empty() && size + len > limits::SYNC_PAYLOAD_BYTES {
                overflow.push(msg);
                continue;
            }
            size += len;
            records.push(r);
            taken.push(msg);
        }
        release(&sh.store, &m.queue, &overflow).await;
        let id = new_request_id();
        let req = InvokeRequest {
            function: m.function.clone(),
            qualifier,
            request_id: id.clone(),
            record_id: id.clone(),
            payload: sqs::event(records),
            client_context: None,
            trigger: TriggerKind::Queue,
            // A batch continues its first message's trace.
            trace: taken.iter().find_map(|m| m.trace.clone()),
            accepted_ms: taken.iter().map(|m| m.sent_ms).min(),
        };
        let res = invoker.invoke(req).await;
        // Once the function is done with the batch, its capacity is free
        // for the next one while the store catches up.
        let permit = if res.is_ok() {
            drop(permit);
            None
        } else {
            Some(permit)
        };
        match res {
            Ok(r) => match r.outcome {
                Outcome::Success(body) => {
                    let ids: Vec<&str> = taken.iter().map(|x| x.id.as_str()).collect();
                    let answer = if m.report_batch_item_failures {
                        sqs::answer(&body, &ids)
                    } else {
                        sqs::Answer::AllDone
                    };
                    let done: Vec<&Message> = match &answer {
                        sqs::Answer::AllDone => taken.iter().collect(),
                        sqs::Answer::Failed(failed) => {
                            taken.iter().filter(|x| !failed.contains(&x.id)).collect()
                        }
                        sqs::Answer::Invalid => {
                            tracing::warn!(
                                request_id = %id, queue = %m.queue,
                                "queues: batchItemFailures names a message outside the batch \
                                 or is malformed: the whole batch is retried"
                            );
                            Vec::new()
                        }
                    };
                    let handles: Vec<String> = done
                        .iter()
                        .filter_map(|x| x.receipt_handle.clone())
                        .collect();
                    if !handles.is_empty() {
                        if let Err(e) = deleter.delete(handles).await {
                            // They come back after the visibility timeout: at least once.
                            tracing::error!(queue = %m.queue, error = %e, "queues: deleting a done batch failed");
                        }
                    }
                }
                Outcome::Error { error_type, .. } => {
                    // The batch comes back after the visibility timeout; the
                    // receive count takes a poison message to the DLQ.
                    tracing::debug!(
                        request_id = %id, queue = %m.queue, %error_type,
                        "queues: the batch failed; it is retried after the visibility timeout"
                    );
                }
            },
            Err(e @ (Error::Throttled(_) | Error::Unavailable(_) | Error::NotFound(_))) => {
                tracing::debug!(queue = %m.queue, error = %e, "queues: not run; released");
                release(&sh.store, &m.queue, &taken).await;
                // Hold the permit a moment: a throttled consumer backs off.
                tokio::time::sleep(MIN_BACKOFF).await;
            }
            Err(e) => {
                tracing::warn!(queue = %m.queue, error = %e, "queues: the batch could not be invoked; it is retried after the visibility timeout");
            }
        }
        drop(permit);
    }
}

/// Gives messages back uncounted (they were not run).
async fn release(store: &Store, queue: &str, messages: &[Message]) {
    let handles: Vec<&str> = messages
        .iter()
        .filter_map(|x| x.receipt_handle.as_deref())
        .collect();
    if handles.is_empty() {
        return;
    }
    if let Err(e) = with_retries(|| store.release_messages(queue, &handles, now_ms())).await {
        tracing::error!(%queue, error = %e, "queues: releasing messages failed; they come back after the visibility timeout");
    }
}
