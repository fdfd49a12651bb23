//! Browser routes: SAML sign-in, the session, MFA re-prompts, the loop guard.

use crate::support::browser::Browser;
use crate::support::*;
use http::StatusCode;
use mfagate::dev::idp::DevMfa;

/// Browser sessions over plain HTTP (tests/chromium.rs also runs them with `secure = true`).
pub const SESSION: &str = r#"
[session]
keys = ["MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="]
secure = false
"#;

/// A portal at `/app/` signing in at the SAML IdP `adfs` (with `Builder::saml_sign_in`).
pub const SAML_ROUTE: &str = r#"
[[route]]
name = "portal"
path_prefix = "/app/"
upstream = "{echo}"
channel = "portal"
login = "adfs"
"#;

/// A portal at `/web/` signing in at the OIDC issuer `dev` (with `Builder::oidc_client`).
pub const OIDC_ROUTE: &str = r#"
[oidc]
callback_url = "{gw}/oidc/callback"

[[route]]
name = "oidc-portal"
path_prefix = "/web/"
upstream = "{echo}"
channel = "portal"
login = "dev"
"#;

async fn portal() -> Gateway {
    gateway().saml_sign_in().append(SESSION).append(SAML_ROUTE).start().await
}

#[tokio::test]
async fn sign_in_with_mfa_then_browse() {
    let mut g = portal().await;
    let mut b = Browser::new();
    let page = b.open(&format!("http://{}/app/reports?month=11", g.addr)).await;
    assert_eq!(page.status, StatusCode::OK, "{:?}", b.trail);
    let seen: serde_json::Value = serde_json::from_str(&page.body).unwrap();
    assert_eq!(seen["path"], "/app/reports");
    assert_eq!(seen["query"], "month=11", "back where the user started");
    assert_eq!(seen["headers"]["x-auth-principal"], "user");
    assert_eq!(seen["headers"]["x-auth-mfa"], "true");
    assert_eq!(seen["headers"]["x-auth-upn"], "adele@contoso.test");
    assert!(b.cookies.contains_key("mfagate_session"));
    assert_eq!(
        seen["headers"]["cookie"],
        serde_json::Value::Null,
        "the gateway's cookies stay with the gateway"
    );
    // The session carries on without the IdP.
    assert_eq!(b.open(&format!("http://{}/app/other", g.addr)).await.status, StatusCode::OK);
    assert_eq!(g.saml_idp.sign_ins(), 1);
    let log = g.stop().await;
    let rows: Vec<_> = log
        .iter()
        .map(|r| {
            (r["channel"].as_str().unwrap(), r["reason"].as_str().unwrap(), r["status"].as_u64().unwrap())
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("portal", "login_required", 302),
            ("portal", "signed_in", 302),
            ("portal", "mfa_satisfied", 200),
            ("portal", "mfa_satisfied", 200)
        ]
    );
    assert_eq!((log[2]["principal"].as_str(), log[2]["mfa"].as_bool()), (Some("user"), Some(true)));
}

#[tokio::test]
async fn a_user_without_mfa_is_sent_back_to_sign_in_with_mfa() {
    let mut g = portal().await;
    g.saml_idp.set_mfa(DevMfa::WhenAsked);
    let mut b = Browser::new();
    let page = b.open(&format!("http://{}/app/x", g.addr)).await;
    assert_eq!(page.status, StatusCode::OK, "{:?}", b.trail);
    assert_eq!(g.saml_idp.sign_ins(), 2, "first without MFA, then asked for it");
    let log = g.stop().await;
    let rows: Vec<_> = log.iter().map(|r| (r["reason"].as_str().unwrap(), r["mfa"].clone())).collect();
    assert_eq!(
        rows[2],
        ("session_without_mfa", serde_json::json!(false)),
        "counted as a non-MFA portal operation"
    );
    assert_eq!(rows.last().unwrap(), &("mfa_satisfied", serde_json::json!(true)));
}

#[tokio::test]
async fn the_loop_guard_stops_with_a_page_that_says_why() {
    let mut g = portal().await;
    g.saml_idp.set_mfa(DevMfa::Never);
    let mut b = Browser::new();
    let page = b.open(&format!("http://{}/app/x", g.addr)).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{:?}", b.trail);
    assert!(
        page.body.contains("claim <code>http://schemas.microsoft.com/claims/multipleauthn</code>")
            && page.body.contains("administrator"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("<code>amr</code>"), "{}", page.body);
    assert_eq!(g.saml_idp.sign_ins(), 3, "one sign-in, then two MFA re-prompts");
    assert_eq!(g.echo.hits(), 0);
    let log = g.stop().await;
    assert_eq!(log.last().unwrap()["reason"], "mfa_loop_guard");
}

#[tokio::test]
async fn scripts_get_401_and_forged_or_replayed_posts_are_refused() {
    let g = portal().await;
    let mut b = Browser::new();
    let r = b.fetch_json(&format!("http://{}/app/api/data", g.addr)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.headers.get("location").is_none());
    // A tampered session cookie is no session.
    b.cookies.insert("mfagate_session".into(), "AAAA".into());
    assert_eq!(
        b.fetch_json(&format!("http://{}/app/api/data", g.addr)).await.status,
        StatusCode::UNAUTHORIZED
    );
    b.cookies.clear();
    // The SP metadata names our entity id and ACS.
    let meta = b.fetch_json(&format!("http://{}/_mfagate/saml/metadata", g.addr)).await;
    assert!(
        meta.body.contains("entityID=\"https://gateway.contoso.test/saml\"")
            && meta.body.contains("/saml/acs"),
        "{}",
        meta.body
    );
    // An ACS post without our sign-in state (IdP-initiated or forged) is posted again from our
    // own origin, once (a browser withholds the state cookie from a cross-site post), then refused.
    let forged =
        b.post_form(&format!("http://{}/saml/acs", g.addr), "SAMLResponse=PHg%2B&RelayState=x".into()).await;
    assert_eq!(forged.status, StatusCode::OK);
    assert!(forged.body.contains(r#"name="mfagate_resubmitted""#), "{}", forged.body);
    assert!(forged.body.contains(r#"action="/saml/acs""#) && forged.body.contains(r#"value="PHg+""#));
    let refused = b.submit(&forged).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(refused.body.contains("sign_in_state_invalid"), "{}", refused.body);
    // A real post is accepted once; replayed under a fresh sign-in state it is refused.
    let acs = format!("http://{}/saml/acs", g.addr);
    let form = |response: &str, relay: &str| {
        form_urlencoded::Serializer::new(String::new())
            .append_pair("SAMLResponse", response)
            .append_pair("RelayState", relay)
            .finish()
    };
    let mut user = Browser::new();
    let to_idp = user.get(&format!("http://{}/app/x", g.addr)).await;
    let idp_page = user.get(to_idp.headers["location"].to_str().unwrap()).await;
    let (response, relay) = Browser::form_fields(&idp_page);
    assert_eq!(user.post_form(&acs, form(&response, &relay)).await.status, StatusCode::FOUND);
    let again = user.get(&format!("http://{}/app/y", g.addr)).await;
    assert_eq!(again.status, StatusCode::OK, "signed in");
    let mut attacker = Browser::new();
    let fresh = attacker.get(&format!("http://{}/app/z", g.addr)).await;
    let fresh_relay = form_urlencoded::parse(
        fresh.headers["location"].to_str().unwrap().split_once('?').unwrap().1.as_bytes(),
    )
    .find(|(k, _)| k == "RelayState")
    .map(|(_, v)| v.into_owned())
    .unwrap();
    let replay = attacker.post_form(&acs, form(&response, &fresh_relay)).await;
    assert_eq!(replay.status, StatusCode::FORBIDDEN);
    assert!(replay.body.contains("assertion_replayed"), "{}", replay.body);
}

async fn oidc_portal() -> Gateway {
    gateway().oidc_client().append(SESSION).append(OIDC_ROUTE).start().await
}

#[tokio::test]
async fn oidc_sign_in_with_pkce_then_browse() {
    let mut g = oidc_portal().await;
    let mut b = Browser::new();
    let page = b.open(&format!("http://{}/web/home", g.addr)).await;
    assert_eq!(page.status, StatusCode::OK, "{:?}", b.trail);
    let seen: serde_json::Value = serde_json::from_str(&page.body).unwrap();
    assert_eq!(
        (seen["path"].as_str(), seen["headers"]["x-auth-mfa"].as_str()),
        (Some("/web/home"), Some("true"))
    );
    assert_eq!(seen["headers"]["x-auth-principal"], "user");
    let authorize = &b.trail[1].1;
    for part in ["code_challenge_method=S256", "nonce=", "state=", "client_id=mfagate-web"] {
        assert!(authorize.contains(part), "{authorize}");
    }
    assert!(!authorize.contains("amr_values"), "the first sign-in does not force MFA");
    let log = g.stop().await;
    let rows: Vec<_> = log.iter().map(|r| r["reason"].as_str().unwrap().to_owned()).collect();
    assert_eq!(rows, ["login_required", "signed_in", "mfa_satisfied"]);
    assert_eq!(log[1]["issuer"], "dev");
}

#[tokio::test]
async fn oidc_reprompts_with_amr_values_and_the_loop_guard_holds() {
    let g = oidc_portal().await;
    g.idp.set_mfa(DevMfa::WhenAsked);
    let mut b = Browser::new();
    assert_eq!(b.open(&format!("http://{}/web/x", g.addr)).await.status, StatusCode::OK, "{:?}", b.trail);
    assert_eq!(g.idp.sign_ins(), 2);
    assert!(
        b.trail.iter().any(|(_, u)| u.contains("amr_values=mfa") && u.contains("prompt=login")),
        "{:?}",
        b.trail
    );

    g.idp.set_mfa(DevMfa::Never);
    let mut b = Browser::new();
    let page = b.open(&format!("http://{}/web/x", g.addr)).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert_eq!(g.idp.sign_ins(), 2 + 3);
    // Worded for an OIDC issuer: what its ID token must carry, not a SAML claim.
    assert!(
        page.body.contains("<code>amr</code> claim with <code>mfa</code> or <code>ngcmfa</code>"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("multipleauthn"), "{}", page.body);
}

#[tokio::test]
async fn oidc_callbacks_need_our_state_and_a_fresh_code() {
    let g = oidc_portal().await;
    let mut b = Browser::new();
    let to_idp = b.get(&format!("http://{}/web/x", g.addr)).await;
    let back = b.get(to_idp.headers["location"].to_str().unwrap()).await;
    let callback = back.headers["location"].to_str().unwrap().to_owned();
    let forged = callback.replace("state=", "state=forged");
    assert_eq!(b.get(&forged).await.status, StatusCode::FORBIDDEN);
    assert_eq!(b.get(&callback).await.status, StatusCode::FOUND);
    // The same callback again is refused: its sign-in state was used up (codes are single-use too).
    let again = b.get(&callback).await;
    assert_eq!(again.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn authn_requests_can_be_signed_and_the_metadata_says_so() {
    let g = gateway()
        .replace(
            "entity_id = \"https://gateway.contoso.test/saml\"",
            "entity_id = \"https://gateway.contoso.test/saml\"\nacs_url = \"{gw}/saml/acs\"\nsigning_key = \"{certs}/server.key\"\nsigning_certificate = \"{certs}/server.pem\"",
        )
        .replace("certificates = [\"{certs}/saml-idp.pem\"]", "certificates = [\"{certs}/saml-idp.pem\"]\nsso_url = \"{saml_sso}\"")
        .append(SESSION)
        .append(SAML_ROUTE)
        .start()
        .await;
    let mut b = Browser::new();
    let to_idp = b.get(&format!("http://{}/app/x", g.addr)).await;
    let location = to_idp.headers["location"].to_str().unwrap().to_owned();
    assert!(location.contains("&SigAlg=") && location.contains("&Signature="), "{location}");
    let path_and_query = format!("/{}", location.splitn(4, '/').nth(3).unwrap());
    let pem = std::fs::read_to_string(certs().join("server.pem")).unwrap();
    let verifier = samael::crypto::UrlVerifier::from_x509_cert_pem(&pem).unwrap();
    assert!(
        verifier.verify_percent_encoded_request_uri_string(&path_and_query).unwrap(),
        "signature verifies"
    );
    let tampered = path_and_query.replace("RelayState=", "RelayState=x");
    assert!(!verifier.verify_percent_encoded_request_uri_string(&tampered).unwrap_or(false));
    // The IdP still signs the user in.
    assert_eq!(b.open(&format!("http://{}/app/x", g.addr)).await.status, StatusCode::OK);
    let meta = b.fetch_json(&format!("http://{}/_mfagate/saml/metadata", g.addr)).await;
    assert!(meta.body.contains("AuthnRequestsSigned=\"true\"") && meta.body.contains("<ds:X509Certificate>"));
}

/// Both portals on one gateway: `/web/` signs in at the OIDC issuer `dev`, `/app/` at the SAML
/// IdP `adfs`.
async fn two_portals() -> Gateway {
    gateway().saml_sign_in().oidc_client().append(SESSION).append(OIDC_ROUTE).append(SAML_ROUTE).start().await
}

#[tokio::test]
async fn a_session_from_one_idp_does_not_open_a_route_of_another() {
    let mut g = two_portals().await;
    let mut b = Browser::new();
    let web = b.open(&format!("http://{}/web/home", g.addr)).await;
    assert_eq!(web.status, StatusCode::OK, "{:?}", b.trail);
    assert_eq!(g.idp.sign_ins(), 1);
    // The OIDC session is no session on the SAML route: sign in at its own IdP.
    let app = b.get(&format!("http://{}/app/x", g.addr)).await;
    assert_eq!(app.status, StatusCode::FOUND, "{}", app.body);
    let location = app.headers["location"].to_str().unwrap();
    assert!(location.starts_with(&g.saml_idp.sso_url()), "{location}");
    assert_eq!(b.fetch_json(&format!("http://{}/app/x", g.addr)).await.status, StatusCode::UNAUTHORIZED);
    let page = b.open(&format!("http://{}/app/x", g.addr)).await;
    assert_eq!(page.status, StatusCode::OK, "{:?}", b.trail);
    assert_eq!(g.saml_idp.sign_ins(), 1);
    let seen: serde_json::Value = serde_json::from_str(&page.body).unwrap();
    assert_eq!(seen["headers"]["x-auth-upn"], "adele@contoso.test");
    let log = g.stop().await;
    let rows: Vec<_> = log.iter().map(|r| (r["route"].clone(), r["reason"].as_str().unwrap())).collect();
    let (web, app, none) =
        (serde_json::json!("oidc-portal"), serde_json::json!("portal"), serde_json::Value::Null);
    assert_eq!(
        rows,
        [
            (web.clone(), "login_required"),
            (none.clone(), "signed_in"),
            (web, "mfa_satisfied"),
            (app.clone(), "session_idp_mismatch"),
            (app.clone(), "session_idp_mismatch"),
            (app.clone(), "session_idp_mismatch"),
            (none, "signed_in"),
            (app, "mfa_satisfied"),
        ]
    );
    assert_eq!(log[6]["issuer"], "adfs");
}

#[tokio::test]
async fn the_acs_takes_a_response_only_from_the_idp_the_sign_in_went_to() {
    // `partner` is sent the sign-in, but the Response that comes back is signed by `adfs` (a
    // trusted IdP too): it answers a request `adfs` never saw, and signs nobody in.
    let mut g = gateway()
        .saml_sign_in()
        .append(
            r#"
[[saml_idp]]
name = "partner"
entity_id = "https://idp.partner.test/saml"
# Spaced unlike adfs's line, which `saml_sign_in` edits.
certificates = [ "{certs}/saml-idp.pem" ]
sso_url = "{saml_sso}"

[session]
keys = ["MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="]
secure = false

[[route]]
name = "partner-portal"
path_prefix = "/partner/"
upstream = "{echo}"
channel = "portal"
login = "partner"
"#,
        )
        .start()
        .await;
    let mut b = Browser::new();
    let page = b.open(&format!("http://{}/partner/x", g.addr)).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{:?}", b.trail);
    assert!(page.body.contains("saml_idp_mismatch"), "{}", page.body);
    assert!(!b.cookies.contains_key("mfagate_session"));
    assert_eq!((g.saml_idp.sign_ins(), g.echo.hits()), (1, 0));
    let log = g.stop().await;
    let reasons: Vec<_> = log.iter().map(|r| r["reason"].as_str().unwrap()).collect();
    assert_eq!(reasons, ["login_required", "saml_idp_mismatch"]);
}

#[tokio::test]
async fn an_oidc_state_is_used_once_even_when_two_callbacks_race() {
    let mut g = oidc_portal().await;
    let mut b = Browser::new();
    let to_idp = b.get(&format!("http://{}/web/x", g.addr)).await;
    let back = b.get(to_idp.headers["location"].to_str().unwrap()).await;
    let callback = back.headers["location"].to_str().unwrap().to_owned();
    // The same callback with the same state cookie, twice at once, then once more.
    let jar: Vec<String> = b.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let request = || {
        let req = http::Request::get(&callback).header("cookie", jar.join("; ")).body(Default::default());
        Box::pin(g.send(req.unwrap()))
    };
    let answers = join_all(vec![request(), request()]).await;
    let mut statuses: Vec<u16> = answers.iter().map(|r| r.status.as_u16()).collect();
    statuses.sort_unstable();
    assert_eq!(statuses, [302, 403]);
    let refused = answers.iter().find(|r| r.status == StatusCode::FORBIDDEN).unwrap();
    assert!(refused.body.contains("sign_in_state_replayed"), "{}", refused.body);
    let again = request().await;
    assert_eq!(again.status, StatusCode::FORBIDDEN);
    assert!(again.body.contains("sign_in_state_replayed"), "{}", again.body);
    assert_eq!(g.idp.code_exchanges(), 1, "one state, one call to the token endpoint");
    let log = g.stop().await;
    let mut reasons: Vec<_> = log.iter().map(|r| r["reason"].as_str().unwrap()).collect();
    reasons[1..3].sort_unstable();
    assert_eq!(reasons, ["login_required", "sign_in_state_replayed", "signed_in", "sign_in_state_replayed"]);
}
