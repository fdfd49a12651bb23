use super::*;

const NOW: u64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

fn event(ts_ms: u64, channel: &'static str, principal: &'static str, mfa: Option<bool>) -> Event<'static> {
    Event {
        ts_ms,
        channel,
        principal,
        mfa,
        enforced: true,
        decision: if mfa == Some(false) { "challenge" } else { "allow" },
        route: Some("r"),
        request_id: "id",
        operation: "GET /v1/",
        object_id: Some("oid"),
        tenant_id: Some("tid"),
        upn: Some("u@contoso.test"),
        app_id: Some("app-a"),
        ..Event::default()
    }
}

#[test]
fn seed_examples_portal_20_and_api_40() {
    let mut r = Report::new(NOW, 7);
    let t = NOW - 3_600_000;
    // Contoso: 3 + 5 non-MFA portal operations, 2 MFA ones → 20 %.
    for _ in 0..8 {
        r.add(&event(t, "portal", "user", Some(false)));
    }
    for _ in 0..2 {
        r.add(&event(t, "portal", "user", Some(true)));
    }
    // Fabrikam: 3 non-MFA App+User, 5 App-only, 2 MFA App+User → 2 / 5 = 40 %.
    for _ in 0..3 {
        r.add(&event(t, "api", "app_user", Some(false)));
    }
    for _ in 0..5 {
        r.add(&event(t, "api", "app_only", None));
    }
    for _ in 0..2 {
        r.add(&event(t, "api", "app_user", Some(true)));
    }
    assert_eq!(r.portal_percent(), Some(20.0));
    assert_eq!(r.api_percent(), Some(40.0));
    assert_eq!(r.totals.api_app_only, 5);
    assert_eq!(r.non_mfa_users.len(), 1);
    // A report-only pass ten days ago leaves the window with its day.
    let mut r = Report::new(NOW, 30);
    r.add(&Event { enforced: false, ..event(NOW - 10 * DAY_MS, "api", "app_user", Some(false)) });
    assert_eq!(r.totals.report_only_passes, 1);
    r.prune_before(NOW / DAY_MS - 7);
    assert_eq!(r.totals.report_only_passes, 0);
}

#[test]
fn window_edges_and_empty_denominators() {
    let mut r = Report::new(NOW, 7);
    r.add(&event(NOW - 7 * DAY_MS - 1000, "api", "app_user", Some(true)));
    r.add(&event(NOW, "api", "app_user", Some(true)));
    assert_eq!(r.totals.api_app_user, 0, "7 days and 1 second old is out; now is the exclusive end");
    r.add(&event(NOW - 7 * DAY_MS, "api", "app_user", Some(true)));
    assert_eq!(r.totals.api_app_user, 1, "exactly 7 days old is in");
    assert_eq!(r.portal_percent(), None, "n/a, never 0 % or 100 %");
    // Anonymous requests and sign-in endpoints are not operations.
    r.add(&event(NOW - 1, "portal", "anonymous", None));
    r.add(&Event { route: None, ..event(NOW - 1, "portal", "user", Some(true)) });
    assert_eq!(r.totals.portal_operations, 0);
}

#[test]
fn the_export_keeps_the_10000_newest_newest_first() {
    let mut r = Report::new(NOW, 7);
    for i in 0..12_000u64 {
        r.add(&event(NOW - 1_000_000 + i * 10, "api", "app_user", Some(i % 2 == 0)));
    }
    let rows = r.recent_api_requests();
    assert_eq!(rows.len(), MAX_API_ROWS);
    assert_eq!(rows[0].ts_ms, NOW - 1_000_000 + 11_999 * 10);
    assert_eq!(rows.last().map(|x| x.ts_ms), Some(NOW - 1_000_000 + 2_000 * 10));
    assert!(rows.windows(2).all(|w| w[0].ts_ms >= w[1].ts_ms));
}

#[test]
fn two_applications_on_one_day_are_two_summary_rows() {
    let mut r = Report::new(NOW, 7);
    let t = NOW - DAY_MS / 2;
    r.add(&event(t, "api", "app_user", Some(true)));
    r.add(&Event { app_id: Some("app-b"), ..event(t, "api", "app_user", Some(false)) });
    r.add(&Event { app_id: Some("app-b"), ..event(t, "api", "app_user", Some(true)) });
    let day = t / DAY_MS;
    assert_eq!(r.apps.get(&(day, "app-a".into())), Some(&(1, 1)));
    assert_eq!(r.apps.get(&(day, "app-b".into())), Some(&(1, 2)));
    assert_eq!(day_to_date(day), "2025-12-31");
    assert_eq!(day_to_date(0), "1970-01-01");
}

#[test]
fn live_totals_by_day_and_pruning() {
    let mut r = Report::new(NOW, 30);
    let today = NOW / DAY_MS;
    r.add(&event(NOW - 10 * DAY_MS, "api", "app_user", Some(false)));
    r.add(&event(NOW - 2 * DAY_MS, "api", "app_user", Some(true)));
    r.add(&event(NOW - 1, "portal", "user", Some(false)));
    assert_eq!(r.totals_since(today - 7).api_app_user, 1);
    assert_eq!(r.totals_since(0).api_app_user, 2);
    r.prune_before(today - 7);
    assert_eq!(r.daily.len(), 2);
    assert_eq!(r.apps.len(), 1);
    assert_eq!(r.recent_api_requests().len(), 1);
    assert_eq!(r.non_mfa_users.len(), 1);
}

#[test]
fn score_formula_on_a_mixed_set() {
    let mut r = Report::new(NOW, 7);
    r.add(&event(NOW - 10, "api", "app_user", Some(true)));
    r.add(&event(NOW - 10, "portal", "user", Some(false)));
    r.add(&Event { enforced: false, ..event(NOW - 10, "api", "app_user", Some(false)) });
    let declared = Declared {
        response_to_alerts: Some(true),
        security_contact: Some(true),
        spending_budgets: Some(false),
        customer_admins_mfa: None,
    };
    let reqs = r.requirements(&declared);
    // Earned: alerts 20 + contact 10 = 30 of 20+20+10+20+10+10+20 = 110.
    assert_eq!(reqs.iter().filter(|q| q.met == Some(true)).count(), 2);
    let s = score(&reqs);
    assert!((s - 30.0 * 100.0 / 110.0).abs() < 1e-9, "{s}");
    // With no traffic, the observed MFA requirements are left out, not failed.
    let empty =
        Report::new(NOW, 7).requirements(&Declared { response_to_alerts: Some(true), ..Declared::default() });
    assert!((score(&empty) - 30.0 * 100.0 / 70.0).abs() < 1e-9);
}

#[test]
fn the_daily_series_has_every_day_of_the_window() {
    // A window ending at midnight: seven days, the next day not touched.
    let mut r = Report::new(NOW, 7);
    r.add(&event(NOW - 3 * DAY_MS, "api", "app_user", Some(true)));
    let days: Vec<(u64, DayCounts)> = r.days().collect();
    assert_eq!(days.len(), 7);
    assert_eq!(days.first().map(|d| day_to_date(d.0)), Some("2025-12-25".to_owned()));
    assert_eq!(days.last().map(|d| day_to_date(d.0)), Some("2025-12-31".to_owned()));
    assert_eq!(days.iter().filter(|(_, c)| *c == DayCounts::default()).count(), 6, "zeros included");
    assert_eq!(days[4].1.api_app_user, 1);
    // A window ending at noon touches eight UTC days; an empty window touches none.
    assert_eq!(Report::new(NOW + DAY_MS / 2, 7).days().count(), 8);
    assert_eq!(Report::new(NOW + 1, 1).days().count(), 2);
    assert_eq!(Report::new(0, 7).days().count(), 0);
}

#[test]
fn insights_use_the_singular_for_one() {
    assert_eq!(count(1, "user", "users"), "1 user");
    assert_eq!(count(0, "user", "users"), "0 users");
    assert_eq!(count(2, "user", "users"), "2 users");
    let mut r = Report::new(NOW, 7);
    r.add(&event(NOW - 10, "portal", "user", Some(false)));
    r.add(&Event { enforced: false, ..event(NOW - 10, "api", "app_user", Some(false)) });
    let insights: Vec<String> = r.requirements(&Declared::default()).into_iter().map(|q| q.insight).collect();
    assert_eq!(insights[0], "1 of 1 App+User API request without MFA");
    assert_eq!(insights[1], "1 of 1 portal operation without MFA (1 user)");
    assert_eq!(insights[2], "1 request without MFA forwarded by report-only routes");
    r.add(&Event { object_id: Some("oid-2"), ..event(NOW - 10, "portal", "user", Some(false)) });
    let portal = &r.requirements(&Declared::default())[1].insight;
    assert_eq!(portal, "2 of 2 portal operations without MFA (2 users)");
}

#[test]
fn rows_read_back_are_kept_as_counted_rows_are() {
    // What one report kept, read back into another in its order (the fleet report's way).
    let mut counted = Report::new(NOW, 7);
    for i in 0..12_000u64 {
        // Equal timestamps in pairs: the order given breaks the tie.
        counted.add(&event(NOW - 1_000_000 + i / 2 * 10, "api", "app_user", Some(i % 3 == 0)));
    }
    let mut read_back = Report::new(NOW, 7);
    let mut oldest_first = counted.recent_api_requests();
    oldest_first.reverse();
    // Rows beyond the cap, older than all kept, are dropped; the counts stay untouched.
    let older = ApiRow { ts_ms: NOW - 2_000_000, ..oldest_first[0].clone() };
    read_back.keep_row(older);
    for row in oldest_first {
        read_back.keep_row(row);
    }
    read_back.keep_row(ApiRow { ts_ms: NOW - 3_000_000, ..counted.recent_api_requests()[0].clone() });
    let (a, b) = (counted.recent_api_requests(), read_back.recent_api_requests());
    assert_eq!(b.len(), MAX_API_ROWS);
    let strip = |rows: &[ApiRow]| rows.iter().map(|r| (r.ts_ms, r.mfa)).collect::<Vec<_>>();
    assert_eq!(strip(&a), strip(&b));
    assert_eq!(read_back.totals, DayCounts::default());
}

#[test]
fn merging_pieces_in_order_is_the_one_pass_report() {
    // 30,000 records (more rows than kept, equal timestamps, a user seen without MFA in several
    // pieces with ties), cut into pieces of every size from 1 to 7,001 and merged in order.
    let events: Vec<Event<'static>> = (0..30_000u64)
        .map(|i| {
            let ts = NOW - 1_000_000 + (i * 7919) % 20_000 * 10;
            let (channel, principal, mfa) = match i % 5 {
                0 => ("portal", "user", Some(i % 3 == 0)),
                1 => ("api", "app_only", None),
                _ => ("api", "app_user", Some(i % 4 != 0)),
            };
            let upn: &'static str = ["a@c.test", "b@c.test", "c@c.test"][(i % 3) as usize];
            let app_id = Some(["app-a", "app-b"][(i % 2) as usize]);
            let object_id = Some(["o1", "o2"][(i / 5 % 2) as usize]);
            Event {
                upn: Some(upn),
                app_id,
                object_id,
                enforced: i % 11 != 0,
                ..event(ts, channel, principal, mfa)
            }
        })
        .collect();
    let mut whole = Report::new(NOW, 7);
    for e in &events {
        whole.add(e);
    }
    for piece in [1, 2, 999, 7_001, 30_000] {
        let mut merged = Report::new(NOW, 7);
        for chunk in events.chunks(piece) {
            let mut part = Report::new(NOW, 7);
            // As the parallel reader does: rows older than the merged report's floor are not kept.
            part.keep_rows_from(merged.row_floor());
            for e in chunk {
                part.add(e);
            }
            merged.merge(part);
        }
        assert_eq!(merged.totals, whole.totals, "{piece}");
        assert_eq!(merged.daily, whole.daily, "{piece}");
        assert_eq!(merged.apps, whole.apps, "{piece}");
        assert_eq!(merged.non_mfa_users, whole.non_mfa_users, "{piece}");
        assert_eq!(merged.recent_api_requests(), whole.recent_api_requests(), "{piece}");
        assert_eq!(merged.seq, whole.seq, "{piece}");
        assert!(merged.row_floor() > 0, "the floor was in use");
    }
}
