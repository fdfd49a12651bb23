//! A development identity provider: OpenID discovery, a JWKS, and a token endpoint that mints
//! tokens with the `amr` and kind you ask for. It serves `mfagate demo` and the tests.
//! DEVELOPMENT ONLY: its keys come from `certs/`, which are public.

use crate::body::{Body, full};
use crate::clock::SharedClock;
use http::{Request, Response, StatusCode, header};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use jsonwebtoken::jwk::JwkSet;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;

mod keys;
mod token;

pub use keys::{DevKey, DevKeyError, KeyRing, Rotation, load_dev_keys};
pub use token::{
    DEV_APP_ID, DEV_AUDIENCE, DEV_TENANT, DEV_UPN, ENTRA_V1_ISSUER, ENTRA_V2_ISSUER, TokenRequest, issuer_at,
};

/// When the development identity provider reports MFA at sign-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DevMfa {
    /// Every sign-in shows MFA.
    Always,
    /// No sign-in does (the loop guard's case).
    Never,
    /// Only when the request asks for it (SAML `multipleauthn`, OIDC `amr_values=mfa`).
    WhenAsked,
}

/// Where the development identity provider puts `amr` and the UPN at browser sign-in, and how
/// its `/userinfo` answers (the userinfo fallback's tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DevUserinfo {
    /// In the ID token (the default); `/userinfo` has them too.
    IdToken,
    /// Only at `/userinfo`, as a strictly conformant provider may send them.
    Userinfo,
    /// Only at `/userinfo`, which names another `sub`.
    OtherSub,
    /// Only at `/userinfo`, which answers a signed JWT (`application/jwt`).
    Jwt,
    /// Only at `/userinfo`, which answers 200 with an HTML page.
    Garbage,
    /// Only at `/userinfo`, which answers far more than a userinfo response could be.
    Huge,
    /// Only at `/userinfo`, which answers 503.
    Down,
}

/// The `sub` of the development user's ID tokens (pairwise, unlike `oid`).
pub const DEV_SUB: &str = "dev-sub-AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ";

/// How a code exchange authenticated the client, as the token endpoint read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevClientAuth {
    /// `client_secret_basic` or `client_secret_post`.
    pub method: &'static str,
    /// The client id, decoded.
    pub client_id: String,
    /// The client secret, decoded (development only).
    pub client_secret: String,
}

/// An authorization code waiting to be exchanged.
struct PendingCode {
    client_id: String,
    redirect_uri: String,
    challenge: String,
    nonce: String,
    mfa: bool,
}

struct Inner {
    base: String,
    mfa: Mutex<DevMfa>,
    codes: Mutex<std::collections::HashMap<String, PendingCode>>,
    sign_ins: AtomicU64,
    code_exchanges: AtomicU64,
    ring: Mutex<KeyRing>,
    userinfo: Mutex<DevUserinfo>,
    userinfo_calls: AtomicU64,
    access_tokens: Mutex<std::collections::HashMap<String, bool>>,
    auth_methods: Mutex<Option<Vec<String>>>,
    client_auth: Mutex<Option<DevClientAuth>>,
    available: AtomicBool,
    jwks_fetches: AtomicU64,
    clock: SharedClock,
}

/// A running development identity provider.
#[derive(Clone)]
pub struct DevIdp {
    addr: SocketAddr,
    inner: Arc<Inner>,
}

impl DevIdp {
    /// Serves on `listener`; every key is published and the first one signs.
    pub fn start(listener: TcpListener, keys: Vec<DevKey>, clock: SharedClock) -> std::io::Result<DevIdp> {
        let addr = listener.local_addr()?;
        let inner = Arc::new(Inner {
            base: format!("http://{addr}"),
            ring: Mutex::new(KeyRing::new(keys)),
            available: AtomicBool::new(true),
            mfa: Mutex::new(DevMfa::Always),
            codes: Mutex::new(std::collections::HashMap::new()),
            sign_ins: AtomicU64::new(0),
            code_exchanges: AtomicU64::new(0),
            userinfo: Mutex::new(DevUserinfo::IdToken),
            userinfo_calls: AtomicU64::new(0),
            access_tokens: Mutex::new(std::collections::HashMap::new()),
            auth_methods: Mutex::new(Some(vec!["client_secret_basic".into(), "client_secret_post".into()])),
            client_auth: Mutex::new(None),
            jwks_fetches: AtomicU64::new(0),
            clock,
        });
        let served = inner.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let inner = served.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| respond(inner.clone(), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Ok(DevIdp { addr, inner })
    }

    /// `http://host:port`.
    pub fn base_url(&self) -> &str {
        &self.inner.base
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The issuer template for the gateway's config (`{tenantid}` in place of the tenant).
    pub fn issuer_template(&self) -> String {
        format!("{}/{{tenantid}}/", self.inner.base)
    }

    /// The discovery URL.
    pub fn discovery_url(&self) -> String {
        format!("{}/.well-known/openid-configuration", self.inner.base)
    }

    /// Publishes only these keys (rotation by hand).
    pub fn publish(&self, kids: &[&str]) {
        if let Ok(mut ring) = self.inner.ring.lock() {
            ring.publish(kids);
        }
    }

    /// Signs new tokens with this key.
    pub fn sign_with(&self, kid: &str) {
        if let Ok(mut ring) = self.inner.ring.lock() {
            ring.sign_with(kid);
        }
    }

    /// Rotates to a key made now (of `alg`, else the current key's): published and signing at
    /// once; the key it replaces leaves the JWKS `remove_after` from now, by the injected clock.
    pub async fn rotate(
        &self,
        alg: Option<jsonwebtoken::Algorithm>,
        remove_after: std::time::Duration,
    ) -> Result<Rotation, DevKeyError> {
        let alg = match alg {
            Some(alg) => alg,
            None => self.signing_key()?.alg(),
        };
        // An RSA key takes a moment to make: off the runtime's threads.
        let key = tokio::task::spawn_blocking(move || DevKey::generate(alg))
            .await
            .map_err(|e| DevKeyError(e.to_string()))??;
        let removed_at = self.inner.clock.unix().0.saturating_add(remove_after.as_secs());
        let mut ring = self.inner.ring.lock().map_err(|_| DevKeyError("key ring poisoned".into()))?;
        Ok(ring.rotate(key, removed_at))
    }

    /// The key that signs now.
    pub fn signing_key(&self) -> Result<Arc<DevKey>, DevKeyError> {
        self.inner.ring.lock().map_err(|_| DevKeyError("key ring poisoned".into()))?.signing()
    }

    /// Makes discovery and the JWKS answer 503 (false) or work again (true).
    pub fn set_available(&self, up: bool) {
        self.inner.available.store(up, Ordering::SeqCst);
    }

    /// Sets when browser sign-ins report MFA.
    pub fn set_mfa(&self, mode: DevMfa) {
        if let Ok(mut m) = self.inner.mfa.lock() {
            *m = mode;
        }
    }

    /// Sets where sign-ins put `amr` and the UPN, and how `/userinfo` answers.
    pub fn set_userinfo(&self, mode: DevUserinfo) {
        if let Ok(mut m) = self.inner.userinfo.lock() {
            *m = mode;
        }
    }

    /// Userinfo requests answered so far.
    pub fn userinfo_calls(&self) -> u64 {
        self.inner.userinfo_calls.load(Ordering::SeqCst)
    }

    /// The client authentications the token endpoint takes, as discovery publishes them (`None`:
    /// not published, which means `client_secret_basic`). Default: both.
    pub fn set_token_auth_methods(&self, methods: Option<&[&str]>) {
        if let Ok(mut m) = self.inner.auth_methods.lock() {
            *m = methods.map(|list| list.iter().map(|s| (*s).to_owned()).collect());
        }
    }

    /// How the last code exchange authenticated the client.
    pub fn last_client_auth(&self) -> Option<DevClientAuth> {
        self.inner.client_auth.lock().ok().and_then(|a| a.clone())
    }

    /// Browser sign-ins (authorization requests) answered so far.
    pub fn sign_ins(&self) -> u64 {
        self.inner.sign_ins.load(Ordering::SeqCst)
    }

    /// Authorization-code grants received at the token endpoint (valid or not).
    pub fn code_exchanges(&self) -> u64 {
        self.inner.code_exchanges.load(Ordering::SeqCst)
    }

    /// How many times the JWKS was served.
    pub fn jwks_fetches(&self) -> u64 {
        self.inner.jwks_fetches.load(Ordering::SeqCst)
    }

    /// Signs arbitrary claims with the current signing key.
    pub fn sign(&self, claims: &Value) -> Result<String, DevKeyError> {
        self.signing_key()?.sign(claims)
    }

    /// Signs arbitrary claims with a named key.
    pub fn sign_with_key(&self, kid: &str, claims: &Value) -> Result<String, DevKeyError> {
        self.key(kid)?.sign(claims)
    }

    /// The named signing key, published or not.
    pub fn key(&self, kid: &str) -> Result<Arc<DevKey>, DevKeyError> {
        self.inner.ring.lock().map_err(|_| DevKeyError("key ring poisoned".into()))?.key(kid)
    }

    /// The claims of the ID token a sign-in for `client_id` ends with (no `scp`: it grants nothing).
    pub fn id_token_claims(&self, client_id: &str, nonce: &str, mfa: bool) -> Value {
        let amr = if mfa { vec!["pwd".to_owned(), "mfa".to_owned()] } else { vec!["pwd".to_owned()] };
        let mut claims = self.claims(&TokenRequest {
            amr: Some(amr),
            aud: client_id.to_owned(),
            ..TokenRequest::default()
        });
        claims["nonce"] = json!(nonce);
        claims["sub"] = json!(DEV_SUB);
        // ID tokens name no application and grant nothing (Entra's carry no appid or scp).
        if let Some(c) = claims.as_object_mut() {
            for name in ["scp", "appid", "azp", "appidacr", "azpacr"] {
                c.remove(name);
            }
        }
        claims
    }

    /// The claims Entra would put in such a token, issued by this provider.
    pub fn claims(&self, req: &TokenRequest) -> Value {
        req.claims(&issuer_at(&self.inner.base, &req.ver), self.inner.clock.unix().0)
    }

    /// Mints a token for `req` with the current signing key.
    pub fn mint(&self, req: &TokenRequest) -> Result<String, DevKeyError> {
        self.sign(&self.claims(req))
    }
}

fn json_response(status: StatusCode, body: &Value, extra: Option<(&'static str, String)>) -> Response<Body> {
    let mut rsp = Response::new(full(body.to_string()));
    *rsp.status_mut() = status;
    rsp.headers_mut().insert(header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    if let Some((name, Ok(v))) = extra.map(|(n, v)| (n, http::HeaderValue::from_str(&v))) {
        rsp.headers_mut().insert(name, v);
    }
    rsp
}

async fn respond(
    inner: Arc<Inner>,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Body>, std::convert::Infallible> {
    let up = inner.available.load(Ordering::SeqCst);
    let unavailable =
        || json_response(StatusCode::SERVICE_UNAVAILABLE, &json!({"error": "unavailable"}), None);
    let path = req.uri().path();
    let rsp = match path {
        "/.well-known/openid-configuration" if up => {
            discovery(&inner, format!("{}/{{tenantid}}/", inner.base))
        }
        // Entra's tenant-specific documents: `/{tenant}/` (v1) and `/{tenant}/v2.0` (v2) name
        // their tenant's issuer.
        _ if up && tenant_discovery(path).is_some() => {
            let issuer =
                tenant_discovery(path).map(|(t, v2)| tenant_issuer(&inner.base, t, v2)).unwrap_or_default();
            discovery(&inner, issuer)
        }
        "/userinfo" => userinfo(&inner, req.headers()),
        "/keys" if up => {
            inner.jwks_fetches.fetch_add(1, Ordering::SeqCst);
            let now = inner.clock.unix().0;
            let keys = inner.ring.lock().map(|ring| ring.jwks(now)).unwrap_or_default();
            let set = serde_json::to_value(JwkSet { keys }).unwrap_or(Value::Null);
            json_response(StatusCode::OK, &set, Some(("cache-control", "public, max-age=3600".into())))
        }
        "/authorize" => authorize(&inner, req.uri().query().unwrap_or_default()),
        "/token" if req.method() == http::Method::POST => {
            use http_body_util::BodyExt;
            let (parts, body) = req.into_parts();
            let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
            code_grant(&inner, &parts.headers, &body)
        }
        "/token" => mint(&inner, req.uri().query().unwrap_or_default()),
        "/rotate" if req.method() == http::Method::POST => rotate(&inner, req.uri().query()).await,
        "/.well-known/openid-configuration" | "/keys" => unavailable(),
        _ if tenant_discovery(path).is_some() => unavailable(),
        _ => json_response(StatusCode::NOT_FOUND, &json!({"error": "not_found"}), None),
    };
    Ok(rsp)
}

/// `/{tenant}/.well-known/openid-configuration` or `/{tenant}/v2.0/.well-known/...`: the tenant,
/// and whether it is the v2 document.
fn tenant_discovery(path: &str) -> Option<(&str, bool)> {
    let rest = path.strip_prefix('/')?.strip_suffix("/.well-known/openid-configuration")?;
    let (tenant, v2) = match rest.strip_suffix("/v2.0") {
        Some(t) => (t, true),
        None => (rest, false),
    };
    let plain =
        !tenant.is_empty() && tenant.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    plain.then_some((tenant, v2))
}

/// The issuer a tenant-specific document names (`common` and `organizations` keep the template).
fn tenant_issuer(base: &str, tenant: &str, v2: bool) -> String {
    let tenant = if matches!(tenant, "common" | "organizations") { "{tenantid}" } else { tenant };
    if v2 { format!("{base}/{tenant}/v2.0") } else { format!("{base}/{tenant}/") }
}

fn discovery(inner: &Inner, issuer: String) -> Response<Body> {
    let mut doc = json!({
    "issuer": issuer,
            "jwks_uri": format!("{}/keys", inner.base),
            "token_endpoint": format!("{}/token", inner.base),
            "authorization_endpoint": format!("{}/authorize", inner.base),
            "userinfo_endpoint": format!("{}/userinfo", inner.base),
            "id_token_signing_alg_values_supported": ["RS256", "ES256"],
        });
    if let Some(methods) = inner.auth_methods.lock().ok().and_then(|m| m.clone()) {
        doc["token_endpoint_auth_methods_supported"] = json!(methods);
    }
    json_response(StatusCode::OK, &doc, None)
}

fn query_pairs(query: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(query.as_bytes()).into_owned().collect()
}

/// `GET /token?kind=..&ver=..&amr=..`: a token as [`TokenRequest::from_params`] reads it.
fn mint(inner: &Arc<Inner>, query: &str) -> Response<Body> {
    let q = query_pairs(query);
    let t = match TokenRequest::from_params(|k| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())) {
        Ok(t) => t,
        Err(why) => {
            return json_response(
                StatusCode::BAD_REQUEST,
                &json!({"error": "invalid_request", "error_description": why}),
                None,
            );
        }
    };
    let dev = DevIdp { addr: SocketAddr::from(([127, 0, 0, 1], 0)), inner: inner.clone() };
    match dev.mint(&t) {
        Ok(token) => json_response(
            StatusCode::OK,
            &json!({"access_token": token, "token_type": "Bearer", "expires_in": t.lifetime}),
            None,
        ),
        Err(e) => json_response(StatusCode::INTERNAL_SERVER_ERROR, &json!({"error": e.to_string()}), None),
    }
}

/// `POST /rotate?remove_after=SECS&alg=RS256|ES256`: see [`DevIdp::rotate`].
async fn rotate(inner: &Arc<Inner>, query: Option<&str>) -> Response<Body> {
    let q = query_pairs(query.unwrap_or_default());
    let get = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let bad = |why: &str| {
        json_response(
            StatusCode::BAD_REQUEST,
            &json!({"error": "invalid_request", "error_description": why}),
            None,
        )
    };
    let Ok(remove_after) = get("remove_after").map_or(Ok(DEFAULT_REMOVE_AFTER), str::parse) else {
        return bad("remove_after: whole seconds");
    };
    let alg = match get("alg") {
        None => None,
        Some("RS256") => Some(jsonwebtoken::Algorithm::RS256),
        Some("ES256") => Some(jsonwebtoken::Algorithm::ES256),
        Some(_) => return bad("alg: RS256 or ES256"),
    };
    let dev = DevIdp { addr: SocketAddr::from(([127, 0, 0, 1], 0)), inner: inner.clone() };
    match dev.rotate(alg, std::time::Duration::from_secs(remove_after)).await {
        Ok(rotation) => json_response(StatusCode::OK, &json!(rotation), None),
        Err(e) => json_response(StatusCode::INTERNAL_SERVER_ERROR, &json!({"error": e.to_string()}), None),
    }
}

/// How long a rotated-out key stays in the JWKS unless `remove_after` says otherwise.
pub const DEFAULT_REMOVE_AFTER: u64 = 600;

/// `/authorize`: signs the development user in at once and sends the browser back with a code.
fn authorize(inner: &Arc<Inner>, query: &str) -> Response<Body> {
    let q: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    let get = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()).unwrap_or_default();
    let (redirect_uri, state) = (get("redirect_uri"), get("state"));
    if redirect_uri.is_empty() || get("response_type") != "code" || get("code_challenge_method") != "S256" {
        return json_response(StatusCode::BAD_REQUEST, &json!({"error": "invalid_request"}), None);
    }
    let mode = inner.mfa.lock().map(|m| *m).unwrap_or(DevMfa::Never);
    let asked = get("amr_values").split(' ').any(|v| v == "mfa");
    let mfa = mode == DevMfa::Always || (mode == DevMfa::WhenAsked && asked);
    let Some(code) = crate::ids::random_token() else {
        return json_response(StatusCode::INTERNAL_SERVER_ERROR, &json!({"error": "server_error"}), None);
    };
    let pending = PendingCode {
        client_id: get("client_id"),
        redirect_uri: redirect_uri.clone(),
        challenge: get("code_challenge"),
        nonce: get("nonce"),
        mfa,
    };
    if let Ok(mut codes) = inner.codes.lock() {
        codes.insert(code.clone(), pending);
    }
    inner.sign_ins.fetch_add(1, Ordering::SeqCst);
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("code", &code)
        .append_pair("state", &state)
        .finish();
    let sep = if redirect_uri.contains('?') { '&' } else { '?' };
    let mut rsp = Response::new(crate::body::empty());
    *rsp.status_mut() = StatusCode::FOUND;
    if let Ok(v) = http::HeaderValue::from_str(&format!("{redirect_uri}{sep}{query}")) {
        rsp.headers_mut().insert(header::LOCATION, v);
    }
    rsp
}

/// The client authentication of a token request (RFC 6749 §2.3.1): HTTP Basic with the
/// form-urlencoded id and secret, or both in the body; never both ways, never neither, and only
/// a way discovery publishes (none published: Basic only).
fn client_auth(inner: &Inner, headers: &http::HeaderMap, form: &[(String, String)]) -> Option<DevClientAuth> {
    use base64::Engine;
    let field = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok()?.strip_prefix("Basic ").map(str::to_owned));
    let auth = match (basic, field("client_secret")) {
        (Some(b64), None) => {
            let decoded = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
            let (id, secret) = std::str::from_utf8(&decoded).ok()?.split_once(':')?;
            let decode = |v: &str| {
                form_urlencoded::parse(format!("v={v}").as_bytes()).next().map(|(_, v)| v.into_owned())
            };
            DevClientAuth {
                method: "client_secret_basic",
                client_id: decode(id)?,
                client_secret: decode(secret)?,
            }
        }
        (None, Some(secret)) => DevClientAuth {
            method: "client_secret_post",
            client_id: field("client_id")?,
            client_secret: secret,
        },
        _ => return None,
    };
    let published = inner.auth_methods.lock().ok()?.clone();
    published
        .unwrap_or_else(|| vec!["client_secret_basic".into()])
        .iter()
        .any(|m| m == auth.method)
        .then_some(auth)
}

/// The authorization-code grant: one use per code, the client authenticated, PKCE S256 checked,
/// an ID token and an access token (for `/userinfo`) returned.
fn code_grant(inner: &Arc<Inner>, headers: &http::HeaderMap, body: &[u8]) -> Response<Body> {
    use base64::Engine;
    let form: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
    let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str()).unwrap_or_default();
    let bad = || json_response(StatusCode::BAD_REQUEST, &json!({"error": "invalid_grant"}), None);
    inner.code_exchanges.fetch_add(1, Ordering::SeqCst);
    let Some(auth) = client_auth(inner, headers, &form) else {
        return json_response(StatusCode::UNAUTHORIZED, &json!({"error": "invalid_client"}), None);
    };
    if let Ok(mut last) = inner.client_auth.lock() {
        *last = Some(auth.clone());
    }
    let Some(pending) = inner.codes.lock().ok().and_then(|mut c| c.remove(get("code"))) else { return bad() };
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(crate::verify::jwt::sha256(get("code_verifier").as_bytes()));
    if get("grant_type") != "authorization_code"
        || challenge != pending.challenge
        || auth.client_id != pending.client_id
        || get("redirect_uri") != pending.redirect_uri
    {
        return bad();
    }
    let dev = DevIdp { addr: SocketAddr::from(([127, 0, 0, 1], 0)), inner: inner.clone() };
    let mut claims = dev.id_token_claims(&pending.client_id, &pending.nonce, pending.mfa);
    if inner.userinfo.lock().is_ok_and(|m| *m != DevUserinfo::IdToken)
        && let Some(c) = claims.as_object_mut()
    {
        c.remove("amr");
        c.remove("upn");
    }
    let Some(access_token) = crate::ids::random_token() else { return bad() };
    if let Ok(mut tokens) = inner.access_tokens.lock() {
        tokens.insert(access_token.clone(), pending.mfa);
    }
    match dev.sign(&claims) {
        Ok(id_token) => json_response(
            StatusCode::OK,
            &json!({"id_token": id_token, "access_token": access_token, "token_type": "Bearer"}),
            None,
        ),
        Err(e) => json_response(StatusCode::INTERNAL_SERVER_ERROR, &json!({"error": e.to_string()}), None),
    }
}

/// `/userinfo`: the signed-in user's `sub`, `amr` and `upn` for an access token this IdP issued,
/// answered as [`DevUserinfo`] says.
fn userinfo(inner: &Arc<Inner>, headers: &http::HeaderMap) -> Response<Body> {
    inner.userinfo_calls.fetch_add(1, Ordering::SeqCst);
    let token = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()?.strip_prefix("Bearer "));
    let Some(mfa) = token.and_then(|t| inner.access_tokens.lock().ok()?.get(t).copied()) else {
        return json_response(StatusCode::UNAUTHORIZED, &json!({"error": "invalid_token"}), None);
    };
    let mode = inner.userinfo.lock().map(|m| *m).unwrap_or(DevUserinfo::Down);
    let amr = if mfa { json!(["pwd", "mfa"]) } else { json!(["pwd"]) };
    let sub = if mode == DevUserinfo::OtherSub { "someone-else" } else { DEV_SUB };
    let claims = json!({"sub": sub, "amr": amr, "upn": TokenRequest::default().upn, "name": "Adele Vance"});
    let typed = |status: StatusCode, content_type: &'static str, body: String| {
        let mut rsp = Response::new(full(body));
        *rsp.status_mut() = status;
        rsp.headers_mut().insert(header::CONTENT_TYPE, http::HeaderValue::from_static(content_type));
        rsp
    };
    let dev = DevIdp { addr: SocketAddr::from(([127, 0, 0, 1], 0)), inner: inner.clone() };
    match mode {
        DevUserinfo::IdToken | DevUserinfo::Userinfo | DevUserinfo::OtherSub => {
            json_response(StatusCode::OK, &claims, None)
        }
        DevUserinfo::Jwt => typed(StatusCode::OK, "application/jwt", dev.sign(&claims).unwrap_or_default()),
        DevUserinfo::Garbage => typed(StatusCode::OK, "text/html", "<html>Sign in again</html>".into()),
        DevUserinfo::Huge => {
            let padding = "x".repeat(1024 * 1024);
            json_response(StatusCode::OK, &json!({"sub": DEV_SUB, "amr": amr, "padding": padding}), None)
        }
        DevUserinfo::Down => {
            json_response(StatusCode::SERVICE_UNAVAILABLE, &json!({"error": "temporarily_unavailable"}), None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{tenant_discovery, tenant_issuer};

    #[test]
    fn tenant_documents_name_their_tenant_as_entra_does() {
        let t = "11111111-2222-4333-8444-555555555555";
        assert_eq!(tenant_discovery(&format!("/{t}/.well-known/openid-configuration")), Some((t, false)));
        assert_eq!(tenant_discovery(&format!("/{t}/v2.0/.well-known/openid-configuration")), Some((t, true)));
        assert_eq!(tenant_discovery("/.well-known/openid-configuration"), None);
        assert_eq!(tenant_discovery("/a/b/.well-known/openid-configuration"), None);
        assert_eq!(tenant_issuer("http://x", t, true), format!("http://x/{t}/v2.0"));
        assert_eq!(tenant_issuer("http://x", t, false), format!("http://x/{t}/"));
        assert_eq!(tenant_issuer("http://x", "common", true), "http://x/{tenantid}/v2.0");
    }
}
