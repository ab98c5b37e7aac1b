//! Grant durations and the calendar arithmetic of their expiry.

use chrono::{DateTime, Days, Months, Utc};
use serde::{Deserialize, Serialize};

/// How long an enabled grant lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AccessDuration {
    /// 24 hours.
    OneDay,
    /// 7 days.
    OneWeek,
    /// One calendar month in UTC (Jan 31 + 1 month = Feb 28/29).
    OneMonth,
    /// One calendar year in UTC (Feb 29 + 1 year = Feb 28).
    OneYear,
    /// Until disabled.
    Indefinite,
}

impl AccessDuration {
    /// When a grant enabled at `from` lapses; `None` for [`AccessDuration::Indefinite`].
    ///
    /// `chrono::Months` clamps to the last day of a shorter month, which is exactly the
    /// contract's rule. The arithmetic cannot overflow for any time a client can send (the
    /// clock is the server's), but if it ever did, the grant would end at `from` rather than
    /// last forever: failing closed.
    pub fn expire_time(self, from: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let end = match self {
            Self::OneDay => from.checked_add_days(Days::new(1)),
            Self::OneWeek => from.checked_add_days(Days::new(7)),
            Self::OneMonth => from.checked_add_months(Months::new(1)),
            Self::OneYear => from.checked_add_months(Months::new(12)),
            Self::Indefinite => return None,
        };
        Some(end.unwrap_or(from))
    }

    /// Stable storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OneDay => "ONE_DAY",
            Self::OneWeek => "ONE_WEEK",
            Self::OneMonth => "ONE_MONTH",
            Self::OneYear => "ONE_YEAR",
            Self::Indefinite => "INDEFINITE",
        }
    }

    /// Parses a storage name.
    pub fn from_str_name(s: &str) -> Option<Self> {
        Some(match s {
            "ONE_DAY" => Self::OneDay,
            "ONE_WEEK" => Self::OneWeek,
            "ONE_MONTH" => Self::OneMonth,
            "ONE_YEAR" => Self::OneYear,
            "INDEFINITE" => Self::Indefinite,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(y: i32, m: u32, d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, 13, 45, 7).unwrap()
    }

    #[test]
    fn calendar_exact() {
        use AccessDuration::*;
        assert_eq!(OneDay.expire_time(t(2026, 12, 31)), Some(t(2027, 1, 1)));
        assert_eq!(OneWeek.expire_time(t(2026, 2, 25)), Some(t(2026, 3, 4)));
        assert_eq!(OneMonth.expire_time(t(2027, 1, 31)), Some(t(2027, 2, 28)));
        assert_eq!(OneMonth.expire_time(t(2028, 1, 31)), Some(t(2028, 2, 29)));
        assert_eq!(OneYear.expire_time(t(2028, 2, 29)), Some(t(2029, 2, 28)));
        assert_eq!(Indefinite.expire_time(t(2028, 2, 29)), None);
    }

    #[test]
    fn storage_names_round_trip() {
        use AccessDuration::*;
        for d in [OneDay, OneWeek, OneMonth, OneYear, Indefinite] {
            assert_eq!(AccessDuration::from_str_name(d.as_str()), Some(d));
        }
    }
}
