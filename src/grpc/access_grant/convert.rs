//! `AccessGrantService` messages ↔ domain: grant and policy commands in, grant and policy
//! views out. Request
//! conversions validate every field and report all violations at once; they destructure
//! messages completely, so a field added to a proto fails to compile here until it is handled.

use crate::{
    domain::{
        Error, FieldViolation,
        access_request::{
            MAX_POLICY_DURATION, MAX_REQUIRED_APPROVALS, MIN_REQUEST_DURATION, PolicyUpdate,
            PolicyView,
        },
        actor::{Actor, Product, Role},
        duration::AccessDuration,
        error::Violations,
        grant::{DisableGrant, EnableGrant, GrantState, GrantView},
        ids::{self, AccountId},
    },
    grpc::fields::{duration_us_from_pb, duration_us_to_pb, enum_value, timestamp},
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
/// nothing, and rejecting them would break clients that send a sparse list). Shared by every
/// request a customer admin makes, so the same actor is read the same way everywhere.
pub fn actor(value: Option<pb::Actor>, field: &str, v: &mut Violations) -> Option<Actor> {
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

/// An etag request field: empty means "unconditional" (AIP-154).
pub fn etag(value: String) -> Option<String> {
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

/// The `AccessPolicy` fields `UpdateAccessPolicy` may change, by their mask path.
const POLICY_PATHS: [&str; 3] = [
    "access_requests_enabled",
    "required_approvals",
    "max_request_duration",
];

/// Which policy fields an update mask names (AIP-134). `*` alone names all three (a full
/// replacement). An unset or empty mask names the fields the client populated (a non-default
/// value: `access_requests_enabled` true, `required_approvals` non-zero, a
/// `max_request_duration`), so a partial message changes only what it carries; switching
/// requests off needs the path named.
fn policy_mask(
    mask: Option<prost_types::FieldMask>,
    populated: [bool; 3],
    v: &mut Violations,
) -> [bool; 3] {
    let paths = mask.map(|m| m.paths).unwrap_or_default();
    if paths.is_empty() {
        return populated;
    }
    if paths == ["*"] {
        return [true; 3];
    }
    let mut named = [false; 3];
    for path in &paths {
        match POLICY_PATHS.iter().position(|p| p == path) {
            Some(i) => named[i] = true,
            None => v.push(FieldViolation::new(
                "update_mask",
                format!(
                    "unknown path {path:?}: allowed are {}, or \"*\" alone",
                    POLICY_PATHS.join(", ")
                ),
            )),
        }
    }
    named
}

/// A validated `UpdateAccessPolicy` request: fields outside the mask are `None` (and not
/// validated, since they are not applied).
pub fn update_policy_request(
    req: pb::UpdateAccessPolicyRequest,
) -> Result<(PolicyUpdate, Option<String>), Error> {
    let pb::UpdateAccessPolicyRequest {
        access_policy,
        update_mask,
        actor: actor_value,
        request_id,
    } = req;
    let mut v = Violations::new();
    let actor = actor(actor_value, "actor", &mut v);
    let request_id = v.check(ids::parse_request_id(&request_id, "request_id"));
    let Some(pb::AccessPolicy {
        account_id,
        access_requests_enabled,
        required_approvals,
        max_request_duration,
        etag: etag_value,
    }) = access_policy
    else {
        v.push(FieldViolation::new("access_policy", "required"));
        return v.finish(None);
    };
    let account_id = v.check(AccountId::parse(&account_id, "access_policy.account_id"));
    let populated = [
        access_requests_enabled,
        required_approvals != 0,
        max_request_duration.is_some(),
    ];
    let [enabled_named, approvals_named, duration_named] =
        policy_mask(update_mask, populated, &mut v);
    let required_approvals = if approvals_named {
        v.check(
            if (1..=MAX_REQUIRED_APPROVALS).contains(&required_approvals) {
                Ok(Some(required_approvals))
            } else {
                Err(FieldViolation::new(
                    "access_policy.required_approvals",
                    format!("from 1 to {MAX_REQUIRED_APPROVALS}"),
                ))
            },
        )
    } else {
        Some(None)
    };
    let max_request_duration_us = if duration_named {
        v.check(
            duration_us_from_pb(
                max_request_duration,
                "access_policy.max_request_duration",
                MIN_REQUEST_DURATION..=MAX_POLICY_DURATION,
                "from 1 minute to 30 days",
            )
            .map(Some),
        )
    } else {
        Some(None)
    };
    let cmd = (|| {
        Some((
            PolicyUpdate {
                account_id: account_id?,
                requests_enabled: enabled_named.then_some(access_requests_enabled),
                required_approvals: required_approvals?,
                max_request_duration_us: max_request_duration_us?,
                actor: actor?,
                etag: etag(etag_value),
            },
            request_id?,
        ))
    })();
    v.finish(cmd)
}

impl From<PolicyView> for pb::AccessPolicy {
    fn from(view: PolicyView) -> Self {
        let PolicyView { account_id, policy } = view;
        Self {
            account_id: account_id.as_str().to_owned(),
            access_requests_enabled: policy.requests_enabled,
            required_approvals: policy.required_approvals,
            max_request_duration: Some(duration_us_to_pb(policy.max_request_duration_us)),
            etag: policy.etag(),
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn update(paths: Option<&[&str]>, approvals: i32) -> pb::UpdateAccessPolicyRequest {
        pb::UpdateAccessPolicyRequest {
            access_policy: Some(pb::AccessPolicy {
                account_id: "acme".into(),
                access_requests_enabled: false,
                required_approvals: approvals,
                max_request_duration: Some(prost_types::Duration {
                    seconds: 3_600,
                    nanos: 0,
                }),
                etag: "p3".into(),
            }),
            update_mask: paths.map(|p| prost_types::FieldMask {
                paths: p.iter().map(|s| (*s).to_owned()).collect(),
            }),
            actor: Some(pb::Actor {
                user_id: "ada".into(),
                roles: vec![],
            }),
            request_id: String::new(),
        }
    }

    fn fields_of(e: Error) -> Vec<String> {
        match e {
            Error::InvalidArgument(v) => v.into_iter().map(|v| v.field).collect(),
            other => panic!("expected INVALID_ARGUMENT, got {other:?}"),
        }
    }

    /// `*` replaces all three fields; no mask (or an empty one) changes the populated ones;
    /// a mask leaves the others alone (and unvalidated).
    #[test]
    fn update_mask_selects_the_fields() {
        for paths in [None, Some(&[][..])] {
            let (u, _) = update_policy_request(update(paths, 2)).unwrap();
            assert_eq!(
                (
                    u.requests_enabled,
                    u.required_approvals,
                    u.max_request_duration_us
                ),
                (None, Some(2), Some(3_600_000_000)),
                "false is not populated: without a mask it is left alone"
            );
        }
        {
            let (u, _) = update_policy_request(update(Some(&["*"][..]), 2)).unwrap();
            assert_eq!(
                (
                    u.requests_enabled,
                    u.required_approvals,
                    u.max_request_duration_us
                ),
                (Some(false), Some(2), Some(3_600_000_000)),
            );
            assert_eq!(u.etag.as_deref(), Some("p3"));
        }
        let (u, _) = update_policy_request(update(Some(&["access_requests_enabled"]), 0)).unwrap();
        assert_eq!(
            (
                u.requests_enabled,
                u.required_approvals,
                u.max_request_duration_us
            ),
            (Some(false), None, None),
        );
    }

    /// Unknown paths and out-of-range values in the mask are violations, reported together.
    #[test]
    fn update_reports_bad_paths_and_values() {
        let fields = fields_of(
            update_policy_request(update(Some(&["etag", "required_approvals"]), 6)).unwrap_err(),
        );
        assert_eq!(fields, ["update_mask", "access_policy.required_approvals"]);
        let mut req = update(None, 1);
        if let Some(p) = req.access_policy.as_mut() {
            p.account_id = String::new();
            p.max_request_duration = Some(prost_types::Duration {
                seconds: 31 * 86_400,
                nanos: 0,
            });
        }
        let fields = fields_of(update_policy_request(req).unwrap_err());
        assert_eq!(
            fields,
            [
                "access_policy.account_id",
                "access_policy.max_request_duration"
            ]
        );
        let fields =
            fields_of(update_policy_request(pb::UpdateAccessPolicyRequest::default()).unwrap_err());
        assert_eq!(fields, ["actor", "access_policy"]);
    }
}
