//! A rolling deploy through the real binary: on SIGTERM /readyz turns 503 at once, the listener
//! keeps accepting for `shutdown_delay_secs`, then closes; every answered request is recorded,
//! and the process exits 0.

use crate::binary::{Fixture, fixture, start};
use crate::support::*;
use mfagate::dev::idp::TokenRequest;
use std::process::Command;
use std::time::{Duration, Instant};

const DELAY: Duration = Duration::from_secs(1);

/// One GET on a fresh connection: the status, or `None` when the connection failed.
async fn get(addr: &str, path: &str, token: Option<&str>) -> Option<u16> {
    let stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let (mut send, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await.ok()?;
    tokio::spawn(conn);
    let mut req = http::Request::get(path).header("host", addr);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let rsp =
        send.send_request(req.body(http_body_util::Empty::<bytes::Bytes>::new()).unwrap()).await.ok()?;
    Some(rsp.status().as_u16())
}

/// Polls `path` until `want` answers, for at most 10 s.
async fn until(addr: &str, path: &str, want: u16) -> Instant {
    let bound = Instant::now() + Duration::from_secs(10);
    loop {
        if get(addr, path, None).await == Some(want) {
            return Instant::now();
        }
        assert!(Instant::now() < bound, "{path} never answered {want}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_before_the_listener_closes_and_records_every_answer() {
    let Fixture { idp, dir, config, .. } = fixture(|text| {
        text.replace("shutdown_delay_secs = 0", &format!("shutdown_delay_secs = {}", DELAY.as_secs()))
            .replace("[decision_log]", "[admin]\naddr = \"127.0.0.1:0\"\n\n[decision_log]")
    })
    .await;
    let mut running = start(&config, &[]);
    let (addr, admin) = (running.addr.clone(), running.admin.clone().expect("admin address logged"));
    until(&admin, "/readyz", 200).await;
    let token = idp.mint(&TokenRequest::default()).unwrap();

    // Requests, one after another on fresh connections, until the listener refuses one.
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let load = {
        let (addr, token, count) = (addr.clone(), token.clone(), count.clone());
        tokio::spawn(async move {
            let mut answered = Vec::new();
            let bound = Instant::now() + Duration::from_secs(20);
            for i in 0.. {
                let path = format!("/v1/rollout-{i}");
                match get(&addr, &path, Some(&token)).await {
                    Some(status) => {
                        answered.push((path, status, Instant::now()));
                        count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    None => return (answered, Instant::now()),
                }
                assert!(Instant::now() < bound, "the listener never closed");
            }
            unreachable!()
        })
    };
    // Let some requests through before the signal.
    let bound = Instant::now() + Duration::from_secs(10);
    while count.load(std::sync::atomic::Ordering::Relaxed) < 5 {
        assert!(Instant::now() < bound, "no requests answered");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let signalled = Instant::now();
    let pid = running.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let not_ready = until(&admin, "/readyz", 503).await;
    assert!(not_ready < signalled + DELAY, "/readyz turned 503 only after the delay");
    let (answered, refused) = load.await.unwrap();
    assert!(
        refused >= signalled + DELAY,
        "a request was refused {:?} after SIGTERM, before the {DELAY:?} delay ended",
        refused - signalled
    );
    assert!(answered.iter().all(|(_, status, _)| *status == 200), "{answered:?}");
    assert!(
        answered.iter().any(|(_, _, at)| *at > not_ready),
        "no request was answered while /readyz said 503"
    );
    let bound = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = running.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < bound, "the gateway did not exit");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert!(status.success(), "{status:?}");
    let log = read_log(&dir.path().join("decisions.jsonl"));
    let recorded: std::collections::HashSet<&str> = log.iter().filter_map(|r| r["path"].as_str()).collect();
    for (path, _, _) in &answered {
        assert!(recorded.contains(path.as_str()), "{path} answered but not recorded");
    }
}

#[tokio::test]
async fn requests_still_open_when_the_grace_ends_are_cut_and_recorded() {
    let mut g = gateway().replace("shutdown_grace_secs = 5", "shutdown_grace_secs = 1").start().await;
    let req = g.request("/v1/x/hang", Some(&g.token(|_| {}))).body(Default::default()).unwrap();
    let pending = tokio::spawn(g.client.request(req));
    let bound = Instant::now() + Duration::from_secs(10);
    while g.echo.hits() == 0 {
        assert!(Instant::now() < bound, "the request never reached the upstream");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let log = tokio::time::timeout(Duration::from_secs(10), g.stop()).await.expect("stopped after the grace");
    assert!(pending.await.unwrap().is_err(), "the hanging request was cut");
    let cut = log.iter().find(|r| r["path"] == "/v1/x/hang").expect("the cut request is recorded");
    // Decided and forwarded, then cut: 499, the status of a request whose client went away.
    assert_eq!((cut["status"].as_u64(), cut["reason"].as_str()), (Some(499), Some("mfa_satisfied")));
}

#[tokio::test]
async fn answers_while_draining_close_keep_alive_connections() {
    let mut g = gateway().replace("shutdown_delay_secs = 0", "shutdown_delay_secs = 30").start().await;
    let token = g.token(|_| {});
    let stream = tokio::net::TcpStream::connect(g.addr).await.unwrap();
    let (mut send, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await.unwrap();
    let conn = tokio::spawn(conn);
    let host = g.addr.to_string();
    let request = |path: &str| {
        http::Request::get(path)
            .header("host", host.as_str())
            .header("authorization", format!("Bearer {token}"))
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap()
    };
    let before = send.send_request(request("/v1/before")).await.unwrap();
    assert_eq!(before.status(), 200);
    assert!(before.headers().get("connection").is_none(), "keep-alive while serving");
    g.signal_shutdown();
    let bound = Instant::now() + Duration::from_secs(10);
    while g.admin_get("/readyz").await.status != 503 {
        assert!(Instant::now() < bound, "never draining");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let during = send.send_request(request("/v1/during")).await.unwrap();
    assert_eq!(during.status(), 200, "still served during the delay");
    assert_eq!(during.headers().get("connection").map(|v| v.as_bytes()), Some(&b"close"[..]));
    // The gateway closes the connection after that answer.
    tokio::time::timeout(Duration::from_secs(10), conn).await.expect("connection closed").unwrap().unwrap();
}
