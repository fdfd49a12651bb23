//! Browser routes (the report's "portal" channel): SAML SP-initiated sign-in over the
//! HTTP-Redirect binding, the ACS (HTTP-POST binding), a sealed session cookie, MFA re-prompts
//! with a loop guard, and the SP metadata.

use crate::body::{Body, full};
use crate::browser::oidc;
use crate::browser::session::{Cookies, LoginState, Return, Session, cookie, idp_fingerprint};
use crate::clock::rfc3339_millis;
use crate::config::RouteConfig;
use crate::evidence::record::DecisionRecord;
use crate::markup::escape;
use crate::state::State;
use crate::verify::jwt::Identity;
use crate::verify::saml::{NS_ASSERTION, NS_PROTOCOL, Unverified, Use};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use mfagate_policy::{
    MULTIPLE_AUTHN, MfaOutcome, Reprompt, UnixTime, evaluate_mfa, evaluate_saml_mfa, reprompt, time_window,
};
use std::io::Write;

/// Path of the SP metadata document.
pub const METADATA_PATH: &str = "/_mfagate/saml/metadata";
/// How long a sign-in may take before its state expires.
const LOGIN_STATE_SECS: u64 = 600;

/// The form field that marks the ACS's own re-post of a Response (see [`acs`]).
const RESUBMITTED: &str = "mfagate_resubmitted";

/// The gateway's cookie names and attributes.
fn cookies(state: &State) -> Cookies {
    Cookies::new(state.config.session.secure)
}

/// The browser session a request carries, as a route sees it.
#[derive(Debug)]
pub enum RouteSession {
    /// No session cookie, or one we did not seal (expired sessions are the policy's to judge).
    None,
    /// A session from an identity provider this route does not take: no session here, and the
    /// user signs in again at the route's own `login`.
    OtherIdp,
    /// A session this route takes.
    Accepted(Session),
}

/// The session a browser request carries for `route`.
pub fn session(state: &State, route: &RouteConfig, headers: &HeaderMap) -> RouteSession {
    let name = cookies(state).session();
    match cookie(headers, name).and_then(|c| state.sealer.open::<Session>(name, c)) {
        None => RouteSession::None,
        Some(s) if accepts(route, &s.idp) && s.idp_fingerprint == idp_fingerprint(&state.config, &s.idp) => {
            RouteSession::Accepted(s)
        }
        Some(_) => RouteSession::OtherIdp,
    }
}

/// Whether a portal route takes sessions from the IdP or issuer named `idp`: one of its
/// `issuers` if it lists any, else its `login`. A sign-in elsewhere says nothing about who may
/// use this application.
pub fn accepts(route: &RouteConfig, idp: &str) -> bool {
    if route.issuers.is_empty() {
        route.login.as_deref() == Some(idp)
    } else {
        route.issuers.iter().any(|i| i == idp)
    }
}

/// Who a session names, for identity headers and the decision log.
pub fn identity(s: &Session) -> Identity {
    Identity {
        issuer: s.idp.clone(),
        tenant_id: s.tid.clone(),
        object_id: Some(s.sub.clone()),
        upn: s.upn.clone(),
        app_id: None,
        amr: Vec::new(),
    }
}

/// Whether a request wants data rather than a page: it gets a 401, not a redirect.
pub fn wants_api_answer(headers: &HeaderMap) -> bool {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
    headers.get("x-requested-with").is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"xmlhttprequest"))
        || (accept.contains("application/json") && !accept.contains("text/html"))
}

/// What to answer a browser that must (re)authenticate.
pub enum SignIn {
    /// 302 to the IdP; the Set-Cookie carries the sign-in state.
    Redirect {
        /// The IdP URL with the AuthnRequest.
        location: String,
        /// The sealed sign-in state.
        set_cookie: String,
    },
    /// The loop guard stopped re-prompting.
    GiveUp,
}

/// Starts a sign-in at the route's `login` (a SAML IdP or an OIDC issuer). `ask_mfa` asks for
/// MFA (SAML: ForceAuthn and `multipleauthn`; OIDC: `prompt=login`, `amr_values=mfa`) and counts
/// an attempt for the loop guard.
pub fn sign_in(
    state: &State,
    route: &RouteConfig,
    headers: &HeaderMap,
    return_to: &str,
    ask_mfa: bool,
) -> Option<SignIn> {
    let login_name = route.login.as_deref()?;
    let now = state.clock.unix();
    let previous: LoginState = login_state(state, headers).unwrap_or_default();
    let cfg = &state.config.session;
    let (attempts, window_start) = if ask_mfa {
        match reprompt(
            previous.attempts,
            UnixTime(previous.window_start),
            cfg.max_sign_in_attempts,
            cfg.attempt_window_secs,
            now,
        ) {
            Reprompt::GiveUp => return Some(SignIn::GiveUp),
            Reprompt::SignInAgain { attempts, window_start } => (attempts, window_start.0),
        }
    } else {
        (previous.attempts, previous.window_start)
    };
    let mut login = LoginState {
        request_id: format!("_r{}", crate::ids::random_token()?),
        relay: crate::ids::random_token()?,
        return_to: return_to.to_owned(),
        attempts,
        window_start,
        exp: now.0 + LOGIN_STATE_SECS,
        idp: login_name.to_owned(),
        nonce: String::new(),
        verifier: String::new(),
    };
    let (location, back) = if state.saml.idp_named(login_name).is_some() {
        // None until the IdP's metadata is fetched: readiness waits for it.
        (
            saml_location(state, &state.saml.sso_url(login_name)?, &login, now.0, ask_mfa)?,
            Return::CrossSitePost,
        )
    } else {
        login.nonce = crate::ids::random_token()?;
        login.verifier = format!("{}{}", crate::ids::random_token()?, crate::ids::random_token()?);
        (oidc_location(state, login_name, &login, ask_mfa)?, Return::TopLevelGet)
    };
    let cookies = cookies(state);
    let sealed = state.sealer.seal(cookies.login(), &login)?;
    let set_cookie = cookies.set_login(&sealed, LOGIN_STATE_SECS, back);
    Some(SignIn::Redirect { location, set_cookie })
}

/// The sign-in state the request carries, if we sealed it.
fn login_state(state: &State, headers: &HeaderMap) -> Option<LoginState> {
    let name = cookies(state).login();
    state.sealer.open(name, cookie(headers, name)?)
}

fn with_query(base: &str, pairs: &[(&str, &str)]) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        q.append_pair(k, v);
    }
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}{}", q.finish())
}

fn saml_location(state: &State, sso: &str, login: &LoginState, now: u64, ask_mfa: bool) -> Option<String> {
    let acs = state.config.saml.acs_url.as_ref()?.to_string();
    let request = authn_request(&login.request_id, &state.config.saml.entity_id, sso, &acs, now, ask_mfa);
    let encoded = deflate_base64(&request)?;
    let Some(signing) = &state.config.saml.signing else {
        return Some(with_query(sso, &[("SAMLRequest", &encoded), ("RelayState", &login.relay)]));
    };
    // HTTP-Redirect binding signature (SAML bindings 3.4.4.1): over the encoded query, in order.
    const RSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";
    let signed_part = form_urlencoded::Serializer::new(String::new())
        .append_pair("SAMLRequest", &encoded)
        .append_pair("RelayState", &login.relay)
        .append_pair("SigAlg", RSA_SHA256)
        .finish();
    let key = aws_lc_rs::signature::RsaKeyPair::from_pkcs8(&signing.key_pkcs8).ok()?;
    let mut signature = vec![0u8; key.public_modulus_len()];
    let rng = aws_lc_rs::rand::SystemRandom::new();
    key.sign(&aws_lc_rs::signature::RSA_PKCS1_SHA256, &rng, signed_part.as_bytes(), &mut signature).ok()?;
    let b64 = base64::engine::general_purpose::STANDARD.encode(signature);
    let tail = form_urlencoded::Serializer::new(String::new()).append_pair("Signature", &b64).finish();
    let sep = if sso.contains('?') { '&' } else { '?' };
    Some(format!("{sso}{sep}{signed_part}&{tail}"))
}

fn oidc_location(state: &State, issuer: &str, login: &LoginState, ask_mfa: bool) -> Option<String> {
    let (_, cfg, keys) = state.verifier.issuer_named(issuer)?;
    let client = cfg.client.as_ref()?;
    let authorize =
        client.authorization_endpoint.clone().or_else(|| keys.discovered_endpoints().map(|e| e.0))?;
    let callback = state.config.oidc_callback.as_ref()?.to_string();
    let challenge = URL_SAFE_NO_PAD.encode(crate::verify::jwt::sha256(login.verifier.as_bytes()));
    let mut pairs = vec![
        ("response_type", "code"),
        ("client_id", client.client_id.as_str()),
        ("redirect_uri", callback.as_str()),
        ("scope", "openid profile"),
        ("response_mode", "query"),
        ("state", login.relay.as_str()),
        ("nonce", login.nonce.as_str()),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    // v2 endpoints ignore amr_values: ask for a configured MFA auth context through `claims`.
    let claims =
        cfg.mfa.mfa_acrs.first().map(|acr| {
            serde_json::json!({"id_token": {"acrs": {"essential": true, "value": acr}}}).to_string()
        });
    if ask_mfa {
        pairs.push(("prompt", "login"));
        if client.amr_values {
            pairs.push(("amr_values", "mfa"));
        } else if let Some(claims) = &claims {
            pairs.push(("claims", claims.as_str()));
        }
    }
    Some(with_query(&authorize, &pairs))
}

fn authn_request(id: &str, sp: &str, destination: &str, acs: &str, now: u64, ask_mfa: bool) -> String {
    let (force, context) = if ask_mfa {
        (
            r#" ForceAuthn="true""#,
            format!(
                r#"<samlp:RequestedAuthnContext Comparison="exact"><saml:AuthnContextClassRef>{MULTIPLE_AUTHN}</saml:AuthnContextClassRef></samlp:RequestedAuthnContext>"#
            ),
        )
    } else {
        ("", String::new())
    };
    format!(
        r#"<samlp:AuthnRequest xmlns:samlp="{NS_PROTOCOL}" xmlns:saml="{NS_ASSERTION}" ID="{id}" Version="2.0" IssueInstant="{instant}" Destination="{destination}" AssertionConsumerServiceURL="{acs}" ProtocolBinding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"{force}><saml:Issuer>{sp}</saml:Issuer>{context}</samlp:AuthnRequest>"#,
        instant = rfc3339_millis(now * 1000),
        destination = escape(destination),
        acs = escape(acs),
        sp = escape(sp),
    )
}

/// DEFLATE then base64: the HTTP-Redirect binding's encoding.
pub fn deflate_base64(xml: &str) -> Option<String> {
    let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(xml.as_bytes()).ok()?;
    Some(base64::engine::general_purpose::STANDARD.encode(enc.finish().ok()?))
}

/// base64 then INFLATE, bounded: a deflate bomb stops at `limit` bytes.
pub fn inflate_base64(encoded: &str, limit: u64) -> Option<String> {
    use std::io::Read;
    let raw = base64::engine::general_purpose::STANDARD.decode(encoded).ok()?;
    let mut out = String::new();
    flate2::read::DeflateDecoder::new(raw.as_slice()).take(limit + 1).read_to_string(&mut out).ok()?;
    (out.len() as u64 <= limit).then_some(out)
}

/// The 403 page the loop guard shows, with what the administrator must make the route's
/// identity provider send: a SAML claim for a SAML IdP, `amr` (or `acrs`) for an OIDC issuer.
pub fn give_up_page(state: &State, route: &RouteConfig) -> Response<Body> {
    let login = route.login.as_deref().unwrap_or_default();
    let code =
        |values: &[String]| values.iter().map(|v| format!("<code>{}</code>", escape(v))).collect::<Vec<_>>();
    let what = if let Some(idp) = state.saml.idp_named(login) {
        let mut refs = vec![MULTIPLE_AUTHN.to_owned()];
        refs.extend(idp.mfa.refeds.then(|| mfagate_policy::REFEDS_MFA.to_owned()));
        refs.extend(idp.mfa.extra_class_refs.iter().cloned());
        format!(
            "to send the claim {} (as the AuthnContextClassRef or the <code>authnmethodsreferences</code> attribute)",
            code(&refs).join(" or ")
        )
    } else {
        let mfa = state.config.issuer(login).map(|i| i.mfa.clone()).unwrap_or_default();
        let mut what = format!(
            "that the ID token carry the <code>amr</code> claim with {}",
            code(&mfa.amr_values).join(" or ")
        );
        if !mfa.mfa_acrs.is_empty() {
            what.push_str(&format!(
                ", or the <code>acrs</code> claim with {}",
                code(&mfa.mfa_acrs).join(" or ")
            ));
        }
        what
    };
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Multi-factor authentication required</title></head>\
         <body><h1>Multi-factor authentication required</h1>\
         <p>This application requires multi-factor authentication (MFA). You signed in, but your identity provider \
         (<code>{}</code>) did not report MFA, even after we asked for it.</p>\
         <p>Ask your administrator to require MFA for this application at the identity provider, and {what}.</p></body></html>",
        escape(login)
    );
    html_response(StatusCode::FORBIDDEN, html)
}

fn html_response(status: StatusCode, html: String) -> Response<Body> {
    let mut rsp = Response::new(full(html));
    *rsp.status_mut() = status;
    rsp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    rsp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    rsp
}

/// A 302 with cookies.
pub fn redirect(location: &str, cookies: &[String]) -> Response<Body> {
    let mut rsp = Response::new(crate::body::empty());
    *rsp.status_mut() = StatusCode::FOUND;
    if let Ok(v) = HeaderValue::from_str(location) {
        rsp.headers_mut().insert(header::LOCATION, v);
    }
    for c in cookies {
        if let Ok(v) = HeaderValue::from_str(c) {
            rsp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    rsp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    rsp
}

/// The ACS: verifies the posted Response against the sign-in we started, then sets the session.
///
/// The IdP's form posts cross-site, and a browser sends the `SameSite=Lax` state cookie of plain
/// HTTP (or withholds even `SameSite=None`, as some do) only on same-site POSTs. A post without
/// the cookie is therefore answered, once, with a page that posts the same fields again from
/// this origin, where the cookie goes along. That needs no server-side store (any instance
/// behind a load balancer can finish the sign-in) and lets nothing new in: what a Response is
/// worth still depends on the sealed state it must answer (RelayState, InResponseTo, the IdP),
/// which an attacker who makes a browser post cannot read or choose.
pub async fn acs(
    state: &State,
    req: Request<hyper::body::Incoming>,
    rec: &mut DecisionRecord,
) -> Response<Body> {
    rec.channel = "portal";
    rec.operation = format!("POST {}", rec.path);
    let login = login_state(state, req.headers());
    let carried = cookie(req.headers(), cookies(state).login()).is_some();
    let limit = state.config.saml.max_assertion_bytes * 2 + 4096;
    let body = match crate::body::read_bounded(req.into_body(), limit, state.config.listen.body_read_timeout)
        .await
    {
        Ok(body) => body,
        Err(crate::body::ReadError::TooLarge) => {
            return sign_in_failure(rec, "saml_response_too_large");
        }
        Err(e) => return refused(rec, &e.into()),
    };
    let form: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let Some(response) = field("SAMLResponse") else { return sign_in_failure(rec, "saml_response_missing") };
    if !carried && field(RESUBMITTED).is_none() {
        return resubmit(state, rec, response, field("RelayState").unwrap_or_default());
    }
    let now = state.clock.unix();
    let Some(login) = login.filter(|l| {
        l.exp > now.0
            && Some(l.relay.as_str()) == field("RelayState")
            && state.saml.idp_named(&l.idp).is_some()
    }) else {
        // IdP-initiated sign-in and stale or foreign state are refused: InResponseTo cannot be checked.
        return sign_in_failure(rec, "sign_in_state_invalid");
    };
    let verified = match state.saml.verify_base64_off_worker(response, Use::Acs).await {
        Ok(v) => v,
        Err(Unverified::Invalid(why)) => {
            rec.detail = why.detail();
            return sign_in_failure(rec, why.code());
        }
        Err(Unverified::Busy) => return busy(rec, crate::respond::Refusal::SamlBusy),
        Err(Unverified::Unavailable) => return busy(rec, crate::respond::Refusal::OnceUnavailable),
    };
    // The IdP the sign-in went to must be the one that answered: another trusted IdP's
    // Response (for a request it never saw) does not sign anyone in to this route.
    if verified.identity.issuer != login.idp {
        return sign_in_failure(rec, "saml_idp_mismatch");
    }
    if verified.in_response_to.as_deref() != Some(login.request_id.as_str()) {
        return sign_in_failure(rec, "in_response_to_mismatch");
    }
    let Some(idp) = state.saml.idp(verified.idp_index) else { return sign_in_failure(rec, "unknown_issuer") };
    if let Some(why) = time_window(verified.facts.expires, verified.facts.not_before, idp.leeway_secs, now) {
        return sign_in_failure(rec, why.code());
    }
    if let Some(refused) = first_use(state, rec, &login.relay, login.exp).await {
        return refused;
    }
    let mfa = evaluate_saml_mfa(&verified.facts, &idp.mfa) == MfaOutcome::Proven;
    complete_sign_in(state, rec, &login, &verified.identity, mfa, Return::CrossSitePost)
}

/// The ACS's answer to a cross-site post that came without the state cookie: the same fields,
/// posted again from this origin (see [`acs`]).
fn resubmit(state: &State, rec: &mut DecisionRecord, response: &str, relay: &str) -> Response<Body> {
    let action = state.config.saml.acs_url.as_ref().map_or("", |u| u.path());
    rec.decision = "deny";
    rec.enforced = true;
    rec.reason = "saml_response_resubmitted";
    rec.status = 200;
    let mut rsp = html_response(
        StatusCode::OK,
        format!(
            r#"<!doctype html><html><head><meta charset="utf-8"><title>Signing in</title></head><body onload="document.forms[0].submit()"><form method="post" action="{}"><input type="hidden" name="SAMLResponse" value="{}"/><input type="hidden" name="RelayState" value="{}"/><input type="hidden" name="{RESUBMITTED}" value="1"/><noscript><button>Continue</button></noscript></form></body></html>"#,
            escape(action),
            escape(response),
            escape(relay)
        ),
    );
    // The Response is a credential: the page posts it back here, and nowhere else.
    rsp.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; script-src 'unsafe-inline'; form-action 'self'"),
    );
    rsp.headers_mut().insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    rsp
}

/// A sign-in state's one use: `Some` answer when it was used before, or when the fleet's
/// memory cannot say (`[cluster] on_failure = "closed"`).
async fn first_use(state: &State, rec: &mut DecisionRecord, relay: &str, exp: u64) -> Option<Response<Body>> {
    use crate::verify::once::{Claim, Kind, Use as Once};
    let once =
        Once { kind: Kind::SignIn, value: relay, digest: [0; 32], reusable: false, until: UnixTime(exp) };
    match state.once.claim(&once).await {
        Ok(Claim::First) => None,
        Ok(Claim::Again | Claim::Replayed) => Some(sign_in_failure(rec, "sign_in_state_replayed")),
        Err(_) => Some(busy(rec, crate::respond::Refusal::OnceUnavailable)),
    }
}

/// The SAML verification queue is full, or the fleet's one-time memory is unreachable: 503,
/// try again shortly.
fn busy(rec: &mut DecisionRecord, refusal: crate::respond::Refusal<'static>) -> Response<Body> {
    let status = crate::respond::status(&refusal);
    rec.decision = "deny";
    rec.enforced = true;
    rec.reason = refusal.code();
    rec.status = status.as_u16();
    let mut rsp = html_response(
        status,
        "<!doctype html><html><body><h1>Busy</h1><p>The sign-in cannot be completed right now. Reload this page in a moment.</p></body></html>".into(),
    );
    rsp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static(crate::respond::RETRY_AFTER_SECS));
    rsp
}

/// Ends a successful sign-in: the session cookie, the loop guard's memory, and back to the page.
fn complete_sign_in(
    state: &State,
    rec: &mut DecisionRecord,
    login: &LoginState,
    id: &Identity,
    mfa: bool,
    back: Return,
) -> Response<Body> {
    let now = state.clock.unix();
    let session = Session {
        sub: id.object_id.clone().or_else(|| id.upn.clone()).unwrap_or_default(),
        tid: id.tenant_id.clone(),
        upn: id.upn.clone(),
        mfa,
        auth_time: now.0,
        exp: now.0 + state.config.session.lifetime_secs,
        idp: id.issuer.clone(),
        idp_fingerprint: idp_fingerprint(&state.config, &id.issuer),
    };
    let cookies = cookies(state);
    let Some(sealed) = state.sealer.seal(cookies.session(), &session) else {
        return sign_in_failure(rec, "session_seal_failed");
    };
    // Keep the loop guard's count, forget the answered request.
    let after = LoginState {
        request_id: String::new(),
        relay: String::new(),
        nonce: String::new(),
        verifier: String::new(),
        ..login.clone()
    };
    let mut set = vec![cookies.set_session(&sealed, state.config.session.lifetime_secs)];
    if let Some(l) = state.sealer.seal(cookies.login(), &after) {
        set.push(cookies.set_login(&l, state.config.session.attempt_window_secs, back));
    }
    rec.principal = "user";
    rec.mfa = Some(mfa);
    rec.decision = "allow";
    rec.enforced = true;
    rec.reason = "signed_in";
    rec.issuer = Some(id.issuer.clone());
    rec.tenant_id = id.tenant_id.clone();
    rec.object_id = Some(session.sub.clone());
    rec.upn = id.upn.clone();
    rec.status = 302;
    redirect(safe_return(&login.return_to), &set)
}

/// The OIDC callback: checks state, exchanges the code (with the PKCE verifier), verifies the ID
/// token with the issuer's keys, its audience (our client id) and nonce, then sets the session.
pub async fn oidc_callback(
    state: &State,
    req: &Request<hyper::body::Incoming>,
    rec: &mut DecisionRecord,
) -> Response<Body> {
    rec.channel = "portal";
    rec.operation = format!("GET {}", rec.path);
    let query: Vec<(String, String)> =
        form_urlencoded::parse(req.uri().query().unwrap_or_default().as_bytes()).into_owned().collect();
    let field = |name: &str| query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let now = state.clock.unix();
    let Some(login) = login_state(state, req.headers())
        .filter(|l| l.exp > now.0 && !l.nonce.is_empty() && Some(l.relay.as_str()) == field("state"))
    else {
        return sign_in_failure(rec, "sign_in_state_invalid");
    };
    // Used once (in the fleet, when clustered), before anything is done for it: a replayed
    // callback, or the same one twice at once, never reaches the token endpoint a second time.
    if let Some(refused) = first_use(state, rec, &login.relay, login.exp).await {
        return refused;
    }
    if field("error").is_some() {
        return sign_in_failure(rec, "sign_in_refused_by_idp");
    }
    let Some(code) = field("code") else { return sign_in_failure(rec, "code_missing") };
    let Some((_, issuer, keys)) = state.verifier.issuer_named(&login.idp) else {
        return sign_in_failure(rec, "unknown_issuer");
    };
    let (Some(client), Some(callback)) = (issuer.client.as_ref(), state.config.oidc_callback.as_ref()) else {
        return sign_in_failure(rec, "unknown_issuer");
    };
    let Some(token_endpoint) =
        client.token_endpoint.clone().or_else(|| keys.discovered_endpoints().map(|e| e.1))
    else {
        return sign_in_failure(rec, "token_endpoint_unknown");
    };
    let discovered = keys.discovered().unwrap_or_default();
    let auth = match oidc::client_auth(
        client.token_endpoint_auth,
        discovered.token_endpoint_auth_methods.as_deref(),
    ) {
        Ok(auth) => auth,
        Err(why) => {
            tracing::warn!(
                issuer = %issuer.name,
                configured = client.token_endpoint_auth.map(|m| m.as_str()),
                offered = ?discovered.token_endpoint_auth_methods,
                "No client authentication both configured and offered by the token endpoint"
            );
            return sign_in_failure(rec, why.code());
        }
    };
    let redirect_uri = callback.to_string();
    let exchange = oidc::Exchange {
        endpoint: &token_endpoint,
        client,
        auth,
        code,
        redirect_uri: &redirect_uri,
        verifier: &login.verifier,
    };
    let tokens = match oidc::exchange_code(&state.client, &issuer.name, &exchange).await {
        Ok(tokens) => tokens,
        Err(why) => return sign_in_failure(rec, why.code()),
    };
    let mut verified =
        match state.verifier.verify_id_token(&tokens.id_token, &issuer.name, &client.client_id).await {
            Ok(v) => v,
            Err(why) => return sign_in_failure(rec, why.code()),
        };
    if verified.nonce.as_deref() != Some(login.nonce.as_str()) {
        return sign_in_failure(rec, "nonce_mismatch");
    }
    if let Some(why) = time_window(verified.facts.expires, verified.facts.not_before, issuer.leeway_secs, now)
    {
        return sign_in_failure(rec, why.code());
    }
    let userinfo = discovered.userinfo_endpoint.as_deref();
    let amr_from_userinfo =
        match oidc::complete_from_userinfo(&state.client, &issuer.name, userinfo, &tokens, &mut verified)
            .await
        {
            Ok(from_userinfo) => from_userinfo,
            Err(why) => return sign_in_failure(rec, why.code()),
        };
    let mfa = evaluate_mfa(&verified.facts, &issuer.mfa) == MfaOutcome::Proven;
    // The evidence behind `mfa`: the `amr` it was decided on, and whether an unsigned userinfo
    // answer rather than the signed ID token supplied it.
    rec.amr.clone_from(&verified.identity.amr);
    rec.detail = amr_from_userinfo.then_some(oidc::AMR_FROM_USERINFO);
    complete_sign_in(state, rec, &login, &verified.identity, mfa, Return::TopLevelGet)
}

/// Only a path on this gateway: never an open redirect.
fn safe_return(to: &str) -> &str {
    if to.starts_with('/') && !to.starts_with("//") && !to.contains('\\') { to } else { "/" }
}

/// A refusal from the one table (a stalled or broken body), recorded as such.
fn refused(rec: &mut DecisionRecord, refusal: &crate::respond::Refusal<'_>) -> Response<Body> {
    rec.decision = "deny";
    rec.enforced = true;
    rec.reason = refusal.code();
    rec.status = crate::respond::status(refusal).as_u16();
    crate::respond::refuse(refusal, &rec.request_id)
}

fn sign_in_failure(rec: &mut DecisionRecord, reason: &'static str) -> Response<Body> {
    rec.decision = "deny";
    rec.enforced = true;
    rec.reason = reason;
    rec.status = 403;
    html_response(
        StatusCode::FORBIDDEN,
        format!(
            "<!doctype html><html><body><h1>Sign-in failed</h1><p>Reason: <code>{reason}</code>. Start again from the application.</p></body></html>"
        ),
    )
}

/// The SP metadata: our entity id and ACS (HTTP-POST), wanting signed assertions.
pub fn metadata(state: &State) -> Response<Body> {
    let saml = &state.config.saml;
    let acs = saml.acs_url.as_ref().map(|u| u.to_string()).unwrap_or_default();
    let key = saml.signing.as_ref().map_or(String::new(), |s| {
        format!(
            r#"<md:KeyDescriptor use="signing"><ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:X509Data><ds:X509Certificate>{}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>"#,
            base64::engine::general_purpose::STANDARD.encode(&s.certificate)
        )
    });
    let xml = format!(
        r#"<?xml version="1.0"?><md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="{}"><md:SPSSODescriptor AuthnRequestsSigned="{}" WantAssertionsSigned="true" protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">{key}<md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="{}" index="0" isDefault="true"/></md:SPSSODescriptor></md:EntityDescriptor>"#,
        escape(&saml.entity_id),
        saml.signing.is_some(),
        escape(&acs)
    );
    let mut rsp = Response::new(full(xml));
    rsp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/samlmetadata+xml"));
    rsp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_binding_round_trips_and_bombs_stop() {
        let xml = authn_request("_r1", "sp", "https://idp/sso", "https://gw/acs", 0, true);
        assert!(xml.contains(r#"ForceAuthn="true""#) && xml.contains(MULTIPLE_AUTHN));
        let enc = deflate_base64(&xml).unwrap();
        assert_eq!(inflate_base64(&enc, 64 * 1024).as_deref(), Some(xml.as_str()));
        let bomb = deflate_base64(&"a".repeat(10 * 1024 * 1024)).unwrap();
        assert_eq!(inflate_base64(&bomb, 64 * 1024), None);
    }

    #[test]
    fn return_urls_stay_on_this_site() {
        assert_eq!(safe_return("/app/x?y=1"), "/app/x?y=1");
        for evil in ["//evil.test/x", "https://evil.test/", "/\\evil.test", "javascript:alert(1)"] {
            assert_eq!(safe_return(evil), "/", "{evil}");
        }
    }
}
