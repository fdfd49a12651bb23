//! Proxy behaviour: identity headers and anti-spoofing, report-only, header hygiene, limits,
//! upstream failures, WebSocket upgrades, TLS with HTTP/2.

use crate::support::*;
use bytes::Bytes;
use http::StatusCode;
use http_body_util::Full;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn identity_headers_cannot_be_spoofed() {
    let mut g = gateway().start().await;
    let no_mfa = g.token(|c| c["amr"] = json!(["pwd"]));
    let spoof = |path: &str, token: Option<&str>| {
        g.request(path, token)
            .header("x-auth-mfa", "true")
            .header("x-auth-principal", "app_user")
            .header("x-auth-subject", "evil")
            .header("x-auth-anything", "evil")
            .header("x-forwarded-for", "6.6.6.6")
            .body(Full::<Bytes>::default())
            .unwrap()
    };
    let r = g.send(spoof("/optional/x", Some(&no_mfa))).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.upstream_header("x-auth-mfa").as_deref(), Some("false"));
    assert_eq!(r.upstream_header("x-auth-principal").as_deref(), Some("app_user"));
    assert_eq!(r.upstream_header("x-auth-subject").as_deref(), Some("00000000-0000-4000-8000-0000000b0001"));
    assert_eq!(r.upstream_header("x-auth-tenant").as_deref(), Some(tenant()));
    assert_eq!(r.upstream_header("x-auth-upn").as_deref(), Some("adele@contoso.test"));
    assert_eq!(r.upstream_header("x-auth-app").as_deref(), Some(mfagate::dev::idp::DEV_APP_ID));
    assert_eq!(r.upstream_header("x-auth-anything"), None);
    assert_eq!(
        r.upstream_header("x-forwarded-for").as_deref(),
        Some("127.0.0.1"),
        "untrusted XFF is replaced"
    );
    assert_eq!(r.upstream_header("x-forwarded-proto").as_deref(), Some("http"));
    assert!(r.upstream_header("x-forwarded-host").is_some());

    let r = g.send(spoof("/public/x", None)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.upstream_header("x-auth-principal").as_deref(), Some("anonymous"));
    assert_eq!(r.upstream_header("x-auth-mfa").as_deref(), Some("false"));
    assert_eq!(r.upstream_header("x-auth-subject").as_deref(), Some(""), "sent empty, never the client's");
    let log = g.stop().await;
    assert_eq!((log[0]["reason"].as_str(), log[0]["mfa"].as_bool()), (Some("mfa_not_required"), Some(false)));
    assert_eq!(
        (log[1]["reason"].as_str(), log[1]["principal"].as_str()),
        (Some("public_route"), Some("anonymous"))
    );
}

#[tokio::test]
async fn report_only_decides_and_logs_but_forwards() {
    let mut g = gateway().start().await;
    let no_mfa = g.token(|c| c["amr"] = json!(["pwd"]));
    let r = g.get("/report/x", Some(&no_mfa)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.upstream_header("x-auth-mfa").as_deref(), Some("false"));
    assert_eq!(g.get("/report/x", None).await.status, StatusCode::OK);
    assert_eq!(g.get("/report/x", Some(&g.token(|_| {}))).await.status, StatusCode::OK);
    let log = g.stop().await;
    let seen: Vec<_> = log
        .iter()
        .map(|r| {
            (
                r["decision"].as_str().unwrap(),
                r["enforced"].as_bool().unwrap(),
                r["reason"].as_str().unwrap(),
                r["status"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            ("challenge", false, "mfa_missing", 200),
            ("deny", false, "no_token", 200),
            ("allow", false, "mfa_satisfied", 200)
        ]
    );
}

#[tokio::test]
async fn authorization_is_forwarded_unless_stripped_and_ids_are_logged() {
    let mut g = gateway().start().await;
    let t = g.token(|_| {});
    assert!(g.get("/v1/x", Some(&t)).await.upstream_header("authorization").is_some());
    assert_eq!(g.get("/strip/x", Some(&t)).await.upstream_header("authorization"), None);
    let req = g
        .request("/v1/customers?secret=1", Some(&t))
        .header("MS-RequestId", "req-1")
        .header("MS-CorrelationId", "corr-1")
        .body(Full::default())
        .unwrap();
    let r = g.send(req).await;
    assert_eq!(r.json()["query"], "secret=1");
    let log = g.stop().await;
    let rec = &log[2];
    assert_eq!((rec["request_id"].as_str(), rec["correlation_id"].as_str()), (Some("req-1"), Some("corr-1")));
    assert_eq!((rec["path"].as_str(), rec["operation"].as_str()), (Some("/v1/customers"), Some("GET /v1/")));
    assert_eq!(rec["channel"], "api");
    assert!(
        rec["ts"].as_str().unwrap().starts_with("2026-01-01T00:00:00."),
        "the injected clock: {}",
        rec["ts"]
    );
}

#[tokio::test]
async fn refused_requests_never_reach_the_upstream() {
    let g = gateway().start().await;
    let refusals = [
        g.get("/v1/x", None).await.status,
        g.get("/v1/x", Some(&g.token(|c| c["amr"] = json!(["pwd"])))).await.status,
        g.get("/v1/x", Some("not-a-token")).await.status,
        g.get("/nowhere", None).await.status,
    ];
    assert_eq!(refusals.map(|s| s.as_u16()), [401, 401, 401, 404]);
    assert_eq!(g.echo.hits(), 0);
}

#[tokio::test]
async fn oversized_headers_and_tokens_are_refused() {
    let g = gateway()
        .replace("shutdown_grace_secs = 5", "shutdown_grace_secs = 5\nmax_token_bytes = 4096")
        .start()
        .await;
    let req = g
        .request("/v1/x", Some(&g.token(|_| {})))
        .header("x-big", "a".repeat(20_000))
        .body(Full::default())
        .unwrap();
    let r = g.send(req).await;
    assert_eq!(r.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    let big = g.token(|c| c["pad"] = json!("p".repeat(5000)));
    let r = g.get("/v1/x", Some(&big)).await;
    assert_eq!((r.status, r.json()["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("token_too_large")));
    assert_eq!(g.echo.hits(), 0);
}

#[tokio::test]
async fn upstream_failures_are_502_and_504() {
    let mut g = gateway().start().await;
    let t = g.token(|_| {});
    let r = g.get("/down/x", Some(&t)).await;
    assert_eq!((r.status, r.json()["error"].as_str()), (StatusCode::BAD_GATEWAY, Some("upstream_error")));
    let r = g.get("/slow/hang", Some(&t)).await;
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (StatusCode::GATEWAY_TIMEOUT, Some("upstream_timeout"))
    );
    let log = g.stop().await;
    assert_eq!(
        (log[0]["status"].as_u64(), log[0]["error"].as_str(), log[0]["reason"].as_str()),
        (Some(502), Some("upstream_error"), Some("mfa_satisfied"))
    );
    assert_eq!((log[1]["status"].as_u64(), log[1]["error"].as_str()), (Some(504), Some("upstream_timeout")));
}

#[tokio::test]
async fn websocket_upgrades_pass_through() {
    let g = gateway().start().await;
    let token = g.token(|_| {});
    let mut s = tokio::net::TcpStream::connect(g.addr).await.unwrap();
    let head = format!(
        "GET /v1/socket HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nAuthorization: Bearer {token}\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = s.read(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase();
    assert!(text.starts_with("http/1.1 101"), "{text}");
    assert!(text.contains("upgrade: websocket"), "{text}");
    s.write_all(b"ping through the tunnel").await.unwrap();
    let mut got = vec![0u8; 23];
    s.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"ping through the tunnel");

    // Without MFA the upgrade is refused like any request.
    let mut s = tokio::net::TcpStream::connect(g.addr).await.unwrap();
    let no_mfa = g.token(|c| c["amr"] = json!(["pwd"]));
    s.write_all(head.replace(&token, &no_mfa).as_bytes()).await.unwrap();
    let n = s.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 401"));
}

#[tokio::test]
async fn tls_listener_negotiates_http2_by_alpn() {
    let certs = certs();
    let g = gateway().tls().start().await;
    let client =
        mfagate::outbound::client(Some(&certs.join("ca.pem")), std::time::Duration::from_secs(5)).unwrap();
    let token = g.token(|_| {});
    let req = http::Request::get(format!("https://localhost:{}/v1/tls", g.addr.port()))
        .header("authorization", format!("Bearer {token}"))
        .body(mfagate::body::empty())
        .unwrap();
    let rsp = client.request(req).await.unwrap();
    assert_eq!(rsp.status(), StatusCode::OK);
    assert_eq!(rsp.version(), http::Version::HTTP_2, "ALPN picks h2");
    let r = http::Request::get(format!("https://localhost:{}/v1/tls", g.addr.port()))
        .body(mfagate::body::empty())
        .unwrap();
    let rsp = client.request(r).await.unwrap();
    assert_eq!(rsp.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn request_bodies_stream_to_the_upstream() {
    let g = gateway().start().await;
    let body = Bytes::from(vec![b'x'; 3 * 1024 * 1024]);
    let req = g.request("/v1/upload", Some(&g.token(|_| {}))).method("POST").body(Full::new(body)).unwrap();
    let r = g.send(req).await;
    assert_eq!((r.status, r.json()["method"].as_str()), (StatusCode::OK, Some("POST")));
    assert_eq!(r.json()["body_bytes"], 3 * 1024 * 1024);
}

#[tokio::test]
async fn keys_are_fetched_over_https_trusting_the_extra_ca() {
    // A first gateway terminates TLS (certs/server.pem) in front of the identity provider.
    let certs = certs();
    let front = gateway()
        .tls()
        .append(
            "\n[[route]]\nname = \"idp\"\npath_prefix = \"/keys\"\nupstream = \"{idp}\"\nauth = \"none\"\n",
        )
        .start()
        .await;
    let https_keys = format!("https://localhost:{}/keys", front.addr.port());
    // Without the CA the key server is untrusted: never ready, tokens get 503.
    let untrusted = gateway()
        .replace(
            "jwks_uri = \"{idp}/keys\"\naudiences = [\"api://mfagate-demo\", ",
            &format!("jwks_uri = \"{https_keys}\"\naudiences = [\"api://mfagate-demo\", "),
        )
        .no_wait()
        .start()
        .await;
    let token = untrusted.token(|_| {});
    let r = untrusted.get("/v1/x", Some(&token)).await;
    assert_eq!(r.json()["error"], "keys_unavailable");
    // With [outbound] ca_file it works. The front gateway's IdP signs for its own address, so
    // this gateway trusts that issuer name.
    let trusted = gateway()
        .replace(
            "jwks_uri = \"{idp}/keys\"\naudiences = [\"api://mfagate-demo\", ",
            &format!("jwks_uri = \"{https_keys}\"\naudiences = [\"api://mfagate-demo\", "),
        )
        .replace("issuer = \"{idp}/{tenantid}/\"", &format!("issuer = \"{}\"", front.idp.issuer_template()))
        .append(&format!("\n[outbound]\nca_file = \"{}\"\n", certs.join("ca.pem").display()))
        .start()
        .await;
    let token = front.idp.sign(&front.idp.claims(&mfagate::dev::idp::TokenRequest::default())).unwrap();
    assert_eq!(trusted.get("/v1/x", Some(&token)).await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_cut_off() {
    let g = gateway()
        .replace("shutdown_grace_secs = 5", "shutdown_grace_secs = 5\nheader_read_timeout_secs = 1")
        .start()
        .await;
    let mut s = tokio::net::TcpStream::connect(g.addr).await.unwrap();
    s.write_all(b"GET /v1/x HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let mut buf = vec![0u8; 1024];
    // The gateway closes the connection (possibly after a 408) instead of waiting forever.
    let closed = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => continue,
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "connection still open");
    assert_eq!(g.echo.hits(), 0);
}

/// Ten client connections each in the middle of a request open ten upstream connections; once
/// they are answered, `[outbound] idle_per_host` bounds how many stay open for reuse (without
/// the bound, every one would).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_upstream_connections_are_bounded_per_host() {
    for (setting, kept) in [("idle_per_host = 2", 2), ("", 10)] {
        let g = gateway().append(&format!("\n[outbound]\n{setting}\n")).start().await;
        let token = g.token(|_| {});
        let mut clients = Vec::new();
        for _ in 0..10 {
            let mut s = tokio::net::TcpStream::connect(g.addr).await.unwrap();
            let req = format!("GET /v1/wait HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n");
            s.write_all(req.as_bytes()).await.unwrap();
            clients.push(s);
        }
        eventually("every request reached the upstream", || async { g.echo.hits() == 10 }).await;
        assert_eq!(g.echo.open_connections(), 10);
        g.echo.release(10);
        for s in &mut clients {
            let mut buf = vec![0u8; 8192];
            let n = s.read(&mut buf).await.unwrap();
            assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&buf[..n]));
        }
        eventually(&format!("{kept} idle upstream connections ({setting:?})"), || async {
            g.echo.open_connections() == kept
        })
        .await;
        drop(clients);
    }
}
