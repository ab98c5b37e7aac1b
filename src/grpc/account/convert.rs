//! `AccountService` messages ↔ domain: account commands in, accounts out. Request conversions
//! validate every field and report all violations at once; they destructure messages
//! completely, so a field added to a proto fails to compile here until it is handled.

use crate::{
    domain::{
        Error, FieldViolation,
        account::{Account, Plan},
        error::Violations,
        ids::{self, AccountId},
    },
    grpc::fields::{enum_value, timestamp},
    proto::v1 as pb,
    service::accounts::{UpsertAccount, Upserted},
};

fn plan(value: i32, field: &str) -> Result<Plan, FieldViolation> {
    match enum_value(value, field)? {
        pb::AccountPlan::Unspecified => Err(FieldViolation::new(field, "required")),
        pb::AccountPlan::Trial => Ok(Plan::Trial),
        pb::AccountPlan::Paid => Ok(Plan::Paid),
    }
}

fn plan_to_pb(p: Plan) -> pb::AccountPlan {
    match p {
        Plan::Trial => pb::AccountPlan::Trial,
        Plan::Paid => pb::AccountPlan::Paid,
    }
}

/// A validated `UpsertAccount` request.
pub fn upsert_request(
    req: pb::UpsertAccountRequest,
) -> Result<(UpsertAccount, Option<String>), Error> {
    let pb::UpsertAccountRequest {
        account_id,
        plan: plan_value,
        request_id,
    } = req;
    let mut v = Violations::new();
    let account_id = v.check(AccountId::parse(&account_id, "account_id"));
    let plan = v.check(plan(plan_value, "plan"));
    let request_id = v.check(ids::parse_request_id(&request_id, "request_id"));
    let cmd = (|| {
        Some((
            UpsertAccount {
                account_id: account_id?,
                plan: plan?,
            },
            request_id?,
        ))
    })();
    v.finish(cmd)
}

/// A validated `DeleteAccount` request.
pub fn delete_request(req: pb::DeleteAccountRequest) -> Result<(AccountId, Option<String>), Error> {
    let pb::DeleteAccountRequest {
        account_id,
        request_id,
    } = req;
    let mut v = Violations::new();
    let account_id = v.check(AccountId::parse(&account_id, "account_id"));
    let request_id = v.check(ids::parse_request_id(&request_id, "request_id"));
    let cmd = (|| Some((account_id?, request_id?)))();
    v.finish(cmd)
}

impl From<Account> for pb::Account {
    fn from(a: Account) -> Self {
        Self {
            account_id: a.account_id.as_str().to_owned(),
            plan: plan_to_pb(a.plan).into(),
            create_time: Some(timestamp(a.create_time)),
            update_time: Some(timestamp(a.update_time)),
        }
    }
}

impl From<Upserted> for pb::UpsertAccountResponse {
    fn from(u: Upserted) -> Self {
        Self {
            account: Some(u.account.into()),
            created: u.created,
        }
    }
}
