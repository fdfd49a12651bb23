//! `[admin]`: the public admin listener (health, readiness, metrics) and the private one that
//! serves personal data (the report page, CSV exports, `/v1/*`) behind a bearer token or client
//! certificates.

use super::Problems;
use super::raw::parse_addr;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Shortest admin token accepted: a guessable one would guard personal data.
const MIN_TOKEN_BYTES: usize = 16;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAdmin {
    addr: String,
    private_addr: Option<String>,
    token_file: Option<PathBuf>,
    private_tls_cert: Option<PathBuf>,
    private_tls_key: Option<PathBuf>,
    private_client_ca: Option<PathBuf>,
}

/// The private admin listener.
#[derive(Debug, Clone)]
pub struct PrivateAdmin {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The bearer token every request must carry, if one is configured.
    pub token: Option<AdminToken>,
    /// TLS termination, if configured.
    pub tls: Option<PrivateTls>,
}

const UNAUTHENTICATED: &str =
    "the private admin listener serves personal data: set token_file, private_client_ca, or both";

impl PrivateAdmin {
    /// Why these settings, as they will be in force, leave the listener open to anyone: neither a
    /// token nor client certificates (a reload keeps the running TLS, so the file alone is not
    /// enough to tell).
    pub fn unauthenticated(&self) -> Option<&'static str> {
        let client_certs = self.tls.as_ref().is_some_and(|t| t.client_ca.is_some());
        (self.token.is_none() && !client_certs).then_some(UNAUTHENTICATED)
    }
}

/// TLS on the private admin listener.
#[derive(Debug, Clone)]
pub struct PrivateTls {
    /// Certificate chain (PEM).
    pub cert: PathBuf,
    /// Private key (PEM).
    pub key: PathBuf,
    /// When set, clients must present a certificate issued by one of these CAs (PEM).
    pub client_ca: Option<PathBuf>,
}

/// The admin bearer token, kept only as its SHA-256 digest: comparing digests in constant time
/// reveals neither the token's bytes nor its length.
#[derive(Clone)]
pub struct AdminToken([u8; 32]);

impl AdminToken {
    fn new(token: &[u8]) -> AdminToken {
        AdminToken(sha256(token))
    }

    /// Whether `presented` is the token.
    pub fn matches(&self, presented: &[u8]) -> bool {
        aws_lc_rs::constant_time::verify_slices_are_equal(&sha256(presented), &self.0).is_ok()
    }
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(redacted)")
    }
}

fn sha256(data: &[u8]) -> [u8; 32] {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

impl RawAdmin {
    /// The public address, and the private listener if one is configured.
    pub(super) fn validate(self, p: &mut Problems, base: &Path) -> (SocketAddr, Option<PrivateAdmin>) {
        let addr = parse_addr(p, "admin.addr", &self.addr);
        let Some(private_addr) = self.private_addr else {
            for (key, set) in [
                ("token_file", self.token_file.is_some()),
                ("private_tls_cert", self.private_tls_cert.is_some()),
                ("private_tls_key", self.private_tls_key.is_some()),
                ("private_client_ca", self.private_client_ca.is_some()),
            ] {
                if set {
                    p.add(format!("admin.{key}"), "only used with admin.private_addr");
                }
            }
            return (addr, None);
        };
        let private_addr = parse_addr(p, "admin.private_addr", &private_addr);
        let token = self.token_file.map(|f| read_token(p, &base.join(f)));
        let tls = match (self.private_tls_cert, self.private_tls_key) {
            (Some(cert), Some(key)) => Some(PrivateTls {
                cert: base.join(cert),
                key: base.join(key),
                client_ca: self.private_client_ca.map(|f| base.join(f)),
            }),
            (None, None) => {
                if self.private_client_ca.is_some() {
                    p.add("admin.private_client_ca", "needs private_tls_cert and private_tls_key");
                }
                None
            }
            _ => {
                p.add("admin", "private_tls_cert and private_tls_key go together");
                None
            }
        };
        let client_certs = tls.as_ref().is_some_and(|t| t.client_ca.is_some());
        if token.is_none() && !client_certs {
            p.add("admin.private_addr", UNAUTHENTICATED);
        }
        if tls.is_none() && !private_addr.ip().is_loopback() {
            p.warn(
                "admin.private_addr",
                "reachable from other hosts without TLS: the bearer token and the personal data travel in the clear (set private_tls_cert and private_tls_key)",
            );
        }
        (addr, Some(PrivateAdmin { addr: private_addr, token: token.flatten(), tls }))
    }
}

/// The token in `file` (read as every secret file is), without surrounding whitespace.
fn read_token(p: &mut Problems, file: &Path) -> Option<AdminToken> {
    let key = "admin.token_file";
    let text = super::secret::read_file(p, key, file)?;
    let token = text.trim().as_bytes();
    if token.len() < MIN_TOKEN_BYTES || !token.iter().all(u8::is_ascii_graphic) {
        p.add(
            key,
            format!(
                "{}: the token must be at least {MIN_TOKEN_BYTES} printable ASCII characters, without spaces",
                file.display()
            ),
        );
        return None;
    }
    super::files::warn_if_published_example(p, key, token);
    Some(AdminToken::new(token))
}

#[cfg(test)]
mod tests {
    use super::AdminToken;

    #[test]
    fn only_the_exact_token_matches() {
        let token = AdminToken::new(b"0123456789abcdef");
        assert!(token.matches(b"0123456789abcdef"));
        assert!(!token.matches(b"0123456789abcdeF"));
        assert!(!token.matches(b"0123456789abcde"));
        assert!(!token.matches(b""));
        assert_eq!(format!("{token:?}"), "AdminToken(redacted)");
    }
}
