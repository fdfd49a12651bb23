//! The request path, in one place and in order: route, credential, verify, decide, record,
//! then refuse or forward.

use crate::body::Body;
use crate::clock::rfc3339_millis;
use crate::config::{Channel, OnLogFailure, RouteConfig};
use crate::decision_log::DecisionRecord;
use crate::forward;
use crate::jwt::{Identity, Verification};
use crate::metrics::Labels;
use crate::respond::{Refusal, refuse, status};
use crate::saml::SamlVerified;
use crate::state::State;
use http::{HeaderMap, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use mfagate_policy::{
    AuthRequirement, Credential, Decision, InvalidReason, Outcome, Principal, Reason, RouteRule, UnixTime,
    evaluate,
};
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
    let headers = req.headers();
    let mut rec = DecisionRecord {
        ts: rfc3339_millis(state.clock.now_millis()),
        request_id: header_text(headers, "ms-requestid").map_or_else(crate::ids::request_id, str::to_owned),
        correlation_id: header_text(headers, "ms-correlationid").map(str::to_owned),
        channel: "api",
        method: req.method().as_str().to_owned(),
        path: req.uri().path().to_owned(),
        source_ip: source_ip(headers, peer.addr, state.config.listen.trust_forwarded_for),
        principal: Principal::Anonymous.as_str(),
        ..DecisionRecord::default()
    };
    if let Some(endpoint) = sign_in_endpoint_of(&state, &req) {
        return Ok(sign_in_endpoint(&state, endpoint, req, rec, start).await);
    }
    let req = req.map(BodyExt::boxed);
    let headers = req.headers();
    let host = crate::routes::request_host(req.uri(), headers);
    let routes = &state.config.routes;
    let Some(index) = state.routes.find(routes, host.as_deref(), req.method(), req.uri().path()) else {
        rec.operation = format!("{} {}", rec.method, rec.path);
        return Ok(state.refuse_now(rec, Refusal::NoRoute, None, start).await);
    };
    let route = &routes[index];
    rec.route = Some(route.name.clone());
    rec.operation = format!("{} {}", rec.method, route.path_prefix);
    let (mut req, grant) = match &route.grant_audience {
        Some(audience) => match read_token_request(&state, req).await {
            Ok((req, assertion)) => (req, assertion.map(|a| (a, audience.clone()))),
            Err(refusal) => return Ok(state.refuse_now(rec, refusal, None, start).await),
        },
        None => (req, None),
    };
    let from_grant = grant.is_some();

    let session_identity: Option<Identity>;
    let presented;
    let Decided { decision, identity, claims_capable } = if route.channel == Channel::Portal {
        rec.channel = "portal";
        let session = crate::portal::session(&state, req.headers());
        session_identity = session.as_ref().map(crate::portal::identity);
        let credential = session
            .as_ref()
            .map_or(Credential::None, |s| Credential::Session { mfa: s.mfa, expires: UnixTime(s.exp) });
        let decision = evaluate(&route.rule, credential, state.clock.unix());
        let identity = session_identity.as_ref().filter(|_| decision.principal != Principal::Anonymous);
        Decided { decision, identity, claims_capable: false }
    } else {
        presented = match grant {
            Some((assertion, audience)) => {
                saml_assertion(&state, route, &assertion, crate::saml::Use::Grant(audience)).await
            }
            None => credential(&state, route, req.headers()).await,
        };
        // A grant is a credential whatever the route says about other requests: a token
        // endpoint is often `auth = "none"` so that its other grants reach it.
        let rule =
            if from_grant { RouteRule { auth: AuthRequirement::Required, ..route.rule } } else { route.rule };
        decide(&state, &rule, &presented)
    };
    fill(&mut rec, &decision, identity);
    let labels = Labels {
        route: Some(index),
        portal: route.channel == Channel::Portal,
        principal: decision.principal,
        mfa: decision.mfa,
        outcome: decision.outcome(),
    };

    if !state.log.is_healthy() && state.config.decision_log.on_failure == OnLogFailure::Closed {
        return Ok(state.refuse_now(rec, Refusal::LogUnavailable, Some(labels), start).await);
    }
    if !decision.forwards() && route.channel == Channel::Portal {
        return Ok(
            portal_refusal(&state, route, req.headers(), req.uri(), rec, labels, &decision, start).await
        );
    }
    if !decision.forwards() {
        let refusal = if from_grant {
            Refusal::InvalidGrant { reason: decision.reason }
        } else {
            Refusal::Policy { reason: decision.reason, challenge: &route.challenge, claims_capable }
        };
        return Ok(state.refuse_now(rec, refusal, Some(labels), start).await);
    }

    // From here the request is forwarded. The guard writes the record even if the client leaves.
    let mut guard = Pending { state: &state, rec: Some(rec), labels, start };
    let client_upgrade = forward::is_upgrade(req.headers()).then(|| hyper::upgrade::on(&mut req));
    let hold = req.extensions_mut().remove::<crate::connection::Hold>();
    let Some(upstream_req) = upstream_request(&state, route, peer, host.as_deref(), &decision, identity, req)
    else {
        return Ok(guard.fail(Refusal::UpstreamFailed).await);
    };
    let sent = tokio::time::timeout(route.upstream_timeout, state.client.request(upstream_req)).await;
    let mut rsp = match sent {
        Err(_) => return Ok(guard.fail(Refusal::UpstreamTimeout).await),
        Ok(Err(e)) => {
            tracing::warn!(route = %route.name, error = %e, "Upstream request failed");
            return Ok(guard.fail(Refusal::UpstreamFailed).await);
        }
        Ok(Ok(rsp)) => rsp,
    };
    if rsp.status() == StatusCode::SWITCHING_PROTOCOLS {
        if let Some(client_upgrade) = client_upgrade {
            let upstream_upgrade = hyper::upgrade::on(&mut rsp);
            tokio::spawn(tunnel(client_upgrade, upstream_upgrade, state.clone(), hold));
        }
    } else {
        forward::strip_hop_by_hop(rsp.headers_mut());
    }
    let status = rsp.status().as_u16();
    guard.finish(status).await;
    Ok(rsp.map(|b| b.boxed()))
}

/// What the request presented.
enum Presented {
    /// No credential.
    Nothing,
    /// A bearer token, and what verification made of it.
    Token(Verification),
    /// A SAML assertion (`Authorization: SAML <base64>`), and what verification made of it.
    Saml(Result<Arc<SamlVerified>, InvalidReason>),
}

async fn credential(state: &State, route: &RouteConfig, headers: &HeaderMap) -> Presented {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let value = match (values.next(), values.next()) {
        (None, _) => return Presented::Nothing,
        (Some(_), Some(_)) => return Presented::Token(Verification::Invalid(InvalidReason::Malformed)),
        (Some(value), None) => value,
    };
    let allowed = |issuer: &str| route.issuers.is_empty() || route.issuers.iter().any(|i| i == issuer);
    match scheme(value.as_bytes()) {
        Some((Scheme::Bearer, token)) => {
            if token.len() > state.config.listen.max_token_bytes {
                return Presented::Token(Verification::Invalid(InvalidReason::TooLarge));
            }
            match state.verifier.verify(token, &state.cache_counters).await {
                Verification::Verified(v) if !allowed(&v.identity.issuer) => {
                    Presented::Token(Verification::Invalid(InvalidReason::UnknownIssuer))
                }
                verification => Presented::Token(verification),
            }
        }
        Some((Scheme::Saml, assertion)) if !state.saml.is_empty() => {
            saml_assertion(state, route, assertion, crate::saml::Use::Api).await
        }
        // Another scheme (Basic, ...) carries no credential we accept (RFC 6750 §3).
        _ => Presented::Nothing,
    }
}

/// A SAML assertion as the credential, from the route's trusted IdPs.
async fn saml_assertion(
    state: &State,
    route: &RouteConfig,
    encoded: &str,
    how: crate::saml::Use,
) -> Presented {
    match state.saml.verify_base64_off_worker(encoded, how).await {
        Ok(v) if !route.issuers.is_empty() && !route.issuers.contains(&v.identity.issuer) => {
            Presented::Saml(Err(InvalidReason::UnknownIssuer))
        }
        result => Presented::Saml(result),
    }
}

/// Reads a token-endpoint request (bounded in size and time): its SAML grant's assertion, if it
/// makes one, or the refusal for a request the token endpoint could read differently.
async fn read_token_request(
    state: &State,
    req: Request<Body>,
) -> Result<(Request<Body>, Option<String>), Refusal<'static>> {
    use crate::grant::Rejected;
    let limit = state.config.saml.max_assertion_bytes.saturating_mul(2);
    match crate::grant::read(req, limit, state.config.listen.body_read_timeout).await {
        Ok(read) => Ok(read),
        Err(Rejected::Body(e)) => Err(e.refusal()),
        Err(Rejected::Invalid) => Err(Refusal::InvalidTokenRequest),
    }
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

/// The decision, and who it names.
struct Decided<'a> {
    decision: Decision,
    identity: Option<&'a Identity>,
    claims_capable: bool,
}

fn decide<'a>(state: &State, rule: &RouteRule, presented: &'a Presented) -> Decided<'a> {
    let now = state.clock.unix();
    let (credential, identity, claims_capable) = match presented {
        Presented::Nothing => (Credential::None, None, false),
        Presented::Token(Verification::Invalid(why)) | Presented::Saml(Err(why)) => {
            (Credential::Invalid(*why), None, false)
        }
        Presented::Token(Verification::Unverifiable) => (Credential::Unverifiable, None, false),
        Presented::Token(Verification::Verified(v)) => match state.verifier.issuer_config(v.issuer_index) {
            Some(issuer) => (
                Credential::Token { facts: &v.facts, mfa: &issuer.mfa, leeway_secs: issuer.leeway_secs },
                Some(&v.identity),
                v.claims_capable,
            ),
            None => (Credential::Unverifiable, None, false),
        },
        Presented::Saml(Ok(v)) => match state.saml.idp(v.idp_index) {
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
    Decided { decision, identity, claims_capable }
}

fn fill(rec: &mut DecisionRecord, decision: &Decision, identity: Option<&Identity>) {
    rec.principal = decision.principal.as_str();
    rec.mfa = decision.mfa;
    rec.decision = decision.outcome().as_str();
    rec.enforced = decision.enforced;
    rec.reason = decision.reason.code();
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

fn upstream_request(
    state: &State,
    route: &RouteConfig,
    peer: Peer,
    host: Option<&str>,
    decision: &Decision,
    identity: Option<&Identity>,
    req: Request<Body>,
) -> Option<Request<Body>> {
    let (mut parts, body) = req.into_parts();
    let original_host = parts
        .headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| parts.uri.authority().map(|a| a.to_string()))
        .or_else(|| host.map(str::to_owned));
    parts.uri = forward::upstream_uri(&route.upstream, &parts.uri)?;
    // HTTP/2 from the client becomes HTTP/1.1 (or h2 by ALPN) to the upstream.
    parts.version = http::Version::HTTP_11;
    let h = &mut parts.headers;
    forward::strip_hop_by_hop(h);
    forward::strip_identity(h);
    forward::strip_own_cookies(h);
    h.remove(header::HOST);
    if route.strip_authorization {
        h.remove(header::AUTHORIZATION);
    }
    forward::set_identity(h, decision, identity);
    let client_ip = peer.addr.ip().to_string();
    forward::set_forwarded(
        h,
        &client_ip,
        peer.scheme,
        original_host.as_deref(),
        state.config.listen.trust_forwarded_for,
    );
    Some(Request::from_parts(parts, body))
}

/// Joins the two sides of an upgrade until either closes or neither sends a byte for
/// `websocket_idle_timeout`. `_hold` keeps the client connection's slot under the caps.
async fn tunnel(
    client: hyper::upgrade::OnUpgrade,
    upstream: hyper::upgrade::OnUpgrade,
    state: Arc<State>,
    _hold: Option<crate::connection::Hold>,
) {
    use crate::connection::activity::{LastRead, Metered, until_idle};
    let (Ok(client), Ok(upstream)) = tokio::join!(client, upstream) else {
        return;
    };
    let last = LastRead::new();
    let mut client = Metered::new(hyper_util::rt::TokioIo::new(client), last.clone());
    let mut upstream = Metered::new(hyper_util::rt::TokioIo::new(upstream), last.clone());
    let copy = tokio::io::copy_bidirectional(&mut client, &mut upstream);
    if until_idle(copy, &last, state.config.listen.websocket_idle_timeout).await.is_none() {
        state.connections.counters.closed(crate::connection::counters::Closed::WebsocketIdle);
    }
}

/// A decision whose record is not written yet: written with the final status, or with 499 if
/// the client goes away first.
struct Pending<'a> {
    state: &'a State,
    rec: Option<DecisionRecord>,
    labels: Labels,
    start: Instant,
}

impl Pending<'_> {
    async fn finish(&mut self, status: u16) {
        if let Some(mut rec) = self.rec.take() {
            rec.status = status;
            rec.latency_us = self.start.elapsed().as_micros() as u64;
            self.state.metrics.observe(&self.labels, rec.latency_us);
            self.state.log.record(rec).await;
        }
    }

    /// Answers with a refusal after the decision to forward (upstream failures): the policy's
    /// reason stays, the failure goes in `error`.
    async fn fail(&mut self, refusal: Refusal<'_>) -> Response<Body> {
        if let Some(rec) = self.rec.as_mut() {
            rec.error = Some(refusal.code());
        }
        self.refuse(refusal).await
    }

    async fn refuse(&mut self, refusal: Refusal<'_>) -> Response<Body> {
        let request_id = self.rec.as_ref().map(|r| r.request_id.clone()).unwrap_or_default();
        self.finish(status(&refusal).as_u16()).await;
        refuse(&refusal, &request_id)
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if let Some(mut rec) = self.rec.take() {
            // 499: the client closed the request before the response head (nginx's convention).
            rec.status = 499;
            rec.latency_us = self.start.elapsed().as_micros() as u64;
            self.state.metrics.observe(&self.labels, rec.latency_us);
            self.state.log.record_detached(rec);
        }
    }
}

impl State {
    /// Answers a refusal now, recording it first.
    async fn refuse_now(
        &self,
        rec: DecisionRecord,
        refusal: Refusal<'_>,
        labels: Option<Labels>,
        start: Instant,
    ) -> Response<Body> {
        let labels = labels.unwrap_or(Labels {
            route: None,
            portal: false,
            principal: Principal::Anonymous,
            mfa: None,
            outcome: Outcome::Deny,
        });
        let mut rec = rec;
        if !matches!(refusal, Refusal::Policy { .. }) {
            rec.decision = Outcome::Deny.as_str();
            rec.reason = refusal.code();
            rec.enforced = true;
        }
        let mut pending = Pending { state: self, rec: Some(rec), labels, start };
        pending.refuse(refusal).await
    }
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let v = headers.get(name)?.to_str().ok()?.trim();
    // Ids are echoed into logs: keep them short and printable.
    (!v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic())).then_some(v)
}

fn source_ip(headers: &HeaderMap, peer: SocketAddr, trust_forwarded_for: bool) -> String {
    if trust_forwarded_for {
        let last = headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .map(str::trim)
            .filter(|ip| ip.parse::<std::net::IpAddr>().is_ok());
        if let Some(ip) = last {
            return ip.to_owned();
        }
    }
    peer.ip().to_string()
}

#[derive(Clone, Copy)]
enum SignInEndpoint {
    Acs,
    Metadata,
    OidcCallback,
}

fn sign_in_endpoint_of(state: &State, req: &Request<Incoming>) -> Option<SignInEndpoint> {
    let path = req.uri().path();
    if req.method() == http::Method::POST
        && state.config.saml.acs_url.as_ref().is_some_and(|u| u.path() == path)
    {
        return Some(SignInEndpoint::Acs);
    }
    if req.method() == http::Method::GET
        && state.config.oidc_callback.as_ref().is_some_and(|u| u.path() == path)
    {
        return Some(SignInEndpoint::OidcCallback);
    }
    (req.method() == http::Method::GET && path == crate::portal::METADATA_PATH && !state.saml.is_empty())
        .then_some(SignInEndpoint::Metadata)
}

/// The sign-in endpoints: the SAML ACS (POST), the SP metadata (GET), the OIDC callback (GET).
async fn sign_in_endpoint(
    state: &State,
    endpoint: SignInEndpoint,
    req: Request<Incoming>,
    mut rec: DecisionRecord,
    start: Instant,
) -> Response<Body> {
    let rsp = match endpoint {
        SignInEndpoint::Acs => crate::portal::acs(state, req, &mut rec).await,
        SignInEndpoint::OidcCallback => crate::portal::oidc_callback(state, &req, &mut rec).await,
        SignInEndpoint::Metadata => {
            rec.operation = format!("GET {}", rec.path);
            rec.decision = Outcome::Allow.as_str();
            rec.reason = "public_route";
            rec.status = 200;
            crate::portal::metadata(state)
        }
    };
    let labels = Labels {
        route: None,
        portal: true,
        principal: if rec.principal == "user" { Principal::User } else { Principal::Anonymous },
        mfa: rec.mfa,
        outcome: if rec.decision == "allow" { Outcome::Allow } else { Outcome::Deny },
    };
    let status = rec.status;
    let mut pending = Pending { state, rec: Some(rec), labels, start };
    pending.finish(status).await;
    rsp
}

/// A browser route's refusal: a 401 for scripts, else a sign-in redirect (asking for MFA when
/// the session lacks it), or the loop guard's 403 page.
#[allow(clippy::too_many_arguments)]
async fn portal_refusal(
    state: &State,
    route: &RouteConfig,
    headers: &HeaderMap,
    uri: &http::Uri,
    mut rec: DecisionRecord,
    labels: Labels,
    decision: &Decision,
    start: Instant,
) -> Response<Body> {
    if decision.reason == Reason::NoToken {
        rec.reason = Refusal::SignIn.code();
    }
    if crate::portal::wants_api_answer(headers) {
        let mut pending = Pending { state, rec: Some(rec), labels, start };
        return pending.refuse(Refusal::LoginRequired).await;
    }
    let return_to = uri.path_and_query().map_or("/", |pq| pq.as_str());
    let ask_mfa = matches!(decision.reason, Reason::MfaRequired(_));
    let (refusal, rsp) = match crate::portal::sign_in(state, route, headers, return_to, ask_mfa) {
        Some(crate::portal::SignIn::Redirect { location, set_cookie }) => {
            (Refusal::SignIn, crate::portal::redirect(&location, &[set_cookie]))
        }
        Some(crate::portal::SignIn::GiveUp) => {
            rec.reason = Refusal::MfaLoopGuard.code();
            (Refusal::MfaLoopGuard, crate::portal::give_up_page(route.login.as_deref().unwrap_or_default()))
        }
        None => {
            let mut pending = Pending { state, rec: Some(rec), labels, start };
            return pending.refuse(Refusal::LoginRequired).await;
        }
    };
    let mut pending = Pending { state, rec: Some(rec), labels, start };
    pending.finish(status(&refusal).as_u16()).await;
    rsp
}
