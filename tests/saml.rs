//! SAML assertion verification: signatures, wrapping variants, conditions, replay, MFA.

use crate::support::*;
use mfagate::clock::ManualClock;
use mfagate::config::SamlIdp;
use mfagate::dev::saml_idp::{AssertionSpec, DevSamlSigner, response_xml, signature_template};
use mfagate::verify::saml::{SamlVerifier, Use};
use mfagate_policy::{
    ATTR_AUTHENTICATION_METHOD, InvalidReason, MULTIPLE_AUTHN, MfaOutcome, SamlMfaSettings, evaluate_saml_mfa,
};
use std::time::Duration;

pub const IDP: &str = "https://idp.contoso.test/adfs/services/trust";
pub const SP: &str = "https://gateway.contoso.test/saml";

pub fn signer(name: &str) -> DevSamlSigner {
    let read = |ext: &str| std::fs::read(certs().join(format!("{name}.{ext}"))).unwrap();
    DevSamlSigner::from_pem(&read("key"), &read("pem")).unwrap()
}

fn verifier(clock: std::sync::Arc<ManualClock>) -> SamlVerifier {
    let idp = SamlIdp {
        name: "adfs".into(),
        entity_id: IDP.into(),
        // A rollover: the next certificate first, the current one second.
        certificates: vec![pem_cert("server.pem"), signer("saml-idp").cert_der().to_vec()],
        mfa: SamlMfaSettings::default(),
        leeway_secs: 60,
        sso_url: None,
        accept_sso_responses_as_api: false,
        metadata_url: None,
    };
    SamlVerifier::new(vec![idp], SP.into(), Vec::new(), 64 * 1024, clock)
}

fn pem_cert(name: &str) -> Vec<u8> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::CertificateDer::from_pem_file(certs().join(name)).unwrap().to_vec()
}

fn spec() -> AssertionSpec {
    AssertionSpec::new(IDP, SP, T0)
}

/// `doc` split into its `ds:Signature` element and the rest.
fn split_signature(doc: &str) -> (String, String) {
    let start = doc.find("<ds:Signature").unwrap();
    let end = doc.find("</ds:Signature>").unwrap() + "</ds:Signature>".len();
    (doc[start..end].to_owned(), format!("{}{}", &doc[..start], &doc[end..]))
}

/// XPath transforms and ds:Object are refused before xmlsec sees them.
fn assert_xpath_and_object_refused(v: &SamlVerifier, good: &str) {
    let xpath = good.replace(
        EXC,
        r#"<ds:Transform Algorithm="http://www.w3.org/TR/1999/REC-xpath-19991116"><ds:XPath>1</ds:XPath></ds:Transform>"#,
    );
    assert_eq!(err(v, &xpath), InvalidReason::SignatureMisplaced);
    let object = good.replace("</ds:SignatureValue>", "</ds:SignatureValue><ds:Object>x</ds:Object>");
    assert_eq!(err(v, &object), InvalidReason::SignatureMisplaced);
}

/// The attacker's assertion: another user, no attributes.
fn evil_spec() -> AssertionSpec {
    let mut evil = spec();
    evil.name_id = "admin@contoso.test".into();
    evil.attributes.clear();
    evil
}

fn signed(spec: &AssertionSpec) -> String {
    signer("saml-idp").sign(&spec.to_xml()).unwrap()
}

/// Whether the verified document proves MFA under the default locations.
fn mfa_proven(v: &SamlVerifier, xml: &str) -> bool {
    let ok = v.verify(xml, Use::Api).unwrap();
    evaluate_saml_mfa(&ok.facts, &SamlMfaSettings::default()) == MfaOutcome::Proven
}

fn err(v: &SamlVerifier, xml: &str) -> InvalidReason {
    v.verify(xml, Use::Api).map(|_| ()).expect_err("must be refused")
}

#[test]
fn a_signed_assertion_verifies_and_names_its_user() {
    let v = verifier(ManualClock::at(T0));
    let ok = v.verify(&signed(&spec()), Use::Api).unwrap();
    assert_eq!(ok.identity.upn.as_deref(), Some("adele@contoso.test"));
    assert_eq!(ok.identity.tenant_id.as_deref(), Some(tenant()));
    assert_eq!(ok.identity.issuer, "adfs");
    assert_eq!(evaluate_saml_mfa(&ok.facts, &SamlMfaSettings::default()), MfaOutcome::Proven);
    // Also inside an unsigned Response, and inside a signed one.
    let a = spec();
    let in_response = response_xml("_r1", &signed(&a), false);
    assert!(v.verify(&in_response, Use::Api).is_ok());
    let b = spec();
    let both = signer("saml-idp")
        .sign(&response_xml("_r2", &b.to_xml().replace(&signature_template(&b.id), ""), true))
        .unwrap();
    assert!(v.verify(&both, Use::Api).is_ok(), "a signed Response covering its assertion");
}

#[test]
fn mfa_in_each_saml2_location() {
    let v = verifier(ManualClock::at(T0));
    let pwd = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport";
    let mut class = spec();
    class.class_ref = Some(MULTIPLE_AUTHN.into());
    let mut amr = spec().with_amr_attribute(&[
        "http://schemas.microsoft.com/ws/2008/06/identity/authenticationmethod/password",
        MULTIPLE_AUTHN,
    ]);
    amr.class_ref = Some(pwd.into());
    let mut method = spec();
    method.class_ref = Some(pwd.into());
    method.attributes.push((ATTR_AUTHENTICATION_METHOD.into(), vec![MULTIPLE_AUTHN.into()]));
    let mut none = spec().with_amr_attribute(&[
        "http://schemas.microsoft.com/ws/2008/06/identity/authenticationmethod/password",
    ]);
    none.class_ref = Some(pwd.into());
    for (name, s, want) in [
        ("class ref", class, true),
        ("authnmethodsreferences", amr, true),
        ("authenticationmethod", method, true),
        ("password only", none, false),
    ] {
        assert_eq!(mfa_proven(&v, &signed(&s)), want, "{name}");
    }
}

#[test]
fn bad_signatures_and_untrusted_certificates_are_refused() {
    let v = verifier(ManualClock::at(T0));
    let good = signed(&spec());
    let tampered =
        good.replace("adele@contoso.test</saml:AttributeValue>", "admin@contoso.test</saml:AttributeValue>");
    assert_eq!(err(&v, &tampered), InvalidReason::BadSignature);
    let untrusted = signer("saml-untrusted").sign(&spec().to_xml()).unwrap();
    assert_eq!(err(&v, &untrusted), InvalidReason::BadSignature);
    let s = spec();
    let unsigned_doc = s.to_xml().replace(&signature_template(&s.id), "");
    assert_eq!(err(&v, &unsigned_doc), InvalidReason::BadSignature);
    let mut other = spec();
    other.issuer = "https://evil.test/".into();
    assert_eq!(err(&v, &signed(&other)), InvalidReason::UnknownIssuer);
}

#[test]
fn conditions_audience_and_replay() {
    let clock = ManualClock::at(T0);
    let v = verifier(clock.clone());
    let mut wrong = spec();
    wrong.audience = "https://other-sp.test/".into();
    assert_eq!(err(&v, &signed(&wrong)), InvalidReason::WrongAudience);

    // The same document again is a bearer credential reused (cache hit); the same ID in another
    // document is a replay.
    let s = spec();
    let doc = signed(&s);
    assert!(v.verify(&doc, Use::Api).is_ok());
    assert!(v.verify(&doc, Use::Api).is_ok());
    let mut same_id = spec();
    same_id.id = s.id.clone();
    same_id.name_id = "other@contoso.test".into();
    assert_eq!(err(&v, &signed(&same_id)), InvalidReason::Replayed);
    // At the ACS an assertion is accepted once.
    let acs = signed(&spec());
    assert!(v.verify(&acs, Use::Acs).is_ok());
    assert_eq!(v.verify(&acs, Use::Acs).map(|_| ()).unwrap_err(), InvalidReason::Replayed);
    // Expiry is the policy's to judge against its clock; the verifier reports the window.
    let ok = v.verify(&signed(&spec()), Use::Api).unwrap();
    assert_eq!(ok.facts.expires.0, T0 + 300);
    // First seen inside the leeway after NotOnOrAfter (which the policy still accepts): the ID is
    // remembered, so it cannot be used twice there either.
    let late = signed(&spec());
    clock.advance(Duration::from_secs(310));
    assert!(v.verify(&late, Use::Acs).is_ok());
    assert_eq!(v.verify(&late, Use::Acs).map(|_| ()).unwrap_err(), InvalidReason::Replayed);
}

#[test]
fn signature_wrapping_variants_are_refused() {
    let v = verifier(ManualClock::at(T0));
    let good_spec = spec();
    let good = signed(&good_spec);
    let evil = evil_spec();
    let evil_unsigned = evil.to_xml().replace(&signature_template(&evil.id), "");

    // XSW: an unsigned assertion beside the signed one.
    let beside = response_xml("_r", &format!("{evil_unsigned}{good}"), false);
    assert_eq!(err(&v, &beside), InvalidReason::SignatureMisplaced);
    let beside = response_xml("_r", &format!("{good}{evil_unsigned}"), false);
    assert_eq!(err(&v, &beside), InvalidReason::SignatureMisplaced);
    // XSW: the signed assertion moved under an unsigned wrapper element.
    let moved = response_xml("_r", &format!("<samlp:Extensions>{good}</samlp:Extensions>"), false);
    assert_eq!(err(&v, &moved), InvalidReason::SignatureMisplaced);
    // XSW: an evil assertion carrying the signed one in its Advice.
    let advice =
        evil_unsigned.replace("<saml:Subject>", &format!("<saml:Advice>{good}</saml:Advice><saml:Subject>"));
    assert_eq!(err(&v, &response_xml("_r", &advice, false)), InvalidReason::SignatureMisplaced);
    // Two signed assertions.
    let two = response_xml("_r", &format!("{good}{}", signed(&spec())), false);
    assert_eq!(err(&v, &two), InvalidReason::SignatureMisplaced);
    // The evil assertion reusing the signed one's ID (duplicate IDs).
    let mut clone = evil.clone();
    clone.id = good_spec.id.clone();
    let dup = response_xml(
        "_r",
        &format!("{}{good}", clone.to_xml().replace(&signature_template(&clone.id), "")),
        false,
    );
    assert_eq!(err(&v, &dup), InvalidReason::SignatureMisplaced);
    // The signature moved out of the assertion into the Response, still referencing the assertion.
    let (signature, stripped) = split_signature(&good);
    let relocated =
        response_xml("_r", &stripped, false).replace("<samlp:Status>", &format!("{signature}<samlp:Status>"));
    assert_eq!(err(&v, &relocated), InvalidReason::SignatureMisplaced);
    assert_xpath_and_object_refused(&v, &good);
}

#[test]
fn a_comment_inside_a_value_cannot_shorten_it() {
    let v = verifier(ManualClock::at(T0));
    let mut s = spec();
    s.name_id = "jane@contoso.test.evil.test".into();
    s.attributes.retain(|(n, _)| !n.ends_with("/upn"));
    let doc = signed(&s).replace("jane@contoso.test.evil.test", "jane@contoso.test<!---->.evil.test");
    let ok = v.verify(&doc, Use::Api).expect("exclusive c14n drops comments: the signature still holds");
    assert_eq!(ok.identity.upn.as_deref(), Some("jane@contoso.test.evil.test"));
}

#[test]
fn dtds_entities_and_oversized_documents_are_refused() {
    let v = verifier(ManualClock::at(T0));
    let good = signed(&spec());
    let xxe =
        format!("<?xml version=\"1.0\"?><!DOCTYPE a [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>{good}");
    assert_eq!(err(&v, &xxe), InvalidReason::Malformed);
    let big = good.replace("<saml:AttributeStatement>", &format!("<saml:AttributeStatement><saml:Attribute Name=\"pad\"><saml:AttributeValue>{}</saml:AttributeValue></saml:Attribute>", "p".repeat(70_000)));
    assert_eq!(err(&v, &big), InvalidReason::TooLarge);
    assert_eq!(v.verify_base64("not base64!", Use::Api).map(|_| ()).unwrap_err(), InvalidReason::Malformed);
}

fn saml_header(xml: &str) -> String {
    use base64::Engine;
    format!("SAML {}", base64::engine::general_purpose::STANDARD.encode(xml))
}

/// `GET /v1/x` with `Authorization: SAML <base64 xml>`.
fn saml_request(addr: std::net::SocketAddr, xml: &str) -> http::Request<http_body_util::Full<bytes::Bytes>> {
    http::Request::get(format!("http://{addr}/v1/x"))
        .header("authorization", saml_header(xml))
        .body(Default::default())
        .unwrap()
}

fn assert_forwarded_as_mfa_user(r: &Reply) {
    assert_eq!(r.status, http::StatusCode::OK, "{}", r.body);
    assert_eq!(r.upstream_header("x-auth-principal").as_deref(), Some("user"));
    assert_eq!(r.upstream_header("x-auth-mfa").as_deref(), Some("true"));
    assert_eq!(r.upstream_header("x-auth-upn").as_deref(), Some("adele@contoso.test"));
}

#[tokio::test]
async fn saml_assertions_are_api_credentials_end_to_end() {
    let mut g = gateway().start().await;
    let send = |xml: String| g.send(saml_request(g.addr, &xml));
    let r = send(signed(&spec())).await;
    assert_forwarded_as_mfa_user(&r);
    let mut no_mfa = spec();
    no_mfa.class_ref = Some("urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport".into());
    let r = send(signed(&no_mfa)).await;
    assert_eq!((r.status.as_u16(), r.json()["error"].as_str()), (401, Some("saml_mfa_missing")));
    assert_eq!(r.www(), "Bearer error=\"invalid_token\", error_description=\"MFA required\"");
    let good = signed(&spec());
    let mut evil = spec();
    evil.name_id = "admin@contoso.test".into();
    let wrapped = response_xml(
        "_r",
        &format!("{}{good}", evil.to_xml().replace(&signature_template(&evil.id), "")),
        false,
    );
    let r = send(wrapped).await;
    assert_eq!((r.status.as_u16(), r.json()["error"].as_str()), (401, Some("signature_misplaced")));
    let short = spec();
    let short_doc = signed(&short);
    g.clock.advance(Duration::from_secs(300 + 60));
    let r = send(short_doc).await;
    assert_eq!(r.json()["error"], "token_expired");
    assert_eq!(g.echo.hits(), 1, "only the MFA assertion reached the upstream");
    let log = g.stop().await;
    let seen: Vec<_> = log
        .iter()
        .map(|r| (r["principal"].as_str().unwrap(), r["mfa"].clone(), r["reason"].as_str().unwrap()))
        .collect();
    assert_eq!(seen[0], ("user", serde_json::json!(true), "mfa_satisfied"));
    assert_eq!(seen[1], ("user", serde_json::json!(false), "saml_mfa_missing"));
    assert_eq!(seen[2], ("anonymous", serde_json::Value::Null, "signature_misplaced"));
    assert_eq!(log[0]["issuer"], "adfs");
    let text = std::fs::read_to_string(g.log_path()).unwrap();
    assert!(!text.contains("SignatureValue") && !text.contains("PFN"), "no assertion in the log");
}

#[tokio::test]
async fn an_idp_configured_by_metadata() {
    use base64::Engine;
    let dir = tempfile::tempdir().unwrap();
    let cert = base64::engine::general_purpose::STANDARD.encode(signer("saml-idp").cert_der());
    let metadata = format!(
        r#"<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="{IDP}"><md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"><md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{cert}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor><md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://idp.contoso.test/sso"/></md:IDPSSODescriptor></md:EntityDescriptor>"#
    );
    let path = dir.path().join("idp-metadata.xml");
    std::fs::write(&path, metadata).unwrap();
    let g = gateway()
        .replace(
            "entity_id = \"https://idp.contoso.test/adfs/services/trust\"\ncertificates = [\"{certs}/saml-idp.pem\"]",
            &format!("metadata = \"{}\"", path.display()),
        )
        .start()
        .await;
    let req = http::Request::get(format!("http://{}/v1/x", g.addr))
        .header("authorization", saml_header(&signed(&spec())))
        .body(Default::default())
        .unwrap();
    assert_eq!(g.send(req).await.status, http::StatusCode::OK);
}

// SAML 1.1 (WS-Federation): `AssertionID`, `AuthenticationStatement/@AuthenticationMethod`,
// attributes named by `AttributeNamespace` + `AttributeName`.

fn signed11(spec: &AssertionSpec) -> String {
    signer("saml-idp").sign_saml11(&spec.to_saml11_xml()).unwrap()
}

const PASSWORD_METHOD: &str = "urn:oasis:names:tc:SAML:1.0:am:password";

#[test]
fn a_saml11_assertion_verifies_with_mfa_in_its_authentication_method() {
    let v = verifier(ManualClock::at(T0));
    let doc = signed11(&spec());
    assert!(
        doc.contains("AssertionID=")
            && doc.contains("AuthenticationMethod=\"http://schemas.microsoft.com/claims/multipleauthn\"")
    );
    let ok = v.verify(&doc, Use::Api).unwrap();
    assert_eq!(ok.identity.upn.as_deref(), Some("adele@contoso.test"));
    assert_eq!(ok.identity.tenant_id.as_deref(), Some(tenant()));
    assert_eq!(ok.identity.object_id.as_deref(), Some("00000000-0000-4000-8000-0000000b0001"));
    assert_eq!(ok.facts.authentication_methods, [MULTIPLE_AUTHN]);
    assert_eq!(ok.facts.expires.0, T0 + 300);
    assert_eq!(
        evaluate_saml_mfa(&ok.facts, &SamlMfaSettings::default()),
        MfaOutcome::Proven,
        "claims.md row 37"
    );
    // Switched off for this IdP, the location no longer counts.
    let off = SamlMfaSettings { authentication_method: false, ..SamlMfaSettings::default() };
    assert!(matches!(evaluate_saml_mfa(&ok.facts, &off), MfaOutcome::NotProven(_)));
}

#[test]
fn saml11_mfa_in_the_authenticationmethod_attribute_and_none() {
    let v = verifier(ManualClock::at(T0));
    let password = "http://schemas.microsoft.com/ws/2008/06/identity/authenticationmethod/password";
    let mut attr = spec();
    attr.class_ref = Some(PASSWORD_METHOD.into());
    attr.attributes.push((ATTR_AUTHENTICATION_METHOD.into(), vec![password.into(), MULTIPLE_AUTHN.into()]));
    let mut none = spec();
    none.class_ref = Some(PASSWORD_METHOD.into());
    none.attributes.push((ATTR_AUTHENTICATION_METHOD.into(), vec![password.into()]));
    let mut amr = spec().with_amr_attribute(&[password, MULTIPLE_AUTHN]);
    amr.class_ref = None;
    for (name, s, want) in
        [("row 38", attr, true), ("authnmethodsreferences", amr, true), ("password", none, false)]
    {
        assert_eq!(mfa_proven(&v, &signed11(&s)), want, "{name}");
    }
}

#[test]
fn saml11_bad_signatures_audiences_and_replays_are_refused() {
    let v = verifier(ManualClock::at(T0));
    let good = signed11(&spec());
    let tampered = good.replace(
        &format!("AuthenticationMethod=\"{MULTIPLE_AUTHN}\""),
        &format!("AuthenticationMethod=\"{MULTIPLE_AUTHN}\" x=\"1\""),
    );
    assert_ne!(tampered, good);
    assert_eq!(err(&v, &tampered), InvalidReason::BadSignature);
    let renamed =
        good.replace("adele@contoso.test</saml:AttributeValue>", "admin@contoso.test</saml:AttributeValue>");
    assert_eq!(err(&v, &renamed), InvalidReason::BadSignature);
    let untrusted = signer("saml-untrusted").sign_saml11(&spec().to_saml11_xml()).unwrap();
    assert_eq!(err(&v, &untrusted), InvalidReason::BadSignature);
    let s = spec();
    assert_eq!(
        err(&v, &s.to_saml11_xml().replace(&signature_template(&s.id), "")),
        InvalidReason::BadSignature
    );
    let mut wrong = spec();
    wrong.audience = "https://other-sp.test/".into();
    assert_eq!(err(&v, &signed11(&wrong)), InvalidReason::WrongAudience);
    let mut other = spec();
    other.issuer = "https://evil.test/".into();
    assert_eq!(err(&v, &signed11(&other)), InvalidReason::UnknownIssuer);
    // Version 1.0 and 2.0-style attributes on a 1.x assertion are not what we verify.
    assert_eq!(err(&v, &good.replace("MinorVersion=\"1\"", "MinorVersion=\"0\"")), InvalidReason::Malformed);

    let s = spec();
    let doc = signed11(&s);
    assert!(v.verify(&doc, Use::Api).is_ok());
    assert!(v.verify(&doc, Use::Api).is_ok(), "the same bearer document again");
    let mut same_id = spec();
    same_id.id = s.id.clone();
    same_id.name_id = "other@contoso.test".into();
    assert_eq!(err(&v, &signed11(&same_id)), InvalidReason::Replayed);
}

#[test]
fn saml11_wrapping_variants_are_refused() {
    let v = verifier(ManualClock::at(T0));
    let good_spec = spec();
    let good = signed11(&good_spec);
    let evil = evil_spec();
    let evil_unsigned = evil.to_saml11_xml().replace(&signature_template(&evil.id), "");

    // An unsigned assertion around the signed one, which hides in its Advice.
    let advice = evil_unsigned
        .replace("<saml:Conditions", &format!("<saml:Advice>{good}</saml:Advice><saml:Conditions"));
    assert_eq!(err(&v, &advice), InvalidReason::SignatureMisplaced);
    // The signed assertion beside an unsigned one, under a wrapper or a Response.
    let wrapper = format!("<w xmlns=\"urn:w\">{good}{evil_unsigned}</w>");
    assert_eq!(err(&v, &wrapper), InvalidReason::Malformed);
    assert_eq!(
        err(&v, &response_xml("_r", &format!("{evil_unsigned}{good}"), false)),
        InvalidReason::SignatureMisplaced
    );
    // An element inside reusing the assertion's ID.
    let dup = good.replace(
        "<saml:Conditions",
        &format!("<saml:Advice AssertionID=\"{}\"/><saml:Conditions", good_spec.id),
    );
    assert_eq!(err(&v, &dup), InvalidReason::SignatureMisplaced);
    // A second signature, or the signature moved under a statement.
    let (signature, stripped) = split_signature(&good);
    let twice =
        good.replace("<saml:Conditions", &format!("<saml:Advice>{signature}</saml:Advice><saml:Conditions"));
    assert_eq!(err(&v, &twice), InvalidReason::SignatureMisplaced);
    let moved =
        stripped.replace("</saml:AttributeStatement>", &format!("{signature}</saml:AttributeStatement>"));
    assert_eq!(err(&v, &moved), InvalidReason::SignatureMisplaced);
    // A reference to anything but the assertion, XPath transforms, ds:Object.
    let elsewhere = good.replace(&format!("URI=\"#{}\"", good_spec.id), "URI=\"#_other\"");
    assert_eq!(err(&v, &elsewhere), InvalidReason::SignatureMisplaced);
    assert_xpath_and_object_refused(&v, &good);
    // A comment inside NameIdentifier is dropped by c14n: the signature holds and the whole text is read.
    let mut s = spec();
    s.name_id = "jane@contoso.test.evil.test".into();
    s.attributes.retain(|(n, _)| !n.ends_with("/upn"));
    let doc = signed11(&s).replacen("jane@contoso.test.evil.test", "jane@contoso.test<!---->.evil.test", 1);
    let ok = v.verify(&doc, Use::Api).expect("the comment is outside the signed bytes");
    assert_eq!(ok.identity.upn.as_deref(), Some("jane@contoso.test.evil.test"));
    // A DTD is refused before anything else.
    let xxe =
        format!("<?xml version=\"1.0\"?><!DOCTYPE a [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>{good}");
    assert_eq!(err(&v, &xxe), InvalidReason::Malformed);
}

#[tokio::test]
async fn saml11_assertions_are_api_credentials_end_to_end() {
    let mut g = gateway().start().await;
    let send = |xml: String| g.send(saml_request(g.addr, &xml));
    let r = send(signed11(&spec())).await;
    assert_forwarded_as_mfa_user(&r);
    let mut no_mfa = spec();
    no_mfa.class_ref = Some(PASSWORD_METHOD.into());
    let r = send(signed11(&no_mfa)).await;
    assert_eq!((r.status.as_u16(), r.json()["error"].as_str()), (401, Some("saml_mfa_missing")));
    let tampered = signed11(&spec())
        .replace("adele@contoso.test</saml:NameIdentifier>", "admin@contoso.test</saml:NameIdentifier>");
    let r = send(tampered).await;
    assert_eq!((r.status.as_u16(), r.json()["error"].as_str()), (401, Some("bad_signature")));
    assert_eq!(g.echo.hits(), 1, "only the MFA assertion reached the upstream");
    let log = g.stop().await;
    let seen: Vec<_> = log
        .iter()
        .map(|r| (r["principal"].as_str().unwrap(), r["mfa"].clone(), r["reason"].as_str().unwrap()))
        .collect();
    assert_eq!(
        seen,
        [
            ("user", serde_json::json!(true), "mfa_satisfied"),
            ("user", serde_json::json!(false), "saml_mfa_missing"),
            ("anonymous", serde_json::Value::Null, "bad_signature"),
        ]
    );
}

/// The dev IdP's bearer-assertion endpoint (what the demo prints), through the gateway.
#[tokio::test]
async fn the_dev_idp_issues_bearer_assertions_of_either_version() {
    let g = gateway().start().await;
    for (query, want) in
        [("&version=1.1", 200), ("&version=1.1&mfa=false", 401), ("&version=2.0", 200), ("", 200)]
    {
        let url = format!("{}{query}", g.saml_idp.assertion_url(SP));
        let minted = g.send(http::Request::get(url).body(Default::default()).unwrap()).await;
        assert_eq!(minted.status, http::StatusCode::OK, "{query}: {}", minted.body);
        let req = http::Request::get(format!("http://{}/v1/x", g.addr))
            .header("authorization", format!("SAML {}", minted.body))
            .body(Default::default())
            .unwrap();
        assert_eq!(g.send(req).await.status.as_u16(), want, "{query}");
    }
    let bad = g
        .send(
            http::Request::get(format!("{}&version=3", g.saml_idp.assertion_url(SP)))
                .body(Default::default())
                .unwrap(),
        )
        .await;
    assert_eq!(bad.status, http::StatusCode::BAD_REQUEST);
}

// Found in review: bounds before parsing, transform chains, prefix lists, conditions.

const EXC: &str = r#"<ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>"#;
const XS_DECLS: &str =
    r#"xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" "#;

/// `xs` is used only inside an attribute value (`xsi:type="xs:string"`), so exclusive C14N drops
/// it unless the signer lists it, as Okta does with `PrefixList="xs"`.
fn with_prefix_list(xml: &str, root: &str) -> String {
    xml.replacen(&format!("<{root} "), &format!("<{root} {XS_DECLS}"), 1)
        .replace("<saml:AttributeValue>", r#"<saml:AttributeValue xsi:type="xs:string">"#)
        .replace(
            EXC,
            r#"<ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"><ec:InclusiveNamespaces xmlns:ec="http://www.w3.org/2001/10/xml-exc-c14n#" PrefixList="xs"/></ds:Transform>"#,
        )
}

#[test]
fn inclusive_namespace_prefix_lists_verify_in_both_versions() {
    let v = verifier(ManualClock::at(T0));
    let s = spec();
    let doc2 = signer("saml-idp").sign(&with_prefix_list(&s.to_xml(), "saml:Assertion")).unwrap();
    assert!(doc2.contains("PrefixList=\"xs\""));
    assert!(v.verify(&doc2, Use::Api).is_ok(), "SAML 2.0 with a prefix list (xmlsec)");
    let s = spec();
    let doc11 =
        signer("saml-idp").sign_saml11(&with_prefix_list(&s.to_saml11_xml(), "saml:Assertion")).unwrap();
    let ok = v.verify(&doc11, Use::Api).expect("SAML 1.1 with a prefix list (xmlsec and ours)");
    assert_eq!(ok.identity.upn.as_deref(), Some("adele@contoso.test"));
    // The listed namespace is signed: changing its URI breaks the signature.
    let moved = doc11.replace("http://www.w3.org/2001/XMLSchema\"", "urn:evil\"");
    assert_eq!(err(&v, &moved), InvalidReason::BadSignature);
}

#[test]
fn transform_chains_are_bounded_and_whitespace_inside_steps_is_harmless() {
    let v = verifier(ManualClock::at(T0));
    let inclusive = r#"<ds:Transform Algorithm="http://www.w3.org/TR/2001/REC-xml-c14n-20010315"/>"#;
    for good in [signed(&spec()), signed11(&spec())] {
        // Work an unauthenticated sender could make xmlsec do: refused before it runs.
        let chain = good.replace(EXC, &inclusive.repeat(400));
        assert_eq!(err(&v, &chain), InvalidReason::SignatureMisplaced);
        let twice = good.replace(EXC, &format!("{EXC}{EXC}"));
        assert_eq!(err(&v, &twice), InvalidReason::SignatureMisplaced);
        let not_enveloped_first = good.replace(
            r#"<ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/>"#,
            "",
        );
        assert_eq!(err(&v, &not_enveloped_first), InvalidReason::SignatureMisplaced);
    }
    let spaced = spec().to_saml11_xml().replace(
        EXC,
        r#"<ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"> </ds:Transform>"#,
    );
    assert!(v.verify(&signer("saml-idp").sign_saml11(&spaced).unwrap(), Use::Api).is_ok());
}

#[test]
fn namespace_and_attribute_floods_are_refused_before_parsing() {
    let v = verifier(ManualClock::at(T0));
    // The review's reproducer: 2,900 declarations and 1,555 children cost roxmltree 14.6 s.
    let decls: String = (0..2900).map(|i| format!(" xmlns:p{i}=\"u\"")).collect();
    let bomb = format!("<r{decls}>{}</r>", "<b xmlns=\"u\"/>".repeat(1555));
    let started = std::time::Instant::now();
    assert_eq!(
        v.verify(&bomb[..bomb.len().min(60_000)], Use::Api).map(|_| ()).unwrap_err(),
        InvalidReason::TooLarge
    );
    let attrs: String = (0..3000).map(|i| format!(" a{i}=\"\"")).collect();
    assert_eq!(
        err(&v, &signed11(&spec()).replace("<saml:Conditions ", &format!("<saml:Conditions{attrs} "))),
        InvalidReason::TooLarge
    );
    assert!(started.elapsed() < Duration::from_secs(1), "refused without parsing");
}

#[test]
fn every_audience_restriction_must_name_us_and_unknown_conditions_refuse() {
    let v = verifier(ManualClock::at(T0));
    let other = "<saml:AudienceRestriction><saml:Audience>https://other-sp.test/</saml:Audience></saml:AudienceRestriction></saml:Conditions>";
    let two = spec().to_xml().replace("</saml:Conditions>", other);
    assert_eq!(err(&v, &signer("saml-idp").sign(&two).unwrap()), InvalidReason::WrongAudience);
    let other11 = "<saml:AudienceRestrictionCondition><saml:Audience>https://other-sp.test/</saml:Audience></saml:AudienceRestrictionCondition></saml:Conditions>";
    let two11 = spec().to_saml11_xml().replace("</saml:Conditions>", other11);
    assert_eq!(err(&v, &signer("saml-idp").sign_saml11(&two11).unwrap()), InvalidReason::WrongAudience);
    let unknown = spec().to_xml().replace("</saml:Conditions>", "<saml:Condition/></saml:Conditions>");
    assert_eq!(err(&v, &signer("saml-idp").sign(&unknown).unwrap()), InvalidReason::ClaimsInvalid);
    let unknown11 = spec().to_saml11_xml().replace("</saml:Conditions>", "<saml:Other/></saml:Conditions>");
    assert_eq!(err(&v, &signer("saml-idp").sign_saml11(&unknown11).unwrap()), InvalidReason::ClaimsInvalid);
}

#[test]
fn one_time_assertions_are_not_reused_as_bearer_credentials() {
    let v = verifier(ManualClock::at(T0));
    let once = signer("saml-idp")
        .sign(&spec().to_xml().replace("</saml:Conditions>", "<saml:OneTimeUse/></saml:Conditions>"))
        .unwrap();
    assert!(v.verify(&once, Use::Api).is_ok());
    assert_eq!(err(&v, &once), InvalidReason::Replayed);
    let once11 = signer("saml-idp")
        .sign_saml11(
            &spec()
                .to_saml11_xml()
                .replace("</saml:Conditions>", "<saml:DoNotCacheCondition/></saml:Conditions>"),
        )
        .unwrap();
    assert!(v.verify(&once11, Use::Api).is_ok());
    assert_eq!(err(&v, &once11), InvalidReason::Replayed);
}

/// RFC 7522: the assertion of a SAML bearer grant, on a token-endpoint route (`auth = "none"`, so
/// that other grants reach the token endpoint; SAML grants are held to MFA all the same).
#[tokio::test]
async fn saml_bearer_grants_are_held_to_mfa_before_the_token_endpoint() {
    use base64::Engine;
    use mfagate::verify::grant::{SAML2_BEARER, SAML11_BEARER};
    const AS: &str = "urn:federation:MicrosoftOnline";
    let mut g = gateway().start().await;
    let b64url = |xml: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(xml);
    let grant_spec = || {
        let mut s = spec();
        s.audience = AS.into();
        s
    };
    let post = |form: String, extra: &[(&str, &str)]| {
        let mut req = http::Request::post(format!("http://{}/oauth2/token", g.addr))
            .header("content-type", "application/x-www-form-urlencoded");
        for (name, value) in extra {
            req = req.header(*name, *value);
        }
        g.send(req.body(http_body_util::Full::new(bytes::Bytes::from(form))).unwrap())
    };
    let form = |grant: &str, assertion: &str| {
        form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", grant)
            .append_pair("assertion", assertion)
            .append_pair("client_id", "00000000-0000-4000-8000-0000000000aa")
            .append_pair("scope", "https://api.partnercenter.microsoft.com/.default")
            .finish()
    };
    let refused = |r: &Reply, error: &str, description: &str| {
        assert_eq!(r.status, http::StatusCode::BAD_REQUEST, "{}", r.body);
        assert_eq!(
            (r.json()["error"].as_str(), r.json()["error_description"].as_str()),
            (Some(error), Some(description))
        );
    };
    // MFA: forwarded with its body intact, and the user named to the token endpoint.
    let first = signed(&grant_spec());
    let body = form(SAML2_BEARER, &b64url(&first));
    let r = post(body.clone(), &[]).await;
    assert_forwarded_as_mfa_user(&r);
    assert_eq!(r.json()["body_bytes"], body.len());
    assert_forwarded_as_mfa_user(&post(form(SAML11_BEARER, &b64url(&signed11(&grant_spec()))), &[]).await);
    // A grant is used once; and a grant is not an API credential (nor the reverse): audiences differ.
    refused(&post(body, &[]).await, "invalid_grant", "assertion_replayed");
    let r = g.send(saml_request(g.addr, &signed(&grant_spec()))).await;
    assert_eq!((r.status.as_u16(), r.json()["error"].as_str()), (401, Some("wrong_audience")));
    refused(
        &post(form(SAML2_BEARER, &b64url(&signed(&spec()))), &[]).await,
        "invalid_grant",
        "wrong_audience",
    );
    // No MFA, a forged assertion: the token endpoint's own 400 invalid_grant, though the route is public.
    let mut no_mfa = grant_spec();
    no_mfa.class_ref = Some(PASSWORD_METHOD.into());
    let refused_doc = b64url(&signed11(&no_mfa));
    refused(&post(form(SAML11_BEARER, &refused_doc), &[]).await, "invalid_grant", "saml_mfa_missing");
    let forged = signed(&grant_spec())
        .replace("adele@contoso.test</saml:AttributeValue>", "admin@contoso.test</saml:AttributeValue>");
    refused(&post(form(SAML2_BEARER, &b64url(&forged)), &[]).await, "invalid_grant", "bad_signature");
    // Read the way a token endpoint might, it is still a SAML grant: upper case, token exchange.
    let mut no_mfa_again = grant_spec();
    no_mfa_again.class_ref = Some(PASSWORD_METHOD.into());
    let upper = form(&SAML11_BEARER.to_uppercase(), &b64url(&signed11(&no_mfa_again)));
    refused(&post(upper, &[]).await, "invalid_grant", "saml_mfa_missing");
    let exchange = form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange")
        .append_pair("subject_token_type", "urn:ietf:params:oauth:token-type:saml2")
        .append_pair(
            "subject_token",
            &b64url(&{
                let mut s = spec();
                s.audience = AS.into();
                s.class_ref = Some("urn:oasis:names:tc:SAML:2.0:ac:classes:Password".into());
                signed(&s)
            }),
        )
        .finish();
    refused(&post(exchange, &[]).await, "invalid_grant", "saml_mfa_missing");
    // Anything the token endpoint could read differently is refused: invalid_request.
    let bad = "invalid_request";
    refused(&post(format!("grant_type={SAML2_BEARER}"), &[]).await, bad, "invalid_token_request");
    refused(&post(form(SAML2_BEARER, "x").replace('&', ";"), &[]).await, bad, "invalid_token_request");
    refused(&post("client_id=x".into(), &[("content-encoding", "gzip")]).await, bad, "invalid_token_request");
    let req = http::Request::post(format!(
        "http://{}/oauth2/token?grant_type={SAML2_BEARER}&assertion={refused_doc}",
        g.addr
    ))
    .header("content-type", "application/x-www-form-urlencoded")
    .body(http_body_util::Full::new(bytes::Bytes::from("client_id=x")))
    .unwrap();
    refused(&g.send(req).await, bad, "invalid_token_request");
    let two_types = http::Request::post(format!("http://{}/oauth2/token", g.addr))
        .header("content-type", "text/plain")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(http_body_util::Full::new(bytes::Bytes::from(form(SAML11_BEARER, &refused_doc))))
        .unwrap();
    refused(&g.send(two_types).await, bad, "invalid_token_request");
    let plain = http::Request::post(format!("http://{}/oauth2/token", g.addr))
        .header("content-type", "text/plain")
        .body(http_body_util::Full::new(bytes::Bytes::from(form(SAML11_BEARER, &refused_doc))))
        .unwrap();
    refused(&g.send(plain).await, bad, "invalid_token_request");
    // Methods: `post` in lower case (refused before any route: method_invalid), a body on another
    // method, a method override.
    let lower = http::Request::builder()
        .method(http::Method::from_bytes(b"post").unwrap())
        .uri(format!("http://{}/oauth2/token", g.addr))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(http_body_util::Full::new(bytes::Bytes::from(form(SAML11_BEARER, &refused_doc))))
        .unwrap();
    let r = g.send(lower).await;
    assert_eq!((r.status.as_u16(), r.json()["error"].as_str()), (400, Some("method_invalid")));
    for method in ["PUT", "GET"] {
        let req = http::Request::builder()
            .method(http::Method::from_bytes(method.as_bytes()).unwrap())
            .uri(format!("http://{}/oauth2/token", g.addr))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(http_body_util::Full::new(bytes::Bytes::from(form(SAML11_BEARER, &refused_doc))))
            .unwrap();
        refused(&g.send(req).await, bad, "invalid_token_request");
    }
    refused(
        &post("client_id=x".into(), &[("x-http-method-override", "PUT")]).await,
        bad,
        "invalid_token_request",
    );
    let charset = http::Request::post(format!("http://{}/oauth2/token", g.addr))
        .header("content-type", "application/x-www-form-urlencoded; charset=utf-16")
        .body(http_body_util::Full::new(bytes::Bytes::from("client_id=x")))
        .unwrap();
    refused(&g.send(charset).await, bad, "invalid_token_request");
    let authorize = http::Request::get(format!("http://{}/oauth2/authorize?client_id=x", g.addr))
        .body(Default::default())
        .unwrap();
    assert_eq!(g.send(authorize).await.status, http::StatusCode::OK, "a GET without a body passes");
    // Too large: 413, never forwarded.
    let r = post(format!("client_id={}", "x".repeat(200_000)), &[]).await;
    assert_eq!(r.status, http::StatusCode::PAYLOAD_TOO_LARGE);
    // Another grant type is not a SAML grant: the public route lets it through.
    let r = post("grant_type=client_credentials&client_id=x".into(), &[]).await;
    assert_eq!(r.status, http::StatusCode::OK);
    assert_eq!(g.echo.hits(), 4);
    let log = g.stop().await;
    let token: Vec<_> = log.iter().filter(|r| r["route"] == "token").collect();
    // Every token request is logged; the lower-case `post` before any route (method_invalid).
    assert_eq!(token.len(), 21, "every token request logged");
    assert_eq!((token[0]["principal"].as_str(), token[0]["status"].as_u64()), (Some("user"), Some(200)));
    let text = std::fs::read_to_string(g.log_path()).unwrap();
    assert!(!text.contains(&refused_doc[..40]), "no assertion in the log");
}

/// A token request whose body never finishes is answered 408 within `body_read_timeout_secs`, and logged.
#[tokio::test]
async fn a_stalled_token_request_body_times_out() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut g = gateway()
        .replace("shutdown_grace_secs = 5", "shutdown_grace_secs = 5\nbody_read_timeout_secs = 1")
        .start()
        .await;
    let mut s = tokio::net::TcpStream::connect(g.addr).await.unwrap();
    s.write_all(b"POST /oauth2/token HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: 100\r\n\r\ngrant_type=").await.unwrap();
    let mut head = [0u8; 12];
    s.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 408");
    let log = g.stop().await;
    assert_eq!((log[0]["reason"].as_str(), log[0]["status"].as_u64()), (Some("body_timeout"), Some(408)));
}

/// Two copies of a one-time assertion verified at the same moment: one wins.
#[test]
fn a_one_time_assertion_is_accepted_once_under_concurrency() {
    let v = std::sync::Arc::new(verifier(ManualClock::at(T0)));
    for _ in 0..50 {
        let once = std::sync::Arc::new(
            signer("saml-idp")
                .sign(&spec().to_xml().replace("</saml:Conditions>", "<saml:OneTimeUse/></saml:Conditions>"))
                .unwrap(),
        );
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
        let accepted: usize = (0..2)
            .map(|_| {
                let (v, once, barrier) = (v.clone(), once.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    v.verify(&once, Use::Api).is_ok()
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| usize::from(t.join().unwrap()))
            .sum();
        assert_eq!(accepted, 1);
    }
}
