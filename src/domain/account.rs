//! Accounts and their plan transitions.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Error, ids::AccountId};

/// The commercial plan of an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Plan {
    /// A trial: support may always assume; the grant cannot be changed.
    Trial,
    /// A paying customer: the grant is the customer's to switch.
    Paid,
}

impl Plan {
    /// Stable storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Trial => "TRIAL",
            Self::Paid => "PAID",
        }
    }

    /// Parses a storage name.
    pub fn from_str_name(s: &str) -> Option<Self> {
        match s {
            "TRIAL" => Some(Self::Trial),
            "PAID" => Some(Self::Paid),
            _ => None,
        }
    }
}

/// A customer account as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// The account id.
    pub account_id: AccountId,
    /// The current plan.
    pub plan: Plan,
    /// When the account was created.
    pub create_time: DateTime<Utc>,
    /// When the account last changed.
    pub update_time: DateTime<Utc>,
    /// When the account was closed. A closed account is kept (its audit log must stay
    /// readable) but answers as not found everywhere else.
    pub delete_time: Option<DateTime<Utc>>,
}

impl Account {
    /// A closed account behaves as absent for every rule but the audit log.
    pub fn is_deleted(&self) -> bool {
        self.delete_time.is_some()
    }
}

/// What an upsert does to the stored account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanChange {
    /// No such account: create it.
    Create,
    /// Trial to paid: the grant becomes configurable and starts off.
    ConvertToPaid,
    /// Same plan again: nothing changes, nothing is written.
    Unchanged,
}

/// Decides what `UpsertAccount` does.
pub fn plan_change(existing: Option<&Account>, requested: Plan) -> Result<PlanChange, Error> {
    let Some(account) = existing else {
        return Ok(PlanChange::Create);
    };
    if account.is_deleted() {
        // Ids of closed accounts are not reused: their audit chain would otherwise mix two
        // customers' histories.
        return Err(Error::AccountDeleted);
    }
    match (account.plan, requested) {
        (Plan::Trial, Plan::Trial) | (Plan::Paid, Plan::Paid) => Ok(PlanChange::Unchanged),
        (Plan::Trial, Plan::Paid) => Ok(PlanChange::ConvertToPaid),
        (Plan::Paid, Plan::Trial) => Err(Error::PaidAccountCannotBecomeTrial),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn account(plan: Plan, deleted: bool) -> Account {
        let now = Utc::now();
        Account {
            account_id: AccountId::parse("acme", "f").unwrap(),
            plan,
            create_time: now,
            update_time: now,
            delete_time: deleted.then_some(now),
        }
    }

    #[test]
    fn transitions() {
        assert_eq!(plan_change(None, Plan::Trial).unwrap(), PlanChange::Create);
        let trial = account(Plan::Trial, false);
        let paid = account(Plan::Paid, false);
        assert_eq!(
            plan_change(Some(&trial), Plan::Trial).unwrap(),
            PlanChange::Unchanged
        );
        assert_eq!(
            plan_change(Some(&trial), Plan::Paid).unwrap(),
            PlanChange::ConvertToPaid
        );
        assert_eq!(
            plan_change(Some(&paid), Plan::Paid).unwrap(),
            PlanChange::Unchanged
        );
        assert!(matches!(
            plan_change(Some(&paid), Plan::Trial),
            Err(Error::PaidAccountCannotBecomeTrial)
        ));
        assert!(matches!(
            plan_change(Some(&account(Plan::Paid, true)), Plan::Paid),
            Err(Error::AccountDeleted)
        ));
    }
}
