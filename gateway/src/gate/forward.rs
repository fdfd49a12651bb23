//! Header hygiene between client and upstream: hop-by-hop headers out; everything the upstream
//! could read as the gateway's word out (identity, path and method overrides, client address and
//! host, names with `_`); the verified identity and X-Forwarded-* in, from the gateway's own view.

use crate::verify::jwt::Identity;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Uri, uri::PathAndQuery};
use mfagate_policy::Decision;

const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    // h2c's upgrade settings: the gateway passes no upgrade but WebSocket.
    HeaderName::from_static("http2-settings"),
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

// Names built at compile time: `from_static` at run time validates the name on every call.
const X_AUTH_PRINCIPAL: HeaderName = HeaderName::from_static("x-auth-principal");
const X_AUTH_MFA: HeaderName = HeaderName::from_static("x-auth-mfa");
const X_AUTH_SUBJECT: HeaderName = HeaderName::from_static("x-auth-subject");
const X_AUTH_TENANT: HeaderName = HeaderName::from_static("x-auth-tenant");
const X_AUTH_APP: HeaderName = HeaderName::from_static("x-auth-app");
const X_AUTH_UPN: HeaderName = HeaderName::from_static("x-auth-upn");
const X_AUTH_ISSUER: HeaderName = HeaderName::from_static("x-auth-issuer");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Client headers that some server, framework or library reads as the request's path, method,
/// scheme, host, prefix or client address (IIS URL Rewrite's `X-Original-URL`, Symfony's
/// CVE-2018-14773, method overrides, Rack's `X-Forwarded-Ssl`, request-ip's `True-Client-IP`):
/// only the gateway says these, and it says them with X-Forwarded-For/-Proto/-Host.
fn is_forbidden(name: &str) -> bool {
    matches!(
        name,
        "x-original-url"
            | "x-rewrite-url"
            | "x-http-method-override"
            | "x-http-method"
            | "x-method-override"
            | "forwarded"
            | "forwarded-for"
            | "x-forwarded"
            | "x-real-ip"
            | "x-forwarded-host"
            | "x-forwarded-port"
            | "x-forwarded-prefix"
            | "x-forwarded-scheme"
            | "x-forwarded-ssl"
            | "x-forwarded-server"
            | "x-forwarded-uri"
            | "x-original-forwarded-for"
            | "front-end-https"
            | "x-url-scheme"
            | "x-original-host"
            | "x-host"
            | "x-original-uri"
            | "x-envoy-original-path"
            | "x-http-destinationurl"
            | "x-client-ip"
            | "true-client-ip"
            | "cf-connecting-ip"
            | "x-cluster-client-ip"
            | "fastly-client-ip"
            | "x-proxyuser-ip"
    )
}

/// The value of `name` if the headers carry it exactly once.
fn single<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a HeaderValue> {
    let mut values = headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (Some(v), None) => Some(v),
        _ => None,
    }
}

/// `Sec-WebSocket-Accept` for a key (RFC 6455 §4.2.2).
pub fn websocket_accept(key: &[u8]) -> String {
    use base64::Engine;
    const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY);
    ctx.update(key);
    ctx.update(GUID);
    base64::engine::general_purpose::STANDARD.encode(ctx.finish().as_ref())
}

/// Whether a 101 answers the WebSocket handshake of `key`: `Upgrade: websocket` and the
/// `Sec-WebSocket-Accept` derived from the key.
pub fn completes_websocket_handshake(headers: &HeaderMap, key: &HeaderValue) -> bool {
    single(headers, &header::UPGRADE).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"))
        && single(headers, &header::SEC_WEBSOCKET_ACCEPT)
            .is_some_and(|v| v.as_bytes() == websocket_accept(key.as_bytes()).as_bytes())
}

/// Whether the request asks for a WebSocket upgrade, the only upgrade passed on (no `h2c`).
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    single(headers, &header::UPGRADE).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"))
        && single(headers, &header::SEC_WEBSOCKET_KEY).is_some()
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("upgrade")))
}

/// Removes hop-by-hop headers, including those named in `Connection`. An upgrade keeps
/// `Connection: upgrade` and `Upgrade`, which the next hop needs.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages carry none of them: one pass over the names instead of a removal per name.
    if !headers.keys().any(|k| k == header::UPGRADE || HOP_BY_HOP.contains(k)) {
        return;
    }
    let upgrade = is_upgrade(headers);
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .filter(|n| !(upgrade && n == header::UPGRADE))
        .collect();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
    if upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else {
        headers.remove(header::UPGRADE);
    }
}

/// Whether a header name has anything but letters, digits and `-`: CGI, WSGI, PHP and Rack read
/// `_` as `-`, and lighttpd's CGI turns every such byte into `_`, so `x_auth_upn` and `x-auth.upn`
/// would both be read as the gateway's `x-auth-upn`.
pub fn has_odd_name(name: &HeaderName) -> bool {
    !name.as_str().bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Removes what only the gateway may say: every `x-auth-*` header, every name with anything but
/// letters, digits and `-` (any spelling of `x_auth_upn`), and the forwarding family.
pub fn strip_untrusted(headers: &mut HeaderMap) {
    let untrusted =
        |k: &HeaderName| k.as_str().starts_with("x-auth-") || has_odd_name(k) || is_forbidden(k.as_str());
    // The common case has none: one pass over the names, no allocation.
    if !headers.keys().any(untrusted) {
        return;
    }
    let names: Vec<HeaderName> = headers.keys().filter(|k| untrusted(k)).cloned().collect();
    for name in names {
        headers.remove(name);
    }
}

/// The trace id of a W3C `traceparent` (`00-<32 hex>-<16 hex>-<2 hex>`, lowercase, ids not all
/// zeros), or `None` when it is not one: only a well-formed id reaches the decision log.
pub fn trace_id(traceparent: &str) -> Option<&str> {
    parse_traceparent(traceparent).map(|t| t.trace_id)
}

/// The fields of a well-formed W3C `traceparent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent<'a> {
    /// 32 lowercase hex digits.
    pub trace_id: &'a str,
    /// The caller's span: 16 lowercase hex digits.
    pub parent_id: &'a str,
    /// 2 hex digits; bit 0 is "sampled".
    pub flags: &'a str,
}

/// A `traceparent` read as [`trace_id`] reads it (the rules are in one place).
pub fn parse_traceparent(traceparent: &str) -> Option<TraceParent<'_>> {
    let mut parts = traceparent.trim().split('-');
    let (version, trace, parent, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    let zero = |s: &str| s.bytes().all(|b| b == b'0');
    // Version ff is invalid; a later version may add fields after these four.
    let later = version != "00" || parts.next().is_none();
    (hex(version, 2)
        && version != "ff"
        && later
        && hex(trace, 32)
        && !zero(trace)
        && hex(parent, 16)
        && !zero(parent)
        && hex(flags, 2))
    .then_some(TraceParent { trace_id: trace, parent_id: parent, flags })
}

/// Removes the gateway's own cookies (session, sign-in state) from what the upstream sees: they
/// are the gateway's credentials, not the application's.
pub fn strip_own_cookies(headers: &mut HeaderMap) {
    let own = crate::browser::session::OWN_COOKIES;
    // The common case (no gateway cookie) costs a scan, not a rebuild.
    let ours = |v: &HeaderValue| {
        own.iter().any(|n| v.as_bytes().windows(n.len()).any(|w| w.eq_ignore_ascii_case(n.as_bytes())))
    };
    if !headers.get_all(header::COOKIE).iter().any(ours) {
        return;
    }
    let kept: Vec<String> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        // Names compared as lenient parsers read them (Node's `cookie` trims `mfagate_session =`).
        .filter(|pair| {
            let name = pair.split('=').next().unwrap_or_default().trim();
            !pair.is_empty() && !own.iter().any(|n| name.eq_ignore_ascii_case(n))
        })
        .map(str::to_owned)
        .collect();
    headers.remove(header::COOKIE);
    if let Ok(v) = HeaderValue::from_str(&kept.join("; "))
        && !kept.is_empty()
    {
        headers.insert(header::COOKIE, v);
    }
}

/// Sets every identity header the gateway owns, empty where there is no value, so that no
/// client copy could survive under any spelling an upstream folds to the same name.
pub fn set_identity(headers: &mut HeaderMap, decision: &Decision, identity: Option<&Identity>) {
    headers.insert(X_AUTH_PRINCIPAL, HeaderValue::from_static(decision.principal.as_str()));
    headers.insert(
        X_AUTH_MFA,
        HeaderValue::from_static(if decision.mfa == Some(true) { "true" } else { "false" }),
    );
    let id = identity.filter(|_| decision.principal != mfagate_policy::Principal::Anonymous);
    let mut put = |name: HeaderName, value: Option<&str>| {
        let value = value.and_then(|v| HeaderValue::from_str(v).ok());
        headers.insert(name, value.unwrap_or_else(|| HeaderValue::from_static("")));
    };
    put(X_AUTH_SUBJECT, id.and_then(|i| i.object_id.as_deref()));
    put(X_AUTH_TENANT, id.and_then(|i| i.tenant_id.as_deref()));
    put(X_AUTH_APP, id.and_then(|i| i.app_id.as_deref()));
    put(X_AUTH_UPN, id.and_then(|i| i.upn.as_deref()));
    put(X_AUTH_ISSUER, id.map(|i| i.issuer.as_str()));
}

/// The client address: with `trust`, the right-most `X-Forwarded-For` hop across every line of
/// it (the one the trusted proxy appended), else the peer.
pub fn client_address(headers: &HeaderMap, peer: std::net::IpAddr, trust: bool) -> String {
    if trust {
        let last = headers
            .get_all(&X_FORWARDED_FOR)
            .iter()
            .next_back()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .map(str::trim)
            .and_then(|ip| ip.parse::<std::net::IpAddr>().ok());
        if let Some(ip) = last {
            return ip.to_string();
        }
    }
    peer.to_string()
}

/// The client's X-Forwarded-For chain, every line, when the listener trusts it (behind a known
/// proxy); read before hop-by-hop removal, so `Connection: x-forwarded-for` cannot drop it.
pub fn forwarded_chain(headers: &HeaderMap, trust: bool) -> Option<String> {
    if !trust {
        return None;
    }
    let lines: Vec<&str> = headers.get_all(&X_FORWARDED_FOR).iter().filter_map(|v| v.to_str().ok()).collect();
    (!lines.is_empty()).then(|| lines.join(", "))
}

/// Sets X-Forwarded-For (the trusted chain, if any, then the peer), -Proto and -Host.
pub fn set_forwarded(
    headers: &mut HeaderMap,
    chain: Option<&str>,
    client_ip: &str,
    proto: &str,
    host: Option<&str>,
) {
    let chain = match chain {
        Some(prior) => format!("{prior}, {client_ip}"),
        None => client_ip.to_owned(),
    };
    if let Ok(v) = HeaderValue::from_str(&chain) {
        headers.insert(X_FORWARDED_FOR, v);
    }
    headers
        .insert(X_FORWARDED_PROTO, HeaderValue::from_static(if proto == "https" { "https" } else { "http" }));
    if let Some(v) = host.and_then(|h| HeaderValue::from_str(h).ok()) {
        headers.insert(X_FORWARDED_HOST, v);
    }
}

/// The upstream URI: the upstream's scheme and authority, its base path, then the canonical path
/// that was decided and the request's query.
pub fn upstream_uri(upstream: &Uri, path: &str, query: Option<&str>) -> Option<Uri> {
    let base = upstream.path().trim_end_matches('/');
    let pq = match query {
        Some(q) => format!("{base}{path}?{q}"),
        None => format!("{base}{path}"),
    };
    let mut parts = upstream.clone().into_parts();
    parts.path_and_query = Some(pq.parse::<PathAndQuery>().ok()?);
    Uri::from_parts(parts).ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_a_well_formed_traceparent_gives_a_trace_id() {
        let ok = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(super::trace_id(ok), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
        // A later version may append fields.
        assert!(super::trace_id("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x").is_some());
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736\n-00f067aa0ba902b7-01",
        ] {
            assert_eq!(super::trace_id(bad), None, "{bad:?}");
        }
    }

    use super::*;

    #[test]
    fn hop_by_hop_and_identity_headers_go() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, "close, x-secret".parse().unwrap());
        h.insert("x-secret", "1".parse().unwrap());
        h.insert("keep-alive", "5".parse().unwrap());
        h.insert("x-auth-mfa", "true".parse().unwrap());
        h.insert("X-Auth-Principal", "app_user".parse().unwrap());
        h.insert("accept", "*/*".parse().unwrap());
        h.insert("x_auth_upn", "ceo@contoso.test".parse().unwrap());
        h.insert("x-auth_upn", "ceo@contoso.test".parse().unwrap());
        h.insert("x-original-url", "/admin/".parse().unwrap());
        h.insert("x-http-method-override", "DELETE".parse().unwrap());
        h.insert("forwarded", "for=1.2.3.4".parse().unwrap());
        strip_hop_by_hop(&mut h);
        strip_untrusted(&mut h);
        assert_eq!(h.len(), 1, "{h:?}");
        h.insert(header::COOKIE, "a=1; mfagate_session=s; b=2".parse().unwrap());
        h.append(
            header::COOKIE,
            "mfagate_login=l; __Host-mfagate_session=s; __Host-mfagate_login=l; MFAGATE_SESSION =x; c=3"
                .parse()
                .unwrap(),
        );
        strip_own_cookies(&mut h);
        assert_eq!(h[header::COOKIE], "a=1; b=2; c=3");
    }

    #[test]
    fn upgrades_keep_their_headers() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, "keep-alive, Upgrade".parse().unwrap());
        h.insert(header::UPGRADE, "websocket".parse().unwrap());
        h.insert(header::SEC_WEBSOCKET_KEY, "dGhlIHNhbXBsZSBub25jZQ==".parse().unwrap());
        strip_hop_by_hop(&mut h);
        assert_eq!(h[header::CONNECTION], "upgrade");
        assert_eq!(h[header::UPGRADE], "websocket");
    }

    #[test]
    fn only_websocket_upgrades() {
        for (upgrade, passed) in
            [("websocket", true), ("WebSocket", true), ("h2c", false), ("websocket, h2c", false)]
        {
            let mut h = HeaderMap::new();
            h.insert(header::CONNECTION, "Upgrade, HTTP2-Settings".parse().unwrap());
            h.insert(header::UPGRADE, upgrade.parse().unwrap());
            h.insert("http2-settings", "AAMAAABkAAQCAAAAAAIAAAAA".parse().unwrap());
            h.insert(header::SEC_WEBSOCKET_KEY, "dGhlIHNhbXBsZSBub25jZQ==".parse().unwrap());
            assert_eq!(is_upgrade(&h), passed, "{upgrade}");
            strip_hop_by_hop(&mut h);
            assert_eq!(h.contains_key(header::UPGRADE), passed, "{upgrade}");
            assert!(!h.contains_key("http2-settings"));
        }
    }

    #[test]
    fn websocket_accept_matches_rfc_6455() {
        // RFC 6455 §1.3's example.
        assert_eq!(websocket_accept(b"dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn the_right_most_hop_across_lines() {
        let mut h = HeaderMap::new();
        h.append("x-forwarded-for", "1.1.1.1, 2.2.2.2".parse().unwrap());
        h.append("x-forwarded-for", "3.3.3.3".parse().unwrap());
        let peer = std::net::IpAddr::from([10, 0, 0, 1]);
        assert_eq!(client_address(&h, peer, true), "3.3.3.3");
        assert_eq!(client_address(&h, peer, false), "10.0.0.1");
        let chain = forwarded_chain(&h, true);
        assert_eq!(forwarded_chain(&h, false), None);
        set_forwarded(&mut h, chain.as_deref(), "10.0.0.1", "https", Some("a.test"));
        assert_eq!(h["x-forwarded-for"], "1.1.1.1, 2.2.2.2, 3.3.3.3, 10.0.0.1");
        set_forwarded(&mut h, None, "10.0.0.1", "https", Some("a.test"));
        assert_eq!(h["x-forwarded-for"], "10.0.0.1");
    }

    #[test]
    fn uris_join() {
        let up: Uri = "http://10.0.0.1:8081/base/".parse().unwrap();
        let uri = upstream_uri(&up, "/v1/x", Some("a=1")).unwrap();
        assert_eq!(uri.to_string(), "http://10.0.0.1:8081/base/v1/x?a=1");
    }
}
