//! Secrets as configured: inline or read from a file, never printed.

use super::problems::Problems;
use std::path::Path;

/// A secret value (client secret, session key, admin token). Its Debug output is redacted and it
/// has no Display, so it cannot reach a log by accident; [`Secret::expose`] says where it is used.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Secret {
        Secret::new(value)
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Secret {
        Secret::new(value)
    }
}

/// Reads a secret file, less one final line ending; an unreadable or empty file is an error at
/// `key`. The error names the file, never its content.
pub(crate) fn read_file(p: &mut Problems, key: &str, path: &Path) -> Option<String> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => {
            p.add(key, format!("cannot read {}: {e}", path.display()));
            return None;
        }
    };
    let value = text.strip_suffix('\n').map(|t| t.strip_suffix('\r').unwrap_or(t)).unwrap_or(&text);
    if value.trim().is_empty() {
        p.add(key, format!("{} is empty", path.display()));
        return None;
    }
    Some(value.to_owned())
}

/// One secret that may be written inline (`key`) or read from a file (`key_file`), not both.
pub(crate) fn inline_or_file(
    p: &mut Problems,
    at: &str,
    key: &str,
    inline: Option<String>,
    file: Option<&Path>,
    base: &Path,
) -> Option<Secret> {
    match (inline, file) {
        (Some(_), Some(_)) => {
            p.add(format!("{at}.{key}_file"), format!("set {key} or {key}_file, not both"));
            None
        }
        (Some(value), None) => Some(Secret(value)),
        (None, Some(file)) => read_file(p, &format!("{at}.{key}_file"), &base.join(file)).map(Secret),
        (None, None) => None,
    }
}

/// `session.keys_file`: one base64 key per line; blank lines and `#` comments are skipped.
pub(crate) fn key_lines(p: &mut Problems, key: &str, path: &Path) -> Vec<Secret> {
    let Some(text) = read_file(p, key, path) else {
        return Vec::new();
    };
    let keys: Vec<Secret> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(Secret::new)
        .collect();
    if keys.is_empty() {
        p.add(key, format!("{} has no keys (one base64 key per line)", path.display()));
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
        assert_eq!(format!("{:?}", Some(vec![s.clone()])), "Some([Secret(<redacted>)])");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn files_lose_one_final_newline_and_must_hold_something() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = Problems::default();
        for (text, want) in
            [("a\n", Some("a")), ("a\r\n", Some("a")), ("a", Some("a")), ("a\n\n", Some("a\n"))]
        {
            std::fs::write(dir.path().join("s"), text).unwrap();
            assert_eq!(read_file(&mut p, "k", &dir.path().join("s")).as_deref(), want, "{text:?}");
        }
        assert!(!p.has_errors());
        std::fs::write(dir.path().join("s"), "\n").unwrap();
        assert_eq!(read_file(&mut p, "k", &dir.path().join("s")), None);
        assert_eq!(read_file(&mut p, "k", &dir.path().join("missing")), None);
        assert_eq!(p.errors().len(), 2);
        assert!(p.errors()[0].starts_with("k: ") && p.errors()[0].ends_with("is empty"), "{:?}", p.errors());
        assert!(p.errors()[1].contains("cannot read"), "{:?}", p.errors());
    }

    #[test]
    fn key_files_skip_blank_lines_and_comments() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("keys");
        std::fs::write(&file, "# new key first\nAAAA\n\n  BBBB  \n#old\n").unwrap();
        let mut p = Problems::default();
        let keys: Vec<String> = key_lines(&mut p, "k", &file).iter().map(|k| k.expose().to_owned()).collect();
        assert_eq!(keys, ["AAAA", "BBBB"]);
        std::fs::write(&file, "# only a comment\n").unwrap();
        assert!(key_lines(&mut p, "k", &file).is_empty());
        assert!(p.errors()[0].contains("has no keys"), "{:?}", p.errors());
    }
}
