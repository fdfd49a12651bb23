//! RFC 7522 SAML bearer grants on token-endpoint routes: in a form-encoded token request with
//! `grant_type=urn:ietf:params:oauth:grant-type:saml2-bearer` (Microsoft's `saml1_1-bearer`, or an
//! RFC 8693 token exchange of a SAML `subject_token`), the assertion is the user's credential.
//! mfagate verifies it and holds it to MFA before the token endpoint can exchange it.
//!
//! The gateway and the token endpoint must see the same request, so anything the two could read
//! differently is refused rather than guessed at. Token endpoints differ: some fold the case of
//! methods and parameter names, PHP turns `.` into `_`, ASP.NET honours a form's charset, older
//! parsers split on `;`. So on these routes a request is one of two shapes, or refused:
//! - a POST (exactly) whose body is one plain form, in printable ASCII, UTF-8 or no charset, with
//!   lower-case `[a-z0-9_]` parameter names, each once;
//! - any other method with no body at all.
//!
//! Neither may carry grant parameters or `;` in the query, or a method-override header.

use crate::body::{Body, ReadError, full};
use http::{Method, Request, header};
use http_body::Body as _;

/// RFC 7522's grant type.
pub const SAML2_BEARER: &str = "urn:ietf:params:oauth:grant-type:saml2-bearer";
/// The SAML 1.1 grant type Microsoft's token endpoint accepts (AD FS assertions).
pub const SAML11_BEARER: &str = "urn:ietf:params:oauth:grant-type:saml1_1-bearer";
const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const SAML_TOKEN_TYPES: [&str; 2] =
    ["urn:ietf:params:oauth:token-type:saml2", "urn:ietf:params:oauth:token-type:saml1"];
/// Parameters that must only come in the body.
const BODY_ONLY: [&str; 5] =
    ["grant_type", "assertion", "subject_token", "subject_token_type", "client_assertion"];
const METHOD_OVERRIDES: [&str; 3] = ["x-http-method-override", "x-http-method", "x-method-override"];

/// Why a token request was not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    /// The body was too large, unreadable, or not received in time.
    Body(ReadError),
    /// The request could be read differently by the token endpoint, or lacks a parameter.
    Invalid,
}

fn form_content_type(req: &Request<Body>) -> Result<(), Rejected> {
    let mut types = req.headers().get_all(header::CONTENT_TYPE).iter();
    let (Some(value), None) = (types.next(), types.next()) else { return Err(Rejected::Invalid) };
    let value = value.to_str().map_err(|_| Rejected::Invalid)?.to_ascii_lowercase();
    let mut parts = value.split(';').map(str::trim);
    let form = parts.next() == Some("application/x-www-form-urlencoded");
    let plain = parts.all(|p| matches!(p.replace(' ', "").as_str(), "charset=utf-8" | "charset=us-ascii"));
    if form && plain { Ok(()) } else { Err(Rejected::Invalid) }
}

fn has_body(req: &Request<Body>) -> bool {
    let h = req.headers();
    h.contains_key(header::TRANSFER_ENCODING)
        || h.contains_key(header::CONTENT_TYPE)
        || h.get(header::CONTENT_LENGTH).is_some_and(|v| v.as_bytes() != b"0")
        || req.body().size_hint().lower() > 0
}

/// A parameter name every token endpoint reads the same way.
fn canonical_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

fn check_query(query: &str) -> Result<(), Rejected> {
    if query.contains(';') {
        return Err(Rejected::Invalid);
    }
    for (name, _) in form_urlencoded::parse(query.as_bytes()) {
        let folded = name.to_ascii_lowercase().replace(['.', ' ', '['], "_");
        if BODY_ONLY.iter().any(|p| folded.starts_with(p)) || !name.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Rejected::Invalid);
        }
    }
    Ok(())
}

/// Reads a token request. A POST must be a plain form: its body (at most `limit` bytes) is read,
/// put back unchanged, and its SAML grant returned (the assertion, base64url) if it makes one.
/// Other methods must have no body, and come back untouched.
pub async fn read(
    req: Request<Body>,
    limit: usize,
    timeout: std::time::Duration,
) -> Result<(Request<Body>, Option<String>), Rejected> {
    check_query(req.uri().query().unwrap_or_default())?;
    if METHOD_OVERRIDES.iter().any(|h| req.headers().contains_key(*h)) {
        return Err(Rejected::Invalid);
    }
    if req.method() != Method::POST {
        // `post` in another case is POST to some servers: refused, as is a body on any other method.
        if req.method().as_str().eq_ignore_ascii_case("POST") || has_body(&req) {
            return Err(Rejected::Invalid);
        }
        return Ok((req, None));
    }
    form_content_type(&req)?;
    if req.headers().contains_key(header::CONTENT_ENCODING) {
        return Err(Rejected::Invalid);
    }
    let (parts, body) = req.into_parts();
    let bytes = crate::body::read_bounded(body, limit, timeout).await.map_err(Rejected::Body)?;
    let grant = grant_of(&bytes)?;
    Ok((Request::from_parts(parts, full(bytes)), grant))
}

fn grant_of(form: &[u8]) -> Result<Option<String>, Rejected> {
    // Printable ASCII only: no BOM, NUL, raw spaces or other charsets; `;` is a separator to some.
    if form.iter().any(|b| !b.is_ascii_graphic() || *b == b';') {
        return Err(Rejected::Invalid);
    }
    let mut params: Vec<(String, String)> = Vec::new();
    for (name, value) in form_urlencoded::parse(form) {
        // A parameter sent twice is refused (RFC 6749 §3.2), whichever copy a server would take.
        if !canonical_name(&name)
            || params.iter().any(|(n, _)| *n == name)
            || value.chars().any(char::is_control)
        {
            return Err(Rejected::Invalid);
        }
        params.push((name.into_owned(), value.into_owned()));
    }
    // The values that decide whether this is a SAML grant must read the same everywhere.
    let tricky =
        |name: &str| params.iter().any(|(n, v)| n == name && !v.bytes().all(|b| b.is_ascii_graphic()));
    if tricky("grant_type") || tricky("subject_token_type") {
        return Err(Rejected::Invalid);
    }
    let get = |name: &str| params.iter().find(|(n, _)| n == name).map(|(_, v)| v.trim());
    let is = |value: Option<&str>, wanted: &str| value.is_some_and(|v| v.eq_ignore_ascii_case(wanted));
    let grant_type = get("grant_type");
    let assertion = if is(grant_type, SAML2_BEARER) || is(grant_type, SAML11_BEARER) {
        get("assertion")
    } else if is(grant_type, TOKEN_EXCHANGE)
        && SAML_TOKEN_TYPES.iter().any(|t| is(get("subject_token_type"), t))
    {
        get("subject_token")
    } else {
        return Ok(None);
    };
    assertion.filter(|a| !a.is_empty()).map(|a| Some(a.to_owned())).ok_or(Rejected::Invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saml_grants_carry_an_assertion_and_ambiguity_is_refused() {
        let form = |s: &str| grant_of(s.as_bytes());
        let g = format!("grant_type={}&assertion=PHNhbWw-&client_id=c", SAML2_BEARER.replace(':', "%3A"));
        assert_eq!(form(&g), Ok(Some("PHNhbWw-".into())));
        let upper = format!("grant_type={}&assertion=x", SAML11_BEARER.to_uppercase());
        assert_eq!(form(&upper), Ok(Some("x".into())));
        // Names and values other servers could read differently.
        for tricky in [
            format!("Grant_Type={SAML2_BEARER}&assertion=a"),
            format!("grant_type=client_credentials&GRANT_TYPE={SAML2_BEARER}&assertion=a"),
            format!("grant.type={SAML2_BEARER}&assertion=a"),
            format!("grant+type={SAML2_BEARER}&assertion=a"),
            format!("grant_type[]={SAML2_BEARER}&assertion=a"),
            format!("grant_type%00={SAML2_BEARER}&assertion=a"),
            format!("\u{feff}grant_type={SAML2_BEARER}&assertion=a"),
            "grant_type=urn:ietf:params:oauth:grant-type:%C5%BFaml2-bearer&assertion=a".to_owned(),
            format!("grant_type=%20{SAML2_BEARER}&assertion=a"),
            format!("=x&grant_type={SAML2_BEARER}&assertion=a"),
        ] {
            assert_eq!(form(&tricky), Err(Rejected::Invalid), "{tricky}");
        }
        let exchange = format!(
            "grant_type={TOKEN_EXCHANGE}&subject_token=s&subject_token_type=urn:ietf:params:oauth:token-type:saml2"
        );
        assert_eq!(form(&exchange), Ok(Some("s".into())));
        assert_eq!(form(&format!("grant_type={SAML11_BEARER}")), Err(Rejected::Invalid));
        assert_eq!(
            form(&format!("grant_type={SAML2_BEARER}&assertion=a&assertion=b")),
            Err(Rejected::Invalid)
        );
        assert_eq!(
            form(&format!("grant_type=x&grant_type={SAML2_BEARER}&assertion=a")),
            Err(Rejected::Invalid)
        );
        assert_eq!(form(&format!("grant_type={SAML2_BEARER};assertion=a")), Err(Rejected::Invalid));
        assert_eq!(form("grant_type=client_credentials&assertion=x"), Ok(None));
        assert_eq!(form("assertion=x"), Ok(None));
    }
}
