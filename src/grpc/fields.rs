//! Field conversions every service shares: account ids, enum values and timestamps, each
//! validated the same way whichever request carries them.

use chrono::{DateTime, Utc};
use prost_types::Timestamp;

use crate::domain::{Error, FieldViolation, ids::AccountId};

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
