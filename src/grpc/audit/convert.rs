//! `AuditService` messages ↔ domain: page and watch queries in, audit events out. Request
//! conversions validate every field and report all violations at once; they destructure
//! messages completely, so a field added to a proto fails to compile here until it is handled.

use crate::{
    audit::{AuditEvent, EventActor, EventFilter, EventKind},
    domain::{Error, FieldViolation, error::Violations, ids::AccountId},
    grpc::fields::{enum_value, time_from_pb, timestamp},
    proto::v1 as pb,
    service::audit::{DEFAULT_PAGE_SIZE, ListQuery, MAX_PAGE_SIZE},
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
