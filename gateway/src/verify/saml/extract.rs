//! Reads claims from the signed bytes (xmlsec's pre-digest output), and nothing else.

use super::{NS_ASSERTION, NS_PROTOCOL, SamlIdp, SamlVerified};
use crate::verify::jwt::Identity;
use mfagate_policy::{InvalidReason, SamlFacts, UnixTime};
use roxmltree::{Document, Node};

const ATTR_OBJECT_ID: &str = "http://schemas.microsoft.com/identity/claims/objectidentifier";
const ATTR_TENANT_ID: &str = "http://schemas.microsoft.com/identity/claims/tenantid";
const ATTR_UPN: &str = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn";
const ATTR_NAME: &str = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name";
const BEARER: &str = "urn:oasis:names:tc:SAML:2.0:cm:bearer";

/// Everything read from the signed assertion.
#[derive(Debug, Default)]
pub struct Extracted {
    /// `Issuer`.
    pub issuer: String,
    /// `Conditions/AudienceRestriction/Audience` values, one list per restriction: each
    /// restriction must name us.
    pub audiences: Vec<Vec<String>>,
    /// `OneTimeUse` (SAML 2.0) or `DoNotCacheCondition` (SAML 1.1): accepted once, never reused.
    pub one_time_use: bool,
    /// Bearer `SubjectConfirmationData/@Recipient`.
    pub recipient: Option<String>,
    /// `SubjectConfirmationData/@InResponseTo`.
    pub in_response_to: Option<String>,
    /// `NameID`.
    pub name_id: Option<String>,
    /// The assertion ID.
    pub id: String,
    /// MFA facts and times.
    pub facts: SamlFacts,
}

fn is(node: &Node<'_, '_>, name: &str) -> bool {
    node.is_element() && node.tag_name().namespace() == Some(NS_ASSERTION) && node.tag_name().name() == name
}

/// The whole text of a node: every text descendant, so a comment inside a value
/// (`jane@contoso.test<!---->.evil.test`) cannot cut what we read short of what was signed.
pub fn full_text(node: &Node<'_, '_>) -> String {
    node.descendants().filter(Node::is_text).filter_map(|n| n.text()).collect::<String>().trim().to_owned()
}

fn child<'a, 'i>(parent: Node<'a, 'i>, name: &str) -> Option<Node<'a, 'i>> {
    parent.children().find(|n| is(n, name))
}

pub(super) fn time(value: Option<&str>) -> Result<Option<UnixTime>, InvalidReason> {
    value
        .map(|v| {
            time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339)
                .map(|t| UnixTime(t.unix_timestamp().max(0) as u64))
                .map_err(|_| InvalidReason::ClaimsInvalid)
        })
        .transpose()
}

/// Parses the signed bytes; they must hold exactly the assertion `expected_id`.
pub fn from_signed(signed: &str, expected_id: &str) -> Result<Extracted, InvalidReason> {
    let doc = Document::parse(signed).map_err(|_| InvalidReason::SignatureMisplaced)?;
    let root = doc.root_element();
    let assertion = if is(&root, "Assertion") {
        root
    } else if root.tag_name().namespace() == Some(NS_PROTOCOL) && root.tag_name().name() == "Response" {
        let mut found = root.children().filter(|n| is(n, "Assertion"));
        match (found.next(), found.next()) {
            (Some(a), None) => a,
            _ => return Err(InvalidReason::SignatureMisplaced),
        }
    } else {
        return Err(InvalidReason::SignatureMisplaced);
    };
    if assertion.attribute("ID") != Some(expected_id)
        || root.descendants().filter(|n| is(n, "Assertion")).count() != 1
    {
        return Err(InvalidReason::SignatureMisplaced);
    }
    let mut x = Extracted { id: expected_id.to_owned(), ..Extracted::default() };
    x.issuer = child(assertion, "Issuer").map(|n| full_text(&n)).ok_or(InvalidReason::ClaimsInvalid)?;
    let conditions = child(assertion, "Conditions").ok_or(InvalidReason::ClaimsInvalid)?;
    let mut expires = time(conditions.attribute("NotOnOrAfter"))?.ok_or(InvalidReason::ClaimsInvalid)?;
    x.facts.not_before = time(conditions.attribute("NotBefore"))?;
    for condition in conditions.children().filter(Node::is_element) {
        if is(&condition, "AudienceRestriction") {
            x.audiences
                .push(condition.children().filter(|n| is(n, "Audience")).map(|n| full_text(&n)).collect());
        } else if is(&condition, "OneTimeUse") {
            x.one_time_use = true;
        } else if !is(&condition, "ProxyRestriction") {
            // A condition we do not understand makes the assertion invalid (SAML 2.0 core 2.5.1.1).
            return Err(InvalidReason::ClaimsInvalid);
        }
    }
    if let Some(subject) = child(assertion, "Subject") {
        x.name_id = child(subject, "NameID").map(|n| full_text(&n));
        for confirmation in subject.children().filter(|n| is(n, "SubjectConfirmation")) {
            if confirmation.attribute("Method") != Some(BEARER) {
                continue;
            }
            if let Some(data) = child(confirmation, "SubjectConfirmationData") {
                if let Some(t) = time(data.attribute("NotOnOrAfter"))? {
                    expires = expires.min(t);
                }
                x.recipient = data.attribute("Recipient").map(str::to_owned);
                x.in_response_to = data.attribute("InResponseTo").map(str::to_owned);
            }
        }
    }
    x.facts.expires = expires;
    for statement in assertion.children().filter(|n| is(n, "AuthnStatement")) {
        for class in statement.descendants().filter(|n| is(n, "AuthnContextClassRef")) {
            x.facts.class_refs.push(full_text(&class));
        }
    }
    for attr in assertion
        .children()
        .filter(|n| is(n, "AttributeStatement"))
        .flat_map(|s| s.children().filter(|n| is(n, "Attribute")))
    {
        let Some(name) = attr.attribute("Name") else {
            continue;
        };
        let values = attr.children().filter(|n| is(n, "AttributeValue")).map(|n| full_text(&n)).collect();
        x.facts.attributes.push((name.to_owned(), values));
    }
    Ok(x)
}

impl Extracted {
    /// Who the assertion names, for the IdP configured as `issuer`.
    pub fn identity(&self, issuer: &str) -> Identity {
        let first = |name: &str| self.facts.attribute(name).next().map(str::to_owned);
        Identity {
            issuer: issuer.to_owned(),
            tenant_id: first(ATTR_TENANT_ID),
            object_id: first(ATTR_OBJECT_ID),
            upn: first(ATTR_UPN).or_else(|| first(ATTR_NAME)).or_else(|| self.name_id.clone()),
            app_id: None,
            amr: Vec::new(),
        }
    }

    /// The verified assertion, named for the IdP that signed it.
    pub fn into_verified(self, idp: &SamlIdp, idp_index: usize, cert_generation: u64) -> SamlVerified {
        let identity = self.identity(&idp.name);
        SamlVerified {
            identity,
            idp_index,
            assertion_id: self.id,
            in_response_to: self.in_response_to,
            one_time_use: self.one_time_use,
            cert_generation,
            facts: self.facts,
        }
    }
}
