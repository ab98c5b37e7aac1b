//! `accessgrant.v1.AuditService`: declared with its final messages; served with the
//! tamper-evident log milestone, until then every RPC answers `UNIMPLEMENTED`.

use std::pin::Pin;

use futures::Stream;
use tonic::{Request, Response, Status};

use crate::{
    domain::Error,
    proto::v1::{self as pb, audit_service_server::AuditService},
    service::App,
};

/// Handlers of `AuditService`.
pub struct AuditApi {
    /// The application.
    _app: App,
}

impl AuditApi {
    /// Wraps the application.
    pub fn new(app: App) -> Self {
        Self { _app: app }
    }
}

/// The stream type of `WatchAuditEvents`.
pub type WatchStream =
    Pin<Box<dyn Stream<Item = Result<pb::WatchAuditEventsResponse, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl AuditService for AuditApi {
    type WatchAuditEventsStream = WatchStream;

    async fn list_audit_events(
        &self,
        _request: Request<pb::ListAuditEventsRequest>,
    ) -> Result<Response<pb::ListAuditEventsResponse>, Status> {
        Err(Error::NotImplemented("ListAuditEvents").into())
    }

    async fn watch_audit_events(
        &self,
        _request: Request<pb::WatchAuditEventsRequest>,
    ) -> Result<Response<Self::WatchAuditEventsStream>, Status> {
        Err(Error::NotImplemented("WatchAuditEvents").into())
    }

    async fn verify_audit_chain(
        &self,
        _request: Request<pb::VerifyAuditChainRequest>,
    ) -> Result<Response<pb::VerifyAuditChainResponse>, Status> {
        Err(Error::NotImplemented("VerifyAuditChain").into())
    }
}
