//! What to change at the identity provider (or in the configuration) when MFA is not proven or
//! the document is refused. Each text names the claim, the setting or the rule to add.

use mfagate_policy::{InvalidReason, MfaGap, SamlLocation};

/// The AD FS issuance transform rule (claim rule language) that passes the authentication methods
/// through, `multipleauthn` included when AD FS (or its MFA adapter) did MFA.
pub const ADFS_RULE: &str = "@RuleName = \"Pass through authnmethodsreferences\"\n\
c:[Type == \"http://schemas.microsoft.com/claims/authnmethodsreferences\"]\n => issue(claim = c);";

/// AD FS: where the rule goes, and what Entra needs to honour it.
pub fn adfs(for_entra: bool) -> String {
    let mut text = format!(
        "AD FS must issue authnmethodsreferences with http://schemas.microsoft.com/claims/multipleauthn \
         when the user did MFA. Add this issuance transform rule to the relying party trust \
         (AD FS Management > Relying Party Trusts > Edit Claim Issuance Policy > Add Rule > \
         Send Claims Using a Custom Rule):\n{ADFS_RULE}"
    );
    if for_entra {
        text.push_str(
            "\nFor users federated into Entra ID, Entra turns it into amr \"mfa\" only when the domain's \
             federatedIdpMfaBehavior is acceptIfMfaDoneByFederatedIdp or enforceMfaByFederatedIdp \
             (Microsoft Graph: internalDomainFederation).",
        );
    }
    text
}

/// A JWT whose MFA is not proven. `amr` and `acrs` are the token's values, `ver` its version.
pub fn jwt_gap(gap: MfaGap, amr: &[String], acrs: &[String], looks_adfs: bool) -> Vec<String> {
    let mut out = Vec::new();
    match gap {
        MfaGap::UnknownV2 => {
            out.push(
                "A v2.0 access token carries no amr: Entra ID puts amr only in v1.0 access tokens, so MFA \
                 cannot be seen. Either have the API's app registration issue v1.0 tokens (manifest: \
                 \"requestedAccessTokenVersion\": null or 1, formerly accessTokenAcceptedVersion; request \
                 the token for the API's v1 audience), or require an authentication context in Conditional \
                 Access and list its id in the issuer's mfa_acrs, so that acrs proves MFA."
                    .to_owned(),
            );
            if !acrs.is_empty() {
                out.push(format!(
                    "The token carries acrs {acrs:?}, none of them in the issuer's mfa_acrs: add the one \
                     your Conditional Access policy maps to \"require multifactor authentication\" \
                     (only if the tenant administrator confirms it)."
                ));
            }
        }
        MfaGap::WiaOrMfaOnly => out.push(
            "amr holds \"wiaormfa\" (Windows integrated authentication OR MFA): it does not prove a second \
             factor, and Partner Center does not count it. Require MFA for this sign-in (Conditional \
             Access, or the federated IdP's MFA) so that amr carries \"mfa\"."
                .to_owned(),
        ),
        MfaGap::AmrMalformed => out.push(
            "amr is not a JSON array of strings (RFC 8176). Fix the IdP's claim mapping; a string such \
             as \"pwd mfa\" is accepted only with amr_lenient = true on the issuer."
                .to_owned(),
        ),
        MfaGap::AmrMissing => out.push(
            "The token has no amr claim, so MFA cannot be seen. Entra ID v1.0 access tokens carry it; \
             another OpenID provider must be configured to emit amr (RFC 8176) in access tokens."
                .to_owned(),
        ),
        MfaGap::NoMfaMethod => {
            let near: Vec<&String> = amr
                .iter()
                .filter(|v| v.to_ascii_lowercase().contains("mfa") || v.contains("multipleauthn"))
                .collect();
            out.push(format!(
                "amr is {amr:?}: no element is exactly \"mfa\" or \"ngcmfa\". The user signed in without \
                 MFA: require it (Conditional Access, security defaults, or at the federated IdP)."
            ));
            if !near.is_empty() {
                out.push(format!(
                    "{near:?} looks like MFA but is not an exact match; if your IdP really uses it for MFA, \
                     list it in the issuer's mfa_amr."
                ));
            }
        }
        MfaGap::SamlNoMfa | MfaGap::SamlWiaOrMultiAuthnOnly | MfaGap::SessionWithoutMfa => {}
    }
    if amr.iter().any(|v| v == "fed") || looks_adfs {
        out.push(adfs(amr.iter().any(|v| v == "fed")));
    }
    out
}

/// A SAML assertion whose MFA is not proven. `elsewhere` is a location the IdP's `mfa_locations`
/// does not read but where the assertion does carry the marker.
pub fn saml_gap(
    gap: MfaGap,
    elsewhere: Option<SamlLocation>,
    idp: Option<&str>,
    refeds_unread: bool,
) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(l) = elsewhere {
        let name = idp.map_or(String::new(), |n| format!(" name = \"{n}\""));
        out.push(format!(
            "The assertion does carry multipleauthn, in {} (mfa_locations entry \"{}\"), which this IdP's \
             mfa_locations does not read: add \"{}\" to mfa_locations in its [[saml_idp]]{name}.",
            l.path(),
            l.name(),
            l.name()
        ));
        return out;
    }
    if refeds_unread {
        out.push(
            "The assertion's class reference is the REFEDS MFA profile (https://refeds.org/profile/mfa), \
             which counts only with refeds_mfa = true on the [[saml_idp]]."
                .to_owned(),
        );
        return out;
    }
    if gap == MfaGap::SamlWiaOrMultiAuthnOnly {
        out.push(
            "The assertion says wiaormultiauthn (Windows integrated authentication OR MFA): it does not \
             prove a second factor. Have the IdP do MFA and send multipleauthn (accept_wiaormultiauthn = \
             true would count it anyway, which Partner Center's rule does not)."
                .to_owned(),
        );
    } else {
        out.push(
            "No location holds http://schemas.microsoft.com/claims/multipleauthn. The IdP must send it \
             when the user did MFA: SAML 2.0 in AuthnContextClassRef or the authnmethodsreferences \
             attribute; SAML 1.1 in AuthenticationStatement/@AuthenticationMethod or the \
             authenticationmethod attribute."
                .to_owned(),
        );
    }
    out.push(adfs(false));
    out
}

/// A document the gateway refuses, when there is something specific to say. `saml`: an
/// assertion rather than a token.
pub fn invalid(why: InvalidReason, saml: bool) -> Option<&'static str> {
    Some(match why {
        InvalidReason::UnknownIssuer if saml => {
            "Its Issuer matches no trusted SAML IdP: no [[saml_idp]] has this entity_id (or metadata \
             entityID), or the route's issuers leave that IdP out."
        }
        InvalidReason::Expired => {
            "It has expired: get a new one (the gateway allows leeway_secs of clock skew)."
        }
        InvalidReason::NotYetValid => "It is not valid yet: check the clocks of the IdP and this machine.",
        InvalidReason::BadSignature => {
            "The signature does not verify with the key or certificate it names: the document was changed, \
             or signed by another key than the source publishes (a test IdP, a rolled-over key)."
        }
        InvalidReason::UnknownKey => {
            "No key with this kid in the key set (after a refetch): the token was signed by a key the \
             issuer does not publish here, or you gave the key set of another issuer."
        }
        InvalidReason::UnknownIssuer => {
            "No configured issuer or IdP matches it. Entra ID v1.0 tokens come from \
             https://sts.windows.net/{tenantid}/, v2.0 tokens from \
             https://login.microsoftonline.com/{tenantid}/v2.0: configure the one the token names \
             (and the route's issuers must include it)."
        }
        InvalidReason::WrongIssuer => "iss does not name the tenant in tid.",
        InvalidReason::TenantNotAllowed => "Its tenant (tid) is not in the issuer's tenants list.",
        InvalidReason::WrongAudience => {
            "Its audience is not one the gateway accepts: request the token (or have the IdP issue the \
             assertion) for the audience configured (the issuer's audiences, [saml] entity_id)."
        }
        InvalidReason::AlgorithmNotAllowed => {
            "Its alg is not among the issuer's algorithms, or does not fit the key."
        }
        InvalidReason::TypNotAllowed => {
            "Its typ is not one the issuer takes for access tokens (an ID token is not an API credential)."
        }
        InvalidReason::NoPermissionsClaim => {
            "It carries neither scp, roles nor idtyp: it grants nothing (an ID token is not an access token)."
        }
        InvalidReason::SsoResponse => {
            "This is a browser sign-in Response (it answers an AuthnRequest, or names the ACS): as an \
             API credential it is refused unless the IdP's accept_sso_responses_as_api = true."
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_adfs_rule_is_claim_rule_language() {
        assert!(
            ADFS_RULE.contains("c:[Type == \"http://schemas.microsoft.com/claims/authnmethodsreferences\"]")
        );
        assert!(ADFS_RULE.trim_end().ends_with("=> issue(claim = c);"));
        let advice = jwt_gap(MfaGap::NoMfaMethod, &["fed".into(), "pwd".into()], &[], false).join("\n");
        assert!(advice.contains(ADFS_RULE) && advice.contains("federatedIdpMfaBehavior"), "{advice}");
    }
}
