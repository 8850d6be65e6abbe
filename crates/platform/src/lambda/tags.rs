//! A function's tags (TagResource, UntagResource, ListTags, CreateFunction's
//! `Tags`), within Lambda's limits.

use crate::{Platform, PlatformError};
use updraft_store::{StoreError, Tags};

/// Tags one function may have (Lambda: 50).
pub const MAX_TAGS: usize = 50;
/// A tag key's length in characters (Lambda: 1 to 128).
pub const MAX_TAG_KEY_CHARS: usize = 128;
/// A tag value's length in characters (Lambda: 0 to 256).
pub const MAX_TAG_VALUE_CHARS: usize = 256;

/// A tag key as Lambda allows it; errors name `field`.
fn check_key(field: &str, key: &str) -> Result<(), PlatformError> {
    let n = key.chars().count();
    if n == 0 || n > MAX_TAG_KEY_CHARS {
        return Err(PlatformError::InvalidParameter(format!(
            "{field}: a tag key is 1 to {MAX_TAG_KEY_CHARS} characters, got {n} in {key:?}"
        )));
    }
    if key.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("aws:")) {
        return Err(PlatformError::InvalidParameter(format!(
            "{field}: the prefix \"aws:\" is reserved for AWS, got the key {key:?}"
        )));
    }
    Ok(())
}

/// Tags as TagResource and CreateFunction accept them (`Tags`).
pub(super) fn check_tags(tags: &Tags) -> Result<(), PlatformError> {
    if tags.len() > MAX_TAGS {
        return Err(PlatformError::InvalidParameter(format!(
            "Tags: a function may have at most {MAX_TAGS} tags, got {}",
            tags.len()
        )));
    }
    for (key, value) in tags {
        check_key("Tags", key)?;
        let n = value.chars().count();
        if n > MAX_TAG_VALUE_CHARS {
            return Err(PlatformError::InvalidParameter(format!(
                "Tags: the value of {key:?} is {n} characters, more than {MAX_TAG_VALUE_CHARS}"
            )));
        }
    }
    Ok(())
}

impl Platform {
    /// ListTags: the function's tags.
    pub async fn function_tags(&self, name: &str) -> Result<Tags, PlatformError> {
        if self.inner.store.get_function(name).await?.is_none() {
            return Err(self.not_found(name));
        }
        Ok(self.inner.store.function_tags(name).await?)
    }

    /// TagResource: adds `tags` (a key already there gets the new value).
    pub async fn tag_function(&self, name: &str, tags: &Tags) -> Result<(), PlatformError> {
        check_tags(tags)?;
        self.inner
            .store
            .tag_function(name, tags, MAX_TAGS)
            .await
            .map_err(|e| match e {
                StoreError::NotFound(_) => self.not_found(name),
                StoreError::Conflict(m) => PlatformError::InvalidParameter(format!(
                    "Tags: a function may have at most {MAX_TAGS} tags: {m}"
                )),
                other => other.into(),
            })
    }

    /// UntagResource: removes the tags with these keys (absent ones are ignored).
    pub async fn untag_function(&self, name: &str, keys: &[String]) -> Result<(), PlatformError> {
        if keys.is_empty() {
            return Err(PlatformError::InvalidParameter(
                "TagKeys: expected at least one tag key".into(),
            ));
        }
        for key in keys {
            check_key("TagKeys", key)?;
        }
        self.inner
            .store
            .untag_function(name, keys)
            .await
            .map_err(|e| match e {
                StoreError::NotFound(_) => self.not_found(name),
                other => other.into(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(pairs: &[(&str, &str)]) -> Tags {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn message(r: Result<(), PlatformError>) -> String {
        match r {
            Err(PlatformError::InvalidParameter(m)) => m,
            other => panic!("expected InvalidParameter, got {other:?}"),
        }
    }

    #[test]
    fn lambdas_tag_limits_are_checked_naming_the_field() {
        check_tags(&tags(&[("team", "a"), ("empty", ""), ("AWSx", "ok")])).unwrap();
        let at_limit = "k".repeat(MAX_TAG_KEY_CHARS);
        check_tags(&tags(&[(&at_limit, &"v".repeat(MAX_TAG_VALUE_CHARS))])).unwrap();

        let m = message(check_tags(&tags(&[(&format!("{at_limit}k"), "v")])));
        assert!(
            m.starts_with("Tags: a tag key is 1 to 128 characters, got 129"),
            "{m}"
        );
        let m = message(check_tags(&tags(&[("", "v")])));
        assert!(m.starts_with("Tags: a tag key is 1 to 128"), "{m}");
        let m = message(check_tags(&tags(&[("k", &"v".repeat(257))])));
        assert_eq!(
            m,
            "Tags: the value of \"k\" is 257 characters, more than 256"
        );
        let m = message(check_tags(&tags(&[("AWS:owner", "x")])));
        assert!(m.contains("\"aws:\" is reserved"), "{m}");
        let many: Tags = (0..=MAX_TAGS)
            .map(|i| (format!("k{i}"), "v".into()))
            .collect();
        assert_eq!(
            message(check_tags(&many)),
            "Tags: a function may have at most 50 tags, got 51"
        );
        let m = message(check_key("TagKeys", "aws:x"));
        assert!(m.starts_with("TagKeys: "), "{m}");
    }
}
