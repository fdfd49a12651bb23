//! Header handling, as the proxy runs it on a request to the upstream (hop-by-hop, untrusted and
//! own-cookie stripping, the identity and forwarding headers), and the request's host.
//! Afterwards: no name with `_`; the `x-auth-*` headers are exactly the gateway's, with its
//! values; no client-forbidden or hop-by-hop header is left (nor one `Connection` named), but
//! `Upgrade: websocket` with `Connection: upgrade`; no cookie the gateway reads as its own;
//! nothing else is added or changed.
//!
//! Input: a first line whose first byte's bits choose trust_forwarded_for (1), https (2), a
//! verified identity (4) and MFA (8); then the request target; then `name: value` lines.
#![no_main]

use http::header::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use mfagate::gate::forward;
use mfagate::verify::jwt::Identity;
use mfagate_policy::{Decision, Principal, Reason};

const OWNED: [&str; 7] = [
    "x-auth-principal",
    "x-auth-mfa",
    "x-auth-subject",
    "x-auth-tenant",
    "x-auth-app",
    "x-auth-upn",
    "x-auth-issuer",
];
const FORBIDDEN: [&str; 30] = [
    "x-original-url",
    "x-rewrite-url",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    "forwarded",
    "forwarded-for",
    "x-forwarded",
    "x-real-ip",
    "x-forwarded-host",
    "x-forwarded-port",
    "x-forwarded-prefix",
    "x-forwarded-scheme",
    "x-forwarded-ssl",
    "x-forwarded-server",
    "x-forwarded-uri",
    "x-original-forwarded-for",
    "front-end-https",
    "x-url-scheme",
    "x-original-host",
    "x-host",
    "x-original-uri",
    "x-envoy-original-path",
    "x-http-destinationurl",
    "x-client-ip",
    "true-client-ip",
    "cf-connecting-ip",
    "x-cluster-client-ip",
    "fastly-client-ip",
    "x-proxyuser-ip",
];
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "http2-settings",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
];
/// What the gateway itself sets (or keeps, for a WebSocket upgrade).
const SET_BY_GATEWAY: [&str; 5] =
    ["x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "connection", "upgrade"];

fn values(h: &HeaderMap, name: &str) -> Vec<Vec<u8>> {
    h.get_all(name).iter().map(|v| v.as_bytes().to_vec()).collect()
}

fn identity() -> Identity {
    Identity {
        issuer: "dev".into(),
        tenant_id: Some("11111111-2222-4333-8444-555555555555".into()),
        object_id: Some("00000000-0000-4000-8000-0000000b0001".into()),
        upn: Some("adele@contoso.test".into()),
        app_id: None,
        amr: vec!["mfa".into()],
    }
}

fn check_host(uri: &http::Uri, headers: &HeaderMap) {
    let hosts = headers.get_all(http::header::HOST).iter().count();
    match mfagate::gate::routes::request_host(uri, headers) {
        Ok(Some(host)) => {
            assert!(hosts <= 1);
            assert_eq!(host, host.to_ascii_lowercase(), "{uri} {headers:?}");
            // http's Authority lets `a.test:x`, `b.test[::1]x` and `a.test;x` through (reported).
            assert!(!host.contains(['@', '/', ' ']), "{host:?}");
        }
        Ok(None) => assert!(hosts == 0 && uri.authority().is_none()),
        Err(_) => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let mut lines = data.split(|b| *b == b'\n');
    let flags = lines.next().and_then(|l| l.first().copied()).unwrap_or(0);
    let (trust, https, verified, mfa) = (flags & 1 != 0, flags & 2 != 0, flags & 4 != 0, flags & 8 != 0);
    let uri =
        lines.next().and_then(|l| http::Uri::try_from(l).ok()).unwrap_or_else(|| http::Uri::from_static("/"));
    let mut headers = HeaderMap::new();
    for line in lines {
        let Some(at) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let value = line[at + 1..].trim_ascii();
        if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(&line[..at]), HeaderValue::from_bytes(value)) {
            headers.append(name, value);
        }
    }
    check_host(&uri, &headers);
    let peer = std::net::IpAddr::from([10, 0, 0, 7]);
    let client = forward::client_address(&headers, peer, trust);
    assert!(client.parse::<std::net::IpAddr>().is_ok(), "{client:?}");
    let before = headers.clone();
    let upgrade = forward::is_upgrade(&headers);
    let connection_named: Vec<String> = before
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .collect();
    let original_host = before
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| uri.authority().map(|a| a.to_string()));

    // The proxy's order (proxy.rs `upstream_request`).
    let h = &mut headers;
    let chain = forward::forwarded_chain(h, trust);
    forward::strip_hop_by_hop(h);
    forward::strip_untrusted(h);
    forward::strip_own_cookies(h);
    h.remove(http::header::HOST);
    let principal = if verified { Principal::AppUser } else { Principal::Anonymous };
    let decision = Decision {
        reason: if verified { Reason::MfaSatisfied } else { Reason::PublicRoute },
        enforced: true,
        principal,
        mfa: verified.then_some(mfa),
        anomalies: Vec::new(),
    };
    let id = identity();
    forward::set_identity(h, &decision, verified.then_some(&id));
    let client_ip = peer.to_string();
    forward::set_forwarded(
        h,
        chain.as_deref(),
        &client_ip,
        if https { "https" } else { "http" },
        original_host.as_deref(),
    );

    // Identity: exactly the gateway's headers, one value each.
    let expected_identity = |name: &str| -> Vec<u8> {
        let v = match name {
            "x-auth-principal" => principal.as_str(),
            "x-auth-mfa" if verified && mfa => "true",
            "x-auth-mfa" => "false",
            _ if !verified => "",
            "x-auth-subject" => id.object_id.as_deref().unwrap_or(""),
            "x-auth-tenant" => id.tenant_id.as_deref().unwrap_or(""),
            "x-auth-app" => id.app_id.as_deref().unwrap_or(""),
            "x-auth-upn" => id.upn.as_deref().unwrap_or(""),
            "x-auth-issuer" => &id.issuer,
            _ => unreachable!(),
        };
        v.as_bytes().to_vec()
    };
    for name in h.keys() {
        let n = name.as_str();
        assert!(n.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'), "{n} survived");
        assert!(!n.starts_with("x-auth-") || OWNED.contains(&n), "{n} survived");
        assert!(n == "x-forwarded-host" || !FORBIDDEN.contains(&n), "{n} survived");
        assert!((n == "connection" && upgrade) || !HOP_BY_HOP.contains(&n), "{n} survived");
        let gateway = OWNED.contains(&n) || SET_BY_GATEWAY.contains(&n);
        assert!(gateway || !connection_named.iter().any(|t| t == n), "{n} was named in Connection");
        if !gateway && n != "cookie" {
            assert_eq!(values(h, n), values(&before, n), "{n} changed");
        }
    }
    for name in OWNED {
        assert_eq!(values(h, name), vec![expected_identity(name)], "{name}");
    }
    // Upgrade: only a single WebSocket upgrade, with Connection: upgrade.
    if h.contains_key(http::header::UPGRADE) || h.contains_key(http::header::CONNECTION) {
        assert!(upgrade);
        let up = values(h, "upgrade");
        assert!(up.len() == 1 && up[0].eq_ignore_ascii_case(b"websocket"), "{up:?}");
        assert_eq!(values(h, "connection"), vec![b"upgrade".to_vec()]);
    }
    assert!(!h.contains_key(http::header::HOST));
    // Forwarding: the gateway's own view.
    let xff = values(h, "x-forwarded-for");
    if trust {
        assert!(xff.len() == 1 && xff[0].ends_with(client_ip.as_bytes()), "{xff:?}");
    } else {
        assert_eq!(xff, vec![client_ip.as_bytes().to_vec()]);
    }
    let proto: &[u8] = if https { b"https" } else { b"http" };
    assert_eq!(values(h, "x-forwarded-proto"), vec![proto.to_vec()]);
    let xfh = values(h, "x-forwarded-host");
    assert!(xfh.len() <= 1);
    if let Some(v) = xfh.first() {
        assert_eq!(Some(v.as_slice()), original_host.as_deref().map(str::as_bytes));
    }
    // Cookies: none that the gateway reads as its own reaches the upstream. (Its reading is
    // exact: `mfagate_session =x` is not its cookie, and is forwarded as the client's.)
    for own in [mfagate::browser::session::SESSION_COOKIE, mfagate::browser::session::LOGIN_COOKIE] {
        assert_eq!(mfagate::browser::session::cookie(h, own), None, "{own} survived");
    }
});
