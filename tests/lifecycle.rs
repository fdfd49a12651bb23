//! Shutdown, disconnects and the decision log's guarantees.

use crate::support::*;
use http::StatusCode;
use std::time::Duration;

#[tokio::test]
async fn graceful_shutdown_finishes_in_flight_requests_and_logs_them() {
    let mut g = gateway().start().await;
    let token = g.token(|_| {});
    let in_flight = {
        let req = g.request("/v1/wait", Some(&token)).body(Default::default()).unwrap();
        let client = g.client.clone();
        tokio::spawn(async move { client.request(req).await.map(|r| r.status()) })
    };
    // Wait until the upstream holds the request, then shut down and let it answer.
    while g.echo.hits() == 0 {
        tokio::task::yield_now().await;
    }
    let (echo, addr) = (g.echo.clone(), g.addr);
    let shutdown = g.stop();
    let release = async {
        // Shutdown has begun once the listener is closed; only then may the upstream answer.
        while tokio::net::TcpStream::connect(addr).await.is_ok() {
            tokio::task::yield_now().await;
        }
        echo.release(1);
    };
    let (log, ()) = tokio::join!(shutdown, release);
    assert_eq!(in_flight.await.unwrap().unwrap(), StatusCode::OK);
    assert_eq!(log.len(), 1);
    assert_eq!((log[0]["status"].as_u64(), log[0]["reason"].as_str()), (Some(200), Some("mfa_satisfied")));
}

#[tokio::test]
async fn a_client_that_leaves_still_gets_its_line() {
    let mut g = gateway().start().await;
    let token = g.token(|_| {});
    let req = g.request("/v1/hang", Some(&token)).body(Default::default()).unwrap();
    let client = g.client.clone();
    let call = tokio::spawn(async move { client.request(req).await });
    while g.echo.hits() == 0 {
        tokio::task::yield_now().await;
    }
    call.abort();
    let _ = call.await;
    // The gateway notices the closed connection and drops the request.
    let log = wait_for_log(&g.log_path()).await;
    assert_eq!((log[0]["status"].as_u64(), log[0]["decision"].as_str()), (Some(499), Some("allow")));
    assert_eq!(g.stop().await.len(), 1);
}

#[tokio::test]
async fn an_unwritable_log_fails_closed_by_default() {
    let g = gateway().replace("path = \"{dir}/decisions.jsonl\"", "path = \"/dev/full\"").start().await;
    let token = g.token(|_| {});
    // The first request passes; its line cannot be written, which turns the log unhealthy.
    assert_eq!(g.get("/v1/x", Some(&token)).await.status, StatusCode::OK);
    while g.admin_get("/readyz").await.status == StatusCode::OK {
        tokio::task::yield_now().await;
    }
    assert!(g.admin_get("/readyz").await.body.contains("decision log"));
    let r = g.get("/v1/x", Some(&token)).await;
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("decision_log_unavailable"))
    );
    assert_eq!(g.echo.hits(), 1);
    assert!(g.admin_get("/metrics").await.body.contains("mfagate_decision_log_healthy 0"));
}

#[tokio::test]
async fn an_unwritable_log_can_fail_open_when_configured() {
    let g = gateway()
        .replace("path = \"{dir}/decisions.jsonl\"", "path = \"/dev/full\"\non_log_failure = \"open\"")
        .start()
        .await;
    let token = g.token(|_| {});
    for _ in 0..3 {
        assert_eq!(g.get("/v1/x", Some(&token)).await.status, StatusCode::OK);
    }
    assert_eq!(g.admin_get("/readyz").await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_full_queue_waits_and_loses_nothing() {
    let mut g = gateway()
        .replace("path = \"{dir}/decisions.jsonl\"", "path = \"{dir}/decisions.jsonl\"\nqueue = 1")
        .start()
        .await;
    let token = g.token(|_| {});
    let replies = join_all((0..200).map(|_| Box::pin(g.get("/v1/x", Some(&token)))).collect()).await;
    assert!(replies.iter().all(|r| r.status == StatusCode::OK));
    let log = g.stop().await;
    assert_eq!(log.len(), 200);
    let mut ids: Vec<_> = log.iter().map(|r| r["request_id"].as_str().unwrap().to_owned()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 200, "generated request ids are unique");
}

#[tokio::test]
async fn the_log_rotates_by_day_and_the_report_reads_the_folder() {
    let mut g = gateway().start().await;
    let token = g.token(|c| c["exp"] = serde_json::json!(T0 + 3 * 86_400));
    assert_eq!(g.get("/v1/x", Some(&token)).await.status, StatusCode::OK);
    g.clock.advance(Duration::from_secs(86_400));
    assert_eq!(g.get("/v1/x", Some(&token)).await.status, StatusCode::OK);
    assert_eq!(g.get("/v1/x", Some(&token)).await.status, StatusCode::OK);
    g.stop().await;
    let mut names: Vec<String> = std::fs::read_dir(g.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("decisions"))
        .collect();
    names.sort();
    assert_eq!(names, ["decisions.2026-01-01.1.jsonl", "decisions.jsonl"]);
    let (r, _) =
        mfagate::evidence::report::build(&[g.dir.path().to_owned()], (T0 + 2 * 86_400) * 1000, 7).unwrap();
    assert_eq!(r.totals.api_app_user, 3);
    assert_eq!(r.daily.len(), 2);
}
