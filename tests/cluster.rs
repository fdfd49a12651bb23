//! `[cluster]`: several instances on one Redis (a real `redis-server`), behaving as one. What was
//! used once is refused on every instance; what Redis's absence does under each `on_failure`.

use crate::support::browser::Browser;
use crate::support::redis::RedisServer;
use crate::support::*;
use http::StatusCode;
use mfagate::dev::saml_idp::AssertionSpec;

/// The fleet's public name: browsers reach every instance through it.
const FLEET: &str = "http://gateway.fleet.test";

pub fn spec() -> AssertionSpec {
    AssertionSpec::new(crate::saml::IDP, crate::saml::SP, T0)
}

pub fn signed(spec: &AssertionSpec) -> String {
    crate::saml::signer("saml-idp").sign(&spec.to_xml()).unwrap()
}

pub async fn saml_api(g: &Gateway, xml: &str) -> Reply {
    use base64::Engine;
    let value = format!("SAML {}", base64::engine::general_purpose::STANDARD.encode(xml));
    g.send(
        http::Request::get(format!("http://{}/v1/x", g.addr))
            .header("authorization", value)
            .body(Default::default())
            .unwrap(),
    )
    .await
}

/// Two instances of one configuration on `redis`.
pub async fn fleet(redis: &RedisServer, extra: &str, edit: fn(Builder) -> Builder) -> (Gateway, Gateway) {
    let a = edit(gateway().cluster(redis, extra)).start().await;
    let b = edit(gateway().cluster(redis, extra)).beside(&a).start().await;
    (a, b)
}

#[tokio::test]
async fn an_assertion_id_is_one_fact_for_the_whole_fleet() {
    let redis = RedisServer::start();
    let (mut a, mut b) = fleet(&redis, "", |g| g).await;
    let first = spec();
    let doc = signed(&first);
    assert_eq!(saml_api(&a, &doc).await.status, StatusCode::OK);
    // The same document on another instance: bearer reuse behind a load balancer.
    assert_eq!(saml_api(&b, &doc).await.status, StatusCode::OK);
    let checks = sample(&b, "mfagate_cluster_one_time_round_trips_total").await;
    assert_eq!(saml_api(&b, &doc).await.status, StatusCode::OK);
    assert_eq!(
        sample(&b, "mfagate_cluster_one_time_round_trips_total").await,
        checks,
        "a cached document needs no round trip"
    );
    // Its id in another document, validly signed: a replay on either instance.
    let mut other = first.clone();
    other.name_id = "admin@contoso.test".into();
    let other = signed(&other);
    for g in [&b, &a] {
        let r = saml_api(g, &other).await;
        assert_eq!(
            (r.status, r.json()["error"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("assertion_replayed"))
        );
    }
    // A one-time assertion: once in the fleet.
    let mut once = spec();
    once.id = "_one-time".into();
    let once = crate::saml::signer("saml-idp")
        .sign(&once.to_xml().replace("</saml:Conditions>", "<saml:OneTimeUse/></saml:Conditions>"))
        .unwrap();
    assert_eq!(saml_api(&a, &once).await.status, StatusCode::OK);
    let r = saml_api(&b, &once).await;
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("assertion_replayed"))
    );
    // Ids are hashed into the prefix's space; nothing else is written for them.
    assert_eq!(redis.key_count("test:once:saml:*"), 2);
    let (log_a, log_b) = (a.stop().await, b.stop().await);
    assert_eq!(log_a.len() + log_b.len(), 7);
}

#[tokio::test]
async fn a_saml_grant_used_on_one_instance_is_refused_on_another() {
    use base64::Engine;
    use mfagate::verify::grant::SAML2_BEARER;
    let redis = RedisServer::start();
    let (a, b) = fleet(&redis, "", |g| g).await;
    let mut grant = spec();
    grant.audience = "urn:federation:MicrosoftOnline".into();
    let assertion = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(signed(&grant));
    let form = form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", SAML2_BEARER)
        .append_pair("assertion", &assertion)
        .append_pair("client_id", "00000000-0000-4000-8000-0000000000aa")
        .finish();
    let post = |g: &Gateway| {
        http::Request::post(format!("http://{}/oauth2/token", g.addr))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(http_body_util::Full::new(bytes::Bytes::from(form.clone())))
            .unwrap()
    };
    assert_eq!(a.send(post(&a)).await.status, StatusCode::OK);
    let r = b.send(post(&b)).await;
    assert_eq!(
        (r.status, r.json()["error"].as_str(), r.json()["error_description"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"), Some("assertion_replayed"))
    );
}

#[tokio::test]
async fn an_acs_post_replayed_to_another_instance_is_refused() {
    let redis = RedisServer::start();
    let portal = |g: Builder| {
        g.saml_sign_in().public_base(FLEET).append(crate::portal::SESSION).append(crate::portal::SAML_ROUTE)
    };
    let (a, b) = fleet(&redis, "", portal).await;
    let mut browser = Browser::new();
    browser.via(FLEET, &format!("http://{}", a.addr));
    let to_idp = browser.get(&format!("{FLEET}/app/x")).await;
    let idp_page = browser.get(to_idp.headers["location"].to_str().unwrap()).await;
    // What an attacker copied: the IdP's form and the cookies that went with it.
    let copied = (idp_page.body.clone(), browser.cookies.clone());
    let signed_in = browser.open_page(idp_page).await;
    assert_eq!(signed_in.status, StatusCode::OK, "{:?}", browser.trail);
    let mut attacker = Browser::new();
    attacker.cookies = copied.1;
    attacker.via(FLEET, &format!("http://{}", b.addr));
    let page = mfagate_page(copied.0, &format!("{FLEET}/"));
    let replayed = attacker.submit(&page).await;
    assert_eq!(replayed.status, StatusCode::FORBIDDEN, "{}", replayed.body);
    assert!(replayed.body.contains("assertion_replayed"), "{}", replayed.body);
    assert!(!attacker.cookies.contains_key("mfagate_session"));
}

/// A page with `body`, as if served at `url`.
fn mfagate_page(body: String, url: &str) -> browser::Page {
    browser::Page { status: StatusCode::OK, headers: Default::default(), body, url: url.to_owned() }
}

#[tokio::test]
async fn an_oidc_callback_replayed_to_another_instance_is_refused() {
    let redis = RedisServer::start();
    let portal = |g: Builder| {
        g.oidc_client().public_base(FLEET).append(crate::portal::SESSION).append(crate::portal::OIDC_ROUTE)
    };
    let (a, b) = fleet(&redis, "", portal).await;
    let mut browser = Browser::new();
    browser.via(FLEET, &format!("http://{}", a.addr));
    let to_idp = browser.get(&format!("{FLEET}/web/x")).await;
    let back = browser.get(to_idp.headers["location"].to_str().unwrap()).await;
    let callback = back.headers["location"].to_str().unwrap().to_owned();
    let cookies = browser.cookies.clone();
    assert_eq!(browser.get(&callback).await.status, StatusCode::FOUND);
    let mut attacker = Browser::new();
    attacker.cookies = cookies;
    attacker.via(FLEET, &format!("http://{}", b.addr));
    let replayed = attacker.get(&callback).await;
    assert_eq!(replayed.status, StatusCode::FORBIDDEN, "{}", replayed.body);
    assert!(replayed.body.contains("sign_in_state_replayed"), "{}", replayed.body);
    assert_eq!(a.idp.code_exchanges(), 1, "one state, one call to the token endpoint, fleet-wide");
}

pub fn fresh_doc(n: u32) -> String {
    let mut s = spec();
    s.id = format!("_fresh-{n}");
    signed(&s)
}

#[tokio::test]
async fn closed_refuses_one_time_checks_while_redis_is_down_and_recovers_without_a_restart() {
    let mut redis = RedisServer::start();
    let (a, _b) = fleet(&redis, "timeout_ms = 300", |g| g).await;
    let token = a.token(|_| {});
    let cached = fresh_doc(0);
    assert_eq!(saml_api(&a, &cached).await.status, StatusCode::OK);
    redis.stop();
    let r = saml_api(&a, &fresh_doc(1)).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.body);
    assert_eq!(r.json()["error"], "one_time_check_unavailable");
    assert_eq!(r.headers["retry-after"], "5");
    // Everything that needs no one-time check goes on.
    assert_eq!(a.get("/v1/x", Some(&token)).await.status, StatusCode::OK);
    assert_eq!(saml_api(&a, &cached).await.status, StatusCode::OK, "a cached document needs no Redis");
    let ready = a.admin_get("/readyz").await;
    assert_eq!(ready.status, StatusCode::OK);
    assert!(ready.body.contains("redis: unreachable: one-time checks refused"), "{}", ready.body);
    assert_eq!(sample(&a, "mfagate_cluster_redis_up").await, 0.0);
    assert!(sample(&a, "mfagate_cluster_one_time_refused_total").await >= 1.0);
    redis.restart();
    let doc = fresh_doc(2);
    eventually("a first sight is accepted again", || async {
        saml_api(&a, &doc).await.status == StatusCode::OK
    })
    .await;
    eventually("readiness says so", || async {
        a.admin_get("/readyz").await.body.contains("redis: reachable")
    })
    .await;
    let log = read_log(&a.log_path());
    assert!(log.iter().any(|r| r["reason"] == "one_time_check_unavailable" && r["status"] == 503));
}

#[tokio::test]
async fn local_keeps_serving_from_memory_while_redis_is_down() {
    let mut redis = RedisServer::start();
    let (a, b) = fleet(&redis, "timeout_ms = 300\non_failure = \"local\"", |g| g).await;
    redis.stop();
    let doc = fresh_doc(1);
    assert_eq!(saml_api(&a, &doc).await.status, StatusCode::OK);
    // This instance still remembers what it accepted alone.
    let mut other = spec();
    other.id = "_fresh-1".into();
    other.name_id = "admin@contoso.test".into();
    let r = saml_api(&a, &signed(&other)).await;
    assert_eq!(r.json()["error"], "assertion_replayed");
    assert!(sample(&a, "mfagate_cluster_one_time_local_total").await >= 1.0);
    assert!(a.admin_get("/readyz").await.body.contains("one-time checks from local memory"));
    redis.restart();
    let doc = fresh_doc(2);
    eventually("first sights are shared again", || async {
        saml_api(&a, &doc).await.status == StatusCode::OK && redis.key_count("test:once:saml:*") == 1
    })
    .await;
    let r = saml_api(&b, &{
        let mut s = spec();
        s.id = "_fresh-2".into();
        s.name_id = "admin@contoso.test".into();
        signed(&s)
    })
    .await;
    assert_eq!(r.json()["error"], "assertion_replayed", "shared again after the outage");
}

#[tokio::test]
async fn a_silent_redis_costs_a_first_sight_the_timeout_not_a_hang() {
    let redis = RedisServer::start();
    let (a, _b) = fleet(&redis, "timeout_ms = 200", |g| g).await;
    assert_eq!(saml_api(&a, &fresh_doc(0)).await.status, StatusCode::OK);
    redis.freeze();
    let answer = tokio::time::timeout(std::time::Duration::from_secs(5), saml_api(&a, &fresh_doc(1))).await;
    redis.thaw();
    let r = answer.expect("answered within the bound, not hung");
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.body);
    let doc = fresh_doc(2);
    eventually("served again once Redis answers", || async {
        saml_api(&a, &doc).await.status == StatusCode::OK
    })
    .await;
}

/// The real binary, twice, on one Redis: an assertion id used on one process is a replay on the
/// other, and each says on /readyz that Redis is reachable.
#[tokio::test]
async fn two_gateway_processes_share_one_time_facts() {
    let redis = RedisServer::start();
    let with_cluster = |text: String| {
        text.replacen("[decision_log]", "[admin]\naddr = \"127.0.0.1:0\"\n\n[decision_log]", 1)
            + &format!("\n[cluster]\nredis = \"{}\"\nkey_prefix = \"bin:\"\n", redis.url())
    };
    let (one, two) = (crate::binary::fixture(with_cluster).await, crate::binary::fixture(with_cluster).await);
    let (mut a, mut b) = (crate::binary::start(&one.config, &[]), crate::binary::start(&two.config, &[]));
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let first = AssertionSpec::new(crate::saml::IDP, crate::saml::SP, now);
    let mut other = first.clone();
    other.name_id = "admin@contoso.test".into();
    let client =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
    let send = |addr: &str, xml: &str| {
        use base64::Engine;
        let req = http::Request::get(format!("http://{addr}/v1/x"))
            .header(
                "authorization",
                format!("SAML {}", base64::engine::general_purpose::STANDARD.encode(xml)),
            )
            .body(http_body_util::Full::<bytes::Bytes>::default())
            .unwrap();
        client.request(req)
    };
    assert_eq!(send(&a.addr, &signed(&first)).await.unwrap().status(), StatusCode::OK);
    assert_eq!(send(&b.addr, &signed(&other)).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    assert_eq!(redis.key_count("bin:once:saml:*"), 1);
    for running in [&a, &b] {
        let ready = readyz_text(&client, running.admin.as_deref().unwrap()).await;
        assert!(ready.contains("redis: reachable"), "{ready}");
    }
    for running in [&mut a, &mut b] {
        running.child.kill().unwrap();
        running.child.wait().unwrap();
    }
}

async fn readyz_text(
    client: &hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        http_body_util::Full<bytes::Bytes>,
    >,
    admin: &str,
) -> String {
    use http_body_util::BodyExt;
    let rsp = client
        .request(http::Request::get(format!("http://{admin}/readyz")).body(Default::default()).unwrap());
    let body = rsp.await.unwrap().into_body().collect().await.unwrap().to_bytes();
    String::from_utf8_lossy(&body).into_owned()
}
