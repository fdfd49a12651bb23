//! Browser sign-in in headless Chromium, over plain HTTP (`[session] secure = false`, as the demo
//! runs) and over HTTPS: the OIDC code flow on one portal route, then SAML SP-initiated SSO on a
//! second whose IdP the first session does not open. The gateway is `localhost`, the IdPs
//! `127.0.0.1`: two sites, so the IdPs come back cross-site as they do in production.

use crate::portal::{OIDC_ROUTE, SAML_ROUTE, SESSION};
use crate::support::chromium::Chromium;
use crate::support::*;
use serde_json::{Value, json};

/// Both portals of tests/portal.rs: `/web/` signs in at the OIDC issuer `dev`, `/app/` at the
/// SAML IdP `adfs`.
fn two_portals(secure: bool) -> Builder {
    gateway()
        .public_host("localhost")
        .saml_sign_in()
        .oidc_client()
        .append(&SESSION.replace("secure = false", &format!("secure = {secure}")))
        .append(OIDC_ROUTE)
        .append(SAML_ROUTE)
}

/// What the echo upstream says it received, from the page Chromium ended on.
fn echoed(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| panic!("not the echo upstream: {text}"))
}

fn assert_signed_in_user(seen: &Value, path: &str) {
    assert_eq!(seen["path"], path, "{seen}");
    let h = &seen["headers"];
    assert_eq!(
        (h["x-auth-principal"].as_str(), h["x-auth-mfa"].as_str()),
        (Some("user"), Some("true")),
        "{seen}"
    );
    assert_eq!(h["x-auth-upn"], "adele@contoso.test");
    assert_eq!(h["x-auth-subject"], "00000000-0000-4000-8000-0000000b0001");
    assert_eq!(h["x-auth-tenant"], tenant());
    assert_eq!(h["cookie"], Value::Null, "the gateway's cookies stay with the gateway");
}

async fn sign_in_with_chromium(secure: bool) {
    let mut g = if secure { two_portals(true).tls() } else { two_portals(false) }.start().await;
    let base = g.base.clone();
    assert!(base.starts_with(if secure { "https://localhost:" } else { "http://localhost:" }), "{base}");
    let (cookies, trail, web, app) = tokio::task::spawn_blocking(move || {
        // The test certificate names localhost but is signed by certs/ca.pem, which this
        // profile does not trust.
        let mut chromium = Chromium::start(if secure { &["--ignore-certificate-errors"] } else { &[] });
        chromium.navigate(&format!("{base}/web/home?from=chromium"));
        let web = chromium.wait_for_page(&format!("{base}/web/home"));
        chromium.navigate(&format!("{base}/app/reports"));
        let app = chromium.wait_for_page(&format!("{base}/app/reports"));
        (chromium.cookies(), chromium.trail.clone(), web, app)
    })
    .await
    .unwrap();

    let web = echoed(&web.text);
    assert_signed_in_user(&web, "/web/home");
    assert_eq!(web["query"], "from=chromium", "back where the user started");
    assert_signed_in_user(&echoed(&app.text), "/app/reports");
    assert_eq!((g.idp.sign_ins(), g.idp.code_exchanges(), g.saml_idp.sign_ins()), (1, 1, 1));

    // The cookies as Chromium kept them: host-only, Path=/, HttpOnly, and in HTTPS mode
    // `__Host-` and Secure; the sign-in state is SameSite=None only where it may be (Secure).
    let prefix = if secure { "__Host-" } else { "" };
    let find = |name: &str| {
        let name = format!("{prefix}{name}");
        cookies
            .iter()
            .find(|c| c["name"] == name.as_str())
            .unwrap_or_else(|| panic!("no {name} in {cookies:#?}"))
    };
    for (name, same_site) in
        [("mfagate_session", "Lax"), ("mfagate_login", if secure { "None" } else { "Lax" })]
    {
        let c = find(name);
        assert_eq!(
            (&c["domain"], &c["path"], &c["httpOnly"], &c["secure"], &c["sameSite"]),
            (&json!("localhost"), &json!("/"), &json!(true), &json!(secure), &json!(same_site)),
            "{c}"
        );
    }
    assert_eq!(cookies.len(), 2, "{cookies:#?}");
    // Over plain HTTP the IdP's cross-site post arrives without the Lax state cookie, and the
    // ACS posts it again from its own page; over HTTPS the SameSite=None cookie comes along.
    let acs = format!("{}/saml/acs", g.base);
    let resubmitted = trail.iter().any(|(status, url)| *status == 200 && *url == acs);
    assert_eq!(resubmitted, !secure, "{trail:#?}");

    assert_eq!(g.echo.hits(), 2);
    let log = g.stop().await;
    let portal: Vec<(&str, &str, u64)> = log
        .iter()
        .filter(|r| r["channel"] == "portal")
        .map(|r| (r["path"].as_str().unwrap(), r["reason"].as_str().unwrap(), r["status"].as_u64().unwrap()))
        .collect();
    let mut want = vec![
        ("/web/home", "login_required", 302),
        ("/oidc/callback", "signed_in", 302),
        ("/web/home", "mfa_satisfied", 200),
        ("/app/reports", "session_idp_mismatch", 302),
    ];
    if !secure {
        want.push(("/saml/acs", "saml_response_resubmitted", 200));
    }
    want.extend([("/saml/acs", "signed_in", 302), ("/app/reports", "mfa_satisfied", 200)]);
    assert_eq!(portal, want);
    let signed_in: Vec<_> =
        log.iter().filter(|r| r["reason"] == "signed_in").map(|r| r["issuer"].clone()).collect();
    assert_eq!(signed_in, [json!("dev"), json!("adfs")]);
    for r in log.iter().filter(|r| r["reason"] == "mfa_satisfied") {
        assert_eq!((r["principal"].as_str(), r["mfa"].as_bool()), (Some("user"), Some(true)), "{r}");
        assert_eq!(r["upn"], "adele@contoso.test");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_signs_in_over_plain_http() {
    sign_in_with_chromium(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_signs_in_over_https() {
    sign_in_with_chromium(true).await;
}
