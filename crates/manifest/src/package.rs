//! Building and packaging a function's code. Zips are deterministic (sorted
//! entries, fixed timestamps, normalized modes) so that an unchanged tree
//! gives an unchanged sha256 and `deploy` publishes no new version.

use crate::{CodeKind, FunctionSpec, ManifestError};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashSet};
use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipArchive, ZipWriter};

/// The zip uploaded for one function.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Package {
    pub bytes: Vec<u8>,
    /// Lower-case hex sha256 of `bytes`.
    pub sha256: String,
}

impl Package {
    fn new(bytes: Vec<u8>) -> Package {
        let sha256 = hex::encode(Sha256::digest(&bytes));
        Package { bytes, sha256 }
    }
}

/// Directories never shipped: VCS data, bytecode caches that differ per
/// machine, and Updraft's own data directory.
const SKIPPED_DIRS: [&str; 3] = [".git", "__pycache__", ".updraft"];

/// The entry name of a wasm component inside its zip.
pub const WASM_ENTRY: &str = "function.wasm";

/// Zips (or reads) the function's code.
pub fn package(spec: &FunctionSpec) -> Result<Package, ManifestError> {
    let err = |path: &Path, message: String| ManifestError::Package {
        function: spec.name.clone(),
        path: path.to_path_buf(),
        message,
    };
    let code = &spec.code;
    let meta = std::fs::metadata(code).map_err(|e| {
        let hint = if spec.build.is_some() && e.kind() == std::io::ErrorKind::NotFound {
            " (the build command did not produce it)"
        } else {
            ""
        };
        err(code, format!("{e}{hint}"))
    })?;
    match spec.code_kind {
        CodeKind::Dir => {
            if !meta.is_dir() {
                return Err(err(code, "expected a directory, found a file".into()));
            }
            let mut files = BTreeMap::new();
            let mut ancestors = HashSet::new();
            collect(code, "", &mut files, &mut ancestors).map_err(|(p, m)| err(&p, m))?;
            let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
            for (name, (path, mode)) in &files {
                let bytes = std::fs::read(path).map_err(|e| err(path, e.to_string()))?;
                add(&mut zip, name, *mode, &bytes).map_err(|e| err(path, e.to_string()))?;
            }
            let bytes = zip
                .finish()
                .map_err(|e| err(code, e.to_string()))?
                .into_inner();
            Ok(Package::new(bytes))
        }
        CodeKind::Zip => {
            let bytes = std::fs::read(code).map_err(|e| err(code, e.to_string()))?;
            // Refuse a broken archive here rather than at the first invocation.
            ZipArchive::new(Cursor::new(&bytes))
                .map_err(|e| err(code, format!("not a valid zip archive: {e}")))?;
            Ok(Package::new(bytes))
        }
        CodeKind::Wasm => {
            let bytes = std::fs::read(code).map_err(|e| err(code, e.to_string()))?;
            if !bytes.starts_with(b"\0asm") {
                return Err(err(
                    code,
                    "not a WebAssembly binary (it does not start with \\0asm)".into(),
                ));
            }
            let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
            add(&mut zip, WASM_ENTRY, 0o644, &bytes).map_err(|e| err(code, e.to_string()))?;
            let bytes = zip
                .finish()
                .map_err(|e| err(code, e.to_string()))?
                .into_inner();
            Ok(Package::new(bytes))
        }
    }
}

fn add(
    zip: &mut ZipWriter<Cursor<Vec<u8>>>,
    name: &str,
    mode: u32,
    bytes: &[u8],
) -> zip::result::ZipResult<()> {
    let options = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .last_modified_time(DateTime::default())
        .unix_permissions(mode)
        .large_file(bytes.len() as u64 >= u32::MAX as u64);
    zip.start_file(name, options)?;
    zip.write_all(bytes)?;
    Ok(())
}

type Files = BTreeMap<String, (PathBuf, u32)>;

/// Walks `dir`, following symlinks, into `files` keyed by the '/'-joined
/// relative name (the BTreeMap gives the sorted order).
fn collect(
    dir: &Path,
    prefix: &str,
    files: &mut Files,
    ancestors: &mut HashSet<PathBuf>,
) -> Result<(), (PathBuf, String)> {
    let real = dir
        .canonicalize()
        .map_err(|e| (dir.to_path_buf(), e.to_string()))?;
    // A symlink back to an ancestor would recurse forever.
    if !ancestors.insert(real.clone()) {
        return Err((
            dir.to_path_buf(),
            "symlink loop: this directory contains itself".into(),
        ));
    }
    let entries = std::fs::read_dir(dir).map_err(|e| (dir.to_path_buf(), e.to_string()))?;
    for entry in entries {
        let entry = entry.map_err(|e| (dir.to_path_buf(), e.to_string()))?;
        let path = entry.path();
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            return Err((path, "file names must be UTF-8 to go into a zip".into()));
        };
        let meta = std::fs::metadata(&path)
            .map_err(|e| (path.clone(), format!("{e} (a broken symlink?)")))?;
        let rel = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}/{name}")
        };
        if meta.is_dir() {
            if SKIPPED_DIRS.contains(&name.as_str()) {
                continue;
            }
            collect(&path, &rel, files, ancestors)?;
        } else if meta.is_file() {
            files.insert(rel, (path, mode_of(&meta)));
        }
        // Sockets, fifos and devices are not code; leave them out.
    }
    ancestors.remove(&real);
    Ok(())
}

/// Git-like modes: 0755 when any execute bit is set, else 0644, so that the
/// same tree checked out under another umask still hashes the same.
#[cfg(unix)]
fn mode_of(meta: &std::fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    if meta.permissions().mode() & 0o111 != 0 {
        0o755
    } else {
        0o644
    }
}

#[cfg(not(unix))]
fn mode_of(_meta: &std::fs::Metadata) -> u32 {
    0o644
}

/// Runs the function's `build` command, if any, with `sh -c` in the code
/// directory (the manifest's directory when the code is a file or does not
/// exist yet). Its stdout goes to stderr: the CLI's stdout carries results only.
/// Stdin is closed so that a prompting build fails instead of hanging.
pub fn run_build(spec: &FunctionSpec) -> Result<(), ManifestError> {
    let Some(command) = &spec.build else {
        return Ok(());
    };
    let dir = if spec.code_kind == CodeKind::Dir && spec.code.is_dir() {
        &spec.code
    } else {
        &spec.root
    };
    let failed = |status: String| ManifestError::Build {
        function: spec.name.clone(),
        command: command.clone(),
        status,
    };
    let status = Command::new("sh")
        .arg("-c")
        .arg(command)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(std::io::stderr())
        .stderr(Stdio::inherit())
        .status()
        .map_err(|e| failed(format!("could not start sh in {}: {e}", dir.display())))?;
    if status.success() {
        Ok(())
    } else {
        Err(failed(format!("{status} (in {})", dir.display())))
    }
}
