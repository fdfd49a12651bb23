//! `/metrics` through the real gateway: the scrape is valid Prometheus text (checked by a strict
//! parser below), every family it shows is in the README's table, and each series moves when it
//! should.

use crate::support::*;
use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt, Full};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BOUND: Duration = Duration::from_secs(10);

/// One sample line.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A parsed scrape: each family's type, and the samples.
#[derive(Debug)]
struct Scrape {
    types: BTreeMap<String, String>,
    samples: Vec<Sample>,
}

impl Scrape {
    /// The value of the series with exactly these labels.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let want: BTreeMap<String, String> =
            labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        self.samples.iter().find(|s| s.name == name && s.labels == want).map(|s| s.value)
    }

    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels).unwrap_or_else(|| panic!("no {name}{labels:?} in {:#?}", self.names()))
    }

    fn names(&self) -> BTreeSet<&str> {
        self.samples.iter().map(|s| s.name.as_str()).collect()
    }
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn valid_label(name: &str) -> bool {
    valid_name(name) && !name.contains(':')
}

/// Parses the text exposition format strictly: HELP and TYPE once per family and before its
/// samples, a family's samples together, `name{labels} value` with escaped label values, no
/// series twice, counters named `_total`, histograms cumulative up to `+Inf` = `_count`.
fn parse(text: &str) -> Scrape {
    let mut types = BTreeMap::new();
    let mut helps = BTreeSet::new();
    let mut started = BTreeSet::new();
    let mut current: Option<String> = None;
    let mut series = BTreeSet::new();
    let mut samples = Vec::new();
    assert!(text.ends_with('\n'), "the scrape ends with a newline");
    for (n, line) in text.lines().enumerate() {
        let at = || format!("line {}: {line:?}", n + 1);
        assert!(!line.is_empty(), "{}", at());
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or_else(|| panic!("{}", at()));
            assert!(valid_name(name) && !help.is_empty(), "{}", at());
            assert!(helps.insert(name.to_owned()), "HELP twice, {}", at());
            assert!(!started.contains(name), "HELP after samples, {}", at());
            current = Some(name.to_owned());
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or_else(|| panic!("{}", at()));
            assert!(valid_name(name), "{}", at());
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{}", at());
            assert!(kind != "counter" || name.ends_with("_total"), "a counter is named _total, {}", at());
            assert!(types.insert(name.to_owned(), kind.to_owned()).is_none(), "TYPE twice, {}", at());
            assert!(!started.contains(name), "TYPE after samples, {}", at());
            assert_eq!(current.as_deref(), Some(name), "HELP then TYPE, {}", at());
            continue;
        }
        assert!(!line.starts_with('#'), "{}", at());
        let (name, rest) = match line.find(['{', ' ']) {
            Some(i) => line.split_at(i),
            None => panic!("no value, {}", at()),
        };
        assert!(valid_name(name), "{}", at());
        let mut labels = BTreeMap::new();
        let mut rest = rest;
        if let Some(mut r) = rest.strip_prefix('{') {
            loop {
                let eq = r.find('=').unwrap_or_else(|| panic!("{}", at()));
                let label = &r[..eq];
                assert!(valid_label(label), "label {label:?}, {}", at());
                r = r[eq + 1..].strip_prefix('"').unwrap_or_else(|| panic!("{}", at()));
                let mut value = String::new();
                let mut chars = r.char_indices();
                let end = loop {
                    match chars.next() {
                        Some((_, '\\')) => match chars.next() {
                            Some((_, '\\')) => value.push('\\'),
                            Some((_, '"')) => value.push('"'),
                            Some((_, 'n')) => value.push('\n'),
                            _ => panic!("bad escape, {}", at()),
                        },
                        Some((i, '"')) => break i,
                        Some((_, c)) => value.push(c),
                        None => panic!("unterminated label value, {}", at()),
                    }
                };
                assert!(labels.insert(label.to_owned(), value).is_none(), "label twice, {}", at());
                r = &r[end + 1..];
                if let Some(more) = r.strip_prefix(',') {
                    r = more;
                } else {
                    rest = r.strip_prefix('}').unwrap_or_else(|| panic!("{}", at()));
                    break;
                }
            }
        }
        let value = rest.strip_prefix(' ').unwrap_or_else(|| panic!("one space before the value, {}", at()));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            v => v.parse().unwrap_or_else(|_| panic!("value {v:?}, {}", at())),
        };
        let family = if types.contains_key(name) {
            name.to_owned()
        } else {
            ["_bucket", "_sum", "_count"]
                .iter()
                .filter_map(|s| name.strip_suffix(s))
                .find(|base| types.get(*base).is_some_and(|t| t == "histogram"))
                .unwrap_or_else(|| panic!("a sample before its TYPE, {}", at()))
                .to_owned()
        };
        assert_eq!(current.as_deref(), Some(family.as_str()), "a family's samples together, {}", at());
        assert_eq!(name.ends_with("_bucket"), labels.contains_key("le"), "le on buckets only, {}", at());
        started.insert(family);
        assert!(series.insert(format!("{name}{labels:?}")), "the same series twice, {}", at());
        samples.push(Sample { name: name.to_owned(), labels, value });
    }
    let scrape = Scrape { types, samples };
    check_histograms(&scrape);
    scrape
}

/// Buckets rise with `le`, and `+Inf` is the count.
fn check_histograms(s: &Scrape) {
    for (family, _) in s.types.iter().filter(|(_, t)| *t == "histogram") {
        let bucket = format!("{family}_bucket");
        let mut by_series: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
        for sample in s.samples.iter().filter(|x| x.name == bucket) {
            let mut rest = sample.labels.clone();
            let le = rest.remove("le").unwrap();
            let le = if le == "+Inf" { f64::INFINITY } else { le.parse().unwrap() };
            by_series.entry(format!("{rest:?}")).or_default().push((le, sample.value));
        }
        for (labels, buckets) in by_series {
            assert!(
                buckets.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1),
                "{family}{labels}: {buckets:?}"
            );
            let (last_le, total) = *buckets.last().unwrap();
            assert_eq!(last_le, f64::INFINITY, "{family}{labels}");
            let count = s
                .samples
                .iter()
                .find(|x| x.name == format!("{family}_count") && format!("{:?}", x.labels) == labels)
                .unwrap_or_else(|| panic!("{family}_count{labels}"));
            assert_eq!(count.value, total, "{family}{labels}");
        }
    }
}

async fn scrape(g: &Gateway) -> Scrape {
    let r = g.admin_get("/metrics").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["content-type"], "text/plain; version=0.0.4");
    parse(&r.body)
}

#[test]
fn the_parser_refuses_what_prometheus_would() {
    let ok = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\"} 2\n";
    assert_eq!(parse(ok).value("a_total", &[("x", "1")]), 2.0);
    for bad in [
        "a_total 1\n",
        "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\"} 2\na_total{x=\"1\"} 3\n",
        "# HELP a A.\n# TYPE a counter\na 1\n",
        "# HELP a A.\n# TYPE a gauge\na{x=1} 1\n",
        "# HELP a A.\n# TYPE a gauge\na  1\n",
        "# HELP a A.\n# TYPE a gauge\n# HELP b B.\n# TYPE b gauge\nb 1\na 1\n",
        "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_count 1\nh_sum 0\n",
    ] {
        assert!(std::panic::catch_unwind(|| parse(bad)).is_err(), "accepted: {bad}");
    }
}

#[tokio::test]
async fn the_scrape_is_valid_counts_each_request_and_every_family_is_in_the_readme() {
    let saml = "entity_id = \"https://gateway.contoso.test/saml\"";
    let g = gateway().replace(saml, &format!("{saml}\nmax_pending_verifications = 7")).start().await;
    let token = g.token(|_| {});
    assert_eq!(g.get("/v1/x", None).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(g.get("/v1/x", Some(&token)).await.status, StatusCode::OK);
    assert_eq!(g.get("/nowhere", None).await.status, StatusCode::NOT_FOUND);
    assert_eq!(g.get("/public/x", None).await.status, StatusCode::OK);
    let s = scrape(&g).await;
    let api = ("route", "api");
    assert_eq!(s.value("mfagate_decisions_total", &[api, ("decision", "deny"), ("reason", "no_token")]), 1.0);
    assert_eq!(
        s.value("mfagate_decisions_total", &[api, ("decision", "allow"), ("reason", "mfa_satisfied")]),
        1.0
    );
    let none = ("route", "none");
    assert_eq!(
        s.value("mfagate_decisions_total", &[none, ("decision", "deny"), ("reason", "no_route")]),
        1.0
    );
    assert_eq!(s.value("mfagate_responses_total", &[api, ("class", "2xx")]), 1.0);
    assert_eq!(s.value("mfagate_responses_total", &[api, ("class", "4xx")]), 1.0);
    assert_eq!(s.value("mfagate_responses_total", &[api, ("class", "5xx")]), 0.0);
    assert_eq!(s.value("mfagate_responses_total", &[none, ("class", "4xx")]), 1.0);
    assert_eq!(s.value("mfagate_responses_total", &[("route", "public"), ("class", "2xx")]), 1.0);
    assert_eq!(s.value("mfagate_request_latency_seconds_count", &[api]), 2.0);
    assert_eq!(s.value("mfagate_request_latency_seconds_count", &[none]), 1.0);
    // Only the forwarded request went upstream.
    assert_eq!(s.value("mfagate_upstream_latency_seconds_count", &[api]), 1.0);
    assert_eq!(s.value("mfagate_upstream_latency_seconds_count", &[("route", "public")]), 1.0);
    assert_eq!(s.get("mfagate_upstream_latency_seconds_count", &[none]), None);
    // The buckets reach the longest configured timeout (the default 60 s) and the 1 s ones.
    for le in ["1", "60", "+Inf"] {
        assert!(s.get("mfagate_upstream_latency_seconds_bucket", &[api, ("le", le)]).is_some(), "le={le}");
    }
    assert_eq!(s.value("mfagate_requests_in_flight", &[]), 0.0);
    assert_eq!(
        s.value(
            "mfagate_requests_total",
            &[api, ("channel", "api"), ("principal", "anonymous"), ("mfa", "none"), ("decision", "deny")]
        ),
        1.0
    );

    let version = env!("CARGO_PKG_VERSION");
    let build = s.samples.iter().find(|x| x.name == "mfagate_build_info").expect("build info");
    assert_eq!((build.labels["version"].as_str(), build.value), (version, 1.0));
    assert!(!build.labels["commit"].is_empty());

    assert_eq!(s.value("mfagate_decision_log_queue_capacity", &[]), 8192.0);
    assert!(s.value("mfagate_decision_log_queue_depth", &[]) <= 8192.0);
    assert_eq!(s.value("mfagate_decision_log_write_errors_total", &[]), 0.0);
    assert_eq!(s.value("mfagate_saml_verifications_pending", &[]), 0.0);
    assert_eq!(s.value("mfagate_saml_verifications_max_pending", &[]), 7.0);
    assert_eq!(s.value("mfagate_saml_verifications_refused_total", &[]), 0.0);
    assert!(s.value("mfagate_connections_open", &[]) >= 1.0, "the test client's keep-alive connection");

    // The process, as /proc sees it: plausible, not exact.
    let cpu = s.value("process_cpu_seconds_total", &[]);
    assert!(cpu.is_finite() && cpu >= 0.0, "{cpu}");
    let rss = s.value("process_resident_memory_bytes", &[]);
    assert!((1e6..1e11).contains(&rss), "{rss}");
    assert!(s.value("process_virtual_memory_bytes", &[]) >= rss);
    let (open, max) = (s.value("process_open_fds", &[]), s.value("process_max_fds", &[]));
    assert!(open >= 5.0 && open < max, "{open} of {max}");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    let started = s.value("process_start_time_seconds", &[]);
    assert!(started <= now + 1.0 && started > now - 86_400.0, "{started} vs {now}");

    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    for family in s.types.keys() {
        assert!(readme.contains(&format!("| `{family}` |")), "{family} is not in the README's metrics table");
    }
}

#[tokio::test]
async fn key_set_age_and_last_fetch_follow_the_clock() {
    let g = gateway().published(&["dev-rsa-a"]).start().await;
    let s = scrape(&g).await;
    let dev = ("issuer", "dev");
    assert_eq!(s.value("mfagate_jwks_last_success_timestamp_seconds", &[dev]), T0 as f64);
    assert_eq!(s.value("mfagate_jwks_age_seconds", &[dev]), 0.0);
    assert_eq!(s.value("mfagate_jwks_keys", &[dev]), 1.0);
    assert!(s.value("mfagate_jwks_fetch_total", &[dev, ("result", "ok")]) >= 1.0);
    g.clock.advance(Duration::from_secs(90));
    let s = scrape(&g).await;
    assert_eq!(s.value("mfagate_jwks_age_seconds", &[dev]), 90.0);
    assert_eq!(s.value("mfagate_jwks_last_success_timestamp_seconds", &[dev]), T0 as f64);
    assert_eq!(s.value("mfagate_jwks_age_seconds", &[("issuer", "dev-v2")]), 90.0);
}

#[tokio::test]
async fn before_the_first_fetch_there_is_no_age_and_no_keys() {
    let g = gateway().idp_down().start().await;
    let s = scrape(&g).await;
    let dev = ("issuer", "dev");
    assert_eq!(s.get("mfagate_jwks_age_seconds", &[dev]), None);
    assert_eq!(s.value("mfagate_jwks_last_success_timestamp_seconds", &[dev]), 0.0);
    assert_eq!(s.value("mfagate_jwks_keys", &[dev]), 0.0);
}

/// An upstream that answers once the test says so.
async fn held_upstream() -> (u16, tokio::sync::oneshot::Receiver<()>, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (seen_tx, seen_rx) = tokio::sync::oneshot::channel();
    let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        let mut chunk = [0u8; 4096];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = socket.read(&mut chunk).await.unwrap();
            assert!(n > 0, "the request head came");
            head.extend_from_slice(&chunk[..n]);
        }
        let _ = seen_tx.send(());
        let _ = release_rx.await;
        socket
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
            .await
            .unwrap();
    });
    (port, seen_rx, release_tx)
}

#[tokio::test]
async fn in_flight_rises_while_the_upstream_holds_a_request_and_its_latency_goes_to_its_route() {
    let (port, seen, release) = held_upstream().await;
    let route = format!(
        "\n[[route]]\nname = \"held\"\npath_prefix = \"/held/\"\nupstream = \"http://127.0.0.1:{port}\"\nauth = \"none\"\n"
    );
    let g = gateway().append(&route).start().await;
    let held = ("route", "held");
    let client = g.client.clone();
    let req = g.request("/held/x", None).body(Full::<Bytes>::default()).unwrap();
    let answer = tokio::spawn(async move {
        let rsp = client.request(req).await.unwrap();
        let status = rsp.status();
        let _ = rsp.into_body().collect().await;
        status
    });
    tokio::time::timeout(BOUND, seen).await.expect("the upstream got the request").unwrap();
    let s = scrape(&g).await;
    assert_eq!(s.value("mfagate_requests_in_flight", &[]), 1.0);
    assert_eq!(s.value("mfagate_upstream_latency_seconds_count", &[held]), 0.0);
    release.send(()).unwrap();
    assert_eq!(tokio::time::timeout(BOUND, answer).await.unwrap().unwrap(), StatusCode::OK);
    let s = scrape(&g).await;
    assert_eq!(s.value("mfagate_requests_in_flight", &[]), 0.0);
    assert_eq!(s.value("mfagate_upstream_latency_seconds_count", &[held]), 1.0);
    assert!(s.value("mfagate_upstream_latency_seconds_sum", &[held]) > 0.0);
    assert_eq!(s.value("mfagate_upstream_latency_seconds_count", &[("route", "api")]), 0.0);
    assert_eq!(
        s.value("mfagate_decisions_total", &[held, ("decision", "allow"), ("reason", "public_route")]),
        1.0
    );
}

#[tokio::test]
async fn an_upstream_timeout_is_counted_above_the_timeout_bucket() {
    let (port, _seen, _release) = held_upstream().await;
    let route = format!(
        "\n[[route]]\nname = \"held\"\npath_prefix = \"/held/\"\nupstream = \"http://127.0.0.1:{port}\"\nauth = \"none\"\ntimeout_secs = 1\n"
    );
    let g = gateway().append(&route).start().await;
    let r = g.get("/held/x", None).await;
    assert_eq!(r.status, StatusCode::GATEWAY_TIMEOUT);
    let s = scrape(&g).await;
    let held = ("route", "held");
    assert_eq!(s.value("mfagate_upstream_latency_seconds_bucket", &[held, ("le", "1")]), 0.0);
    assert_eq!(s.value("mfagate_upstream_latency_seconds_bucket", &[held, ("le", "+Inf")]), 1.0);
    assert_eq!(s.value("mfagate_responses_total", &[held, ("class", "5xx")]), 1.0);
}

#[tokio::test]
async fn a_failed_decision_log_write_is_counted() {
    let g = gateway()
        .replace("path = \"{dir}/decisions.jsonl\"", "path = \"/dev/full\"\non_log_failure = \"open\"")
        .start()
        .await;
    assert_eq!(g.get("/public/x", None).await.status, StatusCode::OK);
    let start = std::time::Instant::now();
    loop {
        let s = scrape(&g).await;
        if s.value("mfagate_decision_log_write_errors_total", &[]) >= 1.0 {
            assert_eq!(s.value("mfagate_decision_log_healthy", &[]), 0.0);
            break;
        }
        assert!(start.elapsed() < BOUND, "no write error counted");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[test]
fn a_route_may_not_take_the_no_route_label() {
    let toml = "[decision_log]\npath = \"/dev/null\"\n[[route]]\nname = \"none\"\npath_prefix = \"/\"\nupstream = \"http://127.0.0.1:1\"\nauth = \"none\"\n";
    let err = mfagate::Config::from_toml(toml, std::path::Path::new(".")).unwrap_err().to_string();
    assert!(err.contains("route[0].name") && err.contains("reserved"), "{err}");
}
