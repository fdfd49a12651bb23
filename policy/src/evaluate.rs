use crate::{
    AppOnlyAccess, AuthRequirement, Decision, InvalidReason, MfaGap, MfaOutcome, MfaRequirement, MfaSettings,
    Mode, Principal, Reason, RouteRule, SamlFacts, SamlMfaSettings, TokenFacts, UnixTime, classify,
    evaluate_mfa, evaluate_saml_mfa,
};

/// What the gateway could establish about the request's credential.
#[derive(Debug, Clone, Copy)]
pub enum Credential<'a> {
    /// No credential was sent.
    None,
    /// A credential was sent and refused before its claims could be trusted.
    Invalid(InvalidReason),
    /// A credential was sent but its issuer's keys are not available.
    Unverifiable,
    /// A verified SAML assertion, with its identity provider's MFA settings and clock leeway.
    Saml {
        /// The verified facts.
        facts: &'a SamlFacts,
        /// The identity provider's MFA settings.
        mfa: &'a SamlMfaSettings,
        /// Allowed clock skew for `NotBefore`/`NotOnOrAfter`, seconds.
        leeway_secs: u64,
    },
    /// A browser session (sealed cookie) from an earlier sign-in.
    Session {
        /// Whether the sign-in showed MFA.
        mfa: bool,
        /// When the session ends.
        expires: UnixTime,
    },
    /// A verified JWT, with the settings of the issuer that signed it and its clock leeway.
    Token {
        /// The verified facts.
        facts: &'a TokenFacts,
        /// The issuer's MFA settings.
        mfa: &'a MfaSettings,
        /// Allowed clock skew for `exp`/`nbf`, seconds.
        leeway_secs: u64,
    },
}

/// The only function that produces a [`Decision`].
pub fn evaluate(rule: &RouteRule, credential: Credential<'_>, now: UnixTime) -> Decision {
    let mut decision = decide(rule, credential, now);
    decision.enforced = rule.mode == Mode::Enforce;
    if rule.auth == AuthRequirement::None {
        // Public routes never refuse. Refusals carry an anonymous caller; a valid token still
        // names its caller in the log.
        decision.reason = Reason::PublicRoute;
    }
    decision
}

fn decide(rule: &RouteRule, credential: Credential<'_>, now: UnixTime) -> Decision {
    let refuse = |reason| Decision {
        reason,
        enforced: true,
        principal: Principal::Anonymous,
        mfa: None,
        anomalies: Vec::new(),
    };
    let (facts, mfa_settings, leeway) = match credential {
        Credential::None => return refuse(Reason::NoToken),
        Credential::Invalid(why) => return refuse(Reason::InvalidToken(why)),
        Credential::Unverifiable => return refuse(Reason::KeysUnavailable),
        Credential::Saml { facts, mfa, leeway_secs } => {
            if let Some(why) = time_window(facts.expires, facts.not_before, leeway_secs, now) {
                return refuse(Reason::InvalidToken(why));
            }
            let (reason, mfa) = user_mfa(evaluate_saml_mfa(facts, mfa), rule.mfa);
            let principal = Principal::User;
            return Decision { reason, enforced: true, principal, mfa, anomalies: Vec::new() };
        }
        Credential::Session { mfa, expires } => {
            if expires <= now {
                return refuse(Reason::NoToken);
            }
            let outcome =
                if mfa { MfaOutcome::Proven } else { MfaOutcome::NotProven(MfaGap::SessionWithoutMfa) };
            let (reason, mfa) = user_mfa(outcome, rule.mfa);
            return Decision {
                reason,
                enforced: true,
                principal: Principal::User,
                mfa,
                anomalies: Vec::new(),
            };
        }
        Credential::Token { facts, mfa, leeway_secs } => (facts, mfa, leeway_secs),
    };
    if let Some(why) = time_window(facts.expires, facts.not_before, leeway, now) {
        return refuse(Reason::InvalidToken(why));
    }
    let (principal, anomalies) = match classify(facts) {
        Ok(found) => found,
        Err(why) => return refuse(Reason::InvalidToken(why)),
    };
    let (reason, mfa) = match principal {
        Principal::AppOnly if rule.app_only == AppOnlyAccess::Deny => (Reason::AppOnlyDenied, None),
        Principal::AppOnly | Principal::Anonymous => (Reason::AppOnlyAllowed, None),
        Principal::AppUser | Principal::User => user_mfa(evaluate_mfa(facts, mfa_settings), rule.mfa),
    };
    Decision { reason, enforced: true, principal, mfa, anomalies }
}

/// A user's MFA outcome against the route's requirement.
fn user_mfa(outcome: MfaOutcome, required: MfaRequirement) -> (Reason, Option<bool>) {
    match (outcome, required) {
        (MfaOutcome::Proven, _) => (Reason::MfaSatisfied, Some(true)),
        (MfaOutcome::NotProven(_), MfaRequirement::Optional) => (Reason::MfaNotRequired, Some(false)),
        (MfaOutcome::NotProven(gap), MfaRequirement::Required) => (Reason::MfaRequired(gap), Some(false)),
    }
}

/// Why `now` is outside `[not_before, expires)` with leeway on both sides, if it is.
pub fn time_window(
    expires: UnixTime,
    not_before: Option<UnixTime>,
    leeway: u64,
    now: UnixTime,
) -> Option<InvalidReason> {
    if expires.plus(leeway) <= now {
        return Some(InvalidReason::Expired);
    }
    not_before.is_some_and(|nbf| nbf > now.plus(leeway)).then_some(InvalidReason::NotYetValid)
}

#[cfg(test)]
mod tests;
