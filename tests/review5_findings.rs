//! Review 5 findings: `mfagate inspect`, the report, and the command line. Each test failed
//! before its fix.

use crate::inspect::*;
use crate::saml::signer;
use base64::Engine;
use mfagate::dev::saml_idp::{response_xml, signature_template, with_sha1};
use mfagate_policy::MULTIPLE_AUTHN;
use serde_json::{Value, json};

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A token with this header and `payload`, signed with `signature` (not by any key).
fn forged(header: &str, payload: &Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        b64url(header.as_bytes()),
        b64url(&serde_json::to_vec(payload).unwrap()),
        b64url(signature)
    )
}

/// `alg: none` and HS256 are refused by every issuer the gateway can be configured with (the
/// configuration refuses HS*, jsonwebtoken knows no `none`), whatever the keys: `--no-verify`
/// must not turn such a token into "MFA proven" (exit 0). So must a token without `aud` (the
/// verifier requires it) or without `iss` (no issuer can be chosen).
#[test]
fn no_verify_never_proves_mfa_for_a_token_no_issuer_accepts() {
    let f = Fixture::new();
    let claims = f.idp.claims(&user(&["pwd", "mfa"]));
    let mut no_aud = claims.clone();
    no_aud.as_object_mut().unwrap().remove("aud");
    let mut no_iss = claims.clone();
    no_iss.as_object_mut().unwrap().remove("iss");
    let cases = [
        (forged(r#"{"alg":"none","typ":"JWT"}"#, &claims, b""), "alg_not_allowed"),
        (
            forged(r#"{"alg":"HS256","typ":"JWT"}"#, &claims, b"0123456789abcdef0123456789abcdef"),
            "alg_not_allowed",
        ),
        (forged(r#"{"alg":"RS1","typ":"JWT"}"#, &claims, b"sig"), "alg_not_allowed"),
        (f.idp.sign(&no_aud).unwrap(), "wrong_audience"),
        (f.idp.sign(&no_iss).unwrap(), "unknown_issuer"),
    ];
    // The token as it is verified, for contrast: --no-verify lets its MFA verdict stand.
    assert_eq!(inspect(&["--no-verify"], &f.idp.sign(&claims).unwrap()).code, 0);
    for (token, reason) in &cases {
        for args in [&["--no-verify", "--json"][..], &["--json"]] {
            let run = inspect(args, token);
            run.never_shows(&secrets(token));
            assert_eq!(run.code, 2, "{reason} {args:?}: {}", run.out);
            let j = run.json();
            assert_eq!(j["verdict"]["result"], "invalid", "{reason}: {j}");
            assert_eq!(j["invalid"]["reason"], *reason, "{j}");
        }
    }
}

/// A SAML document whose shape the gateway refuses before it looks at any key (no signature, a
/// SHA-1 signature, a signature that does not cover the assertion) is not "MFA proven" with
/// `--no-verify`.
#[test]
fn no_verify_never_proves_mfa_for_a_saml_shape_the_gateway_refuses() {
    let s = spec(MULTIPLE_AUTHN);
    let unsigned = s.to_xml().replace(&signature_template(&s.id), "");
    let sha1 = signer("saml-idp").sign(&with_sha1(&response_xml("_r1", &unsigned, true))).unwrap();
    // Two assertions in one Response, as a wrapping attack makes it: only one is what was signed.
    let signed = signer("saml-idp").sign(&s.to_xml()).unwrap();
    let wrapped = response_xml("_r1", &format!("{signed}{signed}"), false);
    let cases = [(unsigned, "bad_signature"), (sha1, "weak_algorithm"), (wrapped, "signature_misplaced")];
    let b64 = |xml: &str| base64::engine::general_purpose::STANDARD.encode(xml);
    // A signed document for contrast: --no-verify lets its MFA verdict stand.
    assert_eq!(inspect(&["--no-verify"], &b64(&signed)).code, 0);
    for (xml, reason) in &cases {
        for args in [&["--no-verify", "--json"][..], &["--json"]] {
            let run = inspect(args, &b64(xml));
            assert_eq!(run.code, 2, "{reason} {args:?}: {}", run.out);
            let j = run.json();
            assert_eq!(j["invalid"]["reason"], *reason, "{j}");
        }
    }
}
