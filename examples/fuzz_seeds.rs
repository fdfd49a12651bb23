//! Writes the signed seeds of the fuzz corpora (`fuzz/corpus/token`, `saml_verify`,
//! `saml_structure`): tokens minted by the dev IdP and SAML assertions signed by the dev SAML
//! signer, valid ones (`ok-*`, which the targets require to verify) and signed or spliced ones
//! that must be refused (`bad-*`). Run once and commit the files; rerunning replaces them.
//!
//! ```sh
//! cargo run -p mfagate --example fuzz_seeds
//! ```
//! DEVELOPMENT ONLY: the keys are public.

use base64::Engine;
use mfagate::clock::ManualClock;
use mfagate::dev::idp::{DevIdp, TokenRequest};
use mfagate::dev::saml_idp::{AssertionSpec, DevSamlSigner, response_xml, signature_template};
use mfagate::fuzzing::{SAML_IDP, SAML_SP, T0, TOKEN_ISSUER_V1, TOKEN_ISSUER_V2};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn write(target: &str, name: &str, text: &str) -> Result<()> {
    let dir = root().join("fuzz/corpus").join(target);
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join(name), text)?;
    Ok(())
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// `token` with its header replaced by `header` (the signature no longer matches).
fn with_header(token: &str, header: &Value) -> String {
    let rest = token.split_once('.').map_or("", |(_, r)| r);
    format!("{}.{rest}", b64(header.to_string().as_bytes()))
}

fn tokens(idp: &DevIdp) -> Result<()> {
    let v1 = |tid: &str| TOKEN_ISSUER_V1.replace("{tenantid}", tid);
    let claims = |req: &TokenRequest| {
        let mut c = idp.claims(req);
        c["iss"] = json!(
            if req.ver == "2.0" { TOKEN_ISSUER_V2 } else { TOKEN_ISSUER_V1 }.replace("{tenantid}", &req.tid)
        );
        c
    };
    let user = claims(&TokenRequest::default());
    let app = claims(&TokenRequest { app_only: true, ..TokenRequest::default() });
    let no_mfa = claims(&TokenRequest { amr: Some(vec!["pwd".into()]), ..TokenRequest::default() });
    let v2 = claims(&TokenRequest { ver: "2.0".into(), ..TokenRequest::default() });
    let good = idp.sign_with_key("dev-rsa-a", &user)?;
    let ok = [
        ("ok-user-rsa-a", good.clone()),
        ("ok-user-rsa-b", idp.sign_with_key("dev-rsa-b", &user)?),
        ("ok-user-ec", idp.sign_with_key("dev-ec", &user)?),
        ("ok-app-only", idp.sign_with_key("dev-rsa-a", &app)?),
        ("ok-no-mfa", idp.sign_with_key("dev-ec", &no_mfa)?),
        ("ok-v2", idp.sign_with_key("dev-rsa-b", &v2)?),
    ];
    let edit = |f: &dyn Fn(&mut Value)| {
        let mut c = user.clone();
        f(&mut c);
        c
    };
    let other_tenant = "99999999-2222-4333-8444-555555555555";
    let signed_bad = [
        ("bad-v2-es256", idp.sign_with_key("dev-ec", &v2)?),
        ("bad-audience", idp.sign_with_key("dev-rsa-a", &edit(&|c| c["aud"] = json!("api://other")))?),
        ("bad-no-audience", idp.sign_with_key("dev-rsa-a", &edit(&|c| c["aud"] = Value::Null))?),
        (
            "bad-tenant",
            idp.sign_with_key(
                "dev-rsa-a",
                &edit(&|c| {
                    c["tid"] = json!(other_tenant);
                    c["iss"] = json!(v1(other_tenant));
                }),
            )?,
        ),
        ("bad-tid-mismatch", idp.sign_with_key("dev-rsa-a", &edit(&|c| c["tid"] = json!(other_tenant)))?),
        ("bad-issuer", idp.sign_with_key("dev-rsa-a", &edit(&|c| c["iss"] = json!("https://evil.test/")))?),
    ];
    let header = |v: Value| with_header(&good, &v);
    let (signing_input, signature) = good.rsplit_once('.').ok_or("token")?;
    let (_, payload) = signing_input.split_once('.').ok_or("token")?;
    let ec_signature = ok[2].1.rsplit_once('.').map_or("", |(_, s)| s);
    let mut flipped = signature.to_owned();
    flipped.replace_range(..1, if signature.starts_with('A') { "B" } else { "A" });
    let spliced = [
        ("bad-alg-none", format!("{}.{payload}.", b64(br#"{"alg":"none","typ":"JWT"}"#))),
        ("bad-alg-none-case", format!("{}.{payload}.", b64(br#"{"alg":"nOnE","kid":"dev-rsa-a"}"#))),
        ("bad-hs256", header(json!({"alg": "HS256", "kid": "dev-rsa-a"}))),
        ("bad-kid-traversal", header(json!({"alg": "RS256", "kid": "../../../../dev/null"}))),
        ("bad-kid-injection", header(json!({"alg": "RS256", "kid": "x' OR '1'='1"}))),
        ("bad-no-kid", header(json!({"alg": "RS256"}))),
        ("bad-jku", header(json!({"alg": "RS256", "kid": "evil", "jku": "https://evil.test/keys"}))),
        ("bad-jwk", header(json!({"alg": "RS256", "jwk": {"kty": "oct", "k": "AAAA"}}))),
        ("bad-crit", header(json!({"alg": "RS256", "kid": "dev-rsa-a", "crit": ["b64"], "b64": false}))),
        ("bad-cty-jwt", header(json!({"alg": "RS256", "kid": "dev-rsa-a", "cty": "JWT"}))),
        (
            "bad-dup-alg",
            format!("{}.{payload}.{signature}", b64(br#"{"alg":"RS256","alg":"none","kid":"dev-rsa-a"}"#)),
        ),
        ("bad-truncated-sig", format!("{signing_input}.{}", &signature[..signature.len() / 2])),
        ("bad-extended-sig", format!("{signing_input}.{signature}AAAA")),
        ("bad-flipped-sig", format!("{signing_input}.{flipped}")),
        ("bad-ec-sig-on-rsa", format!("{signing_input}.{ec_signature}")),
        (
            "bad-ec-zero-sig",
            format!("{}.{payload}.{}", b64(br#"{"alg":"ES256","kid":"dev-ec"}"#), b64(&[0; 64])),
        ),
        ("bad-four-parts", format!("{good}.x")),
        ("bad-not-base64", format!("{signing_input}!.{signature}")),
        ("bad-not-utf8", format!("{}.{payload}.{signature}", b64(b"{\"alg\":\"RS256\xff\"}"))),
    ];
    for (name, token) in ok.iter().chain(&signed_bad).chain(&spliced) {
        write("token", name, token)?;
        // The same token decoded (`header\npayload\nsignature bytes`), which the target
        // encodes again: mutations then reach the JSON instead of breaking the base64.
        let decode = |part: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).ok();
        let parts: Vec<Vec<u8>> = token.split('.').map_while(decode).collect();
        if let [header, payload, signature] = parts.as_slice() {
            let name = format!("json-{name}");
            let mut decoded = [header.as_slice(), payload, signature].join(&b'\n');
            if signature.is_empty() {
                decoded.push(b'\n');
            }
            let dir = root().join("fuzz/corpus/token");
            std::fs::write(dir.join(name), decoded)?;
        }
    }
    Ok(())
}

fn signer(name: &str) -> Result<DevSamlSigner> {
    let read = |ext: &str| std::fs::read(root().join(format!("certs/{name}.{ext}")));
    Ok(DevSamlSigner::from_pem(&read("key")?, &read("pem")?)?)
}

fn saml() -> Result<()> {
    let idp = signer("saml-idp")?;
    let spec = || AssertionSpec::new(SAML_IDP, SAML_SP, T0);
    let unsigned = |s: &AssertionSpec| s.to_xml().replace(&signature_template(&s.id), "");
    let assertion = idp.sign(&spec().to_xml())?;
    let amr = spec().with_amr_attribute(&["pwd", "mfa"]);
    let mut bound = spec();
    bound.recipient = Some("https://gateway.contoso.test/saml/acs".into());
    bound.in_response_to = Some("_req1".into());
    let mut no_mfa = spec();
    no_mfa.class_ref = Some("urn:oasis:names:tc:SAML:2.0:ac:classes:Password".into());
    let plain = spec();
    let ok = [
        ("ok-assertion.xml", assertion.clone()),
        ("ok-assertion-amr.xml", idp.sign(&amr.to_xml())?),
        ("ok-assertion-bound.xml", idp.sign(&bound.to_xml())?),
        ("ok-assertion-no-mfa.xml", idp.sign(&no_mfa.to_xml())?),
        ("ok-response.xml", response_xml("_r1", &idp.sign(&spec().to_xml())?, false)),
        ("ok-response-signed.xml", idp.sign(&response_xml("_r2", &unsigned(&plain), true))?),
        ("ok-saml11.xml", idp.sign_saml11(&spec().to_saml11_xml())?),
        ("ok-assertion.b64", base64::engine::general_purpose::STANDARD.encode(idp.sign(&spec().to_xml())?)),
    ];
    let evil = {
        let mut s = spec();
        s.name_id = "ceo@contoso.test".into();
        s
    };
    let good_id = assertion.split("ID=\"").nth(1).and_then(|r| r.split('"').next()).ok_or("ID")?;
    let mut evil_same_id = evil.clone();
    evil_same_id.id = good_id.to_owned();
    let mut wrong_audience = spec();
    wrong_audience.audience = "https://other.test/saml".into();
    let mut unknown_issuer = spec();
    unknown_issuer.issuer = "https://evil.test/idp".into();
    let bad = [
        ("bad-untrusted.xml", signer("saml-untrusted")?.sign(&spec().to_xml())?),
        ("bad-audience.xml", idp.sign(&wrong_audience.to_xml())?),
        ("bad-issuer.xml", idp.sign(&unknown_issuer.to_xml())?),
        ("bad-unsigned.xml", unsigned(&evil)),
        ("bad-empty-signature.xml", evil.to_xml()),
        ("bad-xsw-beside.xml", response_xml("_r", &format!("{}{assertion}", unsigned(&evil)), false)),
        (
            "bad-xsw-extensions.xml",
            response_xml("_r", &format!("<samlp:Extensions>{assertion}</samlp:Extensions>"), false),
        ),
        (
            "bad-xsw-advice.xml",
            response_xml(
                "_r",
                &unsigned(&evil).replace(
                    "<saml:Subject>",
                    &format!("<saml:Advice>{assertion}</saml:Advice><saml:Subject>"),
                ),
                false,
            ),
        ),
        (
            "bad-duplicate-id.xml",
            response_xml("_r", &format!("{}{assertion}", unsigned(&evil_same_id)), false),
        ),
        (
            "bad-edited-name.xml",
            assertion.replace("adele@contoso.test</saml:NameID>", "ceo@contoso.test</saml:NameID>"),
        ),
        (
            "bad-comment-in-name.xml",
            assertion
                .replace("adele@contoso.test</saml:NameID>", "ceo@contoso.test<!---->.evil</saml:NameID>"),
        ),
        ("bad-saml11-untrusted.xml", signer("saml-untrusted")?.sign_saml11(&spec().to_saml11_xml())?),
        ("bad-doctype.xml", format!("<!DOCTYPE a [<!ENTITY e \"x\">]>{assertion}")),
    ];
    for (name, xml) in ok.iter().chain(&bad) {
        write("saml_verify", name, xml)?;
        write("saml_structure", name, xml)?;
    }
    Ok(())
}

fn main() -> Result<()> {
    saml()?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let keys = mfagate::dev::idp::load_dev_keys(&root().join("certs"))?;
        let idp = DevIdp::start(listener, keys, ManualClock::at(T0))?;
        tokens(&idp)
    })?;
    Ok(())
}
