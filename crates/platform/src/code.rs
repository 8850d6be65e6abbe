//! Code packages: zip blobs kept by content hash, unpacked once per package
//! into a directory the server owns and functions can only read.

use crate::PlatformError;
use sha2::{Digest, Sha256};
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use updraft_core::limits::{
    UNPACKED_CODE_BYTES as MAX_UNZIPPED_BYTES, UPLOAD_ZIP_BYTES as MAX_ZIP_BYTES,
};

pub struct CodeStore {
    blobs: PathBuf,
    unpacked: PathBuf,
    staging: PathBuf,
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn valid_sha(sha: &str) -> bool {
    sha.len() == 64
        && sha
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

impl CodeStore {
    /// Prepares `DATA_DIR/blobs`, `DATA_DIR/code` and `DATA_DIR/staging`,
    /// removing half-made staging directories and code directories of the
    /// earlier per-function layout (they are unpacked again from the blobs).
    pub fn new(data_dir: &Path) -> io::Result<CodeStore> {
        use std::os::unix::fs::PermissionsExt;
        let blobs = data_dir.join("blobs");
        let unpacked = data_dir.join("code");
        let staging = data_dir.join("staging");
        let _ = fs::remove_dir_all(&staging);
        for dir in [&blobs, &unpacked, &staging] {
            fs::create_dir_all(dir)?;
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
        }
        for e in fs::read_dir(&unpacked)?.flatten() {
            let name = e.file_name();
            // Earlier layouts: per-function directories, a completion marker
            // inside the code, files owned by the function's uid.
            let published = name.to_str().is_some_and(valid_sha)
                && !e.path().join(".updraft-complete").exists()
                && e.metadata().is_ok_and(|m| {
                    use std::os::unix::fs::MetadataExt;
                    m.uid() == current_uid()
                });
            if !published {
                let _ = fs::remove_dir_all(e.path());
            }
        }
        Ok(CodeStore {
            blobs,
            unpacked,
            staging,
        })
    }

    fn blob(&self, sha: &str) -> PathBuf {
        self.blobs.join(format!("{sha}.zip"))
    }

    pub fn has(&self, sha: &str) -> bool {
        valid_sha(sha) && self.blob(sha).is_file()
    }

    /// Checks and keeps a zip; returns its sha256.
    pub fn put(&self, bytes: &[u8]) -> Result<String, PlatformError> {
        let sha = sha256_hex(bytes);
        self.put_hashed(bytes, &sha)?;
        Ok(sha)
    }

    /// Keeps a zip whose sha256 the caller has computed already. The zip is
    /// parsed once, by unpacking it: a package that does not unpack is
    /// refused here, and deploys and first invocations find it ready.
    pub fn put_hashed(&self, bytes: &[u8], sha: &str) -> Result<(), PlatformError> {
        if bytes.len() > MAX_ZIP_BYTES {
            return Err(PlatformError::TooLarge(format!(
                "code package is {} bytes; the limit is {MAX_ZIP_BYTES} bytes",
                bytes.len()
            )));
        }
        self.unpack(sha, bytes).map_err(|e| match e {
            PlatformError::InvalidParameter(m) => {
                PlatformError::InvalidParameter(format!("code package: {m}"))
            }
            other => other,
        })?;
        let path = self.blob(sha);
        if !path.exists() {
            // A name of its own: two uploads of the same package at once
            // (parallel deploys sharing code) must not write one file.
            let tmp = self
                .blobs
                .join(format!(".{sha}.{}", uuid::Uuid::new_v4().simple()));
            let written = fs::write(&tmp, bytes).and_then(|()| fs::rename(&tmp, &path));
            if let Err(e) = written {
                let _ = fs::remove_file(&tmp);
                if !path.is_file() {
                    return Err(PlatformError::internal("writing code", e));
                }
            }
        }
        Ok(())
    }

    /// The size of a kept zip, in bytes.
    pub fn size(&self, sha: &str) -> Result<i64, PlatformError> {
        fs::metadata(self.blob(sha))
            .map(|m| m.len() as i64)
            .map_err(|_| {
                PlatformError::NotFound(format!("code package {sha} is not on this server"))
            })
    }

    pub fn read(&self, sha: &str) -> Result<Vec<u8>, PlatformError> {
        fs::read(self.blob(sha)).map_err(|_| {
            PlatformError::NotFound(format!("code package {sha} is not on this server"))
        })
    }

    /// The unpacked directory of `sha`, made on first use: owned by the
    /// server, read-only to everyone else (instances see it through a
    /// read-only bind mount at `/var/task`).
    ///
    /// The package is unpacked in a staging directory under `DATA_DIR/staging`
    /// (mode 0700: no function can reach it, so nothing can be swapped under
    /// the server while it writes), then published with one rename. A failed
    /// unpack leaves nothing behind.
    pub fn unpacked(&self, sha: &str) -> Result<PathBuf, PlatformError> {
        if !valid_sha(sha) {
            return Err(PlatformError::NotFound(format!(
                "code package {sha} is not on this server"
            )));
        }
        // Published by one rename of a complete tree: there means complete.
        if self.unpacked.join(sha).is_dir() {
            return Ok(self.unpacked.join(sha));
        }
        let bytes = self.read(sha)?;
        self.unpack(sha, &bytes).map_err(|e| match e {
            PlatformError::InvalidParameter(m) => {
                PlatformError::InvalidParameter(format!("code package {sha}: {m}"))
            }
            other => other,
        })
    }

    /// Unpacks `bytes` as package `sha` (unless it is there already) in a
    /// staging directory, then publishes it with one rename.
    fn unpack(&self, sha: &str, bytes: &[u8]) -> Result<PathBuf, PlatformError> {
        let dir = self.unpacked.join(sha);
        if dir.is_dir() {
            return Ok(dir);
        }
        let staging = self
            .staging
            .join(format!("{sha}.{}", uuid::Uuid::new_v4().simple()));
        let unpacked =
            unzip(bytes, &staging).map_err(|e| PlatformError::InvalidParameter(e.to_string()));
        if let Err(e) = unpacked {
            let _ = fs::remove_dir_all(&staging);
            return Err(e);
        }
        match fs::rename(&staging, &dir) {
            Ok(()) => Ok(dir),
            // Another invocation published it first.
            Err(_) if dir.is_dir() => {
                let _ = fs::remove_dir_all(&staging);
                Ok(dir)
            }
            Err(e) => {
                let _ = fs::remove_dir_all(&staging);
                Err(PlatformError::internal("unpacking code", e))
            }
        }
    }
}

fn current_uid() -> u32 {
    // SAFETY: geteuid has no preconditions.
    #[allow(unsafe_code)]
    unsafe {
        libc::geteuid()
    }
}

/// Unpacks a zip into `dest` (which must not exist): no paths outside
/// `dest`, no symbolic links (entries that are links are refused, and no
/// link is ever followed: files are created with `O_EXCL | O_NOFOLLOW`), a
/// size cap against zip bombs. Files are 0644, or 0755 when the package
/// marks them executable (so `bootstrap` stays executable); directories 0755.
fn unzip(bytes: &[u8], dest: &Path) -> io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let mut archive = zip::ZipArchive::new(io::Cursor::new(bytes))
        .map_err(|e| io::Error::other(format!("expected a zip file ({e})")))?;
    let mut dirs = fs::DirBuilder::new();
    dirs.mode(0o755);
    dirs.create(dest)?;
    let mut total = 0u64;
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).map_err(io::Error::other)?;
        let Some(rel) = entry.enclosed_name() else {
            return Err(io::Error::other(format!(
                "entry {:?} points outside the package",
                entry.name()
            )));
        };
        let path = dest.join(&rel);
        let mode = entry.unix_mode();
        if mode.is_some_and(|m| m & 0o170000 == 0o120000) {
            return Err(io::Error::other(format!(
                "entry {:?} is a symbolic link; packages may not hold links",
                entry.name()
            )));
        }
        // Parents first, each checked to be a real directory (never a link).
        let mut parent = dest.to_path_buf();
        let parts: Vec<_> = rel.components().collect();
        let dirs_in_path = if entry.is_dir() {
            parts.len()
        } else {
            parts.len().saturating_sub(1)
        };
        for part in &parts[..dirs_in_path] {
            parent.push(part);
            match fs::symlink_metadata(&parent) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    return Err(io::Error::other(format!(
                        "entry {:?}: {} is a file and a directory",
                        entry.name(),
                        part.as_os_str().to_string_lossy()
                    )))
                }
                Err(_) => dirs.create(&parent)?,
            }
        }
        if entry.is_dir() {
            continue;
        }
        let perm = if mode.unwrap_or(0o644) & 0o111 != 0 {
            0o755
        } else {
            0o644
        };
        let mut out = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(perm)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map_err(|e| io::Error::new(e.kind(), format!("entry {:?}: {e}", entry.name())))?;
        let limit = MAX_UNZIPPED_BYTES.saturating_sub(total) + 1;
        let copied = io::copy(&mut (&mut entry).take(limit), &mut out)?;
        total += copied;
        if total > MAX_UNZIPPED_BYTES {
            return Err(io::Error::other(format!(
                "unzipped code exceeds {MAX_UNZIPPED_BYTES} bytes"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn zip_of(entries: &[(&str, Option<u32>, &[u8])]) -> Vec<u8> {
        let mut buf = io::Cursor::new(Vec::new());
        let mut w = zip::ZipWriter::new(&mut buf);
        for (name, mode, body) in entries {
            let mut opts = zip::write::SimpleFileOptions::default();
            if let Some(m) = mode {
                opts = opts.unix_permissions(*m);
            }
            if name.ends_with('/') {
                w.add_directory(*name, opts).unwrap();
            } else if mode.is_some_and(|m| m & 0o170000 == 0o120000) {
                w.add_symlink(*name, std::str::from_utf8(body).unwrap(), opts)
                    .unwrap();
            } else {
                w.start_file(*name, opts).unwrap();
                w.write_all(body).unwrap();
            }
        }
        w.finish().unwrap();
        buf.into_inner()
    }

    #[test]
    fn unpacks_into_a_read_only_tree_the_server_owns() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let tmp = tempfile::tempdir().unwrap();
        let store = CodeStore::new(tmp.path()).unwrap();
        let zip = zip_of(&[
            ("bootstrap", Some(0o100777), b"#!/bin/sh\n"),
            ("lib/a.py", Some(0o100666), b"x = 1\n"),
        ]);
        let sha = store.put(&zip).unwrap();
        let dir = store.unpacked(&sha).unwrap();
        assert_eq!(dir, tmp.path().join("code").join(&sha));
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(&dir.join("bootstrap")), 0o755);
        assert_eq!(mode(&dir.join("lib/a.py")), 0o644);
        assert_eq!(mode(&dir.join("lib")), 0o755);
        assert_eq!(fs::metadata(&dir).unwrap().uid(), current_uid());
        assert_eq!(mode(tmp.path().join("staging").as_path()), 0o700);
        // The second call finds it published.
        assert_eq!(store.unpacked(&sha).unwrap(), dir);
        assert_eq!(fs::read_dir(tmp.path().join("staging")).unwrap().count(), 0);
    }

    #[test]
    fn the_same_package_uploaded_at_once_is_kept_once_and_every_upload_succeeds() {
        let zip = std::sync::Arc::new(zip_of(&[("app.py", None, b"def handler(e, c): pass\n")]));
        // Rounds of eight uploads released together, each round on a fresh
        // store: a shared temporary name loses a rename in most of them.
        for _ in 0..20 {
            let tmp = tempfile::tempdir().unwrap();
            let store = std::sync::Arc::new(CodeStore::new(tmp.path()).unwrap());
            let barrier = std::sync::Arc::new(std::sync::Barrier::new(8));
            let uploads: Vec<_> = (0..8)
                .map(|_| {
                    let (store, zip, barrier) = (store.clone(), zip.clone(), barrier.clone());
                    std::thread::spawn(move || {
                        barrier.wait();
                        store.put(&zip)
                    })
                })
                .collect();
            let shas: Vec<String> = uploads
                .into_iter()
                .map(|t| t.join().unwrap().expect("every upload succeeds"))
                .collect();
            assert!(shas.windows(2).all(|w| w[0] == w[1]));
            assert!(store.has(&shas[0]));
            let left: Vec<_> = fs::read_dir(tmp.path().join("blobs"))
                .unwrap()
                .flatten()
                .map(|e| e.file_name())
                .collect();
            assert_eq!(
                left.len(),
                1,
                "only the package, no temporary file: {left:?}"
            );
        }
    }

    #[test]
    fn refuses_links_escapes_and_leaves_nothing_behind() {
        let tmp = tempfile::tempdir().unwrap();
        let store = CodeStore::new(tmp.path()).unwrap();
        for (zip, expect) in [
            (
                zip_of(&[("evil", Some(0o120777), b"/etc/shadow")]),
                "symbolic link",
            ),
            (zip_of(&[("../escape", None, b"x")]), "outside the package"),
            (
                zip_of(&[("a", None, b"x"), ("a/b", None, b"y")]),
                "a file and a directory",
            ),
        ] {
            // A zip the writer produced may already be refused by `put`.
            let Ok(sha) = store.put(&zip) else { continue };
            let err = store.unpacked(&sha).unwrap_err().to_string();
            assert!(err.contains(expect), "{expect}: {err}");
            assert!(!tmp.path().join("code").join(&sha).exists());
            assert_eq!(fs::read_dir(tmp.path().join("staging")).unwrap().count(), 0);
        }
    }

    #[test]
    fn code_of_the_old_per_function_layout_is_removed_at_start() {
        let tmp = tempfile::tempdir().unwrap();
        let old = tmp.path().join("code/greet/abc");
        fs::create_dir_all(&old).unwrap();
        fs::create_dir_all(tmp.path().join("staging/half")).unwrap();
        CodeStore::new(tmp.path()).unwrap();
        assert!(!tmp.path().join("code/greet").exists());
        assert!(!tmp.path().join("staging/half").exists());
    }
}
