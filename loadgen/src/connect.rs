//! Connections to the server: `--connections` HTTP/2 channels, each carrying a client of every
//! service with the bearer token attached, and how a call's answer is judged.

use accessgrant::proto::v1::{
    access_grant_service_client::AccessGrantServiceClient,
    access_request_service_client::AccessRequestServiceClient,
    account_service_client::AccountServiceClient, audit_service_client::AuditServiceClient,
    support_access_service_client::SupportAccessServiceClient,
};
use std::time::Duration;
use tonic::{
    Code, Status,
    metadata::{AsciiMetadataValue, MetadataValue},
    service::{Interceptor, interceptor::InterceptedService},
    transport::{Channel, Endpoint},
};
use tonic_health::pb::health_client::HealthClient;

use crate::{BoxError, args::Args};

/// How long to wait for each connection to be established.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Adds `authorization: Bearer TOKEN` to every call when a token is configured.
#[derive(Debug, Clone)]
pub(crate) struct Auth {
    /// The full header value, if any.
    pub(crate) header: Option<AsciiMetadataValue>,
}

impl Auth {
    /// Builds the header once; a token that is not a valid header value is an argument error.
    pub(crate) fn new(token: Option<&str>) -> Result<Self, BoxError> {
        let header = token
            .map(|t| MetadataValue::try_from(format!("Bearer {t}")))
            .transpose()
            .map_err(|_| "--token contains characters not allowed in a header")?;
        Ok(Self { header })
    }
}

impl Interceptor for Auth {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        if let Some(header) = &self.header {
            request
                .metadata_mut()
                .insert("authorization", header.clone());
        }
        Ok(request)
    }
}

/// The channel every client uses, with the auth interceptor.
pub(crate) type Svc = InterceptedService<Channel, Auth>;

/// Clients of every service, all on one HTTP/2 connection.
#[derive(Debug, Clone)]
pub(crate) struct Clients {
    /// `grpc.health.v1.Health`.
    pub(crate) health: HealthClient<Svc>,
    /// `accessgrant.v1.AccountService`.
    pub(crate) accounts: AccountServiceClient<Svc>,
    /// `accessgrant.v1.AccessGrantService`.
    pub(crate) grants: AccessGrantServiceClient<Svc>,
    /// `accessgrant.v1.SupportAccessService`.
    pub(crate) support: SupportAccessServiceClient<Svc>,
    /// `accessgrant.v1.AuditService`.
    pub(crate) audit: AuditServiceClient<Svc>,
    /// `accessgrant.v1.AccessRequestService`.
    pub(crate) requests: AccessRequestServiceClient<Svc>,
}

impl Clients {
    /// Clients sharing `channel`.
    pub(crate) fn new(channel: Channel, auth: &Auth) -> Self {
        Self {
            health: HealthClient::with_interceptor(channel.clone(), auth.clone()),
            accounts: AccountServiceClient::with_interceptor(channel.clone(), auth.clone()),
            grants: AccessGrantServiceClient::with_interceptor(channel.clone(), auth.clone()),
            support: SupportAccessServiceClient::with_interceptor(channel.clone(), auth.clone()),
            audit: AuditServiceClient::with_interceptor(channel.clone(), auth.clone()),
            requests: AccessRequestServiceClient::with_interceptor(channel, auth.clone()),
        }
    }
}

/// An error and its sources, `outer: inner: …` (tonic's transport error alone says little).
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        text.push_str(&format!(": {inner}"));
        source = inner.source();
    }
    text
}

/// Opens `--connections` separate HTTP/2 connections.
pub(crate) async fn connect(args: &Args, auth: &Auth) -> Result<Vec<Clients>, BoxError> {
    let endpoint = Endpoint::from_shared(args.target.clone())?
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(args.request_timeout)
        .tcp_nodelay(true);
    let mut clients = Vec::with_capacity(args.connections);
    for _ in 0..args.connections {
        // Each `connect()` dials its own connection; clones of one Channel would share it.
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| format!("cannot connect to {}: {}", args.target, error_chain(&e)))?;
        clients.push(Clients::new(channel, auth));
    }
    Ok(clients)
}

/// How one request ended.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Outcome {
    /// OK with the expected answer.
    Ok,
    /// A non-OK status (by code name), or `WRONG_DECISION` / `NOT_SERVING`.
    Failed(&'static str),
}

impl Outcome {
    /// The outcome of an RPC whose only check is the status.
    pub(crate) fn of<T>(result: Result<tonic::Response<T>, Status>) -> Self {
        match result {
            Ok(_) => Self::Ok,
            Err(status) => Self::Failed(code_name(status.code())),
        }
    }
}

/// The canonical gRPC name of a status code, e.g. `RESOURCE_EXHAUSTED`.
pub(crate) fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}
