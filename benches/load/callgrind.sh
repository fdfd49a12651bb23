#!/usr/bin/env bash
# Where a request's time goes: whole-process instruction counts per request (callgrind counts
# instructions, not seconds, so the figure repeats whatever else the machine is doing).
# Runs the bare hyper proxy and mfagate (reused RS256 MFA token, decision log on) under
# callgrind, sends REQUESTS requests on KEEPALIVE connections once each is ready (start-up is
# not counted), and prints instructions per request and the top inclusive functions of mfagate.
# Usage: benches/load/callgrind.sh [requests] [connections]      (stops by itself)
set -euo pipefail
cd "$(dirname "$0")/../.."
requests=${1:-2000}; conns=${2:-4}
target_dir=${CARGO_TARGET_DIR:-target}
need=()
command -v valgrind >/dev/null || need+=(valgrind)
[ -x /usr/sbin/nginx ] || need+=(nginx-light)
source benches/load/setup.sh

nginx_conf upstream 'server { listen 127.0.0.1:18081; location / { return 200 "ok\n"; } }'
"$bin" dev-idp --certs certs >/dev/null 2>"$work/dev-idp.log" & pids+=($!)
for _ in $(seq 100); do curl -s -o /dev/null http://127.0.0.1:8082/keys && break; sleep 0.1; done
mkdir -p target/load && rm -f target/load/decisions*.jsonl
token=$("$bin" token mint --certs certs --iss "http://127.0.0.1:8082/{tenantid}/")

# measure name url auth cmd...: runs cmd under callgrind with collection off, turns it on once
# url answers, sends the requests, and prints instructions per request.
measure() {
  local name=$1 url=$2 auth=$3; shift 3
  TOKIO_WORKER_THREADS=1 RUST_LOG=warn valgrind --tool=callgrind --instr-atstart=no \
    --callgrind-out-file="$work/$name.out" "$@" >/dev/null 2>"$work/$name.log" &
  local pid=$!; pids+=($pid)
  for _ in $(seq 600); do curl -s -o /dev/null -H "Authorization: $auth" "$url" && break; sleep 0.1; done
  # Warm: keys fetched, the token verified and cached, pools filled.
  python3 benches/load/requests.py "$url" "$auth" 200 "$conns"
  callgrind_control -i on "$pid" >/dev/null 2>&1
  python3 benches/load/requests.py "$url" "$auth" "$requests" "$conns"
  callgrind_control -i off "$pid" >/dev/null 2>&1
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true   # async jobs ignore SIGINT
  local total
  total=$(callgrind_annotate "$work/$name.out" 2>/dev/null | awk '/PROGRAM TOTALS/ && !n++ {gsub(",", "", $1); print $1}')
  printf '%-28s %12d instructions per request\n' "$name" $((total / requests))
}
echo "$requests requests on $conns keep-alive connections, one worker thread each, under callgrind"
measure bare http://127.0.0.1:18095/v1/x "" "$target_dir/release/examples/bare_proxy" 127.0.0.1:18095 127.0.0.1:18081
measure mfagate http://127.0.0.1:18090/v1/x "Bearer $token" "$bin" run --no-watch-config --config benches/load/mfagate.toml
echo
echo "mfagate, top functions by inclusive instructions (of all counted):"
callgrind_annotate --inclusive=yes "$work/mfagate.out" 2>/dev/null > "$work/annotate.txt"; sed -n '/^Ir/,$p' "$work/annotate.txt" | sed -n '3,40p' | cut -c1-160
