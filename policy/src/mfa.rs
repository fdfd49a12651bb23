use crate::{Amr, MfaGap, TokenFacts, TokenVersion};

/// How an issuer's tokens prove MFA. Built from configuration by the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MfaSettings {
    /// `amr` elements that prove MFA, matched exactly and case-sensitively. Default `mfa`, `ngcmfa`.
    pub amr_values: Vec<String>,
    /// Authentication-context ids (`acrs`) that the tenant's Conditional Access maps to MFA.
    /// Empty by default: only trust one the tenant administrator has confirmed.
    pub mfa_acrs: Vec<String>,
    /// Accept a string `amr`, split on commas and white space. Off by default.
    pub amr_lenient: bool,
}

impl Default for MfaSettings {
    fn default() -> Self {
        MfaSettings {
            amr_values: vec!["mfa".to_owned(), "ngcmfa".to_owned()],
            mfa_acrs: Vec::new(),
            amr_lenient: false,
        }
    }
}

/// Whether a token proves MFA, and if not, why not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MfaOutcome {
    /// The token shows MFA.
    Proven,
    /// The token does not show MFA.
    NotProven(MfaGap),
}

// "Windows or MFA": Entra documents it, but it does not prove a second factor.
const WIA_OR_MFA: &str = "wiaormfa";

/// The claim value that proved MFA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MfaProof {
    /// An `amr` element (one of the issuer's `amr_values`).
    Amr(String),
    /// An `acrs` authentication-context id the issuer maps to MFA.
    Acrs(String),
}

/// Decides MFA for a token: an exact `amr` element or a configured `acrs` id.
pub fn evaluate_mfa(facts: &TokenFacts, settings: &MfaSettings) -> MfaOutcome {
    match mfa_proof(facts, settings) {
        Ok(_) => MfaOutcome::Proven,
        Err(gap) => MfaOutcome::NotProven(gap),
    }
}

/// [`evaluate_mfa`], saying which claim value proved MFA (or why nothing did).
pub fn mfa_proof(facts: &TokenFacts, settings: &MfaSettings) -> Result<MfaProof, MfaGap> {
    if let Some(id) = facts.acrs.iter().find(|a| settings.mfa_acrs.contains(a)) {
        return Ok(MfaProof::Acrs(id.clone()));
    }
    match &facts.amr {
        Amr::List(values) => from_values(values.iter().map(String::as_str), settings),
        Amr::Text(text) if settings.amr_lenient => {
            let values = text.split(|c: char| c == ',' || c.is_whitespace());
            from_values(values.filter(|v| !v.is_empty()), settings)
        }
        Amr::Text(_) | Amr::Malformed => Err(MfaGap::AmrMalformed),
        Amr::Absent if facts.version == TokenVersion::V2 => Err(MfaGap::UnknownV2),
        Amr::Absent => Err(MfaGap::AmrMissing),
    }
}

fn from_values<'a>(
    values: impl Iterator<Item = &'a str>,
    settings: &MfaSettings,
) -> Result<MfaProof, MfaGap> {
    let mut wia_or_mfa = false;
    for v in values {
        if settings.amr_values.iter().any(|m| m == v) {
            return Ok(MfaProof::Amr(v.to_owned()));
        }
        wia_or_mfa |= v == WIA_OR_MFA;
    }
    Err(if wia_or_mfa { MfaGap::WiaOrMfaOnly } else { MfaGap::NoMfaMethod })
}
