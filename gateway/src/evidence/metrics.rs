//! Prometheus counters, lock-free on the request path: every label combination is a slot in a
//! fixed array of atomics, so several instances aggregate in Prometheus by plain `sum`.

use mfagate_policy::{Outcome, Principal};
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

const CHANNELS: [&str; 2] = ["api", "portal"];
const PRINCIPALS: [Principal; 4] =
    [Principal::AppUser, Principal::AppOnly, Principal::User, Principal::Anonymous];
const MFA: [&str; 3] = ["true", "false", "none"];
const OUTCOMES: [Outcome; 3] = [Outcome::Allow, Outcome::Deny, Outcome::Challenge];
const PER_ROUTE: usize = CHANNELS.len() * PRINCIPALS.len() * MFA.len() * OUTCOMES.len();
/// Latency buckets, microseconds.
const BUCKETS_US: [u64; 12] =
    [100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 500_000, 2_000_000];

/// The request counters.
pub struct Metrics {
    routes: Vec<String>,
    requests: Vec<AtomicU64>,
    latency: [AtomicU64; BUCKETS_US.len() + 1],
    latency_sum_us: AtomicU64,
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

impl Metrics {
    /// Counters for these route names (plus one slot for "no route").
    pub fn new(routes: Vec<String>) -> Metrics {
        let slots = (routes.len() + 1) * PER_ROUTE;
        Metrics {
            routes,
            requests: (0..slots).map(|_| AtomicU64::new(0)).collect(),
            latency: Default::default(),
            latency_sum_us: AtomicU64::new(0),
        }
    }

    fn slot(&self, l: &Labels) -> usize {
        let route = l.route.unwrap_or(self.routes.len());
        let principal = PRINCIPALS.iter().position(|p| *p == l.principal).unwrap_or(PRINCIPALS.len() - 1);
        let mfa = match l.mfa {
            Some(true) => 0,
            Some(false) => 1,
            None => 2,
        };
        let outcome = OUTCOMES.iter().position(|o| *o == l.outcome).unwrap_or(1);
        (((route * CHANNELS.len() + usize::from(l.portal)) * PRINCIPALS.len() + principal) * MFA.len() + mfa)
            * OUTCOMES.len()
            + outcome
    }

    /// Counts one request.
    pub fn observe(&self, labels: &Labels, latency_us: u64) {
        if let Some(c) = self.requests.get(self.slot(labels)) {
            c.fetch_add(1, Relaxed);
        }
        let bucket = BUCKETS_US.iter().position(|b| latency_us <= *b).unwrap_or(BUCKETS_US.len());
        self.latency[bucket].fetch_add(1, Relaxed);
        self.latency_sum_us.fetch_add(latency_us, Relaxed);
    }

    /// Prometheus text exposition of the request counters and latency histogram.
    pub fn render(&self, out: &mut String) {
        out.push_str(
            "# HELP mfagate_requests_total Requests by route, channel, principal, MFA and decision.\n",
        );
        out.push_str("# TYPE mfagate_requests_total counter\n");
        for route in 0..=self.routes.len() {
            let name = self.routes.get(route).map_or("none", String::as_str);
            for (c, channel) in CHANNELS.iter().enumerate() {
                for principal in PRINCIPALS {
                    for (m, mfa) in MFA.iter().enumerate() {
                        for outcome in OUTCOMES {
                            let labels = Labels {
                                route: (route < self.routes.len()).then_some(route),
                                portal: c == 1,
                                principal,
                                mfa: [Some(true), Some(false), None][m],
                                outcome,
                            };
                            let n = self.requests[self.slot(&labels)].load(Relaxed);
                            if n > 0 {
                                let _ = writeln!(
                                    out,
                                    "mfagate_requests_total{{route=\"{name}\",channel=\"{channel}\",principal=\"{}\",mfa=\"{mfa}\",decision=\"{}\"}} {n}",
                                    principal.as_str(),
                                    outcome.as_str()
                                );
                            }
                        }
                    }
                }
            }
        }
        out.push_str("# HELP mfagate_request_latency_seconds Time to the response head.\n");
        out.push_str("# TYPE mfagate_request_latency_seconds histogram\n");
        let mut cumulative = 0;
        for (i, bound) in BUCKETS_US.iter().enumerate() {
            cumulative += self.latency[i].load(Relaxed);
            let _ = writeln!(
                out,
                "mfagate_request_latency_seconds_bucket{{le=\"{}\"}} {cumulative}",
                *bound as f64 / 1e6
            );
        }
        cumulative += self.latency[BUCKETS_US.len()].load(Relaxed);
        let _ = writeln!(out, "mfagate_request_latency_seconds_bucket{{le=\"+Inf\"}} {cumulative}");
        let _ = writeln!(
            out,
            "mfagate_request_latency_seconds_sum {}",
            self.latency_sum_us.load(Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "mfagate_request_latency_seconds_count {cumulative}");
    }
}

/// Appends one counter line with its HELP and TYPE.
pub fn counter(out: &mut String, name: &str, help: &str, samples: &[(String, u64)]) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
    for (labels, value) in samples {
        let _ = writeln!(out, "{name}{labels} {value}");
    }
}
