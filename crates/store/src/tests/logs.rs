//! Log lines and invocation records, on both databases.

use super::*;
use updraft_core::logs::Level;

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

async fn query_filters(db: &TestDb) {
    let s = db.open().await;
    s.deploy("f", "shop", &cfg(128), "aaa", 1).await.unwrap();
    s.deploy("g", "shop", &cfg(128), "aaa", 1).await.unwrap();
    s.deploy("x", "other", &cfg(128), "aaa", 1).await.unwrap();
    s.append_logs(&[
        line("f", "r1", 100, "[WARNING]\tt\tr1\tDisk Low"),
        line("f", "r1", 110, "plain disk print"),
        line("g", "r2", 200, r#"{"level":"ERROR","message":"disk gone"}"#),
        line("x", "r3", 300, "[ERROR] disk elsewhere"),
        line("f", "r4", 400, "INFO\tdisk fine"),
    ])
    .await
    .unwrap();
    s.record_invocations(&[
        inv("r1", "f", 100),
        InvocationRecord {
            version: 2,
            ..inv("r4", "f", 400)
        },
    ])
    .await
    .unwrap();
    let texts =
        |rows: Vec<LogRow>| -> Vec<String> { rows.into_iter().map(|r| r.line.text).collect() };
    let base = LogQuery::of_function("f", 0, None, 0, 100);
    let all = s.query_logs(&base).await.unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(all[0].level.as_deref(), Some("WARN"));
    assert_eq!(all[1].level, None);
    assert_eq!((all[0].version, all[2].version), (Some(1), Some(2)));
    let app = LogQuery {
        scope: LogScope::App("shop"),
        ..base
    };
    assert_eq!(s.query_logs(&app).await.unwrap().len(), 4);
    let warn = LogQuery {
        min_level: Some(Level::Warn),
        ..app
    };
    assert_eq!(
        texts(s.query_logs(&warn).await.unwrap()),
        vec![
            "[WARNING]\tt\tr1\tDisk Low",
            r#"{"level":"ERROR","message":"disk gone"}"#
        ]
    );
    let text = LogQuery {
        text: Some("disk"),
        ..app
    };
    assert_eq!(
        s.query_logs(&text).await.unwrap().len(),
        3,
        "case-sensitive"
    );
    let v2 = LogQuery {
        version: Some(2),
        ..base
    };
    assert_eq!(
        texts(s.query_logs(&v2).await.unwrap()),
        vec!["INFO\tdisk fine"]
    );
    let window = LogQuery {
        since_ms: 105,
        until_ms: Some(400),
        ..base
    };
    assert_eq!(
        texts(s.query_logs(&window).await.unwrap()),
        vec!["plain disk print", "INFO\tdisk fine"]
    );
    // Paging with a filter: each page starts after the last id seen.
    let first = s.query_logs(&LogQuery { limit: 1, ..text }).await.unwrap();
    let rest = s
        .query_logs(&LogQuery {
            after_id: first[0].id,
            ..text
        })
        .await
        .unwrap();
    assert_eq!(rest.len(), 2);
    db.finish(s).await;
}

suite!(
    query_filters,
    logs_filtering,
    logs_capped_per_function,
    dollar_placeholders
);
