//! Logging and tracing setup.
//!
//! Logs are text or JSON lines on stderr, filtered by `RUST_LOG` (default `info`).
//!
//! Traces are exported over OTLP/gRPC only when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set; the standard `OTEL_*` variables
//! (`OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_EXPORTER_OTLP_TIMEOUT`, `OTEL_BSP_*`,
//! `OTEL_TRACES_SAMPLER`, `OTEL_RESOURCE_ATTRIBUTES`, …) are honoured, and `service.name` is
//! `accessgrant` unless `OTEL_SERVICE_NAME` (or `service.name` in `OTEL_RESOURCE_ATTRIBUTES`)
//! says otherwise. Without an endpoint there is no OpenTelemetry layer and no background
//! export thread. Each authenticated RPC is one `rpc.call` span that continues the caller's
//! W3C trace (`traceparent`/`tracestate` metadata); the storage transaction that commits it is
//! a `storage.transaction` child span.

use std::sync::{
    Mutex,
    atomic::{AtomicBool, Ordering},
};

use opentelemetry::{propagation::TextMapPropagator, trace::TracerProvider as _};
use opentelemetry_sdk::{Resource, propagation::TraceContextPropagator, trace::SdkTracerProvider};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::{
    EnvFilter, Layer,
    filter::{LevelFilter, Targets},
    fmt,
    layer::SubscriberExt,
    util::SubscriberInitExt,
};

/// Log line format. Named by `--log-format` and `log_format` in the file, hence the
/// clap and serde derives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log pipelines.
    Json,
}

/// Default filter: our INFO, and quiet PostgreSQL notices such as "relation already exists,
/// skipping" that migrations print on every start.
const DEFAULT_FILTER: &str = "info,sqlx::postgres::notice=warn,sea_orm_migration=warn";

/// `service.name` when neither `OTEL_SERVICE_NAME` nor `OTEL_RESOURCE_ATTRIBUTES` names one.
const SERVICE_NAME: &str = "accessgrant";

/// Whether the OpenTelemetry layer is installed (so `rpc_span` need not parse headers
/// otherwise).
static OTEL_ENABLED: AtomicBool = AtomicBool::new(false);

/// The tracer provider behind the installed layer, kept so [`shutdown`] can flush it.
static PROVIDER: Mutex<Option<SdkTracerProvider>> = Mutex::new(None);

/// Installs the global subscriber. Safe to call more than once (later calls do nothing).
///
/// When `OTEL_EXPORTER_OTLP_ENDPOINT` is set, also installs an OpenTelemetry layer exporting
/// spans over OTLP/gRPC. The gRPC client needs a Tokio runtime: call this inside one (in
/// `block_on`, or with the runtime's `enter()` guard held), and keep that runtime running
/// until [`shutdown`]. Outside a runtime, or if the exporter cannot be built, a warning is
/// logged and only logging is set up.
pub fn init(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let (provider, problem) = match otlp_provider() {
        Ok(p) => (p, None),
        Err(e) => (None, Some(e)),
    };
    let otel = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer(SERVICE_NAME))
            .with_filter(export_filter())
    });
    // Separate filters: `RUST_LOG=warn` quietens the logs without dropping the RPC spans.
    let subscriber = tracing_subscriber::registry().with(otel);
    let installed = match format {
        LogFormat::Text => subscriber
            .with(
                fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_filter(filter),
            )
            .try_init(),
        LogFormat::Json => subscriber
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_writer(std::io::stderr)
                    .with_filter(filter),
            )
            .try_init(),
    };
    if installed.is_err() {
        // A subscriber was already installed: ours is unused, so stop its export thread.
        if let Some(p) = provider {
            let _ = p.shutdown();
        }
        return;
    }
    if let Some(problem) = problem {
        tracing::warn!(error = %problem, "OpenTelemetry trace export disabled");
    }
    if let Some(p) = provider {
        OTEL_ENABLED.store(true, Ordering::Release);
        if let Ok(mut slot) = PROVIDER.lock() {
            *slot = Some(p);
        }
        tracing::info!("exporting OpenTelemetry traces over OTLP/gRPC");
    }
}

/// Flushes buffered spans to the collector and stops the exporter (a no-op when trace export
/// is off or already shut down). Blocks until the export finishes or times out; call it at
/// process exit while the Tokio runtime that [`init`] ran in is still alive, but not from a
/// task on a current-thread runtime (the exporter needs the runtime's threads to make
/// progress).
pub fn shutdown() {
    let provider = PROVIDER.lock().ok().and_then(|mut slot| slot.take());
    if let Some(p) = provider {
        OTEL_ENABLED.store(false, Ordering::Release);
        if let Err(e) = p.shutdown() {
            tracing::warn!(error = %e, "flushing OpenTelemetry spans failed");
        }
    }
}

/// Builds the tracer provider when an OTLP endpoint is configured: `Ok(None)` when it is not,
/// `Err` with the reason when it is but export cannot start.
fn otlp_provider() -> Result<Option<SdkTracerProvider>, String> {
    let configured = [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ]
    .iter()
    .any(|var| std::env::var_os(var).is_some_and(|v| !v.is_empty()));
    if !configured {
        return Ok(None);
    }
    // The tonic channel spawns its connection tasks on the current runtime; building it
    // without one would panic.
    if tokio::runtime::Handle::try_current().is_err() {
        return Err("no Tokio runtime to run the OTLP/gRPC exporter on".to_owned());
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .build()
        .map_err(|e| format!("cannot build the OTLP/gRPC span exporter: {e}"))?;
    Ok(Some(
        SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource())
            .build(),
    ))
}

/// The resource from the standard environment variables, with `service.name` defaulting to
/// `accessgrant` instead of the SDK's `unknown_service`.
fn resource() -> Resource {
    let detected = Resource::builder().build();
    let named = detected
        .get(&opentelemetry::Key::from_static_str("service.name"))
        .is_some_and(|v| !v.as_str().starts_with("unknown_service"));
    if named {
        detected
    } else {
        Resource::builder().with_service_name(SERVICE_NAME).build()
    }
}

/// What the OpenTelemetry layer exports, whatever `RUST_LOG` says: INFO and above (the
/// `rpc.call` and `storage.transaction` spans, and the events logged inside them), except from
/// the crates that carry the export itself (exporting those would feed every export into the
/// next one).
fn export_filter() -> Targets {
    Targets::new()
        .with_default(LevelFilter::INFO)
        .with_target("h2", LevelFilter::OFF)
        .with_target("hyper", LevelFilter::OFF)
        .with_target("hyper_util", LevelFilter::OFF)
        .with_target("tonic", LevelFilter::OFF)
        .with_target("tower", LevelFilter::OFF)
        .with_target("opentelemetry", LevelFilter::OFF)
        .with_target("opentelemetry_sdk", LevelFilter::OFF)
        .with_target("opentelemetry_otlp", LevelFilter::OFF)
}

/// Reads W3C trace context from request headers (gRPC metadata).
struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl opentelemetry::propagation::Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// The span of one RPC, child of the caller's trace when the request carries W3C
/// `traceparent` metadata. Everything logged while serving the call (and the storage
/// transaction that commits it) is inside this span.
pub fn rpc_span(method: &str, principal: &str, headers: &http::HeaderMap) -> tracing::Span {
    let span = tracing::info_span!(
        "rpc.call",
        rpc.method = %method,
        principal = %principal,
        account_id = tracing::field::Empty
    );
    if OTEL_ENABLED.load(Ordering::Acquire) && headers.contains_key("traceparent") {
        let parent = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
        // Fails only when the span is disabled by the filter; then there is nothing to link.
        let _ = span.set_parent(parent);
    }
    span
}

/// The trace id of the current span when traces are exported (for log lines that must be
/// joinable with traces); `None` otherwise.
pub fn current_trace_id() -> Option<String> {
    use opentelemetry::trace::TraceContextExt as _;
    if !OTEL_ENABLED.load(Ordering::Acquire) {
        return None;
    }
    let context = tracing::Span::current().context();
    let span_context = context.span().span_context().clone();
    span_context
        .is_valid()
        .then(|| span_context.trace_id().to_string())
}

/// Records the account a call is about on the current RPC span (set by handlers once the
/// request is decoded).
pub fn record_account(account_id: &str) {
    tracing::Span::current().record("account_id", account_id);
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::TraceContextExt as _;

    use super::*;

    #[test]
    fn extractor_reads_trace_context_headers() {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            "traceparent",
            http::HeaderValue::from_static(
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
        );
        headers.insert("tracestate", http::HeaderValue::from_static("vendor=1"));
        let cx = TraceContextPropagator::new().extract(&HeaderExtractor(&headers));
        let span = cx.span();
        let sc = span.span_context();
        assert!(sc.is_valid());
        assert!(sc.is_remote());
        assert_eq!(
            sc.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(sc.span_id().to_string(), "00f067aa0ba902b7");
        assert_eq!(sc.trace_state().get("vendor"), Some("1"));
    }

    #[test]
    fn otlp_is_off_without_an_endpoint() {
        // The test harness does not set the OTLP variables.
        if std::env::var_os("OTEL_EXPORTER_OTLP_ENDPOINT").is_none()
            && std::env::var_os("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_none()
        {
            assert!(matches!(otlp_provider(), Ok(None)));
        }
    }
}
