//! Rows ↔ columns, once for both backends: each table's entity `Model` is the flat column
//! form (the SQLite backend binds its fields by hand, the PostgreSQL one hands it to
//! sea-orm), and decoding always goes through the repositories' `to_domain`.

use super::rows::GrantRow;
use crate::{
    domain::{Error, access_request::AccessRequest, account::Account, assumption::Assumption},
    storage::{
        access_requests, accounts, assumptions,
        entities::{access_grant, access_request, account, assumption},
        grants, to_us,
    },
};

/// An account's columns.
pub fn account_model(a: &Account) -> account::Model {
    account::Model {
        account_id: a.account_id.as_str().to_owned(),
        plan: a.plan.as_str().to_owned(),
        create_time_us: to_us(a.create_time),
        update_time_us: to_us(a.update_time),
        delete_time_us: a.delete_time.map(to_us),
    }
}

/// A grant's columns, the account's request policy included (it lives on the grant row).
pub fn grant_model(account_id: &str, g: &GrantRow) -> access_grant::Model {
    let r = &g.record;
    access_grant::Model {
        account_id: account_id.to_owned(),
        enabled: r.enabled,
        duration: r.duration.map(|d| d.as_str().to_owned()),
        enable_time_us: r.enable_time.map(to_us),
        expire_time_us: r.expire_time.map(to_us),
        update_time_us: to_us(r.update_time),
        update_user_id: r.update_user_id.clone(),
        version: r.version,
        expiry_recorded_us: g.expiry_recorded_us,
        requests_enabled: r.policy.requests_enabled,
        required_approvals: r.policy.required_approvals,
        max_request_duration_us: r.policy.max_request_duration_us,
        policy_version: r.policy.version,
    }
}

/// An assumption's columns.
pub fn assumption_model(a: &Assumption) -> assumption::Model {
    assumption::Model {
        assumption_id: a.assumption_id.clone(),
        account_id: a.account_id.clone(),
        staff_id: a.staff_id.clone(),
        ticket_id: a.ticket_id.clone(),
        basis: a.basis.as_str().to_owned(),
        start_time_us: to_us(a.start_time),
        expire_time_us: to_us(a.expire_time),
        end_time_us: a.end_time.map(to_us),
        end_reason: a.end_reason.map(|r| r.as_str().to_owned()),
        access_request_id: a.access_request_id.clone(),
    }
}

/// An access request's columns (its reviews as one JSON array).
pub fn access_request_model(r: &AccessRequest) -> access_request::Model {
    access_request::Model {
        access_request_id: r.access_request_id.clone(),
        account_id: r.account_id.clone(),
        staff_id: r.staff_id.clone(),
        ticket_id: r.ticket_id.clone(),
        reason: r.reason.as_str().to_owned(),
        reason_detail: r.reason_detail.clone(),
        requested_duration_us: r.requested_duration_us,
        status: r.status.as_str().to_owned(),
        reviews_json: access_requests::reviews_json(&r.reviews),
        required_approvals: r.required_approvals,
        create_time_us: to_us(r.create_time),
        request_expire_time_us: to_us(r.request_expire_time),
        approve_time_us: r.approve_time.map(to_us),
        expire_time_us: r.expire_time.map(to_us),
        update_time_us: to_us(r.update_time),
        version: r.version,
    }
}

/// Decodes an account and its grant.
pub fn account_with_grant(
    a: account::Model,
    g: access_grant::Model,
) -> Result<(Account, GrantRow), Error> {
    let expiry_recorded_us = g.expiry_recorded_us;
    Ok((
        accounts::to_domain(a)?,
        GrantRow {
            record: grants::to_domain(g)?,
            expiry_recorded_us,
        },
    ))
}

/// Decodes an assumption.
pub fn assumption(m: assumption::Model) -> Result<Assumption, Error> {
    assumptions::to_domain(m)
}

/// Decodes an access request.
pub fn access_request(m: access_request::Model) -> Result<AccessRequest, Error> {
    access_requests::to_domain(m)
}
