#!/usr/bin/env bash
# `mfagate report` beside DuckDB on the same decision log, the same numbers, the same threads:
# generates N records (default 1,000,000; benches/report_records.py), then times
# `mfagate report --threads 1` and `--threads 2`, and DuckDB (`pip install duckdb`) reading the
# same JSON lines with `SET threads=1` and `=2` and computing the report's headline counts over
# the 7-day window (portal operations, with MFA; App+User requests, with MFA) and its
# per-application counts (per UTC day and application). Checks both give the same numbers and
# prints records/s per thread, peak memory and the ratios. One run each, in turn.
# Usage: benches/report_vs_duckdb.sh [records]
set -euo pipefail
cd "$(dirname "$0")/.."
records=${1:-1000000}
cargo build --release -q -p mfagate --bin mfagate
python3 -c 'import duckdb' 2>/dev/null || pip install -q duckdb
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
log="$work/decisions.jsonl"
python3 benches/report_records.py "$records" "$log"
echo "records: $records ($(du -h "$log" | cut -f1))"
now=2026-01-01T00:00:00Z
for t in 1 2; do
  /usr/bin/time -f "%e %M" -o "$work/time.$t" target/release/mfagate report --log "$log" --now "$now" \
    --threads "$t" --format json --out "$work/exports.$t" > "$work/mfagate.$t.json"
done
for t in 1 2; do
  python3 - "$log" "$t" > "$work/duckdb.$t.json" <<'PY'
import duckdb, json, resource, sys, time
log, threads = sys.argv[1], int(sys.argv[2])
con = duckdb.connect()
con.execute(f"SET threads={threads}")
cols = {"ts": "VARCHAR", "channel": "VARCHAR", "principal": "VARCHAR", "route": "VARCHAR",
        "mfa": "BOOLEAN", "app_id": "VARCHAR"}
start = time.perf_counter()
con.execute(f"""CREATE TEMP TABLE w AS SELECT channel, principal, route, mfa, app_id, substr(ts, 1, 10) AS day
  FROM read_ndjson('{log}', columns = {cols})
  WHERE ts >= '2025-12-25T00:00:00' AND ts < '2026-01-01T00:00:00'""")
head = con.execute("""SELECT
  count(*) FILTER (channel = 'portal' AND principal = 'user' AND mfa IS NOT NULL AND route IS NOT NULL),
  count(*) FILTER (channel = 'portal' AND principal = 'user' AND mfa AND route IS NOT NULL),
  count(*) FILTER (channel = 'api' AND principal IN ('app_user', 'user') AND mfa IS NOT NULL),
  count(*) FILTER (channel = 'api' AND principal IN ('app_user', 'user') AND mfa) FROM w""").fetchone()
apps = con.execute("""SELECT day, coalesce(app_id, ''), count(*) FILTER (mfa), count(*) FROM w
  WHERE channel = 'api' AND principal IN ('app_user', 'user') AND mfa IS NOT NULL
  GROUP BY ALL ORDER BY ALL""").fetchall()
took = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": took, "peak_kib": peak, "head": list(head), "apps": [list(a) for a in apps]}))
PY
done
python3 - "$work" "$records" <<'PY'
import csv, json, sys
work, n = sys.argv[1], int(sys.argv[2])
rows = []
for t in (1, 2):
    m = json.load(open(f"{work}/mfagate.{t}.json"))
    secs, kib = open(f"{work}/time.{t}").read().split()
    head = [m["portal"]["operations"], m["portal"]["mfa_operations"], m["api"]["app_user_requests"], m["api"]["mfa_requests"]]
    with open(f"{work}/exports.{t}/api_requests_summary.csv", newline="") as f:
        apps = sorted([r["LoginDate"], r["ApplicationId"], int(r["MfaCompliantRequestCount"]), int(r["TotalRequestCount"])]
                      for r in csv.DictReader(f))
    d = json.load(open(f"{work}/duckdb.{t}.json"))
    assert head == d["head"], (t, head, d["head"])
    assert apps == sorted(d["apps"]), (t, "per-application counts differ")
    rows.append((t, float(secs), int(kib), d["seconds"], d["peak_kib"]))
print("same numbers from both (headline: portal ops, portal MFA, App+User, App+User MFA):", head)
print(f"{'':8} {'mfagate rec/s/thread':>21} {'peak MiB':>9} {'DuckDB rec/s/thread':>20} {'peak MiB':>9} {'mfagate/DuckDB':>15}")
for t, ms, mk, ds, dk in rows:
    print(f"{t} thread{'s' if t > 1 else ' '} {n / ms / t:>21,.0f} {mk / 1024:>9.0f} {n / ds / t:>20,.0f} {dk / 1024:>9.0f} {ds / ms:>14.2f}x")
print(f"mfagate 2 threads / 1 thread: {rows[0][1] / rows[1][1]:.2f}x; DuckDB: {rows[0][3] / rows[1][3]:.2f}x")
PY
