//! The Lambda API's tags of a function (TagResource, UntagResource,
//! ListTags) and the account's usage (GetAccountSettings). Tags cascade away
//! with their function, like its settings (`settings.rs`).

use crate::settings::function_exists;
use crate::{Store, StoreError};
use sqlx::Row;
use std::collections::BTreeMap;

/// A function's tags, by key.
pub type Tags = BTreeMap<String, String>;

/// What the functions of this server use (GetAccountSettings' `AccountUsage`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AccountUsage {
    pub function_count: i64,
    /// The code of every version, `$LATEST` included, in bytes.
    pub total_code_size: i64,
}

impl Store {
    /// A function's tags (empty when it has none; its existence is not checked).
    pub async fn function_tags(&self, name: &str) -> Result<Tags, StoreError> {
        let rows = sqlx::query("SELECT key, value FROM function_tags WHERE function = $1")
            .bind(name)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("key")?, r.try_get("value")?)))
            .collect()
    }

    /// Adds `tags` to the function's (a key already there gets the new value),
    /// all or none: NotFound for an unknown function, Conflict (naming the
    /// count) when the function would have more than `max` tags.
    pub async fn tag_function(
        &self,
        name: &str,
        tags: &Tags,
        max: usize,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        if !function_exists(&mut tx, name).await? {
            return Err(StoreError::NotFound(format!("function {name}")));
        }
        for (key, value) in tags {
            sqlx::query(
                "INSERT INTO function_tags (function, key, value) VALUES ($1, $2, $3) \
                 ON CONFLICT (function, key) DO UPDATE SET value = excluded.value",
            )
            .bind(name)
            .bind(key)
            .bind(value)
            .execute(&mut *tx)
            .await?;
        }
        let count: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM function_tags WHERE function = $1")
                .bind(name)
                .fetch_one(&mut *tx)
                .await?;
        if count as usize > max {
            return Err(StoreError::Conflict(format!(
                "function {name} would have {count} tags, more than {max}"
            )));
        }
        tx.commit().await?;
        Ok(())
    }

    /// Removes the tags with these keys (absent ones are ignored); NotFound
    /// for an unknown function.
    pub async fn untag_function(&self, name: &str, keys: &[String]) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        if !function_exists(&mut tx, name).await? {
            return Err(StoreError::NotFound(format!("function {name}")));
        }
        for key in keys {
            sqlx::query("DELETE FROM function_tags WHERE function = $1 AND key = $2")
                .bind(name)
                .bind(key)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// How many functions there are and how much code all their versions hold.
    pub async fn account_usage(&self) -> Result<AccountUsage, StoreError> {
        let function_count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM functions")
            .fetch_one(&self.pool)
            .await?;
        let total_code_size: i64 =
            sqlx::query_scalar("SELECT CAST(COALESCE(SUM(code_size), 0) AS BIGINT) FROM versions")
                .fetch_one(&self.pool)
                .await?;
        Ok(AccountUsage {
            function_count,
            total_code_size,
        })
    }
}
