//! JWT verification: read the compact form strictly ([`compact`]), refuse header extensions
//! ([`header`]), pick the issuer by `iss` (with `{tenantid}` from `tid`), check `typ` and the
//! issuer's pinned algorithms, find the key by `kid` (never by jku, x5u, jwk or x5c), verify the
//! signature and audience, and turn the claims into policy facts. Verified tokens are cached
//! under their SHA-256 until `exp`; the policy checks `exp`/`nbf` against `now` every time.

pub mod compact;
#[cfg(test)]
mod decode_tests;
pub mod header;
mod registered;
pub mod signature;
#[cfg(test)]
mod tests;

use crate::clock::SharedClock;
use crate::config::{IssuerConfig, Tenants};
use crate::verify::keys::{IssuerKeys, Lookup};
use header::Expected;
use jsonwebtoken::Algorithm;
use mfagate_policy::{Amr, InvalidReason, TokenFacts, TokenVersion, UnixTime};
use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;

/// Who a verified token names. Nothing here is secret: no token, no signature.
#[derive(Debug, Clone, Default)]
pub struct Identity {
    /// The configured issuer name.
    pub issuer: String,
    /// `tid`.
    pub tenant_id: Option<String>,
    /// `oid` (or `sub` when there is no `oid`).
    pub object_id: Option<String>,
    /// `upn`, else `unique_name`; never `preferred_username`, which Microsoft documents as
    /// mutable and not for authorization.
    pub upn: Option<String>,
    /// `appid` (v1) or `azp` (v2).
    pub app_id: Option<String>,
    /// `amr` as sent, if it was a list of strings.
    pub amr: Vec<String>,
}

/// A verified token.
#[derive(Debug)]
pub struct Verified {
    /// Facts for the policy.
    pub facts: TokenFacts,
    /// Who it names.
    pub identity: Identity,
    /// Index of the issuer in the configuration.
    pub issuer_index: usize,
    /// `xms_cc` ∋ `cp1`: the client can answer a claims challenge.
    pub claims_capable: bool,
    /// `nonce` (ID tokens).
    pub nonce: Option<String>,
    /// `sub`, which a userinfo response must repeat (ID tokens).
    pub sub: Option<String>,
    /// The key that verified it: once the issuer withdraws (or changes) that key, the key set
    /// lets go of it and a cached token is verified again, and refused.
    pub key: std::sync::Weak<crate::verify::keys::VerifyKey>,
}

/// The outcome of verification.
#[derive(Debug, Clone)]
pub enum Verification {
    /// Signature, issuer and audience check out (times are the policy's to check).
    Verified(Arc<Verified>),
    /// Refused.
    Invalid(InvalidReason),
    /// The issuer's keys are not available.
    Unverifiable,
}

struct Issuer {
    cfg: IssuerConfig,
    keys: Arc<IssuerKeys>,
    /// `issuer` split around `{tenantid}`, if templated.
    template: Option<(String, String)>,
}

/// Verifies tokens for every configured issuer.
pub struct Verifier {
    issuers: Vec<Issuer>,
    /// Verified tokens by a keyed 64-bit hash of their bytes; each entry holds the token, and a
    /// hit counts only when the bytes are equal, so a collision is a miss, never another
    /// token's verdict. (A SHA-256 of a 1 KB token was a quarter of a cached request's
    /// instructions.)
    cache: moka::sync::Cache<u64, Arc<Cached>>,
    hasher: std::collections::hash_map::RandomState,
    clock: SharedClock,
    /// Tests: every token in one slot, as if every hash collided.
    #[cfg(test)]
    one_slot: bool,
}

/// A verified token and its bytes.
struct Cached {
    token: Box<str>,
    verified: Arc<Verified>,
}

impl crate::clock::Expires for Cached {
    fn expires(&self) -> mfagate_policy::UnixTime {
        self.verified.facts.expires
    }
}

/// What a cached token costs: its bytes and about what its verdict holds.
const CACHED_OVERHEAD: usize = 512;

/// Cache counters for /metrics.
#[derive(Debug, Default)]
pub struct CacheCounters {
    /// Tokens found in the cache.
    pub hits: std::sync::atomic::AtomicU64,
    /// Tokens verified from scratch.
    pub misses: std::sync::atomic::AtomicU64,
}

impl crate::clock::Expires for Verified {
    fn expires(&self) -> mfagate_policy::UnixTime {
        self.facts.expires
    }
}

#[derive(Deserialize)]
struct Routing {
    iss: Option<String>,
    tid: Option<String>,
}

#[derive(Deserialize)]
struct Claims {
    exp: Option<Value>,
    nbf: Option<Value>,
    ver: Option<String>,
    tid: Option<String>,
    oid: Option<String>,
    sub: Option<String>,
    upn: Option<String>,
    unique_name: Option<String>,
    appid: Option<String>,
    azp: Option<String>,
    client_id: Option<String>,
    aud: Option<Value>,
    at_hash: Option<Value>,
    c_hash: Option<Value>,
    auth_time: Option<Value>,
    appidacr: Option<String>,
    azpacr: Option<String>,
    idtyp: Option<String>,
    scp: Option<Value>,
    roles: Option<Value>,
    amr: Option<Value>,
    acrs: Option<Value>,
    xms_cc: Option<Value>,
    nonce: Option<String>,
}

impl Verifier {
    /// A verifier over the issuers and their key caches (same order as the configuration);
    /// `cache_capacity` in bytes (each token weighs its length plus 512).
    pub fn new(
        issuers: Vec<(IssuerConfig, Arc<IssuerKeys>)>,
        cache_capacity: u64,
        clock: SharedClock,
    ) -> Verifier {
        let issuers = issuers
            .into_iter()
            .map(|(cfg, keys)| {
                let template = cfg.issuer.split_once("{tenantid}").map(|(a, b)| (a.to_owned(), b.to_owned()));
                Issuer { cfg, keys, template }
            })
            .collect();
        let cache = moka::sync::Cache::builder()
            .max_capacity(cache_capacity)
            .weigher(|_, c: &Arc<Cached>| u32::try_from(c.token.len() + CACHED_OVERHEAD).unwrap_or(u32::MAX))
            .expire_after(crate::clock::UntilExpiry(clock.clone()))
            .build();
        Verifier {
            issuers,
            cache,
            hasher: std::collections::hash_map::RandomState::new(),
            clock,
            #[cfg(test)]
            one_slot: false,
        }
    }

    /// A verifier with a key cache per issuer, fetching through `client` (keys load when
    /// [`IssuerKeys::refresh_now`] or the refresh task first runs).
    pub fn for_issuers(
        issuers: &[IssuerConfig],
        client: &crate::outbound::HttpClient,
        cache_capacity: u64,
        clock: SharedClock,
    ) -> Verifier {
        let issuers = issuers
            .iter()
            .map(|cfg| (cfg.clone(), IssuerKeys::new(cfg, client.clone(), clock.clone())))
            .collect();
        Verifier::new(issuers, cache_capacity, clock)
    }

    /// The key caches, for readiness and metrics.
    pub fn keys(&self) -> impl Iterator<Item = &Arc<IssuerKeys>> {
        self.issuers.iter().map(|i| &i.keys)
    }

    /// The issuer named `name`: its index, configuration and keys.
    pub fn issuer_named(&self, name: &str) -> Option<(usize, &IssuerConfig, &Arc<IssuerKeys>)> {
        self.issuers.iter().enumerate().find(|(_, i)| i.cfg.name == name).map(|(n, i)| (n, &i.cfg, &i.keys))
    }

    /// The configuration of the issuer at `index`.
    pub fn issuer_config(&self, index: usize) -> Option<&IssuerConfig> {
        self.issuers.get(index).map(|i| &i.cfg)
    }

    /// Verifies a bearer token; `counters` records cache hits and misses.
    pub async fn verify(&self, token: &str, counters: &CacheCounters) -> Verification {
        use std::sync::atomic::Ordering::Relaxed;
        let slot = self.slot(token);
        if let Some(hit) = self.cache.get(&slot)
            && *hit.token == *token
        {
            if hit.verified.key.strong_count() > 0 {
                counters.hits.fetch_add(1, Relaxed);
                return Verification::Verified(hit.verified.clone());
            }
            self.cache.invalidate(&slot);
        }
        counters.misses.fetch_add(1, Relaxed);
        match self.verify_uncached(token, None).await {
            Ok(verified) => {
                let verified = Arc::new(verified);
                if verified.facts.expires > self.clock.unix() {
                    let cached = Cached { token: token.into(), verified: verified.clone() };
                    self.cache.insert(slot, Arc::new(cached));
                }
                Verification::Verified(verified)
            }
            Err(Failure::Invalid(why)) => Verification::Invalid(why),
            Err(Failure::Unverifiable) => Verification::Unverifiable,
        }
    }

    fn slot(&self, token: &str) -> u64 {
        #[cfg(test)]
        if self.one_slot {
            return 0;
        }
        std::hash::BuildHasher::hash_one(&self.hasher, token)
    }

    /// Verifies an ID token from a sign-in: signed by the issuer named `issuer`, for `client_id`
    /// (never accepted through [`Verifier::verify`], whose audiences are the API's). Not cached.
    pub async fn verify_id_token(
        &self,
        token: &str,
        issuer: &str,
        client_id: &str,
    ) -> Result<Verified, InvalidReason> {
        let audience = [client_id.to_owned()];
        match self.verify_uncached(token, Some(&audience)).await {
            Ok(v) if v.identity.issuer == issuer => Ok(v),
            Ok(_) => Err(InvalidReason::UnknownIssuer),
            Err(Failure::Invalid(why)) => Err(why),
            Err(Failure::Unverifiable) => Err(InvalidReason::UnknownKey),
        }
    }

    /// `audiences`: `None` for an access token (the issuer's audiences), the client id for an ID
    /// token.
    async fn verify_uncached(&self, token: &str, audiences: Option<&[String]>) -> Result<Verified, Failure> {
        use InvalidReason as I;
        // Everything below reads the bytes these checks passed.
        let parts = compact::split(token)?;
        let header = header::read(&parts.header)?;
        let routing: Routing = serde_json::from_slice(&parts.payload).map_err(|_| I::Malformed)?;
        let (index, issuer) = self.select_issuer(&routing)?;
        // A sign-in-only issuer (no `audiences`) issues no API credential, whatever `aud` says.
        if audiences.is_none() && issuer.cfg.audiences.is_empty() {
            return Err(I::WrongAudience.into());
        }
        let expected = match audiences {
            None => Expected::Access(&issuer.cfg.typ),
            Some(_) => Expected::IdToken,
        };
        if !header::typ_accepted(header.typ.as_deref(), expected) {
            return Err(I::TypNotAllowed.into());
        }
        let alg = header.alg.parse::<Algorithm>().map_err(|_| I::AlgorithmNotAllowed)?;
        if !issuer.cfg.algorithms.contains(&alg) {
            return Err(I::AlgorithmNotAllowed.into());
        }
        let key = match issuer.keys.lookup(header.kid.as_deref()).await {
            Lookup::Found(key) => key,
            Lookup::Unknown => return Err(I::UnknownKey.into()),
            Lookup::Unavailable => return Err(Failure::Unverifiable),
        };
        if !key.accepts(alg) {
            return Err(I::AlgorithmNotAllowed.into());
        }
        // What jsonwebtoken's `decode` did from here, in its order. Its header type refused a
        // standard member of the wrong type (`x5c` not a list of strings, `jwk` not a JWK).
        serde_json::from_slice::<jsonwebtoken::Header>(&parts.header).map_err(|_| I::ClaimsInvalid)?;
        if !key.verifies(alg, parts.signing_input.as_bytes(), &parts.signature) {
            return Err(I::BadSignature.into());
        }
        let claims: Claims = serde_json::from_slice(&parts.payload).map_err(|_| I::ClaimsInvalid)?;
        // Times are checked by the policy against the injected clock; iss was matched above.
        registered::check(&claims, audiences.unwrap_or(&issuer.cfg.audiences))?;
        // An ID token from this gateway's own sign-in (it always sends a nonce) is never an API
        // credential, even when its audience is also an API audience and it carries `roles`
        // (which would make it look App-only).
        if audiences.is_none() && issuer.cfg.client.is_some() && claims.nonce.is_some() {
            return Err(I::TypNotAllowed.into());
        }
        let mut verified = build(claims, index, &issuer.cfg.name).map_err(Failure::Invalid)?;
        verified.key = Arc::downgrade(&key);
        Ok(verified)
    }

    fn select_issuer(&self, routing: &Routing) -> Result<(usize, &Issuer), Failure> {
        let iss = routing.iss.as_deref().ok_or(InvalidReason::UnknownIssuer)?;
        let mut shape_match = None;
        for (i, issuer) in self.issuers.iter().enumerate() {
            match &issuer.template {
                None if issuer.cfg.issuer == iss => return Ok((i, issuer)),
                None => {}
                Some((prefix, suffix)) => {
                    let Some(middle) =
                        iss.strip_prefix(prefix.as_str()).and_then(|r| r.strip_suffix(suffix.as_str()))
                    else {
                        continue;
                    };
                    let tid = routing.tid.as_deref().unwrap_or_default();
                    if !crate::config::is_guid(tid) {
                        shape_match.get_or_insert(InvalidReason::ClaimsInvalid);
                        continue;
                    }
                    if middle != tid {
                        shape_match = Some(InvalidReason::WrongIssuer);
                        continue;
                    }
                    if let Tenants::Only(allowed) = &issuer.cfg.tenants
                        && !allowed.contains(&tid.to_ascii_lowercase())
                    {
                        shape_match = Some(InvalidReason::TenantNotAllowed);
                        continue;
                    }
                    return Ok((i, issuer));
                }
            }
        }
        Err(shape_match.unwrap_or(InvalidReason::UnknownIssuer).into())
    }
}

/// What a token claims, read without verifying it.
#[derive(Debug)]
pub struct Claimed {
    /// Facts for the policy, if they were true.
    pub facts: TokenFacts,
    /// Who it names (no issuer: none was matched).
    pub identity: Identity,
    /// `xms_cc` ∋ `cp1`.
    pub claims_capable: bool,
    /// Why every issuer refuses it whatever its keys, if one does (checked in the verifier's
    /// order): no `iss`; an algorithm no issuer can list (`none`, HS*, which the configuration
    /// refuses, or a name jsonwebtoken does not know); no `aud`.
    pub refused: Option<InvalidReason>,
}

/// Reads a token without verifying it (`mfagate inspect` without a key source): the same strict
/// compact form, header rules and claim rules as [`Verifier::verify`], but nothing it returns is
/// proven. Never a credential.
pub fn read_unverified(token: &str) -> Result<Claimed, InvalidReason> {
    let parts = compact::split(token)?;
    let header = header::read(&parts.header)?;
    let routing: Routing = serde_json::from_slice(&parts.payload).map_err(|_| InvalidReason::Malformed)?;
    let claims: Claims = serde_json::from_slice(&parts.payload).map_err(|_| InvalidReason::ClaimsInvalid)?;
    let no_aud = claims.aud.is_none();
    let v = build(claims, usize::MAX, "")?;
    let unlistable = matches!(
        header.alg.parse::<Algorithm>(),
        Err(_) | Ok(Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
    );
    let refused = if routing.iss.is_none() {
        Some(InvalidReason::UnknownIssuer)
    } else if unlistable {
        Some(InvalidReason::AlgorithmNotAllowed)
    } else if no_aud {
        Some(InvalidReason::WrongAudience)
    } else {
        None
    };
    Ok(Claimed { facts: v.facts, identity: v.identity, claims_capable: v.claims_capable, refused })
}

enum Failure {
    Invalid(InvalidReason),
    Unverifiable,
}

impl From<InvalidReason> for Failure {
    fn from(r: InvalidReason) -> Self {
        Failure::Invalid(r)
    }
}

/// SHA-256, the verified-token cache key.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

fn unix_time(value: &Option<Value>) -> Result<Option<UnixTime>, InvalidReason> {
    match value {
        None => Ok(None),
        Some(v) => v
            .as_f64()
            .filter(|f| *f >= 0.0)
            .map(|f| Some(UnixTime(f as u64)))
            .ok_or(InvalidReason::ClaimsInvalid),
    }
}

fn strings(value: &Option<Value>) -> Vec<String> {
    match value {
        Some(Value::Array(items)) => items.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect(),
        _ => Vec::new(),
    }
}

/// An `amr` claim as sent: a list of strings, a string, anything else, or nothing.
pub fn amr_claim(value: &Option<Value>) -> Amr {
    match value {
        None => Amr::Absent,
        Some(Value::String(s)) => Amr::Text(s.clone()),
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => Amr::List(strings(value)),
        Some(_) => Amr::Malformed,
    }
}

fn build(c: Claims, issuer_index: usize, issuer: &str) -> Result<Verified, InvalidReason> {
    let expires = unix_time(&c.exp)?.ok_or(InvalidReason::ClaimsInvalid)?;
    let not_before = unix_time(&c.nbf)?;
    let version = match c.ver.as_deref() {
        None => TokenVersion::Unversioned,
        Some("1.0") => TokenVersion::V1,
        Some("2.0") => TokenVersion::V2,
        Some(_) => return Err(InvalidReason::ClaimsInvalid),
    };
    let amr = amr_claim(&c.amr);
    let has_scp = match &c.scp {
        Some(Value::String(s)) => !s.trim().is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        _ => false,
    };
    let has_roles = matches!(&c.roles, Some(Value::Array(a)) if !a.is_empty());
    // An App-only token names its application (Entra's `appid`/`azp`, RFC 9068's `client_id`). A
    // user's ID token does not, and with app roles it would otherwise pass as App-only, past MFA.
    let app_id = c.appid.or(c.azp).or(c.client_id);
    let app_only_shape = c.idtyp.as_deref() == Some("app") || (!has_scp && has_roles);
    // Nor does it carry what only a user's sign-in puts in a token (an ID token's `nonce`,
    // `at_hash`, `auth_time`, `amr`, a user name): OpenID Connect ID tokens may name their client
    // in `azp`, so the application's name alone does not tell them apart.
    let user_sign_in = c.nonce.is_some()
        || c.at_hash.is_some()
        || c.c_hash.is_some()
        || c.auth_time.is_some()
        || c.amr.is_some()
        || c.upn.is_some()
        || c.unique_name.is_some();
    if app_only_shape && (app_id.is_none() || user_sign_in) {
        return Err(InvalidReason::ClaimsInvalid);
    }
    let identity = Identity {
        issuer: issuer.to_owned(),
        tenant_id: c.tid,
        object_id: c.oid.or_else(|| c.sub.clone()),
        upn: c.upn.or(c.unique_name),
        app_id,
        amr: if let Amr::List(v) = &amr { v.clone() } else { Vec::new() },
    };
    let facts = TokenFacts {
        version,
        idtyp: c.idtyp,
        has_scp,
        has_roles,
        amr,
        acrs: strings(&c.acrs),
        client_auth: c.appidacr.or(c.azpacr),
        expires,
        not_before,
    };
    let claims_capable = strings(&c.xms_cc).iter().any(|v| v == "cp1");
    Ok(Verified {
        facts,
        identity,
        issuer_index,
        claims_capable,
        nonce: c.nonce,
        sub: c.sub,
        key: std::sync::Weak::new(),
    })
}
