//! Wall-clock time, injected so tests can move it without sleeping.

use mfagate_policy::UnixTime;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of wall-clock time.
pub trait Clock: Send + Sync + 'static {
    /// Milliseconds since the Unix epoch.
    fn now_millis(&self) -> u64;

    /// Whole seconds since the Unix epoch.
    fn unix(&self) -> UnixTime {
        UnixTime(self.now_millis() / 1000)
    }
}

/// A shared clock.
pub type SharedClock = Arc<dyn Clock>;

/// The system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_millis(&self) -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
    }
}

/// A clock that moves only when told to (tests, benchmarks).
#[derive(Debug, Default)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    /// A clock reading `unix_secs`.
    pub fn at(unix_secs: u64) -> Arc<ManualClock> {
        Arc::new(ManualClock(AtomicU64::new(unix_secs * 1000)))
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(by.as_millis() as u64, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_millis(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Something that stops being valid at a wall-clock time.
pub trait Expires {
    /// When.
    fn expires(&self) -> UnixTime;
}

/// A moka expiry: an entry lives until its value expires, by the injected clock.
pub struct UntilExpiry(pub SharedClock);

impl<K, V: Expires> moka::Expiry<K, Arc<V>> for UntilExpiry {
    fn expire_after_create(&self, _: &K, v: &Arc<V>, _: std::time::Instant) -> Option<Duration> {
        Some(Duration::from_secs(v.expires().0.saturating_sub(self.0.unix().0)))
    }
}

/// RFC 3339 UTC with milliseconds, as the decision log writes it.
pub fn rfc3339_millis(millis: u64) -> String {
    let nanos = i128::from(millis) * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| {
            t.format(time::macros::format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
            ))
            .ok()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_rfc3339_with_millis() {
        assert_eq!(super::rfc3339_millis(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(super::rfc3339_millis(0), "1970-01-01T00:00:00.000Z");
    }
}
