//! OpenTelemetry traces, exported over OTLP/HTTP (protobuf) when `[traces]` is configured.
//!
//! One server span per request, its parent the client's `traceparent`; child spans for issuer
//! key fetches, SAML verification and the upstream call, whose `traceparent` names the call's
//! span so the upstream continues the trace. Spans carry what the decision record holds minus
//! everything personal or secret: route, decision, reason, method, status, the gateway's request
//! id and the route's prefix, never a path, query, header, token, cookie, assertion or name.
//!
//! Export is off the request path: a finished span goes into a bounded queue (`try_send`, never
//! waiting) and one task sends batches with the gateway's own hyper client (no reqwest, no
//! tonic). A slow or absent collector fills the queue; spans past it are dropped and counted.
//! The OpenTelemetry `Context` of a request carries the tracer, so code deep in verification
//! opens a child span with [`child`] without a tracer passed down to it.

use crate::config::{RouteConfig, TracesConfig};
use crate::evidence::record::DecisionRecord;
use crate::outbound::HttpClient;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use http_body_util::{BodyExt, Limited};
use opentelemetry::trace::{
    Span as _, SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId, TraceState,
    Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    Sampler, SdkTracer, SdkTracerProvider, Span, SpanData, SpanExporter, SpanProcessor,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

/// Largest collector answer read (an OTLP partial-success message is small).
const MAX_RESPONSE: usize = 64 * 1024;

/// Why tracing could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up the OTLP exporter: {0}")]
pub struct TraceSetupError(String);

/// What became of finished spans, for `/metrics`.
#[derive(Debug, Default)]
pub struct SpanCounters {
    /// Accepted by the collector.
    pub exported: AtomicU64,
    /// Dropped because the queue was full (the collector slow or down) or closed.
    pub dropped: AtomicU64,
    /// Sent in an export that failed (after the exporter's retries).
    pub failed: AtomicU64,
}

/// A running span export.
pub struct Traces {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
    counters: Arc<SpanCounters>,
    stop: watch::Sender<bool>,
    done: tokio::sync::Mutex<Option<oneshot::Receiver<()>>>,
}

/// The tracer, carried in a request's `Context` for [`child`].
#[derive(Clone)]
struct Carried(SdkTracer);

impl Traces {
    /// Starts the export task (call inside the runtime).
    pub fn start(cfg: &TracesConfig, client: HttpClient) -> Result<Traces, TraceSetupError> {
        let headers = cfg.headers.iter().map(|(k, v)| (k.clone(), v.expose().to_owned())).collect();
        let mut exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(Collector { client, timeout: cfg.export_timeout })
            .with_endpoint(cfg.endpoint.to_string())
            .with_timeout(cfg.export_timeout)
            .with_headers(headers)
            .build()
            .map_err(|e| TraceSetupError(e.to_string()))?;
        let resource =
            opentelemetry_sdk::Resource::builder_empty().with_service_name(cfg.service_name.clone()).build();
        exporter.set_resource(&resource);
        let counters = Arc::new(SpanCounters::default());
        let (tx, rx) = mpsc::channel(cfg.max_queue);
        let (stop, stopped) = watch::channel(false);
        let (finished, done) = oneshot::channel();
        let batching = Batching { max: cfg.max_batch, interval: cfg.batch_interval };
        tokio::spawn(export_loop(rx, exporter, batching, counters.clone(), stopped, finished));
        let provider = SdkTracerProvider::builder()
            .with_resource(resource)
            // The gateway's ratio alone decides, on the trace id: a caller's sampled flag is
            // untrusted input and must not set how much the gateway exports.
            .with_sampler(Sampler::TraceIdRatioBased(cfg.sample_ratio))
            .with_span_processor(Queue { tx, counters: counters.clone() })
            .build();
        let tracer = provider.tracer("mfagate");
        Ok(Traces { provider, tracer, counters, stop, done: tokio::sync::Mutex::new(Some(done)) })
    }

    /// The server span of a request, child of the client's `traceparent` if it sent a valid one.
    pub fn request_span(&self, headers: &HeaderMap, gateway_request_id: &str) -> RequestSpan {
        let parent = headers
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .and_then(crate::gate::forward::parse_traceparent)
            .and_then(|t| {
                let flags = u8::from_str_radix(t.flags, 16).ok()?;
                Some(SpanContext::new(
                    TraceId::from_hex(t.trace_id).ok()?,
                    SpanId::from_hex(t.parent_id).ok()?,
                    TraceFlags::new(flags) & TraceFlags::SAMPLED,
                    true,
                    TraceState::default(),
                ))
            });
        let parent = match parent {
            Some(sc) => Context::new().with_remote_span_context(sc),
            None => Context::new(),
        };
        let span = self.tracer.build_with_context(
            self.tracer
                .span_builder("request")
                .with_kind(SpanKind::Server)
                .with_attributes([KeyValue::new("mfagate.request_id", gateway_request_id.to_owned())]),
            &parent,
        );
        RequestSpan { cx: parent.with_span(span).with_value(Carried(self.tracer.clone())) }
    }

    /// Sends what is queued and stops, waiting at most `within`.
    pub async fn shutdown(&self, within: Duration) {
        let _ = self.stop.send(true);
        let Some(done) = self.done.lock().await.take() else {
            return;
        };
        if tokio::time::timeout(within, done).await.is_err() {
            tracing::warn!(?within, "Trace export did not finish in time; queued spans are lost");
        }
        let _ = self.provider.shutdown();
    }

    /// Counters, for `/metrics`.
    pub fn counters(&self) -> &SpanCounters {
        &self.counters
    }

    /// `mfagate_trace_spans_total` for `/metrics`.
    pub fn render(&self, out: &mut String) {
        let c = &self.counters;
        crate::evidence::metrics::counter(
            out,
            "mfagate_trace_spans_total",
            "Finished spans: exported, dropped (queue full: the collector slow or down), failed (export failed).",
            &[
                ("{result=\"exported\"}".into(), c.exported.load(Relaxed)),
                ("{result=\"dropped\"}".into(), c.dropped.load(Relaxed)),
                ("{result=\"failed\"}".into(), c.failed.load(Relaxed)),
            ],
        );
    }
}

/// A request's server span; it ends with [`RequestSpan::end`] (or when dropped, unlabelled).
pub struct RequestSpan {
    cx: Context,
}

impl RequestSpan {
    /// The request's context: the span and the tracer, for the request's future.
    pub fn context(&self) -> Context {
        self.cx.clone()
    }

    /// A client span for the upstream call, and the `traceparent` the upstream gets.
    pub fn upstream_call(&self, route: &str) -> (ChildSpan, Option<HeaderValue>) {
        let span = child_of(
            &self.cx,
            "upstream",
            SpanKind::Client,
            vec![KeyValue::new("mfagate.route", route.to_owned())],
        );
        let header = span.as_ref().and_then(|s| {
            let sc = s.span_context();
            HeaderValue::from_str(&format!(
                "00-{}-{}-{:02x}",
                sc.trace_id(),
                sc.span_id(),
                sc.trace_flags().to_u8()
            ))
            .ok()
        });
        (ChildSpan(span), header)
    }

    /// Labels the span with the record's impersonal part and ends it: method, status, route
    /// name and prefix, channel, decision, reason, principal kind, MFA, error. Never the path,
    /// the client address, the issuer or who the principal is.
    pub fn end(self, rec: &DecisionRecord, route: Option<&RouteConfig>) {
        let span = self.cx.span();
        let method = known_method(&rec.method);
        let mut attrs = vec![
            KeyValue::new("http.request.method", method),
            KeyValue::new("http.response.status_code", i64::from(rec.status)),
            KeyValue::new("mfagate.channel", rec.channel),
            KeyValue::new("mfagate.decision", rec.decision),
            KeyValue::new("mfagate.reason", rec.reason),
            KeyValue::new("mfagate.enforced", rec.enforced),
            KeyValue::new("mfagate.principal", rec.principal),
        ];
        match route {
            Some(route) => {
                attrs.push(KeyValue::new("mfagate.route", route.name.clone()));
                attrs.push(KeyValue::new("http.route", route.path_prefix.clone()));
                span.update_name(format!("{method} {}", route.path_prefix));
            }
            None => span.update_name(method),
        }
        if let Some(mfa) = rec.mfa {
            attrs.push(KeyValue::new("mfagate.mfa", mfa));
        }
        if let Some(error) = rec.error {
            attrs.push(KeyValue::new("mfagate.error", error));
        }
        span.set_attributes(attrs);
        // Server spans are errors for 5xx only (OpenTelemetry's HTTP conventions): a denial is
        // the gateway doing its job.
        if rec.status >= 500 {
            span.set_status(Status::error(rec.error.unwrap_or(rec.reason)));
        }
        span.end();
    }
}

/// A child span, ended when dropped. Empty when the request is not traced.
#[derive(Default)]
pub struct ChildSpan(Option<Span>);

impl ChildSpan {
    /// Adds an attribute.
    pub fn set(&mut self, key: &'static str, value: impl Into<opentelemetry::Value>) {
        if let Some(s) = &mut self.0 {
            s.set_attribute(KeyValue::new(key, value));
        }
    }

    /// What the upstream call came to: its status, or a timeout or failure.
    pub fn upstream_result<T, E>(
        &mut self,
        sent: &Result<Result<http::Response<T>, E>, tokio::time::error::Elapsed>,
    ) {
        match sent {
            Ok(Ok(rsp)) => self.set("http.response.status_code", i64::from(rsp.status().as_u16())),
            Ok(Err(_)) => self.fail("upstream_failed"),
            Err(_) => self.fail("upstream_timeout"),
        }
    }

    /// Marks the span failed with a stable code (never a message that could carry input).
    pub fn fail(&mut self, code: &'static str) {
        if let Some(s) = &mut self.0 {
            s.set_attribute(KeyValue::new("mfagate.error", code));
            s.set_status(Status::error(code));
        }
    }
}

fn child_of(cx: &Context, name: &'static str, kind: SpanKind, attrs: Vec<KeyValue>) -> Option<Span> {
    let tracer = &cx.get::<Carried>()?.0;
    Some(tracer.build_with_context(tracer.span_builder(name).with_kind(kind).with_attributes(attrs), cx))
}

/// A child of the current request's span (issuer key fetch, SAML verification), or an empty one
/// outside a traced request (a scheduled key refresh).
pub fn child(name: &'static str, attrs: &[(&'static str, &str)]) -> ChildSpan {
    ChildSpan(Context::map_current(|cx| {
        let attrs = attrs.iter().map(|(k, v)| KeyValue::new(*k, (*v).to_owned())).collect();
        child_of(cx, name, SpanKind::Internal, attrs)
    }))
}

/// The span processor: finished, sampled spans into the bounded queue, never waiting.
#[derive(Debug)]
struct Queue {
    tx: mpsc::Sender<SpanData>,
    counters: Arc<SpanCounters>,
}

impl SpanProcessor for Queue {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        if span.span_context.is_sampled() && self.tx.try_send(span).is_err() {
            self.counters.dropped.fetch_add(1, Relaxed);
        }
    }

    // Flushing is the export task's, on `Traces::shutdown`.
    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}

struct Batching {
    max: usize,
    interval: Duration,
}

/// Sends a batch when it is full or `interval` has passed; on stop, sends what is queued.
async fn export_loop(
    mut rx: mpsc::Receiver<SpanData>,
    exporter: opentelemetry_otlp::SpanExporter,
    batching: Batching,
    counters: Arc<SpanCounters>,
    mut stop: watch::Receiver<bool>,
    finished: oneshot::Sender<()>,
) {
    let mut batch = Vec::with_capacity(batching.max);
    let mut tick = tokio::time::interval(batching.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            got = rx.recv() => match got {
                Some(span) => {
                    batch.push(span);
                    if batch.len() >= batching.max {
                        send(&exporter, &mut batch, &counters).await;
                    }
                }
                None => break,
            },
            _ = tick.tick() => send(&exporter, &mut batch, &counters).await,
            _ = stop.changed() => break,
        }
    }
    rx.close();
    while let Ok(span) = rx.try_recv() {
        batch.push(span);
        if batch.len() >= batching.max {
            send(&exporter, &mut batch, &counters).await;
        }
    }
    send(&exporter, &mut batch, &counters).await;
    let _ = finished.send(());
}

async fn send(
    exporter: &opentelemetry_otlp::SpanExporter,
    batch: &mut Vec<SpanData>,
    counters: &SpanCounters,
) {
    if batch.is_empty() {
        return;
    }
    let spans = std::mem::take(batch);
    let n = spans.len() as u64;
    match exporter.export(spans).await {
        Ok(()) => counters.exported.fetch_add(n, Relaxed),
        Err(e) => {
            // The error is the exporter's (status, transport): no span content, no header.
            tracing::warn!(spans = n, error = %e, "Trace export failed");
            counters.failed.fetch_add(n, Relaxed)
        }
    };
}

/// The OTLP exporter's HTTP client: the gateway's pooled hyper client (rustls, the configured CA),
/// with the export deadline.
#[derive(Clone)]
struct Collector {
    client: HttpClient,
    timeout: Duration,
}

impl std::fmt::Debug for Collector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Collector")
    }
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for Collector {
    async fn send_bytes(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<Bytes>, opentelemetry_http::HttpError> {
        let request = request.map(crate::body::full);
        let work = async {
            let rsp = self.client.request(request).await?;
            let (parts, body) = rsp.into_parts();
            let bytes = Limited::new(body, MAX_RESPONSE).collect().await?.to_bytes();
            Ok::<_, opentelemetry_http::HttpError>(http::Response::from_parts(parts, bytes))
        };
        tokio::time::timeout(self.timeout, work).await.map_err(|_| "collector timed out")?
    }
}

/// A method as OpenTelemetry's HTTP conventions name it: a standard one as sent, anything else
/// `_OTHER` (a client's extension method is neither bounded nor ours to export).
fn known_method(method: &str) -> &'static str {
    const KNOWN: [&str; 9] = ["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"];
    KNOWN.into_iter().find(|m| *m == method).unwrap_or("_OTHER")
}
