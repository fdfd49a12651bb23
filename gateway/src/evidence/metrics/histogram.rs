//! Latency histograms of atomics (no lock on the request path), with buckets built from the
//! configured timeouts: a 1-2.5-5 ladder from 100 µs up to the longest timeout, plus every
//! configured timeout as a bound of its own. A request that hit its timeout lands just above that
//! bound, so `le="<timeout>"` against `+Inf` tells answered from timed out.

use super::exposition::{Kind, Text};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// The ladder's first bound, microseconds.
const FIRST_US: u64 = 100;
/// The longest bound when no timeout is configured.
const DEFAULT_TOP: Duration = Duration::from_secs(10);

/// Bucket upper bounds, microseconds, ascending and distinct.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    bounds_us: Vec<u64>,
}

impl Layout {
    /// The ladder up to the longest of `timeouts`, with each of them as a bound.
    pub fn for_timeouts(timeouts: impl IntoIterator<Item = Duration>) -> Arc<Layout> {
        let timeouts: Vec<u64> =
            timeouts.into_iter().map(|t| t.as_micros() as u64).filter(|t| *t > 0).collect();
        let top = timeouts.iter().copied().max().unwrap_or(DEFAULT_TOP.as_micros() as u64);
        let mut bounds = timeouts;
        let mut decade = FIRST_US;
        'ladder: loop {
            for step in [decade, decade * 5 / 2, decade * 5] {
                if step >= top {
                    break 'ladder;
                }
                bounds.push(step);
            }
            decade = decade.saturating_mul(10);
        }
        bounds.push(top);
        bounds.sort_unstable();
        bounds.dedup();
        Arc::new(Layout { bounds_us: bounds })
    }

    /// The bounds, seconds.
    pub fn bounds_secs(&self) -> impl Iterator<Item = f64> + '_ {
        self.bounds_us.iter().map(|b| *b as f64 / 1e6)
    }
}

/// One histogram series.
#[derive(Debug)]
pub struct Histogram {
    layout: Arc<Layout>,
    /// Per bucket (not cumulative), the last one above every bound.
    counts: Box<[AtomicU64]>,
    sum_us: AtomicU64,
}

impl Histogram {
    /// An empty histogram with these buckets.
    pub fn new(layout: Arc<Layout>) -> Histogram {
        let counts = (0..=layout.bounds_us.len()).map(|_| AtomicU64::new(0)).collect();
        Histogram { layout, counts, sum_us: AtomicU64::new(0) }
    }

    /// Its buckets.
    pub fn layout(&self) -> &Arc<Layout> {
        &self.layout
    }

    /// Counts one observation.
    pub fn observe(&self, us: u64) {
        let bucket = self.layout.bounds_us.partition_point(|b| *b < us);
        if let Some(c) = self.counts.get(bucket) {
            c.fetch_add(1, Relaxed);
        }
        self.sum_us.fetch_add(us, Relaxed);
    }

    /// The number of observations.
    pub fn count(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Relaxed)).sum()
    }

    /// Writes the series' `_bucket`, `_sum` and `_count` lines (the family's HELP and TYPE come
    /// first, from [`family`]). `labels` come before `le`.
    pub fn render(&self, t: &mut Text<'_>, name: &str, labels: &[(&str, &str)]) {
        let bucket = format!("{name}_bucket");
        let mut with_le: Vec<(&str, &str)> = labels.to_vec();
        let mut cumulative = 0;
        let les: Vec<String> = self.layout.bounds_secs().map(|b| b.to_string()).collect();
        for (i, le) in les.iter().enumerate() {
            cumulative += self.counts[i].load(Relaxed);
            with_le.push(("le", le));
            t.sample(&bucket, &with_le, cumulative);
            with_le.pop();
        }
        cumulative += self.counts[les.len()].load(Relaxed);
        with_le.push(("le", "+Inf"));
        t.sample(&bucket, &with_le, cumulative);
        t.sample(&format!("{name}_sum"), labels, self.sum_us.load(Relaxed) as f64 / 1e6);
        t.sample(&format!("{name}_count"), labels, cumulative);
    }
}

/// A histogram family's HELP and TYPE.
pub fn family(t: &mut Text<'_>, name: &str, help: &str) {
    t.family(name, Kind::Histogram, help);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_reach_every_configured_timeout() {
        let s = Duration::from_secs;
        let l = Layout::for_timeouts([s(60), s(1), Duration::from_millis(1500)]);
        let b: Vec<f64> = l.bounds_secs().collect();
        assert_eq!(b.first(), Some(&0.0001));
        assert_eq!(b.last(), Some(&60.0), "{b:?}");
        for t in [1.0, 1.5, 60.0] {
            assert!(b.contains(&t), "{t} in {b:?}");
        }
        assert!(b.windows(2).all(|w| w[0] < w[1]), "{b:?}");
        assert!(b.contains(&50.0) && b.contains(&25.0));
        let none: Vec<f64> = Layout::for_timeouts([]).bounds_secs().collect();
        assert_eq!(none.last(), Some(&10.0));
    }

    #[test]
    fn a_timed_out_request_lands_above_its_timeout() {
        let h = Histogram::new(Layout::for_timeouts([Duration::from_secs(1)]));
        h.observe(1_000_000);
        h.observe(1_000_300);
        h.observe(50);
        let mut s = String::new();
        h.render(&mut Text::new(&mut s), "x", &[("route", "r")]);
        assert!(s.contains("x_bucket{route=\"r\",le=\"0.0001\"} 1\n"), "{s}");
        assert!(s.contains("x_bucket{route=\"r\",le=\"1\"} 2\n"), "{s}");
        assert!(s.contains("x_bucket{route=\"r\",le=\"+Inf\"} 3\n"), "{s}");
        assert!(s.contains("x_count{route=\"r\"} 3\n"), "{s}");
        assert!(s.contains("x_sum{route=\"r\"} 2.00035\n"), "{s}");
    }
}
