//! An issuer's signing keys: fetched at start (readiness waits for them), refreshed on a schedule
//! within Cache-Control bounds, and refetched on an unknown `kid` at most once per
//! `min_refetch_interval`, single-flight. A failed or garbage fetch never replaces good keys.

use crate::clock::SharedClock;
use crate::config::{IssuerConfig, KeySource};
use crate::outbound::{FetchError, HttpClient, get_small};
use crate::verify::jwt::signature::ParsedKey;
use crate::verify::refresh::Early;
use http::Uri;
use jsonwebtoken::jwk::{Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_DOCUMENT: usize = 1024 * 1024;

/// A verification key from a JWKS.
pub struct VerifyKey {
    /// Its family: tokens must use an algorithm of it.
    family: AlgorithmFamily,
    /// The key, parsed once for each algorithm it may check.
    parsed: ParsedKey,
    /// The `alg` the JWK declares, if any: tokens must then use exactly it.
    pub alg: Option<Algorithm>,
    /// Its `kid` (`#n`, its place in the set, when the JWK has none).
    pub kid: String,
    /// Its RFC 7638 thumbprint (SHA-256, base64url): names the key without showing it.
    pub thumbprint: Option<String>,
    /// The JWK as published, to tell an unchanged key across refreshes.
    material: Vec<u8>,
}

impl VerifyKey {
    /// Whether a token signed with `alg` may be checked with this key.
    pub fn accepts(&self, alg: Algorithm) -> bool {
        self.family == alg.family() && self.alg.is_none_or(|a| a == alg)
    }

    /// Whether `signature` is this key's signature of `message` under `alg` (refused unless
    /// [`VerifyKey::accepts`] it).
    pub fn verifies(&self, alg: Algorithm, message: &[u8], signature: &[u8]) -> bool {
        self.accepts(alg) && self.parsed.verifies(alg, message, signature)
    }
}

impl std::fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VerifyKey(<public key>)")
    }
}

#[derive(Default)]
struct KeySet {
    by_kid: HashMap<String, Arc<VerifyKey>>,
    generation: u64,
}

/// What an issuer's discovery document says about its OAuth endpoints.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Discovered {
    /// `authorization_endpoint`.
    pub authorization_endpoint: Option<String>,
    /// `token_endpoint`.
    pub token_endpoint: Option<String>,
    /// `userinfo_endpoint`.
    pub userinfo_endpoint: Option<String>,
    /// `token_endpoint_auth_methods_supported`, if published as a list of strings (absent means
    /// `client_secret_basic` alone, RFC 8414 §2).
    pub token_endpoint_auth_methods: Option<Vec<String>>,
}

/// What a key lookup found.
pub enum Lookup {
    /// The key.
    Found(Arc<VerifyKey>),
    /// No such key, even after any refetch allowed now.
    Unknown,
    /// No keys have ever been loaded for this issuer.
    Unavailable,
}

/// Why a fetch failed.
#[derive(Debug, thiserror::Error)]
pub enum KeyFetchError {
    /// The HTTP exchange failed.
    #[error("{what}: {source}")]
    Fetch {
        /// Which document.
        what: &'static str,
        /// Why.
        source: FetchError,
    },
    /// The document was not what it should be.
    #[error("{0}")]
    Garbage(&'static str),
    /// A key file could not be read.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Counters for /metrics.
#[derive(Debug, Default)]
pub struct KeyCounters {
    /// Successful fetches.
    pub ok: AtomicU64,
    /// Failed fetches.
    pub failed: AtomicU64,
    /// Unknown-kid refetches that were skipped by the rate limit.
    pub refetch_limited: AtomicU64,
    /// When the last fetch succeeded, Unix milliseconds (0: never).
    last_ok_ms: AtomicU64,
}

/// One issuer's keys.
pub struct IssuerKeys {
    name: String,
    source: KeySource,
    client: HttpClient,
    clock: SharedClock,
    min_refetch: Duration,
    refresh: Duration,
    set: RwLock<Arc<KeySet>>,
    jwks_uri: Mutex<Option<Uri>>,
    endpoints: Mutex<Option<Discovered>>,
    discovered_issuer: Mutex<Option<String>>,
    last_error: Mutex<Option<String>>,
    loaded: AtomicBool,
    last_fetch: crate::verify::refresh::LastFetch,
    refetch: tokio::sync::Mutex<()>,
    /// Fetch counters.
    pub counters: KeyCounters,
}

impl IssuerKeys {
    /// Keys for an issuer; nothing is fetched until [`IssuerKeys::run`] or a lookup.
    pub fn new(cfg: &IssuerConfig, client: HttpClient, clock: SharedClock) -> Arc<IssuerKeys> {
        Arc::new(IssuerKeys {
            name: cfg.name.clone(),
            source: cfg.keys.clone(),
            client,
            clock,
            min_refetch: cfg.min_refetch_interval,
            refresh: cfg.refresh_interval,
            set: RwLock::new(Arc::new(KeySet::default())),
            jwks_uri: Mutex::new(None),
            endpoints: Mutex::new(None),
            discovered_issuer: Mutex::new(None),
            last_error: Mutex::new(None),
            loaded: AtomicBool::new(false),
            last_fetch: Default::default(),
            refetch: tokio::sync::Mutex::new(()),
            counters: KeyCounters::default(),
        })
    }

    /// Whether these keys are fetched as `cfg` says (same name, source and schedule): a reload
    /// keeps them, with what they already fetched, instead of fetching again.
    pub fn fetches_as(&self, cfg: &IssuerConfig) -> bool {
        self.name == cfg.name
            && self.source == cfg.keys
            && self.min_refetch == cfg.min_refetch_interval
            && self.refresh == cfg.refresh_interval
    }

    /// The issuer's configured name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The authorization and token endpoints from discovery, once fetched.
    pub fn discovered_endpoints(&self) -> Option<(String, String)> {
        let d = self.discovered()?;
        Some((d.authorization_endpoint?, d.token_endpoint?))
    }

    /// What the last discovery document said about the endpoints, once fetched.
    pub fn discovered(&self) -> Option<Discovered> {
        self.endpoints.lock().ok().and_then(|e| e.clone())
    }

    /// The `issuer` the discovery document names, once fetched.
    pub fn discovered_issuer(&self) -> Option<String> {
        self.discovered_issuer.lock().ok().and_then(|e| e.clone())
    }

    /// Why the last fetch failed, if it did.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|e| e.clone())
    }

    /// When the keys were last fetched successfully, Unix milliseconds.
    pub fn last_success_ms(&self) -> Option<u64> {
        Some(self.counters.last_ok_ms.load(Ordering::Acquire)).filter(|ms| *ms != 0)
    }

    /// How many keys the current set holds.
    pub fn key_count(&self) -> usize {
        self.snapshot().by_kid.len()
    }

    /// Whether keys have been loaded at least once.
    pub fn is_loaded(&self) -> bool {
        self.loaded.load(Ordering::Acquire)
    }

    fn snapshot(&self) -> Arc<KeySet> {
        match self.set.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn find(set: &KeySet, kid: Option<&str>) -> Option<Arc<VerifyKey>> {
        match kid {
            Some(kid) => set.by_kid.get(kid).cloned(),
            // A token without kid is only unambiguous when the issuer publishes one key.
            None if set.by_kid.len() == 1 => set.by_kid.values().next().cloned(),
            None => None,
        }
    }

    /// Finds the key for `kid`, refetching once if it is unknown and the rate limit allows.
    pub async fn lookup(&self, kid: Option<&str>) -> Lookup {
        let before = self.snapshot();
        if let Some(key) = Self::find(&before, kid) {
            return Lookup::Found(key);
        }
        // Single flight: whoever waits here sees the result of the fetch in progress.
        let _guard = self.refetch.lock().await;
        let current = self.snapshot();
        if current.generation != before.generation {
            return match Self::find(&current, kid) {
                Some(key) => Lookup::Found(key),
                None => Lookup::Unknown,
            };
        }
        match self.last_fetch.early(self.clock.now_millis(), self.min_refetch, self.is_loaded()) {
            Early::Allowed => {}
            Early::Limited => {
                self.counters.refetch_limited.fetch_add(1, Ordering::Relaxed);
                return Lookup::Unknown;
            }
            Early::TooSoon => return Lookup::Unavailable,
        }
        tracing::info!(issuer = %self.name, "Unknown key id; refetching keys");
        let _ = self.refresh_now().await;
        match Self::find(&self.snapshot(), kid) {
            Some(key) => Lookup::Found(key),
            None if self.is_loaded() => Lookup::Unknown,
            None => Lookup::Unavailable,
        }
    }

    /// Fetches now and swaps in the new keys if they are usable. Returns the Cache-Control max-age.
    pub async fn refresh_now(&self) -> Result<Option<Duration>, KeyFetchError> {
        // Stamp before the call, so a slow or failing IdP cannot be hammered meanwhile.
        self.last_fetch.stamp(self.clock.now_millis());
        // A child of the request that asked for an unknown key id (none for a scheduled refresh).
        let mut span = crate::evidence::traces::child("issuer.keys.fetch", &[("mfagate.issuer", &self.name)]);
        match self.fetch().await {
            Ok((mut by_kid, max_age)) => {
                let before = self.snapshot();
                // An unchanged key keeps its identity, so tokens cached under it stay valid; a
                // withdrawn or changed key takes its cached tokens with it (see `jwt`).
                for (kid, key) in by_kid.iter_mut() {
                    if let Some(old) = before.by_kid.get(kid).filter(|old| old.material == key.material) {
                        *key = old.clone();
                    } else if key.thumbprint.as_deref().is_some_and(crate::verify::published::is_dev_jwk) {
                        // Said once per key as it appears, not on every refresh.
                        tracing::warn!(issuer = %self.name, kid = %kid, "The issuer's key set holds a published development key (certs/): anyone can sign tokens it accepts");
                    }
                }
                let generation = before.generation + 1;
                let fresh = Arc::new(KeySet { by_kid, generation });
                match self.set.write() {
                    Ok(mut guard) => *guard = fresh,
                    Err(poisoned) => *poisoned.into_inner() = fresh,
                }
                self.loaded.store(true, Ordering::Release);
                self.counters.ok.fetch_add(1, Ordering::Relaxed);
                self.counters.last_ok_ms.store(self.clock.now_millis().max(1), Ordering::Release);
                if let Ok(mut last) = self.last_error.lock() {
                    *last = None;
                }
                Ok(max_age)
            }
            Err(e) => {
                self.counters.failed.fetch_add(1, Ordering::Relaxed);
                span.fail("key_fetch_failed");
                if let Ok(mut last) = self.last_error.lock() {
                    *last = Some(e.to_string());
                }
                tracing::warn!(issuer = %self.name, error = %e, "Key fetch failed; keeping the last good keys");
                Err(e)
            }
        }
    }

    async fn jwks_uri(&self) -> Result<Uri, KeyFetchError> {
        let discovery = match &self.source {
            KeySource::JwksUri(uri) => return Ok(uri.clone()),
            KeySource::Discovery(uri) => uri,
            KeySource::File(_) => return Err(KeyFetchError::Garbage("a key file has no URL")),
        };
        let known = self.jwks_uri.lock().ok().and_then(|g| g.clone());
        let fetched = get_small(&self.client, discovery, FETCH_TIMEOUT, MAX_DOCUMENT).await;
        let uri = match fetched {
            Ok((_, body)) => {
                #[derive(serde::Deserialize)]
                struct Discovery {
                    jwks_uri: String,
                    issuer: Option<String>,
                    authorization_endpoint: Option<String>,
                    token_endpoint: Option<String>,
                    // Read leniently: an odd value here must not cost the issuer its keys.
                    userinfo_endpoint: Option<serde_json::Value>,
                    token_endpoint_auth_methods_supported: Option<serde_json::Value>,
                }
                let doc: Discovery = serde_json::from_slice(&body)
                    .map_err(|_| KeyFetchError::Garbage("discovery document has no jwks_uri"))?;
                if let Ok(mut i) = self.discovered_issuer.lock() {
                    *i = doc.issuer.clone();
                }
                let methods = doc.token_endpoint_auth_methods_supported.map(|v| match v {
                    serde_json::Value::Array(items) => {
                        items.iter().filter_map(|m| m.as_str().map(str::to_owned)).collect()
                    }
                    _ => Vec::new(),
                });
                let discovered = Discovered {
                    authorization_endpoint: doc.authorization_endpoint,
                    token_endpoint: doc.token_endpoint,
                    userinfo_endpoint: doc.userinfo_endpoint.and_then(|v| v.as_str().map(str::to_owned)),
                    token_endpoint_auth_methods: methods,
                };
                if let Ok(mut e) = self.endpoints.lock() {
                    *e = Some(discovered);
                }
                doc.jwks_uri.parse::<Uri>().map_err(|_| KeyFetchError::Garbage("jwks_uri is not a URL"))?
            }
            // Discovery down but we know where the keys are: carry on with them.
            Err(_) if known.is_some() => return known.ok_or(KeyFetchError::Garbage("unreachable")),
            Err(source) => {
                return Err(KeyFetchError::Fetch { what: "discovery", source });
            }
        };
        if let Ok(mut g) = self.jwks_uri.lock() {
            *g = Some(uri.clone());
        }
        Ok(uri)
    }

    async fn fetch(&self) -> Result<(HashMap<String, Arc<VerifyKey>>, Option<Duration>), KeyFetchError> {
        if let KeySource::File(path) = &self.source {
            return Ok((parse_jwks(&read_key_file(path.clone()).await?)?, None));
        }
        let uri = self.jwks_uri().await?;
        let (headers, body) = get_small(&self.client, &uri, FETCH_TIMEOUT, MAX_DOCUMENT)
            .await
            .map_err(|source| KeyFetchError::Fetch { what: "jwks", source })?;
        let keys = parse_jwks(&body)?;
        Ok((keys, crate::verify::refresh::max_age(&headers)))
    }

    /// Keeps the keys fresh until the task is dropped: retries with backoff until the first
    /// load, then refreshes on schedule (Cache-Control max-age within bounds).
    pub async fn run(self: Arc<Self>) {
        let this = self.clone();
        crate::verify::refresh::run(
            &self.name,
            "issuer keys",
            self.min_refetch,
            self.refresh,
            || self.is_loaded(),
            || {
                let this = this.clone();
                async move { this.refresh_now().await.map_err(drop) }
            },
        )
        .await;
    }
}

/// Reads a JWKS file off the async workers, bounded like a fetched document.
async fn read_key_file(path: std::path::PathBuf) -> Result<Vec<u8>, KeyFetchError> {
    let shown = path.display().to_string();
    let read = tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let mut body = Vec::new();
        std::fs::File::open(&path)?.take(MAX_DOCUMENT as u64 + 1).read_to_end(&mut body)?;
        Ok::<_, std::io::Error>(body)
    })
    .await
    .map_err(|e| std::io::Error::other(e.to_string()))
    .and_then(|r| r);
    match read {
        Ok(body) if body.len() > MAX_DOCUMENT => Err(KeyFetchError::Garbage("key file larger than 1 MiB")),
        Ok(body) => Ok(body),
        Err(source) => Err(KeyFetchError::File { path: shown, source }),
    }
}

/// When to refresh next: the JWKS's Cache-Control max-age, kept between the refetch interval
/// (at least a minute) and a day; the configured interval when there is none.
/// Parses a JWKS, keeping the usable signature keys; refuses a set with none.
fn parse_jwks(body: &[u8]) -> Result<HashMap<String, Arc<VerifyKey>>, KeyFetchError> {
    #[derive(serde::Deserialize)]
    struct Set {
        keys: Vec<serde_json::Value>,
    }
    let set: Set = serde_json::from_slice(body).map_err(|_| KeyFetchError::Garbage("not a JWKS"))?;
    let mut out = HashMap::new();
    for (i, value) in set.keys.into_iter().enumerate() {
        let material = serde_json::to_vec(&value).unwrap_or_default();
        // One odd key (unknown kty, encryption key) must not cost us the others.
        let Ok(jwk) = serde_json::from_value::<Jwk>(value) else {
            continue;
        };
        let Some((alg, parse_for)) = signing_pin(&jwk) else {
            continue;
        };
        let Ok(key) = DecodingKey::from_jwk(&jwk) else {
            continue;
        };
        if key.family() == AlgorithmFamily::Hmac {
            continue;
        }
        // Parsed here, once, rather than on every verify; a key that parses for none of its
        // algorithms could never verify a token, and goes like one `from_jwk` refuses.
        let Some(parsed) = ParsedKey::new(&key, parse_for) else {
            continue;
        };
        let kid = jwk.common.key_id.clone().unwrap_or_else(|| format!("#{i}"));
        let thumbprint = jwk.thumbprint(jsonwebtoken::jwk::ThumbprintHash::SHA256).ok();
        let family = key.family();
        out.insert(kid.clone(), Arc::new(VerifyKey { family, parsed, alg, kid, thumbprint, material }));
    }
    if out.is_empty() {
        return Err(KeyFetchError::Garbage("JWKS has no usable signing key"));
    }
    Ok(out)
}

/// The algorithm a JWK declares (if any) and the one its key is parsed for (its `alg`, else its
/// curve's; none: every one of its family), or `None` when the JWK is no signature key: `use`
/// other than `sig`, `key_ops` without `verify`, an `alg` that names no signature algorithm
/// (`RSA-OAEP`, or one jsonwebtoken does not know: either left the key unpinned), or a `crv` that
/// is no signature curve. The curve binds EC and OKP keys: a P-256 point published as P-384 is
/// read for ES384 only, fails, and is left out.
fn signing_pin(jwk: &Jwk) -> Option<(Option<Algorithm>, Option<Algorithm>)> {
    use jsonwebtoken::jwk::{AlgorithmParameters as P, EllipticCurve as C, KeyOperations};
    if jwk.common.public_key_use.as_ref().is_some_and(|u| *u != PublicKeyUse::Signature) {
        return None;
    }
    if jwk.common.key_operations.as_ref().is_some_and(|ops| !ops.contains(&KeyOperations::Verify)) {
        return None;
    }
    let declared = match jwk.common.key_algorithm {
        None => None,
        Some(a) => Some(Algorithm::try_from(a).ok()?),
    };
    let curve = match &jwk.algorithm {
        P::EllipticCurve(p) => Some(match p.curve {
            C::P256 => Algorithm::ES256,
            C::P384 => Algorithm::ES384,
            _ => return None,
        }),
        P::OctetKeyPair(p) => Some(match p.curve {
            C::Ed25519 => Algorithm::EdDSA,
            _ => return None,
        }),
        _ => None,
    };
    match (declared, curve) {
        (Some(a), Some(c)) if a.family() == c.family() && a != c => None,
        (declared, curve) => Some((declared, declared.or(curve))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_and_odd_keys() {
        assert!(parse_jwks(b"<html>").is_err());
        assert!(parse_jwks(br#"{"keys":[]}"#).is_err());
        assert!(parse_jwks(br#"{"keys":[{"kty":"oct","k":"c2VjcmV0","kid":"h"}]}"#).is_err());
        let ec = r#"{"kty":"EC","crv":"P-256","kid":"e","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}"#;
        let keys = parse_jwks(format!(r#"{{"keys":[{{"kty":"weird"}},{ec}]}}"#).as_bytes()).unwrap();
        assert_eq!(keys.len(), 1);
        assert!(keys["e"].accepts(Algorithm::ES256));
        assert!(!keys["e"].accepts(Algorithm::RS256));
        // A point off the curve is dropped at load like a JWK jsonwebtoken cannot read; a key
        // pinned to another family's algorithm stays, and checks nothing.
        let off_curve = ec.replace("\"e\"", "\"off\"").replace("I5a0", "I5a1");
        let pinned = ec.replace("\"e\"", "\"p\"").replace("{\"kty\"", "{\"alg\":\"RS256\",\"kty\"");
        let keys = parse_jwks(format!(r#"{{"keys":[{off_curve},{pinned},{ec}]}}"#).as_bytes()).unwrap();
        let mut kids: Vec<&str> = keys.keys().map(String::as_str).collect();
        kids.sort_unstable();
        assert_eq!(kids, ["e", "p"]);
        assert!(!keys["p"].accepts(Algorithm::ES256) && !keys["p"].accepts(Algorithm::RS256));
        assert!(parse_jwks(format!(r#"{{"keys":[{off_curve}]}}"#).as_bytes()).is_err());
    }

    #[tokio::test]
    async fn a_key_file_is_read_on_each_refresh_and_a_bad_one_keeps_the_good_keys() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("keys.json");
        let ec = r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"e","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}"#;
        std::fs::write(&file, ec).unwrap();
        let toml = format!(
            "[decision_log]\npath = \"/dev/null\"\n[[issuer]]\nname = \"f\"\nissuer = \"https://idp.test/\"\n\
             jwks_file = \"{}\"\naudiences = [\"api://a\"]\nalgorithms = [\"ES256\"]\n",
            file.display()
        );
        let config = crate::Config::from_toml(&toml, std::path::Path::new(".")).unwrap();
        assert_eq!(config.issuers[0].keys, KeySource::File(file.clone()));
        let client = crate::outbound::client(None, Duration::from_secs(1)).unwrap();
        let keys = IssuerKeys::new(&config.issuers[0], client, crate::clock::ManualClock::at(1_767_225_600));
        keys.refresh_now().await.unwrap();
        let Lookup::Found(key) = keys.lookup(Some("e")).await else { panic!("key e") };
        assert_eq!((key.kid.as_str(), key.thumbprint.is_some()), ("e", true));
        std::fs::write(&file, "<html>").unwrap();
        assert!(keys.refresh_now().await.is_err());
        assert!(keys.last_error().is_some_and(|e| e.contains("JWKS")), "{:?}", keys.last_error());
        assert!(matches!(keys.lookup(Some("e")).await, Lookup::Found(_)), "the good key stays");
        std::fs::remove_file(&file).unwrap();
        let err = keys.refresh_now().await.unwrap_err().to_string();
        assert!(err.contains("keys.json"), "{err}");
    }
}
