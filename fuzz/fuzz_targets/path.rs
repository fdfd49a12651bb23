//! Path canonicalization: never panics; what it accepts is canonical (idempotent, absolute, no
//! empty, `.` or `..` segment, no `\`, no control byte, no escape that could have been decoded,
//! upper-case hex); prefixes match on segment boundaries.
//!
//! Input: `PREFIX\nPATH` (or just `PATH`); the first byte's low bit picks case-insensitive matching.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mfagate_policy::path::{CanonicalPath, Prefix, canonicalize};

fn check_canonical(raw: &str, c: &CanonicalPath) {
    let s = c.as_str();
    assert!(s.starts_with('/'), "{raw:?} -> {s:?}");
    assert!(!s.contains("//"), "{raw:?} -> {s:?}");
    assert!(!s.contains('\\'), "{raw:?} -> {s:?}");
    assert!(s.bytes().all(|b| (0x20..0x7f).contains(&b)), "{raw:?} -> {s:?}");
    for segment in s.split('/').skip(1) {
        assert!(segment != "." && segment != "..", "{raw:?} -> {s:?}");
    }
    // Escapes are upper case, and none encodes what may stand as it is.
    for (i, _) in s.match_indices('%') {
        let hex = s.get(i + 1..i + 3).unwrap_or_else(|| panic!("{raw:?} -> {s:?}: cut escape"));
        let v = u8::from_str_radix(hex, 16).unwrap_or_else(|_| panic!("{raw:?} -> {s:?}: bad escape"));
        assert_eq!(hex, hex.to_ascii_uppercase(), "{raw:?} -> {s:?}");
        assert!(!(v.is_ascii_alphanumeric() || b"-._~".contains(&v)), "{raw:?} -> {s:?}: {hex}");
        assert!(!matches!(v, b'/' | b'\\') && v >= 0x20 && v != 0x7f, "{raw:?} -> {s:?}: {hex}");
    }
    let again = canonicalize(s).unwrap_or_else(|e| panic!("{raw:?} -> {s:?} refused: {e:?}"));
    assert_eq!(&again, c, "{raw:?}: not idempotent");
    assert_eq!(c.has_parameters(), s.contains(';') || s.contains("%3B"), "{raw:?} -> {s:?}");
    if !c.has_parameters() {
        assert_eq!(c.matching(), s);
    }
    assert!(c.matching().starts_with('/'), "{raw:?} -> {:?}", c.matching());
}

fn check_prefix(prefix: &Prefix, case_sensitive: bool, c: &CanonicalPath) {
    let p = prefix.as_str();
    let path = c.matching();
    let matched = prefix.matches(c);
    if p == "/" {
        assert!(matched);
        return;
    }
    // On a segment boundary, or a final segment's extension (`/v1.json`, `/v1.json/`: Rails'
    // format), and the same bytes (up to ASCII case when so configured).
    let boundary = |rest: &str| {
        rest.is_empty()
            || rest.starts_with('/')
            || rest.strip_prefix('.').is_some_and(|r| !r.trim_end_matches('/').contains('/') && !r.ends_with("//"))
    };
    let expected = path.len() >= p.len()
        && path.is_char_boundary(p.len())
        && boundary(&path[p.len()..])
        && path.as_bytes()[..p.len()].eq_ignore_ascii_case(p.as_bytes());
    if matched {
        assert!(expected, "{p:?} matched {path:?}");
    }
    if expected && (!case_sensitive || &path[..p.len()] == p) {
        assert!(matched, "{p:?} missed {path:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let case_sensitive = data.first().is_none_or(|b| b & 1 == 0);
    let (prefix, raw) = text.split_once('\n').unwrap_or(("/", text));
    let Ok(c) = canonicalize(raw) else {
        let _ = Prefix::new(prefix, case_sensitive);
        return;
    };
    check_canonical(raw, &c);
    if let Ok(p) = Prefix::new(prefix, case_sensitive) {
        check_prefix(&p, case_sensitive, &c);
        check_prefix(&Prefix::root(), true, &c);
    }
});
