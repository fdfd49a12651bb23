//! Review 9: the shared one-time state on Redis ([cluster]), attacked.

use crate::cluster::{fleet, fresh_doc, saml_api, signed, spec};
use crate::support::redis::RedisServer;
use crate::support::*;
use http::StatusCode;
use std::time::{Duration, Instant};

/// What a first sight costs while Redis is frozen, at most, over a few tries.
async fn slowest_first_sight(g: &Gateway, from: u32) -> Duration {
    let mut slowest = Duration::ZERO;
    for n in from..from + 3 {
        let started = Instant::now();
        let r = saml_api(g, &fresh_doc(n)).await;
        slowest = slowest.max(started.elapsed());
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.body);
    }
    slowest
}

/// The README: "A frozen Redis costs a request `timeout_ms`, not a hang". The bound is the
/// timeout plus the verification's own time (generous for a debug build on a busy machine).
#[tokio::test]
async fn a_frozen_redis_costs_a_first_sight_timeout_ms_on_a_live_connection() {
    let redis = RedisServer::start();
    let (a, _b) = fleet(&redis, "timeout_ms = 300", |g| g).await;
    assert_eq!(saml_api(&a, &fresh_doc(0)).await.status, StatusCode::OK);
    redis.freeze();
    let slowest = slowest_first_sight(&a, 1).await;
    redis.thaw();
    assert!(slowest < Duration::from_millis(300 + 250), "a first sight took {slowest:?}");
}

/// The same bound when the connection must be made again first (Redis restarted, then silent):
/// the reconnect's tries must not multiply the bound.
#[tokio::test]
async fn a_frozen_redis_costs_a_first_sight_timeout_ms_when_reconnecting() {
    let mut redis = RedisServer::start();
    let (a, _b) = fleet(&redis, "timeout_ms = 300", |g| g).await;
    assert_eq!(saml_api(&a, &fresh_doc(0)).await.status, StatusCode::OK);
    redis.restart();
    redis.freeze();
    let slowest = slowest_first_sight(&a, 1).await;
    redis.thaw();
    assert!(slowest < Duration::from_millis(300 + 250), "a first sight took {slowest:?}");
}

/// `?protocol=resp3` is a URL the client reads and the config takes: the check's script must
/// still be understood (in RESP3 a Lua `false` is a boolean, not a nil).
#[tokio::test]
async fn a_resp3_url_still_shares_one_time_checks() {
    let redis = RedisServer::start();
    let url = redis.url();
    let resp3 = format!("{url}?protocol=resp3");
    let a = gateway().cluster(&redis, "").replace(&url, &resp3).start().await;
    let b = gateway().cluster(&redis, "").replace(&url, &resp3).beside(&a).start().await;
    let doc = fresh_doc(1);
    let r = saml_api(&a, &doc).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(saml_api(&b, &doc).await.status, StatusCode::OK);
    let mut other = spec();
    other.id = "_fresh-1".into();
    other.name_id = "admin@contoso.test".into();
    assert_eq!(saml_api(&b, &signed(&other)).await.json()["error"], "assertion_replayed");
    assert_eq!(sample(&a, "mfagate_cluster_redis_failures_total").await, 0.0);
}

/// `rediss://` with `ca_file`: the fleet shares its checks over TLS, the server certificate
/// verified against the given roots.
#[tokio::test]
async fn rediss_with_ca_file_shares_one_time_checks() {
    let redis = RedisServer::start_tls();
    let tls = format!("ca_file = \"{}/ca.pem\"", certs().display());
    let over_tls = |g: Builder| g.replace(&redis.url(), &redis.tls_url());
    let a = over_tls(gateway().cluster(&redis, &tls)).start().await;
    let b = over_tls(gateway().cluster(&redis, &tls)).beside(&a).start().await;
    let doc = fresh_doc(1);
    let r = saml_api(&a, &doc).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let mut other = spec();
    other.id = "_fresh-1".into();
    other.name_id = "admin@contoso.test".into();
    assert_eq!(saml_api(&b, &signed(&other)).await.json()["error"], "assertion_replayed");
    assert_eq!(redis.key_count("test:once:saml:*"), 1);
}

/// Without `ca_file`, the system's roots: a server certificate they do not trust (the dev CA)
/// is refused, so one-time checks are refused too (closed), never sent to an unverified peer.
#[tokio::test]
async fn rediss_refuses_a_server_certificate_the_roots_do_not_trust() {
    let redis = RedisServer::start_tls();
    let a =
        gateway().cluster(&redis, "timeout_ms = 300").replace(&redis.url(), &redis.tls_url()).start().await;
    let r = saml_api(&a, &fresh_doc(1)).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.body);
    assert_eq!(r.json()["error"], "one_time_check_unavailable");
    assert_eq!(redis.key_count("test:once:*"), 0);
}

/// A reload cannot move the fleet's key space or drop `[cluster]`: the running connection and
/// prefix stay (an instance that forgot the fleet would accept what another already had).
#[tokio::test]
async fn a_reload_keeps_the_running_cluster() {
    let redis = RedisServer::start();
    let a = gateway().cluster(&redis, "").reloadable().start().await;
    assert!(a.reload(|c| c.replace("key_prefix = \"test:\"", "key_prefix = \"other:\"")).await);
    assert_eq!(saml_api(&a, &fresh_doc(1)).await.status, StatusCode::OK);
    assert_eq!((redis.key_count("test:once:*"), redis.key_count("other:*")), (1, 0));
    let without = a.reload(|c| {
        let at = c.find("\n[cluster]").unwrap();
        let end = c[at + 1..].find("\n[").map_or(c.len(), |e| at + 1 + e);
        format!("{}{}", &c[..at], &c[end..])
    });
    assert!(without.await, "a reload without [cluster] is applied, the cluster kept");
    assert_eq!(saml_api(&a, &fresh_doc(2)).await.status, StatusCode::OK);
    assert_eq!(redis.key_count("test:once:*"), 2);
}

/// A grant's assertion is accepted once in the fleet: used as a grant on one instance, the same
/// bytes are refused as an API credential on another (an assertion for both audiences).
#[tokio::test]
async fn a_grant_used_on_one_instance_is_not_then_an_api_credential_on_another() {
    use base64::Engine;
    use mfagate::verify::grant::SAML2_BEARER;
    let redis = RedisServer::start();
    let (a, b) = fleet(&redis, "", |g| g).await;
    let both = "<saml:Audience>urn:federation:MicrosoftOnline</saml:Audience>";
    let xml = spec().to_xml().replace(
        &format!("<saml:Audience>{}</saml:Audience>", crate::saml::SP),
        &format!("<saml:Audience>{}</saml:Audience>{both}", crate::saml::SP),
    );
    assert!(xml.contains(both));
    let doc = crate::saml::signer("saml-idp").sign(&xml).unwrap();
    let form = form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", SAML2_BEARER)
        .append_pair("assertion", &base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&doc))
        .append_pair("client_id", "00000000-0000-4000-8000-0000000000aa")
        .finish();
    let grant = a
        .send(
            http::Request::post(format!("http://{}/oauth2/token", a.addr))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(http_body_util::Full::new(bytes::Bytes::from(form)))
                .unwrap(),
        )
        .await;
    assert_eq!(grant.status, StatusCode::OK, "{}", grant.body);
    let r = saml_api(&b, &doc).await;
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("assertion_replayed")),
        "{}",
        r.body
    );
}

/// A 503 `one_time_check_unavailable` says "send it again shortly" (`Retry-After`). When the
/// check timed out after it was sent, Redis still runs it once it answers again, and the grant
/// the client sends again is then refused as a replay of itself. Fixed: each attempt stores a
/// value of its own, and a refused one-time attempt takes its key back once Redis answers.
#[tokio::test]
async fn a_grant_refused_with_503_while_redis_is_slow_can_be_sent_again() {
    use base64::Engine;
    use mfagate::verify::grant::SAML2_BEARER;
    let redis = RedisServer::start();
    let a = gateway().cluster(&redis, "timeout_ms = 300").start().await;
    assert_eq!(saml_api(&a, &fresh_doc(0)).await.status, StatusCode::OK);
    let mut grant = spec();
    grant.audience = "urn:federation:MicrosoftOnline".into();
    let form = form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", SAML2_BEARER)
        .append_pair("assertion", &base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(signed(&grant)))
        .append_pair("client_id", "00000000-0000-4000-8000-0000000000aa")
        .finish();
    let post = || {
        http::Request::post(format!("http://{}/oauth2/token", a.addr))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(http_body_util::Full::new(bytes::Bytes::from(form.clone())))
            .unwrap()
    };
    redis.freeze();
    let refused = a.send(post()).await;
    redis.thaw();
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE, "{}", refused.body);
    eventually("the retry is accepted once the key is taken back", || async {
        a.send(post()).await.status == StatusCode::OK
    })
    .await;
    // Accepted once: a further copy is a replay.
    let r = a.send(post()).await;
    assert_eq!(
        (r.status, r.json()["error_description"].as_str()),
        (StatusCode::BAD_REQUEST, Some("assertion_replayed"))
    );
}

/// A Redis that answers PING but refuses every check (out of memory under `noeviction`, the
/// shipped manifest's policy; or a read-only replica after a failover): /readyz and
/// `mfagate_cluster_redis_up` go back to "reachable" at the next PING while every first sight
/// is still refused. Fixed: the health probe is a write, refused as the checks are.
#[tokio::test]
async fn readyz_does_not_say_reachable_while_redis_refuses_every_check() {
    let redis = RedisServer::start();
    let a = gateway().cluster(&redis, "").start().await;
    assert_eq!(saml_api(&a, &fresh_doc(0)).await.status, StatusCode::OK);
    assert_eq!(redis.command(&["CONFIG", "SET", "maxmemory", "1"]).as_deref(), Some("+OK"));
    let r = saml_api(&a, &fresh_doc(1)).await;
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("one_time_check_unavailable"))
    );
    // Two probes later (they run every second while Redis looks down), readiness still says so.
    let trips = sample(&a, "mfagate_cluster_redis_round_trips_total").await;
    eventually("two probes ran", || async {
        sample(&a, "mfagate_cluster_redis_round_trips_total").await >= trips + 2.0
    })
    .await;
    let ready = a.admin_get("/readyz").await.body;
    let r = saml_api(&a, &fresh_doc(2)).await;
    assert!(
        !(ready.contains("redis: reachable") && r.status == StatusCode::SERVICE_UNAVAILABLE),
        "/readyz said {ready:?} while a first sight was refused"
    );
    assert_eq!(sample(&a, "mfagate_cluster_redis_up").await, 0.0);
    // Memory again: reachable, and first sights are shared again.
    assert_eq!(redis.command(&["CONFIG", "SET", "maxmemory", "0"]).as_deref(), Some("+OK"));
    let doc = fresh_doc(3);
    eventually("first sights accepted again", || async { saml_api(&a, &doc).await.status == StatusCode::OK })
        .await;
    eventually("and shown reachable", || async {
        a.admin_get("/readyz").await.body.contains("redis: reachable")
    })
    .await;
}
