//! The rows a write batch reads and writes, as plain data: what a backend loads into a
//! [`super::View`] and what it writes from [`Changes`]. No driver types, so one backend
//! trait serves SQLite and PostgreSQL alike.

use std::collections::BTreeMap;

use crate::{
    domain::{
        access_request::AccessRequest, account::Account, assumption::Assumption, grant::GrantRecord,
    },
    transparency::{Checkpoint, Hash, NodeKey},
};

/// An account's grant as stored: the record the rules see, plus the expiry sweep's marker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantRow {
    /// The grant as the rules see it.
    pub record: GrantRecord,
    /// The end (µs) of the last period whose lapse was audited (`GRANT_EXPIRED`), so each
    /// lapse is recorded once however many replicas sweep.
    pub expiry_recorded_us: Option<i64>,
}

/// An account's chain head: where its next audit event links.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainHead {
    /// Sequence of the account's last event (0: none yet).
    pub last_sequence: i64,
    /// Hash of the account's last event (the genesis hash: none yet).
    pub last_hash: Vec<u8>,
    /// Time of the account's last event, in microseconds (0: none yet). The next event's
    /// time is never below it, so time ranges map to sequence ranges.
    pub last_occur_time_us: i64,
}

impl ChainHead {
    /// The head of an account without events.
    pub fn genesis() -> Self {
        Self {
            last_sequence: 0,
            last_hash: crate::audit::chain::GENESIS_HASH.to_vec(),
            last_occur_time_us: 0,
        }
    }
}

/// A response stored for a `request_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    /// SHA-256 of the request (and caller) it answered.
    pub fingerprint: String,
    /// The response, as JSON.
    pub response_json: String,
}

/// A new audit event row, chained and hashed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRow {
    /// Server-assigned id (UUIDv7).
    pub event_id: String,
    /// The account whose chain it extends.
    pub account_id: String,
    /// Its place in that chain.
    pub sequence: i64,
    /// When it happened (µs), never before the chain's previous event.
    pub occur_time_us: i64,
    /// Its kind, as stored.
    pub kind: String,
    /// Actor type, as stored.
    pub actor_type: String,
    /// Actor value, as stored.
    pub actor_value: String,
    /// Kind-specific details (a JSON object).
    pub detail_json: String,
    /// The causing request's id ("" when none).
    pub request_id: String,
    /// The previous event's hash.
    pub prev_hash: Vec<u8>,
    /// SHA-256 of `prev_hash` and the canonical encoding.
    pub hash: Vec<u8>,
    /// Its leaf in the Merkle tree, assigned by the loop when the batch is written
    /// ([`UNASSIGNED_LEAF`] until then).
    pub leaf_index: i64,
}

/// Where the next leaves go: the tree's size and right edge, kept on the `write_fence` row so
/// a batch reads them with the lock it takes anyway (one row, no node reads).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TreeTip {
    /// Leaves in the tree.
    pub size: u64,
    /// The hashes of its complete subtrees, largest first (`merkle::frontier_keys`).
    pub frontier: Vec<Hash>,
}

impl TreeTip {
    /// The stored form of the right edge: the hashes concatenated.
    pub fn frontier_bytes(&self) -> Vec<u8> {
        self.frontier.concat()
    }

    /// Decodes a stored tip; a right edge that does not fit the size is damage.
    pub fn from_stored(size: i64, frontier: &[u8]) -> Result<Self, crate::domain::Error> {
        let damaged = || {
            crate::domain::Error::Internal(format!(
                "the stored tree head (size {size}, {} bytes of right edge) is damaged",
                frontier.len()
            ))
        };
        let size = u64::try_from(size).map_err(|_| damaged())?;
        if frontier.len() != 32 * size.count_ones() as usize {
            return Err(damaged());
        }
        let frontier = frontier
            .chunks_exact(32)
            .map(|c| c.try_into().map_err(|_| damaged()))
            .collect::<Result<_, _>>()?;
        Ok(Self { size, frontier })
    }
}

/// The `leaf_index` of an event not yet placed in the tree.
pub const UNASSIGNED_LEAF: i64 = -1;

/// A signed checkpoint as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointRow {
    /// The signed tree head.
    pub checkpoint: Checkpoint,
    /// The signed note text.
    pub note: String,
    /// When it was signed (µs).
    pub sign_time_us: i64,
}

/// The tree as a checkpoint signer sees it: its size now, the latest checkpoint of an
/// origin, and the roots the *stored nodes* give at the sizes asked for (see
/// [`super::keys::TreeKeys`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TreeState {
    /// Leaves in the stored tree.
    pub size: u64,
    /// The origin's latest signed checkpoint.
    pub latest: Option<CheckpointRow>,
    /// Root at each asked size (and at `size` and at the latest checkpoint's size) that is
    /// not above `size`.
    pub roots: BTreeMap<u64, Hash>,
}

/// A response to remember for a `request_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseRow {
    /// The RPC.
    pub scope: String,
    /// The client's key.
    pub request_id: String,
    /// What it answered, and for which request.
    pub response: StoredResponse,
    /// When (µs), for pruning.
    pub create_time_us: i64,
}

/// Everything a batch (or one command) writes. Each vector holds the final row per key, in
/// the order first written; events stay in append order (their global positions follow it).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Changes {
    /// Accounts inserted or replaced.
    pub accounts: Vec<Account>,
    /// Grants inserted or replaced, by account id.
    pub grants: Vec<(String, GrantRow)>,
    /// Assumptions inserted.
    pub new_assumptions: Vec<Assumption>,
    /// Existing assumptions whose expiry or end changed.
    pub changed_assumptions: Vec<Assumption>,
    /// Access requests inserted or replaced (the final row per id).
    pub access_requests: Vec<AccessRequest>,
    /// Audit events appended.
    pub events: Vec<EventRow>,
    /// Chain heads the events moved, as they stand after the last of them.
    pub heads: Vec<(String, ChainHead)>,
    /// Responses remembered.
    pub responses: Vec<ResponseRow>,
    /// Delete stored responses created before this time (µs).
    pub prune_responses_before: Option<i64>,
    /// Checkpoints signed.
    pub checkpoints: Vec<CheckpointRow>,
    /// Tree nodes the events complete (computed by the loop from the stored frontier, right
    /// before writing: see `write::tree`).
    pub tree_nodes: Vec<(NodeKey, Hash)>,
    /// The tree's new head, when events were placed.
    pub tree_tip: Option<TreeTip>,
}

impl Changes {
    /// True when there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty()
            && self.grants.is_empty()
            && self.new_assumptions.is_empty()
            && self.changed_assumptions.is_empty()
            && self.access_requests.is_empty()
            && self.events.is_empty()
            && self.heads.is_empty()
            && self.responses.is_empty()
            && self.prune_responses_before.is_none()
            && self.checkpoints.is_empty()
    }

    /// Adds a later command's changes: a key written again keeps its first place and takes
    /// the later row.
    pub fn extend(&mut self, later: Changes) {
        for a in later.accounts {
            replace_or_push(&mut self.accounts, a, |x, y| x.account_id == y.account_id);
        }
        for g in later.grants {
            replace_or_push(&mut self.grants, g, |x, y| x.0 == y.0);
        }
        self.new_assumptions.extend(later.new_assumptions);
        for a in later.changed_assumptions {
            // An assumption created in this batch is inserted with its final fields.
            if let Some(new) = self
                .new_assumptions
                .iter_mut()
                .find(|n| n.assumption_id == a.assumption_id)
            {
                *new = a;
            } else {
                replace_or_push(&mut self.changed_assumptions, a, |x, y| {
                    x.assumption_id == y.assumption_id
                });
            }
        }
        for r in later.access_requests {
            replace_or_push(&mut self.access_requests, r, |x, y| {
                x.access_request_id == y.access_request_id
            });
        }
        self.events.extend(later.events);
        for h in later.heads {
            replace_or_push(&mut self.heads, h, |x, y| x.0 == y.0);
        }
        self.responses.extend(later.responses);
        self.checkpoints.extend(later.checkpoints);
        self.tree_nodes.extend(later.tree_nodes);
        if later.tree_tip.is_some() {
            self.tree_tip = later.tree_tip;
        }
        self.prune_responses_before =
            match (self.prune_responses_before, later.prune_responses_before) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
    }

    /// The accounts whose account or grant row this writes: what the read cache must forget.
    pub fn changed_accounts(&self) -> impl Iterator<Item = &str> {
        self.accounts
            .iter()
            .map(|a| a.account_id.as_str())
            .chain(self.grants.iter().map(|(id, _)| id.as_str()))
    }
}

fn replace_or_push<T>(rows: &mut Vec<T>, row: T, same: impl Fn(&T, &T) -> bool) {
    match rows.iter_mut().find(|r| same(r, &row)) {
        Some(slot) => *slot = row,
        None => rows.push(row),
    }
}
