#!/usr/bin/env bash
# Whole-process throughput and latency of mfagate beside a peer, in one run so the ratio is fair:
#   upstream alone (nginx, `return 200`), nginx as a plain reverse proxy (the peer: no auth at all),
#   a plain proxy on mfagate's own stack (examples/bare_proxy.rs: tokio + hyper, nothing else),
#   mfagate with an MFA token (verified once, then cached), mfagate refusing a non-MFA token.
# Every target gets the same worker count (WORKERS, default 1) and the same wrk load.
# Usage: benches/load.sh [seconds] [connections]    (loopback only; stops by itself)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}; conns=${2:-32}; workers=${WORKERS:-1}
need=()
command -v wrk >/dev/null || need+=(wrk)
[ -x /usr/sbin/nginx ] || need+=(nginx-light)
if ((${#need[@]})); then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
cargo build --release -q -p mfagate --bin mfagate --example bare_proxy
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

# Two nginx instances, so the upstream is a separate process for the peer and for mfagate alike.
nginx_conf() { # name server-block
  cat > "$work/$1.conf" <<NGINX
worker_processes $workers;
daemon off;
pid $work/$1.pid;
error_log $work/$1.error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  upstream up { server 127.0.0.1:18081; keepalive 64; }
  $2
}
NGINX
  /usr/sbin/nginx -p "$work" -c "$work/$1.conf" & pids+=($!)
}
nginx_conf upstream 'server { listen 127.0.0.1:18081; location / { return 200 "ok\n"; } }'
nginx_conf proxy 'server { listen 127.0.0.1:18080; location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; } }'
TOKIO_WORKER_THREADS=$workers target/release/examples/bare_proxy 127.0.0.1:18095 127.0.0.1:18081 & pids+=($!)
mkdir -p target/load && rm -f target/load/decisions*.jsonl
TOKIO_WORKER_THREADS=$workers RUST_LOG=warn target/release/mfagate demo --config benches/load.toml >/dev/null 2>"$work/mfagate.log" & pids+=($!)
for _ in $(seq 100); do curl -sf http://127.0.0.1:18091/readyz >/dev/null 2>&1 && break; sleep 0.1; done
curl -sf http://127.0.0.1:18091/readyz >/dev/null || { echo "mfagate did not become ready"; cat "$work/mfagate.log"; exit 1; }
token() { curl -sf "http://127.0.0.1:8082/token?amr=$1" | sed -E 's/.*"access_token":"([^"]+)".*/\1/'; }
mfa=$(token pwd,mfa); nomfa=$(token pwd)

run() { # name url [token]
  local args=(-t1 -c"$conns" -d"${secs}s" --latency)
  [ -n "${3:-}" ] && args+=(-H "Authorization: Bearer $3")
  local out; out=$(wrk "${args[@]}" "$2")
  local rps p50 p99 codes
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out"); p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  codes=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
  printf '%-34s %12s rps   p50 %-9s p99 %-9s non-2xx %s\n' "$1" "$rps" "$p50" "$p99" "${codes:-0}"
}
echo "wrk: 1 thread, $conns connections, ${secs}s each; $workers worker(s) per server; $(nproc) cores"
run "upstream alone (nginx)" http://127.0.0.1:18081/v1/x
run "nginx proxy, no auth (peer)" http://127.0.0.1:18080/v1/x
run "hyper proxy, no auth (floor)" http://127.0.0.1:18095/v1/x
run "mfagate, MFA token (cached)" http://127.0.0.1:18090/v1/x "$mfa"
run "mfagate, no-MFA token (401)" http://127.0.0.1:18090/v1/x "$nomfa"
echo "decision log lines written: $(wc -l < target/load/decisions.jsonl)"
