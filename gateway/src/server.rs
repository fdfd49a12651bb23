//! Listeners: accept, optional rustls termination (HTTP/1.1 and HTTP/2 by ALPN), hyper-util's
//! auto connection builder, and graceful shutdown that finishes in-flight requests and flushes
//! the decision log.

use crate::clock::{SharedClock, SystemClock};
use crate::config::Config;
use crate::proxy::{Peer, handle};
use crate::state::{StartError, State};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

/// How to run, beyond the configuration (tests inject the clock and the admin listener).
pub struct Options {
    /// Wall clock.
    pub clock: SharedClock,
    /// An already-bound admin listener; otherwise `[admin].addr` is bound.
    pub admin: Option<TcpListener>,
}

impl Default for Options {
    fn default() -> Self {
        Options { clock: Arc::new(SystemClock), admin: None }
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
    let tls = match &config.listen.tls {
        Some((cert, key)) => Some(tls_acceptor(cert, key)?),
        None => None,
    };
    let admin = match (options.admin, config.admin) {
        (Some(l), _) => Some(l),
        (None, Some(addr)) => Some(TcpListener::bind(addr).await?),
        (None, None) => None,
    };
    let (state, writer) = State::new(config, options.clock)?;
    let mut background = JoinSet::new();
    for keys in state.verifier.keys() {
        background.spawn(keys.clone().run());
    }
    if let Some(admin) = admin {
        tracing::info!(addr = %admin.local_addr()?, "Admin listening");
        background.spawn(admin_loop(admin, state.clone()));
    }
    tracing::info!(addr = %listener.local_addr()?, tls = tls.is_some(), "Gateway listening");

    let builder = Arc::new(connection_builder(&state));
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, addr) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "Accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let (state, builder, tls, watcher) =
            (state.clone(), builder.clone(), tls.clone(), graceful.watcher());
        tokio::spawn(async move {
            let scheme = if tls.is_some() { "https" } else { "http" };
            let peer = Peer { addr, scheme };
            let service = service_fn(move |req| handle(state.clone(), peer, req));
            let result = match tls {
                None => serve_one(&builder, stream, service, watcher).await,
                Some(acceptor) => match handshake(&acceptor, stream).await {
                    Some(tls) => serve_one(&builder, tls, service, watcher).await,
                    None => return,
                },
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, "Connection ended with an error");
            }
        });
    }
    drop(listener);
    let grace = state.config.listen.shutdown_grace;
    tracing::info!(in_flight = graceful.count(), "Shutting down; finishing in-flight requests");
    if tokio::time::timeout(grace, graceful.shutdown()).await.is_err() {
        tracing::warn!(?grace, "Shutdown grace period over; closing remaining connections");
    }
    background.abort_all();
    writer.close().await;
    tracing::info!("Stopped");
    Ok(())
}

/// Serves one connection (plain or TLS) under the graceful-shutdown watcher.
async fn serve_one<I, S>(
    builder: &auto::Builder<TokioExecutor>,
    io: I,
    service: S,
    watcher: hyper_util::server::graceful::Watcher,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::Service<
            http::Request<hyper::body::Incoming>,
            Response = http::Response<crate::body::Body>,
            Error = std::convert::Infallible,
        > + Send
        + 'static,
    S::Future: Send + 'static,
{
    watcher.watch(builder.serve_connection_with_upgrades(TokioIo::new(io), service).into_owned()).await
}

fn connection_builder(state: &State) -> auto::Builder<TokioExecutor> {
    let listen = &state.config.listen;
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(listen.header_read_timeout)
        .max_buf_size(listen.max_header_bytes);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(listen.max_header_bytes).unwrap_or(u32::MAX));
    builder
}

async fn handshake(
    acceptor: &TlsAcceptor,
    stream: TcpStream,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await {
        Ok(Ok(tls)) => Some(tls),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "TLS handshake failed");
            None
        }
        Err(_) => None,
    }
}

/// A rustls acceptor for the listener, offering h2 and http/1.1.
pub fn tls_acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, StartError> {
    crate::outbound::install_crypto_provider();
    let bad =
        |what: &Path, e: &dyn std::fmt::Display| StartError::ServerTls(format!("{}: {e}", what.display()));
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| bad(cert, &e))?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| bad(key, &e))?;
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| StartError::ServerTls(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

async fn admin_loop(listener: TcpListener, state: Arc<State>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| crate::admin::handle(state.clone(), req));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
