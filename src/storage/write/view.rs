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
//! announced and `now`, testable without a database (see `View::from_rows`).

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::rows::{
    AssumptionRow, ChainHead, Changes, EventRow, GrantRow, ResponseRow, StoredResponse,
};
use crate::{
    audit::{NewEvent, canonical::CanonicalFields, chain},
    domain::{
        Error,
        account::Account,
        assumption::{Assumption, Basis},
        grant::GrantRecord,
    },
    storage::{from_us, to_us},
};

/// The rows a batch reads up front, announced by its commands before any of them runs.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Keys {
    /// Accounts with their grants and chain heads.
    pub accounts: Vec<String>,
    /// Accounts whose open assumptions (and those that lapsed with the grant) are needed too.
    pub open_assumptions: Vec<String>,
    /// Assumptions by id (their accounts are loaded with them, as if announced).
    pub assumptions: Vec<String>,
    /// `(rpc, request_id)` responses.
    pub responses: Vec<(String, String)>,
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
    /// Stored responses, keyed `(rpc, request_id)`.
    pub responses: Vec<((String, String), StoredResponse)>,
}

/// The rows of one batch as its commands see them.
#[derive(Debug, Default)]
pub struct View {
    /// Announced accounts (`None`: no such account).
    accounts: HashMap<String, Option<(Account, GrantRow)>>,
    /// Chain heads of announced accounts (genesis when they have no events).
    heads: HashMap<String, ChainHead>,
    /// Unended assumptions of accounts announced with theirs.
    open: HashMap<String, Vec<Assumption>>,
    /// Announced assumptions by id (`None`: no such assumption).
    assumptions: HashMap<String, Option<Assumption>>,
    /// Announced responses (`None`: none stored).
    responses: HashMap<(String, String), Option<StoredResponse>>,
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
        for row in &changes.new_assumptions {
            let a = &row.assumption;
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
        for r in &changes.responses {
            self.responses.insert(
                (r.scope.clone(), r.request_id.clone()),
                Some(r.response.clone()),
            );
        }
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

fn not_announced(what: &str, id: &str) -> Error {
    Error::Internal(format!(
        "a command read {what} {id:?} without announcing it"
    ))
}

/// `now` at storage precision, or the time of the chain's last event if that is later:
/// events never go back in time along a chain, even if the clock steps back, so time order
/// and sequence order agree (which is what lets a time range be found by sequence).
fn not_before(head: &ChainHead, now: DateTime<Utc>) -> Result<DateTime<Utc>, Error> {
    from_us(to_us(now).max(head.last_occur_time_us))
}

/// What an append assigned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// The new event's id.
    pub event_id: String,
    /// Its place in the account's chain.
    pub sequence: i64,
}

/// One command's reads and staged writes over the batch's [`View`].
#[derive(Debug)]
pub struct Draft<'v> {
    /// The batch as it stood before this command.
    view: &'v View,
    /// What this command has written so far.
    changes: Changes,
}

impl<'v> Draft<'v> {
    /// A draft with nothing written yet.
    pub fn new(view: &'v View) -> Self {
        Self {
            view,
            changes: Changes::default(),
        }
    }

    /// What the command wrote.
    pub fn into_changes(self) -> Changes {
        self.changes
    }

    fn account_row(&self, id: &str) -> Result<Option<(Account, GrantRow)>, Error> {
        let base = self
            .view
            .accounts
            .get(id)
            .ok_or_else(|| not_announced("account", id))?
            .clone();
        let account = self
            .changes
            .accounts
            .iter()
            .find(|a| a.account_id.as_str() == id)
            .cloned()
            .or_else(|| base.as_ref().map(|(a, _)| a.clone()));
        let grant = self
            .changes
            .grants
            .iter()
            .find(|(g, _)| g == id)
            .map(|(_, g)| g.clone())
            .or_else(|| base.map(|(_, g)| g));
        Ok(account.zip(grant))
    }

    /// An account with its grant (deleted accounts included), or `None`.
    pub fn account(&self, id: &str) -> Result<Option<(Account, GrantRecord)>, Error> {
        Ok(self.account_row(id)?.map(|(a, g)| (a, g.record)))
    }

    /// Writes an account row (new or changed).
    pub fn put_account(&mut self, account: Account) {
        let id = account.account_id.clone();
        match self
            .changes
            .accounts
            .iter_mut()
            .find(|a| a.account_id == id)
        {
            Some(slot) => *slot = account,
            None => self.changes.accounts.push(account),
        }
    }

    /// Writes an account's grant, keeping the sweep's marker of audited lapses.
    pub fn put_grant(&mut self, account_id: &str, record: GrantRecord) -> Result<(), Error> {
        let expiry_recorded_us = self
            .account_row(account_id)
            .ok()
            .flatten()
            .and_then(|(_, g)| g.expiry_recorded_us);
        self.put_grant_row(
            account_id,
            GrantRow {
                record,
                expiry_recorded_us,
            },
        );
        Ok(())
    }

    fn put_grant_row(&mut self, account_id: &str, row: GrantRow) {
        match self
            .changes
            .grants
            .iter_mut()
            .find(|(g, _)| g == account_id)
        {
            Some(slot) => slot.1 = row,
            None => self.changes.grants.push((account_id.to_owned(), row)),
        }
    }

    /// Claims the audit of the lapse of the period ending at `expire_time_us`: true, and the
    /// grant is marked, if that is still the enabled, lapsed, unaudited period of the account;
    /// false if there is nothing to claim (already audited, or the grant changed since).
    pub fn claim_lapse(
        &mut self,
        account_id: &str,
        expire_time_us: i64,
        now: DateTime<Utc>,
    ) -> Result<bool, Error> {
        let Some((_, mut grant)) = self.account_row(account_id)? else {
            return Ok(false);
        };
        let claimable = grant.record.enabled
            && grant.record.expire_time.map(to_us) == Some(expire_time_us)
            && expire_time_us <= to_us(now)
            && grant.expiry_recorded_us != Some(expire_time_us);
        if claimable {
            grant.expiry_recorded_us = Some(expire_time_us);
            self.put_grant_row(account_id, grant);
        }
        Ok(claimable)
    }

    /// The account's assumptions without an end, as they stand in this draft; it must have
    /// been announced with [`Keys::account_with_assumptions`].
    fn unended(&self, account_id: &str) -> Result<Vec<Assumption>, Error> {
        let loaded = self
            .view
            .open
            .get(account_id)
            .ok_or_else(|| not_announced("open assumptions of", account_id))?;
        let mut out: Vec<Assumption> = loaded
            .iter()
            .map(|a| {
                self.changes
                    .changed_assumptions
                    .iter()
                    .find(|c| c.assumption_id == a.assumption_id)
                    .unwrap_or(a)
                    .clone()
            })
            .collect();
        out.extend(
            self.changes
                .new_assumptions
                .iter()
                .filter(|n| n.assumption.account_id == account_id)
                .map(|n| n.assumption.clone()),
        );
        out.retain(|a| a.end_reason.is_none());
        Ok(out)
    }

    /// The account's assumptions in force at `now` (optionally only those of one basis).
    pub fn open_assumptions(
        &self,
        account_id: &str,
        basis: Option<Basis>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Assumption>, Error> {
        let mut open = self.unended(account_id)?;
        open.retain(|a| a.expire_time > now && basis.is_none_or(|b| a.basis == b));
        Ok(open)
    }

    /// The account's grant-based assumptions that ran out with the grant period ending at `end`.
    pub fn lapsed_with_grant(
        &self,
        account_id: &str,
        end: DateTime<Utc>,
    ) -> Result<Vec<Assumption>, Error> {
        let mut lapsed = self.unended(account_id)?;
        lapsed.retain(|a| a.basis == Basis::CustomerGrant && a.expire_time == end);
        Ok(lapsed)
    }

    /// An announced assumption, as it stands in this draft.
    pub fn assumption(&self, id: &str) -> Result<Option<Assumption>, Error> {
        if let Some(changed) = self
            .changes
            .changed_assumptions
            .iter()
            .find(|a| a.assumption_id == id)
        {
            return Ok(Some(changed.clone()));
        }
        self.view
            .assumptions
            .get(id)
            .cloned()
            .ok_or_else(|| not_announced("assumption", id))
    }

    /// Writes a new assumption.
    pub fn insert_assumption(&mut self, assumption: Assumption, ticket_id: &str) {
        self.changes.new_assumptions.push(AssumptionRow {
            assumption,
            ticket_id: ticket_id.to_owned(),
        });
    }

    /// Writes a changed assumption (its expiry or end).
    pub fn change_assumption(&mut self, assumption: Assumption) {
        if let Some(new) = self
            .changes
            .new_assumptions
            .iter_mut()
            .find(|n| n.assumption.assumption_id == assumption.assumption_id)
        {
            new.assumption = assumption;
            return;
        }
        match self
            .changes
            .changed_assumptions
            .iter_mut()
            .find(|a| a.assumption_id == assumption.assumption_id)
        {
            Some(slot) => *slot = assumption,
            None => self.changes.changed_assumptions.push(assumption),
        }
    }

    fn head(&self, account_id: &str) -> Result<ChainHead, Error> {
        if let Some((_, head)) = self.changes.heads.iter().find(|(id, _)| id == account_id) {
            return Ok(head.clone());
        }
        self.view
            .heads
            .get(account_id)
            .cloned()
            .ok_or_else(|| not_announced("chain head of", account_id))
    }

    /// Appends `event` to its account's chain at time `now` (or the chain's last event time,
    /// if later): the next sequence and the hash link come from the chain head as this
    /// draft sees it, so several events of one batch chain off each other.
    pub fn append(&mut self, event: NewEvent, now: DateTime<Utc>) -> Result<Appended, Error> {
        let account_id = event.account_id.as_str().to_owned();
        let head = self.head(&account_id)?;
        let sequence = head.last_sequence + 1;
        let occur_time = not_before(&head, now)?;
        // Time-ordered (UUIDv7): new ids land at the right edge of the `event_id` index
        // instead of a random leaf, so a batch dirties (and fsyncs) far fewer pages.
        let event_id = uuid::Uuid::now_v7().to_string();
        let detail_json = event.detail.to_string();
        let request_id = event.request_id.unwrap_or_default();
        let hash = chain::link_hash(
            &head.last_hash,
            &CanonicalFields {
                event_id: &event_id,
                account_id: &account_id,
                sequence,
                occur_time,
                kind: event.kind,
                actor: &event.actor,
                detail_json: &detail_json,
                request_id: &request_id,
            },
        );
        let (actor_type, actor_value) = event.actor.parts();
        let moved = ChainHead {
            last_sequence: sequence,
            last_hash: hash.clone(),
            last_occur_time_us: to_us(occur_time),
        };
        match self
            .changes
            .heads
            .iter_mut()
            .find(|(id, _)| *id == account_id)
        {
            Some(slot) => slot.1 = moved,
            None => self.changes.heads.push((account_id.clone(), moved)),
        }
        self.changes.events.push(EventRow {
            event_id: event_id.clone(),
            account_id,
            sequence,
            occur_time_us: to_us(occur_time),
            kind: event.kind.as_str().to_owned(),
            actor_type: actor_type.to_owned(),
            actor_value: actor_value.to_owned(),
            detail_json,
            request_id,
            prev_hash: head.last_hash,
            hash,
        });
        Ok(Appended { event_id, sequence })
    }

    /// Remembers the response to a `request_id`.
    pub fn remember(
        &mut self,
        scope: &str,
        request_id: &str,
        response: StoredResponse,
        now: DateTime<Utc>,
    ) {
        self.changes.responses.push(ResponseRow {
            scope: scope.to_owned(),
            request_id: request_id.to_owned(),
            response,
            create_time_us: to_us(now),
        });
    }

    /// Deletes stored responses created before `cutoff`.
    pub fn prune_responses_before(&mut self, cutoff: DateTime<Utc>) {
        self.changes.prune_responses_before = Some(to_us(cutoff));
    }
}
