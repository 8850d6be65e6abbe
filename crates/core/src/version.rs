//! Versions and qualifiers: `$LATEST`, published version numbers and alias
//! names, parsed and formatted here only.

use crate::error::Invalid;
use std::fmt;

/// The name of the unpublished version, which every function has.
pub const LATEST: &str = "$LATEST";

/// A function version: `$LATEST` (stored as 0) or a published number (1 and up).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Version(i64);

impl Version {
    pub const LATEST: Version = Version(0);

    /// The version a stored number names (0 is `$LATEST`).
    pub fn from_number(n: i64) -> Version {
        Version(n.max(0))
    }

    /// The number the store keeps (0 for `$LATEST`).
    pub fn number(self) -> i64 {
        self.0
    }

    pub fn is_latest(self) -> bool {
        self.0 == 0
    }

    /// `$LATEST` or a version number from 1; `field` names the input in the error.
    pub fn parse(field: &str, s: &str) -> Result<Version, Invalid> {
        if s == LATEST {
            return Ok(Version::LATEST);
        }
        s.parse::<i64>()
            .ok()
            .filter(|n| *n > 0)
            .map(Version)
            .ok_or_else(|| Invalid::new(field, "$LATEST or a version number from 1", s))
    }
}

impl From<i64> for Version {
    fn from(n: i64) -> Version {
        Version::from_number(n)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            f.write_str(LATEST)
        } else {
            write!(f, "{}", self.0)
        }
    }
}

/// `$LATEST` for 0, the number otherwise.
pub fn version_label(version: i64) -> String {
    Version::from_number(version).to_string()
}

/// What a qualifier (`Qualifier=`, or `name:qualifier`) names.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Qualifier {
    Latest,
    Version(i64),
    Alias(String),
}

impl Qualifier {
    /// Absent, empty or `$LATEST`, a version number (1 and up) or an alias
    /// name (Lambda's pattern: letters, digits, `-`, `_`, not all digits, at
    /// most 128). Errors name the `Qualifier` field.
    pub fn parse(q: Option<&str>) -> Result<Qualifier, Invalid> {
        Qualifier::parse_field("Qualifier", q)
    }

    /// [`Qualifier::parse`] for an input of another name.
    pub fn parse_field(field: &str, q: Option<&str>) -> Result<Qualifier, Invalid> {
        let q = match q {
            None | Some("") | Some(LATEST) => return Ok(Qualifier::Latest),
            Some(q) => q,
        };
        if q.bytes().all(|b| b.is_ascii_digit()) {
            return match q.parse::<i64>() {
                Ok(n) if n > 0 => Ok(Qualifier::Version(n)),
                _ => Err(Invalid::new(
                    field,
                    "$LATEST, a version number from 1 or an alias name",
                    q,
                )),
            };
        }
        if is_alias_name(q) {
            return Ok(Qualifier::Alias(q.to_string()));
        }
        Err(Invalid::new(
            field,
            "$LATEST, a version number or an alias name (letters, digits, '-', '_')",
            q,
        ))
    }

    /// The version it names, unless it is an alias.
    pub fn version(&self) -> Option<Version> {
        match self {
            Qualifier::Latest => Some(Version::LATEST),
            Qualifier::Version(n) => Some(Version(*n)),
            Qualifier::Alias(_) => None,
        }
    }

    pub fn is_latest(&self) -> bool {
        matches!(self, Qualifier::Latest)
    }
}

impl From<Version> for Qualifier {
    fn from(v: Version) -> Qualifier {
        if v.is_latest() {
            Qualifier::Latest
        } else {
            Qualifier::Version(v.0)
        }
    }
}

impl fmt::Display for Qualifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Qualifier::Latest => f.write_str(LATEST),
            Qualifier::Version(n) => write!(f, "{n}"),
            Qualifier::Alias(a) => f.write_str(a),
        }
    }
}

/// Lambda's alias pattern `(?!^[0-9]+$)([a-zA-Z0-9-_]+)`, 1 to 128 characters.
pub fn is_alias_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && !s.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_and_format() {
        assert_eq!(Version::parse("V", "$LATEST").unwrap(), Version::LATEST);
        assert_eq!(Version::parse("V", "7").unwrap().number(), 7);
        let e = Version::parse("FunctionVersion", "0").unwrap_err();
        assert_eq!(e.field, "FunctionVersion");
        assert_eq!(e.got, "0");
        assert!(Version::parse("V", "x").is_err());
        assert_eq!(Version::LATEST.to_string(), "$LATEST");
        assert_eq!(Version::from(3).to_string(), "3");
        assert_eq!(version_label(0), "$LATEST");
        assert_eq!(Version::from(-1), Version::LATEST);
    }

    #[test]
    fn qualifiers_parse_and_format() {
        for latest in [None, Some(""), Some("$LATEST")] {
            assert_eq!(Qualifier::parse(latest).unwrap(), Qualifier::Latest);
        }
        assert_eq!(
            Qualifier::parse(Some("12")).unwrap(),
            Qualifier::Version(12)
        );
        assert_eq!(
            Qualifier::parse(Some("live-2")).unwrap(),
            Qualifier::Alias("live-2".into())
        );
        let e = Qualifier::parse(Some("0")).unwrap_err();
        assert_eq!((e.field.as_str(), e.got.as_str()), ("Qualifier", "0"));
        assert!(Qualifier::parse(Some("a/b")).is_err());
        assert!(Qualifier::parse(Some(&"a".repeat(129))).is_err());
        for q in ["$LATEST", "5", "prod"] {
            assert_eq!(Qualifier::parse(Some(q)).unwrap().to_string(), q);
        }
        assert_eq!(Qualifier::Version(4).version(), Some(Version::from(4)));
        assert_eq!(Qualifier::Alias("a".into()).version(), None);
        assert_eq!(Qualifier::from(Version::LATEST), Qualifier::Latest);
    }

    #[test]
    fn alias_names() {
        assert!(is_alias_name("prod"));
        assert!(is_alias_name("v1_x-2"));
        assert!(!is_alias_name("123"));
        assert!(!is_alias_name(""));
        assert!(!is_alias_name("a:b"));
    }
}
