//! Schedule triggers: where a tick becomes an event.
//!
//! Each schedule of a function's `$LATEST` is a store row with the due time
//! of its next tick ([`Schedules::sync`] writes them at deploy). One task per server
//! sleeps until the earliest due time, then fires each due tick through
//! [`Store::fire_schedule`]: a compare-and-set on the due time in the same
//! transaction that enqueues the tick's event on the asynchronous path
//! (retries, dead letters). So a tick fires once, whatever the number of
//! servers and restarts, and its event is never lost once fired.
//!
//! **Missed ticks.** Ticks that fell due while no server ran fire once, at
//! the next start, as one event carrying the due time of the most recent
//! missed tick; the schedule then continues from the first tick after now.
//! A running server that merely falls behind (a stall, a slow store) fires
//! every tick in order, each with its own due time, unless it is more than
//! [`MAX_CATCH_UP`] ticks behind, when it too fires only the latest.

use crate::{AsyncEvents, TriggersError};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};
use tokio::sync::Notify;
use updraft_core::{
    arn::ACCOUNT, new_request_id, now_ms, FunctionConfig, Invalid, ScheduleTrigger, Trigger,
};
use updraft_rules::schedule::Schedule;
use updraft_store::{NewEvent, NewSchedule, ScheduleRow, Store};

/// The firing task looks at the store at least this often (another server
/// may have added or moved a schedule).
const POLL: Duration = Duration::from_secs(1);

/// A running server fires each tick it is late for, up to this many behind;
/// beyond, only the latest (as at start-up).
pub const MAX_CATCH_UP: i64 = 100;

/// The schedule runner of one server. Cheap to clone.
#[derive(Clone)]
pub struct Schedules {
    shared: Arc<Shared>,
}

struct Shared {
    store: Store,
    region: String,
    events: AsyncEvents,
    notify: Notify,
    stopped: AtomicBool,
}

impl Schedules {
    pub fn new(store: Store, region: &str, events: AsyncEvents) -> Schedules {
        Schedules {
            shared: Arc::new(Shared {
                store,
                region: region.to_string(),
                events,
                notify: Notify::new(),
                stopped: AtomicBool::new(false),
            }),
        }
    }

    /// Starts the firing task. Ticks missed while no server ran fire now
    /// (once each schedule).
    pub fn start(&self) {
        let me = self.clone();
        tokio::spawn(async move { me.run().await });
    }

    /// Stops firing (ticks not yet fired stay due for the next start).
    pub fn stop(&self) {
        self.shared.stopped.store(true, Ordering::SeqCst);
        self.shared.notify.notify_one();
    }

    /// Makes the function's schedules those of `config` (None: it is gone)
    /// and wakes the firing task.
    pub async fn sync(
        &self,
        function: &str,
        config: Option<&FunctionConfig>,
    ) -> Result<(), TriggersError> {
        let now = now_ms();
        let mut wanted = Vec::new();
        for (idx, t) in config.iter().flat_map(|c| c.triggers.iter()).enumerate() {
            let Trigger::Schedule(s) = t else { continue };
            let schedule =
                parse(s).map_err(|e| e.prefixed(&format!("triggers[{idx}].schedule.")))?;
            wanted.push(NewSchedule {
                idx: idx as i64,
                spec: serde_json::to_string(s).unwrap_or_default(),
                description: schedule.describe(),
                first_due_ms: schedule.next_after(now),
            });
        }
        self.shared
            .store
            .sync_schedules(function, &wanted, now)
            .await?;
        self.shared.notify.notify_one();
        Ok(())
    }

    async fn run(self) {
        let sh = &self.shared;
        // The first pass fires what was missed while no server ran: once.
        let mut catch_up = false;
        loop {
            if sh.stopped.load(Ordering::SeqCst) {
                return;
            }
            let now = now_ms();
            match sh.store.due_schedules(now).await {
                Ok(due) => {
                    let mut fired = false;
                    for row in due {
                        match self.fire(&row, now, catch_up).await {
                            Ok(f) => fired |= f,
                            Err(e) => tracing::error!(
                                function = %row.function, error = %e,
                                "schedules: firing a tick failed; it stays due"
                            ),
                        }
                    }
                    if fired {
                        sh.events.wake();
                    }
                }
                Err(e) => tracing::error!(error = %e, "schedules: reading due ticks failed"),
            }
            catch_up = true;
            let wait = match sh.store.next_schedule_due().await {
                Ok(Some(next)) => Duration::from_millis((next - now_ms()).max(0) as u64).min(POLL),
                _ => POLL,
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = sh.notify.notified() => {}
            }
        }
    }

    /// Fires one due schedule; false if another server fired it first.
    /// `catch_up`: fire the oldest due tick (the loop comes back for the
    /// next) rather than only the latest.
    async fn fire(
        &self,
        row: &ScheduleRow,
        now: i64,
        catch_up: bool,
    ) -> Result<bool, TriggersError> {
        let Some(read_due) = row.next_due_ms else {
            return Ok(false);
        };
        let spec: ScheduleTrigger = serde_json::from_str(&row.spec)
            .map_err(|e| Invalid::new("schedule", "a stored schedule trigger", e))?;
        let schedule = parse(&spec)?;
        let (fired_due, next_due) = match schedule.next_after(read_due) {
            // Behind by a few ticks while running: each fires in turn.
            Some(next) if catch_up && !too_far_behind(&schedule, read_due, now) => {
                (read_due, Some(next))
            }
            // Missed while no server ran (or far behind): the latest fires, once.
            _ => {
                let latest = schedule
                    .latest_between(read_due - 1, now)
                    .unwrap_or(read_due);
                (latest, schedule.next_after(now.max(latest)))
            }
        };
        let payload = match &spec.payload {
            Some(p) => serde_json::to_vec(p).unwrap_or_default(),
            None => scheduled_event(&self.shared.region, &row.function, row.idx, fired_due),
        };
        let event = NewEvent {
            id: new_request_id(),
            function: row.function.clone(),
            qualifier: String::new(),
            source: "schedule".into(),
            payload,
            enqueued_ms: now,
            next_attempt_ms: now,
            trace: None,
        };
        let fired = self
            .shared
            .store
            .fire_schedule(
                &row.function,
                row.idx,
                read_due,
                fired_due,
                next_due,
                &event,
            )
            .await?;
        if fired {
            tracing::debug!(
                function = %row.function, due_ms = fired_due, late_ms = now - fired_due,
                "schedules: fired a tick"
            );
        }
        Ok(fired)
    }
}

/// Whether more than [`MAX_CATCH_UP`] ticks fell due since `due`.
fn too_far_behind(schedule: &Schedule, due: i64, now: i64) -> bool {
    let mut t = due;
    for _ in 0..MAX_CATCH_UP {
        match schedule.next_after(t) {
            Some(n) if n <= now => t = n,
            _ => return false,
        }
    }
    true
}

fn parse(s: &ScheduleTrigger) -> Result<Schedule, Invalid> {
    Schedule::parse(s)
}

/// The schedule's rule ARN, as the event's `resources` names it.
pub fn rule_arn(region: &str, function: &str, idx: i64) -> String {
    format!("arn:aws:events:{region}:{ACCOUNT}:rule/{function}-schedule-{idx}")
}

/// EventBridge's Scheduled Event for a tick due at `due_ms`.
pub fn scheduled_event(region: &str, function: &str, idx: i64, due_ms: i64) -> Vec<u8> {
    let time = UNIX_EPOCH + Duration::from_millis(due_ms.max(0) as u64);
    serde_json::to_vec(&serde_json::json!({
        "version": "0",
        "id": new_request_id(),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT,
        "time": humantime::format_rfc3339_seconds(time).to_string(),
        "region": region,
        "resources": [rule_arn(region, function, idx)],
        "detail": {},
    }))
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scheduled_event_is_eventbridges() {
        let v: serde_json::Value =
            serde_json::from_slice(&scheduled_event("eu-west-1", "tick", 2, 1_764_637_200_000))
                .unwrap();
        assert_eq!(v["version"], "0");
        assert_eq!(v["detail-type"], "Scheduled Event");
        assert_eq!(v["source"], "aws.events");
        assert_eq!(v["account"], "000000000000");
        assert_eq!(v["time"], "2025-12-02T01:00:00Z");
        assert_eq!(v["region"], "eu-west-1");
        assert_eq!(
            v["resources"],
            serde_json::json!(["arn:aws:events:eu-west-1:000000000000:rule/tick-schedule-2"])
        );
        assert_eq!(v["detail"], serde_json::json!({}));
        assert_eq!(v["id"].as_str().unwrap().len(), 36);
    }
}
