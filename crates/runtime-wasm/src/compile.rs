//! Compiling a component in a helper process.
//!
//! Cranelift turns an uploaded component into machine code: the one step
//! of a deploy that takes untrusted input through a large optimising
//! compiler. The server does not do it in its own address space. It runs
//! its own binary again (`updraft compile-wasm`, [`helper_main`]) under
//! limits of CPU time and address space, at most one compile per core at
//! a time, and waits for the artifact. So a component built to make the
//! compiler take gigabytes or minutes costs a helper, never the server;
//! and the compiler's heap, tens of megabytes for one component that
//! the allocator would keep, goes back to the kernel when the helper exits,
//! which is what lets a server hold thousands of idle wasm functions in a
//! few kilobytes each.
//!
//! Compiled functions are also kept one by one ([`FunctionCache`],
//! `CACHE/functions`, Cranelift's incremental cache): components built
//! with the same toolchain share most of their code (wasi-libc, an
//! interpreter such as StarlingMonkey or CPython), and a function body
//! compiled once is not compiled again for another component.
//!
//! Library tests and embedders that cannot exec the server's binary leave
//! [`Compiler`] unset: [`crate::cache::Artifacts`] then compiles in
//! process, with the same engine settings.

use crate::WasmError;
use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Condvar, Mutex};

/// CPU seconds one compile may take (soft limit: SIGXCPU; the hard limit,
/// a few seconds later, is SIGKILL). The largest real components
/// (an interpreter built with componentize-py, ~40 MB) take under a minute
/// on one core.
pub const CPU_SECONDS: u64 = 600;

/// Address space of a helper. Cranelift compiles functions in parallel,
/// each thread with its own arenas; the largest real components stay well
/// under 2 GiB resident.
pub const ADDRESS_SPACE_BYTES: u64 = 8 << 30;

/// The most of a helper's stderr kept for an error message.
const STDERR_BYTES: usize = 4096;

/// Exit status of a helper whose input is not a valid component.
pub const EXIT_INVALID: i32 = 2;
/// Exit status of a helper whose engine differs from the server's.
pub const EXIT_ENGINE_MISMATCH: i32 = 3;

/// How the server runs its compile helper.
pub struct Compiler {
    program: PathBuf,
    args: Vec<OsString>,
    /// Compiles running now, at most [`Compiler::parallel`].
    running: Mutex<usize>,
    freed: Condvar,
    parallel: usize,
}

impl Compiler {
    /// A helper run as `PROGRAM ARGS... --engine-key KEY --function-cache
    /// DIR INPUT OUTPUT`; the program must call [`helper_main`] with them.
    pub fn new(program: impl Into<PathBuf>, args: &[&str]) -> Compiler {
        Compiler {
            program: program.into(),
            args: args.iter().map(OsString::from).collect(),
            running: Mutex::new(0),
            freed: Condvar::new(),
            parallel: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }

    /// This binary again (`/proc/self/exe`: the file that is running, even
    /// if the one at its path was replaced since) with `args`.
    pub fn this_binary(args: &[&str]) -> Compiler {
        Compiler::new("/proc/self/exe", args)
    }

    /// Compiles `input` (the component `file` of a package) into `output`
    /// for an engine whose key is `engine_key`. Blocking.
    pub(crate) fn compile(
        &self,
        file: &str,
        input: &Path,
        output: &Path,
        engine_key: &str,
        functions: &Path,
    ) -> Result<(), WasmError> {
        let (_turn, alone) = self.turn();
        let mut command = Command::new(&self.program);
        command.args(&self.args);
        if !alone {
            // Other compiles run: one thread each keeps them from
            // contending for the same cores.
            command.arg("--one-thread");
        }
        command
            .arg("--engine-key")
            .arg(engine_key)
            .arg("--function-cache")
            .arg(functions)
            .arg("--parent")
            .arg(std::process::id().to_string())
            .arg(input)
            .arg(output)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // No code between fork and exec (the helper sets its parent-death
        // signal itself): the standard library can then spawn with
        // posix_spawn, which does not copy the server's page tables (with
        // the pooling allocator's reservations and thousands of functions
        // loaded, a fork and the exec after it cost more than a compile
        // whose functions are cached).
        let mut child = command
            .spawn()
            .map_err(|e| WasmError::Io("starting the wasm compile helper", e))?;
        let mut stderr = Vec::new();
        if let Some(pipe) = child.stderr.take() {
            // Read to the end (so a chatty helper never blocks on a full
            // pipe), keep the start.
            let mut pipe = pipe;
            let mut buf = [0u8; 8192];
            loop {
                match pipe.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let room = STDERR_BYTES.saturating_sub(stderr.len());
                        stderr.extend_from_slice(&buf[..n.min(room)]);
                    }
                }
            }
        }
        let status = child
            .wait()
            .map_err(|e| WasmError::Io("waiting for the wasm compile helper", e))?;
        let said = String::from_utf8_lossy(&stderr).trim().to_string();
        use std::os::unix::process::ExitStatusExt;
        match (status.code(), status.signal()) {
            (Some(0), _) => Ok(()),
            (Some(EXIT_INVALID), _) => Err(WasmError::Invalid(format!(
                "{file}: not a valid WebAssembly component: {said}"
            ))),
            (_, Some(libc::SIGXCPU)) => Err(WasmError::Invalid(format!(
                "{file}: compiling the component took more than the {CPU_SECONDS} s of CPU a compile may take"
            ))),
            (_, Some(libc::SIGKILL)) => Err(WasmError::Invalid(format!(
                "{file}: compiling the component was stopped: it took more than the {CPU_SECONDS} s of CPU or the memory a compile may take"
            ))),
            (_, Some(sig)) if said.contains("memory allocation") || sig == libc::SIGABRT => {
                Err(WasmError::Invalid(format!(
                    "{file}: compiling the component needed more than the {} GiB of memory a compile may take",
                    ADDRESS_SPACE_BYTES >> 30
                )))
            }
            (code, sig) => Err(WasmError::Engine(format!(
                "the compile helper failed ({}){}",
                match (code, sig) {
                    (Some(c), _) => format!("exit status {c}"),
                    (_, Some(s)) => format!("signal {s}"),
                    _ => "no status".into(),
                },
                if said.is_empty() { String::new() } else { format!(": {said}") }
            ))),
        }
    }

    /// Waits for a free core; true when no other compile runs.
    fn turn(&self) -> (Turn<'_>, bool) {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        while *running >= self.parallel {
            running = self.freed.wait(running).unwrap_or_else(|e| e.into_inner());
        }
        *running += 1;
        (Turn(self), *running == 1)
    }
}

struct Turn<'a>(&'a Compiler);

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let mut running = self.0.running.lock().unwrap_or_else(|e| e.into_inner());
        *running -= 1;
        self.0.freed.notify_one();
    }
}

/// Ends this process with SIGKILL when the server thread that started it
/// goes away, or now if the server (`parent`) is already gone.
fn die_with_parent(parent: u32) -> Result<(), HelperError> {
    #[allow(unsafe_code)]
    // SAFETY: prctl(PR_SET_PDEATHSIG) and getppid touch no memory of ours.
    unsafe {
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
            return Err(HelperError::Io(
                "setting the parent-death signal".into(),
                std::io::Error::last_os_error(),
            ));
        }
        // The server died before the signal was set: nobody waits for this.
        if libc::getppid() as u32 != parent {
            std::process::exit(1);
        }
    }
    Ok(())
}

/// Why a helper failed; [`HelperError::exit_code`] tells the server which.
#[derive(Debug, thiserror::Error)]
pub enum HelperError {
    #[error("{0}")]
    Invalid(String),
    #[error("this binary's wasm engine ({ours}) is not the server's ({theirs}): the server's binary was replaced while it ran; restart it")]
    EngineMismatch { ours: String, theirs: String },
    #[error("{0}: {1}")]
    Io(String, #[source] std::io::Error),
    #[error("{0}")]
    Other(String),
}

impl HelperError {
    pub fn exit_code(&self) -> i32 {
        match self {
            HelperError::Invalid(_) => EXIT_INVALID,
            HelperError::EngineMismatch { .. } => EXIT_ENGINE_MISMATCH,
            HelperError::Io(..) | HelperError::Other(_) => 1,
        }
    }
}

/// The helper's side: limits itself, builds an engine with the server's
/// settings and the function cache `functions`, checks that its key is
/// `engine_key`, compiles `input` and writes the artifact to `output`.
pub fn helper_main(
    engine_key: &str,
    functions: &Path,
    parent: Option<u32>,
    one_thread: bool,
    input: &Path,
    output: &Path,
) -> Result<(), HelperError> {
    if let Some(parent) = parent {
        die_with_parent(parent)?;
    }
    limit(libc::RLIMIT_CORE, 0, 0)?;
    limit(libc::RLIMIT_CPU, CPU_SECONDS, CPU_SECONDS + 5)?;
    limit(libc::RLIMIT_AS, ADDRESS_SPACE_BYTES, ADDRESS_SPACE_BYTES)?;
    let cache = FunctionCache::open(functions)
        .map_err(|e| HelperError::Io(format!("opening {}", functions.display()), e))?;
    let engine = crate::engine::compile_only(Some(cache), !one_thread)
        .map_err(|e| HelperError::Other(format!("wasm engine: {e:#}")))?;
    let ours = crate::engine::key(&engine);
    if ours != engine_key {
        return Err(HelperError::EngineMismatch {
            ours,
            theirs: engine_key.to_string(),
        });
    }
    let bytes = std::fs::read(input)
        .map_err(|e| HelperError::Io(format!("reading {}", input.display()), e))?;
    let compiled = engine
        .precompile_component(&bytes)
        .map_err(|e| HelperError::Invalid(format!("{e:#}")))?;
    drop(bytes);
    std::fs::write(output, &compiled)
        .map_err(|e| HelperError::Io(format!("writing {}", output.display()), e))
}

/// Compiled functions on disk, by the hash of their body and the compiler's
/// settings (Cranelift computes the key and checks a value against it):
/// `DIR/{first two hex digits}/{key in hex}`, written whole then renamed.
/// Only the server and its helpers can write DIR (it is below the 0700
/// artifact cache). An entry that does not read back is compiled again.
#[derive(Debug)]
pub struct FunctionCache {
    dir: PathBuf,
}

impl FunctionCache {
    pub fn open(dir: &Path) -> std::io::Result<std::sync::Arc<FunctionCache>> {
        std::fs::create_dir_all(dir)?;
        Ok(std::sync::Arc::new(FunctionCache {
            dir: dir.to_path_buf(),
        }))
    }

    fn path(&self, key: &[u8]) -> Option<PathBuf> {
        // Cranelift's keys are sha256 digests; anything else is not ours.
        if key.is_empty() || key.len() > 64 {
            return None;
        }
        let name = hex::encode(key);
        Some(self.dir.join(&name[..2]).join(name))
    }
}

impl wasmtime::CacheStore for FunctionCache {
    fn get(&self, key: &[u8]) -> Option<std::borrow::Cow<'_, [u8]>> {
        std::fs::read(self.path(key)?).ok().map(Into::into)
    }

    fn insert(&self, key: &[u8], value: Vec<u8>) -> bool {
        let Some(path) = self.path(key) else {
            return false;
        };
        let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
        let written = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(&tmp, &value))
            .and_then(|()| std::fs::rename(&tmp, &path));
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written.is_ok()
    }
}

/// Lowers a limit (never raises one the server was given lower).
#[allow(unsafe_code)]
fn limit(resource: libc::__rlimit_resource_t, soft: u64, hard: u64) -> Result<(), HelperError> {
    let mut now = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct we pass, which we own.
    if unsafe { libc::getrlimit(resource, &mut now) } != 0 {
        return Err(HelperError::Io(
            format!("reading the compile helper's limits (resource {resource})"),
            std::io::Error::last_os_error(),
        ));
    }
    let hard = hard.min(now.rlim_max);
    let l = libc::rlimit {
        rlim_cur: soft.min(hard),
        rlim_max: hard,
    };
    // SAFETY: setrlimit only reads the struct we pass, which we own.
    if unsafe { libc::setrlimit(resource, &l) } != 0 {
        return Err(HelperError::Io(
            format!("limiting the compile helper (resource {resource})"),
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in helper: a shell running `script` in place of the compiler
    /// (the real one is the `updraft` binary, driven by tests/wasm.rs).
    fn run(script: &str) -> Result<(), WasmError> {
        let dir = tempfile::tempdir().unwrap();
        let compiler = Compiler::new("/bin/sh", &["-c", script, "helper"]);
        compiler.compile(
            "fn.wasm",
            &dir.path().join("in.wasm"),
            &dir.path().join("out.cwasm"),
            "0123",
            &dir.path().join("functions"),
        )
    }

    #[test]
    fn the_helper_gets_the_engine_key_caches_input_and_output() {
        let dir = tempfile::tempdir().unwrap();
        let seen = dir.path().join("args");
        let script = format!("echo \"$@\" > {}", seen.display());
        let compiler = Compiler::new("/bin/sh", &["-c", &script, "helper"]);
        compiler
            .compile(
                "fn.wasm",
                Path::new("/a/in.wasm"),
                Path::new("/b/out"),
                "k1",
                Path::new("/c/f"),
            )
            .unwrap();
        let args = std::fs::read_to_string(seen).unwrap();
        assert_eq!(
            args.trim(),
            format!(
                "--engine-key k1 --function-cache /c/f --parent {} /a/in.wasm /b/out",
                std::process::id()
            )
        );
    }

    #[test]
    fn a_compile_beside_another_runs_on_one_thread() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        // The first helper waits for `go`, which the test makes once the
        // second has started (so the two overlap).
        let script = format!(
            "if mkdir {d}/first 2>/dev/null; then echo \"$@\" > {d}/args1; \
             while [ ! -e {d}/go ]; do sleep 0.01; done; \
             else echo \"$@\" > {d}/args2; fi"
        );
        let mut compiler = Compiler::new("/bin/sh", &["-c", &script, "helper"]);
        compiler.parallel = 2;
        let compiler = std::sync::Arc::new(compiler);
        let compile = |c: std::sync::Arc<Compiler>| {
            std::thread::spawn(move || {
                c.compile(
                    "fn.wasm",
                    Path::new("/i"),
                    Path::new("/o"),
                    "k",
                    Path::new("/f"),
                )
            })
        };
        let first = compile(compiler.clone());
        while !dir.path().join("args1").exists() {
            std::thread::yield_now();
        }
        compile(compiler.clone()).join().unwrap().unwrap();
        std::fs::write(dir.path().join("go"), "").unwrap();
        first.join().unwrap().unwrap();
        let args1 = std::fs::read_to_string(dir.path().join("args1")).unwrap();
        let args2 = std::fs::read_to_string(dir.path().join("args2")).unwrap();
        assert!(!args1.contains("--one-thread"), "alone: {args1}");
        assert!(
            args2.starts_with("--one-thread "),
            "beside another: {args2}"
        );
    }

    #[test]
    fn an_invalid_component_is_the_uploaders_error_with_the_helpers_words() {
        let e = run("echo 'bad section at offset 8' >&2; exit 2").unwrap_err();
        assert!(matches!(e, WasmError::Invalid(_)), "{e:?}");
        assert_eq!(
            e.to_string(),
            "fn.wasm: not a valid WebAssembly component: bad section at offset 8"
        );
    }

    #[test]
    fn a_helper_stopped_by_its_limits_names_the_limit() {
        let e = run("kill -XCPU $$").unwrap_err();
        assert!(matches!(e, WasmError::Invalid(_)), "{e:?}");
        assert!(e.to_string().contains("s of CPU a compile may take"), "{e}");
        let e = run("echo 'memory allocation of 4294967296 bytes failed' >&2; kill -ABRT $$")
            .unwrap_err();
        assert!(e.to_string().contains("GiB of memory"), "{e}");
    }

    #[test]
    fn any_other_failure_is_the_servers_with_what_the_helper_said() {
        let e = run("echo 'engine mismatch' >&2; exit 3").unwrap_err();
        assert!(matches!(e, WasmError::Engine(_)), "{e:?}");
        assert!(
            e.to_string().contains("(exit status 3): engine mismatch"),
            "{e}"
        );
        let e = run("head -c 100000 /dev/zero | tr '\\0' x >&2; exit 1").unwrap_err();
        assert!(
            e.to_string().len() < STDERR_BYTES + 200,
            "stderr is cut short"
        );
    }

    #[test]
    fn the_function_cache_keeps_what_it_is_given_under_digest_keys() {
        use wasmtime::CacheStore;
        let dir = tempfile::tempdir().unwrap();
        let cache = FunctionCache::open(&dir.path().join("f")).unwrap();
        let key = [7u8; 32];
        assert!(cache.get(&key).is_none());
        assert!(cache.insert(&key, b"code".to_vec()));
        assert_eq!(cache.get(&key).as_deref(), Some(&b"code"[..]));
        assert!(dir.path().join("f/07").join("07".repeat(32)).is_file());
        // Keys that are not digests are refused, not turned into paths.
        assert!(!cache.insert(&[], b"x".to_vec()));
        assert!(!cache.insert(&[1u8; 65], b"x".to_vec()));
        assert!(cache.get(&[1u8; 65]).is_none());
    }
}
