//! `AuditService` messages ↔ domain: page and watch queries in, audit events out. Request
//! conversions validate every field and report all violations at once; they destructure
//! messages completely, so a field added to a proto fails to compile here until it is handled.

use crate::{
    audit::{AuditEvent, EventActor, EventFilter, EventKind},
    domain::{Error, FieldViolation, error::Violations, ids::AccountId},
    grpc::fields::{self, enum_value, time_from_pb, timestamp},
    proto::v1 as pb,
    service::{audit::ListQuery, transparency::InclusionProof},
};

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
        K::AccessRequestCreated => EventKind::AccessRequestCreated,
        K::AccessRequestApproved => EventKind::AccessRequestApproved,
        K::AccessRequestDenied => EventKind::AccessRequestDenied,
        K::AccessRequestCancelled => EventKind::AccessRequestCancelled,
        K::AccessRequestRevoked => EventKind::AccessRequestRevoked,
        K::AccessRequestExpired => EventKind::AccessRequestExpired,
        K::AccessPolicyUpdated => EventKind::AccessPolicyUpdated,
        K::AssumptionRevoked => EventKind::AssumptionRevoked,
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
        EventKind::AccessRequestCreated => K::AccessRequestCreated,
        EventKind::AccessRequestApproved => K::AccessRequestApproved,
        EventKind::AccessRequestDenied => K::AccessRequestDenied,
        EventKind::AccessRequestCancelled => K::AccessRequestCancelled,
        EventKind::AccessRequestRevoked => K::AccessRequestRevoked,
        EventKind::AccessRequestExpired => K::AccessRequestExpired,
        EventKind::AccessPolicyUpdated => K::AccessPolicyUpdated,
        EventKind::AssumptionRevoked => K::AssumptionRevoked,
    }
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
    let page_size = v.check(fields::page_size(page_size));
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
    let page_token = v.check(fields::page_token(page_token));
    let query = (|| {
        Some(ListQuery {
            account_id: account_id?,
            page_size: page_size?,
            page_token: page_token?,
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
            leaf_index: e.leaf_index,
        }
    }
}

/// Longest event id accepted (ids are UUIDs; the column holds 64).
const MAX_EVENT_ID_LEN: usize = 64;

/// `GetAuditInclusionProof`'s event id and tree size (0: the latest signed).
pub fn inclusion_request(r: pb::GetAuditInclusionProofRequest) -> Result<(String, u64), Error> {
    let mut v = Violations::new();
    if r.event_id.is_empty() {
        v.push(FieldViolation::new("event_id", "required"));
    } else if r.event_id.len() > MAX_EVENT_ID_LEN {
        v.push(FieldViolation::new(
            "event_id",
            format!("at most {MAX_EVENT_ID_LEN} bytes"),
        ));
    }
    let size = v.check(tree_size(r.tree_size, "tree_size"));
    v.finish(size.map(|s| (r.event_id, s)))
}

/// `GetAuditConsistencyProof`'s sizes (second 0: the latest signed).
pub fn consistency_request(r: pb::GetAuditConsistencyProofRequest) -> Result<(u64, u64), Error> {
    let mut v = Violations::new();
    let first = v.check(tree_size(r.first_tree_size, "first_tree_size"));
    let second = v.check(tree_size(r.second_tree_size, "second_tree_size"));
    if let (Some(f), Some(s)) = (first, second)
        && s != 0
        && f > s
    {
        v.push(FieldViolation::new(
            "first_tree_size",
            "must not be above second_tree_size",
        ));
    }
    v.finish(first.zip(second))
}

fn tree_size(value: i64, field: &str) -> Result<u64, FieldViolation> {
    u64::try_from(value).map_err(|_| FieldViolation::new(field, "must not be negative"))
}

/// An inclusion proof on the wire.
pub fn inclusion_response(p: InclusionProof) -> pb::GetAuditInclusionProofResponse {
    pb::GetAuditInclusionProofResponse {
        leaf_index: i64::try_from(p.leaf_index).unwrap_or(i64::MAX),
        tree_size: i64::try_from(p.tree_size).unwrap_or(i64::MAX),
        hashes: p.hashes.iter().map(|h| h.to_vec()).collect(),
    }
}

/// An event as a client received it, back in the audit model (for the monitor, which
/// recomputes every hash from the fields it was sent).
pub fn event_from_pb(e: &pb::AuditEvent) -> Result<AuditEvent, String> {
    use pb::audit_event::Actor as A;
    let kind = kind_from_pb(e.kind, "kind").map_err(|v| v.description)?;
    let actor = match &e.actor {
        Some(A::CustomerUserId(id)) => EventActor::CustomerUser(id.clone()),
        Some(A::StaffId(id)) => EventActor::Staff(id.clone()),
        Some(A::ServicePrincipal(name)) => EventActor::ServicePrincipal(name.clone()),
        Some(A::System(_)) => EventActor::System,
        None => return Err("the event has no actor".into()),
    };
    let occur_time = time_from_pb(e.occur_time, "occur_time")
        .map_err(|v| v.description)?
        .ok_or("the event has no occur_time")?;
    Ok(AuditEvent {
        global_position: 0,
        leaf_index: e.leaf_index,
        event_id: e.event_id.clone(),
        account_id: e.account_id.clone(),
        sequence: e.sequence,
        occur_time,
        kind,
        actor,
        detail_json: e.detail_json.clone(),
        request_id: e.request_id.clone(),
        prev_hash: e.prev_hash.clone(),
        hash: e.hash.clone(),
    })
}
