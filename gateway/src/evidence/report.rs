//! `mfagate report`: the Security requirements status report from decision logs, streamed (one
//! pass, memory bounded by users, applications and days), with Partner Center's CSV exports.

mod line;
mod read;
use mfagate_policy::report::{DayCounts, Declared, Report, Requirement, count, day_to_date, percent, score};
pub use read::{LogFile, Options};
use serde_json::{Value, json};
use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};

/// A report that could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A log file or folder could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// An export could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Warnings kept with their text; the rest are only counted.
pub const KEPT_WARNINGS: usize = 20;

/// What was skipped while reading: the first [`KEPT_WARNINGS`] warnings and how many there were
/// in all. Millions of bad lines (a small gzip file expands to them) cost no more memory than 20.
#[derive(Debug, Default)]
pub struct Warnings {
    /// The first warnings, in order.
    pub first: Vec<String>,
    /// How many there were.
    pub total: u64,
}

impl Warnings {
    fn push(&mut self, warning: String) {
        self.total += 1;
        if self.first.len() < KEPT_WARNINGS {
            self.first.push(warning);
        }
    }

    /// No warning at all.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }
}

/// The longest decision record accepted (records are a few hundred bytes).
const MAX_LINE: usize = 1024 * 1024;

/// Milliseconds since the epoch from RFC 3339; the log's own `YYYY-MM-DDTHH:MM:SS.mmmZ` is parsed
/// without allocation, anything else through the `time` crate.
pub fn parse_ts_ms(ts: &str) -> Option<u64> {
    let b = ts.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<u64> {
        b.get(r)?.iter().try_fold(0u64, |acc, c| c.is_ascii_digit().then(|| acc * 10 + u64::from(c - b'0')))
    };
    if b.len() == 24 && b[4] == b'-' && b[10] == b'T' && b[19] == b'.' && b[23] == b'Z' {
        let (y, m, d) = (num(0..4)? as i64, num(5..7)? as i64, num(8..10)? as i64);
        let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
        let month_days = match m {
            2 => 28 + i64::from(leap),
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        };
        if !(1..=12).contains(&m)
            || !(1..=month_days).contains(&d)
            || num(11..13)? > 23
            || num(14..16)? > 59
            || num(17..19)? > 59
        {
            return None;
        }
        // days_from_civil (Howard Hinnant).
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
        let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
        let secs =
            u64::try_from(days).ok()? * 86_400 + num(11..13)? * 3600 + num(14..16)? * 60 + num(17..19)?;
        return Some(secs * 1000 + num(20..23)?);
    }
    let t = time::OffsetDateTime::parse(ts, &time::format_description::well_known::Rfc3339).ok()?;
    u64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

/// Every log file under `paths` (files as given; folders: their files, sorted). Anything else
/// named (a device, a FIFO, a socket) is not read, and said so: a FIFO with no writer would
/// block forever.
fn files(paths: &[PathBuf], warnings: &mut Warnings) -> Result<Vec<PathBuf>, ReportError> {
    let mut out = Vec::new();
    for p in paths {
        let meta = std::fs::metadata(p).map_err(|source| ReportError::Read { path: p.clone(), source })?;
        if meta.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|source| ReportError::Read { path: p.clone(), source })?
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|f| f.is_file())
                .collect();
            found.sort();
            out.extend(found);
        } else if meta.is_file() {
            out.push(p.clone());
        } else {
            warnings
                .push(format!("{}: skipped: not a file or folder (a device, FIFO or socket)", p.display()));
        }
    }
    Ok(out)
}

/// Builds the report over the `days` before `now_ms` from every record in `paths`. Returns the
/// report and warnings (torn or unreadable lines are skipped, never fatal).
pub fn build(paths: &[PathBuf], now_ms: u64, days: u64) -> Result<(Report, Warnings), ReportError> {
    build_with(paths, now_ms, days, Options::default())
}

/// [`build`] with `options` (threads, block size), which change only the time it takes.
pub fn build_with(
    paths: &[PathBuf],
    now_ms: u64,
    days: u64,
    options: Options,
) -> Result<(Report, Warnings), ReportError> {
    let mut report = Report::new(now_ms, days);
    let warnings = fill(&mut report, paths, options)?;
    Ok((report, warnings))
}

/// Adds every record in `paths` to `report`; returns warnings for what was skipped: a file that
/// is not a decision log (one warning for the file), and torn, over-long or unreadable lines of
/// one that is. Only a file that cannot be opened or read is an error. The result does not
/// depend on `options` (threads, block size): only the time taken does.
pub fn fill(report: &mut Report, paths: &[PathBuf], options: Options) -> Result<Warnings, ReportError> {
    let mut warnings = Warnings::default();
    let files: Vec<LogFile> =
        files(paths, &mut warnings)?.into_iter().map(|path| LogFile { path, snapshot: None }).collect();
    read::fill(report, &files, &mut warnings, options)?;
    Ok(warnings)
}

/// [`fill`] from files as they were when `files` was taken (the live view's rebuild).
pub fn fill_files(report: &mut Report, files: &[LogFile], options: Options) -> Result<Warnings, ReportError> {
    let mut warnings = Warnings::default();
    read::fill(report, files, &mut warnings, options)?;
    Ok(warnings)
}

/// Why a file is not taken as a decision log, judged on its first line that is not blank.
fn not_a_log(file: &Path, why: &str) -> String {
    format!("{}: skipped: not a decision log ({why})", file.display())
}

fn status(q: &Requirement) -> &'static str {
    match (q.met, q.observed) {
        (Some(true), _) => "met",
        (Some(false), _) => "not met",
        (None, true) => "no data",
        (None, false) => "not declared",
    }
}

fn pct(v: Option<f64>) -> Value {
    v.map_or(Value::Null, |p| json!((p * 100.0).round() / 100.0))
}

fn rfc3339(ms: u64) -> String {
    crate::clock::rfc3339_millis(ms)
}

/// The report as JSON (the keys are a contract: docs/report.md).
pub fn to_json(r: &Report, declared: &Declared) -> Value {
    let requirements = r.requirements(declared);
    let daily: Vec<Value> = r
        .days()
        .map(|(day, c)| {
            json!({
                "date": day_to_date(day),
                "portal_operations": c.portal_operations, "portal_mfa_operations": c.portal_mfa,
                "portal_percent": pct(percent(c.portal_mfa, c.portal_operations)),
                "api_app_user_requests": c.api_app_user, "api_mfa_requests": c.api_mfa,
                "api_percent": pct(percent(c.api_mfa, c.api_app_user)),
                "api_app_only_requests": c.api_app_only,
            })
        })
        .collect();
    let reqs: Vec<Value> = requirements
        .iter()
        .map(|q| {
            json!({
                "requirement": q.name, "max_points": q.max_points,
                "points": points(q),
                "status": status(q),
                "source": if q.observed { "observed" } else { "declared" },
                "insight": q.insight,
            })
        })
        .collect();
    json!({
        "window": {"start": rfc3339(r.start_ms), "end": rfc3339(r.end_ms)},
        "portal": {"operations": r.totals.portal_operations, "mfa_operations": r.totals.portal_mfa, "percent": pct(r.portal_percent()), "users_without_mfa": r.non_mfa_users.len()},
        "api": {"app_user_requests": r.totals.api_app_user, "mfa_requests": r.totals.api_mfa, "percent": pct(r.api_percent()), "app_only_requests": r.totals.api_app_only},
        "daily": daily,
        "score": (score(&requirements) * 10.0).round() / 10.0,
        "requirements": reqs,
    })
}

fn points(q: &Requirement) -> u32 {
    if q.met == Some(true) { q.max_points } else { 0 }
}

/// The widest status, so every requirement row lines up.
const STATUS_WIDTH: usize = "not declared".len();

/// The report as text for a terminal.
pub fn to_text(r: &Report, declared: &Declared) -> String {
    let show = |p: Option<f64>| p.map_or_else(|| "n/a".to_owned(), |p| format!("{p:.1}%"));
    let t = &r.totals;
    let requirements = r.requirements(declared);
    let mut out = format!(
        "Security requirements status, {} to {}\n\n\
         Through portal: {:>7}  ({} of {} by MFA-verified users)\n\
         Through API:    {:>7}  ({} of {} with MFA; {} left out)\n\n\
         Security score: {:.1}\n",
        rfc3339(r.start_ms),
        rfc3339(r.end_ms),
        show(r.portal_percent()),
        t.portal_mfa,
        count(t.portal_operations, "operation", "operations"),
        show(r.api_percent()),
        t.api_mfa,
        count(t.api_app_user, "App+User request", "App+User requests"),
        count(t.api_app_only, "App-only request", "App-only requests"),
        score(&requirements)
    );
    for q in &requirements {
        let _ = writeln!(
            out,
            "  {:<STATUS_WIDTH$} {:>2}/{:<2} {} ({})",
            status(q),
            points(q),
            q.max_points,
            q.name,
            q.insight
        );
    }
    let _ = writeln!(out, "\nDaily (UTC)   portal MFA/all       %    API MFA/all       %  App-only");
    for (day, c) in r.days() {
        let _ = writeln!(
            out,
            "  {}  {:>14}  {:>6}  {:>13}  {:>6}  {:>8}",
            day_to_date(day),
            format!("{}/{}", c.portal_mfa, c.portal_operations),
            show(percent(c.portal_mfa, c.portal_operations)),
            format!("{}/{}", c.api_mfa, c.api_app_user),
            show(percent(c.api_mfa, c.api_app_user)),
            c.api_app_only
        );
    }
    out
}

/// The columns of [`to_csv`], the JSON daily keys (docs/report.md).
pub const CSV_COLUMNS: [&str; 8] = [
    "date",
    "portal_operations",
    "portal_mfa_operations",
    "portal_percent",
    "api_app_user_requests",
    "api_mfa_requests",
    "api_percent",
    "api_app_only_requests",
];

/// The summary as CSV: one row per UTC day of the window (zeros included), then a `total` row
/// for the whole window. An empty denominator is an empty percent cell.
pub fn to_csv(r: &Report) -> String {
    let cell = |p: Option<f64>| p.map_or_else(String::new, |p| format!("{p:.2}"));
    let row = |date: &str, c: &DayCounts| {
        csv(&[
            date,
            &c.portal_operations.to_string(),
            &c.portal_mfa.to_string(),
            &cell(percent(c.portal_mfa, c.portal_operations)),
            &c.api_app_user.to_string(),
            &c.api_mfa.to_string(),
            &cell(percent(c.api_mfa, c.api_app_user)),
            &c.api_app_only.to_string(),
        ])
    };
    let mut out = csv(&CSV_COLUMNS);
    for (day, c) in r.days() {
        out.push_str(&row(&day_to_date(day), &c));
    }
    out.push_str(&row("total", &r.totals));
    out
}

fn csv(fields: &[&str]) -> String {
    let cell = |f: &&str| {
        // A cell a spreadsheet would run as a formula (a client's MS-RequestId can be one) is
        // kept as text, behind a quote mark (OWASP's CSV injection rule).
        let f =
            if f.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{f}") } else { (*f).to_owned() };
        if f.contains([',', '"', '\n', '\r']) { format!("\"{}\"", f.replace('"', "\"\"")) } else { f }
    };
    let cells: Vec<String> = fields.iter().map(cell).collect();
    cells.join(",") + "\r\n"
}

/// The three exports' file names, in the order [`exports`] returns them.
pub const EXPORT_NAMES: [&str; 3] =
    ["portal_requests_without_mfa.csv", "api_requests_summary.csv", "all_api_requests.csv"];

/// The three exports as CSV text, with Partner Center's column names.
pub fn exports(r: &Report, app_names: &dyn Fn(&str) -> String) -> [String; 3] {
    let mut users: Vec<_> = r.non_mfa_users.iter().collect();
    users.sort_by_key(|u| std::cmp::Reverse(u.1.last_ms));
    let mut portal = csv(&["ObjectId", "TenantId", "Upn", "LastNonMfaCompliantLoginDateTime"]);
    for ((oid, tid), u) in users {
        portal.push_str(&csv(&[oid, tid, &u.upn, &rfc3339(u.last_ms)]));
    }
    let mut summary = csv(&[
        "LoginDate",
        "MfaCompliantRequestCount",
        "TotalRequestCount",
        "ApplicationId",
        "ApplicationName",
    ]);
    for ((day, app), (mfa, total)) in &r.apps {
        summary.push_str(&csv(&[
            &day_to_date(*day),
            &mfa.to_string(),
            &total.to_string(),
            app,
            &app_names(app),
        ]));
    }
    let mut all = csv(&[
        "RequestId",
        "CorrelationId",
        "OperationName",
        "RequestDateTime",
        "IpAddress",
        "ObjectId",
        "TenantId",
        "Upn",
        "ApplicationId",
        "MfaCompliant",
    ]);
    for row in r.recent_api_requests() {
        let mfa = if row.mfa { "true" } else { "false" };
        all.push_str(&csv(&[
            &row.request_id,
            &row.correlation_id,
            &row.operation,
            &rfc3339(row.ts_ms),
            &row.ip,
            &row.object_id,
            &row.tenant_id,
            &row.upn,
            &row.app_id,
            mfa,
        ]));
    }
    [portal, summary, all]
}

/// Writes the three exports into `dir`.
pub fn write_exports(r: &Report, dir: &Path, app_names: &dyn Fn(&str) -> String) -> Result<(), ReportError> {
    for (name, body) in EXPORT_NAMES.iter().zip(exports(r, app_names)) {
        let path = dir.join(name);
        std::fs::create_dir_all(dir)
            .and_then(|()| std::fs::File::create(&path))
            .and_then(|mut f| f.write_all(body.as_bytes()))
            .map_err(|source| ReportError::Write { path, source })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    const GOOD: &str =
        r#"{"ts":"2026-01-01T00:00:00.000Z","channel":"api","principal":"app_user","mfa":true}"#;
    const NOW: u64 = 1_767_225_600_001;

    fn gzip(members: &[&str]) -> Vec<u8> {
        let mut out = Vec::new();
        for m in members {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            gz.write_all(m.as_bytes()).unwrap();
            out.extend(gz.finish().unwrap());
        }
        out
    }

    #[test]
    fn over_long_lines_and_devices_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("d.jsonl");
        std::fs::write(&f, format!("{GOOD}\n{}\n{GOOD}\n", "x".repeat(3 * 1024 * 1024))).unwrap();
        let (r, warnings) = super::build(&[f, "/dev/full".into()], NOW, 7).unwrap();
        assert_eq!(r.totals.api_app_user, 2);
        assert_eq!(warnings.first.len(), 2, "{warnings:?}");
        assert!(warnings.first[0].contains("/dev/full: skipped: not a file or folder"), "{warnings:?}");
        assert!(warnings.first[1].contains("d.jsonl:2: over-long line"), "{warnings:?}");
    }

    #[test]
    fn gzip_files_are_read_as_they_stream_whatever_their_name() {
        let dir = tempfile::tempdir().unwrap();
        // logrotate's name, two gzip members (`cat a.gz b.gz`), and one without the .gz name.
        std::fs::write(dir.path().join("d.jsonl.2.gz"), gzip(&[&format!("{GOOD}\n"), &format!("{GOOD}\n")]))
            .unwrap();
        std::fs::write(dir.path().join("d.jsonl.3"), gzip(&[&format!("{GOOD}\n")])).unwrap();
        let (r, warnings) = super::build(&[dir.path().to_owned()], NOW, 7).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(r.totals.api_app_user, 3);
        // Large enough to cross the decoder's buffers.
        let many = format!("{GOOD}\n").repeat(20_000);
        std::fs::write(dir.path().join("d.jsonl.4.gz"), gzip(&[&many])).unwrap();
        let (r, _) = super::build(&[dir.path().to_owned()], NOW, 7).unwrap();
        assert_eq!(r.totals.api_app_user, 20_003);
    }

    #[test]
    fn a_damaged_gzip_file_keeps_what_it_read_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = gzip(&[&format!("{GOOD}\n").repeat(1000)]);
        bytes.truncate(bytes.len() - 8); // the CRC and length trailer
        std::fs::write(dir.path().join("cut.gz"), &bytes).unwrap();
        let (_, warnings) = super::build(&[dir.path().to_owned()], NOW, 7).unwrap();
        assert_eq!(warnings.first.len(), 1, "{warnings:?}");
        assert!(
            warnings.first[0].contains("cut.gz") && warnings.first[0].contains("damaged gzip"),
            "{warnings:?}"
        );
    }

    #[test]
    fn files_that_are_not_logs_are_skipped_with_one_warning_each() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, bytes: &[u8]| std::fs::write(dir.path().join(name), bytes).unwrap();
        write("a-good.jsonl", format!("{GOOD}\n").as_bytes());
        let binary: Vec<u8> = (0..=255u8).rev().cycle().take(4096).collect();
        write("binary.bin", &binary);
        write("latin1.log", &b"caf\xe9\ncaf\xe9\ncaf\xe9\n".repeat(100));
        write("notes.txt", "not json\nstill not json\n".repeat(100).as_bytes());
        write("other.jsonl", "{\"level\":\"info\"}\n".repeat(100).as_bytes());
        write("zstd.zst", b"\x28\xb5\x2f\xfd\x00\x00");
        write("no-breaks.dat", "y".repeat(2 * 1024 * 1024).as_bytes());
        write("notes.txt.gz", &gzip(&[&"plain text\n".repeat(50)]));
        write("empty.log", b"");
        let (r, warnings) = super::build(&[dir.path().to_owned()], NOW, 7).unwrap();
        assert_eq!(r.totals.api_app_user, 1);
        let expect = [
            ("binary.bin", "not UTF-8"),
            ("latin1.log", "not UTF-8"),
            ("no-breaks.dat", "no line break"),
            ("notes.txt", "not a decision record"),
            ("notes.txt.gz", "not a decision record"),
            ("other.jsonl", "not a decision record"),
            ("zstd.zst", "compressed with zstd"),
        ];
        assert_eq!(warnings.first.len(), expect.len(), "{warnings:#?}");
        for ((name, why), w) in expect.iter().zip(&warnings.first) {
            assert!(w.contains(&format!("{name}: skipped")) && w.contains(why), "{name}: {w}");
        }
    }

    #[test]
    fn a_log_with_a_bad_line_keeps_its_other_lines() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("d.jsonl");
        std::fs::write(
            &f,
            [
                format!("{GOOD}\n").as_bytes(),
                b"\xff\xfe\n",
                b"{}\n",
                format!("{GOOD}\n").as_bytes(),
                b"{\"ts\":\"2026",
            ]
            .concat(),
        )
        .unwrap();
        let (r, warnings) = super::build(std::slice::from_ref(&f), NOW, 7).unwrap();
        assert_eq!(r.totals.api_app_user, 2);
        assert_eq!(warnings.first.len(), 3, "{warnings:?}");
        assert!(warnings.first[0].ends_with("d.jsonl:2: line not UTF-8, skipped"), "{warnings:?}");
        assert!(warnings.first[1].ends_with("d.jsonl:3: unreadable line skipped"), "{warnings:?}");
        assert!(warnings.first[2].ends_with("d.jsonl:5: torn last line skipped"), "{warnings:?}");
        // A file holding only a record being written is a log with a torn line.
        std::fs::write(&f, b"{\"ts\":\"2026-01-01T00:0").unwrap();
        let (_, warnings) = super::build(&[f], NOW, 7).unwrap();
        assert!(warnings.first[0].ends_with("d.jsonl:1: torn last line skipped"), "{warnings:?}");
    }

    #[test]
    fn the_text_rows_line_up_and_the_csv_has_every_day() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("d.jsonl");
        let portal = r#"{"ts":"2025-12-29T10:00:00.000Z","channel":"portal","route":"r","principal":"user","mfa":false,"object_id":"o","tenant_id":"t"}"#;
        std::fs::write(&f, format!("{portal}\n{}\n", GOOD.replace("2026-01-01T00", "2025-12-31T10")))
            .unwrap();
        let (r, _) = super::build(&[f], NOW - 1, 7).unwrap();
        let declared =
            mfagate_policy::report::Declared { security_contact: Some(true), ..Default::default() };
        let text = super::to_text(&r, &declared);
        // Every requirement row: its points start at the same column, whatever its status.
        let rows: Vec<&str> = text.lines().filter(|l| l.contains("/20 ") || l.contains("/10 ")).collect();
        assert_eq!(rows.len(), 7, "{text}");
        let column = |l: &str| l.find('/').map(|i| i - 2);
        assert!(rows.iter().all(|l| column(l) == column(rows[0])), "{text}");
        assert!(rows.iter().any(|l| l.trim_start().starts_with("not declared")), "{text}");
        assert!(text.contains("(1 of 1 portal operation without MFA (1 user))"), "{text}");
        assert!(text.contains("(0 of 1 operation by MFA-verified users)"), "{text}");
        // The daily table: seven days, zeros included, its columns under its header.
        let daily: Vec<&str> = text.lines().skip_while(|l| !l.starts_with("Daily")).collect();
        assert_eq!(daily.len(), 8, "{text}");
        assert!(daily.iter().all(|l| l.len() == daily[0].len()), "{text}");
        assert!(daily[1].starts_with("  2025-12-25") && daily[7].starts_with("  2025-12-31"), "{text}");
        let csv = super::to_csv(&r);
        let lines: Vec<&str> = csv.split("\r\n").collect();
        assert_eq!(lines[0], super::CSV_COLUMNS.join(","));
        assert_eq!(lines[1], "2025-12-25,0,0,,0,0,,0");
        assert_eq!(lines[5], "2025-12-29,1,0,0.00,0,0,,0");
        assert_eq!(lines[7], "2025-12-31,0,0,,1,1,100.00,0");
        assert_eq!(lines[8], "total,1,0,0.00,1,1,100.00,0");
        assert_eq!(lines[9], "", "ends with a line break");
        assert_eq!(lines.len(), 10);
    }

    #[test]
    fn timestamps_parse_fast_and_slow() {
        assert_eq!(super::parse_ts_ms("2026-01-01T00:00:00.123Z"), Some(1_767_225_600_123));
        assert_eq!(super::parse_ts_ms("2026-01-01T01:00:00+01:00"), Some(1_767_225_600_000));
        assert_eq!(super::parse_ts_ms("1970-01-01T00:00:00.000Z"), Some(0));
        assert_eq!(super::parse_ts_ms("garbage"), None);
        for bad in [
            "2026-13-01T00:00:00.000Z",
            "2026-02-29T00:00:00.000Z",
            "2026-04-31T00:00:00.000Z",
            "2026-01-01T24:00:00.000Z",
            "2026-01-01T00:60:00.000Z",
            "2026-00-10T00:00:00.000Z",
        ] {
            assert_eq!(super::parse_ts_ms(bad), None, "{bad}");
        }
        assert_eq!(super::parse_ts_ms("2024-02-29T00:00:00.000Z"), Some(1_709_164_800_000));
        for ms in [0u64, 951_782_400_000, 1_767_225_600_999, 4_102_444_800_000] {
            assert_eq!(super::parse_ts_ms(&crate::clock::rfc3339_millis(ms)), Some(ms));
        }
    }
}
