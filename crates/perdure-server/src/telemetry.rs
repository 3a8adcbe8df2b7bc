//! OTLP export of Perdure's spans: installs a [`perdure::telemetry`]
//! exporter that batches finished spans (OpenTelemetry's batch processor,
//! so `OTEL_BSP_*` tune it) and sends them over OTLP/gRPC to the endpoint
//! given, or to `OTEL_EXPORTER_OTLP_ENDPOINT`
//! (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) when none is. The service name is
//! `perdure` unless `OTEL_SERVICE_NAME` says otherwise.

use opentelemetry::trace::{SpanContext, SpanId, Status, TraceFlags, TraceId, TraceState};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::trace::{BatchSpanProcessor, SpanData, SpanProcessor};
use opentelemetry_sdk::Resource;
use perdure::telemetry::{AttrValue, SpanKind, SpanRecord};
use std::str::FromStr;
use std::sync::Arc;

/// Why spans cannot be exported.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("cannot set up the OTLP exporter for {endpoint}: {reason}")]
    Exporter { endpoint: String, reason: String },
}

/// The installed exporter; [`OtlpSpans::shutdown`] sends what is queued.
pub struct OtlpSpans {
    processor: BatchSpanProcessor,
    scope: InstrumentationScope,
}

/// Where spans go: the `--otlp-endpoint` given, else the standard
/// environment variables; `None` when neither is set.
pub fn configured_endpoint(flag: Option<&str>) -> Option<String> {
    let env = |k| {
        std::env::var(k)
            .ok()
            .filter(|v: &String| !v.trim().is_empty())
    };
    flag.map(str::to_string)
        .or_else(|| env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
        .or_else(|| env("OTEL_EXPORTER_OTLP_ENDPOINT"))
}

/// Installs OTLP export of this process's spans to `endpoint` (a gRPC
/// URL such as `http://127.0.0.1:4317`). Call inside a Tokio runtime.
pub fn install_otlp(endpoint: &str) -> Result<Arc<OtlpSpans>, TelemetryError> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()
        .map_err(|e| TelemetryError::Exporter {
            endpoint: endpoint.to_string(),
            reason: e.to_string(),
        })?;
    let mut processor = BatchSpanProcessor::builder(exporter).build();
    let service = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| "perdure".into());
    processor.set_resource(&Resource::builder().with_service_name(service).build());
    let spans = Arc::new(OtlpSpans {
        processor,
        scope: InstrumentationScope::builder("perdure")
            .with_version(env!("CARGO_PKG_VERSION"))
            .build(),
    });
    perdure::telemetry::set_exporter(spans.clone());
    Ok(spans)
}

impl OtlpSpans {
    /// Stops taking spans and sends those queued.
    pub fn shutdown(&self) {
        perdure::telemetry::clear_exporter();
        if let Err(e) = self.processor.force_flush() {
            tracing::warn!(error = %e, "flushing spans to the OTLP endpoint failed");
        }
    }
}

impl perdure::telemetry::SpanExporter for OtlpSpans {
    fn export(&self, span: SpanRecord) {
        self.processor.on_end(span_data(span, &self.scope));
    }
}

fn span_data(s: SpanRecord, scope: &InstrumentationScope) -> SpanData {
    let state = s
        .tracestate
        .as_deref()
        .and_then(|t| TraceState::from_str(t).ok())
        .unwrap_or_default();
    SpanData {
        span_context: SpanContext::new(
            TraceId::from(s.trace_id),
            SpanId::from(s.span_id),
            TraceFlags::SAMPLED,
            false,
            state,
        ),
        parent_span_id: s.parent_span_id.map_or(SpanId::INVALID, SpanId::from),
        parent_span_is_remote: false,
        span_kind: match s.kind {
            SpanKind::Internal => opentelemetry::trace::SpanKind::Internal,
            SpanKind::Server => opentelemetry::trace::SpanKind::Server,
            SpanKind::Client => opentelemetry::trace::SpanKind::Client,
            SpanKind::Producer => opentelemetry::trace::SpanKind::Producer,
        },
        name: s.name.into(),
        start_time: s.start,
        end_time: s.end.max(s.start),
        attributes: s
            .attributes
            .into_iter()
            .map(|(k, v)| match v {
                AttrValue::Str(v) => KeyValue::new(k, v),
                AttrValue::Int(v) => KeyValue::new(k, v),
            })
            .collect(),
        dropped_attributes_count: 0,
        events: Default::default(),
        links: Default::default(),
        status: match s.error {
            Some(e) => Status::error(e),
            None => Status::Unset,
        },
        instrumentation_scope: scope.clone(),
    }
}
