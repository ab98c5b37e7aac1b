//! Conversions between protobuf messages and domain types. Request conversions validate every
//! field and report all violations at once; they destructure messages completely, so a field
//! added to a proto fails to compile here until it is handled.

use chrono::{DateTime, Utc};
use prost_types::Timestamp;

use crate::{
    domain::{
        Error, FieldViolation,
        account::{Account, Plan},
        actor::{Actor, Product, Role},
        duration::AccessDuration,
        error::Violations,
        grant::{DisableGrant, EnableGrant, GrantState, GrantView},
        ids::{self, AccountId},
    },
    proto::v1 as pb,
    service::accounts::{UpsertAccount, Upserted},
};

/// Domain time to protobuf.
pub fn timestamp(t: DateTime<Utc>) -> Timestamp {
    Timestamp {
        seconds: t.timestamp(),
        nanos: i32::try_from(t.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

fn enum_value<E: TryFrom<i32>>(value: i32, field: &str) -> Result<E, FieldViolation> {
    E::try_from(value)
        .map_err(|_| FieldViolation::new(field, format!("unknown enum value {value}")))
}

fn duration(value: i32, field: &str) -> Result<AccessDuration, FieldViolation> {
    match enum_value(value, field)? {
        pb::AccessDuration::Unspecified => Err(FieldViolation::new(field, "required")),
        pb::AccessDuration::OneDay => Ok(AccessDuration::OneDay),
        pb::AccessDuration::OneWeek => Ok(AccessDuration::OneWeek),
        pb::AccessDuration::OneMonth => Ok(AccessDuration::OneMonth),
        pb::AccessDuration::OneYear => Ok(AccessDuration::OneYear),
        pb::AccessDuration::Indefinite => Ok(AccessDuration::Indefinite),
    }
}

fn duration_to_pb(d: Option<AccessDuration>) -> pb::AccessDuration {
    match d {
        None => pb::AccessDuration::Unspecified,
        Some(AccessDuration::OneDay) => pb::AccessDuration::OneDay,
        Some(AccessDuration::OneWeek) => pb::AccessDuration::OneWeek,
        Some(AccessDuration::OneMonth) => pb::AccessDuration::OneMonth,
        Some(AccessDuration::OneYear) => pb::AccessDuration::OneYear,
        Some(AccessDuration::Indefinite) => pb::AccessDuration::Indefinite,
    }
}

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

/// Converts an actor; the roles' enums must be known (unspecified ones are ignored: they grant
/// nothing, and rejecting them would break clients that send a sparse list).
fn actor(value: Option<pb::Actor>, field: &str, v: &mut Violations) -> Option<Actor> {
    let Some(pb::Actor { user_id, roles }) = value else {
        v.push(FieldViolation::new(field, "required"));
        return None;
    };
    let user_id = v.check(ids::parse_printable_id(
        &user_id,
        &format!("{field}.user_id"),
    ));
    if roles.len() > 64 {
        v.push(FieldViolation::new(
            format!("{field}.roles"),
            "at most 64 roles",
        ));
        return None;
    }
    let mut out = Vec::with_capacity(roles.len());
    let mut roles_ok = true;
    for (i, pb::ProductRole { product, role }) in roles.into_iter().enumerate() {
        let product = v.check(enum_value::<pb::Product>(
            product,
            &format!("{field}.roles[{i}].product"),
        ));
        let role = v.check(enum_value::<pb::Role>(
            role,
            &format!("{field}.roles[{i}].role"),
        ));
        // Keep checking the remaining roles after a bad one, so every violation is reported.
        let (Some(product), Some(role)) = (product, role) else {
            roles_ok = false;
            continue;
        };
        let product = match product {
            pb::Product::Unspecified => continue,
            pb::Product::Support => Product::Support,
            pb::Product::Chat => Product::Chat,
            pb::Product::Sell => Product::Sell,
            pb::Product::Explore => Product::Explore,
            pb::Product::Guide => Product::Guide,
            pb::Product::Talk => Product::Talk,
        };
        let role = match role {
            pb::Role::Unspecified => continue,
            pb::Role::Admin => Role::Admin,
            pb::Role::Agent => Role::Agent,
            pb::Role::Other => Role::Other,
        };
        out.push((product, role));
    }
    if !roles_ok {
        return None;
    }
    Some(Actor {
        user_id: user_id?,
        roles: out,
    })
}

fn etag(value: String) -> Option<String> {
    (!value.is_empty()).then_some(value)
}

/// Validates a bare account id request field.
pub fn account_id(value: &str) -> Result<AccountId, Error> {
    AccountId::parse(value, "account_id").map_err(Error::from)
}

/// A validated `EnableAccessGrant` request.
pub fn enable_request(
    req: pb::EnableAccessGrantRequest,
) -> Result<(EnableGrant, Option<String>), Error> {
    let pb::EnableAccessGrantRequest {
        account_id,
        duration: duration_value,
        actor: actor_value,
        etag: etag_value,
        request_id,
    } = req;
    let mut v = Violations::new();
    let account_id = v.check(AccountId::parse(&account_id, "account_id"));
    let duration = v.check(duration(duration_value, "duration"));
    let actor = actor(actor_value, "actor", &mut v);
    let request_id = v.check(ids::parse_request_id(&request_id, "request_id"));
    let cmd = (|| {
        Some((
            EnableGrant {
                account_id: account_id?,
                duration: duration?,
                actor: actor?,
                etag: etag(etag_value),
            },
            request_id?,
        ))
    })();
    v.finish(cmd)
}

/// A validated `DisableAccessGrant` request.
pub fn disable_request(
    req: pb::DisableAccessGrantRequest,
) -> Result<(DisableGrant, Option<String>), Error> {
    let pb::DisableAccessGrantRequest {
        account_id,
        actor: actor_value,
        etag: etag_value,
        request_id,
    } = req;
    let mut v = Violations::new();
    let account_id = v.check(AccountId::parse(&account_id, "account_id"));
    let actor = actor(actor_value, "actor", &mut v);
    let request_id = v.check(ids::parse_request_id(&request_id, "request_id"));
    let cmd = (|| {
        Some((
            DisableGrant {
                account_id: account_id?,
                actor: actor?,
                etag: etag(etag_value),
            },
            request_id?,
        ))
    })();
    v.finish(cmd)
}

/// A validated `BatchGetAccessGrants` request.
pub fn batch_get_request(req: pb::BatchGetAccessGrantsRequest) -> Result<Vec<AccountId>, Error> {
    let pb::BatchGetAccessGrantsRequest { account_ids } = req;
    if account_ids.is_empty() {
        return Err(Error::invalid("account_ids", "at least one id is required"));
    }
    if account_ids.len() > crate::service::grants::MAX_BATCH {
        return Err(Error::invalid("account_ids", "at most 1000 ids"));
    }
    let mut v = Violations::new();
    let ids: Vec<Option<AccountId>> = account_ids
        .iter()
        .enumerate()
        .map(|(i, id)| v.check(AccountId::parse(id, &format!("account_ids[{i}]"))))
        .collect();
    v.finish(ids.into_iter().collect())
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

impl From<GrantView> for pb::AccessGrant {
    fn from(g: GrantView) -> Self {
        let state = match g.state {
            GrantState::Disabled => pb::access_grant::State::Disabled,
            GrantState::Enabled => pb::access_grant::State::Enabled,
            GrantState::Expired => pb::access_grant::State::Expired,
            GrantState::AlwaysOnTrial => pb::access_grant::State::AlwaysOnTrial,
        };
        Self {
            account_id: g.account_id.as_str().to_owned(),
            state: state.into(),
            duration: duration_to_pb(g.duration).into(),
            enable_time: g.enable_time.map(timestamp),
            expire_time: g.expire_time.map(timestamp),
            update_time: Some(timestamp(g.update_time)),
            update_user_id: g.update_user_id,
            configurable: g.configurable,
            etag: g.etag,
        }
    }
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
