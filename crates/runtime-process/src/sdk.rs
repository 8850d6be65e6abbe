//! The AWS SDKs that `python3` and `nodejs` functions import without
//! bundling them, as on Lambda: boto3, and the `@aws-sdk/client-*` packages
//! of the AWS SDK for JavaScript v3, each pinned in
//! `crates/runtime-process/sdk/`. They live in one directory (`python/`, a
//! `pip install --target` tree, and `nodejs/node_modules`), installed there
//! by [`Sdk::install`] (`updraft server --install-sdk`) or put there by hand
//! (`--sdk-dir` on a host without network), and instances see them
//! read-only under their runtime directory: Python's at `sdk/` (last on
//! `sys.path`), Node's at `node_modules/` (on `NODE_PATH`, after the
//! function's own `node_modules`).

use crate::ProcessError;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use updraft_core::RuntimeKind;

/// The pinned Python packages (`pip install --no-deps -r`).
pub const REQUIREMENTS: &str = include_str!("../sdk/python3/requirements.txt");
/// The pinned Node packages (`npm ci`, with [`PACKAGE_LOCK`]).
pub const PACKAGE_JSON: &str = include_str!("../sdk/nodejs/package.json");
pub const PACKAGE_LOCK: &str = include_str!("../sdk/nodejs/package-lock.json");

/// How a function that imports the SDK on a server without it is told to
/// get it (the bootstraps say the same).
pub const INSTALL_HINT: &str =
    "start the server with --install-sdk, or give an installed copy with --sdk-dir DIR";

/// The SDK directory and what it holds.
#[derive(Clone, Debug)]
pub struct Sdk {
    dir: PathBuf,
    /// boto3's version, when `python/` holds it.
    python: Option<String>,
    /// `@aws-sdk/client-lambda`'s version, when `nodejs/node_modules` holds it.
    node: Option<String>,
}

impl Sdk {
    /// What `dir` holds (nothing, when it does not exist).
    pub fn find(dir: &Path) -> Sdk {
        Sdk {
            dir: dir.to_path_buf(),
            python: boto3_version(&dir.join("python")),
            node: node_version(&dir.join("nodejs")),
        }
    }

    /// Installs the pinned versions into `dir` with `python3 -m pip` and
    /// `npm` (from the server's `PATH`), unless they are there already.
    /// Each part is installed beside its final place and then moved there,
    /// so a failed install leaves what was there before.
    pub fn install(dir: &Path) -> Result<Sdk, ProcessError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| ProcessError::Io { path, source }
        };
        fs::create_dir_all(dir).map_err(io(dir))?;
        let found = Sdk::find(dir);
        let (python, node) = Sdk::pinned_versions();
        if found.python() != Some(python) {
            install_part(dir, "python", |staging| {
                let req = staging.join("requirements.txt");
                fs::write(&req, REQUIREMENTS)?;
                let mut pip = Command::new("python3");
                pip.args(["-m", "pip", "install", "--no-deps", "--no-input"])
                    .args(["--disable-pip-version-check", "--quiet", "--target"])
                    .arg(staging)
                    .arg("-r")
                    .arg(&req);
                let done = run(pip, "python3 -m pip install --target");
                let _ = fs::remove_file(&req);
                done
            })?;
        }
        if found.node() != Some(node) {
            install_part(dir, "nodejs", |staging| {
                fs::write(staging.join("package.json"), PACKAGE_JSON)?;
                fs::write(staging.join("package-lock.json"), PACKAGE_LOCK)?;
                let mut npm = Command::new("npm");
                npm.args(["ci", "--omit=dev", "--ignore-scripts", "--no-audit"])
                    .args(["--no-fund", "--loglevel=error", "--prefix"])
                    .arg(staging);
                run(npm, "npm ci")
            })?;
        }
        Ok(Sdk::find(dir))
    }

    /// The versions [`Sdk::install`] installs: boto3's and the
    /// `@aws-sdk/client-*` packages'.
    pub fn pinned_versions() -> (&'static str, &'static str) {
        (pinned("boto3"), pinned("@aws-sdk/client-lambda"))
    }

    /// Whether both parts are there at the pinned versions.
    pub fn is_pinned(&self) -> bool {
        let (python, node) = Sdk::pinned_versions();
        self.python() == Some(python) && self.node() == Some(node)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// boto3's version, if installed.
    pub fn python(&self) -> Option<&str> {
        self.python.as_deref()
    }

    /// `@aws-sdk/client-lambda`'s version, if installed.
    pub fn node(&self) -> Option<&str> {
        self.node.as_deref()
    }

    /// One line for the server's start-up message.
    pub fn summary(&self) -> String {
        let part = |lang: &str, what: &str, v: Option<&str>| match v {
            Some(v) => format!("{lang} {what} {v}"),
            None => format!("{lang} {what} not installed"),
        };
        let line = format!(
            "AWS SDK for functions in {}: {}, {}",
            self.dir.display(),
            part("python3", "boto3", self.python()),
            part("nodejs", "@aws-sdk/client-*", self.node()),
        );
        if self.python.is_some() && self.node.is_some() {
            line
        } else {
            let (python, node) = Sdk::pinned_versions();
            format!(
                "{line} (functions that import it fail; {INSTALL_HINT}: boto3 {python}, @aws-sdk/client-* {node})"
            )
        }
    }

    /// The host directory an instance of `kind` sees inside its runtime
    /// directory, and the name it has there.
    pub(crate) fn part(&self, kind: RuntimeKind) -> Option<(PathBuf, &'static str)> {
        match kind {
            RuntimeKind::Python3 if self.python.is_some() => Some((self.dir.join("python"), "sdk")),
            RuntimeKind::Nodejs if self.node.is_some() => {
                Some((self.dir.join("nodejs").join("node_modules"), "node_modules"))
            }
            _ => None,
        }
    }
}

/// Makes the SDK's place inside `runtimes_dir/python3` and `…/nodejs`:
/// jailed instances get an empty directory the SDK is mounted on (their
/// runtime directory is a read-only mount); the others, which see the host's
/// paths, a link to it (none when that part is not installed).
pub(crate) fn link_runtime_dirs(
    sdk: &Sdk,
    runtimes_dir: &Path,
    jailed: bool,
) -> Result<(), ProcessError> {
    use std::os::unix::fs::PermissionsExt;
    for (kind, dir, name) in [
        (RuntimeKind::Python3, "python3", "sdk"),
        (RuntimeKind::Nodejs, "nodejs", "node_modules"),
    ] {
        let place = runtimes_dir.join(dir).join(name);
        let at = |source| ProcessError::Io {
            path: place.clone(),
            source,
        };
        match fs::symlink_metadata(&place) {
            Ok(m) if m.is_dir() => fs::remove_dir_all(&place).map_err(at)?,
            Ok(_) => fs::remove_file(&place).map_err(at)?,
            Err(_) => {}
        }
        if jailed {
            fs::create_dir(&place).map_err(at)?;
            fs::set_permissions(&place, fs::Permissions::from_mode(0o755)).map_err(at)?;
        } else if let Some((target, _)) = sdk.part(kind) {
            std::os::unix::fs::symlink(target, &place).map_err(at)?;
        }
    }
    Ok(())
}

/// The pinned version of `package` (boto3 in requirements.txt, an npm
/// package in package.json).
fn pinned(package: &str) -> &'static str {
    let python = REQUIREMENTS.lines().find_map(|l| {
        l.trim()
            .strip_prefix(package)
            .and_then(|r| r.strip_prefix("=="))
    });
    let node = || {
        PACKAGE_JSON.lines().find_map(|l| {
            let (k, v) = l.trim().trim_end_matches(',').split_once(':')?;
            (k.trim().trim_matches('"') == package).then(|| v.trim().trim_matches('"'))
        })
    };
    python.or_else(node).unwrap_or("")
}

fn boto3_version(python: &Path) -> Option<String> {
    fs::read_dir(python).ok()?.flatten().find_map(|e| {
        let name = e.file_name().into_string().ok()?;
        let v = name.strip_prefix("boto3-")?.strip_suffix(".dist-info")?;
        python
            .join("boto3")
            .join("__init__.py")
            .is_file()
            .then(|| v.to_string())
    })
}

fn node_version(nodejs: &Path) -> Option<String> {
    let text =
        fs::read_to_string(nodejs.join("node_modules/@aws-sdk/client-lambda/package.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v["version"].as_str().map(str::to_string)
}

/// Fills a fresh `dir/.name-PID` with `fill`, makes it readable by every
/// uid (instances run as their own), then puts it at `dir/name`.
fn install_part(
    dir: &Path,
    name: &str,
    fill: impl FnOnce(&Path) -> std::io::Result<()>,
) -> Result<(), ProcessError> {
    let target = dir.join(name);
    let staging = dir.join(format!(".{name}-{}", std::process::id()));
    let old = dir.join(format!(".{name}-old-{}", std::process::id()));
    let at = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ProcessError::Io { path, source }
    };
    let _ = fs::remove_dir_all(&staging);
    fs::create_dir_all(&staging).map_err(at(&staging))?;
    let filled = fill(&staging).and_then(|()| readable_by_all(&staging));
    if let Err(e) = filled {
        let _ = fs::remove_dir_all(&staging);
        return Err(ProcessError::Sdk(format!(
            "--install-sdk: installing {name} into {}: {e}",
            dir.display()
        )));
    }
    if target.exists() {
        fs::rename(&target, &old).map_err(at(&target))?;
    }
    fs::rename(&staging, &target).map_err(at(&target))?;
    let _ = fs::remove_dir_all(&old);
    Ok(())
}

/// Runs an installer, its output kept for the error.
fn run(mut cmd: Command, what: &str) -> std::io::Result<()> {
    let out = cmd.output().map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("could not run {what} (it needs python3 with pip and npm on the server's PATH): {e}"),
        )
    })?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let tail: Vec<&str> = stderr.lines().rev().take(15).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    Err(std::io::Error::other(format!(
        "{what} failed ({}):\n{}",
        out.status,
        tail.join("\n")
    )))
}

/// `chmod -R a+rX`: directories searchable and files readable by all.
fn readable_by_all(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let meta = fs::symlink_metadata(path)?;
    if meta.file_type().is_symlink() {
        return Ok(());
    }
    let mode = meta.permissions().mode();
    let extra = if meta.is_dir() || mode & 0o111 != 0 {
        0o555
    } else {
        0o444
    };
    if mode & extra != extra {
        fs::set_permissions(path, fs::Permissions::from_mode(mode | extra))?;
    }
    if meta.is_dir() {
        for entry in fs::read_dir(path)? {
            readable_by_all(&entry?.path())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_are_read_from_the_shipped_files() {
        assert_eq!(pinned("boto3"), "1.44.8");
        assert_eq!(pinned("botocore"), "1.44.8");
        assert_eq!(pinned("@aws-sdk/client-lambda"), "3.1164.0");
        assert_eq!(pinned("no-such-package"), "");
        // The lock pins what package.json names.
        assert!(PACKAGE_LOCK.contains("\"node_modules/@aws-sdk/client-lambda\""));
    }

    #[test]
    fn find_reads_the_installed_versions() {
        let dir = tempfile::tempdir().unwrap();
        let sdk = Sdk::find(dir.path());
        assert_eq!((sdk.python(), sdk.node()), (None, None));
        assert!(sdk.summary().contains("--install-sdk"), "{}", sdk.summary());
        assert!(sdk.part(RuntimeKind::Python3).is_none());

        let py = dir.path().join("python");
        fs::create_dir_all(py.join("boto3")).unwrap();
        fs::create_dir_all(py.join("boto3-1.2.3.dist-info")).unwrap();
        // A dist-info without the package is not an install.
        assert_eq!(Sdk::find(dir.path()).python(), None);
        fs::write(py.join("boto3/__init__.py"), "").unwrap();
        let lambda = dir
            .path()
            .join("nodejs/node_modules/@aws-sdk/client-lambda");
        fs::create_dir_all(&lambda).unwrap();
        fs::write(lambda.join("package.json"), r#"{"version": "3.9.0"}"#).unwrap();

        let sdk = Sdk::find(dir.path());
        assert_eq!(sdk.python(), Some("1.2.3"));
        assert_eq!(sdk.node(), Some("3.9.0"));
        assert!(
            !sdk.summary().contains("not installed"),
            "{}",
            sdk.summary()
        );
        assert!(sdk.summary().contains("boto3 1.2.3"), "{}", sdk.summary());
        assert_eq!(sdk.part(RuntimeKind::Python3), Some((py, "sdk")));
        assert_eq!(
            sdk.part(RuntimeKind::Nodejs).map(|(_, n)| n),
            Some("node_modules")
        );
        assert!(sdk.part(RuntimeKind::Provided).is_none());
    }

    #[test]
    fn installed_trees_become_readable_by_all() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("pkg");
        fs::create_dir(&sub).unwrap();
        fs::write(sub.join("m.py"), "").unwrap();
        fs::set_permissions(sub.join("m.py"), fs::Permissions::from_mode(0o600)).unwrap();
        fs::set_permissions(&sub, fs::Permissions::from_mode(0o700)).unwrap();
        readable_by_all(dir.path()).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&sub), 0o755);
        assert_eq!(mode(&sub.join("m.py")), 0o644);
    }

    #[test]
    fn a_failed_install_leaves_what_was_there() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("python/keep")).unwrap();
        let err = install_part(dir.path(), "python", |_| {
            Err(std::io::Error::other("pip failed"))
        })
        .unwrap_err();
        assert!(err.to_string().contains("pip failed"), "{err}");
        assert!(dir.path().join("python/keep").is_dir());
        let left: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "the staging directory is removed");
    }
}
