//! Rules across entries: routes that shadow each other (errors), and what loads but is likely a
//! mistake in production (warnings).

use super::problems::{Problems, entry};
use super::{Channel, IssuerConfig, KeySource, RouteConfig, SamlIdp};
use http::Uri;
use mfagate_policy::{AuthRequirement, Mode};

/// Two routes with the same host, methods and prefix: the later one is never reached.
pub(crate) fn duplicate_prefixes(p: &mut Problems, routes: &[RouteConfig]) {
    fn methods(r: &RouteConfig) -> Vec<&str> {
        let mut m: Vec<&str> = r.methods.iter().map(http::Method::as_str).collect();
        m.sort_unstable();
        m.dedup();
        m
    }
    // Each prefix matches the other's text under its own case rule: the same prefix.
    let same_prefix = |a: &RouteConfig, b: &RouteConfig| {
        let covers = |x: &RouteConfig, y: &RouteConfig| {
            mfagate_policy::path::canonicalize(y.prefix.as_str()).is_ok_and(|path| x.prefix.matches(&path))
        };
        covers(a, b) && covers(b, a)
    };
    for (i, r) in routes.iter().enumerate() {
        if let Some(first) =
            routes[..i].iter().find(|o| o.host == r.host && methods(o) == methods(r) && same_prefix(o, r))
        {
            p.add(
                format!("{}.path_prefix", entry("route", i, &r.name)),
                format!(
                    "same host, methods and prefix as route {:?} ({:?}): this route would never be reached",
                    first.name, first.path_prefix
                ),
            );
        }
    }
}

/// Warnings: what is valid but weakens or wastes something.
pub(crate) fn warnings(
    p: &mut Problems,
    issuers: &[IssuerConfig],
    saml_idps: &[SamlIdp],
    routes: &[RouteConfig],
) {
    // A route without `issuers` takes every issuer's credentials (and a grant route every SAML IdP's).
    let uses = |r: &RouteConfig, name: &str, saml: bool| {
        r.issuers.iter().any(|n| n == name)
            || r.login.as_deref() == Some(name)
            || (r.issuers.is_empty()
                && r.channel == Channel::Api
                && (r.rule.auth == AuthRequirement::Required || (saml && r.grant_audience.is_some())))
    };
    for (i, issuer) in issuers.iter().enumerate() {
        let head = entry("issuer", i, &issuer.name);
        if !routes.iter().any(|r| uses(r, &issuer.name, false)) {
            p.warn(&head, "no route accepts its tokens or signs users in with it");
        }
        if let Some(first) = issuers[..i].iter().find(|o| o.issuer == issuer.issuer) {
            p.warn(
                format!("{head}.issuer"),
                format!("the same issuer URL as issuer {:?}, which takes every such token first", first.name),
            );
        }
        let url = match &issuer.keys {
            KeySource::Discovery(u) => Some(("discovery", u)),
            KeySource::JwksUri(u) => Some(("jwks_uri", u)),
            KeySource::File(_) => None,
        };
        if let Some((key, url)) = url.filter(|(_, u)| plain_http_off_host(u)) {
            p.warn(
                format!("{head}.{key}"),
                format!("{url} is plain http:// to another host: its keys could be replaced in transit"),
            );
        }
    }
    for (i, idp) in saml_idps.iter().enumerate() {
        let head = entry("saml_idp", i, &idp.name);
        if !routes.iter().any(|r| uses(r, &idp.name, true)) {
            p.warn(&head, "no route accepts its assertions or signs users in with it");
        }
        // Refused, not warned: the first would take every assertion, and the other's certificates
        // (or the metadata withdrawing one) would never count.
        if let Some(first) = saml_idps[..i].iter().find(|o| o.entity_id == idp.entity_id) {
            p.add(format!("{head}.entity_id"), format!("the same entity id as saml_idp {:?}", first.name));
        }
        if let Some(m) = idp.metadata_url.as_ref().filter(|m| plain_http_off_host(&m.url)) {
            p.warn(
                format!("{head}.metadata_url"),
                format!(
                    "{} is plain http:// to another host: its certificates could be replaced in transit",
                    m.url
                ),
            );
        }
    }
    for (i, r) in routes.iter().enumerate() {
        let head = entry("route", i, &r.name);
        if r.rule.mode == Mode::ReportOnly {
            p.warn(format!("{head}.mode"), "report-only: refusals are logged, not enforced");
        }
        if plain_http_off_host(&r.upstream) {
            p.warn(
                format!("{head}.upstream"),
                format!(
                    "{} is plain http:// to another host: requests and the identities the gateway \
                     vouches for cross the network unencrypted",
                    r.upstream
                ),
            );
        }
    }
}

/// `http://` to a host other than this machine.
fn plain_http_off_host(url: &Uri) -> bool {
    let host = url.host().unwrap_or_default().trim_start_matches('[').trim_end_matches(']');
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host.to_ascii_lowercase().ends_with(".localhost")
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    url.scheme_str() == Some("http") && !loopback
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_this_machine() {
        for (url, off) in [
            ("http://127.0.0.1:8081", false),
            ("http://127.9.9.9/", false),
            ("http://[::1]:80/", false),
            ("http://localhost/", false),
            ("http://LocalHost:1/", false),
            ("http://api.localhost/", false),
            ("https://api.example.com/", false),
            ("http://api.example.com/", true),
            ("http://10.0.0.5:8080/", true),
            ("http://localhost.example.com/", true),
        ] {
            assert_eq!(plain_http_off_host(&url.parse().unwrap()), off, "{url}");
        }
    }
}
