//! `mfagate inspect` through the real binary: each verdict and exit code for JWTs and SAML, the
//! key sources (offline files, URLs, a configuration), and that nothing secret is printed.

use crate::saml::{IDP, SP, signer};
use crate::support::*;
use base64::Engine;
use mfagate::clock::SystemClock;
use mfagate::dev::echo::Echo;
use mfagate::dev::idp::{DEV_TENANT, DevIdp, TokenRequest};
use mfagate::dev::saml_idp::{AssertionSpec, response_xml};
use mfagate_policy::{ATTR_AUTHENTICATION_METHOD, MULTIPLE_AUTHN, WIA_OR_MULTIPLE_AUTHN};
use serde_json::{Value, json};
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;

pub(crate) const PASSWORD: &str = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport";

/// What one run printed, and its exit code.
pub(crate) struct Run {
    pub(crate) code: i32,
    pub(crate) out: String,
    pub(crate) err: String,
}

impl Run {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.out).unwrap_or_else(|e| panic!("{e}: {}\n{}", self.out, self.err))
    }

    /// Neither output holds any of `secrets` (a token, its signature, an assertion).
    pub(crate) fn never_shows(&self, secrets: &[&str]) -> &Run {
        for s in secrets.iter().filter(|s| s.len() > 8) {
            assert!(
                !self.out.contains(s) && !self.err.contains(s),
                "printed a secret: {s:.40}...\n{}",
                self.out
            );
        }
        self
    }
}

/// `mfagate inspect ARGS`, the document on standard input.
pub(crate) fn inspect<S: AsRef<std::ffi::OsStr>>(args: &[S], stdin: &str) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mfagate"))
        .arg("inspect")
        .args(args)
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().unwrap(),
        out: String::from_utf8_lossy(&out.stdout).into_owned(),
        err: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A development IdP on a runtime of its own (the binary fetches from it while the test waits),
/// its JWKS in a file with only `dev-rsa-a`, and a gateway configuration reading that file.
pub(crate) struct Fixture {
    _rt: tokio::runtime::Runtime,
    pub(crate) idp: DevIdp,
    echo: Echo,
    dir: tempfile::TempDir,
}

impl Fixture {
    pub(crate) fn new() -> Fixture {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let (idp, echo) = rt.block_on(async {
            let bind = || tokio::net::TcpListener::bind("127.0.0.1:0");
            let idp = DevIdp::start(bind().await.unwrap(), dev_keys(), Arc::new(SystemClock)).unwrap();
            (idp, Echo::start(bind().await.unwrap()).unwrap())
        });
        idp.publish(&["dev-rsa-a"]);
        let jwks = rt.block_on(get(&format!("{}/keys", idp.base_url())));
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("keys.json"), jwks).unwrap();
        let f = Fixture { _rt: rt, idp, echo, dir };
        f.write_config("mfagate.toml", &[], "");
        f
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub(crate) fn arg(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }

    /// The test configuration (`support::CONFIG`) with file key sources only (offline), the
    /// `admin` route taking only the `dev` issuer, `edits` made and `append` at its end.
    pub(crate) fn write_config(&self, name: &str, edits: &[(&str, &str)], append: &str) {
        let text = render_config(CONFIG, &self.idp, &self.echo, self.dir.path())
            .replace(&format!("jwks_uri = \"{}/keys\"", self.idp.base_url()), "jwks_file = \"keys.json\"")
            .replace("acr_values = \"urn:mfa\"\n", "acr_values = \"urn:mfa\"\nissuers = [\"dev\"]\n");
        let text = edits.iter().fold(text, |t, (from, to)| t.replace(from, to)) + append;
        assert!(!text.contains("jwks_uri"), "offline");
        std::fs::write(self.path(name), text).unwrap();
    }

    pub(crate) fn token(&self, req: TokenRequest) -> String {
        self.idp.mint(&req).unwrap()
    }

    pub(crate) fn claims(&self, req: &TokenRequest, edit: impl FnOnce(&mut Value)) -> String {
        let mut claims = self.idp.claims(req);
        edit(&mut claims);
        self.idp.sign(&claims).unwrap()
    }
}

async fn get(url: &str) -> String {
    use http_body_util::BodyExt;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let rsp = client.get(url.parse().unwrap()).await.unwrap();
    String::from_utf8(rsp.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
}

/// The outcome on the route named `name`.
pub(crate) fn route<'a>(j: &'a Value, name: &str) -> &'a Value {
    j["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["route"] == name)
        .unwrap_or_else(|| panic!("no route {name}: {j}"))
}

/// A route's status and reason code.
pub(crate) fn answer(j: &Value, name: &str) -> (Value, String) {
    let r = route(j, name);
    (r["status"].clone(), r["reason"].as_str().unwrap().to_owned())
}

pub(crate) fn user(amr: &[&str]) -> TokenRequest {
    TokenRequest { amr: Some(amr.iter().map(|a| (*a).to_owned()).collect()), ..TokenRequest::default() }
}

/// A token and the parts of it that must never be printed: itself and its signature.
pub(crate) fn secrets(token: &str) -> [&str; 2] {
    [token, token.rsplit('.').next().unwrap()]
}

#[test]
fn jwt_verdicts_with_a_jwks_file_offline() {
    let f = Fixture::new();
    let keys = f.arg("keys.json");
    let with = |extra: &[&str]| -> Vec<String> {
        ["--jwks", keys.as_str()].iter().chain(extra).map(|s| (*s).to_owned()).collect()
    };

    let mfa = f.token(user(&["pwd", "mfa"]));
    let run = inspect(&with(&["--json"]), &mfa);
    run.never_shows(&secrets(&mfa));
    assert_eq!(run.code, 0, "{}", run.out);
    let j = run.json();
    assert_eq!(j["verdict"], json!({"exit_code": 0, "result": "mfa_proven", "verified": true}));
    assert_eq!(j["signature"]["valid"], true);
    assert_eq!(j["signature"]["kid"], "dev-rsa-a");
    assert!(j["signature"]["key_thumbprint"].as_str().is_some_and(|t| t.len() == 43), "{j}");
    assert_eq!(j["principal"], json!({"kind": "app_user", "decided_by": "scp"}));
    assert_eq!(j["mfa"]["verdict"], "yes");
    assert_eq!((j["mfa"]["decided_by"].as_str(), j["mfa"]["value"].as_str()), (Some("amr"), Some("mfa")));
    assert_eq!(j["jwt"]["tid"], DEV_TENANT);
    assert_eq!(j["jwt"]["amr"], json!(["pwd", "mfa"]));
    assert!(j["jwt"]["exp"]["utc"].as_str().unwrap().ends_with('Z'));
    let not_checked = j["not_checked"].to_string();
    assert!(not_checked.contains("audience") && not_checked.contains("issuer"), "{not_checked}");
    // Without a configuration, the default route: Partner Center's answer.
    assert_eq!(j["routes"][0]["route"], "(default route)");
    assert_eq!(j["routes"][0]["forwarded"], true);

    // The same token as text, given as an argument: still nothing secret.
    let run = inspect(&with(&[&mfa]), "");
    run.never_shows(&secrets(&mfa));
    assert_eq!(run.code, 0);
    assert!(run.out.contains("MFA proven") && run.out.contains("kid dev-rsa-a"), "{}", run.out);
    assert!(!run.out.contains('\u{1b}'), "no colour when piped");

    let pwd = f.token(user(&["pwd"]));
    let j = inspect(&with(&["--json"]), &pwd).never_shows(&secrets(&pwd)).json();
    assert_eq!(j["verdict"]["exit_code"], 1);
    assert_eq!(
        (j["mfa"]["verdict"].as_str(), j["mfa"]["reason"].as_str()),
        (Some("no"), Some("mfa_missing"))
    );
    assert_eq!(j["routes"][0]["status"], 401);
    assert_eq!(
        j["routes"][0]["www_authenticate"],
        "Bearer error=\"invalid_token\", error_description=\"MFA required\""
    );

    let v2 = f.token(TokenRequest { amr: None, ver: "2.0".into(), ..TokenRequest::default() });
    let run = inspect(&with(&["--json"]), &v2);
    assert_eq!(run.code, 1);
    let j = run.never_shows(&secrets(&v2)).json();
    assert_eq!(
        (j["mfa"]["verdict"].as_str(), j["mfa"]["reason"].as_str()),
        (Some("unknown"), Some("mfa_unknown_v2"))
    );
    let advice = j["advice"].to_string();
    assert!(advice.contains("v2.0 access token carries no amr") && advice.contains("acrs"), "{advice}");

    let wia = f.token(user(&["wiaormfa"]));
    let j = inspect(&with(&["--json"]), &wia).never_shows(&secrets(&wia)).json();
    assert_eq!(j["verdict"]["exit_code"], 1);
    assert_eq!(j["mfa"]["reason"], "amr_wiaormfa_not_mfa");
    assert!(j["advice"].to_string().contains("wiaormfa"), "{j}");

    // A federated user without MFA: the AD FS claim rule, in claim rule language.
    let fed = f.token(user(&["fed", "pwd"]));
    let j = inspect(&with(&["--json"]), &fed).json();
    let advice =
        j["advice"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect::<Vec<_>>().join("\n");
    assert!(
        advice.contains("c:[Type == \"http://schemas.microsoft.com/claims/authnmethodsreferences\"]"),
        "{advice}"
    );
    assert!(
        advice.contains("=> issue(claim = c);") && advice.contains("federatedIdpMfaBehavior"),
        "{advice}"
    );

    let app = f.token(TokenRequest { app_only: true, ..TokenRequest::default() });
    let j = inspect(&with(&["--json"]), &app).never_shows(&secrets(&app)).json();
    assert_eq!(j["verdict"]["exit_code"], 1, "App-only is not MFA proven");
    assert_eq!(j["principal"], json!({"kind": "app_only", "decided_by": "idtyp"}));
    assert_eq!(j["mfa"]["verdict"], "n/a");

    let now = SystemClock.unix_secs();
    let expired = f.claims(&user(&["pwd", "mfa"]), |c| {
        c["iat"] = json!(now - 3 * 3600);
        c["nbf"] = json!(now - 3 * 3600);
        c["exp"] = json!(now - 2 * 3600);
    });
    let j = inspect(&with(&["--json"]), &expired).never_shows(&secrets(&expired)).json();
    assert_eq!(j["verdict"]["exit_code"], 2);
    assert_eq!(j["invalid"]["reason"], "token_expired");
    assert_eq!(j["signature"]["valid"], true, "the signature itself verifies");
    assert_eq!(j["verdict"], json!({"exit_code": 2, "result": "invalid", "verified": true}));

    // Signed by the other dev key, under the first key's kid.
    let payload = serde_json::to_vec(&f.idp.claims(&user(&["pwd", "mfa"]))).unwrap();
    let forged = f
        .idp
        .key("dev-rsa-b")
        .unwrap()
        .sign_parts(br#"{"alg":"RS256","kid":"dev-rsa-a","typ":"JWT"}"#, &payload)
        .unwrap();
    let run = inspect(&with(&["--json"]), &forged);
    assert_eq!(run.code, 2);
    let j = run.never_shows(&secrets(&forged)).json();
    assert_eq!(j["invalid"]["reason"], "bad_signature");
    assert_eq!(j["signature"]["valid"], false);
    assert_eq!(j["mfa"]["verdict"], "yes", "what the claims would say is still explained");
}

#[test]
fn jwt_verdicts_with_a_configuration_judge_every_route() {
    let f = Fixture::new();
    let config = ["--config", &f.arg("mfagate.toml"), "--json"];
    let pwd = f.token(user(&["pwd"]));
    let run = inspect(&config, &pwd);
    assert_eq!(run.code, 1, "{}{}", run.out, run.err);
    let j = run.never_shows(&secrets(&pwd)).json();
    assert_eq!(j["issuer"]["configured"], "dev");
    assert_eq!(j["not_checked"], json!([]), "a configuration leaves nothing unchecked");
    let pc = json!("Bearer error=\"invalid_token\", error_description=\"MFA required\"");
    assert_eq!(answer(&j, "api"), (json!(401), "mfa_missing".into()));
    assert_eq!(route(&j, "api")["www_authenticate"], pc);
    assert_eq!(answer(&j, "admin"), (json!(401), "mfa_missing".into()));
    assert_eq!(
        route(&j, "admin")["www_authenticate"],
        "Bearer error=\"insufficient_user_authentication\", error_description=\"Multi-factor authentication is required\", acr_values=\"urn:mfa\""
    );
    assert_eq!(route(&j, "admin")["accepts"], json!(["dev"]));
    // entra-claims answers Partner Center's way to a client that did not declare cp1.
    assert_eq!(route(&j, "claims")["www_authenticate"], pc);
    assert_eq!(answer(&j, "report"), (Value::Null, "mfa_missing".into()));
    assert!(route(&j, "report")["note"].as_str().unwrap().contains("report-only"), "{j}");
    assert_eq!(answer(&j, "public"), (Value::Null, "public_route".into()));
    assert_eq!(answer(&j, "optional"), (Value::Null, "mfa_not_required".into()));

    // A client that declares cp1 gets the claims challenge there.
    let cp1 = f.claims(&user(&["pwd"]), |c| c["xms_cc"] = json!(["cp1"]));
    let j = inspect(&config, &cp1).json();
    let www = route(&j, "claims")["www_authenticate"].as_str().unwrap().to_owned();
    assert!(www.contains("error=\"insufficient_claims\", claims=\""), "{www}");

    let app = f.token(TokenRequest { app_only: true, ..TokenRequest::default() });
    let j = inspect(&config, &app).json();
    assert_eq!(answer(&j, "api"), (Value::Null, "app_only_allowed".into()));
    assert_eq!(answer(&j, "admin"), (json!(403), "app_only_denied".into()));

    let mfa = f.token(user(&["pwd", "mfa"]));
    assert_eq!(inspect(&config, &mfa).code, 0);
    // v2 through the configured v2 issuer, whose mfa_acrs lists c1.
    let v2 = f.claims(&TokenRequest { amr: None, ver: "2.0".into(), ..TokenRequest::default() }, |c| {
        c["acrs"] = json!(["c1"])
    });
    let j = inspect(&config, &v2).json();
    assert_eq!(j["issuer"]["configured"], "dev-v2");
    assert_eq!((j["mfa"]["decided_by"].as_str(), j["mfa"]["value"].as_str()), (Some("acrs"), Some("c1")));
    assert_eq!(j["verdict"]["exit_code"], 0);

    let other = f.token(TokenRequest { aud: "api://someone-else".into(), ..user(&["pwd", "mfa"]) });
    let run = inspect(&config, &other);
    assert_eq!(run.code, 2);
    let j = run.json();
    assert_eq!(j["invalid"]["reason"], "wrong_audience");
    assert_eq!(j["signature"]["valid"], true, "the audience is checked after the signature");
    assert_eq!(j["verdict"]["verified"], false);
    assert_eq!(answer(&j, "api"), (json!(401), "wrong_audience".into()));

    let run = inspect(&["--config", &f.arg("mfagate.toml")], &pwd);
    assert!(run.out.contains("WWW-Authenticate: Bearer error=\"invalid_token\""), "{}", run.out);
}

#[test]
fn jwt_key_sources_by_url_and_discovery() {
    let f = Fixture::new();
    let mfa = f.token(user(&["pwd", "mfa"]));
    let jwks = format!("{}/keys", f.idp.base_url());
    assert_eq!(inspect(&["--jwks", &jwks], &mfa).code, 0);
    let run = inspect(&["--issuer", f.idp.base_url(), "--json"], &mfa);
    assert_eq!(run.code, 0, "{}{}", run.out, run.err);
    let nc = run.json()["not_checked"].to_string();
    assert!(!nc.contains("issuer:") && nc.contains("audience"), "discovery names the issuer: {nc}");
    // A key set that cannot be fetched: the signature is not checked.
    let run = inspect(&["--jwks", "http://127.0.0.1:1/keys", "--json"], &mfa);
    assert_eq!(run.code, 2);
    assert_eq!(run.json()["verdict"]["result"], "not_verified");
}

#[test]
fn without_a_key_source_it_explains_and_exits_2_unless_no_verify() {
    let f = Fixture::new();
    let mfa = f.token(user(&["pwd", "mfa"]));
    let run = inspect(&[] as &[&str], &mfa);
    assert_eq!(run.code, 2);
    assert!(run.out.contains("NOT checked"), "{}", run.out);
    assert!(run.out.contains("amr has \"mfa\""), "it still explains: {}", run.out);
    run.never_shows(&secrets(&mfa));
    let j = inspect(&["--no-verify", "--json"], &mfa).json();
    assert_eq!(j["verdict"], json!({"exit_code": 0, "result": "mfa_proven", "verified": false}));
    assert_eq!(j["signature"]["checked"], false);
    let run = inspect(&["--no-verify"], &f.token(user(&["pwd"])));
    assert_eq!(run.code, 1);
    assert!(run.out.contains("unverified"), "{}", run.out);
    // An expired token is refused without any key.
    let now = SystemClock.unix_secs();
    let expired = f.claims(&user(&["mfa"]), |c| c["exp"] = json!(now - 7200));
    assert_eq!(inspect(&["--no-verify"], &expired).code, 2);
}

#[test]
fn usage_errors_exit_3() {
    let run = inspect(&[] as &[&str], "");
    assert_eq!(run.code, 3, "empty input: {}", run.err);
    let run = inspect(&["--jwks", "/nonexistent/keys.json"], "eyJh.eyJi.c2ln");
    assert_eq!(run.code, 3, "unreadable key file: {}", run.err);
    let run = inspect(&["--config", "/nonexistent/mfagate.toml"], "eyJh.eyJi.c2ln");
    assert_eq!(run.code, 3);
    let run = inspect(&["--jwks", "a.json", "--idp-metadata", "b.xml"], "eyJh.eyJi.c2ln");
    assert_ne!(run.code, 0, "one key source at a time");
    // Not a JWT or SAML document: invalid, not a usage error.
    let run = inspect(&["--json"], "hello there");
    assert_eq!(run.code, 2);
    assert_eq!(run.json()["invalid"]["reason"], "token_malformed");
}

/// Signed SAML documents and what must never be printed of them.
pub(crate) struct Signed {
    pub(crate) xml: String,
    pub(crate) base64: String,
    signature_value: String,
}

pub(crate) fn signed(spec: &AssertionSpec) -> Signed {
    sealed(signer("saml-idp").sign(&spec.to_xml()).unwrap())
}

pub(crate) fn sealed(xml: String) -> Signed {
    let start = xml.find("<ds:SignatureValue>").unwrap() + "<ds:SignatureValue>".len();
    let end = xml.find("</ds:SignatureValue>").unwrap();
    let signature_value = xml[start..end].trim().to_owned();
    let base64 = base64::engine::general_purpose::STANDARD.encode(&xml);
    Signed { xml, base64, signature_value }
}

impl Signed {
    pub(crate) fn secrets(&self) -> [&str; 3] {
        [&self.xml, &self.base64, &self.signature_value]
    }
}

pub(crate) fn spec(class_ref: &str) -> AssertionSpec {
    let mut s = AssertionSpec::new(IDP, SP, SystemClock.unix_secs());
    s.class_ref = Some(class_ref.into());
    s
}

pub(crate) fn metadata(f: &Fixture) -> String {
    let cert = base64::engine::general_purpose::STANDARD.encode(signer("saml-idp").cert_der());
    let xml = format!(
        r#"<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="{IDP}"><md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"><md:KeyDescriptor use="signing"><ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:X509Data><ds:X509Certificate>{cert}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor></md:IDPSSODescriptor></md:EntityDescriptor>"#
    );
    std::fs::write(f.path("idp.xml"), xml).unwrap();
    f.arg("idp.xml")
}

#[test]
fn saml_mfa_in_each_of_the_four_locations_proves_it() {
    let f = Fixture::new();
    let meta = metadata(&f);
    let key = ["--idp-metadata", meta.as_str(), "--json"];
    let attribute = |name: &str| {
        let mut s = spec(PASSWORD);
        s.attributes.push((name.into(), vec![MULTIPLE_AUTHN.into()]));
        signed(&s)
    };
    let saml11 = {
        let s = spec(MULTIPLE_AUTHN);
        sealed(signer("saml-idp").sign_saml11(&s.to_saml11_xml()).unwrap())
    };
    let cases = [
        ("authn_context", signed(&spec(MULTIPLE_AUTHN))),
        ("authentication_method", saml11),
        ("authenticationmethod", attribute(ATTR_AUTHENTICATION_METHOD)),
        ("authnmethodsreferences", signed(&spec(PASSWORD).with_amr_attribute(&[MULTIPLE_AUTHN]))),
    ];
    for (location, doc) in &cases {
        let run = inspect(&key, &doc.base64);
        run.never_shows(&doc.secrets());
        assert_eq!(run.code, 0, "{location}: {}{}", run.out, run.err);
        let j = run.json();
        assert_eq!(j["mfa"]["decided_by"], *location);
        assert_eq!(j["mfa"]["value"], MULTIPLE_AUTHN);
        assert_eq!(j["principal"]["kind"], "user");
        let cert = &j["signature"]["certificate"];
        assert_eq!(cert["sha256"].as_str().map(|s| s.len()), Some(95), "{cert}");
        assert!(cert["subject"].as_str().is_some_and(|s| s.contains("CN=")), "{cert}");
    }
    // Raw XML on the command line, and as text.
    let (_, doc) = &cases[0];
    let run = inspect(&["--idp-metadata", &meta, &doc.xml], "");
    assert_eq!(run.code, 0, "{}", run.out);
    run.never_shows(&doc.secrets());
    assert!(run.out.contains("authn_context") && run.out.contains("verified"), "{}", run.out);
}

#[test]
fn saml_without_proven_mfa_bad_signatures_and_inputs() {
    let f = Fixture::new();
    let meta = metadata(&f);
    let key = ["--idp-metadata", meta.as_str(), "--json"];

    let none = signed(&spec(PASSWORD));
    let run = inspect(&key, &none.base64);
    assert_eq!(run.code, 1);
    let j = run.never_shows(&none.secrets()).json();
    assert_eq!(j["mfa"]["reason"], "saml_mfa_missing");
    assert!(j["advice"].to_string().contains("authnmethodsreferences"), "{j}");

    let wia = signed(&spec(WIA_OR_MULTIPLE_AUTHN));
    let j = inspect(&key, &wia.base64).never_shows(&wia.secrets()).json();
    assert_eq!(j["verdict"]["exit_code"], 1);
    assert_eq!(j["mfa"]["reason"], "saml_wiaormultiauthn_not_mfa");
    assert!(j["advice"].to_string().contains("wiaormultiauthn"), "{j}");

    let untrusted = sealed(signer("saml-untrusted").sign(&spec(MULTIPLE_AUTHN).to_xml()).unwrap());
    let run = inspect(&key, &untrusted.base64);
    assert_eq!(run.code, 2);
    let j = run.never_shows(&untrusted.secrets()).json();
    assert_eq!(j["invalid"]["reason"], "bad_signature");
    assert_eq!(j["signature"]["valid"], false);

    // A Response as a browser posts it: a SAMLResponse= form value, URL-encoded, answering the
    // gateway's AuthnRequest (the ACS refuses an IdP-initiated one: review5_findings).
    let mut solicited = spec(MULTIPLE_AUTHN);
    solicited.in_response_to = Some("_req1".into());
    let assertion = signer("saml-idp").sign(&solicited.to_xml()).unwrap();
    let response = sealed(response_xml("_r1", &assertion, false));
    let form: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("SAMLResponse", &response.base64)
        .append_pair("RelayState", "x")
        .finish();
    let run = inspect(&key, &form);
    assert_eq!(run.code, 0, "{}{}", run.out, run.err);
    let j = run.never_shows(&response.secrets()).never_shows(&[&form]).json();
    assert_eq!(j["document"]["form"], "form");
    assert_eq!(j["document"]["used_as"], "sign_in");
    assert_eq!(
        (j["document"]["element"].as_str(), j["document"]["saml_version"].as_str()),
        (Some("Response"), Some("2.0"))
    );

    // Without a key: explained, not verified.
    let run = inspect(&["--json"], &none.base64);
    assert_eq!(run.code, 2);
    assert_eq!(run.json()["mfa"]["reason"], "saml_mfa_missing");
    assert_eq!(inspect(&["--no-verify"], &none.base64).code, 1);
}

#[test]
fn saml_with_a_configuration_names_the_mfa_location_it_does_not_read() {
    let f = Fixture::new();
    f.write_config(
        "narrow.toml",
        &[("name = \"adfs\"\n", "name = \"adfs\"\nmfa_locations = [\"authn_context\"]\n")],
        "",
    );
    let amr = signed(&spec(PASSWORD).with_amr_attribute(&[MULTIPLE_AUTHN]));
    let run = inspect(&["--config", &f.arg("narrow.toml"), "--json"], &amr.base64);
    assert_eq!(run.code, 1, "{}{}", run.out, run.err);
    let j = run.never_shows(&amr.secrets()).json();
    assert_eq!(j["mfa"]["verdict"], "no");
    assert_eq!(j["mfa"]["unread_location"], "authnmethodsreferences");
    let advice = j["advice"][0].as_str().unwrap();
    assert!(
        advice.contains("add \"authnmethodsreferences\" to mfa_locations")
            && advice.contains("name = \"adfs\""),
        "{advice}"
    );
    let read: Vec<(Value, Value)> = j["saml"]["mfa_locations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["location"].clone(), l["read"].clone()))
        .collect();
    assert_eq!(read[0], (json!("authn_context"), json!(true)));
    assert_eq!(read[3], (json!("authnmethodsreferences"), json!(false)));
    assert_eq!(answer(&j, "api"), (json!(401), "saml_mfa_missing".into()));
    assert_eq!(
        answer(&j, "admin"),
        (json!(401), "saml_not_accepted".into()),
        "admin takes only the dev issuer"
    );
    assert_eq!(route(&j, "admin")["www_authenticate"], "Bearer realm=\"mfagate\"", "as if nothing was sent");
    // The whole configuration reads it: proven.
    assert_eq!(inspect(&["--config", &f.arg("mfagate.toml")], &amr.base64).code, 0);
}

#[test]
fn a_one_time_assertion_is_judged_on_every_route_without_being_used_up() {
    let f = Fixture::new();
    let xml = spec(MULTIPLE_AUTHN).to_xml().replace(
        "</saml:AudienceRestriction></saml:Conditions>",
        "</saml:AudienceRestriction><saml:OneTimeUse/></saml:Conditions>",
    );
    let doc = sealed(signer("saml-idp").sign(&xml).unwrap());
    let run = inspect(&["--config", &f.arg("mfagate.toml"), "--json"], &doc.base64);
    assert_eq!(run.code, 0, "{}{}", run.out, run.err);
    let j = run.never_shows(&doc.secrets()).json();
    assert_eq!(j["saml"]["one_time_use"], true);
    assert_eq!(answer(&j, "api"), (Value::Null, "mfa_satisfied".into()));
    assert_eq!(answer(&j, "admin"), (json!(401), "saml_not_accepted".into()));
    assert_eq!(answer(&j, "claims"), (Value::Null, "mfa_satisfied".into()));
    assert_eq!(
        answer(&j, "token"),
        (json!(400), "wrong_audience".into()),
        "the token endpoint's invalid_grant"
    );
    // A grant for the token endpoint's audience, judged there twice over without a replay.
    let mut grant = spec(MULTIPLE_AUTHN);
    grant.audience = "urn:federation:MicrosoftOnline".into();
    let grant = signed(&grant);
    let j = inspect(&["--config", &f.arg("mfagate.toml"), "--json"], &grant.base64).json();
    assert_eq!(j["document"]["used_as"], "grant");
    assert_eq!(j["verdict"]["exit_code"], 0, "{j}");
    assert_eq!(answer(&j, "token"), (Value::Null, "mfa_satisfied".into()));
    assert_eq!(answer(&j, "api"), (json!(401), "wrong_audience".into()));
}

/// Seconds since the epoch, for minting documents the binary judges by the real clock.
pub(crate) trait UnixSecs {
    fn unix_secs(&self) -> u64;
}

impl UnixSecs for SystemClock {
    fn unix_secs(&self) -> u64 {
        use mfagate::clock::Clock;
        self.unix().0
    }
}

#[test]
fn browser_routes_take_sign_ins_not_credentials() {
    let f = Fixture::new();
    f.write_config(
        "portal.toml",
        &[
            ("entity_id = \"https://gateway.contoso.test/saml\"\n", "entity_id = \"https://gateway.contoso.test/saml\"\nacs_url = \"https://gateway.contoso.test/saml/acs\"\n"),
            ("name = \"adfs\"\n", "name = \"adfs\"\nsso_url = \"https://idp.contoso.test/sso\"\n"),
        ],
        r#"
[session]
keys = ["MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE="]

[[route]]
name = "app"
path_prefix = "/app/"
upstream = "http://127.0.0.1:1"
channel = "portal"
login = "adfs"
"#,
    );
    let config = ["--config", &f.arg("portal.toml"), "--json"];
    // A sign-in Response (it answers an AuthnRequest): it signs in at the ACS, it is no API key.
    let sign_in = |class_ref: &str| {
        let mut s = spec(class_ref);
        s.in_response_to = Some("_req1".into());
        s.recipient = Some("https://gateway.contoso.test/saml/acs".into());
        sealed(response_xml("_r1", &signer("saml-idp").sign(&s.to_xml()).unwrap(), false))
    };
    let mfa = sign_in(MULTIPLE_AUTHN);
    let run = inspect(&config, &mfa.base64);
    assert_eq!(run.code, 0, "{}{}", run.out, run.err);
    let j = run.never_shows(&mfa.secrets()).json();
    assert_eq!(j["document"]["used_as"], "sign_in");
    assert_eq!(answer(&j, "app"), (Value::Null, "mfa_satisfied".into()));
    assert_eq!(answer(&j, "api"), (json!(401), "sso_response_not_api_credential".into()));
    assert!(j["not_checked"].to_string().contains("InResponseTo"), "{j}");
    let pwd = sign_in(PASSWORD);
    let j = inspect(&config, &pwd.base64).json();
    assert_eq!(j["verdict"]["exit_code"], 1);
    assert_eq!(answer(&j, "app"), (json!(302), "session_without_mfa".into()));
    // A bearer token is not read on a browser route.
    let j = inspect(&config, &f.token(user(&["pwd", "mfa"]))).json();
    assert_eq!(answer(&j, "app"), (json!(302), "login_required".into()));
}
