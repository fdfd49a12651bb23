//! Review 8 (hot reload, traces, xmlsec's standard error, metrics): each test shows one finding
//! through the real gateway and fails until it is fixed.

use crate::saml::{IDP, SP, signer};
use crate::support::*;
use bytes::Bytes;
use http::StatusCode;
use http_body_util::Full;
use std::time::Duration;

/// The private admin plane guarded by a token; a reload that moves it to client certificates
/// (TLS and `private_client_ca`, no token) keeps the running plain listener (its TLS is
/// restart-only) and takes the new file's "no token": personal data served to anyone.
#[tokio::test]
async fn a_reload_to_client_certificates_leaves_the_private_admin_plane_open() {
    let g = gateway().reloadable().start().await;
    let report = format!("http://{}/v1/report", g.private);
    let anonymous = || http::Request::get(&report).body(Full::<Bytes>::default()).unwrap();
    assert_eq!(g.send(anonymous()).await.status, StatusCode::UNAUTHORIZED, "the premise: a token is needed");
    let c = certs().display().to_string();
    let applied = g
        .reload(|t| {
            t.replace(
                "token_file = \"admin-token\"",
                &format!(
                    "private_tls_cert = \"{c}/server.pem\"\nprivate_tls_key = \"{c}/server.key\"\nprivate_client_ca = \"{c}/ca.pem\""
                ),
            )
        })
        .await;
    assert!(applied, "the new file alone is a valid configuration");
    let rsp = g.send(anonymous()).await;
    assert_eq!(
        rsp.status,
        StatusCode::UNAUTHORIZED,
        "after the reload the private plane answers without a token or a client certificate: {}",
        rsp.body.chars().take(200).collect::<String>()
    );
}

/// A `OneTimeUse` assertion's replay entry lives until NotOnOrAfter plus the leeway of the
/// generation that saw it. A reload that widens `leeway_secs` makes the new generation accept the
/// assertion for longer than its entry lives: once the entry has gone, the assertion is accepted
/// a second time.
#[tokio::test]
async fn a_reload_widening_the_saml_leeway_reopens_a_used_one_time_assertion() {
    use base64::Engine;
    let g = gateway()
        .reloadable()
        .replace(
            "certificates = [\"{certs}/saml-idp.pem\"]",
            "certificates = [\"{certs}/saml-idp.pem\"]\nleeway_secs = 0",
        )
        .start()
        .await;
    let mut spec = mfagate::dev::saml_idp::AssertionSpec::new(IDP, SP, T0);
    // Valid for one second, so its replay entry (which moka expires on real time) goes soon.
    spec.not_on_or_after = T0 + 1;
    let once = signer("saml-idp")
        .sign(&spec.to_xml().replace("</saml:Conditions>", "<saml:OneTimeUse/></saml:Conditions>"))
        .unwrap();
    let header = format!("SAML {}", base64::engine::general_purpose::STANDARD.encode(once));
    let call = || g.request("/v1/x", None).header("authorization", &header).body(Full::default()).unwrap();
    assert_eq!(g.send(call()).await.status, StatusCode::OK, "first use");
    assert_eq!(g.send(call()).await.status, StatusCode::UNAUTHORIZED, "the premise: a replay is refused");
    g.clock.advance(Duration::from_secs(2));
    // The replay entry was set to live one second (NotOnOrAfter + leeway 0) from its insertion.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        g.send(call()).await.status,
        StatusCode::UNAUTHORIZED,
        "the premise: expired without a reload"
    );
    assert!(g.reload(|t| t.replace("leeway_secs = 0", "leeway_secs = 120")).await, "reload applied");
    let rsp = g.send(call()).await;
    assert_eq!(rsp.status, StatusCode::UNAUTHORIZED, "a used OneTimeUse assertion was accepted again");
}

/// Once ready, a reload that adds an IdP whose `metadata_url` is not answering must not take the
/// gateway out of its load balancer (README: readiness does not wait for what a reload adds);
/// `State::readiness` still checks every IdP's certificates, the new one included.
#[tokio::test]
async fn a_reload_adding_an_unreachable_metadata_idp_turns_a_ready_gateway_unready() {
    let g = gateway().reloadable().start().await;
    assert_eq!(g.admin_get("/readyz").await.status, StatusCode::OK);
    let added = "\n[[saml_idp]]\nname = \"partner\"\nentity_id = \"https://partner.test/idp\"\nmetadata_url = \"http://127.0.0.1:1/metadata\"\n";
    assert!(
        g.reload(|t| {
            let at = t.find("[[route]]").unwrap();
            format!("{}{added}\n{}", &t[..at], &t[at..])
        })
        .await,
        "reload applied"
    );
    let rsp = g.admin_get("/readyz").await;
    assert_eq!(rsp.status, StatusCode::OK, "a ready gateway left its balancer: {}", rsp.body);
}

/// A WebSocket tunnel opened on a route that needs no credential outlives a reload that makes
/// the route require one: bytes still flow to the upstream under the removed rule, for as long as
/// the tunnel is not idle (only a restart ends it), while a new upgrade is refused.
#[tokio::test]
async fn a_websocket_tunnel_outlives_a_reload_that_closes_its_route() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const UPGRADE: &str = "GET /public/socket HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    const BOUND: Duration = Duration::from_secs(10);
    let g = gateway().reloadable().start().await;
    let mut tunnel = tokio::net::TcpStream::connect(g.addr).await.unwrap();
    tunnel.write_all(UPGRADE.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(BOUND, tunnel.read(&mut buf)).await.unwrap().unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&buf[..n]));
    assert!(
        g.reload(|t| {
            // The route `public` loses its `auth = "none"`.
            let at = t.find("name = \"public\"").unwrap();
            let (head, tail) = t.split_at(at);
            format!("{head}{}", tail.replacen("auth = \"none\"\n", "", 1))
        })
        .await,
        "reload applied"
    );
    assert_eq!(
        g.get("/public/x", None).await.status,
        StatusCode::UNAUTHORIZED,
        "the route now needs a token"
    );
    let after = tokio::net::TcpStream::connect(g.addr).await;
    let mut fresh = after.unwrap();
    fresh.write_all(UPGRADE.as_bytes()).await.unwrap();
    let n = tokio::time::timeout(BOUND, fresh.read(&mut buf)).await.unwrap().unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 401"),
        "a new upgrade is refused: {}",
        String::from_utf8_lossy(&buf[..n])
    );
    tunnel.write_all(b"after the reload").await.unwrap();
    let mut echoed = vec![0u8; 16];
    let passed = tokio::time::timeout(Duration::from_secs(2), tunnel.read_exact(&mut echoed)).await;
    assert!(
        !matches!(passed, Ok(Ok(_))),
        "the tunnel still carries bytes to the upstream under the rule a reload removed: {:?}",
        String::from_utf8_lossy(&echoed)
    );
}

/// A request's method, whatever the client sends, becomes the server span's name and its
/// `http.request.method` attribute, unbounded: up to `max_header_bytes` twice in every span held
/// in the export queue (2,048 of them by default) while the collector is slow.
#[tokio::test]
async fn a_client_chosen_method_of_kilobytes_becomes_the_span_name() {
    use crate::traces::{receiver, traces_section, wait_for};
    let (addr, got) = receiver().await;
    let secrets = tempfile::tempdir().unwrap();
    let headers_file = secrets.path().join("otlp-headers");
    std::fs::write(&headers_file, "x-api-key: k\n").unwrap();
    let g = gateway().append(&traces_section(addr, &headers_file)).start().await;
    let method = "M".repeat(12_000);
    let req = g
        .request("/v1/x", None)
        .method(http::Method::from_bytes(method.as_bytes()).unwrap())
        .body(Full::default())
        .unwrap();
    let rsp = g.send(req).await;
    assert_eq!(rsp.status, StatusCode::UNAUTHORIZED);
    let name =
        wait_for(&got, |r| r.spans.iter().map(|(_, s)| s.name.clone()).find(|n| n.starts_with("_OTHER")))
            .await;
    assert!(name.len() <= 256, "a span named by the client: {} bytes", name.len());
    assert!(!got.lock().unwrap().spans.iter().any(|(_, s)| s.name.contains("MMM")));
}

/// `sample_ratio = 0` samples nothing the gateway starts, but any caller's `traceparent` with the
/// sampled flag makes every one of its requests a sampled trace: an unauthenticated client decides
/// how many spans the gateway exports (or pushes others' out of the bounded queue).
#[tokio::test]
async fn an_anonymous_callers_sampled_flag_overrides_a_zero_sample_ratio() {
    use crate::traces::{receiver, traces_section, wait_for};
    let (addr, got) = receiver().await;
    let secrets = tempfile::tempdir().unwrap();
    let headers_file = secrets.path().join("otlp-headers");
    std::fs::write(&headers_file, "x-api-key: k\n").unwrap();
    let section = traces_section(addr, &headers_file) + "sample_ratio = 0.0\n";
    let g = gateway().append(&section).start().await;
    for i in 0..20 {
        let parent = format!("00-{:032x}-00f067aa0ba902b7-01", i + 1);
        let req = g.request("/v1/x", None).header("traceparent", parent).body(Full::default()).unwrap();
        assert_eq!(g.send(req).await.status, StatusCode::UNAUTHORIZED);
    }
    // Unsampled spans are never queued: any span received was sampled on the caller's word.
    let exported = tokio::time::timeout(
        Duration::from_secs(3),
        wait_for(&got, |r| (r.spans.len() >= 20).then_some(r.spans.len())),
    )
    .await;
    assert!(
        exported.is_err(),
        "sample_ratio 0, yet an anonymous caller had {:?} spans exported",
        exported.ok()
    );
}

/// A browser session names its IdP by configured name only. A reload that points that name at
/// another IdP (a new entity id and certificate: the old IdP retired, say compromised) keeps
/// every session it signed in with MFA: they are judged on the old IdP's word until they expire,
/// unlike tokens, which are verified again under the new rules.
#[tokio::test]
async fn sessions_from_an_idp_a_reload_replaced_are_still_accepted() {
    const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
    let portal = format!(
        "\n[session]\nkeys = [\"{KEY}\"]\nsecure = false\n\n[[route]]\nname = \"portal\"\npath_prefix = \"/app/\"\nupstream = \"{{echo}}\"\nchannel = \"portal\"\nlogin = \"adfs\"\n"
    );
    let g = gateway().reloadable().saml_sign_in().append(&portal).start().await;
    let session = mfagate::browser::session::Session {
        sub: "00000000-0000-4000-8000-0000000b0001".into(),
        tid: Some(tenant().into()),
        upn: Some("adele@contoso.test".into()),
        mfa: true,
        auth_time: T0,
        exp: T0 + 3600,
        idp: "adfs".into(),
        idp_fingerprint: mfagate::browser::session::idp_fingerprint(
            &mfagate::Config::load(&g.dir.path().join("mfagate.toml")).unwrap(),
            "adfs",
        ),
    };
    let name = mfagate::browser::session::SESSION_COOKIE;
    let sealer = mfagate::browser::session::Sealer::new(&[KEY.into()]).unwrap();
    let cookie = format!("{name}={}", sealer.seal(name, &session).unwrap());
    let call = || g.request("/app/x", None).header("cookie", &cookie).body(Full::default()).unwrap();
    assert_eq!(g.send(call()).await.status, StatusCode::OK, "the premise: the session is valid");
    let applied = g
        .reload(|t| {
            t.replace(
                "entity_id = \"https://idp.contoso.test/adfs/services/trust\"",
                "entity_id = \"https://new-idp.test/\"",
            )
            .replace("/saml-idp.pem\"]", "/saml-untrusted.pem\"]")
        })
        .await;
    assert!(applied, "reload applied");
    let rsp = g.send(call()).await;
    assert_ne!(rsp.status, StatusCode::OK, "a session from the replaced IdP still opens the application");
}
