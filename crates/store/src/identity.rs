//! Host identities of functions: every function gets a uid of its own,
//! allocated once and stored, so that no two functions of the servers sharing
//! this store ever run as the same user. Uids are never reused: a deleted
//! function's row stays, and a function created again under its name gets
//! its uid back.

use crate::{Store, StoreError};

/// The first uid handed out; far above what distributions and user
/// namespaces' subordinate ranges (`/etc/subuid`, usually from 100000) use.
pub const FIRST_FUNCTION_UID: u32 = 2_000_000;

impl Store {
    /// The uid of `function`, allocated on first use (the next after the
    /// highest ever handed out). Safe against servers allocating at once: a
    /// lost race on the uid is retried with the next one.
    pub async fn function_uid(&self, function: &str) -> Result<u32, StoreError> {
        for _ in 0..16 {
            let found: Option<i64> =
                sqlx::query_scalar("SELECT uid FROM function_uids WHERE name = $1")
                    .bind(function)
                    .fetch_optional(&self.pool)
                    .await?;
            if let Some(uid) = found {
                return u32::try_from(uid).map_err(|_| {
                    StoreError::Corrupt(format!("function_uids: uid {uid} of {function}"))
                });
            }
            // `WHERE true`: SQLite needs it to parse an upsert after a SELECT.
            sqlx::query(
                "INSERT INTO function_uids (name, uid) \
                 SELECT $1, COALESCE(MAX(uid) + 1, $2) FROM function_uids WHERE true \
                 ON CONFLICT DO NOTHING",
            )
            .bind(function)
            .bind(i64::from(FIRST_FUNCTION_UID))
            .execute(&mut *self.write_conn().await?)
            .await?;
        }
        Err(StoreError::Corrupt(format!(
            "could not allocate a uid for {function}: too many servers allocating at once"
        )))
    }
}
