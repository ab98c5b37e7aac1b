//! `accessgrant.v1.SupportAccessService`: declared with its final messages; the decisions
//! land with the audit log (next milestone), until then every RPC answers `UNIMPLEMENTED`.

use tonic::{Request, Response, Status};

use crate::{
    domain::Error,
    proto::v1::{self as pb, support_access_service_server::SupportAccessService},
    service::App,
};

/// Handlers of `SupportAccessService`.
pub struct SupportAccessApi {
    /// The application.
    _app: App,
}

impl SupportAccessApi {
    /// Wraps the application.
    pub fn new(app: App) -> Self {
        Self { _app: app }
    }
}

#[tonic::async_trait]
impl SupportAccessService for SupportAccessApi {
    async fn authorize_assumption(
        &self,
        _request: Request<pb::AuthorizeAssumptionRequest>,
    ) -> Result<Response<pb::AuthorizeAssumptionResponse>, Status> {
        Err(Error::NotImplemented("AuthorizeAssumption").into())
    }

    async fn get_assumption(
        &self,
        _request: Request<pb::GetAssumptionRequest>,
    ) -> Result<Response<pb::GetAssumptionResponse>, Status> {
        Err(Error::NotImplemented("GetAssumption").into())
    }

    async fn end_assumption(
        &self,
        _request: Request<pb::EndAssumptionRequest>,
    ) -> Result<Response<pb::EndAssumptionResponse>, Status> {
        Err(Error::NotImplemented("EndAssumption").into())
    }
}
