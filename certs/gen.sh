#!/usr/bin/env bash
# Regenerates every development key and certificate in this folder.
# DEVELOPMENT AND TESTS ONLY: these private keys are public. Never trust them in production.
set -euo pipefail
cd "$(dirname "$0")"
days=3650

# Development identity provider: two RSA signing keys (a, then b for rotation tests) and one P-256 key.
for k in a b; do
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "dev-idp-rsa-$k.key" 2>/dev/null
done
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out dev-idp-ec.key 2>/dev/null

# A local CA and a server certificate for localhost / 127.0.0.1 (TLS listener and HTTPS key-server tests).
openssl req -x509 -newkey rsa:2048 -nodes -days "$days" -subj "/CN=mfagate development CA" \
  -keyout ca.key -out ca.pem -addext "basicConstraints=critical,CA:TRUE" \
  -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout server.key -out server.csr 2>/dev/null
cat > server.ext <<EXT
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1
EXT
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days "$days" \
  -extfile server.ext -out server.pem 2>/dev/null
rm -f server.csr server.ext ca.srl

# SAML identity provider signing certificate (self-signed, as IdP metadata carries it), and a second
# one the gateway does not trust, for negative tests.
for n in saml-idp saml-untrusted; do
  openssl req -x509 -newkey rsa:2048 -nodes -days "$days" -subj "/CN=$n.mfagate.test" \
    -keyout "$n.key" -out "$n.pem" 2>/dev/null
done
echo "regenerated development keys in $(pwd)"
