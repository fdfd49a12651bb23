//! Prometheus counters, lock-free on the request path: every label combination is a slot in a
//! fixed array of atomics, so several instances aggregate in Prometheus by plain `sum`.

use mfagate_policy::{Outcome, Principal};
use std::fmt::Write;
use std::sync::RwLock;
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
    /// Route names, each with `PER_ROUTE` counters in `requests`; a reload adds new names at the
    /// end (a name once counted keeps its slot), so its counts never move to another route.
    routes: RwLock<(Vec<String>, Vec<AtomicU64>)>,
    /// Requests that matched no route.
    unrouted: Vec<AtomicU64>,
    latency: [AtomicU64; BUCKETS_US.len() + 1],
    latency_sum_us: AtomicU64,
}

/// The labels of one request.
#[derive(Debug, Clone, Copy)]
pub struct Labels {
    /// Route slot ([`Metrics::route_slots`]), or `None` for unrouted requests.
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
        let counters = zeros(routes.len() * PER_ROUTE);
        Metrics {
            routes: RwLock::new((routes, counters)),
            unrouted: zeros(PER_ROUTE),
            latency: Default::default(),
            latency_sum_us: AtomicU64::new(0),
        }
    }

    /// The slot of each of `names` (a reloaded configuration's routes), adding the new ones.
    pub fn route_slots<'a>(&self, names: impl Iterator<Item = &'a str>) -> Vec<usize> {
        let mut routes = match self.routes.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let (known, counters) = &mut *routes;
        names
            .map(|name| {
                known.iter().position(|n| n == name).unwrap_or_else(|| {
                    known.push(name.to_owned());
                    counters.extend(zeros(PER_ROUTE));
                    known.len() - 1
                })
            })
            .collect()
    }

    /// The counter's index among one route's `PER_ROUTE`.
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

    /// Counts one request.
    pub fn observe(&self, labels: &Labels, latency_us: u64) {
        let slot = Self::slot(labels);
        match labels.route {
            None => self.unrouted[slot].fetch_add(1, Relaxed),
            Some(route) => match self.routes.read() {
                Ok(routes) => route
                    .checked_mul(PER_ROUTE)
                    .and_then(|base| routes.1.get(base + slot))
                    .map_or(0, |c| c.fetch_add(1, Relaxed)),
                Err(_) => 0,
            },
        };
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
        let routes = match self.routes.read() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let (names, counters) = &*routes;
        for route in 0..=names.len() {
            let name = names.get(route).map_or("none", String::as_str);
            let base = &counters[route.min(names.len()) * PER_ROUTE..];
            let row = if route < names.len() { base } else { &self.unrouted[..] };
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
                            let n = row[Self::slot(&labels)].load(Relaxed);
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

fn zeros(n: usize) -> Vec<AtomicU64> {
    (0..n).map(|_| AtomicU64::new(0)).collect()
}

/// The configuration's generation and the last reload's result, for /metrics.
#[derive(Debug, Default)]
pub struct ConfigReloads {
    generation: AtomicU64,
    last_success: AtomicU64,
    last_unix: AtomicU64,
    ok: AtomicU64,
    failed: AtomicU64,
}

impl ConfigReloads {
    /// Generation 1, loaded at `unix` (the start counts as the first successful load).
    pub fn started(unix: u64) -> ConfigReloads {
        let r = ConfigReloads::default();
        r.generation.store(1, Relaxed);
        r.last_success.store(1, Relaxed);
        r.last_unix.store(unix, Relaxed);
        r
    }

    /// A reload at `unix` put `generation` in service.
    pub fn succeeded(&self, generation: u64, unix: u64) {
        self.generation.store(generation, Relaxed);
        self.last_success.store(1, Relaxed);
        self.last_unix.store(unix, Relaxed);
        self.ok.fetch_add(1, Relaxed);
    }

    /// A reload at `unix` was refused; the running generation stays.
    pub fn failed(&self, unix: u64) {
        self.last_success.store(0, Relaxed);
        self.last_unix.store(unix, Relaxed);
        self.failed.fetch_add(1, Relaxed);
    }

    /// Prometheus text exposition.
    pub fn render(&self, out: &mut String) {
        let gauge = |out: &mut String, name: &str, help: &str, value: u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}");
        };
        gauge(
            out,
            "mfagate_config_generation",
            "Configuration generation in service (1 at start, one more per reload).",
            self.generation.load(Relaxed),
        );
        gauge(
            out,
            "mfagate_config_last_reload_success",
            "1 when the last load of the configuration (start or reload) succeeded.",
            self.last_success.load(Relaxed),
        );
        gauge(
            out,
            "mfagate_config_last_reload_timestamp_seconds",
            "When the configuration was last loaded or a reload refused (Unix time).",
            self.last_unix.load(Relaxed),
        );
        counter(
            out,
            "mfagate_config_reloads_total",
            "Configuration reloads by result.",
            &[
                ("{result=\"ok\"}".into(), self.ok.load(Relaxed)),
                ("{result=\"error\"}".into(), self.failed.load(Relaxed)),
            ],
        );
    }
}

/// Appends one counter line with its HELP and TYPE.
pub fn counter(out: &mut String, name: &str, help: &str, samples: &[(String, u64)]) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
    for (labels, value) in samples {
        let _ = writeln!(out, "{name}{labels} {value}");
    }
}
