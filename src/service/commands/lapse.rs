//! Recording a lapsed grant period (`GRANT_EXPIRED`), exactly once per period.
//!
//! Nothing reads these events to decide anything: a grant's effective state is computed from
//! its `expire_time` at read time. Exactly-once comes from the grant row's marker of the last
//! audited lapse, *claimed* inside the same serialized write transaction as the event: of
//! several replicas (or a sweep racing an admin's change) exactly one claim finds the period
//! unaudited.

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::{
    audit::{EventActor, EventKind, NewEvent, canonical::format_time},
    domain::{Error, grant::GrantRecord, ids::AccountId},
    storage::{
        from_us, to_us,
        write::{Command, Draft, Keys},
    },
};

/// Record the lapse of the account's period that ended at `expire_time_us`, if still due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordLapse {
    /// The account.
    pub account_id: String,
    /// End of the lapsed period (µs).
    pub expire_time_us: i64,
}

impl Command for RecordLapse {
    /// True when this command recorded it (false: already recorded, or the grant changed).
    type Answer = bool;

    fn announce(&self, keys: &mut Keys) {
        keys.account_with_assumptions(&self.account_id);
    }

    fn apply(&self, draft: &mut Draft<'_>, now: DateTime<Utc>) -> Result<bool, Error> {
        let id = AccountId::parse(&self.account_id, "account_id")
            .map_err(|_| Error::Internal(format!("stored account id {:?}", self.account_id)))?;
        record_lapse(draft, &id, self.expire_time_us, now)
    }
}

/// Before changing a grant: if its period has lapsed and no sweep recorded that yet, record
/// it now, so `GRANT_EXPIRED` precedes the change in the account's log.
pub(crate) fn record_pending_lapse(
    draft: &mut Draft<'_>,
    account_id: &AccountId,
    record: &GrantRecord,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    if let (true, Some(end)) = (record.enabled, record.expire_time)
        && end <= now
    {
        record_lapse(draft, account_id, to_us(end), now)?;
    }
    Ok(())
}

/// Claims the lapse of the period ending at `expire_time_us` and appends its event. False
/// when there was nothing to claim.
fn record_lapse(
    draft: &mut Draft<'_>,
    account_id: &AccountId,
    expire_time_us: i64,
    now: DateTime<Utc>,
) -> Result<bool, Error> {
    if !draft.claim_lapse(account_id.as_str(), expire_time_us, now)? {
        return Ok(false);
    }
    // A deleted account's grant is moot: the lapse is marked handled, and nothing is written
    // after the account's deletion event.
    let open = draft
        .account(account_id.as_str())?
        .is_some_and(|(a, _)| !a.is_deleted());
    if !open {
        return Ok(false);
    }
    let end = from_us(expire_time_us)?;
    // Grant-based assumptions were capped to the grant's end, so they ran out with it; their
    // state already reads EXPIRED. Name them so the customer sees what the lapse ended.
    let expired: Vec<String> = draft
        .lapsed_with_grant(account_id.as_str(), end)?
        .into_iter()
        .map(|a| a.assumption_id)
        .collect();
    draft.append(
        NewEvent {
            account_id: account_id.clone(),
            kind: EventKind::GrantExpired,
            actor: EventActor::System,
            detail: json!({
                "expire_time": format_time(end),
                "expired_assumption_ids": expired,
            }),
            request_id: None,
        },
        now,
    )?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::commands::fixture::{Fixture, t};

    /// A lapse is claimed once: the second command finds nothing to record.
    #[test]
    fn a_lapse_is_recorded_once() {
        let mut f = Fixture::paid("acme");
        f.enable_until("acme", t(10));
        let lapse = RecordLapse {
            account_id: "acme".into(),
            expire_time_us: to_us(t(10)),
        };
        assert!(f.run(&lapse, t(11)).unwrap());
        assert!(!f.run(&lapse, t(12)).unwrap());
        assert_eq!(f.kinds("acme"), vec!["GRANT_EXPIRED"]);
    }

    /// A period that has not ended yet is not a lapse.
    #[test]
    fn a_period_still_running_is_not_claimed() {
        let mut f = Fixture::paid("acme");
        f.enable_until("acme", t(10));
        let lapse = RecordLapse {
            account_id: "acme".into(),
            expire_time_us: to_us(t(10)),
        };
        assert!(!f.run(&lapse, t(9)).unwrap());
        assert!(f.kinds("acme").is_empty());
    }
}
