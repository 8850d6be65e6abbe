//! The schema the migrations build, compared on both databases with a
//! snapshot taken from the migrator of before the SQL files (Rust strings in
//! `lib.rs`, schema version 4): a database that main's migrator created and
//! one these migrations create must not differ. A new migration changes the
//! snapshot on purpose; review the diff.

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

suite!(schema_matches_the_snapshot);
