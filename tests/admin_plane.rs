//! The admin plane: health, readiness and metrics in the open; the report and its personal data
//! only on the private listener, with the bearer token, GET and HEAD only.

use crate::binary::start;
use crate::support::*;
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use mfagate::dev::echo::Echo;
use mfagate::dev::idp::DevIdp;
use std::net::SocketAddr;
use std::process::Command;

const PRIVATE_PATHS: [&str; 7] = [
    "/",
    "/v1/report",
    "/v1/partnerRequests",
    "/v1/applicationmfaadoptionstatus",
    "/v1/nonMfaCompliantPartnerPrincipals",
    "/exports/all_api_requests.csv",
    "/exports/api_requests_summary.csv",
];

async fn call(g: &Gateway, method: Method, addr: SocketAddr, path: &str, token: Option<&str>) -> Reply {
    let mut req = Request::builder().method(method).uri(format!("http://{addr}{path}"));
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    g.send(req.body(Full::<Bytes>::default()).unwrap()).await
}

#[tokio::test]
async fn the_report_needs_the_token_and_health_does_not() {
    let g = gateway().start().await;
    g.get("/v1/x", Some(&g.token(|_| {}))).await;
    for path in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(call(&g, Method::GET, g.admin, path, None).await.status, 200, "{path}");
    }
    for path in PRIVATE_PATHS {
        // Not on the public listener at all.
        assert_eq!(call(&g, Method::GET, g.admin, path, None).await.status, 404, "{path}");
        for token in [None, Some("test-admin-token-012345678"), Some(""), Some("x")] {
            let rsp = call(&g, Method::GET, g.private, path, token).await;
            assert_eq!(rsp.status, StatusCode::UNAUTHORIZED, "{path} {token:?}");
            assert_eq!(rsp.headers["www-authenticate"], "Bearer realm=\"mfagate-admin\"");
            assert!(!rsp.body.contains("Partner") && !rsp.body.contains("upn"), "{}", rsp.body);
        }
        let rsp = call(&g, Method::GET, g.private, path, Some(ADMIN_TOKEN)).await;
        assert_eq!(rsp.status, 200, "{path}");
        let head = call(&g, Method::HEAD, g.private, path, Some(ADMIN_TOKEN)).await;
        assert_eq!((head.status, head.body.as_str()), (StatusCode::OK, ""), "{path}");
    }
    // The scheme is case-insensitive (RFC 7235), the token is not.
    let req = Request::get(format!("http://{}/v1/report", g.private))
        .header("authorization", format!("bearer {ADMIN_TOKEN}"))
        .body(Full::default())
        .unwrap();
    assert_eq!(g.send(req).await.status, 200);
    let upper = ADMIN_TOKEN.to_uppercase();
    assert_eq!(call(&g, Method::GET, g.private, "/v1/report", Some(&upper)).await.status, 401);
    // Health and readiness are not on the private listener.
    assert_eq!(call(&g, Method::GET, g.private, "/metrics", Some(ADMIN_TOKEN)).await.status, 404);
    for method in [Method::POST, Method::PUT, Method::DELETE, Method::OPTIONS] {
        for (addr, path) in [(g.private, "/v1/report"), (g.admin, "/readyz")] {
            let rsp = call(&g, method.clone(), addr, path, Some(ADMIN_TOKEN)).await;
            assert_eq!(rsp.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            assert_eq!(rsp.headers["allow"], "GET, HEAD");
        }
        // Without the token the private listener says nothing about methods.
        assert_eq!(call(&g, method.clone(), g.private, "/v1/report", None).await.status, 401);
    }
}

#[tokio::test]
async fn without_a_private_listener_the_report_is_not_served() {
    let g = gateway().append("\n[admin]\naddr = \"127.0.0.1:0\"\n").start().await;
    assert_eq!(call(&g, Method::GET, g.admin, "/readyz", None).await.status, 200);
    for path in PRIVATE_PATHS {
        assert_eq!(call(&g, Method::GET, g.admin, path, Some(ADMIN_TOKEN)).await.status, 404, "{path}");
    }
    assert!(std::net::TcpStream::connect(g.private).is_err(), "a private listener was served");
}

#[test]
fn a_private_listener_needs_a_way_to_authenticate() {
    let dir = tempfile::tempdir().unwrap();
    let bad = |admin: &str| {
        let text = format!("[admin]\naddr = \"127.0.0.1:0\"\n{admin}\n[decision_log]\npath = \"d.jsonl\"\n");
        mfagate::Config::from_toml(&text, dir.path()).unwrap_err().problems().join("\n")
    };
    assert!(
        bad("private_addr = \"127.0.0.1:0\"")
            .contains("admin.private_addr: the private admin listener serves personal data")
    );
    std::fs::write(dir.path().join("short"), "abc\n").unwrap();
    assert!(bad("private_addr = \"127.0.0.1:0\"\ntoken_file = \"short\"").contains("admin.token_file:"));
    assert!(
        bad("private_addr = \"127.0.0.1:0\"\ntoken_file = \"missing\"")
            .contains("admin.token_file: cannot read")
    );
    assert!(bad("token_file = \"short\"").contains("admin.token_file: only used with admin.private_addr"));
    std::fs::write(dir.path().join("token"), "0123456789abcdef0123\n").unwrap();
    let ok = "[admin]\naddr = \"127.0.0.1:0\"\nprivate_addr = \"127.0.0.1:0\"\ntoken_file = \"token\"\n[decision_log]\npath = \"d.jsonl\"\n";
    mfagate::Config::from_toml(ok, dir.path()).unwrap();
}

/// Through the binary: the refusals are logged, the tokens (right or wrong) never are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_logs_refusals_without_the_token() {
    let clock = std::sync::Arc::new(mfagate::clock::SystemClock);
    let idp = DevIdp::start(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(), dev_keys(), clock)
        .unwrap();
    let echo = Echo::start(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let right = "right-admin-token-9f8e7d6c5b4a";
    let wrong = "wrong-admin-token-1a2b3c4d5e6f";
    std::fs::write(dir.path().join("admin-token"), format!("{right}\n")).unwrap();
    let config = dir.path().join("mfagate.toml");
    let admin = "[admin]\naddr = \"127.0.0.1:0\"\nprivate_addr = \"127.0.0.1:0\"\ntoken_file = \"admin-token\"\n\n[decision_log]";
    let text = render_config(CONFIG, &idp, &echo, dir.path()).replace("[decision_log]", admin);
    std::fs::write(&config, text).unwrap();
    let mut running = start(&config, &[]);
    let private = running.private.clone().expect("the private listener's address is logged");
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let get = |token: &str| {
        Request::get(format!("http://{private}/v1/report"))
            .header("authorization", format!("Bearer {token}"))
            .body(Full::default())
            .unwrap()
    };
    assert_eq!(client.request(get(wrong)).await.unwrap().status(), 401);
    assert_eq!(client.request(get(right)).await.unwrap().status(), 200);
    let pid = running.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    assert!(running.child.wait().unwrap().success());
    let log: Vec<String> = running.early.iter().cloned().chain(running.stderr.iter()).collect();
    let log = log.join("\n");
    assert!(log.contains("Private admin request refused"), "{log}");
    assert!(log.contains("wrong token"), "{log}");
    for secret in [right, wrong] {
        assert!(!log.contains(secret), "a token reached the log:\n{log}");
    }
}
