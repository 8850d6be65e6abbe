//! Code packages: zip blobs kept by content hash, unpacked once per function
//! into a directory only that function's instances can read.

use crate::PlatformError;
use sha2::{Digest, Sha256};
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// Largest accepted upload, zipped (Lambda: 50 MB direct, 250 MB unzipped).
pub const MAX_ZIP_BYTES: usize = 250 * 1024 * 1024;
/// Largest unzipped code size.
pub const MAX_UNZIPPED_BYTES: u64 = 250 * 1024 * 1024;

pub struct CodeStore {
    blobs: PathBuf,
    unpacked: PathBuf,
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
    pub fn new(data_dir: &Path) -> io::Result<CodeStore> {
        use std::os::unix::fs::PermissionsExt;
        let blobs = data_dir.join("blobs");
        let unpacked = data_dir.join("code");
        fs::create_dir_all(&blobs)?;
        fs::create_dir_all(&unpacked)?;
        fs::set_permissions(&blobs, fs::Permissions::from_mode(0o700))?;
        // Instances traverse to their own function's directory, nothing more.
        fs::set_permissions(&unpacked, fs::Permissions::from_mode(0o711))?;
        Ok(CodeStore { blobs, unpacked })
    }

    fn blob(&self, sha: &str) -> PathBuf {
        self.blobs.join(format!("{sha}.zip"))
    }

    pub fn has(&self, sha: &str) -> bool {
        valid_sha(sha) && self.blob(sha).is_file()
    }

    /// Checks and keeps a zip; returns its sha256.
    pub fn put(&self, bytes: &[u8]) -> Result<String, PlatformError> {
        if bytes.len() > MAX_ZIP_BYTES {
            return Err(PlatformError::TooLarge(format!(
                "code package is {} bytes; the limit is {MAX_ZIP_BYTES} bytes",
                bytes.len()
            )));
        }
        check_zip(bytes)?;
        let sha = sha256_hex(bytes);
        let path = self.blob(&sha);
        if !path.exists() {
            let tmp = self.blobs.join(format!(".{sha}.{}", std::process::id()));
            fs::write(&tmp, bytes).map_err(|e| PlatformError::internal("writing code", e))?;
            fs::rename(&tmp, &path).map_err(|e| PlatformError::internal("writing code", e))?;
        }
        Ok(sha)
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

    /// The unpacked directory of `sha` for `function`, made on first use.
    pub fn unpacked(
        &self,
        function: &str,
        sha: &str,
        uid: Option<u32>,
    ) -> Result<PathBuf, PlatformError> {
        let dir = self.unpacked.join(function).join(sha);
        if dir.join(".updraft-complete").exists() {
            return Ok(dir);
        }
        let bytes = self.read(sha)?;
        let staging = self
            .unpacked
            .join(function)
            .join(format!(".{sha}.{}", uuid::Uuid::new_v4().simple()));
        unzip(&bytes, &staging)
            .map_err(|e| PlatformError::InvalidParameter(format!("code package {sha}: {e}")))?;
        fs::write(staging.join(".updraft-complete"), b"")
            .map_err(|e| PlatformError::internal("unpacking code", e))?;
        match fs::rename(&staging, &dir) {
            Ok(()) => {}
            // Another invocation unpacked it first.
            Err(_) if dir.join(".updraft-complete").exists() => {
                let _ = fs::remove_dir_all(&staging);
            }
            Err(e) => return Err(PlatformError::internal("unpacking code", e)),
        }
        let fn_dir = self.unpacked.join(function);
        updraft_runtime_process::sandbox::secure_code_dir(&fn_dir, uid)
            .map_err(|e| PlatformError::internal("securing code directory", e))?;
        Ok(dir)
    }

    /// Removes a function's unpacked code (its blobs stay: versions may share them).
    pub fn remove_function(&self, function: &str) {
        let _ = fs::remove_dir_all(self.unpacked.join(function));
    }
}

fn check_zip(bytes: &[u8]) -> Result<(), PlatformError> {
    zip::ZipArchive::new(io::Cursor::new(bytes))
        .map(|_| ())
        .map_err(|e| {
            PlatformError::InvalidParameter(format!("code package: expected a zip file ({e})"))
        })
}

/// Unpacks a zip safely: no paths outside `dest`, no symlinks, a size cap
/// against zip bombs, unix modes kept (so `bootstrap` stays executable).
fn unzip(bytes: &[u8], dest: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mut archive = zip::ZipArchive::new(io::Cursor::new(bytes)).map_err(io::Error::other)?;
    fs::create_dir_all(dest)?;
    let mut total = 0u64;
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).map_err(io::Error::other)?;
        let Some(rel) = entry.enclosed_name() else {
            return Err(io::Error::other(format!(
                "entry {:?} points outside the package",
                entry.name()
            )));
        };
        let path = dest.join(rel);
        let mode = entry.unix_mode();
        if entry.is_dir() {
            fs::create_dir_all(&path)?;
            continue;
        }
        if mode.is_some_and(|m| m & 0o170000 == 0o120000) {
            return Err(io::Error::other(format!(
                "entry {:?} is a symbolic link; packages may not hold links",
                entry.name()
            )));
        }
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        let mut out = fs::File::create(&path)?;
        let limit = MAX_UNZIPPED_BYTES.saturating_sub(total) + 1;
        let copied = io::copy(&mut (&mut entry).take(limit), &mut out)?;
        total += copied;
        if total > MAX_UNZIPPED_BYTES {
            return Err(io::Error::other(format!(
                "unzipped code exceeds {MAX_UNZIPPED_BYTES} bytes"
            )));
        }
        let perm = if mode.unwrap_or(0o644) & 0o111 != 0 {
            0o755
        } else {
            0o644
        };
        fs::set_permissions(&path, fs::Permissions::from_mode(perm))?;
    }
    Ok(())
}
