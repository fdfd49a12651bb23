//! `[traces]`: OpenTelemetry spans sent over OTLP/HTTP (protobuf) to a collector. Off unless the
//! table is present.

use super::Problems;
use super::secret::{Secret, read_file};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTraces {
    endpoint: String,
    #[serde(default = "default_service_name")]
    service_name: String,
    #[serde(default = "default_ratio")]
    sample_ratio: f64,
    headers_file: Option<PathBuf>,
    #[serde(default = "default_timeout")]
    export_timeout_secs: u64,
    #[serde(default = "default_interval")]
    batch_interval_ms: u64,
    #[serde(default = "default_batch")]
    max_batch: usize,
    #[serde(default = "default_queue")]
    max_queue: usize,
}

fn default_service_name() -> String {
    "mfagate".into()
}
fn default_ratio() -> f64 {
    1.0
}
fn default_timeout() -> u64 {
    10
}
fn default_interval() -> u64 {
    5000
}
fn default_batch() -> usize {
    512
}
fn default_queue() -> usize {
    2048
}

/// Where and how spans are exported.
#[derive(Debug, Clone)]
pub struct TracesConfig {
    /// The collector's OTLP/HTTP traces URL (`http://collector:4318/v1/traces`).
    pub endpoint: http::Uri,
    /// `service.name` of the resource.
    pub service_name: String,
    /// Share of requests sampled (0 to 1), decided on the trace id; a caller's sampled flag is ignored.
    pub sample_ratio: f64,
    /// Headers sent with every export (an API key): secret, never logged.
    pub headers: Vec<(String, Secret)>,
    /// Deadline of one export, retries included.
    pub export_timeout: Duration,
    /// How long finished spans wait to fill a batch.
    pub batch_interval: Duration,
    /// Spans per export.
    pub max_batch: usize,
    /// Finished spans held while the collector is slow or down; past it they are dropped (counted).
    pub max_queue: usize,
}

impl RawTraces {
    pub(super) fn validate(self, p: &mut Problems, base: &Path) -> TracesConfig {
        let endpoint = super::raw::parse_url(p, "traces.endpoint", &self.endpoint);
        if self.service_name.trim().is_empty() {
            p.add("traces.service_name", "must not be empty");
        }
        if !(0.0..=1.0).contains(&self.sample_ratio) {
            p.add("traces.sample_ratio", "must be between 0 and 1");
        }
        if self.export_timeout_secs == 0 {
            p.add("traces.export_timeout_secs", "must be at least 1");
        }
        if self.batch_interval_ms == 0 {
            p.add("traces.batch_interval_ms", "must be at least 1");
        }
        if self.max_batch == 0 {
            p.add("traces.max_batch", "must be at least 1");
        }
        if self.max_queue < self.max_batch {
            p.add("traces.max_queue", "must be at least max_batch");
        }
        let headers = match &self.headers_file {
            Some(file) => headers(p, &base.join(file)),
            None => Vec::new(),
        };
        TracesConfig {
            endpoint,
            service_name: self.service_name,
            sample_ratio: self.sample_ratio,
            headers,
            export_timeout: Duration::from_secs(self.export_timeout_secs.max(1)),
            batch_interval: Duration::from_millis(self.batch_interval_ms.max(1)),
            max_batch: self.max_batch.max(1),
            max_queue: self.max_queue.max(self.max_batch).max(1),
        }
    }
}

/// `traces.headers_file`: one `Name: value` a line; blank lines and `#` comments are skipped.
/// Errors name the line, never its value.
fn headers(p: &mut Problems, path: &Path) -> Vec<(String, Secret)> {
    const KEY: &str = "traces.headers_file";
    let Some(text) = read_file(p, KEY, path) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = format!("{}:{}", path.display(), n + 1);
        let Some((name, value)) = line.split_once(':') else {
            p.add(KEY, format!("{at}: not `Name: value`"));
            continue;
        };
        let (name, value) = (name.trim(), value.trim());
        if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            p.add(KEY, format!("{at}: not a header name"));
        } else if value.is_empty() || http::HeaderValue::from_str(value).is_err() {
            p.add(KEY, format!("{at}: the value is empty or not printable"));
        } else {
            out.push((name.to_ascii_lowercase(), Secret::new(value)));
        }
    }
    out
}
