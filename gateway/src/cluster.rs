//! `[cluster]`: several instances acting as one. What was used once (SAML assertion ids,
//! one-time assertions, grants, sign-in states) is remembered in Redis for the whole fleet
//! ([`crate::verify::once`]), and each instance adds its decisions' report counts there
//! (the fleet report). One multiplexed connection per instance, reconnected with backoff; every answer
//! is bounded by `timeout_ms`, so a silent Redis costs a request at most that.

use crate::config::{ClusterConfig, OnClusterFailure};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// Why the cluster connection could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ClusterSetupError {
    /// The URL or TLS settings were refused by the client (the message names no secret).
    #[error("cannot set up the Redis client: {0}")]
    Client(String),
}

/// Redis did not answer, or answered with an error.
#[derive(Debug, thiserror::Error)]
#[error("Redis unavailable: {0}")]
pub struct Down(String);

/// The shared store and what this instance knows of its health.
pub struct Cluster {
    connection: redis::aio::ConnectionManager,
    prefix: String,
    on_failure: OnClusterFailure,
    instance: String,
    timeout: Duration,
    health: Health,
}

/// Round trips and their outcomes, for /metrics and /readyz.
#[derive(Default)]
pub struct Health {
    up: AtomicBool,
    /// Set once any round trip has been tried (before that, "connecting").
    tried: AtomicBool,
    round_trips: AtomicU64,
    failures: AtomicU64,
    /// Round trips made for one-time checks (first sights on this instance).
    checks: AtomicU64,
    /// One-time checks decided from local memory while Redis was down (`on_failure = "local"`).
    fallbacks: AtomicU64,
    /// One-time checks refused with 503 while Redis was down (`on_failure = "closed"`).
    refusals: AtomicU64,
}

/// A snapshot of [`Health`].
#[derive(Debug, Clone, Copy)]
pub struct HealthView {
    /// The last round trip succeeded.
    pub up: bool,
    /// No round trip has been tried yet.
    pub connecting: bool,
    /// Round trips so far.
    pub round_trips: u64,
    /// Round trips that failed.
    pub failures: u64,
    /// Round trips made for one-time checks.
    pub checks: u64,
    /// One-time checks decided locally while Redis was down.
    pub fallbacks: u64,
    /// One-time checks refused while Redis was down.
    pub refusals: u64,
}

impl Cluster {
    /// Sets up the client; nothing is sent until the first round trip (a gateway starts, and its
    /// JWT routes serve, while Redis is down). `port` names the instance by default.
    pub fn connect(config: &ClusterConfig, port: u16) -> Result<Arc<Cluster>, ClusterSetupError> {
        let info = redis::IntoConnectionInfo::into_connection_info(config.url.as_str())
            .map_err(|_| ClusterSetupError::Client("cluster.redis is not a Redis URL".into()))?;
        let mut settings = info.redis_settings().clone();
        if let Some(user) = &config.username {
            settings = settings.set_username(user);
        }
        if let Some(password) = &config.password {
            settings = settings.set_password(password.expose());
        }
        let info = info.set_redis_settings(settings);
        let client = match &config.ca_pem {
            Some(pem) => redis::Client::build_with_tls(
                info,
                redis::TlsCertificates { client_tls: None, root_cert: Some(pem.clone()) },
            ),
            None => redis::Client::open(info),
        }
        .map_err(|e| ClusterSetupError::Client(e.category().to_owned()))?;
        let manager = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.timeout))
            .set_response_timeout(Some(config.timeout))
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_secs(2));
        let connection = redis::aio::ConnectionManager::new_lazy_with_config(client, manager)
            .map_err(|e| ClusterSetupError::Client(e.category().to_owned()))?;
        let instance = config.instance.clone().unwrap_or_else(|| format!("{}:{port}", host_name()));
        Ok(Arc::new(Cluster {
            connection,
            prefix: config.key_prefix.clone(),
            on_failure: config.on_failure,
            instance,
            timeout: config.timeout,
            health: Health::default(),
        }))
    }

    /// The key `suffix` under this fleet's prefix.
    pub fn key(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.prefix)
    }

    /// This instance's name in the fleet.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// What one-time checks do while Redis is down.
    pub fn on_failure(&self) -> OnClusterFailure {
        self.on_failure
    }

    /// A handle on the shared connection (cheap: it is multiplexed).
    pub fn connection(&self) -> redis::aio::ConnectionManager {
        self.connection.clone()
    }

    /// `ask` within `timeout_ms`, all of it: the manager's reconnect tries (each bounded by the
    /// timeout on its own) must not multiply the bound a silent Redis puts on a request.
    pub async fn bounded<T>(
        &self,
        ask: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> redis::RedisResult<T> {
        tokio::time::timeout(self.timeout, ask)
            .await
            .unwrap_or_else(|_| Err(std::io::Error::from(std::io::ErrorKind::TimedOut).into()))
    }

    /// Counts a round trip's outcome, and logs when reachability changes.
    pub fn record<T>(&self, result: redis::RedisResult<T>) -> Result<T, Down> {
        let first = !self.health.tried.swap(true, Ordering::AcqRel);
        self.health.round_trips.fetch_add(1, Ordering::Relaxed);
        match result {
            Ok(value) => {
                if !self.health.up.swap(true, Ordering::AcqRel) {
                    tracing::info!(instance = %self.instance, "Redis reachable: one-time checks and the report are shared");
                }
                Ok(value)
            }
            Err(e) => {
                self.health.failures.fetch_add(1, Ordering::Relaxed);
                // The error's kind and code only: a message may quote a key or an argument.
                let why = format!("{:?}", e.kind());
                if self.health.up.swap(false, Ordering::AcqRel) || first {
                    let then = match self.on_failure {
                        OnClusterFailure::Closed => "one-time checks are refused (on_failure = \"closed\")",
                        OnClusterFailure::Local => {
                            "one-time checks use this instance's memory (on_failure = \"local\")"
                        }
                    };
                    tracing::warn!(instance = %self.instance, error = %why, "Redis unreachable: {then}");
                }
                Err(Down(why))
            }
        }
    }

    /// Counts a round trip made for a one-time check.
    pub fn checking(&self) {
        self.health.checks.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a one-time check decided locally because Redis was down.
    pub fn fell_back(&self) {
        self.health.fallbacks.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a one-time check refused because Redis was down.
    pub fn refused(&self) {
        self.health.refusals.fetch_add(1, Ordering::Relaxed);
    }

    /// The health counters now.
    pub fn health(&self) -> HealthView {
        let h = &self.health;
        HealthView {
            up: h.up.load(Ordering::Acquire),
            connecting: !h.tried.load(Ordering::Relaxed),
            round_trips: h.round_trips.load(Ordering::Relaxed),
            failures: h.failures.load(Ordering::Relaxed),
            checks: h.checks.load(Ordering::Relaxed),
            fallbacks: h.fallbacks.load(Ordering::Relaxed),
            refusals: h.refusals.load(Ordering::Relaxed),
        }
    }

    /// One line for /readyz: the gateway stays ready while Redis is down (its JWT routes serve),
    /// but says what that means.
    pub fn status_line(&self) -> String {
        let h = self.health();
        let state = if h.up {
            "reachable"
        } else if h.connecting {
            "connecting"
        } else {
            match self.on_failure {
                OnClusterFailure::Closed => "unreachable: one-time checks refused",
                OnClusterFailure::Local => "unreachable: one-time checks from local memory",
            }
        };
        format!("redis: {state}")
    }

    /// Probes Redis for as long as the gateway runs: every second while it is down (so recovery
    /// shows without waiting for a request), every five while it is up.
    pub async fn watch(self: Arc<Self>) {
        let key = self.key(&format!("health:{}", self.instance));
        loop {
            let mut connection = self.connection();
            // A write, not a PING: a Redis out of memory (`noeviction`) or a read-only replica
            // answers PING but refuses every one-time check, and must not be shown as reachable.
            let mut probe = redis::cmd("SET");
            probe.arg(&key).arg("1").arg("PX").arg(30_000);
            let written: redis::RedisResult<String> = self.bounded(probe.query_async(&mut connection)).await;
            let up = self.record(written).is_ok();
            tokio::time::sleep(if up { Duration::from_secs(5) } else { Duration::from_secs(1) }).await;
        }
    }
}

/// This machine's name (the pod name on Kubernetes).
fn host_name() -> String {
    let name = rustix::system::uname().nodename().to_string_lossy().into_owned();
    if name.is_empty() { "mfagate".into() } else { name }
}
