//! Connections: slow and silent clients are closed on deadlines, caps refuse the extra connection,
//! what hyper answers itself leaves a record, and /metrics shows all of it.

use crate::support::*;
use http::StatusCode;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Generous upper bound for a socket event: the tests wait for the server, never for time.
pub(crate) const BOUND: Duration = Duration::from_secs(10);
const GRACE: &str = "shutdown_grace_secs = 5";

fn listen(extra: &str) -> Builder {
    gateway().replace(GRACE, &format!("{GRACE}\n{extra}"))
}

/// Reads until the server closes the connection (EOF or reset); `None` if it is still open after `within`.
async fn closed<S: AsyncRead + Unpin>(mut s: S, within: Duration) -> Option<Vec<u8>> {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(within, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .ok()
    .map(|()| seen)
}

/// Every stream is closed by the server within [`BOUND`], and not before a 1-second header
/// timeout counted from `since` (taken before the first of them connected).
async fn all_closed<S: AsyncRead + Unpin>(streams: Vec<S>, since: Instant) {
    let n = streams.len();
    let waits: Vec<_> = streams.into_iter().map(|s| Box::pin(closed(s, BOUND))).collect();
    let results = join_all(waits).await;
    let open = results.iter().filter(|r| r.is_none()).count();
    assert_eq!(open, 0, "{open} of {n} connections still open after {BOUND:?}");
    assert!(since.elapsed() >= Duration::from_millis(900), "closed before the header timeout");
}

/// One sample of /metrics, by its full name and labels.
pub(crate) async fn metric(g: &Gateway, series: &str) -> u64 {
    let text = g.admin_get("/metrics").await.body;
    let prefix = format!("{series} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
        .parse()
        .unwrap()
}

/// Waits (bounded) until a sample reaches `want`; the server counts after it closes the socket.
async fn metric_reaches(g: &Gateway, series: &str, want: u64) {
    let start = Instant::now();
    loop {
        let got = metric(g, series).await;
        if got == want {
            return;
        }
        assert!(start.elapsed() < BOUND, "{series} is {got}, expected {want}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub(crate) async fn connect_from(ip: &str, to: std::net::SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{ip}:0").parse().unwrap()).unwrap();
    socket.connect(to).await.unwrap()
}

/// Sends one request and reads its response (head and Content-Length body), leaving the
/// connection open.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S, request: &str) -> String {
    s.write_all(request.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(BOUND, s.read(&mut buf)).await.unwrap().unwrap();
        assert!(n > 0, "closed mid-response: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length: ").map(str::to_owned))
                .map_or(0, |v| v.trim().parse().unwrap());
            if body.len() >= length {
                return text;
            }
        }
    }
}

/// `n` connections that send `bytes` (perhaps none), then nothing more.
async fn stalled(addr: std::net::SocketAddr, n: usize, bytes: &[u8]) -> Vec<TcpStream> {
    let mut streams = Vec::new();
    for _ in 0..n {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(bytes).await.unwrap();
        streams.push(s);
    }
    streams
}

const PUBLIC_GET: &str = "GET /public/x HTTP/1.1\r\nHost: x\r\n\r\n";
const PARTIAL_HEAD: &[u8] = b"GET /public/x HTTP/1.1\r\nHost: x\r\n";

fn header_timeouts(log: &[serde_json::Value]) -> Vec<&serde_json::Value> {
    log.iter().filter(|r| r["reason"] == "header_timeout").collect()
}

#[tokio::test]
async fn silent_and_partial_preface_connections_are_closed_after_the_header_timeout() {
    let mut g = listen("header_read_timeout_secs = 1").start().await;
    let since = Instant::now();
    let mut streams = stalled(g.addr, 100, b"").await;
    streams.extend(stalled(g.addr, 20, b"PRI * HT").await);
    streams.extend(stalled(g.addr, 1, PARTIAL_HEAD).await);
    all_closed(streams, since).await;
    metric_reaches(&g, "mfagate_connections_closed_total{reason=\"header_timeout\"}", 121).await;
    // A client that sends its head in time is served as before.
    assert_eq!(g.get("/public/x", None).await.status, StatusCode::OK);
    assert_eq!(g.echo.hits(), 1);
    let log = g.stop().await;
    // Only the begun HTTP/1 request is a request: silence and a partial preface leave no record.
    let timeouts = header_timeouts(&log);
    assert_eq!(timeouts.len(), 1, "{log:?}");
    let r = timeouts[0];
    assert_eq!((r["status"].as_u64(), r["source_ip"].as_str()), (Some(408), Some("127.0.0.1")));
    assert_eq!(
        (r["route"].as_str(), r["path"].as_str(), r["decision"].as_str()),
        (None, Some(""), Some("deny"))
    );
}

/// A TLS client trusting `certs/ca.pem`, offering these ALPN protocols.
pub(crate) fn tls_connector(alpn: &[&[u8]]) -> tokio_rustls::TlsConnector {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    mfagate::outbound::install_crypto_provider();
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(certs().join("ca.pem")).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
}

async fn tls_connect(
    connector: &tokio_rustls::TlsConnector,
    addr: std::net::SocketAddr,
    alpn: &[u8],
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let tls = connector.connect("localhost".try_into().unwrap(), tcp).await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(alpn));
    tls
}

#[tokio::test]
async fn over_tls_slow_handshakes_and_partial_prefaces_are_closed_too() {
    let mut g = listen("header_read_timeout_secs = 1").tls().start().await;
    let since = Instant::now();
    // TCP connected, no handshake at all, or a handshake that stops after its first bytes.
    let mut plain = stalled(g.addr, 100, b"").await;
    plain.extend(stalled(g.addr, 10, &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]).await);
    // Handshake done (h2 by ALPN), then a partial preface; and one partial HTTP/1 head.
    let (h2, h1) = (tls_connector(&[b"h2", b"http/1.1"]), tls_connector(&[b"http/1.1"]));
    let mut tls = Vec::new();
    for _ in 0..20 {
        let mut s = tls_connect(&h2, g.addr, b"h2").await;
        s.write_all(b"PRI * HT").await.unwrap();
        tls.push(s);
    }
    let mut partial = tls_connect(&h1, g.addr, b"http/1.1").await;
    partial.write_all(PARTIAL_HEAD).await.unwrap();
    tls.push(partial);
    tokio::join!(all_closed(plain, since), all_closed(tls, since));
    metric_reaches(&g, "mfagate_connections_closed_total{reason=\"header_timeout\"}", 131).await;
    let log = g.stop().await;
    let timeouts = header_timeouts(&log);
    assert_eq!(timeouts.len(), 1, "only the HTTP/1 head is a request: {log:?}");
    assert_eq!(timeouts[0]["status"], 408);
}

#[tokio::test]
async fn caps_close_the_extra_connection_at_once_and_a_closed_one_frees_its_slot() {
    let g = listen("header_read_timeout_secs = 30\nmax_connections = 4\nmax_connections_per_ip = 3")
        .start()
        .await;
    let mut first = Vec::new();
    for _ in 0..3 {
        first.push(connect_from("127.0.0.1", g.addr).await);
    }
    // The 4th from the same address is over the per-address cap: closed before any byte.
    let over_ip = connect_from("127.0.0.1", g.addr).await;
    assert_eq!(closed(over_ip, BOUND).await, Some(Vec::new()), "closed at once, nothing said");
    // Another address still gets the last slot, and is served.
    let mut other = connect_from("127.0.0.2", g.addr).await;
    assert!(exchange(&mut other, PUBLIC_GET).await.starts_with("HTTP/1.1 200"));
    // Now the global cap is full, for every address.
    let over_total = connect_from("127.0.0.3", g.addr).await;
    assert_eq!(closed(over_total, BOUND).await, Some(Vec::new()));
    for s in first.iter_mut() {
        assert!(closed(s, Duration::from_millis(200)).await.is_none(), "admitted connections stay open");
    }
    assert_eq!(metric(&g, "mfagate_connections_open").await, 4);
    assert_eq!(metric(&g, "mfagate_connections_max").await, 4);
    assert_eq!(metric(&g, "mfagate_connections_accepted_total").await, 6);
    assert_eq!(metric(&g, "mfagate_connections_refused_total{reason=\"max_connections_per_ip\"}").await, 1);
    assert_eq!(metric(&g, "mfagate_connections_refused_total{reason=\"max_connections\"}").await, 1);
    // One closes: its slot (and its address's) frees.
    drop(first.pop());
    metric_reaches(&g, "mfagate_connections_open", 3).await;
    let mut again = connect_from("127.0.0.1", g.addr).await;
    assert!(exchange(&mut again, PUBLIC_GET).await.starts_with("HTTP/1.1 200"));
    assert_eq!(metric(&g, "mfagate_connections_open").await, 4);
}

#[tokio::test]
async fn what_hyper_answers_itself_is_recorded_and_counted() {
    let mut g = gateway().start().await;
    let mut s = TcpStream::connect(g.addr).await.unwrap();
    let big = format!("GET /v1/x HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "a".repeat(20_000));
    s.write_all(big.as_bytes()).await.unwrap();
    let answer = closed(s, BOUND).await.expect("closed after the answer");
    assert!(answer.starts_with(b"HTTP/1.1 431"), "{}", String::from_utf8_lossy(&answer));
    let mut s = TcpStream::connect(g.addr).await.unwrap();
    s.write_all(b"GET /v1/x HTTP/9.9\r\nHost: x\r\n\r\n").await.unwrap();
    let answer = closed(s, BOUND).await.expect("closed after the answer");
    assert!(answer.starts_with(b"HTTP/1.1 400"), "{}", String::from_utf8_lossy(&answer));
    metric_reaches(&g, "mfagate_connection_errors_total{kind=\"header_too_large\"}", 1).await;
    metric_reaches(&g, "mfagate_connection_errors_total{kind=\"bad_request\"}", 1).await;
    assert_eq!(g.echo.hits(), 0);
    let log = g.stop().await;
    let got: Vec<_> = log
        .iter()
        .map(|r| {
            (r["reason"].as_str().unwrap(), r["status"].as_u64().unwrap(), r["source_ip"].as_str().unwrap())
        })
        .collect();
    assert!(got.contains(&("header_too_large", 431, "127.0.0.1")), "{got:?}");
    assert!(got.contains(&("bad_request", 400, "127.0.0.1")), "{got:?}");
    assert!(log.iter().all(|r| r["route"].is_null() && r["decision"] == "deny"));
}

#[tokio::test]
async fn keep_alive_connections_close_when_idle_and_slow_later_heads_time_out() {
    let mut g = listen("header_read_timeout_secs = 1\nidle_timeout_secs = 3").start().await;
    // Idle after a response: closed by the idle timeout (HTTP/1).
    let mut idle = TcpStream::connect(g.addr).await.unwrap();
    assert!(exchange(&mut idle, PUBLIC_GET).await.starts_with("HTTP/1.1 200"));
    // A second head begun and never finished: closed by the header timeout, recorded.
    let mut slow = TcpStream::connect(g.addr).await.unwrap();
    assert!(exchange(&mut slow, PUBLIC_GET).await.starts_with("HTTP/1.1 200"));
    slow.write_all(PARTIAL_HEAD).await.unwrap();
    assert_eq!(closed(slow, BOUND).await, Some(Vec::new()));
    assert_eq!(closed(idle, BOUND).await, Some(Vec::new()));
    // Each by its own deadline: the header timeout for the begun head, idle for the other.
    metric_reaches(&g, "mfagate_connections_closed_total{reason=\"header_timeout\"}", 1).await;
    metric_reaches(&g, "mfagate_connections_closed_total{reason=\"idle\"}", 1).await;
    // HTTP/2 (prior knowledge): the idle connection gets a GOAWAY and closes.
    let h2 = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let rsp = h2.get(format!("http://{}/public/h2", g.addr).parse().unwrap()).await.unwrap();
    assert_eq!((rsp.status(), rsp.version()), (StatusCode::OK, http::Version::HTTP_2));
    drop(rsp);
    metric_reaches(&g, "mfagate_connections_closed_total{reason=\"idle\"}", 2).await;
    metric_reaches(&g, "mfagate_connections_open", 0).await;
    let log = g.stop().await;
    assert_eq!(header_timeouts(&log).len(), 1, "{log:?}");
}

#[tokio::test]
async fn a_client_that_stops_reading_its_response_is_cut_off() {
    let g = listen("idle_timeout_secs = 1").start().await;
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut s = socket.connect(g.addr).await.unwrap();
    s.write_all(b"GET /public/large HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    // Nothing is read: the gateway's writes stop moving, and it gives up on the connection.
    metric_reaches(&g, "mfagate_connections_closed_total{reason=\"send_timeout\"}", 1).await;
    let got = closed(s, BOUND).await.expect("closed");
    assert!(got.starts_with(b"HTTP/1.1 200"));
    assert!(got.len() < 16 << 20, "the 16 MiB response was cut off");
    metric_reaches(&g, "mfagate_connections_open", 0).await;
}

const UPGRADE: &str = "GET /public/socket HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";

async fn open_tunnel(g: &Gateway) -> TcpStream {
    let mut s = TcpStream::connect(g.addr).await.unwrap();
    s.write_all(UPGRADE.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(BOUND, s.read(&mut buf)).await.unwrap().unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&buf[..n]));
    s.write_all(b"hello").await.unwrap();
    let mut echoed = [0u8; 5];
    tokio::time::timeout(BOUND, s.read_exact(&mut echoed)).await.unwrap().unwrap();
    assert_eq!(&echoed, b"hello");
    s
}

#[tokio::test]
async fn an_idle_websocket_tunnel_is_closed() {
    let g = listen("websocket_idle_timeout_secs = 1").start().await;
    let tunnel = open_tunnel(&g).await;
    assert_eq!(closed(tunnel, BOUND).await, Some(Vec::new()));
    metric_reaches(&g, "mfagate_connections_closed_total{reason=\"websocket_idle\"}", 1).await;
    metric_reaches(&g, "mfagate_connections_open", 0).await;
}

#[tokio::test]
async fn a_websocket_tunnel_keeps_its_connection_slot() {
    let g = listen("max_connections = 1").start().await;
    let mut tunnel = open_tunnel(&g).await;
    // hyper is done with the connection; the tunnel still holds the only slot.
    let refused = TcpStream::connect(g.addr).await.unwrap();
    assert_eq!(closed(refused, BOUND).await, Some(Vec::new()));
    assert_eq!(metric(&g, "mfagate_connections_refused_total{reason=\"max_connections\"}").await, 1);
    tunnel.write_all(b"still").await.unwrap();
    let mut echoed = [0u8; 5];
    tunnel.read_exact(&mut echoed).await.unwrap();
    drop(tunnel);
    metric_reaches(&g, "mfagate_connections_open", 0).await;
    assert_eq!(g.get("/public/x", None).await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_stalled_acs_post_gets_408_and_a_record() {
    let mut g = listen("body_read_timeout_secs = 1")
        .replace(
            "entity_id = \"https://gateway.contoso.test/saml\"",
            "entity_id = \"https://gateway.contoso.test/saml\"\nacs_url = \"{gw}/saml/acs\"",
        )
        .start()
        .await;
    let mut s = TcpStream::connect(g.addr).await.unwrap();
    s.write_all(b"POST /saml/acs HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\nSAMLResponse=PHNhbWxw")
        .await
        .unwrap();
    let answer = closed(s, BOUND).await.expect("answered and closed");
    assert!(answer.starts_with(b"HTTP/1.1 408"), "{}", String::from_utf8_lossy(&answer));
    let log = g.stop().await;
    assert_eq!(log.len(), 1, "{log:?}");
    let r = &log[0];
    assert_eq!(
        (r["reason"].as_str(), r["status"].as_u64(), r["channel"].as_str(), r["path"].as_str()),
        (Some("body_timeout"), Some(408), Some("portal"), Some("/saml/acs"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_enforces_the_cap_and_the_header_timeout() {
    let clock = std::sync::Arc::new(mfagate::clock::SystemClock);
    let idp = mfagate::dev::idp::DevIdp::start(
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        dev_keys(),
        clock,
    )
    .unwrap();
    let echo =
        mfagate::dev::echo::Echo::start(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mfagate.toml");
    let text = render_config(CONFIG, &idp, &echo, dir.path())
        .replace(GRACE, &format!("{GRACE}\nheader_read_timeout_secs = 1\nmax_connections = 2"));
    std::fs::write(&config, text).unwrap();
    let (child, addr) = crate::binary::run(&config);
    let mut child = KillOnDrop(child);
    let addr: std::net::SocketAddr = addr.parse().unwrap();
    let since = Instant::now();
    let silent = stalled(addr, 2, b"").await;
    let over = TcpStream::connect(addr).await.unwrap();
    assert_eq!(closed(over, BOUND).await, Some(Vec::new()), "over the cap: closed at once");
    all_closed(silent, since).await;
    // The slots are free again.
    let mut s = TcpStream::connect(addr).await.unwrap();
    assert!(exchange(&mut s, PUBLIC_GET).await.starts_with("HTTP/1.1 200"));
    drop(s);
    let pid = child.0.id().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    assert!(child.0.wait().unwrap().success());
}

/// A failed assertion must not leave the gateway running.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
