//! Switching a grant on (or changing its period) and off.

use chrono::{DateTime, Utc};
use serde_json::json;

use super::{
    access_request::{ClosedBy, revoke_open_requests},
    lapse::record_pending_lapse,
    open_account,
};
use crate::{
    audit::{EventActor, EventKind, NewEvent, canonical::format_time},
    domain::{
        Error,
        access_request::RequestState,
        assumption::{Basis, EndReason},
        grant::{self, DisableGrant, EnableGrant, GrantChange, GrantView},
    },
    storage::write::{Command, Draft, Keys},
};

/// Enable the grant, or replace its period (from now: extend or shorten).
#[derive(Debug, Clone)]
pub struct Enable {
    /// The validated request.
    pub cmd: EnableGrant,
    /// The calling service, named in the event.
    pub principal: String,
    /// The client's `request_id`, named in the event.
    pub request_id: Option<String>,
}

impl Command for Enable {
    type Answer = GrantView;

    fn announce(&self, keys: &mut Keys) {
        keys.account_with_assumptions(self.cmd.account_id.as_str());
    }

    fn apply(&self, draft: &mut Draft<'_>, now: DateTime<Utc>) -> Result<GrantView, Error> {
        let id = &self.cmd.account_id;
        let (account, record) = open_account(draft.account(id.as_str())?)?;
        record_pending_lapse(draft, id, &record, now)?;
        let (next, change) = grant::enable(&account, &record, &self.cmd, now)?;
        draft.put_grant(id.as_str(), next.clone())?;
        let kind = match change {
            GrantChange::Enabled => EventKind::GrantEnabled,
            GrantChange::DurationChanged => EventKind::GrantDurationChanged,
            GrantChange::Disabled => {
                return Err(Error::Internal("enable produced a disable".into()));
            }
        };
        // A shortened grant also shortens the assumptions resting on it.
        let mut capped = 0_u64;
        if let (GrantChange::DurationChanged, Some(end)) = (change, next.expire_time) {
            for mut a in draft.open_assumptions(id.as_str(), Some(Basis::CustomerGrant), now)? {
                if a.expire_time > end {
                    a.expire_time = end;
                    draft.change_assumption(a);
                    capped += 1;
                }
            }
        }
        draft.append(
            NewEvent {
                account_id: id.clone(),
                kind,
                actor: EventActor::CustomerUser(self.cmd.actor.user_id.clone()),
                detail: json!({
                    "duration": self.cmd.duration.as_str(),
                    "expire_time": next.expire_time.map(format_time),
                    "previous_expire_time": record.expire_time.map(format_time),
                    "assumptions_shortened": capped,
                    "principal": self.principal,
                }),
                request_id: self.request_id.clone(),
            },
            now,
        )?;
        Ok(GrantView::at(&account, &next, now))
    }
}

/// Disable the grant and revoke every open assumption of the account ("everyone out").
#[derive(Debug, Clone)]
pub struct Disable {
    /// The validated request.
    pub cmd: DisableGrant,
    /// The calling service, named in the event.
    pub principal: String,
    /// The client's `request_id`, named in the event.
    pub request_id: Option<String>,
}

impl Command for Disable {
    type Answer = GrantView;

    fn announce(&self, keys: &mut Keys) {
        keys.account_with_assumptions(self.cmd.account_id.as_str());
        keys.account_with_requests(self.cmd.account_id.as_str());
    }

    fn apply(&self, draft: &mut Draft<'_>, now: DateTime<Utc>) -> Result<GrantView, Error> {
        let id = &self.cmd.account_id;
        let (account, record) = open_account(draft.account(id.as_str())?)?;
        record_pending_lapse(draft, id, &record, now)?;
        let disabled = grant::disable(&account, &record, &self.cmd, now)?;
        if let Some(next) = &disabled {
            draft.put_grant(id.as_str(), next.clone())?;
        }
        // Disabling ends every open assumption of the account. That holds for a grant already
        // off too: an emergency assumption taken meanwhile is still open, and a customer
        // asking for "off" ends it like any other.
        // "Everyone out" includes whoever is waiting or approved to come in. Requests first,
        // so each request's event names the assumptions made under it; the grant's event
        // names the rest.
        let by = ClosedBy {
            to: RequestState::Revoked,
            actor: EventActor::CustomerUser(self.cmd.actor.user_id.clone()),
            cause: Some("GRANT_DISABLED"),
            principal: &self.principal,
            request_id: self.request_id.as_ref(),
        };
        revoke_open_requests(draft, id, &by, now)?;
        let revoked = revoke_open(draft, id.as_str(), None, now)?;
        let was_enabled = disabled.is_some();
        let next = disabled.unwrap_or_else(|| record.clone());
        // Nothing changed about the grant or who is in: no grant event.
        if was_enabled || !revoked.is_empty() {
            draft.append(
                NewEvent {
                    account_id: id.clone(),
                    kind: EventKind::GrantDisabled,
                    actor: EventActor::CustomerUser(self.cmd.actor.user_id.clone()),
                    detail: json!({
                        "previous_expire_time": record.expire_time.map(format_time),
                        "was_enabled": was_enabled,
                        "revoked_assumption_ids": revoked,
                        "principal": self.principal,
                    }),
                    request_id: self.request_id.clone(),
                },
                now,
            )?;
        }
        Ok(GrantView::at(&account, &next, now))
    }
}

/// Revokes the account's assumptions in force at `now` (optionally of one basis only), and
/// returns their ids.
pub(crate) fn revoke_open(
    draft: &mut Draft<'_>,
    account_id: &str,
    basis: Option<Basis>,
    now: DateTime<Utc>,
) -> Result<Vec<String>, Error> {
    let open = draft.open_assumptions(account_id, basis, now)?;
    let mut ids = Vec::with_capacity(open.len());
    for mut a in open {
        a.end_time = Some(now);
        a.end_reason = Some(EndReason::Revoked);
        ids.push(a.assumption_id.clone());
        draft.change_assumption(a);
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        domain::{
            actor::{Actor, Product, Role},
            assumption::{Assumption, AssumptionState},
            duration::AccessDuration,
            grant::GrantState,
            ids::AccountId,
        },
        service::commands::fixture::{Fixture, t},
    };

    fn admin() -> Actor {
        Actor {
            user_id: "ada".into(),
            roles: vec![(Product::Support, Role::Admin)],
        }
    }

    fn enable(duration: AccessDuration) -> Enable {
        Enable {
            cmd: EnableGrant {
                account_id: AccountId::parse("acme", "account_id").unwrap(),
                duration,
                actor: admin(),
                etag: None,
            },
            principal: "admin-center".into(),
            request_id: None,
        }
    }

    fn disable() -> Disable {
        Disable {
            cmd: DisableGrant {
                account_id: AccountId::parse("acme", "account_id").unwrap(),
                actor: admin(),
                etag: None,
            },
            principal: "admin-center".into(),
            request_id: None,
        }
    }

    fn assumption(id: &str, basis: Basis, expire: DateTime<Utc>) -> Assumption {
        Assumption {
            assumption_id: id.into(),
            account_id: "acme".into(),
            staff_id: "sam".into(),
            ticket_id: "T-1".into(),
            access_request_id: None,
            basis,
            start_time: t(0),
            expire_time: expire,
            end_time: None,
            end_reason: None,
        }
    }

    /// Disabling revokes every open assumption, emergency ones included, even when the grant
    /// was already off; the one event names them.
    #[test]
    fn disable_revokes_every_open_assumption() {
        let mut f = Fixture::paid("acme");
        f.assumptions.push(assumption("em", Basis::Emergency, t(5)));
        f.assumptions
            .push(assumption("old", Basis::Emergency, t(1)));
        let view = f.run(&disable(), t(2)).unwrap();
        assert_eq!(view.state, GrantState::Disabled);
        assert_eq!(f.kinds("acme"), vec!["GRANT_DISABLED"]);
        assert_eq!(
            f.last_detail("acme")["revoked_assumption_ids"],
            json!(["em"])
        );
        let em = f
            .assumptions
            .iter()
            .find(|a| a.assumption_id == "em")
            .unwrap();
        assert_eq!(em.state_at(t(2)), AssumptionState::Revoked);
        let old = f
            .assumptions
            .iter()
            .find(|a| a.assumption_id == "old")
            .unwrap();
        assert_eq!(
            old.end_reason, None,
            "an expired assumption is left as it was"
        );
    }

    /// Disabling a grant that is off with nothing open writes nothing.
    #[test]
    fn disable_of_nothing_writes_nothing() {
        let mut f = Fixture::paid("acme");
        f.run(&disable(), t(1)).unwrap();
        assert!(f.events.is_empty());
    }

    /// Shortening caps grant-based assumptions at the new end, and only those.
    #[test]
    fn shortening_caps_grant_based_assumptions() {
        let mut f = Fixture::paid("acme");
        f.run(&enable(AccessDuration::OneWeek), t(0)).unwrap();
        f.assumptions
            .push(assumption("g", Basis::CustomerGrant, t(100)));
        f.assumptions
            .push(assumption("e", Basis::Emergency, t(100)));
        f.run(&enable(AccessDuration::OneDay), t(1)).unwrap();
        assert_eq!(
            f.kinds("acme"),
            vec!["GRANT_ENABLED", "GRANT_DURATION_CHANGED"]
        );
        assert_eq!(f.last_detail("acme")["assumptions_shortened"], json!(1));
        let g = f
            .assumptions
            .iter()
            .find(|a| a.assumption_id == "g")
            .unwrap();
        assert_eq!(g.expire_time, t(25));
        let e = f
            .assumptions
            .iter()
            .find(|a| a.assumption_id == "e")
            .unwrap();
        assert_eq!(e.expire_time, t(100));
    }

    /// Re-enabling after a lapse nobody recorded records the lapse first.
    #[test]
    fn a_change_after_an_unrecorded_lapse_records_it_first() {
        let mut f = Fixture::paid("acme");
        f.enable_until("acme", t(10));
        f.run(&enable(AccessDuration::OneDay), t(20)).unwrap();
        assert_eq!(f.kinds("acme"), vec!["GRANT_EXPIRED", "GRANT_ENABLED"]);
        let (_, grant) = &f.accounts["acme"];
        assert_eq!(grant.expiry_recorded_us, Some(Fixture::us(t(10))));
    }

    /// A refused change (a deleted account) writes nothing at all.
    #[test]
    fn a_refused_change_writes_nothing() {
        let mut f = Fixture::paid("acme");
        f.accounts.get_mut("acme").unwrap().0.delete_time = Some(t(0));
        assert!(matches!(
            f.run(&enable(AccessDuration::OneDay), t(1)),
            Err(Error::AccountNotFound)
        ));
        assert!(f.events.is_empty());
    }
}
