//! SupportAccessService through the real server: decisions and their bases, emergencies,
//! the assumption lifecycle, replay, fail-closed behaviour and the Disable/Authorize race.

mod common;

use std::time::Duration as StdDuration;

use accessgrant::{audit::EventKind, proto::v1 as pb};
use chrono::Duration;
use common::*;
use pb::{AccessDuration as D, assumption::State};
use tonic::Code;

fn detail(event: &accessgrant::audit::AuditEvent) -> serde_json::Value {
    serde_json::from_str(&event.detail_json).unwrap()
}

/// An enabled grant allows, on the customer-grant basis, capped by the maximum lifetime (8 h).
#[tokio::test]
async fn enabled_grant_allows_with_capped_lifetime() {
    let s = spawn_server().await;
    s.create_account("acme", pb::AccountPlan::Paid).await;
    s.enable("acme", D::OneDay).await.unwrap();
    let r = s.authorize("acme").await;
    assert_eq!(r.decision(), pb::Decision::Allow);
    assert_eq!(r.basis(), pb::Basis::CustomerGrant);
    assert_eq!(r.deny_reason(), pb::DenyReason::Unspecified);
    let a = r.assumption.unwrap();
    assert_eq!(a.state(), State::Active);
    assert_eq!(a.staff_id, "sam");
    assert_eq!(time(a.start_time.as_ref().unwrap()), t0());
    assert_eq!(
        time(a.expire_time.as_ref().unwrap()),
        t0() + Duration::hours(8)
    );

    // Two hours before the grant lapses, the assumption ends with the grant.
    s.clock.advance(Duration::hours(22));
    let a = s.authorize("acme").await.assumption.unwrap();
    assert_eq!(
        time(a.expire_time.as_ref().unwrap()),
        t0() + Duration::days(1)
    );

    let events = s.events("acme").await;
    let last = events.last().unwrap();
    assert_eq!(last.kind, EventKind::AssumptionAllowed);
    assert_eq!(
        last.event_id,
        s.authorize_event_ids("acme").await.last().unwrap().clone()
    );
    let d = detail(last);
    assert_eq!(d["ticket_id"], "T-1");
    assert_eq!(d["reason"], "CANNOT_REPRODUCE_ELSEWHERE");
    assert_eq!(d["reason_detail"], "only happens in their sandbox");
    assert_eq!(d["basis"], "CUSTOMER_GRANT");
    assert_eq!(d["assumption_id"], a.assumption_id);
    assert_eq!(d["principal"], "development");
    assert_eq!(
        last.actor,
        accessgrant::audit::EventActor::Staff("sam".into())
    );
}

/// A trial account always allows, on the trial basis.
#[tokio::test]
async fn trial_account_allows() {
    let s = spawn_server().await;
    s.create_account("tria", pb::AccountPlan::Trial).await;
    let r = s.authorize("tria").await;
    assert_eq!(r.decision(), pb::Decision::Allow);
    assert_eq!(r.basis(), pb::Basis::TrialAccount);
}

/// Denials are answers, audited: disabled, expired, unknown and deleted accounts.
#[tokio::test]
async fn denials_are_answers_and_audited() {
    let s = spawn_server().await;
    s.create_account("off", pb::AccountPlan::Paid).await;
    s.create_account("lapsed", pb::AccountPlan::Paid).await;
    s.create_account("gone", pb::AccountPlan::Paid).await;
    s.enable("lapsed", D::OneDay).await.unwrap();
    s.accounts()
        .delete_account(pb::DeleteAccountRequest {
            account_id: "gone".into(),
            request_id: String::new(),
        })
        .await
        .unwrap();
    s.clock.advance(Duration::days(1));
    for (id, reason) in [
        ("off", pb::DenyReason::AccessDisabled),
        ("lapsed", pb::DenyReason::AccessExpired),
        ("nobody", pb::DenyReason::AccountNotFound),
        ("gone", pb::DenyReason::AccountNotFound),
    ] {
        let r = s.authorize(id).await;
        assert_eq!(r.decision(), pb::Decision::Deny, "{id}");
        assert_eq!(r.deny_reason(), reason, "{id}");
        assert_eq!(r.basis(), pb::Basis::Unspecified);
        assert!(r.assumption.is_none());
        let last = s.events(id).await.pop().unwrap();
        assert_eq!(last.kind, EventKind::AssumptionDenied, "{id}");
        assert_eq!(last.event_id, r.audit_event_id);
        assert_eq!(
            detail(&last)["deny_reason"],
            reason.as_str_name().trim_start_matches("DENY_REASON_")
        );
    }
    assert_eq!(s.count("SELECT COUNT(*) FROM assumptions").await, 0);
}

/// An emergency is allowed whatever the setting, with the shorter lifetime, audited with its justification.
#[tokio::test]
async fn emergency_overrides_the_setting_with_a_short_lifetime() {
    let s = spawn_server().await;
    s.create_account("acme", pb::AccountPlan::Paid).await;
    let r = s.authorize_emergency("acme").await;
    assert_eq!(r.decision(), pb::Decision::Allow);
    assert_eq!(r.basis(), pb::Basis::Emergency);
    let a = r.assumption.unwrap();
    assert_eq!(
        time(a.expire_time.as_ref().unwrap()),
        t0() + Duration::hours(1)
    );
    let last = s.events("acme").await.pop().unwrap();
    assert_eq!(last.kind, EventKind::EmergencyAssumption);
    let d = detail(&last);
    assert_eq!(d["emergency_reason"], "SUSPECTED_TERMS_VIOLATION");
    assert_eq!(d["justification"], emergency().justification);
    assert_eq!(d["basis"], "EMERGENCY");

    // Even an emergency needs an existing account.
    let r = s.authorize_emergency("nobody").await;
    assert_eq!(r.deny_reason(), pb::DenyReason::AccountNotFound);
}

/// The emergency lifetime comes from `[assumptions] emergency_lifetime`.
#[tokio::test]
async fn lifetimes_follow_the_configuration() {
    let s = spawn_server_with(|c| {
        c.service.lifetimes.max = Duration::hours(2);
        c.service.lifetimes.emergency = Duration::minutes(10);
    })
    .await;
    s.create_account("acme", pb::AccountPlan::Trial).await;
    let a = s.authorize("acme").await.assumption.unwrap();
    assert_eq!(
        time(a.expire_time.as_ref().unwrap()),
        t0() + Duration::hours(2)
    );
    let r = s.authorize_emergency("acme").await;
    let a = r.assumption.unwrap();
    assert_eq!(
        time(a.expire_time.as_ref().unwrap()),
        t0() + Duration::minutes(10)
    );
}

/// Emergency requests need a reason and a justification of at least 20 characters.
#[tokio::test]
async fn emergency_justification_is_validated() {
    let s = spawn_server().await;
    s.create_account("acme", pb::AccountPlan::Paid).await;
    let mut req = authorize_request("acme");
    req.emergency = Some(pb::EmergencyJustification {
        reason: pb::EmergencyReason::Unspecified.into(),
        justification: "too short".into(),
    });
    let status = s.support().authorize_assumption(req).await.unwrap_err();
    let mut fields = violated_fields(&status);
    fields.sort();
    assert_eq!(fields, ["emergency.justification", "emergency.reason"]);
    let mut req = authorize_request("acme");
    req.emergency = Some(pb::EmergencyJustification {
        reason: pb::EmergencyReason::PreventSeriousHarm.into(),
        justification: " ".repeat(30) + "short",
    });
    let status = s.support().authorize_assumption(req).await.unwrap_err();
    assert_eq!(violated_fields(&status), ["emergency.justification"]);
    // Invisible characters do not count either: 25 zero-width spaces (or shorthand format
    // controls, or private-use characters) explain nothing, and neither does one letter under
    // 25 combining accents.
    for justification in [
        "\u{200B}".repeat(25),
        "\u{1BCA0}".repeat(25),
        "\u{E000}".repeat(25),
        format!("a{}", "\u{0301}".repeat(25)),
    ] {
        let mut req = authorize_request("acme");
        req.emergency = Some(pb::EmergencyJustification {
            justification,
            ..emergency()
        });
        let status = s.support().authorize_assumption(req).await.unwrap_err();
        assert_eq!(violated_fields(&status), ["emergency.justification"]);
    }
    assert_eq!(
        s.events("acme").await.len(),
        1,
        "nothing is written for bad input"
    );
}

/// Every field of AuthorizeAssumption is validated, all violations at once.
#[tokio::test]
async fn authorize_request_is_validated() {
    let s = spawn_server().await;
    let req = pb::AuthorizeAssumptionRequest {
        account_id: "Bad Id".into(),
        staff_id: String::new(),
        ticket_id: "x".repeat(129),
        reason: pb::AccessReason::Unspecified.into(),
        reason_detail: "y".repeat(2001),
        emergency: None,
        request_id: "\u{7}".into(),
        access_request_id: "\u{7}".into(),
    };
    let status = s.support().authorize_assumption(req).await.unwrap_err();
    let mut fields = violated_fields(&status);
    fields.sort();
    assert_eq!(
        fields,
        [
            "access_request_id",
            "account_id",
            "reason",
            "reason_detail",
            "request_id",
            "staff_id",
            "ticket_id"
        ]
    );
    let mut req = authorize_request("acme");
    req.reason = 99;
    let status = s.support().authorize_assumption(req).await.unwrap_err();
    assert_eq!(violated_fields(&status), ["reason"]);
    // A staff id that would display as another one in the customer's log: format
    // characters by category (not only the well-known ones), blank glyphs, look-alike
    // spaces, a leading combining mark.
    for spoof in [
        "sam\u{200B}",
        "\u{202E}mas",
        "s\u{2066}am",
        "s\u{1BCA3}am",
        "sa\u{1D159}m",
        "sam\u{00A0}x",
        "\u{0301}sam",
    ] {
        let mut req = authorize_request("acme");
        req.staff_id = spoof.into();
        let status = s.support().authorize_assumption(req).await.unwrap_err();
        assert_eq!(violated_fields(&status), ["staff_id"], "{spoof:?}");
    }
    // Real names in other scripts and with accents are ids like any other.
    for name in ["José Ñandú", "नमस्ते", "山田 太郎", "Nguyễn"] {
        let mut req = authorize_request("acme");
        req.staff_id = name.into();
        let r = s.support().authorize_assumption(req).await.unwrap();
        assert_eq!(r.into_inner().decision(), pb::Decision::Deny, "{name:?}");
    }
}

/// GetAssumption evaluates now: ACTIVE, then EXPIRED once expire_time passes.
#[tokio::test]
async fn assumption_expires() {
    let s = spawn_server().await;
    s.create_account("acme", pb::AccountPlan::Trial).await;
    let id = s.authorize("acme").await.assumption.unwrap().assumption_id;
    assert_eq!(s.assumption(&id).await.state(), State::Active);
    s.clock
        .advance(Duration::hours(8) - Duration::microseconds(1));
    assert_eq!(s.assumption(&id).await.state(), State::Active);
    s.clock.advance(Duration::microseconds(1));
    let a = s.assumption(&id).await;
    assert_eq!(a.state(), State::Expired);
    assert!(a.end_time.is_none());
    // Ending an expired assumption returns it unchanged and writes nothing.
    let n = s.events("acme").await.len();
    let ended = s.end(&id).await;
    assert_eq!(ended.state(), State::Expired);
    assert_eq!(s.events("acme").await.len(), n);
}

/// Disabling the grant revokes every open assumption (including emergencies, per the contract) and records which.
#[tokio::test]
async fn disable_revokes_open_assumptions() {
    let s = spawn_server().await;
    s.create_account("acme", pb::AccountPlan::Paid).await;
    s.enable("acme", D::Indefinite).await.unwrap();
    let a = s.authorize("acme").await.assumption.unwrap().assumption_id;
    let e = s.authorize_emergency("acme").await;
    let e = e.assumption.unwrap().assumption_id;
    s.clock.advance(Duration::minutes(5));
    s.disable("acme").await.unwrap();
    for id in [&a, &e] {
        let got = s.assumption(id).await;
        assert_eq!(got.state(), State::Revoked);
        assert_eq!(
            time(got.end_time.as_ref().unwrap()),
            t0() + Duration::minutes(5)
        );
    }
    let last = s.events("acme").await.pop().unwrap();
    assert_eq!(last.kind, EventKind::GrantDisabled);
    assert_eq!(detail(&last)["was_enabled"], serde_json::json!(true));
    let mut revoked: Vec<String> =
        serde_json::from_value(detail(&last)["revoked_assumption_ids"].clone()).unwrap();
    revoked.sort();
    let mut expected = vec![a, e];
    expected.sort();
    assert_eq!(revoked, expected);
    // And now new requests are denied.
    assert_eq!(
        s.authorize("acme").await.deny_reason(),
        pb::DenyReason::AccessDisabled
    );
}

/// An emergency assumption taken while the grant is off is revoked by a disable too (the grant
/// does not change, but the customer's "off" ends it); the event says the grant was already off.
/// A disable that finds nothing open still writes nothing.
#[tokio::test]
async fn disable_of_a_disabled_grant_revokes_open_emergencies() {
    let s = spawn_server().await;
    s.create_account("acme", pb::AccountPlan::Paid).await;
    let e = s
        .authorize_emergency("acme")
        .await
        .assumption
        .unwrap()
        .assumption_id;
    let grant_before = s.grant("acme").await;
    s.clock.advance(Duration::minutes(3));

    let g = s.disable("acme").await.unwrap();
    assert_eq!(g.state(), pb::access_grant::State::Disabled);
    assert_eq!(
        g.etag, grant_before.etag,
        "the grant itself must not change"
    );
    let got = s.assumption(&e).await;
    assert_eq!(got.state(), State::Revoked);
    assert_eq!(
        time(got.end_time.as_ref().unwrap()),
        t0() + Duration::minutes(3)
    );
    let events = s.events("acme").await;
    let last = events.last().unwrap();
    assert_eq!(last.kind, EventKind::GrantDisabled);
    assert_eq!(
        detail(last)["revoked_assumption_ids"],
        serde_json::json!([e])
    );
    assert_eq!(detail(last)["was_enabled"], serde_json::json!(false));

    // Nothing open any more: the next disable is a no-op again.
    s.disable("acme").await.unwrap();
    assert_eq!(s.events("acme").await.len(), events.len());
}

/// Deleting the account revokes its open assumptions; converting a trial revokes the trial-based ones.
#[tokio::test]
async fn delete_and_conversion_revoke() {
    let s = spawn_server().await;
    s.create_account("acme", pb::AccountPlan::Paid).await;
    s.enable("acme", D::OneWeek).await.unwrap();
    let a = s.authorize("acme").await.assumption.unwrap().assumption_id;
    s.accounts()
        .delete_account(pb::DeleteAccountRequest {
            account_id: "acme".into(),
            request_id: String::new(),
        })
        .await
        .unwrap();
    assert_eq!(s.assumption(&a).await.state(), State::Revoked);

    s.create_account("tria", pb::AccountPlan::Trial).await;
    let t = s.authorize("tria").await.assumption.unwrap().assumption_id;
    s.create_account("tria", pb::AccountPlan::Paid).await;
    assert_eq!(s.assumption(&t).await.state(), State::Revoked);
    // The conversion's event names the sessions it ended, like disable and delete do.
    let converted = s.events("tria").await.pop().unwrap();
    assert_eq!(converted.kind, EventKind::AccountConvertedToPaid);
    assert_eq!(
        detail(&converted)["revoked_assumption_ids"],
        serde_json::json!([t])
    );
    assert_eq!(
        s.authorize("tria").await.deny_reason(),
        pb::DenyReason::AccessDisabled
    );
}

/// Shortening the grant shortens the assumptions resting on it; a longer grant leaves them alone.
#[tokio::test]
async fn shortened_grant_caps_assumptions() {
    let s = spawn_server_with(|c| c.service.lifetimes.max = Duration::hours(72)).await;
    s.create_account("acme", pb::AccountPlan::Paid).await;
    s.enable("acme", D::OneYear).await.unwrap();
    let id = s.authorize("acme").await.assumption.unwrap().assumption_id;
    let expire = |a: pb::Assumption| time(a.expire_time.as_ref().unwrap());
    assert_eq!(expire(s.assumption(&id).await), t0() + Duration::hours(72));
    s.clock.advance(Duration::hours(1));
    s.enable("acme", D::OneDay).await.unwrap();
    let grant_end = t0() + Duration::hours(1) + Duration::days(1);
    assert_eq!(expire(s.assumption(&id).await), grant_end);
    // Extending again does not lengthen an existing assumption.
    s.enable("acme", D::OneYear).await.unwrap();
    assert_eq!(expire(s.assumption(&id).await), grant_end);
    s.clock.set(grant_end);
    assert_eq!(s.assumption(&id).await.state(), State::Expired);
}

/// EndAssumption ends an active assumption once (audited); repeating it writes nothing.
#[tokio::test]
async fn end_assumption_is_idempotent() {
    let s = spawn_server().await;
    s.create_account("acme", pb::AccountPlan::Trial).await;
    let id = s.authorize("acme").await.assumption.unwrap().assumption_id;
    s.clock.advance(Duration::minutes(30));
    let ended = s.end(&id).await;
    assert_eq!(ended.state(), State::Ended);
    assert_eq!(
        time(ended.end_time.as_ref().unwrap()),
        t0() + Duration::minutes(30)
    );
    let events = s.events("acme").await;
    let last = events.last().unwrap();
    assert_eq!(last.kind, EventKind::AssumptionEnded);
    assert_eq!(detail(last)["assumption_id"], id);
    let again = s.end(&id).await;
    assert_eq!(again, ended);
    assert_eq!(s.events("acme").await.len(), events.len());
    assert_eq!(s.assumption(&id).await.state(), State::Ended);

    let status = s
        .support()
        .get_assumption(pb::GetAssumptionRequest {
            assumption_id: "no-such-assumption".into(),
        })
        .await
        .unwrap_err();
    assert_error(&status, Code::NotFound, "ASSUMPTION_NOT_FOUND");
    let status = s
        .support()
        .end_assumption(pb::EndAssumptionRequest {
            assumption_id: String::new(),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), ["assumption_id"]);
}

/// A retried request_id returns the first decision: same assumption, same audit event, nothing new written.
#[tokio::test]
async fn replay_returns_the_first_decision() {
    let s = spawn_server().await;
    s.create_account("acme", pb::AccountPlan::Trial).await;
    let mut req = authorize_request("acme");
    req.request_id = "tooling-42".into();
    let first = s
        .support()
        .authorize_assumption(req.clone())
        .await
        .unwrap()
        .into_inner();
    s.clock.advance(Duration::minutes(1));
    let second = s
        .support()
        .authorize_assumption(req.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first, second);
    assert_eq!(s.count("SELECT COUNT(*) FROM assumptions").await, 1);
    assert_eq!(s.events("acme").await.len(), 2);
    // The same key with another ticket is a different request.
    req.ticket_id = "T-2".into();
    let status = s.support().authorize_assumption(req).await.unwrap_err();
    assert_error(&status, Code::InvalidArgument, "REQUEST_ID_REUSED");
}

/// Fail closed: if the audit event cannot be written, the call is UNAVAILABLE and nothing is allowed or stored.
#[tokio::test]
async fn audit_write_failure_fails_closed() {
    let s = spawn_server().await;
    s.create_account("acme", pb::AccountPlan::Trial).await;
    s.create_account("paid", pb::AccountPlan::Paid).await;
    s.fail_audit_inserts("fail_audit", None).await;
    let status = s
        .support()
        .authorize_assumption(authorize_request("acme"))
        .await
        .unwrap_err();
    assert_error(&status, Code::Unavailable, "STORAGE_UNAVAILABLE");
    assert!(
        !status.message().contains("injected"),
        "internal text leaked: {status:?}"
    );
    assert_eq!(s.count("SELECT COUNT(*) FROM assumptions").await, 0);
    // Grant changes fail closed the same way: no audit event, no change.
    let status = s.enable("paid", D::OneDay).await.unwrap_err();
    assert_error(&status, Code::Unavailable, "STORAGE_UNAVAILABLE");
    assert_eq!(
        s.grant("paid").await.state(),
        pb::access_grant::State::Disabled
    );
    s.remove_fault("fail_audit").await;
    let r = s.authorize("acme").await;
    assert_eq!(r.decision(), pb::Decision::Allow);
    assert_eq!(s.count("SELECT COUNT(*) FROM assumptions").await, 1);
}

/// Clients that give up mid-call never leave an assumption without its audit event, or the reverse.
#[tokio::test]
async fn cancelled_calls_commit_whole_or_not_at_all() {
    let s = spawn_server().await;
    s.create_account("acme", pb::AccountPlan::Trial).await;
    let mut tasks = Vec::new();
    for i in 0..60 {
        let mut client = s.support();
        tasks.push(tokio::spawn(async move {
            let mut request = tonic::Request::new(authorize_request("acme"));
            // Deadlines from "already passed" to "long enough": some calls are cut mid-way.
            request.set_timeout(StdDuration::from_micros(200 * (i % 20) + 1));
            let _ = client.authorize_assumption(request).await;
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // Every snapshot of the database (one statement = one snapshot), taken while detached
    // writes may still be committing and after they have all finished, pairs each assumption
    // with its event and each ALLOW event with its assumption.
    let orphans = "SELECT \
         (SELECT COUNT(*) FROM assumptions a WHERE NOT EXISTS (SELECT 1 FROM audit_events e \
            WHERE e.kind = 'ASSUMPTION_ALLOWED' AND e.detail_json LIKE '%' || a.assumption_id || '%')) + \
         (SELECT COUNT(*) FROM audit_events e WHERE e.kind = 'ASSUMPTION_ALLOWED' AND NOT EXISTS \
            (SELECT 1 FROM assumptions a WHERE e.detail_json LIKE '%' || a.assumption_id || '%'))";
    let mut previous = -1;
    for _ in 0..100 {
        assert_eq!(
            s.count(orphans).await,
            0,
            "an assumption without its event, or the reverse"
        );
        let now = s.count("SELECT COUNT(*) FROM assumptions").await;
        if now == previous {
            break;
        }
        previous = now;
        tokio::time::sleep(StdDuration::from_millis(100)).await;
    }
    assert_eq!(s.count(orphans).await, 0);
}

/// Racing Disable/Enable against AuthorizeAssumption: no ALLOW on the customer grant is ever recorded after a GRANT_DISABLED unless a GRANT_ENABLED came between.
#[tokio::test]
async fn no_allow_after_a_committed_disable() {
    let s = spawn_server().await;
    s.create_account("acme", pb::AccountPlan::Paid).await;
    s.enable("acme", D::Indefinite).await.unwrap();
    let mut tasks = Vec::new();
    for worker in 0..8 {
        let grants = s.grants();
        let mut support = s.support();
        tasks.push(tokio::spawn(async move {
            let mut grants = grants;
            for i in 0..25 {
                if worker % 2 == 0 {
                    let r = support
                        .authorize_assumption(authorize_request("acme"))
                        .await
                        .unwrap();
                    let r = r.into_inner();
                    assert_ne!(r.decision(), pb::Decision::Unspecified);
                } else if i % 2 == 0 {
                    grants
                        .disable_access_grant(pb::DisableAccessGrantRequest {
                            account_id: "acme".into(),
                            actor: Some(support_admin()),
                            ..Default::default()
                        })
                        .await
                        .unwrap();
                } else {
                    grants
                        .enable_access_grant(enable_request("acme", D::Indefinite, support_admin()))
                        .await
                        .unwrap();
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let events = s.events("acme").await;
    let mut enabled = false;
    let (mut allows, mut denies) = (0, 0);
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.sequence, i as i64 + 1, "gap-free sequence");
        match e.kind {
            EventKind::GrantEnabled => enabled = true,
            EventKind::GrantDisabled => enabled = false,
            EventKind::AssumptionAllowed => {
                assert!(
                    enabled,
                    "ALLOW at sequence {} after a committed disable",
                    e.sequence
                );
                allows += 1;
            }
            EventKind::AssumptionDenied => {
                assert!(!enabled, "DENY at sequence {} while enabled", e.sequence);
                denies += 1;
            }
            _ => {}
        }
    }
    assert_eq!(allows + denies, 100);
    let store = accessgrant::storage::Store::connect(&s.database_url)
        .await
        .unwrap();
    let v = accessgrant::storage::audit_log::verify(&store, "acme")
        .await
        .unwrap();
    assert!(v.intact());
}
