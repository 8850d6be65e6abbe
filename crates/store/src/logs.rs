//! Function log lines: appended in batches (each with the level its text
//! carries), read by function or app with filters, pruned by age and by count.

use crate::{placeholders, Backend, Store, StoreError};
use sqlx::Row;
use updraft_core::logs::Level;
use updraft_core::LogLine;

/// Whose lines a [`LogQuery`] reads.
#[derive(Clone, Copy, Debug)]
pub enum LogScope<'a> {
    Function(&'a str),
    /// Every function the app deployed (by `functions.app`).
    App(&'a str),
}

/// Which log lines to read; every filter is applied in SQL.
#[derive(Clone, Copy, Debug)]
pub struct LogQuery<'a> {
    pub scope: LogScope<'a>,
    /// `ts_ms >= since_ms`.
    pub since_ms: i64,
    /// `ts_ms <= until_ms`.
    pub until_ms: Option<i64>,
    pub request_id: Option<&'a str>,
    /// Lines of invocations of this version (by their invocation record:
    /// a running invocation's lines match once it has finished).
    pub version: Option<i64>,
    /// Lines at this level or above; lines without a level never match.
    pub min_level: Option<Level>,
    /// Lines containing this text (case-sensitive).
    pub text: Option<&'a str>,
    /// Paging: lines with `id > after_id`.
    pub after_id: i64,
    pub limit: i64,
}

impl<'a> LogQuery<'a> {
    /// A function's lines (optionally of one request), no other filter.
    pub fn of_function(
        function: &'a str,
        since_ms: i64,
        request_id: Option<&'a str>,
        after_id: i64,
        limit: i64,
    ) -> LogQuery<'a> {
        LogQuery {
            scope: LogScope::Function(function),
            since_ms,
            until_ms: None,
            request_id,
            version: None,
            min_level: None,
            text: None,
            after_id,
            limit,
        }
    }
}

/// A line as [`Store::query_logs`] reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogRow {
    pub id: i64,
    pub line: LogLine,
    pub level: Option<String>,
    /// The version of the invocation the line belongs to, once recorded.
    pub version: Option<i64>,
}

impl Store {
    /// Appends the lines in one transaction; ids grow in slice order.
    pub async fn append_logs(&self, lines: &[LogLine]) -> Result<(), StoreError> {
        self.write_chunks(
            lines,
            200,
            |n| {
                format!(
                    "INSERT INTO logs (ts_ms, function, request_id, text, level) VALUES {}",
                    placeholders(self.backend, n, 5)
                )
            },
            |q| q,
            |q, l| {
                q.bind(l.ts_ms)
                    .bind(l.function.as_str())
                    .bind(l.request_id.as_str())
                    .bind(l.text.as_str())
                    .bind(Level::of_line(&l.text).map(Level::as_str))
            },
        )
        .await
    }

    /// Lines of `function` with `ts_ms >= since_ms` and `id > after_id`
    /// (optionally of one request), by id ascending, at most `limit`.
    pub async fn logs(
        &self,
        function: &str,
        since_ms: i64,
        request_id: Option<&str>,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<(i64, LogLine)>, StoreError> {
        let q = LogQuery::of_function(function, since_ms, request_id, after_id, limit);
        let rows = self.query_logs(&q).await?;
        Ok(rows.into_iter().map(|r| (r.id, r.line)).collect())
    }

    /// The lines `q` selects, by id ascending, at most `q.limit`.
    pub async fn query_logs(&self, q: &LogQuery<'_>) -> Result<Vec<LogRow>, StoreError> {
        enum Arg<'a> {
            Int(i64),
            Text(&'a str),
        }
        let mut args: Vec<Arg> = Vec::new();
        let mut conds: Vec<String> = Vec::new();
        // A condition on the argument just pushed: `?` becomes its `$N`.
        let mut push = |args: &mut Vec<Arg>, sql: &str| {
            conds.push(sql.replace('?', &format!("${}", args.len())));
        };
        match q.scope {
            LogScope::Function(f) => {
                args.push(Arg::Text(f));
                push(&mut args, "l.function = ?");
            }
            LogScope::App(a) => {
                args.push(Arg::Text(a));
                push(
                    &mut args,
                    "l.function IN (SELECT name FROM functions WHERE app = ?)",
                );
            }
        }
        args.push(Arg::Int(q.since_ms));
        push(&mut args, "l.ts_ms >= ?");
        args.push(Arg::Int(q.after_id));
        push(&mut args, "l.id > ?");
        if let Some(u) = q.until_ms {
            args.push(Arg::Int(u));
            push(&mut args, "l.ts_ms <= ?");
        }
        if let Some(r) = q.request_id {
            args.push(Arg::Text(r));
            push(&mut args, "l.request_id = ?");
        }
        if let Some(v) = q.version {
            args.push(Arg::Int(v));
            push(&mut args, "i.version = ?");
        }
        if let Some(t) = q.text {
            args.push(Arg::Text(t));
            push(
                &mut args,
                match self.backend {
                    Backend::Sqlite => "instr(l.text, ?) > 0",
                    Backend::Postgres => "strpos(l.text, ?) > 0",
                },
            );
        }
        if let Some(min) = q.min_level {
            let levels: Vec<String> = Level::ALL
                .iter()
                .filter(|l| **l >= min)
                .map(|l| format!("'{}'", l.as_str()))
                .collect();
            conds.push(format!("l.level IN ({})", levels.join(", ")));
        }
        args.push(Arg::Int(q.limit.max(0)));
        let sql = format!(
            "SELECT l.id, l.ts_ms, l.function, l.request_id, l.text, l.level, i.version \
             FROM logs l LEFT JOIN invocations i ON i.request_id = l.request_id \
             WHERE {} ORDER BY l.id LIMIT ${}",
            conds.join(" AND "),
            args.len()
        );
        let mut query = sqlx::query(&sql);
        for a in &args {
            query = match a {
                Arg::Int(v) => query.bind(*v),
                Arg::Text(t) => query.bind(*t),
            };
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| {
                Ok(LogRow {
                    id: row.try_get("id")?,
                    line: LogLine {
                        ts_ms: row.try_get("ts_ms")?,
                        function: row.try_get("function")?,
                        request_id: row.try_get("request_id")?,
                        text: row.try_get("text")?,
                    },
                    level: row.try_get("level")?,
                    version: row.try_get("version")?,
                })
            })
            .collect()
    }

    /// Deletes lines older than `before_ms`; returns how many.
    pub async fn prune_logs(&self, before_ms: i64) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM logs WHERE ts_ms < $1")
            .bind(before_ms)
            .execute(&mut *self.write_conn().await?)
            .await?;
        Ok(done.rows_affected())
    }

    /// Keeps only the newest `keep` lines of `function`; returns how many
    /// were deleted. Walks the (function, id) index: cost grows with `keep`,
    /// not with the table.
    pub async fn prune_function_logs(&self, function: &str, keep: u64) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "DELETE FROM logs WHERE function = $1 AND id <= \
             (SELECT id FROM logs WHERE function = $1 ORDER BY id DESC LIMIT 1 OFFSET $2)",
        )
        .bind(function)
        .bind(i64::try_from(keep).unwrap_or(i64::MAX))
        .execute(&mut *self.write_conn().await?)
        .await?;
        Ok(done.rows_affected())
    }

    /// The functions that have log lines (deleted ones too: their lines stay).
    pub async fn log_functions(&self) -> Result<Vec<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT DISTINCT function FROM logs ORDER BY function")
                .fetch_all(&self.pool)
                .await?,
        )
    }
}
