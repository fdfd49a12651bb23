//! The Security requirements status report (seed 000, claims.md §7, §8.7), computed from decision
//! records in one streaming pass with memory bounded by users, applications and days, never by
//! the number of records.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};

/// The "All API requests" export holds at most this many rows, newest first.
pub const MAX_API_ROWS: usize = 10_000;
/// One UTC day, in milliseconds.
pub const DAY_MS: u64 = 86_400_000;

/// The fields of one decision record the report needs.
#[derive(Debug, Clone, Default)]
pub struct Event<'a> {
    /// Milliseconds since the Unix epoch.
    pub ts_ms: u64,
    /// "api" or "portal".
    pub channel: &'a str,
    /// "app_user", "app_only", "user" or "anonymous".
    pub principal: &'a str,
    /// MFA for user principals.
    pub mfa: Option<bool>,
    /// False in report-only mode.
    pub enforced: bool,
    /// "allow", "deny" or "challenge".
    pub decision: &'a str,
    /// The route, if any (sign-in endpoints have none and are not operations).
    pub route: Option<&'a str>,
    /// MS-RequestId or generated.
    pub request_id: &'a str,
    /// MS-CorrelationId.
    pub correlation_id: Option<&'a str>,
    /// "METHOD route-template".
    pub operation: &'a str,
    /// Client address.
    pub source_ip: &'a str,
    /// Object id.
    pub object_id: Option<&'a str>,
    /// Tenant id.
    pub tenant_id: Option<&'a str>,
    /// UPN.
    pub upn: Option<&'a str>,
    /// Application id.
    pub app_id: Option<&'a str>,
}

/// One row of the "All API requests" export.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ApiRow {
    /// Milliseconds since the Unix epoch (first: rows order by time).
    pub ts_ms: u64,
    /// Arrival order, to keep equal timestamps stable.
    pub seq: u64,
    /// `RequestId`.
    pub request_id: String,
    /// `CorrelationId`.
    pub correlation_id: String,
    /// `OperationName`.
    pub operation: String,
    /// `IpAddress`.
    pub ip: String,
    /// `ObjectId`.
    pub object_id: String,
    /// `TenantId`.
    pub tenant_id: String,
    /// `Upn`.
    pub upn: String,
    /// `ApplicationId`.
    pub app_id: String,
    /// `MfaCompliant`.
    pub mfa: bool,
}

/// Counts for one UTC day.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DayCounts {
    /// Portal operations.
    pub portal_operations: u64,
    /// Of which by MFA-verified users.
    pub portal_mfa: u64,
    /// App+User API requests.
    pub api_app_user: u64,
    /// Of which with MFA.
    pub api_mfa: u64,
    /// App-only requests (left out of the metric).
    pub api_app_only: u64,
    /// Requests without MFA that report-only routes forwarded instead of refusing.
    pub report_only_passes: u64,
}

/// A portal user seen without MFA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NonMfaUser {
    /// `Upn`.
    pub upn: String,
    /// `LastNonMfaCompliantLoginDateTime`, ms.
    pub last_ms: u64,
}

/// The report over `[start_ms, end_ms)`.
#[derive(Debug, Default, Clone)]
pub struct Report {
    /// Window start (inclusive), ms.
    pub start_ms: u64,
    /// Window end (exclusive), ms.
    pub end_ms: u64,
    /// Totals.
    pub totals: DayCounts,
    /// Per UTC day (days since the epoch).
    pub daily: BTreeMap<u64, DayCounts>,
    /// (day, application id) → (MFA requests, all requests).
    pub apps: BTreeMap<(u64, String), (u64, u64)>,
    /// (object id, tenant id) → the user's last non-MFA portal operation.
    pub non_mfa_users: HashMap<(String, String), NonMfaUser>,
    recent: BinaryHeap<Reverse<ApiRow>>,
    seq: u64,
    /// Rows older than this are not kept: a report this one merges into keeps enough newer.
    row_floor_ms: u64,
}

impl Report {
    /// An empty report for the `days` × 24 h before `now_ms`.
    pub fn new(now_ms: u64, days: u64) -> Report {
        Report { start_ms: now_ms.saturating_sub(days * DAY_MS), end_ms: now_ms, ..Report::default() }
    }

    /// Counts one record (records outside the window are ignored).
    pub fn add(&mut self, e: &Event<'_>) {
        if e.ts_ms < self.start_ms || e.ts_ms >= self.end_ms {
            return;
        }
        let day = e.ts_ms / DAY_MS;
        let counts = self.daily.entry(day).or_default();
        let mut bump = |f: fn(&mut DayCounts) -> &mut u64| {
            *f(counts) += 1;
            *f(&mut self.totals) += 1;
        };
        if e.mfa == Some(false) && !e.enforced && e.decision != "allow" {
            bump(|c| &mut c.report_only_passes);
        }
        match (e.channel, e.principal, e.mfa) {
            // Portal operations: requests on a browser route by a signed-in user.
            ("portal", "user", Some(mfa)) if e.route.is_some() => {
                bump(|c| &mut c.portal_operations);
                if mfa {
                    bump(|c| &mut c.portal_mfa);
                } else if let (Some(oid), Some(tid)) = (e.object_id, e.tenant_id) {
                    let entry = self
                        .non_mfa_users
                        .entry((oid.to_owned(), tid.to_owned()))
                        .or_insert_with(|| NonMfaUser { upn: String::new(), last_ms: 0 });
                    if e.ts_ms >= entry.last_ms {
                        entry.last_ms = e.ts_ms;
                        entry.upn = e.upn.unwrap_or_default().to_owned();
                    }
                }
            }
            // API requests with user credentials (App+User tokens, SAML assertions).
            ("api", "app_user" | "user", Some(mfa)) => {
                bump(|c| &mut c.api_app_user);
                if mfa {
                    bump(|c| &mut c.api_mfa);
                }
                let app = self.apps.entry((day, e.app_id.unwrap_or_default().to_owned())).or_default();
                app.0 += u64::from(mfa);
                app.1 += 1;
                self.keep_recent(e, mfa);
            }
            ("api", "app_only", _) => bump(|c| &mut c.api_app_only),
            _ => {}
        }
    }

    fn keep_recent(&mut self, e: &Event<'_>, mfa: bool) {
        self.seq += 1;
        // Judged before the row is built: a long log allocates nothing for rows it drops.
        if !self.has_room(e.ts_ms) {
            return;
        }
        let s = |v: Option<&str>| v.unwrap_or_default().to_owned();
        self.push_row(ApiRow {
            ts_ms: e.ts_ms,
            seq: self.seq,
            request_id: e.request_id.to_owned(),
            correlation_id: s(e.correlation_id),
            operation: e.operation.to_owned(),
            ip: e.source_ip.to_owned(),
            object_id: s(e.object_id),
            tenant_id: s(e.tenant_id),
            upn: s(e.upn),
            app_id: s(e.app_id),
            mfa,
        });
    }

    /// Whether a row at `ts_ms`, numbered `self.seq`, is among the newest [`MAX_API_ROWS`].
    fn has_room(&self, ts_ms: u64) -> bool {
        if ts_ms < self.row_floor_ms {
            return false;
        }
        self.recent.len() < MAX_API_ROWS
            || self
                .recent
                .peek()
                .is_none_or(|Reverse(oldest)| (oldest.ts_ms, oldest.seq) <= (ts_ms, self.seq))
    }

    fn push_row(&mut self, row: ApiRow) {
        self.recent.push(Reverse(row));
        if self.recent.len() > MAX_API_ROWS {
            self.recent.pop();
        }
    }

    /// Keeps a row of the "All API requests" export read back from elsewhere (the fleet's
    /// store), as [`Report::add`] keeps one it counts: the newest [`MAX_API_ROWS`], numbered in
    /// the order given (its `seq` is replaced). The counts are not touched.
    pub fn keep_row(&mut self, mut row: ApiRow) {
        self.seq += 1;
        if self.has_room(row.ts_ms) {
            row.seq = self.seq;
            self.push_row(row);
        }
    }

    /// The time below which a row cannot be among the kept ones any more (0 until
    /// [`MAX_API_ROWS`] are kept): a report that will be merged into this one need not keep
    /// rows older than it ([`Report::keep_rows_from`]).
    pub fn row_floor(&self) -> u64 {
        if self.recent.len() < MAX_API_ROWS { 0 } else { self.recent.peek().map_or(0, |Reverse(r)| r.ts_ms) }
    }

    /// Keeps no row older than `ts_ms` (a piece of a log whose merged report already keeps
    /// [`MAX_API_ROWS`] newer rows): its rows would be dropped at the merge, so they are not
    /// built. The counts are not touched.
    pub fn keep_rows_from(&mut self, ts_ms: u64) {
        self.row_floor_ms = ts_ms;
    }

    /// Adds `later`, a report over the same window of the records that followed this one's, as
    /// if its records had been added here after these: the counts sum, a user's last non-MFA
    /// operation is the later one (on a tie, the one read last, as [`Report::add`] keeps it), and
    /// the kept rows are the newest of both, `later`'s numbered after this report's. Reading a
    /// log in parallel pieces and merging them in order gives exactly the one-pass report.
    pub fn merge(&mut self, later: Report) {
        let add = |a: &mut DayCounts, b: &DayCounts| {
            a.portal_operations += b.portal_operations;
            a.portal_mfa += b.portal_mfa;
            a.api_app_user += b.api_app_user;
            a.api_mfa += b.api_mfa;
            a.api_app_only += b.api_app_only;
            a.report_only_passes += b.report_only_passes;
        };
        add(&mut self.totals, &later.totals);
        for (day, c) in &later.daily {
            add(self.daily.entry(*day).or_default(), c);
        }
        for (key, (mfa, total)) in later.apps {
            let app = self.apps.entry(key).or_default();
            app.0 += mfa;
            app.1 += total;
        }
        for (key, user) in later.non_mfa_users {
            match self.non_mfa_users.entry(key) {
                std::collections::hash_map::Entry::Occupied(mut kept) => {
                    if user.last_ms >= kept.get().last_ms {
                        kept.insert(user);
                    }
                }
                std::collections::hash_map::Entry::Vacant(slot) => {
                    slot.insert(user);
                }
            }
        }
        let offset = self.seq;
        for Reverse(mut row) in later.recent {
            row.seq += offset;
            if self.recent.len() < MAX_API_ROWS
                || self
                    .recent
                    .peek()
                    .is_some_and(|Reverse(oldest)| (oldest.ts_ms, oldest.seq) < (row.ts_ms, row.seq))
            {
                self.push_row(row);
            }
        }
        self.seq += later.seq;
    }

    /// Totals over whole UTC days from `first_day` on (the live view, updated as records arrive).
    pub fn totals_since(&self, first_day: u64) -> DayCounts {
        // Saturating: the days may be read back from a shared store, not counted here.
        self.daily.range(first_day..).fold(DayCounts::default(), |mut t, (_, c)| {
            t.portal_operations = t.portal_operations.saturating_add(c.portal_operations);
            t.portal_mfa = t.portal_mfa.saturating_add(c.portal_mfa);
            t.api_app_user = t.api_app_user.saturating_add(c.api_app_user);
            t.api_mfa = t.api_mfa.saturating_add(c.api_mfa);
            t.api_app_only = t.api_app_only.saturating_add(c.api_app_only);
            t.report_only_passes = t.report_only_passes.saturating_add(c.report_only_passes);
            t
        })
    }

    /// Forgets days before `first_day`, keeping a live report's memory bounded.
    pub fn prune_before(&mut self, first_day: u64) {
        self.daily = self.daily.split_off(&first_day);
        self.apps = self.apps.split_off(&(first_day, String::new()));
        let cutoff = first_day * DAY_MS;
        self.non_mfa_users.retain(|_, u| u.last_ms >= cutoff);
        self.recent.retain(|std::cmp::Reverse(r)| r.ts_ms >= cutoff);
        self.start_ms = self.start_ms.max(cutoff);
        self.totals = self.totals_since(first_day);
    }

    /// The "All API requests" rows, newest first.
    pub fn recent_api_requests(&self) -> Vec<ApiRow> {
        let mut rows: Vec<ApiRow> = self.recent.iter().map(|Reverse(r)| r.clone()).collect();
        rows.sort_by_key(|r| std::cmp::Reverse((r.ts_ms, r.seq)));
        rows
    }

    /// Portal %: MFA operations / operations; `None` when there were none.
    pub fn portal_percent(&self) -> Option<f64> {
        percent(self.totals.portal_mfa, self.totals.portal_operations)
    }

    /// API %: App+User requests with MFA / App+User requests; App-only left out; `None` if none.
    pub fn api_percent(&self) -> Option<f64> {
        percent(self.totals.api_mfa, self.totals.api_app_user)
    }

    /// Every UTC day the window touches, oldest first, with zeros for days without traffic (the
    /// series Partner Center shows). A window that does not start at midnight touches one more
    /// day than its length in days.
    pub fn days(&self) -> impl Iterator<Item = (u64, DayCounts)> + '_ {
        let first = self.start_ms / DAY_MS;
        // The end is exclusive: a window ending at midnight does not touch the next day.
        let end = if self.end_ms > self.start_ms { (self.end_ms - 1) / DAY_MS + 1 } else { first };
        (first..end).map(|day| (day, self.daily.get(&day).copied().unwrap_or_default()))
    }
}

/// `n` and its noun, singular for one: `1 user`, `2 users`, `0 users`.
pub fn count(n: u64, singular: &str, plural: &str) -> String {
    format!("{n} {}", if n == 1 { singular } else { plural })
}

/// `part / whole × 100`, or `None` for an empty denominator (never 0 % or 100 %).
pub fn percent(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 * 100.0 / whole as f64)
}

/// The UTC date of a day number, as `YYYY-MM-DD`.
pub fn day_to_date(day: u64) -> String {
    // Howard Hinnant's civil_from_days.
    let z = day as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// One scored requirement (seed 001: full points when met, else 0).
#[derive(Debug, Clone, PartialEq)]
pub struct Requirement {
    /// Short name.
    pub name: &'static str,
    /// Maximum points.
    pub max_points: u32,
    /// Met, not met, or unknown (not observed, not declared).
    pub met: Option<bool>,
    /// Observed by mfagate (true) or declared in the configuration (false).
    pub observed: bool,
    /// What to look at.
    pub insight: String,
}

/// Requirements mfagate cannot observe, as the operator declares them (`None`: not declared).
#[derive(Debug, Clone, Copy, Default)]
pub struct Declared {
    /// Response to alerts is 24 hours or less on average.
    pub response_to_alerts: Option<bool>,
    /// A security contact is provided.
    pub security_contact: Option<bool>,
    /// All Azure subscriptions have a spending budget.
    pub spending_budgets: Option<bool>,
    /// Users with administrative roles in customer tenants use MFA.
    pub customer_admins_mfa: Option<bool>,
}

impl Report {
    /// The requirements, observed and declared, with the seed's points.
    pub fn requirements(&self, declared: &Declared) -> Vec<Requirement> {
        let t = &self.totals;
        let observed = |name, max_points, met: Option<bool>, insight: String| Requirement {
            name,
            max_points,
            met,
            observed: true,
            insight,
        };
        let stated = |name, max_points, met: Option<bool>| Requirement {
            name,
            max_points,
            met,
            observed: false,
            insight: match met {
                Some(true) => "declared met".into(),
                Some(false) => "declared not met".into(),
                None => "not declared: counted as not met".into(),
            },
        };
        let api_missing = t.api_app_user - t.api_mfa;
        let portal_missing = t.portal_operations - t.portal_mfa;
        vec![
            observed(
                "Every App+User API request carried MFA",
                20,
                (t.api_app_user > 0).then_some(api_missing == 0),
                format!(
                    "{api_missing} of {} without MFA",
                    count(t.api_app_user, "App+User API request", "App+User API requests")
                ),
            ),
            observed(
                "Every portal operation was by an MFA-verified user",
                20,
                (t.portal_operations > 0).then_some(portal_missing == 0),
                format!(
                    "{portal_missing} of {} without MFA ({})",
                    count(t.portal_operations, "portal operation", "portal operations"),
                    count(self.non_mfa_users.len() as u64, "user", "users")
                ),
            ),
            observed(
                "No request without MFA was let through in report-only mode",
                10,
                Some(t.report_only_passes == 0),
                format!(
                    "{} without MFA forwarded by report-only routes",
                    count(t.report_only_passes, "request", "requests")
                ),
            ),
            stated("Response to alerts is 24 hours or less on average", 20, declared.response_to_alerts),
            stated("Provide a security contact", 10, declared.security_contact),
            stated("All Azure subscriptions have a spending budget", 10, declared.spending_budgets),
            stated(
                "Users with administrative roles in the customer tenants must use MFA",
                20,
                declared.customer_admins_mfa,
            ),
        ]
    }
}

/// Seed 001: sum of earned points / sum of maximum points × 100. Requirements with nothing to
/// observe (no traffic) are left out of both sums.
pub fn score(requirements: &[Requirement]) -> f64 {
    let counted: Vec<&Requirement> = requirements.iter().filter(|r| r.met.is_some() || !r.observed).collect();
    let max: u32 = counted.iter().map(|r| r.max_points).sum();
    let earned: u32 = counted.iter().filter(|r| r.met == Some(true)).map(|r| r.max_points).sum();
    if max == 0 { 0.0 } else { f64::from(earned) * 100.0 / f64::from(max) }
}

#[cfg(test)]
mod tests;
