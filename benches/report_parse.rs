//! Report parsing cost per decision record, on one thread, beside its floor (serde_json
//! validating the same lines into nothing): `cargo bench -p mfagate --bench report_parse`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mfagate::evidence::report::{Options, build_with};
use std::hint::black_box;

const RECORDS: u64 = 10_000;
const NOW: u64 = 1_767_225_600_000;

/// The shape benches/report_records.py writes: the gateway's own records.
fn lines() -> String {
    (0..RECORDS)
        .map(|i| {
            let (channel, principal, mfa) = match i % 10 {
                0 | 1 => ("portal", "user", if i % 5 == 0 { "false" } else { "true" }),
                2..=4 => ("api", "app_only", "null"),
                _ => ("api", "app_user", if i % 3 == 0 { "false" } else { "true" }),
            };
            format!(
                r#"{{"ts":"2025-12-{:02}T{:02}:{:02}:00.{:03}Z","request_id":"r{i}","correlation_id":null,"channel":"{channel}","route":"partner-api","method":"GET","path":"/v1/customers","operation":"GET /v1/","source_ip":"10.0.0.{}","issuer":"entra","tenant_id":"72f988bf-86f1-41af-91ab-2d7cd011db47","object_id":"00000000-0000-4000-8000-{:012}","upn":"user{}@contoso.test","app_id":"app-{}","principal":"{principal}","amr":["pwd"],"mfa":{mfa},"decision":"allow","enforced":true,"reason":"mfa_satisfied","status":200,"latency_us":800}}"#,
                25 + i % 7,
                i % 24,
                i % 60,
                i % 1000,
                i % 250,
                i % 200,
                i % 200,
                i % 4
            ) + "\n"
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("decisions.jsonl");
    let text = lines();
    std::fs::write(&path, &text).unwrap();
    let mut group = c.benchmark_group("report_parse");
    group.throughput(Throughput::Elements(RECORDS));
    group.bench_function("floor_serde_json_ignored_any", |b| {
        b.iter(|| {
            for line in text.lines() {
                black_box(serde_json::from_str::<serde::de::IgnoredAny>(line).unwrap());
            }
        })
    });
    let paths = [path];
    group.bench_function("report_one_thread", |b| {
        b.iter(|| {
            let (r, w) = build_with(&paths, NOW, 7, Options { threads: 1, ..Options::default() }).unwrap();
            assert!(w.is_empty() && r.totals.api_app_user > 0);
            black_box(r)
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
