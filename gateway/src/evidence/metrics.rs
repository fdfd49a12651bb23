//! Prometheus metrics, lock-free on the request path: each route's series are a block of atomics
//! found once per request by the route's index. The blocks are kept by route name across
//! configurations ([`Metrics::rebind`]), so a reload keeps the series of the routes it keeps; the
//! label set stays bounded (configured route names, plus `none` for requests no route matched).

pub mod exposition;
pub mod histogram;
pub mod process;
pub mod reasons;
pub mod reloads;
pub mod scrape;

use crate::config::RouteConfig;
use crate::evidence::record::DecisionRecord;
use exposition::{Kind, Text};
use histogram::{Histogram, Layout};
use mfagate_policy::{Outcome, Principal};
pub use reloads::ConfigReloads;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

const CHANNELS: [&str; 2] = ["api", "portal"];
const PRINCIPALS: [Principal; 4] =
    [Principal::AppUser, Principal::AppOnly, Principal::User, Principal::Anonymous];
const MFA: [&str; 3] = ["true", "false", "none"];
const OUTCOMES: [Outcome; 3] = [Outcome::Allow, Outcome::Deny, Outcome::Challenge];
const PER_ROUTE: usize = CHANNELS.len() * PRINCIPALS.len() * MFA.len() * OUTCOMES.len();
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];
const DECISIONS: usize = OUTCOMES.len() * reasons::REASONS.len();
/// The route label of requests no route matched (a route may not take this name).
pub const NO_ROUTE: &str = "none";

/// One route's counters.
#[derive(Debug)]
struct Counts {
    requests: [AtomicU64; PER_ROUTE],
    decisions: Box<[AtomicU64]>,
    responses: [AtomicU64; CLASSES.len()],
}

impl Counts {
    fn new() -> Arc<Counts> {
        Arc::new(Counts {
            requests: std::array::from_fn(|_| AtomicU64::new(0)),
            decisions: (0..DECISIONS).map(|_| AtomicU64::new(0)).collect(),
            responses: Default::default(),
        })
    }
}

/// One route's latency histograms, on the configuration's buckets.
#[derive(Debug)]
struct Times {
    request: Histogram,
    upstream: Histogram,
}

impl Times {
    fn new(layout: &Arc<Layout>) -> Arc<Times> {
        Arc::new(Times { request: Histogram::new(layout.clone()), upstream: Histogram::new(layout.clone()) })
    }
}

#[derive(Debug, Clone)]
struct Series {
    counts: Arc<Counts>,
    times: Arc<Times>,
}

/// What outlives a configuration: the gauges and every series by route name.
#[derive(Debug, Default)]
struct Shared {
    in_flight: AtomicI64,
    /// The series of the routes of the last configuration bound (`None` is the no-route series).
    by_name: Mutex<HashMap<Option<String>, Series>>,
}

/// The request metrics of one configuration.
#[derive(Debug)]
pub struct Metrics {
    shared: Arc<Shared>,
    names: Vec<String>,
    /// By route index.
    routes: Vec<Series>,
    none: Series,
}

/// The labels of one request.
#[derive(Debug, Clone, Copy)]
pub struct Labels {
    /// Route index, or `None` for unrouted requests.
    pub route: Option<usize>,
    /// Index into api/portal.
    pub portal: bool,
    /// Who.
    pub principal: Principal,
    /// MFA.
    pub mfa: Option<bool>,
    /// What was decided.
    pub outcome: Outcome,
}

impl Labels {
    /// A request before anything is known of it: no route, anonymous, denied.
    pub fn undecided() -> Labels {
        Labels {
            route: None,
            portal: false,
            principal: Principal::Anonymous,
            mfa: None,
            outcome: Outcome::Deny,
        }
    }
}

/// Counts a request in flight until dropped.
pub struct InFlight<'a>(&'a AtomicI64);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

impl Metrics {
    /// Metrics for these routes, all counters at zero.
    pub fn new(routes: &[RouteConfig]) -> Metrics {
        Metrics::bind(Arc::default(), routes)
    }

    /// The same metrics for a new configuration's routes: a route that keeps its name keeps its
    /// series; a removed route's series are no longer shown. Histograms restart when the new
    /// timeouts change the buckets.
    pub fn rebind(&self, routes: &[RouteConfig]) -> Metrics {
        Metrics::bind(self.shared.clone(), routes)
    }

    fn bind(shared: Arc<Shared>, routes: &[RouteConfig]) -> Metrics {
        let layout = Layout::for_timeouts(routes.iter().map(|r| r.upstream_timeout));
        let mut by_name = shared.by_name.lock().unwrap_or_else(PoisonError::into_inner);
        let take = |name: Option<&str>| {
            let old = by_name.get(&name.map(str::to_owned));
            let counts = old.map_or_else(Counts::new, |s| s.counts.clone());
            let times = old
                .map(|s| s.times.clone())
                .filter(|t| t.request.layout() == &layout)
                .unwrap_or_else(|| Times::new(&layout));
            Series { counts, times }
        };
        let series: Vec<Series> = routes.iter().map(|r| take(Some(&r.name))).collect();
        let none = take(None);
        let mut next: HashMap<Option<String>, Series> =
            routes.iter().zip(&series).map(|(r, s)| (Some(r.name.clone()), s.clone())).collect();
        next.insert(None, none.clone());
        *by_name = next;
        drop(by_name);
        Metrics { names: routes.iter().map(|r| r.name.clone()).collect(), routes: series, none, shared }
    }

    fn series(&self, route: Option<usize>) -> &Series {
        route.and_then(|i| self.routes.get(i)).unwrap_or(&self.none)
    }

    /// A request begins; it is in flight until the guard drops.
    pub fn in_flight(&self) -> InFlight<'_> {
        self.shared.in_flight.fetch_add(1, Relaxed);
        InFlight(&self.shared.in_flight)
    }

    /// Counts one request as its decision record says: decision, reason, status, latency.
    pub fn observe(&self, labels: &Labels, rec: &DecisionRecord) {
        let s = self.series(labels.route);
        if let Some(c) = s.counts.requests.get(slot(labels)) {
            c.fetch_add(1, Relaxed);
        }
        let decision = match rec.decision {
            "allow" => 0,
            "challenge" => 2,
            _ => 1,
        };
        if let Some(c) =
            s.counts.decisions.get(decision * reasons::REASONS.len() + reasons::index(rec.reason))
        {
            c.fetch_add(1, Relaxed);
        }
        let class = usize::from(rec.status / 100).clamp(1, CLASSES.len()) - 1;
        s.counts.responses[class].fetch_add(1, Relaxed);
        s.times.request.observe(rec.latency_us);
    }

    /// Counts one upstream exchange (to the response head, or to its failure or timeout).
    pub fn observe_upstream(&self, route: Option<usize>, took: Duration) {
        self.series(route).times.upstream.observe(took.as_micros() as u64);
    }

    /// Prometheus text for the request metrics.
    pub fn render(&self, out: &mut String) {
        let mut t = Text::new(out);
        let routes: Vec<(&str, &Series)> = self
            .names
            .iter()
            .map(String::as_str)
            .zip(&self.routes)
            .chain(std::iter::once((NO_ROUTE, &self.none)))
            .collect();
        t.family(
            "mfagate_requests_total",
            Kind::Counter,
            "Requests by route, channel, principal, MFA and decision.",
        );
        for (route, s) in &routes {
            for (c, channel) in CHANNELS.iter().enumerate() {
                for principal in PRINCIPALS {
                    for (m, mfa) in MFA.iter().enumerate() {
                        for outcome in OUTCOMES {
                            let labels = Labels {
                                route: None,
                                portal: c == 1,
                                principal,
                                mfa: [Some(true), Some(false), None][m],
                                outcome,
                            };
                            let n = s.counts.requests[slot(&labels)].load(Relaxed);
                            if n > 0 {
                                let labels = [
                                    ("route", *route),
                                    ("channel", channel),
                                    ("principal", principal.as_str()),
                                    ("mfa", mfa),
                                    ("decision", outcome.as_str()),
                                ];
                                t.sample("mfagate_requests_total", &labels, n);
                            }
                        }
                    }
                }
            }
        }
        t.family(
            "mfagate_decisions_total",
            Kind::Counter,
            "Decisions by route, decision and reason code (the decision record's).",
        );
        for (route, s) in &routes {
            for (o, outcome) in OUTCOMES.iter().enumerate() {
                for (r, reason) in reasons::REASONS.iter().enumerate() {
                    let n = s.counts.decisions[o * reasons::REASONS.len() + r].load(Relaxed);
                    if n > 0 {
                        let labels = [("route", *route), ("decision", outcome.as_str()), ("reason", reason)];
                        t.sample("mfagate_decisions_total", &labels, n);
                    }
                }
            }
        }
        t.family(
            "mfagate_responses_total",
            Kind::Counter,
            "Responses by route and status class (499 when the client left).",
        );
        for (route, s) in &routes {
            for (class, n) in CLASSES.iter().zip(&s.counts.responses) {
                t.sample("mfagate_responses_total", &[("route", route), ("class", class)], n.load(Relaxed));
            }
        }
        histogram::family(
            &mut t,
            "mfagate_request_latency_seconds",
            "Time from the request to its response head, by route.",
        );
        for (route, s) in &routes {
            s.times.request.render(&mut t, "mfagate_request_latency_seconds", &[("route", route)]);
        }
        histogram::family(
            &mut t,
            "mfagate_upstream_latency_seconds",
            "Time the upstream took to its response head (or failure, or timeout), by route.",
        );
        for (route, s) in routes.iter().filter(|(r, _)| *r != NO_ROUTE) {
            s.times.upstream.render(&mut t, "mfagate_upstream_latency_seconds", &[("route", route)]);
        }
        t.single(
            "mfagate_requests_in_flight",
            Kind::Gauge,
            "Requests received and not yet answered (to the response head).",
            self.shared.in_flight.load(Relaxed),
        );
    }
}

fn slot(l: &Labels) -> usize {
    let principal = PRINCIPALS.iter().position(|p| *p == l.principal).unwrap_or(PRINCIPALS.len() - 1);
    let mfa = match l.mfa {
        Some(true) => 0,
        Some(false) => 1,
        None => 2,
    };
    let outcome = OUTCOMES.iter().position(|o| *o == l.outcome).unwrap_or(1);
    ((usize::from(l.portal) * PRINCIPALS.len() + principal) * MFA.len() + mfa) * OUTCOMES.len() + outcome
}

/// Appends one counter family with its HELP and TYPE; `samples` are (label text, value).
pub fn counter(out: &mut String, name: &str, help: &str, samples: &[(String, u64)]) {
    Text::new(out).family(name, Kind::Counter, help);
    for (labels, value) in samples {
        out.push_str(&format!("{name}{labels} {value}\n"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routes(names_and_timeouts: &[(&str, u64)]) -> Vec<RouteConfig> {
        let mut toml = "[decision_log]\npath = \"/dev/null\"\n".to_owned();
        for (i, (name, timeout)) in names_and_timeouts.iter().enumerate() {
            toml.push_str(&format!(
                "[[route]]\nname = \"{name}\"\npath_prefix = \"/{i}/\"\nupstream = \"http://127.0.0.1:1\"\nauth = \"none\"\ntimeout_secs = {timeout}\n"
            ));
        }
        crate::Config::from_toml(&toml, std::path::Path::new(".")).unwrap().routes
    }

    fn request(m: &Metrics, route: usize) {
        let labels = Labels {
            route: Some(route),
            portal: false,
            principal: Principal::Anonymous,
            mfa: None,
            outcome: Outcome::Allow,
        };
        let rec = DecisionRecord {
            decision: "allow",
            reason: "public_route",
            status: 200,
            latency_us: 1_000,
            ..Default::default()
        };
        m.observe(&labels, &rec);
    }

    fn text(m: &Metrics) -> String {
        let mut s = String::new();
        m.render(&mut s);
        s
    }

    #[test]
    fn a_reload_keeps_the_series_of_the_routes_it_keeps_and_drops_the_others() {
        let first = Metrics::new(&routes(&[("a", 5), ("b", 5)]));
        request(&first, 0);
        request(&first, 1);
        let a = "mfagate_decisions_total{route=\"a\",decision=\"allow\",reason=\"public_route\"}";
        assert!(text(&first).contains(&format!("{a} 1\n")));
        // `a` moves to another index, `b` goes, `c` comes.
        let second = first.rebind(&routes(&[("c", 5), ("a", 5)]));
        request(&second, 1);
        let s = text(&second);
        assert!(s.contains(&format!("{a} 2\n")), "{s}");
        assert!(s.contains("mfagate_request_latency_seconds_count{route=\"a\"} 2\n"), "{s}");
        assert!(s.contains("mfagate_responses_total{route=\"c\",class=\"2xx\"} 0\n"), "{s}");
        assert!(!s.contains("route=\"b\""), "a removed route is no longer shown: {s}");
        // New timeouts, new buckets: the histograms restart, the counters go on.
        let third = second.rebind(&routes(&[("a", 7)]));
        let s = text(&third);
        assert!(s.contains(&format!("{a} 2\n")), "{s}");
        assert!(s.contains("mfagate_request_latency_seconds_count{route=\"a\"} 0\n"), "{s}");
        assert!(s.contains("mfagate_upstream_latency_seconds_bucket{route=\"a\",le=\"7\"} 0\n"), "{s}");
        // Requests of the old configuration still count in the series they share.
        request(&first, 0);
        assert!(text(&third).contains(&format!("{a} 3\n")));
    }

    #[test]
    fn in_flight_counts_until_the_guard_drops() {
        let m = Metrics::new(&routes(&[("a", 5)]));
        let held = m.in_flight();
        let again = m.rebind(&routes(&[("a", 5)]));
        assert!(text(&again).contains("mfagate_requests_in_flight 1\n"));
        drop(held);
        assert!(text(&m).contains("mfagate_requests_in_flight 0\n"));
    }

    #[test]
    fn a_reason_no_list_holds_is_counted_as_other() {
        let m = Metrics::new(&routes(&[("a", 5)]));
        let labels = Labels::undecided();
        let rec = DecisionRecord { decision: "deny", reason: "made_up", status: 404, ..Default::default() };
        m.observe(&labels, &rec);
        let s = text(&m);
        assert!(
            s.contains("mfagate_decisions_total{route=\"none\",decision=\"deny\",reason=\"other\"} 1\n"),
            "{s}"
        );
        assert!(s.contains("mfagate_responses_total{route=\"none\",class=\"4xx\"} 1\n"), "{s}");
    }
}
