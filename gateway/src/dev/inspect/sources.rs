//! The key source given on the command line, made into the verifiers the gateway runs: with
//! `--config` exactly the configured issuers and IdPs; with `--jwks`, `--issuer` or
//! `--idp-metadata` an issuer or IdP built in memory, and the list of checks that then cannot be
//! made (nobody said which audience, tenants or algorithms to expect).

use crate::clock::SharedClock;
use crate::config::{Config, IssuerConfig, KeySource, SamlIdp, Tenants};
use crate::outbound::HttpClient;
use crate::verify::jwt::Verifier;
use crate::verify::keys::IssuerKeys;
use crate::verify::saml::SamlVerifier;
use http::Uri;
use jsonwebtoken::Algorithm;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The key source given.
#[derive(Debug, Clone)]
pub enum Source {
    /// `--config FILE`.
    Config(PathBuf),
    /// `--jwks FILE_OR_URL`.
    Jwks(String),
    /// `--issuer URL`.
    Issuer(String),
    /// `--idp-metadata FILE_OR_URL`.
    IdpMetadata(String),
    /// None.
    None,
}

impl Source {
    /// The name used in `--json`.
    pub fn kind(&self) -> &'static str {
        match self {
            Source::Config(_) => "config",
            Source::Jwks(_) => "jwks",
            Source::Issuer(_) => "issuer",
            Source::IdpMetadata(_) => "idp_metadata",
            Source::None => "none",
        }
    }

    /// The file or URL.
    pub fn location(&self) -> Option<String> {
        match self {
            Source::Config(p) => Some(p.display().to_string()),
            Source::Jwks(s) | Source::Issuer(s) | Source::IdpMetadata(s) => Some(s.clone()),
            Source::None => None,
        }
    }
}

/// A key source that cannot be used as given (exit 3).
#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    /// The configuration does not load.
    #[error("{path}: invalid configuration\n  {}", .problems.join("\n  "))]
    Config {
        /// The file.
        path: String,
        /// Each problem.
        problems: Vec<String>,
    },
    /// A key file is unreadable or not what it should be.
    #[error("{0}")]
    KeyFile(String),
    /// The outbound client could not be built.
    #[error("{0}")]
    Client(String),
}

/// A verifier, or why there is none (the signature is then not checked).
pub enum Setup<T> {
    /// Ready, with the checks it cannot make.
    Ready(T, Vec<String>),
    /// Not available, and why.
    Missing(String),
}

/// The configuration (if `--config`) and an outbound client built from it.
pub struct Context {
    /// The key source.
    pub source: Source,
    /// The loaded configuration.
    pub config: Option<Config>,
    client: Option<HttpClient>,
    /// The clock every check reads.
    pub clock: SharedClock,
}

const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_DOCUMENT: usize = 1024 * 1024;

fn is_url(s: &str) -> bool {
    s.starts_with("https://") || s.starts_with("http://")
}

fn url(s: &str) -> Result<Uri, String> {
    s.parse::<Uri>().map_err(|_| format!("not a URL: {s:?}"))
}

impl Context {
    /// Loads `--config` if given (a usage error if it does not load).
    pub fn new(source: Source, clock: SharedClock) -> Result<Context, UsageError> {
        let config = match &source {
            Source::Config(path) => Some(Config::load(path).map_err(|e| UsageError::Config {
                path: path.display().to_string(),
                problems: e.problems(),
            })?),
            Source::Jwks(file) | Source::IdpMetadata(file) if !is_url(file) => {
                // Unreadable is a usage error whatever the document turns out to be.
                std::fs::File::open(file).map_err(|e| UsageError::KeyFile(format!("{file}: {e}")))?;
                None
            }
            _ => None,
        };
        Ok(Context { source, config, client: None, clock })
    }

    fn client(&mut self) -> Result<HttpClient, UsageError> {
        if let Some(c) = &self.client {
            return Ok(c.clone());
        }
        let (ca, timeout) = match &self.config {
            Some(c) => (c.outbound.ca_file.clone(), c.outbound.connect_timeout),
            None => (None, Duration::from_secs(5)),
        };
        let client =
            crate::outbound::client(ca.as_deref(), timeout).map_err(|e| UsageError::Client(e.to_string()))?;
        self.client = Some(client.clone());
        Ok(client)
    }

    /// The largest bearer token the gateway takes.
    pub fn max_token_bytes(&self) -> usize {
        self.config.as_ref().map_or(crate::config::DEFAULT_MAX_TOKEN_BYTES, |c| c.listen.max_token_bytes)
    }

    /// A SAML verifier that trusts nobody: for decoding base64 as the gateway does.
    pub fn saml_decoder(&self) -> SamlVerifier {
        SamlVerifier::new(
            Vec::new(),
            String::new(),
            Vec::new(),
            self.max_assertion_bytes(),
            self.clock.clone(),
        )
    }

    fn max_assertion_bytes(&self) -> usize {
        self.config
            .as_ref()
            .map_or(crate::config::DEFAULT_MAX_ASSERTION_BYTES, |c| c.saml.max_assertion_bytes)
    }

    /// The JWT verifier for this source. `iss` and `aud` are what the token claims: without a
    /// configuration they stand in for the issuer and audiences nobody gave.
    pub async fn jwt(&mut self, iss: Option<&str>, aud: &[String]) -> Result<Setup<Verifier>, UsageError> {
        let clock = self.clock.clone();
        match self.source.clone() {
            Source::Config(_) => {
                let client = self.client()?;
                let issuers = self.config.as_ref().map(|c| c.issuers.clone()).unwrap_or_default();
                let verifier = Verifier::for_issuers(&issuers, &client, 0, clock);
                // Loaded up front, as the gateway does before it is ready (a failure is kept
                // with its issuer's keys, and the lookup tries once more).
                let mut loads = tokio::task::JoinSet::new();
                for keys in verifier.keys() {
                    let keys = Arc::clone(keys);
                    loads.spawn(async move { keys.refresh_now().await.is_ok() });
                }
                while loads.join_next().await.is_some() {}
                Ok(Setup::Ready(verifier, Vec::new()))
            }
            Source::Jwks(location) => {
                let keys = if is_url(&location) {
                    KeySource::JwksUri(url(&location).map_err(UsageError::KeyFile)?)
                } else {
                    KeySource::File(PathBuf::from(&location))
                };
                let file = matches!(keys, KeySource::File(_));
                let cfg = ad_hoc_issuer("jwks", iss.unwrap_or_default(), keys, aud);
                let loaded = IssuerKeys::new(&cfg, self.client()?, clock.clone());
                if let Err(e) = loaded.refresh_now().await {
                    if file {
                        return Err(UsageError::KeyFile(format!("--jwks {location}: {e}")));
                    }
                    return Ok(Setup::Missing(format!("the key set could not be fetched: {e}")));
                }
                let not_checked = vec![
                    "issuer: no --config or --issuer, so the token's own iss was taken as trusted".to_owned(),
                    AUDIENCE_JWT.to_owned(),
                    TENANTS.to_owned(),
                    ALGORITHMS.to_owned(),
                ];
                Ok(Setup::Ready(Verifier::new(vec![(cfg, loaded)], 0, clock), not_checked))
            }
            Source::Issuer(location) => {
                let discovery = if location.contains("/.well-known/") {
                    location.clone()
                } else {
                    format!("{}/.well-known/openid-configuration", location.trim_end_matches('/'))
                };
                let keys = KeySource::Discovery(url(&discovery).map_err(UsageError::KeyFile)?);
                let mut cfg = ad_hoc_issuer("issuer", "", keys, aud);
                let loaded = IssuerKeys::new(&cfg, self.client()?, clock.clone());
                if let Err(e) = loaded.refresh_now().await {
                    return Ok(Setup::Missing(format!(
                        "OIDC discovery or its key set failed ({discovery}): {e}"
                    )));
                }
                let Some(issuer) = loaded.discovered_issuer() else {
                    return Ok(Setup::Missing(format!("{discovery} names no issuer")));
                };
                cfg.issuer = issuer;
                let not_checked = vec![AUDIENCE_JWT.to_owned(), TENANTS.to_owned(), ALGORITHMS.to_owned()];
                Ok(Setup::Ready(Verifier::new(vec![(cfg, loaded)], 0, clock), not_checked))
            }
            Source::IdpMetadata(_) => Ok(Setup::Missing(
                "--idp-metadata holds SAML certificates; a JWT needs --jwks, --issuer or --config".into(),
            )),
            Source::None => {
                Ok(Setup::Missing("no key source was given (--config, --jwks or --issuer)".into()))
            }
        }
    }

    /// The SAML verifier for this source. `audience` is what the assertion claims: without a
    /// configuration it stands in for the entity id nobody gave.
    pub async fn saml(&mut self, audience: Option<&str>) -> Result<Setup<SamlVerifier>, UsageError> {
        let max = self.max_assertion_bytes();
        match self.source.clone() {
            Source::Config(_) => {
                let client = self.client()?;
                let Some(c) = &self.config else { return Ok(Setup::Missing("no configuration".into())) };
                let verifier = SamlVerifier::new(
                    c.saml_idps.clone(),
                    c.saml.entity_id.clone(),
                    c.saml.recipients.clone(),
                    max,
                    self.clock.clone(),
                )
                .with_acs_url(c.saml.acs_url.as_ref().map(ToString::to_string))
                .with_metadata_client(&client);
                // As the gateway would before it is ready: an IdP's metadata_url, read once.
                for certs in verifier.certificates().filter(|c| c.is_fetched()) {
                    if let Err(e) = certs.refresh_now().await {
                        return Ok(Setup::Missing(format!("saml_idp {:?}: {e}", certs.name())));
                    }
                }
                Ok(Setup::Ready(verifier, vec![REPLAY.to_owned()]))
            }
            Source::IdpMetadata(location) => {
                let text = if is_url(&location) {
                    let uri = url(&location).map_err(UsageError::KeyFile)?;
                    match crate::outbound::get_small(&self.client()?, &uri, FETCH_TIMEOUT, MAX_DOCUMENT).await
                    {
                        Ok((_, body)) => String::from_utf8_lossy(&body).into_owned(),
                        Err(e) => {
                            return Ok(Setup::Missing(format!("the metadata could not be fetched: {e}")));
                        }
                    }
                } else {
                    std::fs::read_to_string(&location)
                        .map_err(|e| UsageError::KeyFile(format!("--idp-metadata {location}: {e}")))?
                };
                let meta = match crate::config::parse_metadata(&text) {
                    Ok(m) => m,
                    Err(e) if is_url(&location) => return Ok(Setup::Missing(format!("{location}: {e}"))),
                    Err(e) => return Err(UsageError::KeyFile(format!("--idp-metadata {location}: {e}"))),
                };
                let idp = SamlIdp {
                    name: "idp-metadata".into(),
                    entity_id: meta.entity_id,
                    certificates: meta.signing_certificates,
                    mfa: mfagate_policy::SamlMfaSettings::default(),
                    leeway_secs: 60,
                    sso_url: meta.sso_redirect_url,
                    accept_sso_responses_as_api: false,
                    metadata_url: None,
                };
                let verifier = SamlVerifier::new(
                    vec![idp],
                    audience.unwrap_or_default().to_owned(),
                    Vec::new(),
                    max,
                    self.clock.clone(),
                );
                let not_checked = vec![
                    "audience: no --config, so the assertion's own Audience was taken as this gateway's entity id"
                        .to_owned(),
                    "recipient: no --config, so any bearer Recipient was accepted".to_owned(),
                    REPLAY.to_owned(),
                ];
                Ok(Setup::Ready(verifier, not_checked))
            }
            Source::Jwks(_) | Source::Issuer(_) => Ok(Setup::Missing(
                "--jwks and --issuer hold JWT keys; a SAML document needs --idp-metadata or --config".into(),
            )),
            Source::None => Ok(Setup::Missing("no key source was given (--config or --idp-metadata)".into())),
        }
    }
}

const AUDIENCE_JWT: &str = "audience: no --config, so the token's own aud was taken as expected";
const TENANTS: &str = "tenant: no --config, so no tenant allow-list";
const ALGORITHMS: &str =
    "algorithm: no --config, so any asymmetric algorithm the key fits (none and HS* never)";
const REPLAY: &str = "replay: inspect is one-shot and remembers no assertion ID (the gateway refuses an ID seen in another document, and any second use of a one-time or sign-in assertion)";

/// An issuer nobody configured: what the token says stands in for the issuer and audiences, and
/// every asymmetric algorithm is allowed (never `none` or HS*).
fn ad_hoc_issuer(name: &str, issuer: &str, keys: KeySource, audiences: &[String]) -> IssuerConfig {
    use Algorithm as A;
    IssuerConfig {
        name: name.to_owned(),
        issuer: issuer.to_owned(),
        keys,
        audiences: audiences.to_vec(),
        algorithms: vec![
            A::RS256,
            A::RS384,
            A::RS512,
            A::PS256,
            A::PS384,
            A::PS512,
            A::ES256,
            A::ES384,
            A::EdDSA,
        ],
        tenants: Tenants::Any,
        typ: Vec::new(),
        mfa: mfagate_policy::MfaSettings::default(),
        leeway_secs: 60,
        min_refetch_interval: Duration::from_secs(300),
        refresh_interval: Duration::from_secs(3600),
        client: None,
    }
}
