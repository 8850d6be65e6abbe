//! Aliases: names for a version of a function, optionally sending a share of
//! the traffic to one more version. They cascade away with their function.

use crate::settings::ensure_settings;
use crate::{fetch_all, fetch_optional, AnyQuery, Store, StoreError};
use sqlx::any::AnyRow;
use sqlx::Row;
use updraft_core::now_ms;

/// An alias: a name for a version, optionally sending a share of the traffic
/// to one more version.
#[derive(Clone, Debug, PartialEq)]
pub struct AliasRow {
    pub function: String,
    pub name: String,
    /// 0 = `$LATEST`.
    pub version: i64,
    /// The additional version and the share (0..=1) of invocations it gets.
    pub extra: Option<(i64, f64)>,
    pub description: String,
    pub revision_id: String,
    pub created_ms: i64,
    pub updated_ms: i64,
}

/// A change to an alias; None fields stay as they are.
#[derive(Clone, Debug, Default)]
pub struct AliasUpdate {
    pub version: Option<i64>,
    pub extra: Option<Option<(i64, f64)>>,
    pub description: Option<String>,
    pub revision_id: String,
}

const ALIAS_COLS: &str = "function, name, version, extra_version, extra_weight, description, \
     revision_id, created_ms, updated_ms";

fn alias_from_row(row: &AnyRow) -> Result<AliasRow, StoreError> {
    let extra_version: Option<i64> = row.try_get("extra_version")?;
    let extra_weight: Option<f64> = row.try_get("extra_weight")?;
    Ok(AliasRow {
        function: row.try_get("function")?,
        name: row.try_get("name")?,
        version: row.try_get("version")?,
        extra: extra_version.zip(extra_weight),
        description: row.try_get("description")?,
        revision_id: row.try_get("revision_id")?,
        created_ms: row.try_get("created_ms")?,
        updated_ms: row.try_get("updated_ms")?,
    })
}

/// Binds the alias as $1…$8: function, name, version, the extra version and
/// its weight, description, revision id, then `ms`.
fn bind_alias<'q>(q: AnyQuery<'q>, a: &'q AliasRow, ms: i64) -> AnyQuery<'q> {
    q.bind(a.function.as_str())
        .bind(a.name.as_str())
        .bind(a.version)
        .bind(a.extra.map(|e| e.0))
        .bind(a.extra.map(|e| e.1))
        .bind(a.description.as_str())
        .bind(a.revision_id.as_str())
        .bind(ms)
}

impl Store {
    /// Creates an alias; Conflict if the name is taken, NotFound without the function.
    pub async fn create_alias(&self, alias: &AliasRow) -> Result<AliasRow, StoreError> {
        let mut tx = self.begin_write().await?;
        ensure_settings(&mut tx, &alias.function).await?;
        let sql = format!(
            "INSERT INTO aliases ({ALIAS_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) \
             ON CONFLICT (function, name) DO NOTHING"
        );
        let done = bind_alias(sqlx::query(&sql), alias, alias.created_ms)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Conflict(format!(
                "Alias already exists: {}:{}",
                alias.function, alias.name
            )));
        }
        tx.commit().await?;
        Ok(AliasRow {
            updated_ms: alias.created_ms,
            ..alias.clone()
        })
    }

    pub async fn get_alias(
        &self,
        function: &str,
        name: &str,
    ) -> Result<Option<AliasRow>, StoreError> {
        let sql = format!("SELECT {ALIAS_COLS} FROM aliases WHERE function = $1 AND name = $2");
        fetch_optional(&self.pool, &sql, &[function, name], alias_from_row).await
    }

    /// A function's aliases, by name.
    pub async fn list_aliases(&self, function: &str) -> Result<Vec<AliasRow>, StoreError> {
        let sql = format!("SELECT {ALIAS_COLS} FROM aliases WHERE function = $1 ORDER BY name");
        fetch_all(&self.pool, &sql, &[function], alias_from_row).await
    }

    /// Changes an alias. `expected_revision`, when given, must match the
    /// stored one (`Conflict` otherwise, with the message starting "revision").
    pub async fn update_alias(
        &self,
        function: &str,
        name: &str,
        update: AliasUpdate,
        expected_revision: Option<&str>,
    ) -> Result<AliasRow, StoreError> {
        let mut tx = self.begin_write().await?;
        let sql = format!("SELECT {ALIAS_COLS} FROM aliases WHERE function = $1 AND name = $2");
        let found = fetch_optional(&mut *tx, &sql, &[function, name], alias_from_row).await?;
        let Some(cur) = found else {
            return Err(StoreError::NotFound(format!(
                "Alias not found: {function}:{name}"
            )));
        };
        if let Some(rev) = expected_revision {
            if rev != cur.revision_id {
                return Err(StoreError::Conflict(format!(
                    "revision: the alias {function}:{name} has revision {}, not {rev}",
                    cur.revision_id
                )));
            }
        }
        let next = AliasRow {
            version: update.version.unwrap_or(cur.version),
            extra: update.extra.unwrap_or(cur.extra),
            description: update.description.unwrap_or(cur.description.clone()),
            revision_id: update.revision_id,
            updated_ms: now_ms(),
            ..cur
        };
        let sql = "UPDATE aliases SET version = $3, extra_version = $4, extra_weight = $5, \
             description = $6, revision_id = $7, updated_ms = $8 WHERE function = $1 AND name = $2";
        bind_alias(sqlx::query(sql), &next, next.updated_ms)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(next)
    }

    /// Deletes an alias; false if there was none.
    pub async fn delete_alias(&self, function: &str, name: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM aliases WHERE function = $1 AND name = $2")
            .bind(function)
            .bind(name)
            .execute(&mut *self.write_conn().await?)
            .await?;
        Ok(done.rows_affected() > 0)
    }
}
