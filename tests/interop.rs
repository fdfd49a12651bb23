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
        problems.contains("route[1].issuers[0]: issuer \"web\" has no audiences: an API route needs them"),
        "{problems}"
    );
    // Without a client it is no issuer at all.
    let bare = SIGN_IN_ONLY.replace("client_id = \"mfagate-web\"\nclient_secret = \"s\"\n", "");
    let problems = config_problems(&bare);
    assert!(problems.contains("issuer[0].audiences: at least one audience is required"), "{problems}");
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
