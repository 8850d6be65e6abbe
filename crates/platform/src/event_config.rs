//! Lambda's FunctionEventInvokeConfig: a function's (or a version's or
//! alias's) asynchronous settings — retries, event age and destinations —
//! which the worker in `updraft-triggers` reads for every event.

use crate::{Platform, PlatformError};
use serde::{Deserialize, Serialize};
use updraft_core::{function_arn, now_ms, FunctionRef, Invalid, Qualifier};
use updraft_store::EventInvokeConfigRow;
use updraft_triggers::{DEFAULT_MAX_EVENT_AGE_S, MAX_RETRY_ATTEMPTS, MIN_EVENT_AGE_S};

/// A function's asynchronous invocation settings (Lambda's
/// FunctionEventInvokeConfig); None = not set, Lambda's default applies.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventInvokeConfig {
    pub function: String,
    /// `$LATEST`, a version number or an alias.
    pub qualifier: String,
    /// The qualified ARN the settings belong to.
    pub function_arn: String,
    pub maximum_retry_attempts: Option<u32>,
    pub maximum_event_age_s: Option<u32>,
    /// Destination ARNs.
    pub on_success: Option<String>,
    pub on_failure: Option<String>,
    pub last_modified_ms: i64,
}

/// What a Put (replace) or Update (merge) sets. For Update, None leaves a
/// setting as it is; for Put, None unsets it. An empty destination string
/// removes the destination.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventInvokeConfigInput {
    pub maximum_retry_attempts: Option<i64>,
    pub maximum_event_age_s: Option<i64>,
    pub on_success: Option<String>,
    pub on_failure: Option<String>,
}

fn check_destination(field: &str, arn: &str) -> Result<(), Invalid> {
    if FunctionRef::parse_arn(arn).is_some() {
        return Ok(());
    }
    let service = arn.split(':').nth(2).unwrap_or("");
    let expected = if arn.starts_with("arn:") && ["sqs", "sns", "s3", "events"].contains(&service) {
        "a function ARN: Updraft delivers to Lambda functions only, not to other services"
    } else {
        "a function ARN (arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER])"
    };
    Err(Invalid::new(field, expected, arn))
}

fn check_range(field: &str, v: i64, min: i64, max: i64) -> Result<(), Invalid> {
    if (min..=max).contains(&v) {
        return Ok(());
    }
    Err(Invalid::new(
        field,
        format!("a value from {min} to {max}"),
        v,
    ))
}

impl Platform {
    // ---- EventInvokeConfig ----------------------------------------------

    async fn event_config_target(
        &self,
        name: &str,
        qualifier: Option<&str>,
    ) -> Result<String, PlatformError> {
        let q = Qualifier::parse(qualifier)?;
        if q.is_latest() {
            if self.inner.store.get_function(name).await?.is_none() {
                return Err(self.not_found(name));
            }
        } else {
            self.resolve_q(name, Some(&q)).await?;
        }
        Ok(q.to_string())
    }

    fn event_config_out(&self, row: EventInvokeConfigRow) -> EventInvokeConfig {
        EventInvokeConfig {
            function_arn: format!(
                "{}:{}",
                function_arn(self.region(), &row.function),
                row.qualifier
            ),
            function: row.function,
            qualifier: row.qualifier,
            maximum_retry_attempts: row.max_retry_attempts.map(|v| v as u32),
            maximum_event_age_s: row.max_event_age_s.map(|v| v as u32),
            on_success: row.on_success,
            on_failure: row.on_failure,
            last_modified_ms: row.updated_ms,
        }
    }

    /// PutFunctionEventInvokeConfig (`merge` false: replaces every setting)
    /// and UpdateFunctionEventInvokeConfig (`merge` true: changes only those given).
    pub async fn put_event_invoke_config(
        &self,
        name: &str,
        qualifier: Option<&str>,
        input: EventInvokeConfigInput,
        merge: bool,
    ) -> Result<EventInvokeConfig, PlatformError> {
        if let Some(v) = input.maximum_retry_attempts {
            check_range("maximumRetryAttempts", v, 0, MAX_RETRY_ATTEMPTS)?;
        }
        if let Some(v) = input.maximum_event_age_s {
            check_range(
                "maximumEventAgeInSeconds",
                v,
                MIN_EVENT_AGE_S,
                DEFAULT_MAX_EVENT_AGE_S as i64,
            )?;
        }
        for (field, d) in [
            ("destinationConfig.onSuccess.destination", &input.on_success),
            ("destinationConfig.onFailure.destination", &input.on_failure),
        ] {
            if let Some(arn) = d.as_deref().filter(|a| !a.is_empty()) {
                check_destination(field, arn)?;
            }
        }
        let q = self.event_config_target(name, qualifier).await?;
        let store = &self.inner.store;
        let old = if merge {
            store.get_event_invoke_config(name, &q).await?
        } else {
            None
        };
        let pick = |new: Option<String>, old: Option<String>| match new {
            Some(s) if s.is_empty() => None,
            Some(s) => Some(s),
            None => old,
        };
        let row = EventInvokeConfigRow {
            function: name.to_string(),
            qualifier: q,
            max_retry_attempts: input
                .maximum_retry_attempts
                .or(old.as_ref().and_then(|o| o.max_retry_attempts)),
            max_event_age_s: input
                .maximum_event_age_s
                .or(old.as_ref().and_then(|o| o.max_event_age_s)),
            on_success: pick(
                input.on_success,
                old.as_ref().and_then(|o| o.on_success.clone()),
            ),
            on_failure: pick(
                input.on_failure,
                old.as_ref().and_then(|o| o.on_failure.clone()),
            ),
            updated_ms: now_ms(),
        };
        store.put_event_invoke_config(&row).await?;
        Ok(self.event_config_out(row))
    }

    /// GetFunctionEventInvokeConfig: NotFound when none was put.
    pub async fn get_event_invoke_config(
        &self,
        name: &str,
        qualifier: Option<&str>,
    ) -> Result<EventInvokeConfig, PlatformError> {
        let q = self.event_config_target(name, qualifier).await?;
        match self.inner.store.get_event_invoke_config(name, &q).await? {
            Some(row) => Ok(self.event_config_out(row)),
            None => Err(self.no_event_config(name, &q)),
        }
    }

    /// ListFunctionEventInvokeConfigs: every qualifier's settings.
    pub async fn list_event_invoke_configs(
        &self,
        name: &str,
    ) -> Result<Vec<EventInvokeConfig>, PlatformError> {
        self.event_config_target(name, None).await?;
        let rows = self.inner.store.list_event_invoke_configs(name).await?;
        Ok(rows.into_iter().map(|r| self.event_config_out(r)).collect())
    }

    /// DeleteFunctionEventInvokeConfig: NotFound when none was put.
    pub async fn delete_event_invoke_config(
        &self,
        name: &str,
        qualifier: Option<&str>,
    ) -> Result<(), PlatformError> {
        let q = self.event_config_target(name, qualifier).await?;
        if !self
            .inner
            .store
            .delete_event_invoke_config(name, &q)
            .await?
        {
            return Err(self.no_event_config(name, &q));
        }
        Ok(())
    }

    fn no_event_config(&self, name: &str, q: &str) -> PlatformError {
        PlatformError::NotFound(format!(
            "The function {}:{q} doesn't have an EventInvokeConfig",
            function_arn(self.region(), name)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_and_ranges() {
        assert!(check_destination("f", "arn:aws:lambda:us-east-1:000000000000:function:d").is_ok());
        assert!(check_destination("f", "arn:aws:sqs:us-east-1:000000000000:q").is_err());
        assert!(check_destination("f", "nonsense").is_err());
        assert!(check_range("maximumRetryAttempts", 3, 0, 2).is_err());
        assert!(check_range("maximumEventAgeInSeconds", 59, 60, 21600).is_err());
        assert!(check_range("maximumEventAgeInSeconds", 60, 60, 21600).is_ok());
        let e = check_range("maximumRetryAttempts", 3, 0, 2).unwrap_err();
        assert_eq!(
            e.to_string(),
            "maximumRetryAttempts: expected a value from 0 to 2, got 3"
        );
    }
}
