//! The admin listeners. The public one: /healthz (alive), /readyz (keys loaded, log writable, not
//! shutting down), /metrics. The private one serves what holds personal data (the report page,
//! CSV exports, Partner Center's `/v1/*` shapes, `/v1/report`), only to a caller with the bearer
//! token (and, when configured, a client certificate, checked by TLS before any byte is read).
//! Both answer GET and HEAD only.

use crate::body::{Body, full};
use crate::evidence::fleet::Scope;
use crate::state::State;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use std::net::SocketAddr;
use std::sync::Arc;

/// Which admin listener a request came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plane {
    /// Health, readiness, metrics: no authentication.
    Public,
    /// The report and its data: the bearer token is required.
    Private,
}

/// Whose decisions a report answer covers, with `[cluster]` (`fleet; instances=3`, or
/// `instance; reason=redis-unreachable`).
const SCOPE_HEADER: &str = "x-mfagate-report-scope";

/// The challenge sent with a 401 on the private listener.
const CHALLENGE: &str = "Bearer realm=\"mfagate-admin\"";

type Answer = (StatusCode, &'static str, String);

/// Answers one admin request.
pub async fn handle<B>(
    state: Arc<State>,
    plane: Plane,
    peer: SocketAddr,
    req: Request<B>,
) -> Result<Response<Body>, std::convert::Infallible> {
    let path = req.uri().path().to_owned();
    let path = path.as_str();
    if plane == Plane::Private && !authorized(&state, req.headers()) {
        // Never the header itself: a wrong token may be a real one for something else.
        let why = if req.headers().contains_key(header::AUTHORIZATION) { "wrong token" } else { "no token" };
        tracing::warn!(client = %peer, path, why, "Private admin request refused");
        let mut rsp = respond((StatusCode::UNAUTHORIZED, "text/plain", "unauthorized\n".to_owned()));
        rsp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(CHALLENGE));
        return Ok(rsp);
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut rsp =
            respond((StatusCode::METHOD_NOT_ALLOWED, "text/plain", "method not allowed\n".to_owned()));
        rsp.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return Ok(rsp);
    }
    let (answer, scope) = match plane {
        Plane::Public => (public(&state, path), None),
        Plane::Private => private(&state, path).await.map_or((None, None), |(a, s)| (Some(a), s)),
    };
    let mut rsp = respond(answer.unwrap_or_else(not_found));
    if let Some(scope) = scope.and_then(|s| HeaderValue::from_str(&s.header()).ok()) {
        rsp.headers_mut().insert(SCOPE_HEADER, scope);
    }
    Ok(rsp)
}

/// Whether the request carries the configured token (when one is configured; a private
/// listener without one relies on client certificates, which TLS has already checked).
fn authorized(state: &State, headers: &http::HeaderMap) -> bool {
    let Some(token) = state.config.private_admin.as_ref().and_then(|p| p.token.as_ref()) else {
        return state.config.private_admin.is_some();
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().split_at_checked(7))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case(b"bearer "))
        .map(|(_, t)| t.trim_ascii());
    presented.is_some_and(|t| token.matches(t))
}

fn not_found() -> Answer {
    (StatusCode::NOT_FOUND, "text/plain", "not found\n".to_owned())
}

fn respond((status, content_type, body): Answer) -> Response<Body> {
    let mut rsp = Response::new(full(body));
    *rsp.status_mut() = status;
    rsp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    rsp
}

fn public(state: &State, path: &str) -> Option<Answer> {
    Some(match path {
        "/healthz" => (StatusCode::OK, "text/plain", "ok\n".to_owned()),
        "/readyz" => {
            // Redis is reported, not required: while it is down JWT routes still serve.
            let cluster =
                state.cluster.as_ref().map(|c| format!("{}\n", c.status_line())).unwrap_or_default();
            match state.readiness() {
                Ok(()) => (StatusCode::OK, "text/plain", format!("ready\n{cluster}")),
                Err(why) => {
                    (StatusCode::SERVICE_UNAVAILABLE, "text/plain", format!("not ready: {why}\n{cluster}"))
                }
            }
        }
        "/metrics" => (StatusCode::OK, "text/plain; version=0.0.4", render(state)),
        _ => return None,
    })
}

async fn private(state: &State, path: &str) -> Option<(Answer, Option<Scope>)> {
    use crate::evidence::{live, report};
    const PATHS: [&str; 5] = [
        "/",
        "/v1/report",
        "/v1/partnerRequests",
        "/v1/applicationmfaadoptionstatus",
        "/v1/nonMfaCompliantPartnerPrincipals",
    ];
    let export =
        path.strip_prefix("/exports/").and_then(|n| report::EXPORT_NAMES.iter().position(|e| *e == n));
    // Anything else is not found, without a round trip to Redis.
    if export.is_none() && !PATHS.contains(&path) {
        return None;
    }
    let now = state.clock.now_millis();
    let names = |id: &str| state.config.report.application_name(id);
    let declared = &state.config.report.declared;
    // The fleet's report with `[cluster]`, else this instance's.
    let (r, scope) = crate::evidence::fleet::view(state, now).await;
    // This instance's view lacks the logs still being read at start: said, not shown short.
    if !matches!(scope, Some(Scope::Fleet(..))) && state.live.rebuilding() {
        let why = "the report is being rebuilt from the decision log files: try again shortly\n";
        return Some(((StatusCode::SERVICE_UNAVAILABLE, "text/plain", why.to_owned()), scope));
    }
    let answer = match (path, export) {
        ("/v1/partnerRequests", _) => json(live::partner_requests(&r, now)),
        ("/v1/applicationmfaadoptionstatus", _) => json(live::application_adoption(&r, now, &names)),
        ("/v1/nonMfaCompliantPartnerPrincipals", _) => json(live::non_mfa_principals(&r, now)),
        ("/", _) => {
            let sentence = scope.as_ref().map(Scope::sentence);
            let page = crate::evidence::page::render_with(&r, declared, &names, sentence.as_deref());
            (StatusCode::OK, "text/html; charset=utf-8", page)
        }
        ("/v1/report", _) => {
            let mut v = report::to_json(&r, declared);
            if let Some(scope) = &scope {
                v["scope"] = scope.to_json();
            }
            json(v)
        }
        (_, i) => {
            let body = report::exports(&r, &names).into_iter().nth(i.unwrap_or(0)).unwrap_or_default();
            (StatusCode::OK, "text/csv; charset=utf-8", body)
        }
    };
    Some((answer, scope))
}

fn json(v: serde_json::Value) -> Answer {
    (StatusCode::OK, "application/json", v.to_string())
}

fn render(state: &State) -> String {
    crate::evidence::metrics::scrape::render(state)
}
