//! Review 7 findings (SAML `metadata_url`, draining, the Kubernetes manifests): each test shows
//! behaviour that is wrong for the security boundary and fails until it is fixed.

use crate::saml::{IDP, signer};
use crate::saml_metadata::{MetadataServer, assertion, metadata, readiness, status};
use crate::support::gateway;
use http::StatusCode;
use mfagate::dev::saml_idp::metadata_document;
use std::path::Path;
use std::time::Duration;

/// Two IdPs naming one entity id: the first in the file takes every assertion, the other is dead.
#[test]
fn review7_two_saml_idps_with_one_entity_id_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pem = Path::new(env!("CARGO_MANIFEST_DIR")).join("../certs/saml-idp.pem");
    let toml = format!(
        "[decision_log]\npath = \"/dev/null\"\n[saml]\nentity_id = \"https://gw.test/saml\"\n\
         [[route]]\nname = \"api\"\npath_prefix = \"/\"\nupstream = \"http://127.0.0.1:9\"\n\
         [[saml_idp]]\nname = \"legacy\"\nentity_id = \"{IDP}\"\ncertificates = [\"{}\"]\n\
         [[saml_idp]]\nname = \"adfs\"\nentity_id = \"{IDP}\"\nmetadata_url = \"https://idp.test/md.xml\"\n",
        pem.display()
    );
    let loaded = mfagate::Config::from_toml(&toml, dir.path());
    assert!(loaded.is_err(), "two [[saml_idp]] with entity_id {IDP:?} were accepted");
}

/// An SSO URL read from fetched metadata goes into the browser's Location unchecked, while a
/// configured `sso_url` must be http(s).
#[tokio::test]
async fn review7_an_sso_url_from_metadata_must_be_http_or_https() {
    use crate::support::browser::Browser;
    let server = MetadataServer::start(503, "down".into()).await;
    let g = crate::saml_metadata::portal_signing_in_with(&server).await;
    let cert = signer("saml-idp").cert_der().to_vec();
    server.set(200, metadata_document(IDP, &[&cert], "javascript:alert(document.domain)//"));
    g.clock.advance(Duration::from_secs(2));
    // Metadata whose SSO location is not http(s) is refused whole: the IdP stays unloaded.
    assert_eq!(status(&g, &assertion(&g, "saml-idp")).await, StatusCode::UNAUTHORIZED, "metadata refused");
    let mut b = Browser::new();
    let to_idp = b.get(&format!("http://{}/app/x", g.addr)).await;
    if let Some(location) = to_idp.headers.get("location") {
        let location = location.to_str().unwrap();
        assert!(
            location.starts_with("https://") || location.starts_with("http://"),
            "the browser is sent to {location:?}"
        );
    }
}

/// `min_refetch_interval_secs = 0` is accepted: every assertion with a bad signature naming the
/// IdP makes the gateway fetch the IdP's metadata (an unauthenticated request amplifier).
#[tokio::test]
async fn review7_bad_assertions_cannot_make_one_metadata_fetch_each() {
    let server = MetadataServer::start(200, metadata(IDP, &["saml-idp"])).await;
    let g = gateway()
        .replace(
            "certificates = [\"{certs}/saml-idp.pem\"]",
            &format!("metadata_url = \"{}\"\nmin_refetch_interval_secs = 0", server.url()),
        )
        .no_wait()
        .start()
        .await;
    readiness(&g, StatusCode::OK).await;
    let before = server.fetches();
    for _ in 0..10 {
        assert_eq!(status(&g, &assertion(&g, "saml-untrusted")).await, StatusCode::UNAUTHORIZED);
    }
    let made = server.fetches() - before;
    assert!(made <= 1, "10 unauthenticated requests made {made} metadata fetches");
}

fn repo_file(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)).unwrap()
}

/// The private admin plane (report, CSV exports, /v1/*: personal data) listens on every pod
/// address, so every pod in the cluster reaches it; `kubectl port-forward`, the documented way in,
/// connects to the pod's loopback and needs no more.
#[test]
fn review7_the_private_admin_listener_is_not_on_the_pod_network() {
    let configmap = repo_file("deploy/kubernetes/configmap.yaml");
    let line = configmap
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("private_addr"))
        .expect("a private_addr in the ConfigMap");
    let addr: std::net::SocketAddr = line.split('"').nth(1).unwrap().parse().unwrap();
    assert!(addr.ip().is_loopback(), "{line}: reachable from every pod of the cluster");
}

/// Following the kustomization's instructions (`kubectl create secret tls`) makes a Secret without
/// `admin.token`: the pod then never starts (token_file unreadable).
#[test]
fn review7_the_kustomization_says_how_to_make_the_secret_the_config_needs() {
    let kustomization = repo_file("deploy/kubernetes/kustomization.yaml");
    assert!(
        !kustomization.contains("kubectl create secret tls"),
        "kustomization.yaml says `kubectl create secret tls`: no admin.token key"
    );
}

/// A metadata server whose first answer (`stale`) waits until released; later ones are `fresh`
/// at once: an answer that was slow in flight while a newer one came back. The second notify says
/// the first request has arrived.
async fn slow_then_fast(
    stale: String,
    fresh: String,
) -> (String, std::sync::Arc<tokio::sync::Notify>, std::sync::Arc<tokio::sync::Notify>) {
    use std::sync::atomic::{AtomicBool, Ordering};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/md.xml", listener.local_addr().unwrap());
    let release = std::sync::Arc::new(tokio::sync::Notify::new());
    let arrived = std::sync::Arc::new(tokio::sync::Notify::new());
    let first = std::sync::Arc::new(AtomicBool::new(true));
    let (gate, bodies) = (release.clone(), std::sync::Arc::new((stale, fresh, arrived.clone())));
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let (gate, first, bodies) = (gate.clone(), first.clone(), bodies.clone());
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |_req: http::Request<hyper::body::Incoming>| {
                    let (gate, first, bodies) = (gate.clone(), first.clone(), bodies.clone());
                    async move {
                        let body = if first.swap(false, Ordering::SeqCst) {
                            bodies.2.notify_one();
                            gate.notified().await;
                            bodies.0.clone()
                        } else {
                            bodies.1.clone()
                        };
                        Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(
                            bytes::Bytes::from(body),
                        )))
                    }
                });
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, svc).await;
            });
        }
    });
    (url, release, arrived)
}

/// The scheduled fetch and an early fetch run at once (they do not share the single flight): the
/// one that answers last wins, even when it is the older document. A certificate the newer
/// metadata withdrew is trusted again until the next refresh.
#[tokio::test]
async fn review7_a_slow_stale_metadata_answer_does_not_bring_back_a_withdrawn_certificate() {
    let (url, release, _) =
        slow_then_fast(metadata(IDP, &["saml-idp"]), metadata(IDP, &["saml-untrusted"])).await;
    let g = gateway()
        .replace("certificates = [\"{certs}/saml-idp.pem\"]", &format!("metadata_url = \"{url}\""))
        .no_wait()
        .start()
        .await;
    // The scheduled first fetch is in flight (held); an assertion fetches early and gets the
    // current metadata, which names only the new certificate.
    g.clock.advance(Duration::from_secs(2));
    let new = assertion(&g, "saml-untrusted");
    let mut loaded = false;
    for _ in 0..200 {
        if status(&g, &new).await == StatusCode::OK {
            loaded = true;
            break;
        }
        g.clock.advance(Duration::from_secs(2));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(loaded, "the early fetch never loaded the current metadata");
    let old = assertion(&g, "saml-idp");
    assert_eq!(status(&g, &old).await, StatusCode::UNAUTHORIZED, "withdrawn");
    // The slow scheduled fetch now answers with the older document.
    release.notify_one();
    for _ in 0..100 {
        assert_eq!(
            status(&g, &old).await,
            StatusCode::UNAUTHORIZED,
            "the withdrawn certificate verifies again: the stale answer replaced the newer metadata"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Metadata past its `validUntil` (SAML metadata 2.0, 2.3.1: the expiration time of the metadata)
/// is used anyway: a replayed or long-stale copy brings back certificates the IdP has withdrawn.
#[tokio::test]
async fn review7_expired_metadata_is_not_trusted() {
    let expired = metadata(IDP, &["saml-idp"]).replacen(
        " entityID=",
        " validUntil=\"2020-01-01T00:00:00Z\" entityID=",
        1,
    );
    assert!(expired.contains("validUntil"));
    let server = MetadataServer::start(200, expired).await;
    let g = gateway()
        .replace("certificates = [\"{certs}/saml-idp.pem\"]", &format!("metadata_url = \"{}\"", server.url()))
        .no_wait()
        .start()
        .await;
    g.clock.advance(Duration::from_secs(2));
    assert_eq!(
        status(&g, &assertion(&g, "saml-idp")).await,
        StatusCode::UNAUTHORIZED,
        "an assertion verified with a certificate from metadata that expired in 2020"
    );
}

/// A request whose head is still arriving when the drain starts is dropped without an answer or a
/// decision record (`connection.rs`: `Stage::Closing` with no request yet is `Ending::Stopped`,
/// which `settle` does not record), where the same head cut by the header timeout is recorded.
#[tokio::test]
async fn review7_a_request_head_arriving_when_the_drain_starts_is_recorded() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut g = gateway().start().await;
    let mut s = tokio::net::TcpStream::connect(g.addr).await.unwrap();
    s.write_all(b"GET /v1/partial HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    // Let the gateway read the first bytes of the head (there is no event to wait for).
    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = g.stop().await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut answer)).await;
    assert!(!log.is_empty(), "no decision record; the client got {:?}", String::from_utf8_lossy(&answer));
}

/// An assertion that arrives while the scheduled fetch is in flight is refused at once (the
/// in-flight fetch stamped the rate limit: `TooSoon` / `Limited`) instead of waiting for that
/// fetch, which brings the certificate that verifies it. This is also why
/// `saml_metadata::browser_sign_in_goes_to_the_sso_url_the_metadata_names` fails now and then.
#[tokio::test]
async fn review7_an_assertion_waits_for_the_fetch_in_flight() {
    let good = metadata(IDP, &["saml-idp"]);
    let (url, release, arrived) = slow_then_fast(good.clone(), good).await;
    let g = gateway()
        .replace("certificates = [\"{certs}/saml-idp.pem\"]", &format!("metadata_url = \"{url}\""))
        .no_wait()
        .start()
        .await;
    tokio::time::timeout(Duration::from_secs(10), arrived.notified()).await.expect("the first fetch");
    let doc = assertion(&g, "saml-idp");
    let g = std::sync::Arc::new(g);
    let asking = {
        let g = g.clone();
        tokio::spawn(async move { status(&g, &doc).await })
    };
    // Give the request time to reach the early-fetch decision while the fetch is still held.
    tokio::time::sleep(Duration::from_millis(200)).await;
    release.notify_one();
    let got = tokio::time::timeout(Duration::from_secs(10), asking).await.expect("answered").unwrap();
    assert_eq!(got, StatusCode::OK, "refused while the fetch with its certificate was in flight");
}
