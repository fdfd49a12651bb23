//! The admin plane: health, readiness and metrics in the open; the report and its personal data
//! only on the private listener, with the bearer token, GET and HEAD only.

use crate::binary::{Fixture, fixture, start};
use crate::support::*;
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::Full;
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
    let right = "right-admin-token-9f8e7d6c5b4a";
    let wrong = "wrong-admin-token-1a2b3c4d5e6f";
    let admin = "[admin]\naddr = \"127.0.0.1:0\"\nprivate_addr = \"127.0.0.1:0\"\ntoken_file = \"admin-token\"\n\n[decision_log]";
    let Fixture { dir, config, .. } = fixture(|text| text.replace("[decision_log]", admin)).await;
    std::fs::write(dir.path().join("admin-token"), format!("{right}\n")).unwrap();
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

/// A client certificate for `CN=operator`, issued by `issuer` (or self-signed), as PEM.
fn client_cert(
    issuer: Option<(&openssl::x509::X509, &openssl::pkey::PKey<openssl::pkey::Private>)>,
) -> (String, String) {
    use openssl::x509::extension::{BasicConstraints, ExtendedKeyUsage};
    let key = openssl::pkey::PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap()).unwrap();
    let mut name = openssl::x509::X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", "operator").unwrap();
    let name = name.build();
    let mut b = openssl::x509::X509::builder().unwrap();
    b.set_version(2).unwrap();
    b.set_serial_number(&openssl::bn::BigNum::from_u32(7).unwrap().to_asn1_integer().unwrap()).unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(issuer.map_or(&name, |(ca, _)| ca.subject_name())).unwrap();
    b.set_pubkey(&key).unwrap();
    b.set_not_before(&openssl::asn1::Asn1Time::days_from_now(0).unwrap()).unwrap();
    b.set_not_after(&openssl::asn1::Asn1Time::days_from_now(2).unwrap()).unwrap();
    b.append_extension(BasicConstraints::new().build().unwrap()).unwrap();
    b.append_extension(ExtendedKeyUsage::new().client_auth().build().unwrap()).unwrap();
    b.sign(issuer.map_or(&key, |(_, k)| k), openssl::hash::MessageDigest::sha256()).unwrap();
    let pem = |v: Vec<u8>| String::from_utf8(v).unwrap();
    (pem(b.build().to_pem().unwrap()), pem(key.private_key_to_pem_pkcs8().unwrap()))
}

/// A TLS client trusting `certs/ca.pem`, with `identity` (certificate and key PEM) if given.
fn tls_client(identity: Option<&(String, String)>) -> tokio_rustls::TlsConnector {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    mfagate::outbound::install_crypto_provider();
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(certs().join("ca.pem")).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
    let config = match identity {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain = CertificateDer::pem_slice_iter(cert.as_bytes()).map(Result::unwrap).collect();
            builder
                .with_client_auth_cert(chain, PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap())
                .unwrap()
        }
    };
    tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
}

/// GET /v1/report over TLS: the status, or `None` when the handshake or the exchange failed.
async fn tls_get(
    addr: SocketAddr,
    connector: &tokio_rustls::TlsConnector,
    token: Option<&str>,
) -> Option<u16> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = connector.connect("localhost".try_into().unwrap(), tcp).await.ok()?;
    let (mut send, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls)).await.ok()?;
    tokio::spawn(conn);
    let mut req = Request::get("/v1/report").header("host", "localhost");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let rsp = send.send_request(req.body(Full::<Bytes>::default()).unwrap()).await.ok()?;
    Some(rsp.status().as_u16())
}

#[tokio::test]
async fn with_a_client_ca_the_private_listener_needs_a_certificate_it_issued_and_the_token() {
    let certs = certs();
    let ca = openssl::x509::X509::from_pem(&std::fs::read(certs.join("ca.pem")).unwrap()).unwrap();
    let ca_key =
        openssl::pkey::PKey::private_key_from_pem(&std::fs::read(certs.join("ca.key")).unwrap()).unwrap();
    let admin = format!(
        "\n[admin]\naddr = \"127.0.0.1:0\"\nprivate_addr = \"127.0.0.1:0\"\ntoken_file = \"admin-token\"\n\
         private_tls_cert = \"{c}/server.pem\"\nprivate_tls_key = \"{c}/server.key\"\nprivate_client_ca = \"{c}/ca.pem\"\n",
        c = certs.display()
    );
    let g = gateway().append(&admin).start().await;
    let issued = tls_client(Some(&client_cert(Some((&ca, &ca_key)))));
    assert_eq!(tls_get(g.private, &issued, Some(ADMIN_TOKEN)).await, Some(200));
    assert_eq!(tls_get(g.private, &issued, None).await, Some(401), "the token is still needed");
    for stranger in [tls_client(None), tls_client(Some(&client_cert(None)))] {
        assert_eq!(tls_get(g.private, &stranger, Some(ADMIN_TOKEN)).await, None);
    }
}
