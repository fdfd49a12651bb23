//! OTLP traces through the real gateway, received by a small OTLP/HTTP receiver on port 0: the
//! server span continues the caller's trace, the upstream continues the gateway's, a denial
//! carries its reason, no credential reaches a span, and a dead collector costs no request.

use crate::support::*;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";
const API_KEY: &str = "otlp-api-key-never-logged";

/// What the receiver got: each span with its resource's attributes, and each export's headers.
#[derive(Default)]
pub struct Received {
    pub spans: Vec<(Vec<KeyValue>, Span)>,
    pub headers: Vec<http::HeaderMap>,
}

/// An OTLP/HTTP receiver: POST /v1/traces, protobuf `ExportTraceServiceRequest`.
pub async fn receiver() -> (std::net::SocketAddr, Arc<Mutex<Received>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let got = Arc::new(Mutex::new(Received::default()));
    let store = got.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            let store = store.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let store = store.clone();
                    async move {
                        let ok = req.method() == http::Method::POST && req.uri().path() == "/v1/traces";
                        let headers = req.headers().clone();
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        let status = match ExportTraceServiceRequest::decode(body) {
                            Ok(export) if ok => {
                                let mut store = store.lock().unwrap();
                                store.headers.push(headers);
                                for rs in export.resource_spans {
                                    let resource = rs.resource.map(|r| r.attributes).unwrap_or_default();
                                    for ss in rs.scope_spans {
                                        for span in ss.spans {
                                            store.spans.push((resource.clone(), span));
                                        }
                                    }
                                }
                                200
                            }
                            _ => 400,
                        };
                        let rsp = hyper::Response::builder()
                            .status(status)
                            .header("content-type", "application/x-protobuf")
                            .body(Full::new(Bytes::new()))
                            .unwrap();
                        Ok::<_, std::convert::Infallible>(rsp)
                    }
                });
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
            });
        }
    });
    (addr, got)
}

/// Waits (at most 10 s) until `pick` finds what it looks for among the received spans.
pub async fn wait_for<T>(got: &Mutex<Received>, pick: impl Fn(&Received) -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(found) = pick(&got.lock().unwrap()) {
            return found;
        }
        assert!(tokio::time::Instant::now() < deadline, "spans not received in time");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn text(v: &AnyValue) -> String {
    match &v.value {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        other => format!("{other:?}"),
    }
}

fn attr(span: &Span, key: &str) -> Option<String> {
    span.attributes.iter().find(|kv| kv.key == key).and_then(|kv| kv.value.as_ref()).map(text)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn traces_section(addr: std::net::SocketAddr, headers_file: &std::path::Path) -> String {
    format!(
        "\n[traces]\nendpoint = \"http://{addr}/v1/traces\"\nheaders_file = \"{}\"\nbatch_interval_ms = 20\n",
        headers_file.display()
    )
}

#[tokio::test]
async fn spans_continue_the_callers_trace_and_the_upstream_continues_the_gateways() {
    let (addr, got) = receiver().await;
    let secrets = tempfile::tempdir().unwrap();
    let headers_file = secrets.path().join("otlp-headers");
    std::fs::write(&headers_file, format!("# the collector's key\nx-api-key: {API_KEY}\n")).unwrap();
    let mut g = gateway().append(&traces_section(addr, &headers_file)).start().await;
    let token = g.token(|c| c["upn"] = "alice.secret@contoso.test".into());
    let req = g
        .request("/v1/orders?customer=alice.secret", Some(&token))
        .header("traceparent", format!("00-{TRACE}-{CALLER_SPAN}-01"))
        .header("cookie", "theme=cookie-value-secret")
        .body(Default::default())
        .unwrap();
    let rsp = g.send(req).await;
    assert_eq!(rsp.status, 200, "{}", rsp.body);
    let request_id = rsp.headers["x-request-id"].to_str().unwrap().to_owned();
    // The upstream continues the trace from the gateway's span, not from the caller's.
    let upstream = rsp.upstream_header("traceparent").unwrap();
    let parts: Vec<&str> = upstream.split('-').collect();
    assert_eq!((parts[0], parts[1], parts[3]), ("00", TRACE, "01"), "{upstream}");
    assert_ne!(parts[2], CALLER_SPAN);
    let upstream_parent = parts[2].to_owned();

    // A denial, in a trace of its own (no traceparent).
    let denied = g.get("/v1/denied", None).await;
    assert_eq!(denied.status, 401);

    let (server, call) = wait_for(&got, |r| {
        let server =
            r.spans.iter().find(|(_, s)| hex(&s.trace_id) == TRACE && s.kind == SpanKind::Server as i32)?;
        let call =
            r.spans.iter().find(|(_, s)| hex(&s.trace_id) == TRACE && s.kind == SpanKind::Client as i32)?;
        Some((server.clone(), call.1.clone()))
    })
    .await;
    let (resource, server) = server;
    assert!(
        resource
            .iter()
            .any(|kv| kv.key == "service.name" && kv.value.as_ref().map(text).as_deref() == Some("mfagate"))
    );
    assert_eq!(hex(&server.parent_span_id), CALLER_SPAN);
    assert_eq!(server.name, "GET /v1/");
    for (key, want) in [
        ("mfagate.route", "api"),
        ("http.route", "/v1/"),
        ("mfagate.decision", "allow"),
        ("mfagate.reason", "mfa_satisfied"),
        ("http.request.method", "GET"),
        ("http.response.status_code", "200"),
        ("mfagate.request_id", request_id.as_str()),
    ] {
        assert_eq!(attr(&server, key).as_deref(), Some(want), "{key}: {server:?}");
    }
    // The upstream call is the server span's child, and the span the upstream was told of.
    assert_eq!(call.parent_span_id, server.span_id);
    assert_eq!(hex(&call.span_id), upstream_parent);
    assert_eq!(attr(&call, "http.response.status_code").as_deref(), Some("200"));

    let denied = wait_for(&got, |r| {
        r.spans
            .iter()
            .find(|(_, s)| {
                attr(s, "http.route").as_deref() == Some("/v1/")
                    && attr(s, "mfagate.decision").as_deref() == Some("deny")
            })
            .map(|(_, s)| s.clone())
    })
    .await;
    assert_eq!(attr(&denied, "mfagate.reason").as_deref(), Some("no_token"));
    assert_eq!(attr(&denied, "http.response.status_code").as_deref(), Some("401"));
    assert!(denied.parent_span_id.is_empty(), "a new trace");

    // No credential, cookie, query or name in any span; the collector's key went as a header.
    let (everything, keys_sent) = {
        let received = got.lock().unwrap();
        (format!("{:?}", received.spans), received.headers.iter().all(|h| h["x-api-key"] == API_KEY))
    };
    for secret in [token.as_str(), "cookie-value-secret", "alice.secret", "Bearer"] {
        assert!(!everything.contains(secret), "{secret} in a span");
    }
    assert!(keys_sent);
    let metrics = g.admin_get("/metrics").await.body;
    assert!(metrics.contains("mfagate_trace_spans_total{result=\"exported\"}"), "{metrics}");
    g.stop().await;
}

#[tokio::test]
async fn a_dead_collector_costs_no_request_and_its_failures_are_counted() {
    // A port with nothing behind it.
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let headers_file = dir.path().join("h");
    std::fs::write(&headers_file, "x-api-key: k\n").unwrap();
    let section = traces_section(dead, &headers_file) + "export_timeout_secs = 1\n";
    let mut g = gateway().append(&section).start().await;
    let token = g.token(|_| {});
    for _ in 0..5 {
        assert_eq!(g.get("/v1/still-served", Some(&token)).await.status, 200);
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let metrics = g.admin_get("/metrics").await.body;
        let failed = metrics
            .lines()
            .find_map(|l| l.strip_prefix("mfagate_trace_spans_total{result=\"failed\"} "))
            .and_then(|n| n.trim().parse::<u64>().ok())
            .unwrap_or(0);
        if failed > 0 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no failed export counted: {metrics}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    g.stop().await;
}

#[tokio::test]
async fn without_a_traces_table_the_callers_traceparent_passes_unchanged_and_nothing_is_counted() {
    let mut g = gateway().start().await;
    let token = g.token(|_| {});
    let caller = format!("00-{TRACE}-{CALLER_SPAN}-01");
    let req = g.request("/v1/untraced", Some(&token)).header("traceparent", &caller);
    let rsp = g.send(req.body(Default::default()).unwrap()).await;
    assert_eq!(rsp.upstream_header("traceparent").as_deref(), Some(caller.as_str()));
    assert!(!g.admin_get("/metrics").await.body.contains("mfagate_trace_spans_total"));
    g.stop().await;
}

#[test]
fn check_config_refuses_bad_traces_settings() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("h"), "no colon here\n").unwrap();
    let bad = "[decision_log]\npath = \"d.jsonl\"\n[traces]\nendpoint = \"collector:4318\"\nsample_ratio = 2.0\nheaders_file = \"h\"\nmax_batch = 10\nmax_queue = 5\n";
    let problems = mfagate::Config::from_toml(bad, dir.path()).unwrap_err().problems().join("\n");
    for want in [
        "traces.endpoint: not a URL",
        "traces.sample_ratio: must be between 0 and 1",
        "traces.headers_file: ",
        "traces.max_queue: must be at least max_batch",
    ] {
        assert!(problems.contains(want), "{want}: {problems}");
    }
    // The header file's values never appear in a problem.
    std::fs::write(dir.path().join("h"), "bad name: secret-value\n").unwrap();
    let problems = mfagate::Config::from_toml(bad, dir.path()).unwrap_err().problems().join("\n");
    assert!(problems.contains("not a header name") && !problems.contains("secret-value"), "{problems}");
    let ok = "[decision_log]\npath = \"d.jsonl\"\n[traces]\nendpoint = \"http://collector:4318/v1/traces\"\n";
    let cfg = mfagate::Config::from_toml(ok, dir.path()).unwrap();
    let traces = cfg.traces.unwrap();
    assert_eq!((traces.service_name.as_str(), traces.sample_ratio, traces.max_queue), ("mfagate", 1.0, 2048));
}

#[tokio::test]
async fn key_fetches_and_saml_verifications_are_child_spans_of_their_request() {
    let (addr, got) = receiver().await;
    let secrets = tempfile::tempdir().unwrap();
    let headers_file = secrets.path().join("otlp-headers");
    std::fs::write(&headers_file, format!("x-api-key: {API_KEY}\n")).unwrap();
    let mut g =
        gateway().published(&["dev-rsa-a"]).append(&traces_section(addr, &headers_file)).start().await;
    // The IdP rotates: a token signed with the new key makes the request fetch the key set.
    g.idp.publish(&["dev-rsa-a", "dev-rsa-b"]);
    g.idp.sign_with("dev-rsa-b");
    g.clock.advance(Duration::from_secs(301));
    let traced = |trace: &str, path: &str| {
        g.request(path, None).header("traceparent", format!("00-{trace}-{CALLER_SPAN}-01"))
    };
    const KEYS: &str = "11111111111111111111111111111111";
    let req = traced(KEYS, "/v1/rotated").header("authorization", format!("Bearer {}", g.token(|_| {})));
    assert_eq!(g.send(req.body(Default::default()).unwrap()).await.status, 200);

    // A SAML assertion with a broken signature.
    let spec = mfagate::dev::saml_idp::AssertionSpec::new(
        "https://idp.contoso.test/adfs/services/trust",
        "https://gateway.contoso.test/saml",
        T0,
    );
    let read = |ext: &str| std::fs::read(certs().join(format!("saml-idp.{ext}"))).unwrap();
    let signer = mfagate::dev::saml_idp::DevSamlSigner::from_pem(&read("key"), &read("pem")).unwrap();
    let tampered = signer
        .sign(&spec.to_xml())
        .unwrap()
        .replace("adele@contoso.test</saml:AttributeValue>", "mallory@contoso.test</saml:AttributeValue>");
    const SAML: &str = "22222222222222222222222222222222";
    let encoded = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(&tampered)
    };
    let req = traced(SAML, "/v1/saml").header("authorization", format!("SAML {encoded}"));
    assert_eq!(g.send(req.body(Default::default()).unwrap()).await.status, 401);

    let child_of_request = |r: &Received, trace: &str, name: &str| {
        let server =
            r.spans.iter().find(|(_, s)| hex(&s.trace_id) == trace && s.kind == SpanKind::Server as i32)?;
        let child = r.spans.iter().find(|(_, s)| hex(&s.trace_id) == trace && s.name == name)?;
        (child.1.parent_span_id == server.1.span_id).then(|| child.1.clone())
    };
    let fetch = wait_for(&got, |r| child_of_request(r, KEYS, "issuer.keys.fetch")).await;
    assert_eq!(attr(&fetch, "mfagate.issuer").as_deref(), Some("dev"));
    let verify = wait_for(&got, |r| child_of_request(r, SAML, "saml.verify")).await;
    assert_eq!(attr(&verify, "mfagate.error").as_deref(), Some("bad_signature"));
    let everything = format!("{:?}", got.lock().unwrap().spans);
    for secret in [&encoded[..40], "mallory@contoso.test", "adele@contoso.test"] {
        assert!(!everything.contains(secret), "{secret} in a span");
    }
    g.stop().await;
}

/// A `/metrics` counter of `mfagate_trace_spans_total`.
fn spans_counted(metrics: &str, result: &str) -> u64 {
    let prefix = format!("mfagate_trace_spans_total{{result=\"{result}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn a_collector_that_never_answers_costs_no_request_and_the_dropped_spans_are_counted() {
    // Accepts connections and never reads or answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let headers_file = dir.path().join("h");
    std::fs::write(&headers_file, "x-api-key: k\n").unwrap();
    let section =
        traces_section(addr, &headers_file) + "max_batch = 1\nmax_queue = 1\nexport_timeout_secs = 30\n";
    let mut g = gateway().append(&section).start().await;
    let token = g.token(|_| {});
    for _ in 0..5 {
        let answered =
            tokio::time::timeout(Duration::from_secs(5), g.get("/v1/while-stuck", Some(&token))).await;
        assert_eq!(answered.expect("answered while the collector hangs").status, 200);
    }
    // Two spans a request (server, upstream call), one export stuck, one span queued: the rest dropped.
    let metrics = g.admin_get("/metrics").await.body;
    assert!(spans_counted(&metrics, "dropped") >= 5, "{metrics}");
    assert_eq!(spans_counted(&metrics, "exported"), 0, "{metrics}");
    g.stop().await;
}

#[tokio::test]
async fn spans_still_queued_are_sent_on_shutdown() {
    let (addr, got) = receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let headers_file = dir.path().join("h");
    std::fs::write(&headers_file, "x-api-key: k\n").unwrap();
    // A batch interval no test waits for: only the shutdown can send the span.
    let section =
        traces_section(addr, &headers_file).replace("batch_interval_ms = 20", "batch_interval_ms = 3600000");
    let mut g = gateway().append(&section).start().await;
    let req = g.request("/v1/last", None).header("traceparent", format!("00-{TRACE}-{CALLER_SPAN}-01"));
    assert_eq!(g.send(req.body(Default::default()).unwrap()).await.status, 401);
    assert!(got.lock().unwrap().spans.is_empty(), "sent before the batch interval");
    g.stop().await;
    let spans = &got.lock().unwrap().spans;
    assert!(
        spans
            .iter()
            .any(|(_, s)| hex(&s.trace_id) == TRACE
                && attr(s, "mfagate.reason").as_deref() == Some("no_token")),
        "{spans:?}"
    );
}

#[tokio::test]
async fn the_binary_exports_spans_to_the_configured_collector() {
    use crate::binary::{Fixture, fixture, start};
    let (addr, got) = receiver().await;
    let Fixture { idp, config, dir: _dir, .. } = fixture(|text| {
        format!("{text}\n[traces]\nendpoint = \"http://{addr}/v1/traces\"\nbatch_interval_ms = 20\n")
    })
    .await;
    let mut running = start(&config, &[]);
    let token = idp.mint(&mfagate::dev::idp::TokenRequest::default()).unwrap();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let req = http::Request::get(format!("http://{}/v1/binary", running.addr))
        .header("authorization", format!("Bearer {token}"))
        .header("traceparent", format!("00-{TRACE}-{CALLER_SPAN}-01"))
        .body(Full::default())
        .unwrap();
    assert_eq!(client.request(req).await.unwrap().status(), 200);
    let server = wait_for(&got, |r| {
        r.spans.iter().map(|(_, s)| s).find(|s| s.kind == SpanKind::Server as i32).cloned()
    })
    .await;
    assert_eq!(hex(&server.trace_id), TRACE);
    assert_eq!(hex(&server.parent_span_id), CALLER_SPAN);
    assert_eq!(attr(&server, "mfagate.decision").as_deref(), Some("allow"));
    running.child.kill().unwrap();
    running.child.wait().unwrap();
}
