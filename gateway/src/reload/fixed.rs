//! Settings a running gateway cannot change in place: the sockets it has bound, the caps sized
//! at start, the connection settings built into its listeners, the decision log it has open and
//! the outbound client and the cluster's Redis connection. A reload keeps their running values
//! and names each one that differs.

use crate::config::Config;

/// Puts the running value of every restart-only setting into `next`; returns the key path of each
/// one that differed.
pub fn keep_running(running: &Config, next: &mut Config) -> Vec<&'static str> {
    let mut changed = Vec::new();
    let mut keep = |name: &'static str, differs: bool| {
        if differs {
            changed.push(name);
        }
        differs
    };
    let (was, now) = (&running.listen, &mut next.listen);
    if keep("listen.addr", was.addr != now.addr) {
        now.addr = was.addr;
    }
    // A new certificate or key is taken in place; turning TLS on or off is not.
    if keep("listen.tls", was.tls.is_some() != now.tls.is_some()) {
        now.tls.clone_from(&was.tls);
    }
    if keep("listen.max_connections", was.max_connections != now.max_connections) {
        now.max_connections = was.max_connections;
    }
    if keep("listen.max_connections_per_ip", was.max_connections_per_ip != now.max_connections_per_ip) {
        now.max_connections_per_ip = was.max_connections_per_ip;
    }
    if keep("listen.max_header_bytes", was.max_header_bytes != now.max_header_bytes) {
        now.max_header_bytes = was.max_header_bytes;
    }
    if keep(
        "listen.http2_keep_alive_interval_secs",
        was.http2_keep_alive_interval != now.http2_keep_alive_interval,
    ) {
        now.http2_keep_alive_interval = was.http2_keep_alive_interval;
    }
    if keep(
        "listen.http2_keep_alive_timeout_secs",
        was.http2_keep_alive_timeout != now.http2_keep_alive_timeout,
    ) {
        now.http2_keep_alive_timeout = was.http2_keep_alive_timeout;
    }
    if keep("admin.addr", running.admin != next.admin) {
        next.admin = running.admin;
    }
    // The private listener's socket and TLS are bound at start; its token is read per request.
    match (&running.private_admin, &mut next.private_admin) {
        (Some(was), Some(now)) => {
            if keep("admin.private_addr", was.addr != now.addr) {
                now.addr = was.addr;
            }
            if keep("admin.private_tls", format!("{:?}", was.tls) != format!("{:?}", now.tls)) {
                now.tls.clone_from(&was.tls);
            }
        }
        (None, None) => {}
        (was, now) => {
            keep("admin.private_addr", true);
            now.clone_from(was);
        }
    }
    if keep("log.format", running.log_format != next.log_format) {
        next.log_format = running.log_format;
    }
    let (was, now) = (&running.decision_log, &mut next.decision_log);
    let log_differs = was.path != now.path
        || was.queue != now.queue
        || was.max_bytes != now.max_bytes
        || was.retention_days != now.retention_days;
    if keep("decision_log (path, queue, max_bytes, retention_days)", log_differs) {
        // `on_log_failure` is read per request, so it does change in place.
        let on_failure = now.on_failure;
        *now = was.clone();
        now.on_failure = on_failure;
    }
    let (was, now) = (&running.outbound, &mut next.outbound);
    if keep(
        "outbound",
        was.ca_file != now.ca_file || was.connect_timeout != now.connect_timeout || was.idle != now.idle,
    ) {
        *now = was.clone();
    }
    // The Redis connection and the fleet's key space are shared by every generation.
    if keep("cluster", running.cluster != next.cluster) {
        next.cluster.clone_from(&running.cluster);
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> Config {
        let dir = std::env::temp_dir();
        Config::from_toml(
            &format!("[listen]\naddr = \"127.0.0.1:8080\"\n{extra}\n[decision_log]\npath = \"d.jsonl\"\n"),
            &dir,
        )
        .unwrap()
    }

    #[test]
    fn restart_only_settings_keep_their_running_values_and_are_named() {
        let running = config("max_connections = 100\nidle_timeout_secs = 30");
        let mut next = config("max_connections = 200\nidle_timeout_secs = 10");
        next.listen.addr = "127.0.0.1:9999".parse().unwrap();
        let changed = keep_running(&running, &mut next);
        assert_eq!(changed, ["listen.addr", "listen.max_connections"]);
        assert_eq!((next.listen.addr, next.listen.max_connections), (running.listen.addr, 100));
        // What changes in place is left as the new file says.
        assert_eq!(next.listen.idle_timeout, std::time::Duration::from_secs(10));
        assert!(keep_running(&running, &mut running.clone()).is_empty());
    }
}
