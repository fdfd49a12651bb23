//! RFC 7522 SAML bearer grants on token-endpoint routes: in a form-encoded token request with
//! `grant_type=urn:ietf:params:oauth:grant-type:saml2-bearer` (or Entra's `saml1_1-bearer`), the
//! `assertion` is the user's credential. mfagate verifies it and holds it to MFA before the token
//! endpoint can exchange it, and answers refusals as the token endpoint would (RFC 6749 §5.2).

use crate::body::{Body, full};
use bytes::Bytes;
use http::{Method, Request, header};
use http_body_util::{BodyExt, Limited};
use mfagate_policy::InvalidReason;

/// RFC 7522's grant type.
pub const SAML2_BEARER: &str = "urn:ietf:params:oauth:grant-type:saml2-bearer";
/// The SAML 1.1 grant type Microsoft's token endpoint accepts (AD FS assertions).
pub const SAML11_BEARER: &str = "urn:ietf:params:oauth:grant-type:saml1_1-bearer";

/// A token request's SAML grant: the assertion (base64url), or why it cannot be read.
pub type SamlGrant = Result<String, InvalidReason>;

fn is_form(req: &Request<Body>) -> bool {
    req.method() == Method::POST
        && req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| {
            v.trim_start().to_ascii_lowercase().starts_with("application/x-www-form-urlencoded")
        })
}

/// Reads a form POST's body (at most `limit` bytes) and returns the request with that body put
/// back, and its SAML grant if it makes one. Other requests come back untouched, unread.
pub async fn read(req: Request<Body>, limit: usize) -> (Request<Body>, Option<SamlGrant>) {
    if !is_form(&req) {
        return (req, None);
    }
    let (parts, body) = req.into_parts();
    let bytes: Bytes = match Limited::new(body, limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            return (Request::from_parts(parts, crate::body::empty()), Some(Err(InvalidReason::TooLarge)));
        }
    };
    let grant = grant_of(&bytes);
    (Request::from_parts(parts, full(bytes)), grant)
}

fn grant_of(form: &[u8]) -> Option<SamlGrant> {
    let mut grant_type = None;
    let mut assertion = None;
    for (name, value) in form_urlencoded::parse(form) {
        match name.as_ref() {
            // A parameter sent twice is refused (RFC 6749 §3.2).
            "grant_type" if grant_type.is_some() => return Some(Err(InvalidReason::Malformed)),
            "assertion" if assertion.is_some() => return Some(Err(InvalidReason::Malformed)),
            "grant_type" => grant_type = Some(value.into_owned()),
            "assertion" => assertion = Some(value.into_owned()),
            _ => {}
        }
    }
    let saml = matches!(grant_type.as_deref(), Some(SAML2_BEARER | SAML11_BEARER));
    saml.then(|| assertion.ok_or(InvalidReason::Malformed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_saml_grants_carry_an_assertion() {
        let form = |s: &str| grant_of(s.as_bytes());
        let g = format!("grant_type={}&assertion=PHNhbWw-&client_id=c", SAML2_BEARER.replace(':', "%3A"));
        assert_eq!(form(&g), Some(Ok("PHNhbWw-".into())));
        assert_eq!(form(&format!("grant_type={SAML11_BEARER}")), Some(Err(InvalidReason::Malformed)));
        assert_eq!(
            form(&format!("grant_type={SAML2_BEARER}&assertion=a&assertion=b")),
            Some(Err(InvalidReason::Malformed))
        );
        assert_eq!(form("grant_type=client_credentials&assertion=x"), None);
        assert_eq!(form("assertion=x"), None);
    }
}
