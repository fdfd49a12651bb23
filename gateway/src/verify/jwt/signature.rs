//! A JWS signature checked with a key parsed once, when its key set loads (jsonwebtoken 11 rebuilt
//! an RSA key from `n`/`e`, or re-read an EC point, on every verify). The aws-lc-rs algorithms are
//! those jsonwebtoken's aws-lc backend used, so the same signatures pass: RSA of 2048 to 8192 bits
//! (PKCS#1 v1.5 and PSS), ECDSA on P-256/P-384 with the JOSE fixed `r||s` format, Ed25519. HS* has
//! none: HMAC keys never reach a key set.

use aws_lc_rs::signature::{self as sig, ParsedPublicKey, RsaPublicKeyComponents};
use jsonwebtoken::{Algorithm, DecodingKey, DecodingKeyKind};

/// A public key, parsed for each algorithm it may check.
pub struct ParsedKey {
    /// An algorithm absent here was one the key could not be read for (an EC point of the other
    /// curve): its signatures fail, as jsonwebtoken's would have.
    by_alg: Vec<(Algorithm, ParsedPublicKey)>,
}

impl ParsedKey {
    /// Parses `key` for each algorithm of its family (only `pinned`, when the JWK names one).
    /// `None` when it parses for none of them: no signature could ever verify with it. (A JWK
    /// pinned to another family's algorithm has none to parse for; the key set's algorithm check
    /// refuses every token naming it, as it did.)
    pub fn new(key: &DecodingKey, pinned: Option<Algorithm>) -> Option<ParsedKey> {
        let algorithms: Vec<Algorithm> = key
            .family()
            .algorithms()
            .iter()
            .copied()
            .filter(|alg| pinned.is_none_or(|p| p == *alg))
            .collect();
        let by_alg: Vec<_> = algorithms.iter().filter_map(|alg| Some((*alg, parse(key, *alg)?))).collect();
        (algorithms.is_empty() || !by_alg.is_empty()).then_some(ParsedKey { by_alg })
    }

    /// Whether `signature` (decoded) is this key's signature of `message` under `alg`.
    pub fn verifies(&self, alg: Algorithm, message: &[u8], signature: &[u8]) -> bool {
        self.by_alg
            .iter()
            .find(|(a, _)| *a == alg)
            .is_some_and(|(_, key)| key.verify_sig(message, signature).is_ok())
    }
}

/// What jsonwebtoken verified `alg` with; RSA's size bounds are checked at each verify.
fn rsa_parameters(alg: Algorithm) -> Option<&'static sig::RsaParameters> {
    Some(match alg {
        Algorithm::RS256 => &sig::RSA_PKCS1_2048_8192_SHA256,
        Algorithm::RS384 => &sig::RSA_PKCS1_2048_8192_SHA384,
        Algorithm::RS512 => &sig::RSA_PKCS1_2048_8192_SHA512,
        Algorithm::PS256 => &sig::RSA_PSS_2048_8192_SHA256,
        Algorithm::PS384 => &sig::RSA_PSS_2048_8192_SHA384,
        Algorithm::PS512 => &sig::RSA_PSS_2048_8192_SHA512,
        _ => return None,
    })
}

fn algorithm(alg: Algorithm) -> Option<&'static dyn sig::VerificationAlgorithm> {
    if let Some(rsa) = rsa_parameters(alg) {
        return Some(rsa);
    }
    Some(match alg {
        Algorithm::ES256 => &sig::ECDSA_P256_SHA256_FIXED,
        Algorithm::ES384 => &sig::ECDSA_P384_SHA384_FIXED,
        Algorithm::EdDSA => &sig::ED25519,
        _ => return None,
    })
}

/// The key as jsonwebtoken read it at each verify: RSA from its components (or DER), EC as the
/// uncompressed point `04 || x || y`, Ed25519 as its 32 bytes.
fn parse(key: &DecodingKey, alg: Algorithm) -> Option<ParsedPublicKey> {
    match key.kind() {
        DecodingKeyKind::RsaModulusExponent { n, e } => {
            RsaPublicKeyComponents { n, e }.to_parsed_public_key(rsa_parameters(alg)?).ok()
        }
        DecodingKeyKind::SecretOrDer(bytes) => ParsedPublicKey::new(algorithm(alg)?, bytes).ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::signature::KeyPair;

    #[test]
    fn a_key_is_parsed_for_its_family_or_its_pinned_algorithm_only() {
        let ec = sig::EcdsaKeyPair::generate(&sig::ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        let point = ec.public_key().as_ref();
        let der = DecodingKey::from_ec_der(point);
        let parsed = ParsedKey::new(&der, None).unwrap();
        // P-256 only: the point is not one of P-384.
        assert_eq!(parsed.by_alg.iter().map(|(a, _)| *a).collect::<Vec<_>>(), [Algorithm::ES256]);
        let message = b"header.payload";
        let signature = ec.sign(&aws_lc_rs::rand::SystemRandom::new(), message).unwrap();
        assert!(parsed.verifies(Algorithm::ES256, message, signature.as_ref()));
        assert!(!parsed.verifies(Algorithm::ES384, message, signature.as_ref()));
        assert!(!parsed.verifies(Algorithm::ES256, b"header.payload2", signature.as_ref()));
        assert!(ParsedKey::new(&der, Some(Algorithm::ES384)).is_none());
        let other_family = ParsedKey::new(&der, Some(Algorithm::RS256)).unwrap();
        assert!(other_family.by_alg.is_empty());
        assert!(ParsedKey::new(&DecodingKey::from_ec_der(&point[1..]), None).is_none(), "not a point");
        assert!(ParsedKey::new(&DecodingKey::from_secret(b"k"), None).is_none(), "HMAC has no parsed key");
        // RSA components with a leading zero byte are refused (as aws-lc-rs refused them at verify).
        let rsa = DecodingKey::from_rsa_raw_components(&[0, 0xc1, 0x01], &[1, 0, 1]);
        assert!(ParsedKey::new(&rsa, None).is_none());
        let rsa = DecodingKey::from_rsa_raw_components(&[0xc1, 0x01], &[1, 0, 1]);
        assert_eq!(ParsedKey::new(&rsa, None).unwrap().by_alg.len(), 6, "sizes are checked at verify");
    }
}
