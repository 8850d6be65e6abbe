//! The admin key pair: from the environment, from `DATA_DIR/credentials`, or
//! generated once by the server.

use crate::AuthError;
use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Environment variable holding the access key id.
pub const ENV_ACCESS_KEY_ID: &str = "UPDRAFT_ACCESS_KEY_ID";
/// Environment variable holding the secret access key.
pub const ENV_SECRET_ACCESS_KEY: &str = "UPDRAFT_SECRET_ACCESS_KEY";
/// Name of the credentials file inside the data directory.
pub const CREDENTIALS_FILE: &str = "credentials";

/// An access key pair, as in `~/.aws/credentials`.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
}

// Hand-written so that logging a `Credentials` never prints the secret.
impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"** redacted **")
            .finish()
    }
}

impl Credentials {
    /// `UPDRAFT_ACCESS_KEY_ID` and `UPDRAFT_SECRET_ACCESS_KEY`, when both are non-empty.
    pub fn from_env() -> Option<Credentials> {
        from_vars(&|name| std::env::var(name).ok()).ok().flatten()
    }

    /// The server's credentials: the environment, else `DATA_DIR/credentials`,
    /// else a pair generated now and written there (mode 0600).
    pub fn load_or_generate(data_dir: &Path) -> Result<Credentials, AuthError> {
        if let Some(creds) = from_vars(&|name| std::env::var(name).ok())? {
            return Ok(creds);
        }
        let path = data_dir.join(CREDENTIALS_FILE);
        match read_file(&path) {
            Err(AuthError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {}
            other => return other,
        }
        fs::create_dir_all(data_dir).map_err(|source| AuthError::Io {
            path: data_dir.to_path_buf(),
            source,
        })?;
        let creds = Credentials::generate()?;
        match write_new(&path, &creds) {
            Ok(()) => Ok(creds),
            // Another server process on the same data dir won the race: use its pair.
            Err(AuthError::Io { source, .. }) if source.kind() == io::ErrorKind::AlreadyExists => {
                read_file(&path)
            }
            Err(e) => Err(e),
        }
    }

    /// The CLI's credentials: the environment, else `DATA_DIR/credentials`.
    pub fn for_client(data_dir: &Path) -> Result<Credentials, AuthError> {
        if let Some(creds) = from_vars(&|name| std::env::var(name).ok())? {
            return Ok(creds);
        }
        let path = data_dir.join(CREDENTIALS_FILE);
        match read_file(&path) {
            Err(AuthError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                Err(AuthError::Missing(format!(
                    "no credentials: set {ENV_ACCESS_KEY_ID} and {ENV_SECRET_ACCESS_KEY}, or point \
                     --data-dir / UPDRAFT_DATA_DIR at the server's data directory (looked for {})",
                    path.display()
                )))
            }
            other => other,
        }
    }

    /// A fresh pair shaped like AWS's: `AKUD` + 16 upper-case alphanumerics, and a
    /// 40-character secret over the base64 alphabet.
    pub fn generate() -> Result<Credentials, AuthError> {
        const UPPER_ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        const BASE64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        Ok(Credentials {
            access_key_id: format!("AKUD{}", random_string(UPPER_ALNUM, 16)?),
            secret_access_key: random_string(BASE64, 40)?,
        })
    }

    /// Parses the INI text of a credentials file; `path` only names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Credentials, AuthError> {
        let mut section: Option<&str> = None;
        let mut key_id = None;
        let mut secret = None;
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            let at = || format!("{}:{}", path.display(), i + 1);
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if let Some(rest) = line.strip_prefix('[') {
                let name = rest.strip_suffix(']').ok_or_else(|| {
                    AuthError::Malformed(format!("{}: unterminated section header {line:?}", at()))
                })?;
                section = Some(name.trim());
                continue;
            }
            let (key, value) = line.split_once('=').ok_or_else(|| {
                AuthError::Malformed(format!(
                    "{}: expected `key = value` or `[section]`, found {:?}",
                    at(),
                    // Never echo what might be a secret pasted on its own line.
                    if line.len() > 12 { "<long line>" } else { line }
                ))
            })?;
            if section.unwrap_or("default") != "default" {
                continue;
            }
            let value = value.trim().to_string();
            match key.trim() {
                "aws_access_key_id" => key_id = Some((value, i + 1)),
                "aws_secret_access_key" => secret = Some((value, i + 1)),
                // aws_session_token, region, …: allowed, as in ~/.aws/credentials, and unused.
                _ => {}
            }
        }
        let need = |v: Option<(String, usize)>, key: &str| match v {
            Some((v, _)) if !v.is_empty() => Ok(v),
            Some((_, line)) => Err(AuthError::Malformed(format!(
                "{}:{line}: {key} is empty",
                path.display()
            ))),
            None => Err(AuthError::Malformed(format!(
                "{}: no {key} in the [default] section",
                path.display()
            ))),
        };
        Ok(Credentials {
            access_key_id: need(key_id, "aws_access_key_id")?,
            secret_access_key: need(secret, "aws_secret_access_key")?,
        })
    }

    /// The file's INI text.
    pub fn to_ini(&self) -> String {
        format!(
            "[default]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
            self.access_key_id, self.secret_access_key
        )
    }
}

/// Both variables set → the pair; neither → `None`; only one → an error, since
/// silently falling back to the file would hide a typo in the deployment.
fn from_vars(get: &dyn Fn(&str) -> Option<String>) -> Result<Option<Credentials>, AuthError> {
    let id = get(ENV_ACCESS_KEY_ID).filter(|v| !v.is_empty());
    let secret = get(ENV_SECRET_ACCESS_KEY).filter(|v| !v.is_empty());
    match (id, secret) {
        (Some(access_key_id), Some(secret_access_key)) => Ok(Some(Credentials {
            access_key_id,
            secret_access_key,
        })),
        (None, None) => Ok(None),
        (Some(_), None) => Err(AuthError::Missing(format!(
            "{ENV_ACCESS_KEY_ID} is set but {ENV_SECRET_ACCESS_KEY} is empty or unset: set both or neither"
        ))),
        (None, Some(_)) => Err(AuthError::Missing(format!(
            "{ENV_SECRET_ACCESS_KEY} is set but {ENV_ACCESS_KEY_ID} is empty or unset: set both or neither"
        ))),
    }
}

fn read_file(path: &Path) -> Result<Credentials, AuthError> {
    let text = fs::read_to_string(path).map_err(|source| AuthError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Credentials::parse(&text, path)
}

/// Writes the file so that it is never visible with wider permissions nor half
/// written: a 0600 temporary file, fsynced, then hard-linked into place, which
/// fails with `AlreadyExists` instead of clobbering a concurrent writer's pair.
fn write_new(path: &Path, creds: &Credentials) -> Result<(), AuthError> {
    let io_err = |p: &Path| {
        let p: PathBuf = p.to_path_buf();
        move |source| AuthError::Io { path: p, source }
    };
    let tmp = path.with_file_name(format!(".{CREDENTIALS_FILE}.{}.tmp", std::process::id()));
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    // A stale temp file from a crashed earlier attempt of this same pid.
    let _ = fs::remove_file(&tmp);
    let result = (|| {
        let mut f = opts.open(&tmp).map_err(io_err(&tmp))?;
        f.write_all(creds.to_ini().as_bytes())
            .map_err(io_err(&tmp))?;
        f.sync_all().map_err(io_err(&tmp))?;
        fs::hard_link(&tmp, path).map_err(io_err(path))
    })();
    let _ = fs::remove_file(&tmp);
    result
}

pub(crate) fn random_string(alphabet: &[u8], len: usize) -> Result<String, AuthError> {
    // Rejection sampling keeps every symbol equally likely for alphabets that do
    // not divide 256 (36 for the key id).
    let limit = 256 - 256 % alphabet.len();
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        getrandom::fill(&mut buf).map_err(|e| AuthError::Io {
            path: PathBuf::from("<getrandom>"),
            source: io::Error::other(e.to_string()),
        })?;
        for &b in &buf {
            if out.len() == len {
                break;
            }
            if (b as usize) < limit {
                out.push(alphabet[b as usize % alphabet.len()] as char);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    // The environment is process-wide: tests that touch it take this lock.
    static ENV: Mutex<()> = Mutex::new(());

    fn clear_env() {
        std::env::remove_var(ENV_ACCESS_KEY_ID);
        std::env::remove_var(ENV_SECRET_ACCESS_KEY);
    }

    #[test]
    fn generated_pair_has_aws_shape() {
        let c = Credentials::generate().unwrap();
        assert_eq!(c.access_key_id.len(), 20);
        assert!(c.access_key_id.starts_with("AKUD"));
        assert!(c.access_key_id[4..]
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()));
        assert_eq!(c.secret_access_key.len(), 40);
        assert!(c
            .secret_access_key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/'));
        assert_ne!(c, Credentials::generate().unwrap());
    }

    #[test]
    fn debug_hides_secret() {
        let c = Credentials::generate().unwrap();
        assert!(!format!("{c:?}").contains(&c.secret_access_key));
    }

    #[test]
    fn generates_once_with_mode_0600_and_rereads() {
        let _g = ENV.lock().unwrap_or_else(|e| e.into_inner());
        clear_env();
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("nested/data");
        let first = Credentials::load_or_generate(&data).unwrap();
        let path = data.join(CREDENTIALS_FILE);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
        }
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            format!(
                "[default]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
                first.access_key_id, first.secret_access_key
            )
        );
        assert_eq!(Credentials::load_or_generate(&data).unwrap(), first);
        assert_eq!(Credentials::for_client(&data).unwrap(), first);
        // No temp file left behind.
        assert_eq!(fs::read_dir(&data).unwrap().count(), 1);
    }

    #[test]
    fn env_overrides_file_and_half_set_env_is_refused() {
        let _g = ENV.lock().unwrap_or_else(|e| e.into_inner());
        clear_env();
        let dir = tempfile::tempdir().unwrap();
        let from_file = Credentials::load_or_generate(dir.path()).unwrap();

        std::env::set_var(ENV_ACCESS_KEY_ID, "AKUDFROMENVIRONMENT1");
        std::env::set_var(ENV_SECRET_ACCESS_KEY, "envsecret");
        let want = Credentials {
            access_key_id: "AKUDFROMENVIRONMENT1".into(),
            secret_access_key: "envsecret".into(),
        };
        assert_eq!(Credentials::from_env(), Some(want.clone()));
        assert_eq!(Credentials::load_or_generate(dir.path()).unwrap(), want);
        assert_eq!(Credentials::for_client(dir.path()).unwrap(), want);
        // The env pair is not written over the file.
        assert_eq!(
            Credentials::for_client(&dir.path().join("x")).unwrap(),
            want
        );
        std::env::set_var(ENV_SECRET_ACCESS_KEY, "");
        assert_eq!(Credentials::from_env(), None);
        let err = Credentials::load_or_generate(dir.path()).unwrap_err();
        assert!(matches!(err, AuthError::Missing(ref m) if m.contains(ENV_SECRET_ACCESS_KEY)));
        clear_env();
        assert_eq!(Credentials::for_client(dir.path()).unwrap(), from_file);
    }

    #[test]
    fn client_error_names_both_places() {
        let _g = ENV.lock().unwrap_or_else(|e| e.into_inner());
        clear_env();
        let dir = tempfile::tempdir().unwrap();
        let err = Credentials::for_client(dir.path()).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, AuthError::Missing(_)));
        assert!(msg.contains("UPDRAFT_ACCESS_KEY_ID"), "{msg}");
        assert!(msg.contains("UPDRAFT_SECRET_ACCESS_KEY"), "{msg}");
        assert!(msg.contains("--data-dir / UPDRAFT_DATA_DIR"), "{msg}");
        assert!(
            msg.contains(&dir.path().join("credentials").display().to_string()),
            "{msg}"
        );
        // The client never creates a file.
        assert!(!dir.path().join(CREDENTIALS_FILE).exists());
    }

    #[test]
    fn parse_accepts_aws_style_and_reports_file_and_line() {
        let p = Path::new("/d/credentials");
        let ok = "# comment\n[other]\naws_access_key_id = NOPE\n\n[default]\n\
                  aws_access_key_id=AKUDX\n  aws_secret_access_key =  s/e+c  \nregion = x\n";
        assert_eq!(
            Credentials::parse(ok, p).unwrap(),
            Credentials {
                access_key_id: "AKUDX".into(),
                secret_access_key: "s/e+c".into()
            }
        );
        let err = Credentials::parse("[default]\naws_access_key_id = A\ngarbage\n", p).unwrap_err();
        assert!(matches!(err, AuthError::Malformed(_)));
        assert!(err.to_string().starts_with("/d/credentials:3:"), "{err}");
        let err = Credentials::parse("[default]\naws_access_key_id = A\n", p).unwrap_err();
        assert!(err.to_string().contains("aws_secret_access_key"), "{err}");
        assert!(err.to_string().contains("/d/credentials"), "{err}");
        let err = Credentials::parse("[default\n", p).unwrap_err();
        assert!(err.to_string().starts_with("/d/credentials:1:"), "{err}");
    }

    #[test]
    fn malformed_file_is_not_overwritten() {
        let _g = ENV.lock().unwrap_or_else(|e| e.into_inner());
        clear_env();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(CREDENTIALS_FILE);
        fs::write(&path, "junk\n").unwrap();
        let err = Credentials::load_or_generate(dir.path()).unwrap_err();
        assert!(matches!(err, AuthError::Malformed(_)), "{err}");
        assert_eq!(fs::read_to_string(&path).unwrap(), "junk\n");
    }
}
