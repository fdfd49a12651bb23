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

/// Decides MFA for a token: an exact `amr` element or a configured `acrs` id.
pub fn evaluate_mfa(facts: &TokenFacts, settings: &MfaSettings) -> MfaOutcome {
    if facts.acrs.iter().any(|a| settings.mfa_acrs.contains(a)) {
        return MfaOutcome::Proven;
    }
    let gap = match &facts.amr {
        Amr::List(values) => return from_values(values.iter().map(String::as_str), settings),
        Amr::Text(text) if settings.amr_lenient => {
            let values = text.split(|c: char| c == ',' || c.is_whitespace());
            return from_values(values.filter(|v| !v.is_empty()), settings);
        }
        Amr::Text(_) | Amr::Malformed => MfaGap::AmrMalformed,
        Amr::Absent if facts.version == TokenVersion::V2 => MfaGap::UnknownV2,
        Amr::Absent => MfaGap::AmrMissing,
    };
    MfaOutcome::NotProven(gap)
}

fn from_values<'a>(values: impl Iterator<Item = &'a str>, settings: &MfaSettings) -> MfaOutcome {
    let mut wia_or_mfa = false;
    for v in values {
        if settings.amr_values.iter().any(|m| m == v) {
            return MfaOutcome::Proven;
        }
        wia_or_mfa |= v == WIA_OR_MFA;
    }
    MfaOutcome::NotProven(if wia_or_mfa { MfaGap::WiaOrMfaOnly } else { MfaGap::NoMfaMethod })
}
