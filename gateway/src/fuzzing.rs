//! For the fuzz targets in `fuzz/` and their seed generator (`examples/fuzz_seeds.rs`), not an
//! API: the SAML checks made before xmlsec are private to `saml`, and the targets and the seeds
//! must agree on issuers, audiences and the time.

use crate::verify::saml::{c14n, structure, within_parse_bounds};
use mfagate_policy::InvalidReason;

/// When the seeds were minted, and where the targets' clocks stand (2026-01-01T00:00:00Z).
pub const T0: u64 = 1_767_225_600;
/// The token target's v1 issuer (its keys are the dev IdP's).
pub const TOKEN_ISSUER_V1: &str = "https://login.fuzz.test/{tenantid}/";
/// The token target's v2 issuer (RS256 only).
pub const TOKEN_ISSUER_V2: &str = "https://login.fuzz.test/{tenantid}/v2.0";
/// The SAML target's IdP (certs/saml-idp.pem).
pub const SAML_IDP: &str = "https://idp.contoso.test/adfs/services/trust";
/// The SAML target's audience (our entity id).
pub const SAML_SP: &str = "https://gateway.contoso.test/saml";

/// The shape checks [`crate::verify::saml::SamlVerifier::verify`] makes before xmlsec, behind the same
/// lexical bounds: the unverified issuer and assertion ID, or why the document is refused.
pub fn saml_shape(xml: &str) -> Result<(String, String), InvalidReason> {
    if !within_parse_bounds(xml) {
        return Err(InvalidReason::TooLarge);
    }
    structure::check(xml).map(|shape| (shape.issuer, shape.assertion_id))
}

/// Exclusive C14N of the `apex`-th element (document order, modulo their number) without the
/// `omit`-th node below it (modulo), with `inclusive` prefixes; `None` if the text does not parse.
pub fn exclusive_c14n(
    xml: &str,
    apex: usize,
    omit: Option<usize>,
    inclusive: &[&str],
) -> Option<Result<String, InvalidReason>> {
    if !within_parse_bounds(xml) {
        return None;
    }
    let doc = roxmltree::Document::parse(xml).ok()?;
    let elements: Vec<_> = doc.root().descendants().filter(roxmltree::Node::is_element).collect();
    let apex = *elements.get(apex % elements.len().max(1))?;
    let omit = omit.and_then(|i| {
        let below: Vec<_> = apex.descendants().skip(1).collect();
        below.get(i % below.len().max(1)).map(roxmltree::Node::id)
    });
    Some(c14n::exclusive(xml, apex, omit, inclusive))
}
