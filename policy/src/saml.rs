//! MFA from a verified SAML assertion (claims.md §8.5): `multipleauthn` in any configured location.

use crate::{MfaGap, MfaOutcome, UnixTime};

/// `http://schemas.microsoft.com/claims/multipleauthn`: the federated MFA marker.
pub const MULTIPLE_AUTHN: &str = "http://schemas.microsoft.com/claims/multipleauthn";
/// "Windows integrated or MFA": not proof of MFA unless configured.
pub const WIA_OR_MULTIPLE_AUTHN: &str = "http://schemas.microsoft.com/claims/wiaormultiauthn";
/// The REFEDS MFA profile.
pub const REFEDS_MFA: &str = "https://refeds.org/profile/mfa";
/// The `authenticationmethod` attribute (AD FS, WS-Fed).
pub const ATTR_AUTHENTICATION_METHOD: &str =
    "http://schemas.microsoft.com/ws/2008/06/identity/claims/authenticationmethod";
/// The `authnmethodsreferences` attribute (Entra-issued SAML, AD FS pass-through).
pub const ATTR_AUTHN_METHODS_REFERENCES: &str = "http://schemas.microsoft.com/claims/authnmethodsreferences";

/// Facts read from the signed part of a verified assertion.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SamlFacts {
    /// SAML 2.0 `AuthnStatement/AuthnContext/AuthnContextClassRef` values.
    pub class_refs: Vec<String>,
    /// SAML 1.1 `AuthenticationStatement/@AuthenticationMethod` values.
    pub authentication_methods: Vec<String>,
    /// Attributes by full name (SAML 1.1 `AttributeNamespace/AttributeName` joined with `/`).
    pub attributes: Vec<(String, Vec<String>)>,
    /// The assertion's `NotOnOrAfter` (conditions or subject confirmation, the earlier).
    pub expires: UnixTime,
    /// `NotBefore`, if any.
    pub not_before: Option<UnixTime>,
}

impl SamlFacts {
    /// The values of an attribute.
    pub fn attribute(&self, name: &str) -> impl Iterator<Item = &str> {
        self.attributes.iter().filter(move |(n, _)| n == name).flat_map(|(_, v)| v.iter().map(String::as_str))
    }
}

/// Where an identity provider's MFA marker may be, and what counts. Per IdP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SamlMfaSettings {
    /// Look at `AuthnContextClassRef` (SAML 2.0). Default on.
    pub authn_context: bool,
    /// Look at `AuthenticationStatement/@AuthenticationMethod` (SAML 1.1). Default on.
    pub authentication_method: bool,
    /// Look at the `authenticationmethod` attribute. Default on.
    pub authentication_method_attribute: bool,
    /// Look at the `authnmethodsreferences` attribute. Default on.
    pub authn_methods_references: bool,
    /// Accept the REFEDS MFA profile as a class reference. Default off.
    pub refeds: bool,
    /// Accept `wiaormultiauthn` ("Windows or MFA"). Default off.
    pub accept_wiaormultiauthn: bool,
    /// More class references this IdP uses for MFA.
    pub extra_class_refs: Vec<String>,
}

impl Default for SamlMfaSettings {
    fn default() -> Self {
        SamlMfaSettings {
            authn_context: true,
            authentication_method: true,
            authentication_method_attribute: true,
            authn_methods_references: true,
            refeds: false,
            accept_wiaormultiauthn: false,
            extra_class_refs: Vec::new(),
        }
    }
}

/// Where in an assertion an MFA marker is read: the four locations an identity provider may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SamlLocation {
    /// SAML 2.0 `AuthnStatement/AuthnContext/AuthnContextClassRef`.
    AuthnContext,
    /// SAML 1.1 `AuthenticationStatement/@AuthenticationMethod`.
    AuthenticationMethod,
    /// The `authenticationmethod` attribute.
    AuthenticationMethodAttribute,
    /// The `authnmethodsreferences` attribute.
    AuthnMethodsReferences,
}

impl SamlLocation {
    /// Every location, in the order they are read.
    pub const ALL: [SamlLocation; 4] = [
        SamlLocation::AuthnContext,
        SamlLocation::AuthenticationMethod,
        SamlLocation::AuthenticationMethodAttribute,
        SamlLocation::AuthnMethodsReferences,
    ];

    /// The location's name in a `[[saml_idp]]`'s `mfa_locations`.
    pub fn name(self) -> &'static str {
        match self {
            SamlLocation::AuthnContext => "authn_context",
            SamlLocation::AuthenticationMethod => "authentication_method",
            SamlLocation::AuthenticationMethodAttribute => "authenticationmethod",
            SamlLocation::AuthnMethodsReferences => "authnmethodsreferences",
        }
    }

    /// The location named `name` in `mfa_locations`.
    pub fn named(name: &str) -> Option<SamlLocation> {
        SamlLocation::ALL.into_iter().find(|l| l.name() == name)
    }

    /// Where it sits in the document.
    pub fn path(self) -> &'static str {
        match self {
            SamlLocation::AuthnContext => "AuthnStatement/AuthnContext/AuthnContextClassRef",
            SamlLocation::AuthenticationMethod => "AuthenticationStatement/@AuthenticationMethod",
            SamlLocation::AuthenticationMethodAttribute => ATTR_AUTHENTICATION_METHOD,
            SamlLocation::AuthnMethodsReferences => ATTR_AUTHN_METHODS_REFERENCES,
        }
    }

    /// The values the assertion carries here.
    pub fn values(self, facts: &SamlFacts) -> Vec<&str> {
        match self {
            SamlLocation::AuthnContext => facts.class_refs.iter().map(String::as_str).collect(),
            SamlLocation::AuthenticationMethod => {
                facts.authentication_methods.iter().map(String::as_str).collect()
            }
            SamlLocation::AuthenticationMethodAttribute => {
                facts.attribute(ATTR_AUTHENTICATION_METHOD).collect()
            }
            SamlLocation::AuthnMethodsReferences => facts.attribute(ATTR_AUTHN_METHODS_REFERENCES).collect(),
        }
    }
}

impl SamlMfaSettings {
    /// Whether MFA is read at `location`.
    pub fn reads(&self, location: SamlLocation) -> bool {
        match location {
            SamlLocation::AuthnContext => self.authn_context,
            SamlLocation::AuthenticationMethod => self.authentication_method,
            SamlLocation::AuthenticationMethodAttribute => self.authentication_method_attribute,
            SamlLocation::AuthnMethodsReferences => self.authn_methods_references,
        }
    }

    /// Reads (or not) MFA at `location`.
    pub fn set_reads(&mut self, location: SamlLocation, on: bool) {
        let flag = match location {
            SamlLocation::AuthnContext => &mut self.authn_context,
            SamlLocation::AuthenticationMethod => &mut self.authentication_method,
            SamlLocation::AuthenticationMethodAttribute => &mut self.authentication_method_attribute,
            SamlLocation::AuthnMethodsReferences => &mut self.authn_methods_references,
        };
        *flag = on;
    }
}

/// Decides MFA for a verified assertion.
pub fn evaluate_saml_mfa(facts: &SamlFacts, s: &SamlMfaSettings) -> MfaOutcome {
    match saml_mfa_proof(facts, s) {
        Ok(_) => MfaOutcome::Proven,
        Err(gap) => MfaOutcome::NotProven(gap),
    }
}

/// [`evaluate_saml_mfa`], saying where MFA was found and with which value (or why it was not).
pub fn saml_mfa_proof(facts: &SamlFacts, s: &SamlMfaSettings) -> Result<(SamlLocation, String), MfaGap> {
    let proves = |v: &str| {
        v == MULTIPLE_AUTHN
            || (s.accept_wiaormultiauthn && v == WIA_OR_MULTIPLE_AUTHN)
            || (s.refeds && v == REFEDS_MFA)
            || s.extra_class_refs.iter().any(|x| x == v)
    };
    let mut wia_or_multiple_authn = false;
    for location in SamlLocation::ALL.into_iter().filter(|l| s.reads(*l)) {
        let values = location.values(facts);
        if let Some(v) = values.iter().find(|v| proves(v)) {
            return Ok((location, (*v).to_owned()));
        }
        wia_or_multiple_authn |= values.contains(&WIA_OR_MULTIPLE_AUTHN);
    }
    Err(if wia_or_multiple_authn { MfaGap::SamlWiaOrMultiAuthnOnly } else { MfaGap::SamlNoMfa })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> SamlFacts {
        SamlFacts { expires: UnixTime(2_000), ..SamlFacts::default() }
    }

    fn attr(name: &str, values: &[&str]) -> (String, Vec<String>) {
        (name.to_owned(), values.iter().map(|v| v.to_string()).collect())
    }

    /// claims.md §9 rows 34–40.
    #[test]
    fn claims_md_saml_rows() {
        let d = SamlMfaSettings::default();
        let pwd = "urn:oasis:names:tc:SAML:2.0:ac:classes:Password";
        let pwd_method = "http://schemas.microsoft.com/ws/2008/06/identity/authenticationmethod/password";
        let cases: Vec<(u32, SamlFacts, SamlMfaSettings, MfaOutcome)> = vec![
            (
                34,
                SamlFacts { class_refs: vec![MULTIPLE_AUTHN.into()], ..facts() },
                d.clone(),
                MfaOutcome::Proven,
            ),
            (
                35,
                SamlFacts {
                    class_refs: vec![pwd.into()],
                    attributes: vec![attr(ATTR_AUTHN_METHODS_REFERENCES, &[pwd_method, MULTIPLE_AUTHN])],
                    ..facts()
                },
                d.clone(),
                MfaOutcome::Proven,
            ),
            (
                36,
                SamlFacts {
                    class_refs: vec![pwd.into()],
                    attributes: vec![attr(ATTR_AUTHN_METHODS_REFERENCES, &[pwd_method])],
                    ..facts()
                },
                d.clone(),
                MfaOutcome::NotProven(MfaGap::SamlNoMfa),
            ),
            (
                37,
                SamlFacts { authentication_methods: vec![MULTIPLE_AUTHN.into()], ..facts() },
                d.clone(),
                MfaOutcome::Proven,
            ),
            (
                38,
                SamlFacts {
                    attributes: vec![attr(ATTR_AUTHENTICATION_METHOD, &[pwd_method, MULTIPLE_AUTHN])],
                    ..facts()
                },
                d.clone(),
                MfaOutcome::Proven,
            ),
            (
                39,
                SamlFacts { class_refs: vec![WIA_OR_MULTIPLE_AUTHN.into()], ..facts() },
                d.clone(),
                MfaOutcome::NotProven(MfaGap::SamlWiaOrMultiAuthnOnly),
            ),
            (
                39,
                SamlFacts { class_refs: vec![WIA_OR_MULTIPLE_AUTHN.into()], ..facts() },
                SamlMfaSettings { accept_wiaormultiauthn: true, ..d.clone() },
                MfaOutcome::Proven,
            ),
            (
                40,
                SamlFacts { class_refs: vec![REFEDS_MFA.into()], ..facts() },
                d.clone(),
                MfaOutcome::NotProven(MfaGap::SamlNoMfa),
            ),
            (
                40,
                SamlFacts { class_refs: vec![REFEDS_MFA.into()], ..facts() },
                SamlMfaSettings { refeds: true, ..d.clone() },
                MfaOutcome::Proven,
            ),
        ];
        for (n, f, s, want) in cases {
            assert_eq!(evaluate_saml_mfa(&f, &s), want, "case {n}");
        }
    }

    #[test]
    fn locations_can_be_switched_off_and_near_misses_never_count() {
        let f =
            SamlFacts { attributes: vec![attr(ATTR_AUTHN_METHODS_REFERENCES, &[MULTIPLE_AUTHN])], ..facts() };
        let off = SamlMfaSettings { authn_methods_references: false, ..SamlMfaSettings::default() };
        assert_eq!(evaluate_saml_mfa(&f, &off), MfaOutcome::NotProven(MfaGap::SamlNoMfa));
        for near in [
            "http://schemas.microsoft.com/claims/multipleauthnx",
            "HTTP://SCHEMAS.MICROSOFT.COM/CLAIMS/MULTIPLEAUTHN",
            " http://schemas.microsoft.com/claims/multipleauthn",
        ] {
            let f = SamlFacts { class_refs: vec![near.into()], ..facts() };
            assert_eq!(
                evaluate_saml_mfa(&f, &SamlMfaSettings::default()),
                MfaOutcome::NotProven(MfaGap::SamlNoMfa),
                "{near:?}"
            );
        }
        // The marker in an unrelated attribute proves nothing.
        let f = SamlFacts {
            attributes: vec![attr("http://example.test/claims/note", &[MULTIPLE_AUTHN])],
            ..facts()
        };
        assert_eq!(
            evaluate_saml_mfa(&f, &SamlMfaSettings::default()),
            MfaOutcome::NotProven(MfaGap::SamlNoMfa)
        );
    }

    #[test]
    fn the_proof_names_the_location_and_value_and_config_names_round_trip() {
        let f = SamlFacts {
            class_refs: vec!["urn:oasis:names:tc:SAML:2.0:ac:classes:Password".into()],
            attributes: vec![attr(ATTR_AUTHENTICATION_METHOD, &[MULTIPLE_AUTHN])],
            ..facts()
        };
        let d = SamlMfaSettings::default();
        assert_eq!(
            saml_mfa_proof(&f, &d),
            Ok((SamlLocation::AuthenticationMethodAttribute, MULTIPLE_AUTHN.to_owned()))
        );
        let mut off = d.clone();
        off.set_reads(SamlLocation::AuthenticationMethodAttribute, false);
        assert!(!off.reads(SamlLocation::AuthenticationMethodAttribute));
        assert_eq!(saml_mfa_proof(&f, &off), Err(MfaGap::SamlNoMfa));
        for l in SamlLocation::ALL {
            assert_eq!(SamlLocation::named(l.name()), Some(l));
        }
        assert_eq!(SamlLocation::named("AuthnContext"), None);
    }
}
