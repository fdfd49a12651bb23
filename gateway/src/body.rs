//! The one body type the gateway answers with: upstream bodies stream through, ours are small.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full, combinators::BoxBody};

/// A response or request body.
pub type Body = BoxBody<Bytes, hyper::Error>;

/// A complete body.
pub fn full(data: impl Into<Bytes>) -> Body {
    Full::new(data.into()).map_err(|never| match never {}).boxed()
}

/// An empty body.
pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed()
}

/// A body that keeps something alive until it is done (a slot under a cap).
pub struct Holding<T> {
    inner: Body,
    _held: T,
}

impl<T: Send + Sync + Unpin + 'static> Holding<T> {
    /// `inner`, holding `held` until the body is dropped.
    pub fn boxed(inner: Body, held: T) -> Body {
        Holding { inner, _held: held }.boxed()
    }
}

impl<T: Unpin> http_body::Body for Holding<T> {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, hyper::Error>>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Why a body the gateway reads itself was not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadError {
    /// Over the limit.
    TooLarge,
    /// Aborted by the client, or bad framing.
    Unreadable,
    /// Not complete within the time allowed.
    TimedOut,
}

/// Reads a whole body the gateway needs itself (an ACS post, a token request), at most `limit`
/// bytes within `timeout`: a client that stalls mid-body holds its connection no longer than that.
pub async fn read_bounded<B>(body: B, limit: usize, timeout: std::time::Duration) -> Result<Bytes, ReadError>
where
    B: http_body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    match tokio::time::timeout(timeout, http_body_util::Limited::new(body, limit).collect()).await {
        Err(_) => Err(ReadError::TimedOut),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(ReadError::TooLarge),
        Ok(Err(_)) => Err(ReadError::Unreadable),
    }
}
