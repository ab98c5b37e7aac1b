//! The standard gRPC server metrics (`grpc_server_started_total`, `grpc_server_handled_total`,
//! `grpc_server_handling_seconds`) exactly as grpc-ecosystem's go-grpc-prometheus records them,
//! so the dashboards and alerts operators already have for gRPC servers work against this one.
//!
//! A tower layer outside every other: it sees each call of every service on the port (health
//! and reflection included, as go-grpc-prometheus' interceptors do), also the calls the
//! admission layer refuses before any handler runs. A call is *started* when it arrives and
//! *handled* when its answer ends: at once for a trailers-only answer (every error raised
//! before the first message), at the trailers otherwise, so a server stream is handled when
//! it closes, and one the client abandons counts as `Canceled`. Paths that name no method of
//! this server are not counted (their label values would be the caller's to choose; the
//! router answers them `UNIMPLEMENTED`). Methods and their streaming types come from the
//! descriptor sets reflection serves, so a new RPC is labelled without an edit here.

use std::{
    collections::HashMap,
    pin::Pin,
    sync::OnceLock,
    task::{Context, Poll},
    time::Instant,
};

use futures::future::BoxFuture;
use hyper::body::{Body, Frame, SizeHint};
use prost::Message;
use tonic::Code;
use tower::{Layer, Service};

use crate::metrics::{GRPC_HANDLED, GRPC_HANDLING_SECONDS, GRPC_STARTED};

/// The labels of one method, as go-grpc-prometheus spells them.
#[derive(Debug)]
struct Method {
    /// `unary`, `client_stream`, `server_stream` or `bidi_stream`.
    grpc_type: &'static str,
    /// The full service name, such as `accessgrant.v1.AccessGrantService`.
    grpc_service: &'static str,
    /// The method name, such as `GetAccessGrant`.
    grpc_method: &'static str,
    /// The method's metric handles, registered on first use: the `counter!`/`histogram!`
    /// macros look their labels up in the registry on every call, which an empty RPC
    /// measurably paid for. (Registered lazily, not here, so that a series appears on first
    /// use and never before the server installed its recorder.)
    handles: Handles,
}

/// One method's metric handles.
#[derive(Debug, Default)]
struct Handles {
    /// `grpc_server_started_total`.
    started: OnceLock<metrics::Counter>,
    /// `grpc_server_handling_seconds`.
    handling: OnceLock<metrics::Histogram>,
    /// `grpc_server_handled_total`, by code (`Code as usize`: 0..=16).
    handled: [OnceLock<metrics::Counter>; 17],
}

/// Every method served on the port, by request path (`/pkg.Service/Method`).
fn methods() -> &'static HashMap<String, Method> {
    static METHODS: OnceLock<HashMap<String, Method>> = OnceLock::new();
    METHODS.get_or_init(|| {
        let sets: [&[u8]; 4] = [
            crate::proto::FILE_DESCRIPTOR_SET,
            tonic_health::pb::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
        ];
        let mut methods = HashMap::new();
        for set in sets {
            // Compiled into the binary and decoded by reflection at start as well: a set that
            // does not decode is a build error, and would only leave its methods uncounted.
            let Ok(set) = prost_types::FileDescriptorSet::decode(set) else {
                tracing::error!("a compiled-in descriptor set does not decode");
                continue;
            };
            for file in &set.file {
                for service in &file.service {
                    let full = match file.package() {
                        "" => service.name().to_owned(),
                        package => format!("{package}.{}", service.name()),
                    };
                    // Leaked once per process: label values must live as long as the recorder.
                    let grpc_service: &'static str = Box::leak(full.clone().into_boxed_str());
                    for method in &service.method {
                        let grpc_type = match (method.client_streaming(), method.server_streaming())
                        {
                            (false, false) => "unary",
                            (true, false) => "client_stream",
                            (false, true) => "server_stream",
                            (true, true) => "bidi_stream",
                        };
                        let name: &'static str =
                            Box::leak(method.name().to_owned().into_boxed_str());
                        methods.insert(
                            format!("/{full}/{name}"),
                            Method {
                                grpc_type,
                                grpc_service,
                                grpc_method: name,
                                handles: Handles::default(),
                            },
                        );
                    }
                }
            }
        }
        methods
    })
}

/// `code` as go-grpc-prometheus' `grpc_code` label spells it (grpc-go's `codes.Code`
/// names). No catch-all arm: a code added to tonic must get its spelling here.
pub fn code_label(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "Canceled",
        Code::Unknown => "Unknown",
        Code::InvalidArgument => "InvalidArgument",
        Code::DeadlineExceeded => "DeadlineExceeded",
        Code::NotFound => "NotFound",
        Code::AlreadyExists => "AlreadyExists",
        Code::PermissionDenied => "PermissionDenied",
        Code::ResourceExhausted => "ResourceExhausted",
        Code::FailedPrecondition => "FailedPrecondition",
        Code::Aborted => "Aborted",
        Code::OutOfRange => "OutOfRange",
        Code::Unimplemented => "Unimplemented",
        Code::Internal => "Internal",
        Code::Unavailable => "Unavailable",
        Code::DataLoss => "DataLoss",
        Code::Unauthenticated => "Unauthenticated",
    }
}

/// The `grpc-status` in `headers` (a trailers-only answer's headers, or trailers).
fn status_in(headers: &http::HeaderMap) -> Option<Code> {
    let value = headers
        .get("grpc-status")?
        .to_str()
        .ok()?
        .parse::<i32>()
        .ok()?;
    Some(Code::from_i32(value))
}

/// One call being measured, recorded as handled exactly once.
#[derive(Debug)]
struct Call {
    /// Its labels.
    method: &'static Method,
    /// When it arrived.
    started: Instant,
    /// Whether it was recorded as handled already.
    done: bool,
}

impl Call {
    fn start(method: &'static Method) -> Self {
        method
            .handles
            .started
            .get_or_init(|| {
                metrics::counter!(
                    GRPC_STARTED,
                    "grpc_type" => method.grpc_type,
                    "grpc_service" => method.grpc_service,
                    "grpc_method" => method.grpc_method
                )
            })
            .increment(1);
        Self {
            method,
            started: Instant::now(),
            done: false,
        }
    }

    fn handled(&mut self, code: Code) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let m = self.method;
        let handled = m.handles.handled.get(code as usize).map(|slot| {
            slot.get_or_init(|| {
                metrics::counter!(
                    GRPC_HANDLED,
                    "grpc_type" => m.grpc_type,
                    "grpc_service" => m.grpc_service,
                    "grpc_method" => m.grpc_method,
                    "grpc_code" => code_label(code)
                )
            })
        });
        if let Some(counter) = handled {
            counter.increment(1);
        }
        m.handles
            .handling
            .get_or_init(|| {
                metrics::histogram!(
                    GRPC_HANDLING_SECONDS,
                    "grpc_type" => m.grpc_type,
                    "grpc_service" => m.grpc_service,
                    "grpc_method" => m.grpc_method
                )
            })
            .record(self.started.elapsed().as_secs_f64());
    }
}

impl Drop for Call {
    /// The answer was dropped before it ended: the client cancelled or went away.
    fn drop(&mut self) {
        self.handled(Code::Cancelled);
    }
}

/// A response body that records its call as handled when it ends.
#[derive(Debug)]
pub struct Measured<B> {
    /// The service's body.
    inner: B,
    /// `None` when the call is not measured, or was recorded from the response headers.
    call: Option<Call>,
}

impl<B: Body + Unpin> Body for Measured<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Some(call) = &mut this.call {
            match &polled {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Some(trailers) = frame.trailers_ref() {
                        call.handled(status_in(trailers).unwrap_or(Code::Unknown));
                    }
                }
                // A gRPC answer that ends without a status is not one a client can read.
                Poll::Ready(Some(Err(_)) | None) => call.handled(Code::Unknown),
                Poll::Pending => {}
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Wraps every service on the port in [`RpcMetrics`].
#[derive(Debug, Clone, Copy, Default)]
pub struct RpcMetricsLayer;

impl<S> Layer<S> for RpcMetricsLayer {
    type Service = RpcMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RpcMetrics { inner }
    }
}

/// See the module doc.
#[derive(Debug, Clone)]
pub struct RpcMetrics<S> {
    /// Everything inside: admission, then the routed services.
    inner: S,
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for RpcMetrics<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Body + Unpin + Send + 'static,
{
    type Response = http::Response<Measured<ResBody>>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<ReqBody>) -> Self::Future {
        let mut call = methods().get(req.uri().path()).map(Call::start);
        // The clone is ready because `self.inner` was polled ready; swap so the ready one is
        // used (tower's documented pattern).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let result = inner.call(req).await;
            if let Some(measured) = &mut call {
                match &result {
                    // Trailers-only: the status is in the headers and the answer is complete.
                    Ok(response) => {
                        if let Some(code) = status_in(response.headers()) {
                            measured.handled(code);
                        }
                    }
                    Err(_) => measured.handled(Code::Unknown),
                }
            }
            result.map(|response| response.map(|inner| Measured { inner, call }))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{code_label, methods};
    use tonic::Code;

    /// Every code is spelled as grpc-go's `codes.Code.String()`, which dashboards match on.
    #[test]
    fn codes_are_spelled_as_grpc_go_does() {
        let go = [
            "OK",
            "Canceled",
            "Unknown",
            "InvalidArgument",
            "DeadlineExceeded",
            "NotFound",
            "AlreadyExists",
            "PermissionDenied",
            "ResourceExhausted",
            "FailedPrecondition",
            "Aborted",
            "OutOfRange",
            "Unimplemented",
            "Internal",
            "Unavailable",
            "DataLoss",
            "Unauthenticated",
        ];
        for (number, name) in (0..).zip(go) {
            assert_eq!(code_label(Code::from_i32(number)), name);
        }
    }

    /// The method table knows the contract, health and reflection, with their stream types.
    #[test]
    fn methods_come_from_the_descriptor_sets() {
        let m = &methods()["/accessgrant.v1.AuditService/WatchAuditEvents"];
        assert_eq!(
            (m.grpc_type, m.grpc_service, m.grpc_method),
            (
                "server_stream",
                "accessgrant.v1.AuditService",
                "WatchAuditEvents"
            )
        );
        assert_eq!(
            methods()["/accessgrant.v1.AccessGrantService/GetAccessGrant"].grpc_type,
            "unary"
        );
        assert_eq!(
            methods()["/grpc.health.v1.Health/Watch"].grpc_type,
            "server_stream"
        );
        assert_eq!(
            methods()["/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"].grpc_type,
            "bidi_stream"
        );
    }
}
