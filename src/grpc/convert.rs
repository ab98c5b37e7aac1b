//! Conversions between protobuf messages and domain types. Request conversions validate every
//! field and report all violations at once; they destructure messages completely, so a field
//! added to a proto fails to compile here until it is handled.

use chrono::{DateTime, Utc};
use prost_types::Timestamp;

use crate::{
    audit::{AuditEvent, EventActor, EventKind},
    domain::{
        Error, FieldViolation,
        account::{Account, Plan},
        actor::{Actor, Product, Role},
        assumption::{
            AccessReason, AssumptionDecision, AssumptionRequest, AssumptionState, AssumptionView,
            Basis, DenyReason, Emergency, EmergencyReason, MIN_JUSTIFICATION_CHARS,
        },
        duration::AccessDuration,
        error::Violations,
        grant::{DisableGrant, EnableGrant, GrantState, GrantView},
        ids::{self, AccountId},
    },
    proto::v1 as pb,
    service::{
        accounts::{UpsertAccount, Upserted},
        audit::{DEFAULT_PAGE_SIZE, ListQuery, MAX_PAGE_SIZE},
    },
    storage::audit_log::EventFilter,
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

fn access_reason(value: i32, field: &str) -> Result<AccessReason, FieldViolation> {
    match enum_value(value, field)? {
        pb::AccessReason::Unspecified => Err(FieldViolation::new(field, "required")),
        pb::AccessReason::EscalatedTechnicalIssue => Ok(AccessReason::EscalatedTechnicalIssue),
        pb::AccessReason::CannotReproduceElsewhere => Ok(AccessReason::CannotReproduceElsewhere),
        pb::AccessReason::VisualConsoleInspection => Ok(AccessReason::VisualConsoleInspection),
        pb::AccessReason::IpConfiguration => Ok(AccessReason::IpConfiguration),
        pb::AccessReason::TestTickets => Ok(AccessReason::TestTickets),
        pb::AccessReason::Other => Ok(AccessReason::Other),
    }
}

fn emergency(value: pb::EmergencyJustification, v: &mut Violations) -> Option<Emergency> {
    let pb::EmergencyJustification {
        reason,
        justification,
    } = value;
    let reason = v.check(match enum_value(reason, "emergency.reason") {
        Ok(pb::EmergencyReason::Unspecified) => {
            Err(FieldViolation::new("emergency.reason", "required"))
        }
        Ok(pb::EmergencyReason::PreventSeriousHarm) => Ok(EmergencyReason::PreventSeriousHarm),
        Ok(pb::EmergencyReason::SuspectedTermsViolation) => {
            Ok(EmergencyReason::SuspectedTermsViolation)
        }
        Err(e) => Err(e),
    });
    let justification = v.check(
        ids::parse_free_text(&justification, "emergency.justification").and_then(|text| {
            // Counted as a reader sees it: blanks and invisible characters do not explain.
            if ids::visible_chars(&text) < MIN_JUSTIFICATION_CHARS {
                Err(FieldViolation::new(
                    "emergency.justification",
                    "at least 20 visible characters: say why this cannot wait for the customer",
                ))
            } else {
                Ok(text)
            }
        }),
    );
    Some(Emergency {
        reason: reason?,
        justification: justification?,
    })
}

/// A validated `AuthorizeAssumption` request.
pub fn authorize_request(
    req: pb::AuthorizeAssumptionRequest,
) -> Result<(AssumptionRequest, Option<String>), Error> {
    let pb::AuthorizeAssumptionRequest {
        account_id,
        staff_id,
        ticket_id,
        reason,
        reason_detail,
        emergency: emergency_value,
        request_id,
    } = req;
    let mut v = Violations::new();
    let account_id = v.check(AccountId::parse(&account_id, "account_id"));
    let staff_id = v.check(ids::parse_printable_id(&staff_id, "staff_id"));
    let ticket_id = v.check(ids::parse_printable_id(&ticket_id, "ticket_id"));
    let reason = v.check(access_reason(reason, "reason"));
    let reason_detail = v.check(ids::parse_free_text(&reason_detail, "reason_detail"));
    let emergency = emergency_value.map(|e| emergency(e, &mut v));
    let request_id = v.check(ids::parse_request_id(&request_id, "request_id"));
    let cmd = (|| {
        Some((
            AssumptionRequest {
                account_id: account_id?,
                staff_id: staff_id?,
                ticket_id: ticket_id?,
                reason: reason?,
                reason_detail: reason_detail?,
                emergency: match emergency {
                    None => None,
                    Some(e) => Some(e?),
                },
            },
            request_id?,
        ))
    })();
    v.finish(cmd)
}

/// Validates an assumption id field.
pub fn assumption_id(value: &str) -> Result<String, Error> {
    ids::parse_printable_id(value, "assumption_id").map_err(Error::from)
}

/// A validated `EndAssumption` request.
pub fn end_request(req: pb::EndAssumptionRequest) -> Result<(String, Option<String>), Error> {
    let pb::EndAssumptionRequest {
        assumption_id,
        request_id,
    } = req;
    let mut v = Violations::new();
    let id = v.check(ids::parse_printable_id(&assumption_id, "assumption_id"));
    let request_id = v.check(ids::parse_request_id(&request_id, "request_id"));
    let cmd = (|| Some((id?, request_id?)))();
    v.finish(cmd)
}

fn basis_to_pb(b: Basis) -> pb::Basis {
    match b {
        Basis::CustomerGrant => pb::Basis::CustomerGrant,
        Basis::TrialAccount => pb::Basis::TrialAccount,
        Basis::Emergency => pb::Basis::Emergency,
    }
}

impl From<AssumptionView> for pb::Assumption {
    fn from(view: AssumptionView) -> Self {
        let AssumptionView {
            assumption: a,
            state,
        } = view;
        let state = match state {
            AssumptionState::Active => pb::assumption::State::Active,
            AssumptionState::Ended => pb::assumption::State::Ended,
            AssumptionState::Expired => pb::assumption::State::Expired,
            AssumptionState::Revoked => pb::assumption::State::Revoked,
        };
        Self {
            assumption_id: a.assumption_id,
            account_id: a.account_id,
            staff_id: a.staff_id,
            basis: basis_to_pb(a.basis).into(),
            start_time: Some(timestamp(a.start_time)),
            expire_time: Some(timestamp(a.expire_time)),
            end_time: a.end_time.map(timestamp),
            state: state.into(),
        }
    }
}

impl From<AssumptionDecision> for pb::AuthorizeAssumptionResponse {
    fn from(d: AssumptionDecision) -> Self {
        let deny_reason = match d.denied {
            None => pb::DenyReason::Unspecified,
            Some(DenyReason::AccessDisabled) => pb::DenyReason::AccessDisabled,
            Some(DenyReason::AccessExpired) => pb::DenyReason::AccessExpired,
            Some(DenyReason::AccountNotFound) => pb::DenyReason::AccountNotFound,
        };
        let (decision, basis) = match &d.allowed {
            Some(view) => (pb::Decision::Allow, basis_to_pb(view.assumption.basis)),
            None => (pb::Decision::Deny, pb::Basis::Unspecified),
        };
        Self {
            decision: decision.into(),
            deny_reason: deny_reason.into(),
            basis: basis.into(),
            assumption: d.allowed.map(Into::into),
            audit_event_id: d.audit_event_id,
        }
    }
}

fn kind_from_pb(value: i32, field: &str) -> Result<EventKind, FieldViolation> {
    use pb::audit_event::Kind as K;
    Ok(match enum_value::<K>(value, field)? {
        K::Unspecified => return Err(FieldViolation::new(field, "must be a specific kind")),
        K::AccountCreated => EventKind::AccountCreated,
        K::AccountConvertedToPaid => EventKind::AccountConvertedToPaid,
        K::AccountDeleted => EventKind::AccountDeleted,
        K::GrantEnabled => EventKind::GrantEnabled,
        K::GrantDurationChanged => EventKind::GrantDurationChanged,
        K::GrantDisabled => EventKind::GrantDisabled,
        K::GrantExpired => EventKind::GrantExpired,
        K::AssumptionAllowed => EventKind::AssumptionAllowed,
        K::AssumptionDenied => EventKind::AssumptionDenied,
        K::EmergencyAssumption => EventKind::EmergencyAssumption,
        K::AssumptionEnded => EventKind::AssumptionEnded,
    })
}

fn kind_to_pb(kind: EventKind) -> pb::audit_event::Kind {
    use pb::audit_event::Kind as K;
    match kind {
        EventKind::AccountCreated => K::AccountCreated,
        EventKind::AccountConvertedToPaid => K::AccountConvertedToPaid,
        EventKind::AccountDeleted => K::AccountDeleted,
        EventKind::GrantEnabled => K::GrantEnabled,
        EventKind::GrantDurationChanged => K::GrantDurationChanged,
        EventKind::GrantDisabled => K::GrantDisabled,
        EventKind::GrantExpired => K::GrantExpired,
        EventKind::AssumptionAllowed => K::AssumptionAllowed,
        EventKind::AssumptionDenied => K::AssumptionDenied,
        EventKind::EmergencyAssumption => K::EmergencyAssumption,
        EventKind::AssumptionEnded => K::AssumptionEnded,
    }
}

/// `google.protobuf.Timestamp`'s range: 0001-01-01T00:00:00Z ..= 9999-12-31T23:59:59Z.
const TIMESTAMP_SECONDS: std::ops::RangeInclusive<i64> = -62_135_596_800..=253_402_300_799;

fn time_from_pb(
    value: Option<Timestamp>,
    field: &str,
) -> Result<Option<DateTime<Utc>>, FieldViolation> {
    value
        .map(|ts| {
            u32::try_from(ts.nanos)
                .ok()
                .filter(|n| *n < 1_000_000_000)
                .filter(|_| TIMESTAMP_SECONDS.contains(&ts.seconds))
                .and_then(|n| DateTime::from_timestamp(ts.seconds, n))
                .ok_or_else(|| {
                    FieldViolation::new(
                        field,
                        "not a valid timestamp (years 1 to 9999, nanos 0 to 999,999,999)",
                    )
                })
        })
        .transpose()
}

/// A validated `ListAuditEvents` request.
pub fn list_request(req: pb::ListAuditEventsRequest) -> Result<ListQuery, Error> {
    let pb::ListAuditEventsRequest {
        account_id,
        page_size,
        page_token,
        kinds,
        start_time,
        end_time,
    } = req;
    let mut v = Violations::new();
    let account_id = v.check(AccountId::parse(&account_id, "account_id"));
    let page_size = v.check(match page_size {
        n if n < 0 => Err(FieldViolation::new("page_size", "must not be negative")),
        0 => Ok(DEFAULT_PAGE_SIZE),
        n => Ok(u64::try_from(n).unwrap_or(MAX_PAGE_SIZE).min(MAX_PAGE_SIZE)),
    });
    if kinds.len() > EventKind::ALL.len() * 2 {
        v.push(FieldViolation::new("kinds", "too many kinds"));
    }
    let kinds: Vec<Option<EventKind>> = kinds
        .iter()
        .enumerate()
        .map(|(i, k)| v.check(kind_from_pb(*k, &format!("kinds[{i}]"))))
        .collect();
    let start_time = v.check(time_from_pb(start_time, "start_time"));
    let end_time = v.check(time_from_pb(end_time, "end_time"));
    if let (Some(Some(start)), Some(Some(end))) = (start_time, end_time)
        && start >= end
    {
        v.push(FieldViolation::new("end_time", "must be after start_time"));
    }
    if page_token.len() > 1024 {
        v.push(FieldViolation::new("page_token", "malformed"));
    }
    let query = (|| {
        Some(ListQuery {
            account_id: account_id?,
            page_size: page_size?,
            page_token: (!page_token.is_empty()).then_some(page_token),
            filter: EventFilter {
                kinds: kinds.into_iter().collect::<Option<Vec<_>>>()?,
                start_time: start_time?,
                end_time: end_time?,
            },
        })
    })();
    v.finish(query)
}

/// A validated `WatchAuditEvents` request: `None` account means every account.
pub fn watch_request(req: pb::WatchAuditEventsRequest) -> Result<(Option<AccountId>, i64), Error> {
    let pb::WatchAuditEventsRequest {
        account_id,
        after_global_position,
    } = req;
    let mut v = Violations::new();
    let account = if account_id.is_empty() {
        Some(None)
    } else {
        v.check(AccountId::parse(&account_id, "account_id"))
            .map(Some)
    };
    let after = v.check(if after_global_position < 0 {
        Err(FieldViolation::new(
            "after_global_position",
            "must not be negative",
        ))
    } else {
        Ok(after_global_position)
    });
    let cmd = (|| Some((account?, after?)))();
    v.finish(cmd)
}

impl From<AuditEvent> for pb::AuditEvent {
    fn from(e: AuditEvent) -> Self {
        use pb::audit_event::Actor as A;
        let actor = match e.actor {
            EventActor::CustomerUser(id) => A::CustomerUserId(id),
            EventActor::Staff(id) => A::StaffId(id),
            EventActor::ServicePrincipal(name) => A::ServicePrincipal(name),
            EventActor::System => A::System(true),
        };
        Self {
            event_id: e.event_id,
            account_id: e.account_id,
            sequence: e.sequence,
            occur_time: Some(timestamp(e.occur_time)),
            kind: kind_to_pb(e.kind).into(),
            actor: Some(actor),
            detail_json: e.detail_json,
            request_id: e.request_id,
            prev_hash: e.prev_hash,
            hash: e.hash,
        }
    }
}
