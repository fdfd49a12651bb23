#!/usr/bin/env bash
# Regenerates the development TLS certificate and key that ../production.toml names.
# DEVELOPMENT ONLY: this private key is public. In production, use your own certificate and key.
set -euo pipefail
cd "$(dirname "$0")"
openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=gateway.contoso.test" \
  -keyout tls.key -out tls.crt \
  -addext "basicConstraints=critical,CA:FALSE" \
  -addext "keyUsage=critical,digitalSignature,keyEncipherment" \
  -addext "extendedKeyUsage=serverAuth" \
  -addext "subjectAltName=DNS:gateway.contoso.test,DNS:localhost,IP:127.0.0.1" 2>/dev/null
echo "regenerated development TLS files in $(pwd)"
