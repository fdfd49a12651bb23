//! SAML intake through xmlsec: `SamlVerifier::verify` and `verify_base64` never panic, and never
//! accept what the IdP (certs/saml-idp.pem) did not sign: whatever verifies must carry exactly
//! the claims of one of the signed `ok-*` seeds (signed documents may legitimately differ outside
//! what the signature covers, so the claims are compared, not the bytes).
//!
//! Each input gets a fresh verifier, so the replay and document caches cannot hide an acceptance
//! (a second document with a seed's assertion ID would be `Replayed`, not verified).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mfagate::clock::ManualClock;
use mfagate::dev::saml_idp::DevSamlSigner;
use mfagate::fuzzing::{SAML_IDP, SAML_SP, T0};
use mfagate::config::SamlIdp;
use mfagate::verify::saml::{SamlVerifier, Use};
use std::collections::HashSet;
use std::sync::OnceLock;

struct Fixture {
    certificate: Vec<u8>,
    /// The claims (`Debug` of the verified assertion) of every signed seed.
    signed: HashSet<String>,
}

fn verifier(certificate: &[u8]) -> SamlVerifier {
    let idp = SamlIdp {
        name: "adfs".into(),
        entity_id: SAML_IDP.into(),
        certificates: vec![certificate.to_vec()],
        mfa: mfagate_policy::SamlMfaSettings::default(),
        leeway_secs: 60,
        sso_url: None,
        // Some seeds answer a sign-in (InResponseTo): taken here so that the deep paths stay
        // reachable; the refusal of SSO Responses at the API is tested in tests/saml_gate.rs.
        accept_sso_responses_as_api: true,
        metadata_url: None,
    };
    SamlVerifier::new(vec![idp], SAML_SP.into(), Vec::new(), 64 * 1024, ManualClock::at(T0))
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let certs = mfagate_fuzz::repo().join("certs");
        let read = |name: &str| std::fs::read(certs.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let signer = DevSamlSigner::from_pem(&read("saml-idp.key"), &read("saml-idp.pem")).expect("signer");
        let certificate = signer.cert_der().to_vec();
        let signed = mfagate_fuzz::seeds("saml_verify", "ok-")
            .into_iter()
            .map(|(name, bytes)| {
                let text = String::from_utf8(bytes).expect("UTF-8 seed");
                let v = verifier(&certificate);
                let verified = if name.ends_with(".b64") {
                    v.verify_base64(&text, Use::Api)
                } else {
                    v.verify(&text, Use::Api)
                };
                format!("{:?}", verified.unwrap_or_else(|e| panic!("seed {name} does not verify: {e:?}")))
            })
            .collect();
        Fixture { certificate, signed }
    })
}

fuzz_target!(|data: &[u8]| {
    let fixture = fixture();
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let v = verifier(&fixture.certificate);
    for verified in [v.verify(text, Use::Api), v.verify_base64(text, Use::Api)].into_iter().flatten() {
        let claims = format!("{verified:?}");
        assert!(fixture.signed.contains(&claims), "accepted claims no seed carries: {claims}\n{text:?}");
    }
});
