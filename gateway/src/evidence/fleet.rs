//! The fleet-wide report (`[cluster]`): each instance adds what the records it writes from now on
//! mean for the report to Redis, and any instance's report page, CSV downloads, `/v1/report` and
//! Partner Center shapes are rebuilt from there. The numbers are [`Report::add`]'s: a flush sends
//! the counts of a pending `Report` built from the records, so they cannot drift from
//! `mfagate report`.
//!
//! Flushes run off the request path, every `report_flush_ms` and at shutdown, as one Lua script
//! (atomic). A batch is numbered; the script skips a number it has already applied, so a batch
//! sent again after a lost reply is counted once. While Redis is down the batch waits (with the
//! records that follow, in a second batch), bounded by the `Report`'s own caps.

mod read;

pub use read::{Contributor, Scope, view};

use crate::clock::SharedClock;
use crate::cluster::Cluster;
use crate::evidence::live::add_keeping;
use mfagate_policy::report::{Event, Report};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mfagate_policy::report::DAY_MS;
/// How long the shared keys live after their last write: the window plus a day.
const KEEP_MS: u64 = 8 * DAY_MS;

/// The script a flush runs.
const FLUSH: &str = include_str!("fleet/flush.lua");

/// A batch numbered and ready to send, kept until Redis confirms it.
struct Sealed {
    keys: Vec<String>,
    batch: String,
    records: u64,
}

/// What has not reached Redis yet.
struct Pending {
    /// Records counted since the last batch was sealed.
    report: Report,
    records: u64,
    newest_ms: u64,
    /// The batch sent and not confirmed (Redis down, or its reply lost).
    sealed: Option<Sealed>,
    /// The last batch number used.
    seq: u64,
}

fn empty() -> Report {
    let mut r = Report::default();
    r.end_ms = u64::MAX;
    r
}

/// This instance's side of the fleet report.
pub struct FleetReport {
    cluster: Arc<Cluster>,
    clock: SharedClock,
    /// Names this run of the instance: batch numbers start again at each start.
    boot: String,
    pending: Mutex<Pending>,
    flushed: AtomicU64,
    failed: AtomicU64,
    /// One flush at a time (the periodic one and the last one at shutdown).
    flushing: tokio::sync::Mutex<()>,
    script: redis::Script,
}

impl FleetReport {
    /// The report side of `cluster`; nothing is sent until the first flush.
    pub fn new(cluster: Arc<Cluster>, clock: SharedClock) -> Arc<FleetReport> {
        // Unique per start, not secret; the clock makes it unique even without randomness.
        let boot = crate::ids::random_token().unwrap_or_else(|| clock.now_millis().to_string());
        Arc::new(FleetReport {
            cluster,
            clock,
            boot,
            pending: Mutex::new(Pending { report: empty(), records: 0, newest_ms: 0, sealed: None, seq: 0 }),
            flushed: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            flushing: tokio::sync::Mutex::new(()),
            script: redis::Script::new(FLUSH),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts one written record (called by the decision-log writer, never a request).
    pub fn add(&self, e: &Event<'_>) {
        let mut p = self.lock();
        add_keeping(&mut p.report, e);
        p.records += 1;
        p.newest_ms = p.newest_ms.max(e.ts_ms);
    }

    /// Records counted here and not yet confirmed by Redis.
    pub fn pending_records(&self) -> u64 {
        let p = self.lock();
        p.records + p.sealed.as_ref().map_or(0, |s| s.records)
    }

    /// Flushes that Redis confirmed, and flushes that failed.
    pub fn flush_results(&self) -> (u64, u64) {
        (self.flushed.load(Ordering::Relaxed), self.failed.load(Ordering::Relaxed))
    }

    /// Flushes every `every` for as long as the gateway runs.
    pub async fn run(self: Arc<Self>, every: Duration) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.flush().await;
        }
    }

    /// Sends what is pending: the batch waiting for confirmation, then the records since. At
    /// most two round trips, so a busy instance does not flush forever. Returns whether
    /// everything sent was confirmed.
    pub async fn flush(&self) -> bool {
        let _one = self.flushing.lock().await;
        for _ in 0..2 {
            if !self.seal() {
                return true;
            }
            if !self.send().await {
                return false;
            }
        }
        true
    }

    /// Makes the pending records the next batch unless one is waiting; whether one is waiting.
    fn seal(&self) -> bool {
        let (report, records, newest_ms, seq) = {
            let mut p = self.lock();
            if p.sealed.is_some() {
                return true;
            }
            if p.records == 0 {
                return false;
            }
            p.seq += 1;
            let report = std::mem::replace(&mut p.report, empty());
            let (records, newest) = (std::mem::take(&mut p.records), std::mem::take(&mut p.newest_ms));
            (report, records, newest, p.seq)
        };
        // Built outside the lock: the writer thread goes on counting meanwhile.
        let sealed = self.batch(&report, records, newest_ms, seq);
        self.lock().sealed = Some(sealed);
        true
    }

    fn batch(&self, r: &Report, records: u64, newest_ms: u64, seq: u64) -> Sealed {
        let c = &self.cluster;
        let mut keys = vec![
            c.key(&format!("report:batch:{}:{}", c.instance(), self.boot)),
            c.key(read::USERS),
            c.key(read::UPNS),
            c.key(read::RECENT),
            c.key(read::NEWEST),
            c.key(read::RECORDS),
        ];
        let days: Vec<Value> = r
            .daily
            .iter()
            .map(|(day, n)| {
                keys.push(c.key(&read::day_key(*day)));
                keys.push(c.key(&read::apps_key(*day)));
                let counts = [
                    n.portal_operations,
                    n.portal_mfa,
                    n.api_app_user,
                    n.api_mfa,
                    n.api_app_only,
                    n.report_only_passes,
                ]
                .map(|v| v.to_string());
                let apps: Vec<Value> = r
                    .apps
                    .range((*day, String::new())..(*day + 1, String::new()))
                    .map(|((_, app), (mfa, total))| json!([app, mfa.to_string(), total.to_string()]))
                    .collect();
                json!({"counts": counts, "apps": apps})
            })
            .collect();
        let users: Vec<Value> = r
            .non_mfa_users
            .iter()
            .map(|((oid, tid), u)| json!([read::user_member(oid, tid), u.last_ms.to_string(), u.upn]))
            .collect();
        // Oldest first: the stream keeps the newest at its end.
        let mut rows: Vec<String> = r.recent_api_requests().iter().map(read::row_to_json).collect();
        rows.reverse();
        let batch = json!({
            "seq": seq.to_string(), "records": records.to_string(), "newest": newest_ms.to_string(),
            "days": days, "users": users, "rows": rows,
        });
        Sealed { keys, batch: batch.to_string(), records }
    }

    /// Sends the waiting batch; on success forgets it.
    async fn send(&self) -> bool {
        let invocation = {
            let p = self.lock();
            let Some(sealed) = &p.sealed else { return true };
            let mut invocation = self.script.prepare_invoke();
            for k in &sealed.keys {
                invocation.key(k);
            }
            let cutoff = self.clock.now_millis().saturating_sub(KEEP_MS);
            invocation.arg(&sealed.batch).arg(KEEP_MS).arg(self.cluster.instance()).arg(cutoff);
            invocation
        };
        let applied: redis::RedisResult<i64> =
            self.cluster.bounded(invocation.invoke_async(&mut self.cluster.connection())).await;
        match self.cluster.record(applied) {
            Ok(applied) => {
                if applied == 0 {
                    tracing::info!(instance = %self.cluster.instance(), "Report batch already counted by Redis (its reply was lost); not counted again");
                }
                self.lock().sealed = None;
                self.flushed.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(_) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }
}
