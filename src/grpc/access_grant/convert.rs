//! `AccessGrantService` messages ↔ domain: grant commands in, grant views out. Request
//! conversions validate every field and report all violations at once; they destructure
//! messages completely, so a field added to a proto fails to compile here until it is handled.

use crate::{
    domain::{
        Error, FieldViolation,
        actor::{Actor, Product, Role},
        duration::AccessDuration,
        error::Violations,
        grant::{DisableGrant, EnableGrant, GrantState, GrantView},
        ids::{self, AccountId},
    },
    grpc::fields::{enum_value, timestamp},
    proto::v1 as pb,
};

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
