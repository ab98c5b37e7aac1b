//! `accessgrant.v1.AccessRequestService`.

pub mod convert;

use tonic::{Request, Response, Status};

use crate::grpc::admit;
use crate::telemetry::record_account;
use crate::{
    domain::access_request::{AccessRequestView, Verdict},
    proto::v1::{self as pb, access_request_service_server::AccessRequestService},
    service::App,
};

/// Handlers of `AccessRequestService`.
pub struct AccessRequestApi {
    /// The application.
    app: App,
}

impl AccessRequestApi {
    /// Wraps the application.
    pub fn new(app: App) -> Self {
        Self { app }
    }
}

/// The request as every response carries it. Calls that name a request by id learn its
/// account only from the answer, so the account is recorded on the span here.
fn answered(view: AccessRequestView) -> Option<pb::AccessRequest> {
    record_account(&view.request.account_id);
    Some(view.into())
}

#[tonic::async_trait]
impl AccessRequestService for AccessRequestApi {
    async fn create_access_request(
        &self,
        request: Request<pb::CreateAccessRequestRequest>,
    ) -> Result<Response<pb::CreateAccessRequestResponse>, Status> {
        let (caller, _slot) = admit(&request)?;
        let (req, request_id) = convert::create_request(request.into_inner())?;
        record_account(req.account_id.as_str());
        let view = self
            .app
            .create_access_request(req, request_id, caller)
            .await?;
        Ok(Response::new(pb::CreateAccessRequestResponse {
            access_request: Some(view.into()),
        }))
    }

    async fn get_access_request(
        &self,
        request: Request<pb::GetAccessRequestRequest>,
    ) -> Result<Response<pb::GetAccessRequestResponse>, Status> {
        let (caller, _slot) = admit(&request)?;
        let pb::GetAccessRequestRequest { access_request_id } = request.into_inner();
        let id = convert::access_request_id(&access_request_id)?;
        let view = self.app.get_access_request(&id, &caller).await?;
        Ok(Response::new(pb::GetAccessRequestResponse {
            access_request: answered(view),
        }))
    }

    async fn list_access_requests(
        &self,
        request: Request<pb::ListAccessRequestsRequest>,
    ) -> Result<Response<pb::ListAccessRequestsResponse>, Status> {
        let (caller, _slot) = admit(&request)?;
        let query = convert::list_request(request.into_inner())?;
        record_account(query.account_id.as_str());
        let page = self.app.list_access_requests(query, &caller).await?;
        Ok(Response::new(page.into()))
    }

    async fn approve_access_request(
        &self,
        request: Request<pb::ApproveAccessRequestRequest>,
    ) -> Result<Response<pb::ApproveAccessRequestResponse>, Status> {
        let (caller, _slot) = admit(&request)?;
        let (review, request_id) =
            convert::review_request(request.into_inner().into(), Verdict::Approve)?;
        let view = self
            .app
            .review_access_request(review, request_id, caller)
            .await?;
        Ok(Response::new(pb::ApproveAccessRequestResponse {
            access_request: answered(view),
        }))
    }

    async fn deny_access_request(
        &self,
        request: Request<pb::DenyAccessRequestRequest>,
    ) -> Result<Response<pb::DenyAccessRequestResponse>, Status> {
        let (caller, _slot) = admit(&request)?;
        let (review, request_id) =
            convert::review_request(request.into_inner().into(), Verdict::Deny)?;
        let view = self
            .app
            .review_access_request(review, request_id, caller)
            .await?;
        Ok(Response::new(pb::DenyAccessRequestResponse {
            access_request: answered(view),
        }))
    }

    async fn cancel_access_request(
        &self,
        request: Request<pb::CancelAccessRequestRequest>,
    ) -> Result<Response<pb::CancelAccessRequestResponse>, Status> {
        let (caller, _slot) = admit(&request)?;
        let (id, closing, request_id) = convert::cancel_request(request.into_inner())?;
        let view = self
            .app
            .close_access_request(id, closing, request_id, caller)
            .await?;
        Ok(Response::new(pb::CancelAccessRequestResponse {
            access_request: answered(view),
        }))
    }

    async fn revoke_access_request(
        &self,
        request: Request<pb::RevokeAccessRequestRequest>,
    ) -> Result<Response<pb::RevokeAccessRequestResponse>, Status> {
        let (caller, _slot) = admit(&request)?;
        let (id, closing, request_id) = convert::revoke_request(request.into_inner())?;
        let view = self
            .app
            .close_access_request(id, closing, request_id, caller)
            .await?;
        Ok(Response::new(pb::RevokeAccessRequestResponse {
            access_request: answered(view),
        }))
    }
}
