#!/usr/bin/env bash
# Builds the fuzz targets (cargo-fuzz, libFuzzer, AddressSanitizer) and runs each for a bounded
# time from its committed seeds. Fails if any target crashes (a panic is a failed invariant);
# prints each target's executions from libFuzzer's final stats.
#
#   fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]     # default: 60 s, every target
#
# New inputs go to fuzz/target/corpus/<target> (not committed), crashes to
# fuzz/artifacts/<target>/; replay one with
#   RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir fuzz <target> fuzz/artifacts/<target>/crash-...
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
shift || true
targets=("$@")
((${#targets[@]})) || targets=(path headers config saml_structure saml_verify token)
# cargo-fuzz needs nightly flags (-Zsanitizer, -Cpasses=sancov): the stable toolchain allows them so.
export RUSTC_BOOTSTRAP=1
sanitizer=(-s "${FUZZ_SANITIZER:-address}")
# FUZZ_PROFILE=dev builds unoptimized: a third of the cold build time, a quarter of the speed.
[ "${FUZZ_PROFILE:-release}" = dev ] && sanitizer+=(--dev)
cargo fuzz build --fuzz-dir fuzz "${sanitizer[@]}"
mkdir -p fuzz/target/logs
failed=()
for t in "${targets[@]}"; do
  mkdir -p "fuzz/target/corpus/$t"
  dict=()
  case "$t" in
    saml_*) dict=(-dict=fuzz/dict/saml.dict) ;;
    path | headers | config) dict=("-dict=fuzz/dict/$t.dict") ;;
  esac
  log="fuzz/target/logs/$t.log"
  status=ok
  # The first corpus folder takes the new inputs; the committed seeds are only read.
  cargo fuzz run --fuzz-dir fuzz "${sanitizer[@]}" "$t" "fuzz/target/corpus/$t" "fuzz/corpus/$t" -- \
    -max_total_time="$secs" -timeout=10 -print_final_stats=1 "${dict[@]}" >"$log" 2>&1 || status=FAILED
  execs=$(awk '/^stat::number_of_executed_units:/ {print $2}' "$log" | tail -n 1)
  printf '%-15s %-7s %10s executions in %s s\n' "$t" "$status" "${execs:-?}" "$secs"
  if [ "$status" != ok ]; then
    failed+=("$t")
    grep -E 'panicked|ERROR|SUMMARY|Test unit written|^artifact_prefix' "$log" | head -n 20 >&2 || true
    echo "full log: $log" >&2
  fi
done
if ((${#failed[@]})); then
  echo "fuzzing failed: ${failed[*]}" >&2
  exit 1
fi
