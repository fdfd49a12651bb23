//! An echo upstream for the demo and the tests: answers every request with JSON describing what
//! it received (method, path, headers), counts requests, and echoes bytes on upgraded
//! (WebSocket-style) connections. `/hang` never answers, `/wait` waits for `release`, `/large`
//! answers 16 MiB.

use crate::body::{Body, full};
use http::{Request, Response, StatusCode, header};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Map, Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// A running echo upstream.
#[derive(Clone)]
pub struct Echo {
    addr: SocketAddr,
    hits: Arc<AtomicU64>,
    open: Arc<AtomicU64>,
    gate: Arc<Semaphore>,
}

impl Echo {
    /// Serves on `listener`. Paths ending in `/hang` never answer; paths ending in `/wait`
    /// answer once [`Echo::release`] is called.
    pub fn start(listener: TcpListener) -> std::io::Result<Echo> {
        let addr = listener.local_addr()?;
        let hits = Arc::new(AtomicU64::new(0));
        let open = Arc::new(AtomicU64::new(0));
        let gate = Arc::new(Semaphore::new(0));
        let (counter, waiting, connections) = (hits.clone(), gate.clone(), open.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (counter, waiting, connections) = (counter.clone(), waiting.clone(), connections.clone());
                connections.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let svc = service_fn(move |req| respond(counter.clone(), waiting.clone(), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .with_upgrades()
                        .await;
                    connections.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        Ok(Echo { addr, hits, open, gate })
    }

    /// The address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://host:port`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Lets `n` waiting `/wait` requests answer.
    pub fn release(&self, n: usize) {
        self.gate.add_permits(n);
    }

    /// Requests received so far.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::SeqCst)
    }

    /// Connections open now.
    pub fn open_connections(&self) -> u64 {
        self.open.load(Ordering::SeqCst)
    }
}

async fn respond(
    hits: Arc<AtomicU64>,
    gate: Arc<Semaphore>,
    mut req: Request<hyper::body::Incoming>,
) -> Result<Response<Body>, std::convert::Infallible> {
    hits.fetch_add(1, Ordering::SeqCst);
    if req.uri().path().ends_with("/hang") {
        std::future::pending::<()>().await;
    }
    if req.uri().path().ends_with("/wait")
        && let Ok(permit) = gate.acquire().await
    {
        permit.forget();
    }
    if req.uri().path().ends_with("/large") {
        // 16 MiB: more than loopback socket buffers hold, for clients that stop reading.
        return Ok(Response::new(full(vec![b'x'; 16 << 20])));
    }
    if req.headers().contains_key(header::UPGRADE) {
        let upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            if let Ok(upgraded) = upgrade.await {
                let mut io = TokioIo::new(upgraded);
                let mut buf = [0u8; 1024];
                while let Ok(n) = io.read(&mut buf).await {
                    if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        });
        let mut rsp = Response::new(crate::body::empty());
        *rsp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        rsp.headers_mut().insert(header::CONNECTION, http::HeaderValue::from_static("upgrade"));
        rsp.headers_mut().insert(header::UPGRADE, http::HeaderValue::from_static("websocket"));
        if let Some(key) = req.headers().get(header::SEC_WEBSOCKET_KEY)
            && let Ok(accept) =
                http::HeaderValue::from_str(&crate::gate::forward::websocket_accept(key.as_bytes()))
        {
            rsp.headers_mut().insert(header::SEC_WEBSOCKET_ACCEPT, accept);
        }
        return Ok(rsp);
    }
    let (parts, body) = req.into_parts();
    let body_bytes = http_body_util::BodyExt::collect(body).await.map(|b| b.to_bytes().len()).unwrap_or(0);
    let req = Request::from_parts(parts, ());
    let mut headers = Map::new();
    for (name, value) in req.headers() {
        headers
            .insert(name.as_str().to_owned(), Value::String(value.to_str().unwrap_or("<binary>").to_owned()));
    }
    let body = json!({
        "method": req.method().as_str(),
        "path": req.uri().path(),
        "query": req.uri().query(),
        "headers": headers,
        "body_bytes": body_bytes,
    });
    let mut rsp = Response::new(full(body.to_string()));
    rsp.headers_mut().insert(header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    Ok(rsp)
}
