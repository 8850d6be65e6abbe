//! Function references: the names, `name:qualifier` forms and Lambda ARNs
//! callers use for a function, parsed and formatted here only.

use crate::error::Invalid;
use crate::version::Qualifier;

/// The account every ARN carries (SPEC §4).
pub const ACCOUNT: &str = "000000000000";

/// The ARN Lambda would give a function.
pub fn function_arn(region: &str, name: &str) -> String {
    format!("arn:aws:lambda:{region}:{ACCOUNT}:function:{name}")
}

/// The ARN with a qualifier (`…:function:NAME:$LATEST`, `…:NAME:3`, `…:NAME:prod`).
pub fn qualified_arn(region: &str, name: &str, qualifier: &Qualifier) -> String {
    format!("{}:{qualifier}", function_arn(region, name))
}

/// The ARN an invocation of `version` reports: unqualified for `$LATEST`.
pub fn version_arn(region: &str, name: &str, version: i64) -> String {
    if version > 0 {
        format!("{}:{version}", function_arn(region, name))
    } else {
        function_arn(region, name)
    }
}

/// Names follow Lambda's rule: 1–64 of letters, digits, `-` and `_`.
pub fn valid_function_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A function as a caller names it, with the qualifier it carried (as
/// written; [`Qualifier::parse`] checks it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FunctionRef {
    pub name: String,
    pub qualifier: Option<String>,
}

const EXPECTED: &str =
    "a name, NAME:QUALIFIER, ACCOUNT:function:NAME or arn:aws:lambda:REGION:ACCOUNT:function:NAME";

impl FunctionRef {
    /// A name, `name:qualifier`, a partial ARN (`ACCOUNT:function:NAME[:Q]`)
    /// or a full ARN (`arn:aws:lambda:REGION:ACCOUNT:function:NAME[:Q]`);
    /// errors name `field`.
    pub fn parse(field: &str, raw: &str) -> Result<FunctionRef, Invalid> {
        let parts: Vec<&str> = raw.split(':').collect();
        let (name, qualifier) = match parts.as_slice() {
            ["arn", _, "lambda", _, _, "function", name] => (*name, None),
            ["arn", _, "lambda", _, _, "function", name, q] => (*name, Some(*q)),
            [_, "function", name] => (*name, None),
            [_, "function", name, q] => (*name, Some(*q)),
            [name] => (*name, None),
            [name, q] => (*name, Some(*q)),
            _ => return Err(Invalid::new(field, EXPECTED, raw)),
        };
        if !valid_function_name(name) || qualifier == Some("") {
            return Err(Invalid::new(field, EXPECTED, raw));
        }
        Ok(FunctionRef {
            name: name.to_string(),
            qualifier: qualifier.map(str::to_string),
        })
    }

    /// A full function ARN only (`arn:aws…:lambda:REGION:ACCOUNT:function:NAME[:Q]`),
    /// as destinations name functions.
    pub fn parse_arn(arn: &str) -> Option<FunctionRef> {
        let parts: Vec<&str> = arn.split(':').collect();
        match parts.as_slice() {
            ["arn", partition, "lambda", _, _, "function", ..]
                if partition.starts_with("aws") && (7..=8).contains(&parts.len()) => {}
            _ => return None,
        }
        let name = parts[6];
        let qualifier = parts.get(7).copied();
        if !valid_function_name(name) || qualifier == Some("") {
            return None;
        }
        Some(FunctionRef {
            name: name.to_string(),
            qualifier: qualifier.map(str::to_string),
        })
    }

    /// The qualifier as written, or `""` for none.
    pub fn qualifier_str(&self) -> &str {
        self.qualifier.as_deref().unwrap_or("")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_names() {
        assert!(valid_function_name("hello-world_2"));
        assert!(!valid_function_name(""));
        assert!(!valid_function_name("a/b"));
        assert!(!valid_function_name(&"x".repeat(65)));
    }

    #[test]
    fn references_in_every_form() {
        let r = |s| FunctionRef::parse("FunctionName", s).unwrap();
        let q = |n: &str, q: Option<&str>| FunctionRef {
            name: n.into(),
            qualifier: q.map(Into::into),
        };
        assert_eq!(r("f"), q("f", None));
        assert_eq!(r("f:prod"), q("f", Some("prod")));
        assert_eq!(r("000000000000:function:f"), q("f", None));
        assert_eq!(r("1:function:f:3"), q("f", Some("3")));
        assert_eq!(r("arn:aws:lambda:eu-west-1:1:function:f"), q("f", None));
        assert_eq!(
            r("arn:aws:lambda:eu-west-1:1:function:f:$LATEST"),
            q("f", Some("$LATEST"))
        );
        for bad in [
            "",
            "a/b",
            "f:",
            "a:b:c",
            "arn:aws:sqs:r:1:function:f",
            "x:y:f",
        ] {
            let e = FunctionRef::parse("FunctionName", bad).unwrap_err();
            assert_eq!(e.field, "FunctionName", "{bad}");
        }
    }

    #[test]
    fn strict_arns() {
        assert_eq!(
            FunctionRef::parse_arn("arn:aws:lambda:us-east-1:000000000000:function:dest"),
            Some(FunctionRef {
                name: "dest".into(),
                qualifier: None
            })
        );
        assert_eq!(
            FunctionRef::parse_arn("arn:aws:lambda:eu-west-1:123456789012:function:d:3")
                .unwrap()
                .qualifier_str(),
            "3"
        );
        assert_eq!(
            FunctionRef::parse_arn("arn:aws:sqs:us-east-1:000000000000:q"),
            None
        );
        assert_eq!(
            FunctionRef::parse_arn("arn:aws:lambda:us-east-1:0:function:a/b"),
            None
        );
        assert_eq!(FunctionRef::parse_arn("dest"), None);
        assert_eq!(
            FunctionRef::parse_arn("arn:aws:lambda:r:0:function:d:"),
            None
        );
    }

    #[test]
    fn arns_format() {
        assert_eq!(
            function_arn("us-east-1", "f"),
            "arn:aws:lambda:us-east-1:000000000000:function:f"
        );
        assert_eq!(
            qualified_arn("r", "f", &Qualifier::Latest),
            "arn:aws:lambda:r:000000000000:function:f:$LATEST"
        );
        assert_eq!(version_arn("r", "f", 0), function_arn("r", "f"));
        assert_eq!(
            version_arn("r", "f", 2),
            format!("{}:2", function_arn("r", "f"))
        );
    }
}
