//! OpenTelemetry traces: the `accessgrant` binary, pointed at an in-test OTLP/gRPC receiver,
//! exports one `rpc.call` span per RPC that continues the caller's W3C trace, with the
//! `storage.transaction` span as its child, and flushes buffered spans on SIGTERM.
//!
//! The tracing subscriber is process-global, so the server runs as a separate process.

mod common;

use std::{
    net::SocketAddr,
    process::Stdio,
    sync::{Arc, Mutex},
    time::Duration,
};

use accessgrant::proto::v1::{self as pb, account_service_client::AccountServiceClient};
use common::reserved_port;
use opentelemetry_proto::tonic::{
    collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
        trace_service_server::{TraceService, TraceServiceServer},
    },
    common::v1::{KeyValue, any_value},
    trace::v1::Span,
};
use tokio::process::Child;
use tonic::{Request, Response, Status, transport::Channel};

/// The caller's trace id (W3C `traceparent`).
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
/// The caller's span, parent of the server's `rpc.call` span.
const PARENT_SPAN_ID: &str = "00f067aa0ba902b7";

/// An OTLP trace receiver that keeps every export request.
#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<ExportTraceServiceRequest>>>,
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        self.got.lock().unwrap().push(request.into_inner());
        Ok(Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

impl Receiver {
    /// Every received span with its resource's `service.name`.
    fn spans(&self) -> Vec<(Option<String>, Span)> {
        let got = self.got.lock().unwrap();
        let mut out = Vec::new();
        for request in got.iter() {
            for rs in &request.resource_spans {
                let service = rs
                    .resource
                    .as_ref()
                    .and_then(|r| string_attr(&r.attributes, "service.name"));
                for ss in &rs.scope_spans {
                    for span in &ss.spans {
                        out.push((service.clone(), span.clone()));
                    }
                }
            }
        }
        out
    }
}

/// A string attribute's value.
fn string_attr(attributes: &[KeyValue], key: &str) -> Option<String> {
    attributes.iter().find(|kv| kv.key == key).and_then(|kv| {
        match kv.value.as_ref()?.value.as_ref()? {
            any_value::Value::StringValue(s) => Some(s.clone()),
            _ => None,
        }
    })
}

/// Starts the receiver on 127.0.0.1:0.
async fn start_receiver() -> (Receiver, SocketAddr) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let receiver = Receiver::default();
    let service = TraceServiceServer::new(receiver.clone());
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await
            .unwrap();
    });
    (receiver, addr)
}

/// Runs `accessgrant serve` exporting to `receiver`, with `bsp_delay_ms` between batch exports.
async fn spawn_server(
    dir: &tempfile::TempDir,
    receiver: SocketAddr,
    bsp_delay_ms: u32,
) -> (Child, u16) {
    let port = reserved_port().port();
    let url = common::fresh_database_url(dir.path()).await;
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_accessgrant"))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--database-url",
            &url,
        ])
        .args(common::key_config_args(&url))
        .current_dir(dir.path())
        .env_remove("ACCESSGRANT_CONFIG")
        .env_remove("ACCESSGRANT_LISTEN")
        .env_remove("ACCESSGRANT_DATABASE_URL")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .env_remove("OTEL_SERVICE_NAME")
        .env_remove("OTEL_RESOURCE_ATTRIBUTES")
        .env_remove("OTEL_TRACES_SAMPLER")
        // Two servers run at once: keep them off the default metrics port.
        .env(
            "ACCESSGRANT_METRICS_LISTEN",
            format!("127.0.0.1:{}", reserved_port().port()),
        )
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{receiver}"))
        .env("OTEL_BSP_SCHEDULE_DELAY", bsp_delay_ms.to_string())
        // Quiet logs must not cost the spans: the export has its own filter.
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    (child, port)
}

/// A channel to the server, once it accepts connections (10 s at most).
async fn connect(port: u16) -> Channel {
    let endpoint = Channel::from_shared(format!("http://127.0.0.1:{port}")).unwrap();
    for _ in 0..200 {
        if let Ok(channel) = endpoint.connect().await {
            return channel;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the server never accepted a connection");
}

/// UpsertAccount `account_id` as a call inside the caller's trace.
async fn traced_upsert(channel: Channel, account_id: &str) {
    let mut request = Request::new(pb::UpsertAccountRequest {
        account_id: account_id.into(),
        plan: pb::AccountPlan::Paid.into(),
        request_id: String::new(),
    });
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{TRACE_ID}-{PARENT_SPAN_ID}-01")
            .parse()
            .unwrap(),
    );
    request
        .metadata_mut()
        .insert("tracestate", "caller=test".parse().unwrap());
    AccountServiceClient::new(channel)
        .upsert_account(request)
        .await
        .unwrap();
}

/// Sends SIGTERM and waits for a clean exit.
async fn terminate(mut child: Child) {
    let pid = child.id().unwrap();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .expect("server did not exit after SIGTERM")
        .unwrap();
    assert!(status.success(), "exit status {status:?}");
}

/// The `rpc.call` span for `account_id` and its `storage.transaction` child, once both have
/// arrived (10 s at most).
async fn wait_for_spans(receiver: &Receiver, account_id: &str) -> (Option<String>, Span, Span) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let spans = receiver.spans();
        let call = spans.iter().find(|(_, s)| {
            s.name == "rpc.call"
                && string_attr(&s.attributes, "account_id").as_deref() == Some(account_id)
        });
        if let Some((service, call)) = call {
            let txn = spans
                .iter()
                .find(|(_, s)| s.name == "storage.transaction" && s.parent_span_id == call.span_id);
            if let Some((_, txn)) = txn {
                return (service.clone(), call.clone(), txn.clone());
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no rpc.call span for {account_id} with a storage.transaction child; got {:?}",
            spans
                .iter()
                .map(|(_, s)| (
                    &s.name,
                    hex::encode(&s.span_id),
                    hex::encode(&s.parent_span_id)
                ))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Checks the RPC span against the caller's trace and the request.
fn check_rpc_span(service: Option<String>, call: &Span, txn: &Span) {
    assert_eq!(service.as_deref(), Some("accessgrant"));
    assert_eq!(hex::encode(&call.trace_id), TRACE_ID);
    assert_eq!(hex::encode(&call.parent_span_id), PARENT_SPAN_ID);
    assert_eq!(call.trace_state, "caller=test");
    assert_eq!(
        string_attr(&call.attributes, "principal").as_deref(),
        Some("development")
    );
    assert_eq!(
        string_attr(&call.attributes, "rpc.method").as_deref(),
        Some("/accessgrant.v1.AccountService/UpsertAccount")
    );
    assert_eq!(txn.trace_id, call.trace_id);
}

/// A call carrying `traceparent` is exported as an `rpc.call` span in the caller's trace,
/// with its storage transaction as a child span.
#[tokio::test]
async fn rpc_span_continues_the_callers_trace() {
    let (receiver, receiver_addr) = start_receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let (child, port) = spawn_server(&dir, receiver_addr, 100).await;
    let channel = connect(port).await;
    traced_upsert(channel, "acct-traced").await;

    let (service, call, txn) = wait_for_spans(&receiver, "acct-traced").await;
    check_rpc_span(service, &call, &txn);
    terminate(child).await;
}

/// Spans still buffered when SIGTERM arrives are exported before the process exits.
#[tokio::test]
async fn spans_are_flushed_on_sigterm() {
    let (receiver, receiver_addr) = start_receiver().await;
    let dir = tempfile::tempdir().unwrap();
    // A batch delay far longer than the test: only the shutdown flush can deliver them.
    let (child, port) = spawn_server(&dir, receiver_addr, 600_000).await;
    let channel = connect(port).await;
    traced_upsert(channel, "acct-flushed").await;
    terminate(child).await;

    let (service, call, txn) = wait_for_spans(&receiver, "acct-flushed").await;
    check_rpc_span(service, &call, &txn);
}
