//! Reading the fleet report back: one atomic pipeline (one round trip, bounded by the cluster
//! timeout) rebuilds a policy `Report` for the window, which the usual functions render. When
//! Redis cannot be read, the instance's own live view answers, and says so.

use crate::cluster::Cluster;
use crate::evidence::live::first_day;
use crate::state::State;
use mfagate_policy::report::{ApiRow, DayCounts, MAX_API_ROWS, NonMfaUser, Report};
use serde_json::{Value, json};
use std::collections::HashMap;

use mfagate_policy::report::DAY_MS;

/// Portal users without MFA: a sorted set of `["oid","tid"]` by their last such time (ms).
pub(super) const USERS: &str = "report:users";
/// Their UPNs, by the same member.
pub(super) const UPNS: &str = "report:upns";
/// The newest App+User requests, a stream capped at 10,000 entries.
pub(super) const RECENT: &str = "report:recent";
/// The newest record each instance contributed (ms), by instance.
pub(super) const NEWEST: &str = "report:instances";
/// Records each instance contributed, by instance.
pub(super) const RECORDS: &str = "report:records";

/// One UTC day's counts (a hash of the `DayCounts` fields).
pub(super) fn day_key(day: u64) -> String {
    format!("report:day:{day}")
}

/// One UTC day's applications (`m:<app>` with MFA, `t:<app>` in all).
pub(super) fn apps_key(day: u64) -> String {
    format!("report:apps:{day}")
}

pub(super) fn user_member(oid: &str, tid: &str) -> String {
    json!([oid, tid]).to_string()
}

pub(super) fn row_to_json(r: &ApiRow) -> String {
    json!([
        r.ts_ms,
        r.request_id,
        r.correlation_id,
        r.operation,
        r.ip,
        r.object_id,
        r.tenant_id,
        r.upn,
        r.app_id,
        r.mfa
    ])
    .to_string()
}

fn row_from_json(text: &str) -> Option<ApiRow> {
    let v: Vec<Value> = serde_json::from_str(text).ok()?;
    let s = |i: usize| v.get(i).and_then(Value::as_str).map(str::to_owned);
    Some(ApiRow {
        ts_ms: v.first()?.as_u64()?,
        seq: 0,
        request_id: s(1)?,
        correlation_id: s(2)?,
        operation: s(3)?,
        ip: s(4)?,
        object_id: s(5)?,
        tenant_id: s(6)?,
        upn: s(7)?,
        app_id: s(8)?,
        mfa: v.get(9)?.as_bool()?,
    })
}

/// An instance that contributed to the window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contributor {
    /// Its `cluster.instance` name.
    pub instance: String,
    /// Its newest record (ms).
    pub newest_ms: u64,
    /// The records it has contributed while the keys lived.
    pub records: u64,
}

/// Whose decisions a report answer covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// The whole fleet, as Redis holds it, and how many of this instance's records are not
    /// in it yet (flushes failing while Redis still answers reads: a read-only replica).
    Fleet(Vec<Contributor>, u64),
    /// This instance's own view, and why.
    Instance(&'static str),
}

impl Scope {
    /// The `X-Mfagate-Report-Scope` header: `fleet; instances=3` or
    /// `instance; reason=redis-unreachable`.
    pub fn header(&self) -> String {
        match self {
            Scope::Fleet(who, 0) => format!("fleet; instances={}", who.len()),
            Scope::Fleet(who, unsent) => format!("fleet; instances={}; unsent={unsent}", who.len()),
            Scope::Instance(why) => format!("instance; reason={}", why.replace(' ', "-").to_lowercase()),
        }
    }

    /// One sentence for the page.
    pub fn sentence(&self) -> String {
        match self {
            Scope::Fleet(who, unsent) => {
                let each: Vec<String> = who
                    .iter()
                    .map(|c| {
                        format!(
                            "{} (newest record {}, {})",
                            c.instance,
                            crate::clock::rfc3339_millis(c.newest_ms),
                            mfagate_policy::report::count(c.records, "record", "records")
                        )
                    })
                    .collect();
                let missing = match unsent {
                    0 => String::new(),
                    n => format!(
                        ". Not counted yet: {} of this instance that Redis has not taken",
                        mfagate_policy::report::count(*n, "record", "records")
                    ),
                };
                format!(
                    "Fleet-wide: {}: {}{missing}",
                    mfagate_policy::report::count(who.len() as u64, "instance", "instances"),
                    each.join("; ")
                )
            }
            Scope::Instance(why) => format!("This instance only: {why}"),
        }
    }

    /// The `scope` member of `/v1/report`.
    pub fn to_json(&self) -> Value {
        match self {
            Scope::Fleet(who, unsent) => json!({
                "fleet": true,
                "unsent_records": unsent,
                "instances": who.iter().map(|c| json!({
                    "instance": c.instance,
                    "newest_record": crate::clock::rfc3339_millis(c.newest_ms),
                    "records": c.records,
                })).collect::<Vec<_>>(),
            }),
            Scope::Instance(why) => json!({"fleet": false, "reason": why}),
        }
    }
}

/// The report for the last seven UTC days: the fleet's with `[cluster]` (this instance's own,
/// and why, when Redis cannot be read), this instance's without (no scope then).
pub async fn view(state: &State, now_ms: u64) -> (Report, Option<Scope>) {
    let Some(cluster) = &state.cluster else { return (state.live.view(now_ms), None) };
    match read(cluster, now_ms).await {
        Ok((report, who)) => {
            let unsent = state.fleet.as_ref().map_or(0, |f| f.pending_records());
            (report, Some(Scope::Fleet(who, unsent)))
        }
        Err(why) => (state.live.view(now_ms), Some(Scope::Instance(why))),
    }
}

type Unread = &'static str;

async fn read(cluster: &Cluster, now_ms: u64) -> Result<(Report, Vec<Contributor>), Unread> {
    let (first, today) = (first_day(now_ms), now_ms / DAY_MS);
    let cutoff = first * DAY_MS;
    let mut pipe = redis::pipe();
    pipe.atomic();
    for day in first..=today {
        pipe.cmd("HGETALL").arg(cluster.key(&day_key(day)));
        pipe.cmd("HGETALL").arg(cluster.key(&apps_key(day)));
    }
    pipe.cmd("ZRANGEBYSCORE").arg(cluster.key(USERS)).arg(cutoff).arg("+inf").arg("WITHSCORES");
    pipe.cmd("HGETALL").arg(cluster.key(UPNS));
    pipe.cmd("XREVRANGE").arg(cluster.key(RECENT)).arg("+").arg("-").arg("COUNT").arg(MAX_API_ROWS);
    pipe.cmd("HGETALL").arg(cluster.key(NEWEST));
    pipe.cmd("HGETALL").arg(cluster.key(RECORDS));
    let answer: redis::RedisResult<Vec<redis::Value>> =
        cluster.bounded(pipe.query_async(&mut cluster.connection())).await;
    let values = cluster.record(answer).map_err(|_| "Redis unreachable")?;
    let garbled = "the report data in Redis is unreadable";
    let mut values = values.into_iter();
    let mut next = || values.next().ok_or(garbled);
    let hash = |v: redis::Value| redis::from_redis_value::<HashMap<String, String>>(v).map_err(|_| garbled);
    let number = |v: &str| v.parse::<u64>().map_err(|_| garbled);

    let mut r = Report::default();
    (r.start_ms, r.end_ms) = (cutoff, now_ms.saturating_add(1));
    for day in first..=today {
        let counts = hash(next()?)?;
        if !counts.is_empty() {
            let get = |f: &str| counts.get(f).map_or(Ok(0), |v| number(v));
            r.daily.insert(
                day,
                DayCounts {
                    portal_operations: get("portal_operations")?,
                    portal_mfa: get("portal_mfa")?,
                    api_app_user: get("api_app_user")?,
                    api_mfa: get("api_mfa")?,
                    api_app_only: get("api_app_only")?,
                    report_only_passes: get("report_only_passes")?,
                },
            );
        }
        for (field, n) in hash(next()?)? {
            let (with_mfa, app) = match field.split_once(':') {
                Some(("m", app)) => (true, app),
                Some(("t", app)) => (false, app),
                _ => return Err(garbled),
            };
            let entry = r.apps.entry((day, app.to_owned())).or_default();
            *(if with_mfa { &mut entry.0 } else { &mut entry.1 }) = number(&n)?;
        }
    }
    r.totals = r.totals_since(first);
    let users = redis::from_redis_value::<Vec<String>>(next()?).map_err(|_| garbled)?;
    let upns = hash(next()?)?;
    for pair in users.chunks(2) {
        let [member, last] = pair else { return Err(garbled) };
        let (oid, tid): (String, String) = serde_json::from_str(member).map_err(|_| garbled)?;
        // Scores come back as text of a double; ms values are integers well inside its range.
        let last_ms = last.parse::<f64>().map_err(|_| garbled)? as u64;
        let upn = upns.get(member).cloned().unwrap_or_default();
        r.non_mfa_users.insert((oid, tid), NonMfaUser { upn, last_ms });
    }
    let entries = redis::from_redis_value::<Vec<(String, Vec<String>)>>(next()?).map_err(|_| garbled)?;
    // Newest first from Redis; kept oldest first, as the instances added them.
    for (_, fields) in entries.iter().rev() {
        let row = fields.get(1).and_then(|text| row_from_json(text)).ok_or(garbled)?;
        if row.ts_ms >= cutoff && row.ts_ms < r.end_ms {
            r.keep_row(row);
        }
    }
    let newest = hash(next()?)?;
    let records = hash(next()?)?;
    let mut who = Vec::new();
    for (instance, newest_ms) in newest {
        let newest_ms = number(&newest_ms)?;
        if newest_ms >= cutoff {
            let records = records.get(&instance).map_or(Ok(0), |n| number(n))?;
            who.push(Contributor { instance, newest_ms, records });
        }
    }
    who.sort_by(|a, b| a.instance.cmp(&b.instance));
    Ok((r, who))
}
