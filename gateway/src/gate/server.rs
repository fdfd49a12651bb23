//! Listeners: accept under the connection caps, optional rustls termination (HTTP/1.1 and HTTP/2
//! by ALPN), hyper-util's auto connection builder (each connection is served by `connection`),
//! and graceful shutdown that finishes in-flight requests and flushes the decision log.

use crate::clock::{SharedClock, SystemClock};
use crate::config::Config;
use crate::gate::admin::Plane;
use crate::gate::connection::counters::Failure;
use crate::gate::connection::{Listener, Stage};
use crate::reload::{Current, KeyTasks};
use crate::state::{StartError, State};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

/// How to run, beyond the configuration (tests inject the clock and the admin listener).
pub struct Options {
    /// Wall clock.
    pub clock: SharedClock,
    /// An already-bound admin listener; otherwise `[admin].addr` is bound.
    pub admin: Option<TcpListener>,
    /// An already-bound private admin listener; otherwise `[admin].private_addr` is bound.
    pub private_admin: Option<TcpListener>,
    /// Reload the configuration from this file on its triggers (`run` sets it).
    pub reload: Option<crate::reload::Reloading>,
}

impl Default for Options {
    fn default() -> Self {
        Options { clock: Arc::new(SystemClock), admin: None, private_admin: None, reload: None }
    }
}

/// Runs the gateway on `listener` until `shutdown` completes, then drains and flushes.
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> Result<(), StartError> {
    serve_with(listener, config, Options::default(), shutdown).await
}

/// [`serve`], with options.
pub async fn serve_with(
    listener: TcpListener,
    config: Config,
    options: Options,
    shutdown: impl Future<Output = ()>,
) -> Result<(), StartError> {
    let admin = match (options.admin, config.admin) {
        (Some(l), _) => Some(l),
        (None, Some(addr)) => Some(TcpListener::bind(addr).await?),
        (None, None) => None,
    };
    // A listener handed over without a private_addr to serve is closed, never served.
    let private = match (&config.private_admin, options.private_admin) {
        (Some(p), bound) => {
            let tls = match &p.tls {
                Some(t) => {
                    Some(server_tls(&t.cert, &t.key, t.client_ca.as_deref(), vec![b"http/1.1".to_vec()])?)
                }
                None => None,
            };
            let listener = match bound {
                Some(l) => l,
                None => TcpListener::bind(p.addr).await?,
            };
            Some((listener, tls))
        }
        (None, _) => None,
    };
    let (state, writer) = State::new(config, options.clock, listener.local_addr()?.port())?;
    let current = Arc::new(Current::new(state.clone()));
    let mut background = JoinSet::new();
    let mut keys = KeyTasks::default();
    keys.sync(&state);
    // Without reloading, the refresh tasks live until `serve` returns.
    let _keys = match options.reload {
        Some(reloading) => {
            background.spawn(crate::reload::run(current.clone(), keys, reloading));
            None
        }
        None => Some(keys),
    };
    if let Some(cluster) = &state.cluster {
        background.spawn(cluster.clone().watch());
    }
    if let (Some(fleet), Some(c)) = (&state.fleet, &state.config.cluster) {
        background.spawn(fleet.clone().run(c.report_flush));
    }
    if let Some(admin) = admin {
        tracing::info!(addr = %admin.local_addr()?, "Admin listening");
        background.spawn(admin_loop(admin, current.clone(), Plane::Public, None));
    }
    match private {
        Some((listener, tls)) => {
            tracing::info!(addr = %listener.local_addr()?, tls = tls.is_some(), "Private admin listening");
            background.spawn(admin_loop(listener, current.clone(), Plane::Private, tls));
        }
        None => {
            tracing::warn!("No [admin] private_addr: the report page, CSV exports and /v1/* are not served")
        }
    }
    tracing::info!(addr = %listener.local_addr()?, tls = state.tls.is_some(), "Gateway listening");

    // Restart-only settings (`reload::fixed`): the builder and the caps keep the first generation's.
    let http = Arc::new(Listener { builder: connection_builder(&state.config.listen) });
    // Connections hold a receiver: `Closing` asks them to close gracefully, `Cut` to close now,
    // and the sender's `closed` says when the last one has.
    let (stop, _) = watch::channel(Stage::Serving);
    // Only what outlives generations is kept here: the first one is let go once replaced.
    let (connections, shutting_down) = (state.connections.clone(), state.draining.clone());
    drop(state);
    let mut shutdown = std::pin::pin!(shutdown);
    // Armed by the shutdown signal: until it fires the listener keeps accepting, with /readyz
    // at 503, so a load balancer notices and stops sending before the port closes.
    let drained = tokio::time::sleep(Duration::from_secs(u64::from(u32::MAX)));
    let mut drained = std::pin::pin!(drained);
    let mut draining = false;
    loop {
        let (stream, addr) = tokio::select! {
            () = &mut shutdown, if !draining => {
                draining = true;
                shutting_down.store(true, std::sync::atomic::Ordering::Release);
                let delay = current.load().config.listen.shutdown_delay;
                // A delay past what an instant holds keeps the far-off end set above (no panic).
                if let Some(end) = tokio::time::Instant::now().checked_add(delay) {
                    drained.as_mut().reset(end);
                }
                tracing::info!(?delay, "Shutdown requested: /readyz answers 503; accepting until the delay ends");
                continue;
            }
            () = &mut drained, if draining => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    connections.counters.failed(Failure::Accept);
                    tracing::warn!(error = %e, "Accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        connections.counters.accepted();
        let permit = match connections.limits.admit(addr.ip()) {
            Ok(permit) => permit,
            Err(why) => {
                // Closed at once, before any byte is read: a full cap costs nothing more.
                connections.counters.refused(why);
                tracing::debug!(client = %addr, cap = ?why, "Connection refused: cap reached");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(crate::gate::connection::serve(
            current.clone(),
            http.clone(),
            stream,
            addr,
            permit,
            stop.subscribe(),
        ));
    }
    drop(listener);
    let grace = current.load().config.listen.shutdown_grace;
    tracing::info!(connections = stop.receiver_count(), "Listener closed; finishing in-flight requests");
    let _ = stop.send(Stage::Closing);
    if tokio::time::timeout(grace, stop.closed()).await.is_err() {
        let cut = stop.receiver_count();
        tracing::warn!(
            ?grace,
            connections = cut,
            "Shutdown grace period over; closing remaining connections"
        );
        let _ = stop.send(Stage::Cut);
        // Dropped requests write their records as they go; give them a moment to be queued.
        let _ = tokio::time::timeout(CUT_SETTLE, stop.closed()).await;
    }
    background.abort_all();
    writer.close().await;
    // The last records' report counts, written by the close above.
    if let Some(fleet) = &current.load().fleet {
        fleet.flush().await;
    }
    // The generation in service at the end holds the exporter of the spans still queued.
    if let Some(traces) = &current.load().traces {
        traces.shutdown(grace).await;
    }
    tracing::info!("Stopped");
    Ok(())
}

/// How long connections cut at the end of the grace period get to queue their records.
const CUT_SETTLE: Duration = Duration::from_secs(1);

/// HTTP/1 and HTTP/2 settings. hyper's own HTTP/1 header timer is off: `connection::serve`
/// keeps the header deadline from accept (which hyper's timer, started after protocol detection,
/// cannot) and the idle timeout, for both protocols.
fn connection_builder(listen: &crate::config::Listen) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(None).max_buf_size(listen.max_header_bytes);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(listen.http2_keep_alive_interval)
        .keep_alive_timeout(listen.http2_keep_alive_timeout)
        .max_concurrent_streams(HTTP2_MAX_STREAMS)
        // h2 answers a larger list itself, unseen: up to four times the limit, the gateway sees the
        // request, answers 431 and records it (`proxy`).
        .max_header_list_size(u32::try_from(listen.max_header_bytes.saturating_mul(4)).unwrap_or(u32::MAX));
    builder
}

/// Streams one HTTP/2 connection may have open at once (hyper's default is 200). Upstream
/// requests are bounded apart, by the open-files budget.
const HTTP2_MAX_STREAMS: u32 = 100;

/// A rustls acceptor for the listener, offering h2 and http/1.1.
pub fn tls_acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, StartError> {
    server_tls(cert, key, None, vec![b"h2".to_vec(), b"http/1.1".to_vec()])
}

/// A rustls acceptor offering `alpn`; with `client_ca`, clients must present a certificate it
/// issued.
fn server_tls(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
    alpn: Vec<Vec<u8>>,
) -> Result<TlsAcceptor, StartError> {
    crate::outbound::install_crypto_provider();
    let bad =
        |what: &Path, e: &dyn std::fmt::Display| StartError::ServerTls(format!("{}: {e}", what.display()));
    let pem_certs = |file: &Path| {
        CertificateDer::pem_file_iter(file)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| bad(file, &e))
    };
    let certs = pem_certs(cert)?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| bad(key, &e))?;
    let builder = rustls::ServerConfig::builder();
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(file) => {
            let mut roots = rustls::RootCertStore::empty();
            for ca in pem_certs(file)? {
                roots.add(ca).map_err(|e| bad(file, &e))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
                .build()
                .map_err(|e| bad(file, &e))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config =
        builder.with_single_cert(certs, key).map_err(|e| StartError::ServerTls(e.to_string()))?;
    config.alpn_protocols = alpn;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Connections one admin listener serves at once. Past it a new one is closed at accept: a
/// flood on an admin port must not take the file descriptors the gateway's listener needs.
pub const ADMIN_MAX_CONNECTIONS: usize = 64;

/// Serves one admin listener: `plane` says which endpoints it has.
async fn admin_loop(listener: TcpListener, current: Arc<Current>, plane: Plane, tls: Option<TlsAcceptor>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(ADMIN_MAX_CONNECTIONS));
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::debug!(client = %peer, ?plane, "Admin connection refused: cap reached");
            continue;
        };
        let (current, tls) = (current.clone(), tls.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let header_read_timeout = current.load().config.listen.header_read_timeout;
            let Some(acceptor) = tls else {
                return serve_admin(TokioIo::new(stream), current, plane, peer).await;
            };
            match tokio::time::timeout(header_read_timeout, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => serve_admin(TokioIo::new(tls), current, plane, peer).await,
                Ok(Err(e)) => {
                    tracing::info!(client = %peer, error = %e, "Private admin TLS handshake failed")
                }
                Err(_) => tracing::debug!(client = %peer, "Private admin TLS handshake timed out"),
            }
        });
    }
}

async fn serve_admin<I>(io: TokioIo<I>, current: Arc<Current>, plane: Plane, peer: std::net::SocketAddr)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let header_read_timeout = current.load().config.listen.header_read_timeout;
    let service = service_fn(move |req| crate::gate::admin::handle(current.load(), plane, peer, req));
    let _ = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .serve_connection(io, service)
        .await;
}
