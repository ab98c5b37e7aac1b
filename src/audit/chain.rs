//! The per-account hash chain: `hash = SHA-256(prev_hash || canonical bytes)`, with 32 zero
//! bytes as the first event's `prev_hash`. Verification walks an account's events in sequence
//! order and reports the first one that does not check out, which catches an edited field
//! (its hash no longer matches), a deleted event (a sequence gap, or a `prev_hash` that does
//! not match), a reordered event and an inserted one (both break sequence or `prev_hash`).

use sha2::{Digest, Sha256};

use super::{
    canonical::{self, CanonicalFields},
    event::AuditEvent,
};

/// The `prev_hash` of an account's first event.
pub const GENESIS_HASH: [u8; 32] = [0; 32];

/// Computes an event's hash from its predecessor's hash and its canonical fields.
pub fn link_hash(prev_hash: &[u8], fields: &CanonicalFields<'_>) -> Vec<u8> {
    let mut hasher = Sha256::new();
    hasher.update(prev_hash);
    hasher.update(canonical::encode(fields));
    hasher.finalize().to_vec()
}

/// The result of verifying one account's chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    /// Events examined (up to and including the first broken one).
    pub events_checked: i64,
    /// The first event that does not check out, if any.
    pub first_broken_event_id: Option<String>,
}

impl Verification {
    /// True when the chain is intact.
    pub fn intact(&self) -> bool {
        self.first_broken_event_id.is_none()
    }
}

/// Incremental verifier, so storage can stream events through it without loading a whole
/// account's history into memory.
#[derive(Debug)]
pub struct ChainVerifier {
    /// Hash the next event must name as its `prev_hash`.
    expected_prev: Vec<u8>,
    /// Sequence the next event must have.
    expected_sequence: i64,
    /// Events seen so far.
    checked: i64,
    /// First failure, once found.
    broken: Option<String>,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        Self {
            expected_prev: GENESIS_HASH.to_vec(),
            expected_sequence: 1,
            checked: 0,
            broken: None,
        }
    }
}

impl ChainVerifier {
    /// Feeds the next event in sequence order. Returns false once the chain is broken (the
    /// caller may stop reading).
    pub fn push(&mut self, event: &AuditEvent) -> bool {
        if self.broken.is_some() {
            return false;
        }
        self.checked += 1;
        let fields = CanonicalFields {
            event_id: &event.event_id,
            account_id: &event.account_id,
            sequence: event.sequence,
            occur_time: event.occur_time,
            kind: event.kind,
            actor: &event.actor,
            detail_json: &event.detail_json,
            request_id: &event.request_id,
        };
        let ok = event.sequence == self.expected_sequence
            && event.prev_hash == self.expected_prev
            && event.hash == link_hash(&event.prev_hash, &fields);
        if ok {
            self.expected_prev = event.hash.clone();
            self.expected_sequence += 1;
        } else {
            self.broken = Some(event.event_id.clone());
        }
        ok
    }

    /// Reports a row that could not even be decoded (e.g. an unknown kind written into the
    /// database by hand) as the break.
    pub fn push_undecodable(&mut self, event_id: String) {
        if self.broken.is_none() {
            self.checked += 1;
            self.broken = Some(event_id);
        }
    }

    /// Checks the chain's head against the stored head (sequence and hash of the last event),
    /// which detects deleting the newest events. `head` is `None` when none is stored.
    /// A missing tail has no event id to report, so it is reported as
    /// `missing-after-sequence-N`.
    pub fn finish(mut self, head: Option<(i64, &[u8])>) -> Verification {
        if self.broken.is_none() {
            let (head_sequence, head_hash) = head.unwrap_or((0, &GENESIS_HASH[..]));
            let last_sequence = self.expected_sequence - 1;
            let tail_ok = head_sequence == last_sequence
                && (head_sequence == 0 || head_hash == self.expected_prev.as_slice());
            if !tail_ok {
                self.broken = Some(format!("missing-after-sequence-{last_sequence}"));
            }
        }
        Verification {
            events_checked: self.checked,
            first_broken_event_id: self.broken,
        }
    }
}
