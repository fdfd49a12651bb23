//! The TOML shape, and its validation into [`Config`].

use super::ChallengeKind;
use super::problems::{Problems, entry};
use super::secret::{self, Secret};
use super::*;

fn default_listen() -> String {
    "127.0.0.1:8080".into()
}
fn default_header_timeout() -> u64 {
    10
}
fn default_max_header() -> usize {
    16 * 1024
}
fn default_max_token() -> usize {
    super::DEFAULT_MAX_TOKEN_BYTES
}
fn default_grace() -> u64 {
    30
}
fn default_shutdown_delay() -> u64 {
    5
}
fn default_request_id_header() -> String {
    "x-request-id".into()
}
fn default_queue() -> usize {
    8192
}
fn default_connect() -> u64 {
    5
}
fn default_leeway() -> u64 {
    60
}
fn default_refetch() -> u64 {
    300
}
fn default_refresh() -> u64 {
    3600
}
fn default_upstream_timeout() -> u64 {
    60
}
fn default_algorithms() -> Vec<String> {
    vec!["RS256".into()]
}
fn default_amr() -> Vec<String> {
    MfaSettings::default().amr_values
}

/// The configuration file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    listen: RawListen,
    admin: Option<super::admin::RawAdmin>,
    decision_log: RawDecisionLog,
    #[serde(default)]
    outbound: RawOutbound,
    #[serde(default, rename = "issuer")]
    issuers: Vec<RawIssuer>,
    #[serde(default, rename = "route")]
    routes: Vec<RawRoute>,
    saml: Option<RawSaml>,
    session: Option<RawSession>,
    oidc: Option<RawOidc>,
    report: Option<RawReport>,
    #[serde(default, rename = "saml_idp")]
    saml_idps: Vec<RawSamlIdp>,
    log: Option<RawLog>,
    traces: Option<super::traces::RawTraces>,
    cluster: Option<super::cluster::RawCluster>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLog {
    format: Option<super::LogFormat>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawReport {
    #[serde(default)]
    declared: RawDeclared,
    #[serde(default)]
    application_names: std::collections::HashMap<String, String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDeclared {
    response_to_alerts: Option<bool>,
    security_contact: Option<bool>,
    spending_budgets: Option<bool>,
    customer_admins_mfa: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOidc {
    callback_url: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSession {
    keys: Option<Vec<String>>,
    keys_file: Option<PathBuf>,
    #[serde(default = "default_session_lifetime")]
    lifetime_secs: u64,
    #[serde(default = "default_true")]
    secure: bool,
    #[serde(default = "default_attempts")]
    max_sign_in_attempts: u32,
    #[serde(default = "default_attempt_window")]
    attempt_window_secs: u64,
}

/// `session.keys` or `session.keys_file`, each key checked.
fn session_keys(
    p: &mut Problems,
    inline: Option<Vec<String>>,
    file: Option<&Path>,
    base: &Path,
) -> Vec<Secret> {
    let (key, keys) = match (inline, file) {
        (Some(_), Some(_)) => {
            p.add("session.keys_file", "set keys or keys_file, not both");
            return Vec::new();
        }
        (Some(keys), None) => ("session.keys", keys.into_iter().map(Secret::new).collect()),
        (None, Some(file)) => {
            ("session.keys_file", secret::key_lines(p, "session.keys_file", &base.join(file)))
        }
        (None, None) => return Vec::new(),
    };
    for (i, k) in keys.iter().enumerate() {
        if let Err(e) = super::session_key_bytes(k.expose()) {
            p.add(key, format!("session key {i}: {e}"));
        }
        super::files::warn_if_published_example(p, key, k.expose().trim().as_bytes());
        if k.expose().trim() == super::files::DEMO_SESSION_KEY {
            p.warn(key, format!("session key {i} is the demo's published key: DEVELOPMENT ONLY"));
        }
    }
    keys
}

fn default_session_lifetime() -> u64 {
    8 * 3600
}
fn default_true() -> bool {
    true
}
fn default_attempts() -> u32 {
    2
}
fn default_attempt_window() -> u64 {
    600
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSaml {
    acs_url: Option<String>,
    signing_key: Option<PathBuf>,
    signing_certificate: Option<PathBuf>,
    entity_id: String,
    #[serde(default)]
    recipients: Vec<String>,
    #[serde(default = "default_max_assertion")]
    max_assertion_bytes: usize,
    #[serde(default = "default_max_pending")]
    max_pending_verifications: usize,
}

fn default_max_pending() -> usize {
    super::DEFAULT_MAX_PENDING
}

fn default_max_assertion() -> usize {
    super::DEFAULT_MAX_ASSERTION_BYTES
}

fn default_locations() -> Vec<String> {
    mfagate_policy::SamlLocation::ALL.map(|l| l.name().to_owned()).to_vec()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSamlIdp {
    name: String,
    entity_id: Option<String>,
    #[serde(default)]
    certificates: Vec<PathBuf>,
    metadata: Option<PathBuf>,
    metadata_url: Option<String>,
    #[serde(default = "default_refetch")]
    min_refetch_interval_secs: u64,
    #[serde(default = "default_refresh")]
    refresh_interval_secs: u64,
    #[serde(default = "default_leeway")]
    leeway_secs: u64,
    #[serde(default = "default_locations")]
    mfa_locations: Vec<String>,
    #[serde(default)]
    refeds_mfa: bool,
    #[serde(default)]
    accept_wiaormultiauthn: bool,
    #[serde(default)]
    mfa_class_refs: Vec<String>,
    sso_url: Option<String>,
    #[serde(default)]
    accept_sso_responses_as_api: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawListen {
    #[serde(default = "default_listen")]
    addr: String,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    #[serde(default = "default_header_timeout")]
    header_read_timeout_secs: u64,
    #[serde(default = "default_max_header")]
    max_header_bytes: usize,
    #[serde(default = "default_max_token")]
    max_token_bytes: usize,
    #[serde(default = "default_grace")]
    shutdown_grace_secs: u64,
    #[serde(default = "default_shutdown_delay")]
    shutdown_delay_secs: u64,
    #[serde(default = "default_request_id_header")]
    request_id_header: String,
    #[serde(default)]
    trust_forwarded_for: bool,
    #[serde(default)]
    headers_with_underscores: UnderscoreHeaders,
    #[serde(default = "default_max_connections")]
    max_connections: usize,
    max_connections_per_ip: Option<usize>,
    #[serde(default = "default_idle")]
    idle_timeout_secs: u64,
    #[serde(default = "default_ping_interval")]
    http2_keep_alive_interval_secs: u64,
    #[serde(default = "default_ping_timeout")]
    http2_keep_alive_timeout_secs: u64,
    #[serde(default = "default_websocket_idle")]
    websocket_idle_timeout_secs: u64,
    #[serde(default = "default_body_timeout")]
    body_read_timeout_secs: u64,
}

fn default_max_connections() -> usize {
    10_000
}
fn default_idle() -> u64 {
    75
}
fn default_ping_interval() -> u64 {
    30
}
fn default_ping_timeout() -> u64 {
    20
}
fn default_websocket_idle() -> u64 {
    300
}
fn default_body_timeout() -> u64 {
    30
}

impl Default for RawListen {
    fn default() -> Self {
        RawListen {
            addr: default_listen(),
            tls_cert: None,
            tls_key: None,
            header_read_timeout_secs: default_header_timeout(),
            max_header_bytes: default_max_header(),
            max_token_bytes: default_max_token(),
            shutdown_grace_secs: default_grace(),
            shutdown_delay_secs: default_shutdown_delay(),
            request_id_header: default_request_id_header(),
            trust_forwarded_for: false,
            headers_with_underscores: UnderscoreHeaders::default(),
            max_connections: default_max_connections(),
            max_connections_per_ip: None,
            idle_timeout_secs: default_idle(),
            http2_keep_alive_interval_secs: default_ping_interval(),
            http2_keep_alive_timeout_secs: default_ping_timeout(),
            websocket_idle_timeout_secs: default_websocket_idle(),
            body_read_timeout_secs: default_body_timeout(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDecisionLog {
    path: PathBuf,
    #[serde(default)]
    on_log_failure: OnLogFailure,
    #[serde(default = "default_queue")]
    queue: usize,
    #[serde(default = "default_log_max_bytes")]
    max_bytes: u64,
    #[serde(default = "default_retention")]
    retention_days: u64,
}

fn default_log_max_bytes() -> u64 {
    256 * 1024 * 1024
}
fn default_retention() -> u64 {
    8
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOutbound {
    ca_file: Option<PathBuf>,
    #[serde(default = "default_connect")]
    connect_timeout_secs: u64,
    idle_per_host: Option<usize>,
    idle_timeout_secs: Option<u64>,
}

impl Default for RawOutbound {
    fn default() -> Self {
        RawOutbound {
            ca_file: None,
            connect_timeout_secs: default_connect(),
            idle_per_host: None,
            idle_timeout_secs: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIssuer {
    name: String,
    issuer: String,
    discovery: Option<String>,
    jwks_uri: Option<String>,
    jwks_file: Option<PathBuf>,
    #[serde(default)]
    audiences: Vec<String>,
    #[serde(default = "default_algorithms")]
    algorithms: Vec<String>,
    #[serde(default)]
    tenants: Vec<String>,
    typ: Option<OneOrMany>,
    #[serde(default = "default_amr")]
    mfa_amr: Vec<String>,
    #[serde(default)]
    mfa_acrs: Vec<String>,
    #[serde(default)]
    amr_lenient: bool,
    #[serde(default = "default_leeway")]
    leeway_secs: u64,
    #[serde(default = "default_refetch")]
    min_refetch_interval_secs: u64,
    #[serde(default = "default_refresh")]
    refresh_interval_secs: u64,
    client_id: Option<String>,
    client_secret: Option<String>,
    client_secret_file: Option<PathBuf>,
    authorization_endpoint: Option<String>,
    token_endpoint: Option<String>,
    #[serde(default = "default_true")]
    amr_values: bool,
    token_endpoint_auth: Option<TokenEndpointAuth>,
}

/// A string or a list of strings.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    name: String,
    path_prefix: String,
    // Case-insensitive by default: Express, ASP.NET Core, Koa and IIS match paths that way, and
    // a gateway stricter than its upstream only costs a 404.
    #[serde(default)]
    case_sensitive: bool,
    #[serde(default)]
    allow_path_parameters: bool,
    #[serde(default = "default_true")]
    method_overrides: bool,
    host: Option<String>,
    #[serde(default)]
    methods: Vec<String>,
    upstream: String,
    #[serde(default)]
    auth: AuthRequirement,
    #[serde(default)]
    mfa: MfaRequirement,
    #[serde(default)]
    app_only: AppOnlyAccess,
    #[serde(default)]
    challenge: ChallengeKind,
    #[serde(default)]
    mode: Mode,
    auth_context: Option<String>,
    acr_values: Option<String>,
    authorization_uri: Option<String>,
    #[serde(default)]
    strip_authorization: bool,
    #[serde(default)]
    saml_bearer_grant: bool,
    grant_audience: Option<String>,
    #[serde(default = "default_upstream_timeout")]
    timeout_secs: u64,
    #[serde(default)]
    issuers: Vec<String>,
    #[serde(default)]
    channel: Channel,
    login: Option<String>,
}

fn at_least_a_second(p: &mut Problems, path: &str, secs: u64) -> Duration {
    if secs == 0 {
        p.add(path, "must be at least 1");
    }
    Duration::from_secs(secs.max(1))
}

/// `host:port`, `[v6]:port`, or `:port` for every IPv4 interface (as nginx's `listen 8080`). A
/// host name is resolved once, here; its first IPv4 address is taken if it has one.
pub(super) fn parse_addr(p: &mut Problems, path: &str, value: &str) -> SocketAddr {
    use std::net::ToSocketAddrs;
    let spelled = if value.starts_with(':') { format!("0.0.0.0{value}") } else { value.to_owned() };
    if let Ok(addr) = spelled.parse() {
        return addr;
    }
    match spelled.to_socket_addrs().map(Iterator::collect::<Vec<_>>) {
        Ok(list) => match list.iter().find(|a| a.is_ipv4()).or(list.first()) {
            Some(addr) => return *addr,
            None => p.add(path, format!("{value:?} resolves to no address")),
        },
        Err(e) => p.add(
            path,
            format!("not host:port, [v6]:port or :port, or the host does not resolve: {value:?}: {e}"),
        ),
    }
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// `listen.request_id_header`: a header name the gateway does not set or read itself (the id
/// is set last, upstream and on the answer, and would replace it).
fn request_id_header(p: &mut Problems, value: &str) -> http::HeaderName {
    let key = "listen.request_id_header";
    let Ok(name) = http::HeaderName::from_bytes(value.as_bytes()) else {
        p.add(key, format!("not a header name: {value:?}"));
        return http::HeaderName::from_static("x-request-id");
    };
    let owned = [
        "host",
        "authorization",
        "cookie",
        "set-cookie",
        "content-length",
        "content-type",
        "transfer-encoding",
        "connection",
        "upgrade",
        "location",
        "www-authenticate",
        "traceparent",
        "tracestate",
        "forwarded",
    ];
    if name.as_str().starts_with("x-auth-")
        || name.as_str().starts_with("x-forwarded-")
        || name.as_str().starts_with("sec-")
        || owned.contains(&name.as_str())
    {
        p.add(key, format!("{name} is a header the gateway sets or reads itself: name another"));
    }
    name
}

pub(super) fn parse_url(p: &mut Problems, path: &str, value: &str) -> Uri {
    match value.parse::<Uri>() {
        Ok(uri) if matches!(uri.scheme_str(), Some("http" | "https")) && uri.authority().is_some() => uri,
        _ => {
            p.add(path, format!("not a URL (http:// or https://): {value:?}"));
            Uri::from_static("http://invalid.invalid/")
        }
    }
}

/// Whether a string is a GUID (Entra tenant and object ids).
pub(crate) fn is_guid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && parts.iter().map(|x| x.len()).eq([8, 4, 4, 4, 12])
        && parts.iter().all(|x| x.chars().all(|c| c.is_ascii_hexdigit()))
}

impl RawConfig {
    /// Validates every field and cross-field rule; relative paths are joined to `base`.
    pub fn validate(self, base: &Path) -> Result<Config, ConfigError> {
        let mut p = Problems::default();
        let l = self.listen;
        let tls = match (l.tls_cert, l.tls_key) {
            (Some(c), Some(k)) => {
                let (cert, key) = (base.join(c), base.join(k));
                super::files::tls_pair(&mut p, &cert, &key);
                Some((cert, key))
            }
            (None, None) => None,
            _ => {
                p.add("listen", "tls_cert and tls_key go together");
                None
            }
        };
        if l.max_header_bytes < 8192 {
            p.add("listen.max_header_bytes", "must be at least 8192");
        }
        let listen = Listen {
            addr: parse_addr(&mut p, "listen.addr", &l.addr),
            tls,
            header_read_timeout: Duration::from_secs(l.header_read_timeout_secs.max(1)),
            max_header_bytes: l.max_header_bytes,
            max_token_bytes: l.max_token_bytes,
            shutdown_grace: Duration::from_secs(l.shutdown_grace_secs),
            shutdown_delay: Duration::from_secs(l.shutdown_delay_secs),
            request_id_header: request_id_header(&mut p, &l.request_id_header),
            trust_forwarded_for: l.trust_forwarded_for,
            headers_with_underscores: l.headers_with_underscores,
            max_connections: l.max_connections,
            max_connections_per_ip: l.max_connections_per_ip,
            idle_timeout: at_least_a_second(&mut p, "listen.idle_timeout_secs", l.idle_timeout_secs),
            http2_keep_alive_interval: (l.http2_keep_alive_interval_secs > 0)
                .then(|| Duration::from_secs(l.http2_keep_alive_interval_secs)),
            http2_keep_alive_timeout: at_least_a_second(
                &mut p,
                "listen.http2_keep_alive_timeout_secs",
                l.http2_keep_alive_timeout_secs,
            ),
            websocket_idle_timeout: at_least_a_second(
                &mut p,
                "listen.websocket_idle_timeout_secs",
                l.websocket_idle_timeout_secs,
            ),
            body_read_timeout: at_least_a_second(
                &mut p,
                "listen.body_read_timeout_secs",
                l.body_read_timeout_secs,
            ),
        };
        if l.max_connections == 0 {
            p.add("listen.max_connections", "must be at least 1");
        }
        if l.max_connections_per_ip == Some(0) {
            p.add("listen.max_connections_per_ip", "must be at least 1 (leave it out for no cap)");
        }
        let traces = self.traces.map(|t| t.validate(&mut p, base));
        let cluster = self.cluster.map(|c| c.validate(&mut p, base));
        let (admin, private_admin) = match self.admin.map(|a| a.validate(&mut p, base)) {
            Some((addr, private)) => (Some(addr), private),
            None => (None, None),
        };
        if self.decision_log.queue == 0 {
            p.add("decision_log.queue", "must be at least 1");
        }
        let decision_log = DecisionLogConfig {
            // "-" is standard output, not a file beside the configuration.
            path: if self.decision_log.path.as_os_str() == "-" {
                self.decision_log.path.clone()
            } else {
                base.join(&self.decision_log.path)
            },
            on_failure: self.decision_log.on_log_failure,
            queue: self.decision_log.queue.max(1),
            max_bytes: self.decision_log.max_bytes.max(4096),
            retention_days: self.decision_log.retention_days,
        };
        if self.decision_log.retention_days < 8 {
            p.add("decision_log.retention_days", "at least 8 (the report's 7 days, plus a UTC day's edge)");
        }
        let ca_file = self.outbound.ca_file.map(|f| base.join(f));
        if let Some(file) = &ca_file {
            super::files::ca_file(&mut p, file);
        }
        let idle = super::IdlePool::default();
        let idle = super::IdlePool {
            per_host: self.outbound.idle_per_host.unwrap_or(idle.per_host),
            timeout: self.outbound.idle_timeout_secs.map_or(idle.timeout, Duration::from_secs),
        };
        if idle.per_host > 100_000 {
            p.add("outbound.idle_per_host", "at most 100000 (0 keeps no idle connection)");
        }
        let outbound = Outbound {
            ca_file,
            connect_timeout: Duration::from_secs(self.outbound.connect_timeout_secs.max(1)),
            idle,
        };
        let issuers: Vec<IssuerConfig> =
            self.issuers.into_iter().enumerate().map(|(i, raw)| issuer(&mut p, i, raw, base)).collect();
        let saml_names: Vec<String> = self.saml_idps.iter().map(|s| s.name.clone()).collect();
        let routes: Vec<RouteConfig> = self
            .routes
            .into_iter()
            .enumerate()
            .map(|(i, raw)| route(&mut p, i, raw, &issuers, &saml_names))
            .collect();
        let saml = match self.saml {
            Some(s) => {
                if s.entity_id.trim().is_empty() {
                    p.add("saml.entity_id", "must not be empty");
                }
                let acs_url = s.acs_url.map(|u| parse_url(&mut p, "saml.acs_url", &u));
                let mut recipients = s.recipients;
                recipients.extend(acs_url.iter().map(|u| u.to_string()));
                let signing = match (s.signing_key, s.signing_certificate) {
                    (Some(k), Some(c)) => sp_signing(&mut p, &base.join(k), &base.join(c)),
                    (None, None) => None,
                    _ => {
                        p.add("saml.signing_key", "signing_key and signing_certificate go together");
                        None
                    }
                };
                if s.max_pending_verifications == 0 {
                    p.add("saml.max_pending_verifications", "must be at least 1");
                }
                SamlSp {
                    entity_id: s.entity_id,
                    recipients,
                    max_assertion_bytes: s.max_assertion_bytes,
                    max_pending_verifications: s.max_pending_verifications,
                    acs_url,
                    signing,
                }
            }
            None => SamlSp {
                max_assertion_bytes: default_max_assertion(),
                max_pending_verifications: default_max_pending(),
                ..SamlSp::default()
            },
        };
        let raw_session = self.session.unwrap_or(RawSession {
            keys: None,
            keys_file: None,
            lifetime_secs: default_session_lifetime(),
            secure: true,
            max_sign_in_attempts: default_attempts(),
            attempt_window_secs: default_attempt_window(),
        });
        let keys = session_keys(&mut p, raw_session.keys, raw_session.keys_file.as_deref(), base);
        if !raw_session.secure {
            p.warn("session.secure", "false: session cookies also travel over plain HTTP (development only)");
        }
        let session = SessionConfig {
            keys,
            lifetime_secs: raw_session.lifetime_secs,
            secure: raw_session.secure,
            max_sign_in_attempts: raw_session.max_sign_in_attempts.max(1),
            attempt_window_secs: raw_session.attempt_window_secs,
        };
        let saml_idps: Vec<super::SamlIdp> =
            self.saml_idps.into_iter().enumerate().map(|(i, raw)| saml_idp(&mut p, i, raw, base)).collect();
        if !saml_idps.is_empty() && saml.entity_id.is_empty() {
            p.add("saml", "[[saml_idp]] needs [saml] entity_id (the audience assertions must name)");
        }
        let names: Vec<&str> = issuers
            .iter()
            .map(|i| i.name.as_str())
            .chain(saml_idps.iter().map(|s| s.name.as_str()))
            .collect();
        for (i, name) in names.iter().enumerate() {
            if names[..i].contains(name) {
                p.add("issuer", format!("duplicate issuer or saml_idp name {name:?}"));
            }
        }
        for (i, r) in routes.iter().enumerate() {
            if routes[..i].iter().any(|o| o.name == r.name) {
                // By index: the name is what is ambiguous.
                p.add(format!("route[{i}].name"), format!("duplicate name {:?}", r.name));
            }
            if r.name == crate::evidence::metrics::NO_ROUTE {
                // /metrics labels requests no route matched `route="none"`.
                p.add(format!("route[{i}].name"), "\"none\" is reserved for requests that match no route");
            }
        }
        super::checks::duplicate_prefixes(&mut p, &routes);
        super::checks::warnings(&mut p, &issuers, &saml_idps, &routes);
        for (i, r) in routes.iter().enumerate().filter(|(_, r)| r.channel == Channel::Portal) {
            let head = entry("route", i, &r.name);
            let saml_idp = r.login.as_ref().and_then(|name| saml_idps.iter().find(|s| &s.name == name));
            let oidc = r.login.as_ref().and_then(|name| issuers.iter().find(|s| &s.name == name));
            match (&r.login, saml_idp, oidc) {
                (None, _, _) => p.add(
                    format!("{head}.login"),
                    "a portal route needs login = \"<saml_idp or issuer name>\"",
                ),
                (Some(_), Some(idp), _) => {
                    if idp.sso_url.is_none() && idp.metadata_url.is_none() {
                        p.add(
                            format!("{head}.login"),
                            format!("saml_idp {:?} has no sso_url (or metadata)", idp.name),
                        );
                    }
                    if saml.acs_url.is_none() {
                        p.add("saml.acs_url", "SAML sign-in needs the ACS URL");
                    }
                }
                (Some(_), None, Some(issuer)) => {
                    if issuer.client.is_none() {
                        p.add(
                            format!("{head}.login"),
                            format!("issuer {:?} has no client_id/client_secret", issuer.name),
                        );
                    }
                    if self.oidc.is_none() {
                        p.add("oidc.callback_url", "OIDC sign-in needs the callback URL");
                    }
                }
                (Some(name), None, None) => {
                    p.add(format!("{head}.login"), format!("no saml_idp or issuer named {name:?}"))
                }
            }
            // Sessions are bound to the IdP that signed the user in: a route that would not take
            // the sessions of its own login would send users to sign in for ever.
            if let Some(login) = &r.login
                && !r.issuers.is_empty()
                && !r.issuers.contains(login)
            {
                p.add(format!("{head}.issuers"), format!("must include the route's login {login:?}"));
            }
            if session.keys.is_empty() {
                p.add("session.keys", "portal routes need at least one session key");
            }
        }
        if routes.iter().any(|r| r.rule.auth == AuthRequirement::Required) && names.is_empty() {
            p.add("issuer", "a route requires auth but no issuer or saml_idp is configured");
        }
        if p.has_errors() {
            return Err(ConfigError::Invalid(p));
        }
        let oidc_callback = self.oidc.map(|o| parse_url(&mut p, "oidc.callback_url", &o.callback_url));
        let raw_report = self.report.unwrap_or_default();
        let d = raw_report.declared;
        let report = ReportConfig {
            declared: mfagate_policy::report::Declared {
                response_to_alerts: d.response_to_alerts,
                security_contact: d.security_contact,
                spending_budgets: d.spending_budgets,
                customer_admins_mfa: d.customer_admins_mfa,
            },
            application_names: raw_report.application_names,
        };
        if p.has_errors() {
            return Err(ConfigError::Invalid(p));
        }
        Ok(Config {
            listen,
            admin,
            private_admin,
            log_format: self.log.and_then(|l| l.format),
            decision_log,
            outbound,
            issuers,
            routes,
            saml,
            saml_idps,
            session,
            oidc_callback,
            report,
            traces,
            cluster,
            warnings: p.warnings().to_vec(),
        })
    }
}

fn issuer(p: &mut Problems, i: usize, raw: RawIssuer, base: &Path) -> IssuerConfig {
    let head = entry("issuer", i, &raw.name);
    let at = |field: &str| format!("{head}.{field}");
    let templated = raw.issuer.replace("{tenantid}", "00000000-0000-0000-0000-000000000000");
    parse_url(p, &at("issuer"), &templated);
    let keys = match (&raw.discovery, &raw.jwks_uri, &raw.jwks_file) {
        (Some(d), None, None) => KeySource::Discovery(parse_url(p, &at("discovery"), d)),
        (None, Some(j), None) => KeySource::JwksUri(parse_url(p, &at("jwks_uri"), j)),
        (None, None, Some(f)) => {
            let path = base.join(f);
            super::files::jwks_file(p, &at("jwks_file"), &path);
            KeySource::File(path)
        }
        _ => {
            p.add(at("discovery"), "set exactly one of discovery, jwks_uri and jwks_file");
            KeySource::JwksUri(Uri::from_static("http://invalid.invalid/"))
        }
    };
    let mut algorithms = Vec::new();
    for (j, a) in raw.algorithms.iter().enumerate() {
        match a.parse::<Algorithm>() {
            Ok(Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) => {
                p.add(format!("{head}.algorithms[{j}]"), "HS* is refused for key-set issuers")
            }
            Ok(alg) => algorithms.push(alg),
            Err(_) => p.add(format!("{head}.algorithms[{j}]"), format!("unknown algorithm {a:?}")),
        }
    }
    if raw.algorithms.is_empty() {
        p.add(at("algorithms"), "at least one algorithm is required");
    }
    let tenants = tenants(p, &head, &raw);
    let typ = raw.typ.map(OneOrMany::into_vec).map(|list| typ(p, &head, list)).unwrap_or_default();
    if raw.mfa_amr.is_empty() && raw.mfa_acrs.is_empty() {
        p.add(at("mfa_amr"), "no value would ever prove MFA");
    }
    if raw.leeway_secs > super::MAX_LEEWAY_SECS {
        p.add(at("leeway_secs"), "at most 300 (five minutes)");
    }
    let secret_given = raw.client_secret.is_some() || raw.client_secret_file.is_some();
    let client_secret = secret::inline_or_file(
        p,
        &head,
        "client_secret",
        raw.client_secret,
        raw.client_secret_file.as_deref(),
        base,
    );
    if let Some(s) = &client_secret {
        super::files::warn_if_published_example(p, &at("client_secret_file"), s.expose().trim().as_bytes());
    }
    let client = match (raw.client_id, client_secret) {
        (Some(client_id), Some(client_secret)) => {
            let authorization_endpoint = raw
                .authorization_endpoint
                .map(|u| parse_url(p, &at("authorization_endpoint"), &u).to_string());
            let token_endpoint =
                raw.token_endpoint.map(|u| parse_url(p, &at("token_endpoint"), &u).to_string());
            if !matches!(keys, KeySource::Discovery(_))
                && (authorization_endpoint.is_none() || token_endpoint.is_none())
            {
                p.add(at("client_id"), "without discovery, set authorization_endpoint and token_endpoint");
            }
            Some(OidcClient {
                client_id,
                client_secret,
                authorization_endpoint,
                token_endpoint,
                amr_values: raw.amr_values,
                token_endpoint_auth: raw.token_endpoint_auth,
            })
        }
        (None, None) => {
            if raw.token_endpoint_auth.is_some() {
                p.add(at("token_endpoint_auth"), "only means something with client_id and client_secret");
            }
            None
        }
        // A secret given but unreadable is reported already.
        (Some(_), None) if secret_given => None,
        _ => {
            p.add(at("client_id"), "client_id and client_secret (or client_secret_file) go together");
            None
        }
    };
    // An issuer only for browser sign-in needs no API audience; API routes refuse its tokens.
    if raw.audiences.is_empty() && client.is_none() {
        p.add(
            at("audiences"),
            "at least one audience is required (unless client_id makes it a sign-in-only issuer)",
        );
    }
    if raw.refresh_interval_secs < 60 {
        p.add(at("refresh_interval_secs"), "at least 60");
    }
    IssuerConfig {
        name: raw.name,
        issuer: raw.issuer,
        keys,
        audiences: raw.audiences,
        algorithms,
        tenants,
        typ,
        mfa: MfaSettings { amr_values: raw.mfa_amr, mfa_acrs: raw.mfa_acrs, amr_lenient: raw.amr_lenient },
        leeway_secs: raw.leeway_secs,
        min_refetch_interval: Duration::from_secs(raw.min_refetch_interval_secs),
        refresh_interval: Duration::from_secs(raw.refresh_interval_secs),
        client,
    }
}

/// `tenants`: a `{tenantid}` issuer must say which tenants it accepts, or `["*"]` for any.
fn tenants(p: &mut Problems, head: &str, raw: &RawIssuer) -> Tenants {
    let templated = raw.issuer.contains("{tenantid}");
    for (j, t) in raw.tenants.iter().enumerate() {
        if t == "*" && raw.tenants.len() > 1 {
            p.add(format!("{head}.tenants[{j}]"), "\"*\" (any tenant) must be the only entry");
        } else if t != "*" && !is_guid(t) {
            p.add(format!("{head}.tenants[{j}]"), format!("not a GUID: {t:?}"));
        }
    }
    if !raw.tenants.is_empty() && !templated {
        p.add(format!("{head}.tenants"), "a tenant allow-list needs {tenantid} in issuer");
    }
    if raw.tenants.is_empty() && templated {
        p.add(
            format!("{head}.tenants"),
            "an issuer with {tenantid} would accept every tenant's tokens: list the tenant ids \
             allowed, or set tenants = [\"*\"] to accept any tenant",
        );
    }
    if !templated || raw.tenants.iter().any(|t| t == "*") {
        Tenants::Any
    } else {
        Tenants::Only(raw.tenants.iter().map(|t| t.to_ascii_lowercase()).collect())
    }
}

/// `typ`: the header types accepted, normalized for comparison.
fn typ(p: &mut Problems, head: &str, list: Vec<String>) -> Vec<String> {
    if list.is_empty() {
        p.add(format!("{head}.typ"), "an empty list refuses every token (leave typ out for the default)");
    }
    let normalized: Vec<String> = list.iter().map(|t| super::media_type(t.trim())).collect();
    for (t, n) in list.iter().zip(&normalized) {
        if n.is_empty() || n.contains('/') || !n.bytes().all(|b| b.is_ascii_graphic()) {
            p.add(format!("{head}.typ"), format!("not a JWT media type: {t:?}"));
        }
    }
    normalized
}

fn route(
    p: &mut Problems,
    i: usize,
    raw: RawRoute,
    issuers: &[IssuerConfig],
    saml_names: &[String],
) -> RouteConfig {
    let head = entry("route", i, &raw.name);
    let at = |field: &str| format!("{head}.{field}");
    let prefix = match mfagate_policy::path::Prefix::new(&raw.path_prefix, raw.case_sensitive) {
        Ok(prefix) => prefix,
        Err(suggestion) => {
            match suggestion {
                Some(canonical) => p.add(
                    at("path_prefix"),
                    format!("{:?} is not in canonical form; write {canonical:?}", raw.path_prefix),
                ),
                None => p.add(
                    at("path_prefix"),
                    "must be an absolute path without `;`, `\\`, encoded `/` or control bytes",
                ),
            }
            mfagate_policy::path::Prefix::root()
        }
    };
    let host = raw.host.as_deref().map(super::normalize_host);
    // Routes compare host names only: a port, scheme or path would never match, and the route's
    // requests would silently fall to another route.
    if let Some(h) = &host
        && (h.is_empty()
            || !h.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b':'))
            || (h.contains(':') && h.parse::<std::net::Ipv6Addr>().is_err()))
    {
        p.add(at("host"), format!("a host name without scheme, port or path: {h:?}"));
    }
    let upstream = parse_url(p, &at("upstream"), &raw.upstream);
    if upstream.query().is_some() {
        p.add(at("upstream"), "must not have a query string");
    }
    let mut methods = Vec::new();
    for (j, m) in raw.methods.iter().enumerate() {
        match Method::from_bytes(m.to_ascii_uppercase().as_bytes()) {
            Ok(m) => methods.push(m),
            Err(_) => p.add(format!("{head}.methods[{j}]"), format!("not a method: {m:?}")),
        }
    }
    for (j, name) in raw.issuers.iter().enumerate() {
        match issuers.iter().find(|is| &is.name == name) {
            None if !saml_names.contains(name) => {
                p.add(format!("{head}.issuers[{j}]"), format!("no issuer named {name:?}"))
            }
            Some(is) if is.audiences.is_empty() && raw.channel == Channel::Api => p.add(
                format!("{head}.issuers[{j}]"),
                format!("issuer {name:?} has no audiences: an API route needs them to take its tokens"),
            ),
            _ => {}
        }
    }
    let challenge = match raw.challenge {
        ChallengeKind::EntraClaims => match raw.auth_context {
            Some(id) => Challenge::EntraClaims { auth_context: id, authorization_uri: raw.authorization_uri },
            None => {
                p.add(at("auth_context"), "challenge = \"entra-claims\" needs an auth_context id");
                Challenge::PartnerCenter
            }
        },
        ChallengeKind::Rfc9470 => Challenge::Rfc9470 { acr_values: raw.acr_values },
        ChallengeKind::PartnerCenter => Challenge::PartnerCenter,
    };
    if raw.timeout_secs == 0 {
        p.add(at("timeout_secs"), "must be at least 1");
    }
    if raw.saml_bearer_grant && saml_names.is_empty() {
        p.add(at("saml_bearer_grant"), "needs a [[saml_idp]] to verify the assertions");
    }
    if raw.saml_bearer_grant && !raw.issuers.is_empty() && !raw.issuers.iter().any(|n| saml_names.contains(n))
    {
        p.add(at("issuers"), "a saml_bearer_grant route needs a saml_idp among its issuers");
    }
    if raw.saml_bearer_grant && raw.channel == Channel::Portal {
        p.add(at("saml_bearer_grant"), "is for token endpoints, not portal routes");
    }
    let grant_audience = match (raw.saml_bearer_grant, raw.grant_audience) {
        (true, Some(audience)) if !audience.trim().is_empty() => Some(std::sync::Arc::from(audience.trim())),
        (true, _) => {
            p.add(at("grant_audience"), "saml_bearer_grant needs the authorization server's SAML audience");
            None
        }
        (false, Some(_)) => {
            p.add(at("grant_audience"), "only means something with saml_bearer_grant = true");
            None
        }
        (false, None) => None,
    };
    RouteConfig {
        name: raw.name,
        path_prefix: raw.path_prefix,
        prefix,
        allow_path_parameters: raw.allow_path_parameters,
        method_overrides: raw.method_overrides,
        host,
        methods,
        upstream,
        rule: RouteRule { auth: raw.auth, mfa: raw.mfa, app_only: raw.app_only, mode: raw.mode },
        challenge,
        strip_authorization: raw.strip_authorization,
        grant_audience,
        upstream_timeout: Duration::from_secs(raw.timeout_secs.max(1)),
        issuers: raw.issuers,
        channel: raw.channel,
        login: raw.login,
    }
}

fn saml_idp(p: &mut Problems, i: usize, raw: RawSamlIdp, base: &Path) -> super::SamlIdp {
    use mfagate_policy::SamlMfaSettings;
    use rustls_pki_types::pem::PemObject;
    let head = entry("saml_idp", i, &raw.name);
    let at = |field: &str| format!("{head}.{field}");
    let mut certificates = Vec::new();
    let mut entity_id = raw.entity_id.clone();
    let mut sso_from_metadata = None;
    if let Some(file) = &raw.metadata {
        match super::saml_idp::read_metadata(&base.join(file)) {
            Ok(meta) => {
                if entity_id.as_ref().is_some_and(|e| e != &meta.entity_id) {
                    p.add(at("entity_id"), format!("differs from the metadata's {:?}", meta.entity_id));
                }
                entity_id = Some(meta.entity_id);
                sso_from_metadata = meta.sso_redirect_url;
                certificates.extend(meta.signing_certificates);
            }
            Err(e) => p.add(at("metadata"), e),
        }
    }
    let metadata_url = raw.metadata_url.as_ref().map(|url| {
        if raw.metadata.is_some() || !raw.certificates.is_empty() {
            p.add(at("metadata_url"), "the one source of certificates: not with metadata or certificates");
        }
        if raw.entity_id.is_none() {
            // Pinned: a fetched document naming another entity is refused, not trusted.
            p.add(at("entity_id"), "required with metadata_url (the fetched metadata must name it)");
        }
        if raw.refresh_interval_secs < 60 {
            p.add(at("refresh_interval_secs"), "at least 60");
        }
        super::saml_idp::MetadataUrl {
            url: parse_url(p, &at("metadata_url"), url),
            refresh_interval: Duration::from_secs(raw.refresh_interval_secs),
            min_refetch_interval: Duration::from_secs(raw.min_refetch_interval_secs),
        }
    });
    for (j, file) in raw.certificates.iter().enumerate() {
        let loaded = rustls_pki_types::CertificateDer::pem_file_iter(base.join(file))
            .and_then(|it| it.collect::<Result<Vec<_>, _>>());
        match loaded {
            Ok(certs) if !certs.is_empty() => certificates.extend(certs.into_iter().map(|c| c.to_vec())),
            Ok(_) => p.add(format!("{head}.certificates[{j}]"), "no PEM certificate in file"),
            Err(e) => p.add(format!("{head}.certificates[{j}]"), format!("{}: {e}", file.display())),
        }
    }
    if certificates.is_empty() && metadata_url.is_none() {
        p.add(at("certificates"), "no signing certificate (certificates, metadata or metadata_url)");
    }
    super::files::warn_if_development(p, &at("certificates"), certificates.iter().map(Vec::as_slice));
    let entity_id = entity_id.unwrap_or_else(|| {
        p.add(at("entity_id"), "required (or metadata)");
        String::new()
    });
    let mut mfa = SamlMfaSettings {
        authn_context: false,
        authentication_method: false,
        authentication_method_attribute: false,
        authn_methods_references: false,
        refeds: raw.refeds_mfa,
        accept_wiaormultiauthn: raw.accept_wiaormultiauthn,
        extra_class_refs: raw.mfa_class_refs,
    };
    for (j, location) in raw.mfa_locations.iter().enumerate() {
        match mfagate_policy::SamlLocation::named(location) {
            Some(l) => mfa.set_reads(l, true),
            None => p.add(format!("{head}.mfa_locations[{j}]"), format!("unknown location {location:?}")),
        }
    }
    if raw.leeway_secs > super::MAX_LEEWAY_SECS {
        p.add(at("leeway_secs"), "at most 300 (five minutes)");
    }
    let sso_url = raw.sso_url.map(|u| parse_url(p, &at("sso_url"), &u).to_string()).or(sso_from_metadata);
    super::SamlIdp {
        name: raw.name,
        entity_id,
        certificates,
        mfa,
        leeway_secs: raw.leeway_secs,
        sso_url,
        accept_sso_responses_as_api: raw.accept_sso_responses_as_api,
        metadata_url,
    }
}

fn sp_signing(p: &mut Problems, key: &Path, cert: &Path) -> Option<SpSigning> {
    use rustls_pki_types::pem::PemObject;
    let key_der = match rustls_pki_types::PrivatePkcs8KeyDer::from_pem_file(key) {
        Ok(k) => k.secret_pkcs8_der().to_vec(),
        Err(e) => {
            p.add("saml.signing_key", format!("{}: not a PKCS#8 PEM key: {e}", key.display()));
            return None;
        }
    };
    if aws_lc_rs::signature::RsaKeyPair::from_pkcs8(&key_der).is_err() {
        p.add("saml.signing_key", "must be an RSA key (RSA-SHA256 signatures)");
        return None;
    }
    match rustls_pki_types::CertificateDer::from_pem_file(cert) {
        Ok(c) => {
            super::files::warn_if_development(p, "saml.signing_key", [key_der.as_slice()]);
            Some(SpSigning { key_pkcs8: key_der, certificate: c.to_vec() })
        }
        Err(e) => {
            p.add("saml.signing_certificate", format!("{}: {e}", cert.display()));
            None
        }
    }
}
