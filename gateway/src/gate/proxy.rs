//! The request path, in one place and in order: route, credential, verify, decide, record,
//! then refuse or forward.

use crate::body::Body;
use crate::clock::rfc3339_millis;
use crate::config::{Channel, OnLogFailure, RouteConfig, UnderscoreHeaders};
use crate::evidence::metrics::Labels;
use crate::evidence::record::DecisionRecord;
use crate::evidence::traces::{ChildSpan, RequestSpan};
use crate::gate::forward;
use crate::gate::routes::HostError;
use crate::respond::{BadRequest, Refusal, refuse, status};
use crate::state::State;
use crate::verify::jwt::{CacheCounters, Identity, Verification, Verifier};
use crate::verify::saml::{SamlVerified, SamlVerifier};
use http::{HeaderMap, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use mfagate_policy::path::{CanonicalPath, PathError};
use mfagate_policy::{
    AuthRequirement, Credential, Decision, InvalidReason, Outcome, Principal, Reason, RouteRule, UnixTime,
    evaluate,
};
use opentelemetry::context::FutureExt as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

/// The connection a request came in on.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    /// The client's address.
    pub addr: SocketAddr,
    /// "http" or "https".
    pub scheme: &'static str,
}

/// Handles one request; never fails (failures are responses).
pub async fn handle(
    state: Arc<State>,
    peer: Peer,
    req: Request<Incoming>,
) -> Result<Response<Body>, std::convert::Infallible> {
    let start = Instant::now();
    let _in_flight = state.metrics.in_flight();
    let headers = req.headers();
    let gateway_request_id = crate::ids::request_id();
    let span = state.traces.as_ref().map(|t| t.request_span(headers, &gateway_request_id));
    let rec = DecisionRecord {
        ts: rfc3339_millis(state.clock.now_millis()),
        request_id: header_text(headers, "ms-requestid")
            .map_or_else(|| gateway_request_id.clone(), str::to_owned),
        gateway_request_id,
        correlation_id: header_text(headers, "ms-correlationid").map(str::to_owned),
        trace_id: header_text(headers, "traceparent").and_then(forward::trace_id).map(str::to_owned),
        channel: "api",
        method: req.method().as_str().to_owned(),
        path: req.uri().path().to_owned(),
        source_ip: forward::client_address(headers, peer.addr.ip(), state.config.listen.trust_forwarded_for),
        principal: Principal::Anonymous.as_str(),
        ..DecisionRecord::default()
    };
    // Every answer, a refusal or the upstream's, names the request as the log does.
    let id = http::HeaderValue::from_str(&rec.gateway_request_id).ok();
    // From here every way out writes the record, also when the client leaves mid-way.
    let http1 = req.version() < http::Version::HTTP_2;
    let mut guard = Pending::new(&state, rec, start);
    // A traced request runs in its span's context: verification opens child spans from it.
    let mut rsp = match span.as_ref().map(RequestSpan::context) {
        Some(cx) => {
            guard.span = span;
            route_and_decide(&state, &mut guard, peer, req).with_context(cx).await
        }
        None => route_and_decide(&state, &mut guard, peer, req).await,
    };
    if let Some(id) = id {
        rsp.headers_mut().insert(state.config.listen.request_id_header.clone(), id);
    }
    // Draining: a keep-alive client reconnects, and the balancer sends it to another instance
    // (HTTP/2 clients get GOAWAY when the listener closes).
    if http1
        && rsp.status() != http::StatusCode::SWITCHING_PROTOCOLS
        && state.draining.load(std::sync::atomic::Ordering::Acquire)
    {
        rsp.headers_mut().insert(http::header::CONNECTION, http::HeaderValue::from_static("close"));
    }
    Ok(rsp)
}

/// What a request must pass before any route sees it: a method and a path that every server
/// behind reads the same way, one host, and (if so configured) no header names with `_`.
struct Shape {
    path: CanonicalPath,
    host: Option<String>,
}

/// An HTTP/2 header list's size as RFC 9113 §6.5.2 counts it (32 bytes of overhead a field).
fn header_list_size(headers: &HeaderMap) -> usize {
    headers.iter().map(|(name, value)| name.as_str().len() + value.len() + 32).sum()
}

fn shape(state: &State, req: &Request<Incoming>) -> Result<Shape, BadRequest> {
    let method = req.method();
    // CONNECT would go upstream in authority form, not on the decided path; TRACE echoes the
    // request (and its credentials) back.
    if method.as_str().bytes().any(|b| b.is_ascii_lowercase())
        || method == http::Method::CONNECT
        || method == http::Method::TRACE
    {
        return Err(BadRequest::MethodInvalid);
    }
    if req.uri().query().is_some_and(crate::gate::method_override::in_query) {
        return Err(BadRequest::MethodOverride);
    }
    let path = mfagate_policy::path::canonicalize(req.uri().path()).map_err(BadRequest::Path)?;
    let host = crate::gate::routes::request_host(req.uri(), req.headers()).map_err(|e| match e {
        HostError::Mismatch => BadRequest::HostMismatch,
        HostError::Invalid => BadRequest::HostInvalid,
    })?;
    if state.config.listen.headers_with_underscores == UnderscoreHeaders::Refuse
        && req.headers().keys().any(forward::has_odd_name)
    {
        return Err(BadRequest::HeaderUnderscore);
    }
    Ok(Shape { path, host })
}

async fn route_and_decide(
    state: &Arc<State>,
    guard: &mut Pending<'_>,
    peer: Peer,
    req: Request<Incoming>,
) -> Response<Body> {
    if req.version() == http::Version::HTTP_2
        && header_list_size(req.headers()) > state.config.listen.max_header_bytes
    {
        guard.rec.operation = format!("{} {}", guard.rec.method, guard.rec.path);
        return guard.refuse(Refusal::HeaderTooLarge).await;
    }
    let Shape { path, host } = match shape(state, &req) {
        Ok(shape) => shape,
        Err(why) => {
            guard.rec.operation = format!("{} {}", guard.rec.method, guard.rec.path);
            return guard.refuse(Refusal::BadRequest(why)).await;
        }
    };
    guard.rec.path = path.as_str().to_owned();
    if let Some(endpoint) = sign_in_endpoint_of(state, req.method(), path.as_str()) {
        return sign_in_endpoint(state, endpoint, req, guard).await;
    }
    let req = req.map(BodyExt::boxed);
    let routes = &state.config.routes;
    let Some(index) = state.routes.find(routes, host.as_deref(), req.method(), &path) else {
        guard.rec.operation = format!("{} {}", guard.rec.method, guard.rec.path);
        return guard.refuse(Refusal::NoRoute).await;
    };
    let route = &routes[index];
    guard.rec.route = Some(route.name.clone());
    guard.rec.operation = format!("{} {}", guard.rec.method, route.path_prefix);
    guard.labels.route = Some(index);
    guard.labels.portal = route.channel == Channel::Portal;
    if path.has_parameters() && !route.allow_path_parameters {
        return guard.refuse(Refusal::BadRequest(BadRequest::Path(PathError::Parameters))).await;
    }
    let (mut req, grant) = match &route.grant_audience {
        Some(audience) => match read_token_request(state, req).await {
            Ok((req, assertion)) => (req, assertion.map(|a| (a, audience.clone()))),
            Err(refusal) => return guard.refuse(refusal).await,
        },
        None => (req, None),
    };
    let from_grant = grant.is_some();

    let session_identity: Option<Identity>;
    let presented;
    // What stands in for the policy's `no_token` when nothing usable was presented.
    let mut none_because = None;
    let Decided { decision, identity, claims_capable, credential } = if route.channel == Channel::Portal {
        guard.rec.channel = "portal";
        let session = match crate::browser::portal::session(state, route, req.headers()) {
            crate::browser::portal::RouteSession::Accepted(s) => Some(s),
            crate::browser::portal::RouteSession::OtherIdp => {
                none_because = Some(Refusal::SessionFromOtherIdp);
                None
            }
            crate::browser::portal::RouteSession::None => None,
        };
        session_identity = session.as_ref().map(crate::browser::portal::identity);
        let credential = session
            .as_ref()
            .map_or(Credential::None, |s| Credential::Session { mfa: s.mfa, expires: UnixTime(s.exp) });
        let decision = evaluate(&route.rule, credential, state.clock.unix());
        let identity = session_identity.as_ref().filter(|_| decision.principal != Principal::Anonymous);
        Decided { decision, identity, claims_capable: false, credential }
    } else {
        presented = match grant {
            Some((assertion, audience)) => {
                saml_assertion(state, route, &assertion, crate::verify::saml::Use::Grant(audience)).await
            }
            None => credential(state, route, req.headers()).await,
        };
        match presented {
            Presented::SamlBusy => return guard.refuse(Refusal::SamlBusy).await,
            Presented::OnceUnavailable => return guard.refuse(Refusal::OnceUnavailable).await,
            Presented::SamlNotAccepted => none_because = Some(Refusal::SamlNotAccepted),
            _ => {}
        }
        let rule = rule_for(route, from_grant);
        decide(&state.verifier, &state.saml, state.clock.unix(), &rule, &presented)
    };
    let (index, decision) = if req.method() == http::Method::POST && !from_grant && route.method_overrides {
        let held = Held { headers: req.headers(), credential, identity };
        strictest_target(state, host.as_deref(), &path, index, decision, &held)
    } else {
        (index, decision)
    };
    let route = &routes[index];
    guard.rec.route = Some(route.name.clone());
    guard.rec.operation = format!("{} {}", guard.rec.method, route.path_prefix);
    guard.labels.route = Some(index);
    fill(&mut guard.rec, &decision, identity);
    // Where it stands for the policy's `no_token`, also when the route forwards (report-only).
    let none_because = none_because.filter(|_| decision.reason == Reason::NoToken);
    if let Some(why) = none_because {
        guard.rec.reason = why.code();
    }
    guard.labels.principal = decision.principal;
    guard.labels.mfa = decision.mfa;
    guard.labels.outcome = decision.outcome();

    if !state.log.is_healthy() && state.config.decision_log.on_failure == OnLogFailure::Closed {
        return guard.refuse(Refusal::LogUnavailable).await;
    }
    if !decision.forwards() && route.channel == Channel::Portal {
        let return_to = match req.uri().query() {
            Some(q) => format!("{}?{q}", path.as_str()),
            None => path.as_str().to_owned(),
        };
        return portal_refusal(state, route, req.headers(), &return_to, guard, &decision).await;
    }
    if let Some(refusal) = api_refusal(route, &decision, from_grant, none_because, claims_capable) {
        return guard.refuse(refusal).await;
    }

    let websocket_key = forward::is_upgrade(req.headers())
        .then(|| req.headers().get(header::SEC_WEBSOCKET_KEY).cloned())
        .flatten();
    let client_upgrade = websocket_key.is_some().then(|| hyper::upgrade::on(&mut req));
    let hold = req.extensions_mut().remove::<crate::gate::connection::Hold>();
    let request_id = guard.rec.gateway_request_id.clone();
    let (mut call, traceparent) = match &guard.span {
        Some(span) => span.upstream_call(&route.name),
        None => (ChildSpan::default(), None),
    };
    let forwarding = Forwarding {
        route,
        peer,
        host: host.as_deref(),
        path: &path,
        decision: &decision,
        identity,
        request_id: &request_id,
        traceparent: traceparent.as_ref(),
    };
    let Some(upstream_req) = upstream_request(state, &forwarding, req) else {
        return guard.fail(Refusal::UpstreamFailed).await;
    };
    let Ok(address_slot) = state.connections.upstream_per_ip.admit(peer.addr.ip()) else {
        return guard.fail(Refusal::UpstreamBusy).await;
    };
    let slots = state.connections.upstream.clone();
    let Ok(Ok(global_slot)) = tokio::time::timeout(route.upstream_timeout, slots.acquire_owned()).await
    else {
        return guard.fail(Refusal::UpstreamBusy).await;
    };
    let slot = (address_slot, global_slot);
    let asked = Instant::now();
    let sent = tokio::time::timeout(route.upstream_timeout, state.client.request(upstream_req)).await;
    state.metrics.observe_upstream(Some(index), asked.elapsed());
    call.upstream_result(&sent);
    drop(call);
    let mut rsp = match sent {
        Err(_) => return guard.fail(Refusal::UpstreamTimeout).await,
        Ok(Err(e)) => {
            tracing::warn!(route = %route.name, error = %e, "Upstream request failed");
            return guard.fail(Refusal::UpstreamFailed).await;
        }
        Ok(Ok(rsp)) => rsp,
    };
    if rsp.status() == StatusCode::SWITCHING_PROTOCOLS {
        // A tunnel only for a real WebSocket handshake (RFC 6455 §4.1): a 101 that is not one
        // would open a raw connection to the upstream past every route.
        let (Some(client_upgrade), Some(key)) = (client_upgrade, websocket_key) else {
            return guard.fail(Refusal::UpstreamFailed).await;
        };
        if !forward::completes_websocket_handshake(rsp.headers(), &key) {
            tracing::warn!(route = %route.name, "Upstream answered 101 without a WebSocket handshake");
            return guard.fail(Refusal::UpstreamFailed).await;
        }
        let upstream_upgrade = hyper::upgrade::on(&mut rsp);
        let tunnel_state = Tunnel {
            idle: state.config.listen.websocket_idle_timeout,
            connections: state.connections.clone(),
            retired: state.retired.subscribe(),
        };
        tokio::spawn(tunnel(client_upgrade, upstream_upgrade, tunnel_state, (hold, slot)));
        guard.finish(rsp.status().as_u16()).await;
        return rsp.map(|b| b.boxed());
    }
    forward::strip_hop_by_hop(rsp.headers_mut());
    guard.finish(rsp.status().as_u16()).await;
    // The upstream connection is busy until its body is done.
    rsp.map(|b| crate::body::Holding::boxed(b.boxed(), slot))
}

/// A grant is a credential whatever the route says about other requests: a token endpoint is
/// often `auth = "none"` so that its other grants reach it.
pub fn rule_for(route: &RouteConfig, from_grant: bool) -> RouteRule {
    if from_grant { RouteRule { auth: AuthRequirement::Required, ..route.rule } } else { route.rule }
}

/// How an API route answers a decision that does not forward: a grant's own `invalid_grant`,
/// what stands in for `no_token` (`none_because`), or the policy's refusal with the route's
/// challenge. `None` when the request is forwarded.
pub fn api_refusal<'a>(
    route: &'a RouteConfig,
    decision: &Decision,
    from_grant: bool,
    none_because: Option<Refusal<'a>>,
    claims_capable: bool,
) -> Option<Refusal<'a>> {
    if decision.forwards() {
        return None;
    }
    Some(if from_grant {
        Refusal::InvalidGrant { reason: decision.reason }
    } else if let Some(why) = none_because {
        why
    } else {
        Refusal::Policy { reason: decision.reason, challenge: &route.challenge, claims_capable }
    })
}

/// What the request presented.
pub enum Presented {
    /// No credential.
    Nothing,
    /// A bearer token, and what verification made of it.
    Token(Verification),
    /// A SAML assertion (`Authorization: SAML <base64>`), and what verification made of it.
    Saml(Result<Arc<SamlVerified>, InvalidReason>),
    /// A SAML assertion on a route that takes no SAML IdP: not verified, taken as nothing.
    SamlNotAccepted,
    /// A SAML assertion not verified because the verification queue is full.
    SamlBusy,
    /// A SAML assertion verified, but the fleet's one-time memory could not be asked.
    OnceUnavailable,
}

async fn credential(state: &State, route: &RouteConfig, headers: &HeaderMap) -> Presented {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let value = match (values.next(), values.next()) {
        (None, _) => return Presented::Nothing,
        (Some(_), Some(_)) => return Presented::Token(Verification::Invalid(InvalidReason::Malformed)),
        (Some(value), None) => value,
    };
    match scheme(value.as_bytes()) {
        Some((Scheme::Bearer, token)) => {
            let max = state.config.listen.max_token_bytes;
            token_on_route(route, bearer(&state.verifier, &state.cache_counters, max, token).await)
        }
        // The route is decided first: an assertion no IdP of this route could have signed costs
        // no verification (xmlsec is the expensive part of a request).
        Some((Scheme::Saml, _)) if !takes_saml(&state.saml, route) => Presented::SamlNotAccepted,
        Some((Scheme::Saml, assertion)) => {
            saml_assertion(state, route, assertion, crate::verify::saml::Use::Api).await
        }
        // Another scheme (Basic, ...) carries no credential we accept (RFC 6750 §3).
        _ => Presented::Nothing,
    }
}

/// A bearer token verified, its size checked first.
pub async fn bearer(
    verifier: &Verifier,
    counters: &CacheCounters,
    max_bytes: usize,
    token: &str,
) -> Verification {
    if token.len() > max_bytes {
        return Verification::Invalid(InvalidReason::TooLarge);
    }
    verifier.verify(token, counters).await
}

/// Whether `route` takes tokens from the issuer (or SAML IdP) named `issuer`.
fn takes_issuer(route: &RouteConfig, issuer: &str) -> bool {
    route.issuers.is_empty() || route.issuers.iter().any(|i| i == issuer)
}

/// A verified token on `route`: from an issuer the route does not take, it is `unknown_issuer`.
pub fn token_on_route(route: &RouteConfig, verification: Verification) -> Presented {
    match verification {
        Verification::Verified(v) if !takes_issuer(route, &v.identity.issuer) => {
            Presented::Token(Verification::Invalid(InvalidReason::UnknownIssuer))
        }
        verification => Presented::Token(verification),
    }
}

/// A verified SAML assertion on `route`: from an IdP the route does not take, `unknown_issuer`.
pub fn saml_on_route(
    route: &RouteConfig,
    verified: Result<Arc<SamlVerified>, crate::verify::saml::Unverified>,
) -> Presented {
    use crate::verify::saml::Unverified;
    match verified {
        Ok(v) if !takes_issuer(route, &v.identity.issuer) => {
            Presented::Saml(Err(InvalidReason::UnknownIssuer))
        }
        Ok(v) => Presented::Saml(Ok(v)),
        Err(Unverified::Invalid(why)) => Presented::Saml(Err(why)),
        Err(Unverified::Busy) => Presented::SamlBusy,
        Err(Unverified::Unavailable) => Presented::OnceUnavailable,
    }
}

/// Whether a route takes any SAML identity provider: all configured ones, or those among its
/// `issuers`.
pub fn takes_saml(saml: &SamlVerifier, route: &RouteConfig) -> bool {
    !saml.is_empty()
        && (route.issuers.is_empty() || route.issuers.iter().any(|i| saml.idp_named(i).is_some()))
}

/// A SAML assertion as the credential, from the route's trusted IdPs.
async fn saml_assertion(
    state: &State,
    route: &RouteConfig,
    encoded: &str,
    how: crate::verify::saml::Use,
) -> Presented {
    saml_on_route(route, state.saml.verify_base64_off_worker(encoded, how).await)
}

/// Reads a token-endpoint request (bounded in size and time): its SAML grant's assertion, if it
/// makes one, or the refusal for a request the token endpoint could read differently.
async fn read_token_request(
    state: &State,
    req: Request<Body>,
) -> Result<(Request<Body>, Option<String>), Refusal<'static>> {
    use crate::verify::grant::Rejected;
    let limit = state.config.saml.max_assertion_bytes.saturating_mul(2);
    match crate::verify::grant::read(req, limit, state.config.listen.body_read_timeout).await {
        Ok(read) => Ok(read),
        Err(Rejected::Body(e)) => Err(e.into()),
        Err(Rejected::Invalid) => Err(Refusal::InvalidTokenRequest),
    }
}

/// What a POST was decided on, to judge it again under another route.
struct Held<'a> {
    headers: &'a HeaderMap,
    credential: Credential<'a>,
    identity: Option<&'a Identity>,
}

/// A POST must pass the rule of every route it could become upstream (a `_method` override):
/// the most severe of their decisions wins (a refusal, then a report-only route's would-be
/// refusal), under that route's name. Each route judges with what it would have taken: its own
/// `issuers`, and for a portal route its own session.
fn strictest_target(
    state: &State,
    host: Option<&str>,
    path: &CanonicalPath,
    chosen: usize,
    decision: Decision,
    held: &Held<'_>,
) -> (usize, Decision) {
    let routes = &state.config.routes;
    let severity = |d: &Decision| if !d.forwards() { 2 } else { u8::from(d.outcome() != Outcome::Allow) };
    let mut worst = (chosen, decision);
    for target in state.routes.override_targets(routes, host, path, chosen) {
        if severity(&worst.1) == 2 {
            break;
        }
        let route = &routes[target];
        let credential = match route.channel {
            Channel::Portal => match crate::browser::portal::session(state, route, held.headers) {
                crate::browser::portal::RouteSession::Accepted(s) => {
                    Credential::Session { mfa: s.mfa, expires: UnixTime(s.exp) }
                }
                _ => Credential::None,
            },
            // A bearer or SAML credential, if this route takes its issuer.
            Channel::Api if routes[chosen].channel == Channel::Api => match held.identity {
                Some(id) if !takes_issuer(route, &id.issuer) => {
                    Credential::Invalid(InvalidReason::UnknownIssuer)
                }
                _ => held.credential,
            },
            Channel::Api => Credential::None,
        };
        let theirs = evaluate(&route.rule, credential, state.clock.unix());
        if severity(&theirs) > severity(&worst.1) {
            worst = (target, theirs);
        }
    }
    worst
}

enum Scheme {
    Bearer,
    Saml,
}

fn scheme(value: &[u8]) -> Option<(Scheme, &str)> {
    let text = std::str::from_utf8(value).ok()?;
    let (scheme, credential) = text.split_once(' ')?;
    let credential = credential.trim();
    if credential.is_empty() {
        return None;
    }
    if scheme.eq_ignore_ascii_case("bearer") {
        Some((Scheme::Bearer, credential))
    } else if scheme.eq_ignore_ascii_case("saml") {
        Some((Scheme::Saml, credential))
    } else {
        None
    }
}

/// The decision, who it names, and the credential it was made on.
pub struct Decided<'a> {
    /// The policy's decision.
    pub decision: Decision,
    /// Who the credential names, if the decision names anyone.
    pub identity: Option<&'a Identity>,
    /// `xms_cc` ∋ `cp1`.
    pub claims_capable: bool,
    /// What the policy was given.
    pub credential: Credential<'a>,
}

/// The policy's decision under `rule` on what was presented, with the settings of the issuer or
/// IdP that verified it.
pub fn decide<'a>(
    verifier: &'a Verifier,
    saml: &'a SamlVerifier,
    now: UnixTime,
    rule: &RouteRule,
    presented: &'a Presented,
) -> Decided<'a> {
    let (credential, identity, claims_capable) = match presented {
        Presented::Nothing
        | Presented::SamlNotAccepted
        | Presented::SamlBusy
        | Presented::OnceUnavailable => (Credential::None, None, false),
        Presented::Token(Verification::Invalid(why)) | Presented::Saml(Err(why)) => {
            (Credential::Invalid(*why), None, false)
        }
        Presented::Token(Verification::Unverifiable) => (Credential::Unverifiable, None, false),
        Presented::Token(Verification::Verified(v)) => match verifier.issuer_config(v.issuer_index) {
            Some(issuer) => (
                Credential::Token { facts: &v.facts, mfa: &issuer.mfa, leeway_secs: issuer.leeway_secs },
                Some(&v.identity),
                v.claims_capable,
            ),
            None => (Credential::Unverifiable, None, false),
        },
        Presented::Saml(Ok(v)) => match saml.idp(v.idp_index) {
            Some(idp) => (
                Credential::Saml { facts: &v.facts, mfa: &idp.mfa, leeway_secs: idp.leeway_secs },
                Some(&v.identity),
                false,
            ),
            None => (Credential::Unverifiable, None, false),
        },
    };
    let decision = evaluate(rule, credential, now);
    // An expired or unclassifiable credential names nobody.
    let identity = identity.filter(|_| decision.principal != Principal::Anonymous);
    Decided { decision, identity, claims_capable, credential }
}

fn fill(rec: &mut DecisionRecord, decision: &Decision, identity: Option<&Identity>) {
    rec.principal = decision.principal.as_str();
    rec.mfa = decision.mfa;
    rec.decision = decision.outcome().as_str();
    rec.enforced = decision.enforced;
    rec.reason = decision.reason.code();
    rec.detail = decision.reason.detail();
    rec.anomalies = decision.anomalies.iter().map(|a| a.code()).collect();
    if let Some(id) = identity {
        rec.issuer = Some(id.issuer.clone());
        rec.tenant_id = id.tenant_id.clone();
        rec.object_id = id.object_id.clone();
        rec.upn = id.upn.clone();
        rec.app_id = id.app_id.clone();
        rec.amr = id.amr.clone();
    }
}

/// What the forwarded request is built from.
struct Forwarding<'a> {
    route: &'a RouteConfig,
    peer: Peer,
    host: Option<&'a str>,
    path: &'a CanonicalPath,
    decision: &'a Decision,
    identity: Option<&'a Identity>,
    /// The gateway's id for the request, sent upstream in place of any the client sent.
    request_id: &'a str,
    /// The upstream call's span as `traceparent`, when traced (else the client's passes).
    traceparent: Option<&'a http::HeaderValue>,
}

fn upstream_request(state: &State, f: &Forwarding<'_>, req: Request<Body>) -> Option<Request<Body>> {
    let (mut parts, body) = req.into_parts();
    let original_host = parts
        .headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| parts.uri.authority().map(|a| a.to_string()))
        .or_else(|| f.host.map(str::to_owned));
    // What the upstream receives is exactly the path that was decided.
    parts.uri = forward::upstream_uri(&f.route.upstream, f.path.as_str(), parts.uri.query())?;
    // HTTP/2 from the client becomes HTTP/1.1 (or h2 by ALPN) to the upstream.
    parts.version = http::Version::HTTP_11;
    let h = &mut parts.headers;
    let chain = forward::forwarded_chain(h, state.config.listen.trust_forwarded_for);
    forward::strip_hop_by_hop(h);
    forward::strip_untrusted(h);
    forward::strip_own_cookies(h);
    h.remove(header::HOST);
    if f.route.strip_authorization {
        h.remove(header::AUTHORIZATION);
    }
    forward::set_identity(h, f.decision, f.identity);
    let client_ip = f.peer.addr.ip().to_string();
    forward::set_forwarded(h, chain.as_deref(), &client_ip, f.peer.scheme, original_host.as_deref());
    let id = http::HeaderValue::from_str(f.request_id).ok()?;
    h.insert(state.config.listen.request_id_header.clone(), id);
    if let Some(traceparent) = f.traceparent {
        h.insert(http::HeaderName::from_static("traceparent"), traceparent.clone());
    }
    Some(Request::from_parts(parts, body))
}

/// Joins the two sides of an upgrade until either closes or no byte moves either way for
/// `websocket_idle_timeout`. `_hold` keeps the client connection's slot under the caps, and the
/// tunnel's upstream slot.
/// What a WebSocket tunnel keeps of its generation (not the generation itself, so a replaced
/// one is let go).
struct Tunnel {
    idle: std::time::Duration,
    connections: Arc<crate::gate::connection::Connections>,
    /// Becomes true when a reload replaces the generation that allowed the tunnel: it closes,
    /// and the client's next upgrade is decided under the rules in force.
    retired: tokio::sync::watch::Receiver<bool>,
}

async fn tunnel(
    client: hyper::upgrade::OnUpgrade,
    upstream: hyper::upgrade::OnUpgrade,
    mut state: Tunnel,
    _hold: (Option<crate::gate::connection::Hold>, impl Send),
) {
    use crate::gate::connection::activity::{LastRead, Metered, until_idle};
    let (Ok(client), Ok(upstream)) = tokio::join!(client, upstream) else {
        return;
    };
    let last = LastRead::new();
    let mut client = Metered::new(hyper_util::rt::TokioIo::new(client), last.clone());
    // Bytes either way count: a browser tab that only listens sends nothing (browsers send no
    // pings of their own), and must keep its tunnel.
    let mut upstream = Metered::new(hyper_util::rt::TokioIo::new(upstream), last.clone());
    let copy = tokio::io::copy_bidirectional(&mut client, &mut upstream);
    tokio::select! {
        done = until_idle(copy, &last, state.idle) => if done.is_none() {
            state.connections.counters.closed(crate::gate::connection::counters::Closed::WebsocketIdle);
        },
        () = retired(&mut state.retired) => {
            tracing::info!("WebSocket tunnel closed: the configuration that allowed it was reloaded");
        }
    }
}

/// Resolves when the generation is retired (never if it is dropped without being replaced).
async fn retired(signal: &mut tokio::sync::watch::Receiver<bool>) {
    if signal.wait_for(|retired| *retired).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// A request whose record is not written yet: written with the final status, or with 499 if
/// the client goes away first (hyper drops the request's future then).
struct Pending<'a> {
    state: &'a State,
    rec: DecisionRecord,
    labels: Labels,
    start: Instant,
    written: bool,
    span: Option<RequestSpan>,
}

impl<'a> Pending<'a> {
    fn new(state: &'a State, rec: DecisionRecord, start: Instant) -> Pending<'a> {
        let labels = Labels::undecided();
        // What a record says if the client leaves before anything is decided.
        let rec = DecisionRecord {
            decision: Outcome::Deny.as_str(),
            reason: "client_closed_request",
            enforced: true,
            ..rec
        };
        Pending { state, rec, labels, start, written: false, span: None }
    }

    fn take(&mut self, status: u16) -> Option<DecisionRecord> {
        if std::mem::replace(&mut self.written, true) {
            return None;
        }
        let mut rec = std::mem::take(&mut self.rec);
        rec.status = status;
        rec.latency_us = self.start.elapsed().as_micros() as u64;
        self.state.metrics.observe(&self.labels, &rec);
        if let Some(span) = self.span.take() {
            span.end(&rec, self.labels.route.and_then(|i| self.state.config.routes.get(i)));
        }
        Some(rec)
    }

    async fn finish(&mut self, status: u16) {
        // Cancelled while waiting for room (the client left): the record stays, for `drop`.
        let slot = self.state.log.reserve().await;
        match (self.take(status), slot) {
            (Some(rec), Some(slot)) => slot.send(rec),
            (Some(_), None) => tracing::error!("Decision log is closed; a record was not written"),
            (None, _) => {}
        }
    }

    /// Answers with a refusal that is the decision: anything but the policy's own refusal is
    /// recorded as a denial with the refusal's reason.
    async fn refuse(&mut self, refusal: Refusal<'_>) -> Response<Body> {
        if !matches!(refusal, Refusal::Policy { .. }) {
            self.labels.outcome = Outcome::Deny;
            self.rec.decision = Outcome::Deny.as_str();
            self.rec.reason = refusal.code();
            self.rec.enforced = true;
        }
        self.answer(refusal).await
    }

    /// Answers with a refusal after the decision to forward (upstream failures): the policy's
    /// reason stays, the failure goes in `error`.
    async fn fail(&mut self, refusal: Refusal<'_>) -> Response<Body> {
        self.rec.error = Some(refusal.code());
        self.answer(refusal).await
    }

    async fn answer(&mut self, refusal: Refusal<'_>) -> Response<Body> {
        let request_id = self.rec.request_id.clone();
        self.finish(status(&refusal).as_u16()).await;
        refuse(&refusal, &request_id)
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        // 499: the client closed the request before the response head (nginx's convention).
        if let Some(rec) = self.take(499) {
            self.state.log.record_detached(rec);
        }
    }
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let v = headers.get(name)?.to_str().ok()?.trim();
    // Ids are echoed into logs: keep them short and printable.
    (!v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic())).then_some(v)
}

#[derive(Clone, Copy)]
enum SignInEndpoint {
    Acs,
    Metadata,
    OidcCallback,
}

fn sign_in_endpoint_of(state: &State, method: &http::Method, path: &str) -> Option<SignInEndpoint> {
    if method == http::Method::POST && state.config.saml.acs_url.as_ref().is_some_and(|u| u.path() == path) {
        return Some(SignInEndpoint::Acs);
    }
    if method == http::Method::GET && state.config.oidc_callback.as_ref().is_some_and(|u| u.path() == path) {
        return Some(SignInEndpoint::OidcCallback);
    }
    (method == http::Method::GET && path == crate::browser::portal::METADATA_PATH && !state.saml.is_empty())
        .then_some(SignInEndpoint::Metadata)
}

/// The sign-in endpoints: the SAML ACS (POST), the SP metadata (GET), the OIDC callback (GET).
async fn sign_in_endpoint(
    state: &State,
    endpoint: SignInEndpoint,
    req: Request<Incoming>,
    guard: &mut Pending<'_>,
) -> Response<Body> {
    guard.labels.portal = true;
    let rec = &mut guard.rec;
    let rsp = match endpoint {
        SignInEndpoint::Acs => crate::browser::portal::acs(state, req, rec).await,
        SignInEndpoint::OidcCallback => crate::browser::portal::oidc_callback(state, &req, rec).await,
        SignInEndpoint::Metadata => {
            rec.operation = format!("GET {}", rec.path);
            rec.decision = Outcome::Allow.as_str();
            rec.reason = "public_route";
            rec.status = 200;
            crate::browser::portal::metadata(state)
        }
    };
    guard.labels.principal = if rec.principal == "user" { Principal::User } else { Principal::Anonymous };
    guard.labels.mfa = rec.mfa;
    guard.labels.outcome = if rec.decision == "allow" { Outcome::Allow } else { Outcome::Deny };
    let status = rec.status;
    guard.finish(status).await;
    rsp
}

/// A browser route's refusal: a 401 for scripts, else a sign-in redirect (asking for MFA when
/// the session lacks it), or the loop guard's 403 page.
async fn portal_refusal(
    state: &State,
    route: &RouteConfig,
    headers: &HeaderMap,
    return_to: &str,
    guard: &mut Pending<'_>,
    decision: &Decision,
) -> Response<Body> {
    if decision.reason == Reason::NoToken && guard.rec.reason == Reason::NoToken.code() {
        guard.rec.reason = Refusal::SignIn.code();
    }
    if crate::browser::portal::wants_api_answer(headers) {
        return guard.answer(Refusal::LoginRequired).await;
    }
    let ask_mfa = matches!(decision.reason, Reason::MfaRequired(_));
    let (refusal, rsp) = match crate::browser::portal::sign_in(state, route, headers, return_to, ask_mfa) {
        Some(crate::browser::portal::SignIn::Redirect { location, set_cookie }) => {
            (Refusal::SignIn, crate::browser::portal::redirect(&location, &[set_cookie]))
        }
        Some(crate::browser::portal::SignIn::GiveUp) => {
            guard.rec.reason = Refusal::MfaLoopGuard.code();
            (Refusal::MfaLoopGuard, crate::browser::portal::give_up_page(state, route))
        }
        None => return guard.answer(Refusal::LoginRequired).await,
    };
    guard.finish(status(&refusal).as_u16()).await;
    rsp
}
