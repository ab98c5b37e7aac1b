//! Seeding: the accounts every scenario reads and decides on, created through the public API
//! (as a customer would) before anything is measured.

use std::time::Duration;

use accessgrant::proto::v1::{
    AccessDuration, AccessReason, AccountPlan, Actor, ApproveAccessRequestRequest,
    CreateAccessRequestRequest, EnableAccessGrantRequest, Product, ProductRole, Role,
    UpsertAccountRequest,
};
use futures::stream::{self, StreamExt};
use tokio::time::Instant;
use tonic::{Code, Status};

use crate::{
    BoxError,
    connect::{Clients, code_name},
    workload::{Accounts, LOADGEN_TICKET, LOADGEN_USER},
};

/// Seeding requests in flight at once.
const SEED_IN_FLIGHT: usize = 32;

/// Attempts per seeding call (see [`with_retry`]).
const SEED_ATTEMPTS: u32 = 8;

/// Pause after the first failed seeding attempt; doubles after each further one.
const SEED_BACKOFF: Duration = Duration::from_millis(20);

/// The customer admin who enables grants during seeding.
pub(crate) fn loadgen_admin() -> Actor {
    Actor {
        user_id: LOADGEN_USER.into(),
        roles: vec![ProductRole {
            product: Product::Support.into(),
            role: Role::Admin.into(),
        }],
    }
}

/// Whether a seeding call that failed with `code` is worth retrying (shed or briefly down).
pub(crate) fn retryable(code: Code) -> bool {
    matches!(code, Code::ResourceExhausted | Code::Unavailable)
}

/// Runs `call` up to [`SEED_ATTEMPTS`] times, backing off exponentially from [`SEED_BACKOFF`]
/// while it fails with a [retryable] code, so seeding survives a server that sheds load.
pub(crate) async fn with_retry<T, F, Fut>(mut call: F) -> Result<T, Status>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Status>>,
{
    let mut backoff = SEED_BACKOFF;
    for _ in 1..SEED_ATTEMPTS {
        match call().await {
            Err(status) if retryable(status.code()) => {
                tokio::time::sleep(backoff).await;
                backoff *= 2;
            }
            done => return done,
        }
    }
    call().await
}

/// Creates one paid account and, for the allow set, enables its grant indefinitely. Both calls
/// are safe to repeat: upserting the same plan and re-enabling change nothing that matters here.
pub(crate) async fn seed_one(
    clients: &Clients,
    account_id: &str,
    enable: bool,
) -> Result<(), Status> {
    let upsert = UpsertAccountRequest {
        account_id: account_id.into(),
        plan: AccountPlan::Paid.into(),
        ..Default::default()
    };
    with_retry(|| {
        let mut client = clients.accounts.clone();
        let request = upsert.clone();
        async move { client.upsert_account(request).await }
    })
    .await?;
    if enable {
        let enable = EnableAccessGrantRequest {
            account_id: account_id.into(),
            duration: AccessDuration::Indefinite.into(),
            actor: Some(loadgen_admin()),
            ..Default::default()
        };
        with_retry(|| {
            let mut client = clients.grants.clone();
            let request = enable.clone();
            async move { client.enable_access_grant(request).await }
        })
        .await?;
    }
    Ok(())
}

/// Seeds every account, [`SEED_IN_FLIGHT`] at a time over all connections; fails if any fails.
pub(crate) async fn seed(clients: &[Clients], accounts: &Accounts) -> Result<Duration, BoxError> {
    let started = Instant::now();
    let results: Vec<Result<(), String>> = stream::iter(accounts.ids.iter().enumerate())
        .map(|(n, id)| {
            let conn = &clients[n % clients.len()];
            let enable = n < accounts.allow_len;
            async move {
                seed_one(conn, id, enable)
                    .await
                    .map_err(|s| format!("{id}: {} {}", code_name(s.code()), s.message()))
            }
        })
        .buffer_unordered(SEED_IN_FLIGHT)
        .collect()
        .await;
    let failures: Vec<String> = results.into_iter().filter_map(Result::err).collect();
    if let Some(first) = failures.first() {
        return Err(format!(
            "seeding failed for {} of {} accounts; first: {first}",
            failures.len(),
            accounts.ids.len()
        )
        .into());
    }
    Ok(started.elapsed())
}

/// For the `request_allow` scenario: one access request per deny-set account (grant off),
/// created by the generator as support staff and approved by its admin (the default policy
/// needs one approval), so each later `AuthorizeAssumption` naming it is allowed.
pub(crate) async fn seed_requests(
    clients: &[Clients],
    accounts: &Accounts,
) -> Result<Vec<(String, String)>, BoxError> {
    let results: Vec<Result<(String, String), String>> =
        stream::iter(accounts.deny().iter().enumerate())
            .map(|(n, id)| {
                let conn = &clients[n % clients.len()];
                async move {
                    approved_request(conn, id)
                        .await
                        .map(|rid| (id.clone(), rid))
                        .map_err(|s| format!("{id}: {} {}", code_name(s.code()), s.message()))
                }
            })
            .buffer_unordered(SEED_IN_FLIGHT)
            .collect()
            .await;
    results
        .into_iter()
        .collect::<Result<Vec<_>, String>>()
        .map_err(|e| format!("seeding access requests failed; first: {e}").into())
}

/// Creates and approves one request on `account_id`; its id.
async fn approved_request(clients: &Clients, account_id: &str) -> Result<String, Status> {
    let create = CreateAccessRequestRequest {
        account_id: account_id.into(),
        staff_id: LOADGEN_USER.into(),
        ticket_id: LOADGEN_TICKET.into(),
        reason: AccessReason::Other.into(),
        requested_duration: Some(prost_types::Duration {
            seconds: 8 * 3600,
            nanos: 0,
        }),
        ..Default::default()
    };
    let created = with_retry(|| {
        let mut client = clients.requests.clone();
        let request = create.clone();
        async move { client.create_access_request(request).await }
    })
    .await?;
    let id = created
        .into_inner()
        .access_request
        .map(|r| r.access_request_id)
        .unwrap_or_default();
    let approve = ApproveAccessRequestRequest {
        access_request_id: id.clone(),
        actor: Some(loadgen_admin()),
        ..Default::default()
    };
    with_retry(|| {
        let mut client = clients.requests.clone();
        let request = approve.clone();
        async move { client.approve_access_request(request).await }
    })
    .await?;
    Ok(id)
}
