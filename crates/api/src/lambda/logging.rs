//! `LoggingConfig` of CreateFunction, UpdateFunctionConfiguration and
//! GetFunctionConfiguration: the JSON log format and its level filters.

use serde::Deserialize;
use serde_json::{json, Value};
use updraft_core::logs::Level;
use updraft_core::{LogFormat, LoggingConfig};
use updraft_platform::PlatformError;

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
pub struct LoggingConfigBody {
    log_format: Option<String>,
    application_log_level: Option<String>,
    system_log_level: Option<String>,
    log_group: Option<String>,
}

fn invalid(field: &str, expected: &str, got: &str) -> PlatformError {
    PlatformError::InvalidParameter(format!(
        "LoggingConfig.{field}: expected {expected}, got {got:?}"
    ))
}

fn level(field: &str, v: &str, allowed: &[Level]) -> Result<Level, PlatformError> {
    let names: Vec<&str> = allowed.iter().map(|l| l.as_str()).collect();
    let expected = format!("one of {}", names.join(", "));
    allowed
        .iter()
        .copied()
        .find(|l| l.as_str() == v)
        .ok_or_else(|| invalid(field, &expected, v))
}

impl LoggingConfigBody {
    /// `current` with the given fields changed (LogFormat Text drops the
    /// levels, which only filter JSON); checked with the rest of the config.
    pub fn apply(self, current: &LoggingConfig) -> Result<LoggingConfig, PlatformError> {
        let mut c = current.clone();
        if let Some(f) = self.log_format {
            c.format = match f.as_str() {
                "JSON" => LogFormat::Json,
                "Text" => {
                    c.application_level = None;
                    c.system_level = None;
                    LogFormat::Text
                }
                other => return Err(invalid("LogFormat", "JSON or Text", other)),
            };
        }
        if let Some(l) = self.application_log_level {
            c.application_level = Some(level("ApplicationLogLevel", &l, &Level::ALL)?);
        }
        if let Some(l) = self.system_log_level {
            let allowed = [Level::Debug, Level::Info, Level::Warn];
            c.system_level = Some(level("SystemLogLevel", &l, &allowed)?);
        }
        if let Some(g) = self.log_group {
            c.log_group = (!g.is_empty()).then_some(g);
        }
        Ok(c)
    }
}

/// `LoggingConfig` as GetFunctionConfiguration shows it.
pub fn shape(c: &LoggingConfig, function: &str) -> Value {
    let group = c
        .log_group
        .clone()
        .unwrap_or_else(|| format!("/aws/lambda/{function}"));
    if c.is_json() {
        json!({
            "LogFormat": "JSON",
            "ApplicationLogLevel": c.application_level().as_str(),
            "SystemLogLevel": c.system_level().as_str(),
            "LogGroup": group,
        })
    } else {
        json!({"LogFormat": "Text", "LogGroup": group})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: Value) -> LoggingConfigBody {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn applies_and_checks_fields() {
        let json = body(json!({"LogFormat": "JSON", "ApplicationLogLevel": "DEBUG"}))
            .apply(&LoggingConfig::default())
            .unwrap();
        assert_eq!(json.format, LogFormat::Json);
        assert_eq!(json.application_level, Some(Level::Debug));
        let s = shape(&json, "f");
        assert_eq!(s["SystemLogLevel"], "INFO");
        assert_eq!(s["LogGroup"], "/aws/lambda/f");
        let text = body(json!({"LogFormat": "Text"})).apply(&json).unwrap();
        assert!(text.is_default(), "{text:?}");
        let err = body(json!({"SystemLogLevel": "ERROR"}))
            .apply(&json)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("LoggingConfig.SystemLogLevel") && err.contains("WARN"),
            "{err}"
        );
        let err = body(json!({"LogFormat": "json"}))
            .apply(&json)
            .unwrap_err()
            .to_string();
        assert!(err.contains("LoggingConfig.LogFormat"), "{err}");
    }
}
