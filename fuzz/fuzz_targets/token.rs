//! Token intake: `Verifier::verify` over the dev IdP's keys (certs/, served by an in-process dev
//! IdP, fetched once) never panics, and verifies nothing but the signed `ok-*` seeds, byte for
//! byte (a JWS signature covers the exact header and payload text).
//!
//! The key cache is loaded before the first input and the clock stands still, so an unknown
//! `kid` is refused by the refetch rate limit instead of costing a fetch per input.
#![no_main]

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use libfuzzer_sys::fuzz_target;
use mfagate::clock::{ManualClock, SharedClock};
use mfagate::dev::idp::{DEV_AUDIENCE, DEV_TENANT, DevIdp};
use mfagate::fuzzing::{T0, TOKEN_ISSUER_V1, TOKEN_ISSUER_V2};
use mfagate::verify::jwt::{CacheCounters, Verification, Verifier};
use mfagate::verify::keys::IssuerKeys;
use std::collections::HashSet;
use std::sync::OnceLock;

struct Fixture {
    runtime: tokio::runtime::Runtime,
    verifier: Verifier,
    counters: CacheCounters,
    signed: HashSet<String>,
    _idp: DevIdp,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let clock: SharedClock = ManualClock::at(T0);
        let (idp, verifier) = runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let keys = mfagate::dev::idp::load_dev_keys(&mfagate_fuzz::repo().join("certs")).expect("dev keys");
            let idp = DevIdp::start(listener, keys, clock.clone()).expect("dev IdP");
            let toml = format!(
                r#"
[listen]
addr = "127.0.0.1:0"
[decision_log]
path = "unused.jsonl"
[[issuer]]
name = "v1"
issuer = "{TOKEN_ISSUER_V1}"
jwks_uri = "{base}/keys"
audiences = ["{DEV_AUDIENCE}"]
algorithms = ["RS256", "ES256"]
tenants = ["{DEV_TENANT}"]
[[issuer]]
name = "v2"
issuer = "{TOKEN_ISSUER_V2}"
jwks_uri = "{base}/keys"
audiences = ["{DEV_AUDIENCE}"]
algorithms = ["RS256"]
tenants = ["{DEV_TENANT}"]
[[route]]
name = "api"
path_prefix = "/"
upstream = "http://127.0.0.1:1"
"#,
                base = idp.base_url()
            );
            let config = mfagate::Config::from_toml(&toml, &std::env::temp_dir()).expect("config");
            let client = mfagate::outbound::client(None, config.outbound.connect_timeout).expect("client");
            let mut issuers = Vec::new();
            for cfg in &config.issuers {
                let keys = IssuerKeys::new(cfg, client.clone(), clock.clone());
                keys.refresh_now().await.expect("issuer keys");
                issuers.push((cfg.clone(), keys));
            }
            (idp, Verifier::new(issuers, 1 << 20, clock.clone()))
        });
        let counters = CacheCounters::default();
        let verify = |name: &str, token: &str| {
            let verified = runtime.block_on(verifier.verify(token, &counters));
            assert!(matches!(verified, Verification::Verified(_)), "seed {name}: {verified:?}");
        };
        let signed: HashSet<String> = mfagate_fuzz::seeds("token", "ok-")
            .into_iter()
            .map(|(name, bytes)| {
                let token = String::from_utf8(bytes).expect("UTF-8 seed");
                verify(&name, &token);
                token
            })
            .collect();
        // The decoded forms of the signed seeds encode back to them.
        for (name, bytes) in mfagate_fuzz::seeds("token", "json-ok-") {
            let token = token(&bytes).unwrap_or_default();
            assert!(signed.contains(&token), "{name} does not encode to a signed seed");
            verify(&name, &token);
        }
        Fixture { runtime, verifier, counters, signed, _idp: idp }
    })
}

/// A token as sent, or, for input with a newline, `header\npayload\nsignature` decoded: the
/// target encodes the parts, so mutations reach the JSON the verifier reads before the signature.
fn token(data: &[u8]) -> Option<String> {
    if !data.contains(&b'\n') {
        return std::str::from_utf8(data).ok().map(str::to_owned);
    }
    let mut parts = data.splitn(3, |b| *b == b'\n');
    let mut b64 = || URL_SAFE_NO_PAD.encode(parts.next().unwrap_or_default());
    Some(format!("{}.{}.{}", b64(), b64(), b64()))
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let Some(token) = token(data) else {
        return;
    };
    let token = token.as_str();
    match f.runtime.block_on(f.verifier.verify(token, &f.counters)) {
        Verification::Verified(_) => {
            assert!(f.signed.contains(token), "verified a token nobody signed: {token:?}")
        }
        Verification::Invalid(_) => {}
        Verification::Unverifiable => panic!("keys became unavailable on {token:?}"),
    }
});
