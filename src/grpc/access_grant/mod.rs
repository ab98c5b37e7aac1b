//! `accessgrant.v1.AccessGrantService`.

pub mod convert;

use tonic::{Request, Response, Status};

use crate::grpc::{admit, fields};
use crate::telemetry::record_account;
use crate::{
    proto::v1::{self as pb, access_grant_service_server::AccessGrantService},
    service::App,
};

/// Handlers of `AccessGrantService`.
pub struct AccessGrantApi {
    /// The application.
    app: App,
}

impl AccessGrantApi {
    /// Wraps the application.
    pub fn new(app: App) -> Self {
        Self { app }
    }
}

#[tonic::async_trait]
impl AccessGrantService for AccessGrantApi {
    async fn get_access_grant(
        &self,
        request: Request<pb::GetAccessGrantRequest>,
    ) -> Result<Response<pb::GetAccessGrantResponse>, Status> {
        let (caller, _slot) = admit(&request)?;
        let pb::GetAccessGrantRequest { account_id } = request.into_inner();
        let id = fields::account_id(&account_id)?;
        record_account(id.as_str());
        let grant = self.app.get_grant(&id, &caller).await?;
        Ok(Response::new(pb::GetAccessGrantResponse {
            access_grant: Some(grant.into()),
        }))
    }

    async fn enable_access_grant(
        &self,
        request: Request<pb::EnableAccessGrantRequest>,
    ) -> Result<Response<pb::EnableAccessGrantResponse>, Status> {
        let (caller, _slot) = admit(&request)?;
        let (cmd, request_id) = convert::enable_request(request.into_inner())?;
        record_account(cmd.account_id.as_str());
        let grant = self.app.enable_grant(cmd, request_id, caller).await?;
        Ok(Response::new(pb::EnableAccessGrantResponse {
            access_grant: Some(grant.into()),
        }))
    }

    async fn disable_access_grant(
        &self,
        request: Request<pb::DisableAccessGrantRequest>,
    ) -> Result<Response<pb::DisableAccessGrantResponse>, Status> {
        let (caller, _slot) = admit(&request)?;
        let (cmd, request_id) = convert::disable_request(request.into_inner())?;
        record_account(cmd.account_id.as_str());
        let grant = self.app.disable_grant(cmd, request_id, caller).await?;
        Ok(Response::new(pb::DisableAccessGrantResponse {
            access_grant: Some(grant.into()),
        }))
    }

    async fn batch_get_access_grants(
        &self,
        request: Request<pb::BatchGetAccessGrantsRequest>,
    ) -> Result<Response<pb::BatchGetAccessGrantsResponse>, Status> {
        let (caller, _slot) = admit(&request)?;
        let ids = convert::batch_get_request(request.into_inner())?;
        let grants = self.app.batch_get_grants(&ids, &caller).await?;
        Ok(Response::new(pb::BatchGetAccessGrantsResponse {
            access_grants: grants.into_iter().map(Into::into).collect(),
        }))
    }

    async fn get_access_policy(
        &self,
        request: Request<pb::GetAccessPolicyRequest>,
    ) -> Result<Response<pb::GetAccessPolicyResponse>, Status> {
        let (caller, _slot) = admit(&request)?;
        let pb::GetAccessPolicyRequest { account_id } = request.into_inner();
        let id = fields::account_id(&account_id)?;
        record_account(id.as_str());
        let policy = self.app.get_access_policy(&id, &caller).await?;
        Ok(Response::new(pb::GetAccessPolicyResponse {
            access_policy: Some(policy.into()),
        }))
    }

    async fn update_access_policy(
        &self,
        request: Request<pb::UpdateAccessPolicyRequest>,
    ) -> Result<Response<pb::UpdateAccessPolicyResponse>, Status> {
        let (caller, _slot) = admit(&request)?;
        let (update, request_id) = convert::update_policy_request(request.into_inner())?;
        record_account(update.account_id.as_str());
        let policy = self
            .app
            .update_access_policy(update, request_id, caller)
            .await?;
        Ok(Response::new(pb::UpdateAccessPolicyResponse {
            access_policy: Some(policy.into()),
        }))
    }
}
