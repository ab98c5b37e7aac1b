//! One command's reads and staged writes over the batch's [`View`]: reads see the view plus
//! the command's own changes so far; nothing reaches the view unless the command succeeds.

use chrono::{DateTime, Utc};

use super::{
    rows::{
        ChainHead, Changes, CheckpointRow, EventRow, GrantRow, ResponseRow, StoredResponse,
        TreeState, UNASSIGNED_LEAF,
    },
    view::{View, not_announced, not_before},
};
use crate::{
    audit::{NewEvent, canonical::CanonicalFields, chain},
    domain::{
        Error,
        access_request::AccessRequest,
        account::Account,
        assumption::{Assumption, Basis},
        grant::GrantRecord,
    },
    storage::to_us,
};

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
                .filter(|n| n.account_id == account_id)
                .cloned(),
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
    pub fn insert_assumption(&mut self, assumption: Assumption) {
        self.changes.new_assumptions.push(assumption);
    }

    /// An announced access request, as it stands in this draft (`None`: no such request).
    pub fn access_request(&self, id: &str) -> Result<Option<AccessRequest>, Error> {
        if let Some(changed) = self
            .changes
            .access_requests
            .iter()
            .find(|r| r.access_request_id == id)
        {
            return Ok(Some(changed.clone()));
        }
        self.view
            .requests
            .get(id)
            .cloned()
            .ok_or_else(|| not_announced("access request", id))
    }

    /// The account's requests whose stored state is pending or approved, as they stand in this
    /// draft (lapsed ones included: the caller evaluates them at its `now`); the account must
    /// have been announced with [`super::Keys::account_with_requests`].
    pub fn open_requests(&self, account_id: &str) -> Result<Vec<AccessRequest>, Error> {
        let ids = self
            .view
            .open_requests
            .get(account_id)
            .ok_or_else(|| not_announced("open access requests of", account_id))?;
        let mut out = Vec::new();
        for id in ids {
            if let Some(r) = self.access_request(id)? {
                out.push(r);
            }
        }
        out.extend(
            self.changes
                .access_requests
                .iter()
                .filter(|r| r.account_id == account_id && !ids.contains(&r.access_request_id))
                .cloned(),
        );
        out.retain(|r| r.status.is_open());
        Ok(out)
    }

    /// Writes an access request (new or changed).
    pub fn put_access_request(&mut self, request: AccessRequest) {
        match self
            .changes
            .access_requests
            .iter_mut()
            .find(|r| r.access_request_id == request.access_request_id)
        {
            Some(slot) => *slot = request,
            None => self.changes.access_requests.push(request),
        }
    }

    /// Writes a changed assumption (its expiry or end).
    pub fn change_assumption(&mut self, assumption: Assumption) {
        if let Some(new) = self
            .changes
            .new_assumptions
            .iter_mut()
            .find(|n| n.assumption_id == assumption.assumption_id)
        {
            *new = assumption;
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
            leaf_index: UNASSIGNED_LEAF,
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

    /// The Merkle tree's state (announced with `Keys::tree`).
    pub fn tree(&self) -> Result<&TreeState, Error> {
        self.view.tree()
    }

    /// Stores a signed checkpoint.
    pub fn put_checkpoint(&mut self, row: CheckpointRow) {
        self.changes.checkpoints.push(row);
    }

    /// Deletes stored responses created before `cutoff`.
    pub fn prune_responses_before(&mut self, cutoff: DateTime<Utc>) {
        self.changes.prune_responses_before = Some(to_us(cutoff));
    }
}
