//! Function-level settings: reserved concurrency and the function URL config.

use crate::registry::Change;
use crate::{Platform, PlatformError};
use updraft_core::{function_arn, UrlAuth};
use updraft_store::{FunctionSettings, StoreError};

/// The most reserved concurrency a function may get (as `scaling.max_instances`).
pub const MAX_RESERVED_CONCURRENCY: i64 = 1000;

impl Platform {
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
