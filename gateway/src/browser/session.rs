//! Sealed cookies: AES-256-GCM (encrypted and authenticated), no server-side store. The first
//! configured key seals; every key opens, so keys rotate without signing anyone out. The cookie
//! name is the associated data: a login-state cookie cannot stand in for a session.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::HeaderMap;
use serde::{Deserialize, Serialize, de::DeserializeOwned};

/// The session cookie's name over plain HTTP (`[session] secure = false`).
pub const SESSION_COOKIE: &str = "mfagate_session";
/// The sign-in state cookie's name (request id, return URL, attempts) over plain HTTP.
pub const LOGIN_COOKIE: &str = "mfagate_login";
/// The session cookie's name with `Secure` cookies.
pub const HOST_SESSION_COOKIE: &str = "__Host-mfagate_session";
/// The sign-in state cookie's name with `Secure` cookies.
pub const HOST_LOGIN_COOKIE: &str = "__Host-mfagate_login";
/// Every name the gateway's cookies go by: none of them reaches an upstream.
pub const OWN_COOKIES: [&str; 4] = [SESSION_COOKIE, LOGIN_COOKIE, HOST_SESSION_COOKIE, HOST_LOGIN_COOKIE];

/// How the browser comes back to the gateway with the sign-in state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Return {
    /// A top-level GET (the OIDC callback): `SameSite=Lax` cookies are sent.
    TopLevelGet,
    /// A cross-site POST (the SAML ACS, HTTP-POST binding): only `SameSite=None` cookies are.
    CrossSitePost,
}

/// The gateway's cookie names and attributes. With `Secure` cookies (HTTPS) the names carry
/// the `__Host-` prefix: the browser then takes them only with `Secure`, `Path=/` and no
/// `Domain`, so neither a sibling subdomain nor a plain-HTTP page can plant one (session
/// fixation). Over plain HTTP (`secure = false`, development) browsers refuse `__Host-` and
/// `SameSite=None` cookies alike, so the names stay plain and every cookie is `SameSite=Lax`.
#[derive(Debug, Clone, Copy)]
pub struct Cookies {
    secure: bool,
}

impl Cookies {
    /// Names and attributes for `[session] secure`.
    pub fn new(secure: bool) -> Cookies {
        Cookies { secure }
    }

    /// The session cookie's name.
    pub fn session(self) -> &'static str {
        if self.secure { HOST_SESSION_COOKIE } else { SESSION_COOKIE }
    }

    /// The sign-in state cookie's name.
    pub fn login(self) -> &'static str {
        if self.secure { HOST_LOGIN_COOKIE } else { LOGIN_COOKIE }
    }

    /// The session's `Set-Cookie`: `SameSite=Lax`, sent on top-level navigations from elsewhere
    /// (links into the application), never on cross-site subrequests or POSTs.
    pub fn set_session(self, value: &str, max_age: u64) -> String {
        set_cookie(self.session(), value, max_age, "Lax", self.secure)
    }

    /// The sign-in state's `Set-Cookie`. It must come back with the IdP's answer: on a top-level
    /// GET `Lax` does; on the ACS's cross-site POST only `SameSite=None`, which browsers accept
    /// only with `Secure`. Over plain HTTP it stays `Lax`, and the ACS posts the Response again
    /// from its own origin, where the `Lax` cookie goes along (see `portal::acs`).
    pub fn set_login(self, value: &str, max_age: u64, back: Return) -> String {
        let same_site = if self.secure && back == Return::CrossSitePost { "None" } else { "Lax" };
        set_cookie(self.login(), value, max_age, same_site, self.secure)
    }
}

/// A signed-in browser user.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Session {
    /// Object id (or NameID).
    pub sub: String,
    /// Tenant id.
    pub tid: Option<String>,
    /// UPN, for display.
    pub upn: Option<String>,
    /// Whether the sign-in showed MFA.
    pub mfa: bool,
    /// When the user signed in (Unix seconds).
    pub auth_time: u64,
    /// When the session ends (Unix seconds).
    pub exp: u64,
    /// The identity provider's configured name.
    pub idp: String,
    /// What the IdP of that name was when the user signed in (its identity and MFA rules): a
    /// reload that replaces it ends the sessions it made.
    #[serde(default)]
    pub idp_fingerprint: String,
}

/// The identity and MFA rules of the IdP or issuer named `name` in `config`: what a session it
/// made stands on. Certificates and keys are left out (a rollover keeps sessions).
pub fn idp_fingerprint(config: &crate::config::Config, name: &str) -> String {
    let described = if let Some(idp) = config.saml_idps.iter().find(|i| i.name == name) {
        format!("saml\0{}\0{:?}", idp.entity_id, idp.mfa)
    } else if let Some(i) = config.issuers.iter().find(|i| i.name == name) {
        format!("oidc\0{}\0{:?}\0{:?}", i.issuer, i.tenants, i.mfa)
    } else {
        return String::new();
    };
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(&crate::verify::jwt::sha256(described.as_bytes())[..16])
}

/// A sign-in in progress, and the loop guard's memory.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq, Eq)]
pub struct LoginState {
    /// The AuthnRequest ID the assertion must answer (InResponseTo).
    pub request_id: String,
    /// The RelayState sent with it.
    pub relay: String,
    /// Where to go after signing in (a path on this gateway, never another site).
    pub return_to: String,
    /// MFA re-prompts in the current window.
    pub attempts: u32,
    /// When that window started (Unix seconds).
    pub window_start: u64,
    /// When this state stops being accepted (Unix seconds).
    pub exp: u64,
    /// The `login` (SAML IdP or OIDC issuer name) this sign-in went to.
    #[serde(default)]
    pub idp: String,
    /// OIDC: the `nonce` the ID token must carry.
    #[serde(default)]
    pub nonce: String,
    /// OIDC: the PKCE code verifier.
    #[serde(default)]
    pub verifier: String,
}

/// A session key could not be used.
#[derive(Debug, thiserror::Error)]
#[error("session key {index}: {reason}")]
pub struct SessionKeyError {
    index: usize,
    reason: &'static str,
}

/// Seals and opens cookies with the configured keys.
pub struct Sealer {
    keys: Vec<([u8; 4], LessSafeKey)>,
    rng: SystemRandom,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sealer({} keys, <redacted>)", self.keys.len())
    }
}

impl Sealer {
    /// Keys as base64 of 32 random bytes; the first seals.
    pub fn new(keys: &[crate::config::Secret]) -> Result<Sealer, SessionKeyError> {
        let mut out = Vec::new();
        for (index, k) in keys.iter().enumerate() {
            let bytes = crate::config::session_key_bytes(k.expose())
                .map_err(|reason| SessionKeyError { index, reason })?;
            let tag = crate::verify::jwt::sha256(&bytes);
            let key = UnboundKey::new(&AES_256_GCM, &bytes)
                .map_err(|_| SessionKeyError { index, reason: "rejected" })?;
            out.push(([tag[0], tag[1], tag[2], tag[3]], LessSafeKey::new(key)));
        }
        Ok(Sealer { keys: out, rng: SystemRandom::new() })
    }

    /// Whether any key is configured.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Seals `value` for the cookie `name`.
    pub fn seal<T: Serialize>(&self, name: &str, value: &T) -> Option<String> {
        let (tag, key) = self.keys.first()?;
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).ok()?;
        let mut data = serde_json::to_vec(value).ok()?;
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(name.as_bytes()),
            &mut data,
        )
        .ok()?;
        let mut out = Vec::with_capacity(4 + NONCE_LEN + data.len());
        out.extend_from_slice(tag);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&data);
        Some(URL_SAFE_NO_PAD.encode(out))
    }

    /// Opens a sealed cookie `name`; `None` if it was not sealed by one of our keys for that name.
    pub fn open<T: DeserializeOwned>(&self, name: &str, sealed: &str) -> Option<T> {
        let raw = URL_SAFE_NO_PAD.decode(sealed).ok()?;
        if raw.len() < 4 + NONCE_LEN + 16 {
            return None;
        }
        let (tag, rest) = raw.split_at(4);
        let (nonce, data) = rest.split_at(NONCE_LEN);
        let (_, key) = self.keys.iter().find(|(t, _)| t == tag)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut data = data.to_vec();
        let plain = key.open_in_place(nonce, Aad::from(name.as_bytes()), &mut data).ok()?;
        serde_json::from_slice(plain).ok()
    }
}

/// A cookie's value from the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value: HttpOnly, Path=/ (no Domain), SameSite as given, Secure if asked.
fn set_cookie(name: &str, value: &str, max_age: u64, same_site: &str, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{name}={value}; Max-Age={max_age}; Path=/; HttpOnly; SameSite={same_site}{secure}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
    const K2: &str = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=";

    fn session() -> Session {
        Session {
            sub: "u".into(),
            tid: None,
            upn: None,
            mfa: true,
            auth_time: 1,
            exp: 2,
            idp: "adfs".into(),
            idp_fingerprint: String::new(),
        }
    }

    #[test]
    fn seal_open_rotate_and_refuse_tampering() {
        let old = Sealer::new(&[K1.into()]).unwrap();
        let sealed = old.seal(SESSION_COOKIE, &session()).unwrap();
        assert_eq!(old.open::<Session>(SESSION_COOKIE, &sealed), Some(session()));
        // Rotation: a new first key seals, the old one still opens.
        let rotated = Sealer::new(&[K2.into(), K1.into()]).unwrap();
        assert_eq!(rotated.open::<Session>(SESSION_COOKIE, &sealed), Some(session()));
        let fresh = rotated.seal(SESSION_COOKIE, &session()).unwrap();
        assert_eq!(
            old.open::<Session>(SESSION_COOKIE, &fresh),
            None,
            "the old set does not know the new key"
        );
        // Another cookie name, or a flipped bit, opens nothing.
        assert_eq!(old.open::<Session>(LOGIN_COOKIE, &sealed), None);
        let mut bytes = URL_SAFE_NO_PAD.decode(&sealed).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert_eq!(old.open::<Session>(SESSION_COOKIE, &URL_SAFE_NO_PAD.encode(bytes)), None);
        assert!(Sealer::new(&["c2hvcnQ=".into()]).is_err());
    }

    #[test]
    fn cookie_names_and_attributes_browsers_accept_in_both_modes() {
        let https = Cookies::new(true);
        assert_eq!(
            https.set_session("v", 60),
            "__Host-mfagate_session=v; Max-Age=60; Path=/; HttpOnly; SameSite=Lax; Secure"
        );
        assert_eq!(
            https.set_login("v", 60, Return::CrossSitePost),
            "__Host-mfagate_login=v; Max-Age=60; Path=/; HttpOnly; SameSite=None; Secure"
        );
        assert_eq!(
            https.set_login("v", 60, Return::TopLevelGet),
            "__Host-mfagate_login=v; Max-Age=60; Path=/; HttpOnly; SameSite=Lax; Secure"
        );
        // Plain HTTP: no prefix and no SameSite=None, both of which need Secure.
        let http = Cookies::new(false);
        assert_eq!(
            http.set_session("v", 60),
            "mfagate_session=v; Max-Age=60; Path=/; HttpOnly; SameSite=Lax"
        );
        for back in [Return::CrossSitePost, Return::TopLevelGet] {
            assert_eq!(
                http.set_login("v", 60, back),
                "mfagate_login=v; Max-Age=60; Path=/; HttpOnly; SameSite=Lax"
            );
        }
        assert!(OWN_COOKIES.iter().all(|n| n.ends_with("mfagate_session") || n.ends_with("mfagate_login")));
    }

    #[test]
    fn cookies_are_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(http::header::COOKIE, "a=1; mfagate_session=xyz; b=2".parse().unwrap());
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("xyz"));
        assert_eq!(cookie(&h, LOGIN_COOKIE), None);
    }
}
