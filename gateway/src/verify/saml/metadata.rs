//! IdP metadata: the entity id and its signing certificates (all of them, for rollover).

use samael::metadata::EntityDescriptor;
use std::path::Path;

/// What we take from an IdP's metadata.
pub struct IdpMetadata {
    /// `entityID`.
    pub entity_id: String,
    /// DER certificates from signing (or unspecified-use) key descriptors.
    pub signing_certificates: Vec<Vec<u8>>,
    /// The HTTP-Redirect SingleSignOnService location.
    pub sso_redirect_url: Option<String>,
}

/// Reads an IdP metadata file.
pub fn read(path: &Path) -> Result<IdpMetadata, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
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
    Ok(IdpMetadata { entity_id, signing_certificates, sso_redirect_url })
}
