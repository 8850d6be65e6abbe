//! A function URL's CORS settings, in the shape of the Lambda API's `Cors`
//! object (what CreateFunctionUrlConfig takes and GetFunctionUrlConfig
//! returns); the manifest's `cors = { … }` table becomes the same value.
//! The gateway applies it (`updraft-gateway`'s `cors` module).

use serde::{Deserialize, Serialize};

use crate::Invalid;

/// Lambda's `Cors`: which origins, methods and headers may cross origins.
/// A field that is absent allows nothing of its kind.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Cors {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_credentials: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_headers: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_methods: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_origins: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expose_headers: Option<Vec<String>>,
    /// Seconds a browser may cache a preflight answer (0 to 86400).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<i64>,
}

/// The methods `allow_methods` may name (Lambda's, each at most 6 letters), or `*`.
pub const CORS_METHODS: [&str; 7] = ["GET", "PUT", "POST", "DELETE", "PATCH", "HEAD", "*"];
/// Lambda's bound on `MaxAge`: a day.
pub const CORS_MAX_AGE_SECS: i64 = 86_400;

impl Cors {
    /// Checks Lambda's limits; the error names the field as the manifest
    /// spells it (`cors.allow_origins`); the Lambda API renames it with
    /// [`Cors::api_field`].
    pub fn validate(&self) -> Result<(), Invalid> {
        list(&self.allow_origins, "cors.allow_origins", 100, 1, 253)?;
        list(&self.allow_headers, "cors.allow_headers", 100, 0, 1024)?;
        list(&self.expose_headers, "cors.expose_headers", 100, 0, 1024)?;
        list(&self.allow_methods, "cors.allow_methods", 6, 1, 6)?;
        for m in self.allow_methods.iter().flatten() {
            if !CORS_METHODS.iter().any(|k| k.eq_ignore_ascii_case(m)) {
                return Err(Invalid::new(
                    "cors.allow_methods",
                    format!("methods among {}", CORS_METHODS.join(", ")),
                    m,
                ));
            }
        }
        if let Some(age) = self.max_age {
            if !(0..=CORS_MAX_AGE_SECS).contains(&age) {
                return Err(Invalid::new(
                    "cors.max_age",
                    "0 to 86400 seconds (24h)",
                    format!("{age}s"),
                ));
            }
        }
        Ok(())
    }

    /// The Lambda API's name of a field [`Cors::validate`] reports
    /// (`cors.max_age` → `Cors.MaxAge`).
    pub fn api_field(field: &str) -> String {
        let name = field.strip_prefix("cors.").unwrap_or(field);
        let pascal: String = name
            .split('_')
            .map(|w| {
                let mut c = w.chars();
                c.next()
                    .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                    .unwrap_or_default()
            })
            .collect();
        format!("Cors.{pascal}")
    }
}

fn list(
    items: &Option<Vec<String>>,
    field: &str,
    max_items: usize,
    min_len: usize,
    max_len: usize,
) -> Result<(), Invalid> {
    let Some(items) = items else { return Ok(()) };
    if items.len() > max_items {
        return Err(Invalid::new(
            field,
            format!("at most {max_items} entries"),
            items.len(),
        ));
    }
    for item in items {
        if item.len() < min_len || item.len() > max_len {
            return Err(Invalid::new(
                field,
                format!("entries of {min_len} to {max_len} characters"),
                item,
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lambda_shape_round_trips() {
        let text = r#"{"AllowCredentials":true,"AllowHeaders":["x-a"],"AllowMethods":["GET","*"],"AllowOrigins":["https://a.example"],"ExposeHeaders":["x-b"],"MaxAge":3600}"#;
        let cors: Cors = serde_json::from_str(text).unwrap();
        assert_eq!(cors.max_age, Some(3600));
        assert!(cors.validate().is_ok());
        assert_eq!(serde_json::to_string(&cors).unwrap(), text);
        assert_eq!(serde_json::to_string(&Cors::default()).unwrap(), "{}");
        let err = serde_json::from_str::<Cors>(r#"{"AllowOrigin": ["*"]}"#).unwrap_err();
        assert!(err.to_string().contains("AllowOrigin"), "{err}");
    }

    #[test]
    fn limits_name_the_field() {
        let bad = |c: Cors| c.validate().unwrap_err();
        let e = bad(Cors {
            max_age: Some(86_401),
            ..Cors::default()
        });
        assert_eq!(
            e.to_string(),
            "cors.max_age: expected 0 to 86400 seconds (24h), got 86401s"
        );
        assert_eq!(Cors::api_field(&e.field), "Cors.MaxAge");
        let e = bad(Cors {
            allow_methods: Some(vec!["FETCH".into()]),
            ..Cors::default()
        });
        assert_eq!(e.field, "cors.allow_methods");
        assert_eq!(e.got, "FETCH");
        let e = bad(Cors {
            allow_origins: Some(vec![String::new()]),
            ..Cors::default()
        });
        assert_eq!(Cors::api_field(&e.field), "Cors.AllowOrigins");
        let e = bad(Cors {
            allow_headers: Some(vec!["x".into(); 101]),
            ..Cors::default()
        });
        assert_eq!(
            (e.field.as_str(), e.got.as_str()),
            ("cors.allow_headers", "101")
        );
        assert!(Cors {
            allow_methods: Some(vec!["get".into(), "*".into()]),
            max_age: Some(0),
            ..Cors::default()
        }
        .validate()
        .is_ok());
    }
}
