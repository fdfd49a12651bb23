//! The canonicalization and transform steps a signature may name, read one way for the shape
//! checks (before xmlsec) and for our own verification: enveloped-signature, then at most one
//! C14N without comments; exclusive C14N may carry an `InclusiveNamespaces PrefixList` (Okta and
//! others send `PrefixList="xs"`). Anything else (XPath, XSLT, `#WithComments`, repeated steps)
//! is refused: each extra step is work an unauthenticated sender could make xmlsec do.

use super::NS_DSIG;
use mfagate_policy::InvalidReason;
use roxmltree::Node;

/// Exclusive C14N 1.0 without comments.
pub const EXC_C14N: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";
/// The enveloped-signature transform.
pub const ENVELOPED: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";
const INCLUSIVE_C14N: [&str; 2] =
    ["http://www.w3.org/TR/2001/REC-xml-c14n-20010315", "http://www.w3.org/2006/12/xml-c14n11"];

/// A canonicalization step.
#[derive(Debug, PartialEq, Eq)]
pub struct Canon<'a> {
    /// Its algorithm URI.
    pub algorithm: &'a str,
    /// Exclusive C14N's inclusive prefixes (`#default` for the default namespace).
    pub prefixes: Vec<&'a str>,
}

fn elements<'a, 'i>(node: Node<'a, 'i>) -> impl Iterator<Item = Node<'a, 'i>> {
    node.children().filter(Node::is_element)
}

/// Reads a `CanonicalizationMethod` or a canonicalizing `Transform`.
pub fn canon<'a>(node: Node<'a, '_>) -> Result<Canon<'a>, InvalidReason> {
    let algorithm = node.attribute("Algorithm").ok_or(InvalidReason::SignatureMisplaced)?;
    let mut children = elements(node);
    let prefixes = match (children.next(), children.next()) {
        (None, _) => Vec::new(),
        (Some(list), None)
            if algorithm == EXC_C14N
                && list.tag_name().namespace() == Some(EXC_C14N)
                && list.tag_name().name() == "InclusiveNamespaces"
                && !list.has_children() =>
        {
            list.attribute("PrefixList").unwrap_or_default().split_ascii_whitespace().collect()
        }
        _ => return Err(InvalidReason::SignatureMisplaced),
    };
    if algorithm != EXC_C14N && !INCLUSIVE_C14N.contains(&algorithm) {
        return Err(InvalidReason::SignatureMisplaced);
    }
    Ok(Canon { algorithm, prefixes })
}

/// A Reference's transforms: enveloped-signature, then at most one canonicalization (returned).
pub fn reference_chain<'a>(reference: Node<'a, '_>) -> Result<Option<Canon<'a>>, InvalidReason> {
    let is = |n: &Node<'_, '_>, name: &str| {
        n.tag_name().namespace() == Some(NS_DSIG) && n.tag_name().name() == name
    };
    let transforms =
        elements(reference).find(|n| is(n, "Transforms")).ok_or(InvalidReason::SignatureMisplaced)?;
    let mut steps = elements(transforms);
    let (Some(first), second, None) = (steps.next(), steps.next(), steps.next()) else {
        return Err(InvalidReason::SignatureMisplaced);
    };
    let enveloped = is(&first, "Transform") && first.attribute("Algorithm") == Some(ENVELOPED);
    if !enveloped || elements(first).next().is_some() {
        return Err(InvalidReason::SignatureMisplaced);
    }
    second
        .map(|t| if is(&t, "Transform") { canon(t) } else { Err(InvalidReason::SignatureMisplaced) })
        .transpose()
}
