//! Policy evaluation and path canonicalization cost: `cargo bench -p mfagate-policy --bench policy_eval`.
#![allow(clippy::expect_used)]
use criterion::{Criterion, criterion_group, criterion_main};
use mfagate_policy::{Amr, Credential, MfaSettings, RouteRule, TokenFacts, TokenVersion, UnixTime, evaluate};
use std::hint::black_box;

fn bench(c: &mut Criterion) {
    let now = UnixTime(1_700_000_000);
    let facts = |amr: &[&str]| TokenFacts {
        version: TokenVersion::V1,
        idtyp: None,
        has_scp: true,
        has_roles: false,
        amr: Amr::List(amr.iter().map(|s| s.to_string()).collect()),
        acrs: Vec::new(),
        client_auth: Some("1".into()),
        expires: now.plus(3600),
        not_before: None,
    };
    let mfa = MfaSettings::default();
    let rule = RouteRule::default();
    for (name, f) in [("allow_mfa", facts(&["pwd", "mfa"])), ("challenge_pwd", facts(&["pwd", "wiaormfa"]))] {
        c.bench_function(&format!("policy_evaluate/{name}"), |b| {
            b.iter(|| {
                evaluate(
                    black_box(&rule),
                    Credential::Token { facts: black_box(&f), mfa: &mfa, leeway_secs: 60 },
                    now,
                )
            })
        });
    }
}

fn paths(c: &mut Criterion) {
    use mfagate_policy::path::{Prefix, canonicalize};
    let prefix = Prefix::new("/v1/customers", false).expect("canonical");
    for (name, raw) in [
        ("plain", "/v1/customers/7f1d2c3e-0000-4000-8000-000000000001/orders"),
        ("dots_and_escapes", "/v1/./customers//%7e7f1d/../7f1d2c3e/orders"),
    ] {
        c.bench_function(&format!("path_canonicalize/{name}"), |b| {
            b.iter(|| canonicalize(black_box(raw)).map(|p| prefix.matches(&p)))
        });
    }
}

criterion_group!(benches, bench, paths);
criterion_main!(benches);
