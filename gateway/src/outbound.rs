//! The one HTTP client for upstreams and key servers: hyper-util's pooled client over rustls
//! (aws-lc-rs), trusting the system roots plus an optional extra CA file.

use crate::body::Body;
use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use std::path::Path;
use std::time::Duration;

/// The pooled client.
pub type HttpClient = Client<HttpsConnector<HttpConnector>, Body>;

/// Why an outbound client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    /// The CA file could not be read or parsed.
    #[error("cannot load CA file {path}: {reason}")]
    CaFile {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Installs aws-lc-rs as rustls' process-wide provider (idempotent).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// Builds the client: system roots, plus `ca_file` if given; the default idle pool.
pub fn client(ca_file: Option<&Path>, connect_timeout: Duration) -> Result<HttpClient, TlsSetupError> {
    let pool = crate::config::IdlePool::default();
    build(ca_file, connect_timeout, pool)
}

/// Builds the client `[outbound]` describes.
pub fn client_for(outbound: &crate::config::Outbound) -> Result<HttpClient, TlsSetupError> {
    build(outbound.ca_file.as_deref(), outbound.connect_timeout, outbound.idle)
}

fn build(
    ca_file: Option<&Path>,
    connect_timeout: Duration,
    pool: crate::config::IdlePool,
) -> Result<HttpClient, TlsSetupError> {
    install_crypto_provider();
    let mut roots = RootCertStore::empty();
    // A missing or partly unreadable system store is not fatal: the extra CA may be all we need.
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    if let Some(path) = ca_file {
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| TlsSetupError::CaFile { path: path.display().to_string(), reason: e.to_string() })?;
        for cert in certs {
            roots.add(cert).map_err(TlsSetupError::Rustls)?;
        }
    }
    let tls = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(connect_timeout));
    http.set_nodelay(true);
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        // Bounded, so thousands of client connections that each made one request do not each
        // keep an idle upstream connection (and its buffers) open.
        .pool_max_idle_per_host(pool.per_host)
        .pool_idle_timeout(pool.timeout)
        .build(connector))
}

/// Why a small GET failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// No answer in time.
    #[error("timed out")]
    Timeout,
    /// Connection or protocol failure.
    #[error("request failed: {0}")]
    Request(String),
    /// A non-200 answer.
    #[error("status {0}")]
    Status(StatusCode),
    /// The body was larger than allowed or broke off.
    #[error("body: {0}")]
    Body(String),
}

/// GETs a small document (discovery, JWKS) with a deadline and a size limit.
pub async fn get_small(
    client: &HttpClient,
    uri: &Uri,
    timeout: Duration,
    limit: usize,
) -> Result<(HeaderMap, Bytes), FetchError> {
    let req = Request::get(uri.clone())
        .header(http::header::ACCEPT, "application/json")
        .body(crate::body::empty())
        .map_err(|e| FetchError::Request(e.to_string()))?;
    send_small(client, req, timeout, limit).await
}

/// Sends `req` and reads a small 200 answer (a token or userinfo response) with a deadline and a
/// size limit. Errors never carry the request's headers or body.
pub async fn send_small(
    client: &HttpClient,
    req: Request<Body>,
    timeout: Duration,
    limit: usize,
) -> Result<(HeaderMap, Bytes), FetchError> {
    let work = async {
        let rsp = client.request(req).await.map_err(|e| FetchError::Request(e.to_string()))?;
        if rsp.status() != StatusCode::OK {
            return Err(FetchError::Status(rsp.status()));
        }
        let (parts, body) = rsp.into_parts();
        let bytes = Limited::new(body, limit)
            .collect()
            .await
            .map_err(|e| FetchError::Body(e.to_string()))?
            .to_bytes();
        Ok((parts.headers, bytes))
    };
    tokio::time::timeout(timeout, work).await.map_err(|_| FetchError::Timeout)?
}
