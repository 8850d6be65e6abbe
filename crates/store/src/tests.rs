//! One suite, run against SQLite in a tempdir and, when
//! `UPDRAFT_TEST_POSTGRES_URL` is set, against a fresh PostgreSQL database per test.

use super::*;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};
use updraft_core::{FunctionConfig, LogLine, Scaling, UrlAuth};

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
        let Some(admin) = std::env::var("UPDRAFT_TEST_POSTGRES_URL")
            .ok()
            .filter(|u| !u.is_empty())
        else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "UPDRAFT_TEST_POSTGRES_URL is not set under CI=true (see .ci/postgres.sh)"
            );
            return None;
        };
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
        cors: None,
        scaling: Scaling::default(),
        triggers: vec![],
        description: "hello".into(),
        permissions: Vec::new(),
        logging: Default::default(),
        snapshot: false,
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
        trigger: "invoke".into(),
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

// After `suite!`, which they use.
mod buses;
mod functions;
mod logs;
mod messages;
mod queue;
mod schedules;
mod schema;
mod tags;
