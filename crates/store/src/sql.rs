//! The statements' plumbing shared by every table: parameter lists (the
//! one place SQLite and PostgreSQL differ in DML), lookups mapped to row
//! types, and chunked writes.

use crate::{Backend, Store, StoreError};
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::{Any, AnyConnection, Executor};

/// The VALUES list of a multi-row insert of `rows` rows of `cols` columns.
/// PostgreSQL numbers its parameters (`($1, $2), ($3, $4)`); SQLite gets
/// anonymous `?`s bound in order, because sqlx looks every parameter up by
/// name and SQLite finds a name by scanning all of them, which makes binding
/// `$N`s quadratic in the row count.
pub(crate) fn placeholders(backend: Backend, rows: usize, cols: usize) -> String {
    (0..rows)
        .map(|r| {
            let cells: Vec<String> = (1..=cols)
                .map(|c| match backend {
                    Backend::Postgres => format!("${}", r * cols + c),
                    Backend::Sqlite => "?".to_string(),
                })
                .collect();
            format!("({})", cells.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A statement with its parameters, on sqlx's `Any` driver.
pub(crate) type AnyQuery<'q> = sqlx::query::Query<'q, Any, AnyArguments<'q>>;

/// Maps a result row to one of the store's row types.
pub(crate) type RowMap<T> = fn(&AnyRow) -> Result<T, StoreError>;

/// `sql` with `keys` bound as $1, $2, … in order.
pub(crate) fn keyed<'q>(sql: &'q str, keys: &[&'q str]) -> AnyQuery<'q> {
    keys.iter().fold(sqlx::query(sql), |q, key| q.bind(*key))
}

/// The rows of `sql` (with `keys` bound as $1, $2, …), each mapped by `map`.
pub(crate) async fn fetch_all<'c, T>(
    conn: impl Executor<'c, Database = Any>,
    sql: &str,
    keys: &[&str],
    map: RowMap<T>,
) -> Result<Vec<T>, StoreError> {
    let rows = keyed(sql, keys).fetch_all(conn).await?;
    rows.iter().map(map).collect()
}

/// The row of `sql`, a lookup by key or a `LIMIT 1` (`keys` bound as $1, $2,
/// …), mapped by `map`.
pub(crate) async fn fetch_optional<'c, T>(
    conn: impl Executor<'c, Database = Any>,
    sql: &str,
    keys: &[&str],
    map: RowMap<T>,
) -> Result<Option<T>, StoreError> {
    Ok(fetch_all(conn, sql, keys, map).await?.into_iter().next())
}

/// Runs `sql(n)` once per chunk of at most `per` items on `conn` (a
/// transaction, so that every chunk is written or none): `head` binds the
/// parameters before the chunk's, `item` those of one item. Chunks keep
/// statements below both databases' parameter limits.
pub(crate) async fn per_chunk<T: Sync>(
    conn: &mut AnyConnection,
    items: &[T],
    per: usize,
    sql: impl Fn(usize) -> String,
    head: impl for<'q> Fn(AnyQuery<'q>) -> AnyQuery<'q>,
    item: impl for<'q> Fn(AnyQuery<'q>, &'q T) -> AnyQuery<'q>,
) -> Result<(), StoreError> {
    for chunk in items.chunks(per) {
        let sql = sql(chunk.len());
        let q = chunk.iter().fold(head(sqlx::query(&sql)), &item);
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

impl Store {
    /// [`per_chunk`] in a write transaction of its own; nothing to do for
    /// no items.
    pub(crate) async fn write_chunks<T: Sync>(
        &self,
        items: &[T],
        per: usize,
        sql: impl Fn(usize) -> String,
        head: impl for<'q> Fn(AnyQuery<'q>) -> AnyQuery<'q>,
        item: impl for<'q> Fn(AnyQuery<'q>, &'q T) -> AnyQuery<'q>,
    ) -> Result<(), StoreError> {
        if items.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        per_chunk(&mut tx, items, per, sql, head, item).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// `$first, $first+1, …`: `n` numbered parameters, for an `IN (…)` list.
pub(crate) fn numbered_params(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}
