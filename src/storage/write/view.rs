//! What a command sees and what it changes.
//!
//! A [`View`] holds the rows a batch announced ([`Keys`]), as loaded at the start of the
//! batch and then changed by the batch's earlier commands. A command runs against a
//! [`Draft`] over the view: its reads see the view plus its own changes so far, its writes
//! are staged in the draft. Only if the command succeeds are its changes absorbed into the
//! view (the next command sees them) and queued for writing; a command that fails leaves
//! nothing behind, which is how a failing command fails alone without savepoints.
//!
//! Everything here is plain data and synchronous: commands are pure functions of what was
//! announced and `now`, testable without a database (`service::commands` tests run them on an in-memory fixture).

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::{
    keys::{Keys, Loaded},
    rows::{ChainHead, Changes, GrantRow, StoredResponse, TreeState},
};
use crate::{
    domain::{Error, access_request::AccessRequest, account::Account, assumption::Assumption},
    storage::{from_us, to_us},
};

/// The rows of one batch as its commands see them.
#[derive(Debug, Default)]
pub struct View {
    /// Announced accounts (`None`: no such account).
    pub(super) accounts: HashMap<String, Option<(Account, GrantRow)>>,
    /// Chain heads of announced accounts (genesis when they have no events).
    pub(super) heads: HashMap<String, ChainHead>,
    /// Unended assumptions of accounts announced with theirs.
    pub(super) open: HashMap<String, Vec<Assumption>>,
    /// Announced assumptions by id (`None`: no such assumption).
    pub(super) assumptions: HashMap<String, Option<Assumption>>,
    /// Announced access requests by id, and the open ones of accounts announced with theirs
    /// (`None`: no such request).
    pub(super) requests: HashMap<String, Option<AccessRequest>>,
    /// Ids of the stored open requests of accounts announced with theirs.
    pub(super) open_requests: HashMap<String, Vec<String>>,
    /// Announced responses (`None`: none stored).
    pub(super) responses: HashMap<(String, String), Option<StoredResponse>>,
    /// The tree's state, when announced.
    pub(super) tree: Option<TreeState>,
}

impl View {
    /// The view of `keys` given what was `loaded` for them.
    pub fn new(keys: &Keys, loaded: Loaded) -> Self {
        let mut view = View::default();
        for a in &loaded.assumptions {
            view.accounts.insert(a.account_id.clone(), None);
            view.heads
                .insert(a.account_id.clone(), ChainHead::genesis());
        }
        for id in &keys.accounts {
            view.accounts.insert(id.clone(), None);
            view.heads.insert(id.clone(), ChainHead::genesis());
        }
        for id in &keys.open_assumptions {
            view.open.insert(id.clone(), Vec::new());
        }
        for id in &keys.assumptions {
            view.assumptions.insert(id.clone(), None);
        }
        for id in &keys.access_requests {
            view.requests.insert(id.clone(), None);
        }
        for id in &keys.open_requests {
            view.open_requests.insert(id.clone(), Vec::new());
        }
        for r in loaded.access_requests {
            if r.status.is_open()
                && let Some(ids) = view.open_requests.get_mut(&r.account_id)
                && !ids.contains(&r.access_request_id)
            {
                ids.push(r.access_request_id.clone());
            }
            view.requests.insert(r.access_request_id.clone(), Some(r));
        }
        for key in &keys.responses {
            view.responses.insert(key.clone(), None);
        }
        for (account, grant) in loaded.accounts {
            let id = account.account_id.as_str().to_owned();
            view.accounts.insert(id, Some((account, grant)));
        }
        for (id, head) in loaded.heads {
            view.heads.insert(id, head);
        }
        for a in loaded.open_assumptions {
            view.open.entry(a.account_id.clone()).or_default().push(a);
        }
        for a in loaded.assumptions {
            view.assumptions.insert(a.assumption_id.clone(), Some(a));
        }
        for (key, response) in loaded.responses {
            view.responses.insert(key, Some(response));
        }
        view.tree = loaded.tree;
        view
    }

    /// Takes in a successful command's changes, so later commands see them.
    pub fn absorb(&mut self, changes: &Changes) {
        for account in &changes.accounts {
            let id = account.account_id.as_str().to_owned();
            if let Some(Some((known, _))) = self.accounts.get_mut(&id) {
                *known = account.clone();
            }
        }
        for (id, grant) in &changes.grants {
            if let Some(Some((_, known))) = self.accounts.get_mut(id) {
                *known = grant.clone();
            }
        }
        // A new account arrives with both rows in the same command.
        for account in &changes.accounts {
            let id = account.account_id.as_str();
            if let (Some(slot @ None), Some((_, grant))) = (
                self.accounts.get_mut(id),
                changes.grants.iter().find(|(g, _)| g == id),
            ) {
                *slot = Some((account.clone(), grant.clone()));
            }
        }
        for (id, head) in &changes.heads {
            self.heads.insert(id.clone(), head.clone());
        }
        for a in &changes.new_assumptions {
            if let Some(open) = self.open.get_mut(&a.account_id) {
                open.push(a.clone());
            }
            if let Some(slot) = self.assumptions.get_mut(&a.assumption_id) {
                *slot = Some(a.clone());
            }
        }
        for a in &changes.changed_assumptions {
            if let Some(open) = self.open.get_mut(&a.account_id)
                && let Some(known) = open.iter_mut().find(|o| o.assumption_id == a.assumption_id)
            {
                *known = a.clone();
            }
            if let Some(slot) = self.assumptions.get_mut(&a.assumption_id) {
                *slot = Some(a.clone());
            }
        }
        for r in &changes.access_requests {
            if let Some(ids) = self.open_requests.get_mut(&r.account_id)
                && !ids.contains(&r.access_request_id)
            {
                ids.push(r.access_request_id.clone());
            }
            self.requests
                .insert(r.access_request_id.clone(), Some(r.clone()));
        }
        for r in &changes.responses {
            self.responses.insert(
                (r.scope.clone(), r.request_id.clone()),
                Some(r.response.clone()),
            );
        }
        if let (Some(tree), Some(signed)) = (self.tree.as_mut(), changes.checkpoints.last()) {
            tree.latest = Some(signed.clone());
        }
    }

    /// The tree's state; it must have been announced.
    pub fn tree(&self) -> Result<&TreeState, Error> {
        self.tree
            .as_ref()
            .ok_or_else(|| not_announced("the tree", "audit"))
    }

    /// The stored response for `(scope, request_id)`; it must have been announced.
    pub fn response(
        &self,
        scope: &str,
        request_id: &str,
    ) -> Result<Option<&StoredResponse>, Error> {
        self.responses
            .get(&(scope.to_owned(), request_id.to_owned()))
            .map(Option::as_ref)
            .ok_or_else(|| not_announced("response", request_id))
    }

    /// The time the next event of `account_id` will carry, given the clock reads `now`:
    /// never before the chain's last event (see [`Draft::append`]).
    pub fn next_event_time(
        &self,
        account_id: &str,
        now: DateTime<Utc>,
    ) -> Result<DateTime<Utc>, Error> {
        let head = self
            .heads
            .get(account_id)
            .ok_or_else(|| not_announced("account", account_id))?;
        not_before(head, now)
    }
}

pub(super) fn not_announced(what: &str, id: &str) -> Error {
    Error::Internal(format!(
        "a command read {what} {id:?} without announcing it"
    ))
}

/// `now` at storage precision, or the time of the chain's last event if that is later:
/// events never go back in time along a chain, even if the clock steps back, so time order
/// and sequence order agree (which is what lets a time range be found by sequence).
pub(super) fn not_before(head: &ChainHead, now: DateTime<Utc>) -> Result<DateTime<Utc>, Error> {
    from_us(to_us(now).max(head.last_occur_time_us))
}
