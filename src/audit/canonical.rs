//! The canonical byte encoding of an audit event: the input of its hash.
//!
//! **Version 1** (documented for independent verifiers in `docs/audit-log.md`): the
//! concatenation of these fields, in this order, each written as its length in bytes as a
//! 4-byte big-endian unsigned integer followed by its UTF-8 bytes:
//!
//! 1. the literal `accessgrant.audit.v1`
//! 2. `event_id`
//! 3. `account_id`
//! 4. `sequence` in decimal ASCII, no sign, no leading zeros
//! 5. `occur_time` as RFC 3339 UTC with exactly six fractional digits and `Z`
//!    (`2026-11-25T09:30:00.000000Z`)
//! 6. `kind` as the contract's enum name without `KIND_` (`GRANT_ENABLED`)
//! 7. the actor type: `customer_user_id`, `staff_id`, `service_principal` or `system`
//! 8. the actor value (empty for `system`)
//! 9. `detail_json`, the stored string byte for byte
//! 10. `request_id` (empty when none)
//!
//! Length prefixes make the encoding injective: no two different events encode alike, so
//! moving bytes between fields changes the hash. This encoding must never change silently:
//! a new encoding gets a new version literal, and verifiers pick the encoding by it.

use chrono::{DateTime, SecondsFormat, Utc};

use super::event::{EventActor, EventKind};

/// The version literal that opens every encoded event.
pub const VERSION_TAG: &str = "accessgrant.audit.v1";

/// The hashed fields of an event, borrowed.
#[derive(Debug, Clone, Copy)]
pub struct CanonicalFields<'a> {
    /// Event id.
    pub event_id: &'a str,
    /// Account id.
    pub account_id: &'a str,
    /// Per-account sequence.
    pub sequence: i64,
    /// Occurrence time (microsecond precision).
    pub occur_time: DateTime<Utc>,
    /// Kind.
    pub kind: EventKind,
    /// Actor.
    pub actor: &'a EventActor,
    /// Detail JSON as stored.
    pub detail_json: &'a str,
    /// Request id or empty.
    pub request_id: &'a str,
}

/// Formats a time the way the encoding requires.
pub fn format_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Encodes the fields (version 1).
pub fn encode(fields: &CanonicalFields<'_>) -> Vec<u8> {
    let (actor_type, actor_value) = fields.actor.parts();
    let sequence = fields.sequence.to_string();
    let time = format_time(fields.occur_time);
    let parts: [&str; 10] = [
        VERSION_TAG,
        fields.event_id,
        fields.account_id,
        &sequence,
        &time,
        fields.kind.as_str(),
        actor_type,
        actor_value,
        fields.detail_json,
        fields.request_id,
    ];
    let mut out = Vec::with_capacity(parts.iter().map(|p| p.len() + 4).sum());
    for part in parts {
        // Every field is far below 4 GiB (ids ≤ 128 chars, text ≤ 2,000 chars); saturating
        // keeps this total without a panic path.
        let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(part.as_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    /// A known-answer vector: if this changes, the encoding changed and every stored chain
    /// would stop verifying. Bump the version instead.
    #[test]
    fn known_answer() {
        let actor = EventActor::CustomerUser("alice".into());
        let f = CanonicalFields {
            event_id: "e1",
            account_id: "acme",
            sequence: 1,
            occur_time: Utc.with_ymd_and_hms(2026, 11, 25, 9, 30, 0).unwrap(),
            kind: EventKind::GrantEnabled,
            actor: &actor,
            detail_json: "{}",
            request_id: "",
        };
        let bytes = encode(&f);
        let expected_prefix =
            b"\0\0\0\x14accessgrant.audit.v1\0\0\0\x02e1\0\0\0\x04acme\0\0\0\x011";
        assert!(bytes.starts_with(expected_prefix));
        assert!(bytes.ends_with(b"\0\0\0\x02{}\0\0\0\0"));
        let time = b"\0\0\0\x1b2026-11-25T09:30:00.000000Z";
        assert!(bytes.windows(time.len()).any(|w| w == time));
        // The hash docs/audit-log.md gives for this first event.
        assert_eq!(
            hex::encode(crate::audit::chain::link_hash(&[0; 32], &f)),
            "065fe0464e555f111d359c2d2a73ff3153f6f79e93048bd096dfba5f3e0e3753"
        );
    }
}
