//! `metadata_url`: an IdP's certificates read from its metadata, readiness waiting for the first
//! fetch, a rollover picked up early (rate-limited by the injected clock), the last good kept.

use crate::saml::{IDP, SP, signer};
use crate::support::{Gateway, gateway};
use bytes::Bytes;
use http::StatusCode;
use http_body_util::Full;
use mfagate::dev::saml_idp::{AssertionSpec, metadata_document};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A metadata server whose answer the test sets.
#[derive(Clone)]
pub(crate) struct MetadataServer {
    addr: std::net::SocketAddr,
    answer: Arc<Mutex<(u16, String)>>,
    fetches: Arc<AtomicU64>,
}

impl MetadataServer {
    pub(crate) async fn start(status: u16, body: String) -> MetadataServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = MetadataServer {
            addr: listener.local_addr().unwrap(),
            answer: Arc::new(Mutex::new((status, body))),
            fetches: Arc::default(),
        };
        let serving = server.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let s = serving.clone();
                tokio::spawn(async move {
                    let svc =
                        hyper::service::service_fn(move |_req: http::Request<hyper::body::Incoming>| {
                            let s = s.clone();
                            async move {
                                s.fetches.fetch_add(1, Ordering::SeqCst);
                                let (status, body) = s.answer.lock().unwrap().clone();
                                let mut rsp = http::Response::new(Full::new(Bytes::from(body)));
                                *rsp.status_mut() = StatusCode::from_u16(status).unwrap();
                                Ok::<_, std::convert::Infallible>(rsp)
                            }
                        });
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, svc).await;
                });
            }
        });
        server
    }

    pub(crate) fn set(&self, status: u16, body: String) {
        *self.answer.lock().unwrap() = (status, body);
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}/FederationMetadata.xml", self.addr)
    }

    pub(crate) fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::SeqCst)
    }
}

pub(crate) fn metadata(entity: &str, signers: &[&str]) -> String {
    let certs: Vec<Vec<u8>> = signers.iter().map(|s| signer(s).cert_der().to_vec()).collect();
    let refs: Vec<&[u8]> = certs.iter().map(Vec::as_slice).collect();
    metadata_document(entity, &refs, "https://idp.contoso.test/adfs/ls/")
}

/// The harness's config, with the IdP's certificates from `url`.
async fn start(url: &str) -> Gateway {
    gateway()
        .replace(
            "entity_id = \"https://idp.contoso.test/adfs/services/trust\"\ncertificates = [\"{certs}/saml-idp.pem\"]",
            &format!("entity_id = \"https://idp.contoso.test/adfs/services/trust\"\nmetadata_url = \"{url}\""),
        )
        .no_wait()
        .start()
        .await
}

/// An MFA assertion signed by `by`, valid for an hour from the gateway clock's now.
pub(crate) fn assertion(g: &Gateway, by: &str) -> String {
    use mfagate::clock::Clock;
    let mut spec = AssertionSpec::new(IDP, SP, g.clock.unix().0);
    spec.not_on_or_after = spec.issued + 3600;
    signer(by).sign(&spec.to_xml()).unwrap()
}

pub(crate) async fn status(g: &Gateway, xml: &str) -> StatusCode {
    use base64::Engine;
    let header = format!("SAML {}", base64::engine::general_purpose::STANDARD.encode(xml));
    let req = g.request("/v1/x", None).header("authorization", header).body(Default::default()).unwrap();
    g.send(req).await.status
}

/// Polls `/readyz` (bounded) until its status is `want` and its body says `says`.
async fn readiness_says(g: &Gateway, want: StatusCode, says: &str) {
    for _ in 0..500 {
        let r = g.admin_get("/readyz").await;
        if r.status == want && r.body.contains(says) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("readyz never answered {want} with {says:?}");
}

pub(crate) async fn readiness(g: &Gateway, want: StatusCode) {
    readiness_says(g, want, "").await
}

#[tokio::test]
async fn readiness_waits_for_the_first_metadata_and_an_assertion_may_fetch_it_early() {
    let server = MetadataServer::start(503, "down".into()).await;
    let g = start(&server.url()).await;
    readiness_says(&g, StatusCode::SERVICE_UNAVAILABLE, "waiting for SAML metadata: adfs").await;
    let doc = assertion(&g, "saml-idp");
    assert_eq!(status(&g, &doc).await, StatusCode::UNAUTHORIZED, "no certificate yet");
    server.set(200, metadata(IDP, &["saml-idp"]));
    // Not loaded: an early fetch is allowed once a (gateway clock) second.
    g.clock.advance(Duration::from_secs(2));
    assert_eq!(status(&g, &doc).await, StatusCode::OK);
    readiness(&g, StatusCode::OK).await;
}

#[tokio::test]
async fn a_rollover_is_fetched_early_at_most_once_per_interval_and_a_withdrawn_certificate_stops_verifying() {
    let server = MetadataServer::start(200, metadata(IDP, &["saml-idp"])).await;
    let g = start(&server.url()).await;
    readiness(&g, StatusCode::OK).await;
    let old = assertion(&g, "saml-idp");
    assert_eq!(status(&g, &old).await, StatusCode::OK);
    assert_eq!(status(&g, &old).await, StatusCode::OK, "cached");

    // The IdP rolls over to a new certificate and withdraws the old one.
    server.set(200, metadata(IDP, &["saml-untrusted"]));
    let fetched = server.fetches();
    let new = assertion(&g, "saml-untrusted");
    assert_eq!(status(&g, &new).await, StatusCode::UNAUTHORIZED, "within min_refetch_interval");
    assert_eq!(server.fetches(), fetched, "rate-limited: no fetch");
    g.clock.advance(Duration::from_secs(301));
    assert_eq!(status(&g, &new).await, StatusCode::OK, "fetched early, then verified");
    assert_eq!(server.fetches(), fetched + 1);
    assert_eq!(
        status(&g, &old).await,
        StatusCode::UNAUTHORIZED,
        "the cached document dies with its certificate"
    );
    let metrics = g.admin_get("/metrics").await.body;
    assert!(metrics.contains("mfagate_saml_metadata_fetch_total{idp=\"adfs\",result=\"ok\"}"), "{metrics}");
}

#[tokio::test]
async fn a_failed_or_foreign_fetch_keeps_the_last_good_certificates() {
    let server = MetadataServer::start(200, metadata(IDP, &["saml-idp"])).await;
    let g = start(&server.url()).await;
    readiness(&g, StatusCode::OK).await;
    for bad in [
        (500, "oops".to_owned()),
        (200, "<html>not metadata</html>".to_owned()),
        (200, metadata("https://evil.test/adfs", &["saml-untrusted"])),
    ] {
        server.set(bad.0, bad.1);
        g.clock.advance(Duration::from_secs(301));
        let fetched = server.fetches();
        assert_eq!(status(&g, &assertion(&g, "saml-untrusted")).await, StatusCode::UNAUTHORIZED);
        assert_eq!(server.fetches(), fetched + 1, "an early fetch was made");
        assert_eq!(
            status(&g, &assertion(&g, "saml-idp")).await,
            StatusCode::OK,
            "the good certificate stays"
        );
    }
    readiness(&g, StatusCode::OK).await;
}

#[test]
fn metadata_url_is_the_one_source_and_pins_the_entity_id() {
    let dir = tempfile::tempdir().unwrap();
    let base = "[decision_log]\npath = \"/dev/null\"\n[saml]\nentity_id = \"https://gw.test/saml\"\n\
                [[route]]\nname = \"api\"\npath_prefix = \"/\"\nupstream = \"http://127.0.0.1:9\"\n";
    let idp = |body: &str| format!("{base}[[saml_idp]]\nname = \"adfs\"\n{body}\n");
    let err = |body: &str| mfagate::Config::from_toml(&idp(body), dir.path()).unwrap_err().to_string();
    let e = err("metadata_url = \"https://idp.test/md.xml\"");
    assert!(e.contains("saml_idp \"adfs\".entity_id: required with metadata_url"), "{e}");
    let e = err("entity_id = \"x\"\nmetadata_url = \"https://idp.test/md.xml\"\ncertificates = [\"a.pem\"]");
    assert!(e.contains("metadata_url: the one source of certificates"), "{e}");
    let e = err("entity_id = \"x\"\nmetadata_url = \"ftp://idp.test/md.xml\"");
    assert!(e.contains("metadata_url: not a URL"), "{e}");
    let e = err("entity_id = \"x\"\nmetadata_url = \"https://idp.test/md.xml\"\nrefresh_interval_secs = 5");
    assert!(e.contains("refresh_interval_secs: at least 60"), "{e}");
    let ok = mfagate::Config::from_toml(
        &idp("entity_id = \"x\"\nmetadata_url = \"http://idp.test/md.xml\""),
        dir.path(),
    )
    .unwrap();
    let warnings = ok.warnings.join("\n");
    assert!(
        warnings.contains("metadata_url: http://idp.test/md.xml is plain http:// to another host"),
        "{warnings}"
    );
}

/// A portal signing in at `adfs`, whose certificates and SSO URL come from `server`.
pub(crate) async fn portal_signing_in_with(server: &MetadataServer) -> Gateway {
    gateway()
        .saml_sign_in()
        .replace(
            "certificates = [\"{certs}/saml-idp.pem\"]\nsso_url = \"{saml_sso}\"",
            &format!("metadata_url = \"{}\"", server.url()),
        )
        .append(crate::portal::SESSION)
        .append(crate::portal::SAML_ROUTE)
        .no_wait()
        .start()
        .await
}

#[tokio::test]
async fn browser_sign_in_goes_to_the_sso_url_the_metadata_names() {
    use crate::support::browser::Browser;
    let server = MetadataServer::start(503, "down".into()).await;
    let g = portal_signing_in_with(&server).await;
    let cert = signer("saml-idp").cert_der().to_vec();
    server.set(200, metadata_document(IDP, &[&cert], &g.saml_idp.sso_url()));
    g.clock.advance(Duration::from_secs(2));
    // The first assertion fetches the metadata early; then the portal knows where to send users.
    assert_eq!(status(&g, &assertion(&g, "saml-idp")).await, StatusCode::OK);
    let mut b = Browser::new();
    let to_idp = b.get(&format!("http://{}/app/x", g.addr)).await;
    let location = to_idp.headers["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with(&format!("{}?SAMLRequest=", g.saml_idp.sso_url())), "{location}");
    let idp_page = b.get(&location).await;
    let page = b.submit(&idp_page).await;
    assert_eq!(page.status, StatusCode::FOUND, "{}", page.body);
    assert!(b.cookies.contains_key("mfagate_session"), "signed in with the fetched certificate");
}
