//! One client connection, from accept to close: TLS, HTTP/1 or HTTP/2 (hyper-util's detection),
//! and the deadlines hyper does not keep itself. A slow or silent client costs one slot under
//! the caps for at most `header_read_timeout` before its first request head (TLS handshake and
//! protocol detection included), `idle_timeout` between requests, and `idle_timeout` with a
//! response it does not read. What hyper answers itself
//! (400, 414, 431 on HTTP/1) is recorded and counted here, after the connection ends.

pub mod activity;
pub mod counters;
pub mod limits;

use crate::evidence::metrics::Labels;
use crate::evidence::record::DecisionRecord;
use crate::gate::proxy::Peer;
use crate::reload::Current;
use crate::respond::Refusal;
use crate::state::State;
use activity::{Activity, Due, Metered, Tracked};
use counters::{Closed, Counters, Failure};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use limits::{Limits, Permit};
use mfagate_policy::{Outcome as Decided, Principal};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;

/// The caps and the counters, shared by the listener, the tunnels and /metrics.
#[derive(Debug)]
pub struct Connections {
    /// The caps.
    pub limits: Arc<Limits>,
    /// Upstream requests (and tunnels) in flight at once: as many as client connections, the
    /// other half of the open-files budget, however many HTTP/2 streams a client opens.
    pub upstream: Arc<tokio::sync::Semaphore>,
    /// The same per client address, under `max_connections_per_ip`: one address gets as many
    /// upstream slots as connections, however many HTTP/2 streams it opens.
    pub upstream_per_ip: Arc<Limits>,
    /// The counters.
    pub counters: Counters,
}

/// Carried by an upgrade request to its WebSocket tunnel, so the tunnel keeps the connection's
/// slot under the caps for as long as it lives.
#[derive(Debug, Clone)]
pub struct Hold {
    _permit: Arc<Permit>,
}

/// How a listener serves its connections (TLS comes from the generation in service at accept).
pub struct Listener {
    /// HTTP/1 and HTTP/2 settings.
    pub builder: auto::Builder<TokioExecutor>,
}

/// What the listener asks of its connections: a graceful close at shutdown, then, once the
/// grace period is over, to drop whatever is left (each dropped request still gets its record).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Serve as usual.
    Serving,
    /// Finish the requests in flight, then close.
    Closing,
    /// Close now.
    Cut,
}

/// How a connection ended.
enum Ending {
    /// hyper finished; `true` when an idle close had begun.
    Served(Result<(), Box<dyn std::error::Error + Send + Sync>>, bool),
    /// No complete request head in time.
    HeaderTimeout,
    /// Closed as idle, then dropped when it did not finish closing in time.
    Idle,
    /// The client stopped reading its response.
    SendTimeout,
    /// The TLS handshake failed.
    TlsFailed,
    /// Shutdown, before any request.
    Stopped,
    /// Still open when the shutdown grace period ended.
    Cut,
}

/// Serves one admitted connection until it closes. `stop` asks for a graceful close. The
/// connection's TLS and deadlines come from the generation in service when it was accepted;
/// each request takes the generation in service when it starts.
pub async fn serve(
    current: Arc<Current>,
    listener: Arc<Listener>,
    stream: TcpStream,
    addr: SocketAddr,
    permit: Permit,
    mut stop: watch::Receiver<Stage>,
) {
    let origin = Instant::now();
    let activity = Activity::new(origin);
    let permit = Arc::new(permit);
    // What the connection needs of its generation, not the generation: a long-lived connection
    // must not keep a replaced configuration (and its caches) alive.
    let (header_read_timeout, tls) = {
        let state = current.load();
        (state.config.listen.header_read_timeout, state.tls.clone())
    };
    let ending = match &tls {
        None => {
            let peer = Peer { addr, scheme: "http" };
            http(&current, &listener.builder, stream, peer, &activity, &permit, &mut stop).await
        }
        Some(acceptor) => {
            let deadline = origin + header_read_timeout;
            match tokio::time::timeout_at(deadline, acceptor.accept(stream)).await {
                Err(_) => Ending::HeaderTimeout,
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "TLS handshake failed");
                    Ending::TlsFailed
                }
                Ok(Ok(tls)) => {
                    let peer = Peer { addr, scheme: "https" };
                    http(&current, &listener.builder, tls, peer, &activity, &permit, &mut stop).await
                }
            }
        }
    };
    settle(&current.load(), addr, &activity, origin, ending).await;
}

/// Runs hyper on `io` under the deadlines of the generation in service when it starts.
async fn http<I>(
    current: &Arc<Current>,
    builder: &auto::Builder<TokioExecutor>,
    io: I,
    peer: Peer,
    activity: &Arc<Activity>,
    permit: &Arc<Permit>,
    stop: &mut watch::Receiver<Stage>,
) -> Ending
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = {
        let (current, activity, hold) = (current.clone(), activity.clone(), Hold { _permit: permit.clone() });
        service_fn(move |mut req: http::Request<Incoming>| {
            let request = activity.request_started(req.version() == http::Version::HTTP_2);
            if crate::gate::forward::is_upgrade(req.headers()) {
                req.extensions_mut().insert(hold.clone());
            }
            let state = current.load();
            async move {
                let rsp = match crate::gate::proxy::handle(state, peer, req).await {
                    Ok(rsp) => rsp,
                    Err(never) => match never {},
                };
                Ok::<_, std::convert::Infallible>(rsp.map(|body| Tracked::new(body, request)))
            }
        })
    };
    let io = TokioIo::new(Metered::new(io, activity.clone()));
    let mut conn = std::pin::pin!(builder.serve_connection_with_upgrades(io, service));
    let (header, idle) = {
        let listen = &current.load().config.listen;
        (listen.header_read_timeout, listen.idle_timeout)
    };
    let mut closing: Option<Instant> = None;
    let mut stopping = false;
    // Draining began while a first request head was arriving: it is served (or times out, and is
    // recorded) instead of being dropped unanswered; then the connection closes gracefully.
    let mut head_pending = false;
    loop {
        if head_pending && activity.requests() > 0 {
            head_pending = false;
            conn.as_mut().graceful_shutdown();
        }
        let now = Instant::now();
        let wake = match closing {
            // A graceful close that does not finish (an HTTP/2 peer that never acknowledges the
            // GOAWAY) is cut off after one more header timeout.
            Some(since) if now >= since + header => return Ending::Idle,
            Some(since) => Some(since + header),
            None => match activity.due(header, idle, now) {
                Due::HeaderTimeout => return Ending::HeaderTimeout,
                Due::SendTimeout => return Ending::SendTimeout,
                Due::Idle => {
                    conn.as_mut().graceful_shutdown();
                    closing = Some(now);
                    continue;
                }
                Due::Wait(at) => at,
            },
        };
        tokio::select! {
            served = conn.as_mut() => return Ending::Served(served, closing.is_some()),
            () = sleep_until(wake) => {}
            () = activity.changed.notified() => {}
            changed = stop.changed() => {
                // A listener gone without a word has stopped for good.
                let stage = if changed.is_ok() { *stop.borrow_and_update() } else { Stage::Cut };
                match stage {
                    Stage::Cut => return Ending::Cut,
                    Stage::Closing if !stopping => {
                        stopping = true;
                        if activity.requests() == 0 && !activity.began_http1_request() {
                            return Ending::Stopped;
                        }
                        if activity.requests() == 0 {
                            head_pending = true;
                        } else {
                            conn.as_mut().graceful_shutdown();
                        }
                    }
                    Stage::Closing | Stage::Serving => {}
                }
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Counts how the connection ended, and records what hyper answered itself.
async fn settle(state: &State, addr: SocketAddr, activity: &Activity, origin: Instant, ending: Ending) {
    let counters = &state.connections.counters;
    match ending {
        Ending::HeaderTimeout => {
            counters.closed(Closed::HeaderTimeout);
            // A silent connection, an unused TLS or HTTP/2 preconnect, is not a request.
            if activity.began_http1_request() {
                record(state, addr, &Refusal::HeaderTimeout, origin).await;
            }
        }
        Ending::Idle | Ending::Served(Ok(()), true) => counters.closed(Closed::Idle),
        Ending::SendTimeout => counters.closed(Closed::SendTimeout),
        Ending::Cut => {
            counters.closed(Closed::ShutdownGrace);
            // A first head still arriving when the grace ended: not answered in time, as a header
            // timeout is (requests already started are recorded by their own guards).
            if activity.requests() == 0 && activity.began_http1_request() {
                record(state, addr, &Refusal::HeaderTimeout, origin).await;
            }
        }
        Ending::Served(Ok(()), false) | Ending::Stopped => {}
        Ending::TlsFailed => counters.failed(Failure::TlsHandshake),
        Ending::Served(Err(e), _) => match answered_by_hyper(e.as_ref()) {
            Some((failure, refusal)) => {
                counters.failed(failure);
                record(state, addr, &refusal, origin).await;
            }
            None => tracing::debug!(error = %e, "Connection ended with an error"),
        },
    }
}

/// What hyper answered itself, from the error its HTTP/1 connection ends with (after the answer
/// is written): its 431, 414 and 400. HTTP/2 refusals stay inside the h2 stream (not seen).
fn answered_by_hyper(
    e: &(dyn std::error::Error + Send + Sync + 'static),
) -> Option<(Failure, Refusal<'static>)> {
    let e = e.downcast_ref::<hyper::Error>()?;
    if e.is_parse_too_large() {
        // One predicate covers both: hyper's own message tells its 414 from its 431.
        return Some(if e.to_string().contains("URI too long") {
            (Failure::UriTooLong, Refusal::UriTooLong)
        } else {
            (Failure::HeaderTooLarge, Refusal::HeaderTooLarge)
        });
    }
    (e.is_parse() && !e.is_parse_version_h2()).then_some((Failure::BadRequest, Refusal::Unparsable))
}

/// A decision record for a request refused before it had a method or a path.
async fn record(state: &State, addr: SocketAddr, refusal: &Refusal<'_>, origin: Instant) {
    let latency_us = origin.elapsed().as_micros() as u64;
    let rec = DecisionRecord {
        ts: crate::clock::rfc3339_millis(state.clock.now_millis()),
        request_id: crate::ids::request_id(),
        channel: "api",
        source_ip: addr.ip().to_string(),
        principal: Principal::Anonymous.as_str(),
        decision: Decided::Deny.as_str(),
        enforced: true,
        reason: refusal.code(),
        status: crate::respond::status(refusal).as_u16(),
        latency_us,
        ..DecisionRecord::default()
    };
    let labels = Labels {
        route: None,
        portal: false,
        principal: Principal::Anonymous,
        mfa: None,
        outcome: Decided::Deny,
    };
    state.metrics.observe(&labels, &rec);
    state.log.record(rec).await;
}
