//! The development identity provider's signing keys: loaded from PEM (RSA or EC, in any of the
//! usual encodings) or made at run time, and the ring it signs and publishes from, with
//! rotation: a new key signs at once, the one it replaces leaves the JWKS after a delay.

use jsonwebtoken::jwk::{Jwk, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

/// A dev key failed to load, be made, or sign.
#[derive(Debug, thiserror::Error)]
#[error("dev key: {0}")]
pub struct DevKeyError(pub(crate) String);

fn err(e: impl std::fmt::Display) -> DevKeyError {
    DevKeyError(e.to_string())
}

/// A signing key and its public JWK.
pub struct DevKey {
    kid: String,
    alg: Algorithm,
    encoding: EncodingKey,
    jwk: Jwk,
}

impl std::fmt::Debug for DevKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DevKey({}, {:?}, <private>)", self.kid, self.alg)
    }
}

impl DevKey {
    /// An RS256 key from a PKCS#8 or PKCS#1 PEM.
    pub fn rsa(kid: &str, pem: &[u8]) -> Result<DevKey, DevKeyError> {
        DevKey::new(kid, Algorithm::RS256, EncodingKey::from_rsa_pem(pem).map_err(err)?)
    }

    /// An ES256 key from a PKCS#8 PEM.
    pub fn ec(kid: &str, pem: &[u8]) -> Result<DevKey, DevKeyError> {
        DevKey::new(kid, Algorithm::ES256, EncodingKey::from_ec_pem(pem).map_err(err)?)
    }

    /// Any private key PEM: RSA (PKCS#8 or PKCS#1, RS256) or EC (PKCS#8 or SEC1; P-256 signs
    /// ES256, P-384 ES384). Without `kid`, the key id is the JWK's RFC 7638 thumbprint.
    pub fn from_pem(kid: Option<&str>, pem: &[u8]) -> Result<DevKey, DevKeyError> {
        let key = PrivateKeyDer::from_pem_slice(pem).map_err(|e| err(format!("no private key PEM ({e})")))?;
        let (alg, encoding) = match &key {
            PrivateKeyDer::Pkcs1(der) => {
                (Algorithm::RS256, EncodingKey::from_rsa_der(der.secret_pkcs1_der()))
            }
            PrivateKeyDer::Sec1(der) => ec_from(|alg| {
                aws_lc_rs::signature::EcdsaKeyPair::from_private_key_der(alg, der.secret_sec1_der()).ok()
            })?,
            PrivateKeyDer::Pkcs8(der) => pkcs8(der.secret_pkcs8_der())?,
            _ => return Err(err("not an RSA or EC private key")),
        };
        DevKey::with_kid(kid, alg, encoding)
    }

    /// A fresh key made in-process: RSA 2048 for the RS family, P-256 for ES256.
    pub fn generate(alg: Algorithm) -> Result<DevKey, DevKeyError> {
        use aws_lc_rs::encoding::AsDer;
        let der = match alg {
            Algorithm::RS256 => {
                let key = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).map_err(err)?;
                AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&key).map_err(err)?.as_ref().to_vec()
            }
            Algorithm::ES256 => {
                let alg = &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING;
                let key = aws_lc_rs::signature::EcdsaKeyPair::generate(alg).map_err(err)?;
                key.to_pkcs8v1().map_err(err)?.as_ref().to_vec()
            }
            other => return Err(err(format!("cannot make {other:?} keys (RS256 or ES256)"))),
        };
        let (alg, encoding) = pkcs8(&der)?;
        DevKey::with_kid(None, alg, encoding)
    }

    fn with_kid(kid: Option<&str>, alg: Algorithm, encoding: EncodingKey) -> Result<DevKey, DevKeyError> {
        let mut key = DevKey::new("", alg, encoding)?;
        key.kid = match kid {
            Some(kid) => kid.to_owned(),
            None => key.jwk.thumbprint(ThumbprintHash::SHA256).map_err(err)?,
        };
        key.jwk.common.key_id = Some(key.kid.clone());
        Ok(key)
    }

    fn new(kid: &str, alg: Algorithm, encoding: EncodingKey) -> Result<DevKey, DevKeyError> {
        let mut jwk = Jwk::from_encoding_key(&encoding, alg).map_err(err)?;
        jwk.common.key_id = Some(kid.to_owned());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        Ok(DevKey { kid: kid.to_owned(), alg, encoding, jwk })
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The signing algorithm.
    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    /// The public key as a JWK (with `kid`, `alg`, `use: sig`).
    pub fn jwk(&self) -> &Jwk {
        &self.jwk
    }

    /// Signs `claims` with header `{alg, kid, typ: JWT}`.
    pub fn sign(&self, claims: &Value) -> Result<String, DevKeyError> {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        header.typ = Some("JWT".into());
        jsonwebtoken::encode(&header, claims, &self.encoding).map_err(err)
    }

    /// Signs header and payload bytes exactly as given (any JSON, or none): the tests' hostile
    /// tokens, so that only their shape can be why they are refused.
    pub fn sign_parts(&self, header: &[u8], payload: &[u8]) -> Result<String, DevKeyError> {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let input = format!("{}.{}", b64.encode(header), b64.encode(payload));
        let signature =
            jsonwebtoken::crypto::sign(input.as_bytes(), &self.encoding, self.alg).map_err(err)?;
        Ok(format!("{input}.{signature}"))
    }
}

/// A PKCS#8 key: RSA, or EC on P-256 or P-384.
fn pkcs8(der: &[u8]) -> Result<(Algorithm, EncodingKey), DevKeyError> {
    if aws_lc_rs::rsa::KeyPair::from_pkcs8(der).is_ok() {
        // jsonwebtoken signs RSA from the PKCS#1 inside; its PEM reader is what takes it out.
        let pem = pem("PRIVATE KEY", der);
        return Ok((Algorithm::RS256, EncodingKey::from_rsa_pem(pem.as_bytes()).map_err(err)?));
    }
    ec_from(|alg| aws_lc_rs::signature::EcdsaKeyPair::from_pkcs8(alg, der).ok())
}

/// DER as PEM, in 64-character lines.
fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64.as_bytes().chunks(64).filter_map(|c| std::str::from_utf8(c).ok()).collect();
    format!("-----BEGIN {label}-----\n{}\n-----END {label}-----\n", lines.join("\n"))
}

/// An EC key, tried on each curve we sign with; jsonwebtoken takes EC keys as PKCS#8.
fn ec_from(
    parse: impl Fn(
        &'static aws_lc_rs::signature::EcdsaSigningAlgorithm,
    ) -> Option<aws_lc_rs::signature::EcdsaKeyPair>,
) -> Result<(Algorithm, EncodingKey), DevKeyError> {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING};
    for (curve, alg) in [
        (&ECDSA_P256_SHA256_FIXED_SIGNING, Algorithm::ES256),
        (&ECDSA_P384_SHA384_FIXED_SIGNING, Algorithm::ES384),
    ] {
        if let Some(key) = parse(curve) {
            let der = key.to_pkcs8v1().map_err(err)?;
            return Ok((alg, EncodingKey::from_ec_der(der.as_ref())));
        }
    }
    Err(err("not an RSA key, nor an EC key on P-256 or P-384"))
}

/// The standard keys from a `certs/` folder: `dev-rsa-a`, `dev-rsa-b`, `dev-ec`.
pub fn load_dev_keys(certs: &std::path::Path) -> Result<Vec<DevKey>, DevKeyError> {
    let read = |name: &str| std::fs::read(certs.join(name)).map_err(|e| err(format!("{name}: {e}")));
    Ok(vec![
        DevKey::rsa("dev-rsa-a", &read("dev-idp-rsa-a.key")?)?,
        DevKey::rsa("dev-rsa-b", &read("dev-idp-rsa-b.key")?)?,
        DevKey::ec("dev-ec", &read("dev-idp-ec.key")?)?,
    ])
}

/// What a rotation did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Rotation {
    /// The new key, published and signing now.
    pub kid: String,
    /// Its algorithm.
    pub alg: String,
    /// The key that signed until now, if any.
    pub retiring: Option<String>,
    /// When it leaves the JWKS, Unix seconds.
    pub removed_at: u64,
}

/// The keys, which of them the JWKS lists, and which one signs.
#[derive(Default)]
pub struct KeyRing {
    keys: Vec<Arc<DevKey>>,
    published: Vec<String>,
    signing: String,
    /// Published keys on their way out: the Unix second each leaves the JWKS.
    removals: HashMap<String, u64>,
}

impl KeyRing {
    /// Every key published; the first one signs.
    pub fn new(keys: Vec<DevKey>) -> KeyRing {
        let published: Vec<String> = keys.iter().map(|k| k.kid.clone()).collect();
        KeyRing {
            signing: published.first().cloned().unwrap_or_default(),
            published,
            keys: keys.into_iter().map(Arc::new).collect(),
            removals: HashMap::new(),
        }
    }

    /// The named key, published or not.
    pub fn key(&self, kid: &str) -> Result<Arc<DevKey>, DevKeyError> {
        self.keys.iter().find(|k| k.kid == kid).cloned().ok_or_else(|| err(format!("no key {kid}")))
    }

    /// The key that signs now.
    pub fn signing(&self) -> Result<Arc<DevKey>, DevKeyError> {
        self.key(&self.signing)
    }

    /// Publishes exactly these keys (pending removals are forgotten).
    pub fn publish(&mut self, kids: &[&str]) {
        self.published = kids.iter().map(|k| (*k).to_owned()).collect();
        self.removals.clear();
    }

    /// Signs new tokens with this key.
    pub fn sign_with(&mut self, kid: &str) {
        kid.clone_into(&mut self.signing);
    }

    /// The public keys listed at `now` (Unix seconds): published, and not yet removed.
    pub fn jwks(&self, now: u64) -> Vec<Jwk> {
        let listed = |k: &&Arc<DevKey>| {
            self.published.contains(&k.kid) && self.removals.get(&k.kid).is_none_or(|at| now < *at)
        };
        self.keys.iter().filter(listed).map(|k| k.jwk.clone()).collect()
    }

    /// Adds `key`, published and signing from now on; the key it replaces leaves the JWKS at
    /// `removed_at` (Unix seconds), so tokens it signed verify until then.
    pub fn rotate(&mut self, key: DevKey, removed_at: u64) -> Rotation {
        let retiring = (!self.signing.is_empty()).then(|| self.signing.clone());
        if let Some(old) = &retiring {
            self.removals.insert(old.clone(), removed_at);
        }
        let rotation = Rotation { kid: key.kid.clone(), alg: format!("{:?}", key.alg), retiring, removed_at };
        self.published.push(key.kid.clone());
        self.signing = key.kid.clone();
        self.keys.push(Arc::new(key));
        rotation
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn certs() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../certs")
    }

    #[test]
    fn any_pem_encoding_loads_and_kids_default_to_the_thumbprint() {
        let rsa = std::fs::read(certs().join("dev-idp-rsa-a.key")).unwrap();
        let ec = std::fs::read(certs().join("dev-idp-ec.key")).unwrap();
        let named = DevKey::rsa("dev-rsa-a", &rsa).unwrap();
        let any = DevKey::from_pem(None, &rsa).unwrap();
        assert_eq!(
            (any.alg(), any.jwk().algorithm.clone()),
            (Algorithm::RS256, named.jwk().algorithm.clone())
        );
        assert_eq!(any.kid(), named.jwk.thumbprint(ThumbprintHash::SHA256).unwrap());
        let ec = DevKey::from_pem(Some("e"), &ec).unwrap();
        assert_eq!((ec.kid(), ec.alg()), ("e", Algorithm::ES256));
        assert!(DevKey::from_pem(None, &std::fs::read(certs().join("saml-idp.pem")).unwrap()).is_err());
        // PKCS#1 and SEC1, as `openssl genrsa` and `openssl ecparam -genkey` write them.
        let pkcs1 = pem("RSA PRIVATE KEY", EncodingKey::from_rsa_pem(&rsa).unwrap().as_bytes());
        assert_eq!(DevKey::from_pem(None, pkcs1.as_bytes()).unwrap().kid(), any.kid());
        let p256 = &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING;
        let sec1 = aws_lc_rs::signature::EcdsaKeyPair::generate(p256).unwrap();
        let sec1 = {
            use aws_lc_rs::encoding::AsDer;
            let der: aws_lc_rs::encoding::EcPrivateKeyRfc5915Der<'_> = sec1.private_key().as_der().unwrap();
            pem("EC PRIVATE KEY", der.as_ref())
        };
        assert_eq!(DevKey::from_pem(None, sec1.as_bytes()).unwrap().alg(), Algorithm::ES256);
    }

    #[test]
    fn rotation_signs_with_the_new_key_and_removes_the_old_one_on_time() {
        let rsa = std::fs::read(certs().join("dev-idp-rsa-a.key")).unwrap();
        let mut ring = KeyRing::new(vec![DevKey::rsa("a", &rsa).unwrap()]);
        let kids = |ring: &KeyRing, now| -> Vec<String> {
            ring.jwks(now).into_iter().filter_map(|k| k.common.key_id).collect()
        };
        let fresh = DevKey::generate(Algorithm::ES256).unwrap();
        let rotation = ring.rotate(fresh, 1_600);
        assert_eq!(rotation.retiring.as_deref(), Some("a"));
        assert_eq!(ring.signing().unwrap().kid(), rotation.kid);
        assert_eq!(kids(&ring, 1_599), ["a".to_owned(), rotation.kid.clone()]);
        assert_eq!(kids(&ring, 1_600), std::slice::from_ref(&rotation.kid));
        assert!(ring.key("a").is_ok(), "a removed key still signs, for tests of its refusal");
    }

    #[test]
    fn generated_keys_sign_tokens_their_jwk_verifies() {
        for alg in [Algorithm::RS256, Algorithm::ES256] {
            let key = DevKey::generate(alg).unwrap();
            let token = key.sign(&serde_json::json!({"sub": "x"})).unwrap();
            let decoding = jsonwebtoken::DecodingKey::from_jwk(key.jwk()).unwrap();
            let mut validation = jsonwebtoken::Validation::new(alg);
            validation.required_spec_claims.clear();
            validation.validate_exp = false;
            assert!(jsonwebtoken::decode::<Value>(&token, &decoding, &validation).is_ok(), "{alg:?}");
            assert_ne!(key.kid(), DevKey::generate(alg).unwrap().kid(), "fresh keys, fresh kids");
        }
        assert!(DevKey::generate(Algorithm::HS256).is_err());
    }
}
