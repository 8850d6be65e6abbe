//! The interpreters this server runs `python3` and `nodejs` functions on,
//! found once at start (every `python3.X` and `node` on the instance `PATH`,
//! each asked for its version) plus the operator's `--runtime ID=PATH`
//! mappings, so a function asking for `python3.12` runs on Python 3.12 or is
//! refused at deploy, never silently on another version.

use crate::{ProcessError, INSTANCE_PATH};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;
use updraft_core::RuntimeKind;

/// How long one interpreter may take to tell its version.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// The flag that maps a runtime id to an interpreter.
pub const FLAG: &str = "--runtime";

/// `major.minor.patch` as an interpreter reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// What `python3 --version` (`Python 3.11.2`) or `node --version`
/// (`v20.19.2`) prints, as a version; a missing patch is 0 and a suffix
/// such as `rc1` is ignored.
pub fn parse_version(kind: RuntimeKind, output: &str) -> Option<Version> {
    let text = output.trim();
    let text = match kind {
        RuntimeKind::Python3 => text.strip_prefix("Python ")?,
        RuntimeKind::Nodejs => text.strip_prefix('v')?,
        _ => return None,
    };
    let mut parts = text.split('.').map(|p| {
        let digits: String = p.chars().take_while(char::is_ascii_digit).collect();
        digits.parse::<u32>().ok()
    });
    let major = parts.next()??;
    let minor = parts.next()??;
    let patch = parts.next().flatten().unwrap_or(0);
    Some(Version {
        major,
        minor,
        patch,
    })
}

/// One interpreter the server has.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interpreter {
    pub kind: RuntimeKind,
    pub version: Version,
    /// The program instances start, as found or mapped.
    pub path: PathBuf,
}

impl Interpreter {
    /// Lambda's id for it: `python3.11`, `nodejs20.x`.
    pub fn lambda_id(&self) -> String {
        lambda_id(self.kind, self.pinned())
    }

    /// The part of its version a Lambda id pins.
    fn pinned(&self) -> u32 {
        match self.kind {
            RuntimeKind::Python3 => self.version.minor,
            _ => self.version.major,
        }
    }

    /// Directories instances must see for it to run, besides the system's:
    /// its own and, for a `bin` directory, the `lib` beside it.
    pub fn dirs(&self) -> Vec<PathBuf> {
        let real = self
            .path
            .canonicalize()
            .unwrap_or_else(|_| self.path.clone());
        let Some(dir) = real.parent() else {
            return Vec::new();
        };
        let mut dirs = vec![dir.to_path_buf()];
        if dir.file_name().is_some_and(|n| n == "bin") {
            if let Some(lib) = dir.parent().map(|p| p.join("lib")).filter(|l| l.is_dir()) {
                dirs.push(lib);
            }
        }
        dirs
    }
}

fn lambda_id(kind: RuntimeKind, pinned: u32) -> String {
    match kind {
        RuntimeKind::Python3 => format!("python3.{pinned}"),
        _ => format!("nodejs{pinned}.x"),
    }
}

/// `--runtime ID=PATH`: a Lambda runtime id served by the interpreter at PATH.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuntimeMapping {
    pub kind: RuntimeKind,
    pub pinned: u32,
    pub path: PathBuf,
}

impl FromStr for RuntimeMapping {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (id, path) = s.split_once('=').ok_or_else(|| {
            format!("expected ID=PATH such as nodejs22.x=/opt/node22/bin/node, got {s:?}")
        })?;
        let kind = RuntimeKind::parse(id);
        let pinned = RuntimeKind::pinned_version(id);
        let (Some(kind @ (RuntimeKind::Python3 | RuntimeKind::Nodejs)), Some(pinned)) =
            (kind, pinned)
        else {
            return Err(format!(
                "expected a Lambda runtime id with a version (python3.13, nodejs22.x) before '=', got {id:?}"
            ));
        };
        if path.is_empty() {
            return Err(format!(
                "expected the interpreter's path after '=', got {s:?}"
            ));
        }
        Ok(RuntimeMapping {
            kind,
            pinned,
            path: PathBuf::from(path),
        })
    }
}

impl fmt::Display for RuntimeMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}={}",
            lambda_id(self.kind, self.pinned),
            self.path.display()
        )
    }
}

/// Why a function's runtime id cannot run here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{requested} is not installed on this server ({}); map one with `updraft server {FLAG} {}`", .installed, .example)]
pub struct Unavailable {
    pub requested: String,
    /// What the server has, e.g. `it has python3.11, nodejs20.x`.
    pub installed: String,
    /// An example mapping for the id asked for.
    pub example: String,
}

impl Unavailable {
    /// What a deploy expected instead, for a field error.
    pub fn expected(&self) -> String {
        format!(
            "a runtime this server has ({}; map another with `updraft server {FLAG} {}`)",
            self.installed, self.example
        )
    }
}

/// The interpreters of this server, newest first within each language.
#[derive(Clone, Debug, Default)]
pub struct Runtimes {
    interpreters: Vec<Interpreter>,
}

impl Runtimes {
    /// Finds the interpreters on the instance `PATH`, checks the mappings
    /// (which win over what was found for the same id), and asks each for
    /// its version, all at once and within [`PROBE_TIMEOUT`].
    pub async fn discover(mappings: &[RuntimeMapping]) -> Result<Runtimes, ProcessError> {
        let found = candidates(INSTANCE_PATH);
        let probes = found.iter().map(|(kind, path)| probe(*kind, path));
        let mapped = mappings.iter().map(|m| probe(m.kind, &m.path));
        let (found_versions, mapped_versions) = tokio::join!(
            futures_util::future::join_all(probes),
            futures_util::future::join_all(mapped)
        );
        let mut by_id: BTreeMap<String, Interpreter> = BTreeMap::new();
        for ((kind, path), version) in found.into_iter().zip(found_versions) {
            match version {
                Ok(version) => {
                    let i = Interpreter {
                        kind,
                        version,
                        path,
                    };
                    by_id.entry(i.lambda_id()).or_insert(i);
                }
                Err(e) => tracing::warn!(path = %path.display(), "skipping an interpreter: {e}"),
            }
        }
        for (m, version) in mappings.iter().zip(mapped_versions) {
            let bad = |reason: String| ProcessError::Mapping {
                mapping: m.to_string(),
                reason,
            };
            let version = version.map_err(bad)?;
            // The program itself, not a link to it: instances see only
            // the directories of what they run (a venv's `bin/python3.13`
            // links out of the venv).
            let i = Interpreter {
                kind: m.kind,
                version,
                path: m.path.canonicalize().unwrap_or_else(|_| m.path.clone()),
            };
            if i.pinned() != m.pinned {
                return Err(bad(format!(
                    "{} reports version {version}, which is {}",
                    m.path.display(),
                    i.lambda_id()
                )));
            }
            by_id.insert(i.lambda_id(), i);
        }
        Ok(Runtimes::new(by_id.into_values().collect()))
    }

    pub fn new(mut interpreters: Vec<Interpreter>) -> Runtimes {
        interpreters.sort_by(|a, b| {
            (a.kind != RuntimeKind::Python3, b.version)
                .cmp(&(b.kind != RuntimeKind::Python3, a.version))
        });
        Runtimes { interpreters }
    }

    pub fn interpreters(&self) -> &[Interpreter] {
        &self.interpreters
    }

    /// The interpreter a function's runtime id runs on: that version, or
    /// the newest for `python3` / `nodejs`; `Ok(None)` for the families
    /// that need none (`provided`, `wasm`).
    pub fn resolve(&self, runtime: &str) -> Result<Option<&Interpreter>, Unavailable> {
        let kind = match RuntimeKind::parse(runtime) {
            Some(k @ (RuntimeKind::Python3 | RuntimeKind::Nodejs)) => k,
            _ => return Ok(None),
        };
        let pinned = RuntimeKind::pinned_version(runtime);
        self.interpreters
            .iter()
            .find(|i| i.kind == kind && pinned.is_none_or(|p| i.pinned() == p))
            .map(Some)
            .ok_or_else(|| self.unavailable(kind, runtime.trim()))
    }

    fn unavailable(&self, kind: RuntimeKind, requested: &str) -> Unavailable {
        let ids: Vec<String> = self.interpreters.iter().map(|i| i.lambda_id()).collect();
        let installed = if ids.is_empty() {
            "it has no python3 or node interpreter".to_string()
        } else {
            format!("it has {}", ids.join(", "))
        };
        let (id, program) = match (kind, RuntimeKind::pinned_version(requested)) {
            (RuntimeKind::Python3, Some(_)) => {
                (requested.to_string(), format!("/path/to/{requested}"))
            }
            (RuntimeKind::Python3, None) => ("python3.13".into(), "/path/to/python3.13".into()),
            (_, Some(_)) => (requested.to_string(), "/path/to/node".into()),
            (_, None) => ("nodejs22.x".into(), "/path/to/node".into()),
        };
        Unavailable {
            requested: requested.to_string(),
            installed,
            example: format!("{id}={program}"),
        }
    }

    /// The Lambda id a function's runtime reports: the version `python3` /
    /// `nodejs` resolves to here, `provided.al2023` for `provided`; what
    /// was written otherwise (a pinned id, `wasm`, a version not installed).
    pub fn lambda_id(&self, runtime: &str) -> String {
        let runtime = runtime.trim();
        match RuntimeKind::parse(runtime) {
            Some(RuntimeKind::Provided) if runtime == "provided" => "provided.al2023".into(),
            Some(RuntimeKind::Python3 | RuntimeKind::Nodejs) => match self.resolve(runtime) {
                Ok(Some(i)) => i.lambda_id(),
                _ => runtime.to_string(),
            },
            _ => runtime.to_string(),
        }
    }

    /// `python3.11 (/usr/bin/python3.11), nodejs20.x (/usr/bin/node)`.
    pub fn summary(&self) -> String {
        if self.interpreters.is_empty() {
            return format!(
                "none (no python3.X or node in {INSTANCE_PATH}; map one with {FLAG} ID=PATH)"
            );
        }
        self.interpreters
            .iter()
            .map(|i| format!("{} ({})", i.lambda_id(), i.path.display()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Every `python3.X`, `python3` and `node` in the directories of `path`,
/// in `PATH` order (versioned names first, so they are the ones shown).
fn candidates(path: &str) -> Vec<(RuntimeKind, PathBuf)> {
    let mut out = Vec::new();
    for dir in path.split(':').map(Path::new) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        let mut pythons: Vec<(u32, PathBuf)> = entries
            .filter_map(Result::ok)
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let minor =
                    RuntimeKind::pinned_version(&name).filter(|_| name.starts_with("python3."))?;
                Some((minor, e.path()))
            })
            .collect();
        pythons.sort();
        out.extend(
            pythons
                .into_iter()
                .rev()
                .map(|(_, p)| (RuntimeKind::Python3, p)),
        );
        for (kind, name) in [
            (RuntimeKind::Python3, "python3"),
            (RuntimeKind::Nodejs, "node"),
        ] {
            let p = dir.join(name);
            if p.is_file() {
                out.push((kind, p));
            }
        }
    }
    out
}

/// Runs `path --version` with nothing of the server's environment, within
/// [`PROBE_TIMEOUT`], and reads the version it prints.
async fn probe(kind: RuntimeKind, path: &Path) -> Result<Version, String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
        return Err(format!("{} is not an executable file", path.display()));
    }
    let run = tokio::process::Command::new(path)
        .arg("--version")
        .env_clear()
        .env("PATH", INSTANCE_PATH)
        .env("LANG", "C.UTF-8")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(PROBE_TIMEOUT, run)
        .await
        .map_err(|_| {
            format!(
                "{} --version did not answer within {}s",
                path.display(),
                PROBE_TIMEOUT.as_secs()
            )
        })?
        .map_err(|e| format!("running {} --version: {e}", path.display()))?;
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let want = match kind {
        RuntimeKind::Python3 => "Python 3.X.Y",
        _ => "vX.Y.Z (Node.js)",
    };
    parse_version(kind, &text)
        .filter(|v| kind != RuntimeKind::Python3 || v.major == 3)
        .ok_or_else(|| {
            format!(
                "{} --version printed {:?}, expected {want}",
                path.display(),
                text.trim()
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interp(kind: RuntimeKind, major: u32, minor: u32, path: &str) -> Interpreter {
        Interpreter {
            kind,
            version: Version {
                major,
                minor,
                patch: 1,
            },
            path: path.into(),
        }
    }

    fn catalogue() -> Runtimes {
        Runtimes::new(vec![
            interp(RuntimeKind::Nodejs, 20, 19, "/usr/bin/node"),
            interp(RuntimeKind::Python3, 3, 11, "/usr/bin/python3.11"),
            interp(RuntimeKind::Python3, 3, 12, "/usr/local/bin/python3.12"),
            interp(RuntimeKind::Nodejs, 22, 20, "/opt/node22/bin/node"),
        ])
    }

    #[test]
    fn versions_parse_from_what_interpreters_print() {
        let cases = [
            (RuntimeKind::Python3, "Python 3.11.2\n", Some((3, 11, 2))),
            (RuntimeKind::Python3, "Python 3.13.0rc1", Some((3, 13, 0))),
            (RuntimeKind::Python3, "Python 3.14", Some((3, 14, 0))),
            (RuntimeKind::Nodejs, "v22.20.0\n", Some((22, 20, 0))),
            (RuntimeKind::Nodejs, "22.20.0", None),
            (RuntimeKind::Python3, "v20.1.0", None),
            (RuntimeKind::Python3, "Python x.y", None),
        ];
        for (kind, text, want) in cases {
            let got = parse_version(kind, text).map(|v| (v.major, v.minor, v.patch));
            assert_eq!(got, want, "{text:?}");
        }
    }

    #[test]
    fn pinned_ids_resolve_to_that_version_and_bare_ones_to_the_newest() {
        let r = catalogue();
        let path = |id: &str| r.resolve(id).unwrap().unwrap().path.clone();
        assert_eq!(path("python3.11"), PathBuf::from("/usr/bin/python3.11"));
        assert_eq!(path("python3"), PathBuf::from("/usr/local/bin/python3.12"));
        assert_eq!(path("nodejs"), PathBuf::from("/opt/node22/bin/node"));
        assert_eq!(path("nodejs20.x"), PathBuf::from("/usr/bin/node"));
        assert_eq!(r.resolve("provided.al2").unwrap(), None);
        assert_eq!(r.resolve("wasm").unwrap(), None);
        assert_eq!(r.lambda_id("python3"), "python3.12");
        assert_eq!(r.lambda_id("nodejs"), "nodejs22.x");
        assert_eq!(r.lambda_id("provided"), "provided.al2023");
        assert_eq!(r.lambda_id("provided.al2"), "provided.al2");
        assert_eq!(r.lambda_id("wasm"), "wasm");
        assert_eq!(
            r.summary(),
            "python3.12 (/usr/local/bin/python3.12), python3.11 (/usr/bin/python3.11), \
             nodejs22.x (/opt/node22/bin/node), nodejs20.x (/usr/bin/node)"
        );
    }

    #[test]
    fn a_missing_version_names_what_is_installed_and_the_flag() {
        let r = Runtimes::new(vec![
            interp(RuntimeKind::Nodejs, 20, 19, "/usr/bin/node"),
            interp(RuntimeKind::Python3, 3, 11, "/usr/bin/python3.11"),
        ]);
        let e = r.resolve("nodejs22.x").unwrap_err();
        assert_eq!(
            e.to_string(),
            "nodejs22.x is not installed on this server (it has python3.11, nodejs20.x); \
             map one with `updraft server --runtime nodejs22.x=/path/to/node`"
        );
        let e = r.resolve("python3.13").unwrap_err();
        assert_eq!(e.example, "python3.13=/path/to/python3.13");
        // Not installed: reported as written, never as another version.
        assert_eq!(r.lambda_id("python3.13"), "python3.13");
        let none = Runtimes::default();
        let e = none.resolve("nodejs").unwrap_err();
        assert_eq!(e.installed, "it has no python3 or node interpreter");
        assert_eq!(e.example, "nodejs22.x=/path/to/node");
    }

    #[test]
    fn mappings_parse_with_errors_naming_what_was_expected() {
        let m: RuntimeMapping = "nodejs22.x=/opt/n/bin/node".parse().unwrap();
        assert_eq!((m.kind, m.pinned), (RuntimeKind::Nodejs, 22));
        assert_eq!(m.to_string(), "nodejs22.x=/opt/n/bin/node");
        let m: RuntimeMapping = "python3.13=/usr/bin/python3.13".parse().unwrap();
        assert_eq!((m.kind, m.pinned), (RuntimeKind::Python3, 13));
        for bad in [
            "nodejs22.x",
            "python3=/x",
            "java21=/x",
            "provided.al2=/x",
            "nodejs22.x=",
        ] {
            let e = bad.parse::<RuntimeMapping>().unwrap_err();
            assert!(e.starts_with("expected"), "{bad}: {e}");
        }
    }

    #[test]
    fn candidates_list_versioned_pythons_first_then_node() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "python3",
            "python3.11",
            "python3.12",
            "python3.12-config",
            "node",
            "nodejs",
        ] {
            std::fs::write(dir.path().join(name), "").unwrap();
        }
        let names: Vec<String> = candidates(&dir.path().display().to_string())
            .into_iter()
            .map(|(_, p)| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["python3.12", "python3.11", "python3", "node"]);
    }

    #[tokio::test]
    async fn a_bad_mapping_is_an_error_naming_the_flag() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let missing = format!("nodejs22.x={}", dir.path().join("node").display());
        let e = Runtimes::discover(&[missing.parse().unwrap()])
            .await
            .unwrap_err();
        assert!(
            e.to_string().starts_with(&format!("--runtime {missing}: ")),
            "{e}"
        );
        // An interpreter that reports another version than its id.
        let fake = dir.path().join("fake-node");
        std::fs::write(&fake, "#!/bin/sh\necho v20.1.0\n").unwrap();
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let m = format!("nodejs22.x={}", fake.display());
        let e = Runtimes::discover(&[m.parse().unwrap()]).await.unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "--runtime {m}: {} reports version 20.1.0, which is nodejs20.x",
                fake.display()
            )
        );
        // The same program mapped to the id it reports is served, over
        // whatever the PATH held for that id.
        let m = format!("nodejs20.x={}", fake.display());
        let r = Runtimes::discover(&[m.parse().unwrap()]).await.unwrap();
        let fake = fake.canonicalize().unwrap();
        assert_eq!(r.resolve("nodejs20.x").unwrap().unwrap().path, fake);
        // A link is followed to the program it names.
        let link = dir.path().join("node-link");
        std::os::unix::fs::symlink(&fake, &link).unwrap();
        let m = format!("nodejs20.x={}", link.display());
        let r = Runtimes::discover(&[m.parse().unwrap()]).await.unwrap();
        assert_eq!(r.resolve("nodejs20.x").unwrap().unwrap().path, fake);
    }
}
