//! The JOSE header: what mfagate reads from it (`alg`, `kid`, `typ`) and what it refuses. No
//! extension is implemented, so any `crit` is refused (RFC 7515 §4.1.11), and so is `b64`
//! (RFC 7797) with or without `crit`; `cty: JWT` (a nested token) is refused too. Key-carrying
//! members (`jku`, `jwk`, `x5u`, `x5c`) are ignored: keys are found by `kid` alone.

use crate::config::media_type;
use mfagate_policy::InvalidReason;
use serde_json::{Map, Value};

/// The header members mfagate uses.
#[derive(Debug)]
pub struct Header {
    /// `alg`.
    pub alg: String,
    /// `kid`.
    pub kid: Option<String>,
    /// `typ`, as sent.
    pub typ: Option<String>,
}

/// Reads a header whose bytes passed [`super::compact::check_json`].
pub fn read(bytes: &[u8]) -> Result<Header, InvalidReason> {
    let members: Map<String, Value> = serde_json::from_slice(bytes).map_err(|_| InvalidReason::Malformed)?;
    if members.contains_key("crit") {
        return Err(InvalidReason::CritUnsupported);
    }
    if members.contains_key("b64") {
        return Err(InvalidReason::B64Unsupported);
    }
    let text = |name: &str| match members.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(InvalidReason::Malformed),
    };
    if text("cty")?.is_some_and(|cty| media_type(&cty) == "jwt") {
        return Err(InvalidReason::NestedJwt);
    }
    Ok(Header { alg: text("alg")?.ok_or(InvalidReason::Malformed)?, kid: text("kid")?, typ: text("typ")? })
}

/// What kind of token is expected.
#[derive(Debug, Clone, Copy)]
pub enum Expected<'a> {
    /// An access token for an issuer with these `typ` values (normalized by [`media_type`];
    /// empty: `typ` absent, `JWT` or `at+jwt`).
    Access(&'a [String]),
    /// An ID token from a sign-in: `typ` absent or `JWT` (so never an `at+jwt` access token).
    IdToken,
}

/// Whether a header `typ` fits what is expected. Without a configured list a token that says it
/// is another kind of JWT (`logout+jwt`, `secevent+jwt`, `dpop+jwt`, ...) is refused all the same.
pub fn typ_accepted(typ: Option<&str>, expected: Expected<'_>) -> bool {
    let typ = typ.map(media_type);
    match (expected, typ.as_deref()) {
        (Expected::IdToken, None | Some("jwt")) => true,
        (Expected::IdToken, Some(_)) => false,
        (Expected::Access([]), None | Some("jwt" | "at+jwt")) => true,
        (Expected::Access([]), Some(_)) => false,
        (Expected::Access(_), None) => false,
        (Expected::Access(allowed), Some(t)) => allowed.iter().any(|a| a == t),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_str(json: &str) -> Result<Header, InvalidReason> {
        read(json.as_bytes())
    }

    #[test]
    fn crit_b64_and_nested_tokens_are_refused_whatever_their_value() {
        for (json, why) in [
            (r#"{"alg":"RS256","crit":[]}"#, InvalidReason::CritUnsupported),
            (r#"{"alg":"RS256","crit":null}"#, InvalidReason::CritUnsupported),
            (r#"{"alg":"RS256","crit":["exp"],"exp":1}"#, InvalidReason::CritUnsupported),
            (r#"{"alg":"RS256","crit":["b64"],"b64":false}"#, InvalidReason::CritUnsupported),
            (r#"{"alg":"RS256","b64":false}"#, InvalidReason::B64Unsupported),
            (r#"{"alg":"RS256","b64":true}"#, InvalidReason::B64Unsupported),
            (r#"{"alg":"RS256","cty":"JWT"}"#, InvalidReason::NestedJwt),
            (r#"{"alg":"RS256","cty":"application/jwt"}"#, InvalidReason::NestedJwt),
            (r#"{"alg":"RS256","cty":1}"#, InvalidReason::Malformed),
            (r#"{"alg":1}"#, InvalidReason::Malformed),
            (r#"{"kid":"a"}"#, InvalidReason::Malformed),
            (r#"{"alg":"RS256","kid":["a"]}"#, InvalidReason::Malformed),
            (r#"{"alg":"RS256","typ":{}}"#, InvalidReason::Malformed),
        ] {
            assert_eq!(read_str(json).err(), Some(why), "{json}");
        }
        let ok = read_str(r#"{"alg":"RS256","kid":"k","typ":"JWT","cty":"json","jku":"http://x/"}"#).unwrap();
        assert_eq!(
            (ok.alg.as_str(), ok.kid.as_deref(), ok.typ.as_deref()),
            ("RS256", Some("k"), Some("JWT"))
        );
    }

    #[test]
    fn typ_is_compared_without_case_or_application_prefix() {
        let at = ["at+jwt".to_owned()];
        let cases = [
            (None, Expected::Access(&[]), true),
            (Some("JWT"), Expected::Access(&[]), true),
            (Some("application/AT+JWT"), Expected::Access(&[]), true),
            (Some("logout+jwt"), Expected::Access(&[]), false),
            (Some("secevent+jwt"), Expected::Access(&[]), false),
            (Some(""), Expected::Access(&[]), false),
            (Some("at+jwt"), Expected::Access(&at), true),
            (Some("Application/At+Jwt"), Expected::Access(&at), true),
            (Some("JWT"), Expected::Access(&at), false),
            (None, Expected::Access(&at), false),
            (Some("application/x/at+jwt"), Expected::Access(&at), false),
            (None, Expected::IdToken, true),
            (Some("jwt"), Expected::IdToken, true),
            (Some("at+jwt"), Expected::IdToken, false),
        ];
        for (typ, expected, accepted) in cases {
            assert_eq!(typ_accepted(typ, expected), accepted, "{typ:?} {expected:?}");
        }
    }
}
