//! What a connection is doing, seen from its bytes and its requests: the input of the deadlines
//! in [`super::serve`] and of the WebSocket tunnels' idle timeout.

use bytes::Bytes;
use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;

/// Told of a stream's reads and writes.
pub trait Observe: Send + Sync {
    /// `bytes` were just read.
    fn on_read(&self, bytes: &[u8]);

    /// A write or flush could not proceed (`false`: the peer is not reading) or did (`true`).
    fn on_write(&self, _moved: bool) {}
}

/// An IO stream whose reads and writes are reported to an [`Observe`].
pub struct Metered<T> {
    inner: T,
    seen: Arc<dyn Observe>,
}

impl<T> Metered<T> {
    /// Wraps `inner`.
    pub fn new(inner: T, seen: Arc<dyn Observe>) -> Metered<T> {
        Metered { inner, seen }
    }

    fn wrote<R>(&self, polled: Poll<R>) -> Poll<R> {
        self.seen.on_write(polled.is_ready());
        polled
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Metered<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.seen.on_read(&buf.filled()[before..]);
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Metered<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.wrote(polled)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.wrote(polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_flush(cx);
        this.wrote(polled)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// The HTTP/2 connection preface (RFC 9113 §3.4).
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const NONE: u64 = u64::MAX;

/// One HTTP connection's requests and bytes. Times are milliseconds since accept.
pub struct Activity {
    origin: Instant,
    requests: AtomicU64,
    in_flight: AtomicUsize,
    idle_since: AtomicU64,
    head_started: AtomicU64,
    write_stalled: AtomicU64,
    /// Response bodies that handed hyper a frame it has not come back for (HTTP/2 waits for
    /// the client's flow-control window without writing, so no write stalls), and since when.
    handed: Mutex<HashMap<u64, u64>>,
    next_body: AtomicU64,
    http2: AtomicBool,
    prefix: Mutex<Vec<u8>>,
    sniffed: AtomicBool,
    /// Woken when a request ends or a head begins: the deadlines move.
    pub changed: Notify,
}

/// What the deadlines say now.
#[derive(Debug, PartialEq, Eq)]
pub enum Due {
    /// Nothing yet; look again at this instant (or when [`Activity::changed`] fires).
    Wait(Option<Instant>),
    /// A request head was not complete in time.
    HeaderTimeout,
    /// No request in flight for the idle timeout.
    Idle,
    /// A write has not moved for the idle timeout: the client stopped reading.
    SendTimeout,
}

impl Activity {
    /// A connection accepted at `origin`.
    pub fn new(origin: Instant) -> Arc<Activity> {
        Arc::new(Activity {
            origin,
            requests: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
            head_started: AtomicU64::new(NONE),
            write_stalled: AtomicU64::new(NONE),
            handed: Mutex::default(),
            next_body: AtomicU64::new(0),
            http2: AtomicBool::new(false),
            prefix: Mutex::new(Vec::new()),
            sniffed: AtomicBool::new(false),
            changed: Notify::new(),
        })
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(NONE - 1)
    }

    fn at(&self, ms: u64) -> Instant {
        self.origin + Duration::from_millis(ms)
    }

    /// A request head arrived; the guard ends the request when dropped (with its response body).
    pub fn request_started(self: &Arc<Self>, http2: bool) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.requests.fetch_add(1, Ordering::AcqRel);
        if http2 {
            self.http2.store(true, Ordering::Release);
        }
        InFlight(self.clone())
    }

    /// Requests seen so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Acquire)
    }

    /// Whether the client sent bytes that began an HTTP/1 request (not an HTTP/2 preface): what
    /// makes a header timeout a request that deserves a decision record.
    pub fn began_http1_request(&self) -> bool {
        if self.http2.load(Ordering::Acquire) {
            return false;
        }
        if self.requests() > 0 {
            return self.head_started.load(Ordering::Acquire) != NONE;
        }
        let prefix = self.prefix.lock().unwrap_or_else(PoisonError::into_inner);
        !prefix.is_empty() && !H2_PREFACE.starts_with(&prefix)
    }

    /// The deadlines at `now`: the first head within `header` of accept; then a write stalled
    /// for `idle` (a client that stops reading its response); with no request in flight, `idle`
    /// since the last one ended, and on HTTP/1 `header` from a new head's first byte. (HTTP/2
    /// frames between requests, such as PINGs, do not begin a head.)
    pub fn due(&self, header: Duration, idle: Duration, now: Instant) -> Due {
        if self.requests() == 0 {
            let at = self.origin + header;
            return if now >= at { Due::HeaderTimeout } else { Due::Wait(Some(at)) };
        }
        let write_stall = match self.write_stalled.load(Ordering::Acquire) {
            NONE => None,
            ms => Some(self.at(ms) + idle),
        };
        // The oldest frame not taken: one stalled stream is not hidden by others that move.
        let oldest = self.handed.lock().unwrap_or_else(PoisonError::into_inner).values().min().copied();
        // HTTP/1 has the write stall: its writes wait on the socket, whose wake-up comes late on
        // big buffers; HTTP/2 waits on the client's window without writing.
        let body_stall = oldest.filter(|_| self.http2.load(Ordering::Acquire)).map(|ms| self.at(ms) + idle);
        let stall_at = [write_stall, body_stall].into_iter().flatten().min();
        if stall_at.is_some_and(|at| now >= at) {
            return Due::SendTimeout;
        }
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return Due::Wait(stall_at);
        }
        let idle_at = self.at(self.idle_since.load(Ordering::Acquire)) + idle;
        let head_at = match self.head_started.load(Ordering::Acquire) {
            NONE => None,
            _ if self.http2.load(Ordering::Acquire) => None,
            ms => Some(self.at(ms) + header),
        };
        if head_at.is_some_and(|at| now >= at) {
            return Due::HeaderTimeout;
        }
        if now >= idle_at {
            return Due::Idle;
        }
        Due::Wait(Some([head_at, stall_at].into_iter().flatten().fold(idle_at, Instant::min)))
    }
}

impl Observe for Activity {
    fn on_read(&self, bytes: &[u8]) {
        if !self.sniffed.load(Ordering::Relaxed) {
            let mut prefix = self.prefix.lock().unwrap_or_else(PoisonError::into_inner);
            let room = H2_PREFACE.len() - prefix.len();
            prefix.extend_from_slice(&bytes[..bytes.len().min(room)]);
            if prefix.len() == H2_PREFACE.len() || !H2_PREFACE.starts_with(&prefix) {
                self.sniffed.store(true, Ordering::Relaxed);
            }
        }
        // Bytes with no request in flight begin the next head (or finish a body hyper drains,
        // which the header deadline then bounds too).
        if self.in_flight.load(Ordering::Acquire) == 0 && self.head_started.load(Ordering::Acquire) == NONE {
            self.head_started.store(self.now_ms(), Ordering::Release);
            self.changed.notify_one();
        }
    }

    fn on_write(&self, moved: bool) {
        let stalled = self.write_stalled.load(Ordering::Relaxed);
        if moved && stalled != NONE {
            self.write_stalled.store(NONE, Ordering::Release);
        } else if !moved && stalled == NONE {
            self.write_stalled.store(self.now_ms(), Ordering::Release);
            self.changed.notify_one();
        }
    }
}

/// A request in flight: dropped when its response body is done (or the request is abandoned).
pub struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let a = &self.0;
        // Stamped before the count drops, so a deadline computed at zero sees this time.
        a.idle_since.store(a.now_ms(), Ordering::Release);
        a.head_started.store(NONE, Ordering::Release);
        if a.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            a.changed.notify_one();
        }
    }
}

/// A response body that ends its request when done, and tells the connection when a frame it
/// handed out is not taken (the client gives no room for it). Frames go out in pieces of at most
/// [`PIECE`], so a client reading slowly but steadily takes each within the idle timeout.
pub struct Tracked {
    inner: crate::body::Body,
    request: InFlight,
    id: u64,
    handed: bool,
    rest: Option<Bytes>,
}

/// The largest piece of a response body handed to hyper at once.
const PIECE: usize = 16 * 1024;

impl Tracked {
    /// `inner`, ending `request` when dropped.
    pub fn new(inner: crate::body::Body, request: InFlight) -> Tracked {
        let id = request.0.next_body.fetch_add(1, Ordering::Relaxed);
        Tracked { inner, request, id, handed: false, rest: None }
    }

    fn handed(&self) -> std::sync::MutexGuard<'_, HashMap<u64, u64>> {
        self.request.0.handed.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// hyper came back for more: the piece handed out was taken.
    fn taken(&mut self) {
        if std::mem::take(&mut self.handed) {
            self.handed().remove(&self.id);
        }
    }

    fn hand(&mut self, mut data: Bytes) -> http_body::Frame<Bytes> {
        if data.len() > PIECE {
            self.rest = Some(data.split_off(PIECE));
        }
        let a = &self.request.0;
        let first = {
            let mut handed = self.handed();
            handed.insert(self.id, a.now_ms());
            handed.len() == 1
        };
        self.handed = true;
        if first {
            a.changed.notify_one();
        }
        http_body::Frame::data(data)
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.taken();
    }
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        this.taken();
        if let Some(rest) = this.rest.take() {
            return Poll::Ready(Some(Ok(this.hand(rest))));
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                Ok(data) => Poll::Ready(Some(Ok(this.hand(data)))),
                Err(frame) => Poll::Ready(Some(Ok(frame))),
            },
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.rest.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        let inner = self.inner.size_hint();
        let rest = self.rest.as_ref().map_or(0, |r| r.len() as u64);
        let mut hint = http_body::SizeHint::new();
        hint.set_lower(inner.lower() + rest);
        if let Some(upper) = inner.upper() {
            hint.set_upper(upper + rest);
        }
        hint
    }
}

/// The time of the last read on a tunnel (either side).
pub struct LastRead {
    origin: Instant,
    ms: AtomicU64,
}

impl LastRead {
    /// Starting now.
    pub fn new() -> Arc<LastRead> {
        Arc::new(LastRead { origin: Instant::now(), ms: AtomicU64::new(0) })
    }

    fn at(&self) -> Instant {
        self.origin + Duration::from_millis(self.ms.load(Ordering::Acquire))
    }
}

impl Observe for LastRead {
    fn on_read(&self, _: &[u8]) {
        let ms = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.ms.store(ms, Ordering::Release);
    }
}

/// Runs `work` until it ends (`Some`) or nothing was read for `idle` (`None`, and `work` is dropped).
pub async fn until_idle<F: Future>(work: F, last: &LastRead, idle: Duration) -> Option<F::Output> {
    let mut work = std::pin::pin!(work);
    loop {
        let deadline = last.at() + idle;
        tokio::select! {
            biased;
            out = &mut work => return Some(out),
            () = tokio::time::sleep_until(deadline) => {
                if last.at() + idle <= Instant::now() {
                    return None;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[tokio::test(start_paused = true)]
    async fn the_first_head_is_due_from_accept_then_idle_and_later_heads() {
        let t0 = Instant::now();
        let a = Activity::new(t0);
        assert_eq!(a.due(10 * S, 60 * S, t0), Due::Wait(Some(t0 + 10 * S)));
        a.on_read(b"PRI * HT");
        assert!(!a.began_http1_request(), "a partial preface is not a request");
        assert_eq!(a.due(10 * S, 60 * S, t0 + 10 * S), Due::HeaderTimeout);
        let b = Activity::new(t0);
        b.on_read(b"GE");
        assert!(b.began_http1_request());
        let request = b.request_started(false);
        assert_eq!(b.due(10 * S, 60 * S, t0 + 100 * S), Due::Wait(None), "in flight: no deadline");
        tokio::time::advance(5 * S).await;
        drop(request);
        let ended = t0 + 5 * S;
        assert_eq!(b.due(10 * S, 60 * S, ended), Due::Wait(Some(ended + 60 * S)));
        assert_eq!(b.due(10 * S, 60 * S, ended + 60 * S), Due::Idle);
        assert!(!b.began_http1_request(), "idle, nothing sent");
        tokio::time::advance(S).await;
        b.on_read(b"GET / HT");
        assert!(b.began_http1_request());
        assert_eq!(b.due(10 * S, 60 * S, ended), Due::Wait(Some(ended + S + 10 * S)));
        assert_eq!(b.due(10 * S, 60 * S, ended + 11 * S), Due::HeaderTimeout);
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_that_does_not_move_is_due_after_the_idle_timeout() {
        let t0 = Instant::now();
        let a = Activity::new(t0);
        let _request = a.request_started(false);
        a.on_write(false);
        a.on_write(false);
        assert_eq!(a.due(S, 60 * S, t0), Due::Wait(Some(t0 + 60 * S)), "from the first stall");
        a.on_write(true);
        assert_eq!(a.due(S, 60 * S, t0 + 61 * S), Due::Wait(None), "it moved");
        tokio::time::advance(10 * S).await;
        a.on_write(false);
        assert_eq!(a.due(S, 60 * S, t0 + 70 * S), Due::SendTimeout);
    }

    #[tokio::test(start_paused = true)]
    async fn http2_frames_between_requests_are_not_a_head() {
        let t0 = Instant::now();
        let a = Activity::new(t0);
        a.on_read(&H2_PREFACE[..]);
        drop(a.request_started(true));
        a.on_read(b"ping frame");
        assert_eq!(a.due(S, 60 * S, t0 + 30 * S), Due::Wait(Some(t0 + 60 * S)));
        assert!(!a.began_http1_request());
    }

    #[tokio::test(start_paused = true)]
    async fn a_tunnel_without_reads_is_idle() {
        let last = LastRead::new();
        let never = std::future::pending::<()>();
        assert_eq!(until_idle(never, &last, S).await, None);
        assert_eq!(until_idle(async { 7 }, &last, S).await, Some(7));
    }
}
