//! The report, live: rebuilt from the log files at start, then fed by the decision-log writer
//! (never by the request path), so the admin endpoints answer in milliseconds. The window is the
//! last seven whole UTC days, today included. The Partner Center shapes are functions of a
//! `Report`, so the fleet report (`crate::evidence::fleet`) answers with them too.

use crate::evidence::record::DecisionRecord;
use crate::evidence::report::{LogFile, parse_ts_ms};
use mfagate_policy::report::{Event, MAX_API_ROWS, Report, day_to_date};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use mfagate_policy::report::DAY_MS;
/// Days kept in memory: the window plus one for the UTC edge.
const KEEP_DAYS: u64 = 8;

/// The live aggregates.
pub struct Live {
    report: Mutex<Report>,
    /// With `[cluster]`: where each written record's counts also go (never the rebuilt ones:
    /// the fleet already has them).
    fleet: Option<Arc<crate::evidence::fleet::FleetReport>>,
    /// Set while the log files are read in the background: the view is not whole yet.
    rebuilding: AtomicBool,
}

fn lock(m: &Mutex<Report>) -> std::sync::MutexGuard<'_, Report> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Logs up to this size are read before the gateway serves (a fraction of a second); larger
/// ones in the background, so enforcement does not wait for the report (8 days at 1,000
/// requests per second are about 690 million records).
pub const REBUILD_BEFORE_SERVING: u64 = 64 * 1024 * 1024;

/// What the rebuild reads: the log files as they are now. Each is opened now and read only up
/// to its present length, so what is written from now on (counted as it is written) is never
/// read again, even if the current file is rotated (renamed) while the rebuild runs.
pub struct Snapshot {
    files: Vec<LogFile>,
    bytes: u64,
}

impl Snapshot {
    /// Takes the files in `paths` as they are now (a file that cannot be opened is left out,
    /// with a warning).
    pub fn take(paths: &[PathBuf]) -> Snapshot {
        let mut files = Vec::new();
        let mut bytes = 0;
        for path in paths {
            // Only regular files: opening a FIFO blocks until someone writes to it.
            if !std::fs::metadata(path).is_ok_and(|m| m.is_file()) {
                tracing::warn!(file = %path.display(), "Not a regular file: not read to rebuild the report");
                continue;
            }
            match std::fs::File::open(path).and_then(|f| Ok((f.metadata()?.len(), f))) {
                Ok((len, file)) => {
                    bytes += len;
                    files.push(LogFile { path: path.clone(), snapshot: Some((file, len)) });
                }
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e, "Cannot read a decision log file to rebuild the report")
                }
            }
        }
        Snapshot { files, bytes }
    }

    /// Bytes to read.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

impl Live {
    /// An empty view whose window ends `now_ms` (nothing rebuilt).
    pub fn new(now_ms: u64) -> Live {
        let mut report = Report::new(u64::MAX, 0);
        report.start_ms = (now_ms / DAY_MS).saturating_sub(KEEP_DAYS - 1) * DAY_MS;
        report.end_ms = u64::MAX;
        Live { report: Mutex::new(report), fleet: None, rebuilding: AtomicBool::new(false) }
    }

    /// Rebuilds from the decision log's files (its current and rotated ones), before returning.
    pub fn rebuild(files: &[PathBuf], now_ms: u64) -> Live {
        let live = Live::new(now_ms);
        live.rebuild_from(Snapshot::take(files));
        live
    }

    /// Rebuilds from `snapshot`: at once when it is at most [`REBUILD_BEFORE_SERVING`] bytes,
    /// else on a thread of its own (returned), [`Live::rebuilding`] until it is done. Records
    /// counted meanwhile are kept: the rebuilt ones are merged before them.
    pub fn rebuild_in_background(
        self: &Arc<Live>,
        snapshot: Snapshot,
    ) -> Option<std::thread::JoinHandle<()>> {
        self.rebuild_above(snapshot, REBUILD_BEFORE_SERVING)
    }

    fn rebuild_above(
        self: &Arc<Live>,
        snapshot: Snapshot,
        at_once: u64,
    ) -> Option<std::thread::JoinHandle<()>> {
        if snapshot.bytes <= at_once {
            self.rebuild_from(snapshot);
            return None;
        }
        self.rebuilding.store(true, Ordering::Release);
        let live = self.clone();
        let spawned = std::thread::Builder::new().name("report-rebuild".into()).spawn(move || {
            let started = std::time::Instant::now();
            let bytes = snapshot.bytes;
            live.rebuild_from(snapshot);
            tracing::info!(
                bytes,
                seconds = started.elapsed().as_secs_f64(),
                "Report rebuilt from the decision log"
            );
        });
        match spawned {
            Ok(handle) => Some(handle),
            Err(e) => {
                tracing::warn!(error = %e, "Cannot start the report rebuild; the report counts from now on only");
                self.rebuilding.store(false, Ordering::Release);
                None
            }
        }
    }

    /// Reads `snapshot` and puts its counts before those counted since.
    fn rebuild_from(&self, snapshot: Snapshot) {
        let mut rebuilt = Report::new(u64::MAX, 0);
        (rebuilt.start_ms, rebuilt.end_ms) = {
            let r = lock(&self.report);
            (r.start_ms, r.end_ms)
        };
        match crate::evidence::report::fill_files(&mut rebuilt, &snapshot.files, Default::default()) {
            Ok(warnings) => {
                for w in warnings.first.iter().take(5) {
                    tracing::warn!(warning = %w, "Decision log line skipped while rebuilding the report");
                }
            }
            Err(e) => tracing::warn!(error = %e, "Cannot rebuild the report from the decision log"),
        }
        let mut r = lock(&self.report);
        let since = std::mem::replace(&mut *r, rebuilt);
        r.merge(since);
        // As counting them one by one would have: only the days kept before the newest.
        if let Some(newest) = r.daily.keys().next_back().copied() {
            let first = newest.saturating_sub(KEEP_DAYS - 1);
            if r.daily.keys().next().is_some_and(|d| *d < first) {
                r.prune_before(first);
            }
        }
        drop(r);
        self.rebuilding.store(false, Ordering::Release);
    }

    /// Whether the log files are still being read: until then the view lacks their records.
    pub fn rebuilding(&self) -> bool {
        self.rebuilding.load(Ordering::Acquire)
    }

    /// Also sends each record counted from now on to the fleet report.
    pub fn feeding(self, fleet: Option<Arc<crate::evidence::fleet::FleetReport>>) -> Live {
        Live { fleet, ..self }
    }

    /// Counts one written record.
    pub fn add(&self, rec: &DecisionRecord) {
        let Some(ts_ms) = parse_ts_ms(&rec.ts) else { return };
        let event = Event {
            ts_ms,
            channel: rec.channel,
            principal: rec.principal,
            mfa: rec.mfa,
            enforced: rec.enforced,
            decision: rec.decision,
            route: rec.route.as_deref(),
            request_id: &rec.request_id,
            correlation_id: rec.correlation_id.as_deref(),
            operation: &rec.operation,
            source_ip: &rec.source_ip,
            object_id: rec.object_id.as_deref(),
            tenant_id: rec.tenant_id.as_deref(),
            upn: rec.upn.as_deref(),
            app_id: rec.app_id.as_deref(),
        };
        add_keeping(&mut lock(&self.report), &event);
        if let Some(fleet) = &self.fleet {
            fleet.add(&event);
        }
    }

    /// The last seven UTC days as a report of their own (for the page and the CSV downloads).
    pub fn view(&self, now_ms: u64) -> Report {
        let mut r = lock(&self.report).clone();
        r.prune_before(first_day(now_ms));
        // The view holds every record so far, one stamped `now` included; the end is exclusive.
        r.end_ms = now_ms.saturating_add(1);
        r
    }
}

/// Counts `e` in `r`, forgetting what falls out of the days kept.
pub fn add_keeping(r: &mut Report, e: &Event<'_>) {
    let first = (e.ts_ms / DAY_MS).saturating_sub(KEEP_DAYS - 1);
    if r.daily.keys().next().is_some_and(|d| *d < first) {
        r.prune_before(first);
    }
    r.add(e);
}

/// The first UTC day of the window that ends with today.
pub fn first_day(now_ms: u64) -> u64 {
    (now_ms / DAY_MS).saturating_sub(6)
}

/// `GET /v1/partnerRequests` from `r`: App+User requests, newest first, at most 10,000.
pub fn partner_requests(r: &Report, now_ms: u64) -> Value {
    let cutoff = first_day(now_ms) * DAY_MS;
    let rows = r.recent_api_requests();
    let items: Vec<Value> = rows
        .iter()
        .filter(|r| r.ts_ms >= cutoff)
        .take(MAX_API_ROWS)
        .map(|r| {
            json!({
                "requestId": r.request_id, "correlationId": r.correlation_id, "operationName": r.operation,
                "requestDateTime": crate::clock::rfc3339_millis(r.ts_ms), "sourceIpAddress": r.ip,
                "objectId": r.object_id, "tenantId": r.tenant_id, "upn": r.upn,
                "applicationId": r.app_id, "mfaCompliant": r.mfa,
            })
        })
        .collect();
    json!({"totalCount": items.len(), "items": items})
}

/// `GET /v1/applicationmfaadoptionstatus` from `r`: per UTC day and application.
pub fn application_adoption(r: &Report, now_ms: u64, names: &dyn Fn(&str) -> String) -> Value {
    let first = first_day(now_ms);
    let rows: Vec<Value> = r
        .apps
        .range((first, String::new())..)
        .map(|((day, app), (mfa, total))| {
            json!({"loginDate": day_to_date(*day), "mfaCompliantRequestCount": mfa, "totalRequestCount": total,
                   "applicationId": app, "applicationName": names(app)})
        })
        .collect();
    Value::Array(rows)
}

/// `GET /v1/nonMfaCompliantPartnerPrincipals` from `r`: portal users without MFA, most recent
/// first.
pub fn non_mfa_principals(r: &Report, now_ms: u64) -> Value {
    let cutoff = first_day(now_ms) * DAY_MS;
    let mut users: Vec<_> = r.non_mfa_users.iter().filter(|(_, u)| u.last_ms >= cutoff).collect();
    users.sort_by_key(|(_, u)| std::cmp::Reverse(u.last_ms));
    let items: Vec<Value> = users
        .iter()
        .take(MAX_API_ROWS)
        .map(|((oid, tid), u)| {
            json!({"objectId": oid, "tenantId": tid, "upn": u.upn,
                   "lastNonMfaCompliantRequestDateTime": crate::clock::rfc3339_millis(u.last_ms)})
        })
        .collect();
    json!({"totalCount": items.len(), "items": items})
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const NOW: u64 = 1_767_225_600_000;

    fn lines(n: usize) -> String {
        let line = r#"{"ts":"2025-12-31T10:00:00.000Z","channel":"api","principal":"app_user","mfa":true,"app_id":"a"}"#;
        format!("{line}\n").repeat(n)
    }

    #[test]
    fn what_is_written_during_a_background_rebuild_is_counted_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("decisions.jsonl");
        std::fs::write(dir.path().join("decisions.2025-12-30.1.jsonl"), lines(40)).unwrap();
        std::fs::write(&path, lines(100)).unwrap();
        let snapshot = Snapshot::take(&crate::evidence::log_files::all_files(&path));
        assert_eq!(snapshot.bytes(), lines(140).len() as u64);
        // Before the rebuild reads anything, the writer appends, rotates (renames the current
        // file) and writes on: 12 records, counted as they are written.
        std::fs::OpenOptions::new().append(true).open(&path).unwrap().write_all(lines(5).as_bytes()).unwrap();
        std::fs::rename(&path, dir.path().join("decisions.2025-12-31.1.jsonl")).unwrap();
        std::fs::write(&path, lines(7)).unwrap();
        let live = Arc::new(Live::new(NOW));
        let held = lock(&live.report);
        let rebuild = live.rebuild_above(snapshot, 0).expect("in the background");
        assert!(live.rebuilding());
        let mut held = held;
        let event = Event {
            ts_ms: NOW - 1000,
            channel: "api",
            principal: "app_user",
            mfa: Some(true),
            ..Event::default()
        };
        for _ in 0..12 {
            add_keeping(&mut held, &event);
        }
        drop(held);
        rebuild.join().unwrap();
        assert!(!live.rebuilding());
        let view = live.view(NOW);
        assert_eq!(view.totals.api_app_user, 152, "140 rebuilt and 12 written");
        // The newest rows are the ones written after the rebuilt ones.
        assert_eq!(view.recent_api_requests()[0].ts_ms, NOW - 1000);
        // A small log is read before returning.
        let live = Arc::new(Live::new(NOW));
        assert!(live.rebuild_in_background(Snapshot::take(&[dir.path().join("decisions.jsonl")])).is_none());
        assert_eq!(live.view(NOW).totals.api_app_user, 7);
    }
}
