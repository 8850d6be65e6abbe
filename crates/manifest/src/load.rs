//! From TOML text to [`Manifest`]: strict serde structs first (so unknown keys
//! and wrong types are refused with a location), then value checks that name
//! the dotted key.

use crate::{CodeKind, FunctionSpec, Manifest, ManifestError};
use std::path::{Component, Path, PathBuf};
mod raw;

use raw::{Dur, Int, RawCors, RawFunction, RawManifest, RawTrigger};
use updraft_core::{
    duration, BusTrigger, Cors, FunctionConfig, HttpRoute, PayloadFormat, QueueTrigger,
    RuntimeKind, Scaling, ScheduleTrigger, Trigger, UrlAuth,
};

/// Messages per queue invocation when the manifest says nothing (Lambda's default).
pub const QUEUE_BATCH_SIZE: u32 = 10;

/// Memory when the manifest says nothing (Lambda's default).
pub const DEFAULT_MEMORY_MB: u32 = 128;
/// Timeout when the manifest says nothing (Lambda's default).
pub const DEFAULT_TIMEOUT_MS: u64 = 3_000;
/// Concurrent invocations per wasm instance when the manifest says nothing.
pub const DEFAULT_WASM_PER_INSTANCE: u32 = 16;

pub(crate) fn load(path: &Path) -> Result<Manifest, ManifestError> {
    let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
        file: path.to_path_buf(),
        source,
    })?;
    parse(path, &text)
}

pub(crate) fn parse(path: &Path, text: &str) -> Result<Manifest, ManifestError> {
    let raw = deserialize(path, text)?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let root = dir.canonicalize().map_err(|source| ManifestError::Read {
        file: path.to_path_buf(),
        source,
    })?;
    let file_name = path
        .file_name()
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::FILE_NAME.into());
    let cx = Cx {
        file: path,
        root: &root,
    };

    if !updraft_core::valid_function_name(&raw.app.name) {
        return Err(cx.invalid(
            "app.name".into(),
            format!(
                "expected 1 to 64 letters, digits, '-' and '_', got {:?}",
                raw.app.name
            ),
        ));
    }

    let mut functions = Vec::with_capacity(raw.functions.len());
    for (name, f) in raw.functions {
        functions.push(cx.function(name, f)?);
    }
    check_route_conflicts(&cx, &functions)?;

    Ok(Manifest {
        path: root.join(file_name),
        app: raw.app.name,
        functions,
    })
}

fn deserialize(path: &Path, text: &str) -> Result<RawManifest, ManifestError> {
    let located = |e: toml::de::Error, key: Option<String>| ManifestError::Parse {
        file: path.to_path_buf(),
        location: e.span().map(|s| line_column(text, s.start)),
        key,
        message: e.message().trim_end().to_string(),
    };
    let de = toml::Deserializer::parse(text).map_err(|e| {
        let mut err = located(e, None);
        if let ManifestError::Parse { message, .. } = &mut err {
            *message = format!("invalid TOML: {message}");
        }
        err
    })?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let key = dotted(e.path());
        let inner = e.into_inner();
        // An unknown key is reported before serde_path_to_error records it, so
        // the path stops at its table; add the key itself.
        let key = match unknown_field(inner.message()) {
            Some(field) if !key.ends_with(&key_segment(field)) => {
                Some(join_key(&key, &key_segment(field)))
            }
            _ if key.is_empty() => None,
            _ => Some(key),
        };
        let mut err = located(inner, key);
        // serde says "field"; a manifest's author thinks in TOML keys.
        if let ManifestError::Parse { message, .. } = &mut err {
            if let Some(field) = message.strip_prefix("missing field ") {
                *message = format!("missing key {field}, which is required");
            }
        }
        err
    })
}

/// The field name in serde's "unknown field `x`, expected ..." message.
fn unknown_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("unknown field `")?;
    rest.split_once('`').map(|(f, _)| f)
}

fn dotted(path: &serde_path_to_error::Path) -> String {
    let mut out = String::new();
    for seg in path.iter() {
        match seg {
            serde_path_to_error::Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            serde_path_to_error::Segment::Map { key }
            | serde_path_to_error::Segment::Enum { variant: key } => {
                out = join_key(&out, &key_segment(key));
            }
            serde_path_to_error::Segment::Unknown => {}
        }
    }
    out
}

fn join_key(base: &str, seg: &str) -> String {
    if base.is_empty() {
        seg.to_string()
    } else {
        format!("{base}.{seg}")
    }
}

/// A key as TOML would need it written: bare when possible, else quoted.
fn key_segment(key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if bare {
        key.to_string()
    } else {
        format!("{key:?}")
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

struct Cx<'a> {
    file: &'a Path,
    root: &'a Path,
}

impl Cx<'_> {
    fn invalid(&self, key: String, message: String) -> ManifestError {
        ManifestError::Invalid {
            file: self.file.to_path_buf(),
            key,
            message,
        }
    }

    fn function(&self, name: String, f: RawFunction) -> Result<FunctionSpec, ManifestError> {
        let key = |field: &str| format!("functions.{}.{field}", key_segment(&name));
        if !updraft_core::valid_function_name(&name) {
            return Err(self.invalid(
                format!("functions.{}", key_segment(&name)),
                format!("expected a function name of 1 to 64 letters, digits, '-' and '_', got {name:?}"),
            ));
        }

        let Some(kind) = RuntimeKind::parse(&f.runtime) else {
            return Err(self.invalid(
                key("runtime"),
                format!("expected {}, got {:?}", RuntimeKind::EXPECTED, f.runtime),
            ));
        };

        let handler = match (f.handler, kind) {
            (Some(h), _) => h,
            (None, RuntimeKind::Python3) => {
                return Err(self.invalid(
                    key("handler"),
                    "expected \"module.function\" such as \"app.handler\" for runtime python3, but it is missing".into(),
                ))
            }
            (None, RuntimeKind::Nodejs) => {
                return Err(self.invalid(
                    key("handler"),
                    "expected \"file.export\" such as \"index.handler\" for runtime nodejs, but it is missing".into(),
                ))
            }
            (None, _) => String::new(),
        };

        let memory_mb = self.mb(
            key("memory_mb"),
            f.memory_mb,
            DEFAULT_MEMORY_MB,
            "a number from 128 to 10240",
        )?;
        let ephemeral_storage_mb = self.mb(
            key("ephemeral_storage_mb"),
            f.ephemeral_storage_mb,
            updraft_core::DEFAULT_EPHEMERAL_MB,
            "a number from 512 to 10240",
        )?;

        let timeout_ms = match f.timeout {
            None => DEFAULT_TIMEOUT_MS,
            Some(d) => self.duration_ms(key("timeout"), &d)?,
        };

        let url = match f.url.as_deref() {
            None => UrlAuth::default(),
            Some("private") => UrlAuth::Private,
            Some("public") => UrlAuth::Public,
            Some(other) => {
                return Err(self.invalid(
                    key("url"),
                    format!("expected \"public\" or \"private\", got {other:?}"),
                ))
            }
        };

        let mut scaling = Scaling::default();
        if kind == RuntimeKind::Wasm {
            scaling.per_instance = DEFAULT_WASM_PER_INSTANCE;
        }
        if let Some(s) = f.scaling {
            let count =
                |field: &str, v: Option<Int>, into: &mut u32| -> Result<(), ManifestError> {
                    if let Some(Int(v)) = v {
                        *into = u32::try_from(v).map_err(|_| {
                            self.invalid(
                                key(field),
                                format!("expected a whole number from 0 to {}, got {v}", u32::MAX),
                            )
                        })?;
                    }
                    Ok(())
                };
            count(
                "scaling.min_instances",
                s.min_instances,
                &mut scaling.min_instances,
            )?;
            count(
                "scaling.max_instances",
                s.max_instances,
                &mut scaling.max_instances,
            )?;
            count(
                "scaling.per_instance",
                s.per_instance,
                &mut scaling.per_instance,
            )?;
            if let Some(d) = s.idle_timeout {
                scaling.idle_timeout_ms = self.duration_ms(key("scaling.idle_timeout"), &d)?;
                scaling.keep_alive = updraft_core::config::KeepAlive::Fixed;
            }
            if let Some(d) = s.max_queue_wait {
                scaling.max_queue_wait_ms = self.duration_ms(key("scaling.max_queue_wait"), &d)?;
            }
        }

        let mut triggers = Vec::with_capacity(f.triggers.len());
        for (i, t) in f.triggers.into_iter().enumerate() {
            match t {
                RawTrigger::Http(h) => {
                    let mut route = HttpRoute::parse(&h.route).map_err(|msg| {
                        self.invalid(key(&format!("triggers[{i}].http.route")), msg)
                    })?;
                    if let Some(p) = h.payload {
                        route.payload = PayloadFormat::parse(&p).ok_or_else(|| {
                            self.invalid(
                                key(&format!("triggers[{i}].http.payload")),
                                format!("expected {}, got {p:?}", PayloadFormat::EXPECTED),
                            )
                        })?;
                    }
                    triggers.push(Trigger::Http(route));
                }
                other => triggers.push(self.event_trigger(&key(&format!("triggers[{i}]")), other)?),
            }
        }

        let config = FunctionConfig {
            runtime: f.runtime,
            handler,
            memory_mb,
            ephemeral_storage_mb,
            timeout_ms,
            env: f.env,
            url,
            cors: f
                .cors
                .map(|c| self.cors(&key("cors.max_age"), c))
                .transpose()?,
            scaling,
            triggers,
            description: String::new(),
            permissions: f.permissions,
            logging: match f.logging.map(|l| l.config()).transpose() {
                Ok(l) => l.unwrap_or_default(),
                Err((k, msg)) => return Err(self.invalid(key(&format!("logging.{k}")), msg)),
            },
            snapshot: f.snapshot,
        };
        // The shared rules live in core so that the Lambda API enforces the same
        // ones; their field becomes "functions.NAME.field".
        config.validate().map_err(|e| {
            let msg = e.to_string();
            let msg = msg.strip_prefix(&format!("{}: ", e.field)).unwrap_or(&msg);
            self.invalid(key(&e.field), msg.to_string())
        })?;

        let (code, code_kind) = self.code(&key("code"), &f.code, kind, f.build.is_some())?;
        if let Some(b) = &f.build {
            if b.trim().is_empty() {
                return Err(self.invalid(
                    key("build"),
                    "expected a shell command, got an empty string".into(),
                ));
            }
        }

        Ok(FunctionSpec {
            name,
            config,
            code,
            code_kind,
            build: f.build,
            root: self.root.to_path_buf(),
        })
    }

    /// A size in MB, `default` when absent. A value beyond u32 gets the
    /// message validate() gives within it (`expected`: the range).
    fn mb(
        &self,
        key: String,
        value: Option<Int>,
        default: u32,
        expected: &str,
    ) -> Result<u32, ManifestError> {
        match value {
            None => Ok(default),
            Some(Int(v)) => u32::try_from(v)
                .map_err(|_| self.invalid(key, format!("expected {expected}, got {v}"))),
        }
    }

    /// The `cors` table in the Lambda API's shape (`max_age` in seconds);
    /// [`FunctionConfig::validate`] checks its limits.
    fn cors(&self, max_age_key: &str, c: RawCors) -> Result<Cors, ManifestError> {
        let max_age = match &c.max_age {
            None => None,
            Some(d) => {
                let ms = self.duration_ms(max_age_key.to_string(), d)?;
                Some(i64::try_from(ms / 1000).unwrap_or(i64::MAX))
            }
        };
        Ok(Cors {
            allow_credentials: c.allow_credentials,
            allow_headers: c.allow_headers,
            allow_methods: c.allow_methods,
            allow_origins: c.allow_origins,
            expose_headers: c.expose_headers,
            max_age,
        })
    }

    fn duration_ms(&self, key: String, d: &Dur) -> Result<u64, ManifestError> {
        let parsed = duration::parse(&d.0).map_err(|msg| self.invalid(key, msg))?;
        Ok(u64::try_from(parsed.as_millis()).unwrap_or(u64::MAX))
    }

    /// A schedule, queue or bus trigger, defaults applied and checked by
    /// [`updraft_rules::check_trigger`] (the rules the server applies too).
    fn event_trigger(&self, at: &str, t: RawTrigger) -> Result<Trigger, ManifestError> {
        let json = |v: toml::Value| serde_json::to_value(v).unwrap_or(serde_json::Value::Null);
        let trigger = match t {
            RawTrigger::Http(_) => unreachable!("http triggers are parsed by the caller"),
            RawTrigger::Schedule(s) => Trigger::Schedule(ScheduleTrigger {
                cron: s.cron,
                rate: s.rate,
                timezone: s.timezone,
                payload: s.payload.map(json),
            }),
            RawTrigger::Queue(q) => {
                let count = |field: &str, v: Option<Int>, default: u32| match v {
                    None => Ok(default),
                    Some(Int(n)) => u32::try_from(n).map_err(|_| {
                        self.invalid(
                            format!("{at}.queue.{field}"),
                            format!("expected a whole number from 1 to {}, got {n}", u32::MAX),
                        )
                    }),
                };
                let batch_size = count("batch_size", q.batch_size, QUEUE_BATCH_SIZE)?;
                let max_receive = match q.max_receive {
                    None => None,
                    v => Some(count("max_receive", v, 0)?),
                };
                let dur = |field: &str, v: &Option<Dur>| {
                    v.as_ref()
                        .map(|d| self.duration_ms(format!("{at}.queue.{field}"), d))
                        .transpose()
                };
                Trigger::Queue(QueueTrigger {
                    name: q.name,
                    batch_size,
                    batch_window_ms: dur("batch_window", &q.batch_window)?.unwrap_or(0),
                    max_receive,
                    visibility_timeout_ms: dur("visibility_timeout", &q.visibility_timeout)?,
                })
            }
            RawTrigger::Event(e) => Trigger::Event(BusTrigger {
                bus: e.bus,
                pattern: json(toml::Value::Table(e.pattern)),
            }),
        };
        updraft_rules::check_trigger(&trigger).map_err(|e| {
            let msg = e.to_string();
            let msg = msg.strip_prefix(&format!("{}: ", e.field)).unwrap_or(&msg);
            self.invalid(format!("{at}.{}", e.field), msg.to_string())
        })?;
        Ok(trigger)
    }

    /// Resolves `code` against the manifest's directory and decides its kind.
    fn code(
        &self,
        key: &str,
        code: &str,
        runtime: RuntimeKind,
        has_build: bool,
    ) -> Result<(PathBuf, CodeKind), ManifestError> {
        let wasm = runtime == RuntimeKind::Wasm;
        let expected = if wasm {
            "a .wasm component".to_string()
        } else {
            "a directory, .zip or .wasm".to_string()
        };
        if code.trim().is_empty() {
            return Err(self.invalid(
                key.into(),
                format!(
                    "expected {expected} relative to {}, got an empty string",
                    self.root.display()
                ),
            ));
        }
        let joined = normalize(&self.root.join(code));
        let by_extension = |p: &Path| match p
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
        {
            Some(e) if e == "zip" => Some(CodeKind::Zip),
            Some(e) if e == "wasm" => Some(CodeKind::Wasm),
            _ => None,
        };
        let (path, kind) = match std::fs::metadata(&joined) {
            Ok(meta) if meta.is_dir() => (joined.canonicalize().unwrap_or(joined), CodeKind::Dir),
            Ok(_) => match by_extension(&joined) {
                Some(kind) => (joined.canonicalize().unwrap_or(joined), kind),
                None => {
                    return Err(self.invalid(
                        key.into(),
                        format!(
                            "expected {expected}, but {} is another kind of file",
                            joined.display()
                        ),
                    ))
                }
            },
            // The build command may be what produces the code; package()
            // checks again after it ran.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && has_build => {
                let kind = by_extension(&joined).unwrap_or(CodeKind::Dir);
                (joined, kind)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(self.invalid(
                    key.into(),
                    format!(
                        "expected {expected} relative to {}, but {} does not exist",
                        self.root.display(),
                        joined.display()
                    ),
                ))
            }
            Err(e) => {
                return Err(
                    self.invalid(key.into(), format!("cannot read {}: {e}", joined.display()))
                );
            }
        };
        match (wasm, kind) {
            (true, CodeKind::Wasm) | (false, CodeKind::Dir | CodeKind::Zip) => Ok((path, kind)),
            (true, _) => Err(self.invalid(
                key.into(),
                format!(
                    "expected a .wasm component for runtime wasm, got the {} {}",
                    if kind == CodeKind::Dir { "directory" } else { "zip" },
                    path.display()
                ),
            )),
            (false, _) => Err(self.invalid(
                key.into(),
                format!(
                    "expected a directory or .zip for runtime {runtime}, got the WebAssembly file {} (a .wasm component needs runtime = \"wasm\")",
                    path.display()
                ),
            )),
        }
    }
}

/// Removes `.` and folds `..` lexically, so messages show clean paths even
/// for code that does not exist yet.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push(c);
                }
            }
            other => out.push(other),
        }
    }
    out
}

/// Two functions (or two triggers of one) claiming the same request would make
/// the gateway's choice arbitrary, so the manifest is refused.
fn check_route_conflicts(cx: &Cx, functions: &[FunctionSpec]) -> Result<(), ManifestError> {
    let mut seen: Vec<(&str, usize, &HttpRoute)> = Vec::new();
    for f in functions {
        for (i, route) in f.config.routes().enumerate() {
            if let Some((other_fn, other_i, other)) =
                seen.iter().find(|(_, _, r)| r.conflicts_with(route))
            {
                let message = if *other_fn == f.name {
                    format!(
                        "route \"{}\" conflicts with route \"{}\" (triggers[{other_i}]) of the same function {other_fn}: a request could match both",
                        route.key(),
                        other.key()
                    )
                } else {
                    format!(
                        "route \"{}\" of function {} conflicts with route \"{}\" of function {other_fn} (functions.{other_fn}.triggers[{other_i}].http.route): a request could match both",
                        route.key(),
                        f.name,
                        other.key()
                    )
                };
                return Err(cx.invalid(
                    format!("functions.{}.triggers[{i}].http.route", f.name),
                    message,
                ));
            }
            seen.push((&f.name, i, route));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_columns() {
        let t = "a = 1\nbé = 2\n";
        assert_eq!(line_column(t, 0), (1, 1));
        assert_eq!(line_column(t, 6), (2, 1));
        assert_eq!(line_column(t, 9), (2, 3));
    }

    #[test]
    fn keys_are_quoted_when_needed() {
        assert_eq!(key_segment("hello-1"), "hello-1");
        assert_eq!(key_segment("a b"), "\"a b\"");
    }

    #[test]
    fn normalizes_paths() {
        assert_eq!(normalize(Path::new("/a/./b/../c")), PathBuf::from("/a/c"));
    }
}
