//! Canonical request paths, and route prefixes matched on segment boundaries.
//!
//! The gateway decides and forwards one path: the canonical one. Servers behind it normalize
//! paths before they route (nginx, Tomcat, Kestrel, IIS), so a path the gateway did not normalize
//! the same way is decided under one route and served under another (Envoy's CVE-2019-9901).
//! Canonicalization follows RFC 3986: percent-encoded unreserved characters are decoded
//! (§6.2.2.2), other escapes get upper-case hex (§6.2.2.1), dot-segments are removed (§5.2.4,
//! after decoding, so `%2e%2e` is `..`), and repeated slashes are merged (as nginx's
//! `merge_slashes` and Envoy's do). What servers read differently and cannot be rewritten safely is
//! refused: an encoded `/` or `\`, a raw `\`, control bytes, broken escapes, any `%25` (a second
//! decoding would change the path), an encoded `?` or `#`, bytes that are not UTF-8 once decoded
//! (overlong `%c0%ae`), look-alike separators that Windows' best-fit conversion turns into `.`,
//! `/` or `\`, segments Windows reads as another name (trailing `.` or space, `::$DATA` streams),
//! and `;` parameters whose segment name is empty or a dot-segment (Tomcat's `..;`).

/// Why a path is refused (each is a 400 with the stable code).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PathError {
    /// Not an absolute path (`*`, an authority-form target, empty).
    NotAbsolute,
    /// `%2F` or `%5C`: servers disagree on whether it separates segments.
    EncodedSlash,
    /// A raw `\`: Windows servers read it as `/`.
    Backslash,
    /// NUL or another control byte, raw or encoded.
    ControlByte,
    /// `%` not followed by two hex digits.
    BadPercent,
    /// `%25`: a server or framework that decodes twice reads another path (`%2561dmin`).
    DoubleEncoded,
    /// `%3F` or `%23`: a re-proxy that decodes the path turns it into a query or fragment.
    EncodedDelimiter,
    /// Bytes that are not UTF-8 once decoded: legacy decoders read overlong forms (`%c0%ae`) as
    /// `.` or `/`.
    InvalidUtf8,
    /// A character Windows' best-fit conversion maps to `.`, `/` or `\` (fullwidth `．`, `／`, `＼`,
    /// `∕` ...).
    LookalikeSeparator,
    /// A segment Windows reads as another name: a trailing `.` or space (`/admin./`, `/admin%20/`),
    /// or an NTFS stream (`admin::$INDEX_ALLOCATION`).
    WindowsAlias,
    /// `;` (or `%3B`) in a segment whose name is empty or `.`/`..`: Tomcat and Jetty drop the
    /// parameter and then resolve the dot-segment.
    ParameterDotSegment,
    /// `;` path parameters on a route that does not allow them.
    Parameters,
}

impl PathError {
    /// The stable reason code.
    pub fn code(self) -> &'static str {
        match self {
            PathError::NotAbsolute => "path_not_absolute",
            PathError::EncodedSlash => "path_encoded_slash",
            PathError::Backslash => "path_backslash",
            PathError::ControlByte => "path_control_byte",
            PathError::BadPercent => "path_bad_escape",
            PathError::DoubleEncoded => "path_double_encoded",
            PathError::EncodedDelimiter => "path_encoded_delimiter",
            PathError::InvalidUtf8 => "path_invalid_utf8",
            PathError::LookalikeSeparator => "path_lookalike_separator",
            PathError::WindowsAlias => "path_windows_alias",
            PathError::ParameterDotSegment => "path_parameter_dot_segment",
            PathError::Parameters => "path_parameters",
        }
    }
}

/// A canonical path: what the gateway routes on, records and forwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanonicalPath {
    path: String,
    /// The path with each segment's `;` parameters removed, when it has any: what Tomcat and
    /// Jetty route on, and so what route matching uses.
    without_parameters: Option<String>,
}

impl CanonicalPath {
    /// The canonical path.
    pub fn as_str(&self) -> &str {
        &self.path
    }

    /// Whether a segment carries `;` parameters.
    pub fn has_parameters(&self) -> bool {
        self.without_parameters.is_some()
    }

    /// The path route prefixes are matched against.
    pub fn matching(&self) -> &str {
        self.without_parameters.as_deref().unwrap_or(&self.path)
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Characters a path segment may carry as they are (RFC 3986 `pchar` without `%`, and `/`).
fn is_path_char(b: u8) -> bool {
    is_unreserved(b)
        || matches!(b, b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'=')
        || matches!(b, b':' | b'@' | b'/')
}

fn is_control(b: u8) -> bool {
    b < 0x20 || b == 0x7f
}

fn push_escaped(out: &mut String, b: u8) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.push('%');
    out.push(char::from(HEX[usize::from(b >> 4)]));
    out.push(char::from(HEX[usize::from(b & 0x0f)]));
}

/// Decodes what may be decoded and escapes what must be escaped; refuses the rest.
fn normalize_bytes(raw: &[u8]) -> Result<String, PathError> {
    let mut out = String::with_capacity(raw.len());
    // Every byte as a server that decodes everything would see it, kept only once the path has a
    // non-ASCII byte (the rare case), to check it as UTF-8.
    let mut decoded: Option<Vec<u8>> = None;
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        if b == b'%' {
            let (Some(hi), Some(lo)) =
                (raw.get(i + 1).copied().and_then(hex), raw.get(i + 2).copied().and_then(hex))
            else {
                return Err(PathError::BadPercent);
            };
            let v = hi << 4 | lo;
            match v {
                b'/' | b'\\' => return Err(PathError::EncodedSlash),
                b'%' => return Err(PathError::DoubleEncoded),
                b'?' | b'#' => return Err(PathError::EncodedDelimiter),
                v if is_control(v) => return Err(PathError::ControlByte),
                v if is_unreserved(v) => out.push(char::from(v)),
                v => push_escaped(&mut out, v),
            }
            note_byte(&mut decoded, raw, i, v);
            i += 3;
            continue;
        }
        match b {
            b'\\' => return Err(PathError::Backslash),
            // Not in a path hyper hands over (they start the query and fragment); refused, not
            // escaped, so that the canonical form stays canonical.
            b'?' | b'#' => return Err(PathError::EncodedDelimiter),
            b if is_control(b) => return Err(PathError::ControlByte),
            b if is_path_char(b) => out.push(char::from(b)),
            b => push_escaped(&mut out, b),
        }
        note_byte(&mut decoded, raw, i, b);
        i += 1;
    }
    if let Some(bytes) = decoded {
        let text = std::str::from_utf8(&bytes).map_err(|_| PathError::InvalidUtf8)?;
        if text.chars().any(is_lookalike_separator) {
            return Err(PathError::LookalikeSeparator);
        }
    }
    Ok(out)
}

/// Records a decoded byte once the path has a non-ASCII one (decoding what came before it).
fn note_byte(decoded: &mut Option<Vec<u8>>, raw: &[u8], at: usize, byte: u8) {
    match decoded {
        Some(bytes) => bytes.push(byte),
        None if byte >= 0x80 => {
            let mut bytes = fully_decoded(&raw[..at]);
            bytes.push(byte);
            *decoded = Some(bytes);
        }
        None => {}
    }
}

/// Every escape decoded (the bytes were already validated by [`normalize_bytes`]).
fn fully_decoded(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match (raw[i], raw.get(i + 1).copied().and_then(hex), raw.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(hi), Some(lo)) => {
                out.push(hi << 4 | lo);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// Characters that Windows' best-fit ANSI conversion (and some normalizers) turn into `.`, `/`
/// or `\`.
fn is_lookalike_separator(c: char) -> bool {
    matches!(
        c,
        '\u{FF0E}'
            | '\u{FF0F}'
            | '\u{FF3C}'
            | '\u{2215}'
            | '\u{2216}'
            | '\u{2044}'
            | '\u{FE68}'
            | '\u{FE52}'
            | '\u{2024}'
            | '\u{29F8}'
            | '\u{29F9}'
            | '\u{3002}'
            | '\u{FF61}'
    )
}

/// Whether Windows would read this segment as another name: a trailing dot or space, an NTFS
/// stream, or an 8.3 short name (`ADMINI~1`, which IIS resolves to `administration`).
fn is_windows_alias(segment: &str) -> bool {
    segment.ends_with('.') || segment.ends_with("%20") || segment.contains(":$") || is_short_name(segment)
}

fn is_short_name(segment: &str) -> bool {
    let name = segment.split('.').next().unwrap_or(segment);
    name.split_once('~').is_some_and(|(base, n)| {
        (1..=6).contains(&base.len()) && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())
    })
}

/// The segment's name, before its `;` parameters (raw `;` or `%3B`).
fn segment_name(segment: &str) -> &str {
    let cut = segment.find(';').into_iter().chain(find_ci(segment, "%3B")).min();
    cut.map_or(segment, |at| &segment[..at])
}

fn find_ci(haystack: &str, needle: &str) -> Option<usize> {
    haystack.as_bytes().windows(needle.len()).position(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

/// Removes dot-segments and empty segments (merging slashes). A trailing `/`, `.` or `..` leaves
/// a trailing slash, as RFC 3986 §5.2.4 does.
fn resolve(normalized: &str) -> String {
    let mut stack: Vec<&str> = Vec::new();
    let mut trailing = false;
    for segment in normalized.split('/').skip(1) {
        trailing = true;
        match segment {
            "" | "." => {}
            ".." => {
                stack.pop();
            }
            s => {
                stack.push(s);
                trailing = false;
            }
        }
    }
    let mut out = String::with_capacity(normalized.len());
    for s in &stack {
        out.push('/');
        out.push_str(s);
    }
    if out.is_empty() || trailing {
        out.push('/');
    }
    out
}

/// Whether a path is canonical as it is, found in one pass: the common case on the request
/// path, which then costs no rewriting.
fn already_canonical(raw: &str) -> bool {
    let b = raw.as_bytes();
    b.first() == Some(&b'/')
        // `;` and `~` (8.3 short names) take the full rewrite.
        && b.iter().all(|&c| c != b';' && c != b'~' && is_path_char(c))
        && !b.windows(2).any(|w| matches!(w, b"//" | b"/." | b"./" | b":$"))
        && b.last() != Some(&b'.')
}

/// The canonical form of a request path (without its query), or why it is refused.
pub fn canonicalize(raw: &str) -> Result<CanonicalPath, PathError> {
    if already_canonical(raw) {
        return Ok(CanonicalPath { path: raw.to_owned(), without_parameters: None });
    }
    slow_canonicalize(raw)
}

fn slow_canonicalize(raw: &str) -> Result<CanonicalPath, PathError> {
    if !raw.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    let normalized = normalize_bytes(raw.as_bytes())?;
    let path = resolve(&normalized);
    let has_parameters = path.contains(';') || find_ci(&path, "%3B").is_some();
    let without_parameters = if has_parameters {
        let mut stripped = String::with_capacity(path.len());
        for segment in path.split('/').skip(1) {
            let name = segment_name(segment);
            if name.len() != segment.len() && matches!(name, "" | "." | "..") {
                return Err(PathError::ParameterDotSegment);
            }
            stripped.push('/');
            stripped.push_str(name);
        }
        Some(stripped)
    } else {
        None
    };
    if path.split('/').any(|segment| is_windows_alias(segment_name(segment))) {
        return Err(PathError::WindowsAlias);
    }
    Ok(CanonicalPath { path, without_parameters })
}

/// A route's path prefix, matched on segment boundaries: `/v1` and `/v1/` both match `/v1`,
/// `/v1/` and `/v1/x`, never `/v1evil`. A final segment with an extension matches too
/// (`/admin.json` is under `/admin`): Rails' `(.:format)` and Spring's old suffix matching route
/// it to the same handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prefix {
    /// Canonical, without a trailing slash (except the root `/`).
    text: String,
    case_sensitive: bool,
}

impl Prefix {
    /// A prefix from configuration. It must already be canonical and carry no parameters (`Err`
    /// gives the canonical spelling to suggest, if there is one).
    pub fn new(raw: &str, case_sensitive: bool) -> Result<Prefix, Option<String>> {
        fn trim(s: &str) -> &str {
            let t = s.trim_end_matches('/');
            if t.is_empty() { "/" } else { t }
        }
        let canonical = canonicalize(raw).map_err(|_| None)?;
        if canonical.has_parameters() {
            return Err(None);
        }
        let text = trim(canonical.as_str());
        if text != trim(raw) {
            return Err(Some(canonical.as_str().to_owned()));
        }
        Ok(Prefix { text: text.to_owned(), case_sensitive })
    }

    /// `/`, which matches every path.
    pub fn root() -> Prefix {
        Prefix { text: "/".to_owned(), case_sensitive: true }
    }

    /// The prefix as matched (no trailing slash).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Its length, for longest-prefix-first ordering.
    pub fn len(&self) -> usize {
        if self.text == "/" { 0 } else { self.text.len() }
    }

    /// Whether this is the root prefix (it matches every path).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the prefix covers this path.
    pub fn matches(&self, path: &CanonicalPath) -> bool {
        self.matches_str(path.matching())
    }

    fn matches_str(&self, path: &str) -> bool {
        if self.text == "/" {
            return true;
        }
        let Some(head) = path.get(..self.text.len()) else {
            return false;
        };
        let same =
            if self.case_sensitive { head == self.text } else { head.eq_ignore_ascii_case(&self.text) };
        let rest = &path[self.text.len()..];
        // `.json` or `.json/` (Rails drops the trailing slash before reading the format).
        let format = rest
            .strip_prefix('.')
            .is_some_and(|r| !r.trim_end_matches('/').contains('/') && !r.ends_with("//"));
        same && (rest.is_empty() || rest.starts_with('/') || format)
    }
}

#[cfg(test)]
mod tests;
