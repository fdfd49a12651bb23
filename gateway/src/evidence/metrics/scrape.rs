//! One `/metrics` scrape: the request metrics, then what the rest of the gateway counts (token
//! cache, issuer keys, decision log, connections, SAML queue), the build and the process.

use super::exposition::{Kind, Text};
use crate::state::State;
use std::sync::atomic::Ordering::Relaxed;

/// The version, and the commit when the build was given one (`MFAGATE_GIT_COMMIT`).
const VERSION: &str = env!("CARGO_PKG_VERSION");
const COMMIT: Option<&str> = option_env!("MFAGATE_GIT_COMMIT");

/// The whole scrape, Prometheus text format 0.0.4.
pub fn render(state: &State) -> String {
    let mut out = String::new();
    state.metrics.render(&mut out);
    let mut t = Text::new(&mut out);
    state.reloads.render(&mut t);
    let c = &state.cache_counters;
    t.family("mfagate_token_cache_total", Kind::Counter, "Verified-token cache lookups.");
    t.sample("mfagate_token_cache_total", &[("result", "hit")], c.hits.load(Relaxed));
    t.sample("mfagate_token_cache_total", &[("result", "miss")], c.misses.load(Relaxed));
    issuer_keys(&mut t, state);
    saml_metadata(&mut t, state);
    decision_log(&mut t, state);
    saml_queue(&mut t, state);
    if let Some(cluster) = &state.cluster {
        cluster_health(&mut t, cluster);
    }
    if let Some(fleet) = &state.fleet {
        fleet_report(&mut t, fleet);
    }
    t.family("mfagate_build_info", Kind::Gauge, "Always 1; the labels name the build.");
    t.sample(
        "mfagate_build_info",
        &[("version", VERSION), ("commit", COMMIT.filter(|c| !c.is_empty()).unwrap_or("unknown"))],
        1u64,
    );
    state.connections.counters.render(&state.connections.limits, &mut out);
    if let Some(traces) = &state.traces {
        traces.render(&mut out);
    }
    super::process::render(&mut out);
    out
}

fn issuer_keys(t: &mut Text<'_>, state: &State) {
    let keys: Vec<_> = state.verifier.keys().collect();
    t.family("mfagate_jwks_fetch_total", Kind::Counter, "Key-set fetches by issuer and result.");
    for k in &keys {
        let n = k.name();
        t.sample("mfagate_jwks_fetch_total", &[("issuer", n), ("result", "ok")], k.counters.ok.load(Relaxed));
        t.sample(
            "mfagate_jwks_fetch_total",
            &[("issuer", n), ("result", "failed")],
            k.counters.failed.load(Relaxed),
        );
        let limited = k.counters.refetch_limited.load(Relaxed);
        t.sample("mfagate_jwks_fetch_total", &[("issuer", n), ("result", "rate_limited")], limited);
    }
    t.family("mfagate_jwks_keys", Kind::Gauge, "Signing keys in the issuer's current key set.");
    for k in &keys {
        t.sample("mfagate_jwks_keys", &[("issuer", k.name())], k.key_count() as u64);
    }
    t.family(
        "mfagate_jwks_last_success_timestamp_seconds",
        Kind::Gauge,
        "When the issuer's keys were last fetched successfully (0: never).",
    );
    for k in &keys {
        let at = k.last_success_ms().map_or(0.0, |ms| ms as f64 / 1e3);
        t.sample("mfagate_jwks_last_success_timestamp_seconds", &[("issuer", k.name())], at);
    }
    t.family(
        "mfagate_jwks_age_seconds",
        Kind::Gauge,
        "Seconds since the issuer's keys were last fetched successfully (absent until the first).",
    );
    let now = state.clock.now_millis();
    for k in &keys {
        if let Some(ms) = k.last_success_ms() {
            t.sample(
                "mfagate_jwks_age_seconds",
                &[("issuer", k.name())],
                now.saturating_sub(ms) as f64 / 1e3,
            );
        }
    }
}

/// Only IdPs whose certificates come from a `metadata_url`.
fn saml_metadata(t: &mut Text<'_>, state: &State) {
    let fetched: Vec<_> = state.saml.certificates().filter(|c| c.is_fetched()).collect();
    if fetched.is_empty() {
        return;
    }
    const FETCHES: &str = "mfagate_saml_metadata_fetch_total";
    t.family(FETCHES, Kind::Counter, "SAML metadata fetches by IdP and result.");
    for c in &fetched {
        let n = c.name();
        t.sample(FETCHES, &[("idp", n), ("result", "ok")], c.counters.ok.load(Relaxed));
        t.sample(FETCHES, &[("idp", n), ("result", "failed")], c.counters.failed.load(Relaxed));
        t.sample(
            FETCHES,
            &[("idp", n), ("result", "rate_limited")],
            c.counters.refetch_limited.load(Relaxed),
        );
    }
    const CERTS: &str = "mfagate_saml_metadata_certificates";
    t.family(CERTS, Kind::Gauge, "Signing certificates in force from the IdP's metadata (0: not loaded).");
    for c in &fetched {
        t.sample(CERTS, &[("idp", c.name())], c.snapshot().0.ders.len() as u64);
    }
}

fn decision_log(t: &mut Text<'_>, state: &State) {
    let log = &state.log;
    t.single(
        "mfagate_decision_log_lines_total",
        Kind::Counter,
        "Decision records written.",
        log.written.load(Relaxed),
    );
    t.single(
        "mfagate_decision_log_write_errors_total",
        Kind::Counter,
        "Decision-log writes (a batch of records and its flush) that failed.",
        log.write_errors.load(Relaxed),
    );
    t.single(
        "mfagate_decision_log_healthy",
        Kind::Gauge,
        "1 when the last write succeeded.",
        u64::from(log.is_healthy()),
    );
    t.single(
        "mfagate_decision_log_queue_depth",
        Kind::Gauge,
        "Decision records waiting for the writer.",
        log.queue_depth() as u64,
    );
    t.single(
        "mfagate_decision_log_queue_capacity",
        Kind::Gauge,
        "Room in the writer's queue ([decision_log] queue); requests wait when it is full.",
        log.queue_capacity() as u64,
    );
}

fn saml_queue(t: &mut Text<'_>, state: &State) {
    let saml = &state.saml;
    t.single(
        "mfagate_saml_verifications_pending",
        Kind::Gauge,
        "SAML assertions seen for the first time, waiting for or in verification.",
        saml.pending() as u64,
    );
    t.single(
        "mfagate_saml_verifications_max_pending",
        Kind::Gauge,
        "The cap on them ([saml] max_pending_verifications).",
        saml.max_pending() as u64,
    );
    t.single(
        "mfagate_saml_verifications_refused_total",
        Kind::Counter,
        "SAML assertions refused unverified because the queue was full (saml_busy).",
        saml.busy_refusals(),
    );
}

fn cluster_health(t: &mut Text<'_>, cluster: &crate::cluster::Cluster) {
    let h = cluster.health();
    t.single(
        "mfagate_cluster_redis_up",
        Kind::Gauge,
        "1 while the last round trip to Redis succeeded.",
        u64::from(h.up),
    );
    t.single(
        "mfagate_cluster_redis_round_trips_total",
        Kind::Counter,
        "Round trips to Redis.",
        h.round_trips,
    );
    t.single(
        "mfagate_cluster_redis_failures_total",
        Kind::Counter,
        "Round trips to Redis that failed or timed out.",
        h.failures,
    );
    t.single(
        "mfagate_cluster_one_time_round_trips_total",
        Kind::Counter,
        "Round trips to Redis for one-time checks (first sights on this instance).",
        h.checks,
    );
    t.single(
        "mfagate_cluster_one_time_local_total",
        Kind::Counter,
        "One-time checks decided from this instance's memory while Redis was down (on_failure = \"local\").",
        h.fallbacks,
    );
    t.single(
        "mfagate_cluster_one_time_refused_total",
        Kind::Counter,
        "One-time checks refused with 503 while Redis was down (on_failure = \"closed\").",
        h.refusals,
    );
}

fn fleet_report(t: &mut Text<'_>, fleet: &crate::evidence::fleet::FleetReport) {
    let (ok, failed) = fleet.flush_results();
    let family = "mfagate_cluster_report_flush_total";
    t.family(family, Kind::Counter, "Fleet report flushes to Redis by result (failed ones are sent again).");
    t.sample(family, &[("result", "ok")], ok);
    t.sample(family, &[("result", "failed")], failed);
    t.single(
        "mfagate_cluster_report_pending_records",
        Kind::Gauge,
        "Records whose report counts have not reached Redis yet.",
        fleet.pending_records(),
    );
}
