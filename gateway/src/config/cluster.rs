//! `[cluster]`: several instances acting as one, on Redis. Off unless the table is present.

use super::Problems;
use super::secret::{Secret, read_file};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCluster {
    redis: String,
    username: Option<String>,
    password_file: Option<PathBuf>,
    ca_file: Option<PathBuf>,
    #[serde(default = "default_prefix")]
    key_prefix: String,
    #[serde(default)]
    on_failure: OnClusterFailure,
    #[serde(default = "default_timeout")]
    timeout_ms: u64,
    instance: Option<String>,
    #[serde(default = "default_flush")]
    report_flush_ms: u64,
}

fn default_prefix() -> String {
    "mfagate:".into()
}
fn default_timeout() -> u64 {
    500
}
// Short batches: a flush is one script that Redis runs alone, and one-time checks wait behind
// it (a 1 s batch at 6,000 App+User requests a second made their p99 75 ms; 200 ms, 27 ms).
fn default_flush() -> u64 {
    250
}

/// What a one-time check does while Redis cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum OnClusterFailure {
    /// Refuse it with 503 `one_time_check_unavailable` (default): no instance accepts what
    /// another may already have accepted.
    #[default]
    Closed,
    /// Decide it from this instance's memory alone, and say so in the log and metrics.
    Local,
}

/// How this instance reaches the shared store.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterConfig {
    /// `redis://host:port/db` or `rediss://…` (TLS), without a password.
    pub url: String,
    /// The ACL user, if any.
    pub username: Option<String>,
    /// The password, from `password_file`.
    pub password: Option<Secret>,
    /// PEM roots for `rediss://` instead of the system's.
    pub ca_pem: Option<Vec<u8>>,
    /// Prepended to every key, so fleets can share one Redis.
    pub key_prefix: String,
    /// See [`OnClusterFailure`].
    pub on_failure: OnClusterFailure,
    /// Bound on connecting and on each answer: a silent Redis costs a request at most this.
    pub timeout: Duration,
    /// This instance's name in the fleet report; by default the host name and listening port.
    pub instance: Option<String>,
    /// How often report counts go to Redis.
    pub report_flush: Duration,
}

impl RawCluster {
    pub(super) fn validate(self, p: &mut Problems, base: &Path) -> ClusterConfig {
        url(p, &self.redis);
        if self.key_prefix.is_empty() || self.key_prefix.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            p.add("cluster.key_prefix", "must be non-empty, without spaces or control characters");
        }
        if self.timeout_ms == 0 {
            p.add("cluster.timeout_ms", "must be at least 1");
        }
        if self.report_flush_ms == 0 {
            p.add("cluster.report_flush_ms", "must be at least 1");
        }
        if self
            .instance
            .as_deref()
            .is_some_and(|i| i.is_empty() || i.len() > 200 || i.contains(char::is_control))
        {
            p.add("cluster.instance", "must be 1 to 200 characters, without control characters");
        }
        let password = self
            .password_file
            .as_ref()
            .and_then(|f| read_file(p, "cluster.password_file", &base.join(f)))
            .map(Secret::new);
        let ca_pem = self.ca_file.as_ref().and_then(|f| {
            let path = base.join(f);
            std::fs::read(&path)
                .map_err(|e| p.add("cluster.ca_file", format!("cannot read {}: {e}", path.display())))
                .ok()
        });
        if ca_pem.is_some() && !self.redis.starts_with("rediss://") {
            p.add("cluster.ca_file", "only applies to rediss:// URLs");
        }
        ClusterConfig {
            url: self.redis,
            username: self.username,
            password,
            ca_pem,
            key_prefix: self.key_prefix,
            on_failure: self.on_failure,
            timeout: Duration::from_millis(self.timeout_ms.max(1)),
            instance: self.instance,
            report_flush: Duration::from_millis(self.report_flush_ms.max(1)),
        }
    }
}

/// `cluster.redis`: a URL the Redis client reads, with no password in it (secrets come from
/// files) and no `#insecure` (a certificate is always verified).
fn url(p: &mut Problems, value: &str) {
    const KEY: &str = "cluster.redis";
    let Some((scheme, _)) = value.split_once("://") else {
        return p.add(KEY, "not a URL (redis://, rediss:// or redis+unix://)");
    };
    if !matches!(scheme, "redis" | "rediss" | "redis+unix" | "unix") {
        return p.add(KEY, "not a URL (redis://, rediss:// or redis+unix://)");
    }
    if value.contains('#') {
        return p
            .add(KEY, "a fragment (#insecure) is not accepted: the server certificate is always verified");
    }
    match redis::IntoConnectionInfo::into_connection_info(value) {
        Ok(info) if info.redis_settings().password().is_some() => {
            p.add(KEY, "holds a password: put it in cluster.password_file");
        }
        Ok(_) => {}
        // The message may quote the URL; name the problem only.
        Err(_) => p.add(KEY, "not a Redis URL the client can read"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(url_value: &str) -> Vec<String> {
        let mut p = Problems::default();
        url(&mut p, url_value);
        p.errors().iter().map(ToString::to_string).collect()
    }

    #[test]
    fn urls_with_secrets_or_without_verification_are_refused() {
        assert!(problems("redis://127.0.0.1:6379/0").is_empty());
        assert!(problems("rediss://cache.example:6380/1").is_empty());
        let with_password = problems("redis://:hunter2@127.0.0.1:6379/0");
        assert!(with_password[0].contains("password_file"), "{with_password:?}");
        assert!(!with_password[0].contains("hunter2"));
        assert!(!problems("rediss://cache.example:6380/#insecure").is_empty());
        assert!(!problems("http://127.0.0.1:6379").is_empty());
        assert!(!problems("127.0.0.1:6379").is_empty());
    }
}
