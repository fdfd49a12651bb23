//! The development keys published in this repository's `certs/`, private halves included: a
//! gateway that trusts one accepts whatever anybody signs with it (`mfagate token mint` does it in
//! one command). Named by what verification already computes, the JWK's RFC 7638 thumbprint and
//! the certificate's SHA-256; a test checks them against `certs/`.

/// RFC 7638 thumbprints of `certs/dev-idp-rsa-a.key`, `dev-idp-rsa-b.key` and `dev-idp-ec.key`.
const JWK_THUMBPRINTS: [&str; 3] = [
    "3Tb_2DdPE-TqxvNOm02KYpg3nExmK2iu71vtC72ooKQ",
    "nBt2eK2Sts-DqmLimJBeIkRt__Ihej5HMVlzFiszzK4",
    "EShxQQVsuGQleJ-EjMrX6wDHWvJz6v2ccdmn0PZD_hA",
];

/// SHA-256 of the DER of `certs/saml-idp.pem` and `certs/saml-untrusted.pem`, hex.
const CERTIFICATES: [&str; 2] = [
    "145d369370460bbd58ec557e3035abac415f298a9bdfa4f0e53159e996b67280",
    "493df8363ff1c32edd85f4831d6ea32cefa568e973f13f8239b407e4cb466c1a",
];

/// Whether the JWK with this thumbprint is a published development key.
pub fn is_dev_jwk(thumbprint: &str) -> bool {
    JWK_THUMBPRINTS.contains(&thumbprint)
}

/// Whether this certificate (DER) is a published development certificate.
pub fn is_dev_certificate(der: &[u8]) -> bool {
    let hex: String = crate::verify::jwt::sha256(der).iter().map(|b| format!("{b:02x}")).collect();
    CERTIFICATES.contains(&hex.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;

    fn certs(name: &str) -> Vec<u8> {
        std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../certs").join(name)).unwrap()
    }

    #[test]
    fn the_names_are_those_of_the_keys_in_certs() {
        for name in ["dev-idp-rsa-a.key", "dev-idp-rsa-b.key", "dev-idp-ec.key"] {
            let key = crate::dev::idp::DevKey::from_pem(None, &certs(name)).unwrap();
            assert!(is_dev_jwk(key.kid()), "{name}: regenerated? its thumbprint is {}", key.kid());
        }
        for name in ["saml-idp.pem", "saml-untrusted.pem"] {
            let der = CertificateDer::from_pem_slice(&certs(name)).unwrap();
            assert!(is_dev_certificate(&der), "{name}: regenerated?");
        }
        assert!(!is_dev_jwk("") && !is_dev_certificate(b""));
    }
}
