//! Everything a request needs. A `State` is one generation of the configuration: a reload builds
//! the next from the new configuration and swaps it in (`crate::reload`). What must outlive a
//! generation (the clock, the outbound client, the decision log, counters, connection caps, the
//! draining flag and every accepted-once memory) is shared between generations behind an `Arc`,
//! so a reload neither resets counters nor opens a replay window.

use crate::clock::SharedClock;
use crate::config::Config;
use crate::evidence::decision_log::{DecisionLog, LogWriter};
use crate::evidence::metrics::{ConfigReloads, Metrics};
use crate::gate::routes::RouteTable;
use crate::outbound::{self, HttpClient};
use crate::verify::jwt::{CacheCounters, Verifier};
use std::sync::Arc;
use tokio_rustls::TlsAcceptor;

/// Verified-token cache size: bytes of tokens plus about 512 bytes each (64 MiB: some 40,000
/// tokens of 1 KB).
const TOKEN_CACHE_CAPACITY: u64 = 64 << 20;

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The outbound TLS setup failed.
    #[error(transparent)]
    Tls(#[from] outbound::TlsSetupError),
    /// The decision log could not be opened.
    #[error("cannot open decision log {path}: {source}")]
    DecisionLog {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The listener's certificate or key could not be loaded.
    #[error("cannot load TLS certificate or key: {0}")]
    ServerTls(String),
    /// A session key is unusable.
    #[error("{0}")]
    SessionKeys(#[from] crate::browser::session::SessionKeyError),
    /// A socket failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The open-files limit leaves no room for client connections.
    #[error(transparent)]
    Descriptors(#[from] crate::gate::connection::limits::NoDescriptors),
    /// The OTLP span exporter could not be built.
    #[error(transparent)]
    Traces(#[from] crate::evidence::traces::TraceSetupError),
    /// The Redis client could not be set up.
    #[error(transparent)]
    Cluster(#[from] crate::cluster::ClusterSetupError),
}

/// Shared state of a running gateway: one configuration generation.
pub struct State {
    /// The configuration.
    pub config: Config,
    /// Which reload built this (1 at start).
    pub generation: u64,
    /// Route match order.
    pub routes: RouteTable,
    /// Token verification (its verified-token cache is this generation's only: a decision made
    /// under older rules is never reused).
    pub verifier: Verifier,
    /// The issuer key sets readiness waits for: all at start; after a reload those still
    /// configured with the same fetch settings, and new ones only while the awaited ones have
    /// not all loaded yet (once ready, an issuer added by a reload loads without taking the
    /// gateway out of its load balancer).
    pub awaited: Vec<Arc<crate::verify::keys::IssuerKeys>>,
    /// The SAML IdP certificates readiness waits for (those from a `metadata_url`), by the rule
    /// of [`State::awaited`].
    pub awaited_saml: Vec<Arc<crate::verify::saml::idp_certs::IdpCertificates>>,
    /// SAML assertion verification (its replay memory is shared by every generation).
    pub saml: Arc<crate::verify::saml::SamlVerifier>,
    /// Session and sign-in cookies.
    pub sealer: crate::browser::session::Sealer,
    /// The listener's TLS, if any (new connections take it from the generation they start in).
    pub tls: Option<TlsAcceptor>,
    /// What may be used once: sign-in states (OIDC callbacks, ACS posts) here, and SAML
    /// assertion ids through [`State::saml`]. In the fleet's Redis when clustered.
    pub once: Arc<crate::verify::once::Once>,
    /// `[cluster]`: the shared store, when configured.
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
    /// With `[cluster]`: this instance's side of the fleet report (its flushes).
    pub fleet: Option<Arc<crate::evidence::fleet::FleetReport>>,
    /// Upstream client.
    pub client: HttpClient,
    /// Decision log.
    pub log: DecisionLog,
    /// Request metrics, bound to this generation's routes (series kept by route name).
    pub metrics: Metrics,
    /// Configuration generation and reload results, for /metrics.
    pub reloads: Arc<ConfigReloads>,
    /// Token cache counters.
    pub cache_counters: Arc<CacheCounters>,
    /// Wall clock.
    pub clock: SharedClock,
    /// The report, live.
    pub live: Arc<crate::evidence::live::Live>,
    /// Client connection caps and counters.
    pub connections: Arc<crate::gate::connection::Connections>,
    /// Set when shutdown begins: /readyz answers 503 from then on, so balancers stop sending.
    pub draining: Arc<std::sync::atomic::AtomicBool>,
    /// Set when a reload replaces this generation: what outlives its requests (WebSocket
    /// tunnels) ends, so nothing goes on under rules no longer in force.
    pub retired: tokio::sync::watch::Sender<bool>,
    /// OTLP span export, when `[traces]` is configured (each generation its own exporter; the
    /// replaced one sends what it holds and ends).
    pub traces: Option<crate::evidence::traces::Traces>,
}

impl State {
    /// Builds the state; key fetching starts when the returned tasks are spawned. `port` is the
    /// listener's, naming this instance in a cluster by default.
    pub fn new(config: Config, clock: SharedClock, port: u16) -> Result<(Arc<State>, LogWriter), StartError> {
        let client = outbound::client_for(&config.outbound)?;
        let verifier = Verifier::for_issuers(&config.issuers, &client, TOKEN_CACHE_CAPACITY, clock.clone());
        let cluster =
            config.cluster.as_ref().map(|c| crate::cluster::Cluster::connect(c, port)).transpose()?;
        let fleet =
            cluster.as_ref().map(|c| crate::evidence::fleet::FleetReport::new(c.clone(), clock.clone()));
        // Standard output cannot be read back: the live report then starts empty. What is
        // rebuilt is not sent to the fleet report again: only records written from now on.
        // Taken before the writer appends: what it writes is counted as written, never read back.
        let live = Arc::new(crate::evidence::live::Live::new(clock.now_millis()).feeding(fleet.clone()));
        if !config.decision_log.to_stdout() {
            let files = crate::evidence::log_files::all_files(&config.decision_log.path);
            live.rebuild_in_background(crate::evidence::live::Snapshot::take(&files));
        }
        let (log, writer) = DecisionLog::open(&config.decision_log, live.clone()).map_err(|source| {
            StartError::DecisionLog { path: config.decision_log.path.display().to_string(), source }
        })?;
        let once = Arc::new(match &cluster {
            Some(cluster) => crate::verify::once::Once::shared(cluster.clone(), clock.clone()),
            None => crate::verify::once::Once::new(clock.clone()),
        });
        let saml = Arc::new(saml_verifier(&config, &client, clock.clone()).with_once(once.clone()));
        let traces =
            config.traces.as_ref().map(|t| crate::evidence::traces::Traces::start(t, client.clone()));
        let max_connections = crate::gate::connection::limits::fd_budget(config.listen.max_connections)?;
        let connections = crate::gate::connection::Connections {
            limits: crate::gate::connection::limits::Limits::new(
                max_connections,
                config.listen.max_connections_per_ip,
            ),
            counters: Default::default(),
            upstream: Arc::new(tokio::sync::Semaphore::new(max_connections)),
            upstream_per_ip: crate::gate::connection::limits::Limits::new(
                usize::MAX,
                config.listen.max_connections_per_ip,
            ),
        };
        let reloads = Arc::new(ConfigReloads::started(clock.now_millis() / 1000));
        let awaited_saml = saml.certificates().filter(|c| c.is_fetched()).cloned().collect();
        let state = State {
            sealer: crate::browser::session::Sealer::new(&config.session.keys)?,
            tls: listener_tls(&config)?,
            generation: 1,
            once,
            cluster,
            fleet,
            saml,
            routes: RouteTable::new(&config.routes),
            metrics: Metrics::new(&config.routes),
            reloads,
            awaited: verifier.keys().cloned().collect(),
            awaited_saml,
            verifier,
            client,
            log,
            cache_counters: Arc::default(),
            live,
            clock,
            connections: Arc::new(connections),
            draining: Arc::default(),
            traces: traces.transpose()?,
            retired: tokio::sync::watch::Sender::new(false),
            config,
        };
        Ok((Arc::new(state), writer))
    }

    /// The next generation from `config`, sharing everything that outlives a generation. Key
    /// sets of issuers whose fetch settings are unchanged are kept (no new fetch); the
    /// verified-token and SAML document caches start empty; the replay memories carry over.
    pub fn next(&self, config: Config) -> Result<State, StartError> {
        let keys = |cfg: &crate::config::IssuerConfig| {
            self.verifier.keys().find(|k| k.fetches_as(cfg)).cloned().unwrap_or_else(|| {
                crate::verify::keys::IssuerKeys::new(cfg, self.client.clone(), self.clock.clone())
            })
        };
        let issuers = config.issuers.iter().map(|cfg| (cfg.clone(), keys(cfg))).collect();
        let verifier = Verifier::new(issuers, TOKEN_CACHE_CAPACITY, self.clock.clone());
        // Loaded once is loaded for good: a ready gateway stays ready for the issuers and IdPs it
        // had; while not ready yet, it waits for the new ones too.
        let ready =
            self.awaited.iter().all(|k| k.is_loaded()) && self.awaited_saml.iter().all(|c| c.is_loaded());
        let awaited = verifier
            .keys()
            .filter(|k| !ready || self.awaited.iter().any(|old| Arc::ptr_eq(old, k)))
            .cloned()
            .collect();
        let saml = Arc::new(saml_verifier(&config, &self.client, self.clock.clone()).remembering(&self.saml));
        let awaited_saml = saml
            .certificates()
            .filter(|c| c.is_fetched())
            .filter(|c| !ready || self.awaited_saml.iter().any(|old| Arc::ptr_eq(old, c)))
            .cloned()
            .collect();
        Ok(State {
            sealer: crate::browser::session::Sealer::new(&config.session.keys)?,
            tls: listener_tls(&config)?,
            generation: self.generation + 1,
            once: self.once.clone(),
            cluster: self.cluster.clone(),
            fleet: self.fleet.clone(),
            saml,
            routes: RouteTable::new(&config.routes),
            metrics: self.metrics.rebind(&config.routes),
            reloads: self.reloads.clone(),
            awaited,
            awaited_saml,
            verifier,
            client: self.client.clone(),
            log: self.log.clone(),
            cache_counters: self.cache_counters.clone(),
            live: self.live.clone(),
            clock: self.clock.clone(),
            connections: self.connections.clone(),
            draining: self.draining.clone(),
            traces: config
                .traces
                .as_ref()
                .map(|t| crate::evidence::traces::Traces::start(t, self.client.clone()))
                .transpose()?,
            retired: tokio::sync::watch::Sender::new(false),
            config,
        })
    }

    /// Marks this generation replaced (see [`State::retired`]).
    pub fn retire(&self) {
        self.retired.send_replace(true);
    }

    /// Ready when not shutting down, every issuer's keys are loaded and the decision log is writable (unless the
    /// configuration fails open). Returns what is not ready.
    pub fn readiness(&self) -> Result<(), String> {
        if self.draining.load(std::sync::atomic::Ordering::Acquire) {
            return Err("shutting down".into());
        }
        let waiting: Vec<&str> = self.awaited.iter().filter(|k| !k.is_loaded()).map(|k| k.name()).collect();
        if !waiting.is_empty() {
            return Err(format!("waiting for issuer keys: {}", waiting.join(", ")));
        }
        let waiting: Vec<&str> =
            self.awaited_saml.iter().filter(|c| !c.is_loaded()).map(|c| c.name()).collect();
        if !waiting.is_empty() {
            return Err(format!("waiting for SAML metadata: {}", waiting.join(", ")));
        }
        if !self.log.is_healthy()
            && self.config.decision_log.on_failure == crate::config::OnLogFailure::Closed
        {
            return Err("decision log is not writable".into());
        }
        Ok(())
    }
}

/// The SAML verifier `config` describes.
fn saml_verifier(
    config: &Config,
    client: &HttpClient,
    clock: SharedClock,
) -> crate::verify::saml::SamlVerifier {
    crate::verify::saml::SamlVerifier::new(
        config.saml_idps.clone(),
        config.saml.entity_id.clone(),
        config.saml.recipients.clone(),
        config.saml.max_assertion_bytes,
        clock,
    )
    .with_max_pending(config.saml.max_pending_verifications)
    .with_acs_url(config.saml.acs_url.as_ref().map(ToString::to_string))
    .with_metadata_client(client)
}

/// The listener's TLS acceptor, read from the certificate and key files now.
fn listener_tls(config: &Config) -> Result<Option<TlsAcceptor>, StartError> {
    match &config.listen.tls {
        Some((cert, key)) => Ok(Some(crate::gate::server::tls_acceptor(cert, key)?)),
        None => Ok(None),
    }
}
