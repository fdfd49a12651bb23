//! The schedule a fetched trust source keeps (an issuer's key set, an IdP's metadata): fetched at
//! start and retried with backoff until it loads, then refreshed as its `Cache-Control` says
//! within bounds, with early fetches (an unknown key) at most once per `min_refetch_interval`.

use http::HeaderMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const MAX_CACHE_AGE: Duration = Duration::from_secs(24 * 3600);
const RETRY_MAX: Duration = Duration::from_secs(30);

/// Fetches with `refresh` for ever: on success again after the document's max-age (bounded) or
/// `configured`; on failure after a backoff of 1 s doubling to 30 s.
pub(crate) async fn run<F, Fut>(
    name: &str,
    what: &'static str,
    min_refetch: Duration,
    configured: Duration,
    is_loaded: impl Fn() -> bool,
    mut refresh: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<Duration>, ()>>,
{
    let mut backoff = Duration::from_secs(1);
    loop {
        let wait = match refresh().await {
            Ok(max_age) => {
                backoff = Duration::from_secs(1);
                next_refresh(max_age, min_refetch, configured)
            }
            Err(()) => {
                if !is_loaded() {
                    tracing::warn!(source = %name, what, retry_in = ?backoff, "Not loaded yet; not ready until it loads");
                }
                let wait = backoff;
                backoff = (backoff * 2).min(RETRY_MAX);
                wait
            }
        };
        tokio::time::sleep(wait).await;
    }
}

/// When the last fetch started, to rate-limit early fetches.
#[derive(Debug, Default)]
pub(crate) struct LastFetch(AtomicU64);

/// Whether an early fetch may go now.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Early {
    /// Yes.
    Allowed,
    /// Loaded, and the last fetch is younger than `min_refetch_interval`.
    Limited,
    /// Never loaded, and the last attempt is under a second old.
    TooSoon,
}

impl LastFetch {
    /// Stamped before the call, so a slow or failing server cannot be hammered meanwhile.
    pub(crate) fn stamp(&self, now_ms: u64) {
        self.0.store(now_ms.max(1), Ordering::Release);
    }

    /// When the last fetch started (0: never).
    pub(crate) fn millis(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }

    /// Whether an early fetch may start at `now_ms`.
    pub(crate) fn early(&self, now_ms: u64, min_refetch: Duration, loaded: bool) -> Early {
        let last = self.millis();
        let since = now_ms.saturating_sub(last);
        // Even with `min_refetch_interval_secs = 0`: bad credentials are unauthenticated, and
        // each early fetch is a request to the issuer.
        let min_refetch = min_refetch.max(Duration::from_secs(1));
        if loaded && last != 0 && u128::from(since) < min_refetch.as_millis() {
            Early::Limited
        } else if !loaded && last != 0 && since < 1000 {
            Early::TooSoon
        } else {
            Early::Allowed
        }
    }
}

fn next_refresh(max_age: Option<Duration>, min_refetch: Duration, configured: Duration) -> Duration {
    let floor = min_refetch.max(Duration::from_secs(60));
    max_age.map_or(configured, |age| age.clamp(floor, MAX_CACHE_AGE.max(floor)))
}

/// `Cache-Control: max-age`, if given.
pub(crate) fn max_age(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(http::header::CACHE_CONTROL)?.to_str().ok()?;
    value.split(',').find_map(|d| {
        let (k, v) = d.trim().split_once('=')?;
        (k.eq_ignore_ascii_case("max-age")).then(|| v.trim().parse().ok().map(Duration::from_secs))?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_follows_cache_control_within_bounds() {
        let m = Duration::from_secs;
        assert_eq!(next_refresh(None, m(300), m(3600)), m(3600));
        assert_eq!(next_refresh(Some(m(7200)), m(300), m(3600)), m(7200));
        assert_eq!(next_refresh(Some(m(0)), m(300), m(3600)), m(300), "no-cache is not a hot loop");
        assert_eq!(next_refresh(Some(m(10)), m(0), m(3600)), m(60));
        assert_eq!(next_refresh(Some(m(10 * 86400)), m(300), m(3600)), m(86400));
    }

    #[test]
    fn cache_control_max_age() {
        let mut h = HeaderMap::new();
        h.insert(http::header::CACHE_CONTROL, "public, max-age=3600".parse().unwrap());
        assert_eq!(max_age(&h), Some(Duration::from_secs(3600)));
        h.insert(http::header::CACHE_CONTROL, "no-cache".parse().unwrap());
        assert_eq!(max_age(&h), None);
    }

    #[test]
    fn early_fetches_are_rate_limited() {
        let m = Duration::from_secs;
        let last = LastFetch::default();
        assert_eq!(last.early(5_000, m(300), false), Early::Allowed, "never fetched");
        last.stamp(5_000);
        assert_eq!(last.early(5_500, m(300), false), Early::TooSoon);
        assert_eq!(last.early(6_000, m(300), false), Early::Allowed, "not loaded: once a second");
        assert_eq!(last.early(6_000, m(300), true), Early::Limited);
        assert_eq!(last.early(305_000, m(300), true), Early::Allowed);
        assert_eq!(last.early(5_500, m(0), true), Early::Limited, "at most one a second, even at 0");
        assert_eq!(last.early(6_000, m(0), true), Early::Allowed);
    }
}
