//! Connection counters for /metrics: what was refused, what a deadline closed, and what hyper or
//! rustls refused before a request reached the gateway.

use super::limits::{Limits, Refused};
use crate::evidence::metrics::counter;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Why the gateway closed a connection on a deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// No complete request head in time (from accept, TLS handshake and protocol detection
    /// included; or a later HTTP/1 head once its first byte came).
    HeaderTimeout,
    /// No request in flight for `idle_timeout_secs`.
    Idle,
    /// A WebSocket tunnel without a byte either way for `websocket_idle_timeout_secs`.
    WebsocketIdle,
    /// A response the client stopped reading: no write progress for `idle_timeout_secs`.
    SendTimeout,
    /// Still open when the shutdown grace period ended.
    ShutdownGrace,
}

const CLOSED: [(Closed, &str); 5] = [
    (Closed::HeaderTimeout, "header_timeout"),
    (Closed::Idle, "idle"),
    (Closed::WebsocketIdle, "websocket_idle"),
    (Closed::SendTimeout, "send_timeout"),
    (Closed::ShutdownGrace, "shutdown_grace"),
];

/// A connection that failed before or instead of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// hyper answered 431 (HTTP/1).
    HeaderTooLarge,
    /// hyper answered 414 (HTTP/1).
    UriTooLong,
    /// hyper answered 400 to a request it could not parse (HTTP/1).
    BadRequest,
    /// The TLS handshake failed.
    TlsHandshake,
    /// `accept` failed (out of file descriptors and the like).
    Accept,
}

const FAILURES: [(Failure, &str); 5] = [
    (Failure::HeaderTooLarge, "header_too_large"),
    (Failure::UriTooLong, "uri_too_long"),
    (Failure::BadRequest, "bad_request"),
    (Failure::TlsHandshake, "tls_handshake"),
    (Failure::Accept, "accept"),
];

const REFUSED: [(Refused, &str); 2] =
    [(Refused::Total, "max_connections"), (Refused::PerIp, "max_connections_per_ip")];

/// The counters.
#[derive(Debug, Default)]
pub struct Counters {
    accepted: AtomicU64,
    refused: [AtomicU64; REFUSED.len()],
    closed: [AtomicU64; CLOSED.len()],
    failures: [AtomicU64; FAILURES.len()],
}

fn bump<T: PartialEq>(slots: &[AtomicU64], names: &[(T, &str)], which: T) {
    if let Some(i) = names.iter().position(|(t, _)| *t == which) {
        slots[i].fetch_add(1, Relaxed);
    }
}

impl Counters {
    /// A connection was accepted (admitted or not).
    pub fn accepted(&self) {
        self.accepted.fetch_add(1, Relaxed);
    }

    /// A cap refused a connection.
    pub fn refused(&self, why: Refused) {
        bump(&self.refused, &REFUSED, why);
    }

    /// A deadline closed a connection.
    pub fn closed(&self, why: Closed) {
        bump(&self.closed, &CLOSED, why);
    }

    /// A connection failed.
    pub fn failed(&self, what: Failure) {
        bump(&self.failures, &FAILURES, what);
    }

    /// Prometheus text for the counters and the open-connections gauge.
    pub fn render(&self, limits: &Limits, out: &mut String) {
        let _ = write!(
            out,
            "# HELP mfagate_connections_open Client connections open now (WebSocket tunnels included).\n# TYPE mfagate_connections_open gauge\nmfagate_connections_open {}\n\
             # HELP mfagate_connections_max The connection cap in force (max_connections within the open-files budget).\n# TYPE mfagate_connections_max gauge\nmfagate_connections_max {}\n",
            limits.open(),
            limits.max()
        );
        counter(
            out,
            "mfagate_connections_accepted_total",
            "Client connections accepted, before the caps.",
            &[(String::new(), self.accepted.load(Relaxed))],
        );
        let labelled = |label: &str, names: &[&str], slots: &[AtomicU64]| -> Vec<(String, u64)> {
            names.iter().zip(slots).map(|(n, c)| (format!("{{{label}=\"{n}\"}}"), c.load(Relaxed))).collect()
        };
        counter(
            out,
            "mfagate_connections_refused_total",
            "Connections closed at accept because a cap was full.",
            &labelled("reason", &REFUSED.map(|r| r.1), &self.refused),
        );
        counter(
            out,
            "mfagate_connections_closed_total",
            "Connections the gateway closed on a deadline.",
            &labelled("reason", &CLOSED.map(|r| r.1), &self.closed),
        );
        counter(
            out,
            "mfagate_connection_errors_total",
            "Connections that failed before a request reached the gateway.",
            &labelled("kind", &FAILURES.map(|r| r.1), &self.failures),
        );
    }
}
