//! UTC timestamps, formatted without a time-zone database.
//!
//! Logs use the seed's `2025-12-10 17:39:00` form; JSON uses RFC 3339 (`2025-12-10T17:39:00Z`).
//! Everything is UTC: an incident timeline read across machines must not depend on local zones.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A point in time, in whole milliseconds since the Unix epoch, UTC.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Timestamp {
    millis: i64,
}

/// With the `failpoints` feature (the crash tests' builds), `FORGE_ROLLBACK_CLOCK_SKEW_SECS`
/// (whole seconds, may be negative) is added to every [`Timestamp::now`]: tests run a command
/// with its clock set back, as NTP stepping it or a VM restored from a snapshot would.
#[cfg(feature = "failpoints")]
fn skew_millis() -> i64 {
    std::env::var("FORGE_ROLLBACK_CLOCK_SKEW_SECS")
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .map_or(0, |secs| secs.saturating_mul(1000))
}

/// Without the `failpoints` feature the clock is never skewed.
#[cfg(not(feature = "failpoints"))]
#[inline]
fn skew_millis() -> i64 {
    0
}

impl Timestamp {
    /// The current time.
    pub fn now() -> Self {
        let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
        let millis = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        Self { millis: millis.saturating_add(skew_millis()) }
    }

    /// From seconds since the epoch.
    pub fn from_unix(secs: i64) -> Self {
        Self { millis: secs.saturating_mul(1000) }
    }

    /// Milliseconds since the epoch.
    pub fn as_millis(self) -> i64 {
        self.millis
    }

    /// Seconds since the epoch.
    pub fn as_unix(self) -> i64 {
        self.millis.div_euclid(1000)
    }

    fn parts(self) -> (i64, u32, u32, u32, u32, u32, u32) {
        let secs = self.as_unix();
        let ms = u32::try_from(self.millis.rem_euclid(1000)).unwrap_or(0);
        let days = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400);
        // Howard Hinnant's civil_from_days.
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = doy - (153 * mp + 2) / 5 + 1;
        let m = if mp < 10 { mp + 3 } else { mp - 9 };
        let y = yoe + era * 400 + i64::from(m <= 2);
        let c = |v: i64| u32::try_from(v).unwrap_or(0);
        (y, c(m), c(d), c(sod / 3600), c(sod % 3600 / 60), c(sod % 60), ms)
    }

    /// `2025-12-10 17:39:00`, the seed's log format.
    pub fn log_format(self) -> String {
        let (y, mo, d, h, mi, s, _) = self.parts();
        format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}")
    }

    /// `20251210-173900`, for folder and run names.
    pub fn compact(self) -> String {
        let (y, mo, d, h, mi, s, _) = self.parts();
        format!("{y:04}{mo:02}{d:02}-{h:02}{mi:02}{s:02}")
    }

    /// `2025-12-10`.
    pub fn date(self) -> String {
        let (y, mo, d, ..) = self.parts();
        format!("{y:04}-{mo:02}-{d:02}")
    }

    /// Parses RFC 3339 in UTC (`2025-12-10T17:39:00Z`, optional `.123` fraction), and the
    /// seed's date-only `2025-12-10`.
    pub fn parse(text: &str) -> Option<Self> {
        let t = text.trim();
        let num = |s: &str| -> Option<i64> {
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            s.parse().ok()
        };
        let (date, time) = match t.split_once(['T', ' ']) {
            Some((d, tm)) => (d, Some(tm)),
            None => (t, None),
        };
        let mut dp = date.splitn(3, '-');
        let (y, m, d) = (num(dp.next()?)?, num(dp.next()?)?, num(dp.next()?)?);
        if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
            return None;
        }
        let (mut h, mut mi, mut s, mut ms) = (0, 0, 0, 0);
        if let Some(tm) = time {
            let tm = tm.strip_suffix('Z').or_else(|| tm.strip_suffix("+00:00"))?;
            let (hms, frac) = tm.split_once('.').unwrap_or((tm, ""));
            let mut tp = hms.splitn(3, ':');
            h = num(tp.next()?)?;
            mi = num(tp.next()?)?;
            s = num(tp.next().unwrap_or("0"))?;
            if !frac.is_empty() {
                let f: String = frac.chars().chain("000".chars()).take(3).collect();
                ms = num(&f)?;
            }
            if h > 23 || mi > 59 || s > 60 {
                return None;
            }
        }
        // days_from_civil
        let y2 = if m <= 2 { y - 1 } else { y };
        let era = y2.div_euclid(400);
        let yoe = y2.rem_euclid(400);
        let mp = (m + 9) % 12;
        let doy = (153 * mp + 2) / 5 + d - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        let days = era * 146_097 + doe - 719_468;
        Some(Self { millis: (days * 86_400 + h * 3600 + mi * 60 + s) * 1000 + ms })
    }

    /// Milliseconds from `earlier` to `self` (0 if negative).
    pub fn millis_since(self, earlier: Timestamp) -> u64 {
        u64::try_from(self.millis - earlier.millis).unwrap_or(0)
    }
}

impl fmt::Display for Timestamp {
    /// RFC 3339 with a `Z`, millisecond precision when there is one.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, mo, d, h, mi, s, ms) = self.parts();
        write!(f, "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}")?;
        if ms != 0 {
            write!(f, ".{ms:03}")?;
        }
        f.write_str("Z")
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Timestamp::parse(&s).ok_or_else(|| serde::de::Error::custom(format!("invalid timestamp `{s}`")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_the_seed() {
        let t = Timestamp::parse("2025-12-10T17:39:00Z").unwrap();
        assert_eq!(t.log_format(), "2025-12-10 17:39:00");
        assert_eq!(t.to_string(), "2025-12-10T17:39:00Z");
        assert_eq!(t.compact(), "20251210-173900");
        assert_eq!(t.as_unix(), 1_765_388_340);
    }

    #[test]
    fn round_trips_across_eras() {
        for secs in [0_i64, 951_782_400 /* 2000-02-29 */, 4_102_444_800, -86_400] {
            let t = Timestamp::from_unix(secs);
            assert_eq!(Timestamp::parse(&t.to_string()), Some(t), "{t}");
        }
        let t = Timestamp::parse("2024-02-29T23:59:59.5Z").unwrap();
        assert_eq!(t.to_string(), "2024-02-29T23:59:59.500Z");
        assert_eq!(Timestamp::parse("2025-12-10").unwrap().log_format(), "2025-12-10 00:00:00");
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["", "yesterday", "2025-13-01", "2025-12-10T25:00:00Z", "2025-12-10T10:00:00+02:00"] {
            assert_eq!(Timestamp::parse(bad), None, "{bad}");
        }
    }
}
