//! Durations as users write them in manifests (`"30s"`, `"5m"`, `"250ms"`).

use std::time::Duration;

/// Parses a human duration such as `30s`, `5m`, `1h 30m` or `250ms`; a bare
/// number is refused so that `timeout = "30"` cannot silently mean 30 ns.
pub fn parse(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err(
            "expected a duration such as \"30s\", \"5m\" or \"250ms\", got an empty string".into(),
        );
    }
    if t == "0" {
        return Ok(Duration::ZERO);
    }
    humantime::parse_duration(t).map_err(|e| {
        format!("expected a duration such as \"30s\", \"5m\" or \"250ms\", got {t:?} ({e})")
    })
}

/// Formats milliseconds the way they are written in manifests.
pub fn format_ms(ms: u64) -> String {
    humantime::format_duration(Duration::from_millis(ms)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(parse("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse("0").unwrap(), Duration::ZERO);
        assert_eq!(parse("0s").unwrap(), Duration::ZERO);
    }

    #[test]
    fn refuses_bare_numbers_and_garbage() {
        assert!(parse("30").unwrap_err().contains("expected a duration"));
        assert!(parse("soon").is_err());
        assert!(parse("").is_err());
    }
}
