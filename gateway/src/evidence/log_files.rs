//! The decision log's files: append to `path`, rotate by UTC day and by size (rename, then create:
//! the way log shippers expect), and delete rotated files older than the retention.
//! Rotated files are `<stem>.<YYYY-MM-DD>.<n>.<ext>` beside `path`, so a report over the folder
//! reads them all. Reading also takes gzip-compressed files (logrotate's `compress`).

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use mfagate_policy::report::DAY_MS;

/// The active file and its rotation state (or standard output, which never rotates).
pub struct RotatingFile {
    path: PathBuf,
    out: BufWriter<Box<dyn Write + Send>>,
    /// Standard output: no rotation, no retention.
    stdout: bool,
    day: Option<u64>,
    bytes: u64,
    max_bytes: u64,
    retention_days: u64,
}

/// The current log file and its rotated siblings, oldest name first: this gateway's own
/// (`<stem>.<date>.<n>.<ext>`), the same compressed (`... .gz`), and logrotate's
/// (`<name>.1`, `<name>-20260101`, `<name>.2.gz`).
pub fn all_files(path: &Path) -> Vec<PathBuf> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let file_name = path.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let ext = path.extension().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "log".into());
    let sibling = |name: &str| {
        let own = name.starts_with(&format!("{stem}."))
            && (name.ends_with(&format!(".{ext}")) || name.ends_with(".gz"));
        let logrotate = name.strip_prefix(file_name.as_str()).is_some_and(|rest| {
            rest.len() > 1
                && rest.starts_with(['.', '-'])
                && rest[1..].bytes().all(|b| b.is_ascii_digit() || b == b'-' || b == b'_')
        });
        own || logrotate
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| {
                    let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                    sibling(&name) && p != path
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    if path.exists() {
        files.push(path.to_owned());
    }
    files
}

/// A decision-log file opened for reading.
pub struct Opened<'a> {
    /// Its bytes, decompressed when it was gzip.
    pub reader: Box<dyn BufRead + 'a>,
    /// Decompressed from gzip: a read error is then damage in the file (truncated, bad CRC).
    pub gzip: bool,
    /// The compression when it is one mfagate does not read.
    pub unsupported: Option<&'static str>,
}

/// Opens a log file for reading. Its first bytes decide whether it is gzip (one or several
/// members, as logrotate and `cat a.gz b.gz` write), decoded as it streams; its name does not.
pub fn open_for_reading(path: &Path) -> std::io::Result<Opened<'static>> {
    open_reader(File::open(path)?)
}

/// [`open_for_reading`] on bytes already opened (a file's first bytes, through a handle).
pub fn open_reader<'a>(bytes: impl std::io::Read + 'a) -> std::io::Result<Opened<'a>> {
    const BUFFER: usize = 256 * 1024;
    let mut file = BufReader::with_capacity(BUFFER, bytes);
    let head = file.fill_buf()?;
    let gzip = head.starts_with(&[0x1f, 0x8b]);
    let unsupported = [
        (&b"\x28\xb5\x2f\xfd"[..], "zstd"),
        (b"BZh", "bzip2"),
        (b"\xfd7zXZ\x00", "xz"),
        (b"\x04\x22\x4d\x18", "lz4"),
    ]
    .into_iter()
    .find_map(|(magic, name)| head.starts_with(magic).then_some(name));
    if gzip {
        let gz = flate2::bufread::MultiGzDecoder::new(file);
        return Ok(Opened {
            reader: Box::new(BufReader::with_capacity(BUFFER, gz)),
            gzip: true,
            unsupported,
        });
    }
    Ok(Opened { reader: Box::new(file), gzip: false, unsupported })
}

/// Opens `path` for appending. A new file is created with mode 0640 (the log holds personal
/// data: user names, object ids, addresses); an existing one keeps its mode.
fn append_to(path: &Path) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o640);
    options.open(path)
}

impl RotatingFile {
    /// Opens (appends to) `path`. Its day is taken from its modification time.
    pub fn open(path: &Path, max_bytes: u64, retention_days: u64) -> std::io::Result<RotatingFile> {
        let file = append_to(path)?;
        let meta = file.metadata()?;
        let day = meta
            .modified()
            .ok()
            .and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok())
            .filter(|_| meta.len() > 0)
            .map(|d| d.as_millis() as u64 / DAY_MS);
        Ok(RotatingFile {
            path: path.to_owned(),
            out: BufWriter::with_capacity(64 * 1024, Box::new(file)),
            stdout: false,
            day,
            bytes: meta.len(),
            max_bytes,
            retention_days,
        })
    }

    /// Standard output, for container log collection: never rotated.
    pub fn stdout() -> RotatingFile {
        RotatingFile {
            path: PathBuf::from("-"),
            out: BufWriter::with_capacity(64 * 1024, Box::new(std::io::stdout())),
            stdout: true,
            day: None,
            bytes: 0,
            max_bytes: u64::MAX,
            retention_days: 0,
        }
    }

    /// Writes one line stamped `ts_ms`, rotating first if the day changed or the file is full.
    pub fn write_line(&mut self, ts_ms: u64, line: &[u8]) -> std::io::Result<()> {
        let day = ts_ms / DAY_MS;
        let new_day = self.day.is_some_and(|d| d != day);
        if !self.stdout && self.bytes > 0 && (new_day || self.bytes + line.len() as u64 > self.max_bytes) {
            self.rotate(day)?;
        }
        self.day = Some(day);
        self.out.write_all(line)?;
        self.bytes += line.len() as u64;
        Ok(())
    }

    /// Flushes to the operating system.
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }

    fn rotate(&mut self, today: u64) -> std::io::Result<()> {
        self.out.flush()?;
        let day = self.day.unwrap_or(today);
        let (stem, ext) = self.stem_ext();
        let dir = self.dir();
        let date = mfagate_policy::report::day_to_date(day);
        let mut n = 1;
        let target = loop {
            let candidate = dir.join(format!("{stem}.{date}.{n}.{ext}"));
            if !candidate.exists() {
                break candidate;
            }
            n += 1;
        };
        std::fs::rename(&self.path, &target)?;
        self.out = BufWriter::with_capacity(64 * 1024, Box::new(append_to(&self.path)?));
        self.bytes = 0;
        self.prune(today);
        Ok(())
    }

    fn dir(&self) -> PathBuf {
        self.path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_owned()
    }

    fn stem_ext(&self) -> (String, String) {
        let stem = self.path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let ext =
            self.path.extension().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "log".into());
        (stem, ext)
    }

    /// Deletes rotated files whose day is more than `retention_days` before `today`.
    fn prune(&self, today: u64) {
        let (stem, ext) = self.stem_ext();
        let oldest = mfagate_policy::report::day_to_date(today.saturating_sub(self.retention_days));
        let Ok(entries) = std::fs::read_dir(self.dir()) else { return };
        for entry in entries.filter_map(Result::ok) {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(rest) =
                name.strip_prefix(&format!("{stem}.")).and_then(|r| r.strip_suffix(&format!(".{ext}")))
            else {
                continue;
            };
            // rest = "YYYY-MM-DD.n": dates compare as strings.
            let date = rest.split('.').next().unwrap_or_default();
            if date.len() == 10
                && date < oldest.as_str()
                && let Err(e) = std::fs::remove_file(entry.path())
            {
                tracing::warn!(file = %name, error = %e, "Cannot delete an expired decision log");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_files_takes_rotated_and_compressed_siblings_only() {
        let dir = tempfile::tempdir().unwrap();
        let names = [
            "decisions.jsonl",
            "decisions.2026-01-01.1.jsonl",
            "decisions.2026-01-01.2.jsonl.gz",
            "decisions.jsonl.1",
            "decisions.jsonl.2.gz",
            "decisions.jsonl-20260101",
            "decisions.jsonl.bak",
            "other.jsonl",
            "decisions-old.txt",
        ];
        for n in names {
            std::fs::write(dir.path().join(n), "").unwrap();
        }
        let found: Vec<String> = all_files(&dir.path().join("decisions.jsonl"))
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            found,
            [
                "decisions.2026-01-01.1.jsonl",
                "decisions.2026-01-01.2.jsonl.gz",
                "decisions.jsonl-20260101",
                "decisions.jsonl.1",
                "decisions.jsonl.2.gz",
                "decisions.jsonl",
            ]
        );
    }

    #[cfg(unix)]
    #[test]
    fn new_files_are_not_world_readable_and_existing_ones_keep_their_mode() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("decisions.jsonl");
        let mut f = RotatingFile::open(&path, 100, 8).unwrap();
        // 0640, less whatever the umask removes: never group-writable or readable by others.
        let created = mode(&path);
        assert_eq!((created & 0o600, created & 0o037), (0o600, 0), "{created:o}");
        let day0 = 20_000 * DAY_MS;
        f.write_line(day0, b"{}\n").unwrap();
        f.write_line(day0 + DAY_MS, b"{}\n").unwrap();
        f.flush().unwrap();
        assert_eq!(mode(&path), created, "the file created by rotation");
        drop(f);
        let existing = dir.path().join("existing.jsonl");
        std::fs::write(&existing, b"").unwrap();
        std::fs::set_permissions(&existing, std::fs::Permissions::from_mode(0o604)).unwrap();
        let _f = RotatingFile::open(&existing, 100, 8).unwrap();
        assert_eq!(mode(&existing), 0o604);
    }

    #[test]
    fn rotates_by_day_and_size_and_keeps_the_retention() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("decisions.jsonl");
        let mut f = RotatingFile::open(&path, 100, 8).unwrap();
        let day0 = 20_000 * DAY_MS;
        f.write_line(day0, b"{\"a\":1}\n").unwrap();
        f.write_line(day0 + 1, b"{\"a\":2}\n").unwrap();
        f.write_line(day0 + DAY_MS, b"{\"a\":3}\n").unwrap();
        f.flush().unwrap();
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["decisions.2024-10-04.1.jsonl", "decisions.jsonl"]);
        // Size: 100 bytes per file at most.
        for i in 0..30 {
            f.write_line(day0 + DAY_MS + i, format!("{{\"line\":{i:03}}}\n").as_bytes()).unwrap();
        }
        f.flush().unwrap();
        let rotated = std::fs::read_dir(dir.path()).unwrap().count();
        assert!(rotated >= 5, "{rotated}");
        // Nine days later, the first day's file is past the 8-day retention; the next day's stays.
        f.write_line(day0 + 9 * DAY_MS, b"{}\n").unwrap();
        assert!(!dir.path().join("decisions.2024-10-04.1.jsonl").exists());
        assert!(dir.path().join("decisions.2024-10-05.1.jsonl").exists());
    }
}
