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

/// A place an assertion may carry its authentication method, named as in `mfa_locations`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SamlMfaLocation {
    /// `authn_context`: `AuthnStatement/AuthnContext/AuthnContextClassRef` (SAML 2.0).
    AuthnContext,
    /// `authentication_method`: `AuthenticationStatement/@AuthenticationMethod` (SAML 1.1).
    AuthenticationMethod,
    /// `authenticationmethod`: the `authenticationmethod` attribute.
    AuthenticationMethodAttribute,
    /// `authnmethodsreferences`: the `authnmethodsreferences` attribute.
    AuthnMethodsReferences,
}

impl SamlMfaLocation {
    /// Every location, in the order the defaults list them.
    pub const ALL: [SamlMfaLocation; 4] = [
        SamlMfaLocation::AuthnContext,
        SamlMfaLocation::AuthenticationMethod,
        SamlMfaLocation::AuthenticationMethodAttribute,
        SamlMfaLocation::AuthnMethodsReferences,
    ];

    /// The `mfa_locations` entry.
    pub fn name(self) -> &'static str {
        match self {
            SamlMfaLocation::AuthnContext => "authn_context",
            SamlMfaLocation::AuthenticationMethod => "authentication_method",
            SamlMfaLocation::AuthenticationMethodAttribute => "authenticationmethod",
            SamlMfaLocation::AuthnMethodsReferences => "authnmethodsreferences",
        }
    }

    /// The location an `mfa_locations` entry names.
    pub fn from_name(name: &str) -> Option<SamlMfaLocation> {
        SamlMfaLocation::ALL.into_iter().find(|l| l.name() == name)
    }
}

impl SamlMfaSettings {
    /// Whether MFA is looked for in `location`.
    pub fn reads(&self, location: SamlMfaLocation) -> bool {
        match location {
            SamlMfaLocation::AuthnContext => self.authn_context,
            SamlMfaLocation::AuthenticationMethod => self.authentication_method,
            SamlMfaLocation::AuthenticationMethodAttribute => self.authentication_method_attribute,
            SamlMfaLocation::AuthnMethodsReferences => self.authn_methods_references,
        }
    }

    /// Looks for MFA in `location`, or stops looking there.
    pub fn set_reads(&mut self, location: SamlMfaLocation, on: bool) {
        *match location {
            SamlMfaLocation::AuthnContext => &mut self.authn_context,
            SamlMfaLocation::AuthenticationMethod => &mut self.authentication_method,
            SamlMfaLocation::AuthenticationMethodAttribute => &mut self.authentication_method_attribute,
            SamlMfaLocation::AuthnMethodsReferences => &mut self.authn_methods_references,
        } = on;
    }
}

/// Decides MFA for a verified assertion.
pub fn evaluate_saml_mfa(facts: &SamlFacts, s: &SamlMfaSettings) -> MfaOutcome {
    let proves = |v: &str| {
        v == MULTIPLE_AUTHN
            || (s.accept_wiaormultiauthn && v == WIA_OR_MULTIPLE_AUTHN)
            || (s.refeds && v == REFEDS_MFA)
            || s.extra_class_refs.iter().any(|x| x == v)
    };
    let mut seen: Vec<&str> = Vec::new();
    if s.authn_context {
        seen.extend(facts.class_refs.iter().map(String::as_str));
    }
    if s.authentication_method {
        seen.extend(facts.authentication_methods.iter().map(String::as_str));
    }
    if s.authentication_method_attribute {
        seen.extend(facts.attribute(ATTR_AUTHENTICATION_METHOD));
    }
    if s.authn_methods_references {
        seen.extend(facts.attribute(ATTR_AUTHN_METHODS_REFERENCES));
    }
    if seen.iter().any(|v| proves(v)) {
        return MfaOutcome::Proven;
    }
    let gap = if seen.contains(&WIA_OR_MULTIPLE_AUTHN) {
        MfaGap::SamlWiaOrMultiAuthnOnly
    } else {
        MfaGap::SamlNoMfa
    };
    MfaOutcome::NotProven(gap)
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
    fn each_location_is_named_and_switched_on_its_own() {
        for location in SamlMfaLocation::ALL {
            assert_eq!(SamlMfaLocation::from_name(location.name()), Some(location));
            let mut only = SamlMfaSettings::default();
            for other in SamlMfaLocation::ALL {
                only.set_reads(other, other == location);
            }
            let read: Vec<_> = SamlMfaLocation::ALL.into_iter().filter(|l| only.reads(*l)).collect();
            assert_eq!(read, [location]);
        }
        assert_eq!(SamlMfaLocation::from_name("AuthnContext"), None);
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
}
