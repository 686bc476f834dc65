//! `Retry-After` and HTTP-dates, parsed by hand.
//!
//! `Retry-After` is either delta-seconds (`120`) or an HTTP-date. HTTP-dates come in three
//! forms, all accepted (RFC 9110 §5.6.7):
//!
//! - IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT` (the one servers send today)
//! - obsolete RFC 850: `Sunday, 06-Nov-94 08:49:37 GMT` (two-digit years 70..=99 are 19xx,
//!   00..=69 are 20xx; the core has no clock to apply the "50 years" rule against)
//! - obsolete asctime: `Sun Nov  6 08:49:37 1994`
//!
//! The core has no wall clock, so a date cannot be compared with "now". Instead
//! [`retry_after`] measures it against the response's own `Date` header: both come from the
//! server's clock, so the delay is immune to skew between client and server. Without a usable
//! `Date` header a date-form `Retry-After` gives `None` and the caller falls back to its
//! computed backoff.

use std::fmt;
use std::time::Duration;

use http::HeaderMap;
use http::header::{DATE, RETRY_AFTER};

/// Longest delay a `Retry-After` may impose; larger values are clamped to this, so that a
/// confused server cannot park a batch for years.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 60 * 60);

const WEEKDAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const LONG_WEEKDAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// A point in time from an HTTP-date, in whole seconds since the UNIX epoch (UTC).
///
/// `Display` writes the IMF-fixdate form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HttpDate(i64);

/// The value of a `Retry-After` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryAfter {
    /// Retry after this long (delta-seconds).
    Delay(Duration),
    /// Retry at this time, by the server's clock.
    At(HttpDate),
}

impl RetryAfter {
    /// Parses either form; `None` when the value is neither.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
            // Overflowing digits still mean "a very long time".
            let seconds = text.parse().unwrap_or(u64::MAX);
            return Some(RetryAfter::Delay(Duration::from_secs(seconds)));
        }
        HttpDate::parse(text).map(RetryAfter::At)
    }
}

/// The delay a response asks for in its `Retry-After` header, clamped to
/// [`MAX_RETRY_AFTER`]. A date is measured against the response's `Date` header; `None` when
/// there is no usable `Retry-After`, or it is a date and there is no usable `Date`.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let header = |name| headers.get(name).and_then(|value| value.to_str().ok());
    let delay = match RetryAfter::parse(header(RETRY_AFTER)?)? {
        RetryAfter::Delay(delay) => delay,
        RetryAfter::At(at) => {
            let server_now = HttpDate::parse(header(DATE)?)?;
            at.seconds_since(server_now)
        }
    };
    Some(delay.min(MAX_RETRY_AFTER))
}

impl HttpDate {
    /// The date `seconds` after the UNIX epoch.
    pub const fn from_unix(seconds: i64) -> Self {
        HttpDate(seconds)
    }

    /// Seconds since the UNIX epoch.
    pub const fn unix(self) -> i64 {
        self.0
    }

    /// How long after `earlier` this date is; zero when it is not later.
    pub fn seconds_since(self, earlier: HttpDate) -> Duration {
        let seconds = self.0.saturating_sub(earlier.0).max(0);
        Duration::from_secs(u64::try_from(seconds).unwrap_or(0))
    }

    /// Parses an IMF-fixdate, RFC 850 or asctime date; `None` when it is none of them or
    /// names an impossible date. Weekday names are checked for spelling, not consistency.
    pub fn parse(text: &str) -> Option<Self> {
        let parts: Vec<&str> = text.split_ascii_whitespace().collect();
        let (year, month, day, time) = match parts.as_slice() {
            [weekday, day, month, year, time, "GMT"] => {
                weekday_index(weekday.strip_suffix(',')?, &WEEKDAYS)?;
                (
                    number(year, 4, 4)?,
                    month_index(month)?,
                    number(day, 1, 2)?,
                    time,
                )
            }
            [weekday, date, time, "GMT"] => {
                weekday_index(weekday.strip_suffix(',')?, &LONG_WEEKDAYS)?;
                let mut fields = date.split('-');
                let day = number(fields.next()?, 1, 2)?;
                let month = month_index(fields.next()?)?;
                let year = number(fields.next()?, 2, 2)?;
                if fields.next().is_some() {
                    return None;
                }
                let year = if year < 70 { 2000 + year } else { 1900 + year };
                (year, month, day, time)
            }
            [weekday, month, day, time, year] => {
                weekday_index(weekday, &WEEKDAYS)?;
                (
                    number(year, 4, 4)?,
                    month_index(month)?,
                    number(day, 1, 2)?,
                    time,
                )
            }
            _ => return None,
        };
        if day == 0 || day > days_in_month(year, month) {
            return None;
        }
        let mut clock = time.split(':');
        let mut field = |max| number(clock.next()?, 2, 2).filter(|value| *value <= max);
        let (hour, minute, second) = (field(23)?, field(59)?, field(60)?);
        if clock.next().is_some() {
            return None;
        }
        let days = days_from_civil(year, month, day);
        Some(HttpDate(days * 86_400 + hour * 3600 + minute * 60 + second))
    }
}

impl fmt::Display for HttpDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let days = self.0.div_euclid(86_400);
        let seconds = self.0.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        // 1970-01-01 was a Thursday.
        let weekday = WEEKDAYS[usize::try_from((days + 4).rem_euclid(7)).unwrap_or(0)];
        let month = MONTHS[usize::try_from(month - 1).unwrap_or(0)];
        write!(
            f,
            "{weekday}, {day:02} {month} {year:04} {:02}:{:02}:{:02} GMT",
            seconds / 3600,
            seconds / 60 % 60,
            seconds % 60
        )
    }
}

/// A decimal number of `min..=max` ASCII digits.
fn number(text: &str, min: usize, max: usize) -> Option<i64> {
    let ok = (min..=max).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_digit());
    ok.then(|| text.parse().ok()).flatten()
}

fn weekday_index(name: &str, names: &[&str]) -> Option<usize> {
    names.iter().position(|candidate| *candidate == name)
}

/// Month number 1..=12 from its three-letter name.
fn month_index(name: &str) -> Option<i64> {
    let index = MONTHS.iter().position(|month| *month == name)?;
    i64::try_from(index + 1).ok()
}

fn days_in_month(year: i64, month: i64) -> i64 {
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (month 1..=12), counting years from
/// March so that the leap day falls at the end.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The inverse of [`days_from_civil`]: (year, month 1..=12, day).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use proptest::prelude::*;

    const EXAMPLE: i64 = 784_111_777; // Sun, 06 Nov 1994 08:49:37 GMT

    #[test]
    fn three_date_forms() {
        for text in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
        ] {
            assert_eq!(HttpDate::parse(text), Some(HttpDate(EXAMPLE)), "{text}");
        }
        assert_eq!(
            HttpDate(EXAMPLE).to_string(),
            "Sun, 06 Nov 1994 08:49:37 GMT"
        );
        assert_eq!(
            HttpDate::parse("Thu, 01 Jan 1970 00:00:00 GMT"),
            Some(HttpDate(0))
        );
        assert_eq!(
            HttpDate::parse("Monday, 01-Jan-01 00:00:00 GMT"),
            Some(HttpDate(978_307_200))
        );
    }

    #[test]
    fn impossible_dates_are_rejected() {
        for text in [
            "",
            "GMT",
            "Sun, 30 Feb 1994 08:49:37 GMT",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 24:00:00 GMT",
            "Sun, 06 Nov 1994 08:49 GMT",
            "Sun, 06 Nov 1994 08:49:37:00 GMT",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Xyz, 06 Nov 1994 08:49:37 GMT",
            "Sun 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94-1 08:49:37 GMT",
            "Sun, +6 Nov 1994 08:49:37 GMT",
        ] {
            assert_eq!(HttpDate::parse(text), None, "{text:?}");
        }
        assert!(HttpDate::parse("Sat, 29 Feb 2000 00:00:00 GMT").is_some());
        assert!(HttpDate::parse("Mon, 29 Feb 1900 00:00:00 GMT").is_none());
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(
            RetryAfter::parse(" 120 "),
            Some(RetryAfter::Delay(Duration::from_secs(120)))
        );
        assert_eq!(
            RetryAfter::parse("99999999999999999999999"),
            Some(RetryAfter::Delay(Duration::from_secs(u64::MAX)))
        );
        assert_eq!(RetryAfter::parse("-1"), None);
        assert_eq!(RetryAfter::parse("1.5"), None);
    }

    fn headers(pairs: &[(http::HeaderName, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| (name.clone(), HeaderValue::from_str(value).unwrap()))
            .collect()
    }

    #[test]
    fn retry_after_header_against_server_date() {
        let seconds = headers(&[(RETRY_AFTER, "30")]);
        assert_eq!(retry_after(&seconds), Some(Duration::from_secs(30)));
        let dated = headers(&[
            (RETRY_AFTER, "Sun, 06 Nov 1994 08:50:07 GMT"),
            (DATE, "Sun, 06 Nov 1994 08:49:37 GMT"),
        ]);
        assert_eq!(retry_after(&dated), Some(Duration::from_secs(30)));
        let past = headers(&[
            (RETRY_AFTER, "Sun, 06 Nov 1994 08:49:00 GMT"),
            (DATE, "Sun, 06 Nov 1994 08:49:37 GMT"),
        ]);
        assert_eq!(retry_after(&past), Some(Duration::ZERO));
        let undated = headers(&[(RETRY_AFTER, "Sun, 06 Nov 1994 08:50:07 GMT")]);
        assert_eq!(retry_after(&undated), None);
        let huge = headers(&[(RETRY_AFTER, "999999999")]);
        assert_eq!(retry_after(&huge), Some(MAX_RETRY_AFTER));
        assert_eq!(retry_after(&HeaderMap::new()), None);
        assert_eq!(retry_after(&headers(&[(RETRY_AFTER, "soon")])), None);
    }

    proptest! {
        #[test]
        fn format_then_parse_round_trips(seconds in 0i64..253_402_300_800) {
            let date = HttpDate(seconds);
            prop_assert_eq!(HttpDate::parse(&date.to_string()), Some(date));
        }

        #[test]
        fn civil_days_round_trip(days in -1_000_000i64..1_000_000) {
            let (year, month, day) = civil_from_days(days);
            prop_assert_eq!(days_from_civil(year, month, day), days);
        }

        #[test]
        fn parse_never_panics(text in ".{0,40}") {
            let _ = RetryAfter::parse(&text);
        }
    }
}
