//! SAML intake before xmlsec: the shape checks (wrapping guards) and our exclusive C14N never
//! panic. C14N output is well-formed and canonical: canonicalizing it again changes nothing.
//!
//! Input: the document; its first two bytes also pick the element to canonicalize and the node
//! below it to leave out.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mfagate::fuzzing::{exclusive_c14n, saml_shape};

fuzz_target!(|data: &[u8]| {
    let Ok(xml) = std::str::from_utf8(data) else {
        return;
    };
    let _ = saml_shape(xml);
    let apex = usize::from(data.first().copied().unwrap_or(0) % 8);
    let omit = data.get(1).map(|b| usize::from(b % 16)).filter(|i| i % 2 == 1);
    let inclusive: &[&str] = if data.len().is_multiple_of(3) { &["#default", "xs", "saml"] } else { &[] };
    if let Some(Ok(canonical)) = exclusive_c14n(xml, apex, omit, inclusive) {
        if let Err(e) = roxmltree::Document::parse(&canonical) {
            panic!("c14n output {canonical:?} of {xml:?} is not well-formed: {e}");
        }
        // `None`: the output is past the parse bounds (it may declare a namespace on every
        // element that uses it).
        match exclusive_c14n(&canonical, 0, None, inclusive) {
            Some(Ok(twice)) => assert_eq!(twice, canonical, "c14n is not idempotent on {xml:?}"),
            Some(Err(e)) => panic!("c14n output {canonical:?} of {xml:?} refused: {e:?}"),
            None => {}
        }
    }
});
