//! The configuration's generation and the last reload's result, for /metrics.

use super::exposition::{Kind, Text};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Shared by every generation.
#[derive(Debug, Default)]
pub struct ConfigReloads {
    generation: AtomicU64,
    last_success: AtomicU64,
    last_unix: AtomicU64,
    ok: AtomicU64,
    failed: AtomicU64,
}

impl ConfigReloads {
    /// Generation 1, loaded at `unix` (the start counts as the first successful load).
    pub fn started(unix: u64) -> ConfigReloads {
        let r = ConfigReloads::default();
        r.generation.store(1, Relaxed);
        r.last_success.store(1, Relaxed);
        r.last_unix.store(unix, Relaxed);
        r
    }

    /// A reload at `unix` put `generation` in service.
    pub fn succeeded(&self, generation: u64, unix: u64) {
        self.generation.store(generation, Relaxed);
        self.last_success.store(1, Relaxed);
        self.last_unix.store(unix, Relaxed);
        self.ok.fetch_add(1, Relaxed);
    }

    /// A reload at `unix` was refused; the running generation stays.
    pub fn failed(&self, unix: u64) {
        self.last_success.store(0, Relaxed);
        self.last_unix.store(unix, Relaxed);
        self.failed.fetch_add(1, Relaxed);
    }

    /// The families, in the scrape's writer.
    pub fn render(&self, t: &mut Text<'_>) {
        t.single(
            "mfagate_config_generation",
            Kind::Gauge,
            "Configuration generation in service (1 at start, one more per reload).",
            self.generation.load(Relaxed),
        );
        t.single(
            "mfagate_config_last_reload_success",
            Kind::Gauge,
            "1 when the last load of the configuration (start or reload) succeeded.",
            self.last_success.load(Relaxed),
        );
        t.single(
            "mfagate_config_last_reload_timestamp_seconds",
            Kind::Gauge,
            "When the configuration was last loaded or a reload refused (Unix time).",
            self.last_unix.load(Relaxed),
        );
        const RELOADS: &str = "mfagate_config_reloads_total";
        t.family(RELOADS, Kind::Counter, "Configuration reloads by result.");
        t.sample(RELOADS, &[("result", "ok")], self.ok.load(Relaxed));
        t.sample(RELOADS, &[("result", "error")], self.failed.load(Relaxed));
    }
}
