//! SAML assertion verification per assertion, first sight (shape checks, xmlsec RSA-SHA256 with
//! exclusive C14N, extraction; SAML 1.1 adds our own canonical check) and cached:
//! `cargo bench -p mfagate --bench saml_verify`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use mfagate::clock::ManualClock;
use mfagate::config::SamlIdp;
use mfagate::dev::saml_idp::{AssertionSpec, DevSamlSigner};
use mfagate::verify::saml::{SamlVerifier, Use};
use mfagate_policy::SamlMfaSettings;
use std::hint::black_box;
use std::path::Path;

const IDP: &str = "https://idp.contoso.test/adfs/services/trust";
const SP: &str = "https://gateway.contoso.test/saml";
const T0: u64 = 1_767_225_600;

fn bench(c: &mut Criterion) {
    let certs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../certs");
    let signer = DevSamlSigner::from_pem(
        &std::fs::read(certs.join("saml-idp.key")).unwrap(),
        &std::fs::read(certs.join("saml-idp.pem")).unwrap(),
    )
    .unwrap();
    let clock = ManualClock::at(T0);
    let verifier = || {
        let idp = SamlIdp {
            name: "adfs".into(),
            entity_id: IDP.into(),
            certificates: vec![signer.cert_der().to_vec()],
            mfa: SamlMfaSettings::default(),
            leeway_secs: 60,
            sso_url: None,
            accept_sso_responses_as_api: false,
            metadata_url: None,
        };
        SamlVerifier::new(vec![idp], SP.into(), Vec::new(), 64 * 1024, clock.clone())
    };
    let spec = AssertionSpec::new(IDP, SP, T0);
    let doc = signer.sign(&spec.to_xml()).unwrap();
    let doc11 = signer.sign_saml11(&spec.to_saml11_xml()).unwrap();
    println!("assertion: SAML 2.0 {} bytes, SAML 1.1 {} bytes", doc.len(), doc11.len());
    // One long-lived verifier and a newly signed assertion each time (signing is not timed), so
    // nothing is cached and the caches are warm, as in a running gateway.
    let fresh = verifier();
    c.bench_function("saml_verify/first_sight", |b| {
        b.iter_batched(
            || signer.sign(&AssertionSpec::new(IDP, SP, T0).to_xml()).unwrap(),
            |doc| fresh.verify(black_box(&doc), Use::Api).unwrap(),
            BatchSize::SmallInput,
        )
    });
    c.bench_function("saml_verify/first_sight_saml11", |b| {
        b.iter_batched(
            || signer.sign_saml11(&AssertionSpec::new(IDP, SP, T0).to_saml11_xml()).unwrap(),
            |doc| fresh.verify(black_box(&doc), Use::Api).unwrap(),
            BatchSize::SmallInput,
        )
    });
    let cached = verifier();
    cached.verify(&doc, Use::Api).unwrap();
    c.bench_function("saml_verify/cached", |b| b.iter(|| cached.verify(black_box(&doc), Use::Api).unwrap()));
}

criterion_group!(benches, bench);
criterion_main!(benches);
