//! Updraft's shared vocabulary: function configuration, invocations and their
//! outcomes. No I/O lives here; every other crate speaks these types.

pub mod arn;
pub mod config;
pub mod cors;
pub mod duration;
pub mod error;
pub mod invoke;
pub mod limits;
pub mod lines;
pub mod logs;
pub mod version;

pub use arn::{function_arn, qualified_arn, valid_function_name, version_arn, FunctionRef};
pub use cors::Cors;
pub use error::{Error, Invalid};
pub use version::{is_alias_name, version_label, Qualifier, Version, LATEST};

pub use config::{
    permission_is_valid, BusTrigger, FunctionConfig, HttpRoute, PayloadFormat, QueueTrigger,
    RuntimeKind, Scaling, ScheduleTrigger, Trigger, UrlAuth, DEFAULT_EPHEMERAL_MB,
    PERMISSION_EXPECTED,
};
pub use invoke::{
    ErrorKind, HttpRequest, HttpResponse, Invocation, Invoke, InvokeRequest, InvokeResult, Outcome,
    Stats, TriggerKind,
};
pub use logs::{LogFormat, LogLine, LogSink, LoggingConfig};

/// Milliseconds since the Unix epoch, the one clock every record uses.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A fresh request id in Lambda's shape (a UUID v4).
pub fn new_request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Aligns rows of cells into columns separated by two spaces, for terminals.
pub fn text_table<R: AsRef<[String]>>(rows: &[R]) -> String {
    let columns = rows.iter().map(|r| r.as_ref().len()).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.as_ref().get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let cells: Vec<String> = r
            .as_ref()
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod table_tests {
    #[test]
    fn aligns_columns() {
        let rows = vec![
            vec!["A".to_string(), "BB".to_string()],
            vec!["CCC".to_string(), "D".to_string()],
        ];
        assert_eq!(super::text_table(&rows), "A    BB\nCCC  D\n");
    }
}
