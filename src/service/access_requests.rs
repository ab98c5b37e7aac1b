//! Per-request approval: support asks, the account's admins answer, support uses it (through
//! `AuthorizeAssumption.access_request_id`), and either side can close it. Every change is a
//! command in `commands::access_request`, written with its audit event in one transaction.

use super::{
    App, Caller, Idempotency,
    commands::access_request::{Close, Create, Review},
    page_token,
};
use crate::{
    domain::{
        Error,
        access_request::{
            AccessRequestView, Closing, NewAccessRequest, RequestState, ReviewRequest,
        },
        grant,
        ids::AccountId,
        permission::Permission,
    },
    storage::{access_requests, page::Cursor, to_us},
};

/// A request for one page of an account's access requests.
#[derive(Debug, Clone)]
pub struct RequestListQuery {
    /// The account.
    pub account_id: AccountId,
    /// Only requests in these states (evaluated now); empty: all.
    pub states: Vec<RequestState>,
    /// Page size (already defaulted and capped, like `ListAuditEvents`').
    pub page_size: u64,
    /// The previous page's token, if any.
    pub page_token: Option<String>,
}

/// One page, newest first.
#[derive(Debug, Clone)]
pub struct RequestPage {
    /// The requests, evaluated now.
    pub requests: Vec<AccessRequestView>,
    /// Token for the next page; `None` at the end.
    pub next_page_token: Option<String>,
}

impl App {
    /// Support asks for access: a pending request, reviewed by the account's admins.
    pub async fn create_access_request(
        &self,
        req: NewAccessRequest,
        request_id: Option<String>,
        caller: Caller,
    ) -> Result<AccessRequestView, Error> {
        caller.require(Permission::AccessAuthorize)?;
        let idem = Idempotency::new(
            "CreateAccessRequest",
            request_id.clone(),
            &caller.principal,
            &req,
        )?;
        let command = Create {
            req,
            principal: caller.principal,
            request_id,
            pending_lifetime: self.settings.pending_request_lifetime,
        };
        self.write(command, idem).await
    }

    /// One request, evaluated now.
    pub async fn get_access_request(
        &self,
        id: &str,
        caller: &Caller,
    ) -> Result<AccessRequestView, Error> {
        caller.require_any(&[Permission::AccessAuthorize, Permission::GrantsRead])?;
        let found = access_requests::find(self.store.reader(), id)
            .await?
            .ok_or(Error::AccessRequestNotFound)?;
        Ok(AccessRequestView::at(found, self.clock.now()))
    }

    /// One page of an account's requests, newest first, states evaluated now.
    pub async fn list_access_requests(
        &self,
        query: RequestListQuery,
        caller: &Caller,
    ) -> Result<RequestPage, Error> {
        caller.require(Permission::GrantsRead)?;
        let names: Vec<&str> = query.states.iter().map(|s| s.as_str()).collect();
        let binding = page_token::binding("access_requests", query.account_id.as_str(), &names);
        let after = query
            .page_token
            .as_deref()
            .map(|t| page_token::decode(t, &binding))
            .transpose()?;
        let reader = self.store.reader();
        self.require_account(query.account_id.as_str()).await?;
        let now = self.clock.now();
        // One extra row tells whether another page exists.
        let rows = access_requests::page(
            reader,
            query.account_id.as_str(),
            &query.states,
            now,
            after.as_ref(),
            query.page_size + 1,
        )
        .await?;
        let (rows, next_page_token) =
            page_token::page(rows, query.page_size, &binding, |last| Cursor {
                time_us: to_us(last.create_time),
                id: last.access_request_id.clone(),
            });
        Ok(RequestPage {
            requests: rows
                .into_iter()
                .map(|r| AccessRequestView::at(r, now))
                .collect(),
            next_page_token,
        })
    }

    /// A customer admin approves or denies a pending request.
    pub async fn review_access_request(
        &self,
        review: ReviewRequest,
        request_id: Option<String>,
        caller: Caller,
    ) -> Result<AccessRequestView, Error> {
        caller.require(Permission::GrantsWrite)?;
        // The actor's roles need no data: refuse a non-admin before touching the request.
        grant::authorize_actor(&review.actor)?;
        let scope = match review.verdict {
            crate::domain::access_request::Verdict::Approve => "ApproveAccessRequest",
            crate::domain::access_request::Verdict::Deny => "DenyAccessRequest",
        };
        let idem = Idempotency::new(scope, request_id.clone(), &caller.principal, &review)?;
        let account_id = self.request_account(&review.access_request_id).await?;
        let command = Review {
            review,
            account_id,
            principal: caller.principal,
            request_id,
        };
        self.write(command, idem).await
    }

    /// Support cancels (`Closing::Cancel`) or a customer admin revokes a request; every open
    /// assumption made under it is revoked in the same transaction.
    pub async fn close_access_request(
        &self,
        access_request_id: String,
        closing: Closing,
        request_id: Option<String>,
        caller: Caller,
    ) -> Result<AccessRequestView, Error> {
        let scope = match &closing {
            Closing::Cancel => {
                caller.require(Permission::AccessAuthorize)?;
                "CancelAccessRequest"
            }
            Closing::Revoke { actor, .. } => {
                caller.require(Permission::GrantsWrite)?;
                grant::authorize_actor(actor)?;
                "RevokeAccessRequest"
            }
        };
        let idem = Idempotency::new(
            scope,
            request_id.clone(),
            &caller.principal,
            &(&access_request_id, &closing),
        )?;
        let account_id = self.request_account(&access_request_id).await?;
        let command = Close {
            access_request_id,
            account_id,
            closing,
            principal: caller.principal,
            request_id,
        };
        let (view, _closed) = self.write(command, idem).await?;
        Ok(view)
    }

    /// The account a request belongs to (never changes, so it may be read before the write
    /// that announces it).
    async fn request_account(&self, id: &str) -> Result<AccountId, Error> {
        let found = access_requests::find(self.store.reader(), id)
            .await?
            .ok_or(Error::AccessRequestNotFound)?;
        AccountId::parse(&found.account_id, "account_id")
            .map_err(|_| Error::Internal(format!("stored account id {:?}", found.account_id)))
    }

    /// Fails with `AccountNotFound` unless the account exists (deleted ones included: their
    /// history stays readable).
    pub(crate) async fn require_account(&self, id: &str) -> Result<(), Error> {
        let found = crate::storage::grants::read_cached(&self.store, &[id]).await?;
        if found.is_empty() {
            return Err(Error::AccountNotFound);
        }
        Ok(())
    }
}
