//! Schedules: sync keeps unchanged ones, and a tick fires once however many
//! servers race for it, on both databases.

use super::*;
use crate::{NewEvent, NewSchedule};

fn sched(idx: i64, spec: &str, due: i64) -> NewSchedule {
    NewSchedule {
        idx,
        spec: spec.into(),
        description: spec.into(),
        first_due_ms: Some(due),
    }
}

fn tick(id: &str) -> NewEvent {
    NewEvent {
        id: id.into(),
        function: "f".into(),
        qualifier: String::new(),
        source: "schedule".into(),
        payload: b"{}".to_vec(),
        enqueued_ms: 0,
        next_attempt_ms: 0,
        trace: None,
    }
}

async fn schedules_sync_keeps_unchanged_ones(db: &TestDb) {
    let s = db.open().await;
    s.sync_schedules("f", &[sched(0, "a", 1000), sched(2, "b", 2000)], 0)
        .await
        .unwrap();
    assert!(s
        .fire_schedule("f", 0, 1000, 1000, Some(1500), &tick("t1"))
        .await
        .unwrap());
    // Redeploy: "a" unchanged keeps its next due time; "b" changed restarts.
    s.sync_schedules("f", &[sched(0, "a", 9999), sched(2, "c", 3000)], 10)
        .await
        .unwrap();
    let rows = s.schedules(Some("f")).await.unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!((rows[0].idx, rows[0].next_due_ms), (0, Some(1500)));
    assert_eq!(rows[0].last_due_ms, Some(1000));
    assert_eq!(
        (rows[1].spec.as_str(), rows[1].next_due_ms),
        ("c", Some(3000))
    );
    assert_eq!(s.next_schedule_due().await.unwrap(), Some(1500));
    assert_eq!(s.due_schedules(1500).await.unwrap().len(), 1);
    // Removed from the manifest (or the function deleted): gone.
    s.sync_schedules("f", &[], 20).await.unwrap();
    assert!(s.schedules(None).await.unwrap().is_empty());
    db.finish(s).await;
}

async fn a_tick_fires_once_among_racing_servers(db: &TestDb) {
    let s = db.open().await;
    s.sync_schedules("f", &[sched(0, "a", 1000)], 0)
        .await
        .unwrap();
    // Eight "servers" race for each of 20 ticks; exactly one wins each.
    for k in 0..20i64 {
        let due = 1000 + k * 1000;
        let mut tasks = Vec::new();
        for w in 0..8 {
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                s.fire_schedule(
                    "f",
                    0,
                    due,
                    due,
                    Some(due + 1000),
                    &tick(&format!("t{k}-{w}")),
                )
                .await
                .unwrap()
            }));
        }
        let mut wins = 0;
        for t in tasks {
            wins += usize::from(t.await.unwrap());
        }
        assert_eq!(wins, 1, "tick {k}");
    }
    assert_eq!(s.count_events(Some("f")).await.unwrap(), 20);
    // A stale read (the due time moved on) fires nothing.
    assert!(!s
        .fire_schedule("f", 0, 1000, 1000, Some(2000), &tick("stale"))
        .await
        .unwrap());
    db.finish(s).await;
}

suite!(
    schedules_sync_keeps_unchanged_ones,
    a_tick_fires_once_among_racing_servers,
);
