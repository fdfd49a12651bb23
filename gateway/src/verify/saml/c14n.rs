//! Exclusive XML canonicalization 1.0 without comments (`xml-exc-c14n#`) of one element's
//! subtree, optionally leaving one descendant out (the enveloped-signature transform).
//!
//! Used where samael cannot give us the signed bytes (SAML 1.1, whose ID attribute is
//! `AssertionID`): we canonicalize the very node we read claims from, so the digest we check and
//! the claims we read come from one parser's one tree. Prefixes are read from the source text,
//! because roxmltree keeps namespaces but not the prefixes that c14n must reproduce.

use mfagate_policy::InvalidReason;
use roxmltree::{Node, NodeId, NodeType};

const XML_NS_PREFIX: &str = "xml";

/// The canonical form of `apex`'s subtree, without `omit`'s subtree. `source` is the text the
/// document was parsed from. `inclusive` is the `InclusiveNamespaces PrefixList` (`#default` for
/// the default namespace): those prefixes are rendered wherever they are in scope and changed,
/// as inclusive C14N would, used or not.
pub fn exclusive<'s>(
    source: &'s str,
    apex: Node<'_, 's>,
    omit: Option<NodeId>,
    inclusive: &[&str],
) -> Result<String, InvalidReason> {
    enum Step<N> {
        Open(N),
        Close(N),
    }
    let mut out = String::with_capacity(apex.range().len());
    // Namespace declarations rendered by each open output element, innermost last.
    let mut rendered = Vec::new();
    // An explicit stack: no recursion, however deep the document.
    let mut steps = vec![Step::Open(apex)];
    while let Some(step) = steps.pop() {
        match step {
            Step::Open(node) if Some(node.id()) != omit => match node.node_type() {
                NodeType::Element => {
                    open(source, node, inclusive, &mut rendered, &mut out)?;
                    steps.push(Step::Close(node));
                    steps.extend(node.children().rev().map(Step::Open));
                }
                NodeType::Text => text(node.text().unwrap_or_default(), &mut out),
                NodeType::PI => {
                    if let Some(pi) = node.pi() {
                        out.push_str("<?");
                        out.push_str(pi.target);
                        if let Some(v) = pi.value.filter(|v| !v.is_empty()) {
                            out.push(' ');
                            out.push_str(v);
                        }
                        out.push_str("?>");
                    }
                }
                NodeType::Comment | NodeType::Root => {}
            },
            Step::Open(_) => {}
            Step::Close(node) => {
                out.push_str("</");
                out.push_str(element_qname(source, node)?);
                out.push('>');
                rendered.pop();
            }
        }
    }
    Ok(out)
}

/// The element's qualified name as written in `source` (roxmltree keeps namespaces, not prefixes).
pub fn element_qname<'s>(source: &'s str, node: Node<'_, '_>) -> Result<&'s str, InvalidReason> {
    let start = source.get(node.range()).and_then(|s| s.strip_prefix('<')).ok_or(InvalidReason::Malformed)?;
    let end = start.find(|c: char| c.is_ascii_whitespace() || c == '/' || c == '>').unwrap_or(start.len());
    Ok(&start[..end])
}

fn prefix_of(qname: &str) -> &str {
    qname.split_once(':').map_or("", |(p, _)| p)
}

fn open<'s, 'a>(
    source: &'s str,
    node: Node<'a, 's>,
    inclusive: &[&str],
    rendered: &mut Vec<Vec<(&'s str, &'a str)>>,
    out: &mut String,
) -> Result<(), InvalidReason> {
    let qname = element_qname(source, node)?;
    let mut attrs = Vec::with_capacity(node.attributes().len());
    for a in node.attributes() {
        let name = source.get(a.range_qname()).ok_or(InvalidReason::Malformed)?;
        attrs.push((a.namespace().unwrap_or(""), a.name(), name, a.value()));
    }
    // Visibly utilized prefixes: the element's own (or the default), and its attributes' (an
    // unprefixed attribute is in no namespace and utilizes nothing).
    let mut utilized = vec![prefix_of(qname)];
    utilized.extend(attrs.iter().map(|a| prefix_of(a.2)).filter(|p| !p.is_empty()));
    let listed = |p: &str| inclusive.iter().any(|i| *i == p || (p.is_empty() && *i == "#default"));
    // Listed prefixes count wherever they are in scope.
    utilized.extend(node.namespaces().map(|ns| ns.name().unwrap_or("")).filter(|p| listed(p)));
    utilized.sort_unstable();
    utilized.dedup();
    let mut declare = Vec::new();
    for prefix in utilized {
        if prefix == XML_NS_PREFIX {
            continue;
        }
        let uri = node.lookup_namespace_uri((!prefix.is_empty()).then_some(prefix)).unwrap_or("");
        if !prefix.is_empty() && uri.is_empty() {
            return Err(InvalidReason::Malformed);
        }
        // Not yet rendered counts as the empty default, so `xmlns=""` appears only to undo one.
        let in_scope = rendered.iter().rev().flatten().find(|(p, _)| *p == prefix).map_or("", |(_, u)| *u);
        if in_scope != uri {
            declare.push((prefix, uri));
        }
    }
    out.push('<');
    out.push_str(qname);
    for (prefix, uri) in &declare {
        out.push_str(if prefix.is_empty() { " xmlns" } else { " xmlns:" });
        out.push_str(prefix);
        out.push_str("=\"");
        attribute_value(uri, out);
        out.push('"');
    }
    attrs.sort_unstable_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    for (_, _, name, value) in attrs {
        out.push(' ');
        out.push_str(name);
        out.push_str("=\"");
        attribute_value(value, out);
        out.push('"');
    }
    out.push('>');
    rendered.push(declare);
    Ok(())
}

fn text(value: &str, out: &mut String) {
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#xD;"),
            c => out.push(c),
        }
    }
}

fn attribute_value(value: &str, out: &mut String) {
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '"' => out.push_str("&quot;"),
            '\t' => out.push_str("&#x9;"),
            '\n' => out.push_str("&#xA;"),
            '\r' => out.push_str("&#xD;"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c14n(xml: &str) -> String {
        let doc = roxmltree::Document::parse(xml).unwrap();
        exclusive(xml, doc.root_element(), None, &[]).unwrap()
    }

    #[test]
    fn attributes_sort_namespaces_render_where_used_and_values_escape() {
        let xml = r#"<a:r xmlns:a="urn:a" xmlns:b="urn:b" xmlns:unused="urn:u" z="1" b:y="2" a="&amp;&#9;&#10;&quot;"><b:c  x = '3' /><d xmlns="urn:d">t&lt;&gt;&#13;<!-- gone --><?pi  v?></d><e/></a:r>"#;
        assert_eq!(
            c14n(xml),
            "<a:r xmlns:a=\"urn:a\" xmlns:b=\"urn:b\" a=\"&amp;&#x9;&#xA;&quot;\" z=\"1\" b:y=\"2\"><b:c x=\"3\"></b:c><d xmlns=\"urn:d\">t&lt;&gt;&#xD;<?pi v?></d><e></e></a:r>"
        );
    }

    #[test]
    fn an_inner_default_namespace_is_undeclared_for_unqualified_children() {
        let xml = r#"<r xmlns="urn:d"><s xmlns=""><t/></s><p:q xmlns:p="urn:d"/></r>"#;
        assert_eq!(
            c14n(xml),
            "<r xmlns=\"urn:d\"><s xmlns=\"\"><t></t></s><p:q xmlns:p=\"urn:d\"></p:q></r>"
        );
    }

    #[test]
    fn a_subtree_takes_its_ancestors_namespaces_and_leaves_out_the_omitted_node() {
        let xml = r#"<o xmlns:s="urn:s" xmlns:ds="urn:ds"><s:a ID="1"><ds:Sig><ds:x/></ds:Sig>
<s:b>v</s:b></s:a></o>"#;
        let doc = roxmltree::Document::parse(xml).unwrap();
        let a = doc.root_element().first_element_child().unwrap();
        let sig = a.first_element_child().unwrap();
        assert_eq!(
            exclusive(xml, a, Some(sig.id()), &[]).unwrap(),
            "<s:a xmlns:s=\"urn:s\" ID=\"1\">\n<s:b>v</s:b></s:a>"
        );
        assert_eq!(
            exclusive(xml, sig, None, &[]).unwrap(),
            "<ds:Sig xmlns:ds=\"urn:ds\"><ds:x></ds:x></ds:Sig>"
        );
    }

    #[test]
    fn listed_prefixes_render_like_inclusive_c14n() {
        let xml = r#"<o xmlns:xs="urn:xs" xmlns="urn:d" xmlns:n="urn:n"><a xmlns:s="urn:s" s:t="xs:string"><s:b xmlns:xs="urn:xs"/></a></o>"#;
        let doc = roxmltree::Document::parse(xml).unwrap();
        let a = doc.root_element().first_element_child().unwrap();
        assert_eq!(
            exclusive(xml, a, None, &["xs", "#default", "absent"]).unwrap(),
            "<a xmlns=\"urn:d\" xmlns:s=\"urn:s\" xmlns:xs=\"urn:xs\" s:t=\"xs:string\"><s:b></s:b></a>"
        );
    }
}
