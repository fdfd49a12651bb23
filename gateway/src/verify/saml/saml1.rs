//! SAML 1.1 assertions (WS-Federation, WS-Trust: what AD FS issues for relying parties that ask
//! for SAML 1.1). The ID attribute is `AssertionID`, which samael's reduction does not resolve,
//! so two independent checks must both pass:
//!
//! 1. xmlsec verifies the signature with `AssertionID` registered as the ID attribute;
//! 2. `dsig::verify_enveloped` verifies it again on our own canonical bytes of the one assertion
//!    (the document's root), and claims are read only from those bytes.
//!
//! The shape guards of `structure.rs` run first: the assertion is the root, no other assertion
//! anywhere, unique IDs, exactly one signature, a direct child of the assertion, referencing it.

use super::extract::{Extracted, full_text, time};
use super::{NS_SAML1, dsig};
use mfagate_policy::InvalidReason;
use roxmltree::{Document, Node};
use samael::crypto::{CertificateDer, Crypto, CryptoProvider};

fn is(node: &Node<'_, '_>, name: &str) -> bool {
    node.is_element() && node.tag_name().namespace() == Some(NS_SAML1) && node.tag_name().name() == name
}

fn children<'a, 'i>(parent: Node<'a, 'i>, name: &'static str) -> impl Iterator<Item = Node<'a, 'i>> {
    parent.children().filter(move |n| is(n, name))
}

/// Verifies a SAML 1.1 assertion (already shape-checked) signed with one of `certificates` (the
/// IdP's), and reads its claims.
pub fn verify(xml: &str, assertion_id: &str, certificates: &[Vec<u8>]) -> Result<Extracted, InvalidReason> {
    let xmlsec_ok = certificates.iter().any(|der| {
        Crypto::verify_signed_xml(xml, &CertificateDer::from(der.clone()), Some("AssertionID")).is_ok()
    });
    if !xmlsec_ok {
        return Err(InvalidReason::BadSignature);
    }
    let doc = Document::parse(xml).map_err(|_| InvalidReason::Malformed)?;
    let canonical = dsig::verify_enveloped(xml, doc.root_element(), assertion_id, certificates)?;
    from_signed(&canonical, assertion_id)
}

/// Reads the claims of the canonical signed assertion (or, for `mfagate inspect` without a key,
/// of an unverified one).
pub(super) fn from_signed(signed: &str, expected_id: &str) -> Result<Extracted, InvalidReason> {
    let doc = Document::parse(signed).map_err(|_| InvalidReason::SignatureMisplaced)?;
    let assertion = doc.root_element();
    if !is(&assertion, "Assertion") || assertion.attribute("AssertionID") != Some(expected_id) {
        return Err(InvalidReason::SignatureMisplaced);
    }
    let mut x = Extracted { id: expected_id.to_owned(), ..Extracted::default() };
    x.issuer = assertion.attribute("Issuer").ok_or(InvalidReason::ClaimsInvalid)?.to_owned();
    let conditions = children(assertion, "Conditions").next().ok_or(InvalidReason::ClaimsInvalid)?;
    x.facts.expires = time(conditions.attribute("NotOnOrAfter"))?.ok_or(InvalidReason::ClaimsInvalid)?;
    x.facts.not_before = time(conditions.attribute("NotBefore"))?;
    for condition in conditions.children().filter(Node::is_element) {
        if is(&condition, "AudienceRestrictionCondition") {
            x.audiences.push(children(condition, "Audience").map(|n| full_text(&n)).collect());
        } else if is(&condition, "DoNotCacheCondition") {
            x.one_time_use = true;
        } else {
            // An unknown condition makes a SAML 1.1 assertion Indeterminate: not valid.
            return Err(InvalidReason::ClaimsInvalid);
        }
    }
    for statement in assertion.children().filter(Node::is_element) {
        if x.name_id.is_none() {
            x.name_id = children(statement, "Subject")
                .flat_map(|s| children(s, "NameIdentifier"))
                .map(|n| full_text(&n))
                .next();
        }
        if is(&statement, "AuthenticationStatement") {
            let method = statement.attribute("AuthenticationMethod").ok_or(InvalidReason::ClaimsInvalid)?;
            x.facts.authentication_methods.push(method.to_owned());
        } else if is(&statement, "AttributeStatement") {
            for attr in children(statement, "Attribute") {
                let Some(name) = attr.attribute("AttributeName") else {
                    continue;
                };
                let full = match attr.attribute("AttributeNamespace") {
                    Some(ns) => format!("{}/{name}", ns.trim_end_matches('/')),
                    None => name.to_owned(),
                };
                let values = children(attr, "AttributeValue").map(|n| full_text(&n)).collect();
                x.facts.attributes.push((full, values));
            }
        }
    }
    Ok(x)
}
