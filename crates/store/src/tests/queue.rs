//! The event queue, dead letters and EventInvokeConfig, on both databases.

use super::*;
use crate::{DeadLetter, EventInvokeConfigRow, LastError, NewEvent};

fn ev(id: &str, function: &str, due: i64) -> NewEvent {
    NewEvent {
        id: id.into(),
        function: function.into(),
        qualifier: String::new(),
        source: "invoke".into(),
        payload: format!("{{\"id\":\"{id}\"}}").into_bytes(),
        enqueued_ms: due,
        next_attempt_ms: due,
        trace: None,
    }
}

async fn queue_claim_and_complete(db: &TestDb) {
    let s = db.open().await;
    for i in 0..5 {
        s.enqueue_event(&ev(&format!("e{i}"), "f", 100 + i))
            .await
            .unwrap();
    }
    // Not yet due.
    s.enqueue_event(&ev("later", "f", 10_000)).await.unwrap();
    assert!(matches!(
        s.enqueue_event(&ev("e0", "f", 1)).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.next_event_due().await.unwrap(), Some(100));

    let a = s.claim_events("w1", 1000, 61_000, 3).await.unwrap();
    assert_eq!(
        a.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
        ["e0", "e1", "e2"]
    );
    assert_eq!(a[0].runs, 1);
    assert_eq!(a[0].payload, br#"{"id":"e0"}"#);
    // What one worker holds, another does not get.
    let b = s.claim_events("w2", 1000, 61_000, 10).await.unwrap();
    assert_eq!(
        b.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
        ["e3", "e4"]
    );
    assert!(s
        .claim_events("w3", 1000, 61_000, 10)
        .await
        .unwrap()
        .is_empty());

    // Only the holder completes.
    s.complete_events("w2", &["e0".to_string()]).await.unwrap();
    assert_eq!(s.count_events(None).await.unwrap(), 6);
    s.complete_events("w1", &["e0".to_string(), "e1".to_string()])
        .await
        .unwrap();
    assert_eq!(s.count_events(Some("f")).await.unwrap(), 4);

    // A function error: back to pending with what the run left.
    let last = LastError {
        error_type: "ValueError".into(),
        body: br#"{"errorType":"ValueError"}"#.to_vec(),
        version: "$LATEST".into(),
    };
    assert!(!s
        .reschedule_event("w2", "e2", 1, 2000, Some(&last))
        .await
        .unwrap());
    assert!(s
        .reschedule_event("w1", "e2", 1, 2000, Some(&last))
        .await
        .unwrap());
    assert!(s
        .claim_events("w1", 1999, 70_000, 10)
        .await
        .unwrap()
        .is_empty());
    let again = s.claim_events("w1", 2000, 70_000, 10).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempts, 1);
    assert_eq!(again[0].runs, 2);
    assert_eq!(again[0].last_error_type.as_deref(), Some("ValueError"));
    assert_eq!(again[0].last_error.as_deref(), Some(&last.body[..]));
    // A throttle keeps the last error.
    assert!(s.reschedule_event("w1", "e2", 1, 2500, None).await.unwrap());
    let again = s.claim_events("w1", 3000, 70_000, 10).await.unwrap();
    assert_eq!(again[0].last_error_type.as_deref(), Some("ValueError"));
    assert_eq!(again[0].runs, 3);
    db.finish(s).await;
}

async fn queue_leases_and_release(db: &TestDb) {
    let s = db.open().await;
    s.enqueue_event(&ev("a", "f", 0)).await.unwrap();
    s.enqueue_event(&ev("b", "f", 0)).await.unwrap();
    let got = s.claim_events("dead", 100, 1000, 10).await.unwrap();
    assert_eq!(got.len(), 2);
    // The lease holds until it runs out, unless renewed.
    assert!(s.claim_events("w", 999, 5000, 10).await.unwrap().is_empty());
    assert_eq!(s.renew_event_leases("dead", 1500).await.unwrap(), 2);
    assert!(s
        .claim_events("w", 1200, 5000, 10)
        .await
        .unwrap()
        .is_empty());
    let stolen = s.claim_events("w", 1501, 5000, 1).await.unwrap();
    assert_eq!(stolen.len(), 1);
    // The old holder can no longer finish it.
    assert!(!s
        .finish_event("dead", &stolen[0].id, None, None)
        .await
        .unwrap());
    // A restarted server takes back what it held.
    assert_eq!(s.release_claimed_events("dead").await.unwrap(), 1);
    let back = s.claim_events("dead", 1600, 9000, 10).await.unwrap();
    assert_eq!(back.len(), 1);
    assert_ne!(back[0].id, stolen[0].id);
    db.finish(s).await;
}

async fn queue_finish_dead_letters_and_forward(db: &TestDb) {
    let s = db.open().await;
    s.create_function("f", None, &cfg(128), "aaa", 10)
        .await
        .unwrap();
    s.enqueue_event(&ev("x", "f", 0)).await.unwrap();
    s.enqueue_event(&ev("y", "f", 0)).await.unwrap();
    let got = s.claim_events("w", 10, 1000, 10).await.unwrap();
    assert_eq!(got.len(), 2);
    let dl = DeadLetter {
        function: "f".into(),
        request_id: "x".into(),
        failed_ms: 20,
        condition: "RetriesExhausted".into(),
        attempts: 3,
        record: r#"{"version":"1.0"}"#.into(),
    };
    assert!(s.finish_event("w", "x", Some(&dl), None).await.unwrap());
    // Twice: nothing more is written.
    assert!(!s.finish_event("w", "x", Some(&dl), None).await.unwrap());
    let fwd = NewEvent {
        source: "destination".into(),
        ..ev("z", "dest", 30)
    };
    assert!(s.finish_event("w", "y", None, Some(&fwd)).await.unwrap());
    assert_eq!(s.dead_letters("f", 100).await.unwrap(), vec![dl.clone()]);
    assert_eq!(
        s.dead_letter_counts().await.unwrap(),
        [("f".to_string(), 1)]
    );
    let z = s.claim_events("w", 30, 1000, 10).await.unwrap();
    assert_eq!(z.len(), 1);
    assert_eq!((z[0].id.as_str(), z[0].function.as_str()), ("z", "dest"));
    assert_eq!(z[0].source, "destination");

    // Dead letters survive a reopen; dropping the function's events removes
    // its queue, its dead letters and its settings.
    s.enqueue_event(&ev("q", "f", 0)).await.unwrap();
    let row = EventInvokeConfigRow {
        function: "f".into(),
        qualifier: "$LATEST".into(),
        max_retry_attempts: Some(0),
        max_event_age_s: None,
        on_success: None,
        on_failure: Some("arn:aws:lambda:us-east-1:000000000000:function:dest".into()),
        updated_ms: 5,
    };
    s.put_event_invoke_config(&row).await.unwrap();
    let s2 = db.open().await;
    assert_eq!(s2.dead_letters("f", 100).await.unwrap().len(), 1);
    s2.close().await;
    assert_eq!(s.drop_function_events("f").await.unwrap(), 1);
    assert!(s.dead_letters("f", 100).await.unwrap().is_empty());
    assert!(s.dead_letter_counts().await.unwrap().is_empty());
    assert!(s
        .get_event_invoke_config("f", "$LATEST")
        .await
        .unwrap()
        .is_none());
    assert_eq!(s.count_events(Some("dest")).await.unwrap(), 1);
    db.finish(s).await;
}

async fn event_invoke_configs(db: &TestDb) {
    let s = db.open().await;
    assert!(s
        .get_event_invoke_config("f", "$LATEST")
        .await
        .unwrap()
        .is_none());
    let mut row = EventInvokeConfigRow {
        function: "f".into(),
        qualifier: "$LATEST".into(),
        max_retry_attempts: Some(1),
        max_event_age_s: Some(60),
        on_success: None,
        on_failure: None,
        updated_ms: 1,
    };
    s.put_event_invoke_config(&row).await.unwrap();
    row.max_retry_attempts = None;
    row.on_failure = Some("arn".into());
    row.updated_ms = 2;
    s.put_event_invoke_config(&row).await.unwrap();
    let v1 = EventInvokeConfigRow {
        qualifier: "1".into(),
        ..row.clone()
    };
    s.put_event_invoke_config(&v1).await.unwrap();
    assert_eq!(
        s.get_event_invoke_config("f", "$LATEST").await.unwrap(),
        Some(row.clone())
    );
    assert_eq!(
        s.list_event_invoke_configs("f").await.unwrap(),
        vec![row.clone(), v1]
    );
    assert!(s.delete_event_invoke_config("f", "1").await.unwrap());
    assert!(!s.delete_event_invoke_config("f", "1").await.unwrap());
    db.finish(s).await;
}

async fn concurrent_claims_never_overlap(db: &TestDb) {
    let s = db.open().await;
    for i in 0..200 {
        s.enqueue_event(&ev(&format!("c{i:03}"), "f", 0))
            .await
            .unwrap();
    }
    let mut tasks = Vec::new();
    for w in 0..4 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = s
                    .claim_events(&format!("w{w}"), 10, 100_000, 7)
                    .await
                    .unwrap();
                if got.is_empty() {
                    return mine;
                }
                mine.extend(got.into_iter().map(|e| e.id));
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort();
    let n = all.len();
    all.dedup();
    assert_eq!((n, all.len()), (200, 200));
    db.finish(s).await;
}

suite!(
    queue_claim_and_complete,
    queue_leases_and_release,
    queue_finish_dead_letters_and_forward,
    event_invoke_configs,
    concurrent_claims_never_overlap,
);
