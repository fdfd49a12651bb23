use crate::UnixTime;

/// Which Entra token format a JWT claims to be (`ver`). Other issuers send no `ver`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenVersion {
    /// `ver` = "1.0": `amr` is present for user tokens.
    V1,
    /// `ver` = "2.0": Entra puts no `amr` in v2 access tokens.
    V2,
    /// No `ver` claim (non-Entra issuers).
    Unversioned,
}

/// The `amr` claim as the token carried it. Kept raw so the policy can tell "absent" from
/// "malformed" from "present without MFA".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Amr {
    /// No `amr` claim.
    Absent,
    /// A JSON array of strings (RFC 8176).
    List(Vec<String>),
    /// A JSON string (non-standard); split only where the issuer is configured to be lenient.
    Text(String),
    /// Anything else (number, object, array with non-strings).
    Malformed,
}

/// Facts from a JWT whose signature, issuer and audience the gateway has verified.
/// Times are checked here, by the policy, against the caller's `now`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenFacts {
    /// `ver`.
    pub version: TokenVersion,
    /// `idtyp` ("app" or "user" in Entra tokens).
    pub idtyp: Option<String>,
    /// Whether `scp` (delegated scopes) is present and non-empty.
    pub has_scp: bool,
    /// Whether `roles` is present and non-empty.
    pub has_roles: bool,
    /// `amr`.
    pub amr: Amr,
    /// `acrs` (Conditional Access authentication-context ids).
    pub acrs: Vec<String>,
    /// `appidacr` (v1) or `azpacr` (v2): "0" means a public client.
    pub client_auth: Option<String>,
    /// `exp`.
    pub expires: UnixTime,
    /// `nbf`, if any.
    pub not_before: Option<UnixTime>,
}
