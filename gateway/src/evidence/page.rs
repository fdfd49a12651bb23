//! The report as a web page on the admin port: the two percentages, the score and its
//! requirements, the daily series as inline SVG, the per-application table, the users without
//! MFA and the CSV downloads. Self-contained: no scripts, fonts or CDNs.

use crate::markup::escape;
use mfagate_policy::report::{Declared, Report, day_to_date, percent, score};
use std::fmt::Write;

fn show(p: Option<f64>) -> String {
    p.map_or_else(|| "n/a".to_owned(), |p| format!("{p:.1}%"))
}

/// A line chart of daily percentages (portal and API), 0–100 %.
fn chart(r: &Report) -> String {
    // Every day of the window, with or without traffic.
    let days: Vec<(u64, mfagate_policy::report::DayCounts)> = r.days().take(31).collect();
    let (w, h, left, bottom) = (640.0, 220.0, 40.0, 30.0);
    let step = if days.len() > 1 { (w - left - 20.0) / (days.len() - 1) as f64 } else { 0.0 };
    let y = |p: f64| (h - bottom) - p / 100.0 * (h - bottom - 10.0);
    let mut svg = format!(
        r##"<svg role="img" aria-label="Daily share of requests with MFA" viewBox="0 0 {w} {h}" width="{w}" height="{h}" xmlns="http://www.w3.org/2000/svg"><rect width="{w}" height="{h}" fill="#fff"/>"##
    );
    for pct in [0.0, 50.0, 100.0] {
        let _ = write!(
            svg,
            r##"<line x1="{left}" x2="{}" y1="{y0}" y2="{y0}" stroke="#ddd"/><text x="4" y="{}" font-size="11" fill="#555">{pct:.0}%</text>"##,
            w - 10.0,
            y(pct) + 4.0,
            y0 = y(pct)
        );
    }
    for (series, color, pick) in [
        (
            "portal",
            "#0b6bcb",
            (|c: &mfagate_policy::report::DayCounts| percent(c.portal_mfa, c.portal_operations))
                as fn(&_) -> _,
        ),
        ("API", "#c2410c", |c| percent(c.api_mfa, c.api_app_user)),
    ] {
        let points: Vec<String> = days
            .iter()
            .enumerate()
            .filter_map(|(i, (_, c))| pick(c).map(|p| format!("{:.1},{:.1}", left + i as f64 * step, y(p))))
            .collect();
        if !points.is_empty() {
            let _ = write!(
                svg,
                r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"><title>{series}</title></polyline>"#,
                points.join(" ")
            );
            for p in &points {
                let (cx, cy) = p.split_once(',').unwrap_or(("0", "0"));
                let _ = write!(svg, r#"<circle cx="{cx}" cy="{cy}" r="3" fill="{color}"/>"#);
            }
        }
    }
    for (i, (day, _)) in days.iter().enumerate() {
        let _ = write!(
            svg,
            r##"<text x="{:.1}" y="{}" font-size="10" text-anchor="middle" fill="#555">{}</text>"##,
            left + i as f64 * step,
            h - 10.0,
            &day_to_date(*day)[5..]
        );
    }
    let _ = write!(
        svg,
        r##"<text x="{}" y="14" font-size="11" fill="#0b6bcb">● portal</text><text x="{}" y="14" font-size="11" fill="#c2410c">● API</text></svg>"##,
        w - 150.0,
        w - 80.0
    );
    svg
}

/// The page for the report `r` (the last seven UTC days).
pub fn render(r: &Report, declared: &Declared, names: &dyn Fn(&str) -> String) -> String {
    render_with(r, declared, names, None)
}

/// The page, saying whose decisions it covers (`scope`: the fleet's, or this instance's and why).
pub fn render_with(
    r: &Report,
    declared: &Declared,
    names: &dyn Fn(&str) -> String,
    scope: Option<&str>,
) -> String {
    let t = &r.totals;
    let requirements = r.requirements(declared);
    let mut html = String::from(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>mfagate: Security requirements status</title><style>
body{font-family:system-ui,sans-serif;margin:2rem;color:#111;max-width:1100px}h1{font-size:1.5rem}
.cards{display:flex;gap:1rem;flex-wrap:wrap}.card{border:1px solid #ddd;border-radius:8px;padding:1rem 1.5rem;min-width:200px}
.big{font-size:2.4rem;font-weight:600}.muted{color:#555;font-size:.9rem}table{border-collapse:collapse;margin:.5rem 0 1.5rem}
td,th{border-bottom:1px solid #eee;padding:.35rem .75rem;text-align:left;font-size:.9rem}.met{color:#15803d}.not{color:#b91c1c}
</style></head><body><h1>Security requirements status</h1>"#,
    );
    if let Some(scope) = scope {
        let _ = write!(html, r#"<p class="muted" id="scope">{}</p>"#, escape(scope));
    }
    let _ = write!(
        html,
        r#"<p class="muted">{} to {} (the last seven UTC days, live)</p><div class="cards">
<div class="card"><div class="muted">Through portal</div><div class="big" id="portal-percent">{}</div><div class="muted">{} of {} operations by MFA-verified users</div></div>
<div class="card"><div class="muted">Through API or SDK</div><div class="big" id="api-percent">{}</div><div class="muted">{} of {} App+User requests with MFA; {} App-only left out</div></div>
<div class="card"><div class="muted">Security score</div><div class="big" id="score">{:.1}</div><div class="muted">of 100</div></div></div>"#,
        crate::clock::rfc3339_millis(r.start_ms),
        crate::clock::rfc3339_millis(r.end_ms),
        show(percent(t.portal_mfa, t.portal_operations)),
        t.portal_mfa,
        t.portal_operations,
        show(percent(t.api_mfa, t.api_app_user)),
        t.api_mfa,
        t.api_app_user,
        t.api_app_only,
        score(&requirements)
    );
    html.push_str("<h2>Requirements</h2><table><tr><th>Requirement</th><th>Status</th><th>Score</th><th>Insight</th></tr>");
    for q in &requirements {
        let (class, status) = match (q.met, q.observed) {
            (Some(true), _) => ("met", "Completed"),
            (Some(false), _) => ("not", "Not completed"),
            (None, true) => ("muted", "No data"),
            (None, false) => ("not", "Not declared"),
        };
        let points = if q.met == Some(true) { q.max_points } else { 0 };
        let _ = write!(
            html,
            r#"<tr><td>{}</td><td class="{class}">{status}</td><td>{points}/{}</td><td>{}</td></tr>"#,
            escape(q.name),
            q.max_points,
            escape(&q.insight)
        );
    }
    html.push_str("</table><h2>Daily share with MFA</h2>");
    html.push_str(&chart(r));
    html.push_str("<h2>API requests by application</h2><table><tr><th>Date</th><th>Application</th><th>With MFA</th><th>Total</th></tr>");
    for ((day, app), (mfa, total)) in &r.apps {
        let name = names(app);
        let label = if name.is_empty() {
            escape(app)
        } else {
            format!("{} <span class=\"muted\">{}</span>", escape(&name), escape(app))
        };
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{label}</td><td>{mfa}</td><td>{total}</td></tr>",
            day_to_date(*day)
        );
    }
    html.push_str("</table><h2>Portal users without MFA</h2><table><tr><th>UPN</th><th>Object id</th><th>Tenant</th><th>Last operation without MFA</th></tr>");
    let mut users: Vec<_> = r.non_mfa_users.iter().collect();
    users.sort_by_key(|u| std::cmp::Reverse(u.1.last_ms));
    for ((oid, tid), u) in users.iter().take(200) {
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&u.upn),
            escape(oid),
            escape(tid),
            crate::clock::rfc3339_millis(u.last_ms)
        );
    }
    html.push_str("</table><h2>Downloads</h2><ul>");
    for name in crate::evidence::report::EXPORT_NAMES {
        let _ = write!(html, r#"<li><a href="/exports/{name}">{name}</a></li>"#);
    }
    html.push_str("</ul></body></html>");
    html
}
