//! `mfagate report`: its arguments and what it prints (docs/report.md).

use super::CliError;
use crate::Config;
use crate::evidence::report;
use std::path::PathBuf;

/// The longest window `--days` accepts: ten years of UTC days.
pub const MAX_DAYS: u64 = 3650;

/// `mfagate report`'s arguments.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// Decision-log files or folders (rotated and gzip-compressed files, several instances: all
    /// merged).
    #[arg(long = "log", value_name = "FILE_OR_DIR", required = true, num_args = 1..)]
    logs: Vec<PathBuf>,
    /// End of the window, RFC 3339 (default: now).
    #[arg(long, value_name = "RFC3339", value_parser = parse_now)]
    now: Option<u64>,
    /// Window length in days of 24 hours (1 to 3650).
    #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u64).range(1..=MAX_DAYS))]
    days: u64,
    /// Output format (csv: the daily series and its total, docs/report.md).
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// Also write Partner Center's three CSV exports into this folder.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Threads parsing the logs (default: one per core). The result does not depend on it.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    threads: Option<u16>,
    /// A gateway config whose [report] section declares what mfagate cannot observe.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

/// The report's output formats.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Format {
    /// For a terminal.
    Text,
    /// The documented JSON keys.
    Json,
    /// The daily series and its total, one row each.
    Csv,
}

fn parse_now(t: &str) -> Result<u64, String> {
    report::parse_ts_ms(t).ok_or_else(|| "not an RFC 3339 time, such as 2026-01-01T00:00:00Z".to_owned())
}

/// Runs the report: warnings to standard error, the report to standard output.
pub fn run(args: ReportArgs) -> Result<(), CliError> {
    use crate::clock::Clock;
    let now_ms = args.now.unwrap_or_else(|| crate::clock::SystemClock.now_millis());
    let report_cfg = match &args.config {
        Some(path) => {
            Config::load(path).map_err(|source| CliError::Config { path: path.clone(), source })?.report
        }
        None => Default::default(),
    };
    let mut options = report::Options::default();
    if let Some(n) = args.threads {
        options.threads = usize::from(n);
    }
    let (r, warnings) = report::build_with(&args.logs, now_ms, args.days, options)
        .map_err(|e| CliError::Failed(e.to_string()))?;
    for w in &warnings.first {
        super::warn(&format!("warning: {w}\n"));
    }
    let more = warnings.total.saturating_sub(warnings.first.len() as u64);
    if more > 0 {
        super::warn(&format!("warning: {more} more warnings\n"));
    }
    if let Some(dir) = &args.out {
        let names = |id: &str| report_cfg.application_name(id);
        report::write_exports(&r, dir, &names).map_err(|e| CliError::Failed(e.to_string()))?;
    }
    let text = match args.format {
        Format::Text => report::to_text(&r, &report_cfg.declared),
        Format::Json => format!("{:#}\n", report::to_json(&r, &report_cfg.declared)),
        Format::Csv => report::to_csv(&r),
    };
    super::print(&text).map_err(CliError::Output)
}
