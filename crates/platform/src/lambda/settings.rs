//! Function-level settings: reserved concurrency and the function URL config;
//! the account's limits and usage (GetAccountSettings).

use crate::registry::Change;
use crate::{Platform, PlatformError};
use updraft_core::{function_arn, limits, UrlAuth};
use updraft_store::{AccountUsage, FunctionSettings, StoreError};

/// The most reserved concurrency a function may get (as `scaling.max_instances`).
pub const MAX_RESERVED_CONCURRENCY: i64 = 1000;

/// The code storage GetAccountSettings reports (Lambda's default quota,
/// 75 GB); Updraft does not enforce a total.
pub const TOTAL_CODE_BYTES: i64 = 75 * 1024 * 1024 * 1024;

/// GetAccountSettings: the limits this server enforces and what is used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountSettings {
    pub total_code_size: i64,
    /// A code package unpacked.
    pub code_size_unzipped: i64,
    /// A zip sent in a Lambda API request.
    pub code_size_zipped: i64,
    /// The most reserved concurrency one function may get.
    pub concurrent_executions: i64,
    /// That, less what functions have reserved (not below 0).
    pub unreserved_concurrent_executions: i64,
    pub usage: AccountUsage,
}

impl Platform {
    // ---- account --------------------------------------------------------------

    pub async fn account_settings(&self) -> Result<AccountSettings, PlatformError> {
        let store = &self.inner.store;
        let reserved: i64 = store
            .all_function_settings()
            .await?
            .iter()
            .filter_map(|s| s.reserved_concurrency)
            .sum();
        Ok(AccountSettings {
            total_code_size: TOTAL_CODE_BYTES,
            code_size_unzipped: limits::UNPACKED_CODE_BYTES as i64,
            code_size_zipped: limits::DIRECT_ZIP_BYTES as i64,
            concurrent_executions: MAX_RESERVED_CONCURRENCY,
            unreserved_concurrent_executions: (MAX_RESERVED_CONCURRENCY - reserved).max(0),
            usage: store.account_usage().await?,
        })
    }

    // ---- concurrency ----------------------------------------------------------

    /// PutFunctionConcurrency: caps the function's concurrent invocations.
    pub async fn put_concurrency(&self, name: &str, reserved: i64) -> Result<(), PlatformError> {
        if !(0..=MAX_RESERVED_CONCURRENCY).contains(&reserved) {
            return Err(PlatformError::InvalidParameter(format!(
                "ReservedConcurrentExecutions: expected 0 to {MAX_RESERVED_CONCURRENCY}, got {reserved}"
            )));
        }
        self.set_concurrency(name, Some(reserved)).await
    }

    pub async fn delete_concurrency(&self, name: &str) -> Result<(), PlatformError> {
        self.set_concurrency(name, None).await
    }

    async fn set_concurrency(
        &self,
        name: &str,
        reserved: Option<i64>,
    ) -> Result<(), PlatformError> {
        self.inner
            .store
            .set_reserved_concurrency(name, reserved)
            .await
            .map_err(|e| match e {
                StoreError::NotFound(_) => self.not_found(name),
                other => other.into(),
            })?;
        self.changed(name, Change::Settings).await;
        Ok(())
    }

    pub async fn get_concurrency(&self, name: &str) -> Result<Option<i64>, PlatformError> {
        if self.inner.store.get_function(name).await?.is_none() {
            return Err(self.not_found(name));
        }
        Ok(self
            .inner
            .store
            .function_settings(name)
            .await?
            .reserved_concurrency)
    }

    // ---- function URL ---------------------------------------------------------

    /// The URL config: the URL always exists (SPEC §4), so this never fails
    /// for an existing function; `url_auth` is the effective one.
    pub async fn url_config(&self, name: &str) -> Result<FunctionSettings, PlatformError> {
        let latest = self.latest_row(name).await?;
        let mut s = self.inner.store.function_settings(name).await?;
        s.url_auth = Some(s.url_auth.unwrap_or(latest.config.url));
        if s.url_created_ms == 0 {
            s.url_created_ms = latest.created_ms;
            s.url_updated_ms = latest.created_ms;
        }
        Ok(s)
    }

    /// Create (Conflict when one was created already) or Update the URL config.
    pub async fn put_url_config(
        &self,
        name: &str,
        create: bool,
        auth: Option<UrlAuth>,
        cors: Option<Option<String>>,
    ) -> Result<FunctionSettings, PlatformError> {
        self.latest_row(name).await?;
        self.inner
            .store
            .put_url_config(name, create, auth, cors)
            .await
            .map_err(|e| match e {
                StoreError::Conflict(_) => PlatformError::Conflict(format!(
                    "Failed to create function url config for [functionArn = {}]. Error message:  FunctionUrlConfig exists for this Lambda function",
                    function_arn(self.region(), name)
                )),
                other => other.into(),
            })?;
        self.changed(name, Change::Settings).await;
        self.url_config(name).await
    }

    /// DeleteFunctionUrlConfig: the URL stays, and becomes private (AWS_IAM).
    pub async fn delete_url_config(&self, name: &str) -> Result<(), PlatformError> {
        self.latest_row(name).await?;
        self.inner.store.delete_url_config(name).await?;
        self.changed(name, Change::Settings).await;
        Ok(())
    }
}
