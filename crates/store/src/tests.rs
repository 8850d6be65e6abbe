//! One suite, run against SQLite in a tempdir and, when
//! `UPDRAFT_TEST_POSTGRES_URL` is set, against a fresh PostgreSQL database per test.

use super::*;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};
use updraft_core::{Scaling, UrlAuth};

/// A database private to one test, reopenable by URL.
struct TestDb {
    url: String,
    _dir: Option<tempfile::TempDir>,
    /// (admin URL, database name) to drop afterwards.
    pg: Option<(String, String)>,
}

impl TestDb {
    fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        // A missing subdirectory too: open must create it.
        let url = format!("sqlite://{}/sub/updraft.db", dir.path().display());
        TestDb {
            url,
            _dir: Some(dir),
            pg: None,
        }
    }

    async fn postgres() -> Option<TestDb> {
        let admin = std::env::var("UPDRAFT_TEST_POSTGRES_URL")
            .ok()
            .filter(|u| !u.is_empty())?;
        static N: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let db = format!(
            "updraft_test_{}_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed),
            nanos
        );
        sqlx::any::install_default_drivers();
        let mut conn = <AnyConnection as sqlx::Connection>::connect(&admin)
            .await
            .unwrap();
        sqlx::raw_sql(&format!("CREATE DATABASE {db}"))
            .execute(&mut conn)
            .await
            .unwrap();
        let url = with_database(&admin, &db);
        Some(TestDb {
            url,
            _dir: None,
            pg: Some((admin, db)),
        })
    }

    async fn open(&self) -> Store {
        Store::open(&self.url).await.unwrap()
    }

    async fn finish(&self, store: Store) {
        store.close().await;
        if let Some((admin, db)) = &self.pg {
            let mut conn = <AnyConnection as sqlx::Connection>::connect(admin)
                .await
                .unwrap();
            sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
                .execute(&mut conn)
                .await
                .unwrap();
        }
    }
}

/// `postgres://u@h:p/olddb?x` → `postgres://u@h:p/db?x`.
fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    format!("{}/{db}{query}", &base[..host_end])
}

fn cfg(memory_mb: u32) -> FunctionConfig {
    FunctionConfig {
        runtime: "python3".into(),
        handler: "app.handler".into(),
        memory_mb,
        ephemeral_storage_mb: updraft_core::DEFAULT_EPHEMERAL_MB,
        timeout_ms: 3000,
        env: [("A".to_string(), "1".to_string())].into(),
        url: UrlAuth::Public,
        scaling: Scaling::default(),
        triggers: vec![],
        description: "hello".into(),
    }
}

fn inv(id: &str, function: &str, start_ms: i64) -> InvocationRecord {
    InvocationRecord {
        request_id: id.into(),
        function: function.into(),
        version: 1,
        start_ms,
        duration_us: 1234,
        billed_ms: 2,
        memory_mb: 128,
        max_memory_mb: 40,
        init_us: Some(900),
        cold: true,
        outcome: "success".into(),
        error_type: None,
    }
}

fn line(function: &str, request_id: &str, ts_ms: i64, text: &str) -> LogLine {
    LogLine {
        ts_ms,
        function: function.into(),
        request_id: request_id.into(),
        text: text.into(),
    }
}

// ---- the suite ----

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

async fn migrations_idempotent(db: &TestDb) {
    let s = db.open().await;
    assert_eq!(s.current_schema_version().await.unwrap(), schema_version());
    s.create_function("f", None, &cfg(128), "aaa", 10)
        .await
        .unwrap();
    // Opening again (even while the first store is open) applies nothing twice.
    let s2 = db.open().await;
    let s3 = db.open().await;
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM schema_migrations")
        .fetch_one(&s3.pool)
        .await
        .unwrap();
    assert_eq!(n, MIGRATIONS.len() as i64);
    assert!(s2.get_function("f").await.unwrap().is_some());
    s2.close().await;
    s3.close().await;

    // A database from the future is refused with a clear error.
    sqlx::query("INSERT INTO schema_migrations (version, name, applied_ms) VALUES ($1, $2, $3)")
        .bind(schema_version() + 1)
        .bind("from the future")
        .bind(0_i64)
        .execute(&s.pool)
        .await
        .unwrap();
    match Store::open(&db.url).await {
        Err(StoreError::Config(m)) => {
            assert!(m.contains("newer") || m.contains("knows only"), "{m}")
        }
        other => panic!("expected Config error, got {other:?}"),
    }
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

macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let db = super::TestDb::sqlite();
                    super::$name(&db).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    let Some(db) = super::TestDb::postgres().await else {
                        assert!(
                            std::env::var("CI").as_deref() != Ok("true"),
                            "this test cannot run here (CI=true runs every test): it needs PostgreSQL at UPDRAFT_TEST_POSTGRES_URL (see .ci/postgres.sh)"
                        );
                        eprintln!("skipping postgres::{}: UPDRAFT_TEST_POSTGRES_URL is not set (see .ci/postgres.sh)", stringify!($name));
                        return;
                    };
                    super::$name(&db).await;
                }
            )*
        }
    };
}

suite!(
    deploy_semantics,
    create_update_publish,
    persists_across_reopen,
    delete_keeps_invocations_and_logs,
    logs_filtering,
    migrations_idempotent,
    dollar_placeholders,
    corrupt_config_is_reported,
    logs_capped_per_function,
);

#[test]
fn urls() {
    assert!(
        matches!(parse_url("mysql://x:secret@h/db"), Err(StoreError::Config(m)) if m.contains("\"mysql\"") && m.contains("sqlite://") && !m.contains("secret"))
    );
    assert!(matches!(parse_url("/tmp/x.db"), Err(StoreError::Config(_))));
    let (b, u, mem) = parse_url("sqlite:///tmp/updraft-url-test/x.db").unwrap();
    assert_eq!(
        (b, u.as_str(), mem),
        (
            Backend::Sqlite,
            "sqlite:///tmp/updraft-url-test/x.db?mode=rwc",
            false
        )
    );
    let (_, u, _) = parse_url("sqlite:///tmp/updraft-url-test/x.db?mode=ro").unwrap();
    assert_eq!(u, "sqlite:///tmp/updraft-url-test/x.db?mode=ro");
    assert!(parse_url("sqlite::memory:").unwrap().2);
    assert_eq!(
        parse_url("postgresql://u@h/db").unwrap().0,
        Backend::Postgres
    );
    assert_eq!(
        with_database("postgres://u@h:1/postgres?sslmode=disable", "t"),
        "postgres://u@h:1/t?sslmode=disable"
    );
    assert_eq!(with_database("postgres://u@h:1", "t"), "postgres://u@h:1/t");
}

#[tokio::test]
async fn memory_store_works() {
    let s = Store::open("sqlite::memory:").await.unwrap();
    s.deploy("m", "app", &cfg(128), "aaa", 1).await.unwrap();
    assert_eq!(s.list_functions().await.unwrap().len(), 1);
}

#[test]
fn store_is_send_sync_clone() {
    fn check<T: Send + Sync + Clone + 'static>() {}
    check::<Store>();
}

#[tokio::test]
async fn sqlite_pragmas_apply_to_every_connection() {
    let db = TestDb::sqlite();
    let s = db.open().await;
    // Hold several connections at once so more than one runs after_connect.
    let mut conns = Vec::new();
    for _ in 0..3 {
        conns.push(s.pool.acquire().await.unwrap());
    }
    for c in &mut conns {
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&mut **c)
            .await
            .unwrap();
        assert_eq!(mode, "wal");
        let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
            .fetch_one(&mut **c)
            .await
            .unwrap();
        assert_eq!(fk, 1);
        let busy: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
            .fetch_one(&mut **c)
            .await
            .unwrap();
        assert_eq!(busy, 5000);
        let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(&mut **c)
            .await
            .unwrap();
        assert_eq!(sync, 1, "NORMAL");
    }
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

/// A small tmpfs (root only), unmounted when dropped.
struct Tmpfs(std::path::PathBuf, #[allow(dead_code)] tempfile::TempDir);

impl Tmpfs {
    /// None where mounting is not allowed (not root), except under CI.
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let mnt = dir.path().join("disk");
        std::fs::create_dir(&mnt).unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&mnt)
            .output()
            .unwrap();
        if !out.status.success() {
            let why = String::from_utf8_lossy(&out.stderr);
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI must be able to mount a tmpfs (as root): {why}"
            );
            eprintln!("skipped: cannot mount a tmpfs here (needs root): {why}");
            return None;
        }
        Some(Tmpfs(mnt, dir))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// Fills the file system of `dir` with `dir/filler` until it refuses.
fn fill(dir: &std::path::Path) -> std::path::PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    for chunk in [1 << 20, 4096, 1] {
        let buf = vec![0u8; chunk];
        while f.write_all(&buf).is_ok() {}
    }
    path
}

#[tokio::test]
async fn a_full_disk_fails_writes_clearly_and_they_succeed_again_without_reopening() {
    let Some(disk) = Tmpfs::mount("32m") else {
        return;
    };
    let s = Store::open(&format!("sqlite://{}/updraft.db", disk.0.display()))
        .await
        .unwrap();
    let batch = |n: usize| -> Vec<LogLine> {
        (0..100)
            .map(|i| line("f", &format!("r{n}"), i, &"x".repeat(1000)))
            .collect()
    };
    s.append_logs(&batch(0)).await.unwrap();
    assert_eq!(s.check_writable().await, Ok(()));

    let filler = fill(&disk.0);
    let mut failures = 0;
    for n in 1..=20 {
        match s.append_logs(&batch(n)).await {
            Ok(()) => {}
            Err(StoreError::Unavailable(cause)) => {
                assert!(cause.contains("database or disk is full"), "{cause}");
                failures += 1;
            }
            Err(e) => panic!("a full disk must read as unavailable: {e:?}"),
        }
    }
    assert!(failures > 0, "writes to a full disk failed");
    // The probe's answer stands for a second; then it sees the full disk.
    let deadline = Instant::now() + Duration::from_secs(30);
    let probe = loop {
        match s.check_writable().await {
            Err(cause) => break cause,
            Ok(()) => {
                assert!(
                    Instant::now() < deadline,
                    "the probe never saw the full disk"
                );
                tokio::time::sleep(Duration::from_millis(50)).await
            }
        }
    };
    assert!(probe.contains("database or disk is full"), "{probe}");

    std::fs::remove_file(filler).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while s.check_writable().await.is_err() {
        assert!(Instant::now() < deadline, "the store stayed unwritable");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Every pooled connection writes again: none was left inside a transaction.
    for n in 100..120 {
        s.append_logs(&batch(n)).await.unwrap();
    }
    let mut handles = Vec::new();
    for n in 200..208 {
        let s = s.clone();
        handles.push(tokio::spawn(async move { s.append_logs(&batch(n)).await }));
    }
    for h in handles {
        h.await.unwrap().unwrap();
    }
    let kept = s.logs("f", 0, Some("r119"), 0, 1000).await.unwrap();
    assert_eq!(kept.len(), 100);
    s.close().await;
}

// After `suite!`, which it uses.
mod queue;
