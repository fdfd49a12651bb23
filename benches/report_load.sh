#!/usr/bin/env bash
# Times `mfagate report` over many decision records: generates N records (default 1,000,000, mixed
# portal / App+User / App-only, 200 users, 4 applications), then reports over the file passed
# TIMES times (default 10: ten million records), printing wall time and peak memory.
# benches/report_vs_duckdb.sh compares it with DuckDB at equal threads.
# Usage: benches/report_load.sh [records] [times]
set -euo pipefail
cd "$(dirname "$0")/.."
records=${1:-1000000}; times=${2:-10}
cargo build --release -q -p mfagate
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
python3 benches/report_records.py "$records" "$work/log.jsonl"
logs=(); for _ in $(seq "$times"); do logs+=("$work/log.jsonl"); done
echo "records: $((records * times)) ($(du -h "$work/log.jsonl" | cut -f1) x $times)"
/usr/bin/time -f "wall %e s, peak memory %M KiB" target/release/mfagate report --log "${logs[@]}" \
  --now 2026-01-01T00:00:00Z --out "$work/exports" > /dev/null
