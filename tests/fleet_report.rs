//! The fleet-wide report: three instances on one Redis, requests spread over them, and every
//! instance's report page, `/v1/report`, CSV downloads and Partner Center shapes answering for
//! the whole fleet, the same as `mfagate report` over the three decision logs. Redis down: each
//! falls back to its own view and says so; back: what waited arrives, counted once.

use crate::support::browser::Browser;
use crate::support::redis::RedisServer;
use crate::support::*;
use http::StatusCode;
use mfagate::clock::Clock;
use mfagate::dev::idp::{DevMfa, TokenRequest};
use mfagate::evidence::live;
use mfagate_policy::report::{Declared, Report};
use serde_json::{Value, json};
use std::time::Duration;

const FLEET: &str = "http://gateway.fleet.test";
const DAY_MS: u64 = 86_400_000;

/// One instance named `name`, flushing every 50 ms, with a SAML-signed-in portal at `/app/`.
pub fn instance(redis: &RedisServer, name: &str) -> Builder {
    gateway()
        .cluster(redis, &format!("report_flush_ms = 50\ntimeout_ms = 300\ninstance = \"{name}\""))
        .saml_sign_in()
        .public_base(FLEET)
        .append(crate::portal::SESSION)
        .append(crate::portal::SAML_ROUTE)
}

fn now(g: &Gateway) -> u64 {
    g.clock.now_millis()
}

fn tick(g: &Gateway) {
    // Distinct timestamps: the "All API requests" rows then have one order, on every reader.
    g.clock.advance(Duration::from_secs(1));
}

async fn saml_api(g: &Gateway, id: &str) -> Reply {
    use base64::Engine;
    let mut spec = mfagate::dev::saml_idp::AssertionSpec::new(crate::saml::IDP, crate::saml::SP, T0);
    spec.id = id.into();
    let xml = crate::saml::signer("saml-idp").sign(&spec.to_xml()).unwrap();
    let value = format!("SAML {}", base64::engine::general_purpose::STANDARD.encode(xml));
    let req = g.request("/v1/x", None).header("authorization", value).body(Default::default()).unwrap();
    g.send(req).await
}

/// `n` App+User requests with MFA to `g`, a second apart.
pub async fn with_mfa(g: &Gateway, n: usize) {
    let token = g.token(|_| {});
    for _ in 0..n {
        tick(g);
        assert_eq!(g.get("/v1/x", Some(&token)).await.status, StatusCode::OK);
    }
}

/// The report over the instances' decision logs, as `mfagate report --log` computes it, for the
/// window the live page shows (the last seven UTC days, today included).
pub fn from_logs(gateways: &[&Gateway]) -> Report {
    let files: Vec<_> = gateways.iter().map(|g| g.log_path()).collect();
    from_files(&files, gateways[0].clock.now_millis())
}

fn from_files(files: &[std::path::PathBuf], now: u64) -> Report {
    // Each log with its rotated files, as `mfagate report --log <folder>` reads them.
    let files: Vec<_> = files.iter().flat_map(|f| mfagate::evidence::log_files::all_files(f)).collect();
    let (mut r, warnings) = mfagate::evidence::report::build(&files, now + 1, 7).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    r.start_ms = live::first_day(now) * DAY_MS;
    r
}

pub const FAILED_FLUSHES: &str = "mfagate_cluster_report_flush_total{result=\"failed\"}";
pub const PENDING: &str = "mfagate_cluster_report_pending_records";

/// Whole lines in `g`'s decision log (one being written is not counted).
fn lines(g: &Gateway) -> usize {
    std::fs::read_to_string(g.log_path()).unwrap_or_default().matches('\n').count()
}

/// Instances `a` and `b`, one record of `a` flushed.
async fn pair(redis: &RedisServer) -> (Gateway, Gateway) {
    let a = instance(redis, "a").start().await;
    let b = instance(redis, "b").beside(&a).start().await;
    with_mfa(&a, 1).await;
    eventually("flushed", || async { totals(&b).await == (1, true) }).await;
    (a, b)
}

/// What `/v1/report` answers for `r`, without a scope.
fn unscoped(r: &Report) -> Value {
    let mut v = mfagate::evidence::report::to_json(r, &Declared::default());
    v.as_object_mut().unwrap().remove("scope");
    v
}

/// `/v1/report` without its scope, and the scope.
pub async fn summary(g: &Gateway) -> (Value, Value) {
    let mut v = g.admin_get("/v1/report").await.json();
    let scope = v.as_object_mut().and_then(|o| o.remove("scope")).unwrap_or(Value::Null);
    (v, scope)
}

async fn totals(g: &Gateway) -> (u64, bool) {
    let (v, scope) = summary(g).await;
    (v["api"]["app_user_requests"].as_u64().unwrap_or(0), scope["fleet"] == true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_spread_over_three_instances_appear_in_full_on_each_and_match_the_logs() {
    let redis = RedisServer::start();
    let a = instance(&redis, "a").start().await;
    let b = instance(&redis, "b").beside(&a).start().await;
    let c = instance(&redis, "c").beside(&a).start().await;
    let no_mfa = a.token(|t| t["amr"] = json!(["pwd"]));
    let app_only = a.token_for(&TokenRequest { app_only: true, ..Default::default() }, |_| {});
    with_mfa(&a, 2).await;
    tick(&a);
    assert_eq!(b.get("/v1/x", Some(&no_mfa)).await.status, StatusCode::UNAUTHORIZED);
    tick(&a);
    assert_eq!(b.get("/report/x", Some(&no_mfa)).await.status, StatusCode::OK, "report-only pass");
    tick(&a);
    assert_eq!(c.get("/v1/x", Some(&app_only)).await.status, StatusCode::OK);
    tick(&a);
    assert_eq!(saml_api(&c, "_fleet-1").await.status, StatusCode::OK);
    // Portal: a session with MFA started on a, browsing on b; a user without MFA on c.
    let mut browser = Browser::new();
    browser.via(FLEET, &format!("http://{}", a.addr));
    tick(&a);
    assert_eq!(browser.open(&format!("{FLEET}/app/x")).await.status, StatusCode::OK, "{:?}", browser.trail);
    browser.via(FLEET, &format!("http://{}", b.addr));
    tick(&a);
    assert_eq!(browser.open(&format!("{FLEET}/app/y")).await.status, StatusCode::OK);
    a.saml_idp.set_mfa(DevMfa::WhenAsked);
    let mut other = Browser::new();
    other.via(FLEET, &format!("http://{}", c.addr));
    tick(&a);
    assert_eq!(other.open(&format!("{FLEET}/app/z")).await.status, StatusCode::OK, "{:?}", other.trail);

    let all = [&a, &b, &c];
    // Records are written just after their responses, in order: once a last request's record
    // is in each log, every earlier one is.
    for g in all {
        assert_eq!(g.get("/public/last", None).await.status, StatusCode::OK);
        eventually("the log holds every record", || async {
            read_log(&g.log_path()).last().is_some_and(|r| r["path"] == "/public/last")
        })
        .await;
    }
    let logs = from_logs(&all);
    assert_eq!(logs.totals.api_app_user, 5, "2 with MFA, 2 without, 1 SAML");
    assert_eq!((logs.totals.api_app_only, logs.totals.report_only_passes), (1, 1));
    assert!(logs.totals.portal_operations >= 3 && logs.totals.portal_mfa >= 2, "{:?}", logs.totals);
    assert_eq!(logs.non_mfa_users.len(), 1);
    let now = a.clock.now_millis();
    let expected = unscoped(&logs);
    let records: Vec<usize> = all.iter().map(|g| lines(g)).collect();
    assert!(records.iter().all(|n| *n > 0), "every instance served some: {records:?}");

    for g in all {
        eventually("this instance answers for the whole fleet", || async {
            let (v, scope) = summary(g).await;
            let contributed: Vec<u64> = scope["instances"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|i| i["records"].as_u64())
                .collect();
            v == expected && contributed == records.iter().map(|n| *n as u64).collect::<Vec<_>>()
        })
        .await;
        // Every shape, the same as the logs give.
        let r = g.admin_get("/v1/partnerRequests").await;
        assert_eq!(r.headers["x-mfagate-report-scope"], "fleet; instances=3");
        assert_eq!(r.json(), live::partner_requests(&logs, now));
        assert_eq!(r.json()["totalCount"], 5);
        let adoption = g.admin_get("/v1/applicationmfaadoptionstatus").await;
        assert_eq!(adoption.json(), live::application_adoption(&logs, now, &|_| String::new()));
        let users = g.admin_get("/v1/nonMfaCompliantPartnerPrincipals").await;
        assert_eq!(users.json(), live::non_mfa_principals(&logs, now));
        assert_eq!(users.json()["totalCount"], 1);
        let csv = mfagate::evidence::report::exports(&logs, &|_| String::new());
        for (name, body) in mfagate::evidence::report::EXPORT_NAMES.iter().zip(&csv) {
            let got = g.admin_get(&format!("/exports/{name}")).await;
            assert_eq!(got.headers["x-mfagate-report-scope"], "fleet; instances=3");
            assert_eq!(&got.body, body, "{name}");
        }
        // The page says whose decisions these are: each instance and its newest record.
        let page = g.admin_get("/").await.body;
        let who: Vec<String> = all
            .iter()
            .zip(["a", "b", "c"])
            .map(|(i, name)| {
                let log = read_log(&i.log_path());
                let newest = log.iter().filter_map(|r| r["ts"].as_str()).max().unwrap().to_owned();
                format!("{name} (newest record {newest}, {} records)", log.len())
            })
            .collect();
        let sentence = format!("Fleet-wide: 3 instances: {}", who.join("; "));
        assert!(page.contains(&format!(r#"<p class="muted" id="scope">{sentence}</p>"#)), "{page}");
        let api = format!("{:.1}%", logs.api_percent().unwrap());
        assert!(page.contains(&format!(r#"id="api-percent">{api}"#)), "{page}");
        let (_, scope) = summary(g).await;
        assert_eq!(scope["instances"].as_array().map(Vec::len), Some(3), "{scope}");
    }
    // What each instance saw alone is less than the fleet's whole.
    let alone = mfagate::evidence::report::build(&[c.log_path()], now + 1, 7).unwrap().0;
    assert!(alone.totals.api_app_user < logs.totals.api_app_user);
    assert_eq!(sample(&a, PENDING).await, 0.0);
    assert!(sample(&a, "mfagate_cluster_report_flush_total{result=\"ok\"}").await >= 1.0);
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    for family in ["mfagate_cluster_report_flush_total", "mfagate_cluster_report_pending_records"] {
        assert!(readme.contains(&format!("| `{family}` |")), "{family} is not in the README's metrics table");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopped_each_instance_says_it_answers_alone_and_nothing_waits_lost() {
    let mut redis = RedisServer::start();
    let (a, b) = pair(&redis).await;
    redis.stop();
    with_mfa(&a, 2).await;
    with_mfa(&b, 1).await;
    eventually("written", || async { lines(&a) == 3 && lines(&b) == 1 }).await;
    let r = a.admin_get("/v1/report").await;
    assert_eq!(r.headers["x-mfagate-report-scope"], "instance; reason=redis-unreachable");
    assert_eq!(r.json()["scope"], json!({"fleet": false, "reason": "Redis unreachable"}));
    assert_eq!(r.json()["api"]["app_user_requests"], 3, "this instance's own view");
    let page = a.admin_get("/").await.body;
    assert!(page.contains(r#"id="scope">This instance only: Redis unreachable</p>"#), "{page}");
    let shape = b.admin_get("/v1/partnerRequests").await;
    assert_eq!(shape.headers["x-mfagate-report-scope"], "instance; reason=redis-unreachable");
    assert_eq!(shape.json()["totalCount"], 1);
    eventually("the waiting records are counted", || async {
        sample(&a, PENDING).await == 2.0 && sample(&a, FAILED_FLUSHES).await >= 1.0
    })
    .await;
    // Back, empty (no persistence): what waited arrives, and only that.
    redis.restart();
    eventually("the waiting counts arrive", || async { totals(&b).await == (3, true) }).await;
    eventually("nothing left waiting", || async {
        sample(&a, PENDING).await == 0.0 && sample(&b, PENDING).await == 0.0
    })
    .await;
    let (v, scope) = summary(&a).await;
    assert_eq!(v["api"]["app_user_requests"], 3);
    assert_eq!(scope["instances"][0]["records"], 2, "{scope}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flush_whose_reply_was_lost_is_counted_once() {
    let redis = RedisServer::start();
    let (a, b) = pair(&redis).await;
    // Frozen, Redis still holds the flushes sent meanwhile: it runs them when it wakes, after
    // the instance gave up on their replies and kept the batch to send again.
    redis.freeze();
    with_mfa(&a, 2).await;
    eventually("a flush timed out", || async {
        sample(&a, FAILED_FLUSHES).await >= 1.0 && sample(&a, PENDING).await == 2.0
    })
    .await;
    redis.thaw();
    eventually("the batch arrives", || async { totals(&b).await == (3, true) }).await;
    eventually("confirmed", || async { sample(&a, PENDING).await == 0.0 }).await;
    // More flushes go by (new records): the old batch is never added again.
    with_mfa(&a, 1).await;
    eventually("the next batch arrives", || async { totals(&b).await == (4, true) }).await;
    let logs = from_logs(&[&a, &b]);
    assert_eq!(summary(&b).await.0, unscoped(&logs));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_instance_does_not_count_its_history_again() {
    let redis = RedisServer::start();
    let mut a = instance(&redis, "a").start().await;
    let b = instance(&redis, "b").beside(&a).start().await;
    with_mfa(&a, 2).await;
    with_mfa(&b, 1).await;
    eventually("flushed", || async { totals(&b).await == (3, true) }).await;
    a.stop().await;
    let log = format!("path = \"{}\"", a.log_path().display());
    let again =
        instance(&redis, "a").replace("path = \"{dir}/decisions.jsonl\"", &log).beside(&b).start().await;
    // Its own view is rebuilt from its log; the fleet's is not fed it a second time.
    with_mfa(&again, 1).await;
    eventually("the new record arrives", || async { totals(&b).await == (4, true) }).await;
    with_mfa(&b, 1).await;
    eventually("and the next one", || async { totals(&b).await == (5, true) }).await;
    let (v, scope) = summary(&again).await;
    assert_eq!(v["api"]["app_user_requests"], 5);
    let who: Vec<(String, u64)> = scope["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["instance"].as_str().unwrap().to_owned(), i["records"].as_u64().unwrap()))
        .collect();
    assert_eq!(who, [("a".to_owned(), 3), ("b".to_owned(), 2)]);
    let files = [a.log_path(), b.log_path()];
    assert_eq!(summary(&again).await.0, unscoped(&from_files(&files, now(&b))));
}
