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

/// A fresh request id in Lambda's shape (a UUID). It is a version 7 UUID:
/// its first 48 bits are the time in milliseconds and 74 are random, so ids
/// made one after another sort together. The store's indexes on request ids
/// (invocation records, log lines) then grow at their end instead of
/// rewriting a random page per invocation.
pub fn new_request_id() -> String {
    uuid::Uuid::now_v7().to_string()
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
mod request_id_tests {
    #[test]
    fn request_ids_are_uuids_that_sort_in_the_order_they_were_made() {
        let ids: Vec<String> = (0..2000).map(|_| super::new_request_id()).collect();
        for w in ids.windows(2) {
            assert!(w[0] < w[1], "{} then {}", w[0], w[1]);
        }
        for id in &ids {
            let u = uuid::Uuid::parse_str(id).expect("a UUID");
            assert_eq!(u.get_version_num(), 7, "{id}");
            assert_eq!(id.len(), 36, "{id}: Lambda's 8-4-4-4-12 shape");
        }
    }
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
