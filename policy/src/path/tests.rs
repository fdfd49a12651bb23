use super::*;
use proptest::prelude::*;

#[test]
fn traversal_spellings_resolve_or_refuse() {
    use PathError as E;
    let cases: &[(&str, Result<&str, PathError>)] = &[
        ("/public/../admin/users", Ok("/admin/users")),
        ("/public/%2e%2e/admin/users", Ok("/admin/users")),
        ("/public/%2E%2E/admin/users", Ok("/admin/users")),
        ("/public/.%2e/admin/users", Ok("/admin/users")),
        ("/public/%2e./admin/users", Ok("/admin/users")),
        ("/public//../admin/users", Ok("/admin/users")),
        ("/public/./../admin/users", Ok("/admin/users")),
        ("/public/..%2fadmin/users", Err(E::EncodedSlash)),
        ("/public/..%2Fadmin/users", Err(E::EncodedSlash)),
        ("/public/..%5cadmin/users", Err(E::EncodedSlash)),
        ("/public/..\\admin/users", Err(E::Backslash)),
        ("/public/..;/admin/users", Err(E::ParameterDotSegment)),
        ("/public/..%3b/admin/users", Err(E::ParameterDotSegment)),
        ("/public/%252e%252e/admin", Err(E::DoubleEncoded)),
        ("/public/%25%32e%25%32e/admin", Err(E::DoubleEncoded)),
        ("/public/%252fadmin", Err(E::DoubleEncoded)),
        ("/a%00b", Err(E::ControlByte)),
        ("/a\tb", Err(E::ControlByte)),
        ("/a%7fb", Err(E::ControlByte)),
        ("/a%zz", Err(E::BadPercent)),
        ("/a%2", Err(E::BadPercent)),
        ("/a%", Err(E::BadPercent)),
        ("*", Err(E::NotAbsolute)),
        ("", Err(E::NotAbsolute)),
        ("example.com:443", Err(E::NotAbsolute)),
        ("/", Ok("/")),
        ("//", Ok("/")),
        ("/..", Ok("/")),
        ("/../../etc/passwd", Ok("/etc/passwd")),
        ("/v1/.", Ok("/v1/")),
        ("/v1/..", Ok("/")),
        ("/v1//x///y/", Ok("/v1/x/y/")),
        ("/%41dmin/%7euser", Ok("/Admin/~user")),
        ("/caf%c3%a9", Ok("/caf%C3%A9")),
        ("/a%20b", Ok("/a%20b")),
        ("/a%3fb", Err(E::EncodedDelimiter)),
        ("/a%23b", Err(E::EncodedDelimiter)),
        ("/a%25b", Err(E::DoubleEncoded)),
        ("/admin./users", Err(E::WindowsAlias)),
        ("/admin%2e/users", Err(E::WindowsAlias)),
        ("/admin%20/users", Err(E::WindowsAlias)),
        ("/admin::$INDEX_ALLOCATION/users", Err(E::WindowsAlias)),
        ("/a/.../b", Err(E::WindowsAlias)),
        ("/ADMINI~1/users", Err(E::WindowsAlias)),
        ("/admini~1.jso/users", Err(E::WindowsAlias)),
        ("/~user/x", Ok("/~user/x")),
        ("/a~b/x", Ok("/a~b/x")),
        ("/a/%c0%ae%c0%ae/b", Err(E::InvalidUtf8)),
        ("/a/%ef%bc%8e%ef%bc%8e/b", Err(E::LookalikeSeparator)),
        ("/a%20b/c", Ok("/a%20b/c")),
        ("/users;jsessionid=1/x", Ok("/users;jsessionid=1/x")),
    ];
    for (raw, want) in cases {
        let got = canonicalize(raw);
        assert_eq!(got.as_ref().map(CanonicalPath::as_str).map_err(|e| *e), *want, "{raw:?}");
    }
}

#[test]
fn raw_bytes_outside_the_path_alphabet_are_escaped() {
    // hyper passes some of these through; escaping them keeps the forwarded path unambiguous.
    assert_eq!(
        canonicalize("/a\"b<c>{d}|e^f`g[h]").unwrap().as_str(),
        "/a%22b%3Cc%3E%7Bd%7D%7Ce%5Ef%60g%5Bh%5D"
    );
    assert_eq!(canonicalize("/é").unwrap().as_str(), "/%C3%A9");
}

#[test]
fn parameters_are_matched_without_themselves() {
    let p = canonicalize("/admin;x=1/users;y").unwrap();
    assert!(p.has_parameters());
    assert_eq!(p.as_str(), "/admin;x=1/users;y");
    assert_eq!(p.matching(), "/admin/users");
    assert!(Prefix::new("/admin/", true).unwrap().matches(&p));
    let p = canonicalize("/admin%3Bx/users").unwrap();
    assert_eq!(p.matching(), "/admin/users");
}

#[test]
fn prefixes_match_on_segment_boundaries() {
    let path = |p: &str| canonicalize(p).unwrap();
    let v1 = Prefix::new("/v1", true).unwrap();
    let v1_slash = Prefix::new("/v1/", true).unwrap();
    assert_eq!(v1, v1_slash);
    for p in ["/v1", "/v1/", "/v1/x", "/v1/x/y"] {
        assert!(v1.matches(&path(p)), "{p}");
    }
    for p in ["/v1evil", "/v10/x", "/v", "/", "/V1/x"] {
        assert!(!v1.matches(&path(p)), "{p}");
    }
    let ci = Prefix::new("/Admin/", false).unwrap();
    assert!(ci.matches(&path("/ADMIN/users")));
    assert!(ci.matches(&path("/%61dmin/users")));
    assert!(!ci.matches(&path("/adminx")));
    let root = Prefix::new("/", true).unwrap();
    assert!(root.matches(&path("/anything")) && root.is_empty());
}

#[test]
fn prefixes_must_be_canonical() {
    assert_eq!(Prefix::new("/a/../b/", true), Err(Some("/b/".into())));
    assert_eq!(Prefix::new("/%7euser", true), Err(Some("/~user".into())));
    assert_eq!(Prefix::new("/a;b/", true), Err(None));
    assert_eq!(Prefix::new("/a%2fb/", true), Err(None));
    assert_eq!(Prefix::new("v1/", true), Err(None));
    assert_eq!(Prefix::new("//", true).map(|p| p.is_empty()), Ok(true));
}

/// A path as a lenient server reads it: every escape decoded, `\` as `/`, `;` parameters dropped,
/// slashes merged, dot-segments removed (nginx, Tomcat, Kestrel, IIS each do some of this).
fn lenient_reading(path: &str) -> String {
    let decoded: Vec<u8> =
        fully_decoded(path.as_bytes()).into_iter().map(|b| if b == b'\\' { b'/' } else { b }).collect();
    let text = String::from_utf8_lossy(&decoded);
    let mut segments: Vec<&str> = text.split('/').map(|s| s.split(';').next().unwrap_or_default()).collect();
    // Rails' `(.:format)`: a final segment's extension names the same handler, also before a
    // trailing slash.
    let last_named = segments.len() - usize::from(segments.len() > 1 && segments.last() == Some(&""));
    if let Some(last) = segments.get_mut(last_named.saturating_sub(1))
        && let Some((name, _)) = last.split_once('.')
        && !name.is_empty()
    {
        *last = name;
    }
    resolve(&segments.join("/"))
}

/// The longest matching prefix, as the gateway's route table picks it.
fn route_of(prefixes: &[Prefix], path: &str) -> Option<usize> {
    let mut order: Vec<usize> = (0..prefixes.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(prefixes[i].len()));
    order.into_iter().find(|&i| prefixes[i].matches_str(path))
}

fn piece() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "/", "/", "/", "a", "b", "admin", "Admin", "ADMIN", "public", ".", "..", "%2e", "%2E", "%2e%2e",
        ".%2e", "%2e.", "%2f", "%5c", "\\", ";", ";x=1", "%3b", "%3B", "%41", "%61", "%", "%zz", "%25",
        "%252e", "%00", "\t", "é", "%C3%A9", ".json", "~", "%7e", "//", "-", "_", "%20", "?",
    ])
}

fn raw_path() -> impl Strategy<Value = String> {
    prop::collection::vec(piece(), 0..14).prop_map(|v| format!("/{}", v.concat()))
}

fn prefixes(case_sensitive: bool) -> impl Strategy<Value = Vec<Prefix>> {
    let segment = prop::sample::select(vec!["a", "b", "admin", "public", "Admin"]);
    let one = (prop::collection::vec(segment, 0..3), any::<bool>()).prop_map(move |(segs, slash)| {
        let mut p = format!("/{}", segs.join("/"));
        if slash && p != "/" {
            p.push('/');
        }
        Prefix::new(&p, case_sensitive).expect("generated prefixes are canonical")
    });
    prop::collection::vec(one, 1..5)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn canonicalization_is_idempotent(raw in raw_path()) {
        if let Ok(c) = canonicalize(&raw) {
            let again = canonicalize(c.as_str());
            prop_assert_eq!(again.as_ref(), Ok(&c));
            let s = c.as_str();
            prop_assert!(s.starts_with('/'));
            prop_assert!(!s.contains("//") && !s.contains('\\'), "{}", s);
            prop_assert!(!s.split('/').any(|seg| seg == "." || seg == ".."), "{}", s);
        }
    }

    /// What the upstream makes of the forwarded path falls under the route the gateway decided.
    #[test]
    fn routing_agrees_with_a_lenient_server(raw in raw_path(), table in prefixes(true)) {
        if let Ok(c) = canonicalize(&raw) {
            let ours = route_of(&table, c.matching());
            let theirs = route_of(&table, &lenient_reading(c.as_str()));
            prop_assert_eq!(ours, theirs, "raw {:?} canonical {:?}", raw, c.as_str());
        }
    }

    /// The same for a case-insensitive server (IIS) behind case-insensitive routes.
    #[test]
    fn routing_agrees_with_a_case_insensitive_server(raw in raw_path(), table in prefixes(false)) {
        if let Ok(c) = canonicalize(&raw) {
            let ours = route_of(&table, c.matching());
            let theirs = route_of(&table, &lenient_reading(c.as_str()).to_ascii_lowercase());
            prop_assert_eq!(ours, theirs, "raw {:?} canonical {:?}", raw, c.as_str());
        }
    }

    /// The one-pass shortcut says "canonical" only where the full rewrite changes nothing.
    #[test]
    fn the_shortcut_agrees_with_the_rewrite(raw in raw_path()) {
        if already_canonical(&raw) {
            prop_assert_eq!(slow_canonicalize(&raw).map(|c| c.path), Ok(raw));
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(raw in "/\\PC{0,40}") {
        let _ = canonicalize(&raw);
    }
}

/// Overlong UTF-8 is `.`, `/` or `\` to a decoder that does not check for it (Tomcat's
/// CVE-2008-2938, IIS's CVE-2000-0884 "Unicode traversal"); Tomcat, Jetty and Node refuse it
/// today, the gateway forwards it.
#[test]
fn overlong_utf8_separators_are_refused() {
    for raw in [
        "/public/%c0%ae%c0%ae/admin/users",
        "/public/%e0%80%ae%e0%80%ae/admin/users",
        "/public/%f0%80%80%ae%f0%80%80%ae/admin/users",
        "/public/..%c0%afadmin/users",
        "/public/..%e0%80%afadmin/users",
        "/public/..%c1%9cadmin/users",
    ] {
        assert!(canonicalize(raw).is_err(), "{raw:?} -> {:?}", canonicalize(raw));
    }
}

/// Windows' best-fit conversion to an ANSI code page turns fullwidth `．` `／` `＼` and the
/// division slash `∕` into `.` `/` `\` (the "WorstFit" class, of which PHP-CGI's CVE-2024-4577
/// is the soft hyphen): an upstream that takes the path through an ANSI API climbs out of the
/// route the gateway decided.
#[test]
fn best_fit_separators_are_refused() {
    for raw in [
        "/public/%ef%bc%8e%ef%bc%8e/admin/users",
        "/public/\u{ff0e}\u{ff0e}/admin/users",
        "/public/..%ef%bc%8fadmin/users",
        "/public/..%ef%bc%bcadmin/users",
        "/public/..%e2%88%95admin/users",
    ] {
        assert!(canonicalize(raw).is_err(), "{raw:?} -> {:?}", canonicalize(raw));
    }
}

/// A server that decodes twice (IIS with `allowDoubleEscaping`, an application that decodes the
/// decoded path again; Spring Security's StrictHttpFirewall refuses every `%25` for this) reads
/// `%2561` as `a`. Refusing `%25` only before a separator leaves letters, which change the route.
#[test]
fn double_decoding_cannot_change_the_route() {
    let table: Vec<Prefix> =
        ["/admin/", "/public/", "/"].iter().map(|p| Prefix::new(p, true).unwrap()).collect();
    for raw in ["/%2561dmin/users", "/adm%2569n/users", "/%2561%2564%256d%2569%256e/users"] {
        if let Ok(c) = canonicalize(raw) {
            let twice = lenient_reading(&lenient_reading(c.as_str()));
            assert_eq!(
                route_of(&table, c.matching()),
                route_of(&table, &twice),
                "{raw:?}: decided on {:?}, read twice as {twice:?}",
                c.as_str()
            );
        }
    }
}

#[test]
fn a_final_extension_is_under_its_name() {
    let table = [Prefix::new("/admin", true).unwrap(), Prefix::new("/", true).unwrap()];
    for (raw, want) in [
        ("/admin.json", Some(0)),
        ("/admin.json/", Some(0)),
        ("/admin.json/x", Some(1)),
        ("/adminx.json", Some(1)),
        ("/admin/x.json", Some(0)),
    ] {
        let c = canonicalize(raw).unwrap();
        assert_eq!(route_of(&table, c.matching()), want, "{raw}");
        assert_eq!(route_of(&table, &lenient_reading(c.as_str())), want, "{raw}: the model agrees");
    }
}
