//! Compiled components on disk: `CACHE/{sha256 of the .wasm}.{engine}.cwasm`
//! (CACHE is `DATA_DIR/wasm` unless `--wasm-cache-dir` says otherwise),
//! so identical components compile once and a restart compiles nothing.
//! `CACHE/packages/{code sha256}` records which component a code
//! package holds, so loading one does not hash it again.

use crate::compile::Compiler;
use crate::WasmError;
use sha2::{Digest, Sha256};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use wasmtime::component::Component;
use wasmtime::Engine;

/// The file name a code package's component has inside its zip when
/// `updraft deploy` made it; a Lambda API zip may hold one `.wasm` of any name.
const ENTRY: &str = "function.wasm";

pub struct Artifacts {
    dir: PathBuf,
    packages: PathBuf,
    /// Distinguishes artifacts of other wasmtime versions or settings.
    engine_key: String,
    /// Compiles in a helper process; in this one when unset.
    compiler: Option<Compiler>,
}

impl Artifacts {
    pub fn new(dir: &Path, engine: &Engine, compiler: Option<Compiler>) -> io::Result<Artifacts> {
        use std::os::unix::fs::PermissionsExt;
        let dir = dir.to_path_buf();
        let packages = dir.join("packages");
        fs::create_dir_all(&packages)?;
        // Only the server reads compiled code: it is trusted as it is loaded.
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))?;
        Ok(Artifacts {
            dir,
            packages,
            engine_key: crate::engine::key(engine),
            compiler,
        })
    }

    fn artifact(&self, wasm_sha: &str) -> PathBuf {
        self.dir
            .join(format!("{wasm_sha}.{}.cwasm", self.engine_key))
    }

    /// The component a package holds, if it was prepared before.
    fn known(&self, code_sha: &str) -> Option<String> {
        let sha = fs::read_to_string(self.packages.join(code_sha)).ok()?;
        let sha = sha.trim().to_string();
        (sha.len() == 64 && self.artifact(&sha).is_file()).then_some(sha)
    }

    /// Compiles the package's component unless its artifact exists; returns
    /// the artifact's path. Blocking (compilation takes seconds for large
    /// components): call it off the async runtime.
    pub fn prepare(
        &self,
        engine: &Engine,
        code_sha: &str,
        code_dir: &Path,
    ) -> Result<PathBuf, WasmError> {
        if let Some(sha) = self.known(code_sha) {
            return Ok(self.artifact(&sha));
        }
        let (file, source, bytes) = read_component(code_dir)?;
        let wasm_sha = hex::encode(Sha256::digest(&bytes));
        let path = self.artifact(&wasm_sha);
        // Servers sharing a cache compile a component once: the others wait
        // on the lock, then find the artifact.
        let lock = fs::File::create(self.dir.join(format!("{wasm_sha}.lock")))
            .and_then(|f| f.lock().map(|()| f))
            .map_err(|e| WasmError::Io("locking the wasm cache", e))?;
        if !path.is_file() {
            check_header(&file, &bytes)?;
            let started = std::time::Instant::now();
            match &self.compiler {
                Some(compiler) => {
                    drop(bytes);
                    let tmp = temporary(&path);
                    let done = compiler
                        .compile(
                            &file,
                            &source,
                            &tmp,
                            &self.engine_key,
                            &self.dir.join("functions"),
                        )
                        .and_then(|()| {
                            fs::rename(&tmp, &path)
                                .map_err(|e| WasmError::Io("writing a compiled component", e))
                        });
                    if done.is_err() {
                        let _ = fs::remove_file(&tmp);
                    }
                    done?;
                }
                None => {
                    let compiled = engine.precompile_component(&bytes).map_err(|e| {
                        WasmError::Invalid(format!(
                            "{file}: not a valid WebAssembly component: {e:#}"
                        ))
                    })?;
                    write_atomically(&path, &compiled)
                        .map_err(|e| WasmError::Io("writing a compiled component", e))?;
                }
            }
            tracing::info!(component = %file, sha256 = %wasm_sha, ms = started.elapsed().as_millis() as u64, helper = self.compiler.is_some(), "wasm: compiled");
        }
        drop(lock);
        write_atomically(&self.packages.join(code_sha), wasm_sha.as_bytes())
            .map_err(|e| WasmError::Io("recording a compiled component", e))?;
        Ok(path)
    }

    /// Loads the package's compiled component, compiling it first if need be
    /// (a cache emptied by hand, or artifacts of another wasmtime).
    pub fn load(
        &self,
        engine: &Engine,
        code_sha: &str,
        code_dir: &Path,
    ) -> Result<Component, WasmError> {
        let path = self.prepare(engine, code_sha, code_dir)?;
        match deserialize(engine, &path) {
            Ok(c) => Ok(c),
            Err(e) => {
                // A damaged or foreign artifact: compile again, once.
                tracing::warn!(path = %path.display(), error = %e, "wasm: discarding a compiled component that does not load");
                let _ = fs::remove_file(&path);
                let _ = fs::remove_file(self.packages.join(code_sha));
                let path = self.prepare(engine, code_sha, code_dir)?;
                deserialize(engine, &path).map_err(|e| {
                    WasmError::Invalid(format!("the compiled component does not load: {e:#}"))
                })
            }
        }
    }
}

#[allow(unsafe_code)]
fn deserialize(engine: &Engine, path: &Path) -> wasmtime::Result<Component> {
    // SAFETY: the file was written by `Engine::precompile_component` of this
    // server, or of its compile helper (this same binary, whose engine key
    // is checked equal to the server's before it compiles), into a
    // directory only the server can write (mode 0700), under a name that
    // includes the engine's compatibility hash; wasmtime checks its header
    // against this engine's settings before using it.
    unsafe { Component::deserialize_file(engine, path) }
}

/// The package's component: `function.wasm`, or its one `.wasm` file (its
/// name, path and bytes).
fn read_component(code_dir: &Path) -> Result<(String, PathBuf, Vec<u8>), WasmError> {
    let entry = code_dir.join(ENTRY);
    let path = if entry.is_file() {
        entry
    } else {
        let mut found: Vec<PathBuf> = fs::read_dir(code_dir)
            .map_err(|e| WasmError::Io("reading the code package", e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "wasm"))
            .collect();
        match found.len() {
            1 => found.remove(0),
            0 => {
                return Err(WasmError::Invalid(
                    "code package: expected one .wasm component at its root, found none".into(),
                ))
            }
            n => {
                return Err(WasmError::Invalid(format!(
                    "code package: expected one .wasm component at its root, found {n}"
                )))
            }
        }
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let bytes = fs::read(&path).map_err(|e| WasmError::Io("reading the component", e))?;
    Ok((name, path, bytes))
}

/// Tells a core module or a non-wasm file apart from a component, with advice.
fn check_header(file: &str, bytes: &[u8]) -> Result<(), WasmError> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(WasmError::Invalid(format!(
            "{file}: expected a WebAssembly component (a file starting with \\0asm), got another kind of file"
        )));
    }
    if bytes[4..8] == [1, 0, 0, 0] {
        return Err(WasmError::Invalid(format!(
            "{file}: expected a WebAssembly component targeting wasi:http/proxy, got a core module (make it a component, e.g. with `wasm-tools component new`)"
        )));
    }
    Ok(())
}

/// A name beside `path` for writing it whole before renaming it there.
fn temporary(path: &Path) -> PathBuf {
    path.with_extension(format!("tmp.{}", std::process::id()))
}

fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = temporary(path);
    fs::write(&tmp, bytes)?;
    fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_modules_and_other_files_are_told_apart() {
        let e = check_header("m.wasm", b"\0asm\x01\0\0\0").unwrap_err();
        assert!(e.to_string().contains("got a core module"), "{e}");
        let e = check_header("x.wasm", b"hello world").unwrap_err();
        assert!(e.to_string().contains("another kind of file"), "{e}");
        check_header("c.wasm", b"\0asm\x0d\0\x01\0").unwrap();
    }

    #[test]
    fn the_one_wasm_file_of_a_package_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let e = read_component(dir.path()).unwrap_err();
        assert!(e.to_string().contains("found none"), "{e}");
        fs::write(dir.path().join("app.wasm"), b"a").unwrap();
        assert_eq!(read_component(dir.path()).unwrap().0, "app.wasm");
        fs::write(dir.path().join("other.wasm"), b"b").unwrap();
        let e = read_component(dir.path()).unwrap_err();
        assert!(e.to_string().contains("found 2"), "{e}");
        fs::write(dir.path().join(ENTRY), b"c").unwrap();
        assert_eq!(read_component(dir.path()).unwrap().2, b"c");
    }
}
