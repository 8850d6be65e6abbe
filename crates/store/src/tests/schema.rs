//! The schema the migrations build, compared on both databases with a
//! snapshot first taken from the migrator of before the SQL files (Rust
//! strings in `lib.rs`, schema version 4): a database that migrator created
//! and one these files create do not differ. A new migration changes the
//! snapshots on purpose; review their diff.

use super::*;

/// Every table, index and constraint, one line each, in a stable order.
async fn dump(s: &Store) -> String {
    let sql = match s.backend {
        // The CREATE text as SQLite keeps it; its own tables and implicit
        // indexes aside.
        Backend::Sqlite => {
            "SELECT type || ' ' || name || ' ON ' || tbl_name || ': ' || sql FROM sqlite_master \
             WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name"
        }
        Backend::Postgres => {
            "SELECT line FROM ( \
               SELECT 'column ' || table_name || '.' || column_name || ' #' || ordinal_position \
                 || ' ' || data_type || CASE is_nullable WHEN 'NO' THEN ' NOT NULL' ELSE '' END \
                 || COALESCE(' COLLATE ' || collation_name, '') \
                 || COALESCE(' DEFAULT ' || column_default, '') AS line \
               FROM information_schema.columns WHERE table_schema = current_schema() \
               UNION ALL \
               SELECT 'index ' || indexname || ': ' || indexdef FROM pg_indexes \
               WHERE schemaname = current_schema() \
               UNION ALL \
               SELECT 'constraint ' || conrelid::regclass::text || '.' || conname || ': ' \
                 || pg_get_constraintdef(oid) FROM pg_constraint \
               WHERE connamespace = current_schema()::regnamespace \
             ) AS schema ORDER BY line"
        }
    };
    let lines: Vec<String> = sqlx::query_scalar(sql).fetch_all(&s.pool).await.unwrap();
    lines.join("\n") + "\n"
}

fn snapshot(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => include_str!("schema-sqlite.txt"),
        Backend::Postgres => include_str!("schema-postgres.txt"),
    }
}

async fn schema_matches_the_snapshot(db: &TestDb) {
    let s = db.open().await;
    let got = dump(&s).await;
    assert_eq!(got, snapshot(s.backend), "the schema changed");
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

/// A database that an earlier binary left at any older version (the first
/// `applied` migrations) upgrades to the very schema a new one gets.
async fn upgrades_from(db: &TestDb, applied: usize) {
    let old = Store::connect(&db.url).await.unwrap();
    old.migrate(&MIGRATIONS[..applied]).await.unwrap();
    assert_eq!(
        old.current_schema_version().await.unwrap(),
        MIGRATIONS[..applied].last().map_or(0, |m| m.version)
    );
    old.close().await;
    let s = db.open().await;
    assert_eq!(s.current_schema_version().await.unwrap(), schema_version());
    assert_eq!(
        dump(&s).await,
        snapshot(s.backend),
        "after {applied} migrations"
    );
    db.finish(s).await;
}

#[tokio::test]
async fn sqlite_upgrades_from_every_older_version() {
    for applied in 0..=MIGRATIONS.len() {
        upgrades_from(&TestDb::sqlite(), applied).await;
    }
}

#[tokio::test]
async fn postgres_upgrades_from_every_older_version() {
    for applied in 0..=MIGRATIONS.len() {
        let Some(db) = TestDb::postgres().await else {
            eprintln!("skipping: UPDRAFT_TEST_POSTGRES_URL is not set (see .ci/postgres.sh)");
            return;
        };
        upgrades_from(&db, applied).await;
    }
}

/// The files under `migrations/` are the list, in order, each pair once,
/// and the list holds their text.
#[test]
fn the_migration_files_are_the_list() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations");
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let sub = format!("{dir}/{}", format!("{backend:?}").to_lowercase());
        let mut files: Vec<String> = std::fs::read_dir(&sub)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        files.sort();
        assert_eq!(files.len(), MIGRATIONS.len(), "{sub}: {files:?}");
        for (file, m) in files.iter().zip(MIGRATIONS) {
            assert!(
                file.starts_with(&format!("{:04}_", m.version)) && file.ends_with(".sql"),
                "{sub}/{file} for version {}",
                m.version
            );
            let text = std::fs::read_to_string(format!("{sub}/{file}")).unwrap();
            assert_eq!(text, m.sql(backend), "{sub}/{file}");
        }
    }
    let versions: Vec<i64> = MIGRATIONS.iter().map(|m| m.version).collect();
    let expected: Vec<i64> = (1..=MIGRATIONS.len() as i64).collect();
    assert_eq!(versions, expected);
}

suite!(schema_matches_the_snapshot, migrations_idempotent);
