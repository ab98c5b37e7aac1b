//! Helpers shared by the audit test files (`audit_list`, `audit_verify`, `audit_watch`).

use tonic::Status;

use super::{TestServer, pb, violated_fields};

/// A list request for `id` with every other field defaulted.
pub fn list_request(id: &str) -> pb::ListAuditEventsRequest {
    pb::ListAuditEventsRequest {
        account_id: id.into(),
        ..Default::default()
    }
}

/// Calls ListAuditEvents.
pub async fn list(
    s: &TestServer,
    req: pb::ListAuditEventsRequest,
) -> Result<pb::ListAuditEventsResponse, Status> {
    s.audit()
        .list_audit_events(req)
        .await
        .map(|r| r.into_inner())
}

/// Calls VerifyAuditChain.
pub async fn verify(s: &TestServer, id: &str) -> Result<pb::VerifyAuditChainResponse, Status> {
    s.audit()
        .verify_audit_chain(pb::VerifyAuditChainRequest {
            account_id: id.into(),
        })
        .await
        .map(|r| r.into_inner())
}

/// `n` AuthorizeAssumption calls on `id`; returns their audit event ids in order.
pub async fn authorize_n(s: &TestServer, id: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::with_capacity(n);
    for _ in 0..n {
        ids.push(s.authorize(id).await.audit_event_id);
    }
    ids
}

/// A trial account `id` (one ACCOUNT_CREATED event) plus `n` assumption events: `n + 1` events.
pub async fn trial_with_events(s: &TestServer, id: &str, n: usize) {
    s.create_account(id, pb::AccountPlan::Trial).await;
    authorize_n(s, id, n).await;
}

/// The sequences of a page.
pub fn sequences(events: &[pb::AuditEvent]) -> Vec<i64> {
    events.iter().map(|e| e.sequence).collect()
}

/// The field named by the single violation of an INVALID_ARGUMENT status.
pub fn single_violation(status: &Status) -> String {
    let fields = violated_fields(status);
    assert_eq!(fields.len(), 1, "expected one violation: {fields:?}");
    fields[0].clone()
}
