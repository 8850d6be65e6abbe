//! A message's body and attributes as SQS checks and digests them: the
//! characters a body may hold, attribute names and types, the size limit
//! (body and attributes together), and the MD5 digests botocore verifies
//! on every send and receive.

use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use updraft_core::Invalid;

/// At most this many attributes a message.
pub const MAX_ATTRIBUTES: usize = 10;

/// One message attribute, in SQS's JSON shape (`BinaryValue` is base64 on
/// the wire).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MessageAttribute {
    pub data_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub string_value: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "base64_bytes"
    )]
    pub binary_value: Option<Vec<u8>>,
}

/// Message attributes by name (sorted, as the digest wants them).
pub type MessageAttributes = BTreeMap<String, MessageAttribute>;

mod base64_bytes {
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(b) => s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(b)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        let text: Option<String> = Option::deserialize(d)?;
        text.map(|t| {
            base64::engine::general_purpose::STANDARD
                .decode(t.as_bytes())
                .map_err(|e| serde::de::Error::custom(format!("BinaryValue is not base64: {e}")))
        })
        .transpose()
    }
}

/// The hex MD5 of a body, as `MD5OfMessageBody`.
pub fn md5_of_body(body: &str) -> String {
    hex::encode(Md5::digest(body.as_bytes()))
}

/// `MD5OfMessageAttributes` as SQS computes it: over the attributes sorted
/// by name, each as its name, its data type (each a 4-byte big-endian
/// length and the UTF-8 bytes), a transport byte (1 string, 2 binary) and
/// the length-prefixed value. None for no attributes.
pub fn md5_of_attributes(attrs: &MessageAttributes) -> Option<String> {
    if attrs.is_empty() {
        return None;
    }
    fn put(md5: &mut Md5, bytes: &[u8]) {
        md5.update((bytes.len() as u32).to_be_bytes());
        md5.update(bytes);
    }
    let mut md5 = Md5::new();
    for (name, a) in attrs {
        put(&mut md5, name.as_bytes());
        put(&mut md5, a.data_type.as_bytes());
        match &a.binary_value {
            Some(b) if is_binary(&a.data_type) => {
                md5.update([2u8]);
                put(&mut md5, b);
            }
            _ => {
                md5.update([1u8]);
                put(&mut md5, a.string_value.as_deref().unwrap_or("").as_bytes());
            }
        }
    }
    Some(hex::encode(md5.finalize()))
}

fn is_binary(data_type: &str) -> bool {
    base_type(data_type) == "Binary"
}

/// `String.custom` → `String`.
fn base_type(data_type: &str) -> &str {
    data_type.split('.').next().unwrap_or("")
}

/// The bytes SQS counts against the size limit: the body's, and each
/// attribute's name, type and value.
pub fn message_size(body: &str, attrs: &MessageAttributes) -> usize {
    body.len()
        + attrs
            .iter()
            .map(|(name, a)| {
                name.len()
                    + a.data_type.len()
                    + a.string_value.as_ref().map_or(0, String::len)
                    + a.binary_value.as_ref().map_or(0, Vec::len)
            })
            .sum::<usize>()
}

/// A body holds only the characters SQS allows (XML's: tab, newline,
/// carriage return and U+0020 on, surrogates and U+FFFE/U+FFFF aside).
pub fn check_body(body: &str) -> Result<(), Invalid> {
    if body.is_empty() {
        return Err(Invalid::new("MessageBody", "a non-empty string", ""));
    }
    let bad = body.chars().find(|&c| {
        !matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
    });
    match bad {
        Some(c) => Err(Invalid::new(
            "MessageBody",
            "only the characters #x9, #xA, #xD, #x20 to #xD7FF, #xE000 to #xFFFD and #x10000 to #x10FFFF",
            format!("U+{:04X}", c as u32),
        )),
        None => Ok(()),
    }
}

/// Names, types and values as SQS allows them.
pub fn check_attributes(attrs: &MessageAttributes) -> Result<(), Invalid> {
    if attrs.len() > MAX_ATTRIBUTES {
        return Err(Invalid::new(
            "MessageAttributes",
            format!("at most {MAX_ATTRIBUTES} attributes"),
            attrs.len(),
        ));
    }
    for (name, a) in attrs {
        check_attribute_name(name)?;
        let field = format!("MessageAttributes.{name}");
        let ty = base_type(&a.data_type);
        let custom_ok = a
            .data_type
            .split_once('.')
            .is_none_or(|(_, custom)| !custom.is_empty() && custom.len() <= 256);
        if !["String", "Number", "Binary"].contains(&ty) || !custom_ok {
            return Err(Invalid::new(
                format!("{field}.DataType"),
                "String, Number or Binary (optionally with a .custom suffix)",
                &a.data_type,
            ));
        }
        let value_ok = if ty == "Binary" {
            a.binary_value.as_ref().is_some_and(|b| !b.is_empty()) && a.string_value.is_none()
        } else {
            a.string_value.as_ref().is_some_and(|s| !s.is_empty()) && a.binary_value.is_none()
        };
        if !value_ok {
            let which = if ty == "Binary" {
                "BinaryValue"
            } else {
                "StringValue"
            };
            return Err(Invalid::new(
                field,
                format!("a non-empty {which} for type {ty}"),
                "",
            ));
        }
        if ty == "Number" {
            let v = a.string_value.as_deref().unwrap_or("");
            if v.parse::<f64>().is_err() {
                return Err(Invalid::new(format!("{field}.StringValue"), "a number", v));
            }
        }
        if let Some(s) = &a.string_value {
            check_body(s).map_err(|e| e.renamed(format!("{field}.StringValue")))?;
        }
    }
    Ok(())
}

/// 1–256 of `[A-Za-z0-9_.-]`, no leading, trailing or doubled `.`, not
/// `AWS.` or `Amazon.` (any case).
pub fn check_attribute_name(name: &str) -> Result<(), Invalid> {
    let lower = name.to_ascii_lowercase();
    let ok = (1..=256).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
        && !name.starts_with('.')
        && !name.ends_with('.')
        && !name.contains("..")
        && !lower.starts_with("aws.")
        && !lower.starts_with("amazon.");
    if ok {
        return Ok(());
    }
    Err(Invalid::new(
        "MessageAttributes",
        "names of 1 to 256 characters of A-Z, a-z, 0-9, _, - and . (no leading, trailing or \
         doubled ., not starting with AWS. or Amazon.)",
        name,
    ))
}

/// The attributes stored with a message, None for none.
pub fn to_json(attrs: &MessageAttributes) -> Option<String> {
    (!attrs.is_empty()).then(|| serde_json::to_string(attrs).unwrap_or_default())
}

/// A message's stored attributes (none if there are none or they do not parse).
pub fn from_json(json: Option<&str>) -> MessageAttributes {
    json.and_then(|j| serde_json::from_str(j).ok())
        .unwrap_or_default()
}

/// A binary value as the CLI takes it (`--attr k=v` is always a string).
pub fn string_attribute(value: &str) -> MessageAttribute {
    MessageAttribute {
        data_type: "String".into(),
        string_value: Some(value.to_string()),
        binary_value: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(ty: &str, s: Option<&str>, b: Option<&[u8]>) -> MessageAttribute {
        MessageAttribute {
            data_type: ty.into(),
            string_value: s.map(str::to_string),
            binary_value: b.map(<[u8]>::to_vec),
        }
    }

    #[test]
    fn digests_match_what_sqs_sends() {
        assert_eq!(
            md5_of_body("This is a test message"),
            "fafb00f5732ab283681e124bf8747ed1"
        );
        // What SQS answers for this attribute (as recorded by moto's tests).
        let mut attrs = MessageAttributes::new();
        attrs.insert(
            "timestamp".into(),
            attr("Number", Some("1493147359900"), None),
        );
        assert_eq!(
            md5_of_attributes(&attrs).unwrap(),
            "235c5c510d26fb653d073faed50ae77c"
        );
        assert_eq!(md5_of_attributes(&MessageAttributes::new()), None);
    }

    #[test]
    fn attributes_are_checked_by_name_type_and_value() {
        let ok = |a: MessageAttribute| {
            let mut m = MessageAttributes::new();
            m.insert("k".into(), a);
            check_attributes(&m)
        };
        assert!(ok(attr("String", Some("v"), None)).is_ok());
        assert!(ok(attr("Number.int", Some("1.5"), None)).is_ok());
        assert!(ok(attr("Binary", None, Some(b"\x00\x01"))).is_ok());
        let e = ok(attr("Number", Some("one"), None)).unwrap_err();
        assert_eq!(e.field, "MessageAttributes.k.StringValue");
        let e = ok(attr("Text", Some("v"), None)).unwrap_err();
        assert!(e.expected.contains("String, Number or Binary"), "{e}");
        let e = ok(attr("Binary", Some("v"), None)).unwrap_err();
        assert!(e.expected.contains("BinaryValue"), "{e}");
        for bad in ["", "AWS.x", "a..b", ".a", "a b", &"x".repeat(257)] {
            assert!(check_attribute_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_attribute_name("a.b-c_d").is_ok());
        assert!(check_body("ok\t\n").is_ok());
        assert!(check_body("\u{1}")
            .unwrap_err()
            .to_string()
            .contains("U+0001"));
        let mut m = MessageAttributes::new();
        m.insert("n".into(), attr("Binary", None, Some(b"abc")));
        assert_eq!(message_size("body", &m), 4 + 1 + 6 + 3);
        // Binary values travel as base64.
        let json = to_json(&m).unwrap();
        assert_eq!(json, r#"{"n":{"DataType":"Binary","BinaryValue":"YWJj"}}"#);
        assert_eq!(from_json(Some(&json)), m);
    }
}
