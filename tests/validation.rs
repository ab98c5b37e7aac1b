//! Request validation: every `INVALID_ARGUMENT` carries ErrorInfo reason `INVALID_ARGUMENT` and
//! `BadRequest` violations naming each bad field, and nothing is written on invalid input.

mod common;
use common::*;

use accessgrant::{audit::EventKind, proto::v1 as pb};
use tonic::Code;

/// Account ids that break `^[a-z0-9][a-z0-9_-]{0,62}$`.
fn bad_account_ids() -> Vec<String> {
    vec![
        String::new(),
        "ACME".into(),
        "Acme".into(),
        "-acme".into(),
        "a".repeat(64),
        "acme corp".into(),
        "é".into(),
        "acmé".into(),
        "a/b".into(),
    ]
}

/// The longest valid account id.
fn id_63() -> String {
    format!("a{}", "0".repeat(62))
}

/// Asserts the status is `INVALID_ARGUMENT` naming exactly `fields` (in any order).
fn assert_fields(status: &tonic::Status, fields: &[&str]) {
    let mut got = violated_fields(status);
    got.sort();
    let mut want: Vec<String> = fields.iter().map(|f| (*f).to_owned()).collect();
    want.sort();
    assert_eq!(got, want, "violations of {status:?}");
}

/// An enable request with a request id.
fn enable_with_request_id(
    id: &str,
    duration: pb::AccessDuration,
    request_id: &str,
) -> pb::EnableAccessGrantRequest {
    pb::EnableAccessGrantRequest {
        request_id: request_id.into(),
        ..enable_request(id, duration, support_admin())
    }
}

/// A disable request as a Support admin.
fn disable_request(id: &str) -> pb::DisableAccessGrantRequest {
    pb::DisableAccessGrantRequest {
        account_id: id.into(),
        actor: Some(support_admin()),
        etag: String::new(),
        request_id: String::new(),
    }
}

/// An upsert request.
fn upsert_request(id: &str, plan: pb::AccountPlan) -> pb::UpsertAccountRequest {
    pb::UpsertAccountRequest {
        account_id: id.into(),
        plan: plan.into(),
        request_id: String::new(),
    }
}

/// Asserts that `id` has exactly the creation event, its grant is still disabled, and the
/// account is still open.
async fn assert_untouched(server: &TestServer, id: &str) {
    let events = server.events(id).await;
    assert_eq!(events.len(), 1, "events of {id}: {events:?}");
    assert_eq!(events[0].kind, EventKind::AccountCreated);
    let grant = server.grant(id).await;
    assert_eq!(grant.state(), pb::access_grant::State::Disabled);
    assert!(grant.update_user_id.is_empty());
}

/// GetAccessGrant rejects every malformed account id, naming `account_id`.
#[tokio::test]
async fn get_access_grant_rejects_malformed_account_ids() {
    let server = spawn_server().await;
    for id in bad_account_ids() {
        let status = server
            .grants()
            .get_access_grant(pb::GetAccessGrantRequest {
                account_id: id.clone(),
            })
            .await
            .expect_err(&id);
        assert_fields(&status, &["account_id"]);
    }
}

/// EnableAccessGrant rejects every malformed account id, naming `account_id`, and writes nothing.
#[tokio::test]
async fn enable_access_grant_rejects_malformed_account_ids() {
    let server = spawn_server().await;
    for id in bad_account_ids() {
        let status = server
            .enable(&id, pb::AccessDuration::OneDay)
            .await
            .expect_err(&id);
        assert_fields(&status, &["account_id"]);
        assert!(server.events(&id).await.is_empty(), "{id}");
    }
}

/// DisableAccessGrant rejects every malformed account id, naming `account_id`, and writes nothing.
#[tokio::test]
async fn disable_access_grant_rejects_malformed_account_ids() {
    let server = spawn_server().await;
    for id in bad_account_ids() {
        let status = server.disable(&id).await.expect_err(&id);
        assert_fields(&status, &["account_id"]);
        assert!(server.events(&id).await.is_empty(), "{id}");
    }
}

/// UpsertAccount rejects every malformed account id, naming `account_id`, and creates nothing.
#[tokio::test]
async fn upsert_account_rejects_malformed_account_ids() {
    let server = spawn_server().await;
    for id in bad_account_ids() {
        for plan in [pb::AccountPlan::Paid, pb::AccountPlan::Trial] {
            let status = server
                .accounts()
                .upsert_account(upsert_request(&id, plan))
                .await
                .expect_err(&id);
            assert_fields(&status, &["account_id"]);
            assert!(server.events(&id).await.is_empty(), "{id}");
        }
    }
    // An uppercase id is not silently lowercased into an existing (or new) account.
    let status = server
        .accounts()
        .get_account(pb::GetAccountRequest {
            account_id: "acme".into(),
        })
        .await
        .unwrap_err();
    assert_error(&status, Code::NotFound, "ACCOUNT_NOT_FOUND");
}

/// GetAccount rejects every malformed account id, naming `account_id`.
#[tokio::test]
async fn get_account_rejects_malformed_account_ids() {
    let server = spawn_server().await;
    for id in bad_account_ids() {
        let status = server
            .accounts()
            .get_account(pb::GetAccountRequest {
                account_id: id.clone(),
            })
            .await
            .expect_err(&id);
        assert_fields(&status, &["account_id"]);
    }
}

/// DeleteAccount rejects every malformed account id, naming `account_id`, and writes nothing.
#[tokio::test]
async fn delete_account_rejects_malformed_account_ids() {
    let server = spawn_server().await;
    for id in bad_account_ids() {
        let status = server
            .accounts()
            .delete_account(pb::DeleteAccountRequest {
                account_id: id.clone(),
                request_id: String::new(),
            })
            .await
            .expect_err(&id);
        assert_fields(&status, &["account_id"]);
        assert!(server.events(&id).await.is_empty(), "{id}");
    }
}

/// A 63-character account id (the maximum) works on every account and grant RPC.
#[tokio::test]
async fn account_id_of_63_characters_is_accepted_everywhere() {
    let server = spawn_server().await;
    let id = id_63();
    assert_eq!(id.len(), 63);
    let created = server
        .accounts()
        .upsert_account(upsert_request(&id, pb::AccountPlan::Paid))
        .await
        .unwrap()
        .into_inner();
    assert!(created.created);
    assert_eq!(created.account.unwrap().account_id, id);
    let account = server
        .accounts()
        .get_account(pb::GetAccountRequest {
            account_id: id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .account
        .unwrap();
    assert_eq!(account.account_id, id);
    assert_eq!(server.grant(&id).await.account_id, id);
    let enabled = server
        .enable(&id, pb::AccessDuration::OneDay)
        .await
        .unwrap();
    assert_eq!(enabled.state(), pb::access_grant::State::Enabled);
    let disabled = server.disable(&id).await.unwrap();
    assert_eq!(disabled.state(), pb::access_grant::State::Disabled);
    let batch = server
        .grants()
        .batch_get_access_grants(pb::BatchGetAccessGrantsRequest {
            account_ids: vec![id.clone()],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(batch.access_grants.len(), 1);
    server
        .accounts()
        .delete_account(pb::DeleteAccountRequest {
            account_id: id.clone(),
            request_id: String::new(),
        })
        .await
        .unwrap();
    assert_eq!(server.events(&id).await.len(), 4);
}

/// Short, digit-led and punctuated account ids are valid.
#[tokio::test]
async fn account_ids_at_the_edges_of_the_syntax_are_accepted() {
    let server = spawn_server().await;
    for id in ["a", "0", "9lives", "acme-corp_1", "a-", "a_"] {
        server.create_account(id, pb::AccountPlan::Paid).await;
        assert_eq!(server.grant(id).await.account_id, id);
    }
}

/// An unspecified duration is rejected, naming `duration`, and the grant is unchanged.
#[tokio::test]
async fn enable_rejects_unspecified_duration() {
    let server = spawn_server().await;
    server.create_account("acme", pb::AccountPlan::Paid).await;
    let status = server
        .enable("acme", pb::AccessDuration::Unspecified)
        .await
        .unwrap_err();
    assert_fields(&status, &["duration"]);
    assert_untouched(&server, "acme").await;
}

/// A duration number the contract does not define is rejected, naming `duration`.
#[tokio::test]
async fn enable_rejects_unknown_duration_number() {
    let server = spawn_server().await;
    server.create_account("acme", pb::AccountPlan::Paid).await;
    for value in [99, 6, -1] {
        let mut req = enable_request("acme", pb::AccessDuration::OneDay, support_admin());
        req.duration = value;
        let status = server.grants().enable_access_grant(req).await.unwrap_err();
        assert_fields(&status, &["duration"]);
    }
    assert_untouched(&server, "acme").await;
}

/// A missing actor is rejected, naming `actor`, on enable and on disable.
#[tokio::test]
async fn missing_actor_is_rejected() {
    let server = spawn_server().await;
    server.create_account("acme", pb::AccountPlan::Paid).await;
    let mut req = enable_request("acme", pb::AccessDuration::OneDay, support_admin());
    req.actor = None;
    let status = server.grants().enable_access_grant(req).await.unwrap_err();
    assert_fields(&status, &["actor"]);

    server
        .enable("acme", pb::AccessDuration::OneDay)
        .await
        .unwrap();
    let before = server.events("acme").await;
    let mut req = disable_request("acme");
    req.actor = None;
    let status = server.grants().disable_access_grant(req).await.unwrap_err();
    assert_fields(&status, &["actor"]);
    assert_eq!(server.events("acme").await, before);
    assert_eq!(
        server.grant("acme").await.state(),
        pb::access_grant::State::Enabled
    );
}

/// An actor with an empty user id is rejected, naming `actor.user_id`.
#[tokio::test]
async fn enable_rejects_empty_user_id() {
    let server = spawn_server().await;
    server.create_account("acme", pb::AccountPlan::Paid).await;
    let mut actor = support_admin();
    actor.user_id = String::new();
    let status = server
        .grants()
        .enable_access_grant(enable_request("acme", pb::AccessDuration::OneDay, actor))
        .await
        .unwrap_err();
    assert_fields(&status, &["actor.user_id"]);
    assert_untouched(&server, "acme").await;
}

/// A user id of 129 characters is rejected, naming `actor.user_id`; 128 characters is accepted.
#[tokio::test]
async fn user_id_is_limited_to_128_characters() {
    let server = spawn_server().await;
    server.create_account("acme", pb::AccountPlan::Paid).await;
    let mut actor = support_admin();
    actor.user_id = "u".repeat(129);
    let status = server
        .grants()
        .enable_access_grant(enable_request("acme", pb::AccessDuration::OneDay, actor))
        .await
        .unwrap_err();
    assert_fields(&status, &["actor.user_id"]);
    assert_untouched(&server, "acme").await;

    // Characters, not bytes: 128 two-byte characters are fine.
    for user_id in ["u".repeat(128), "é".repeat(128)] {
        let mut actor = support_admin();
        actor.user_id = user_id.clone();
        let grant = server
            .grants()
            .enable_access_grant(enable_request("acme", pb::AccessDuration::OneDay, actor))
            .await
            .unwrap()
            .into_inner()
            .access_grant
            .unwrap();
        assert_eq!(grant.update_user_id, user_id);
    }
}

/// A user id containing a control character is rejected, naming `actor.user_id`.
#[tokio::test]
async fn enable_rejects_control_characters_in_user_id() {
    let server = spawn_server().await;
    server.create_account("acme", pb::AccountPlan::Paid).await;
    for user_id in ["al\u{1}ice", "alice\n", "\u{7f}", "ali\u{0}ce"] {
        let mut actor = support_admin();
        actor.user_id = user_id.into();
        let status = server
            .grants()
            .enable_access_grant(enable_request("acme", pb::AccessDuration::OneDay, actor))
            .await
            .unwrap_err();
        assert_fields(&status, &["actor.user_id"]);
    }
    assert_untouched(&server, "acme").await;
}

/// A role naming an unknown product number is rejected, naming `actor.roles[0].product`.
#[tokio::test]
async fn enable_rejects_unknown_product_in_role() {
    let server = spawn_server().await;
    server.create_account("acme", pb::AccountPlan::Paid).await;
    let actor = pb::Actor {
        user_id: "alice".into(),
        roles: vec![pb::ProductRole {
            product: 99,
            role: pb::Role::Admin.into(),
        }],
    };
    let status = server
        .grants()
        .enable_access_grant(enable_request("acme", pb::AccessDuration::OneDay, actor))
        .await
        .unwrap_err();
    assert_fields(&status, &["actor.roles[0].product"]);
    assert_untouched(&server, "acme").await;
}

/// An unknown role number is rejected at its index, even after a valid admin role.
#[tokio::test]
async fn enable_rejects_unknown_role_number_at_its_index() {
    let server = spawn_server().await;
    server.create_account("acme", pb::AccountPlan::Paid).await;
    let mut actor = support_admin();
    actor.roles.push(pb::ProductRole {
        product: pb::Product::Chat.into(),
        role: 42,
    });
    let status = server
        .grants()
        .enable_access_grant(enable_request("acme", pb::AccessDuration::OneDay, actor))
        .await
        .unwrap_err();
    assert_fields(&status, &["actor.roles[1].role"]);
    assert_untouched(&server, "acme").await;
}

/// Bad roles at different indexes are all reported, not only the first one.
#[tokio::test]
async fn enable_reports_bad_roles_at_every_index() {
    let server = spawn_server().await;
    server.create_account("acme", pb::AccountPlan::Paid).await;
    let actor = pb::Actor {
        user_id: "alice".into(),
        roles: vec![
            pb::ProductRole {
                product: 99,
                role: pb::Role::Admin.into(),
            },
            pb::ProductRole {
                product: pb::Product::Support.into(),
                role: pb::Role::Admin.into(),
            },
            pb::ProductRole {
                product: pb::Product::Chat.into(),
                role: 77,
            },
        ],
    };
    let status = server
        .grants()
        .enable_access_grant(enable_request("acme", pb::AccessDuration::OneDay, actor))
        .await
        .unwrap_err();
    assert_fields(&status, &["actor.roles[0].product", "actor.roles[2].role"]);
    assert_untouched(&server, "acme").await;
}

/// Several bad fields are all reported in one status.
#[tokio::test]
async fn enable_reports_every_bad_field_at_once() {
    let server = spawn_server().await;
    let req = pb::EnableAccessGrantRequest {
        account_id: "Bad Id".into(),
        duration: pb::AccessDuration::Unspecified.into(),
        actor: None,
        etag: String::new(),
        request_id: String::new(),
    };
    let status = server.grants().enable_access_grant(req).await.unwrap_err();
    assert_fields(&status, &["account_id", "duration", "actor"]);

    let mut actor = support_admin();
    actor.user_id = String::new();
    actor.roles.push(pb::ProductRole {
        product: 99,
        role: 99,
    });
    let req = pb::EnableAccessGrantRequest {
        account_id: String::new(),
        duration: 99,
        actor: Some(actor),
        etag: String::new(),
        request_id: "r\u{1}".into(),
    };
    let status = server.grants().enable_access_grant(req).await.unwrap_err();
    assert_fields(
        &status,
        &[
            "account_id",
            "duration",
            "actor.user_id",
            "actor.roles[1].product",
            "actor.roles[1].role",
            "request_id",
        ],
    );
}

/// A request id of 129 characters is rejected, naming `request_id`, on every write RPC.
#[tokio::test]
async fn request_id_is_limited_to_128_characters() {
    let server = spawn_server().await;
    server.create_account("acme", pb::AccountPlan::Paid).await;
    let long = "r".repeat(129);

    let status = server
        .grants()
        .enable_access_grant(enable_with_request_id(
            "acme",
            pb::AccessDuration::OneDay,
            &long,
        ))
        .await
        .unwrap_err();
    assert_fields(&status, &["request_id"]);

    let mut req = disable_request("acme");
    req.request_id = long.clone();
    let status = server.grants().disable_access_grant(req).await.unwrap_err();
    assert_fields(&status, &["request_id"]);

    let mut req = upsert_request("newco", pb::AccountPlan::Paid);
    req.request_id = long.clone();
    let status = server.accounts().upsert_account(req).await.unwrap_err();
    assert_fields(&status, &["request_id"]);
    assert!(server.events("newco").await.is_empty());

    let status = server
        .accounts()
        .delete_account(pb::DeleteAccountRequest {
            account_id: "acme".into(),
            request_id: long,
        })
        .await
        .unwrap_err();
    assert_fields(&status, &["request_id"]);
    assert_untouched(&server, "acme").await;

    // 128 characters is fine.
    let grant = server
        .grants()
        .enable_access_grant(enable_with_request_id(
            "acme",
            pb::AccessDuration::OneDay,
            &"r".repeat(128),
        ))
        .await
        .unwrap()
        .into_inner()
        .access_grant
        .unwrap();
    assert_eq!(grant.state(), pb::access_grant::State::Enabled);
    assert_eq!(server.events("acme").await[1].request_id, "r".repeat(128));
}

/// A request id with control characters is rejected, naming `request_id`, on every write RPC.
#[tokio::test]
async fn request_id_with_control_characters_is_rejected() {
    let server = spawn_server().await;
    server.create_account("acme", pb::AccountPlan::Paid).await;
    for request_id in ["req\u{1}1", "req\n", "\u{0}", "a\u{1b}[31m"] {
        let status = server
            .grants()
            .enable_access_grant(enable_with_request_id(
                "acme",
                pb::AccessDuration::OneDay,
                request_id,
            ))
            .await
            .unwrap_err();
        assert_fields(&status, &["request_id"]);

        let mut req = disable_request("acme");
        req.request_id = request_id.into();
        let status = server.grants().disable_access_grant(req).await.unwrap_err();
        assert_fields(&status, &["request_id"]);

        let mut req = upsert_request("newco", pb::AccountPlan::Trial);
        req.request_id = request_id.into();
        let status = server.accounts().upsert_account(req).await.unwrap_err();
        assert_fields(&status, &["request_id"]);

        let status = server
            .accounts()
            .delete_account(pb::DeleteAccountRequest {
                account_id: "acme".into(),
                request_id: request_id.into(),
            })
            .await
            .unwrap_err();
        assert_fields(&status, &["request_id"]);
    }
    assert!(server.events("newco").await.is_empty());
    assert_untouched(&server, "acme").await;
}

/// UpsertAccount with an unspecified plan is rejected, naming `plan`, and creates nothing.
#[tokio::test]
async fn upsert_rejects_unspecified_plan() {
    let server = spawn_server().await;
    let status = server
        .accounts()
        .upsert_account(upsert_request("acme", pb::AccountPlan::Unspecified))
        .await
        .unwrap_err();
    assert_fields(&status, &["plan"]);
    let status = server
        .accounts()
        .get_account(pb::GetAccountRequest {
            account_id: "acme".into(),
        })
        .await
        .unwrap_err();
    assert_error(&status, Code::NotFound, "ACCOUNT_NOT_FOUND");
    assert!(server.events("acme").await.is_empty());
}

/// UpsertAccount with an unknown plan number is rejected, naming `plan`.
#[tokio::test]
async fn upsert_rejects_unknown_plan_number() {
    let server = spawn_server().await;
    let mut req = upsert_request("acme", pb::AccountPlan::Paid);
    req.plan = 99;
    let status = server.accounts().upsert_account(req).await.unwrap_err();
    assert_fields(&status, &["plan"]);
    assert!(server.events("acme").await.is_empty());
}

/// UpsertAccount reports a bad id and an unspecified plan together.
#[tokio::test]
async fn upsert_reports_every_bad_field_at_once() {
    let server = spawn_server().await;
    let req = pb::UpsertAccountRequest {
        account_id: "-acme".into(),
        plan: pb::AccountPlan::Unspecified.into(),
        request_id: "x".repeat(129),
    };
    let status = server.accounts().upsert_account(req).await.unwrap_err();
    assert_fields(&status, &["account_id", "plan", "request_id"]);
}

/// BatchGetAccessGrants with no ids is rejected, naming `account_ids`.
#[tokio::test]
async fn batch_get_rejects_empty_list() {
    let server = spawn_server().await;
    let status = server
        .grants()
        .batch_get_access_grants(pb::BatchGetAccessGrantsRequest {
            account_ids: vec![],
        })
        .await
        .unwrap_err();
    assert_fields(&status, &["account_ids"]);
}

/// BatchGetAccessGrants with 1,001 ids is rejected, naming `account_ids`.
#[tokio::test]
async fn batch_get_rejects_more_than_1000_ids() {
    let server = spawn_server().await;
    server.create_account("acme", pb::AccountPlan::Paid).await;
    let status = server
        .grants()
        .batch_get_access_grants(pb::BatchGetAccessGrantsRequest {
            account_ids: vec!["acme".to_owned(); 1001],
        })
        .await
        .unwrap_err();
    assert_fields(&status, &["account_ids"]);
}

/// A malformed id in a batch is named by its index.
#[tokio::test]
async fn batch_get_names_the_index_of_a_bad_id() {
    let server = spawn_server().await;
    server.create_account("acme", pb::AccountPlan::Paid).await;
    let status = server
        .grants()
        .batch_get_access_grants(pb::BatchGetAccessGrantsRequest {
            account_ids: vec!["acme".into(), "acme".into(), "ACME".into(), "acme".into()],
        })
        .await
        .unwrap_err();
    assert_fields(&status, &["account_ids[2]"]);

    let status = server
        .grants()
        .batch_get_access_grants(pb::BatchGetAccessGrantsRequest {
            account_ids: vec![String::new(), "acme".into(), "a/b".into()],
        })
        .await
        .unwrap_err();
    assert_fields(&status, &["account_ids[0]", "account_ids[2]"]);
}

/// 1,000 ids (three accounts repeated) are answered with 1,000 grants in request order.
#[tokio::test]
async fn batch_get_accepts_1000_ids_in_request_order() {
    let server = spawn_server().await;
    server.create_account("alpha", pb::AccountPlan::Paid).await;
    server.create_account("bravo", pb::AccountPlan::Trial).await;
    server
        .create_account("charlie", pb::AccountPlan::Paid)
        .await;
    server
        .enable("charlie", pb::AccessDuration::OneWeek)
        .await
        .unwrap();
    let names = ["charlie", "alpha", "bravo"];
    let ids: Vec<String> = (0..1000)
        .map(|i| names[(i * 7 + i / 3) % 3].to_owned())
        .collect();
    let grants = server
        .grants()
        .batch_get_access_grants(pb::BatchGetAccessGrantsRequest {
            account_ids: ids.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .access_grants;
    assert_eq!(grants.len(), 1000);
    for (i, (grant, id)) in grants.iter().zip(&ids).enumerate() {
        assert_eq!(&grant.account_id, id, "index {i}");
        let want = match id.as_str() {
            "alpha" => pb::access_grant::State::Disabled,
            "bravo" => pb::access_grant::State::AlwaysOnTrial,
            _ => pb::access_grant::State::Enabled,
        };
        assert_eq!(grant.state(), want, "index {i}");
    }
}

/// An unknown id in a batch fails the whole call with NOT_FOUND `ACCOUNT_NOT_FOUND`.
#[tokio::test]
async fn batch_get_with_unknown_id_is_not_found() {
    let server = spawn_server().await;
    server.create_account("acme", pb::AccountPlan::Paid).await;
    let status = server
        .grants()
        .batch_get_access_grants(pb::BatchGetAccessGrantsRequest {
            account_ids: vec!["acme".into(), "ghost".into(), "acme".into()],
        })
        .await
        .unwrap_err();
    assert_error(&status, Code::NotFound, "ACCOUNT_NOT_FOUND");
}

/// Reusing a request id for a different enable is INVALID_ARGUMENT `REQUEST_ID_REUSED` and
/// changes nothing.
#[tokio::test]
async fn request_id_reused_for_a_different_request_is_rejected() {
    let server = spawn_server().await;
    server.create_account("acme", pb::AccountPlan::Paid).await;
    let first = server
        .grants()
        .enable_access_grant(enable_with_request_id(
            "acme",
            pb::AccessDuration::OneDay,
            "req-1",
        ))
        .await
        .unwrap()
        .into_inner();
    let events = server.events("acme").await;
    assert_eq!(events.len(), 2);

    let status = server
        .grants()
        .enable_access_grant(enable_with_request_id(
            "acme",
            pb::AccessDuration::OneWeek,
            "req-1",
        ))
        .await
        .unwrap_err();
    assert_error(&status, Code::InvalidArgument, "REQUEST_ID_REUSED");
    assert_eq!(server.events("acme").await, events);
    let grant = server.grant("acme").await;
    assert_eq!(grant.duration(), pb::AccessDuration::OneDay);
    assert_eq!(Some(grant), first.access_grant);

    // The same request again is still a replay.
    let again = server
        .grants()
        .enable_access_grant(enable_with_request_id(
            "acme",
            pb::AccessDuration::OneDay,
            "req-1",
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again, first);
    assert_eq!(server.events("acme").await, events);
}

/// Reusing an upsert's request id for another account is INVALID_ARGUMENT `REQUEST_ID_REUSED`.
#[tokio::test]
async fn upsert_request_id_reused_for_another_account_is_rejected() {
    let server = spawn_server().await;
    let mut req = upsert_request("acme", pb::AccountPlan::Paid);
    req.request_id = "prov-1".into();
    server.accounts().upsert_account(req).await.unwrap();
    let mut req = upsert_request("other", pb::AccountPlan::Paid);
    req.request_id = "prov-1".into();
    let status = server.accounts().upsert_account(req).await.unwrap_err();
    assert_error(&status, Code::InvalidArgument, "REQUEST_ID_REUSED");
    assert!(server.events("other").await.is_empty());
}

/// Sends `body` as the raw protobuf request of `method`, with no client-side encoding.
async fn call_raw(s: &TestServer, method: &'static str, body: Vec<u8>) -> tonic::Status {
    use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

    /// Bytes in, bytes out: the body goes on the wire exactly as given.
    #[derive(Default)]
    struct Raw;
    impl Encoder for Raw {
        type Item = Vec<u8>;
        type Error = tonic::Status;
        fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
            use prost::bytes::BufMut;
            dst.put_slice(&item);
            Ok(())
        }
    }
    impl Decoder for Raw {
        type Item = Vec<u8>;
        type Error = tonic::Status;
        fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
            use prost::bytes::Buf;
            Ok(Some(src.copy_to_bytes(src.remaining()).to_vec()))
        }
    }
    impl Codec for Raw {
        type Encode = Vec<u8>;
        type Decode = Vec<u8>;
        type Encoder = Raw;
        type Decoder = Raw;
        fn encoder(&mut self) -> Raw {
            Raw
        }
        fn decoder(&mut self) -> Raw {
            Raw
        }
    }

    let mut grpc = tonic::client::Grpc::new(s.channel.clone());
    grpc.ready().await.unwrap();
    grpc.unary(
        tonic::Request::new(body),
        http::uri::PathAndQuery::from_static(method),
        Raw,
    )
    .await
    .expect_err("a malformed body must be refused")
}

/// A body that is not a valid protobuf message is the caller's mistake: `INVALID_ARGUMENT`
/// reason `MALFORMED_REQUEST` (not `INTERNAL`), on reads, writes and health checks alike,
/// and nothing is written.
#[tokio::test]
async fn malformed_request_bodies_are_invalid_arguments() {
    let s = spawn_server().await;
    s.create_account("acme", pb::AccountPlan::Trial).await;
    let bodies: [(&str, Vec<u8>); 4] = [
        ("varint that never ends", vec![0xff, 0xff, 0xff, 0xff]),
        ("length past the end", vec![0x0a, 0x10, b'a']),
        ("account_id not UTF-8", vec![0x0a, 0x02, 0xc3, 0x28]),
        ("wrong wire type for a string", vec![0x0d, 0, 0, 0, 0]),
    ];
    for method in [
        "/accessgrant.v1.AccessGrantService/GetAccessGrant",
        "/accessgrant.v1.SupportAccessService/AuthorizeAssumption",
        "/accessgrant.v1.AuditService/ListAuditEvents",
        // Health comes from tonic-health, whose decoder would answer INTERNAL.
        "/grpc.health.v1.Health/Check",
    ] {
        for (what, body) in &bodies {
            let status = call_raw(&s, method, body.clone()).await;
            assert_eq!(status.code(), Code::InvalidArgument, "{method}: {what}");
            assert_error(&status, Code::InvalidArgument, "MALFORMED_REQUEST");
        }
    }
    assert_eq!(s.events("acme").await.len(), 1, "nothing was written");
}
