//! The report, live: rebuilt from the log files at start, then fed by the decision-log writer
//! (never by the request path), so the admin endpoints answer in milliseconds. The window is the
//! last seven whole UTC days, today included. The Partner Center shapes are functions of a
//! `Report`, so the fleet report (`crate::evidence::fleet`) answers with them too.

use crate::evidence::record::DecisionRecord;
use crate::evidence::report::parse_ts_ms;
use mfagate_policy::report::{Event, MAX_API_ROWS, Report, day_to_date};
use serde_json::{Value, json};
use std::path::PathBuf;
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
}

fn lock(m: &Mutex<Report>) -> std::sync::MutexGuard<'_, Report> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Live {
    /// Rebuilds from the decision log's files (its current and rotated ones).
    pub fn rebuild(files: &[PathBuf], now_ms: u64) -> Live {
        let mut report = Report::new(u64::MAX, 0);
        report.start_ms = (now_ms / DAY_MS).saturating_sub(KEEP_DAYS - 1) * DAY_MS;
        report.end_ms = u64::MAX;
        match crate::evidence::report::fill(&mut report, files, Default::default()) {
            Ok(warnings) => {
                for w in warnings.first.iter().take(5) {
                    tracing::warn!(warning = %w, "Decision log line skipped while rebuilding the report");
                }
            }
            Err(e) => tracing::warn!(error = %e, "Cannot rebuild the report from the decision log"),
        }
        Live { report: Mutex::new(report), fleet: None }
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
