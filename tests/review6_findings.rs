//! Findings of the sixth review (issue 10: secrets, the private admin plane, request ids), each
//! reproduced here before its fix.

use std::path::Path;

use crate::configure::{BASE, KEY_A as KEY};

/// `keys = "${SESSION_KEY}"` (a string where a list belongs, an easy slip) made the type error
/// quote the value taken from the environment: the session key went to check-config's output
/// and to the journal, though it never was in the file. Validation quotes values too (a URL
/// with a password from the environment and a wrong scheme).
#[test]
fn a_type_error_never_quotes_a_value_from_the_environment() {
    let env = |name: &str| (name == "MFAGATE_UPSTREAM_PASSWORD").then(|| KEY.to_owned());
    let text = BASE
        .replace("\"http://127.0.0.1:3000\"", "\"ftp://svc:${MFAGATE_UPSTREAM_PASSWORD}@127.0.0.1:3000\"");
    let err = mfagate::Config::from_toml_with_env(&text, Path::new("."), &env).unwrap_err().to_string();
    assert!(!err.contains(KEY), "the secret is in the error: {err}");
    assert!(err.contains("not a URL") && err.contains("${MFAGATE_UPSTREAM_PASSWORD}"), "{err}");

    let env = |name: &str| (name == "MFAGATE_SESSION_KEY").then(|| KEY.to_owned());
    for text in [
        format!("{BASE}[session]\nkeys = \"${{MFAGATE_SESSION_KEY}}\"\n"),
        // The same value with escapes serde prints differently.
        format!("{BASE}[session]\nkeys = \"pre\\\"${{MFAGATE_SESSION_KEY}}\"\n"),
    ] {
        let err = mfagate::Config::from_toml_with_env(&text, Path::new("."), &env).unwrap_err().to_string();
        assert!(!err.contains(KEY), "the secret is in the error: {err}");
        assert!(err.contains("${MFAGATE_SESSION_KEY}"), "the error says what was written: {err}");
    }
}

/// A status from a new connection to `addr` (none if the port is closed), so no pooled
/// connection of the harness answers for a listener that is gone.
async fn fresh_get(addr: std::net::SocketAddr, path: &str) -> Option<u16> {
    let stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let (mut send, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await.ok()?;
    tokio::spawn(conn);
    let req = http::Request::get(path).header("host", addr.to_string());
    let rsp =
        send.send_request(req.body(http_body_util::Empty::<bytes::Bytes>::new()).unwrap()).await.ok()?;
    Some(rsp.status().as_u16())
}

/// `shutdown_delay_secs` took any u64, and SIGTERM added it to the clock: a delay past what an
/// instant holds panicked the serve loop at the signal, closing the listener at once (the drain
/// the setting asks for) and skipping the flush of the decision log.
#[tokio::test]
async fn a_huge_shutdown_delay_still_drains() {
    let mut g = crate::support::gateway()
        .replace("shutdown_delay_secs = 0", &format!("shutdown_delay_secs = {}", i64::MAX))
        .start()
        .await;
    g.wait_ready().await;
    g.signal_shutdown();
    let bound = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while fresh_get(g.admin, "/readyz").await != Some(503) {
        assert!(std::time::Instant::now() < bound, "/readyz never answered 503");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    // The delay is still running: the gateway port answers (401: no token).
    assert_eq!(fresh_get(g.addr, "/v1/x").await, Some(401), "the listener closed at the signal");
}

/// The admin listeners took every connection offered, with no cap: a flood on the admin port
/// (reachable from the cluster network for the probes) held file descriptors for the header
/// timeout each and could leave the gateway's own listener none. Past the cap a connection is
/// closed at accept, and a slot freed serves again.
#[tokio::test]
async fn admin_listeners_cap_their_connections() {
    use tokio::io::AsyncReadExt;
    let g = crate::support::gateway().start().await;
    for addr in [g.admin, g.private] {
        let mut held = Vec::new();
        for _ in 0..mfagate::gate::server::ADMIN_MAX_CONNECTIONS {
            held.push(tokio::net::TcpStream::connect(addr).await.unwrap());
        }
        // The slots are taken when the listener accepts: wait for the cap to be reached.
        let bound = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let mut extra = tokio::net::TcpStream::connect(addr).await.unwrap();
            let mut byte = [0u8; 1];
            let read = tokio::time::timeout(std::time::Duration::from_secs(3), extra.read(&mut byte)).await;
            if matches!(read, Ok(Ok(0)) | Ok(Err(_))) {
                break;
            }
            assert!(std::time::Instant::now() < bound, "{addr}: a connection past the cap was kept open");
        }
        drop(held);
        let bound = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while fresh_get(addr, "/healthz").await.is_none() {
            assert!(std::time::Instant::now() < bound, "{addr}: freed slots never served again");
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
}

/// `examples/production.toml` is "a complete production configuration", and its folder ships
/// public values: session keys (anyone can seal a portal session with them, MFA claims
/// included), the private admin token (the report's personal data) and a TLS key. check-config
/// said "ok" without a word, though it warns for the development keys of `certs/` and the
/// demo's session key. Each is a warning at its key path now.
#[test]
fn the_examples_published_secrets_are_warned_about() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mfagate"))
        .arg("check-config")
        .arg(repo.join("examples/production.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "warnings only");
    let stderr = String::from_utf8_lossy(&out.stderr);
    for key in ["session.keys_file", "admin.token_file", "listen.tls_key", ".client_secret_file"] {
        assert!(
            stderr.lines().any(|l| l.starts_with("warning: ")
                && l.contains(key)
                && l.contains("published with mfagate: DEVELOPMENT ONLY")),
            "no warning at {key}: {stderr}"
        );
    }
    let demo = mfagate::Config::load(&repo.join("examples/demo.toml")).unwrap();
    assert!(demo.warnings.iter().any(|w| w.starts_with("admin.token_file: ")), "{:?}", demo.warnings);
}

/// `[listen] request_id_header` took any header name, and the id is set after the gateway's own
/// headers: `x-auth-principal` (or `x-auth-mfa`, `x-forwarded-for`, `authorization`, `host`) put
/// a random id in place of the verified identity or the client address the upstream reads, and
/// on the answer `set-cookie` or `content-length` replaced the upstream's. Such names are refused.
#[test]
fn the_request_id_header_cannot_be_one_the_gateway_owns() {
    let with =
        |name: &str| BASE.replace("[listen]\n", &format!("[listen]\nrequest_id_header = \"{name}\"\n"));
    let none = |_: &str| None;
    for name in [
        "X-Auth-Principal",
        "x-auth-mfa",
        "x-forwarded-for",
        "authorization",
        "host",
        "set-cookie",
        "content-length",
    ] {
        let err = mfagate::Config::from_toml_with_env(&with(name), Path::new("."), &none)
            .map(|_| ())
            .expect_err(name)
            .to_string();
        assert!(err.contains("listen.request_id_header"), "{name}: {err}");
    }
    for name in ["x-request-id", "x-correlation-id"] {
        assert!(mfagate::Config::from_toml_with_env(&with(name), Path::new("."), &none).is_ok(), "{name}");
    }
}

/// Not a finding, a suspicion checked: hyper serves each HTTP/2 stream on a task of its own, so
/// a forwarded request could outlive the connection cut at the end of the grace, and the flush
/// of the decision log. It does not: the cut resets the streams and the request is recorded
/// (499) as HTTP/1's is (`rollout`).
#[tokio::test]
async fn an_http2_request_open_when_the_grace_ends_is_cut_and_recorded() {
    let mut g =
        crate::support::gateway().replace("shutdown_grace_secs = 5", "shutdown_grace_secs = 1").start().await;
    let h2: hyper_util::client::legacy::Client<_, http_body_util::Full<bytes::Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .http2_only(true)
            .build_http();
    let req = g.request("/v1/x/hang", Some(&g.token(|_| {}))).body(Default::default()).unwrap();
    let pending = tokio::spawn(h2.request(req));
    let bound = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while g.echo.hits() == 0 {
        assert!(std::time::Instant::now() < bound, "the request never reached the upstream");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let log = tokio::time::timeout(std::time::Duration::from_secs(10), g.stop()).await.expect("stopped");
    let cut = log.iter().find(|r| r["path"] == "/v1/x/hang").expect("the cut HTTP/2 request is recorded");
    assert_eq!((cut["status"].as_u64(), cut["reason"].as_str()), (Some(499), Some("mfa_satisfied")));
    assert!(pending.await.unwrap().is_err(), "the hanging request was cut");
}

/// Left open by the sixth review: a private admin listener other hosts can reach, without TLS,
/// sends its token and the report in the clear. check-config says so (a warning: a TLS-terminating
/// sidecar may sit in front of it).
#[test]
fn a_private_listener_off_loopback_without_tls_is_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("admin.token"), "k7Qx2b9LmN4pR8sT1vW6yZ3cF5hJ0dG2\n").unwrap();
    let check = |private: &str| {
        let text = format!(
            "{BASE}[admin]\naddr = \"127.0.0.1:0\"\nprivate_addr = \"{private}\"\ntoken_file = \"admin.token\"\n"
        );
        let file = dir.path().join("mfagate.toml");
        std::fs::write(&file, text).unwrap();
        std::process::Command::new(env!("CARGO_BIN_EXE_mfagate"))
            .arg("check-config")
            .arg(&file)
            .output()
            .unwrap()
    };
    let open = check("0.0.0.0:0");
    assert_eq!(open.status.code(), Some(0));
    let err = String::from_utf8_lossy(&open.stderr);
    assert!(err.contains("warning: admin.private_addr: reachable from other hosts without TLS"), "{err}");
    let local = check("127.0.0.1:0");
    assert_eq!(local.status.code(), Some(0));
    assert!(!String::from_utf8_lossy(&local.stderr).contains("admin.private_addr"));
}
