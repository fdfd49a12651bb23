//! The development tools a partner points at the gateway: `token mint`, and the dev IdP
//! (`dev-idp`, the same servers as the harness's): its tokens, key rotation through the gateway's
//! key cache, SAML assertions with MFA in each location the gateway reads, metadata.

use crate::portal::{SAML_ROUTE, SESSION};
use crate::saml::SP;
use crate::support::browser::Browser;
use crate::support::*;
use http::{Method, Request, StatusCode};
use mfagate::clock::Clock;
use mfagate_policy::SamlLocation;
use std::process::{Command, Stdio};
use std::time::Duration;

const PAST_REFETCH_LIMIT: Duration = Duration::from_secs(301);

fn mfagate() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mfagate"))
}

/// A request to a URL outside the gateway (the dev IdP).
async fn call(g: &Gateway, method: Method, url: &str) -> Reply {
    g.send(Request::builder().method(method).uri(url).body(Default::default()).unwrap()).await
}

fn kid_of(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}

async fn jwks_kids(g: &Gateway, base: &str) -> Vec<String> {
    let set = call(g, Method::GET, &format!("{base}/keys")).await.json();
    set["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap().to_owned()).collect()
}

/// Moves the gateway's clock to the wall clock, for tokens made by another process.
fn to_wall_clock(g: &Gateway) {
    let now = mfagate::clock::SystemClock.unix().0;
    g.clock.advance(Duration::from_secs(now.saturating_sub(T0)));
}

#[tokio::test]
async fn token_mint_prints_one_token_the_gateway_decides_as_its_flags_say() {
    let g = gateway().start().await;
    to_wall_clock(&g);
    let v1 = format!("{}/{{tenantid}}/", g.idp.base_url());
    let v2 = format!("{}/{{tenantid}}/v2.0", g.idp.base_url());
    let ec = certs().join("dev-idp-ec.key");
    let mint = |args: &[&str]| {
        let out = mfagate().args(["token", "mint", "--certs"]).arg(certs()).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        let stdout = String::from_utf8(out.stdout).unwrap();
        let token = stdout.strip_suffix('\n').expect("one line");
        assert!(
            !token.contains('\n') && token.split('.').count() == 3,
            "{args:?}: only the token: {stdout:?}"
        );
        token.to_owned()
    };
    let mfa_required = "Bearer error=\"invalid_token\", error_description=\"MFA required\"";
    #[rustfmt::skip]
    let cases: [(&str, Vec<&str>, &str, u16, &str); 7] = [
        ("App+User with MFA", vec!["--iss", &v1, "--amr", "pwd,mfa"], "/v1/x", 200, ""),
        ("App+User without MFA", vec!["--iss", &v1, "--amr", "pwd"], "/v1/x", 401, mfa_required),
        ("App+User, no amr", vec!["--iss", &v1, "--amr", "none"], "/v1/x", 401, mfa_required),
        ("App-only, a route that takes it", vec!["--iss", &v1, "--kind", "app-only"], "/v1/x", 200, ""),
        ("App-only, a route that refuses it", vec!["--iss", &v1, "--kind", "app-only"], "/admin/x", 403, "insufficient_scope"),
        ("v2 without amr (Entra's shape)", vec!["--iss", &v2, "--ver", "2"], "/v1/x", 401, mfa_required),
        ("v2 with amr, an EC key", vec!["--iss", &v2, "--ver", "2", "--amr", "pwd,mfa", "--key", ec.to_str().unwrap(), "--kid", "dev-ec"], "/v1/x", 401, "The token algorithm is not allowed"),
    ];
    for (name, args, path, status, www) in &cases {
        let r = g.get(path, Some(&mint(args))).await;
        assert_eq!(r.status.as_u16(), *status, "{name}: {}", r.body);
        assert!(r.www().contains(www), "{name}: {}", r.www());
        if *status == 200 {
            let principal = if args.contains(&"app-only") { "app_only" } else { "app_user" };
            assert_eq!(r.upstream_header("x-auth-principal").as_deref(), Some(principal), "{name}");
        }
    }
    // The v2 issuer takes RS256 only (the EC case above): the same token with the RSA key passes.
    let r = g.get("/v1/x", Some(&mint(&["--iss", &v2, "--ver", "2", "--amr", "pwd,mfa"]))).await;
    assert_eq!((r.status, r.upstream_header("x-auth-mfa").as_deref()), (StatusCode::OK, Some("true")));
    // The EC key where the issuer takes ES256.
    let r =
        g.get("/v1/x", Some(&mint(&["--iss", &v1, "--key", ec.to_str().unwrap(), "--kid", "dev-ec"]))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // Without --iss it is Entra's issuer, which this gateway does not trust.
    let entra = mint(&[]);
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            entra.split('.').nth(1).unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["iss"], format!("https://sts.windows.net/{}/", tenant()));
    assert_eq!(g.get("/v1/x", Some(&entra)).await.json()["error"], "unknown_issuer");

    // A token that cannot be: nothing on stdout, why on stderr, the usage exit code.
    let out =
        mfagate().args(["token", "mint", "--kind", "app-only", "--upn", "x@contoso.test"]).output().unwrap();
    assert_eq!((out.status.code(), out.stdout.len()), (Some(3), 0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("App-only token has no user"));
    let out = mfagate().args(["token", "mint", "--key", "/nonexistent.pem"]).output().unwrap();
    assert_eq!((out.status.code(), out.stdout.len()), (Some(3), 0));
}

/// `token mint --count N`: N distinct tokens (a load run's pool), each one a first sight for the
/// gateway and each accepted.
#[tokio::test]
async fn token_mint_count_prints_distinct_tokens_each_accepted() {
    let g = gateway().start().await;
    to_wall_clock(&g);
    let iss = format!("{}/{{tenantid}}/", g.idp.base_url());
    let out = mfagate()
        .args(["token", "mint", "--certs"])
        .arg(certs())
        .args(["--iss", &iss, "--count", "5"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let tokens: Vec<&str> = stdout.lines().collect();
    assert_eq!(tokens.len(), 5, "{stdout}");
    let distinct: std::collections::HashSet<&&str> = tokens.iter().collect();
    assert_eq!(distinct.len(), 5, "each token is its own");
    for token in &tokens {
        assert_eq!(g.get("/v1/x", Some(token)).await.status, StatusCode::OK);
    }
    let out = mfagate().args(["token", "mint", "--count", "0"]).output().unwrap();
    assert_eq!((out.status.code(), out.stdout.len()), (Some(3), 0), "a count of 0 is a usage error");
}

/// `token saml --count N`: N distinct signed bearer assertions; with MFA each passes, without
/// MFA each is refused as MFA required.
#[tokio::test]
async fn token_saml_prints_assertions_the_gateway_decides_as_their_flags_say() {
    let g = gateway().start().await;
    to_wall_clock(&g);
    let saml = |args: &[&str]| {
        let out = mfagate()
            .args(["token", "saml", "--certs"])
            .arg(certs())
            .args(["--issuer", "https://idp.contoso.test/adfs/services/trust"])
            .args(["--audience", "https://gateway.contoso.test/saml"])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().lines().map(str::to_owned).collect::<Vec<_>>()
    };
    let request = |g: &Gateway, assertion: &str| {
        http::Request::get(format!("http://{}/v1/x", g.addr))
            .header("authorization", format!("SAML {assertion}"))
            .body(Default::default())
            .unwrap()
    };
    let pool = saml(&["--count", "3"]);
    assert_eq!(pool.iter().collect::<std::collections::HashSet<_>>().len(), 3, "{pool:?}");
    for (version, mfa, status) in [("2.0", "true", 200), ("1.1", "true", 200), ("2.0", "false", 401)] {
        let one = saml(&["--version", version, "--mfa", mfa]);
        assert_eq!(one.len(), 1);
        let r = g.send(request(&g, &one[0])).await;
        assert_eq!(r.status.as_u16(), status, "{version} mfa={mfa}: {}", r.body);
    }
    for assertion in &pool {
        assert_eq!(g.send(request(&g, assertion)).await.status, StatusCode::OK);
    }
}

/// `POST /rotate` on the dev IdP, with the gateway's key cache between: the new kid is picked
/// up, the old one keeps verifying until its removal, and is refused once the gateway refetches
/// after it. Both clocks are the harness's ManualClock.
#[tokio::test]
async fn rotation_at_the_dev_idp_through_the_gateways_key_cache() {
    let g = gateway().published(&["dev-rsa-a"]).start().await;
    let idp = g.idp.base_url().to_owned();
    let old = g.token(|_| {});
    assert_eq!(g.get("/v1/x", Some(&old)).await.status, StatusCode::OK);

    let rotation = call(&g, Method::POST, &format!("{idp}/rotate?remove_after=600")).await;
    assert_eq!(rotation.status, StatusCode::OK, "{}", rotation.body);
    let rotation = rotation.json();
    let new_kid = rotation["kid"].as_str().unwrap().to_owned();
    assert_eq!(
        (rotation["retiring"].as_str(), rotation["removed_at"].as_u64()),
        (Some("dev-rsa-a"), Some(T0 + 600))
    );
    assert_eq!(jwks_kids(&g, &idp).await, ["dev-rsa-a".to_owned(), new_kid.clone()]);
    let minted = call(&g, Method::GET, &format!("{idp}/token?amr=pwd,mfa")).await.json();
    let new = minted["access_token"].as_str().unwrap().to_owned();
    assert_eq!(kid_of(&new), new_kid, "the new key signs at once");

    // Right after the gateway's start-up fetch the unknown kid is not fetched yet (rate limit)...
    assert_eq!(g.get("/v1/x", Some(&new)).await.json()["error"], "unknown_kid");
    g.clock.advance(PAST_REFETCH_LIMIT);
    // ...and is picked up once it may be; the old kid still verifies: it is still published.
    assert_eq!(g.get("/v1/x", Some(&new)).await.status, StatusCode::OK);
    assert_eq!(g.get("/v1/x", Some(&old)).await.status, StatusCode::OK);

    // Past the removal delay the JWKS no longer lists it; the gateway learns so at its next fetch,
    // here for the kid of a second rotation.
    g.clock.advance(Duration::from_secs(600) - PAST_REFETCH_LIMIT + Duration::from_secs(1));
    assert_eq!(jwks_kids(&g, &idp).await, std::slice::from_ref(&new_kid));
    let second = call(&g, Method::POST, &format!("{idp}/rotate?remove_after=3600&alg=ES256")).await.json();
    assert_eq!(second["alg"], "ES256");
    let newest = call(&g, Method::GET, &format!("{idp}/token")).await.json()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(g.get("/v1/x", Some(&newest)).await.status, StatusCode::OK, "second rotation picked up");
    assert_eq!(g.get("/v1/x", Some(&old)).await.json()["error"], "unknown_kid", "removed: refused");
    let fresh_old = g.idp.sign_with_key("dev-rsa-a", &g.idp.claims(&Default::default())).unwrap();
    assert_eq!(g.get("/v1/x", Some(&fresh_old)).await.json()["error"], "unknown_kid");
    assert_eq!(
        g.get("/v1/x", Some(&new)).await.status,
        StatusCode::OK,
        "the first new key stays until its own removal"
    );

    for bad in ["remove_after=soon", "alg=HS256"] {
        let r = call(&g, Method::POST, &format!("{idp}/rotate?{bad}")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
    }
    assert_eq!(
        call(&g, Method::GET, &format!("{idp}/rotate")).await.status,
        StatusCode::NOT_FOUND,
        "POST only"
    );
}

/// For each location the gateway can read (`mfa_locations`, one at a time), an assertion from the
/// dev IdP's bearer endpoint proves MFA exactly when its `location` is that one.
#[tokio::test]
async fn saml_assertions_carry_mfa_in_the_location_asked_for() {
    let assertions: Vec<(&str, SamlLocation)> = vec![
        ("2.0", SamlLocation::AuthnContext),
        ("2.0", SamlLocation::AuthenticationMethodAttribute),
        ("2.0", SamlLocation::AuthnMethodsReferences),
        ("1.1", SamlLocation::AuthenticationMethod),
        ("1.1", SamlLocation::AuthenticationMethodAttribute),
        ("1.1", SamlLocation::AuthnMethodsReferences),
    ];
    for read in SamlLocation::ALL {
        let g = gateway()
            .replace(
                "certificates = [\"{certs}/saml-idp.pem\"]",
                &format!(
                    "certificates = [\"{{certs}}/saml-idp.pem\"]\nmfa_locations = [\"{}\"]",
                    read.name()
                ),
            )
            .start()
            .await;
        for (version, location) in &assertions {
            for mfa in [true, false] {
                let query = format!("&version={version}&location={}&mfa={mfa}", location.name());
                let minted = call(&g, Method::GET, &format!("{}{query}", g.saml_idp.assertion_url(SP))).await;
                assert_eq!(minted.status, StatusCode::OK, "{query}: {}", minted.body);
                let req = Request::get(format!("http://{}/v1/x", g.addr))
                    .header("authorization", format!("SAML {}", minted.body))
                    .body(Default::default())
                    .unwrap();
                let r = g.send(req).await;
                let proven = mfa && *location == read;
                let want = if proven { (200, None) } else { (401, Some("saml_mfa_missing")) };
                assert_eq!(
                    (r.status.as_u16(), r.json()["error"].as_str()),
                    want,
                    "reading {}: {query}",
                    read.name()
                );
            }
        }
    }
    let g = gateway().start().await;
    for wrong in [
        "&version=2.0&location=authentication_method",
        "&version=1.1&location=authn_context",
        "&location=amr",
        "&mfa=yes",
    ] {
        let r = call(&g, Method::GET, &format!("{}{wrong}", g.saml_idp.assertion_url(SP))).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{wrong}");
    }
}

/// Browser sign-in: the SSO Response carries MFA where the IdP is set to put it, or where the SSO
/// URL's `location` says; a gateway reading elsewhere sees no MFA and stops at the loop guard.
#[tokio::test]
async fn sso_posts_mfa_in_the_location_chosen() {
    let portal = |sso_query: &'static str| {
        gateway()
            .saml_sign_in()
            .replace("sso_url = \"{saml_sso}\"", &format!("sso_url = \"{{saml_sso}}{sso_query}\""))
            .replace(
                "certificates = [\"{certs}/saml-idp.pem\"]",
                "certificates = [\"{certs}/saml-idp.pem\"]\nmfa_locations = [\"authnmethodsreferences\"]",
            )
            .append(SESSION)
            .append(SAML_ROUTE)
            .start()
    };
    let g = portal("").await;
    let open = || async { Browser::new().open(&format!("http://{}/app/x", g.addr)).await.status };
    assert_eq!(open().await, StatusCode::FORBIDDEN, "MFA in authn_context, which this gateway does not read");
    g.saml_idp.set_mfa_location(SamlLocation::AuthnMethodsReferences);
    assert_eq!(open().await, StatusCode::OK);

    let g = portal("?location=authnmethodsreferences").await;
    let page = Browser::new().open(&format!("http://{}/app/x", g.addr)).await;
    assert_eq!(page.status, StatusCode::OK, "the SSO URL's location");
    let g = portal("?location=authnmethodsreferences&mfa=false").await;
    let page = Browser::new().open(&format!("http://{}/app/x", g.addr)).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "the SSO URL's mfa=false");
}

/// `mfagate dev-idp` on its own, through a running gateway: its discovery and JWKS configure the
/// issuer, its tokens are decided as asked, a rotation with no delay swaps the keys at the
/// gateway's next fetch, and its SAML metadata configures a trusted IdP whose assertions verify.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_idp_serves_a_gateway_on_its_own() {
    let mut child = mfagate()
        .args(["dev-idp", "--addr", "127.0.0.1:0", "--saml-addr", "127.0.0.1:0", "--certs"])
        .arg(certs())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let rx = lines_of(child.stdout.take().unwrap());
    let mut banner = Vec::new();
    while !banner.last().is_some_and(|l: &String| l.starts_with("Press Ctrl-C")) {
        banner.push(rx.recv_timeout(Duration::from_secs(30)).expect("dev-idp starts and prints its banner"));
    }
    let after = |prefix: &str| {
        let line =
            banner.iter().find(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("{prefix}: {banner:?}"));
        line[prefix.len()..].split([' ', ',']).next().unwrap().to_owned()
    };
    let (idp, saml) = (after("OpenID provider "), after("SAML identity provider "));
    assert!(banner[0].contains("DEVELOPMENT ONLY"), "{}", banner[0]);
    assert!(banner.iter().any(|l| l.contains(&format!("curl -s -X POST '{idp}/rotate"))), "{banner:?}");

    let dir = tempfile::tempdir().unwrap();
    let metadata = dir.path().join("dev-idp.xml");
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let get = |url: String| {
        let client = client.clone();
        async move {
            let rsp = client.request(Request::get(url).body(Default::default()).unwrap()).await.unwrap();
            let body = http_body_util::BodyExt::collect(rsp.into_body()).await.unwrap().to_bytes();
            String::from_utf8(body.to_vec()).unwrap()
        }
    };
    std::fs::write(&metadata, get(format!("{saml}/metadata")).await).unwrap();
    let g = gateway()
        .replace("\"{idp}/", &format!("\"{idp}/"))
        .replace(
            "entity_id = \"https://idp.contoso.test/adfs/services/trust\"\ncertificates = [\"{certs}/saml-idp.pem\"]",
            &format!("metadata = \"{}\"", metadata.display()),
        )
        .start()
        .await;
    to_wall_clock(&g);
    let token = |query: &'static str| {
        let idp = idp.clone();
        async move {
            let minted: serde_json::Value =
                serde_json::from_str(&get(format!("{idp}/token?{query}")).await).unwrap();
            minted["access_token"].as_str().unwrap().to_owned()
        }
    };
    let mfa = token("amr=pwd,mfa").await;
    assert_eq!(g.get("/v1/x", Some(&mfa)).await.status, StatusCode::OK);
    assert_eq!(g.get("/v1/x", Some(&token("amr=pwd").await)).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(g.get("/admin/x", Some(&token("kind=app-only").await)).await.status, StatusCode::FORBIDDEN);
    assert_eq!(g.get("/v1/x", Some(&token("kind=app-only&ver=2").await)).await.status, StatusCode::OK);

    let rotated = call(&g, Method::POST, &format!("{idp}/rotate?remove_after=0")).await.json();
    assert_eq!(rotated["retiring"], "dev-rsa-a");
    let new = token("amr=pwd,mfa").await;
    assert_eq!(kid_of(&new), rotated["kid"].as_str().unwrap());
    assert_eq!(g.get("/v1/x", Some(&new)).await.status, StatusCode::OK, "new kid picked up");
    assert_eq!(
        g.get("/v1/x", Some(&mfa)).await.json()["error"],
        "unknown_kid",
        "old kid gone with that fetch"
    );

    for (query, want) in
        [("&location=authnmethodsreferences", 200), ("&mfa=false", 401), ("&version=1.1", 200)]
    {
        let b64 = get(format!("{saml}/assertion?audience={SP}{query}")).await;
        let req = Request::get(format!("http://{}/v1/x", g.addr))
            .header("authorization", format!("SAML {b64}"))
            .body(Default::default())
            .unwrap();
        assert_eq!(g.send(req).await.status.as_u16(), want, "{query}");
    }

    assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
    assert!(child.wait().unwrap().success(), "dev-idp stops cleanly on SIGTERM");
}
