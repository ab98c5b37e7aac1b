//! `accessgrant.v1.AccountService`.

pub mod convert;

use tonic::{Request, Response, Status};

use crate::grpc::{admit, fields};
use crate::telemetry::record_account;
use crate::{
    proto::v1::{self as pb, account_service_server::AccountService},
    service::App,
};

/// Handlers of `AccountService`.
pub struct AccountApi {
    /// The application.
    app: App,
}

impl AccountApi {
    /// Wraps the application.
    pub fn new(app: App) -> Self {
        Self { app }
    }
}

#[tonic::async_trait]
impl AccountService for AccountApi {
    async fn upsert_account(
        &self,
        request: Request<pb::UpsertAccountRequest>,
    ) -> Result<Response<pb::UpsertAccountResponse>, Status> {
        let (caller, _slot) = admit(&request)?;
        let (cmd, request_id) = convert::upsert_request(request.into_inner())?;
        record_account(cmd.account_id.as_str());
        let upserted = self.app.upsert_account(cmd, request_id, caller).await?;
        Ok(Response::new(upserted.into()))
    }

    async fn get_account(
        &self,
        request: Request<pb::GetAccountRequest>,
    ) -> Result<Response<pb::GetAccountResponse>, Status> {
        let (caller, _slot) = admit(&request)?;
        let pb::GetAccountRequest { account_id } = request.into_inner();
        let id = fields::account_id(&account_id)?;
        record_account(id.as_str());
        let account = self.app.get_account(&id, &caller).await?;
        Ok(Response::new(pb::GetAccountResponse {
            account: Some(account.into()),
        }))
    }

    async fn delete_account(
        &self,
        request: Request<pb::DeleteAccountRequest>,
    ) -> Result<Response<pb::DeleteAccountResponse>, Status> {
        let (caller, _slot) = admit(&request)?;
        let (id, request_id) = convert::delete_request(request.into_inner())?;
        record_account(id.as_str());
        self.app.delete_account(id, request_id, caller).await?;
        Ok(Response::new(pb::DeleteAccountResponse {}))
    }
}
