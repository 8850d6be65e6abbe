//! Functions, versions and host uids, on both databases.

use super::*;

async fn deploy_semantics(db: &TestDb) {
    let s = db.open().await;
    let first = s
        .deploy("hello", "shop", &cfg(128), "aaa", 10)
        .await
        .unwrap();
    assert!(first.changed);
    assert_eq!(first.version.version, 1);
    assert_eq!(first.version.config, cfg(128));
    assert_eq!(first.version.description, "hello");

    let again = s
        .deploy("hello", "shop", &cfg(128), "aaa", 10)
        .await
        .unwrap();
    assert!(!again.changed);
    assert_eq!(again.version, first.version);

    let second = s
        .deploy("hello", "shop", &cfg(256), "aaa", 10)
        .await
        .unwrap();
    assert!(second.changed);
    assert_eq!(second.version.version, 2);
    assert_ne!(second.version.revision, first.version.revision);
    let code = s
        .deploy("hello", "shop", &cfg(256), "bbb", 11)
        .await
        .unwrap();
    assert_eq!(code.version.version, 3);

    // Back to old content: a new version all the same (only the last one counts).
    let back = s
        .deploy("hello", "shop", &cfg(128), "aaa", 10)
        .await
        .unwrap();
    assert!(back.changed);
    assert_eq!(back.version.version, 4);
    assert_eq!(back.version.revision, first.version.revision);

    let err = s
        .deploy("hello", "billing", &cfg(128), "aaa", 10)
        .await
        .unwrap_err();
    match err {
        StoreError::Conflict(m) => assert!(m.contains("shop") && m.contains("billing"), "{m}"),
        e => panic!("expected Conflict, got {e:?}"),
    }
    // The conflicting deploy rolled back entirely.
    assert_eq!(s.list_versions("hello").await.unwrap().len(), 5);

    let f = s.get_function("hello").await.unwrap().unwrap();
    assert_eq!(f.app.as_deref(), Some("shop"));
    assert_eq!(f.last_published, 4);
    let latest = s.get_version("hello", 0).await.unwrap().unwrap();
    assert_eq!(latest.revision, back.version.revision);
    db.finish(s).await;
}

async fn create_update_publish(db: &TestDb) {
    let s = db.open().await;
    let latest = s
        .create_function("f", None, &cfg(128), "aaa", 10)
        .await
        .unwrap();
    assert_eq!(latest.version, 0);
    assert!(matches!(
        s.create_function("f", Some("x"), &cfg(128), "aaa", 10)
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        s.update_latest("nope", &cfg(128), "a", 1).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.publish("nope", "").await,
        Err(StoreError::NotFound(_))
    ));

    let v1 = s.publish("f", "first").await.unwrap();
    assert_eq!((v1.version, v1.description.as_str()), (1, "first"));
    assert_eq!(v1.revision, latest.revision);
    // Same revision: the same version comes back, description untouched.
    let same = s.publish("f", "other").await.unwrap();
    assert_eq!(same, v1);

    let upd = s.update_latest("f", &cfg(512), "aaa", 10).await.unwrap();
    assert_ne!(upd.revision, v1.revision);
    let v2 = s.publish("f", "").await.unwrap();
    assert_eq!(v2.version, 2);
    assert_eq!(v2.config.memory_mb, 512);
    // Published versions are snapshots: later $LATEST changes leave them be.
    s.update_latest("f", &cfg(1024), "ccc", 12).await.unwrap();
    assert_eq!(
        s.get_version("f", 2)
            .await
            .unwrap()
            .unwrap()
            .config
            .memory_mb,
        512
    );

    let versions: Vec<i64> = s
        .list_versions("f")
        .await
        .unwrap()
        .iter()
        .map(|v| v.version)
        .collect();
    assert_eq!(versions, vec![0, 1, 2]);

    // Deleting the newest version never frees its number.
    assert!(matches!(
        s.delete_version("f", 0).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(s.delete_version("f", 2).await.unwrap());
    assert!(!s.delete_version("f", 2).await.unwrap());
    assert_eq!(
        s.get_function("f").await.unwrap().unwrap().last_published,
        1
    );
    let v3 = s.publish("f", "").await.unwrap();
    assert_eq!(v3.version, 3);

    // A function created through the API has no app: a manifest deploy may not take it over.
    match s.deploy("f", "shop", &cfg(128), "aaa", 10).await {
        Err(StoreError::Conflict(m)) => assert!(m.contains("shop") && m.contains("no app"), "{m}"),
        other => panic!("expected Conflict, got {other:?}"),
    }

    s.create_function("b", Some("x"), &cfg(128), "aaa", 10)
        .await
        .unwrap();
    s.create_function("a-1", None, &cfg(128), "aaa", 10)
        .await
        .unwrap();
    s.create_function("a_1", None, &cfg(128), "aaa", 10)
        .await
        .unwrap();
    let names: Vec<String> = s
        .list_functions()
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.name)
        .collect();
    assert_eq!(names, vec!["a-1", "a_1", "b", "f"]);
    let latest: Vec<(String, i64)> = s
        .all_latest()
        .await
        .unwrap()
        .into_iter()
        .map(|v| (v.function, v.version))
        .collect();
    assert_eq!(
        latest,
        vec![
            ("a-1".into(), 0),
            ("a_1".into(), 0),
            ("b".into(), 0),
            ("f".into(), 0)
        ]
    );
    db.finish(s).await;
}

async fn persists_across_reopen(db: &TestDb) {
    let s = db.open().await;
    s.deploy("hello", "shop", &cfg(128), "aaa", 10)
        .await
        .unwrap();
    s.append_logs(&[line("hello", "r1", 5, "hi")])
        .await
        .unwrap();
    s.close().await;

    let s = db.open().await;
    s.ping().await.unwrap();
    let f = s.get_function("hello").await.unwrap().unwrap();
    assert_eq!(f.last_published, 1);
    assert_eq!(
        s.get_version("hello", 1).await.unwrap().unwrap().config,
        cfg(128)
    );
    assert!(
        !s.deploy("hello", "shop", &cfg(128), "aaa", 10)
            .await
            .unwrap()
            .changed
    );
    assert_eq!(s.logs("hello", 0, None, 0, 10).await.unwrap().len(), 1);
    db.finish(s).await;
}

async fn delete_keeps_invocations_and_logs(db: &TestDb) {
    let s = db.open().await;
    s.deploy("hello", "shop", &cfg(128), "aaa", 10)
        .await
        .unwrap();
    let mut warm = inv("r2", "hello", 2000);
    warm.cold = false;
    warm.init_us = None;
    warm.outcome = "function".into();
    warm.error_type = Some("ValueError".into());
    s.record_invocations(&[inv("r1", "hello", 1000), warm.clone()])
        .await
        .unwrap();
    // A retried flush is ignored, not an error.
    s.record_invocations(&[inv("r1", "hello", 1000), inv("r3", "hello", 3000)])
        .await
        .unwrap();
    s.append_logs(&[line("hello", "r1", 1000, "a")])
        .await
        .unwrap();

    assert!(s.delete_function("hello").await.unwrap());
    assert!(!s.delete_function("hello").await.unwrap());
    assert!(s.get_function("hello").await.unwrap().is_none());
    assert!(s.get_version("hello", 1).await.unwrap().is_none());
    assert!(s.list_versions("hello").await.unwrap().is_empty());

    let all = s.invocations_since(0, 10_000).await.unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(all[0], inv("r1", "hello", 1000));
    assert_eq!(all[1], warm);
    let window = s.invocations_since(2000, 3000).await.unwrap();
    assert_eq!(
        window
            .iter()
            .map(|r| r.request_id.as_str())
            .collect::<Vec<_>>(),
        vec!["r2"]
    );
    assert_eq!(s.logs("hello", 0, None, 0, 10).await.unwrap().len(), 1);

    // The name is free again, and versions restart from 1 for the new function.
    let again = s
        .deploy("hello", "billing", &cfg(128), "aaa", 10)
        .await
        .unwrap();
    assert_eq!(again.version.version, 1);

    // Many records: exercises several multi-row chunks.
    let many: Vec<InvocationRecord> = (0..130)
        .map(|i| inv(&format!("m{i}"), "bulk", 5000 + i))
        .collect();
    s.record_invocations(&many).await.unwrap();
    assert_eq!(s.invocations_since(5000, 6000).await.unwrap(), many);
    db.finish(s).await;
}

async fn corrupt_config_is_reported(db: &TestDb) {
    let s = db.open().await;
    s.create_function("f", None, &cfg(128), "aaa", 10)
        .await
        .unwrap();
    sqlx::query("UPDATE versions SET config = $1 WHERE function = $2")
        .bind("{not json")
        .bind("f")
        .execute(&s.pool)
        .await
        .unwrap();
    assert!(matches!(
        s.get_version("f", 0).await,
        Err(StoreError::Corrupt(_))
    ));
    match s.list_with_latest().await {
        Err(StoreError::Corrupt(m)) => assert!(m.contains("function f"), "{m}"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    db.finish(s).await;
}

#[tokio::test]
async fn concurrent_publishes_get_distinct_versions() {
    for db in [Some(TestDb::sqlite()), TestDb::postgres().await]
        .into_iter()
        .flatten()
    {
        let s = db.open().await;
        s.create_function("c", None, &cfg(128), "aaa", 1)
            .await
            .unwrap();
        let mut tasks = Vec::new();
        for i in 0..8u32 {
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                s.update_latest("c", &cfg(128 + i), "aaa", 1).await.unwrap();
                s.publish("c", "").await.unwrap().version
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let versions: Vec<i64> = s
            .list_versions("c")
            .await
            .unwrap()
            .iter()
            .map(|v| v.version)
            .collect();
        // Every publish either made a new, unique version or returned an existing one.
        assert!(versions.windows(2).all(|w| w[0] < w[1]), "{versions:?}");
        assert!(versions.len() >= 2);
        db.finish(s).await;
    }
}

#[tokio::test]
async fn function_uids_are_distinct_stable_and_never_reused() {
    for db in [Some(TestDb::sqlite()), TestDb::postgres().await]
        .into_iter()
        .flatten()
    {
        let s = db.open().await;
        // Names that collided under the old hash-of-the-name uids.
        let mut tasks = Vec::new();
        for i in 0..32u32 {
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                let name = format!("fn-{i}");
                (name.clone(), s.function_uid(&name).await.unwrap())
            }));
        }
        let mut uids = std::collections::BTreeMap::new();
        for t in tasks {
            let (name, uid) = t.await.unwrap();
            assert!(uid >= FIRST_FUNCTION_UID, "{uid}");
            uids.insert(name, uid);
        }
        let distinct: std::collections::BTreeSet<_> = uids.values().collect();
        assert_eq!(distinct.len(), 32, "{uids:?}");
        assert_eq!(s.function_uid("fn-3").await.unwrap(), uids["fn-3"]);
        // A new name after the others gets a uid none of them had.
        let fresh = s.function_uid("later").await.unwrap();
        assert!(!distinct.contains(&fresh));
        // A second server on the same store sees the same allocation.
        let other = db.open().await;
        assert_eq!(other.function_uid("fn-7").await.unwrap(), uids["fn-7"]);
        other.close().await;
        db.finish(s).await;
    }
}

/// What deploys and `ls` read instead of every function: the functions with
/// routes, an app's functions, and every function with its `$LATEST` and
/// published revision in one query.
async fn routes_apps_and_listing(db: &TestDb) {
    let s = db.open().await;
    assert!(s.list_with_latest().await.unwrap().is_empty());
    let routed = |path: &str| {
        let mut c = cfg(128);
        c.triggers = vec![updraft_core::config::Trigger::Http(
            updraft_core::config::HttpRoute::parse(&format!("GET {path}")).unwrap(),
        )];
        c
    };
    s.deploy("a", "shop", &cfg(128), "aaa", 10).await.unwrap();
    s.deploy("b", "shop", &routed("/b"), "aaa", 10)
        .await
        .unwrap();
    s.deploy("c", "other", &routed("/c"), "aaa", 10)
        .await
        .unwrap();
    s.create_function("d", None, &cfg(128), "aaa", 10)
        .await
        .unwrap();
    s.update_latest("d", &routed("/d"), "aaa", 10)
        .await
        .unwrap();
    // c drops its route; a published version keeps its own.
    s.deploy("c", "other", &cfg(128), "aaa", 10).await.unwrap();
    let names = |rows: Vec<VersionRow>| rows.into_iter().map(|v| v.function).collect::<Vec<_>>();
    assert_eq!(names(s.routed_latest().await.unwrap()), ["b", "d"]);
    assert_eq!(s.app_functions("shop").await.unwrap(), ["a", "b"]);
    assert_eq!(s.app_functions("other").await.unwrap(), ["c"]);
    assert!(s.app_functions("none").await.unwrap().is_empty());

    s.update_latest("a", &cfg(256), "aaa", 10).await.unwrap();
    s.set_url("b", UrlAuth::Private, None).await.unwrap();
    let listed = s.list_with_latest().await.unwrap();
    let auth: Vec<_> = listed.iter().map(|l| l.url_auth).collect();
    assert_eq!(auth, [None, Some(UrlAuth::Private), None, None]);
    let all: Vec<&str> = listed.iter().map(|l| l.function.name.as_str()).collect();
    assert_eq!(all, ["a", "b", "c", "d"]);
    for l in &listed {
        let latest = s.get_version(&l.function.name, 0).await.unwrap().unwrap();
        assert_eq!(l.latest, latest, "{}", l.function.name);
        assert_eq!(
            Some(&l.function),
            s.get_function(&l.function.name).await.unwrap().as_ref()
        );
        let published = match l.function.last_published {
            0 => None,
            n => s
                .get_version(&l.function.name, n)
                .await
                .unwrap()
                .map(|v| v.revision),
        };
        assert_eq!(l.published_revision, published, "{}", l.function.name);
    }
    // a has unpublished changes, b is as published, d was never published.
    assert_ne!(
        listed[0].published_revision.as_deref(),
        Some(listed[0].latest.revision.as_str())
    );
    assert_eq!(
        listed[1].published_revision.as_deref(),
        Some(listed[1].latest.revision.as_str())
    );
    assert_eq!(listed[3].published_revision, None);
    db.finish(s).await;
}

suite!(
    routes_apps_and_listing,
    deploy_semantics,
    create_update_publish,
    persists_across_reopen,
    delete_keeps_invocations_and_logs,
    corrupt_config_is_reported,
);
