//! The shape checks made before any signature is verified: the wrapping guards.

use super::{NS_ASSERTION, NS_DSIG, NS_PROTOCOL, NS_SAML1, transforms};
use mfagate_policy::{InvalidReason, WeakAlgorithm};
use roxmltree::{Document, Node};
use std::collections::HashSet;

/// What the unverified document says, used only to pick the IdP and to match the signed part.
pub struct Shape {
    /// The (unverified) issuer, to pick the IdP's certificates.
    pub issuer: String,
    /// The one assertion's ID.
    pub assertion_id: String,
    /// SAML 2.0 (Response or Assertion) or a SAML 1.1 Assertion.
    pub version: Version,
    /// A SHA-1 or MD5 method named by a signature: refused once the issuer is known.
    pub weak: Option<WeakAlgorithm>,
}

/// Which SAML the document speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// SAML 2.0: `ID`, verified by samael's pre-digest reduction.
    Saml2,
    /// SAML 1.1: `AssertionID`, verified by xmlsec and on our own canonical bytes.
    Saml11,
}

fn is(node: &Node<'_, '_>, ns: &str, name: &str) -> bool {
    node.is_element() && node.tag_name().namespace() == Some(ns) && node.tag_name().name() == name
}

fn is_any_assertion(n: &Node<'_, '_>) -> bool {
    is(n, NS_ASSERTION, "Assertion")
        || is(n, NS_ASSERTION, "EncryptedAssertion")
        || is(n, NS_SAML1, "Assertion")
}

/// Refuses a value repeated across the ID attributes (`ID`, `AssertionID`, `Id`), so a reference
/// resolves to one element whatever attribute a verifier registers.
fn unique_ids(root: &Node<'_, '_>) -> Result<(), InvalidReason> {
    let mut ids = HashSet::new();
    for node in root.descendants() {
        for a in node.attributes().filter(|a| matches!(a.name(), "ID" | "AssertionID" | "Id")) {
            if !ids.insert(a.value()) {
                return Err(InvalidReason::SignatureMisplaced);
            }
        }
    }
    Ok(())
}

/// Checks the document's shape. Refuses DTDs (roxmltree's default), more or fewer than one
/// assertion, encrypted assertions, duplicate IDs, and any signature that is not a direct child
/// of the Response or the Assertion referencing its own parent. A SAML 1.1 assertion must be the
/// document itself, with its one signature.
pub fn check(xml: &str) -> Result<Shape, InvalidReason> {
    let doc = Document::parse(xml).map_err(|_| InvalidReason::Malformed)?;
    let root = doc.root_element();
    unique_ids(&root)?;
    if is(&root, NS_SAML1, "Assertion") {
        return check_saml11(&root);
    }
    let root_is_response = is(&root, NS_PROTOCOL, "Response");
    if !root_is_response && !is(&root, NS_ASSERTION, "Assertion") {
        return Err(InvalidReason::Malformed);
    }
    let mut assertions = root.descendants().filter(is_any_assertion);
    let (Some(assertion), None) = (assertions.next(), assertions.next()) else {
        return Err(InvalidReason::SignatureMisplaced);
    };
    if !is(&assertion, NS_ASSERTION, "Assertion") {
        return Err(InvalidReason::Malformed);
    }
    if root_is_response && assertion.parent() != Some(root) {
        return Err(InvalidReason::SignatureMisplaced);
    }
    let assertion_id = assertion.attribute("ID").ok_or(InvalidReason::Malformed)?;
    let mut covered = false;
    let mut weak = None;
    for sig in root.descendants().filter(|n| is(n, NS_DSIG, "Signature")) {
        let parent = sig.parent().ok_or(InvalidReason::SignatureMisplaced)?;
        if parent != root && parent != assertion {
            return Err(InvalidReason::SignatureMisplaced);
        }
        let id = parent.attribute("ID").ok_or(InvalidReason::SignatureMisplaced)?;
        weak = weak.or(check_signature(&sig, id)?);
        covered = true;
    }
    if !covered {
        return Err(InvalidReason::BadSignature);
    }
    let issuer = assertion
        .children()
        .find(|n| is(n, NS_ASSERTION, "Issuer"))
        .map(|n| super::extract::full_text(&n))
        .ok_or(InvalidReason::ClaimsInvalid)?;
    Ok(Shape { issuer, assertion_id: assertion_id.to_owned(), version: Version::Saml2, weak })
}

fn check_saml11(assertion: &Node<'_, '_>) -> Result<Shape, InvalidReason> {
    if assertion.attribute("MajorVersion") != Some("1") || assertion.attribute("MinorVersion") != Some("1") {
        return Err(InvalidReason::Malformed);
    }
    if assertion.descendants().skip(1).any(|n| is_any_assertion(&n)) {
        return Err(InvalidReason::SignatureMisplaced);
    }
    let assertion_id = assertion.attribute("AssertionID").ok_or(InvalidReason::Malformed)?;
    let mut signatures = assertion.descendants().filter(|n| is(n, NS_DSIG, "Signature"));
    let Some(sig) = signatures.next() else {
        return Err(InvalidReason::BadSignature);
    };
    if signatures.next().is_some() || sig.parent() != Some(*assertion) {
        return Err(InvalidReason::SignatureMisplaced);
    }
    let weak = check_signature(&sig, assertion_id)?;
    let issuer = assertion.attribute("Issuer").ok_or(InvalidReason::ClaimsInvalid)?;
    Ok(Shape {
        issuer: issuer.to_owned(),
        assertion_id: assertion_id.to_owned(),
        version: Version::Saml11,
        weak,
    })
}

/// Checks one signature's shape; returns the first SHA-1 or MD5 method it names, signature
/// method first, then digest method.
fn check_signature(sig: &Node<'_, '_>, parent_id: &str) -> Result<Option<WeakAlgorithm>, InvalidReason> {
    if sig.descendants().any(|n| is(&n, NS_DSIG, "Object")) {
        return Err(InvalidReason::SignatureMisplaced);
    }
    let signed_info =
        sig.children().find(|n| is(n, NS_DSIG, "SignedInfo")).ok_or(InvalidReason::SignatureMisplaced)?;
    let method = signed_info
        .children()
        .find(|n| is(n, NS_DSIG, "CanonicalizationMethod"))
        .ok_or(InvalidReason::SignatureMisplaced)?;
    transforms::canon(method)?;
    let mut references = signed_info.children().filter(|n| is(n, NS_DSIG, "Reference"));
    let (Some(reference), None) = (references.next(), references.next()) else {
        return Err(InvalidReason::SignatureMisplaced);
    };
    if reference.attribute("URI") != Some(&format!("#{parent_id}")) {
        return Err(InvalidReason::SignatureMisplaced);
    }
    transforms::reference_chain(reference)?;
    let weak = |parent: Node<'_, '_>, name: &str| {
        let method = parent.children().find(|n| is(n, NS_DSIG, name))?;
        WeakAlgorithm::from_uri(method.attribute("Algorithm")?)
    };
    Ok(weak(signed_info, "SignatureMethod").or_else(|| weak(reference, "DigestMethod")))
}
