//! `accessgrant.v1.SupportAccessService`.

pub mod convert;

use tonic::{Request, Response, Status};

use crate::grpc::admit;
use crate::telemetry::record_account;
use crate::{
    proto::v1::{self as pb, support_access_service_server::SupportAccessService},
    service::App,
};

/// Handlers of `SupportAccessService`.
pub struct SupportAccessApi {
    /// The application.
    app: App,
}

impl SupportAccessApi {
    /// Wraps the application.
    pub fn new(app: App) -> Self {
        Self { app }
    }
}

#[tonic::async_trait]
impl SupportAccessService for SupportAccessApi {
    async fn authorize_assumption(
        &self,
        request: Request<pb::AuthorizeAssumptionRequest>,
    ) -> Result<Response<pb::AuthorizeAssumptionResponse>, Status> {
        let (caller, _slot) = admit(&request)?;
        let (req, request_id) = convert::authorize_request(request.into_inner())?;
        record_account(req.account_id.as_str());
        let decision = self
            .app
            .authorize_assumption(req, request_id, caller)
            .await?;
        Ok(Response::new(decision.into()))
    }

    async fn get_assumption(
        &self,
        request: Request<pb::GetAssumptionRequest>,
    ) -> Result<Response<pb::GetAssumptionResponse>, Status> {
        let (caller, _slot) = admit(&request)?;
        let pb::GetAssumptionRequest { assumption_id } = request.into_inner();
        let id = convert::assumption_id(&assumption_id)?;
        let view = self.app.get_assumption(&id, &caller).await?;
        Ok(Response::new(pb::GetAssumptionResponse {
            assumption: Some(view.into()),
        }))
    }

    async fn end_assumption(
        &self,
        request: Request<pb::EndAssumptionRequest>,
    ) -> Result<Response<pb::EndAssumptionResponse>, Status> {
        let (caller, _slot) = admit(&request)?;
        let (id, request_id) = convert::end_request(request.into_inner())?;
        let view = self.app.end_assumption(id, request_id, caller).await?;
        Ok(Response::new(pb::EndAssumptionResponse {
            assumption: Some(view.into()),
        }))
    }

    async fn list_assumptions(
        &self,
        request: Request<pb::ListAssumptionsRequest>,
    ) -> Result<Response<pb::ListAssumptionsResponse>, Status> {
        let (caller, _slot) = admit(&request)?;
        let query = convert::list_request(request.into_inner())?;
        record_account(query.account_id.as_str());
        let page = self.app.list_assumptions(query, &caller).await?;
        Ok(Response::new(page.into()))
    }

    async fn revoke_assumption(
        &self,
        request: Request<pb::RevokeAssumptionRequest>,
    ) -> Result<Response<pb::RevokeAssumptionResponse>, Status> {
        let (caller, _slot) = admit(&request)?;
        let (revoke, request_id) = convert::revoke_request(request.into_inner())?;
        let view = self
            .app
            .revoke_assumption(revoke, request_id, caller)
            .await?;
        record_account(&view.assumption.account_id);
        Ok(Response::new(pb::RevokeAssumptionResponse {
            assumption: Some(view.into()),
        }))
    }
}
