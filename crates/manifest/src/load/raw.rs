//! The manifest as written: strict serde structs (unknown keys and wrong
//! types are refused with a location), before the value checks.

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawManifest {
    pub(super) app: RawApp,
    #[serde(default)]
    pub(super) functions: BTreeMap<String, RawFunction>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawApp {
    pub(super) name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFunction {
    pub(super) runtime: String,
    pub(super) handler: Option<String>,
    pub(super) code: String,
    pub(super) build: Option<String>,
    pub(super) memory_mb: Option<Int>,
    pub(super) ephemeral_storage_mb: Option<Int>,
    pub(super) timeout: Option<Dur>,
    #[serde(default)]
    pub(super) env: BTreeMap<String, String>,
    pub(super) url: Option<String>,
    pub(super) cors: Option<RawCors>,
    pub(super) scaling: Option<RawScaling>,
    #[serde(default)]
    pub(super) triggers: Vec<RawTrigger>,
    /// What the function's credentials may do (`service:Action:resource`).
    #[serde(default)]
    pub(super) permissions: Vec<String>,
    pub(super) logging: Option<RawLogging>,
    /// Start instances from a template that has run the init (python3).
    #[serde(default)]
    pub(super) snapshot: bool,
}

/// `[functions.NAME.logging]`: Lambda's `LoggingConfig`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLogging {
    /// `"text"` (the default) or `"json"`.
    pub(super) format: Option<String>,
    pub(super) application_level: Option<String>,
    pub(super) system_level: Option<String>,
    pub(super) log_group: Option<String>,
}

impl RawLogging {
    /// The config, or the key (below `logging.`) and what it expected.
    pub(super) fn config(self) -> Result<updraft_core::LoggingConfig, (&'static str, String)> {
        use updraft_core::logs::Level;
        use updraft_core::LogFormat;
        let format = match self
            .format
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(_) => {
                let got = self.format.unwrap_or_default();
                return Err((
                    "format",
                    format!("expected \"text\" or \"json\", got {got:?}"),
                ));
            }
        };
        let level = |key: &'static str, v: Option<String>| match v {
            None => Ok(None),
            Some(v) => Level::parse(&v).map(Some).ok_or_else(|| {
                (
                    key,
                    format!("expected trace, debug, info, warn, error or fatal, got {v:?}"),
                )
            }),
        };
        Ok(updraft_core::LoggingConfig {
            format,
            application_level: level("application_level", self.application_level)?,
            system_level: level("system_level", self.system_level)?,
            log_group: self.log_group,
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawScaling {
    pub(super) min_instances: Option<Int>,
    pub(super) max_instances: Option<Int>,
    pub(super) per_instance: Option<Int>,
    pub(super) idle_timeout: Option<Dur>,
    pub(super) max_queue_wait: Option<Dur>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHttp {
    pub(super) route: String,
    /// `"1.0"` or `"2.0"` (the default).
    pub(super) payload: Option<String>,
}

/// `cors = { allow_origins = […], …, max_age = "1h" }`: the function URL's CORS.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCors {
    pub(super) allow_origins: Option<Vec<String>>,
    pub(super) allow_methods: Option<Vec<String>>,
    pub(super) allow_headers: Option<Vec<String>>,
    pub(super) expose_headers: Option<Vec<String>>,
    pub(super) max_age: Option<Dur>,
    pub(super) allow_credentials: Option<bool>,
}

/// `schedule = { cron = "*/5 * * * *" }` or `{ rate = "10s" }`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSchedule {
    pub(super) cron: Option<String>,
    pub(super) rate: Option<String>,
    pub(super) timezone: Option<String>,
    pub(super) payload: Option<toml::Value>,
}

/// `queue = { name = "jobs", batch_size = 10, … }`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawQueue {
    pub(super) name: String,
    pub(super) batch_size: Option<Int>,
    pub(super) batch_window: Option<Dur>,
    pub(super) max_receive: Option<Int>,
    pub(super) visibility_timeout: Option<Dur>,
}

/// `event = { bus = "orders", pattern = { … } }`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEvent {
    pub(super) bus: String,
    pub(super) pattern: toml::Table,
}

/// One `[[triggers]]` entry: a table with exactly one key, the trigger kind.
pub(super) enum RawTrigger {
    Http(RawHttp),
    Schedule(RawSchedule),
    Queue(RawQueue),
    Event(RawEvent),
}

const SUPPORTED_TRIGGERS: &str = "http, schedule, queue, event";

impl<'de> Deserialize<'de> for RawTrigger {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawTrigger;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(
                    f,
                    "a table with one trigger kind, such as http = {{ route = \"GET /hello\" }}"
                )
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawTrigger, A::Error> {
                let mut found: Option<RawTrigger> = None;
                while let Some(kind) = map.next_key::<String>()? {
                    if found.is_some() {
                        return Err(de::Error::custom(
                            "expected exactly one trigger kind per [[triggers]] entry, got several",
                        ));
                    }
                    // Unknown kinds are refused by name (SPEC §2), never skipped.
                    found = Some(match kind.as_str() {
                        "http" => RawTrigger::Http(map.next_value()?),
                        "schedule" => RawTrigger::Schedule(map.next_value()?),
                        "queue" => RawTrigger::Queue(map.next_value()?),
                        "event" => RawTrigger::Event(map.next_value()?),
                        _ => {
                            return Err(de::Error::custom(format!(
                            "unknown trigger kind `{kind}`; expected one of: {SUPPORTED_TRIGGERS}"
                        )))
                        }
                    });
                }
                found.ok_or_else(|| {
                    de::Error::custom(format!(
                        "expected exactly one trigger kind per [[triggers]] entry ({SUPPORTED_TRIGGERS}), got an empty table"
                    ))
                })
            }
        }
        d.deserialize_map(V)
    }
}

/// A whole number; wider than the target so that range errors can say what
/// range was expected instead of serde's "invalid value ... expected u32".
pub(super) struct Int(pub(super) i64);

impl<'de> Deserialize<'de> for Int {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Int;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a whole number")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Int, E> {
                Ok(Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Int, E> {
                Ok(Int(i64::try_from(v).unwrap_or(i64::MAX)))
            }
        }
        d.deserialize_i64(V)
    }
}

/// A duration string; its own type so that `timeout = 30` says a duration
/// string was expected rather than "a string".
pub(super) struct Dur(pub(super) String);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Dur;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration string such as \"30s\", \"5m\" or \"250ms\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Dur, E> {
                Ok(Dur(v.to_string()))
            }
        }
        d.deserialize_str(V)
    }
}
