//! A trusted SAML identity provider as configured, and the IdP metadata it may be read from.

use mfagate_policy::SamlMfaSettings;
use samael::metadata::EntityDescriptor;
use std::path::Path;

/// A trusted SAML identity provider.
#[derive(Clone)]
pub struct SamlIdp {
    /// Configured name (logged as `issuer`).
    pub name: String,
    /// The IdP's entity id (the assertion's Issuer).
    pub entity_id: String,
    /// Signing certificates (several during a rollover).
    pub certificates: Vec<Vec<u8>>,
    /// MFA locations and values.
    pub mfa: SamlMfaSettings,
    /// Clock skew, seconds.
    pub leeway_secs: u64,
    /// Single sign-on URL (HTTP-Redirect binding), for browser sign-in.
    pub sso_url: Option<String>,
    /// Accept this IdP's browser sign-in Responses (made for our ACS) as `Authorization: SAML`
    /// credentials too. Off by default: a Response copied out of a browser is not an API key.
    pub accept_sso_responses_as_api: bool,
    /// Certificates (and the SSO URL, unless `sso_url` is set) fetched from this URL and
    /// refreshed, instead of `certificates`.
    pub metadata_url: Option<MetadataUrl>,
}

/// `metadata_url` and its schedule (the rules of an issuer's key set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataUrl {
    /// Where the metadata is.
    pub url: http::Uri,
    /// Fetched again this often (or as its `Cache-Control: max-age` says, within bounds).
    pub refresh_interval: std::time::Duration,
    /// At most one early fetch (for an assertion no certificate verifies) per interval.
    pub min_refetch_interval: std::time::Duration,
}

impl std::fmt::Debug for SamlIdp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SamlIdp")
            .field("name", &self.name)
            .field("entity_id", &self.entity_id)
            .finish_non_exhaustive()
    }
}

/// The most clock skew an IdP may be given (`leeway_secs`).
pub const MAX_LEEWAY_SECS: u64 = 300;

/// First sights waiting for or in verification at once, by default.
pub const DEFAULT_MAX_PENDING: usize = 256;

/// `[saml] max_assertion_bytes` by default.
pub const DEFAULT_MAX_ASSERTION_BYTES: usize = 64 * 1024;

/// What we take from an IdP's metadata.
pub struct IdpMetadata {
    /// `entityID`.
    pub entity_id: String,
    /// DER certificates from signing (or unspecified-use) key descriptors.
    pub signing_certificates: Vec<Vec<u8>>,
    /// The HTTP-Redirect SingleSignOnService location (an absolute http(s) URL).
    pub sso_redirect_url: Option<String>,
    /// `validUntil`, seconds since the epoch: past it the document is not to be trusted.
    pub valid_until: Option<i64>,
}

/// More signing certificates than any rollover needs: each is tried on a bad signature.
pub const MAX_METADATA_CERTIFICATES: usize = 16;

/// Reads an IdP metadata file.
pub fn read_metadata(path: &Path) -> Result<IdpMetadata, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse_metadata(&text)
}

/// Reads IdP metadata (a file's or a fetched document's text).
pub fn parse_metadata(text: &str) -> Result<IdpMetadata, String> {
    if text.contains("<!DOCTYPE") {
        return Err("DTDs are not accepted in metadata".into());
    }
    let entity: EntityDescriptor = text.parse().map_err(|e| format!("not SAML metadata: {e}"))?;
    let entity_id = entity.entity_id.clone().ok_or("metadata has no entityID")?;
    let mut signing_certificates = Vec::new();
    let sso_redirect_url = entity
        .idp_sso_descriptors
        .iter()
        .flatten()
        .flat_map(|d| d.single_sign_on_services.iter())
        .find(|s| s.binding == "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect")
        .map(|s| s.location.clone());
    // It becomes the browser's Location: an absolute http(s) URL, as a configured sso_url must be.
    if let Some(url) = &sso_redirect_url {
        let uri: http::Uri = url.parse().map_err(|_| format!("SSO location is not a URL: {url:?}"))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.authority().is_none() {
            return Err(format!("SSO location is not an http(s) URL: {url:?}"));
        }
    }
    for idp in entity.idp_sso_descriptors.iter().flatten() {
        for kd in &idp.key_descriptors {
            if kd.key_use.as_deref().is_some_and(|u| !u.is_empty() && u != "signing") {
                continue;
            }
            for data in kd.key_info.x509_data.iter() {
                for cert in &data.certificates {
                    let der = samael::crypto::decode_x509_cert(cert)
                        .map_err(|e| format!("bad certificate: {e}"))?;
                    signing_certificates.push(der.der_data().to_vec());
                }
            }
        }
    }
    if signing_certificates.is_empty() {
        return Err("metadata has no IDPSSODescriptor signing certificate".into());
    }
    if signing_certificates.len() > MAX_METADATA_CERTIFICATES {
        return Err(format!("more than {MAX_METADATA_CERTIFICATES} signing certificates"));
    }
    let valid_until = entity.valid_until.map(|t| t.timestamp());
    Ok(IdpMetadata { entity_id, signing_certificates, sso_redirect_url, valid_until })
}
