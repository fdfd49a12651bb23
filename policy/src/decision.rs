use crate::Principal;

/// What happens to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Forward to the upstream.
    Allow,
    /// Refuse (401 invalid token, 403, 503 ...).
    Deny,
    /// Refuse with an MFA challenge: the caller should come back with an MFA token.
    Challenge,
}

impl Outcome {
    /// The stable name used in logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Allow => "allow",
            Outcome::Deny => "deny",
            Outcome::Challenge => "challenge",
        }
    }
}

/// Why a credential was not accepted. Each maps to 401 `invalid_token`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InvalidReason {
    /// Not a JWT: wrong segment count, bad base64url, not UTF-8, bad or too deeply nested JSON.
    Malformed,
    /// Longer than the configured limit.
    TooLarge,
    /// `alg` not in the issuer's allow-list (`none` and `HS*` never are), or inconsistent with the key.
    AlgorithmNotAllowed,
    /// No key with this `kid`, even after a refetch.
    UnknownKey,
    /// The signature does not verify.
    BadSignature,
    /// `exp` is in the past beyond the leeway.
    Expired,
    /// `nbf` is in the future beyond the leeway.
    NotYetValid,
    /// `iss` matches no configured issuer.
    UnknownIssuer,
    /// `iss` does not match the issuer for the token's `tid`.
    WrongIssuer,
    /// `tid` is not in the issuer's tenant allow-list.
    TenantNotAllowed,
    /// `aud` is not one of the issuer's audiences.
    WrongAudience,
    /// A required claim is missing or has the wrong shape (`exp`, `tid`, `ver`...).
    ClaimsInvalid,
    /// Neither `scp`, `roles` nor `idtyp=app`: the token grants nothing.
    NoPermissionsClaim,
    /// A SAML assertion ID seen before in another document (or at the ACS, seen at all).
    Replayed,
    /// A SAML signature that does not sit on, and cover, the one assertion (wrapping guard).
    SignatureMisplaced,
    /// The JWT header has `crit` (RFC 7515 §4.1.11): no extension is implemented, so any is refused.
    CritUnsupported,
    /// The JWT header has `b64` (RFC 7797 unencoded payload), which is not accepted.
    B64Unsupported,
    /// The JWT header says `cty: JWT`: a nested token, which is not accepted.
    NestedJwt,
    /// The JWT header's `typ` is not one the issuer accepts (RFC 8725 §3.11).
    TypNotAllowed,
    /// A JSON member name appears twice in the JWT header or payload (parsers disagree on which wins).
    DuplicateJsonKey,
    /// A browser sign-in Response (for our ACS) presented as an API credential.
    SsoResponse,
    /// A SAML signature that names a SHA-1 or MD5 signature or digest method: refused before it
    /// is checked, so a valid one is refused too.
    WeakAlgorithm(WeakAlgorithm),
}

/// A signature or digest method refused as too weak, by its XML-DSig URI. Only this fixed list
/// is named in logs and decision records, never a URI as a document spelled it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WeakAlgorithm {
    /// RSA PKCS#1 v1.5 with SHA-1 (pysaml2's default, many older AD FS farms).
    RsaSha1,
    /// DSA with SHA-1.
    DsaSha1,
    /// ECDSA with SHA-1.
    EcdsaSha1,
    /// HMAC-SHA1.
    HmacSha1,
    /// RSA with MD5.
    RsaMd5,
    /// The SHA-1 digest method.
    Sha1,
    /// The MD5 digest method.
    Md5,
}

impl WeakAlgorithm {
    /// Every weak algorithm.
    pub const ALL: [WeakAlgorithm; 7] = [
        WeakAlgorithm::RsaSha1,
        WeakAlgorithm::DsaSha1,
        WeakAlgorithm::EcdsaSha1,
        WeakAlgorithm::HmacSha1,
        WeakAlgorithm::RsaMd5,
        WeakAlgorithm::Sha1,
        WeakAlgorithm::Md5,
    ];

    /// The algorithm's URI.
    pub fn uri(self) -> &'static str {
        match self {
            WeakAlgorithm::RsaSha1 => "http://www.w3.org/2000/09/xmldsig#rsa-sha1",
            WeakAlgorithm::DsaSha1 => "http://www.w3.org/2000/09/xmldsig#dsa-sha1",
            WeakAlgorithm::EcdsaSha1 => "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha1",
            WeakAlgorithm::HmacSha1 => "http://www.w3.org/2000/09/xmldsig#hmac-sha1",
            WeakAlgorithm::RsaMd5 => "http://www.w3.org/2001/04/xmldsig-more#rsa-md5",
            WeakAlgorithm::Sha1 => "http://www.w3.org/2000/09/xmldsig#sha1",
            WeakAlgorithm::Md5 => "http://www.w3.org/2001/04/xmldsig-more#md5",
        }
    }

    /// The weak algorithm `uri` names, if it names one (exactly, as XML-DSig compares them).
    pub fn from_uri(uri: &str) -> Option<WeakAlgorithm> {
        WeakAlgorithm::ALL.into_iter().find(|a| a.uri() == uri)
    }
}

impl InvalidReason {
    /// The stable reason code.
    pub fn code(self) -> &'static str {
        match self {
            InvalidReason::Malformed => "token_malformed",
            InvalidReason::TooLarge => "token_too_large",
            InvalidReason::AlgorithmNotAllowed => "alg_not_allowed",
            InvalidReason::UnknownKey => "unknown_kid",
            InvalidReason::BadSignature => "bad_signature",
            InvalidReason::Expired => "token_expired",
            InvalidReason::NotYetValid => "token_not_yet_valid",
            InvalidReason::UnknownIssuer => "unknown_issuer",
            InvalidReason::WrongIssuer => "wrong_issuer",
            InvalidReason::TenantNotAllowed => "tenant_not_allowed",
            InvalidReason::WrongAudience => "wrong_audience",
            InvalidReason::ClaimsInvalid => "claims_invalid",
            InvalidReason::NoPermissionsClaim => "no_permissions_claim",
            InvalidReason::Replayed => "assertion_replayed",
            InvalidReason::SignatureMisplaced => "signature_misplaced",
            InvalidReason::CritUnsupported => "crit_unsupported",
            InvalidReason::B64Unsupported => "b64_unsupported",
            InvalidReason::NestedJwt => "nested_jwt",
            InvalidReason::TypNotAllowed => "typ_not_allowed",
            InvalidReason::DuplicateJsonKey => "duplicate_json_key",
            InvalidReason::SsoResponse => "sso_response_not_api_credential",
            InvalidReason::WeakAlgorithm(_) => "weak_algorithm",
        }
    }

    /// What the code alone does not say, for the decision record: a weak algorithm's URI.
    pub fn detail(self) -> Option<&'static str> {
        match self {
            InvalidReason::WeakAlgorithm(a) => Some(a.uri()),
            _ => None,
        }
    }

    /// A short description for `error_description`; never contains token content.
    pub fn description(self) -> &'static str {
        match self {
            InvalidReason::Malformed => "The token is malformed",
            InvalidReason::TooLarge => "The token is too large",
            InvalidReason::AlgorithmNotAllowed => "The token algorithm is not allowed",
            InvalidReason::UnknownKey => "The token signing key is unknown",
            InvalidReason::BadSignature => "The token signature is invalid",
            InvalidReason::Expired => "The token is expired",
            InvalidReason::NotYetValid => "The token is not yet valid",
            InvalidReason::UnknownIssuer => "The token issuer is not trusted",
            InvalidReason::WrongIssuer => "The token issuer does not match its tenant",
            InvalidReason::TenantNotAllowed => "The token tenant is not allowed",
            InvalidReason::WrongAudience => "The token audience is not accepted",
            InvalidReason::ClaimsInvalid => "The token claims are invalid",
            InvalidReason::NoPermissionsClaim => "The token carries no scp, roles or idtyp claim",
            InvalidReason::Replayed => "The assertion was already used",
            InvalidReason::SignatureMisplaced => "The signature does not cover the assertion",
            InvalidReason::CritUnsupported => {
                "The token header names a critical extension that is not supported"
            }
            InvalidReason::B64Unsupported => "The token payload encoding (b64) is not supported",
            InvalidReason::NestedJwt => "Nested tokens are not accepted",
            InvalidReason::TypNotAllowed => "The token type is not accepted",
            InvalidReason::DuplicateJsonKey => "The token repeats a JSON member name",
            InvalidReason::SsoResponse => "A browser sign-in response is not an API credential",
            InvalidReason::WeakAlgorithm(_) => "The signature uses a weak algorithm (SHA-1 or MD5)",
        }
    }
}

/// Why a user token does not show MFA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MfaGap {
    /// No `amr` claim in a v1 (or unversioned) token.
    AmrMissing,
    /// `amr` is not an array of strings (and the issuer is not lenient).
    AmrMalformed,
    /// `amr` holds `wiaormfa` ("Windows or MFA"), which does not prove MFA.
    WiaOrMfaOnly,
    /// `amr` holds no MFA method.
    NoMfaMethod,
    /// A v2 token: Entra sends no `amr` in v2 access tokens, so MFA is unknown.
    UnknownV2,
    /// A SAML assertion without `multipleauthn` in any configured location.
    SamlNoMfa,
    /// A SAML assertion with only `wiaormultiauthn` ("Windows or MFA").
    SamlWiaOrMultiAuthnOnly,
    /// A browser session whose sign-in did not show MFA.
    SessionWithoutMfa,
}

impl MfaGap {
    /// The stable reason code.
    pub fn code(self) -> &'static str {
        match self {
            MfaGap::AmrMissing => "amr_missing",
            MfaGap::AmrMalformed => "amr_malformed",
            MfaGap::WiaOrMfaOnly => "amr_wiaormfa_not_mfa",
            MfaGap::NoMfaMethod => "mfa_missing",
            MfaGap::UnknownV2 => "mfa_unknown_v2",
            MfaGap::SamlNoMfa => "saml_mfa_missing",
            MfaGap::SamlWiaOrMultiAuthnOnly => "saml_wiaormultiauthn_not_mfa",
            MfaGap::SessionWithoutMfa => "session_without_mfa",
        }
    }
}

/// Why a decision was made. Exhaustive on purpose: adding a reason forces the gateway's
/// response table to choose its status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// App+User with MFA.
    MfaSatisfied,
    /// App+User without MFA on a route where MFA is optional.
    MfaNotRequired,
    /// App-only on a route that allows it.
    AppOnlyAllowed,
    /// A route with `auth = "none"`.
    PublicRoute,
    /// No credential on a route that requires one.
    NoToken,
    /// The credential was refused.
    InvalidToken(InvalidReason),
    /// The issuer's keys are not loaded yet (or could not be fetched), so nothing can be verified.
    KeysUnavailable,
    /// App-only on a route that denies it.
    AppOnlyDenied,
    /// App+User without MFA on a route that requires it.
    MfaRequired(MfaGap),
}

impl Reason {
    /// The stable reason code written to the decision log and response bodies.
    pub fn code(self) -> &'static str {
        match self {
            Reason::MfaSatisfied => "mfa_satisfied",
            Reason::MfaNotRequired => "mfa_not_required",
            Reason::AppOnlyAllowed => "app_only_allowed",
            Reason::PublicRoute => "public_route",
            Reason::NoToken => "no_token",
            Reason::InvalidToken(r) => r.code(),
            Reason::KeysUnavailable => "keys_unavailable",
            Reason::AppOnlyDenied => "app_only_denied",
            Reason::MfaRequired(gap) => gap.code(),
        }
    }

    /// What the code alone does not say (see [`InvalidReason::detail`]).
    pub fn detail(self) -> Option<&'static str> {
        match self {
            Reason::InvalidToken(r) => r.detail(),
            _ => None,
        }
    }

    /// The outcome this reason stands for.
    pub fn outcome(self) -> Outcome {
        match self {
            Reason::MfaSatisfied | Reason::MfaNotRequired | Reason::AppOnlyAllowed | Reason::PublicRoute => {
                Outcome::Allow
            }
            Reason::NoToken | Reason::InvalidToken(_) | Reason::KeysUnavailable | Reason::AppOnlyDenied => {
                Outcome::Deny
            }
            Reason::MfaRequired(_) => Outcome::Challenge,
        }
    }
}

/// Something odd about an accepted token, worth a line in the decision log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Anomaly {
    /// `idtyp=app` together with `scp`: treated as App-only.
    AppTokenWithScopes,
    /// An App-only token from a public client (`appidacr`/`azpacr` = "0").
    AppOnlyPublicClient,
}

impl Anomaly {
    /// The stable code.
    pub fn code(self) -> &'static str {
        match self {
            Anomaly::AppTokenWithScopes => "idtyp_app_with_scp",
            Anomaly::AppOnlyPublicClient => "app_only_public_client",
        }
    }
}

/// The policy's answer for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct Decision {
    /// Why; the outcome follows from it.
    pub reason: Reason,
    /// False in report-only mode: the request is forwarded whatever the outcome.
    pub enforced: bool,
    /// Who called.
    pub principal: Principal,
    /// MFA for App+User callers; `None` for App-only and anonymous callers, who are left out of
    /// the MFA metric.
    pub mfa: Option<bool>,
    /// Oddities worth logging.
    pub anomalies: Vec<Anomaly>,
}

impl Decision {
    /// The outcome of [`Decision::reason`].
    pub fn outcome(&self) -> Outcome {
        self.reason.outcome()
    }

    /// Whether the request goes to the upstream.
    pub fn forwards(&self) -> bool {
        self.outcome() == Outcome::Allow || !self.enforced
    }
}
