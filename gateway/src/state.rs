//! Everything a request needs, built once from a validated configuration.

use crate::clock::SharedClock;
use crate::config::Config;
use crate::evidence::decision_log::{DecisionLog, LogWriter};
use crate::evidence::metrics::Metrics;
use crate::gate::routes::RouteTable;
use crate::outbound::{self, HttpClient};
use crate::verify::jwt::{CacheCounters, Verifier};
use std::sync::Arc;

/// Verified-token cache size (entries).
const TOKEN_CACHE_CAPACITY: u64 = 100_000;

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
}

/// Shared state of a running gateway.
pub struct State {
    /// The configuration.
    pub config: Config,
    /// Route match order.
    pub routes: RouteTable,
    /// Token verification.
    pub verifier: Verifier,
    /// SAML assertion verification.
    pub saml: Arc<crate::verify::saml::SamlVerifier>,
    /// Session and sign-in cookies.
    pub sealer: crate::browser::session::Sealer,
    /// Sign-in states already used (OIDC callbacks, ACS posts): each is accepted once.
    pub used_states: crate::verify::once::UsedOnce,
    /// Upstream client.
    pub client: HttpClient,
    /// Decision log.
    pub log: DecisionLog,
    /// Request metrics.
    pub metrics: Metrics,
    /// Token cache counters.
    pub cache_counters: CacheCounters,
    /// Wall clock.
    pub clock: SharedClock,
    /// The report, live.
    pub live: Arc<crate::evidence::live::Live>,
    /// Client connection caps and counters.
    pub connections: crate::gate::connection::Connections,
    /// Set when shutdown begins: /readyz answers 503 from then on, so balancers stop sending.
    pub draining: std::sync::atomic::AtomicBool,
    /// OTLP span export, when `[traces]` is configured.
    pub traces: Option<crate::evidence::traces::Traces>,
}

impl State {
    /// Builds the state; key fetching starts when the returned tasks are spawned.
    pub fn new(config: Config, clock: SharedClock) -> Result<(Arc<State>, LogWriter), StartError> {
        let client = outbound::client(config.outbound.ca_file.as_deref(), config.outbound.connect_timeout)?;
        let verifier = Verifier::for_issuers(&config.issuers, &client, TOKEN_CACHE_CAPACITY, clock.clone());
        // Standard output cannot be read back: the live report then starts empty.
        let live = Arc::new(if config.decision_log.to_stdout() {
            crate::evidence::live::Live::rebuild(&[], clock.now_millis())
        } else {
            crate::evidence::live::Live::rebuild(
                &crate::evidence::log_files::all_files(&config.decision_log.path),
                clock.now_millis(),
            )
        });
        let (log, writer) = DecisionLog::open(&config.decision_log, live.clone()).map_err(|source| {
            StartError::DecisionLog { path: config.decision_log.path.display().to_string(), source }
        })?;
        let saml = Arc::new(
            crate::verify::saml::SamlVerifier::new(
                config.saml_idps.clone(),
                config.saml.entity_id.clone(),
                config.saml.recipients.clone(),
                config.saml.max_assertion_bytes,
                clock.clone(),
            )
            .with_max_pending(config.saml.max_pending_verifications)
            .with_acs_url(config.saml.acs_url.as_ref().map(ToString::to_string)),
        );
        let sealer = crate::browser::session::Sealer::new(&config.session.keys)?;
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
        let state = State {
            sealer,
            used_states: crate::verify::once::UsedOnce::new(clock.clone()),
            saml,
            routes: RouteTable::new(&config.routes),
            metrics: Metrics::new(config.routes.iter().map(|r| r.name.clone()).collect()),
            verifier,
            client,
            log,
            cache_counters: CacheCounters::default(),
            live,
            clock,
            connections,
            draining: std::sync::atomic::AtomicBool::new(false),
            traces: traces.transpose()?,
            config,
        };
        Ok((Arc::new(state), writer))
    }

    /// Ready when not shutting down, every issuer's keys are loaded and the decision log is writable (unless the
    /// configuration fails open). Returns what is not ready.
    pub fn readiness(&self) -> Result<(), String> {
        if self.draining.load(std::sync::atomic::Ordering::Acquire) {
            return Err("shutting down".into());
        }
        let waiting: Vec<&str> = self.verifier.keys().filter(|k| !k.is_loaded()).map(|k| k.name()).collect();
        if !waiting.is_empty() {
            return Err(format!("waiting for issuer keys: {}", waiting.join(", ")));
        }
        if !self.log.is_healthy()
            && self.config.decision_log.on_failure == crate::config::OnLogFailure::Closed
        {
            return Err("decision log is not writable".into());
        }
        Ok(())
    }
}
