//! The OIDC client side of browser sign-in: the code exchange, authenticated the way the issuer
//! takes it, and the userinfo fallback for `amr` and the UPN an ID token leaves out. Tokens go
//! only to the issuer's own endpoints and never into a log or a decision record.

use crate::config::{OidcClient, TokenEndpointAuth};
use crate::outbound::{FetchError, HttpClient, send_small};
use crate::verify::jwt::{Verified, amr_claim};
use base64::Engine;
use http::{HeaderValue, Request, header};
use mfagate_policy::Amr;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(10);
const MAX_TOKEN_RESPONSE: usize = 256 * 1024;
/// Userinfo is a handful of claims; an answer larger than this is not one.
const MAX_USERINFO: usize = 64 * 1024;

/// Why a sign-in ended at the token or the userinfo endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The configured `token_endpoint_auth` is not among discovery's methods, or discovery lists
    /// neither `client_secret_basic` nor `client_secret_post`.
    AuthUnsupported,
    /// The token endpoint did not answer with an ID token.
    ExchangeFailed,
    /// No bearer access token to ask with, or the userinfo endpoint could not be reached, did not
    /// answer in time, or answered other than 200.
    UserinfoUnavailable,
    /// Not a JSON object with a string `sub` (or larger than allowed).
    UserinfoInvalid,
    /// A signed or encrypted userinfo response (`application/jwt`): never asked for, not taken.
    UserinfoJwt,
    /// The userinfo `sub` is not the ID token's: its claims are someone else's.
    UserinfoSubMismatch,
}

impl Failure {
    /// The stable reason code.
    pub fn code(self) -> &'static str {
        match self {
            Failure::AuthUnsupported => "token_endpoint_auth_unsupported",
            Failure::ExchangeFailed => "code_exchange_failed",
            Failure::UserinfoUnavailable => "userinfo_unavailable",
            Failure::UserinfoInvalid => "userinfo_invalid",
            Failure::UserinfoJwt => "userinfo_jwt_refused",
            Failure::UserinfoSubMismatch => "userinfo_sub_mismatch",
        }
    }
}

/// The client authentication for the code exchange: the configured method unless discovery
/// lists methods without it; unset, `client_secret_basic` if discovery lists it or lists
/// nothing (the OAuth default, RFC 8414 §2), else `client_secret_post` if listed.
pub fn client_auth(
    configured: Option<TokenEndpointAuth>,
    supported: Option<&[String]>,
) -> Result<TokenEndpointAuth, Failure> {
    let offered = |m: TokenEndpointAuth| supported.is_none_or(|list| list.iter().any(|s| s == m.as_str()));
    let choices = match configured {
        Some(method) => vec![method],
        None => vec![TokenEndpointAuth::ClientSecretBasic, TokenEndpointAuth::ClientSecretPost],
    };
    choices.into_iter().find(|m| offered(*m)).ok_or(Failure::AuthUnsupported)
}

/// `Authorization: Basic` for a client: id and secret form-urlencoded, then base64 (RFC 6749
/// §2.3.1), so a `:` or non-ASCII in either survives.
fn basic(client_id: &str, client_secret: &str) -> Option<HeaderValue> {
    let enc = |v: &str| form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();
    let pair = format!("{}:{}", enc(client_id), enc(client_secret));
    let mut value =
        HeaderValue::from_str(&format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair)))
            .ok()?;
    value.set_sensitive(true);
    Some(value)
}

/// What the token endpoint answered. No `Debug`: it holds tokens.
pub struct Tokens {
    /// The ID token, still to be verified.
    pub id_token: String,
    /// The access token, if it is a bearer token: only for the userinfo endpoint.
    access_token: Option<String>,
}

/// One authorization-code exchange.
pub struct Exchange<'a> {
    /// The token endpoint.
    pub endpoint: &'a str,
    /// Our client registration.
    pub client: &'a OidcClient,
    /// How to authenticate (see [`client_auth`]).
    pub auth: TokenEndpointAuth,
    /// The code.
    pub code: &'a str,
    /// The redirect URI the authorization request named.
    pub redirect_uri: &'a str,
    /// The PKCE verifier.
    pub verifier: &'a str,
}

/// Exchanges the code at the token endpoint (bounded in size and time).
pub async fn exchange_code(http: &HttpClient, issuer: &str, x: &Exchange<'_>) -> Result<Tokens, Failure> {
    let req = token_request(x).ok_or(Failure::ExchangeFailed)?;
    let (_, body) = send_small(http, req, TIMEOUT, MAX_TOKEN_RESPONSE).await.map_err(|e| {
        tracing::warn!(issuer, auth = x.auth.as_str(), error = %e, "Code exchange failed");
        Failure::ExchangeFailed
    })?;
    #[derive(serde::Deserialize)]
    struct TokenResponse {
        id_token: String,
        access_token: Option<String>,
        token_type: Option<String>,
    }
    let t: TokenResponse = serde_json::from_slice(&body).map_err(|_| {
        tracing::warn!(issuer, "Code exchange answered without an ID token");
        Failure::ExchangeFailed
    })?;
    let bearer = t.token_type.is_some_and(|ty| ty.eq_ignore_ascii_case("bearer"));
    Ok(Tokens { id_token: t.id_token, access_token: t.access_token.filter(|_| bearer) })
}

fn token_request(x: &Exchange<'_>) -> Option<Request<crate::body::Body>> {
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("grant_type", "authorization_code")
        .append_pair("code", x.code)
        .append_pair("redirect_uri", x.redirect_uri)
        .append_pair("code_verifier", x.verifier);
    let mut req = Request::post(x.endpoint)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::ACCEPT, "application/json");
    // One method, never both (RFC 6749 §2.3).
    match x.auth {
        TokenEndpointAuth::ClientSecretBasic => {
            req = req
                .header(header::AUTHORIZATION, basic(&x.client.client_id, x.client.client_secret.expose())?);
        }
        TokenEndpointAuth::ClientSecretPost => {
            form.append_pair("client_id", &x.client.client_id)
                .append_pair("client_secret", x.client.client_secret.expose());
        }
    }
    req.body(crate::body::full(form.finish())).ok()
}

/// Claims the userinfo endpoint gave for the ID token's subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Userinfo {
    /// `amr` as sent.
    pub amr: Amr,
    /// `upn`, else `unique_name` (never `preferred_username`, as for ID tokens).
    pub upn: Option<String>,
}

/// Reads a userinfo answer for the subject `sub`: plain JSON only, for that `sub` only.
pub fn read_userinfo(content_type: Option<&str>, body: &[u8], sub: &str) -> Result<Userinfo, Failure> {
    let media = content_type.map(|v| v.split(';').next().unwrap_or_default().trim().to_ascii_lowercase());
    match media.as_deref() {
        Some("application/json") => {}
        Some("application/jwt") => return Err(Failure::UserinfoJwt),
        _ => return Err(Failure::UserinfoInvalid),
    }
    // Named fields: a repeated `sub` (or any of these) is an error, not a last-one-wins.
    #[derive(serde::Deserialize)]
    struct Claims {
        sub: String,
        amr: Option<serde_json::Value>,
        upn: Option<String>,
        unique_name: Option<String>,
    }
    let c: Claims = serde_json::from_slice(body).map_err(|_| Failure::UserinfoInvalid)?;
    if c.sub != sub {
        return Err(Failure::UserinfoSubMismatch);
    }
    Ok(Userinfo { amr: amr_claim(&c.amr), upn: c.upn.or(c.unique_name) })
}

/// The sign-in record's `detail` when `amr` came from userinfo, not from the signed ID token.
pub const AMR_FROM_USERINFO: &str = "amr_from_userinfo";

/// Fills in what the verified ID token lacks (`amr`, the UPN) from the issuer's userinfo
/// endpoint, asked with the access token, for the same `sub` (OIDC Core §5.3.2). Nothing is
/// asked when nothing is missing or the issuer has no userinfo endpoint. What the ID token says
/// is never replaced. Any failure fails the sign-in: MFA is then unknown, never proven. Returns
/// whether `amr` was taken from userinfo (the decision record says so).
pub async fn complete_from_userinfo(
    http: &HttpClient,
    issuer: &str,
    endpoint: Option<&str>,
    tokens: &Tokens,
    verified: &mut Verified,
) -> Result<bool, Failure> {
    let wants_amr = verified.facts.amr == Amr::Absent;
    let wants_upn = verified.identity.upn.is_none();
    let Some(endpoint) = endpoint.filter(|_| wants_amr || wants_upn) else {
        return Ok(false);
    };
    let sub = verified.sub.as_deref().ok_or(Failure::UserinfoSubMismatch)?;
    let access_token = tokens.access_token.as_deref().ok_or(Failure::UserinfoUnavailable)?;
    let mut bearer =
        HeaderValue::from_str(&format!("Bearer {access_token}")).map_err(|_| Failure::UserinfoUnavailable)?;
    bearer.set_sensitive(true);
    let req = Request::get(endpoint)
        .header(header::ACCEPT, "application/json")
        .header(header::AUTHORIZATION, bearer)
        .body(crate::body::empty())
        .map_err(|_| Failure::UserinfoUnavailable)?;
    let answer = send_small(http, req, TIMEOUT, MAX_USERINFO).await;
    let info = answer
        .map_err(|e| match e {
            FetchError::Body(_) => Failure::UserinfoInvalid,
            FetchError::Timeout | FetchError::Request(_) | FetchError::Status(_) => {
                Failure::UserinfoUnavailable
            }
        })
        .and_then(|(headers, body)| {
            let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
            read_userinfo(content_type, &body, sub)
        })
        .inspect_err(|why| {
            tracing::warn!(issuer, reason = why.code(), "Userinfo not used; sign-in refused")
        })?;
    if wants_amr {
        verified.identity.amr = if let Amr::List(v) = &info.amr { v.clone() } else { Vec::new() };
        verified.facts.amr = info.amr;
    }
    if wants_upn {
        verified.identity.upn = info.upn;
    }
    Ok(wants_amr)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASIC: TokenEndpointAuth = TokenEndpointAuth::ClientSecretBasic;
    const POST: TokenEndpointAuth = TokenEndpointAuth::ClientSecretPost;

    #[test]
    fn the_client_authentication_follows_config_then_discovery() {
        let list = |m: &[&str]| m.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let both = list(&["private_key_jwt", "client_secret_post", "client_secret_basic"]);
        let post = list(&["client_secret_post"]);
        let jwt = list(&["private_key_jwt"]);
        assert_eq!(client_auth(None, None), Ok(BASIC), "the OAuth default");
        assert_eq!(client_auth(None, Some(&both)), Ok(BASIC), "basic first");
        assert_eq!(client_auth(None, Some(&post)), Ok(POST));
        assert_eq!(client_auth(None, Some(&jwt)), Err(Failure::AuthUnsupported));
        assert_eq!(client_auth(Some(POST), Some(&both)), Ok(POST));
        assert_eq!(client_auth(Some(POST), None), Ok(POST), "nothing published to check against");
        assert_eq!(client_auth(Some(BASIC), Some(&post)), Err(Failure::AuthUnsupported));
    }

    #[test]
    fn basic_credentials_are_form_urlencoded_before_base64() {
        let value = basic("my app", "s3:cr+t/é%").unwrap();
        assert!(value.is_sensitive());
        let b64 = value.to_str().unwrap().strip_prefix("Basic ").unwrap();
        let decoded = base64::engine::general_purpose::STANDARD.decode(b64).unwrap();
        assert_eq!(String::from_utf8(decoded).unwrap(), "my+app:s3%3Acr%2Bt%2F%C3%A9%25");
    }

    #[test]
    fn userinfo_is_plain_json_for_the_same_subject() {
        let json = Some("application/json; charset=utf-8");
        let ok = read_userinfo(json, br#"{"sub":"u1","amr":["pwd","mfa"],"upn":"a@b.test"}"#, "u1");
        assert_eq!(
            ok,
            Ok(Userinfo { amr: Amr::List(vec!["pwd".into(), "mfa".into()]), upn: Some("a@b.test".into()) })
        );
        let named =
            read_userinfo(json, br#"{"sub":"u1","unique_name":"a@b.test","preferred_username":"x"}"#, "u1");
        assert_eq!(named, Ok(Userinfo { amr: Amr::Absent, upn: Some("a@b.test".into()) }));
        assert_eq!(
            read_userinfo(json, br#"{"sub":"u1","amr":"mfa"}"#, "u1").unwrap().amr,
            Amr::Text("mfa".into())
        );
        assert_eq!(read_userinfo(json, br#"{"sub":"u1","amr":[1]}"#, "u1").unwrap().amr, Amr::Malformed);
        for (content_type, body, why) in [
            (json, &br#"{"sub":"u2","amr":["mfa"]}"#[..], Failure::UserinfoSubMismatch),
            (json, br#"{"sub":"u2","sub":"u1","amr":["mfa"]}"#, Failure::UserinfoInvalid),
            (json, br#"{"amr":["mfa"]}"#, Failure::UserinfoInvalid),
            (json, br#"{"sub":1}"#, Failure::UserinfoInvalid),
            (json, br#"["u1"]"#, Failure::UserinfoInvalid),
            (json, b"<html>", Failure::UserinfoInvalid),
            (Some("text/html"), br#"{"sub":"u1"}"#, Failure::UserinfoInvalid),
            (None, br#"{"sub":"u1"}"#, Failure::UserinfoInvalid),
            (Some("application/jwt"), b"eyJ.eyJ.sig", Failure::UserinfoJwt),
        ] {
            assert_eq!(
                read_userinfo(content_type, body, "u1"),
                Err(why),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
