//! `accessgrant.v1.AuditService`.

pub mod convert;

use std::pin::Pin;

use futures::{Stream, StreamExt};
use tonic::{Request, Response, Status};

use crate::grpc::{admit, fields};
use crate::telemetry::record_account;
use crate::{
    proto::v1::{self as pb, audit_service_server::AuditService},
    service::App,
};

/// Handlers of `AuditService`.
pub struct AuditApi {
    /// The application.
    app: App,
}

impl AuditApi {
    /// Wraps the application.
    pub fn new(app: App) -> Self {
        Self { app }
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
        request: Request<pb::ListAuditEventsRequest>,
    ) -> Result<Response<pb::ListAuditEventsResponse>, Status> {
        let (caller, _slot) = admit(&request)?;
        let query = convert::list_request(request.into_inner())?;
        record_account(query.account_id.as_str());
        let page = self.app.list_audit_events(query, &caller).await?;
        Ok(Response::new(pb::ListAuditEventsResponse {
            events: page.events.into_iter().map(Into::into).collect(),
            next_page_token: page.next_page_token.unwrap_or_default(),
        }))
    }

    async fn watch_audit_events(
        &self,
        request: Request<pb::WatchAuditEventsRequest>,
    ) -> Result<Response<Self::WatchAuditEventsStream>, Status> {
        let (caller, _slot) = admit(&request)?;
        let (account, after) = convert::watch_request(request.into_inner())?;
        let events = self.app.watch_audit_events(account, after, &caller).await?;
        let stream = events.map(|item| {
            item.map(|(global_position, event)| pb::WatchAuditEventsResponse {
                event: Some(event.into()),
                global_position,
            })
            .map_err(Status::from)
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn verify_audit_chain(
        &self,
        request: Request<pb::VerifyAuditChainRequest>,
    ) -> Result<Response<pb::VerifyAuditChainResponse>, Status> {
        let (caller, _slot) = admit(&request)?;
        let pb::VerifyAuditChainRequest { account_id } = request.into_inner();
        let id = fields::account_id(&account_id)?;
        record_account(id.as_str());
        let verification = self.app.verify_audit_chain(&id, &caller).await?;
        Ok(Response::new(pb::VerifyAuditChainResponse {
            intact: verification.intact(),
            events_checked: verification.events_checked,
            first_broken_event_id: verification.first_broken_event_id.unwrap_or_default(),
        }))
    }

    async fn get_audit_checkpoint(
        &self,
        request: Request<pb::GetAuditCheckpointRequest>,
    ) -> Result<Response<pb::GetAuditCheckpointResponse>, Status> {
        let (caller, _slot) = admit(&request)?;
        let (checkpoint, verifier_key) = self.app.audit_checkpoint(&caller).await?;
        Ok(Response::new(pb::GetAuditCheckpointResponse {
            checkpoint,
            verifier_key,
        }))
    }

    async fn get_audit_inclusion_proof(
        &self,
        request: Request<pb::GetAuditInclusionProofRequest>,
    ) -> Result<Response<pb::GetAuditInclusionProofResponse>, Status> {
        let (caller, _slot) = admit(&request)?;
        let (event_id, tree_size) = convert::inclusion_request(request.into_inner())?;
        let proof = self
            .app
            .inclusion_proof(&event_id, tree_size, &caller)
            .await?;
        Ok(Response::new(convert::inclusion_response(proof)))
    }

    async fn get_audit_consistency_proof(
        &self,
        request: Request<pb::GetAuditConsistencyProofRequest>,
    ) -> Result<Response<pb::GetAuditConsistencyProofResponse>, Status> {
        let (caller, _slot) = admit(&request)?;
        let (first, second) = convert::consistency_request(request.into_inner())?;
        let (second_tree_size, hashes) = self.app.consistency_proof(first, second, &caller).await?;
        Ok(Response::new(pb::GetAuditConsistencyProofResponse {
            second_tree_size: i64::try_from(second_tree_size).unwrap_or(i64::MAX),
            hashes: hashes.iter().map(|h| h.to_vec()).collect(),
        }))
    }
}
