//! What `mfagate inspect` found, in the shape `--json` prints (docs/inspect.md). Nothing here
//! holds a token, a signature, a key or an assertion: claims, key ids and fingerprints only.

use crate::config::RouteConfig;
use crate::respond::{Refusal, refuse};
use mfagate_policy::{Decision, InvalidReason, Outcome, Reason};
use serde::Serialize;

/// Everything inspect found about one document.
#[derive(Debug, Serialize)]
pub struct Findings {
    /// What was given.
    pub document: DocumentInfo,
    /// Where the keys came from.
    pub key_source: KeySourceInfo,
    /// The exit code and what it means.
    pub verdict: Verdict,
    /// The first check that failed, if one did.
    pub invalid: Option<Problem>,
    /// The signature.
    pub signature: Signature,
    /// Checks that could not be made, each with why.
    pub not_checked: Vec<String>,
    /// Who issued it.
    pub issuer: IssuerInfo,
    /// A JWT's claims that matter.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwt: Option<serde_json::Value>,
    /// A SAML document's statements that matter.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub saml: Option<SamlInfo>,
    /// App+User, App-only or user, and the claim that decided.
    pub principal: Option<PrincipalInfo>,
    /// Whether MFA is proven, and by what.
    pub mfa: MfaInfo,
    /// What the gateway would answer on each configured route.
    pub routes: Vec<RouteOutcome>,
    /// What to change, most important first.
    pub advice: Vec<String>,
}

impl Findings {
    /// Nothing found yet about a document of `kind` given as `form`.
    pub fn new(kind: &'static str, form: &'static str, source: &super::sources::Source) -> Findings {
        Findings {
            document: DocumentInfo { kind, form, element: None, saml_version: None, used_as: None },
            key_source: KeySourceInfo { kind: source.kind(), location: source.location() },
            verdict: Verdict { exit_code: 2, result: "invalid", verified: false },
            invalid: None,
            signature: Signature::default(),
            not_checked: Vec::new(),
            issuer: IssuerInfo::default(),
            jwt: None,
            saml: None,
            principal: None,
            mfa: MfaInfo {
                verdict: "n/a",
                decided_by: None,
                value: None,
                reason: None,
                unread_location: None,
            },
            routes: Vec::new(),
            advice: Vec::new(),
        }
    }

    /// A document refused before (or instead of) a decision.
    pub fn refuse(&mut self, why: InvalidReason) {
        self.invalid = Some(Problem { reason: why.code(), description: why.description() });
        self.verdict = Verdict { exit_code: 2, result: "invalid", verified: false };
        if let Some(a) = super::advice::invalid(why, self.document.kind == "saml") {
            self.advice.insert(0, a.to_owned());
        }
    }

    /// A sign-in Response the ACS refuses whatever its signature, with the ACS's reason code.
    pub fn refuse_sign_in(&mut self, reason: &'static str, description: &'static str) {
        self.invalid = Some(Problem { reason, description });
        self.verdict = Verdict { exit_code: 2, result: "invalid", verified: self.verdict.verified };
    }

    /// The verdict from the policy's decision under the default route: 0 MFA proven, 1 valid
    /// without proven MFA (App-only included), 2 refused, or not verified unless `no_verify`.
    pub fn decide(&mut self, decision: Decision, verified: bool, no_verify: bool) {
        let (exit_code, result) = match decision.reason {
            Reason::InvalidToken(why) => {
                // Expired or not yet valid, say: the verifier may still have passed it.
                self.refuse(why);
                self.verdict.verified = verified;
                return;
            }
            Reason::NoToken | Reason::KeysUnavailable => (2, "invalid"),
            _ if !verified && !no_verify => (2, "not_verified"),
            Reason::MfaSatisfied => (0, "mfa_proven"),
            _ => (1, "mfa_not_proven"),
        };
        self.verdict = Verdict { exit_code, result, verified };
    }
}

/// What a refusal says of the signature: bad; verified (the verifier checks the signature before
/// the audience, and before what makes a sign-in Response); or not known (refused first, or
/// a reason either side of it).
pub fn signature_state(why: InvalidReason) -> Option<bool> {
    match why {
        InvalidReason::BadSignature => Some(false),
        InvalidReason::WrongAudience | InvalidReason::SsoResponse => Some(true),
        _ => None,
    }
}

/// What was given.
#[derive(Debug, Serialize)]
pub struct DocumentInfo {
    /// `jwt` or `saml`.
    pub kind: &'static str,
    /// `compact` (a JWT), `xml`, `base64` or `form` (a `SAMLResponse=` value).
    pub form: &'static str,
    /// SAML only: `Response` or `Assertion`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub element: Option<String>,
    /// SAML only: `2.0` or `1.1`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub saml_version: Option<&'static str>,
    /// SAML only: how the gateway would receive it (`api`: `Authorization: SAML`; `sign_in`: a
    /// browser post to the ACS; `grant`: an RFC 7522 assertion grant).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub used_as: Option<&'static str>,
}

/// Where the keys came from.
#[derive(Debug, Serialize)]
pub struct KeySourceInfo {
    /// `config`, `jwks`, `issuer`, `idp_metadata` or `none`.
    pub kind: &'static str,
    /// The file or URL given.
    pub location: Option<String>,
}

/// The exit code, and what it says.
#[derive(Debug, Serialize, Clone, Copy)]
pub struct Verdict {
    /// 0 MFA proven; 1 valid, MFA missing or unknown (App-only included); 2 invalid or not
    /// verified.
    pub exit_code: u8,
    /// `mfa_proven`, `mfa_not_proven`, `invalid` or `not_verified`.
    pub result: &'static str,
    /// Whether the document passed the verifier (signature, issuer, audience): the claims shown
    /// are proven. False: the verdict rests on unverified claims, or the verifier refused it.
    pub verified: bool,
}

/// A check that failed.
#[derive(Debug, Serialize)]
pub struct Problem {
    /// The gateway's reason code (`bad_signature`, `token_expired`, ...).
    pub reason: &'static str,
    /// What it means.
    pub description: &'static str,
}

/// The signature, and the key or certificate that verified it.
#[derive(Debug, Serialize, Default)]
pub struct Signature {
    /// Whether it was checked at all.
    pub checked: bool,
    /// Whether it verified (null when not checked, or when an earlier check failed first).
    pub valid: Option<bool>,
    /// JWT: the header's `alg`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    /// JWT: the `kid` of the key that verified it (else the header's `kid`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// JWT: that key's RFC 7638 thumbprint (SHA-256, base64url).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_thumbprint: Option<String>,
    /// SAML: the certificate that verified it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate: Option<CertificateInfo>,
    /// Why it was not checked, or not verified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A certificate, named without showing its key.
#[derive(Debug, Serialize)]
pub struct CertificateInfo {
    /// SHA-256 of the DER certificate, hex with colons.
    pub sha256: String,
    /// The subject, as OpenSSL prints it one line.
    pub subject: Option<String>,
    /// The end of its validity.
    pub not_after: Option<String>,
}

/// Who issued it.
#[derive(Debug, Serialize, Default)]
pub struct IssuerInfo {
    /// `iss` or the assertion's `Issuer`, as written.
    pub claimed: Option<String>,
    /// The configured `[[issuer]]` or `[[saml_idp]]` name that verified it.
    pub configured: Option<String>,
}

/// A SAML document's statements that matter.
#[derive(Debug, Serialize, Default)]
pub struct SamlInfo {
    /// The assertion's ID.
    pub assertion_id: String,
    /// `Audience` values.
    pub audiences: Vec<String>,
    /// `NameID` / `NameIdentifier`.
    pub name_id: Option<String>,
    /// The tenant, object id and UPN attributes.
    pub tenant_id: Option<String>,
    /// The object id attribute.
    pub object_id: Option<String>,
    /// The UPN (or name) attribute.
    pub upn: Option<String>,
    /// `NotBefore`.
    pub not_before: Option<Time>,
    /// `NotOnOrAfter` (conditions or bearer confirmation, the earlier).
    pub not_on_or_after: Option<Time>,
    /// Bearer `Recipient`.
    pub recipient: Option<String>,
    /// `InResponseTo`: a browser sign-in Response.
    pub in_response_to: Option<String>,
    /// `OneTimeUse` / `DoNotCacheCondition`.
    pub one_time_use: bool,
    /// The four places an MFA marker may be, what each holds and whether the IdP's
    /// `mfa_locations` reads it.
    pub mfa_locations: Vec<LocationInfo>,
}

/// One MFA location.
#[derive(Debug, Serialize)]
pub struct LocationInfo {
    /// Its `mfa_locations` name.
    pub location: &'static str,
    /// Where it sits.
    pub path: &'static str,
    /// What the assertion carries there.
    pub values: Vec<String>,
    /// Whether the configuration reads it.
    pub read: bool,
}

/// A time claim.
#[derive(Debug, Serialize, Clone)]
pub struct Time {
    /// Seconds since the Unix epoch.
    pub unix: u64,
    /// RFC 3339, UTC.
    pub utc: String,
}

impl Time {
    /// From Unix seconds.
    pub fn at(unix: u64) -> Time {
        Time { unix, utc: crate::clock::rfc3339_millis(unix.saturating_mul(1000)).replace(".000Z", "Z") }
    }
}

/// Who is calling.
#[derive(Debug, Serialize)]
pub struct PrincipalInfo {
    /// `app_user`, `app_only` or `user` (SAML).
    pub kind: &'static str,
    /// The claim that decided: `idtyp`, `scp`, `roles`, or `saml` (an assertion names a user).
    pub decided_by: &'static str,
}

/// Whether MFA is proven.
#[derive(Debug, Serialize)]
pub struct MfaInfo {
    /// `yes`, `no`, `unknown` (a v2 token without `amr`) or `n/a` (App-only, or nothing to read).
    pub verdict: &'static str,
    /// The claim or SAML location that decided (`amr`, `acrs`, `ver`, `authn_context`, ...).
    pub decided_by: Option<String>,
    /// The value that proved MFA.
    pub value: Option<String>,
    /// The gateway's reason code when it is not proven (`mfa_missing`, `mfa_unknown_v2`, ...).
    pub reason: Option<&'static str>,
    /// SAML: the location that does hold `multipleauthn` but that the IdP's `mfa_locations` does
    /// not read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unread_location: Option<&'static str>,
}

/// What the gateway would answer on one route.
#[derive(Debug, Serialize)]
pub struct RouteOutcome {
    /// The route's name.
    pub route: String,
    /// Its `path_prefix`.
    pub path_prefix: String,
    /// `api` or `portal`.
    pub channel: &'static str,
    /// The issuers and IdPs it takes (empty: all).
    pub accepts: Vec<String>,
    /// `allow`, `deny` or `challenge`.
    pub decision: &'static str,
    /// Whether the request reaches the upstream.
    pub forwarded: bool,
    /// The gateway's own status (null when forwarded: the upstream answers).
    pub status: Option<u16>,
    /// The reason code in the response and the decision record.
    pub reason: &'static str,
    /// The `WWW-Authenticate` header, if any.
    pub www_authenticate: Option<String>,
    /// What else to know.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl RouteOutcome {
    /// A route's outcome: `refusal` (from the request path's own choice) answered through the one
    /// table in `respond`, or forwarded.
    pub fn new(
        route: &RouteConfig,
        decision: &Decision,
        refusal: Option<Refusal<'_>>,
        claims_capable: bool,
    ) -> RouteOutcome {
        let (status, www_authenticate, reason) = match &refusal {
            Some(r) => {
                let rsp = refuse(r, "inspect");
                let www = rsp
                    .headers()
                    .get(http::header::WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                // A browser sent to sign in is recorded with the policy's reason, `login_required`
                // standing for `no_token` (as the portal records it).
                let code = match r {
                    Refusal::SignIn if decision.reason != Reason::NoToken => decision.reason.code(),
                    r => r.code(),
                };
                (Some(rsp.status().as_u16()), www, code)
            }
            None => (None, None, decision.reason.code()),
        };
        let mut outcome = RouteOutcome {
            route: route.name.clone(),
            path_prefix: route.path_prefix.clone(),
            channel: match route.channel {
                crate::config::Channel::Api => "api",
                crate::config::Channel::Portal => "portal",
            },
            accepts: route.issuers.clone(),
            decision: decision.outcome().as_str(),
            forwarded: status.is_none(),
            status,
            reason,
            www_authenticate,
            note: None,
        };
        if !decision.enforced
            && decision.outcome() != Outcome::Allow
            && decision.reason != Reason::PublicRoute
        {
            let would = refuse(
                &Refusal::Policy { reason: decision.reason, challenge: &route.challenge, claims_capable },
                "inspect",
            );
            outcome.note = Some(format!(
                "report-only: forwarded and recorded as {}; enforced it would be {}",
                decision.reason.code(),
                would.status().as_u16()
            ));
        }
        outcome
    }

    /// A browser sign-in the ACS refuses (its 403 page, with the reason code).
    pub fn sign_in_failed(route: &RouteConfig, reason: &'static str) -> RouteOutcome {
        RouteOutcome {
            route: route.name.clone(),
            path_prefix: route.path_prefix.clone(),
            channel: "portal",
            accepts: route.issuers.clone(),
            decision: Outcome::Deny.as_str(),
            forwarded: false,
            status: Some(403),
            reason,
            www_authenticate: None,
            note: Some("the ACS refuses this sign-in (its 403 page)".to_owned()),
        }
    }

    /// Adds a note.
    pub fn noted(mut self, note: impl Into<String>) -> RouteOutcome {
        let note = note.into();
        self.note = Some(match self.note.take() {
            Some(before) => format!("{note}; {before}"),
            None => note,
        });
        self
    }
}
