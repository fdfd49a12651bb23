//! Files a configuration names, read at load so `check-config` finds a missing or broken one
//! before `run` does, and the development keys and certificates from the repository's `certs/`,
//! recognised wherever they were copied to.

use super::problems::Problems;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;

/// SHA-256 of the DER of every key and certificate in `certs/` (their private keys are
/// published). A unit test recomputes them from the files, so regenerating `certs/` cannot
/// leave this list behind.
const DEVELOPMENT: [(&str, &str); 11] = [
    ("ca.key", "6aedf842408765ee9b396bd90d460c0bd6d7711d0917475ac573f3791e413f18"),
    ("ca.pem", "30684d855294d544f1c642649c131f1580308301668342a46074f3fa2c5f3d9f"),
    ("dev-idp-ec.key", "2866f1784c7d268cba8b4358f7aca7d082ba402c7c0cd8ef665ad49c40684eeb"),
    ("dev-idp-rsa-a.key", "0e4775a8cf9bcab4a49a08811b6804d5e0ff0f405036ebf0a266f38f2d8a9b4b"),
    ("dev-idp-rsa-b.key", "ea3ace79d567f11b7230fc35f8fb5eb1840c8d06b84fcc32d65d4c8ebf7b4d5a"),
    ("saml-idp.key", "f6522464cf557ede204536b3e503e0b9a583c75fc5f3e802f9a6fa7a7e8df147"),
    ("saml-idp.pem", "145d369370460bbd58ec557e3035abac415f298a9bdfa4f0e53159e996b67280"),
    ("saml-untrusted.key", "a6778717c532aa3ef5951d75c4349b7f49f1bf49813af0dce777c7100e531df2"),
    ("saml-untrusted.pem", "493df8363ff1c32edd85f4831d6ea32cefa568e973f13f8239b407e4cb466c1a"),
    ("server.key", "aade937e4641d447769eff5f176fccce33daa7b7aadce44cc809fe04ed5a7505"),
    ("server.pem", "f352a7f1f957f2ef6cc1cb8f84eaeada560b9566227bd1ab32573df1f026704e"),
];

/// SHA-256 of what `examples/` publishes for development: its TLS key (DER) and its secrets (the
/// value as the gateway reads it). A configuration copied from an example must not use them
/// unwarned: the session keys seal portal sessions, the admin token opens the report.
const EXAMPLES: [(&str, &str); 6] = [
    ("examples/production/tls.key", "1f70188957692a365251b82b88b82d83f8bdb5c08314e40a5ddcba3c5bb70733"),
    ("examples/production/session.keys", "d638662080308989bbc976dedf1cd57bea858536e5b927d93a060b4c8463d913"),
    ("examples/production/session.keys", "2ef6d158b9ab0fea190a2eb8ed8d3f15d3ec53061c14839410f3880d72565f06"),
    ("examples/production/admin.token", "0330ac8fa875ddaba80168fa5128bc5ea5b1b8e9f906e9fd30249fe417ae4dbb"),
    ("examples/production/client.secret", "1cde6817f9cd178ee0129551d45762fb4843e7b082fe8e8442c63dd4eca2a04a"),
    ("examples/demo-admin-token", "ca5c1ee1503fc839be4235f0de9ad3f3fca82e7c075409c28d1847be69de894c"),
];

/// Warns at `key` if `value` (a secret, or a key's DER) is one `examples/` publishes.
pub(crate) fn warn_if_published_example(p: &mut Problems, key: &str, value: &[u8]) {
    let hash = hex_sha256(value);
    if let Some((name, _)) = EXAMPLES.iter().find(|(_, h)| *h == hash) {
        p.warn(key, format!("this is {name}, published with mfagate: DEVELOPMENT ONLY"));
    }
}

/// The session key `examples/demo.toml` publishes.
pub(crate) const DEMO_SESSION_KEY: &str = "ZGVtby1vbmx5LWtleS1kZW1vLW9ubHkta2V5LWRlbW8=";

fn hex_sha256(der: &[u8]) -> String {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The `certs/` file this DER came from, if it is one.
fn development_file(der: &[u8]) -> Option<&'static str> {
    let hash = hex_sha256(der);
    DEVELOPMENT.iter().find(|(_, h)| *h == hash).map(|(name, _)| *name)
}

/// Warns at `key` if any of `ders` is one of the development keys or certificates.
pub(crate) fn warn_if_development<'a>(p: &mut Problems, key: &str, ders: impl IntoIterator<Item = &'a [u8]>) {
    if let Some(name) = ders.into_iter().find_map(development_file) {
        p.warn(
            key,
            format!(
                "this is mfagate's development {name} from certs/, whose private key is public: \
                 DEVELOPMENT ONLY"
            ),
        );
    }
}

/// `listen.tls_cert` and `listen.tls_key`: both parse, and the key is the certificate's.
pub(crate) fn tls_pair(p: &mut Problems, cert: &Path, key: &Path) {
    let certs = match CertificateDer::pem_file_iter(cert).and_then(|it| it.collect::<Result<Vec<_>, _>>()) {
        Ok(certs) if !certs.is_empty() => Some(certs),
        Ok(_) => {
            p.add("listen.tls_cert", format!("{}: no PEM certificate in file", cert.display()));
            None
        }
        Err(e) => {
            p.add("listen.tls_cert", format!("{}: {e}", cert.display()));
            None
        }
    };
    let private = match PrivateKeyDer::from_pem_file(key) {
        Ok(k) => Some(k),
        Err(e) => {
            p.add("listen.tls_key", format!("{}: not a PEM private key: {e}", key.display()));
            None
        }
    };
    let (Some(certs), Some(private)) = (certs, private) else {
        return;
    };
    warn_if_development(p, "listen.tls_cert", certs.iter().map(|c| c.as_ref()));
    warn_if_development(p, "listen.tls_key", [private.secret_der()]);
    warn_if_published_example(p, "listen.tls_key", private.secret_der());
    crate::outbound::install_crypto_provider();
    if let Err(e) = rustls::ServerConfig::builder().with_no_client_auth().with_single_cert(certs, private) {
        p.add("listen.tls_key", format!("{}: does not go with listen.tls_cert: {e}", key.display()));
    }
}

/// `outbound.ca_file`: PEM certificates a trust store takes.
pub(crate) fn ca_file(p: &mut Problems, path: &Path) {
    let key = "outbound.ca_file";
    let certs = match CertificateDer::pem_file_iter(path).and_then(|it| it.collect::<Result<Vec<_>, _>>()) {
        Ok(certs) => certs,
        Err(e) => return p.add(key, format!("{}: {e}", path.display())),
    };
    if certs.is_empty() {
        return p.add(key, format!("{}: no PEM certificate in file", path.display()));
    }
    warn_if_development(p, key, certs.iter().map(|c| c.as_ref()));
    let mut roots = rustls::RootCertStore::empty();
    for (i, cert) in certs.into_iter().enumerate() {
        if let Err(e) = roots.add(cert) {
            p.add(key, format!("{}: certificate {i}: {e}", path.display()));
        }
    }
}

/// `jwks_file`: a JSON Web Key Set with at least one key (it is read again on each refresh).
pub(crate) fn jwks_file(p: &mut Problems, key: &str, path: &Path) {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => return p.add(key, format!("cannot read {}: {e}", path.display())),
    };
    match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(v) if v["keys"].as_array().is_some_and(|k| !k.is_empty()) => {}
        Ok(_) => p.add(key, format!("{}: a JWKS needs a non-empty \"keys\" array", path.display())),
        Err(e) => p.add(key, format!("{}: not JSON: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every PEM section's DER in `path` (for the development check on files read elsewhere).
    fn pem_ders(path: &Path) -> Vec<Vec<u8>> {
        use rustls_pki_types::pem::SectionKind;
        let Ok(iter) = <(SectionKind, Vec<u8>)>::pem_file_iter(path) else {
            return Vec::new();
        };
        iter.filter_map(Result::ok).map(|(_, der)| der).collect()
    }

    #[test]
    fn the_examples_list_matches_examples() {
        let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let key = std::fs::read(examples.join(EXAMPLES[0].0)).unwrap();
        let der = PrivateKeyDer::from_pem_slice(&key).unwrap();
        let mut values = vec![der.secret_der().to_vec()];
        let keys = std::fs::read_to_string(examples.join(EXAMPLES[1].0)).unwrap();
        values.extend(keys.lines().filter(|l| !l.starts_with('#')).map(|l| l.as_bytes().to_vec()));
        for (name, _) in &EXAMPLES[3..] {
            values.push(std::fs::read_to_string(examples.join(name)).unwrap().trim().as_bytes().to_vec());
        }
        let hashes: Vec<String> = values.iter().map(|v| hex_sha256(v)).collect();
        assert_eq!(
            hashes,
            EXAMPLES.map(|(_, h)| h.to_owned()),
            "a file of examples/ changed: update EXAMPLES"
        );
    }

    #[test]
    fn the_development_list_matches_certs() {
        let certs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../certs");
        for (name, hash) in DEVELOPMENT {
            let ders = pem_ders(&certs.join(name));
            assert_eq!(ders.len(), 1, "{name}");
            assert_eq!(hex_sha256(&ders[0]), hash, "{name} was regenerated: update DEVELOPMENT");
        }
        let mut listed: Vec<String> = std::fs::read_dir(&certs)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".pem") || n.ends_with(".key"))
            .collect();
        listed.sort();
        assert_eq!(listed, DEVELOPMENT.map(|(n, _)| n.to_owned()));
    }
}
