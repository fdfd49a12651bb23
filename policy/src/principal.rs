use crate::{Anomaly, InvalidReason, TokenFacts};

/// Who made a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Principal {
    /// A user acting through an application (delegated token). Counted in the API MFA metric.
    AppUser,
    /// An application acting as itself. Left out of every MFA metric.
    AppOnly,
    /// A user proven by a SAML assertion or a browser session. Counted as a user request.
    User,
    /// No verified credential.
    Anonymous,
}

impl Principal {
    /// The stable name used in logs, headers and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Principal::AppUser => "app_user",
            Principal::AppOnly => "app_only",
            Principal::User => "user",
            Principal::Anonymous => "anonymous",
        }
    }
}

/// The claim that decided App-only or App+User.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClassifiedBy {
    /// `idtyp` (`app` or `user`).
    Idtyp,
    /// `scp` present.
    Scp,
    /// `roles` present without `scp`.
    Roles,
}

impl ClassifiedBy {
    /// The claim's name.
    pub fn claim(self) -> &'static str {
        match self {
            ClassifiedBy::Idtyp => "idtyp",
            ClassifiedBy::Scp => "scp",
            ClassifiedBy::Roles => "roles",
        }
    }
}

/// Classifies a verified token (claims.md §2.3, §8.2): `idtyp` first (Microsoft calls it the most
/// accurate), then `scp` means App+User, `roles` alone means App-only, neither is invalid.
pub fn classify(facts: &TokenFacts) -> Result<(Principal, Vec<Anomaly>), InvalidReason> {
    classify_by(facts).map(|(principal, anomalies, _)| (principal, anomalies))
}

/// [`classify`], saying which claim decided.
pub fn classify_by(facts: &TokenFacts) -> Result<(Principal, Vec<Anomaly>, ClassifiedBy), InvalidReason> {
    let mut anomalies = Vec::new();
    let (principal, by) = match facts.idtyp.as_deref() {
        Some("app") => {
            if facts.has_scp {
                anomalies.push(Anomaly::AppTokenWithScopes);
            }
            (Principal::AppOnly, ClassifiedBy::Idtyp)
        }
        Some("user") if facts.has_scp || facts.has_roles => (Principal::AppUser, ClassifiedBy::Idtyp),
        _ if facts.has_scp => (Principal::AppUser, ClassifiedBy::Scp),
        _ if facts.has_roles => (Principal::AppOnly, ClassifiedBy::Roles),
        _ => return Err(InvalidReason::NoPermissionsClaim),
    };
    if principal == Principal::AppOnly && facts.client_auth.as_deref() == Some("0") {
        anomalies.push(Anomaly::AppOnlyPublicClient);
    }
    Ok((principal, anomalies, by))
}
