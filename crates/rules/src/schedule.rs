//! When a schedule fires. A [`Schedule`] is parsed from the manifest's
//! `schedule = { cron | rate, timezone }` and answers two questions in Unix
//! milliseconds: the next due time, and the latest due time missed in a gap.
//!
//! - Rates tick on a grid anchored at the Unix epoch (due = k × period), so
//!   every server computes the same due times with no stored anchor. A rate
//!   takes no `timezone` (refused: it would change nothing).
//! - Cron expressions (5 fields, or EventBridge's `cron(m h dom mon dow year)`)
//!   are evaluated by `croner` in their zone (default UTC). Across DST, as
//!   croner does: in the hour that is skipped, a fixed-time job (single
//!   minute and hour) fires at the first valid time after the gap, an
//!   interval job (`*`, `*/N`, ranges) skips the missing times; in the hour
//!   that repeats, a fixed-time job fires once (first pass), an interval job
//!   fires in both passes.

use std::fmt::Write as _;

use chrono::DateTime;
use chrono_tz::Tz;
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;
use updraft_core::{Invalid, ScheduleTrigger};

/// The accepted forms of `cron`, for its errors.
const CRON_FORMS: &str =
    "5 cron fields (m h dom mon dow), cron(m h dom mon dow year) or rate(N minutes|hours|days)";
/// The accepted forms of EventBridge's `rate(…)`.
const AWS_RATE_FORMS: &str =
    "rate(1 minute|hour|day) or rate(N minutes|hours|days) with N a whole number from 2";
/// The accepted forms of `rate`.
const RATE_FORMS: &str = "a duration of whole seconds, at least 1s (e.g. \"10s\", \"5m\", \"1h\")";

/// A parsed schedule: when it is due, in Unix milliseconds (UTC).
#[derive(Clone, Debug)]
pub struct Schedule {
    when: When,
}

#[derive(Clone, Debug)]
enum When {
    /// Due at every multiple of `period_ms` since the Unix epoch.
    Rate { period_ms: i64 },
    /// Due when `cron` matches the wall clock in `zone`; `text` is the
    /// expression as [`Schedule::describe`] shows it.
    Cron {
        cron: Box<Cron>,
        zone: Tz,
        text: String,
    },
}

impl Schedule {
    /// Parses a schedule as the manifest wrote it. Errors name the field
    /// (`cron`, `rate`, `timezone`; callers prefix them), the accepted forms
    /// and what came. Exactly one of `cron` and `rate` must be set.
    pub fn parse(t: &ScheduleTrigger) -> Result<Schedule, Invalid> {
        let when = match (&t.cron, &t.rate) {
            (Some(_), Some(rate)) => {
                return Err(Invalid::new(
                    "rate",
                    "no rate beside a cron (a schedule has exactly one of cron and rate)",
                    rate,
                ))
            }
            (None, None) => {
                return Err(Invalid::new(
                    "cron",
                    format!("exactly one of cron and rate; cron takes {CRON_FORMS}"),
                    "",
                ))
            }
            (Some(cron), None) => parse_cron(cron)?,
            (None, Some(rate)) => parse_rate(rate)?,
        };
        let Some(name) = &t.timezone else {
            return Ok(Schedule { when });
        };
        match when {
            When::Rate { .. } => Err(Invalid::new(
                "timezone",
                "no timezone with a rate (a rate ticks on a grid from the Unix epoch; \
                 timezone applies to cron only)",
                name,
            )),
            When::Cron { cron, text, .. } => {
                let zone = name.parse::<Tz>().map_err(|_| {
                    Invalid::new(
                        "timezone",
                        "an IANA time zone such as Europe/Paris or UTC",
                        name,
                    )
                })?;
                Ok(Schedule {
                    when: When::Cron { cron, zone, text },
                })
            }
        }
    }

    /// The first due time strictly after `after_ms`; None if the schedule
    /// never fires again (a year in the past, a 31st of February).
    pub fn next_after(&self, after_ms: i64) -> Option<i64> {
        match &self.when {
            When::Rate { period_ms } => after_ms
                .div_euclid(*period_ms)
                .checked_add(1)?
                .checked_mul(*period_ms),
            When::Cron { cron, zone, .. } => {
                // Cron times are whole seconds: the first one after the second
                // that holds `after_ms` is the first one after `after_ms`.
                let start = zoned(after_ms, zone)?;
                let next = cron.find_next_occurrence(&start, false).ok()?;
                Some(next.timestamp_millis())
            }
        }
    }

    /// The latest due time at or before `at_ms` and strictly after
    /// `since_ms`, if any: the one tick to fire for all those missed while no
    /// server ran. One search backwards from `at_ms`, however long the gap.
    pub fn latest_between(&self, since_ms: i64, at_ms: i64) -> Option<i64> {
        let due = match &self.when {
            When::Rate { period_ms } => at_ms.div_euclid(*period_ms).checked_mul(*period_ms)?,
            When::Cron { cron, zone, .. } => {
                let start = zoned(at_ms, zone)?;
                let prev = cron.find_previous_occurrence(&start, true).ok()?;
                prev.timestamp_millis()
            }
        };
        (due > since_ms).then_some(due)
    }

    /// A canonical one-line description: `rate(10 seconds)`,
    /// `cron(*/5 * * * *)`, `cron(0 12 * * ? *) Europe/Paris`. Equal
    /// schedules written differently (`rate = "1m"`, `cron = "rate(1 minute)"`)
    /// read the same.
    pub fn describe(&self) -> String {
        match &self.when {
            When::Rate { period_ms } => describe_rate(*period_ms),
            When::Cron { text, zone, .. } => {
                let mut s = text.clone();
                if *zone != Tz::UTC {
                    let _ = write!(s, " {}", zone.name());
                }
                s
            }
        }
    }
}

/// The second that holds `ms`, in `zone`.
fn zoned(ms: i64, zone: &Tz) -> Option<DateTime<Tz>> {
    Some(DateTime::from_timestamp(ms.div_euclid(1000), 0)?.with_timezone(zone))
}

/// A cron dialect's fields, for errors: what each one takes, and the form.
struct Fields {
    form: &'static str,
    takes: &'static [&'static str],
}

const FIVE_FIELDS: Fields = Fields {
    form: "5 cron fields (m h dom mon dow)",
    takes: &[
        "minute 0-59",
        "hour 0-23",
        "day-of-month 1-31 (or L, nW)",
        "month 1-12 or JAN-DEC",
        "day-of-week 0-7 or SUN-SAT (or nL, n#k)",
    ],
};

const AWS_FIELDS: Fields = Fields {
    form: "cron(m h dom mon dow year)",
    takes: &[
        "minute 0-59",
        "hour 0-23",
        "day-of-month 1-31, L, nW or ?",
        "month 1-12 or JAN-DEC",
        "day-of-week 1-7 or SUN-SAT (1 = SUN), L, nL, n#k or ?",
        "year such as 2027, a range or *",
    ],
};

/// A UTC cron schedule of `written` fields, parsed by `parser` as `fields`
/// after `prefix` (croner's seconds). On an error, names the first field that
/// croner refuses on its own.
fn compile(
    parser: &CronParser,
    written: &[&str],
    fields: &[&str],
    prefix: &str,
    dialect: &Fields,
    raw: &str,
) -> Result<When, Invalid> {
    let parse = |fields: &[&str]| parser.parse(&format!("{prefix}{}", fields.join(" ")));
    let cron = parse(fields).map_err(|e| {
        let alone = |i: usize| -> Vec<&str> {
            let mut only = vec!["*"; fields.len()];
            only[i] = fields[i];
            only
        };
        let expected = match (0..fields.len()).find(|&i| parse(&alone(i)).is_err()) {
            Some(i) => format!(
                "{} as field {} of {}",
                dialect.takes[i],
                i + 1,
                dialect.form
            ),
            None => format!("{}: {e}", dialect.form),
        };
        Invalid::new("cron", expected, raw)
    })?;
    Ok(When::Cron {
        cron: Box::new(cron),
        zone: Tz::UTC,
        text: format!("cron({})", written.join(" ")),
    })
}

/// `cron = …`: a 5-field expression, EventBridge's `cron(…)` or `rate(…)`.
fn parse_cron(raw: &str) -> Result<When, Invalid> {
    let s = raw.trim();
    if let Some(rest) = s.strip_prefix("rate(") {
        return match rest.strip_suffix(')') {
            Some(inner) => parse_aws_rate(inner, raw),
            None => Err(Invalid::new("cron", AWS_RATE_FORMS, raw)),
        };
    }
    if let Some(rest) = s.strip_prefix("cron(") {
        return parse_aws_cron(rest.strip_suffix(')').unwrap_or(""), raw);
    }
    let fields: Vec<&str> = s.split_whitespace().collect();
    if fields.len() != 5 {
        let hint = if fields.len() == 6 {
            " (6 fields are EventBridge's form: write it inside cron(…))"
        } else {
            ""
        };
        return Err(Invalid::new("cron", format!("{CRON_FORMS}{hint}"), raw));
    }
    let parser = CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build();
    compile(&parser, &fields, &fields, "", &FIVE_FIELDS, raw)
}

/// EventBridge's `cron(m h dom mon dow year)`: weekdays 1–7 = SUN–SAT, `?`
/// in exactly one of the day fields, `L`, `W`, `#`, and `0/15` steps.
fn parse_aws_cron(inner: &str, raw: &str) -> Result<When, Invalid> {
    let fields: Vec<&str> = inner.split_whitespace().collect();
    if fields.len() != 6 {
        return Err(Invalid::new(
            "cron",
            format!("6 fields in cron(m h dom mon dow year); {CRON_FORMS}"),
            raw,
        ));
    }
    let (dom, dow) = (fields[2], fields[4]);
    let misplaced = fields
        .iter()
        .enumerate()
        .any(|(i, f)| f.contains('?') && !((i == 2 || i == 4) && *f == "?"));
    if (dom == "?") == (dow == "?") || misplaced {
        return Err(Invalid::new(
            "cron",
            "cron(m h dom mon dow year) with ? as exactly one of day-of-month and \
             day-of-week (EventBridge's rule)",
            raw,
        ));
    }
    // EventBridge's (and Quartz's) lone `L` in day-of-week is its last day, SAT.
    let mut parsed = fields.clone();
    if dow == "L" {
        parsed[4] = "7";
    }
    let parser = CronParser::builder()
        .seconds(Seconds::Required)
        .year(Year::Required)
        .alternative_weekdays(true)
        .sloppy_ranges(true)
        .build();
    compile(&parser, &fields, &parsed, "0 ", &AWS_FIELDS, raw)
}

/// EventBridge's `rate(N unit)`: a singular unit for 1 only, as AWS requires.
fn parse_aws_rate(inner: &str, raw: &str) -> Result<When, Invalid> {
    let bad = || Invalid::new("cron", AWS_RATE_FORMS, raw);
    let [value, unit] = inner.split_whitespace().collect::<Vec<_>>()[..] else {
        return Err(bad());
    };
    if !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let n: i64 = value.parse().map_err(|_| bad())?;
    let unit_ms = match (unit, n) {
        ("minute", 1) => 60_000,
        ("hour", 1) => 3_600_000,
        ("day", 1) => 86_400_000,
        ("minutes", 2..) => 60_000,
        ("hours", 2..) => 3_600_000,
        ("days", 2..) => 86_400_000,
        _ => return Err(bad()),
    };
    let period_ms = n.checked_mul(unit_ms).ok_or_else(bad)?;
    Ok(When::Rate { period_ms })
}

/// `rate = …`: a humantime duration of whole seconds, at least one.
fn parse_rate(raw: &str) -> Result<When, Invalid> {
    let bad = || Invalid::new("rate", RATE_FORMS, raw);
    let d = humantime::parse_duration(raw.trim()).map_err(|_| bad())?;
    if d.subsec_nanos() != 0 || d.as_secs() == 0 {
        return Err(bad());
    }
    let period_ms = i64::try_from(d.as_secs())
        .ok()
        .and_then(|s| s.checked_mul(1000))
        .ok_or_else(bad)?;
    Ok(When::Rate { period_ms })
}

/// `rate(N unit)` in the largest unit that divides the period.
fn describe_rate(period_ms: i64) -> String {
    let secs = period_ms / 1000;
    let (n, unit) = [(86_400, "day"), (3_600, "hour"), (60, "minute")]
        .into_iter()
        .find(|(u, _)| secs % u == 0)
        .map_or((secs, "second"), |(u, name)| (secs / u, name));
    let plural = if n == 1 { "" } else { "s" };
    format!("rate({n} {unit}{plural})")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cron(expr: &str, zone: Option<&str>) -> ScheduleTrigger {
        ScheduleTrigger {
            cron: Some(expr.into()),
            rate: None,
            timezone: zone.map(Into::into),
            payload: None,
        }
    }

    fn rate(expr: &str) -> ScheduleTrigger {
        ScheduleTrigger {
            cron: None,
            rate: Some(expr.into()),
            timezone: None,
            payload: None,
        }
    }

    fn parse(t: ScheduleTrigger) -> Schedule {
        Schedule::parse(&t).unwrap_or_else(|e| panic!("{t:?}: {e}"))
    }

    fn refused(t: ScheduleTrigger) -> String {
        match Schedule::parse(&t) {
            Ok(s) => panic!("{t:?} accepted as {}", s.describe()),
            Err(e) => e.to_string(),
        }
    }

    /// Unix ms of an RFC 3339 time.
    fn ms(rfc3339: &str) -> i64 {
        DateTime::parse_from_rfc3339(rfc3339)
            .unwrap()
            .timestamp_millis()
    }

    /// The next `n` due times after `from`.
    fn next_n(s: &Schedule, from: &str, n: usize) -> Vec<i64> {
        let mut at = ms(from);
        (0..n)
            .map(|_| {
                at = s.next_after(at).expect("fires again");
                at
            })
            .collect()
    }

    fn times(rfc3339: &[&str]) -> Vec<i64> {
        rfc3339.iter().map(|t| ms(t)).collect()
    }

    const NOW: &str = "2026-12-02T01:00:00Z"; // a Wednesday

    #[test]
    fn five_field_cron_fires_in_utc() {
        let s = parse(cron(" */5 *  * * * ", None));
        assert_eq!(s.describe(), "cron(*/5 * * * *)");
        assert_eq!(
            next_n(&s, NOW, 2),
            times(&["2026-12-02T01:05:00Z", "2026-12-02T01:10:00Z"])
        );
        // POSIX weekdays: 0 and 7 are Sunday.
        let sunday = parse(cron("0 0 * * 7", None));
        assert_eq!(next_n(&sunday, NOW, 1), times(&["2026-12-06T00:00:00Z"]));
    }

    #[test]
    fn eventbridge_cron_forms() {
        for (expr, first, second) in [
            // Weekdays at noon; names and `?` in day-of-month.
            (
                "cron(0 12 ? * MON-FRI *)",
                "2026-12-02T12:00:00Z",
                "2026-12-03T12:00:00Z",
            ),
            // EventBridge numbers weekdays 1-7 from SUN.
            (
                "cron(0 0 ? * 1 *)",
                "2026-12-06T00:00:00Z",
                "2026-12-13T00:00:00Z",
            ),
            (
                "cron(0 0 ? * 7 *)",
                "2026-12-05T00:00:00Z",
                "2026-12-12T00:00:00Z",
            ),
            // `L` alone in day-of-week is its last day (SAT); `6L` the last FRI.
            (
                "cron(0 0 ? * L *)",
                "2026-12-05T00:00:00Z",
                "2026-12-12T00:00:00Z",
            ),
            (
                "cron(15 10 ? * 6L 2026-2027)",
                "2026-12-25T10:15:00Z",
                "2027-01-29T10:15:00Z",
            ),
            // `3#2`: the second TUE.
            (
                "cron(0 0 ? * 3#2 *)",
                "2026-12-08T00:00:00Z",
                "2027-01-12T00:00:00Z",
            ),
            // `L` in day-of-month: its last day; `1W`: the weekday nearest the 1st
            // (2027-05-01 is a SAT: MON 3rd, within the month).
            (
                "cron(0 0 L * ? *)",
                "2026-12-31T00:00:00Z",
                "2027-01-31T00:00:00Z",
            ),
            (
                "cron(0 8 1W 4-5 ? 2027)",
                "2027-04-01T08:00:00Z",
                "2027-05-03T08:00:00Z",
            ),
            // Quartz-style steps, as AWS's own examples write them.
            (
                "cron(0/15 * * * ? *)",
                "2026-12-02T01:15:00Z",
                "2026-12-02T01:30:00Z",
            ),
        ] {
            let s = parse(cron(expr, None));
            assert_eq!(s.describe(), expr);
            assert_eq!(next_n(&s, NOW, 2), times(&[first, second]), "{expr}");
        }
    }

    #[test]
    fn eventbridge_rates_and_durations() {
        for (t, describe, period_ms) in [
            (cron("rate(1 minute)", None), "rate(1 minute)", 60_000),
            (cron("rate(5 minutes)", None), "rate(5 minutes)", 300_000),
            (cron("rate(1 hour)", None), "rate(1 hour)", 3_600_000),
            (cron("rate(2 hours)", None), "rate(2 hours)", 7_200_000),
            (cron("rate(1 day)", None), "rate(1 day)", 86_400_000),
            (
                cron("rate(90 minutes)", None),
                "rate(90 minutes)",
                5_400_000,
            ),
            (rate("10s"), "rate(10 seconds)", 10_000),
            (rate("1s"), "rate(1 second)", 1_000),
            (rate("90s"), "rate(90 seconds)", 90_000),
            (rate("1m"), "rate(1 minute)", 60_000),
            (rate("2h 30m"), "rate(150 minutes)", 9_000_000),
            (rate("1day"), "rate(1 day)", 86_400_000),
        ] {
            let s = parse(t);
            assert_eq!(s.describe(), describe);
            // Due times lie on a grid from the Unix epoch, whatever `after` is.
            let after = ms(NOW) + 1234;
            let next = s.next_after(after).unwrap();
            assert_eq!(next % period_ms, 0, "{describe}");
            assert!(next > after && next - period_ms <= after, "{describe}");
        }
    }

    #[test]
    fn next_is_strictly_after_even_within_a_second() {
        let every_10s = parse(rate("10s"));
        let noon = parse(cron("0 12 * * *", None));
        for (s, after, next) in [
            (
                &every_10s,
                "2026-12-02T01:00:03.250Z",
                "2026-12-02T01:00:10Z",
            ),
            // A due time is not its own next one.
            (&every_10s, "2026-12-02T01:00:10Z", "2026-12-02T01:00:20Z"),
            (&noon, "2026-12-02T11:59:59.999Z", "2026-12-02T12:00:00Z"),
            (&noon, "2026-12-02T12:00:00Z", "2026-12-03T12:00:00Z"),
            (&noon, "2026-12-02T12:00:00.999Z", "2026-12-03T12:00:00Z"),
        ] {
            assert_eq!(s.next_after(ms(after)), Some(ms(next)), "{after}");
        }
        assert_eq!(every_10s.next_after(-1), Some(0));
        assert_eq!(every_10s.next_after(i64::MAX - 1), None);
    }

    #[test]
    fn a_schedule_that_never_fires_again_has_no_next() {
        let past = parse(cron("cron(0 12 * * ? 2020)", None));
        assert_eq!(past.next_after(ms(NOW)), None);
        assert_eq!(
            past.latest_between(i64::MIN, ms(NOW)),
            Some(ms("2020-12-31T12:00:00Z"))
        );
        let never = parse(cron("0 0 31 2 *", None));
        assert_eq!(never.next_after(ms(NOW)), None);
        assert_eq!(never.latest_between(i64::MIN, ms(NOW)), None);
    }

    #[test]
    fn cron_in_a_zone_follows_its_wall_clock() {
        let s = parse(cron("cron(0 9 ? * MON-FRI *)", Some("America/New_York")));
        assert_eq!(s.describe(), "cron(0 9 ? * MON-FRI *) America/New_York");
        // 09:00 EST is 14:00 UTC.
        assert_eq!(next_n(&s, NOW, 1), times(&["2026-12-02T14:00:00Z"]));
        // UTC is the default: naming it changes nothing.
        let utc = parse(cron("0 12 * * *", Some("UTC")));
        assert_eq!(utc.describe(), "cron(0 12 * * *)");
        assert_eq!(next_n(&utc, NOW, 1), times(&["2026-12-02T12:00:00Z"]));
    }

    #[test]
    fn next_after_across_dst_in_paris() {
        let cases: [(&str, &str, &[&str]); 6] = [
            // Noon stays noon on the wall clock: 11:00 UTC in CET, 10:00 in CEST.
            (
                "0 12 * * *",
                "2026-03-28T00:00:00Z",
                &[
                    "2026-03-28T11:00:00Z",
                    "2026-03-29T10:00:00Z",
                    "2026-03-30T10:00:00Z",
                ],
            ),
            (
                "0 12 * * *",
                "2026-10-24T00:00:00Z",
                &["2026-10-24T10:00:00Z", "2026-10-25T11:00:00Z"],
            ),
            // 2026-03-29 02:30 does not exist (02:00 CET -> 03:00 CEST): a
            // fixed-time job fires at the end of the gap, 03:00 CEST.
            (
                "cron(30 2 * * ? *)",
                "2026-03-28T12:00:00Z",
                &["2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"],
            ),
            // 2026-10-25 02:30 happens twice (03:00 CEST -> 02:00 CET): a
            // fixed-time job fires once, on the first pass.
            (
                "cron(30 2 * * ? *)",
                "2026-10-24T12:00:00Z",
                &["2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"],
            ),
            // An interval job skips the missing hour and runs both passes of
            // the repeated one.
            (
                "*/30 2 * * *",
                "2026-03-28T12:00:00Z",
                &["2026-03-30T00:00:00Z", "2026-03-30T00:30:00Z"],
            ),
            (
                "*/30 2 * * *",
                "2026-10-24T12:00:00Z",
                &[
                    "2026-10-25T00:00:00Z",
                    "2026-10-25T00:30:00Z",
                    "2026-10-25T01:00:00Z",
                    "2026-10-25T01:30:00Z",
                ],
            ),
        ];
        for (expr, from, due) in cases {
            let s = parse(cron(expr, Some("Europe/Paris")));
            assert_eq!(
                next_n(&s, from, due.len()),
                times(due),
                "{expr} from {from}"
            );
        }
    }

    #[test]
    fn latest_between_a_long_gap_is_the_last_missed_tick() {
        // A 1 s rate over a year of outage: one answer, the last tick.
        let s = parse(rate("1s"));
        let since = ms("2025-12-02T01:00:00Z");
        let at = ms("2026-12-02T01:00:00.500Z");
        assert_eq!(s.latest_between(since, at), Some(ms(NOW)));
        // Nothing missed: the last tick is the one already fired.
        assert_eq!(s.latest_between(ms(NOW), at), None);
        // `at` itself counts when due, `since` does not.
        assert_eq!(s.latest_between(ms(NOW) - 1, ms(NOW)), Some(ms(NOW)));

        // Cron: one search back from `at`, over years of ticks.
        let weekly = parse(cron("cron(0 8 ? * MON *)", Some("Europe/Paris")));
        let yearly = parse(cron("0 0 1 1 *", None));
        for (s, since, latest) in [
            (
                &weekly,
                "2024-01-01T00:00:00Z",
                Some("2026-11-30T07:00:00Z"),
            ),
            (&weekly, "2026-11-30T07:00:00Z", None),
            (
                &yearly,
                "2000-01-01T00:00:00Z",
                Some("2026-01-01T00:00:00Z"),
            ),
            (&yearly, "2026-01-01T00:00:00Z", None),
        ] {
            let got = s.latest_between(ms(since), ms(NOW));
            assert_eq!(got, latest.map(ms), "{} since {since}", s.describe());
        }
    }

    #[test]
    fn refused_cron_forms_name_the_field_and_the_accepted_forms() {
        const FORMS: &str = "5 cron fields (m h dom mon dow), cron(m h dom mon dow year) \
                             or rate(N minutes|hours|days)";
        let cases = [
            (
                "0 12 * * ? *",
                format!(
                    "cron: expected {FORMS} (6 fields are EventBridge's form: write it \
                     inside cron(…)), got \"0 12 * * ? *\""
                ),
            ),
            (
                "* * * *",
                format!("cron: expected {FORMS}, got \"* * * *\""),
            ),
            ("", format!("cron: expected {FORMS}, got \"\"")),
            (
                "cron(*/5 * * * *)",
                format!(
                    "cron: expected 6 fields in cron(m h dom mon dow year); {FORMS}, \
                     got \"cron(*/5 * * * *)\""
                ),
            ),
            (
                "cron(0 12 ? * ? *)",
                "cron: expected cron(m h dom mon dow year) with ? as exactly one of \
                 day-of-month and day-of-week (EventBridge's rule), got \"cron(0 12 ? * ? *)\""
                    .into(),
            ),
            (
                "cron(0 12 * * * *)",
                "cron: expected cron(m h dom mon dow year) with ? as exactly one of \
                 day-of-month and day-of-week (EventBridge's rule), got \"cron(0 12 * * * *)\""
                    .into(),
            ),
            (
                "cron(0 12 1,? * ? *)",
                "cron: expected cron(m h dom mon dow year) with ? as exactly one of \
                 day-of-month and day-of-week (EventBridge's rule), got \"cron(0 12 1,? * ? *)\""
                    .into(),
            ),
            (
                "61 * * * *",
                "cron: expected minute 0-59 as field 1 of 5 cron fields (m h dom mon dow), \
                 got \"61 * * * *\""
                    .into(),
            ),
            (
                "0 0 * JANUARY *",
                "cron: expected month 1-12 or JAN-DEC as field 4 of 5 cron fields \
                 (m h dom mon dow), got \"0 0 * JANUARY *\""
                    .into(),
            ),
            (
                "cron(0 0 ? * 0 *)",
                "cron: expected day-of-week 1-7 or SUN-SAT (1 = SUN), L, nL, n#k or ? as \
                 field 5 of cron(m h dom mon dow year), got \"cron(0 0 ? * 0 *)\""
                    .into(),
            ),
            (
                "cron(0 24 * * ? *)",
                "cron: expected hour 0-23 as field 2 of cron(m h dom mon dow year), \
                 got \"cron(0 24 * * ? *)\""
                    .into(),
            ),
        ];
        for (expr, message) in cases {
            assert_eq!(refused(cron(expr, None)), message, "{expr}");
        }
    }

    #[test]
    fn refused_eventbridge_rates() {
        for expr in [
            "rate(1 minutes)",
            "rate(5 minute)",
            "rate(0 minutes)",
            "rate(-5 minutes)",
            "rate(5 seconds)",
            "rate(5)",
            "rate(five minutes)",
            "rate(5 minutes",
        ] {
            assert_eq!(
                refused(cron(expr, None)),
                format!(
                    "cron: expected rate(1 minute|hour|day) or rate(N minutes|hours|days) \
                     with N a whole number from 2, got {expr:?}"
                )
            );
        }
    }

    #[test]
    fn refused_rate_durations() {
        for expr in [
            "500ms",
            "1500ms",
            "0s",
            "ten seconds",
            "rate(5 minutes)",
            "",
        ] {
            let got = if expr.starts_with(|c: char| c.is_ascii_digit())
                && expr.chars().all(|c| c.is_ascii_alphanumeric())
            {
                expr.to_string()
            } else {
                format!("{expr:?}")
            };
            assert_eq!(
                refused(rate(expr)),
                format!(
                    "rate: expected a duration of whole seconds, at least 1s \
                     (e.g. \"10s\", \"5m\", \"1h\"), got {got}"
                )
            );
        }
    }

    #[test]
    fn refused_zones_and_combinations() {
        assert_eq!(
            refused(cron("0 12 * * *", Some("Europe/Parsi"))),
            "timezone: expected an IANA time zone such as Europe/Paris or UTC, got \"Europe/Parsi\""
        );
        assert_eq!(
            refused(cron("0 12 * * *", Some("+02:00"))),
            "timezone: expected an IANA time zone such as Europe/Paris or UTC, got \"+02:00\""
        );
        let mut with_zone = rate("10s");
        with_zone.timezone = Some("Europe/Paris".into());
        assert_eq!(
            refused(with_zone),
            "timezone: expected no timezone with a rate (a rate ticks on a grid from the \
             Unix epoch; timezone applies to cron only), got \"Europe/Paris\""
        );
        assert_eq!(
            refused(cron("rate(5 minutes)", Some("Europe/Paris"))),
            "timezone: expected no timezone with a rate (a rate ticks on a grid from the \
             Unix epoch; timezone applies to cron only), got \"Europe/Paris\""
        );
        let mut both = cron("0 12 * * *", None);
        both.rate = Some("10s".into());
        assert_eq!(
            refused(both),
            "rate: expected no rate beside a cron (a schedule has exactly one of cron and \
             rate), got 10s"
        );
        let neither = ScheduleTrigger {
            cron: None,
            rate: None,
            timezone: Some("UTC".into()),
            payload: None,
        };
        assert_eq!(
            refused(neither),
            "cron: expected exactly one of cron and rate; cron takes 5 cron fields \
             (m h dom mon dow), cron(m h dom mon dow year) or rate(N minutes|hours|days), got \"\""
        );
    }
}
