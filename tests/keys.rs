//! Key fetching: rotation, the unknown-kid burst, the key server down at start and mid-run,
//! discovery, and the verified-token cache.

use crate::support::*;
use http::StatusCode;
use mfagate::dev::idp::{DevKey, TokenRequest};
use std::time::Duration;

const PAST_REFETCH_LIMIT: Duration = Duration::from_secs(301);

fn metric(text: &str, line_start: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn rotation_refetches_once_the_rate_limit_allows() {
    let g = gateway().published(&["dev-rsa-a"]).start().await;
    // The IdP rotates: publishes b and signs with it, right after our fetch.
    g.idp.publish(&["dev-rsa-a", "dev-rsa-b"]);
    g.idp.sign_with("dev-rsa-b");
    let fetches = g.idp.jwks_fetches();
    let new = g.token(|_| {});
    // Within min_refetch_interval of the last fetch: no refetch, the kid stays unknown.
    let r = g.get("/v1/x", Some(&new)).await;
    assert_eq!((r.status, r.json()["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("unknown_kid")));
    assert_eq!(g.idp.jwks_fetches(), fetches);
    g.clock.advance(PAST_REFETCH_LIMIT);
    let new = g.token(|_| {});
    assert_eq!(g.get("/v1/x", Some(&new)).await.status, StatusCode::OK);
    assert_eq!(g.idp.jwks_fetches(), fetches + 1);

    // The old key is withdrawn: a new token signed with it fails after the next refetch.
    let old_cached = g.idp.sign_with_key("dev-rsa-a", &g.idp.claims(&TokenRequest::default())).unwrap();
    assert_eq!(g.get("/v1/x", Some(&old_cached)).await.status, StatusCode::OK);
    g.idp.publish(&["dev-rsa-b"]);
    g.clock.advance(PAST_REFETCH_LIMIT);
    // Force a refetch with an unknown kid, then the withdrawn key is gone.
    let unknown =
        DevKey::rsa("never-published", &std::fs::read(certs().join("dev-idp-rsa-a.key")).unwrap()).unwrap();
    let r = g.get("/v1/x", Some(&unknown.sign(&g.idp.claims(&TokenRequest::default())).unwrap())).await;
    assert_eq!(r.json()["error"], "unknown_kid");
    let old_fresh = g
        .idp
        .sign_with_key(
            "dev-rsa-a",
            &g.idp.claims(&TokenRequest { lifetime: 1800, ..TokenRequest::default() }),
        )
        .unwrap();
    assert_eq!(g.get("/v1/x", Some(&old_fresh)).await.json()["error"], "unknown_kid");
    // A token verified before the rotation goes with its key, cached or not...
    assert_eq!(g.get("/v1/x", Some(&old_cached)).await.json()["error"], "unknown_kid");
    // ...while one whose key stayed is still valid (the unchanged key kept its identity).
    assert_eq!(g.get("/v1/x", Some(&new)).await.status, StatusCode::OK);
    g.clock.advance(Duration::from_secs(3600));
    assert_eq!(g.get("/v1/x", Some(&new)).await.json()["error"], "token_expired");
}

#[tokio::test]
async fn a_burst_of_random_kids_causes_at_most_one_fetch() {
    let g = gateway().start().await;
    g.clock.advance(PAST_REFETCH_LIMIT);
    let pem = std::fs::read(certs().join("dev-idp-rsa-a.key")).unwrap();
    let claims = g.idp.claims(&TokenRequest::default());
    let tokens: Vec<String> =
        (0..64).map(|i| DevKey::rsa(&format!("random-{i}"), &pem).unwrap().sign(&claims).unwrap()).collect();
    let before = g.idp.jwks_fetches();
    let replies = join_all(tokens.iter().map(|t| Box::pin(g.get("/v1/x", Some(t)))).collect()).await;
    assert!(replies.iter().all(|r| r.json()["error"] == "unknown_kid"));
    assert_eq!(g.idp.jwks_fetches(), before + 1, "one single-flight refetch for the whole burst");
    let replies = join_all(tokens.iter().map(|t| Box::pin(g.get("/v1/x", Some(t)))).collect()).await;
    assert!(replies.iter().all(|r| r.status == StatusCode::UNAUTHORIZED));
    assert_eq!(g.idp.jwks_fetches(), before + 1, "rate limited");
    let metrics = g.admin_get("/metrics").await.body;
    assert!(metric(&metrics, "mfagate_jwks_fetch_total{issuer=\"dev\",result=\"rate_limited\"}") >= 64);
}

#[tokio::test]
async fn key_server_down_at_start_means_not_ready_and_503_until_it_answers() {
    let g = gateway().idp_down().start().await;
    let r = g.admin_get("/readyz").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.body.contains("waiting for issuer keys: dev"), "{}", r.body);
    let token = g.token(|_| {});
    let r = g.get("/v1/x", Some(&token)).await;
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("keys_unavailable"))
    );
    assert!(r.headers.contains_key("retry-after"));
    assert_eq!(g.echo.hits(), 0);
    g.idp.set_available(true);
    g.clock.advance(Duration::from_secs(2));
    assert_eq!(g.get("/v1/x", Some(&token)).await.status, StatusCode::OK);
    g.wait_ready().await;
}

#[tokio::test]
async fn key_server_down_mid_run_keeps_the_last_good_keys() {
    let g = gateway().start().await;
    g.idp.set_available(false);
    g.clock.advance(PAST_REFETCH_LIMIT);
    let pem = std::fs::read(certs().join("dev-idp-rsa-a.key")).unwrap();
    let stranger =
        DevKey::rsa("unknown", &pem).unwrap().sign(&g.idp.claims(&TokenRequest::default())).unwrap();
    let r = g.get("/v1/x", Some(&stranger)).await;
    assert_eq!(r.json()["error"], "unknown_kid", "a failed refetch is not an outage");
    assert_eq!(g.get("/v1/x", Some(&g.token(|_| {}))).await.status, StatusCode::OK);
    assert_eq!(g.admin_get("/readyz").await.status, StatusCode::OK);
    let metrics = g.admin_get("/metrics").await.body;
    assert!(metric(&metrics, "mfagate_jwks_fetch_total{issuer=\"dev\",result=\"failed\"}") >= 1);
}

#[tokio::test]
async fn discovery_finds_the_key_set() {
    let g = gateway()
        .replace(
            "jwks_uri = \"{idp}/keys\"\naudiences = [\"api://mfagate-demo\", ",
            "discovery = \"{idp}/.well-known/openid-configuration\"\naudiences = [\"api://mfagate-demo\", ",
        )
        .start()
        .await;
    assert_eq!(g.get("/v1/x", Some(&g.token(|_| {}))).await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_reused_token_is_verified_once() {
    let g = gateway().start().await;
    let token = g.token(|_| {});
    for _ in 0..3 {
        assert_eq!(g.get("/v1/x", Some(&token)).await.status, StatusCode::OK);
    }
    let m = g.admin_get("/metrics").await.body;
    assert_eq!(metric(&m, "mfagate_token_cache_total{result=\"miss\"}"), 1);
    assert_eq!(metric(&m, "mfagate_token_cache_total{result=\"hit\"}"), 2);
}
