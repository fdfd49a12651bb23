//! Reloading the configuration in place, through the real binary: on SIGHUP and on a file edit,
//! under load with no failed request, a bad file refused while the old one serves, keys of an
//! unchanged issuer kept, no decision cached under the old rules reused, no replay across it.

use crate::binary::{Fixture, Running, fixture, start};
use crate::support::*;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use mfagate::dev::idp::TokenRequest;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

type Client =
    hyper_util::client::legacy::Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

fn client() -> Client {
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http()
}

/// The test configuration with a public admin listener (for /metrics and /readyz).
async fn reloadable(edit: impl FnOnce(String) -> String) -> Fixture {
    fixture(|text| edit(text.replace("[decision_log]", "[admin]\naddr = \"127.0.0.1:0\"\n\n[decision_log]")))
        .await
}

/// GET `url` with these headers: the status and body.
async fn get(client: &Client, url: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut req = http::Request::get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let rsp = client.request(req.body(Full::default()).unwrap()).await.unwrap();
    let status = rsp.status().as_u16();
    let body = rsp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// One sample of /metrics (`name` with its labels, as written).
async fn metric(admin: &str, name: &str) -> Option<f64> {
    let (_, body) = get(&client(), &format!("http://{admin}/metrics"), &[]).await;
    body.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// Waits (at most 30 s) until /metrics says `name` has reached `at_least`.
async fn metric_reaches(admin: &str, name: &str, at_least: f64) {
    let bound = Instant::now() + Duration::from_secs(30);
    loop {
        if metric(admin, name).await.is_some_and(|v| v >= at_least) {
            return;
        }
        assert!(Instant::now() < bound, "{name} never reached {at_least}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn generation(admin: &str) -> f64 {
    metric(admin, "mfagate_config_generation").await.expect("the generation is exported")
}

async fn until_ready(admin: &str) {
    let bound = Instant::now() + Duration::from_secs(30);
    while get(&client(), &format!("http://{admin}/readyz"), &[]).await.0 != 200 {
        assert!(Instant::now() < bound, "never ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The test configuration's gateway, run with `args`, once ready: its address and admin address.
async fn ready(args: &[&str]) -> (Fixture, Running, String, String) {
    let f = reloadable(|t| t).await;
    let running = start(&f.config, args);
    let (addr, admin) = (running.addr.clone(), running.admin.clone().unwrap());
    until_ready(&admin).await;
    (f, running, addr, admin)
}

fn hup(running: &Running) {
    let pid = running.child.id().to_string();
    assert!(Command::new("kill").args(["-HUP", &pid]).status().unwrap().success());
}

/// SIGTERM, then the exit status (at most 30 s).
fn stop(mut running: Running) -> Vec<String> {
    let pid = running.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = running.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    // Its standard error is closed now: the reader thread ends at its last line.
    running.stderr.iter().collect()
}

/// Writes the file as editors do: a new file renamed over the old one.
fn replace_file(path: &std::path::Path, text: &str) {
    let tmp = path.with_extension("toml.tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn edit_config(path: &std::path::Path, from: &str, to: &str) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "config has no {from:?}");
    text.replacen(from, to, 1)
}

/// Requests in a loop on pooled keep-alive connections, each expected to answer `want`; at most
/// 5,000 requests or 60 s.
struct Load {
    stop: Arc<AtomicBool>,
    done: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<Vec<String>>,
}

impl Load {
    fn start(url: String, headers: Vec<(String, String)>, want: u16) -> Load {
        let (stop, done) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicUsize::new(0)));
        let (s, d) = (stop.clone(), done.clone());
        let task = tokio::spawn(async move {
            let (client, mut failures) = (client(), Vec::new());
            let bound = Instant::now() + Duration::from_secs(60);
            for _ in 0..5_000 {
                if s.load(Ordering::Relaxed) || Instant::now() > bound {
                    break;
                }
                let headers: Vec<(&str, &str)> =
                    headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                let mut req = http::Request::get(&url);
                for (k, v) in headers {
                    req = req.header(k, v);
                }
                match client.request(req.body(Full::default()).unwrap()).await {
                    Ok(rsp) if rsp.status().as_u16() == want => {
                        let _ = rsp.into_body().collect().await;
                    }
                    Ok(rsp) => failures.push(format!("status {}", rsp.status())),
                    Err(e) => failures.push(format!("error {e}")),
                }
                d.fetch_add(1, Ordering::Relaxed);
            }
            failures
        });
        Load { stop, done, task }
    }

    /// Waits (at most 30 s) until `more` further requests were answered.
    async fn advance(&self, more: usize) {
        let target = self.done.load(Ordering::Relaxed) + more;
        let bound = Instant::now() + Duration::from_secs(30);
        while self.done.load(Ordering::Relaxed) < target {
            assert!(!self.task.is_finished(), "the load ended early");
            assert!(Instant::now() < bound, "the load stalled");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Stops the loop; asserts that every request got its answer.
    async fn finish(self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        let failures = self.task.await.unwrap();
        assert!(failures.is_empty(), "{} failed: {:?}", failures.len(), &failures[..failures.len().min(5)]);
        self.done.load(Ordering::Relaxed)
    }
}

const ADDED_ROUTE: &str = "[[route]]\nname = \"added\"\npath_prefix = \"/added/\"\nupstream = \"{echo}\"\nauth = \"none\"\n\n[[route]]\nname = \"api\"";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_routes_under_load_and_a_bad_file_is_refused_while_the_old_serves() {
    let (f, running, addr, admin) = ready(&["--no-watch-config"]).await;
    assert_eq!(generation(&admin).await, 1.0);
    assert_eq!(metric(&admin, "mfagate_config_last_reload_success").await, Some(1.0));
    let c = client();
    assert_eq!(get(&c, &format!("http://{addr}/added/x"), &[]).await.0, 404, "no such route yet");
    let token = f.idp.mint(&TokenRequest::default()).unwrap();
    let load = Load::start(
        format!("http://{addr}/v1/load"),
        vec![("authorization".into(), format!("Bearer {token}"))],
        200,
    );
    load.advance(20).await;

    let added =
        edit_config(&f.config, "[[route]]\nname = \"api\"", &ADDED_ROUTE.replace("{echo}", &f.echo.url()));
    std::fs::write(&f.config, &added).unwrap();
    hup(&running);
    metric_reaches(&admin, "mfagate_config_generation", 2.0).await;
    load.advance(20).await;
    assert_eq!(get(&c, &format!("http://{addr}/added/x"), &[]).await.0, 200, "the new route serves");
    // The new route's requests are counted under its name.
    metric_reaches(&admin, "mfagate_requests_total{route=\"added\",channel=\"api\",principal=\"anonymous\",mfa=\"none\",decision=\"allow\"}", 1.0).await;

    // A bad file: refused, its error logged, the running configuration still serving.
    std::fs::write(
        &f.config,
        added.replace(
            "path_prefix = \"/added/\"\nupstream = \"",
            "path_prefix = \"/added/\"\nupstream = \"nonsense",
        ),
    )
    .unwrap();
    hup(&running);
    metric_reaches(&admin, "mfagate_config_reloads_total{result=\"error\"}", 1.0).await;
    assert_eq!(metric(&admin, "mfagate_config_last_reload_success").await, Some(0.0));
    assert_eq!(generation(&admin).await, 2.0);
    assert!(metric(&admin, "mfagate_config_last_reload_timestamp_seconds").await.unwrap() > 1.7e9);
    load.advance(20).await;
    assert_eq!(get(&c, &format!("http://{addr}/added/x"), &[]).await.0, 200, "the old configuration serves");
    assert!(load.finish().await >= 60);
    let log = stop(running);
    let refused: Vec<&String> = log.iter().filter(|l| l.contains("Configuration reload refused")).collect();
    assert_eq!(refused.len(), 1, "one event per error: {refused:?}");
    let event: serde_json::Value = serde_json::from_str(refused[0]).unwrap();
    assert_eq!(event["level"], "ERROR");
    assert!(event["fields"]["problem"].as_str().unwrap().contains("route \"added\".upstream"), "{event}");
    assert!(log.iter().any(|l| l.contains("Configuration reloaded") && l.contains("\"generation\":2")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_in_flight_finishes_on_the_configuration_it_started_with() {
    let (f, running, addr, admin) = ready(&["--no-watch-config"]).await;
    let token = f.idp.mint(&TokenRequest::default()).unwrap();
    let bearer = format!("Bearer {token}");
    let in_flight = {
        let (url, bearer) = (format!("http://{addr}/v1/in-flight/wait"), bearer.clone());
        tokio::spawn(async move { get(&client(), &url, &[("authorization", &bearer)]).await.0 })
    };
    let bound = Instant::now() + Duration::from_secs(30);
    while f.echo.hits() == 0 {
        assert!(Instant::now() < bound, "the request never reached the upstream");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Its route goes away while it waits upstream.
    std::fs::write(&f.config, edit_config(&f.config, "path_prefix = \"/v1/\"", "path_prefix = \"/v9/\""))
        .unwrap();
    hup(&running);
    metric_reaches(&admin, "mfagate_config_generation", 2.0).await;
    assert_eq!(get(&client(), &format!("http://{addr}/v1/x"), &[("authorization", &bearer)]).await.0, 404);
    f.echo.release(1);
    assert_eq!(in_flight.await.unwrap(), 200, "the request in flight finished as it started");
    stop(running);
    let log = read_log(&f.dir.path().join("decisions.jsonl"));
    let record = log.iter().find(|r| r["path"] == "/v1/in-flight/wait").expect("recorded");
    assert_eq!((record["route"].as_str(), record["status"].as_u64()), (Some("api"), Some(200)));
}

/// Readiness never turns 200 on a reload that replaces the key sets it was waiting for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_not_ready_yet_waits_for_the_issuers_a_reload_brings() {
    let f = reloadable(|t| t).await;
    f.idp.set_available(false);
    let running = start(&f.config, &["--no-watch-config"]);
    let admin = running.admin.clone().unwrap();
    let readyz = format!("http://{admin}/readyz");
    assert_eq!(get(&client(), &readyz, &[]).await.0, 503);
    let keys = format!("jwks_uri = \"{}/keys\"", f.idp.base_url());
    let text = std::fs::read_to_string(&f.config).unwrap();
    std::fs::write(
        &f.config,
        text.replace(&keys, &format!("jwks_uri = \"{}/keys?moved=1\"", f.idp.base_url())),
    )
    .unwrap();
    hup(&running);
    metric_reaches(&admin, "mfagate_config_generation", 2.0).await;
    assert_eq!(get(&client(), &readyz, &[]).await.0, 503, "still waiting for keys");
    f.idp.set_available(true);
    until_ready(&admin).await;
    stop(running);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_edit_reloads_issuers_keeps_fetched_keys_and_reuses_no_decision_of_the_old_rules() {
    let (f, running, addr, admin) = ready(&[]).await;
    let c = client();
    let url = format!("http://{addr}/v1/x");
    // Accepted twice: the second answer comes from the verified-token cache.
    let cached = f.idp.mint(&TokenRequest::default()).unwrap();
    let bearer = format!("Bearer {cached}");
    for _ in 0..2 {
        assert_eq!(get(&c, &url, &[("authorization", &bearer)]).await.0, 200);
    }
    metric_reaches(&admin, "mfagate_token_cache_total{result=\"hit\"}", 1.0).await;
    let fetches = f.idp.jwks_fetches();
    // A token for the audience that stays, under load across the reloads.
    let staying = f
        .idp
        .mint(&TokenRequest { aud: "00000000-0000-4000-8000-0000000000aa".into(), ..TokenRequest::default() })
        .unwrap();
    let load = Load::start(url.clone(), vec![("authorization".into(), format!("Bearer {staying}"))], 200);
    load.advance(20).await;

    // Narrow the issuer's audiences: its key-fetch settings are unchanged.
    let narrowed = edit_config(
        &f.config,
        "audiences = [\"api://mfagate-demo\", \"00000000-0000-4000-8000-0000000000aa\"]",
        "audiences = [\"00000000-0000-4000-8000-0000000000aa\"]",
    );
    replace_file(&f.config, &narrowed);
    metric_reaches(&admin, "mfagate_config_generation", 2.0).await;
    load.advance(20).await;
    let (status, _) = get(&c, &url, &[("authorization", &bearer)]).await;
    assert_eq!(status, 401, "the token cached under the old audiences is refused under the new ones");
    assert_eq!(f.idp.jwks_fetches(), fetches, "the unchanged issuers' keys were not fetched again");
    assert_eq!(get(&c, &format!("http://{admin}/readyz"), &[]).await.0, 200);

    // A new issuer fetches its own keys; readiness does not wait for it.
    let added = narrowed.replacen(
        "[[issuer]]",
        &format!(
            "[[issuer]]\nname = \"added\"\nissuer = \"https://added.test/{{tenantid}}/\"\njwks_uri = \"{}/keys\"\naudiences = [\"api://added\"]\ntenants = [\"*\"]\n\n[[issuer]]",
            f.idp.base_url()
        ),
        1,
    );
    replace_file(&f.config, &added);
    metric_reaches(&admin, "mfagate_config_generation", 3.0).await;
    metric_reaches(&admin, "mfagate_jwks_fetch_total{issuer=\"added\",result=\"ok\"}", 1.0).await;
    assert_eq!(f.idp.jwks_fetches(), fetches + 1, "only the new issuer fetched");
    // An issuer added whose keys cannot load: readiness stays as it was for the others.
    let unreachable = added.replacen(
        "[[issuer]]",
        "[[issuer]]\nname = \"unreachable\"\nissuer = \"https://unreachable.test/\"\njwks_uri = \"http://127.0.0.1:1/keys\"\naudiences = [\"api://unreachable\"]\n\n[[issuer]]",
        1,
    );
    replace_file(&f.config, &unreachable);
    metric_reaches(&admin, "mfagate_config_generation", 4.0).await;
    metric_reaches(&admin, "mfagate_jwks_fetch_total{issuer=\"unreachable\",result=\"failed\"}", 1.0).await;
    assert_eq!(get(&c, &format!("http://{admin}/readyz"), &[]).await.0, 200);
    assert!(load.finish().await >= 40);
    stop(running);
}

/// A certificate for `localhost` signed by the development CA (`certs/ca.pem`), in `dir`.
fn new_certificate(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    use openssl::{asn1::Asn1Time, bn::BigNum, ec, hash::MessageDigest, pkey::PKey, x509};
    let ca_cert = x509::X509::from_pem(&std::fs::read(certs().join("ca.pem")).unwrap()).unwrap();
    let ca_key = PKey::private_key_from_pem(&std::fs::read(certs().join("ca.key")).unwrap()).unwrap();
    let group = ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).unwrap();
    let key = PKey::from_ec_key(ec::EcKey::generate(&group).unwrap()).unwrap();
    let mut name = x509::X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", "localhost").unwrap();
    let name = name.build();
    let mut b = x509::X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    b.set_serial_number(&BigNum::from_u32(4242).unwrap().to_asn1_integer().unwrap()).unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(ca_cert.subject_name()).unwrap();
    b.set_pubkey(&key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap()).unwrap();
    b.set_not_after(&Asn1Time::days_from_now(2).unwrap()).unwrap();
    let san = x509::extension::SubjectAlternativeName::new()
        .dns("localhost")
        .build(&b.x509v3_context(Some(&ca_cert), None))
        .unwrap();
    b.append_extension(san).unwrap();
    b.sign(&ca_key, MessageDigest::sha256()).unwrap();
    let (cert, key_file) = (dir.join("next.pem"), dir.join("next.key"));
    std::fs::write(&cert, b.build().to_pem().unwrap()).unwrap();
    std::fs::write(&key_file, key.private_key_to_pem_pkcs8().unwrap()).unwrap();
    (cert, key_file)
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// A TLS connection to `addr`: the certificate it presented, and an HTTP/1 sender on it.
async fn tls_connection(addr: &str) -> (Vec<u8>, Sender) {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = crate::connections::tls_connector(&[b"http/1.1"])
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .unwrap();
    let presented = tls.get_ref().1.peer_certificates().unwrap()[0].to_vec();
    let (send, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls)).await.unwrap();
    tokio::spawn(conn);
    (presented, send)
}

async fn send(sender: &mut Sender, path: &str) -> u16 {
    sender.ready().await.unwrap();
    let req = http::Request::get(path).header("host", "localhost").body(Full::default()).unwrap();
    let rsp = sender.send_request(req).await.unwrap();
    let status = rsp.status().as_u16();
    let _ = rsp.into_body().collect().await;
    status
}

fn der(pem: &std::path::Path) -> Vec<u8> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::CertificateDer::from_pem_file(pem).unwrap().to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_certificate_serves_new_connections_while_open_ones_go_on() {
    let f = reloadable(|t| {
        t.replace(
            "shutdown_grace_secs = 5",
            &format!(
                "shutdown_grace_secs = 5\ntls_cert = \"{}\"\ntls_key = \"{}\"",
                certs().join("server.pem").display(),
                certs().join("server.key").display()
            ),
        )
    })
    .await;
    let running = start(&f.config, &["--no-watch-config"]);
    let (addr, admin) = (running.addr.clone(), running.admin.clone().unwrap());
    until_ready(&admin).await;
    let (first, mut kept) = tls_connection(&addr).await;
    assert!(first == der(&certs().join("server.pem")), "the running certificate first");
    // Load: one keep-alive TLS connection opened before the reload, requests one after another.
    let done = Arc::new(AtomicUsize::new(0));
    let stop_load = Arc::new(AtomicBool::new(false));
    let load = {
        let (done, stop_load) = (done.clone(), stop_load.clone());
        tokio::spawn(async move {
            let bound = Instant::now() + Duration::from_secs(60);
            let mut statuses = Vec::new();
            while !stop_load.load(Ordering::Relaxed) && statuses.len() < 5_000 && Instant::now() < bound {
                statuses.push(send(&mut kept, "/public/x").await);
                done.fetch_add(1, Ordering::Relaxed);
            }
            statuses
        })
    };
    let advance = |n: usize| {
        let done = done.clone();
        async move {
            let target = done.load(Ordering::Relaxed) + n;
            let bound = Instant::now() + Duration::from_secs(30);
            while done.load(Ordering::Relaxed) < target {
                assert!(Instant::now() < bound, "the load stalled");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    };
    advance(20).await;
    let (cert, key) = new_certificate(f.dir.path());
    let text = std::fs::read_to_string(&f.config)
        .unwrap()
        .replace(&certs().join("server.pem").display().to_string(), &cert.display().to_string())
        .replace(&certs().join("server.key").display().to_string(), &key.display().to_string());
    std::fs::write(&f.config, text).unwrap();
    hup(&running);
    metric_reaches(&admin, "mfagate_config_generation", 2.0).await;
    advance(20).await;
    let (presented, mut fresh) = tls_connection(&addr).await;
    assert!(presented == der(&cert), "a new connection gets the new certificate");
    assert_eq!(send(&mut fresh, "/public/x").await, 200);
    stop_load.store(true, Ordering::Relaxed);
    let statuses = load.await.unwrap();
    assert!(statuses.len() >= 40 && statuses.iter().all(|s| *s == 200), "{statuses:?}");
    stop(running);
}

/// A certificate renewed in place (same file names, as a Kubernetes Secret or cert-manager does):
/// the file watch reloads it without a SIGHUP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_renewed_in_place_is_picked_up_by_the_watch() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("tls.pem"), dir.path().join("tls.key"));
    std::fs::copy(certs().join("server.pem"), &cert).unwrap();
    std::fs::copy(certs().join("server.key"), &key).unwrap();
    let tls = format!(
        "shutdown_grace_secs = 5\ntls_cert = \"{}\"\ntls_key = \"{}\"",
        cert.display(),
        key.display()
    );
    let f = reloadable(|t| t.replace("shutdown_grace_secs = 5", &tls)).await;
    let running = start(&f.config, &[]);
    let (addr, admin) = (running.addr.clone(), running.admin.clone().unwrap());
    until_ready(&admin).await;
    let (next_cert, next_key) = new_certificate(f.dir.path());
    std::fs::rename(&next_key, &key).unwrap();
    std::fs::rename(&next_cert, &cert).unwrap();
    metric_reaches(&admin, "mfagate_config_generation", 2.0).await;
    let (presented, mut fresh) = tls_connection(&addr).await;
    assert!(presented == der(&cert), "a new connection gets the renewed certificate");
    assert_eq!(send(&mut fresh, "/public/x").await, 200);
    stop(running);
}

const KEY_A: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
const KEY_B: &str = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_session_keys_keep_sessions_and_a_removed_key_ends_them() {
    let portal = format!(
        "\n[session]\nkeys = [\"{KEY_A}\"]\nsecure = false\n\n[[route]]\nname = \"portal\"\npath_prefix = \"/app/\"\nupstream = \"{{echo}}\"\nchannel = \"portal\"\nlogin = \"adfs\"\n"
    );
    let f = reloadable(|t| {
        format!("{t}{portal}")
            .replace(
                "entity_id = \"https://gateway.contoso.test/saml\"",
                "entity_id = \"https://gateway.contoso.test/saml\"\nacs_url = \"http://127.0.0.1:1/saml/acs\"",
            )
            .replace("/saml-idp.pem\"]", "/saml-idp.pem\"]\nsso_url = \"https://idp.contoso.test/sso\"")
    })
    .await;
    // The fixture fills `{echo}` before its edit runs.
    let text = std::fs::read_to_string(&f.config).unwrap().replace("{echo}", &f.echo.url());
    std::fs::write(&f.config, text).unwrap();
    let running = start(&f.config, &["--no-watch-config"]);
    let (addr, admin) = (running.addr.clone(), running.admin.clone().unwrap());
    until_ready(&admin).await;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let session = mfagate::browser::session::Session {
        sub: "00000000-0000-4000-8000-0000000b0001".into(),
        tid: Some(tenant().into()),
        upn: Some("adele@contoso.test".into()),
        mfa: true,
        auth_time: now,
        exp: now + 3600,
        idp: "adfs".into(),
        idp_fingerprint: mfagate::browser::session::idp_fingerprint(
            &mfagate::Config::load(&f.config).unwrap(),
            "adfs",
        ),
    };
    let name = mfagate::browser::session::SESSION_COOKIE;
    let sealer = mfagate::browser::session::Sealer::new(&[KEY_A.into()]).unwrap();
    let cookie = format!("{name}={}", sealer.seal(name, &session).unwrap());
    let url = format!("http://{addr}/app/x");
    assert_eq!(get(&client(), &url, &[("cookie", &cookie)]).await.0, 200, "the session is valid");
    let load = Load::start(url.clone(), vec![("cookie".into(), cookie.clone())], 200);
    load.advance(20).await;
    // Rotation: a new first key seals from now on; the old one still opens.
    let rotated = edit_config(
        &f.config,
        &format!("keys = [\"{KEY_A}\"]"),
        &format!("keys = [\"{KEY_B}\", \"{KEY_A}\"]"),
    );
    std::fs::write(&f.config, &rotated).unwrap();
    hup(&running);
    metric_reaches(&admin, "mfagate_config_generation", 2.0).await;
    load.advance(20).await;
    assert!(load.finish().await >= 40);
    // The old key removed: its sessions end (the browser is sent to sign in again).
    std::fs::write(&f.config, rotated.replace(&format!(", \"{KEY_A}\""), "")).unwrap();
    hup(&running);
    metric_reaches(&admin, "mfagate_config_generation", 3.0).await;
    let (status, _) = get(&client(), &url, &[("cookie", &cookie)]).await;
    assert_eq!(status, 302, "a session sealed with a removed key is no session");
    stop(running);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_time_assertion_used_before_a_reload_is_refused_after_it() {
    use base64::Engine;
    let (f, running, addr, admin) = ready(&["--no-watch-config"]).await;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let spec = mfagate::dev::saml_idp::AssertionSpec::new(crate::saml::IDP, crate::saml::SP, now);
    let once = crate::saml::signer("saml-idp")
        .sign(&spec.to_xml().replace("</saml:Conditions>", "<saml:OneTimeUse/></saml:Conditions>"))
        .unwrap();
    let header = format!("SAML {}", base64::engine::general_purpose::STANDARD.encode(once));
    let url = format!("http://{addr}/v1/x");
    assert_eq!(get(&client(), &url, &[("authorization", &header)]).await.0, 200, "first use");
    // Any change will do: the reload builds a new SAML verifier.
    std::fs::write(&f.config, edit_config(&f.config, "leeway_secs = 60", "leeway_secs = 30")).unwrap();
    hup(&running);
    metric_reaches(&admin, "mfagate_config_generation", 2.0).await;
    let (status, _) = get(&client(), &url, &[("authorization", &header)]).await;
    assert_eq!(status, 401, "replayed after the reload");
    stop(running);
    let log = read_log(&f.dir.path().join("decisions.jsonl"));
    assert_eq!(log.last().unwrap()["reason"], "assertion_replayed", "{:?}", log.last());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_reload_and_sighup_during_the_drain_end_in_a_clean_exit() {
    let f = reloadable(|t| t.replace("shutdown_delay_secs = 0", "shutdown_delay_secs = 1")).await;
    let mut running = start(&f.config, &["--no-watch-config"]);
    let admin = running.admin.clone().unwrap();
    until_ready(&admin).await;
    std::fs::write(&f.config, edit_config(&f.config, "leeway_secs = 60", "leeway_secs = 30")).unwrap();
    let pid = running.child.id().to_string();
    hup(&running);
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    // The drain has begun: a SIGHUP now changes nothing.
    let bound = Instant::now() + Duration::from_secs(10);
    while get(&client(), &format!("http://{admin}/readyz"), &[]).await.0 != 503 {
        assert!(Instant::now() < bound, "/readyz never turned 503");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let before = generation(&admin).await;
    hup(&running);
    hup(&running);
    let status = running.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(before <= 2.0);
    let log: Vec<String> = running.stderr.iter().collect();
    assert!(!log.iter().any(|l| l.contains("panicked")), "{log:?}");
    assert!(log.iter().any(|l| l.contains("Reload ignored: shutting down")), "{log:?}");
}
