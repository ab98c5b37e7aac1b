//! The admission layer, in front of every service: sheds calls at once while every slot of
//! the concurrency limit is taken, authenticates the caller, checks the method's permission,
//! bounds the call's deadline, and hands the [`Caller`] and the [`CallSlots`] to the handler
//! through the request's extensions. Runs before the request body is decoded. The slot itself
//! is taken by the handler once the body has arrived (`grpc::admit`): a caller that sends
//! headers and then stalls its body must not hold one of the limited slots, or a few hundred
//! stalled calls from any principal would shed everyone else for the whole deadline.

use std::{
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use futures::future::BoxFuture;
use tokio::sync::Semaphore;
use tonic::{Status, transport::server::TlsConnectInfo};
use tower::{Layer, Service};

use super::{AuthError, Authenticator, certificate};
use crate::{
    connections::{ConnectionInfo, activity::Activity},
    domain::{Error, permission::Caller},
    grpc::permissions::{self, Requirement},
};

/// The calls-in-flight limit (`[limits] max_concurrent_requests`), for the handler to take a
/// slot from once its request is decoded (`grpc::admit`); none left means shed.
#[derive(Debug, Clone)]
pub struct CallSlots(pub Arc<Semaphore>);

/// Shared state of the layer.
#[derive(Debug)]
struct Admission {
    /// Maps credentials to principals.
    authenticator: Authenticator,
    /// One permit per call in flight; none left means shed.
    permits: Arc<Semaphore>,
    /// Cap on any call's deadline.
    max_deadline: Duration,
}

/// Parses a `grpc-timeout` header (`<digits><unit>`, unit one of H M S m u n).
pub fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    if value.len() < 2 || value.len() > 9 {
        return None;
    }
    let (digits, unit) = value.split_at(value.len() - 1);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.checked_mul(3600)?),
        "M" => Duration::from_secs(n.checked_mul(60)?),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// Builds [`AdmissionService`]s.
#[derive(Debug, Clone)]
pub struct AdmissionLayer {
    /// Shared by every connection.
    admission: Arc<Admission>,
}

impl AdmissionLayer {
    /// A layer admitting at most `max_concurrent` calls at once, each for at most
    /// `max_deadline` (or the client's shorter `grpc-timeout`).
    pub fn new(
        authenticator: Authenticator,
        max_concurrent: usize,
        max_deadline: Duration,
    ) -> Self {
        Self {
            admission: Arc::new(Admission {
                authenticator,
                permits: Arc::new(Semaphore::new(max_concurrent)),
                max_deadline,
            }),
        }
    }
}

impl<S> Layer<S> for AdmissionLayer {
    type Service = AdmissionService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AdmissionService {
            inner,
            admission: self.admission.clone(),
        }
    }
}

/// See the module doc.
#[derive(Debug, Clone)]
pub struct AdmissionService<S> {
    /// The routed services.
    inner: S,
    /// Shared state.
    admission: Arc<Admission>,
}

fn reject<B: Default>(error: Error) -> http::Response<B> {
    Status::from(error).into_http()
}

/// The gRPC code of a response whose status is in its headers (trailers-only: every error
/// raised before the first message); `Ok` otherwise.
fn code_of<B>(response: &http::Response<B>) -> String {
    response
        .headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
        .map_or_else(
            || "Ok".to_owned(),
            |c| format!("{:?}", tonic::Code::from_i32(c)),
        )
}

/// `response`, or `error`'s answer instead if `response` is a bare trailers-only answer
/// (no `grpc-status-details-bin`, so no `ErrorInfo`: not one of this service's own errors)
/// with gRPC code `code` (one a crate below this layer raises in a form the contract does
/// not use).
fn replace_code<B: Default>(
    response: http::Response<B>,
    code: tonic::Code,
    error: Error,
) -> http::Response<B> {
    let matches = response
        .headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
        .is_some_and(|c| c == code as i32)
        && !response.headers().contains_key("grpc-status-details-bin");
    if matches { reject(error) } else { response }
}

/// tonic answers a request over `max_decoding_message_size` with a bare `OUT_OF_RANGE`
/// (no `ErrorInfo`). This service's own `OUT_OF_RANGE` (a watch position beyond the log)
/// carries `ErrorInfo`, so a bare one is that limit: answer it in the contract's form.
fn translate_decode_limit<B: Default>(response: http::Response<B>) -> http::Response<B> {
    replace_code(response, tonic::Code::OutOfRange, Error::RequestTooLarge)
}

/// Paths of `grpc.health.v1.Health`.
const HEALTH_PREFIX: &str = "/grpc.health.v1.Health/";

/// tonic-health decodes requests with prost's codec, which answers an undecodable body with
/// a bare `INTERNAL`; the health service raises `INTERNAL` for nothing else. Answer it as
/// every other service does (`INVALID_ARGUMENT` `MALFORMED_REQUEST`), so a client's garbage
/// is not counted and alerted on as a server fault.
fn translate_health_decode_error<B: Default>(response: http::Response<B>) -> http::Response<B> {
    replace_code(response, tonic::Code::Internal, Error::MalformedRequest)
}

/// The activity of the call's connection (plaintext or TLS).
fn connection_activity<B>(req: &http::Request<B>) -> Option<Arc<Activity>> {
    let extensions = req.extensions();
    extensions
        .get::<ConnectionInfo>()
        .or_else(|| {
            extensions
                .get::<TlsConnectInfo<ConnectionInfo>>()
                .map(TlsConnectInfo::get_ref)
        })
        .map(|info| info.activity.clone())
}

fn cert_identities<B>(req: &http::Request<B>) -> Vec<String> {
    req.extensions()
        .get::<TlsConnectInfo<ConnectionInfo>>()
        .and_then(TlsConnectInfo::peer_certs)
        .and_then(|certs| certs.first().map(|leaf| certificate::identities(leaf)))
        .unwrap_or_default()
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for AdmissionService<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<ReqBody>) -> Self::Future {
        let requirement = permissions::requirement(req.uri().path());
        // The clone is ready because `self.inner` was polled ready; swap so the ready one is
        // used (tower's documented pattern).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let deadline = req
            .headers()
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_grpc_timeout)
            .map_or(self.admission.max_deadline, |client| {
                client.min(self.admission.max_deadline)
            });
        if requirement == Requirement::Open {
            let health = req.uri().path().starts_with(HEALTH_PREFIX);
            // No credentials and never shed, but not unbounded either: a probe whose request
            // body never arrives is cut at the deadline like any other call. (A health Watch
            // or reflection stream lives on after its response starts; only the connection
            // limits bound those.)
            return Box::pin(async move {
                match tokio::time::timeout(deadline, inner.call(req)).await {
                    Ok(response) if health => response.map(translate_health_decode_error),
                    Ok(response) => response,
                    Err(_) => Ok(reject(Error::DeadlineExceeded)),
                }
            });
        }
        // Shed before doing any work when every slot is taken: under overload most excess
        // calls are answered here, at once, without reading their bodies. The slot itself is
        // taken by the handler (`grpc::admit`), so this only looks.
        if self.admission.permits.available_permits() == 0 {
            return Box::pin(std::future::ready(Ok(reject(Error::Overloaded))));
        }
        let authorization = req
            .headers()
            .get(http::header::AUTHORIZATION)
            .map(|v| v.as_bytes().to_vec());
        let caller = match self
            .admission
            .authenticator
            .authenticate(authorization.as_deref(), &cert_identities(&req))
        {
            Ok(caller) => caller,
            Err(AuthError::Unauthenticated) => {
                tracing::info!(method = %req.uri().path(), "rejected: unauthenticated");
                return Box::pin(std::future::ready(Ok(reject(Error::Unauthenticated))));
            }
        };
        let permitted = match requirement {
            Requirement::Permission(p) => caller.require(p),
            Requirement::AnyOf(any) => caller.require_any(any),
            // Open returned above; the handler or the router decides the others.
            Requirement::Open | Requirement::DecidedByHandler | Requirement::Unknown => Ok(()),
        };
        if let Err(e) = permitted {
            tracing::info!(method = %req.uri().path(), principal = %caller.principal, "rejected: lacks permission");
            return Box::pin(std::future::ready(Ok(reject(e))));
        }
        // A connection that has carried an authenticated call is never closed to make room
        // for a new one (see `connections::activity`).
        if let Some(activity) = connection_activity(&req) {
            activity.mark_authenticated();
        }
        let method = req.uri().path().to_owned();
        let principal = caller.principal.clone();
        req.extensions_mut().insert::<Caller>(caller);
        req.extensions_mut()
            .insert(CallSlots(self.admission.permits.clone()));
        // A caller-supplied correlation id, logged as is (bounded, printable) when present.
        let request_id = req
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .filter(|v| v.len() <= 128)
            .map(str::to_owned)
            .unwrap_or_default();
        let started = std::time::Instant::now();
        // Everything logged while serving the call carries the principal (never a token).
        let span = crate::telemetry::rpc_span(&method, &principal, req.headers());
        Box::pin(tracing::Instrument::instrument(
            async move {
                // Past the deadline the handler is dropped; a write it started runs on its own
                // task and still commits whole or not at all.
                let response = match tokio::time::timeout(deadline, inner.call(req)).await {
                    Ok(response) => response.map(translate_decode_limit),
                    Err(_) => Ok(reject(Error::DeadlineExceeded)),
                };
                // Errors travel in the headers of a trailers-only response; success (and errors
                // raised later in a stream) in the trailers, which this layer does not see.
                let code = response
                    .as_ref()
                    .map_or_else(|_| "Unknown".to_owned(), code_of);
                tracing::info!(
                    %method,
                    %principal,
                    code,
                    latency_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
                    request_id = %request_id,
                    trace_id = crate::telemetry::current_trace_id().unwrap_or_default(),
                    "rpc"
                );
                response
            },
            span,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::parse_grpc_timeout;
    use std::time::Duration;

    #[test]
    fn grpc_timeout_header() {
        assert_eq!(parse_grpc_timeout("200m"), Some(Duration::from_millis(200)));
        assert_eq!(parse_grpc_timeout("1S"), Some(Duration::from_secs(1)));
        assert_eq!(parse_grpc_timeout("2H"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_grpc_timeout("5u"), Some(Duration::from_micros(5)));
        assert_eq!(parse_grpc_timeout("S"), None);
        assert_eq!(parse_grpc_timeout("12x"), None);
        assert_eq!(parse_grpc_timeout("123456789S"), None);
    }
}
