//! Helpers for `AccessRequestService`, the access policy and the "who is in my account" RPCs:
//! request builders with sensible defaults and thin wrappers that return the message the
//! tests look at (or the `Status` when they expect a refusal).

use accessgrant::{audit::AuditEvent, proto::v1 as pb};
use chrono::Duration;
use tonic::Status;

use super::{TestServer, authorize_request};

/// A customer admin (of Support) named `user_id`: distinct users count as distinct approvals.
pub fn admin(user_id: &str) -> pb::Actor {
    pb::Actor {
        user_id: user_id.into(),
        roles: vec![pb::ProductRole {
            product: pb::Product::Support.into(),
            role: pb::Role::Admin.into(),
        }],
    }
}

/// An admin of Explore only: not allowed to answer requests (same rule as the grant).
pub fn explore_admin(user_id: &str) -> pb::Actor {
    pb::Actor {
        user_id: user_id.into(),
        roles: vec![pb::ProductRole {
            product: pb::Product::Explore.into(),
            role: pb::Role::Admin.into(),
        }],
    }
}

/// `d` as a `google.protobuf.Duration`.
pub fn pb_duration(d: Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: d.num_seconds(),
        nanos: 0,
    }
}

/// `google.protobuf.Duration` to chrono.
pub fn from_pb_duration(d: &prost_types::Duration) -> Duration {
    Duration::seconds(d.seconds) + Duration::nanoseconds(i64::from(d.nanos))
}

/// A `CreateAccessRequest` for `account` by staff `sam` on ticket `T-1`, for one hour.
pub fn new_request(account: &str) -> pb::CreateAccessRequestRequest {
    pb::CreateAccessRequestRequest {
        account_id: account.into(),
        staff_id: "sam".into(),
        ticket_id: "T-1".into(),
        reason: pb::AccessReason::CannotReproduceElsewhere.into(),
        reason_detail: "only happens in their sandbox".into(),
        requested_duration: Some(pb_duration(Duration::hours(1))),
        request_id: String::new(),
    }
}

/// [`new_request`] asking for `d`.
pub fn new_request_for(account: &str, d: Duration) -> pb::CreateAccessRequestRequest {
    pb::CreateAccessRequestRequest {
        requested_duration: Some(pb_duration(d)),
        ..new_request(account)
    }
}

/// An `AuthorizeAssumption` for `account` by `sam` on `T-1`, deciding on `access_request_id`.
pub fn authorize_with_request(
    account: &str,
    access_request_id: &str,
) -> pb::AuthorizeAssumptionRequest {
    pb::AuthorizeAssumptionRequest {
        access_request_id: access_request_id.into(),
        ..authorize_request(account)
    }
}

/// The `detail_json` of an event, parsed.
pub fn detail(event: &AuditEvent) -> serde_json::Value {
    serde_json::from_str(&event.detail_json).unwrap()
}

impl TestServer {
    /// Creates a request.
    pub async fn create_request(
        &self,
        req: pb::CreateAccessRequestRequest,
    ) -> Result<pb::AccessRequest, Status> {
        self.requests()
            .create_access_request(req)
            .await
            .map(|r| r.into_inner().access_request.unwrap())
    }

    /// Creates [`new_request`] for `account`, which must succeed.
    pub async fn pending_request(&self, account: &str) -> pb::AccessRequest {
        self.create_request(new_request(account)).await.unwrap()
    }

    /// Creates a request for `d` and has admin `ada` approve it (enough under the default
    /// policy of one approval).
    pub async fn approved_request_for(&self, account: &str, d: Duration) -> pb::AccessRequest {
        let created = self
            .create_request(new_request_for(account, d))
            .await
            .unwrap();
        let approved = self
            .approve(&created.access_request_id, admin("ada"))
            .await
            .unwrap();
        assert_eq!(approved.state(), pb::access_request::State::Approved);
        approved
    }

    /// [`TestServer::approved_request_for`] one hour.
    pub async fn approved_request(&self, account: &str) -> pb::AccessRequest {
        self.approved_request_for(account, Duration::hours(1)).await
    }

    /// Reads a request.
    pub async fn access_request(&self, id: &str) -> pb::AccessRequest {
        self.requests()
            .get_access_request(pb::GetAccessRequestRequest {
                access_request_id: id.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .access_request
            .unwrap()
    }

    /// Approves as `actor` (no comment, etag or request id).
    pub async fn approve(&self, id: &str, actor: pb::Actor) -> Result<pb::AccessRequest, Status> {
        self.requests()
            .approve_access_request(pb::ApproveAccessRequestRequest {
                access_request_id: id.into(),
                actor: Some(actor),
                comment: "ok for this ticket".into(),
                etag: String::new(),
                request_id: String::new(),
            })
            .await
            .map(|r| r.into_inner().access_request.unwrap())
    }

    /// Denies as `actor`.
    pub async fn deny(&self, id: &str, actor: pb::Actor) -> Result<pb::AccessRequest, Status> {
        self.requests()
            .deny_access_request(pb::DenyAccessRequestRequest {
                access_request_id: id.into(),
                actor: Some(actor),
                comment: "not now".into(),
                etag: String::new(),
                request_id: String::new(),
            })
            .await
            .map(|r| r.into_inner().access_request.unwrap())
    }

    /// Revokes as `actor` (unconditionally).
    pub async fn revoke_request(
        &self,
        id: &str,
        actor: pb::Actor,
    ) -> Result<pb::AccessRequest, Status> {
        self.requests()
            .revoke_access_request(pb::RevokeAccessRequestRequest {
                access_request_id: id.into(),
                actor: Some(actor),
                etag: String::new(),
                request_id: String::new(),
            })
            .await
            .map(|r| r.into_inner().access_request.unwrap())
    }

    /// Cancels (support side).
    pub async fn cancel_request(&self, id: &str) -> Result<pb::AccessRequest, Status> {
        self.requests()
            .cancel_access_request(pb::CancelAccessRequestRequest {
                access_request_id: id.into(),
                request_id: String::new(),
            })
            .await
            .map(|r| r.into_inner().access_request.unwrap())
    }

    /// One page of `account`'s requests.
    pub async fn list_requests(
        &self,
        account: &str,
        states: &[pb::access_request::State],
        page_size: i32,
        page_token: &str,
    ) -> Result<pb::ListAccessRequestsResponse, Status> {
        self.requests()
            .list_access_requests(pb::ListAccessRequestsRequest {
                account_id: account.into(),
                page_size,
                page_token: page_token.into(),
                states: states.iter().map(|s| (*s).into()).collect(),
            })
            .await
            .map(|r| r.into_inner())
    }

    /// Every request of `account` in `states`, following page tokens with `page_size`; panics
    /// if the pages never end.
    pub async fn all_requests(
        &self,
        account: &str,
        states: &[pb::access_request::State],
        page_size: i32,
    ) -> Vec<pb::AccessRequest> {
        let mut all = Vec::new();
        let mut token = String::new();
        for _ in 0..1000 {
            let page = self
                .list_requests(account, states, page_size, &token)
                .await
                .unwrap();
            if page_size > 0 {
                assert!(page.access_requests.len() <= page_size as usize);
            }
            all.extend(page.access_requests);
            if page.next_page_token.is_empty() {
                return all;
            }
            token = page.next_page_token;
        }
        panic!("ListAccessRequests never ended");
    }

    /// One page of `account`'s assumptions.
    pub async fn list_assumptions(
        &self,
        account: &str,
        states: &[pb::assumption::State],
        page_size: i32,
        page_token: &str,
    ) -> Result<pb::ListAssumptionsResponse, Status> {
        self.support()
            .list_assumptions(pb::ListAssumptionsRequest {
                account_id: account.into(),
                page_size,
                page_token: page_token.into(),
                states: states.iter().map(|s| (*s).into()).collect(),
            })
            .await
            .map(|r| r.into_inner())
    }

    /// Every assumption of `account` in `states`, following page tokens with `page_size`.
    pub async fn all_assumptions(
        &self,
        account: &str,
        states: &[pb::assumption::State],
        page_size: i32,
    ) -> Vec<pb::Assumption> {
        let mut all = Vec::new();
        let mut token = String::new();
        for _ in 0..1000 {
            let page = self
                .list_assumptions(account, states, page_size, &token)
                .await
                .unwrap();
            if page_size > 0 {
                assert!(page.assumptions.len() <= page_size as usize);
            }
            all.extend(page.assumptions);
            if page.next_page_token.is_empty() {
                return all;
            }
            token = page.next_page_token;
        }
        panic!("ListAssumptions never ended");
    }

    /// A customer admin revokes one assumption.
    pub async fn revoke_assumption(
        &self,
        id: &str,
        actor: pb::Actor,
    ) -> Result<pb::Assumption, Status> {
        self.support()
            .revoke_assumption(pb::RevokeAssumptionRequest {
                assumption_id: id.into(),
                actor: Some(actor),
                reason: "the ticket is closed".into(),
                request_id: String::new(),
            })
            .await
            .map(|r| r.into_inner().assumption.unwrap())
    }

    /// Asks to assume into `account` as `sam` on `T-1`, deciding on `access_request_id`.
    pub async fn authorize_on(
        &self,
        account: &str,
        access_request_id: &str,
    ) -> pb::AuthorizeAssumptionResponse {
        self.support()
            .authorize_assumption(authorize_with_request(account, access_request_id))
            .await
            .unwrap()
            .into_inner()
    }

    /// Reads `account`'s access policy.
    pub async fn policy(&self, account: &str) -> pb::AccessPolicy {
        self.grants()
            .get_access_policy(pb::GetAccessPolicyRequest {
                account_id: account.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .access_policy
            .unwrap()
    }

    /// Updates the fields of `policy` named by `paths`, as admin `ada`.
    pub async fn update_policy(
        &self,
        policy: pb::AccessPolicy,
        paths: &[&str],
    ) -> Result<pb::AccessPolicy, Status> {
        self.update_policy_as(policy, paths, admin("ada")).await
    }

    /// Updates the fields of `policy` named by `paths`, as `actor`.
    pub async fn update_policy_as(
        &self,
        policy: pb::AccessPolicy,
        paths: &[&str],
        actor: pb::Actor,
    ) -> Result<pb::AccessPolicy, Status> {
        self.grants()
            .update_access_policy(pb::UpdateAccessPolicyRequest {
                access_policy: Some(policy),
                update_mask: Some(prost_types::FieldMask {
                    paths: paths.iter().map(|p| (*p).to_owned()).collect(),
                }),
                actor: Some(actor),
                request_id: String::new(),
            })
            .await
            .map(|r| r.into_inner().access_policy.unwrap())
    }

    /// Sets `account`'s `required_approvals` (masked update, unconditional).
    pub async fn require_approvals(&self, account: &str, n: i32) {
        let got = self
            .update_policy(
                pb::AccessPolicy {
                    account_id: account.into(),
                    required_approvals: n,
                    ..Default::default()
                },
                &["required_approvals"],
            )
            .await
            .unwrap();
        assert_eq!(got.required_approvals, n);
    }

    /// The kinds of `account`'s events, oldest first.
    pub async fn kinds(&self, account: &str) -> Vec<accessgrant::audit::EventKind> {
        self.events(account).await.iter().map(|e| e.kind).collect()
    }

    /// `account`'s events of `kind`, oldest first.
    pub async fn events_of_kind(
        &self,
        account: &str,
        kind: accessgrant::audit::EventKind,
    ) -> Vec<AuditEvent> {
        self.events(account)
            .await
            .into_iter()
            .filter(|e| e.kind == kind)
            .collect()
    }
}
