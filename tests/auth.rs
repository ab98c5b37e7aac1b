//! Caller authentication and per-RPC permissions, through the real server: every RPC with no
//! token, a wrong token, a principal lacking the permission, and a principal holding it.

mod common;

use std::collections::BTreeSet;

use accessgrant::{
    auth::{Principal, token},
    domain::permission::Permission,
    proto::v1 as pb,
};
use common::*;
use tonic::{Code, Request, Status, metadata::MetadataValue};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

fn principal(name: &str, permissions: &[Permission]) -> Principal {
    Principal {
        name: name.into(),
        token_sha256: Some(token::sha256(format!("token-of-{name}").as_bytes())),
        cert_subject: None,
        permissions: permissions.iter().copied().collect::<BTreeSet<_>>(),
    }
}

/// A server with one principal per permission (`only:<perm>`), one per "all but" permission
/// (`but:<perm>`), one lacking every alternative of each "any of" requirement
/// (`but:<perm>+<perm>`), and `admin` with everything.
async fn secured_server() -> TestServer {
    spawn_server_with(|c| {
        c.principals.push(principal("admin", &Permission::ALL));
        for p in Permission::ALL {
            c.principals
                .push(principal(&format!("only:{}", p.as_str()), &[p]));
            let rest: Vec<Permission> = Permission::ALL.into_iter().filter(|q| *q != p).collect();
            c.principals
                .push(principal(&format!("but:{}", p.as_str()), &rest));
        }
        for (_, any) in RPCS.into_iter().filter(|(_, any)| any.len() > 1) {
            let rest: Vec<Permission> = Permission::ALL
                .into_iter()
                .filter(|q| !any.contains(q))
                .collect();
            c.principals.push(principal(&lacking_name(any), &rest));
        }
    })
    .await
}

/// The principal holding everything but `any`: `but:<perm>` or `but:<perm>+<perm>`.
fn lacking_name(any: &[Permission]) -> String {
    let names: Vec<&str> = any.iter().map(|p| p.as_str()).collect();
    format!("but:{}", names.join("+"))
}

/// Creates account `acme` with `plan`, calling as the holder of `token`.
async fn create_acme(s: &TestServer, plan: pb::AccountPlan, token: &str) {
    s.accounts()
        .upsert_account(authed(
            pb::UpsertAccountRequest {
                account_id: "acme".into(),
                plan: plan.into(),
                request_id: String::new(),
            },
            Some(token),
        ))
        .await
        .unwrap();
}

fn authed<T>(message: T, token: Option<&str>) -> Request<T> {
    let mut request = Request::new(message);
    if let Some(token) = token {
        let value: MetadataValue<_> = format!("Bearer {token}").parse().unwrap();
        request.metadata_mut().insert("authorization", value);
    }
    request
}

/// Calls the named RPC (on an account that does not exist) with `token`.
async fn call(s: &TestServer, rpc: &str, token: Option<&str>) -> Result<(), Status> {
    let id = || "no-such-account".to_string();
    match rpc {
        "GetAccessGrant" => s
            .grants()
            .get_access_grant(authed(
                pb::GetAccessGrantRequest { account_id: id() },
                token,
            ))
            .await
            .map(drop),
        "BatchGetAccessGrants" => s
            .grants()
            .batch_get_access_grants(authed(
                pb::BatchGetAccessGrantsRequest {
                    account_ids: vec![id()],
                },
                token,
            ))
            .await
            .map(drop),
        "EnableAccessGrant" => s
            .grants()
            .enable_access_grant(authed(
                enable_request(&id(), pb::AccessDuration::OneDay, support_admin()),
                token,
            ))
            .await
            .map(drop),
        "DisableAccessGrant" => s
            .grants()
            .disable_access_grant(authed(
                pb::DisableAccessGrantRequest {
                    account_id: id(),
                    actor: Some(support_admin()),
                    ..Default::default()
                },
                token,
            ))
            .await
            .map(drop),
        "UpsertAccount" => s
            .accounts()
            .upsert_account(authed(
                pb::UpsertAccountRequest {
                    account_id: id(),
                    plan: pb::AccountPlan::Paid.into(),
                    request_id: String::new(),
                },
                token,
            ))
            .await
            .map(drop),
        "GetAccount" => s
            .accounts()
            .get_account(authed(pb::GetAccountRequest { account_id: id() }, token))
            .await
            .map(drop),
        "DeleteAccount" => s
            .accounts()
            .delete_account(authed(
                pb::DeleteAccountRequest {
                    account_id: id(),
                    request_id: String::new(),
                },
                token,
            ))
            .await
            .map(drop),
        "AuthorizeAssumption" => s
            .support()
            .authorize_assumption(authed(authorize_request(&id()), token))
            .await
            .map(drop),
        "GetAssumption" => s
            .support()
            .get_assumption(authed(
                pb::GetAssumptionRequest {
                    assumption_id: id(),
                },
                token,
            ))
            .await
            .map(drop),
        "EndAssumption" => s
            .support()
            .end_assumption(authed(
                pb::EndAssumptionRequest {
                    assumption_id: id(),
                    request_id: String::new(),
                },
                token,
            ))
            .await
            .map(drop),
        "ListAuditEvents" => s
            .audit()
            .list_audit_events(authed(
                pb::ListAuditEventsRequest {
                    account_id: id(),
                    ..Default::default()
                },
                token,
            ))
            .await
            .map(drop),
        "VerifyAuditChain" => s
            .audit()
            .verify_audit_chain(authed(
                pb::VerifyAuditChainRequest { account_id: id() },
                token,
            ))
            .await
            .map(drop),
        "WatchAuditEvents" => s
            .audit()
            .watch_audit_events(authed(
                pb::WatchAuditEventsRequest {
                    account_id: id(),
                    after_global_position: 0,
                },
                token,
            ))
            .await
            .map(drop),
        "GetAuditCheckpoint" => s
            .audit()
            .get_audit_checkpoint(authed(pb::GetAuditCheckpointRequest {}, token))
            .await
            .map(drop),
        "GetAuditInclusionProof" => s
            .audit()
            .get_audit_inclusion_proof(authed(
                pb::GetAuditInclusionProofRequest {
                    event_id: id(),
                    tree_size: 0,
                },
                token,
            ))
            .await
            .map(drop),
        "GetAuditConsistencyProof" => s
            .audit()
            .get_audit_consistency_proof(authed(
                pb::GetAuditConsistencyProofRequest {
                    first_tree_size: 0,
                    second_tree_size: 0,
                },
                token,
            ))
            .await
            .map(drop),
        other => call_access_request_rpc(s, other, token).await,
    }
}

/// [`call`] for the RPCs of per-request approval, the access policy and "who is in my
/// account" (on ids that do not exist).
async fn call_access_request_rpc(
    s: &TestServer,
    rpc: &str,
    token: Option<&str>,
) -> Result<(), Status> {
    let id = || "no-such-id".to_string();
    let policy = || pb::AccessPolicy {
        account_id: id(),
        access_requests_enabled: true,
        required_approvals: 1,
        max_request_duration: Some(requests::pb_duration(chrono::Duration::hours(8))),
        etag: String::new(),
    };
    match rpc {
        "CreateAccessRequest" => s
            .requests()
            .create_access_request(authed(requests::new_request(&id()), token))
            .await
            .map(drop),
        "GetAccessRequest" => s
            .requests()
            .get_access_request(authed(
                pb::GetAccessRequestRequest {
                    access_request_id: id(),
                },
                token,
            ))
            .await
            .map(drop),
        "ListAccessRequests" => s
            .requests()
            .list_access_requests(authed(
                pb::ListAccessRequestsRequest {
                    account_id: id(),
                    ..Default::default()
                },
                token,
            ))
            .await
            .map(drop),
        "ApproveAccessRequest" => s
            .requests()
            .approve_access_request(authed(
                pb::ApproveAccessRequestRequest {
                    access_request_id: id(),
                    actor: Some(support_admin()),
                    ..Default::default()
                },
                token,
            ))
            .await
            .map(drop),
        "DenyAccessRequest" => s
            .requests()
            .deny_access_request(authed(
                pb::DenyAccessRequestRequest {
                    access_request_id: id(),
                    actor: Some(support_admin()),
                    ..Default::default()
                },
                token,
            ))
            .await
            .map(drop),
        "CancelAccessRequest" => s
            .requests()
            .cancel_access_request(authed(
                pb::CancelAccessRequestRequest {
                    access_request_id: id(),
                    request_id: String::new(),
                },
                token,
            ))
            .await
            .map(drop),
        "RevokeAccessRequest" => s
            .requests()
            .revoke_access_request(authed(
                pb::RevokeAccessRequestRequest {
                    access_request_id: id(),
                    actor: Some(support_admin()),
                    ..Default::default()
                },
                token,
            ))
            .await
            .map(drop),
        "GetAccessPolicy" => s
            .grants()
            .get_access_policy(authed(
                pb::GetAccessPolicyRequest { account_id: id() },
                token,
            ))
            .await
            .map(drop),
        "UpdateAccessPolicy" => s
            .grants()
            .update_access_policy(authed(
                pb::UpdateAccessPolicyRequest {
                    access_policy: Some(policy()),
                    update_mask: None,
                    actor: Some(support_admin()),
                    request_id: String::new(),
                },
                token,
            ))
            .await
            .map(drop),
        "ListAssumptions" => s
            .support()
            .list_assumptions(authed(
                pb::ListAssumptionsRequest {
                    account_id: id(),
                    ..Default::default()
                },
                token,
            ))
            .await
            .map(drop),
        "RevokeAssumption" => s
            .support()
            .revoke_assumption(authed(
                pb::RevokeAssumptionRequest {
                    assumption_id: id(),
                    actor: Some(support_admin()),
                    ..Default::default()
                },
                token,
            ))
            .await
            .map(drop),
        other => panic!("unknown rpc {other}"),
    }
}

/// Every RPC of the contract and the permissions it accepts: any one of them admits the call;
/// a refusal names the first.
const RPCS: [(&str, &[Permission]); 27] = {
    use Permission::*;
    [
        ("GetAccessGrant", &[GrantsRead]),
        ("BatchGetAccessGrants", &[GrantsRead]),
        ("EnableAccessGrant", &[GrantsWrite]),
        ("DisableAccessGrant", &[GrantsWrite]),
        ("GetAccessPolicy", &[GrantsRead]),
        ("UpdateAccessPolicy", &[GrantsWrite]),
        ("UpsertAccount", &[AccountsWrite]),
        ("GetAccount", &[AccountsWrite]),
        ("DeleteAccount", &[AccountsWrite]),
        ("AuthorizeAssumption", &[AccessAuthorize]),
        ("GetAssumption", &[AccessAuthorize]),
        ("EndAssumption", &[AccessAuthorize]),
        ("ListAssumptions", &[GrantsRead]),
        ("RevokeAssumption", &[GrantsWrite]),
        ("CreateAccessRequest", &[AccessAuthorize]),
        ("GetAccessRequest", &[AccessAuthorize, GrantsRead]),
        ("ListAccessRequests", &[GrantsRead]),
        ("ApproveAccessRequest", &[GrantsWrite]),
        ("DenyAccessRequest", &[GrantsWrite]),
        ("CancelAccessRequest", &[AccessAuthorize]),
        ("RevokeAccessRequest", &[GrantsWrite]),
        ("ListAuditEvents", &[AuditRead]),
        ("VerifyAuditChain", &[AuditRead]),
        ("WatchAuditEvents", &[AuditRead]),
        ("GetAuditCheckpoint", &[AuditRead]),
        ("GetAuditInclusionProof", &[AuditRead]),
        ("GetAuditConsistencyProof", &[AuditRead]),
    ]
};

fn assert_authenticated_and_permitted(rpc: &str, result: &Result<(), Status>) {
    if let Err(status) = result {
        assert!(
            !matches!(
                status.code(),
                Code::Unauthenticated | Code::PermissionDenied
            ),
            "{rpc}: holder was refused: {status:?}"
        );
    }
}

/// Every RPC × (no token, wrong token, principal lacking the permission, principal holding it).
#[tokio::test]
async fn every_rpc_is_authenticated_and_authorized() {
    let s = secured_server().await;
    for (rpc, permissions) in RPCS {
        let status = call(&s, rpc, None).await.expect_err(rpc);
        assert_error(&status, Code::Unauthenticated, "UNAUTHENTICATED");
        let info = tonic_types::StatusExt::get_details_error_info(&status).unwrap();
        assert_eq!(
            info.metadata["www_authenticate"],
            "Bearer realm=\"accessgrant\""
        );

        let status = call(&s, rpc, Some("not-a-known-token")).await.unwrap_err();
        assert_error(&status, Code::Unauthenticated, "UNAUTHENTICATED");

        let lacking = format!("token-of-{}", lacking_name(permissions));
        let status = call(&s, rpc, Some(&lacking)).await.unwrap_err();
        assert_error(&status, Code::PermissionDenied, "CALLER_LACKS_PERMISSION");
        let info = tonic_types::StatusExt::get_details_error_info(&status).unwrap();
        assert_eq!(
            info.metadata["permission"],
            permissions[0].as_str(),
            "{rpc}"
        );

        for permission in permissions {
            let holding = format!("token-of-only:{}", permission.as_str());
            assert_authenticated_and_permitted(rpc, &call(&s, rpc, Some(&holding)).await);
        }
        assert_authenticated_and_permitted(rpc, &call(&s, rpc, Some("token-of-admin")).await);
    }
}

/// The permission is checked before existence: a principal without it gets PERMISSION_DENIED for unknown and known accounts alike.
#[tokio::test]
async fn permission_is_checked_before_existence() {
    let s = secured_server().await;
    create_acme(&s, pb::AccountPlan::Paid, "token-of-admin").await;
    for id in ["acme", "nobody"] {
        let status = s
            .grants()
            .get_access_grant(authed(
                pb::GetAccessGrantRequest {
                    account_id: id.into(),
                },
                Some("token-of-only:audit:read"),
            ))
            .await
            .unwrap_err();
        assert_error(&status, Code::PermissionDenied, "CALLER_LACKS_PERMISSION");
    }
}

/// Emergency requests need access:emergency on top of access:authorize.
#[tokio::test]
async fn emergency_needs_its_own_permission() {
    let s = secured_server().await;
    let mut req = authorize_request("acme");
    req.emergency = Some(emergency());
    let status = s
        .support()
        .authorize_assumption(authed(req.clone(), Some("token-of-only:access:authorize")))
        .await
        .unwrap_err();
    assert_error(&status, Code::PermissionDenied, "CALLER_LACKS_PERMISSION");
    let info = tonic_types::StatusExt::get_details_error_info(&status).unwrap();
    assert_eq!(info.metadata["permission"], "access:emergency");
    let r = s
        .support()
        .authorize_assumption(authed(req, Some("token-of-admin")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.deny_reason(), pb::DenyReason::AccountNotFound);
}

/// Watching every account needs audit:read_all; one account needs audit:read.
#[tokio::test]
async fn watching_all_accounts_needs_read_all() {
    let s = secured_server().await;
    let all = pb::WatchAuditEventsRequest {
        account_id: String::new(),
        after_global_position: 0,
    };
    let status = s
        .audit()
        .watch_audit_events(authed(all.clone(), Some("token-of-only:audit:read")))
        .await
        .unwrap_err();
    assert_error(&status, Code::PermissionDenied, "CALLER_LACKS_PERMISSION");
    s.audit()
        .watch_audit_events(authed(all, Some("token-of-only:audit:read_all")))
        .await
        .unwrap();
    // The two permissions are distinct, as the contract lists them.
    let one = pb::WatchAuditEventsRequest {
        account_id: "acme".into(),
        after_global_position: 0,
    };
    let status = s
        .audit()
        .watch_audit_events(authed(one, Some("token-of-only:audit:read_all")))
        .await
        .unwrap_err();
    assert_error(&status, Code::PermissionDenied, "CALLER_LACKS_PERMISSION");
}

/// Health and reflection need no credentials, so probes and grpcurl work.
#[tokio::test]
async fn health_and_reflection_stay_open() {
    let s = secured_server().await;
    let status = HealthClient::new(s.channel.clone())
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .status();
    assert_eq!(
        status,
        tonic_health::pb::health_check_response::ServingStatus::Serving
    );
    use tonic_reflection::pb::v1alpha;
    let mut client =
        v1alpha::server_reflection_client::ServerReflectionClient::new(s.channel.clone());
    let request = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            v1alpha::server_reflection_request::MessageRequest::ListServices(String::new()),
        ),
    };
    let mut stream = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    assert!(stream.message().await.unwrap().is_some());
}

/// Every audit event records the calling principal: as the actor of account changes, and in the detail of the others.
#[tokio::test]
async fn audit_events_record_the_principal() {
    let s = secured_server().await;
    create_acme(&s, pb::AccountPlan::Trial, "token-of-only:accounts:write").await;
    s.support()
        .authorize_assumption(authed(
            authorize_request("acme"),
            Some("token-of-only:access:authorize"),
        ))
        .await
        .unwrap();
    let events = s.events("acme").await;
    assert_eq!(
        events[0].actor,
        accessgrant::audit::EventActor::ServicePrincipal("only:accounts:write".into())
    );
    let detail: serde_json::Value = serde_json::from_str(&events[1].detail_json).unwrap();
    assert_eq!(detail["principal"], "only:access:authorize");
    for e in &events {
        assert!(
            !e.detail_json.contains("token-of"),
            "a token reached the audit log"
        );
    }
}

/// Without principals the server refuses a non-loopback listen address, before listening.
#[tokio::test]
async fn development_mode_is_loopback_only() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_accessgrant"))
        .args([
            "serve",
            "--listen",
            "0.0.0.0:0",
            "--database-url",
            "sqlite::memory:",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("loopback"));
}

/// `accessgrant token hash` prints the SHA-256 of stdin (ignoring one trailing newline), which authenticates that token.
#[tokio::test]
async fn token_hash_command_matches_the_server() {
    use std::io::Write;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_accessgrant"))
        .args(["token", "hash"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"s3cret-token\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let hex = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert_eq!(hex, hex::encode(token::sha256(b"s3cret-token")));
    let s = spawn_server_with(|c| {
        c.principals.push(Principal {
            name: "ops".into(),
            token_sha256: token::parse_sha256_hex(&hex),
            cert_subject: None,
            permissions: [Permission::GrantsRead].into_iter().collect(),
        })
    })
    .await;
    let status = s
        .grants()
        .get_access_grant(authed(
            pb::GetAccessGrantRequest {
                account_id: "x".into(),
            },
            Some("s3cret-token"),
        ))
        .await
        .unwrap_err();
    assert_error(&status, Code::NotFound, "ACCOUNT_NOT_FOUND");
}

/// `accessgrant token generate` prints a fresh 256-bit base64url token on stdout and its
/// `token_sha256` line (what goes into the config) on stderr; two runs never repeat.
#[test]
fn token_generate_prints_a_fresh_token_and_its_hash() {
    use base64::Engine;
    let generate = || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_accessgrant"))
            .args(["token", "generate"])
            .output()
            .unwrap();
        assert!(out.status.success());
        (
            String::from_utf8(out.stdout).unwrap().trim().to_owned(),
            String::from_utf8(out.stderr).unwrap().trim().to_owned(),
        )
    };
    let (first, first_hash_line) = generate();
    let (second, _) = generate();
    assert_ne!(first, second);
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(&first)
        .unwrap();
    assert_eq!(bytes.len(), 32);
    assert_eq!(
        first_hash_line,
        format!(
            "token_sha256 = \"{}\"",
            hex::encode(token::sha256(first.as_bytes()))
        )
    );
}

/// A `request_id` is bound to the caller that used it: another principal replaying the same
/// request with the same key gets `REQUEST_ID_REUSED`, not the first caller's ALLOW (which no
/// audit event would attribute to it), and nothing is written; the first caller's own retry
/// still gets its response back.
#[tokio::test]
async fn a_request_id_cannot_be_replayed_by_another_principal() {
    let s = spawn_server_with(|c| {
        c.principals.push(principal("admin", &Permission::ALL));
        c.principals
            .push(principal("tooling-a", &[Permission::AccessAuthorize]));
        c.principals
            .push(principal("tooling-b", &[Permission::AccessAuthorize]));
    })
    .await;
    create_acme(&s, pb::AccountPlan::Trial, "token-of-admin").await;
    let request = pb::AuthorizeAssumptionRequest {
        request_id: "ticket-42-attempt-1".into(),
        ..authorize_request("acme")
    };
    let first = s
        .support()
        .authorize_assumption(authed(request.clone(), Some("token-of-tooling-a")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.decision(), pb::Decision::Allow);

    let replay = s
        .support()
        .authorize_assumption(authed(request.clone(), Some("token-of-tooling-b")))
        .await
        .unwrap_err();
    assert_error(&replay, Code::InvalidArgument, "REQUEST_ID_REUSED");

    let retry = s
        .support()
        .authorize_assumption(authed(request, Some("token-of-tooling-a")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(retry, first);
    assert_eq!(
        s.count("SELECT COUNT(*) FROM assumptions").await,
        1,
        "one decision, written once"
    );
}
