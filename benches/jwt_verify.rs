//! Token verification cost beside its floor, in one run: the gateway's verify on a cache hit
//! (SHA-256 + map lookup) and on a miss (a new token every iteration: strict split, header and
//! claim reads, the signature, the claims), and the raw aws-lc-rs signature check over the same
//! tokens, with the key rebuilt on each call (what jsonwebtoken did) and parsed once (the floor;
//! what the gateway does now). RS256 and ES256: `cargo bench -p mfagate --bench jwt_verify`.
//! The target: `miss_*` at least 80% of the rate of `raw_*_parsed`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use aws_lc_rs::signature::{self as sig, ParsedPublicKey, RsaPublicKeyComponents, UnparsedPublicKey};
use base64::Engine;
use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::{DecodingKey, DecodingKeyKind};
use mfagate::clock::{ManualClock, SharedClock};
use mfagate::config::Config;
use mfagate::dev::idp::{DevIdp, TokenRequest, load_dev_keys};
use mfagate::verify::jwt::{CacheCounters, Verification, Verifier};
use std::hint::black_box;
use std::path::Path;

const T0: u64 = 1_767_225_600;
const POOL: usize = 256;

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

/// Each token's signing input and decoded signature.
fn signed(tokens: &[String]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    tokens
        .iter()
        .map(|t| {
            let (input, signature) = t.rsplit_once('.').unwrap();
            (input.as_bytes().to_vec(), b64.decode(signature).unwrap())
        })
        .collect()
}

/// Verifies `signed[i]` for the next `i` each iteration with `check`, which must pass.
fn raw(c: &mut Criterion, name: &str, signed: &[(Vec<u8>, Vec<u8>)], check: impl Fn(&[u8], &[u8]) -> bool) {
    let mut i = 0;
    c.bench_function(name, |b| {
        b.iter(|| {
            i = (i + 1) % signed.len();
            let (message, signature) = &signed[i];
            assert!(check(black_box(message), black_box(signature)));
        })
    });
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let clock = ManualClock::at(T0);
    let certs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../certs");
    let dev_keys = load_dev_keys(&certs).unwrap();
    let public = |kid: &str| {
        let key = dev_keys.iter().find(|k| k.kid() == kid).unwrap();
        DecodingKey::from_jwk(key.jwk()).unwrap()
    };
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

    let cached = verifier(&rt, &idp, clock.clone(), 1 << 20);
    let token = mint("dev-rsa-a", 0);
    rt.block_on(cached.verify(&token, &counters));
    c.bench_function("jwt_verify/hit_rs256", |b| {
        b.iter(|| {
            let v = rt.block_on(cached.verify(black_box(&token), &counters));
            assert!(matches!(v, Verification::Verified(_)));
        })
    });

    let uncached = verifier(&rt, &idp, clock.clone(), 0);
    for (alg, kid) in [("rs256", "dev-rsa-a"), ("es256", "dev-ec")] {
        let tokens: Vec<String> = (0..POOL).map(|i| mint(kid, i)).collect();
        let mut i = 0;
        c.bench_function(&format!("jwt_verify/miss_{alg}"), |b| {
            b.iter(|| {
                i = (i + 1) % tokens.len();
                let v = rt.block_on(uncached.verify(black_box(&tokens[i]), &counters));
                assert!(matches!(v, Verification::Verified(_)));
            })
        });
        let signed = signed(&tokens);
        match public(kid).kind() {
            DecodingKeyKind::RsaModulusExponent { n, e } => {
                let alg = &sig::RSA_PKCS1_2048_8192_SHA256;
                let components = RsaPublicKeyComponents { n: n.as_slice(), e: e.as_slice() };
                raw(c, "jwt_verify/raw_rs256_components", &signed, |m, s| {
                    components.verify(alg, m, s).is_ok()
                });
                let parsed = components.to_parsed_public_key(alg).unwrap();
                raw(c, "jwt_verify/raw_rs256_parsed", &signed, |m, s| parsed.verify_sig(m, s).is_ok());
            }
            DecodingKeyKind::SecretOrDer(point) => {
                let alg = &sig::ECDSA_P256_SHA256_FIXED;
                let unparsed = UnparsedPublicKey::new(alg, point.as_slice());
                raw(c, "jwt_verify/raw_es256_unparsed", &signed, |m, s| unparsed.verify(m, s).is_ok());
                let parsed = ParsedPublicKey::new(alg, point).unwrap();
                raw(c, "jwt_verify/raw_es256_parsed", &signed, |m, s| parsed.verify_sig(m, s).is_ok());
            }
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
