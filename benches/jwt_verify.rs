//! Token verification cost, first sight (signature check) and cached (SHA-256 + map lookup):
//! `cargo bench -p mfagate --bench jwt_verify`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{Criterion, criterion_group, criterion_main};
use mfagate::clock::{ManualClock, SharedClock};
use mfagate::config::Config;
use mfagate::dev::idp::{DevIdp, TokenRequest, load_dev_keys};
use mfagate::verify::jwt::{CacheCounters, Verification, Verifier};
use std::hint::black_box;
use std::path::Path;

const T0: u64 = 1_767_225_600;

fn verifier(rt: &tokio::runtime::Runtime, idp: &DevIdp, clock: SharedClock, cache: u64) -> Verifier {
    let toml = format!(
        "[decision_log]\npath = \"/dev/null\"\n[[issuer]]\nname = \"dev\"\nissuer = \"{}\"\njwks_uri = \"{}/keys\"\naudiences = [\"api://mfagate-demo\"]\nalgorithms = [\"RS256\", \"ES256\"]\ntenants = [\"{}\"]\n",
        idp.issuer_template(),
        idp.base_url(),
        mfagate::dev::idp::DEV_TENANT
    );
    let config = Config::from_toml(&toml, Path::new(".")).unwrap();
    let client = mfagate::outbound::client(None, std::time::Duration::from_secs(5)).unwrap();
    let verifier = Verifier::for_issuers(&config.issuers, &client, cache, clock);
    for keys in verifier.keys() {
        rt.block_on(keys.refresh_now()).unwrap();
    }
    verifier
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let clock = ManualClock::at(T0);
    let certs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../certs");
    let idp = rt.block_on(async {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        DevIdp::start(l, load_dev_keys(&certs).unwrap(), clock.clone()).unwrap()
    });
    let counters = CacheCounters::default();
    let mint = |kid: &str, i: usize| {
        let mut claims = idp.claims(&TokenRequest::default());
        claims["jti"] = serde_json::json!(i); // distinct tokens: nothing to reuse
        idp.sign_with_key(kid, &claims).unwrap()
    };
    let uncached = verifier(&rt, &idp, clock.clone(), 0);
    for (name, kid) in [("first_sight_rs256", "dev-rsa-a"), ("first_sight_es256", "dev-ec")] {
        let tokens: Vec<String> = (0..256).map(|i| mint(kid, i)).collect();
        let mut i = 0;
        c.bench_function(&format!("jwt_verify/{name}"), |b| {
            b.iter(|| {
                i = (i + 1) % tokens.len();
                let v = rt.block_on(uncached.verify(black_box(&tokens[i]), &counters));
                assert!(matches!(v, Verification::Verified(_)));
            })
        });
    }
    let cached = verifier(&rt, &idp, clock.clone(), 10_000);
    let token = mint("dev-rsa-a", 0);
    rt.block_on(cached.verify(&token, &counters));
    c.bench_function("jwt_verify/cached", |b| {
        b.iter(|| {
            let v = rt.block_on(cached.verify(black_box(&token), &counters));
            assert!(matches!(v, Verification::Verified(_)));
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
