//! What a batch announces it will read ([`Keys`]) and what a backend found for it
//! ([`Loaded`]).

use super::rows::{ChainHead, GrantRow, StoredResponse, TreeState};
use crate::domain::{access_request::AccessRequest, account::Account, assumption::Assumption};

/// The rows a batch reads up front, announced by its commands before any of them runs.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Keys {
    /// Accounts with their grants and chain heads.
    pub accounts: Vec<String>,
    /// Accounts whose open assumptions (and those that lapsed with the grant) are needed too.
    pub open_assumptions: Vec<String>,
    /// Assumptions by id (their accounts are loaded with them, as if announced).
    pub assumptions: Vec<String>,
    /// Access requests by id (only the requests: a command announces the account it needs).
    pub access_requests: Vec<String>,
    /// Accounts whose open (stored pending or approved) access requests are needed.
    pub open_requests: Vec<String>,
    /// `(rpc, request_id)` responses.
    pub responses: Vec<(String, String)>,
    /// The Merkle tree's state, for signing a checkpoint.
    pub tree: Option<TreeKeys>,
}

/// What a checkpoint signer reads of the tree: its size, the latest checkpoint of `origin`,
/// and the roots the stored nodes give at that checkpoint's size, at the current size and at
/// each of `roots_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeKeys {
    /// The log whose latest checkpoint is read.
    pub origin: String,
    /// More sizes whose stored roots are wanted (those above the tree's size are skipped).
    pub roots_at: Vec<u64>,
}

impl Keys {
    /// Announces an account (with grant and chain head).
    pub fn account(&mut self, id: &str) {
        push_distinct(&mut self.accounts, id);
    }

    /// Announces an account together with its open assumptions.
    pub fn account_with_assumptions(&mut self, id: &str) {
        self.account(id);
        push_distinct(&mut self.open_assumptions, id);
    }

    /// Announces an assumption by id (and so its account).
    pub fn assumption(&mut self, id: &str) {
        push_distinct(&mut self.assumptions, id);
    }

    /// Announces an access request by id.
    pub fn access_request(&mut self, id: &str) {
        push_distinct(&mut self.access_requests, id);
    }

    /// Announces an account together with its open access requests.
    pub fn account_with_requests(&mut self, id: &str) {
        self.account(id);
        push_distinct(&mut self.open_requests, id);
    }

    /// Announces a stored response.
    pub fn response(&mut self, scope: &str, request_id: &str) {
        let key = (scope.to_owned(), request_id.to_owned());
        if !self.responses.contains(&key) {
            self.responses.push(key);
        }
    }
}

fn push_distinct(ids: &mut Vec<String>, id: &str) {
    if !ids.iter().any(|known| known == id) {
        ids.push(id.to_owned());
    }
}

/// What a backend found for a batch's [`Keys`]; anything announced but missing is absent.
#[derive(Debug, Default, Clone)]
pub struct Loaded {
    /// Accounts with their grants (announced, or owning an announced assumption).
    pub accounts: Vec<(Account, GrantRow)>,
    /// Chain heads of those accounts that have events.
    pub heads: Vec<(String, ChainHead)>,
    /// Assumptions with no end yet of the accounts in `Keys::open_assumptions` that are in
    /// force at the batch's `now` or that ended with the grant's current period.
    pub open_assumptions: Vec<Assumption>,
    /// Announced assumptions, by id.
    pub assumptions: Vec<Assumption>,
    /// Announced access requests, and the stored pending or approved ones of the accounts in
    /// `Keys::open_requests` (a request may be both).
    pub access_requests: Vec<AccessRequest>,
    /// Stored responses, keyed `(rpc, request_id)`.
    pub responses: Vec<((String, String), StoredResponse)>,
    /// The tree's state, when announced.
    pub tree: Option<TreeState>,
}
