# Sourced by the load scripts: installs the Debian packages named in `need` (with sudo when not
# root), builds mfagate and the bare proxy in release, and makes `work` (a temporary folder) and
# `pids` (processes stopped, and `work` removed, on exit). Needs `target_dir`.
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
