//! The third adversarial review, of the fixes for the first two: each test is a way around the
//! gate (or an ordinary request wrongly refused), written as the behaviour the gate must have,
//! so it fails until the gate is fixed.

use crate::connections::{BOUND, connect_from, metric};
use crate::hostile::raw;
use crate::review2_findings::{h2_connection, metric_within};
use crate::support::*;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use mfagate::dev::idp::TokenRequest;
use std::time::{Duration, Instant};

const FORM: &str = "application/x-www-form-urlencoded";

/// One request over a fresh connection: (status, how many requests reached the upstream).
async fn send(g: &Gateway, method: &str, path: &str, extra: &str, body: &str) -> (u16, u64) {
    let hits = g.echo.hits();
    let (status, _) = raw(
        g.addr,
        &format!(
            "{method} {path} HTTP/1.1\r\nHost: gw.test\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
    .await;
    (status, g.echo.hits() - hits)
}

/// A POST is "held to every route it could become", but only to those routes' `rule` (auth,
/// mfa, app_only, mode): the credential was taken under the chosen route, with the chosen
/// route's `issuers`. A route's `issuers` is what keeps other tenants out (a multi-tenant issuer,
/// `tenants = ["*"]`, beside the partner's own): here DELETE takes only `dev`, and a token from
/// `dev-v2` (any tenant, MFA) gets 401 `unknown_issuer` on a real DELETE, yet the same token's
/// POST with `_method=DELETE` reaches the upstream.
#[tokio::test]
async fn a_method_override_is_held_to_the_other_routes_issuers() {
    const ROUTES: &str = "\n[[route]]\nname = \"orders-delete\"\npath_prefix = \"/orders/\"\nmethods = [\"DELETE\"]\nupstream = \"{echo}\"\nissuers = [\"dev\"]\n\n[[route]]\nname = \"orders\"\npath_prefix = \"/orders/\"\nupstream = \"{echo}\"\n";
    let mut g = gateway().append(ROUTES).start().await;
    let other_tenant = TokenRequest {
        ver: "2.0".into(),
        tid: "99999999-8888-4777-8666-555555555555".into(),
        ..TokenRequest::default()
    };
    let token = g.token_for(&other_tenant, |_| {});
    let auth = format!("Authorization: Bearer {token}\r\n");
    // Controls: the token is good for `orders`, and a real DELETE is refused for its issuer.
    assert_eq!(send(&g, "GET", "/orders/1", &auth, "").await, (200, 1), "control: GET under `orders`");
    assert_eq!(send(&g, "DELETE", "/orders/1", &auth, "").await, (401, 0), "control: a real DELETE");
    let extra = format!("{auth}Content-Type: {FORM}\r\n");
    let (status, reached) = send(&g, "POST", "/orders/1", &extra, "_method=DELETE").await;
    let log = g.stop().await;
    assert_eq!(log[1]["reason"], "unknown_issuer", "control: {}", log[1]);
    assert_eq!(
        (status, reached),
        (401, 0),
        "a POST with _method=DELETE from an issuer the DELETE route does not take reached the upstream (record: {})",
        log[2]
    );
}

/// `strictest_target` skips routes of the other channel ("a portal route and an API route are
/// not one handler"), though both name one upstream. A portal at `/app/` (sign-in, MFA) with a
/// public POST-only API route for webhooks under it: a real DELETE of `/app/hooks/1` is the
/// portal's (sign-in first), and a POST there with `_method=DELETE` reaches the upstream with no
/// session at all.
#[tokio::test]
async fn a_method_override_is_held_to_a_portal_route_of_the_same_path() {
    const HOOKS: &str = "\n[[route]]\nname = \"app-hooks\"\npath_prefix = \"/app/hooks/\"\nmethods = [\"POST\"]\nupstream = \"{echo}\"\nauth = \"none\"\n";
    let mut g = gateway()
        .saml_sign_in()
        .append(crate::portal::SESSION)
        .append(crate::portal::SAML_ROUTE)
        .append(HOOKS)
        .start()
        .await;
    let (delete, reached) = send(&g, "DELETE", "/app/hooks/1", "", "").await;
    assert_eq!(reached, 0, "control: a real DELETE is the portal's ({delete})");
    let extra = format!("Content-Type: {FORM}\r\n");
    let (status, reached) = send(&g, "POST", "/app/hooks/1", &extra, "_method=DELETE").await;
    let log = g.stop().await;
    assert_eq!(
        reached,
        0,
        "a POST with _method=DELETE and no session reached the upstream ({status}; record: {})",
        log.last().unwrap()
    );
}

/// A report-only route exists to show what enforcing it would refuse. A POST that could become
/// its DELETE is forwarded (right, it is report-only), but recorded as the chosen route's
/// `allow`: the would-be denial is in no record, and the operator who switches to `enforce` on
/// the strength of a clean report then refuses requests the report never showed.
#[tokio::test]
async fn a_method_override_records_what_a_report_only_route_would_refuse() {
    const ROUTES: &str = "\n[[route]]\nname = \"orders-delete\"\npath_prefix = \"/orders/\"\nmethods = [\"DELETE\"]\nupstream = \"{echo}\"\nmode = \"report-only\"\n\n[[route]]\nname = \"orders\"\npath_prefix = \"/orders/\"\nupstream = \"{echo}\"\nauth = \"none\"\n";
    let mut g = gateway().append(ROUTES).start().await;
    let extra = format!("Content-Type: {FORM}\r\n");
    let (status, reached) = send(&g, "POST", "/orders/1", &extra, "_method=DELETE").await;
    assert_eq!((status, reached), (200, 1), "control: report-only forwards");
    let log = g.stop().await;
    let rec = &log[0];
    assert_eq!(
        (rec["decision"].as_str(), rec["enforced"].as_bool()),
        (Some("deny"), Some(false)),
        "the record of a POST the report-only route would refuse shows no would-be denial: {rec}"
    );
}

/// False positive: a public webhook route restricted to POST (the careful configuration) under
/// a protected prefix refuses every webhook, since the POST "could become" a GET of the
/// protected route; the same route without `methods` (every method public) lets them through.
/// An operator's way out is to widen the public route, or to drop the protected one.
#[tokio::test]
async fn a_post_only_public_route_takes_its_posts() {
    // By default the POST is held to `site` (its upstream could honour `_method`); a route whose
    // upstream does not says so with `method_overrides = false`.
    const ROUTES: &str = "\n[[route]]\nname = \"site\"\npath_prefix = \"/site/\"\nupstream = \"{echo}\"\n\n[[route]]\nname = \"site-hooks\"\npath_prefix = \"/site/hooks/\"\nmethods = [\"POST\"]\nupstream = \"{echo}\"\nauth = \"none\"\n";
    let mut held = gateway().append(ROUTES).start().await;
    let (status, reached) = send(&held, "POST", "/site/hooks/github", "", "{}").await;
    assert_eq!((status, reached), (401, 0), "held to the route a _method override would reach");
    held.stop().await;
    let mut g = gateway()
        .append(&ROUTES.replace("auth = \"none\"\n", "auth = \"none\"\nmethod_overrides = false\n"))
        .start()
        .await;
    let extra = "Content-Type: application/json\r\n";
    let (status, reached) = send(&g, "POST", "/site/hooks/github", extra, r#"{"action":"opened"}"#).await;
    let log = g.stop().await;
    assert_eq!(
        (status, reached),
        (200, 1),
        "an anonymous webhook POST to a public POST-only route was refused (record: {})",
        log[0]
    );
}

/// The upstream slots are `max_connections` for the whole gateway, and one HTTP/2 connection
/// may take up to 100 of them: a single client within `max_connections_per_ip = 1` takes every
/// slot with four slow requests on one connection, and every other client (another address)
/// gets 503 `upstream_busy`.
#[tokio::test]
async fn one_http2_connection_cannot_take_every_upstream_slot() {
    const SLOTS: usize = 4;
    const QUICK: &str = "\n[[route]]\nname = \"quick\"\npath_prefix = \"/quick/\"\nupstream = \"{echo}\"\nauth = \"none\"\ntimeout_secs = 1\n";
    let g = gateway().listen("max_connections = 4\nmax_connections_per_ip = 1").append(QUICK).start().await;
    let send = h2_connection(&g, None).await;
    let hits = g.echo.hits();
    let mut tasks = Vec::new();
    for i in 0..SLOTS {
        let mut send = send.clone();
        tasks.push(tokio::spawn(async move {
            let req = Request::get(format!("http://gw.test/public/{i}/wait")).body(Full::default()).unwrap();
            if let Ok(rsp) = send.send_request(req).await {
                let _ = rsp.into_body().collect().await;
            }
        }));
    }
    // The address may hold as many upstream slots as connections (one): the other streams are
    // answered 503 at once, the first waits at the upstream.
    let start = Instant::now();
    let done = || tasks.iter().filter(|t| t.is_finished()).count();
    while done() < SLOTS - 1 && start.elapsed() < BOUND {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(done(), SLOTS - 1, "the streams past the address's slot were answered at once");
    let start = Instant::now();
    while g.echo.hits() - hits < 1 && start.elapsed() < BOUND {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(g.echo.hits() - hits, 1, "control: one slow request reached the upstream");
    // Another client, from another address, on a route that waits 1 s for a slot.
    let mut other = connect_from("127.0.0.2", g.addr).await;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    other.write_all(b"GET /quick/x HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(BOUND, other.read_to_end(&mut out)).await.unwrap().unwrap();
    let answer = String::from_utf8_lossy(&out).into_owned();
    g.echo.release(SLOTS);
    for t in tasks {
        let _ = tokio::time::timeout(BOUND, t).await;
    }
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "a second client was refused while one HTTP/2 connection held every upstream slot: {} {}",
        answer.lines().next().unwrap_or_default(),
        answer.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default()
    );
}

/// The HTTP/2 stall check keeps one time for the whole connection (`handed_since`), moved by
/// every stream's frames. A client that never reads one response (no window for it) but keeps
/// another stream busy with small requests is never cut off: the stalled stream keeps its
/// upstream slot (and the upstream connection) for as long as the client likes.
#[tokio::test]
async fn a_stalled_http2_stream_is_cut_off_while_another_stream_moves() {
    let g = gateway().listen("idle_timeout_secs = 1").start().await;
    let mut send = h2_connection(&g, None).await;
    let req = Request::get("http://gw.test/public/large").body(Full::default()).unwrap();
    let stalled = send.send_request(req).await.unwrap();
    assert_eq!(stalled.status(), StatusCode::OK);
    // The large body is never read; another stream asks for a small answer every 200 ms.
    let start = Instant::now();
    let mut answered = 0;
    while start.elapsed() < Duration::from_secs(5) {
        let req = Request::get("http://gw.test/public/x").body(Full::default()).unwrap();
        let Ok(Ok(rsp)) = tokio::time::timeout(BOUND, send.send_request(req)).await else {
            break;
        };
        if rsp.into_body().collect().await.is_err() {
            break;
        }
        answered += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let cut = metric_within(
        &g,
        "mfagate_connections_closed_total{reason=\"send_timeout\"}",
        1,
        Duration::from_millis(500),
    )
    .await;
    let open = metric(&g, "mfagate_connections_open").await;
    drop(stalled);
    assert!(
        cut,
        "5 s after a 1 s idle timeout a stream with no window is still served ({answered} other requests answered, {open} connection(s) open)"
    );
}

/// False positive: on HTTP/2 a response is cut off when one body frame is not taken within
/// `idle_timeout_secs`, however steadily the client reads. Upstream frames are as large as
/// hyper's read buffer (hundreds of KiB from a fast upstream), so a client reading 16 KiB every
/// 100 ms through a 16 KiB window (~60 KiB/s seen; a slow mobile link does less against the 75 s
/// default with frames this size) is cut off as "not reading" within 2 s; on HTTP/1 the same
/// reader keeps its connection, since its writes move.
#[tokio::test]
async fn a_slow_but_steady_http2_reader_is_not_cut_off() {
    let g = gateway().listen("idle_timeout_secs = 1").start().await;
    {
        // Control: the same reader over HTTP/1 (16 KiB every 100 ms for 4 s) keeps its connection.
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(g.addr).await.unwrap();
        s.write_all(b"GET /public/large HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let start = Instant::now();
        let mut buf = vec![0u8; 16_384];
        while start.elapsed() < Duration::from_secs(4) {
            let n = tokio::time::timeout(BOUND, s.read(&mut buf)).await.unwrap().unwrap();
            assert!(n > 0, "control: the HTTP/1 reader was cut off after {:?}", start.elapsed());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // The control's own connection may count a late socket wake-up as a stall: count from here.
    let before = metric(&g, "mfagate_connections_closed_total{reason=\"send_timeout\"}").await;
    let mut send = h2_connection(&g, Some(16_384)).await;
    let req = Request::get("http://gw.test/public/large").body(Full::default()).unwrap();
    let rsp = send.send_request(req).await.unwrap();
    assert_eq!(rsp.status(), StatusCode::OK);
    let mut body = rsp.into_body();
    let start = Instant::now();
    let mut read = 0usize;
    let mut failed = None;
    // Read for 4 s, every 100 ms (the client's window is released as frames are read).
    while start.elapsed() < Duration::from_secs(4) {
        match tokio::time::timeout(BOUND, body.frame()).await {
            Ok(Some(Ok(frame))) => read += frame.data_ref().map_or(0, |d| d.len()),
            Ok(Some(Err(e))) => {
                failed = Some(e.to_string());
                break;
            }
            Ok(None) => break,
            Err(_) => panic!("no frame within {BOUND:?}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let cut = metric(&g, "mfagate_connections_closed_total{reason=\"send_timeout\"}").await - before;
    assert!(
        failed.is_none() && cut == 0,
        "a client reading {read} bytes in {:?} without pause was cut off as not reading: {failed:?}",
        start.elapsed()
    );
}

/// Path spellings a Windows or suffix-matching upstream serves under a protected prefix, which
/// the gateway decides under another route (here a public catch-all): a format suffix before a
/// trailing slash (Rails' router drops the trailing slash, then reads `.json` as the format, as
/// for `/admin.json`, which the gateway already puts under `/admin`), and an 8.3 short name (`ADMINI~1` is
/// `administration` to IIS and the Windows file system when short names are on, the class of the
/// IIS tilde bypasses) — a Windows alias like the trailing `.` and `::$DATA` already refused.
#[tokio::test]
async fn suffix_and_short_name_spellings_are_decided_under_the_protected_route() {
    const ROUTES: &str = "\n[[route]]\nname = \"administration\"\npath_prefix = \"/administration/\"\nupstream = \"{echo}\"\n\n[[route]]\nname = \"site\"\npath_prefix = \"/\"\nupstream = \"{echo}\"\nauth = \"none\"\n";
    let mut g = gateway().append(ROUTES).start().await;
    let mut leaked = Vec::new();
    for path in ["/admin.json/", "/administration.json/", "/ADMINI~1/users", "/admini~1/users"] {
        let hits = g.echo.hits();
        let (status, _) = raw(g.addr, &crate::hostile::get(path, None, "")).await;
        if g.echo.hits() != hits {
            leaked.push(format!("{path}: {status}"));
        }
    }
    // Control: the plain spellings are protected.
    for path in ["/admin.json", "/administration/users"] {
        let (status, _) = raw(g.addr, &crate::hostile::get(path, None, "")).await;
        assert_eq!(status, 401, "control: {path}");
    }
    let log = g.stop().await;
    let routes: Vec<String> =
        log.iter().map(|r| format!("{} -> {} ({})", r["path"], r["route"], r["reason"])).collect();
    assert!(leaked.is_empty(), "reached the upstream without a token: {leaked:#?}\nrecords: {routes:#?}");
}

/// The App-only fix tells an ID token from an application's token by `appid`/`azp`/`client_id`
/// alone, as Entra's ID tokens carry none. OpenID Connect lets any ID token carry `azp` (Core
/// §2: "MAY be included even when the authorized party is the same as the sole audience"), and
/// Keycloak's and Google's always do: such an ID token with `roles`, whose audience is the API's
/// (one registration for an API and its SPA), is still taken as App-only, past MFA, both on a
/// gateway without an OIDC client and on one with a client when the sign-in sent no nonce.
#[tokio::test]
async fn an_id_token_naming_its_authorized_party_is_not_app_only() {
    let leaked = crate::review2_findings::leaked_id_tokens(|c| {
        c["azp"] = c["aud"].clone();
    })
    .await;
    assert!(leaked.is_empty(), "ID tokens (password only, with roles and azp) were let through: {leaked:#?}");
}

/// False positive: the WebSocket idle timeout now counts only the client's bytes, so a client
/// that listens (a feed, a dashboard, GraphQL subscriptions: the server sends, the client only
/// reads) is cut off while it reads every message, unless the upstream happens to ping. Browsers
/// send nothing on their own (the WebSocket API has no ping), so a listening browser tab is closed
/// every `websocket_idle_timeout_secs`. A client that reads is not silent: what review 2 asked to
/// close was a client that neither sends nor reads.
#[tokio::test]
async fn a_websocket_client_that_reads_its_messages_keeps_its_tunnel() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // A text frame "hi" every 200 ms.
    let upstream = crate::review2_findings::sending_upstream(b"\x81\x02hi").await;
    let g = gateway()
        .listen("websocket_idle_timeout_secs = 1")
        .append(&format!(
            "\n[[route]]\nname = \"ws\"\npath_prefix = \"/ws/\"\nupstream = \"http://{upstream}\"\nauth = \"none\"\n"
        ))
        .start()
        .await;
    let mut s = tokio::net::TcpStream::connect(g.addr).await.unwrap();
    s.write_all(b"GET /ws/feed HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 12];
    tokio::time::timeout(BOUND, s.read_exact(&mut buf)).await.unwrap().unwrap();
    assert_eq!(&buf, b"HTTP/1.1 101", "control: the tunnel opened");
    // Read everything for 3 s, sending nothing.
    let start = Instant::now();
    let mut read = 0usize;
    let mut chunk = [0u8; 1024];
    let mut closed_after = None;
    while start.elapsed() < Duration::from_secs(3) {
        match tokio::time::timeout(BOUND, s.read(&mut chunk)).await.unwrap() {
            Ok(0) | Err(_) => {
                closed_after = Some(start.elapsed());
                break;
            }
            Ok(n) => read += n,
        }
    }
    assert_eq!(closed_after, None, "a client reading its messages ({read} bytes) was closed as idle");
}

/// Probe (kept as a guard): after HEAD, an abandoned request, an upstream failure, a tunnel, and
/// a body dropped mid-way, every upstream slot comes back.
#[tokio::test]
async fn every_upstream_slot_comes_back() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let g = gateway().listen("max_connections = 2").start().await;
    let token = g.token(|_| {});
    let _ = raw(g.addr, "HEAD /public/large HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
    {
        let mut s = tokio::net::TcpStream::connect(g.addr).await.unwrap();
        s.write_all(b"GET /public/x/hang HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = raw(g.addr, &crate::hostile::get("/down/x", Some(&token), "")).await;
    {
        let mut s = tokio::net::TcpStream::connect(g.addr).await.unwrap();
        s.write_all(b"GET /public/ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n").await.unwrap();
        let mut buf = [0u8; 12];
        tokio::time::timeout(BOUND, s.read_exact(&mut buf)).await.unwrap().unwrap();
        assert_eq!(&buf, b"HTTP/1.1 101");
    }
    {
        let mut s = tokio::net::TcpStream::connect(g.addr).await.unwrap();
        s.write_all(b"GET /public/large HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        let mut buf = [0u8; 4096];
        let _ = s.read(&mut buf).await.unwrap();
    }
    {
        let mut send = h2_connection(&g, None).await;
        let req = Request::head("http://gw.test/public/large").body(Full::default()).unwrap();
        let _ = send.send_request(req).await.unwrap();
        let req = Request::get("http://gw.test/public/large").body(Full::default()).unwrap();
        let rsp = send.send_request(req).await.unwrap();
        drop(rsp);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let send = h2_connection(&g, None).await;
    let hits = g.echo.hits();
    let mut tasks = Vec::new();
    for i in 0..2 {
        let mut send = send.clone();
        tasks.push(tokio::spawn(async move {
            let req = Request::get(format!("http://gw.test/public/{i}/wait")).body(Full::default()).unwrap();
            send.send_request(req).await.map(|r| r.status())
        }));
    }
    let start = Instant::now();
    while g.echo.hits() - hits < 2 && start.elapsed() < Duration::from_secs(3) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let reached = g.echo.hits() - hits;
    g.echo.release(2);
    for t in tasks {
        let _ = tokio::time::timeout(BOUND, t).await;
    }
    assert_eq!(reached, 2, "an upstream slot did not come back");
}

/// The HTTP/2 431 fix moved h2's own limit to twice `max_header_bytes`, so the gateway sees and
/// records lists between one and two times the limit; beyond twice, h2 still answers 431 itself
/// with no record and no count (and the README's table still says "none" for any HTTP/2 list
/// over the limit).
#[tokio::test]
async fn an_http2_header_list_over_twice_the_limit_leaves_a_record_or_a_count() {
    crate::review2_findings::an_http2_header_list_is_recorded_or_counted(40_000).await;
}
