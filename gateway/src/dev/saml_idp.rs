//! Development SAML assertions, signed at run time with `certs/saml-idp.key` (tests, benches,
//! demo). DEVELOPMENT ONLY: the key is public.

use crate::markup::escape;
use crate::verify::saml::{NS_ASSERTION, NS_PROTOCOL, NS_SAML1};
use mfagate_policy::{
    ATTR_AUTHENTICATION_METHOD, ATTR_AUTHN_METHODS_REFERENCES, MULTIPLE_AUTHN, SamlLocation,
};
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

    /// The same assertion carrying its authentication method in `location` alone: `multipleauthn`
    /// with `mfa`, a password method without. The statement's own method is then a password, so
    /// no other place proves MFA. SAML 2.0 has no `authentication_method` (1.1's
    /// `AuthenticationStatement`), SAML 1.1 no `authn_context`.
    pub fn with_mfa_in(mut self, location: SamlLocation, mfa: bool, saml11: bool) -> Result<Self, String> {
        let statement = if saml11 { SamlLocation::AuthenticationMethod } else { SamlLocation::AuthnContext };
        let wrong = if saml11 { SamlLocation::AuthnContext } else { SamlLocation::AuthenticationMethod };
        if location == wrong {
            let version = if saml11 { "1.1" } else { "2.0" };
            return Err(format!(
                "SAML {version} has no {}: use {} or an attribute",
                wrong.name(),
                statement.name()
            ));
        }
        let password = if saml11 { PASSWORD_METHOD_SAML11 } else { NOT_MFA_CLASS };
        let method = if mfa { MULTIPLE_AUTHN } else { PASSWORD_METHOD };
        self.class_ref = Some(if location == statement && mfa { MULTIPLE_AUTHN } else { password }.into());
        let attribute = match location {
            SamlLocation::AuthenticationMethodAttribute => ATTR_AUTHENTICATION_METHOD,
            SamlLocation::AuthnMethodsReferences => ATTR_AUTHN_METHODS_REFERENCES,
            _ => return Ok(self),
        };
        self.attributes.push((attribute.into(), vec![method.into()]));
        Ok(self)
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
    location: std::sync::Mutex<SamlLocation>,
    sign_ins: std::sync::atomic::AtomicU64,
    clock: crate::clock::SharedClock,
}

/// A running development SAML IdP: `GET /sso` (HTTP-Redirect binding) answers with a page that
/// posts a signed Response to the ACS, as a real IdP's auto-submitting form does (`&mfa=` and
/// `&location=` in the SSO URL override the IdP's settings).
/// `GET /assertion?audience=..&version=2.0|1.1&mfa=true|false&location=..&minutes=5` answers with
/// a signed bearer assertion, base64, for `Authorization: SAML` (demo and tests). `location` is an
/// `mfa_locations` entry; by default the version's own statement. `GET /metadata`: the IdP's
/// SAML metadata (entity id, signing certificate, SSO URL).
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
            location: std::sync::Mutex::new(SamlLocation::AuthnContext),
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

    /// Where SSO Responses carry the authentication method (`authn_context` at start).
    pub fn set_mfa_location(&self, location: SamlLocation) {
        if let Ok(mut l) = self.inner.location.lock() {
            *l = location;
        }
    }

    /// The entity id it signs as.
    pub fn entity_id(&self) -> &str {
        &self.inner.entity_id
    }

    /// `http://host:port`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The listening address.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    /// The metadata URL.
    pub fn metadata_url(&self) -> String {
        format!("http://{}/metadata", self.addr)
    }

    /// Sign-ins answered so far.
    pub fn sign_ins(&self) -> u64 {
        self.inner.sign_ins.load(std::sync::atomic::Ordering::SeqCst)
    }
}

const NOT_MFA_CLASS: &str = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport";
const PASSWORD_METHOD_SAML11: &str = "urn:oasis:names:tc:SAML:1.0:am:password";
/// AD FS's password value of the `authenticationmethod` and `authnmethodsreferences` attributes.
const PASSWORD_METHOD: &str =
    "http://schemas.microsoft.com/ws/2008/06/identity/authenticationmethod/password";

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
    match req.uri().path() {
        "/assertion" => {
            return match bearer_assertion(&inner, &get) {
                Ok(b64) => answer(200, b64),
                Err(why) => answer(400, why),
            };
        }
        "/metadata" => {
            let mut rsp = http::Response::new(crate::body::full(metadata(&inner, &req)));
            let xml = http::HeaderValue::from_static("application/samlmetadata+xml");
            rsp.headers_mut().insert(http::header::CONTENT_TYPE, xml);
            return Ok(rsp);
        }
        _ => {}
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
    let Ok(mfa) = flag(get("mfa"), mode == DevMfa::Always || (mode == DevMfa::WhenAsked && asked)) else {
        return answer(400, "mfa: true or false".into());
    };
    let location = match get("location") {
        None => inner.location.lock().map(|l| *l).unwrap_or(SamlLocation::AuthnContext),
        Some(name) => match location_named(&name) {
            Ok(l) => l,
            Err(why) => return answer(400, why),
        },
    };
    let mut spec = AssertionSpec::new(&inner.entity_id, sp, inner.clock.unix().0);
    spec.recipient = Some(acs.to_owned());
    spec.in_response_to = Some(id.to_owned());
    let spec = match spec.with_mfa_in(location, mfa, false) {
        Ok(spec) => spec,
        Err(why) => return answer(400, why),
    };
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

fn flag(value: Option<String>, default: bool) -> Result<bool, ()> {
    match value.as_deref() {
        None => Ok(default),
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(_) => Err(()),
    }
}

fn location_named(name: &str) -> Result<SamlLocation, String> {
    SamlLocation::named(name).ok_or_else(|| {
        let names: Vec<&str> = SamlLocation::ALL.iter().map(|l| l.name()).collect();
        format!("location: one of {}", names.join(", "))
    })
}

/// A signed bearer assertion for `Authorization: SAML`, base64.
fn bearer_assertion(inner: &IdpInner, get: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    sign_bearer(&inner.signer, &inner.entity_id, inner.clock.unix().0, get)
}

/// A bearer assertion from `issuer`, issued at `now`, described by the `/assertion` parameters
/// `get` gives (`audience`, `minutes`, `version`, `mfa`, `location`), signed by `signer`, base64.
pub fn sign_bearer(
    signer: &DevSamlSigner,
    issuer: &str,
    now: u64,
    get: &dyn Fn(&str) -> Option<String>,
) -> Result<String, String> {
    use base64::Engine;
    let audience = get("audience").ok_or("audience is required")?;
    let minutes: u64 = get("minutes").map_or(Ok(5), |m| m.parse()).map_err(|_| "minutes: a number")?;
    let mut spec = AssertionSpec::new(issuer, &audience, now);
    spec.not_on_or_after = spec.issued + minutes.clamp(1, 24 * 60) * 60;
    let saml11 = match get("version").as_deref() {
        None | Some("2.0") => false,
        Some("1.1") => true,
        Some(_) => return Err("version: 2.0 or 1.1".into()),
    };
    let mfa = flag(get("mfa"), true).map_err(|()| "mfa: true or false")?;
    let location = match get("location") {
        Some(name) => location_named(&name)?,
        None if saml11 => SamlLocation::AuthenticationMethod,
        None => SamlLocation::AuthnContext,
    };
    let spec = spec.with_mfa_in(location, mfa, saml11)?;
    let signed = if saml11 { signer.sign_saml11(&spec.to_saml11_xml()) } else { signer.sign(&spec.to_xml()) };
    signed
        .map(|xml| base64::engine::general_purpose::STANDARD.encode(xml))
        .map_err(|_| "signing failed".into())
}

/// The IdP's metadata: its entity id, signing certificate and HTTP-Redirect SSO endpoint, at the
/// host the request named (so it stays right behind a port mapping).
fn metadata<B>(inner: &IdpInner, req: &http::Request<B>) -> String {
    let host = req.headers().get(http::header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1");
    metadata_document(&inner.entity_id, &[inner.signer.cert_der()], &format!("http://{host}/sso"))
}

/// IdP metadata naming `entity_id`, its signing certificates (DER) and its HTTP-Redirect SSO URL.
pub fn metadata_document(entity_id: &str, certificates: &[&[u8]], sso_url: &str) -> String {
    use base64::Engine;
    let keys: String = certificates
        .iter()
        .map(|der| {
            let cert = base64::engine::general_purpose::STANDARD.encode(der);
            format!(
                r#"
    <md:KeyDescriptor use="signing">
      <ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:X509Data><ds:X509Certificate>{cert}</ds:X509Certificate></ds:X509Data></ds:KeyInfo>
    </md:KeyDescriptor>"#
            )
        })
        .collect();
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="{entity}">
  <md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol" WantAuthnRequestsSigned="false">{keys}
    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="{sso}"/>
  </md:IDPSSODescriptor>
</md:EntityDescriptor>
"#,
        entity = escape(entity_id),
        sso = escape(sso_url),
    )
}
