//! `mfagate report` through the real binary, on logs written like the gateway writes them.

use crate::support::*;
use serde_json::{Value, json};
use std::process::Command;

fn line(ts: &str, channel: &str, principal: &str, mfa: Value, app: &str, id: &str) -> String {
    json!({
        "ts": ts, "request_id": id, "correlation_id": "corr", "channel": channel, "route": "r",
        "method": "GET", "path": "/v1/x", "operation": "GET /v1/", "source_ip": "10.1.2.3",
        "issuer": "entra", "tenant_id": "tid", "object_id": format!("oid-{id}"), "upn": "u@contoso.test",
        "app_id": app, "principal": principal, "amr": [], "mfa": mfa, "decision": "allow",
        "enforced": true, "reason": "x", "status": 200, "latency_us": 10,
    })
    .to_string()
}

#[test]
fn the_seed_examples_from_two_instances_with_a_torn_line() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let day = "2025-12-31T12:00:00.000Z";
    let mut a = Vec::new();
    let mut b = Vec::new();
    // Portal: 8 operations without MFA, 2 with → 20 %.
    for i in 0..8 {
        a.push(line(day, "portal", "user", json!(false), "", &format!("p{i}")));
    }
    for i in 0..2 {
        b.push(line(day, "portal", "user", json!(true), "", &format!("q{i}")));
    }
    // API: 3 App+User without MFA, 5 App-only, 2 App+User with MFA (two applications) → 40 %.
    for i in 0..3 {
        a.push(line(day, "api", "app_user", json!(false), "app-a", &format!("a{i}")));
    }
    for i in 0..5 {
        b.push(line(day, "api", "app_only", Value::Null, "app-a", &format!("o{i}")));
    }
    b.push(line(day, "api", "app_user", json!(true), "app-a", "m1"));
    b.push(line("2025-12-31T13:00:00.000Z", "api", "app_user", json!(true), "app-b", "m2"));
    // Out of the window: 7 days and 1 second before --now.
    b.push(line("2025-12-24T23:59:59.000Z", "api", "app_user", json!(false), "app-a", "old"));
    std::fs::write(logs.join("instance-a.jsonl"), a.join("\n") + "\n").unwrap();
    // Instance b's last line was cut off mid-write.
    std::fs::write(logs.join("instance-b.jsonl"), b.join("\n") + "\n{\"ts\":\"2025-12-31T1").unwrap();
    let out = dir.path().join("exports");
    let config = dir.path().join("declared.toml");
    std::fs::write(&config, "[decision_log]\npath = \"d.jsonl\"\n[report.declared]\nsecurity_contact = true\n[report.application_names]\napp-b = \"Billing, Inc.\"\n").unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_mfagate"))
        .args(["report", "--now", "2026-01-01T00:00:00Z", "--format", "json", "--log"])
        .arg(&logs)
        .arg("--out")
        .arg(&out)
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert!(String::from_utf8_lossy(&run.stderr).contains("torn last line"));
    let r: Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(r["window"]["start"], "2025-12-25T00:00:00.000Z");
    assert_eq!(
        (r["portal"]["operations"].as_u64(), r["portal"]["mfa_operations"].as_u64()),
        (Some(10), Some(2))
    );
    assert_eq!(r["portal"]["percent"], 20.0);
    assert_eq!(
        (r["api"]["app_user_requests"].as_u64(), r["api"]["mfa_requests"].as_u64()),
        (Some(5), Some(2))
    );
    assert_eq!(r["api"]["percent"], 40.0);
    assert_eq!(r["api"]["app_only_requests"], 5);
    // Every day of the window, zeros included, as Partner Center shows it.
    let daily = r["daily"].as_array().unwrap();
    assert_eq!(daily.len(), 7);
    assert_eq!(
        (daily[0]["date"].as_str(), daily[0]["api_app_user_requests"].as_u64()),
        (Some("2025-12-25"), Some(0))
    );
    assert_eq!(
        (daily[6]["date"].as_str(), daily[6]["api_app_user_requests"].as_u64()),
        (Some("2025-12-31"), Some(5))
    );
    assert!(r["score"].as_f64().is_some());
    let contact = r["requirements"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["requirement"] == "Provide a security contact")
        .unwrap();
    assert_eq!((contact["status"].as_str(), contact["points"].as_u64()), (Some("met"), Some(10)));

    let summary = std::fs::read_to_string(out.join("api_requests_summary.csv")).unwrap();
    assert_eq!(
        summary,
        "LoginDate,MfaCompliantRequestCount,TotalRequestCount,ApplicationId,ApplicationName\r\n2025-12-31,1,4,app-a,\r\n2025-12-31,1,1,app-b,\"Billing, Inc.\"\r\n"
    );
    let all = std::fs::read_to_string(out.join("all_api_requests.csv")).unwrap();
    let rows: Vec<&str> = all.lines().collect();
    assert_eq!(
        rows[0],
        "RequestId,CorrelationId,OperationName,RequestDateTime,IpAddress,ObjectId,TenantId,Upn,ApplicationId,MfaCompliant"
    );
    assert_eq!(rows.len(), 1 + 5);
    assert!(rows[1].starts_with("m2,"), "newest first: {}", rows[1]);
    let portal = std::fs::read_to_string(out.join("portal_requests_without_mfa.csv")).unwrap();
    assert!(portal.starts_with("ObjectId,TenantId,Upn,LastNonMfaCompliantLoginDateTime\r\n"));
    assert_eq!(portal.lines().count(), 1 + 8);

    // An empty window is n/a, never 0 % or 100 %; an unreadable path is an error that names it.
    let empty = Command::new(env!("CARGO_BIN_EXE_mfagate"))
        .args(["report", "--now", "2030-01-01T00:00:00Z", "--format", "json", "--log"])
        .arg(&logs)
        .output()
        .unwrap();
    let r: Value = serde_json::from_slice(&empty.stdout).unwrap();
    assert_eq!((r["portal"]["percent"].clone(), r["api"]["percent"].clone()), (Value::Null, Value::Null));
    let missing = Command::new(env!("CARGO_BIN_EXE_mfagate"))
        .args(["report", "--log", "/nonexistent/x.jsonl"])
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/x.jsonl"));
}

#[tokio::test]
async fn the_report_reads_what_the_gateway_wrote() {
    let mut g = gateway().start().await;
    let mfa = g.token(|_| {});
    let no_mfa = g.token(|c| c["amr"] = json!(["pwd"]));
    let app = g.token_for(&mfagate::dev::idp::TokenRequest { app_only: true, ..Default::default() }, |_| {});
    for t in [&mfa, &mfa, &no_mfa, &app] {
        g.get("/v1/x", Some(t)).await;
    }
    g.stop().await;
    let (r, warnings) = mfagate::evidence::report::build(&[g.log_path()], (T0 + 60) * 1000, 7).unwrap();
    assert!(warnings.is_empty());
    assert_eq!((r.totals.api_app_user, r.totals.api_mfa, r.totals.api_app_only), (3, 2, 1));
}

#[tokio::test]
async fn the_admin_port_answers_in_partner_center_shapes_and_survives_a_restart() {
    let shared = tempfile::tempdir().unwrap();
    let path = shared.path().join("decisions.jsonl");
    let log = format!("path = \"{}\"", path.display());
    let mut first = gateway().replace("path = \"{dir}/decisions.jsonl\"", &log).start().await;
    let mfa = first.token(|_| {});
    let no_mfa = first.token(|c| c["amr"] = json!(["pwd"]));
    for t in [&mfa, &no_mfa, &no_mfa] {
        let req = first
            .request("/v1/customers", Some(t))
            .header("MS-RequestId", "rid")
            .body(Default::default())
            .unwrap();
        first.send(req).await;
    }
    first.stop().await;
    // A new instance on the same log rebuilds the aggregates before serving.
    let second = gateway().replace("path = \"{dir}/decisions.jsonl\"", &log).start().await;
    assert_eq!(second.get("/v1/customers", Some(&second.token(|_| {}))).await.status, http::StatusCode::OK);
    // The writer thread feeds the live view just after the response: wait for it.
    let mut requests: Value = second.admin_get("/v1/partnerRequests").await.json();
    for _ in 0..200 {
        if requests["totalCount"] == 4 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        requests = second.admin_get("/v1/partnerRequests").await.json();
    }
    assert_eq!(requests["totalCount"], 4);
    let item = &requests["items"][0];
    for key in [
        "requestId",
        "correlationId",
        "operationName",
        "requestDateTime",
        "sourceIpAddress",
        "objectId",
        "tenantId",
        "upn",
        "applicationId",
        "mfaCompliant",
    ] {
        assert!(item.get(key).is_some(), "{key} in {item}");
    }
    assert_eq!(item["operationName"], "GET /v1/");
    let adoption: Value = second.admin_get("/v1/applicationmfaadoptionstatus").await.json();
    assert_eq!(adoption[0]["mfaCompliantRequestCount"], 2);
    assert_eq!(adoption[0]["totalRequestCount"], 4);
    assert_eq!(adoption[0]["loginDate"], "2026-01-01");
    let summary: Value = second.admin_get("/v1/report").await.json();
    assert_eq!(summary["api"]["percent"], 50.0);
    let principals: Value = second.admin_get("/v1/nonMfaCompliantPartnerPrincipals").await.json();
    assert_eq!(principals["totalCount"], 0, "no portal traffic");
}

#[test]
fn a_folder_with_compressed_rotations_and_stray_files() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path();
    let day = |d: &str| format!("2025-12-{d}T12:00:00.000Z");
    let gzip = |text: String| {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(text.as_bytes()).unwrap();
        gz.finish().unwrap()
    };
    // logrotate's names: the active file, one rotation left as is, two compressed.
    std::fs::write(
        logs.join("decisions.jsonl"),
        line(&day("31"), "api", "app_user", json!(true), "a", "1") + "\n",
    )
    .unwrap();
    std::fs::write(
        logs.join("decisions.jsonl.1"),
        line(&day("30"), "api", "app_user", json!(false), "a", "2") + "\n",
    )
    .unwrap();
    let two: Vec<String> =
        (0..2).map(|i| line(&day("28"), "api", "app_user", json!(true), "a", &format!("3{i}"))).collect();
    std::fs::write(logs.join("decisions.jsonl.2.gz"), gzip(two.join("\n") + "\n")).unwrap();
    std::fs::write(
        logs.join("decisions.jsonl.3.gz"),
        gzip(line(&day("26"), "api", "app_only", Value::Null, "a", "4") + "\n"),
    )
    .unwrap();
    // What else lands in a log folder: logrotate's state, an editor's backup, a core dump.
    std::fs::write(
        logs.join("logrotate.status"),
        "logrotate state -- version 2\n\"/var/log/mfagate/decisions.jsonl\" 2026-1-1-0:0:0\n",
    )
    .unwrap();
    std::fs::write(logs.join("core"), [0x7fu8, b'E', b'L', b'F', 2, 1, 1, 0, 0xff, 0xfe, b'\n'].repeat(500))
        .unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_mfagate"))
        .args(["report", "--now", "2026-01-01T00:00:00Z", "--format", "csv", "--log"])
        .arg(logs)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(0), "{stderr}");
    let warnings: Vec<&str> = stderr.lines().collect();
    assert_eq!(warnings.len(), 2, "one warning per stray file: {stderr}");
    assert!(warnings[0].contains("core: skipped: not a decision log (not UTF-8 text)"), "{stderr}");
    assert!(warnings[1].contains("logrotate.status: skipped: not a decision log"), "{stderr}");
    let csv = String::from_utf8(run.stdout).unwrap();
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(
        rows[0],
        "date,portal_operations,portal_mfa_operations,portal_percent,api_app_user_requests,api_mfa_requests,api_percent,api_app_only_requests"
    );
    // Seven days, zeros included, then the window's total: 3 of 4 App+User requests with MFA.
    assert_eq!(rows.len(), 1 + 7 + 1, "{csv}");
    assert_eq!(rows[1], "2025-12-25,0,0,,0,0,,0");
    assert_eq!(rows[2], "2025-12-26,0,0,,0,0,,1");
    assert_eq!(rows[4], "2025-12-28,0,0,,2,2,100.00,0");
    assert_eq!(rows[8], "total,0,0,,4,3,75.00,1");
}
