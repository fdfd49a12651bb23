//! Enveloped XML signatures checked on our own canonical bytes: SignedInfo is canonicalized and
//! its signature verified against the configured certificates; what it says (algorithms,
//! reference, digest) is read back from those verified bytes; the signed element is
//! canonicalized without its Signature and must hash to that digest. The canonical element is
//! returned, and the caller reads claims from it and nothing else.
//!
//! This serves SAML 1.1, whose `AssertionID` samael's reduction cannot resolve. xmlsec verifies
//! the same document as well (see `saml1.rs`); both must agree.

use super::NS_DSIG;
use super::c14n::exclusive;
use super::transforms::{self, EXC_C14N};
use aws_lc_rs::digest;
use base64::Engine;
use mfagate_policy::InvalidReason;
use roxmltree::{Document, Node};
use rustls_pki_types::{CertificateDer, SignatureVerificationAlgorithm};

/// The signature method URIs we sign with and accept (RSA PKCS#1 v1.5; no SHA-1).
pub const RSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";
const RSA_SHA384: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384";
const RSA_SHA512: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512";
/// The digest method URIs we accept (no SHA-1).
pub const SHA256: &str = "http://www.w3.org/2001/04/xmlenc#sha256";
const SHA384: &str = "http://www.w3.org/2001/04/xmldsig-more#sha384";
const SHA512: &str = "http://www.w3.org/2001/04/xmlenc#sha512";

fn signature_algorithm(uri: &str) -> Option<&'static dyn SignatureVerificationAlgorithm> {
    use webpki::aws_lc_rs as alg;
    match uri {
        RSA_SHA256 => Some(alg::RSA_PKCS1_2048_8192_SHA256),
        RSA_SHA384 => Some(alg::RSA_PKCS1_2048_8192_SHA384),
        RSA_SHA512 => Some(alg::RSA_PKCS1_2048_8192_SHA512),
        _ => None,
    }
}

fn digest_algorithm(uri: &str) -> Option<&'static digest::Algorithm> {
    match uri {
        SHA256 => Some(&digest::SHA256),
        SHA384 => Some(&digest::SHA384),
        SHA512 => Some(&digest::SHA512),
        _ => None,
    }
}

/// Why a method we do not accept is refused: by name if it is a weak one, else as unverifiable.
fn not_accepted(uri: &str) -> InvalidReason {
    mfagate_policy::WeakAlgorithm::from_uri(uri)
        .map_or(InvalidReason::BadSignature, InvalidReason::WeakAlgorithm)
}

fn is(node: &Node<'_, '_>, name: &str) -> bool {
    node.is_element() && node.tag_name().namespace() == Some(NS_DSIG) && node.tag_name().name() == name
}

fn child<'a, 'i>(parent: Node<'a, 'i>, name: &str) -> Result<Node<'a, 'i>, InvalidReason> {
    parent.children().find(|n| is(n, name)).ok_or(InvalidReason::SignatureMisplaced)
}

fn algorithm_of<'a>(parent: Node<'a, '_>, name: &str) -> Result<&'a str, InvalidReason> {
    child(parent, name)?.attribute("Algorithm").ok_or(InvalidReason::SignatureMisplaced)
}

/// Base64 with the line breaks IdPs put in long values.
fn base64_text(node: Node<'_, '_>) -> Result<Vec<u8>, InvalidReason> {
    let text: String =
        super::extract::full_text(&node).chars().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD.decode(text).map_err(|_| InvalidReason::BadSignature)
}

/// Verifies the enveloped signature of `element` (a direct child `ds:Signature` referencing
/// `#{id}`) against `certificates`, and returns the element's canonical bytes.
pub fn verify_enveloped(
    source: &str,
    element: Node<'_, '_>,
    id: &str,
    certificates: &[Vec<u8>],
) -> Result<String, InvalidReason> {
    let signature = child(element, "Signature")?;
    let signed_info = child(signature, "SignedInfo")?;
    // Read before verifying; what it says is part of the canonical bytes the signature covers.
    let method = transforms::canon(child(signed_info, "CanonicalizationMethod")?)?;
    if method.algorithm != EXC_C14N {
        return Err(InvalidReason::SignatureMisplaced);
    }
    let signed_info_bytes = exclusive(source, signed_info, None, &method.prefixes)?;
    let signature_value = base64_text(child(signature, "SignatureValue")?)?;

    // From here on, SignedInfo is read only from the bytes the signature is checked over.
    let verified_doc = Document::parse(&signed_info_bytes).map_err(|_| InvalidReason::SignatureMisplaced)?;
    let info = verified_doc.root_element();
    let method_uri = algorithm_of(info, "SignatureMethod")?;
    let method = signature_algorithm(method_uri).ok_or_else(|| not_accepted(method_uri))?;
    let trusted = certificates.iter().any(|der| {
        let der = CertificateDer::from(der.as_slice());
        webpki::EndEntityCert::try_from(&der).is_ok_and(|cert| {
            cert.verify_signature(method, signed_info_bytes.as_bytes(), &signature_value).is_ok()
        })
    });
    if !trusted {
        return Err(InvalidReason::BadSignature);
    }
    let mut references = info.children().filter(|n| is(n, "Reference"));
    let (Some(reference), None) = (references.next(), references.next()) else {
        return Err(InvalidReason::SignatureMisplaced);
    };
    if reference.attribute("URI").and_then(|u| u.strip_prefix('#')) != Some(id) {
        return Err(InvalidReason::SignatureMisplaced);
    }
    // Enveloped alone (inclusive C14N by default) and inclusive C14N are not implemented here.
    let Some(canon) = transforms::reference_chain(reference)?.filter(|c| c.algorithm == EXC_C14N) else {
        return Err(InvalidReason::SignatureMisplaced);
    };
    let digest_uri = algorithm_of(reference, "DigestMethod")?;
    let hash = digest_algorithm(digest_uri).ok_or_else(|| not_accepted(digest_uri))?;
    let expected = base64_text(child(reference, "DigestValue")?)?;

    let canonical = exclusive(source, element, Some(signature.id()), &canon.prefixes)?;
    if digest::digest(hash, canonical.as_bytes()).as_ref() != expected.as_slice() {
        return Err(InvalidReason::BadSignature);
    }
    Ok(canonical)
}

/// Signs `element`'s enveloped signature template (empty `DigestValue` and `SignatureValue`,
/// exclusive c14n with the template's prefix lists) with the template's digest method (SHA-256,
/// or SHA-1 to make the signatures old IdPs send) and `sign`, which makes the template's
/// signature method over the canonical SignedInfo. Development and tests only.
pub fn sign_enveloped(xml: &str, sign: &dyn Fn(&[u8]) -> Option<Vec<u8>>) -> Result<String, InvalidReason> {
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let doc = Document::parse(xml).map_err(|_| InvalidReason::Malformed)?;
    let root = doc.root_element();
    let signature = child(root, "Signature")?;
    let reference = child(child(signature, "SignedInfo")?, "Reference")?;
    let prefixes = transforms::reference_chain(reference)?.map(|c| c.prefixes).unwrap_or_default();
    let canonical = exclusive(xml, root, Some(signature.id()), &prefixes)?;
    let hash = match algorithm_of(reference, "DigestMethod")? {
        SHA256 => &digest::SHA256,
        uri if uri == mfagate_policy::WeakAlgorithm::Sha1.uri() => &digest::SHA1_FOR_LEGACY_USE_ONLY,
        _ => return Err(InvalidReason::BadSignature),
    };
    let digest = digest::digest(hash, canonical.as_bytes());
    let with_digest = splice_text(xml, child(reference, "DigestValue")?, &b64(digest.as_ref()))?;
    let doc = Document::parse(&with_digest).map_err(|_| InvalidReason::Malformed)?;
    let signature = child(doc.root_element(), "Signature")?;
    let signed_info = child(signature, "SignedInfo")?;
    let method = transforms::canon(child(signed_info, "CanonicalizationMethod")?)?;
    let bytes = exclusive(&with_digest, signed_info, None, &method.prefixes)?;
    let value = sign(bytes.as_bytes()).ok_or(InvalidReason::BadSignature)?;
    splice_text(&with_digest, child(signature, "SignatureValue")?, &b64(&value))
}

/// An RSA-SHA256 signer for [`sign_enveloped`].
pub fn rsa_sha256(key: &aws_lc_rs::signature::RsaKeyPair) -> impl Fn(&[u8]) -> Option<Vec<u8>> + '_ {
    |bytes| {
        let mut value = vec![0; key.public_modulus_len()];
        let rng = aws_lc_rs::rand::SystemRandom::new();
        key.sign(&aws_lc_rs::signature::RSA_PKCS1_SHA256, &rng, bytes, &mut value).ok()?;
        Some(value)
    }
}

/// `source` with `node` replaced by the same element holding only `text` (any prefix, any form).
fn splice_text(source: &str, node: Node<'_, '_>, text: &str) -> Result<String, InvalidReason> {
    let range = node.range();
    let qname = super::c14n::element_qname(source, node)?;
    Ok(format!("{}<{qname}>{text}</{qname}>{}", &source[..range.start], &source[range.end..]))
}

#[cfg(test)]
mod interop;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dev::saml_idp::{AssertionSpec, DevSamlSigner};
    use mfagate_policy::WeakAlgorithm;
    use samael::crypto::{CertificateDer as SamaelCert, Crypto, CryptoProvider, ReduceMode};

    fn signer(name: &str) -> DevSamlSigner {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../certs");
        let read = |ext: &str| std::fs::read(dir.join(format!("{name}.{ext}"))).unwrap();
        DevSamlSigner::from_pem(&read("key"), &read("pem")).unwrap()
    }

    fn verify(xml: &str, id: &str, certs: &[Vec<u8>]) -> Result<String, InvalidReason> {
        let doc = Document::parse(xml).unwrap();
        verify_enveloped(xml, doc.root_element(), id, certs)
    }

    /// xmlsec signs (samael, SAML 2.0 `ID`); our verification accepts it, and our canonical bytes
    /// are exactly xmlsec's pre-digest bytes: the two canonicalizations agree.
    #[test]
    fn our_canonical_bytes_are_xmlsecs() {
        let s = signer("saml-idp");
        let mut spec = AssertionSpec::new("https://idp.test/", "https://sp.test/", 1_767_225_600);
        spec.name_id = "a&b<c>\"d\"\r\n\te".into();
        // With a prefix list, `xs` (used only in an attribute value) must be rendered.
        let listed = spec
            .to_xml()
            .replacen("<saml:Assertion ", "<saml:Assertion xmlns:xs=\"urn:xs\" xmlns:xsi=\"urn:xsi\" ", 1)
            .replace("<saml:AttributeValue>", "<saml:AttributeValue xsi:type=\"xs:string\">")
            .replace(
                r#"<ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>"#,
                r#"<ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"><ec:InclusiveNamespaces xmlns:ec="http://www.w3.org/2001/10/xml-exc-c14n#" PrefixList="xs #default"/></ds:Transform>"#,
            );
        for template in [spec.to_xml(), listed] {
            let xml = s.sign(&template).unwrap();
            let ours = verify(&xml, &spec.id, &[s.cert_der().to_vec()]).unwrap();
            let cert = SamaelCert::from(s.cert_der().to_vec());
            let theirs = Crypto::reduce_xml_to_signed(&xml, &[cert], ReduceMode::PreDigest).unwrap();
            assert_eq!(ours, theirs);
        }
    }

    #[test]
    fn tampering_other_keys_and_weak_algorithms_are_refused() {
        let s = signer("saml-idp");
        let certs = [s.cert_der().to_vec()];
        let spec = AssertionSpec::new("https://idp.test/", "https://sp.test/", 1_767_225_600);
        let xml = s.sign_saml11(&spec.to_saml11_xml()).unwrap();
        assert!(verify(&xml, &spec.id, &certs).is_ok());
        let tampered = xml.replace("adele@", "admin@");
        assert_eq!(verify(&tampered, &spec.id, &certs), Err(InvalidReason::BadSignature));
        assert_eq!(
            verify(&xml, &spec.id, &[signer("saml-untrusted").cert_der().to_vec()]),
            Err(InvalidReason::BadSignature)
        );
        assert_eq!(verify(&xml, "_other", &certs), Err(InvalidReason::SignatureMisplaced));
        // A SHA-1 digest and RSA-SHA1, re-signed so that only the algorithm is at fault, are
        // refused by name.
        let key = aws_lc_rs::signature::RsaKeyPair::from_pkcs8(&pkcs8("saml-idp")).unwrap();
        let sign = rsa_sha256(&key);
        let sha1 =
            sign_enveloped(&spec.to_saml11_xml().replace(SHA256, WeakAlgorithm::Sha1.uri()), &sign).unwrap();
        assert_eq!(verify(&sha1, &spec.id, &certs), Err(InvalidReason::WeakAlgorithm(WeakAlgorithm::Sha1)));
        let rsa_sha1 =
            sign_enveloped(&spec.to_saml11_xml().replace(RSA_SHA256, WeakAlgorithm::RsaSha1.uri()), &sign)
                .unwrap();
        assert_eq!(
            verify(&rsa_sha1, &spec.id, &certs),
            Err(InvalidReason::WeakAlgorithm(WeakAlgorithm::RsaSha1))
        );
        // A method we do not know is no weak one: unverifiable.
        let unknown =
            sign_enveloped(&spec.to_saml11_xml().replace(RSA_SHA256, "urn:x:rsa-sha256-ish"), &sign).unwrap();
        assert_eq!(verify(&unknown, &spec.id, &certs), Err(InvalidReason::BadSignature));
        let inclusive = sign_enveloped(
            &spec.to_saml11_xml().replacen(EXC_C14N, "http://www.w3.org/TR/2001/REC-xml-c14n-20010315", 1),
            &sign,
        )
        .unwrap();
        assert_eq!(verify(&inclusive, &spec.id, &certs), Err(InvalidReason::SignatureMisplaced));
    }

    fn pkcs8(name: &str) -> Vec<u8> {
        use rustls_pki_types::pem::PemObject;
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../certs/{name}.key"));
        rustls_pki_types::PrivateKeyDer::from_pem_file(path).unwrap().secret_der().to_vec()
    }
}
