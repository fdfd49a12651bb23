//! The hostile-input suite, for paths, hosts, methods and headers: each request goes over a raw
//! socket exactly as written, and each case checks the status, whether the upstream saw anything,
//! and the decision record.

use crate::support::*;
use mfagate::dev::idp::TokenRequest;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One HTTP/1.1 exchange on a fresh connection, bytes as given: (status, body).
pub async fn raw(addr: std::net::SocketAddr, head: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

pub(crate) fn get(path: &str, token: Option<&str>, extra: &str) -> String {
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    format!("GET {path} HTTP/1.1\r\nHost: gw.test\r\n{auth}{extra}Connection: close\r\n\r\n")
}

/// What a path spelling must come to.
enum Want {
    /// Decided under this route, on this canonical path.
    Route(&'static str, &'static str),
    /// Refused with 400 and this reason, before any credential is looked at.
    Refused(&'static str),
}

/// `{}` is the route prefix the spelling starts under (`public` or `v1`).
const TRAVERSALS: &[(&str, Want)] = &[
    ("/{}/../admin/users", Want::Route("admin", "/admin/users")),
    ("/{}/%2e%2e/admin/users", Want::Route("admin", "/admin/users")),
    ("/{}/.%2e/admin/users", Want::Route("admin", "/admin/users")),
    ("/{}/%2E./admin/users", Want::Route("admin", "/admin/users")),
    ("/{}//../admin/users", Want::Route("admin", "/admin/users")),
    ("/{}/./../admin/users", Want::Route("admin", "/admin/users")),
    ("/{}/..%2fadmin/users", Want::Refused("path_encoded_slash")),
    ("/{}/..\\admin/users", Want::Refused("path_backslash")),
    ("/{}/..%5Cadmin/users", Want::Refused("path_encoded_slash")),
    ("/{}/..;/admin/users", Want::Refused("path_parameter_dot_segment")),
    ("/{}/%252e%252e/admin/users", Want::Refused("path_double_encoded")),
    ("/{}/%2e%2e%00/admin/users", Want::Refused("path_control_byte")),
    ("/{}/%zz/../admin/users", Want::Refused("path_bad_escape")),
    ("/{}/x;a=1/../../admin/users", Want::Route("admin", "/admin/users")),
    ("/admin;x=1/users", Want::Refused("path_parameters")),
    ("/{}/../ADMIN/users", Want::Route("admin", "/ADMIN/users")),
    ("/{}/../admin.json", Want::Route("admin", "/admin.json")),
    ("/{}/../admin./users", Want::Refused("path_windows_alias")),
    ("/{}/%2561dmin/users", Want::Refused("path_double_encoded")),
    ("/{}/%c0%ae%c0%ae/admin/users", Want::Refused("path_invalid_utf8")),
    ("/{}/%ef%bc%8e%ef%bc%8e/admin/users", Want::Refused("path_lookalike_separator")),
    ("/admin%3F/users", Want::Refused("path_encoded_delimiter")),
    ("/admin", Want::Route("admin", "/admin")),
    ("/adminx/users", Want::Refused("no_route")),
];

/// What a traversal's record must say: (path sent, route, canonical path or "", reason).
pub type Expected = (String, Option<&'static str>, &'static str, &'static str);

/// Sends every traversal spelling under `/public/` without a token and under `/v1/` with an
/// App-only token, asserting the answers and that nothing reaches the upstream; returns what the
/// records must say, in order.
pub async fn send_traversals(
    addr: std::net::SocketAddr,
    echo: &mfagate::dev::echo::Echo,
    app_only: &str,
) -> Vec<Expected> {
    let mut expected = Vec::new();
    for (under, token, route_status, route_reason) in
        [("public", None, 401, "no_token"), ("v1", Some(app_only), 403, "app_only_denied")]
    {
        for (spelling, want) in TRAVERSALS {
            let path = spelling.replace("{}", under);
            let hits = echo.hits();
            let (status, body) = raw(addr, &get(&path, token, "")).await;
            assert_eq!(echo.hits(), hits, "{path}: nothing reaches the upstream");
            match want {
                Want::Route(route, canonical) => {
                    assert_eq!(status, route_status, "{path}: {body}");
                    expected.push((path, Some(*route), *canonical, route_reason));
                }
                Want::Refused(reason) => {
                    let want_status = if *reason == "no_route" { 404 } else { 400 };
                    assert_eq!(status, want_status, "{path}: {body}");
                    let body: Value = serde_json::from_str(&body).unwrap();
                    assert_eq!(body["error"], *reason, "{path}");
                    let route = (*reason == "path_parameters").then_some("admin");
                    expected.push((path, route, "", reason));
                }
            }
        }
    }
    expected
}

/// The records of [`send_traversals`]'s requests.
pub fn check_traversal_records(log: &[Value], expected: &[Expected]) {
    assert_eq!(log.len(), expected.len());
    for (rec, (path, route, canonical, reason)) in log.iter().zip(expected) {
        assert_eq!(rec["reason"], *reason, "{path}");
        assert_eq!(rec["route"].as_str(), *route, "{path}");
        if !canonical.is_empty() {
            assert_eq!(rec["path"], *canonical, "{path}: the record names the decided path");
        }
    }
}

#[tokio::test]
async fn traversal_spellings_are_decided_on_the_canonical_path() {
    let mut g = gateway().start().await;
    let app_only = g.token_for(&TokenRequest { app_only: true, ..TokenRequest::default() }, |_| {});
    let expected = send_traversals(g.addr, &g.echo, &app_only).await;
    check_traversal_records(&g.stop().await, &expected);
}

#[tokio::test]
async fn the_upstream_receives_the_path_that_was_decided() {
    let mut g = gateway().start().await;
    let (status, body) = raw(g.addr, &get("/public/a/./b//%7euser/../c%2d%41?q=%2e%2e/x", None, "")).await;
    assert_eq!(status, 200, "{body}");
    let seen: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(seen["path"], "/public/a/b/c-A");
    let log = g.stop().await;
    assert_eq!(
        (log[0]["path"].as_str(), log[0]["route"].as_str()),
        (Some("/public/a/b/c-A"), Some("public"))
    );
}

#[tokio::test]
async fn path_parameters_reach_only_routes_that_allow_them() {
    let mut g = gateway()
        .replace(
            "name = \"public\"\npath_prefix = \"/public/\"",
            "name = \"public\"\npath_prefix = \"/public/\"\nallow_path_parameters = true",
        )
        .start()
        .await;
    let (status, body) = raw(g.addr, &get("/public/a;jsessionid=1/b", None, "")).await;
    assert_eq!(status, 200, "{body}");
    let seen: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(seen["path"], "/public/a;jsessionid=1/b");
    // Matching drops the parameters, as Tomcat does, so `..;` cannot climb out of the route.
    let (status, _) = raw(g.addr, &get("/public/..;/admin/users", None, "")).await;
    assert_eq!(status, 400);
    let log = g.stop().await;
    assert_eq!(log[1]["reason"], "path_parameter_dot_segment");
}

#[tokio::test]
async fn case_insensitive_routes_for_windows_upstreams() {
    let mut g = gateway()
        .replace(
            "app_only = \"deny\"\nchallenge = \"rfc9470\"",
            "app_only = \"deny\"\ncase_sensitive = false\nchallenge = \"rfc9470\"",
        )
        .start()
        .await;
    for path in ["/ADMIN/users", "/Admin/users", "/public/../aDmIn/users", "/%41dmin/users"] {
        let (status, body) = raw(g.addr, &get(path, None, "")).await;
        assert_eq!(status, 401, "{path}: {body}");
    }
    let log = g.stop().await;
    assert!(log.iter().all(|r| r["route"] == "admin" && r["reason"] == "no_token"), "{log:?}");
}

#[tokio::test]
async fn one_host_per_request() {
    let mut g = gateway()
        .append("\n[[route]]\nname = \"hosted\"\npath_prefix = \"/public/\"\nhost = \"api.contoso.test\"\nupstream = \"{echo}\"\n")
        .start()
        .await;
    let cases = [
        // A trailing dot names the same host.
        ("GET /public/x HTTP/1.1\r\nHost: API.contoso.test.\r\nConnection: close\r\n\r\n", 401, "no_token"),
        ("GET /public/x HTTP/1.1\r\nHost: other.test\r\nConnection: close\r\n\r\n", 200, "public_route"),
        (
            "GET http://other.test/public/x HTTP/1.1\r\nHost: api.contoso.test\r\nConnection: close\r\n\r\n",
            400,
            "host_mismatch",
        ),
        (
            "GET http://api.contoso.test/public/x HTTP/1.1\r\nHost: other.test\r\nConnection: close\r\n\r\n",
            400,
            "host_mismatch",
        ),
        (
            "GET /public/x HTTP/1.1\r\nHost: other.test\r\nHost: api.contoso.test\r\nConnection: close\r\n\r\n",
            400,
            "host_invalid",
        ),
        (
            "GET /public/x HTTP/1.1\r\nHost: a@api.contoso.test\r\nConnection: close\r\n\r\n",
            400,
            "host_invalid",
        ),
    ];
    for (head, status, _) in &cases {
        let hits = g.echo.hits();
        let (got, body) = raw(g.addr, head).await;
        assert_eq!(got, *status, "{head:?}: {body}");
        assert_eq!(g.echo.hits() - hits, u64::from(*status == 200), "{head:?}");
    }
    let log = g.stop().await;
    let reasons: Vec<&str> = log.iter().filter_map(|r| r["reason"].as_str()).collect();
    assert_eq!(reasons, cases.iter().map(|c| c.2).collect::<Vec<_>>());
    assert_eq!(log[0]["route"], "hosted");
}

#[tokio::test]
async fn methods_are_matched_exactly() {
    let mut g = gateway()
        .append("\n[[route]]\nname = \"reads\"\npath_prefix = \"/public/ro/\"\nmethods = [\"GET\"]\nupstream = \"{echo}\"\n")
        .start()
        .await;
    let hits = g.echo.hits();
    let (status, body) =
        raw(g.addr, "get /public/x HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n").await;
    assert_eq!(status, 400, "{body}");
    let (status, _) =
        raw(g.addr, "Get /public/ro/x HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n").await;
    assert_eq!(status, 400);
    assert_eq!(g.echo.hits(), hits);
    // A method the route does not list falls to the next route, as configured.
    let (status, _) =
        raw(g.addr, "DELETE /public/ro/x HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n").await;
    assert_eq!(status, 200);
    let log = g.stop().await;
    assert_eq!(log[0]["reason"], "method_invalid");
    assert_eq!(log[1]["reason"], "method_invalid");
    assert_eq!((log[2]["route"].as_str(), log[2]["method"].as_str()), (Some("public"), Some("DELETE")));
}

/// Header names and values a client must not get past the gateway.
const SMUGGLED: &[&str] = &[
    "x_auth_upn: ceo@contoso.test",
    "X_Auth_Upn: ceo@contoso.test",
    "x-auth_upn: ceo@contoso.test",
    "x_auth_mfa: true",
    "x-auth-issuer: evil",
    "X-Original-URL: /admin/users",
    "X-Rewrite-URL: /admin/users",
    "X-HTTP-Method-Override: DELETE",
    "X-HTTP-Method: DELETE",
    "X-Method-Override: DELETE",
    "Forwarded: for=6.6.6.6;host=evil.test;proto=https",
    "X-Real-IP: 6.6.6.6",
    "X-Forwarded-Host: evil.test",
    "X-Forwarded-Port: 1",
    "X-Forwarded-Prefix: /admin",
    "X-Forwarded-Proto: https",
    "X-Forwarded-For: 6.6.6.6",
];

#[tokio::test]
async fn nothing_the_upstream_could_read_as_the_gateways_word() {
    let mut g = gateway().start().await;
    let no_mfa = g.token(|c| c["amr"] = serde_json::json!(["pwd"]));
    let extra: String = SMUGGLED.iter().map(|h| format!("{h}\r\n")).collect();
    for (path, token) in [("/optional/x", Some(no_mfa.as_str())), ("/public/x", None)] {
        let (status, body) = raw(g.addr, &get(path, token, &extra)).await;
        assert_eq!(status, 200, "{body}");
        let seen: Value = serde_json::from_str(&body).unwrap();
        let headers = seen["headers"].as_object().unwrap();
        for name in headers.keys() {
            assert!(!name.contains('_'), "{name} reached the upstream");
        }
        for gone in ["x-original-url", "x-rewrite-url", "x-http-method-override", "x-http-method"] {
            assert!(!headers.contains_key(gone), "{gone}");
        }
        for gone in ["x-method-override", "forwarded", "x-real-ip", "x-forwarded-port", "x-forwarded-prefix"]
        {
            assert!(!headers.contains_key(gone), "{gone}");
        }
        assert_eq!(headers["x-forwarded-host"], "gw.test");
        assert_eq!(headers["x-forwarded-proto"], "http");
        assert_eq!(headers["x-forwarded-for"], "127.0.0.1");
        assert_eq!(seen["method"], "GET");
        // Every identity header is the gateway's, empty where it has nothing to say.
        let user = token.is_some();
        assert_eq!(headers["x-auth-upn"], if user { "adele@contoso.test" } else { "" });
        assert_eq!(headers["x-auth-issuer"], if user { "dev" } else { "" });
        assert_eq!(headers["x-auth-mfa"], "false");
        for name in ["x-auth-principal", "x-auth-subject", "x-auth-tenant", "x-auth-app"] {
            assert!(headers.contains_key(name), "{name} is always sent");
        }
    }
    g.stop().await;
}

#[tokio::test]
async fn underscored_names_can_be_refused() {
    let mut g = gateway().listen("headers_with_underscores = \"refuse\"").start().await;
    let hits = g.echo.hits();
    let (status, body) = raw(g.addr, &get("/public/x", None, "x_auth_upn: ceo@contoso.test\r\n")).await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = raw(g.addr, &get("/public/x", None, "x-auth-upn: ceo@contoso.test\r\n")).await;
    assert_eq!(status, 200, "a dashed copy is stripped, not refused");
    assert_eq!(g.echo.hits(), hits + 1);
    let log = g.stop().await;
    assert_eq!(log[0]["reason"], "header_name_underscore");
}

#[tokio::test]
async fn only_websocket_upgrades_pass() {
    let mut g = gateway().start().await;
    let h2c = "Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n";
    let head = format!(
        "GET /public/x HTTP/1.1\r\nHost: gw.test\r\nConnection: Upgrade, HTTP2-Settings, close\r\n{h2c}\r\n"
    );
    let (status, body) = raw(g.addr, &head).await;
    assert_eq!(status, 200, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    let headers = body["headers"].as_object().unwrap();
    assert!(!headers.contains_key("upgrade") && !headers.contains_key("http2-settings"), "{headers:?}");
    g.stop().await;
}

#[tokio::test]
async fn the_right_most_forwarded_hop_across_lines() {
    let mut g = gateway().listen("trust_forwarded_for = true").start().await;
    let extra = "X-Forwarded-For: 6.6.6.6, 7.7.7.7\r\nX-Forwarded-For: 203.0.113.9\r\n";
    let (status, body) = raw(g.addr, &get("/public/x", None, extra)).await;
    assert_eq!(status, 200);
    let seen: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(seen["headers"]["x-forwarded-for"], "6.6.6.6, 7.7.7.7, 203.0.113.9, 127.0.0.1");
    let log = g.stop().await;
    assert_eq!(log[0]["source_ip"], "203.0.113.9");
}

#[tokio::test]
async fn a_client_cannot_make_two_records_share_an_id() {
    let mut g = gateway().start().await;
    for _ in 0..2 {
        raw(g.addr, &get("/public/x", None, "MS-RequestId: 0a0a0a0a-0000-4000-8000-000000000001\r\n")).await;
    }
    raw(g.addr, &get("/public/x", None, "")).await;
    let log = g.stop().await;
    assert_eq!(log[0]["request_id"], log[1]["request_id"], "the client's id is kept");
    let ours: std::collections::HashSet<&str> =
        log.iter().filter_map(|r| r["gateway_request_id"].as_str()).collect();
    assert_eq!(ours.len(), 3);
    assert_eq!(log[2]["request_id"], log[2]["gateway_request_id"]);
}

/// A key server that answers its first request with `jwks`, then accepts and never answers.
async fn stalling_key_server(
    jwks: String,
) -> (std::net::SocketAddr, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = std::sync::Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut s, _)) = listener.accept().await {
            if count.fetch_add(1, Ordering::SeqCst) == 0 {
                let mut buf = vec![0u8; 4096];
                let _ = s.read(&mut buf).await;
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    jwks.len()
                );
                let _ = s.write_all(format!("{head}{jwks}").as_bytes()).await;
            } else {
                held.push(s);
            }
        }
    });
    (addr, accepted)
}

#[tokio::test]
async fn a_client_that_leaves_during_a_key_fetch_still_gets_its_line() {
    use std::sync::atomic::Ordering;
    let probe = gateway().start().await;
    let keys = probe
        .send(http::Request::get(format!("{}/keys", probe.idp.base_url())).body(Default::default()).unwrap())
        .await;
    let mut jwks: Value = serde_json::from_str(&keys.body).unwrap();
    for key in jwks["keys"].as_array_mut().unwrap() {
        key["kid"] = Value::from(format!("old-{}", key["kid"].as_str().unwrap()));
    }
    let (key_server, accepted) = stalling_key_server(jwks.to_string()).await;
    let issuer = format!(
        "\n[[issuer]]\nname = \"stall\"\nissuer = \"https://stall.test/\"\njwks_uri = \"http://{key_server}/keys\"\naudiences = [\"api://mfagate-demo\"]\nmin_refetch_interval_secs = 0\n"
    );
    let mut g = gateway().append(&issuer).start().await;
    // Early fetches are at most one a second, even at min_refetch_interval_secs = 0.
    g.clock.advance(std::time::Duration::from_secs(2));
    let token = g.token(|c| c["iss"] = Value::from("https://stall.test/"));
    let req = g.request("/v1/x", Some(&token)).body(Default::default()).unwrap();
    let client = g.client.clone();
    let call = tokio::spawn(async move { client.request(req).await });
    // The unknown kid sends the gateway to the key server, which never answers.
    let bound = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while accepted.load(Ordering::SeqCst) < 2 {
        assert!(std::time::Instant::now() < bound, "no refetch");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    call.abort();
    let _ = call.await;
    let log = wait_for_log(&g.log_path()).await;
    assert_eq!((log[0]["status"].as_u64(), log[0]["route"].as_str()), (Some(499), Some("api")));
    assert_eq!(
        (log[0]["decision"].as_str(), log[0]["reason"].as_str()),
        (Some("deny"), Some("client_closed_request"))
    );
    assert_eq!(g.echo.hits(), 0);
    drop(probe);
    g.stop().await;
}

#[tokio::test]
async fn the_gateways_own_id_tokens_are_not_api_credentials() {
    let client = "name = \"dev\"\nclient_id = \"00000000-0000-4000-8000-0000000000aa\"\nclient_secret = \"s\"\nauthorization_endpoint = \"{idp}/authorize\"\ntoken_endpoint = \"{idp}/token\"\n";
    let mut g = gateway().replace("name = \"dev\"\n", client).start().await;
    // Audience = the client id (also an API audience here), user roles, and the sign-in nonce.
    let id_token = g.token(|c| {
        c["aud"] = Value::from("00000000-0000-4000-8000-0000000000aa");
        c["roles"] = serde_json::json!(["Reader"]);
        c.as_object_mut().unwrap().remove("scp");
        c["nonce"] = Value::from("n-123");
    });
    let (status, body) = raw(g.addr, &get("/v1/x", Some(&id_token), "")).await;
    assert_eq!(status, 401, "{body}");
    let access = g.token(|c| c["aud"] = Value::from("00000000-0000-4000-8000-0000000000aa"));
    assert_eq!(raw(g.addr, &get("/v1/x", Some(&access), "")).await.0, 200);
    let log = g.stop().await;
    assert_eq!(log[0]["reason"], "typ_not_allowed");
}
