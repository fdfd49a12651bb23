//! What may be used only once, or only in one document: SAML assertion ids (with the digest of
//! the document that first carried them), one-time assertions, RFC 7522 grants, ACS posts and
//! sign-in `state` values. Each is remembered until it could no longer be accepted anyway.
//!
//! Alone, an instance remembers in memory. With `[cluster]`, Redis is the memory of the fleet:
//! a first sight costs one round trip (a script that reads and sets in one step), and what Redis
//! confirmed is also kept here, so a second sight on this instance costs none. Check and record
//! are always one step: of two concurrent uses, on one instance or two, exactly one is first.

use crate::clock::{Expires, SharedClock, UntilExpiry};
use crate::cluster::Cluster;
use crate::config::OnClusterFailure;
use crate::ids::hex;
use crate::verify::jwt::sha256;
use mfagate_policy::UnixTime;
use std::sync::Arc;

/// Values remembered locally at once, at most. A sign-in state is remembered only after its
/// sealed cookie and the callback agree, and an assertion id only after its signature verified,
/// so each entry costs an attacker real work; past this many, some are forgotten early.
const CAPACITY: u64 = 500_000;

/// The least time a shared entry is kept, so a clock skew of a few hundred milliseconds between
/// this instance and Redis cannot drop it before it is read.
const MIN_TTL_MS: u64 = 1_000;

/// What is being used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A SAML assertion id.
    Assertion,
    /// A browser sign-in's state (OIDC `state`, SAML `RelayState`).
    SignIn,
}

impl Kind {
    fn tag(self) -> &'static str {
        match self {
            Kind::Assertion => "saml",
            Kind::SignIn => "state",
        }
    }
}

/// One use of a value.
#[derive(Debug, Clone, Copy)]
pub struct Use<'a> {
    /// What it is.
    pub kind: Kind,
    /// The value (an assertion id, a state).
    pub value: &'a str,
    /// The digest of the document that carries it (zero for a state).
    pub digest: [u8; 32],
    /// Whether the same document may be used again (a bearer assertion): only another document
    /// with the same value is then a replay.
    pub reusable: bool,
    /// Until when the value could be accepted.
    pub until: UnixTime,
}

/// The verdict on one use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Never seen: accepted, and now remembered.
    First,
    /// The same reusable document again: accepted.
    Again,
    /// Used before (in another document, or a value used once): refused.
    Replayed,
}

/// The shared memory cannot be reached and `on_failure = "closed"`: the use is refused (503).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the shared one-time memory is unreachable")]
pub struct Unavailable;

struct Seen {
    digest: [u8; 32],
    /// Whether it was a reusable (bearer) use: only then may the same document come again. A
    /// grant or a one-time assertion is not taken again as a bearer credential afterwards.
    reusable: bool,
    until: UnixTime,
}

impl Expires for Seen {
    fn expires(&self) -> UnixTime {
        self.until
    }
}

impl Seen {
    fn of(use_: &Use<'_>) -> Seen {
        Seen { digest: use_.digest, reusable: use_.reusable, until: use_.until }
    }

    /// What Redis holds for `use_`: the digest of a reusable document, marked for a one-time use
    /// so that no reusable use of the same document matches it.
    fn stored(use_: &Use<'_>) -> String {
        if use_.reusable { hex(&use_.digest) } else { format!("once:{}", hex(&use_.digest)) }
    }

    fn judge(&self, use_: &Use<'_>) -> Claim {
        if use_.reusable && self.reusable && self.digest == use_.digest {
            Claim::Again
        } else {
            Claim::Replayed
        }
    }
}

/// The one-time memory of this instance, and of the fleet when clustered.
pub struct Once {
    local: moka::sync::Cache<String, Arc<Seen>>,
    shared: Option<Arc<Cluster>>,
    /// Refused attempts waiting to take their key back (see [`Once::release_later`]).
    releases: Arc<tokio::sync::Semaphore>,
    clock: SharedClock,
}

/// A shared check that failed: its key, and the value it may have stored all the same.
struct Attempt {
    key: String,
    value: String,
}

/// Refused one-time checks whose keys are taken back at once, at most.
const MAX_RELEASES: usize = 10_000;
/// Tries to take one back, half a second apart.
const RELEASE_TRIES: usize = 120;

impl std::fmt::Debug for Once {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Once({} local entries, shared: {})", self.local.entry_count(), self.shared.is_some())
    }
}

/// The script behind a shared check: the value already stored, or nil after storing ours.
/// One round trip, atomic on the server, one key (so it also runs on Redis Cluster and Valkey).
const CLAIM: &str = "local old = redis.call('GET', KEYS[1]) \
    if old then return old end \
    redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) \
    return false";

/// Takes back a key only if it still holds this attempt's value.
const RELEASE: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end \
    return 0";

impl Once {
    /// A memory of this instance only.
    pub fn new(clock: SharedClock) -> Once {
        Once {
            local: moka::sync::Cache::builder()
                .max_capacity(CAPACITY)
                .expire_after(UntilExpiry(clock.clone()))
                .build(),
            shared: None,
            releases: Arc::new(tokio::sync::Semaphore::new(MAX_RELEASES)),
            clock,
        }
    }

    /// A memory shared with the fleet through `cluster`.
    pub fn shared(cluster: Arc<Cluster>, clock: SharedClock) -> Once {
        Once { shared: Some(cluster), ..Once::new(clock) }
    }

    fn local_key(use_: &Use<'_>) -> String {
        format!("{}:{}", use_.kind.tag(), use_.value)
    }

    /// Decides from this instance's memory alone, recording a first use.
    pub fn claim_local(&self, use_: &Use<'_>) -> Claim {
        let seen = Arc::new(Seen::of(use_));
        let entry = self.local.entry(Self::local_key(use_)).or_insert_with(|| seen);
        if entry.is_fresh() { Claim::First } else { entry.value().judge(use_) }
    }

    /// Redis's verdict on `use_`, remembered here when it was not a replay. A use this instance
    /// recorded meanwhile (a concurrent check that fell back to local memory) decides instead:
    /// Redis never saw it, and it must not be accepted twice here.
    fn confirmed(&self, use_: &Use<'_>, claim: Claim) -> Claim {
        if claim == Claim::Replayed {
            return claim;
        }
        let seen = Arc::new(Seen::of(use_));
        let entry = self.local.entry(Self::local_key(use_)).or_insert_with(|| seen);
        if entry.is_fresh() { claim } else { entry.value().judge(use_) }
    }

    /// Decides for the whole fleet when clustered (one round trip on a first sight here), else
    /// as [`Once::claim_local`].
    pub async fn claim(&self, use_: &Use<'_>) -> Result<Claim, Unavailable> {
        let Some(cluster) = &self.shared else { return Ok(self.claim_local(use_)) };
        // Entries here were confirmed by Redis (or made while falling back): a second sight on
        // this instance needs no round trip.
        if let Some(seen) = self.local.get(&Self::local_key(use_)) {
            return Ok(seen.judge(use_));
        }
        match self.claim_shared(cluster, use_).await {
            Ok(claim) => Ok(self.confirmed(use_, claim)),
            Err(attempt) => match cluster.on_failure() {
                OnClusterFailure::Closed => {
                    cluster.refused();
                    // The check may have reached Redis before the answer was lost: a one-time
                    // value refused here was accepted nowhere, so its key is taken back once
                    // Redis answers, and the client's retry (the 503 asks for one) is not a
                    // replay of itself. A bearer document's entry stays: another instance may
                    // have accepted the same document against it meanwhile.
                    if !use_.reusable {
                        self.release_later(cluster, attempt);
                    }
                    Err(Unavailable)
                }
                OnClusterFailure::Local => {
                    cluster.fell_back();
                    Ok(self.claim_local(use_))
                }
            },
        }
    }

    /// Redis's verdict, or on failure the attempt (its key and the value it may have stored).
    async fn claim_shared(&self, cluster: &Cluster, use_: &Use<'_>) -> Result<Claim, Attempt> {
        // Hashed: a key of bounded length whatever the value, and no value in Redis's keyspace.
        let key = cluster.key(&format!("once:{}:{}", use_.kind.tag(), hex(&sha256(use_.value.as_bytes()))));
        let now_ms = self.clock.now_millis();
        let ttl_ms = use_.until.0.saturating_mul(1000).saturating_sub(now_ms).max(MIN_TTL_MS);
        let stored = Seen::stored(use_);
        // Unique to this attempt, so that only its own write is ever taken back.
        let value = format!("{stored}|{}", crate::ids::request_id());
        let script = redis::Script::new(CLAIM);
        let mut invocation = script.key(&key);
        invocation.arg(&value).arg(ttl_ms);
        // One bound for both tries: a silent Redis costs a first sight `timeout_ms`, not more.
        let old = cluster
            .bounded(async {
                cluster.checking();
                let mut old: redis::RedisResult<Option<String>> =
                    invocation.invoke_async(&mut cluster.connection()).await;
                // A connection found broken (Redis restarted since the last use) is made again by
                // the manager: one more try, so the first check after an outage is not refused for
                // it. A timeout is not tried again.
                if old.as_ref().is_err_and(|e| e.is_connection_dropped() || e.is_connection_refusal()) {
                    cluster.checking();
                    old = invocation.invoke_async(&mut cluster.connection()).await;
                }
                old
            })
            .await;
        // Anything but our own digest under the key (another program's value) never matches.
        let old = match cluster.record(old) {
            Ok(old) => old,
            Err(_) => return Err(Attempt { key, value }),
        };
        Ok(match old {
            // Our own value: the first try ran before its connection dropped, and the retry
            // found what it had written.
            None => Claim::First,
            Some(old) if old == value => Claim::First,
            Some(old) if use_.reusable && old.split_once('|').map_or(old.as_str(), |(s, _)| s) == stored => {
                Claim::Again
            }
            Some(_) => Claim::Replayed,
        })
    }

    /// Deletes `attempt`'s key if it still holds the attempt's own value, as soon as Redis
    /// answers (tried every half second for a minute; past [`MAX_RELEASES`] waiting at once, or
    /// after that minute, the value stays used until it expires: refused, never accepted twice).
    fn release_later(&self, cluster: &Arc<Cluster>, attempt: Attempt) {
        let Ok(permit) = self.releases.clone().try_acquire_owned() else { return };
        let cluster = cluster.clone();
        tokio::spawn(async move {
            let script = redis::Script::new(RELEASE);
            for _ in 0..RELEASE_TRIES {
                let mut invocation = script.key(&attempt.key);
                invocation.arg(&attempt.value);
                let done: redis::RedisResult<i64> =
                    cluster.bounded(invocation.invoke_async(&mut cluster.connection())).await;
                if cluster.record(done).is_ok() {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
            drop(permit);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(value: &str) -> Use<'_> {
        Use { kind: Kind::SignIn, value, digest: [0; 32], reusable: false, until: UnixTime(1_600) }
    }

    #[test]
    fn a_value_is_used_once_even_from_many_threads() {
        let once = Arc::new(Once::new(crate::clock::ManualClock::at(1_000)));
        let firsts: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    let once = once.clone();
                    s.spawn(move || usize::from(once.claim_local(&state("state-1")) == Claim::First))
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(firsts, 1);
        assert_eq!(once.claim_local(&state("state-1")), Claim::Replayed);
        assert_eq!(once.claim_local(&state("state-2")), Claim::First);
    }

    #[test]
    fn a_reusable_document_may_come_again_but_not_its_id_in_another() {
        let once = Once::new(crate::clock::ManualClock::at(1_000));
        let doc = |digest: u8, reusable| Use {
            kind: Kind::Assertion,
            value: "_a1",
            digest: [digest; 32],
            reusable,
            until: UnixTime(1_600),
        };
        assert_eq!(once.claim_local(&doc(1, true)), Claim::First);
        assert_eq!(once.claim_local(&doc(1, true)), Claim::Again);
        assert_eq!(once.claim_local(&doc(2, true)), Claim::Replayed);
        assert_eq!(once.claim_local(&doc(1, false)), Claim::Replayed);
        // Used once (a grant), the same document is not then a bearer credential.
        let grant = |digest: u8, reusable| Use { value: "_g1", ..doc(digest, reusable) };
        assert_eq!(once.claim_local(&grant(3, false)), Claim::First);
        assert_eq!(once.claim_local(&grant(3, true)), Claim::Replayed);
        // Kinds do not share values: a state equal to an assertion id is another thing.
        assert_eq!(once.claim_local(&state("_a1")), Claim::First);
    }

    #[test]
    fn redis_saying_first_does_not_override_a_use_this_instance_made_meanwhile() {
        // A concurrent check of the same one-time value fell back to local memory (its round
        // trip failed before it reached Redis) and accepted it; this one's round trip then
        // found Redis empty. Accepting it too would use the value twice on one instance.
        let once = Once::new(crate::clock::ManualClock::at(1_000));
        assert_eq!(once.claim_local(&state("state-3")), Claim::First);
        assert_eq!(once.confirmed(&state("state-3"), Claim::First), Claim::Replayed);
        // Without a use made meanwhile, Redis's verdict stands.
        assert_eq!(once.confirmed(&state("state-4"), Claim::First), Claim::First);
        assert_eq!(once.claim_local(&state("state-4")), Claim::Replayed);
    }
}
