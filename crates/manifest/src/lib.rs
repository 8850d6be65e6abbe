//! `updraft.toml`: reading it into resolved function configurations (SPEC §2),
//! running each function's `build` command, and packaging its code into a
//! deterministic zip. Every error names the file, the dotted key, what was
//! expected and what was found.

mod deps;
mod error;
mod load;
mod package;

use std::path::{Path, PathBuf};
use updraft_core::FunctionConfig;

pub use deps::dependency_warning;
pub use error::ManifestError;
pub use load::{DEFAULT_MEMORY_MB, DEFAULT_TIMEOUT_MS, DEFAULT_WASM_PER_INSTANCE};
pub use package::{package, run_build, Package, WASM_ENTRY};

/// The manifest's name inside a project directory.
pub const FILE_NAME: &str = "updraft.toml";

/// A loaded and checked manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    /// Absolute path of the manifest file.
    pub path: PathBuf,
    /// `[app] name`: the owner of every function listed here.
    pub app: String,
    /// Sorted by name.
    pub functions: Vec<FunctionSpec>,
}

/// One `[functions.NAME]` table, resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FunctionSpec {
    pub name: String,
    /// Defaults applied, validated.
    pub config: FunctionConfig,
    /// Absolute path of the code (directory, .zip or .wasm).
    pub code: PathBuf,
    pub code_kind: CodeKind,
    /// The `build` command, run by [`run_build`] with `sh -c`.
    pub build: Option<String>,
    /// Absolute path of the directory holding the manifest; `build` runs here
    /// when the code is a file or does not exist yet.
    pub root: PathBuf,
}

/// What `code` points at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CodeKind {
    /// A directory, zipped by [`package`].
    Dir,
    /// A ready zip archive, uploaded as is.
    Zip,
    /// A WebAssembly component, wrapped in a zip as `function.wasm`.
    Wasm,
}

impl Manifest {
    /// Reads and checks `path`; errors show `path` as given.
    pub fn load(path: &Path) -> Result<Manifest, ManifestError> {
        load::load(path)
    }

    /// Reads `DIR/updraft.toml`.
    pub fn load_dir(dir: &Path) -> Result<Manifest, ManifestError> {
        load::load(&dir.join(FILE_NAME))
    }

    /// Parses manifest text as if read from `path` (relative code paths are
    /// resolved against `path`'s directory, which must exist).
    pub fn parse_str(path: &Path, text: &str) -> Result<Manifest, ManifestError> {
        load::parse(path, text)
    }

    /// The function called `name`, if listed.
    pub fn function(&self, name: &str) -> Option<&FunctionSpec> {
        self.functions.iter().find(|f| f.name == name)
    }

    /// The directory holding the manifest.
    pub fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("/"))
    }
}
