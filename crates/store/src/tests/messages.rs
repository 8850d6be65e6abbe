//! Durable queues, their messages and event source mappings, on both databases.

use super::*;
use crate::{MappingRow, NewMessage, QueueRow, Redrive};

fn queue(name: &str) -> QueueRow {
    QueueRow {
        name: name.into(),
        created_ms: 1,
        visibility_timeout_ms: 30_000,
        delay_ms: 0,
        max_message_bytes: MAX_MESSAGE_BYTES,
        redrive: None,
        origin: "api".into(),
    }
}

fn msg(id: &str, sent_ms: i64) -> NewMessage {
    NewMessage {
        id: id.into(),
        body: format!("body of {id}"),
        md5_of_body: "md5".into(),
        attributes: None,
        md5_of_attributes: None,
        sent_ms,
        visible_ms: sent_ms,
        trace: None,
    }
}

fn ids(msgs: &[crate::Message]) -> Vec<&str> {
    msgs.iter().map(|m| m.id.as_str()).collect()
}

fn handle(m: &crate::Message) -> &str {
    m.receipt_handle.as_deref().unwrap()
}

async fn queues_create_ensure_list_delete(db: &TestDb) {
    let s = db.open().await;
    let (q, created) = s.create_queue(&queue("jobs")).await.unwrap();
    assert!(created);
    assert_eq!(q, queue("jobs"));
    // The same name and settings: the existing queue (its creation time).
    let mut again = queue("jobs");
    again.created_ms = 99;
    assert_eq!(
        s.create_queue(&again).await.unwrap(),
        (queue("jobs"), false)
    );
    // Other settings: a conflict.
    let mut other = queue("jobs");
    other.visibility_timeout_ms = 5;
    assert!(matches!(
        s.create_queue(&other).await,
        Err(StoreError::Conflict(m)) if m.contains("jobs")
    ));
    // A manifest's queue wins, and keeps the creation time.
    let mut declared = other.clone();
    declared.origin = "manifest".into();
    declared.created_ms = 50;
    declared.redrive = Some(Redrive {
        dead_letter_queue: "jobs-dlq".into(),
        max_receive_count: 3,
    });
    s.ensure_queue(&declared).await.unwrap();
    let got = s.get_queue("jobs").await.unwrap().unwrap();
    assert_eq!((got.created_ms, got.origin.as_str()), (1, "manifest"));
    assert!(got.same_settings(&declared));
    s.ensure_queue(&queue("fresh")).await.unwrap();
    for n in ["job_a", "jobxa", "a"] {
        s.create_queue(&queue(n)).await.unwrap();
    }
    let names = |v: Vec<QueueRow>| v.into_iter().map(|q| q.name).collect::<Vec<_>>();
    // `_` is no wildcard in a prefix.
    assert_eq!(
        names(s.list_queues("job_", None, 10).await.unwrap()),
        ["job_a"]
    );
    assert_eq!(
        names(s.list_queues("job", None, 10).await.unwrap()),
        ["job_a", "jobs", "jobxa"]
    );
    assert_eq!(
        names(s.list_queues("", Some("fresh"), 2).await.unwrap()),
        ["job_a", "jobs"]
    );
    s.send_messages("jobs", &[msg("m1", 10)]).await.unwrap();
    assert!(s.delete_queue("jobs").await.unwrap());
    assert!(!s.delete_queue("jobs").await.unwrap());
    assert_eq!(s.get_queue("jobs").await.unwrap(), None);
    // Its messages went with it.
    s.create_queue(&queue("jobs")).await.unwrap();
    assert!(s
        .receive_messages("jobs", 100, 10, None)
        .await
        .unwrap()
        .is_empty());
    db.finish(s).await;
}

async fn send_receive_delete(db: &TestDb) {
    let s = db.open().await;
    assert!(matches!(
        s.send_messages("nope", &[msg("x", 1)]).await,
        Err(StoreError::NotFound(m)) if m.contains("nope")
    ));
    s.create_queue(&queue("q")).await.unwrap();
    let mut batch: Vec<NewMessage> = (0..12).map(|i| msg(&format!("m{i:02}"), 100)).collect();
    batch[3].attributes = Some(r#"{"k":{"DataType":"String","StringValue":"v"}}"#.into());
    batch[3].md5_of_attributes = Some("amd5".into());
    // Delayed: not visible before 5,000.
    batch[11].visible_ms = 5_000;
    s.send_messages("q", &batch).await.unwrap();
    // A taken id fails the whole batch.
    assert!(matches!(
        s.send_messages("q", &[msg("new", 100), msg("m00", 100)])
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.next_visible_ms("q").await.unwrap(), Some(100));

    let a = s.receive_messages("q", 1_000, 4, None).await.unwrap();
    assert_eq!(ids(&a), ["m00", "m01", "m02", "m03"]);
    assert_eq!(a[3].attributes, batch[3].attributes);
    assert_eq!(a[3].md5_of_attributes.as_deref(), Some("amd5"));
    assert_eq!(a[0].body, "body of m00");
    assert_eq!(
        (a[0].receive_count, a[0].first_receive_ms, a[0].visible_ms),
        (1, Some(1_000), 31_000)
    );
    let handles: Vec<&str> = a.iter().map(handle).collect();
    let mut distinct = handles.clone();
    distinct.dedup();
    assert_eq!(distinct.len(), 4);
    // A visibility of its own; the in-flight ones are not received again.
    let b = s.receive_messages("q", 1_000, 10, Some(0)).await.unwrap();
    assert_eq!(ids(&b), ["m04", "m05", "m06", "m07", "m08", "m09", "m10"]);
    let st = &s.queue_stats(Some("q"), 1_000).await.unwrap()[0];
    assert_eq!(
        (st.visible, st.in_flight, st.delayed, st.oldest_sent_ms),
        (7, 4, 1, Some(100))
    );
    // Visibility 0: visible again at once, under a new handle.
    let c = s.receive_messages("q", 1_001, 1, None).await.unwrap();
    assert_eq!(ids(&c), ["m04"]);
    assert_eq!(
        (c[0].receive_count, c[0].first_receive_ms),
        (2, Some(1_000))
    );
    assert_ne!(handle(&c[0]), handle(&b[0]));

    // Delete by handle, per entry; a stale handle deletes nothing.
    let done = s
        .delete_messages("q", &[handles[0], handle(&b[0]), handles[1], "nope"])
        .await
        .unwrap();
    assert_eq!(done, [true, false, true, false]);
    // Another queue's handle does nothing here.
    s.create_queue(&queue("other")).await.unwrap();
    assert_eq!(
        s.delete_messages("other", &[handles[2]]).await.unwrap(),
        [false]
    );

    // Visibility changed by handle.
    assert!(s.change_visibility("q", handles[2], 2_000).await.unwrap());
    assert!(!s.change_visibility("q", "nope", 2_000).await.unwrap());
    // Visible again, after those visible since 1,000 (the oldest visible
    // first); a receive's messages come in send order.
    assert_eq!(
        ids(&s.receive_messages("q", 2_000, 10, None).await.unwrap()),
        ["m02", "m05", "m06", "m07", "m08", "m09", "m10"]
    );
    // Released: visible now, the receive uncounted.
    assert_eq!(
        s.release_messages("q", &[handles[3]], 3_000).await.unwrap(),
        1
    );
    let d = s.receive_messages("q", 3_000, 1, None).await.unwrap();
    assert_eq!(ids(&d), ["m03"]);
    assert_eq!(
        (d[0].receive_count, d[0].first_receive_ms),
        (1, Some(3_000))
    );
    // The delayed one shows at its time.
    let e = s.receive_messages("q", 5_000, 10, None).await.unwrap();
    assert!(ids(&e).contains(&"m11"), "{:?}", ids(&e));

    assert_eq!(s.purge_queue("q").await.unwrap(), 10);
    assert_eq!(s.next_visible_ms("q").await.unwrap(), None);
    assert!(matches!(
        s.receive_messages("gone", 1, 1, None).await,
        Err(StoreError::NotFound(_))
    ));
    db.finish(s).await;
}

async fn dead_letters_and_redrive(db: &TestDb) {
    let s = db.open().await;
    s.create_queue(&queue("dlq")).await.unwrap();
    let mut q = queue("work");
    q.redrive = Some(Redrive {
        dead_letter_queue: "dlq".into(),
        max_receive_count: 2,
    });
    s.create_queue(&q).await.unwrap();
    s.send_messages("work", &[msg("poison", 10)]).await.unwrap();
    // Received twice without a delete (visibility 0).
    for now in [100, 101] {
        let got = s.receive_messages("work", now, 1, Some(0)).await.unwrap();
        assert_eq!(ids(&got), ["poison"]);
    }
    s.send_messages("work", &[msg("fine", 11)]).await.unwrap();
    // The third receive moves it to the DLQ instead and delivers the next.
    let got = s
        .receive_messages("work", 102, 10, Some(60_000))
        .await
        .unwrap();
    assert_eq!(ids(&got), ["fine"]);
    let stats = s.queue_stats(None, 102).await.unwrap();
    let of = |n: &str| stats.iter().find(|s| s.name == n).unwrap().clone();
    assert_eq!((of("work").dead_letters, of("work").in_flight), (1, 1));
    assert_eq!(of("dlq").visible, 1);
    let dead = s.dead_letter_messages("work", 10).await.unwrap();
    assert_eq!(ids(&dead), ["poison"]);
    assert_eq!(
        (
            dead[0].queue.as_str(),
            dead[0].source_queue.as_deref(),
            dead[0].receive_count
        ),
        ("dlq", Some("work"), 0)
    );
    // Redrive: back to the source queue, never received.
    assert_eq!(s.redrive("work", 200).await.unwrap(), 1);
    assert!(s.dead_letter_messages("work", 10).await.unwrap().is_empty());
    let again = s.receive_messages("work", 200, 10, None).await.unwrap();
    assert_eq!(ids(&again), ["poison"]);
    assert_eq!(again[0].receive_count, 1);
    assert_eq!(s.redrive("work", 300).await.unwrap(), 0);
    db.finish(s).await;
}

async fn concurrent_receives_never_overlap(db: &TestDb) {
    let s = db.open().await;
    s.create_queue(&queue("c")).await.unwrap();
    let batch: Vec<NewMessage> = (0..300).map(|i| msg(&format!("c{i:03}"), 0)).collect();
    for chunk in batch.chunks(10) {
        s.send_messages("c", chunk).await.unwrap();
    }
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = s.receive_messages("c", 10, 7, None).await.unwrap();
                if got.is_empty() {
                    return mine;
                }
                mine.extend(got.into_iter().map(|m| m.id));
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
    assert_eq!((n, all.len()), (300, 300));
    db.finish(s).await;
}

fn mapping(uuid: &str, queue: &str, function: &str, origin: &str) -> MappingRow {
    MappingRow {
        uuid: uuid.into(),
        queue: queue.into(),
        function: function.into(),
        qualifier: String::new(),
        batch_size: 10,
        batch_window_ms: 0,
        report_batch_item_failures: false,
        enabled: true,
        origin: origin.into(),
        created_ms: 1,
        updated_ms: 1,
    }
}

async fn event_source_mappings(db: &TestDb) {
    let s = db.open().await;
    let a = mapping("u1", "q1", "f", "api");
    s.create_mapping(&a).await.unwrap();
    assert!(matches!(
        s.create_mapping(&mapping("u2", "q1", "f", "api")).await,
        Err(StoreError::Conflict(m)) if m.contains("q1")
    ));
    let mut qualified = mapping("u3", "q1", "f", "api");
    qualified.qualifier = "live".into();
    qualified.created_ms = 2;
    s.create_mapping(&qualified).await.unwrap();
    let mut g = mapping("u4", "q2", "g", "api");
    g.created_ms = 3;
    s.create_mapping(&g).await.unwrap();
    assert_eq!(s.get_mapping("u1").await.unwrap(), Some(a.clone()));
    assert_eq!(s.get_mapping("zz").await.unwrap(), None);
    let uuids = |v: Vec<MappingRow>| v.into_iter().map(|m| m.uuid).collect::<Vec<_>>();
    assert_eq!(
        uuids(s.list_mappings(Some("f"), None).await.unwrap()),
        ["u1", "u3"]
    );
    assert_eq!(
        uuids(s.list_mappings(None, Some("q2")).await.unwrap()),
        ["u4"]
    );
    assert_eq!(
        uuids(s.list_mappings(Some("f"), Some("q2")).await.unwrap()),
        Vec::<String>::new()
    );
    assert_eq!(s.list_mappings(None, None).await.unwrap().len(), 3);

    let mut changed = a.clone();
    changed.batch_size = 100;
    changed.enabled = false;
    changed.report_batch_item_failures = true;
    changed.updated_ms = 9;
    assert!(s.update_mapping(&changed).await.unwrap());
    assert_eq!(s.get_mapping("u1").await.unwrap(), Some(changed.clone()));
    assert!(!s
        .update_mapping(&mapping("zz", "q", "f", "api"))
        .await
        .unwrap());

    // The manifest takes over (f, q1) keeping its uuid, adds (f, q3); then
    // a deploy without q3 drops it; API mappings of other queues stay.
    let mut m1 = mapping("m1", "q1", "f", "manifest");
    m1.batch_size = 5;
    s.replace_manifest_mappings("f", &[m1.clone(), mapping("m3", "q3", "f", "manifest")])
        .await
        .unwrap();
    let got = s.get_mapping("u1").await.unwrap().unwrap();
    assert_eq!((got.origin.as_str(), got.batch_size), ("manifest", 5));
    assert!(s.get_mapping("m3").await.unwrap().is_some());
    s.replace_manifest_mappings("f", &[m1]).await.unwrap();
    assert_eq!(
        uuids(s.list_mappings(Some("f"), None).await.unwrap()),
        ["u1", "u3"]
    );
    assert_eq!(s.delete_mapping("u3").await.unwrap(), Some(qualified));
    assert_eq!(s.delete_mapping("u3").await.unwrap(), None);
    s.replace_manifest_mappings("f", &[]).await.unwrap();
    assert_eq!(uuids(s.list_mappings(None, None).await.unwrap()), ["u4"]);
    db.finish(s).await;
}

suite!(
    queues_create_ensure_list_delete,
    send_receive_delete,
    dead_letters_and_redrive,
    concurrent_receives_never_overlap,
    event_source_mappings,
);
