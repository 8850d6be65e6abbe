//! The configuration of one function version, as stored and as scheduled.
//! Manifests and the Lambda API both produce this shape.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

use crate::{Cors, Invalid};

/// The family of runtime a function runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuntimeKind {
    Python3,
    Nodejs,
    Provided,
    Wasm,
}

impl RuntimeKind {
    /// Accepts Updraft's names and Lambda's runtime identifiers as aliases
    /// (`python3.12`, `nodejs20.x`, `provided.al2023`).
    pub fn parse(id: &str) -> Option<RuntimeKind> {
        let id = id.trim();
        let kind = if id == "python3" || Self::pinned_version(id).is_some() {
            if id.starts_with("python") {
                RuntimeKind::Python3
            } else {
                RuntimeKind::Nodejs
            }
        } else if id == "nodejs" {
            RuntimeKind::Nodejs
        } else if id == "provided" || id.starts_with("provided.") {
            RuntimeKind::Provided
        } else if id == "wasm" {
            RuntimeKind::Wasm
        } else {
            return None;
        };
        Some(kind)
    }

    /// The version a Lambda runtime id pins: Python 3's minor for
    /// `python3.12` (12), Node.js's major for `nodejs22.x` (22); None for
    /// `python3`, `nodejs` (the newest installed) and the other families.
    pub fn pinned_version(id: &str) -> Option<u32> {
        let id = id.trim();
        let digits = id
            .strip_prefix("python3.")
            .or_else(|| id.strip_prefix("nodejs")?.strip_suffix(".x"))?;
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok()
    }

    pub const EXPECTED: &'static str =
        "one of python3, nodejs, provided, wasm (or a Lambda id such as python3.12, nodejs20.x, provided.al2023)";
}

impl fmt::Display for RuntimeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RuntimeKind::Python3 => "python3",
            RuntimeKind::Nodejs => "nodejs",
            RuntimeKind::Provided => "provided",
            RuntimeKind::Wasm => "wasm",
        })
    }
}

/// Who may call a function's own URL (`/fn/{name}`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UrlAuth {
    /// Credentials required (Lambda's AuthType AWS_IAM).
    #[default]
    Private,
    /// Anyone (Lambda's AuthType NONE).
    Public,
}

/// Scaling limits of one function.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scaling {
    pub min_instances: u32,
    pub max_instances: u32,
    pub per_instance: u32,
    /// An idle instance is stopped after this long, or, with `keep_alive`
    /// adaptive, while the function's history predicts nothing yet.
    pub idle_timeout_ms: u64,
    pub max_queue_wait_ms: u64,
    /// How long idle instances are kept: adaptive unless `idle_timeout` is
    /// set (configurations stored before this field existed read as fixed).
    #[serde(default)]
    pub keep_alive: KeepAlive,
}

/// How a function's idle instances are kept.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeepAlive {
    /// Exactly `idle_timeout` after each invocation.
    #[default]
    Fixed,
    /// Learned from the function's idle times (crates/scheduler keepalive.rs),
    /// `idle_timeout` until the history predicts.
    Adaptive,
}

impl Default for Scaling {
    fn default() -> Self {
        Scaling {
            min_instances: 0,
            max_instances: 10,
            per_instance: 1,
            idle_timeout_ms: 10 * 60 * 1000,
            max_queue_wait_ms: 10 * 1000,
            keep_alive: KeepAlive::Adaptive,
        }
    }
}

/// The event a route sends and the answer it reads: API Gateway's payload
/// format versions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PayloadFormat {
    /// API Gateway REST APIs' Lambda proxy event (`resource`, `httpMethod`,
    /// `multiValueHeaders`, …) and answer.
    #[serde(rename = "1.0")]
    V1,
    /// HTTP APIs' and function URLs' event (`rawPath`, `routeKey`, `cookies`, …).
    #[default]
    #[serde(rename = "2.0")]
    V2,
}

impl PayloadFormat {
    pub const EXPECTED: &'static str =
        "\"1.0\" (API Gateway REST events) or \"2.0\" (HTTP API events)";

    /// `"1.0"` or `"2.0"`.
    pub fn parse(text: &str) -> Option<PayloadFormat> {
        match text {
            "1.0" => Some(PayloadFormat::V1),
            "2.0" => Some(PayloadFormat::V2),
            _ => None,
        }
    }

    fn is_default(&self) -> bool {
        *self == PayloadFormat::default()
    }
}

/// A manifest `http` route: `METHOD /path/{param}/{proxy+}`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct HttpRoute {
    /// Upper-case method, or `ANY`.
    pub method: String,
    pub path: String,
    /// The payload format the route's function gets (default 2.0).
    #[serde(default, skip_serializing_if = "PayloadFormat::is_default")]
    pub payload: PayloadFormat,
}

impl HttpRoute {
    /// Parses `"GET /hello/{name}"`; the error says what was expected.
    pub fn parse(text: &str) -> Result<HttpRoute, String> {
        let mut parts = text.split_whitespace();
        let (Some(method), Some(path), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(format!(
                "expected \"METHOD /path\" such as \"GET /hello/{{name}}\", got {text:?}"
            ));
        };
        let method = method.to_ascii_uppercase();
        const METHODS: [&str; 8] = [
            "ANY", "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS",
        ];
        if !METHODS.contains(&method.as_str()) {
            return Err(format!(
                "expected a method among {}, got {method:?}",
                METHODS.join(", ")
            ));
        }
        if !path.starts_with('/') {
            return Err(format!("expected the path to start with '/', got {path:?}"));
        }
        if path.starts_with("/fn/")
            || path == "/fn"
            || path == "/api/v1"
            || path.starts_with("/api/v1/")
            || path.starts_with("/2015-03-31/")
            || path.starts_with("/2021-10-31/")
            || path == "/healthz"
            || path == "/metrics"
            || path.starts_with("/ui")
        {
            return Err(format!("the path {path:?} is reserved by Updraft (/fn, /api/v1, /healthz, /metrics, /ui and the Lambda API)"));
        }
        let segments: Vec<&str> = path.split('/').skip(1).collect();
        for (i, seg) in segments.iter().enumerate() {
            if seg.starts_with('{') || seg.ends_with('}') {
                let inner = seg.trim_start_matches('{').trim_end_matches('}');
                let ok = seg.starts_with('{')
                    && seg.ends_with('}')
                    && !inner.is_empty()
                    && inner
                        .trim_end_matches('+')
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_');
                if !ok {
                    return Err(format!(
                        "expected a parameter segment like {{name}}, got {seg:?} in {path:?}"
                    ));
                }
                if inner.ends_with('+') && i + 1 != segments.len() {
                    return Err(format!(
                        "a greedy {{{inner}}} segment must be the last one, in {path:?}"
                    ));
                }
            }
        }
        Ok(HttpRoute {
            method,
            path: path.to_string(),
            payload: PayloadFormat::default(),
        })
    }

    /// The key API Gateway reports as `routeKey`.
    pub fn key(&self) -> String {
        format!("{} {}", self.method, self.path)
    }

    /// The path with parameter names erased, so `/a/{x}` and `/a/{y}` compare equal.
    pub fn shape(&self) -> String {
        self.path
            .split('/')
            .map(|s| {
                if s.starts_with('{') && s.ends_with("+}") {
                    "{+}"
                } else if s.starts_with('{') {
                    "{}"
                } else {
                    s
                }
            })
            .collect::<Vec<_>>()
            .join("/")
    }

    /// Two routes conflict when one request could be claimed by both at equal rank.
    pub fn conflicts_with(&self, other: &HttpRoute) -> bool {
        self.shape() == other.shape()
            && (self.method == other.method || self.method == "ANY" || other.method == "ANY")
    }
}

/// What starts a function besides its URL and the APIs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    Http(HttpRoute),
    /// A recurring tick (`schedule = { cron = … }` / `{ rate = … }`).
    Schedule(ScheduleTrigger),
    /// A queue consumer (an event source mapping on the queue).
    Queue(QueueTrigger),
    /// A subscription to an event bus with an EventBridge pattern.
    Event(BusTrigger),
}

impl Trigger {
    /// The trigger kind as invocation records and `updraft ls` name it.
    pub fn kind(&self) -> &'static str {
        match self {
            Trigger::Http(_) => "http",
            Trigger::Schedule(_) => "schedule",
            Trigger::Queue(_) => "queue",
            Trigger::Event(_) => "bus",
        }
    }
}

/// A schedule as written; `updraft_rules::schedule` parses it. Exactly one of
/// `cron` and `rate` is set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleTrigger {
    /// 5-field cron, or EventBridge's `cron(…)` / `rate(…)` forms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    /// A duration such as `10s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<String>,
    /// An IANA time zone for cron fields (default UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// A constant JSON payload sent instead of the Scheduled Event (as an
    /// EventBridge rule's constant input).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<serde_json::Value>,
}

/// A queue consumer as written in the manifest, defaults applied.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueTrigger {
    /// The queue's name (SQS naming rules).
    pub name: String,
    /// Messages per invocation, 1–10,000.
    pub batch_size: u32,
    /// How long to gather a batch before invoking with fewer than `batch_size`.
    pub batch_window_ms: u64,
    /// Receives before a message goes to the queue's dead-letter queue;
    /// None = no dead-letter queue (retried until deleted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_receive: Option<u32>,
    /// None = 6× the function's timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visibility_timeout_ms: Option<u64>,
}

/// A subscription to an event bus.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BusTrigger {
    pub bus: String,
    /// An EventBridge event pattern; `updraft_rules::pattern` parses it.
    pub pattern: serde_json::Value,
}

/// Everything that defines the behaviour of one function version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionConfig {
    /// The runtime id as the user wrote it (`python3`, `python3.12`, …).
    pub runtime: String,
    pub handler: String,
    pub memory_mb: u32,
    /// The size of the instance's private `/tmp` (Lambda's `EphemeralStorage`).
    #[serde(default = "default_ephemeral_mb")]
    pub ephemeral_storage_mb: u32,
    pub timeout_ms: u64,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub url: UrlAuth,
    /// The function URL's CORS settings; None: no CORS headers, and
    /// preflights go to the function.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors: Option<Cors>,
    #[serde(default)]
    pub scaling: Scaling,
    #[serde(default)]
    pub triggers: Vec<Trigger>,
    #[serde(default)]
    pub description: String,
    /// What the function's credentials may do: `service:Action[:resource]`
    /// patterns (`lambda:InvokeFunction:other`, `sqs:SendMessage:jobs`,
    /// `events:PutEvents:orders`); `*` matches any run of characters.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub permissions: Vec<String>,
    /// Lambda's `LoggingConfig` (the default: text format).
    #[serde(
        default,
        skip_serializing_if = "crate::logs::LoggingConfig::is_default"
    )]
    pub logging: crate::logs::LoggingConfig,
    /// Start instances from a snapshot: a template that has run the
    /// function's init once, forked per instance (python3 only; Lambda's
    /// SnapStart).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub snapshot: bool,
}

/// The form of a permission, as errors state it.
pub const PERMISSION_EXPECTED: &str =
    "service:Action[:resource] with service lambda, sqs or events, \
     such as lambda:InvokeFunction:other or sqs:SendMessage:jobs";

/// Whether `p` has the form `service:Action[:resource]` (service lambda,
/// sqs or events; `*` allowed in the action and the resource).
pub fn permission_is_valid(p: &str) -> bool {
    let mut parts = p.splitn(3, ':');
    let service = parts.next().unwrap_or("");
    let action = parts.next().unwrap_or("");
    let resource = parts.next();
    matches!(service, "lambda" | "sqs" | "events")
        && !action.is_empty()
        && action
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'*')
        && resource.is_none_or(|r| {
            !r.is_empty()
                && r.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.*:".contains(&b))
        })
}

/// Lambda's default `/tmp` size.
pub const DEFAULT_EPHEMERAL_MB: u32 = 512;

fn default_ephemeral_mb() -> u32 {
    DEFAULT_EPHEMERAL_MB
}

impl FunctionConfig {
    pub fn kind(&self) -> RuntimeKind {
        RuntimeKind::parse(&self.runtime).unwrap_or(RuntimeKind::Provided)
    }

    pub fn routes(&self) -> impl Iterator<Item = &HttpRoute> {
        self.triggers.iter().filter_map(|t| match t {
            Trigger::Http(r) => Some(r),
            _ => None,
        })
    }

    /// Checks the values every entry point must respect; errors name the field.
    /// Checks the rules every surface shares (the manifest, the native API,
    /// the Lambda API); the error names the field as the manifest spells it,
    /// and each surface renames it into its own words.
    pub fn validate(&self) -> Result<(), Invalid> {
        if RuntimeKind::parse(&self.runtime).is_none() {
            return Err(Invalid::new(
                "runtime",
                RuntimeKind::EXPECTED,
                &self.runtime,
            ));
        }
        for (i, p) in self.permissions.iter().enumerate() {
            if !permission_is_valid(p) {
                return Err(Invalid::new(
                    format!("permissions[{i}]"),
                    PERMISSION_EXPECTED,
                    p,
                ));
            }
        }
        match self.kind() {
            RuntimeKind::Python3 | RuntimeKind::Nodejs => {
                let ok = self
                    .handler
                    .rsplit_once('.')
                    .is_some_and(|(m, f)| !m.is_empty() && !f.is_empty());
                if !ok {
                    return Err(Invalid::new(
                        "handler",
                        "\"module.function\" (python3) or \"file.export\" (nodejs)",
                        &self.handler,
                    ));
                }
            }
            RuntimeKind::Provided | RuntimeKind::Wasm => {}
        }
        if self.snapshot && self.kind() != RuntimeKind::Python3 {
            return Err(Invalid::new(
                "snapshot",
                "false for this runtime (snapshots are of python3 functions)",
                true,
            ));
        }
        if !(128..=10240).contains(&self.memory_mb) {
            return Err(Invalid::new(
                "memory_mb",
                "a number from 128 to 10240",
                self.memory_mb,
            ));
        }
        if !(512..=10240).contains(&self.ephemeral_storage_mb) {
            return Err(Invalid::new(
                "ephemeral_storage_mb",
                "a number from 512 to 10240",
                self.ephemeral_storage_mb,
            ));
        }
        if self.timeout_ms == 0 || self.timeout_ms > 900_000 {
            return Err(Invalid::new(
                "timeout",
                "a duration from 1ms to 15m",
                crate::duration::format_ms(self.timeout_ms),
            ));
        }
        let s = &self.scaling;
        if s.max_instances == 0 || s.max_instances > 1000 {
            return Err(Invalid::new(
                "scaling.max_instances",
                "1 to 1000",
                s.max_instances,
            ));
        }
        if s.min_instances > s.max_instances {
            return Err(Invalid::new(
                "scaling.min_instances",
                format!("at most max_instances ({})", s.max_instances),
                s.min_instances,
            ));
        }
        if s.per_instance == 0 {
            return Err(Invalid::new("scaling.per_instance", "at least 1", 0));
        }
        if s.per_instance > 1 && self.kind() != RuntimeKind::Wasm {
            return Err(Invalid::new(
                "scaling.per_instance",
                "1 (process runtimes take one invocation per instance)",
                s.per_instance,
            ));
        }
        if s.idle_timeout_ms == 0 {
            return Err(Invalid::new(
                "scaling.idle_timeout",
                "a duration above 0",
                "0s",
            ));
        }
        self.logging.validate()?;
        if let Some(cors) = &self.cors {
            cors.validate()?;
        }
        for key in self.env.keys() {
            let ok = !key.is_empty()
                && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                && !key.as_bytes()[0].is_ascii_digit();
            if !ok {
                return Err(Invalid::new(
                    "env",
                    "names of letters, digits and '_' (not starting with a digit)",
                    key,
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(runtime: &str, handler: &str) -> FunctionConfig {
        FunctionConfig {
            runtime: runtime.into(),
            handler: handler.into(),
            memory_mb: 128,
            ephemeral_storage_mb: DEFAULT_EPHEMERAL_MB,
            timeout_ms: 3000,
            env: BTreeMap::new(),
            url: UrlAuth::Private,
            cors: None,
            scaling: Scaling::default(),
            triggers: vec![],
            description: String::new(),
            permissions: Vec::new(),
            logging: Default::default(),
            snapshot: false,
        }
    }

    #[test]
    fn permission_forms_are_checked() {
        for ok in [
            "lambda:InvokeFunction:other",
            "sqs:*:jobs-*",
            "events:PutEvents",
            "lambda:InvokeFunction:fn:prod",
        ] {
            assert!(permission_is_valid(ok), "{ok}");
        }
        for bad in [
            "",
            "lambda",
            "s3:GetObject:b",
            "lambda::x",
            "lambda:Invoke Function:x",
            "sqs:SendMessage:",
        ] {
            assert!(!permission_is_valid(bad), "{bad}");
        }
        let mut c = cfg("python3", "app.handler");
        c.permissions = vec!["lambda:InvokeFunction:x".into(), "s3:GetObject".into()];
        let e = c.validate().unwrap_err();
        assert_eq!(e.field, "permissions[1]");
        assert!(e.to_string().contains("service:Action[:resource]"), "{e}");
    }

    #[test]
    fn runtime_aliases() {
        assert_eq!(RuntimeKind::parse("python3.12"), Some(RuntimeKind::Python3));
        assert_eq!(RuntimeKind::parse("nodejs20.x"), Some(RuntimeKind::Nodejs));
        assert_eq!(
            RuntimeKind::parse("provided.al2023"),
            Some(RuntimeKind::Provided)
        );
        assert_eq!(RuntimeKind::parse("java21"), None);
        assert_eq!(RuntimeKind::parse("python3.x"), None);
        assert_eq!(RuntimeKind::parse("nodejsfoo.x"), None);
        assert_eq!(RuntimeKind::parse("nodejs22"), None);
        assert_eq!(RuntimeKind::pinned_version("python3.13"), Some(13));
        assert_eq!(RuntimeKind::pinned_version("nodejs22.x"), Some(22));
        assert_eq!(RuntimeKind::pinned_version("python3"), None);
        assert_eq!(RuntimeKind::pinned_version("nodejs"), None);
        assert_eq!(RuntimeKind::pinned_version("provided.al2023"), None);
    }

    #[test]
    fn validation_names_the_field() {
        assert!(cfg("python3", "app.handler").validate().is_ok());
        let e = cfg("ruby", "x").validate().unwrap_err();
        assert_eq!((e.field.as_str(), e.got.as_str()), ("runtime", "ruby"));
        let e = cfg("python3", "nodot").validate().unwrap_err();
        assert_eq!((e.field.as_str(), e.got.as_str()), ("handler", "nodot"));
        let mut c = cfg("nodejs", "index.handler");
        c.memory_mb = 64;
        let e = c.validate().unwrap_err();
        assert_eq!((e.field.as_str(), e.got.as_str()), ("memory_mb", "64"));
        assert_eq!(
            e.to_string(),
            "memory_mb: expected a number from 128 to 10240, got 64"
        );
        let mut c = cfg("nodejs", "index.handler");
        c.scaling.per_instance = 4;
        assert_eq!(c.validate().unwrap_err().field, "scaling.per_instance");
    }

    #[test]
    fn routes_parse_and_conflict() {
        let a = HttpRoute::parse("GET /hello/{name}").unwrap();
        let b = HttpRoute::parse("ANY /hello/{who}").unwrap();
        let c = HttpRoute::parse("POST /hello/{name}/x").unwrap();
        assert!(a.conflicts_with(&b));
        assert!(!a.conflicts_with(&c));
        assert!(HttpRoute::parse("GET /a/{proxy+}/b").is_err());
        assert!(HttpRoute::parse("FETCH /a").is_err());
        assert!(HttpRoute::parse("/a").is_err());
        assert!(HttpRoute::parse("GET /fn/x").is_err());
        assert!(HttpRoute::parse("GET /api/v1/functions").is_err());
        assert!(HttpRoute::parse("GET /api/v1").is_err());
        let proxy = HttpRoute::parse("ANY /api/{proxy+}").unwrap();
        assert_eq!(proxy.payload, PayloadFormat::V2);
    }

    #[test]
    fn payload_format_is_stored_only_when_not_the_default() {
        let mut r = HttpRoute::parse("ANY /api/{proxy+}").unwrap();
        let v2 = serde_json::to_string(&r).unwrap();
        assert_eq!(v2, r#"{"method":"ANY","path":"/api/{proxy+}"}"#);
        r.payload = PayloadFormat::V1;
        let v1 = serde_json::to_string(&r).unwrap();
        assert_eq!(
            v1,
            r#"{"method":"ANY","path":"/api/{proxy+}","payload":"1.0"}"#
        );
        assert_eq!(serde_json::from_str::<HttpRoute>(&v1).unwrap(), r);
        assert_eq!(PayloadFormat::parse("1.0"), Some(PayloadFormat::V1));
        assert_eq!(PayloadFormat::parse("2.0"), Some(PayloadFormat::V2));
        assert_eq!(PayloadFormat::parse("1"), None);
    }
}
