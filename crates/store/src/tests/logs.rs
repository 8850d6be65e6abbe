//! Log lines and invocation records, on both databases.

use super::*;

async fn logs_filtering(db: &TestDb) {
    let s = db.open().await;
    let mut lines = vec![
        line("f", "r1", 100, "one"),
        line("f", "r2", 200, "two"),
        line("g", "r9", 250, "other function"),
        line("f", "r1", 300, "three"),
    ];
    lines.extend((0..450).map(|i| line("h", "rh", 1000 + i, &format!("bulk {i}"))));
    s.append_logs(&lines).await.unwrap();

    let all = s.logs("f", 0, None, 0, 100).await.unwrap();
    let texts: Vec<&str> = all.iter().map(|(_, l)| l.text.as_str()).collect();
    assert_eq!(texts, vec!["one", "two", "three"]);
    assert!(all.windows(2).all(|w| w[0].0 < w[1].0));

    let r1 = s.logs("f", 0, Some("r1"), 0, 100).await.unwrap();
    assert_eq!(
        r1.iter().map(|(_, l)| l.text.as_str()).collect::<Vec<_>>(),
        vec!["one", "three"]
    );

    let after = s.logs("f", 0, None, all[0].0, 100).await.unwrap();
    assert_eq!(
        after
            .iter()
            .map(|(_, l)| l.text.as_str())
            .collect::<Vec<_>>(),
        vec!["two", "three"]
    );
    let after_r1 = s.logs("f", 0, Some("r1"), all[0].0, 100).await.unwrap();
    assert_eq!(after_r1.len(), 1);
    assert_eq!(after_r1[0].1, line("f", "r1", 300, "three"));

    assert_eq!(s.logs("f", 150, None, 0, 100).await.unwrap().len(), 2);
    assert_eq!(s.logs("f", 0, None, 0, 1).await.unwrap().len(), 1);
    // More lines than one multi-row insert holds come back whole (every
    // field bound to its own column) and in order.
    let bulk = s.logs("h", 0, None, 0, 1000).await.unwrap();
    assert!(bulk.windows(2).all(|w| w[0].0 < w[1].0));
    let bulk: Vec<LogLine> = bulk.into_iter().map(|(_, l)| l).collect();
    assert_eq!(bulk, lines[4..]);

    assert_eq!(s.prune_logs(1000).await.unwrap(), 4);
    assert!(s.logs("f", 0, None, 0, 100).await.unwrap().is_empty());
    assert_eq!(s.logs("h", 0, None, 0, 1000).await.unwrap().len(), 450);
    db.finish(s).await;
}

async fn logs_capped_per_function(db: &TestDb) {
    let s = db.open().await;
    let mut lines = Vec::new();
    for i in 0..50 {
        lines.push(line("loud", "r", i, &format!("loud {i}")));
        if i % 10 == 0 {
            lines.push(line("quiet", "r", i, &format!("quiet {i}")));
        }
    }
    s.append_logs(&lines).await.unwrap();
    assert_eq!(s.prune_function_logs("loud", 20).await.unwrap(), 30);
    assert_eq!(s.prune_function_logs("quiet", 20).await.unwrap(), 0);
    assert_eq!(s.prune_function_logs("none", 20).await.unwrap(), 0);
    let loud = s.logs("loud", 0, None, 0, 1000).await.unwrap();
    let texts: Vec<&str> = loud.iter().map(|(_, l)| l.text.as_str()).collect();
    assert_eq!(texts.len(), 20);
    assert_eq!(
        (texts[0], texts[19]),
        ("loud 30", "loud 49"),
        "the newest stay"
    );
    assert_eq!(s.logs("quiet", 0, None, 0, 1000).await.unwrap().len(), 5);
    assert_eq!(s.log_functions().await.unwrap(), ["loud", "quiet"]);
    db.finish(s).await;
}

async fn dollar_placeholders(db: &TestDb) {
    let s = db.open().await;
    // Out of order and reused: $N must bind by number, not by position.
    let row: (i64, String, i64) = sqlx::query("SELECT $2 + $2, $1, $2 * 10")
        .bind("x")
        .bind(21_i64)
        .fetch_one(&s.pool)
        .await
        .map(|r: AnyRow| (r.get(0), r.get(1), r.get(2)))
        .unwrap();
    assert_eq!(row, (42, "x".to_string(), 210));
    // Values survive a round trip through a table, including NULL and large i64.
    s.record_invocations(&[InvocationRecord {
        start_ms: i64::MAX - 1,
        ..inv("big", "f", 0)
    }])
    .await
    .unwrap();
    let got = s.invocations_since(i64::MAX - 1, i64::MAX).await.unwrap();
    assert_eq!(got[0].start_ms, i64::MAX - 1);
    db.finish(s).await;
}

suite!(
    logs_filtering,
    logs_capped_per_function,
    dollar_placeholders
);
