//! The report page on the admin port, rendered by headless Chromium (Debian's `chromium`), with a
//! screenshot kept in target/test-artifacts/ for a person to look at.

use crate::support::*;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;

fn chromium() -> PathBuf {
    let path = PathBuf::from("/usr/bin/chromium");
    assert!(path.exists(), "headless Chromium is needed: .ci/deps installs Debian's chromium");
    path
}

fn headless(url: &str, profile: &Path, extra: &[String]) -> std::process::Output {
    Command::new(chromium())
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"])
        .args(["--disable-background-networking", "--disable-component-update", "--disable-sync"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_page_renders_in_a_browser() {
    let g = gateway().start().await;
    let mfa = g.token(|_| {});
    let no_mfa = g.token(|c| c["amr"] = json!(["pwd"]));
    let app = g.token_for(&mfagate::dev::idp::TokenRequest { app_only: true, ..Default::default() }, |_| {});
    for t in [&mfa, &mfa, &no_mfa, &app] {
        g.get("/v1/x", Some(t)).await;
    }
    let mut summary: Value = Value::Null;
    for _ in 0..200 {
        summary = g.admin_get("/v1/report").await.json();
        if summary["api"]["app_user_requests"] == 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(summary["api"]["percent"], 66.67);

    // The page needs the private plane's token, which a headless browser cannot send: it is
    // fetched with the token and rendered from a file (it loads nothing else).
    let page = g.admin_get("/").await;
    assert_eq!(page.status, 200);
    let profile = tempfile::tempdir().unwrap();
    let html = profile.path().join("report.html");
    std::fs::write(&html, &page.body).unwrap();
    let url = format!("file://{}", html.display());
    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let shot = artifacts.join("report-page.png");
    let _ = std::fs::remove_file(&shot);
    let (url2, profile_path, shot2) = (url.clone(), profile.path().to_owned(), shot.clone());
    let dom = tokio::task::spawn_blocking(move || {
        let dom = headless(&url2, &profile_path, &["--dump-dom".into()]);
        let png = headless(
            &url2,
            &profile_path,
            &[format!("--screenshot={}", shot2.display()), "--window-size=1200,1800".into()],
        );
        assert!(png.status.success(), "{}", String::from_utf8_lossy(&png.stderr));
        dom
    })
    .await
    .unwrap();
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert!(dom.contains("Security requirements status"), "{dom}");
    assert!(dom.contains(r#"id="api-percent">66.7%"#), "{dom}");
    assert!(dom.contains(r#"id="portal-percent">n/a"#), "{dom}");
    assert!(dom.contains("<svg") && dom.contains("<polyline"), "the daily chart is drawn");
    assert!(dom.contains("/exports/all_api_requests.csv"));
    let png = std::fs::metadata(&shot).expect("a screenshot");
    assert!(png.len() > 10_000, "a real picture, {} bytes", png.len());
    // The downloads behind the links.
    let csv = g.admin_get("/exports/all_api_requests.csv").await;
    assert!(csv.body.starts_with("RequestId,CorrelationId,OperationName"));
    assert_eq!(csv.body.lines().count(), 1 + 3);
}
