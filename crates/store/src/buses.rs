//! Event-bus subscriptions: which function's `event` trigger listens on
//! which bus, with its EventBridge pattern as JSON text. A function's rows
//! are replaced whole whenever `$LATEST`'s configuration changes, so they
//! are always exactly its current triggers. Buses themselves are not stored:
//! a bus exists as soon as it is named.

use crate::{fetch_all, Store, StoreError};
use sqlx::any::AnyRow;
use sqlx::Row;

/// One `event` trigger of a function.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BusSubscription {
    pub function: String,
    /// The trigger's index in the function's `triggers`.
    pub idx: i64,
    pub bus: String,
    /// `""` = unqualified (`$LATEST`).
    pub qualifier: String,
    /// The EventBridge pattern, as JSON text.
    pub pattern: String,
}

const COLS: &str = "function, idx, bus, qualifier, pattern";

impl Store {
    /// Makes `subscriptions` the function's whole set, in one transaction.
    /// Every row must name `function`.
    pub async fn replace_bus_subscriptions(
        &self,
        function: &str,
        subscriptions: &[BusSubscription],
    ) -> Result<(), StoreError> {
        if let Some(s) = subscriptions.iter().find(|s| s.function != function) {
            return Err(StoreError::Conflict(format!(
                "a subscription of function {} cannot be written as one of {function}",
                s.function
            )));
        }
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM bus_subscriptions WHERE function = $1")
            .bind(function)
            .execute(&mut *tx)
            .await?;
        for s in subscriptions {
            sqlx::query(&format!(
                "INSERT INTO bus_subscriptions ({COLS}) VALUES ($1, $2, $3, $4, $5)"
            ))
            .bind(s.function.as_str())
            .bind(s.idx)
            .bind(s.bus.as_str())
            .bind(s.qualifier.as_str())
            .bind(s.pattern.as_str())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The subscriptions of one bus, by function and index.
    pub async fn bus_subscriptions(&self, bus: &str) -> Result<Vec<BusSubscription>, StoreError> {
        let sql =
            format!("SELECT {COLS} FROM bus_subscriptions WHERE bus = $1 ORDER BY function, idx");
        fetch_all(&self.pool, &sql, &[bus], subscription_from_row).await
    }

    /// Removes every subscription of a (deleted) function; returns how many.
    pub async fn drop_bus_subscriptions(&self, function: &str) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM bus_subscriptions WHERE function = $1")
            .bind(function)
            .execute(&mut *self.write_conn().await?)
            .await?;
        Ok(done.rows_affected())
    }
}

fn subscription_from_row(row: &AnyRow) -> Result<BusSubscription, StoreError> {
    Ok(BusSubscription {
        function: row.try_get("function")?,
        idx: row.try_get("idx")?,
        bus: row.try_get("bus")?,
        qualifier: row.try_get("qualifier")?,
        pattern: row.try_get("pattern")?,
    })
}
