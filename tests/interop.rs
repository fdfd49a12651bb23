//! Identity provider interop: sign-in-only issuers, the token endpoint's client authentication,
//! the userinfo fallback, and SHA-1 signed SAML refused as `weak_algorithm`.

use crate::portal::{OIDC_ROUTE, SESSION};
use crate::support::browser::Browser;
use crate::support::*;
use http::StatusCode;

/// The `dev` issuer's audiences line in the test configuration.
const DEV_AUDIENCES: &str =
    "audiences = [\"api://mfagate-demo\", \"00000000-0000-4000-8000-0000000000aa\"]\n";

fn config_problems(toml: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    match mfagate::Config::from_toml(toml, dir.path()) {
        Ok(_) => String::new(),
        Err(e) => e.to_string(),
    }
}

const SIGN_IN_ONLY: &str = r#"
[decision_log]
path = "d.jsonl"
[[issuer]]
name = "web"
issuer = "https://idp.example.test/"
discovery = "https://idp.example.test/.well-known/openid-configuration"
client_id = "mfagate-web"
client_secret = "s"
[oidc]
callback_url = "https://gw.example.test/oidc/callback"
[session]
keys = ["MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="]
[[route]]
name = "portal"
path_prefix = "/"
upstream = "http://127.0.0.1:3000"
channel = "portal"
login = "web"
"#;

#[test]
fn audiences_are_needed_only_by_an_issuer_an_api_route_takes() {
    assert_eq!(config_problems(SIGN_IN_ONLY), "", "a sign-in-only issuer may omit audiences");
    // A portal route may still name it among its issuers.
    let named = SIGN_IN_ONLY.replace("login = \"web\"", "login = \"web\"\nissuers = [\"web\"]");
    assert_eq!(config_problems(&named), "");
    // An API route that names it could never take its tokens.
    let api = format!(
        "{SIGN_IN_ONLY}[[route]]\nname = \"api\"\npath_prefix = \"/v1/\"\nupstream = \"http://127.0.0.1:3000\"\nissuers = [\"web\"]\n"
    );
    let problems = config_problems(&api);
    assert!(
        problems
            .contains("route \"api\".issuers[0]: issuer \"web\" has no audiences: an API route needs them"),
        "{problems}"
    );
    // Without a client it is no issuer at all.
    let bare = SIGN_IN_ONLY.replace("client_id = \"mfagate-web\"\nclient_secret = \"s\"\n", "");
    let problems = config_problems(&bare);
    assert!(problems.contains("issuer \"web\".audiences: at least one audience is required"), "{problems}");
}

#[tokio::test]
async fn a_sign_in_only_issuer_signs_users_in_and_its_tokens_open_no_api_route() {
    let mut g =
        gateway().replace(DEV_AUDIENCES, "").oidc_client().append(SESSION).append(OIDC_ROUTE).start().await;
    let mut b = Browser::new();
    let page = b.open(&format!("http://{}/web/home", g.addr)).await;
    assert_eq!(page.status, StatusCode::OK, "{:?}", b.trail);
    // `/v1/` takes every issuer's tokens, but `dev` has no API audience: none of its tokens,
    // whatever their `aud`, is an API credential.
    for aud in ["api://mfagate-demo", "mfagate-web"] {
        let token = g.token(|c| c["aud"] = serde_json::json!(aud));
        let r = g.get("/v1/x", Some(&token)).await;
        assert_eq!(
            (r.status, r.json()["error"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("wrong_audience"))
        );
    }
    assert_eq!(g.echo.hits(), 1, "only the signed-in page");
    let log = g.stop().await;
    let reasons: Vec<_> = log.iter().map(|r| r["reason"].as_str().unwrap()).collect();
    assert_eq!(reasons, ["login_required", "signed_in", "mfa_satisfied", "wrong_audience", "wrong_audience"]);
}

// SHA-1 signed SAML, SAML 2.0 and 1.1 alike: refused as `weak_algorithm`, the algorithm named.

use mfagate::dev::saml_idp::{AssertionSpec, response_xml, sign_saml11_with, signature_template, with_sha1};
use mfagate_policy::WeakAlgorithm;

/// RSA-SHA1 with the dev SAML IdP's key (aws-lc-rs signs no SHA-1; openssl does).
fn rsa_sha1(bytes: &[u8]) -> Option<Vec<u8>> {
    let pem = std::fs::read(certs().join("saml-idp.key")).unwrap();
    let key = openssl::pkey::PKey::private_key_from_pem(&pem).unwrap();
    let mut signer = openssl::sign::Signer::new(openssl::hash::MessageDigest::sha1(), &key).unwrap();
    signer.update(bytes).unwrap();
    signer.sign_to_vec().ok()
}

/// Whether xmlsec, which still accepts SHA-1, finds the signature valid: then only the
/// algorithm can be why the gateway refuses it.
fn xmlsec_valid(xml: &str, id_attribute: &str) -> bool {
    use samael::crypto::{CertificateDer, Crypto, CryptoProvider};
    let cert = CertificateDer::from(crate::saml::signer("saml-idp").cert_der().to_vec());
    Crypto::verify_signed_xml(xml, &cert, Some(id_attribute)).is_ok()
}

fn saml_spec() -> AssertionSpec {
    AssertionSpec::new(crate::saml::IDP, crate::saml::SP, T0)
}

/// A SAML 2.0 Response, signed at the Response with RSA-SHA1 and a SHA-1 digest by xmlsec.
fn sha1_response(spec: &AssertionSpec) -> String {
    let bare = spec.to_xml().replace(&signature_template(&spec.id), "");
    let xml = crate::saml::signer("saml-idp").sign(&with_sha1(&response_xml("_r1", &bare, true))).unwrap();
    assert!(xml.contains(WeakAlgorithm::RsaSha1.uri()) && xmlsec_valid(&xml, "ID"), "{xml}");
    xml
}

fn saml_authorization(xml: &str) -> String {
    use base64::Engine;
    format!("SAML {}", base64::engine::general_purpose::STANDARD.encode(xml))
}

#[tokio::test]
async fn sha1_signed_saml_is_refused_as_weak_algorithm_naming_it() {
    let mut g = gateway().start().await;
    let signer = crate::saml::signer("saml-idp");
    // SAML 2.0: a Response signed with RSA-SHA1; an Assertion with RSA-SHA256 over a SHA-1 digest.
    let response = sha1_response(&saml_spec());
    let s = saml_spec();
    let digest_only = signer
        .sign(&s.to_xml().replace("http://www.w3.org/2001/04/xmlenc#sha256", WeakAlgorithm::Sha1.uri()))
        .unwrap();
    assert!(xmlsec_valid(&digest_only, "ID"));
    // SAML 1.1 (AD FS to WS-Federation relying parties): RSA-SHA1 and a SHA-1 digest.
    let saml11 = sign_saml11_with(&with_sha1(&saml_spec().to_saml11_xml()), &rsa_sha1).unwrap();
    assert!(xmlsec_valid(&saml11, "AssertionID"), "{saml11}");
    let cases = [
        (&response, WeakAlgorithm::RsaSha1),
        (&digest_only, WeakAlgorithm::Sha1),
        (&saml11, WeakAlgorithm::RsaSha1),
    ];
    for (doc, _) in cases {
        let req = g.request("/v1/x", None).header("authorization", saml_authorization(doc));
        let r = g.send(req.body(Default::default()).unwrap()).await;
        assert_eq!(
            (r.status, r.json()["error"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("weak_algorithm"))
        );
        assert_eq!(
            r.www(),
            "Bearer error=\"invalid_token\", error_description=\"The signature uses a weak algorithm (SHA-1 or MD5)\""
        );
    }
    // An IdP we do not trust is refused as that, whatever it signs with.
    let mut stranger = saml_spec();
    stranger.issuer = "https://idp.stranger.test/".into();
    let req = g.request("/v1/x", None).header("authorization", saml_authorization(&sha1_response(&stranger)));
    assert_eq!(g.send(req.body(Default::default()).unwrap()).await.json()["error"], "unknown_issuer");
    assert_eq!(g.echo.hits(), 0);
    let log = g.stop().await;
    for (row, (_, algorithm)) in log.iter().zip(cases) {
        assert_eq!(
            (row["reason"].as_str(), row["detail"].as_str()),
            (Some("weak_algorithm"), Some(algorithm.uri()))
        );
        assert_eq!(row["status"], 401);
    }
    assert_eq!((log[3]["reason"].as_str(), log[3].get("detail")), (Some("unknown_issuer"), None));
}

#[tokio::test]
async fn a_sha1_signed_sign_in_response_is_refused_at_the_acs_as_weak_algorithm() {
    let mut g = gateway().saml_sign_in().append(SESSION).append(crate::portal::SAML_ROUTE).start().await;
    let mut b = Browser::new();
    let to_idp = b.get(&format!("http://{}/app/x", g.addr)).await;
    let location = to_idp.headers["location"].to_str().unwrap().to_owned();
    let query: Vec<(String, String)> =
        form_urlencoded::parse(location.split_once('?').unwrap().1.as_bytes()).into_owned().collect();
    let field = |name: &str| query.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).unwrap();
    let request = mfagate::browser::portal::inflate_base64(&field("SAMLRequest"), 64 * 1024).unwrap();
    let request_id =
        roxmltree::Document::parse(&request).unwrap().root_element().attribute("ID").unwrap().to_owned();
    // Everything right for this sign-in but the algorithm.
    let acs = format!("{}/saml/acs", g.base);
    let mut spec = saml_spec();
    spec.recipient = Some(acs.clone());
    spec.in_response_to = Some(request_id);
    let response = sha1_response(&spec);
    use base64::Engine;
    let form = form_urlencoded::Serializer::new(String::new())
        .append_pair("SAMLResponse", &base64::engine::general_purpose::STANDARD.encode(&response))
        .append_pair("RelayState", &field("RelayState"))
        .finish();
    let page = b.post_form(&acs, form).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(page.body.contains("<code>weak_algorithm</code>"), "{}", page.body);
    assert!(!b.cookies.contains_key("mfagate_session"));
    let log = g.stop().await;
    let last = log.last().unwrap();
    assert_eq!(
        (last["reason"].as_str(), last["detail"].as_str(), last["channel"].as_str()),
        (Some("weak_algorithm"), Some(WeakAlgorithm::RsaSha1.uri()), Some("portal"))
    );
}

// The code exchange authenticates as discovery allows (`client_secret_basic` first) or as
// configured; the userinfo fallback fills in `amr` and the UPN for the same `sub`.

use mfagate::dev::idp::{DevClientAuth, DevIdp, DevMfa, DevUserinfo};

/// How a test sets the dev IdP up before the gateway reads its discovery.
pub type Setup = fn(&DevIdp);

/// A secret whose `:`, `+`, `/`, `%` and non-ASCII letter survive Basic only if form-urlencoded
/// before base64 (RFC 6749 §2.3.1).
const SECRET: &str = "dev sec:ret+/é%";

/// The gateway as a client of the issuer `dev`, found by discovery (endpoints, userinfo, client
/// authentication methods), with `extra` on the issuer.
pub fn discovering_client(extra: &str) -> Builder {
    gateway()
        .replace(
            "jwks_uri = \"{idp}/keys\"\naudiences = [\"api://mfagate-demo\", ",
            "discovery = \"{idp}/.well-known/openid-configuration\"\naudiences = [\"api://mfagate-demo\", ",
        )
        .replace(
            "leeway_secs = 60\n",
            &format!(
                "leeway_secs = 60\nclient_id = \"mfagate-web\"\nclient_secret = \"{SECRET}\"\n{extra}\n"
            ),
        )
        .append(SESSION)
        .append(OIDC_ROUTE)
}

/// Opens `/web/home` in a new browser.
pub async fn browse(g: &Gateway) -> (crate::support::browser::Page, Browser) {
    let mut b = Browser::new();
    let page = b.open(&format!("http://{}/web/home", g.addr)).await;
    (page, b)
}

fn used(method: &'static str) -> Option<DevClientAuth> {
    Some(DevClientAuth { method, client_id: "mfagate-web".into(), client_secret: SECRET.into() })
}

#[tokio::test]
async fn the_code_exchange_authenticates_as_discovery_allows_basic_first() {
    let both: Setup = |_| {};
    let unpublished: Setup = |idp| idp.set_token_auth_methods(None);
    let post_only: Setup = |idp| idp.set_token_auth_methods(Some(&["client_secret_post", "private_key_jwt"]));
    for (setup, want, why) in [
        (both, "client_secret_basic", "basic first"),
        (unpublished, "client_secret_basic", "the OAuth default when discovery says nothing"),
        (post_only, "client_secret_post", "what discovery allows"),
    ] {
        let g = discovering_client("").idp_setup(setup).start().await;
        let (page, b) = browse(&g).await;
        assert_eq!(page.status, StatusCode::OK, "{why}: {:?}", b.trail);
        assert_eq!(g.idp.last_client_auth(), used(want), "{why}");
    }
    // Configured, it wins where discovery allows it.
    let g = discovering_client("token_endpoint_auth = \"client_secret_post\"").start().await;
    assert_eq!(browse(&g).await.0.status, StatusCode::OK);
    assert_eq!(g.idp.last_client_auth(), used("client_secret_post"));
    // Without discovery (the harness's explicit endpoints) the default is Basic.
    let g = gateway().oidc_client().append(SESSION).append(OIDC_ROUTE).start().await;
    assert_eq!(browse(&g).await.0.status, StatusCode::OK);
    assert_eq!(
        g.idp.last_client_auth().map(|a| (a.method, a.client_secret)),
        Some(("client_secret_basic", "dev-secret".to_owned()))
    );
}

#[tokio::test]
async fn no_client_authentication_both_configured_and_offered_fails_before_the_exchange() {
    let post_only: Setup = |idp| idp.set_token_auth_methods(Some(&["client_secret_post"]));
    let jwt_only: Setup = |idp| idp.set_token_auth_methods(Some(&["private_key_jwt"]));
    for (extra, setup) in [("token_endpoint_auth = \"client_secret_basic\"", post_only), ("", jwt_only)] {
        let mut g = discovering_client(extra).idp_setup(setup).start().await;
        let (page, b) = browse(&g).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{:?}", b.trail);
        assert!(page.body.contains("<code>token_endpoint_auth_unsupported</code>"), "{}", page.body);
        assert!(!b.cookies.contains_key("mfagate_session"));
        assert_eq!((g.idp.code_exchanges(), g.echo.hits()), (0, 0), "the secret was not sent");
        let log = g.stop().await;
        assert_eq!(log.last().unwrap()["reason"], "token_endpoint_auth_unsupported");
    }
}

#[test]
fn token_endpoint_auth_is_one_of_two_methods_for_a_client() {
    let with = |line: &str| {
        SIGN_IN_ONLY.replace("client_secret = \"s\"\n", &format!("client_secret = \"s\"\n{line}\n"))
    };
    assert_eq!(config_problems(&with("token_endpoint_auth = \"client_secret_basic\"")), "");
    assert_eq!(config_problems(&with("token_endpoint_auth = \"client_secret_post\"")), "");
    let problems = config_problems(&with("token_endpoint_auth = \"private_key_jwt\""));
    assert!(problems.contains("private_key_jwt") && problems.contains("client_secret_basic"), "{problems}");
    let no_client = SIGN_IN_ONLY
        .replace(
            "client_id = \"mfagate-web\"\nclient_secret = \"s\"\n",
            "audiences = [\"api://a\"]\ntoken_endpoint_auth = \"client_secret_post\"\n",
        )
        .replace("login = \"web\"", "login = \"web\"\n");
    let problems = config_problems(&no_client);
    assert!(
        problems.contains(
            "issuer \"web\".token_endpoint_auth: only means something with client_id and client_secret"
        ),
        "{problems}"
    );
}

#[tokio::test]
async fn amr_and_the_upn_come_from_userinfo_when_the_id_token_lacks_them() {
    let userinfo: Setup = |idp| idp.set_userinfo(DevUserinfo::Userinfo);
    let mut g = discovering_client("").idp_setup(userinfo).start().await;
    let (page, b) = browse(&g).await;
    assert_eq!(page.status, StatusCode::OK, "{:?}", b.trail);
    let seen: serde_json::Value = serde_json::from_str(&page.body).unwrap();
    assert_eq!(seen["headers"]["x-auth-mfa"], "true");
    assert_eq!(seen["headers"]["x-auth-upn"], "adele@contoso.test");
    assert_eq!(g.idp.userinfo_calls(), 1);
    // Its `amr` decides: without MFA there, the user is asked for MFA, and gets it when asked.
    g.idp.set_mfa(DevMfa::WhenAsked);
    let (page, b) = browse(&g).await;
    assert_eq!(page.status, StatusCode::OK, "{:?}", b.trail);
    assert_eq!((g.idp.sign_ins(), g.idp.userinfo_calls()), (3, 3));
    g.idp.set_mfa(DevMfa::Never);
    assert_eq!(browse(&g).await.0.status, StatusCode::FORBIDDEN, "the loop guard: MFA never shown");
    let log = g.stop().await;
    let reasons: Vec<_> = log.iter().map(|r| r["reason"].as_str().unwrap()).collect();
    assert_eq!(&reasons[..3], ["login_required", "signed_in", "mfa_satisfied"]);
    assert_eq!(log[1]["upn"], "adele@contoso.test");
    assert_eq!(reasons[4..7], ["signed_in", "session_without_mfa", "signed_in"]);
    assert_eq!(reasons.last(), Some(&"mfa_loop_guard"));
    let text = std::fs::read_to_string(g.log_path()).unwrap();
    assert!(!text.contains("eyJ") && !text.contains(SECRET), "no token or secret in the log");
}

#[tokio::test]
async fn userinfo_is_not_asked_when_the_id_token_says_it_all_or_there_is_none() {
    let g = discovering_client("").start().await;
    assert_eq!(browse(&g).await.0.status, StatusCode::OK);
    assert_eq!(g.idp.userinfo_calls(), 0, "the ID token has amr and upn");
    // An issuer without discovery has no userinfo endpoint: no fallback, and MFA is not proven.
    let g = gateway()
        .oidc_client()
        .append(SESSION)
        .append(OIDC_ROUTE)
        .idp_setup(|idp| idp.set_userinfo(DevUserinfo::Userinfo))
        .start()
        .await;
    let (page, _) = browse(&g).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "the loop guard");
    assert_eq!((g.idp.userinfo_calls(), g.echo.hits()), (0, 0));
}

#[tokio::test]
async fn a_userinfo_answer_that_cannot_be_taken_fails_the_sign_in_never_proving_mfa() {
    let cases: [(Setup, &str); 5] = [
        (|idp| idp.set_userinfo(DevUserinfo::OtherSub), "userinfo_sub_mismatch"),
        (|idp| idp.set_userinfo(DevUserinfo::Jwt), "userinfo_jwt_refused"),
        (|idp| idp.set_userinfo(DevUserinfo::Garbage), "userinfo_invalid"),
        (|idp| idp.set_userinfo(DevUserinfo::Huge), "userinfo_invalid"),
        (|idp| idp.set_userinfo(DevUserinfo::Down), "userinfo_unavailable"),
    ];
    for (setup, reason) in cases {
        let mut g = discovering_client("").idp_setup(setup).start().await;
        let (page, b) = browse(&g).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{reason}: {:?}", b.trail);
        assert!(page.body.contains(&format!("<code>{reason}</code>")), "{}", page.body);
        assert!(!b.cookies.contains_key("mfagate_session"), "{reason}");
        assert_eq!((g.idp.userinfo_calls(), g.echo.hits()), (1, 0), "{reason}");
        let log = g.stop().await;
        let last = log.last().unwrap();
        assert_eq!((last["reason"].as_str(), last["mfa"].as_bool()), (Some(reason), None));
    }
}

/// The identity headers README's "What the upstream receives" documents for users.
#[tokio::test]
async fn users_proven_by_saml_or_a_portal_session_reach_the_upstream_as_user() {
    let g = gateway().oidc_client().append(SESSION).append(OIDC_ROUTE).start().await;
    let xml = crate::saml::signer("saml-idp").sign(&saml_spec().to_xml()).unwrap();
    let req = g.request("/v1/x", None).header("authorization", saml_authorization(&xml));
    let saml = g.send(req.body(Default::default()).unwrap()).await;
    let (page, _) = browse(&g).await;
    let portal = Reply { status: page.status, headers: Default::default(), body: page.body };
    // The same user: the assertion's `objectidentifier`, the ID token's `oid`.
    let subject = "00000000-0000-4000-8000-0000000b0001";
    for (reply, issuer) in [(&saml, "adfs"), (&portal, "dev")] {
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        let h = |name: &str| reply.upstream_header(name);
        assert_eq!(
            [h("x-auth-principal"), h("x-auth-mfa"), h("x-auth-subject"), h("x-auth-tenant")],
            [Some("user".into()), Some("true".into()), Some(subject.into()), Some(tenant().into())],
            "{issuer}"
        );
        assert_eq!(
            [h("x-auth-upn"), h("x-auth-app"), h("x-auth-issuer")],
            [Some("adele@contoso.test".into()), Some(String::new()), Some(issuer.into())],
            "{issuer}"
        );
    }
}
