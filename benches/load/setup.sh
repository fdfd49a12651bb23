# Sourced by the load scripts: installs the Debian packages named in `need` (with sudo when not
# root), builds mfagate and the bare proxy in release, and makes `work` (a temporary folder) and
# `pids` (processes stopped, and `work` removed, on exit), and `nginx_conf NAME SERVER-BLOCK`,
# which starts an nginx with WORKERS workers (default 1) and records its pid as pid_NAME.
# Needs `target_dir`.
if ((${#need[@]})); then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
cargo build --release -q -p mfagate --bin mfagate --example bare_proxy
bin=$target_dir/release/mfagate
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

nginx_conf() { # name server-block
  cat > "$work/$1.conf" <<NGINX
worker_processes ${WORKERS:-1};
daemon off;
pid $work/$1.pid;
error_log $work/$1.error.log warn;
worker_rlimit_nofile 20000;
events { worker_connections 9000; }
http {
  access_log off;
  upstream up { server 127.0.0.1:18081; keepalive 64; }
  $2
}
NGINX
  /usr/sbin/nginx -p "$work" -c "$work/$1.conf" & pids+=($!)
  eval "pid_$1=$!"
}
