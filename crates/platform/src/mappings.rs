//! Event source mappings (Lambda's CreateEventSourceMapping and friends):
//! which function consumes which queue, and how. A mapping made here and a
//! manifest's `queue` trigger are the same thing (a row of
//! `event_source_mappings`, consumed by `updraft_triggers::queues`).

use crate::{Platform, PlatformError};
use updraft_core::{function_arn, new_request_id, now_ms, qualified_arn, Invalid, Qualifier};
use updraft_rules::{BATCH_SIZE_RANGE, MAX_BATCH_WINDOW_MS};
use updraft_store::MappingRow;

/// Lambda's name for partial batch responses.
pub const REPORT_BATCH_ITEM_FAILURES: &str = "ReportBatchItemFailures";

/// A mapping as the Lambda API shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventSourceMapping {
    pub uuid: String,
    pub event_source_arn: String,
    pub function_arn: String,
    pub batch_size: i64,
    pub batch_window_s: i64,
    pub report_batch_item_failures: bool,
    pub enabled: bool,
    pub last_modified_ms: i64,
    /// `api` or `manifest`.
    pub origin: String,
}

/// What CreateEventSourceMapping / UpdateEventSourceMapping carry; None:
/// the default (create) or unchanged (update).
#[derive(Clone, Debug, Default)]
pub struct MappingInput {
    pub event_source_arn: Option<String>,
    /// The function's name or ARN, optionally qualified.
    pub function_name: Option<String>,
    pub batch_size: Option<i64>,
    pub batch_window_s: Option<i64>,
    pub function_response_types: Option<Vec<String>>,
    pub enabled: Option<bool>,
}

impl Platform {
    fn mapping_view(&self, m: &MappingRow) -> EventSourceMapping {
        let region = self.region();
        let function_arn = match Qualifier::parse(Some(&m.qualifier)) {
            Ok(q) if !m.qualifier.is_empty() => qualified_arn(region, &m.function, &q),
            _ => function_arn(region, &m.function),
        };
        EventSourceMapping {
            uuid: m.uuid.clone(),
            event_source_arn: updraft_triggers::sqs::queue_arn(region, &m.queue),
            function_arn,
            batch_size: m.batch_size,
            batch_window_s: m.batch_window_ms / 1000,
            report_batch_item_failures: m.report_batch_item_failures,
            enabled: m.enabled,
            last_modified_ms: m.updated_ms,
            origin: m.origin.clone(),
        }
    }

    /// The queue an `arn:aws:sqs:REGION:ACCOUNT:NAME` names; it must exist.
    async fn mapped_queue(&self, arn: &str) -> Result<String, PlatformError> {
        let name = arn
            .strip_prefix("arn:aws:sqs:")
            .and_then(|rest| rest.rsplit_once(':'))
            .map(|(_, name)| name)
            .filter(|n| updraft_rules::valid_queue_name(n))
            .ok_or_else(|| {
                Invalid::new(
                    "EventSourceArn",
                    "an SQS queue ARN, arn:aws:sqs:REGION:000000000000:NAME (the only event source Updraft maps)",
                    arn,
                )
            })?;
        if self.inner.store.get_queue(name).await?.is_none() {
            return Err(PlatformError::InvalidParameter(format!(
                "EventSourceArn: queue {name} does not exist ({arn})"
            )));
        }
        Ok(name.to_string())
    }

    /// Checks and applies the settings of `input` onto `row`.
    fn apply_mapping_input(
        row: &mut MappingRow,
        input: &MappingInput,
    ) -> Result<(), PlatformError> {
        if let Some(n) = input.batch_size {
            if !(i64::from(*BATCH_SIZE_RANGE.start())..=i64::from(*BATCH_SIZE_RANGE.end()))
                .contains(&n)
            {
                return Err(Invalid::new("BatchSize", "1 to 10000", n).into());
            }
            row.batch_size = n;
        }
        if let Some(w) = input.batch_window_s {
            if !(0..=(MAX_BATCH_WINDOW_MS / 1000) as i64).contains(&w) {
                return Err(Invalid::new("MaximumBatchingWindowInSeconds", "0 to 300", w).into());
            }
            row.batch_window_ms = w * 1000;
        }
        if let Some(types) = &input.function_response_types {
            if let Some(bad) = types.iter().find(|t| *t != REPORT_BATCH_ITEM_FAILURES) {
                return Err(Invalid::new(
                    "FunctionResponseTypes",
                    "[] or [\"ReportBatchItemFailures\"]",
                    bad,
                )
                .into());
            }
            row.report_batch_item_failures = !types.is_empty();
        }
        if let Some(e) = input.enabled {
            row.enabled = e;
        }
        Ok(())
    }

    pub async fn create_event_source_mapping(
        &self,
        input: MappingInput,
    ) -> Result<EventSourceMapping, PlatformError> {
        let arn = input
            .event_source_arn
            .as_deref()
            .ok_or_else(|| Invalid::new("EventSourceArn", "an SQS queue ARN", "nothing"))?;
        let raw_fn = input
            .function_name
            .as_deref()
            .ok_or_else(|| Invalid::new("FunctionName", "a function name or ARN", "nothing"))?;
        let f = updraft_core::FunctionRef::parse("FunctionName", raw_fn)?;
        if let Some(q) = &f.qualifier {
            Qualifier::parse(Some(q)).map_err(updraft_core::Error::from)?;
        }
        // The function (and its qualifier) must exist.
        self.resolve(&f.name, f.qualifier.as_deref()).await?;
        let queue = self.mapped_queue(arn).await?;
        let now = now_ms();
        let mut row = MappingRow {
            uuid: new_request_id(),
            queue,
            function: f.name,
            qualifier: f.qualifier.unwrap_or_default(),
            batch_size: 10,
            batch_window_ms: 0,
            report_batch_item_failures: false,
            enabled: true,
            origin: "api".into(),
            created_ms: now,
            updated_ms: now,
        };
        Self::apply_mapping_input(&mut row, &input)?;
        self.inner.store.create_mapping(&row).await?;
        self.inner.queues.mappings_changed();
        Ok(self.mapping_view(&row))
    }

    async fn mapping_row(&self, uuid: &str) -> Result<MappingRow, PlatformError> {
        self.inner.store.get_mapping(uuid).await?.ok_or_else(|| {
            PlatformError::NotFound(format!(
                "The resource you requested does not exist. (Service: Lambda; event source mapping {uuid})"
            ))
        })
    }

    pub async fn get_event_source_mapping(
        &self,
        uuid: &str,
    ) -> Result<EventSourceMapping, PlatformError> {
        Ok(self.mapping_view(&self.mapping_row(uuid).await?))
    }

    /// Mappings, of a function and/or of a queue's ARN, oldest first.
    pub async fn list_event_source_mappings(
        &self,
        function: Option<&str>,
        event_source_arn: Option<&str>,
    ) -> Result<Vec<EventSourceMapping>, PlatformError> {
        let function = function
            .map(|f| updraft_core::FunctionRef::parse("FunctionName", f))
            .transpose()?;
        let queue = match event_source_arn {
            Some(arn) => Some(self.mapped_queue(arn).await?),
            None => None,
        };
        let rows = self
            .inner
            .store
            .list_mappings(function.as_ref().map(|f| f.name.as_str()), queue.as_deref())
            .await?;
        Ok(rows
            .iter()
            .filter(|m| {
                function
                    .as_ref()
                    .and_then(|f| f.qualifier.as_deref())
                    .is_none_or(|q| m.qualifier == q)
            })
            .map(|m| self.mapping_view(m))
            .collect())
    }

    pub async fn update_event_source_mapping(
        &self,
        uuid: &str,
        input: MappingInput,
    ) -> Result<EventSourceMapping, PlatformError> {
        let mut row = self.mapping_row(uuid).await?;
        if input.event_source_arn.is_some() || input.function_name.is_some() {
            let field = if input.event_source_arn.is_some() {
                "EventSourceArn"
            } else {
                "FunctionName"
            };
            return Err(PlatformError::InvalidParameter(format!(
                "{field}: a mapping's queue and function cannot change; delete it and create another"
            )));
        }
        Self::apply_mapping_input(&mut row, &input)?;
        row.updated_ms = now_ms();
        row.origin = "api".into();
        if !self.inner.store.update_mapping(&row).await? {
            return Err(self.mapping_row(uuid).await.err().unwrap_or_else(|| {
                PlatformError::Conflict(format!("event source mapping {uuid} changed meanwhile"))
            }));
        }
        self.inner.queues.mappings_changed();
        Ok(self.mapping_view(&row))
    }

    pub async fn delete_event_source_mapping(
        &self,
        uuid: &str,
    ) -> Result<EventSourceMapping, PlatformError> {
        let row = self
            .inner
            .store
            .delete_mapping(uuid)
            .await?
            .ok_or_else(|| {
                PlatformError::NotFound(format!(
                    "The resource you requested does not exist. (Service: Lambda; event source mapping {uuid})"
                ))
            })?;
        self.inner.queues.mappings_changed();
        Ok(self.mapping_view(&row))
    }
}
