//! The one table from a refusal to its status, `WWW-Authenticate` header and JSON body.
//! Bodies carry only the stable reason code; details stay in the decision log.

use crate::body::{Body, full};
use crate::config::Challenge;
use base64::Engine;
use http::{HeaderValue, Response, StatusCode, header};
use mfagate_policy::{MfaGap, Reason};

/// Every way the gateway refuses a request.
#[derive(Debug, Clone, Copy)]
pub enum Refusal<'a> {
    /// The policy refused.
    Policy {
        /// Why.
        reason: Reason,
        /// The route's challenge style, for MFA refusals.
        challenge: &'a Challenge,
        /// Whether the client declared it can handle claims challenges (`xms_cc` ∋ `cp1`).
        claims_capable: bool,
    },
    /// No route matches.
    NoRoute,
    /// A request a server behind the gateway could read differently (400).
    BadRequest(BadRequest),
    /// The request head exceeds a limit (answered by hyper on HTTP/1).
    HeaderTooLarge,
    /// The request target exceeds hyper's limit (answered by hyper on HTTP/1).
    UriTooLong,
    /// A request line or header hyper cannot parse (answered by hyper on HTTP/1).
    Unparsable,
    /// A request head begun but not finished in time: the connection is closed, nothing is sent
    /// (recorded as 408, nginx's convention).
    HeaderTimeout,
    /// The upstream refused the connection or failed.
    UpstreamFailed,
    /// The upstream did not answer in time.
    UpstreamTimeout,
    /// Every upstream connection the open-files budget allows is in use, for the route's timeout.
    UpstreamBusy,
    /// The decision log cannot be written and the gateway fails closed.
    LogUnavailable,
    /// A browser is sent to sign in (302; the response is built by `portal`).
    SignIn,
    /// The loop guard stopped MFA re-prompts (403 page built by `portal`).
    MfaLoopGuard,
    /// A script or API call on a browser route without a usable session: 401, not a redirect.
    LoginRequired,
    /// An RFC 7522 grant whose assertion the policy refused: the token endpoint's own answer,
    /// `400 {"error":"invalid_grant"}` (RFC 6749 §5.2, RFC 7522 §3.1).
    InvalidGrant {
        /// Why.
        reason: Reason,
    },
    /// A token request the token endpoint could read differently (RFC 6749 `invalid_request`).
    InvalidTokenRequest,
    /// A body the gateway reads itself (token request, ACS post) over the limit.
    BodyTooLarge,
    /// A body the gateway reads itself not received in time (`body_read_timeout_secs`).
    BodyTimeout,
    /// A body the gateway reads itself that could not be read (aborted, bad framing).
    BodyUnreadable,
    /// A browser session from an identity provider the portal route does not take: the user is
    /// sent to sign in at the route's own (302; the response is built by `portal`).
    SessionFromOtherIdp,
    /// `Authorization: SAML` on a route that takes no SAML identity provider: answered as if no
    /// credential had been sent, and the assertion is never verified.
    SamlNotAccepted,
    /// The SAML verification queue is full (`[saml] max_pending_verifications`).
    SamlBusy,
    /// A one-time check (an assertion's first sight, a grant, a sign-in state) cannot reach the
    /// fleet's memory (`[cluster] on_failure = "closed"`).
    OnceUnavailable,
}

/// `Retry-After` on every 503, seconds.
pub const RETRY_AFTER_SECS: &str = "5";

impl Refusal<'_> {
    /// The stable reason code for logs and bodies.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::Policy { reason, .. } | Refusal::InvalidGrant { reason } => reason.code(),
            Refusal::NoRoute => "no_route",
            Refusal::BadRequest(why) => why.code(),
            Refusal::HeaderTooLarge => "header_too_large",
            Refusal::UriTooLong => "uri_too_long",
            Refusal::Unparsable => "bad_request",
            Refusal::HeaderTimeout => "header_timeout",
            Refusal::UpstreamFailed => "upstream_error",
            Refusal::UpstreamTimeout => "upstream_timeout",
            Refusal::UpstreamBusy => "upstream_busy",
            Refusal::LogUnavailable => "decision_log_unavailable",
            Refusal::SignIn => "login_required",
            Refusal::MfaLoopGuard => "mfa_loop_guard",
            Refusal::LoginRequired => "login_required",
            Refusal::InvalidTokenRequest => "invalid_token_request",
            Refusal::BodyTooLarge => "body_too_large",
            Refusal::BodyTimeout => "body_timeout",
            Refusal::BodyUnreadable => "body_unreadable",
            Refusal::SessionFromOtherIdp => "session_idp_mismatch",
            Refusal::SamlNotAccepted => "saml_not_accepted",
            Refusal::SamlBusy => "saml_busy",
            Refusal::OnceUnavailable => "one_time_check_unavailable",
        }
    }
}

/// Why a request is refused for its shape, before any credential is looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadRequest {
    /// Its path cannot be canonicalized safely (or has `;` parameters the route does not allow).
    Path(mfagate_policy::path::PathError),
    /// The URI's authority and `Host` disagree.
    HostMismatch,
    /// Several `Host` headers, or one that is not a host.
    HostInvalid,
    /// A header name with `_`, under `headers_with_underscores = "refuse"`.
    HeaderUnderscore,
    /// A method with lower-case letters (upstreams may read `get` as `GET`, routes do not), or
    /// CONNECT or TRACE, which no route serves.
    MethodInvalid,
    /// `_method` in the query: the upstream would run another method than the one decided.
    MethodOverride,
}

impl BadRequest {
    /// The stable reason code.
    pub fn code(self) -> &'static str {
        match self {
            BadRequest::Path(why) => why.code(),
            BadRequest::HostMismatch => "host_mismatch",
            BadRequest::HostInvalid => "host_invalid",
            BadRequest::HeaderUnderscore => "header_name_underscore",
            BadRequest::MethodInvalid => "method_invalid",
            BadRequest::MethodOverride => "method_override",
        }
    }
}

const MFA_RFC9470: &str = "Multi-factor authentication is required";

/// Status, `WWW-Authenticate` and reason phrase for a refusal. The one table.
fn table(refusal: &Refusal<'_>) -> (StatusCode, Option<String>, Option<&'static str>) {
    use StatusCode as S;
    let Refusal::Policy { reason, challenge, claims_capable } = refusal else {
        if let Refusal::SamlNotAccepted = refusal {
            return table(&Refusal::Policy {
                reason: Reason::NoToken,
                challenge: &Challenge::PartnerCenter,
                claims_capable: false,
            });
        }
        let status = match refusal {
            Refusal::NoRoute => S::NOT_FOUND,
            Refusal::HeaderTooLarge => S::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Refusal::UriTooLong => S::URI_TOO_LONG,
            Refusal::Unparsable => S::BAD_REQUEST,
            Refusal::HeaderTimeout => S::REQUEST_TIMEOUT,
            Refusal::UpstreamFailed => S::BAD_GATEWAY,
            Refusal::UpstreamTimeout => S::GATEWAY_TIMEOUT,
            Refusal::UpstreamBusy => S::SERVICE_UNAVAILABLE,
            Refusal::LogUnavailable
            | Refusal::SamlBusy
            | Refusal::OnceUnavailable
            | Refusal::Policy { .. } => S::SERVICE_UNAVAILABLE,
            Refusal::SignIn | Refusal::SessionFromOtherIdp => S::FOUND,
            Refusal::MfaLoopGuard => S::FORBIDDEN,
            Refusal::LoginRequired | Refusal::SamlNotAccepted => S::UNAUTHORIZED,
            Refusal::InvalidGrant { .. }
            | Refusal::InvalidTokenRequest
            | Refusal::BodyUnreadable
            | Refusal::BadRequest(_) => S::BAD_REQUEST,
            Refusal::BodyTooLarge => S::PAYLOAD_TOO_LARGE,
            Refusal::BodyTimeout => S::REQUEST_TIMEOUT,
        };
        return (status, None, None);
    };
    let bearer = |error: &str, description: &str| {
        format!("Bearer error=\"{error}\", error_description=\"{description}\"")
    };
    match reason {
        Reason::MfaSatisfied | Reason::MfaNotRequired | Reason::AppOnlyAllowed | Reason::PublicRoute => {
            (S::OK, None, None)
        }
        // RFC 6750 §3.1: no error parameter when the request carried no credential.
        Reason::NoToken => (S::UNAUTHORIZED, Some("Bearer realm=\"mfagate\"".into()), None),
        Reason::InvalidToken(why) => {
            (S::UNAUTHORIZED, Some(bearer("invalid_token", why.description())), None)
        }
        Reason::KeysUnavailable => (S::SERVICE_UNAVAILABLE, None, None),
        Reason::AppOnlyDenied => (
            S::FORBIDDEN,
            Some(bearer("insufficient_scope", "App-only tokens are not accepted on this route")),
            None,
        ),
        Reason::MfaRequired(gap) => mfa_challenge(*gap, challenge, *claims_capable),
    }
}

fn mfa_challenge(
    _gap: MfaGap,
    challenge: &Challenge,
    claims_capable: bool,
) -> (StatusCode, Option<String>, Option<&'static str>) {
    let partner_center = (
        StatusCode::UNAUTHORIZED,
        Some("Bearer error=\"invalid_token\", error_description=\"MFA required\"".to_owned()),
        Some("Unauthorized - MFA required"),
    );
    match challenge {
        Challenge::PartnerCenter => partner_center,
        Challenge::Rfc9470 { acr_values } => {
            let mut h = format!(
                "Bearer error=\"insufficient_user_authentication\", error_description=\"{MFA_RFC9470}\""
            );
            if let Some(acr) = acr_values {
                h.push_str(&format!(", acr_values=\"{acr}\""));
            }
            (StatusCode::UNAUTHORIZED, Some(h), None)
        }
        Challenge::EntraClaims { auth_context, authorization_uri } if claims_capable => {
            let claims =
                serde_json::json!({"access_token": {"acrs": {"essential": true, "value": auth_context}}});
            let b64 = base64::engine::general_purpose::STANDARD.encode(claims.to_string());
            let mut h = String::from("Bearer realm=\"\"");
            if let Some(uri) = authorization_uri {
                h.push_str(&format!(", authorization_uri=\"{uri}\""));
            }
            h.push_str(&format!(", error=\"insufficient_claims\", claims=\"{b64}\""));
            (StatusCode::UNAUTHORIZED, Some(h), None)
        }
        Challenge::EntraClaims { .. } => partner_center,
    }
}

/// The status a refusal is answered with.
pub fn status(refusal: &Refusal<'_>) -> StatusCode {
    table(refusal).0
}

/// Builds the response for a refusal.
pub fn refuse(refusal: &Refusal<'_>, request_id: &str) -> Response<Body> {
    let (status, www_authenticate, phrase) = table(refusal);
    let body = match refusal {
        Refusal::InvalidGrant { .. } => serde_json::json!({
            "error": "invalid_grant",
            "error_description": refusal.code(),
            "request_id": request_id,
        }),
        Refusal::InvalidTokenRequest => serde_json::json!({
            "error": "invalid_request",
            "error_description": refusal.code(),
            "request_id": request_id,
        }),
        _ => serde_json::json!({
            "error": refusal.code(),
            "status": status.as_u16(),
            "request_id": request_id,
        }),
    };
    let mut rsp = Response::new(full(body.to_string()));
    *rsp.status_mut() = status;
    let headers = rsp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(value) = www_authenticate.and_then(|v| HeaderValue::from_str(&v).ok()) {
        headers.insert(header::WWW_AUTHENTICATE, value);
    }
    if status == StatusCode::SERVICE_UNAVAILABLE {
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECS));
    }
    if let Some(phrase) = phrase {
        rsp.extensions_mut().insert(hyper::ext::ReasonPhrase::from_static(phrase.as_bytes()));
    }
    rsp
}

impl From<crate::body::ReadError> for Refusal<'static> {
    fn from(e: crate::body::ReadError) -> Refusal<'static> {
        use crate::body::ReadError;
        match e {
            ReadError::TooLarge => Refusal::BodyTooLarge,
            ReadError::Unreadable => Refusal::BodyUnreadable,
            ReadError::TimedOut => Refusal::BodyTimeout,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mfagate_policy::InvalidReason;

    fn www(refusal: Refusal<'_>) -> (u16, Option<String>) {
        let (s, h, _) = table(&refusal);
        (s.as_u16(), h)
    }

    #[test]
    fn entra_claims_challenge_matches_claims_md_case_15() {
        let c = Challenge::EntraClaims { auth_context: "c1".into(), authorization_uri: None };
        let r = Refusal::Policy {
            reason: Reason::MfaRequired(MfaGap::UnknownV2),
            challenge: &c,
            claims_capable: true,
        };
        let (s, h) = www(r);
        assert_eq!(s, 401);
        assert_eq!(
            h.unwrap(),
            "Bearer realm=\"\", error=\"insufficient_claims\", claims=\"eyJhY2Nlc3NfdG9rZW4iOnsiYWNycyI6eyJlc3NlbnRpYWwiOnRydWUsInZhbHVlIjoiYzEifX19\""
        );
        let r = Refusal::Policy {
            reason: Reason::MfaRequired(MfaGap::UnknownV2),
            challenge: &c,
            claims_capable: false,
        };
        assert_eq!(www(r).1.unwrap(), "Bearer error=\"invalid_token\", error_description=\"MFA required\"");
    }

    #[test]
    fn one_error_parameter_per_challenge() {
        let pc = Challenge::PartnerCenter;
        let rfc = Challenge::Rfc9470 { acr_values: Some("urn:mfa".into()) };
        let cases = [
            (Reason::NoToken, &pc, 401, 0),
            (Reason::InvalidToken(InvalidReason::Expired), &pc, 401, 1),
            (Reason::AppOnlyDenied, &pc, 403, 1),
            (Reason::MfaRequired(MfaGap::NoMfaMethod), &pc, 401, 1),
            (Reason::MfaRequired(MfaGap::NoMfaMethod), &rfc, 401, 1),
            (Reason::KeysUnavailable, &pc, 503, 0),
        ];
        for (reason, challenge, status, errors) in cases {
            let (s, h) = www(Refusal::Policy { reason, challenge, claims_capable: false });
            assert_eq!(s, status, "{reason:?}");
            assert_eq!(h.unwrap_or_default().matches("error=").count(), errors, "{reason:?}");
        }
    }
}
