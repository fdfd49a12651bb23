//! Reading decision logs on several threads with the one-pass reader's result, warnings
//! included: one thread reads the files in order into blocks of whole lines (decompressing gzip
//! as it streams), the others parse blocks into partial reports, and this thread merges them in
//! the blocks' order ([`Report::merge`]). Memory: a bounded number of blocks in flight.

use super::{KEPT_WARNINGS, MAX_LINE, ReportError, Warnings, not_a_log, parse_ts_ms};
use crate::evidence::log_files::{open_for_reading, open_reader};
use mfagate_policy::report::{Event, Report};
use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, mpsc};

/// How the logs are read.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Threads parsing (1: everything on the calling thread).
    pub threads: usize,
    /// Bytes per block of lines (a parameter so tests can cut lines anywhere).
    pub block: usize,
}

impl Default for Options {
    fn default() -> Options {
        Options { threads: std::thread::available_parallelism().map_or(1, |n| n.get()), block: 1 << 20 }
    }
}

/// A log file to read: by name, or its first bytes through a handle opened earlier (the live
/// view's rebuild: what was written before the writer took over, whatever is renamed since).
pub struct LogFile {
    /// Its name, for warnings (and to open it when there is no handle).
    pub path: PathBuf,
    /// A handle and how many of its bytes to read.
    pub snapshot: Option<(std::fs::File, u64)>,
}

/// One piece of a file, in its order.
enum Piece {
    /// Whole lines; the last one lacks its line break only at the end of the file.
    Lines(Vec<u8>),
    /// A line of [`MAX_LINE`] bytes or more, skipped unread.
    OverLong,
    /// Damaged gzip data: the rest of the file is skipped.
    Damaged(String),
    /// The file could not be read (the report fails).
    Failed(std::io::Error),
    /// Compressed in a format mfagate does not read.
    Unsupported(&'static str),
}

/// A line that was not counted, by its number within its block.
#[derive(Clone, Copy)]
enum Issue {
    OverLong,
    NotUtf8,
    /// Not a record; `torn`: the file's last line, without its line break; `being_written`:
    /// also the start of a record.
    Unreadable {
        torn: bool,
        being_written: bool,
    },
}

/// A block parsed.
struct Parsed {
    report: Report,
    lines: u64,
    /// The number of its first record.
    first_record: Option<u64>,
    /// The first issues, numbered, and how many there were.
    issues: Vec<(u64, Issue)>,
    issues_total: u64,
}

enum Outcome {
    Parsed(Box<Parsed>),
    Other(Piece),
}

/// Adds every record of `files` (in order) to `report`, as one pass over them would.
pub fn fill(
    report: &mut Report,
    files: &[LogFile],
    warnings: &mut Warnings,
    options: Options,
) -> Result<(), ReportError> {
    let mut template = Report::default();
    (template.start_ms, template.end_ms) = (report.start_ms, report.end_ms);
    let mut merger =
        Merger { report, files, warnings, file: usize::MAX, is_log: false, stopped: false, lines: 0 };
    let stopped = AtomicUsize::new(usize::MAX);
    let floor = AtomicU64::new(0);
    if options.threads <= 1 {
        return read_all(files, options.block, &stopped, &mut |file, piece| {
            let outcome = parse(piece, &template, merger.report.row_floor());
            merger.apply(file, outcome, &stopped)
        });
    }
    // Blocks read but not yet merged: bounds memory whatever a slow block holds up.
    let window = 2 * options.threads + 2;
    let (jobs_tx, jobs_rx) = mpsc::sync_channel::<(usize, usize, Piece)>(options.threads);
    let jobs_rx = Mutex::new(jobs_rx);
    let (done_tx, done_rx) = mpsc::channel::<(usize, usize, Outcome)>();
    let (tokens_tx, tokens_rx) = mpsc::sync_channel::<()>(window);
    for _ in 0..window {
        let _ = tokens_tx.send(());
    }
    let (stopped, floor, jobs_rx, template) = (&stopped, &floor, &jobs_rx, &template);
    std::thread::scope(move |s| {
        s.spawn(move || {
            let mut seq = 0;
            let _ = read_all(files, options.block, stopped, &mut |file, piece| {
                if tokens_rx.recv().is_err() || jobs_tx.send((seq, file, piece)).is_err() {
                    return Ok(false);
                }
                seq += 1;
                Ok(true)
            });
        });
        for _ in 0..options.threads {
            let done_tx = done_tx.clone();
            s.spawn(move || {
                // Until the reader ends: should the merger stop early, the blocks still sent are
                // taken and dropped, so the reader never waits for a taker.
                loop {
                    let job = jobs_rx.lock().unwrap_or_else(std::sync::PoisonError::into_inner).recv();
                    let Ok((seq, file, piece)) = job else { return };
                    let outcome = parse(piece, template, floor.load(Ordering::Relaxed));
                    let _ = done_tx.send((seq, file, outcome));
                }
            });
        }
        drop(done_tx);
        // Merged in order: a block done early waits for those before it.
        let mut waiting = BTreeMap::new();
        let mut next = 0;
        for (seq, file, outcome) in done_rx {
            waiting.insert(seq, (file, outcome));
            while let Some((file, outcome)) = waiting.remove(&next) {
                next += 1;
                merger.apply(file, outcome, stopped)?;
                floor.store(merger.report.row_floor(), Ordering::Relaxed);
                let _ = tokens_tx.send(());
            }
        }
        Ok(())
    })
}

/// Reads `files` in order into pieces for `each`, which returns whether to go on. A file the
/// merger found not to be a log (`stopped`) is not read further.
fn read_all(
    files: &[LogFile],
    block: usize,
    stopped: &AtomicUsize,
    each: &mut dyn FnMut(usize, Piece) -> Result<bool, ReportError>,
) -> Result<(), ReportError> {
    for (i, file) in files.iter().enumerate() {
        let opened = match &file.snapshot {
            Some((handle, len)) => open_reader(std::io::Read::take(handle, *len)),
            None => open_for_reading(&file.path),
        };
        let opened = match opened {
            Ok(o) => o,
            Err(e) => {
                each(i, Piece::Failed(e))?;
                return Ok(());
            }
        };
        if let Some(format) = opened.unsupported {
            if !each(i, Piece::Unsupported(format))? {
                return Ok(());
            }
            continue;
        }
        let mut reader = opened.reader;
        let mut buf = Vec::with_capacity(block + 64 * 1024);
        // `buf` holds no line break before this (a line being read).
        let mut searched = 0;
        loop {
            if stopped.load(Ordering::Relaxed) == i {
                break;
            }
            let chunk = match reader.fill_buf() {
                Ok(c) => c,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // The whole lines read before the damage are counted, as one pass counts them.
                    if let Some(end) = memchr::memrchr(b'\n', &buf) {
                        buf.truncate(end + 1);
                        if !each(i, Piece::Lines(std::mem::take(&mut buf)))? {
                            return Ok(());
                        }
                    }
                    let piece = if opened.gzip { Piece::Damaged(e.to_string()) } else { Piece::Failed(e) };
                    if !each(i, piece)? {
                        return Ok(());
                    }
                    break;
                }
            };
            if chunk.is_empty() {
                if !buf.is_empty() {
                    let piece = if buf.len() >= MAX_LINE { Piece::OverLong } else { Piece::Lines(buf) };
                    if !each(i, piece)? {
                        return Ok(());
                    }
                }
                break;
            }
            let n = chunk.len().min(block.max(1));
            buf.extend_from_slice(&chunk[..n]);
            reader.consume(n);
            if buf.len() < block {
                continue;
            }
            match memchr::memrchr(b'\n', &buf[searched..]) {
                Some(at) => {
                    let end = searched + at;
                    let mut next = Vec::with_capacity(block + 64 * 1024);
                    next.extend_from_slice(&buf[end + 1..]);
                    buf.truncate(end + 1);
                    searched = next.len();
                    if !each(i, Piece::Lines(std::mem::replace(&mut buf, next)))? {
                        return Ok(());
                    }
                }
                None if buf.len() >= MAX_LINE => {
                    // No record is this long: the rest of the line is skipped unread.
                    buf.clear();
                    searched = 0;
                    let _ = reader.skip_until(b'\n');
                    if !each(i, Piece::OverLong)? {
                        return Ok(());
                    }
                }
                None => searched = buf.len(),
            }
        }
    }
    Ok(())
}

/// Parses a block of lines into a report of its own (other pieces pass through). Rows older
/// than `floor` are not kept: the merged report already keeps enough newer ones.
fn parse(piece: Piece, template: &Report, floor: u64) -> Outcome {
    let Piece::Lines(bytes) = piece else { return Outcome::Other(piece) };
    let mut p = Parsed {
        report: template.clone(),
        lines: 0,
        first_record: None,
        issues: Vec::new(),
        issues_total: 0,
    };
    p.report.keep_rows_from(floor);
    let mut start = 0;
    while start < bytes.len() {
        let end = memchr::memchr(b'\n', &bytes[start..]).map_or(bytes.len(), |i| start + i + 1);
        let line = &bytes[start..end];
        start = end;
        p.lines += 1;
        let number = p.lines;
        let issue = |p: &mut Parsed, issue| {
            p.issues_total += 1;
            if p.issues.len() < KEPT_WARNINGS {
                p.issues.push((number, issue));
            }
        };
        let ended = line.ends_with(b"\n");
        if line.len() - usize::from(ended) >= MAX_LINE {
            issue(&mut p, Issue::OverLong);
            continue;
        }
        let Ok(text) = std::str::from_utf8(line) else {
            issue(&mut p, Issue::NotUtf8);
            continue;
        };
        let text = text.trim_end();
        if text.is_empty() {
            continue;
        }
        let parsed = super::line::parse(text).and_then(|l| Some((parse_ts_ms(&l.ts)?, l)));
        let Some((ts_ms, l)) = parsed else {
            let torn = !ended;
            // A file holding one record being written is still a log.
            let being_written = torn && text.starts_with("{\"ts\":");
            issue(&mut p, Issue::Unreadable { torn, being_written });
            continue;
        };
        p.first_record.get_or_insert(number);
        p.report.add(&Event {
            ts_ms,
            channel: &l.channel,
            principal: &l.principal,
            mfa: l.mfa,
            enforced: l.enforced,
            decision: &l.decision,
            route: l.route.as_deref(),
            request_id: &l.request_id,
            correlation_id: l.correlation_id.as_deref(),
            operation: &l.operation,
            source_ip: &l.source_ip,
            object_id: l.object_id.as_deref(),
            tenant_id: l.tenant_id.as_deref(),
            upn: l.upn.as_deref(),
            app_id: l.app_id.as_deref(),
        });
    }
    Outcome::Parsed(Box::new(p))
}

/// Merges outcomes in order, keeping the one-pass reader's state per file: its line numbers,
/// and whether a record was read yet (until then a bad line means the file is something else:
/// one warning for the file).
struct Merger<'a> {
    report: &'a mut Report,
    files: &'a [LogFile],
    warnings: &'a mut Warnings,
    file: usize,
    is_log: bool,
    stopped: bool,
    lines: u64,
}

impl Merger<'_> {
    /// Returns whether to go on reading.
    fn apply(&mut self, file: usize, outcome: Outcome, stopped: &AtomicUsize) -> Result<bool, ReportError> {
        if file != self.file {
            (self.file, self.is_log, self.stopped, self.lines) = (file, false, false, 0);
        }
        if self.stopped {
            return Ok(true);
        }
        let files = self.files;
        let path: &Path = &files[file].path;
        let (display, number) = (path.display(), self.lines + 1);
        match outcome {
            Outcome::Parsed(p) => {
                for &(n, issue) in &p.issues {
                    let number = self.lines + n;
                    let is_log = self.is_log || p.first_record.is_some_and(|r| r < n);
                    let why = match issue {
                        Issue::OverLong if !is_log => "no line break in its first megabyte",
                        Issue::NotUtf8 if !is_log => "not UTF-8 text",
                        Issue::Unreadable { being_written: false, .. } if !is_log => {
                            "its first line is not a decision record"
                        }
                        Issue::OverLong => {
                            self.warnings.push(format!("{display}:{number}: over-long line skipped"));
                            continue;
                        }
                        Issue::NotUtf8 => {
                            self.warnings.push(format!("{display}:{number}: line not UTF-8, skipped"));
                            continue;
                        }
                        Issue::Unreadable { torn, .. } => {
                            let what = if torn { "torn last line" } else { "unreadable line" };
                            self.warnings.push(format!("{display}:{number}: {what} skipped"));
                            continue;
                        }
                    };
                    // Before any record: the file is not a log, and nothing of it is counted.
                    self.warnings.push(not_a_log(path, why));
                    self.stopped = true;
                    stopped.store(file, Ordering::Relaxed);
                    return Ok(true);
                }
                self.warnings.total += p.issues_total - p.issues.len() as u64;
                self.is_log |= p.first_record.is_some();
                self.lines += p.lines;
                self.report.merge(p.report);
            }
            Outcome::Other(Piece::OverLong) => {
                self.lines += 1;
                if !self.is_log {
                    self.warnings.push(not_a_log(path, "no line break in its first megabyte"));
                    self.stopped = true;
                    stopped.store(file, Ordering::Relaxed);
                } else {
                    self.warnings.push(format!("{display}:{number}: over-long line skipped"));
                }
            }
            Outcome::Other(Piece::Damaged(e)) => {
                self.warnings.push(format!("{display}:{number}: damaged gzip data, the rest skipped: {e}"));
                self.stopped = true;
            }
            Outcome::Other(Piece::Unsupported(format)) => self.warnings.push(format!(
                "{display}: skipped: compressed with {format}, which mfagate does not read (decompress it, or rotate with gzip)"
            )),
            Outcome::Other(Piece::Failed(source)) => {
                return Err(ReportError::Read { path: path.to_owned(), source });
            }
            Outcome::Other(Piece::Lines(_)) => {}
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::Options;
    use std::io::Write;

    const NOW: u64 = 1_767_225_600_000;

    fn record(i: u64, channel: &str, principal: &str, mfa: &str) -> String {
        format!(
            r#"{{"ts":"2025-12-{:02}T{:02}:00:00.{:03}Z","request_id":"r{i}","channel":"{channel}","route":"r","principal":"{principal}","mfa":{mfa},"enforced":{},"decision":"allow","object_id":"o{}","tenant_id":"t","upn":"u{i}@c.test","app_id":"app-{}","operation":"GET /v1/","source_ip":"10.0.0.1"}}"#,
            25 + i % 7,
            i % 24,
            i % 3,
            !i.is_multiple_of(13),
            i % 5,
            i % 3
        )
    }

    fn records(from: u64, n: u64) -> String {
        (from..from + n)
            .map(|i| match i % 4 {
                0 => record(i, "portal", "user", if i % 8 == 0 { "true" } else { "false" }),
                1 => record(i, "api", "app_only", "null"),
                _ => record(i, "api", "app_user", if i % 3 == 0 { "false" } else { "true" }),
            })
            .map(|l| l + "\n")
            .collect()
    }

    #[test]
    fn any_threads_and_any_cut_give_the_one_pass_report() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, bytes: &[u8]| std::fs::write(dir.path().join(name), bytes).unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(records(0, 3_000).as_bytes()).unwrap();
        write("a.jsonl.1.gz", &gz.finish().unwrap());
        // Malformed lines among records, a long line (longer than the tiny blocks, shorter than
        // the limit) and an over-long one, and no line break at the end.
        let mut b = records(3_000, 500);
        b.push_str("{\"ts\":\"2025-12-30T00:00:00.000Z\", broken\n\n   \n");
        b.push_str(&format!("{{\"pad\":\"{}\"}}\n", "p".repeat(70_000)));
        b.push_str(&records(3_500, 500));
        b.push_str(&format!("{}\n", "x".repeat(super::MAX_LINE + 10)));
        b.push_str(&records(4_000, 20_000));
        b.push_str(record(99_999, "api", "app_user", "true").as_str());
        write("b.jsonl", b.as_bytes());
        // Not a log: its records after a first bad line are not counted.
        write("c.jsonl", format!("\n\nnot json\n{}", records(20_000, 50)).as_bytes());
        let mut d = records(30_000, 300).into_bytes();
        d.extend_from_slice(b"\xff\xfe\n");
        d.extend_from_slice(records(30_300, 300).as_bytes());
        d.extend_from_slice(b"{\"ts\":\"2025-12-3");
        write("d.jsonl", &d);
        let paths = [dir.path().to_owned()];
        let one = Options { threads: 1, block: 1 << 20 };
        let (whole, warned) = super::super::build_with(&paths, NOW, 7, one).unwrap();
        assert_eq!(whole.totals.api_app_user, 24_600 / 2 + 1, "{:?}", whole.totals);
        assert!(whole.recent_api_requests().len() == mfagate_policy::report::MAX_API_ROWS);
        assert!(
            warned.first.iter().any(|w| w.contains("c.jsonl: skipped: not a decision log")),
            "{warned:?}"
        );
        assert!(warned.first.iter().any(|w| w.contains("b.jsonl:1005: over-long line")), "{warned:?}");
        assert!(warned.first.iter().any(|w| w.contains("d.jsonl:602: torn last line")), "{warned:?}");
        for (threads, block) in [(1, 7), (3, 1), (2, 97), (3, 4096), (2, 70_001), (4, 1 << 20)] {
            let (r, w) = super::super::build_with(&paths, NOW, 7, Options { threads, block }).unwrap();
            let at = format!("{threads} threads, {block}-byte blocks");
            assert_eq!(r.totals, whole.totals, "{at}");
            assert_eq!(r.daily, whole.daily, "{at}");
            assert_eq!(r.apps, whole.apps, "{at}");
            assert_eq!(r.non_mfa_users, whole.non_mfa_users, "{at}");
            assert_eq!(r.recent_api_requests(), whole.recent_api_requests(), "{at}");
            assert_eq!((w.first, w.total), (warned.first.clone(), warned.total), "{at}");
        }
    }
}
