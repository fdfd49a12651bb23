//! Development SAML assertions, signed at run time with `certs/saml-idp.key` (tests, benches,
//! demo). DEVELOPMENT ONLY: the key is public.

use crate::markup::escape;
use crate::verify::saml::{NS_ASSERTION, NS_PROTOCOL, NS_SAML1};
use mfagate_policy::{ATTR_AUTHN_METHODS_REFERENCES, MULTIPLE_AUTHN};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use samael::crypto::{Crypto, CryptoProvider};

/// Signing failed.
#[derive(Debug, thiserror::Error)]
#[error("dev SAML: {0}")]
pub struct DevSamlError(String);

/// What an assertion says.
#[derive(Debug, Clone)]
pub struct AssertionSpec {
    /// `ID`.
    pub id: String,
    /// `Issuer` (the IdP's entity id).
    pub issuer: String,
    /// `Audience` (the SP's entity id).
    pub audience: String,
    /// Bearer `Recipient`.
    pub recipient: Option<String>,
    /// `InResponseTo`.
    pub in_response_to: Option<String>,
    /// `NameID`.
    pub name_id: String,
    /// `IssueInstant` and the start of validity, Unix seconds.
    pub issued: u64,
    /// `NotOnOrAfter`, Unix seconds.
    pub not_on_or_after: u64,
    /// `AuthnContextClassRef`, if any.
    pub class_ref: Option<String>,
    /// Attributes.
    pub attributes: Vec<(String, Vec<String>)>,
}

impl AssertionSpec {
    /// A five-minute MFA assertion (class reference `multipleauthn`) for the dev user.
    pub fn new(issuer: &str, audience: &str, now: u64) -> AssertionSpec {
        AssertionSpec {
            // IDs must be unique, not secret: the request-ID generator serves if the CSPRNG fails.
            id: format!("_a{}", crate::ids::random_token().unwrap_or_else(crate::ids::request_id)),
            issuer: issuer.into(),
            audience: audience.into(),
            recipient: None,
            in_response_to: None,
            name_id: "adele@contoso.test".into(),
            issued: now,
            not_on_or_after: now + 300,
            class_ref: Some(MULTIPLE_AUTHN.into()),
            attributes: vec![
                (
                    "http://schemas.microsoft.com/identity/claims/objectidentifier".into(),
                    vec!["00000000-0000-4000-8000-0000000b0001".into()],
                ),
                (
                    "http://schemas.microsoft.com/identity/claims/tenantid".into(),
                    vec![crate::dev::idp::DEV_TENANT.into()],
                ),
                (
                    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn".into(),
                    vec!["adele@contoso.test".into()],
                ),
            ],
        }
    }

    /// The same assertion carrying MFA in `authnmethodsreferences` instead of the class reference.
    pub fn with_amr_attribute(mut self, values: &[&str]) -> AssertionSpec {
        self.attributes
            .push((ATTR_AUTHN_METHODS_REFERENCES.into(), values.iter().map(|v| (*v).to_owned()).collect()));
        self
    }

    /// The assertion XML with an empty signature template (Issuer, Signature, Subject, ...).
    pub fn to_xml(&self) -> String {
        let t = |secs: u64| crate::clock::rfc3339_millis(secs * 1000);
        let mut subject_data = format!(r#" NotOnOrAfter="{}""#, t(self.not_on_or_after));
        if let Some(r) = &self.recipient {
            subject_data.push_str(&format!(r#" Recipient="{}""#, escape(r)));
        }
        if let Some(r) = &self.in_response_to {
            subject_data.push_str(&format!(r#" InResponseTo="{}""#, escape(r)));
        }
        let authn = self.class_ref.as_ref().map_or(String::new(), |c| {
            format!(
                r#"<saml:AuthnStatement AuthnInstant="{}"><saml:AuthnContext><saml:AuthnContextClassRef>{}</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement>"#,
                t(self.issued),
                escape(c)
            )
        });
        let attributes: String = self
            .attributes
            .iter()
            .map(|(name, values)| {
                let v: String = values
                    .iter()
                    .map(|v| format!("<saml:AttributeValue>{}</saml:AttributeValue>", escape(v)))
                    .collect();
                format!(r#"<saml:Attribute Name="{}">{v}</saml:Attribute>"#, escape(name))
            })
            .collect();
        format!(
            r#"<saml:Assertion xmlns:saml="{NS_ASSERTION}" ID="{id}" Version="2.0" IssueInstant="{issued}"><saml:Issuer>{issuer}</saml:Issuer>{sig}<saml:Subject><saml:NameID>{name}</saml:NameID><saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer"><saml:SubjectConfirmationData{subject_data}/></saml:SubjectConfirmation></saml:Subject><saml:Conditions NotBefore="{issued}" NotOnOrAfter="{until}"><saml:AudienceRestriction><saml:Audience>{aud}</saml:Audience></saml:AudienceRestriction></saml:Conditions>{authn}<saml:AttributeStatement>{attributes}</saml:AttributeStatement></saml:Assertion>"#,
            id = self.id,
            issued = t(self.issued),
            issuer = escape(&self.issuer),
            sig = signature_template(&self.id),
            name = escape(&self.name_id),
            until = t(self.not_on_or_after),
            aud = escape(&self.audience),
        )
    }
}

impl AssertionSpec {
    /// The same assertion as SAML 1.1 (what AD FS issues to WS-Federation relying parties), with
    /// an empty signature template referencing `AssertionID`. The class reference becomes the
    /// `AuthenticationStatement`'s `AuthenticationMethod`; attribute names are split at their last
    /// `/` into `AttributeNamespace` and `AttributeName`.
    pub fn to_saml11_xml(&self) -> String {
        let t = |secs: u64| crate::clock::rfc3339_millis(secs * 1000);
        let subject = format!(
            "<saml:Subject><saml:NameIdentifier>{}</saml:NameIdentifier><saml:SubjectConfirmation><saml:ConfirmationMethod>urn:oasis:names:tc:SAML:1.0:cm:bearer</saml:ConfirmationMethod></saml:SubjectConfirmation></saml:Subject>",
            escape(&self.name_id)
        );
        let attributes: String = self
            .attributes
            .iter()
            .map(|(name, values)| {
                let (ns, local) = name.rsplit_once('/').unwrap_or(("", name));
                let v: String = values
                    .iter()
                    .map(|v| format!("<saml:AttributeValue>{}</saml:AttributeValue>", escape(v)))
                    .collect();
                format!(
                    r#"<saml:Attribute AttributeName="{}" AttributeNamespace="{}">{v}</saml:Attribute>"#,
                    escape(local),
                    escape(ns)
                )
            })
            .collect();
        let authn = self.class_ref.as_ref().map_or(String::new(), |c| {
            format!(
                r#"<saml:AuthenticationStatement AuthenticationMethod="{}" AuthenticationInstant="{}">{subject}</saml:AuthenticationStatement>"#,
                escape(c),
                t(self.issued)
            )
        });
        format!(
            r#"<saml:Assertion xmlns:saml="{NS_SAML1}" MajorVersion="1" MinorVersion="1" AssertionID="{id}" Issuer="{issuer}" IssueInstant="{issued}"><saml:Conditions NotBefore="{issued}" NotOnOrAfter="{until}"><saml:AudienceRestrictionCondition><saml:Audience>{aud}</saml:Audience></saml:AudienceRestrictionCondition></saml:Conditions><saml:AttributeStatement>{subject}{attributes}</saml:AttributeStatement>{authn}{sig}</saml:Assertion>"#,
            id = self.id,
            issuer = escape(&self.issuer),
            issued = t(self.issued),
            until = t(self.not_on_or_after),
            aud = escape(&self.audience),
            sig = signature_template(&self.id),
        )
    }
}

/// An enveloped RSA-SHA256 signature template referencing `#id`.
pub fn signature_template(id: &str) -> String {
    format!(
        r##"<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo><ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/><ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/><ds:Reference URI="#{id}"><ds:Transforms><ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/><ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/></ds:Transforms><ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><ds:DigestValue></ds:DigestValue></ds:Reference></ds:SignedInfo><ds:SignatureValue></ds:SignatureValue></ds:Signature>"##
    )
}

/// A Response around an assertion; with `signed`, the Response carries a signature template too.
pub fn response_xml(id: &str, assertion: &str, signed: bool) -> String {
    let sig = if signed { signature_template(id) } else { String::new() };
    format!(
        r#"<samlp:Response xmlns:samlp="{NS_PROTOCOL}" ID="{id}" Version="2.0" IssueInstant="2026-01-01T00:00:00Z">{sig}<samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status>{assertion}</samlp:Response>"#
    )
}

/// A SAML signing key and its certificate.
pub struct DevSamlSigner {
    key_der: Vec<u8>,
    cert_der: Vec<u8>,
}

impl std::fmt::Debug for DevSamlSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DevSamlSigner(<private>)")
    }
}

impl DevSamlSigner {
    /// From PEM files (PKCS#8 key, X.509 certificate).
    pub fn from_pem(key_pem: &[u8], cert_pem: &[u8]) -> Result<DevSamlSigner, DevSamlError> {
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| DevSamlError(e.to_string()))?;
        let cert = CertificateDer::from_pem_slice(cert_pem).map_err(|e| DevSamlError(e.to_string()))?;
        Ok(DevSamlSigner { key_der: key.secret_der().to_vec(), cert_der: cert.to_vec() })
    }

    /// The certificate (DER), to configure as trusted.
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// Fills the first signature template in `xml` (the one referencing `ID`). Returns the
    /// element without an XML declaration, so it can be embedded in a Response.
    pub fn sign(&self, xml: &str) -> Result<String, DevSamlError> {
        let signed = Crypto::sign_xml(xml, &self.key_der).map_err(|e| DevSamlError(e.to_string()))?;
        let body = match signed.strip_prefix("<?xml") {
            Some(rest) => rest.split_once("?>").map_or(rest, |(_, b)| b),
            None => &signed,
        };
        Ok(body.trim().to_owned())
    }

    /// Signs a SAML 1.1 assertion's template (see [`AssertionSpec::to_saml11_xml`]). samael signs
    /// only `ID` references, so this uses the gateway's own canonicalization; xmlsec checks it
    /// independently when the gateway verifies.
    pub fn sign_saml11(&self, xml: &str) -> Result<String, DevSamlError> {
        let key = aws_lc_rs::signature::RsaKeyPair::from_pkcs8(&self.key_der)
            .map_err(|e| DevSamlError(e.to_string()))?;
        sign_saml11_with(xml, &crate::verify::saml::dsig::rsa_sha256(&key))
    }
}

/// Signs a SAML 1.1 assertion's template with `sign`, which makes the template's signature
/// method over the bytes it is given: for the signatures [`DevSamlSigner`] does not make (the
/// tests' RSA-SHA1, see [`with_sha1`]).
pub fn sign_saml11_with(xml: &str, sign: &dyn Fn(&[u8]) -> Option<Vec<u8>>) -> Result<String, DevSamlError> {
    crate::verify::saml::dsig::sign_enveloped(xml, sign).map_err(|e| DevSamlError(e.code().to_owned()))
}

/// A signature template asking for RSA-SHA1 and a SHA-1 digest, as pysaml2 and older AD FS
/// farms sign (xmlsec signs SAML 2.0 templates with it; see [`sign_saml11_with`] for 1.1).
pub fn with_sha1(template: &str) -> String {
    use mfagate_policy::WeakAlgorithm;
    template
        .replace(crate::verify::saml::dsig::RSA_SHA256, WeakAlgorithm::RsaSha1.uri())
        .replace(crate::verify::saml::dsig::SHA256, WeakAlgorithm::Sha1.uri())
}

pub use crate::dev::idp::DevMfa;

struct IdpInner {
    signer: DevSamlSigner,
    entity_id: String,
    mfa: std::sync::Mutex<DevMfa>,
    sign_ins: std::sync::atomic::AtomicU64,
    clock: crate::clock::SharedClock,
}

/// A running development SAML IdP: `GET /sso` (HTTP-Redirect binding) answers with a page that
/// posts a signed Response to the ACS, as a real IdP's auto-submitting form does.
/// `GET /assertion?audience=..&version=2.0|1.1&mfa=true|false&minutes=5` answers with a signed
/// bearer assertion, base64, for `Authorization: SAML` (demo and tests).
#[derive(Clone)]
pub struct DevSamlIdp {
    addr: std::net::SocketAddr,
    inner: std::sync::Arc<IdpInner>,
}

impl DevSamlIdp {
    /// Serves on `listener`, signing as `entity_id`.
    pub fn start(
        listener: tokio::net::TcpListener,
        signer: DevSamlSigner,
        entity_id: &str,
        clock: crate::clock::SharedClock,
    ) -> std::io::Result<DevSamlIdp> {
        use hyper::service::service_fn;
        let addr = listener.local_addr()?;
        let inner = std::sync::Arc::new(IdpInner {
            signer,
            entity_id: entity_id.to_owned(),
            mfa: std::sync::Mutex::new(DevMfa::Always),
            sign_ins: std::sync::atomic::AtomicU64::new(0),
            clock,
        });
        let served = inner.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let inner = served.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| sso(inner.clone(), req));
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, svc).await;
                });
            }
        });
        Ok(DevSamlIdp { addr, inner })
    }

    /// The SSO URL.
    pub fn sso_url(&self) -> String {
        format!("http://{}/sso", self.addr)
    }

    /// The URL of a bearer assertion for `audience` (add `&version=1.1`, `&mfa=false`).
    pub fn assertion_url(&self, audience: &str) -> String {
        let q: String =
            form_urlencoded::Serializer::new(String::new()).append_pair("audience", audience).finish();
        format!("http://{}/assertion?{q}", self.addr)
    }

    /// Sets when MFA is reported.
    pub fn set_mfa(&self, mode: DevMfa) {
        if let Ok(mut m) = self.inner.mfa.lock() {
            *m = mode;
        }
    }

    /// Sign-ins answered so far.
    pub fn sign_ins(&self) -> u64 {
        self.inner.sign_ins.load(std::sync::atomic::Ordering::SeqCst)
    }
}

const NOT_MFA_CLASS: &str = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport";

async fn sso<B>(
    inner: std::sync::Arc<IdpInner>,
    req: http::Request<B>,
) -> Result<http::Response<crate::body::Body>, std::convert::Infallible> {
    let answer = |status: u16, body: String| {
        let mut rsp = http::Response::new(crate::body::full(body));
        *rsp.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::BAD_REQUEST);
        rsp.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("text/html"));
        Ok(rsp)
    };
    let query: Vec<(String, String)> =
        form_urlencoded::parse(req.uri().query().unwrap_or_default().as_bytes()).into_owned().collect();
    let get = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    if req.uri().path() == "/assertion" {
        return match bearer_assertion(&inner, &get) {
            Ok(b64) => answer(200, b64),
            Err(why) => answer(400, why.into()),
        };
    }
    let Some(request) =
        get("SAMLRequest").and_then(|r| crate::browser::portal::inflate_base64(&r, 64 * 1024))
    else {
        return answer(400, "no SAMLRequest".into());
    };
    let Ok(doc) = roxmltree::Document::parse(&request) else { return answer(400, "bad AuthnRequest".into()) };
    let root = doc.root_element();
    let (Some(id), Some(acs)) = (root.attribute("ID"), root.attribute("AssertionConsumerServiceURL")) else {
        return answer(400, "AuthnRequest without ID or ACS".into());
    };
    let sp = root
        .descendants()
        .find(|n| n.tag_name().name() == "Issuer")
        .and_then(|n| n.text())
        .unwrap_or_default();
    let asked = root
        .descendants()
        .any(|n| n.tag_name().name() == "AuthnContextClassRef" && n.text() == Some(MULTIPLE_AUTHN));
    let mode = inner.mfa.lock().map(|m| *m).unwrap_or(DevMfa::Never);
    let mfa = mode == DevMfa::Always || (mode == DevMfa::WhenAsked && asked);
    let mut spec = AssertionSpec::new(&inner.entity_id, sp, inner.clock.unix().0);
    spec.recipient = Some(acs.to_owned());
    spec.in_response_to = Some(id.to_owned());
    if !mfa {
        spec.class_ref = Some(NOT_MFA_CLASS.into());
    }
    let Ok(assertion) = inner.signer.sign(&spec.to_xml()) else {
        return answer(500, "signing failed".into());
    };
    inner.sign_ins.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let response = response_xml(&format!("_resp{}", &spec.id[2..]), &assertion, false).replace(
        "<samlp:Response ",
        &format!("<samlp:Response InResponseTo=\"{}\" Destination=\"{}\" ", escape(id), escape(acs)),
    );
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(response);
    let relay = get("RelayState").unwrap_or_default();
    answer(
        200,
        format!(
            r#"<!doctype html><html><body onload="document.forms[0].submit()"><form method="post" action="{}"><input type="hidden" name="SAMLResponse" value="{b64}"/><input type="hidden" name="RelayState" value="{}"/><noscript><button>Continue</button></noscript></form></body></html>"#,
            escape(acs),
            escape(&relay)
        ),
    )
}

/// A signed bearer assertion for `Authorization: SAML`, base64.
fn bearer_assertion(inner: &IdpInner, get: &dyn Fn(&str) -> Option<String>) -> Result<String, &'static str> {
    use base64::Engine;
    let audience = get("audience").ok_or("audience is required")?;
    let minutes: u64 = get("minutes").map_or(Ok(5), |m| m.parse()).map_err(|_| "minutes: a number")?;
    let mut spec = AssertionSpec::new(&inner.entity_id, &audience, inner.clock.unix().0);
    spec.not_on_or_after = spec.issued + minutes.clamp(1, 24 * 60) * 60;
    let saml11 = match get("version").as_deref() {
        None | Some("2.0") => false,
        Some("1.1") => true,
        Some(_) => return Err("version: 2.0 or 1.1"),
    };
    if get("mfa").as_deref() == Some("false") {
        spec.class_ref =
            Some(if saml11 { "urn:oasis:names:tc:SAML:1.0:am:password" } else { NOT_MFA_CLASS }.into());
    }
    let signed = if saml11 {
        inner.signer.sign_saml11(&spec.to_saml11_xml())
    } else {
        inner.signer.sign(&spec.to_xml())
    };
    signed.map(|xml| base64::engine::general_purpose::STANDARD.encode(xml)).map_err(|_| "signing failed")
}
