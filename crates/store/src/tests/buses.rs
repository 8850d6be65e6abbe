//! Event-bus subscriptions and the all-or-none fan-out of events, on both
//! databases.

use super::*;
use crate::{BusSubscription, NewEvent};

fn sub(function: &str, idx: i64, bus: &str, pattern: &str) -> BusSubscription {
    BusSubscription {
        function: function.into(),
        idx,
        bus: bus.into(),
        qualifier: String::new(),
        pattern: pattern.into(),
    }
}

fn ev(id: &str, function: &str) -> NewEvent {
    NewEvent {
        id: id.into(),
        function: function.into(),
        qualifier: String::new(),
        source: "bus".into(),
        payload: format!("{{\"id\":\"{id}\"}}").into_bytes(),
        enqueued_ms: 100,
        next_attempt_ms: 100,
        trace: None,
    }
}

async fn subscriptions_are_replaced_listed_and_dropped(db: &TestDb) {
    let s = db.open().await;
    let a = [
        sub("a", 1, "orders", r#"{"source":["shop"]}"#),
        sub("a", 3, "audit", "{}"),
    ];
    s.replace_bus_subscriptions("a", &a).await.unwrap();
    s.replace_bus_subscriptions("b", &[sub("b", 0, "orders", "{}")])
        .await
        .unwrap();
    assert_eq!(
        s.bus_subscriptions("orders").await.unwrap(),
        [a[0].clone(), sub("b", 0, "orders", "{}")]
    );
    assert_eq!(s.bus_subscriptions("audit").await.unwrap(), [a[1].clone()]);
    assert!(s.bus_subscriptions("nobody").await.unwrap().is_empty());

    // A new configuration replaces the whole set: `a` left audit.
    let a2 = [sub("a", 0, "orders", r#"{"detail-type":["x"]}"#)];
    s.replace_bus_subscriptions("a", &a2).await.unwrap();
    assert!(s.bus_subscriptions("audit").await.unwrap().is_empty());
    assert_eq!(
        s.bus_subscriptions("orders").await.unwrap(),
        [a2[0].clone(), sub("b", 0, "orders", "{}")]
    );
    // A row of another function is refused, and nothing changes.
    assert!(matches!(
        s.replace_bus_subscriptions("a", &[sub("b", 5, "orders", "{}")])
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.bus_subscriptions("orders").await.unwrap().len(), 2);
    // No triggers left: no rows.
    s.replace_bus_subscriptions("a", &[]).await.unwrap();
    assert_eq!(
        s.bus_subscriptions("orders").await.unwrap(),
        [sub("b", 0, "orders", "{}")]
    );
    assert_eq!(s.drop_bus_subscriptions("b").await.unwrap(), 1);
    assert_eq!(s.drop_bus_subscriptions("b").await.unwrap(), 0);
    assert!(s.bus_subscriptions("orders").await.unwrap().is_empty());
    db.finish(s).await;
}

async fn events_are_enqueued_all_or_none(db: &TestDb) {
    let s = db.open().await;
    s.enqueue_events(&[ev("x1", "a"), ev("x2", "b")])
        .await
        .unwrap();
    assert_eq!(s.count_events(None).await.unwrap(), 2);
    // One id already queued: the whole batch is refused, the new one too.
    assert!(matches!(
        s.enqueue_events(&[ev("y1", "a"), ev("x2", "b")]).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.count_events(None).await.unwrap(), 2);
    assert_eq!(s.count_events(Some("a")).await.unwrap(), 1);
    let depths: Vec<(String, String, i64)> = s
        .event_depths()
        .await
        .unwrap()
        .into_iter()
        .map(|d| (d.function, d.source, d.count))
        .collect();
    assert_eq!(
        depths,
        [("a".into(), "bus".into(), 1), ("b".into(), "bus".into(), 1)]
    );
    s.enqueue_events(&[]).await.unwrap();
    let claimed = s.claim_events("w", 1000, 61_000, 10).await.unwrap();
    let mut got: Vec<(String, String, String)> = claimed
        .into_iter()
        .map(|e| (e.id, e.function, e.source))
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            ("x1".into(), "a".into(), "bus".into()),
            ("x2".into(), "b".into(), "bus".into())
        ]
    );
    db.finish(s).await;
}

suite!(
    subscriptions_are_replaced_listed_and_dropped,
    events_are_enqueued_all_or_none,
);
