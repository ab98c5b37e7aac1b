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
/// account's history into memory. It is given the chain head (last sequence and hash, stored
/// with every append) read in the same snapshot as the events.
#[derive(Debug)]
pub struct ChainVerifier {
    /// The stored head: sequence and hash of the newest event.
    head: (i64, Vec<u8>),
    /// Hash the next event must name as its `prev_hash`.
    expected_prev: Vec<u8>,
    /// Sequence the next event must have.
    expected_sequence: i64,
    /// Id of the last event accepted.
    last_event_id: Option<String>,
    /// Events seen so far.
    checked: i64,
    /// First failure, once found.
    broken: Option<String>,
}

impl ChainVerifier {
    /// A verifier for a chain whose stored head is `head` (`None`: no head row).
    pub fn new(head: Option<(i64, Vec<u8>)>) -> Self {
        Self {
            head: head.unwrap_or((0, GENESIS_HASH.to_vec())),
            expected_prev: GENESIS_HASH.to_vec(),
            expected_sequence: 1,
            last_event_id: None,
            checked: 0,
            broken: None,
        }
    }

    /// Feeds the next event in commit order. Returns false once the chain is broken (the
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
        // An event beyond the head was not appended by the service (which moves the head in
        // the same transaction): it was inserted.
        let ok = event.sequence == self.expected_sequence
            && event.sequence <= self.head.0
            && event.prev_hash == self.expected_prev
            && event.hash == link_hash(&event.prev_hash, &fields);
        if ok {
            self.expected_prev = event.hash.clone();
            self.expected_sequence += 1;
            self.last_event_id = Some(event.event_id.clone());
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

    /// Compares the end of the chain with the head. Fewer events than the head names means
    /// the newest were deleted, reported as `missing-after-sequence-N` (there is no event id
    /// to name); a last event whose hash differs from the head's was replaced.
    pub fn finish(mut self) -> Verification {
        if self.broken.is_none() {
            let last_sequence = self.expected_sequence - 1;
            if last_sequence < self.head.0 {
                self.broken = Some(format!("missing-after-sequence-{last_sequence}"));
            } else if last_sequence > 0 && self.head.1 != self.expected_prev {
                self.broken = self.last_event_id.take();
            }
        }
        Verification {
            events_checked: self.checked,
            first_broken_event_id: self.broken,
        }
    }
}
