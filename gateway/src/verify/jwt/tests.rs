//! Random input never verifies (and never panics): bytes, three-segment strings, a real header
//! and payload under random signatures, and a real token changed in one place.

use super::*;
use crate::clock::ManualClock;
use crate::dev::idp::{DevIdp, TokenRequest, load_dev_keys};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use std::path::Path;

const T0: u64 = 1_767_225_600;

struct Fixture {
    rt: tokio::runtime::Runtime,
    verifier: Verifier,
    good: String,
    /// Another user's token, also accepted.
    other: String,
}

/// A verifier over a running dev IdP's keys, and a token it accepts.
fn fixture() -> Fixture {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let clock = ManualClock::at(T0);
    let certs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../certs");
    let (verifier, good, other) = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let idp = DevIdp::start(listener, load_dev_keys(&certs).unwrap(), clock.clone()).unwrap();
        let toml = format!(
            "[decision_log]\npath = \"/dev/null\"\n[[issuer]]\nname = \"dev\"\nissuer = \"{}\"\n\
             jwks_uri = \"{}/keys\"\naudiences = [\"api://mfagate-demo\"]\nalgorithms = [\"RS256\", \"ES256\"]\n\
             tenants = [\"*\"]\n",
            idp.issuer_template(),
            idp.base_url()
        );
        let config = crate::Config::from_toml(&toml, Path::new(".")).unwrap();
        let client = crate::outbound::client(None, std::time::Duration::from_secs(5)).unwrap();
        let verifier = Verifier::for_issuers(&config.issuers, &client, 1 << 20, clock.clone());
        for keys in verifier.keys() {
            keys.refresh_now().await.unwrap();
        }
        let other = TokenRequest::from_params(|n| (n == "upn").then(|| "other@contoso.test".to_owned())).unwrap();
        (verifier, idp.mint(&TokenRequest::default()).unwrap(), idp.mint(&other).unwrap())
    });
    Fixture { rt, verifier, good, other }
}

impl Fixture {
    fn verifies(&self, token: &str) -> bool {
        let v = self.rt.block_on(self.verifier.verify(token, &CacheCounters::default()));
        matches!(v, Verification::Verified(_))
    }

    /// Runs `strategy`, failing on any token that verifies.
    fn never_verifies<S: Strategy<Value = String>>(&self, strategy: S) {
        let mut runner =
            TestRunner::new(Config { cases: 256, failure_persistence: None, ..Config::default() });
        runner
            .run(&strategy, |token| {
                if self.verifies(&token) {
                    return Err(TestCaseError::fail(format!("verified: {token}")));
                }
                Ok(())
            })
            .unwrap();
    }
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[test]
fn random_input_never_verifies() {
    let f = fixture();
    assert!(f.verifies(&f.good), "the fixture's own token must verify");
    let (input, _) = f.good.rsplit_once('.').unwrap();
    let input = input.to_owned();

    f.never_verifies(any::<Vec<u8>>().prop_map(|b| String::from_utf8_lossy(&b).into_owned()));
    f.never_verifies("[A-Za-z0-9_-]{0,80}\\.[A-Za-z0-9_-]{0,200}\\.[A-Za-z0-9_-]{0,400}");
    f.never_verifies(
        (
            proptest::collection::vec(any::<u8>(), 0..120),
            proptest::collection::vec(any::<u8>(), 0..400),
            proptest::collection::vec(any::<u8>(), 0..300),
        )
            .prop_map(|(h, p, s)| format!("{}.{}.{}", b64(&h), b64(&p), b64(&s))),
    );
    // The real header and payload under a random signature (often of the right length).
    let signing_input = input.clone();
    f.never_verifies(
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 256..=256),
            proptest::collection::vec(any::<u8>(), 0..300)
        ]
        .prop_map(move |s| format!("{signing_input}.{}", b64(&s))),
    );
    // The real token with one character replaced, removed or inserted anywhere.
    let good = f.good.clone();
    let len = good.len();
    let alphabet: Vec<char> = "ABCXYZabcxyz0189-_.=+/ \u{0}é".chars().collect();
    f.never_verifies(
        (0..len, proptest::sample::select(alphabet), 0..3u8)
            .prop_map(move |(at, c, how)| {
                let mut t: Vec<char> = good.chars().collect();
                match how {
                    0 => t[at] = c,
                    1 => {
                        t.remove(at);
                    }
                    _ => t.insert(at, c),
                }
                t.into_iter().collect::<String>()
            })
            .prop_filter("changed", {
                let good = f.good.clone();
                move |t| *t != good
            }),
    );
}

/// Every token in one cache slot (as if every hash collided): a forged token never gets the
/// cached token's verdict, and another user's token gets its own.
#[test]
fn a_cache_collision_is_a_miss_never_another_tokens_verdict() {
    let mut f = fixture();
    f.verifier.one_slot = true;
    let upn = |token: &str| match f.rt.block_on(f.verifier.verify(token, &CacheCounters::default())) {
        Verification::Verified(v) => Some(v.identity.upn.clone()),
        _ => None,
    };
    let counters = CacheCounters::default();
    assert!(matches!(f.rt.block_on(f.verifier.verify(&f.good, &counters)), Verification::Verified(_)));
    assert!(matches!(f.rt.block_on(f.verifier.verify(&f.good, &counters)), Verification::Verified(_)));
    assert_eq!(counters.hits.load(std::sync::atomic::Ordering::Relaxed), 1, "the second sight is a hit");
    let (input, signature) = f.good.rsplit_once('.').unwrap();
    let forged = format!("{input}x.{signature}");
    assert_eq!(upn(&forged), None, "same slot, other bytes: verified afresh, and refused");
    assert_eq!(upn(&f.other), Some(Some("other@contoso.test".to_owned())), "its own verdict");
    assert_eq!(upn(&f.good), Some(Some("adele@contoso.test".to_owned())));
}
