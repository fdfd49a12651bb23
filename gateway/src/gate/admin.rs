//! The admin listener: /healthz (alive), /readyz (keys loaded, log writable), /metrics.

use crate::body::{Body, full};
use crate::evidence::metrics::counter;
use crate::state::State;
use http::{Request, Response, StatusCode, header};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

/// Answers one admin request.
pub async fn handle<B>(
    state: Arc<State>,
    req: Request<B>,
) -> Result<Response<Body>, std::convert::Infallible> {
    let (status, content_type, body) = match req.uri().path() {
        "/healthz" => (StatusCode::OK, "text/plain", "ok\n".to_owned()),
        "/readyz" => match state.readiness() {
            Ok(()) => (StatusCode::OK, "text/plain", "ready\n".to_owned()),
            Err(why) => (StatusCode::SERVICE_UNAVAILABLE, "text/plain", format!("not ready: {why}\n")),
        },
        "/metrics" => (StatusCode::OK, "text/plain; version=0.0.4", render(&state)),
        "/v1/partnerRequests" => json(state.live.partner_requests(state.clock.now_millis())),
        "/v1/applicationmfaadoptionstatus" => {
            let names = |id: &str| state.config.report.application_name(id);
            json(state.live.application_adoption(state.clock.now_millis(), &names))
        }
        "/v1/nonMfaCompliantPartnerPrincipals" => {
            json(state.live.non_mfa_principals(state.clock.now_millis()))
        }
        "/" => {
            let view = state.live.view(state.clock.now_millis());
            let names = |id: &str| state.config.report.application_name(id);
            (
                StatusCode::OK,
                "text/html; charset=utf-8",
                crate::evidence::page::render(&view, &state.config.report.declared, &names),
            )
        }
        path if path.starts_with("/exports/") => {
            let view = state.live.view(state.clock.now_millis());
            let names = |id: &str| state.config.report.application_name(id);
            let name = &path["/exports/".len()..];
            match crate::evidence::report::EXPORT_NAMES.iter().position(|n| *n == name) {
                Some(i) => {
                    let body = crate::evidence::report::exports(&view, &names)
                        .into_iter()
                        .nth(i)
                        .unwrap_or_default();
                    (StatusCode::OK, "text/csv; charset=utf-8", body)
                }
                None => (StatusCode::NOT_FOUND, "text/plain", "not found\n".to_owned()),
            }
        }
        "/v1/report" => json(crate::evidence::report::to_json(
            &state.live.view(state.clock.now_millis()),
            &state.config.report.declared,
        )),
        _ => (StatusCode::NOT_FOUND, "text/plain", "not found\n".to_owned()),
    };
    let mut rsp = Response::new(full(body));
    *rsp.status_mut() = status;
    rsp.headers_mut().insert(header::CONTENT_TYPE, http::HeaderValue::from_static(content_type));
    Ok(rsp)
}

fn json(v: serde_json::Value) -> (StatusCode, &'static str, String) {
    (StatusCode::OK, "application/json", v.to_string())
}

fn render(state: &State) -> String {
    let mut out = String::new();
    state.metrics.render(&mut out);
    let c = &state.cache_counters;
    counter(
        &mut out,
        "mfagate_token_cache_total",
        "Verified-token cache lookups.",
        &[
            ("{result=\"hit\"}".into(), c.hits.load(Relaxed)),
            ("{result=\"miss\"}".into(), c.misses.load(Relaxed)),
        ],
    );
    let mut fetches = Vec::new();
    for keys in state.verifier.keys() {
        let n = keys.name();
        fetches.push((format!("{{issuer=\"{n}\",result=\"ok\"}}"), keys.counters.ok.load(Relaxed)));
        fetches.push((format!("{{issuer=\"{n}\",result=\"failed\"}}"), keys.counters.failed.load(Relaxed)));
        fetches.push((
            format!("{{issuer=\"{n}\",result=\"rate_limited\"}}"),
            keys.counters.refetch_limited.load(Relaxed),
        ));
    }
    counter(&mut out, "mfagate_jwks_fetch_total", "Key-set fetches by issuer and result.", &fetches);
    counter(
        &mut out,
        "mfagate_decision_log_lines_total",
        "Decision records written.",
        &[(String::new(), state.log.written.load(Relaxed))],
    );
    state.connections.counters.render(&state.connections.limits, &mut out);
    let healthy = u64::from(state.log.is_healthy());
    out.push_str(&format!("# HELP mfagate_decision_log_healthy 1 when the last write succeeded.\n# TYPE mfagate_decision_log_healthy gauge\nmfagate_decision_log_healthy {healthy}\n"));
    out
}
