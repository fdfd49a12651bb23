//! A SAML IdP's signing certificates: the configured ones, or read from its `metadata_url` at
//! start (readiness waits), refreshed on the key-set schedule (`verify::refresh`), and fetched
//! early, at most once per `min_refetch_interval`, when one of its assertions verifies with none
//! (a certificate rollover). A failed fetch, or metadata naming another entity, never replaces
//! good certificates.

use crate::clock::SharedClock;
use crate::config::{MetadataUrl, SamlIdp, parse_metadata};
use crate::outbound::{FetchError, HttpClient, send_small};
use crate::verify::keys::KeyCounters;
use crate::verify::refresh::{Early, LastFetch};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_DOCUMENT: usize = 1024 * 1024;

/// The certificates in force.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Certificates {
    /// DER certificates.
    pub ders: Vec<Vec<u8>>,
    /// The HTTP-Redirect SSO URL the metadata names (configured `sso_url` wins).
    pub sso_url: Option<String>,
}

/// Why a metadata fetch failed.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    /// The HTTP exchange failed.
    #[error("metadata: {0}")]
    Fetch(#[from] FetchError),
    /// Not usable metadata.
    #[error("metadata: {0}")]
    Garbage(String),
}

/// One IdP's certificates.
pub struct IdpCertificates {
    name: String,
    entity_id: String,
    source: Option<MetadataUrl>,
    client: Option<HttpClient>,
    clock: SharedClock,
    /// The set and its generation, read and written as one: the generation is bumped when the
    /// set changes, and verifications cached under an older one are done again.
    current: RwLock<Arc<(Certificates, u64)>>,
    loaded: AtomicBool,
    last_fetch: LastFetch,
    /// Every fetch, scheduled or early, runs under this: answers are applied in order, and an
    /// early caller waits for the fetch in flight instead of being refused for it.
    fetching: tokio::sync::Mutex<()>,
    last_error: Mutex<Option<String>>,
    /// Fetch counters.
    pub counters: KeyCounters,
}

impl IdpCertificates {
    /// The configured IdP's certificates; with a `metadata_url`, none until fetched by `client`.
    pub fn new(idp: &SamlIdp, client: Option<HttpClient>, clock: SharedClock) -> Arc<IdpCertificates> {
        let fixed = Certificates { ders: idp.certificates.clone(), sso_url: None };
        warn_if_development(&idp.name, &fixed.ders, &[]);
        Arc::new(IdpCertificates {
            name: idp.name.clone(),
            entity_id: idp.entity_id.clone(),
            loaded: AtomicBool::new(idp.metadata_url.is_none()),
            source: idp.metadata_url.clone(),
            client,
            clock,
            current: RwLock::new(Arc::new((fixed, 0))),
            last_fetch: LastFetch::default(),
            fetching: tokio::sync::Mutex::new(()),
            last_error: Mutex::new(None),
            counters: KeyCounters::default(),
        })
    }

    /// The IdP's configured name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether `idp` (a reloaded configuration's) names the same IdP fetched the same way.
    pub fn fetches_as(&self, idp: &SamlIdp) -> bool {
        self.name == idp.name && self.entity_id == idp.entity_id && self.source == idp.metadata_url
    }

    /// Whether the certificates come from a URL (and so need [`IdpCertificates::run`]).
    pub fn is_fetched(&self) -> bool {
        self.source.is_some()
    }

    /// Whether certificates are in force (configured ones always are).
    pub fn is_loaded(&self) -> bool {
        self.loaded.load(Ordering::Acquire)
    }

    /// The set's generation.
    pub fn generation(&self) -> u64 {
        // On every cached SAML request: read under the lock, no Arc clone.
        match self.current.read() {
            Ok(guard) => guard.1,
            Err(poisoned) => poisoned.into_inner().1,
        }
    }

    fn read(&self) -> Arc<(Certificates, u64)> {
        match self.current.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Why the last fetch failed, if it did.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|e| e.clone())
    }

    /// The certificates in force, and their generation.
    pub fn snapshot(&self) -> Arc<(Certificates, u64)> {
        self.read()
    }

    /// Fetches the metadata now (after any fetch in flight); good certificates stay when it fails.
    pub async fn refresh_now(&self) -> Result<Option<Duration>, MetadataError> {
        let _one = self.fetching.lock().await;
        self.fetch_and_apply().await
    }

    async fn fetch_and_apply(&self) -> Result<Option<Duration>, MetadataError> {
        self.last_fetch.stamp(self.clock.now_millis());
        match self.fetch().await {
            Ok((fresh, max_age)) => {
                let before = self.read();
                if before.0 != fresh {
                    warn_if_development(&self.name, &fresh.ders, &before.0.ders);
                    let next = Arc::new((fresh, before.1 + 1));
                    match self.current.write() {
                        Ok(mut guard) => *guard = next,
                        Err(poisoned) => *poisoned.into_inner() = next,
                    }
                    tracing::info!(idp = %self.name, "SAML metadata loaded: signing certificates changed");
                }
                self.loaded.store(true, Ordering::Release);
                self.counters.ok.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut last) = self.last_error.lock() {
                    *last = None;
                }
                Ok(max_age)
            }
            Err(e) => {
                self.counters.failed.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut last) = self.last_error.lock() {
                    *last = Some(e.to_string());
                }
                tracing::warn!(idp = %self.name, error = %e, "SAML metadata fetch failed; keeping the last good certificates");
                Err(e)
            }
        }
    }

    /// An early fetch after an assertion of this IdP verified with none of the certificates of
    /// generation `seen`, if the rate limit allows one (single flight). Whether the certificates
    /// are now others than those.
    pub async fn refetch_for_unknown_signer(&self, seen: u64) -> bool {
        let Some(source) = &self.source else { return false };
        // Behind the fetch in flight, if any: what it brought may verify the assertion.
        let _one = self.fetching.lock().await;
        if self.generation() != seen {
            return true;
        }
        let before = seen;
        match self.last_fetch.early(self.clock.now_millis(), source.min_refetch_interval, self.is_loaded()) {
            Early::Allowed => {}
            Early::Limited => {
                self.counters.refetch_limited.fetch_add(1, Ordering::Relaxed);
                return false;
            }
            Early::TooSoon => return false,
        }
        tracing::info!(idp = %self.name, "No certificate verifies an assertion; fetching the metadata again");
        let _ = self.fetch_and_apply().await;
        self.generation() != before
    }

    async fn fetch(&self) -> Result<(Certificates, Option<Duration>), MetadataError> {
        let (Some(source), Some(client)) = (&self.source, &self.client) else {
            return Err(MetadataError::Garbage("no metadata_url".into()));
        };
        let req = http::Request::get(source.url.clone())
            .header(http::header::ACCEPT, "application/samlmetadata+xml, application/xml, text/xml")
            .body(crate::body::empty())
            .map_err(|e| FetchError::Request(e.to_string()))?;
        let (headers, body) = send_small(client, req, FETCH_TIMEOUT, MAX_DOCUMENT).await?;
        let text = std::str::from_utf8(&body).map_err(|_| MetadataError::Garbage("not UTF-8".into()))?;
        let meta = parse_metadata(text).map_err(MetadataError::Garbage)?;
        // A stale copy (replayed, or cached too long) would bring back withdrawn certificates.
        if meta.valid_until.is_some_and(|t| t <= self.clock.unix().0 as i64) {
            return Err(MetadataError::Garbage("expired (validUntil is past)".into()));
        }
        // The configured entity id is the pin: metadata for another entity is not this IdP's.
        if meta.entity_id != self.entity_id {
            return Err(MetadataError::Garbage(format!(
                "names entity {:?}, not the configured {:?}",
                meta.entity_id, self.entity_id
            )));
        }
        let certificates = Certificates { ders: meta.signing_certificates, sso_url: meta.sso_redirect_url };
        Ok((certificates, crate::verify::refresh::max_age(&headers)))
    }

    /// Fetches at start and on the schedule, for ever.
    pub async fn run(self: Arc<Self>) {
        let Some(source) = self.source.clone() else { return };
        let this = self.clone();
        crate::verify::refresh::run(
            &self.name,
            "SAML metadata",
            source.min_refetch_interval,
            source.refresh_interval,
            || self.is_loaded(),
            || {
                let this = this.clone();
                async move { this.refresh_now().await.map_err(drop) }
            },
        )
        .await;
    }
}

/// Said once per certificate as it appears, not on every refresh.
fn warn_if_development(idp: &str, ders: &[Vec<u8>], before: &[Vec<u8>]) {
    if ders.iter().any(|c| !before.contains(c) && crate::verify::published::is_dev_certificate(c)) {
        tracing::warn!(idp = %idp, "The IdP's certificates include a published development certificate (certs/): anyone can sign assertions it accepts");
    }
}
