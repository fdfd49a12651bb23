//! Values accepted once in this process (a sign-in's `state`), remembered until they would
//! expire anyway. The cookie that carries a state is cleared after use, but a copy of the old
//! cookie and callback URL could be replayed, or sent twice at once: the first use wins here,
//! atomically, before any work is done for it.

use crate::clock::{Expires, SharedClock, UntilExpiry};
use mfagate_policy::UnixTime;
use std::sync::Arc;

/// Values remembered at once, at most. A state is remembered only after its sealed cookie and
/// the callback agree, so each entry costs an attacker a sign-in start and a callback; past this
/// many within a state's ten minutes, some are forgotten before they expire.
const CAPACITY: u64 = 500_000;

struct Until(UnixTime);

impl Expires for Until {
    fn expires(&self) -> UnixTime {
        self.0
    }
}

/// Values seen, each until its expiry.
pub struct UsedOnce {
    seen: moka::sync::Cache<String, Arc<Until>>,
}

impl std::fmt::Debug for UsedOnce {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "UsedOnce({} entries)", self.seen.entry_count())
    }
}

impl UsedOnce {
    /// An empty set whose entries expire by `clock`.
    pub fn new(clock: SharedClock) -> UsedOnce {
        UsedOnce {
            seen: moka::sync::Cache::builder()
                .max_capacity(CAPACITY)
                .expire_after(UntilExpiry(clock))
                .build(),
        }
    }

    /// Records `value` (valid until `until`); true only for its first use. Check and record are
    /// one step: of two concurrent uses, exactly one is the first.
    pub fn first_use(&self, value: &str, until: UnixTime) -> bool {
        self.seen.entry(value.to_owned()).or_insert_with(|| Arc::new(Until(until))).is_fresh()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_is_used_once_even_from_many_threads() {
        let once = Arc::new(UsedOnce::new(crate::clock::ManualClock::at(1_000)));
        let firsts: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    let once = once.clone();
                    s.spawn(move || usize::from(once.first_use("state-1", UnixTime(1_600))))
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(firsts, 1);
        assert!(!once.first_use("state-1", UnixTime(1_600)));
        assert!(once.first_use("state-2", UnixTime(1_600)));
    }
}
