//! SAML 2.0 assertions as credentials: verified against configured certificates only, claims read
//! only from the bytes the signature covers (xmlsec's pre-digest output), with the rules of
//! docs/saml.md:
//!
//! 1. bound the size; refuse DTDs and entities (roxmltree refuses them outright);
//! 2. exactly one Assertion; every Signature a direct child of the Response or the Assertion,
//!    with one Reference to its parent's own ID, only enveloped/C14N transforms, no ds:Object;
//! 3. xmlsec verifies with the IdP's certificates and returns the pre-digest bytes (SAML 1.1:
//!    xmlsec verifies, and `saml1.rs` verifies again on our own canonical bytes);
//! 4. those bytes are parsed again, and must hold the same one assertion: claims come from there;
//! 5. issuer, audience, NotBefore/NotOnOrAfter (by the policy, with the injected clock),
//!    SubjectConfirmationData, and the replay cache.

pub(crate) mod c14n;
pub(crate) mod dsig;
mod extract;
pub mod idp_certs;
mod saml1;
pub(crate) mod structure;
mod transforms;

use crate::clock::SharedClock;
use crate::config::{DEFAULT_MAX_PENDING, SamlIdp};
use crate::verify::jwt::{Identity, sha256};
use crate::verify::once::{Claim, Kind, Once, Use as OnceUse};
use base64::Engine;
use idp_certs::IdpCertificates;
use mfagate_policy::{InvalidReason, SamlFacts};
use samael::crypto::{AllowedSignatureAlgorithm, CertificateDer, Crypto, CryptoProvider, ReduceMode};
use std::sync::Arc;

pub use extract::Extracted;

/// SAML 2.0 assertion namespace.
pub const NS_ASSERTION: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
/// SAML 2.0 protocol namespace.
pub const NS_PROTOCOL: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
/// SAML 1.x assertion namespace.
pub const NS_SAML1: &str = "urn:oasis:names:tc:SAML:1.0:assertion";
/// XML-DSig namespace.
pub const NS_DSIG: &str = "http://www.w3.org/2000/09/xmldsig#";

/// Lexical bounds checked before any parse. roxmltree resolves namespaces in time quadratic (and
/// worse) in the declarations in scope: 64 KB of them cost seconds of CPU. Real assertions carry
/// fewer than ten declarations and a few dozen attributes.
pub(crate) fn within_parse_bounds(xml: &str) -> bool {
    const MAX_NAMESPACE_DECLARATIONS: usize = 64;
    const MAX_EQUALS_SIGNS: usize = 2048;
    xml.matches("xmlns").count() <= MAX_NAMESPACE_DECLARATIONS
        && xml.bytes().filter(|b| *b == b'=').count() <= MAX_EQUALS_SIGNS
}

/// How the assertion arrived, which decides its audience and the replay rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Use {
    /// A bearer credential on an API request: the same document may be presented again until it
    /// expires; the same assertion ID in a different document is refused.
    Api,
    /// A browser POST to the ACS: an assertion ID is accepted once.
    Acs,
    /// An RFC 7522 grant for the authorization server named here (its Audience, not ours): an
    /// assertion ID is accepted once, and the document is never cached as an API credential.
    Grant(Arc<str>),
}

/// Why an assertion was not verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unverified {
    /// It is not a valid credential.
    Invalid(InvalidReason),
    /// Too many first sights are waiting already (`[saml] max_pending_verifications`): it was
    /// not looked at, and may be sent again shortly.
    Busy,
    /// Verified, but the fleet's one-time memory cannot be reached to say whether it was used
    /// before (`[cluster] on_failure = "closed"`): refused, and may be sent again shortly.
    Unavailable,
}

impl From<InvalidReason> for Unverified {
    fn from(why: InvalidReason) -> Unverified {
        Unverified::Invalid(why)
    }
}

/// A verified assertion.
#[derive(Debug)]
pub struct SamlVerified {
    /// Facts for the policy.
    pub facts: SamlFacts,
    /// Who it names.
    pub identity: Identity,
    /// Index of the IdP in the configuration.
    pub idp_index: usize,
    /// The assertion's ID.
    pub assertion_id: String,
    /// `SubjectConfirmationData/@InResponseTo`, if any.
    pub in_response_to: Option<String>,
    /// `OneTimeUse` / `DoNotCacheCondition`: accepted once even as an API credential.
    pub one_time_use: bool,
    /// The generation of the IdP's certificates that verified it.
    pub cert_generation: u64,
}

/// A document after every check but the replay memory's.
enum Checked {
    /// A bearer document verified before.
    Cached(Arc<SamlVerified>),
    /// Verified now, with its digest: the replay memory decides next.
    Fresh(Arc<SamlVerified>, [u8; 32]),
}

/// A bearer document may be presented again; an assertion at the ACS, in a grant, or marked
/// one-time, may not.
fn reusable(verified: &SamlVerified, how: &Use) -> bool {
    *how == Use::Api && !verified.one_time_use
}

/// The use of `verified`'s id that the replay memory judges. It is remembered for the most
/// leeway any configuration may give, not this one's: a reload that widens it must not find the
/// entry gone while the assertion is acceptable again.
fn once_use<'a>(verified: &'a SamlVerified, digest: [u8; 32], how: &Use) -> OnceUse<'a> {
    OnceUse {
        kind: Kind::Assertion,
        value: &verified.assertion_id,
        digest,
        reusable: reusable(verified, how),
        until: mfagate_policy::UnixTime(
            verified.facts.expires.0.saturating_add(crate::config::MAX_LEEWAY_SECS),
        ),
    }
}

/// Verifies SAML assertions for the configured IdPs.
pub struct SamlVerifier {
    idps: Vec<SamlIdp>,
    /// Each IdP's certificates in force, in the order of `idps`.
    certs: Vec<Arc<IdpCertificates>>,
    audience: String,
    recipients: Vec<String>,
    max_bytes: usize,
    allowed: Vec<AllowedSignatureAlgorithm>,
    by_digest: moka::sync::Cache<[u8; 32], Arc<SamlVerified>>,
    /// Assertion ids seen (and one-time and grant uses), shared by every generation and, when
    /// clustered, by the fleet.
    once: Arc<Once>,
    cpu: Arc<tokio::sync::Semaphore>,
    queue: Arc<tokio::sync::Semaphore>,
    max_pending: usize,
    /// First sights refused because the queue was full.
    busy: std::sync::atomic::AtomicU64,
    acs_url: Option<String>,
    clock: SharedClock,
}

impl crate::clock::Expires for SamlVerified {
    fn expires(&self) -> mfagate_policy::UnixTime {
        self.facts.expires
    }
}

impl SamlVerifier {
    /// A verifier for `idps`, accepting assertions for `audience` (our entity id). `recipients`,
    /// if not empty, are the URLs a bearer SubjectConfirmationData may name.
    pub fn new(
        idps: Vec<SamlIdp>,
        audience: String,
        recipients: Vec<String>,
        max_bytes: usize,
        clock: SharedClock,
    ) -> SamlVerifier {
        SamlVerifier {
            certs: idps.iter().map(|idp| IdpCertificates::new(idp, None, clock.clone())).collect(),
            idps,
            audience,
            recipients,
            max_bytes,
            allowed: vec![
                AllowedSignatureAlgorithm::RsaSha256,
                AllowedSignatureAlgorithm::RsaSha384,
                AllowedSignatureAlgorithm::RsaSha512,
                AllowedSignatureAlgorithm::EcdsaSha256,
                AllowedSignatureAlgorithm::EcdsaSha384,
                AllowedSignatureAlgorithm::EcdsaSha512,
            ],
            by_digest: moka::sync::Cache::builder()
                .max_capacity(50_000)
                .expire_after(crate::clock::UntilExpiry(clock.clone()))
                .build(),
            once: Arc::new(Once::new(clock.clone())),
            cpu: Arc::new(tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(2, usize::from),
            )),
            queue: Arc::new(tokio::sync::Semaphore::new(DEFAULT_MAX_PENDING)),
            max_pending: DEFAULT_MAX_PENDING,
            busy: Default::default(),
            acs_url: None,
            clock,
        }
    }

    /// At most `max` first sights waiting for or in verification at once; more are [`Unverified::Busy`].
    pub fn with_max_pending(mut self, max: usize) -> SamlVerifier {
        self.max_pending = max.min(tokio::sync::Semaphore::MAX_PERMITS);
        self.queue = Arc::new(tokio::sync::Semaphore::new(self.max_pending));
        self
    }

    /// Remembers assertion ids in `once` (the gateway's, shared with sign-in states and, when
    /// clustered, with the fleet).
    pub fn with_once(mut self, once: Arc<Once>) -> SamlVerifier {
        self.once = once;
        self
    }

    /// First sights waiting for or in verification now.
    pub fn pending(&self) -> usize {
        self.max_pending.saturating_sub(self.queue.available_permits())
    }

    /// The cap on [`SamlVerifier::pending`].
    pub fn max_pending(&self) -> usize {
        self.max_pending
    }

    /// First sights refused because the queue was full, so far.
    pub fn busy_refusals(&self) -> u64 {
        self.busy.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Our ACS URL: an assertion whose bearer Recipient names it is a browser sign-in Response,
    /// refused as an API credential unless its IdP says `accept_sso_responses_as_api`.
    pub fn with_acs_url(mut self, acs_url: Option<String>) -> SamlVerifier {
        self.acs_url = acs_url;
        self
    }

    /// IdPs with a `metadata_url` fetch it with `client` (without one, they never load).
    pub fn with_metadata_client(mut self, client: &crate::outbound::HttpClient) -> SamlVerifier {
        self.certs = self
            .idps
            .iter()
            .map(|idp| IdpCertificates::new(idp, Some(client.clone()), self.clock.clone()))
            .collect();
        self
    }

    /// Each IdP's certificates, in configuration order.
    pub fn certificates(&self) -> impl Iterator<Item = &Arc<IdpCertificates>> {
        self.certs.iter()
    }

    /// The certificate at `cert` of the IdP at `index`, as in force now.
    pub fn certificate(&self, index: usize, cert: usize) -> Option<Vec<u8>> {
        self.certs.get(index)?.snapshot().0.ders.get(cert).cloned()
    }

    /// The SSO URL for browser sign-in: configured, or from the IdP's metadata once fetched.
    pub fn sso_url(&self, idp_name: &str) -> Option<String> {
        let index = self.idps.iter().position(|i| i.name == idp_name)?;
        let configured = self.idps.get(index)?.sso_url.clone();
        configured.or_else(|| self.certs.get(index)?.snapshot().0.sso_url.clone())
    }

    /// A cached verification still stands: its IdP's certificates have not changed since.
    fn current(&self, hit: &SamlVerified) -> bool {
        self.certs.get(hit.idp_index).is_some_and(|c| c.generation() == hit.cert_generation)
    }

    /// Shares `previous`'s replay memory (assertion ids seen, one-time and grant uses included)
    /// and its CPU slots: a reloaded configuration must not accept again what was used before.
    /// Its verified-document cache is not shared, so nothing verified under older rules is reused.
    /// An IdP whose metadata is fetched the same way keeps the certificates already fetched (and
    /// its refresh task goes on).
    pub fn remembering(mut self, previous: &SamlVerifier) -> SamlVerifier {
        self.once = previous.once.clone();
        self.cpu = previous.cpu.clone();
        for (idp, certs) in self.idps.iter().zip(self.certs.iter_mut()) {
            if let Some(kept) = previous.certs.iter().find(|old| old.is_fetched() && old.fetches_as(idp)) {
                *certs = kept.clone();
            }
        }
        self
    }

    /// The IdP at `index`.
    pub fn idp(&self, index: usize) -> Option<&SamlIdp> {
        self.idps.get(index)
    }

    /// The IdP with this configured name.
    pub fn idp_named(&self, name: &str) -> Option<&SamlIdp> {
        self.idps.iter().find(|i| i.name == name)
    }

    /// Whether any IdP is configured.
    pub fn is_empty(&self) -> bool {
        self.idps.is_empty()
    }

    /// Verifies a base64 (or base64url) assertion or Response (the `Authorization: SAML` value,
    /// an RFC 7522 `assertion`).
    pub fn verify_base64(&self, encoded: &str, how: Use) -> Result<Arc<SamlVerified>, InvalidReason> {
        self.verify(&self.decode(encoded)?, how)
    }

    /// [`SamlVerifier::verify_base64`] off the async workers. A first sight costs hundreds of
    /// microseconds of CPU (xmlsec), so at most one per core runs at a time, on the blocking pool:
    /// a flood of new assertions waits there instead of stalling every connection of a worker.
    /// The wait is bounded: past `max_pending` first sights at once the answer is
    /// [`Unverified::Busy`] at once. Cached bearer documents answer at once.
    pub async fn verify_base64_off_worker(
        self: &Arc<Self>,
        encoded: &str,
        how: Use,
    ) -> Result<Arc<SamlVerified>, Unverified> {
        let mut span = crate::evidence::traces::child("saml.verify", &[]);
        let verified = self.verify_queued(encoded, how).await;
        match &verified {
            Ok(_) => {}
            Err(Unverified::Busy) => span.fail("saml_busy"),
            Err(Unverified::Unavailable) => span.fail("one_time_check_unavailable"),
            Err(Unverified::Invalid(why)) => span.fail(why.code()),
        }
        verified
    }

    async fn verify_queued(
        self: &Arc<Self>,
        encoded: &str,
        how: Use,
    ) -> Result<Arc<SamlVerified>, Unverified> {
        let xml = self.decode(encoded)?;
        if how == Use::Api
            && let Some(hit) = self.by_digest.get(&sha256(xml.as_bytes()))
            && self.current(&hit)
        {
            return Ok(hit);
        }
        let (mut checked, xml, signer) = self.verify_on_pool(xml, how.clone()).await?;
        // A rollover the metadata already shows: fetch it early (rate-limited), then try again.
        if let Some((certs, seen)) = signer.and_then(|(i, seen)| Some((self.certs.get(i)?, seen)))
            && certs.refetch_for_unknown_signer(seen).await
        {
            checked = self.verify_on_pool(xml, how.clone()).await?.0;
        }
        match checked? {
            Checked::Cached(hit) => Ok(hit),
            Checked::Fresh(verified, digest) => {
                // The replay memory is asked only now, off the blocking pool: with `[cluster]`
                // it is a round trip to Redis.
                let claim = self
                    .once
                    .claim(&once_use(&verified, digest, &how))
                    .await
                    .map_err(|_| Unverified::Unavailable)?;
                Ok(self.admit(verified, digest, &how, claim)?)
            }
        }
    }

    /// One verification on the blocking pool, under the queue and CPU permits; on a bad
    /// signature, also the index of the issuer's IdP when its certificates come from metadata,
    /// with the generation of the certificates that failed.
    async fn verify_on_pool(
        self: &Arc<Self>,
        xml: String,
        how: Use,
    ) -> Result<(Result<Checked, InvalidReason>, String, Option<(usize, u64)>), Unverified> {
        let place = Arc::clone(&self.queue).try_acquire_owned().map_err(|_| {
            self.busy.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Unverified::Busy
        })?;
        let permit = Arc::clone(&self.cpu).acquire_owned().await.map_err(|_| Unverified::Busy)?;
        let this = Arc::clone(self);
        // The permits go with the work: a client that leaves does not free them early.
        tokio::task::spawn_blocking(move || {
            // Read before: a fetch that lands during the verification must count as new.
            let generations: Vec<u64> = this.certs.iter().map(|c| c.generation()).collect();
            let verified = this.check(&xml, &how);
            let signer = match verified {
                Err(InvalidReason::BadSignature) => {
                    this.fetched_signer(&xml).and_then(|i| Some((i, *generations.get(i)?)))
                }
                _ => None,
            };
            drop((permit, place));
            (verified, xml, signer)
        })
        .await
        .map_err(|_| Unverified::Invalid(InvalidReason::Malformed))
    }

    /// The index of the IdP `xml` names as its issuer, when its certificates come from metadata.
    fn fetched_signer(&self, xml: &str) -> Option<usize> {
        if !self.certs.iter().any(|c| c.is_fetched()) {
            return None;
        }
        let issuer = structure::check(xml).ok()?.issuer;
        let index = self.idps.iter().position(|idp| idp.entity_id == issuer)?;
        self.certs.get(index).filter(|c| c.is_fetched()).map(|_| index)
    }

    /// The XML of a base64 (or base64url) document, as every verification path decodes it.
    pub fn decode(&self, encoded: &str) -> Result<String, InvalidReason> {
        if encoded.len() > self.max_bytes.saturating_mul(4) / 3 + 4 {
            return Err(InvalidReason::TooLarge);
        }
        use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
        const ANY_PADDING: GeneralPurposeConfig =
            GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
        const STANDARD: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::STANDARD, ANY_PADDING);
        // RFC 7522 grants carry base64url.
        const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::URL_SAFE, ANY_PADDING);
        let encoded = encoded.trim();
        let engine = if encoded.contains(['-', '_']) { &URL_SAFE } else { &STANDARD };
        let bytes = engine.decode(encoded).map_err(|_| InvalidReason::Malformed)?;
        String::from_utf8(bytes).map_err(|_| InvalidReason::Malformed)
    }

    /// Verifies an XML assertion or Response, deciding replays from this instance's memory
    /// (the gateway's requests go through [`SamlVerifier::verify_base64_off_worker`], which
    /// asks the fleet's when clustered).
    pub fn verify(&self, xml: &str, how: Use) -> Result<Arc<SamlVerified>, InvalidReason> {
        match self.check(xml, &how)? {
            Checked::Cached(hit) => Ok(hit),
            Checked::Fresh(verified, digest) => {
                let claim = self.once.claim_local(&once_use(&verified, digest, &how));
                self.admit(verified, digest, &how, claim)
            }
        }
    }

    /// Every check but the replay memory's: a bearer document verified before (under the
    /// certificates still in force) comes from the cache.
    fn check(&self, xml: &str, how: &Use) -> Result<Checked, InvalidReason> {
        if xml.len() > self.max_bytes {
            return Err(InvalidReason::TooLarge);
        }
        let digest = sha256(xml.as_bytes());
        if *how == Use::Api
            && let Some(hit) = self.by_digest.get(&digest)
            && self.current(&hit)
        {
            return Ok(Checked::Cached(hit));
        }
        if !within_parse_bounds(xml) {
            return Err(InvalidReason::TooLarge);
        }
        Ok(Checked::Fresh(Arc::new(self.verify_uncached(xml, how)?), digest))
    }

    /// A verified document after the replay memory's verdict: refused if replayed, cached if a
    /// bearer document may come again.
    fn admit(
        &self,
        verified: Arc<SamlVerified>,
        digest: [u8; 32],
        how: &Use,
        claim: Claim,
    ) -> Result<Arc<SamlVerified>, InvalidReason> {
        if claim == Claim::Replayed {
            return Err(InvalidReason::Replayed);
        }
        if reusable(&verified, how) && verified.facts.expires > self.clock.unix() {
            self.by_digest.insert(digest, verified.clone());
        }
        Ok(verified)
    }

    /// One verification for `mfagate inspect`: every check of [`SamlVerifier::verify`] but the
    /// replay cache (inspect is one-shot: looking at a document must neither use it up nor be
    /// refused for it), and the index of the IdP certificate that verified it.
    pub fn verify_once(&self, xml: &str, how: &Use) -> Result<(SamlVerified, usize), InvalidReason> {
        if xml.len() > self.max_bytes || !within_parse_bounds(xml) {
            return Err(InvalidReason::TooLarge);
        }
        let verified = self.verify_uncached(xml, how)?;
        let count = self.certs.get(verified.idp_index).map_or(0, |c| c.snapshot().0.ders.len());
        let by = (0..count).find(|&i| self.verify_with(xml, how, Some(i)).is_ok()).unwrap_or_default();
        Ok((verified, by))
    }

    /// Why `xml` is refused whatever the IdP's certificates, if it is: too large, a shape the
    /// checks before any signature refuse (unsigned, a signature that does not cover the one
    /// assertion), or a SHA-1 or MD5 signature. For `mfagate inspect` when nothing can be verified.
    pub fn refused_without_keys(&self, xml: &str) -> Option<InvalidReason> {
        if xml.len() > self.max_bytes || !within_parse_bounds(xml) {
            return Some(InvalidReason::TooLarge);
        }
        match structure::check(xml) {
            Err(why) => Some(why),
            Ok(shape) => shape.weak.map(InvalidReason::WeakAlgorithm),
        }
    }

    /// A grant is verified for the authorization server's audience; API credentials and ACS
    /// posts for our own entity id, with the bearer Recipient checked against our URLs.
    fn verify_uncached(&self, xml: &str, how: &Use) -> Result<SamlVerified, InvalidReason> {
        self.verify_with(xml, how, None)
    }

    /// [`SamlVerifier::verify_uncached`] with all of the IdP's certificates, or only the one at
    /// `only`.
    fn verify_with(&self, xml: &str, how: &Use, only: Option<usize>) -> Result<SamlVerified, InvalidReason> {
        let grant_audience = match how {
            Use::Grant(audience) => Some(audience.as_ref()),
            Use::Api | Use::Acs => None,
        };
        let shape = structure::check(xml)?;
        let (idp_index, idp) = self
            .idps
            .iter()
            .enumerate()
            .find(|(_, idp)| idp.entity_id == shape.issuer)
            .ok_or(InvalidReason::UnknownIssuer)?;
        // Named, not checked: a SHA-1 signature is never verified, valid or not (as an
        // unlisted JWT `alg` is refused before its signature).
        if let Some(weak) = shape.weak {
            tracing::warn!(idp = %idp.name, algorithm = weak.uri(), "SAML signature refused: weak algorithm");
            return Err(InvalidReason::WeakAlgorithm(weak));
        }
        let in_force = self.certs.get(idp_index).map(|c| c.snapshot()).ok_or(InvalidReason::UnknownIssuer)?;
        let (in_force, cert_generation) = (&in_force.0, in_force.1);
        let trusted = match only {
            None => &in_force.ders[..],
            Some(i) => in_force.ders.get(i..=i).ok_or(InvalidReason::BadSignature)?,
        };
        let x = match shape.version {
            structure::Version::Saml2 => {
                let certs: Vec<CertificateDer> = trusted.iter().cloned().map(CertificateDer::from).collect();
                let signed = Crypto::reduce_xml_to_signed_with_allowed_algorithms(
                    xml,
                    &certs,
                    ReduceMode::PreDigest,
                    Some(&self.allowed),
                )
                .map_err(|_| InvalidReason::BadSignature)?;
                extract::from_signed(&signed, &shape.assertion_id)?
            }
            structure::Version::Saml11 => saml1::verify(xml, &shape.assertion_id, trusted)?,
        };
        if x.issuer != idp.entity_id {
            return Err(InvalidReason::UnknownIssuer);
        }
        let audience = grant_audience.unwrap_or(&self.audience);
        if x.audiences.is_empty() || !x.audiences.iter().all(|names| names.iter().any(|n| n == audience)) {
            return Err(InvalidReason::WrongAudience);
        }
        if let Some(recipient) = &x.recipient
            && grant_audience.is_none()
            && !self.recipients.is_empty()
            && !self.recipients.contains(recipient)
        {
            return Err(InvalidReason::WrongAudience);
        }
        // A browser sign-in Response: made for our ACS, or answering an AuthnRequest (which only
        // browser sign-in sends). Checked before the replay cache, so refusing it uses nothing up.
        let sso = x.in_response_to.is_some() || (x.recipient.is_some() && x.recipient == self.acs_url);
        if *how == Use::Api && sso && !idp.accept_sso_responses_as_api {
            return Err(InvalidReason::SsoResponse);
        }
        Ok(x.into_verified(idp, idp_index, cert_generation))
    }
}

/// What a document says, read without verifying it (`mfagate inspect` without a key): its one
/// assertion's claims, read by the same code that reads the signed bytes once verified (the shape
/// checks belong to verification). Nothing it returns is proven. Never a credential.
pub fn read_unverified(xml: &str) -> Result<(Extracted, structure::Version), InvalidReason> {
    if !within_parse_bounds(xml) {
        return Err(InvalidReason::TooLarge);
    }
    // The shape check refuses an unsigned document; to explain one, find its assertion anyway.
    let doc = roxmltree::Document::parse(xml).map_err(|_| InvalidReason::Malformed)?;
    let root = doc.root_element();
    let is = |n: &roxmltree::Node<'_, '_>, ns: &str| {
        n.is_element() && n.tag_name().namespace() == Some(ns) && n.tag_name().name() == "Assertion"
    };
    if is(&root, NS_SAML1) {
        let id = root.attribute("AssertionID").ok_or(InvalidReason::Malformed)?;
        return Ok((saml1::from_signed(xml, id)?, structure::Version::Saml11));
    }
    let assertion = root.descendants().find(|n| is(n, NS_ASSERTION)).ok_or(InvalidReason::Malformed)?;
    let id = assertion.attribute("ID").ok_or(InvalidReason::Malformed)?;
    Ok((extract::from_signed(xml, id)?, structure::Version::Saml2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_queue_is_busy_at_once_and_frees_with_the_work() {
        let clock = crate::clock::ManualClock::at(1_767_225_600);
        let v = Arc::new(
            SamlVerifier::new(Vec::new(), "sp".into(), Vec::new(), 64 * 1024, clock).with_max_pending(1),
        );
        let held = Arc::clone(&v.queue).try_acquire_owned().unwrap();
        assert_eq!((v.pending(), v.max_pending(), v.busy_refusals()), (1, 1, 0));
        assert_eq!(v.verify_base64_off_worker("PHg+", Use::Api).await.map(|_| ()), Err(Unverified::Busy));
        assert_eq!(v.busy_refusals(), 1, "counted for /metrics");
        drop(held);
        assert_eq!(v.pending(), 0);
        // Looked at once there is room (and refused for what it is).
        let r = v.verify_base64_off_worker("PHg+", Use::Api).await.map(|_| ());
        assert!(matches!(r, Err(Unverified::Invalid(_))), "{r:?}");
        assert_eq!(v.queue.available_permits(), 1, "the place went back with the finished work");
    }
}
