//! `X-Amz-Date` (`20150830T123600Z`, UTC to the second): reading, writing and
//! the clock-skew check.

use super::MAX_CLOCK_SKEW;
use crate::AuthError;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime};

const AMZ_DATE: &[BorrowedFormatItem<'_>] =
    format_description!("[year][month][day]T[hour][minute][second]Z");

/// The last second `AMZ_DATE` can write: 9999-12-31T23:59:59Z.
const LAST_SECOND: i64 = 253_402_300_799;

pub(super) fn check_skew(signed_at: SystemTime, now: SystemTime) -> Result<(), AuthError> {
    let (at, now_s) = (fmt_amz_date(signed_at), fmt_amz_date(now));
    if signed_at + MAX_CLOCK_SKEW < now {
        return Err(AuthError::Denied(format!(
            "Signature expired: {at} is now earlier than {} ({now_s} - 5 min.)",
            fmt_amz_date(now - MAX_CLOCK_SKEW)
        )));
    }
    if signed_at > now + MAX_CLOCK_SKEW {
        return Err(AuthError::Denied(format!(
            "Signature not yet current: {at} is still later than {} ({now_s} + 5 min.)",
            fmt_amz_date(now + MAX_CLOCK_SKEW)
        )));
    }
    Ok(())
}

/// `YYYYMMDDTHHMMSSZ`, seconds resolution; a time before 1970 is written as
/// the epoch, one after 9999 as its last second.
pub(super) fn fmt_amz_date(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let secs = i64::try_from(secs).unwrap_or(LAST_SECOND).min(LAST_SECOND);
    OffsetDateTime::from_unix_timestamp(secs)
        .expect("0..=LAST_SECOND is in range")
        .format(AMZ_DATE)
        .expect("a UTC time of years 1970..=9999 always formats")
}

/// `YYYYMMDDTHHMMSSZ` of a real date and time (no February 30th, no 24:00,
/// no leap second) from 1970 to 9999.
pub(super) fn parse_amz_date(s: &str) -> Option<SystemTime> {
    // The format's fields are all of fixed width; this keeps out a signed year.
    if s.len() != 16 {
        return None;
    }
    let time = PrimitiveDateTime::parse(s, AMZ_DATE).ok()?.assume_utc();
    let secs = u64::try_from(time.unix_timestamp()).ok()?;
    Some(UNIX_EPOCH + Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_704_164_645) // 2024-01-02T03:04:05Z
    }

    #[test]
    fn dates_round_trip() {
        assert_eq!(fmt_amz_date(t0()), "20240102T030405Z");
        assert_eq!(parse_amz_date("20240102T030405Z"), Some(t0()));
        assert_eq!(fmt_amz_date(UNIX_EPOCH), "19700101T000000Z");
        assert_eq!(parse_amz_date("19700101T000000Z"), Some(UNIX_EPOCH));
        let leap = parse_amz_date("20240229T235959Z").unwrap();
        assert_eq!(fmt_amz_date(leap), "20240229T235959Z");
        let last = parse_amz_date("99991231T235959Z").unwrap();
        assert_eq!(fmt_amz_date(last), "99991231T235959Z");
        assert_eq!(
            fmt_amz_date(last + Duration::from_secs(86_400 * 365)),
            "99991231T235959Z"
        );
        assert_eq!(
            fmt_amz_date(UNIX_EPOCH - Duration::from_secs(1)),
            "19700101T000000Z"
        );
    }

    #[test]
    fn invalid_dates_are_refused() {
        for bad in [
            "20230229T000000Z", // not a leap year
            "21000229T000000Z", // nor is 2100
            "20240230T000000Z",
            "20240431T000000Z",
            "20241301T000000Z",
            "20240001T000000Z",
            "20240100T000000Z",
            "20240102T240000Z",
            "20240102T036005Z",
            "20240102T030460Z",
            "19691231T235959Z", // before the epoch
            "2024010T030405Z",
            "20240102 030405Z",
            "20240102T030405",
            "20240102T030405z",
            "2024-1-02T0304Z",
            "+2024010T030405Z",
            "2024010+T030405Z",
            "20240102T03040\u{e9}",
            "",
        ] {
            assert_eq!(parse_amz_date(bad), None, "{bad}");
        }
    }
}
