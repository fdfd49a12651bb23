#!/usr/bin/env bash
# Builds the mfagate Debian package (release build, stripped; extra arguments go to cargo deb, e.g.
# `--profile dev --fast` as .ci/run does) with cargo-deb, and prints its path:
# target/debian/mfagate_<version>-1_<arch>.deb. Needs the packages .ci/deps installs, dpkg-dev
# (dpkg-shlibdeps finds the xmlsec, libxml2 and OpenSSL libraries it depends on) and cargo-deb:
#   cargo install cargo-deb --version 3.8.0 --locked
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v cargo-deb >/dev/null; then
  echo "cargo-deb is missing: cargo install cargo-deb --version 3.8.0 --locked" >&2
  exit 1
fi
cargo deb -p mfagate --locked --strip --output target/debian/ "$@"
