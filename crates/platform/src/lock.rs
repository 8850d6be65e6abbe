//! One server per data directory: `DATA_DIR/server.lock`, locked with
//! flock(2) for the life of the server and holding its pid. A second server
//! would share the first one's instance directories and cgroups (named after
//! the data directory) and kill its instances when it cleaned up at start.

use crate::PlatformError;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The lock file's name in the data directory.
pub const LOCK_FILE: &str = "server.lock";

/// The held lock; released when dropped (or when the process ends, however
/// it ends). Instances never inherit it: the file is opened close-on-exec.
#[derive(Debug)]
pub struct DataDirLock {
    dir: PathBuf,
    _file: File,
}

impl DataDirLock {
    /// Takes the lock of `data_dir` (created if missing), or says which
    /// process holds it.
    pub fn acquire(data_dir: &Path) -> Result<DataDirLock, PlatformError> {
        std::fs::create_dir_all(data_dir).map_err(|e| {
            PlatformError::internal(
                &format!("creating the data directory {}", data_dir.display()),
                e,
            )
        })?;
        let dir = data_dir
            .canonicalize()
            .unwrap_or_else(|_| data_dir.to_path_buf());
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|e| PlatformError::internal(&format!("opening {}", path.display()), e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                let holder = match text.trim().parse::<u32>() {
                    Ok(pid) => format!("process {pid}"),
                    Err(_) => "another process".to_string(),
                };
                return Err(PlatformError::Conflict(format!(
                    "the data directory {} is in use by another updraft server ({holder} holds {}); \
                     stop that server first, or use another data directory",
                    dir.display(),
                    path.display()
                )));
            }
            Err(TryLockError::Error(e)) => {
                return Err(PlatformError::internal(
                    &format!("locking {}", path.display()),
                    e,
                ))
            }
        }
        let pid = std::process::id().to_string();
        let written = file
            .set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| file.write_all(pid.as_bytes()));
        if let Err(e) = written {
            // The lock is what matters; the pid only makes the refusal clearer.
            tracing::warn!(file = %path.display(), error = %e, "could not write the pid into the lock file");
        }
        Ok(DataDirLock { dir, _file: file })
    }

    /// The data directory it locks (canonical).
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_dir_is_refused_naming_dir_and_pid() {
        let tmp = tempfile::tempdir().unwrap();
        let first = DataDirLock::acquire(tmp.path()).unwrap();
        let err = DataDirLock::acquire(tmp.path()).unwrap_err().to_string();
        let dir = tmp.path().canonicalize().unwrap();
        assert!(err.contains(&dir.display().to_string()), "{err}");
        assert!(
            err.contains(&format!("process {}", std::process::id())),
            "{err}"
        );
        drop(first);
        DataDirLock::acquire(tmp.path()).expect("free again once the first is gone");
    }
}
