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

/// How long a lock whose server is gone may still be held by that server's
/// dying children before it counts as held.
const DEAD_HOLDER_WAIT: std::time::Duration = std::time::Duration::from_secs(10);
const DEAD_HOLDER_POLL: std::time::Duration = std::time::Duration::from_millis(20);

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
        let mut waited = std::time::Duration::ZERO;
        Self::acquire_with(data_dir, move || {
            if waited >= DEAD_HOLDER_WAIT {
                return false;
            }
            std::thread::sleep(DEAD_HOLDER_POLL);
            waited += DEAD_HOLDER_POLL;
            true
        })
    }

    /// [`DataDirLock::acquire`], calling `wait` while the lock is held for a
    /// server that is gone: true to try again, false to give up.
    fn acquire_with(
        data_dir: &Path,
        mut wait: impl FnMut() -> bool,
    ) -> Result<DataDirLock, PlatformError> {
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
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) => {
                    let mut text = String::new();
                    let _ = file.rewind().and_then(|()| file.read_to_string(&mut text));
                    let holder = text.trim().parse::<u32>().ok();
                    // The server that took the lock is gone, yet the lock is
                    // held: a child it forked before being killed has not
                    // exec'd or died yet (it dies with it, by PDEATHSIG).
                    // That takes moments; wait for it, a bounded time.
                    let gone =
                        holder.is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists());
                    if gone && wait() {
                        continue;
                    }
                    let holder = match holder {
                        Some(pid) => format!("process {pid}"),
                        None => "another process".to_string(),
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

    /// A lock held through another open file (as a forked child holds it),
    /// the file naming `pid` as the server.
    fn held_by(dir: &Path, pid: u32) -> File {
        let held = File::create(dir.join(LOCK_FILE)).unwrap();
        held.lock().unwrap();
        std::fs::write(dir.join(LOCK_FILE), pid.to_string()).unwrap();
        held
    }

    #[test]
    fn a_lock_left_to_the_children_of_a_dead_server_is_waited_for() {
        let tmp = tempfile::tempdir().unwrap();
        let mut gone = std::process::Command::new("/bin/true").spawn().unwrap();
        let gone_pid = gone.id();
        gone.wait().unwrap();
        let mut held = Some(held_by(tmp.path(), gone_pid));
        let mut waits = 0;
        // The child lets go while the new server waits.
        let lock = DataDirLock::acquire_with(tmp.path(), || {
            waits += 1;
            held.take();
            true
        });
        lock.expect("taken once the dead server's child let go");
        assert_eq!(waits, 1);
        // Held for good by a dead server's child: refused once waiting ends.
        let tmp = tempfile::tempdir().unwrap();
        let _held = held_by(tmp.path(), gone_pid);
        let mut waits = 0;
        let err = DataDirLock::acquire_with(tmp.path(), || {
            waits += 1;
            waits < 3
        })
        .unwrap_err();
        assert_eq!(waits, 3);
        assert!(
            err.to_string().contains(&format!("process {gone_pid}")),
            "{err}"
        );
    }

    #[test]
    fn a_lock_of_a_live_server_is_refused_without_waiting() {
        let tmp = tempfile::tempdir().unwrap();
        let _held = held_by(tmp.path(), std::process::id());
        let err = DataDirLock::acquire_with(tmp.path(), || panic!("waited for a live server"));
        assert!(err.is_err());
    }
}
