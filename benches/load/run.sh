#!/usr/bin/env bash
# mfagate beside its peers, whole process, one run (so the ratios are fair on a shared machine):
#   upstream    nginx `return 200` alone (the floor under every proxy)
#   nginx       nginx as a plain reverse proxy, no authentication (the peer)
#   haproxy     HAProxy with jwt_verify on the same RS256 token and key, plus iss/aud/exp/amr checks
#   bare        examples/bare_proxy.rs: tokio + hyper + hyper-util's pool, nothing else
#   reused      mfagate, one RS256 MFA token (verified once, then cached): the normal case
#   new-token   mfagate, a token it has never seen on every request (a pool minted beforehand)
#   saml        mfagate, one SAML 2.0 MFA bearer assertion (cached after the first request)
#   saml-new    mfagate, a new SAML 2.0 assertion on every request
# Every target gets the same worker count (WORKERS, default 1) and the same wrk load; the targets
# alternate for ROUNDS rounds and the table shows each one's median round. Then latency at half
# of mfagate's maximum rate (paced), memory idle and with CONNS_HELD open connections.
# Usage: benches/load/run.sh [seconds] [connections] [rounds]      (loopback only; stops by itself)
# Env: WORKERS (1), NEW_SECS seconds of the new-credential modes (2), POOL new tokens per round
#      (30000), SAML_POOL (8000), CONNS_HELD (10000), CARGO_TARGET_DIR (target).
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-10}; conns=${2:-64}; rounds=${3:-3}
workers=${WORKERS:-1}; pool=${POOL:-30000}; saml_pool=${SAML_POOL:-8000}
new_secs=${NEW_SECS:-2}
target_dir=${CARGO_TARGET_DIR:-target}
here=benches/load
need=()
command -v wrk >/dev/null || need+=(wrk)
[ -x /usr/sbin/nginx ] || need+=(nginx-light)
[ -x /usr/sbin/haproxy ] || need+=(haproxy)
command -v openssl >/dev/null || need+=(openssl)
source benches/load/setup.sh
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
# mfagate keeps two descriptors per client connection plus 256 (README, max_connections): hold
# as many as this machine's open-files limit lets it take, at most 10,000.
fits=$(( ($(ulimit -n) - 256) / 2 - 64 ))
held=${CONNS_HELD:-$(( fits < 10000 ? fits : 10000 ))}

wait_for() { # url [what]
  for _ in $(seq 150); do curl -s -o /dev/null "$1" && return 0; sleep 0.1; done
  echo "${2:-$1} did not start"; exit 1
}
rss_kib() { # pid...: resident memory of the processes and their children, KiB
  local total=0 p
  for p in "$@" $(for q in "$@"; do pgrep -P "$q" || true; done); do
    total=$((total + $(awk '/^VmRSS/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)))
  done
  echo "$total"
}

# The upstream, and nginx as the peer proxy: two processes, as for every other proxy.
nginx_conf upstream 'server { listen 127.0.0.1:18081 backlog=4096; location / { return 200 "ok\n"; } }'
nginx_conf proxy 'server { listen 127.0.0.1:18080 backlog=4096; location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; } }'

# HAProxy 2.6 verifying the same token: signature with the same key, then what mfagate checks.
openssl pkey -in certs/dev-idp-rsa-a.key -pubout -out "$work/dev-idp.pub.pem" 2>/dev/null
tenant=11111111-2222-4333-8444-555555555555
cat > "$work/haproxy.cfg" <<HAP
global
  nbthread $workers
  maxconn 9000
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend fe
  bind 127.0.0.1:18085
  http-request set-var(txn.bearer) http_auth_bearer
  http-request set-var(txn.alg) var(txn.bearer),jwt_header_query('\$.alg')
  http-request deny deny_status 401 unless { var(txn.alg) -m str RS256 }
  http-request deny deny_status 401 unless { var(txn.bearer),jwt_verify(txn.alg,"$work/dev-idp.pub.pem") -m int 1 }
  http-request set-var(txn.iss) var(txn.bearer),jwt_payload_query('\$.iss')
  http-request deny deny_status 401 unless { var(txn.iss) -m str http://127.0.0.1:8082/$tenant/ }
  http-request set-var(txn.aud) var(txn.bearer),jwt_payload_query('\$.aud')
  http-request deny deny_status 401 unless { var(txn.aud) -m str api://mfagate-demo }
  http-request set-var(txn.exp) var(txn.bearer),jwt_payload_query('\$.exp','int')
  http-request set-var(txn.now) date()
  http-request deny deny_status 401 if { var(txn.exp),sub(txn.now) -m int le 0 }
  http-request set-var(txn.amr0) var(txn.bearer),jwt_payload_query('\$.amr[0]')
  http-request set-var(txn.amr1) var(txn.bearer),jwt_payload_query('\$.amr[1]')
  http-request set-var(txn.amr2) var(txn.bearer),jwt_payload_query('\$.amr[2]')
  http-request deny deny_status 401 unless { var(txn.amr0) -m str mfa } || { var(txn.amr1) -m str mfa } || { var(txn.amr2) -m str mfa }
  default_backend up
backend up
  http-reuse always
  server up 127.0.0.1:18081
HAP
/usr/sbin/haproxy -q -f "$work/haproxy.cfg" & pids+=($!); pid_haproxy=$!

TOKIO_WORKER_THREADS=$workers "$target_dir/release/examples/bare_proxy" 127.0.0.1:18095 127.0.0.1:18081 & pids+=($!)
pid_bare=$!
"$bin" dev-idp --certs certs >/dev/null 2>"$work/dev-idp.log" & pids+=($!)
wait_for http://127.0.0.1:8082/keys "mfagate dev-idp"
mkdir -p target/load && rm -f target/load/decisions*.jsonl
TOKIO_WORKER_THREADS=$workers RUST_LOG=warn "$bin" run --no-watch-config --config "$here/mfagate.toml" \
  >/dev/null 2>"$work/mfagate.log" & pids+=($!)
pid_mfagate=$!
for _ in $(seq 150); do curl -sf http://127.0.0.1:18091/readyz >/dev/null 2>&1 && break; sleep 0.1; done
curl -sf http://127.0.0.1:18091/readyz >/dev/null || { echo "mfagate did not become ready"; cat "$work/mfagate.log"; exit 1; }
wait_for http://127.0.0.1:18081/ upstream; wait_for http://127.0.0.1:18080/ "nginx proxy"
wait_for http://127.0.0.1:18085/ haproxy; wait_for http://127.0.0.1:18095/ "bare proxy"
idle_kib=$(rss_kib "$pid_mfagate")

iss="http://127.0.0.1:8082/{tenantid}/"
mfa=$("$bin" token mint --certs certs --iss "$iss")
saml=$("$bin" token saml --certs certs --audience http://127.0.0.1:18090/saml)
check() { # name url header expected-status
  local got; got=$(curl -s -o /dev/null -w '%{http_code}' -H "$3" "$2")
  [ "$got" = "$4" ] || { echo "$1: expected $4, got $got"; exit 1; }
}
check mfagate http://127.0.0.1:18090/v1/x "Authorization: Bearer $mfa" 200
check "mfagate, SAML" http://127.0.0.1:18090/v1/x "Authorization: SAML $saml" 200
check haproxy http://127.0.0.1:18085/v1/x "Authorization: Bearer $mfa" 200
check "haproxy, no MFA" http://127.0.0.1:18085/v1/x "Authorization: Bearer $("$bin" token mint --certs certs --iss "$iss" --amr pwd)" 401
check "mfagate, no MFA" http://127.0.0.1:18090/v1/x "Authorization: Bearer $("$bin" token mint --certs certs --iss "$iss" --amr pwd)" 401

echo "minting $((pool * rounds)) tokens and $((saml_pool * rounds)) SAML assertions for the new-credential modes..."
"$bin" token mint --certs certs --iss "$iss" --ttl 7200 --count $((pool * rounds)) | sed 's/^/Bearer /' > "$work/tokens"
split -d -l "$pool" "$work/tokens" "$work/tokens."
"$bin" token saml --certs certs --audience http://127.0.0.1:18090/saml --minutes 120 --count $((saml_pool * rounds)) \
  | sed 's/^/SAML /' > "$work/saml"
split -d -l "$saml_pool" "$work/saml" "$work/saml."

# name -> "url|auth|pool-file-prefix|pid"
declare -A spec=(
  [upstream]="http://127.0.0.1:18081/v1/x|||$pid_upstream"
  [nginx]="http://127.0.0.1:18080/v1/x|||$pid_proxy"
  [haproxy]="http://127.0.0.1:18085/v1/x|Bearer $mfa||$pid_haproxy"
  [bare]="http://127.0.0.1:18095/v1/x|||$pid_bare"
  [reused]="http://127.0.0.1:18090/v1/x|Bearer $mfa||$pid_mfagate"
  [new-token]="http://127.0.0.1:18090/v1/x||tokens|$pid_mfagate"
  [saml]="http://127.0.0.1:18090/v1/x|SAML $saml||$pid_mfagate"
  [saml-new]="http://127.0.0.1:18090/v1/x||saml|$pid_mfagate"
)
order=(upstream nginx haproxy bare reused new-token saml saml-new)
declare -A results
# wrk's latencies in milliseconds, whatever unit it printed.
ms_awk='function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }'
one() { # name round -> "rps p50_ms p99_ms errors"
  local url auth prefix pid args out
  IFS='|' read -r url auth prefix pid <<<"${spec[$1]}"
  args=(-t1 -c"$conns" --latency)
  [ -n "$auth" ] && args+=(-H "Authorization: $auth")
  if [ -n "$prefix" ]; then
    out=$(POOL="$work/$prefix.$(printf %02d "$2")" wrk "${args[@]}" -d"${new_secs}s" -s "$here/pool.lua" "$url")
    grep -q "POOL EXHAUSTED" <<<"$out" && echo "$1: the pool ran out (raise POOL / SAML_POOL or lower NEW_SECS)" >&2
  else
    out=$(wrk "${args[@]}" -d"${secs}s" "$url")
  fi
  awk -v rss="$(rss_kib "$pid")" "$ms_awk"'
    /Requests\/sec/ { rps = $2 } $1 == "50%" { p50 = ms($2) } $1 == "99%" { p99 = ms($2) }
    /Non-2xx/ { err += $NF } /Socket errors/ { for (i = 4; i <= NF; i += 2) err += $i }
    END { printf "%.0f %.2f %.2f %d %d\n", rps, p50, p99, err, rss }' <<<"$out"
}
echo "wrk: 1 thread, $conns connections, ${secs}s per target per round, $rounds rounds; $workers worker(s) per server; $(nproc) cores"
for r in $(seq 0 $((rounds - 1))); do
  for name in "${order[@]}"; do results[$name]+="$(one "$name" "$r");"; done
  echo "round $((r + 1)) done"
done
median() { # "a b c d;..." field -> the line whose field is the median
  tr ';' '\n' <<<"$1" | sed '/^$/d' | sort -n -k"$2" | awk '{ l[NR] = $0 } END { print l[int((NR + 1) / 2)] }'
}
declare -A row
printf '\n%-10s %10s %9s %9s %7s %9s\n' target rps p50_ms p99_ms errors rss_MiB
for name in "${order[@]}"; do
  row[$name]=$(median "${results[$name]}" 1)
  read -r rps p50 p99 err rss <<<"${row[$name]}"
  printf '%-10s %10s %9s %9s %7s %9.1f\n' "$name" "$rps" "$p50" "$p99" "$err" "$(echo "$rss / 1024" | bc -l)"
done
rate() { cut -d' ' -f1 <<<"${row[$1]}"; }
ratio() { echo "scale=2; $(rate "$1") / $(rate "$2")" | bc -l; }
echo
echo "reused / nginx      $(ratio reused nginx)   (target >= 0.95)"
echo "reused / haproxy    $(ratio reused haproxy)   (target >= 2)"
echo "reused / bare       $(ratio reused bare)   (target >= 0.9)"
echo "new-token / reused  $(ratio new-token reused)"
echo "saml-new / saml     $(ratio saml-new saml)"

# Latency at half of mfagate's maximum rate, paced: the same offered rate straight to the
# upstream and through mfagate.
half=$(( $(rate reused) / 2 ))
delay=$(( conns * 1000 / (half > 0 ? half : 1) ))
paced() { # url auth
  DELAY_MS=$delay AUTH="$2" wrk -t1 -c"$conns" -d"${secs}s" --latency -s "$here/paced.lua" "$1" \
    | awk "$ms_awk"'
           /Requests\/sec/ { rps = $2 } $1 == "50%" { p50 = ms($2) } $1 == "99%" { p99 = ms($2) }
           END { printf "%.0f %.2f %.2f\n", rps, p50, p99 }'
}
read -r up_rps up_p50 up_p99 <<<"$(paced http://127.0.0.1:18081/v1/x "")"
read -r gw_rps gw_p50 gw_p99 <<<"$(paced http://127.0.0.1:18090/v1/x "Bearer $mfa")"
echo
echo "paced at about half of mfagate's rate ($conns connections, ${delay} ms between requests each):"
printf '  upstream alone   %7s rps  p50 %6s ms  p99 %6s ms\n' "$up_rps" "$up_p50" "$up_p99"
printf '  through mfagate  %7s rps  p50 %6s ms  p99 %6s ms\n' "$gw_rps" "$gw_p50" "$gw_p99"
echo "  p99 added        $(echo "$gw_p99 - $up_p99" | bc -l) ms   (target <= 0.5)"

# Memory: idle (keys loaded, before any load), and with $held keep-alive connections that have
# each made one request and stay open.
held_kib=$(python3 "$here/hold.py" 127.0.0.1 18090 "$held" "Bearer $mfa" "$pid_mfagate")
echo
echo "mfagate resident memory: idle $(( idle_kib / 1024 )) MiB (target <= 60), with $held open connections $(( held_kib / 1024 )) MiB (target <= 200)"
echo "decision log lines written: $(cat target/load/decisions*.jsonl 2>/dev/null | wc -l)"
