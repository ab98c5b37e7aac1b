//! The access grant's state machine. The stored record says what an admin chose; the
//! *effective* state is computed from it, the plan and `now` at read time, so a lapsed grant
//! reads expired the instant its period ends without any background job.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{
    Error,
    access_request::AccessPolicy,
    account::{Account, Plan},
    actor::Actor,
    duration::AccessDuration,
    ids::AccountId,
};

/// The grant as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantRecord {
    /// Whether an admin switched it on (and has not switched it off since).
    pub enabled: bool,
    /// The duration chosen at the last enable.
    pub duration: Option<AccessDuration>,
    /// When the current (or last) period started.
    pub enable_time: Option<DateTime<Utc>>,
    /// When the current period ends; `None` when indefinite or not enabled.
    pub expire_time: Option<DateTime<Utc>>,
    /// When the record last changed.
    pub update_time: DateTime<Utc>,
    /// The customer user who made the last change; empty if none.
    pub update_user_id: String,
    /// Incremented on every change; the etag is derived from it.
    pub version: i64,
    /// The account's rules for access requests (stored with the grant; its own version).
    pub policy: AccessPolicy,
}

impl GrantRecord {
    /// The grant of a new account: off.
    pub fn initial(now: DateTime<Utc>) -> Self {
        Self {
            enabled: false,
            duration: None,
            enable_time: None,
            expire_time: None,
            update_time: now,
            update_user_id: String::new(),
            version: 1,
            policy: AccessPolicy::default(),
        }
    }

    /// The opaque etag of this version (AIP-154).
    pub fn etag(&self) -> String {
        format!("v{}", self.version)
    }

    /// After a trial converts to paid: configurable and off.
    pub fn reset_for_paid(&self, now: DateTime<Utc>) -> Self {
        Self {
            version: self.version + 1,
            // The admins' access policy is theirs, not the grant's: it survives conversion.
            policy: self.policy,
            ..Self::initial(now)
        }
    }
}

/// The effective state of a grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum GrantState {
    /// Never enabled, or switched off.
    Disabled,
    /// On and within its period.
    Enabled,
    /// Was on; its period ran out.
    Expired,
    /// A trial account: always on.
    AlwaysOnTrial,
}

/// Computes the effective state at `now`. The period is half-open: at `expire_time` exactly,
/// the grant has expired.
pub fn effective_state(plan: Plan, record: &GrantRecord, now: DateTime<Utc>) -> GrantState {
    match plan {
        Plan::Trial => GrantState::AlwaysOnTrial,
        Plan::Paid if !record.enabled => GrantState::Disabled,
        Plan::Paid => match record.expire_time {
            Some(end) if now >= end => GrantState::Expired,
            _ => GrantState::Enabled,
        },
    }
}

/// A grant as clients see it: the record evaluated at a point in time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantView {
    /// The account.
    pub account_id: AccountId,
    /// Effective state when the view was taken.
    pub state: GrantState,
    /// Duration of the last enable.
    pub duration: Option<AccessDuration>,
    /// Start of the current (or last) period.
    pub enable_time: Option<DateTime<Utc>>,
    /// End of the current period.
    pub expire_time: Option<DateTime<Utc>>,
    /// Last change.
    pub update_time: DateTime<Utc>,
    /// Who made the last change.
    pub update_user_id: String,
    /// False for trial accounts.
    pub configurable: bool,
    /// Version tag for conditional changes.
    pub etag: String,
}

impl GrantView {
    /// Evaluates `record` for `account` at `now`.
    pub fn at(account: &Account, record: &GrantRecord, now: DateTime<Utc>) -> Self {
        Self {
            account_id: account.account_id.clone(),
            state: effective_state(account.plan, record, now),
            duration: record.duration,
            enable_time: record.enable_time,
            expire_time: record.expire_time,
            update_time: record.update_time,
            update_user_id: record.update_user_id.clone(),
            configurable: account.plan == Plan::Paid,
            etag: record.etag(),
        }
    }
}

/// A request to switch the grant on (or change its duration).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EnableGrant {
    /// The account.
    pub account_id: AccountId,
    /// The new duration, counted from now.
    pub duration: AccessDuration,
    /// The customer admin.
    pub actor: Actor,
    /// Conditional-change tag, if the caller sent one.
    pub etag: Option<String>,
}

/// A request to switch the grant off.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DisableGrant {
    /// The account.
    pub account_id: AccountId,
    /// The customer admin.
    pub actor: Actor,
    /// Conditional-change tag, if the caller sent one.
    pub etag: Option<String>,
}

/// What a grant change did, which decides the audit event kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantChange {
    /// Disabled or expired → enabled.
    Enabled,
    /// Enabled → enabled with a new period.
    DurationChanged,
    /// Enabled → disabled.
    Disabled,
}

/// Checks shared by enable and disable. The actor is checked before anything about the
/// account so a non-admin learns nothing about it.
fn check_change_allowed(
    account: &Account,
    record: &GrantRecord,
    etag: Option<&str>,
) -> Result<(), Error> {
    if account.plan == Plan::Trial {
        return Err(Error::TrialAccountAlwaysOn);
    }
    match etag {
        Some(tag) if tag != record.etag() => Err(Error::EtagMismatch),
        _ => Ok(()),
    }
}

/// Checks that the actor may change grants at all; done before the account is read.
pub fn authorize_actor(actor: &Actor) -> Result<(), Error> {
    if actor.may_change_grant() {
        Ok(())
    } else {
        Err(Error::ActorNotAccountAdmin)
    }
}

/// Applies an enable: the new period always counts from `now` (extend or shorten).
pub fn enable(
    account: &Account,
    record: &GrantRecord,
    cmd: &EnableGrant,
    now: DateTime<Utc>,
) -> Result<(GrantRecord, GrantChange), Error> {
    authorize_actor(&cmd.actor)?;
    check_change_allowed(account, record, cmd.etag.as_deref())?;
    let change = match effective_state(account.plan, record, now) {
        GrantState::Enabled => GrantChange::DurationChanged,
        GrantState::Disabled | GrantState::Expired | GrantState::AlwaysOnTrial => {
            GrantChange::Enabled
        }
    };
    let next = GrantRecord {
        enabled: true,
        duration: Some(cmd.duration),
        enable_time: Some(now),
        expire_time: cmd.duration.expire_time(now),
        update_time: now,
        update_user_id: cmd.actor.user_id.clone(),
        version: record.version + 1,
        policy: record.policy,
    };
    Ok((next, change))
}

/// Applies a disable. `None` when the grant is not effectively enabled: disabling it again
/// succeeds and changes nothing.
pub fn disable(
    account: &Account,
    record: &GrantRecord,
    cmd: &DisableGrant,
    now: DateTime<Utc>,
) -> Result<Option<GrantRecord>, Error> {
    authorize_actor(&cmd.actor)?;
    check_change_allowed(account, record, cmd.etag.as_deref())?;
    match effective_state(account.plan, record, now) {
        GrantState::Enabled => Ok(Some(GrantRecord {
            enabled: false,
            expire_time: None,
            update_time: now,
            update_user_id: cmd.actor.user_id.clone(),
            version: record.version + 1,
            ..record.clone()
        })),
        GrantState::Disabled | GrantState::Expired | GrantState::AlwaysOnTrial => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::actor::{Product, Role};
    use chrono::{Duration, TimeZone};

    fn paid() -> Account {
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        Account {
            account_id: AccountId::parse("acme", "f").unwrap(),
            plan: Plan::Paid,
            create_time: t,
            update_time: t,
            delete_time: None,
        }
    }

    fn admin() -> Actor {
        Actor {
            user_id: "alice".into(),
            roles: vec![(Product::Support, Role::Admin)],
        }
    }

    #[test]
    fn expiry_is_half_open() {
        let now = Utc.with_ymd_and_hms(2026, 3, 1, 10, 0, 0).unwrap();
        let cmd = EnableGrant {
            account_id: paid().account_id,
            duration: AccessDuration::OneDay,
            actor: admin(),
            etag: None,
        };
        let (rec, change) = enable(&paid(), &GrantRecord::initial(now), &cmd, now).unwrap();
        assert_eq!(change, GrantChange::Enabled);
        let end = rec.expire_time.unwrap();
        let just_before = end - Duration::microseconds(1);
        assert_eq!(
            effective_state(Plan::Paid, &rec, just_before),
            GrantState::Enabled
        );
        assert_eq!(effective_state(Plan::Paid, &rec, end), GrantState::Expired);
    }

    #[test]
    fn disable_of_disabled_is_a_no_op() {
        let now = Utc::now();
        let cmd = DisableGrant {
            account_id: paid().account_id,
            actor: admin(),
            etag: None,
        };
        assert_eq!(
            disable(&paid(), &GrantRecord::initial(now), &cmd, now).unwrap(),
            None
        );
    }
}
