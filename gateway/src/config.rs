//! Configuration: `RawConfig` is the TOML as written; [`Config`] is what survived validation.
//! Every problem is reported with its key path (`route "partner-api".upstream: not a URL`), all at
//! once; warnings are kept apart from errors.

use http::{Method, Uri};
use jsonwebtoken::Algorithm;
use mfagate_policy::{AppOnlyAccess, AuthRequirement, MfaRequirement, MfaSettings, Mode, RouteRule};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod admin;
mod checks;
mod cluster;
mod env;
mod files;
mod problems;
mod raw;
mod saml_idp;
mod secret;
mod traces;

pub use admin::{AdminToken, PrivateAdmin, PrivateTls};
pub use cluster::{ClusterConfig, OnClusterFailure};
pub use problems::Problems;
pub use raw::RawConfig;
pub(crate) use raw::is_guid;
pub use saml_idp::{
    DEFAULT_MAX_ASSERTION_BYTES, DEFAULT_MAX_PENDING, IdpMetadata, MAX_LEEWAY_SECS, MetadataUrl, SamlIdp,
    parse_metadata, read_metadata,
};
pub use secret::Secret;
pub use traces::TracesConfig;

/// `[listen] max_token_bytes` by default.
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 16 * 1024;

/// A configuration that failed to load.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has unknown keys.
    #[error("{0}")]
    Parse(String),
    /// One line per error (warnings beside them).
    #[error("{}", .0.errors().join("\n"))]
    Invalid(Problems),
}

impl ConfigError {
    /// Each error on its own line.
    pub fn problems(&self) -> Vec<String> {
        match self {
            ConfigError::Invalid(p) => p.errors().to_vec(),
            other => vec![other.to_string()],
        }
    }

    /// The warnings found beside the errors.
    pub fn warnings(&self) -> &[String] {
        match self {
            ConfigError::Invalid(p) => p.warnings(),
            _ => &[],
        }
    }
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// `[listen]`.
    pub listen: Listen,
    /// `[admin] addr`, if any.
    pub admin: Option<SocketAddr>,
    /// `[admin] private_addr`: the report, exports and `/v1/*`, behind authentication.
    pub private_admin: Option<PrivateAdmin>,
    /// `[log] format`: the operational log's format, unless the command line sets one.
    pub log_format: Option<LogFormat>,
    /// `[decision_log]`.
    pub decision_log: DecisionLogConfig,
    /// `[outbound]`: upstreams and key servers.
    pub outbound: Outbound,
    /// `[[issuer]]`.
    pub issuers: Vec<IssuerConfig>,
    /// `[[route]]`.
    pub routes: Vec<RouteConfig>,
    /// `[saml]`: this gateway as a SAML service provider.
    pub saml: SamlSp,
    /// `[[saml_idp]]`: trusted SAML identity providers.
    pub saml_idps: Vec<SamlIdp>,
    /// `[session]`: browser sessions for portal routes.
    pub session: SessionConfig,
    /// `[oidc] callback_url`: where issuers send browsers back with a code; its path is served.
    pub oidc_callback: Option<Uri>,
    /// `[report]`: what the status report cannot observe.
    pub report: ReportConfig,
    /// `[traces]`: OTLP span export, off when absent.
    pub traces: Option<TracesConfig>,
    /// `[cluster]`: shared one-time state and the fleet report on Redis, off when absent.
    pub cluster: Option<ClusterConfig>,
    /// What loaded but looks wrong, each `key.path: message` (`run` logs them).
    pub warnings: Vec<String>,
}

impl ReportConfig {
    /// The display name configured for an application id (empty if none).
    pub fn application_name(&self, id: &str) -> String {
        self.application_names.get(id).cloned().unwrap_or_default()
    }
}

/// `[report]`.
#[derive(Debug, Clone, Default)]
pub struct ReportConfig {
    /// Requirements declared by the operator.
    pub declared: mfagate_policy::report::Declared,
    /// Application id → display name, for the API summary export.
    pub application_names: std::collections::HashMap<String, String>,
}

/// `[session]`.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Base64 AES-256 keys; the first seals, all open.
    pub keys: Vec<Secret>,
    /// Session lifetime.
    pub lifetime_secs: u64,
    /// Mark cookies `Secure` (default true; false only for plain-HTTP development).
    pub secure: bool,
    /// MFA re-prompts before the 403 page.
    pub max_sign_in_attempts: u32,
    /// The window those attempts are counted in.
    pub attempt_window_secs: u64,
}

/// Who a route serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Channel {
    /// API clients with bearer tokens (default).
    #[default]
    Api,
    /// Browsers: sign-in redirects and a session cookie (the report's "portal" channel).
    Portal,
}

/// `[saml]`.
#[derive(Debug, Clone, Default)]
pub struct SamlSp {
    /// Our entity id: the Audience assertions must name.
    pub entity_id: String,
    /// URLs a bearer SubjectConfirmationData may name as Recipient (empty: any).
    pub recipients: Vec<String>,
    /// Largest assertion accepted, bytes.
    pub max_assertion_bytes: usize,
    /// First sights waiting for or in verification at once; beyond it, 503 `saml_busy`.
    pub max_pending_verifications: usize,
    /// Our Assertion Consumer Service URL (HTTP-POST binding); its path is served.
    pub acs_url: Option<Uri>,
    /// Our AuthnRequest signing key and certificate, if requests are signed.
    pub signing: Option<SpSigning>,
}

/// The SP's signing key (PKCS#8 DER, RSA) and certificate (DER).
#[derive(Clone)]
pub struct SpSigning {
    /// PKCS#8 private key.
    pub key_pkcs8: Vec<u8>,
    /// The certificate published in the SP metadata.
    pub certificate: Vec<u8>,
}

impl std::fmt::Debug for SpSigning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SpSigning(<redacted>)")
    }
}

/// `[listen]`.
#[derive(Debug, Clone)]
pub struct Listen {
    /// Address to bind.
    pub addr: SocketAddr,
    /// Certificate chain and key (PEM) for TLS.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Time allowed from accept (TLS handshake included) to a complete first request head, and
    /// for each later request head once its first byte arrives.
    pub header_read_timeout: Duration,
    /// Largest request head accepted (HTTP/1 buffer, HTTP/2 header list).
    pub max_header_bytes: usize,
    /// Longest bearer token accepted.
    pub max_token_bytes: usize,
    /// How long shutdown waits for in-flight requests.
    pub shutdown_grace: Duration,
    /// How long the listener keeps accepting after SIGTERM (with /readyz at 503), so load
    /// balancers stop sending before it closes.
    pub shutdown_delay: Duration,
    /// The header that carries the gateway's request id upstream and back to the client.
    pub request_id_header: http::HeaderName,
    /// Take `source_ip` from the last `X-Forwarded-For` hop (only behind a trusted proxy).
    pub trust_forwarded_for: bool,
    /// Client connections open at once (WebSocket tunnels included), before the open-files budget.
    pub max_connections: usize,
    /// Client connections open at once from one address (IPv6: one /64); `None`: no cap.
    pub max_connections_per_ip: Option<usize>,
    /// A connection with no request in flight is closed after this long (HTTP/1 and HTTP/2).
    pub idle_timeout: Duration,
    /// HTTP/2 PING interval (`None`: no pings).
    pub http2_keep_alive_interval: Option<Duration>,
    /// How long an HTTP/2 PING may go unanswered before the connection is closed.
    pub http2_keep_alive_timeout: Duration,
    /// A WebSocket tunnel with no bytes either way for this long is closed.
    pub websocket_idle_timeout: Duration,
    /// Time allowed to receive a body the gateway reads itself (SAML ACS posts, token requests).
    pub body_read_timeout: Duration,
    /// What to do with request headers whose name contains `_`.
    pub headers_with_underscores: UnderscoreHeaders,
}

/// `headers_with_underscores`: CGI, WSGI, PHP and Rack read `x_auth_upn` as `X-Auth-Upn`, so such
/// names could smuggle what the gateway vouches for (as Envoy's and nginx's settings of that name
/// guard against).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum UnderscoreHeaders {
    /// Remove them before forwarding (default, as nginx does).
    #[default]
    Drop,
    /// Refuse the request with 400 `header_name_underscore`.
    Refuse,
}

/// What to do when the decision log cannot be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum OnLogFailure {
    /// Refuse requests with 503 and report not ready (default).
    #[default]
    Closed,
    /// Keep serving without a log.
    Open,
}

/// `[decision_log]`.
#[derive(Debug, Clone)]
pub struct DecisionLogConfig {
    /// JSON Lines file, appended to; `-` is standard output.
    pub path: PathBuf,
    /// `on_log_failure`.
    pub on_failure: OnLogFailure,
    /// Records queued before writers wait (backpressure, never loss).
    pub queue: usize,
    /// Rotate when the file would exceed this many bytes (it also rotates every UTC day).
    pub max_bytes: u64,
    /// Delete rotated files older than this many days.
    pub retention_days: u64,
}

impl DecisionLogConfig {
    /// Whether the log goes to standard output (`path = "-"`): no file, no rotation.
    pub fn to_stdout(&self) -> bool {
        self.path.as_os_str() == "-"
    }
}

/// The operational log's format on standard error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line (tracing-subscriber's JSON format).
    Json,
    /// Human-readable lines (colours only on a terminal).
    Text,
}

/// `[outbound]`.
#[derive(Debug, Clone)]
pub struct Outbound {
    /// Extra CA certificates (PEM) trusted beside the system roots.
    pub ca_file: Option<PathBuf>,
    /// Time allowed to connect to an upstream or key server.
    pub connect_timeout: Duration,
    /// Idle connections kept for reuse.
    pub idle: IdlePool,
}

/// `[outbound] idle_per_host` and `idle_timeout_secs`: the idle connections kept per upstream
/// (scheme, host and port) and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdlePool {
    /// At most this many idle connections per host.
    pub per_host: usize,
    /// An idle connection is closed after this long.
    pub timeout: Duration,
}

impl Default for IdlePool {
    fn default() -> Self {
        IdlePool { per_host: 256, timeout: Duration::from_secs(90) }
    }
}

/// One trusted token issuer.
#[derive(Debug, Clone)]
pub struct IssuerConfig {
    /// `name`.
    pub name: String,
    /// `issuer`, possibly with `{tenantid}`.
    pub issuer: String,
    /// Where keys come from.
    pub keys: KeySource,
    /// `audiences`.
    pub audiences: Vec<String>,
    /// `algorithms`.
    pub algorithms: Vec<Algorithm>,
    /// `tenants`, for an issuer with `{tenantid}`.
    pub tenants: Tenants,
    /// `typ`: the header types accepted on access tokens, compared as
    /// [`media_type`] normalizes them (empty: absent, `JWT` or `at+jwt`).
    pub typ: Vec<String>,
    /// MFA settings for the policy.
    pub mfa: MfaSettings,
    /// `leeway_secs`.
    pub leeway_secs: u64,
    /// `min_refetch_interval_secs`.
    pub min_refetch_interval: Duration,
    /// `refresh_interval_secs`: the scheduled refresh, within Cache-Control bounds.
    pub refresh_interval: Duration,
    /// For browser sign-in with this issuer (OIDC authorization code flow with PKCE).
    pub client: Option<OidcClient>,
}

/// The tenants a `{tenantid}` issuer accepts tokens from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tenants {
    /// `tenants = ["*"]`, said explicitly (or an issuer without `{tenantid}`, whose `iss` names
    /// its one tenant).
    Any,
    /// These tenant ids, lower case.
    Only(Vec<String>),
}

/// This gateway as an OIDC confidential client of an issuer.
#[derive(Clone)]
pub struct OidcClient {
    /// `client_id` (the ID token's audience).
    pub client_id: String,
    /// `client_secret` or `client_secret_file`.
    pub client_secret: Secret,
    /// `authorization_endpoint`, if not taken from discovery.
    pub authorization_endpoint: Option<String>,
    /// `token_endpoint`, if not taken from discovery.
    pub token_endpoint: Option<String>,
    /// Ask for MFA with `amr_values=mfa` (Entra v1 endpoints); otherwise only `prompt=login`.
    pub amr_values: bool,
    /// `token_endpoint_auth`: how the code exchange authenticates; unset, the best one discovery
    /// allows.
    pub token_endpoint_auth: Option<TokenEndpointAuth>,
}

/// How this gateway authenticates to an issuer's token endpoint (RFC 6749 §2.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenEndpointAuth {
    /// HTTP Basic with the form-urlencoded client id and secret (the OAuth default).
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form body.
    ClientSecretPost,
}

impl TokenEndpointAuth {
    /// The name discovery's `token_endpoint_auth_methods_supported` uses.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenEndpointAuth::ClientSecretBasic => "client_secret_basic",
            TokenEndpointAuth::ClientSecretPost => "client_secret_post",
        }
    }
}

impl std::fmt::Debug for OidcClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcClient")
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("token_endpoint_auth", &self.token_endpoint_auth)
            .finish()
    }
}

/// Where an issuer's keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// OpenID Connect discovery document.
    Discovery(Uri),
    /// A JWKS URL.
    JwksUri(Uri),
    /// A JWKS file, read again on each refresh (offline and air-gapped setups).
    File(PathBuf),
}

/// One route.
#[derive(Debug, Clone)]
pub struct RouteConfig {
    /// `name`.
    pub name: String,
    /// `path_prefix` as written (the decision record's operation template).
    pub path_prefix: String,
    /// The prefix as matched: canonical, on segment boundaries, `case_sensitive` or not.
    pub prefix: mfagate_policy::path::Prefix,
    /// `allow_path_parameters`: `;` parameters reach this route (otherwise 400).
    pub allow_path_parameters: bool,
    /// `method_overrides` (default true): the upstream may turn a POST into the method `_method`
    /// names, so a POST here is held to every route another method would get.
    pub method_overrides: bool,
    /// `host`, lowercased, without port.
    pub host: Option<String>,
    /// `methods` (empty: any).
    pub methods: Vec<Method>,
    /// `upstream`.
    pub upstream: Uri,
    /// The policy part.
    pub rule: RouteRule,
    /// How MFA refusals are answered.
    pub challenge: Challenge,
    /// Remove `Authorization` before forwarding.
    pub strip_authorization: bool,
    /// `saml_bearer_grant` with its `grant_audience`: a token endpoint, where the SAML assertion
    /// of an RFC 7522 grant is the credential, verified for this audience (the authorization
    /// server's) and held to MFA before the request is forwarded.
    pub grant_audience: Option<std::sync::Arc<str>>,
    /// Time allowed for the upstream's response head.
    pub upstream_timeout: Duration,
    /// Issuers accepted on this route (empty: all).
    pub issuers: Vec<String>,
    /// `channel`.
    pub channel: Channel,
    /// For portal routes: the `[[saml_idp]]` or `[[issuer]]` (with a client) users sign in with.
    pub login: Option<String>,
}

impl Config {
    /// Reads and validates a TOML file, `${NAME}` taken from the process environment. Relative
    /// paths inside are taken from the file's folder.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Config::load_with_env(path, &process_env)
    }

    /// [`Config::load`] with `${NAME}` looked up by `env`.
    pub fn load_with_env(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Config::from_toml_with_env(&text, base, env)
    }

    /// Parses and validates TOML text; relative paths are joined to `base`.
    pub fn from_toml(text: &str, base: &Path) -> Result<Config, ConfigError> {
        Config::from_toml_with_env(text, base, &process_env)
    }

    /// [`Config::from_toml`] with `${NAME}` looked up by `env`.
    pub fn from_toml_with_env(
        text: &str,
        base: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let mut table: toml::Table = toml::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))?;
        let mut p = Problems::default();
        let replaced = env::substitute(&mut table, env, &mut p);
        if p.has_errors() {
            return Err(ConfigError::Invalid(p));
        }
        let raw: RawConfig = toml::Value::Table(table).try_into().map_err(|e: toml::de::Error| {
            // Without variables, the text's own error says which line.
            let spanned = (!text.contains("${")).then(|| toml::from_str::<RawConfig>(text).err()).flatten();
            ConfigError::Parse(env::redact(&spanned.unwrap_or(e).to_string(), &replaced))
        })?;
        let redact = |m: &str| env::redact(m, &replaced);
        match raw.validate(base) {
            Ok(mut c) => {
                c.warnings = c.warnings.iter().map(|w| redact(w)).collect();
                Ok(c)
            }
            Err(ConfigError::Invalid(mut p)) => {
                p.rewrite(redact);
                Err(ConfigError::Invalid(p))
            }
            Err(e) => Err(e),
        }
    }

    /// The issuer with this name.
    pub fn issuer(&self, name: &str) -> Option<&IssuerConfig> {
        self.issuers.iter().find(|i| i.name == name)
    }
}

/// The process environment, for `${NAME}` (a value that is not UTF-8 counts as unset).
fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// `challenge` as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ChallengeKind {
    /// Partner Center's own answer (default).
    #[default]
    PartnerCenter,
    /// RFC 9470 step-up.
    Rfc9470,
    /// Entra Conditional Access claims challenge.
    EntraClaims,
}

/// How a route answers App+User callers without MFA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// `401 Unauthorized - MFA required`, `Bearer error="invalid_token", error_description="MFA required"`.
    PartnerCenter,
    /// `Bearer error="insufficient_user_authentication"` (RFC 9470), with optional `acr_values`.
    Rfc9470 {
        /// `acr_values` to ask for.
        acr_values: Option<String>,
    },
    /// `Bearer error="insufficient_claims", claims="..."` for clients that declared `cp1`;
    /// others get the Partner Center answer.
    EntraClaims {
        /// The Conditional Access authentication-context id that requires MFA (e.g. `c1`).
        auth_context: String,
        /// `authorization_uri` to advertise, if any.
        authorization_uri: Option<String>,
    },
}

/// A `typ` or `cty` value compared as RFC 7515 §4.1.9 says: case-insensitively, with the
/// `application/` prefix optional.
pub fn media_type(value: &str) -> String {
    let lower = value.to_ascii_lowercase();
    match lower.strip_prefix("application/") {
        Some(rest) => rest.to_owned(),
        None => lower,
    }
}

/// A host name as routes compare it: lower case, without brackets or one trailing dot.
pub fn normalize_host(host: &str) -> String {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.strip_suffix('.').unwrap_or(h).to_ascii_lowercase()
}

/// A session key as configured: base64 of 32 random bytes.
pub fn session_key_bytes(key: &str) -> Result<Vec<u8>, &'static str> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD.decode(key.trim()).map_err(|_| "not base64")?;
    if bytes.len() != 32 {
        return Err("must be 32 bytes (openssl rand -base64 32)");
    }
    Ok(bytes)
}
