//! The logs an operator collects, through the real binary: the operational log as JSON lines
//! (the default off a terminal) or text, never with colour codes; the decision log on standard
//! output (`path = "-"`).

use crate::binary::{Fixture, Running, fixture, start};
use crate::support::lines_of;
use mfagate::dev::idp::TokenRequest;
use std::process::Command;

/// Sends one request with a token until the keys are loaded, one without; returns the statuses.
async fn two_requests(s: &Fixture, addr: &str) -> Vec<u16> {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let token = s.idp.mint(&TokenRequest::default()).unwrap();
    let req = |t: Option<&str>| {
        let mut b = http::Request::get(format!("http://{addr}/v1/x"));
        if let Some(t) = t {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        b.body(Default::default()).unwrap()
    };
    let mut first = client.request(req(Some(&token))).await.unwrap().status();
    for _ in 0..500 {
        if first != http::StatusCode::SERVICE_UNAVAILABLE {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        first = client.request(req(Some(&token))).await.unwrap().status();
    }
    let second = client.request(req(None)).await.unwrap().status();
    vec![first.as_u16(), second.as_u16()]
}

/// SIGTERM, exit 0, and every line of standard error.
fn stop(mut running: Running) -> Vec<String> {
    let pid = running.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    assert!(running.child.wait().unwrap().success());
    running.early.into_iter().chain(running.stderr.iter()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_a_terminal_the_operational_log_is_json_lines_without_escapes() {
    let s = fixture(|t| t).await;
    let running = start(&s.config, &[]);
    let addr = running.addr.clone();
    assert_eq!(two_requests(&s, &addr).await, [200, 401]);
    let lines = stop(running);
    assert!(lines.len() >= 3, "{lines:?}");
    for line in &lines {
        assert!(!line.contains('\u{1b}'), "an escape code: {line:?}");
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(v["level"].is_string() && v["fields"]["message"].is_string(), "{line}");
    }
    assert!(lines.iter().any(|l| l.contains("\"Stopped\"")), "{lines:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_is_chosen_by_flag_or_config_and_has_no_escapes_either() {
    for (edit, args) in [
        (false, &["--log-format", "text"][..]),
        (true, &[][..]),
        // The flag wins over the file.
        (true, &["--log-format", "json"][..]),
    ] {
        let s = fixture(|t| if edit { format!("[log]\nformat = \"text\"\n{t}") } else { t }).await;
        let running = start(&s.config, args);
        let lines = stop(running);
        let json = args.contains(&"json");
        for line in &lines {
            assert!(!line.contains('\u{1b}'), "an escape code: {line:?}");
            assert_eq!(serde_json::from_str::<serde_json::Value>(line).is_ok(), json, "{args:?} {line}");
        }
        assert!(lines.iter().any(|l| l.contains("Gateway listening")), "{lines:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_decision_log_can_go_to_standard_output() {
    let to_stdout = |t: String| {
        let lines = t.lines().map(|l| if l.ends_with("/decisions.jsonl\"") { "path = \"-\"" } else { l });
        lines.collect::<Vec<_>>().join("\n")
    };
    let s = fixture(to_stdout).await;
    assert!(std::fs::read_to_string(&s.config).unwrap().contains("path = \"-\""));
    let mut running = start(&s.config, &[]);
    let stdout = lines_of(running.stdout.take().unwrap());
    let addr = running.addr.clone();
    assert_eq!(two_requests(&s, &addr).await, [200, 401]);
    let stderr = stop(running);
    let records: Vec<serde_json::Value> =
        stdout.iter().map(|l| serde_json::from_str(&l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect();
    let statuses: Vec<u64> = records.iter().map(|r| r["status"].as_u64().unwrap()).collect();
    // Requests refused while the keys were loading come first.
    assert!(statuses.ends_with(&[200, 401]), "{statuses:?}");
    assert_eq!(records.last().unwrap()["reason"], "no_token");
    // Nothing else on standard output, nothing in a file, nothing on standard error.
    let files: Vec<_> = std::fs::read_dir(s.dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(files, ["mfagate.toml"]);
    assert!(!stderr.iter().any(|l| l.contains("no_token")), "{stderr:?}");
}
