//! Header hygiene between client and upstream: hop-by-hop headers out, client-sent identity
//! headers out (on every route), verified identity and X-Forwarded-* in.

use crate::jwt::Identity;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Uri, uri::PathAndQuery};
use mfagate_policy::Decision;

const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
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
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Whether the request asks for a protocol upgrade (WebSocket).
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
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

/// Removes every `x-auth-*` header: only the gateway may set them.
pub fn strip_identity(headers: &mut HeaderMap) {
    let spoofed: Vec<HeaderName> =
        headers.keys().filter(|k| k.as_str().starts_with("x-auth-")).cloned().collect();
    for name in spoofed {
        headers.remove(name);
    }
}

/// Removes the gateway's own cookies (session, sign-in state) from what the upstream sees: they
/// are the gateway's credentials, not the application's.
pub fn strip_own_cookies(headers: &mut HeaderMap) {
    let own = crate::session::OWN_COOKIES;
    // The common case (no gateway cookie) costs a scan, not a rebuild.
    let ours = |v: &HeaderValue| own.iter().any(|n| v.as_bytes().windows(n.len()).any(|w| w == n.as_bytes()));
    if !headers.get_all(header::COOKIE).iter().any(ours) {
        return;
    }
    let kept: Vec<String> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|pair| !pair.is_empty() && !own.iter().any(|n| pair.split('=').next() == Some(n)))
        .map(str::to_owned)
        .collect();
    headers.remove(header::COOKIE);
    if let Ok(v) = HeaderValue::from_str(&kept.join("; "))
        && !kept.is_empty()
    {
        headers.insert(header::COOKIE, v);
    }
}

/// Sets the verified identity headers.
pub fn set_identity(headers: &mut HeaderMap, decision: &Decision, identity: Option<&Identity>) {
    headers.insert(X_AUTH_PRINCIPAL, HeaderValue::from_static(decision.principal.as_str()));
    headers.insert(
        X_AUTH_MFA,
        HeaderValue::from_static(if decision.mfa == Some(true) { "true" } else { "false" }),
    );
    let mut put = |name: HeaderName, value: Option<&str>| {
        if let Some(v) = value.and_then(|v| HeaderValue::from_str(v).ok()) {
            headers.insert(name, v);
        }
    };
    if let Some(id) = identity.filter(|_| decision.principal != mfagate_policy::Principal::Anonymous) {
        put(X_AUTH_SUBJECT, id.object_id.as_deref());
        put(X_AUTH_TENANT, id.tenant_id.as_deref());
        put(X_AUTH_APP, id.app_id.as_deref());
        put(X_AUTH_UPN, id.upn.as_deref());
    }
}

/// Sets X-Forwarded-For/-Proto/-Host. The client's own X-Forwarded-For is kept only when the
/// listener trusts it (behind a known proxy).
pub fn set_forwarded(headers: &mut HeaderMap, client_ip: &str, proto: &str, host: Option<&str>, trust: bool) {
    let chain = match headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(prior) if trust => format!("{prior}, {client_ip}"),
        _ => client_ip.to_owned(),
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

/// The upstream URI: the upstream's scheme and authority, its base path, then the request's
/// path and query.
pub fn upstream_uri(upstream: &Uri, request: &Uri) -> Option<Uri> {
    let base = upstream.path().trim_end_matches('/');
    let pq = request.path_and_query().map_or("/", PathAndQuery::as_str);
    let mut parts = upstream.clone().into_parts();
    parts.path_and_query = format!("{base}{pq}").parse().ok();
    Uri::from_parts(parts).ok()
}

#[cfg(test)]
mod tests {
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
        strip_hop_by_hop(&mut h);
        strip_identity(&mut h);
        assert_eq!(h.len(), 1, "{h:?}");
        h.insert(header::COOKIE, "a=1; mfagate_session=s; b=2".parse().unwrap());
        h.append(
            header::COOKIE,
            "mfagate_login=l; __Host-mfagate_session=s; __Host-mfagate_login=l".parse().unwrap(),
        );
        strip_own_cookies(&mut h);
        assert_eq!(h[header::COOKIE], "a=1; b=2");
    }

    #[test]
    fn upgrades_keep_their_headers() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, "keep-alive, Upgrade".parse().unwrap());
        h.insert(header::UPGRADE, "websocket".parse().unwrap());
        strip_hop_by_hop(&mut h);
        assert_eq!(h[header::CONNECTION], "upgrade");
        assert_eq!(h[header::UPGRADE], "websocket");
    }

    #[test]
    fn uris_join() {
        let up: Uri = "http://10.0.0.1:8081/base/".parse().unwrap();
        let req: Uri = "/v1/x?a=1".parse().unwrap();
        assert_eq!(upstream_uri(&up, &req).unwrap().to_string(), "http://10.0.0.1:8081/base/v1/x?a=1");
    }
}
