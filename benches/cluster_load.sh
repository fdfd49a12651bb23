#!/usr/bin/env bash
# [cluster] under load, in one run so the figures compare: one instance without [cluster], one
# instance on Redis, and three instances on one Redis, all in front of the same nginx upstream,
# driven by wrk with the same mix: a reused MFA JWT (cached) and, every SAML_EVERY-th request, a
# SAML assertion never seen before (a first sight: verified, then one round trip to Redis).
# Prints requests per second, latency, non-2xx answers and Redis round trips per request.
# Usage: benches/cluster_load.sh [seconds] [connections]   (loopback only; stops by itself)
# SAML_EVERY (20) sets the mix; FLUSH_MS (1000) the fleet report's flush interval.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-8}; conns=${2:-48}; every=${SAML_EVERY:-20}; workers=${WORKERS:-1}
need=()
command -v wrk >/dev/null || need+=(wrk)
[ -x /usr/sbin/nginx ] || need+=(nginx-light)
command -v redis-server >/dev/null || need+=(redis-server)
if ((${#need[@]})); then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
cargo build --release -q -p mfagate --bin mfagate
bin=${CARGO_TARGET_DIR:-target}/release/mfagate
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
wait_for() { # url
  for _ in $(seq 200); do curl -sf "$1" >/dev/null 2>&1 && return 0; sleep 0.05; done
  echo "not ready: $1" >&2; exit 1
}

cat > "$work/upstream.conf" <<NGINX
worker_processes 1;
daemon off;
pid $work/upstream.pid;
error_log $work/upstream.error.log warn;
events { worker_connections 4096; }
http { access_log off; server { listen 127.0.0.1:18081; location / { return 200 "ok\n"; } } }
NGINX
/usr/sbin/nginx -p "$work" -c "$work/upstream.conf" & pids+=($!)
redis-server --port 18379 --bind 127.0.0.1 --save "" --appendonly no --dir "$work" >/dev/null & pids+=($!)
"$bin" dev-idp --certs certs >/dev/null 2>&1 & pids+=($!)
wait_for http://127.0.0.1:8082/keys

gateway_config() { # n cluster(yes|no)
  local n=$1
  cat > "$work/gw$n.toml" <<TOML
[listen]
addr = "127.0.0.1:1809$n"
[admin]
addr = "127.0.0.1:1819$n"
[decision_log]
path = "$work/decisions-$n.jsonl"
[[issuer]]
name = "dev-idp"
issuer = "http://127.0.0.1:8082/{tenantid}/"
jwks_uri = "http://127.0.0.1:8082/keys"
audiences = ["api://mfagate-demo"]
algorithms = ["RS256"]
tenants = ["11111111-2222-4333-8444-555555555555"]
[saml]
entity_id = "http://127.0.0.1:8080/saml"
[[saml_idp]]
name = "dev-saml"
entity_id = "http://127.0.0.1:8083/saml"
certificates = ["$PWD/certs/saml-idp.pem"]
[[route]]
name = "bench"
path_prefix = "/"
upstream = "http://127.0.0.1:18081"
TOML
  if [ "$2" = yes ]; then
    printf '[cluster]\nredis = "redis://127.0.0.1:18379/0"\nkey_prefix = "bench:"\nreport_flush_ms = %s\n' \
      "${FLUSH_MS:-1000}" >> "$work/gw$n.toml"
  fi
  TOKIO_WORKER_THREADS=$workers RUST_LOG=warn "$bin" run --config "$work/gw$n.toml" --no-watch-config \
    >/dev/null 2>"$work/gw$n.log" & pids+=($!)
  wait_for "http://127.0.0.1:1819$n/readyz"
}
gateway_config 0 no
for n in 1 2 3; do gateway_config "$n" yes; done

token=$(curl -sf "http://127.0.0.1:8082/token?amr=pwd,mfa" | sed -E 's/.*"access_token":"([^"]+)".*/\1/')
# Fresh assertions, one list per wrk process: enough for a generous rate; when a list runs out
# the script sends the JWT (the counts below show how many first sights there were).
per_list=$(( secs * 20000 / every ))
python3 - "$work" "$per_list" <<'PY'
import http.client, sys, urllib.parse
work, n = sys.argv[1], int(sys.argv[2])
conn = http.client.HTTPConnection("127.0.0.1", 8083)
q = urllib.parse.urlencode({"audience": "http://127.0.0.1:8080/saml", "minutes": "30"})
for name in ["single-local", "single-redis", "fleet-1", "fleet-2", "fleet-3"]:
    with open(f"{work}/{name}.txt", "w") as out:
        for _ in range(n):
            conn.request("GET", f"/assertion?{q}")
            out.write(conn.getresponse().read().decode().strip() + "\n")
PY
cat > "$work/mix.lua" <<LUA
local list, i, n = {}, 0, 0
for line in io.lines(os.getenv("ASSERTIONS")) do list[#list + 1] = line end
local jwt = "Bearer $token"
request = function()
  n = n + 1
  if n % $every == 0 and i < #list then
    i = i + 1
    return wrk.format("GET", "/v1/x", { ["Authorization"] = "SAML " .. list[i] })
  end
  return wrk.format("GET", "/v1/x", { ["Authorization"] = jwt })
end
LUA

metric() { # admin-port name
  curl -sf "http://127.0.0.1:$1/metrics" | awk -v m="$2" '$1 == m {print $2}' | head -1
}
sum_metric() { # name ports...
  local name=$1 total=0 v; shift
  for p in "$@"; do v=$(metric "$p" "$name"); total=$(awk -v a="$total" -v b="${v:-0}" 'BEGIN {print a + b}'); done
  echo "$total"
}
# wrk's summary: requests, rps, p50, p99, non-2xx.
drive() { # port list connections
  ASSERTIONS="$work/$2.txt" wrk -t1 -c"$3" -d"${secs}s" --latency -s "$work/mix.lua" "http://127.0.0.1:$1/v1/x" > "$work/$2.wrk"
}
summary() { # wrk-output-files...
  awk '/requests in/ {req += $1} /Requests\/sec/ {rps += $2} $1 == "50%" {p50 = p50 " " $2}
       $1 == "99%" {p99 = p99 " " $2} /Non-2xx/ {bad += $NF}
       END {printf "%9d req %10.0f rps   p50%s   p99%s   non-2xx %d", req, rps, p50, p99, bad}' "$@"
}
report() { # label admin-ports... -- wrk files...
  local label=$1; shift; local ports=() files=()
  while [ "$1" != -- ]; do ports+=("$1"); shift; done; shift; files=("$@")
  local req trips sights
  req=$(awk '/requests in/ {r += $1} END {print r}' "${files[@]}")
  trips=$(awk -v a="$(sum_metric mfagate_cluster_redis_round_trips_total "${ports[@]}")" -v b="$before_trips" 'BEGIN {print a - b}')
  sights=$(awk -v a="$(sum_metric mfagate_cluster_one_time_round_trips_total "${ports[@]}")" -v b="$before_sights" 'BEGIN {print a - b}')
  printf '%-36s %s   redis round trips %s (%.4f per request; one-time checks %s)\n' "$label" \
    "$(summary "${files[@]}")" "$trips" "$(awk -v t="$trips" -v r="$req" 'BEGIN {print (r > 0) ? t / r : 0}')" "$sights"
}
mark() { # admin-ports...
  before_trips=$(sum_metric mfagate_cluster_redis_round_trips_total "$@")
  before_sights=$(sum_metric mfagate_cluster_one_time_round_trips_total "$@")
}

echo "wrk: 1 thread per instance, $conns connections in all, ${secs}s; every ${every}th request a new SAML assertion; $workers worker(s) per gateway; $(nproc) cores"
mark 18190; drive 18090 single-local "$conns"
report "one instance, no [cluster]" 18190 -- "$work/single-local.wrk"
mark 18191; drive 18091 single-redis "$conns"
report "one instance on Redis" 18191 -- "$work/single-redis.wrk"
mark 18191 18192 18193
third=$(( conns / 3 ))
drive 18091 fleet-1 "$third" & w1=$!
drive 18092 fleet-2 "$third" & w2=$!
drive 18093 fleet-3 "$third" & w3=$!
wait $w1 $w2 $w3
report "three instances on one Redis" 18191 18192 18193 -- "$work/fleet-1.wrk" "$work/fleet-2.wrk" "$work/fleet-3.wrk"
echo "Redis commands processed: $(redis-cli -p 18379 info stats | awk -F: '/total_commands_processed/ {print $2}' | tr -d '\r')"
