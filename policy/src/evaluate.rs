use crate::{
    AppOnlyAccess, AuthRequirement, Decision, InvalidReason, MfaOutcome, MfaRequirement,
    MfaSettings, Mode, Principal, Reason, RouteRule, TokenFacts, UnixTime, classify, evaluate_mfa,
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
        Credential::Token {
            facts,
            mfa,
            leeway_secs,
        } => (facts, mfa, leeway_secs),
    };
    if facts.expires.plus(leeway) <= now {
        return refuse(Reason::InvalidToken(InvalidReason::Expired));
    }
    if facts.not_before.is_some_and(|nbf| nbf > now.plus(leeway)) {
        return refuse(Reason::InvalidToken(InvalidReason::NotYetValid));
    }
    let (principal, anomalies) = match classify(facts) {
        Ok(found) => found,
        Err(why) => return refuse(Reason::InvalidToken(why)),
    };
    let (reason, mfa) = match principal {
        Principal::AppOnly if rule.app_only == AppOnlyAccess::Deny => (Reason::AppOnlyDenied, None),
        Principal::AppOnly | Principal::Anonymous => (Reason::AppOnlyAllowed, None),
        Principal::AppUser => match (evaluate_mfa(facts, mfa_settings), rule.mfa) {
            (MfaOutcome::Proven, _) => (Reason::MfaSatisfied, Some(true)),
            (MfaOutcome::NotProven(_), MfaRequirement::Optional) => {
                (Reason::MfaNotRequired, Some(false))
            }
            (MfaOutcome::NotProven(gap), MfaRequirement::Required) => {
                (Reason::MfaRequired(gap), Some(false))
            }
        },
    };
    Decision {
        reason,
        enforced: true,
        principal,
        mfa,
        anomalies,
    }
}

#[cfg(test)]
mod tests;
