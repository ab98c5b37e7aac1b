//! Field conversions every service shares: account ids, enum values, timestamps, durations
//! and paging, each validated the same way whichever request carries them.

use chrono::{DateTime, Utc};
use prost_types::Timestamp;

use crate::{
    domain::{Error, FieldViolation, ids::AccountId},
    service::audit::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE},
};

/// Domain time to protobuf.
pub fn timestamp(t: DateTime<Utc>) -> Timestamp {
    Timestamp {
        seconds: t.timestamp(),
        nanos: i32::try_from(t.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

/// A protobuf enum field as its generated enum; an unknown number is a violation of `field`
/// (prost keeps unknown values as plain `i32`s, so each one must be checked).
pub fn enum_value<E: TryFrom<i32>>(value: i32, field: &str) -> Result<E, FieldViolation> {
    E::try_from(value)
        .map_err(|_| FieldViolation::new(field, format!("unknown enum value {value}")))
}

/// Validates a bare account id request field.
pub fn account_id(value: &str) -> Result<AccountId, Error> {
    AccountId::parse(value, "account_id").map_err(Error::from)
}

/// `google.protobuf.Timestamp`'s range: 0001-01-01T00:00:00Z ..= 9999-12-31T23:59:59Z.
const TIMESTAMP_SECONDS: std::ops::RangeInclusive<i64> = -62_135_596_800..=253_402_300_799;

/// An optional protobuf timestamp as domain time; one outside the range protobuf defines, or
/// with nanos out of range, is a violation of `field`.
pub fn time_from_pb(
    value: Option<Timestamp>,
    field: &str,
) -> Result<Option<DateTime<Utc>>, FieldViolation> {
    value
        .map(|ts| {
            u32::try_from(ts.nanos)
                .ok()
                .filter(|n| *n < 1_000_000_000)
                .filter(|_| TIMESTAMP_SECONDS.contains(&ts.seconds))
                .and_then(|n| DateTime::from_timestamp(ts.seconds, n))
                .ok_or_else(|| {
                    FieldViolation::new(
                        field,
                        "not a valid timestamp (years 1 to 9999, nanos 0 to 999,999,999)",
                    )
                })
        })
        .transpose()
}

/// Domain microseconds to `google.protobuf.Duration` (durations are stored to the µs).
pub fn duration_us_to_pb(us: i64) -> prost_types::Duration {
    prost_types::Duration {
        seconds: us.div_euclid(1_000_000),
        nanos: i32::try_from(us.rem_euclid(1_000_000) * 1_000).unwrap_or(0),
    }
}

/// A required `google.protobuf.Duration` as microseconds within `range` (both ends included);
/// a missing, malformed or out-of-range one is a violation of `field`. Nanoseconds below a
/// microsecond are dropped: storage keeps microseconds, and no duration this service takes
/// is meaningful below a minute.
pub fn duration_us_from_pb(
    value: Option<prost_types::Duration>,
    field: &str,
    range: std::ops::RangeInclusive<chrono::Duration>,
    range_text: &str,
) -> Result<i64, FieldViolation> {
    let Some(prost_types::Duration { seconds, nanos }) = value else {
        return Err(FieldViolation::new(field, "required"));
    };
    // The protobuf rules: |nanos| < 1e9 and nanos has the sign of seconds.
    let well_formed = nanos.unsigned_abs() < 1_000_000_000
        && !(seconds > 0 && nanos < 0)
        && !(seconds < 0 && nanos > 0);
    let duration = well_formed
        .then(|| chrono::Duration::try_seconds(seconds))
        .flatten()
        .and_then(|d| d.checked_add(&chrono::Duration::microseconds(i64::from(nanos / 1_000))));
    match duration {
        None => Err(FieldViolation::new(field, "not a valid duration")),
        Some(d) if !range.contains(&d) => Err(FieldViolation::new(field, range_text)),
        Some(d) => d
            .num_microseconds()
            .ok_or_else(|| FieldViolation::new(field, range_text)),
    }
}

/// A list request's `page_size`, as `ListAuditEvents` takes it: negative is a violation, 0 is
/// the default, and anything above the maximum is lowered to it (AIP-158).
pub fn page_size(value: i32) -> Result<u64, FieldViolation> {
    match value {
        n if n < 0 => Err(FieldViolation::new("page_size", "must not be negative")),
        0 => Ok(DEFAULT_PAGE_SIZE),
        n => Ok(u64::try_from(n).unwrap_or(MAX_PAGE_SIZE).min(MAX_PAGE_SIZE)),
    }
}

/// Longest page token accepted: the service's tokens are far shorter, so a longer one cannot
/// be ours and is refused before any decoding work.
const MAX_PAGE_TOKEN_BYTES: usize = 1024;

/// A list request's `page_token`: empty means the first page. Its content is checked by the
/// service, which alone can tell whether it was issued for the same query.
pub fn page_token(value: String) -> Result<Option<String>, FieldViolation> {
    if value.len() > MAX_PAGE_TOKEN_BYTES {
        return Err(FieldViolation::new("page_token", "malformed"));
    }
    Ok((!value.is_empty()).then_some(value))
}

/// The fields every newest-first list of one account shares (`ListAccessRequests`,
/// `ListAssumptions`), validated together: the account, the paging, and a state filter of at
/// most `max_states` entries, each converted by `state` (violations name `states[i]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListFields<S> {
    /// The account.
    pub account_id: crate::domain::ids::AccountId,
    /// Defaulted and capped.
    pub page_size: u64,
    /// `None` for the first page.
    pub page_token: Option<String>,
    /// The states asked for (empty: all).
    pub states: Vec<S>,
}

/// Validates [`ListFields`], reporting every bad field at once.
pub fn list_fields<S>(
    account_id: &str,
    page_size: i32,
    page_token: String,
    states: &[i32],
    max_states: usize,
    state: impl Fn(i32, &str) -> Result<S, FieldViolation>,
) -> Result<ListFields<S>, crate::domain::Error> {
    let mut v = crate::domain::error::Violations::new();
    let account_id = v.check(crate::domain::ids::AccountId::parse(
        account_id,
        "account_id",
    ));
    let page_size = v.check(self::page_size(page_size));
    let page_token = v.check(self::page_token(page_token));
    if states.len() > max_states {
        v.push(FieldViolation::new("states", "too many states"));
    }
    let states: Vec<Option<S>> = states
        .iter()
        .enumerate()
        .map(|(i, s)| v.check(state(*s, &format!("states[{i}]"))))
        .collect();
    let fields = (|| {
        Some(ListFields {
            account_id: account_id?,
            page_size: page_size?,
            page_token: page_token?,
            states: states.into_iter().collect::<Option<Vec<_>>>()?,
        })
    })();
    v.finish(fields)
}
