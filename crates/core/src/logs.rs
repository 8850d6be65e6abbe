//! Log lines of invocations, the sink runtimes write them to, and the two
//! pieces every runtime's output capture shares: splitting a byte stream
//! into lines and the per-invocation budget that truncates a flood.

use serde::{Deserialize, Serialize};

/// Longest line kept whole; longer ones are split, as Lambda does.
pub const MAX_LINE: usize = 256 * 1024;

/// What one invocation may log by default (`updraft server --invocation-log-limit`).
pub const DEFAULT_INVOCATION_LOG_LIMIT: u64 = 4 << 20;

/// What storing one line costs beyond its text (row, request id, indexes),
/// charged to the budget so that a flood of empty lines is bounded too.
pub const LINE_COST: u64 = 128;

/// One stored log line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    pub ts_ms: i64,
    pub function: String,
    pub request_id: String,
    pub text: String,
}

/// A log line's level, as Lambda's log levels order them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
    Fatal,
}

impl Level {
    pub const ALL: [Level; 6] = [
        Level::Trace,
        Level::Debug,
        Level::Info,
        Level::Warn,
        Level::Error,
        Level::Fatal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Trace => "TRACE",
            Level::Debug => "DEBUG",
            Level::Info => "INFO",
            Level::Warn => "WARN",
            Level::Error => "ERROR",
            Level::Fatal => "FATAL",
        }
    }

    /// A level's name in any case; Python's `WARNING` and `CRITICAL` too.
    pub fn parse(name: &str) -> Option<Level> {
        Some(match name.to_ascii_uppercase().as_str() {
            "TRACE" => Level::Trace,
            "DEBUG" => Level::Debug,
            "INFO" => Level::Info,
            "WARN" | "WARNING" => Level::Warn,
            "ERROR" => Level::Error,
            "FATAL" | "CRITICAL" => Level::Fatal,
            _ => return None,
        })
    }

    /// The level a line carries, if any: a JSON object's `level` (Lambda's
    /// JSON log format), a leading `[LEVEL]` (Python's text format), or a
    /// leading `LEVEL<TAB>` or `TIMESTAMP<TAB>REQUEST_ID<TAB>LEVEL<TAB>`
    /// (Node.js's text format). START/END/REPORT and plain prints: none.
    pub fn of_line(text: &str) -> Option<Level> {
        if text.starts_with('{') {
            let v: serde_json::Value = serde_json::from_str(text).ok()?;
            return Level::parse(v.get("level")?.as_str()?);
        }
        if let Some(rest) = text.strip_prefix('[') {
            return Level::parse(rest.split_once(']')?.0);
        }
        let mut fields = text.splitn(4, '\t');
        let first = fields.next()?;
        if let Some(l) = Level::parse(first) {
            return fields.next().is_some().then_some(l);
        }
        fields.next()?;
        let third = fields.next()?;
        fields.next()?;
        Level::parse(third)
    }
}

impl From<Level> for String {
    fn from(l: Level) -> String {
        l.as_str().to_string()
    }
}

impl TryFrom<String> for Level {
    type Error = String;

    fn try_from(s: String) -> Result<Level, String> {
        s.parse()
    }
}

/// Lambda's `LoggingConfig.LogFormat`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum LogFormat {
    #[default]
    Text,
    #[serde(rename = "JSON")]
    Json,
}

/// Lambda's `LoggingConfig`: the JSON log format with its level filters. In
/// JSON format the runtimes write one JSON object a line (env
/// `AWS_LAMBDA_LOG_FORMAT=JSON`, `AWS_LAMBDA_LOG_LEVEL`) and START/REPORT
/// become `platform.start` / `platform.report` records.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoggingConfig {
    #[serde(default)]
    pub format: LogFormat,
    /// Lines of the function below this are dropped (JSON format only;
    /// default INFO).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_level: Option<Level>,
    /// Platform records below this are dropped (JSON format only; default
    /// INFO; START and REPORT are INFO).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_level: Option<Level>,
    /// Accepted and reported back; Updraft keeps logs in its store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_group: Option<String>,
}

impl LoggingConfig {
    pub fn is_default(&self) -> bool {
        *self == LoggingConfig::default()
    }

    pub fn is_json(&self) -> bool {
        self.format == LogFormat::Json
    }

    /// Levels are filters of the JSON format, as Lambda insists.
    pub fn validate(&self) -> Result<(), crate::Invalid> {
        if !self.is_json() && (self.application_level.is_some() || self.system_level.is_some()) {
            return Err(crate::Invalid::new(
                "logging.format",
                "JSON when a log level is set",
                "Text",
            ));
        }
        if let Some(l) = self.system_level {
            if !matches!(l, Level::Debug | Level::Info | Level::Warn) {
                return Err(crate::Invalid::new(
                    "logging.system_level",
                    "DEBUG, INFO or WARN",
                    l.as_str(),
                ));
            }
        }
        Ok(())
    }

    /// The application level in effect (JSON format: INFO unless set).
    pub fn application_level(&self) -> Level {
        self.application_level.unwrap_or(Level::Info)
    }

    /// The system level in effect (JSON format: INFO unless set).
    pub fn system_level(&self) -> Level {
        self.system_level.unwrap_or(Level::Info)
    }
}

/// What Lambda's `platform.report` record says of an invocation.
#[derive(Clone, Debug, PartialEq)]
pub struct PlatformReport<'a> {
    pub request_id: &'a str,
    pub duration_ms: f64,
    pub billed_ms: u64,
    pub memory_mb: u64,
    pub max_memory_mb: u64,
    pub init_ms: Option<f64>,
    /// `success`, `error` or `timeout`.
    pub status: &'a str,
    pub error_type: Option<&'a str>,
}

fn platform_record(kind: &str, record: serde_json::Value) -> String {
    let time = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
    serde_json::json!({ "time": time, "type": kind, "record": record }).to_string()
}

/// Lambda's `platform.start` line of the JSON log format.
pub fn platform_start(request_id: &str, version: &str) -> String {
    platform_record(
        "platform.start",
        serde_json::json!({ "requestId": request_id, "version": version }),
    )
}

/// Lambda's `platform.report` line of the JSON log format.
pub fn platform_report(r: &PlatformReport) -> String {
    let round2 = |v: f64| (v * 100.0).round() / 100.0;
    let mut metrics = serde_json::json!({
        "durationMs": round2(r.duration_ms),
        "billedDurationMs": r.billed_ms,
        "memorySizeMB": r.memory_mb,
        "maxMemoryUsedMB": r.max_memory_mb,
    });
    if let Some(init) = r.init_ms {
        metrics["initDurationMs"] = round2(init).into();
    }
    let mut record = serde_json::json!({
        "requestId": r.request_id,
        "metrics": metrics,
        "status": r.status,
    });
    if let Some(t) = r.error_type {
        record["errorType"] = t.into();
    }
    platform_record("platform.report", record)
}

impl std::str::FromStr for Level {
    type Err = String;

    fn from_str(s: &str) -> Result<Level, String> {
        Level::parse(s).ok_or_else(|| {
            format!("expected one of TRACE, DEBUG, INFO, WARN, ERROR, FATAL, got {s:?}")
        })
    }
}

/// Where instance output and START/END/REPORT lines go. Implementations must
/// not block: they are called from the output readers of instances.
pub trait LogSink: Send + Sync + 'static {
    fn emit(&self, function: &str, request_id: &str, text: String);

    /// How many bytes of output one invocation may log here (see [`LogBudget`]).
    fn invocation_log_limit(&self) -> u64 {
        DEFAULT_INVOCATION_LOG_LIMIT
    }
}

/// Splits a stream of output bytes into lines: at `\n` (a trailing `\r` is
/// dropped), and every [`MAX_LINE`] bytes of a longer line. Each line comes
/// with the number of bytes of the stream it stood for (its terminator
/// included), so budgets count what the function wrote.
#[derive(Default)]
pub struct LineSplitter {
    pending: Vec<u8>,
}

impl LineSplitter {
    /// Feeds `bytes`; `line` gets each complete line and its raw length.
    pub fn push(&mut self, bytes: &[u8], mut line: impl FnMut(&[u8], usize)) {
        let mut rest = bytes;
        while let Some(pos) = rest.iter().position(|&b| b == b'\n') {
            let (head, tail) = rest.split_at(pos);
            if self.pending.is_empty() && head.len() <= MAX_LINE {
                line(strip_cr(head), head.len() + 1);
            } else {
                self.pending.extend_from_slice(head);
                self.split_long(&mut line);
                let whole = std::mem::take(&mut self.pending);
                line(strip_cr(&whole), whole.len() + 1);
            }
            rest = &tail[1..];
        }
        self.pending.extend_from_slice(rest);
        self.split_long(&mut line);
    }

    /// Emits what is left of an unfinished last line.
    pub fn finish(&mut self, mut line: impl FnMut(&[u8], usize)) {
        if !self.pending.is_empty() {
            let rest = std::mem::take(&mut self.pending);
            line(&rest, rest.len());
        }
    }

    /// Forgets the unfinished line; returns its length.
    pub fn discard(&mut self) -> usize {
        let n = self.pending.len();
        self.pending.clear();
        n
    }

    /// Emits MAX_LINE pieces of the pending line while more than that is held.
    fn split_long(&mut self, line: &mut impl FnMut(&[u8], usize)) {
        while self.pending.len() > MAX_LINE {
            let rest = self.pending.split_off(MAX_LINE);
            let whole = std::mem::replace(&mut self.pending, rest);
            line(&whole, whole.len());
        }
    }
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// How much of its output one invocation may log. Each line is charged its
/// length plus [`LINE_COST`]; the first line that does not fit truncates the
/// invocation's output (as Lambda truncates), and everything after it is
/// only counted, so a function that prints without end costs the server a
/// read of the pipe and nothing more.
#[derive(Debug)]
pub struct LogBudget {
    limit: u64,
    used: u64,
    truncated: bool,
    /// Bytes dropped since the last notice.
    dropped: u64,
}

impl LogBudget {
    pub fn new(limit: u64) -> LogBudget {
        LogBudget {
            limit,
            used: 0,
            truncated: false,
            dropped: 0,
        }
    }

    /// Whether a line that took `len` bytes of output may be logged; if
    /// not, it is counted as dropped and so is all later output.
    pub fn admit(&mut self, len: usize) -> bool {
        let cost = len as u64 + LINE_COST;
        if !self.truncated && self.used + cost <= self.limit {
            self.used += cost;
            return true;
        }
        self.truncated = true;
        self.dropped += len as u64;
        false
    }

    /// Counts output dropped without looking at it (the budget is spent).
    pub fn drop_bytes(&mut self, n: usize) {
        self.dropped += n as u64;
    }

    /// True once output was cut: later output is dropped unread.
    pub fn is_truncated(&self) -> bool {
        self.truncated
    }

    /// The line that tells the reader of the log what was dropped since the
    /// last notice, if anything was.
    pub fn take_notice(&mut self) -> Option<String> {
        if self.dropped == 0 {
            return None;
        }
        let dropped = std::mem::take(&mut self.dropped);
        Some(format!(
            "[updraft] log output truncated: {dropped} bytes of output were dropped because \
             this invocation reached its log limit of {} bytes (updraft server \
             --invocation-log-limit; each line also counts {LINE_COST} bytes); Lambda \
             truncates oversized log output too",
            self.limit
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lines_level() {
        for (text, level) in [
            (
                "[WARNING]\t2024-01-01T00:00:00.000Z\trid\tdisk low",
                Some(Level::Warn),
            ),
            ("[ERROR] boom", Some(Level::Error)),
            ("INFO\thello", Some(Level::Info)),
            (
                "2024-01-01T00:00:00.000Z\trid\tDEBUG\tdetail",
                Some(Level::Debug),
            ),
            (
                r#"{"timestamp":"t","level":"FATAL","message":"m"}"#,
                Some(Level::Fatal),
            ),
            (r#"{"message":"no level"}"#, None),
            ("START RequestId: r Version: $LATEST", None),
            ("[not a level] text", None),
            ("INFO", None),
            ("plain print", None),
        ] {
            assert_eq!(Level::of_line(text), level, "{text}");
        }
        assert_eq!("warning".parse::<Level>(), Ok(Level::Warn));
        assert!("loud".parse::<Level>().unwrap_err().contains("\"loud\""));
        assert!(Level::Warn > Level::Info);
    }

    #[test]
    fn platform_records_have_lambdas_shape() {
        let start: serde_json::Value =
            serde_json::from_str(&platform_start("r1", "$LATEST")).unwrap();
        assert_eq!(start["type"], "platform.start");
        assert_eq!(
            start["record"],
            serde_json::json!({"requestId": "r1", "version": "$LATEST"})
        );
        assert!(start["time"].as_str().unwrap().ends_with('Z'));
        let report: serde_json::Value = serde_json::from_str(&platform_report(&PlatformReport {
            request_id: "r1",
            duration_ms: 2.856,
            billed_ms: 3,
            memory_mb: 128,
            max_memory_mb: 40,
            init_ms: None,
            status: "timeout",
            error_type: None,
        }))
        .unwrap();
        assert_eq!(report["type"], "platform.report");
        assert_eq!(
            report["record"],
            serde_json::json!({"requestId": "r1", "status": "timeout", "metrics": {
                "durationMs": 2.86, "billedDurationMs": 3, "memorySizeMB": 128, "maxMemoryUsedMB": 40}})
        );
    }

    fn split(chunks: &[&[u8]]) -> Vec<Vec<u8>> {
        let mut s = LineSplitter::default();
        let mut out = Vec::new();
        for c in chunks {
            s.push(c, |l, _| out.push(l.to_vec()));
        }
        s.finish(|l, _| out.push(l.to_vec()));
        out
    }

    #[test]
    fn lines_split_at_newlines_and_at_the_longest_line() {
        assert_eq!(
            split(&[b"one\ntw", b"o\r\n\nthree"]),
            [
                b"one".to_vec(),
                b"two".to_vec(),
                b"".to_vec(),
                b"three".to_vec()
            ]
        );
        let long = vec![b'x'; MAX_LINE * 2 + 5];
        let got = split(&[&long, b"\n"]);
        let lens: Vec<usize> = got.iter().map(|l| l.len()).collect();
        assert_eq!(lens, [MAX_LINE, MAX_LINE, 5]);
    }

    #[test]
    fn raw_lengths_add_up_to_the_stream() {
        let mut s = LineSplitter::default();
        let mut total = 0;
        let long = vec![b'z'; MAX_LINE + 3];
        for c in [&b"a\r\nbb\n"[..], &long, b"\nccc"] {
            s.push(c, |_, raw| total += raw);
        }
        s.finish(|_, raw| total += raw);
        assert_eq!(total, 3 + 3 + MAX_LINE + 3 + 1 + 3);
    }

    #[test]
    fn the_budget_truncates_and_says_how_much_was_dropped() {
        let mut b = LogBudget::new(3 * (10 + LINE_COST));
        assert!(b.admit(10) && b.admit(10));
        assert!(b.take_notice().is_none());
        // Too long for what is left: cut here, and every later line too.
        assert!(!b.admit(11));
        assert!(!b.admit(1));
        assert!(b.is_truncated());
        b.drop_bytes(100);
        let notice = b.take_notice().unwrap();
        assert!(
            notice.contains("112 bytes of output were dropped"),
            "{notice}"
        );
        assert!(notice.contains("Lambda truncates"), "{notice}");
        assert!(b.take_notice().is_none(), "a notice is given once");
    }

    #[test]
    fn empty_lines_are_charged_too() {
        let mut b = LogBudget::new(10 * LINE_COST);
        let admitted = (0..1000).filter(|_| b.admit(0)).count();
        assert_eq!(admitted, 10);
    }
}
