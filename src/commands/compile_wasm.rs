//! `updraft compile-wasm` (hidden): the helper process in which the server
//! compiles an uploaded WebAssembly component (updraft-runtime-wasm's
//! `compile` module says why). Not for people: the server runs it.

use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// The server engine's key: the helper refuses to compile for another.
    #[arg(long)]
    engine_key: String,
    /// Compiled functions to reuse and add to (Cranelift's incremental cache).
    #[arg(long)]
    function_cache: PathBuf,
    /// The server's pid: the helper dies with the thread that started it.
    #[arg(long)]
    parent: Option<u32>,
    /// Compile on this thread only (other compiles run beside this one).
    #[arg(long)]
    one_thread: bool,
    /// The component.
    input: PathBuf,
    /// Where the compiled artifact goes.
    output: PathBuf,
}

/// Runs before any async runtime or thread exists: the helper is one
/// thread (and Cranelift's) under the limits it sets itself.
pub fn run(args: Args) -> ExitCode {
    match updraft_runtime_wasm::compile::helper_main(
        &args.engine_key,
        &args.function_cache,
        args.parent,
        args.one_thread,
        &args.input,
        &args.output,
    ) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(e.exit_code() as u8)
        }
    }
}
