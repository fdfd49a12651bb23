//! xmlsec's own error lines, through the real binary: a SAML assertion with a broken signature
//! gives JSON log events with target `xmlsec` and xmlsec's fields, no raw xmlsec line on
//! standard error, and never the assertion.

use crate::binary::{fixture, start};
use mfagate::dev::saml_idp::{AssertionSpec, DevSamlSigner};
use std::process::Command;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_saml_signature_is_logged_as_structured_xmlsec_events() {
    let s = fixture(|t| t).await;
    let running = start(&s.config, &[]);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let spec = AssertionSpec::new(
        "https://idp.contoso.test/adfs/services/trust",
        "https://gateway.contoso.test/saml",
        now,
    );
    let read = |ext: &str| std::fs::read(crate::support::certs().join(format!("saml-idp.{ext}"))).unwrap();
    let signer = DevSamlSigner::from_pem(&read("key"), &read("pem")).unwrap();
    let good = signer.sign(&spec.to_xml()).unwrap();
    let tampered = good
        .replace("adele@contoso.test</saml:AttributeValue>", "mallory@contoso.test</saml:AttributeValue>");
    assert_ne!(good, tampered);
    let encoded = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(&tampered)
    };
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let req = http::Request::get(format!("http://{}/v1/x", running.addr))
        .header("authorization", format!("SAML {encoded}"))
        .body(Default::default())
        .unwrap();
    let rsp = client.request(req).await.unwrap();
    assert_eq!(rsp.status(), 401);

    let mut running = running;
    let pid = running.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    assert!(running.child.wait().unwrap().success());
    let lines: Vec<String> = running.early.into_iter().chain(running.stderr.iter()).collect();

    let events: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect();
    let xmlsec: Vec<&serde_json::Value> = events.iter().filter(|e| e["target"] == "xmlsec").collect();
    assert!(!xmlsec.is_empty(), "{lines:#?}");
    let digest = xmlsec
        .iter()
        .find(|e| e["fields"]["reason"] == "invalid data")
        .unwrap_or_else(|| panic!("no digest mismatch event: {xmlsec:#?}"));
    let f = &digest["fields"];
    assert!(f["func"].as_str().unwrap().starts_with("xmlSec"), "{f}");
    assert_eq!(f["object"], "sha256");
    assert_eq!(f["code"], 12);
    assert_eq!(f["message"], "data and digest do not match");
    assert_eq!(digest["level"], "WARN");
    for line in &lines {
        assert!(!line.starts_with("func="), "a raw xmlsec line: {line}");
        for secret in ["mallory@contoso.test", "adele@contoso.test", "saml:Assertion", &encoded[..40]] {
            assert!(!line.contains(secret), "{secret} in the log: {line}");
        }
    }
}
