//! Which SAML documents are looked at where: browser sign-in Responses are not API credentials,
//! routes that take no SAML IdP never verify one, and a full verification queue answers 503.

use crate::saml::{IDP, SP, signer};
use crate::support::browser::Browser;
use crate::support::*;
use mfagate::config::SamlIdp;
use mfagate::dev::saml_idp::AssertionSpec;
use mfagate::verify::saml::{SamlVerifier, Use};
use mfagate_policy::{InvalidReason, SamlMfaSettings};

const ACS: &str = "https://gateway.contoso.test/saml/acs";

fn verifier(accept_sso_responses_as_api: bool) -> SamlVerifier {
    let idp = SamlIdp {
        name: "adfs".into(),
        entity_id: IDP.into(),
        certificates: vec![signer("saml-idp").cert_der().to_vec()],
        mfa: SamlMfaSettings::default(),
        leeway_secs: 60,
        sso_url: None,
        accept_sso_responses_as_api,
        metadata_url: None,
    };
    SamlVerifier::new(vec![idp], SP.into(), vec![ACS.into()], 64 * 1024, mfagate::clock::ManualClock::at(T0))
        .with_acs_url(Some(ACS.into()))
}

fn signed(edit: impl FnOnce(&mut AssertionSpec)) -> String {
    let mut spec = AssertionSpec::new(IDP, SP, T0);
    edit(&mut spec);
    signer("saml-idp").sign(&spec.to_xml()).unwrap()
}

#[test]
fn browser_sign_in_responses_are_not_api_credentials_unless_configured() {
    let v = verifier(false);
    let for_acs = signed(|s| s.recipient = Some(ACS.into()));
    let answering = signed(|s| s.in_response_to = Some("_r1".into()));
    for doc in [&for_acs, &answering] {
        assert_eq!(v.verify(doc, Use::Api).map(|_| ()).unwrap_err(), InvalidReason::SsoResponse);
    }
    assert_eq!(InvalidReason::SsoResponse.code(), "sso_response_not_api_credential");
    // Refused before the replay cache: the ACS still takes it, once.
    assert!(v.verify(&for_acs, Use::Acs).is_ok());
    assert_eq!(v.verify(&for_acs, Use::Acs).map(|_| ()).unwrap_err(), InvalidReason::Replayed);
    // An API assertion (no Recipient, or another one) is what it was.
    assert!(v.verify(&signed(|_| {}), Use::Api).is_ok());
    // Configured per IdP.
    let lenient = verifier(true);
    assert!(lenient.verify(&for_acs, Use::Api).is_ok());
    assert!(lenient.verify(&answering, Use::Api).is_ok());
}

/// The SAML portal of tests/portal.rs, with `idp_extra` on the SAML IdP.
async fn saml_portal(idp_extra: &str) -> Gateway {
    let sso = "sso_url = \"{saml_sso}\"";
    gateway()
        .saml_sign_in()
        .replace(sso, &format!("{sso}\n{idp_extra}"))
        .append(crate::portal::SESSION)
        .append(crate::portal::SAML_ROUTE)
        .start()
        .await
}

/// The Response the dev IdP's auto-posting form would send to the ACS.
async fn sso_response(g: &Gateway) -> String {
    let mut b = Browser::new();
    let to_idp = b.get(&format!("http://{}/app/x", g.addr)).await;
    let idp_page = b.get(to_idp.headers["location"].to_str().unwrap()).await;
    Browser::form_fields(&idp_page).0
}

fn api_request(g: &Gateway, path: &str, saml: &str) -> http::Request<http_body_util::Full<bytes::Bytes>> {
    http::Request::get(format!("http://{}{path}", g.addr))
        .header("authorization", format!("SAML {saml}"))
        .body(Default::default())
        .unwrap()
}

#[tokio::test]
async fn a_response_copied_from_a_browser_sign_in_is_refused_at_the_api() {
    let mut g = saml_portal("").await;
    let response = sso_response(&g).await;
    let r = g.send(api_request(&g, "/v1/x", &response)).await;
    assert_eq!(
        (r.status.as_u16(), r.json()["error"].as_str()),
        (401, Some("sso_response_not_api_credential"))
    );
    assert!(r.www().contains("invalid_token"), "{}", r.www());
    assert_eq!(g.echo.hits(), 0);
    let log = g.stop().await;
    assert_eq!(log.last().unwrap()["reason"], "sso_response_not_api_credential");

    let g = saml_portal("accept_sso_responses_as_api = true").await;
    let response = sso_response(&g).await;
    let r = g.send(api_request(&g, "/v1/x", &response)).await;
    assert_eq!(r.status, http::StatusCode::OK, "{}", r.body);
    assert_eq!(r.upstream_header("x-auth-principal").as_deref(), Some("user"));
}

const OIDC_ONLY: &str = r#"
[[route]]
name = "oidc-only"
path_prefix = "/oidc-only/"
upstream = "{echo}"
issuers = ["dev"]

[[route]]
name = "oidc-only-report"
path_prefix = "/oidc-report/"
upstream = "{echo}"
issuers = ["dev"]
mode = "report-only"
"#;

#[tokio::test]
async fn a_route_that_takes_no_saml_idp_never_verifies_an_assertion() {
    let mut g = gateway().append(OIDC_ONLY).start().await;
    let minted =
        g.send(http::Request::get(g.saml_idp.assertion_url(SP)).body(Default::default()).unwrap()).await;
    let good = minted.body;
    // Not even looked at: a valid assertion and garbage get the same answer, as no credential.
    for saml in [good.as_str(), "bm90IFhNTA=="] {
        let r = g.send(api_request(&g, "/oidc-only/x", saml)).await;
        assert_eq!((r.status.as_u16(), r.json()["error"].as_str()), (401, Some("saml_not_accepted")));
        assert_eq!(r.www(), "Bearer realm=\"mfagate\"");
    }
    assert_eq!(g.echo.hits(), 0);
    // Where SAML is taken, the garbage is verified, and refused for what it is.
    let r = g.send(api_request(&g, "/v1/x", "bm90IFhNTA==")).await;
    assert_eq!((r.status.as_u16(), r.json()["error"].as_str()), (401, Some("token_malformed")));
    assert_eq!(g.send(api_request(&g, "/v1/x", &good)).await.status, http::StatusCode::OK);
    // Report-only forwards, and the record says why the caller counted as anonymous.
    let r = g.send(api_request(&g, "/oidc-report/x", &good)).await;
    assert_eq!(r.status, http::StatusCode::OK);
    assert_eq!(r.upstream_header("x-auth-principal").as_deref(), Some("anonymous"));
    let log = g.stop().await;
    let rows: Vec<_> = log
        .iter()
        .map(|r| (r["route"].as_str().unwrap(), r["reason"].as_str().unwrap(), r["status"].clone()))
        .collect();
    assert_eq!(rows[0], ("oidc-only", "saml_not_accepted", serde_json::json!(401)));
    assert_eq!(rows[1], ("oidc-only", "saml_not_accepted", serde_json::json!(401)));
    assert_eq!(rows[3], ("api", "mfa_satisfied", serde_json::json!(200)));
    assert_eq!(rows[4], ("oidc-only-report", "saml_not_accepted", serde_json::json!(200)));
    assert_eq!(log[4]["enforced"], false);
}

#[tokio::test]
async fn a_full_saml_queue_answers_503_with_retry_after() {
    let mut g = gateway()
        .replace(
            "entity_id = \"https://gateway.contoso.test/saml\"",
            "entity_id = \"https://gateway.contoso.test/saml\"\nmax_pending_verifications = 1",
        )
        .start()
        .await;
    // Sixteen first sights at once through a queue of one: xmlsec takes far longer than reading
    // a request, so the others arrive while the first is verified.
    let mut assertions = Vec::new();
    for _ in 0..16 {
        let url = g.saml_idp.assertion_url(SP);
        assertions.push(g.send(http::Request::get(url).body(Default::default()).unwrap()).await.body);
    }
    let answers =
        join_all(assertions.iter().map(|a| Box::pin(g.send(api_request(&g, "/v1/x", a)))).collect()).await;
    let busy: Vec<&Reply> = answers.iter().filter(|r| r.status.as_u16() == 503).collect();
    assert!(!busy.is_empty(), "no 503 among {:?}", answers.iter().map(|r| r.status).collect::<Vec<_>>());
    assert!(answers.iter().all(|r| matches!(r.status.as_u16(), 200 | 503)));
    for r in &busy {
        assert_eq!(r.json()["error"], "saml_busy");
        assert_eq!(r.headers["retry-after"], "5");
    }
    assert_eq!(g.echo.hits() as usize, answers.len() - busy.len());
    let log = g.stop().await;
    let logged = log.iter().filter(|r| r["reason"] == "saml_busy" && r["status"] == 503).count();
    assert_eq!(logged, busy.len());
}

#[test]
fn config_keeps_sessions_and_grants_reachable() {
    let text = r#"
[decision_log]
path = "d.jsonl"
[[issuer]]
name = "entra"
issuer = "https://sts.windows.net/{tenantid}/"
jwks_uri = "https://login.microsoftonline.com/common/discovery/keys"
audiences = ["api://a"]
client_id = "c"
client_secret = "s"
authorization_endpoint = "https://login.example/authorize"
token_endpoint = "https://login.example/token"
[oidc]
callback_url = "https://gw.example/oidc/callback"
[saml]
entity_id = "https://gw.example/saml"
max_pending_verifications = 0
[[saml_idp]]
name = "adfs"
entity_id = "https://adfs.example/trust"
certificates = ["saml-idp.pem"]
[session]
keys = ["MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="]
[[route]]
name = "portal"
path_prefix = "/"
upstream = "http://127.0.0.1:3000"
channel = "portal"
login = "entra"
issuers = ["adfs"]
[[route]]
name = "token"
path_prefix = "/oauth2/"
upstream = "http://127.0.0.1:3000"
saml_bearer_grant = true
grant_audience = "urn:federation:MicrosoftOnline"
issuers = ["entra"]
"#;
    let problems = mfagate::Config::from_toml(text, &certs()).unwrap_err().problems();
    for line in [
        "saml.max_pending_verifications: must be at least 1",
        "route \"portal\".issuers: must include the route's login \"entra\"",
        "route \"token\".issuers: a saml_bearer_grant route needs a saml_idp among its issuers",
    ] {
        assert!(problems.iter().any(|p| p == line), "missing {line:?} in {problems:#?}");
    }
}
